/* request.c: wardend's routing table and request validation (request.h).
 *
 * Sections: errors; routes; query strings; JSON fields; bodies (create, exec, kill);
 * Accept. The UTF-8 repair of exec output is src/lib/text.c.
 */
#define _GNU_SOURCE
#include "request.h"
#include "../lib/files.h"
#include "../lib/policy.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <strings.h>

#define QUERY_PARAMS_MAX 32
#define ENV_MAX          256
#define ENV_NAME_MAX     256
#define ENV_VALUE_MAX    (32u << 10)
#define LABELS_MAX       64
#define LABEL_KEY_MAX    63
#define LABEL_VALUE_MAX  256
#define ARGV_MAX         4096
#define TTL_MAX_EVER     (366 * 86400)
#define EXEC_TIMEOUT_MAX 86400.0

/* ---- errors ------------------------------------------------------------------------ */

int api_fail(struct api_error *e, int status, const char *code, const char *fmt, ...)
{
	va_list ap;
	e->status = status;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- routes ------------------------------------------------------------------------ */

#define SB "/v1/sandboxes/{id}"
const struct api_route_def api_routes[R_MAX] = {
    [R_HEALTHZ] = {"GET", "/healthz", {NULL}, false},
    [R_METRICS] = {"GET", "/metrics", {NULL}, false},
    [R_CREATE] = {"POST", "/v1/sandboxes", {NULL}, true},
    [R_LIST] = {"GET", "/v1/sandboxes", {"label"}, false},
    [R_GET] = {"GET", SB, {NULL}, false},
    [R_DELETE] = {"DELETE", SB, {NULL}, false},
    [R_EXEC] = {"POST", SB "/exec", {NULL}, true},
    [R_EXEC_KILL] = {"POST", SB "/exec/{exec_id}/kill", {NULL}, true},
    [R_FILE_GET] = {"GET", SB "/files", {"path"}, false},
    [R_FILE_PUT] = {"PUT", SB "/files", {"path", "mode"}, true},
    [R_FILE_DELETE] = {"DELETE", SB "/files", {"path", "recursive"}, false},
    [R_FILE_LIST] = {"GET", SB "/files/list", {"path"}, false},
    [R_FILE_STAT] = {"GET", SB "/files/stat", {"path"}, false},
    [R_FILE_MKDIR] = {"POST", SB "/files/mkdir", {"path", "parents", "mode"}, false},
    [R_PAUSE] = {"POST", SB "/pause", {NULL}, false},
    [R_RESUME] = {"POST", SB "/resume", {NULL}, false},
    [R_STATS] = {"GET", SB "/stats", {NULL}, false},
    [R_EVENTS] = {"GET", SB "/events", {NULL}, false},
    [R_LOGS] = {"GET", SB "/logs", {NULL}, false},
};

static bool is_hex_id(const char *s, size_t n)
{
	if (n != SANDBOX_ID_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* Does path have the shape of pattern (placeholders match any one segment)? The
 * placeholders' text is stored in m, not yet checked. */
static bool shape_match(const char *pattern, const char *path, const char **id, size_t *id_len,
                        const char **xid, size_t *xid_len)
{
	const char *p = pattern, *s = path;
	while (*p && *s) {
		if (*p != '/' || *s != '/')
			return false;
		p++, s++;
		const char *pe = strchrnul(p, '/'), *se = strchrnul(s, '/');
		size_t pn = (size_t)(pe - p), sn = (size_t)(se - s);
		if (pn == 4 && !strncmp(p, "{id}", 4)) {
			if (sn == 0)
				return false;
			*id = s, *id_len = sn;
		} else if (pn == 9 && !strncmp(p, "{exec_id}", 9)) {
			if (sn == 0)
				return false;
			*xid = s, *xid_len = sn;
		} else if (pn != sn || strncmp(p, s, pn)) {
			return false;
		}
		p = pe, s = se;
	}
	return !*p && !*s;
}

int api_route_match(const char *method, const char *path, struct api_match *ret,
                    struct api_error *e)
{
	bool shaped = false;
	e->allow[0] = '\0';
	for (size_t r = 0; r < R_MAX; r++) {
		const char *id = NULL, *xid = NULL;
		size_t id_len = 0, xid_len = 0;
		if (!shape_match(api_routes[r].pattern, path, &id, &id_len, &xid, &xid_len))
			continue;
		shaped = true;
		if (!streq(api_routes[r].method, method)) {
			size_t n = strlen(e->allow);
			if (!strstr(e->allow, api_routes[r].method))
				snprintf(e->allow + n, sizeof(e->allow) - n, "%s%s", n ? ", " : "",
				         api_routes[r].method);
			continue;
		}
		*ret = (struct api_match){.route = (enum api_route)r};
		if (id) {
			if (!is_hex_id(id, id_len))
				return api_fail(e, 400, "invalid_id",
				                "id \"%.*s\": not a sandbox id (16 hex digits)",
				                (int)(id_len > 64 ? 64 : id_len), id);
			memcpy(ret->id, id, id_len);
			ret->id[id_len] = '\0';
		}
		if (xid) {
			uint64_t v = 0;
			bool ok = xid_len > 0 && xid_len <= 15 && xid[0] != '0';
			for (size_t i = 0; ok && i < xid_len; i++) {
				ok = xid[i] >= '0' && xid[i] <= '9';
				v = v * 10 + (uint64_t)(xid[i] - '0');
			}
			if (!ok)
				return api_fail(
				    e, 400, "invalid_id",
				    "exec_id \"%.*s\": not an exec id (a positive integer)",
				    (int)(xid_len > 64 ? 64 : xid_len), xid);
			ret->exec_id = v;
		}
		return 0;
	}
	if (shaped)
		return api_fail(e, 405, "method_not_allowed",
		                "%s %s: method not allowed (allowed: %s)", method, path, e->allow);
	return api_fail(e, 404, "not_found", "no route %s %.200s", method, path);
}

/* ---- query strings ----------------------------------------------------------------- */

static int unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decode s[0..n) ('+' is a space). Returns the string, or NULL (bad escape or a
 * NUL byte, *why says which). */
static char *decode(const char *s, size_t n, const char **why)
{
	char *out = xmalloc(n + 1), *o = out;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '+') {
			*o++ = ' ';
		} else if (s[i] == '%') {
			int hi = i + 2 < n ? unhex(s[i + 1]) : -1;
			int lo = i + 2 < n ? unhex(s[i + 2]) : -1;
			if (hi < 0 || lo < 0) {
				*why = "a bad %-escape";
				free(out);
				return NULL;
			}
			char c = (char)(hi << 4 | lo);
			if (c == '\0') {
				*why = "a NUL byte";
				free(out);
				return NULL;
			}
			*o++ = c;
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}

static bool route_takes(enum api_route route, const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(api_routes[route].query) && api_routes[route].query[i];
	     i++)
		if (streq(api_routes[route].query[i], name))
			return true;
	return false;
}

static void takes_list(enum api_route route, char *buf, size_t len)
{
	buf[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(api_routes[route].query) && api_routes[route].query[i];
	     i++) {
		size_t n = strlen(buf);
		snprintf(buf + n, len - n, "%s%s", i ? ", " : "", api_routes[route].query[i]);
	}
	if (!buf[0])
		snprintf(buf, len, "none");
}

int api_query_parse(enum api_route route, const char *query, struct api_query *ret,
                    struct api_error *e)
{
	*ret = (struct api_query){0};
	if (!query || !*query)
		return 0;
	for (const char *p = query; *p;) {
		const char *end = strchrnul(p, '&');
		const char *eq = memchr(p, '=', (size_t)(end - p));
		const char *vs = eq ? eq + 1 : end;
		const char *why = NULL;
		if (end == p) {
			p = *end ? end + 1 : end;
			continue;
		}
		if (ret->n == QUERY_PARAMS_MAX) {
			api_query_clear(ret);
			return api_fail(e, 400, "invalid_query", "query: more than %d parameters",
			                QUERY_PARAMS_MAX);
		}
		char *name = decode(p, (size_t)((eq ? eq : end) - p), &why);
		if (!name) {
			api_query_clear(ret);
			return api_fail(e, 400, "invalid_query", "query: a parameter name has %s",
			                why);
		}
		if (!route_takes(route, name)) {
			char takes[96];
			takes_list(route, takes, sizeof(takes));
			api_fail(e, 400, "unknown_parameter",
			         "query: unknown parameter \"%.64s\" (%s %s takes: %s)", name,
			         api_routes[route].method, api_routes[route].pattern, takes);
			free(name);
			api_query_clear(ret);
			return -1;
		}
		char *value = decode(vs, (size_t)(end - vs), &why);
		if (!value) {
			api_fail(e, 400, "invalid_query", "%s: the value has %s", name, why);
			free(name);
			api_query_clear(ret);
			return -1;
		}
		ret->v = xrealloc(ret->v, (ret->n + 1) * sizeof(*ret->v));
		ret->v[ret->n++] = (struct api_param){name, value};
		p = *end ? end + 1 : end;
	}
	return 0;
}

void api_query_clear(struct api_query *q)
{
	for (size_t i = 0; i < q->n; i++) {
		free(q->v[i].name);
		free(q->v[i].value);
	}
	free(q->v);
	*q = (struct api_query){0};
}

int api_query_get(const struct api_query *q, const char *name, const char **ret,
                  struct api_error *e)
{
	*ret = NULL;
	for (size_t i = 0; i < q->n; i++) {
		if (!streq(q->v[i].name, name))
			continue;
		if (*ret)
			return api_fail(e, 400, "invalid_query", "%s: given more than once", name);
		*ret = q->v[i].value;
	}
	return 0;
}

static int parse_bool(const char *name, const char *v, bool *ret, struct api_error *e)
{
	if (!v)
		return 0;
	if (streq(v, "true") || streq(v, "1"))
		*ret = true;
	else if (streq(v, "false") || streq(v, "0"))
		*ret = false;
	else
		return api_fail(e, 400, "invalid_parameter", "%s: \"%.64s\" is not true or false",
		                name, v);
	return 0;
}

/* "0644", "644", "755": permission bits only (no setuid, setgid, sticky). */
static int parse_mode(const char *v, int *ret, struct api_error *e)
{
	size_t n = v ? strlen(v) : 0;
	int m = 0;
	if (!v)
		return 0;
	bool ok = n >= 1 && n <= 4;
	for (size_t i = 0; ok && i < n; i++) {
		ok = v[i] >= '0' && v[i] <= '7';
		m = m * 8 + (v[i] - '0');
	}
	if (!ok || m > 0777)
		return api_fail(e, 400, "invalid_parameter",
		                "mode: \"%.64s\" is not an octal mode from 0000 to 0777", v);
	*ret = m;
	return 0;
}

int api_files_query(enum api_route route, const struct api_query *q, struct api_files_q *ret,
                    struct api_error *e)
{
	const char *path, *mode, *recursive, *parents;
	*ret = (struct api_files_q){.mode = -1};
	if (api_query_get(q, "path", &path, e) < 0 || api_query_get(q, "mode", &mode, e) < 0 ||
	    api_query_get(q, "recursive", &recursive, e) < 0 ||
	    api_query_get(q, "parents", &parents, e) < 0)
		return -1;
	struct warden_error *we = NULL;
	if (warden_path_check(path, path ? strlen(path) : 0, &we) < 0) {
		api_fail(e, 400, "invalid_parameter", "%s", we->msg);
		warden_error_free(we);
		return -1;
	}
	ret->path = path;
	(void)route;
	if (parse_mode(mode, &ret->mode, e) < 0 ||
	    parse_bool("recursive", recursive, &ret->recursive, e) < 0 ||
	    parse_bool("parents", parents, &ret->parents, e) < 0)
		return -1;
	return 0;
}

int api_list_query(const struct api_query *q, struct api_label_filter *ret, struct api_error *e)
{
	*ret = (struct api_label_filter){0};
	for (size_t i = 0; i < q->n; i++) {
		if (!streq(q->v[i].name, "label"))
			continue;
		const char *v = q->v[i].value, *eq = strchr(v, '=');
		if (!eq || eq == v)
			return api_fail(e, 400, "invalid_parameter",
			                "label: \"%.64s\" is not KEY=VALUE", v);
		if (ret->n == ARRAY_SIZE(ret->key))
			return api_fail(e, 400, "invalid_parameter", "label: more than %zu filters",
			                ARRAY_SIZE(ret->key));
		ret->key[ret->n] = v;
		ret->key_len[ret->n] = (size_t)(eq - v);
		ret->value[ret->n] = eq + 1;
		ret->n++;
	}
	return 0;
}

bool api_labels_match(json_t *labels, const struct api_label_filter *f)
{
	for (size_t i = 0; i < f->n; i++) {
		json_t *v = json_object_getn(labels, f->key[i], f->key_len[i]);
		if (!json_is_string(v) || !streq(json_string_value(v), f->value[i]))
			return false;
	}
	return true;
}

/* ---- JSON fields ------------------------------------------------------------------- */

static const char *kind(json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	default:
		return "null";
	}
}

static int wrong_type(struct api_error *e, const char *field, const char *want, json_t *v)
{
	return api_fail(e, 400, "invalid_field", "%s: expected %s, got %s", field, want, kind(v));
}

/* A string without NUL bytes (bodies are loaded with JSON_ALLOW_NUL for stdin). */
static int get_text(json_t *v, const char *field, const char **ret, struct api_error *e)
{
	if (!json_is_string(v))
		return wrong_type(e, field, "a string", v);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return api_fail(e, 400, "invalid_field", "%s: contains a NUL byte", field);
	*ret = json_string_value(v);
	return 0;
}

static json_t *load_object(const char *body, size_t len, struct api_error *e)
{
	json_error_t je;
	if (len == 0)
		return json_object();
	json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	if (!o) {
		api_fail(e, 400, "invalid_json", "body: not JSON: %s (line %d, column %d)", je.text,
		         je.line, je.column);
		return NULL;
	}
	if (!json_is_object(o)) {
		wrong_type(e, "body", "a JSON object", o);
		json_decref(o);
		return NULL;
	}
	return o;
}

/* A JSON object of strings (env, labels): at most max members, each key passing key_ok
 * (key_what says what a key must be), each value text of at most value_max bytes. */
struct string_map {
	const char *field, *members;
	size_t max, value_max;
	bool (*key_ok)(const char *k, size_t n);
	const char *key_what;
};

static int check_string_map(json_t *v, const struct string_map *m, struct api_error *e)
{
	const char *k;
	json_t *val;
	if (!json_is_object(v))
		return wrong_type(e, m->field, "an object of strings", v);
	if (json_object_size(v) > m->max)
		return api_fail(e, 400, "invalid_field", "%s: more than %zu %s", m->field, m->max,
		                m->members);
	json_object_foreach(v, k, val)
	{
		const char *s;
		char field[300];
		if (!m->key_ok(k, json_object_iter_key_len(json_object_key_to_iter(k))))
			return api_fail(e, 400, "invalid_field", "%s: \"%.64s\" is not %s",
			                m->field, k, m->key_what);
		snprintf(field, sizeof(field), "%s.%.256s", m->field, k);
		if (get_text(val, field, &s, e) < 0)
			return -1;
		if (strlen(s) > m->value_max)
			return api_fail(e, 400, "invalid_field", "%s: longer than %zu bytes", field,
			                m->value_max);
	}
	return 0;
}

/* n: the key's length, NUL bytes included (a key with one is refused). */
static bool env_key_ok(const char *k, size_t n)
{
	return n == strlen(k) && n <= ENV_NAME_MAX && warden_env_name_valid(k);
}

static bool label_key_ok(const char *k, size_t n)
{
	if (n == 0 || n > LABEL_KEY_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= 'A' && k[i] <= 'Z') ||
		      (k[i] >= '0' && k[i] <= '9') || (k[i] && strchr("._/-", k[i]))))
			return false;
	return true;
}

