/* fuzz_http_proxy.c: the HTTP proxy's request parsing (src/lib/net/egress-http.c) and the
 * TLS ClientHello check (egress-sni.c) on what a client may send.
 *
 * The first byte sets the size of the pieces the rest arrives in (1-4081); the rest is
 * what the client sends: a request head, then either a body (an absolute-URI request) or,
 * after a CONNECT, the tunnel's first bytes, which go to the ClientHello parser as they
 * would for port 443. Checks: no parser claims more than it was given; the head rewritten
 * for the origin is itself a well-formed request head, without any Proxy-* or hop-by-hop
 * header and with Connection: close.
 */
#define _GNU_SOURCE
#include "src/lib/net/egress-internal.h"

#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
	bool done, close, bad, in_value;
	char field[32]; /* the current field's name, lower case, cut at 32 */
	size_t field_len;
};

static int seen_field(http_parser *p, const char *at, size_t len)
{
	struct seen *s = p->data;
	if (s->in_value) {
		s->field_len = 0;
		s->in_value = false;
	}
	for (size_t i = 0; i < len; i++, s->field_len++)
		if (s->field_len < sizeof(s->field))
			s->field[s->field_len] = (char)(at[i] | 0x20);
	return 0;
}

/* the field is name, or, for a name ending in '-', starts with it */
static bool field_is(const struct seen *s, const char *name)
{
	size_t n = strlen(name);
	bool prefix = name[n - 1] == '-';
	return (prefix ? s->field_len >= n : s->field_len == n) && memcmp(s->field, name, n) == 0;
}

static int seen_value(http_parser *p, const char *at, size_t len)
{
	struct seen *s = p->data;
	if (!s->in_value && (field_is(s, "proxy-") || field_is(s, "keep-alive") ||
	                     field_is(s, "upgrade") || field_is(s, "te") || field_is(s, "trailer")))
		s->bad = true;
	if (!s->in_value && field_is(s, "connection"))
		s->close = len == 5 && strncasecmp(at, "close", 5) == 0;
	s->in_value = true;
	return 0;
}

static int seen_done(http_parser *p)
{
	((struct seen *)p->data)->done = true;
	return 1; /* no body: only the head is checked */
}

static void check_head(struct evbuffer *head)
{
	static const http_parser_settings settings = {
	    .on_header_field = seen_field,
	    .on_header_value = seen_value,
	    .on_headers_complete = seen_done,
	};
	struct seen s = {0};
	http_parser p;
	size_t len = evbuffer_get_length(head);
	http_parser_init(&p, HTTP_REQUEST);
	p.data = &s;
	http_parser_execute(&p, &settings, (const char *)evbuffer_pullup(head, -1), len);
	if (!s.done || s.bad || !s.close)
		__builtin_trap();
}

static void tunnel(SSL_CTX *ctx, const uint8_t *data, size_t size, size_t step)
{
	struct sni *s = sni_new(ctx);
	const char *name, *why;
	for (size_t off = 0; off < size; off += step) {
		size_t n = size - off < step ? size - off : step;
		int r = sni_feed(s, data + off, n, &name, &why);
		if (r == SNI_DONE && name && strlen(name) >= 256)
			__builtin_trap();
		if (r != SNI_MORE)
			break;
	}
	sni_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static SSL_CTX *ctx;
	if (!ctx && !(ctx = sni_ctx_new()))
		abort();
	if (size < 1)
		return 0;
	size_t step = (size_t)data[0] * 16 + 1, have = 0, off = 0;
	struct http_req r;
	struct http_target t;
	const char *why;
	bool targeted = false;
	data++;
	size--;
	http_req_init(&r);
	while (have < size && !r.complete) {
		have = have + step < size ? have + step : size;
		ssize_t n = http_req_feed(&r, (const char *)data + off, have - off);
		if (n < 0) {
			if (!r.why || (r.status != 400 && r.status != 431))
				__builtin_trap();
			break;
		}
		if ((size_t)n > have - off)
			__builtin_trap();
		off += (size_t)n;
		evbuffer_drain(r.body, evbuffer_get_length(r.body));
		if (!r.head_done || targeted)
			continue;
		targeted = true;
		if (http_req_target(&r, &t, &why) < 0)
			break;
		if (t.connect) {
			tunnel(ctx, data + off, size - off, step);
			break;
		}
		struct evbuffer *head = evbuffer_new();
		http_req_head(&r, &t, head);
		check_head(head);
		evbuffer_free(head);
	}
	http_req_clear(&r);
	return 0;
}
