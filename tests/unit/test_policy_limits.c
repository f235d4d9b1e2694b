/* test_policy_limits.c: the policy code against hostile or unusual input: files that are
 * not files, input that would cost too much to parse, repeated keys inside entries,
 * values that must render back exactly.
 *
 * Sections: loading files; untrusted input that costs too much; keys refused; rendering
 * that reads back.
 */
#include "unit.h"

#include <signal.h>
#include <sys/wait.h>
#include <time.h>

/* ---- loading files ----------------------------------------------------------------- */

/* warden_policy_load() opens the path before checking that it is a regular file, without
 * O_NONBLOCK: a FIFO blocks the caller until some writer opens it, which may be never. */
static void test_load_fifo_does_not_block(void **state)
{
	(void)state;
	char *dir = make_tmpdir();
	char *fifo = xasprintf("%s/policy.yaml", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	int fds[2];
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct warden_error *e = NULL;
		struct warden_policy *p = warden_policy_load(fifo, &e);
		const char *msg = p ? "loaded" : warden_error_text(e);
		_exit(write(fds[1], msg, strlen(msg)) > 0 ? 0 : 1);
	}
	close(fds[1]);
	int status = 0;
	bool done = false;
	for (int i = 0; i < 200 && !done; i++) {
		done = waitpid(pid, &status, WNOHANG) == pid;
		if (!done)
			nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
	}
	if (!done) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	char buf[512] = "";
	ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(fds[0]);
	unlink(fifo);
	rm_tree(dir);
	if (!done)
		fail_msg("warden_policy_load(%s) still blocked on a FIFO after 2 s", fifo);
	char *want = xasprintf("policy %s: not a regular file", fifo);
	assert_string_equal(buf, want);
	free(want);
	free(fifo);
}

/* ---- untrusted input that costs too much ------------------------------------------- */

/* libyaml's scanner does work proportional to the flow nesting depth for every token, so
 * a 1 MiB policy of nested brackets keeps yaml_parser_load() busy for many minutes
 * (50,000 levels: 9 s; 500,000: about 15 min) before the walker ever sees it. The schema
 * is at most five levels deep: deeper input should be refused while it is read. */
static void test_deep_nesting_refused_early(void **state)
{
	(void)state;
	size_t depth = 100;
	char *text = xcalloc(1, 2 * depth + 64);
	strcpy(text, "filesystem: {read_only: ");
	memset(text + strlen(text), '[', depth);
	memset(text + strlen(text), ']', depth);
	strcat(text, "}\n");
	char *got = parse_err_len(text, strlen(text));
	assert_non_null(got);
	/* today: "filesystem.read_only[0]: expected a string, found a list", after the whole
	 * document was built */
	if (!strstr(got, "nested deeper than"))
		fail_msg("deep nesting is not refused while reading: %s", got);
	free(got);
	free(text);
}

/* libyaml's loader compares every anchor with all those before it: a 1 MiB policy of
 * 96,000 anchors takes 39 s to load. The schema needs no anchors at all; more than a
 * list may hold should be refused while the input is read. */
static void test_many_anchors_refused_early(void **state)
{
	(void)state;
	struct strv parts = {0};
	size_t len = 0;
	strv_push(&parts, "description: [");
	for (int i = 0; i < 257; i++)
		strv_push_take(&parts, xasprintf("&a%d x, ", i));
	strv_push(&parts, "]\n");
	for (size_t i = 0; i < parts.n; i++)
		len += strlen(parts.v[i]);
	char *text = xcalloc(1, len + 1);
	for (size_t i = 0; i < parts.n; i++)
		strcat(text, parts.v[i]);
	char *got = parse_err_len(text, len);
	assert_non_null(got);
	/* today: "description: expected a string, found a list", after all were compared */
	if (!strstr(got, "policy: more than 256 anchors"))
		fail_msg("anchors are not bounded: %s", got);
	free(got);
	free(text);
	strv_clear(&parts);
}

/* Lists stop at 256 entries, but process.env takes any number, and every entry is checked
 * for duplicates against all before it: a 1 MiB policy of 95,000 variables takes 14 s to
 * parse. The mapping should have the same bound as the lists. */
