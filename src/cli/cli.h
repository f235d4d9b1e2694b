/* cli.h: the warden command line: a verb table (main.c) and one file per verb. */
#ifndef WARDEN_CLI_H
#define WARDEN_CLI_H

#include "../lib/error.h"

/* Exit statuses, the docker/podman convention. */
#define EXIT_WARDEN      125 /* warden's own error */
#define EXIT_CANNOT_EXEC 126 /* the command exists but cannot be executed */
#define EXIT_NOT_FOUND   127 /* the command was not found */
#define EXIT_TIMEOUT     124 /* --timeout expired */

struct verb {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

int cmd_run(int argc, char **argv);
int cmd_supervise(int argc, char **argv);
int cmd_policy(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_freeze(int argc, char **argv);
int cmd_thaw(int argc, char **argv);
int cmd_kill(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_metrics(int argc, char **argv);
int cmd_mcp(int argc, char **argv);
int cmd_gpu(int argc, char **argv);
/* client.c: verbs that drive wardend over its HTTP API. */
int cmd_create(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_cp(int argc, char **argv);
int cmd_ps(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_resume(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_events(int argc, char **argv);

/* Print "warden: <message>" for an error and return EXIT_WARDEN. */
int cli_fail(struct warden_error *e);
/* Print "warden: <formatted>" and return EXIT_WARDEN. */
int cli_failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
