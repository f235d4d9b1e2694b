/* tel-internal.h: what the parts of the telemetry module give each other: the kernel's
 * offer (probe.c), the pinned set of programs and maps, opened once per process
 * (loader.c), the pool of rings (pool.c), all used by the per-sandbox side (telemetry.c).
 */
#ifndef WARDEN_TEL_INTERNAL_H
#define WARDEN_TEL_INTERNAL_H

#include "telemetry.h"

#include "bpf/events.h"

#include <linux/bpf.h>

struct btf;

#define TEL_PIN_ROOT  "/sys/fs/bpf/warden"
#define TEL_LOCK_DIR  "/run/warden"
#define TEL_LOCK_FILE TEL_LOCK_DIR "/bpf.lock"

/* What the kernel offers (probe.c). */
struct tel_probe {
	char *core_why;    /* why nothing can run, or NULL */
	uint32_t sources;  /* optional sources the kernel has (WD_SRC_*) */
	bool cgroup_rmdir; /* the cgroup_rmdir tracepoint is there */
	struct btf *btf;   /* the kernel's BTF, for the per-hook checks when loading */
};

void tel_probe_kernel(struct tel_probe *p, bool lsm_hooks);
void tel_probe_clear(struct tel_probe *p);
bool tel_btf_func(const struct btf *btf, const char *name);
int tel_landlock_abi(void);

/* One loaded and pinned set of programs, as this process sees it. Lives until the process
 * exits (the fds are what later attaches use); never freed. */
struct tel_set {
	char *root;            /* the pin root */
	char *dir;             /* <pin root>/<tag> */
	int pcpu_fd;           /* counters, keyed by cgroup id (pcpu is the programs' gate) */
	int shared_fd;         /* ... */
	int slot_of_fd;        /* cgroup id -> its ring's index in the pool */
	int rings_fd;          /* the pool: an array of ring buffers */
	int dead_fd;           /* cgroup ids removed while watched */
	int tasks_fd;          /* task storage: the watched tasks' entries, keyed by pidfd */
	struct wd_slot *slots; /* the pool's sizes and owners, shared by every warden */
	uint32_t sources;
	int ncpus; /* possible CPUs, as the loader found them */
	struct tel_set *next;
};

/* The set for these options: opened from the pins when some process has loaded it,
 * otherwise loaded, attached and pinned under the lock file. Thread-safe. */
struct tel_set *tel_set_get(const struct warden_tel_opts *opts, struct warden_error **err);

/* The lock file's lock, held while loading a set or growing its pool. Returns its fd. */
int tel_take_lock(struct warden_error **err);

/* The pool (pool.c). */
#define TEL_POOL_GROW 4 /* rings added at a time: one RCU grace period for four */
size_t tel_slots_bytes(void);
/* Add up to n rings of `size` bytes after the last ring of the pool (the lock held). */
int tel_pool_grow(int rings_fd, struct wd_slot *slots, uint32_t size, uint32_t n,
                  struct warden_error **err);
/* bpf(BPF_MAP_CREATE) without libbpf's feature probes. Returns an fd or -1 (errno). */
int tel_map_create(enum bpf_map_type type, const char *name, uint32_t key, uint32_t value,
                   uint32_t entries);

/* Claim a free ring of `size` bytes in the pool for cgroup `cg`, adding rings to the pool
 * (under the lock file) when none is free. Returns its index, or -1 with *err set. */
int tel_slot_claim(struct tel_set *s, uint32_t size, uint64_t cg, struct warden_error **err);
/* Give it back (only if cg still owns it). */
void tel_slot_release(struct tel_set *s, uint32_t idx, uint64_t cg);

/* Remove the entries of watched cgroups that were removed without a detach. */
void tel_set_collect_dead(struct tel_set *s);

/* Lines saying which optional sources `sources` leaves off. */
void tel_sources_why_off(uint32_t sources, struct strv *why_not);

#endif
