/* spawn.c: the namespace backend's host side: clone3, id maps, cgroups, the GO handshake,
 * events, signals and teardown.
 *
 * Sections: state; clone3; start; events; signals; destroy; the backend table.
 */
#define _GNU_SOURCE
#include "ns.h"
#include "../init/init.h"
#include "../sandbox.h"
#include "../sync.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

struct ns_state {
	pid_t pid;
	int pidfd;
	int sock;
	struct ns_cgroup cg;
	bool reaped;
	int status; /* init's wait status, once reaped */
};

static pid_t clone3_child(uint64_t flags, int *ret_pidfd)
{
	struct clone_args args = {
	    .flags = flags | CLONE_PIDFD,
	    .pidfd = (uint64_t)(uintptr_t)ret_pidfd,
	    .exit_signal = SIGCHLD,
	};
	return (pid_t)syscall(SYS_clone3, &args, sizeof(args));
}

static int clone_error(int e, const struct warden_plan *plan, struct warden_error **err)
{
	if ((e == EPERM || e == EACCES || e == ENOSPC) && plan->rootless)
		return warden_error_set(
		    err, e,
		    "user namespaces: this kernel or distribution does not let "
		    "unprivileged users create them (check "
		    "user.max_user_namespaces, kernel.unprivileged_userns_clone "
		    "and AppArmor's restrict_unprivileged_userns)");
	return warden_error_set(err, e, "creating the sandbox's namespaces");
}

