/* probe.c: a tiny static program that integration and escape tests run inside sandboxes.
 *
 * usage: probe ATTEMPT [ARGS...]
 * Each attempt does one thing and reports it: exit 0 when the attempt succeeded, 1 when
 * it failed (printing "FAILED: <what>: <errno text>" on stderr), 2 for a usage error.
 * Tests run the same attempt outside the sandbox first, to show that it can succeed,
 * and then inside, where it must fail.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int failed(const char *what)
{
	fprintf(stderr, "FAILED: %s: %s\n", what, strerror(errno));
	return 1;
}

/* read FILE: open and read the first bytes of FILE */
static int p_read(int argc, char **argv)
{
	char buf[64];
	if (argc < 2)
		return 2;
	int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return failed(argv[1]);
	if (read(fd, buf, sizeof(buf)) < 0)
		return failed(argv[1]);
	close(fd);
	return 0;
}

/* write FILE: create/truncate FILE and write a line */
static int p_write(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return failed(argv[1]);
	if (write(fd, "probe\n", 6) != 6)
		return failed(argv[1]);
	close(fd);
	return 0;
}

struct attempt {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};

static const struct attempt attempts[] = {
	{"read", p_read, "read FILE"},
	{"write", p_write, "write FILE"},
	{NULL, NULL, NULL},
};

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: probe ATTEMPT [ARGS...]\nattempts:\n");
		for (const struct attempt *a = attempts; a->name; a++)
			fprintf(stderr, "  %s\n", a->help);
		return 2;
	}
	for (const struct attempt *a = attempts; a->name; a++)
		if (!strcmp(a->name, argv[1]))
			return a->fn(argc - 1, argv + 1);
	fprintf(stderr, "probe: unknown attempt %s\n", argv[1]);
	return 2;
}
