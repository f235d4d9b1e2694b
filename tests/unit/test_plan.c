/* test_plan.c: warden_plan_compile().
 *
 * Sections: identity and seccomp; filesystem.read_only entries; volumes; rootfs;
 * generated /etc files; the environment; warnings (network, Landlock, rlimits).
 * Host paths live in a temporary directory made by each test.
 */
#include "unit.h"
#include "../../src/lib/plan.h"
#include "../../src/lib/ns/ns.h"

#include <sys/resource.h>
#include <sys/wait.h>

static struct warden_plan *compile_ok(struct warden_policy *p, char **env)
{
	struct warden_error *e = NULL;
	struct warden_plan *plan = warden_plan_compile(p, env, &e);
	if (!plan)
		fail_msg("plan did not compile: %s", warden_error_text(e));
	assert_null(e);
	return plan;
}

static void expect_compile_err(struct warden_policy *p, const char *want)
{
	struct warden_error *e = NULL;
	struct warden_plan *plan = warden_plan_compile(p, NULL, &e);
	if (plan)
		fail_msg("plan compiled, expected the error: %s", want);
	assert_non_null(e);
	assert_string_equal(warden_error_text(e), want);
	warden_error_free(e);
}

/* A policy written as a format string: the temporary directory goes in as %1$s. */
static struct warden_policy *parse_fmt(const char *fmt, const char *dir)
{
	char *text = xasprintf(fmt, dir);
	struct warden_policy *p = parse_ok(text);
	free(text);
	return p;
}

static bool has_warning(const struct warden_plan *plan, const char *want)
{
	for (size_t i = 0; i < plan->warnings.n; i++)
		if (streq(plan->warnings.v[i], want))
			return true;
	return false;
}

static char *path_in(const char *dir, const char *name)
{
	return xasprintf("%s/%s", dir, name);
}

static void make_dir(const char *dir, const char *name)
{
	char *p = path_in(dir, name);
	assert_int_equal(mkdir(p, 0755), 0);
	free(p);
}

static void make_file(const char *dir, const char *name, const char *text)
{
	char *p = path_in(dir, name);
	write_text(p, text);
	free(p);
}

static void make_symlink(const char *dir, const char *name, const char *target)
{
	char *p = path_in(dir, name);
	assert_int_equal(symlink(target, p), 0);
	free(p);
}

static void make_fifo(const char *dir, const char *name)
{
	char *p = path_in(dir, name);
	assert_int_equal(mkfifo(p, 0600), 0);
	free(p);
}

/* ---- identity and seccomp ---------------------------------------------------------- */

static void test_identity_and_seccomp(void **state)
{
	(void)state;
	struct warden_plan *plan = compile_ok(warden_policy_new(), NULL);
	assert_int_equal(plan->rootless, geteuid() != 0);
	assert_int_equal(plan->caller_uid, getuid());
	assert_int_equal(plan->caller_gid, getgid());
	assert_true(plan->host_base == WARDEN_HOST_ID_BASE);
	assert_int_equal(plan->host_count, WARDEN_HOST_ID_COUNT);
	assert_string_equal(plan->home, "/home/agent");
	assert_string_equal(plan->workdir, "/home/agent");
	assert_string_equal(plan->hostname, "warden");
	assert_string_equal(plan->hosts, "127.0.0.1\tlocalhost\n"
	                                 "::1\tlocalhost ip6-localhost ip6-loopback\n"
	                                 "127.0.1.1\twarden\n");
	/* the seccomp program is the preset's */
	struct sock_filter *prog;
	unsigned short len;
	struct warden_error *e = NULL;
	assert_int_equal(ns_seccomp_compile(plan->policy, &prog, &len, &e), 0);
	assert_int_equal(plan->bpf_len, len);
	assert_memory_equal(plan->bpf, prog, len * sizeof(*prog));
	free(prog);
	warden_plan_free(plan);

	plan = compile_ok(parse_ok("process: {user: root, workdir: /srv/app}\n"), NULL);
	assert_string_equal(plan->home, "/root");
	assert_string_equal(plan->workdir, "/srv/app");
	warden_plan_free(plan);

	/* policy errors found only when compiling name their key */
	expect_compile_err(parse_ok("security: {seccomp: {deny: [uname], allow: [uname]}}\n"),
	                   "security.seccomp: \"uname\" is both denied and allowed");
	warden_plan_free(NULL);
}

/* ---- read_only --------------------------------------------------------------------- */

