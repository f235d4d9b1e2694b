/* test_audit.c: the audit log: appending, checkpoints, the state file, concurrent writers,
 * and verification finding every kind of tampering.
 *
 * Sections: fixtures and helpers; appending and checkpoints; the state file and recovery;
 * concurrent writers; tampering; proofs; errors and defaults.
 */
#include "unit.h"
#include "../../src/lib/audit/audit-internal.h"

#include <sys/wait.h>

/* ---- fixtures and helpers -------------------------------------------------------------- */

struct fx {
	char *dir, *log, *key, *pub, *cp;
	struct warden_audit_opts o;
};

static int fx_setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	f->dir = make_tmpdir();
	f->log = xasprintf("%s/a.log", f->dir);
	f->key = xasprintf("%s/k.key", f->dir);
	f->pub = xasprintf("%s/k.key.pub", f->dir);
	f->cp = xasprintf("%s/a.log.checkpoint", f->dir);
	f->o = (struct warden_audit_opts){.path = f->log,
	                                  .key_path = f->key,
	                                  .origin = "test.example/audit",
	                                  .checkpoint_every = 10,
	                                  .checkpoint_seconds = 3600};
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	rm_tree(f->dir);
	free(f->log);
	free(f->key);
	free(f->pub);
	free(f->cp);
	free(f);
	return 0;
}

static struct warden_audit *open_ok(struct fx *f, struct strv *notices)
{
	struct warden_error *e = NULL;
	struct warden_audit *a = warden_audit_open(&f->o, notices, &e);
	if (!a)
		fail_msg("open: %s", warden_error_text(e));
	return a;
}

static void append_one(struct warden_audit *a, const char *writer, int i)
{
	json_t *r = json_pack("{s:s, s:s, s:i, s:s}", "kind", "test.event", "writer", writer, "i",
	                      i, "detail", "something a sandbox did");
	struct warden_error *e = NULL;
	if (warden_audit_append(a, r, &e) < 0)
		fail_msg("append: %s", warden_error_text(e));
	json_decref(r);
}

static void commit_ok(struct warden_audit *a)
{
	struct warden_error *e = NULL;
	if (warden_audit_commit(a, &e) < 0)
		fail_msg("commit: %s", warden_error_text(e));
}

/* n records in batches of batch, committed after each batch. */
static void append_records(struct fx *f, int from, int n, int batch)
{
	struct warden_audit *a = open_ok(f, NULL);
	for (int i = from; i < from + n; i++) {
		append_one(a, "main", i);
		if ((i - from + 1) % batch == 0)
			commit_ok(a);
	}
	commit_ok(a);
	warden_audit_close(a);
}

struct lines {
	char **v;
	size_t n;
};

static struct lines read_lines(const char *path)
{
	struct lines l = {0};
	FILE *fp = fopen(path, "r");
	assert_non_null(fp);
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	while ((len = getline(&line, &cap, fp)) > 0) {
		l.v = xrealloc(l.v, (l.n + 1) * sizeof(*l.v));
		l.v[l.n++] = strndup(line, (size_t)len); /* with its newline */
	}
	free(line);
	fclose(fp);
	return l;
}

static void write_lines(const char *path, const struct lines *l)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i])
			fputs(l->v[i], fp);
	assert_int_equal(fclose(fp), 0);
}

