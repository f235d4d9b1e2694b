/* supervisor.h: the host side of one sandbox: it starts it, watches it (telemetry and
 * cgroup samples), acts on what it sees (guardrails), answers control requests (freeze,
 * thaw, kill, stats) and records every security-relevant decision in the audit log.
 *
 * Front ends (`warden run`, later the daemon) poll the supervisor's descriptors together
 * with their own and call warden_supervisor_dispatch() when any is ready. Events reach
 * the front end as JSON lines (docs/events.md) through a callback; the library never
 * prints.
 */
#ifndef WARDEN_SUPERVISOR_H
#define WARDEN_SUPERVISOR_H

#include "audit/audit.h"
#include "error.h"
#include "plan.h"
#include "netserve.h"
#include "sandbox.h"

#include <poll.h>
#include <stdbool.h>

struct warden_supervisor_opts {
	struct warden_audit *audit; /* borrowed; NULL: no audit records */
	/* Each event as one JSON line (without the newline); NULL: no event stream. */
	void (*emit)(const char *line, void *ctx);
	void *emit_ctx;
	/* Listen on a control socket (warden freeze/thaw/kill/stats ID; for a service sandbox
	 * also info, exec, signal and destroy: the protocol is docs/architecture.md's). */
	bool control;
	/* Serving the sandbox's proxies and model gateway (netserve.h); NULL when it has no
	 * listeners. Borrowed. */
	const struct warden_netserve_opts *net;
};

struct warden_supervisor_result {
	int code;           /* the command's status (N, or 128+N for signal N) */
	bool failed;        /* setup or exec failed: errnum and text say what */
	bool exec;          /* ... the command could not be executed */
	bool lost;          /* the sandbox's init was killed */
	bool timed_out;     /* ended by warden_supervisor_timeout() */
	char killed_by[96]; /* the guardrail that killed it, or "" */
	int errnum;
	char text[512];
};

struct warden_supervisor;

/* Start proc in a sandbox built from plan (which must outlive the supervisor). */
struct warden_supervisor *warden_supervisor_start(const struct warden_plan *plan,
                                                  const struct warden_process *proc,
                                                  const struct warden_supervisor_opts *opts,
                                                  struct warden_error **err);
struct warden_sandbox *warden_supervisor_sandbox(struct warden_supervisor *sv);
/* The descriptors to poll (POLLIN); returns how many were written (at most max; give
 * WARDEN_SUPERVISOR_FDS, which dispatch() needs to tell them apart). */
#define WARDEN_SUPERVISOR_FDS 6
size_t warden_supervisor_pollfds(struct warden_supervisor *sv, struct pollfd *fds, size_t max);
/* Handle whatever is ready, without blocking: `ready` is the array pollfds() filled, after
 * poll() set its revents (only those sources are looked at), or NULL to look at all.
 * Returns 1 once the sandbox has ended (see warden_supervisor_result()), 0 while it runs,
 * -1 on an error of the supervisor itself. */
int warden_supervisor_dispatch(struct warden_supervisor *sv, const struct pollfd *ready,
                               struct warden_error **err);
/* The control socket's path (opts.control), or NULL. */
const char *warden_supervisor_control_path(const struct warden_supervisor *sv);
/* Forward a signal to the sandbox's main process (a service sandbox has none: SIGTERM,
 * SIGINT, SIGHUP and SIGQUIT end it). */
int warden_supervisor_signal(struct warden_supervisor *sv, int sig, struct warden_error **err);
/* The wall-time limit expired: kill the sandbox and record why. */
int warden_supervisor_timeout(struct warden_supervisor *sv, struct warden_error **err);
const struct warden_supervisor_result *warden_supervisor_result(const struct warden_supervisor *sv);
/* A human-readable summary (for --stats); caller frees. */
char *warden_supervisor_stats(struct warden_supervisor *sv);
/* Destroy the sandbox, write the last audit records (its exit among them: call this as
 * soon as dispatch() says the sandbox ended), free. NULL-safe. */
void warden_supervisor_free(struct warden_supervisor *sv);

#endif
