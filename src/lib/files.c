/* files.c: file operations inside a running sandbox's root, from the host (files.h).
 *
 * Sections: identity; resolving; the root; paths; read and write; stat and list;
 * delete; mkdir.
 */
#define _GNU_SOURCE
#include "files.h"
#include "util.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>

#define DELETE_DEPTH_MAX 256

const char *const warden_file_type_names[WARDEN_FILE_TYPE_MAX] = {
    [WARDEN_FILE_REGULAR] = "file",
    [WARDEN_FILE_DIR] = "dir",
    [WARDEN_FILE_SYMLINK] = "symlink",
    [WARDEN_FILE_OTHER] = "other",
};

/* ---- identity ---------------------------------------------------------------------- */

/* Why the sandbox user's identity: the sandbox's tree holds more than the sandbox's own
 * files. The host's /etc is bound in read-only, with /etc/shadow (root:shadow 0640) in
 * it; volumes are host directories. As root, with CAP_DAC_OVERRIDE, the daemon could read
 * or write all of them through the sandbox's root although the sandbox user cannot, and
 * the files API would hand the API's caller more than the sandbox has. With the sandbox
 * user's fsuid/fsgid the kernel's permission checks are the sandbox user's, and changing
 * the fsuid from 0 drops the file capabilities (CAP_DAC_*, CAP_FOWNER, CAP_CHOWN) from the
 * effective set until it is changed back (capabilities(7)). Rootless (as_user unset) the
 * caller is the sandbox's user already, mapped: nothing to switch. */
struct fsid {
	const struct warden_root *r;
	uid_t old_uid;
	gid_t old_gid;
	bool on;
};

static int fsid_enter(const struct warden_root *r, struct fsid *s, struct warden_error **err)
{
	s->r = r;
	s->on = false;
	if (!r->as_user)
		return 0;
	s->old_gid = (gid_t)setfsgid(r->gid);
	s->old_uid = (uid_t)setfsuid(r->uid);
	s->on = true;
	/* setfsuid() reports no errors: read the identity back and refuse to go on with any
	 * other. */
	if ((uid_t)setfsuid((uid_t)-1) != r->uid || (gid_t)setfsgid((gid_t)-1) != r->gid)
		return warden_error_set(err, EPERM, "taking the sandbox user's identity (%u:%u)",
		                        (unsigned)r->uid, (unsigned)r->gid);
	return 0;
}

static void fsid_leave(struct fsid *s)
{
	if (!s->on)
		return;
	int saved = errno;
	setfsuid(s->old_uid);
	setfsgid(s->old_gid);
	s->on = false;
	errno = saved;
}

#define _cleanup_fsid_ __attribute__((cleanup(fsid_leave)))

/* ---- resolving --------------------------------------------------------------------- */

static int openat2_retry(int dirfd, const char *path, uint64_t flags, uint64_t mode,
                         uint64_t resolve)
{
	struct open_how how = {.flags = flags | O_CLOEXEC, .mode = mode, .resolve = resolve};
	/* EAGAIN: a concurrent rename made the kernel unsure that ".." stayed inside; the
	 * sandbox can cause that at will, so retry a bounded number of times. */
	for (int i = 0; i < 32; i++) {
		long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
		if (fd >= 0 || errno != EAGAIN)
			return (int)fd;
	}
	return -1;
}

