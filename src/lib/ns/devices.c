/* devices.c: a minimal /dev.
 *
 * Only the nodes every program expects, each bound from the host's node (a user
 * namespace cannot mknod), a private devpts instance so that terminals inside are the
 * sandbox's own, and the usual links. No disk, no /dev/mem, no /dev/kmsg. Devices the
 * policy grants (devices:, gpu:) are bound the same way at their host path; what they
 * may be opened for is the device cgroup's to enforce (devcgroup.c).
 */
#define _GNU_SOURCE
#include "ns.h"
#include "mounts.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>

static const char *const nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};

/* A granted node: an empty file made under the new root (parents included, as
 * /dev/nvidia-caps/ needs), with the host's node bound over it. The host path was checked
 * to be a device node when the plan was compiled. */
static int bind_granted(int rootfd, const struct warden_plan_device *d, struct warden_error **err)
{
	_cleanup_close_ int t = root_touch(rootfd, d->path, 0600, err);
	if (t < 0)
		return warden_error_wrap(err, "granted device %s", d->path);
	if (mount_on_fd(d->path, t, NULL, MS_BIND, NULL, err) < 0)
		return warden_error_wrap(err, "granted device %s", d->path);
	return 0;
}

int ns_devices_setup(int rootfd, const struct warden_plan *plan, struct warden_error **err)
{
	bool rootless = plan->rootless;
	char path[32];
	_cleanup_close_ int dev = root_mkdir_p(rootfd, "/dev", 0755, err);
	if (dev < 0)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(nodes); i++) {
		/* /dev is a directory warden just made on its own tmpfs: no lookup through
		 * anything else, so plain openat relative to it is enough. */
		_cleanup_close_ int t = openat(
		    dev, nodes[i], O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
		snprintf(path, sizeof(path), "/dev/%s", nodes[i]);
		if (t < 0)
			return warden_error_set(err, errno, "creating %s", path);
		if (mount_on_fd(path, t, NULL, MS_BIND, NULL, err) < 0)
			return warden_error_wrap(err, "%s", path);
	}
	_cleanup_close_ int pts = root_mkdir_p(rootfd, "/dev/pts", 0755, err);
	if (pts < 0)
		return -1;
	/* A new devpts instance: the sandbox sees and can open only its own terminals.
	 * gid=5 (tty) exists only where a range of ids is mapped. */
	if (mount_on_fd("devpts", pts, "devpts", MS_NOSUID | MS_NOEXEC,
	                rootless ? "newinstance,ptmxmode=0666,mode=0620"
	                         : "newinstance,ptmxmode=0666,mode=0620,gid=5",
	                err) < 0)
		return warden_error_wrap(err, "/dev/pts");
	static const char *const links[][2] = {
	    {"pts/ptmx", "/dev/ptmx"},          {"/proc/self/fd", "/dev/fd"},
	    {"/proc/self/fd/0", "/dev/stdin"},  {"/proc/self/fd/1", "/dev/stdout"},
	    {"/proc/self/fd/2", "/dev/stderr"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(links); i++)
		if (root_symlink(rootfd, links[i][0], links[i][1], err) < 0)
			return -1;
	_cleanup_close_ int shm = root_mkdir_p(rootfd, "/dev/shm", 01777, err);
	if (shm < 0)
		return -1;
	for (size_t i = 0; i < plan->n_devices; i++)
		if (bind_granted(rootfd, &plan->devices[i], err) < 0)
			return -1;
	return 0;
}
