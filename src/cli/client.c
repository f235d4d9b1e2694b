/* client.c: the verbs that drive wardend through its HTTP API (docs/api.yaml): create,
 * exec, cp, ps, rm, pause, resume, logs, events.
 *
 * Sections: where wardend is (the common options); one HTTP exchange; errors; the verbs.
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
#include "cli.h"
#include "../lib/util.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <fcntl.h>
#include <getopt.h>
#include <http_parser.h>
#include <jansson.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#define DEFAULT_SOCKET "/run/warden/warden.sock"

static inline void evbuffer_freep(struct evbuffer **b)
{
	if (*b)
		evbuffer_free(*b);
}
#define _cleanup_json_     __attribute__((cleanup(json_decrefp))) /* jansson.h */
#define _cleanup_evbuffer_ __attribute__((cleanup(evbuffer_freep)))

/* ---- where wardend is -------------------------------------------------------------- */

struct client {
	const char *verb; /* for messages: "warden: VERB: ..." */
	const char *socket, *url, *token;
	char *host, *port, *prefix; /* from url */
	struct event_base *base;
};

enum { OPT_SOCKET = 0x100, OPT_URL, OPT_TOKEN, OPT_JSON, OPT_POLICY, OPT_TTL, OPT_LABEL };

#define COMMON_OPTIONS                                                                             \
	{"socket", required_argument, NULL, OPT_SOCKET},                                           \
	    {"url", required_argument, NULL, OPT_URL},                                             \
	    {"token", required_argument, NULL, OPT_TOKEN}, {"help", no_argument, NULL, 'h'},

static const char common_help[] =
    "\nwardend is reached at --socket PATH (default $WARDEN_SOCKET, else " DEFAULT_SOCKET ")\n"
    "or at --url http://HOST:PORT with --token TOKEN (default $WARDEN_URL, $WARDEN_TOKEN).\n"
    "Exits 125 on warden's own errors.\n";

/* Handle a common option; false if c is not one. */
static bool common_option(struct client *c, int opt, const char *arg)
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
static int usage_error(const char *verb, const char *usage, int opt, char **argv)
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
static int client_init(struct client *c)
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
	 * (readers of our own output that go away: die_of_sigpipe()). */
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static void client_done(struct client *c)
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

struct http {
	struct client *c;
	struct bufferevent *bev;
	http_parser parser;
	int status; /* 0 until the answer's headers are in */
	bool complete, failed;
	int err;               /* errno of a transport failure, or 0 */
	int write_err;         /* errno of a failed write of the request, or 0 */
	char why[256];         /* what failed, for the message */
	struct evbuffer *body; /* the answer's body (always for an error status) */
	/* Takes the body of a 2xx answer as it arrives, instead of body; returns 0, or -1
	 * to stop (it then sets why). */
	int (*sink)(struct http *h, const char *data, size_t len);
	void *arg;
};

/* Mark the exchange failed, with errno e (0: none) and a reason. */
static void why(struct http *h, int e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void why(struct http *h, int e, const char *fmt, ...)
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
		why(h, 0, "bad HTTP answer: %s", http_errno_description(he));
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
			why(h, 0, "the connection closed before the answer ended");
	} else if ((what & BEV_EVENT_ERROR) && (what & BEV_EVENT_WRITING) && !h->write_err) {
		/* wardend may refuse a body before it has all of it (413) and close the
		 * connection: its answer is still there to read. */
		h->write_err = EVUTIL_SOCKET_ERROR();
	} else if (what & BEV_EVENT_ERROR) {
		why(h, h->write_err ? h->write_err : EVUTIL_SOCKET_ERROR(),
		    "the connection failed");
	}
}

/* Start one exchange: connect, queue the request (method, path with its query already
 * encoded, Accept, and an optional body of type ctype). Returns 0, or -1 with h->why. */
