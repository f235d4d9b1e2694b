/* egress-http.c: the HTTP proxy: CONNECT tunnels and absolute-URI requests
 * (`GET http://host/path HTTP/1.1`), read with http_parser.
 *
 * A forwarded request goes to its origin rewritten to origin-form, its hop-by-hop and
 * Proxy-* headers removed, with `Connection: close`; the answer is streamed back as it
 * comes and the client connection is closed after it: one request per connection, so
 * that every request is checked on its own and no answer has to be parsed.
 *
 * Sections: the request parser (pure: tests/fuzz/fuzz_http_proxy.c calls it); the head
 * sent to the origin; the front end.
 */
#define _GNU_SOURCE
#include "egress-internal.h"

#include <strings.h>

/* ---- the request parser ---------------------------------------------------------------- */

static void append(char **s, size_t *len, const char *at, size_t n)
{
	*s = xrealloc(*s, *len + n + 1);
	memcpy(*s + *len, at, n);
	*len += n;
	(*s)[*len] = '\0';
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct http_req *r = p->data;
	append(&r->url, &r->url_len, at, len);
	return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct http_req *r = p->data;
	if (r->head_done)
		return 0; /* the trailer of a chunked body: not forwarded */
	if (r->in_value || r->n_h == 0) {
		if (r->n_h == EGRESS_HEADERS_MAX) {
			r->status = 431;
			r->why = "more than 100 header fields";
			return -1;
		}
		r->h = xrealloc(r->h, (r->n_h + 1) * sizeof(*r->h));
		r->h[r->n_h++] = (struct http_header){0};
		r->in_value = false;
	}
	struct http_header *h = &r->h[r->n_h - 1];
	append(&h->name, &h->name_len, at, len);
	return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct http_req *r = p->data;
	if (r->head_done)
		return 0;
	struct http_header *h = &r->h[r->n_h - 1];
	append(&h->value, &h->value_len, at, len);
	r->in_value = true;
	return 0;
}

static int on_headers_complete(http_parser *p)
{
	struct http_req *r = p->data;
	r->head_done = true;
	r->chunked = p->flags & F_CHUNKED;
	return 0;
}

/* The body as the origin gets it: as it came, or, when chunked, in chunks of the pieces
 * http_parser hands over (chunking is hop-by-hop: any chunk sizes say the same). */
static int on_body(http_parser *p, const char *at, size_t len)
{
	struct http_req *r = p->data;
	if (r->chunked)
		evbuffer_add_printf(r->body, "%zx\r\n", len);
	evbuffer_add(r->body, at, len);
	if (r->chunked)
		evbuffer_add(r->body, "\r\n", 2);
	return 0;
}

static int on_message_complete(http_parser *p)
{
	struct http_req *r = p->data;
	r->complete = true;
	if (r->chunked)
		evbuffer_add(r->body, "0\r\n\r\n", 5);
	/* one request per connection: nothing after it is parsed */
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void http_req_init(struct http_req *r)
{
	memset(r, 0, sizeof(*r));
	http_parser_init(&r->parser, HTTP_REQUEST);
	r->parser.data = r;
	r->body = evbuffer_new();
	if (!r->body)
		abort();
}

void http_req_clear(struct http_req *r)
{
	free(r->url);
	for (size_t i = 0; i < r->n_h; i++) {
		free(r->h[i].name);
		free(r->h[i].value);
	}
	free(r->h);
	evbuffer_free(r->body);
	memset(r, 0, sizeof(*r));
}

ssize_t http_req_feed(struct http_req *r, const char *data, size_t len)
{
	if (r->complete || len == 0)
		return 0;
	/* the head is fed no further than its limit: http_parser's own is 80 KiB */
	if (!r->head_done && len > EGRESS_HEAD_MAX - r->head_bytes)
		len = EGRESS_HEAD_MAX - r->head_bytes;
	bool in_head = !r->head_done;
	size_t n = http_parser_execute(&r->parser, &settings, data, len);
	if (in_head)
		r->head_bytes += n;
	enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);
	if (e != HPE_OK && e != HPE_PAUSED) {
		if (!r->status) {
			r->status = 400;
			r->why = http_errno_description(e);
		}
		return -1;
	}
	if (!r->head_done && r->head_bytes >= EGRESS_HEAD_MAX) {
		r->status = 431;
		r->why = "request head larger than 16384 bytes";
		return -1;
	}
	return (ssize_t)n;
}

static bool url_has(const struct http_parser_url *u, enum http_parser_url_fields f)
{
	return u->field_set & (1 << f);
}

