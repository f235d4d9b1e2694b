/* main.c: wardend's entry point: options, tokens, start, signals, stop; small helpers
 * shared by the daemon's files.
 *
 * Sections: helpers; options; tokens; start; stop; main.
 */
#define _GNU_SOURCE
#include "wardend.h"
#include "../lib/policy.h"

#include <event2/event.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

struct wardend wd;

/* ---- helpers ----------------------------------------------------------------------- */

int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

const char *rfc3339(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (!gmtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "1970-01-01T00:00:00Z");
	return buf;
}

/* ---- options ----------------------------------------------------------------------- */

static const char usage[] =
    "usage: wardend [OPTIONS]\n"
    "\n"
    "The warden daemon: an HTTP API (docs/api.yaml) to create sandboxes, run commands in\n"
    "them, move files in and out, and watch them. Every sandbox runs under its own\n"
    "supervisor (warden supervise): they outlive wardend, which finds them again at start.\n"
    "\n"
    "  --socket PATH         the unix socket (default /run/warden/warden.sock)\n"
    "  --listen HOST:PORT    also serve TCP; needs --token-file\n"
    "  --token-file FILE     bearer tokens for TCP: one per line, `TOKEN [quota=N]`\n"
    "  --state-dir DIR       state: wardend.db, events (default /var/lib/warden/wardend)\n"
    "  --warden PATH         the warden binary (default: the one next to wardend)\n"
    "  --policies DIR        stored policies, NAME.yaml, created by name\n"
    "  --pool POLICY=N       keep N sandboxes of POLICY started (repeatable)\n"
    "  --max-sandboxes N     at most N sandboxes at once (default 256; 0: no limit)\n"
    "  --max-ttl SECONDS     the longest TTL a create may ask for (default 86400)\n"
    "  --max-body SIZE       the largest request body (default 64M)\n"
    "  --trust-inline-policies  let inline policies name host paths, share the host's\n"
    "                        network and pass wardend's environment on (env_pass)\n"
    "  --audit-log FILE      passed to every supervisor\n"
    "  --audit-key FILE      passed to every supervisor\n"
    "  --routes              print the routes served, one a line, and exit:\n"
    "                        `METHOD PATH [QUERY,PARAMETERS]`\n"
    "  -h, --help, --version\n";

enum {
	OPT_SOCKET = 256,
	OPT_LISTEN,
	OPT_TOKEN_FILE,
	OPT_STATE_DIR,
	OPT_WARDEN,
	OPT_POLICIES,
	OPT_POOL,
	OPT_MAX_SANDBOXES,
	OPT_MAX_TTL,
	OPT_MAX_BODY,
	OPT_TRUST_INLINE,
	OPT_AUDIT_LOG,
	OPT_AUDIT_KEY,
	OPT_ROUTES,
	OPT_VERSION,
};

