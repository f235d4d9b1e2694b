/* init.c: pid 1 of a namespace sandbox.
 *
 * Sections: reporting to the supervisor; the fixed setup sequence; starting a process;
 * the pid-1 loop (reaping, forwarding signals).
 *
 * Init is the only way a process enters the sandbox: it applies every layer to itself,
 * then forks and execs, so each process inherits every restriction and nothing ever
 * setns()es in from outside. It keeps only CAP_SETUID/SETGID/SETPCAP (to hand the sandbox
 * user's identity to what it starts, which then drops them), is not dumpable (processes of
 * the same uid cannot ptrace it), and holds no host fd but the caller's stdio and its
 * socket to the supervisor.
 */
#define _GNU_SOURCE
#include "init.h"
#include "../ns/ns.h"
#include "../sync.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>

#define SOCK_FD 3

extern char **environ;

/* ---- reporting --------------------------------------------------------------------- */

static void send_msg(uint32_t type, const char *step, int errnum, int status, const char *text,
                     const int *fds, unsigned nfds)
{
	struct sync_msg m = {.type = type, .errnum = errnum, .status = status};
	snprintf(m.step, sizeof(m.step), "%s", step ? step : "");
	snprintf(m.text, sizeof(m.text), "%s", text ? text : "");
	(void)sync_send(SOCK_FD, &m, fds, nfds);
}

static _Noreturn void fail(const char *step, struct warden_error *e)
{
	send_msg(SYNC_ERROR, step, e ? e->errnum : 0, 0, e ? e->msg : "failed", NULL, 0);
	_exit(125);
}

static _Noreturn void fail_errno(const char *step, const char *what)
{
	struct warden_error e = {.errnum = errno, .msg = (char *)what};
	fail(step, &e);
}

/* ---- setup ------------------------------------------------------------------------- */

/* Only stdio and the supervisor socket cross into the sandbox. */
static void isolate_fds(int sock)
{
	if (sock != SOCK_FD) {
		if (dup3(sock, SOCK_FD, O_CLOEXEC) < 0)
			_exit(125);
		close(sock);
	}
	if (close_range(SOCK_FD + 1, ~0U, 0) < 0)
		_exit(125);
}

/* init is a copy of the supervisor, so its argument and environment areas hold the
 * caller's command line (volume paths, policy paths, -e values) and environment, which
 * /proc/1/cmdline would show the sandbox. Overwrite both in place. */
static void hide_host_args(void)
{
	char buf[1024];
	if (read_file_at(AT_FDCWD, "/proc/self/stat", buf, sizeof(buf)) <= 0)
		_exit(125);
	/* fields after the command name, which ends at the last ')' */
	char *p = strrchr(buf, ')');
	unsigned long field[52] = {0};
	for (int i = 3; p && i <= 51; i++) {
		p = strchr(p + 1, ' ');
		if (p)
			field[i] = strtoul(p + 1, NULL, 10);
	}
	unsigned long arg_start = field[48], arg_end = field[49];
	unsigned long env_start = field[50], env_end = field[51];
	if (!arg_start || arg_end <= arg_start || !env_start || env_end < env_start)
		_exit(125);
	memset((void *)env_start, 0, env_end - env_start);
	memset((void *)arg_start, 0, arg_end - arg_start);
	static const char name[] = "warden-init";
	if (arg_end - arg_start > sizeof(name))
		memcpy((void *)arg_start, name, sizeof(name));
}

/* Spin briefly on a shared flag before blocking in recv (see sync.h): bounded at 20 ms,
 * after which the blocking path takes over. */
static void spin_on(const uint32_t *flag)
{
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (unsigned i = 1;; i++) {
		if (__atomic_load_n(flag, __ATOMIC_ACQUIRE))
			break;
		__builtin_ia32_pause();
		if (i % 1024)
			continue;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) >
		    20000000L)
			break;
	}
}

/* Wait for the supervisor's message of type, announced first by *flag. */
static void await_flag(const uint32_t *flag, uint32_t type)
{
	struct sync_msg m;
	spin_on(flag);
	if (sync_recv(SOCK_FD, &m, NULL, 0, NULL) < 0 || m.type != type)
		_exit(125); /* the supervisor is gone or confused: nothing to report to */
}

/* GO carries the parent's detached trees: text[i] is '1' where binds[i] has one, and the
 * last character stands for the rootfs. */
