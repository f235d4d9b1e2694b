/* audit.h: the tamper-evident audit log.
 *
 * An append-only file of JSON-line records, with an RFC 6962 Merkle tree over them
 * (leaf = SHA-256(0x00 || record line), node = SHA-256(0x01 || left || right)) and, every
 * N records or T seconds, a checkpoint in the C2SP tlog-checkpoint format signed with
 * Ed25519 (a signed note). Many processes append to one log at once (several `warden run`,
 * later the daemon): an append takes an exclusive lock on the log, so records never
 * interleave or get lost, and a commit returns only once its records are on disk
 * (fdatasync), so that the action a record describes is reported as done only after.
 *
 * Record lines are JSON objects. The log adds to each: "v" (format version, 1), "seq"
 * (0-based index in the log = leaf index), "ts" (RFC 3339 UTC with microseconds, unless
 * the caller set one) and "prev" (base64 of the tree root over all earlier records, so
 * that a changed, deleted, inserted or reordered record is pinpointed by the next one).
 * A checkpoint is itself a record ("kind": "audit.checkpoint", "note": the signed note),
 * committing to every record before it. The latest one is also written to LOG.checkpoint,
 * for copying elsewhere; LOG.state caches the tree's frontier (never trusted over LOG).
 * docs/audit.md describes the format, the guarantees and their limits.
 *
 * Error contract: see error.h. Nothing here prints.
 */
#ifndef WARDEN_AUDIT_H
#define WARDEN_AUDIT_H

#include "../error.h"
#include "../util.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct warden_audit_opts {
	const char *path;            /* the log; NULL: the default (warden_audit_default_paths) */
	const char *key_path;        /* Ed25519 private key (PEM); NULL: the default */
	const char *origin;          /* checkpoint origin line; NULL: "warden/<hostname>/audit" */
	unsigned checkpoint_every;   /* records between checkpoints; 0: 1000 */
	unsigned checkpoint_seconds; /* seconds between checkpoints; 0: 300 */
};

struct warden_audit;

/* The default log and key paths: /var/lib/warden/audit.log and audit.key as root;
 * $XDG_STATE_HOME/warden/ (default ~/.local/state/warden/) otherwise; WARDEN_AUDIT_LOG
 * and WARDEN_AUDIT_KEY override them. Caller frees both. */
int warden_audit_default_paths(char **ret_log, char **ret_key, struct warden_error **err);

/* Open (creating the log, its directory and the key if absent) for appending. What the
 * caller should tell the user (e.g. "created audit key /var/lib/warden/audit.key") is
 * pushed to notices. */
struct warden_audit *warden_audit_open(const struct warden_audit_opts *opts, struct strv *notices,
                                       struct warden_error **err);

/* Queue a record (the object is copied; the caller keeps its reference). Not durable
 * until warden_audit_commit(). */
int warden_audit_append(struct warden_audit *a, json_t *record, struct warden_error **err);

/* Write every queued record under the lock, fdatasync, and add a checkpoint when one is
 * due. Returns once all of it is on disk. */
int warden_audit_commit(struct warden_audit *a, struct warden_error **err);

/* Commit what is queued (errors ignored) and free. NULL-safe. */
void warden_audit_close(struct warden_audit *a);

/* Commit what is queued and add a checkpoint over every record so far, now, and write it
 * to LOG.checkpoint (a failure to write that file is reported here; commit() leaves it
 * to the next checkpoint). Sets *ret_size (may be NULL) to the tree size it covers. */
int warden_audit_checkpoint(struct warden_audit *a, uint64_t *ret_size, struct warden_error **err);

/* What the checking functions below return when the log or proof is not intact (as
 * opposed to -1: it could not be checked, for a missing file, a bad key, I/O errors). */
#define WARDEN_AUDIT_TAMPERED (-2)

/* Verification, for `warden audit verify` and tests.
 * Checks every line parses, every "seq" and "prev", every checkpoint's root and
 * signature against pubkey_path, that checkpoint sizes never shrink, and (if
 * checkpoint_path is given) that the log still holds that checkpoint's tree. When the log
 * is not intact, returns WARDEN_AUDIT_TAMPERED with the first bad record named
 * ("audit.log:17: record 16: ..."); -1 when it cannot check (I/O, keys). On success
 * fills *ret_records and *ret_checked (records covered by a valid checkpoint). Records
 * after the latest checkpoint are chained but not signed: see docs/audit.md. */
int warden_audit_verify(const char *log_path, const char *pubkey_path, const char *checkpoint_path,
                        uint64_t *ret_records, uint64_t *ret_checked, struct warden_error **err);

/* Create an Ed25519 key pair for signing checkpoints: the private key at key_path (PEM,
 * mode 0600, its directory created 0700 if missing) and the public key at key_path.pub.
 * Never replaces a file: fails with errnum EEXIST if either exists. */
int warden_audit_keygen(const char *key_path, struct warden_error **err);

/* An inclusion proof of record index against the latest checkpoint of the log: a JSON
 * object (docs/audit.md, "Proofs") holding the record line, its index, the tree size,
 * the audit path and the signed checkpoint, that warden_audit_verify_proof() checks
 * without the log. With pubkey_path, the checkpoint's signature is checked first.
 * *ret_proof is the JSON text, owned by the caller. Returns 0, -1 (I/O, no such record,
 * no checkpoint covering it yet), or WARDEN_AUDIT_TAMPERED (the log does not match its
 * checkpoint, or the checkpoint is not signed by the key). */
int warden_audit_prove(const char *log_path, uint64_t index, const char *pubkey_path,
                       char **ret_proof, struct warden_error **err);

/* Check a proof written by warden_audit_prove(): the checkpoint is signed by the key,
 * covers the tree size the proof names, and the audit path leads from the record's leaf
 * hash to its root; the record's "seq" is its index. Returns 0 (and fills *ret_index and
 * *ret_size, either may be NULL), WARDEN_AUDIT_TAMPERED, or -1 (unreadable file, key). */
int warden_audit_verify_proof(const char *proof_path, const char *pubkey_path, uint64_t *ret_index,
                              uint64_t *ret_size, struct warden_error **err);

#endif
