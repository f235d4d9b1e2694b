/* run.c: `warden run [OPTIONS] -- CMD [ARGS...]`.
 *
 * Sections: options; applying them over the policy; the supervisor loop (events, signals,
 * the timeout, the terminal relay); exit statuses.
 *
 * This process is the sandbox's supervisor: it stays small (one poll loop; a second thread
 * only when it serves the sandbox's proxies or model gateway, netserve.h) and exits with
 * the command's status, 128+N when the command was killed by signal N.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "../lib/plan.h"
#include "../lib/policy.h"
#include "../lib/audit/audit.h"
#include "../lib/net/gateway.h"
#include "../lib/sandbox.h"
#include "../lib/supervisor.h"

#include <event2/util.h>
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
	const char *isolation;
	bool tty;
	bool quiet;
	bool stats;
	bool no_telemetry;
	const char *events;
	const char *audit_log, *audit_key;
	const char *gateway; /* gateway.yaml, or NULL to look in the usual places */
	bool no_gateway;
	const char *resolver_hosts;
	struct strv nameservers;
	struct warden_devices devices; /* --device */
	struct strv gpus;              /* --gpu */
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
    "  --network none|proxy|host  network mode (proxy: by policy rules; host: the host's)\n"
    "  --isolation ns|vm        namespaces (default) or a microVM with its own kernel\n"
    "  --resolver-hosts FILE    proxy mode: a hosts file the proxies consult before DNS\n"
    "  --nameserver IP[:PORT]   proxy mode: resolve with this server (repeatable; default:\n"
    "                           those of the host's /etc/resolv.conf)\n"
    "  --gateway FILE           the model gateway's configuration (default: $WARDEN_GATEWAY,\n"
    "                           else /etc/warden/gateway.yaml or ~/.config/warden/gateway.yaml)\n"
    "  --no-gateway             no model gateway in this sandbox\n"
    "  --device PATH[:ACCESS]   grant a host device node under /dev (ACCESS: r, w, m or\n"
    "                           a combination; default rw)\n"
    "  --gpu all|INDEX|UUID     grant an NVIDIA GPU or MIG instance (repeatable)\n"
    "  -t, --tty                give the command a new pseudo-terminal\n"
    "  --user UID[:GID]         identity inside (default: agent)\n"
    "  --events FILE|-          write every event as a JSON line (- : standard error)\n"
    "  --stats                  print a summary when the sandbox ends\n"
    "  --no-telemetry           no eBPF telemetry or cgroup sampling\n"
    "  --audit-log FILE         the audit log (default: /var/lib/warden/audit.log as root)\n"
    "  --audit-key FILE         the key that signs its checkpoints\n"
    "  -q, --quiet              do not print warnings\n";

static const char supervise_usage[] =
    "usage: warden supervise [OPTIONS]\n"
    "\n"
    "Start a long-lived sandbox with no command, detach, and print one JSON line:\n"
    "{\"sandbox\": ID, \"control\": SOCKET, \"supervisor_pid\": N}. Commands run in it through\n"
    "the control socket (exec); it lives until destroyed, killed, or --timeout passes.\n"
    "Options: those of warden run (see 'warden run --help'), but no command and no --tty.\n";

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
	OPT_GATEWAY,
	OPT_NO_GATEWAY,
	OPT_RESOLVER_HOSTS,
	OPT_NAMESERVER,
	OPT_DEVICE,
	OPT_GPU,
	OPT_ISOLATION,
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
    {"gateway", required_argument, NULL, OPT_GATEWAY},
    {"no-gateway", no_argument, NULL, OPT_NO_GATEWAY},
    {"resolver-hosts", required_argument, NULL, OPT_RESOLVER_HOSTS},
    {"nameserver", required_argument, NULL, OPT_NAMESERVER},
    {"device", required_argument, NULL, OPT_DEVICE},
    {"gpu", required_argument, NULL, OPT_GPU},
    {"isolation", required_argument, NULL, OPT_ISOLATION},
    {"tty", no_argument, NULL, 't'},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* ---- options ----------------------------------------------------------------------- */

/* "IP" or "IP:PORT" ("[IPv6]:PORT"), as the proxies' resolver takes it. */
static int nameserver_check(const char *s)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	return evutil_parse_sockaddr_port(s, (struct sockaddr *)&ss, &len);
}

