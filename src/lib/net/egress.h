/* egress.h: the host side of a sandbox's network in `network.mode: proxy`.
 *
 * The sandbox has only loopback. warden's init binds listening sockets inside the
 * sandbox's network namespace (an HTTP proxy, a SOCKS5 proxy, a DNS server) and hands
 * them to the supervisor, which serves them here, on a libevent event_base, from the
 * host's network namespace: every destination is checked against the policy's allow and
 * deny rules by name, resolved on the host, checked again by address, and connected to
 * at exactly the address that was checked.
 *
 * Threading: everything here runs on the thread that runs the event_base; callbacks are
 * called on it. Error contract: see error.h. Nothing here prints.
 */
#ifndef WARDEN_NET_EGRESS_H
#define WARDEN_NET_EGRESS_H

#include "../error.h"
#include "../policy.h"

#include <stdbool.h>
#include <stdint.h>

struct event_base;

/* The ports the listeners have inside the sandbox (on 127.0.0.1). */
#define WARDEN_PROXY_HTTP_PORT  3128
#define WARDEN_PROXY_SOCKS_PORT 1080
#define WARDEN_PROXY_DNS_PORT   53

/* ---- rules (rules.c) ------------------------------------------------------------------- */

/* Parse one rule as written in a policy: "example.com", "*.example.com", "example.com:443",
 * "10.0.0.0/8", "192.168.1.10:8080", "[2001:db8::]/32:443", "[::1]:8080". Names are checked
 * (RFC 1123 labels, at most 253 bytes; lower-cased), ports are 1-65535. On error returns
 * -1 and sets *ret_why to a static explanation. ret is owned by the caller
 * (warden_egress_rule_clear). */
int warden_egress_rule_parse(const char *s, struct warden_egress_rule *ret, const char **ret_why);
/* Check a host name as rules and destinations are checked (RFC 1123, at most 253 bytes),
 * lower-casing it and dropping a trailing dot, in place. Returns 0, or -1 with a static
 * explanation. */
int warden_egress_name_check(char *name, const char **ret_why);
void warden_egress_rule_clear(struct warden_egress_rule *r);
void warden_egress_rules_clear(struct warden_egress_rules *rs);
void warden_egress_rules_copy(struct warden_egress_rules *dst,
                              const struct warden_egress_rules *src);

/* The first rule of rs that a name (lower case, no trailing dot; NULL when the destination
 * was given as an address) with port matches by name: domain rules only. NULL if none.
 * Port 0 matches only the rules without a port. */
const struct warden_egress_rule *warden_egress_match_name(const struct warden_egress_rules *rs,
                                                          const char *name, uint16_t port);
/* The same, whatever port the rules are limited to (a DNS question has no port). */
const struct warden_egress_rule *
warden_egress_match_name_any_port(const struct warden_egress_rules *rs, const char *name);
/* The first rule of rs that an address (family AF_INET/AF_INET6, addr in network order)
 * with port matches: address rules only. NULL if none. */
const struct warden_egress_rule *warden_egress_match_addr(const struct warden_egress_rules *rs,
                                                          int family, const uint8_t *addr,
                                                          uint16_t port);

/* Addresses refused unless an allow rule names them (by address or network): loopback,
 * link-local (incl. 169.254.169.254, the cloud metadata address), private and
 * unique-local ranges, CGNAT, multicast, unspecified, IPv4-mapped forms of all those, and
 * the host's own addresses. Returns the reason ("private address", "metadata address",
 * "this host's address", ...) or NULL for an ordinary public address. */
const char *warden_egress_special_addr(int family, const uint8_t *addr);

/* ---- the proxies (egress.c) ------------------------------------------------------------ */

/* One decision: made when a destination is refused (final at once) or allowed (reported
 * again, final, when the connection ends, with its byte counts and duration). */
struct warden_egress_decision {
	const char *proto;   /* "http" (absolute-URI request), "connect", "socks5", "dns" */
	const char *host;    /* the name or address literal asked for */
	uint16_t port;       /* 0 for dns */
	const char *address; /* the address connected to (or answered, for dns), or NULL */
	bool allowed;
	bool final;           /* the last report for this connection or query */
	const char *rule;     /* the rule that decided (its text), or NULL */
	const char *reason;   /* why refused: "denied by rule", "not in the allow list",
	                         "private address 10.1.2.3", "TLS server name x does not match
	                         CONNECT host y", "could not resolve", ...; for an allowed
	                         destination that could not be reached (final, no bytes), why:
	                         "could not connect: Connection refused"; NULL otherwise */
	uint64_t bytes_out;   /* sandbox -> destination, when final */
	uint64_t bytes_in;    /* destination -> sandbox, when final */
	uint64_t duration_us; /* from the request to the end, when final */
};

struct warden_egress_opts {
	const struct warden_egress_rules *allow; /* not copied: must outlive the egress */
	const struct warden_egress_rules *deny;
	/* Listening sockets made inside the sandbox (already bound and listening; UDP for
	 * dns), each taken over (closed by warden_egress_free); -1 where not served. */
	int http_fd, socks_fd, dns_fd;
	/* Name resolution on the host: a hosts file consulted first (NULL: none; tests point
	 * names at their own addresses with it) and the name servers ("IP" or "IP:PORT";
	 * NULL: those of the host's /etc/resolv.conf). */
	const char *hosts_file;
	const char *const *nameservers;
	/* Seconds before a connect, a resolution or an idle tunnel is given up (0: 30, 10,
	 * 600). */
	unsigned connect_timeout_s, resolve_timeout_s, idle_timeout_s;
	void (*on_decision)(const struct warden_egress_decision *d, void *ctx);
	void *ctx;
};

struct warden_egress;

/* Serve the listening sockets of o on base (docs/egress.md). Returns NULL with *err when
 * a socket, the name servers or the hosts file cannot be used. */
struct warden_egress *warden_egress_new(struct event_base *base, const struct warden_egress_opts *o,
                                        struct warden_error **err);
/* Close the listeners and every connection (each allowed connection still open is
 * reported final). Resolutions in flight are cancelled; the resolver is released from the
 * event loop once their cancellations come back, so keep running base for a moment (or
 * accept that little leak when freeing base next). Not from on_decision. NULL-safe. */
void warden_egress_free(struct warden_egress *eg);

#endif