static int http_start(struct http *h, struct client *c, const char *method, const char *path,
                      const char *accept, const char *ctype, struct evbuffer *body)
{
	h->c = c;
	h->body = evbuffer_new();
	http_parser_init(&h->parser, HTTP_RESPONSE);
	h->parser.data = h;
	int fd = client_connect(c);
	if (fd < 0) {
		why(h, errno, "cannot connect");
		return -1;
	}
	h->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!h->bev) {
		close(fd);
		why(h, 0, "cannot create a bufferevent");
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
static int http_wait(struct http *h)
{
	while (!h->complete && !h->failed) {
		if (event_base_loop(h->c->base, EVLOOP_ONCE) != 0) {
			why(h, 0, "the event loop stopped");
		}
	}
	if (h->bev) {
		bufferevent_free(h->bev);
		h->bev = NULL;
	}
	return h->failed || h->status < 200 || h->status >= 300 ? -1 : 0;
}

static void http_done(struct http *h)
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
static int http_fail(struct http *h, const char *id)
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
static int exchange(struct http *h, struct client *c, const char *method, const char *path,
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

/* exchange(), saying why it failed. Returns 0 or EXIT_WARDEN. */
static int call_json(struct client *c, const char *method, const char *path, json_t *req,
                     json_t **ret, const char *id)
{
	struct http h = {0};
	int r = exchange(&h, c, method, path, req, ret) < 0 ? http_fail(&h, id) : 0;
	http_done(&h);
	return r;
}

/* "/v1/sandboxes/ID" + suffix, the id encoded. */
static char *sandbox_path(const char *id, const char *suffix)
{
	_cleanup_free_ char *enc = evhttp_uriencode(id, -1, 0);
	return xasprintf("/v1/sandboxes/%s%s", enc, suffix ? suffix : "");
}

/* "?path=P" + extra, P encoded. */
static char *path_query(const char *path, const char *extra)
{
	_cleanup_free_ char *enc = evhttp_uriencode(path, -1, 0);
	return xasprintf("?path=%s%s", enc, extra ? extra : "");
}

/* "K=V" into obj[K] = V; "K" alone takes V from our environment when with_env. */
static int add_pair(json_t *obj, const char *kv, const char *what, bool with_env)
{
	const char *eq = strchr(kv, '=');
	_cleanup_free_ char *k = strndup(kv, eq ? (size_t)(eq - kv) : strlen(kv));
	const char *v = eq ? eq + 1 : with_env ? getenv(k) : NULL;
	if (!*k || (!eq && !with_env))
		return cli_failf("%s \"%s\": expected KEY=VALUE", what, kv);
	if (!v)
		return 0; /* -e NAME with NAME unset here: nothing to pass */
	json_t *s = json_string(v);
	if (!s)
		return cli_failf("%s \"%s\": not UTF-8", what, kv);
	json_object_set_new(obj, k, s);
	return 0;
}

/* ---- create ------------------------------------------------------------------------ */

static const char create_usage[] =
    "usage: warden create [OPTIONS]\n"
    "\n"
    "Create a long-lived sandbox in wardend and print its id.\n"
    "\n"
    "  --policy NAME|FILE   a preset (default, strict), a policy stored in wardend, or a\n"
    "                       YAML policy file (sent inline)\n"
    "  --ttl SECONDS        destroy it after this long (wardend's default: 3600)\n"
    "  --label KEY=VALUE    a label (repeatable; 'warden ps --label' selects by them)\n"
    "  -e, --env NAME[=VALUE]  an environment variable for every command run in it\n"
    "  --json               print the whole sandbox object instead of its id\n";

static bool looks_like_file(const char *p)
{
	struct stat st;
	size_t n = strlen(p);
	return strchr(p, '/') || (n > 5 && streq(p + n - 5, ".yaml")) ||
	       (n > 4 && streq(p + n - 4, ".yml")) || (stat(p, &st) == 0 && S_ISREG(st.st_mode));
}

int cmd_create(int argc, char **argv)
{
	static const struct option opts[] = {
	    COMMON_OPTIONS{"policy", required_argument, NULL, OPT_POLICY},
	    {"ttl", required_argument, NULL, OPT_TTL},
	    {"label", required_argument, NULL, OPT_LABEL},
	    {"env", required_argument, NULL, 'e'},
	    {"json", no_argument, NULL, OPT_JSON},
	    {NULL, 0, NULL, 0},
	};
	struct client c = {.verb = "create"};
	_cleanup_json_ json_t *req = json_object();
	json_t *labels = json_object(), *env = json_object();
	json_object_set_new(req, "labels", labels);
	json_object_set_new(req, "env", env);
	bool as_json = false;
	const char *reason;
	int o;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "e:h", opts, NULL)) != -1) {
		if (common_option(&c, o, optarg))
			continue;
		switch (o) {
		case OPT_POLICY:
			if (looks_like_file(optarg)) {
				_cleanup_error_ struct warden_error *e = NULL;
				_cleanup_free_ char *yaml = NULL;
				size_t len;
				if (read_small_file(optarg, 1 << 20, "policy file", &yaml, &len,
				                    &e) < 0)
					return cli_failf("create: --policy: %s",
					                 warden_error_text(e));
				json_t *s = json_stringn(yaml, len);
				if (!s)
					return cli_failf("create: --policy: %s: not UTF-8 text",
					                 optarg);
				json_object_set_new(req, "policy_yaml", s);
			} else {
				json_object_set_new(req, "policy", json_string(optarg));
			}
			break;
		case OPT_TTL: {
			uint64_t ttl = 0;
			if (parse_uint(optarg, INT32_MAX, &ttl, &reason) < 0 || !ttl)
				return cli_failf("create: --ttl \"%s\": %s", optarg,
				                 ttl ? reason : "must be a number of seconds > 0");
			json_object_set_new(req, "ttl", json_integer((json_int_t)ttl));
			break;
		}
		case OPT_LABEL:
			if (add_pair(labels, optarg, "create: --label", false))
				return EXIT_WARDEN;
			break;
		case 'e':
			if (add_pair(env, optarg, "create: --env", true))
				return EXIT_WARDEN;
			break;
		case OPT_JSON:
			as_json = true;
			break;
		default:
			return usage_error("create", create_usage, o, argv);
		}
	}
	if (optind != argc)
		return cli_failf("create: unexpected argument \"%s\" (try 'warden create --help')",
		                 argv[optind]);
	if (client_init(&c))
		return EXIT_WARDEN;
	_cleanup_json_ json_t *sb = NULL;
	int r = call_json(&c, "POST", "/v1/sandboxes", req, &sb, NULL);
	if (r == 0) {
		const char *id = json_string_value(json_object_get(sb, "id"));
		if (as_json) {
			_cleanup_free_ char *s =
			    json_dumps(sb, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
			printf("%s\n", s);
		} else if (id) {
			printf("%s\n", id);
		} else {
			r = cli_failf("create: wardend answered without an id");
		}
	}
	client_done(&c);
	return r;
}

