/* scrub.c: clearing a device's free memory after a sandbox, and the memset bandwidth it
 * is compared with (warden-gpu scrub, warden-gpu bandwidth).
 *
 * Sections: waiting for the device to be idle; the scrub; the bandwidth.
 *
 * Why this way: CUDA makes no promise that memory handed to a new allocation is cleared,
 * so whatever a sandbox left in device memory could reach the next tenant. The scrub
 * allocates every free byte in 1 GiB chunks (one huge allocation can fail where chunks
 * succeed, and a failure must not leave most memory unscrubbed), zeroes each with
 * cuMemsetD8, and reads back samples of every chunk: a scrub counts as done only when
 * every sample reads zero.
 */
#define _GNU_SOURCE
#include "driver.h"

#include <signal.h>
#include <time.h>

#define SAMPLES       16
#define SAMPLE_BYTES  (64 << 10)
#define MAX_PROCESSES 64

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A listed compute process that is the sandbox's: in its cgroup, or gone from /proc (a
 * process that exited, whose context the driver has not torn down yet). */
static bool is_ours(pid_t pid, const char *id)
{
	if (kill(pid, 0) < 0 && errno == ESRCH)
		return true;
	return id && nvml_pid_in_sandbox(pid, id);
}

/* The sandbox's processes are gone, but the driver tears their contexts down on its own
 * time, and memory still held by a context is not free, so a scrub would miss it: wait
 * until the driver lists no compute process of the sandbox (id; NULL: only exited ones).
 * Other live processes on the device (a shared grant, the host's own) are counted in
 * *ret_foreign and left alone: the scrub takes only free memory. */
static int wait_idle(const char *uuid, const char *id, unsigned wait_ms, uint64_t *ret_foreign,
                     struct warden_error **err)
{
	struct nvml n;
	struct nvml_process procs[MAX_PROCESSES];
	nvml_device d;
	if (nvml_open(&n, err) < 0)
		return -1;
	int r = n.by_uuid(uuid, &d);
	if (r != 0) {
		warden_error_set(err, ENODEV, "%s: %s", uuid, n.error_string(r));
		nvml_close(&n);
		return -1;
	}
	double end = now_s() + wait_ms / 1000.0;
	int count, ours = 0;
	pid_t first = 0;
	for (;;) {
		count = nvml_processes(&n, d, procs, MAX_PROCESSES, err);
		ours = 0;
		for (int i = 0; i < count; i++)
			if (is_ours((pid_t)procs[i].pid, id) && !ours++)
				first = (pid_t)procs[i].pid;
		if (count < 0 || !ours || now_s() >= end)
			break;
		usleep(50000);
	}
	nvml_close(&n);
	if (count < 0)
		return -1;
	if (ours)
		return warden_error_set(err, EBUSY,
		                        "%s: %d compute process(es) of the sandbox still on the "
		                        "device after %u ms (pid %d)",
		                        uuid, ours, wait_ms, (int)first);
	*ret_foreign = (uint64_t)(count - ours);
	return 0;
}

static bool all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static int verify(struct cuda *c, const struct cuda_chunks *ch, struct scrub_result *ret,
                  struct warden_error **err)
{
	_cleanup_free_ unsigned char *buf = xmalloc(SAMPLE_BYTES);
	ret->verified = true;
	for (size_t i = 0; i < ch->n; i++) {
		size_t span = ch->size[i] > SAMPLE_BYTES ? ch->size[i] - SAMPLE_BYTES : 0;
		size_t len = ch->size[i] < SAMPLE_BYTES ? ch->size[i] : SAMPLE_BYTES;
		for (size_t s = 0; s < SAMPLES; s++) {
			/* first and last bytes of the chunk included */
			size_t off = span * s / (SAMPLES - 1);
			int r = c->dtoh(buf, ch->ptr[i] + off, len);
			if (r != 0)
				return cuda_fail(c, r, "reading back", err);
			ret->samples++;
			if (!all_zero(buf, len))
				ret->verified = false;
		}
	}
	return 0;
}

int gpu_scrub(const char *uuid, const char *id, unsigned wait_ms, struct scrub_result *ret,
              struct warden_error **err)
{
	struct cuda c;
	struct cuda_chunks ch;
	size_t free_b = 0, total = 0;
	memset(ret, 0, sizeof(*ret));
	if (wait_idle(uuid, id, wait_ms, &ret->foreign, err) < 0)
		return -1;
	double t0 = now_s();
	if (cuda_open(&c, uuid, err) < 0)
		return -1;
	int r = c.mem_info(&free_b, &total);
	ret->free_before = free_b;
	ret->total = total;
	if (r != 0 || cuda_alloc_all(&c, 0, &ch, err) < 0) {
		if (r != 0)
			cuda_fail(&c, r, "cuMemGetInfo", err);
		cuda_close(&c);
		return -1;
	}
	double t1 = now_s();
	for (size_t i = 0; r == 0 && i < ch.n; i++)
		r = c.memset8(ch.ptr[i], 0, ch.size[i]);
	if (r == 0)
		r = c.ctx_sync();
	ret->memset_seconds = now_s() - t1;
	int v = r == 0 ? verify(&c, &ch, ret, err) : cuda_fail(&c, r, "cuMemsetD8", err);
	ret->bytes = ch.bytes;
	ret->chunks = ch.n;
	cuda_free_all(&c, &ch);
	cuda_close(&c);
	ret->seconds = now_s() - t0;
	return v;
}

int gpu_memset_bandwidth(const char *uuid, uint64_t bytes, double *ret_gib_s,
                         struct warden_error **err)
{
	struct cuda c;
	cu_ptr p;
	const int rounds = 10;
	if (cuda_open(&c, uuid, err) < 0)
		return -1;
	int r = c.alloc(&p, bytes);
	if (r != 0) {
		cuda_fail(&c, r, "cuMemAlloc", err);
		cuda_close(&c);
		return -1;
	}
	r = c.memset8(p, 0, bytes); /* warm up */
	if (r == 0)
		r = c.ctx_sync();
	double t0 = now_s();
	for (int i = 0; r == 0 && i < rounds; i++)
		r = c.memset8(p, (unsigned char)i, bytes);
	if (r == 0)
		r = c.ctx_sync();
	double dt = now_s() - t0;
	c.free(p);
	if (r != 0) {
		cuda_fail(&c, r, "cuMemsetD8", err);
		cuda_close(&c);
		return -1;
	}
	cuda_close(&c);
	*ret_gib_s = (double)bytes * rounds / (double)(1ULL << 30) / dt;
	return 0;
}
