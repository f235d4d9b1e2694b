/* gateway.c: the model gateway, served with libevent's evhttp on the caller's event_base.
 *
 * Sections: calls and their report; answers the gateway gives itself (errors in each
 * provider's shape, /v1/models); admission (token, route, model, budget, rate limits);
 * upstream connections (TLS); relaying the answer; the gateway's lifetime; tokens.
 *
 * A call's life: on_request() admits it and opens one upstream connection for it; the
 * answer is relayed as it arrives (up_headers, up_chunk, up_done); call_finish() settles
 * the budget and reports the call, once; the call is freed from the event loop afterwards
 * (reap_cb), never inside one of libevent's callbacks for its own connection.
 */
#define _GNU_SOURCE
#include "gateway-internal.h"
#include "../util.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <sys/queue.h> /* before keyvalq_struct.h, for TAILQ_FOREACH */
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <inttypes.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#define BODY_MAX         (32u << 20) /* a request body from the sandbox */
#define HEADERS_MAX      (64u << 10)
#define ANSWER_MAX       (32u << 20) /* a whole (not streamed) answer, kept to read usage */
#define CONTENT_MAX      (1u << 20)  /* text kept for log_content */
#define CLIENT_TIMEOUT_S 60          /* reading a request from the sandbox, writing to it */

enum err_kind {
	E_AUTH,
	E_REQUEST,
	E_NOT_FOUND,
	E_METHOD,
	E_MODEL,
	E_QUOTA,
	E_RATE,
	E_UPSTREAM,
	E_TIMEOUT
};

/* The error shapes: OpenAI's {"error":{"message","type","param","code"}} and Anthropic's
 * {"type":"error","error":{"type","message"}}. */
static const struct {
	const char *openai_type, *code, *anthropic_type;
} kinds[] = {
    [E_AUTH] = {"invalid_request_error", "invalid_api_key", "authentication_error"},
    [E_REQUEST] = {"invalid_request_error", "invalid_request", "invalid_request_error"},
    [E_NOT_FOUND] = {"invalid_request_error", "not_found", "not_found_error"},
    [E_METHOD] = {"invalid_request_error", "method_not_allowed", "invalid_request_error"},
    [E_MODEL] = {"invalid_request_error", "model_not_allowed", "permission_error"},
    [E_QUOTA] = {"insufficient_quota", "budget_exhausted", "permission_error"},
    [E_RATE] = {"rate_limit_exceeded", "rate_limit_exceeded", "rate_limit_error"},
    [E_UPSTREAM] = {"api_error", "upstream_unreachable", "api_error"},
    [E_TIMEOUT] = {"api_error", "upstream_timeout", "timeout_error"},
};

struct warden_gateway {
	struct event_base *base;
	struct evdns_base *dns;
	struct evhttp *http;
	const struct warden_gateway_config *cfg;
	const struct gw_section *sec;
	SSL_CTX **tls; /* per provider; NULL for http:// or unused ones */
	char *token;
	size_t token_len;
	void (*on_call)(const struct warden_gateway_call *c, void *ctx);
	void *ctx;
	struct gw_budget budget;
	struct gw_call *calls; /* not yet freed, finished or not */
};

struct gw_call {
	struct warden_gateway *gw;
	struct gw_call *prev, *next;
	struct event *reap;
	enum gw_api api;           /* GW_API_MAX: no such endpoint */
	bool anthropic;            /* errors in Anthropic's shape */
	struct evhttp_request *in; /* the sandbox's request, until answered */
	struct evhttp_connection *up_conn;
	SSL *ssl;     /* owned by up_conn's bufferevent */
	int up_error; /* the evhttp_request_error reported, or -1 */
	const struct gw_model *model;
	const struct gw_provider *prov;
	char *model_name;
	struct gw_charge reserved;
	bool holds; /* reserved is held in the budget */
	struct gw_redactor red;
	struct gw_buf out;    /* the current chunk, redacted */
	struct gw_buf answer; /* a whole answer (or the gateway's own), redacted */
	struct gw_buf text;   /* a stream's text, for log_content */
	struct gw_sse sse;
	bool streamed, started, done;
	int status;
	char *refused, *error, *request_body;
	uint64_t t0, t_first;
};

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* ---- calls and their report ------------------------------------------------------------ */

static void reap_cb(evutil_socket_t fd, short what, void *arg);

