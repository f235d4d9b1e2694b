/* sync.c: sending and receiving supervisor <-> init messages (see sync.h). */
#define _GNU_SOURCE
#include "sync.h"
#include "util.h"

#include <sys/socket.h>

int sync_send(int sock, const struct sync_msg *msg, const int *fds, unsigned nfds)
{
	_Static_assert(SYNC_MAX_FDS <= SEND_FDS_MAX, "util.h: SEND_FDS_MAX");
	if (nfds > SYNC_MAX_FDS)
		return -E2BIG;
	ssize_t n = send_with_fds(sock, msg, sizeof(*msg), fds, nfds, 0);
	if (n == (ssize_t)sizeof(*msg))
		return 0;
	return n < 0 ? -errno : -EIO;
}

int sync_recv(int sock, struct sync_msg *msg, int *fds, unsigned max_fds, unsigned *ret_nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * SYNC_MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = msg, .iov_len = sizeof(*msg)};
	struct msghdr mh = {.msg_iov = &iov,
	                    .msg_iovlen = 1,
	                    .msg_control = u.buf,
	                    .msg_controllen = sizeof(u.buf)};
	ssize_t n;
	unsigned got = 0;
	int r = 0;

	/* ECONNRESET says the peer closed with a message of ours unread; the messages it
	 * sent before closing are still queued behind that error, so read on. */
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && (errno == EINTR || errno == ECONNRESET));
	if (n < 0)
		return -errno;
	/* End of file carries no descriptors; an empty datagram that does is refused below
	 * (after its descriptors are closed), not taken for end of file. */
	if (n == 0 && mh.msg_controllen == 0)
		return -EPIPE;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		unsigned cnt = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		int *in = (int *)CMSG_DATA(c);
		for (unsigned i = 0; i < cnt; i++) {
			if (got < max_fds && fds)
				fds[got++] = in[i];
			else {
				close(in[i]);
				r = -EBADMSG;
			}
		}
	}
	if (ret_nfds)
		*ret_nfds = got;
	if (r < 0 || n != (ssize_t)sizeof(*msg) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
	    msg->type == 0 || msg->type >= SYNC_TYPE_MAX) {
		for (unsigned i = 0; i < got; i++)
			close(fds[i]);
		if (ret_nfds)
			*ret_nfds = 0;
		return -EBADMSG;
	}
	msg->step[sizeof(msg->step) - 1] = '\0';
	msg->text[sizeof(msg->text) - 1] = '\0';
	return 0;
}
