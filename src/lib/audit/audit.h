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
 * committing to every record before it.
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
	const char *path;     /* the log; NULL: the default (warden_audit_default_paths) */
	const char *key_path; /* Ed25519 private key (PEM); NULL: the default */
	const char *origin;   /* checkpoint origin line; NULL: "warden/<hostname>/audit" */
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
struct warden_audit *warden_audit_open(const struct warden_audit_opts *opts,
				       struct strv *notices, struct warden_error **err);

/* Queue a record (the object is copied; the caller keeps its reference). Not durable
 * until warden_audit_commit(). */
int warden_audit_append(struct warden_audit *a, json_t *record, struct warden_error **err);

/* Write every queued record under the lock, fdatasync, and add a checkpoint when one is
 * due. Returns once all of it is on disk. */
int warden_audit_commit(struct warden_audit *a, struct warden_error **err);

/* Commit what is queued (errors ignored) and free. NULL-safe. */
void warden_audit_close(struct warden_audit *a);

/* Verification, for `warden audit verify` and tests.
 * Checks every line parses, every "seq" and "prev", every checkpoint's root and
 * signature against pubkey_path, that checkpoint sizes never shrink, and (if
 * checkpoint_path is given) that the log still holds that checkpoint's tree. On failure
 * returns -1 with the first bad record named ("audit.log:17: record 16: ..."). On
 * success fills *ret_records and *ret_checked (records covered by a valid checkpoint). */
int warden_audit_verify(const char *log_path, const char *pubkey_path,
			const char *checkpoint_path, uint64_t *ret_records, uint64_t *ret_checked,
			struct warden_error **err);

#endif
