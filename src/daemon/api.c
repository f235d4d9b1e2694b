/* api.c: the routes about sandboxes as a whole: health, metrics, create, list, get,
 * delete, pause and resume, stats and the exec log; the dispatcher.
 *
 * exec is in api-exec.c, files in api-files.c, the event stream in api-events.c.
 */
#define _GNU_SOURCE
#include "wardend.h"

#include <event2/buffer.h>

/* ---- health and metrics ------------------------------------------------------------- */

static void healthz(struct call *c)
{
	reply_json(c->req, 200, json_pack("{s:b}", "ok", 1));
}

/* Label values cannot hold a raw '"', '\\' or newline. */
static void label(struct evbuffer *b, const char *s)
{
	for (; s && *s; s++) {
		if (*s == '"' || *s == '\\')
			evbuffer_add(b, "\\", 1);
		evbuffer_add(b, *s == '\n' ? " " : s, 1);
	}
}

static const struct {
	const char *key, *name, *type, *help;
	double scale;
} sandbox_metrics[] = {
    {"memory_current", "warden_sandbox_memory_bytes", "gauge", "Memory in use.", 1},
    {"memory_peak", "warden_sandbox_memory_peak_bytes", "gauge", "Peak memory.", 1},
    {"cpu_usec", "warden_sandbox_cpu_seconds_total", "counter", "CPU time.", 1e-6},
    {"pids", "warden_sandbox_pids", "gauge", "Processes and threads.", 1},
    {"frozen", "warden_sandbox_frozen", "gauge", "1 while paused.", 1},
};

static void metric(struct evbuffer *b, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metrics(struct call *c)
{
	struct evbuffer *b = evbuffer_new();
	unsigned live = 0;
	metric(b, "wardend_sandboxes", "gauge", "Sandboxes handed out and running.");
	for (struct sandbox *sb = wd.sandboxes; sb; sb = sb->next)
		live +=
		    !sb->pool && !sb->destroying && (!c->owner[0] || streq(sb->owner, c->owner));
	evbuffer_add_printf(b, "wardend_sandboxes %u\n", live);
	metric(b, "wardend_pool_ready", "gauge", "Sandboxes waiting in a pool.");
	for (size_t i = 0; i < wd.n_pools; i++) {
		evbuffer_add_printf(b, "wardend_pool_ready{policy=\"");
		label(b, wd.pools[i].policy);
		evbuffer_add_printf(b, "\"} %u\n", wd.pools[i].ready);
	}
	metric(b, "wardend_creates_total", "counter", "Sandboxes created.");
	evbuffer_add_printf(b, "wardend_creates_total{source=\"fresh\"} %" PRIu64 "\n",
	                    wd.created_fresh);
	evbuffer_add_printf(b, "wardend_creates_total{source=\"pool\"} %" PRIu64 "\n",
	                    wd.created_pool);
	metric(b, "wardend_create_seconds_total", "counter",
	       "Daemon time spent on creates (divide by wardend_creates_total).");
	evbuffer_add_printf(b, "wardend_create_seconds_total{source=\"fresh\"} %.6f\n",
	                    wd.fresh_create_seconds);
	evbuffer_add_printf(b, "wardend_create_seconds_total{source=\"pool\"} %.6f\n",
	                    wd.pool_create_seconds);
	metric(b, "wardend_create_failures_total", "counter", "Creates that failed.");
	evbuffer_add_printf(b, "wardend_create_failures_total %" PRIu64 "\n", wd.create_failures);
	metric(b, "wardend_sandboxes_ended_total", "counter", "Sandboxes that ended.");
	evbuffer_add_printf(b, "wardend_sandboxes_ended_total %" PRIu64 "\n", wd.destroyed);
	metric(b, "wardend_sandboxes_expired_total", "counter", "Sandboxes ended by their TTL.");
	evbuffer_add_printf(b, "wardend_sandboxes_expired_total %" PRIu64 "\n", wd.expired);
	metric(b, "wardend_execs_total", "counter", "Commands executed.");
	evbuffer_add_printf(b, "wardend_execs_total %" PRIu64 "\n", wd.execs);
	metric(b, "wardend_http_responses_total", "counter", "HTTP responses by status class.");
	for (int i = 2; i <= 5; i++)
		evbuffer_add_printf(b, "wardend_http_responses_total{class=\"%dxx\"} %" PRIu64 "\n",
		                    i, wd.requests[i]);

	/* Per sandbox, from each supervisor's stats. */
	json_t *all = json_array();
	for (struct sandbox *sb = wd.sandboxes; sb; sb = sb->next) {
		if (sb->pool || sb->destroying || (c->owner[0] && !streq(sb->owner, c->owner)))
			continue;
		json_t *r = sandbox_request(sb, json_pack("{s:s}", "op", "stats"), NULL);
		json_t *s = json_object_get(r, "stats");
		if (json_is_object(s))
			json_array_append_new(all, json_pack("{s:s, s:s, s:O}", "id", sb->id,
			                                     "policy", sb->policy, "stats", s));
		json_decref(r);
	}
	for (size_t m = 0; m < ARRAY_SIZE(sandbox_metrics); m++) {
		metric(b, sandbox_metrics[m].name, sandbox_metrics[m].type,
		       sandbox_metrics[m].help);
		size_t i;
		json_t *s;
		json_array_foreach(all, i, s)
		{
			json_t *v =
			    json_object_get(json_object_get(s, "stats"), sandbox_metrics[m].key);
			if (!v)
				continue;
			double x =
			    json_is_boolean(v) ? (json_is_true(v) ? 1 : 0) : json_number_value(v);
			evbuffer_add_printf(b, "%s{sandbox=\"%s\",policy=\"",
			                    sandbox_metrics[m].name,
			                    json_string_value(json_object_get(s, "id")));
			label(b, json_string_value(json_object_get(s, "policy")));
			evbuffer_add_printf(b, "\"} %.9g\n", x * sandbox_metrics[m].scale);
		}
	}
	json_decref(all);
	reply_text(c->req, 200, "text/plain; version=0.0.4", b);
	evbuffer_free(b);
}

/* ---- sandboxes --------------------------------------------------------------------- */

static void create(struct call *c)
{
	struct api_create req;
	struct api_error e = {0};
	if (api_parse_create(c->body, c->body_len, wd.max_ttl, &req, &e) < 0)
		return reply_api_error(c->req, &e);
	sandbox_create(c->req, &req, c->owner, c->quota, c->t0);
	api_create_clear(&req);
}

static int by_created(const void *a, const void *b)
{
	const struct sandbox *x = *(struct sandbox *const *)a, *y = *(struct sandbox *const *)b;
	if (x->created_at != y->created_at)
		return x->created_at < y->created_at ? -1 : 1;
	return strcmp(x->id, y->id);
}

static void list(struct call *c)
{
	struct api_label_filter f;
	struct api_error e = {0};
	if (api_list_query(&c->q, &f, &e) < 0)
		return reply_api_error(c->req, &e);
	size_t n = 0, cap = 16;
	struct sandbox **v = xmalloc(cap * sizeof(*v));
	for (struct sandbox *sb = wd.sandboxes; sb; sb = sb->next) {
		if (sb->pool || sb->destroying || (c->owner[0] && !streq(sb->owner, c->owner)) ||
		    !api_labels_match(sb->labels, &f))
			continue;
		if (n == cap)
			v = xrealloc(v, (cap *= 2) * sizeof(*v));
		v[n++] = sb;
	}
	qsort(v, n, sizeof(*v), by_created);
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, sandbox_json(v[i]));
	free(v);
	reply_json(c->req, 200, json_pack("{s:o}", "sandboxes", arr));
}

