/* policy-yaml.c: YAML policy files and presets -> struct warden_policy.
 *
 * Sections: error reporting with file:line:column; scalar readers; one key table per
 * section (the schema); presets and `extends:`; the entry points.
 *
 * Policy files are untrusted input (an agent may write one): every value is checked,
 * unknown and duplicate keys are errors, and nothing is accepted silently. libyaml does
 * the parsing; this file only walks the document it builds.
 */
#define _GNU_SOURCE
#include "policy.h"
#include "policy-devices.h"
#include "guard.h"
#include "net/egress.h"
#include "presets.h"
#include "yaml-util.h"

#include <inttypes.h>
#include <seccomp.h>
#include <yaml.h>

#define POLICY_MAX_BYTES (1 << 20)
#define POLICY_MAX_ITEMS 256
#define KEY_MAX          160
#define POLICY_MAX_DEPTH 32

struct pctx {
	const char *origin;
	yaml_document_t *doc;
	struct warden_policy *p;
	struct warden_error **err;
	bool name_set;
};

static struct warden_policy *parse_into(const char *text, size_t len, const char *origin,
                                        const char *default_name, int depth,
                                        struct warden_error **err);

/* ---- errors ------------------------------------------------------------------------ */

/* An error at node n of the file being parsed (c: its parsing context). */
#define perr(c, n, key, ...) wyaml_error((c)->err, (c)->origin, n, key, __VA_ARGS__)

/* ---- scalars ----------------------------------------------------------------------- */

static bool is_null(const yaml_node_t *n)
{
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	const char *s = (const char *)n->data.scalar.value;
	return !*s || streq(s, "~") || streq(s, "null") || streq(s, "Null") || streq(s, "NULL");
}

/* The scalar's text; refuses lists, mappings and embedded NUL bytes. */
static int get_str(struct pctx *c, const yaml_node_t *n, const char *key, const char **ret)
{
	return wyaml_get_str(c->err, c->origin, n, key, ret);
}

static int get_bool(struct pctx *c, const yaml_node_t *n, const char *key, bool *ret)
{
	return wyaml_get_bool(c->err, c->origin, n, key, ret);
}

/* One of names (NULL-terminated), as its index; `expected` lists them for the error. */
static int get_enum(struct pctx *c, const yaml_node_t *n, const char *key, const char *const *names,
                    const char *expected)
{
	const char *s;
	if (get_str(c, n, key, &s) < 0)
		return -1;
	for (int i = 0; names[i]; i++)
		if (streq(names[i], s))
			return i;
	return perr(c, n, key, "\"%s\" is not %s", s, expected);
}

static int get_size(struct pctx *c, const yaml_node_t *n, const char *key, bool zero_ok,
                    uint64_t *ret)
{
	const char *s, *why = NULL;
	if (get_str(c, n, key, &s) < 0)
		return -1;
	if (zero_ok && wyaml_is_unlimited(s)) {
		*ret = 0;
		return 0;
	}
	if (parse_size(s, ret, &why) < 0)
		return perr(c, n, key, "\"%s\": %s", s, why);
	if (*ret == 0 && !zero_ok)
		return perr(c, n, key, "must be larger than 0");
	if (*ret == 0 && zero_ok)
		return perr(c, n, key, "0 is ambiguous: write \"unlimited\"");
	return 0;
}

static int get_count(struct pctx *c, const yaml_node_t *n, const char *key, uint64_t min,
                     uint64_t max, bool unlimited_ok, uint64_t *ret)
{
	const char *s, *why = NULL;
	if (get_str(c, n, key, &s) < 0)
		return -1;
	if (unlimited_ok && wyaml_is_unlimited(s)) {
		*ret = 0;
		return 0;
	}
	if (parse_uint(s, max, ret, &why) < 0)
		return perr(c, n, key, "\"%s\": %s (at most %" PRIu64 ")", s, why, max);
	if (*ret < min)
		return perr(c, n, key, "%" PRIu64 " is below the minimum %" PRIu64, *ret, min);
	return 0;
}

static int get_milli(struct pctx *c, const yaml_node_t *n, const char *key, uint64_t *ret)
{
	const char *s, *why = NULL;
	if (get_str(c, n, key, &s) < 0)
		return -1;
	if (wyaml_is_unlimited(s)) {
		*ret = 0;
		return 0;
	}
	if (parse_milli(s, ret, &why) < 0)
		return perr(c, n, key, "\"%s\": %s", s, why);
	if (*ret == 0)
		return perr(c, n, key, "0 is ambiguous: write \"unlimited\" or \"none\"");
	return 0;
}

static int get_abs_path(struct pctx *c, const yaml_node_t *n, const char *key, const char **ret)
{
	if (get_str(c, n, key, ret) < 0)
		return -1;
	if (!path_is_normal_absolute(*ret))
		return perr(c, n, key,
		            "\"%s\" is not an absolute, normalized path (no \"..\", \".\", "
		            "\"//\"; not /)",
		            *ret);
	return 0;
}

