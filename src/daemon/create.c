/* create.c: creating sandboxes, fresh (a `warden supervise` started in the background)
 * or from a warm pool (a row written, nothing started), and keeping the pools filled.
 *
 * Sections: policies (presets, stored, inline); creating; pools.
 */
#define _GNU_SOURCE
#include "wardend.h"
#include "../lib/policy.h"

#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <sys/wait.h>

#define SPAWN_TIMEOUT_S 60

/* ---- policies ---------------------------------------------------------------------- */

static char *sha256_hex(const char *text, size_t len)
{
	unsigned char md[32];
	unsigned int n = 0;
	char *hex = xmalloc(65);
	EVP_Digest(text, len, md, &n, EVP_sha256(), NULL);
	for (unsigned i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", md[i]);
	return hex;
}

/* Is host path p one of the default preset's read-only system paths, or below one? */
static bool system_path(const char *p)
{
	static struct warden_policy *dflt;
	if (!dflt)
		dflt = warden_policy_new();
	for (size_t i = 0; i < dflt->read_only.n; i++) {
		const char *s = dflt->read_only.v[i].host;
		size_t n = strlen(s);
		if (!strncmp(p, s, n) && (p[n] == '\0' || p[n] == '/'))
			return true;
	}
	return false;
}

/* Why an inline policy is refused. An inline policy comes from whoever can reach the API
 * (the socket's group, a token holder): letting it name host paths would hand them every
 * file of the host (a volume of "/" is root's whole file system, writable as the sandbox
 * user, which is idmapped to the volume's owner), the host's network namespace, or
 * wardend's environment. So an inline policy sees only what the presets see, unless the
 * operator says otherwise (--trust-inline-policies). Stored policies (--policies DIR) are the
 * operator's own. */
static int inline_policy_check(const struct warden_policy *p, struct api_error *e)
{
	const char *hint = "(inline policies may not; start wardend with "
	                   "--trust-inline-policies, or store the policy in --policies DIR)";
	if (wd.trust_inline_policies)
		return 0;
	if (p->volumes.n)
		return api_fail(e, 403, "forbidden_policy", "policy_yaml: filesystem.volumes: %s",
		                hint);
	if (p->rootfs)
		return api_fail(e, 403, "forbidden_policy", "policy_yaml: filesystem.rootfs: %s",
		                hint);
	for (size_t i = 0; i < p->read_only.n; i++)
		if (!system_path(p->read_only.v[i].host))
			return api_fail(e, 403, "forbidden_policy",
			                "policy_yaml: filesystem.read_only: %s is not one of the "
			                "presets' system paths %s",
			                p->read_only.v[i].host, hint);
	if (p->net_mode == WARDEN_NET_HOST)
		return api_fail(e, 403, "forbidden_policy",
		                "policy_yaml: network.mode: host shares the host's network %s",
		                hint);
	/* Supervisors inherit wardend's environment (the operator's: gateway keys among it). */
	if (p->env_pass.n)
		return api_fail(e, 403, "forbidden_policy",
		                "policy_yaml: process.env_pass: would pass wardend's environment "
		                "(%s) into the sandbox %s",
		                p->env_pass.v[0], hint);
	return 0;
}

struct resolved_policy {
	char *name; /* as the API shows it */
	char *arg;  /* what `warden supervise --policy` gets */
	char *text; /* stored for inline policies only */
	char *hash;
	char *tmp_file; /* an inline policy's file, removed once the supervisor has read it */
};

static void resolved_policy_clear(struct resolved_policy *p)
{
	if (p->tmp_file)
		unlink(p->tmp_file);
	free(p->name);
	free(p->arg);
	free(p->text);
	free(p->hash);
	free(p->tmp_file);
	*p = (struct resolved_policy){0};
}

static char *stored_policy_path(const char *name)
{
	if (!wd.policies_dir)
		return NULL;
	char *path = xasprintf("%s/%s.yaml", wd.policies_dir, name);
	if (access(path, R_OK) == 0)
		return path;
	free(path);
	return NULL;
}

static int resolve_policy(const struct api_create *c, struct resolved_policy *ret,
                          struct api_error *e)
{
	*ret = (struct resolved_policy){0};
	if (c->policy) {
		const char *preset =
		    streq(c->policy, "default") ? "" : warden_preset_text(c->policy);
		_cleanup_free_ char *stored = preset ? NULL : stored_policy_path(c->policy);
		if (!preset && !stored)
			return api_fail(e, 400, "unknown_policy",
			                "policy: no preset or stored policy named \"%s\" (presets: "
			                "default, strict%s)",
			                c->policy,
			                wd.policies_dir ? "; stored: NAME.yaml in --policies" : "");
		ret->name = xstrdup(c->policy);
		if (preset) {
			ret->arg = xstrdup(c->policy);
			ret->hash = sha256_hex(c->policy, strlen(c->policy));
		} else {
			_cleanup_free_ char *buf = NULL;
			size_t len = 0;
			_cleanup_error_ struct warden_error *we = NULL;
			if (read_small_file(stored, 1u << 20, "policy", &buf, &len, &we) < 0)
				return api_fail(e, 500, "policy_unreadable", "policy %s: %s",
				                c->policy, warden_error_text(we));
			ret->hash = sha256_hex(buf, len);
			ret->arg = TAKE_PTR(stored);
		}
		return 0;
	}

	/* Inline: parsed here first, for a precise 400 naming line and column. */
	_cleanup_error_ struct warden_error *we = NULL;
	_cleanup_policy_ struct warden_policy *p =
	    warden_policy_parse(c->policy_yaml, c->policy_yaml_len, "policy_yaml", &we);
	if (!p)
		return api_fail(e, 400, "invalid_policy", "%s", warden_error_text(we));
	if (inline_policy_check(p, e) < 0)
		return -1;
	char tmpl[PATH_MAX];
	snprintf(tmpl, sizeof(tmpl), "%s/new-XXXXXX.yaml", wd.policies_tmp_dir);
	_cleanup_close_ int fd = mkostemps(tmpl, 5, O_CLOEXEC);
	if (fd < 0)
		return api_fail(e, 500, "internal", "%s: %s", tmpl, strerror(errno));
	ret->tmp_file = xstrdup(tmpl);
	for (size_t off = 0; off < c->policy_yaml_len;) {
		ssize_t n = write(fd, c->policy_yaml + off, c->policy_yaml_len - off);
		if (n <= 0) {
			api_fail(e, 500, "internal", "%s: %s", tmpl, strerror(errno));
			resolved_policy_clear(ret);
			return -1;
		}
		off += (size_t)n;
	}
	ret->name = xstrdup(streq(p->name, "policy_yaml") ? "inline" : p->name);
	ret->arg = xstrdup(tmpl);
	ret->text = xstrdup(c->policy_yaml);
	ret->hash = sha256_hex(c->policy_yaml, c->policy_yaml_len);
	return 0;
}

/* ---- creating ---------------------------------------------------------------------- */

struct create_job {
	struct evhttp_request *req; /* NULL for a pool's refill */
	struct pool *pool;
	struct resolved_policy policy;
	char *events_tmp;
	int64_t ttl;
	json_t *labels;
	char *owner;
	int64_t t0;
	struct create_job *next;
};

static struct create_job *jobs;

static unsigned creating_for(const char *owner)
{
	unsigned n = 0;
	for (struct create_job *j = jobs; j; j = j->next)
		if (!j->pool && streq(j->owner, owner))
			n++;
	return n;
}

static void job_free(struct create_job *j)
{
	for (struct create_job **p = &jobs; *p; p = &(*p)->next)
		if (*p == j) {
			*p = j->next;
			break;
		}
	if (j->events_tmp)
		(void)unlink(j->events_tmp);
	resolved_policy_clear(&j->policy);
	free(j->events_tmp);
	json_decref(j->labels);
	free(j->owner);
	free(j);
}

static void pool_failed(struct pool *p, const char *why);

static void job_fail(struct create_job *j, int status, const char *code, const char *msg)
{
	if (j->pool) {
		j->pool->starting--;
		pool_failed(j->pool, msg);
	} else {
		wd.creating--;
		wd.create_failures++;
		reply_error(j->req, status, code, "%s", msg);
	}
	job_free(j);
}

/* "warden: policy_yaml:3:1: ...\n" -> the message. */
static const char *warden_message(char *err)
{
	char *s = err;
	size_t n = strlen(s);
	while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
	char *last = strrchr(s, '\n');
	if (last && strstr(last + 1, "warden: ") == last + 1)
		s = last + 1;
	if (!strncmp(s, "warden: ", 8))
		s += 8;
	return *s ? s : "warden supervise failed without a message";
}

static void create_done(int status, const char *out, const char *err, void *ctx)
{
	struct create_job *j = ctx;
	_cleanup_free_ char *errtext = xstrdup(err);
	if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		const char *msg = warden_message(errtext);
		/* An inline policy the library accepted can still fail to start (a path it
		 * names is missing): that is the request's fault, and says why. */
		if (j->policy.text && WIFEXITED(status) && WEXITSTATUS(status) == 125)
			return job_fail(j, 400, "invalid_policy", msg);
		return job_fail(j, 500, "supervise_failed", msg);
	}
	json_t *o = json_loads(out, JSON_DISABLE_EOF_CHECK, NULL);
	const char *id = json_string_value(json_object_get(o, "sandbox"));
	const char *control = json_string_value(json_object_get(o, "control"));
	json_int_t svpid = json_integer_value(json_object_get(o, "supervisor_pid"));
	if (!id || strlen(id) != SANDBOX_ID_LEN ||
	    strspn(id, "0123456789abcdef") != SANDBOX_ID_LEN || !control || *control != '/' ||
	    svpid <= 0) {
		json_decref(o);
		return job_fail(j, 500, "supervise_failed",
		                "warden supervise: not the JSON line expected on its output");
	}
	struct sandbox *sb = sandbox_new();
	memcpy(sb->id, id, SANDBOX_ID_LEN + 1);
	sb->control = xstrdup(control);
	sb->supervisor_pid = (pid_t)svpid;
	json_decref(o);

	_cleanup_error_ struct warden_error *e = NULL;
	if (sandbox_watch(sb, &e) < 0) {
		sb->destroying = true; /* not registered: nothing to finalize */
		(void)control_destroy(sb->control);
		sandbox_unref(sb);
		return job_fail(j, 500, "supervise_failed", warden_error_text(e));
	}
	free(sb->policy);
	sb->policy = xstrdup(j->policy.name);
	sb->created_at = now_s();
	sb->expires_at = j->pool ? 0 : sb->created_at + j->ttl;
	json_decref(sb->labels);
	sb->labels = json_incref(j->labels);
	free(sb->owner);
	sb->owner = xstrdup(j->owner);
	sb->pool = j->pool;
	/* The row first, then the events file's final name: killed in between, wardend
	 * finds the row at start, and the sandbox named in events/new-*.jsonl is its. */
	if (state_put(sb, j->policy.text, j->policy.hash) < 0) {
		warden_error_set(&e, 0, "state database: %s", state_error());
		(void)control_destroy(sb->control);
		sb->pool = NULL;
		sandbox_unref(sb);
		return job_fail(j, 500, "internal", warden_error_text(e));
	}
	_cleanup_free_ char *events = sandbox_events_path(sb->id);
	if (rename(j->events_tmp, events) == 0)
		free(TAKE_PTR(j->events_tmp));
	else
		fprintf(stderr, "wardend: sandbox %s: %s: %s\n", sb->id, events, strerror(errno));
	sandbox_register(sb);
	if (j->pool) {
		j->pool->starting--;
		j->pool->ready++;
		j->pool->failures = 0;
		job_free(j);
		pools_fill();
		return;
	}
	sandbox_arm_ttl(sb);
	wd.creating--;
	wd.created_fresh++;
	double secs = (double)(mono_us() - j->t0) / 1e6;
	wd.fresh_create_seconds += secs;
	struct evkeyvalq *h = evhttp_request_get_output_headers(j->req);
	char timing[64];
	snprintf(timing, sizeof(timing), "daemon;dur=%.3f", secs * 1000);
	evhttp_add_header(h, "Server-Timing", timing);
	reply_json(j->req, 201, sandbox_json(sb));
	job_free(j);
}