static void test_env_entries_bounded(void **state)
{
	(void)state;
	struct strv lines = {0};
	size_t len = 0;
	strv_push(&lines, "process:\n  env:\n");
	for (int i = 0; i < 257; i++)
		strv_push_take(&lines, xasprintf("    V%d: x\n", i));
	for (size_t i = 0; i < lines.n; i++)
		len += strlen(lines.v[i]);
	char *text = xcalloc(1, len + 1);
	for (size_t i = 0; i < lines.n; i++)
		strcat(text, lines.v[i]);
	expect_parse_err(text, "t.yaml:3:5: process.env: more than 256 entries");
	free(text);
	strv_clear(&lines);
}

/* ---- keys accepted silently -------------------------------------------------------- */

/* "unknown and duplicate keys are errors, and nothing is accepted silently"; inside a
 * read_only or volumes entry the last duplicate wins without a word. */
static void test_duplicate_keys_in_entries(void **state)
{
	(void)state;
	expect_parse_err("filesystem:\n  read_only:\n    - {path: /a, path: /b}\n",
	                 "t.yaml:3:18: filesystem.read_only[0]: duplicate key \"path\"");
	expect_parse_err("filesystem:\n  read_only:\n    - {path: /a, optional: true, optional: "
	                 "false}\n",
	                 "t.yaml:3:34: filesystem.read_only[0]: duplicate key \"optional\"");
	expect_parse_err("filesystem:\n  volumes:\n    - {host: /a, path: /w, host: /b}\n",
	                 "t.yaml:3:28: filesystem.volumes[0]: duplicate key \"host\"");
	expect_parse_err("filesystem:\n  volumes:\n    - {host: /a, path: /w, mode: rw, mode: "
	                 "ro}\n",
	                 "t.yaml:3:38: filesystem.volumes[0]: duplicate key \"mode\"");
}

/* parse_milli() drops every decimal after the third: "1.2345" CPUs is read as 1.234, and
 * a timeout of "0.0004" is reported as "0 is ambiguous", a value the user never wrote. */
static void test_milli_extra_decimals(void **state)
{
	(void)state;
	uint64_t v = 7;
	const char *why = NULL;
	assert_int_equal(parse_milli("1.2345", &v, &why), -1);
	assert_int_equal(v, 7);
	assert_string_equal(why, "more than 3 decimals");
	/* zeros past the third decimal change nothing and stay accepted */
	assert_int_equal(parse_milli("1.5000", &v, &why), 0);
	assert_int_equal(v, 1500);
	expect_parse_err("limits: {cpus: 1.2345}\n",
	                 "t.yaml:1:16: limits.cpus: \"1.2345\": more than 3 decimals");
	expect_parse_err("limits: {timeout: 0.0004}\n",
	                 "t.yaml:1:19: limits.timeout: \"0.0004\": more than 3 decimals");
}

/* ---- rendering that does not read back --------------------------------------------- */

/* Volumes are rendered as "HOST:PATH:MODE", which splits at the first ':'; a path with a
 * ':' (allowed in the mapping form) comes back as another volume or not at all. */
static void test_render_volume_with_colon(void **state)
{
	(void)state;
	assert_round_trip(parse_ok("filesystem: {volumes: [{host: '/data:2024', path: /d}]}\n"));
	assert_round_trip(parse_ok("filesystem: {volumes: [{host: /d, path: '/in:x', mode: "
	                           "ro}]}\n"));
}

/* A policy file without `name:` is named by its path, which `name:` does not accept:
 * `warden policy show ./p.yaml > copy.yaml` writes a policy that does not load. */
static void test_render_file_policy(void **state)
{
	(void)state;
	char *dir = make_tmpdir();
	char *path = xasprintf("%s/p.yaml", dir);
	write_text(path, "limits: {pids: 64}\n");
	struct warden_error *e = NULL;
	struct warden_policy *p = warden_policy_load(path, &e);
	unlink(path);
	free(path);
	rm_tree(dir);
	assert_non_null(p);
	char *once = warden_policy_to_yaml(p);
	warden_policy_free(p);
	struct warden_policy *q = warden_policy_parse(once, strlen(once), "copy.yaml", &e);
	free(once);
	if (!q)
		fail_msg("`policy show` output does not load: %s", warden_error_text(e));
	assert_int_equal(q->pids, 64);
	warden_policy_free(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_load_fifo_does_not_block),
	    cmocka_unit_test(test_deep_nesting_refused_early),
	    cmocka_unit_test(test_many_anchors_refused_early),
	    cmocka_unit_test(test_env_entries_bounded),
	    cmocka_unit_test(test_duplicate_keys_in_entries),
	    cmocka_unit_test(test_milli_extra_decimals),
	    cmocka_unit_test(test_render_volume_with_colon),
	    cmocka_unit_test(test_render_file_policy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
