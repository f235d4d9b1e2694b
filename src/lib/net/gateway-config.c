/* gateway-config.c: gateway.yaml -> struct warden_gateway_config, and the API keys.
 *
 * Sections: errors with file:line:column; scalar readers; base URLs; the schema (one field
 * table per mapping); named entries (providers, models, policies); the entry points; keys.
 *
 * The file lives on the host, but it decides where keys are sent and what a budget is
 * counted in, so it is checked as strictly as a policy: unknown and duplicate keys are
 * errors, every value is checked, and every error names file:line:column and the key
 * path. libyaml parses; this file walks the document it builds.
 */
#define _GNU_SOURCE
#include "gateway-internal.h"
#include "../policy.h"
#include "../util.h"
#include "../yaml-util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <yaml.h>

#define CFG_MAX_BYTES      (1 << 20)
#define CFG_MAX_ITEMS      256
#define CFG_MAX_DEPTH      16
#define KEY_MAX            192
#define MODEL_NAME_MAX     128
#define TIMEOUT_DEFAULT_MS 300000
#define TIMEOUT_MAX_MS     3600000
#define COUNT_MAX          1000000000000000ULL /* 10^15 */
#define PRICE_MAX          100000000000ULL     /* $100,000 per million tokens, in micro-USD */
#define USD_MAX            1000000000000ULL    /* $1,000,000, in micro-USD */
#define OUTPUT_MAX         100000000ULL
#define RATE_MAX           1000000000ULL

struct cctx {
	const char *origin;
	yaml_document_t *doc;
	struct warden_gateway_config *c;
	struct warden_error **err;
};

/* ---- errors ---------------------------------------------------------------------------- */

/* An error at node n of the file being parsed (x: its parsing context). */
#define cerr(x, n, key, ...) wyaml_error((x)->err, (x)->origin, n, key, __VA_ARGS__)

/* ---- scalars --------------------------------------------------------------------------- */

static int get_str(struct cctx *x, const yaml_node_t *n, const char *key, const char **ret)
{
	return wyaml_get_str(x->err, x->origin, n, key, ret);
}

/* A decimal with at most 6 places, in millionths ("0.15" -> 150000). */
static int parse_micro(const char *s, uint64_t max, uint64_t *ret, const char **ret_why)
{
	uint64_t v = 0;
	int places = -1;
	if (!*s || *s == '.') {
		*ret_why = "not a number";
		return -1;
	}
	for (; *s; s++) {
		if (*s == '.' && places < 0) {
			places = 0;
			continue;
		}
		if (*s < '0' || *s > '9') {
			*ret_why = "not a number";
			return -1;
		}
		if (places >= 0 && ++places > 6) {
			*ret_why = "more than 6 decimal places";
			return -1;
		}
		if (v > max) {
			*ret_why = "number too large";
			return -1;
		}
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (places == 0) {
		*ret_why = "not a number";
		return -1;
	}
	for (int i = places < 0 ? 0 : places; i < 6; i++)
		v *= 10;
	if (v > max) {
		*ret_why = "number too large";
		return -1;
	}
	*ret = v;
	return 0;
}

/* Seconds, with a fraction or a unit: "90", "1.5", "30s", "10m" -> milliseconds. */
static int get_duration(struct cctx *x, yaml_node_t *v, const char *key, uint64_t *ret)
{
	const char *s, *why = NULL;
	if (get_str(x, v, key, &s) < 0)
		return -1;
	_cleanup_free_ char *num = xstrdup(s);
	size_t len = strlen(num);
	uint64_t unit = 1;
	if (len && (num[len - 1] == 's' || num[len - 1] == 'm')) {
		unit = num[len - 1] == 's' ? 1 : 60;
		num[len - 1] = '\0';
	}
	if (parse_milli(num, ret, &why) < 0)
		return cerr(x, v, key, "\"%s\": %s (seconds, or a number with s or m)", s, why);
	*ret *= unit;
	if (*ret == 0 || *ret > TIMEOUT_MAX_MS)
		return cerr(x, v, key, "\"%s\": must be more than 0 and at most 1 hour", s);
	return 0;
}

static bool model_name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > MODEL_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("-_.:/@+", *s)))
			return false;
	return true;
}