static void receive_go(const struct warden_plan *plan, int *tree_fds)
{
	struct sync_msg m;
	int fds[SYNC_MAX_FDS];
	unsigned n = 0, used = 0;
	int r = sync_recv(SOCK_FD, &m, fds, SYNC_MAX_FDS, &n);
	if (r < 0 || m.type != SYNC_GO)
		_exit(125); /* the supervisor is gone or confused: nothing to report to */
	for (size_t i = 0; i <= plan->n_binds; i++) {
		tree_fds[i] = -1;
		if (i < sizeof(m.text) && m.text[i] == '1' && used < n)
			tree_fds[i] = fds[used++];
	}
	for (; used < n; used++)
		close(fds[used]);
}

/* Become the sandbox's root (root mode) or its one mapped user (rootless). Until now init
 * ran with the supervisor's host ids, which are unmapped inside. */
static void take_identity(const struct warden_plan *plan)
{
	uid_t uid = plan->rootless ? plan->policy->uid : 0;
	gid_t gid = plan->rootless ? plan->policy->gid : 0;
	if (setresgid(gid, gid, gid) < 0)
		fail_errno("user namespace", "setresgid");
	if (!plan->rootless && setgroups(0, NULL) < 0)
		fail_errno("user namespace", "setgroups");
	if (setresuid(uid, uid, uid) < 0)
		fail_errno("user namespace", "setresuid");
}

/* The listeners are made here, where only the sandbox's loopback exists, and served by
 * the supervisor from the host: init keeps no copy, so no process of the sandbox can
 * accept on them or answer in warden's place. */
static void send_listeners(const struct warden_plan *plan)
{
	struct warden_error *e = NULL;
	int fds[WARDEN_NET_LISTENERS], all[WARDEN_NET_LISTENERS];
	unsigned n = 0;
	char which[WARDEN_NET_LISTENERS + 1] = "";
	if (ns_net_listeners(plan, fds, &e) < 0)
		fail("network", e);
	for (int i = 0; i < WARDEN_NET_LISTENERS; i++) {
		which[i] = fds[i] >= 0 ? '1' : '0';
		if (fds[i] >= 0)
			all[n++] = fds[i];
	}
	send_msg(SYNC_NET, "network", 0, 0, which, all, n);
	for (unsigned i = 0; i < n; i++)
		close(all[i]);
}

/* A service sandbox's files are reached from outside (the daemon's and the MCP server's
 * file operations) through its root: the supervisor gets it now, as an O_PATH descriptor,
 * because /proc/1/root of a non-dumpable init is closed to the caller when rootless. */
static void send_root(void)
{
	int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		fail_errno("mounts", "opening the new root");
	send_msg(SYNC_ROOT, "mounts", 0, 0, "", &fd, 1);
	close(fd);
}

static void setup(const struct warden_plan *plan, int *tree_fds, bool *workdir_created,
                  struct sync_shared *shared, bool service)
{
	struct warden_error *e = NULL;
	umask(0);
	if (plan->policy->net_mode != WARDEN_NET_HOST && ns_net_loopback_up(&e) < 0)
		fail("network", e);
	if (ns_rootfs_setup(plan, tree_fds, workdir_created, &e) < 0)
		fail("mounts", e);
	if (sethostname(plan->hostname, strlen(plan->hostname)) < 0)
		fail_errno("uts namespace", "sethostname");
	if (plan->policy->net_mode == WARDEN_NET_PROXY || plan->gateway)
		send_listeners(plan);
	if (service)
		send_root();
	/* Init must be in its cgroups before the cgroup namespace is made. */
	await_flag(&shared->joined, SYNC_JOINED);
	/* The cgroup namespace is entered only now that the supervisor has put init in its
	 * groups: the sandbox sees its own group as "/" and nothing above it. */
	if (unshare(CLONE_NEWCGROUP) < 0)
		fail_errno("cgroup namespace", "unshare");
	if (ns_rlimits_apply(plan, &e) < 0)
		fail("rlimits", e);
	if (ns_caps_restrict_init(&e) < 0)
		fail("capabilities", e);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fail_errno("no_new_privs", "prctl");
	if (ns_landlock_apply(plan, *workdir_created, &e) < 0)
		fail("landlock", e);
	if (ns_seccomp_apply(plan, &e) < 0)
		fail("seccomp", e);
}

/* ---- starting a process ------------------------------------------------------------ */

struct pty {
	int master, slave;
};