static int job_start(struct create_job *j, struct strv *env, struct warden_error **err)
{
	char tmpl[PATH_MAX];
	snprintf(tmpl, sizeof(tmpl), "%s/new-XXXXXX.jsonl", wd.events_dir);
	int fd = mkostemps(tmpl, 6, O_CLOEXEC);
	if (fd < 0)
		return warden_error_set(err, errno, "%s", tmpl);
	close(fd);
	j->events_tmp = xstrdup(tmpl);
	char ttl[32];
	snprintf(ttl, sizeof(ttl), "%" PRId64, j->ttl);
	struct strv argv = {0};
	strv_push(&argv, wd.warden);
	strv_push(&argv, "supervise");
	strv_push(&argv, "--policy");
	strv_push(&argv, j->policy.arg);
	/* The supervisor's own timer is the TTL's backstop should wardend be down at
	 * expiry. A pooled sandbox's TTL starts when it is handed out: wardend alone keeps
	 * it (and destroys what expired while it was down, at start). */
	if (!j->pool) {
		strv_push(&argv, "--timeout");
		strv_push(&argv, ttl);
	}
	strv_push(&argv, "--events");
	strv_push(&argv, j->events_tmp);
	for (size_t i = 0; env && i < env->n; i++) {
		strv_push(&argv, "-e");
		strv_push(&argv, env->v[i]);
	}
	if (wd.audit_log) {
		strv_push(&argv, "--audit-log");
		strv_push(&argv, wd.audit_log);
	}
	if (wd.audit_key) {
		strv_push(&argv, "--audit-key");
		strv_push(&argv, wd.audit_key);
	}
	strv_push(&argv, "-q");
	int r = spawn_start(argv.v, SPAWN_TIMEOUT_S, create_done, j, err);
	strv_clear(&argv);
	if (r == 0) {
		j->next = jobs;
		jobs = j;
	}
	return r;
}

