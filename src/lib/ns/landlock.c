/* landlock.c: Landlock rules matching the mount plan, at the best ABI the kernel has.
 *
 * Sections: ABI probe; access sets per kind of path; the ruleset; restriction.
 *
 * Why Landlock on top of the mount namespace: the mount plan decides what exists inside;
 * Landlock decides what may be changed, and keeps holding if a mount-level mistake or a
 * kernel bug exposes more. It also covers what mounts cannot: device ioctls, creating
 * device nodes, TCP bind/connect by port, abstract unix sockets and signals to processes
 * outside the sandbox's domain.
 *
 * Why reading, executing and truncating are not handled: everything the mount plan makes
 * visible is meant to be read and run, so a rule would have to grant all of it again, and
 * a handled right costs a walk up the path on every open (docs/benchmarks.md). Truncation
 * is possible only where writing is, and writing is what the rules confine.
 */
#define _GNU_SOURCE
#include "ns.h"
#include "../../include/uapi/landlock.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#define FS_ABI1                                                                                    \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |                              \
	 LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |                              \
	 LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |                          \
	 LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR |                              \
	 LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |                              \
	 LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |                            \
	 LANDLOCK_ACCESS_FS_MAKE_SYM)

/* Writable places: everything but creating device nodes and device ioctls. */
#define ACCESS_RW                                                                                  \
	((FS_ABI1 | LANDLOCK_ACCESS_FS_REFER | LANDLOCK_ACCESS_FS_TRUNCATE) &                      \
	 ~(LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_BLOCK))
/* Device nodes like /dev/null: read, write, and O_TRUNC (shell `>/dev/null`). */
#define ACCESS_DEV                                                                                 \
	(LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_TRUNCATE)
/* Terminals also need their ioctls (TCGETS, TIOCGWINSZ, ...). */
#define ACCESS_TTY (ACCESS_DEV | LANDLOCK_ACCESS_FS_IOCTL_DEV)
/* /proc: read everything the mounts leave visible, write what procfs permits (comm,
 * oom_score_adj); the sensitive entries are masked or read-only mounts. */
#define ACCESS_PROC                                                                                \
	(LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_WRITE_FILE)

static int ll_create(const struct landlock_ruleset_attr *attr, size_t size, uint32_t flags)
{
	return (int)syscall(SYS_landlock_create_ruleset, attr, size, flags);
}

static int ll_add(int fd, enum landlock_rule_type type, const void *attr)
{
	return (int)syscall(SYS_landlock_add_rule, fd, type, attr, 0);
}

int ns_landlock_abi(void)
{
	static int abi = -1;
	if (abi < 0) {
		int v = ll_create(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
		abi = v < 0 ? 0 : v;
	}
	return abi;
}

static uint64_t handled_fs(int abi)
{
	uint64_t a = FS_ABI1 & ~(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE |
	                         LANDLOCK_ACCESS_FS_READ_DIR);
	if (abi >= 2)
		a |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 5)
		a |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	return a;
}

struct ruleset {
	int fd;
	uint64_t fs;
};

/* Grant `access` beneath `path` (a directory) or on it (a file). A path that does not
 * exist inside is skipped: the mount plan did not create it, so there is nothing to
 * grant. */
static int grant_path(struct ruleset *rs, const char *path, uint64_t access,
                      struct warden_error **err)
{
	_cleanup_close_ int fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return warden_error_set(err, errno, "rule for %s", path);
	}
	struct stat st;
	if (fstat(fd, &st) < 0)
		return warden_error_set(err, errno, "rule for %s", path);
	if (!S_ISDIR(st.st_mode))
		access &= ACCESS_TTY | LANDLOCK_ACCESS_FS_EXECUTE;
	struct landlock_path_beneath_attr pb = {.allowed_access = access & rs->fs, .parent_fd = fd};
	if (!pb.allowed_access)
		return 0; /* nothing handled to grant here */
	if (ll_add(rs->fd, LANDLOCK_RULE_PATH_BENEATH, &pb) < 0)
		return warden_error_set(err, errno, "rule for %s", path);
	return 0;
}

/* The caller's stdin/stdout/stderr may be a terminal or a file outside the sandbox.
 * Programs reopen them through /dev/stdout (/proc/self/fd/N); grant exactly those
 * inodes, never a directory, so that what the caller handed in keeps working and
 * nothing beside it opens up. Pipes and sockets need no rule. */
static int grant_stdio(struct ruleset *rs, struct warden_error **err)
{
	for (int fd = 0; fd <= 2; fd++) {
		struct stat st;
		char link[32];
		if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISCHR(st.st_mode)))
			continue;
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		_cleanup_close_ int pfd = open(link, O_PATH | O_CLOEXEC);
		if (pfd < 0)
			continue; /* not reachable by path at all: nothing to grant */
		struct landlock_path_beneath_attr pb = {
		    .allowed_access = (S_ISCHR(st.st_mode) ? ACCESS_TTY : ACCESS_DEV) & rs->fs,
		    .parent_fd = pfd,
		};
		if (ll_add(rs->fd, LANDLOCK_RULE_PATH_BENEATH, &pb) < 0)
			return warden_error_set(err, errno, "rule for standard fd %d", fd);
	}
	return 0;
}

