/* wardend.h: the daemon's shared state and the interfaces between its files.
 *
 * Files: main.c (options, start, signals, stop); http.c (listeners, auth, routing, the
 * replies); request.c (the route table, validation and Accept, request.h); spawn.c (child
 * processes, never waited for); state.c (SQLite); sandbox.c (the registry, TTL, destroy,
 * re-adoption; requests to the supervisors' control sockets, src/lib/control.h);
 * create.c (creating, pools); api.c, api-exec.c, api-files.c, api-events.c (the routes).
 * Exec output is repaired as UTF-8 by src/lib/text.c.
 *
 * One thread, one libevent loop. Every sandbox is run by its own detached supervisor
 * (`warden supervise`), so wardend holds nothing a sandbox needs to live: killed with
 * SIGKILL, it finds them again through the state database and their control sockets.
 */
#ifndef WARDEND_H
#define WARDEND_H

#include "request.h"
#include "../lib/control.h"
#include "../lib/error.h"
#include "../lib/files.h"
#include "../lib/text.h"
#include "../lib/util.h"

#include <event2/event.h>
#include <event2/http.h>
#include <inttypes.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- configuration and the daemon ---------------------------------------------------- */

struct pool {
	char *policy;      /* a preset or stored policy name */
	unsigned target;   /* how many to keep ready */
	unsigned ready;    /* sandboxes waiting in it */
	unsigned starting; /* `warden supervise` under way for it */
	unsigned failures; /* in a row: the refill backs off */
	struct event *retry;
};

struct token {
	unsigned char digest[32]; /* SHA-256 of the token: tokens are compared as digests */
	char id[17];    /* the digest's first 8 bytes in hex: the owner of what it makes */
	unsigned quota; /* sandboxes at once; 0: no quota of its own */
};

struct sandbox;

struct wardend {
	/* options */
	const char *socket_path, *listen, *token_file, *state_dir, *warden, *policies_dir;
	const char *audit_log, *audit_key;
	unsigned max_sandboxes;
	int64_t max_ttl;
	size_t max_body;
	bool trust_inline_policies;
	struct pool *pools;
	size_t n_pools;
	struct token *tokens;
	size_t n_tokens;

	/* running */
	struct event_base *base;
	struct evhttp *http_unix, *http_tcp;
	sqlite3 *db;
	char *events_dir, *policies_tmp_dir;
	struct sandbox *sandboxes; /* the live ones, pooled included */
	unsigned creating;         /* creates (not pool refills) under way */
	bool stopping;

	/* counters for /metrics */
	uint64_t requests[6]; /* by status class: [2] 2xx ... [5] 5xx */
	uint64_t created_fresh, created_pool, create_failures, destroyed, expired, execs;
	double pool_create_seconds, fresh_create_seconds; /* sums, daemon time */
};

extern struct wardend wd;

/* ---- a sandbox ---------------------------------------------------------------------- */

struct sandbox {
	char id[SANDBOX_ID_LEN + 1];
	char *policy;  /* as the API shows it */
	char *control; /* the supervisor's control socket */
	pid_t supervisor_pid, init_pid;
	uid_t uid;
	gid_t gid;
	int64_t created_at, expires_at; /* unix seconds */
	json_t *labels;
	char *owner; /* the token id that made it, "" for the unix socket */
	bool paused, from_pool;
	struct pool *pool; /* set while it waits in a pool */

	int sv_pidfd, init_pidfd; /* -1 where unknown */
	struct warden_root root;  /* its "/" (fd -1 until the files API first asks for it) */
	struct event *sv_ev;      /* the supervisor ended */
	struct event *ttl_ev;
	bool destroying;
	unsigned execs;                    /* running */
	struct evhttp_request *delete_req; /* a DELETE waiting for the end */
	struct event *destroy_deadline;
	unsigned refs;
	struct sandbox *next;
};

struct sandbox *sandbox_find(const char *id);
struct sandbox *sandbox_ref(struct sandbox *sb);
void sandbox_unref(struct sandbox *sb);
/* The API's view: {"id","policy","state","created_at","expires_at","labels","from_pool"}. */
json_t *sandbox_json(const struct sandbox *sb);
unsigned sandbox_count(const char *owner); /* live, not pooled; NULL: all owners */

/* Start a sandbox for a validated create request; the reply (201, or an error) is sent
 * on req when it is known. t0: when the request arrived (monotonic µs). */
void sandbox_create(struct evhttp_request *req, struct api_create *c, const char *owner,
                    unsigned quota, int64_t t0);
/* Destroy: the reply (204) is sent on req (may be NULL) once the supervisor has ended. */
void sandbox_destroy(struct sandbox *sb, struct evhttp_request *req, const char *why);
/* Freeze or thaw; 0 or -1 with err. */
int sandbox_pause(struct sandbox *sb, bool pause, struct warden_error **err);
/* A control request (taken) to the sandbox's supervisor; the reply object (ok checked: an
 * {"ok": false} reply is an error) or NULL with err. */
