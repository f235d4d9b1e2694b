/* backend.c: the vm backend (docs/vm.md): the sandbox is a microVM under QEMU, and QEMU
 * runs inside a namespace sandbox of its own.
 *
 * Sections: state and checks; QEMU's sandbox; connecting; start; events; the rest of
 * the backend table.
 */
#define _GNU_SOURCE
#include "vm.h"
#include "../util.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

extern char **environ;

#define QEMU_EXEC_ID    1
#define QEMU_OVERHEAD   (256ULL << 20) /* QEMU itself, TCG's 64 MiB cache, slack */
#define CONNECT_TIMEOUT 10000          /* ms for QEMU to connect its sockets */
#define VM_MEMORY_MIN   (96ULL << 20)  /* the least guest RAM that boots with room to spare */

/* ---- state and checks -------------------------------------------------------------- */

/* What a vm sandbox cannot do (yet), refused up front with the reason. */
static int check(const struct warden_plan *plan, const struct warden_process *proc,
                 struct warden_error **err)
{
	(void)proc; /* every kind of process is supported */
	if (plan->n_devices || plan->n_gpus)
		return warden_error_set(err, ENOTSUP,
		                        "isolation vm: devices and GPUs are not passed into the "
		                        "guest (devices:, gpu:, --device, --gpu)");
	if (plan->policy->net_mode == WARDEN_NET_HOST)
		return warden_error_set(err, ENOTSUP,
		                        "isolation vm: network mode host is not supported (only "
		                        "none and proxy: the guest has no network device)");
	/* The guest's RAM is the limit, its kernel's own share (about 35 MiB) included: with
	 * less the guest panics while it boots. */
	if (plan->policy->memory && plan->policy->memory < VM_MEMORY_MIN) {
		char size[32];
		format_size(plan->policy->memory, size, sizeof(size));
		return warden_error_set(
		    err, 0,
		    "isolation vm: memory %s is too little for a guest (at least "
		    "96M: its kernel's own share is in it)",
		    size);
	}
	return 0;
}

/* Seconds (fractions allowed) from the environment variable name, in ms and at most an
 * hour; def where it is unset or not a number. */
static int env_ms(const char *name, int def)
{
	const char *s = getenv(name);
	uint64_t v;
	const char *why;
	if (s && parse_milli(s, &v, &why) == 0)
		return (int)(v > 3600000 ? 3600000 : v);
	return def;
}

static int boot_timeout_ms(const struct vm_assets *a)
{
	int def = a->accel == VM_ACCEL_KVM ? 10000 : 60000;
	int v = env_ms("WARDEN_VM_BOOT_TIMEOUT", def);
	return v > 0 ? v : def;
}

/* How long a guest that came up may stay silent before it is taken for wedged (relay.c):
 * generous with TCG, where a loaded host holds an emulated guest up for seconds at a
 * time. WARDEN_VM_HEARTBEAT_TIMEOUT=0 turns the heartbeat off. */
static int heartbeat_ms(const struct vm_assets *a)
{
	return env_ms("WARDEN_VM_HEARTBEAT_TIMEOUT", a->accel == VM_ACCEL_KVM ? 10000 : 20000);
}

static int rm_entry(const char *path, const struct stat *s, int type, struct FTW *f);

#define LIVE_FILE      "live"
#define LOCKLESS_AGE_S 60

/* State directories of supervisors that were killed (SIGKILL leaves them) are removed: a
 * live supervisor holds an exclusive flock on the directory's "live" file, which the
 * kernel drops when the supervisor dies. Why a lock and not a probe of the agent socket:
 * a connection to a starting supervisor's socket would be the one it accepts as QEMU's,
 * and a concurrent start would take the other for dead. The file appears (by rename) only
 * once locked; a directory without one is a start between mkdtemp() and that rename, or
 * one killed in between, removed only once it is old. */
static void sweep_state_dirs(const char *base)
{
	_cleanup_closedir_ DIR *d = opendir(base);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		_cleanup_free_ char *dir = xasprintf("%s/%s", base, e->d_name);
		_cleanup_free_ char *live = xasprintf("%s/" LIVE_FILE, dir);
		_cleanup_close_ int fd = open(live, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		struct stat s;
		bool stale = fd >= 0
		                 ? flock(fd, LOCK_EX | LOCK_NB) == 0
		                 : errno == ENOENT && lstat(dir, &s) == 0 && S_ISDIR(s.st_mode) &&
		                       time(NULL) - s.st_mtime > LOCKLESS_AGE_S;
		if (stale)
			(void)nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	}
}

