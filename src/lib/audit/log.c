/* log.c: appending to the audit log (warden_audit_open / append / commit / close).
 *
 * Files: LOG (the records, one JSON object per line, only ever appended to), LOG.state
 * (the tree's frontier and size: a cache, rebuilt from LOG whenever it does not match),
 * LOG.checkpoint (the latest signed checkpoint, for copying elsewhere).
 *
 * Sections: default paths; the state file; serialising records and checkpoints; commit
 * (under the lock); open, append, close.
 */
#define _GNU_SOURCE
#include "audit-internal.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#define STATE_MAGIC "warden-audit-state 1\n"
#define STATE_MAX   8192

/* What the log holds, as far as appending needs to know. */
struct audit_state {
	uint64_t log_bytes; /* the log's size when this was true */
	struct audit_tree tree;
	uint8_t last_leaf[AUDIT_HASH_LEN]; /* leaf hash of the last line */
	bool has_cp;
	uint64_t cp_size;   /* tree size of the latest checkpoint (= its seq) */
	int64_t cp_time;    /* when it was made (or the log started), Unix seconds */
	uint64_t recovered; /* bytes of an incomplete last line dropped, to be recorded */
};

struct warden_audit {
	char *path, *state_path, *cp_path;
	char *origin;
	int fd, state_fd;
	struct audit_key key;
	unsigned every, seconds;
	json_t **queue;
	size_t nq, qcap;
	bool want_checkpoint;
	struct audit_state st; /* the state as of our last commit */
	bool st_ok;
	char *buf; /* the lines of one commit */
	size_t len, cap;
	char *cp_note; /* the checkpoint made by this commit, if any */
};

/* ---- default paths --------------------------------------------------------------------- */

