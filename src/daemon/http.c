/* http.c: wardend's HTTP front: the listeners (a unix socket; TCP with bearer tokens),
 * authentication, routing a request to its handler, and the replies.
 *
 * Sections: replies; authentication; dispatch; listeners.
 *
 * libevent's evhttp parses HTTP; this file never looks at raw bytes. What a request
 * carries is validated by request.c before a handler acts on it.
 */
#define _GNU_SOURCE
#include "wardend.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <grp.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#define HEADERS_MAX    (16u << 10)
#define READ_TIMEOUT_S 60

static struct evhttp_bound_socket *unix_bound, *tcp_bound;

/* ---- replies ----------------------------------------------------------------------- */

const char *status_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 409:
		return "Conflict";
	case 413:
		return "Payload Too Large";
	case 429:
		return "Too Many Requests";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 507:
		return "Insufficient Storage";
	default:
		return "Unknown";
	}
}

void count_status(int status)
{
	if (status >= 100 && status < 600)
		wd.requests[status / 100]++;
}

void reply_text(struct evhttp_request *req, int status, const char *content_type,
                struct evbuffer *body)
{
	if (content_type)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
		                  content_type);
	count_status(status);
	evhttp_send_reply(req, status, status_reason(status), body);
}

void reply_json(struct evhttp_request *req, int status, json_t *body)
{
	struct evbuffer *b = evbuffer_new();
	char *text = json_dumps(body, JSON_COMPACT);
	evbuffer_add_printf(b, "%s\n", text ? text : "{}");
	free(text);
	json_decref(body);
	reply_text(req, status, "application/json", b);
	evbuffer_free(b);
}

void reply_empty(struct evhttp_request *req, int status)
{
	count_status(status);
	evhttp_send_reply(req, status, status_reason(status), NULL);
}

static void reply_error_text(struct evhttp_request *req, int status, const char *code,
                             const char *msg)
{
	reply_json(req, status, json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg));
}

void reply_error(struct evhttp_request *req, int status, const char *code, const char *fmt, ...)
{
	_cleanup_free_ char *msg = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		abort();
	va_end(ap);
	reply_error_text(req, status, code, msg);
}

void reply_api_error(struct evhttp_request *req, const struct api_error *e)
{
	if (e->status == 405 && e->allow[0])
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", e->allow);
	reply_error_text(req, e->status, e->code ? e->code : "error", e->message);
}

int errno_status(int errnum, const char **ret_code)
{
	static const struct {
		int errnum, status;
		const char *code;
	} map[] = {
	    {ENOENT, 404, "not_found"},      {EACCES, 403, "forbidden"},
	    {EPERM, 403, "forbidden"},       {EROFS, 403, "read_only"},
	    {EEXIST, 409, "exists"},         {ENOTDIR, 400, "not_a_directory"},
	    {EISDIR, 409, "is_a_directory"}, {ENOTEMPTY, 409, "not_empty"},
	    {ELOOP, 409, "symlink"},         {EINVAL, 400, "invalid"},
	    {ENAMETOOLONG, 400, "invalid"},  {EXDEV, 409, "mount_point"},
	    {ENOSPC, 507, "no_space"},       {EDQUOT, 507, "no_space"},
	    {EFBIG, 413, "too_large"},       {ESRCH, 409, "not_running"},
	    {ETIMEDOUT, 504, "timeout"},     {EMSGSIZE, 413, "too_large"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(map); i++)
		if (map[i].errnum == errnum) {
			*ret_code = map[i].code;
			return map[i].status;
		}
	*ret_code = "internal";
	return 500;
}

void reply_werror(struct evhttp_request *req, struct warden_error *e)
{
	const char *code;
	int status = errno_status(e ? e->errnum : 0, &code);
	reply_error_text(req, status, code, warden_error_text(e));
}

/* ---- authentication ---------------------------------------------------------------- */

/* Tokens are compared as SHA-256 digests with CRYPTO_memcmp, against every token without
 * stopping at a match: the time taken says nothing about how much of a guess was right,
 * nor about which token matched. */
static const struct token *authenticate(struct evhttp_request *req)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return NULL;
	const char *tok = h + 7;
	while (*tok == ' ')
		tok++;
	unsigned char d[32];
	unsigned int n = 0;
	EVP_Digest(tok, strlen(tok), d, &n, EVP_sha256(), NULL);
	const struct token *found = NULL;
	for (size_t i = 0; i < wd.n_tokens; i++)
		if (CRYPTO_memcmp(d, wd.tokens[i].digest, sizeof(d)) == 0)
			found = &wd.tokens[i];
	return found;
}

/* ---- dispatch ---------------------------------------------------------------------- */

static const char *method_name(enum evhttp_cmd_type cmd)
{
	switch (cmd) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_OPTIONS:
		return "OPTIONS";
	case EVHTTP_REQ_TRACE:
		return "TRACE";
	case EVHTTP_REQ_CONNECT:
		return "CONNECT";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	}
	return "UNKNOWN";
}

struct sandbox *call_sandbox(struct call *c)
{
	struct sandbox *sb = sandbox_find(c->m.id);
	/* A token sees only what it made; the unix socket (owner "") sees everything. Pooled
	 * sandboxes have not been handed out, and are nobody's yet. */
	if (!sb || sb->destroying || sb->pool || (c->owner[0] && !streq(sb->owner, c->owner))) {
		reply_error(c->req, 404, "not_found", "sandbox %s: no such sandbox", c->m.id);
		return NULL;
	}
	return sb;
}

