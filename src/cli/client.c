/* client.c: the verbs that drive wardend through its HTTP API (docs/api.yaml): create,
 * exec, ps, rm, pause, resume, logs, events. cp is client-cp.c's; how wardend is reached,
 * client-http.c's (client.h).
 *
 * Sections: create; exec; ps, rm, pause, resume, logs, events.
 */
#define _GNU_SOURCE
#include "client.h"

#include <event2/bufferevent.h>
#include <event2/http.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>

/* ---- create ------------------------------------------------------------------------ */

/* "K=V" into obj[K] = V; "K" alone takes V from our environment when with_env. */
static int add_pair(json_t *obj, const char *kv, const char *what, bool with_env)
{
	const char *eq = strchr(kv, '=');
	_cleanup_free_ char *k = strndup(kv, eq ? (size_t)(eq - kv) : strlen(kv));
	const char *v = eq ? eq + 1 : with_env ? getenv(k) : NULL;
	if (!*k || (!eq && !with_env))
		return cli_failf("%s \"%s\": expected KEY=VALUE", what, kv);
	if (!v)
		return 0; /* -e NAME with NAME unset here: nothing to pass */
	json_t *s = json_string(v);
	if (!s)
		return cli_failf("%s \"%s\": not UTF-8", what, kv);
	json_object_set_new(obj, k, s);
	return 0;
}

static const char create_usage[] =
    "usage: warden create [OPTIONS]\n"
    "\n"
    "Create a long-lived sandbox in wardend and print its id.\n"
    "\n"
    "  --policy NAME|FILE   a preset (default, strict), a policy stored in wardend, or a\n"
    "                       YAML policy file (sent inline)\n"
    "  --ttl SECONDS        destroy it after this long (wardend's default: 3600)\n"
    "  --label KEY=VALUE    a label (repeatable; 'warden ps --label' selects by them)\n"
    "  -e, --env NAME[=VALUE]  an environment variable for every command run in it\n"
    "  --json               print the whole sandbox object instead of its id\n";

static bool looks_like_file(const char *p)
{
	struct stat st;
	size_t n = strlen(p);
	return strchr(p, '/') || (n > 5 && streq(p + n - 5, ".yaml")) ||
	       (n > 4 && streq(p + n - 4, ".yml")) || (stat(p, &st) == 0 && S_ISREG(st.st_mode));
}

int cmd_create(int argc, char **argv)
{
	static const struct option opts[] = {
	    COMMON_OPTIONS{"policy", required_argument, NULL, OPT_POLICY},
	    {"ttl", required_argument, NULL, OPT_TTL},
	    {"label", required_argument, NULL, OPT_LABEL},
	    {"env", required_argument, NULL, 'e'},
	    {"json", no_argument, NULL, OPT_JSON},
	    {NULL, 0, NULL, 0},
	};
	struct client c = {.verb = "create"};
	_cleanup_json_ json_t *req = json_object();
	json_t *labels = json_object(), *env = json_object();
	json_object_set_new(req, "labels", labels);
	json_object_set_new(req, "env", env);
	bool as_json = false;
	const char *reason;
	int o;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "e:h", opts, NULL)) != -1) {
		if (client_option(&c, o, optarg))
			continue;
		switch (o) {
		case OPT_POLICY:
			if (looks_like_file(optarg)) {
				_cleanup_error_ struct warden_error *e = NULL;
				_cleanup_free_ char *yaml = NULL;
				size_t len;
				if (read_small_file(optarg, 1 << 20, "policy file", &yaml, &len,
				                    &e) < 0)
					return cli_failf("create: --policy: %s",
					                 warden_error_text(e));
				json_t *s = json_stringn(yaml, len);
				if (!s)
					return cli_failf("create: --policy: %s: not UTF-8 text",
					                 optarg);
				json_object_set_new(req, "policy_yaml", s);
			} else {
				json_object_set_new(req, "policy", json_string(optarg));
			}
			break;
		case OPT_TTL: {
			uint64_t ttl = 0;
			if (parse_uint(optarg, INT32_MAX, &ttl, &reason) < 0 || !ttl)
				return cli_failf("create: --ttl \"%s\": %s", optarg,
				                 ttl ? reason : "must be a number of seconds > 0");
			json_object_set_new(req, "ttl", json_integer((json_int_t)ttl));
			break;
		}
		case OPT_LABEL:
			if (add_pair(labels, optarg, "create: --label", false))
				return EXIT_WARDEN;
			break;
		case 'e':
			if (add_pair(env, optarg, "create: --env", true))
				return EXIT_WARDEN;
			break;
		case OPT_JSON:
			as_json = true;
			break;
		default:
			return client_usage_error("create", create_usage, o, argv);
		}
	}
	if (optind != argc)
		return cli_failf("create: unexpected argument \"%s\" (try 'warden create --help')",
		                 argv[optind]);
	if (client_init(&c))
		return EXIT_WARDEN;
	_cleanup_json_ json_t *sb = NULL;
	int r = http_call(&c, "POST", "/v1/sandboxes", req, &sb, NULL);
	if (r == 0) {
		const char *id = json_string_value(json_object_get(sb, "id"));
		if (as_json) {
			_cleanup_free_ char *s =
			    json_dumps(sb, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
			printf("%s\n", s);
		} else if (id) {
			printf("%s\n", id);
		} else {
			r = cli_failf("create: wardend answered without an id");
		}
	}
	client_done(&c);
	return r;
}

