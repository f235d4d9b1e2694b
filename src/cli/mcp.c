/* mcp.c: `warden mcp`: a Model Context Protocol server on standard input and output.
 *
 * Sections: options; messages (JSON-RPC out, UTF-8 text); the session's sandbox (made by
 * `warden supervise`, driven through its control socket); running commands; files (under
 * the sandbox's root, as the sandbox's user); tools (table, schemas, arguments, calls); the
 * protocol (JSON-RPC 2.0 dispatch); the main loop.
 *
 * Transport (MCP "stdio", protocol 2025-06-18): one JSON-RPC message per line on stdin and
 * on stdout; stdout carries nothing else, logs go to stderr. Requests are answered one at a
 * time, in order. One sandbox per session: made at the first tool call, destroyed when
 * stdin ends or on SIGTERM/SIGINT/SIGHUP, and by a watchdog process if this one dies any
 * other way. Failures of a tool (a file missing, a command that cannot run) are results
 * with isError set, for the model to read; malformed requests are JSON-RPC errors.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "../lib/files.h"
#include "../lib/policy.h"

#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#define PROTOCOL_VERSION "2025-06-18"
#define OUTPUT_CAP       (1u << 20)  /* bytes kept of each of a command's stdout, stderr */
#define READ_DEFAULT     (1u << 20)  /* read_file's max_bytes by default */
#define READ_MAX         (8u << 20)  /* ... and at most */
#define LIST_MAX         10000       /* entries list_files returns */
#define MESSAGE_MAX      (64u << 20) /* one JSON-RPC message (write_file carries files) */
#define CONTROL_MAX      65536       /* one control socket message (the contract) */
#define TIMEOUT_DEFAULT  30          /* seconds: below the usual 60 s of MCP clients */
#define TIMEOUT_MAX      3600
#define KILL_GRACE_MS    5000 /* after SIGKILL, how long to wait for the exit report */

/* JSON-RPC 2.0 error codes. */
#define RPC_PARSE_ERROR      -32700
#define RPC_INVALID_REQUEST  -32600
#define RPC_METHOD_NOT_FOUND -32601
#define RPC_INVALID_PARAMS   -32602
#define RPC_INTERNAL_ERROR   -32603

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
	char *root_error;        /* why root.fd is -1 (the file tools cannot work) */
	int relay[2]; /* the stdout and stderr `warden supervise` left us, relayed to stderr */
	int watchdog; /* write end of the watchdog's pipe */
};

