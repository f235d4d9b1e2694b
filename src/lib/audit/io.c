/* io.c: reading logs line by line, and the small file and time helpers of the audit log.
 *
 * Sections: the line reader; opening a log for reading; whole small files; directories;
 * timestamps.
 */
#define _GNU_SOURCE
#include "audit-internal.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

/* ---- the line reader ------------------------------------------------------------------ */

#define READ_CHUNK (1u << 20)

void audit_reader_init(struct audit_reader *r, int fd, uint64_t limit)
{
	*r = (struct audit_reader){.fd = fd, .limit = limit};
}

void audit_reader_free(struct audit_reader *r)
{
	free(r->buf);
	r->buf = NULL;
}

/* Read more of the file after what buf holds, keeping buf[pos..len). Returns the bytes
 * read (0 at the limit) or -1 with err. */
static ssize_t reader_fill(struct audit_reader *r, struct warden_error **err)
{
	if (r->pos > 0) {
		memmove(r->buf, r->buf + r->pos, r->len - r->pos);
		r->off += r->pos;
		r->len -= r->pos;
		r->pos = 0;
	}
	uint64_t at = r->off + r->len;
	if (at >= r->limit)
		return 0;
	if (r->cap - r->len < READ_CHUNK) {
		if (r->len > AUDIT_MAX_LINE)
			return warden_error_set(err, 0, "line %" PRIu64 " is longer than %u bytes",
			                        r->line_no + 1, AUDIT_MAX_LINE);
		r->cap = r->len + READ_CHUNK;
		r->buf = xrealloc(r->buf, r->cap);
	}
	size_t want = r->cap - r->len;
	if (want > r->limit - at)
		want = (size_t)(r->limit - at);
	for (;;) {
		ssize_t n = pread(r->fd, r->buf + r->len, want, (off_t)at);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return warden_error_set(err, errno, "read");
		if (n == 0) /* the file shrank under us: what is left is all there is */
			r->limit = at;
		r->len += (size_t)n;
		return n;
	}
}

int audit_reader_next(struct audit_reader *r, const char **ret_line, size_t *ret_len,
                      bool *ret_complete, struct warden_error **err)
{
	size_t scanned = r->pos;
	for (;;) {
		/* (scanned is relative to pos: reader_fill() moves buf[pos..len) to the front) */
		char *nl =
		    r->len > scanned ? memchr(r->buf + scanned, '\n', r->len - scanned) : NULL;
		if (nl) {
			*ret_line = r->buf + r->pos;
			*ret_len = (size_t)(nl - (r->buf + r->pos));
			*ret_complete = true;
			r->pos = (size_t)(nl - r->buf) + 1;
			r->line_no++;
			return 1;
		}
		scanned = r->len - r->pos;
		ssize_t n = reader_fill(r, err);
		if (n < 0)
			return -1;
		if (n == 0) {
			if (r->pos == r->len)
				return 0;
			*ret_line = r->buf + r->pos;
			*ret_len = r->len - r->pos;
			*ret_complete = false;
			r->pos = r->len;
			r->line_no++;
			return 1;
		}
	}
}

/* ---- opening a log for reading ------------------------------------------------------- */

int audit_log_open_read(const char *path, uint64_t *ret_size, struct warden_error **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return warden_error_set(err, errno, "open %s", path);
	while (flock(fd, LOCK_SH) < 0)
		if (errno != EINTR)
			return warden_error_set(err, errno, "lock %s", path);
	struct stat st;
	int r = fstat(fd, &st);
	int saved = errno;
	/* Only the size is taken under the lock: the bytes before it never change (the log is
	 * only appended to), so writers need not wait for a long read. */
	flock(fd, LOCK_UN);
	if (r < 0)
		return warden_error_set(err, saved, "stat %s", path);
	if (!S_ISREG(st.st_mode))
		return warden_error_set(err, 0, "%s: not a regular file", path);
	*ret_size = (uint64_t)st.st_size;
	return TAKE_FD(fd);
}

/* ---- whole small files ----------------------------------------------------------------- */

int audit_read_file(const char *path, size_t max, char **ret, size_t *ret_len,
                    struct warden_error **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return warden_error_set(err, errno, "open %s", path);
	size_t len = 0, cap = 4096;
	_cleanup_free_ char *buf = xmalloc(cap + 1);
	for (;;) {
		if (len == cap) {
			if (cap >= max)
				return warden_error_set(err, 0, "%s: larger than %zu bytes", path,
				                        max);
			cap = cap * 2 > max ? max : cap * 2;
			buf = xrealloc(buf, cap + 1);
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return warden_error_set(err, errno, "read %s", path);
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*ret = TAKE_PTR(buf);
	*ret_len = len;
	return 0;
}

int audit_write_file(const char *path, const char *buf, size_t len, mode_t mode, bool replace,
                     struct warden_error **err)
{
	_cleanup_free_ char *tmp = xasprintf("%s.tmp.XXXXXX", path);
	_cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return warden_error_set(err, errno, "create %s", tmp);
	int r = 0;
	if (fchmod(fd, mode) < 0)
		r = warden_error_set(err, errno, "chmod %s", tmp);
	for (size_t off = 0; r == 0 && off < len;) {
		ssize_t n = write(fd, buf + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r = warden_error_set(err, errno, "write %s", tmp);
		else
			off += (size_t)n;
	}
	if (r == 0 && fdatasync(fd) < 0)
		r = warden_error_set(err, errno, "fdatasync %s", tmp);
	if (replace) {
		if (r == 0 && rename(tmp, path) < 0)
			r = warden_error_set(err, errno, "rename %s to %s", tmp, path);
		if (r < 0)
			unlink(tmp);
		return r;
	}
	/* link() fails if path exists: a concurrent reader sees no file or the whole one. */
	if (r == 0 && link(tmp, path) < 0)
		r = warden_error_set(err, errno, "create %s", path);
	unlink(tmp);
	return r;
}

/* ---- directories ----------------------------------------------------------------------- */

int audit_mkdir_parents(const char *path, struct warden_error **err)
{
	_cleanup_free_ char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	struct stat st;
	if (stat(dir, &st) == 0)
		return S_ISDIR(st.st_mode) ? 0 : warden_error_set(err, ENOTDIR, "%s", dir);
	for (char *p = dir + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		/* The log and its key are the host's record of what sandboxes did: directories
		 * made for them are private to their owner. */
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			return warden_error_set(err, errno, "create directory %s", dir);
		*p = c;
		if (c == '\0')
			break;
	}
	return 0;
}

/* ---- timestamps ------------------------------------------------------------------------ */

void audit_format_now(char out[32], int64_t *ret_epoch)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%06ldZ", ts.tv_nsec / 1000);
	if (ret_epoch)
		*ret_epoch = ts.tv_sec;
}

int64_t audit_parse_time(const char *s)
{
	struct tm tm = {0};
	const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	if (!end)
		return -1;
	if (*end == '.') {
		end++;
		while (*end >= '0' && *end <= '9')
			end++;
	}
	if (strcmp(end, "Z") != 0)
		return -1;
	return (int64_t)timegm(&tm);
}