static int grant_ports(struct ruleset *rs, const struct warden_ports *ports, uint64_t access,
                       struct warden_error **err)
{
	for (size_t i = 0; i < ports->n; i++) {
		struct landlock_net_port_attr np = {.allowed_access = access, .port = ports->v[i]};
		if (ll_add(rs->fd, LANDLOCK_RULE_NET_PORT, &np) < 0)
			return warden_error_set(err, errno, "rule for TCP port %u", ports->v[i]);
	}
	return 0;
}

static int add_fs_rules(struct ruleset *rs, const struct warden_plan *plan, bool workdir_rw,
                        struct warden_error **err)
{
	static const char *const devs[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random",
	                                   "/dev/urandom"};
	/* With --rootfs the root is an ephemeral overlay the sandbox may change; otherwise
	 * nothing outside the places below may be changed. */
	if (plan->policy->rootfs && grant_path(rs, "/", ACCESS_RW, err) < 0)
		return -1;
	static const char *const scratch[] = {"/tmp", "/var/tmp", "/dev/shm"};
	for (size_t i = 0; i < ARRAY_SIZE(scratch); i++)
		if (grant_path(rs, scratch[i], ACCESS_RW, err) < 0)
			return -1;
	if (grant_path(rs, plan->home, ACCESS_RW, err) < 0)
		return -1;
	if (workdir_rw && grant_path(rs, plan->workdir, ACCESS_RW, err) < 0)
		return -1;
	for (size_t i = 0; i < plan->n_binds; i++)
		if (plan->binds[i].rw && !plan->binds[i].symlink &&
		    grant_path(rs, plan->binds[i].path, ACCESS_RW, err) < 0)
			return -1;
	for (size_t i = 0; i < ARRAY_SIZE(devs); i++)
		if (grant_path(rs, devs[i], ACCESS_DEV, err) < 0)
			return -1;
	/* Granted devices: writing only where the grant says w; ioctl on every one (a GPU is
	 * driven through ioctls). The device cgroup enforces the same access by number. */
	for (size_t i = 0; i < plan->n_devices; i++)
		if (grant_path(rs, plan->devices[i].path,
		               ((plan->devices[i].access & WARDEN_DEV_WRITE) ? ACCESS_DEV : 0) |
		                   LANDLOCK_ACCESS_FS_IOCTL_DEV,
		               err) < 0)
			return -1;
	if (grant_path(rs, "/dev/tty", ACCESS_TTY, err) < 0 ||
	    grant_path(rs, "/dev/pts", ACCESS_TTY, err) < 0 ||
	    grant_path(rs, "/proc", ACCESS_PROC, err) < 0)
		return -1;
	return grant_stdio(rs, err);
}

int ns_landlock_apply(const struct warden_plan *plan, bool workdir_rw, struct warden_error **err)
{
	int abi = plan->landlock_abi;
	if (abi <= 0)
		return 0;
	struct landlock_ruleset_attr attr = {.handled_access_fs = handled_fs(abi)};
	size_t size = sizeof(uint64_t);
	const struct warden_policy *p = plan->policy;
	bool bind_any = p->tcp_bind.any, connect_any = p->tcp_connect.any;
	if (abi >= 4) {
		/* TCP bind/connect only on the ports the policy lists (none by default, even with
		 * network.mode host: the host's loopback services stay closed unless the policy
		 * names them, or says "any"). */
		attr.handled_access_net = (bind_any ? 0 : LANDLOCK_ACCESS_NET_BIND_TCP) |
		                          (connect_any ? 0 : LANDLOCK_ACCESS_NET_CONNECT_TCP);
		size = 2 * sizeof(uint64_t);
	}
	if (abi >= 6) {
		/* Abstract unix sockets and signals only within the sandbox's own domain: the
		 * network and pid namespaces already separate them, this holds even with
		 * network.mode: host. */
		attr.scoped = LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL;
		size = sizeof(attr);
	}
	struct ruleset rs = {.fs = attr.handled_access_fs};
	rs.fd = ll_create(&attr, size, 0);
	if (rs.fd < 0)
		return warden_error_set(err, errno, "creating the ruleset (ABI %d)", abi);
	_cleanup_close_ int rsfd = rs.fd;
	if (add_fs_rules(&rs, plan, workdir_rw, err) < 0)
		return -1;
	if (abi >= 4 &&
	    ((!bind_any && grant_ports(&rs, &p->tcp_bind, LANDLOCK_ACCESS_NET_BIND_TCP, err) < 0) ||
	     (!connect_any &&
	      grant_ports(&rs, &p->tcp_connect, LANDLOCK_ACCESS_NET_CONNECT_TCP, err) < 0)))
		return -1;
	if (syscall(SYS_landlock_restrict_self, rsfd, 0) < 0)
		return warden_error_set(err, errno, "restricting init");
	return 0;
}