static void mcp_log(const struct mcp *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void mcp_log(const struct mcp *m, const char *fmt, ...)
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

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int sys_pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Whether a pidfd's process has ended (or the pidfd is missing). */
static bool pidfd_ended(int pidfd)
{
	struct pollfd p = {.fd = pidfd, .events = POLLIN};
	return pidfd < 0 || poll(&p, 1, 0) != 0;
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

/* The length of the valid UTF-8 sequence at s: 1 to 4; 0 when it is not valid; -1 when it
 * is the valid start of a sequence that len cuts short. */
static int utf8_seq(const unsigned char *s, size_t len)
{
	unsigned c = s[0], cp, min;
	int n;
	if (c < 0x80)
		return 1;
	if ((c & 0xe0) == 0xc0)
		n = 2, cp = c & 0x1f, min = 0x80;
	else if ((c & 0xf0) == 0xe0)
		n = 3, cp = c & 0x0f, min = 0x800;
	else if ((c & 0xf8) == 0xf0)
		n = 4, cp = c & 0x07, min = 0x10000;
	else
		return 0;
	for (int i = 1; i < n; i++) {
		if ((size_t)i >= len)
			return -1;
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* A JSON string of bytes that should be UTF-8 text: what is not valid UTF-8 becomes U+FFFD.
 * cut: the bytes were cut at a limit, so a sequence cut short at the end is dropped. */
static json_t *text_json(const char *buf, size_t len, bool cut)
{
	const unsigned char *s = (const unsigned char *)buf;
	size_t i = 0, o = 0;
	if (!buf)
		return json_string("");
	while (i < len) {
		int n = utf8_seq(s + i, len - i);
		if (n > 0) {
			i += (size_t)n;
			continue;
		}
		if (n < 0 && cut) {
			len = i;
			break;
		}
		/* Not valid: rebuild with replacements. */
		_cleanup_free_ char *out = xmalloc(len * 3 + 1);
		memcpy(out, buf, i);
		o = i;
		while (i < len) {
			n = utf8_seq(s + i, len - i);
			if (n > 0) {
				memcpy(out + o, s + i, (size_t)n);
				o += (size_t)n;
				i += (size_t)n;
			} else if (n < 0 && cut) {
				break;
			} else {
				memcpy(out + o, "\xef\xbf\xbd", 3);
				o += 3;
				i++;
			}
		}
		return json_stringn(out, o);
	}
	return json_stringn(buf, len);
}

/* ---- the session's sandbox: its supervisor's control socket -------------------------- */

static int control_connect(const char *path, struct warden_error **err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return warden_error_set(err, ENAMETOOLONG, "control socket %s", path);
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return warden_error_set(err, errno, "socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		return warden_error_set(err, e, "the sandbox's supervisor (%s)", path);
	}
	return fd;
}

/* Send one request (freed here), with fds attached as SCM_RIGHTS. */
static int control_send(int fd, json_t *req, const int *fds, unsigned nfds,
                        struct warden_error **err)
{
	_cleanup_free_ char *s = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (!s)
		return warden_error_set(err, ENOMEM, "encoding a control request");
	size_t len = strlen(s);
	if (len > CONTROL_MAX)
		return warden_error_set(err, 0,
		                        "the request is too large (%zu bytes; the limit is %u)",
		                        len, CONTROL_MAX);
	struct iovec iov = {.iov_base = s, .iov_len = len};
	union {
		char buf[CMSG_SPACE(3 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (nfds) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	}
	if (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0)
		return warden_error_set(err, errno, "sending to the sandbox's supervisor");
	return 0;
}

/* Receive one message (a JSON object), waiting at most timeout_ms. */
static json_t *control_recv(int fd, int timeout_ms, struct warden_error **err)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int r;
	while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
		;
	if (r == 0) {
		warden_error_set(err, ETIMEDOUT, "waiting for the sandbox's supervisor");
		return NULL;
	}
	_cleanup_free_ char *buf = xmalloc(CONTROL_MAX + 1);
	ssize_t n = recv(fd, buf, CONTROL_MAX, 0);
	if (n <= 0) {
		warden_error_set(err, n < 0 ? errno : 0,
		                 "the sandbox's supervisor closed the "
		                 "connection");
		return NULL;
	}
	json_t *msg = json_loadb(buf, (size_t)n, 0, NULL);
	if (!json_is_object(msg)) {
		json_decref(msg);
		warden_error_set(err, 0, "the sandbox's supervisor sent what is not a JSON object");
		return NULL;
	}
	return msg;
}

/* One request (freed here), one reply, which must say {"ok": true}. */
static json_t *control_call(const char *path, json_t *req, struct warden_error **err)
{
	_cleanup_close_ int fd = control_connect(path, err);
	if (fd < 0) {
		json_decref(req);
		return NULL;
	}
	if (control_send(fd, req, NULL, 0, err) < 0)
		return NULL;
	json_t *r = control_recv(fd, 10000, err);
	if (r && !json_is_true(json_object_get(r, "ok"))) {
		const char *why = json_string_value(json_object_get(r, "error"));
		warden_error_set(err, 0, "the sandbox's supervisor refused: %s",
		                 why ? why : "(no reason given)");
		json_decref(r);
		return NULL;
	}
	return r;
}

/* ---- the session's sandbox: its life ------------------------------------------------ */

/* Relay what is there to read on one of the fds `warden supervise` left us to stderr;
 * closes it at its end. */
static void relay_read(int *fd, char *keep, size_t *kept, size_t cap)
{
	char buf[4096];
	for (int i = 0; i < 64 && *fd >= 0; i++) {
		ssize_t n = read(*fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			close(*fd);
			*fd = -1;
			return;
		}
		if (keep && *kept < cap) {
			size_t k = (size_t)n < cap - *kept ? (size_t)n : cap - *kept;
			memcpy(keep + *kept, buf, k);
			*kept += k;
		} else {
			(void)!write(STDERR_FILENO, buf, (size_t)n);
		}
	}
}

static size_t relay_pollfds(struct mcp *m, struct pollfd *p)
{
	p[0] = (struct pollfd){.fd = m->relay[0], .events = POLLIN};
	p[1] = (struct pollfd){.fd = m->relay[1], .events = POLLIN};
	return 2;
}

static void relay_dispatch(struct mcp *m, const struct pollfd *p)
{
	for (int i = 0; i < 2; i++)
		if (p[i].fd >= 0 && p[i].revents)
			relay_read(&m->relay[i], NULL, NULL, 0);
}

/* Run `warden supervise OPTIONS` and read the line it prints: {"sandbox", "control",
 * "supervisor_pid"}. The supervisor it leaves behind keeps the stdout and stderr it was
 * given: they stay ours to read (m->relay) until the end, so that it never writes into a
 * full pipe or one without a reader. */
static json_t *supervise(struct mcp *m, struct warden_error **err)
{
	int out[2], errp[2];
	for (int i = 0; i < 2; i++)
		if (m->relay[i] >= 0)
			close(m->relay[i]), m->relay[i] = -1;
	if (pipe2(out, O_CLOEXEC) < 0) {
		warden_error_set(err, errno, "pipe");
		return NULL;
	}
	if (pipe2(errp, O_CLOEXEC) < 0) {
		warden_error_set(err, errno, "pipe");
		close(out[0]);
		close(out[1]);
		return NULL;
	}
	pid_t pid = fork();
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		int null = open("/dev/null", O_RDONLY);
		if (null < 0 || dup2(null, 0) < 0 || dup2(out[1], 1) < 0 || dup2(errp[1], 2) < 0)
			_exit(EXIT_WARDEN);
		/* This very binary: no $PATH lookup, no other warden. */
		execv("/proc/self/exe", m->supervise.v);
		dprintf(2, "warden mcp: executing /proc/self/exe: %s\n", strerror(errno));
		_exit(EXIT_WARDEN);
	}
	int fork_errno = errno;
	close(out[1]);
	close(errp[1]);
	m->relay[0] = out[0];
	m->relay[1] = errp[0];
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	fcntl(errp[0], F_SETFL, O_NONBLOCK);
	if (pid < 0) {
		warden_error_set(err, fork_errno, "fork");
		return NULL;
	}
	_cleanup_close_ int pidfd = sys_pidfd_open(pid);
	char line[4096], msg[4096];
	size_t line_len = 0, msg_len = 0;
	int status = 0;
	int64_t deadline = now_ms() + 60000;
	for (bool ended = false; !ended;) {
		struct pollfd p[3] = {{.fd = m->relay[0], .events = POLLIN},
		                      {.fd = m->relay[1], .events = POLLIN},
		                      {.fd = pidfd, .events = POLLIN}};
		int64_t left = deadline - now_ms();
		int r = poll(p, 3, left > 0 ? (int)left : 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			kill(pid, SIGKILL);
			warden_error_set(err, r < 0 ? errno : ETIMEDOUT, "warden supervise");
			r = 0;
		}
		if (p[0].revents)
			relay_read(&m->relay[0], line, &line_len, sizeof(line) - 1);
		if (p[1].revents)
			relay_read(&m->relay[1], msg, &msg_len, sizeof(msg) - 1);
		if (r == 0 || p[2].revents || pidfd < 0) {
			waitpid(pid, &status, 0);
			ended = true;
		}
	}
	relay_read(&m->relay[0], line, &line_len, sizeof(line) - 1);
	relay_read(&m->relay[1], msg, &msg_len, sizeof(msg) - 1);
	line[line_len] = msg[msg_len] = '\0';
	if (msg_len)
		fputs(msg, stderr);
	while (msg_len && (msg[msg_len - 1] == '\n' || msg[msg_len - 1] == ' '))
		msg[--msg_len] = '\0';
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		const char *text = strncmp(msg, "warden: ", 8) == 0 ? msg + 8 : msg;
		warden_error_set(err, 0, "could not create the sandbox: %s",
		                 *text ? text : "warden supervise failed");
		return NULL;
	}
	json_t *r = json_loadb(line, line_len, JSON_DISABLE_EOF_CHECK, NULL);
	if (!json_is_string(json_object_get(r, "sandbox")) ||
	    !json_is_string(json_object_get(r, "control")) ||
	    !json_is_integer(json_object_get(r, "supervisor_pid"))) {
		json_decref(r);
		warden_error_set(err, 0, "warden supervise printed an unexpected line: %s", line);
		return NULL;
	}
	return r;
}

static void sandbox_destroy(struct mcp *m);

/* A process that destroys the sandbox when this one ends without doing so itself (killed
 * with SIGKILL, crashed): it waits for the end of a pipe only we hold. It ignores the
 * signals a terminal or a client sends to the whole group, which we handle ourselves, and
 * it holds none of our fds: a client waiting for the end of our stdout must see it. */
static void watchdog_start(struct mcp *m)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		mcp_log(m, "watchdog: pipe: %s", strerror(errno));
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		signal(SIGINT, SIG_IGN);
		signal(SIGTERM, SIG_IGN);
		signal(SIGHUP, SIG_IGN);
		signal(SIGPIPE, SIG_IGN);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		int null = open("/dev/null", O_RDWR);
		if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0 ||
		    dup2(p[0], 3) < 0)
			_exit(1);
		close_range(4, ~0U, 0);
		char c;
		while (read(3, &c, 1) < 0 && errno == EINTR)
			;
		struct warden_error *e = NULL;
		json_decref(control_call(m->control, json_pack("{s:s}", "op", "destroy"), &e));
		_exit(0);
	}
	if (pid < 0)
		mcp_log(m, "watchdog: fork: %s", strerror(errno));
	close(p[0]);
	m->watchdog = p[1];
}

