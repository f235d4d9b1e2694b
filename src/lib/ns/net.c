/* net.c: the sandbox's network namespace: loopback only, and the listeners warden serves
 * from the host side (proxy mode, the model gateway). */
#define _GNU_SOURCE
#include "ns.h"
#include "../netserve.h"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

int ns_net_loopback_up(struct warden_error **err)
{
	_cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr = {0};
	if (s < 0)
		return warden_error_set(err, errno, "socket");
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return warden_error_set(err, errno, "reading lo flags");
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		return warden_error_set(err, errno, "bringing lo up");
	return 0;
}

static int listener(int type, uint16_t port, struct warden_error **err)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons(port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1;
	_cleanup_close_ int fd = socket(AF_INET, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return warden_error_set(err, errno, "socket");
	if (type == SOCK_STREAM && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		return warden_error_set(err, errno, "SO_REUSEADDR");
	/* Accepted connections inherit it: a relay or a streamed answer written in pieces
	 * must not wait for the sandbox's delayed ACK (40 ms per piece). */
	if (type == SOCK_STREAM && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		return warden_error_set(err, errno, "TCP_NODELAY");
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		return warden_error_set(err, errno, "binding 127.0.0.1:%u", port);
	if (type == SOCK_STREAM && listen(fd, SOMAXCONN) < 0)
		return warden_error_set(err, errno, "listening on 127.0.0.1:%u", port);
	return TAKE_FD(fd);
}

int ns_net_listeners(const struct warden_plan *plan, int fds[WARDEN_NET_LISTENERS],
                     struct warden_error **err)
{
	struct warden_net_listener_spec want[WARDEN_NET_LISTENERS];
	warden_netserve_listeners(plan, want);
	for (int i = 0; i < WARDEN_NET_LISTENERS; i++) {
		fds[i] = -1;
		if (want[i].on && (fds[i] = listener(want[i].udp ? SOCK_DGRAM : SOCK_STREAM,
		                                     want[i].port, err)) < 0) {
			for (int j = 0; j < i; j++)
				closep(&fds[j]);
			return -1;
		}
	}
	return 0;
}
