/* run.c: `warden run [OPTIONS] -- CMD [ARGS...]`.
 *
 * Sections: options; applying them over the policy; the supervisor loop (events, signals,
 * the timeout, the terminal relay); exit statuses.
 *
 * This process is the sandbox's supervisor: it stays small (no threads, one poll loop) and
 * exits with the command's status, 128+N when the command was killed by signal N.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "../lib/plan.h"
#include "../lib/policy.h"
#include "../lib/audit/audit.h"
#include "../lib/sandbox.h"
#include "../lib/supervisor.h"

#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>

extern char **environ;

struct run_opts {
	const char *policy;
	struct warden_mounts volumes;
	const char *workdir;
	struct strv env;
	const char *rootfs;
	const char *memory, *pids, *cpus, *tmp_size, *timeout, *user, *network;
	bool tty;
	bool quiet;
	bool stats;
	bool no_telemetry;
	const char *events;
	const char *audit_log, *audit_key;
};

static const char usage[] =
    "usage: warden run [OPTIONS] -- CMD [ARGS...]\n"
    "\n"
    "Run CMD in a fresh sandbox and exit with its status (128+N if killed by signal N;\n"
    "124 on --timeout; 125 for warden's own errors; 126/127 if CMD cannot be run/found).\n"
    "\n"
    "  --policy NAME|FILE       a preset (default, strict) or a YAML policy file\n"
    "  -v, --volume HOST:PATH[:ro|rw]  bind a host directory in (rw by default)\n"
    "  -w, --workdir PATH       working directory inside\n"
    "  -e, --env NAME[=VALUE]   pass NAME from here, or set it; all else is cleared\n"
    "  --rootfs DIR             use DIR (an unpacked image) as the root\n"
    "  --memory SIZE            memory limit (e.g. 512M, 2G; no swap)\n"
    "  --pids N                 process/thread limit\n"
    "  --cpus X                 CPU limit (e.g. 0.5, 2)\n"
    "  --tmp-size SIZE          size of the writable layer (/tmp, home, ...)\n"
    "  --timeout SECONDS        kill the whole sandbox after this long (exit 124)\n"
    "  --network none|host      network mode (host shares the host's network)\n"
    "  -t, --tty                give the command a new pseudo-terminal\n"
    "  --user UID[:GID]         identity inside (default: agent)\n"
    "  --events FILE|-          write every event as a JSON line (- : standard error)\n"
    "  --stats                  print a summary when the sandbox ends\n"
    "  --no-telemetry           no eBPF telemetry or cgroup sampling\n"
    "  --audit-log FILE         the audit log (default: /var/lib/warden/audit.log as root)\n"
    "  --audit-key FILE         the key that signs its checkpoints\n"
    "  -q, --quiet              do not print warnings\n";

enum {
	OPT_POLICY = 256,
	OPT_ROOTFS,
	OPT_MEMORY,
	OPT_PIDS,
	OPT_CPUS,
	OPT_TMP,
	OPT_TIMEOUT,
	OPT_USER,
	OPT_NETWORK,
	OPT_EVENTS,
	OPT_STATS,
	OPT_NO_TELEMETRY,
	OPT_AUDIT_LOG,
	OPT_AUDIT_KEY,
};

static const struct option long_opts[] = {
    {"policy", required_argument, NULL, OPT_POLICY},
    {"volume", required_argument, NULL, 'v'},
    {"workdir", required_argument, NULL, 'w'},
    {"env", required_argument, NULL, 'e'},
    {"rootfs", required_argument, NULL, OPT_ROOTFS},
    {"memory", required_argument, NULL, OPT_MEMORY},
    {"pids", required_argument, NULL, OPT_PIDS},
    {"cpus", required_argument, NULL, OPT_CPUS},
    {"tmp-size", required_argument, NULL, OPT_TMP},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"user", required_argument, NULL, OPT_USER},
    {"network", required_argument, NULL, OPT_NETWORK},
    {"events", required_argument, NULL, OPT_EVENTS},
    {"stats", no_argument, NULL, OPT_STATS},
    {"no-telemetry", no_argument, NULL, OPT_NO_TELEMETRY},
    {"audit-log", required_argument, NULL, OPT_AUDIT_LOG},
    {"audit-key", required_argument, NULL, OPT_AUDIT_KEY},
    {"tty", no_argument, NULL, 't'},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* ---- options ----------------------------------------------------------------------- */

