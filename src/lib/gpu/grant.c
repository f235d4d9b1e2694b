/* grant.c: a policy's `gpu:` resolved on the host into device nodes, driver files and
 * the list of GPUs to lock and scrub.
 *
 * Sections: the inventory (from the helper, which asks NVML); choosing the GPUs a policy
 * names; their nodes (MIG capability nodes included); the driver's user-space files,
 * found the way NVIDIA's container toolkit finds them (`ldconfig -p`, then the driver's
 * own directories for its tools).
 */
#define _GNU_SOURCE
#include "gpu.h"

#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <libgen.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

extern char **environ;

/* ---- choosing -------------------------------------------------------------------------- */

static void add_gpu(struct warden_plan *plan, const char *uuid, const char *parent, unsigned index,
                    unsigned minor)
{
	for (size_t i = 0; i < plan->n_gpus; i++)
		if (streq(plan->gpus[i].uuid, uuid))
			return;
	plan->gpus = xrealloc(plan->gpus, (plan->n_gpus + 1) * sizeof(*plan->gpus));
	plan->gpus[plan->n_gpus++] = (struct warden_plan_gpu){
	    .uuid = xstrdup(uuid),
	    .parent_uuid = parent ? xstrdup(parent) : NULL,
	    .index = index,
	    .minor = minor,
	};
}

/* The capability nodes of MIG instance gi/ci of the GPU with this minor, from the
 * driver's table (/proc/driver/nvidia-caps/mig-minors: "gpu0/gi1/access 12"). */
static int add_mig_caps(struct warden_plan *plan, unsigned minor, int gi, int ci,
                        struct warden_error **err)
{
	char want[2][64], line[128];
	snprintf(want[0], sizeof(want[0]), "gpu%u/gi%d/access", minor, gi);
	snprintf(want[1], sizeof(want[1]), "gpu%u/gi%d/ci%d/access", minor, gi, ci);
	_cleanup_fclose_ FILE *f = fopen("/proc/driver/nvidia-caps/mig-minors", "re");
	if (!f)
		return warden_error_set(
		    err, errno, "gpu: MIG capabilities (/proc/driver/nvidia-caps/mig-minors)");
	int found = 0;
	while (fgets(line, sizeof(line), f)) {
		char name[96];
		unsigned cap;
		if (sscanf(line, "%95s %u", name, &cap) != 2)
			continue;
		if (!streq(name, want[0]) && !streq(name, want[1]))
			continue;
		char path[64];
		snprintf(path, sizeof(path), "/dev/nvidia-caps/nvidia-cap%u", cap);
		if (warden_plan_add_device(plan, "gpu (MIG)", path, WARDEN_DEV_READ, err) < 0)
			return -1;
		found++;
	}
	if (found != 2)
		return warden_error_set(err, 0, "gpu: no capability nodes for MIG instance %s/%s",
		                        want[0], want[1]);
	return 0;
}

static bool gpu_matches(json_t *g, const char *spec)
{
	char idx[16];
	snprintf(idx, sizeof(idx), "%" JSON_INTEGER_FORMAT,
	         json_integer_value(json_object_get(g, "index")));
	return streq(spec, "all") || streq(spec, idx) ||
	       streq(spec, json_string_value(json_object_get(g, "uuid")) ?: "");
}

static char *known_gpus(json_t *gpus)
{
	struct strv s = {0};
	size_t i;
	json_t *g;
	json_array_foreach(gpus, i, g)
	{
		strv_push_take(&s, xasprintf("%" JSON_INTEGER_FORMAT " %s",
		                             json_integer_value(json_object_get(g, "index")),
		                             json_string_value(json_object_get(g, "uuid")) ?: "?"));
	}
	size_t len = 1;
	for (i = 0; i < s.n; i++)
		len += strlen(s.v[i]) + 2;
	char *out = xcalloc(1, len + 8);
	for (i = 0; i < s.n; i++)
		strcat(strcat(out, i ? ", " : ""), s.v[i]);
	if (!s.n)
		strcpy(out, "none");
	strv_clear(&s);
	return out;
}

/* One gpu.devices entry: whole GPUs by index or UUID, or a MIG instance by its UUID. */
static int choose(struct warden_plan *plan, json_t *gpus, const char *spec,
                  struct warden_error **err)
{
	size_t i, j;
	json_t *g, *m;
	bool found = false;
	json_array_foreach(gpus, i, g)
	{
		unsigned index = (unsigned)json_integer_value(json_object_get(g, "index"));
		unsigned minor = (unsigned)json_integer_value(json_object_get(g, "minor"));
		const char *uuid = json_string_value(json_object_get(g, "uuid"));
		if (!uuid)
			continue;
		if (gpu_matches(g, spec)) {
			add_gpu(plan, uuid, NULL, index, minor);
			found = true;
			continue;
		}
		json_array_foreach(json_object_get(g, "mig"), j, m)
		{
			const char *mu = json_string_value(json_object_get(m, "uuid"));
			if (!mu || !streq(mu, spec))
				continue;
			if (add_mig_caps(
			        plan, minor, (int)json_integer_value(json_object_get(m, "gi")),
			        (int)json_integer_value(json_object_get(m, "ci")), err) < 0)
				return -1;
			add_gpu(plan, mu, uuid, index, minor);
			found = true;
		}
	}
	if (!found) {
		_cleanup_free_ char *known = known_gpus(gpus);
		return warden_error_set(
		    err, 0, "gpu.devices: no GPU \"%s\" on this host (GPUs: %s)", spec, known);
	}
	return 0;
}

