/* test_sync_fds.c: sync.c never leaves a descriptor open that the peer sent with a
 * message it refuses.
 *
 * Sections: descriptors that arrive with an empty datagram.
 */
#include "unit.h"
#include "../../src/lib/sync.h"

#include <dirent.h>
#include <sys/socket.h>

/* sync_recv() returns -EPIPE as soon as recvmsg() reads 0 bytes, before it looks at the
 * control data: a datagram with no bytes but SCM_RIGHTS descriptors (which init, inside
 * the sandbox, can send) is taken for end of file and its descriptors stay open in the
 * supervisor for good. It should close them and refuse the message. */
static void test_empty_datagram_with_fds(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	int before = count_fds();

	union {
		char buf[CMSG_SPACE(sizeof(int) * 3)];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof(u));
	struct iovec iov = {.iov_base = NULL, .iov_len = 0};
	struct msghdr mh = {.msg_iov = &iov,
	                    .msg_iovlen = 1,
	                    .msg_control = u.buf,
	                    .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * 3);
	int fds_out[3] = {sv[1], sv[1], sv[1]};
	memcpy(CMSG_DATA(c), fds_out, sizeof(fds_out));
	assert_int_equal(sendmsg(sv[1], &mh, MSG_NOSIGNAL), 0);

	struct sync_msg msg;
	int fds[SYNC_MAX_FDS];
	unsigned got = 99;
	int r = sync_recv(sv[0], &msg, fds, SYNC_MAX_FDS, &got);
	int leaked = count_fds() - before;
	close(sv[0]);
	close(sv[1]);
	if (leaked)
		fail_msg("sync_recv() returned %d and left %d descriptors open", r, leaked);
	assert_int_equal(r, -EBADMSG);
	assert_int_equal(got, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty_datagram_with_fds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
