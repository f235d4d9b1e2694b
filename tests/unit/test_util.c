/* test_util.c: the number and path parsers of util.c, volume and user specs, env names,
 * string vectors and the error contract.
 *
 * Sections: parse_size; parse_uint; parse_milli; format_size; paths; strv; volume specs;
 * user specs; env names; errors.
 */
#include "unit.h"

/* ---- parse_size -------------------------------------------------------------------- */

static void size_is(const char *s, uint64_t want)
{
	uint64_t v = 12345;
	const char *why = NULL;
	if (parse_size(s, &v, &why) < 0)
		fail_msg("parse_size(\"%s\") failed: %s", s, why);
	assert_null(why);
	if (v != want)
		fail_msg("parse_size(\"%s\") = %ju, want %ju", s, (uintmax_t)v, (uintmax_t)want);
}

static void size_fails(const char *s, const char *want_why)
{
	uint64_t v = 12345;
	const char *why = NULL;
	if (parse_size(s, &v, &why) == 0)
		fail_msg("parse_size(\"%s\") succeeded (%ju)", s, (uintmax_t)v);
	assert_int_equal(v, 12345);
	assert_non_null(why);
	assert_string_equal(why, want_why);
}

static void test_parse_size_units(void **state)
{
	(void)state;
	size_is("0", 0);
	size_is("4096", 4096);
	size_is("7B", 7);
	static const char *const kilo[] = {"K", "KB", "KiB", "k"};
	static const char *const mega[] = {"M", "MB", "MiB", "m"};
	static const char *const giga[] = {"G", "GB", "GiB", "g"};
	static const char *const tera[] = {"T", "TB", "TiB", "t"};
	for (size_t i = 0; i < 4; i++) {
		char buf[16];
		snprintf(buf, sizeof(buf), "3%s", kilo[i]);
		size_is(buf, 3ULL << 10);
		snprintf(buf, sizeof(buf), "3%s", mega[i]);
		size_is(buf, 3ULL << 20);
		snprintf(buf, sizeof(buf), "3%s", giga[i]);
		size_is(buf, 3ULL << 30);
		snprintf(buf, sizeof(buf), "3%s", tera[i]);
		size_is(buf, 3ULL << 40);
	}
	size_is("512M", 512ULL << 20);
	size_is("0012K", 12ULL << 10);
	/* the largest values each unit can hold */
	size_is("16777215T", 16777215ULL << 40);
	size_is("17179869183G", 17179869183ULL << 30);
	size_is("1844674407370955160", 1844674407370955160ULL);
}

static void test_parse_size_errors(void **state)
{
	(void)state;
	size_fails("", "empty size");
	size_fails(NULL, "empty size");
	size_fails("M", "a size starts with a number (e.g. 512M)");
	size_fails("-1", "a size starts with a number (e.g. 512M)");
	size_fails(" 1", "a size starts with a number (e.g. 512M)");
	size_fails("+1", "a size starts with a number (e.g. 512M)");
	size_fails("unlimited", "a size starts with a number (e.g. 512M)");
	size_fails("12X", "unknown size unit (use K, M, G or T)");
	size_fails("1.5G", "unknown size unit (use K, M, G or T)");
	size_fails("1 G", "unknown size unit (use K, M, G or T)");
	size_fails("1G ", "unknown size unit (use K, M, G or T)");
	size_fails("1Gb", "unknown size unit (use K, M, G or T)");
	size_fails("1KiBB", "unknown size unit (use K, M, G or T)");
	size_fails("1P", "unknown size unit (use K, M, G or T)");
	size_fails("0x10", "unknown size unit (use K, M, G or T)");
	/* overflow, both in the digits and in the unit */
	size_fails("99999999999999999999", "size too large");
	size_fails("123456789012345678901234567890", "size too large");
	size_fails("16777216T", "size too large");
	size_fails("17179869184G", "size too large");
	size_fails("17592186044416M", "size too large");
	size_fails("18014398509481984K", "size too large");
}

/* ---- parse_uint -------------------------------------------------------------------- */