/* ---- exec -------------------------------------------------------------------------- */

static const char exec_usage[] =
    "usage: warden exec [OPTIONS] ID [--] CMD [ARGS...]\n"
    "\n"
    "Run CMD in sandbox ID, streaming its output here as it is written, and exit with its\n"
    "status (128+N if killed by signal N, 124 on --timeout). SIGINT, SIGTERM and SIGHUP\n"
    "received here are passed on to the command.\n"
    "\n"
    "  -i, --interactive        send our standard input to the command (read to its end\n"
    "                           first: the API carries it as one UTF-8 text)\n"
    "  -e, --env NAME[=VALUE]   add a variable (from here when no VALUE)\n"
    "  -w, --workdir PATH       working directory inside\n"
    "  -t, --timeout SECONDS    kill the command after this long\n";

struct exec_state {
	struct client *c;
	const char *id;
	struct evbuffer *line; /* an unfinished NDJSON line */
	json_int_t exec_id;    /* -1 until "started" */
	int pending_signal;
	bool exited, timed_out;
	json_int_t exit_code;
};

/* Ask wardend to signal the exec: a separate exchange on a loop of its own, so that the
 * streamed answer waits in the socket meanwhile. */
static void exec_signal(struct exec_state *st, int sig)
{
	struct client k = *st->c;
	k.base = event_base_new();
	if (!k.base)
		return;
	char suffix[64];
	snprintf(suffix, sizeof(suffix), "/exec/%lld/kill", (long long)st->exec_id);
	_cleanup_free_ char *path = client_sandbox_path(st->id, suffix);
	_cleanup_json_ json_t *req = json_pack("{s:i}", "signal", sig);
	http_call(&k, "POST", path, req, NULL, st->id);
	event_base_free(k.base);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	struct exec_state *st = arg;
	if (st->exec_id < 0)
		st->pending_signal = (int)sig;
	else
		exec_signal(st, (int)sig);
}

static int exec_event(struct http *h, struct exec_state *st, const char *line, size_t len)
{
	json_error_t je;
	_cleanup_json_ json_t *ev = json_loadb(line, len, 0, &je);
	const char *type = json_string_value(json_object_get(ev, "type"));
	if (!type) {
		http_why(h, 0,
		         "wardend sent an exec event that is not a JSON object with a type: %s",
		         je.text);
		return -1;
	}
	json_t *data = json_object_get(ev, "data");
	if (streq(type, "started")) {
		st->exec_id = json_integer_value(json_object_get(ev, "exec_id"));
		if (st->pending_signal)
			exec_signal(st, st->pending_signal);
	} else if ((streq(type, "stdout") || streq(type, "stderr")) && json_is_string(data)) {
		int fd = streq(type, "stdout") ? STDOUT_FILENO : STDERR_FILENO;
		if (client_write_all(fd, json_string_value(data), json_string_length(data)) < 0) {
			if (errno == EPIPE) { /* as in a pipeline: the writer gets SIGPIPE */
				exec_signal(st, SIGPIPE);
				client_die_of_sigpipe();
			}
			http_why(h, errno, "writing the command's %s", type);
			return -1;
		}
	} else if (streq(type, "exit")) {
		const char *error = json_string_value(json_object_get(ev, "error"));
		st->exited = true;
		st->exit_code = json_integer_value(json_object_get(ev, "exit_code"));
		st->timed_out = json_is_true(json_object_get(ev, "timed_out"));
		if (error) /* the command could not be started (exit 127) */
			fprintf(stderr, "warden: exec: %s\n", error);
	}
	return 0;
}

