/* supervisor-internal.h: what the two halves of the supervisor share (supervisor.c: the
 * sandbox's life, events, telemetry, guardrails, sampling, the end; supervisor-control.c:
 * the control socket and the commands run on request). Not for front ends.
 */
#ifndef WARDEN_SUPERVISOR_INTERNAL_H
#define WARDEN_SUPERVISOR_INTERNAL_H

#include "supervisor.h"
#include "guard.h"
#include "telemetry/telemetry.h"

#include <jansson.h>
#include <time.h>

struct warden_supervisor {
	const struct warden_plan *plan;
	struct warden_supervisor_opts opts;
	struct warden_sandbox *sb;
	char id[17]; /* the sandbox's, kept for the records written after it is gone */
	struct warden_telemetry *tel;
	struct warden_netserve *net;
	struct strv sources_off; /* "source: reason" */
	struct warden_guard_engine guard;
	struct warden_guards rules;     /* the policy's guardrails, plus gpu.memory's */
	struct warden_gpu_session *gpu; /* granted GPUs, or NULL */
	json_t *gpu_latest;             /* the latest sample of each GPU, by UUID */
	int timer_fd;
	int control_fd;
	char *control_path;
	uint64_t start_ns, end_ns;
	uint64_t sample_ticks, ticks_per_event;
	struct warden_sample last; /* the last sample (for --stats and the end event) */
	struct warden_tel_counts counts;
	bool have_counts;
	uint64_t reported_drops;
	bool frozen, ended;
	bool killing; /* the supervisor itself ended the sandbox (guardrail, control, timeout) */
	bool service; /* no main process: commands come through the control socket */
	struct pending_exec *execs; /* commands whose requester waits for their end */
	size_t n_execs;
	uint32_t next_exec;
	struct warden_supervisor_result result;
};

/* A command run on a control request: the requester's connection gets {"ok", "exec",
 * "pid"} when it starts and {"exit"} when it ends. */
struct pending_exec {
	uint32_t id;
	int conn;
};

#define MAX_PENDING_EXECS 1024

static inline uint64_t now_ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* supervisor.c */
/* Write ev to the event stream (if any) and drop the reference. */
void sv_emit(struct warden_supervisor *sv, json_t *ev);
/* Queue an audit record of kind with fields (reference taken); sv_audit_commit() makes the
 * queue durable. */
void sv_audit(struct warden_supervisor *sv, const char *kind, json_t *fields);
void sv_audit_commit(struct warden_supervisor *sv);
/* Read the telemetry counters into sv->counts (live: with the live tasks' counts). */
void sv_read_counts(struct warden_supervisor *sv, bool live);
uint64_t sv_refused_total(const struct warden_tel_counts *c);
/* Add the fields of sample s to ev; returns ev. */
json_t *sv_sample_fields(json_t *ev, const struct warden_sample *s);
json_t *sv_strv_json(char *const *v);

/* supervisor-control.c */
/* Listen on the control socket (sv->control_fd, sv->control_path). */
int sv_open_control(struct warden_supervisor *sv, struct warden_error **err);
/* Answer the connection waiting on the control socket. */
void sv_handle_control(struct warden_supervisor *sv);
/* An EXEC_STARTED / EXEC_EXIT event of the sandbox, for the command's requester. */
void sv_on_exec_event(struct warden_supervisor *sv, const struct warden_event *ev);
/* Tell the requester of pe its command's end (msg, reference taken) and forget it. */
void sv_exec_done(struct warden_supervisor *sv, struct pending_exec *pe, json_t *msg);

#endif