static void test_parse_uint(void **state)
{
	(void)state;
	uint64_t v = 7;
	const char *why = NULL;
	assert_int_equal(parse_uint("0", 10, &v, &why), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_uint("10", 10, &v, &why), 0);
	assert_int_equal(v, 10);
	assert_int_equal(parse_uint("007", 10, &v, &why), 0);
	assert_int_equal(v, 7);
	assert_int_equal(parse_uint("18446744073709551615", UINT64_MAX, &v, &why), 0);
	assert_true(v == UINT64_MAX);
	assert_null(why);

	static const struct {
		const char *s;
		uint64_t max;
		const char *why;
	} bad[] = {
	    {"", 10, "empty number"},
	    {NULL, 10, "empty number"},
	    {"11", 10, "number too large"},
	    {"18446744073709551616", UINT64_MAX, "number too large"},
	    {"99999999999999999999999", UINT64_MAX, "number too large"},
	    {"-1", 10, "not a whole number"},
	    {"+1", 10, "not a whole number"},
	    {" 1", 10, "not a whole number"},
	    {"1 ", 10, "not a whole number"},
	    {"1.0", 10, "not a whole number"},
	    {"1e3", 10000, "not a whole number"},
	    {"0x1", 10, "not a whole number"},
	    {"ten", 10, "not a whole number"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		v = 7;
		why = NULL;
		assert_int_equal(parse_uint(bad[i].s, bad[i].max, &v, &why), -1);
		assert_int_equal(v, 7);
		assert_non_null(why);
		assert_string_equal(why, bad[i].why);
	}
}

/* ---- parse_milli ------------------------------------------------------------------- */

static void test_parse_milli(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		uint64_t want;
	} good[] = {
	    {"0", 0},
	    {"1", 1000},
	    {"1.5", 1500},
	    {"0.5", 500},
	    {"0.05", 50},
	    {"0.001", 1},
	    {"2.25", 2250},
	    {"10.125", 10125},
	    {"007.010", 7010},
	    {"1.000", 1000},
	    {"1000000", 1000000000},
	    {"1000000.999", 1000000999},
	    {"123.4", 123400},
	};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		uint64_t v = 7;
		const char *why = NULL;
		if (parse_milli(good[i].s, &v, &why) < 0)
			fail_msg("parse_milli(\"%s\") failed: %s", good[i].s, why);
		if (v != good[i].want)
			fail_msg("parse_milli(\"%s\") = %ju, want %ju", good[i].s, (uintmax_t)v,
			         (uintmax_t)good[i].want);
	}

	static const struct {
		const char *s;
		const char *why;
	} bad[] = {
	    {"", "not a number"},
	    {NULL, "not a number"},
	    {".5", "not a number"},
	    {"1.", "not a number"},
	    {"-1", "not a number"},
	    {"+1", "not a number"},
	    {"1,5", "not a number"},
	    {"1.5.0", "not a number"},
	    {"1e3", "not a number"},
	    {"one", "not a number"},
	    {"1.5s", "not a number"},
	    {" 1", "not a number"},
	    {"1000001", "number too large"},
	    {"99999999999999999999999", "number too large"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		uint64_t v = 7;
		const char *why = NULL;
		assert_int_equal(parse_milli(bad[i].s, &v, &why), -1);
		assert_int_equal(v, 7);
		assert_non_null(why);
		assert_string_equal(why, bad[i].why);
	}
}

/* ---- format_size ------------------------------------------------------------------- */

static void test_format_size(void **state)
{
	(void)state;
	static const struct {
		uint64_t v;
		const char *want;
	} cases[] = {
	    {0, "0"},
	    {1, "1"},
	    {1000, "1000"},
	    {1023, "1023"},
	    {1024, "1K"},
	    {1536, "1536"},
	    {3ULL << 20, "3M"},
	    {512ULL << 20, "512M"},
	    {1ULL << 30, "1G"},
	    {1025ULL << 20, "1025M"},
	    {5ULL << 40, "5T"},
	    {1ULL << 50, "1024T"},
	    {UINT64_MAX, "18446744073709551615"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char buf[32];
		format_size(cases[i].v, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].want);
		/* what format_size writes, parse_size reads back */
		uint64_t back = 0;
		const char *why = NULL;
		if (cases[i].v != UINT64_MAX) {
			assert_int_equal(parse_size(buf, &back, &why), 0);
			assert_true(back == cases[i].v);
		}
	}
	/* a short buffer is truncated, never overrun */
	char small[4] = "xxx";
	format_size(123456, small, sizeof(small));
	assert_string_equal(small, "123");
}

