/* policy.c: the policy structure: defaults, volumes and users given as strings, freeing,
 * and rendering back to YAML.
 *
 * Sections: defaults; mounts; users; free; YAML rendering (libyaml's emitter).
 */
#define _GNU_SOURCE
#include "policy.h"
#include "net/egress.h"

#include <ctype.h>
#include <inttypes.h>
#include <yaml.h>

/* ---- defaults ---------------------------------------------------------------------- */

static void push_ro(struct warden_policy *p, const char *path, bool optional)
{
	struct warden_mount m = {.host = (char *)path, .path = (char *)path, .optional = optional};
	warden_mounts_push(&p->read_only, &m);
}

struct warden_policy *warden_policy_new(void)
{
	struct warden_policy *p = xcalloc(1, sizeof(*p));
	p->name = xstrdup("default");
	/* The host's system directories, read-only. /bin, /sbin and /lib* are symlinks into
	 * /usr on merged-/usr systems and real directories elsewhere; both are handled. */
	push_ro(p, "/usr", false);
	push_ro(p, "/bin", true);
	push_ro(p, "/sbin", true);
	push_ro(p, "/lib", true);
	push_ro(p, "/lib32", true);
	push_ro(p, "/lib64", true);
	push_ro(p, "/libx32", true);
	push_ro(p, "/etc", false);
	p->tmp_size = 512ULL << 20;
	p->uid = WARDEN_AGENT_UID;
	p->gid = WARDEN_AGENT_UID;
	strv_push(&p->env, "LANG=C.UTF-8");
	p->memory = 1ULL << 30;
	p->pids = 512;
	p->nofile = 4096;
	p->net_mode = WARDEN_NET_NONE;
	p->landlock = WARDEN_LANDLOCK_BEST_EFFORT;
	p->allow_ptrace = true;
	p->telemetry = true;
	p->ring_bytes = 256 << 10;
	p->gpu.scrub = true;
	p->gpu.exclusive = true;
	return p;
}

/* ---- mounts ------------------------------------------------------------------------ */

void warden_mounts_push(struct warden_mounts *m, const struct warden_mount *src)
{
	m->v = xrealloc(m->v, (m->n + 1) * sizeof(*m->v));
	m->v[m->n].host = xstrdup(src->host);
	m->v[m->n].path = xstrdup(src->path);
	m->v[m->n].rw = src->rw;
	m->v[m->n].optional = src->optional;
	m->n++;
}

void warden_mounts_clear(struct warden_mounts *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->v[i].host);
		free(m->v[i].path);
	}
	free(m->v);
	m->v = NULL;
	m->n = 0;
}

int warden_mount_parse_spec(const char *spec, struct warden_mount *ret, struct warden_error **err)
{
	_cleanup_free_ char *copy = xstrdup(spec);
	char *host = copy, *path = strchr(copy, ':'), *mode = NULL;
	if (!path)
		return warden_error_set(err, 0, "\"%s\": expected HOST:PATH[:ro|rw]", spec);
	*path++ = '\0';
	mode = strchr(path, ':');
	if (mode)
		*mode++ = '\0';
	if (!*host)
		return warden_error_set(err, 0, "\"%s\": empty host path", spec);
	if (!path_is_normal_absolute(path))
		return warden_error_set(err, 0,
		                        "\"%s\": sandbox path \"%s\" must be absolute, "
		                        "normalized and not /",
		                        spec, path);
	bool rw = true;
	if (mode && streq(mode, "ro"))
		rw = false;
	else if (mode && !streq(mode, "rw"))
		return warden_error_set(err, 0, "\"%s\": mode \"%s\" is not ro or rw", spec, mode);
	ret->host = xstrdup(host);
	ret->path = xstrdup(path);
	ret->rw = rw;
	ret->optional = false;
	return 0;
}

/* ---- users ------------------------------------------------------------------------- */

int warden_user_parse(const char *s, uid_t *ret_uid, gid_t *ret_gid, struct warden_error **err)
{
	const char *why = NULL;
	uint64_t u, g;
	if (streq(s, "agent")) {
		*ret_uid = *ret_gid = WARDEN_AGENT_UID;
		return 0;
	}
	if (streq(s, "root")) {
		*ret_uid = *ret_gid = 0;
		return 0;
	}
	_cleanup_free_ char *copy = xstrdup(s);
	char *colon = strchr(copy, ':');
	if (colon)
		*colon++ = '\0';
	/* 65534 is the overflow id; ids above 65535 are outside the sandbox's mapping. */
	if (parse_uint(copy, 65533, &u, &why) < 0)
		return warden_error_set(err, 0,
		                        "\"%s\": expected agent, root or UID[:GID] with ids "
		                        "0-65533 (%s)",
		                        s, why);
	g = u;
	if (colon && parse_uint(colon, 65533, &g, &why) < 0)
		return warden_error_set(err, 0, "\"%s\": bad GID \"%s\" (%s)", s, colon, why);
	*ret_uid = (uid_t)u;
	*ret_gid = (gid_t)g;
	return 0;
}

