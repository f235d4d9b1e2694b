/* plan.h: a policy compiled into everything a spawn needs, computed once.
 *
 * The plan is immutable after warden_plan_compile(): the seccomp program is already BPF,
 * host paths are resolved and checked, generated files (/etc/passwd, /etc/group) are
 * rendered, the environment is final. A spawn only copies what it needs from it.
 */
#ifndef WARDEN_PLAN_H
#define WARDEN_PLAN_H

#include "error.h"
#include "policy.h"

#include <linux/bpf.h>
#include <linux/filter.h>
#include <stdbool.h>
#include <sys/types.h>

/* One host path made visible inside. */
struct warden_bind {
	char *host;    /* resolved host path */
	char *path;    /* path inside the sandbox */
	char *symlink; /* non-NULL: recreate this symlink target instead of binding */
	bool rw;
	bool is_dir;
	bool volume; /* a user volume: idmapped to the caller in root mode */
};

/* A device node the sandbox may use (devices:, gpu:), bound at the same path inside, and
 * the device cgroup rule that lets it be opened. */
struct warden_plan_device {
	char *path; /* the host node, under /dev; the same path inside */
	char type;  /* 'c' or 'b' */
	unsigned major, minor;
	unsigned access; /* WARDEN_DEV_* */
};

/* A GPU (or MIG instance) granted, as resolved on the host by gpu/. */
struct warden_plan_gpu {
	char *uuid;        /* GPU-... or MIG-...: what is locked, scrubbed, reported */
	char *parent_uuid; /* a MIG instance's GPU; NULL for a whole GPU */
	unsigned index;    /* NVML index of the (parent) GPU */
	unsigned minor;    /* /dev/nvidiaN */
};

struct warden_plan {
	struct warden_policy *policy; /* owned */

	/* identity */
	bool rootless;    /* the caller is not root: single-id user namespace */
	uid_t caller_uid; /* who runs warden; owns files created in volumes */
	gid_t caller_gid;
	uid_t host_base;     /* root mode: host uid of sandbox uid 0 */
	uint32_t host_count; /* root mode: ids mapped (65536) */
	char *home;          /* /home/agent or /root */
	char *workdir;       /* absolute, inside */
	char *hostname;

	/* filesystem */
	struct warden_bind *binds;
	size_t n_binds;
	char *passwd; /* contents of /etc/passwd and /etc/group inside */
	char *group;
	char *hosts;
	char *resolv_conf; /* proxy mode: names resolved by warden's DNS listener; else NULL */

	/* process */
	char **envp;

	/* seccomp: the compiled program (native architecture; other ABIs are killed) */
	struct sock_filter *bpf;
	unsigned short bpf_len;

	/* landlock */
	int landlock_abi; /* 0: not applied */

	/* devices: granted nodes beyond the standard ones, and the GPUs they come from */
	struct warden_plan_device *devices;
	size_t n_devices;
	struct warden_plan_gpu *gpus;
	size_t n_gpus;
	struct bpf_insn *dev_prog; /* the cgroup v2 device program (root mode with grants) */
	size_t dev_prog_len;

	/* network: the model gateway's listener is made inside (warden_plan_enable_gateway) */
	bool gateway;

	/* limits the plan could not honour, and other things the user must be told */
	struct strv warnings;
};

/* Compile a policy (taking ownership of it). `caller_env` is the environment that
 * env_pass entries are read from. Errors name the policy key that cannot be honoured. */
struct warden_plan *warden_plan_compile(struct warden_policy *policy, char **caller_env,
                                        struct warden_error **err);
void warden_plan_free(struct warden_plan *plan);
/* Set NAME=VALUE in the sandbox's environment (replacing NAME), after compiling. */
void warden_plan_setenv(struct warden_plan *plan, const char *entry);
/* Serve the model gateway inside: its listener is made and its port opened to Landlock;
 * `token` is what the sandbox presents (OPENAI_API_KEY, ANTHROPIC_API_KEY). */
void warden_plan_enable_gateway(struct warden_plan *plan, const char *token);
/* plan-devices.c: resolve devices: and gpu: into plan->devices, plan->gpus, extra binds
 * and the device cgroup program (called by warden_plan_compile). */
int warden_plan_devices(struct warden_plan *plan, struct warden_error **err);
void warden_plan_devices_free(struct warden_plan *plan);
/* Grant the node at path (under /dev; a character or block device) with access; `what`
 * names the grant in errors ("devices[2]", "gpu"). */
int warden_plan_add_device(struct warden_plan *plan, const char *what, const char *path,
                           unsigned access, struct warden_error **err);
/* Make a host file (a driver library, nvidia-smi) visible read-only at the same path,
 * unless a read-only bind already shows it. */
void warden_plan_add_host_file(struct warden_plan *plan, const char *path);
static inline void warden_plan_freep(struct warden_plan **p)
{
	warden_plan_free(*p);
}
#define _cleanup_plan_ __attribute__((cleanup(warden_plan_freep)))

/* Default root-mode id range: far above ids that distributions hand out (and above the
 * /etc/subuid ranges of ordinary users), so a sandbox id never names a host user. */
#define WARDEN_HOST_ID_BASE  2147483648U
#define WARDEN_HOST_ID_COUNT 65536U

#endif
