/* mounts.h: child-side mount primitives (mounts.c), used by rootfs.c and devices.c.
 *
 * root_* resolve a path inside the new root with RESOLVE_IN_ROOT and return O_PATH fds
 * (or -1 with *err set); tree_* work on detached mount trees.
 */
#ifndef WARDEN_NS_MOUNTS_H
#define WARDEN_NS_MOUNTS_H

#include "../error.h"

#include <stdbool.h>
#include <sys/types.h>

int root_open(int rootfd, const char *path, int flags);
int root_mkdir_p(int rootfd, const char *path, mode_t mode, struct warden_error **err);
int root_touch(int rootfd, const char *path, mode_t mode, struct warden_error **err);
int root_write_file(int rootfd, const char *path, const char *content, mode_t mode,
                    struct warden_error **err);
int root_symlink(int rootfd, const char *target, const char *path, struct warden_error **err);

int mount_on_fd(const char *src, int target, const char *type, unsigned long flags,
                const char *data, struct warden_error **err);
int tree_clone(int dirfd, const char *path, struct warden_error **err);
int tree_setattr(int tfd, bool rw, bool nodev, int userns_fd, struct warden_error **err);
int tree_attach(int tfd, int target, struct warden_error **err);
int bind_self_rw(int rootfd, const char *path, struct warden_error **err);
int proc_mount(int rootfd, struct warden_error **err);

#endif
