/* supervisor.c: the host side of one sandbox (see supervisor.h).
 *
 * Sections: emitting events and audit records; the start hook (telemetry attach, the
 * create record made durable); telemetry events and guardrails; the network's decisions;
 * sampling; the end of the sandbox; the public functions. The state is in
 * supervisor-internal.h; the control socket and the commands run on request are
 * supervisor-control.c.
 */
#define _GNU_SOURCE
#include "supervisor-internal.h"
#include "control.h"
#include "events.h"
#include "guard.h"
#include "gpu/session.h"
#include "telemetry/telemetry.h"

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>

#define SAMPLE_GUARD_MS       50   /* threshold guardrails: evaluated this often (fire < 100 ms) */
#define SAMPLE_EVENT_MS       1000 /* a "sample" event this often in the event stream */
#define MAX_HITS              16
#define SUPERVISOR_NICE_BOOST 5 /* nice levels above the sandbox (see start) */

enum { FD_SANDBOX_MSG, FD_SANDBOX_EXIT, FD_TELEMETRY, FD_TIMER, FD_CONTROL, FD_NET, FD_MAX };
_Static_assert(FD_MAX == WARDEN_SUPERVISOR_FDS, "supervisor.h: WARDEN_SUPERVISOR_FDS");

/* ---- emitting ---------------------------------------------------------------------- */

void sv_emit(struct warden_supervisor *sv, json_t *ev)
{
	if (!ev)
		return;
	if (sv->opts.emit) {
		char *line = json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (line)
			sv->opts.emit(line, sv->opts.emit_ctx);
		free(line);
	}
	json_decref(ev);
}

/* An audit record of this sandbox: fields (reference taken) under kind. */
static json_t *audit_record(struct warden_supervisor *sv, const char *kind, json_t *fields)
{
	json_t *rec = json_pack("{s:s, s:s}", "kind", kind, "sandbox", sv->id);
	json_object_update(rec, fields);
	json_decref(fields);
	return rec;
}

/* An audit record: the event's fields, under an "audit" kind name. Queued; the caller
 * commits where durability is needed before going on. */
void sv_audit(struct warden_supervisor *sv, const char *kind, json_t *fields)
{
	if (!sv->opts.audit) {
		json_decref(fields);
		return;
	}
	json_t *rec = audit_record(sv, kind, fields);
	_cleanup_error_ struct warden_error *e = NULL;
	if (warden_audit_append(sv->opts.audit, rec, &e) < 0 && sv->sb)
		strv_push_take(&sv->sb->warnings, xasprintf("audit: %s", warden_error_text(e)));
	json_decref(rec);
}

void sv_audit_commit(struct warden_supervisor *sv)
{
	_cleanup_error_ struct warden_error *e = NULL;
	if (sv->opts.audit && warden_audit_commit(sv->opts.audit, &e) < 0 && sv->sb)
		strv_push_take(&sv->sb->warnings, xasprintf("audit: %s", warden_error_text(e)));
}

static char *policy_sha256(const struct warden_policy *p)
{
	_cleanup_free_ char *yaml = warden_policy_to_yaml(p);
	unsigned char md[crypto_hash_sha256_BYTES];
	char *hex = xcalloc(1, 2 * sizeof(md) + 1);
	/* libsodium, as the audit log's hashes: OpenSSL's EVP would set up its providers
	 * (milliseconds) on every run just for this. */
	if (sodium_init() < 0)
		abort();
	crypto_hash_sha256(md, (const unsigned char *)yaml, strlen(yaml));
	return sodium_bin2hex(hex, 2 * sizeof(md) + 1, md, sizeof(md));
}

json_t *sv_strv_json(char *const *v)
{
	json_t *a = json_array();
	for (; v && *v; v++)
		json_array_append_new(a, json_string(*v));
	return a;
}

/* ---- start ------------------------------------------------------------------------- */

struct start_ctx {
	struct warden_supervisor *sv;
	const struct warden_process *proc;
	pthread_t committer;
	bool committing;
	struct warden_error *commit_err; /* the committer's error: read after the join */
};