/* ---- exec -------------------------------------------------------------------------- */

static const char exec_usage[] =
    "usage: warden exec [OPTIONS] ID [--] CMD [ARGS...]\n"
    "\n"
    "Run CMD in sandbox ID, streaming its output here as it is written, and exit with its\n"
    "status (128+N if killed by signal N, 124 on --timeout). SIGINT, SIGTERM and SIGHUP\n"
    "received here are passed on to the command.\n"
    "\n"
    "  -i, --interactive        send our standard input to the command (read to its end\n"
    "                           first: the API carries it as one UTF-8 text)\n"
    "  -e, --env NAME[=VALUE]   add a variable (from here when no VALUE)\n"
    "  -w, --workdir PATH       working directory inside\n"
    "  -t, --timeout SECONDS    kill the command after this long\n";

struct exec_state {
	struct client *c;
	const char *id;
	struct evbuffer *line; /* an unfinished NDJSON line */
	json_int_t exec_id;    /* -1 until "started" */
	int pending_signal;
	bool exited, timed_out;
	json_int_t exit_code;
};

/* A reader of our output that went away (EPIPE) ends us the way it ends any filter, by
 * SIGPIPE (ignored until now for the sockets' sake). */
static void die_of_sigpipe(void)
{
	signal(SIGPIPE, SIG_DFL);
	raise(SIGPIPE);
	_exit(128 + SIGPIPE);
}

/* Write all of p to fd. Returns 0, or -1 with errno. */
static int write_all(int fd, const char *p, size_t len)
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

/* Ask wardend to signal the exec: a separate exchange on a loop of its own, so that the
 * streamed answer waits in the socket meanwhile. */
static void exec_signal(struct exec_state *st, int sig)
{
	struct client k = *st->c;
	k.base = event_base_new();
	if (!k.base)
		return;
	char suffix[64];
	snprintf(suffix, sizeof(suffix), "/exec/%lld/kill", (long long)st->exec_id);
	_cleanup_free_ char *path = sandbox_path(st->id, suffix);
	_cleanup_json_ json_t *req = json_pack("{s:i}", "signal", sig);
	call_json(&k, "POST", path, req, NULL, st->id);
	event_base_free(k.base);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	struct exec_state *st = arg;
	if (st->exec_id < 0)
		st->pending_signal = (int)sig;
	else
		exec_signal(st, (int)sig);
}

static int exec_event(struct http *h, struct exec_state *st, const char *line, size_t len)
{
	json_error_t je;
	_cleanup_json_ json_t *ev = json_loadb(line, len, 0, &je);
	const char *type = json_string_value(json_object_get(ev, "type"));
	if (!type) {
		why(h, 0, "wardend sent an exec event that is not a JSON object with a type: %s",
		    je.text);
		return -1;
	}
	json_t *data = json_object_get(ev, "data");
	if (streq(type, "started")) {
		st->exec_id = json_integer_value(json_object_get(ev, "exec_id"));
		if (st->pending_signal)
			exec_signal(st, st->pending_signal);
	} else if ((streq(type, "stdout") || streq(type, "stderr")) && json_is_string(data)) {
		int fd = streq(type, "stdout") ? STDOUT_FILENO : STDERR_FILENO;
		if (write_all(fd, json_string_value(data), json_string_length(data)) < 0) {
			if (errno == EPIPE) { /* as in a pipeline: the writer gets SIGPIPE */
				exec_signal(st, SIGPIPE);
				die_of_sigpipe();
			}
			why(h, errno, "writing the command's %s", type);
			return -1;
		}
	} else if (streq(type, "exit")) {
		const char *error = json_string_value(json_object_get(ev, "error"));
		st->exited = true;
		st->exit_code = json_integer_value(json_object_get(ev, "exit_code"));
		st->timed_out = json_is_true(json_object_get(ev, "timed_out"));
		if (error) /* the command could not be started (exit 127) */
			fprintf(stderr, "warden: exec: %s\n", error);
	}
	return 0;
}

static int exec_sink(struct http *h, const char *data, size_t len)
{
	struct exec_state *st = h->arg;
	evbuffer_add(st->line, data, len);
	size_t n;
	char *line;
	while ((line = evbuffer_readln(st->line, &n, EVBUFFER_EOL_LF))) {
		int r = n ? exec_event(h, st, line, n) : 0;
		free(line);
		if (r < 0)
			return -1;
	}
	return 0;
}

