/* egress.c: the egress proxies of `network.mode: proxy`: what every destination goes
 * through, whichever front end (egress-http.c, egress-socks.c) asked for it.
 *
 * A request names a destination (egress_dest); its name is checked against the deny and
 * allow rules, resolved on the host, and every address is checked again; the proxy then
 * connects to exactly the addresses it checked, in turn, and relays bytes both ways.
 * Every decision is reported (docs/egress.md, "Decisions").
 *
 * Sections: decisions; checks; resolution; connections (life cycle, deadlines, closing);
 * destinations (check, resolve, TLS ClientHello, connect); relaying; the egress.
 */
#define _GNU_SOURCE
#include "egress-internal.h"

#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

/* ---- decisions ------------------------------------------------------------------------- */

uint64_t egress_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

void egress_report(struct warden_egress *eg, const struct warden_egress_decision *d)
{
	if (eg->on_decision)
		eg->on_decision(d, eg->ctx);
}

static void conn_report(struct egress_conn *c, bool allowed, bool final, const char *reason,
                        const char *rule)
{
	struct warden_egress_decision d = {
	    .proto = c->kind,
	    .host = c->host,
	    .port = c->port,
	    .address = c->address[0] ? c->address : NULL,
	    .allowed = allowed,
	    .final = final,
	    .rule = rule,
	    .reason = reason,
	    .bytes_out = c->bytes_out,
	    .bytes_in = c->bytes_in,
	    .duration_us = final ? egress_now_us() - c->t0 : 0,
	};
	egress_report(c->eg, &d);
}

void egress_printable(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f || *s == '"' ||
		    *s == '\\')
			*s = '?';
}

/* ---- checks ---------------------------------------------------------------------------- */

bool egress_parse_literal(const char *s, struct egress_addr *ret)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	if (inet_pton(AF_INET, s, ret->addr) == 1) {
		ret->family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, s, ret->addr) != 1)
		return false;
	ret->family = AF_INET6;
	/* ::ffff:a.b.c.d is a.b.c.d: a socket connected to it speaks IPv4 to that address, so
	 * the IPv4 rules judge it */
	if (memcmp(ret->addr, mapped, sizeof(mapped)) == 0) {
		memmove(ret->addr, ret->addr + 12, 4);
		ret->family = AF_INET;
	}
	return true;
}

static void addr_from_sockaddr(const struct sockaddr *sa, struct egress_addr *ret)
{
	char text[INET6_ADDRSTRLEN];
	const void *a = sa->sa_family == AF_INET
	                    ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
	                    : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
	inet_ntop(sa->sa_family, a, text, sizeof(text));
	egress_parse_literal(text, ret);
}

/* The IPv4 address an IPv6 address is translated to on the way: NAT64 (64:ff9b::/96) and
 * 6to4 (2002::/16). A deny rule on the IPv4 address refuses those forms too. */
static const uint8_t *embedded_v4(const struct egress_addr *a)
{
	static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b};
	if (a->family != AF_INET6)
		return NULL;
	if (memcmp(a->addr, nat64, sizeof(nat64)) == 0)
		return a->addr + 12;
	if (a->addr[0] == 0x20 && a->addr[1] == 0x02)
		return a->addr + 2;
	return NULL;
}

/* An allow rule that names this address itself (an address or a network, not "*:PORT"):
 * the only thing that lets a special address through. Port 0 (DNS): whatever port the
 * rule is limited to. */
static const struct warden_egress_rule *allow_names_addr(const struct warden_egress *eg,
                                                         const struct egress_addr *a, uint16_t port)
{
	for (size_t i = 0; i < eg->allow->n; i++) {
		const struct warden_egress_rule *r = &eg->allow->v[i];
		struct warden_net net = r->net;
		if (r->domain || net.family == AF_UNSPEC)
			continue;
		if (!port)
			net.port = 0;
		if (warden_net_match(&net, a->family, a->addr, port))
			return r;
	}
	return NULL;
}

const char *egress_check_addr(const struct warden_egress *eg, struct egress_addr *a, uint16_t port,
                              bool literal, const char **ret_rule, char *why, size_t why_len)
{
	char text[INET6_ADDRSTRLEN];
	inet_ntop(a->family, a->addr, text, sizeof(text));
	*ret_rule = NULL;
	/* deny wins over every allow rule */
	const struct warden_egress_rule *r =
	    warden_egress_match_addr(eg->deny, a->family, a->addr, port);
	const uint8_t *v4 = embedded_v4(a);
	if (!r && v4)
		r = warden_egress_match_addr(eg->deny, AF_INET, v4, port);
	if (r) {
		*ret_rule = r->text;
		snprintf(why, why_len, "denied by rule (address %s)", text);
		return why;
	}
	/* Loopback, private networks, link-local and the metadata address, this host's own
	 * addresses: what a sandbox must not reach because a name it may use resolves there
	 * (by accident, or on purpose: DNS rebinding). Only a rule naming the address itself
	 * opens it; neither a name rule nor "*:443" does. */
	const char *special = warden_egress_special_addr(a->family, a->addr);
	if (special) {
		r = allow_names_addr(eg, a, port);
		if (!r) {
			snprintf(why, why_len, "%s %s", special, text);
			return why;
		}
	}
	if (literal) {
		/* An address asked for as such skips every name rule, so only an address rule
		 * may allow it: "example.com" does not allow connecting to its address. */
		if (!r)
			r = warden_egress_match_addr(eg->allow, a->family, a->addr, port);
		if (!r) {
			snprintf(why, why_len,
			         "not in the allow list (an address needs an address rule)");
			return why;
		}
		*ret_rule = r->text;
	}
	return NULL;
}

