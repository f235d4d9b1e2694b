/* spawnbench.c: run a command N times, sequentially, and report start-to-exit latency.
 *
 * usage: spawnbench N CMD [ARGS...]
 * Prints one line of JSON: {"n":N,"median_ms":...,"p90_ms":...,"p99_ms":...,"mean_ms":...,
 * "min_ms":...,"rate_per_s":...,"failures":K}. The command's stdout/stderr go to /dev/null;
 * a non-zero exit counts as a failure (and is reported, never hidden).
 */
#define _GNU_SOURCE
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

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: spawnbench N CMD [ARGS...]\n");
		return 2;
	}
	int n = atoi(argv[1]);
	if (n <= 0) {
		fprintf(stderr, "spawnbench: N must be positive\n");
		return 2;
	}
	double *t = calloc((size_t)n, sizeof(double));
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	int failures = 0;
	double start_all = now_ms();
	for (int i = 0; i < n; i++) {
		pid_t pid;
		int status;
		double t0 = now_ms();
		if (posix_spawnp(&pid, argv[2], &fa, NULL, argv + 2, environ) != 0) {
			perror("spawnbench: spawn");
			return 1;
		}
		while (waitpid(pid, &status, 0) < 0)
			;
		t[i] = now_ms() - t0;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failures++;
	}
	double total = now_ms() - start_all;
	double sum = 0;
	for (int i = 0; i < n; i++)
		sum += t[i];
	qsort(t, (size_t)n, sizeof(double), cmp);
	printf("{\"n\":%d,\"median_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"mean_ms\":%.3f,"
	       "\"min_ms\":%.3f,\"rate_per_s\":%.1f,\"failures\":%d}\n",
	       n, t[n / 2], t[(int)(n * 0.9)], t[(int)(n * 0.99)], sum / n, t[0],
	       n / (total / 1000.0), failures);
	free(t);
	return 0;
}