static struct gw_call *call_new(struct warden_gateway *gw, struct evhttp_request *in)
{
	struct gw_call *c = xcalloc(1, sizeof(*c));
	c->gw = gw;
	c->in = in;
	c->t0 = now_us();
	c->api = GW_API_MAX;
	c->up_error = -1;
	c->reap = event_new(gw->base, -1, 0, reap_cb, c);
	if (!c->reap)
		abort();
	c->answer.max = ANSWER_MAX;
	c->text.max = CONTENT_MAX;
	c->next = gw->calls;
	if (gw->calls)
		gw->calls->prev = c;
	gw->calls = c;
	return c;
}

static void call_free(struct gw_call *c)
{
	struct warden_gateway *gw = c->gw;
	if (c->prev)
		c->prev->next = c->next;
	else
		gw->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->up_conn)
		evhttp_connection_free(c->up_conn);
	event_free(c->reap);
	gw_sse_clear(&c->sse);
	gw_buf_clear(&c->out);
	gw_buf_clear(&c->answer);
	gw_buf_clear(&c->text);
	free(c->model_name);
	free(c->refused);
	free(c->error);
	free(c->request_body);
	free(c);
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	call_free(arg);
}

static void report(struct gw_call *c, const struct gw_usage *u, uint64_t cost)
{
	struct warden_gateway *gw = c->gw;
	bool content = gw->sec->log_content;
	const struct gw_buf *resp = c->streamed ? &c->text : &c->answer;
	struct warden_gateway_call r = {
	    .api = c->api < GW_API_MAX ? gw_api_names[c->api] : NULL,
	    .model = c->model_name,
	    .provider = c->prov ? c->prov->name : NULL,
	    .status = c->status,
	    .streamed = c->streamed,
	    .refused = c->refused,
	    .error = c->error,
	    .usage_reported = gw_usage_complete(c->api, u),
	    .input_tokens = u->input,
	    .output_tokens = u->output,
	    .cost_usd = (double)cost / 1e12,
	    .latency_us = now_us() - c->t0,
	    .first_byte_us = c->t_first ? c->t_first - c->t0 : 0,
	    .request_body = content ? c->request_body : NULL,
	    .response_body = content ? (resp->p ? resp->p : "") : NULL,
	};
	if (gw->on_call)
		gw->on_call(&r, gw->ctx);
}

/* Settle the budget (from u when it is complete, else the reservation stays charged: the
 * provider may have billed what it never reported), report, and free the call soon. */
static void call_finish(struct gw_call *c, const struct gw_usage *u)
{
	static const struct gw_usage none;
	uint64_t cost = 0;
	if (c->done)
		return;
	c->done = true;
	if (!u)
		u = &none;
	if (c->holds) {
		bool known = gw_usage_complete(c->api, u);
		struct gw_charge actual = {u->input, u->output, 0};
		if (known)
			actual.cost = gw_cost(c->model, u->input, u->output);
		gw_budget_settle(&c->gw->budget, &c->reserved, known ? &actual : NULL, now_us());
		cost = known ? actual.cost : c->reserved.cost;
		c->holds = false;
	}
	report(c, u, cost);
	event_active(c->reap, EV_TIMEOUT, 1);
}

/* The sandbox's client went away. libevent either freed its request with the connection
 * or left it to us (req->evcon NULL), and then evhttp_send_reply_end() frees it. */
static void in_closed(struct evhttp_connection *conn, void *arg)
{
	struct gw_call *c = arg;
	(void)conn;
	if (c->in && !evhttp_request_get_connection(c->in))
		evhttp_send_reply_end(c->in);
	c->in = NULL;
	free(c->error);
	c->error = xstrdup("the sandbox's client closed the connection");
	call_finish(c, NULL);
}

/* Take the sandbox's request for answering: the close callback goes first, since sending
 * the end of an answer may free the connection at once. */
static struct evhttp_request *take_in(struct gw_call *c)
{
	struct evhttp_request *in = c->in;
	struct evhttp_connection *conn = in ? evhttp_request_get_connection(in) : NULL;
	if (conn)
		evhttp_connection_set_closecb(conn, NULL, NULL);
	c->in = NULL;
	return in;
}

/* A cut answer's connection, once what was relayed is written (or the client is gone, or
 * the connection's timeout passes). */
static void cut_flushed(struct bufferevent *bev, void *arg)
{
	(void)bev;
	evhttp_connection_free(arg);
}

static void cut_failed(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	evhttp_connection_free(arg);
}