static void refill_soon(void);
static void refill_later(void);
static void refill_after_reply(struct evhttp_request *req, void *arg);

void sandbox_create(struct evhttp_request *req, struct api_create *c, const char *owner,
                    unsigned quota, int64_t t0)
{
	struct api_error e = {0};
	if (wd.max_sandboxes && sandbox_count(NULL) + wd.creating >= wd.max_sandboxes)
		return reply_error(req, 429, "too_many_sandboxes",
		                   "%u sandboxes are running or starting (--max-sandboxes %u)",
		                   sandbox_count(NULL) + wd.creating, wd.max_sandboxes);
	if (quota && sandbox_count(owner) + creating_for(owner) >= quota)
		return reply_error(req, 429, "quota_exceeded",
		                   "this token's quota of %u sandboxes is used", quota);

	/* From a pool: no process is started, only a row written. */
	for (size_t i = 0; c->policy && c->env.n == 0 && i < wd.n_pools; i++) {
		struct pool *p = &wd.pools[i];
		if (!streq(p->policy, c->policy) || p->ready == 0)
			continue;
		struct sandbox *sb = wd.sandboxes;
		while (sb && (sb->pool != p || sb->destroying))
			sb = sb->next;
		if (!sb)
			break;
		sb->pool = NULL;
		sb->from_pool = true;
		sb->created_at = now_s();
		sb->expires_at = sb->created_at + c->ttl;
		json_decref(sb->labels);
		sb->labels = json_incref(c->labels);
		free(sb->owner);
		sb->owner = xstrdup(owner);
		if (state_put(sb, NULL, NULL) < 0) {
			sb->pool = p;
			return reply_error(req, 500, "internal", "state database: %s",
			                   state_error());
		}
		p->ready--;
		sandbox_arm_ttl(sb);
		wd.created_pool++;
		double secs = (double)(mono_us() - t0) / 1e6;
		wd.pool_create_seconds += secs;
		char timing[64];
		snprintf(timing, sizeof(timing), "daemon;dur=%.3f", secs * 1000);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Server-Timing", timing);
		/* The refill (a posix_spawn) waits for the reply to be written: the write
		 * happens on the loop's next turn, which the spawn would otherwise delay. */
		evhttp_request_set_on_complete_cb(req, refill_after_reply, NULL);
		reply_json(req, 201, sandbox_json(sb));
		refill_later();
		return;
	}

	struct create_job *j = xcalloc(1, sizeof(*j));
	if (resolve_policy(c, &j->policy, &e) < 0) {
		free(j);
		return reply_api_error(req, &e);
	}
	j->req = req;
	j->ttl = c->ttl;
	j->labels = json_incref(c->labels);
	j->owner = xstrdup(owner);
	j->t0 = t0;
	_cleanup_error_ struct warden_error *we = NULL;
	if (job_start(j, &c->env, &we) < 0) {
		job_free(j);
		return reply_error(req, 500, "supervise_failed", "%s", warden_error_text(we));
	}
	wd.creating++;
}