/* ---- base URLs ------------------------------------------------------------------------- */

static bool hostname_valid(const char *h)
{
	size_t label = 0, n = strlen(h);
	if (n == 0 || n > 253)
		return false;
	for (const char *p = h;; p++) {
		if (*p == '.' || !*p) {
			if (label == 0 || label > 63 || p[-1] == '-' || p[-(ptrdiff_t)label] == '-')
				return false;
			if (!*p)
				return true;
			label = 0;
		} else if ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-') {
			label++;
		} else {
			return false;
		}
	}
}

static int url_host(const char *auth, size_t len, struct gw_url *u, const char **ret_why)
{
	_cleanup_free_ char *h = strndup(auth, len);
	char *port = NULL;
	uint8_t addr[16];
	if (!h)
		abort();
	if (h[0] == '[') {
		char *end = strchr(h, ']');
		if (!end || (end[1] && end[1] != ':')) {
			*ret_why = "an IPv6 address must be written [ADDRESS] or [ADDRESS]:PORT";
			return -1;
		}
		*end = '\0';
		port = end[1] ? end + 2 : NULL;
		if (inet_pton(AF_INET6, h + 1, addr) != 1) {
			*ret_why = "not an IPv6 address";
			return -1;
		}
		u->host = xstrdup(h + 1);
		u->host_is_ip = true;
	} else {
		port = strchr(h, ':');
		if (port)
			*port++ = '\0';
		for (char *p = h; *p; p++)
			*p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
		u->host_is_ip = inet_pton(AF_INET, h, addr) == 1;
		if (!u->host_is_ip && !hostname_valid(h)) {
			*ret_why = "not a host name or address";
			return -1;
		}
		u->host = xstrdup(h);
	}
	u->port = u->https ? 443 : 80;
	if (port) {
		uint64_t v;
		const char *why;
		if (parse_uint(port, 65535, &v, &why) < 0 || v == 0) {
			*ret_why = "the port must be 1 to 65535";
			return -1;
		}
		u->port = (uint16_t)v;
	}
	bool v6 = strchr(u->host, ':') != NULL;
	if (u->port == (u->https ? 443 : 80))
		u->host_header = xasprintf(v6 ? "[%s]" : "%s", u->host);
	else
		u->host_header = xasprintf(v6 ? "[%s]:%u" : "%s:%u", u->host, u->port);
	return 0;
}

int gw_url_parse(const char *s, struct gw_url *ret, const char **ret_why)
{
	struct gw_url u = {0};
	const char *rest;
	if (!strncmp(s, "https://", 8)) {
		u.https = true;
		rest = s + 8;
	} else if (!strncmp(s, "http://", 7)) {
		rest = s + 7;
	} else {
		*ret_why = "must start with http:// or https://";
		return -1;
	}
	/* A user name in the URL would be sent nowhere, and query strings or fragments have no
	 * meaning in a base URL: refusing them keeps the destination what it looks like. */
	for (const char *p = rest; *p; p++) {
		if (strchr("@?#\\", *p) || *p <= ' ' || *p >= 0x7f) {
			*ret_why = "no user name, query, fragment, spaces or control characters";
			return -1;
		}
	}
	size_t auth = strcspn(rest, "/");
	if (auth == 0) {
		*ret_why = "no host";
		return -1;
	}
	if (url_host(rest, auth, &u, ret_why) < 0) {
		gw_url_clear(&u);
		return -1;
	}
	u.path = xstrdup(rest + auth);
	for (size_t n = strlen(u.path); n && u.path[n - 1] == '/'; n--)
		u.path[n - 1] = '\0';
	/* The path goes into every request line as written: an empty, "." or ".." component
	 * (also the last one, "/v1/..", which a substring test for "/../" misses) would let
	 * the server resolve it somewhere the configuration does not say, and so would "%2e"
	 * decoded there (no provider's base URL needs percent-encoding). */
	if (*u.path && (!path_is_normal_absolute(u.path) || strchr(u.path, '%'))) {
		*ret_why = "the path is not normalized";
		gw_url_clear(&u);
		return -1;
	}
	*ret = u;
	return 0;
}

