/* audit-internal.h: what the audit log's files share, not exported by libwarden.
 *
 * Sections: hashing and the RFC 6962 Merkle tree (merkle.c); base64; Ed25519 keys and
 * signed notes, checkpoints (note.c); reading a log line by line and small file helpers
 * (io.c). Error contract: see error.h; what returns void cannot fail except for lack of
 * memory, which aborts as xmalloc() does.
 */
#ifndef WARDEN_AUDIT_INTERNAL_H
#define WARDEN_AUDIT_INTERNAL_H

#include "audit.h"

#include <inttypes.h>
#include <sodium.h>

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define AUDIT_HASH_LEN        32
#define AUDIT_MAX_HEIGHT      64 /* a tree of up to 2^64 - 1 leaves has at most 64 perfect subtrees */
#define AUDIT_B64_HASH        45 /* base64 of a hash, with its NUL */
#define AUDIT_FORMAT          1  /* the "v" of every record */
#define AUDIT_CHECKPOINT_KIND "audit.checkpoint"
#define AUDIT_RECOVERED_KIND  "audit.recovered"
/* Every record line is serialised like this (docs/audit.md, "Records"). */
#define AUDIT_JSON_FLAGS (JSON_COMPACT | JSON_SORT_KEYS)
/* The longest line the readers accept: a record is a few hundred bytes; anything near
 * this is not one of ours. */
#define AUDIT_MAX_LINE (16u << 20)

/* ---- hashing and the Merkle tree (merkle.c) ------------------------------------------ */

/* Initialise libsodium. Call before hashing or signing. */
int audit_crypto_init(struct warden_error **err);
/* SHA-256(0x00 || data): the hash of a record line without its newline. */
void audit_leaf_hash(const void *data, size_t len, uint8_t out[AUDIT_HASH_LEN]);
/* SHA-256(0x01 || left || right). out may alias left or right. */
void audit_node_hash(const uint8_t *left, const uint8_t *right, uint8_t out[AUDIT_HASH_LEN]);
/* The root of the empty tree: SHA-256 of nothing. */
void audit_empty_root(uint8_t out[AUDIT_HASH_LEN]);

/* An append-only tree kept as its frontier: the roots of the perfect subtrees that make
 * it up, largest (leftmost) first; one per bit set in size. */
struct audit_tree {
	uint64_t size;
	unsigned n;
	uint8_t frontier[AUDIT_MAX_HEIGHT][AUDIT_HASH_LEN];
};
void audit_tree_init(struct audit_tree *t);
void audit_tree_push(struct audit_tree *t, const uint8_t leaf[AUDIT_HASH_LEN]);
void audit_tree_root(const struct audit_tree *t, uint8_t out[AUDIT_HASH_LEN]);

/* The leaf ranges [lo, hi) whose subtree roots make up the audit path of leaf index in a
 * tree of size leaves (RFC 9162 2.1.3.1), in the path's order (nearest the leaf first).
 * Returns their number (0 for a tree of one leaf); index < size is the caller's duty. */
unsigned audit_path_ranges(uint64_t index, uint64_t size, uint64_t ret[AUDIT_MAX_HEIGHT][2]);
/* RFC 9162 2.1.3.2: does path prove that leaf is at index in the tree of size with root? */
bool audit_inclusion_ok(uint64_t index, uint64_t size, const uint8_t leaf[AUDIT_HASH_LEN],
                        const uint8_t (*path)[AUDIT_HASH_LEN], unsigned path_len,
                        const uint8_t root[AUDIT_HASH_LEN]);

/* ---- base64 (RFC 4648 section 4, padded) --------------------------------------------- */

/* Encode len bytes into out, which holds 4 * ((len + 2) / 3) + 1 bytes. */
void audit_b64_encode(const void *data, size_t len, char *out);
/* Decode exactly the canonical encoding of at most max bytes: anything else (missing or
 * extra padding, other characters, non-zero spare bits) is refused. Returns the length
 * or -1. */
ssize_t audit_b64_decode(const char *s, size_t slen, uint8_t *out, size_t max);

/* ---- keys and signed notes (note.c) -------------------------------------------------- */

struct audit_key {
	bool private;
	uint8_t pub[32];
	uint8_t sk[crypto_sign_ed25519_SECRETKEYBYTES]; /* seed || public key: private keys */
};
/* Load a PEM Ed25519 key. want_private: a private key, refused when others can read it;
 * otherwise a public key, or a private key whose public half is used. */