static int parse_opts(int argc, char **argv, struct run_opts *o, int *ret_cmd, bool service)
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
		case OPT_ISOLATION:
			o->isolation = optarg;
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
		case OPT_GATEWAY:
			o->gateway = optarg;
			break;
		case OPT_NO_GATEWAY:
			o->no_gateway = true;
			break;
		case OPT_RESOLVER_HOSTS:
			o->resolver_hosts = optarg;
			break;
		case OPT_NAMESERVER:
			if (nameserver_check(optarg) < 0)
				return cli_failf("--nameserver: \"%s\" is not IP or IP:PORT",
				                 optarg);
			strv_push(&o->nameservers, optarg);
			break;
		case OPT_DEVICE: {
			struct warden_device d;
			if (warden_device_parse_spec(optarg, &d, &e) < 0)
				return cli_failf("--device: %s", e->msg);
			warden_devices_push(&o->devices, d.path, d.access);
			free(d.path);
			break;
		}
		case OPT_GPU: {
			const char *why = NULL;
			if (!warden_gpu_spec_valid(optarg, &why))
				return cli_failf("--gpu: \"%s\": %s", optarg, why);
			strv_push(&o->gpus, optarg);
			break;
		}
		case 't':
			o->tty = true;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'h':
			fputs(service ? supervise_usage : usage, stdout);
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
	if (service && optind < argc)
		return cli_failf("supervise: takes no command (commands come through its control "
		                 "socket)");
	if (service && o->tty)
		return cli_failf("supervise: --tty: a service sandbox has no terminal");
	if (!service && optind >= argc)
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
		else if (streq(o->network, "proxy"))
			p->net_mode = WARDEN_NET_PROXY;
		else
			return cli_failf("--network: \"%s\" is not none, proxy or host",
			                 o->network);
	}
	if (o->isolation) {
		if (streq(o->isolation, "ns"))
			p->isolation = WARDEN_ISOLATION_NS;
		else if (streq(o->isolation, "vm"))
			p->isolation = WARDEN_ISOLATION_VM;
		else
			return cli_failf("--isolation: \"%s\" is not ns or vm", o->isolation);
	}
	if (o->tty)
		strv_push(&p->env_pass, "TERM");
	if (o->no_telemetry)
		p->telemetry = false;
	for (size_t i = 0; i < o->devices.n; i++)
		warden_devices_push(&p->devices, o->devices.v[i].path, o->devices.v[i].access);
	if (o->gpus.n)
		strv_clear(&p->gpu.devices);
	for (size_t i = 0; i < o->gpus.n; i++)
		strv_push(&p->gpu.devices, o->gpus.v[i]);
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
	_cleanup_error_ struct warden_error *e = NULL;
	if (si.ssi_signo == SIGWINCH) {
		struct winsize ws;
		if (t->master >= 0 && ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0)
			(void)warden_sandbox_resize(warden_supervisor_sandbox(sv), &ws, &e);
		return;
	}
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
		struct pollfd pfd[WARDEN_SUPERVISOR_FDS + 3];
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
	strv_clear(&o->nameservers);
	warden_devices_clear(&o->devices);
	strv_clear(&o->gpus);
}

/* ---- the network ------------------------------------------------------------------- */

struct net_setup {
	struct warden_gateway_config *gateway;
	char *token;
	struct warden_netserve_opts opts;
};

static void net_setup_clear(struct net_setup *n)
{
	warden_gateway_config_free(n->gateway);
	if (n->token)
		explicit_bzero(n->token, strlen(n->token));
	free(n->token);
}

/* Where gateway.yaml is: named (--gateway, $WARDEN_GATEWAY), or the first that exists of
 * the caller's own and the system's. NULL when there is none. */
static const char *gateway_path(const struct run_opts *o, char **own, bool *named)
{
	const char *env = getenv("WARDEN_GATEWAY");
	*named = o->gateway || (env && *env);
	if (*named)
		return o->gateway ? o->gateway : env;
	const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	if (xdg && *xdg == '/')
		*own = xasprintf("%s/warden/gateway.yaml", xdg);
	else if (home && *home == '/')
		*own = xasprintf("%s/.config/warden/gateway.yaml", home);
	if (*own && access(*own, F_OK) == 0)
		return *own;
	return access("/etc/warden/gateway.yaml", F_OK) == 0 ? "/etc/warden/gateway.yaml" : NULL;
}

/* The model gateway and the proxies' resolver: configuration errors stop the run before
 * the sandbox exists, and a sandbox gets a gateway only where gateway.yaml has a section
 * for its policy. */