/* The "live" file of dir, locked, then named: see sweep_state_dirs(). Returns its fd. */
static int hold_live(const char *dir, struct warden_error **err)
{
	_cleanup_free_ char *tmp = xasprintf("%s/" LIVE_FILE ".new", dir);
	_cleanup_free_ char *live = xasprintf("%s/" LIVE_FILE, dir);
	int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX) < 0 || rename(tmp, live) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return warden_error_set(err, e, "locking %s", live);
	}
	return fd;
}

/* The state directory is bound into QEMU's sandbox at the same path, so it must not lie
 * under a directory that sandbox replaces (/tmp is its own tmpfs there). */
static char *state_dir(struct warden_error **err)
{
	const char *rt = getenv("XDG_RUNTIME_DIR");
	_cleanup_free_ char *cache = NULL;
	_cleanup_free_ char *base = NULL;
	if (geteuid() == 0) {
		(void)mkdir("/run/warden", 0700);
		base = xstrdup("/run/warden/vm");
	} else if (rt && *rt == '/') {
		base = xasprintf("%s/warden-vm", rt);
	} else {
		if (!(cache = vm_cache_dir(err)))
			return NULL;
		base = xasprintf("%s/run", cache);
	}
	if (mkdir(base, 0700) < 0 && errno != EEXIST) {
		warden_error_set(err, errno, "creating %s", base);
		return NULL;
	}
	sweep_state_dirs(base);
	char *dir = xasprintf("%s/XXXXXX", base);
	if (!mkdtemp(dir)) {
		warden_error_set(err, errno, "creating a directory in %s", base);
		free(dir);
		return NULL;
	}
	return dir;
}

/* The socket appears under its name only once it listens (bound under a temporary name,
 * then renamed): QEMU, started later, never finds a name nobody listens on. */
static int listen_at(const char *dir, const char *name, struct warden_error **err)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
	if ((size_t)snprintf(a.sun_path, sizeof(a.sun_path), "%s.new", path) >= sizeof(a.sun_path))
		return warden_error_set(err, ENAMETOOLONG, "socket path in %s", dir);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1) < 0 ||
	    rename(a.sun_path, path) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return warden_error_set(err, e, "listening on %s", path);
	}
	return fd;
}

/* ---- QEMU's sandbox ---------------------------------------------------------------- */

/* QEMU's sandbox sees each directory it needs at a fixed place under /vm: a host path
 * under /tmp or /var/tmp would be hidden there by the sandbox's own tmpfs. Returns the
 * path inside of host_file, whose directory is bound read-only (once per directory). */
static char *bind_dir_of(struct warden_policy *p, const char *host_file)
{
	_cleanup_free_ char *dir = xstrdup(host_file);
	*strrchr(dir, '/') = '\0';
	const char *base = strrchr(host_file, '/') + 1;
	for (size_t i = 0; i < p->volumes.n; i++)
		if (streq(p->volumes.v[i].host, dir))
			return xasprintf("%s/%s", p->volumes.v[i].path, base);
	_cleanup_free_ char *inside = xasprintf("/vm/ro%zu", p->volumes.n);
	struct warden_mount m = {.host = dir, .path = inside, .rw = false};
	warden_mounts_push(&p->volumes, &m);
	return xasprintf("%s/%s", inside, base);
}

#define STATE_INSIDE "/vm/state"

/* Like Firecracker's jailer: QEMU is confined by warden's own namespace sandbox (no
 * capabilities, seccomp, Landlock, its own pid/net/mount namespaces, a cgroup whose
 * memory limit is the guest's RAM plus QEMU's overhead) and sees only the host's system
 * directories (its libraries), read-only, the kernel, initramfs and root image,
 * read-only, and the sandbox's state directory (its sockets, console log and volume
 * images). No network: the guest has no network device either. */