/* ---- nodes ----------------------------------------------------------------------------- */

static int add_nodes(struct warden_plan *plan, struct warden_error **err)
{
	const unsigned rw = WARDEN_DEV_READ | WARDEN_DEV_WRITE;
	struct stat st;
	if (warden_plan_add_device(plan, "gpu", "/dev/nvidiactl", rw, err) < 0)
		return -1;
	if (stat("/dev/nvidia-uvm", &st) == 0) {
		if (warden_plan_add_device(plan, "gpu", "/dev/nvidia-uvm", rw, err) < 0)
			return -1;
	} else {
		strv_push(&plan->warnings, "gpu: /dev/nvidia-uvm is missing (the nvidia-uvm module "
		                           "is not loaded): CUDA programs will fail inside");
	}
	if (plan->policy->gpu.uvm_tools &&
	    warden_plan_add_device(plan, "gpu.uvm_tools", "/dev/nvidia-uvm-tools", rw, err) < 0)
		return -1;
	for (size_t i = 0; i < plan->n_gpus; i++) {
		char path[32];
		snprintf(path, sizeof(path), "/dev/nvidia%u", plan->gpus[i].minor);
		if (warden_plan_add_device(plan, "gpu", path, rw, err) < 0)
			return -1;
	}
	return 0;
}

/* ---- driver files ---------------------------------------------------------------------- */

/* The driver's libraries a compute or monitoring program loads (the toolkit's "compute"
 * and "utility" sets). */
static const char *const driver_libs[] = {
    "libcuda.so",           "libcudadebugger.so",          "libnvidia-ml.so",
    "libnvidia-cfg.so",     "libnvidia-ptxjitcompiler.so", "libnvidia-nvvm.so",
    "libnvidia-gpucomp.so", "libnvidia-allocator.so",
};
static const char *const driver_bins[] = {"/usr/bin/nvidia-smi", "/usr/local/bin/nvidia-smi",
                                          "/usr/local/nvidia/bin/nvidia-smi"};

/* A file's path with its directory resolved (/lib -> /usr/lib on merged-/usr hosts), so
 * that a read-only bind of the directory is recognised as already showing it. */
static char *canonical_dir(const char *path)
{
	_cleanup_free_ char *d = xstrdup(path), *b = xstrdup(path);
	char real[PATH_MAX];
	if (!realpath(dirname(d), real))
		return NULL;
	return xasprintf("%s/%s", real, basename(b));
}

static bool is_driver_lib(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(driver_libs); i++) {
		size_t n = strlen(driver_libs[i]);
		if (!strncmp(name, driver_libs[i], n) && name[n] == '.')
			return true;
	}
	return false;
}

/* `ldconfig -p`: "\tlibcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1" */
static int add_libs(struct warden_plan *plan)
{
	static const char *const ldconfig[] = {"/sbin/ldconfig", "/usr/sbin/ldconfig"};
	const char *prog = access(ldconfig[0], X_OK) == 0 ? ldconfig[0] : ldconfig[1];
	char *argv[] = {(char *)prog, "-p", NULL};
	int pipefd[2], found = 0;
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return 0;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
	pid_t pid;
	int r = posix_spawn(&pid, prog, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	_cleanup_fclose_ FILE *f = r == 0 ? fdopen(pipefd[0], "re") : NULL;
	if (!f)
		close(pipefd[0]);
	char line[1024];
	while (f && fgets(line, sizeof(line), f)) {
		char name[256], arch[64], path[PATH_MAX];
		if (sscanf(line, " %255s (%63[^)]) => %4095s", name, arch, path) != 3)
			continue;
		if (!is_driver_lib(name) || (!strstr(arch, "x86-64") && !strstr(arch, "AArch64")))
			continue;
		_cleanup_free_ char *c = canonical_dir(path);
		if (c) {
			warden_plan_add_host_file(plan, c);
			found++;
		}
	}
	if (r == 0)
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	return found;
}

int warden_gpu_plan(struct warden_plan *plan, struct warden_error **err)
{
	const struct warden_gpu *g = &plan->policy->gpu;
	const char *why = NULL;
	if (!warden_gpu_driver_present(&why))
		return warden_error_set(err, 0, "gpu: %s", why);
	json_auto_t *inv = NULL;
	char *args[] = {"list", NULL};
	if (warden_gpu_helper_run(args, &inv, err) < 0)
		return warden_error_wrap(err, "gpu");
	json_t *gpus = json_object_get(inv, "gpus");
	for (size_t i = 0; i < g->devices.n; i++)
		if (choose(plan, gpus, g->devices.v[i], err) < 0)
			return -1;
	if (add_nodes(plan, err) < 0)
		return -1;
	if (!add_libs(plan))
		strv_push(&plan->warnings,
		          "gpu: `ldconfig -p` lists none of the driver's libraries "
		          "(libcuda.so, libnvidia-ml.so): programs inside may not "
		          "find them");
	for (size_t i = 0; i < ARRAY_SIZE(driver_bins); i++)
		if (access(driver_bins[i], X_OK) == 0) {
			_cleanup_free_ char *c = canonical_dir(driver_bins[i]);
			if (c)
				warden_plan_add_host_file(plan, c);
			break;
		}
	return 0;
}