static void open_pty(const struct warden_process *proc, struct pty *pty)
{
	pty->master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (pty->master < 0)
		fail_errno("tty", "/dev/ptmx");
	int unlock = 0;
	if (ioctl(pty->master, TIOCSPTLCK, &unlock) < 0)
		fail_errno("tty", "unlocking the pty");
	/* TIOCGPTPEER opens the peer through the master, never by a path that could be
	 * raced. */
	pty->slave = ioctl(pty->master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (pty->slave < 0)
		fail_errno("tty", "opening the pty peer");
	if (proc->winsize.ws_row && ioctl(pty->master, TIOCSWINSZ, &proc->winsize) < 0)
		fail_errno("tty", "setting the window size");
}

/* The status a shell would report: N, or 128+N when killed by signal N. */
static int shell_status(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 125;
}

/* What a started process gets: its arguments, environment and directory, and either a
 * terminal (tty_slave) or three descriptors for its stdio (-1: keep init's). */
struct launch {
	char **argv, **envp;
	const char *workdir;
	int tty_slave;
	int stdio[3];
};

/* Marks a child's errno: it failed entering the working directory, not executing. */
#define IN_WORKDIR 0x40000000

/* Runs in the vfork()ed child, on init's memory until execve: no allocation, raw
 * system calls for identity changes, failure reported through *child_errno. */
static _Noreturn void exec_child(const struct warden_plan *plan, const struct launch *l,
                                 volatile int *child_errno)
{
	sigset_t all;
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	if (setsid() < 0)
		goto fail;
	if (l->tty_slave >= 0) {
		if (ioctl(l->tty_slave, TIOCSCTTY, 0) < 0)
			goto fail;
		for (int fd = 0; fd <= 2; fd++)
			if (dup2(l->tty_slave, fd) < 0)
				goto fail;
	}
	for (int fd = 0; fd <= 2; fd++)
		if (l->stdio[fd] >= 0 && dup2(l->stdio[fd], fd) < 0)
			goto fail;
	const struct warden_policy *p = plan->policy;
	if (syscall(SYS_setresgid, p->gid, p->gid, p->gid) < 0 ||
	    syscall(SYS_setresuid, p->uid, p->uid, p->uid) < 0)
		goto fail;
	if (ns_caps_drop_all(NULL) < 0)
		goto fail;
	umask(022);
	if (chdir(l->workdir) < 0) {
		*child_errno = (errno ? errno : EINVAL) | IN_WORKDIR;
		_exit(127);
	}
	environ = l->envp;
	execvp(l->argv[0], l->argv);
fail:
	*child_errno = errno ? errno : EINVAL;
	_exit(127);
}

/* vfork: the command starts without copying init's page tables; init resumes once the
 * child has exec'd or failed. */
static pid_t launch(const struct warden_plan *plan, const struct launch *l, int *ret_errno,
                    bool *ret_workdir)
{
	static volatile int child_errno;
	child_errno = 0;
	pid_t pid = vfork();
	if (pid == 0)
		exec_child(plan, l, &child_errno);
	if (pid < 0) {
		*ret_errno = errno;
		*ret_workdir = false;
		return -2;
	}
	*ret_errno = child_errno & ~IN_WORKDIR;
	*ret_workdir = child_errno & IN_WORKDIR;
	if (child_errno) {
		waitpid(pid, NULL, 0);
		return -1;
	}
	return pid;
}

static pid_t start_process(const struct warden_plan *plan, const struct warden_process *proc,
                           const struct pty *pty)
{
	const struct launch l = {.argv = proc->argv,
	                         .envp = plan->envp,
	                         .workdir = plan->workdir,
	                         .tty_slave = proc->tty ? pty->slave : -1,
	                         .stdio = {-1, -1, -1}};
	int e;
	bool in_workdir;
	pid_t pid = launch(plan, &l, &e, &in_workdir);
	if (pid == -2) {
		errno = e;
		fail_errno("exec", "vfork");
	}
	if (pid < 0) {
		send_msg(SYNC_EXEC_FAILED, "exec", e, 0, in_workdir ? plan->workdir : proc->argv[0],
		         NULL, 0);
		_exit(127);
	}
	return pid;
}

/* ---- commands on request (service sandboxes) --------------------------------------- */

#define MAX_EXECS 4096

struct exec_slot {
	uint32_t id;
	pid_t pid;
};

static struct exec_slot execs[MAX_EXECS];
static size_t n_execs;

static void exec_reply(uint32_t type, uint32_t id, int status, int errnum, const char *text)
{
	struct sync_msg m = {.type = type, .pid = (int32_t)id, .status = status, .errnum = errnum};
	snprintf(m.text, sizeof(m.text), "%s", text ? text : "");
	(void)sync_send(SOCK_FD, &m, NULL, 0);
}

/* NAME=VALUE over the sandbox's environment: replaces NAME, or is added. */
static void env_set(struct strv *env, const char *entry)
{
	size_t n = strcspn(entry, "=");
	for (size_t i = 0; i < env->n; i++)
		if (!strncmp(env->v[i], entry, n) && env->v[i][n] == '=') {
			free(env->v[i]);
			env->v[i] = xstrdup(entry);
			return;
		}
	strv_push(env, entry);
}

/* The request comes from the supervisor, which checked it; init still refuses what it
 * cannot run rather than trusting its shape. */
static const char *parse_exec_spec(int fd, const struct warden_plan *plan, struct strv *argv,
                                   struct strv *env, char **workdir)
{
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_size <= 0 || st.st_size > SYNC_EXEC_SPEC_MAX)
		return "bad request size";
	_cleanup_free_ char *buf = xmalloc((size_t)st.st_size);
	if (pread(fd, buf, (size_t)st.st_size, 0) != st.st_size || buf[st.st_size - 1] != '\0')
		return "unreadable request";
	for (char **e = plan->envp; *e; e++)
		strv_push(env, *e);
	for (char *p = buf; p < buf + st.st_size; p += strlen(p) + 1) {
		if (*p == 'A')
			strv_push(argv, p + 1);
		else if (*p == 'E' && strchr(p + 1, '=') && p[1] != '=')
			env_set(env, p + 1);
		else if (*p == 'W' && p[1] == '/' && !*workdir)
			*workdir = xstrdup(p + 1);
		else
			return "malformed request";
	}
	return argv->n ? NULL : "no command";
}