/* ---- free -------------------------------------------------------------------------- */

void warden_policy_free(struct warden_policy *p)
{
	if (!p)
		return;
	free(p->name);
	warden_mounts_clear(&p->read_only);
	warden_mounts_clear(&p->volumes);
	free(p->rootfs);
	free(p->workdir);
	strv_clear(&p->env);
	strv_clear(&p->env_pass);
	strv_clear(&p->seccomp_deny);
	strv_clear(&p->seccomp_allow);
	warden_guards_clear(&p->guardrails);
	warden_egress_rules_clear(&p->allow);
	warden_egress_rules_clear(&p->deny);
	warden_devices_clear(&p->devices);
	strv_clear(&p->gpu.devices);
	free(p);
}

/* ---- YAML rendering ---------------------------------------------------------------- */

struct emit {
	yaml_emitter_t e;
	char *buf;
	size_t len, cap;
};

static int emit_write(void *data, unsigned char *buffer, size_t size)
{
	struct emit *em = data;
	if (em->len + size + 1 > em->cap) {
		em->cap = (em->len + size + 1) * 2;
		em->buf = xrealloc(em->buf, em->cap);
	}
	memcpy(em->buf + em->len, buffer, size);
	em->len += size;
	em->buf[em->len] = '\0';
	return 1;
}

static void ev(struct emit *em, yaml_event_t *event)
{
	if (!yaml_emitter_emit(&em->e, event))
		abort(); /* only on out-of-memory: every event below is well formed */
}

static void scalar(struct emit *em, const char *s)
{
	yaml_event_t event;
	yaml_scalar_event_initialize(&event, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), 1, 1,
	                             YAML_ANY_SCALAR_STYLE);
	ev(em, &event);
}