void gw_url_clear(struct gw_url *u)
{
	free(u->host);
	free(u->host_header);
	free(u->path);
	memset(u, 0, sizeof(*u));
}

/* ---- the schema ------------------------------------------------------------------------ */

enum ftype {
	F_NODE,     /* keep the node for later (the top level) */
	F_KIND,     /* openai | anthropic */
	F_URL,      /* struct gw_url */
	F_ENV,      /* a variable name */
	F_PATH,     /* an absolute path */
	F_DURATION, /* milliseconds */
	F_MODEL,    /* a model name */
	F_PROVIDER, /* a provider's index */
	F_PRICE,    /* micro-USD, 0 allowed */
	F_TOKENS,   /* a positive count */
	F_COUNT,    /* a positive count or unlimited (0) */
	F_RATE,     /* a positive count per minute or unlimited (0) */
	F_USD,      /* pico-USD or unlimited (0) */
	F_BOOL,
	F_MODELS, /* a section's allowlist */
	F_MAP,    /* a nested mapping whose fields are in the same object */
};

struct field {
	const char *name;
	enum ftype type;
	size_t off;
	bool required;
	const struct field *sub;
};

#define AT(obj, off, type) ((type *)(void *)((char *)(obj) + (off)))

static int walk(struct cctx *x, yaml_node_t *map, const char *prefix, const struct field *fields,
                void *obj);

static int set_text(struct cctx *x, yaml_node_t *v, const char *key, char **dst,
                    bool (*valid)(const char *), const char *what)
{
	const char *s;
	if (get_str(x, v, key, &s) < 0)
		return -1;
	if (!valid(s))
		return cerr(x, v, key, "\"%s\" is not %s", s, what);
	free(*dst);
	*dst = xstrdup(s);
	return 0;
}

static int set_number(struct cctx *x, const struct field *f, yaml_node_t *v, const char *key,
                      uint64_t *dst)
{
	const char *s, *why = NULL;
	if (get_str(x, v, key, &s) < 0)
		return -1;
	bool limit = f->type == F_COUNT || f->type == F_RATE || f->type == F_USD;
	if (limit && wyaml_is_unlimited(s)) {
		*dst = 0;
		return 0;
	}
	int r;
	if (f->type == F_PRICE || f->type == F_USD)
		r = parse_micro(s, f->type == F_PRICE ? PRICE_MAX : USD_MAX, dst, &why);
	else
		r = parse_uint(s,
		               f->type == F_TOKENS ? OUTPUT_MAX
		               : f->type == F_RATE ? RATE_MAX
		                                   : COUNT_MAX,
		               dst, &why);
	if (r < 0)
		return cerr(x, v, key, "\"%s\": %s", s, why);
	if (*dst == 0 && f->type != F_PRICE)
		return cerr(x, v, key,
		            limit ? "0 is ambiguous: write \"unlimited\""
		                  : "must be larger than 0");
	if (f->type == F_USD)
		*dst *= 1000000; /* micro- to pico-USD */
	return 0;
}

static int set_kind(struct cctx *x, yaml_node_t *v, const char *key, enum gw_kind *dst)
{
	const char *s;
	if (get_str(x, v, key, &s) < 0)
		return -1;
	if (streq(s, "openai"))
		*dst = GW_KIND_OPENAI;
	else if (streq(s, "anthropic"))
		*dst = GW_KIND_ANTHROPIC;
	else
		return cerr(x, v, key, "\"%s\" is not openai or anthropic", s);
	return 0;
}

static int set_url(struct cctx *x, yaml_node_t *v, const char *key, struct gw_url *dst)
{
	const char *s, *why = NULL;
	if (get_str(x, v, key, &s) < 0)
		return -1;
	gw_url_clear(dst);
	if (gw_url_parse(s, dst, &why) < 0)
		return cerr(x, v, key, "\"%s\": %s", s, why);
	return 0;
}