static int parse_opts(int argc, char **argv, struct run_opts *o, int *ret_cmd)
{
	int c;
	_cleanup_error_ struct warden_error *e = NULL;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+v:w:e:tqh", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_POLICY:
			o->policy = optarg;
			break;
		case 'v': {
			struct warden_mount m;
			if (warden_mount_parse_spec(optarg, &m, &e) < 0)
				return cli_failf("--volume: %s", e->msg);
			warden_mounts_push(&o->volumes, &m);
			free(m.host);
			free(m.path);
			break;
		}
		case 'w':
			if (!path_is_normal_absolute(optarg) && !streq(optarg, "/"))
				return cli_failf("--workdir: \"%s\" is not an absolute, normalized "
				                 "path",
				                 optarg);
			o->workdir = optarg;
			break;
		case 'e': {
			_cleanup_free_ char *name = strndup(optarg, strcspn(optarg, "="));
			if (!warden_env_name_valid(name))
				return cli_failf("--env: \"%s\" is not a valid variable name",
				                 name);
			strv_push(&o->env, optarg);
			break;
		}
		case OPT_ROOTFS:
			o->rootfs = optarg;
			break;
		case OPT_MEMORY:
			o->memory = optarg;
			break;
		case OPT_PIDS:
			o->pids = optarg;
			break;
		case OPT_CPUS:
			o->cpus = optarg;
			break;
		case OPT_TMP:
			o->tmp_size = optarg;
			break;
		case OPT_TIMEOUT:
			o->timeout = optarg;
			break;
		case OPT_USER:
			o->user = optarg;
			break;
		case OPT_NETWORK:
			o->network = optarg;
			break;
		case OPT_EVENTS:
			o->events = optarg;
			break;
		case OPT_STATS:
			o->stats = true;
			break;
		case OPT_NO_TELEMETRY:
			o->no_telemetry = true;
			break;
		case OPT_AUDIT_LOG:
			o->audit_log = optarg;
			break;
		case OPT_AUDIT_KEY:
			o->audit_key = optarg;
			break;
		case 't':
			o->tty = true;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return -2;
		case ':':
			return cli_failf("%s: needs a value", argv[optind - 1]);
		default:
			if (optopt)
				return cli_failf(
				    "run: unknown option -%c (see 'warden run --help')", optopt);
			return cli_failf("run: unknown option %s (see 'warden run --help')",
			                 argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return cli_failf("run: no command given (usage: warden run [OPTIONS] -- CMD "
		                 "[ARGS...])");
	*ret_cmd = optind;
	return 0;
}

static void env_override(struct warden_policy *p, const char *entry)
{
	const char *eq = strchr(entry, '=');
	size_t nlen = eq ? (size_t)(eq - entry) : strlen(entry);
	for (size_t i = 0; i < p->env.n; i++)
		if (!strncmp(p->env.v[i], entry, nlen) && p->env.v[i][nlen] == '=') {
			free(p->env.v[i]);
			/* remove: a later set or pass decides */
			memmove(&p->env.v[i], &p->env.v[i + 1], (p->env.n - i) * sizeof(char *));
			p->env.n--;
			break;
		}
	if (eq)
		strv_push(&p->env, entry);
	else
		strv_push(&p->env_pass, entry);
}

/* Command-line options override the policy's values. */
static int apply_opts(const struct run_opts *o, struct warden_policy *p)
{
	const char *why = NULL;
	_cleanup_error_ struct warden_error *e = NULL;
	for (size_t i = 0; i < o->volumes.n; i++)
		warden_mounts_push(&p->volumes, &o->volumes.v[i]);
	if (o->workdir) {
		free(p->workdir);
		p->workdir = xstrdup(o->workdir);
	}
	for (size_t i = 0; i < o->env.n; i++)
		env_override(p, o->env.v[i]);
	if (o->rootfs) {
		char *real = realpath(o->rootfs, NULL);
		if (!real)
			return cli_failf("--rootfs: %s: %s", o->rootfs, strerror(errno));
		free(p->rootfs);
		p->rootfs = real;
	}
	if (o->memory && (parse_size(o->memory, &p->memory, &why) < 0 || !p->memory))
		return cli_failf("--memory: \"%s\": %s", o->memory, why ? why : "must be > 0");
	if (o->memory && p->memory < (8ULL << 20))
		return cli_failf("--memory: \"%s\": must be at least 8M", o->memory);
	if (o->pids && (parse_uint(o->pids, 4194304, &p->pids, &why) < 0 || p->pids < 2))
		return cli_failf("--pids: \"%s\": %s", o->pids, why ? why : "must be at least 2");
	if (o->cpus && (parse_milli(o->cpus, &p->cpus_milli, &why) < 0 || p->cpus_milli < 10))
		return cli_failf("--cpus: \"%s\": %s", o->cpus,
		                 why ? why : "must be at least 0.01");
	if (o->tmp_size &&
	    (parse_size(o->tmp_size, &p->tmp_size, &why) < 0 || p->tmp_size < (1ULL << 20)))
		return cli_failf("--tmp-size: \"%s\": %s", o->tmp_size,
		                 why ? why : "must be at least 1M");
	if (o->timeout && (parse_milli(o->timeout, &p->timeout_ms, &why) < 0 || !p->timeout_ms))
		return cli_failf("--timeout: \"%s\": %s", o->timeout,
		                 why ? why : "must be more than 0 seconds");
	if (o->user && warden_user_parse(o->user, &p->uid, &p->gid, &e) < 0)
		return cli_failf("--user: %s", e->msg);
	if (o->network) {
		if (streq(o->network, "none"))
			p->net_mode = WARDEN_NET_NONE;
		else if (streq(o->network, "host"))
			p->net_mode = WARDEN_NET_HOST;
		else
			return cli_failf("--network: \"%s\" is not none or host", o->network);
	}
	if (o->tty)
		strv_push(&p->env_pass, "TERM");
	if (o->no_telemetry)
		p->telemetry = false;
	return 0;
}

/* ---- the terminal ------------------------------------------------------------------ */

struct term {
	bool raw;
	struct termios saved;
	int master;
	bool master_open, stdin_open;
};

static void term_restore(struct term *t)
{
	if (t->raw)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &t->saved);
	t->raw = false;
}