static void start_exec(const struct warden_plan *plan, const struct sync_msg *m, int *fds,
                       unsigned nfds)
{
	uint32_t id = (uint32_t)m->pid;
	struct strv argv = {0}, env = {0};
	char *workdir = NULL;
	const char *bad = nfds != 4 ? "expected 4 descriptors" : NULL;
	if (!bad && n_execs == MAX_EXECS)
		bad = "too many commands running";
	if (!bad)
		bad = parse_exec_spec(fds[0], plan, &argv, &env, &workdir);
	if (bad) {
		exec_reply(SYNC_EXEC_EXIT, id, 125, EINVAL, bad);
	} else {
		const struct launch l = {.argv = argv.v,
		                         .envp = env.v,
		                         .workdir = workdir ? workdir : plan->workdir,
		                         .tty_slave = -1,
		                         .stdio = {fds[1], fds[2], fds[3]}};
		int e = 0;
		bool in_workdir = false;
		pid_t pid = launch(plan, &l, &e, &in_workdir);
		if (pid < 0 && in_workdir) {
			char what[sizeof(((struct sync_msg *)0)->text)];
			snprintf(what, sizeof(what), "working directory %s", l.workdir);
			exec_reply(SYNC_EXEC_EXIT, id, 126, e, what);
		} else if (pid < 0) {
			exec_reply(SYNC_EXEC_EXIT, id, e == ENOENT ? 127 : 126, e, argv.v[0]);
		} else {
			execs[n_execs++] = (struct exec_slot){id, pid};
			exec_reply(SYNC_EXEC_STARTED, id, pid, 0, NULL);
		}
	}
	for (unsigned i = 0; i < nfds; i++)
		close(fds[i]);
	strv_clear(&argv);
	strv_clear(&env);
	free(workdir);
}

static void signal_exec(const struct sync_msg *m)
{
	for (size_t i = 0; i < n_execs; i++)
		if (execs[i].id == (uint32_t)m->pid && m->status > 0 && m->status < NSIG) {
			/* Each command leads its own session: the signal reaches what it started,
			 * not the sandbox's other commands. */
			if (kill(-execs[i].pid, m->status) < 0)
				(void)kill(execs[i].pid, m->status);
			return;
		}
}

/* A process reaped: if it was a command of a request, report its end. */
static void exec_ended(pid_t pid, int status)
{
	for (size_t i = 0; i < n_execs; i++)
		if (execs[i].pid == pid) {
			exec_reply(SYNC_EXEC_EXIT, execs[i].id, shell_status(status), 0, NULL);
			execs[i] = execs[--n_execs];
			return;
		}
}

/* ---- pid 1 ------------------------------------------------------------------------- */

static const int forwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM};

/* A message from the supervisor: requests of a service sandbox, or (any sandbox) EOF,
 * which means the supervisor is gone, and a sandbox without its supervisor ends. */