/* Read all of standard input (for -i). */
static int read_stdin(struct evbuffer *buf)
{
	for (;;) {
		int n = evbuffer_read(buf, STDIN_FILENO, 65536);
		if (n == 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}

int cmd_exec(int argc, char **argv)
{
	static const struct option opts[] = {
	    COMMON_OPTIONS{"interactive", no_argument, NULL, 'i'},
	    {"env", required_argument, NULL, 'e'},
	    {"workdir", required_argument, NULL, 'w'},
	    {"timeout", required_argument, NULL, 't'},
	    {NULL, 0, NULL, 0},
	};
	struct client c = {.verb = "exec"};
	_cleanup_json_ json_t *req = json_object();
	json_t *env = json_object();
	bool interactive = false;
	const char *reason;
	int o;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "+ie:w:t:h", opts, NULL)) != -1) {
		if (common_option(&c, o, optarg))
			continue;
		switch (o) {
		case 'i':
			interactive = true;
			break;
		case 'e':
			if (add_pair(env, optarg, "exec: --env", true))
				return EXIT_WARDEN;
			break;
		case 'w':
			if (optarg[0] != '/')
				return cli_failf("exec: --workdir \"%s\": not an absolute path",
				                 optarg);
			json_object_set_new(req, "workdir", json_string(optarg));
			break;
		case 't': {
			uint64_t ms = 0;
			if (parse_milli(optarg, &ms, &reason) < 0 || !ms)
				return cli_failf("exec: --timeout \"%s\": %s", optarg,
				                 ms ? reason : "must be a number of seconds > 0");
			json_object_set_new(req, "timeout",
			                    ms % 1000 ? json_real((double)ms / 1e3)
			                              : json_integer(ms / 1000));
			break;
		}
		default:
			return usage_error("exec", exec_usage, o, argv);
		}
	}
	if (optind >= argc)
		return cli_failf(
		    "exec: which sandbox? (usage: warden exec [OPTIONS] ID -- CMD...)");
	const char *id = argv[optind++];
	if (optind < argc && streq(argv[optind], "--"))
		optind++;
	if (optind >= argc)
		return cli_failf("exec: no command (usage: warden exec [OPTIONS] ID -- CMD...)");
	json_t *cmd = json_array();
	json_object_set_new(req, "cmd", cmd);
	for (int i = optind; i < argc; i++) {
		json_t *a = json_string(argv[i]);
		if (!a)
			return cli_failf("exec: argument \"%s\" is not UTF-8", argv[i]);
		json_array_append_new(cmd, a);
	}
	if (json_object_size(env))
		json_object_set(req, "env", env);
	json_decref(env);
	if (interactive) {
		_cleanup_evbuffer_ struct evbuffer *in = evbuffer_new();
		if (read_stdin(in) < 0)
			return cli_failf("exec: -i: reading standard input: %s", strerror(errno));
		json_t *s =
		    json_stringn((const char *)evbuffer_pullup(in, -1), evbuffer_get_length(in));
		if (!s)
			return cli_failf("exec: -i: standard input is not UTF-8 text (the API "
			                 "carries it as a JSON string)");
		json_object_set_new(req, "stdin", s);
	}
	if (client_init(&c))
		return EXIT_WARDEN;

	struct exec_state st = {.c = &c, .id = id, .line = evbuffer_new(), .exec_id = -1};
	struct event *sigs[3];
	const int signals[3] = {SIGINT, SIGTERM, SIGHUP};
	for (size_t i = 0; i < ARRAY_SIZE(signals); i++) {
		sigs[i] = evsignal_new(c.base, signals[i], on_signal, &st);
		evsignal_add(sigs[i], NULL);
	}
	_cleanup_free_ char *s = json_dumps(req, JSON_COMPACT);
	_cleanup_evbuffer_ struct evbuffer *body = evbuffer_new();
	evbuffer_add(body, s, strlen(s));
	_cleanup_free_ char *path = sandbox_path(id, "/exec");
	struct http h = {.sink = exec_sink, .arg = &st};
	int r = 0;
	if (http_start(&h, &c, "POST", path, "application/x-ndjson", "application/json", body) <
	        0 ||
	    http_wait(&h) < 0) {
		r = http_fail(&h, id);
	} else if (evbuffer_get_length(st.line) &&
	           exec_sink(&h, "\n", 1) < 0) { /* a last line without its newline */
		r = http_fail(&h, id);
	} else if (!st.exited) {
		r = cli_failf("exec: sandbox %s: the stream ended before the command's exit", id);
	} else if (st.timed_out) {
		fprintf(stderr, "warden: exec: timeout: the command was killed\n");
		r = EXIT_TIMEOUT;
	} else {
		r = st.exit_code < 0 || st.exit_code > 255 ? EXIT_WARDEN : (int)st.exit_code;
	}
	http_done(&h);
	for (size_t i = 0; i < ARRAY_SIZE(signals); i++)
		event_free(sigs[i]);
	evbuffer_free(st.line);
	client_done(&c);
	return r;
}

/* ---- cp ---------------------------------------------------------------------------- */