static int set_provider(struct cctx *x, yaml_node_t *v, const char *key, size_t *dst)
{
	const char *s;
	if (get_str(x, v, key, &s) < 0)
		return -1;
	for (size_t i = 0; i < x->c->n_providers; i++) {
		if (streq(x->c->providers[i].name, s)) {
			*dst = i;
			return 0;
		}
	}
	return cerr(x, v, key, "no provider named \"%s\" under providers", s);
}

static int set_models(struct cctx *x, yaml_node_t *v, const char *key, struct gw_section *sec)
{
	if (v->type != YAML_SEQUENCE_NODE)
		return cerr(x, v, key, "expected a list of model names, found %s",
		            wyaml_node_kind(v));
	size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	if (n > CFG_MAX_ITEMS)
		return cerr(x, v, key, "more than %d entries", CFG_MAX_ITEMS);
	sec->models = xcalloc(n, sizeof(*sec->models));
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *item = yaml_document_get_node(x->doc, v->data.sequence.items.start[i]);
		char ikey[KEY_MAX];
		const char *s;
		wyaml_key(ikey, sizeof(ikey), "%s[%zu]", key, i);
		if (get_str(x, item, ikey, &s) < 0)
			return -1;
		size_t m = 0;
		while (m < x->c->n_models && !streq(x->c->models[m].name, s))
			m++;
		if (m == x->c->n_models)
			return cerr(x, item, ikey, "no model named \"%s\" under models", s);
		for (size_t j = 0; j < sec->n_models; j++)
			if (sec->models[j] == m)
				return cerr(x, item, ikey, "\"%s\" is listed twice", s);
		sec->models[sec->n_models++] = m;
	}
	return 0;
}

static bool path_valid(const char *s)
{
	return path_is_normal_absolute(s);
}

static int set_field(struct cctx *x, const struct field *f, yaml_node_t *v, const char *key,
                     void *obj)
{
	switch (f->type) {
	case F_NODE:
		*AT(obj, f->off, yaml_node_t *) = v;
		return 0;
	case F_KIND:
		return set_kind(x, v, key, AT(obj, f->off, enum gw_kind));
	case F_URL:
		return set_url(x, v, key, AT(obj, f->off, struct gw_url));
	case F_ENV:
		return set_text(x, v, key, AT(obj, f->off, char *), warden_env_name_valid,
		                "a variable name");
	case F_PATH:
		return set_text(x, v, key, AT(obj, f->off, char *), path_valid,
		                "an absolute, normalized path");
	case F_MODEL:
		return set_text(x, v, key, AT(obj, f->off, char *), model_name_valid,
		                "a model name (1 to 128 letters, digits and -_.:/@+)");
	case F_DURATION:
		return get_duration(x, v, key, AT(obj, f->off, uint64_t));
	case F_PROVIDER:
		return set_provider(x, v, key, AT(obj, f->off, size_t));
	case F_PRICE:
	case F_TOKENS:
	case F_COUNT:
	case F_RATE:
	case F_USD:
		return set_number(x, f, v, key, AT(obj, f->off, uint64_t));
	case F_BOOL:
		return wyaml_get_bool(x->err, x->origin, v, key, AT(obj, f->off, bool));
	case F_MODELS:
		return set_models(x, v, key, obj);
	case F_MAP:
		return walk(x, v, key, f->sub, obj);
	}
	abort();
}

static int unknown_key(struct cctx *x, yaml_node_t *k, const char *key, const struct field *fields)
{
	char expected[256] = "";
	for (size_t j = 0; fields[j].name; j++)
		snprintf(expected + strlen(expected), sizeof(expected) - strlen(expected), "%s%s",
		         j ? ", " : "", fields[j].name);
	return cerr(x, k, key, "unknown key (expected one of: %s)", expected);
}

