/* frame.h: the framed protocol between the vm backend (host) and warden's guest agent
 * (the VM's /init), over one virtio-serial port. docs/guest-protocol.md is its reference.
 *
 * Shared by both sides and free of everything but libc: the guest agent is a static
 * binary that links this file and nothing else of libwarden. Sections: frames (header,
 * types, the decoder); the EXEC request (encoding, decoding); the FILE request; the
 * network (LISTEN; stream.h carries the streams).
 *
 * Each side treats what the other sends as untrusted: the host because the guest runs
 * the agent's code, the guest because a broken host must not crash its init. Every
 * length is bounded, every type and its payload size checked, strings re-validated.
 */
#ifndef WARDEN_VM_FRAME_H
#define WARDEN_VM_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_VERSION   1
#define FRAME_HEADER    12          /* type u8, flags u8, reserved u16, id u32, len u32 */
#define FRAME_MAX       (64 * 1024) /* payload bytes */
#define FRAME_EXEC_ARGS 4096        /* arguments + environment entries of one request */

enum frame_type {
	/* host -> guest */
	FRAME_EXEC = 1,      /* id: a new request id; payload: the request (frame_exec_*) */
	FRAME_STDIN = 2,     /* id; payload: bytes for its stdin; empty: end of input */
	FRAME_SIGNAL = 3,    /* id; payload: u32 signal, sent to its process group */
	FRAME_POWEROFF = 4,  /* id 0; no payload: sync file systems and power off */
	FRAME_FILE = 5,      /* id 0; payload: path NUL mode(octal) NUL content: write a file
	                        (as the guest's root; the host is trusted for this) */
	FRAME_LISTEN = 6,    /* id 0; payload: the listeners (frame_listen_decode()) */
	FRAME_DATA_IN = 7,   /* id: a stream (0: a DNS answer); payload: bytes; empty: end */
	FRAME_CREDIT_IN = 8, /* id (not 0); payload: u32 bytes taken: the window reopens */
	FRAME_CLOSE_IN = 9,  /* id (not 0); no payload: the stream is gone (refused, reset) */
	FRAME_PING = 10,     /* id 0; payload: u32 n: answer with PONG n (the heartbeat) */
	FRAME_RESIZE = 11,   /* id; payload: u16 rows, u16 cols: its terminal's new size */
	/* guest -> host */
	FRAME_READY = 16,   /* id 0; payload: u32 FRAME_VERSION: the agent serves */
	FRAME_STARTED = 17, /* id; payload: u32 pid of the command in the guest */
	FRAME_STDOUT = 18,  /* id; payload: bytes it wrote */
	FRAME_STDERR = 19,  /* id; payload: bytes it wrote */
	FRAME_EXIT = 20,    /* id; payload: i32 status (N, 128+N), i32 errno (126/127) */
	FRAME_ERROR = 21,   /* id (0: the agent itself); payload: text, refused request */
	/* the network (proxy mode, the model gateway): streams of the guest's connections to
	 * its listeners, and the DNS listener's datagrams as DATA with id 0 */
	FRAME_OPEN = 22,       /* guest: id a new stream (not 0); payload: u32 listener index */
	FRAME_DATA_OUT = 23,   /* guest: id; payload: bytes; empty: end of data */
	FRAME_CREDIT_OUT = 24, /* guest: id (not 0); payload: u32 bytes taken: the window reopens */
	FRAME_CLOSE_OUT = 25,  /* guest: id (not 0); no payload: the stream is gone */
	FRAME_PONG = 26,       /* id 0; payload: u32 n of the PING answered */
	FRAME_TYPE_MAX,
};

enum frame_dir {
	FRAME_TO_GUEST,
	FRAME_TO_HOST,
};

struct frame {
	uint8_t type;
	uint32_t id;
	uint32_t len;
	const uint8_t *payload; /* points into the decoded buffer */
};

/* Decode one frame from the start of buf[0..len) travelling in direction dir.
 * Returns 1 with *ret filled and *ret_used bytes consumed, 0 when more bytes are needed,
 * -1 with *ret_why (static text) when the bytes can never be a valid frame: unknown type,
 * wrong direction, nonzero flags or reserved bits, payload over FRAME_MAX, or a payload
 * size the type does not allow. A stream that yields -1 must be dropped. */