/* Iterate a sequence node; refuses other kinds and overlong lists. */
#define for_each_item(c, n, key, item)                                                             \
	for (yaml_node_item_t *_it = (n)->data.sequence.items.start;                               \
	     _it < (n)->data.sequence.items.top &&                                                 \
	     ((item) = yaml_document_get_node((c)->doc, *_it));                                    \
	     _it++)

static int check_seq(struct pctx *c, const yaml_node_t *n, const char *key)
{
	if (n->type != YAML_SEQUENCE_NODE)
		return perr(c, n, key, "expected a list, found %s", wyaml_node_kind(n));
	if (n->data.sequence.items.top - n->data.sequence.items.start > POLICY_MAX_ITEMS)
		return perr(c, n, key, "more than %d entries", POLICY_MAX_ITEMS);
	return 0;
}

static size_t seq_index(const yaml_node_t *seq, const yaml_node_t *item, yaml_document_t *doc)
{
	size_t i = 0;
	for (yaml_node_item_t *it = seq->data.sequence.items.start;
	     it < seq->data.sequence.items.top; it++, i++)
		if (yaml_document_get_node(doc, *it) == item)
			return i;
	return i;
}

/* ---- the schema -------------------------------------------------------------------- */

typedef int (*field_fn)(struct pctx *c, yaml_node_t *v, const char *key);
struct field {
	const char *name;
	field_fn fn;
};

static int walk_map(struct pctx *c, yaml_node_t *map, const char *prefix,
                    const struct field *fields)
{
	uint64_t seen = 0;
	if (map->type != YAML_MAPPING_NODE)
		return perr(c, map, prefix[0] ? prefix : "policy", "expected a mapping, found %s",
		            wyaml_node_kind(map));
	for (yaml_node_pair_t *pair = map->data.mapping.pairs.start;
	     pair < map->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, pair->key);
		yaml_node_t *v = yaml_document_get_node(c->doc, pair->value);
		const char *name;
		char key[KEY_MAX];
		if (get_str(c, k, prefix[0] ? prefix : "policy", &name) < 0)
			return -1;
		snprintf(key, sizeof(key), "%s%s%s", prefix, prefix[0] ? "." : "", name);
		size_t i = 0;
		for (; fields[i].name && !streq(fields[i].name, name); i++)
			;
		if (!fields[i].name) {
			char expected[256] = "";
			for (size_t j = 0; fields[j].name; j++)
				snprintf(expected + strlen(expected),
				         sizeof(expected) - strlen(expected), "%s%s", j ? ", " : "",
				         fields[j].name);
			return perr(c, k, key, "unknown key (expected one of: %s)", expected);
		}
		if (seen & (1ULL << i))
			return perr(c, k, key, "duplicate key");
		seen |= 1ULL << i;
		if (fields[i].fn && fields[i].fn(c, v, key) < 0)
			return -1;
	}
	return 0;
}

/* A key of an entry's mapping (`names`, at most 8), refused when unknown or repeated:
 * returns its index in names, or -1 with the error set. */
static int entry_key(struct pctx *c, yaml_node_t *k, const char *ikey, const char *const *names,
                     const char *expected, unsigned *seen)
{
	const char *name;
	if (get_str(c, k, ikey, &name) < 0)
		return -1;
	for (int i = 0; names[i]; i++) {
		if (!streq(names[i], name))
			continue;
		if (*seen & (1U << i))
			return perr(c, k, ikey, "duplicate key \"%s\"", name);
		*seen |= 1U << i;
		return i;
	}
	return perr(c, k, ikey, "unknown key \"%s\" (expected %s)", name, expected);
}

/* filesystem.read_only: [PATH | {path: PATH, optional: BOOL}] */
static int f_read_only(struct pctx *c, yaml_node_t *v, const char *key)
{
	yaml_node_t *item;
	if (check_seq(c, v, key) < 0)
		return -1;
	warden_mounts_clear(&c->p->read_only);
	for_each_item(c, v, key, item)
	{
		char ikey[KEY_MAX];
		struct warden_mount m = {0};
		snprintf(ikey, sizeof(ikey), "%s[%zu]", key, seq_index(v, item, c->doc));
		if (item->type == YAML_MAPPING_NODE) {
			static const char *const names[] = {"path", "optional", NULL};
			const char *path = NULL;
			bool optional = false;
			unsigned seen = 0;
			for (yaml_node_pair_t *pr = item->data.mapping.pairs.start;
			     pr < item->data.mapping.pairs.top; pr++) {
				yaml_node_t *k = yaml_document_get_node(c->doc, pr->key);
				yaml_node_t *val = yaml_document_get_node(c->doc, pr->value);
				int which = entry_key(c, k, ikey, names, "path, optional", &seen);
				if (which < 0 ||
				    (which == 0 && get_abs_path(c, val, ikey, &path) < 0) ||
				    (which == 1 && get_bool(c, val, ikey, &optional) < 0))
					return -1;
			}
			if (!path)
				return perr(c, item, ikey, "missing \"path\"");
			m.host = m.path = (char *)path;
			m.optional = optional;
		} else {
			const char *path;
			if (get_abs_path(c, item, ikey, &path) < 0)
				return -1;
			m.host = m.path = (char *)path;
		}
		warden_mounts_push(&c->p->read_only, &m);
	}
	return 0;
}

