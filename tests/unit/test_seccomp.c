/* test_seccomp.c: the seccomp program a plan carries.
 *
 * Sections: the table precompiled at build time equals a fresh compilation for every
 * preset, with and without a read-write volume (so a stale table is caught); policies of
 * their own compile fresh and differ; conflicting lists; what a loaded program answers,
 * in a child process.
 */
#include "unit.h"
#include "../../src/lib/ns/ns.h"

#include <linux/seccomp.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>

struct prog {
	struct sock_filter *v;
	unsigned short len;
};

static struct prog compile(const struct warden_policy *p, bool fresh)
{
	struct prog r = {0};
	struct warden_error *e = NULL;
	int ret = fresh ? ns_seccomp_compile_fresh(p, &r.v, &r.len, &e)
	                : ns_seccomp_compile(p, &r.v, &r.len, &e);
	if (ret < 0)
		fail_msg("compiling %s: %s", p->name, warden_error_text(e));
	assert_non_null(r.v);
	assert_true(r.len > 0);
	return r;
}

/* Instruction for instruction, naming the first that differs. */
static void assert_same(const char *what, struct prog table, struct prog fresh)
{
	assert_int_equal(table.len, fresh.len);
	for (unsigned j = 0; j < fresh.len; j++) {
		const struct sock_filter *a = &table.v[j], *b = &fresh.v[j];
		if (memcmp(a, b, sizeof(*a)) != 0)
			fail_msg(
			    "%s: instruction %u differs: precompiled {0x%04x, %u, %u, 0x%08x}, "
			    "fresh {0x%04x, %u, %u, 0x%08x}",
			    what, j, a->code, a->jt, a->jf, a->k, b->code, b->jt, b->jf, b->k);
	}
}

static bool prog_equal(struct prog a, struct prog b)
{
	return a.len == b.len && memcmp(a.v, b.v, a.len * sizeof(*a.v)) == 0;
}

static const struct ns_seccomp_program *precompiled(const char *key)
{
	for (const struct ns_seccomp_program *pre = ns_seccomp_precompiled; pre->key; pre++)
		if (streq(pre->key, key))
			return pre;
	return NULL;
}

/* A preset, with a read-write volume when asked (the variant with the setid guard). */
static struct warden_policy *preset(const char *name, bool rw_volume)
{
	struct warden_policy *p = load_ok(name);
	struct warden_mount vol = {.host = "/srv", .path = "/work", .rw = true};
	if (rw_volume)
		warden_mounts_push(&p->volumes, &vol);
	return p;
}

static void test_precompiled_is_fresh(void **state)
{
	(void)state;
	size_t n = 0;
	for (size_t i = 0; warden_preset_names[i]; i++)
		for (int rw = 0; rw <= 1; rw++) {
			struct warden_policy *p = preset(warden_preset_names[i], rw);
			char *key = ns_seccomp_key(p);
			/* the table has this preset, so ns_seccomp_compile() takes it from there */
			const struct ns_seccomp_program *pre = precompiled(key);
			if (!pre)
				fail_msg("preset %s%s (key \"%s\") is not in the precompiled table",
				         warden_preset_names[i], rw ? " with a volume" : "", key);
			struct prog table = compile(p, false);
			struct prog fresh = compile(p, true);
			assert_int_equal(table.len, pre->len);
			assert_memory_equal(table.v, pre->prog, pre->len * sizeof(*pre->prog));
			assert_same(key, table, fresh);
			free(table.v);
			free(fresh.v);
			free(key);
			warden_policy_free(p);
			n++;
		}
	assert_int_equal(n, 4);
	/* nothing else in the table */
	size_t entries = 0;
	for (const struct ns_seccomp_program *pre = ns_seccomp_precompiled; pre->key; pre++)
		entries++;
	assert_int_equal(entries, n);
}