static void from_supervisor(const struct warden_plan *plan, bool service)
{
	struct sync_msg m;
	int fds[4];
	unsigned nfds = 0;
	int r = sync_recv(SOCK_FD, &m, fds, ARRAY_SIZE(fds), &nfds);
	if (r == -EPIPE)
		_exit(125);
	if (r < 0 || !service) {
		for (unsigned i = 0; i < nfds; i++)
			close(fds[i]);
		return;
	}
	if (m.type == SYNC_EXEC) {
		start_exec(plan, &m, fds, nfds);
		return;
	}
	for (unsigned i = 0; i < nfds; i++)
		close(fds[i]);
	if (m.type == SYNC_EXEC_SIGNAL)
		signal_exec(&m);
}

/* main_pid: the sandbox's main process, whose end ends it; 0 in a service sandbox, which
 * ends when its supervisor says so (or goes). */
static _Noreturn void pid1_loop(const struct warden_plan *plan, pid_t main_pid, int sfd)
{
	struct pollfd pfd[2] = {{.fd = sfd, .events = POLLIN}, {.fd = SOCK_FD, .events = POLLIN}};
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			_exit(125);
		}
		if (pfd[1].revents)
			from_supervisor(plan, main_pid == 0);
		if (!pfd[0].revents)
			continue;
		struct signalfd_siginfo si;
		if (read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo != SIGCHLD) {
			if (main_pid && kill(-main_pid, (int)si.ssi_signo) < 0)
				(void)kill(main_pid, (int)si.ssi_signo);
			continue;
		}
		int status;
		pid_t pid;
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			if (main_pid && pid == main_pid)
				/* pid 1 exiting ends every other process of the sandbox; its status
				 * is the main process's (sync.h). */
				_exit(shell_status(status));
			exec_ended(pid, status);
		}
	}
}

_Noreturn void ns_init_main(const struct warden_plan *plan, const struct warden_process *proc,
                            int sock, struct sync_shared *shared)
{
	int tree_fds[SYNC_MAX_FDS + 1];
	bool workdir_created = false;
	struct pty pty = {-1, -1};

	/* The sandbox dies with its supervisor, whatever kills it. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		_exit(125);
	isolate_fds(sock);
	/* A service sandbox's commands bring their own stdio; the caller's (a daemon's pipes,
	 * a terminal) must not stay open here for the sandbox's lifetime. */
	if (proc->service) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		for (int fd = 0; null >= 0 && fd <= 2; fd++)
			if (fd != null && dup2(null, fd) < 0)
				_exit(125);
		if (null > 2)
			close(null);
	}
	/* The command's arguments may live in the area about to be cleared. */
	struct warden_process own = *proc;
	own.argv = proc->argv ? strv_copy(proc->argv) : NULL;
	proc = &own;
	hide_host_args();
	/* The remaining namespaces are made now, in parallel with the supervisor writing the
	 * id maps: init already holds every capability in its new user namespace, which will
	 * own them. A network namespace costs the most of all to create. */
	int ns = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;
	if (plan->policy->net_mode != WARDEN_NET_HOST)
		ns |= CLONE_NEWNET;
	if (unshare(ns) < 0)
		fail_errno("namespaces", "unshare");
	spin_on(&shared->go);
	receive_go(plan, tree_fds);
	take_identity(plan);
	/* Changing credentials clears the parent-death signal: set it again. A supervisor
	 * that died in between is noticed at the next read of the socket (JOINED). */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		_exit(125);
	setup(plan, tree_fds, &workdir_created, shared, proc->service);
	/* No process starts before telemetry watches the sandbox and the record of its
	 * creation is on disk; init's own confinement above went on meanwhile. */
	await_flag(&shared->start, SYNC_START);
	munmap(shared, sizeof(*shared));

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	for (size_t i = 0; i < ARRAY_SIZE(forwarded); i++)
		sigaddset(&mask, forwarded[i]);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		fail_errno("init", "sigprocmask");
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0)
		fail_errno("init", "signalfd");

	if (proc->tty)
		open_pty(proc, &pty);
	pid_t main_pid = proc->service ? 0 : start_process(plan, proc, &pty);
	/* Not dumpable: the sandbox user's processes cannot ptrace or read init. Set only now,
	 * because it also makes /proc/1 root-owned, which the setup above did not want. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		fail_errno("init", "dumpable");
	if (proc->tty) {
		send_msg(SYNC_READY, "", 0, 0, "", &pty.master, 1);
		close(pty.master);
		close(pty.slave);
	}
	pid1_loop(plan, main_pid, sfd);
}