/* ---- paths ------------------------------------------------------------------------- */

static void test_path_is_normal_absolute(void **state)
{
	(void)state;
	static const char *const good[] = {"/a",   "/usr", "/usr/lib",  "/a/b/c", "/.a",
	                                   "/a..", "/...", "/a/.b/..c", "/a b",   "/a:b"};
	static const char *const bad[] = {
	    NULL,  "",   "/",   "//",   "a",     "a/b",    "./a",     "/a/",   "/a//b",
	    "//a", "/.", "/..", "/a/.", "/a/..", "/a/./b", "/a/../b", "/../a", "/usr/",
	};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		if (!path_is_normal_absolute(good[i]))
			fail_msg("\"%s\" should be a normal absolute path", good[i]);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (path_is_normal_absolute(bad[i]))
			fail_msg("\"%s\" should not be a normal absolute path", bad[i]);
}

/* ---- strv -------------------------------------------------------------------------- */

static void test_strv(void **state)
{
	(void)state;
	struct strv s = {0};
	for (int i = 0; i < 20; i++)
		strv_push_take(&s, xasprintf("v%d", i));
	assert_int_equal(s.n, 20);
	assert_string_equal(s.v[0], "v0");
	assert_string_equal(s.v[19], "v19");
	assert_null(s.v[20]);
	char **copy = strv_copy(s.v);
	strv_clear(&s);
	assert_null(s.v);
	assert_int_equal(s.n, 0);
	assert_string_equal(copy[19], "v19");
	assert_null(copy[20]);
	strv_free(copy);
	copy = strv_copy(NULL);
	assert_non_null(copy);
	assert_null(copy[0]);
	strv_free(copy);
	strv_free(NULL);
}

/* ---- volume specs ------------------------------------------------------------------ */

static void test_mount_spec_good(void **state)
{
	(void)state;
	static const struct {
		const char *spec, *host, *path;
		bool rw;
	} cases[] = {
	    {"/src:/work", "/src", "/work", true},
	    {"/src:/work:rw", "/src", "/work", true},
	    {"/src:/work:ro", "/src", "/work", false},
	    {"relative/dir:/data/in:ro", "relative/dir", "/data/in", false},
	    {".:/work", ".", "/work", true},
	    {"/a b:/c d", "/a b", "/c d", true},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct warden_mount m = {0};
		struct warden_error *e = NULL;
		assert_int_equal(warden_mount_parse_spec(cases[i].spec, &m, &e), 0);
		assert_null(e);
		assert_string_equal(m.host, cases[i].host);
		assert_string_equal(m.path, cases[i].path);
		assert_int_equal(m.rw, cases[i].rw);
		assert_false(m.optional);
		free(m.host);
		free(m.path);
	}
}

