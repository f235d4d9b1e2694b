/* mcp.c: `warden mcp`: a Model Context Protocol server on standard input and output.
 *
 * Sections: options; messages (JSON-RPC out, UTF-8 text); the protocol (JSON-RPC 2.0
 * dispatch); the main loop. The tools are mcp-tools.c's, the session's sandbox
 * mcp-sandbox.c's (mcp.h).
 *
 * Transport (MCP "stdio", protocol 2025-06-18): one JSON-RPC message per line on stdin and
 * on stdout; stdout carries nothing else, logs go to stderr. Requests are answered one at a
 * time, in order. One sandbox per session: made at the first tool call, destroyed when
 * stdin ends or on SIGTERM/SIGINT/SIGHUP, and by a watchdog process if this one dies any
 * other way. Failures of a tool (a file missing, a command that cannot run) are results
 * with isError set, for the model to read; malformed requests are JSON-RPC errors.
 */
#define _GNU_SOURCE
#include "mcp.h"
#include "../lib/text.h"

#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/signalfd.h>

#define PROTOCOL_VERSION "2025-06-18"
#define MESSAGE_MAX      (64u << 20) /* one JSON-RPC message (write_file carries files) */

/* JSON-RPC 2.0 error codes. */
#define RPC_PARSE_ERROR      -32700
#define RPC_INVALID_REQUEST  -32600
#define RPC_METHOD_NOT_FOUND -32601
#define RPC_INVALID_PARAMS   -32602
#define RPC_INTERNAL_ERROR   -32603