/* filesystem.volumes: ["HOST:PATH[:ro|rw]" | {host:, path:, mode:}] */
static int volume_from_map(struct pctx *c, yaml_node_t *item, const char *ikey,
                           struct warden_mount *m)
{
	static const char *const names[] = {"host", "path", "mode", NULL};
	const char *host = NULL, *path = NULL, *mode = "rw";
	unsigned seen = 0;
	for (yaml_node_pair_t *pr = item->data.mapping.pairs.start;
	     pr < item->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, pr->key);
		yaml_node_t *val = yaml_document_get_node(c->doc, pr->value);
		int which = entry_key(c, k, ikey, names, "host, path, mode", &seen);
		if (which < 0 || (which == 0 && get_abs_path(c, val, ikey, &host) < 0) ||
		    (which == 1 && get_abs_path(c, val, ikey, &path) < 0) ||
		    (which == 2 && get_str(c, val, ikey, &mode) < 0))
			return -1;
		if (which == 2 && !streq(mode, "ro") && !streq(mode, "rw"))
			return perr(c, val, ikey, "mode \"%s\" is not ro or rw", mode);
	}
	if (!host || !path)
		return perr(c, item, ikey, "needs both \"host\" and \"path\"");
	m->host = xstrdup(host);
	m->path = xstrdup(path);
	m->rw = streq(mode, "rw");
	return 0;
}

static int f_volumes(struct pctx *c, yaml_node_t *v, const char *key)
{
	yaml_node_t *item;
	if (check_seq(c, v, key) < 0)
		return -1;
	warden_mounts_clear(&c->p->volumes);
	for_each_item(c, v, key, item)
	{
		char ikey[KEY_MAX];
		struct warden_mount m = {0};
		snprintf(ikey, sizeof(ikey), "%s[%zu]", key, seq_index(v, item, c->doc));
		if (item->type == YAML_MAPPING_NODE) {
			if (volume_from_map(c, item, ikey, &m) < 0)
				return -1;
		} else {
			const char *spec;
			_cleanup_error_ struct warden_error *e = NULL;
			if (get_str(c, item, ikey, &spec) < 0)
				return -1;
			if (warden_mount_parse_spec(spec, &m, &e) < 0)
				return perr(c, item, ikey, "%s", e->msg);
			if (m.host[0] != '/') {
				free(m.host);
				free(m.path);
				return perr(c, item, ikey,
				            "host path must be absolute in a policy file");
			}
		}
		warden_mounts_push(&c->p->volumes, &m);
		free(m.host);
		free(m.path);
	}
	return 0;
}

static int f_tmp_size(struct pctx *c, yaml_node_t *v, const char *key)
{
	if (get_size(c, v, key, false, &c->p->tmp_size) < 0)
		return -1;
	if (c->p->tmp_size < (1ULL << 20))
		return perr(c, v, key, "must be at least 1M");
	return 0;
}

static int f_rootfs(struct pctx *c, yaml_node_t *v, const char *key)
{
	const char *s;
	free(c->p->rootfs);
	c->p->rootfs = NULL;
	if (is_null(v))
		return 0;
	if (get_abs_path(c, v, key, &s) < 0)
		return -1;
	c->p->rootfs = xstrdup(s);
	return 0;
}

static const struct field filesystem_fields[] = {
    {"read_only", f_read_only}, {"volumes", f_volumes}, {"tmp_size", f_tmp_size},
    {"rootfs", f_rootfs},       {NULL, NULL},
};

static int f_filesystem(struct pctx *c, yaml_node_t *v, const char *key)
{
	return walk_map(c, v, key, filesystem_fields);
}

static int f_user(struct pctx *c, yaml_node_t *v, const char *key)
{
	const char *s;
	_cleanup_error_ struct warden_error *e = NULL;
	if (get_str(c, v, key, &s) < 0)
		return -1;
	if (warden_user_parse(s, &c->p->uid, &c->p->gid, &e) < 0)
		return perr(c, v, key, "%s", e->msg);
	return 0;
}

static int f_workdir(struct pctx *c, yaml_node_t *v, const char *key)
{
	const char *s;
	if (get_abs_path(c, v, key, &s) < 0)
		return -1;
	free(c->p->workdir);
	c->p->workdir = xstrdup(s);
	return 0;
}

