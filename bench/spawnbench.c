/* spawnbench.c: run a command N times, sequentially, and report start-to-exit latency.
 *
 * usage: spawnbench [-w WARMUP] N CMD [ARGS...]
 * Runs CMD WARMUP times untimed, then N times timed, each one started with posix_spawn()
 * and waited for before the next. Prints one line of JSON:
 *   {"n":N,"wall_ms":W,"failures":K,"first_failure":S,"samples_ms":[...]}
 * where wall_ms covers the N timed runs back to back (so N / wall_ms is the sequential
 * rate), samples_ms are the individual latencies in the order they were taken, and
 * first_failure is the wait status of the first failing run (-1 if none). The command's
 * stdin, stdout and stderr are /dev/null; a non-zero exit counts as a failure and is
 * reported, never hidden.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Runs argv once; returns its wait status, or -1 (with a message) if it could not start. */
static int run_once(char **argv, const posix_spawn_file_actions_t *fa)
{
	pid_t pid;
	int status;
	int r = posix_spawnp(&pid, argv[0], fa, NULL, argv, environ);
	if (r != 0) {
		fprintf(stderr, "spawnbench: %s: %s\n", argv[0], strerror(r));
		return -1;
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			perror("spawnbench: waitpid");
			return -1;
		}
	}
	return status;
}

int main(int argc, char **argv)
{
	int warmup = 0, opt;
	while ((opt = getopt(argc, argv, "+w:")) != -1) {
		if (opt != 'w') {
			fprintf(stderr, "usage: spawnbench [-w WARMUP] N CMD [ARGS...]\n");
			return 2;
		}
		warmup = atoi(optarg);
	}
	if (argc - optind < 2) {
		fprintf(stderr, "usage: spawnbench [-w WARMUP] N CMD [ARGS...]\n");
		return 2;
	}
	int n = atoi(argv[optind]);
	char **cmd = argv + optind + 1;
	if (n <= 0 || warmup < 0) {
		fprintf(stderr, "spawnbench: N must be positive and WARMUP not negative\n");
		return 2;
	}
	double *t = calloc((size_t)n, sizeof(double));
	if (!t) {
		perror("spawnbench");
		return 1;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);

	for (int i = 0; i < warmup; i++) {
		if (run_once(cmd, &fa) == -1)
			return 1;
	}
	int failures = 0, first_failure = -1;
	double start_all = now_ms();
	for (int i = 0; i < n; i++) {
		double t0 = now_ms();
		int status = run_once(cmd, &fa);
		t[i] = now_ms() - t0;
		if (status == -1)
			return 1;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			if (failures++ == 0)
				first_failure = status;
		}
	}
	double wall = now_ms() - start_all;

	printf("{\"n\":%d,\"wall_ms\":%.3f,\"failures\":%d,\"first_failure\":%d,\"samples_ms\":[",
	       n, wall, failures, first_failure);
	for (int i = 0; i < n; i++)
		printf("%s%.4f", i ? "," : "", t[i]);
	printf("]}\n");
	posix_spawn_file_actions_destroy(&fa);
	free(t);
	return 0;
}
