/* rootfs.c: the sandbox's file system tree, built in the child's mount namespace.
 *
 * Sections: capturing sources; the staging root (a size-limited tmpfs, or an overlay of
 * --rootfs over one); binds and links; writable places; generated files; pivot_root.
 *
 * The tree: a fresh tmpfs as /, read-only once built, holding the host's system paths as
 * read-only binds, a private /tmp, /var/tmp, /dev/shm and home (the writable layer, all
 * on that one tmpfs, so tmp_size bounds them together), a minimal /dev, a fresh /proc
 * and the volumes. Nothing else of the host exists inside: no /home, /root, /run, /var
 * contents, /sys or /mnt. With --rootfs the image is the lower layer of an overlay whose
 * upper layer is the same tmpfs: writable, ephemeral, bounded.
 */
#define _GNU_SOURCE
#include "ns.h"
#include "mounts.h"

#include <fcntl.h>
#include <inttypes.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#define STAGING "/tmp"

/* Detached copies of every bind source, taken before the staging tmpfs can shadow any
 * of them (a volume under the host's /tmp is common). Root mode's idmapped trees come
 * from the parent already. */
static int capture_sources(const struct warden_plan *plan, int *tree_fds, struct warden_error **err)
{
	for (size_t i = 0; i < plan->n_binds; i++) {
		const struct warden_bind *b = &plan->binds[i];
		if (b->symlink || tree_fds[i] >= 0)
			continue;
		tree_fds[i] = tree_clone(AT_FDCWD, b->host, err);
		if (tree_fds[i] < 0 || tree_setattr(tree_fds[i], b->rw, true, -1, err) < 0)
			return warden_error_wrap(err, "%s %s", b->volume ? "volume" : "read_only",
			                         b->host);
	}
	const char *rootfs = plan->policy->rootfs;
	int *rfd = &tree_fds[plan->n_binds];
	if (rootfs && *rfd < 0) {
		*rfd = tree_clone(AT_FDCWD, rootfs, err);
		if (*rfd < 0 || tree_setattr(*rfd, false, true, -1, err) < 0)
			return warden_error_wrap(err, "rootfs %s", rootfs);
	}
	return 0;
}

/* With an image, fresh directories of the scratch tmpfs are bound over these (the
 * image's own may be anything, and are not the sandbox's business). */
static const char *const image_scratch[][2] = {
    {"tmp", "/tmp"},
    {"vartmp", "/var/tmp"},
    {"shm", "/dev/shm"},
};