static void test_keys(void **state)
{
	(void)state;
	struct warden_policy *p = warden_policy_new();
	char *key = ns_seccomp_key(p);
	assert_string_equal(key, "ptrace");
	free(key);
	warden_policy_free(p);
	p = load_ok("strict");
	key = ns_seccomp_key(p);
	assert_string_equal(key, "noptrace");
	free(key);
	warden_policy_free(p);
	p = parse_ok("security: {seccomp: {deny: [uname, getcpu], allow: [keyctl]}}\n");
	key = ns_seccomp_key(p);
	assert_string_equal(key, "ptrace -uname -getcpu +keyctl");
	free(key);
	warden_policy_free(p);

	/* a read-write volume adds the setid guard; a read-only one does not */
	p = parse_ok("filesystem: {volumes: [/a:/b:ro]}\n");
	key = ns_seccomp_key(p);
	assert_string_equal(key, "ptrace");
	assert_false(ns_seccomp_guards_volumes(p));
	free(key);
	warden_policy_free(p);
	p = parse_ok("filesystem: {volumes: [/a:/b:ro, /c:/d]}\n"
	             "security: {ptrace: false, seccomp: {deny: [uname]}}\n");
	key = ns_seccomp_key(p);
	assert_string_equal(key, "noptrace volume-setid-guard -uname");
	assert_true(ns_seccomp_guards_volumes(p));
	free(key);
	warden_policy_free(p);
}

/* A policy's own lists: not in the table, compiled by libseccomp, and different. */
static void test_custom_policies(void **state)
{
	(void)state;
	struct warden_policy *def = warden_policy_new();
	struct prog base = compile(def, false);
	static const char *const custom[] = {
	    "security: {seccomp: {deny: [uname]}}\n",
	    "security: {seccomp: {allow: [keyctl]}}\n",
	    "security: {seccomp: {allow: [clone3]}}\n",
	    "security: {seccomp: {allow: [socket]}}\n",
	    "security: {ptrace: false, seccomp: {allow: [ptrace]}}\n",
	    "filesystem: {volumes: [/a:/b]}\nsecurity: {seccomp: {deny: [uname]}}\n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(custom); i++) {
		struct warden_policy *p = parse_ok(custom[i]);
		char *key = ns_seccomp_key(p);
		assert_null(precompiled(key));
		struct prog a = compile(p, false);
		struct prog b = compile(p, true);
		if (!prog_equal(a, b))
			fail_msg("%s: two compilations differ", custom[i]);
		if (prog_equal(a, base))
			fail_msg("%s: the program equals the default one", custom[i]);
		free(a.v);
		free(b.v);
		free(key);
		warden_policy_free(p);
	}
	/* ptrace: false alone is the strict program */
	struct warden_policy *p = parse_ok("security: {ptrace: false}\n");
	struct warden_policy *strict = load_ok("strict");
	struct prog a = compile(p, false), b = compile(strict, true);
	assert_true(prog_equal(a, b));
	assert_false(prog_equal(a, base));
	free(a.v);
	free(b.v);
	warden_policy_free(p);
	warden_policy_free(strict);
	free(base.v);
	warden_policy_free(def);
}

static void test_denied_and_allowed(void **state)
{
	(void)state;
	struct warden_policy *p =
	    parse_ok("security: {seccomp: {deny: [getcpu, uname], allow: [keyctl, uname]}}\n");
	struct sock_filter *prog = NULL;
	unsigned short len = 0;
	struct warden_error *e = NULL;
	assert_int_equal(ns_seccomp_compile(p, &prog, &len, &e), -1);
	assert_null(prog);
	assert_string_equal(warden_error_text(e),
	                    "security.seccomp: \"uname\" is both denied and allowed");
	warden_error_free(e);
	e = NULL;
	assert_int_equal(ns_seccomp_compile_fresh(p, &prog, &len, &e), -1);
	assert_string_equal(warden_error_text(e),
	                    "security.seccomp: \"uname\" is both denied and allowed");
	warden_error_free(e);
	warden_policy_free(p);
}

/* ---- behaviour --------------------------------------------------------------------- */

/* Load the program in a child (none when prog.v is NULL) and report the errno values of a
 * few system calls, one byte each: 0 for success, 255 when the child could not load the
 * program. */
enum {
	PROBE_KEYCTL,
	PROBE_CLONE3,
	PROBE_UNSHARE_USER,
	PROBE_UNAME,
	PROBE_PTRACE,
	PROBE_CHMOD_SETUID,
	PROBE_CHMOD_PLAIN,
	PROBE_OPENAT2,
	PROBE_MAX
};