static void test_read_only(void **state)
{
	(void)state;
	char *dir = make_tmpdir();
	make_dir(dir, "d");
	make_file(dir, "f", "x");
	make_symlink(dir, "l", "d");
	make_symlink(dir, "dangling", "nowhere");
	make_fifo(dir, "fifo");

	struct warden_plan *plan =
	    compile_ok(parse_fmt("filesystem:\n"
	                         "  read_only:\n"
	                         "    - %1$s/d\n"
	                         "    - {path: %1$s/missing, optional: true}\n"
	                         "    - %1$s/f\n"
	                         "    - %1$s/l\n"
	                         "    - {path: %1$s/dangling, optional: true}\n",
	                         dir),
	               NULL);
	assert_int_equal(plan->n_binds, 4);
	static const struct {
		const char *name, *symlink;
		bool is_dir;
	} want[] = {{"d", NULL, true},
	            {"f", NULL, false},
	            {"l", "d", false},
	            {"dangling", "nowhere", false}};
	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		const struct warden_bind *b = &plan->binds[i];
		char *p = path_in(dir, want[i].name);
		assert_string_equal(b->host, p);
		assert_string_equal(b->path, p);
		assert_int_equal(b->is_dir, want[i].is_dir);
		if (want[i].symlink)
			assert_string_equal(b->symlink, want[i].symlink);
		else
			assert_null(b->symlink);
		assert_false(b->rw);
		assert_false(b->volume);
		free(p);
	}
	warden_plan_free(plan);

	/* a required path that is missing names the key */
	char *want_err = xasprintf("filesystem.read_only: %s/missing: No such file or "
	                           "directory",
	                           dir);
	expect_compile_err(parse_fmt("filesystem: {read_only: [%1$s/d, %1$s/missing]}\n", dir),
	                   want_err);
	free(want_err);

	/* neither a directory nor a file, optional or not */
	want_err = xasprintf("filesystem.read_only: %s/fifo: only directories and regular files "
	                     "can be made visible (devices go through devices:)",
	                     dir);
	expect_compile_err(parse_fmt("filesystem: {read_only: [%s/fifo]}\n", dir), want_err);
	expect_compile_err(
	    parse_fmt("filesystem: {read_only: [{path: %s/fifo, optional: true}]}\n", dir),
	    want_err);
	free(want_err);

	/* the defaults compile on this host: /usr and /etc exist */
	plan = compile_ok(warden_policy_new(), NULL);
	assert_true(plan->n_binds >= 2);
	assert_string_equal(plan->binds[0].path, "/usr");
	assert_string_equal(plan->binds[plan->n_binds - 1].path, "/etc");
	for (size_t i = 0; i < plan->n_binds; i++)
		assert_false(plan->binds[i].volume);
	warden_plan_free(plan);
	rm_tree(dir);
}

/* ---- volumes ----------------------------------------------------------------------- */

