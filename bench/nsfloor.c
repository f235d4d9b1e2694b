/* nsfloor.c: the least any launcher of a namespace sandbox does, for the cold-start
 * benchmark's reference row (docs/benchmarks.md).
 *
 * usage: nsfloor CMD [ARGS...]
 * Makes a child in new user, pid, mount, ipc, uts, net and cgroup namespaces with one
 * clone3(); the child, pid 1 there, forks CMD, waits for it and exits with its status;
 * the parent waits for the child. No id maps, mounts, limits or filters: what is left is
 * the kernel's cost of the seven namespaces and of the three processes every such
 * sandbox has (launcher, its pid 1, the command). Linked statically, so that no dynamic
 * loader is part of it either.
 */
#define _GNU_SOURCE
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int status_of(pid_t pid)
{
	int st;
	if (waitpid(pid, &st, 0) < 0) {
		perror("nsfloor: waitpid");
		return 125;
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: nsfloor CMD [ARGS...]\n");
		return 125;
	}
	struct clone_args a = {
	    .flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS |
	             CLONE_NEWNET | CLONE_NEWCGROUP,
	    .exit_signal = SIGCHLD,
	};
	pid_t init = (pid_t)syscall(SYS_clone3, &a, sizeof(a));
	if (init < 0) {
		perror("nsfloor: clone3");
		return 125;
	}
	if (init == 0) {
		pid_t cmd = fork();
		if (cmd < 0)
			_exit(125);
		if (cmd == 0) {
			execv(argv[1], argv + 1);
			_exit(127);
		}
		_exit(status_of(cmd));
	}
	return status_of(init);
}
