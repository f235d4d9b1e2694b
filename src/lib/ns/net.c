/* net.c: the sandbox's network namespace: loopback only. */
#define _GNU_SOURCE
#include "ns.h"

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