static const char *env_nonempty(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

int warden_audit_default_paths(char **ret_log, char **ret_key, struct warden_error **err)
{
	const char *log = env_nonempty("WARDEN_AUDIT_LOG"), *key = env_nonempty("WARDEN_AUDIT_KEY");
	_cleanup_free_ char *dir = NULL;
	if (!log || !key) {
		if (geteuid() == 0) {
			dir = xstrdup("/var/lib/warden");
		} else {
			/* The XDG base directory spec: relative values are to be ignored. */
			const char *xdg = env_nonempty("XDG_STATE_HOME");
			const char *home = env_nonempty("HOME");
			if (xdg && xdg[0] == '/')
				dir = xasprintf("%s/warden", xdg);
			else if (home && home[0] == '/')
				dir = xasprintf("%s/.local/state/warden", home);
			else
				return warden_error_set(
				    err, 0,
				    "no place for the audit log: neither "
				    "XDG_STATE_HOME nor HOME is an absolute path "
				    "(set WARDEN_AUDIT_LOG and WARDEN_AUDIT_KEY)");
		}
	}
	*ret_log = log ? xstrdup(log) : xasprintf("%s/audit.log", dir);
	*ret_key = key ? xstrdup(key) : xasprintf("%s/audit.key", dir);
	return 0;
}

/* ---- the state file -------------------------------------------------------------------- */

/* The last line of the log's first size bytes, hashed; false if the log does not end
 * with a newline there, or cannot be read. */
static bool last_leaf_of(int fd, uint64_t size, uint8_t out[AUDIT_HASH_LEN])
{
	size_t want = 4096;
	for (;;) {
		if (want > size)
			want = (size_t)size;
		_cleanup_free_ char *buf = xmalloc(want);
		ssize_t n = pread(fd, buf, want, (off_t)(size - want));
		if (n != (ssize_t)want || buf[want - 1] != '\n')
			return false;
		char *start = memrchr(buf, '\n', want - 1);
		if (start || want == size) {
			start = start ? start + 1 : buf;
			audit_leaf_hash(start, (size_t)(buf + want - 1 - start), out);
			return true;
		}
		if (want >= AUDIT_MAX_LINE)
			return false;
		want *= 4;
	}
}

/* Does s describe the log as it is now (size bytes)? Checked before every use, cached or
 * read from LOG.state: the log is the truth, the state only saves rescanning it. */
static bool state_matches(const struct warden_audit *a, const struct audit_state *s, uint64_t size)
{
	if (s->log_bytes != size)
		return false;
	if (s->tree.size == 0)
		return size == 0;
	uint8_t leaf[AUDIT_HASH_LEN];
	return last_leaf_of(a->fd, size, leaf) && memcmp(leaf, s->last_leaf, sizeof(leaf)) == 0;
}

static char *state_format(const struct audit_state *s)
{
	char b64[AUDIT_B64_HASH];
	audit_b64_encode(s->last_leaf, AUDIT_HASH_LEN, b64);
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		abort();
	fprintf(f, STATE_MAGIC "log-bytes %" PRIu64 "\nsize %" PRIu64 "\nlast-leaf %s\n",
	        s->log_bytes, s->tree.size, b64);
	if (s->has_cp)
		fprintf(f, "checkpoint %" PRIu64 "\n", s->cp_size);
	else
		fputs("checkpoint -\n", f);
	fprintf(f, "checkpoint-time %" PRId64 "\nfrontier", s->cp_time);
	for (unsigned i = 0; i < s->tree.n; i++) {
		audit_b64_encode(s->tree.frontier[i], AUDIT_HASH_LEN, b64);
		fprintf(f, " %s", b64);
	}
	fputc('\n', f);
	if (fclose(f) != 0)
		abort();
	/* A checksum, so that a torn or damaged state file is noticed and rebuilt. */
	uint8_t sum[AUDIT_HASH_LEN];
	audit_leaf_hash(text, len, sum);
	audit_b64_encode(sum, AUDIT_HASH_LEN, b64);
	char *out = xasprintf("%ssum %s\n", text, b64);
	free(text);
	return out;
}

static bool parse_u64(const char *s, const char *end, uint64_t *ret)
{
	char buf[24];
	uint64_t v;
	if (end - s <= 0 || end - s >= (ptrdiff_t)sizeof(buf))
		return false;
	memcpy(buf, s, (size_t)(end - s));
	buf[end - s] = '\0';
	if (parse_uint(buf, UINT64_MAX, &v, NULL) < 0)
		return false;
	*ret = v;
	return true;
}

/* Read LOG.state; false if it is missing, torn, damaged or not in this format. */
static bool state_read(const struct warden_audit *a, struct audit_state *s)
{
	char text[STATE_MAX + 1];
	if (a->state_fd < 0)
		return false;
	ssize_t n = pread(a->state_fd, text, STATE_MAX, 0);
	if (n <= 0)
		return false;
	text[n] = '\0';
	char *sum = strstr(text, "\nsum ");
	if (strncmp(text, STATE_MAGIC, strlen(STATE_MAGIC)) != 0 || !sum)
		return false;
	sum++;
	uint8_t want[AUDIT_HASH_LEN], got[AUDIT_HASH_LEN];
	audit_leaf_hash(text, (size_t)(sum - text), want);
	char *nl = strchr(sum, '\n');
	if (!nl || nl[1] != '\0' ||
	    audit_b64_decode(sum + 4, (size_t)(nl - sum - 4), got, sizeof(got)) != sizeof(got) ||
	    memcmp(want, got, sizeof(got)) != 0)
		return false;

	*s = (struct audit_state){0};
	audit_tree_init(&s->tree);
	unsigned fields = 0;
	for (char *line = text + strlen(STATE_MAGIC); line < sum;) {
		char *eol = strchr(line, '\n');
		char *sp = memchr(line, ' ', (size_t)(eol - line));
		char *val = sp ? sp + 1 : eol;
		size_t klen = (size_t)((sp ? sp : eol) - line);
		uint64_t u;
#define KEY(k) (klen == strlen(k) && memcmp(line, k, klen) == 0)
		if (KEY("log-bytes") && parse_u64(val, eol, &u)) {
			s->log_bytes = u;
			fields |= 1;
		} else if (KEY("size") && parse_u64(val, eol, &u)) {
			s->tree.size = u;
			fields |= 2;
		} else if (KEY("last-leaf") &&
		           audit_b64_decode(val, (size_t)(eol - val), s->last_leaf,
		                            AUDIT_HASH_LEN) == AUDIT_HASH_LEN) {
			fields |= 4;
		} else if (KEY("checkpoint") && (eol - val == 1 && *val == '-')) {
			s->has_cp = false;
			fields |= 8;
		} else if (KEY("checkpoint") && parse_u64(val, eol, &u)) {
			s->has_cp = true;
			s->cp_size = u;
			fields |= 8;
		} else if (KEY("checkpoint-time") && parse_u64(val, eol, &u) && u <= INT64_MAX) {
			s->cp_time = (int64_t)u;
			fields |= 16;
		} else if (KEY("frontier")) {
			for (char *h = val; h < eol;) {
				char *e = memchr(h, ' ', (size_t)(eol - h));
				e = e ? e : eol;
				if (s->tree.n == AUDIT_MAX_HEIGHT ||
				    audit_b64_decode(h, (size_t)(e - h),
				                     s->tree.frontier[s->tree.n],
				                     AUDIT_HASH_LEN) != AUDIT_HASH_LEN)
					return false;
				s->tree.n++;
				h = e < eol ? e + 1 : eol;
			}
			fields |= 32;
		} else {
			return false;
		}
#undef KEY
		line = eol + 1;
	}
	/* One frontier hash per bit of the size, and a checkpoint inside the tree. */
	return fields == 63 && s->tree.n == (unsigned)__builtin_popcountll(s->tree.size) &&
	       (!s->has_cp || s->cp_size < s->tree.size);
}

/* Failing to write the state costs the next writer a scan of the log, nothing else: the
 * log never depends on it. So this reports nothing. */
static void state_write(struct warden_audit *a)
{
	if (a->state_fd < 0)
		return;
	_cleanup_free_ char *text = state_format(&a->st);
	size_t len = strlen(text);
	if (pwrite(a->state_fd, text, len, 0) != (ssize_t)len ||
	    ftruncate(a->state_fd, (off_t)len) < 0) {
		/* Rather no state than a wrong one; if even this fails, its checksum or its
		 * size (not the log's) gets it rebuilt. */
		if (ftruncate(a->state_fd, 0) < 0)
			return;
	}
}

/* Rebuild the state by reading the whole log. An incomplete last line (an append cut
 * short by a crash: appends are acknowledged only after fdatasync of whole lines) is cut
 * off, and its size kept to be recorded by the next commit. */
static int state_rebuild(struct warden_audit *a, uint64_t size, struct warden_error **err)
{
	struct audit_state s = {0};
	audit_tree_init(&s.tree);
	s.cp_time = -1;
	struct audit_reader r;
	audit_reader_init(&r, a->fd, size);
	const char *line;
	size_t len;
	bool complete;
	int k;
	uint64_t good = 0;
	while ((k = audit_reader_next(&r, &line, &len, &complete, err)) > 0 && complete) {
		bool first = s.tree.size == 0;
		bool is_cp = memmem(line, len, "\"kind\":\"" AUDIT_CHECKPOINT_KIND "\"",
		                    strlen(AUDIT_CHECKPOINT_KIND) + 9) != NULL;
		if (first || is_cp) {
			json_t *j = json_loadb(line, len, JSON_ALLOW_NUL, NULL);
			const char *kind = json_string_value(json_object_get(j, "kind"));
			int64_t t = audit_parse_time(json_string_value(json_object_get(j, "ts")));
			if (kind && streq(kind, AUDIT_CHECKPOINT_KIND)) {
				s.has_cp = true;
				s.cp_size = s.tree.size;
				s.cp_time = t;
			} else if (first) {
				s.cp_time = t;
			}
			json_decref(j);
		}
		audit_leaf_hash(line, len, s.last_leaf);
		audit_tree_push(&s.tree, s.last_leaf);
		good += len + 1;
	}
	audit_reader_free(&r);
	if (k < 0)
		return warden_error_wrap(err, "read audit log %s", a->path);
	if (good < size) {
		if (ftruncate(a->fd, (off_t)good) < 0)
			return warden_error_set(err, errno,
			                        "audit log %s ends in an incomplete line, and "
			                        "cutting it off failed",
			                        a->path);
		s.recovered = size - good;
	}
	if (s.cp_time < 0) /* unreadable: make the next checkpoint due now */
		s.cp_time = s.tree.size ? 0 : (int64_t)time(NULL);
	s.log_bytes = good;
	a->st = s;
	a->st_ok = true;
	return 0;
}

/* The state matching the log (size bytes): ours, LOG.state's, or a rebuilt one. */
static int state_load(struct warden_audit *a, uint64_t size, struct warden_error **err)
{
	if (a->st_ok && state_matches(a, &a->st, size))
		return 0;
	struct audit_state s;
	if (state_read(a, &s) && state_matches(a, &s, size)) {
		a->st = s;
		a->st_ok = true;
		return 0;
	}
	a->st_ok = false;
	return state_rebuild(a, size, err);
}

/* ---- serialising records and checkpoints ---------------------------------------------- */

static int buf_append(const char *data, size_t size, void *userdata)
{
	struct warden_audit *a = userdata;
	if (a->cap - a->len < size + 1) {
		a->cap = (a->len + size + 1) * 2;
		a->buf = xrealloc(a->buf, a->cap);
	}
	memcpy(a->buf + a->len, data, size);
	a->len += size;
	return 0;
}

static uint64_t since_checkpoint(const struct audit_state *s)
{
	return s->tree.size - (s->has_cp ? s->cp_size + 1 : 0);
}

/* Give rec its place in the log (seq, prev, v), serialise it as one line and add its
 * leaf to the tree. */
static int add_record(struct warden_audit *a, struct audit_state *s, json_t *rec,
                      struct warden_error **err)
{
	uint8_t root[AUDIT_HASH_LEN];
	char prev[AUDIT_B64_HASH];
	audit_tree_root(&s->tree, root);
	audit_b64_encode(root, sizeof(root), prev);
	if (json_object_set_new(rec, "seq", json_integer((json_int_t)s->tree.size)) < 0 ||
	    json_object_set_new(rec, "prev", json_string(prev)) < 0 ||
	    json_object_set_new(rec, "v", json_integer(AUDIT_FORMAT)) < 0)
		return warden_error_set(err, ENOMEM, "audit record");
	size_t start = a->len;
	if (json_dump_callback(rec, buf_append, a, AUDIT_JSON_FLAGS) < 0) {
		a->len = start;
		return warden_error_set(err, 0, "audit record %" PRIu64 ": cannot serialise it",
		                        s->tree.size);
	}
	audit_leaf_hash(a->buf + start, a->len - start, s->last_leaf);
	audit_tree_push(&s->tree, s->last_leaf);
	return buf_append("\n", 1, a);
}

/* A checkpoint over every record so far, as the next record. */
static int add_checkpoint(struct warden_audit *a, struct audit_state *s, struct warden_error **err)
{
	uint8_t root[AUDIT_HASH_LEN];
	audit_tree_root(&s->tree, root);
	_cleanup_free_ char *text = audit_checkpoint_text(a->origin, s->tree.size, root);
	char *note = audit_note_sign(&a->key, a->origin, text, err);
	if (!note)
		return warden_error_wrap(err, "audit checkpoint");
	char ts[32];
	int64_t now;
	audit_format_now(ts, &now);
	json_t *rec =
	    json_pack("{s:s, s:s, s:s}", "kind", AUDIT_CHECKPOINT_KIND, "note", note, "ts", ts);
	if (!rec) {
		free(note);
		return warden_error_set(err, ENOMEM, "audit checkpoint");
	}
	uint64_t size = s->tree.size;
	int r = add_record(a, s, rec, err);
	json_decref(rec);
	if (r < 0) {
		free(note);
		return -1;
	}
	s->has_cp = true;
	s->cp_size = size;
	s->cp_time = now;
	free(a->cp_note);
	a->cp_note = note;
	return 0;
}

/* ---- commit ---------------------------------------------------------------------------- */

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Build the lines of the queued records (and of the checkpoints due) into a->buf, on a
 * copy of the state that becomes ours only once they are written. */
static int build_lines(struct warden_audit *a, struct audit_state *s, struct warden_error **err)
{
	a->len = 0;
	free(a->cp_note);
	a->cp_note = NULL;
	if (s->recovered) {
		json_t *rec =
		    json_pack("{s:s, s:I, s:s}", "kind", AUDIT_RECOVERED_KIND, "dropped_bytes",
		              (json_int_t)s->recovered, "reason",
		              "the log ended in an incomplete line (an append cut short)");
		char ts[32];
		audit_format_now(ts, NULL);
		int r = rec ? json_object_set_new(rec, "ts", json_string(ts)) : -1;
		r = r < 0 ? warden_error_set(err, ENOMEM, "audit record")
		          : add_record(a, s, rec, err);
		json_decref(rec);
		if (r < 0)
			return -1;
		s->recovered = 0;
	}
	for (size_t i = 0; i < a->nq; i++) {
		if (add_record(a, s, a->queue[i], err) < 0)
			return -1;
		if (since_checkpoint(s) >= a->every && add_checkpoint(a, s, err) < 0)
			return -1;
	}
	uint64_t since = since_checkpoint(s);
	bool due = a->want_checkpoint || (since > 0 && time(NULL) - s->cp_time >= a->seconds);
	if (due && add_checkpoint(a, s, err) < 0)
		return -1;
	return 0;
}

static int commit_locked(struct warden_audit *a, bool *ret_written, struct warden_error **err)
{
	struct stat st;
	if (fstat(a->fd, &st) < 0)
		return warden_error_set(err, errno, "stat audit log %s", a->path);
	if (state_load(a, (uint64_t)st.st_size, err) < 0)
		return -1;
	struct audit_state s = a->st;
	if (build_lines(a, &s, err) < 0)
		return -1;
	if (a->len == 0)
		return 0;

	int r = write_all(a->fd, a->buf, a->len);
	if (r < 0) {
		/* Leave no partial line behind: the log is ours while the lock is held. */
		if (ftruncate(a->fd, (off_t)a->st.log_bytes) < 0)
			a->st_ok = false;
		return warden_error_set(err, -r, "append to audit log %s", a->path);
	}
	*ret_written = true;
	s.log_bytes = a->st.log_bytes + a->len;
	a->st = s;
	/* What the lines describe may be reported as done only once they are on disk. */
	if (fdatasync(a->fd) < 0) {
		int saved = errno;
		state_write(a);
		return warden_error_set(err, saved, "fdatasync audit log %s", a->path);
	}
	state_write(a);
	return 0;
}

static void queue_clear(struct warden_audit *a)
{
	for (size_t i = 0; i < a->nq; i++)
		json_decref(a->queue[i]);
	a->nq = 0;
}

/* Commit under the lock. cp_file_errors: report a failure to write LOG.checkpoint (the
 * checkpoint itself is in the log by then). */
static int commit(struct warden_audit *a, bool cp_file_errors, struct warden_error **err)
{
	if (a->nq == 0 && !a->want_checkpoint)
		return 0;
	/* Several processes append to one log (each `warden run`, the daemon): an exclusive
	 * lock around reading the state, writing and syncing is what gives every record
	 * exactly one place in the log and keeps lines whole. flock() locks belong to the
	 * open file, so a process that dies holding one releases it. */
	while (flock(a->fd, LOCK_EX) < 0)
		if (errno != EINTR)
			return warden_error_set(err, errno, "lock audit log %s", a->path);
	bool written = false;
	int r = commit_locked(a, &written, err);
	if (written && r == 0 && a->cp_note) {
		/* After the fdatasync: the copy never names records that are not on disk; under
		 * the lock: it never goes back to an older checkpoint. */
		struct warden_error *e = NULL;
		int w =
		    audit_write_file(a->cp_path, a->cp_note, strlen(a->cp_note), 0644, true, &e);
		if (w < 0 && cp_file_errors) {
			if (err && !*err)
				*err = TAKE_PTR(e);
			r = warden_error_wrap(err, "audit checkpoint written to the log, but");
		}
		warden_error_free(e);
	}
	flock(a->fd, LOCK_UN);
	free(a->cp_note);
	a->cp_note = NULL;
	if (written) {
		/* In the log now (maybe not synced, if r < 0): never to be written twice. */
		queue_clear(a);
		a->want_checkpoint = false;
	}
	return r;
}

int warden_audit_commit(struct warden_audit *a, struct warden_error **err)
{
	return commit(a, false, err);
}

int warden_audit_checkpoint(struct warden_audit *a, uint64_t *ret_size, struct warden_error **err)
{
	a->want_checkpoint = true;
	if (commit(a, true, err) < 0)
		return -1;
	if (ret_size)
		*ret_size = a->st.cp_size;
	return 0;
}

/* ---- open, append, close --------------------------------------------------------------- */

/* "warden/<hostname>/audit", with anything a key name cannot hold replaced. */
static char *default_origin(void)
{
	char host[256] = "";
	if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
		snprintf(host, sizeof(host), "localhost");
	for (char *p = host; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == '+' || *p == 0x7f)
			*p = '-';
	return xasprintf("warden/%s/audit", host);
}

/* Load the signing key, creating it on first use. */
static int open_key(struct warden_audit *a, const char *key_path, struct strv *notices,
                    struct warden_error **err)
{
	struct warden_error *e = NULL;
	if (audit_key_load(key_path, true, &a->key, &e) == 0)
		return 0;
	if (e->errnum != ENOENT) {
		*err = e;
		return -1;
	}
	warden_error_free(e);
	e = NULL;
	if (warden_audit_keygen(key_path, &e) < 0) {
		/* Another process made it first: use that one. */
		if (e->errnum != EEXIST) {
			*err = e;
			return warden_error_wrap(err, "create audit key");
		}
		warden_error_free(e);
	} else if (notices) {
		strv_push_take(notices, xasprintf("created audit key %s (public key %s.pub)",
		                                  key_path, key_path));
	}
	return audit_key_load(key_path, true, &a->key, err);
}

static int open_log(struct warden_audit *a, struct warden_error **err)
{
	if (audit_mkdir_parents(a->path, err) < 0)
		return warden_error_wrap(err, "audit log %s", a->path);
	/* O_APPEND: every write lands at the end, whatever another writer did before.
	 * O_CLOEXEC (every descriptor here has it): a sandboxed command must never inherit
	 * a descriptor that can write the record of what it does. */
	int flags = O_RDWR | O_APPEND | O_CLOEXEC | O_NOCTTY;
	a->fd = open(a->path, flags | O_CREAT | O_EXCL, 0600);
	bool created = a->fd >= 0;
	if (!created && errno == EEXIST)
		a->fd = open(a->path, flags | O_CREAT, 0600);
	if (a->fd < 0)
		return warden_error_set(err, errno, "open audit log %s", a->path);
	struct stat st;
	if (fstat(a->fd, &st) < 0)
		return warden_error_set(err, errno, "stat audit log %s", a->path);
	if (!S_ISREG(st.st_mode))
		return warden_error_set(err, 0, "audit log %s: not a regular file", a->path);
	if (created) {
		/* A new file's name must reach the disk too, or a crash loses the whole log. */
		_cleanup_free_ char *dir = xstrdup(a->path);
		char *slash = strrchr(dir, '/');
		if (slash)
			*(slash == dir ? slash + 1 : slash) = '\0';
		_cleanup_close_ int dfd =
		    open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0)
			(void)fsync(dfd);
	}
	a->state_fd = open(a->state_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
	return 0;
}

struct warden_audit *warden_audit_open(const struct warden_audit_opts *opts, struct strv *notices,
                                       struct warden_error **err)
{
	if (audit_crypto_init(err) < 0)
		return NULL;
	_cleanup_free_ char *dlog = NULL, *dkey = NULL;
	if ((!opts->path || !opts->key_path) && warden_audit_default_paths(&dlog, &dkey, err) < 0)
		return NULL;
	struct warden_audit *a = xcalloc(1, sizeof(*a));
	a->fd = a->state_fd = -1;
	a->path = xstrdup(opts->path ? opts->path : dlog);
	a->state_path = xasprintf("%s.state", a->path);
	a->cp_path = xasprintf("%s.checkpoint", a->path);
	a->origin = opts->origin ? xstrdup(opts->origin) : default_origin();
	a->every = opts->checkpoint_every ? opts->checkpoint_every : 1000;
	a->seconds = opts->checkpoint_seconds ? opts->checkpoint_seconds : 300;
	const char *key_path = opts->key_path ? opts->key_path : dkey;

	if (!audit_key_name_ok(a->origin)) {
		warden_error_set(err, 0,
		                 "audit origin \"%s\": must be non-empty, without spaces, '+' or "
		                 "control characters (it names the signing key)",
		                 a->origin);
	} else if (audit_mkdir_parents(key_path, err) == 0 &&
	           open_key(a, key_path, notices, err) == 0 && open_log(a, err) == 0) {
		if (a->state_fd < 0 && notices)
			strv_push_take(notices, xasprintf("cannot open %s (%s): the audit log will "
			                                  "be scanned on every commit",
			                                  a->state_path, strerror(errno)));
		return a;
	}
	warden_audit_close(a);
	return NULL;
}

int warden_audit_append(struct warden_audit *a, json_t *record, struct warden_error **err)
{
	if (!json_is_object(record))
		return warden_error_set(err, 0, "an audit record must be a JSON object");
	const char *kind = json_string_value(json_object_get(record, "kind"));
	if (kind && strncmp(kind, "audit.", 6) == 0)
		return warden_error_set(
		    err, 0, "audit record kind \"%s\": kinds \"audit.*\" are the log's own", kind);
	json_t *ts = json_object_get(record, "ts");
	if (ts && !json_is_string(ts))
		return warden_error_set(err, 0, "audit record: \"ts\" must be a string");
	json_t *copy = json_deep_copy(record);
	if (!copy)
		return warden_error_set(err, ENOMEM, "audit record");
	if (!ts) {
		char now[32];
		audit_format_now(now, NULL);
		if (json_object_set_new(copy, "ts", json_string(now)) < 0) {
			json_decref(copy);
			return warden_error_set(err, ENOMEM, "audit record");
		}
	}
	if (a->nq == a->qcap) {
		a->qcap = a->qcap ? a->qcap * 2 : 64;
		a->queue = xrealloc(a->queue, a->qcap * sizeof(*a->queue));
	}
	a->queue[a->nq++] = copy;
	return 0;
}

void warden_audit_close(struct warden_audit *a)
{
	if (!a)
		return;
	if (a->fd >= 0 && a->key.private) {
		struct warden_error *e = NULL;
		warden_audit_commit(a, &e);
		warden_error_free(e);
	}
	queue_clear(a);
	free(a->queue);
	if (a->fd >= 0)
		close(a->fd);
	if (a->state_fd >= 0)
		close(a->state_fd);
	audit_key_clear(&a->key);
	free(a->buf);
	free(a->cp_note);
	free(a->path);
	free(a->state_path);
	free(a->cp_path);
	free(a->origin);
	free(a);
}