#define STR_(x) #x
#define STR(x)  STR_(x)

static const struct string_map env_map = {
    .field = "env",
    .members = "variables",
    .max = ENV_MAX,
    .value_max = ENV_VALUE_MAX,
    .key_ok = env_key_ok,
    .key_what = "a variable name ([A-Za-z_][A-Za-z0-9_]*)",
};

static const struct string_map labels_map = {
    .field = "labels",
    .members = "labels",
    .max = LABELS_MAX,
    .value_max = LABEL_VALUE_MAX,
    .key_ok = label_key_ok,
    .key_what = "a label key (1 to " STR(LABEL_KEY_MAX) " of [A-Za-z0-9._/-])",
};

/* {"NAME": "value", ...} -> "NAME=value" */
static int parse_env(json_t *v, struct strv *ret, struct api_error *e)
{
	const char *k;
	json_t *val;
	if (check_string_map(v, &env_map, e) < 0)
		return -1;
	json_object_foreach(v, k, val)
	{
		strv_push_take(ret, xasprintf("%s=%s", k, json_string_value(val)));
	}
	return 0;
}

static int parse_labels(json_t *v, json_t **ret, struct api_error *e)
{
	if (check_string_map(v, &labels_map, e) < 0)
		return -1;
	*ret = json_incref(v);
	return 0;
}

