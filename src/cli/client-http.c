/* client-http.c: how the verbs of client.c and client-cp.c reach wardend (client.h).
 *
 * Sections: where wardend is (the common options); one HTTP exchange; errors; our
 * standard streams.
 *
 * Why not evhttp's client: in libevent 2.1 (Debian 12's) an evhttp_connection cannot use a
 * unix socket. evhttp_make_request() on a connection made with
 * evhttp_connection_base_bufferevent_new() over an already connected socket first resets
 * the connection (closing that socket) and then reconnects by host name and port;
 * evhttp_connection_base_bufferevent_unix_new() only exists from 2.2. So each exchange
 * writes its request on a bufferevent over a socket connected here (unix or TCP), and the
 * answer is parsed by http_parser, warden's HTTP parser already (src/lib/net/egress-http.c),
 * which hands streamed bodies (exec output, events) over piece by piece as they arrive.
 * Every exchange is its own connection ("Connection: close").
 */
#define _GNU_SOURCE
#include "client.h"

#include <event2/bufferevent.h>
#include <event2/http.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/un.h>

#define DEFAULT_SOCKET "/run/warden/warden.sock"

/* ---- where wardend is -------------------------------------------------------------- */

static const char common_help[] =
    "\nwardend is reached at --socket PATH (default $WARDEN_SOCKET, else " DEFAULT_SOCKET ")\n"
    "or at --url http://HOST:PORT with --token TOKEN (default $WARDEN_URL, $WARDEN_TOKEN).\n"
    "Exits 125 on warden's own errors.\n";

/* Handle a common option; false if c is not one. */
bool client_option(struct client *c, int opt, const char *arg)
{
	switch (opt) {
	case OPT_SOCKET:
		c->socket = arg;
		return true;
	case OPT_URL:
		c->url = arg;
		return true;
	case OPT_TOKEN:
		c->token = arg;
		return true;
	}
	return false;
}

/* For getopt's '?' (and -h): the help, or which option was wrong. */
int client_usage_error(const char *verb, const char *usage, int opt, char **argv)
{
	if (opt == 'h') {
		printf("%s%s", usage, common_help);
		return 0;
	}
	if (optopt && optopt < 0x100)
		return cli_failf("%s: unknown option or missing value: -%c (try 'warden %s "
		                 "--help')",
		                 verb, optopt, verb);
	return cli_failf("%s: unknown option or missing value: %s (try 'warden %s --help')", verb,
	                 argv[optind - 1], verb);
}