const char *egress_check_name(const struct warden_egress *eg, const char *name, uint16_t port,
                              const char **ret_rule)
{
	const struct warden_egress_rule *r = warden_egress_match_name(eg->deny, name, port);
	*ret_rule = NULL;
	if (r) {
		*ret_rule = r->text;
		return "denied by rule";
	}
	r = port ? warden_egress_match_name(eg->allow, name, port)
	         : warden_egress_match_name_any_port(eg->allow, name);
	if (!r)
		return "not in the allow list";
	*ret_rule = r->text;
	return NULL;
}

/* ---- resolution ------------------------------------------------------------------------ */

struct resolve {
	struct warden_egress *eg;
	struct evdns_getaddrinfo_request *req; /* NULL once evdns answered */
	struct event *answered;
	int family, err;
	struct evutil_addrinfo *ai;
	egress_resolved done; /* NULL once cancelled */
	void *owner;
};

static void egress_release(struct warden_egress *eg)
{
	if (eg->dns)
		evdns_base_free(eg->dns, 0);
	free(eg);
}

static void resolve_answer(int err, struct evutil_addrinfo *ai, void *arg)
{
	struct resolve *r = arg;
	r->req = NULL;
	r->err = err;
	r->ai = ai;
	/* evdns answers from inside evdns_getaddrinfo() when the hosts file knows the name:
	 * hand the answer over from the loop, so that no caller is ever re-entered */
	event_active(r->answered, EV_TIMEOUT, 1);
}

static void resolve_deliver(evutil_socket_t fd _unused_, short what _unused_, void *arg)
{
	struct resolve *r = arg;
	struct warden_egress *eg = r->eg;
	if (r->done)
		r->done(r->owner, r->family, r->err, TAKE_PTR(r->ai));
	if (r->ai)
		evutil_freeaddrinfo(r->ai);
	event_free(r->answered);
	free(r);
	/* The resolver is freed only when no answer is due any more: libevent's evdns touches
	 * its base when a cancelled request comes back. */
	if (--eg->resolving == 0 && eg->dying)
		egress_release(eg);
}

struct resolve *egress_resolve(struct warden_egress *eg, const char *name, int family,
                               egress_resolved done, void *owner)
{
	struct resolve *r = xcalloc(1, sizeof(*r));
	struct evutil_addrinfo hints = {
	    .ai_family = family,
	    .ai_socktype = SOCK_STREAM,
	    .ai_protocol = IPPROTO_TCP,
	};
	r->eg = eg;
	r->family = family;
	r->done = done;
	r->owner = owner;
	r->answered = event_new(eg->base, -1, 0, resolve_deliver, r);
	if (!r->answered)
		abort();
	eg->resolving++;
	r->req = evdns_getaddrinfo(eg->dns, name, NULL, &hints, resolve_answer, r);
	return r;
}

void egress_resolve_cancel(struct resolve *r)
{
	if (!r)
		return;
	r->done = NULL;
	/* the cancelled request still answers (EVUTIL_EAI_CANCEL), and that frees r */
	if (r->req)
		evdns_getaddrinfo_cancel(r->req);
}

/* ---- connections ----------------------------------------------------------------------- */

static void client_read(struct bufferevent *bev, void *arg);
static void client_write(struct bufferevent *bev, void *arg);
static void client_event(struct bufferevent *bev, short what, void *arg);

static void deadline(struct egress_conn *c, const struct timeval *tv)
{
	evtimer_add(c->timer, tv);
}

void egress_touch(struct egress_conn *c)
{
	deadline(c, &c->eg->idle_tv);
}

/* A tunnel with nothing buffered moves to splice(2) (egress-splice.c). */
static void maybe_splice(struct egress_conn *c)
{
	if (egress_splice_ready(c))
		(void)egress_splice_start(c);
}

static void deadline_s(struct egress_conn *c, time_t seconds)
{
	struct timeval tv = {.tv_sec = seconds};
	deadline(c, &tv);
}

static void drop_upstream(struct egress_conn *c)
{
	if (c->up)
		bufferevent_free(c->up);
	c->up = NULL;
}

void egress_conn_free(struct egress_conn *c)
{
	struct warden_egress *eg = c->eg;
	if (c->started)
		conn_report(c, true, true, NULL, c->rule);
	if (c->prev)
		c->prev->next = c->next;
	else
		eg->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	eg->n_conns--;
	egress_resolve_cancel(c->resolve4);
	egress_resolve_cancel(c->resolve6);
	sni_free(c->sni);
	egress_splice_free(c);
	if (c->http) {
		http_req_clear(c->http);
		free(c->http);
	}
	drop_upstream(c);
	bufferevent_free(c->client);
	event_free(c->timer);
	free(c);
}

