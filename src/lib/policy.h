/* policy.h: what a sandbox may do, as the user wrote it (validated, not yet compiled).
 *
 * Sections: the policy structure and its defaults; loading (presets, YAML files);
 * volumes given as "HOST:PATH[:ro|rw]"; freeing. Every key is documented, with its
 * default, in docs/policy.md; the loader rejects unknown keys.
 */
#ifndef WARDEN_POLICY_H
#define WARDEN_POLICY_H

#include "error.h"
#include "util.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum warden_net_mode {
	WARDEN_NET_NONE,  /* a private network namespace with loopback only */
	WARDEN_NET_HOST,  /* the host's network namespace: an explicit, warned opt-out */
	WARDEN_NET_PROXY, /* loopback only, with warden's proxies inside: egress by rule */
	WARDEN_NET_MODE_MAX,
	WARDEN_NET_MODE_INVALID = -1,
};

/* Which boundary holds the sandbox: namespaces on the host's kernel, or a microVM with
 * a guest kernel of its own (docs/vm.md). */
enum warden_isolation {
	WARDEN_ISOLATION_NS,
	WARDEN_ISOLATION_VM,
	WARDEN_ISOLATION_MAX,
	WARDEN_ISOLATION_INVALID = -1,
};

enum warden_landlock_mode {
	WARDEN_LANDLOCK_BEST_EFFORT, /* the best ABI the kernel has; report what is missing */
	WARDEN_LANDLOCK_REQUIRED,    /* refuse to start without Landlock ABI >= 6 */
	WARDEN_LANDLOCK_OFF,
	WARDEN_LANDLOCK_MODE_MAX,
	WARDEN_LANDLOCK_MODE_INVALID = -1,
};

/* A host path made visible inside. For filesystem.read_only entries path == host. */
struct warden_mount {
	char *host;
	char *path;
	bool rw;
	bool optional; /* skip silently when the host path does not exist */
};

struct warden_mounts {
	struct warden_mount *v;
	size_t n;
};

#define WARDEN_MAX_PORTS 64
struct warden_ports {
	uint16_t v[WARDEN_MAX_PORTS + 4]; /* room for warden's own listeners (plan.c) */
	size_t n;
	bool any; /* every port ("any") */
};

/* Guardrails: a condition over what the sandbox does, and what warden then does. */
enum warden_guard_cond {
	WARDEN_GUARD_EXEC,         /* exec of a program matching one of the patterns */
	WARDEN_GUARD_EXEC_OUTSIDE, /* exec of a program matching none of the patterns */
	WARDEN_GUARD_CONNECT_TO,   /* a connect attempt to one of the destinations */
	WARDEN_GUARD_MEMORY_PEAK,  /* peak memory above threshold (bytes) */
	WARDEN_GUARD_PIDS,         /* processes and threads above threshold */
	WARDEN_GUARD_REFUSED,      /* refused system calls above threshold */
	WARDEN_GUARD_CPU_TIME,     /* CPU time above threshold (milliseconds) */
	WARDEN_GUARD_WALL_TIME,    /* wall time above threshold (milliseconds) */
	WARDEN_GUARD_GPU_MEMORY,   /* GPU memory of the sandbox's processes above threshold */
	WARDEN_GUARD_COND_MAX,
	WARDEN_GUARD_COND_INVALID = -1,
};

enum warden_guard_action {
	WARDEN_GUARD_LOG,    /* an event and an audit record */
	WARDEN_GUARD_ALERT,  /* the same, marked for attention */
	WARDEN_GUARD_KILL,   /* end the whole sandbox */
	WARDEN_GUARD_FREEZE, /* freeze every process of the sandbox, kept for inspection */
	WARDEN_GUARD_ACTION_MAX,
	WARDEN_GUARD_ACTION_INVALID = -1,
};

/* An address or network, with a port (0: any port). */
struct warden_net {
	int family; /* AF_INET, AF_INET6, or AF_UNSPEC for any address */
	uint8_t addr[16];
	unsigned prefix;
	uint16_t port;
};

/* An egress rule (network.allow / network.deny): a domain name, exact ("example.com") or
 * every name below one ("*.example.com", not example.com itself), or an address or
 * network; either with an optional port. */