/* End an answer already begun so that the client sees it cut (no final chunk), rather
 * than an answer that looks complete. What was relayed but not yet written goes out first:
 * evhttp has no "close once flushed", so the connection's bufferevent is taken over until
 * its output is written. (Writing it here with evbuffer_write() does nothing: a socket
 * bufferevent keeps the front of its output frozen outside its own write callback.) */
static void abort_in(struct gw_call *c)
{
	struct evhttp_request *in = take_in(c);
	struct evhttp_connection *conn = in ? evhttp_request_get_connection(in) : NULL;
	if (!conn) {
		if (in)
			evhttp_send_reply_end(in);
		return;
	}
	struct bufferevent *bev = evhttp_connection_get_bufferevent(conn);
	if (!evbuffer_get_length(bufferevent_get_output(bev))) {
		evhttp_connection_free(conn);
		return;
	}
	bufferevent_setcb(bev, NULL, cut_flushed, cut_failed, conn);
	bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
	bufferevent_disable(bev, EV_READ);
	bufferevent_enable(bev, EV_WRITE);
}

/* ---- answers the gateway gives itself -------------------------------------------------- */

static void answer(struct gw_call *c, int status, json_t *body, uint64_t retry_after)
{
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (!text)
		abort();
	c->status = status;
	c->t_first = now_us();
	gw_buf_add(&c->answer, text, strlen(text));
	struct evhttp_request *in = take_in(c);
	if (in) {
		struct evkeyvalq *h = evhttp_request_get_output_headers(in);
		struct evbuffer *b = evbuffer_new();
		char s[24];
		if (!b)
			abort();
		evhttp_add_header(h, "Content-Type", "application/json");
		if (retry_after) {
			snprintf(s, sizeof(s), "%" PRIu64, retry_after);
			evhttp_add_header(h, "Retry-After", s);
		}
		evbuffer_add(b, text, strlen(text));
		evhttp_send_reply(in, status, NULL, b);
		evbuffer_free(b);
	}
	free(text);
}

static json_t *error_body(const struct gw_call *c, enum err_kind k, const char *msg)
{
	if (c->anthropic)
		return json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "type",
		                 kinds[k].anthropic_type, "message", msg);
	return json_pack("{s:{s:s, s:s, s:n, s:s}}", "error", "message", msg, "type",
	                 kinds[k].openai_type, "param", "code", kinds[k].code);
}

/* Refuse the call (status, in the provider's shape) and finish it. */
static void refuse(struct gw_call *c, int status, enum err_kind k, uint64_t retry_after,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void refuse(struct gw_call *c, int status, enum err_kind k, uint64_t retry_after,
                   const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&c->refused, fmt, ap) < 0)
		abort();
	va_end(ap);
	answer(c, status, error_body(c, k, c->refused), retry_after);
	call_finish(c, NULL);
}

/* Fail a forwarded call: an error answer if none was begun, else a cut one. */
static void fail(struct gw_call *c, int status, enum err_kind k, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail(struct gw_call *c, int status, enum err_kind k, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&c->error, fmt, ap) < 0)
		abort();
	va_end(ap);
	if (c->started)
		abort_in(c);
	else
		answer(c, status, error_body(c, k, c->error), 0);
	call_finish(c, NULL);
}

static json_t *model_entry(const struct warden_gateway *gw, const struct gw_model *m)
{
	/* One object that reads as an OpenAI and as an Anthropic model. */
	return json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:s}", "id", m->name, "object", "model",
	                 "type", "model", "created", 0, "created_at", "1970-01-01T00:00:00Z",
	                 "display_name", m->name, "owned_by", gw->cfg->providers[m->provider].name);
}

/* GET /v1/models and /v1/models/ID, from the allowlist: no provider is asked, so the
 * sandbox learns nothing of the account beyond what its policy allows. */
static void answer_models(struct gw_call *c, const char *id)
{
	const struct warden_gateway *gw = c->gw;
	if (id) {
		const struct gw_model *m = gw_section_model(gw->cfg, gw->sec, id);
		if (!m) {
			refuse(c, 404, E_NOT_FOUND, 0, "no model %s here", id);
			return;
		}
		answer(c, 200, model_entry(gw, m), 0);
		call_finish(c, NULL);
		return;
	}
	json_t *data = json_array();
	for (size_t i = 0; i < gw->sec->n_models; i++)
		json_array_append_new(data, model_entry(gw, &gw->cfg->models[gw->sec->models[i]]));
	size_t n = gw->sec->n_models;
	json_t *first = n ? json_string(gw->cfg->models[gw->sec->models[0]].name) : json_null();
	json_t *last = n ? json_string(gw->cfg->models[gw->sec->models[n - 1]].name) : json_null();
	answer(c, 200,
	       json_pack("{s:s, s:o, s:b, s:o, s:o}", "object", "list", "data", data, "has_more", 0,
	                 "first_id", first, "last_id", last),
	       0);
	call_finish(c, NULL);
}