static const char cp_usage[] =
    "usage: warden cp [OPTIONS] SRC DST\n"
    "\n"
    "Copy files between here and a sandbox; the sandbox's side is written ID:/path.\n"
    "A directory is copied with what it holds (symlinks are skipped). SRC '-' reads our\n"
    "standard input; DST '-' writes to our standard output.\n";

/* "ID:/path" → id and path; false for a local path. */
static bool split_remote(const char *arg, char **ret_id, const char **ret_path)
{
	const char *colon = strchr(arg, ':');
	if (!colon || colon == arg || memchr(arg, '/', (size_t)(colon - arg)))
		return false;
	*ret_id = strndup(arg, (size_t)(colon - arg));
	*ret_path = colon + 1;
	return true;
}

static char *join(const char *dir, const char *name)
{
	size_t n = strlen(dir);
	return xasprintf("%s%s%s", dir, n && dir[n - 1] == '/' ? "" : "/", name);
}

static const char *base_name(const char *p)
{
	static char buf[PATH_MAX];
	snprintf(buf, sizeof(buf), "%s", p);
	size_t n = strlen(buf);
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
	const char *slash = strrchr(buf, '/');
	return slash && slash[1] ? slash + 1 : buf;
}

/* Stat a path inside the sandbox: 1 and *ret (FileInfo) if it exists, 0 if not (a 404
 * when missing_ok), or EXIT_WARDEN having said why. */
static int remote_stat(struct client *c, const char *id, const char *path, bool missing_ok,
                       json_t **ret)
{
	_cleanup_free_ char *q = path_query(path, NULL);
	_cleanup_free_ char *url = sandbox_path(id, NULL);
	_cleanup_free_ char *full = xasprintf("%s/files/stat%s", url, q);
	struct http h = {0};
	int r = exchange(&h, c, "GET", full, NULL, ret);
	if (r < 0)
		r = missing_ok && h.status == 404 ? 0 : http_fail(&h, id);
	else
		r = 1;
	http_done(&h);
	return r;
}

static int sink_fd(struct http *h, const char *data, size_t len)
{
	int fd = *(int *)h->arg;
	if (write_all(fd, data, len) < 0) {
		if (errno == EPIPE)
			die_of_sigpipe();
		why(h, errno, "writing the copy");
		return -1;
	}
	return 0;
}

static int download(struct client *c, const char *id, const char *src, const char *dst, int depth);

static int download_dir(struct client *c, const char *id, const char *src, const char *dst,
                        int depth)
{
	if (mkdir(dst, 0755) < 0 && errno != EEXIST)
		return cli_failf("cp: %s: %s", dst, strerror(errno));
	_cleanup_free_ char *q = path_query(src, NULL);
	_cleanup_free_ char *url = sandbox_path(id, NULL);
	_cleanup_free_ char *full = xasprintf("%s/files/list%s", url, q);
	_cleanup_json_ json_t *list = NULL;
	int r = call_json(c, "GET", full, NULL, &list, id);
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(list, "entries"), i, e)
	{
		const char *name = json_string_value(json_object_get(e, "name"));
		if (r || !name || streq(name, ".") || streq(name, ".."))
			continue;
		_cleanup_free_ char *s = join(src, name), *d = join(dst, name);
		r = download(c, id, s, d, depth + 1);
	}
	return r;
}

static int download(struct client *c, const char *id, const char *src, const char *dst, int depth)
{
	if (depth > 64)
		return cli_failf("cp: %s:%s: too deep", id, src);
	_cleanup_json_ json_t *info = NULL;
	int r = remote_stat(c, id, src, false, &info);
	if (r != 1)
		return r;
	const char *type = json_string_value(json_object_get(info, "type"));
	const char *mode_s = json_string_value(json_object_get(info, "mode"));
	mode_t mode = mode_s ? (mode_t)strtoul(mode_s, NULL, 8) & 07777 : 0644;
	struct stat st;
	_cleanup_free_ char *target = NULL;
	if (!streq(dst, "-") && depth == 0 && stat(dst, &st) == 0 && S_ISDIR(st.st_mode))
		target = join(dst, base_name(src));
	else
		target = xstrdup(dst);
	if (type && streq(type, "dir")) {
		if (streq(target, "-"))
			return cli_failf("cp: %s:%s is a directory: cannot write it to stdout", id,
			                 src);
		return download_dir(c, id, src, target, depth);
	}
	if (!type || !streq(type, "file")) {
		cli_warn("cp: %s:%s: skipped (a %s)", id, src, type ? type : "special file");
		return 0;
	}
	bool to_stdout = streq(target, "-");
	_cleanup_close_ int fd =
	    to_stdout ? dup(STDOUT_FILENO)
	              : open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode ? mode : 0644);
	if (fd < 0)
		return cli_failf("cp: %s: %s", target, strerror(errno));
	_cleanup_free_ char *q = path_query(src, NULL);
	_cleanup_free_ char *url = sandbox_path(id, NULL);
	_cleanup_free_ char *full = xasprintf("%s/files%s", url, q);
	struct http h = {.sink = sink_fd, .arg = &fd};
	if (http_start(&h, c, "GET", full, "application/octet-stream", NULL, NULL) < 0 ||
	    http_wait(&h) < 0) {
		r = http_fail(&h, id);
		if (!to_stdout)
			unlink(target);
	}
	http_done(&h);
	return r == 1 ? 0 : r;
}