static int exec_sink(struct http *h, const char *data, size_t len)
{
	struct exec_state *st = h->arg;
	evbuffer_add(st->line, data, len);
	size_t n;
	char *line;
	while ((line = evbuffer_readln(st->line, &n, EVBUFFER_EOL_LF))) {
		int r = n ? exec_event(h, st, line, n) : 0;
		free(line);
		if (r < 0)
			return -1;
	}
	return 0;
}

int cmd_exec(int argc, char **argv)
{
	static const struct option opts[] = {
	    COMMON_OPTIONS{"interactive", no_argument, NULL, 'i'},
	    {"env", required_argument, NULL, 'e'},
	    {"workdir", required_argument, NULL, 'w'},
	    {"timeout", required_argument, NULL, 't'},
	    {NULL, 0, NULL, 0},
	};
	struct client c = {.verb = "exec"};
	_cleanup_json_ json_t *req = json_object();
	json_t *env = json_object();
	bool interactive = false;
	const char *reason;
	int o;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "+ie:w:t:h", opts, NULL)) != -1) {
		if (client_option(&c, o, optarg))
			continue;
		switch (o) {
		case 'i':
			interactive = true;
			break;
		case 'e':
			if (add_pair(env, optarg, "exec: --env", true))
				return EXIT_WARDEN;
			break;
		case 'w':
			if (optarg[0] != '/')
				return cli_failf("exec: --workdir \"%s\": not an absolute path",
				                 optarg);
			json_object_set_new(req, "workdir", json_string(optarg));
			break;
		case 't': {
			uint64_t ms = 0;
			if (parse_milli(optarg, &ms, &reason) < 0 || !ms)
				return cli_failf("exec: --timeout \"%s\": %s", optarg,
				                 ms ? reason : "must be a number of seconds > 0");
			json_object_set_new(req, "timeout",
			                    ms % 1000 ? json_real((double)ms / 1e3)
			                              : json_integer(ms / 1000));
			break;
		}
		default:
			return client_usage_error("exec", exec_usage, o, argv);
		}
	}
	if (optind >= argc)
		return cli_failf(
		    "exec: which sandbox? (usage: warden exec [OPTIONS] ID -- CMD...)");
	const char *id = argv[optind++];
	if (optind < argc && streq(argv[optind], "--"))
		optind++;
	if (optind >= argc)
		return cli_failf("exec: no command (usage: warden exec [OPTIONS] ID -- CMD...)");
	json_t *cmd = json_array();
	json_object_set_new(req, "cmd", cmd);
	for (int i = optind; i < argc; i++) {
		json_t *a = json_string(argv[i]);
		if (!a)
			return cli_failf("exec: argument \"%s\" is not UTF-8", argv[i]);
		json_array_append_new(cmd, a);
	}
	if (json_object_size(env))
		json_object_set(req, "env", env);
	json_decref(env);
	if (interactive) {
		_cleanup_evbuffer_ struct evbuffer *in = evbuffer_new();
		if (client_read_stdin(in) < 0)
			return cli_failf("exec: -i: reading standard input: %s", strerror(errno));
		json_t *s =
		    json_stringn((const char *)evbuffer_pullup(in, -1), evbuffer_get_length(in));
		if (!s)
			return cli_failf("exec: -i: standard input is not UTF-8 text (the API "
			                 "carries it as a JSON string)");
		json_object_set_new(req, "stdin", s);
	}
	if (client_init(&c))
		return EXIT_WARDEN;

	struct exec_state st = {.c = &c, .id = id, .line = evbuffer_new(), .exec_id = -1};
	struct event *sigs[3];
	const int signals[3] = {SIGINT, SIGTERM, SIGHUP};
	for (size_t i = 0; i < ARRAY_SIZE(signals); i++) {
		sigs[i] = evsignal_new(c.base, signals[i], on_signal, &st);
		evsignal_add(sigs[i], NULL);
	}
	_cleanup_free_ char *s = json_dumps(req, JSON_COMPACT);
	_cleanup_evbuffer_ struct evbuffer *body = evbuffer_new();
	evbuffer_add(body, s, strlen(s));
	_cleanup_free_ char *path = client_sandbox_path(id, "/exec");
	struct http h = {.sink = exec_sink, .arg = &st};
	int r = 0;
	if (http_start(&h, &c, "POST", path, "application/x-ndjson", "application/json", body) <
	        0 ||
	    http_wait(&h) < 0) {
		r = http_fail(&h, id);
	} else if (evbuffer_get_length(st.line) &&
	           exec_sink(&h, "\n", 1) < 0) { /* a last line without its newline */
		r = http_fail(&h, id);
	} else if (!st.exited) {
		r = cli_failf("exec: sandbox %s: the stream ended before the command's exit", id);
	} else if (st.timed_out) {
		fprintf(stderr, "warden: exec: timeout: the command was killed\n");
		r = EXIT_TIMEOUT;
	} else {
		r = st.exit_code < 0 || st.exit_code > 255 ? EXIT_WARDEN : (int)st.exit_code;
	}
	http_done(&h);
	for (size_t i = 0; i < ARRAY_SIZE(signals); i++)
		event_free(sigs[i]);
	evbuffer_free(st.line);
	client_done(&c);
	return r;
}

