/* control.c: `warden freeze|thaw|kill|stats ID` and `warden metrics`, through the control
 * sockets of running supervisors (control.h). */
#define _GNU_SOURCE
#include "cli.h"
#include "../lib/control.h"
#include "../lib/util.h"

#include <dirent.h>
#include <jansson.h>

static int request(const char *op, int argc, char **argv)
{
	if (argc != 2 || streq(argv[1], "--help") || streq(argv[1], "-h")) {
		fprintf(argc == 2 ? stdout : stderr, "usage: warden %s SANDBOX-ID\n", op);
		return argc == 2 ? 0 : EXIT_WARDEN;
	}
	struct warden_error *e = NULL;
	json_t *r = warden_control_request(argv[1], op, &e);
	if (!r)
		return cli_fail(e);
	if (!warden_control_ok(r, &e)) {
		warden_error_wrap(&e, "%s %s", op, argv[1]);
		return cli_fail(e);
	}
	if (streq(op, "stats")) {
		char *out =
		    json_dumps(json_object_get(r, "stats"), JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("%s\n", out);
		free(out);
	}
	json_decref(r);
	return 0;
}

int cmd_freeze(int argc, char **argv)
{
	return request("freeze", argc, argv);
}

int cmd_thaw(int argc, char **argv)
{
	return request("thaw", argc, argv);
}

int cmd_kill(int argc, char **argv)
{
	return request("kill", argc, argv);
}

int cmd_stats(int argc, char **argv)
{
	return request("stats", argc, argv);
}

/* ---- metrics ----------------------------------------------------------------------- */

static const struct {
	const char *key, *name, *type, *help;
	double scale;
} metrics[] = {
    {"memory_current", "warden_sandbox_memory_bytes", "gauge", "Memory in use.", 1},
    {"memory_peak", "warden_sandbox_memory_peak_bytes", "gauge", "Peak memory.", 1},
    {"cpu_usec", "warden_sandbox_cpu_seconds_total", "counter", "CPU time.", 1e-6},
    {"pids", "warden_sandbox_pids", "gauge", "Processes and threads.", 1},
    {"syscalls", "warden_sandbox_syscalls_total", "counter", "System calls made.", 1},
    {"refused", "warden_sandbox_refused_syscalls_total", "counter",
     "System calls refused by seccomp or Landlock.", 1},
    {"execs", "warden_sandbox_execs_total", "counter", "Programs executed.", 1},
    {"forks", "warden_sandbox_forks_total", "counter", "Processes forked.", 1},
    {"events", "warden_sandbox_telemetry_events_total", "counter", "Telemetry events.", 1},
    {"drops", "warden_sandbox_telemetry_dropped_total", "counter",
     "Telemetry events lost (ring buffer full).", 1},
    {"wall_ms", "warden_sandbox_uptime_seconds", "gauge", "Seconds since start.", 1e-3},
    {"frozen", "warden_sandbox_frozen", "gauge", "1 while frozen.", 1},
};

/* Label values cannot hold a raw '"', '\\' or newline. */
static void label(const char *s)
{
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			putchar('\\');
		putchar(*s == '\n' ? ' ' : *s);
	}
}

int cmd_metrics(int argc, char **argv)
{
	(void)argv;
	if (argc > 1) {
		fputs(
		    "usage: warden metrics   (Prometheus text format, for the running sandboxes)\n",
		    stdout);
		return streq(argv[1], "--help") || streq(argv[1], "-h") ? 0 : EXIT_WARDEN;
	}
	struct warden_error *e = NULL;
	_cleanup_free_ char *dir = warden_control_dir(false, &e);
	_cleanup_closedir_ DIR *d = dir ? opendir(dir) : NULL;
	json_t *all = json_array();
	struct dirent *de;
	while (d && (de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (len != 16 + 5 || !streq(de->d_name + 16, ".sock"))
			continue;
		_cleanup_free_ char *id = strndup(de->d_name, 16);
		struct warden_error *re = NULL;
		json_t *r = warden_control_request(id, "stats", &re);
		warden_error_free(re);
		json_t *stats = json_object_get(r, "stats");
		if (stats)
			json_array_append(all, stats);
		json_decref(r);
	}
	for (size_t m = 0; m < ARRAY_SIZE(metrics); m++) {
		printf("# HELP %s %s\n# TYPE %s %s\n", metrics[m].name, metrics[m].help,
		       metrics[m].name, metrics[m].type);
		size_t i;
		json_t *s;
		json_array_foreach(all, i, s)
		{
			json_t *v = json_object_get(s, metrics[m].key);
			if (!v)
				continue;
			double x =
			    json_is_boolean(v) ? (json_is_true(v) ? 1 : 0) : json_number_value(v);
			printf("%s{sandbox=\"", metrics[m].name);
			label(json_string_value(json_object_get(s, "sandbox")));
			printf("\",policy=\"");
			label(json_string_value(json_object_get(s, "policy")));
			printf("\"} %.9g\n", x * metrics[m].scale);
		}
	}
	json_decref(all);
	return 0;
}