static struct warden_plan *qemu_plan(const struct vm_state *st, char *inside[3],
                                     struct warden_error **err)
{
	const struct warden_policy *outer = st->sb->plan->policy;
	struct warden_policy *p = warden_policy_new();
	free(p->name);
	p->name = xasprintf("%s (vm)", outer->name);
	struct warden_mount state = {.host = st->state_dir, .path = STATE_INSIDE, .rw = true};
	warden_mounts_push(&p->volumes, &state);
	inside[0] = bind_dir_of(p, st->assets.kernel);
	inside[1] = bind_dir_of(p, st->assets.initrd);
	inside[2] = bind_dir_of(p, st->assets.rootfs);
	/* With KVM, QEMU needs /dev/kvm and nothing else of /dev: granted like any device
	 * (bound in, allowed by the device cgroup). */
	if (st->assets.accel == VM_ACCEL_KVM)
		warden_devices_push(&p->devices, "/dev/kvm", WARDEN_DEV_READ | WARDEN_DEV_WRITE);
	p->memory = outer->memory ? outer->memory + QEMU_OVERHEAD : 0;
	p->pids = 64;
	p->cpus_milli = outer->cpus_milli;
	p->telemetry = false;
	if (!p->memory)
		p->memory = (1ULL << 30) + QEMU_OVERHEAD;
	char *noenv[] = {NULL};
	return warden_plan_compile(p, noenv, err);
}

/* QEMU's cgroups exist and nothing runs yet: the vm sandbox's own hook (audit record,
 * telemetry) runs now, with what it can know. eBPF telemetry would observe QEMU, not the
 * guest, so the sandbox reports no cgroup id for it; samples come from QEMU's cgroup. */
static int qemu_hook(struct warden_sandbox *qsb, enum warden_hook_phase phase, void *ctx,
                     struct warden_error **err)
{
	struct vm_state *st = ctx;
	memcpy(st->sb->id, qsb->id, sizeof(st->sb->id)); /* one id for both */
	st->sb->init_pid = qsb->init_pid;
	st->sb->can_freeze = qsb->can_freeze;
	return st->sb->hook ? st->sb->hook(st->sb, phase, st->sb->hook_ctx, err) : 0;
}

static int start_qemu(struct vm_state *st, bool incoming, struct warden_error **err)
{
	struct warden_process proc = {.service = true};
	char *inside[3] = {NULL, NULL, NULL};
	st->qplan = qemu_plan(st, inside, err);
	if (!st->qplan) {
		for (int i = 0; i < 3; i++)
			free(inside[i]);
		return warden_error_wrap(err, "QEMU's sandbox");
	}
	if (warden_sandbox_start(st->qplan, &proc, qemu_hook, st, &st->qsb, err) < 0) {
		for (int i = 0; i < 3; i++)
			free(inside[i]);
		return warden_error_wrap(err, "QEMU's sandbox");
	}
	struct vm_launch l = {.assets = &st->assets,
	                      .kernel = inside[0],
	                      .initrd = inside[1],
	                      .rootfs = inside[2],
	                      .state_dir = STATE_INSIDE,
	                      .memory = st->sb->plan->policy->memory ? st->sb->plan->policy->memory
	                                                             : 1ULL << 30,
	                      .tmp_size = st->sb->plan->policy->tmp_size,
	                      .volumes = st->vols,
	                      .n_volumes = st->n_vols,
	                      .incoming = incoming,
	                      .read_only_root = !st->sb->plan->policy->rootfs};
	char **argv = vm_qemu_argv(&l);
	for (int i = 0; i < 3; i++)
		free(inside[i]);
	_cleanup_free_ char *log = xasprintf("%s/qemu.log", st->state_dir);
	_cleanup_close_ int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int logfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (null < 0 || logfd < 0) {
		strv_free(argv);
		return warden_error_set(err, errno, "opening %s", log);
	}
	struct warden_exec x = {
	    .argv = argv, .workdir = STATE_INSIDE, .stdio = {null, logfd, logfd}};
	int r = warden_sandbox_exec(st->qsb, QEMU_EXEC_ID, &x, err);
	strv_free(argv);
	return r;
}

/* ---- connecting -------------------------------------------------------------------- */

static bool qemu_ended(struct vm_state *st);