static void pause_resume(struct call *c, struct sandbox *sb, bool pause)
{
	_cleanup_error_ struct warden_error *e = NULL;
	if (sandbox_pause(sb, pause, &e) < 0)
		return reply_error(c->req, 409, "pause_failed", "%s", warden_error_text(e));
	reply_json(c->req, 200, sandbox_json(sb));
}

static void stats(struct call *c, struct sandbox *sb)
{
	_cleanup_error_ struct warden_error *e = NULL;
	json_t *r = sandbox_request(sb, json_pack("{s:s}", "op", "stats"), &e);
	if (!r)
		return reply_error(c->req, 409, "stats_failed", "%s", warden_error_text(e));
	json_t *s = json_object_get(r, "stats");
	reply_json(c->req, 200, json_is_object(s) ? json_incref(s) : json_object());
	json_decref(r);
}

void api_dispatch(struct call *c)
{
	struct sandbox *sb = NULL;
	switch (c->m.route) {
	case R_HEALTHZ:
		return healthz(c);
	case R_METRICS:
		return metrics(c);
	case R_CREATE:
		return create(c);
	case R_LIST:
		return list(c);
	default:
		break;
	}
	if (!(sb = call_sandbox(c)))
		return;
	switch (c->m.route) {
	case R_GET:
		return reply_json(c->req, 200, sandbox_json(sb));
	case R_DELETE:
		return sandbox_destroy(sb, c->req, "DELETE");
	case R_EXEC:
		return api_exec(c, sb);
	case R_EXEC_KILL:
		return api_exec_kill(c, sb);
	case R_FILE_GET:
	case R_FILE_PUT:
	case R_FILE_DELETE:
	case R_FILE_LIST:
	case R_FILE_STAT:
	case R_FILE_MKDIR:
		return api_files(c, sb);
	case R_PAUSE:
	case R_RESUME:
		return pause_resume(c, sb, c->m.route == R_PAUSE);
	case R_STATS:
		return stats(c, sb);
	case R_EVENTS:
		return api_events(c, sb);
	case R_LOGS:
		return reply_json(c->req, 200,
		                  json_pack("{s:o}", "execs", state_exec_list(sb->id)));
	default:
		return reply_error(c->req, 500, "internal", "route %d has no handler", c->m.route);
	}
}
