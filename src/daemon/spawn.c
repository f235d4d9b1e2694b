/* spawn.c: child processes (`warden supervise`), started without ever blocking the event
 * loop and collected when SIGCHLD says they have exited.
 *
 * Their standard output and error go to memfds, not pipes: the supervisor that
 * `warden supervise` leaves behind may keep what it inherited, and a pipe whose reader is
 * gone would kill it with SIGPIPE on its next write. The JSON line is read once the
 * process has exited, so nothing waits for an end of file that may never come.
 */
#define _GNU_SOURCE
#include "wardend.h"

#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define OUTPUT_MAX (64u << 10)

struct spawn {
	pid_t pid;
	int out, err;
	spawn_done_fn done;
	void *ctx;
	struct event *deadline;
	struct spawn *next;
};

static struct spawn *spawns;

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct spawn *s = arg;
	(void)kill(s->pid, SIGKILL); /* reaped, and reported, by spawn_sigchld() */
}

int spawn_start(char *const argv[], int timeout_s, spawn_done_fn done, void *ctx,
                struct warden_error **err)
{
	_cleanup_close_ int out = memfd_create("wardend-child-out", MFD_CLOEXEC);
	_cleanup_close_ int errfd = memfd_create("wardend-child-err", MFD_CLOEXEC);
	if (out < 0 || errfd < 0)
		return warden_error_set(err, errno, "memfd_create");

	/* wardend's own environment: it is the operator's configuration of warden (HOME and
	 * XDG_* for rootless paths, WARDEN_*, the variables gateway.yaml names with
	 * api_key_env). What a policy could pass on from it into a sandbox (env_pass) is
	 * refused in inline policies (create.c). */
	extern char **environ;
	char **env = environ;

	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, dflt;
	sigemptyset(&none);
	sigemptyset(&dflt);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaddset(&dflt, sig);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out, 1);
	posix_spawn_file_actions_adddup2(&fa, errfd, 2);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &dflt);
	pid_t pid;
	int r = posix_spawn(&pid, argv[0], &fa, &attr, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (r != 0)
		return warden_error_set(err, r, "starting %s", argv[0]);

	struct spawn *s = xcalloc(1, sizeof(*s));
	*s = (struct spawn){.pid = pid,
	                    .out = TAKE_FD(out),
	                    .err = TAKE_FD(errfd),
	                    .done = done,
	                    .ctx = ctx,
	                    .next = spawns};
	s->deadline = evtimer_new(wd.base, deadline_cb, s);
	struct timeval tv = {.tv_sec = timeout_s};
	evtimer_add(s->deadline, &tv);
	spawns = s;
	return 0;
}

static char *slurp(int fd)
{
	char *buf = xmalloc(OUTPUT_MAX + 1);
	ssize_t n = pread(fd, buf, OUTPUT_MAX, 0);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static struct spawn **find(pid_t pid)
{
	for (struct spawn **p = &spawns; *p; p = &(*p)->next)
		if ((*p)->pid == pid)
			return p;
	return NULL;
}

void spawn_sigchld(void)
{
	for (;;) {
		/* Look before reaping: a spawn's status is its caller's; any other child is a
		 * supervisor left to wardend (a child subreaper) by its `warden supervise`. */
		siginfo_t si = {0};
		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == 0)
			return;
		int status;
		pid_t pid = si.si_pid;
		if (waitpid(pid, &status, 0) < 0)
			return;
		struct spawn **p = find(pid);
		if (!p)
			continue;
		struct spawn *s = *p;
		*p = s->next;
		_cleanup_free_ char *out = slurp(s->out), *err = slurp(s->err);
		close(s->out);
		close(s->err);
		event_free(s->deadline);
		spawn_done_fn done = s->done;
		void *ctx = s->ctx;
		free(s);
		done(status, out, err, ctx);
	}
}

unsigned spawn_running(void)
{
	unsigned n = 0;
	for (struct spawn *s = spawns; s; s = s->next)
		n++;
	return n;
}