static void attach_telemetry(struct warden_supervisor *sv)
{
	const struct warden_policy *p = sv->plan->policy;
	struct strv why = {0};
	if (!p->telemetry) {
		strv_push(&sv->sources_off, "bpf: telemetry is off (policy or --no-telemetry)");
		return;
	}
	if (!sv->sb->cgroup_id) {
		strv_push(&sv->sources_off, "bpf: the sandbox has no cgroup v2 group to key on");
		return;
	}
	if (!warden_telemetry_available(&why)) {
		for (size_t i = 0; i < why.n; i++)
			strv_push(&sv->sources_off, why.v[i]);
		strv_clear(&why);
		return;
	}
	struct warden_tel_opts o = {.ring_bytes = (uint32_t)p->ring_bytes};
	_cleanup_error_ struct warden_error *e = NULL;
	sv->tel = warden_telemetry_attach(sv->sb->cgroup_id, &o, &e);
	if (!sv->tel)
		strv_push_take(&sv->sources_off, xasprintf("bpf: %s", warden_error_text(e)));
}

static json_t *create_fields(struct warden_supervisor *sv, const struct warden_process *proc)
{
	const struct warden_plan *plan = sv->plan;
	const struct warden_policy *p = plan->policy;
	_cleanup_free_ char *hash = policy_sha256(p);
	json_t *vols = json_array();
	for (size_t i = 0; i < plan->n_binds; i++)
		if (plan->binds[i].volume)
			json_array_append_new(
			    vols, json_pack("{s:s, s:s, s:b}", "host", plan->binds[i].host, "path",
			                    plan->binds[i].path, "rw", plan->binds[i].rw));
	return json_pack("{s:s, s:s, s:o, s:{s:i, s:i}, s:i, s:b, s:o, s:s, s:s*}", "policy",
	                 p->name, "policy_sha256", hash, "argv", sv_strv_json(proc->argv), "user",
	                 "uid", (int)p->uid, "gid", (int)p->gid, "caller_uid",
	                 (int)plan->caller_uid, "rootless", plan->rootless, "volumes", vols,
	                 "network", warden_net_mode_names[p->net_mode], "rootfs", p->rootfs);
}

/* Queue the records of the sandbox's creation and make them durable. Run by the committer
 * thread (or inline, without one), alone on the audit log until commit_join(). */
static int record_start(struct start_ctx *c, struct warden_error **err)
{
	struct warden_supervisor *sv = c->sv;
	json_t *recs[] = {
	    audit_record(sv, "sandbox.create", create_fields(sv, c->proc)),
	    sv->plan->n_devices
	        ? audit_record(sv, "device.grant", warden_gpu_session_grant_record(sv->plan))
	        : NULL,
	    c->proc->service
	        ? NULL
	        : audit_record(sv, "sandbox.exec",
	                       json_pack("{s:o, s:s}", "argv", sv_strv_json(c->proc->argv),
	                                 "workdir", sv->plan->workdir)),
	};
	int r = 0;
	for (size_t i = 0; i < ARRAY_SIZE(recs); i++) {
		if (recs[i] && r == 0)
			r = warden_audit_append(sv->opts.audit, recs[i], err);
		json_decref(recs[i]);
	}
	return r < 0 ? -1 : warden_audit_commit(sv->opts.audit, err);
}

static void *commit_thread(void *arg)
{
	struct start_ctx *c = arg;
	(void)record_start(c, &c->commit_err);
	return NULL;
}

/* Wait for the committer started by PREPARE; -1 with *err if the commit failed. Until
 * then, the committer alone uses the audit log. */
static int commit_join(struct start_ctx *c, struct warden_error **err)
{
	if (!c->committing)
		return 0;
	pthread_join(c->committer, NULL);
	c->committing = false;
	if (!c->commit_err)
		return 0;
	if (err)
		*err = TAKE_PTR(c->commit_err);
	warden_error_free(TAKE_PTR(c->commit_err));
	return warden_error_wrap(err, "audit");
}

/* Runs inside the backend's start. The record saying the sandbox exists must be on disk
 * before it runs anything, and telemetry must see the very first exec. Making the records
 * (the policy's hash among them) and flushing them to disk, a millisecond or more, go on
 * in a thread while the backend builds the sandbox. */
static int start_hook(struct warden_sandbox *sb, enum warden_hook_phase phase, void *ctx,
                      struct warden_error **err)
{
	struct start_ctx *c = ctx;
	struct warden_supervisor *sv = c->sv;
	if (phase == WARDEN_HOOK_READY) {
		attach_telemetry(sv);
		warden_gpu_session_started(sv->gpu, sb->id);
		return commit_join(c, err);
	}
	sv->sb = sb;
	memcpy(sv->id, sb->id, sizeof(sv->id));
	if (!sv->opts.audit)
		return 0;
	if (pthread_create(&c->committer, NULL, commit_thread, c) == 0) {
		c->committing = true;
		return 0;
	}
	if (record_start(c, err) < 0)
		return warden_error_wrap(err, "audit");
	return 0;
}