void mcp_log(const struct mcp *m, const char *fmt, ...)
{
	va_list ap;
	if (m && m->quiet)
		return;
	fputs("warden mcp: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- options ----------------------------------------------------------------------- */

static const char usage[] =
    "usage: warden mcp [OPTIONS]\n"
    "\n"
    "A Model Context Protocol server on standard input and output (docs/mcp.md). Its tools\n"
    "(run_command, write_file, read_file, list_files) act on one sandbox, made at the\n"
    "first tool call with the options below and destroyed when the session ends.\n"
    "\n"
    "  --policy NAME|FILE       a preset (default, strict) or a YAML policy file\n"
    "  -v, --volume HOST:PATH[:ro|rw]  bind a host directory in\n"
    "  -w, --workdir PATH       working directory of commands\n"
    "  -e, --env NAME[=VALUE]   pass NAME from here, or set it\n"
    "  --rootfs DIR             use DIR (an unpacked image) as the root\n"
    "  --memory SIZE, --pids N, --cpus X, --tmp-size SIZE   limits\n"
    "  --timeout SECONDS        destroy the sandbox after this long\n"
    "  --user UID[:GID]         identity inside (default: agent)\n"
    "  --network none|proxy|host, --resolver-hosts FILE, --nameserver IP[:PORT]\n"
    "  --gateway FILE, --no-gateway   the model gateway\n"
    "  --events FILE|-, --no-telemetry, --audit-log FILE, --audit-key FILE\n"
    "  -q, --quiet              no warnings or notes on standard error\n"
    "\n"
    "These are `warden supervise`'s options (see `warden run --help`), passed on to it.\n";

/* Every option but --help is passed on to `warden supervise`, which checks the values. */
static const struct option long_opts[] = {
    {"policy", required_argument, NULL, 256},
    {"volume", required_argument, NULL, 'v'},
    {"workdir", required_argument, NULL, 'w'},
    {"env", required_argument, NULL, 'e'},
    {"rootfs", required_argument, NULL, 256 + 4},
    {"memory", required_argument, NULL, 256 + 5},
    {"pids", required_argument, NULL, 256 + 6},
    {"cpus", required_argument, NULL, 256 + 7},
    {"tmp-size", required_argument, NULL, 256 + 8},
    {"timeout", required_argument, NULL, 256 + 9},
    {"user", required_argument, NULL, 256 + 10},
    {"network", required_argument, NULL, 256 + 11},
    {"resolver-hosts", required_argument, NULL, 256 + 12},
    {"nameserver", required_argument, NULL, 256 + 13},
    {"gateway", required_argument, NULL, 256 + 14},
    {"no-gateway", no_argument, NULL, 256 + 15},
    {"events", required_argument, NULL, 256 + 16},
    {"no-telemetry", no_argument, NULL, 256 + 17},
    {"audit-log", required_argument, NULL, 256 + 18},
    {"audit-key", required_argument, NULL, 256 + 19},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int parse_opts(int argc, char **argv, struct mcp *m)
{
	int c, idx;
	opterr = 0;
	optind = 1;
	strv_push(&m->supervise, "warden");
	strv_push(&m->supervise, "supervise");
	while ((c = getopt_long(argc, argv, "+v:w:e:qh", long_opts, &idx)) != -1) {
		if (c == 'h') {
			fputs(usage, stdout);
			return 1;
		}
		if (c == '?' || c == ':')
			return cli_failf(
			    "mcp: unknown option or missing value: %s (try 'warden mcp "
			    "--help')",
			    argv[optind - 1]);
		if (c == 'q')
			m->quiet = true;
		if (c < 256) {
			char opt[3] = {'-', (char)c, '\0'};
			strv_push(&m->supervise, opt);
		} else {
			strv_push_take(&m->supervise, xasprintf("--%s", long_opts[c - 256].name));
		}
		if (optarg)
			strv_push(&m->supervise, optarg);
	}
	if (optind < argc)
		return cli_failf("mcp: unexpected argument \"%s\" (try 'warden mcp --help')",
		                 argv[optind]);
	return 0;
}

/* ---- messages ---------------------------------------------------------------------- */

/* Write one message (and free it) as one line on stdout. */
static void send_message(struct mcp *m, json_t *msg)
{
	char *s = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	if (!s) {
		mcp_log(NULL, "could not encode a reply");
		return;
	}
	if (fputs(s, stdout) == EOF || fputc('\n', stdout) == EOF || fflush(stdout) == EOF) {
		mcp_log(NULL, "standard output: %s", strerror(errno));
		m->terminating = true;
	}
	free(s);
}

static void send_error(struct mcp *m, json_t *id, int code, const char *msg);

static void send_result(struct mcp *m, json_t *id, json_t *result)
{
	if (!result) {
		send_error(m, id, RPC_INTERNAL_ERROR, "Internal error: could not build the result");
		return;
	}
	send_message(m, json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result));
}

static void send_error(struct mcp *m, json_t *id, int code, const char *msg)
{
	send_message(m, json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id",
	                          id ? id : json_null(), "error", "code", code, "message", msg));
}

/* A JSON string of bytes that should be UTF-8 text: what is not valid UTF-8 becomes U+FFFD.
 * cut: the bytes were cut at a limit, so a sequence cut short at the end is dropped. */
json_t *mcp_text_json(const char *buf, size_t len, bool cut)
{
	struct warden_text t = {0};
	warden_text_add(&t, buf, len, !cut);
	json_t *s = json_stringn(t.s, t.len);
	warden_text_clear(&t);
	return s;
}

/* ---- the protocol ------------------------------------------------------------------ */

struct rpc_error {
	int code;
	char *message;
};

static json_t *rpc_fail(struct rpc_error *e, int code, char *message)
{
	e->code = code;
	e->message = message;
	return NULL;
}

static json_t *on_initialize(struct mcp *m, json_t *params, struct rpc_error *e)
{
	(void)m;
	static const char *const versions[] = {PROTOCOL_VERSION, "2025-03-26", "2024-11-05"};
	const char *asked = json_string_value(json_object_get(params, "protocolVersion"));
	if (!asked)
		return rpc_fail(e, RPC_INVALID_PARAMS,
		                xstrdup("initialize: params.protocolVersion: a string"));
	/* The version asked for when we speak it, else ours (the client then decides). */
	const char *version = PROTOCOL_VERSION;
	for (size_t i = 0; i < ARRAY_SIZE(versions); i++)
		if (streq(asked, versions[i]))
			version = versions[i];
	return json_pack(
	    "{s:s, s:{s:{s:b}}, s:{s:s, s:s, s:s}, s:s}", "protocolVersion", version,
	    "capabilities", "tools", "listChanged", 0, "serverInfo", "name", "warden", "title",
	    "warden sandbox", "version", WARDEN_VERSION, "instructions",
	    "The tools act on one sandbox, an isolated Linux environment made at the first tool "
	    "call and kept for the whole session: files written and programs installed stay "
	    "between calls. Paths are absolute paths inside the sandbox. What the sandbox may "
	    "reach (network, host files, memory) is set by its warden policy.");
}

static json_t *on_ping(struct mcp *m, json_t *params, struct rpc_error *e)
{
	(void)m, (void)params, (void)e;
	return json_object();
}

static json_t *on_tools_list(struct mcp *m, json_t *params, struct rpc_error *e)
{
	(void)m, (void)params, (void)e;
	return json_pack("{s:o}", "tools", mcp_tools_json());
}

static json_t *on_tools_call(struct mcp *m, json_t *params, struct rpc_error *e)
{
	const char *name = json_string_value(json_object_get(params, "name"));
	char *why = NULL;
	if (!name)
		return rpc_fail(e, RPC_INVALID_PARAMS,
		                xstrdup("tools/call: params.name: a string"));
	json_t *r = mcp_tool_call(m, name, json_object_get(params, "arguments"), &why);
	return why ? rpc_fail(e, RPC_INVALID_PARAMS, why) : r;
}

static const struct {
	const char *name;
	json_t *(*fn)(struct mcp *m, json_t *params, struct rpc_error *e);
} methods[] = {
    {"initialize", on_initialize},
    {"ping", on_ping},
    {"tools/list", on_tools_list},
    {"tools/call", on_tools_call},
};

static void handle_message(struct mcp *m, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *msg = json_loadb(line, len, JSON_DECODE_ANY, &jerr);
	if (!msg) {
		_cleanup_free_ char *why = xasprintf("Parse error: %s", jerr.text);
		send_error(m, NULL, RPC_PARSE_ERROR, why);
		return;
	}
	json_t *id = json_object_get(msg, "id");
	const char *method = json_string_value(json_object_get(msg, "method"));
	bool id_ok = json_is_string(id) || json_is_integer(id);
	if (!json_is_object(msg)) {
		send_error(m, NULL, RPC_INVALID_REQUEST,
		           "Invalid Request: a message is one JSON object (MCP has no batches)");
	} else if (!method && id_ok &&
	           (json_object_get(msg, "result") || json_object_get(msg, "error"))) {
		/* A response: we send no requests, so there is nothing it answers. */
	} else if (!method || !json_is_string(json_object_get(msg, "jsonrpc")) ||
	           !streq(json_string_value(json_object_get(msg, "jsonrpc")), "2.0") ||
	           (id && !id_ok)) {
		send_error(m, id_ok ? id : NULL, RPC_INVALID_REQUEST,
		           "Invalid Request: needs \"jsonrpc\": \"2.0\", a \"method\" string, and "
		           "an \"id\" that is a string or an integer, if any");
	} else if (!id) {
		/* Notifications (initialized, cancelled, ...) need nothing from us: requests are
		 * answered in order, so none is pending when one is read. */
	} else {
		json_t *params = json_object_get(msg, "params");
		struct rpc_error e = {0};
		size_t i = 0;
		while (i < ARRAY_SIZE(methods) && !streq(methods[i].name, method))
			i++;
		json_t *result = NULL;
		if (i == ARRAY_SIZE(methods))
			rpc_fail(&e, RPC_METHOD_NOT_FOUND,
			         xasprintf("Method not found: %s", method));
		else if (params && !json_is_object(params))
			rpc_fail(&e, RPC_INVALID_PARAMS,
			         xasprintf("%s: params: an object", method));
		else
			result = methods[i].fn(m, params, &e);
		if (m->terminating && !result && !e.message) {
			/* Interrupted by a signal: no answer; the session is ending. */
		} else if (result || !e.message) {
			send_result(m, id, result);
		} else {
			send_error(m, id, e.code, e.message);
		}
		free(e.message);
	}
	json_decref(msg);
}

/* ---- the main loop ----------------------------------------------------------------- */

int cmd_mcp(int argc, char **argv)
{
	struct mcp m = {.sigfd = -1,
	                .supervisor_pidfd = -1,
	                .init_pidfd = -1,
	                .root = {.fd = -1},
	                .relay = {-1, -1},
	                .watchdog = -1};
	int r = parse_opts(argc, argv, &m);
	if (r != 0) {
		strv_clear(&m.supervise);
		return r == 1 ? 0 : r;
	}
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	m.sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (m.sigfd < 0)
		return cli_failf("mcp: signalfd: %s", strerror(errno));

	char *buf = NULL;
	size_t len = 0, cap = 0;
	bool eof = false, skipping = false;
	while (!eof && !m.terminating) {
		struct pollfd p[4] = {{.fd = STDIN_FILENO, .events = POLLIN},
		                      {.fd = m.sigfd, .events = POLLIN}};
		size_t n = 2 + mcp_relay_pollfds(&m, p + 2);
		if (poll(p, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			mcp_log(&m, "poll: %s", strerror(errno));
			break;
		}
		if (mcp_signalled(&m, &p[1]))
			break;
		mcp_relay_dispatch(&m, p + 2);
		if (!p[0].revents)
			continue;
		if (cap - len < 65536)
			buf = xrealloc(buf, cap = cap ? cap * 2 : 131072);
		ssize_t got = read(STDIN_FILENO, buf + len, cap - len);
		if (got < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (got <= 0) {
			eof = true; /* a last line without its newline is still a message */
			got = len && !skipping ? 1 : 0;
			buf[len] = '\n';
		}
		size_t start = 0, end = len + (size_t)got;
		for (size_t i = len; i < end && !m.terminating; i++) {
			if (buf[i] != '\n')
				continue;
			size_t l = i - start;
			if (l && buf[start + l - 1] == '\r')
				l--;
			if (!skipping && l)
				handle_message(&m, buf + start, l);
			skipping = false;
			start = i + 1;
		}
		memmove(buf, buf + start, end - start);
		len = end - start;
		if (len > MESSAGE_MAX && !skipping) {
			send_error(&m, NULL, RPC_PARSE_ERROR, "Parse error: message too large");
			skipping = true;
		}
		if (skipping)
			len = 0;
		if (cap > 4 * 131072 && len < cap / 4)
			buf = xrealloc(buf, cap = (len / 131072 + 1) * 131072 * 2);
	}
	free(buf);
	mcp_sandbox_destroy(&m);
	close(m.sigfd);
	strv_clear(&m.supervise);
	return 0;
}
