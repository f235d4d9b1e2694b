/* ns.h: the namespace backend's internal interface, one section per file.
 *
 * The child side applies its layers in one fixed order (init/init.c drives it):
 *   user ns (userns.c, written by the parent) -> mounts/rootfs (rootfs.c, mounts.c,
 *   devices.c) -> pid/ipc/uts/net/cgroup ns (net.c) -> rlimits (rlimits.c) -> cgroup
 *   limits (cgroup*.c, applied by the parent) -> capabilities (caps.c) -> no_new_privs ->
 *   Landlock (landlock.c) -> seccomp (seccomp.c) -> exec.
 * Child-side functions run in the forked init: they never allocate from shared state the
 * parent frees, and report failures through the error contract for init to forward.
 */
#ifndef WARDEN_NS_H
#define WARDEN_NS_H

#include "../error.h"
#include "../plan.h"
#include "../sandbox.h"

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* ---- seccomp.c --------------------------------------------------------------------- */

struct ns_seccomp_rule {
	const char *name;   /* system call */
	const char *reason; /* why an agent never needs it (docs/security.md repeats these) */
};
/* The system calls refused outright with EPERM, NULL-terminated. */
extern const struct ns_seccomp_rule ns_seccomp_denied[];

/* Compile the policy's filter to BPF (once per plan): a program precompiled at build
 * time when the policy's seccomp settings match a preset's, libseccomp otherwise. */
int ns_seccomp_compile(const struct warden_policy *p, struct sock_filter **ret_prog,
                       unsigned short *ret_len, struct warden_error **err);
/* Always with libseccomp. */
int ns_seccomp_compile_fresh(const struct warden_policy *p, struct sock_filter **ret_prog,
                             unsigned short *ret_len, struct warden_error **err);
/* What the program depends on, as a string: equal keys, equal programs. */
char *ns_seccomp_key(const struct warden_policy *p);
/* Whether the policy has a read-write volume, which adds the setuid/setgid mode rules. */
bool ns_seccomp_guards_volumes(const struct warden_policy *p);

struct ns_seccomp_program {
	const char *key;
	const struct sock_filter *prog;
	unsigned short len;
};
/* Generated at build time by src/tools/gen-seccomp.c; ends with a NULL key. */
extern const struct ns_seccomp_program ns_seccomp_precompiled[];
/* Load the plan's program into the calling process (no_new_privs must be set). */
int ns_seccomp_apply(const struct warden_plan *plan, struct warden_error **err);

/* ---- landlock.c -------------------------------------------------------------------- */

/* The kernel's Landlock ABI version, 0 when unavailable; probed once per process. */
int ns_landlock_abi(void);
/* Restrict the calling process to the plan's filesystem and network rules. Runs after
 * pivot_root, so paths are the sandbox's; workdir_rw when warden created the working
 * directory (it is then writable like home). */
int ns_landlock_apply(const struct warden_plan *plan, bool workdir_rw, struct warden_error **err);

/* ---- caps.c ------------------------------------------------------------------------ */

/* For init: lock the securebits so that uid 0 never regains capabilities on exec, and
 * keep only CAP_SETUID, CAP_SETGID, CAP_SETPCAP (to become the sandbox user and then drop
 * those too in each started process) and CAP_KILL (to forward signals). */
int ns_caps_restrict_init(struct warden_error **err);
/* For a started process: drop every capability from every set, for good. */
int ns_caps_drop_all(struct warden_error **err);

/* ---- rlimits.c --------------------------------------------------------------------- */

int ns_rlimits_apply(const struct warden_plan *plan, struct warden_error **err);

/* ---- net.c ------------------------------------------------------------------------- */

/* Bring up loopback in the sandbox's fresh network namespace. */
int ns_net_loopback_up(struct warden_error **err);
/* The listeners the plan wants inside (proxy mode, the gateway), bound to 127.0.0.1 and
 * listening; fds[i] is -1 where none is wanted. */
int ns_net_listeners(const struct warden_plan *plan, int fds[WARDEN_NET_LISTENERS],
                     struct warden_error **err);

/* ---- userns.c (parent side) -------------------------------------------------------- */

/* Write uid_map/gid_map (and setgroups) for the freshly cloned child. */
int ns_userns_write_maps(pid_t pid, const struct warden_plan *plan, struct warden_error **err);
/* Root mode: a user namespace that maps a volume owner's ids to the sandbox user's host
 * ids, used to idmap that volume so that files created inside belong to its owner. */
int ns_userns_volume_idmap(const struct warden_plan *plan, uid_t owner_uid, gid_t owner_gid,
                           struct warden_error **err);

/* ---- mounts.c (parent side; the child-side primitives are in mounts.h) ----------- */