static int unknown_field(struct api_error *e, const char *k, const char *fields)
{
	return api_fail(e, 400, "unknown_field", "body: unknown field \"%.64s\" (fields: %s)", k,
	                fields);
}

/* A policy name: a preset or a stored policy (--policies DIR/NAME.yaml), so it must be a
 * plain file name. */
static bool policy_name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64 || s[0] == '.' || s[0] == '-')
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("._-", *s)))
			return false;
	return true;
}

/* ---- bodies ------------------------------------------------------------------------ */

typedef int (*field_fn)(const char *k, json_t *v, void *ctx, struct api_error *e);

/* Load the body (a JSON object; an empty body is {}) and call fn for each member, in the
 * body's order, until one fails. A member whose name holds a NUL byte is refused. */
static int each_field(const char *body, size_t len, field_fn fn, void *ctx, struct api_error *e)
{
	json_t *o = load_object(body, len, e);
	const char *k;
	json_t *v;
	int r = 0;
	if (!o)
		return -1;
	json_object_foreach(o, k, v)
	{
		if (strlen(k) != json_object_iter_key_len(json_object_key_to_iter(k)))
			r = api_fail(e, 400, "unknown_field",
			             "body: a field name contains a NUL byte");
		else
			r = fn(k, v, ctx, e);
		if (r < 0)
			break;
	}
	json_decref(o);
	return r;
}

