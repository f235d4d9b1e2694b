/* sandbox.h: the public lifecycle of a sandbox: start, watch, signal, destroy.
 *
 * A sandbox is a supervisor (this process, host side) and an init (pid 1 inside) started
 * from an immutable plan; a backend (struct warden_backend) does the work, and front ends
 * never know which one. The library never prints: warnings are collected for the front
 * end, errors come back through the error contract or as events.
 */
#ifndef WARDEN_SANDBOX_H
#define WARDEN_SANDBOX_H

#include "error.h"
#include "plan.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/types.h>

/* The process a sandbox starts with; the sandbox ends when it does. A service sandbox
 * starts with none: it runs commands on request (warden_sandbox_exec()) until it is
 * killed. */
struct warden_process {
	char **argv; /* NULL for a service sandbox */
	bool service;
	bool tty;               /* a new pseudo-terminal inside (the master comes back) */
	struct winsize winsize; /* its initial size, when tty */
};

enum warden_event_kind {
	WARDEN_EVENT_NONE,         /* nothing (more) to report now */
	WARDEN_EVENT_FAILED,       /* setup or exec failed: errnum, text; exec tells which */
	WARDEN_EVENT_EXITED,       /* the sandbox ended: code is the main process's status (N or
	                              128+N for signal N), unless a FAILED event came first */
	WARDEN_EVENT_LOST,         /* the sandbox's init was killed before the process ended */
	WARDEN_EVENT_EXEC_STARTED, /* a command of warden_sandbox_exec() runs: exec_id, pid */
	WARDEN_EVENT_EXEC_EXIT,    /* ... ended: exec_id, code (N or 128+N; 126/127 with
	                              errnum when it could not be executed, 125 with text
	                              when the request was refused) */
	WARDEN_EVENT_KIND_MAX,
};

struct warden_event {
	enum warden_event_kind kind;
	int code;
	int errnum;
	bool exec;        /* FAILED: the command could not be executed (ENOENT: not found) */
	uint32_t exec_id; /* EXEC_*: the request's id */
	int pid;          /* EXEC_STARTED: the command's pid inside */
	char text[512];
};

/* A command to run in a service sandbox. */
struct warden_exec {
	char *const *argv;
	char *const *env;    /* NAME=VALUE set over the sandbox's environment; NULL: none */
	const char *workdir; /* absolute; NULL: the policy's */
	int stdio[3];        /* its stdin, stdout, stderr (duplicated: the caller keeps them) */
};

/* What the sandbox uses now, read from its cgroups; has_* false where unknowable here. */
struct warden_sample {
	uint64_t memory_current, memory_peak; /* bytes */
	uint64_t cpu_usec;                    /* CPU time of all its processes */
	uint64_t pids;                        /* processes and threads */
	double psi_cpu, psi_memory, psi_io;   /* pressure: "some" over 10 s, percent */
	bool has_memory, has_cpu, has_pids, has_psi;
};

/* The listening sockets a backend makes inside the sandbox's network (proxy mode, the
 * model gateway), handed to the supervisor, which serves them from the host side. */
enum warden_net_listener {
	WARDEN_NET_HTTP,    /* TCP 127.0.0.1:3128, the HTTP proxy (proxy mode) */
	WARDEN_NET_SOCKS,   /* TCP 127.0.0.1:1080, SOCKS5 (proxy mode) */
	WARDEN_NET_DNS,     /* UDP 127.0.0.1:53 (proxy mode) */
	WARDEN_NET_GATEWAY, /* TCP 127.0.0.1:4141, the model gateway (plan->gateway) */
	WARDEN_NET_LISTENERS,
};

struct warden_sandbox;

/* Called by a backend twice while it starts a sandbox. Returning -1 (with *err) aborts the
 * start. */
enum warden_hook_phase {
	/* The sandbox's id is chosen and its init exists, but nothing runs in it yet: work
	 * that takes long (the audit record reaching the disk) starts here, to go on while the
	 * sandbox is built; must not block. */
	WARDEN_HOOK_PREPARE,
	/* Its cgroups exist and hold init, and none of its processes has started: telemetry
	 * attaches, and what PREPARE started must be done. */
	WARDEN_HOOK_READY,
};
typedef int (*warden_sandbox_hook)(struct warden_sandbox *sb, enum warden_hook_phase phase,
                                   void *ctx, struct warden_error **err);

