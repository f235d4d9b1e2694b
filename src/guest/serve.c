/* serve.c: the guest agent's request loop (docs/guest-protocol.md).
 *
 * Sections: frames out; commands (start, output, exit); requests in; the loop.
 * One thread, one poll() over the port, SIGCHLD (a signalfd) and each command's pipes.
 */
#define _GNU_SOURCE
#include "agent.h"
#include "../lib/vm/frame.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/random.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_EXECS   64
#define STDIN_LIMIT (16u << 20) /* bytes queued for a command that does not read them */

struct cmd {
	uint32_t id;
	pid_t pid; /* 0: free slot */
	int in, out, err;
	int tty;          /* its terminal's master (for its size), or -1 */
	uint8_t *pending; /* stdin bytes not yet written */
	size_t n_pending;
	int in_eof;   /* end of input received: close once pending is written */
	pid_t syncer; /* it ended and this child syncs the file systems: then EXIT */
	int status;   /* ... with this status */
};

static struct cmd cmds[MAX_EXECS];
static int port = -1;
extern char **environ;

/* ---- frames out -------------------------------------------------------------------- */

/* The port is non-blocking: while the host has not taken what was sent before, wait. */
static void write_all(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = write(port, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			/* The host reads slower than the command writes (its own reader is slow):
			 * wait for it, as a pipe's writer would. */
			struct pollfd pfd = {.fd = port, .events = POLLOUT};
			(void)poll(&pfd, 1, -1);
			continue;
		}
		if (n <= 0)
			agent_fatal("writing to the host", errno);
		p += n;
		len -= (size_t)n;
	}
}

void agent_send(uint8_t type, uint32_t id, const void *payload, uint32_t len)
{
	uint8_t hdr[FRAME_HEADER];
	frame_header(hdr, type, id, len);
	write_all(hdr, sizeof(hdr));
	if (len)
		write_all(payload, len);
}

static void send_u32(uint8_t type, uint32_t id, uint32_t v)
{
	uint8_t b[4];
	frame_put_u32(b, v);
	agent_send(type, id, b, 4);
}

static void send_exit(uint32_t id, int status, int errnum)
{
	uint8_t b[8];
	frame_put_u32(b, (uint32_t)status);
	frame_put_u32(b + 4, (uint32_t)errnum);
	agent_send(FRAME_EXIT, id, b, 8);
}

void agent_send_error(uint32_t id, const char *text)
{
	agent_send(FRAME_ERROR, id, text, (uint32_t)strlen(text));
}

/* ---- commands ---------------------------------------------------------------------- */

static struct cmd *find_cmd(uint32_t id)
{
	for (int i = 0; i < MAX_EXECS; i++)
		if (cmds[i].pid && cmds[i].id == id)
			return &cmds[i];
	return NULL;
}

/* A missing directory of the command (its home, mode 0700, and its working directory,
 * 0755) is made, owned by its user, as the namespace backend makes them. Under a
 * read-only root it is made in the root's writable clone (boot.c), and made writable
 * where its path is not already. */
static void make_dir(const char *path, mode_t mode, const struct frame_exec *x)
{
	struct stat st;
	struct statvfs vfs;
	int base = agent_root_rw >= 0 ? agent_root_rw : AT_FDCWD;
	if (path[0] != '/' || !path[1] || stat(path, &st) == 0)
		return;
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s", path);
	const char *rel = agent_root_rw >= 0 ? buf + 1 : buf;
	for (char *p = buf + 1;; p++) {
		if (*p == '/' || !*p) {
			char c = *p;
			*p = '\0';
			if (mkdirat(base, rel, c ? 0755 : mode) == 0)
				(void)!fchownat(base, rel, x->uid, x->gid, 0);
			*p = c;
			if (!c)
				break;
		}
	}
	/* A bind of the directory onto itself is a mount of its own, made writable alone. */
	if (agent_root_rw >= 0 && statvfs(path, &vfs) == 0 && (vfs.f_flag & ST_RDONLY) &&
	    mount(path, path, NULL, MS_BIND, NULL) == 0)
		(void)mount(NULL, path, NULL, MS_REMOUNT | MS_BIND, NULL);
}