/* path (absolute, as the sandbox sees it) under the sandbox's root. */
static int resolve(const struct warden_root *r, const char *path, uint64_t flags)
{
	return openat2_retry(r->fd, path, flags, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
}

/* Kernel interfaces (procfs, sysfs, ...) mounted in the sandbox are not files: reading
 * /proc/kcore or writing /proc/sys through the API is not the API's business, whatever
 * the permission bits say. */
static int refuse_kernel_fs(int fd, const char *path, struct warden_error **err)
{
	struct statfs s;
	if (fstatfs(fd, &s) < 0)
		return warden_error_set(err, errno, "%s", path);
	switch ((unsigned long)s.f_type) {
	case PROC_SUPER_MAGIC:
	case SYSFS_MAGIC:
	case CGROUP_SUPER_MAGIC:
	case CGROUP2_SUPER_MAGIC:
	case DEBUGFS_MAGIC:
	case TRACEFS_MAGIC:
	case SECURITYFS_MAGIC:
	case BPF_FS_MAGIC:
	case DEVPTS_SUPER_MAGIC:
	case SELINUX_MAGIC:
	case SMACK_MAGIC:
	case EFIVARFS_MAGIC:
	case PSTOREFS_MAGIC:
		return warden_error_set(err, EACCES, "%s: on a kernel file system, not served",
		                        path);
	}
	return 0;
}

/* path resolved under the root with flags (errors name `name`), and refused on a kernel
 * file system; *ret_st: its stat. */
static int open_in_root(const struct warden_root *r, const char *path, const char *name,
                        uint64_t flags, struct stat *ret_st, struct warden_error **err)
{
	_cleanup_close_ int fd = resolve(r, path, flags);
	if (fd < 0 || fstat(fd, ret_st) < 0)
		return warden_error_set(err, errno, "%s", name);
	if (refuse_kernel_fs(fd, name, err) < 0)
		return -1;
	return TAKE_FD(fd);
}

static void fill_info(const struct stat *st, struct warden_file_info *ret)
{
	if (!ret)
		return;
	ret->type = S_ISREG(st->st_mode)   ? WARDEN_FILE_REGULAR
	            : S_ISDIR(st->st_mode) ? WARDEN_FILE_DIR
	            : S_ISLNK(st->st_mode) ? WARDEN_FILE_SYMLINK
	                                   : WARDEN_FILE_OTHER;
	ret->size = (uint64_t)st->st_size;
	ret->mode = st->st_mode & 07777;
	ret->mtime = st->st_mtim;
}

/* ---- the root ---------------------------------------------------------------------- */

int warden_root_adopt(int root_fd, uid_t uid, gid_t gid, struct warden_root *ret,
                      struct warden_error **err)
{
	_cleanup_close_ int fd = root_fd;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return warden_error_set(err, errno, "the sandbox's root");
	if (!S_ISDIR(st.st_mode))
		return warden_error_set(err, ENOTDIR, "the sandbox's root");
	/* Only root can (and must) take the sandbox user's identity: rootless, the sandbox's
	 * user is our own uid mapped, and setfsuid() to anything else would fail. */
	*ret = (struct warden_root){
	    .fd = TAKE_FD(fd), .uid = uid, .gid = gid, .as_user = geteuid() == 0};
	return 0;
}

void warden_root_close(struct warden_root *r)
{
	if (r && r->fd >= 0) {
		close(r->fd);
		r->fd = -1;
	}
}

/* ---- paths ------------------------------------------------------------------------- */

int warden_path_check(const char *path, size_t len, struct warden_error **err)
{
	if (!path || len == 0)
		return warden_error_set(err, EINVAL, "path: missing");
	if (memchr(path, '\0', len))
		return warden_error_set(err, EINVAL, "path: contains a NUL byte");
	if (len >= PATH_MAX)
		return warden_error_set(err, ENAMETOOLONG, "path: longer than %d bytes",
		                        PATH_MAX - 1);
	if (path[0] != '/')
		return warden_error_set(err, EINVAL, "path \"%s\": not absolute", path);
	return 0;
}

/* Split path into its parent directory and last component (trailing slashes dropped).
 * The last component must be a name: not "/", ".", "..". */
static int split(const char *path, char **ret_dir, char **ret_base, struct warden_error **err)
{
	_cleanup_free_ char *p = xstrdup(path);
	size_t n = strlen(p);
	while (n > 1 && p[n - 1] == '/')
		p[--n] = '\0';
	char *slash = strrchr(p, '/');
	const char *base = slash ? slash + 1 : p;
	if (!*base || streq(base, ".") || streq(base, ".."))
		return warden_error_set(err, EINVAL, "%s: does not name a file", path);
	*ret_base = xstrdup(base);
	while (slash && slash > p && slash[-1] == '/')
		slash--;
	if (slash)
		*slash = '\0';
	*ret_dir = xstrdup(slash && slash > p ? p : "/");
	return 0;
}

/* An operation on a path's last component: the path split, the sandbox user's identity
 * taken (until at_parent_done()), and the parent directory opened (dfd). */
struct at_parent {
	char *dir, *base;
	struct fsid id;
	int dfd;
};

static int at_parent(const struct warden_root *r, const char *path, bool open_dir,
                     struct at_parent *t, struct warden_error **err)
{
	struct stat st;
	*t = (struct at_parent){.dfd = -1};
	if (split(path, &t->dir, &t->base, err) < 0 || fsid_enter(r, &t->id, err) < 0)
		return -1;
	if (open_dir &&
	    (t->dfd = open_in_root(r, t->dir, path, O_PATH | O_DIRECTORY, &st, err)) < 0)
		return -1;
	return 0;
}

static void at_parent_done(struct at_parent *t)
{
	if (t->dfd >= 0)
		close(t->dfd);
	fsid_leave(&t->id);
	free(t->dir);
	free(t->base);
}

#define _cleanup_at_parent_ __attribute__((cleanup(at_parent_done)))

/* ---- read and write ---------------------------------------------------------------- */

int warden_file_open_read(const struct warden_root *r, const char *path,
                          struct warden_file_info *ret_info, struct warden_error **err)
{
	_cleanup_fsid_ struct fsid id = {0};
	if (fsid_enter(r, &id, err) < 0)
		return -1;
	/* O_NONBLOCK: opening a FIFO the sandbox planted must not block the caller. */
	struct stat st;
	_cleanup_close_ int fd =
	    open_in_root(r, path, path, O_RDONLY | O_NONBLOCK | O_NOCTTY, &st, err);
	if (fd < 0)
		return -1;
	if (S_ISDIR(st.st_mode))
		return warden_error_set(err, EISDIR, "%s", path);
	if (!S_ISREG(st.st_mode))
		return warden_error_set(err, EINVAL, "%s: not a regular file", path);
	fill_info(&st, ret_info);
	return TAKE_FD(fd);
}

static int own(const struct warden_root *r, int fd, const struct stat *st, const char *path,
               struct warden_error **err)
{
	/* Without root (as_user unset) the caller cannot give files away: they are its own. */
	if (!r->as_user || (st->st_uid == r->uid && st->st_gid == r->gid) ||
	    fchown(fd, r->uid, r->gid) == 0)
		return 0;
	return warden_error_set(err, errno, "%s: chown to %u:%u", path, (unsigned)r->uid,
	                        (unsigned)r->gid);
}

int warden_file_write(const struct warden_root *r, const char *path, const void *data, size_t len,
                      int mode, struct warden_file_info *ret_info, struct warden_error **err)
{
	_cleanup_at_parent_ struct at_parent t = {.dfd = -1};
	if (at_parent(r, path, true, &t, err) < 0)
		return -1;
	/* base is one component: openat() walks nothing. O_NOFOLLOW refuses a planted link
	 * as the target (ELOOP); O_NONBLOCK keeps a planted FIFO from blocking; nothing is
	 * truncated before it is known to be a regular file. */
	const int flags = O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
	bool created = true;
	_cleanup_close_ int fd = openat(t.dfd, t.base, flags | O_CREAT | O_EXCL, 0600);
	if (fd < 0 && errno == EEXIST) {
		created = false;
		fd = openat(t.dfd, t.base, flags);
	}
	if (fd < 0 && errno == ELOOP)
		return warden_error_set(err, ELOOP, "%s: a symbolic link, not written through",
		                        path);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return warden_error_set(err, errno, "%s", path);
	if (!S_ISREG(st.st_mode))
		return warden_error_set(err, EINVAL, "%s: not a regular file", path);
	if (refuse_kernel_fs(fd, path, err) < 0)
		return -1;
	if (!created && ftruncate(fd, 0) < 0)
		return warden_error_set(err, errno, "%s: truncating", path);
	if (created && own(r, fd, &st, path, err) < 0)
		return -1;
	if ((created || mode >= 0) && fchmod(fd, mode >= 0 ? (mode_t)mode : 0644) < 0)
		return warden_error_set(err, errno, "%s: chmod", path);
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, (const char *)data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return warden_error_set(err, errno, "%s: writing", path);
		off += (size_t)n;
	}
	if (fstat(fd, &st) < 0)
		return warden_error_set(err, errno, "%s", path);
	fill_info(&st, ret_info);
	return 0;
}

