/* mcp-tools.c: `warden mcp`'s tools: the table, their schemas (input and output), the
 * check of a call's arguments against them, and the calls, which act on the session's
 * sandbox through mcp-sandbox.c (mcp.h).
 *
 * A tool that fails (a file missing, a command that cannot run) answers a result with
 * isError set, for the model to read; arguments that do not fit the schema are the
 * protocol's error (mcp.c).
 *
 * Sections: results; calls; the table and its output schemas; input schemas and argument
 * checks; tools/list and tools/call.
 */
#define _GNU_SOURCE
#include "mcp.h"
#include "../lib/policy.h"

#include <stdarg.h>

#define READ_MAX        (8u << 20) /* read_file's max_bytes at most */
#define TIMEOUT_DEFAULT 30         /* seconds: below the usual 60 s of MCP clients */
#define TIMEOUT_MAX     3600

enum arg_type { ARG_STRING, ARG_PATH, ARG_ARGV, ARG_ENV, ARG_SECONDS, ARG_BYTES, ARG_MODE };

struct arg {
	const char *name;
	enum arg_type type;
	bool required;
	const char *description;
};

struct tool {
	const char *name, *title, *description;
	const struct arg *args;
	const char *one_of[2]; /* exactly one of these arguments */
	bool read_only;
	json_t *(*output_schema)(void);
	json_t *(*call)(struct mcp *m, json_t *args);
};

/* ---- results ----------------------------------------------------------------------- */

/* A result: the structured content (taken), and the same as JSON text for clients that
 * read only text (the spec's advice). */
static json_t *tool_ok(json_t *structured)
{
	_cleanup_free_ char *text = json_dumps(structured, JSON_COMPACT);
	return json_pack("{s:[{s:s, s:s}], s:o, s:b}", "content", "type", "text", "text",
	                 text ? text : "", "structuredContent", structured, "isError", 0);
}

static json_t *tool_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *tool_error(const char *fmt, ...)
{
	va_list ap;
	_cleanup_free_ char *text = NULL;
	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		abort();
	va_end(ap);
	return json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text", "text", text,
	                 "isError", 1);
}

static json_t *tool_error_take(struct warden_error *e)
{
	json_t *r = tool_error("%s", warden_error_text(e));
	warden_error_free(e);
	return r;
}

/* ---- calls ------------------------------------------------------------------------- */

static json_t *call_run(struct mcp *m, json_t *args)
{
	struct warden_error *e = NULL;
	if (mcp_sandbox_get(m, &e) < 0)
		return tool_error_take(e);
	const char *command = json_string_value(json_object_get(args, "command"));
	json_t *argv = command ? json_pack("[s, s, s]", "/bin/sh", "-c", command)
	                       : json_incref(json_object_get(args, "argv"));
	json_t *req = json_pack("{s:s, s:o}", "op", "exec", "argv", argv);
	json_t *env = json_object_get(args, "env");
	if (env) {
		json_t *list = json_array();
		const char *k;
		json_t *v;
		json_object_foreach(env, k, v)
		{
			_cleanup_free_ char *kv = xasprintf("%s=%s", k, json_string_value(v));
			json_array_append_new(list, json_string(kv));
		}
		json_object_set_new(req, "env", list);
	}
	json_t *workdir = json_object_get(args, "workdir");
	if (workdir)
		json_object_set(req, "workdir", workdir);
	json_t *t = json_object_get(args, "timeout_s");
	double timeout = t ? json_number_value(t) : TIMEOUT_DEFAULT;

	struct mcp_exec_result res = {.out.fd = -1, .err.fd = -1};
	json_t *result;
	_cleanup_free_ char *what =
	    xstrdup(command ? command : json_string_value(json_array_get(argv, 0)));
	int r = mcp_exec_run(m, req, (int)(timeout * 1000), &res, &e);
	if (r < 0 && !m->terminating && mcp_pidfd_ended(m->init_pidfd)) {
		warden_error_free(e);
		res.lost = true;
	}
	if (r < 0 && !res.lost) {
		result = tool_error_take(e);
	} else if (res.lost) {
		m->state = SANDBOX_ENDED;
		result = tool_error("the sandbox ended while running the command (its time ran "
		                    "out, or it was killed)");
	} else if (res.error) {
		result = tool_error("could not run %s: %s", what, res.error);
	} else {
		result = tool_ok(json_pack(
		    "{s:i, s:o, s:o, s:b, s:b}", "exit_code", res.code, "stdout",
		    mcp_text_json(res.out.buf, res.out.len, res.out.truncated), "stderr",
		    mcp_text_json(res.err.buf, res.err.len, res.err.truncated), "timed_out",
		    res.timed_out, "truncated", res.out.truncated || res.err.truncated));
	}
	mcp_exec_result_clear(&res);
	return result;
}

