/* util.c: allocation, string vectors, number parsing and small file helpers. */
#define _GNU_SOURCE
#include "util.h"
#include "error.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <inttypes.h>
#include <stdarg.h>

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		abort();
	return p;
}

void *xcalloc(size_t n, size_t m)
{
	void *p = calloc(n ? n : 1, m ? m : 1);
	if (!p)
		abort();
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		abort();
	return p;
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (!p)
		abort();
	return p;
}

ssize_t send_with_fds(int fd, const void *buf, size_t len, const int *fds, size_t n_fds, int flags)
{
	union {
		char buf[CMSG_SPACE(SEND_FDS_MAX * sizeof(int))];
		struct cmsghdr align;
	} cm;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (n_fds > SEND_FDS_MAX) {
		errno = EINVAL;
		return -1;
	}
	if (n_fds) {
		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, n_fds * sizeof(int));
	}
	ssize_t n;
	do
		n = sendmsg(fd, &mh, flags | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n;
}

static size_t secret_span(size_t len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	return (len + sizeof(size_t) + page - 1) / page * page;
}

char *secret_strdup(const char *s)
{
	size_t len = strlen(s) + 1, span = secret_span(len);
	char *p = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	/* Without WIPEONFORK the secret would be copied into every sandbox's init: refuse to
	 * hold it at all rather than hold it there (the kernel has it since 4.14). */
	if (p == MAP_FAILED || madvise(p, span, MADV_WIPEONFORK) < 0)
		abort();
	(void)madvise(p, span, MADV_DONTDUMP);
	memcpy(p, &len, sizeof(len));
	memcpy(p + sizeof(len), s, len);
	return p + sizeof(len);
}

void secret_free(char *s)
{
	if (!s)
		return;
	char *p = s - sizeof(size_t);
	size_t len;
	memcpy(&len, p, sizeof(len));
	explicit_bzero(p, sizeof(len) + len);
	munmap(p, secret_span(len));
}

char *xasprintf(const char *fmt, ...)
{
	char *p;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&p, fmt, ap) < 0)
		abort();
	va_end(ap);
	return p;
}

void strv_push_take(struct strv *s, char *str)
{
	if (s->n + 2 > s->cap) {
		s->cap = s->cap ? s->cap * 2 : 8;
		s->v = xrealloc(s->v, s->cap * sizeof(char *));
	}
	s->v[s->n++] = str;
	s->v[s->n] = NULL;
}

void strv_push(struct strv *s, const char *str)
{
	strv_push_take(s, xstrdup(str));
}

void strv_clear(struct strv *s)
{
	strv_free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

char **strv_copy(char *const *v)
{
	struct strv s = {0};
	for (; v && *v; v++)
		strv_push(&s, *v);
	if (!s.v)
		s.v = xcalloc(1, sizeof(char *));
	return s.v;
}

void strv_free(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

int parse_uint(const char *s, uint64_t max, uint64_t *ret, const char **ret_why)
{
	uint64_t v = 0;
	if (!s || !*s) {
		*ret_why = "empty number";
		return -1;
	}
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9') {
			*ret_why = "not a whole number";
			return -1;
		}
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10) {
			*ret_why = "number too large";
			return -1;
		}
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (v > max) {
		*ret_why = "number too large";
		return -1;
	}
	*ret = v;
	return 0;
}

int parse_milli(const char *s, uint64_t *ret, const char **ret_why)
{
	uint64_t whole = 0, frac = 0;
	int digits = 0;
	const char *p = s;
	if (!s || !*s || *s == '.') {
		*ret_why = "not a number";
		return -1;
	}
	for (; *p >= '0' && *p <= '9'; p++) {
		whole = whole * 10 + (uint64_t)(*p - '0');
		if (whole > 1000000) {
			*ret_why = "number too large";
			return -1;
		}
	}
	if (*p == '.') {
		p++;
		if (!*p) {
			*ret_why = "not a number";
			return -1;
		}
		for (; *p >= '0' && *p <= '9'; p++, digits++) {
			if (digits < 3) {
				frac = frac * 10 + (uint64_t)(*p - '0');
			} else if (*p != '0') {
				*ret_why = "more than 3 decimals";
				return -1;
			}
		}
		for (int i = digits; i < 3; i++)
			frac *= 10;
	}
	if (*p) {
		*ret_why = "not a number";
		return -1;
	}
	*ret = whole * 1000 + frac;
	return 0;
}