int http_req_target(const struct http_req *r, struct http_target *ret, const char **ret_why)
{
	struct http_parser_url u;
	memset(ret, 0, sizeof(*ret));
	http_parser_url_init(&u);
	ret->connect = r->parser.method == HTTP_CONNECT;
	if (!r->url || http_parser_parse_url(r->url, r->url_len, ret->connect, &u) != 0) {
		*ret_why = ret->connect ? "CONNECT needs host:port" : "malformed URL";
		return -1;
	}
	if (!ret->connect) {
		if (!url_has(&u, UF_SCHEMA)) {
			*ret_why = "not an absolute URL: this is a proxy (GET http://host/path, "
			           "or CONNECT host:port)";
			return -1;
		}
		if (u.field_data[UF_SCHEMA].len != 4 ||
		    strncasecmp(r->url + u.field_data[UF_SCHEMA].off, "http", 4) != 0) {
			*ret_why = "only http:// URLs are forwarded (https: CONNECT host:443)";
			return -1;
		}
		if (url_has(&u, UF_USERINFO)) {
			*ret_why = "credentials in the URL";
			return -1;
		}
	}
	if (!url_has(&u, UF_HOST) || u.field_data[UF_HOST].len >= sizeof(ret->host)) {
		*ret_why = url_has(&u, UF_HOST) ? "host name too long" : "no host";
		return -1;
	}
	memcpy(ret->host, r->url + u.field_data[UF_HOST].off, u.field_data[UF_HOST].len);
	ret->host[u.field_data[UF_HOST].len] = '\0';
	ret->explicit_port = url_has(&u, UF_PORT);
	ret->port = ret->explicit_port ? u.port : 80;
	if (url_has(&u, UF_PATH)) {
		ret->path = r->url + u.field_data[UF_PATH].off;
		ret->path_len = u.field_data[UF_PATH].len;
	}
	if (url_has(&u, UF_QUERY)) {
		ret->query = r->url + u.field_data[UF_QUERY].off;
		ret->query_len = u.field_data[UF_QUERY].len;
	}
	return 0;
}

/* ---- the head sent to the origin ------------------------------------------------------- */

static bool name_is(const char *name, size_t len, const char *want)
{
	return len == strlen(want) && strncasecmp(name, want, len) == 0;
}

/* Whether the client's Connection header(s) name this header. */
static bool connection_names(const struct http_req *r, const struct http_header *h)
{
	for (size_t i = 0; i < r->n_h; i++) {
		const struct http_header *c = &r->h[i];
		if (!name_is(c->name, c->name_len, "connection") || !c->value)
			continue;
		for (const char *t = c->value; *t;) {
			t += strspn(t, " \t,");
			size_t n = strcspn(t, " \t,");
			if (n && h->name_len == n && strncasecmp(t, h->name, n) == 0)
				return true;
			t += n;
		}
	}
	return false;
}

/* Hop-by-hop headers (RFC 9110 7.6.1) describe the client's connection to the proxy and
 * end there, with every header its Connection header names; Proxy-* headers are meant
 * for the proxy, and Proxy-Authorization, a credential, must never reach an origin. Host
 * is rewritten from the URL (RFC 9112 3.2.2). The body's framing (Content-Length,
 * Transfer-Encoding) is kept whatever Connection says: the body is forwarded with it. */
static bool dropped(const struct http_req *r, const struct http_header *h)
{
	static const char *const hop[] = {"host", "connection", "keep-alive",
	                                  "te",   "trailer",    "upgrade"};
	if (h->name_len >= 6 && strncasecmp(h->name, "proxy-", 6) == 0)
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(hop); i++)
		if (name_is(h->name, h->name_len, hop[i]))
			return true;
	if (name_is(h->name, h->name_len, "content-length") ||
	    name_is(h->name, h->name_len, "transfer-encoding"))
		return false;
	return connection_names(r, h);
}

static void add_value(struct evbuffer *out, const struct http_header *h)
{
	/* obsolete line folding becomes a space (RFC 9112 5.2): a value is one line */
	for (size_t j = 0; j < h->value_len; j++) {
		char ch = h->value[j];
		evbuffer_add(out, ch == '\r' || ch == '\n' || ch == '\0' ? " " : &ch, 1);
	}
}

void http_req_head(const struct http_req *r, const struct http_target *t, struct evbuffer *out)
{
	evbuffer_add_printf(out, "%s ", http_method_str(r->parser.method));
	if (t->path_len)
		evbuffer_add(out, t->path, t->path_len);
	else
		evbuffer_add(out, "/", 1);
	if (t->query_len) {
		evbuffer_add(out, "?", 1);
		evbuffer_add(out, t->query, t->query_len);
	}
	evbuffer_add_printf(out, " HTTP/%u.%u\r\nHost: ", r->parser.http_major,
	                    r->parser.http_minor);
	evbuffer_add_printf(out, strchr(t->host, ':') ? "[%s]" : "%s", t->host);
	if (t->explicit_port)
		evbuffer_add_printf(out, ":%u", t->port);
	evbuffer_add(out, "\r\n", 2);
	bool te_sent = false;
	for (size_t i = 0; i < r->n_h; i++) {
		const struct http_header *h = &r->h[i];
		if (!h->name || dropped(r, h))
			continue;
		bool te = name_is(h->name, h->name_len, "transfer-encoding");
		if (te && te_sent)
			continue;
		evbuffer_add(out, h->name, h->name_len);
		evbuffer_add(out, ": ", 2);
		add_value(out, h);
		/* Several Transfer-Encoding lines are one list (RFC 9110 5.3), and http_parser
		 * framed the body by its last coding: they go as one line, so that an origin
		 * that reads only the first line cannot frame the body otherwise and take the
		 * rest of it for a request of its own (request smuggling). */
		for (size_t j = i + 1; te && j < r->n_h; j++) {
			if (!r->h[j].name ||
			    !name_is(r->h[j].name, r->h[j].name_len, "transfer-encoding"))
				continue;
			evbuffer_add(out, ", ", 2);
			add_value(out, &r->h[j]);
		}
		te_sent = te_sent || te;
		evbuffer_add(out, "\r\n", 2);
	}
	evbuffer_add(out, "Connection: close\r\n\r\n", 21);
}