static json_t *call_file(struct mcp *m, json_t *args, mcp_file_op op)
{
	struct warden_error *e = NULL;
	if (mcp_sandbox_get(m, &e) < 0)
		return tool_error_take(e);
	json_t *r = mcp_as_sandbox_user(m, op, args, &e);
	return r ? tool_ok(r) : tool_error_take(e);
}

static json_t *call_write(struct mcp *m, json_t *args)
{
	return call_file(m, args, mcp_file_write);
}

static json_t *call_read(struct mcp *m, json_t *args)
{
	return call_file(m, args, mcp_file_read);
}

static json_t *call_list(struct mcp *m, json_t *args)
{
	return call_file(m, args, mcp_file_list);
}

/* ---- the table and its output schemas ---------------------------------------------- */

static json_t *out_run(void)
{
	return json_pack("{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}}, s:[s, s, s, s]}",
	                 "type", "object", "properties", "exit_code", "type", "integer", "stdout",
	                 "type", "string", "stderr", "type", "string", "timed_out", "type",
	                 "boolean", "truncated", "type", "boolean", "required", "exit_code",
	                 "stdout", "stderr", "timed_out");
}

static json_t *out_write(void)
{
	return json_pack("{s:s, s:{s:{s:s}, s:{s:s}}, s:[s, s]}", "type", "object", "properties",
	                 "path", "type", "string", "bytes", "type", "integer", "required", "path",
	                 "bytes");
}

static json_t *out_read(void)
{
	return json_pack("{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}}, s:[s, s, s]}", "type",
	                 "object", "properties", "path", "type", "string", "content", "type",
	                 "string", "truncated", "type", "boolean", "size", "type", "integer",
	                 "required", "path", "content", "truncated");
}

static json_t *out_list(void)
{
	json_t *entry = json_pack("{s:s, s:{s:{s:s}, s:{s:[s, s, s, s]}, s:{s:s}}, s:[s, s, s]}",
	                          "type", "object", "properties", "name", "type", "string", "type",
	                          "enum", "file", "dir", "symlink", "other", "size", "type",
	                          "integer", "required", "name", "type", "size");
	return json_pack("{s:s, s:{s:{s:s}, s:{s:s, s:o}, s:{s:s}}, s:[s]}", "type", "object",
	                 "properties", "path", "type", "string", "entries", "type", "array",
	                 "items", entry, "truncated", "type", "boolean", "required", "entries");
}

static const struct arg run_args[] = {
    {"command", ARG_STRING, false, "A shell command line, run with /bin/sh -c"},
    {"argv", ARG_ARGV, false, "A program and its arguments, run without a shell"},
    {"workdir", ARG_PATH, false, "Working directory (absolute, inside the sandbox)"},
    {"env", ARG_ENV, false, "Environment variables to set, over the sandbox's"},
    {"timeout_s", ARG_SECONDS, false,
     "Kill the command (and its process group) after this many seconds (default 30)"},
    {NULL, 0, false, NULL},
};

static const struct arg write_args[] = {
    {"path", ARG_PATH, true, "Absolute path inside the sandbox; missing parents are made"},
    {"content", ARG_STRING, true, "The file's new content (UTF-8 text)"},
    {"mode", ARG_MODE, false, "Permissions in octal, e.g. \"0755\" (new files: 0644)"},
    {NULL, 0, false, NULL},
};