static void free_lines(struct lines *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

__attribute__((noinline)) static char *file_text(const char *path)
{
	char *text = NULL;
	size_t len;
	assert_int_equal(audit_read_file(path, 1 << 26, &text, &len, NULL), 0);
	return text;
}

/* Verify and return the result; *ret_msg gets the error text (or NULL). */
static int verify(struct fx *f, const char *cp, uint64_t *records, uint64_t *checked,
                  char **ret_msg)
{
	struct warden_error *e = NULL;
	uint64_t r0 = 0, c0 = 0;
	int r = warden_audit_verify(f->log, f->pub, cp, records ? records : &r0,
	                            checked ? checked : &c0, &e);
	if (ret_msg)
		*ret_msg = e ? xstrdup(warden_error_text(e)) : NULL;
	warden_error_free(e);
	return r;
}

static void assert_intact(struct fx *f, uint64_t want_records)
{
	char *msg = NULL;
	uint64_t records = 0;
	if (verify(f, NULL, &records, NULL, &msg) != 0)
		fail_msg("verify: %s", msg);
	assert_int_equal(records, want_records);
}

/* Verification fails as tampering, naming `want` in its message. */
static void assert_tampered(struct fx *f, const char *cp, const char *want)
{
	char *msg = NULL;
	int r = verify(f, cp, NULL, NULL, &msg);
	if (r != WARDEN_AUDIT_TAMPERED)
		fail_msg("verify returned %d (%s), expected tampering (%s)", r,
		         msg ? msg : "intact", want);
	if (want && !strstr(msg, want))
		fail_msg("verify said \"%s\", expected it to say \"%s\"", msg, want);
	free(msg);
}

static size_t count_kind(const struct lines *l, const char *kind)
{
	size_t n = 0;
	_cleanup_free_ char *pat = xasprintf("\"kind\":\"%s\"", kind);
	for (size_t i = 0; i < l->n; i++)
		n += l->v[i] && strstr(l->v[i], pat) != NULL;
	return n;
}

/* Re-serialise a record line after fn edits it (what an attacker with a JSON library
 * does). */
static char *edit_line(const char *line, void (*fn)(json_t *, void *), void *arg)
{
	json_t *j = json_loads(line, 0, NULL);
	assert_non_null(j);
	fn(j, arg);
	char *s = json_dumps(j, AUDIT_JSON_FLAGS);
	json_decref(j);
	char *out = xasprintf("%s\n", s);
	free(s);
	return out;
}

static void set_seq(json_t *j, void *arg)
{
	json_object_set_new(j, "seq", json_integer(*(json_int_t *)arg));
}

/* The standard log of the tampering tests: 30 records, checkpoints every 10 (records
 * 10, 21 and 32), then 3 more records: 36 lines. */
static void standard_log(struct fx *f)
{
	append_records(f, 0, 30, 7);
	append_records(f, 30, 3, 3);
	assert_intact(f, 36);
}

/* ---- appending and checkpoints --------------------------------------------------------- */

static void test_open_creates_key_once(void **state)
{
	struct fx *f = *state;
	struct strv notices = {0};
	warden_audit_close(open_ok(f, &notices));
	assert_int_equal(notices.n, 1);
	_cleanup_free_ char *want =
	    xasprintf("created audit key %s (public key %s.pub)", f->key, f->key);
	assert_string_equal(notices.v[0], want);
	struct stat st;
	assert_int_equal(stat(f->key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(f->pub, &st), 0);
	assert_int_equal(stat(f->log, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	strv_clear(&notices);

	warden_audit_close(open_ok(f, &notices));
	assert_int_equal(notices.n, 0);

	/* keygen never replaces a key */
	struct warden_error *e = NULL;
	assert_int_equal(warden_audit_keygen(f->key, &e), -1);
	assert_int_equal(e->errnum, EEXIST);
	warden_error_free(e);
}

static void test_records_and_checkpoints(void **state)
{
	struct fx *f = *state;
	struct warden_audit *a = open_ok(f, NULL);
	for (int i = 0; i < 25; i++)
		append_one(a, "main", i);
	commit_ok(a);
	/* committed means in the file already, before close */
	struct lines l = read_lines(f->log);
	assert_int_equal(l.n, 27); /* 25 + checkpoints at 10 and 21 */
	assert_int_equal(count_kind(&l, AUDIT_CHECKPOINT_KIND), 2);
	for (size_t i = 0; i < l.n; i++) {
		json_t *j = json_loads(l.v[i], 0, NULL);
		assert_non_null(j);
		assert_int_equal(json_integer_value(json_object_get(j, "seq")), i);
		assert_int_equal(json_integer_value(json_object_get(j, "v")), 1);
		const char *ts = json_string_value(json_object_get(j, "ts"));
		assert_non_null(ts);
		assert_true(audit_parse_time(ts) > 0);
		assert_int_equal(strlen(ts), strlen("2026-01-02T03:04:05.123456Z"));
		const char *kind = json_string_value(json_object_get(j, "kind"));
		assert_string_equal(kind,
		                    i == 10 || i == 21 ? AUDIT_CHECKPOINT_KIND : "test.event");
		/* the serialisation is the canonical one: sorted keys, compact */
		char *again = json_dumps(j, AUDIT_JSON_FLAGS);
		assert_int_equal(strncmp(again, l.v[i], strlen(again)), 0);
		free(again);
		json_decref(j);
	}
	/* LOG.checkpoint is the latest checkpoint's note */
	json_t *cp = json_loads(l.v[21], 0, NULL);
	char *text = file_text(f->cp);
	assert_string_equal(text, json_string_value(json_object_get(cp, "note")));
	assert_non_null(strstr(text, "test.example/audit\n21\n"));
	free(text);
	json_decref(cp);
	free_lines(&l);

	/* a caller's own "ts" is kept; "seq", "prev" and "v" are the log's */
	json_t *r = json_pack("{s:s, s:s, s:i, s:s}", "kind", "x", "ts", "2001-02-03T04:05:06Z",
	                      "seq", 999, "prev", "forged");
	assert_int_equal(warden_audit_append(a, r, NULL), 0);
	json_decref(r);
	uint64_t size = 0;
	assert_int_equal(warden_audit_checkpoint(a, &size, NULL), 0);
	assert_int_equal(size, 28);
	warden_audit_close(a);
	l = read_lines(f->log);
	assert_int_equal(l.n, 29);
	assert_non_null(strstr(l.v[27], "\"seq\":27,\"ts\":\"2001-02-03T04:05:06Z\""));
	assert_non_null(strstr(l.v[28], AUDIT_CHECKPOINT_KIND));
	free_lines(&l);

	uint64_t records, checked;
	assert_int_equal(verify(f, f->cp, &records, &checked, NULL), 0);
	assert_int_equal(records, 29);
	assert_int_equal(checked, 28);
}

static void test_checkpoint_after_seconds(void **state)
{
	struct fx *f = *state;
	f->o.checkpoint_seconds = 1;
	struct warden_audit *a = open_ok(f, NULL);
	append_one(a, "main", 0);
	commit_ok(a);
	struct lines l = read_lines(f->log);
	assert_int_equal(count_kind(&l, AUDIT_CHECKPOINT_KIND), 0);
	free_lines(&l);
	usleep(1100 * 1000);
	append_one(a, "main", 1);
	commit_ok(a);
	warden_audit_close(a);
	l = read_lines(f->log);
	assert_int_equal(l.n, 3);
	assert_non_null(strstr(l.v[2], AUDIT_CHECKPOINT_KIND));
	free_lines(&l);
	assert_intact(f, 3);
}

/* ---- the state file and recovery ------------------------------------------------------- */

static void test_state_missing_or_damaged(void **state)
{
	struct fx *f = *state;
	_cleanup_free_ char *st = xasprintf("%s.state", f->log);
	append_records(f, 0, 5, 5);
	char *old = file_text(st);
	assert_non_null(strstr(old, "size 5\n"));

	unlink(st);
	append_records(f, 5, 5, 2);
	assert_intact(f, 11);

	write_text(st, "garbage\n");
	append_records(f, 10, 3, 1);
	assert_intact(f, 14);

	/* a stale state (from 9 records ago): well formed, but not the log's size */
	write_text(st, old);
	append_records(f, 13, 3, 3);
	assert_intact(f, 17);

	/* torn: the first half of a state */
	char *cur = file_text(st);
	cur[strlen(cur) / 2] = '\0';
	write_text(st, cur);
	free(cur);
	append_records(f, 16, 2, 2);
	assert_intact(f, 19);

	/* an edited value breaks the checksum */
	cur = file_text(st);
	char *p = strstr(cur, "size 19\n");
	assert_non_null(p);
	p[6] = '8';
	write_text(st, cur);
	free(cur);
	append_records(f, 18, 2, 2);
	assert_intact(f, 22); /* with a checkpoint after record 20 */
	free(old);
}

static void test_state_of_another_log(void **state)
{
	struct fx *f = *state;
	/* Two logs with lines of the same lengths but other contents: the state of one
	 * matches the other's size, and must still not be trusted for it. */
	append_records(f, 0, 4, 4);
	_cleanup_free_ char *st = xasprintf("%s.state", f->log);
	_cleanup_free_ char *log2 = xasprintf("%s/b.log", f->dir);
	_cleanup_free_ char *st2 = xasprintf("%s.state", log2);
	struct lines l = read_lines(f->log);
	for (size_t i = 0; i < l.n; i++) {
		char *w = strstr(l.v[i], "\"writer\":\"main\"");
		if (w)
			memcpy(w, "\"writer\":\"MAIN\"", 15);
	}
	write_lines(log2, &l);
	free_lines(&l);
	struct stat a, b;
	assert_int_equal(stat(f->log, &a), 0);
	assert_int_equal(stat(log2, &b), 0);
	assert_int_equal(a.st_size, b.st_size);

	/* b.log's real state, as its own writer would leave it */
	const char *path = f->o.path;
	f->o.path = log2;
	append_records(f, 4, 1, 1);
	f->o.path = path;
	char *other = file_text(st2);
	/* now make a.log the same size again and give it b.log's state */
	append_records(f, 4, 1, 1);
	write_text(st, other);
	free(other);
	append_records(f, 5, 3, 3);
	assert_intact(f, 8);
}

static void test_two_handles_one_process(void **state)
{
	struct fx *f = *state;
	struct warden_audit *a = open_ok(f, NULL), *b = open_ok(f, NULL);
	for (int i = 0; i < 30; i++) {
		struct warden_audit *w = i % 3 ? a : b;
		append_one(w, i % 3 ? "a" : "b", i);
		commit_ok(w);
	}
	warden_audit_close(a);
	warden_audit_close(b);
	assert_intact(f, 33);
}

static void test_incomplete_last_line_recovered(void **state)
{
	struct fx *f = *state;
	append_records(f, 0, 3, 3);
	/* an append cut short by a crash */
	int fd = open(f->log, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "{\"kind\":\"te", 11), 11);
	close(fd);
	char *msg = NULL;
	assert_int_equal(verify(f, NULL, NULL, NULL, &msg), WARDEN_AUDIT_TAMPERED);
	assert_non_null(strstr(msg, "a.log:4: record 3: incomplete line"));
	free(msg);

	append_records(f, 3, 1, 1);
	struct lines l = read_lines(f->log);
	assert_int_equal(l.n, 5);
	assert_non_null(strstr(l.v[3], "\"dropped_bytes\":11,\"kind\":\"" AUDIT_RECOVERED_KIND));
	assert_non_null(strstr(l.v[4], "\"i\":3"));
	free_lines(&l);
	assert_intact(f, 5);
}

/* ---- concurrent writers ---------------------------------------------------------------- */

static void test_concurrent_writers(void **state)
{
	struct fx *f = *state;
	enum { WRITERS = 4, EACH = 40 };
	warden_audit_close(open_ok(f, NULL)); /* the key, made once */
	pid_t pids[WRITERS];
	for (int w = 0; w < WRITERS; w++) {
		pids[w] = fork();
		assert_true(pids[w] >= 0);
		if (pids[w] == 0) {
			char name[8];
			snprintf(name, sizeof(name), "w%d", w);
			struct warden_error *e = NULL;
			struct warden_audit *a = warden_audit_open(&f->o, NULL, &e);
			if (!a)
				_exit(2);
			for (int i = 0; i < EACH; i++) {
				json_t *r = json_pack("{s:s, s:s, s:i}", "kind", "test.event",
				                      "writer", name, "i", i);
				/* one record per commit, the worst case for interleaving */
				if (warden_audit_append(a, r, &e) < 0 ||
				    warden_audit_commit(a, &e) < 0)
					_exit(3);
				json_decref(r);
			}
			warden_audit_close(a);
			_exit(0);
		}
	}
	for (int w = 0; w < WRITERS; w++) {
		int status;
		assert_int_equal(waitpid(pids[w], &status, 0), pids[w]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	struct lines l = read_lines(f->log);
	size_t cps = count_kind(&l, AUDIT_CHECKPOINT_KIND);
	assert_int_equal(l.n, WRITERS * EACH + cps);
	assert_int_equal(cps, WRITERS * EACH / 10);
	bool seen[WRITERS][EACH] = {{false}};
	for (size_t i = 0; i < l.n; i++) {
		json_t *j = json_loads(l.v[i], 0, NULL);
		assert_non_null(j); /* every line whole */
		const char *w = json_string_value(json_object_get(j, "writer"));
		if (w) {
			int wi = w[1] - '0', ii = (int)json_integer_value(json_object_get(j, "i"));
			assert_false(seen[wi][ii]);
			seen[wi][ii] = true;
		}
		json_decref(j);
	}
	for (int w = 0; w < WRITERS; w++)
		for (int i = 0; i < EACH; i++)
			assert_true(seen[w][i]);
	free_lines(&l);
	assert_intact(f, WRITERS * EACH + cps);
}

/* ---- tampering --------------------------------------------------------------------------- */

static void test_changed_byte_anywhere(void **state)
{
	struct fx *f = *state;
	standard_log(f);
	struct lines l = read_lines(f->log);
	/* every byte of an ordinary record, and of a checkpoint record */
	size_t targets[] = {5, 10, 31};
	for (size_t t = 0; t < ARRAY_SIZE(targets); t++) {
		char *line = l.v[targets[t]];
		size_t len = strlen(line) - 1;
		for (size_t i = 0; i < len; i++) {
			line[i] ^= 0x01;
			write_lines(f->log, &l);
			assert_tampered(f, NULL, NULL);
			line[i] ^= 0x01;
		}
	}
	/* the message names the next record, and the changed one */
	char *p = strstr(l.v[5], "\"i\":5");
	p[4] = '6';
	write_lines(f->log, &l);
	assert_tampered(f, NULL,
	                "a.log:7: record 6: \"prev\" does not match the records before it: "
	                "record 5 (line 6)");
	free_lines(&l);
}

static void test_deleted_inserted_reordered(void **state)
{
	struct fx *f = *state;
	standard_log(f);
	struct lines l = read_lines(f->log);

	char *saved = l.v[5];
	l.v[5] = NULL;
	write_lines(f->log, &l);
	assert_tampered(f, NULL, "a.log:6: record 5: \"seq\" is 6, expected 5");
	l.v[5] = saved;

	struct lines ins = {xcalloc(l.n + 1, sizeof(char *)), l.n + 1};
	for (size_t i = 0, j = 0; i < l.n; i++) {
		ins.v[j++] = xstrdup(l.v[i]);
		if (i == 5)
			ins.v[j++] = xstrdup(l.v[i]);
	}
	write_lines(f->log, &ins);
	free_lines(&ins);
	assert_tampered(f, NULL, "a.log:7: record 6: \"seq\" is 5, expected 6");

	l.v[5] = l.v[6];
	l.v[6] = saved;
	write_lines(f->log, &l);
	assert_tampered(f, NULL, "a.log:6: record 5: \"seq\" is 6, expected 5");
	l.v[6] = l.v[5];
	l.v[5] = saved;

	/* deleted, with every later "seq" renumbered to hide it: the chain catches it */
	struct lines del = {xcalloc(l.n, sizeof(char *)), l.n - 1};
	for (size_t i = 0, j = 0; i < l.n; i++) {
		if (i == 5)
			continue;
		json_int_t seq = (json_int_t)j;
		del.v[j++] = edit_line(l.v[i], set_seq, &seq);
	}
	write_lines(f->log, &del);
	free_lines(&del);
	assert_tampered(f, NULL, "a.log:6: record 5: \"prev\" does not match");

	/* the untouched log still verifies */
	write_lines(f->log, &l);
	assert_intact(f, 36);
	free_lines(&l);
}

static void test_truncation(void **state)
{
	struct fx *f = *state;
	standard_log(f);
	_cleanup_free_ char *kept = xasprintf("%s/kept.checkpoint", f->dir);
	char *cp = file_text(f->cp);
	write_text(kept, cp); /* a copy kept elsewhere: covers 32 records */
	free(cp);
	struct lines l = read_lines(f->log);

	/* Cut behind the last checkpoint (records 15 to 35 gone), at a line boundary: what
	 * is left is a valid log of its own, and only the copy of the checkpoint tells. */
	l.n = 15;
	write_lines(f->log, &l);
	uint64_t records = 0, checked = 0;
	assert_int_equal(verify(f, NULL, &records, &checked, NULL), 0);
	assert_int_equal(records, 15);
	assert_int_equal(checked, 10);
	assert_tampered(f, kept, "a.log: 15 records, but checkpoint " /* path follows */);
	assert_tampered(f, kept, "covers 32: records were removed from the end of the log");

	/* cut inside a record: seen without any checkpoint */
	l.n = 36;
	write_lines(f->log, &l);
	off_t cut = 7;
	for (size_t i = 0; i < 20; i++)
		cut += (off_t)strlen(l.v[i]);
	assert_int_equal(truncate(f->log, cut), 0);
	assert_tampered(f, NULL, "incomplete line at the end of the log");

	/* the whole log, against the copy: intact */
	write_lines(f->log, &l);
	assert_int_equal(verify(f, kept, &records, &checked, NULL), 0);
	assert_int_equal(checked, 32);

	/* cut behind the last checkpoint and grown again with new records, consistently
	 * chained: only the copy tells */
	l.n = 15;
	write_lines(f->log, &l);
	f->o.checkpoint_every = 1000;
	append_records(f, 100, 25, 5);
	assert_int_equal(verify(f, NULL, &records, &checked, NULL), 0);
	assert_int_equal(records, 40);
	assert_int_equal(checked, 10);
	assert_tampered(f, kept,
	                "a.log:32: record 31: the first 32 records do not match "
	                "checkpoint");
	l.n = 36;
	free_lines(&l);
}

static void resign(json_t *j, void *arg)
{
	const struct audit_key *other = arg;
	const char *note = json_string_value(json_object_get(j, "note"));
	_cleanup_free_ char *text = strndup(note, (size_t)(strstr(note, "\n\n") + 1 - note));
	char *forged = audit_note_sign(other, "test.example/audit", text, NULL);
	assert_non_null(forged);
	json_object_set_new(j, "note", json_string(forged));
	free(forged);
}

static void replace_note(json_t *j, void *arg)
{
	json_object_set_new(j, "note", json_string(arg));
}

static void test_forged_checkpoints(void **state)
{
	struct fx *f = *state;
	standard_log(f);
	struct lines l = read_lines(f->log);
	char *orig = xstrdup(l.v[21]);

	/* size or root edited in a checkpoint: its signature no longer verifies */
	char *p = strstr(l.v[21], "\\n21\\n");
	p[3] = '2';
	write_lines(f->log, &l);
	assert_tampered(f, NULL,
	                "a.log:22: record 21: checkpoint: the signature by "
	                "test.example/audit");
	strcpy(l.v[21], orig);
	p = strstr(l.v[21], "\\n21\\n") + 6;
	*p = *p == 'A' ? 'B' : 'A';
	write_lines(f->log, &l);
	assert_tampered(f, NULL, "does not verify");
	strcpy(l.v[21], orig);

	/* re-signed with another key under the same name */
	uint8_t raw[32] = {7};
	struct audit_key other;
	assert_int_equal(audit_key_from_raw(raw, true, &other, NULL), 0);
	free(l.v[21]);
	l.v[21] = edit_line(orig, resign, &other);
	write_lines(f->log, &l);
	assert_tampered(f, NULL, "a.log:22: record 21: checkpoint: not signed by the given key");

	/* an earlier checkpoint replayed in a later place */
	json_t *first = json_loads(l.v[10], 0, NULL);
	free(l.v[21]);
	l.v[21] = edit_line(orig, replace_note,
	                    (void *)json_string_value(json_object_get(first, "note")));
	json_decref(first);
	write_lines(f->log, &l);
	assert_tampered(f, NULL,
	                "record 21: checkpoint size 10 is not above the previous checkpoint's 10");
	free(l.v[21]);
	l.v[21] = orig;
	/* a later checkpoint moved to an earlier place */
	char *first_line = l.v[10];
	json_t *later = json_loads(orig, 0, NULL);
	l.v[10] = edit_line(first_line, replace_note,
	                    (void *)json_string_value(json_object_get(later, "note")));
	json_decref(later);
	write_lines(f->log, &l);
	assert_tampered(f, NULL,
	                "a.log:11: record 10: checkpoint covers 21 records but is "
	                "record 10");
	free(l.v[10]);
	l.v[10] = first_line;
	write_lines(f->log, &l);
	assert_intact(f, 36);
	free_lines(&l);

	/* a whole log written with another key: consistent, but not ours */
	_cleanup_free_ char *k2 = xasprintf("%s/other.key", f->dir);
	const char *k = f->o.key_path;
	f->o.key_path = k2;
	unlink(f->log);
	_cleanup_free_ char *st = xasprintf("%s.state", f->log);
	unlink(st);
	append_records(f, 0, 12, 12);
	f->o.key_path = k;
	assert_tampered(f, NULL,
	                "a.log:11: record 10: checkpoint: not signed by the given key "
	                "(signed by: test.example/audit (key ID");
	audit_key_clear(&other);
}

static void test_unsigned_tail_is_reported(void **state)
{
	struct fx *f = *state;
	standard_log(f);
	/* The last three records follow the last checkpoint: a change to the very last one
	 * leaves no trace (no later record or checkpoint commits to it). verify says how
	 * many records a checkpoint covers, so that the limit is visible. */
	struct lines l = read_lines(f->log);
	char *p = strstr(l.v[35], "\"i\":32");
	p[5] = '9';
	write_lines(f->log, &l);
	free_lines(&l);
	uint64_t records, checked;
	assert_int_equal(verify(f, NULL, &records, &checked, NULL), 0);
	assert_int_equal(records, 36);
	assert_int_equal(checked, 32);
}

/* ---- proofs ------------------------------------------------------------------------------ */

static int proof_check(struct fx *f, const char *proof_text, char **ret_msg)
{
	_cleanup_free_ char *path = xasprintf("%s/proof.json", f->dir);
	write_text(path, proof_text);
	struct warden_error *e = NULL;
	uint64_t index = 0, size = 0;
	int r = warden_audit_verify_proof(path, f->pub, &index, &size, &e);
	*ret_msg = e ? xstrdup(warden_error_text(e)) : NULL;
	warden_error_free(e);
	return r;
}

static void test_proofs(void **state)
{
	struct fx *f = *state;
	standard_log(f);
	char *msg = NULL;
	for (uint64_t idx = 0; idx < 32; idx++) {
		char *proof = NULL;
		struct warden_error *e = NULL;
		if (warden_audit_prove(f->log, idx, f->pub, &proof, &e) != 0)
			fail_msg("prove %llu: %s", (unsigned long long)idx, warden_error_text(e));
		if (proof_check(f, proof, &msg) != 0)
			fail_msg("proof of %llu: %s", (unsigned long long)idx, msg);

		json_t *j = json_loads(proof, 0, NULL);
		assert_int_equal(json_integer_value(json_object_get(j, "index")), idx);
		assert_int_equal(json_integer_value(json_object_get(j, "tree_size")), 32);
		/* the record altered */
		char *rec = xstrdup(json_string_value(json_object_get(j, "record")));
		rec[strlen(rec) - 2] ^= 0x01;
		json_object_set_new(j, "record", json_string(rec));
		char *bad = json_dumps(j, 0);
		assert_int_equal(proof_check(f, bad, &msg), WARDEN_AUDIT_TAMPERED);
		free(msg);
		free(bad);
		free(rec);
		/* a path hash altered */
		json_decref(j);
		j = json_loads(proof, 0, NULL);
		json_t *path = json_object_get(j, "path");
		char *h = xstrdup(json_string_value(json_array_get(path, idx % 5)));
		h[0] = h[0] == 'A' ? 'B' : 'A';
		json_array_set_new(path, idx % 5, json_string(h));
		bad = json_dumps(j, 0);
		assert_int_equal(proof_check(f, bad, &msg), WARDEN_AUDIT_TAMPERED);
		assert_non_null(strstr(msg, "audit path does not lead"));
		free(msg);
		free(bad);
		free(h);
		/* another index */
		json_decref(j);
		j = json_loads(proof, 0, NULL);
		json_object_set_new(j, "index", json_integer((json_int_t)(idx + 1) % 32));
		bad = json_dumps(j, 0);
		assert_int_equal(proof_check(f, bad, &msg), WARDEN_AUDIT_TAMPERED);
		free(msg);
		free(bad);
		json_decref(j);
		free(proof);
	}
	/* not covered by a checkpoint yet, and no such record */
	struct warden_error *e = NULL;
	char *proof = NULL;
	assert_int_equal(warden_audit_prove(f->log, 33, f->pub, &proof, &e), -1);
	assert_non_null(strstr(e->msg, "no checkpoint covers record 33 yet"));
	warden_error_free(e);
	e = NULL;
	assert_int_equal(warden_audit_prove(f->log, 36, NULL, &proof, &e), -1);
	assert_non_null(strstr(e->msg, "no record 36 (the log holds 36)"));
	warden_error_free(e);

	/* a proof checked with another key */
	assert_int_equal(warden_audit_prove(f->log, 3, NULL, &proof, NULL), 0);
	_cleanup_free_ char *k2 = xasprintf("%s/k2.key", f->dir);
	assert_int_equal(warden_audit_keygen(k2, NULL), 0);
	_cleanup_free_ char *path = xasprintf("%s/proof.json", f->dir);
	_cleanup_free_ char *pub2 = xasprintf("%s.pub", k2);
	write_text(path, proof);
	e = NULL;
	assert_int_equal(warden_audit_verify_proof(path, pub2, NULL, NULL, &e),
	                 WARDEN_AUDIT_TAMPERED);
	assert_non_null(strstr(e->msg, "not signed by the given key"));
	warden_error_free(e);
	free(proof);

	/* a log that no longer matches its checkpoint gives no proof */
	struct lines l = read_lines(f->log);
	char *p = strstr(l.v[4], "\"i\":4");
	p[4] = '5';
	write_lines(f->log, &l);
	free_lines(&l);
	e = NULL;
	assert_int_equal(warden_audit_prove(f->log, 3, f->pub, &proof, &e), WARDEN_AUDIT_TAMPERED);
	assert_non_null(strstr(e->msg, "do not match the latest checkpoint"));
	warden_error_free(e);
}

/* ---- errors and defaults ------------------------------------------------------------------ */

static char *open_err(struct fx *f)
{
	struct warden_error *e = NULL;
	struct warden_audit *a = warden_audit_open(&f->o, NULL, &e);
	assert_null(a);
	assert_non_null(e);
	char *msg = xstrdup(warden_error_text(e));
	warden_error_free(e);
	return msg;
}

static void test_errors(void **state)
{
	struct fx *f = *state;
	warden_audit_close(open_ok(f, NULL));

	/* a log under a regular file */
	_cleanup_free_ char *bad_log = xasprintf("%s/a.log/x.log", f->dir);
	f->o.path = bad_log;
	char *msg = open_err(f);
	_cleanup_free_ char *want =
	    xasprintf("audit log %s: %s/a.log: Not a directory", bad_log, f->dir);
	assert_string_equal(msg, want);
	free(msg);
	f->o.path = f->log;

	/* a key others can read, a key that is not one, a public key */
	assert_int_equal(chmod(f->key, 0644), 0);
	msg = open_err(f);
	assert_non_null(strstr(msg, "is accessible to other users (mode 0644): chmod 600 it"));
	free(msg);
	assert_int_equal(chmod(f->key, 0600), 0);
	_cleanup_free_ char *junk = xasprintf("%s/junk.key", f->dir);
	write_text(junk, "not a key\n");
	assert_int_equal(chmod(junk, 0600), 0);
	f->o.key_path = junk;
	msg = open_err(f);
	assert_non_null(strstr(msg, "junk.key: not a PEM private key"));
	free(msg);
	f->o.key_path = f->pub;
	assert_int_equal(chmod(f->pub, 0600), 0);
	msg = open_err(f);
	assert_non_null(strstr(msg, "not a PEM private key"));
	free(msg);
	f->o.key_path = f->key;
	f->o.origin = "has space";
	msg = open_err(f);
	assert_non_null(strstr(msg, "audit origin \"has space\""));
	free(msg);
	f->o.origin = NULL;

	/* records the log refuses */
	struct warden_audit *a = open_ok(f, NULL);
	struct warden_error *e = NULL;
	json_t *r = json_array();
	assert_int_equal(warden_audit_append(a, r, &e), -1);
	assert_string_equal(e->msg, "an audit record must be a JSON object");
	warden_error_free(e);
	json_decref(r);
	e = NULL;
	r = json_pack("{s:s}", "kind", AUDIT_CHECKPOINT_KIND);
	assert_int_equal(warden_audit_append(a, r, &e), -1);
	assert_non_null(strstr(e->msg, "are the log's own"));
	warden_error_free(e);
	json_decref(r);
	e = NULL;
	r = json_pack("{s:s, s:i}", "kind", "x", "ts", 5);
	assert_int_equal(warden_audit_append(a, r, &e), -1);
	warden_error_free(e);
	json_decref(r);
	/* the default origin is warden/<hostname>/audit */
	assert_int_equal(warden_audit_checkpoint(a, NULL, NULL), 0);
	warden_audit_close(a);
	char *cp = file_text(f->cp);
	assert_int_equal(strncmp(cp, "warden/", 7), 0);
	assert_non_null(strstr(cp, "/audit\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n"));
	free(cp);

	/* what verify cannot check is not tampering */
	e = NULL;
	_cleanup_free_ char *missing = xasprintf("%s/missing.log", f->dir);
	assert_int_equal(warden_audit_verify(missing, f->pub, NULL, NULL, NULL, &e), -1);
	assert_int_equal(e->errnum, ENOENT);
	assert_non_null(strstr(e->msg, missing));
	warden_error_free(e);
	e = NULL;
	assert_int_equal(warden_audit_verify(f->log, missing, NULL, NULL, NULL, &e), -1);
	assert_int_equal(e->errnum, ENOENT);
	warden_error_free(e);
}

static void test_default_paths(void **state)
{
	(void)state;
	char *log = NULL, *key = NULL;
	setenv("WARDEN_AUDIT_LOG", "/x/l.log", 1);
	setenv("WARDEN_AUDIT_KEY", "/x/k.key", 1);
	assert_int_equal(warden_audit_default_paths(&log, &key, NULL), 0);
	assert_string_equal(log, "/x/l.log");
	assert_string_equal(key, "/x/k.key");
	free(log);
	free(key);
	unsetenv("WARDEN_AUDIT_LOG");
	unsetenv("WARDEN_AUDIT_KEY");
	setenv("XDG_STATE_HOME", "/state", 1);
	assert_int_equal(warden_audit_default_paths(&log, &key, NULL), 0);
	if (geteuid() == 0) {
		assert_string_equal(log, "/var/lib/warden/audit.log");
		assert_string_equal(key, "/var/lib/warden/audit.key");
	} else {
		assert_string_equal(log, "/state/warden/audit.log");
		assert_string_equal(key, "/state/warden/audit.key");
	}
	free(log);
	free(key);
	unsetenv("XDG_STATE_HOME");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_open_creates_key_once),
	    T(test_records_and_checkpoints),
	    T(test_checkpoint_after_seconds),
	    T(test_state_missing_or_damaged),
	    T(test_state_of_another_log),
	    T(test_two_handles_one_process),
	    T(test_incomplete_last_line_recovered),
	    T(test_concurrent_writers),
	    T(test_changed_byte_anywhere),
	    T(test_deleted_inserted_reordered),
	    T(test_truncation),
	    T(test_forged_checkpoints),
	    T(test_unsigned_tail_is_reported),
	    T(test_proofs),
	    T(test_errors),
	    cmocka_unit_test(test_default_paths),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
