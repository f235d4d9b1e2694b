/* egress-dns.c: the sandbox's DNS server: A and AAAA questions for the names the policy
 * allows, answered with the addresses the host resolves that pass the address checks.
 *
 * Everything else is answered REFUSED: the policy's answer, not a claim that the name
 * does not exist (NXDOMAIN would be cached as such); a name the host cannot resolve gets
 * the host's answer (NXDOMAIN, or SERVFAIL). Queries are parsed by libevent's evdns
 * server; names are resolved by the egress's resolver (egress.c).
 *
 * Sections: queries in flight; answering; the server.
 */
#define _GNU_SOURCE
#include "egress-internal.h"

#include <errno.h>
#include <event2/dns_struct.h>
#include <linux/filter.h>
#include <netinet/udp.h>
#include <sys/socket.h>

#define DNS_HEADER_LEN 12

struct egress_query {
	struct warden_egress *eg;
	struct egress_query *prev, *next;
	struct evdns_server_request *req;
	struct resolve *resolve;
	struct event *timer;
	char host[256]; /* the name asked, checked: lower case, no trailing dot */
	int family;     /* the family asked: AF_INET (A) or AF_INET6 (AAAA) */
	const char *rule;
	uint64_t t0;
};

/* ---- queries in flight ----------------------------------------------------------------- */

static void query_free(struct egress_query *q)
{
	struct warden_egress *eg = q->eg;
	if (q->prev)
		q->prev->next = q->next;
	else
		eg->queries = q->next;
	if (q->next)
		q->next->prev = q->prev;
	eg->n_queries--;
	egress_resolve_cancel(q->resolve);
	event_free(q->timer);
	free(q);
}

static void report(struct warden_egress *eg, const char *host, uint64_t t0, const char *address,
                   const char *reason, const char *rule)
{
	struct warden_egress_decision d = {
	    .proto = "dns",
	    .host = host,
	    .address = address,
	    .allowed = !reason,
	    .final = true,
	    .rule = rule,
	    .reason = reason,
	    .duration_us = egress_now_us() - t0,
	};
	egress_report(eg, &d);
}

/* ---- answering ------------------------------------------------------------------------- */

/* A reply that cannot be sent now (the socket's buffer is full) is dropped: the client
 * asks again. */
static void respond(struct evdns_server_request *req, int rcode)
{
	if (evdns_server_request_respond(req, rcode) < 0)
		evdns_server_request_drop(req);
}

static void answer(struct egress_query *q, int rcode, const char *address, const char *reason,
                   const char *rule)
{
	report(q->eg, q->host, q->t0, address, reason, rule);
	respond(q->req, rcode);
	query_free(q);
}

/* Both families were asked (query): only the one of the question is kept. */
static void resolved(void *owner, int both _unused_, int err, struct evutil_addrinfo *ai)
{
	struct egress_query *q = owner;
	int family = q->family;
	uint8_t addrs[EGRESS_MAX_ADDRS][16];
	char text[EGRESS_MAX_ADDRS * (INET6_ADDRSTRLEN + 1)] = "", refusal[160] = "", why[160];
	const char *refusal_rule = NULL, *rule;
	size_t n = 0, used = 0, len = family == AF_INET ? 4 : 16;
	q->resolve = NULL;
	if (err && err != EVUTIL_EAI_NODATA) {
		snprintf(why, sizeof(why), "could not resolve: %s", evutil_gai_strerror(err));
		answer(q, err == EVUTIL_EAI_NONAME ? DNS_ERR_NOTEXIST : DNS_ERR_SERVERFAILED, NULL,
		       why, NULL);
		return;
	}
	for (const struct evutil_addrinfo *i = ai; i && n < EGRESS_MAX_ADDRS; i = i->ai_next) {
		struct egress_addr a = {.family = family};
		if (i->ai_family != family)
			continue;
		memcpy(a.addr,
		       family == AF_INET
		           ? (const void *)&((const struct sockaddr_in *)i->ai_addr)->sin_addr
		           : (const void *)&((const struct sockaddr_in6 *)i->ai_addr)->sin6_addr,
		       len);
		/* the answer carries the address as resolved; the check judges what it reaches */
		memcpy(addrs[n], a.addr, len);
		char one[INET6_ADDRSTRLEN];
		inet_ntop(family, a.addr, one, sizeof(one));
		if (!egress_parse_literal(one, &a) ||
		    egress_check_addr(q->eg, &a, 0, false, &rule, why, sizeof(why))) {
			if (!refusal[0]) {
				snprintf(refusal, sizeof(refusal), "%s", why);
				refusal_rule = rule;
			}
			continue;
		}
		used +=
		    (size_t)snprintf(text + used, sizeof(text) - used, "%s%s", n ? "," : "", one);
		n++;
	}
	if (ai)
		evutil_freeaddrinfo(ai);
	if (n == 0 && refusal[0]) {
		answer(q, DNS_ERR_REFUSED, NULL, refusal, refusal_rule);
		return;
	}
	/* no address at all: the name exists without one of that family (NODATA) */
	if (n && family == AF_INET)
		evdns_server_request_add_a_reply(q->req, q->req->questions[0]->name, (int)n, addrs,
		                                 EGRESS_DNS_TTL);
	else if (n)
		evdns_server_request_add_aaaa_reply(q->req, q->req->questions[0]->name, (int)n,
		                                    addrs, EGRESS_DNS_TTL);
	answer(q, DNS_ERR_NONE, n ? text : NULL, NULL, q->rule);
}

