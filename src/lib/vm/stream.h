/* stream.h: one end of a network stream of the guest protocol (frame.h, docs/vm.md): a
 * socket on this side whose bytes travel to the other side as DATA frames, and the
 * other side's DATA written to it, under flow control by credit.
 *
 * Each direction of a stream has a window of FRAME_NET_WINDOW bytes: a side sends DATA
 * only while it holds credit, and the receiver gives credit back (CREDIT) as its socket
 * takes the bytes. So neither side ever holds more than one window per stream that its
 * socket has not taken, whatever the other sends: more than the window, or credit beyond
 * it, is a protocol error. An empty DATA is the end of data one way (the receiver shuts
 * its socket for writing once the rest is written); CLOSE ends the stream at once (an
 * error, a refusal). A stream whose ends of data went both ways, and whose bytes are all
 * written, is over without a frame.
 *
 * Shared by the vm backend's relay (host) and the guest agent, so libc only; the frames
 * go out through the side's send function. Not thread-safe: one thread per side.
 */
#ifndef WARDEN_VM_STREAM_H
#define WARDEN_VM_STREAM_H

#include "frame.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a side sends, and how. */
struct stream_side {
	uint8_t data, credit, close; /* its frame types: *_OUT in the guest, *_IN on the host */
	void (*send)(void *ctx, uint8_t type, uint32_t id, const void *payload, uint32_t len);
	void *ctx;
	uint8_t buf[FRAME_MAX]; /* reads land here */
};

struct stream {
	uint32_t id;
	int fd;           /* -1: a free slot */
	uint32_t credit;  /* bytes this side may still send */
	uint32_t unacked; /* the other side's bytes the socket took, not yet credited back */
	uint8_t *pending; /* the other side's bytes the socket has not taken yet */
	size_t n_pending;
	bool eof_in;  /* the other side's end of data arrived */
	bool eof_out; /* this side's end of data was sent */
	bool dead;    /* over: stream_free() it */
};

/* A new stream on fd (non-blocking; taken), with a full window each way. */
void stream_init(struct stream *s, uint32_t id, int fd);
/* What to poll fd for: POLLIN while it may be read (credit, no end of data yet, and
 * may_read: the caller's own queue has room), POLLOUT while bytes wait. 0: leave fd out
 * of the poll set (a hung-up socket would report POLLHUP at once, again and again). */
short stream_events(const struct stream *s, bool may_read);
/* fd is ready (revents from poll): read what the credit allows and send it, write what
 * waits. Errors close the stream (a CLOSE is sent). */
void stream_ready(struct stream_side *sd, struct stream *s, short revents);
/* The other side's DATA, CREDIT, CLOSE. Returns 0, or -1 with *ret_why when it breaks
 * the protocol (data beyond the window or after its end, credit beyond the window). */
int stream_data(struct stream_side *sd, struct stream *s, const uint8_t *p, uint32_t len,
                const char **ret_why);
int stream_credit(struct stream *s, uint32_t n, const char **ret_why);
void stream_close(struct stream *s);
/* The other side's frame f for s: its DATA, CREDIT or CLOSE (either way's types: the
 * decoder let only the other side's through); any other type is not a stream's and is
 * left alone. Returns what stream_data() or stream_credit() return, else 0. */
int stream_frame(struct stream_side *sd, struct stream *s, const struct frame *f,
                 const char **ret_why);
/* In a table of n streams: the open stream of id, or NULL; a free slot, or NULL. */
struct stream *stream_find(struct stream *tab, size_t n, uint32_t id);
struct stream *stream_free_slot(struct stream *tab, size_t n);
/* Close fd and free what the stream holds; the slot is free again. */
void stream_free(struct stream *s);

#endif