static void on_request(struct evhttp_request *req, void *arg)
{
	bool tcp = arg != NULL;
	struct call c = {.req = req, .t0 = mono_us(), .owner = ""};
	struct api_error e = {0};
	if (wd.stopping)
		return reply_error(req, 503, "stopping", "wardend is stopping");
	if (tcp) {
		const struct token *t = authenticate(req);
		if (!t) {
			evhttp_add_header(evhttp_request_get_output_headers(req),
			                  "WWW-Authenticate", "Bearer");
			return reply_error(req, 401, "unauthorized",
			                   "Authorization: a valid \"Bearer TOKEN\" is required");
		}
		c.owner = t->id;
		c.quota = t->quota;
	}
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	if (!path || !*path)
		path = "/";
	if (api_route_match(method_name(evhttp_request_get_command(req)), path, &c.m, &e) < 0)
		return reply_api_error(req, &e);
	if (api_query_parse(c.m.route, evhttp_uri_get_query(uri), &c.q, &e) < 0)
		return reply_api_error(req, &e);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	c.body_len = evbuffer_get_length(in);
	if (c.body_len && !api_routes[c.m.route].body) {
		api_query_clear(&c.q);
		return reply_error(req, 400, "unexpected_body", "%s %s: takes no body",
		                   api_routes[c.m.route].method, api_routes[c.m.route].pattern);
	}
	c.body = c.body_len ? (const char *)evbuffer_pullup(in, -1) : "";
	api_dispatch(&c);
	api_query_clear(&c.q);
}

/* ---- listeners --------------------------------------------------------------------- */

static struct evhttp *new_http(bool tcp)
{
	struct evhttp *h = evhttp_new(wd.base);
	if (!h)
		return NULL;
	/* A body over the limit is refused by libevent (413) before it is read. */
	evhttp_set_max_body_size(h, (ev_ssize_t)wd.max_body);
	evhttp_set_max_headers_size(h, HEADERS_MAX);
	evhttp_set_timeout(h, READ_TIMEOUT_S);
	/* Every method reaches the router, which answers 405 with the methods a path has. */
	evhttp_set_allowed_methods(h, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
	                                  EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
	                                  EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(h, on_request, tcp ? (void *)1 : NULL);
	return h;
}

/* A socket file left by a wardend that is gone is replaced; one that answers is another
 * wardend's, and is left alone. */
static int clear_stale_socket(const char *path, struct warden_error **err)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : warden_error_set(err, errno, "%s", path);
	if (!S_ISSOCK(st.st_mode))
		return warden_error_set(err, EEXIST, "%s: exists and is not a socket", path);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, path);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return warden_error_set(err, EADDRINUSE, "%s: another wardend is listening", path);
	if (unlink(path) < 0)
		return warden_error_set(err, errno, "%s", path);
	return 0;
}

static int listen_unix(struct warden_error **err)
{
	const char *path = wd.socket_path;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return warden_error_set(err, ENAMETOOLONG, "--socket %s", path);
	strcpy(sa.sun_path, path);
	_cleanup_free_ char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return warden_error_set(err, errno, "%s", dir);
	}
	if (clear_stale_socket(path, err) < 0)
		return -1;
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return warden_error_set(err, errno, "--socket %s", path);
	/* Whoever can connect can run code in sandboxes and read their files: root, and the
	 * `warden` group where there is one (as the docker group, membership is that power). */
	struct group *g = getgrnam("warden");
	if ((g && chown(path, (uid_t)-1, g->gr_gid) < 0) || chmod(path, g ? 0660 : 0600) < 0)
		return warden_error_set(err, errno, "--socket %s", path);
	if (listen(fd, 128) < 0)
		return warden_error_set(err, errno, "--socket %s", path);
	unix_bound = evhttp_accept_socket_with_handle(wd.http_unix, fd);
	if (!unix_bound)
		return warden_error_set(err, 0, "--socket %s: cannot serve it", path);
	fd = -1; /* evhttp's now */
	return 0;
}

static int listen_tcp(struct warden_error **err)
{
	_cleanup_free_ char *host = xstrdup(wd.listen);
	char *colon = strrchr(host, ':');
	uint64_t port;
	const char *why = NULL;
	if (!colon || parse_uint(colon + 1, 65535, &port, &why) < 0 || port == 0)
		return warden_error_set(err, 0, "--listen %s: expected HOST:PORT", wd.listen);
	*colon = '\0';
	char *h = host;
	if (*h == '[' && colon > h && colon[-1] == ']') {
		h++;
		colon[-1] = '\0';
	}
	tcp_bound = evhttp_bind_socket_with_handle(wd.http_tcp, h, (ev_uint16_t)port);
	if (!tcp_bound)
		return warden_error_set(err, errno, "--listen %s", wd.listen);
	return 0;
}

int http_start(struct warden_error **err)
{
	wd.http_unix = new_http(false);
	if (!wd.http_unix)
		return warden_error_set(err, ENOMEM, "evhttp_new");
	if (listen_unix(err) < 0)
		return -1;
	if (wd.listen) {
		wd.http_tcp = new_http(true);
		if (!wd.http_tcp)
			return warden_error_set(err, ENOMEM, "evhttp_new");
		if (listen_tcp(err) < 0)
			return -1;
	}
	return 0;
}

/* Stop accepting; connections already open finish what they are doing. */
void http_stop(void)
{
	if (unix_bound) {
		evhttp_del_accept_socket(wd.http_unix, unix_bound);
		unix_bound = NULL;
		(void)unlink(wd.socket_path);
	}
	if (tcp_bound) {
		evhttp_del_accept_socket(wd.http_tcp, tcp_bound);
		tcp_bound = NULL;
	}
}