static bool client_flushed(const struct egress_conn *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->client)) == 0;
}

/* Closing: once the last answer is out, the client gets a FIN and whatever it still
 * sends is read and dropped until it closes too (or EGRESS_CLOSE_S pass): closing a
 * socket with unread bytes sends a reset, which can destroy the answer in flight. */
static void closing_flush(struct egress_conn *c)
{
	if (c->client_shut || !client_flushed(c))
		return;
	shutdown(bufferevent_getfd(c->client), SHUT_WR);
	c->client_shut = true;
	if (c->client_eof)
		egress_conn_free(c);
}

void egress_close(struct egress_conn *c)
{
	if (c->started) {
		conn_report(c, true, true, NULL, c->rule);
		c->started = false;
	}
	egress_resolve_cancel(c->resolve4);
	egress_resolve_cancel(c->resolve6);
	c->resolve4 = c->resolve6 = NULL;
	sni_free(c->sni);
	c->sni = NULL;
	drop_upstream(c);
	c->phase = EGRESS_CLOSING;
	bufferevent_setwatermark(c->client, EV_READ, 0, 0);
	bufferevent_setwatermark(c->client, EV_WRITE, 0, 0);
	if (!c->client_eof)
		bufferevent_enable(c->client, EV_READ);
	deadline_s(c, EGRESS_CLOSE_S);
	closing_flush(c);
}

static void answer_and_close(struct egress_conn *c, enum egress_fail f, const char *reason,
                             const char *rule)
{
	c->proto->fail(c, f, reason, rule);
	egress_close(c);
}

void egress_refuse(struct egress_conn *c, enum egress_fail f, const char *reason, const char *rule)
{
	/* a decision is about a destination: none for a request too broken to name one */
	if (c->host[0])
		conn_report(c, false, true, reason, rule);
	answer_and_close(c, f, reason, rule);
}

static void connect_next(struct egress_conn *c);
static void resolve_done(struct egress_conn *c);
static void resolved(void *owner, int family, int err, struct evutil_addrinfo *ai);
static void relay_eof(struct egress_conn *c);

static void conn_deadline(evutil_socket_t fd _unused_, short what _unused_, void *arg)
{
	struct egress_conn *c = arg;
	switch (c->phase) {
	case EGRESS_REQUEST:
		answer_and_close(c, EGRESS_FAIL_REQUEST_TIMEOUT, "no complete request in time",
		                 NULL);
		return;
	case EGRESS_RESOLVE:
		egress_resolve_cancel(c->resolve4);
		egress_resolve_cancel(c->resolve6);
		c->resolve4 = c->resolve6 = NULL;
		if (c->n_addrs)
			resolve_done(c); /* one family answered: go with it */
		else
			egress_refuse(c, EGRESS_FAIL_TIMEOUT, "could not resolve: timed out", NULL);
		return;
	case EGRESS_HELLO:
		egress_refuse(c, EGRESS_FAIL_REFUSED, "no complete TLS ClientHello in time", NULL);
		return;
	case EGRESS_CONNECT:
		c->error = 0;
		drop_upstream(c);
		connect_next(c);
		return;
	case EGRESS_RELAY:   /* idle */
	case EGRESS_CLOSING: /* a client that does not take its answer, or does not close */
		egress_conn_free(c);
		return;
	}
}