static void make_dirs(const struct frame_exec *x)
{
	for (char **e = x->env; *e; e++)
		if (strncmp(*e, "HOME=", 5) == 0)
			make_dir(*e + 5, 0700, x);
	if (x->workdir)
		make_dir(x->workdir, 0755, x);
}

/* The policy's limits, as the namespace backend sets them: open files, processes of
 * the command's user (which binds every user but the guest's root), no core dumps. A
 * number of files over what the guest kernel allows (fs.nr_open) is left at its
 * default. */
static int set_limits(const struct frame_exec *x)
{
	struct rlimit core = {0, 0}, nofile = {x->nofile, x->nofile}, nproc = {x->pids, x->pids};
	if (!x->limits)
		return 0;
	if (setrlimit(RLIMIT_CORE, &core) < 0 ||
	    (setrlimit(RLIMIT_NOFILE, &nofile) < 0 && errno != EPERM))
		return -1;
	return x->pids ? setrlimit(RLIMIT_NPROC, &nproc) : 0;
}

/* An unprivileged command stays unprivileged, as with the namespace backend: no
 * set-user-ID program of the image makes it the guest's root (no_new_privs), and its
 * bounding set is empty. The guest's root (--user root) keeps every capability of the
 * guest: it is root of the guest kernel (docs/vm.md). */
static int drop_privileges(const struct frame_exec *x)
{
	if (x->uid == 0)
		return 0;
	for (int c = 0; c < 64; c++)
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
			return -1;
	return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

/* In the child: become the command, its stdio io[] or (tty not NULL) that terminal, made
 * its controlling terminal and given to its user. Errors go back through errfd as an
 * errno. */
static noreturn void child(const struct frame_exec *x, const int io[3], const char *tty, int errfd)
{
	int e, t = -1;
	setsid();
	if (tty && ((t = open(tty, O_RDWR)) < 0 || ioctl(t, TIOCSCTTY, 0) < 0 ||
	            fchown(t, x->uid, (gid_t)-1) < 0))
		goto fail;
	if (dup2(tty ? t : io[0], 0) < 0 || dup2(tty ? t : io[1], 1) < 0 ||
	    dup2(tty ? t : io[2], 2) < 0)
		goto fail;
	gid_t g = x->gid;
	if (set_limits(x) < 0 || drop_privileges(x) < 0 || setgroups(1, &g) < 0 ||
	    setresgid(x->gid, x->gid, x->gid) < 0 || setresuid(x->uid, x->uid, x->uid) < 0)
		goto fail;
	if (chdir(x->workdir ? x->workdir : "/") < 0)
		goto fail;
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	environ = x->env;
	execvp(x->argv[0], x->argv);
fail:
	e = errno;
	(void)!write(errfd, &e, sizeof(e));
	_exit(127);
}

static void close_all(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* The command's stdio: three pipes (io gets the child's ends), or a new terminal of the
 * request's size (tty gets its slave's path). ours gets our ends: stdin, stdout, stderr
 * (-1 with a terminal: it is all one stream) and the terminal's master. */
static int make_stdio(const struct frame_exec *x, int io[3], int ours[4], char *tty, size_t len)
{
	int p[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
	io[0] = io[1] = io[2] = ours[2] = ours[3] = -1;
	if (x->tty) {
		struct winsize ws = {.ws_row = x->rows, .ws_col = x->cols};
		int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, tty, len) != 0 ||
		    ioctl(m, TIOCSWINSZ, &ws) < 0) {
			if (m >= 0)
				close(m);
			return -1;
		}
		ours[0] = fcntl(m, F_DUPFD_CLOEXEC, 0);
		ours[1] = m;
		ours[3] = fcntl(m, F_DUPFD_CLOEXEC, 0);
		return 0;
	}
	/* The pipes are the command's user's, so that it can reopen them (/dev/stdout). */
	for (int k = 0; k < 3; k++)
		if (pipe2(p[k], O_CLOEXEC) < 0 || fchown(p[k][0], x->uid, x->gid) < 0) {
			close_all(&p[0][0], 6);
			return -1;
		}
	/* stdin: the child reads p[0][0]; stdout, stderr: it writes p[k][1] */
	io[0] = p[0][0], ours[0] = p[0][1];
	io[1] = p[1][1], ours[1] = p[1][0];
	io[2] = p[2][1], ours[2] = p[2][0];
	return 0;
}

