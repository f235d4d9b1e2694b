/* egress-internal.h: what the files of the egress proxies share, not exported by libwarden.
 *
 * Sections: limits; the egress and one client connection (egress.c: checks, resolution,
 * connecting, relaying, decisions); the HTTP proxy (egress-http.c); SOCKS5
 * (egress-socks.c); the TLS ClientHello check (egress-sni.c); the DNS server
 * (egress-dns.c). The parsers of untrusted input (http_req_*, socks_*, sni_*) are pure
 * functions of the bytes, so that the fuzz targets can call them directly.
 */
#ifndef WARDEN_NET_EGRESS_INTERNAL_H
#define WARDEN_NET_EGRESS_INTERNAL_H

#include "../util.h"
#include "egress.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <http_parser.h>
#include <openssl/ssl.h>

/* ---- limits (docs/egress.md, "Limits") ------------------------------------------------- */

#define EGRESS_MAX_CONNS      256          /* client connections of one egress (HTTP + SOCKS) */
#define EGRESS_MAX_QUERIES    128          /* DNS queries being resolved at once */
#define EGRESS_HEAD_MAX       16384        /* an HTTP request head, request line included */
#define EGRESS_HEADERS_MAX    100          /* header fields in one request */
#define EGRESS_REQUEST_S      30           /* to send a whole request head or SOCKS handshake */
#define EGRESS_PENDING_MAX    65536        /* client bytes held before the destination answers */
#define EGRESS_HELLO_MAX      32768        /* a TLS ClientHello, in as many segments as it takes */
#define EGRESS_HELLO_S        10           /* to send it, after the tunnel was opened */
#define EGRESS_RELAY_HIGH     (256u << 10) /* bytes queued one way before reading pauses */
#define EGRESS_MAX_ADDRS      16           /* checked addresses kept for one destination */
#define EGRESS_CLOSE_S        10           /* to flush a last answer to a client */
#define EGRESS_DNS_TTL        60           /* TTL of the DNS server's answers */
#define EGRESS_RESOLVE_SKEW_S 2            /* wait for the other family once one answered */
#define EGRESS_TLS_PORT       443          /* tunnels here must begin with a TLS ClientHello */
#define EGRESS_TLS_HANDSHAKE  0x16         /* the content type of a TLS handshake record */

/* ---- the egress and its connections (egress.c) ----------------------------------------- */

struct egress_addr {
	int family;
	uint8_t addr[16];
};

/* Why a request was not served: each front end answers in its own terms. */
enum egress_fail {
	EGRESS_FAIL_BAD_REQUEST,     /* HTTP 400, SOCKS general failure */
	EGRESS_FAIL_REFUSED,         /* the policy refused it: HTTP 403, SOCKS "not allowed" */
	EGRESS_FAIL_UNRESOLVED,      /* HTTP 502, SOCKS "host unreachable" */
	EGRESS_FAIL_TIMEOUT,         /* resolving or connecting took too long: HTTP 504 */
	EGRESS_FAIL_UNREACHABLE,     /* no checked address took the connection: HTTP 502, SOCKS
	                                by errno (c->error) */
	EGRESS_FAIL_REQUEST_TIMEOUT, /* the client was too slow to ask: HTTP 408 */
};

enum egress_phase {
	EGRESS_REQUEST, /* reading the request (HTTP head, SOCKS handshake) */
	EGRESS_RESOLVE, /* resolving the destination's name on the host */
	EGRESS_HELLO,   /* port 443: reading the TLS ClientHello, the tunnel already open */
	EGRESS_CONNECT, /* connecting to the checked addresses in turn */
	EGRESS_RELAY,   /* carrying bytes */
	EGRESS_CLOSING, /* flushing a last answer to the client */
};

struct egress_conn;
struct http_req;
struct sni;
struct resolve;

/* A front end: what differs between the HTTP proxy and SOCKS5. */
struct egress_proto {
	/* Client bytes while the request is read (EGRESS_REQUEST). */
	void (*request)(struct egress_conn *c);
	/* Tell the client the destination is open (200, SOCKS success), or for a forwarded
	 * HTTP request send the request upstream. */
	void (*open)(struct egress_conn *c);
	/* Answer a failure, if the client can still be answered; the caller closes. */
	void (*fail)(struct egress_conn *c, enum egress_fail f, const char *reason,
	             const char *rule);
};

struct warden_egress {
	struct event_base *base;
	struct evdns_base *dns;
	SSL_CTX *tls; /* parses ClientHellos only: no certificate, never completes one */
	struct evconnlistener *http, *socks;
	struct evdns_server_port *dns_port;
	struct event *relisten; /* after accept() ran out of descriptors */
	const struct warden_egress_rules *allow, *deny;
	struct timeval connect_tv, resolve_tv, idle_tv;
	void (*on_decision)(const struct warden_egress_decision *d, void *ctx);
	void *ctx;
	struct egress_conn *conns;
	size_t n_conns;
	struct egress_query *queries;
	size_t n_queries;
	size_t resolving; /* resolutions whose answer has not come back yet */
	bool dying;       /* freed by its owner, waiting for those answers */
};

