/* A test double of NVML (libnvidia-ml.so.1) for tests/integration/test_gpu_fake.py: it
 * lets warden's GPU logic (grant resolution, locks, the watcher's attribution, the
 * gpu.memory guardrail, the scrub's orchestration) run on machines without a GPU. It
 * measures nothing and its numbers are whatever the test sets:
 *
 *   FAKE_NVML_GPUS   "UUID:MINOR,UUID:MINOR": the GPUs, in index order
 *   FAKE_NVML_PROCS  a file of "PID BYTES" lines: the compute processes (on every GPU)
 *   FAKE_NVML_XID    an Xid error code: each process that waits on an event set gets one
 *                    such event, once
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_GPUS 8

struct gpu {
	char uuid[96];
	unsigned minor;
};
static struct gpu gpus[MAX_GPUS];
static unsigned n_gpus;

int nvmlInit_v2(void);
int nvmlShutdown(void);
const char *nvmlErrorString(int r);
int nvmlSystemGetDriverVersion(char *buf, unsigned len);
int nvmlDeviceGetCount_v2(unsigned *n);
int nvmlDeviceGetHandleByIndex_v2(unsigned i, void **d);
int nvmlDeviceGetHandleByUUID(const char *uuid, void **d);
int nvmlDeviceGetUUID(void *d, char *buf, unsigned len);
int nvmlDeviceGetName(void *d, char *buf, unsigned len);
int nvmlDeviceGetMinorNumber(void *d, unsigned *minor);
int nvmlDeviceGetMemoryInfo(void *d, unsigned long long *mem);
int nvmlDeviceGetUtilizationRates(void *d, unsigned *util);
int nvmlDeviceGetComputeRunningProcesses_v3(void *d, unsigned *count, void *out);
int nvmlEventSetCreate(void **set);
int nvmlDeviceRegisterEvents(void *d, unsigned long long types, void *set);
int nvmlEventSetWait_v2(void *set, void *data, unsigned timeout_ms);

int nvmlInit_v2(void)
{
	const char *env = getenv("FAKE_NVML_GPUS");
	char *copy = strdup(env ? env : ""), *save = NULL;
	n_gpus = 0;
	for (char *t = strtok_r(copy, ",", &save); t && n_gpus < MAX_GPUS;
	     t = strtok_r(NULL, ",", &save)) {
		char *colon = strrchr(t, ':');
		if (!colon)
			continue;
		*colon = '\0';
		snprintf(gpus[n_gpus].uuid, sizeof(gpus[n_gpus].uuid), "%s", t);
		gpus[n_gpus++].minor = (unsigned)atoi(colon + 1);
	}
	free(copy);
	return 0;
}

int nvmlShutdown(void)
{
	return 0;
}

const char *nvmlErrorString(int r)
{
	return r == 13 ? "Not Found (fake)" : "Unknown Error (fake)";
}

int nvmlSystemGetDriverVersion(char *buf, unsigned len)
{
	snprintf(buf, len, "fake-0.0");
	return 0;
}

int nvmlDeviceGetCount_v2(unsigned *n)
{
	*n = n_gpus;
	return 0;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned i, void **d)
{
	if (i >= n_gpus)
		return 2;
	*d = &gpus[i];
	return 0;
}

int nvmlDeviceGetHandleByUUID(const char *uuid, void **d)
{
	for (unsigned i = 0; i < n_gpus; i++)
		if (!strcmp(gpus[i].uuid, uuid)) {
			*d = &gpus[i];
			return 0;
		}
	return 13;
}

int nvmlDeviceGetUUID(void *d, char *buf, unsigned len)
{
	snprintf(buf, len, "%s", ((struct gpu *)d)->uuid);
	return 0;
}

int nvmlDeviceGetName(void *d, char *buf, unsigned len)
{
	(void)d;
	snprintf(buf, len, "Fake GPU (test double)");
	return 0;
}

int nvmlDeviceGetMinorNumber(void *d, unsigned *minor)
{
	*minor = ((struct gpu *)d)->minor;
	return 0;
}

int nvmlDeviceGetMemoryInfo(void *d, unsigned long long *mem)
{
	(void)d;
	mem[0] = 64ULL << 20; /* total, free, used */
	mem[1] = 64ULL << 20;
	mem[2] = 0;
	return 0;
}

int nvmlDeviceGetUtilizationRates(void *d, unsigned *util)
{
	(void)d;
	util[0] = util[1] = 0;
	return 0;
}

struct proc {
	unsigned pid;
	unsigned long long used;
	unsigned gi, ci;
};

int nvmlDeviceGetComputeRunningProcesses_v3(void *d, unsigned *count, void *out)
{
	(void)d;
	const char *path = getenv("FAKE_NVML_PROCS");
	FILE *f = path ? fopen(path, "re") : NULL;
	unsigned n = 0, max = *count;
	struct proc *p = out;
	unsigned pid;
	unsigned long long used;
	while (f && fscanf(f, "%u %llu", &pid, &used) == 2 && n < max)
		p[n++] = (struct proc){pid, used, 0xffffffffu, 0xffffffffu};
	if (f)
		fclose(f);
	*count = n;
	return 0;
}

static int event_set;

int nvmlEventSetCreate(void **set)
{
	*set = &event_set;
	return 0;
}

int nvmlDeviceRegisterEvents(void *d, unsigned long long types, void *set)
{
	(void)d;
	(void)types;
	(void)set;
	return 0;
}

struct event {
	void *device;
	unsigned long long type, data;
	unsigned gi, ci;
};

int nvmlEventSetWait_v2(void *set, void *data, unsigned timeout_ms)
{
	static int delivered;
	const char *xid = getenv("FAKE_NVML_XID");
	(void)set;
	if (xid && !delivered) {
		delivered = 1;
		*(struct event *)data = (struct event){&gpus[0], 0x8, strtoull(xid, NULL, 10),
		                                       0xffffffffu, 0xffffffffu};
		return 0;
	}
	usleep(timeout_ms * 1000);
	return 10; /* NVML_ERROR_TIMEOUT */
}
