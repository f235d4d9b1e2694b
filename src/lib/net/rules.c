/* rules.c: egress rules (network.allow / network.deny): parsing, matching, and the
 * addresses that are never reached unless a rule names them.
 *
 * Sections: parsing; matching; special addresses.
 */
#define _GNU_SOURCE
#include "egress.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>

/* ---- parsing --------------------------------------------------------------------------- */

/* RFC 1123 host names: labels of 1-63 letters, digits and hyphens, not starting or ending
 * with a hyphen; 253 bytes in all. Lower-cased in place. */
static bool domain_valid(char *d, const char **why)
{
	size_t len = strlen(d), label = 0;
	if (len == 0 || len > 253) {
		*why = len ? "name longer than 253 bytes" : "empty name";
		return false;
	}
	for (size_t i = 0; i <= len; i++) {
		char c = d[i];
		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63) {
				*why = label ? "a label longer than 63 bytes" : "an empty label";
				return false;
			}
			if (d[i - 1] == '-' || d[i - label] == '-') {
				*why = "a label starts or ends with '-'";
				return false;
			}
			label = 0;
			continue;
		}
		if (c >= 'A' && c <= 'Z')
			d[i] = (char)(c - 'A' + 'a');
		else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
			*why = c == '*' ? "'*' only as a whole first label (*.example.com)"
			                : "not a host name (letters, digits, '-' and '.')";
			return false;
		}
		label++;
	}
	return true;
}

int warden_egress_name_check(char *name, const char **ret_why)
{
	size_t len = strlen(name);
	if (len > 1 && name[len - 1] == '.')
		name[len - 1] = '\0'; /* the root's dot: "example.com." is example.com */
	return domain_valid(name, ret_why) ? 0 : -1;
}

/* Whether s reads as an address rule rather than a name: a bracketed IPv6 address, a
 * network, "*:PORT", or something inet_pton takes. */
static bool looks_like_address(const char *s)
{
	char host[64];
	size_t n = strcspn(s, "/:");
	if (s[0] == '[' || strchr(s, '/') || strncmp(s, "*:", 2) == 0)
		return true;
	if (strchr(s + n + (s[n] == ':'), ':')) /* two colons: a bare IPv6 address */
		return true;
	if (n >= sizeof(host))
		return false;
	memcpy(host, s, n);
	host[n] = '\0';
	uint8_t buf[16];
	return inet_pton(AF_INET, host, buf) == 1;
}

int warden_egress_rule_parse(const char *s, struct warden_egress_rule *ret, const char **ret_why)
{
	memset(ret, 0, sizeof(*ret));
	if (looks_like_address(s)) {
		if (warden_net_parse(s, &ret->net, ret_why) < 0)
			return -1;
		ret->text = xstrdup(s);
		return 0;
	}
	_cleanup_free_ char *d = xstrdup(s);
	char *colon = strrchr(d, ':');
	if (colon) {
		uint64_t port;
		if (parse_uint(colon + 1, 65535, &port, ret_why) < 0 || port == 0) {
			*ret_why = "bad port (1-65535)";
			return -1;
		}
		ret->net.port = (uint16_t)port;
		*colon = '\0';
	}
	char *name = d;
	if (strncmp(name, "*.", 2) == 0) {
		ret->wildcard = true;
		name += 2;
	}
	if (warden_egress_name_check(name, ret_why) < 0)
		return -1;
	ret->domain = xstrdup(name);
	ret->text = xstrdup(s);
	return 0;
}

void warden_egress_rule_clear(struct warden_egress_rule *r)
{
	free(r->text);
	free(r->domain);
	memset(r, 0, sizeof(*r));
}

void warden_egress_rules_clear(struct warden_egress_rules *rs)
{
	for (size_t i = 0; i < rs->n; i++)
		warden_egress_rule_clear(&rs->v[i]);
	free(rs->v);
	rs->v = NULL;
	rs->n = 0;
}

void warden_egress_rules_copy(struct warden_egress_rules *dst,
                              const struct warden_egress_rules *src)
{
	warden_egress_rules_clear(dst);
	dst->v = src->n ? xcalloc(src->n, sizeof(*dst->v)) : NULL;
	dst->n = src->n;
	for (size_t i = 0; i < src->n; i++) {
		dst->v[i] = src->v[i];
		dst->v[i].text = xstrdup(src->v[i].text);
		dst->v[i].domain = src->v[i].domain ? xstrdup(src->v[i].domain) : NULL;
	}
}

/* ---- matching -------------------------------------------------------------------------- */

static bool name_matches(const struct warden_egress_rule *r, const char *name)
{
	if (!r->wildcard)
		return streq(name, r->domain);
	/* "*.example.com": a name strictly below example.com, ending at a label boundary */
	size_t n = strlen(name), d = strlen(r->domain);
	return n > d + 1 && name[n - d - 1] == '.' && streq(name + n - d, r->domain);
}

static const struct warden_egress_rule *match_name(const struct warden_egress_rules *rs,
                                                   const char *name, uint16_t port, bool any_port)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < rs->n; i++) {
		const struct warden_egress_rule *r = &rs->v[i];
		if (r->domain && (any_port || !r->net.port || r->net.port == port) &&
		    name_matches(r, name))
			return r;
	}
	return NULL;
}

const struct warden_egress_rule *warden_egress_match_name(const struct warden_egress_rules *rs,
                                                          const char *name, uint16_t port)
{
	return match_name(rs, name, port, false);
}