static void random_id(char out[17])
{
	uint8_t b[8];
	if (getrandom(b, sizeof(b), 0) != sizeof(b))
		memset(b, 0, sizeof(b));
	for (int i = 0; i < 8; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* Root mode: the sandbox user is a host uid of its own, so the caller's stdin, stdout
 * and stderr pipes (root's, mode 0600) could be used through the descriptors the sandbox
 * inherits but not reopened through /dev/stdout, which scripts do. An anonymous pipe
 * belongs to nobody but the processes holding it, so handing it to the sandbox user's
 * host ids grants nothing beyond what the inherited descriptors already give. Files and
 * terminals are the caller's own and are left alone. */
static void share_stdio_pipes(const struct warden_plan *plan)
{
	if (plan->rootless)
		return;
	for (int fd = 0; fd <= 2; fd++) {
		struct stat st;
		char link[32], target[32];
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		ssize_t n = readlink(link, target, sizeof(target) - 1);
		if (n <= 0 || fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode))
			continue;
		target[n] = '\0';
		if (strncmp(target, "pipe:", 5) != 0)
			continue; /* a named FIFO in a file system: the caller's file */
		(void)!fchown(fd, plan->host_base + plan->policy->uid,
		              plan->host_base + plan->policy->gid);
	}
}

/* A send to init failed: init most likely stopped on an error of its own, which it sent
 * before exiting; that message says far more than the broken pipe does. */
static int send_failed(struct ns_state *st, int r, struct warden_error **err)
{
	struct sync_msg m;
	struct pollfd p = {.fd = st->sock, .events = POLLIN};
	if (poll(&p, 1, 0) == 1 && sync_recv(st->sock, &m, NULL, 0, NULL) == 0 &&
	    (m.type == SYNC_ERROR || m.type == SYNC_EXEC_FAILED))
		return warden_error_set(err, m.errnum, "%s: %s", m.step, m.text);
	return warden_error_set(err, -r, "starting the sandbox");
}

/* Send m to init and raise *flag, which init spins on before it reads (sync.h). */
static int send_flagged(struct ns_state *st, uint32_t *flag, const struct sync_msg *m,
                        const int *fds, unsigned nfds, struct warden_error **err)
{
	int r = sync_send(st->sock, m, fds, nfds);
	if (r < 0)
		return send_failed(st, r, err);
	/* Published after the message is queued, so init's recv never blocks. */
	__atomic_store_n(flag, 1, __ATOMIC_RELEASE);
	return 0;
}

static int send_go(struct ns_state *st, const struct warden_plan *plan, const int *tree_fds,
                   struct sync_shared *shared, struct warden_error **err)
{
	struct sync_msg m = {.type = SYNC_GO};
	int fds[SYNC_MAX_FDS];
	unsigned n = 0;
	for (size_t i = 0; i <= plan->n_binds && i < sizeof(m.text) - 1; i++) {
		m.text[i] = tree_fds[i] >= 0 ? '1' : '0';
		if (tree_fds[i] >= 0 && n < SYNC_MAX_FDS)
			fds[n++] = tree_fds[i];
	}
	return send_flagged(st, &shared->go, &m, fds, n, err);
}

static int send_flag(struct ns_state *st, uint32_t *flag, uint32_t type, struct warden_error **err)
{
	return send_flagged(st, flag, &(struct sync_msg){.type = type}, NULL, 0, err);
}

/* The groups are made and joined while init builds its mounts: init waits for JOINED
 * before its cgroup namespace exists, and for START before any process does (sync.h). */
static int join_cgroups(struct warden_sandbox *sb, struct ns_state *st, struct sync_shared *shared,
                        struct warden_error **err)
{
	if (ns_cgroup_create(sb->id, sb->plan, &st->cg, err) < 0)
		return -1;
	for (size_t i = 0; i < st->cg.warnings.n; i++)
		strv_push(&sb->warnings, st->cg.warnings.v[i]);
	if (ns_cgroup_attach(&st->cg, st->pid, err) < 0)
		return warden_error_wrap(err, "cgroups");
	if (st->cg.v2_path)
		(void)ns_cgroup_id(st->cg.v2_path, &sb->cgroup_id);
	sb->can_freeze = ns_cgroup_can_freeze(&st->cg);
	if (send_flag(st, &shared->joined, SYNC_JOINED, err) < 0)
		return -1;
	/* Telemetry attaches and the audit record becomes durable while init confines itself,
	 * and before any process of the sandbox exists. */
	if (sb->hook && sb->hook(sb, WARDEN_HOOK_READY, sb->hook_ctx, err) < 0)
		return -1;
	return send_flag(st, &shared->start, SYNC_START, err);
}

/* Proxy mode and the gateway: the listeners init made in the sandbox's network, sent as
 * soon as the namespace existed, before anything of the sandbox runs. */
static int receive_listeners(struct warden_sandbox *sb, struct ns_state *st,
                             struct warden_error **err)
{
	struct sync_msg m;
	int fds[WARDEN_NET_LISTENERS];
	unsigned got = 0, used = 0;
	int r = sync_recv(st->sock, &m, fds, WARDEN_NET_LISTENERS, &got);
	if (r == 0 && (m.type == SYNC_ERROR || m.type == SYNC_EXEC_FAILED))
		r = warden_error_set(err, m.errnum, "%s: %s", m.step, m.text);
	else if (r < 0 || m.type != SYNC_NET)
		r = warden_error_set(err, r < 0 ? -r : EBADMSG, "init: no network listeners");
	/* m.text says which listener each fd is, in order: '1' for present. */
	for (int i = 0; r == 0 && i < WARDEN_NET_LISTENERS; i++)
		if (m.text[i] == '1') {
			if (used == got) {
				r = warden_error_set(err, EBADMSG, "init: listeners missing");
				break;
			}
			sb->net_fds[i] = fds[used++];
		}
	while (used < got)
		close(fds[used++]);
	return r < 0 ? -1 : 0;
}

static int receive_root(struct warden_sandbox *sb, struct ns_state *st, struct warden_error **err)
{
	struct sync_msg m;
	int fd = -1;
	unsigned got = 0;
	int r = sync_recv(st->sock, &m, &fd, 1, &got);
	if (r == 0 && (m.type == SYNC_ERROR || m.type == SYNC_EXEC_FAILED))
		r = warden_error_set(err, m.errnum, "%s: %s", m.step, m.text);
	else if (r < 0 || m.type != SYNC_ROOT || got != 1)
		r = warden_error_set(err, r < 0 ? -r : EBADMSG, "init: no root directory");
	if (r < 0) {
		if (got)
			close(fd);
		return -1;
	}
	sb->root_fd = fd;
	return 0;
}

/* With a tty the supervisor needs the terminal before it can relay anything. */
static int wait_ready(struct warden_sandbox *sb, struct ns_state *st, struct warden_error **err)
{
	struct sync_msg m;
	int pty = -1;
	unsigned got = 0;
	int r = sync_recv(st->sock, &m, &pty, 1, &got);
	if (r == 0 && m.type == SYNC_READY && got == 1) {
		sb->pty_fd = pty;
		return 0;
	}
	if (got)
		close(pty);
	if (r == 0 && (m.type == SYNC_ERROR || m.type == SYNC_EXEC_FAILED))
		return warden_error_set(err, m.errnum, "%s: %s", m.step, m.text);
	return warden_error_set(err, r < 0 ? -r : EBADMSG, "init: no terminal from the sandbox");
}

static int ns_start(struct warden_sandbox *sb, const struct warden_process *proc,
                    struct warden_error **err)
{
	const struct warden_plan *plan = sb->plan;
	struct ns_state *st = xcalloc(1, sizeof(*st));
	int tree_fds[SYNC_MAX_FDS + 1];
	int sv[2];
	st->pidfd = st->sock = -1;
	st->cg.v2_fd = -1;
	sb->priv = st;
	random_id(sb->id);
	share_stdio_pipes(plan);

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return warden_error_set(err, errno, "socketpair");
	struct sync_shared *shared =
	    mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED) {
		close(sv[0]);
		close(sv[1]);
		return warden_error_set(err, errno, "mmap");
	}

	/* Only the user and pid namespaces are made here (init must be pid 1 of the new pid
	 * namespace); init makes the others itself while this side writes its id maps. */
	pid_t pid = clone3_child(CLONE_NEWUSER | CLONE_NEWPID, &st->pidfd);
	if (pid == 0) {
		close(sv[0]);
		ns_init_main(plan, proc, sv[1], shared);
	}
	int clone_errno = errno;
	close(sv[1]);
	st->sock = sv[0];
	int r = -1;
	if (pid < 0) {
		clone_error(clone_errno, plan, err);
		goto out;
	}
	st->pid = pid;
	sb->init_pid = pid;
	if (ns_userns_write_maps(pid, plan, err) < 0) {
		warden_error_wrap(err, "user namespace");
		goto out;
	}
	if (ns_mounts_prepare_detached(plan, pid, tree_fds, err) < 0) {
		warden_error_wrap(err, "mounts");
		goto out;
	}
	r = send_go(st, plan, tree_fds, shared, err);
	for (size_t i = 0; i <= plan->n_binds; i++)
		if (tree_fds[i] >= 0)
			close(tree_fds[i]);
	/* Only after the clone: a thread the hook starts must not exist then, or init could
	 * inherit a lock it held (malloc's, stdio's) and wait on it forever. And after GO,
	 * which init waits for, spinning. */
	if (r == 0 && sb->hook)
		r = sb->hook(sb, WARDEN_HOOK_PREPARE, sb->hook_ctx, err);
	if (r == 0)
		r = join_cgroups(sb, st, shared, err);
	if (r == 0 && (plan->policy->net_mode == WARDEN_NET_PROXY || plan->gateway))
		r = receive_listeners(sb, st, err);
	if (r == 0 && proc->service)
		r = receive_root(sb, st, err);
	if (r == 0 && proc->tty)
		r = wait_ready(sb, st, err);
out:
	munmap(shared, sizeof(*shared));
	sb->fds[0] = st->sock;
	sb->fds[1] = st->pidfd;
	return r;
}

static int reap(struct ns_state *st, int options)
{
	siginfo_t si = {0};
	if (st->reaped)
		return 1;
	while (waitid(P_PIDFD, (id_t)st->pidfd, &si, WEXITED | options) < 0)
		if (errno != EINTR)
			return -errno;
	if (si.si_pid == 0)
		return 0; /* WNOHANG: still running */
	st->reaped = true;
	st->status =
	    si.si_code == CLD_EXITED ? W_EXITCODE(si.si_status, 0) : W_EXITCODE(0, si.si_status);
	return 1;
}

static int ns_next_event(struct warden_sandbox *sb, struct warden_event *ev,
                         struct warden_error **err)
{
	struct ns_state *st = sb->priv;
	struct sync_msg m;
	memset(ev, 0, sizeof(*ev));
	if (st->sock >= 0) {
		struct pollfd p = {.fd = st->sock, .events = POLLIN};
		if (poll(&p, 1, 0) == 1) {
			int r = sync_recv(st->sock, &m, NULL, 0, NULL);
			if (r == 0 && (m.type == SYNC_EXEC_STARTED || m.type == SYNC_EXEC_EXIT)) {
				ev->kind = m.type == SYNC_EXEC_STARTED ? WARDEN_EVENT_EXEC_STARTED
				                                       : WARDEN_EVENT_EXEC_EXIT;
				ev->exec_id = (uint32_t)m.pid;
				ev->pid = m.status;
				ev->code = m.status;
				ev->errnum = m.errnum;
				m.text[sizeof(m.text) - 1] = '\0';
				snprintf(ev->text, sizeof(ev->text), "%s", m.text);
				return 0;
			}
			if (r == 0 && (m.type == SYNC_ERROR || m.type == SYNC_EXEC_FAILED)) {
				ev->kind = WARDEN_EVENT_FAILED;
				ev->errnum = m.errnum;
				ev->exec = m.type == SYNC_EXEC_FAILED;
				snprintf(ev->text, sizeof(ev->text), "%s: %s", m.step, m.text);
				return 0;
			}
			if (r == 0)
				return warden_error_set(
				    err, EBADMSG, "unexpected message %u from the sandbox", m.type);
			/* EOF or a broken message: init is ending; its exit says the rest. */
			close(st->sock);
			st->sock = sb->fds[0] = -1;
		}
	}
	int r = reap(st, WNOHANG);
	if (r < 0)
		return warden_error_set(err, -r, "waiting for the sandbox");
	if (r == 0)
		return 0;
	if (WIFEXITED(st->status)) {
		ev->kind = WARDEN_EVENT_EXITED;
		ev->code = WEXITSTATUS(st->status);
	} else {
		ev->kind = WARDEN_EVENT_LOST;
		snprintf(ev->text, sizeof(ev->text), "the sandbox's init was killed by %s",
		         strsignal(WTERMSIG(st->status)));
	}
	sb->fds[1] = -1;
	return 0;
}

static int ns_signal(struct warden_sandbox *sb, int sig, struct warden_error **err)
{
	struct ns_state *st = sb->priv;
	if (st->reaped)
		return 0;
	if (syscall(SYS_pidfd_send_signal, st->pidfd, sig, NULL, 0) < 0 && errno != ESRCH)
		return warden_error_set(err, errno, "signalling the sandbox");
	return 0;
}

static int ns_sample(struct warden_sandbox *sb, struct warden_sample *out)
{
	struct ns_state *st = sb->priv;
	ns_cgroup_sample(&st->cg, out);
	return 0;
}

static int ns_freeze(struct warden_sandbox *sb, bool frozen, struct warden_error **err)
{
	struct ns_state *st = sb->priv;
	return ns_cgroup_freeze(&st->cg, frozen, err);
}

static int ns_kill(struct warden_sandbox *sb, struct warden_error **err)
{
	struct ns_state *st = sb->priv;
	/* cgroup.kill also reaches frozen processes; killing init ends the pid namespace,
	 * which holds every process of the sandbox, where there is no v2 group. */
	if (st->reaped || ns_cgroup_kill(&st->cg) == 0)
		return 0;
	if (syscall(SYS_pidfd_send_signal, st->pidfd, SIGKILL, NULL, 0) < 0 && errno != ESRCH)
		return warden_error_set(err, errno, "killing the sandbox");
	return 0;
}

static void ns_destroy(struct warden_sandbox *sb)
{
	struct ns_state *st = sb->priv;
	if (!st)
		return;
	if (st->pidfd >= 0) {
		/* Killing pid 1 ends the whole pid namespace; once it is reaped every process
		 * of the sandbox is gone, so the cgroups are empty below. */
		if (!st->reaped)
			(void)syscall(SYS_pidfd_send_signal, st->pidfd, SIGKILL, NULL, 0);
		(void)reap(st, 0);
		close(st->pidfd);
	}
	if (st->sock >= 0)
		close(st->sock);
	ns_cgroup_destroy(&st->cg);
	free(st);
	sb->priv = NULL;
}

/* The request goes to init as a memfd (sync.h): any length of arguments and environment
 * fits, and init reads it with no more than pread. */
static int ns_exec(struct warden_sandbox *sb, uint32_t id, const struct warden_exec *x,
                   struct warden_error **err)
{
	struct ns_state *st = sb->priv;
	if (st->sock < 0)
		return warden_error_set(err, EPIPE, "the sandbox has ended");
	_cleanup_close_ int mfd = memfd_create("warden-exec", MFD_CLOEXEC);
	if (mfd < 0)
		return warden_error_set(err, errno, "memfd_create");
	FILE *f = fdopen(dup(mfd), "w");
	if (!f)
		return warden_error_set(err, errno, "fdopen");
	if (x->workdir)
		fprintf(f, "W%s%c", x->workdir, 0);
	for (char *const *a = x->argv; *a; a++)
		fprintf(f, "A%s%c", *a, 0);
	for (char *const *e = x->env; e && *e; e++)
		fprintf(f, "E%s%c", *e, 0);
	long size = ftell(f);
	if (fclose(f) != 0)
		return warden_error_set(err, errno, "writing the request");
	if (size > SYNC_EXEC_SPEC_MAX)
		return warden_error_set(err, E2BIG, "arguments and environment over %d bytes",
		                        SYNC_EXEC_SPEC_MAX);
	struct sync_msg m = {.type = SYNC_EXEC, .pid = (int32_t)id};
	int fds[4] = {mfd, x->stdio[0], x->stdio[1], x->stdio[2]};
	int r = sync_send(st->sock, &m, fds, 4);
	if (r < 0)
		return warden_error_set(err, -r, "sending the command to the sandbox");
	return 0;
}

static int ns_exec_signal(struct warden_sandbox *sb, uint32_t id, int sig,
                          struct warden_error **err)
{
	struct ns_state *st = sb->priv;
	if (st->sock < 0)
		return warden_error_set(err, EPIPE, "the sandbox has ended");
	struct sync_msg m = {.type = SYNC_EXEC_SIGNAL, .pid = (int32_t)id, .status = sig};
	int r = sync_send(st->sock, &m, NULL, 0);
	return r < 0 ? warden_error_set(err, -r, "signalling a command of the sandbox") : 0;
}

const struct warden_backend warden_ns_backend = {
    .name = "namespaces",
    .start = ns_start,
    .next_event = ns_next_event,
    .signal = ns_signal,
    .sample = ns_sample,
    .freeze = ns_freeze,
    .kill = ns_kill,
    .exec = ns_exec,
    .exec_signal = ns_exec_signal,
    .destroy = ns_destroy,
};