static void map_start(struct emit *em)
{
	yaml_event_t event;
	yaml_mapping_start_event_initialize(&event, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
	ev(em, &event);
}

static void map_end(struct emit *em)
{
	yaml_event_t event;
	yaml_mapping_end_event_initialize(&event);
	ev(em, &event);
}

static void seq_start(struct emit *em, bool flow)
{
	yaml_event_t event;
	yaml_sequence_start_event_initialize(
	    &event, NULL, NULL, 1, flow ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE);
	ev(em, &event);
}

static void seq_end(struct emit *em)
{
	yaml_event_t event;
	yaml_sequence_end_event_initialize(&event);
	ev(em, &event);
}

static void kv(struct emit *em, const char *k, const char *v)
{
	scalar(em, k);
	scalar(em, v);
}

static void kv_size(struct emit *em, const char *k, uint64_t v, const char *zero)
{
	char buf[32];
	if (v == 0 && zero)
		snprintf(buf, sizeof(buf), "%s", zero);
	else
		format_size(v, buf, sizeof(buf));
	kv(em, k, buf);
}

static void kv_u64(struct emit *em, const char *k, uint64_t v, const char *zero)
{
	char buf[32];
	if (v == 0 && zero)
		snprintf(buf, sizeof(buf), "%s", zero);
	else
		snprintf(buf, sizeof(buf), "%" PRIu64, v);
	kv(em, k, buf);
}

static void kv_milli(struct emit *em, const char *k, uint64_t v, const char *zero)
{
	char buf[32];
	if (v == 0 && zero)
		snprintf(buf, sizeof(buf), "%s", zero);
	else if (v % 1000 == 0)
		snprintf(buf, sizeof(buf), "%" PRIu64, v / 1000);
	else
		snprintf(buf, sizeof(buf), "%" PRIu64 ".%03" PRIu64, v / 1000, v % 1000);
	kv(em, k, buf);
}

static void kv_strv(struct emit *em, const char *k, char **v)
{
	scalar(em, k);
	seq_start(em, true);
	for (; v && *v; v++)
		scalar(em, *v);
	seq_end(em);
}

static void kv_ports(struct emit *em, const char *k, const struct warden_ports *ports)
{
	char buf[8];
	if (ports->any) {
		kv(em, k, "any");
		return;
	}
	scalar(em, k);
	seq_start(em, true);
	for (size_t i = 0; i < ports->n; i++) {
		snprintf(buf, sizeof(buf), "%u", ports->v[i]);
		scalar(em, buf);
	}
	seq_end(em);
}

const char *const warden_net_mode_names[WARDEN_NET_MODE_MAX] = {"none", "host", "proxy"};
const char *const warden_isolation_names[WARDEN_ISOLATION_MAX] = {"ns", "vm"};
static const char *landlock_names[] = {"best_effort", "required", "off"};

static void emit_filesystem(struct emit *em, const struct warden_policy *p)
{
	scalar(em, "filesystem");
	map_start(em);
	scalar(em, "read_only");
	seq_start(em, false);
	for (size_t i = 0; i < p->read_only.n; i++) {
		if (!p->read_only.v[i].optional) {
			scalar(em, p->read_only.v[i].path);
			continue;
		}
		map_start(em);
		kv(em, "path", p->read_only.v[i].path);
		kv(em, "optional", "true");
		map_end(em);
	}
	seq_end(em);
	scalar(em, "volumes");
	seq_start(em, false);
	for (size_t i = 0; i < p->volumes.n; i++) {
		/* "HOST:PATH:MODE" splits at the first ':': other paths as a mapping */
		if (strchr(p->volumes.v[i].host, ':') || strchr(p->volumes.v[i].path, ':')) {
			map_start(em);
			kv(em, "host", p->volumes.v[i].host);
			kv(em, "path", p->volumes.v[i].path);
			kv(em, "mode", p->volumes.v[i].rw ? "rw" : "ro");
			map_end(em);
			continue;
		}
		_cleanup_free_ char *s =
		    xasprintf("%s:%s:%s", p->volumes.v[i].host, p->volumes.v[i].path,
		              p->volumes.v[i].rw ? "rw" : "ro");
		scalar(em, s);
	}
	seq_end(em);
	kv_size(em, "tmp_size", p->tmp_size, NULL);
	if (p->rootfs)
		kv(em, "rootfs", p->rootfs);
	map_end(em);
}

static void emit_process(struct emit *em, const struct warden_policy *p)
{
	char buf[32];
	scalar(em, "process");
	map_start(em);
	if (p->uid == WARDEN_AGENT_UID && p->gid == WARDEN_AGENT_UID)
		snprintf(buf, sizeof(buf), "agent");
	else if (p->uid == 0 && p->gid == 0)
		snprintf(buf, sizeof(buf), "root");
	else
		snprintf(buf, sizeof(buf), "%u:%u", (unsigned)p->uid, (unsigned)p->gid);
	kv(em, "user", buf);
	if (p->workdir)
		kv(em, "workdir", p->workdir);
	scalar(em, "env");
	map_start(em);
	for (size_t i = 0; i < p->env.n; i++) {
		_cleanup_free_ char *name = xstrdup(p->env.v[i]);
		char *eq = strchr(name, '=');
		*eq = '\0';
		kv(em, name, eq + 1);
	}
	map_end(em);
	kv_strv(em, "env_pass", p->env_pass.v);
	map_end(em);
}

static void kv_rules(struct emit *em, const char *k, const struct warden_egress_rules *rs)
{
	scalar(em, k);
	seq_start(em, true);
	for (size_t i = 0; i < rs->n; i++)
		scalar(em, rs->v[i].text);
	seq_end(em);
}

static void emit_guardrails(struct emit *em, const struct warden_guards *g)
{
	char buf[96];
	scalar(em, "guardrails");
	seq_start(em, false);
	for (size_t i = 0; i < g->n; i++) {
		const struct warden_guard_rule *r = &g->v[i];
		map_start(em);
		kv(em, "name", r->name);
		scalar(em, "when");
		map_start(em);
		const char *cond = warden_guard_cond_names[r->cond];
		switch (r->cond) {
		case WARDEN_GUARD_EXEC:
		case WARDEN_GUARD_EXEC_OUTSIDE:
			kv_strv(em, cond, r->patterns.v);
			break;
		case WARDEN_GUARD_CONNECT_TO:
			scalar(em, cond);
			seq_start(em, true);
			for (size_t j = 0; j < r->n_nets; j++) {
				warden_net_format(&r->nets[j], buf, sizeof(buf));
				scalar(em, buf);
			}
			seq_end(em);
			break;
		case WARDEN_GUARD_MEMORY_PEAK:
		case WARDEN_GUARD_GPU_MEMORY:
			kv_size(em, cond, r->threshold, NULL);
			break;
		case WARDEN_GUARD_CPU_TIME:
		case WARDEN_GUARD_WALL_TIME:
			kv_milli(em, cond, r->threshold, NULL);
			break;
		default:
			kv_u64(em, cond, r->threshold, NULL);
			break;
		}
		map_end(em);
		kv(em, "action", warden_guard_action_names[r->action]);
		map_end(em);
	}
	seq_end(em);
}

/* devices: and gpu:, only where the policy grants any (the defaults grant none). */
static void emit_devices(struct emit *em, const struct warden_policy *p)
{
	char access[4];
	if (p->devices.n) {
		scalar(em, "devices");
		seq_start(em, false);
		for (size_t i = 0; i < p->devices.n; i++) {
			warden_device_access_format(p->devices.v[i].access, access);
			map_start(em);
			kv(em, "path", p->devices.v[i].path);
			kv(em, "access", access);
			map_end(em);
		}
		seq_end(em);
	}
	if (!p->gpu.devices.n)
		return;
	scalar(em, "gpu");
	map_start(em);
	kv_strv(em, "devices", p->gpu.devices.v);
	kv_size(em, "memory", p->gpu.memory, "unlimited");
	kv(em, "scrub", p->gpu.scrub ? "true" : "false");
	kv(em, "exclusive", p->gpu.exclusive ? "true" : "false");
	kv(em, "uvm_tools", p->gpu.uvm_tools ? "true" : "false");
	map_end(em);
}

char *warden_policy_to_yaml(const struct warden_policy *p)
{
	struct emit em = {0};
	yaml_event_t event;
	if (!yaml_emitter_initialize(&em.e))
		abort();
	yaml_emitter_set_output(&em.e, emit_write, &em);
	yaml_emitter_set_width(&em.e, 100);
	yaml_stream_start_event_initialize(&event, YAML_UTF8_ENCODING);
	ev(&em, &event);
	yaml_document_start_event_initialize(&event, NULL, NULL, NULL, 1);
	ev(&em, &event);
	map_start(&em);
	/* a file's path names it in messages, but is not a name a policy can give itself */
	if (warden_policy_name_valid(p->name))
		kv(&em, "name", p->name);
	if (p->isolation != WARDEN_ISOLATION_NS) /* shown only when not the default */
		kv(&em, "isolation", warden_isolation_names[p->isolation]);
	emit_filesystem(&em, p);
	emit_process(&em, p);

	scalar(&em, "limits");
	map_start(&em);
	kv_size(&em, "memory", p->memory, "unlimited");
	kv_u64(&em, "pids", p->pids, "unlimited");
	kv_milli(&em, "cpus", p->cpus_milli, "unlimited");
	kv_milli(&em, "timeout", p->timeout_ms, "none");
	kv_u64(&em, "nofile", p->nofile, NULL);
	map_end(&em);

	scalar(&em, "network");
	map_start(&em);
	kv(&em, "mode", warden_net_mode_names[p->net_mode]);
	kv_ports(&em, "tcp_bind", &p->tcp_bind);
	kv_ports(&em, "tcp_connect", &p->tcp_connect);
	kv_rules(&em, "allow", &p->allow);
	kv_rules(&em, "deny", &p->deny);
	map_end(&em);

	scalar(&em, "security");
	map_start(&em);
	scalar(&em, "seccomp");
	map_start(&em);
	kv_strv(&em, "deny", p->seccomp_deny.v);
	kv_strv(&em, "allow", p->seccomp_allow.v);
	map_end(&em);
	kv(&em, "landlock", landlock_names[p->landlock]);
	kv(&em, "ptrace", p->allow_ptrace ? "true" : "false");
	map_end(&em);

	scalar(&em, "telemetry");
	map_start(&em);
	kv(&em, "enabled", p->telemetry ? "true" : "false");
	kv_size(&em, "ring_size", p->ring_bytes, NULL);
	map_end(&em);

	emit_guardrails(&em, &p->guardrails);
	emit_devices(&em, p);

	map_end(&em);
	yaml_document_end_event_initialize(&event, 1);
	ev(&em, &event);
	yaml_stream_end_event_initialize(&event);
	ev(&em, &event);
	yaml_emitter_delete(&em.e);
	return em.buf;
}