/* ---- ps, rm, pause, resume, logs, events ------------------------------------------- */

static const char ps_usage[] = "usage: warden ps [OPTIONS]\n"
                               "\n"
                               "List wardend's sandboxes.\n"
                               "\n"
                               "  --label KEY=VALUE   only those with this label (repeatable)\n"
                               "  -q, --quiet         only their ids\n"
                               "  --json              as a JSON array\n";

static void print_labels(json_t *labels)
{
	const char *k;
	json_t *v;
	bool first = true;
	json_object_foreach(labels, k, v)
	{
		printf("%s%s=%s", first ? "" : ",", k,
		       json_string_value(v) ? json_string_value(v) : "");
		first = false;
	}
	if (first)
		fputs("-", stdout);
}

static const char *str_or(json_t *obj, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(obj, key));
	return s ? s : dflt;
}

int cmd_ps(int argc, char **argv)
{
	static const struct option opts[] = {
	    COMMON_OPTIONS{"label", required_argument, NULL, OPT_LABEL},
	    {"quiet", no_argument, NULL, 'q'},
	    {"json", no_argument, NULL, OPT_JSON},
	    {NULL, 0, NULL, 0},
	};
	struct client c = {.verb = "ps"};
	_cleanup_evbuffer_ struct evbuffer *query = evbuffer_new();
	bool quiet = false, as_json = false;
	int o;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
		if (client_option(&c, o, optarg))
			continue;
		switch (o) {
		case OPT_LABEL: {
			if (!strchr(optarg, '=') || optarg[0] == '=')
				return cli_failf("ps: --label \"%s\": expected KEY=VALUE", optarg);
			_cleanup_free_ char *enc = evhttp_uriencode(optarg, -1, 0);
			evbuffer_add_printf(query, "%slabel=%s",
			                    evbuffer_get_length(query) ? "&" : "?", enc);
			break;
		}
		case 'q':
			quiet = true;
			break;
		case OPT_JSON:
			as_json = true;
			break;
		default:
			return client_usage_error("ps", ps_usage, o, argv);
		}
	}
	if (optind != argc)
		return cli_failf("ps: unexpected argument \"%s\"", argv[optind]);
	if (client_init(&c))
		return EXIT_WARDEN;
	evbuffer_add(query, "", 1);
	_cleanup_free_ char *path =
	    xasprintf("/v1/sandboxes%s", (const char *)evbuffer_pullup(query, -1));
	_cleanup_json_ json_t *ans = NULL;
	int r = http_call(&c, "GET", path, NULL, &ans, NULL);
	client_done(&c);
	if (r)
		return r;
	json_t *list = json_object_get(ans, "sandboxes");
	if (as_json) {
		_cleanup_free_ char *s =
		    json_dumps(list ? list : json_array(), JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("%s\n", s);
		return 0;
	}
	if (!quiet)
		printf("%-16s  %-10s  %-7s  %-20s  %-20s  %s\n", "ID", "POLICY", "STATE", "CREATED",
		       "EXPIRES", "LABELS");
	size_t i;
	json_t *sb;
	json_array_foreach(list, i, sb)
	{
		if (quiet) {
			printf("%s\n", str_or(sb, "id", "?"));
			continue;
		}
		printf("%-16s  %-10s  %-7s  %-20s  %-20s  ", str_or(sb, "id", "?"),
		       str_or(sb, "policy", "-"), str_or(sb, "state", "-"),
		       str_or(sb, "created_at", "-"), str_or(sb, "expires_at", "-"));
		print_labels(json_object_get(sb, "labels"));
		putchar('\n');
	}
	return 0;
}

