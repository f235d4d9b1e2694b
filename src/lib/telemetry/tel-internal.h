/* tel-internal.h: what the telemetry loader (loader.c) gives the per-sandbox side
 * (telemetry.c): the pinned programs' shared maps, opened once per process.
 */
#ifndef WARDEN_TEL_INTERNAL_H
#define WARDEN_TEL_INTERNAL_H

#include "telemetry.h"

#define TEL_PIN_ROOT  "/sys/fs/bpf/warden"
#define TEL_LOCK_DIR  "/run/warden"
#define TEL_LOCK_FILE TEL_LOCK_DIR "/bpf.lock"

/* One loaded and pinned set of programs, as this process sees it. Lives until the process
 * exits (the fds are what later attaches use); never freed. */
struct tel_set {
	char *dir;     /* <pin root>/<tag> */
	int pcpu_fd;   /* outer maps, keyed by cgroup id */
	int shared_fd; /* ... */
	int rings_fd;  /* ... */
	int dead_fd;   /* cgroup ids removed while watched */
	uint32_t sources;
	int ncpus; /* possible CPUs, as the loader found them */
	struct tel_set *next;
};

/* The set for these options: opened from the pins when some process has loaded it,
 * otherwise loaded, attached and pinned under the lock file. Thread-safe. */
struct tel_set *tel_set_get(const struct warden_tel_opts *opts, struct warden_error **err);

/* Remove the entries of watched cgroups that were removed without a detach. */
void tel_set_collect_dead(struct tel_set *s);

/* Lines saying which optional sources `sources` leaves off. */
void tel_sources_why_off(uint32_t sources, struct strv *why_not);

#endif