static void test_volumes(void **state)
{
	(void)state;
	char *dir = make_tmpdir();
	make_dir(dir, "src");
	make_dir(dir, "src2");
	make_file(dir, "file.txt", "x");
	make_symlink(dir, "link", "src");
	make_fifo(dir, "fifo");

	struct warden_plan *plan = compile_ok(parse_fmt("filesystem:\n"
	                                                "  read_only: []\n"
	                                                "  volumes:\n"
	                                                "    - %1$s/src:/work/sub\n"
	                                                "    - %1$s/file.txt:/etc/x:ro\n"
	                                                "    - %1$s/src2:/work\n"
	                                                "    - %1$s/link:/a/b/c:ro\n",
	                                                dir),
	                                      NULL);
	/* parents before children: by depth, then by name */
	static const struct {
		const char *host, *path;
		bool rw, is_dir;
	} want[] = {
	    {"src2", "/work", true, true},
	    {"file.txt", "/etc/x", false, false},
	    {"src", "/work/sub", true, true},
	    {"src", "/a/b/c", false, true},
	};
	assert_int_equal(plan->n_binds, ARRAY_SIZE(want));
	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		const struct warden_bind *b = &plan->binds[i];
		char *host = path_in(dir, want[i].host);
		assert_string_equal(b->host, host);
		assert_string_equal(b->path, want[i].path);
		assert_int_equal(b->rw, want[i].rw);
		assert_int_equal(b->is_dir, want[i].is_dir);
		assert_true(b->volume);
		assert_null(b->symlink);
		free(host);
	}
	/* the policy itself keeps the order it was written in */
	assert_string_equal(plan->policy->volumes.v[0].path, "/work/sub");
	warden_plan_free(plan);

	/* a relative host path (from the command line) is resolved against the cwd */
	struct warden_policy *p = parse_ok("filesystem: {read_only: []}\n");
	struct warden_mount m = {0};
	struct warden_error *e = NULL;
	assert_int_equal(warden_mount_parse_spec("src:/in:ro", &m, &e), 0);
	warden_mounts_push(&p->volumes, &m);
	free(m.host);
	free(m.path);
	char cwd[PATH_MAX];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(dir), 0);
	plan = warden_plan_compile(p, NULL, &e);
	assert_int_equal(chdir(cwd), 0);
	if (!plan)
		fail_msg("%s", warden_error_text(e));
	assert_int_equal(plan->n_binds, 1);
	char *src = path_in(dir, "src");
	assert_string_equal(plan->binds[0].host, src);
	assert_string_equal(plan->binds[0].path, "/in");
	assert_false(plan->binds[0].rw);
	free(src);
	warden_plan_free(plan);

	/* errors */
	char *want_err = xasprintf("volume %s/nope: no such directory", dir);
	expect_compile_err(parse_fmt("filesystem: {volumes: [%s/nope:/work]}\n", dir), want_err);
	free(want_err);
	want_err = xasprintf("volume %s/src/nope: no such directory", dir);
	expect_compile_err(
	    parse_fmt("filesystem: {volumes: [{host: %s/src/nope, path: /w}]}\n", dir), want_err);
	free(want_err);
	want_err = xasprintf("volume %s/file.txt/x: Not a directory", dir);
	expect_compile_err(parse_fmt("filesystem: {volumes: [%s/file.txt/x:/w]}\n", dir), want_err);
	free(want_err);
	expect_compile_err(parse_fmt("filesystem:\n"
	                             "  volumes:\n"
	                             "    - %1$s/src:/work\n"
	                             "    - %1$s/src:/other\n"
	                             "    - %1$s/src2:/work:ro\n",
	                             dir),
	                   "volume /work: two volumes at the same path");
	want_err = xasprintf("volume %s/fifo: not a directory or regular file", dir);
	expect_compile_err(parse_fmt("filesystem: {volumes: [%s/fifo:/work]}\n", dir), want_err);
	free(want_err);

	/* every volume needs a descriptor in the start message: at most 62 */
	for (int n = 62; n <= 63; n++) {
		p = parse_ok("filesystem: {read_only: []}\n");
		for (int i = 0; i < n; i++) {
			char *host = path_in(dir, "src");
			char *path = xasprintf("/v%d", i);
			struct warden_mount v = {.host = host, .path = path, .rw = true};
			warden_mounts_push(&p->volumes, &v);
			free(host);
			free(path);
		}
		if (n == 62) {
			plan = compile_ok(p, NULL);
			assert_int_equal(plan->n_binds, 62);
			warden_plan_free(plan);
		} else {
			expect_compile_err(p, "at most 62 volumes");
		}
	}
	rm_tree(dir);
}

/* ---- rootfs ------------------------------------------------------------------------ */

static void test_rootfs(void **state)
{
	(void)state;
	char *dir = make_tmpdir();
	make_dir(dir, "img");
	make_dir(dir, "img/etc");
	make_file(dir, "img/etc/passwd",
	          "root:x:0:0:root:/root:/bin/bash\n"
	          "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
	          "agent:x:2000:2000::/home/agent:/bin/bash\n"
	          "clash:x:1000:1000::/:/bin/sh\n"
	          "user:x:1001:1001::/home/user:/bin/sh\n");
	/* the image's own files are read inside the image: an absolute link stays in it */
	make_file(dir, "img/inner-group", "root:x:0:\nusers:x:100:\nagent:x:2000:\n");
	make_symlink(dir, "img/etc/group", "/../../inner-group");
	make_file(dir, "plain", "x");

	struct warden_plan *plan =
	    compile_ok(parse_fmt("filesystem:\n"
	                         "  rootfs: %1$s/img\n"
	                         "  read_only: [%1$s/not-used-with-a-rootfs]\n",
	                         dir),
	               NULL);
	assert_int_equal(plan->n_binds, 0);
	assert_string_equal(plan->passwd, "root:x:0:0:root:/root:/bin/bash\n"
	                                  "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
	                                  "user:x:1001:1001::/home/user:/bin/sh\n"
	                                  "agent:x:1000:1000:agent:/home/agent:/bin/sh\n");
	assert_string_equal(plan->group, "root:x:0:\nusers:x:100:\nagent:x:1000:\n");
	warden_plan_free(plan);

	/* no passwd in the image: only the sandbox user */
	char *img = path_in(dir, "img");
	char *pw = path_in(dir, "img/etc/passwd");
	assert_int_equal(unlink(pw), 0);
	plan = compile_ok(parse_fmt("filesystem: {rootfs: %s/img}\nprocess: {user: root}\n", dir),
	                  NULL);
	assert_string_equal(plan->passwd, "root:x:0:0:root:/root:/bin/sh\n");
	assert_string_equal(plan->group, "users:x:100:\nagent:x:2000:\nroot:x:0:\n");
	warden_plan_free(plan);
	free(pw);
	free(img);

	char *want_err = xasprintf("rootfs %s/none: No such file or directory", dir);
	expect_compile_err(parse_fmt("filesystem: {rootfs: %s/none}\n", dir), want_err);
	free(want_err);
	want_err = xasprintf("rootfs %s/plain: not a directory", dir);
	expect_compile_err(parse_fmt("filesystem: {rootfs: %s/plain}\n", dir), want_err);
	free(want_err);
	rm_tree(dir);
}