static int sandbox_create(struct mcp *m, struct warden_error **err)
{
	json_t *line = supervise(m, err);
	if (!line)
		return -1;
	m->id = xstrdup(json_string_value(json_object_get(line, "sandbox")));
	m->control = xstrdup(json_string_value(json_object_get(line, "control")));
	m->supervisor_pid = (pid_t)json_integer_value(json_object_get(line, "supervisor_pid"));
	json_decref(line);
	m->supervisor_pidfd = sys_pidfd_open(m->supervisor_pid);
	m->state = SANDBOX_RUNNING;

	json_t *info = control_call(m->control, json_pack("{s:s}", "op", "info"), err);
	json_t *pid = json_object_get(info, "init_pid");
	json_t *uid = json_object_get(info, "uid"), *gid = json_object_get(info, "gid");
	if (info && (!json_is_integer(pid) || !json_is_integer(uid) || !json_is_integer(gid))) {
		warden_error_set(err, 0, "the sandbox's supervisor sent an incomplete \"info\"");
		json_decref(info);
		info = NULL;
	}
	if (!info) {
		warden_error_wrap(err, "sandbox %s", m->id);
		sandbox_destroy(m);
		m->state = SANDBOX_NONE;
		return -1;
	}
	pid_t init = (pid_t)json_integer_value(pid);
	uid_t u = (uid_t)json_integer_value(uid);
	gid_t g = (gid_t)json_integer_value(gid);
	json_decref(info);
	/* The pidfd before the root (warden_root_open() checks it after): the root is that of
	 * this sandbox's init, not of a process that took its pid since, and the fd stays
	 * valid for the sandbox's whole life. */
	m->init_pidfd = sys_pidfd_open(init);
	struct warden_error *e = NULL;
	if (m->init_pidfd < 0) {
		warden_error_set(err, errno, "sandbox %s: its init (pid %d)", m->id, (int)init);
		sandbox_destroy(m);
		m->state = SANDBOX_NONE;
		return -1;
	}
	if (warden_root_open(m->init_pidfd, init, u, g, &m->root, &e) < 0) {
		/* Rootless, the kernel may refuse us the root of the sandbox's init (it is not
		 * dumpable): commands still work, the file tools say why they do not. */
		m->root_error = xstrdup(warden_error_text(e));
		warden_error_free(e);
		mcp_log(m, "sandbox %s: no file tools: %s", m->id, m->root_error);
	}
	watchdog_start(m);
	mcp_log(m, "sandbox %s created", m->id);
	return 0;
}