static int walk(struct cctx *x, yaml_node_t *map, const char *prefix, const struct field *fields,
                void *obj)
{
	const char *where = *prefix ? prefix : "gateway";
	uint32_t seen = 0;
	if (map->type != YAML_MAPPING_NODE)
		return cerr(x, map, where, "expected a mapping, found %s", wyaml_node_kind(map));
	for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
	     pr++) {
		yaml_node_t *k = yaml_document_get_node(x->doc, pr->key);
		yaml_node_t *v = yaml_document_get_node(x->doc, pr->value);
		const char *name;
		char key[KEY_MAX];
		if (get_str(x, k, where, &name) < 0)
			return -1;
		wyaml_key(key, sizeof(key), "%s%s%s", prefix, *prefix ? "." : "", name);
		size_t i = 0;
		while (fields[i].name && !streq(fields[i].name, name))
			i++;
		if (!fields[i].name)
			return unknown_key(x, k, key, fields);
		if (seen & (1U << i))
			return cerr(x, k, key, "duplicate key");
		seen |= 1U << i;
		if (set_field(x, &fields[i], v, key, obj) < 0)
			return -1;
	}
	for (size_t i = 0; fields[i].name; i++)
		if (fields[i].required && !(seen & (1U << i)))
			return cerr(x, map, where, "missing \"%s\"", fields[i].name);
	return 0;
}

#define P(m) offsetof(struct gw_provider, m)
static const struct field provider_fields[] = {
    {"type", F_KIND, P(kind), true, NULL},
    {"base_url", F_URL, P(url), true, NULL},
    {"api_key_env", F_ENV, P(key_env), false, NULL},
    {"api_key_file", F_PATH, P(key_file), false, NULL},
    {"ca_file", F_PATH, P(ca_file), false, NULL},
    {"timeout", F_DURATION, P(timeout_ms), false, NULL},
    {NULL, 0, 0, false, NULL},
};
#undef P

#define M(m) offsetof(struct gw_model, m)
static const struct field model_fields[] = {
    {"provider", F_PROVIDER, M(provider), true, NULL},
    {"upstream", F_MODEL, M(upstream), false, NULL},
    {"input_price", F_PRICE, M(input_price), true, NULL},
    {"output_price", F_PRICE, M(output_price), true, NULL},
    {"max_output_tokens", F_TOKENS, M(max_output), false, NULL},
    {NULL, 0, 0, false, NULL},
};
#undef M

#define S(m) offsetof(struct gw_section, m)
static const struct field budget_fields[] = {
    {"requests", F_COUNT, S(limits.requests), false, NULL},
    {"input_tokens", F_COUNT, S(limits.input_tokens), false, NULL},
    {"output_tokens", F_COUNT, S(limits.output_tokens), false, NULL},
    {"cost_usd", F_USD, S(limits.cost), false, NULL},
    {NULL, 0, 0, false, NULL},
};
static const struct field rate_fields[] = {
    {"requests_per_min", F_RATE, S(limits.requests_per_min), false, NULL},
    {"tokens_per_min", F_RATE, S(limits.tokens_per_min), false, NULL},
    {NULL, 0, 0, false, NULL},
};
static const struct field section_fields[] = {
    {"models", F_MODELS, 0, true, NULL},
    {"budget", F_MAP, 0, false, budget_fields},
    {"rate_limit", F_MAP, 0, false, rate_fields},
    {"log_content", F_BOOL, S(log_content), false, NULL},
    {NULL, 0, 0, false, NULL},
};
#undef S

struct top {
	yaml_node_t *version, *providers, *models, *policies;
};
#define T(m) offsetof(struct top, m)
static const struct field top_fields[] = {
    {"version", F_NODE, T(version), false, NULL},
    {"providers", F_NODE, T(providers), false, NULL},
    {"models", F_NODE, T(models), false, NULL},
    {"policies", F_NODE, T(policies), false, NULL},
    {NULL, 0, 0, false, NULL},
};
#undef T

/* ---- named entries --------------------------------------------------------------------- */

static bool provider_name_valid(const char *s)
{
	return warden_policy_name_valid(s);
}

