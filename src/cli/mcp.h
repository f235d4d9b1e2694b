/* mcp.h: the parts of `warden mcp` and what they share.
 *
 * Files: mcp.c (options, messages, the JSON-RPC protocol, the main loop); mcp-tools.c
 * (the tools: table, schemas, argument checks, calls); mcp-sandbox.c (the session's
 * sandbox made by `warden supervise` and driven through its control socket, the commands
 * run in it, and its files, reached as its user).
 */
#ifndef WARDEN_CLI_MCP_H
#define WARDEN_CLI_MCP_H

#include "cli.h"
#include "../lib/error.h"
#include "../lib/files.h"
#include "../lib/util.h"

#include <jansson.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/types.h>

enum sandbox_state { SANDBOX_NONE, SANDBOX_RUNNING, SANDBOX_ENDED };

struct mcp {
	struct strv supervise; /* argv of `warden supervise` */
	bool quiet;
	int sigfd;
	bool terminating; /* a signal came, or stdout is gone */
	/* The session's sandbox. */
	enum sandbox_state state;
	char *id, *control; /* its id and control socket */
	pid_t supervisor_pid;
	int supervisor_pidfd, init_pidfd;
	struct warden_root root; /* its "/", and the host ids of its user */
	int relay[2]; /* the stdout and stderr `warden supervise` left us, relayed to stderr */
	int watchdog; /* write end of the watchdog's pipe */
};

/* ---- mcp.c ------------------------------------------------------------------------- */

/* A line "warden mcp: ..." on stderr, unless --quiet (m may be NULL: always). */
void mcp_log(const struct mcp *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string of bytes that should be UTF-8 text (src/lib/text.h). */
json_t *mcp_text_json(const char *buf, size_t len, bool cut);

/* ---- mcp-sandbox.c: the session's sandbox ------------------------------------------ */

/* Whether a pidfd's process has ended (or the pidfd is missing). */
bool mcp_pidfd_ended(int pidfd);
/* The sandbox, made now if there is none yet; -1 with err once it has ended. */
int mcp_sandbox_get(struct mcp *m, struct warden_error **err);
/* Destroy it (if any) and wait for its supervisor's cleanup; releases what it held. */
void mcp_sandbox_destroy(struct mcp *m);
/* The descriptors `warden supervise` left us, to poll with ours (fills 2), and their
 * relay to stderr once poll() has filled revents. */
size_t mcp_relay_pollfds(struct mcp *m, struct pollfd *p);
void mcp_relay_dispatch(struct mcp *m, const struct pollfd *p);
/* Whether a signal (m->sigfd, p its pollfd) asked us to end; remembered in m. */
bool mcp_signalled(struct mcp *m, const struct pollfd *p);

/* ---- mcp-sandbox.c: running commands ----------------------------------------------- */

struct mcp_stream {
	int fd;
	char *buf;
	size_t len;
	bool truncated;
};

struct mcp_exec_result {
	int code;
	bool timed_out;
	bool lost;   /* the supervisor went away: the sandbox ended */
	char *error; /* could not be executed */
	struct mcp_stream out, err;
};

/* Run the exec request req (taken) in the sandbox: stdin /dev/null, stdout and stderr
 * collected, until it ends or timeout_ms pass (then SIGKILL to its process group). Returns
 * 0 with *res filled (res->lost: the sandbox ended meanwhile; res->error: it could not be
 * executed), or -1 with err. Clear *res with mcp_exec_result_clear() either way. */
int mcp_exec_run(struct mcp *m, json_t *req, int timeout_ms, struct mcp_exec_result *res,
                 struct warden_error **err);
void mcp_exec_result_clear(struct mcp_exec_result *res);

/* ---- mcp-sandbox.c: files ---------------------------------------------------------- */

/* The file tools' operations (arguments checked by the tool's schema): the result object,
 * or NULL with err. Run them through mcp_as_sandbox_user(). */
typedef json_t *(*mcp_file_op)(const struct mcp *m, json_t *args, struct warden_error **err);

json_t *mcp_file_write(const struct mcp *m, json_t *args, struct warden_error **err);
json_t *mcp_file_read(const struct mcp *m, json_t *args, struct warden_error **err);
json_t *mcp_file_list(const struct mcp *m, json_t *args, struct warden_error **err);
/* op in a child process that has become the sandbox's user for good (see mcp-sandbox.c). */
json_t *mcp_as_sandbox_user(struct mcp *m, mcp_file_op op, json_t *args, struct warden_error **err);

/* ---- mcp-tools.c ------------------------------------------------------------------- */

/* tools/list: the tools' descriptions (name, schemas, annotations). */
json_t *mcp_tools_json(void);
/* tools/call: the tool's result (isError set when the tool failed), or NULL with *ret_why
 * (caller frees) when the call is malformed: an unknown tool, arguments that do not fit
 * its schema. args may be NULL (none). */
json_t *mcp_tool_call(struct mcp *m, const char *name, json_t *args, char **ret_why);

#endif