/* The sandbox, made now if there is none yet. */
static int sandbox_get(struct mcp *m, struct warden_error **err)
{
	if (m->state == SANDBOX_RUNNING && pidfd_ended(m->init_pidfd))
		m->state = SANDBOX_ENDED;
	if (m->state == SANDBOX_ENDED)
		return warden_error_set(err, 0,
		                        "the sandbox of this session has ended (its time ran out, "
		                        "or it was killed); start a new session");
	if (m->state == SANDBOX_RUNNING)
		return 0;
	return sandbox_create(m, err);
}

static void sandbox_destroy(struct mcp *m)
{
	if (m->control && (m->supervisor_pidfd < 0 || !pidfd_ended(m->supervisor_pidfd))) {
		struct warden_error *e = NULL;
		json_t *r = control_call(m->control, json_pack("{s:s}", "op", "destroy"), &e);
		if (!r)
			mcp_log(m, "destroying sandbox %s: %s", m->id, warden_error_text(e));
		json_decref(r);
		warden_error_free(e);
		/* Wait for the supervisor's cleanup: once this process ends, so has the sandbox. */
		struct pollfd p = {.fd = m->supervisor_pidfd, .events = POLLIN};
		if (r && m->supervisor_pidfd >= 0 && poll(&p, 1, 10000) == 0)
			mcp_log(m, "sandbox %s: its supervisor is still cleaning up", m->id);
		else if (r)
			mcp_log(m, "sandbox %s destroyed", m->id);
	}
	warden_root_close(&m->root);
	int *fds[] = {&m->supervisor_pidfd, &m->init_pidfd, &m->watchdog, &m->relay[0],
	              &m->relay[1]};
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
	free(m->id);
	free(m->control);
	free(m->root_error);
	m->id = m->control = m->root_error = NULL;
	m->state = m->state == SANDBOX_NONE ? SANDBOX_NONE : SANDBOX_ENDED;
}