struct egress_conn {
	struct warden_egress *eg;
	struct egress_conn *prev, *next;
	const struct egress_proto *proto;
	const char *kind; /* "http", "connect", "socks5": the decision's proto */
	enum egress_phase phase;
	struct bufferevent *client, *up;
	struct event *timer; /* the deadline of the phase */
	/* the destination */
	char host[256]; /* as asked, lower case */
	uint16_t port;
	bool literal; /* host is an IP address */
	struct egress_addr addrs[EGRESS_MAX_ADDRS];
	size_t n_addrs, next_addr;
	char address[INET6_ADDRSTRLEN]; /* the one connected to (or being tried) */
	const char *rule;               /* the text of the allow rule that decided */
	char refusal[160];              /* the first refused address, why */
	const char *refusal_rule;
	int resolve_err; /* the first error resolving the name */
	struct resolve *resolve4, *resolve6;
	struct sni *sni;
	size_t hello_fed;
	bool sniffed; /* a tunnel's first client bytes were looked at (TLS or not) */
	int error;    /* of the last connection attempt (0: it timed out) */
	bool opened;  /* the client was told the destination is open */
	bool started; /* an allowed decision was reported, the final one is due */
	bool forward; /* an absolute-URI HTTP request: one answer, then close */
	bool client_eof, up_eof, client_shut, up_shut;
	struct egress_splice *splice; /* relaying with splice(2) (egress-splice.c), or NULL */
	uint64_t t0, bytes_in, bytes_out;
	/* the front end's state */
	struct http_req *http;
	bool socks_greeted;
};

/* The destination of c's request is known: check it (name, then every address), resolve
 * it on the host, connect. Answers and closes c itself on failure. */
void egress_dest(struct egress_conn *c, const char *kind, const char *host, uint16_t port);
/* Refuse or give up on c's request: report the decision (refused), answer the client the
 * front end's way, close. */
void egress_refuse(struct egress_conn *c, enum egress_fail f, const char *reason, const char *rule);
/* Answer nothing more: flush what is queued for the client, then free c. */
void egress_close(struct egress_conn *c);
/* Free c now, reporting the final decision of an allowed connection. */
void egress_conn_free(struct egress_conn *c);
/* Activity: push back the idle deadline. */
void egress_touch(struct egress_conn *c);
/* egress-splice.c: whether c is a tunnel whose relay can move to splice(2) now (nothing
 * buffered, both ways open), moving it there (false: it stays on bufferevents), and
 * releasing it (from egress_conn_free). */
bool egress_splice_ready(const struct egress_conn *c);
bool egress_splice_start(struct egress_conn *c);
void egress_splice_free(struct egress_conn *c);
/* Queue bytes for the upstream connection, counting them. */
void egress_send_up(struct egress_conn *c, struct evbuffer *from);
/* Pause reading the client while the upstream queue is full. */
void egress_backpressure(struct egress_conn *c);

/* Is an address (normalized: IPv4-mapped IPv6 made IPv4) refused? NULL when allowed, else
 * the reason, written into why; *ret_rule is the deciding rule's text or NULL. port 0
 * (DNS): rules limited to a port do not refuse, and do allow a special address. literal:
 * the address was asked for as such, so only an address rule allows it. */
const char *egress_check_addr(const struct warden_egress *eg, struct egress_addr *a, uint16_t port,
                              bool literal, const char **ret_rule, char *why, size_t why_len);
/* Check a name against the rules: NULL when allowed (*ret_rule the allow rule), else the
 * reason (*ret_rule the deny rule or NULL). port 0: any allow rule naming it, whatever its
 * port; only the deny rules without a port. */
const char *egress_check_name(const struct warden_egress *eg, const char *name, uint16_t port,
                              const char **ret_rule);
/* Parse an IP literal (IPv4, IPv6; an IPv4-mapped one becomes IPv4). */
bool egress_parse_literal(const char *s, struct egress_addr *ret);
/* Replace what has no place in a host name or a report (controls, spaces, quotes,
 * backslashes, non-ASCII) by '?', in place. */
void egress_printable(char *s);
void egress_report(struct warden_egress *eg, const struct warden_egress_decision *d);
uint64_t egress_now_us(void);

/* Resolve a name on the host: AF_INET, AF_INET6, or AF_UNSPEC for both. done is called
 * from the event loop, never from inside egress_resolve, with a getaddrinfo error and the
 * addresses (owned by done: evutil_freeaddrinfo). */