json_t *sandbox_request(struct sandbox *sb, json_t *req, struct warden_error **err);
/* The sandbox's root for the files API (files.h), with its user's ids: asked of its
 * supervisor once and kept. NULL with err (ESRCH when its init has ended). */
const struct warden_root *sandbox_root(struct sandbox *sb, struct warden_error **err);

/* Between sandbox.c and create.c. */
#define CTL_TIMEOUT_MS 3000
struct sandbox *sandbox_new(void);
void sandbox_register(struct sandbox *sb);
/* Take pidfds of its supervisor and init (checked against two info answers) and watch
 * the supervisor's end. */
int sandbox_watch(struct sandbox *sb, struct warden_error **err);
void sandbox_arm_ttl(struct sandbox *sb);
char *sandbox_events_path(const char *id);
json_t *control_op(const char *name); /* {"op": name} */
/* {"op":"destroy"} to the supervisor at path, for a sandbox being given up on; whether it
 * answered. */
bool control_destroy(const char *path);
struct pool *pool_for(const char *policy);
void pool_slot_gone(struct pool *p); /* a pooled sandbox ended: refill */

/* At start: re-adopt what the state database knows, clean what is gone, fill pools. */
int sandboxes_start(struct warden_error **err);
void pools_fill(void);
/* SIGTERM: leave every sandbox running; give pending creates a moment to be recorded. */
void sandboxes_stop(void);
bool sandboxes_settled(void);

/* ---- child processes (spawn.c) ------------------------------------------------------ */

/* status: as from waitpid (or -1: could not start); out/err: what it wrote (NUL-
 * terminated, at most 64 KiB each). */
typedef void (*spawn_done_fn)(int status, const char *out, const char *err, void *ctx);
/* Start argv with a clean environment and stdin on /dev/null; done() runs from the event
 * loop when it has exited (killed after timeout_s). Never blocks. */
int spawn_start(char *const argv[], int timeout_s, spawn_done_fn done, void *ctx,
                struct warden_error **err);
void spawn_sigchld(void);
unsigned spawn_running(void);

/* ---- state (state.c) ---------------------------------------------------------------- */

int state_open(const char *path, struct warden_error **err);
void state_close(void);
/* The full row (insert or replace); policy_text/hash: NULL for a pool slot's refresh. */
int state_put(const struct sandbox *sb, const char *policy_text, const char *policy_hash);
int state_set_paused(const char *id, bool paused);
int state_mark_destroyed(const char *id);
int state_delete(const char *id);
/* Each row: fn(row object {"id","policy","control","supervisor_pid","created_at",
 * "expires_at","labels","owner","state","from_pool","pooled","destroyed"}). */
int state_each(void (*fn)(json_t *row, void *ctx), void *ctx);
int state_exec_start(const char *id, uint64_t exec_id, json_t *cmd, int64_t started_at);
int state_exec_end(const char *id, uint64_t exec_id, int exit_code, bool timed_out,
                   int64_t ended_at);
json_t *state_exec_list(const char *id);
const char *state_error(void);

/* ---- HTTP (http.c) ------------------------------------------------------------------ */

int http_start(struct warden_error **err);
void http_stop(void);

void reply_json(struct evhttp_request *req, int status, json_t *body); /* steals body */
void reply_error(struct evhttp_request *req, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void reply_api_error(struct evhttp_request *req, const struct api_error *e);
/* An error of the library: the status from its errno (ENOENT 404, EACCES 403, ...). */
void reply_werror(struct evhttp_request *req, struct warden_error *e);
void reply_empty(struct evhttp_request *req, int status);
void reply_text(struct evhttp_request *req, int status, const char *content_type,
                struct evbuffer *body);
void count_status(int status);
const char *status_reason(int status);

/* What a handler gets. */
struct call {
	struct evhttp_request *req;
	struct api_match m;
	struct api_query q;
	const char *owner; /* "" for the unix socket (every sandbox), else the token id */
	unsigned quota;
	int64_t t0; /* monotonic µs at arrival */
	const char *body;
	size_t body_len;
};

/* The sandbox the call names, visible to its caller, or NULL after a 404 reply. */
struct sandbox *call_sandbox(struct call *c);

void api_dispatch(struct call *c);
void api_exec(struct call *c, struct sandbox *sb);
void api_exec_kill(struct call *c, struct sandbox *sb);
void api_files(struct call *c, struct sandbox *sb);
void api_events(struct call *c, struct sandbox *sb);
void api_events_stop_all(void);

/* ---- helpers ------------------------------------------------------------------------ */

int64_t now_s(void);
int64_t mono_us(void);
/* RFC 3339 UTC: "2026-01-02T03:04:05Z" (buf of at least 32). */
const char *rfc3339(int64_t t, char *buf, size_t len);
/* errno -> HTTP status and code, for library errors. */
int errno_status(int errnum, const char **ret_code);

#endif