bool warden_env_name_valid(const char *s)
{
	if (!s || !*s || (*s >= '0' && *s <= '9'))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

static int f_env(struct pctx *c, yaml_node_t *v, const char *key)
{
	if (v->type != YAML_MAPPING_NODE)
		return perr(c, v, key, "expected a mapping of NAME: value, found %s",
		            wyaml_node_kind(v));
	if (v->data.mapping.pairs.top - v->data.mapping.pairs.start > POLICY_MAX_ITEMS)
		return perr(c, v, key, "more than %d entries", POLICY_MAX_ITEMS);
	strv_clear(&c->p->env);
	for (yaml_node_pair_t *pr = v->data.mapping.pairs.start; pr < v->data.mapping.pairs.top;
	     pr++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, pr->key);
		yaml_node_t *val = yaml_document_get_node(c->doc, pr->value);
		const char *name, *value;
		if (get_str(c, k, key, &name) < 0)
			return -1;
		char ikey[KEY_MAX];
		snprintf(ikey, sizeof(ikey), "%s.%s", key, name);
		if (!warden_env_name_valid(name))
			return perr(c, k, ikey, "not a valid variable name");
		if (get_str(c, val, ikey, &value) < 0)
			return -1;
		for (size_t i = 0; i < c->p->env.n; i++)
			if (!strncmp(c->p->env.v[i], name, strlen(name)) &&
			    c->p->env.v[i][strlen(name)] == '=')
				return perr(c, k, ikey, "duplicate key");
		strv_push_take(&c->p->env, xasprintf("%s=%s", name, value));
	}
	return 0;
}

static int f_env_pass(struct pctx *c, yaml_node_t *v, const char *key)
{
	yaml_node_t *item;
	if (check_seq(c, v, key) < 0)
		return -1;
	strv_clear(&c->p->env_pass);
	for_each_item(c, v, key, item)
	{
		const char *name;
		char ikey[KEY_MAX];
		snprintf(ikey, sizeof(ikey), "%s[%zu]", key, seq_index(v, item, c->doc));
		if (get_str(c, item, ikey, &name) < 0)
			return -1;
		if (!warden_env_name_valid(name))
			return perr(c, item, ikey, "\"%s\" is not a valid variable name", name);
		strv_push(&c->p->env_pass, name);
	}
	return 0;
}

static const struct field process_fields[] = {
    {"user", f_user},         {"workdir", f_workdir}, {"env", f_env},
    {"env_pass", f_env_pass}, {NULL, NULL},
};

static int f_process(struct pctx *c, yaml_node_t *v, const char *key)
{
	return walk_map(c, v, key, process_fields);
}

static int f_memory(struct pctx *c, yaml_node_t *v, const char *key)
{
	if (get_size(c, v, key, true, &c->p->memory) < 0)
		return -1;
	if (c->p->memory && c->p->memory < (8ULL << 20))
		return perr(c, v, key, "must be at least 8M (or \"unlimited\")");
	return 0;
}

static int f_pids(struct pctx *c, yaml_node_t *v, const char *key)
{
	return get_count(c, v, key, 2, 4194304, true, &c->p->pids);
}

static int f_cpus(struct pctx *c, yaml_node_t *v, const char *key)
{
	if (get_milli(c, v, key, &c->p->cpus_milli) < 0)
		return -1;
	if (c->p->cpus_milli && c->p->cpus_milli < 10)
		return perr(c, v, key, "must be at least 0.01 (or \"unlimited\")");
	return 0;
}

static int f_timeout(struct pctx *c, yaml_node_t *v, const char *key)
{
	return get_milli(c, v, key, &c->p->timeout_ms);
}

static int f_nofile(struct pctx *c, yaml_node_t *v, const char *key)
{
	return get_count(c, v, key, 16, 1048576, false, &c->p->nofile);
}

static const struct field limits_fields[] = {
    {"memory", f_memory},   {"pids", f_pids},     {"cpus", f_cpus},
    {"timeout", f_timeout}, {"nofile", f_nofile}, {NULL, NULL},
};

static int f_limits(struct pctx *c, yaml_node_t *v, const char *key)
{
	return walk_map(c, v, key, limits_fields);
}

static int f_isolation(struct pctx *c, yaml_node_t *v, const char *key)
{
	static const char *const names[] = {"ns", "vm", NULL};
	int r = get_enum(c, v, key, names, "ns or vm");
	if (r >= 0)
		c->p->isolation = (enum warden_isolation)r;
	return r < 0 ? -1 : 0;
}

static int f_mode(struct pctx *c, yaml_node_t *v, const char *key)
{
	static const char *const names[] = {"none", "host", "proxy", NULL};
	int r = get_enum(c, v, key, names, "none, proxy or host");
	if (r >= 0)
		c->p->net_mode = (enum warden_net_mode)r;
	return r < 0 ? -1 : 0;
}

static int get_ports(struct pctx *c, yaml_node_t *v, const char *key, struct warden_ports *ret)
{
	yaml_node_t *item;
	memset(ret, 0, sizeof(*ret));
	if (v->type == YAML_SCALAR_NODE && streq((const char *)v->data.scalar.value, "any")) {
		ret->any = true;
		return 0;
	}
	if (v->type != YAML_SEQUENCE_NODE)
		return perr(c, v, key, "expected a list of ports or \"any\", found %s",
		            wyaml_node_kind(v));
	if (check_seq(c, v, key) < 0)
		return -1;
	for_each_item(c, v, key, item)
	{
		char ikey[KEY_MAX];
		uint64_t port;
		snprintf(ikey, sizeof(ikey), "%s[%zu]", key, seq_index(v, item, c->doc));
		if (ret->n == WARDEN_MAX_PORTS)
			return perr(c, item, ikey, "more than %d ports", WARDEN_MAX_PORTS);
		if (get_count(c, item, ikey, 1, 65535, false, &port) < 0)
			return -1;
		ret->v[ret->n++] = (uint16_t)port;
	}
	return 0;
}