static int upload(struct client *c, const char *src, const char *id, const char *dst, int depth);

static int upload_dir(struct client *c, const char *src, const char *id, const char *dst, int depth)
{
	_cleanup_free_ char *q = path_query(dst, NULL);
	_cleanup_free_ char *url = sandbox_path(id, NULL);
	_cleanup_free_ char *full = xasprintf("%s/files/mkdir%s", url, q);
	struct http h = {0};
	int r = exchange(&h, c, "POST", full, NULL, NULL) < 0 && h.status != 409 ? http_fail(&h, id)
	                                                                         : 0;
	http_done(&h);
	if (r)
		return r;
	_cleanup_closedir_ DIR *d = opendir(src);
	if (!d)
		return cli_failf("cp: %s: %s", src, strerror(errno));
	struct dirent *de;
	while (r == 0 && (de = readdir(d))) {
		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		_cleanup_free_ char *s = join(src, de->d_name), *t = join(dst, de->d_name);
		r = upload(c, s, id, t, depth + 1);
	}
	return r;
}

static int upload(struct client *c, const char *src, const char *id, const char *dst, int depth)
{
	if (depth > 64)
		return cli_failf("cp: %s: too deep", src);
	bool from_stdin = streq(src, "-");
	struct stat st = {.st_mode = S_IFREG | 0644};
	if (!from_stdin && lstat(src, &st) < 0)
		return cli_failf("cp: %s: %s", src, strerror(errno));
	_cleanup_free_ char *target = NULL;
	if (depth == 0) {
		size_t n = strlen(dst);
		_cleanup_json_ json_t *info = NULL;
		int r = n && dst[n - 1] == '/' ? 1 : remote_stat(c, id, dst, true, &info);
		if (r > 1)
			return r;
		const char *type = json_string_value(json_object_get(info, "type"));
		bool into = r == 1 && (!info || (type && streq(type, "dir")));
		if (into && from_stdin)
			return cli_failf("cp: %s:%s is a directory: name the file to write", id,
			                 dst);
		target = into ? join(dst, base_name(src)) : xstrdup(dst);
	} else {
		target = xstrdup(dst);
	}
	if (S_ISDIR(st.st_mode))
		return upload_dir(c, src, id, target, depth);
	if (!S_ISREG(st.st_mode)) {
		cli_warn("cp: %s: skipped (not a regular file or directory)", src);
		return 0;
	}
	_cleanup_evbuffer_ struct evbuffer *body = evbuffer_new();
	if (from_stdin) {
		if (read_stdin(body) < 0)
			return cli_failf("cp: reading standard input: %s", strerror(errno));
	} else {
		int fd = open(src, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return cli_failf("cp: %s: %s", src, strerror(errno));
		if (st.st_size == 0)
			close(fd);
		else if (evbuffer_add_file(body, fd, 0, st.st_size) < 0) /* takes fd */
			return cli_failf("cp: %s: cannot read it", src);
	}
	char mode[32];
	snprintf(mode, sizeof(mode), "&mode=%04o", (unsigned)(st.st_mode & 0777));
	_cleanup_free_ char *q = path_query(target, mode);
	_cleanup_free_ char *url = sandbox_path(id, NULL);
	_cleanup_free_ char *full = xasprintf("%s/files%s", url, q);
	struct http h = {0};
	int r = 0;
	if (http_start(&h, c, "PUT", full, "application/json", "application/octet-stream", body) <
	        0 ||
	    http_wait(&h) < 0)
		r = http_fail(&h, id);
	http_done(&h);
	return r;
}

int cmd_cp(int argc, char **argv)
{
	static const struct option opts[] = {COMMON_OPTIONS{NULL, 0, NULL, 0}};
	struct client c = {.verb = "cp"};
	int o;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1)
		if (!common_option(&c, o, optarg))
			return usage_error("cp", cp_usage, o, argv);
	if (argc - optind != 2)
		return cli_failf("cp: expected SRC and DST (usage: warden cp SRC DST, one of them "
		                 "ID:/path)");
	const char *src = argv[optind], *dst = argv[optind + 1];
	_cleanup_free_ char *sid = NULL, *did = NULL;
	const char *spath = NULL, *dpath = NULL;
	bool sr = split_remote(src, &sid, &spath), dr = split_remote(dst, &did, &dpath);
	if (sr == dr)
		return cli_failf("cp: %s", sr ? "copying between sandboxes is not supported"
		                              : "one of SRC and DST must be ID:/path");
	const char *rpath = sr ? spath : dpath;
	if (rpath[0] != '/')
		return cli_failf("cp: \"%s\": the path in the sandbox must be absolute",
		                 sr ? src : dst);
	if (client_init(&c))
		return EXIT_WARDEN;
	int r = sr ? download(&c, sid, spath, dst, 0) : upload(&c, src, did, dpath, 0);
	client_done(&c);
	return r;
}

/* ---- ps, rm, pause, resume, logs, events ------------------------------------------- */