int audit_key_load(const char *path, bool want_private, struct audit_key *ret,
                   struct warden_error **err);
/* A key from its 32 raw bytes (RFC 8032 seed, or public key). */
int audit_key_from_raw(const uint8_t raw[32], bool private, struct audit_key *ret,
                       struct warden_error **err);
void audit_key_clear(struct audit_key *k);
/* The signed-note key ID: the first four bytes, big-endian, of
 * SHA-256(name || "\n" || 0x01 || public key). */
uint32_t audit_key_id(const char *name, const uint8_t pub[32]);
/* May name be a note's key name (non-empty, no spaces, no '+', no control characters)? */
bool audit_key_name_ok(const char *name);

/* text (ending in a newline) + a blank line + its Ed25519 signature line by key. */
char *audit_note_sign(const struct audit_key *key, const char *name, const char *text,
                      struct warden_error **err);
/* Check that note is well formed and carries a valid signature by key (signatures by
 * other keys are ignored, as the signed-note spec says; one by key that does not verify
 * fails). Sets *ret_text_len to the length of the signed text and *ret_name to the key
 * name that signed (owned by the caller). key NULL: the form alone is checked, and the
 * first signature's key name is returned. */
int audit_note_open(const char *note, size_t len, const struct audit_key *key, size_t *ret_text_len,
                    char **ret_name, struct warden_error **err);

struct audit_checkpoint {
	char *origin;
	char *signer;
	uint64_t size;
	uint8_t root[AUDIT_HASH_LEN];
};
/* The text of a checkpoint: "origin\nsize\nroot\n". */
char *audit_checkpoint_text(const char *origin, uint64_t size, const uint8_t root[AUDIT_HASH_LEN]);
/* audit_note_open() + parse the text as a C2SP tlog-checkpoint (key NULL: unverified). */
int audit_checkpoint_open(const char *note, size_t len, const struct audit_key *key,
                          struct audit_checkpoint *ret, struct warden_error **err);
void audit_checkpoint_clear(struct audit_checkpoint *c);

/* ---- reading logs and small files (io.c) --------------------------------------------- */

/* Reads a log's first `limit` bytes line by line with pread, from its start. */
struct audit_reader {
	int fd;
	uint64_t limit; /* bytes to read */
	uint64_t off;   /* file offset of buf[0] */
	char *buf;
	size_t cap, len, pos; /* buf holds [off, off + len); the next line starts at pos */
	uint64_t line_no;     /* 1-based number of the line last returned */
};
void audit_reader_init(struct audit_reader *r, int fd, uint64_t limit);
void audit_reader_free(struct audit_reader *r);
/* The next line without its newline (valid until the next call). Returns 1 and sets
 * *ret_line, *ret_len, *ret_complete (false: the bytes before the limit end without a
 * newline), 0 at the end, -1 with err on a read error or a line over AUDIT_MAX_LINE. */
int audit_reader_next(struct audit_reader *r, const char **ret_line, size_t *ret_len,
                      bool *ret_complete, struct warden_error **err);
/* Open a log for reading and note its size under a shared lock, so that no append is
 * half written in what will be read (appends take the lock exclusively). */
int audit_log_open_read(const char *path, uint64_t *ret_size, struct warden_error **err);

/* Read a whole small file (up to max bytes) into a NUL-terminated buffer. */
int audit_read_file(const char *path, size_t max, char **ret, size_t *ret_len,
                    struct warden_error **err);
/* Write buf to path through a temporary file, synced: with replace, renamed over path
 * (readers see the old or the new contents, never a mix); without, linked to path, which
 * must not exist (readers see no file or the whole one). */
int audit_write_file(const char *path, const char *buf, size_t len, mode_t mode, bool replace,
                     struct warden_error **err);
/* Create dir and its missing parents (mode 0700 for those created). */
int audit_mkdir_parents(const char *path, struct warden_error **err);
/* The current time as RFC 3339 UTC with microseconds ("2026-01-02T03:04:05.123456Z"). */
void audit_format_now(char out[32], int64_t *ret_epoch);
/* Parse what audit_format_now() writes (and the same without a fraction); -1 if not. */
int64_t audit_parse_time(const char *s);

#endif