static bool section_name_valid(const char *s)
{
	return streq(s, "*") || warden_policy_name_valid(s);
}

static int provider_check(struct cctx *x, yaml_node_t *v, const char *key, struct gw_provider *p)
{
	if (!p->key_env == !p->key_file)
		return cerr(x, v, key, "give exactly one of api_key_env and api_key_file");
	if (p->ca_file && !p->url.https)
		return cerr(x, v, key, "ca_file needs an https:// base_url");
	if (!p->timeout_ms)
		p->timeout_ms = TIMEOUT_DEFAULT_MS;
	return 0;
}

/* One kind of named entry: where the array lives and how one entry is read. */
struct named {
	const char *what;
	size_t size;
	const struct field *fields;
	bool (*valid)(const char *);
	const char *valid_why;
	int (*check)(struct cctx *x, yaml_node_t *v, const char *key, void *obj);
};

static int provider_check_any(struct cctx *x, yaml_node_t *v, const char *key, void *obj)
{
	return provider_check(x, v, key, obj);
}

static const struct named named_providers = {
    "providers",
    sizeof(struct gw_provider),
    provider_fields,
    provider_name_valid,
    "1 to 64 letters, digits, '-', '_', '.'",
    provider_check_any,
};
static const struct named named_models = {
    "models",
    sizeof(struct gw_model),
    model_fields,
    model_name_valid,
    "1 to 128 letters, digits and -_.:/@+",
    NULL,
};
static const struct named named_sections = {
    "policies",
    sizeof(struct gw_section),
    section_fields,
    section_name_valid,
    "a policy name (1 to 64 letters, digits, '-', '_', '.') or \"*\"",
    NULL,
};

/* The name is the first member of every entry struct. */
static int walk_named(struct cctx *x, yaml_node_t *map, const struct named *nd, void **arr,
                      size_t *n)
{
	if (map->type != YAML_MAPPING_NODE)
		return cerr(x, map, nd->what, "expected a mapping of names, found %s",
		            wyaml_node_kind(map));
	size_t count = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
	if (count == 0)
		return cerr(x, map, nd->what, "needs at least one entry");
	if (count > CFG_MAX_ITEMS)
		return cerr(x, map, nd->what, "more than %d entries", CFG_MAX_ITEMS);
	*arr = xcalloc(count, nd->size);
	for (size_t i = 0; i < count; i++) {
		yaml_node_pair_t *pr = &map->data.mapping.pairs.start[i];
		yaml_node_t *k = yaml_document_get_node(x->doc, pr->key);
		yaml_node_t *v = yaml_document_get_node(x->doc, pr->value);
		void *obj = (char *)*arr + i * nd->size;
		const char *name;
		char key[KEY_MAX];
		if (get_str(x, k, nd->what, &name) < 0)
			return -1;
		wyaml_key(key, sizeof(key), "%s.%s", nd->what, name);
		if (!nd->valid(name))
			return cerr(x, k, key, "not a valid name (%s)", nd->valid_why);
		for (size_t j = 0; j < i; j++)
			if (streq(*(char **)(void *)((char *)*arr + j * nd->size), name))
				return cerr(x, k, key, "duplicate key");
		*(char **)obj = xstrdup(name);
		(*n)++;
		if (walk(x, v, key, nd->fields, obj) < 0 ||
		    (nd->check && nd->check(x, v, key, obj) < 0))
			return -1;
	}
	return 0;
}

static int parse_document(struct cctx *x, yaml_node_t *root)
{
	struct top t = {0};
	struct warden_gateway_config *c = x->c;
	if (walk(x, root, "", top_fields, &t) < 0)
		return -1;
	if (t.version) {
		const char *s;
		if (get_str(x, t.version, "version", &s) < 0)
			return -1;
		if (!streq(s, "1"))
			return cerr(x, t.version, "version",
			            "unsupported version \"%s\" (this warden reads 1)", s);
	}
	/* Models name providers and sections name models, in whatever order the file has
	 * them; each part is read (or found missing) before the next. */
	const struct {
		yaml_node_t *node;
		const struct named *nd;
		void **arr;
		size_t *n;
	} parts[] = {
	    {t.providers, &named_providers, (void **)&c->providers, &c->n_providers},
	    {t.models, &named_models, (void **)&c->models, &c->n_models},
	    {t.policies, &named_sections, (void **)&c->sections, &c->n_sections},
	};
	for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
		if (!parts[i].node)
			return cerr(x, root, "gateway", "missing \"%s\"", parts[i].nd->what);
		if (walk_named(x, parts[i].node, parts[i].nd, parts[i].arr, parts[i].n) < 0)
			return -1;
	}
	return 0;
}