static const struct arg read_args[] = {
    {"path", ARG_PATH, true, "Absolute path inside the sandbox"},
    {"max_bytes", ARG_BYTES, false, "Read at most this many bytes (default 1 MiB)"},
    {NULL, 0, false, NULL},
};

static const struct arg list_args[] = {
    {"path", ARG_PATH, true, "Absolute path of a directory inside the sandbox"},
    {NULL, 0, false, NULL},
};

static const struct tool tools[] = {
    {"run_command",
     "Run a command",
     "Run a command in this session's sandbox (an isolated Linux environment that persists "
     "between calls: files written stay). Give either `command` (a shell command line) or "
     "`argv`. Returns the exit code and the output (at most 1 MiB of each stream).",
     run_args,
     {"command", "argv"},
     false,
     out_run,
     call_run},
    {"write_file",
     "Write a file",
     "Create or replace a text file in the sandbox, making missing parent directories.",
     write_args,
     {NULL, NULL},
     false,
     out_write,
     call_write},
    {"read_file",
     "Read a file",
     "Read a text file from the sandbox (bytes that are not UTF-8 are shown as U+FFFD).",
     read_args,
     {NULL, NULL},
     true,
     out_read,
     call_read},
    {"list_files",
     "List a directory",
     "List a directory of the sandbox: each entry's name, type (file, dir, symlink, other) "
     "and size.",
     list_args,
     {NULL, NULL},
     true,
     out_list,
     call_list},
};

/* ---- input schemas and argument checks --------------------------------------------- */

static json_t *arg_schema(const struct arg *a)
{
	json_t *s;
	switch (a->type) {
	case ARG_PATH:
		s = json_pack("{s:s, s:s}", "type", "string", "pattern", "^/");
		break;
	case ARG_ARGV:
		s = json_pack("{s:s, s:{s:s}, s:i}", "type", "array", "items", "type", "string",
		              "minItems", 1);
		break;
	case ARG_ENV:
		s = json_pack("{s:s, s:{s:s}, s:{s:s}}", "type", "object", "propertyNames",
		              "pattern", "^[A-Za-z_][A-Za-z0-9_]*$", "additionalProperties", "type",
		              "string");
		break;
	case ARG_SECONDS:
		s = json_pack("{s:s, s:i, s:i}", "type", "number", "exclusiveMinimum", 0, "maximum",
		              TIMEOUT_MAX);
		break;
	case ARG_BYTES:
		s = json_pack("{s:s, s:i, s:i}", "type", "integer", "minimum", 1, "maximum",
		              (int)READ_MAX);
		break;
	case ARG_MODE:
		s = json_pack("{s:s, s:s}", "type", "string", "pattern", "^0?[0-7]{3}$");
		break;
	default:
		s = json_pack("{s:s}", "type", "string");
	}
	json_object_set_new(s, "description", json_string(a->description));
	return s;
}

static json_t *tool_json(const struct tool *t)
{
	json_t *props = json_object(), *required = json_array();
	for (const struct arg *a = t->args; a->name; a++) {
		json_object_set_new(props, a->name, arg_schema(a));
		if (a->required)
			json_array_append_new(required, json_string(a->name));
	}
	json_t *in = json_pack("{s:s, s:o, s:o, s:b}", "type", "object", "properties", props,
	                       "required", required, "additionalProperties", 0);
	if (t->one_of[0])
		json_object_set_new(in, "oneOf",
		                    json_pack("[{s:[s]}, {s:[s]}]", "required", t->one_of[0],
		                              "required", t->one_of[1]));
	return json_pack("{s:s, s:s, s:s, s:o, s:o, s:{s:s, s:b, s:b, s:b}}", "name", t->name,
	                 "title", t->title, "description", t->description, "inputSchema", in,
	                 "outputSchema", t->output_schema(), "annotations", "title", t->title,
	                 "readOnlyHint", t->read_only, "destructiveHint", !t->read_only,
	                 "openWorldHint", 0);
}

/* A string that is UTF-8 without NUL (jansson checks the UTF-8). */
static bool plain_string(json_t *v)
{
	return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
}

