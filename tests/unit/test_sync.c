/* test_sync.c: supervisor <-> init messages (sync_send / sync_recv).
 *
 * Sections: a message and its descriptors; what the reader refuses; end of file.
 */
#include "unit.h"
#include "../../src/lib/sync.h"

#include <dirent.h>
#include <sys/socket.h>

static void pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
}

static void test_message_and_fds(void **state)
{
	(void)state;
	int sv[2];
	pair(sv);
	struct sync_msg out = {.type = SYNC_ERROR, .errnum = ENOENT, .status = 3, .pid = 42};
	snprintf(out.step, sizeof(out.step), "mounts");
	snprintf(out.text, sizeof(out.text), "no such file");
	int fds_out[2] = {sv[1], sv[1]};
	assert_int_equal(sync_send(sv[1], &out, fds_out, 2), 0);

	struct sync_msg in;
	int fds[4] = {-1, -1, -1, -1};
	unsigned got = 0;
	assert_int_equal(sync_recv(sv[0], &in, fds, 4, &got), 0);
	assert_int_equal(got, 2);
	assert_int_equal(in.type, SYNC_ERROR);
	assert_int_equal(in.errnum, ENOENT);
	assert_int_equal(in.status, 3);
	assert_int_equal(in.pid, 42);
	assert_string_equal(in.step, "mounts");
	assert_string_equal(in.text, "no such file");
	for (unsigned i = 0; i < got; i++) {
		assert_int_equal(fcntl(fds[i], F_GETFD), FD_CLOEXEC);
		close(fds[i]);
	}

	/* strings are re-terminated whatever the sender wrote */
	memset(out.step, 'x', sizeof(out.step));
	memset(out.text, 'y', sizeof(out.text));
	assert_int_equal(sync_send(sv[1], &out, NULL, 0), 0);
	assert_int_equal(sync_recv(sv[0], &in, NULL, 0, NULL), 0);
	assert_int_equal(strlen(in.step), sizeof(in.step) - 1);
	assert_int_equal(strlen(in.text), sizeof(in.text) - 1);

	assert_int_equal(sync_send(sv[1], &out, fds_out, SYNC_MAX_FDS + 1), -E2BIG);
	close(sv[0]);
	close(sv[1]);
}

static void test_refused(void **state)
{
	(void)state;
	int sv[2];
	pair(sv);
	int before = count_fds();
	struct sync_msg out = {.type = SYNC_GO}, in;
	int fds_out[3] = {sv[1], sv[1], sv[1]};
	int fds[2];
	unsigned got = 99;

	/* more descriptors than the reader takes: all closed, message refused */
	assert_int_equal(sync_send(sv[1], &out, fds_out, 3), 0);
	assert_int_equal(sync_recv(sv[0], &in, fds, 2, &got), -EBADMSG);
	assert_int_equal(got, 0);
	assert_int_equal(count_fds(), before);

	/* descriptors to a reader that takes none */
	assert_int_equal(sync_send(sv[1], &out, fds_out, 1), 0);
	assert_int_equal(sync_recv(sv[0], &in, NULL, 0, NULL), -EBADMSG);
	assert_int_equal(count_fds(), before);

	/* types outside the enumeration */
	out.type = 0;
	assert_int_equal(sync_send(sv[1], &out, fds_out, 1), 0);
	assert_int_equal(sync_recv(sv[0], &in, fds, 2, &got), -EBADMSG);
	assert_int_equal(got, 0);
	out.type = SYNC_TYPE_MAX;
	assert_int_equal(sync_send(sv[1], &out, NULL, 0), 0);
	assert_int_equal(sync_recv(sv[0], &in, NULL, 0, NULL), -EBADMSG);
	assert_int_equal(count_fds(), before);

	/* a datagram of the wrong size, shorter and longer */
	char buf[sizeof(struct sync_msg) + 8];
	memset(buf, 0, sizeof(buf));
	buf[0] = SYNC_GO;
	assert_int_equal(send(sv[1], buf, 4, 0), 4);
	assert_int_equal(sync_recv(sv[0], &in, NULL, 0, NULL), -EBADMSG);
	assert_int_equal(send(sv[1], buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	assert_int_equal(sync_recv(sv[0], &in, NULL, 0, NULL), -EBADMSG);
	/* and the stream goes on with the next message */
	out.type = SYNC_JOINED;
	assert_int_equal(sync_send(sv[1], &out, NULL, 0), 0);
	assert_int_equal(sync_recv(sv[0], &in, NULL, 0, NULL), 0);
	assert_int_equal(in.type, SYNC_JOINED);
	close(sv[0]);
	close(sv[1]);
}

static void test_end_of_file(void **state)
{
	(void)state;
	int sv[2];
	pair(sv);
	struct sync_msg out = {.type = SYNC_READY}, in;
	/* what was sent before the peer closed is still read */
	assert_int_equal(sync_send(sv[1], &out, NULL, 0), 0);
	close(sv[1]);
	assert_int_equal(sync_recv(sv[0], &in, NULL, 0, NULL), 0);
	assert_int_equal(in.type, SYNC_READY);
	assert_int_equal(sync_recv(sv[0], &in, NULL, 0, NULL), -EPIPE);
	assert_int_equal(sync_recv(sv[0], &in, NULL, 0, NULL), -EPIPE);
	close(sv[0]);
	assert_int_equal(sync_send(sv[0], &out, NULL, 0), -EBADF);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_message_and_fds),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_end_of_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