/* `warden VERB ID...`: one request per id (method, suffix); every id is tried, and the
 * status is 125 if any failed. */
static int per_id(const char *verb, const char *method, const char *suffix, int argc, char **argv)
{
	static const struct option opts[] = {COMMON_OPTIONS{NULL, 0, NULL, 0}};
	struct client c = {.verb = verb};
	_cleanup_free_ char *usage =
	    xasprintf("usage: warden %s [OPTIONS] ID...\n\n%s the sandboxes named.\n", verb,
	              streq(verb, "rm")      ? "Destroy"
	              : streq(verb, "pause") ? "Freeze every process of"
	                                     : "Thaw");
	int o;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1)
		if (!client_option(&c, o, optarg))
			return client_usage_error(verb, usage, o, argv);
	if (optind >= argc)
		return cli_failf("%s: which sandbox? (usage: warden %s ID...)", verb, verb);
	if (client_init(&c))
		return EXIT_WARDEN;
	int r = 0;
	for (int i = optind; i < argc; i++) {
		_cleanup_free_ char *path = client_sandbox_path(argv[i], suffix);
		if (http_call(&c, method, path, NULL, NULL, argv[i]))
			r = EXIT_WARDEN;
	}
	client_done(&c);
	return r;
}

int cmd_rm(int argc, char **argv)
{
	return per_id("rm", "DELETE", NULL, argc, argv);
}

int cmd_pause(int argc, char **argv)
{
	return per_id("pause", "POST", "/pause", argc, argv);
}

int cmd_resume(int argc, char **argv)
{
	return per_id("resume", "POST", "/resume", argc, argv);
}

/* Options and one ID, for logs and events. Returns 0 and *ret_id, -1 after help, or
 * EXIT_WARDEN. */
static int one_id(struct client *c, const char *usage, int argc, char **argv, bool *as_json,
                  const char **ret_id)
{
	static const struct option opts[] = {
	    COMMON_OPTIONS{"json", no_argument, NULL, OPT_JSON},
	    {NULL, 0, NULL, 0},
	};
	int o;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (client_option(c, o, optarg))
			continue;
		if (o == OPT_JSON && as_json) {
			*as_json = true;
			continue;
		}
		int r = client_usage_error(c->verb, usage, o, argv);
		return r ? r : -1;
	}
	if (argc - optind != 1)
		return cli_failf("%s: expected one sandbox id (usage: warden %s ID)", c->verb,
		                 c->verb);
	*ret_id = argv[optind];
	return client_init(c) ? EXIT_WARDEN : 0;
}

static const char logs_usage[] = "usage: warden logs [OPTIONS] ID\n"
                                 "\n"
                                 "The commands run in sandbox ID, with their exit statuses.\n"
                                 "\n"
                                 "  --json   as a JSON array\n";