/* Why value does not fit the argument's schema, or NULL. */
static char *arg_check(const struct arg *a, json_t *v)
{
	const char *n = a->name;
	switch (a->type) {
	case ARG_STRING:
		return plain_string(v) ? NULL : xasprintf("%s: a string without NUL", n);
	case ARG_PATH:
		if (!plain_string(v) || json_string_value(v)[0] != '/')
			return xasprintf("%s: an absolute path (a string starting with /)", n);
		return json_string_length(v) >= 4096 ? xasprintf("%s: too long", n) : NULL;
	case ARG_ARGV: {
		size_t i;
		json_t *s;
		if (!json_is_array(v) || json_array_size(v) == 0)
			return xasprintf("%s: a non-empty array of strings", n);
		json_array_foreach(v, i, s)
		{
			if (!plain_string(s))
				return xasprintf("%s[%zu]: a string without NUL", n, i);
		}
		return NULL;
	}
	case ARG_ENV: {
		const char *k;
		json_t *s;
		if (!json_is_object(v))
			return xasprintf("%s: an object of NAME: \"value\"", n);
		json_object_foreach(v, k, s)
		{
			if (!warden_env_name_valid(k))
				return xasprintf("%s: \"%s\" is not a variable name", n, k);
			if (!plain_string(s))
				return xasprintf("%s.%s: a string without NUL", n, k);
		}
		return NULL;
	}
	case ARG_SECONDS:
		if (!json_is_number(v) || json_number_value(v) <= 0 ||
		    json_number_value(v) > TIMEOUT_MAX)
			return xasprintf("%s: a number of seconds, above 0 and at most %d", n,
			                 TIMEOUT_MAX);
		return NULL;
	case ARG_BYTES:
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > READ_MAX)
			return xasprintf("%s: an integer from 1 to %u", n, READ_MAX);
		return NULL;
	case ARG_MODE: {
		const char *s = json_string_value(v);
		size_t len = s ? strlen(s) : 0;
		bool ok = plain_string(v) && (len == 3 || (len == 4 && s[0] == '0')) &&
		          strspn(s, "01234567") == len;
		return ok ? NULL : xasprintf("%s: permissions in octal, like \"0644\"", n);
	}
	}
	return NULL;
}

/* Why args do not fit the tool's input schema, or NULL. */
static char *args_check(const struct tool *t, json_t *args)
{
	const char *k;
	json_t *v;
	json_object_foreach(args, k, v)
	{
		const struct arg *a = t->args;
		while (a->name && !streq(a->name, k))
			a++;
		if (!a->name)
			return xasprintf("%s: unknown argument \"%s\"", t->name, k);
		char *why = arg_check(a, v);
		if (why) {
			char *full = xasprintf("%s: argument %s", t->name, why);
			free(why);
			return full;
		}
	}
	for (const struct arg *a = t->args; a->name; a++)
		if (a->required && !json_object_get(args, a->name))
			return xasprintf("%s: missing argument \"%s\"", t->name, a->name);
	if (t->one_of[0] &&
	    !json_object_get(args, t->one_of[0]) == !json_object_get(args, t->one_of[1]))
		return xasprintf("%s: give exactly one of \"%s\" and \"%s\"", t->name, t->one_of[0],
		                 t->one_of[1]);
	return NULL;
}

/* ---- tools/list and tools/call ----------------------------------------------------- */

json_t *mcp_tools_json(void)
{
	json_t *list = json_array();
	for (size_t i = 0; i < ARRAY_SIZE(tools); i++)
		json_array_append_new(list, tool_json(&tools[i]));
	return list;
}

json_t *mcp_tool_call(struct mcp *m, const char *name, json_t *args, char **ret_why)
{
	const struct tool *t = NULL;
	*ret_why = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(tools); i++)
		if (streq(tools[i].name, name))
			t = &tools[i];
	if (!t) {
		*ret_why = xasprintf("Unknown tool: %s", name);
		return NULL;
	}
	if (args && !json_is_object(args)) {
		*ret_why = xasprintf("%s: params.arguments: an object", name);
		return NULL;
	}
	json_t *empty = args ? NULL : json_object();
	*ret_why = args_check(t, args ? args : empty);
	json_t *r = *ret_why ? NULL : t->call(m, args ? args : empty);
	json_decref(empty);
	return r;
}