static const char ps_usage[] = "usage: warden ps [OPTIONS]\n"
                               "\n"
                               "List wardend's sandboxes.\n"
                               "\n"
                               "  --label KEY=VALUE   only those with this label (repeatable)\n"
                               "  -q, --quiet         only their ids\n"
                               "  --json              as a JSON array\n";

static void print_labels(json_t *labels)
{
	const char *k;
	json_t *v;
	bool first = true;
	json_object_foreach(labels, k, v)
	{
		printf("%s%s=%s", first ? "" : ",", k,
		       json_string_value(v) ? json_string_value(v) : "");
		first = false;
	}
	if (first)
		fputs("-", stdout);
}

static const char *str_or(json_t *obj, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(obj, key));
	return s ? s : dflt;
}

int cmd_ps(int argc, char **argv)
{
	static const struct option opts[] = {
	    COMMON_OPTIONS{"label", required_argument, NULL, OPT_LABEL},
	    {"quiet", no_argument, NULL, 'q'},
	    {"json", no_argument, NULL, OPT_JSON},
	    {NULL, 0, NULL, 0},
	};
	struct client c = {.verb = "ps"};
	_cleanup_evbuffer_ struct evbuffer *query = evbuffer_new();
	bool quiet = false, as_json = false;
	int o;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
		if (common_option(&c, o, optarg))
			continue;
		switch (o) {
		case OPT_LABEL: {
			if (!strchr(optarg, '=') || optarg[0] == '=')
				return cli_failf("ps: --label \"%s\": expected KEY=VALUE", optarg);
			_cleanup_free_ char *enc = evhttp_uriencode(optarg, -1, 0);
			evbuffer_add_printf(query, "%slabel=%s",
			                    evbuffer_get_length(query) ? "&" : "?", enc);
			break;
		}
		case 'q':
			quiet = true;
			break;
		case OPT_JSON:
			as_json = true;
			break;
		default:
			return usage_error("ps", ps_usage, o, argv);
		}
	}
	if (optind != argc)
		return cli_failf("ps: unexpected argument \"%s\"", argv[optind]);
	if (client_init(&c))
		return EXIT_WARDEN;
	evbuffer_add(query, "", 1);
	_cleanup_free_ char *path =
	    xasprintf("/v1/sandboxes%s", (const char *)evbuffer_pullup(query, -1));
	_cleanup_json_ json_t *ans = NULL;
	int r = call_json(&c, "GET", path, NULL, &ans, NULL);
	client_done(&c);
	if (r)
		return r;
	json_t *list = json_object_get(ans, "sandboxes");
	if (as_json) {
		_cleanup_free_ char *s =
		    json_dumps(list ? list : json_array(), JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("%s\n", s);
		return 0;
	}
	if (!quiet)
		printf("%-16s  %-10s  %-7s  %-20s  %-20s  %s\n", "ID", "POLICY", "STATE", "CREATED",
		       "EXPIRES", "LABELS");
	size_t i;
	json_t *sb;
	json_array_foreach(list, i, sb)
	{
		if (quiet) {
			printf("%s\n", str_or(sb, "id", "?"));
			continue;
		}
		printf("%-16s  %-10s  %-7s  %-20s  %-20s  ", str_or(sb, "id", "?"),
		       str_or(sb, "policy", "-"), str_or(sb, "state", "-"),
		       str_or(sb, "created_at", "-"), str_or(sb, "expires_at", "-"));
		print_labels(json_object_get(sb, "labels"));
		putchar('\n');
	}
	return 0;
}

/* `warden VERB ID...`: one request per id (method, suffix); every id is tried, and the
 * status is 125 if any failed. */
static int per_id(const char *verb, const char *method, const char *suffix, int argc, char **argv)
{
	static const struct option opts[] = {COMMON_OPTIONS{NULL, 0, NULL, 0}};
	struct client c = {.verb = verb};
	_cleanup_free_ char *usage =
	    xasprintf("usage: warden %s [OPTIONS] ID...\n\n%s the sandboxes named.\n", verb,
	              streq(verb, "rm")      ? "Destroy"
	              : streq(verb, "pause") ? "Freeze every process of"
	                                     : "Thaw");
	int o;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1)
		if (!common_option(&c, o, optarg))
			return usage_error(verb, usage, o, argv);
	if (optind >= argc)
		return cli_failf("%s: which sandbox? (usage: warden %s ID...)", verb, verb);
	if (client_init(&c))
		return EXIT_WARDEN;
	int r = 0;
	for (int i = optind; i < argc; i++) {
		_cleanup_free_ char *path = sandbox_path(argv[i], suffix);
		if (call_json(&c, method, path, NULL, NULL, argv[i]))
			r = EXIT_WARDEN;
	}
	client_done(&c);
	return r;
}

int cmd_rm(int argc, char **argv)
{
	return per_id("rm", "DELETE", NULL, argc, argv);
}

int cmd_pause(int argc, char **argv)
{
	return per_id("pause", "POST", "/pause", argc, argv);
}

int cmd_resume(int argc, char **argv)
{
	return per_id("resume", "POST", "/resume", argc, argv);
}