static void term_start(struct term *t, int master)
{
	t->master = master;
	t->master_open = master >= 0;
	t->stdin_open = master >= 0;
	if (master < 0)
		return;
	fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &t->saved) == 0) {
		struct termios raw = t->saved;
		cfmakeraw(&raw);
		if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) == 0)
			t->raw = true;
	}
}

static void write_all(int fd, const char *buf, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, buf, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			poll(&p, 1, 100);
			continue;
		}
		if (w <= 0)
			return;
		buf += w;
		n -= (size_t)w;
	}
}

/* Copy what the terminal's master has to our stdout; false at EOF/EIO. */
static bool drain_master(struct term *t)
{
	char buf[16384];
	for (;;) {
		ssize_t n = read(t->master, buf, sizeof(buf));
		if (n > 0) {
			write_all(STDOUT_FILENO, buf, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return true;
		return false; /* EIO: every slave fd is closed */
	}
}

static void forward_stdin(struct term *t)
{
	char buf[4096];
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
	if (n > 0) {
		write_all(t->master, buf, (size_t)n);
		return;
	}
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	t->stdin_open = false;
	/* EOF on a non-terminal stdin: pass it on as the terminal's EOF character. */
	if (!t->raw)
		write_all(t->master, "\x04", 1);
}

/* ---- the supervisor loop ----------------------------------------------------------- */

static const int handled[] = {SIGINT,  SIGTERM, SIGHUP,  SIGQUIT,
                              SIGUSR1, SIGUSR2, SIGALRM, SIGWINCH};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_signal(struct warden_supervisor *sv, int sfd, struct term *t)
{
	struct signalfd_siginfo si;
	if (read(sfd, &si, sizeof(si)) != sizeof(si))
		return;
	if (si.ssi_signo == SIGWINCH) {
		struct winsize ws;
		if (t->master >= 0 && ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0)
			ioctl(t->master, TIOCSWINSZ, &ws);
		return;
	}
	_cleanup_error_ struct warden_error *e = NULL;
	(void)warden_supervisor_signal(sv, (int)si.ssi_signo, &e);
}

/* The exit status and the message for how the sandbox ended. */
static int outcome(const struct warden_supervisor_result *r, const struct warden_policy *p)
{
	if (r->failed) {
		fprintf(stderr, "warden: %s%s%s\n", r->text, r->errnum ? ": " : "",
		        r->errnum ? strerror(r->errnum) : "");
		return !r->exec              ? EXIT_WARDEN
		       : r->errnum == ENOENT ? EXIT_NOT_FOUND
		                             : EXIT_CANNOT_EXEC;
	}
	if (r->timed_out) {
		fprintf(stderr, "warden: timeout: killed after %.3g s\n",
		        (double)p->timeout_ms / 1000.0);
		return EXIT_TIMEOUT;
	}
	if (r->killed_by[0])
		fprintf(stderr, "warden: guardrail %s killed the sandbox\n", r->killed_by);
	else if (r->lost)
		return cli_failf("sandbox: %s", r->text);
	return r->code;
}

static int supervise(struct warden_supervisor *sv, const struct warden_policy *p, int sfd)
{
	struct warden_sandbox *sb = warden_supervisor_sandbox(sv);
	struct term t = {0};
	int64_t deadline = p->timeout_ms ? now_ms() + (int64_t)p->timeout_ms : 0;
	term_start(&t, sb->pty_fd);
	for (;;) {
		struct pollfd pfd[8];
		size_t n = warden_supervisor_pollfds(sv, pfd, WARDEN_SUPERVISOR_FDS);
		pfd[n] = (struct pollfd){.fd = sfd, .events = POLLIN};
		pfd[n + 1] = (struct pollfd){.fd = t.master_open ? t.master : -1, .events = POLLIN};
		pfd[n + 2] =
		    (struct pollfd){.fd = t.stdin_open ? STDIN_FILENO : -1, .events = POLLIN};
		int timeout = -1;
		if (deadline) {
			int64_t left = deadline - now_ms();
			timeout = left > 0 ? (int)(left > INT32_MAX ? INT32_MAX : left) : 0;
		}
		int ready = poll(pfd, n + 3, timeout);
		if (ready < 0 && errno != EINTR)
			break;
		_cleanup_error_ struct warden_error *e = NULL;
		if (deadline && now_ms() >= deadline) {
			deadline = 0;
			if (warden_supervisor_timeout(sv, &e) < 0) {
				term_restore(&t);
				return cli_fail(TAKE_PTR(e));
			}
		}
		if (ready <= 0)
			continue;
		if (pfd[n + 1].revents && !drain_master(&t))
			t.master_open = false;
		if (pfd[n + 2].revents)
			forward_stdin(&t);
		if (pfd[n].revents)
			on_signal(sv, sfd, &t);
		int r = warden_supervisor_dispatch(sv, pfd, &e);
		if (r < 0) {
			term_restore(&t);
			return cli_fail(TAKE_PTR(e));
		}
		if (r == 1)
			break;
	}
	if (t.master_open)
		drain_master(&t);
	term_restore(&t);
	return outcome(warden_supervisor_result(sv), p);
}

/* Events go out as whole lines, each in one write, so concurrent writers (the command's
 * own stderr, with --events -) never split one. */
static void emit_line(const char *line, void *ctx)
{
	int fd = *(int *)ctx;
	size_t len = strlen(line);
	char *buf = xmalloc(len + 1);
	memcpy(buf, line, len);
	buf[len] = '\n';
	write_all(fd, buf, len + 1);
	free(buf);
}

static struct warden_audit *open_audit(const struct run_opts *o, bool quiet)
{
	struct warden_audit_opts ao = {.path = o->audit_log, .key_path = o->audit_key};
	struct strv notices = {0};
	struct warden_error *e = NULL;
	struct warden_audit *a = warden_audit_open(&ao, &notices, &e);
	for (size_t i = 0; !quiet && i < notices.n; i++)
		cli_warn("%s", notices.v[i]);
	strv_clear(&notices);
	if (!a) {
		/* No record, no sandbox: a run that could not be accounted for does not run. */
		warden_error_wrap(&e, "audit log (choose another with --audit-log)");
		cli_fail(e);
	}
	return a;
}

/* ---- the verb ---------------------------------------------------------------------- */

static void opts_clear(struct run_opts *o)
{
	warden_mounts_clear(&o->volumes);
	strv_clear(&o->env);
}

int cmd_run(int argc, char **argv)
{
	struct run_opts o = {0};
	int cmd = 0;
	int r = parse_opts(argc, argv, &o, &cmd);
	if (r == -2) {
		opts_clear(&o);
		return 0;
	}
	if (r != 0) {
		opts_clear(&o);
		return r;
	}

	_cleanup_error_ struct warden_error *e = NULL;
	struct warden_policy *p = warden_policy_load(o.policy ? o.policy : "default", &e);
	if (!p || apply_opts(&o, p) != 0) {
		opts_clear(&o);
		warden_policy_free(p);
		return p ? EXIT_WARDEN : cli_fail(TAKE_PTR(e));
	}
	opts_clear(&o);
	_cleanup_plan_ struct warden_plan *plan = warden_plan_compile(p, environ, &e);
	if (!plan)
		return cli_fail(TAKE_PTR(e));
	for (size_t i = 0; !o.quiet && i < plan->warnings.n; i++)
		cli_warn("%s", plan->warnings.v[i]);

	/* Signals are taken from a signalfd from here on, so that one arriving during setup
	 * is queued and forwarded rather than killing the supervisor. */
	sigset_t mask;
	sigemptyset(&mask);
	for (size_t i = 0; i < ARRAY_SIZE(handled); i++)
		sigaddset(&mask, handled[i]);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0)
		return cli_failf("signalfd: %s", strerror(errno));
	signal(SIGPIPE, SIG_IGN);

	struct warden_process proc = {.argv = argv + cmd, .tty = o.tty};
	if (o.tty && ioctl(STDIN_FILENO, TIOCGWINSZ, &proc.winsize) < 0 &&
	    ioctl(STDOUT_FILENO, TIOCGWINSZ, &proc.winsize) < 0)
		proc.winsize = (struct winsize){.ws_row = 24, .ws_col = 80};
	_cleanup_close_ int events_fd = -1;
	if (o.events && streq(o.events, "-"))
		events_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	else if (o.events)
		events_fd =
		    open(o.events, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
	if (o.events && events_fd < 0) {
		close(sfd);
		return cli_failf("--events: %s: %s", o.events, strerror(errno));
	}
	struct warden_audit *audit = open_audit(&o, o.quiet);
	if (!audit) {
		close(sfd);
		return EXIT_WARDEN;
	}
	struct warden_supervisor_opts so = {
	    .audit = audit,
	    .emit = events_fd >= 0 ? emit_line : NULL,
	    .emit_ctx = &events_fd,
	    .control = true,
	};
	struct warden_supervisor *sv = warden_supervisor_start(plan, &proc, &so, &e);
	if (!sv) {
		warden_audit_close(audit);
		close(sfd);
		return cli_fail(TAKE_PTR(e));
	}
	struct warden_sandbox *sb = warden_supervisor_sandbox(sv);
	for (size_t i = 0; !o.quiet && i < sb->warnings.n; i++)
		cli_warn("%s", sb->warnings.v[i]);
	size_t warned = sb->warnings.n;
	r = supervise(sv, plan->policy, sfd);
	if (o.stats) {
		_cleanup_free_ char *stats = warden_supervisor_stats(sv);
		fprintf(stderr, "warden: %s", stats);
	}
	for (size_t i = warned; !o.quiet && i < sb->warnings.n; i++)
		cli_warn("%s", sb->warnings.v[i]);
	warden_supervisor_free(sv);
	warden_audit_close(audit);
	close(sfd);
	return r;
}