/* ---- telemetry events and guardrails ------------------------------------------------ */

static void act(struct warden_supervisor *sv, const struct warden_guard_hit *hits, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct warden_guard_rule *r = hits[i].rule;
		enum warden_guard_action action = r->action;
		const char *done = "";
		_cleanup_error_ struct warden_error *e = NULL;
		if (action == WARDEN_GUARD_FREEZE && !sv->sb->can_freeze) {
			/* No freezer here (rootless without a cgroup v2 group): stopping the
			 * sandbox is the safe side of not stopping it at all. */
			action = WARDEN_GUARD_KILL;
			done = "no freezer here: killed instead";
		}
		if (action == WARDEN_GUARD_KILL) {
			sv->killing = true;
			if (warden_sandbox_kill(sv->sb, &e) < 0)
				done = warden_error_text(e);
			else if (!sv->result.killed_by[0])
				snprintf(sv->result.killed_by, sizeof(sv->result.killed_by), "%s",
				         r->name);
		} else if (action == WARDEN_GUARD_FREEZE && !sv->frozen) {
			if (warden_sandbox_freeze(sv->sb, true, &e) < 0)
				done = warden_error_text(e);
			else
				sv->frozen = true;
		}
		const char *action_name = warden_guard_action_names[action];
		json_t *ev = warden_event_new(sv->sb->id, "guardrail", 0);
		json_object_set_new(ev, "rule", json_string(r->name));
		json_object_set_new(ev, "condition", json_string(warden_guard_cond_names[r->cond]));
		json_object_set_new(ev, "action", json_string(action_name));
		json_object_set_new(ev, "evidence", json_string(hits[i].evidence));
		json_object_set_new(ev, "attention", json_boolean(r->action != WARDEN_GUARD_LOG));
		if (*done)
			json_object_set_new(ev, "note", json_string(done));
		sv_emit(sv, ev);
		sv_audit(sv, "guard.fire",
		         json_pack("{s:s, s:s, s:s, s:s, s:s}", "rule", r->name, "condition",
		                   warden_guard_cond_names[r->cond], "action", action_name,
		                   "evidence", hits[i].evidence, "result", *done ? done : "done"));
	}
	if (n)
		sv_audit_commit(sv);
}

static void on_tel_event(const struct warden_tel_event *e, void *ctx)
{
	struct warden_supervisor *sv = ctx;
	struct warden_guard_hit hits[MAX_HITS];
	size_t n = 0;
	sv_emit(sv, warden_event_from_tel(sv->sb->id, e));
	if (e->kind == WARDEN_TEL_EXEC)
		n = warden_guard_on_exec(&sv->guard, e->exec.path, hits, MAX_HITS);
	else if (e->kind == WARDEN_TEL_CONNECT &&
	         (e->connect.family == AF_INET || e->connect.family == AF_INET6))
		n = warden_guard_on_connect(&sv->guard, e->connect.family, e->connect.addr,
		                            e->connect.port, hits, MAX_HITS);
	act(sv, hits, n);
}

static void drain_telemetry(struct warden_supervisor *sv)
{
	_cleanup_error_ struct warden_error *e = NULL;
	if (!sv->tel)
		return;
	(void)warden_telemetry_drain(sv->tel, on_tel_event, sv, &e);
}

/* The counters (two map reads of several KiB: on the sampling tick and at the end, not on
 * every wake-up of the ring). live: with the system call counts of the live tasks too (a
 * read per thread), for a reading somebody asked for; the tick needs only the refusals
 * and drops, which are kept per sandbox. */
void sv_read_counts(struct warden_supervisor *sv, bool live)
{
	if (sv->tel && warden_telemetry_counts(sv->tel, live, &sv->counts, NULL) == 0) {
		sv->have_counts = true;
		if (sv->counts.drops > sv->reported_drops) {
			/* Lost events are counted and said, never silently missing. */
			json_t *ev = warden_event_new(sv->sb->id, "telemetry.drops", 0);
			json_object_set_new(ev, "drops",
			                    json_integer((json_int_t)sv->counts.drops));
			json_object_set_new(
			    ev, "new",
			    json_integer((json_int_t)(sv->counts.drops - sv->reported_drops)));
			sv_emit(sv, ev);
			sv->reported_drops = sv->counts.drops;
		}
	}
}

