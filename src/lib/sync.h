/* sync.h: the messages between a sandbox's supervisor (host side) and its init (pid 1).
 *
 * One SOCK_SEQPACKET socketpair per sandbox; every message is one fixed-size struct, with
 * file descriptors attached as SCM_RIGHTS where a message says so. Init treats the socket
 * as its only link to the host; the supervisor treats everything init sends as untrusted
 * (init runs confined, but it is inside the sandbox): lengths are fixed, strings are
 * re-terminated, pids and statuses are only reported, never acted upon blindly.
 */
#ifndef WARDEN_SYNC_H
#define WARDEN_SYNC_H

#include <stdint.h>
#include <sys/types.h>

/* A sandbox started by `warden run` ends with its main process: init then exits with the
 * process's status mapped the way a shell maps it (N, or 128+N for signal N), so the
 * supervisor learns it from init's own exit, without one more message and wakeup. */
enum sync_type {
	SYNC_GO = 1,      /* supervisor -> init: ids mapped; fds: detached mounts */
	SYNC_JOINED,      /* supervisor -> init: init is in the sandbox's cgroups */
	SYNC_START,       /* supervisor -> init: telemetry watches the sandbox and its record
	                     is on disk: processes may start */
	SYNC_READY,       /* init -> supervisor, with a tty only: fd: the pty master */
	SYNC_ERROR,       /* init -> supervisor: a setup step failed (step, errnum, text) */
	SYNC_EXEC_FAILED, /* init -> supervisor: execve of the command failed (errnum, text) */
	SYNC_NET,         /* init -> supervisor, proxy mode or gateway: fds: the listeners
	                     made in the sandbox's network namespace (sandbox.h, WARDEN_NET_*) */
	/* A service sandbox (no main process) runs commands on request: */
	SYNC_ROOT,         /* init -> supervisor, at setup: fd: the sandbox's root (O_PATH) */
	SYNC_EXEC,         /* supervisor -> init: pid: the request's id; fds: the request (a
	                      memfd: sync_exec_spec_*), stdin, stdout, stderr */
	SYNC_EXEC_STARTED, /* init -> supervisor: pid: the id; status: its pid inside */
	SYNC_EXEC_EXIT,    /* init -> supervisor: pid: the id; status: N or 128+N; errnum: why
	                      it could not be executed (status 126/127), else 0 */
	SYNC_EXEC_SIGNAL,  /* supervisor -> init: pid: the id; status: the signal for its
	                      process group */
	SYNC_TYPE_MAX,
};

#define SYNC_MAX_FDS 64

/* The request of SYNC_EXEC, written by the supervisor into a memfd: NUL-terminated
 * strings, each tagged by its first byte: 'W' the working directory (at most one), 'A' an
 * argument (in order, at least one), 'E' a NAME=VALUE set over the sandbox's environment.
 * At most SYNC_EXEC_SPEC_MAX bytes. */
#define SYNC_EXEC_SPEC_MAX (1 << 20)

/* One shared anonymous page, mapped before clone. */
struct sync_shared {
	uint32_t go;
	uint32_t joined;
	uint32_t start;
};

struct sync_msg {
	uint32_t type;
	int32_t errnum;
	int32_t status;
	int32_t pid;
	uint32_t nfds;
	char step[28];
	char text[480];
};

/* Send one message with optional fds. Returns 0 or -errno. */
int sync_send(int sock, const struct sync_msg *msg, const int *fds, unsigned nfds);
/* Receive one message; attached fds (O_CLOEXEC) go to fds[0..*nfds). Returns 0, -EPIPE on
 * EOF, or -errno. Extra fds beyond max_fds are closed and the message is refused. */
int sync_recv(int sock, struct sync_msg *msg, int *fds, unsigned max_fds, unsigned *ret_nfds);

#endif