static int f_tcp_bind(struct pctx *c, yaml_node_t *v, const char *key)
{
	return get_ports(c, v, key, &c->p->tcp_bind);
}

static int f_tcp_connect(struct pctx *c, yaml_node_t *v, const char *key)
{
	return get_ports(c, v, key, &c->p->tcp_connect);
}

/* A list of strings, each parsed into the next element of an array allocated for all of
 * them (*ret, of `size`-byte elements; *ret_n counts those parsed). */
static int get_parsed_list(struct pctx *c, yaml_node_t *v, const char *key, size_t size,
                           int (*parse)(const char *s, void *elem, const char **why), void **ret,
                           size_t *ret_n)
{
	yaml_node_t *item;
	if (check_seq(c, v, key) < 0)
		return -1;
	size_t cap = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	*ret = xcalloc(cap ? cap : 1, size);
	for_each_item(c, v, key, item)
	{
		const char *s, *why = NULL;
		char ikey[KEY_MAX];
		wyaml_key(ikey, sizeof(ikey), "%s[%zu]", key, seq_index(v, item, c->doc));
		if (get_str(c, item, ikey, &s) < 0)
			return -1;
		if (parse(s, (char *)*ret + *ret_n * size, &why) < 0)
			return perr(c, item, ikey, "\"%s\": %s", s, why);
		(*ret_n)++;
	}
	return 0;
}

static int parse_egress_rule(const char *s, void *elem, const char **why)
{
	return warden_egress_rule_parse(s, elem, why);
}

static int parse_net(const char *s, void *elem, const char **why)
{
	return warden_net_parse(s, elem, why);
}

static int get_egress_rules(struct pctx *c, yaml_node_t *v, const char *key,
                            struct warden_egress_rules *ret)
{
	warden_egress_rules_clear(ret);
	return get_parsed_list(c, v, key, sizeof(*ret->v), parse_egress_rule, (void **)&ret->v,
	                       &ret->n);
}

static int f_allow(struct pctx *c, yaml_node_t *v, const char *key)
{
	return get_egress_rules(c, v, key, &c->p->allow);
}

static int f_deny(struct pctx *c, yaml_node_t *v, const char *key)
{
	return get_egress_rules(c, v, key, &c->p->deny);
}

static const struct field network_fields[] = {
    {"mode", f_mode},   {"tcp_bind", f_tcp_bind}, {"tcp_connect", f_tcp_connect},
    {"allow", f_allow}, {"deny", f_deny},         {NULL, NULL},
};

static int f_network(struct pctx *c, yaml_node_t *v, const char *key)
{
	return walk_map(c, v, key, network_fields);
}

static int get_syscalls(struct pctx *c, yaml_node_t *v, const char *key, struct strv *ret)
{
	yaml_node_t *item;
	if (check_seq(c, v, key) < 0)
		return -1;
	strv_clear(ret);
	for_each_item(c, v, key, item)
	{
		const char *name;
		char ikey[KEY_MAX];
		snprintf(ikey, sizeof(ikey), "%s[%zu]", key, seq_index(v, item, c->doc));
		if (get_str(c, item, ikey, &name) < 0)
			return -1;
		if (seccomp_syscall_resolve_name(name) == __NR_SCMP_ERROR)
			return perr(c, item, ikey, "unknown system call \"%s\"", name);
		strv_push(ret, name);
	}
	return 0;
}

static int f_seccomp_deny(struct pctx *c, yaml_node_t *v, const char *key)
{
	return get_syscalls(c, v, key, &c->p->seccomp_deny);
}

static int f_seccomp_allow(struct pctx *c, yaml_node_t *v, const char *key)
{
	return get_syscalls(c, v, key, &c->p->seccomp_allow);
}

static const struct field seccomp_fields[] = {
    {"deny", f_seccomp_deny},
    {"allow", f_seccomp_allow},
    {NULL, NULL},
};

static int f_seccomp(struct pctx *c, yaml_node_t *v, const char *key)
{
	return walk_map(c, v, key, seccomp_fields);
}

static int f_landlock(struct pctx *c, yaml_node_t *v, const char *key)
{
	/* in the order of enum warden_landlock_mode */
	static const char *const names[] = {"best_effort", "required", "off", NULL};
	int r = get_enum(c, v, key, names, "best_effort, required or off");
	if (r >= 0)
		c->p->landlock = (enum warden_landlock_mode)r;
	return r < 0 ? -1 : 0;
}

static int f_ptrace(struct pctx *c, yaml_node_t *v, const char *key)
{
	return get_bool(c, v, key, &c->p->allow_ptrace);
}