/* ---- the network's decisions ------------------------------------------------------- */

static void on_net_item(json_t *event, const char *audit_kind, json_t *rec, void *ctx)
{
	struct warden_supervisor *sv = ctx;
	sv_emit(sv, event);
	if (audit_kind)
		sv_audit(sv, audit_kind, rec);
	else
		json_decref(rec);
}

static void drain_net(struct warden_supervisor *sv)
{
	warden_netserve_drain(sv->net, on_net_item, sv);
	/* Refusals and model calls are on disk before the supervisor looks at anything else;
	 * they are not held back from the sandbox until then (docs/audit.md). */
	sv_audit_commit(sv);
}

/* ---- sampling ---------------------------------------------------------------------- */

uint64_t sv_refused_total(const struct warden_tel_counts *c)
{
	uint64_t n = 0;
	for (size_t i = 0; i < WARDEN_TEL_NR_MAX; i++)
		n += c->refused[i];
	return n;
}

json_t *sv_sample_fields(json_t *ev, const struct warden_sample *s)
{
	if (s->has_memory) {
		json_object_set_new(ev, "memory_current",
		                    json_integer((json_int_t)s->memory_current));
		json_object_set_new(ev, "memory_peak", json_integer((json_int_t)s->memory_peak));
	}
	if (s->has_cpu)
		json_object_set_new(ev, "cpu_usec", json_integer((json_int_t)s->cpu_usec));
	if (s->has_pids)
		json_object_set_new(ev, "pids", json_integer((json_int_t)s->pids));
	if (s->has_psi)
		json_object_set_new(ev, "psi_some_avg10",
		                    json_pack("{s:f, s:f, s:f}", "cpu", s->psi_cpu, "memory",
		                              s->psi_memory, "io", s->psi_io));
	return ev;
}

/* What the GPU watcher reported: device errors (Xid) become "gpu.xid" events and audit
 * records at once; on event ticks the latest sample of each GPU a "gpu.sample" event. */
static void gpu_poll(struct warden_supervisor *sv, struct warden_guard_sample *g, bool event_tick)
{
	size_t i;
	json_t *item;
	json_t *items = warden_gpu_session_poll(sv->gpu, &g->gpu_memory, &g->has_gpu_memory);
	if (!sv->gpu_latest)
		sv->gpu_latest = json_object();
	json_array_foreach(items, i, item)
	{
		const char *uuid = json_string_value(json_object_get(item, "uuid"));
		if (json_object_get(item, "xid") == NULL) {
			if (uuid)
				json_object_set(sv->gpu_latest, uuid, item);
			continue;
		}
		json_t *ev = warden_event_new(sv->sb->id, "gpu.xid", 0);
		json_object_update(ev, item);
		sv_audit(sv, "gpu.xid", json_deep_copy(item));
		sv_emit(sv, ev);
	}
	const char *uuid;
	json_object_foreach(event_tick ? sv->gpu_latest : NULL, uuid, item)
	{
		json_t *ev = warden_event_new(sv->sb->id, "gpu.sample", 0);
		json_object_update(ev, item);
		sv_emit(sv, ev);
	}
	json_decref(items);
}

static void sample(struct warden_supervisor *sv, bool tick)
{
	struct warden_guard_hit hits[MAX_HITS];
	(void)warden_sandbox_sample(sv->sb, &sv->last);
	sv_read_counts(sv, false);
	struct warden_guard_sample g = {
	    .memory_peak = sv->last.memory_peak,
	    .has_memory = sv->last.has_memory,
	    .pids = sv->last.pids,
	    .has_pids = sv->last.has_pids,
	    .cpu_ms = sv->last.cpu_usec / 1000,
	    .has_cpu = sv->last.has_cpu,
	    .refused = sv_refused_total(&sv->counts),
	    .has_refused = sv->have_counts,
	    .wall_ms = (now_ns(CLOCK_MONOTONIC) - sv->start_ns) / 1000000,
	};
	gpu_poll(sv, &g, tick && (sv->sample_ticks + 1) % sv->ticks_per_event == 0);
	act(sv, hits, warden_guard_on_sample(&sv->guard, &g, hits, MAX_HITS));
	if (tick && ++sv->sample_ticks % sv->ticks_per_event == 0)
		sv_emit(sv, sv_sample_fields(warden_event_new(sv->sb->id, "sample", 0), &sv->last));
}

