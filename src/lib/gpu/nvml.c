/* nvml.c: NVML (libnvidia-ml.so.1) through dlopen(), for warden-gpu.
 *
 * Sections: loading; compute processes and the sandbox they belong to.
 */
#define _GNU_SOURCE
#include "driver.h"

#include <dlfcn.h>
#include <fcntl.h>

struct sym {
	const char *name;
	size_t offset;
	bool optional;
};

#define SYM(field, name)                                                                           \
	{                                                                                          \
		name, offsetof(struct nvml, field), false                                          \
	}
#define SYM_OPT(field, name)                                                                       \
	{                                                                                          \
		name, offsetof(struct nvml, field), true                                           \
	}

static const struct sym syms[] = {
    SYM(init, "nvmlInit_v2"),
    SYM(shutdown, "nvmlShutdown"),
    SYM(error_string, "nvmlErrorString"),
    SYM(driver_version, "nvmlSystemGetDriverVersion"),
    SYM(count, "nvmlDeviceGetCount_v2"),
    SYM(by_index, "nvmlDeviceGetHandleByIndex_v2"),
    SYM(by_uuid, "nvmlDeviceGetHandleByUUID"),
    SYM(uuid, "nvmlDeviceGetUUID"),
    SYM(name, "nvmlDeviceGetName"),
    SYM(minor, "nvmlDeviceGetMinorNumber"),
    SYM(memory, "nvmlDeviceGetMemoryInfo"),
    SYM(utilization, "nvmlDeviceGetUtilizationRates"),
    SYM(processes, "nvmlDeviceGetComputeRunningProcesses_v3"),
    SYM_OPT(mig_mode, "nvmlDeviceGetMigMode"),
    SYM_OPT(mig_max, "nvmlDeviceGetMaxMigDeviceCount"),
    SYM_OPT(mig_by_index, "nvmlDeviceGetMigDeviceHandleByIndex"),
    SYM_OPT(gpu_instance_id, "nvmlDeviceGetGpuInstanceId"),
    SYM_OPT(compute_instance_id, "nvmlDeviceGetComputeInstanceId"),
    SYM_OPT(event_set_create, "nvmlEventSetCreate"),
    SYM_OPT(register_events, "nvmlDeviceRegisterEvents"),
    SYM_OPT(event_set_wait, "nvmlEventSetWait_v2"),
};

int nvml_open(struct nvml *n, struct warden_error **err)
{
	memset(n, 0, sizeof(*n));
	n->lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!n->lib)
		return warden_error_set(err, ENODEV, "NVML is not available: %s", dlerror());
	for (size_t i = 0; i < ARRAY_SIZE(syms); i++) {
		void *f = dlsym(n->lib, syms[i].name);
		/* Drivers older than the _v3 process list have _v2, with the same layout. */
		if (!f && streq(syms[i].name, "nvmlDeviceGetComputeRunningProcesses_v3"))
			f = dlsym(n->lib, "nvmlDeviceGetComputeRunningProcesses_v2");
		if (!f && !syms[i].optional) {
			nvml_close(n);
			return warden_error_set(err, ENODEV, "NVML has no %s (driver too old)",
			                        syms[i].name);
		}
		memcpy((char *)n + syms[i].offset, &f, sizeof(f));
	}
	int r = n->init();
	if (r != 0) {
		const char *msg = n->error_string(r);
		dlclose(n->lib);
		n->lib = NULL;
		return warden_error_set(err, ENODEV, "nvmlInit: %s", msg);
	}
	return 0;
}

void nvml_close(struct nvml *n)
{
	if (!n->lib)
		return;
	if (n->shutdown && n->init)
		n->shutdown();
	dlclose(n->lib);
	n->lib = NULL;
}

int nvml_processes(struct nvml *n, nvml_device d, struct nvml_process *out, unsigned max,
                   struct warden_error **err)
{
	unsigned count = max;
	int r = n->processes(d, &count, out);
	if (r != 0)
		return warden_error_set(err, 0, "nvmlDeviceGetComputeRunningProcesses: %s",
		                        n->error_string(r));
	return (int)count;
}

bool nvml_pid_in_sandbox(pid_t pid, const char *id)
{
	char path[64], buf[4096], a[96], b[96];
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	if (read_file_at(AT_FDCWD, path, buf, sizeof(buf)) <= 0)
		return false;
	snprintf(a, sizeof(a), "/warden/%s\n", id);
	snprintf(b, sizeof(b), "/warden-%s\n", id);
	return strstr(buf, a) || strstr(buf, b);
}