/* ---- stat and list ----------------------------------------------------------------- */

int warden_file_stat(const struct warden_root *r, const char *path,
                     struct warden_file_info *ret_info, struct warden_error **err)
{
	_cleanup_fsid_ struct fsid id = {0};
	if (fsid_enter(r, &id, err) < 0)
		return -1;
	struct stat st;
	_cleanup_close_ int fd = open_in_root(r, path, path, O_PATH | O_NOFOLLOW, &st, err);
	if (fd < 0)
		return -1;
	fill_info(&st, ret_info);
	return 0;
}

int warden_file_list(const struct warden_root *r, const char *path, size_t max,
                     warden_file_list_fn fn, void *ctx, bool *ret_truncated,
                     struct warden_error **err)
{
	_cleanup_fsid_ struct fsid id = {0};
	if (fsid_enter(r, &id, err) < 0)
		return -1;
	struct stat dst;
	_cleanup_close_ int fd = open_in_root(r, path, path, O_RDONLY | O_DIRECTORY, &dst, err);
	if (fd < 0)
		return -1;
	_cleanup_closedir_ DIR *d = fdopendir(fd);
	if (!d)
		return warden_error_set(err, errno, "%s", path);
	fd = -1; /* owned by d */
	size_t n = 0;
	*ret_truncated = false;
	struct dirent *de;
	while ((errno = 0, de = readdir(d))) {
		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		if (n == max) {
			*ret_truncated = true;
			break;
		}
		/* A name from readdir() is one component: fstatat() walks nothing. */
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* removed meanwhile */
		struct warden_file_info info;
		fill_info(&st, &info);
		if (fn(de->d_name, &info, ctx) < 0)
			return 0;
		n++;
	}
	if (errno)
		return warden_error_set(err, errno, "%s: reading the directory", path);
	return 0;
}

