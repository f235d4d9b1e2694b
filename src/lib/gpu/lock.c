/* lock.c: exclusive GPU grants across live sandboxes, and the scrub that releases them.
 *
 * Sections: where the locks live; acquire; owner and release.
 *
 * Why a flock and a marker: the flock says who holds a device now and goes away by
 * itself when its holder dies, however it dies; the pending marker outlives the holder,
 * so a device whose last sandbox ended without a successful scrub (the scrub failed, or
 * the supervisor was killed before it could scrub) is not handed to the next sandbox
 * with another tenant's data still in its memory.
 */
#define _GNU_SOURCE
#include "gpu.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

char *warden_gpu_lock_dir(void)
{
	const char *env = getenv("WARDEN_GPU_LOCK_DIR");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	if (env && *env == '/')
		return xstrdup(env);
	if (geteuid() == 0)
		return xstrdup("/run/warden/gpu");
	/* Without root the locks only order this user's own sandboxes: a directory all users
	 * could write would let any of them hold every GPU. */
	if (xdg && *xdg == '/')
		return xasprintf("%s/warden/gpu", xdg);
	return xasprintf("/tmp/warden-%u/gpu", (unsigned)geteuid());
}

static int mkdirs(const char *path)
{
	_cleanup_free_ char *p = xstrdup(path);
	for (char *s = strchr(p + 1, '/');; s = strchr(s + 1, '/')) {
		if (s)
			*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			return -errno;
		if (!s)
			return 0;
		*s = '/';
	}
}

static char *file_of(const char *dir, const char *uuid, const char *ext)
{
	return xasprintf("%s/%s.%s", dir, uuid, ext);
}

/* The first line of a small file ("" when unreadable). */
static void read_line(const char *path, char *buf, size_t len)
{
	buf[0] = '\0';
	if (read_file_at(AT_FDCWD, path, buf, len) > 0)
		buf[strcspn(buf, "\n")] = '\0';
}

int warden_gpu_lock_acquire(const char *uuid, bool exclusive, bool force, const char *id,
                            struct warden_gpu_lock *ret, struct warden_error **err)
{
	_cleanup_free_ char *dir = warden_gpu_lock_dir();
	ret->fd = -1;
	int r = mkdirs(dir);
	if (r < 0)
		return warden_error_set(err, -r, "gpu locks: %s", dir);
	_cleanup_free_ char *lock = file_of(dir, uuid, "lock");
	_cleanup_free_ char *pending = file_of(dir, uuid, "pending");
	_cleanup_close_ int fd = open(lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return warden_error_set(err, errno, "gpu lock %s", lock);
	if (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) < 0) {
		char holder[64];
		int e = errno;
		read_line(lock, holder, sizeof(holder));
		if (e == EWOULDBLOCK)
			return warden_error_set(err, EBUSY,
			                        "GPU %s is busy: in use by sandbox %s%s", uuid,
			                        holder[0] ? holder : "(starting)",
			                        exclusive ? "" : " (exclusive grant)");
		return warden_error_set(err, e, "gpu lock %s", lock);
	}
	/* A shared grant's marker may belong to a live sharer: only a holder that is alone
	 * can tell that a marker is stale. (Linux drops a flock whose conversion fails, so
	 * the shared lock is taken again either way; losing it in between means another
	 * grant came first.) */
	bool alone = exclusive || flock(fd, LOCK_EX | LOCK_NB) == 0;
	if (!exclusive && flock(fd, LOCK_SH | LOCK_NB) < 0)
		return warden_error_set(err, EBUSY, "GPU %s is busy: granted exclusively meanwhile",
		                        uuid);
	char owner[64];
	read_line(pending, owner, sizeof(owner));
	if (!force && alone && access(pending, F_OK) == 0)
		return warden_error_set(
		    err, EAGAIN,
		    "GPU %s is not scrubbed: sandbox %s ended without a "
		    "successful scrub of its memory (run `warden gpu scrub %s`)",
		    uuid, owner[0] ? owner : "?", uuid);
	ret->fd = TAKE_FD(fd);
	ret->uuid = xstrdup(uuid);
	ret->exclusive = exclusive;
	if (id && *id)
		warden_gpu_lock_set_owner(ret, id, false);
	return 0;
}

void warden_gpu_lock_set_owner(struct warden_gpu_lock *l, const char *id, bool pending)
{
	_cleanup_free_ char *dir = warden_gpu_lock_dir();
	if (l->fd < 0)
		return;
	if (l->exclusive && ftruncate(l->fd, 0) == 0)
		(void)!pwrite(l->fd, id, strlen(id), 0);
	if (!pending)
		return;
	_cleanup_free_ char *path = file_of(dir, l->uuid, "pending");
	_cleanup_close_ int fd =
	    open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0) {
		(void)!write(fd, id, strlen(id));
		(void)fsync(fd);
	}
}

/* Only at the end of a grant: a failed attempt leaves the shared lock dropped (see
 * acquire), which is what release would do next anyway. */
bool warden_gpu_lock_is_last(struct warden_gpu_lock *l)
{
	if (l->fd < 0)
		return false;
	if (l->exclusive)
		return true;
	if (flock(l->fd, LOCK_EX | LOCK_NB) < 0)
		return false;
	l->exclusive = true;
	return true;
}

void warden_gpu_lock_release(struct warden_gpu_lock *l, bool cleared)
{
	if (!l || l->fd < 0)
		return;
	if (cleared) {
		_cleanup_free_ char *dir = warden_gpu_lock_dir();
		_cleanup_free_ char *pending = file_of(dir, l->uuid, "pending");
		(void)unlink(pending);
	}
	if (l->exclusive)
		(void)!ftruncate(l->fd, 0);
	close(l->fd);
	l->fd = -1;
	free(l->uuid);
	l->uuid = NULL;
}