/* The staging root: returns an O_PATH fd of what becomes /. */
static int staging_root(const struct warden_plan *plan, int rootfs_tree, struct warden_error **err)
{
	char opts[96];
	snprintf(opts, sizeof(opts), "size=%" PRIu64 ",mode=0755", plan->policy->tmp_size);
	if (mount("tmpfs", STAGING, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
		return warden_error_set(err, errno, "mounting the writable layer on " STAGING);
	int fd = open(STAGING, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return warden_error_set(err, errno, STAGING);
	if (rootfs_tree < 0)
		return fd;

	_cleanup_close_ int scratch = fd;
	static const char *const dirs[] = {"lower", "upper", "work", "root"};
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
		if (mkdirat(scratch, dirs[i], 0755) < 0)
			return warden_error_set(err, errno, "creating %s", dirs[i]);
	for (size_t i = 0; i < ARRAY_SIZE(image_scratch); i++)
		if (mkdirat(scratch, image_scratch[i][0], 01777) < 0)
			return warden_error_set(err, errno, "creating %s", image_scratch[i][0]);
	_cleanup_close_ int lower = openat(scratch, "lower", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (lower < 0 || tree_attach(rootfs_tree, lower, err) < 0)
		return warden_error_wrap(err, "rootfs");
	/* userxattr: overlay inside a user namespace keeps its metadata in user.* xattrs. */
	if (mount("overlay", STAGING "/root", "overlay", MS_NOSUID | MS_NODEV,
	          "lowerdir=" STAGING "/lower,upperdir=" STAGING "/upper,workdir=" STAGING
	          "/work,userxattr") < 0)
		return warden_error_set(err, errno, "mounting the rootfs overlay");
	fd = open(STAGING "/root", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return warden_error_set(err, errno, STAGING "/root");
	return fd;
}

static int place_binds(const struct warden_plan *plan, int rootfd, int *tree_fds,
                       struct warden_error **err)
{
	for (size_t i = 0; i < plan->n_binds; i++) {
		const struct warden_bind *b = &plan->binds[i];
		if (b->symlink) {
			if (root_symlink(rootfd, b->symlink, b->path, err) < 0)
				return -1;
			continue;
		}
		_cleanup_close_ int target = b->is_dir ? root_mkdir_p(rootfd, b->path, 0755, err)
		                                       : root_touch(rootfd, b->path, 0644, err);
		if (target < 0 || tree_attach(tree_fds[i], target, err) < 0)
			return warden_error_wrap(err, "%s %s", b->volume ? "volume" : "read_only",
			                         b->path);
		close(tree_fds[i]);
		tree_fds[i] = -1;
	}
	return 0;
}

static int make_dir_owned(int rootfd, const char *path, mode_t mode, uid_t uid, gid_t gid,
                          struct warden_error **err)
{
	_cleanup_close_ int fd = root_mkdir_p(rootfd, path, mode, err);
	if (fd < 0)
		return -1;
	/* Through the O_PATH fd: fchownat/fchmodat with AT_EMPTY_PATH act on exactly the
	 * directory resolved inside the root. */
	if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH) < 0)
		return warden_error_set(err, errno, "chown %s", path);
	char p[32];
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	if (chmod(p, mode) < 0)
		return warden_error_set(err, errno, "chmod %s", path);
	return 0;
}

/* /etc/passwd, /etc/group and /etc/hosts inside. Where /etc is the host's (read-only),
 * each generated file is bound over the host's; the staging copy is unlinked at once, so
 * it exists only as that mount. Elsewhere (a partial /etc, an image) it is written. */
static int place_generated(int rootfd, bool cover, const char *path, const char *content,
                           struct warden_error **err)
{
	if (!cover)
		return root_write_file(rootfd, path, content, 0644, err);
	_cleanup_close_ int target = root_open(rootfd, path, O_PATH);
	if (target < 0)
		return 0; /* nothing to cover: the host's /etc has no such file */
	const char *tmp = ".warden-generated";
	_cleanup_close_ int fd =
	    openat(rootfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	size_t len = strlen(content);
	if (fd < 0 || write(fd, content, len) != (ssize_t)len)
		return warden_error_set(err, errno ? errno : EIO, "writing %s", path);
	char src[32];
	snprintf(src, sizeof(src), "/proc/self/fd/%d", fd);
	if (mount_on_fd(src, target, NULL, MS_BIND, NULL, err) < 0)
		return warden_error_wrap(err, "%s", path);
	if (unlinkat(rootfd, tmp, 0) < 0)
		return warden_error_set(err, errno, "removing the staging copy of %s", path);
	return 0;
}

/* Whether /etc inside is the host's directory, bound read-only. */
static bool etc_is_bound(const struct warden_plan *plan)
{
	for (size_t i = 0; i < plan->n_binds; i++)
		if (streq(plan->binds[i].path, "/etc") && !plan->binds[i].symlink)
			return !plan->binds[i].rw;
	return false;
}

static int writable_layer(const struct warden_plan *plan, int rootfd, bool *ret_workdir_created,
                          struct warden_error **err)
{
	const struct warden_policy *p = plan->policy;
	/* umask is 0 during setup: the modes are exact for what is created here. */
	static const char *const tmps[] = {"/tmp", "/var/tmp"};
	for (size_t i = 0; i < ARRAY_SIZE(tmps); i++) {
		_cleanup_close_ int t = root_mkdir_p(rootfd, tmps[i], 01777, err);
		if (t < 0)
			return -1;
	}
	if (make_dir_owned(rootfd, plan->home, 0700, p->uid, p->gid, err) < 0)
		return -1;
	_cleanup_close_ int wd = root_open(rootfd, plan->workdir, O_PATH | O_DIRECTORY);
	*ret_workdir_created = false;
	if (wd < 0) {
		if (errno != ENOENT)
			return warden_error_set(err, errno, "workdir %s", plan->workdir);
		if (make_dir_owned(rootfd, plan->workdir, 0755, p->uid, p->gid, err) < 0)
			return warden_error_wrap(err, "workdir");
		*ret_workdir_created = true;
	}
	return 0;
}

static int pivot(int rootfd, struct warden_error **err)
{
	if (fchdir(rootfd) < 0)
		return warden_error_set(err, errno, "entering the new root");
	/* pivot_root(".", "."): the old root is stacked under the new one and detached at
	 * once, so no path to the host's tree remains. */
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return warden_error_set(err, errno, "pivot_root");
	if (umount2(".", MNT_DETACH) < 0)
		return warden_error_set(err, errno, "detaching the old root");
	if (chdir("/") < 0)
		return warden_error_set(err, errno, "chdir /");
	return 0;
}

static int build_tree(const struct warden_plan *plan, int *tree_fds, bool *ret_workdir_created,
                      struct warden_error **err)
{
	bool image = plan->policy->rootfs != NULL;
	/* Nothing done here may propagate back to the host's mount namespace. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return warden_error_set(err, errno, "making mounts private");
	if (capture_sources(plan, tree_fds, err) < 0)
		return -1;
	_cleanup_close_ int rootfd = staging_root(plan, tree_fds[plan->n_binds], err);
	if (rootfd < 0)
		return -1;
	if (image)
		tree_fds[plan->n_binds] = -1; /* consumed by the overlay */
	if (place_binds(plan, rootfd, tree_fds, err) < 0)
		return -1;
	if (writable_layer(plan, rootfd, ret_workdir_created, err) < 0) {
		if (image && plan->rootless && err && *err &&
		    ((*err)->errnum == EACCES || (*err)->errnum == EPERM))
			warden_error_wrap(err,
			                  "rootfs (an image used without root must be owned by "
			                  "the user running warden)");
		return -1;
	}
	if (image) {
		/* Hide the image's own /dev behind a small tmpfs before populating it. */
		_cleanup_close_ int dev = root_mkdir_p(rootfd, "/dev", 0755, err);
		if (dev < 0 || mount_on_fd("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC,
		                           "size=64k,mode=0755", err) < 0)
			return warden_error_wrap(err, "/dev");
	}
	if (ns_devices_setup(rootfd, plan, err) < 0)
		return warden_error_wrap(err, "devices");
	bool cover = !image && etc_is_bound(plan);
	if (place_generated(rootfd, cover, "/etc/passwd", plan->passwd, err) < 0 ||
	    place_generated(rootfd, cover, "/etc/group", plan->group, err) < 0 ||
	    place_generated(rootfd, cover, "/etc/hosts", plan->hosts, err) < 0 ||
	    (plan->resolv_conf &&
	     place_generated(rootfd, cover, "/etc/resolv.conf", plan->resolv_conf, err) < 0))
		return warden_error_wrap(err, "generated files");
	/* The writable places become mounts of their own, so that they stay writable when
	 * the root is made read-only below. */
	const char *rw[] = {"/tmp", "/var/tmp", "/dev/shm", plan->home,
	                    *ret_workdir_created ? plan->workdir : NULL};
	if (image) {
		for (size_t i = 0; i < ARRAY_SIZE(image_scratch); i++) {
			_cleanup_free_ char *src = xasprintf(STAGING "/%s", image_scratch[i][0]);
			_cleanup_close_ int t =
			    root_open(rootfd, image_scratch[i][1], O_PATH | O_DIRECTORY);
			if (t < 0)
				return warden_error_set(err, errno, "%s", image_scratch[i][1]);
			if (mount_on_fd(src, t, NULL, MS_BIND, NULL, err) < 0)
				return warden_error_wrap(err, "%s", image_scratch[i][1]);
		}
	} else {
		for (size_t i = 0; i < ARRAY_SIZE(rw); i++)
			if (rw[i] && bind_self_rw(rootfd, rw[i], err) < 0)
				return -1;
	}
	if (proc_mount(rootfd, err) < 0)
		return warden_error_wrap(err, "/proc");
	if (pivot(rootfd, err) < 0)
		return -1;
	if (image) {
		if (mount(NULL, "/dev", NULL,
		          MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC, NULL) < 0)
			return warden_error_set(err, errno, "making /dev read-only");
	} else if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV,
	                 NULL) < 0) {
		return warden_error_set(err, errno, "making / read-only");
	}
	return 0;
}

int ns_rootfs_setup(const struct warden_plan *plan, int *tree_fds, bool *ret_workdir_created,
                    struct warden_error **err)
{
	if (build_tree(plan, tree_fds, ret_workdir_created, err) == 0)
		return 0;
	/* Without root, the image's files are only the sandbox's if they are the caller's:
	 * everything else is owned by ids the user namespace cannot map. */
	if (plan->policy->rootfs && plan->rootless && err && *err &&
	    ((*err)->errnum == EACCES || (*err)->errnum == EPERM))
		warden_error_wrap(err, "rootfs (an image used without root must be owned by the "
		                       "user running warden)");
	return -1;
}