/* QEMU ended before the guest was up: its own log says why. */
static int qemu_gone(struct vm_state *st, const char *what, struct warden_error **err)
{
	char buf[4096] = "", tail[256];
	_cleanup_free_ char *log = xasprintf("%s/qemu.log", st->state_dir);
	ssize_t n = read_file_at(AT_FDCWD, log, buf, sizeof(buf));
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	char *last = strrchr(buf, '\n');
	if (n > 0)
		return warden_error_set(err, 0, "%s: QEMU ended: %s", what, last ? last + 1 : buf);
	vm_console_tail(st, tail, sizeof(tail));
	return warden_error_set(err, 0, "%s: QEMU ended%s%s", what, *tail ? ": " : "", tail);
}

/* Whether QEMU (or its sandbox) ended, from the namespace sandbox's events; waits up to
 * wait_ms for them. */
static bool qemu_ended_within(struct vm_state *st, int wait_ms)
{
	struct pollfd p[2] = {{.fd = st->qsb->fds[0], .events = POLLIN},
	                      {.fd = st->qsb->fds[1], .events = POLLIN}};
	(void)poll(p, 2, wait_ms);
	return qemu_ended(st);
}

static bool qemu_ended(struct vm_state *st)
{
	struct warden_event ev;
	_cleanup_error_ struct warden_error *e = NULL;
	while (warden_sandbox_next_event(st->qsb, &ev, &e) == 0 && ev.kind != WARDEN_EVENT_NONE)
		if (ev.kind != WARDEN_EVENT_EXEC_STARTED)
			return true;
	return e != NULL;
}

