/* control.h: a supervisor's control socket: where the sockets are, the messages both sides
 * exchange, and the client side of the requests.
 *
 * Sections: where the sockets are; messages (bytes and descriptors, both sides); requests
 * (the clients: `warden freeze|thaw|kill|stats|metrics`, `warden mcp`, wardend).
 *
 * The protocol is docs/architecture.md's ("Service sandboxes: commands on request"):
 * SOCK_SEQPACKET, one JSON object per message of at most WARDEN_CONTROL_MSG_MAX bytes,
 * descriptors attached with SCM_RIGHTS. The server is supervisor.c (handle_control()).
 * Every descriptor received is O_CLOEXEC; errors name the socket and keep the errno
 * (ETIMEDOUT when no reply came in time, EPIPE when the supervisor closed the connection,
 * EPROTO for a reply that is not a JSON object).
 */
#ifndef WARDEN_CONTROL_H
#define WARDEN_CONTROL_H

#include "error.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define WARDEN_CONTROL_MSG_MAX (64u << 10)
#define WARDEN_CONTROL_FDS_MAX 8 /* descriptors one message can bring */

/* ---- where the sockets are --------------------------------------------------------- */

/* The directory holding the control sockets of this user's supervisors:
 * /run/warden/sandboxes as root, $XDG_RUNTIME_DIR/warden/sandboxes (or
 * /tmp/warden-UID/sandboxes) otherwise; created (each level 0700) when create is set.
 * Caller frees. */
char *warden_control_dir(bool create, struct warden_error **err);

/* ---- messages ---------------------------------------------------------------------- */

/* (Messages are sent with send_with_fds(), util.h.) */

/* Receive one message into buf (len bytes) and the descriptors attached to it: the first
 * max_fds are stored in fds, the others closed; *ret_n_fds counts all of them (it may
 * exceed max_fds: a peer that sent too many can be refused). Returns the length, 0 at the
 * end of the connection, or -1 with errno (EMSGSIZE: the message or its descriptors did
 * not fit; *ret_n_fds is still set then, and the stored descriptors are the caller's). */
ssize_t warden_control_recvmsg(int fd, void *buf, size_t len, int flags, int *fds, size_t max_fds,
                               size_t *ret_n_fds);

/* ---- requests ---------------------------------------------------------------------- */

/* Connect to the control socket at path. timeout_ms > 0 bounds each later send and
 * receive on the connection (and a connect to a socket whose backlog is full). Returns
 * the connection (O_CLOEXEC) or -1. */
int warden_control_connect(const char *path, int timeout_ms, struct warden_error **err);
/* Send req (not taken) with n_fds descriptors attached (at most WARDEN_CONTROL_FDS_MAX).
 * EMSGSIZE when it is longer than WARDEN_CONTROL_MSG_MAX. */
int warden_control_send(int fd, const json_t *req, const int *fds, size_t n_fds,
                        struct warden_error **err);
/* Receive one message, a JSON object. flags: 0 waits (as long as the connection's timeout
 * allows), MSG_DONTWAIT does not (ETIMEDOUT when there is nothing). Descriptors attached
 * are stored in fds (at most max_fds; any others are closed) and *ret_n_fds says how many;
 * fds and ret_n_fds may be NULL when none are expected. Returns the object (caller frees),
 * or NULL with no descriptor left open. */
json_t *warden_control_recv(int fd, int flags, int *fds, size_t max_fds, size_t *ret_n_fds,
                            struct warden_error **err);

/* One request (not taken), one reply, within timeout_ms each way. Returns the reply, "ok"
 * not checked (see warden_control_ok()), or NULL. */
json_t *warden_control_call(const char *path, const json_t *req, int timeout_ms,
                            struct warden_error **err);
/* A request that opens an exchange (exec): req with n_fds descriptors attached, and its
 * first reply in *ret_reply ("ok" not checked). Returns the connection, non-blocking, on
 * which later messages come (read them with warden_control_recv(MSG_DONTWAIT)), or -1. */
int warden_control_open(const char *path, const json_t *req, const int *fds, size_t n_fds,
                        int timeout_ms, json_t **ret_reply, struct warden_error **err);
/* {"op":"root"}: the sandbox's root directory, an O_PATH descriptor (caller closes), or -1
 * (EPROTO when the reply brought none). */
int warden_control_root(const char *path, int timeout_ms, struct warden_error **err);

/* A reply that says {"ok": true} is returned as it is; any other (and NULL) is freed and
 * NULL returned, with the reply's "error" (or "refused") as the message, errno 0 (callers
 * add which request it was). */
json_t *warden_control_ok(json_t *reply, struct warden_error **err);

/* {"op": op} to the supervisor of the sandbox sandbox_id (hex) of this user (the socket
 * in warden_control_dir()), within 5 s. A socket that refuses connections is a stale one
 * (its supervisor was killed) and is removed. Returns the reply ("ok" not checked) or NULL
 * ("no running sandbox ID" when there is none). */
json_t *warden_control_request(const char *sandbox_id, const char *op, struct warden_error **err);

#endif