struct warden_backend {
	const char *name;
	int (*start)(struct warden_sandbox *sb, const struct warden_process *proc,
	             struct warden_error **err);
	int (*next_event)(struct warden_sandbox *sb, struct warden_event *ev,
	                  struct warden_error **err);
	int (*signal)(struct warden_sandbox *sb, int sig, struct warden_error **err);
	int (*sample)(struct warden_sandbox *sb, struct warden_sample *out);
	int (*freeze)(struct warden_sandbox *sb, bool frozen, struct warden_error **err);
	int (*kill)(struct warden_sandbox *sb, struct warden_error **err);
	int (*exec)(struct warden_sandbox *sb, uint32_t id, const struct warden_exec *x,
	            struct warden_error **err);
	int (*exec_signal)(struct warden_sandbox *sb, uint32_t id, int sig,
	                   struct warden_error **err);
	/* Optional: the terminal's new size; without it, pty_fd is a real master and gets
	 * TIOCSWINSZ. */
	int (*resize)(struct warden_sandbox *sb, const struct winsize *ws,
	              struct warden_error **err);
	void (*destroy)(struct warden_sandbox *sb);
};

struct warden_sandbox {
	const struct warden_backend *backend;
	const struct warden_plan *plan; /* borrowed: must outlive the sandbox */
	char id[17];
	int fds[2];         /* poll both for input; then call warden_sandbox_next_event() */
	int pty_fd;         /* the terminal's master side (what it reads is the terminal's
	                       output, what it writes its input), or -1 */
	uint64_t cgroup_id; /* its cgroup v2 group's id (telemetry keys on it), or 0 */
	pid_t init_pid;     /* its init, as the host sees it (/proc/PID/root is its root) */
	int root_fd;        /* a service sandbox's root directory (O_PATH), else -1 */
	bool can_freeze;    /* a freezer is available */
	int net_fds[WARDEN_NET_LISTENERS]; /* listeners inside, taken by whoever serves them
	                                      (set to -1 then); -1 where none */
	struct strv warnings;
	warden_sandbox_hook hook;
	void *hook_ctx;
	void *priv; /* the backend's state */
};

/* Create a sandbox and start proc in it. Returns once init is on its way (with a tty:
 * once the terminal exists); setup and exec failures after that arrive as events. */
int warden_sandbox_start(const struct warden_plan *plan, const struct warden_process *proc,
                         warden_sandbox_hook hook, void *hook_ctx, struct warden_sandbox **ret,
                         struct warden_error **err);
/* The next event, or WARDEN_EVENT_NONE; never blocks. */
int warden_sandbox_next_event(struct warden_sandbox *sb, struct warden_event *ev,
                              struct warden_error **err);
/* Deliver sig to the sandbox's main process (through init). SIGKILL ends the sandbox. */
int warden_sandbox_signal(struct warden_sandbox *sb, int sig, struct warden_error **err);
/* Read what the sandbox uses now. */
int warden_sandbox_sample(struct warden_sandbox *sb, struct warden_sample *out);
/* Freeze (or thaw) every process of the sandbox, through its cgroup. */
int warden_sandbox_freeze(struct warden_sandbox *sb, bool frozen, struct warden_error **err);
/* Run a command in a service sandbox, as a child of its init (so with every restriction
 * of the sandbox), in a session of its own. Returns once the request is sent; its start
 * and its end arrive as EXEC_STARTED / EXEC_EXIT events carrying id. */
int warden_sandbox_exec(struct warden_sandbox *sb, uint32_t id, const struct warden_exec *x,
                        struct warden_error **err);
/* Send sig to the process group of the command of request id. */
int warden_sandbox_exec_signal(struct warden_sandbox *sb, uint32_t id, int sig,
                               struct warden_error **err);
/* Tell the sandbox's terminal (pty_fd) its new size: the command's foreground gets
 * SIGWINCH. Does nothing without a terminal. */
int warden_sandbox_resize(struct warden_sandbox *sb, const struct winsize *ws,
                          struct warden_error **err);
/* Kill every process of the sandbox at once (its init included). */
int warden_sandbox_kill(struct warden_sandbox *sb, struct warden_error **err);
/* Kill everything, reap, and remove every trace (cgroups, fds). NULL-safe. */
void warden_sandbox_destroy(struct warden_sandbox *sb);

/* The namespace backend. */
extern const struct warden_backend warden_ns_backend;
/* The microVM backend (src/lib/vm/, docs/vm.md). */
extern const struct warden_backend warden_vm_backend;

#endif
