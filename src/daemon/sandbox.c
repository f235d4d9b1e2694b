/* sandbox.c: the sandboxes wardend runs: the registry, watching their supervisors, TTL,
 * destroying them, and finding them again at start. Creating them, and pools, are in
 * create.c.
 *
 * Sections: the registry; requests to the supervisor; watching a supervisor; ending; TTL;
 * re-adoption at start.
 *
 * A sandbox is in the registry from the moment its row is committed to the moment its
 * supervisor has exited (seen through a pidfd) and its row is deleted. Requests that
 * outlive a call (exec, events) hold a reference.
 */
#define _GNU_SOURCE
#include "wardend.h"
#include "../lib/policy.h"

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#define DESTROY_DEADLINE_S 10

/* ---- the registry ------------------------------------------------------------------ */

struct sandbox *sandbox_find(const char *id)
{
	for (struct sandbox *sb = wd.sandboxes; sb; sb = sb->next)
		if (streq(sb->id, id))
			return sb;
	return NULL;
}

struct sandbox *sandbox_new(void)
{
	struct sandbox *sb = xcalloc(1, sizeof(*sb));
	sb->sv_pidfd = sb->init_pidfd = -1;
	sb->root.fd = -1;
	sb->refs = 1; /* the registry's */
	sb->labels = json_object();
	sb->owner = xstrdup("");
	return sb;
}

struct sandbox *sandbox_ref(struct sandbox *sb)
{
	sb->refs++;
	return sb;
}

void sandbox_unref(struct sandbox *sb)
{
	if (!sb || --sb->refs > 0)
		return;
	if (sb->sv_ev)
		event_free(sb->sv_ev);
	if (sb->ttl_ev)
		event_free(sb->ttl_ev);
	if (sb->destroy_deadline)
		event_free(sb->destroy_deadline);
	if (sb->sv_pidfd >= 0)
		close(sb->sv_pidfd);
	if (sb->init_pidfd >= 0)
		close(sb->init_pidfd);
	warden_root_close(&sb->root);
	json_decref(sb->labels);
	free(sb->policy);
	free(sb->control);
	free(sb->owner);
	free(sb);
}

void sandbox_register(struct sandbox *sb)
{
	sb->next = wd.sandboxes;
	wd.sandboxes = sb;
}

static void registry_remove(struct sandbox *sb)
{
	for (struct sandbox **p = &wd.sandboxes; *p; p = &(*p)->next)
		if (*p == sb) {
			*p = sb->next;
			sb->next = NULL;
			sandbox_unref(sb);
			return;
		}
}

json_t *sandbox_json(const struct sandbox *sb)
{
	char a[32], b[32];
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:O, s:b}", "id", sb->id, "policy", sb->policy,
	                 "state", sb->paused ? "paused" : "running", "created_at",
	                 rfc3339(sb->created_at, a, sizeof(a)), "expires_at",
	                 rfc3339(sb->expires_at, b, sizeof(b)), "labels", sb->labels, "from_pool",
	                 sb->from_pool);
}

unsigned sandbox_count(const char *owner)
{
	unsigned n = 0;
	for (struct sandbox *sb = wd.sandboxes; sb; sb = sb->next)
		if (!sb->pool && !sb->destroying && (!owner || streq(sb->owner, owner)))
			n++;
	return n;
}

char *sandbox_events_path(const char *id)
{
	return xasprintf("%s/%s.jsonl", wd.events_dir, id);
}

/* ---- requests to the supervisor ---------------------------------------------------- */

json_t *sandbox_request(struct sandbox *sb, json_t *req, struct warden_error **err)
{
	json_t *r = warden_control_call(sb->control, req, CTL_TIMEOUT_MS, err);
	json_decref(req);
	if (r && !(r = warden_control_ok(r, err)))
		warden_error_wrap(err, "sandbox %s", sb->id);
	return r;
}

json_t *control_op(const char *name)
{
	return json_pack("{s:s}", "op", name);
}

bool control_destroy(const char *path)
{
	json_t *req = control_op("destroy");
	json_t *r = warden_control_call(path, req, CTL_TIMEOUT_MS, NULL);
	json_decref(req);
	json_decref(r);
	return r != NULL;
}

/* The root comes from the supervisor (init opened it after pivot_root): rootless, the
 * kernel refuses /proc/<init>/root of the non-dumpable init even to its own user. It is
 * asked for once and kept: the descriptor names that sandbox's "/" for as long as it is
 * open. Whether the sandbox still lives is checked on each use (the init's pidfd becomes
 * readable when it exits): the files of a sandbox that has ended are not served. */