static const struct option options[] = {
    {"socket", required_argument, NULL, OPT_SOCKET},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
    {"state-dir", required_argument, NULL, OPT_STATE_DIR},
    {"warden", required_argument, NULL, OPT_WARDEN},
    {"policies", required_argument, NULL, OPT_POLICIES},
    {"pool", required_argument, NULL, OPT_POOL},
    {"max-sandboxes", required_argument, NULL, OPT_MAX_SANDBOXES},
    {"max-ttl", required_argument, NULL, OPT_MAX_TTL},
    {"max-body", required_argument, NULL, OPT_MAX_BODY},
    {"trust-inline-policies", no_argument, NULL, OPT_TRUST_INLINE},
    {"audit-log", required_argument, NULL, OPT_AUDIT_LOG},
    {"audit-key", required_argument, NULL, OPT_AUDIT_KEY},
    {"routes", no_argument, NULL, OPT_ROUTES},
    {"version", no_argument, NULL, OPT_VERSION},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;
	fputs("wardend: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

static int add_pool(const char *spec)
{
	const char *eq = strrchr(spec, '=');
	uint64_t n;
	const char *why = NULL;
	if (!eq || eq == spec || parse_uint(eq + 1, 64, &n, &why) < 0 || n == 0)
		return fail("--pool %s: expected POLICY=N (N from 1 to 64)", spec);
	wd.pools = xrealloc(wd.pools, (wd.n_pools + 1) * sizeof(*wd.pools));
	wd.pools[wd.n_pools++] = (struct pool){.policy = xasprintf("%.*s", (int)(eq - spec), spec),
	                                       .target = (unsigned)n};
	return 0;
}

static int parse_options(int argc, char **argv, bool *ret_routes)
{
	uint64_t v;
	const char *why = NULL;
	int c;
	wd.socket_path = "/run/warden/warden.sock";
	wd.state_dir = "/var/lib/warden/wardend";
	wd.max_sandboxes = 256;
	wd.max_ttl = 86400;
	wd.max_body = 64u << 20;
	while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (c) {
		case OPT_SOCKET:
			wd.socket_path = optarg;
			break;
		case OPT_LISTEN:
			wd.listen = optarg;
			break;
		case OPT_TOKEN_FILE:
			wd.token_file = optarg;
			break;
		case OPT_STATE_DIR:
			wd.state_dir = optarg;
			break;
		case OPT_WARDEN:
			wd.warden = optarg;
			break;
		case OPT_POLICIES:
			wd.policies_dir = optarg;
			break;
		case OPT_POOL:
			if (add_pool(optarg))
				return 1;
			break;
		case OPT_MAX_SANDBOXES:
			if (parse_uint(optarg, 1u << 20, &v, &why) < 0)
				return fail("--max-sandboxes %s: %s", optarg, why);
			wd.max_sandboxes = (unsigned)v;
			break;
		case OPT_MAX_TTL:
			if (parse_uint(optarg, 366 * 86400, &v, &why) < 0 || v == 0)
				return fail("--max-ttl %s: %s", optarg, why ? why : "must be > 0");
			wd.max_ttl = (int64_t)v;
			break;
		case OPT_MAX_BODY:
			if (parse_size(optarg, &v, &why) < 0 || v < 1024 || v > (1u << 30))
				return fail("--max-body %s: %s", optarg,
				            why ? why : "must be from 1K to 1G");
			wd.max_body = (size_t)v;
			break;
		case OPT_TRUST_INLINE:
			wd.trust_inline_policies = true;
			break;
		case OPT_AUDIT_LOG:
			wd.audit_log = optarg;
			break;
		case OPT_AUDIT_KEY:
			wd.audit_key = optarg;
			break;
		case OPT_ROUTES:
			*ret_routes = true;
			break;
		case OPT_VERSION:
			printf("wardend %s\n", WARDEN_VERSION);
			exit(0);
		case 'h':
			fputs(usage, stdout);
			exit(0);
		default:
			fputs(usage, stderr);
			return 1;
		}
	}
	if (optind < argc)
		return fail("unexpected argument \"%s\"", argv[optind]);
	/* Tokens travel in every TCP request: TCP without them would be an open door. */
	if (wd.listen && !wd.token_file)
		return fail("--listen needs --token-file (TCP requests must carry a bearer token)");
	return 0;
}

/* ---- tokens ------------------------------------------------------------------------ */

static int load_tokens(const char *path)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	struct stat st;
	if (!f || fstat(fileno(f), &st) < 0)
		return fail("--token-file %s: %s", path, strerror(errno));
	/* Anyone who can read the file can use the API: it is a secret, kept as one. */
	if (st.st_mode & 077)
		return fail("--token-file %s: readable by others (mode %04o); chmod 600 it", path,
		            (unsigned)(st.st_mode & 07777));
	char line[1024];
	for (int lineno = 1; fgets(line, sizeof(line), f); lineno++) {
		char *save = NULL, *tok = strtok_r(line, " \t\r\n", &save), *opt;
		if (!tok || tok[0] == '#')
			continue;
		if (strlen(tok) < 16)
			return fail("%s:%d: a token shorter than 16 characters", path, lineno);
		struct token t = {0};
		while ((opt = strtok_r(NULL, " \t\r\n", &save))) {
			uint64_t q;
			const char *why = NULL;
			if (strncmp(opt, "quota=", 6) ||
			    parse_uint(opt + 6, 1u << 20, &q, &why) < 0)
				return fail("%s:%d: \"%s\": expected quota=N", path, lineno, opt);
			t.quota = (unsigned)q;
		}
		unsigned int n = 0;
		EVP_Digest(tok, strlen(tok), t.digest, &n, EVP_sha256(), NULL);
		for (int i = 0; i < 8; i++)
			sprintf(t.id + 2 * i, "%02x", t.digest[i]);
		explicit_bzero(line, sizeof(line));
		wd.tokens = xrealloc(wd.tokens, (wd.n_tokens + 1) * sizeof(*wd.tokens));
		wd.tokens[wd.n_tokens++] = t;
	}
	if (!wd.n_tokens)
		return fail("--token-file %s: no tokens", path);
	return 0;
}

/* ---- start ------------------------------------------------------------------------- */

static char *default_warden(void)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return xstrdup("warden");
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	return xasprintf("%s/warden", self);
}

static int make_dir(const char *path)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return fail("%s: %s", path, strerror(errno));
	return 0;
}

static int make_dirs(const char *path)
{
	_cleanup_free_ char *p = xstrdup(path);
	for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return fail("%s: %s", p, strerror(errno));
		*s = '/';
	}
	return make_dir(p);
}