static bool has_threshold_rules(const struct warden_guards *g)
{
	for (size_t i = 0; i < g->n; i++)
		if (g->v[i].cond >= WARDEN_GUARD_MEMORY_PEAK)
			return true;
	return false;
}

static int start_timer(struct warden_supervisor *sv)
{
	/* GPUs are watched even without an event stream: their errors are audit records. */
	unsigned ms = has_threshold_rules(&sv->rules)    ? SAMPLE_GUARD_MS
	              : sv->opts.emit || sv->gpu != NULL ? SAMPLE_EVENT_MS
	                                                 : 0;
	sv->ticks_per_event = SAMPLE_EVENT_MS / (ms ? ms : SAMPLE_EVENT_MS);
	if (!ms)
		return 0;
	sv->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (sv->timer_fd < 0)
		return -errno;
	struct timespec every = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	struct itimerspec it = {.it_interval = every, .it_value = every};
	return timerfd_settime(sv->timer_fd, 0, &it, NULL) < 0 ? -errno : 0;
}

/* ---- the end ----------------------------------------------------------------------- */

/* The sandbox.end event and the sandbox.exit record, queued for the audit log. */

static void finish(struct warden_supervisor *sv)
{
	char stats_note[64] = "";
	sv->ended = true;
	sv->end_ns = now_ns(CLOCK_MONOTONIC);
	while (sv->n_execs)
		sv_exec_done(
		    sv, &sv->execs[0],
		    json_pack("{s:i, s:s}", "exit", 128 + SIGKILL, "error", "the sandbox ended"));
	warden_netserve_stop(sv->net, on_net_item, sv);
	sv->net = NULL;
	drain_telemetry(sv);
	sv_read_counts(sv, true);
	(void)warden_sandbox_sample(sv->sb, &sv->last);
	const struct warden_supervisor_result *r = &sv->result;
	json_t *ev = sv_sample_fields(warden_event_new(sv->sb->id, "sandbox.end", 0), &sv->last);
	json_object_set_new(ev, "wall_ms",
	                    json_integer((json_int_t)((sv->end_ns - sv->start_ns) / 1000000)));
	if (r->failed) {
		json_object_set_new(ev, "failed", json_string(r->text));
		json_object_set_new(ev, "errno", json_integer(r->errnum));
	} else {
		json_object_set_new(ev, "status", json_integer(r->code));
	}
	if (r->killed_by[0])
		json_object_set_new(ev, "killed_by", json_string(r->killed_by));
	if (r->timed_out)
		json_object_set_new(ev, "timed_out", json_true());
	if (sv->have_counts) {
		json_object_set_new(ev, "execs", json_integer((json_int_t)sv->counts.execs));
		json_object_set_new(ev, "forks", json_integer((json_int_t)sv->counts.forks));
		json_object_set_new(ev, "refused",
		                    json_integer((json_int_t)sv_refused_total(&sv->counts)));
		json_object_set_new(ev, "events", json_integer((json_int_t)sv->counts.events));
		json_object_set_new(ev, "drops", json_integer((json_int_t)sv->counts.drops));
		snprintf(stats_note, sizeof(stats_note), "%" PRIu64, sv->counts.drops);
	}
	sv_emit(sv, ev);
	sv_audit(sv, "sandbox.exit",
	         json_pack("{s:i, s:b, s:s, s:s*}", "status", r->failed ? -1 : r->code, "failed",
	                   r->failed, "reason",
	                   r->timed_out      ? "timeout"
	                   : r->killed_by[0] ? "guardrail"
	                   : r->lost         ? "init killed"
	                   : r->failed       ? r->text
	                                     : "exited",
	                   "killed_by", r->killed_by[0] ? r->killed_by : NULL));
	/* Not committed here: warden_supervisor_free(), which follows the end at once (the
	 * supervisor has nothing left to do), commits it with the sandbox.destroy record, one
	 * flush to disk where two cost a millisecond or more each. */
}