const struct warden_egress_rule *
warden_egress_match_name_any_port(const struct warden_egress_rules *rs, const char *name)
{
	return match_name(rs, name, 0, true);
}

const struct warden_egress_rule *warden_egress_match_addr(const struct warden_egress_rules *rs,
                                                          int family, const uint8_t *addr,
                                                          uint16_t port)
{
	for (size_t i = 0; i < rs->n; i++) {
		const struct warden_egress_rule *r = &rs->v[i];
		if (!r->domain && warden_net_match(&r->net, family, addr, port))
			return r;
	}
	return NULL;
}

/* ---- special addresses ----------------------------------------------------------------- */

struct special {
	uint8_t net[4];
	unsigned prefix;
	const char *why;
};

/* IPv4 ranges no agent needs to reach by default: each is either this host, the local
 * network, or infrastructure (metadata services answer credentials to whoever asks). */
static const struct special special4[] = {
    {{169, 254, 169, 254}, 32, "cloud metadata address"},
    {{100, 100, 100, 200}, 32, "cloud metadata address"},
    {{0, 0, 0, 0}, 8, "unspecified address"},
    {{10, 0, 0, 0}, 8, "private address"},
    {{100, 64, 0, 0}, 10, "shared (CGNAT) address"},
    {{127, 0, 0, 0}, 8, "loopback address"},
    {{169, 254, 0, 0}, 16, "link-local address"},
    {{172, 16, 0, 0}, 12, "private address"},
    {{192, 0, 0, 0}, 24, "IETF protocol address"},
    {{192, 168, 0, 0}, 16, "private address"},
    {{198, 18, 0, 0}, 15, "benchmarking address"},
    {{224, 0, 0, 0}, 4, "multicast address"},
    {{240, 0, 0, 0}, 4, "reserved address"},
};

static bool in_prefix(const uint8_t *a, const uint8_t *net, unsigned prefix)
{
	struct warden_net n = {.family = AF_INET, .prefix = prefix};
	memcpy(n.addr, net, 4);
	return warden_net_match(&n, AF_INET, a, 0);
}

static const char *special_v4(const uint8_t *a)
{
	for (size_t i = 0; i < ARRAY_SIZE(special4); i++)
		if (in_prefix(a, special4[i].net, special4[i].prefix))
			return special4[i].why;
	return NULL;
}

/* The host's own addresses, refreshed at most once a second: a service bound to a host
 * address (not loopback) is as much "this host" as one on 127.0.0.1. */
static bool is_own_address(int family, const uint8_t *addr)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static struct ifaddrs *ifs;
	static time_t taken;
	bool found = false;
	pthread_mutex_lock(&lock);
	time_t now = time(NULL);
	if (!ifs || now != taken) {
		if (ifs)
			freeifaddrs(ifs);
		if (getifaddrs(&ifs) < 0)
			ifs = NULL;
		taken = now;
	}
	for (struct ifaddrs *i = ifs; i && !found; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != family)
			continue;
		const void *own =
		    family == AF_INET
		        ? (const void *)&((struct sockaddr_in *)i->ifa_addr)->sin_addr
		        : (const void *)&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
		found = memcmp(own, addr, family == AF_INET ? 4 : 16) == 0;
	}
	pthread_mutex_unlock(&lock);
	return found;
}

const char *warden_egress_special_addr(int family, const uint8_t *addr)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b};
	static const uint8_t nat64_local[6] = {0x00, 0x64, 0xff, 0x9b, 0x00, 0x01};
	static const uint8_t zero[16];
	if (family == AF_INET) {
		const char *why = special_v4(addr);
		if (why)
			return why;
		return is_own_address(AF_INET, addr) ? "this host's address" : NULL;
	}
	if (family != AF_INET6)
		return "not an IP address";
	/* IPv6 forms that carry an IPv4 address reach that address: they are judged by it
	 * (mapped ::ffff:a.b.c.d, the NAT64 prefix 64:ff9b::/96, the deprecated compatible
	 * form ::a.b.c.d, and 6to4 2002:AABB:CCDD::). */
	if (memcmp(addr, mapped, 12) == 0 || memcmp(addr, nat64, 12) == 0)
		return warden_egress_special_addr(AF_INET, addr + 12);
	if (memcmp(addr, zero, 12) == 0 && (addr[12] || addr[13] || addr[14] || addr[15] > 1))
		return warden_egress_special_addr(AF_INET, addr + 12);
	if (addr[0] == 0x20 && addr[1] == 0x02) {
		const char *why = special_v4(addr + 2);
		if (why)
			return why;
	}
	if (memcmp(addr, zero, 15) == 0)
		return addr[15] == 1 ? "loopback address" : "unspecified address";
	/* The local-use NAT64 prefix 64:ff9b:1::/48 (RFC 8215) puts the IPv4 address at a
	 * place that depends on the translator's prefix length: it reaches whatever the
	 * local translator reaches, private networks included. */
	if (memcmp(addr, nat64_local, 6) == 0)
		return "NAT64 local-use address";
	if (addr[0] == 0xfe && (addr[1] & 0xc0) == 0x80)
		return "link-local address";
	if (addr[0] == 0xfe && (addr[1] & 0xc0) == 0xc0)
		return "site-local (private) address";
	if ((addr[0] & 0xfe) == 0xfc)
		return "unique local (private) address";
	if (addr[0] == 0xff)
		return "multicast address";
	return is_own_address(AF_INET6, addr) ? "this host's address" : NULL;
}