struct warden_egress_rule {
	char *text;            /* as written, for events and messages */
	char *domain;          /* lower case, no trailing dot; NULL for an address rule */
	bool wildcard;         /* domain was "*.domain" */
	struct warden_net net; /* an address rule; net.port is the port of either kind */
};

struct warden_egress_rules {
	struct warden_egress_rule *v;
	size_t n;
};

struct warden_guard_rule {
	char *name;
	enum warden_guard_cond cond;
	enum warden_guard_action action;
	uint64_t threshold;   /* bytes, a count, or milliseconds, by cond */
	struct strv patterns; /* exec conditions: globs; without '/', on the file name */
	struct warden_net *nets;
	size_t n_nets;
};

struct warden_guards {
	struct warden_guard_rule *v;
	size_t n;
};

/* A host device node granted to the sandbox (devices:), at the same path inside. The
 * access bits are those of the device cgroup: read, write, mknod. */
enum {
	WARDEN_DEV_READ = 1,
	WARDEN_DEV_WRITE = 2,
	WARDEN_DEV_MKNOD = 4,
};

struct warden_device {
	char *path;      /* absolute host path of a character or block device node */
	unsigned access; /* WARDEN_DEV_* bits, never 0 */
};

struct warden_devices {
	struct warden_device *v;
	size_t n;
};

/* GPUs granted to the sandbox (gpu:): NVIDIA devices by index, UUID or MIG instance UUID,
 * on top of devices:. */
#define WARDEN_GPU_MAX 16
struct warden_gpu {
	struct strv devices; /* "0", "GPU-<uuid>", "MIG-<uuid>", or "all"; empty: no GPU */
	uint64_t memory;     /* GPU memory the sandbox may use (a guardrail); 0: no ceiling */
	bool scrub;          /* clear the device's free memory when the sandbox ends */
	bool exclusive;      /* no other live sandbox gets the same device */
	bool uvm_tools;      /* also /dev/nvidia-uvm-tools (profilers) */
};

extern const char *const warden_guard_cond_names[WARDEN_GUARD_COND_MAX];
extern const char *const warden_net_mode_names[WARDEN_NET_MODE_MAX];
extern const char *const warden_guard_action_names[WARDEN_GUARD_ACTION_MAX];
extern const char *const warden_isolation_names[WARDEN_ISOLATION_MAX];

struct warden_policy {
	char *name; /* preset name or file path, for messages */
	enum warden_isolation isolation;

	/* filesystem */
	struct warden_mounts read_only; /* host system paths, read-only at the same place */
	struct warden_mounts volumes;   /* host directories bound in (rw by default) */
	char *rootfs;                   /* an unpacked image used as / instead, or NULL */
	uint64_t tmp_size;              /* bytes of the writable layer (/tmp, home, ...) */

	/* process */
	uid_t uid; /* identity inside; the user is named "agent" unless uid 0 */
	gid_t gid;
	char *workdir;        /* NULL: the user's home */
	struct strv env;      /* NAME=VALUE set inside */
	struct strv env_pass; /* NAME passed from the caller's environment when set */

	/* limits (0 = unlimited where it says so in docs/policy.md) */
	uint64_t memory;     /* bytes, memory.max / memory.limit_in_bytes, no swap */
	uint64_t pids;       /* pids.max, and RLIMIT_NPROC */
	uint64_t cpus_milli; /* CPU bandwidth in thousandths of a CPU; 0 = unlimited */
	uint64_t timeout_ms; /* wall time before the whole sandbox is killed; 0 = none */
	uint64_t nofile;     /* RLIMIT_NOFILE (soft and hard) */

	/* network */
	enum warden_net_mode net_mode;
	struct warden_ports tcp_bind;     /* TCP ports Landlock lets the sandbox bind */
	struct warden_ports tcp_connect;  /* TCP ports Landlock lets the sandbox connect to */
	struct warden_egress_rules allow; /* proxy mode: destinations allowed ... */
	struct warden_egress_rules deny;  /* ... and refused (deny wins) */