static void accept_conn(struct warden_egress *eg, evutil_socket_t fd,
                        const struct egress_proto *proto)
{
	/* Each connection holds two descriptors and up to a few hundred KiB: a sandbox that
	 * opens more at once is refused new ones (closed at once) rather than exhausting the
	 * supervisor it shares with nobody but itself. */
	if (eg->n_conns >= EGRESS_MAX_CONNS) {
		close(fd);
		return;
	}
	struct egress_conn *c = xcalloc(1, sizeof(*c));
	c->eg = eg;
	c->proto = proto;
	c->client = bufferevent_socket_new(eg->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->timer = evtimer_new(eg->base, conn_deadline, c);
	if (!c->client || !c->timer)
		abort();
	c->next = eg->conns;
	if (eg->conns)
		eg->conns->prev = c;
	eg->conns = c;
	eg->n_conns++;
	bufferevent_setcb(c->client, client_read, client_write, client_event, c);
	bufferevent_setwatermark(c->client, EV_READ, 0, EGRESS_PENDING_MAX);
	bufferevent_enable(c->client, EV_READ | EV_WRITE);
	deadline_s(c, EGRESS_REQUEST_S);
}

/* ---- destinations ---------------------------------------------------------------------- */

static void hello(struct egress_conn *c);

/* The destination is checked and its addresses are known: connect, or for TLS on port 443
 * first open the tunnel and read the ClientHello. */
static void checked(struct egress_conn *c)
{
	if (c->port != EGRESS_TLS_PORT || c->forward) {
		connect_next(c);
		return;
	}
	c->sni = sni_new(c->eg->tls);
	c->sniffed = true; /* checked here, before connecting */
	c->phase = EGRESS_HELLO;
	c->opened = true;
	c->proto->open(c);
	bufferevent_setwatermark(c->client, EV_READ, 0, EGRESS_HELLO_MAX);
	deadline_s(c, EGRESS_HELLO_S);
	hello(c);
}

void egress_dest(struct egress_conn *c, const char *kind, const char *host, uint16_t port)
{
	char why[160];
	const char *rule, *reason, *bad;
	struct egress_addr a;
	c->kind = kind;
	c->port = port;
	c->t0 = egress_now_us();
	snprintf(c->host, sizeof(c->host), "%s", host);
	egress_printable(c->host); /* reported as asked; nothing valid has those bytes */
	if (strlen(host) >= sizeof(c->host)) {
		egress_refuse(c, EGRESS_FAIL_BAD_REQUEST, "name longer than 253 bytes", NULL);
		return;
	}
	if (!port) {
		egress_refuse(c, EGRESS_FAIL_BAD_REQUEST, "port 0", NULL);
		return;
	}
	if (egress_parse_literal(c->host, &a)) {
		c->literal = true;
		reason = egress_check_addr(c->eg, &a, port, true, &rule, why, sizeof(why));
		if (reason) {
			egress_refuse(c, EGRESS_FAIL_REFUSED, reason, rule);
			return;
		}
		c->rule = rule;
		c->addrs[c->n_addrs++] = a;
		checked(c);
		return;
	}
	if (warden_egress_name_check(c->host, &bad) < 0) {
		snprintf(why, sizeof(why), "not a host name: %s", bad);
		egress_refuse(c, EGRESS_FAIL_BAD_REQUEST, why, NULL);
		return;
	}
	reason = egress_check_name(c->eg, c->host, port, &rule);
	if (reason) {
		egress_refuse(c, EGRESS_FAIL_REFUSED, reason, rule);
		return;
	}
	c->rule = rule;
	/* Resolved only now, on the host, once the name is allowed: a name the policy refuses
	 * never leaves the host as a DNS query (no exfiltration through the resolver). */
	c->phase = EGRESS_RESOLVE;
	deadline(c, &c->eg->resolve_tv);
	c->resolve4 = egress_resolve(c->eg, c->host, AF_INET, resolved, c);
	c->resolve6 = egress_resolve(c->eg, c->host, AF_INET6, resolved, c);
}

/* Keep the addresses that pass the checks, and the reason the first one that did not. */
static void keep_checked(struct egress_conn *c, const struct evutil_addrinfo *ai)
{
	for (; ai; ai = ai->ai_next) {
		struct egress_addr a;
		char why[sizeof(c->refusal)];
		const char *rule;
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		addr_from_sockaddr(ai->ai_addr, &a);
		if (egress_check_addr(c->eg, &a, c->port, false, &rule, why, sizeof(why))) {
			if (!c->refusal[0]) {
				snprintf(c->refusal, sizeof(c->refusal), "%s", why);
				c->refusal_rule = rule;
			}
			continue;
		}
		bool seen = false;
		for (size_t i = 0; i < c->n_addrs && !seen; i++)
			seen = c->addrs[i].family == a.family &&
			       memcmp(c->addrs[i].addr, a.addr, sizeof(a.addr)) == 0;
		if (!seen && c->n_addrs < EGRESS_MAX_ADDRS)
			c->addrs[c->n_addrs++] = a;
	}
}

static void resolved(void *owner, int family, int err, struct evutil_addrinfo *ai)
{
	struct egress_conn *c = owner;
	if (family == AF_INET)
		c->resolve4 = NULL;
	else
		c->resolve6 = NULL;
	if (err && err != EVUTIL_EAI_NODATA && !c->resolve_err)
		c->resolve_err = err;
	keep_checked(c, ai);
	if (ai)
		evutil_freeaddrinfo(ai);
	if (!c->resolve4 && !c->resolve6) {
		resolve_done(c);
		return;
	}
	/* one family answered: the other gets a moment more, not the whole deadline */
	if (c->n_addrs) {
		struct timeval skew = {.tv_sec = EGRESS_RESOLVE_SKEW_S};
		deadline(c, evutil_timercmp(&skew, &c->eg->resolve_tv, <) ? &skew
		                                                          : &c->eg->resolve_tv);
	}
}

static void resolve_done(struct egress_conn *c)
{
	char why[96];
	if (c->n_addrs) {
		checked(c);
		return;
	}
	if (c->refusal[0]) {
		egress_refuse(c, EGRESS_FAIL_REFUSED, c->refusal, c->refusal_rule);
		return;
	}
	snprintf(why, sizeof(why), "could not resolve: %s",
	         c->resolve_err ? evutil_gai_strerror(c->resolve_err) : "no address");
	egress_refuse(c, EGRESS_FAIL_UNRESOLVED, why, NULL);
}

/* The ClientHello of a tunnel must name the host the tunnel was asked for: the policy
 * allowed a name, and a client could otherwise reach any other site sharing the allowed
 * one's addresses (a CDN: "domain fronting"). False when it was refused. */
static bool hello_refuse(struct egress_conn *c, const char *why)
{
	/* In a tunnel already relaying (not port 443), this refusal is its final report. */
	c->started = false;
	egress_refuse(c, EGRESS_FAIL_REFUSED, why, NULL);
	return false;
}

static bool hello_check(struct egress_conn *c, const char *sni)
{
	char why[sizeof(c->host) * 2 + 64], name[256];
	const char *bad;
	struct egress_addr a;
	if (c->literal) {
		/* TLS has no server name for an address (RFC 6066 3): a ClientHello to an
		 * address-literal CONNECT carries none, or, from sloppy clients, the address
		 * itself. Any name would pick a virtual host no rule allowed. */
		if (sni && !(egress_parse_literal(sni, &a) && a.family == c->addrs[0].family &&
		             memcmp(a.addr, c->addrs[0].addr, sizeof(a.addr)) == 0)) {
			snprintf(name, sizeof(name), "%s", sni);
			egress_printable(name);
			snprintf(why, sizeof(why),
			         "TLS server name %s in a tunnel to the address %s", name, c->host);
			return hello_refuse(c, why);
		}
	} else if (!sni) {
		snprintf(why, sizeof(why),
		         "TLS ClientHello without a server name (CONNECT host %s)", c->host);
		return hello_refuse(c, why);
	} else {
		snprintf(name, sizeof(name), "%s", sni);
		if (warden_egress_name_check(name, &bad) < 0 || !streq(name, c->host)) {
			egress_printable(name);
			snprintf(why, sizeof(why),
			         "TLS server name %s does not match CONNECT host %s", name,
			         c->host);
			return hello_refuse(c, why);
		}
	}
	sni_free(c->sni);
	c->sni = NULL;
	return true;
}

/* Client bytes while the ClientHello is awaited: they stay in the input buffer, to be
 * forwarded unchanged once it passed; the parser sees a copy. 1: it passed; 0: more is
 * needed; -1: refused (and closed). */
static int hello_feed(struct egress_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->client);
	size_t len = evbuffer_get_length(in);
	const char *name, *why;
	char reason[96];
	if (len > c->hello_fed) {
		const uint8_t *p = evbuffer_pullup(in, -1);
		int r = sni_feed(c->sni, p + c->hello_fed, len - c->hello_fed, &name, &why);
		c->hello_fed = len;
		if (r == SNI_DONE)
			return hello_check(c, name) ? 1 : -1;
		if (r == SNI_BAD) {
			snprintf(reason, sizeof(reason), "%s on port %u", why, c->port);
			hello_refuse(c, reason);
			return -1;
		}
	}
	if (len >= EGRESS_HELLO_MAX) {
		snprintf(reason, sizeof(reason), "TLS ClientHello larger than %d bytes",
		         EGRESS_HELLO_MAX);
		hello_refuse(c, reason);
		return -1;
	}
	return 0;
}

