/* policy-devices.c: the `devices:` and `gpu:` sections of a policy.
 *
 * Sections: device specs ("PATH[:ACCESS]") and GPU names, shared with the command line;
 * the YAML readers that policy-yaml.c calls for the two sections; YAML rendering.
 *
 * Policy files are untrusted input: every value is checked here and refused with
 * file:line:column and the key, like the rest of the policy. Whether a path really is a
 * device node, and whether a GPU exists, is decided later, on the host (plan.c, gpu/).
 */
#define _GNU_SOURCE
#include "policy-devices.h"
#include "yaml-util.h"

#include <inttypes.h>

#define DEVICES_MAX 64
#define KEY_MAX     160

/* ---- specs ------------------------------------------------------------------------- */

int warden_device_access_parse(const char *s, unsigned *ret, const char **ret_why)
{
	unsigned a = 0;
	if (!*s) {
		*ret_why = "empty access (use r, w, m or a combination such as rw)";
		return -1;
	}
	for (; *s; s++) {
		unsigned bit = *s == 'r'   ? WARDEN_DEV_READ
		               : *s == 'w' ? WARDEN_DEV_WRITE
		               : *s == 'm' ? WARDEN_DEV_MKNOD
		                           : 0;
		if (!bit) {
			*ret_why = "access letters are r (read), w (write) and m (mknod)";
			return -1;
		}
		if (a & bit) {
			*ret_why = "an access letter is repeated";
			return -1;
		}
		a |= bit;
	}
	*ret = a;
	return 0;
}

void warden_device_access_format(unsigned access, char *buf)
{
	char *p = buf;
	if (access & WARDEN_DEV_READ)
		*p++ = 'r';
	if (access & WARDEN_DEV_WRITE)
		*p++ = 'w';
	if (access & WARDEN_DEV_MKNOD)
		*p++ = 'm';
	*p = '\0';
}

int warden_device_parse_spec(const char *spec, struct warden_device *ret, struct warden_error **err)
{
	_cleanup_free_ char *path = xstrdup(spec);
	char *colon = strchr(path, ':');
	const char *why = NULL;
	unsigned access = WARDEN_DEV_READ | WARDEN_DEV_WRITE;
	if (colon) {
		*colon = '\0';
		if (warden_device_access_parse(colon + 1, &access, &why) < 0)
			return warden_error_set(err, 0, "\"%s\": %s", spec, why);
	}
	if (!path_is_normal_absolute(path))
		return warden_error_set(
		    err, 0, "\"%s\": \"%s\" is not an absolute, normalized path", spec, path);
	ret->path = TAKE_PTR(path);
	ret->access = access;
	return 0;
}

void warden_devices_push(struct warden_devices *d, const char *path, unsigned access)
{
	for (size_t i = 0; i < d->n; i++)
		if (streq(d->v[i].path, path)) {
			d->v[i].access |= access;
			return;
		}
	d->v = xrealloc(d->v, (d->n + 1) * sizeof(*d->v));
	d->v[d->n++] = (struct warden_device){.path = xstrdup(path), .access = access};
}

void warden_devices_clear(struct warden_devices *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i].path);
	free(d->v);
	d->v = NULL;
	d->n = 0;
}

bool warden_gpu_spec_valid(const char *s, const char **ret_why)
{
	if (streq(s, "all"))
		return true;
	if (*s >= '0' && *s <= '9') {
		uint64_t v;
		if (parse_uint(s, 63, &v, ret_why) < 0) {
			*ret_why = "a GPU index is 0 to 63";
			return false;
		}
		return true;
	}
	if (strncmp(s, "GPU-", 4) && strncmp(s, "MIG-", 4)) {
		*ret_why = "a GPU is \"all\", an index, \"GPU-<uuid>\" or \"MIG-<uuid>\"";
		return false;
	}
	size_t n = strlen(s + 4);
	/* A UUID, or the older MIG-GPU-<uuid>/<gi>/<ci> form. */
	if (n < 8 || n > 80 || strspn(s + 4, "0123456789abcdefABCDEFGPU-/") != n) {
		*ret_why = "not a UUID (hexadecimal digits and dashes)";
		return false;
	}
	return true;
}

