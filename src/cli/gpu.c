/* gpu.c: `warden gpu list | scrub | leakcheck | bandwidth`.
 *
 * Sections: naming a GPU (index or UUID -> UUID, through the helper's list); the verbs.
 *
 * The work is warden-gpu's (src/lib/gpu/gpu.h says why it is a process of its own); this
 * file takes the device's grant lock around it, so that a scrub or a leak check never
 * runs under a live sandbox, and records scrubs in the audit log.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "../lib/audit/audit.h"
#include "../lib/gpu/gpu.h"

#include <inttypes.h>

static const char usage[] =
    "usage: warden gpu list\n"
    "       warden gpu scrub INDEX|UUID [--audit-log FILE] [--audit-key FILE]\n"
    "       warden gpu leakcheck [INDEX|UUID]\n"
    "       warden gpu bandwidth [INDEX|UUID]\n"
    "\n"
    "list       the host's NVIDIA GPUs and MIG instances, as JSON\n"
    "scrub      zero a device's free memory and verify it (clears a pending scrub that\n"
    "           blocks new grants); recorded in the audit log\n"
    "leakcheck  does device memory leak between processes here? A writer fills most of\n"
    "           it with a tagged pattern and exits; a fresh listener counts the tagged\n"
    "           words it can read. Once without and once with warden's scrub between\n"
    "           them, after a negative control (residue seen within one process).\n"
    "bandwidth  cuMemsetD8 throughput of the device, to compare the scrub with\n";

/* ---- naming ---------------------------------------------------------------------------- */

static int helper(char *const *args, json_t **ret)
{
	struct warden_error *e = NULL;
	const char *why = NULL;
	if (!warden_gpu_driver_present(&why))
		return cli_failf("gpu: %s", why);
	if (warden_gpu_helper_run(args, ret, &e) < 0)
		return warden_error_wrap(&e, "gpu"), cli_fail(e);
	return 0;
}

/* The UUID of a GPU or MIG instance named by index or UUID, into uuid. */
static int resolve(const char *spec, char *uuid, size_t len)
{
	json_auto_t *inv = NULL;
	char *args[] = {"list", NULL};
	const char *why = NULL;
	size_t i, j;
	json_t *g, *m;
	if (!warden_gpu_spec_valid(spec, &why) || streq(spec, "all"))
		return cli_failf("gpu: \"%s\": %s", spec,
		                 streq(spec, "all") ? "name one device" : why);
	int r = helper(args, &inv);
	if (r)
		return r;
	json_array_foreach(json_object_get(inv, "gpus"), i, g)
	{
		char idx[16];
		const char *u = json_string_value(json_object_get(g, "uuid"));
		snprintf(idx, sizeof(idx), "%" JSON_INTEGER_FORMAT,
		         json_integer_value(json_object_get(g, "index")));
		if (u && (streq(spec, idx) || streq(spec, u))) {
			snprintf(uuid, len, "%s", u);
			return 0;
		}
		json_array_foreach(json_object_get(g, "mig"), j, m)
		{
			u = json_string_value(json_object_get(m, "uuid"));
			if (u && streq(spec, u)) {
				snprintf(uuid, len, "%s", u);
				return 0;
			}
		}
	}
	return cli_failf("gpu: no GPU \"%s\" on this host (see 'warden gpu list')", spec);
}

/* ---- verbs ----------------------------------------------------------------------------- */

static int print(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
	puts(s ? s : "{}");
	free(s);
	return 0;
}

static int gpu_list(void)
{
	json_auto_t *inv = NULL;
	char *args[] = {"list", NULL};
	int r = helper(args, &inv);
	return r ? r : print(inv);
}

static void audit_scrub(const char *log, const char *key, json_t *rec)
{
	struct warden_audit_opts ao = {.path = log, .key_path = key};
	struct strv notices = {0};
	struct warden_error *e = NULL;
	struct warden_audit *a = warden_audit_open(&ao, &notices, &e);
	strv_clear(&notices);
	json_t *full = json_pack("{s:s, s:s}", "kind", "gpu.scrub", "by", "warden gpu scrub");
	json_object_update(full, rec);
	if (!a || warden_audit_append(a, full, &e) < 0 || warden_audit_commit(a, &e) < 0) {
		cli_warn("audit: %s", warden_error_text(e));
		warden_error_free(e);
	}
	json_decref(full);
	warden_audit_close(a);
}

static int gpu_scrub(int argc, char **argv)
{
	const char *log = NULL, *key = NULL, *spec = NULL;
	char uuid[128];
	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "--audit-log") && i + 1 < argc)
			log = argv[++i];
		else if (streq(argv[i], "--audit-key") && i + 1 < argc)
			key = argv[++i];
		else if (!spec && argv[i][0] != '-')
			spec = argv[i];
		else
			return cli_failf("gpu scrub: unexpected \"%s\" (see 'warden gpu --help')",
			                 argv[i]);
	}
	if (!spec)
		return cli_failf("gpu scrub: name the device (INDEX or UUID)");
	int r = resolve(spec, uuid, sizeof(uuid));
	if (r)
		return r;
	/* force: this is what clears a pending scrub; a live sandbox still refuses it. */
	struct warden_gpu_lock lock;
	struct warden_error *e = NULL;
	if (warden_gpu_lock_acquire(uuid, true, true, "warden gpu scrub", &lock, &e) < 0)
		return cli_fail(e);
	json_auto_t *res = NULL;
	char *args[] = {"scrub", uuid, NULL};
	r = warden_gpu_helper_run(args, &res, &e);
	bool ok = r == 0 && json_is_true(json_object_get(res, "verified"));
	warden_gpu_lock_release(&lock, ok);
	json_auto_t *rec =
	    res ? json_incref(res)
	        : json_pack("{s:s, s:s}", "uuid", uuid, "error", warden_error_text(e));
	json_object_set_new(rec, "ok", json_boolean(ok));
	audit_scrub(log, key, rec);
	if (r < 0)
		return warden_error_wrap(&e, "gpu scrub %s", uuid), cli_fail(e);
	print(res);
	return ok ? 0 : cli_failf("gpu scrub %s: a sample read back non-zero", uuid);
}

/* leakcheck and bandwidth: the helper's command on one device, under its exclusive lock. */
static int gpu_locked(const char *verb, const char *spec)
{
	char uuid[128];
	int r = resolve(spec ? spec : "0", uuid, sizeof(uuid));
	if (r)
		return r;
	struct warden_gpu_lock lock;
	struct warden_error *e = NULL;
	if (warden_gpu_lock_acquire(uuid, true, false, verb, &lock, &e) < 0)
		return cli_fail(e);
	json_auto_t *res = NULL;
	char *args[] = {(char *)verb, uuid, NULL};
	r = warden_gpu_helper_run(args, &res, &e);
	/* The last leak check round ends with a scrub; a failed one leaves the marker. */
	warden_gpu_lock_release(&lock, r == 0);
	if (r < 0)
		return warden_error_wrap(&e, "gpu %s %s", verb, uuid), cli_fail(e);
	return print(res);
}

int cmd_gpu(int argc, char **argv)
{
	if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_WARDEN : 0;
	}
	const char *verb = argv[1];
	if (streq(verb, "list") && argc == 2)
		return gpu_list();
	if (streq(verb, "scrub"))
		return gpu_scrub(argc - 1, argv + 1);
	if ((streq(verb, "leakcheck") || streq(verb, "bandwidth")) && argc <= 3)
		return gpu_locked(verb, argc == 3 ? argv[2] : NULL);
	return cli_failf("gpu: unknown command \"%s\" (see 'warden gpu --help')", verb);
}
