/* files.h: file operations inside a running sandbox's root, from the host (wardend's
 * files API).
 *
 * Sections: the root (opening it, whose identity is used); paths; reading and writing
 * regular files; stat and listing; deleting and making directories.
 *
 * Every path is resolved with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) under an
 * O_PATH descriptor of the sandbox's root (the one its supervisor hands out: control.h's
 * warden_control_root()), never by joining strings: ".." stops at the sandbox's "/", and a
 * symbolic link the sandbox planted ("/tmp/x -> /etc/shadow") resolves inside the sandbox,
 * as it would for the sandbox itself. As root, every operation runs with the sandbox
 * user's file system identity (setfsuid/setfsgid), so the caller gets the sandbox user's
 * rights and no more (see warden_root_adopt()); rootless, the caller is the sandbox's user
 * already. Kernel interfaces (procfs, sysfs, ...) are not files here. Errors name the path
 * and keep the errno the HTTP layer maps to a status.
 */
#ifndef WARDEN_FILES_H
#define WARDEN_FILES_H

#include "error.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct warden_root {
	int fd;       /* O_PATH, O_DIRECTORY: the sandbox's "/" */
	uid_t uid;    /* the sandbox user's host ids: the file system identity used, */
	gid_t gid;    /* and the owner of what is created */
	bool as_user; /* switch identity for each operation (the caller is root) */
};

enum warden_file_type {
	WARDEN_FILE_REGULAR,
	WARDEN_FILE_DIR,
	WARDEN_FILE_SYMLINK,
	WARDEN_FILE_OTHER,
	WARDEN_FILE_TYPE_MAX,
};
extern const char *const warden_file_type_names[WARDEN_FILE_TYPE_MAX];

struct warden_file_info {
	enum warden_file_type type;
	uint64_t size;
	mode_t mode; /* permission bits (07777) */
	struct timespec mtime;
};

/* Take root_fd (an O_PATH descriptor of a sandbox's "/", from warden_control_root()) as a
 * root for the operations below; it is closed on failure too (ENOTDIR when it is not a
 * directory). uid/gid: the sandbox user's host ids. Run as root, the operations take that
 * identity (as_user): the caller must then be single-threaded while an operation runs and
 * must have dropped its supplementary groups (setgroups is per process; the identity
 * switch is per thread and covers uid and gid only). Rootless there is nothing to switch:
 * the sandbox's user is the caller's own uid, mapped. Returns 0 and fills *ret (close with
 * warden_root_close()), or -1. */
int warden_root_adopt(int root_fd, uid_t uid, gid_t gid, struct warden_root *ret,
                      struct warden_error **err);
void warden_root_close(struct warden_root *r);

/* A path the API accepts: absolute, len bytes without a NUL, shorter than PATH_MAX.
 * Returns 0, or -1 with EINVAL/ENAMETOOLONG and a message naming it. */
int warden_path_check(const char *path, size_t len, struct warden_error **err);

/* Open the regular file at path for reading (symbolic links followed, inside the root).
 * Returns the fd (O_CLOEXEC) and fills *ret_info, or -1 (EISDIR for a directory, EINVAL
 * for anything else that is not a regular file). */
int warden_file_open_read(const struct warden_root *r, const char *path,
                          struct warden_file_info *ret_info, struct warden_error **err);
/* Create or truncate the regular file at path and write len bytes. A symbolic link as the
 * last component is refused (ELOOP): a host-side writer does not write where the sandbox
 * points it. mode < 0: 0644 for a new file, unchanged for an existing one. New files are
 * owned by the sandbox user. Fills *ret_info (may be NULL). */
int warden_file_write(const struct warden_root *r, const char *path, const void *data, size_t len,
                      int mode, struct warden_file_info *ret_info, struct warden_error **err);
/* lstat: a symbolic link is described, not followed. */
int warden_file_stat(const struct warden_root *r, const char *path,
                     struct warden_file_info *ret_info, struct warden_error **err);

/* Call fn for each entry of the directory at path (not "." and ".."), at most max of them;
 * *ret_truncated says whether there were more. fn returning < 0 stops the walk. */
typedef int (*warden_file_list_fn)(const char *name, const struct warden_file_info *info,
                                   void *ctx);
int warden_file_list(const struct warden_root *r, const char *path, size_t max,
                     warden_file_list_fn fn, void *ctx, bool *ret_truncated,
                     struct warden_error **err);

/* Remove the file, link or (empty, or with recursive, any) directory at path. The last
 * component is removed, never followed; recursion goes through directory descriptors
 * opened without following links, never through path strings. "/" is refused. */
int warden_file_delete(const struct warden_root *r, const char *path, bool recursive,
                       struct warden_error **err);
/* mkdir (with parents: every missing component, like mkdir -p; an existing directory is
 * then not an error). mode < 0: 0755. Fills *ret_info (may be NULL). */
int warden_file_mkdir(const struct warden_root *r, const char *path, int mode, bool parents,
                      struct warden_file_info *ret_info, struct warden_error **err);

#endif
