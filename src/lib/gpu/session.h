/* session.h: the GPUs of one sandbox as its supervisor sees them (session.c): grant,
 * watch, scrub and release.
 *
 * Error contract: see error.h. Nothing here prints.
 */
#ifndef WARDEN_GPU_SESSION_H
#define WARDEN_GPU_SESSION_H

#include "gpu.h"

struct warden_gpu_session;

/* Take the plan's GPU grants (exclusive or shared locks) before the sandbox exists.
 * Returns NULL without an error when the plan grants no GPU; NULL with *err set when a
 * device is busy or awaits a scrub. */
struct warden_gpu_session *warden_gpu_session_start(const struct warden_plan *plan,
                                                    struct warden_error **err);
/* The audit record's fields for the plan's device and GPU grants (caller owns). */
json_t *warden_gpu_session_grant_record(const struct warden_plan *plan);
/* The sandbox `id` exists: name it in the locks (with the pending-scrub marker) and start
 * watching its GPUs. NULL-safe. */
void warden_gpu_session_started(struct warden_gpu_session *s, const char *id);
/* What the watcher reported since the last call, as an array of JSON objects (samples
 * and Xid events, see docs/gpu.md); the sandbox's GPU memory from the latest sample in
 * *ret_memory when *ret_has. NULL-safe (an empty array). */
json_t *warden_gpu_session_poll(struct warden_gpu_session *s, uint64_t *ret_memory, bool *ret_has);
/* The sandbox is gone: stop watching, scrub each device (when the policy asks and no live
 * sandbox still shares it), release, free. Returns one audit record's fields per device
 * (caller owns). NULL-safe. */
json_t *warden_gpu_session_end(struct warden_gpu_session *s);

#endif
