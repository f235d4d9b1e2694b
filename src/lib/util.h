/* util.h: small helpers shared by the whole library.
 *
 * Sections: cleanup attributes and ownership transfer (systemd's style), string and
 * number helpers, fd helpers. Nothing here prints or exits.
 */
#ifndef WARDEN_UTIL_H
#define WARDEN_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct warden_error;

#define _unused_      __attribute__((unused))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static inline void freep(void *p)
{
	free(*(void **)p);
}

static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

static inline void fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

static inline void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

#define _cleanup_free_     __attribute__((cleanup(freep)))
#define _cleanup_close_    __attribute__((cleanup(closep)))
#define _cleanup_fclose_   __attribute__((cleanup(fclosep)))
#define _cleanup_closedir_ __attribute__((cleanup(closedirp)))

/* Move ownership out of a cleanup variable. */
#define TAKE_PTR(p)                                                                                \
	({                                                                                         \
		__typeof__(p) _tmp = (p);                                                          \
		(p) = NULL;                                                                        \
		_tmp;                                                                              \
	})
#define TAKE_FD(fd)                                                                                \
	({                                                                                         \
		int _tmp = (fd);                                                                   \
		(fd) = -1;                                                                         \
		_tmp;                                                                              \
	})

static inline bool streq(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

/* Allocation helpers: warden treats allocation failure as fatal only at the top; the
 * library reports ENOMEM through the error contract where it can, and these abort()
 * otherwise, which is what every caller would do anyway. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Send len bytes as one message with n_fds (at most SEND_FDS_MAX) descriptors attached
 * (SCM_RIGHTS); flags as for sendmsg() (MSG_NOSIGNAL is added). Returns what sendmsg()
 * returns (EINTR retried; EINVAL for too many descriptors). */
#define SEND_FDS_MAX 64
ssize_t send_with_fds(int fd, const void *buf, size_t len, const int *fds, size_t n_fds, int flags);

/* A copy of a secret (an API key) in pages of its own, which a child process gets
 * zero-filled (MADV_WIPEONFORK: a sandbox's init is a fork of its supervisor and must not
 * inherit what the supervisor holds) and which core dumps leave out. Aborts on failure.
 * secret_free() wipes and unmaps; NULL-safe. */
char *secret_strdup(const char *s);
void secret_free(char *s);

/* A growable NULL-terminated string vector. */
struct strv {
	char **v;
	size_t n, cap;
};
void strv_push(struct strv *s, const char *str);
void strv_push_take(struct strv *s, char *str);
void strv_clear(struct strv *s);
char **strv_copy(char *const *v);
void strv_free(char **v);

/* Parse "512M", "1G", "1GiB", "4096" into bytes. Returns 0, or -1 with a static reason. */
int parse_size(const char *s, uint64_t *ret, const char **ret_why);
/* Parse a non-negative decimal integer that fits in max. */
int parse_uint(const char *s, uint64_t max, uint64_t *ret, const char **ret_why);
/* Parse a non-negative decimal with an optional fraction ("1.5"); result scaled by 1000. */
int parse_milli(const char *s, uint64_t *ret, const char **ret_why);
/* Format bytes the way parse_size reads them back ("512M"). */
void format_size(uint64_t bytes, char *buf, size_t len);

/* Write the whole buffer to path (O_WRONLY|O_CLOEXEC, no create). Returns 0 or -errno. */
int write_file_at(int dirfd, const char *path, const char *buf);
/* Read a small file into a NUL-terminated buffer. Returns length or -errno. */
ssize_t read_file_at(int dirfd, const char *path, char *buf, size_t len);
/* Read the regular file at path, of at most max bytes, into *ret_buf (NUL-terminated,
 * caller frees) and its length into *ret_len. Errors name the file as "WHAT PATH": "not a
 * regular file", "larger than MAX bytes", or errno. Returns 0 or -1. */
int read_small_file(const char *path, size_t max, const char *what, char **ret_buf, size_t *ret_len,
                    struct warden_error **err);

/* pidfd_open(2) (flags: 0, or PIDFD_THREAD for a thread). Returns the fd or -1 with errno. */
int warden_pidfd_open(pid_t pid, unsigned flags);

/* A path that is absolute, normalized (no "//", ".", ".." components) and not "/". */
bool path_is_normal_absolute(const char *p);

#endif