	/* security */
	struct strv seccomp_deny;  /* syscalls refused in addition to the built-in list */
	struct strv seccomp_allow; /* built-in refusals lifted (by syscall name) */
	enum warden_landlock_mode landlock;
	bool allow_ptrace; /* ptrace and process_vm_* within the sandbox */

	/* telemetry */
	bool telemetry;      /* eBPF telemetry and cgroup sampling */
	uint64_t ring_bytes; /* per-sandbox event ring (power of two) */

	struct warden_guards guardrails;

	/* devices */
	struct warden_devices devices;
	struct warden_gpu gpu;
};

/* The built-in presets, in the order `warden policy list` shows them. */
extern const char *const warden_preset_names[];
/* A preset's YAML text, or NULL. */
const char *warden_preset_text(const char *name);

/* A fresh policy holding the documented defaults (equal to the `default` preset). */
struct warden_policy *warden_policy_new(void);
void warden_policy_free(struct warden_policy *p);
static inline void warden_policy_freep(struct warden_policy **p)
{
	warden_policy_free(*p);
}
#define _cleanup_policy_ __attribute__((cleanup(warden_policy_freep)))

/* Load a preset by name, or a YAML file by path (anything containing '/' or ending in
 * .yaml/.yml is a path). Errors name file:line:column and the key. */
struct warden_policy *warden_policy_load(const char *name_or_path, struct warden_error **err);
/* Parse YAML text on top of the defaults (or of the preset it `extends:`); `origin`
 * names it in error messages and is its name unless it sets `name:`. */
struct warden_policy *warden_policy_parse(const char *text, size_t len, const char *origin,
                                          struct warden_error **err);

/* "HOST:PATH[:ro|rw]" -> mount. HOST may be relative (resolved later, on the host). */
int warden_mount_parse_spec(const char *spec, struct warden_mount *ret, struct warden_error **err);
void warden_mounts_push(struct warden_mounts *m, const struct warden_mount *src);
void warden_mounts_clear(struct warden_mounts *m);

/* "PATH[:ACCESS]" -> device (ACCESS: a non-empty set of r, w, m, in any order; default
 * rw). PATH must be absolute and normalized. */
int warden_device_parse_spec(const char *spec, struct warden_device *ret,
                             struct warden_error **err);
/* "r", "w", "rw", "m", "rwm", ... -> WARDEN_DEV_* bits; -1 with a static reason. */
int warden_device_access_parse(const char *s, unsigned *ret, const char **ret_why);
/* The access bits as "rwm" letters into buf (at least 4 bytes). */
void warden_device_access_format(unsigned access, char *buf);
void warden_devices_push(struct warden_devices *d, const char *path, unsigned access);
void warden_devices_clear(struct warden_devices *d);
/* Whether s names a GPU the way gpu.devices and --gpu do: "all", an index (0-63),
 * "GPU-<uuid>" or "MIG-<uuid>". Returns false with a static reason. */
bool warden_gpu_spec_valid(const char *s, const char **ret_why);

/* Parse "UID[:GID]" or a name ("agent", "root"). */
int warden_user_parse(const char *s, uid_t *ret_uid, gid_t *ret_gid, struct warden_error **err);

/* Render the effective policy back as YAML (for `warden policy show`). */
char *warden_policy_to_yaml(const struct warden_policy *p);

/* What `name:` accepts: 1 to 64 letters, digits, '-', '_', '.'. */
bool warden_policy_name_valid(const char *s);

/* "10.0.0.0/8", "169.254.169.254", "[fd00::]/8:443", "*:22" -> net. */
int warden_net_parse(const char *s, struct warden_net *ret, const char **ret_why);
/* Whether family/addr/port (addr in network order) is inside net. */
bool warden_net_match(const struct warden_net *net, int family, const uint8_t *addr, uint16_t port);
/* Render a net back the way warden_net_parse reads it. */
void warden_net_format(const struct warden_net *net, char *buf, size_t len);
void warden_guards_clear(struct warden_guards *g);
void warden_guards_copy(struct warden_guards *dst, const struct warden_guards *src);

/* A shell-style variable name: [A-Za-z_][A-Za-z0-9_]*. */
bool warden_env_name_valid(const char *s);

/* The uid the default "agent" user has inside a sandbox. */
#define WARDEN_AGENT_UID 1000

#endif