static void start_cmd(uint32_t id, const uint8_t *p, size_t len)
{
	struct frame_exec x;
	const char *why;
	int io[3], ours[4], pe[2];
	char tty[64];
	struct cmd *c = NULL;
	if (find_cmd(id))
		return agent_send_error(id, "request id in use");
	for (int i = 0; i < MAX_EXECS && !c; i++)
		if (!cmds[i].pid)
			c = &cmds[i];
	if (!c)
		return agent_send_error(id, "too many commands");
	if (frame_exec_decode(p, len, &x, &why) < 0)
		return agent_send_error(id, why);
	make_dirs(&x);
	if (make_stdio(&x, io, ours, tty, sizeof(tty)) < 0) {
		char text[128];
		snprintf(text, sizeof(text), "%s: %s", x.tty ? "a terminal" : "pipes",
		         strerror(errno));
		frame_exec_clear(&x);
		return agent_send_error(id, text);
	}
	if (pipe2(pe, O_CLOEXEC) < 0)
		agent_fatal("pipe", errno);
	pid_t pid = fork();
	if (pid < 0)
		agent_fatal("fork", errno);
	if (pid == 0)
		child(&x, io, x.tty ? tty : NULL, pe[1]);
	frame_exec_clear(&x);
	close_all(io, 3);
	close(pe[1]);
	int e = 0;
	ssize_t n = read(pe[0], &e, sizeof(e));
	close(pe[0]);
	if (n == sizeof(e)) {
		/* It never ran: reap it here; 127 when not found, 126 otherwise (a shell's). */
		waitpid(pid, NULL, 0);
		close_all(ours, 4);
		return send_exit(id, e == ENOENT ? 127 : 126, e);
	}
	fcntl(ours[0], F_SETFL, O_NONBLOCK);
	*c = (struct cmd){
	    .id = id, .pid = pid, .in = ours[0], .out = ours[1], .err = ours[2], .tty = ours[3]};
	send_u32(FRAME_STARTED, id, (uint32_t)pid);
}

/* Returns 1 after relaying bytes, 0 at end of file (or error), -1 when none are ready. */
static int relay_output(struct cmd *c, int *fd, uint8_t type)
{
	static uint8_t buf[FRAME_MAX];
	ssize_t n = read(*fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return -1;
	if (n <= 0) {
		close(*fd);
		*fd = -1;
		return 0;
	}
	agent_send(type, c->id, buf, (uint32_t)n);
	return 1;
}

static void flush_stdin(struct cmd *c)
{
	while (c->in >= 0 && c->n_pending) {
		ssize_t n = write(c->in, c->pending, c->n_pending);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) { /* EPIPE: the command closed its stdin; drop the rest */
			c->n_pending = 0;
			break;
		}
		memmove(c->pending, c->pending + n, c->n_pending - (size_t)n);
		c->n_pending -= (size_t)n;
	}
	if (c->in >= 0 && c->in_eof && !c->n_pending) {
		close(c->in);
		c->in = -1;
	}
}

static void release(struct cmd *c)
{
	int fds[] = {c->in, c->out, c->err, c->tty};
	close_all(fds, 4);
	free(c->pending);
	memset(c, 0, sizeof(*c));
}

/* The command ended: what it wrote before is sent first, then its status once the file
 * systems are synced (the host copies volumes out once it knows). The sync runs in a
 * child, so that the agent goes on answering the host (its heartbeat above all) while a
 * slow disk takes its time. Output that descendants write later is not waited for, as
 * with the namespace backend. */