int cmd_logs(int argc, char **argv)
{
	struct client c = {.verb = "logs"};
	bool as_json = false;
	const char *id = NULL;
	int r = one_id(&c, logs_usage, argc, argv, &as_json, &id);
	if (r)
		return r < 0 ? 0 : r;
	_cleanup_free_ char *path = client_sandbox_path(id, "/logs");
	_cleanup_json_ json_t *ans = NULL;
	r = http_call(&c, "GET", path, NULL, &ans, id);
	client_done(&c);
	if (r)
		return r;
	json_t *execs = json_object_get(ans, "execs");
	if (as_json) {
		_cleanup_free_ char *s =
		    json_dumps(execs ? execs : json_array(), JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("%s\n", s);
		return 0;
	}
	printf("%-6s  %-5s  %-24s  %-24s  %s\n", "EXEC", "EXIT", "STARTED", "ENDED", "COMMAND");
	size_t i, j;
	json_t *x, *a;
	json_array_foreach(execs, i, x)
	{
		json_t *code = json_object_get(x, "exit_code");
		char exit_s[24] = "-";
		if (json_is_integer(code))
			snprintf(exit_s, sizeof(exit_s), "%lld",
			         (long long)json_integer_value(code));
		printf("%-6lld  %-5s  %-24s  %-24s  ",
		       (long long)json_integer_value(json_object_get(x, "exec_id")), exit_s,
		       str_or(x, "started_at", "-"), str_or(x, "ended_at", "-"));
		json_array_foreach(json_object_get(x, "cmd"), j, a)
		{
			printf("%s%s", j ? " " : "",
			       json_string_value(a) ? json_string_value(a) : "");
		}
		putchar('\n');
	}
	return 0;
}

static const char events_usage[] =
    "usage: warden events [OPTIONS] ID\n"
    "\n"
    "Stream sandbox ID's telemetry events as they happen, one JSON object a line\n"
    "(docs/events.md), until the sandbox ends or this is interrupted.\n";

struct sse {
	struct evbuffer *line, *data;
};

/* Server-sent events: "data:" lines gather until a blank line; each event's data is
 * printed as one line. */
static int events_sink(struct http *h, const char *chunk, size_t len)
{
	struct sse *s = h->arg;
	evbuffer_add(s->line, chunk, len);
	size_t n;
	char *line;
	while ((line = evbuffer_readln(s->line, &n, EVBUFFER_EOL_CRLF))) {
		if (n == 0 && evbuffer_get_length(s->data)) {
			evbuffer_add(s->data, "\n", 1);
			size_t dl = evbuffer_get_length(s->data);
			int r = client_write_all(STDOUT_FILENO,
			                         (const char *)evbuffer_pullup(s->data, -1), dl);
			evbuffer_drain(s->data, dl);
			if (r < 0 && errno == EPIPE)
				client_die_of_sigpipe();
			if (r < 0) {
				free(line);
				http_why(h, errno, "writing the events");
				return -1;
			}
		} else if (!strncmp(line, "data:", 5)) {
			const char *v = line + 5 + (line[5] == ' ');
			if (evbuffer_get_length(s->data))
				evbuffer_add(s->data, "\n", 1);
			evbuffer_add(s->data, v, strlen(v));
		}
		free(line);
	}
	return 0;
}

int cmd_events(int argc, char **argv)
{
	struct client c = {.verb = "events"};
	const char *id = NULL;
	int r = one_id(&c, events_usage, argc, argv, NULL, &id);
	if (r)
		return r < 0 ? 0 : r;
	_cleanup_free_ char *path = client_sandbox_path(id, "/events");
	struct sse s = {.line = evbuffer_new(), .data = evbuffer_new()};
	struct http h = {.sink = events_sink, .arg = &s};
	if (http_start(&h, &c, "GET", path, "text/event-stream", NULL, NULL) < 0 ||
	    http_wait(&h) < 0)
		r = http_fail(&h, id);
	http_done(&h);
	evbuffer_free(s.line);
	evbuffer_free(s.data);
	client_done(&c);
	return r;
}