const struct warden_root *sandbox_root(struct sandbox *sb, struct warden_error **err)
{
	struct pollfd p = {.fd = sb->init_pidfd, .events = POLLIN};
	int r = 0;
	/* A signal (wardend reaps the supervisors it started) must not read as an ending. */
	while (sb->init_pidfd >= 0 && (r = poll(&p, 1, 0)) < 0 && errno == EINTR)
		;
	if (sb->init_pidfd < 0 || (r > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)))) {
		warden_root_close(&sb->root);
		warden_error_set(err, ESRCH, "sandbox %s: its init is gone", sb->id);
		return NULL;
	}
	if (sb->root.fd >= 0)
		return &sb->root;
	int fd = warden_control_root(sb->control, CTL_TIMEOUT_MS, err);
	if (fd < 0 || warden_root_adopt(fd, sb->uid, sb->gid, &sb->root, err) < 0) {
		warden_error_wrap(err, "sandbox %s", sb->id);
		return NULL;
	}
	return &sb->root;
}

int sandbox_pause(struct sandbox *sb, bool pause, struct warden_error **err)
{
	json_t *r = sandbox_request(sb, control_op(pause ? "freeze" : "thaw"), err);
	if (!r)
		return -1;
	json_decref(r);
	sb->paused = pause;
	if (state_set_paused(sb->id, pause) < 0)
		return warden_error_set(err, 0, "state database: %s", state_error());
	return 0;
}

/* ---- watching a supervisor --------------------------------------------------------- */

static void finalize(struct sandbox *sb);

static void sv_exited_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	finalize(arg);
}

static int info_into(struct sandbox *sb, struct warden_error **err)
{
	json_t *r = sandbox_request(sb, control_op("info"), err);
	if (!r)
		return -1;
	json_int_t init = json_integer_value(json_object_get(r, "init_pid"));
	json_int_t sv = json_integer_value(json_object_get(r, "supervisor_pid"));
	json_t *uid = json_object_get(r, "uid"), *gid = json_object_get(r, "gid");
	if (init <= 0 || !json_is_integer(uid) || !json_is_integer(gid)) {
		json_decref(r);
		return warden_error_set(err, EPROTO,
		                        "sandbox %s: an info reply without init_pid, "
		                        "uid, gid",
		                        sb->id);
	}
	if (sv > 0)
		sb->supervisor_pid = (pid_t)sv;
	sb->init_pid = (pid_t)init;
	sb->uid = (uid_t)json_integer_value(uid);
	sb->gid = (gid_t)json_integer_value(gid);
	sb->paused = json_is_true(json_object_get(r, "frozen"));
	json_decref(r);
	return 0;
}

/* Ask the supervisor who it is, take pidfds of it and of the sandbox's init, and ask
 * again: the second answer proves the pidfds name those processes and not recycled pids
 * (the supervisor is init's parent, so init's pid cannot be reused while it answers). */
int sandbox_watch(struct sandbox *sb, struct warden_error **err)
{
	if (info_into(sb, err) < 0)
		return -1;
	pid_t sv = sb->supervisor_pid, init = sb->init_pid;
	sb->sv_pidfd = warden_pidfd_open(sv, 0);
	sb->init_pidfd = warden_pidfd_open(init, 0);
	if (sb->sv_pidfd < 0 || sb->init_pidfd < 0)
		return warden_error_set(err, errno, "sandbox %s: pidfd_open", sb->id);
	if (info_into(sb, err) < 0)
		return -1;
	if (sb->supervisor_pid != sv || sb->init_pid != init)
		return warden_error_set(err, ESRCH, "sandbox %s: its processes changed", sb->id);
	sb->sv_ev = event_new(wd.base, sb->sv_pidfd, EV_READ, sv_exited_cb, sb);
	event_add(sb->sv_ev, NULL);
	return 0;
}

/* ---- ending ------------------------------------------------------------------------ */

/* The supervisor has ended (or is being given up on): nothing of the sandbox is left
 * to wardend but its row and events file. */
static void finalize(struct sandbox *sb)
{
	_cleanup_free_ char *events = sandbox_events_path(sb->id);
	(void)unlink(events);
	if (state_delete(sb->id) < 0)
		fprintf(stderr, "wardend: sandbox %s: deleting its row: %s\n", sb->id,
		        state_error());
	if (sb->delete_req)
		reply_empty(TAKE_PTR(sb->delete_req), 204);
	if (sb->pool) {
		struct pool *p = TAKE_PTR(sb->pool);
		p->ready--;
		pool_slot_gone(p);
	}
	if (sb->ttl_ev)
		evtimer_del(sb->ttl_ev);
	if (sb->sv_ev)
		event_del(sb->sv_ev);
	if (sb->destroy_deadline)
		evtimer_del(sb->destroy_deadline);
	warden_root_close(&sb->root);
	if (!sb->destroying)
		fprintf(stderr, "wardend: sandbox %s ended\n", sb->id);
	wd.destroyed++;
	sb->destroying = true;
	registry_remove(sb);
}