static void hello(struct egress_conn *c)
{
	if (hello_feed(c) == 1) {
		bufferevent_setwatermark(c->client, EV_READ, 0, EGRESS_PENDING_MAX);
		connect_next(c);
	}
}

/* A tunnel to any other port may carry TLS too: its first client bytes are looked at
 * before any is forwarded, and a ClientHello there is held to the same rule as on port
 * 443 (else "CONNECT allowed.example:8443" fronts for every site on those addresses).
 * Other protocols pass unchanged, and the origin is connected at once, so protocols where
 * the server speaks first are not delayed. True when the client's bytes may go up. */
static bool sniff(struct egress_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->client);
	if (evbuffer_get_length(in) == 0)
		return false;
	if (!c->sni) {
		uint8_t first;
		evbuffer_copyout(in, &first, 1);
		if (first != EGRESS_TLS_HANDSHAKE) {
			c->sniffed = true;
			return true;
		}
		c->sni = sni_new(c->eg->tls);
		bufferevent_setwatermark(c->client, EV_READ, 0, EGRESS_HELLO_MAX);
	}
	if (hello_feed(c) != 1)
		return false;
	c->sniffed = true;
	bufferevent_setwatermark(c->client, EV_READ, 0, 0);
	return true;
}

static void up_read(struct bufferevent *bev, void *arg);
static void up_write(struct bufferevent *bev, void *arg);
static void up_event(struct bufferevent *bev, short what, void *arg);

static socklen_t sockaddr_of(const struct egress_addr *a, uint16_t port,
                             struct sockaddr_storage *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (a->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ret;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, a->addr, 4);
		return sizeof(*sin);
	}
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ret;
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	memcpy(&sin6->sin6_addr, a->addr, 16);
	return sizeof(*sin6);
}

/* The destination was allowed but none of its checked addresses took the connection. */
static void unreachable(struct egress_conn *c)
{
	char why[128];
	if (c->error)
		snprintf(why, sizeof(why), "could not connect: %s", strerror(c->error));
	else
		snprintf(why, sizeof(why), "could not connect: timed out");
	conn_report(c, true, true, why, c->rule);
	answer_and_close(c, c->error ? EGRESS_FAIL_UNREACHABLE : EGRESS_FAIL_TIMEOUT, why, NULL);
}

