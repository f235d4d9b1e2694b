/* main.c: warden's entry point: the verb table, help and version. */
#define _GNU_SOURCE
#include "cli.h"
#include "../lib/util.h"

#include <stdarg.h>

static int cmd_help(int argc, char **argv);
static int cmd_version(int argc, char **argv);

static const struct verb verbs[] = {
    {"run", cmd_run, "run a command in a fresh sandbox"},
    {"supervise", cmd_supervise, "start a long-lived sandbox that runs commands on request"},
    {"policy", cmd_policy, "list, show and check policies"},
    {"freeze", cmd_freeze, "freeze a running sandbox (warden freeze ID)"},
    {"thaw", cmd_thaw, "thaw a frozen sandbox"},
    {"kill", cmd_kill, "kill a running sandbox"},
    {"stats", cmd_stats, "what a running sandbox uses, as JSON"},
    {"metrics", cmd_metrics, "the running sandboxes' metrics (Prometheus text format)"},
    {"mcp", cmd_mcp, "a Model Context Protocol server on stdio, tools acting on a sandbox"},
    {"audit", cmd_audit, "verify the audit log, prove records, manage its key"},
    {"gpu", cmd_gpu, "list, scrub and leak-check NVIDIA GPUs"},
    {"create", cmd_create, "create a sandbox in wardend and print its id"},
    {"exec", cmd_exec, "run a command in a wardend sandbox, streaming its output"},
    {"cp", cmd_cp, "copy files to or from a wardend sandbox (ID:/path)"},
    {"ps", cmd_ps, "list wardend's sandboxes"},
    {"rm", cmd_rm, "destroy wardend sandboxes"},
    {"pause", cmd_pause, "pause a wardend sandbox"},
    {"resume", cmd_resume, "resume a paused wardend sandbox"},
    {"logs", cmd_logs, "the commands run in a wardend sandbox"},
    {"events", cmd_events, "stream a wardend sandbox's telemetry events"},
    {"version", cmd_version, "print the version"},
    {"help", cmd_help, "show this help"},
    {NULL, NULL, NULL},
};

int cli_fail(struct warden_error *e)
{
	fprintf(stderr, "warden: %s\n", warden_error_text(e));
	warden_error_free(e);
	return EXIT_WARDEN;
}

int cli_failf(const char *fmt, ...)
{
	va_list ap;
	fputs("warden: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_WARDEN;
}

void cli_warn(const char *fmt, ...)
{
	va_list ap;
	fputs("warden: warning: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int cmd_help(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("usage: warden VERB [OPTIONS] [ARGS]\n\nverbs:\n");
	for (const struct verb *v = verbs; v->name; v++)
		printf("  %-10s %s\n", v->name, v->summary);
	printf("\n'warden VERB --help' describes a verb.\n");
	return 0;
}

static int cmd_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("warden %s\n", WARDEN_VERSION);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return cmd_help(argc, argv), 2;
	const char *name = argv[1];
	if (streq(name, "--help") || streq(name, "-h"))
		return cmd_help(argc, argv);
	if (streq(name, "--version"))
		return cmd_version(argc, argv);
	for (const struct verb *v = verbs; v->name; v++)
		if (streq(v->name, name))
			return v->fn(argc - 1, argv + 1);
	return cli_failf("unknown verb \"%s\" (try 'warden help')", name);
}