int parse_size(const char *s, uint64_t *ret, const char **ret_why)
{
	uint64_t v = 0;
	const char *p = s;
	if (!s || !*s) {
		*ret_why = "empty size";
		return -1;
	}
	if (*p < '0' || *p > '9') {
		*ret_why = "a size starts with a number (e.g. 512M)";
		return -1;
	}
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10) {
			*ret_why = "size too large";
			return -1;
		}
		v = v * 10 + (uint64_t)(*p - '0');
	}
	static const struct {
		const char *suffix;
		unsigned shift;
	} units[] = {
	    {"", 0},     {"B", 0},   {"K", 10},   {"KB", 10}, {"KiB", 10}, {"k", 10},
	    {"M", 20},   {"MB", 20}, {"MiB", 20}, {"m", 20},  {"G", 30},   {"GB", 30},
	    {"GiB", 30}, {"g", 30},  {"T", 40},   {"TB", 40}, {"TiB", 40}, {"t", 40},
	};
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (!streq(p, units[i].suffix))
			continue;
		if (units[i].shift && v > (UINT64_MAX >> units[i].shift)) {
			*ret_why = "size too large";
			return -1;
		}
		*ret = v << units[i].shift;
		return 0;
	}
	*ret_why = "unknown size unit (use K, M, G or T)";
	return -1;
}

void format_size(uint64_t bytes, char *buf, size_t len)
{
	static const char units[] = "KMGT";
	int u = -1;
	while (u < 3 && bytes && bytes % 1024 == 0) {
		bytes /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%" PRIu64, bytes);
	else
		snprintf(buf, len, "%" PRIu64 "%c", bytes, units[u]);
}

int write_file_at(int dirfd, const char *path, const char *buf)
{
	_cleanup_close_ int fd = openat(dirfd, path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	size_t len = strlen(buf);
	ssize_t n = write(fd, buf, len);
	if (n < 0)
		return -errno;
	if ((size_t)n != len)
		return -EIO;
	return 0;
}

ssize_t read_file_at(int dirfd, const char *path, char *buf, size_t len)
{
	_cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	size_t got = 0;
	while (got + 1 < len) {
		ssize_t n = read(fd, buf + got, len - 1 - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	return (ssize_t)got;
}

int read_small_file(const char *path, size_t max, const char *what, char **ret_buf, size_t *ret_len,
                    struct warden_error **err)
{
	/* O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below, like
	 * every file that is not regular (a device could be read without end). */
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	struct stat st;
	if (fd < 0)
		return warden_error_set(err, errno, "%s %s", what, path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return warden_error_set(err, 0, "%s %s: not a regular file", what, path);
	if ((uint64_t)st.st_size > max)
		return warden_error_set(err, 0, "%s %s: larger than %zu bytes", what, path, max);
	_cleanup_free_ char *buf = xmalloc((size_t)st.st_size + 1);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return warden_error_set(err, errno, "%s %s", what, path);
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	*ret_buf = TAKE_PTR(buf);
	*ret_len = got;
	return 0;
}

bool path_is_normal_absolute(const char *p)
{
	if (!p || p[0] != '/' || p[1] == '\0')
		return false;
	for (const char *c = p; *c;) {
		/* c points at a '/' */
		const char *start = c + 1;
		const char *end = strchrnul(start, '/');
		size_t n = (size_t)(end - start);
		if (n == 0 || (n == 1 && start[0] == '.') ||
		    (n == 2 && start[0] == '.' && start[1] == '.'))
			return false;
		c = end;
	}
	return true;
}

int warden_pidfd_open(pid_t pid, unsigned flags)
{
	return (int)syscall(SYS_pidfd_open, pid, flags);
}