/* Options and one ID, for logs and events. Returns 0 and *ret_id, -1 after help, or
 * EXIT_WARDEN. */
static int one_id(struct client *c, const char *usage, int argc, char **argv, bool *as_json,
                  const char **ret_id)
{
	static const struct option opts[] = {
	    COMMON_OPTIONS{"json", no_argument, NULL, OPT_JSON},
	    {NULL, 0, NULL, 0},
	};
	int o;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (common_option(c, o, optarg))
			continue;
		if (o == OPT_JSON && as_json) {
			*as_json = true;
			continue;
		}
		int r = usage_error(c->verb, usage, o, argv);
		return r ? r : -1;
	}
	if (argc - optind != 1)
		return cli_failf("%s: expected one sandbox id (usage: warden %s ID)", c->verb,
		                 c->verb);
	*ret_id = argv[optind];
	return client_init(c) ? EXIT_WARDEN : 0;
}

static const char logs_usage[] = "usage: warden logs [OPTIONS] ID\n"
                                 "\n"
                                 "The commands run in sandbox ID, with their exit statuses.\n"
                                 "\n"
                                 "  --json   as a JSON array\n";

int cmd_logs(int argc, char **argv)
{
	struct client c = {.verb = "logs"};
	bool as_json = false;
	const char *id = NULL;
	int r = one_id(&c, logs_usage, argc, argv, &as_json, &id);
	if (r)
		return r < 0 ? 0 : r;
	_cleanup_free_ char *path = sandbox_path(id, "/logs");
	_cleanup_json_ json_t *ans = NULL;
	r = call_json(&c, "GET", path, NULL, &ans, id);
	client_done(&c);
	if (r)
		return r;
	json_t *execs = json_object_get(ans, "execs");
	if (as_json) {
		_cleanup_free_ char *s =
		    json_dumps(execs ? execs : json_array(), JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("%s\n", s);
		return 0;
	}
	printf("%-6s  %-5s  %-24s  %-24s  %s\n", "EXEC", "EXIT", "STARTED", "ENDED", "COMMAND");
	size_t i, j;
	json_t *x, *a;
	json_array_foreach(execs, i, x)
	{
		json_t *code = json_object_get(x, "exit_code");
		char exit_s[24] = "-";
		if (json_is_integer(code))
			snprintf(exit_s, sizeof(exit_s), "%lld",
			         (long long)json_integer_value(code));
		printf("%-6lld  %-5s  %-24s  %-24s  ",
		       (long long)json_integer_value(json_object_get(x, "exec_id")), exit_s,
		       str_or(x, "started_at", "-"), str_or(x, "ended_at", "-"));
		json_array_foreach(json_object_get(x, "cmd"), j, a)
		{
			printf("%s%s", j ? " " : "",
			       json_string_value(a) ? json_string_value(a) : "");
		}
		putchar('\n');
	}
	return 0;
}

static const char events_usage[] =
    "usage: warden events [OPTIONS] ID\n"
    "\n"
    "Stream sandbox ID's telemetry events as they happen, one JSON object a line\n"
    "(docs/events.md), until the sandbox ends or this is interrupted.\n";

struct sse {
	struct evbuffer *line, *data;
};

/* Server-sent events: "data:" lines gather until a blank line; each event's data is
 * printed as one line. */
static int events_sink(struct http *h, const char *chunk, size_t len)
{
	struct sse *s = h->arg;
	evbuffer_add(s->line, chunk, len);
	size_t n;
	char *line;
	while ((line = evbuffer_readln(s->line, &n, EVBUFFER_EOL_CRLF))) {
		if (n == 0 && evbuffer_get_length(s->data)) {
			evbuffer_add(s->data, "\n", 1);
			size_t dl = evbuffer_get_length(s->data);
			int r = write_all(STDOUT_FILENO, (const char *)evbuffer_pullup(s->data, -1),
			                  dl);
			evbuffer_drain(s->data, dl);
			if (r < 0 && errno == EPIPE)
				die_of_sigpipe();
			if (r < 0) {
				free(line);
				why(h, errno, "writing the events");
				return -1;
			}
		} else if (!strncmp(line, "data:", 5)) {
			const char *v = line + 5 + (line[5] == ' ');
			if (evbuffer_get_length(s->data))
				evbuffer_add(s->data, "\n", 1);
			evbuffer_add(s->data, v, strlen(v));
		}
		free(line);
	}
	return 0;
}

int cmd_events(int argc, char **argv)
{
	struct client c = {.verb = "events"};
	const char *id = NULL;
	int r = one_id(&c, events_usage, argc, argv, NULL, &id);
	if (r)
		return r < 0 ? 0 : r;
	_cleanup_free_ char *path = sandbox_path(id, "/events");
	struct sse s = {.line = evbuffer_new(), .data = evbuffer_new()};
	struct http h = {.sink = events_sink, .arg = &s};
	if (http_start(&h, &c, "GET", path, "text/event-stream", NULL, NULL) < 0 ||
	    http_wait(&h) < 0)
		r = http_fail(&h, id);
	http_done(&h);
	evbuffer_free(s.line);
	evbuffer_free(s.data);
	client_done(&c);
	return r;
}