/* Settle where wardend is: options, then the environment, then the default socket. */
int client_init(struct client *c)
{
	if (c->socket && c->url)
		return cli_failf("%s: give --socket or --url, not both", c->verb);
	if (!c->socket && !c->url) {
		c->socket = getenv("WARDEN_SOCKET");
		if (!c->socket || !*c->socket) {
			c->socket = NULL;
			c->url = getenv("WARDEN_URL");
			if (!c->url || !*c->url) {
				c->url = NULL;
				c->socket = DEFAULT_SOCKET;
			}
		}
	}
	if (!c->token && c->url)
		c->token = getenv("WARDEN_TOKEN");
	if (c->url) {
		struct evhttp_uri *u = evhttp_uri_parse(c->url);
		const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
		const char *host = u ? evhttp_uri_get_host(u) : NULL;
		if (!u || !scheme || !streq(scheme, "http") || !host || !*host) {
			if (u)
				evhttp_uri_free(u);
			return cli_failf("%s: --url \"%s\": expected http://HOST:PORT", c->verb,
			                 c->url);
		}
		int port = evhttp_uri_get_port(u);
		const char *path = evhttp_uri_get_path(u);
		c->host = xstrdup(host);
		c->port = xasprintf("%d", port > 0 ? port : 80);
		c->prefix = xstrdup(path ? path : "");
		size_t n = strlen(c->prefix);
		while (n && c->prefix[n - 1] == '/')
			c->prefix[--n] = '\0';
		evhttp_uri_free(u);
	} else if (strlen(c->socket) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		return cli_failf("%s: --socket \"%s\": path too long", c->verb, c->socket);
	}
	c->base = event_base_new();
	if (!c->base)
		return cli_failf("%s: cannot create an event loop", c->verb);
	/* A connection wardend closed is an error to report, not a reason to die silently
	 * (readers of our own output that go away: client_die_of_sigpipe()). */
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

void client_done(struct client *c)
{
	free(c->host);
	free(c->port);
	free(c->prefix);
	if (c->base)
		event_base_free(c->base);
}

/* A connected, non-blocking, close-on-exec socket to wardend, or -1 with errno. */
static int client_connect(const struct client *c)
{
	if (!c->url) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		strcpy(sa.sun_path, c->socket); /* length checked in client_init */
		_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			return -1;
		if (evutil_make_socket_nonblocking(fd) < 0)
			return -1;
		return TAKE_FD(fd);
	}
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	int r = getaddrinfo(c->host, c->port, &hints, &res);
	if (r != 0) {
		errno = r == EAI_SYSTEM ? errno : EHOSTUNREACH;
		return -1;
	}
	int fd = -1;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		struct timeval tv = {.tv_sec = 10};
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		int saved = errno;
		close(fd);
		errno = saved;
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd >= 0 && evutil_make_socket_nonblocking(fd) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* ---- one HTTP exchange ------------------------------------------------------------- */

/* Mark the exchange failed, with errno e (0: none) and a reason. */
void http_why(struct http *h, int e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(h->why, sizeof(h->why), fmt, ap);
	va_end(ap);
	h->err = e;
	h->failed = true;
}

static int on_headers_complete(http_parser *p)
{
	struct http *h = p->data;
	h->status = p->status_code;
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct http *h = p->data;
	if (h->sink && h->status < 300)
		return h->sink(h, at, len) < 0 ? -1 : 0;
	evbuffer_add(h->body, at, len);
	return 0;
}

static int on_message_complete(http_parser *p)
{
	struct http *h = p->data;
	h->complete = true;
	return 0;
}

static const http_parser_settings parser_settings = {
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void http_feed(struct http *h, const char *data, size_t len, size_t *ret_used)
{
	size_t n = http_parser_execute(&h->parser, &parser_settings, data, len);
	if (ret_used)
		*ret_used = n;
	enum http_errno he = HTTP_PARSER_ERRNO(&h->parser);
	if (he != HPE_OK && !h->complete && !h->failed) /* a sink's own failure is set */
		http_why(h, 0, "bad HTTP answer: %s", http_errno_description(he));
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct http *h = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	while (!h->complete && !h->failed && evbuffer_get_length(in)) {
		size_t len = evbuffer_get_contiguous_space(in), used = 0;
		http_feed(h, (const char *)evbuffer_pullup(in, len), len, &used);
		evbuffer_drain(in, used);
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct http *h = arg;
	if (what & BEV_EVENT_EOF) {
		on_read(bev, arg);
		if (!h->complete && !h->failed)
			http_feed(h, NULL, 0, NULL); /* an answer delimited by the close */
		if (!h->complete && !h->failed)
			http_why(h, 0, "the connection closed before the answer ended");
	} else if ((what & BEV_EVENT_ERROR) && (what & BEV_EVENT_WRITING) && !h->write_err) {
		/* wardend may refuse a body before it has all of it (413) and close the
		 * connection: its answer is still there to read. */
		h->write_err = EVUTIL_SOCKET_ERROR();
	} else if (what & BEV_EVENT_ERROR) {
		http_why(h, h->write_err ? h->write_err : EVUTIL_SOCKET_ERROR(),
		         "the connection failed");
	}
}

/* Start one exchange: connect, queue the request (method, path with its query already
 * encoded, Accept, and an optional body of type ctype). Returns 0, or -1 with h->why. */
int http_start(struct http *h, struct client *c, const char *method, const char *path,
               const char *accept, const char *ctype, struct evbuffer *body)
{
	h->c = c;
	h->body = evbuffer_new();
	http_parser_init(&h->parser, HTTP_RESPONSE);
	h->parser.data = h;
	int fd = client_connect(c);
	if (fd < 0) {
		http_why(h, errno, "cannot connect");
		return -1;
	}
	h->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!h->bev) {
		close(fd);
		http_why(h, 0, "cannot create a bufferevent");
		return -1;
	}
	bufferevent_setcb(h->bev, on_read, NULL, on_event, h);
	struct evbuffer *out = bufferevent_get_output(h->bev);
	evbuffer_add_printf(out,
	                    "%s %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: warden/%s\r\n"
	                    "Accept: %s\r\nConnection: close\r\n",
	                    method, c->prefix ? c->prefix : "", path,
	                    c->url ? c->host : "localhost", WARDEN_VERSION, accept);
	if (c->url && c->token && *c->token)
		evbuffer_add_printf(out, "Authorization: Bearer %s\r\n", c->token);
	size_t len = body ? evbuffer_get_length(body) : 0;
	if (ctype && body)
		evbuffer_add_printf(out, "Content-Type: %s\r\n", ctype);
	evbuffer_add_printf(out, "Content-Length: %zu\r\n\r\n", len);
	if (body)
		evbuffer_add_buffer(out, body);
	bufferevent_enable(h->bev, EV_READ | EV_WRITE);
	return 0;
}

/* Run the loop until the answer is complete. 0 for a 2xx answer, else -1. */
int http_wait(struct http *h)
{
	while (!h->complete && !h->failed) {
		if (event_base_loop(h->c->base, EVLOOP_ONCE) != 0) {
			http_why(h, 0, "the event loop stopped");
		}
	}
	if (h->bev) {
		bufferevent_free(h->bev);
		h->bev = NULL;
	}
	return h->failed || h->status < 200 || h->status >= 300 ? -1 : 0;
}

void http_done(struct http *h)
{
	if (h->bev)
		bufferevent_free(h->bev);
	if (h->body)
		evbuffer_free(h->body);
	h->bev = NULL;
	h->body = NULL;
}

/* ---- errors ------------------------------------------------------------------------ */

/* Print why an exchange failed: "warden: VERB: [sandbox ID: ]MESSAGE". Returns EXIT_WARDEN.
 * The API's messages are precise (they name the sandbox, field or path); the id is added
 * only when the message does not name it already. */
int http_fail(struct http *h, const char *id)
{
	const struct client *c = h->c;
	if (h->failed && !h->status) {
		const char *where = c->url ? c->url : c->socket;
		if (h->err)
			return cli_failf(
			    "%s: wardend at %s: %s: %s%s", c->verb, where, h->why, strerror(h->err),
			    h->err == ENOENT || h->err == ECONNREFUSED ? " (is wardend running?)"
			                                               : "");
		return cli_failf("%s: wardend at %s: %s", c->verb, where, h->why);
	}
	if (h->failed)
		return cli_failf("%s: %s%s%s%s%s%s", c->verb, id ? "sandbox " : "", id ? id : "",
		                 id ? ": " : "", h->why, h->err ? ": " : "",
		                 h->err ? strerror(h->err) : "");
	size_t len = evbuffer_get_length(h->body);
	const char *raw = (const char *)evbuffer_pullup(h->body, -1);
	_cleanup_json_ json_t *j = raw ? json_loadb(raw, len, 0, NULL) : NULL;
	json_t *err = json_object_get(j, "error");
	const char *msg = json_string_value(json_object_get(err, "message"));
	if (!msg)
		msg = json_string_value(err);
	_cleanup_free_ char *text = NULL;
	if (!msg) {
		/* Not wardend's JSON (libevent's own answers are HTML): the status, and the
		 * body only when it is one short line of text. */
		bool text_body = len && len <= 200 && raw[0] != '<' && !memchr(raw, '\n', len - 1);
		text = xasprintf(
		    "HTTP %d %s%s%.*s", h->status, http_status_str((enum http_status)h->status),
		    text_body ? ": " : "", text_body ? (int)len : 0, text_body ? raw : "");
		msg = text;
	}
	if (id && !strstr(msg, id))
		return cli_failf("%s: sandbox %s: %s", c->verb, id, msg);
	return cli_failf("%s: %s", c->verb, msg);
}

/* One exchange with an optional JSON body; its JSON answer (NULL when empty) goes to *ret
 * (may be NULL). Returns 0, or -1 with h left for http_fail() (the caller ends it with
 * http_done()). */
int http_exchange(struct http *h, struct client *c, const char *method, const char *path,
                  json_t *req, json_t **ret)
{
	_cleanup_evbuffer_ struct evbuffer *body = NULL;
	if (ret)
		*ret = NULL;
	if (req) {
		_cleanup_free_ char *s = json_dumps(req, JSON_COMPACT);
		body = evbuffer_new();
		evbuffer_add(body, s, strlen(s));
	}
	if (http_start(h, c, method, path, "application/json", "application/json", body) < 0 ||
	    http_wait(h) < 0)
		return -1;
	size_t len = evbuffer_get_length(h->body);
	if (ret && len) {
		json_error_t je;
		*ret = json_loadb((const char *)evbuffer_pullup(h->body, -1), len, 0, &je);
		if (!*ret) {
			snprintf(h->why, sizeof(h->why), "wardend answered with invalid JSON: %s",
			         je.text);
			h->failed = true;
			return -1;
		}
	}
	return 0;
}

/* http_exchange(), saying why it failed. Returns 0 or EXIT_WARDEN. */
int http_call(struct client *c, const char *method, const char *path, json_t *req, json_t **ret,
              const char *id)
{
	struct http h = {0};
	int r = http_exchange(&h, c, method, path, req, ret) < 0 ? http_fail(&h, id) : 0;
	http_done(&h);
	return r;
}

/* "/v1/sandboxes/ID" + suffix, the id encoded. */
char *client_sandbox_path(const char *id, const char *suffix)
{
	_cleanup_free_ char *enc = evhttp_uriencode(id, -1, 0);
	return xasprintf("/v1/sandboxes/%s%s", enc, suffix ? suffix : "");
}

/* "?path=P" + extra, P encoded. */
char *client_path_query(const char *path, const char *extra)
{
	_cleanup_free_ char *enc = evhttp_uriencode(path, -1, 0);
	return xasprintf("?path=%s%s", enc, extra ? extra : "");
}

/* ---- our standard streams ---------------------------------------------------------- */

/* A reader of our output that went away (EPIPE) ends us the way it ends any filter, by
 * SIGPIPE (ignored until now for the sockets' sake). */
void client_die_of_sigpipe(void)
{
	signal(SIGPIPE, SIG_DFL);
	raise(SIGPIPE);
	_exit(128 + SIGPIPE);
}

/* Write all of p to fd. Returns 0, or -1 with errno. */
int client_write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read all of standard input into buf. Returns 0, or -1 with errno. */
int client_read_stdin(struct evbuffer *buf)
{
	for (;;) {
		int n = evbuffer_read(buf, STDIN_FILENO, 65536);
		if (n == 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}