static int net_setup(const struct run_opts *o, struct warden_plan *plan, struct net_setup *n)
{
	const struct warden_policy *p = plan->policy;
	bool proxy = p->net_mode == WARDEN_NET_PROXY;
	if (!proxy && (o->resolver_hosts || o->nameservers.n))
		return cli_failf("%s: only with network mode proxy",
		                 o->resolver_hosts ? "--resolver-hosts" : "--nameserver");
	if (o->resolver_hosts && access(o->resolver_hosts, R_OK) < 0)
		return cli_failf("--resolver-hosts: %s: %s", o->resolver_hosts, strerror(errno));
	n->opts.hosts_file = o->resolver_hosts;
	n->opts.nameservers = o->nameservers.n ? (const char *const *)o->nameservers.v : NULL;
	if (o->no_gateway && o->gateway)
		return cli_failf("--gateway and --no-gateway: choose one");
	_cleanup_free_ char *own = NULL;
	bool named = false;
	const char *path = o->no_gateway ? NULL : gateway_path(o, &own, &named);
	if (!path)
		return 0;
	if (p->net_mode == WARDEN_NET_HOST) {
		/* Its listener lives in the sandbox's own network namespace, which host mode
		 * does not have. */
		if (named)
			return cli_failf("%s: the model gateway needs network mode none or proxy "
			                 "(this policy uses host)",
			                 path);
		return 0;
	}
	_cleanup_error_ struct warden_error *e = NULL;
	n->gateway = warden_gateway_config_load(path, &e);
	if (!n->gateway)
		return cli_fail(TAKE_PTR(e));
	if (!warden_gateway_config_serves(n->gateway, p->name)) {
		if (named)
			return cli_failf("%s: no section for policy \"%s\" (and no \"*\")", path,
			                 p->name);
		return 0;
	}
	if (warden_gateway_config_load_keys(n->gateway, p->name, &e) < 0)
		return cli_fail(TAKE_PTR(e));
	/* The point of the gateway is that the real key stays outside: a policy or -e that
	 * passes the key's variable in would undo it, so that is an error, not a warning. */
	for (char **env = plan->envp; *env; env++) {
		const char *prov = warden_gateway_config_key_in(n->gateway, *env);
		if (prov)
			return cli_failf("the sandbox's environment would hold the API key of "
			                 "provider %s (in %.*s): do not pass it in",
			                 prov, (int)strcspn(*env, "="), *env);
	}
	n->token = warden_gateway_token_new();
	if (!n->token)
		return cli_failf("model gateway: no randomness for the sandbox's token");
	warden_plan_enable_gateway(plan, n->token);
	n->opts.gateway = n->gateway;
	n->opts.gateway_token = n->token;
	return 0;
}

/* From the compiled plan to the command's exit status. */
/* A service sandbox is up: tell whoever started `warden supervise` where it is, and let go
 * of their terminal and pipes. */
static void report_ready(int fd, struct warden_supervisor *sv)
{
	json_t *j =
	    json_pack("{s:s, s:s, s:i}", "sandbox", warden_supervisor_sandbox(sv)->id, "control",
	              warden_supervisor_control_path(sv), "supervisor_pid", (int)getpid());
	char *line = json_dumps(j, JSON_COMPACT);
	dprintf(fd, "%s\n", line);
	free(line);
	json_decref(j);
	close(fd);
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	for (int i = 0; null >= 0 && i <= 2; i++)
		dup2(null, i);
	if (null > 2)
		close(null);
}

