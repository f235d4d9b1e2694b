/* test_cgroup.c: the sweep of groups left behind by supervisors killed with SIGKILL.
 *
 * Runs on the host's real cgroup file system (the pids controller on v1, or the v2
 * tree), under the test's own group; skipped without root or without a writable one.
 */
#include "unit.h"
#include "../../src/lib/ns/ns.h"

#include <signal.h>
#include <sys/wait.h>

static char *test_parent(void)
{
	static const char *const roots[] = {"/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified",
	                                    "/sys/fs/cgroup"};
	char buf[4096];
	if (geteuid() != 0 || read_file_at(AT_FDCWD, "/proc/self/cgroup", buf, sizeof(buf)) <= 0)
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(roots); i++) {
		struct stat st;
		_cleanup_free_ char *probe = xasprintf("%s/cgroup.procs", roots[i]);
		if (stat(probe, &st) < 0)
			continue;
		const char *want = i == 0 ? ":pids:" : "0::";
		char *line = strstr(buf, want);
		if (!line)
			continue;
		line += strlen(want);
		size_t n = strcspn(line, "\n");
		char *parent = xasprintf("%s%.*s/warden-sweep-test", roots[i], (int)n, line);
		if (mkdir(parent, 0755) == 0 || errno == EEXIST)
			return parent;
		free(parent);
	}
	return NULL;
}

static void test_sweep_removes_only_old_empty_groups(void **state)
{
	(void)state;
	_cleanup_free_ char *parent = test_parent();
	if (!parent)
		skip();
	_cleanup_free_ char *old = xasprintf("%s/old", parent);
	_cleanup_free_ char *busy = xasprintf("%s/busy", parent);
	assert_int_equal(mkdir(old, 0755), 0);
	assert_int_equal(mkdir(busy, 0755), 0);

	/* A group with a process in it is never removed, however old. */
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		pause();
		_exit(0);
	}
	_cleanup_free_ char *procs = xasprintf("%s/cgroup.procs", busy);
	char pid[16];
	snprintf(pid, sizeof(pid), "%d", (int)child);
	assert_int_equal(write_file_at(AT_FDCWD, procs, pid), 0);

	/* Younger than the age given: kept. */
	ns_cgroup_sweep(parent, 3600);
	assert_int_equal(access(old, F_OK), 0);
	assert_int_equal(access(busy, F_OK), 0);

	/* With an age of 0, a group made more than a second ago is old: removed when empty,
	 * kept when populated. */
	sleep(1);
	ns_cgroup_sweep(parent, 0);
	assert_int_equal(access(old, F_OK), -1);
	assert_int_equal(access(busy, F_OK), 0);

	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	for (int i = 0; i < 100 && rmdir(busy) < 0; i++)
		usleep(10000);
	assert_int_equal(access(busy, F_OK), -1);
	assert_int_equal(rmdir(parent), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sweep_removes_only_old_empty_groups),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