static void query_deadline(evutil_socket_t fd _unused_, short what _unused_, void *arg)
{
	answer(arg, DNS_ERR_SERVERFAILED, NULL, "could not resolve: timed out", NULL);
}

/* ---- the server ------------------------------------------------------------------------ */

static void refuse(struct warden_egress *eg, struct evdns_server_request *req, const char *host,
                   int rcode, const char *reason, const char *rule)
{
	report(eg, host, egress_now_us(), NULL, reason, rule);
	respond(req, rcode);
}

static void query(struct evdns_server_request *req, void *arg)
{
	struct warden_egress *eg = arg;
	char host[256], why[160];
	const char *bad, *rule;
	/* one question per query, as every resolver sends (RFC 9619) */
	if (req->nquestions != 1) {
		respond(req, DNS_ERR_FORMAT);
		return;
	}
	const struct evdns_server_question *qn = req->questions[0];
	snprintf(host, sizeof(host), "%s", qn->name);
	egress_printable(host);
	if (warden_egress_name_check(host, &bad) < 0) {
		snprintf(why, sizeof(why), "not a host name: %s", bad);
		refuse(eg, req, host, DNS_ERR_REFUSED, why, NULL);
		return;
	}
	if (qn->dns_question_class != EVDNS_CLASS_INET) {
		snprintf(why, sizeof(why), "question class %d: only IN is answered",
		         qn->dns_question_class);
		refuse(eg, req, host, DNS_ERR_REFUSED, why, NULL);
		return;
	}
	if (qn->type != EVDNS_TYPE_A && qn->type != EVDNS_TYPE_AAAA) {
		snprintf(why, sizeof(why), "question type %d: only A and AAAA are answered",
		         qn->type);
		refuse(eg, req, host, DNS_ERR_REFUSED, why, NULL);
		return;
	}
	/* As for the proxies, a name is resolved on the host only once it is allowed: a query
	 * is no way to carry data out. */
	const char *reason = egress_check_name(eg, host, 0, &rule);
	if (reason) {
		refuse(eg, req, host, DNS_ERR_REFUSED, reason, rule);
		return;
	}
	if (eg->n_queries >= EGRESS_MAX_QUERIES) {
		refuse(eg, req, host, DNS_ERR_SERVERFAILED, "too many queries in flight", NULL);
		return;
	}
	struct egress_query *q = xcalloc(1, sizeof(*q));
	q->eg = eg;
	q->req = req;
	q->rule = rule;
	q->t0 = egress_now_us();
	snprintf(q->host, sizeof(q->host), "%s", host);
	q->timer = evtimer_new(eg->base, query_deadline, q);
	if (!q->timer)
		abort();
	q->next = eg->queries;
	if (eg->queries)
		eg->queries->prev = q;
	eg->queries = q;
	eg->n_queries++;
	q->family = qn->type == EVDNS_TYPE_A ? AF_INET : AF_INET6;
	evtimer_add(q->timer, &eg->resolve_tv);
	/* Both families are asked and the other one's addresses dropped (resolved): evdns
	 * reports a name without records of one family (NODATA) as a failure, EAI_FAIL, the
	 * same as a server failure, so a lone AAAA question for an IPv4-only name would be
	 * answered SERVFAIL, and clients that give up on SERVFAIL (musl) could not resolve
	 * it at all. Asked together, such a name comes back with its other family only: NODATA
	 * for the family asked. */
	q->resolve = egress_resolve(eg, host, AF_UNSPEC, resolved, q);
}

/* libevent 2.1's DNS server dereferences a NULL pointer when a datagram is shorter than
 * a DNS header (request_parse(), libevent issue #1231, fixed after 2.1.12): an empty
 * datagram to port 53 would crash the supervisor. A socket filter drops those in the
 * kernel, before evdns reads them (the filter sees the UDP header too; a Unix datagram
 * socket, the vm backend's, has none). Datagrams queued before it was attached are
 * dropped unread, since any of them may be short: their clients ask again. */
static int drop_short_datagrams(int fd, struct warden_error **err)
{
	int domain = AF_INET;
	(void)getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &(socklen_t){sizeof(domain)});
	unsigned min = DNS_HEADER_LEN + (domain == AF_UNIX ? 0 : sizeof(struct udphdr));
	struct sock_filter code[] = {
	    BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0),
	    BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, min, 0, 1),
	    BPF_STMT(BPF_RET | BPF_K, 0xffffffff),
	    BPF_STMT(BPF_RET | BPF_K, 0),
	};
	struct sock_fprog prog = {.len = ARRAY_SIZE(code), .filter = code};
	char byte;
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0)
		return warden_error_set(err, errno, "DNS socket (fd %d): cannot filter it", fd);
	while (recv(fd, &byte, sizeof(byte), MSG_DONTWAIT) >= 0)
		;
	return 0;
}

int egress_dns_start(struct warden_egress *eg, int fd, struct warden_error **err)
{
	if (drop_short_datagrams(fd, err) < 0)
		return -1;
	eg->dns_port = evdns_add_server_port_with_base(eg->base, fd, 0, query, eg);
	if (!eg->dns_port)
		return warden_error_set(err, ENOMEM, "DNS socket (fd %d): cannot serve it", fd);
	return 0;
}

void egress_dns_stop(struct warden_egress *eg)
{
	while (eg->queries) {
		evdns_server_request_drop(eg->queries->req);
		query_free(eg->queries);
	}
	if (eg->dns_port)
		evdns_close_server_port(eg->dns_port);
	eg->dns_port = NULL;
}
