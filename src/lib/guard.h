/* guard.h: the guardrail engine (guard.c): rules in, decisions out.
 *
 * The rules are a policy's `guardrails:` (policy.h). The engine is fed events and metric
 * samples and returns the rules that fired with a line of evidence each; acting on them
 * (kill, freeze), recording them and reporting them is the caller's.
 */
#ifndef WARDEN_GUARD_H
#define WARDEN_GUARD_H

#include "policy.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

struct warden_guard_engine {
	const struct warden_guards *rules; /* borrowed */
	bool *fired;                       /* threshold rules already fired */
};

struct warden_guard_hit {
	const struct warden_guard_rule *rule;
	char evidence[320];
};

/* A metric sample; has_* false where the host cannot measure it. */
struct warden_guard_sample {
	uint64_t memory_peak, pids, refused, cpu_ms, wall_ms;
	uint64_t gpu_memory; /* bytes the sandbox's processes hold on its GPUs (NVML) */
	bool has_memory, has_pids, has_refused, has_cpu, has_gpu_memory;
};

void warden_guard_init(struct warden_guard_engine *e, const struct warden_guards *g);
void warden_guard_free(struct warden_guard_engine *e);

/* Each returns how many hits it wrote to hits[0..max). */
size_t warden_guard_on_exec(struct warden_guard_engine *e, const char *path,
                            struct warden_guard_hit *hits, size_t max);
/* addr in network byte order (4 bytes for AF_INET, 16 for AF_INET6). */
size_t warden_guard_on_connect(struct warden_guard_engine *e, int family, const uint8_t *addr,
                               uint16_t port, struct warden_guard_hit *hits, size_t max);
size_t warden_guard_on_sample(struct warden_guard_engine *e, const struct warden_guard_sample *s,
                              struct warden_guard_hit *hits, size_t max);

#endif