static int check_pools(void)
{
	for (size_t i = 0; i < wd.n_pools; i++) {
		const char *name = wd.pools[i].policy;
		_cleanup_free_ char *stored =
		    wd.policies_dir ? xasprintf("%s/%s.yaml", wd.policies_dir, name) : NULL;
		if (!streq(name, "default") && !warden_preset_text(name) &&
		    !(stored && access(stored, R_OK) == 0))
			return fail("--pool %s: no preset or stored policy of that name", name);
	}
	return 0;
}

/* ---- stop -------------------------------------------------------------------------- */

static struct event *stop_timer;
static int64_t stop_deadline;

static void stop_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	if (sandboxes_settled() || mono_us() > stop_deadline)
		event_base_loopbreak(wd.base);
}

/* SIGTERM, SIGINT: stop accepting, let the creates under way be recorded (so that their
 * sandboxes are found at the next start), and leave: every sandbox keeps running. */
static void on_stop(evutil_socket_t sig, short what, void *arg)
{
	(void)what, (void)arg;
	if (wd.stopping)
		return;
	fprintf(stderr, "wardend: %s: stopping; sandboxes keep running\n", strsignal((int)sig));
	http_stop();
	api_events_stop_all();
	sandboxes_stop();
	stop_deadline = mono_us() + 5 * 1000000;
	stop_timer = event_new(wd.base, -1, EV_PERSIST, stop_tick, NULL);
	struct timeval tv = {.tv_usec = 20000};
	event_add(stop_timer, &tv);
}

static void on_sigchld(evutil_socket_t sig, short what, void *arg)
{
	(void)sig, (void)what, (void)arg;
	spawn_sigchld();
}

/* ---- main -------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	bool routes = false;
	if (parse_options(argc, argv, &routes))
		return 1;
	if (routes) {
		for (size_t r = 0; r < R_MAX; r++) {
			printf("%s %s", api_routes[r].method, api_routes[r].pattern);
			for (size_t i = 0;
			     i < ARRAY_SIZE(api_routes[r].query) && api_routes[r].query[i]; i++)
				printf("%s%s", i ? "," : " ", api_routes[r].query[i]);
			putchar('\n');
		}
		return 0;
	}
	if (wd.token_file && load_tokens(wd.token_file))
		return 1;
	if (check_pools())
		return 1;
	wd.warden = wd.warden ? xstrdup(wd.warden) : default_warden();
	if (access(wd.warden, X_OK) < 0)
		return fail("%s: %s (say where warden is with --warden)", wd.warden,
		            strerror(errno));

	/* The files API acts with the sandbox user's fsuid/fsgid (src/lib/files.c); the
	 * supplementary groups are per process, so they go here, once: with root's groups
	 * kept, files of those groups would stay open to the API whatever the fsgid. */
	if (geteuid() == 0 && setgroups(0, NULL) < 0)
		return fail("setgroups: %s", strerror(errno));
	umask(077);
	signal(SIGPIPE, SIG_IGN);
	/* Each sandbox and each command running holds a few descriptors here. */
	struct rlimit nofile;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
		nofile.rlim_cur = nofile.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &nofile);
	}
	/* `warden supervise` leaves its supervisor behind and exits: as a subreaper, wardend
	 * inherits and reaps them while it runs (after it, they go to init, as before). */
	(void)prctl(PR_SET_CHILD_SUBREAPER, 1);

	wd.events_dir = xasprintf("%s/events", wd.state_dir);
	wd.policies_tmp_dir = xasprintf("%s/policies", wd.state_dir);
	if (make_dirs(wd.state_dir) || make_dir(wd.events_dir) || make_dir(wd.policies_tmp_dir))
		return 1;
	_cleanup_free_ char *db = xasprintf("%s/wardend.db", wd.state_dir);
	struct warden_error *e = NULL;
	if (state_open(db, &e) < 0)
		return fail("%s", warden_error_text(e));

	wd.base = event_base_new();
	if (!wd.base)
		return fail("event_base_new failed");
	struct event *sigchld = evsignal_new(wd.base, SIGCHLD, on_sigchld, NULL);
	struct event *sigterm = evsignal_new(wd.base, SIGTERM, on_stop, NULL);
	struct event *sigint = evsignal_new(wd.base, SIGINT, on_stop, NULL);
	event_add(sigchld, NULL);
	event_add(sigterm, NULL);
	event_add(sigint, NULL);

	if (sandboxes_start(&e) < 0 || http_start(&e) < 0)
		return fail("%s", warden_error_text(e));
	fprintf(stderr, "wardend: serving %s%s%s (state %s, warden %s)\n", wd.socket_path,
	        wd.listen ? " and " : "", wd.listen ? wd.listen : "", wd.state_dir, wd.warden);
	event_base_dispatch(wd.base);

	/* Sandboxes, connections and requests are left as they are: the process ends. */
	state_close();
	fprintf(stderr, "wardend: stopped\n");
	return 0;
}