static void destroy_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct sandbox *sb = arg;
	fprintf(stderr, "wardend: sandbox %s: the supervisor did not end; killing it\n", sb->id);
	if (sb->sv_pidfd >= 0)
		(void)syscall(SYS_pidfd_send_signal, sb->sv_pidfd, SIGKILL, NULL, 0);
	finalize(sb);
}

void sandbox_destroy(struct sandbox *sb, struct evhttp_request *req, const char *why)
{
	if (sb->destroying) {
		if (req)
			reply_empty(req, 204);
		return;
	}
	sb->destroying = true;
	if (sb->ttl_ev)
		evtimer_del(sb->ttl_ev);
	(void)state_mark_destroyed(sb->id);
	fprintf(stderr, "wardend: sandbox %s: destroy (%s)\n", sb->id, why);
	_cleanup_error_ struct warden_error *e = NULL;
	json_t *r = sandbox_request(sb, control_op("destroy"), &e);
	json_decref(r);
	if (!r && sb->sv_pidfd >= 0)
		(void)syscall(SYS_pidfd_send_signal, sb->sv_pidfd, SIGTERM, NULL, 0);
	sb->delete_req = req;
	if (sb->sv_pidfd < 0) {
		finalize(sb);
		return;
	}
	sb->destroy_deadline = evtimer_new(wd.base, destroy_deadline_cb, sb);
	struct timeval tv = {.tv_sec = DESTROY_DEADLINE_S};
	evtimer_add(sb->destroy_deadline, &tv);
}

/* ---- TTL --------------------------------------------------------------------------- */

static void ttl_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	wd.expired++;
	sandbox_destroy(arg, NULL, "ttl expired");
}

void sandbox_arm_ttl(struct sandbox *sb)
{
	if (sb->expires_at <= 0)
		return;
	if (!sb->ttl_ev)
		sb->ttl_ev = evtimer_new(wd.base, ttl_cb, sb);
	int64_t left = sb->expires_at - now_s();
	struct timeval tv = {.tv_sec = left > 0 ? left : 0};
	evtimer_add(sb->ttl_ev, &tv);
}

/* ---- re-adoption at start ---------------------------------------------------------- */
static void forget(const char *id, const char *why)
{
	_cleanup_free_ char *events = sandbox_events_path(id);
	fprintf(stderr, "wardend: sandbox %s: %s\n", id, why);
	(void)unlink(events);
	(void)state_delete(id);
}

static void adopt_row(json_t *row, void *ctx)
{
	(void)ctx;
	struct sandbox *sb = sandbox_new();
	const char *id = json_string_value(json_object_get(row, "id"));
	snprintf(sb->id, sizeof(sb->id), "%s", id);
	sb->control = xstrdup(json_string_value(json_object_get(row, "control")));
	free(sb->policy);
	sb->policy = xstrdup(json_string_value(json_object_get(row, "policy")));
	sb->supervisor_pid = (pid_t)json_integer_value(json_object_get(row, "supervisor_pid"));
	sb->created_at = json_integer_value(json_object_get(row, "created_at"));
	sb->expires_at = json_integer_value(json_object_get(row, "expires_at"));
	json_decref(sb->labels);
	sb->labels = json_incref(json_object_get(row, "labels"));
	free(sb->owner);
	sb->owner = xstrdup(json_string_value(json_object_get(row, "owner")));
	sb->from_pool = json_is_true(json_object_get(row, "from_pool"));
	bool pooled = json_is_true(json_object_get(row, "pooled"));

	_cleanup_error_ struct warden_error *e = NULL;
	if (json_is_true(json_object_get(row, "destroyed"))) {
		/* Destroy was sent, its end not seen: finish it. */
		(void)control_destroy(sb->control);
		forget(id, "destroyed (finished at start)");
		sandbox_unref(sb);
		return;
	}
	if (sandbox_watch(sb, &e) < 0) {
		forget(id, "gone while wardend was down; cleaned");
		sandbox_unref(sb);
		return;
	}
	sandbox_register(sb);
	struct pool *p = pooled ? pool_for(sb->policy) : NULL;
	if (pooled && (!p || p->ready >= p->target)) {
		sandbox_destroy(sb, NULL, "pool no longer configured this large");
	} else if (pooled) {
		sb->pool = p;
		p->ready++;
	} else if (sb->expires_at <= now_s()) {
		wd.expired++;
		sandbox_destroy(sb, NULL, "expired while wardend was down");
	} else {
		sandbox_arm_ttl(sb);
		fprintf(stderr, "wardend: sandbox %s: re-adopted\n", sb->id);
	}
}