static const struct field security_fields[] = {
    {"seccomp", f_seccomp},
    {"landlock", f_landlock},
    {"ptrace", f_ptrace},
    {NULL, NULL},
};

static int f_security(struct pctx *c, yaml_node_t *v, const char *key)
{
	return walk_map(c, v, key, security_fields);
}

static int f_tel_enabled(struct pctx *c, yaml_node_t *v, const char *key)
{
	return get_bool(c, v, key, &c->p->telemetry);
}

static int f_ring_size(struct pctx *c, yaml_node_t *v, const char *key)
{
	uint64_t n;
	if (get_size(c, v, key, false, &n) < 0)
		return -1;
	if (n < 4096 || n > (64 << 20) || (n & (n - 1)))
		return perr(c, v, key, "must be a power of two from 4K to 64M");
	c->p->ring_bytes = n;
	return 0;
}

static const struct field telemetry_fields[] = {
    {"enabled", f_tel_enabled},
    {"ring_size", f_ring_size},
    {NULL, NULL},
};

static int f_telemetry(struct pctx *c, yaml_node_t *v, const char *key)
{
	return walk_map(c, v, key, telemetry_fields);
}

/* Seconds, with a fraction or a unit: "90", "1.5", "30s", "10m", "2h" -> milliseconds. */
static int get_duration(struct pctx *c, yaml_node_t *v, const char *key, uint64_t *ret)
{
	const char *s, *why = NULL;
	if (get_str(c, v, key, &s) < 0)
		return -1;
	_cleanup_free_ char *num = xstrdup(s);
	size_t len = strlen(num);
	uint64_t unit = 1;
	if (len && (num[len - 1] == 's' || num[len - 1] == 'm' || num[len - 1] == 'h')) {
		unit = num[len - 1] == 's' ? 1 : num[len - 1] == 'm' ? 60 : 3600;
		num[len - 1] = '\0';
	}
	if (parse_milli(num, ret, &why) < 0)
		return perr(c, v, key, "\"%s\": %s (seconds, or a number with s, m or h)", s, why);
	if (*ret == 0)
		return perr(c, v, key, "must be more than 0");
	*ret *= unit;
	return 0;
}

static int guard_patterns(struct pctx *c, yaml_node_t *v, const char *key,
                          struct warden_guard_rule *r)
{
	yaml_node_t *item;
	if (check_seq(c, v, key) < 0)
		return -1;
	for_each_item(c, v, key, item)
	{
		const char *s;
		char ikey[KEY_MAX];
		wyaml_key(ikey, sizeof(ikey), "%s[%zu]", key, seq_index(v, item, c->doc));
		if (get_str(c, item, ikey, &s) < 0)
			return -1;
		if (!*s)
			return perr(c, item, ikey, "empty pattern");
		strv_push(&r->patterns, s);
	}
	if (!r->patterns.n)
		return perr(c, v, key, "needs at least one pattern");
	return 0;
}

static int guard_nets(struct pctx *c, yaml_node_t *v, const char *key, struct warden_guard_rule *r)
{
	if (get_parsed_list(c, v, key, sizeof(*r->nets), parse_net, (void **)&r->nets, &r->n_nets) <
	    0)
		return -1;
	if (!r->n_nets)
		return perr(c, v, key, "needs at least one destination");
	return 0;
}

/* `when:` holds exactly one condition. */
static int guard_when(struct pctx *c, yaml_node_t *v, const char *key, struct warden_guard_rule *r)
{
	if (v->type != YAML_MAPPING_NODE)
		return perr(c, v, key, "expected a mapping with one condition, found %s",
		            wyaml_node_kind(v));
	if (v->data.mapping.pairs.top - v->data.mapping.pairs.start != 1)
		return perr(c, v, key, "give exactly one condition");
	yaml_node_pair_t *pr = v->data.mapping.pairs.start;
	yaml_node_t *k = yaml_document_get_node(c->doc, pr->key);
	yaml_node_t *val = yaml_document_get_node(c->doc, pr->value);
	char expected[256] = "";
	for (int i = 0; i < WARDEN_GUARD_COND_MAX; i++)
		snprintf(expected + strlen(expected), sizeof(expected) - strlen(expected), "%s%s",
		         i ? ", " : "", warden_guard_cond_names[i]);
	const char *const names[] = {warden_guard_cond_names[0], warden_guard_cond_names[1],
	                             warden_guard_cond_names[2], warden_guard_cond_names[3],
	                             warden_guard_cond_names[4], warden_guard_cond_names[5],
	                             warden_guard_cond_names[6], warden_guard_cond_names[7],
	                             warden_guard_cond_names[8], NULL};
	unsigned seen = 0;
	int cond = entry_key(c, k, key, names, expected, &seen);
	if (cond < 0)
		return -1;
	char ckey[KEY_MAX];
	wyaml_key(ckey, sizeof(ckey), "%s.%s", key, names[cond]);
	r->cond = (enum warden_guard_cond)cond;
	switch (r->cond) {
	case WARDEN_GUARD_EXEC:
	case WARDEN_GUARD_EXEC_OUTSIDE:
		return guard_patterns(c, val, ckey, r);
	case WARDEN_GUARD_CONNECT_TO:
		return guard_nets(c, val, ckey, r);
	case WARDEN_GUARD_MEMORY_PEAK:
	case WARDEN_GUARD_GPU_MEMORY:
		return get_size(c, val, ckey, false, &r->threshold);
	case WARDEN_GUARD_CPU_TIME:
	case WARDEN_GUARD_WALL_TIME:
		return get_duration(c, val, ckey, &r->threshold);
	default:
		return get_count(c, val, ckey, 0, UINT32_MAX, false, &r->threshold);
	}
}