/* ---- generated /etc files ---------------------------------------------------------- */

static void test_passwd_group(void **state)
{
	(void)state;
	struct warden_plan *plan = compile_ok(warden_policy_new(), NULL);
	assert_string_equal(plan->passwd,
	                    "root:x:0:0:root:/root:/bin/sh\n"
	                    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
	                    "agent:x:1000:1000:agent:/home/agent:/bin/sh\n");
	assert_string_equal(plan->group, "root:x:0:\ntty:x:5:\nnogroup:x:65534:\nagent:x:1000:\n");
	warden_plan_free(plan);

	/* uid 0: the user is root, once */
	plan = compile_ok(parse_ok("process: {user: root}\n"), NULL);
	assert_string_equal(plan->passwd,
	                    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
	                    "root:x:0:0:root:/root:/bin/sh\n");
	assert_string_equal(plan->group, "tty:x:5:\nnogroup:x:65534:\nroot:x:0:\n");
	warden_plan_free(plan);

	/* an id taken by a built-in entry replaces it */
	plan = compile_ok(parse_ok("process: {user: '42:5'}\n"), NULL);
	assert_string_equal(plan->passwd,
	                    "root:x:0:0:root:/root:/bin/sh\n"
	                    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
	                    "agent:x:42:5:agent:/home/agent:/bin/sh\n");
	assert_string_equal(plan->group, "root:x:0:\nnogroup:x:65534:\nagent:x:5:\n");
	warden_plan_free(plan);

	plan = compile_ok(parse_ok("process: {user: '0:1000'}\n"), NULL);
	assert_string_equal(plan->passwd,
	                    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
	                    "root:x:0:1000:root:/root:/bin/sh\n");
	assert_string_equal(plan->group, "tty:x:5:\nnogroup:x:65534:\nroot:x:1000:\n");
	warden_plan_free(plan);
}

/* ---- environment ------------------------------------------------------------------- */

static void assert_env(char **got, const char *const *want, size_t n)
{
	size_t i = 0;
	for (; got[i]; i++) {
		if (i >= n)
			fail_msg("unexpected environment entry %s", got[i]);
		assert_string_equal(got[i], want[i]);
	}
	assert_int_equal(i, n);
}

static void test_environment(void **state)
{
	(void)state;
	static const char *const defaults[] = {
	    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	    "HOME=/home/agent",
	    "USER=agent",
	    "LOGNAME=agent",
	    "SHELL=/bin/sh",
	    "TMPDIR=/tmp",
	    "LANG=C.UTF-8",
	};
	struct warden_plan *plan = compile_ok(warden_policy_new(), NULL);
	assert_env(plan->envp, defaults, ARRAY_SIZE(defaults));
	warden_plan_free(plan);

	/* the caller's environment is not passed unless asked for */
	char *caller[] = {"TERM=xterm", "FOO=from-caller", "FOOBAR=no", "SECRET=s", "EMPTY=", NULL};
	plan = compile_ok(warden_policy_new(), caller);
	assert_env(plan->envp, defaults, ARRAY_SIZE(defaults));
	warden_plan_free(plan);

	plan = compile_ok(parse_ok("process:\n"
	                           "  user: root\n"
	                           "  env: {PATH: /bin, FOO: policy, HOME: /srv, X: '1=2'}\n"
	                           "  env_pass: [TERM, MISSING, FOO, FO, EMPTY]\n"),
	                  caller);
	static const char *const custom[] = {
	    "PATH=/bin",   "HOME=/srv",       "USER=root", "LOGNAME=root", "SHELL=/bin/sh",
	    "TMPDIR=/tmp", "FOO=from-caller", "X=1=2",     "TERM=xterm",   "EMPTY=",
	};
	assert_env(plan->envp, custom, ARRAY_SIZE(custom));
	warden_plan_free(plan);

	/* env_pass with no caller environment at all */
	plan = compile_ok(parse_ok("process: {env: {}, env_pass: [TERM]}\n"), NULL);
	assert_env(plan->envp, defaults, ARRAY_SIZE(defaults) - 1);
	warden_plan_free(plan);
}

