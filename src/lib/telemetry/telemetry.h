/* telemetry.h: eBPF telemetry for sandboxes, attributed by cgroup.
 *
 * One set of BPF programs serves every sandbox on the host: it is loaded once and pinned
 * under /sys/fs/bpf/warden/ (bpffs mounted there if needed), and each sandbox adds its
 * cgroup v2 id to the programs' maps. Tasks of any other cgroup leave the programs at
 * their first lookup. Counts (system calls per number, refusals per number, forks, execs)
 * live in per-sandbox maps; rare events (exec, exit, connect, refusal samples, OOM kills)
 * go through a per-sandbox ring buffer whose losses are counted, never silent.
 *
 * Error contract: see error.h. Nothing here prints.
 */
#ifndef WARDEN_TELEMETRY_H
#define WARDEN_TELEMETRY_H

#include "../error.h"
#include "../util.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define WARDEN_TEL_NR_MAX   512 /* system call numbers counted (x86-64: < 512) */
#define WARDEN_TEL_PATH_MAX 256
#define WARDEN_TEL_ARG_MAX  64
#define WARDEN_TEL_ARGS     4

enum warden_tel_kind {
	WARDEN_TEL_EXEC,    /* a process executed a program */
	WARDEN_TEL_EXIT,    /* a process (thread group) ended */
	WARDEN_TEL_CONNECT, /* an outbound connect() and its result */
	WARDEN_TEL_REFUSED, /* a system call refused by seccomp or Landlock (sampled) */
	WARDEN_TEL_OOM,     /* the kernel's OOM killer chose a process of the sandbox */
	WARDEN_TEL_KIND_MAX,
};

enum warden_tel_layer {
	WARDEN_TEL_LAYER_SECCOMP,
	WARDEN_TEL_LAYER_LANDLOCK,
	WARDEN_TEL_LAYER_MAX,
};

struct warden_tel_event {
	enum warden_tel_kind kind;
	uint64_t ts_ns;    /* CLOCK_REALTIME, nanoseconds */
	uint32_t pid;      /* thread group id as the sandbox sees it (its pid namespace) */
	uint32_t ppid;     /* parent, likewise (0 when outside the sandbox) */
	uint32_t host_pid; /* the same process in the host's pid namespace */
	uint32_t uid;      /* as the sandbox sees it */
	char comm[16];
	union {
		struct {
			char path[WARDEN_TEL_PATH_MAX]; /* the executed file */
			char argv[WARDEN_TEL_ARGS][WARDEN_TEL_ARG_MAX];
			uint32_t argc; /* total arguments, may exceed WARDEN_TEL_ARGS */
		} exec;
		struct {
			int32_t code;   /* exit status (WIFEXITED), or -1 */
			int32_t signal; /* terminating signal, or 0 */
		} exit;
		struct {
			uint16_t family; /* AF_INET, AF_INET6, AF_UNIX */
			uint16_t port;   /* host byte order */
			uint8_t addr[16];
			char path[108]; /* AF_UNIX */
			int32_t ret;    /* connect()'s result: 0 or -errno (-EINPROGRESS counts as
			                   an attempt in flight) */
		} connect;
		struct {
			int32_t nr;  /* system call number */
			int32_t err; /* errno returned */
			enum warden_tel_layer layer;
			uint64_t count; /* refusals of this nr so far, this one included */
		} refused;
		struct {
			uint32_t victim_pid; /* sandbox pid of the process killed */
		} oom;
	};
};

struct warden_tel_counts {
	uint64_t syscalls[WARDEN_TEL_NR_MAX]; /* entries per system call number */
	uint64_t refused[WARDEN_TEL_NR_MAX];  /* refusals per number (seccomp and Landlock) */
	uint64_t forks;                       /* new processes (not threads) */
	uint64_t execs;                       /* successful execve()s */
	uint64_t events; /* ring buffer records produced, including those dropped */
	uint64_t drops;  /* ring buffer records lost because the ring was full */
	/* Addition: refused[] split by layer (refused[n] is the sum over layers). */
	uint64_t refused_layer[WARDEN_TEL_LAYER_MAX][WARDEN_TEL_NR_MAX];
};

/* Once the sandbox has stopped and its ring has been drained, the records delivered plus
 * `drops` equal `events`, exactly. */

struct warden_tel_opts {
	uint32_t ring_bytes; /* per-sandbox ring size, a power of two >= 4096; 0: 256 KiB */

	/* Additions, for tests and benchmarks; zero for the defaults. Where program sets are
	 * pinned (NULL: /sys/fs/bpf/warden). */
	const char *pin_root;
	/* Count Landlock refusals at the LSM hooks' results (the fallback for kernels whose
	 * Landlock keeps no denial counts) even where it does: a separate pinned set. */
	bool landlock_lsm_hooks;
};

/* Whether BPF telemetry can run here (root, BTF, bpf() allowed, the needed hooks); when
 * not, the reasons are pushed to why_not ("bpf: Operation not permitted (not root)").
 * Probed once per process. Addition: when it can run but some sources cannot (a hook
 * missing, Landlock disabled), it returns true and pushes one line per source that is off
 * ("Landlock refusals off: Landlock is not enabled"). Cheap once the programs are
 * loaded (it reads what the loader noted); otherwise it parses the kernel's BTF (tens of
 * milliseconds). */
bool warden_telemetry_available(struct strv *why_not);

struct warden_telemetry;

/* Start watching the tasks of the cgroup v2 group with this id (see ns_cgroup_v2_id()),
 * loading and pinning the shared programs first if no process has. Call before the
 * sandbox's first process starts, so that nothing it does is missed. Watched are the
 * tasks in the group now and every task they create; a task moved into the group later
 * (by another process writing cgroup.procs, or clone3's CLONE_INTO_CGROUP from outside)
 * is not. Root only: it finds the group by its id (open_by_handle_at). */
struct warden_telemetry *warden_telemetry_attach(uint64_t cgroup_id,
                                                 const struct warden_tel_opts *opts,
                                                 struct warden_error **err);

/* A descriptor that is readable when events are waiting. */
int warden_telemetry_fd(const struct warden_telemetry *t);

/* Deliver every waiting event to cb, without blocking. Returns the number delivered. */
int warden_telemetry_drain(struct warden_telemetry *t,
                           void (*cb)(const struct warden_tel_event *ev, void *ctx), void *ctx,
                           struct warden_error **err);

/* Read the sandbox's counters (summed over CPUs). Each task adds its system call counts to
 * the sandbox's when it exits: once the group is empty they are exact. With live, the
 * counts of the group's live tasks are read and added too (a bpf() call per thread); a
 * task that ends during the reading may be missing from it, never counted twice. */
int warden_telemetry_counts(const struct warden_telemetry *t, bool live,
                            struct warden_tel_counts *out, struct warden_error **err);

/* Stop watching (after a last drain) and free; the shared programs stay loaded for other
 * sandboxes. NULL-safe. */
void warden_telemetry_detach(struct warden_telemetry *t);

#endif