/* ---- entry points ---------------------------------------------------------------------- */

/* Load one document, and refuse an empty one or a second one rather than ignore it. */
static int load_one(yaml_parser_t *parser, yaml_document_t *doc, const char *origin,
                    struct warden_error **err)
{
	if (!yaml_parser_load(parser, doc))
		return wyaml_syntax_error(parser, origin, err);
	int r = 0;
	if (!yaml_document_get_root_node(doc))
		r = warden_error_set(err, 0, "%s: empty configuration", origin);
	else
		r = wyaml_no_more_documents(parser, origin, "gateway", err);
	if (r < 0)
		yaml_document_delete(doc);
	return r;
}

struct warden_gateway_config *warden_gateway_config_parse(const char *text, size_t len,
                                                          const char *origin,
                                                          struct warden_error **err)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	if (len > CFG_MAX_BYTES) {
		warden_error_set(err, 0, "%s: larger than %d bytes", origin, CFG_MAX_BYTES);
		return NULL;
	}
	if (memchr(text, '\0', len)) {
		warden_error_set(err, 0, "%s: contains a NUL byte", origin);
		return NULL;
	}
	if (wyaml_check_shape(text, len, origin, "gateway", CFG_MAX_DEPTH, CFG_MAX_ITEMS, err) < 0)
		return NULL;
	if (!yaml_parser_initialize(&parser))
		abort();
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	int r = load_one(&parser, &doc, origin, err);
	yaml_parser_delete(&parser);
	if (r < 0)
		return NULL;
	struct cctx x = {.origin = origin, .doc = &doc, .c = xcalloc(1, sizeof(*x.c)), .err = err};
	r = parse_document(&x, yaml_document_get_root_node(&doc));
	yaml_document_delete(&doc);
	if (r < 0) {
		warden_gateway_config_free(x.c);
		return NULL;
	}
	return x.c;
}

struct warden_gateway_config *warden_gateway_config_load(const char *path,
                                                         struct warden_error **err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	if (read_small_file(path, CFG_MAX_BYTES, "gateway configuration", &buf, &len, err) < 0)
		return NULL;
	return warden_gateway_config_parse(buf, len, path, err);
}

void warden_gateway_config_free(struct warden_gateway_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_providers; i++) {
		struct gw_provider *p = &c->providers[i];
		free(p->name);
		gw_url_clear(&p->url);
		free(p->key_env);
		free(p->key_file);
		free(p->ca_file);
		secret_free(p->key);
	}
	for (size_t i = 0; i < c->n_models; i++) {
		free(c->models[i].name);
		free(c->models[i].upstream);
	}
	for (size_t i = 0; i < c->n_sections; i++) {
		free(c->sections[i].policy);
		free(c->sections[i].models);
	}
	free(c->providers);
	free(c->models);
	free(c->sections);
	free(c);
}

const struct gw_section *gw_config_section(const struct warden_gateway_config *c,
                                           const char *policy)
{
	const struct gw_section *any = NULL;
	for (size_t i = 0; i < c->n_sections; i++) {
		if (streq(c->sections[i].policy, policy))
			return &c->sections[i];
		if (streq(c->sections[i].policy, "*"))
			any = &c->sections[i];
	}
	return any;
}

bool warden_gateway_config_serves(const struct warden_gateway_config *c, const char *policy)
{
	return gw_config_section(c, policy) != NULL;
}