int frame_decode(const uint8_t *buf, size_t len, enum frame_dir dir, struct frame *ret,
                 size_t *ret_used, const char **ret_why);
/* Write the header of a frame into out. */
void frame_header(uint8_t out[FRAME_HEADER], uint8_t type, uint32_t id, uint32_t len);
/* Little-endian u32 and u16 in and out of payloads. */
uint32_t frame_get_u32(const uint8_t *p);
void frame_put_u32(uint8_t *p, uint32_t v);
uint16_t frame_get_u16(const uint8_t *p);
void frame_put_u16(uint8_t *p, uint16_t v);

/* The EXEC request: records, each a tag byte and a NUL-terminated string:
 * 'A' an argument (at least one, in order), 'E' NAME=VALUE, 'W' the absolute working
 * directory (at most one), 'U' the uid and 'G' the gid (decimal, exactly one each),
 * 'T' "ROWS COLS": a new terminal of that size for the command (at most one),
 * 'L' "PIDS NOFILE": its RLIMIT_NPROC (0: none) and RLIMIT_NOFILE (at most one). */
struct frame_exec {
	char **argv; /* NULL-terminated; decoded: pointing into a copy owned by the struct */
	char **env;
	const char *workdir; /* NULL: "/" */
	uint32_t uid, gid;
	bool tty; /* 'T': rows and cols are its size */
	uint16_t rows, cols;
	bool limits; /* 'L': pids and nofile */
	uint32_t pids, nofile;
	char *buf;
};

/* Encode the request x (argv, env, workdir, uid, gid, tty, limits) into a malloc'ed
 * buffer (*ret_buf, *ret_len). Returns 0, or -1 with *ret_why when it does not fit in
 * one frame. */
int frame_exec_encode(const struct frame_exec *x, uint8_t **ret_buf, size_t *ret_len,
                      const char **ret_why);
/* Decode and validate a request (argv non-empty; env entries NAME=VALUE with a valid
 * name; workdir absolute; uid and gid present once, decimal, < 2^32 - 1; a terminal's
 * size at most once, two decimals < 65536; limits at most once, two decimals < 2^32).
 * Returns 0 with *ret filled (free with frame_exec_clear()), or -1 with *ret_why. */
int frame_exec_decode(const uint8_t *p, size_t len, struct frame_exec *ret, const char **ret_why);
void frame_exec_clear(struct frame_exec *x);

/* The FILE request: an absolute path (< 4096 bytes), an octal mode (<= 7777), the bytes.
 * Pointers go into the payload. Returns 0, or -1 with *ret_why. */
struct frame_file {
	const char *path;
	unsigned mode;
	const uint8_t *data;
	size_t len;
};
int frame_file_decode(const uint8_t *p, size_t len, struct frame_file *ret, const char **ret_why);

/* ---- the network ------------------------------------------------------------------- */

#define FRAME_NET_LISTENERS 4            /* listeners one LISTEN may offer */
#define FRAME_NET_STREAMS   64           /* streams open at once */
#define FRAME_NET_WINDOW    (256 * 1024) /* bytes one way on a stream not yet credited */
#define FRAME_NET_DNS_ID    0            /* the id of DATA frames that carry datagrams */

/* One listener of LISTEN, a 4-byte record: u8 index (< FRAME_NET_LISTENERS; what OPEN
 * names), u8 kind (1 TCP, 2 UDP), u16 port (not 0). Each index once, at most one UDP
 * listener (its datagrams are the DATA frames with id FRAME_NET_DNS_ID). */
struct frame_listener {
	uint8_t index;
	bool udp;
	uint16_t port;
};
#define FRAME_LISTENER_SIZE 4
void frame_listener_put(uint8_t out[FRAME_LISTENER_SIZE], const struct frame_listener *l);
/* Decode LISTEN's payload into ret (at most FRAME_NET_LISTENERS). Returns the number of
 * listeners, or -1 with *ret_why. */
int frame_listen_decode(const uint8_t *p, size_t len, struct frame_listener *ret,
                        const char **ret_why);

#endif