static int run_sandbox(const struct run_opts *o, const struct warden_plan *plan,
                       const struct net_setup *net, char **argv, int ready_fd)
{
	_cleanup_error_ struct warden_error *e = NULL;
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

	struct warden_process proc = {.argv = argv, .tty = o->tty, .service = ready_fd >= 0};
	if (o->tty && ioctl(STDIN_FILENO, TIOCGWINSZ, &proc.winsize) < 0 &&
	    ioctl(STDOUT_FILENO, TIOCGWINSZ, &proc.winsize) < 0)
		proc.winsize = (struct winsize){.ws_row = 24, .ws_col = 80};
	_cleanup_close_ int events_fd = -1;
	if (o->events && streq(o->events, "-"))
		events_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	else if (o->events)
		events_fd =
		    open(o->events, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
	if (o->events && events_fd < 0) {
		close(sfd);
		return cli_failf("--events: %s: %s", o->events, strerror(errno));
	}
	struct warden_audit *audit = open_audit(o, o->quiet);
	if (!audit) {
		close(sfd);
		return EXIT_WARDEN;
	}
	bool serve = plan->policy->net_mode == WARDEN_NET_PROXY || plan->gateway;
	struct warden_supervisor_opts so = {
	    .audit = audit,
	    .emit = events_fd >= 0 ? emit_line : NULL,
	    .emit_ctx = &events_fd,
	    .control = true,
	    .net = serve ? &net->opts : NULL,
	};
	struct warden_supervisor *sv = warden_supervisor_start(plan, &proc, &so, &e);
	if (!sv) {
		warden_audit_close(audit);
		close(sfd);
		return cli_fail(TAKE_PTR(e));
	}
	struct warden_sandbox *sb = warden_supervisor_sandbox(sv);
	for (size_t i = 0; !o->quiet && i < sb->warnings.n; i++)
		cli_warn("%s", sb->warnings.v[i]);
	size_t warned = sb->warnings.n;
	if (ready_fd >= 0) {
		if (!warden_supervisor_control_path(sv)) {
			/* Without its control socket nobody could use or end it. */
			(void)warden_supervisor_signal(sv, SIGTERM, &e);
			warden_supervisor_free(sv);
			warden_audit_close(audit);
			close(sfd);
			return cli_failf("supervise: no control socket (see the warning above)");
		}
		report_ready(ready_fd, sv);
	}
	int r = supervise(sv, plan->policy, sfd);
	if (o->stats) {
		_cleanup_free_ char *stats = warden_supervisor_stats(sv);
		fprintf(stderr, "warden: %s", stats);
	}
	for (size_t i = warned; !o->quiet && i < sb->warnings.n; i++)
		cli_warn("%s", sb->warnings.v[i]);
	warden_supervisor_free(sv);
	warden_audit_close(audit);
	close(sfd);
	return r;
}

/* run and supervise: ready_fd >= 0 starts a service sandbox (supervise) and reports on it. */
static int run_or_supervise(int argc, char **argv, int ready_fd)
{
	struct run_opts o = {0};
	struct net_setup net = {0};
	struct warden_plan *plan = NULL;
	int cmd = 0;
	int r = parse_opts(argc, argv, &o, &cmd, ready_fd >= 0);
	if (r != 0)
		goto out;
	_cleanup_error_ struct warden_error *e = NULL;
	struct warden_policy *p = warden_policy_load(o.policy ? o.policy : "default", &e);
	if (!p || apply_opts(&o, p) != 0) {
		warden_policy_free(p);
		r = p ? EXIT_WARDEN : cli_fail(TAKE_PTR(e));
		goto out;
	}
	plan = warden_plan_compile(p, environ, &e);
	if (!plan) {
		r = cli_fail(TAKE_PTR(e));
		goto out;
	}
	if ((r = net_setup(&o, plan, &net)) != 0)
		goto out;
	for (size_t i = 0; !o.quiet && i < plan->warnings.n; i++)
		cli_warn("%s", plan->warnings.v[i]);
	r = run_sandbox(&o, plan, &net, ready_fd >= 0 ? NULL : argv + cmd, ready_fd);
out:
	warden_plan_free(plan);
	net_setup_clear(&net);
	opts_clear(&o);
	return r == -2 ? 0 : r;
}

int cmd_run(int argc, char **argv)
{
	return run_or_supervise(argc, argv, -1);
}

/* The supervisor goes on in a child of its own session (the sandbox's init dies with the
 * process that created it, so the sandbox must be created there); this process waits for
 * its report and exits, so the caller gets control back once the sandbox is ready. */
int cmd_supervise(int argc, char **argv)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return cli_failf("supervise: pipe: %s", strerror(errno));
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return cli_failf("supervise: fork: %s", strerror(errno));
	if (pid == 0) {
		close(p[0]);
		if (setsid() < 0)
			_exit(cli_failf("supervise: setsid: %s", strerror(errno)));
		int r = run_or_supervise(argc, argv, p[1]);
		fflush(NULL); /* --help, errors: written before _exit skips stdio's buffers */
		_exit(r);
	}
	close(p[1]);
	char buf[1024];
	size_t got = 0;
	ssize_t n;
	while (got < sizeof(buf) - 1 && (n = read(p[0], buf + got, sizeof(buf) - 1 - got)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		got += (size_t)n;
	}
	close(p[0]);
	if (got == 0 || buf[got - 1] != '\n') {
		/* It failed (and said why on our stderr), or exited at once (--help): its status
		 * is ours. */
		int status;
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		return WIFEXITED(status) ? WEXITSTATUS(status) : EXIT_WARDEN;
	}
	fwrite(buf, 1, got, stdout);
	return 0;
}
