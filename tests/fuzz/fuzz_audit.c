/* fuzz_audit.c: `warden audit verify` and proof checking read files anyone with write
 * access to the log may have shaped (that is what they exist to catch).
 *
 * Input: a mode byte, then
 *   0: the bytes of a log, verified against the target's key: any result but a crash;
 *   1: the bytes of a proof, checked against the key: likewise;
 *   2: a script that builds an intact log (records from the input, a checkpoint every few),
 *      which must verify; then one byte of a checkpointed record is changed (position and
 *      value from the input), which must be reported as tampering.
 */
#define _GNU_SOURCE
#include "src/lib/audit/audit.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static char *dir, *key, *pub, *log_path, *file;

static void cleanup(void)
{
	char *extra[] = {key, pub, log_path, file, NULL};
	for (char **p = extra; *p; p++)
		unlink(*p);
	char *more[] = {".checkpoint", ".state", ".lock"};
	for (size_t i = 0; i < 3; i++) {
		char *p = xasprintf("%s%s", log_path, more[i]);
		unlink(p);
		free(p);
	}
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	struct warden_error *e = NULL;
	/* Every commit syncs: on a memory file system that costs nothing. */
	const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
	dir = xasprintf("%s/warden-fuzz-audit.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		abort();
	key = xasprintf("%s/key", dir);
	pub = xasprintf("%s/key.pub", dir);
	log_path = xasprintf("%s/audit.log", dir);
	file = xasprintf("%s/input", dir);
	if (warden_audit_keygen(key, &e) < 0)
		abort();
	atexit(cleanup);
	return 0;
}

static void write_file(const char *path, const uint8_t *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
		abort();
	close(fd);
}

static void reset_log(void)
{
	unlink(log_path);
	char *more[] = {".checkpoint", ".state", ".lock"};
	for (size_t i = 0; i < 3; i++) {
		char *p = xasprintf("%s%s", log_path, more[i]);
		unlink(p);
		free(p);
	}
}

static void check_result(int r, struct warden_error *e)
{
	/* Every outcome must be one of the documented ones, with a message when not 0. */
	if (r != 0 && r != -1 && r != WARDEN_AUDIT_TAMPERED)
		abort();
	if (r != 0 && (!e || !e->msg || !*e->msg))
		abort();
	warden_error_free(e);
}

/* Mode 2. Input: records (each a length byte and that many bytes of text for a field),
 * a checkpoint after every 4th; the last 3 bytes: where (two bytes) and what to change. */
static void roundtrip(const uint8_t *data, size_t size)
{
	struct warden_error *e = NULL;
	struct warden_audit_opts o = {
	    .path = log_path, .key_path = key, .origin = "fuzz", .checkpoint_every = 4};
	if (size < 4)
		return;
	const uint8_t *tail = data + size - 3;
	size -= 3;
	reset_log();
	struct warden_audit *a = warden_audit_open(&o, NULL, &e);
	if (!a)
		abort();
	size_t n = 0;
	for (size_t i = 0; i < size && n < 64; n++) {
		size_t len = data[i++];
		if (len > size - i)
			len = size - i;
		json_t *rec = json_pack("{s:s, s:s%}", "kind", "fuzz.record", "text",
		                        (const char *)data + i, len);
		i += len;
		if (!rec) /* not UTF-8: jansson refuses it, as the log would */
			continue;
		if (warden_audit_append(a, rec, &e) < 0)
			abort();
		json_decref(rec);
	}
	uint64_t covered = 0;
	if (warden_audit_checkpoint(a, &covered, &e) < 0)
		abort();
	warden_audit_close(a);

	uint64_t records = 0, checked = 0;
	if (warden_audit_verify(log_path, pub, NULL, &records, &checked, &e) != 0) {
		fprintf(stderr, "an untouched log does not verify: %s\n", e ? e->msg : "?");
		abort();
	}
	check_result(0, e);
	e = NULL;

	/* Change one byte of a record the final checkpoint covers: every line before the
	 * checkpoint's own (whose fields beside the signed note are, like any record after the
	 * latest checkpoint, only chained: docs/audit.md). */
	int fd = open(log_path, O_RDWR | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size < 2)
		abort();
	char *text = xmalloc((size_t)st.st_size);
	if (pread(fd, text, (size_t)st.st_size, 0) != st.st_size)
		abort();
	size_t last = (size_t)st.st_size - 1; /* the final '\n' */
	while (last > 0 && text[last - 1] != '\n')
		last--;
	free(text);
	if (last == 0) { /* no record before the checkpoint */
		close(fd);
		return;
	}
	off_t at = (off_t)(((size_t)tail[0] << 8 | tail[1]) % last);
	uint8_t old, new = tail[2];
	if (pread(fd, &old, 1, at) != 1)
		abort();
	if (new == old)
		new ^= 0x20;
	if (pwrite(fd, &new, 1, at) != 1)
		abort();
	close(fd);
	int r = warden_audit_verify(log_path, pub, NULL, &records, &checked, &e);
	if (r != WARDEN_AUDIT_TAMPERED) {
		fprintf(stderr, "byte %lld changed from 0x%02x to 0x%02x: verify returned %d\n",
		        (long long)at, old, new, r);

		abort();
	}
	check_result(r, e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct warden_error *e = NULL;
	uint64_t a = 0, b = 0;
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		write_file(file, data + 1, size - 1);
		check_result(warden_audit_verify(file, pub, NULL, &a, &b, &e), e);
		break;
	case 1:
		write_file(file, data + 1, size - 1);
		check_result(warden_audit_verify_proof(file, pub, &a, &b, &e), e);
		break;
	default:
		roundtrip(data + 1, size - 1);
		break;
	}
	return 0;
}
