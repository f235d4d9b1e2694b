/* control.c: a supervisor's control socket: where the sockets are, messages with
 * descriptors, and requests (control.h).
 *
 * Sections: where the sockets are; messages; requests.
 */
#define _GNU_SOURCE
#include "control.h"
#include "util.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>

/* ---- where the sockets are --------------------------------------------------------- */

char *warden_control_dir(bool create, struct warden_error **err)
{
	char *dir;
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	if (geteuid() == 0)
		dir = xstrdup("/run/warden/sandboxes");
	else if (xdg && *xdg == '/')
		dir = xasprintf("%s/warden/sandboxes", xdg);
	else
		dir = xasprintf("/tmp/warden-%u/sandboxes", (unsigned)geteuid());
	if (!create)
		return dir;
	/* Each level private to its user (0700): only they reach the sockets. */
	for (char *p = strchr(dir + 1, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			warden_error_set(err, errno, "creating %s", dir);
			free(dir);
			return NULL;
		}
		*p = '/';
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		warden_error_set(err, errno, "creating %s", dir);
		free(dir);
		return NULL;
	}
	return dir;
}

/* ---- messages ---------------------------------------------------------------------- */

union control_cmsg {
	char buf[CMSG_SPACE(WARDEN_CONTROL_FDS_MAX * sizeof(int))];
	struct cmsghdr align;
};

ssize_t warden_control_recvmsg(int fd, void *buf, size_t len, int flags, int *fds, size_t max_fds,
                               size_t *ret_n_fds)
{
	union control_cmsg cm;
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof(cm)};
	ssize_t n;
	*ret_n_fds = 0;
	do
		n = recvmsg(fd, &mh, flags | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		const unsigned char *data = CMSG_DATA(c);
		for (size_t i = 0; i < k; i++) {
			int got;
			memcpy(&got, data + i * sizeof(int), sizeof(int));
			if (*ret_n_fds < max_fds)
				fds[*ret_n_fds] = got;
			else
				close(got);
			(*ret_n_fds)++;
		}
	}
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		errno = EMSGSIZE;
		return -1;
	}
	return n;
}

/* ---- requests ---------------------------------------------------------------------- */

int warden_control_connect(const char *path, int timeout_ms, struct warden_error **err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return warden_error_set(err, ENAMETOOLONG, "control socket %s", path);
	strcpy(sa.sun_path, path);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return warden_error_set(err, errno, "socket");
	if (timeout_ms > 0) {
		/* The send timeout also bounds connect() on a unix socket whose backlog is
		 * full. */
		struct timeval tv = {.tv_sec = timeout_ms / 1000,
		                     .tv_usec = (timeout_ms % 1000) * 1000};
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return warden_error_set(err, errno, "control socket %s", path);
	return TAKE_FD(fd);
}

int warden_control_send(int fd, const json_t *req, const int *fds, size_t n_fds,
                        struct warden_error **err)
{
	_cleanup_free_ char *text = json_dumps(req, JSON_COMPACT);
	if (!text)
		return warden_error_set(err, ENOMEM, "encoding a control request");
	size_t len = strlen(text);
	if (len > WARDEN_CONTROL_MSG_MAX)
		return warden_error_set(err, EMSGSIZE,
		                        "a control request of %zu bytes (at most %u)", len,
		                        WARDEN_CONTROL_MSG_MAX);
	if (n_fds > WARDEN_CONTROL_FDS_MAX)
		return warden_error_set(err, EINVAL, "sending %zu descriptors (at most %d)", n_fds,
		                        WARDEN_CONTROL_FDS_MAX);
	if (send_with_fds(fd, text, len, fds, n_fds, 0) < 0)
		return warden_error_set(err, errno, "sending");
	return 0;
}

json_t *warden_control_recv(int fd, int flags, int *fds, size_t max_fds, size_t *ret_n_fds,
                            struct warden_error **err)
{
	_cleanup_free_ char *buf = xmalloc(WARDEN_CONTROL_MSG_MAX);
	int got[WARDEN_CONTROL_FDS_MAX];
	size_t n_got = 0;
	if (ret_n_fds)
		*ret_n_fds = 0;
	if (!fds || max_fds > WARDEN_CONTROL_FDS_MAX)
		max_fds = fds ? WARDEN_CONTROL_FDS_MAX : 0;
	ssize_t n =
	    warden_control_recvmsg(fd, buf, WARDEN_CONTROL_MSG_MAX, flags, got, max_fds, &n_got);
	int e = errno;
	size_t kept = n_got < max_fds ? n_got : max_fds;
	json_t *o = NULL;
	if (n == 0)
		warden_error_set(err, EPIPE, "closed without a reply");
	else if (n < 0)
		warden_error_set(err, e == EAGAIN ? ETIMEDOUT : e, "no reply");
	else if (!json_is_object(o = json_loadb(buf, (size_t)n, 0, NULL))) {
		json_decref(o);
		o = NULL;
		warden_error_set(err, EPROTO, "a reply that is not a JSON object");
	}
	if (!o) {
		for (size_t i = 0; i < kept; i++)
			close(got[i]);
		return NULL;
	}
	if (kept)
		memcpy(fds, got, kept * sizeof(int));
	if (ret_n_fds)
		*ret_n_fds = kept;
	return o;
}

/* Connect, send req with fds attached, and receive the first reply with up to max_ret
 * descriptors. Returns the connection, or -1 with nothing left open. */
static int exchange(const char *path, const json_t *req, const int *fds, size_t n_fds,
                    int timeout_ms, int *ret_fds, size_t max_ret, size_t *ret_n_fds,
                    json_t **ret_reply, struct warden_error **err)
{
	_cleanup_close_ int fd = warden_control_connect(path, timeout_ms, err);
	if (fd < 0)
		return -1;
	json_t *reply = NULL;
	if (warden_control_send(fd, req, fds, n_fds, err) == 0)
		reply = warden_control_recv(fd, 0, ret_fds, max_ret, ret_n_fds, err);
	if (!reply)
		return warden_error_wrap(err, "control socket %s", path);
	*ret_reply = reply;
	return TAKE_FD(fd);
}

json_t *warden_control_call(const char *path, const json_t *req, int timeout_ms,
                            struct warden_error **err)
{
	json_t *reply = NULL;
	int fd = exchange(path, req, NULL, 0, timeout_ms, NULL, 0, NULL, &reply, err);
	if (fd >= 0)
		close(fd);
	return reply;
}

int warden_control_open(const char *path, const json_t *req, const int *fds, size_t n_fds,
                        int timeout_ms, json_t **ret_reply, struct warden_error **err)
{
	json_t *reply = NULL;
	_cleanup_close_ int fd =
	    exchange(path, req, fds, n_fds, timeout_ms, NULL, 0, NULL, &reply, err);
	if (fd < 0)
		return -1;
	if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
		json_decref(reply);
		return warden_error_set(err, errno, "control socket %s", path);
	}
	*ret_reply = reply;
	return TAKE_FD(fd);
}

