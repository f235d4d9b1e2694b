/* ctl.c: requests to a supervisor's control socket (SOCK_SEQPACKET, one JSON object per
 * message; the contract is in docs/daemon.md).
 *
 * A request is a few hundred microseconds of the supervisor's own loop, so simple ones
 * are made synchronously, bounded by a timeout; what lasts (an exec's exit) is read from
 * the event loop (ctl_read()).
 */
#define _GNU_SOURCE
#include "wardend.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

static int ctl_connect(const char *path, int timeout_ms, struct warden_error **err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return warden_error_set(err, ENAMETOOLONG, "control socket %s", path);
	strcpy(sa.sun_path, path);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return warden_error_set(err, errno, "socket");
	/* The send timeout also bounds connect() on a unix socket whose backlog is full. */
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return warden_error_set(err, errno, "control socket %s", path);
	return TAKE_FD(fd);
}

static int send_json(int fd, json_t *req, const int *fds, size_t n_fds, const char *path,
                     struct warden_error **err)
{
	_cleanup_free_ char *text = json_dumps(req, JSON_COMPACT);
	if (!text)
		return warden_error_set(err, ENOMEM, "encoding a control request");
	size_t len = strlen(text);
	if (len > CTL_MSG_MAX)
		return warden_error_set(err, EMSGSIZE, "control request of %zu bytes (at most %u)",
		                        len, CTL_MSG_MAX);
	struct iovec iov = {.iov_base = text, .iov_len = len};
	union {
		char buf[CMSG_SPACE(3 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	if (n_fds) {
		memset(&u, 0, sizeof(u));
		msg.msg_control = u.buf;
		msg.msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, n_fds * sizeof(int));
	}
	ssize_t n;
	do
		n = sendmsg(fd, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return warden_error_set(err, errno, "control socket %s: sending", path);
	return 0;
}

static json_t *recv_json(int fd, int flags, bool *ret_eof, const char *path,
                         struct warden_error **err)
{
	_cleanup_free_ char *buf = xmalloc(CTL_MSG_MAX + 1);
	ssize_t n;
	*ret_eof = false;
	do
		n = recv(fd, buf, CTL_MSG_MAX, flags);
	while (n < 0 && errno == EINTR);
	if (n == 0) {
		*ret_eof = true;
		warden_error_set(err, EPIPE, "control socket %s: closed without a reply", path);
		return NULL;
	}
	if (n < 0) {
		warden_error_set(err, errno == EAGAIN ? ETIMEDOUT : errno,
		                 "control socket %s: no reply", path);
		return NULL;
	}
	json_error_t je;
	json_t *o = json_loadb(buf, (size_t)n, 0, &je);
	if (!json_is_object(o)) {
		json_decref(o);
		warden_error_set(err, EPROTO,
		                 "control socket %s: a reply that is not a JSON object", path);
		return NULL;
	}
	return o;
}

json_t *ctl_request(const char *path, json_t *req, int timeout_ms, struct warden_error **err)
{
	bool eof;
	_cleanup_close_ int fd = ctl_connect(path, timeout_ms, err);
	if (fd < 0 || send_json(fd, req, NULL, 0, path, err) < 0)
		return NULL;
	return recv_json(fd, 0, &eof, path, err);
}

int ctl_exec(const char *path, json_t *req, const int fds[3], int timeout_ms, json_t **ret_reply,
             struct warden_error **err)
{
	bool eof;
	_cleanup_close_ int fd = ctl_connect(path, timeout_ms, err);
	if (fd < 0 || send_json(fd, req, fds, 3, path, err) < 0)
		return -1;
	json_t *reply = recv_json(fd, 0, &eof, path, err);
	if (!reply)
		return -1;
	if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
		json_decref(reply);
		return warden_error_set(err, errno, "control socket %s", path);
	}
	*ret_reply = reply;
	return TAKE_FD(fd);
}

json_t *ctl_read(int fd, bool *ret_eof)
{
	_cleanup_error_ struct warden_error *e = NULL;
	json_t *o = recv_json(fd, MSG_DONTWAIT, ret_eof, "", &e);
	if (!o && e && e->errnum != ETIMEDOUT && !*ret_eof)
		*ret_eof = true; /* an error or garbage: the exchange is over */
	return o;
}