static void test_mount_spec_errors(void **state)
{
	(void)state;
	static const struct {
		const char *spec, *want;
	} cases[] = {
	    {"/src", "\"/src\": expected HOST:PATH[:ro|rw]"},
	    {"", "\"\": expected HOST:PATH[:ro|rw]"},
	    {":/work", "\":/work\": empty host path"},
	    {"/src:", "\"/src:\": sandbox path \"\" must be absolute, normalized and not /"},
	    {"/src:work", "\"/src:work\": sandbox path \"work\" must be absolute, normalized and "
	                  "not /"},
	    {"/src:/", "\"/src:/\": sandbox path \"/\" must be absolute, normalized and not /"},
	    {"/src:/a/../b", "\"/src:/a/../b\": sandbox path \"/a/../b\" must be absolute, "
	                     "normalized and not /"},
	    {"/src:/a//b", "\"/src:/a//b\": sandbox path \"/a//b\" must be absolute, "
	                   "normalized and not /"},
	    {"/src:/work:", "\"/src:/work:\": mode \"\" is not ro or rw"},
	    {"/src:/work:RO", "\"/src:/work:RO\": mode \"RO\" is not ro or rw"},
	    {"/src:/work:ro:x", "\"/src:/work:ro:x\": mode \"ro:x\" is not ro or rw"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct warden_mount m = {0};
		struct warden_error *e = NULL;
		assert_int_equal(warden_mount_parse_spec(cases[i].spec, &m, &e), -1);
		assert_non_null(e);
		assert_int_equal(e->errnum, 0);
		assert_string_equal(warden_error_text(e), cases[i].want);
		assert_null(m.host);
		assert_null(m.path);
		warden_error_free(e);
	}
}

static void test_mounts_push_clear(void **state)
{
	(void)state;
	struct warden_mounts ms = {0};
	char host[] = "/h", path[] = "/p";
	struct warden_mount m = {.host = host, .path = path, .rw = true, .optional = true};
	warden_mounts_push(&ms, &m);
	warden_mounts_push(&ms, &m);
	host[1] = 'x';
	assert_int_equal(ms.n, 2);
	assert_string_equal(ms.v[1].host, "/h"); /* copied, not borrowed */
	assert_true(ms.v[1].rw);
	assert_true(ms.v[1].optional);
	warden_mounts_clear(&ms);
	assert_int_equal(ms.n, 0);
	assert_null(ms.v);
	warden_mounts_clear(&ms);
}

/* ---- user specs -------------------------------------------------------------------- */

static void test_user_parse(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		uid_t uid;
		gid_t gid;
	} good[] = {
	    {"agent", 1000, 1000},
	    {"root", 0, 0},
	    {"0", 0, 0},
	    {"1234", 1234, 1234},
	    {"1234:55", 1234, 55},
	    {"0:1000", 0, 1000},
	    {"65533", 65533, 65533},
	    {"65533:65533", 65533, 65533},
	};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		uid_t u = 77;
		gid_t g = 77;
		struct warden_error *e = NULL;
		assert_int_equal(warden_user_parse(good[i].s, &u, &g, &e), 0);
		assert_null(e);
		assert_int_equal(u, good[i].uid);
		assert_int_equal(g, good[i].gid);
	}

	static const struct {
		const char *s, *want;
	} bad[] = {
	    {"", "\"\": expected agent, root or UID[:GID] with ids 0-65533 (empty number)"},
	    {"nobody", "\"nobody\": expected agent, root or UID[:GID] with ids 0-65533 (not a "
	               "whole number)"},
	    {"Agent", "\"Agent\": expected agent, root or UID[:GID] with ids 0-65533 (not a "
	              "whole number)"},
	    {"65534", "\"65534\": expected agent, root or UID[:GID] with ids 0-65533 (number "
	              "too large)"},
	    {"-1", "\"-1\": expected agent, root or UID[:GID] with ids 0-65533 (not a whole "
	           "number)"},
	    {":5", "\":5\": expected agent, root or UID[:GID] with ids 0-65533 (empty number)"},
	    {"agent:5", "\"agent:5\": expected agent, root or UID[:GID] with ids 0-65533 (not a "
	                "whole number)"},
	    {"5:", "\"5:\": bad GID \"\" (empty number)"},
	    {"5:x", "\"5:x\": bad GID \"x\" (not a whole number)"},
	    {"5:65535", "\"5:65535\": bad GID \"65535\" (number too large)"},
	    {"5:6:7", "\"5:6:7\": bad GID \"6:7\" (not a whole number)"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		uid_t u = 77;
		gid_t g = 77;
		struct warden_error *e = NULL;
		assert_int_equal(warden_user_parse(bad[i].s, &u, &g, &e), -1);
		assert_non_null(e);
		assert_string_equal(warden_error_text(e), bad[i].want);
		assert_int_equal(u, 77);
		assert_int_equal(g, 77);
		warden_error_free(e);
	}
}