/* How long a `warden supervise` found starting at wardend's start may take to name its
 * sandbox in its events file, and how often that is looked at again. */
#define ORPHAN_WAIT_S  60
#define ORPHAN_RETRY_S 1

/* Events files "new-*.jsonl" found at start whose supervisor had not yet named its
 * sandbox: looked at again until it does (or ORPHAN_WAIT_S pass). Only files found at
 * start: those of this wardend's own creations are not orphans. */
static struct strv orphans_pending;
static struct event *orphans_ev;

/* An events file "new-*.jsonl" is a `warden supervise` whose answer wardend did not
 * finish recording (it died meanwhile): the sandbox named in its events is destroyed, or,
 * if its row was written, given its events back. Returns true when the file names no
 * sandbox yet but its supervisor may still be starting (it is kept, to look again). */
static bool sweep_orphan(const char *path)
{
	char id[SANDBOX_ID_LEN + 1] = "";
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	char line[4096];
	for (int i = 0; f && !id[0] && i < 8 && fgets(line, sizeof(line), f); i++) {
		json_t *ev = json_loads(line, 0, NULL);
		const char *s = json_string_value(json_object_get(ev, "sandbox"));
		if (s && strlen(s) == SANDBOX_ID_LEN &&
		    strspn(s, "0123456789abcdef") == SANDBOX_ID_LEN)
			memcpy(id, s, sizeof(id));
		json_decref(ev);
	}
	struct stat st;
	/* Not yet named: a supervisor started just before wardend died writes its first event
	 * once its sandbox exists; unlinking the file now would lose that sandbox. */
	if (!id[0] && f && fstat(fileno(f), &st) == 0 && time(NULL) - st.st_mtime < ORPHAN_WAIT_S)
		return true;
	_cleanup_free_ char *events = id[0] ? sandbox_events_path(id) : NULL;
	if (id[0] && sandbox_find(id) && access(events, F_OK) < 0 && rename(path, events) == 0)
		return false;
	if (id[0] && !sandbox_find(id)) {
		_cleanup_free_ char *dir = warden_control_dir(false, NULL);
		_cleanup_free_ char *sock = xasprintf("%s/%s.sock", dir, id);
		if (control_destroy(sock))
			fprintf(stderr,
			        "wardend: sandbox %s: started but never recorded; destroyed\n", id);
	}
	(void)unlink(path);
	return false;
}

static void orphans_cb(evutil_socket_t fd _unused_, short what _unused_, void *arg _unused_)
{
	struct strv still = {0};
	for (size_t i = 0; i < orphans_pending.n; i++)
		if (sweep_orphan(orphans_pending.v[i]))
			strv_push(&still, orphans_pending.v[i]);
	strv_clear(&orphans_pending);
	orphans_pending = still;
	if (orphans_pending.n && !wd.stopping) {
		struct timeval tv = {.tv_sec = ORPHAN_RETRY_S};
		evtimer_add(orphans_ev, &tv);
	}
}

static void sweep_dir(const char *dir, const char *suffix, bool events)
{
	_cleanup_closedir_ DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		size_t n = strlen(de->d_name), sn = strlen(suffix);
		if (n <= sn || !streq(de->d_name + n - sn, suffix))
			continue;
		_cleanup_free_ char *path = xasprintf("%s/%s", dir, de->d_name);
		if (!strncmp(de->d_name, "new-", 4)) {
			if (events && sweep_orphan(path))
				strv_push(&orphans_pending, path);
			else if (!events)
				(void)unlink(path);
		} else if (events && n == SANDBOX_ID_LEN + sn) {
			char id[SANDBOX_ID_LEN + 1];
			memcpy(id, de->d_name, SANDBOX_ID_LEN);
			id[SANDBOX_ID_LEN] = '\0';
			if (!sandbox_find(id))
				(void)unlink(path);
		}
	}
}

int sandboxes_start(struct warden_error **err)
{
	if (state_each(adopt_row, NULL) < 0)
		return warden_error_set(err, 0, "state database: %s", state_error());
	sweep_dir(wd.events_dir, ".jsonl", true);
	sweep_dir(wd.policies_tmp_dir, ".yaml", false);
	if (orphans_pending.n) {
		orphans_ev = evtimer_new(wd.base, orphans_cb, NULL);
		struct timeval tv = {.tv_sec = ORPHAN_RETRY_S};
		evtimer_add(orphans_ev, &tv);
	}
	pools_fill();
	return 0;
}

void sandboxes_stop(void)
{
	wd.stopping = true;
	if (orphans_ev)
		evtimer_del(orphans_ev);
	for (size_t i = 0; i < wd.n_pools; i++)
		if (wd.pools[i].retry)
			evtimer_del(wd.pools[i].retry);
}