/* Whether a signal asked us to end (and then remember it). */
static bool signalled(struct mcp *m, const struct pollfd *p)
{
	struct signalfd_siginfo si;
	if (p->revents && read(m->sigfd, &si, sizeof(si)) == sizeof(si)) {
		mcp_log(m, "%s: ending", strsignal((int)si.ssi_signo));
		m->terminating = true;
	}
	return m->terminating;
}

/* ---- running commands ---------------------------------------------------------------- */

struct stream {
	int fd;
	char *buf;
	size_t len;
	bool truncated;
};

/* Read what is there; past OUTPUT_CAP, read and drop (the writer must not block). */
static void stream_read(struct stream *s)
{
	char chunk[65536];
	for (int i = 0; i < 16 && s->fd >= 0; i++) {
		ssize_t n = read(s->fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			close(s->fd);
			s->fd = -1;
			return;
		}
		size_t keep = (size_t)n;
		if (keep > OUTPUT_CAP - s->len) {
			keep = OUTPUT_CAP - s->len;
			s->truncated = true;
		}
		if (!keep)
			continue;
		s->buf = xrealloc(s->buf, s->len + keep);
		memcpy(s->buf + s->len, chunk, keep);
		s->len += keep;
	}
}

struct exec_result {
	int code;
	bool timed_out;
	bool lost;   /* the supervisor went away: the sandbox ended */
	char *error; /* could not be executed */
	struct stream out, err;
};

static int exec_signal(struct mcp *m, json_int_t exec, int sig)
{
	struct warden_error *e = NULL;
	json_t *r = control_call(
	    m->control, json_pack("{s:s, s:I, s:i}", "op", "signal", "exec", exec, "signal", sig),
	    &e);
	if (!r)
		mcp_log(m, "signalling exec %lld: %s", (long long)exec, warden_error_text(e));
	warden_error_free(e);
	json_decref(r);
	return r ? 0 : -1;
}

/* Start argv in the sandbox (exec: stdin /dev/null, stdout and stderr our pipes), collect
 * its output until it ends or timeout_ms pass (then SIGKILL). */