/* Connect to the next checked address: exactly one that was checked, never a name
 * resolved again (a second resolution could answer differently: DNS rebinding). */
static void connect_next(struct egress_conn *c)
{
	while (c->next_addr < c->n_addrs) {
		const struct egress_addr *a = &c->addrs[c->next_addr++];
		struct sockaddr_storage ss;
		socklen_t len = sockaddr_of(a, c->port, &ss);
		inet_ntop(a->family, a->addr, c->address, sizeof(c->address));
		int fd = socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			c->error = errno;
			continue;
		}
		/* The relay passes on what it gets when it gets it: no Nagle delay added. */
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
		if (connect(fd, (struct sockaddr *)&ss, len) < 0 && errno != EINPROGRESS) {
			c->error = errno;
			close(fd);
			continue;
		}
		c->up = bufferevent_socket_new(c->eg->base, fd, BEV_OPT_CLOSE_ON_FREE);
		if (!c->up)
			abort();
		bufferevent_setcb(c->up, up_read, up_write, up_event, c);
		/* no address: the socket is already connecting, libevent waits for it */
		if (bufferevent_socket_connect(c->up, NULL, 0) < 0) {
			c->error = EVUTIL_SOCKET_ERROR();
			drop_upstream(c);
			continue;
		}
		c->phase = EGRESS_CONNECT;
		deadline(c, &c->eg->connect_tv);
		return;
	}
	unreachable(c);
}

static void relay_client(struct egress_conn *c);

static void connected(struct egress_conn *c)
{
	c->phase = EGRESS_RELAY;
	c->started = true;
	conn_report(c, true, false, NULL, c->rule);
	bufferevent_setwatermark(c->client, EV_READ, 0, 0);
	bufferevent_setwatermark(c->client, EV_WRITE, EGRESS_RELAY_HIGH / 2, 0);
	bufferevent_setwatermark(c->up, EV_WRITE, EGRESS_RELAY_HIGH / 2, 0);
	bufferevent_enable(c->up, EV_READ | EV_WRITE);
	deadline(c, &c->eg->idle_tv);
	if (!c->opened) {
		c->opened = true;
		c->proto->open(c);
	}
	relay_client(c); /* what the client sent while the destination was checked */
}

static void up_event(struct bufferevent *bev _unused_, short what, void *arg)
{
	struct egress_conn *c = arg;
	if (c->phase == EGRESS_CONNECT) {
		if (what & BEV_EVENT_CONNECTED) {
			connected(c);
			return;
		}
		int e = EVUTIL_SOCKET_ERROR();
		c->error = e ? e : ECONNABORTED;
		drop_upstream(c);
		connect_next(c);
		return;
	}
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
		c->up_eof = true;
		relay_eof(c);
		return;
	}
	egress_conn_free(c);
}

/* ---- relaying -------------------------------------------------------------------------- */

void egress_backpressure(struct egress_conn *c)
{
	if (evbuffer_get_length(bufferevent_get_output(c->up)) >= EGRESS_RELAY_HIGH)
		bufferevent_disable(c->client, EV_READ); /* until up_write: it drained */
}

void egress_send_up(struct egress_conn *c, struct evbuffer *from)
{
	c->bytes_out += evbuffer_get_length(from);
	evbuffer_add_buffer(bufferevent_get_output(c->up), from);
	egress_backpressure(c);
}

static void relay_client(struct egress_conn *c)
{
	deadline(c, &c->eg->idle_tv);
	if (c->forward) {
		egress_http_relay(c);
		return;
	}
	if (!c->sniffed && !sniff(c))
		return;
	egress_send_up(c, bufferevent_get_input(c->client));
	if (c->client_eof)
		relay_eof(c);
	else
		maybe_splice(c);
}

static void up_read(struct bufferevent *bev _unused_, void *arg)
{
	struct egress_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(c->up);
	deadline(c, &c->eg->idle_tv);
	c->bytes_in += evbuffer_get_length(in);
	evbuffer_add_buffer(bufferevent_get_output(c->client), in);
	if (evbuffer_get_length(bufferevent_get_output(c->client)) >= EGRESS_RELAY_HIGH)
		bufferevent_disable(c->up, EV_READ); /* until client_write: it drained */
}

/* A side said it has nothing more to send: pass that on once its bytes are out. A
 * forwarded request ends with the origin's answer: the client is closed once it has it. */
static void relay_eof(struct egress_conn *c)
{
	if (c->forward) {
		if (c->up_eof && client_flushed(c))
			egress_close(c);
		return;
	}
	if (c->client_eof && !c->up_shut &&
	    evbuffer_get_length(bufferevent_get_output(c->up)) == 0) {
		shutdown(bufferevent_getfd(c->up), SHUT_WR);
		c->up_shut = true;
	}
	if (c->up_eof && !c->client_shut && client_flushed(c)) {
		shutdown(bufferevent_getfd(c->client), SHUT_WR);
		c->client_shut = true;
	}
	if (c->up_shut && c->client_shut)
		egress_conn_free(c);
}

