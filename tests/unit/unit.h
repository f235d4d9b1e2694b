/* unit.h: helpers shared by the cmocka unit tests.
 *
 * Sections: includes (cmocka needs its own set first); policy parsing with expected
 * success or an exact error message; temporary directories.
 */
#ifndef WARDEN_TEST_UNIT_H
#define WARDEN_TEST_UNIT_H

#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/lib/error.h"
#include "../../src/lib/policy.h"
#include "../../src/lib/util.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sys/stat.h>

/* Parse YAML text as "t.yaml"; fails the test with the library's message on error. */
static inline struct warden_policy *parse_ok(const char *text)
{
	struct warden_error *e = NULL;
	struct warden_policy *p = warden_policy_parse(text, strlen(text), "t.yaml", &e);
	if (!p)
		fail_msg("policy did not parse: %s\n---\n%s", warden_error_text(e), text);
	assert_null(e);
	return p;
}

/* Parse YAML text of a given length as "t.yaml" and return the error text (owned by the
 * caller), or NULL when it parsed. */
static inline char *parse_err_len(const char *text, size_t len)
{
	struct warden_error *e = NULL;
	struct warden_policy *p = warden_policy_parse(text, len, "t.yaml", &e);
	if (p) {
		assert_null(e);
		warden_policy_free(p);
		return NULL;
	}
	assert_non_null(e);
	char *msg = xstrdup(warden_error_text(e));
	warden_error_free(e);
	return msg;
}

/* Parse YAML text as "t.yaml" and expect exactly this error. */
static inline void expect_parse_err(const char *text, const char *want)
{
	char *got = parse_err_len(text, strlen(text));
	if (!got)
		fail_msg("policy parsed, expected the error: %s\n---\n%s", want, text);
	if (strcmp(got, want) != 0) {
		print_error("policy:\n%s\n", text);
		assert_string_equal(got, want);
	}
	free(got);
}

/* A fresh directory under $TMPDIR (or /tmp), as a canonical path; removed with
 * rm_tree(). */
static inline char *make_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *tmpl = xasprintf("%s/warden-unit.XXXXXX", base && *base ? base : "/tmp");
	assert_non_null(mkdtemp(tmpl));
	char *real = realpath(tmpl, NULL);
	assert_non_null(real);
	free(tmpl);
	return real;
}

static inline int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static inline void rm_tree(char *dir)
{
	if (!dir)
		return;
	assert_int_equal(nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
	free(dir);
}

/* Create a file (parents must exist) with the given contents. */
static inline void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* Load a preset or file; fails the test with the library's message on error. */
static inline struct warden_policy *load_ok(const char *name)
{
	struct warden_error *e = NULL;
	struct warden_policy *p = warden_policy_load(name, &e);
	if (!p)
		fail_msg("%s: %s", name, warden_error_text(e));
	return p;
}

/* Render p, parse the rendering back and render again: both renderings are equal.
 * Frees p. */
static inline void assert_round_trip(struct warden_policy *p)
{
	char *once = warden_policy_to_yaml(p);
	struct warden_error *e = NULL;
	struct warden_policy *q = warden_policy_parse(once, strlen(once), "rendered", &e);
	if (!q)
		fail_msg("rendered policy does not parse: %s\n---\n%s", warden_error_text(e), once);
	char *twice = warden_policy_to_yaml(q);
	assert_string_equal(twice, once);
	free(once);
	free(twice);
	warden_policy_free(q);
	warden_policy_free(p);
}

/* The values the strict preset sets over default's. */
static inline void assert_strict_values(const struct warden_policy *p)
{
	assert_true(p->memory == 256ULL << 20);
	assert_int_equal(p->pids, 128);
	assert_int_equal(p->cpus_milli, 500);
	assert_int_equal(p->nofile, 1024);
	assert_true(p->tmp_size == 64ULL << 20);
	assert_int_equal(p->landlock, WARDEN_LANDLOCK_REQUIRED);
	assert_false(p->allow_ptrace);
}

/* Open descriptors of this process. */
static inline int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

#endif
