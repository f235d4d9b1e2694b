/* net.c: the sandbox's network namespace: loopback only, and the listeners warden serves
 * from the host side (proxy mode, the model gateway). */
#define _GNU_SOURCE
#include "ns.h"
#include "../netserve.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#ifndef IFLA_GSO_IPV4_MAX_SIZE
#define IFLA_GSO_IPV4_MAX_SIZE 63 /* Linux 6.3 */
#endif
/* The largest packet loopback takes (GSO_MAX_SIZE, 8 x 65535): BIG TCP. */
#define LO_GSO_MAX 524280u

/* On loopback a TCP stream costs per packet as well as per byte (every packet is a
 * transmit, a receive and their wake-ups), and TCP builds packets of at most the device's
 * GSO size, 64 KiB by default. Packets of up to 512 KiB (BIG TCP) took a transfer between
 * two programs on the sandbox's loopback from 5556 to 6754 MB/s here; for the proxy's
 * tunnels, whose other half is the host's lo, the difference is within the noise
 * (docs/benchmarks.md, "Network"). Only this namespace's lo is changed, never the host's.
 * Best effort, with no report: a kernel without BIG TCP refuses the size or ignores the
 * IPv4 attribute, and lo works as it would have. One RTM_NEWLINK request, processed
 * while it is sent; no answer is asked for. */
static void loopback_big_packets(unsigned ifindex)
{
	struct {
		struct nlmsghdr n;
		struct ifinfomsg i;
		char attrs[2 * RTA_SPACE(sizeof(uint32_t))];
	} req = {
	    .n = {.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg)),
	          .nlmsg_type = RTM_NEWLINK,
	          .nlmsg_flags = NLM_F_REQUEST},
	    .i = {.ifi_family = AF_UNSPEC, .ifi_index = (int)ifindex},
	};
	const unsigned short types[] = {IFLA_GSO_MAX_SIZE, IFLA_GSO_IPV4_MAX_SIZE};
	const uint32_t size = LO_GSO_MAX;
	for (size_t k = 0; k < ARRAY_SIZE(types); k++) {
		struct rtattr *a = (struct rtattr *)((char *)&req + NLMSG_ALIGN(req.n.nlmsg_len));
		a->rta_type = types[k];
		a->rta_len = RTA_LENGTH(sizeof(size));
		memcpy(RTA_DATA(a), &size, sizeof(size));
		req.n.nlmsg_len = NLMSG_ALIGN(req.n.nlmsg_len) + RTA_ALIGN(a->rta_len);
	}
	_cleanup_close_ int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (s >= 0)
		(void)!send(s, &req, req.n.nlmsg_len, 0);
}

/* BBR, a common host default that a new network namespace inherits, paces: it spaces a
 * connection's packets out with a timer. On the sandbox's loopback there is no queue to
 * pace for, only the cost: a timer programmed per burst and the wake-ups it brings (on
 * some hypervisors each programming is a trap). The tunnels' relay -> client half paid it
 * on every burst: a CONNECT transfer went from under half of a direct transfer to
 * 0.92-0.98 of it without it (docs/benchmarks.md, "Network"). So every TCP connection on
 * this namespace's loopback, the agent's own included, uses Reno: the one algorithm a
 * namespace other than the host's may always make its default (the kernel refuses
 * algorithms missing from the host's tcp_allowed_congestion_control, which always lists
 * reno), and on a link with neither loss nor delay it does what CUBIC would. The sysctl
 * is per namespace and this one resolves to the caller's: only called in the sandbox's
 * own network namespace, the host's setting is never touched. Best effort, like the
 * packet size: without a /proc to write to, lo keeps the inherited algorithm. */
static void loopback_congestion(void)
{
	(void)write_file_at(AT_FDCWD, "/proc/sys/net/ipv4/tcp_congestion_control", "reno");
}

/* Before the sandbox's /proc replaces the host's (its /proc/sys is read-only). */
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
	if (ioctl(s, SIOCGIFINDEX, &ifr) == 0)
		loopback_big_packets((unsigned)ifr.ifr_ifindex);
	loopback_congestion();
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