struct create_ctx {
	struct api_create *ret;
	int64_t max_ttl;
};

static int create_field(const char *k, json_t *v, void *ctx, struct api_error *e)
{
	struct create_ctx *c = ctx;
	struct api_create *ret = c->ret;
	const char *s;
	int r = 0;
	if (streq(k, "policy")) {
		if ((r = get_text(v, "policy", &s, e)) == 0 && !policy_name_valid(s))
			r = api_fail(e, 400, "invalid_field",
			             "policy: \"%.64s\" is not a policy name (a preset, or a "
			             "stored policy: 1 to 64 of [A-Za-z0-9._-])",
			             s);
		if (r == 0)
			ret->policy = xstrdup(s);
	} else if (streq(k, "policy_yaml")) {
		if ((r = get_text(v, "policy_yaml", &s, e)) == 0 && !*s)
			r = api_fail(e, 400, "invalid_field", "policy_yaml: empty");
		if (r == 0) {
			ret->policy_yaml = xstrdup(s);
			ret->policy_yaml_len = strlen(s);
		}
	} else if (streq(k, "ttl")) {
		if (!json_is_integer(v))
			r = wrong_type(e, "ttl", "an integer (seconds)", v);
		else if (json_integer_value(v) <= 0 || json_integer_value(v) > c->max_ttl)
			r = api_fail(e, 400, "invalid_field",
			             "ttl: %" JSON_INTEGER_FORMAT " is out of range (1 to %" PRId64
			             " seconds)",
			             json_integer_value(v), c->max_ttl);
		else
			ret->ttl = json_integer_value(v);
	} else if (streq(k, "labels")) {
		r = parse_labels(v, &ret->labels, e);
	} else if (streq(k, "env")) {
		r = parse_env(v, &ret->env, e);
	} else {
		r = unknown_field(e, k, "policy, policy_yaml, ttl, labels, env");
	}
	return r;
}

