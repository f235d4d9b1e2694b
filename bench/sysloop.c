/* sysloop.c: a syscall-heavy loop, timed from inside, for measuring sandbox overhead.
 *
 * usage: sysloop [-c] [-k KIND] N [FILE]
 *
 * Each of the N iterations of KIND `all` (the default) opens FILE (default
 * /usr/lib/os-release), reads up to 4 KiB of it, closes it, stat()s it and calls
 * getppid(): five system calls, two of them path lookups. The other kinds do one part
 * only, to tell where a slowdown comes from: `open` (open + close), `stat`, `getppid`.
 *
 * After N iterations it prints one line of JSON:
 *   {"kind":K,"iterations":N,"seconds":S,"cpu_seconds":C,"ns_per_iteration":X}
 * with S the wall-clock time and C the CPU time (user + system) the process spent in the
 * loop. Only the loop is timed, so starting the sandbox is no part of it. With -c it runs
 * N iterations for every line read from stdin, until end of file: a driver can then
 * alternate short runs inside and outside a sandbox, so that a noisy machine's drift falls
 * on both alike.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum kind { KIND_ALL, KIND_OPEN, KIND_STAT, KIND_GETPPID, KIND_MAX };

static const char *const kind_names[KIND_MAX] = {"all", "open", "stat", "getppid"};

static double now_s(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int do_open(const char *path, int do_read)
{
	char buf[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		perror("sysloop: open");
		return -1;
	}
	if (do_read && read(fd, buf, sizeof(buf)) < 0) {
		perror("sysloop: read");
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int do_stat(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		perror("sysloop: stat");
		return -1;
	}
	return 0;
}

/* Runs n iterations of kind k and prints their timing; returns 0, or -1 (with a
 * message). getppid() is called raw, so that no library could answer it from a cache. */
static int run(enum kind k, long n, const char *path)
{
	double t0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
	for (long i = 0; i < n; i++) {
		switch (k) {
		case KIND_ALL:
			if (do_open(path, 1) < 0 || do_stat(path) < 0)
				return -1;
			(void)syscall(SYS_getppid);
			break;
		case KIND_OPEN:
			if (do_open(path, 0) < 0)
				return -1;
			break;
		case KIND_STAT:
			if (do_stat(path) < 0)
				return -1;
			break;
		default:
			(void)syscall(SYS_getppid);
			break;
		}
	}
	double dt = now_s(CLOCK_MONOTONIC) - t0;
	double cpu = now_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
	printf("{\"kind\":\"%s\",\"iterations\":%ld,\"seconds\":%.6f,\"cpu_seconds\":%.6f,"
	       "\"ns_per_iteration\":%.1f}\n",
	       kind_names[k], n, dt, cpu, dt * 1e9 / (double)n);
	fflush(stdout);
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: sysloop [-c] [-k all|open|stat|getppid] N [FILE]\n");
	return 2;
}

int main(int argc, char **argv)
{
	int chunked = 0, opt;
	enum kind k = KIND_ALL;
	while ((opt = getopt(argc, argv, "ck:")) != -1) {
		if (opt == 'c') {
			chunked = 1;
		} else if (opt == 'k') {
			for (k = 0; k < KIND_MAX && strcmp(optarg, kind_names[k]) != 0; k++)
				;
			if (k == KIND_MAX)
				return usage();
		} else {
			return usage();
		}
	}
	if (optind >= argc)
		return usage();
	long n = atol(argv[optind]);
	const char *path = optind + 1 < argc ? argv[optind + 1] : "/usr/lib/os-release";
	if (n <= 0) {
		fprintf(stderr, "sysloop: N must be positive\n");
		return 2;
	}
	if (!chunked)
		return run(k, n, path) < 0 ? 1 : 0;
	char line[64];
	while (fgets(line, sizeof(line), stdin)) {
		if (run(k, n, path) < 0)
			return 1;
	}
	return 0;
}