typedef void (*egress_resolved)(void *owner, int family, int err, struct evutil_addrinfo *ai);
struct resolve *egress_resolve(struct warden_egress *eg, const char *name, int family,
                               egress_resolved done, void *owner);
/* Give up a resolution: done is not called. NULL-safe. */
void egress_resolve_cancel(struct resolve *r);

/* ---- the HTTP proxy (egress-http.c) ---------------------------------------------------- */

extern const struct egress_proto egress_http_proto;

/* An HTTP request read with http_parser: the head is kept, the body is written into
 * body as it arrives (re-chunked when chunked). */
struct http_header {
	char *name, *value;
	size_t name_len, value_len;
};

struct http_req {
	http_parser parser;
	char *url;
	size_t url_len;
	struct http_header *h;
	size_t n_h;
	bool in_value;
	bool head_done, complete, chunked;
	size_t head_bytes;
	struct evbuffer *body;
	int status;      /* when refused: 400 or 431 */
	const char *why; /* and why */
};

/* The target of a request: CONNECT's authority or an absolute http:// URL. */
struct http_target {
	bool connect;
	char host[256]; /* an IPv6 address without its brackets */
	uint16_t port;
	bool explicit_port;
	const char *path, *query; /* in the request's url; NULL when absent */
	size_t path_len, query_len;
};

/* Client bytes of a forwarded request while relaying: its body, then nothing. */
void egress_http_relay(struct egress_conn *c);

void http_req_init(struct http_req *r);
void http_req_clear(struct http_req *r);
/* Parse bytes: returns how many were consumed, or -1 (r->status and r->why set). After
 * the head is done, a CONNECT's bytes are not consumed; a request's body goes to body;
 * after the message is complete nothing more is consumed. */
ssize_t http_req_feed(struct http_req *r, const char *data, size_t len);
/* Once the head is done: the target, or -1 with *ret_why. */
int http_req_target(const struct http_req *r, struct http_target *ret, const char **ret_why);
/* The head sent to the origin: origin-form, Host from the URL, hop-by-hop and Proxy-*
 * headers removed, Connection: close. */
void http_req_head(const struct http_req *r, const struct http_target *t, struct evbuffer *out);

/* ---- SOCKS5 (egress-socks.c) ----------------------------------------------------------- */

extern const struct egress_proto egress_socks_proto;

enum {
	SOCKS_MORE = 0,      /* incomplete: wait for more bytes */
	SOCKS_DONE = 1,      /* parsed */
	SOCKS_BAD = -1,      /* malformed: answer rep (request) or nothing (greeting) */
	SOCKS_NO_METHOD = -2 /* greeting without "no authentication": answer 05 FF */
};

#define SOCKS_REP_OK          0x00
#define SOCKS_REP_FAILURE     0x01
#define SOCKS_REP_NOT_ALLOWED 0x02
#define SOCKS_REP_NET_UNREACH 0x03
#define SOCKS_REP_UNREACHABLE 0x04
#define SOCKS_REP_REFUSED     0x05
#define SOCKS_REP_COMMAND     0x07
#define SOCKS_REP_ADDR_TYPE   0x08

struct socks_request {
	uint8_t rep; /* when SOCKS_BAD: the reply code */
	char host[256];
	uint16_t port;
};

/* RFC 1928 section 3: VER NMETHODS METHODS. *ret_used: the greeting's length. */
int socks_greeting(const uint8_t *p, size_t n, size_t *ret_used, const char **ret_why);
/* RFC 1928 section 4: VER CMD RSV ATYP DST.ADDR DST.PORT; addresses come back as text. */
int socks_request(const uint8_t *p, size_t n, struct socks_request *ret, size_t *ret_used,
                  const char **ret_why);

/* ---- the TLS ClientHello (egress-sni.c) ------------------------------------------------ */

enum { SNI_MORE = 0, SNI_DONE = 1, SNI_BAD = -1 };

/* The context every ClientHello is parsed with. NULL on failure (OpenSSL's queue). */
SSL_CTX *sni_ctx_new(void);
struct sni *sni_new(SSL_CTX *ctx);
/* Feed the next bytes of a client's first flight. SNI_DONE once the ClientHello is
 * complete: *ret_name is its server name as sent (without NUL bytes) or NULL when it has
 * none; SNI_BAD with *ret_why when it is not a TLS ClientHello or its server name
 * extension is malformed. */
int sni_feed(struct sni *s, const uint8_t *p, size_t n, const char **ret_name,
             const char **ret_why);
void sni_free(struct sni *s);

/* ---- the DNS server (egress-dns.c) ----------------------------------------------------- */

struct egress_query;

int egress_dns_start(struct warden_egress *eg, int fd, struct warden_error **err);
/* Drop the queries in flight and close the server. */
void egress_dns_stop(struct warden_egress *eg);

#endif