static int exec_run(struct mcp *m, json_t *req, int timeout_ms, struct exec_result *res,
                    struct warden_error **err)
{
	int out[2], errp[2];
	_cleanup_close_ int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null < 0 || pipe2(out, O_CLOEXEC) < 0) {
		json_decref(req);
		return warden_error_set(err, errno, "pipe");
	}
	if (pipe2(errp, O_CLOEXEC) < 0) {
		close(out[0]);
		close(out[1]);
		json_decref(req);
		return warden_error_set(err, errno, "pipe");
	}
	res->out.fd = out[0];
	res->err.fd = errp[0];
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	fcntl(errp[0], F_SETFL, O_NONBLOCK);
	int fds[3] = {null, out[1], errp[1]};
	_cleanup_close_ int ctl = control_connect(m->control, err);
	int r = ctl < 0 ? -1 : control_send(ctl, req, fds, 3, err);
	if (ctl < 0)
		json_decref(req);
	close(out[1]);
	close(errp[1]);
	json_t *reply = r < 0 ? NULL : control_recv(ctl, 10000, err);
	if (!reply)
		return -1;
	json_int_t exec = json_integer_value(json_object_get(reply, "exec"));
	if (!json_is_true(json_object_get(reply, "ok"))) {
		const char *why = json_string_value(json_object_get(reply, "error"));
		res->error = xstrdup(why ? why : "refused by the sandbox's supervisor");
		json_decref(reply);
		return 0;
	}
	json_decref(reply);

	int64_t deadline = now_ms() + timeout_ms;
	bool killed = false;
	for (;;) {
		struct pollfd p[6] = {{.fd = ctl, .events = POLLIN},
		                      {.fd = res->out.fd, .events = POLLIN},
		                      {.fd = res->err.fd, .events = POLLIN},
		                      {.fd = m->sigfd, .events = POLLIN}};
		size_t n = 4 + relay_pollfds(m, p + 4);
		/* Checked on every turn: a command that writes without pause keeps poll() from
		 * ever timing out. */
		int64_t left = deadline - now_ms();
		if (left <= 0 && !killed) {
			/* The process group of the command: what it started in the background
			 * goes too, as a shell's timeout would. */
			exec_signal(m, exec, SIGKILL);
			res->timed_out = killed = true;
			deadline = now_ms() + KILL_GRACE_MS;
			continue;
		}
		if (left <= 0) {
			res->code = 128 + SIGKILL;
			break;
		}
		int pr = poll(p, n, (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			return warden_error_set(err, errno, "poll");
		if (signalled(m, &p[3])) {
			exec_signal(m, exec, SIGKILL);
			return warden_error_set(err, 0, "warden mcp is shutting down");
		}
		relay_dispatch(m, p + 4);
		if (p[1].revents)
			stream_read(&res->out);
		if (p[2].revents)
			stream_read(&res->err);
		if (p[0].revents) {
			struct warden_error *e = NULL;
			json_t *msg = control_recv(ctl, 0, &e);
			warden_error_free(e);
			if (!msg) {
				res->lost = true;
				break;
			}
			json_t *code = json_object_get(msg, "exit");
			if (!json_is_integer(code)) {
				json_decref(msg);
				continue;
			}
			res->code = (int)json_integer_value(code);
			const char *why = json_string_value(json_object_get(msg, "error"));
			if (why)
				res->error = xstrdup(why);
			json_decref(msg);
			break;
		}
	}
	/* All it wrote before it ended is in the pipes; what it left in the background may
	 * keep them open, so take what is there and stop. */
	stream_read(&res->out);
	stream_read(&res->err);
	return 0;
}

static void exec_result_clear(struct exec_result *res)
{
	if (res->out.fd >= 0)
		close(res->out.fd);
	if (res->err.fd >= 0)
		close(res->err.fd);
	free(res->out.buf);
	free(res->err.buf);
	free(res->error);
}

/* ---- files: under the sandbox's root, as its user ------------------------------------ */

/* The operations are files.h's: paths resolve under the sandbox's root (RESOLVE_IN_ROOT:
 * ".." stops at its "/", planted symlinks resolve inside it), with the sandbox user's
 * rights. They run in a child process (as_sandbox_user()), which sees m->root as it was
 * when the sandbox was made. */

static json_t *op_write(const struct mcp *m, json_t *args, struct warden_error **err)
{
	const char *path = json_string_value(json_object_get(args, "path"));
	json_t *content = json_object_get(args, "content");
	const char *mode = json_string_value(json_object_get(args, "mode"));
	/* mkdir -p of the parent when it is missing. */
	_cleanup_free_ char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	struct warden_file_info info;
	struct warden_error *e = NULL;
	*slash = '\0';
	if (slash != dir && warden_file_stat(&m->root, dir, &info, &e) < 0) {
		bool missing = e->errnum == ENOENT;
		warden_error_free(e);
		if (missing && warden_file_mkdir(&m->root, dir, -1, true, NULL, err) < 0)
			return NULL;
	}
	if (warden_file_write(&m->root, path, json_string_value(content),
	                      json_string_length(content), mode ? (int)strtol(mode, NULL, 8) : -1,
	                      &info, err) < 0)
		return NULL;
	return json_pack("{s:s, s:I}", "path", path, "bytes", (json_int_t)info.size);
}

static json_t *op_read(const struct mcp *m, json_t *args, struct warden_error **err)
{
	const char *path = json_string_value(json_object_get(args, "path"));
	json_t *mb = json_object_get(args, "max_bytes");
	size_t max = mb ? (size_t)json_integer_value(mb) : READ_DEFAULT;
	struct warden_file_info info;
	_cleanup_close_ int fd = warden_file_open_read(&m->root, path, &info, err);
	if (fd < 0)
		return NULL;
	_cleanup_free_ char *buf = xmalloc(max + 1);
	size_t len = 0;
	while (len < max + 1) {
		ssize_t n = read(fd, buf + len, max + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			warden_error_set(err, errno, "%s: reading", path);
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	bool truncated = len > max;
	if (truncated)
		len = max;
	return json_pack("{s:s, s:o, s:b, s:I}", "path", path, "content",
	                 text_json(buf, len, truncated), "truncated", truncated, "size",
	                 (json_int_t)info.size);
}

struct entry {
	char *name;
	enum warden_file_type type;
	uint64_t size;
};

struct entries {
	struct entry *v;
	size_t n;
};

static int entry_add(const char *name, const struct warden_file_info *info, void *ctx)
{
	struct entries *l = ctx;
	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	l->v[l->n++] = (struct entry){xstrdup(name), info->type, info->size};
	return 0;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

static json_t *op_list(const struct mcp *m, json_t *args, struct warden_error **err)
{
	const char *path = json_string_value(json_object_get(args, "path"));
	struct entries l = {0};
	bool truncated = false;
	json_t *list = NULL;
	if (warden_file_list(&m->root, path, LIST_MAX, entry_add, &l, &truncated, err) == 0) {
		qsort(l.v, l.n, sizeof(*l.v), entry_cmp);
		list = json_array();
		for (size_t i = 0; i < l.n; i++)
			json_array_append_new(
			    list, json_pack("{s:o, s:s, s:I}", "name",
			                    text_json(l.v[i].name, strlen(l.v[i].name), false),
			                    "type", warden_file_type_names[l.v[i].type], "size",
			                    (json_int_t)l.v[i].size));
	}
	for (size_t i = 0; i < l.n; i++)
		free(l.v[i].name);
	free(l.v);
	return list ? json_pack("{s:s, s:o, s:b}", "path", path, "entries", list, "truncated",
	                        truncated)
	            : NULL;
}

typedef json_t *(*file_op)(const struct mcp *m, json_t *args, struct warden_error **err);

/* Run a file operation in a child process that is the sandbox's user.
 *
 * Why: we are (usually) root, and the sandbox's tree holds the host's files too: /etc is
 * the host's, read-only, with /etc/shadow in it, protected only by its owner and mode;
 * volumes are host directories. Root would read and write them; the sandbox's user cannot,
 * and no tool may reach more than a command in the sandbox could. files.h already switches
 * the file system identity (setfsuid/setfsgid) around each operation, which needs the
 * process's supplementary groups dropped and leaves a process that can switch back. Here
 * the child drops everything for good instead: no supplementary groups, the sandbox user's
 * host gid and uid (setuid from root clears the capabilities), and it checks that root is
 * out of reach before it touches a path. So what the kernel checks is what that user meets
 * inside: read-only mounts stay read-only, owners and modes hold, and what is created is
 * that user's. (Landlock and seccomp, which confine commands inside, do not apply: a policy
 * narrowing the writable tree further than mounts and owners do binds commands only.) The
 * root fd was opened before; lookups under it need only search permission. The result
 * comes back as JSON on a pipe. Rootless, we already are no more than the sandbox's owner. */
static json_t *as_sandbox_user(struct mcp *m, file_op op, json_t *args, struct warden_error **err)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		warden_error_set(err, errno, "pipe");
		return NULL;
	}
	pid_t pid = fork();
	if (pid == 0) {
		struct warden_error *e = NULL;
		json_t *res = NULL;
		close(p[0]);
		uid_t u = m->root.uid;
		gid_t g = m->root.gid;
		if (geteuid() == 0 && (setgroups(0, NULL) < 0 || setgid(g) < 0 || setuid(u) < 0 ||
		                       (u != 0 && setuid(0) == 0)))
			warden_error_set(&e, errno, "taking the sandbox user's identity (%u:%u)",
			                 (unsigned)u, (unsigned)g);
		else
			res = op(m, args, &e);
		json_t *msg = res ? json_pack("{s:o}", "result", res)
		                  : json_pack("{s:s}", "error", warden_error_text(e));
		_exit(json_dumpfd(msg, p[1], JSON_COMPACT) < 0 ? 1 : 0);
	}
	int fork_errno = errno;
	close(p[1]);
	_cleanup_close_ int rd = p[0];
	if (pid < 0) {
		warden_error_set(err, fork_errno, "fork");
		return NULL;
	}
	json_error_t jerr;
	json_t *msg = json_loadfd(rd, 0, &jerr);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	json_t *res = json_object_get(msg, "result");
	const char *why = json_string_value(json_object_get(msg, "error"));
	if (res)
		json_incref(res);
	else
		warden_error_set(err, 0, "%s", why ? why : "the file operation failed");
	json_decref(msg);
	return res;
}

/* ---- tools ------------------------------------------------------------------------- */

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

static json_t *call_run(struct mcp *m, json_t *args)
{
	struct warden_error *e = NULL;
	if (sandbox_get(m, &e) < 0)
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

	struct exec_result res = {.out.fd = -1, .err.fd = -1};
	json_t *result;
	_cleanup_free_ char *what =
	    xstrdup(command ? command : json_string_value(json_array_get(argv, 0)));
	int r = exec_run(m, req, (int)(timeout * 1000), &res, &e);
	if (r < 0 && !m->terminating && pidfd_ended(m->init_pidfd)) {
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
		result = tool_ok(
		    json_pack("{s:i, s:o, s:o, s:b, s:b}", "exit_code", res.code, "stdout",
		              text_json(res.out.buf, res.out.len, res.out.truncated), "stderr",
		              text_json(res.err.buf, res.err.len, res.err.truncated), "timed_out",
		              res.timed_out, "truncated", res.out.truncated || res.err.truncated));
	}
	exec_result_clear(&res);
	return result;
}

static json_t *call_file(struct mcp *m, json_t *args, file_op op)
{
	struct warden_error *e = NULL;
	if (sandbox_get(m, &e) < 0)
		return tool_error_take(e);
	if (m->root.fd < 0)
		return tool_error("the file tools cannot reach this sandbox's files (%s); "
		                  "run_command can (cat, ls, tee)",
		                  m->root_error);
	json_t *r = as_sandbox_user(m, op, args, &e);
	return r ? tool_ok(r) : tool_error_take(e);
}

static json_t *call_write(struct mcp *m, json_t *args)
{
	return call_file(m, args, op_write);
}

static json_t *call_read(struct mcp *m, json_t *args)
{
	return call_file(m, args, op_read);
}

static json_t *call_list(struct mcp *m, json_t *args)
{
	return call_file(m, args, op_list);
}

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
	json_t *list = json_array();
	for (size_t i = 0; i < ARRAY_SIZE(tools); i++)
		json_array_append_new(list, tool_json(&tools[i]));
	return json_pack("{s:o}", "tools", list);
}

static json_t *on_tools_call(struct mcp *m, json_t *params, struct rpc_error *e)
{
	const char *name = json_string_value(json_object_get(params, "name"));
	if (!name)
		return rpc_fail(e, RPC_INVALID_PARAMS,
		                xstrdup("tools/call: params.name: a string"));
	const struct tool *t = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(tools); i++)
		if (streq(tools[i].name, name))
			t = &tools[i];
	if (!t)
		return rpc_fail(e, RPC_INVALID_PARAMS, xasprintf("Unknown tool: %s", name));
	json_t *args = json_object_get(params, "arguments");
	if (args && !json_is_object(args))
		return rpc_fail(e, RPC_INVALID_PARAMS,
		                xasprintf("%s: params.arguments: an object", name));
	json_t *empty = args ? NULL : json_object();
	char *why = args_check(t, args ? args : empty);
	json_t *r = why ? rpc_fail(e, RPC_INVALID_PARAMS, why) : t->call(m, args ? args : empty);
	json_decref(empty);
	return r;
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
		size_t n = 2 + relay_pollfds(&m, p + 2);
		if (poll(p, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			mcp_log(&m, "poll: %s", strerror(errno));
			break;
		}
		if (signalled(&m, &p[1]))
			break;
		relay_dispatch(&m, p + 2);
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
	sandbox_destroy(&m);
	close(m.sigfd);
	strv_clear(&m.supervise);
	return 0;
}