static void on_sandbox_event(struct warden_supervisor *sv, const struct warden_event *ev)
{
	struct warden_supervisor_result *r = &sv->result;
	switch (ev->kind) {
	case WARDEN_EVENT_FAILED:
		r->failed = true;
		r->exec = ev->exec;
		r->errnum = ev->errnum;
		snprintf(r->text, sizeof(r->text), "%s", ev->text);
		break;
	case WARDEN_EVENT_EXITED:
		r->code = ev->code;
		finish(sv);
		break;
	case WARDEN_EVENT_EXEC_STARTED:
	case WARDEN_EVENT_EXEC_EXIT:
		sv_on_exec_event(sv, ev);
		break;
	case WARDEN_EVENT_LOST:
		/* Killing the whole sandbox kills its init too: that is the sandbox ending as it
		 * was told to, with its command killed, not init lost. */
		r->lost = !sv->killing;
		r->code = r->timed_out ? 124 : 128 + SIGKILL;
		snprintf(r->text, sizeof(r->text), "%s", ev->text);
		finish(sv);
		break;
	default:
		break;
	}
}

/* ---- public ------------------------------------------------------------------------ */

struct warden_supervisor *warden_supervisor_start(const struct warden_plan *plan,
                                                  const struct warden_process *proc,
                                                  const struct warden_supervisor_opts *opts,
                                                  struct warden_error **err)
{
	struct warden_supervisor *sv = xcalloc(1, sizeof(*sv));
	struct start_ctx ctx = {.sv = sv, .proc = proc};
	sv->plan = plan;
	sv->opts = *opts;
	sv->service = proc->service;
	sv->timer_fd = sv->control_fd = -1;
	sv->start_ns = now_ns(CLOCK_MONOTONIC);
	warden_guards_copy(&sv->rules, &plan->policy->guardrails);
	if (plan->n_gpus && plan->policy->gpu.memory) {
		/* gpu.memory is a guardrail: NVML cannot cap a process's allocations on a whole
		 * GPU (a MIG instance is capped by its size), so going over ends the sandbox. */
		sv->rules.v = xrealloc(sv->rules.v, (sv->rules.n + 1) * sizeof(*sv->rules.v));
		sv->rules.v[sv->rules.n++] = (struct warden_guard_rule){
		    .name = xstrdup("gpu.memory"),
		    .cond = WARDEN_GUARD_GPU_MEMORY,
		    .action = WARDEN_GUARD_KILL,
		    .threshold = plan->policy->gpu.memory,
		};
	}
	warden_guard_init(&sv->guard, &sv->rules);
	struct warden_sandbox *sb = NULL;
	_cleanup_error_ struct warden_error *gerr = NULL;
	sv->gpu = warden_gpu_session_start(plan, &gerr);
	if (!sv->gpu && gerr) {
		if (err)
			*err = TAKE_PTR(gerr);
		warden_supervisor_free(sv);
		return NULL;
	}
	int r = warden_sandbox_start(plan, proc, start_hook, &ctx, &sb, err);
	/* A start that failed between the hook's two phases: its committer is still out. */
	if (ctx.committing) {
		struct warden_error *ce = NULL;
		(void)commit_join(&ctx, &ce);
		warden_error_free(ce);
	}
	/* The supervisor drains the sandbox's events before its ring fills and acts on its
	 * guardrails: a sandbox that keeps every CPU busy (or a busy host) must not starve
	 * its own watchdog. So it runs ahead of the sandbox, 5 nice levels above the caller:
	 * this thread and the relay thread it starts next, not the sandbox, whose init was
	 * cloned already at the caller's priority. Root only (CAP_SYS_NICE); elsewhere it
	 * stays where it is. */
	if (r == 0) {
		errno = 0;
		int nice_now = getpriority(PRIO_PROCESS, 0);
		if (errno == 0)
			(void)setpriority(PRIO_PROCESS, 0, nice_now - SUPERVISOR_NICE_BOOST);
	}
	if (r == 0 && opts->net && !(sv->net = warden_netserve_start(sb, plan, opts->net, err))) {
		/* Its network cannot be served: the sandbox must not run without it. */
		(void)warden_sandbox_kill(sb, NULL);
		warden_sandbox_destroy(sb);
		r = -1;
	}
	if (r < 0) {
		if (sv->sb == NULL) {
			warden_supervisor_free(sv);
			return NULL;
		}
		/* The hook ran (the audit knows of the sandbox): record the failure too. The
		 * sandbox itself is already gone. */
		sv->sb = NULL;
		sv_audit(sv, "sandbox.exit",
		         json_pack("{s:i, s:b, s:s}", "status", -1, "failed", true, "reason",
		                   err && *err ? warden_error_text(*err) : "start failed"));
		sv_audit_commit(sv);
		warden_supervisor_free(sv);
		return NULL;
	}
	sv->sb = sb;
	json_t *start = warden_event_new(sb->id, "sandbox.start", 0);
	json_object_set_new(start, "policy", json_string(plan->policy->name));
	json_object_set_new(start, "argv", sv_strv_json(proc->argv));
	sv_emit(sv, start);
	json_t *sources = warden_event_new(sb->id, "telemetry.sources", 0);
	json_object_set_new(sources, "bpf", json_boolean(sv->tel != NULL));
	json_object_set_new(
	    sources, "cgroup",
	    json_boolean(sb->cgroup_id != 0 || warden_sandbox_sample(sb, &sv->last) == 0));
	json_object_set_new(sources, "off", sv_strv_json(sv->sources_off.v));
	sv_emit(sv, sources);
	_cleanup_error_ struct warden_error *e = NULL;
	if (start_timer(sv) < 0)
		strv_push(&sb->warnings, "sampling timer unavailable: threshold guardrails off");
	if (opts->control && sv_open_control(sv, &e) < 0)
		strv_push_take(&sb->warnings, xasprintf("%s", warden_error_text(e)));
	return sv;
}