const struct gw_model *gw_section_model(const struct warden_gateway_config *c,
                                        const struct gw_section *s, const char *name)
{
	for (size_t i = 0; i < s->n_models; i++)
		if (streq(c->models[s->models[i]].name, name))
			return &c->models[s->models[i]];
	return NULL;
}

/* ---- keys ------------------------------------------------------------------------------ */

/* A key goes into an HTTP header and is searched for in every answer: it must be one line
 * of visible ASCII. Messages never quote it. */
static int key_check(const char *key, size_t len, const char *where, struct warden_error **err)
{
	if (len < GW_KEY_MIN || len > GW_KEY_MAX)
		return warden_error_set(err, 0, "%s: the key must be %d to %d characters, not %zu",
		                        where, GW_KEY_MIN, GW_KEY_MAX, len);
	for (size_t i = 0; i < len; i++)
		if (key[i] <= ' ' || key[i] >= 0x7f)
			return warden_error_set(err, 0,
			                        "%s: the key has a character that is not visible "
			                        "ASCII (at offset %zu)",
			                        where, i);
	return 0;
}

static char *key_from_file(const char *path, const char *where, struct warden_error **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	struct stat st;
	char buf[GW_KEY_MAX + 64];
	if (fd < 0) {
		warden_error_set(err, errno, "%s", where);
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		warden_error_set(err, 0, "%s: not a regular file", where);
		return NULL;
	}
	/* A key every user of the host can read is no secret: refuse it (like ssh does with
	 * private keys) rather than hand out spending on someone else's account. Group access
	 * is allowed: secret stores commonly mount keys 0440 for a service's group. */
	if (st.st_mode & 0007) {
		warden_error_set(err, 0, "%s: readable by every user (mode %04o): chmod o-rwx it",
		                 where, (unsigned)(st.st_mode & 07777));
		return NULL;
	}
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0) {
		warden_error_set(err, errno, "%s", where);
		return NULL;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	char *key = key_check(buf, (size_t)n, where, err) < 0 ? NULL : secret_strdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return key;
}

static int load_key(struct warden_gateway_config *c, struct gw_provider *p,
                    struct warden_error **err)
{
	if (p->key)
		return 0;
	for (size_t i = 0; p->key_env && i < c->n_providers; i++)
		if (c->providers[i].key && c->providers[i].key_env &&
		    streq(c->providers[i].key_env, p->key_env)) {
			p->key = secret_strdup(c->providers[i].key); /* the variable is wiped */
			return 0;
		}
	if (p->key_file) {
		_cleanup_free_ char *where =
		    xasprintf("provider %s: api_key_file %s", p->name, p->key_file);
		p->key = key_from_file(p->key_file, where, err);
		return p->key ? 0 : -1;
	}
	_cleanup_free_ char *where = xasprintf("provider %s: api_key_env %s", p->name, p->key_env);
	const char *v = getenv(p->key_env);
	if (!v)
		return warden_error_set(err, 0, "%s is not set", where);
	if (key_check(v, strlen(v), where, err) < 0)
		return -1;
	p->key = secret_strdup(v);
	/* The environment string itself would be inherited by every process forked from
	 * here on (a sandbox's init among them): the key now lives only in p->key. */
	explicit_bzero((char *)v, strlen(v));
	return 0;
}

const char *warden_gateway_config_key_in(const struct warden_gateway_config *c, const char *s)
{
	for (size_t i = 0; i < c->n_providers; i++)
		if (c->providers[i].key && strstr(s, c->providers[i].key))
			return c->providers[i].name;
	return NULL;
}

int warden_gateway_config_load_keys(struct warden_gateway_config *c, const char *policy,
                                    struct warden_error **err)
{
	const struct gw_section *s = gw_config_section(c, policy);
	if (!s)
		return warden_error_set(err, 0, "gateway: no section for policy %s and no \"*\"",
		                        policy);
	for (size_t i = 0; i < s->n_models; i++)
		if (load_key(c, &c->providers[c->models[s->models[i]].provider], err) < 0)
			return -1;
	return 0;
}