/* ---- YAML -------------------------------------------------------------------------- */

struct dctx {
	yaml_document_t *doc;
	const char *origin;
	struct warden_error **err;
};

/* An error at node n of the file being parsed (c: its parsing context). */
#define derr(c, n, key, ...) wyaml_error((c)->err, (c)->origin, n, key, __VA_ARGS__)

static int seq_items(struct dctx *c, yaml_node_t *v, const char *key, size_t max,
                     yaml_node_item_t **ret_start, size_t *ret_n)
{
	if (v->type != YAML_SEQUENCE_NODE)
		return derr(c, v, key, "expected a list, found %s", wyaml_node_kind(v));
	size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	if (n > max)
		return derr(c, v, key, "more than %zu entries", max);
	*ret_start = v->data.sequence.items.start;
	*ret_n = n;
	return 0;
}

/* {path: PATH, access: ACCESS} */
static int device_from_map(struct dctx *c, yaml_node_t *item, const char *ikey,
                           struct warden_device *d)
{
	const char *path = NULL, *access = "rw", *why = NULL;
	yaml_node_t *access_node = item;
	for (yaml_node_pair_t *pr = item->data.mapping.pairs.start;
	     pr < item->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, pr->key);
		yaml_node_t *val = yaml_document_get_node(c->doc, pr->value);
		const char *name;
		if (wyaml_get_str(c->err, c->origin, k, ikey, &name) < 0)
			return -1;
		bool is_path = streq(name, "path"), is_access = streq(name, "access");
		if (!is_path && !is_access)
			return derr(c, k, ikey, "unknown key \"%s\" (expected path, access)", name);
		if ((is_path && path) || (is_access && access_node != item))
			return derr(c, k, ikey, "duplicate key \"%s\"", name);
		if (wyaml_get_str(c->err, c->origin, val, ikey, is_path ? &path : &access) < 0)
			return -1;
		if (is_access)
			access_node = val;
		else if (!path_is_normal_absolute(path))
			return derr(c, val, ikey, "\"%s\" is not an absolute, normalized path",
			            path);
	}
	if (!path)
		return derr(c, item, ikey, "missing \"path\"");
	if (warden_device_access_parse(access, &d->access, &why) < 0)
		return derr(c, access_node, ikey, "access \"%s\": %s", access, why);
	d->path = xstrdup(path);
	return 0;
}

int policy_yaml_devices(yaml_document_t *doc, const char *origin, yaml_node_t *v, const char *key,
                        struct warden_policy *p, struct warden_error **err)
{
	struct dctx c = {doc, origin, err};
	yaml_node_item_t *items;
	size_t n;
	if (seq_items(&c, v, key, DEVICES_MAX, &items, &n) < 0)
		return -1;
	warden_devices_clear(&p->devices);
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *item = yaml_document_get_node(doc, items[i]);
		char ikey[KEY_MAX];
		struct warden_device d = {0};
		wyaml_key(ikey, sizeof(ikey), "%s[%zu]", key, i);
		if (item->type == YAML_MAPPING_NODE) {
			if (device_from_map(&c, item, ikey, &d) < 0)
				return -1;
		} else {
			const char *spec;
			_cleanup_error_ struct warden_error *e = NULL;
			if (wyaml_get_str(err, origin, item, ikey, &spec) < 0)
				return -1;
			if (warden_device_parse_spec(spec, &d, &e) < 0)
				return derr(&c, item, ikey, "%s", e->msg);
		}
		for (size_t j = 0; j < p->devices.n; j++)
			if (streq(p->devices.v[j].path, d.path)) {
				free(d.path);
				return derr(&c, item, ikey, "%s is already granted (entry %zu)",
				            p->devices.v[j].path, j);
			}
		warden_devices_push(&p->devices, d.path, d.access);
		free(d.path);
	}
	return 0;
}