static void up_write(struct bufferevent *bev _unused_, void *arg)
{
	struct egress_conn *c = arg;
	if (c->phase != EGRESS_RELAY)
		return;
	if (!c->client_eof)
		bufferevent_enable(c->client, EV_READ);
	/* relay_eof frees c only once both sides ended */
	bool open = !c->client_eof || !c->up_eof;
	relay_eof(c);
	if (open)
		maybe_splice(c);
}

static void client_write(struct bufferevent *bev _unused_, void *arg)
{
	struct egress_conn *c = arg;
	if (c->phase == EGRESS_CLOSING) {
		closing_flush(c);
		return;
	}
	if (c->phase != EGRESS_RELAY)
		return;
	if (!c->up_eof)
		bufferevent_enable(c->up, EV_READ);
	bool open = !c->client_eof || !c->up_eof;
	relay_eof(c);
	if (open)
		maybe_splice(c);
}

static void client_read(struct bufferevent *bev _unused_, void *arg)
{
	struct egress_conn *c = arg;
	switch (c->phase) {
	case EGRESS_REQUEST:
		c->proto->request(c);
		return;
	case EGRESS_HELLO:
		hello(c);
		return;
	case EGRESS_RELAY:
		relay_client(c);
		return;
	case EGRESS_CLOSING:
		evbuffer_drain(bufferevent_get_input(c->client), (size_t)-1);
		return;
	case EGRESS_RESOLVE:
	case EGRESS_CONNECT:
		return; /* held until the destination answers, EGRESS_PENDING_MAX at most */
	}
}

static void client_event(struct bufferevent *bev _unused_, short what, void *arg)
{
	struct egress_conn *c = arg;
	if (!(what & BEV_EVENT_EOF) || (what & BEV_EVENT_ERROR)) {
		egress_conn_free(c); /* the client is gone: nobody to answer */
		return;
	}
	c->client_eof = true;
	switch (c->phase) {
	case EGRESS_RELAY:
		if (c->forward && !c->http->complete)
			egress_conn_free(
			    c); /* a request cut short: the origin must not act on it */
		else if (!c->forward && !c->sniffed &&
		         evbuffer_get_length(bufferevent_get_input(c->client)))
			egress_conn_free(c); /* it ended inside a ClientHello: nothing to carry */
		else
			relay_eof(c);
		return;
	case EGRESS_CLOSING:
		if (client_flushed(c))
			egress_conn_free(c);
		return; /* else freed once flushed (closing_flush) or at the deadline */
	case EGRESS_RESOLVE:
	case EGRESS_CONNECT:
		/* A client may send a whole request and say it has nothing more to send before
		 * the answer: a forwarded request goes on, and whether it was complete is
		 * known once its bytes are read (egress_http_relay). A tunnel not yet open has
		 * nothing to carry. */
		if (c->forward)
			return;
		/* fall through */
	case EGRESS_REQUEST:
	case EGRESS_HELLO:
		egress_conn_free(c);
		return;
	}
}

/* ---- the egress ------------------------------------------------------------------------ */

static void http_accept(struct evconnlistener *l _unused_, evutil_socket_t fd,
                        struct sockaddr *sa _unused_, int len _unused_, void *arg)
{
	accept_conn(arg, fd, &egress_http_proto);
}

static void socks_accept(struct evconnlistener *l _unused_, evutil_socket_t fd,
                         struct sockaddr *sa _unused_, int len _unused_, void *arg)
{
	accept_conn(arg, fd, &egress_socks_proto);
}

/* accept() failed for want of descriptors or memory: a listening socket stays readable,
 * so pause accepting for a second rather than spin on it. */
static void accept_error(struct evconnlistener *l, void *arg)
{
	struct warden_egress *eg = arg;
	struct timeval second = {.tv_sec = 1};
	evconnlistener_disable(l);
	evtimer_add(eg->relisten, &second);
}

static void relisten(evutil_socket_t fd _unused_, short what _unused_, void *arg)
{
	struct warden_egress *eg = arg;
	if (eg->http)
		evconnlistener_enable(eg->http);
	if (eg->socks)
		evconnlistener_enable(eg->socks);
}

/* A socket handed over must be what it is said to be: a listening TCP socket, or a UDP
 * one for DNS. Made non-blocking and close-on-exec. */
static int take_socket(int fd, const char *what, int type, struct warden_error **err)
{
	int v;
	socklen_t len = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) < 0)
		return warden_error_set(err, errno, "%s socket (fd %d)", what, fd);
	if (v != type)
		return warden_error_set(err, 0, "%s socket (fd %d): not a %s socket", what, fd,
		                        type == SOCK_STREAM ? "TCP" : "UDP");
	len = sizeof(v);
	if (type == SOCK_STREAM && (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) < 0 || !v))
		return warden_error_set(err, 0, "%s socket (fd %d): not listening", what, fd);
	if (evutil_make_socket_nonblocking(fd) < 0 || evutil_make_socket_closeonexec(fd) < 0)
		return warden_error_set(err, errno, "%s socket (fd %d)", what, fd);
	return 0;
}