/* ---- env names --------------------------------------------------------------------- */

static void test_env_name_valid(void **state)
{
	(void)state;
	static const char *const good[] = {"A", "_", "PATH", "_x1", "a_B_9", "LC_ALL"};
	static const char *const bad[] = {NULL,  "",         "1A",  "A-B", "A=B",
	                                  "A B", "\xc3\x84", "A.B", "$A"};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		assert_true(warden_env_name_valid(good[i]));
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_false(warden_env_name_valid(bad[i]));
}

/* ---- errors ------------------------------------------------------------------------ */

static void test_error_set(void **state)
{
	(void)state;
	struct warden_error *e = NULL;
	assert_int_equal(warden_error_set(&e, ENOENT, "opening %s", "x"), -1);
	assert_non_null(e);
	assert_int_equal(e->errnum, ENOENT);
	assert_string_equal(e->msg, "opening x");
	assert_string_equal(warden_error_text(e), "opening x: No such file or directory");
	/* a second error never replaces the first */
	struct warden_error *first = e;
	assert_int_equal(warden_error_set(&e, EPERM, "later"), -1);
	assert_ptr_equal(e, first);
	assert_string_equal(e->msg, "opening x");
	warden_error_free(e);

	/* negative errno values are stored positive; 0 means the message is complete */
	e = NULL;
	warden_error_set(&e, -EACCES, "denied");
	assert_int_equal(e->errnum, EACCES);
	assert_string_equal(warden_error_text(e), "denied: Permission denied");
	warden_error_free(e);
	e = NULL;
	warden_error_set(&e, 0, "just %d words", 3);
	assert_string_equal(warden_error_text(e), "just 3 words");
	warden_error_free(e);

	/* no place to put it: still -1, nothing leaks */
	assert_int_equal(warden_error_set(NULL, EIO, "nowhere"), -1);
	assert_string_equal(warden_error_text(NULL), "unknown error");
	warden_error_free(NULL);
}

static void test_error_wrap(void **state)
{
	(void)state;
	struct warden_error *e = NULL;
	assert_int_equal(warden_error_wrap(&e, "ctx"), -1);
	assert_null(e);
	assert_int_equal(warden_error_wrap(NULL, "ctx"), -1);

	warden_error_set(&e, ENOENT, "opening %s", "x");
	/* the cached text is rebuilt after a wrap */
	assert_string_equal(warden_error_text(e), "opening x: No such file or directory");
	assert_int_equal(warden_error_wrap(&e, "step %d", 2), -1);
	assert_string_equal(e->msg, "step 2: opening x");
	assert_string_equal(warden_error_text(e), "step 2: opening x: No such file or directory");
	warden_error_wrap(&e, "policy.yaml:12:3");
	assert_string_equal(warden_error_text(e),
	                    "policy.yaml:12:3: step 2: opening x: No such file or directory");
	assert_int_equal(e->errnum, ENOENT);
	warden_error_free(e);
}

static void test_error_cleanup(void **state)
{
	(void)state;
	{
		_cleanup_error_ struct warden_error *e = NULL;
		warden_error_set(&e, 0, "freed at the end of the block");
	}
	{
		_cleanup_error_ struct warden_error *none = NULL;
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_size_units),
	    cmocka_unit_test(test_parse_size_errors),
	    cmocka_unit_test(test_parse_uint),
	    cmocka_unit_test(test_parse_milli),
	    cmocka_unit_test(test_format_size),
	    cmocka_unit_test(test_path_is_normal_absolute),
	    cmocka_unit_test(test_strv),
	    cmocka_unit_test(test_mount_spec_good),
	    cmocka_unit_test(test_mount_spec_errors),
	    cmocka_unit_test(test_mounts_push_clear),
	    cmocka_unit_test(test_user_parse),
	    cmocka_unit_test(test_env_name_valid),
	    cmocka_unit_test(test_error_set),
	    cmocka_unit_test(test_error_wrap),
	    cmocka_unit_test(test_error_cleanup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