/* Root mode: detached, idmapped trees for every volume (fds[i] for binds[i]) and for the
 * rootfs (fds[n_binds]), -1 where none; fds has n_binds + 1 entries. A volume is mapped
 * so that its owner's files are the sandbox user's inside and files created inside belong
 * to its owner outside (`sudo warden run -v ~/proj:/work` leaves files owned by you, not
 * by root); the rootfs so that its files appear owned by the sandbox's own ids. */
int ns_mounts_prepare_detached(const struct warden_plan *plan, pid_t child, int *fds,
                               struct warden_error **err);

/* ---- devices.c --------------------------------------------------------------------- */

/* Populate the new root's /dev: null zero full random urandom tty, a private devpts,
 * ptmx, shm, the fd links, and the plan's granted nodes. */
int ns_devices_setup(int rootfd, const struct warden_plan *plan, struct warden_error **err);

/* ---- devcgroup.c ------------------------------------------------------------------ */

#define NS_DEV_ANY 0xffffffffu /* a rule's minor: every minor of the major */

/* The cgroup v2 device program for the standard nodes and the plan's devices, as BPF
 * instructions into plan->dev_prog (once per plan). */
void ns_devcgroup_compile(struct warden_plan *plan);
/* Load plan->dev_prog and attach it to the v2 group at `group` (BPF_F_ALLOW_MULTI). */
int ns_devcgroup_v2(const char *group, const struct warden_plan *plan, struct warden_error **err);
/* Write the same rules into a v1 devices group (dirfd): deny all, then allow each. */
int ns_devcgroup_v1(int dirfd, const struct warden_plan *plan, struct warden_error **err);

/* ---- rootfs.c ---------------------------------------------------------------------- */

/* Build the sandbox's root under a fresh tmpfs and pivot into it. tree_fds has
 * n_binds + 1 entries: detached trees the parent prepared (root mode), -1 elsewhere; they
 * are consumed. Sets *ret_workdir_created when the working directory had to be made. */
int ns_rootfs_setup(const struct warden_plan *plan, int *tree_fds, bool *ret_workdir_created,
                    struct warden_error **err);

/* ---- cgroup.c ---------------------------------------------------------------------- */

enum ns_cgroup_mode {
	NS_CGROUP_NONE,
	NS_CGROUP_V1,
	NS_CGROUP_V2,
	NS_CGROUP_MODE_MAX,
};

#define NS_CGROUP_V1_CONTROLLERS 3 /* memory, pids, cpu */

struct ns_cgroup {
	enum ns_cgroup_mode mode;
	char *v2_path;                            /* grouping (and limits on pure v2) */
	int v2_fd;                                /* the v2 group's directory, or -1 */
	char *v1_paths[NS_CGROUP_V1_CONTROLLERS]; /* NULL where not used */
	char *v1_devices;                         /* the v1 devices group, or NULL */
	struct strv warnings;
};

/* Which hierarchy holds the controllers on this host; probed once per process. */
enum ns_cgroup_mode ns_cgroup_host_mode(void);
/* Create the sandbox's cgroups and write its limits. Limits that cannot be applied
 * (rootless without delegation) become warnings, not errors. */
int ns_cgroup_create(const char *id, const struct warden_plan *plan, struct ns_cgroup *cg,
                     struct warden_error **err);
/* Move pid into the sandbox's groups. */
int ns_cgroup_attach(struct ns_cgroup *cg, pid_t pid, struct warden_error **err);
/* Remove the groups; the sandbox's processes must be gone. */
void ns_cgroup_destroy(struct ns_cgroup *cg);
/* Read what the groups say about the sandbox now. */
void ns_cgroup_sample(const struct ns_cgroup *cg, struct warden_sample *s);
/* The v2 freezer (cgroup.freeze, also on the v2 tree of hybrid hosts) and cgroup.kill. */
bool ns_cgroup_can_freeze(const struct ns_cgroup *cg);
int ns_cgroup_freeze(const struct ns_cgroup *cg, bool frozen, struct warden_error **err);
int ns_cgroup_kill(const struct ns_cgroup *cg);
/* The id of a cgroup v2 directory (what BPF's bpf_get_current_cgroup_id() returns for its
 * tasks). Returns 0 or -errno. */
int ns_cgroup_id(const char *path, uint64_t *ret_id);
/* Remove the empty groups under parent older than max_age seconds (left behind by
 * supervisors that were killed); populated ones are never removed. */
void ns_cgroup_sweep(const char *parent, time_t max_age);

/* cgroup-v1.c / cgroup-v2.c: write limits into an existing group directory. */
int ns_cgroup_v1_limits(int ctrl, int dirfd, const struct warden_policy *p,
                        struct warden_error **err);
int ns_cgroup_v2_limits(int dirfd, const struct warden_policy *p, struct warden_error **err);
extern const char *const ns_cgroup_v1_names[NS_CGROUP_V1_CONTROLLERS];

#endif