static int accept_one(struct vm_state *st, int lfd, const char *what, struct warden_error **err)
{
	for (;;) {
		struct pollfd p[3] = {{.fd = lfd, .events = POLLIN},
		                      {.fd = st->qsb->fds[0], .events = POLLIN},
		                      {.fd = st->qsb->fds[1], .events = POLLIN}};
		int r = poll(p, 3, CONNECT_TIMEOUT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return warden_error_set(err, r ? errno : ETIMEDOUT,
			                        "%s: QEMU did not connect", what);
		if (p[0].revents) {
			int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (fd < 0)
				return warden_error_set(err, errno, "%s: accept", what);
			return fd;
		}
		if (qemu_ended(st))
			return qemu_gone(st, what, err);
	}
}

/* A restored guest shares its kernel's random state with every guest restored from the
 * same snapshot: fresh entropy goes in first, credited and followed by a reseed (the
 * agent does both for this file). */
static void reseed_guest(struct vm_state *st)
{
	uint8_t buf[sizeof("/dev/urandom") + 5 + 64];
	memcpy(buf,
	       "/dev/urandom\0"
	       "0666",
	       sizeof("/dev/urandom") + 5);
	if (getrandom(buf + sizeof("/dev/urandom") + 5, 64, 0) == 64)
		vm_relay_send(st, FRAME_FILE, 0, buf, sizeof(buf));
}

/* QEMU connects, then the guest either boots to READY or is restored from snap. A guest
 * booted cold is saved to snap (when there is one to make) before it does anything. */
static int connect_guest(struct vm_state *st, int agent_l, int qmp_l, const char *snap,
                         bool restore, struct warden_error **err)
{
	if ((st->agent = accept_one(st, agent_l, "the guest agent's port", err)) < 0 ||
	    (st->qmp = accept_one(st, qmp_l, "QMP", err)) < 0)
		return -1;
	if (vm_qmp_handshake(st->qmp, CONNECT_TIMEOUT, err) < 0) {
		if (!qemu_ended_within(st, 2000))
			return -1;
		if (err) {
			warden_error_free(*err);
			*err = NULL;
		}
		return qemu_gone(st, "starting QEMU", err);
	}
	if (restore) {
		if (vm_snapshot_restore(st, snap, err) < 0) {
			unlink(snap); /* the next start boots cold and saves anew */
			return -1;
		}
		reseed_guest(st);
		return 0;
	}
	if (vm_relay_wait_ready(st, boot_timeout_ms(&st->assets), err) < 0) {
		if (qemu_ended(st))
			return qemu_gone(st, "booting the guest", err);
		return -1;
	}
	_cleanup_error_ struct warden_error *e = NULL;
	if (snap && vm_snapshot_save(st, snap, &e) < 0)
		strv_push_take(&st->sb->warnings,
		               xasprintf("isolation vm: %s", warden_error_text(e)));
	return 0;
}

/* ---- start ------------------------------------------------------------------------- */

static void send_file(struct vm_state *st, const char *path, const char *text)
{
	size_t pl = strlen(path) + 1, tl = strlen(text);
	_cleanup_free_ uint8_t *buf = xmalloc(pl + 5 + tl);
	memcpy(buf, path, pl);
	memcpy(buf + pl, "0644", 5);
	memcpy(buf + pl + 5, text, tl);
	vm_relay_send(st, FRAME_FILE, 0, buf, (uint32_t)(pl + 5 + tl));
}

static int add_route(struct vm_state *st, uint32_t id, const int fds[3], struct warden_error **err)
{
	pthread_mutex_lock(&st->mu);
	struct vm_route *r = NULL;
	for (int i = 0; i < VM_ROUTES && !r; i++)
		if (!st->routes[i].used)
			r = &st->routes[i];
	if (r) {
		*r = (struct vm_route){.used = true, .id = id};
		for (int k = 0; k < 3; k++)
			r->fd[k] = fcntl(fds[k], F_DUPFD_CLOEXEC, 3);
	}
	pthread_mutex_unlock(&st->mu);
	return r ? 0 : warden_error_set(err, EBUSY, "more than %d commands at once", VM_ROUTES);
}

/* The sandbox's environment with env's entries set over it. */
static char **merge_env(char *const *base, char *const *env)
{
	struct strv out = {0};
	for (char *const *b = base; b && *b; b++) {
		size_t n = strcspn(*b, "=");
		bool over = false;
		for (char *const *e = env; e && *e && !over; e++)
			over = strncmp(*e, *b, n) == 0 && (*e)[n] == '=';
		if (!over)
			strv_push(&out, *b);
	}
	for (char *const *e = env; e && *e; e++)
		strv_push(&out, *e);
	return out.v;
}

static int send_exec(struct vm_state *st, uint32_t id, char *const *argv, char *const *env,
                     const char *workdir, const uint16_t *tty, struct warden_error **err)
{
	const struct warden_policy *p = st->sb->plan->policy;
	struct frame_exec x = {.argv = (char **)argv,
	                       .env = (char **)env,
	                       .workdir = workdir,
	                       .uid = p->uid,
	                       .gid = p->gid,
	                       .tty = tty != NULL,
	                       .rows = tty ? tty[0] : 0,
	                       .cols = tty ? tty[1] : 0,
	                       .limits = true,
	                       .pids = p->pids > UINT32_MAX ? UINT32_MAX : (uint32_t)p->pids,
	                       .nofile = p->nofile > UINT32_MAX ? UINT32_MAX : (uint32_t)p->nofile};
	uint8_t *buf;
	size_t len;
	const char *why;
	if (frame_exec_encode(&x, &buf, &len, &why) < 0)
		return warden_error_set(err, E2BIG, "%s", why);
	vm_relay_send(st, FRAME_EXEC, id, buf, (uint32_t)len);
	free(buf);
	return 0;
}

/* With a terminal, the agent makes one in the guest for the command and relays its
 * master. The caller gets one end of a socket pair as pty_fd (what it reads is the
 * terminal's output, what it writes its input), the main command's route the other.
 * The size goes with the EXEC request, later sizes as RESIZE frames (vm_resize()). */
static int start_main(struct vm_state *st, const struct warden_process *proc,
                      struct warden_error **err)
{
	const struct warden_plan *plan = st->sb->plan;
	int stdio[3] = {0, 1, 2}, sp[2];
	const uint16_t size[2] = {proc->winsize.ws_row, proc->winsize.ws_col};
	snprintf(st->argv0, sizeof(st->argv0), "%s", proc->argv[0]);
	if (proc->tty) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
			return warden_error_set(err, errno, "socketpair");
		st->sb->pty_fd = sp[0];
		stdio[0] = stdio[1] = stdio[2] = sp[1];
	}
	int r = add_route(st, 0, stdio, err);
	if (proc->tty)
		close(sp[1]);
	if (r < 0)
		return -1;
	return send_exec(st, 0, proc->argv, plan->envp, plan->workdir, proc->tty ? size : NULL,
	                 err);
}