/* ---- warnings ---------------------------------------------------------------------- */

static void test_network_and_landlock_warnings(void **state)
{
	(void)state;
	struct warden_plan *plan = compile_ok(parse_ok("network: {mode: host}\n"), NULL);
	assert_true(has_warning(plan, "network.mode: host: the sandbox shares the host's "
	                              "network namespace (TCP only to the ports in "
	                              "network.tcp_connect; \"any\" opens all)"));
	warden_plan_free(plan);
	plan = compile_ok(parse_ok("network: {mode: host, tcp_connect: any}\n"), NULL);
	assert_true(has_warning(plan, "network.mode: host: the sandbox shares the host's "
	                              "network namespace"));
	warden_plan_free(plan);
	plan = compile_ok(warden_policy_new(), NULL);
	for (size_t i = 0; i < plan->warnings.n; i++)
		assert_null(strstr(plan->warnings.v[i], "network.mode"));
	assert_int_equal(plan->landlock_abi, ns_landlock_abi());
	warden_plan_free(plan);

	plan = compile_ok(parse_ok("security: {landlock: off}\n"), NULL);
	assert_int_equal(plan->landlock_abi, 0);
	assert_true(has_warning(plan, "security.landlock: off: no Landlock rules applied"));
	warden_plan_free(plan);

	int abi = ns_landlock_abi();
	struct warden_policy *p = parse_ok("security: {landlock: required}\n");
	if (abi >= 6) {
		plan = compile_ok(p, NULL);
		assert_int_equal(plan->landlock_abi, abi);
		warden_plan_free(plan);
	} else {
		char *want = xasprintf("security.landlock: required, but this kernel offers "
		                       "Landlock ABI %d (6 or later needed)",
		                       abi);
		expect_compile_err(p, want);
		free(want);
	}
}

/* Hard limits can only be lowered, so this runs in a child that lowers them first and
 * writes the plan's warnings back, one per line. */
static void test_rlimit_warnings(void **state)
{
	(void)state;
	int fds[2];
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit nofile = {.rlim_cur = 1000, .rlim_max = 1000};
		struct rlimit nproc = {.rlim_cur = 100, .rlim_max = 100};
		struct warden_error *e = NULL;
		struct warden_plan *plan;
		FILE *out = fdopen(fds[1], "w");
		if (!out || setrlimit(RLIMIT_NOFILE, &nofile) < 0 ||
		    setrlimit(RLIMIT_NPROC, &nproc) < 0)
			_exit(2);
		plan = warden_plan_compile(warden_policy_new(), NULL, &e);
		if (!plan)
			_exit(3);
		for (size_t i = 0; i < plan->warnings.n; i++)
			fprintf(out, "%s\n", plan->warnings.v[i]);
		warden_plan_free(plan);
		fputs("--\n", out);
		/* within the limits, and unlimited pids: nothing to say */
		static const char text[] = "limits: {nofile: 1000, pids: unlimited}\n";
		struct warden_policy *p = warden_policy_parse(text, strlen(text), "t.yaml", &e);
		plan = p ? warden_plan_compile(p, NULL, &e) : NULL;
		if (!plan)
			_exit(4);
		for (size_t i = 0; i < plan->warnings.n; i++)
			fprintf(out, "%s\n", plan->warnings.v[i]);
		warden_plan_free(plan);
		_exit(fclose(out) == 0 ? 0 : 5);
	}
	close(fds[1]);
	char buf[4096];
	size_t got = 0;
	ssize_t n;
	while ((n = read(fds[0], buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	close(fds[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	char *sep = strstr(buf, "--\n");
	assert_non_null(sep);
	*sep = '\0';
	assert_non_null(
	    strstr(buf, "limits.nofile: 4096 is above this host's hard limit; capped to 1000\n"));
	assert_non_null(strstr(buf, "limits.pids (RLIMIT_NPROC): 512 is above this host's hard "
	                            "limit; capped to 100\n"));
	assert_null(strstr(sep + 3, "limits."));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_identity_and_seccomp),
	    cmocka_unit_test(test_read_only),
	    cmocka_unit_test(test_volumes),
	    cmocka_unit_test(test_rootfs),
	    cmocka_unit_test(test_passwd_group),
	    cmocka_unit_test(test_environment),
	    cmocka_unit_test(test_network_and_landlock_warnings),
	    cmocka_unit_test(test_rlimit_warnings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
