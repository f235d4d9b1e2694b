/* session.c: the GPUs of one sandbox, from its supervisor's side.
 *
 * Sections: the grant (locks taken before the sandbox exists, owner recorded once it
 * does); watching (the helper's `watch`: NVML samples and Xid events as JSON lines); the
 * end (scrub, then release).
 *
 * The order at the end matters: the scrub runs only after every process of the sandbox
 * is gone (the supervisor calls warden_gpu_session_end() after the sandbox is
 * destroyed), and the helper waits until the driver lists no compute process on the
 * device before it allocates; a device is released for the next grant only when its scrub
 * succeeded (lock.c keeps the pending marker otherwise).
 */
#define _GNU_SOURCE
#include "session.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

struct warden_gpu_session {
	const struct warden_plan *plan;
	struct warden_gpu_lock *locks;   /* one per plan->gpus[i] */
	struct warden_gpu_lock *parents; /* a MIG instance's GPU, held shared */
	int watch_fd;
	pid_t watch_pid;
	char buf[16384];
	size_t len;
	uint64_t memory; /* the sandbox's GPU memory in the last sample */
	char id[17];     /* the sandbox's */
	bool has_memory;
};

/* ---- the grant ------------------------------------------------------------------------- */

struct warden_gpu_session *warden_gpu_session_start(const struct warden_plan *plan,
                                                    struct warden_error **err)
{
	const struct warden_gpu *g = &plan->policy->gpu;
	if (!plan->n_gpus)
		return NULL;
	struct warden_gpu_session *s = xcalloc(1, sizeof(*s));
	s->plan = plan;
	s->watch_fd = -1;
	s->locks = xcalloc(plan->n_gpus, sizeof(*s->locks));
	s->parents = xcalloc(plan->n_gpus, sizeof(*s->parents));
	for (size_t i = 0; i < plan->n_gpus; i++)
		s->locks[i].fd = s->parents[i].fd = -1;
	for (size_t i = 0; i < plan->n_gpus; i++) {
		const struct warden_plan_gpu *pg = &plan->gpus[i];
		/* A MIG instance also holds its GPU shared, so that a whole-GPU grant (which
		 * holds it exclusive) and a grant of one of its instances exclude each other. */
		if (pg->parent_uuid && warden_gpu_lock_acquire(pg->parent_uuid, false, true, NULL,
		                                               &s->parents[i], err) < 0)
			goto fail;
		if (warden_gpu_lock_acquire(pg->uuid, g->exclusive, false, NULL, &s->locks[i],
		                            err) < 0)
			goto fail;
	}
	return s;
fail:
	warden_error_wrap(err, "gpu");
	for (size_t i = 0; i < plan->n_gpus; i++) {
		warden_gpu_lock_release(&s->locks[i], false);
		warden_gpu_lock_release(&s->parents[i], false);
	}
	free(s->locks);
	free(s->parents);
	free(s);
	return NULL;
}

json_t *warden_gpu_session_grant_record(const struct warden_plan *plan)
{
	json_t *devs = json_array(), *gpus = json_array();
	for (size_t i = 0; i < plan->n_devices; i++) {
		const struct warden_plan_device *d = &plan->devices[i];
		char access[4], num[32];
		warden_device_access_format(d->access, access);
		snprintf(num, sizeof(num), "%c %u:%u", d->type, d->major, d->minor);
		json_array_append_new(devs, json_pack("{s:s, s:s, s:s}", "path", d->path, "device",
		                                      num, "access", access));
	}
	for (size_t i = 0; i < plan->n_gpus; i++)
		json_array_append_new(
		    gpus, json_pack("{s:s, s:s*, s:i}", "uuid", plan->gpus[i].uuid, "gpu",
		                    plan->gpus[i].parent_uuid, "index", (int)plan->gpus[i].index));
	return json_pack("{s:o, s:o, s:b, s:b, s:I}", "devices", devs, "gpus", gpus, "scrub",
	                 plan->policy->gpu.scrub, "exclusive", plan->policy->gpu.exclusive,
	                 "gpu_memory_max", (json_int_t)plan->policy->gpu.memory);
}

