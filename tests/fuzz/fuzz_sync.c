/* fuzz_sync.c: sync_recv(), the supervisor's reader of what init (inside the sandbox)
 * sends.
 *
 * The first byte says how many descriptors travel with the message (0-71, more than
 * SYNC_MAX_FDS), the second how many the reader takes and whether it passes an array;
 * the rest is the datagram. Checks: an accepted message is well formed and its strings
 * terminated; a refused one returns no descriptors; no descriptor is ever left open.
 */
#define _GNU_SOURCE
#include "src/lib/sync.h"
#include "src/lib/util.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/socket.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SEND 72

static int sock[2] = {-1, -1};
static int devnull = -1;

static int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		abort();
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	if (sock[0] < 0 && (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sock) < 0 ||
	                    (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0))
		abort();
	unsigned nsend = data[0] % MAX_SEND;
	unsigned max_fds = (data[1] & 0x7f) % (SYNC_MAX_FDS + 2);
	bool with_array = !(data[1] & 0x80);
	const uint8_t *payload = data + 2;
	size_t len = size - 2 > 4096 ? 4096 : size - 2;

	int before = count_fds();
	union {
		char buf[CMSG_SPACE(sizeof(int) * MAX_SEND)];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = (void *)payload, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	if (nsend) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nsend);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nsend);
		int *fds = (int *)CMSG_DATA(c);
		for (unsigned i = 0; i < nsend; i++)
			fds[i] = devnull;
	}
	if (sendmsg(sock[1], &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		return 0;

	struct sync_msg msg;
	int fds[SYNC_MAX_FDS + 2];
	unsigned got = 12345;
	int r = sync_recv(sock[0], &msg, with_array ? fds : NULL, max_fds, &got);
	if (r == 0) {
		if (msg.type == 0 || msg.type >= SYNC_TYPE_MAX || got > max_fds ||
		    (!with_array && got) || !memchr(msg.step, '\0', sizeof(msg.step)) ||
		    !memchr(msg.text, '\0', sizeof(msg.text)) || len != sizeof(msg) || got != nsend)
			abort();
		for (unsigned i = 0; i < got; i++)
			if (fcntl(fds[i], F_GETFD) != FD_CLOEXEC || close(fds[i]) < 0)
				abort();
	} else if (got != 0 && got != 12345) {
		abort();
	}
	if (count_fds() != before) {
		fprintf(stderr, "sync_recv returned %d and left %d descriptors open\n", r,
		        count_fds() - before);
		abort();
	}
	return 0;
}