/* ---- the front end --------------------------------------------------------------------- */

static const char *status_text(int status)
{
	switch (status) {
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 408:
		return "Request Timeout";
	case 431:
		return "Request Header Fields Too Large";
	case 502:
		return "Bad Gateway";
	default:
		return "Gateway Timeout";
	}
}

static void answer(struct egress_conn *c, int status, const char *reason, const char *rule)
{
	char body[768];
	int n;
	if (c->host[0])
		n = snprintf(body, sizeof(body), "warden egress: %s:%u: %s%s%s%s\n", c->host,
		             c->port, reason, rule ? " (rule \"" : "", rule ? rule : "",
		             rule ? "\")" : "");
	else
		n = snprintf(body, sizeof(body), "warden egress: %s\n", reason);
	size_t len = (size_t)n < sizeof(body) ? (size_t)n : sizeof(body) - 1;
	evbuffer_add_printf(bufferevent_get_output(c->client),
	                    "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
	                    "Content-Length: %zu\r\nConnection: close\r\n\r\n",
	                    status, status_text(status), len);
	bufferevent_write(c->client, body, len);
}

static void http_fail(struct egress_conn *c, enum egress_fail f, const char *reason,
                      const char *rule)
{
	static const int status[] = {
	    [EGRESS_FAIL_BAD_REQUEST] = 400, [EGRESS_FAIL_REFUSED] = 403,
	    [EGRESS_FAIL_UNRESOLVED] = 502,  [EGRESS_FAIL_TIMEOUT] = 504,
	    [EGRESS_FAIL_UNREACHABLE] = 502, [EGRESS_FAIL_REQUEST_TIMEOUT] = 408,
	};
	if (c->opened)
		return; /* the tunnel was open: closing it is all there is to say */
	answer(c, status[f], reason, rule);
}

static void http_request(struct egress_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->client);
	struct evbuffer_iovec v;
	struct http_target t;
	const char *why;
	if (!c->http) {
		c->http = xmalloc(sizeof(*c->http));
		http_req_init(c->http);
	}
	struct http_req *r = c->http;
	while (!r->head_done && evbuffer_peek(in, -1, NULL, &v, 1) == 1) {
		ssize_t n = http_req_feed(r, v.iov_base, v.iov_len);
		if (n < 0) {
			answer(c, r->status, r->why, NULL);
			egress_close(c);
			return;
		}
		evbuffer_drain(in, (size_t)n);
		if (n == 0)
			break;
	}
	if (!r->head_done)
		return;
	if (http_req_target(r, &t, &why) < 0) {
		answer(c, 400, why, NULL);
		egress_close(c);
		return;
	}
	if (t.connect) {
		egress_dest(c, "connect", t.host, t.port);
		return;
	}
	/* the head goes before the part of the body already read */
	struct evbuffer *head = evbuffer_new();
	if (!head)
		abort();
	http_req_head(r, &t, head);
	evbuffer_prepend_buffer(r->body, head);
	evbuffer_free(head);
	c->forward = true;
	egress_dest(c, "http", t.host, t.port);
}

static void http_open(struct egress_conn *c)
{
	static const char established[] = "HTTP/1.1 200 Connection established\r\n\r\n";
	if (c->forward)
		egress_send_up(c, c->http->body);
	else
		bufferevent_write(c->client, established, sizeof(established) - 1);
}

void egress_http_relay(struct egress_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->client);
	struct http_req *r = c->http;
	struct evbuffer_iovec v;
	while (!r->complete && evbuffer_peek(in, -1, NULL, &v, 1) == 1) {
		ssize_t n = http_req_feed(r, v.iov_base, v.iov_len);
		if (n < 0) {
			/* a body that breaks its own framing: the origin has part of it already,
			 * and nothing sensible can follow */
			egress_conn_free(c);
			return;
		}
		evbuffer_drain(in, (size_t)n);
		if (n == 0)
			break;
	}
	/* a second request on the connection is dropped: the answer to the first closes it
	 * (clients send it again on a new connection) */
	if (r->complete)
		evbuffer_drain(in, evbuffer_get_length(in));
	egress_send_up(c, r->body);
	if (c->client_eof && !r->complete)
		egress_conn_free(c); /* a request cut short: the origin must not act on it */
}

const struct egress_proto egress_http_proto = {
    .request = http_request,
    .open = http_open,
    .fail = http_fail,
};