static int guard_rule(struct pctx *c, yaml_node_t *item, const char *ikey, size_t index,
                      struct warden_guard_rule *r)
{
	static const char *const names[] = {"name", "when", "action", NULL};
	unsigned seen = 0;
	if (item->type != YAML_MAPPING_NODE)
		return perr(c, item, ikey, "expected a mapping (name, when, action), found %s",
		            wyaml_node_kind(item));
	for (yaml_node_pair_t *pr = item->data.mapping.pairs.start;
	     pr < item->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, pr->key);
		yaml_node_t *val = yaml_document_get_node(c->doc, pr->value);
		char fkey[KEY_MAX];
		int which = entry_key(c, k, ikey, names, "name, when, action", &seen);
		if (which < 0)
			return -1;
		wyaml_key(fkey, sizeof(fkey), "%s.%s", ikey, names[which]);
		if (which == 0) {
			const char *s;
			if (get_str(c, val, fkey, &s) < 0)
				return -1;
			if (!warden_policy_name_valid(s))
				return perr(c, val, fkey,
				            "\"%s\": 1 to 64 letters, digits, '-', '_', '.'", s);
			free(r->name);
			r->name = xstrdup(s);
		} else if (which == 1) {
			if (guard_when(c, val, fkey, r) < 0)
				return -1;
		} else {
			static const char *const actions[] = {"log", "alert", "kill", "freeze",
			                                      NULL};
			int a = get_enum(c, val, fkey, actions, "log, alert, kill or freeze");
			if (a < 0)
				return -1;
			r->action = (enum warden_guard_action)a;
		}
	}
	if (!(seen & 2))
		return perr(c, item, ikey, "missing \"when\"");
	if (!(seen & 4))
		return perr(c, item, ikey, "missing \"action\"");
	if (!r->name)
		r->name = xasprintf("guardrail-%zu", index + 1);
	return 0;
}

static int f_guardrails(struct pctx *c, yaml_node_t *v, const char *key)
{
	yaml_node_t *item;
	if (check_seq(c, v, key) < 0)
		return -1;
	warden_guards_clear(&c->p->guardrails);
	size_t cap = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	c->p->guardrails.v = xcalloc(cap ? cap : 1, sizeof(struct warden_guard_rule));
	for_each_item(c, v, key, item)
	{
		char ikey[KEY_MAX];
		size_t index = seq_index(v, item, c->doc);
		struct warden_guard_rule *r = &c->p->guardrails.v[c->p->guardrails.n++];
		wyaml_key(ikey, sizeof(ikey), "%s[%zu]", key, index);
		if (guard_rule(c, item, ikey, index, r) < 0)
			return -1;
		for (size_t j = 0; j + 1 < c->p->guardrails.n; j++)
			if (streq(c->p->guardrails.v[j].name, r->name))
				return perr(c, item, ikey, "a second guardrail named \"%s\"",
				            r->name);
	}
	return 0;
}

static int f_version(struct pctx *c, yaml_node_t *v, const char *key)
{
	const char *s;
	if (get_str(c, v, key, &s) < 0)
		return -1;
	if (!streq(s, "1"))
		return perr(c, v, key, "unsupported policy version \"%s\" (this warden reads 1)",
		            s);
	return 0;
}