/* ---- pools ------------------------------------------------------------------------- */

static void pool_start(struct pool *p)
{
	struct create_job *j = xcalloc(1, sizeof(*j));
	struct api_create c = {.policy = p->policy};
	struct api_error e = {0};
	_cleanup_error_ struct warden_error *we = NULL;
	if (resolve_policy(&c, &j->policy, &e) < 0) {
		free(j);
		return pool_failed(p, e.message);
	}
	j->pool = p;
	j->labels = json_object();
	j->owner = xstrdup("");
	j->t0 = mono_us();
	if (job_start(j, NULL, &we) < 0) {
		job_free(j);
		return pool_failed(p, warden_error_text(we));
	}
	p->starting++;
}

void pools_fill(void)
{
	for (size_t i = 0; i < wd.n_pools && !wd.stopping; i++) {
		struct pool *p = &wd.pools[i];
		while (p->ready + p->starting < p->target &&
		       !(p->retry && evtimer_pending(p->retry, NULL))) {
			unsigned before = p->starting;
			pool_start(p);
			if (p->starting == before)
				break;
		}
	}
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	pools_fill();
}

/* A refill failed: try again later, backing off (1 s, 2 s, 4 s, ... 60 s). */
static void pool_failed(struct pool *p, const char *why)
{
	p->failures++;
	fprintf(stderr, "wardend: pool %s: %s\n", p->policy, why);
	if (!p->retry)
		p->retry = evtimer_new(wd.base, retry_cb, p);
	int shift = p->failures > 6 ? 6 : (int)p->failures - 1;
	struct timeval tv = {.tv_sec = (1 << shift) > 60 ? 60 : (1 << shift)};
	evtimer_add(p->retry, &tv);
}

void pool_slot_gone(struct pool *p)
{
	(void)p;
	refill_soon();
}

static void refill_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	pools_fill();
}

static void refill_soon(void)
{
	struct timeval zero = {0};
	event_base_once(wd.base, -1, EV_TIMEOUT, refill_cb, NULL, &zero);
}

static void refill_after_reply(struct evhttp_request *req, void *arg)
{
	(void)req, (void)arg;
	refill_soon();
}

/* Should the reply never complete (its client gone), the pool is refilled anyway. */
static void refill_later(void)
{
	struct timeval tv = {.tv_usec = 100000};
	event_base_once(wd.base, -1, EV_TIMEOUT, refill_cb, NULL, &tv);
}

struct pool *pool_for(const char *policy)
{
	for (size_t i = 0; i < wd.n_pools; i++)
		if (streq(wd.pools[i].policy, policy))
			return &wd.pools[i];
	return NULL;
}

bool sandboxes_settled(void)
{
	return jobs == NULL;
}