void warden_gpu_session_started(struct warden_gpu_session *s, const char *id)
{
	if (!s)
		return;
	snprintf(s->id, sizeof(s->id), "%s", id);
	for (size_t i = 0; i < s->plan->n_gpus; i++)
		warden_gpu_lock_set_owner(&s->locks[i], id, true);
	struct strv args = {0};
	strv_push(&args, "watch");
	strv_push(&args, "--sandbox");
	strv_push(&args, id);
	for (size_t i = 0; i < s->plan->n_gpus; i++)
		strv_push(&args, s->plan->gpus[i].uuid);
	_cleanup_error_ struct warden_error *e = NULL;
	if (warden_gpu_helper_spawn(args.v, &s->watch_fd, &s->watch_pid, &e) == 0)
		(void)fcntl(s->watch_fd, F_SETFL, O_NONBLOCK);
	strv_clear(&args);
}

/* ---- watching -------------------------------------------------------------------------- */

static void on_line(struct warden_gpu_session *s, const char *line, json_t *events)
{
	json_t *j = json_loads(line, 0, NULL);
	if (!j)
		return;
	json_t *mem = json_object_get(j, "sandbox_memory");
	if (json_is_integer(mem)) {
		s->memory = (uint64_t)json_integer_value(mem);
		s->has_memory = true;
	}
	json_array_append_new(events, j);
}

json_t *warden_gpu_session_poll(struct warden_gpu_session *s, uint64_t *ret_memory, bool *ret_has)
{
	json_t *events = json_array();
	*ret_has = false;
	if (!s || s->watch_fd < 0)
		return events;
	for (;;) {
		ssize_t n = read(s->watch_fd, s->buf + s->len, sizeof(s->buf) - 1 - s->len);
		if (n <= 0)
			break;
		s->len += (size_t)n;
		s->buf[s->len] = '\0';
		char *start = s->buf, *nl;
		while ((nl = strchr(start, '\n'))) {
			*nl = '\0';
			on_line(s, start, events);
			start = nl + 1;
		}
		s->len -= (size_t)(start - s->buf);
		memmove(s->buf, start, s->len);
		if (s->len == sizeof(s->buf) - 1)
			s->len = 0; /* a line longer than the buffer: not the helper's */
	}
	*ret_memory = s->memory;
	*ret_has = s->has_memory;
	return events;
}

/* ---- the end --------------------------------------------------------------------------- */

static void stop_watch(struct warden_gpu_session *s)
{
	if (s->watch_pid > 0) {
		kill(s->watch_pid, SIGKILL); /* it holds nothing that needs a clean exit */
		while (waitpid(s->watch_pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (s->watch_fd >= 0)
		close(s->watch_fd);
	s->watch_fd = -1;
	s->watch_pid = 0;
}

/* One device's scrub through the helper: the audit record's fields. */
static json_t *scrub_one(const char *uuid, const char *id, bool *ret_ok)
{
	json_t *res = NULL;
	_cleanup_error_ struct warden_error *e = NULL;
	char *args[] = {"scrub", (char *)uuid, "--sandbox", (char *)id, NULL};
	*ret_ok = warden_gpu_helper_run(args, &res, &e) == 0 &&
	          json_is_true(json_object_get(res, "verified"));
	if (!res)
		return json_pack("{s:s, s:b, s:s}", "uuid", uuid, "ok", false, "error",
		                 warden_error_text(e));
	json_object_set_new(res, "ok", json_boolean(*ret_ok));
	return res;
}

json_t *warden_gpu_session_end(struct warden_gpu_session *s)
{
	json_t *records = json_array();
	if (!s)
		return records;
	stop_watch(s);
	for (size_t i = 0; i < s->plan->n_gpus; i++) {
		struct warden_gpu_lock *l = &s->locks[i];
		const char *uuid = s->plan->gpus[i].uuid;
		if (!s->plan->policy->gpu.scrub) {
			json_array_append_new(records,
			                      json_pack("{s:s, s:b, s:s}", "uuid", uuid, "scrub",
			                                false, "result", "released unscrubbed"));
			warden_gpu_lock_release(l, true);
			continue;
		}
		if (!warden_gpu_lock_is_last(l)) {
			/* Shared with a live sandbox: the last one to leave scrubs. */
			json_array_append_new(records,
			                      json_pack("{s:s, s:b, s:s}", "uuid", uuid, "scrub",
			                                false, "result", "still shared"));
			warden_gpu_lock_release(l, false);
			continue;
		}
		bool ok = false;
		json_t *rec = scrub_one(uuid, s->id, &ok);
		json_object_set_new(rec, "scrub", json_true());
		json_array_append_new(records, rec);
		warden_gpu_lock_release(l, ok);
	}
	for (size_t i = 0; i < s->plan->n_gpus; i++)
		warden_gpu_lock_release(&s->parents[i], false);
	free(s->locks);
	free(s->parents);
	free(s);
	return records;
}