int warden_control_root(const char *path, int timeout_ms, struct warden_error **err)
{
	json_t *req = json_pack("{s:s}", "op", "root"), *reply = NULL;
	int root = -1;
	size_t n = 0;
	int fd = exchange(path, req, NULL, 0, timeout_ms, &root, 1, &n, &reply, err);
	json_decref(req);
	if (fd < 0)
		return -1;
	close(fd);
	reply = warden_control_ok(reply, err);
	if (reply && n != 1)
		warden_error_set(err, EPROTO, "a reply without a descriptor");
	if (!reply || n != 1) {
		if (n)
			close(root);
		json_decref(reply);
		return warden_error_wrap(err, "control socket %s: root", path);
	}
	json_decref(reply);
	return root;
}

json_t *warden_control_ok(json_t *reply, struct warden_error **err)
{
	if (!reply || json_is_true(json_object_get(reply, "ok")))
		return reply;
	const char *why = json_string_value(json_object_get(reply, "error"));
	warden_error_set(err, 0, "%s", why ? why : "refused");
	json_decref(reply);
	return NULL;
}

json_t *warden_control_request(const char *sandbox_id, const char *op, struct warden_error **err)
{
	for (const char *c = sandbox_id; *c; c++)
		if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f'))) {
			warden_error_set(err, 0, "\"%s\" is not a sandbox id", sandbox_id);
			return NULL;
		}
	_cleanup_free_ char *dir = warden_control_dir(false, err);
	_cleanup_free_ char *path = xasprintf("%s/%s.sock", dir, sandbox_id);
	_cleanup_error_ struct warden_error *e = NULL;
	_cleanup_close_ int fd = warden_control_connect(path, 5000, &e);
	if (fd < 0) {
		if (e->errnum == ENAMETOOLONG) {
			warden_error_set(err, ENAMETOOLONG, "%s", path);
			return NULL;
		}
		/* Refused: its supervisor is gone (killed with SIGKILL); the socket is stale. */
		if (e->errnum == ECONNREFUSED)
			(void)unlink(path);
		warden_error_set(err, 0, "no running sandbox %s", sandbox_id);
		return NULL;
	}
	json_t *req = json_pack("{s:s}", "op", op), *reply = NULL;
	if (warden_control_send(fd, req, NULL, 0, err) == 0)
		reply = warden_control_recv(fd, 0, NULL, 0, NULL, err);
	json_decref(req);
	if (!reply)
		warden_error_wrap(err, "sandbox %s", sandbox_id);
	return reply;
}
