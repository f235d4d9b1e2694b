/* audit_bench.c: appends to a fresh audit log as fast as the library allows, the way
 * `warden run` and the daemon do (a JSON object per event, committed in groups), and
 * prints the rates as JSON.
 *
 * usage: audit_bench DIR RECORDS BATCH PER_RECORD
 *   batched     RECORDS records, committed every BATCH (one write + one fdatasync each)
 *   per_record  PER_RECORD records, one commit each (a write + an fdatasync per record)
 *   verify      `warden audit verify` of the batched log
 * Checkpoints every 1000 records (the default). The logs are DIR/batched.log and
 * DIR/per-record.log, removed first; the key is DIR/bench.key (made on the first run,
 * outside the timings).
 */
#define _GNU_SOURCE
#include "src/lib/audit/audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, struct warden_error *e)
{
	fprintf(stderr, "audit_bench: %s: %s\n", what, warden_error_text(e));
	exit(1);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* What a sandbox start looks like in the log. */
static json_t *record(long i)
{
	char id[32];
	snprintf(id, sizeof(id), "sb-%08lx", i);
	return json_pack("{s:s, s:s, s:[sss], s:i, s:s, s:s, s:I}", "kind", "sandbox.exec",
	                 "sandbox", id, "argv", "/usr/bin/python3", "-c", "print(1)", "uid", 1000,
	                 "decision", "allow", "policy", "default", "pid", (json_int_t)(4096 + i));
}

static struct warden_audit *open_fresh(const char *dir, const char *name, const char *key)
{
	char *path = xasprintf("%s/%s", dir, name);
	char *state = xasprintf("%s.state", path), *cp = xasprintf("%s.checkpoint", path);
	unlink(path);
	unlink(state);
	unlink(cp);
	struct warden_audit_opts o = {.path = path, .key_path = key, .origin = "bench/audit"};
	struct warden_error *e = NULL;
	struct warden_audit *a = warden_audit_open(&o, NULL, &e);
	if (!a)
		die(path, e);
	free(path);
	free(state);
	free(cp);
	return a;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: audit_bench DIR RECORDS BATCH PER_RECORD\n");
		return 2;
	}
	const char *dir = argv[1];
	long n = atol(argv[2]), batch = atol(argv[3]), per = atol(argv[4]);
	if (n <= 0 || batch <= 0 || per <= 0) {
		fprintf(stderr, "audit_bench: RECORDS, BATCH and PER_RECORD must be positive\n");
		return 2;
	}
	char *key = xasprintf("%s/bench.key", dir);
	struct warden_error *e = NULL;

	/* batched */
	struct warden_audit *a = open_fresh(dir, "batched.log", key);
	double t0 = now();
	long commits = 0;
	for (long i = 0; i < n; i++) {
		json_t *r = record(i);
		if (warden_audit_append(a, r, &e) < 0)
			die("append", e);
		json_decref(r);
		if ((i + 1) % batch == 0 || i + 1 == n) {
			if (warden_audit_commit(a, &e) < 0)
				die("commit", e);
			commits++;
		}
	}
	double batched_s = now() - t0;
	warden_audit_close(a);

	/* one commit per record */
	a = open_fresh(dir, "per-record.log", key);
	double *lat = xcalloc((size_t)per, sizeof(double));
	t0 = now();
	for (long i = 0; i < per; i++) {
		double c0 = now();
		json_t *r = record(i);
		if (warden_audit_append(a, r, &e) < 0 || warden_audit_commit(a, &e) < 0)
			die("commit", e);
		json_decref(r);
		lat[i] = (now() - c0) * 1000.0;
	}
	double per_s = now() - t0;
	warden_audit_close(a);
	qsort(lat, (size_t)per, sizeof(double), cmp_double);

	/* verification of the batched log */
	char *log = xasprintf("%s/batched.log", dir), *pub = xasprintf("%s.pub", key);
	uint64_t records = 0, checked = 0;
	t0 = now();
	if (warden_audit_verify(log, pub, NULL, &records, &checked, &e) != 0)
		die("verify", e);
	double verify_s = now() - t0;
	FILE *f = fopen(log, "r");
	long bytes = 0;
	if (f && fseek(f, 0, SEEK_END) == 0)
		bytes = ftell(f);
	if (f)
		fclose(f);

	printf("{\"batched\": {\"records\": %ld, \"batch\": %ld, \"commits\": %ld, "
	       "\"seconds\": %.6f, \"records_per_s\": %.1f, \"log_records\": %llu, "
	       "\"log_bytes\": %ld},\n",
	       n, batch, commits, batched_s, (double)n / batched_s, (unsigned long long)records,
	       bytes);
	printf(" \"per_record\": {\"records\": %ld, \"seconds\": %.6f, \"records_per_s\": %.1f, "
	       "\"commit_ms_median\": %.4f, \"commit_ms_p90\": %.4f, \"commit_ms_max\": %.4f},\n",
	       per, per_s, (double)per / per_s, lat[per / 2], lat[per * 9 / 10], lat[per - 1]);
	printf(" \"verify\": {\"records\": %llu, \"checked\": %llu, \"seconds\": %.6f, "
	       "\"records_per_s\": %.1f}}\n",
	       (unsigned long long)records, (unsigned long long)checked, verify_s,
	       (double)records / verify_s);
	free(lat);
	free(log);
	free(pub);
	free(key);
	return 0;
}