int api_parse_create(const char *body, size_t len, int64_t max_ttl, struct api_create *ret,
                     struct api_error *e)
{
	*ret = (struct api_create){.ttl = API_TTL_DEFAULT};
	if (max_ttl <= 0 || max_ttl > TTL_MAX_EVER)
		max_ttl = TTL_MAX_EVER;
	if (ret->ttl > max_ttl)
		ret->ttl = max_ttl;
	int r = each_field(body, len, create_field, &(struct create_ctx){ret, max_ttl}, e);
	if (r == 0 && ret->policy && ret->policy_yaml)
		r = api_fail(e, 400, "invalid_field", "policy, policy_yaml: give one, not both");
	if (r == 0 && !ret->policy && !ret->policy_yaml)
		ret->policy = xstrdup("default");
	if (r == 0 && !ret->labels)
		ret->labels = json_object();
	if (r < 0)
		api_create_clear(ret);
	return r;
}

void api_create_clear(struct api_create *c)
{
	free(c->policy);
	free(c->policy_yaml);
	json_decref(c->labels);
	strv_clear(&c->env);
	*c = (struct api_create){0};
}

static int exec_field(const char *k, json_t *v, void *ctx, struct api_error *e)
{
	struct api_exec *ret = ctx;
	const char *s;
	int r = 0;
	if (streq(k, "cmd")) {
		size_t i;
		json_t *a;
		if (!json_is_array(v) || json_array_size(v) == 0)
			r = json_is_array(v) ? api_fail(e, 400, "invalid_field", "cmd: empty")
			                     : wrong_type(e, "cmd", "an array of strings", v);
		else if (json_array_size(v) > ARGV_MAX)
			r = api_fail(e, 400, "invalid_field", "cmd: more than %d arguments",
			             ARGV_MAX);
		json_array_foreach(v, i, a)
		{
			char field[32];
			snprintf(field, sizeof(field), "cmd[%zu]", i);
			if (r < 0 || (r = get_text(a, field, &s, e)) < 0)
				break;
			if (i == 0 && !*s)
				r = api_fail(e, 400, "invalid_field", "cmd[0]: empty");
			else
				strv_push(&ret->argv, s);
		}
	} else if (streq(k, "env")) {
		r = parse_env(v, &ret->env, e);
	} else if (streq(k, "workdir")) {
		if ((r = get_text(v, "workdir", &s, e)) == 0 &&
		    (s[0] != '/' || strlen(s) >= PATH_MAX))
			r = api_fail(e, 400, "invalid_field",
			             "workdir: \"%.200s\" is not an absolute path", s);
		if (r == 0)
			ret->workdir = xstrdup(s);
	} else if (streq(k, "stdin")) {
		if (!json_is_string(v)) {
			r = wrong_type(e, "stdin", "a string", v);
		} else {
			ret->stdin_len = json_string_length(v);
			ret->stdin_data = xmalloc(ret->stdin_len + 1);
			memcpy(ret->stdin_data, json_string_value(v), ret->stdin_len + 1);
		}
	} else if (streq(k, "timeout")) {
		double t = json_number_value(v);
		if (!json_is_number(v))
			r = wrong_type(e, "timeout", "a number (seconds)", v);
		else if (!(t > 0 && t <= EXEC_TIMEOUT_MAX))
			r = api_fail(
			    e, 400, "invalid_field",
			    "timeout: %g is out of range (more than 0, at most %g seconds)", t,
			    EXEC_TIMEOUT_MAX);
		else
			ret->timeout = t;
	} else {
		r = unknown_field(e, k, "cmd, env, workdir, stdin, timeout");
	}
	return r;
}

