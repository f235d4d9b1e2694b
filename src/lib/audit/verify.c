/* verify.c: checking an audit log, and inclusion proofs of single records.
 *
 * Sections: checking one record line; warden_audit_verify; finding the latest checkpoint;
 * warden_audit_prove; checking a proof (warden_audit_verify_proof).
 */
#define _GNU_SOURCE
#include "audit-internal.h"

#include <fcntl.h>
#include <stdarg.h>

#define PROOF_FORMAT "warden-audit-proof/1"
#define NOTE_MAX     (64u << 10)

/* The failure of a check: "LOG:LINE: record N: what", returned as WARDEN_AUDIT_TAMPERED. */
static int bad(struct warden_error **err, const char *log, uint64_t line, uint64_t rec,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int bad(struct warden_error **err, const char *log, uint64_t line, uint64_t rec,
               const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *what = NULL;
	if (vasprintf(&what, fmt, ap) < 0)
		abort();
	va_end(ap);
	warden_error_set(err, 0, "%s:%" PRIu64 ": record %" PRIu64 ": %s", log, line, rec, what);
	return WARDEN_AUDIT_TAMPERED;
}

/* ---- checking one record line ---------------------------------------------------------- */

struct verify_ctx {
	const char *log;
	const struct audit_key *key;
	struct audit_tree tree; /* over the records checked so far */
	bool has_cp;
	uint64_t cp_size; /* tree size of the latest valid checkpoint */
	uint64_t checkpoints;
};

/* Check the line of record n (before its leaf joins ctx->tree). */
static int check_record(struct verify_ctx *c, const char *line, size_t len, uint64_t line_no,
                        struct warden_error **err)
{
	uint64_t n = c->tree.size;
	json_error_t jerr;
	json_auto_t *j = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (!j)
		return bad(err, c->log, line_no, n, "not JSON: %s (column %d)", jerr.text,
		           jerr.column);
	if (!json_is_object(j))
		return bad(err, c->log, line_no, n, "not a JSON object");
	json_t *v = json_object_get(j, "v");
	if (!json_is_integer(v) || json_integer_value(v) != AUDIT_FORMAT)
		return bad(err, c->log, line_no, n, "\"v\" is not %d", AUDIT_FORMAT);

	json_t *seq = json_object_get(j, "seq");
	if (!json_is_integer(seq))
		return bad(err, c->log, line_no, n, "no \"seq\"");
	if ((uint64_t)json_integer_value(seq) != n || json_integer_value(seq) < 0)
		return bad(err, c->log, line_no, n,
		           "\"seq\" is %" JSON_INTEGER_FORMAT ", expected %" PRIu64
		           ": records before it were deleted, or records were inserted or "
		           "reordered",
		           json_integer_value(seq), n);

	uint8_t root[AUDIT_HASH_LEN];
	char want[AUDIT_B64_HASH];
	audit_tree_root(&c->tree, root);
	audit_b64_encode(root, sizeof(root), want);
	const char *prev = json_string_value(json_object_get(j, "prev"));
	if (!prev)
		return bad(err, c->log, line_no, n, "no \"prev\"");
	if (!streq(prev, want)) {
		if (n == 0)
			return bad(err, c->log, line_no, n,
			           "\"prev\" is not the root of the empty tree");
		return bad(err, c->log, line_no, n,
		           "\"prev\" does not match the records before it: record %" PRIu64
		           " (line %" PRIu64 ") or one before it was changed, or records were "
		           "deleted, inserted or reordered there",
		           n - 1, line_no - 1);
	}

	const char *kind = json_string_value(json_object_get(j, "kind"));
	if (!kind || !streq(kind, AUDIT_CHECKPOINT_KIND))
		return 0;
	const char *note = json_string_value(json_object_get(j, "note"));
	if (!note)
		return bad(err, c->log, line_no, n, "checkpoint without a \"note\"");
	struct audit_checkpoint cp;
	struct warden_error *e = NULL;
	if (audit_checkpoint_open(note, strlen(note), c->key, &cp, &e) < 0) {
		bad(err, c->log, line_no, n, "checkpoint: %s", e->msg);
		warden_error_free(e);
		return WARDEN_AUDIT_TAMPERED;
	}
	int r = 0;
	if (c->has_cp && cp.size <= c->cp_size)
		r = bad(err, c->log, line_no, n,
		        "checkpoint size %" PRIu64
		        " is not above the previous checkpoint's %" PRIu64,
		        cp.size, c->cp_size);
	else if (cp.size != n)
		r = bad(err, c->log, line_no, n,
		        "checkpoint covers %" PRIu64 " records but is record %" PRIu64
		        ": a checkpoint covers exactly the records before it",
		        cp.size, n);
	else if (memcmp(cp.root, root, sizeof(root)) != 0)
		r = bad(err, c->log, line_no, n,
		        "checkpoint root does not match the records before it");
	audit_checkpoint_clear(&cp);
	if (r < 0)
		return r;
	c->has_cp = true;
	c->cp_size = n;
	c->checkpoints++;
	return 0;
}

/* ---- warden_audit_verify --------------------------------------------------------------- */

/* Read, check the signature of, and parse an external checkpoint file. */
static int load_checkpoint_file(const char *path, const struct audit_key *key,
                                struct audit_checkpoint *ret, struct warden_error **err)
{
	_cleanup_free_ char *note = NULL;
	size_t len;
	if (audit_read_file(path, NOTE_MAX, &note, &len, err) < 0)
		return warden_error_wrap(err, "checkpoint");
	if (audit_checkpoint_open(note, len, key, ret, err) < 0) {
		warden_error_wrap(err, "%s", path);
		return WARDEN_AUDIT_TAMPERED;
	}
	return 0;
}

int warden_audit_verify(const char *log_path, const char *pubkey_path, const char *checkpoint_path,
                        uint64_t *ret_records, uint64_t *ret_checked, struct warden_error **err)
{
	if (audit_crypto_init(err) < 0)
		return -1;
	struct audit_key key = {0};
	if (audit_key_load(pubkey_path, false, &key, err) < 0)
		return -1;
	struct verify_ctx c = {.log = log_path, .key = &key};
	audit_tree_init(&c.tree);
	struct audit_checkpoint ext = {0};
	bool has_ext = false;
	struct audit_reader rd = {.buf = NULL};
	_cleanup_close_ int fd = -1;
	int r = 0;
	uint8_t root[AUDIT_HASH_LEN];

	if (checkpoint_path) {
		r = load_checkpoint_file(checkpoint_path, &key, &ext, err);
		if (r < 0)
			goto out;
		has_ext = true;
	}
	uint64_t size;
	fd = audit_log_open_read(log_path, &size, err);
	if (fd < 0) {
		r = -1;
		goto out;
	}
	if (has_ext && ext.size == 0) {
		audit_empty_root(root);
		if (memcmp(root, ext.root, sizeof(root)) != 0) {
			r = warden_error_set(err, 0, "%s: not a checkpoint of an empty log",
			                     checkpoint_path);
			r = WARDEN_AUDIT_TAMPERED;
			goto out;
		}
	}
	audit_reader_init(&rd, fd, size);
	const char *line;
	size_t len;
	bool complete;
	int k;
	while ((k = audit_reader_next(&rd, &line, &len, &complete, err)) > 0) {
		uint64_t n = c.tree.size;
		if (!complete) {
			r = bad(err, log_path, rd.line_no, n,
			        "incomplete line at the end of the log (an append cut short, or "
			        "a truncation inside a record)");
			goto out;
		}
		if (len == 0) {
			r = bad(err, log_path, rd.line_no, n, "empty line");
			goto out;
		}
		r = check_record(&c, line, len, rd.line_no, err);
		if (r < 0)
			goto out;
		uint8_t leaf[AUDIT_HASH_LEN];
		audit_leaf_hash(line, len, leaf);
		audit_tree_push(&c.tree, leaf);
		if (has_ext && c.tree.size == ext.size) {
			audit_tree_root(&c.tree, root);
			if (memcmp(root, ext.root, sizeof(root)) != 0) {
				r = bad(err, log_path, rd.line_no, n,
				        "the first %" PRIu64 " records do not match checkpoint %s: "
				        "records up to this one were changed, or the log was "
				        "rewritten",
				        ext.size, checkpoint_path);
				goto out;
			}
		}
	}
	if (k < 0) {
		r = warden_error_wrap(err, "%s", log_path);
		goto out;
	}
	if (has_ext && ext.size > c.tree.size) {
		warden_error_set(err, 0,
		                 "%s: %" PRIu64 " records, but checkpoint %s covers %" PRIu64
		                 ": records were removed from the end of the log (truncated)",
		                 log_path, c.tree.size, checkpoint_path, ext.size);
		r = WARDEN_AUDIT_TAMPERED;
		goto out;
	}
	if (ret_records)
		*ret_records = c.tree.size;
	if (ret_checked) {
		uint64_t checked = c.has_cp ? c.cp_size : 0;
		*ret_checked = has_ext && ext.size > checked ? ext.size : checked;
	}
out:
	audit_reader_free(&rd);
	audit_checkpoint_clear(&ext);
	audit_key_clear(&key);
	return r;
}

/* ---- finding the latest checkpoint ----------------------------------------------------- */

/* The note and size of the last checkpoint record in the log's first size bytes, and the
 * number of complete lines. Returns 0 (*ret_note NULL if there is none) or -1. */
static int latest_checkpoint(int fd, uint64_t size, const char *log, char **ret_note,
                             uint64_t *ret_cp_size, uint64_t *ret_lines, struct warden_error **err)
{
	struct audit_reader rd;
	audit_reader_init(&rd, fd, size);
	const char *line;
	size_t len;
	bool complete;
	int k;
	uint64_t n = 0;
	char *note = NULL;
	while ((k = audit_reader_next(&rd, &line, &len, &complete, err)) > 0 && complete) {
		if (memmem(line, len, "\"kind\":\"" AUDIT_CHECKPOINT_KIND "\"",
		           strlen(AUDIT_CHECKPOINT_KIND) + 9)) {
			json_t *j = json_loadb(line, len, JSON_ALLOW_NUL, NULL);
			const char *kind = json_string_value(json_object_get(j, "kind"));
			const char *text = json_string_value(json_object_get(j, "note"));
			if (kind && streq(kind, AUDIT_CHECKPOINT_KIND) && text) {
				free(note);
				note = xstrdup(text);
				*ret_cp_size = n;
			}
			json_decref(j);
		}
		n++;
	}
	audit_reader_free(&rd);
	if (k < 0) {
		free(note);
		return warden_error_wrap(err, "%s", log);
	}
	*ret_note = note;
	*ret_lines = n;
	return 0;
}

/* ---- warden_audit_prove ---------------------------------------------------------------- */

static int check_proof(const json_t *proof, const struct audit_key *key, const char *name,
                       uint64_t *ret_index, uint64_t *ret_size, struct warden_error **err);

/* One sibling subtree of the audit path, hashed as its leaves stream by. */
struct path_range {
	uint64_t lo, hi;
	struct audit_tree t;
};

int warden_audit_prove(const char *log_path, uint64_t index, const char *pubkey_path,
                       char **ret_proof, struct warden_error **err)
{
	if (audit_crypto_init(err) < 0)
		return -1;
	struct audit_key key = {0};
	if (pubkey_path && audit_key_load(pubkey_path, false, &key, err) < 0)
		return -1;
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *note = NULL;
	_cleanup_free_ char *record = NULL;
	_cleanup_free_ struct path_range *ranges = NULL;
	struct audit_checkpoint cp = {0};
	struct audit_reader rd = {.buf = NULL};
	json_t *proof = NULL;
	uint64_t size, cp_size = 0, lines = 0;
	int r = -1;

	fd = audit_log_open_read(log_path, &size, err);
	if (fd < 0)
		goto out;
	if (latest_checkpoint(fd, size, log_path, &note, &cp_size, &lines, err) < 0)
		goto out;
	if (index >= lines) {
		warden_error_set(err, 0, "%s: no record %" PRIu64 " (the log holds %" PRIu64 ")",
		                 log_path, index, lines);
		goto out;
	}
	if (!note) {
		warden_error_set(err, 0,
		                 "%s: no checkpoint covers record %" PRIu64 " yet (there is none): "
		                 "`warden audit checkpoint` adds one",
		                 log_path, index);
		goto out;
	}
	if (index >= cp_size) {
		warden_error_set(err, 0,
		                 "%s: no checkpoint covers record %" PRIu64
		                 " yet (the latest covers "
		                 "records 0 to %" PRIu64 "): `warden audit checkpoint` adds one",
		                 log_path, index, cp_size - 1);
		goto out;
	}
	if (audit_checkpoint_open(note, strlen(note), pubkey_path ? &key : NULL, &cp, err) < 0) {
		warden_error_wrap(err, "%s: record %" PRIu64 ": checkpoint", log_path, cp_size);
		r = WARDEN_AUDIT_TAMPERED;
		goto out;
	}

	/* Stream the leaves once, hashing each sibling subtree of the path as it goes by. */
	uint64_t spans[AUDIT_MAX_HEIGHT][2];
	unsigned nr = audit_path_ranges(index, cp_size, spans);
	ranges = xcalloc(nr ? nr : 1, sizeof(*ranges));
	for (unsigned i = 0; i < nr; i++) {
		ranges[i].lo = spans[i][0];
		ranges[i].hi = spans[i][1];
		audit_tree_init(&ranges[i].t);
	}
	struct audit_tree all;
	audit_tree_init(&all);
	audit_reader_init(&rd, fd, size);
	const char *line;
	size_t len;
	bool complete;
	while (all.size < cp_size) {
		int k = audit_reader_next(&rd, &line, &len, &complete, err);
		if (k < 0) {
			warden_error_wrap(err, "%s", log_path);
			goto out;
		}
		if (k == 0 || !complete) {
			warden_error_set(err, 0, "%s: changed while being read", log_path);
			goto out;
		}
		uint8_t leaf[AUDIT_HASH_LEN];
		audit_leaf_hash(line, len, leaf);
		if (all.size == index)
			record = strndup(line, len);
		for (unsigned i = 0; i < nr; i++)
			if (all.size >= ranges[i].lo && all.size < ranges[i].hi)
				audit_tree_push(&ranges[i].t, leaf);
		audit_tree_push(&all, leaf);
	}
	uint8_t root[AUDIT_HASH_LEN];
	audit_tree_root(&all, root);
	if (memcmp(root, cp.root, sizeof(root)) != 0) {
		warden_error_set(err, 0,
		                 "%s: the first %" PRIu64 " records do not match the latest "
		                 "checkpoint (record %" PRIu64
		                 "): `warden audit verify` finds where",
		                 log_path, cp_size, cp_size);
		r = WARDEN_AUDIT_TAMPERED;
		goto out;
	}

	json_t *path = json_array();
	for (unsigned i = 0; i < nr; i++) {
		uint8_t h[AUDIT_HASH_LEN];
		char b64[AUDIT_B64_HASH];
		audit_tree_root(&ranges[i].t, h);
		audit_b64_encode(h, sizeof(h), b64);
		json_array_append_new(path, json_string(b64));
	}
	proof = json_pack("{s:s, s:I, s:I, s:s, s:o, s:s}", "format", PROOF_FORMAT, "index",
	                  (json_int_t)index, "tree_size", (json_int_t)cp_size, "record", record,
	                  "path", path, "checkpoint", note);
	if (!proof) {
		warden_error_set(err, ENOMEM, "proof");
		goto out;
	}
	/* Check it as its reader will, so that a proof that would fail is never handed out. */
	r = check_proof(proof, pubkey_path ? &key : NULL, "proof", NULL, NULL, err);
	if (r < 0)
		goto out;
	char *text = json_dumps(proof, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (!text) {
		r = warden_error_set(err, ENOMEM, "proof");
		goto out;
	}
	*ret_proof = xasprintf("%s\n", text);
	free(text);
	r = 0;
out:
	json_decref(proof);
	audit_reader_free(&rd);
	audit_checkpoint_clear(&cp);
	audit_key_clear(&key);
	return r;
}

/* ---- checking a proof ------------------------------------------------------------------- */

/* A failed check of proof `name`: WARDEN_AUDIT_TAMPERED with "name: what". */
static int bad_proof(struct warden_error **err, const char *name, const char *what)
{
	warden_error_set(err, 0, "%s: %s", name, what);
	return WARDEN_AUDIT_TAMPERED;
}

/* key NULL: everything but the checkpoint's signature. */
static int check_proof(const json_t *proof, const struct audit_key *key, const char *name,
                       uint64_t *ret_index, uint64_t *ret_size, struct warden_error **err)
{
	const char *format = json_string_value(json_object_get(proof, "format"));
	json_t *index = json_object_get(proof, "index"),
	       *size = json_object_get(proof, "tree_size");
	const char *record = json_string_value(json_object_get(proof, "record"));
	const char *note = json_string_value(json_object_get(proof, "checkpoint"));
	json_t *path = json_object_get(proof, "path");
	if (!json_is_object(proof) || !format || !streq(format, PROOF_FORMAT))
		return bad_proof(err, name, "not a proof (\"format\": \"" PROOF_FORMAT "\")");
	if (!json_is_integer(index) || json_integer_value(index) < 0 || !json_is_integer(size) ||
	    json_integer_value(size) <= json_integer_value(index))
		return bad_proof(err, name,
		                 "\"index\" and \"tree_size\" are not a record's index "
		                 "and a larger tree size");
	if (!record || strchr(record, '\n') || !note || !json_is_array(path) ||
	    json_array_size(path) > AUDIT_MAX_HEIGHT)
		return bad_proof(err, name,
		                 "\"record\", \"checkpoint\" or \"path\" is missing or "
		                 "malformed");
	uint64_t idx = (uint64_t)json_integer_value(index), n = (uint64_t)json_integer_value(size);

	struct audit_checkpoint cp;
	struct warden_error *e = NULL;
	if (audit_checkpoint_open(note, strlen(note), key, &cp, &e) < 0) {
		_cleanup_free_ char *what = xasprintf("checkpoint: %s", e->msg);
		warden_error_free(e);
		return bad_proof(err, name, what);
	}
	uint64_t cp_size = cp.size;
	uint8_t root[AUDIT_HASH_LEN];
	memcpy(root, cp.root, sizeof(root));
	audit_checkpoint_clear(&cp);
	if (cp_size != n)
		return bad_proof(err, name,
		                 "the checkpoint is not of the tree size the proof names");

	uint8_t hashes[AUDIT_MAX_HEIGHT][AUDIT_HASH_LEN];
	size_t np = json_array_size(path);
	for (size_t i = 0; i < np; i++) {
		const char *h = json_string_value(json_array_get(path, i));
		if (!h ||
		    audit_b64_decode(h, strlen(h), hashes[i], AUDIT_HASH_LEN) != AUDIT_HASH_LEN)
			return bad_proof(err, name,
			                 "\"path\" holds something other than base64 "
			                 "SHA-256 hashes");
	}
	json_t *rec = json_loads(record, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
	json_t *seq = json_object_get(rec, "seq");
	bool seq_ok = json_is_integer(seq) && json_integer_value(seq) == (json_int_t)idx;
	json_decref(rec);
	if (!seq_ok)
		return bad_proof(err, name, "the record's \"seq\" is not the proof's index");

	uint8_t leaf[AUDIT_HASH_LEN];
	audit_leaf_hash(record, strlen(record), leaf);
	if (!audit_inclusion_ok(idx, n, leaf, (const uint8_t(*)[AUDIT_HASH_LEN])hashes,
	                        (unsigned)np, root))
		return bad_proof(err, name,
		                 "the audit path does not lead from the record to the "
		                 "checkpoint's root hash");
	if (ret_index)
		*ret_index = idx;
	if (ret_size)
		*ret_size = n;
	return 0;
}

int warden_audit_verify_proof(const char *proof_path, const char *pubkey_path, uint64_t *ret_index,
                              uint64_t *ret_size, struct warden_error **err)
{
	if (audit_crypto_init(err) < 0)
		return -1;
	struct audit_key key = {0};
	if (audit_key_load(pubkey_path, false, &key, err) < 0)
		return -1;
	_cleanup_free_ char *text = NULL;
	size_t len;
	int r =
	    audit_read_file(proof_path, AUDIT_MAX_LINE + NOTE_MAX + (64u << 10), &text, &len, err);
	if (r == 0) {
		json_error_t jerr;
		json_t *proof = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
		if (!proof) {
			warden_error_set(err, 0, "%s:%d: not JSON: %s", proof_path, jerr.line,
			                 jerr.text);
			r = WARDEN_AUDIT_TAMPERED;
		} else {
			r = check_proof(proof, &key, proof_path, ret_index, ret_size, err);
			json_decref(proof);
		}
	}
	audit_key_clear(&key);
	return r;
}
