/* mounts.c: mount primitives for building a sandbox's tree.
 *
 * Sections: resolving paths inside the new root (openat2 RESOLVE_IN_ROOT); detached trees
 * (open_tree + mount_setattr) and attaching them; mounting onto a resolved fd; /proc with
 * its sensitive entries masked; the parent's idmapped trees (root mode).
 *
 * Why everything under the new root is resolved with RESOLVE_IN_ROOT: with --rootfs the
 * tree is an image nobody reviewed, and a symlink such as `home -> /etc` inside it must
 * not make a mkdir or a mount land on the host. Mount targets are resolved once to an
 * O_PATH fd and mounted onto through that fd, so nothing can swap them in between.
 */
#define _GNU_SOURCE
#include "ns.h"
#include "mounts.h"
#include "../sync.h"

#include <fcntl.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>

/* ---- resolution inside the root ---------------------------------------------------- */

int root_open(int rootfd, const char *path, int flags)
{
	struct open_how how = {
	    .flags = (uint64_t)(flags | O_CLOEXEC),
	    .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	while (*path == '/')
		path++;
	if (!*path)
		path = ".";
	return (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
}

/* Split "a/b/c" into the parent's fd (resolved in root, created when asked) and "c". */
static int open_parent(int rootfd, const char *path, bool create, const char **ret_name,
                       struct warden_error **err)
{
	_cleanup_free_ char *parent = xstrdup(path);
	char *slash = strrchr(parent, '/');
	if (!slash || !slash[1])
		return warden_error_set(err, EINVAL, "%s: not a path inside the sandbox", path);
	*ret_name = path + (slash - parent) + 1;
	if (slash == parent)
		return root_open(rootfd, "/", O_PATH | O_DIRECTORY);
	*slash = '\0';
	if (create)
		return root_mkdir_p(rootfd, parent, 0755, err);
	int fd = root_open(rootfd, parent, O_PATH | O_DIRECTORY);
	if (fd < 0)
		return warden_error_set(err, errno, "%s", parent);
	return fd;
}

/* An O_PATH fd of path inside the root, made (with its parents) when missing: a
 * directory when dir, else an empty file. */
static int root_make(int rootfd, const char *path, mode_t mode, bool dir, struct warden_error **err)
{
	int kind = dir ? O_DIRECTORY : 0;
	int fd = root_open(rootfd, path, O_PATH | kind);
	if (fd >= 0 || errno != ENOENT) {
		if (fd < 0)
			return warden_error_set(err, errno, "%s", path);
		return fd;
	}
	const char *name;
	_cleanup_close_ int parent = open_parent(rootfd, path, true, &name, err);
	if (parent < 0)
		return -1;
	if (dir) {
		if (mkdirat(parent, name, mode) < 0 && errno != EEXIST)
			return warden_error_set(err, errno, "creating %s", path);
	} else {
		_cleanup_close_ int wfd =
		    openat(parent, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, mode);
		if (wfd < 0)
			return warden_error_set(err, errno, "creating %s", path);
	}
	fd = openat(parent, name, O_PATH | kind | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return warden_error_set(err, errno, "%s", path);
	return fd;
}

int root_mkdir_p(int rootfd, const char *path, mode_t mode, struct warden_error **err)
{
	return root_make(rootfd, path, mode, true, err);
}

int root_touch(int rootfd, const char *path, mode_t mode, struct warden_error **err)
{
	return root_make(rootfd, path, mode, false, err);
}

int root_write_file(int rootfd, const char *path, const char *content, mode_t mode,
                    struct warden_error **err)
{
	const char *name;
	_cleanup_close_ int parent = open_parent(rootfd, path, true, &name, err);
	if (parent < 0)
		return -1;
	_cleanup_close_ int fd =
	    openat(parent, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return warden_error_set(err, errno, "writing %s", path);
	size_t len = strlen(content);
	if (write(fd, content, len) != (ssize_t)len)
		return warden_error_set(err, errno ? errno : EIO, "writing %s", path);
	return 0;
}

int root_symlink(int rootfd, const char *target, const char *path, struct warden_error **err)
{
	const char *name;
	_cleanup_close_ int parent = open_parent(rootfd, path, true, &name, err);
	if (parent < 0)
		return -1;
	if (symlinkat(target, parent, name) < 0 && errno != EEXIST)
		return warden_error_set(err, errno, "symlink %s", path);
	return 0;
}

/* ---- mounting ---------------------------------------------------------------------- */

static void fd_path(int fd, char buf[static 32])
{
	snprintf(buf, 32, "/proc/self/fd/%d", fd);
}

int mount_on_fd(const char *src, int target, const char *type, unsigned long flags,
                const char *data, struct warden_error **err)
{
	char path[32];
	fd_path(target, path);
	if (mount(src, path, type, flags, data) < 0)
		return warden_error_set(err, errno, "mounting %s", type ? type : src);
	return 0;
}

int tree_clone(int dirfd, const char *path, struct warden_error **err)
{
	int fd = open_tree(dirfd, path,
	                   OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE |
	                       (path[0] ? 0 : AT_EMPTY_PATH));
	if (fd < 0)
		return warden_error_set(err, errno, "%s", path[0] ? path : "bind source");
	return fd;
}

int tree_setattr(int tfd, bool rw, bool nodev, int userns_fd, struct warden_error **err)
{
	struct mount_attr attr = {
	    .attr_set = MOUNT_ATTR_NOSUID | (rw ? 0 : MOUNT_ATTR_RDONLY) |
	                (nodev ? MOUNT_ATTR_NODEV : 0) | (userns_fd >= 0 ? MOUNT_ATTR_IDMAP : 0),
	    .userns_fd = (uint64_t)(userns_fd >= 0 ? userns_fd : 0),
	};
	if (mount_setattr(tfd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0)
		return warden_error_set(err, errno, "setting mount attributes");
	return 0;
}

int tree_attach(int tfd, int target, struct warden_error **err)
{
	if (move_mount(tfd, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		return warden_error_set(err, errno, "attaching");
	return 0;
}

int bind_self_rw(int rootfd, const char *path, struct warden_error **err)
{
	_cleanup_close_ int fd = root_open(rootfd, path, O_PATH | O_DIRECTORY);
	char p[32];
	if (fd < 0)
		return warden_error_set(err, errno, "%s", path);
	fd_path(fd, p);
	if (mount(p, p, NULL, MS_BIND, NULL) < 0)
		return warden_error_set(err, errno, "binding %s", path);
	return 0;
}

/* ---- /proc ------------------------------------------------------------------------- */

/* Kernel-wide information the sandbox has no use for and that helps attacks: kernel
 * memory and addresses, other tenants' key names, scheduler and timer internals, the
 * magic SysRq trigger. An entry is covered with /dev/null when it exists and its mode
 * lets "others" read or write it: the sandbox never holds host root, so entries only
 * root can open are already closed to it, and each mount saved is start-up time saved. */
static const char *const proc_masked[] = {
    "kcore",         "keys",          "key-users",  "timer_list", "sched_debug", "kallsyms",
    "sysrq-trigger", "latency_stats", "kpagecount", "kpageflags", "kpagecgroup", "vmallocinfo",
};
/* Host-wide tunables: readable (programs read limits from them), never writable. The
 * other directories of host-wide settings (irq, bus, fs) hold nothing writable by a
 * non-root user, which the sandbox always is on the host. */
static const char *const proc_readonly[] = {"sys"};

int proc_mount(int rootfd, struct warden_error **err)
{
	_cleanup_close_ int pfd = root_mkdir_p(rootfd, "/proc", 0555, err);
	if (pfd < 0)
		return -1;
	if (mount_on_fd("proc", pfd, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err) < 0)
		return -1;
	_cleanup_close_ int proc = root_open(rootfd, "/proc", O_PATH | O_DIRECTORY);
	_cleanup_close_ int null = root_open(rootfd, "/dev/null", O_PATH);
	char src[32], dst[32];
	if (proc < 0 || null < 0)
		return warden_error_set(err, errno, "opening the new /proc");
	fd_path(null, src);
	for (size_t i = 0; i < ARRAY_SIZE(proc_masked); i++) {
		struct stat st;
		if (fstatat(proc, proc_masked[i], &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !(st.st_mode & (S_IROTH | S_IWOTH)))
			continue; /* absent on this kernel, or root-only: nothing to hide */
		_cleanup_close_ int t =
		    openat(proc, proc_masked[i], O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (t < 0)
			continue;
		fd_path(t, dst);
		if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
			return warden_error_set(err, errno, "masking /proc/%s", proc_masked[i]);
	}
	for (size_t i = 0; i < ARRAY_SIZE(proc_readonly); i++) {
		_cleanup_close_ int t =
		    openat(proc, proc_readonly[i], O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
		if (t < 0)
			continue;
		_cleanup_close_ int tree = tree_clone(t, "", err);
		if (tree < 0 || tree_setattr(tree, false, true, -1, err) < 0 ||
		    tree_attach(tree, t, err) < 0)
			return warden_error_wrap(err, "making /proc/%s read-only",
			                         proc_readonly[i]);
	}
	return 0;
}

/* ---- parent side: idmapped trees (root mode) --------------------------------------- */

struct owner_ns {
	uid_t uid;
	gid_t gid;
	int fd;
};

/* One id-map namespace per distinct volume owner. */
static int owner_idmap(const struct warden_plan *plan, const char *host, struct owner_ns *cache,
                       size_t *n, struct warden_error **err)
{
	struct stat st;
	if (stat(host, &st) < 0)
		return warden_error_set(err, errno, "volume %s", host);
	for (size_t i = 0; i < *n; i++)
		if (cache[i].uid == st.st_uid && cache[i].gid == st.st_gid)
			return cache[i].fd;
	int fd = ns_userns_volume_idmap(plan, st.st_uid, st.st_gid, err);
	if (fd < 0)
		return -1;
	cache[*n] = (struct owner_ns){st.st_uid, st.st_gid, fd};
	(*n)++;
	return fd;
}

int ns_mounts_prepare_detached(const struct warden_plan *plan, pid_t child, int *fds,
                               struct warden_error **err)
{
	struct owner_ns owners[SYNC_MAX_FDS];
	size_t n_owners = 0;
	int r = 0;
	for (size_t i = 0; i <= plan->n_binds; i++)
		fds[i] = -1;
	if (plan->rootless)
		return 0;
	for (size_t i = 0; r == 0 && i < plan->n_binds; i++) {
		const struct warden_bind *b = &plan->binds[i];
		if (!b->volume)
			continue;
		int ns = owner_idmap(plan, b->host, owners, &n_owners, err);
		_cleanup_close_ int t = ns < 0 ? -1 : tree_clone(AT_FDCWD, b->host, err);
		if (t < 0 || tree_setattr(t, b->rw, true, ns, err) < 0)
			r = warden_error_wrap(err, "volume %s", b->host);
		else
			fds[i] = TAKE_FD(t);
	}
	if (r == 0 && plan->policy->rootfs) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)child);
		_cleanup_close_ int sandbox_ns = open(path, O_RDONLY | O_CLOEXEC);
		_cleanup_close_ int t = -1;
		if (sandbox_ns < 0)
			r = warden_error_set(err, errno, "opening the sandbox's user namespace");
		else if ((t = tree_clone(AT_FDCWD, plan->policy->rootfs, err)) < 0 ||
		         tree_setattr(t, false, true, sandbox_ns, err) < 0)
			r = warden_error_wrap(err, "rootfs %s", plan->policy->rootfs);
		else
			fds[plan->n_binds] = TAKE_FD(t);
	}
	for (size_t i = 0; i < n_owners; i++)
		close(owners[i].fd);
	if (r < 0)
		for (size_t i = 0; i <= plan->n_binds; i++)
			if (fds[i] >= 0)
				close(TAKE_FD(fds[i]));
	return r;
}