static int vm_start(struct warden_sandbox *sb, const struct warden_process *proc,
                    struct warden_error **err)
{
	const struct warden_plan *plan = sb->plan;
	struct vm_state *st = xcalloc(1, sizeof(*st));
	st->agent = st->qmp = st->live_fd = st->ev[0] = st->ev[1] = st->wake = -1;
	pthread_mutex_init(&st->mu, NULL);
	st->sb = sb;
	st->service = proc->service;
	sb->priv = st;
	if (check(plan, proc, err) < 0 || vm_assets_get(plan, &st->assets, err) < 0)
		return -1;
	if (st->assets.accel == VM_ACCEL_TCG)
		strv_push_take(&sb->warnings,
		               xasprintf("isolation vm: %s: the guest runs under TCG (emulated, "
		                         "many times slower than with KVM)",
		                         st->assets.accel_note));
	if (!(st->state_dir = state_dir(err)) ||
	    (st->live_fd = hold_live(st->state_dir, err)) < 0 ||
	    vm_volumes_prepare(plan, st->state_dir, &st->vols, &st->n_vols, err) < 0 ||
	    vm_net_prepare(st, err) < 0)
		return -1;
	_cleanup_close_ int agent_l = listen_at(st->state_dir, "agent.sock", err);
	_cleanup_close_ int qmp_l = agent_l < 0 ? -1 : listen_at(st->state_dir, "qmp.sock", err);
	if (qmp_l < 0)
		return -1;
	if (pipe2(st->ev, O_CLOEXEC | O_NONBLOCK) < 0 ||
	    (st->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		return warden_error_set(err, errno, "pipe");
	_cleanup_free_ char *snap = vm_snapshot_path(st);
	bool restore = snap && access(snap, R_OK) == 0;
	if (start_qemu(st, restore, err) < 0 ||
	    connect_guest(st, agent_l, qmp_l, snap, restore, err) < 0)
		return -1;
	send_file(st, "/etc/passwd", plan->passwd);
	send_file(st, "/etc/group", plan->group);
	send_file(st, "/etc/hosts", plan->hosts);
	if (plan->resolv_conf)
		send_file(st, "/etc/resolv.conf", plan->resolv_conf);
	vm_net_offer(st);
	if (!proc->service && start_main(st, proc, err) < 0)
		return -1;
	st->heartbeat_ms = heartbeat_ms(&st->assets);
	if (vm_relay_start(st, err) < 0)
		return -1;
	sb->fds[0] = st->ev[0];
	sb->fds[1] = st->qsb->fds[0];
	return 0;
}

/* ---- events ------------------------------------------------------------------------ */

static int vm_next_event(struct warden_sandbox *sb, struct warden_event *ev,
                         struct warden_error **err)
{
	struct vm_state *st = sb->priv;
	(void)err;
	memset(ev, 0, sizeof(*ev));
	if (read(st->ev[0], ev, sizeof(*ev)) == sizeof(*ev))
		return 0;
	memset(ev, 0, sizeof(*ev));
	/* QEMU's sandbox's own events only say that QEMU ended, which the relay reports
	 * with the reason; they are drained so that its descriptors stop polling ready. */
	(void)qemu_ended(st);
	sb->fds[1] = st->qsb->fds[0] >= 0 ? st->qsb->fds[0] : st->qsb->fds[1];
	return 0;
}

/* ---- the rest of the backend table ------------------------------------------------- */

static int vm_kill(struct warden_sandbox *sb, struct warden_error **err)
{
	struct vm_state *st = sb->priv;
	st->killed = true;
	return st->qsb ? warden_sandbox_kill(st->qsb, err) : 0;
}

static int vm_signal(struct warden_sandbox *sb, int sig, struct warden_error **err)
{
	struct vm_state *st = sb->priv;
	if (sig == SIGKILL)
		return vm_kill(sb, err);
	uint8_t b[4];
	frame_put_u32(b, (uint32_t)sig);
	vm_relay_send(st, FRAME_SIGNAL, 0, b, 4);
	return 0;
}

static int vm_sample(struct warden_sandbox *sb, struct warden_sample *out)
{
	struct vm_state *st = sb->priv;
	return st->qsb ? warden_sandbox_sample(st->qsb, out) : -1;
}

/* A frozen guest cannot answer the heartbeat: the relay stops expecting it first, and
 * expects it again only once QEMU runs. */
static int vm_freeze(struct warden_sandbox *sb, bool frozen, struct warden_error **err)
{
	struct vm_state *st = sb->priv;
	if (frozen)
		__atomic_store_n(&st->frozen, true, __ATOMIC_RELEASE);
	int r = warden_sandbox_freeze(st->qsb, frozen, err);
	if (frozen != (r == 0)) { /* thawed, or not frozen after all */
		__atomic_store_n(&st->heard, true, __ATOMIC_RELEASE);
		__atomic_store_n(&st->frozen, false, __ATOMIC_RELEASE);
	}
	return r;
}

static int vm_exec(struct warden_sandbox *sb, uint32_t id, const struct warden_exec *x,
                   struct warden_error **err)
{
	struct vm_state *st = sb->priv;
	if (__atomic_load_n(&st->ended, __ATOMIC_ACQUIRE))
		return warden_error_set(err, EPIPE, "the sandbox has ended");
	if (id == UINT32_MAX)
		return warden_error_set(err, EINVAL, "request id out of range");
	if (add_route(st, id + 1, x->stdio, err) < 0)
		return -1;
	char **env = merge_env(sb->plan->envp, x->env);
	int r = send_exec(st, id + 1, x->argv, env, x->workdir ? x->workdir : sb->plan->workdir,
	                  NULL, err);
	strv_free(env);
	return r;
}

static int vm_exec_signal(struct warden_sandbox *sb, uint32_t id, int sig,
                          struct warden_error **err)
{
	struct vm_state *st = sb->priv;
	uint8_t b[4];
	(void)err;
	frame_put_u32(b, (uint32_t)sig);
	vm_relay_send(st, FRAME_SIGNAL, id + 1, b, 4);
	return 0;
}

static int vm_resize(struct warden_sandbox *sb, const struct winsize *ws, struct warden_error **err)
{
	struct vm_state *st = sb->priv;
	uint8_t b[4];
	(void)err;
	frame_put_u16(b, ws->ws_row);
	frame_put_u16(b + 2, ws->ws_col);
	vm_relay_send(st, FRAME_RESIZE, 0, b, 4);
	return 0;
}

static int rm_entry(const char *path, const struct stat *s, int type, struct FTW *f)
{
	(void)s, (void)type, (void)f;
	(void)remove(path);
	return 0;
}

static void vm_destroy(struct warden_sandbox *sb)
{
	struct vm_state *st = sb->priv;
	if (!st)
		return;
	vm_relay_stop(st);
	if (st->qsb) {
		(void)warden_sandbox_kill(st->qsb, NULL);
		warden_sandbox_destroy(st->qsb);
	}
	warden_plan_free(st->qplan);
	int fds[] = {st->agent, st->qmp, st->ev[0], st->ev[1], st->wake};
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	for (int i = 0; i < VM_ROUTES; i++)
		for (int k = 0; st->routes[i].used && k < 3; k++)
			if (st->routes[i].fd[k] >= 0)
				close(st->routes[i].fd[k]);
	vm_net_free(st);
	vm_volumes_free(st->vols, st->n_vols);
	if (st->state_dir)
		(void)nftw(st->state_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	if (st->live_fd >= 0)
		close(st->live_fd);
	free(st->state_dir);
	vm_assets_clear(&st->assets);
	free(st->out);
	pthread_mutex_destroy(&st->mu);
	free(st);
	sb->priv = NULL;
	sb->fds[0] = sb->fds[1] = -1;
}

const struct warden_backend warden_vm_backend = {
    .name = "vm",
    .start = vm_start,
    .next_event = vm_next_event,
    .signal = vm_signal,
    .sample = vm_sample,
    .freeze = vm_freeze,
    .kill = vm_kill,
    .exec = vm_exec,
    .exec_signal = vm_exec_signal,
    .resize = vm_resize,
    .destroy = vm_destroy,
};