static void finish(struct cmd *c, int status)
{
	int *fds[2] = {&c->out, &c->err};
	for (int k = 0; k < 2; k++) {
		if (*fds[k] < 0)
			continue;
		fcntl(*fds[k], F_SETFL, O_NONBLOCK);
		while (*fds[k] >= 0 && relay_output(c, fds[k], k ? FRAME_STDERR : FRAME_STDOUT) > 0)
			;
		if (*fds[k] >= 0)
			close(*fds[k]);
		*fds[k] = -1;
	}
	c->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	c->syncer = fork();
	if (c->syncer == 0) {
		sync();
		_exit(0);
	}
	if (c->syncer < 0) {
		sync();
		send_exit(c->id, c->status, 0);
		release(c);
	}
}

static void reap(void)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		for (int i = 0; i < MAX_EXECS; i++) {
			struct cmd *c = &cmds[i];
			if (c->pid == pid && !c->syncer) {
				finish(c, status);
			} else if (c->pid && c->syncer == pid) {
				send_exit(c->id, c->status, 0);
				release(c);
			}
		}
}

/* ---- requests in ------------------------------------------------------------------- */

static void queue_stdin(struct cmd *c, const uint8_t *p, uint32_t len)
{
	if (!len) {
		c->in_eof = 1;
	} else if (c->in >= 0 && !c->in_eof) {
		if (c->n_pending + len > STDIN_LIMIT) {
			agent_send_error(
			    c->id, "stdin: more than 16 MiB queued that the command does not read");
			return;
		}
		uint8_t *n = realloc(c->pending, c->n_pending + len);
		if (!n)
			agent_fatal("realloc", ENOMEM);
		memcpy(n + c->n_pending, p, len);
		c->pending = n;
		c->n_pending += len;
	}
	flush_stdin(c);
}

/* Entropy from the host: added to the kernel's pool, credited, and made the key of the
 * next random numbers at once. A guest restored from a snapshot would otherwise produce
 * the same numbers as every other guest restored from it, until its next reseed. */
static void add_entropy(const uint8_t *p, size_t len)
{
	struct {
		struct rand_pool_info info;
		uint8_t buf[256];
	} e;
	int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
	if (len > sizeof(e.buf))
		len = sizeof(e.buf);
	e.info.entropy_count = (int)len * 8;
	e.info.buf_size = (int)len;
	memcpy(e.buf, p, len);
	if (fd < 0 || ioctl(fd, RNDADDENTROPY, &e) < 0 || ioctl(fd, RNDRESEEDCRNG) < 0)
		agent_send_error(0, "adding the host's entropy failed");
	if (fd >= 0)
		close(fd);
}

static void write_file(const uint8_t *p, uint32_t len)
{
	struct frame_file f;
	const char *why;
	if (frame_file_decode(p, len, &f, &why) < 0)
		return agent_send_error(0, why);
	if (strcmp(f.path, "/dev/urandom") == 0)
		return add_entropy(f.data, f.len);
	/* Through the writable root (agent_root_rw) when there is one; a link in the way is
	 * replaced. */
	int base = agent_root_rw >= 0 ? agent_root_rw : AT_FDCWD;
	const char *rel = agent_root_rw >= 0 ? f.path + 1 : f.path;
	int fd = openat(base, rel, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, f.mode);
	if (fd < 0 && errno == ELOOP && unlinkat(base, rel, 0) == 0)
		fd = openat(base, rel, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		            f.mode);
	if (fd < 0 || write(fd, f.data, f.len) != (ssize_t)f.len || fchmod(fd, f.mode) < 0) {
		char text[256];
		snprintf(text, sizeof(text), "writing %s: %s", f.path, strerror(errno));
		agent_send_error(0, text);
	}
	if (fd >= 0)
		close(fd);
}

static void resize(struct cmd *c, const uint8_t *p)
{
	struct winsize ws = {.ws_row = frame_get_u16(p), .ws_col = frame_get_u16(p + 2)};
	if (c->tty >= 0)
		ioctl(c->tty, TIOCSWINSZ, &ws); /* the kernel tells its foreground: SIGWINCH */
}