/* ---- upstream connections -------------------------------------------------------------- */

static const char *ossl_why(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	return r ? r : "unknown OpenSSL error";
}

/* Providers are verified like a browser would: the system's CAs (or the provider's
 * ca_file), and the name or address of base_url checked against the certificate. A key
 * sent to anyone who can answer a TLS handshake would be a key handed out. */
static SSL_CTX *tls_ctx_new(const struct gw_provider *p, struct warden_error **err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		warden_error_set(err, 0, "provider %s: TLS: %s", p->name, ossl_why());
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	int ok = p->ca_file ? SSL_CTX_load_verify_locations(ctx, p->ca_file, NULL)
	                    : SSL_CTX_set_default_verify_paths(ctx);
	if (ok != 1) {
		warden_error_set(err, 0, "provider %s: %s%s: %s", p->name,
		                 p->ca_file ? "ca_file " : "the system's CA certificates",
		                 p->ca_file ? p->ca_file : "", ossl_why());
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static SSL *tls_new(SSL_CTX *ctx, const struct gw_url *u)
{
	SSL *ssl = SSL_new(ctx);
	if (!ssl)
		return NULL;
	X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
	X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	int ok = u->host_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, u->host)
	                       : SSL_set_tlsext_host_name(ssl, u->host) == 1 &&
	                             X509_VERIFY_PARAM_set1_host(vp, u->host, 0) == 1;
	if (ok != 1) {
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

/* Why a TLS connection failed, or NULL if it did not fail in TLS. */
static const char *tls_why(struct gw_call *c)
{
	if (!c->ssl)
		return NULL;
	long v = SSL_get_verify_result(c->ssl);
	if (v != X509_V_OK)
		return X509_verify_cert_error_string(v);
	unsigned long e, last = 0;
	while ((e = bufferevent_get_openssl_error(evhttp_connection_get_bufferevent(c->up_conn))))
		last = e;
	return last ? ERR_reason_error_string(last) : NULL;
}

static void add_headers(struct gw_call *c, struct evhttp_request *up)
{
	struct evkeyvalq *from = evhttp_request_get_input_headers(c->in);
	struct evkeyvalq *to = evhttp_request_get_output_headers(up);
	/* Only what the APIs need passes from the sandbox: its token, cookies or a Host of its
	 * choosing must not reach the provider. */
	static const char *const pass[] = {"Accept", "User-Agent", "anthropic-beta", "openai-beta"};
	for (size_t i = 0; i < ARRAY_SIZE(pass); i++) {
		const char *v = evhttp_find_header(from, pass[i]);
		if (v)
			evhttp_add_header(to, pass[i], v);
	}
	evhttp_add_header(to, "Host", c->prov->url.host_header);
	evhttp_add_header(to, "Content-Type", "application/json");
	if (c->prov->kind == GW_KIND_ANTHROPIC) {
		const char *v = evhttp_find_header(from, "anthropic-version");
		evhttp_add_header(to, "anthropic-version", v ? v : "2023-06-01");
		evhttp_add_header(to, "x-api-key", c->prov->key);
	} else {
		_cleanup_free_ char *auth = xasprintf("Bearer %s", c->prov->key);
		evhttp_add_header(to, "Authorization", auth);
	}
}

static void up_done(struct evhttp_request *up, void *arg);
static int up_headers(struct evhttp_request *up, void *arg);
static void up_chunk(struct evhttp_request *up, void *arg);
static void up_error(enum evhttp_request_error e, void *arg);

static void forward(struct gw_call *c, const char *body)
{
	static const char *const suffix[GW_API_MAX] = {"/chat/completions", "/responses",
	                                               "/embeddings", NULL, "/v1/messages"};
	struct warden_gateway *gw = c->gw;
	const struct gw_url *u = &c->prov->url;
	struct bufferevent *bev = NULL;
	if (u->https) {
		c->ssl = tls_new(gw->tls[c->model->provider], u);
		if (c->ssl)
			bev = bufferevent_openssl_socket_new(
			    gw->base, -1, c->ssl, BUFFEREVENT_SSL_CONNECTING,
			    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (!bev) {
			SSL_free(c->ssl);
			c->ssl = NULL;
			fail(c, 502, E_UPSTREAM, "provider %s: cannot set up TLS: %s",
			     c->prov->name, ossl_why());
			return;
		}
		/* Many servers close without a TLS close_notify. Answers are delimited by HTTP
		 * (length or chunks), and a cut one is caught there. */
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	}
	c->up_conn =
	    evhttp_connection_base_bufferevent_new(gw->base, gw->dns, bev, u->host, u->port);
	if (!c->up_conn)
		abort();
	struct timeval tv = {(time_t)(c->prov->timeout_ms / 1000),
	                     (suseconds_t)(c->prov->timeout_ms % 1000 * 1000)};
	evhttp_connection_set_timeout_tv(c->up_conn, &tv);
	evhttp_connection_set_max_headers_size(c->up_conn, HEADERS_MAX);
	struct evhttp_request *up = evhttp_request_new(up_done, c);
	if (!up)
		abort();
	evhttp_request_set_header_cb(up, up_headers);
	evhttp_request_set_chunked_cb(up, up_chunk);
	evhttp_request_set_error_cb(up, up_error);
	add_headers(c, up);
	evbuffer_add(evhttp_request_get_output_buffer(up), body, strlen(body));
	_cleanup_free_ char *path = xasprintf("%s%s", u->path, suffix[c->api]);
	/* A connection that fails at once calls up_done() before this returns. */
	if (evhttp_make_request(c->up_conn, up, EVHTTP_REQ_POST, path) < 0 && !c->done)
		fail(c, 502, E_UPSTREAM, "provider %s: cannot connect to %s", c->prov->name,
		     u->host_header);
}

/* ---- relaying the answer --------------------------------------------------------------- */

/* What passes back to the sandbox: what SDKs read. Account names, cookies and anything
 * else a provider says about the account behind the key stay here. */
static bool header_passes(const char *name)
{
	static const char *const exact[] = {"Content-Type", "Retry-After",  "retry-after-ms",
	                                    "request-id",   "x-request-id", "openai-processing-ms"};
	static const char *const prefix[] = {"x-ratelimit-", "anthropic-ratelimit-"};
	for (size_t i = 0; i < ARRAY_SIZE(exact); i++)
		if (!strcasecmp(name, exact[i]))
			return true;
	for (size_t i = 0; i < ARRAY_SIZE(prefix); i++)
		if (!strncasecmp(name, prefix[i], strlen(prefix[i])))
			return true;
	return false;
}

static int up_headers(struct evhttp_request *up, void *arg)
{
	struct gw_call *c = arg;
	int code = evhttp_request_get_response_code(up);
	if (c->done)
		return -1;
	if (code < 200) /* 1xx: the real answer follows */
		return 0;
	struct evkeyvalq *to = evhttp_request_get_output_headers(c->in);
	struct evkeyval *h;
	TAILQ_FOREACH(h, evhttp_request_get_input_headers(up), next)
	{
		/* A header echoing the key (however unlikely) is dropped, not redacted. */
		if (header_passes(h->key) && !strstr(h->value, c->prov->key))
			evhttp_add_header(to, h->key, h->value);
	}
	const char *ct = evhttp_find_header(evhttp_request_get_input_headers(up), "Content-Type");
	c->streamed = ct && !strncasecmp(ct, "text/event-stream", 17);
	if (c->streamed)
		gw_sse_init(&c->sse, c->api, c->gw->sec->log_content ? &c->text : NULL);
	c->status = code;
	c->started = true;
	c->t_first = now_us();
	evhttp_send_reply_start(c->in, code, NULL);
	return 0;
}

/* Send what gw_redact() left in c->out to the sandbox, and read it. */
static void relay(struct gw_call *c)
{
	if (!c->out.len)
		return;
	if (c->streamed)
		gw_sse_feed(&c->sse, c->out.p, c->out.len);
	else
		gw_buf_add(&c->answer, c->out.p, c->out.len);
	struct evbuffer *b = evbuffer_new();
	if (!b)
		abort();
	evbuffer_add(b, c->out.p, c->out.len);
	evhttp_send_reply_chunk(c->in, b);
	evbuffer_free(b);
	c->out.len = 0;
}

static void up_chunk(struct evhttp_request *up, void *arg)
{
	struct gw_call *c = arg;
	struct evbuffer *b = evhttp_request_get_input_buffer(up);
	size_t n = evbuffer_get_length(b);
	if (c->done || !c->started || !n)
		return;
	gw_redact(&c->red, (const char *)evbuffer_pullup(b, -1), n, &c->out);
	relay(c);
}

static void up_error(enum evhttp_request_error e, void *arg)
{
	struct gw_call *c = arg;
	c->up_error = (int)e;
}

static void up_failed(struct gw_call *c)
{
	const char *name = c->prov->name, *tls = tls_why(c);
	double secs = (double)c->prov->timeout_ms / 1000;
	bool slow = now_us() - c->t0 >= c->prov->timeout_ms * 1000;
	if (tls)
		fail(c, 502, E_UPSTREAM, "provider %s: TLS with %s: %s", name,
		     c->prov->url.host_header, tls);
	else if (c->up_error == EVREQ_HTTP_TIMEOUT)
		fail(c, 504, E_TIMEOUT, "provider %s: no data for %gs (timeout)", name, secs);
	else if (c->started)
		fail(c, 502, E_UPSTREAM, "provider %s: the connection closed mid-answer", name);
	else if (c->up_error < 0 && slow)
		fail(c, 504, E_TIMEOUT, "provider %s: no connection to %s within %gs (timeout)",
		     name, c->prov->url.host_header, secs);
	else if (c->up_error < 0)
		fail(c, 502, E_UPSTREAM, "provider %s: cannot connect to %s", name,
		     c->prov->url.host_header);
	else
		fail(c, 502, E_UPSTREAM, "provider %s: the connection closed before an answer",
		     name);
}

static void up_done(struct evhttp_request *up, void *arg)
{
	struct gw_call *c = arg;
	struct gw_usage u = {0};
	if (c->done)
		return;
	if (!up || !evhttp_request_get_response_code(up) || !c->started) {
		up_failed(c);
		return;
	}
	gw_redact_flush(&c->red, &c->out);
	relay(c);
	if (c->status >= 400)
		c->error = xasprintf("provider %s: status %d", c->prov->name, c->status);
	if (c->streamed)
		u = c->sse.usage;
	else if (!c->answer.truncated)
		gw_usage_from_json(c->api, c->answer.p ? c->answer.p : "", c->answer.len, &u);
	struct evhttp_request *in = take_in(c);
	if (in)
		evhttp_send_reply_end(in);
	call_finish(c, &u);
}

/* ---- admission ------------------------------------------------------------------------- */

static bool token_ok(const struct warden_gateway *gw, struct evkeyvalq *h)
{
	const char *bearer = evhttp_find_header(h, "Authorization");
	const char *cands[] = {evhttp_find_header(h, "x-api-key"),
	                       bearer && !strncasecmp(bearer, "Bearer ", 7) ? bearer + 7 : NULL};
	bool ok = false;
	/* Compared in constant time, so that the sandbox cannot learn the token a byte at a
	 * time from how quickly it is refused. */
	for (size_t i = 0; i < ARRAY_SIZE(cands); i++)
		if (cands[i] && strlen(cands[i]) == gw->token_len &&
		    CRYPTO_memcmp(cands[i], gw->token, gw->token_len) == 0)
			ok = true;
	return ok;
}

static const struct {
	const char *path;
	enum gw_api api;
	enum evhttp_cmd_type method;
} routes[] = {
    {"/v1/chat/completions", GW_API_CHAT, EVHTTP_REQ_POST},
    {"/v1/responses", GW_API_RESPONSES, EVHTTP_REQ_POST},
    {"/v1/embeddings", GW_API_EMBEDDINGS, EVHTTP_REQ_POST},
    {"/v1/models", GW_API_MODELS, EVHTTP_REQ_GET},
    {"/v1/messages", GW_API_MESSAGES, EVHTTP_REQ_POST},
};

/* The route of path (setting c->api), and for /v1/models/ID the ID; false if none. */
static bool route(struct gw_call *c, const char *path, const char **ret_id)
{
	static const char models[] = "/v1/models/";
	*ret_id = NULL;
	if (path && !strncmp(path, models, strlen(models)) && path[strlen(models)]) {
		c->api = GW_API_MODELS;
		*ret_id = path + strlen(models);
		return true;
	}
	for (size_t i = 0; path && i < ARRAY_SIZE(routes); i++) {
		if (streq(path, routes[i].path)) {
			c->api = routes[i].api;
			return true;
		}
	}
	return false;
}

/* The model, budget and rate limits: true when the call may be forwarded. */
static bool admit(struct gw_call *c, struct gw_request *r, size_t len)
{
	struct warden_gateway *gw = c->gw;
	struct gw_refusal rf;
	c->model_name = xstrdup(r->model);
	c->model = gw_section_model(gw->cfg, gw->sec, r->model);
	if (!c->model) {
		refuse(c, 403, E_MODEL, 0, "model not allowed: %s", r->model);
		return false;
	}
	c->prov = &gw->cfg->providers[c->model->provider];
	if ((c->prov->kind == GW_KIND_ANTHROPIC) != (c->api == GW_API_MESSAGES)) {
		refuse(c, 400, E_REQUEST, 0, "model %s is served through the %s", r->model,
		       c->prov->kind == GW_KIND_ANTHROPIC ? "Anthropic API (/v1/messages)"
		                                          : "OpenAI API (/v1/...)");
		return false;
	}
	struct gw_charge want = {gw_input_estimate(r, len),
	                         gw_output_reserve(c->api, r, c->model->max_output), 0};
	want.cost = gw_cost(c->model, want.input, want.output);
	if (gw_budget_reserve(&gw->budget, &want, now_us(), &rf) < 0) {
		refuse(c, rf.status, rf.status == 403 ? E_QUOTA : E_RATE, rf.retry_after, "%s",
		       rf.why);
		return false;
	}
	c->reserved = want;
	c->holds = true;
	return true;
}

static void handle(struct gw_call *c, const char *body, size_t len)
{
	struct gw_request r;
	char why[GW_WHY_MAX];
	if (gw_request_parse(c->api, body, len, &r, why) < 0) {
		refuse(c, 400, E_REQUEST, 0, "%s", why);
	} else if (admit(c, &r, len)) {
		c->red = (struct gw_redactor){.key = c->prov->key, .key_len = strlen(c->prov->key)};
		_cleanup_free_ char *fwd =
		    gw_request_forward(c->api, &r, c->model->upstream,
		                       gw_output_reserve(c->api, &r, c->model->max_output) /
		                           (r.choices ? r.choices : 1));
		forward(c, fwd);
	}
	gw_request_clear(&r);
}

static void on_request(struct evhttp_request *in, void *arg)
{
	struct warden_gateway *gw = arg;
	struct gw_call *c = call_new(gw, in);
	struct evkeyvalq *h = evhttp_request_get_input_headers(in);
	struct evbuffer *ib = evhttp_request_get_input_buffer(in);
	size_t len = evbuffer_get_length(ib);
	const char *body = len ? (const char *)evbuffer_pullup(ib, -1) : "";
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(in)), *id;
	bool known = route(c, path, &id);

	evhttp_connection_set_closecb(evhttp_request_get_connection(in), in_closed, c);
	c->anthropic = c->api == GW_API_MESSAGES ||
	               (c->api != GW_API_CHAT && c->api != GW_API_RESPONSES &&
	                c->api != GW_API_EMBEDDINGS && evhttp_find_header(h, "anthropic-version"));
	if (gw->sec->log_content)
		c->request_body = strndup(body, len);
	if (!token_ok(gw, h))
		refuse(c, 401, E_AUTH, 0,
		       "bad token: use the key this sandbox was given in OPENAI_API_KEY or "
		       "ANTHROPIC_API_KEY");
	else if (!known)
		refuse(c, 404, E_NOT_FOUND, 0, "no such endpoint: %s", path ? path : "");
	else if (evhttp_request_get_command(in) !=
	         (c->api == GW_API_MODELS ? EVHTTP_REQ_GET : EVHTTP_REQ_POST))
		refuse(c, 405, E_METHOD, 0, "%s takes %s", path,
		       c->api == GW_API_MODELS ? "GET" : "POST");
	else if (c->api == GW_API_MODELS)
		answer_models(c, id);
	else
		handle(c, body, len);
}

/* ---- the gateway's lifetime ------------------------------------------------------------ */

static int gateway_setup(struct warden_gateway *gw, const struct warden_gateway_opts *o,
                         struct warden_error **err)
{
	const struct warden_gateway_config *cfg = o->cfg;
	gw->sec = gw_config_section(cfg, o->policy);
	if (!gw->sec)
		return warden_error_set(err, 0, "gateway: no section for policy %s and no \"*\"",
		                        o->policy);
	gw->tls = xcalloc(cfg->n_providers, sizeof(*gw->tls));
	for (size_t i = 0; i < gw->sec->n_models; i++) {
		size_t p = cfg->models[gw->sec->models[i]].provider;
		if (!cfg->providers[p].key)
			return warden_error_set(err, 0,
			                        "gateway: the key of provider %s is not loaded "
			                        "(warden_gateway_config_load_keys)",
			                        cfg->providers[p].name);
		if (cfg->providers[p].url.https && !gw->tls[p] &&
		    !(gw->tls[p] = tls_ctx_new(&cfg->providers[p], err)))
			return -1;
	}
	gw->dns = evdns_base_new(gw->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
	                                       EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	gw->http = evhttp_new(gw->base);
	if (!gw->dns || !gw->http)
		return warden_error_set(err, ENOMEM, "gateway: cannot set up the HTTP server");
	evhttp_set_gencb(gw->http, on_request, gw);
	/* Every method reaches on_request(), which answers (and reports) the wrong ones. */
	evhttp_set_allowed_methods(gw->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
	                                         EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	                                         EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_max_body_size(gw->http, BODY_MAX);
	evhttp_set_max_headers_size(gw->http, HEADERS_MAX);
	evhttp_set_timeout(gw->http, CLIENT_TIMEOUT_S);
	return 0;
}

struct warden_gateway *warden_gateway_new(struct event_base *base,
                                          const struct warden_gateway_opts *o,
                                          struct warden_error **err)
{
	_cleanup_close_ int fd = o->http_fd;
	if (!o->cfg || !o->policy || !o->token || strlen(o->token) < GW_KEY_MIN || fd < 0) {
		warden_error_set(err, EINVAL,
		                 "gateway: a configuration, policy, token (at least %d "
		                 "characters) and listening socket are needed",
		                 GW_KEY_MIN);
		return NULL;
	}
	struct warden_gateway *gw = xcalloc(1, sizeof(*gw));
	gw->base = base;
	gw->cfg = o->cfg;
	gw->token = xstrdup(o->token);
	gw->token_len = strlen(o->token);
	gw->on_call = o->on_call;
	gw->ctx = o->ctx;
	if (gateway_setup(gw, o, err) < 0 || evutil_make_socket_nonblocking(fd) < 0 ||
	    !evhttp_accept_socket_with_handle(gw->http, fd)) {
		warden_error_set(err, errno, "gateway: cannot serve the listening socket");
		warden_gateway_free(gw);
		return NULL;
	}
	TAKE_FD(fd); /* the listener closes it */
	gw_budget_init(&gw->budget, &gw->sec->limits, now_us());
	return gw;
}

void warden_gateway_usage(const struct warden_gateway *gw, struct warden_gateway_usage *out)
{
	const struct gw_budget *b = &gw->budget;
	*out = (struct warden_gateway_usage){
	    .requests = b->requests,
	    .input_tokens = b->spent.input,
	    .output_tokens = b->spent.output,
	    .cost_usd = (double)b->spent.cost / 1e12,
	    .max_requests = b->lim.requests,
	    .max_input_tokens = b->lim.input_tokens,
	    .max_output_tokens = b->lim.output_tokens,
	    .max_cost_usd = (double)b->lim.cost / 1e12,
	    .reserved_input_tokens = b->reserved.input,
	    .reserved_output_tokens = b->reserved.output,
	    .reserved_cost_usd = (double)b->reserved.cost / 1e12,
	};
}

void warden_gateway_free(struct warden_gateway *gw)
{
	if (!gw)
		return;
	while (gw->calls) {
		struct gw_call *c = gw->calls;
		if (!c->done) {
			struct evhttp_request *in = take_in(c);
			/* A request libevent left to us (its connection gone) is freed here; the
			 * others go with their connections in evhttp_free(). */
			if (in && !evhttp_request_get_connection(in))
				evhttp_send_reply_end(in);
			c->error = xstrdup("the gateway was closed");
			call_finish(c, NULL);
		}
		call_free(c);
	}
	if (gw->http)
		evhttp_free(gw->http);
	if (gw->dns)
		evdns_base_free(gw->dns, 0);
	for (size_t i = 0; gw->tls && i < gw->cfg->n_providers; i++)
		SSL_CTX_free(gw->tls[i]);
	free(gw->tls);
	free(gw->token);
	free(gw);
}

/* ---- tokens ---------------------------------------------------------------------------- */

char *warden_gateway_token_new(void)
{
	uint8_t raw[24];
	size_t got = 0;
	while (got < sizeof(raw)) {
		ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return NULL;
		got += (size_t)n;
	}
	char *t = xmalloc(4 + 2 * sizeof(raw) + 1);
	memcpy(t, "wdn-", 4);
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(t + 4 + 2 * i, 3, "%02x", raw[i]);
	explicit_bzero(raw, sizeof(raw));
	return t;
}
