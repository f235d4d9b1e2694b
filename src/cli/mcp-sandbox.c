/* mcp-sandbox.c: `warden mcp`'s sandbox: made by `warden supervise` at the first tool
 * call and driven through its supervisor's control socket (control.h); the commands run
 * in it; its files, reached through its root as its user (files.h) (mcp.h).
 *
 * Sections: helpers; the session's sandbox (its supervisor's control socket, its life);
 * running commands; files.
 */
#define _GNU_SOURCE
#include "mcp.h"
#include "../lib/control.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#define OUTPUT_CAP         (1u << 20) /* bytes kept of each of a command's stdout, stderr */
#define READ_DEFAULT       (1u << 20) /* read_file's max_bytes by default */
#define LIST_MAX           10000      /* entries list_files returns */
#define CONTROL_TIMEOUT_MS 10000      /* a control request and its reply, each way */
#define KILL_GRACE_MS      5000       /* after SIGKILL, how long to wait for the exit report */

/* ---- helpers ----------------------------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether a pidfd's process has ended (or the pidfd is missing). */
bool mcp_pidfd_ended(int pidfd)
{
	struct pollfd p = {.fd = pidfd, .events = POLLIN};
	return pidfd < 0 || poll(&p, 1, 0) != 0;
}

/* ---- the session's sandbox: its supervisor's control socket ------------------------ */

/* One request (freed here), one reply, which must say {"ok": true}. */
static json_t *control_call(const char *path, json_t *req, struct warden_error **err)
{
	json_t *r = warden_control_call(path, req, CONTROL_TIMEOUT_MS, err);
	json_decref(req);
	if (r && !(r = warden_control_ok(r, err)))
		warden_error_wrap(err, "the sandbox's supervisor refused");
	return r;
}

/* ---- the session's sandbox: its life ----------------------------------------------- */

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

size_t mcp_relay_pollfds(struct mcp *m, struct pollfd *p)
{
	p[0] = (struct pollfd){.fd = m->relay[0], .events = POLLIN};
	p[1] = (struct pollfd){.fd = m->relay[1], .events = POLLIN};
	return 2;
}

void mcp_relay_dispatch(struct mcp *m, const struct pollfd *p)
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
	_cleanup_close_ int pidfd = warden_pidfd_open(pid, 0);
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
	m->supervisor_pidfd = warden_pidfd_open(m->supervisor_pid, 0);
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
		mcp_sandbox_destroy(m);
		m->state = SANDBOX_NONE;
		return -1;
	}
	pid_t init = (pid_t)json_integer_value(pid);
	uid_t u = (uid_t)json_integer_value(uid);
	gid_t g = (gid_t)json_integer_value(gid);
	json_decref(info);
	/* The init's pidfd says when the sandbox has ended (mcp_sandbox_get()). The root comes
	 * from the supervisor: rootless, the kernel refuses us /proc/<init>/root (the init is
	 * not dumpable, and its memory belongs to the initial user namespace). */
	m->init_pidfd = warden_pidfd_open(init, 0);
	if (m->init_pidfd < 0)
		warden_error_set(err, errno, "sandbox %s: its init (pid %d)", m->id, (int)init);
	int root =
	    m->init_pidfd < 0 ? -1 : warden_control_root(m->control, CONTROL_TIMEOUT_MS, err);
	if (root < 0 || warden_root_adopt(root, u, g, &m->root, err) < 0) {
		warden_error_wrap(err, "sandbox %s", m->id);
		mcp_sandbox_destroy(m);
		m->state = SANDBOX_NONE;
		return -1;
	}
	watchdog_start(m);
	mcp_log(m, "sandbox %s created", m->id);
	return 0;
}

/* The sandbox, made now if there is none yet. */
int mcp_sandbox_get(struct mcp *m, struct warden_error **err)
{
	if (m->state == SANDBOX_RUNNING && mcp_pidfd_ended(m->init_pidfd))
		m->state = SANDBOX_ENDED;
	if (m->state == SANDBOX_ENDED)
		return warden_error_set(err, 0,
		                        "the sandbox of this session has ended (its time ran out, "
		                        "or it was killed); start a new session");
	if (m->state == SANDBOX_RUNNING)
		return 0;
	return sandbox_create(m, err);
}

void mcp_sandbox_destroy(struct mcp *m)
{
	if (m->control && (m->supervisor_pidfd < 0 || !mcp_pidfd_ended(m->supervisor_pidfd))) {
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
	m->id = m->control = NULL;
	m->state = m->state == SANDBOX_NONE ? SANDBOX_NONE : SANDBOX_ENDED;
}

/* Whether a signal asked us to end (and then remember it). */
bool mcp_signalled(struct mcp *m, const struct pollfd *p)
{
	struct signalfd_siginfo si;
	if (p->revents && read(m->sigfd, &si, sizeof(si)) == sizeof(si)) {
		mcp_log(m, "%s: ending", strsignal((int)si.ssi_signo));
		m->terminating = true;
	}
	return m->terminating;
}

/* ---- running commands -------------------------------------------------------------- */

/* Read what is there; past OUTPUT_CAP, read and drop (the writer must not block). */
static void stream_read(struct mcp_stream *s)
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
int mcp_exec_run(struct mcp *m, json_t *req, int timeout_ms, struct mcp_exec_result *res,
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
	json_t *reply = NULL;
	_cleanup_close_ int ctl = warden_control_open(
	    m->control, req, (int[3]){null, out[1], errp[1]}, 3, CONTROL_TIMEOUT_MS, &reply, err);
	json_decref(req);
	close(out[1]);
	close(errp[1]);
	if (ctl < 0)
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
		size_t n = 4 + mcp_relay_pollfds(m, p + 4);
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
		if (mcp_signalled(m, &p[3])) {
			exec_signal(m, exec, SIGKILL);
			return warden_error_set(err, 0, "warden mcp is shutting down");
		}
		mcp_relay_dispatch(m, p + 4);
		if (p[1].revents)
			stream_read(&res->out);
		if (p[2].revents)
			stream_read(&res->err);
		if (p[0].revents) {
			struct warden_error *e = NULL;
			json_t *msg = warden_control_recv(ctl, MSG_DONTWAIT, NULL, 0, NULL, &e);
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

void mcp_exec_result_clear(struct mcp_exec_result *res)
{
	if (res->out.fd >= 0)
		close(res->out.fd);
	if (res->err.fd >= 0)
		close(res->err.fd);
	free(res->out.buf);
	free(res->err.buf);
	free(res->error);
}

/* ---- files: under the sandbox's root, as its user ---------------------------------- */

/* The operations are files.h's: paths resolve under the sandbox's root (RESOLVE_IN_ROOT:
 * ".." stops at its "/", planted symlinks resolve inside it), with the sandbox user's
 * rights. They run in a child process (mcp_as_sandbox_user()), which sees m->root as it was
 * when the sandbox was made. */

json_t *mcp_file_write(const struct mcp *m, json_t *args, struct warden_error **err)
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

json_t *mcp_file_read(const struct mcp *m, json_t *args, struct warden_error **err)
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
	                 mcp_text_json(buf, len, truncated), "truncated", truncated, "size",
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

json_t *mcp_file_list(const struct mcp *m, json_t *args, struct warden_error **err)
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
			                    mcp_text_json(l.v[i].name, strlen(l.v[i].name), false),
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
json_t *mcp_as_sandbox_user(struct mcp *m, mcp_file_op op, json_t *args, struct warden_error **err)
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