int api_parse_exec(const char *body, size_t len, struct api_exec *ret, struct api_error *e)
{
	*ret = (struct api_exec){0};
	int r = each_field(body, len, exec_field, ret, e);
	if (r == 0 && ret->argv.n == 0)
		r = api_fail(e, 400, "invalid_field", "cmd: missing (an array of strings)");
	if (r < 0)
		api_exec_clear(ret);
	return r;
}

void api_exec_clear(struct api_exec *x)
{
	strv_clear(&x->argv);
	strv_clear(&x->env);
	free(x->workdir);
	free(x->stdin_data);
	*x = (struct api_exec){0};
}

static int kill_field(const char *k, json_t *v, void *ctx, struct api_error *e)
{
	int *ret_signal = ctx;
	if (!streq(k, "signal"))
		return unknown_field(e, k, "signal");
	if (!json_is_integer(v))
		return wrong_type(e, "signal", "an integer", v);
	if (json_integer_value(v) < 1 || json_integer_value(v) > 64)
		return api_fail(e, 400, "invalid_field",
		                "signal: %" JSON_INTEGER_FORMAT " is not a signal (1 to 64)",
		                json_integer_value(v));
	*ret_signal = (int)json_integer_value(v);
	return 0;
}

int api_parse_kill(const char *body, size_t len, int *ret_signal, struct api_error *e)
{
	*ret_signal = 9;
	return each_field(body, len, kill_field, ret_signal, e);
}

/* ---- Accept ------------------------------------------------------------------------ */

enum api_stream api_stream_kind(const char *accept)
{
	if (accept && strcasestr(accept, "text/event-stream"))
		return STREAM_SSE;
	if (accept && strcasestr(accept, "application/x-ndjson"))
		return STREAM_NDJSON;
	return STREAM_NONE;
}