static void probe(struct prog prog, unsigned char ret[PROBE_MAX])
{
	int fds[2];
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		unsigned char out[PROBE_MAX];
		struct sock_fprog fp = {.len = prog.len, .filter = prog.v};
		struct utsname u;
		memset(out, 255, sizeof(out));
		if (!prog.v || (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
		                syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fp) == 0)) {
			errno = 0;
			out[PROBE_KEYCTL] = syscall(SYS_keyctl, -1, 0, 0, 0, 0) < 0 ? errno : 0;
			errno = 0;
			out[PROBE_CLONE3] = syscall(SYS_clone3, NULL, 0) < 0 ? errno : 0;
			errno = 0;
			/* CLONE_PARENT is not a flag unshare takes: EINVAL when allowed */
			out[PROBE_UNSHARE_USER] =
			    syscall(SYS_unshare, CLONE_NEWUSER | CLONE_PARENT) < 0 ? errno : 0;
			errno = 0;
			out[PROBE_UNAME] = uname(&u) < 0 ? errno : 0;
			errno = 0;
			out[PROBE_PTRACE] = syscall(SYS_ptrace, -1, 0, 0, 0) < 0 ? errno : 0;
			errno = 0;
			out[PROBE_CHMOD_SETUID] =
			    chmod("/nonexistent/warden", 04755) < 0 ? errno : 0;
			errno = 0;
			out[PROBE_CHMOD_PLAIN] = chmod("/nonexistent/warden", 0755) < 0 ? errno : 0;
			errno = 0;
			/* a zero-sized struct open_how is invalid: EINVAL when allowed */
			out[PROBE_OPENAT2] =
			    syscall(SYS_openat2, AT_FDCWD, "/", NULL, 0) < 0 ? errno : 0;
		}
		_exit(write(fds[1], out, sizeof(out)) == sizeof(out) ? 0 : 1);
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], ret, PROBE_MAX), PROBE_MAX);
	close(fds[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_not_equal(ret[0], 255);
}

static void test_behaviour(void **state)
{
	(void)state;
	unsigned char r[PROBE_MAX], outside[PROBE_MAX];
	probe((struct prog){0}, outside);
	assert_int_equal(outside[PROBE_UNSHARE_USER], EINVAL);
	assert_int_equal(outside[PROBE_UNAME], 0);
	assert_int_equal(outside[PROBE_CHMOD_SETUID], ENOENT);
	assert_int_equal(outside[PROBE_OPENAT2], EINVAL);
	struct warden_policy *p = warden_policy_new();
	struct prog prog = compile(p, false);
	probe(prog, r);
	assert_int_equal(r[PROBE_KEYCTL], EPERM);
	assert_int_equal(r[PROBE_CLONE3], ENOSYS);
	assert_int_equal(r[PROBE_UNSHARE_USER], EPERM);
	assert_int_equal(r[PROBE_UNAME], 0);
	assert_int_equal(r[PROBE_PTRACE], outside[PROBE_PTRACE]);
	assert_int_equal(r[PROBE_CHMOD_SETUID], ENOENT);
	assert_int_equal(r[PROBE_OPENAT2], outside[PROBE_OPENAT2]);
	free(prog.v);
	warden_policy_free(p);

	/* a read-write volume: no setuid or setgid modes, no openat2 */
	p = preset("default", true);
	prog = compile(p, false);
	probe(prog, r);
	assert_int_equal(r[PROBE_CHMOD_SETUID], EPERM);
	assert_int_equal(r[PROBE_CHMOD_PLAIN], ENOENT);
	assert_int_equal(r[PROBE_OPENAT2], ENOSYS);
	assert_int_equal(r[PROBE_KEYCTL], EPERM);
	free(prog.v);
	warden_policy_free(p);

	p = load_ok("strict");
	prog = compile(p, false);
	probe(prog, r);
	assert_int_equal(r[PROBE_KEYCTL], EPERM);
	assert_int_equal(r[PROBE_PTRACE], EPERM);
	free(prog.v);
	warden_policy_free(p);

	p = parse_ok("security: {seccomp: {deny: [uname], allow: [keyctl, clone3, unshare]}}\n");
	prog = compile(p, false);
	probe(prog, r);
	assert_int_equal(r[PROBE_UNAME], EPERM);
	assert_int_equal(r[PROBE_KEYCTL], outside[PROBE_KEYCTL]);
	assert_int_equal(r[PROBE_CLONE3], outside[PROBE_CLONE3]);
	assert_int_equal(r[PROBE_UNSHARE_USER], EINVAL);
	free(prog.v);
	warden_policy_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_precompiled_is_fresh),
	    cmocka_unit_test(test_keys),
	    cmocka_unit_test(test_custom_policies),
	    cmocka_unit_test(test_denied_and_allowed),
	    cmocka_unit_test(test_behaviour),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