/* ---- delete ------------------------------------------------------------------------ */

/* Remove the directory `name` under dfd and everything in it. Subdirectories are opened
 * one component at a time, without following links and without crossing into another
 * mount (a volume under the tree is not emptied through it). */
static int remove_tree(int dfd, const char *name, const char *path, int depth,
                       struct warden_error **err)
{
	_cleanup_free_ char *sub = xasprintf("%s/%s", streq(path, "/") ? "" : path, name);
	if (depth > DELETE_DEPTH_MAX)
		return warden_error_set(err, ELOOP, "%s: more than %d levels deep", sub,
		                        DELETE_DEPTH_MAX);
	int fd = openat2_retry(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0,
	                       RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV);
	if (fd < 0 && errno == EXDEV)
		return warden_error_set(err, EXDEV, "%s: a mount point, not removed", sub);
	if (fd < 0)
		return warden_error_set(err, errno, "%s", sub);
	_cleanup_closedir_ DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return warden_error_set(err, errno, "%s", sub);
	}
	/* Entries removed while reading may make readdir() skip some: go over it again until
	 * the directory can be removed (bounded: a sandbox refilling it wins eventually). */
	for (int pass = 0; pass < 8; pass++) {
		struct dirent *de;
		while ((errno = 0, de = readdir(d))) {
			if (streq(de->d_name, ".") || streq(de->d_name, ".."))
				continue;
			struct stat st;
			if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
				if (errno == ENOENT)
					continue;
				return warden_error_set(err, errno, "%s/%s", sub, de->d_name);
			}
			int r = S_ISDIR(st.st_mode)
			            ? remove_tree(dirfd(d), de->d_name, sub, depth + 1, err)
			            : unlinkat(dirfd(d), de->d_name, 0);
			if (r < 0 && !S_ISDIR(st.st_mode) && errno != ENOENT)
				return warden_error_set(err, errno, "%s/%s", sub, de->d_name);
			if (r < 0 && S_ISDIR(st.st_mode))
				return -1;
		}
		if (errno)
			return warden_error_set(err, errno, "%s: reading the directory", sub);
		if (unlinkat(dfd, name, AT_REMOVEDIR) == 0)
			return 0;
		if (errno != ENOTEMPTY)
			return warden_error_set(err, errno, "%s", sub);
		rewinddir(d);
	}
	return warden_error_set(err, ENOTEMPTY, "%s: still filling up while removed", sub);
}