static int gpu_devices(struct dctx *c, yaml_node_t *v, const char *key, struct warden_gpu *g)
{
	yaml_node_item_t *items;
	size_t n;
	strv_clear(&g->devices);
	/* A single scalar ("all", 0) stands for a list of one. */
	if (v->type == YAML_SCALAR_NODE) {
		items = NULL;
		n = 1;
	} else if (seq_items(c, v, key, WARDEN_GPU_MAX, &items, &n) < 0) {
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *item = items ? yaml_document_get_node(c->doc, items[i]) : v;
		char ikey[KEY_MAX];
		const char *s, *why = NULL;
		wyaml_key(ikey, sizeof(ikey), items ? "%s[%zu]" : "%s", key, i);
		if (wyaml_get_str(c->err, c->origin, item, ikey, &s) < 0)
			return -1;
		if (!warden_gpu_spec_valid(s, &why))
			return derr(c, item, ikey, "\"%s\": %s", s, why);
		for (size_t j = 0; j < g->devices.n; j++)
			if (streq(g->devices.v[j], s))
				return derr(c, item, ikey, "\"%s\" is listed twice", s);
		if (streq(s, "all") && n > 1)
			return derr(c, item, ikey, "\"all\" cannot be combined with other GPUs");
		strv_push(&g->devices, s);
	}
	return 0;
}

static int gpu_memory(struct dctx *c, yaml_node_t *v, const char *key, uint64_t *ret)
{
	const char *s, *why = NULL;
	if (wyaml_get_str(c->err, c->origin, v, key, &s) < 0)
		return -1;
	if (wyaml_is_unlimited(s)) {
		*ret = 0;
		return 0;
	}
	if (parse_size(s, ret, &why) < 0)
		return derr(c, v, key, "\"%s\": %s", s, why);
	if (*ret < (1ULL << 20))
		return derr(c, v, key, "\"%s\": at least 1M, or \"unlimited\"", s);
	return 0;
}

int policy_yaml_gpu(yaml_document_t *doc, const char *origin, yaml_node_t *v, const char *key,
                    struct warden_policy *p, struct warden_error **err)
{
	static const char *const names[] = {"devices", "memory", "scrub", "exclusive", "uvm_tools"};
	struct dctx c = {doc, origin, err};
	unsigned seen = 0;
	if (v->type != YAML_MAPPING_NODE)
		return derr(&c, v, key, "expected a mapping, found %s", wyaml_node_kind(v));
	for (yaml_node_pair_t *pr = v->data.mapping.pairs.start; pr < v->data.mapping.pairs.top;
	     pr++) {
		yaml_node_t *k = yaml_document_get_node(doc, pr->key);
		yaml_node_t *val = yaml_document_get_node(doc, pr->value);
		const char *name;
		char fkey[KEY_MAX];
		size_t i = 0;
		if (wyaml_get_str(err, origin, k, key, &name) < 0)
			return -1;
		wyaml_key(fkey, sizeof(fkey), "%s.%s", key, name);
		while (i < ARRAY_SIZE(names) && !streq(names[i], name))
			i++;
		if (i == ARRAY_SIZE(names))
			return derr(&c, k, fkey,
			            "unknown key (expected one of: devices, memory, scrub, "
			            "exclusive, uvm_tools)");
		if (seen & (1U << i))
			return derr(&c, k, fkey, "duplicate key");
		seen |= 1U << i;
		int r = i == 0   ? gpu_devices(&c, val, fkey, &p->gpu)
		        : i == 1 ? gpu_memory(&c, val, fkey, &p->gpu.memory)
		                 : wyaml_get_bool(err, origin, val, fkey,
		                                  i == 2   ? &p->gpu.scrub
		                                  : i == 3 ? &p->gpu.exclusive
		                                           : &p->gpu.uvm_tools);
		if (r < 0)
			return -1;
	}
	if (!p->gpu.devices.n && (seen & ~1U))
		return derr(&c, v, key, "settings without \"devices\" grant no GPU");
	return 0;
}