static void handle(const struct frame *f)
{
	struct cmd *c = f->type == FRAME_EXEC ? NULL : find_cmd(f->id);
	if (c && c->syncer)
		c = NULL; /* it ended: nothing reaches it any more */
	switch (f->type) {
	case FRAME_EXEC:
		start_cmd(f->id, f->payload, f->len);
		break;
	case FRAME_STDIN:
		if (c)
			queue_stdin(c, f->payload, f->len);
		break;
	case FRAME_SIGNAL:
		if (c && frame_get_u32(f->payload) < 65)
			kill(-c->pid, (int)frame_get_u32(f->payload));
		break;
	case FRAME_RESIZE:
		if (c)
			resize(c, f->payload);
		break;
	case FRAME_PING:
		agent_send(FRAME_PONG, 0, f->payload, 4);
		break;
	case FRAME_FILE:
		write_file(f->payload, f->len);
		break;
	case FRAME_LISTEN:
		net_listen(f->payload, f->len);
		break;
	case FRAME_DATA_IN:
	case FRAME_CREDIT_IN:
	case FRAME_CLOSE_IN:
		net_frame(f);
		break;
	case FRAME_POWEROFF:
		sync();
		reboot(RB_POWER_OFF);
		agent_fatal("power off", errno);
	}
}

/* Consume whole frames from the port's buffer. A malformed frame means the stream can no
 * longer be trusted to be in step: the agent says why and stops. */
static void read_port(void)
{
	static uint8_t buf[2 * (FRAME_HEADER + FRAME_MAX)];
	static size_t have;
	ssize_t n = read(port, buf + have, sizeof(buf) - have);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* No host on the other end: poll() would say so again at once. */
		usleep(10000);
		return;
	}
	have += (size_t)n;
	size_t off = 0, used;
	struct frame f;
	const char *why;
	int r;
	while ((r = frame_decode(buf + off, have - off, FRAME_TO_GUEST, &f, &used, &why)) == 1) {
		handle(&f);
		off += used;
	}
	if (r < 0) {
		agent_send_error(0, why);
		agent_fatal(why, EBADMSG);
	}
	memmove(buf, buf + off, have - off);
	have -= off;
}

/* ---- the loop ---------------------------------------------------------------------- */

noreturn void agent_serve(int fd)
{
	struct pollfd pfd[2 + 3 * MAX_EXECS + NET_POLL_MAX];
	struct cmd *owner[2 + 3 * MAX_EXECS];
	int kind[2 + 3 * MAX_EXECS];
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		agent_fatal("signalfd", errno);
	signal(SIGPIPE, SIG_IGN);
	port = fd;
	fcntl(port, F_SETFL, O_NONBLOCK);
	send_u32(FRAME_READY, 0, FRAME_VERSION);
	for (;;) {
		nfds_t n = 0;
		pfd[n++] = (struct pollfd){.fd = port, .events = POLLIN};
		pfd[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
		for (int i = 0; i < MAX_EXECS; i++) {
			struct cmd *c = &cmds[i];
			if (!c->pid)
				continue;
			int fds[3] = {c->out, c->err, c->n_pending ? c->in : -1};
			for (int k = 0; k < 3; k++) {
				if (fds[k] < 0)
					continue;
				owner[n] = c;
				kind[n] = k;
				pfd[n++] = (struct pollfd){.fd = fds[k],
				                           .events = k == 2 ? POLLOUT : POLLIN};
			}
		}
		int n_net = net_poll(pfd + n);
		if (poll(pfd, n + (nfds_t)n_net, -1) < 0 && errno != EINTR)
			agent_fatal("poll", errno);
		net_ready(pfd + n, n_net);
		for (nfds_t i = 2; i < n; i++) {
			if (!pfd[i].revents)
				continue;
			struct cmd *c = owner[i];
			if (kind[i] == 0 && c->out >= 0)
				relay_output(c, &c->out, FRAME_STDOUT);
			else if (kind[i] == 1 && c->err >= 0)
				relay_output(c, &c->err, FRAME_STDERR);
			else if (kind[i] == 2)
				flush_stdin(c);
		}
		if (pfd[1].revents) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) == sizeof(si))
				;
			reap();
		}
		if (pfd[0].revents)
			read_port();
	}
}
