/* driver.h: the NVIDIA driver's libraries, loaded with dlopen() by warden-gpu (never by
 * warden itself: gpu.h says why). Only the few entry points warden uses are declared, with
 * the ABI of NVML's and CUDA's public headers (no build dependency on either).
 *
 * Sections: NVML (nvml.c); the CUDA driver API (cuda.c); scrub and leak check (scrub.c,
 * leak.c).
 *
 * Error contract: see error.h. A missing library is reported with errno ENODEV and the
 * loader's own message, so that callers can tell "no driver" from "driver failed".
 */
#ifndef WARDEN_GPU_DRIVER_H
#define WARDEN_GPU_DRIVER_H

#include "../error.h"
#include "../util.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- NVML ------------------------------------------------------------------------------ */

typedef void *nvml_device;

struct nvml_memory {
	unsigned long long total, free, used;
};
struct nvml_utilization {
	unsigned int gpu, memory;
};
struct nvml_process { /* nvmlProcessInfo_t (v2/v3 layout) */
	unsigned int pid;
	unsigned long long used;
	unsigned int gpu_instance, compute_instance;
};
struct nvml_event { /* nvmlEventData_t */
	nvml_device device;
	unsigned long long type, data;
	unsigned int gpu_instance, compute_instance;
};

#define NVML_XID_EVENT 0x8ULL /* nvmlEventTypeXidCriticalError */

struct nvml {
	void *lib;
	int (*init)(void);
	int (*shutdown)(void);
	const char *(*error_string)(int);
	int (*driver_version)(char *, unsigned);
	int (*count)(unsigned *);
	int (*by_index)(unsigned, nvml_device *);
	int (*by_uuid)(const char *, nvml_device *);
	int (*uuid)(nvml_device, char *, unsigned);
	int (*name)(nvml_device, char *, unsigned);
	int (*minor)(nvml_device, unsigned *);
	int (*memory)(nvml_device, struct nvml_memory *);
	int (*utilization)(nvml_device, struct nvml_utilization *);
	int (*processes)(nvml_device, unsigned *, struct nvml_process *);
	int (*mig_mode)(nvml_device, unsigned *, unsigned *);
	int (*mig_max)(nvml_device, unsigned *);
	int (*mig_by_index)(nvml_device, unsigned, nvml_device *);
	int (*gpu_instance_id)(nvml_device, unsigned *);
	int (*compute_instance_id)(nvml_device, unsigned *);
	int (*event_set_create)(void **);
	int (*register_events)(nvml_device, unsigned long long, void *);
	int (*event_set_wait)(void *, struct nvml_event *, unsigned);
};

/* dlopen("libnvidia-ml.so.1") and nvmlInit. */
int nvml_open(struct nvml *n, struct warden_error **err);
void nvml_close(struct nvml *n);
/* The compute processes on a device (at most max); returns how many, or -1. */
int nvml_processes(struct nvml *n, nvml_device d, struct nvml_process *out, unsigned max,
                   struct warden_error **err);
/* Whether host process pid belongs to sandbox `id` (its /proc/PID/cgroup names a group
 * .../warden/ID or .../warden-ID). */
bool nvml_pid_in_sandbox(pid_t pid, const char *id);

/* ---- CUDA ------------------------------------------------------------------------------ */

typedef unsigned long long cu_ptr;

struct cuda {
	void *lib;
	int (*init)(unsigned);
	int (*device_get)(int *, int);
	int (*device_name)(char *, int, int);
	int (*ctx_create)(void **, unsigned, int);
	int (*ctx_destroy)(void *);
	int (*ctx_sync)(void);
	int (*mem_info)(size_t *, size_t *);
	int (*alloc)(cu_ptr *, size_t);
	int (*free)(cu_ptr);
	int (*memset8)(cu_ptr, unsigned char, size_t);
	int (*memset32)(cu_ptr, unsigned, size_t);
	int (*dtoh)(void *, cu_ptr, size_t);
	int (*htod)(cu_ptr, const void *, size_t);
	int (*error_string)(int, const char **);
	int (*module_load)(void **, const void *);
	int (*module_function)(void **, void *, const char *);
	int (*launch)(void *, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
	              void *, void **, void **);
	void *ctx;
	int device;
};

#define CUDA_OUT_OF_MEMORY 2

/* dlopen("libcuda.so.1"), cuInit, and a context on the device named by uuid (a GPU or a
 * MIG instance: CUDA_VISIBLE_DEVICES selects it before cuInit, so this must be the
 * process's first use of CUDA). */
int cuda_open(struct cuda *c, const char *uuid, struct warden_error **err);
void cuda_close(struct cuda *c);
/* Set *err from a CUDA result; returns -1. */
int cuda_fail(struct cuda *c, int r, const char *what, struct warden_error **err);

/* Allocations covering (nearly) all free memory: 1 GiB chunks, then halving down to
 * 2 MiB for what is left; never one huge allocation. */
struct cuda_chunks {
	cu_ptr *ptr;
	size_t *size;
	size_t n;
	uint64_t bytes;
};
/* Leave `reserve` bytes unallocated. */
int cuda_alloc_all(struct cuda *c, uint64_t reserve, struct cuda_chunks *ret,
                   struct warden_error **err);
void cuda_free_all(struct cuda *c, struct cuda_chunks *ch);

/* ---- scrub.c, leak.c ------------------------------------------------------------------- */

struct scrub_result {
	uint64_t bytes, chunks, free_before, total;
	uint64_t foreign; /* live compute processes of others on the device meanwhile */
	double seconds, memset_seconds; /* whole scrub; the memsets alone */
	bool verified;
	uint64_t samples;
};
/* Zero all free memory of the device uuid and verify samples of each chunk read back
 * zero. Waits (up to wait_ms) until NVML lists no compute process of sandbox id (NULL:
 * none that has exited) on it first. */
int gpu_scrub(const char *uuid, const char *id, unsigned wait_ms, struct scrub_result *ret,
              struct warden_error **err);
/* cuMemsetD8 bandwidth on one buffer of `bytes`, in GiB/s. */
int gpu_memset_bandwidth(const char *uuid, uint64_t bytes, double *ret_gib_s,
                         struct warden_error **err);

/* The leak check's three parts, each in a fresh process. */
int leak_write(const char *uuid, uint32_t tag, uint64_t *ret_bytes, struct warden_error **err);
int leak_listen(const char *uuid, uint32_t tag, uint64_t *ret_bytes, uint64_t *ret_tagged,
                struct warden_error **err);
int leak_control(const char *uuid, uint32_t tag, uint64_t *ret_bytes, uint64_t *ret_tagged,
                 struct warden_error **err);

#endif