struct warden_sandbox *warden_supervisor_sandbox(struct warden_supervisor *sv)
{
	return sv->sb;
}

size_t warden_supervisor_pollfds(struct warden_supervisor *sv, struct pollfd *fds, size_t max)
{
	int all[FD_MAX] = {
	    sv->sb->fds[0], sv->sb->fds[1], sv->tel ? warden_telemetry_fd(sv->tel) : -1,
	    sv->timer_fd,   sv->control_fd, sv->net ? warden_netserve_fd(sv->net) : -1};
	size_t n = 0;
	for (size_t i = 0; i < FD_MAX && n < max; i++)
		fds[n++] = (struct pollfd){.fd = sv->ended ? -1 : all[i], .events = POLLIN};
	return n;
}

/* Whether source i is worth looking at: it polled ready, or nobody said. */
static bool is_ready(const struct pollfd *ready, int i)
{
	return !ready || (ready[i].fd >= 0 && ready[i].revents);
}

int warden_supervisor_dispatch(struct warden_supervisor *sv, const struct pollfd *ready,
                               struct warden_error **err)
{
	uint64_t ticks;
	if (sv->ended)
		return 1;
	if (sv->tel && is_ready(ready, FD_TELEMETRY))
		drain_telemetry(sv);
	if (sv->timer_fd >= 0 && is_ready(ready, FD_TIMER) &&
	    read(sv->timer_fd, &ticks, sizeof(ticks)) == sizeof(ticks))
		sample(sv, true);
	if (sv->control_fd >= 0 && is_ready(ready, FD_CONTROL))
		sv_handle_control(sv);
	if (sv->net && is_ready(ready, FD_NET))
		drain_net(sv);
	if (!is_ready(ready, FD_SANDBOX_MSG) && !is_ready(ready, FD_SANDBOX_EXIT))
		return 0;
	for (;;) {
		struct warden_event ev;
		if (warden_sandbox_next_event(sv->sb, &ev, err) < 0)
			return -1;
		if (ev.kind == WARDEN_EVENT_NONE)
			break;
		on_sandbox_event(sv, &ev);
		if (sv->ended)
			return 1;
	}
	return 0;
}

int warden_supervisor_signal(struct warden_supervisor *sv, int sig, struct warden_error **err)
{
	if (sv->service) {
		/* No main process to pass it to: a service sandbox's supervisor asked to stop
		 * ends its sandbox. */
		if (sig != SIGTERM && sig != SIGINT && sig != SIGHUP && sig != SIGQUIT)
			return 0;
		sv->killing = true;
		return warden_sandbox_kill(sv->sb, err);
	}
	return warden_sandbox_signal(sv->sb, sig, err);
}

const char *warden_supervisor_control_path(const struct warden_supervisor *sv)
{
	return sv->control_path;
}

int warden_supervisor_timeout(struct warden_supervisor *sv, struct warden_error **err)
{
	sv->result.timed_out = true;
	sv->result.code = 124;
	sv->killing = true;
	json_t *ev = warden_event_new(sv->sb->id, "kill", 0);
	json_object_set_new(ev, "by", json_string("timeout"));
	sv_emit(sv, ev);
	sv_audit(sv, "sandbox.kill", json_pack("{s:s}", "by", "timeout"));
	if (warden_sandbox_kill(sv->sb, err) < 0)
		return -1;
	return 0;
}

const struct warden_supervisor_result *warden_supervisor_result(const struct warden_supervisor *sv)
{
	return &sv->result;
}