int warden_file_delete(const struct warden_root *r, const char *path, bool recursive,
                       struct warden_error **err)
{
	_cleanup_at_parent_ struct at_parent t = {.dfd = -1};
	if (at_parent(r, path, true, &t, err) < 0)
		return -1;
	struct stat st;
	if (fstatat(t.dfd, t.base, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return warden_error_set(err, errno, "%s", path);
	if (S_ISDIR(st.st_mode) && recursive)
		return remove_tree(t.dfd, t.base, t.dir, 0, err);
	if (unlinkat(t.dfd, t.base, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0)
		return warden_error_set(err, errno, "%s", path);
	return 0;
}

/* ---- mkdir ------------------------------------------------------------------------- */

/* Make `base` under dfd (if missing and allowed) and open it. */
static int make_one(const struct warden_root *r, int dfd, const char *base, const char *path,
                    mode_t mode, bool exist_ok, struct warden_error **err)
{
	bool made = mkdirat(dfd, base, 0700) == 0;
	if (!made && (errno != EEXIST || !exist_ok))
		return warden_error_set(err, errno, "%s", path);
	_cleanup_close_ int fd = openat(dfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return warden_error_set(err, errno == ELOOP ? ENOTDIR : errno, "%s", path);
	if (made && (own(r, fd, &st, path, err) < 0 || fchmod(fd, mode) < 0))
		return warden_error_set(err, errno, "%s: chmod", path);
	return TAKE_FD(fd);
}

int warden_file_mkdir(const struct warden_root *r, const char *path, int mode, bool parents,
                      struct warden_file_info *ret_info, struct warden_error **err)
{
	mode_t m = mode >= 0 ? (mode_t)mode : 0755;
	_cleanup_at_parent_ struct at_parent t = {.dfd = -1};
	if (at_parent(r, path, !parents, &t, err) < 0)
		return -1;
	if (parents) {
		/* Each prefix is resolved from the sandbox's root, as the sandbox's own mkdir -p
		 * would (links in it followed, inside the root); a missing one is made in the
		 * directory resolved before it. */
		_cleanup_free_ char *prefix = xstrdup(t.dir);
		int dfd = resolve(r, "/", O_PATH | O_DIRECTORY);
		for (char *c = prefix + 1; dfd >= 0 && *c;) {
			char *end = strchrnul(c, '/');
			char saved = *end;
			*end = '\0';
			int next = resolve(r, prefix, O_PATH | O_DIRECTORY);
			if (next < 0 && errno == ENOENT && *c)
				next = make_one(r, dfd, c, prefix, 0755, true, err);
			else if (next < 0)
				warden_error_set(err, errno, "%s", prefix);
			close(dfd);
			dfd = next;
			*end = saved;
			c = saved ? end + 1 : end;
		}
		if (dfd < 0)
			return warden_error_set(err, errno, "%s", t.dir);
		t.dfd = dfd;
		if (refuse_kernel_fs(t.dfd, path, err) < 0)
			return -1;
	}
	_cleanup_close_ int fd = make_one(r, t.dfd, t.base, path, m, parents, err);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return warden_error_set(err, errno, "%s", path);
	fill_info(&st, ret_info);
	return 0;
}