bool warden_policy_name_valid(const char *s)
{
	if (!s || !*s || strlen(s) > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
			return false;
	return true;
}

static int f_name(struct pctx *c, yaml_node_t *v, const char *key)
{
	const char *s;
	if (get_str(c, v, key, &s) < 0)
		return -1;
	if (!*s || strlen(s) > 64)
		return perr(c, v, key, "must be 1 to 64 characters");
	if (!warden_policy_name_valid(s))
		return perr(c, v, key, "\"%s\": use letters, digits, '-', '_', '.'", s);
	free(c->p->name);
	c->p->name = xstrdup(s);
	c->name_set = true;
	return 0;
}

static int f_description(struct pctx *c, yaml_node_t *v, const char *key)
{
	const char *s;
	return get_str(c, v, key, &s);
}

static int f_devices(struct pctx *c, yaml_node_t *v, const char *key)
{
	return policy_yaml_devices(c->doc, c->origin, v, key, c->p, c->err);
}

static int f_gpu(struct pctx *c, yaml_node_t *v, const char *key)
{
	return policy_yaml_gpu(c->doc, c->origin, v, key, c->p, c->err);
}

/* `extends` is applied before every other key, in parse_document(). */
static const struct field top_fields[] = {
    {"version", f_version},
    {"name", f_name},
    {"description", f_description},
    {"extends", NULL},
    {"filesystem", f_filesystem},
    {"process", f_process},
    {"limits", f_limits},
    {"network", f_network},
    {"security", f_security},
    {"telemetry", f_telemetry},
    {"guardrails", f_guardrails},
    {"devices", f_devices},
    {"gpu", f_gpu},
    {"isolation", f_isolation},
    {NULL, NULL},
};

/* ---- presets and extends ----------------------------------------------------------- */

const char *const warden_preset_names[] = {"default", "strict", NULL};

const char *warden_preset_text(const char *name)
{
	for (size_t i = 0; warden_presets[i].name; i++)
		if (streq(warden_presets[i].name, name))
			return warden_presets[i].text;
	return NULL;
}

static struct warden_policy *load_preset(const char *name, int depth, struct warden_error **err)
{
	/* The default preset is the documented defaults, which warden_policy_new() builds
	 * without parsing; a unit test keeps the two equal. */
	if (streq(name, "default"))
		return warden_policy_new();
	const char *text = warden_preset_text(name);
	if (!text) {
		warden_error_set(err, 0, "no preset named \"%s\" (presets: default, strict)", name);
		return NULL;
	}
	_cleanup_free_ char *origin = xasprintf("<preset %s>", name);
	return parse_into(text, strlen(text), origin, name, depth, err);
}

static int parse_document(struct pctx *c, yaml_node_t *root, int depth)
{
	if (root->type != YAML_MAPPING_NODE)
		return perr(c, root, "policy", "expected a mapping at the top, found %s",
		            wyaml_node_kind(root));
	for (yaml_node_pair_t *pr = root->data.mapping.pairs.start;
	     pr < root->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, pr->key);
		yaml_node_t *v = yaml_document_get_node(c->doc, pr->value);
		const char *name;
		if (k->type != YAML_SCALAR_NODE ||
		    !streq((const char *)k->data.scalar.value, "extends"))
			continue;
		if (get_str(c, v, "extends", &name) < 0)
			return -1;
		if (depth >= 4)
			return perr(c, v, "extends", "presets extend each other too deeply");
		_cleanup_error_ struct warden_error *e = NULL;
		struct warden_policy *base = load_preset(name, depth + 1, &e);
		if (!base)
			return perr(c, v, "extends", "%s", e->msg);
		warden_policy_free(c->p);
		c->p = base;
		break;
	}
	return walk_map(c, root, "", top_fields);
}

static struct warden_policy *parse_into(const char *text, size_t len, const char *origin,
                                        const char *default_name, int depth,
                                        struct warden_error **err)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	struct pctx c = {.origin = origin, .doc = &doc, .err = err};

	if (len > POLICY_MAX_BYTES) {
		warden_error_set(err, 0, "%s: policy larger than %d bytes", origin,
		                 POLICY_MAX_BYTES);
		return NULL;
	}
	if (memchr(text, '\0', len)) {
		warden_error_set(err, 0, "%s: policy contains a NUL byte", origin);
		return NULL;
	}
	if (wyaml_check_shape(text, len, origin, "policy", POLICY_MAX_DEPTH, POLICY_MAX_ITEMS,
	                      err) < 0)
		return NULL;
	if (!yaml_parser_initialize(&parser))
		abort();
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		wyaml_syntax_error(&parser, origin, err);
		yaml_parser_delete(&parser);
		return NULL;
	}
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	int r = 0;
	if (!root) {
		r = warden_error_set(err, 0, "%s: empty policy", origin);
	} else {
		c.p = warden_policy_new();
		r = parse_document(&c, root, depth);
		if (r == 0)
			r = wyaml_no_more_documents(&parser, origin, "policy", err);
	}
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	if (r < 0) {
		warden_policy_free(c.p);
		return NULL;
	}
	if (!c.name_set) {
		free(c.p->name);
		c.p->name = xstrdup(default_name);
	}
	return c.p;
}

/* ---- entry points ------------------------------------------------------------------ */

struct warden_policy *warden_policy_parse(const char *text, size_t len, const char *origin,
                                          struct warden_error **err)
{
	return parse_into(text, len, origin, origin, 0, err);
}

static bool looks_like_path(const char *s)
{
	size_t n = strlen(s);
	return strchr(s, '/') || (n > 5 && streq(s + n - 5, ".yaml")) ||
	       (n > 4 && streq(s + n - 4, ".yml"));
}

struct warden_policy *warden_policy_load(const char *name_or_path, struct warden_error **err)
{
	if (!looks_like_path(name_or_path))
		return load_preset(name_or_path, 0, err);
	_cleanup_free_ char *buf = NULL;
	size_t len;
	if (read_small_file(name_or_path, POLICY_MAX_BYTES, "policy", &buf, &len, err) < 0)
		return NULL;
	return parse_into(buf, len, name_or_path, name_or_path, 0, err);
}