static int cmp_count(const void *a, const void *b, void *ctx)
{
	const uint64_t *c = ctx;
	uint64_t x = c[*(const int *)a], y = c[*(const int *)b];
	return x < y ? 1 : x > y ? -1 : 0;
}

static void top_list(char **out, const uint64_t *counts, size_t max)
{
	int idx[WARDEN_TEL_NR_MAX];
	for (int i = 0; i < WARDEN_TEL_NR_MAX; i++)
		idx[i] = i;
	qsort_r(idx, WARDEN_TEL_NR_MAX, sizeof(int), cmp_count, (void *)counts);
	for (size_t i = 0; i < max && counts[idx[i]]; i++) {
		_cleanup_free_ char *name = warden_syscall_name(idx[i]);
		char *next =
		    xasprintf("%s%s%s %" PRIu64, *out, i ? ", " : "", name, counts[idx[i]]);
		free(*out);
		*out = next;
	}
}

char *warden_supervisor_stats(struct warden_supervisor *sv)
{
	const struct warden_sample *s = &sv->last;
	uint64_t end = sv->end_ns ? sv->end_ns : now_ns(CLOCK_MONOTONIC);
	char peak[32] = "unknown", cpu[32] = "unknown";
	if (s->has_memory)
		snprintf(peak, sizeof(peak), "%.1f MiB", (double)s->memory_peak / (1 << 20));
	if (s->has_cpu)
		snprintf(cpu, sizeof(cpu), "%.3f s", (double)s->cpu_usec / 1e6);
	char *out = xasprintf("sandbox %s: %.3f s wall, %s CPU, peak memory %s\n", sv->sb->id,
	                      (double)(end - sv->start_ns) / 1e9, cpu, peak);
	if (!sv->have_counts) {
		char *next =
		    xasprintf("%s  system calls, refusals, execs: not observed (%s)\n", out,
		              sv->sources_off.n ? sv->sources_off.v[0] : "no telemetry");
		free(out);
		return next;
	}
	uint64_t total = 0;
	for (size_t i = 0; i < WARDEN_TEL_NR_MAX; i++)
		total += sv->counts.syscalls[i];
	_cleanup_free_ char *top = xstrdup(""), *refused = xstrdup("");
	top_list(&top, sv->counts.syscalls, 8);
	top_list(&refused, sv->counts.refused, 8);
	char *next = xasprintf("%s  system calls: %" PRIu64 " (%s)\n  refused: %" PRIu64
	                       "%s%s%s\n  execs: %" PRIu64 ", forks: %" PRIu64
	                       "\n  telemetry events: %" PRIu64 ", lost: %" PRIu64 "\n",
	                       out, total, top, sv_refused_total(&sv->counts), *refused ? " (" : "",
	                       refused, *refused ? ")" : "", sv->counts.execs, sv->counts.forks,
	                       sv->counts.events, sv->counts.drops);
	free(out);
	return next;
}

void warden_supervisor_free(struct warden_supervisor *sv)
{
	if (!sv)
		return;
	if (sv->sb && !sv->ended && !sv->result.failed)
		finish(sv);
	warden_netserve_stop(sv->net, on_net_item, sv);
	sv->net = NULL;
	warden_telemetry_detach(sv->tel);
	sv->tel = NULL;
	if (sv->sb) {
		warden_sandbox_destroy(sv->sb);
		sv->sb = NULL;
		sv_audit(sv, "sandbox.destroy", json_object());
		sv_audit_commit(sv);
	}
	if (sv->gpu) {
		size_t i;
		json_t *rec, *recs = warden_gpu_session_end(TAKE_PTR(sv->gpu));
		json_array_foreach(recs, i, rec) sv_audit(sv, "gpu.scrub", json_incref(rec));
		json_decref(recs);
		sv_audit_commit(sv);
	}
	if (sv->control_fd >= 0)
		close(sv->control_fd);
	if (sv->control_path)
		unlink(sv->control_path);
	free(sv->control_path);
	while (sv->n_execs) {
		close(sv->execs[sv->n_execs - 1].conn);
		sv->n_execs--;
	}
	free(sv->execs);
	if (sv->timer_fd >= 0)
		close(sv->timer_fd);
	warden_guard_free(&sv->guard);
	warden_guards_clear(&sv->rules);
	json_decref(sv->gpu_latest);
	strv_clear(&sv->sources_off);
	free(sv);
}
