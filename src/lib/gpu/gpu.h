/* gpu.h: NVIDIA GPUs granted to sandboxes.
 *
 * Sections: the helper process; the grant in a plan (grant.c); exclusive grants and the
 * scrub that releases them (lock.c); what the helper does (helper-side, nvml.c cuda.c
 * scrub.c leak.c).
 *
 * warden itself is a static binary and never loads the driver's libraries: a static
 * glibc cannot safely host libcuda's threads and TLS, and a driver fault must not take a
 * supervisor down. Everything that talks to the driver (NVML, libcuda, both dlopen()ed:
 * no build dependency) runs in `warden-gpu`, a small dynamically linked helper installed
 * next to warden, which answers with one JSON object per line on its standard output.
 *
 * Error contract: see error.h. Nothing here prints.
 */
#ifndef WARDEN_GPU_H
#define WARDEN_GPU_H

#include "../error.h"
#include "../plan.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- the helper (helper-run.c) --------------------------------------------------------- */

/* Exit statuses of warden-gpu. */
enum {
	WARDEN_GPU_OK = 0,
	WARDEN_GPU_FAILED = 1, /* the operation failed: {"error": ...} */
	WARDEN_GPU_ABSENT = 2, /* no driver (library or device nodes missing): {"error": ...} */
	WARDEN_GPU_USAGE = 3,
};

/* The helper's path: $WARDEN_GPU_HELPER, else warden-gpu beside the running executable.
 * Caller frees. */
char *warden_gpu_helper_path(void);
/* Run the helper with args (NULL-terminated, without argv[0]) and parse the last JSON
 * line it printed into *ret (caller decrefs). An exit status other than 0 becomes an
 * error carrying the helper's "error" text. */
int warden_gpu_helper_run(char *const *args, json_t **ret, struct warden_error **err);
/* Start the helper with args, its standard output a non-blocking pipe: *ret_fd (the read
 * end), *ret_pid. For long-running commands (watch). */
int warden_gpu_helper_spawn(char *const *args, int *ret_fd, pid_t *ret_pid,
                            struct warden_error **err);

/* Whether an NVIDIA driver looks present (its control node exists); *ret_why says what
 * is missing. */
bool warden_gpu_driver_present(const char **ret_why);

/* ---- the grant (grant.c) --------------------------------------------------------------- */

/* Resolve plan->policy->gpu into plan->gpus, the device nodes they need (added with
 * warden_plan_add_device) and the driver's user-space files (read-only binds). Errors:
 * no driver, a GPU that does not exist (the message lists those that do). */
int warden_gpu_plan(struct warden_plan *plan, struct warden_error **err);

/* ---- exclusive grants (lock.c) --------------------------------------------------------- */

/* A held grant of one GPU or MIG instance: a flock on DIR/<uuid>.lock (exclusive or
 * shared), and DIR/<uuid>.pending naming the sandbox whose scrub has not yet succeeded.
 * A pending marker left by a sandbox that ended without a successful scrub (its scrub
 * failed, or its supervisor was killed) refuses every later grant until
 * `warden gpu scrub` succeeds. DIR is $WARDEN_GPU_LOCK_DIR, else /run/warden/gpu as
 * root, $XDG_RUNTIME_DIR/warden/gpu (or /tmp/warden-UID/gpu) otherwise. */
struct warden_gpu_lock {
	int fd; /* -1: not held */
	char *uuid;
	bool exclusive;
};

/* Take the grant for sandbox `id` (may be "" and set later with _set_owner). force:
 * ignore a pending marker (what `warden gpu scrub` does). Errors: EBUSY when another
 * live sandbox holds it ("in use by sandbox ID"), EAGAIN when a scrub is pending. */
int warden_gpu_lock_acquire(const char *uuid, bool exclusive, bool force, const char *id,
                            struct warden_gpu_lock *ret, struct warden_error **err);
/* Record the owning sandbox in the lock and the pending marker. */
void warden_gpu_lock_set_owner(struct warden_gpu_lock *l, const char *id, bool pending);
/* Whether this holder is the last one (a shared grant tries to become exclusive). Call
 * it only right before release: when it answers false the shared lock is gone. */
bool warden_gpu_lock_is_last(struct warden_gpu_lock *l);
/* Release: with cleared true the pending marker is removed (the scrub succeeded, or no
 * scrub was asked for); otherwise it stays and blocks later grants. NULL-safe. */
void warden_gpu_lock_release(struct warden_gpu_lock *l, bool cleared);
/* The directory of the locks (caller frees). */
char *warden_gpu_lock_dir(void);

#endif