static struct evconnlistener *listen_on(struct warden_egress *eg, int fd, evconnlistener_cb cb,
                                        const char *what, struct warden_error **err)
{
	if (take_socket(fd, what, SOCK_STREAM, err) < 0)
		return NULL;
	/* backlog 0: the socket listens already */
	struct evconnlistener *l = evconnlistener_new(
	    eg->base, cb, eg, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (!l) {
		warden_error_set(err, errno, "%s socket (fd %d): cannot serve it", what, fd);
		return NULL;
	}
	evconnlistener_set_error_cb(l, accept_error);
	return l;
}

static const char *const resolv_conf_errors[] = {
    [1] = "cannot open it", [2] = "cannot stat it", [3] = "too large",
    [4] = "out of memory",  [5] = "short read",     [6] = "no nameserver in it",
};

/* The host's resolver, as the proxies and the DNS server use it. resolv.conf's "search"
 * and "domain" lines are ignored: a name is resolved as it was checked, never with a
 * suffix appended that no rule was asked about. */
static int resolver_setup(struct warden_egress *eg, const struct warden_egress_opts *o,
                          struct warden_error **err)
{
	eg->dns = evdns_base_new(eg->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (!eg->dns)
		return warden_error_set(err, ENOMEM, "cannot create the resolver");
	if (o->nameservers) {
		for (const char *const *ns = o->nameservers; *ns; ns++) {
			int r = evdns_base_nameserver_ip_add(eg->dns, *ns);
			if (r == 4) /* evdns: not an address */
				return warden_error_set(err, 0,
				                        "name server %s: not an IP address with an "
				                        "optional port (IP, IP:PORT, [IPv6]:PORT)",
				                        *ns);
			if (r != 0)
				return warden_error_set(err, errno, "name server %s: cannot use it",
				                        *ns);
		}
		if (!evdns_base_count_nameservers(eg->dns))
			return warden_error_set(err, 0, "no name server given");
	} else {
		int r = evdns_base_resolv_conf_parse(
		    eg->dns, DNS_OPTION_NAMESERVERS | DNS_OPTION_MISC, "/etc/resolv.conf");
		if (r != 0)
			return warden_error_set(
			    err, 0, "/etc/resolv.conf: %s",
			    r > 0 && (size_t)r < ARRAY_SIZE(resolv_conf_errors) &&
			            resolv_conf_errors[r]
			        ? resolv_conf_errors[r]
			        : "cannot be used");
	}
	if (o->hosts_file && evdns_base_load_hosts(eg->dns, o->hosts_file) != 0)
		return warden_error_set(err, errno, "hosts file %s: cannot read it", o->hosts_file);
	return 0;
}

static void timeout_or(struct timeval *tv, unsigned seconds, unsigned otherwise)
{
	tv->tv_sec = seconds ? seconds : otherwise;
	tv->tv_usec = 0;
}

struct warden_egress *warden_egress_new(struct event_base *base, const struct warden_egress_opts *o,
                                        struct warden_error **err)
{
	static const struct warden_egress_rules none;
	int fds[] = {o->http_fd, o->socks_fd, o->dns_fd};
	struct warden_egress *eg = xcalloc(1, sizeof(*eg));
	eg->base = base;
	eg->allow = o->allow ? o->allow : &none;
	eg->deny = o->deny ? o->deny : &none;
	timeout_or(&eg->connect_tv, o->connect_timeout_s, 30);
	timeout_or(&eg->resolve_tv, o->resolve_timeout_s, 10);
	timeout_or(&eg->idle_tv, o->idle_timeout_s, 600);
	eg->on_decision = o->on_decision;
	eg->ctx = o->ctx;
	eg->relisten = evtimer_new(base, relisten, eg);
	eg->tls = sni_ctx_new();
	if (!eg->relisten || !eg->tls) {
		warden_error_set(err, ENOMEM, "cannot set up the egress proxies");
		goto fail;
	}
	if (resolver_setup(eg, o, err) < 0)
		goto fail;
	if (fds[0] >= 0 && !(eg->http = listen_on(eg, fds[0], http_accept, "HTTP proxy", err)))
		goto fail;
	fds[0] = -1;
	if (fds[1] >= 0 && !(eg->socks = listen_on(eg, fds[1], socks_accept, "SOCKS5", err)))
		goto fail;
	fds[1] = -1;
	if (fds[2] >= 0) {
		if (take_socket(fds[2], "DNS", SOCK_DGRAM, err) < 0 ||
		    egress_dns_start(eg, fds[2], err) < 0)
			goto fail;
		fds[2] = -1;
	}
	return eg;
fail:
	/* the sockets were handed over: they are closed on failure too */
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	warden_egress_free(eg);
	return NULL;
}

void warden_egress_free(struct warden_egress *eg)
{
	if (!eg)
		return;
	while (eg->conns)
		egress_conn_free(eg->conns);
	egress_dns_stop(eg);
	if (eg->http)
		evconnlistener_free(eg->http);
	if (eg->socks)
		evconnlistener_free(eg->socks);
	if (eg->relisten)
		event_free(eg->relisten);
	SSL_CTX_free(eg->tls);
	eg->dying = true;
	if (!eg->resolving)
		egress_release(eg);
}
