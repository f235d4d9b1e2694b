/* telwatch.c: drive warden's BPF telemetry from tests and benchmarks.
 *
 * usage:
 *   telwatch [OPTIONS] -- COMMAND [ARGS...]
 *       Make a fresh cgroup v2 group, watch it (warden_telemetry_attach), run COMMAND in
 *       it, drain events while it runs, and print JSON lines: one {"type":"attach"}, one
 *       per event ({"type":"exec"|"exit"|"connect"|"refused"|"oom", ...}), and a last
 *       {"type":"counts", ...} with the counters, the records delivered per kind, the
 *       command's wait status and its wall-clock and CPU time.
 *   telwatch available          {"available":bool,"why_not":[...]}
 *   telwatch bench-attach N     attach and detach N fresh groups; times in ns
 *   telwatch work KIND [ARGS]   a workload (below), run as COMMAND
 *
 * OPTIONS: --no-watch (run the command in the group without attaching: the benchmark's
 * "off"), --outside (watch the group but run the command outside it), --ring BYTES,
 * --no-drain (drain only after the command ended: the drop-counter test), --quiet (no
 * event lines), --leave (detach without draining what is left: the next sandbox given the
 * same ring must not see it), --lsm-hooks (the Landlock fallback set), --pin-root DIR,
 * --memory BYTES
 * (also a memory limit: a v1 memory group on hybrid hosts, memory.max on v2), --out FILE
 * (JSON lines there; the command keeps stdin and stdout: the benchmark's lock-step loops).
 *
 * Workloads: getppid N; getppid-threads T N (N calls in each of T threads, which end);
 * getppid-linger N (N calls in a child that is still alive when the workload ends); fork N; execs N
 * PATH [ARGS]; exec-storm SECONDS WORKERS [PATH [ARGS]]; connect ADDR PORT; unix-connect PATH (a
 * leading '@': abstract); connect-storm SECONDS WORKERS; seccomp-errno K (unshare(CLONE_NEWUSER)
 * refused K times with EPERM); seccomp-kill (refused with SECCOMP_RET_KILL_PROCESS); landlock-open
 * PATH; landlock-connect PORT; oom MIB; exit CODE; kill SIGNAL. Each prints one {"type":"work",
 * ...} line.
 */
#define _GNU_SOURCE
#include "../../src/lib/telemetry/telemetry.h"
#include "../../src/include/uapi/landlock.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/magic.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

static int out_fd = 1;

static uint64_t now_ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static _Noreturn void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "telwatch: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

/* One JSON line in one write(), so that lines from the watcher and the workload sharing a
 * pipe never interleave. Takes the reference. */
static void emit(int fd, json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	size_t n = strlen(s);
	s = realloc(s, n + 2);
	s[n] = '\n';
	s[n + 1] = '\0';
	if (write(fd, s, n + 1) < 0)
		exit(3);
	free(s);
	json_decref(j);
}

/* ---- workloads ---------------------------------------------------------------------- */

static int work_getppid(long n)
{
	for (long i = 0; i < n; i++)
		syscall(SYS_getppid);
	emit(1, json_pack("{s:s, s:s, s:I}", "type", "work", "kind", "getppid", "calls",
	                  (json_int_t)n));
	return 0;
}

static void *getppid_thread(void *arg)
{
	for (long i = 0, n = (long)(intptr_t)arg; i < n; i++)
		syscall(SYS_getppid);
	return NULL;
}

static int work_getppid_threads(long threads, long n)
{
	pthread_t tids[64];
	if (threads < 1 || threads > 64)
		die("getppid-threads: 1 to 64 threads");
	for (long i = 0; i < threads; i++)
		if (pthread_create(&tids[i], NULL, getppid_thread, (void *)(intptr_t)n) != 0)
			die("pthread_create failed");
	for (long i = 0; i < threads; i++)
		pthread_join(tids[i], NULL);
	emit(1, json_pack("{s:s, s:s, s:I}", "type", "work", "kind", "getppid-threads", "calls",
	                  (json_int_t)(threads * n)));
	return 0;
}

/* The child stays (paused) until the group is removed: its counts are read live. */
static int work_getppid_linger(long n)
{
	int done[2];
	char c;
	if (pipe2(done, O_CLOEXEC) < 0)
		die("pipe: %m");
	pid_t p = fork();
	if (p == 0) {
		getppid_thread((void *)(intptr_t)n);
		if (write(done[1], "d", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	if (p < 0 || read(done[0], &c, 1) != 1)
		die("getppid-linger: the child did not report");
	emit(1, json_pack("{s:s, s:s, s:I}", "type", "work", "kind", "getppid-linger", "calls",
	                  (json_int_t)n));
	return 0;
}

static int work_fork(long n)
{
	for (long i = 0; i < n; i++) {
		pid_t p = fork();
		if (p == 0)
			_exit(0);
		if (p < 0 || waitpid(p, NULL, 0) < 0)
			die("fork: %m");
	}
	emit(1,
	     json_pack("{s:s, s:s, s:I}", "type", "work", "kind", "fork", "forks", (json_int_t)n));
	return 0;
}

static long run_execs(long n, char **argv, uint64_t deadline)
{
	long done = 0;
	for (long i = 0; n < 0 || i < n; i++) {
		if (deadline && now_ns(CLOCK_MONOTONIC) >= deadline)
			break;
		pid_t p;
		int st;
		int r = posix_spawn(&p, argv[0], NULL, NULL, argv, environ);
		if (r != 0 || waitpid(p, &st, 0) < 0)
			die("exec %s: %s", argv[0], strerror(r ? r : errno));
		if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
			die("exec %s failed", argv[0]);
		done++;
	}
	return done;
}

static int work_execs(long n, char **argv)
{
	long done = run_execs(n, argv, 0);
	emit(1, json_pack("{s:s, s:s, s:I}", "type", "work", "kind", "execs", "execs",
	                  (json_int_t)done));
	return 0;
}

/* WORKERS processes doing `body` until the deadline, each adding what it did to a shared
 * counter. Returns the total and the seconds it took. */
static long in_parallel(int workers, double seconds, long (*body)(uint64_t deadline, void *),
                        void *arg, double *ret_s)
{
	long *counts = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	uint64_t t0 = now_ns(CLOCK_MONOTONIC);
	uint64_t deadline = t0 + (uint64_t)(seconds * 1e9);
	long total = 0;
	pid_t pids[512];
	if (counts == MAP_FAILED)
		die("mmap: %m");
	if (workers > 512)
		workers = 512;
	for (int w = 0; w < workers; w++) {
		pids[w] = fork();
		if (pids[w] == 0) {
			counts[w] = body(deadline, arg);
			_exit(0);
		}
		if (pids[w] < 0)
			die("fork: %m");
	}
	for (int w = 0; w < workers; w++)
		waitpid(pids[w], NULL, 0);
	*ret_s = (double)(now_ns(CLOCK_MONOTONIC) - t0) / 1e9;
	for (int w = 0; w < workers; w++)
		total += counts[w];
	munmap(counts, 4096);
	return total;
}

static long exec_body(uint64_t deadline, void *arg)
{
	return run_execs(-1, arg, deadline);
}

static int work_exec_storm(double seconds, int workers, char **argv)
{
	double s;
	long n = in_parallel(workers, seconds, exec_body, argv, &s);
	emit(1, json_pack("{s:s, s:s, s:I, s:f, s:f}", "type", "work", "kind", "exec-storm",
	                  "execs", (json_int_t)n, "seconds", s, "rate", n / s));
	return 0;
}

static int connect_in(const char *addr, int port, int *ret_errno)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
		die("socket/address: %m");
	int r = connect(fd, (struct sockaddr *)&sin, sizeof(sin));
	*ret_errno = r < 0 ? errno : 0;
	return fd;
}

static int work_connect(const char *addr, int port)
{
	int e;
	close(connect_in(addr, port, &e));
	emit(1, json_pack("{s:s, s:s, s:i, s:s}", "type", "work", "kind", "connect", "errno", e,
	                  "error", e ? strerror(e) : ""));
	return 0;
}

static int work_unix_connect(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	size_t n = strlen(path);
	if (n >= sizeof(sun.sun_path))
		die("path too long");
	memcpy(sun.sun_path, path, n);
	if (path[0] == '@')
		sun.sun_path[0] = '\0';
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int r = connect(fd, (struct sockaddr *)&sun,
	                (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
	int e = r < 0 ? errno : 0;
	close(fd);
	emit(1, json_pack("{s:s, s:s, s:i}", "type", "work", "kind", "unix-connect", "errno", e));
	return 0;
}

static long connect_body(uint64_t deadline, void *arg)
{
	int port = *(int *)arg;
	long n = 0;
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	while (now_ns(CLOCK_MONOTONIC) < deadline) {
		int e;
		int fd = connect_in("127.0.0.1", port, &e);
		if (e)
			die("connect: %s", strerror(e));
		/* A reset instead of a FIN: no TIME_WAIT, so the ports do not run out. */
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(fd);
		n++;
	}
	return n;
}

static int work_connect_storm(double seconds, int workers)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(lfd, 4096) < 0 || getsockname(lfd, (struct sockaddr *)&sin, &len) < 0)
		die("listen: %m");
	int port = ntohs(sin.sin_port);
	pid_t acceptor = fork();
	if (acceptor == 0) {
		for (;;) {
			int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (c >= 0)
				close(c);
		}
	}
	double s;
	long n = in_parallel(workers, seconds, connect_body, &port, &s);
	kill(acceptor, SIGKILL);
	waitpid(acceptor, NULL, 0);
	emit(1, json_pack("{s:s, s:s, s:I, s:f, s:f}", "type", "work", "kind", "connect-storm",
	                  "connects", (json_int_t)n, "seconds", s, "rate", n / s));
	return 0;
}

/* A filter refusing unshare(2) with `action`, every other call allowed. */
static void seccomp_refuse_unshare(uint32_t action)
{
	struct sock_filter f[] = {
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_unshare, 0, 1),
	    BPF_STMT(BPF_RET | BPF_K, action),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = ARRAY_SIZE(f), .filter = f};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
		die("seccomp: %m");
}

static int work_seccomp_errno(long k)
{
	long refused = 0;
	seccomp_refuse_unshare(SECCOMP_RET_ERRNO | EPERM);
	for (long i = 0; i < k; i++)
		if (unshare(CLONE_NEWUSER) < 0 && errno == EPERM)
			refused++;
	emit(1, json_pack("{s:s, s:s, s:I, s:i}", "type", "work", "kind", "seccomp-errno",
	                  "refused", (json_int_t)refused, "nr", __NR_unshare));
	return 0;
}

static int work_seccomp_kill(void)
{
	emit(1, json_pack("{s:s, s:s, s:i}", "type", "work", "kind", "seccomp-kill", "nr",
	                  __NR_unshare));
	seccomp_refuse_unshare(SECCOMP_RET_KILL_PROCESS);
	unshare(CLONE_NEWUSER);
	return 1; /* not reached */
}

static void landlock_restrict(uint64_t fs, uint64_t net)
{
	struct landlock_ruleset_attr attr = {.handled_access_fs = fs, .handled_access_net = net};
	size_t size =
	    net ? sizeof(attr) : offsetof(struct landlock_ruleset_attr, handled_access_net);
	int fd = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
	if (fd < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    syscall(SYS_landlock_restrict_self, fd, 0) < 0)
		die("landlock: %m");
	close(fd);
}

static int work_landlock_open(const char *path)
{
	landlock_restrict(LANDLOCK_ACCESS_FS_READ_FILE, 0);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int e = fd < 0 ? errno : 0;
	emit(1, json_pack("{s:s, s:s, s:i, s:i}", "type", "work", "kind", "landlock-open", "errno",
	                  e, "nr", __NR_openat));
	return 0;
}

static int work_landlock_connect(int port)
{
	int e;
	landlock_restrict(0, LANDLOCK_ACCESS_NET_CONNECT_TCP);
	close(connect_in("127.0.0.1", port, &e));
	emit(1, json_pack("{s:s, s:s, s:i, s:i}", "type", "work", "kind", "landlock-connect",
	                  "errno", e, "nr", __NR_connect));
	return 0;
}

static int work_oom(long mib)
{
	emit(1, json_pack("{s:s, s:s, s:i}", "type", "work", "kind", "oom", "pid", getpid()));
	for (long i = 0; i < mib; i++) {
		char *p = malloc(1 << 20);
		if (!p)
			die("malloc: %m");
		memset(p, (int)i, 1 << 20);
	}
	return 0;
}

static int work(int argc, char **argv)
{
	if (argc < 1)
		die("work: which?");
	/* jansson seeds its hash function from /dev/urandom on first use: an open that a
	 * Landlock workload would see refused, one more than the test asks for. */
	json_object_seed(1);
	const char *k = argv[0];
	long a1 = argc > 1 ? strtol(argv[1], NULL, 10) : 0;
	if (streq(k, "getppid") && argc == 2)
		return work_getppid(a1);
	if (streq(k, "getppid-threads") && argc == 3)
		return work_getppid_threads(a1, strtol(argv[2], NULL, 10));
	if (streq(k, "getppid-linger") && argc == 2)
		return work_getppid_linger(a1);
	if (streq(k, "fork") && argc == 2)
		return work_fork(a1);
	if (streq(k, "execs") && argc >= 3)
		return work_execs(a1, argv + 2);
	if (streq(k, "exec-storm") && argc >= 3) {
		char *def[] = {"/bin/true", NULL};
		return work_exec_storm(strtod(argv[1], NULL), atoi(argv[2]),
		                       argc > 3 ? argv + 3 : def);
	}
	if (streq(k, "connect") && argc == 3)
		return work_connect(argv[1], atoi(argv[2]));
	if (streq(k, "unix-connect") && argc == 2)
		return work_unix_connect(argv[1]);
	if (streq(k, "connect-storm") && argc == 3)
		return work_connect_storm(strtod(argv[1], NULL), atoi(argv[2]));
	if (streq(k, "seccomp-errno") && argc == 2)
		return work_seccomp_errno(a1);
	if (streq(k, "seccomp-kill") && argc == 1)
		return work_seccomp_kill();
	if (streq(k, "landlock-open") && argc == 2)
		return work_landlock_open(argv[1]);
	if (streq(k, "landlock-connect") && argc == 2)
		return work_landlock_connect((int)a1);
	if (streq(k, "oom") && argc == 2)
		return work_oom(a1);
	if (streq(k, "exit") && argc == 2)
		exit((int)a1);
	if (streq(k, "kill") && argc == 2) {
		signal((int)a1, SIG_DFL);
		raise((int)a1);
		return 1;
	}
	die("work: unknown workload or arguments: %s", k);
}

/* ---- cgroups ------------------------------------------------------------------------ */

static bool is_cgroup2(const char *path)
{
	struct statfs sf;
	return statfs(path, &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC;
}

static const char *v2_root(void)
{
	if (is_cgroup2("/sys/fs/cgroup"))
		return "/sys/fs/cgroup";
	if (is_cgroup2("/sys/fs/cgroup/unified"))
		return "/sys/fs/cgroup/unified";
	die("no cgroup v2 hierarchy mounted");
}

static char *make_group(const char *root)
{
	static int seq;
	char *path = xasprintf("%s/telwatch-%d-%d", root, getpid(), seq++);
	if (mkdir(path, 0755) < 0)
		die("mkdir %s: %m", path);
	return path;
}

static uint64_t cgroup_id(const char *path)
{
	struct {
		struct file_handle fh;
		uint64_t id;
	} h = {.fh.handle_bytes = sizeof(uint64_t)};
	int mount_id;
	uint64_t id;
	if (name_to_handle_at(AT_FDCWD, path, &h.fh, &mount_id, 0) < 0)
		die("name_to_handle_at %s: %m", path);
	memcpy(&id, h.fh.f_handle, sizeof(id));
	return id;
}

static void write_str(const char *dir, const char *file, const char *value)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, file);
	int r = write_file_at(AT_FDCWD, path, value);
	if (r < 0)
		die("writing %s to %s: %s", value, path, strerror(-r));
}

static void join(const char *dir, pid_t pid)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "%d", (int)pid);
	write_str(dir, "cgroup.procs", buf);
}

/* Remove a group once the command is gone, killing anything it left behind. */
static void remove_group(const char *path)
{
	for (int i = 0; i < 200 && rmdir(path) < 0 && errno == EBUSY; i++) {
		_cleanup_free_ char *kill_file = xasprintf("%s/cgroup.kill", path);
		(void)write_file_at(AT_FDCWD, kill_file, "1");
		usleep(10000);
	}
}

/* ---- watching ----------------------------------------------------------------------- */

struct watch {
	bool quiet;
	long delivered[WARDEN_TEL_KIND_MAX];
};

static json_t *addr_json(uint16_t family, const uint8_t *a)
{
	char buf[INET6_ADDRSTRLEN] = "";
	if (family == AF_INET || family == AF_INET6)
		inet_ntop(family, a, buf, sizeof(buf));
	return json_string(buf);
}

static void on_event(const struct warden_tel_event *ev, void *ctx)
{
	struct watch *w = ctx;
	static const char *const kinds[] = {"exec", "exit", "connect", "refused", "oom"};
	w->delivered[ev->kind]++;
	if (w->quiet)
		return;
	json_t *j = json_pack("{s:s, s:I, s:i, s:i, s:i, s:i, s:s}", "type", kinds[ev->kind],
	                      "ts_ns", (json_int_t)ev->ts_ns, "pid", ev->pid, "ppid", ev->ppid,
	                      "host_pid", ev->host_pid, "uid", ev->uid, "comm", ev->comm);
	switch (ev->kind) {
	case WARDEN_TEL_EXEC: {
		json_t *argv = json_array();
		for (uint32_t i = 0; i < WARDEN_TEL_ARGS && i < ev->exec.argc; i++)
			json_array_append_new(argv, json_string(ev->exec.argv[i]));
		json_object_set_new(j, "path", json_string(ev->exec.path));
		json_object_set_new(j, "argv", argv);
		json_object_set_new(j, "argc", json_integer(ev->exec.argc));
		break;
	}
	case WARDEN_TEL_EXIT:
		json_object_set_new(j, "code", json_integer(ev->exit.code));
		json_object_set_new(j, "signal", json_integer(ev->exit.signal));
		break;
	case WARDEN_TEL_CONNECT:
		json_object_set_new(j, "family", json_integer(ev->connect.family));
		json_object_set_new(j, "port", json_integer(ev->connect.port));
		json_object_set_new(j, "addr", addr_json(ev->connect.family, ev->connect.addr));
		json_object_set_new(j, "path", json_string(ev->connect.path));
		json_object_set_new(j, "ret", json_integer(ev->connect.ret));
		break;
	case WARDEN_TEL_REFUSED:
		json_object_set_new(j, "nr", json_integer(ev->refused.nr));
		json_object_set_new(j, "err", json_integer(ev->refused.err));
		json_object_set_new(j, "layer",
		                    json_string(ev->refused.layer == WARDEN_TEL_LAYER_SECCOMP
		                                    ? "seccomp"
		                                    : "landlock"));
		json_object_set_new(j, "count", json_integer((json_int_t)ev->refused.count));
		break;
	case WARDEN_TEL_OOM:
		json_object_set_new(j, "victim_pid", json_integer(ev->oom.victim_pid));
		break;
	default:
		break;
	}
	emit(out_fd, j);
}

static long drain_all(struct warden_telemetry *t, struct watch *w)
{
	_cleanup_error_ struct warden_error *err = NULL;
	long total = 0;
	int n;
	while ((n = warden_telemetry_drain(t, on_event, w, &err)) > 0)
		total += n;
	if (n < 0)
		die("%s", warden_error_text(err));
	return total;
}

static json_t *nonzero(const uint64_t *v, int n)
{
	json_t *o = json_object();
	for (int i = 0; i < n; i++)
		if (v[i]) {
			char k[16];
			snprintf(k, sizeof(k), "%d", i);
			json_object_set_new(o, k, json_integer((json_int_t)v[i]));
		}
	return o;
}

static void emit_counts(struct warden_telemetry *t, struct watch *w, int status, double wall,
                        double cpu)
{
	static const char *const kinds[] = {"exec", "exit", "connect", "refused", "oom"};
	json_t *j = json_pack("{s:s, s:i, s:f, s:f}", "type", "counts", "status", status, "wall_s",
	                      wall, "cpu_s", cpu);
	if (t) {
		_cleanup_error_ struct warden_error *err = NULL;
		_cleanup_free_ struct warden_tel_counts *c = xcalloc(1, sizeof(*c));
		if (warden_telemetry_counts(t, true, c, &err) < 0)
			die("%s", warden_error_text(err));
		json_t *d = json_object();
		long total = 0;
		for (int k = 0; k < WARDEN_TEL_KIND_MAX; k++) {
			json_object_set_new(d, kinds[k], json_integer(w->delivered[k]));
			total += w->delivered[k];
		}
		json_object_set_new(j, "delivered_by_kind", d);
		json_object_set_new(j, "delivered", json_integer(total));
		json_object_set_new(j, "syscalls", nonzero(c->syscalls, WARDEN_TEL_NR_MAX));
		json_object_set_new(j, "refused", nonzero(c->refused, WARDEN_TEL_NR_MAX));
		json_object_set_new(
		    j, "refused_seccomp",
		    nonzero(c->refused_layer[WARDEN_TEL_LAYER_SECCOMP], WARDEN_TEL_NR_MAX));
		json_object_set_new(
		    j, "refused_landlock",
		    nonzero(c->refused_layer[WARDEN_TEL_LAYER_LANDLOCK], WARDEN_TEL_NR_MAX));
		json_object_set_new(j, "forks", json_integer((json_int_t)c->forks));
		json_object_set_new(j, "execs", json_integer((json_int_t)c->execs));
		json_object_set_new(j, "events", json_integer((json_int_t)c->events));
		json_object_set_new(j, "drops", json_integer((json_int_t)c->drops));
	}
	emit(out_fd, j);
}

struct opts {
	bool watch, outside, drain, quiet, leave;
	struct warden_tel_opts tel;
	uint64_t memory;
};

/* A fresh v1 memory group with a limit (hybrid hosts), or the limit on the v2 group. */
static char *memory_group(const char *v2group, uint64_t bytes)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)bytes);
	if (!streq(v2_root(), "/sys/fs/cgroup")) {
		char *g = make_group("/sys/fs/cgroup/memory");
		write_str(g, "memory.limit_in_bytes", buf);
		return g;
	}
	write_str(v2group, "memory.max", buf);
	write_str(v2group, "memory.swap.max", "0");
	return NULL;
}

static int watch_cmd(struct opts *o, char **argv)
{
	const char *root = v2_root();
	_cleanup_free_ char *group = make_group(root);
	uint64_t id = cgroup_id(group);
	struct warden_telemetry *t = NULL;
	struct watch w = {.quiet = o->quiet};
	_cleanup_free_ char *memgroup = NULL;
	int go[2];
	if (pipe2(go, O_CLOEXEC) < 0)
		die("pipe: %m");
	uint64_t start = now_ns(CLOCK_MONOTONIC);
	pid_t pid = fork();
	if (pid == 0) {
		char c;
		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(127);
		execvp(argv[0], argv);
		fprintf(stderr, "telwatch: exec %s: %m\n", argv[0]);
		_exit(127);
	}
	if (pid < 0)
		die("fork: %m");
	close(go[0]);
	/* Like warden's supervisor: the drainer runs ahead of what it watches. */
	(void)setpriority(PRIO_PROCESS, 0, -5);
	if (!o->outside)
		join(group, pid);
	if (o->memory) {
		memgroup = memory_group(group, o->memory);
		if (memgroup)
			join(memgroup, pid);
	}
	/* Like a sandbox: the command is in its group, waiting, when watching starts. */
	if (o->watch) {
		_cleanup_error_ struct warden_error *err = NULL;
		uint64_t t0 = now_ns(CLOCK_MONOTONIC);
		t = warden_telemetry_attach(id, &o->tel, &err);
		uint64_t t1 = now_ns(CLOCK_MONOTONIC);
		if (!t) {
			remove_group(group);
			die("%s", warden_error_text(err));
		}
		emit(out_fd, json_pack("{s:s, s:I, s:I}", "type", "attach", "cgroup_id",
		                       (json_int_t)id, "attach_ns", (json_int_t)(t1 - t0)));
	}
	if (write(go[1], "g", 1) != 1)
		die("starting the command: %m");
	close(go[1]);

	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		die("pidfd_open: %m");
	struct pollfd p[2] = {{.fd = pidfd, .events = POLLIN},
	                      {.fd = t ? warden_telemetry_fd(t) : -1, .events = POLLIN}};
	for (;;) {
		int n = poll(p, t && o->drain ? 2 : 1, -1);
		if (n < 0 && errno != EINTR)
			die("poll: %m");
		if (t && o->drain)
			drain_all(t, &w);
		if (p[0].revents)
			break;
	}
	int status;
	struct rusage ru;
	if (wait4(pid, &status, 0, &ru) < 0)
		die("wait: %m");
	double wall = (double)(now_ns(CLOCK_MONOTONIC) - start) / 1e9;
	double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	             (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	if (t && !o->leave)
		drain_all(t, &w);
	emit_counts(t, &w, status, wall, cpu);
	warden_telemetry_detach(t);
	close(pidfd);
	remove_group(group);
	if (memgroup)
		remove_group(memgroup);
	return 0;
}

/* ---- available, bench-attach -------------------------------------------------------- */

static int available(void)
{
	struct strv why = {0};
	bool ok = warden_telemetry_available(&why);
	json_t *a = json_array();
	for (size_t i = 0; i < why.n; i++)
		json_array_append_new(a, json_string(why.v[i]));
	emit(out_fd, json_pack("{s:b, s:o}", "available", ok, "why_not", a));
	strv_clear(&why);
	return 0;
}

static int bench_attach(struct opts *o, long n)
{
	const char *root = v2_root();
	json_t *att = json_array(), *det = json_array();
	for (long i = 0; i < n; i++) {
		_cleanup_free_ char *group = make_group(root);
		_cleanup_error_ struct warden_error *err = NULL;
		uint64_t id = cgroup_id(group);
		uint64_t t0 = now_ns(CLOCK_MONOTONIC);
		struct warden_telemetry *t = warden_telemetry_attach(id, &o->tel, &err);
		uint64_t t1 = now_ns(CLOCK_MONOTONIC);
		if (!t)
			die("%s", warden_error_text(err));
		warden_telemetry_detach(t);
		uint64_t t2 = now_ns(CLOCK_MONOTONIC);
		json_array_append_new(att, json_integer((json_int_t)(t1 - t0)));
		json_array_append_new(det, json_integer((json_int_t)(t2 - t1)));
		remove_group(group);
	}
	emit(out_fd, json_pack("{s:s, s:o, s:o}", "type", "bench-attach", "attach_ns", att,
	                       "detach_ns", det));
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"no-watch", no_argument, NULL, 'n'},
	    {"outside", no_argument, NULL, 'o'},
	    {"ring", required_argument, NULL, 'r'},
	    {"no-drain", no_argument, NULL, 'd'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"lsm-hooks", no_argument, NULL, 'l'},
	    {"pin-root", required_argument, NULL, 'p'},
	    {"memory", required_argument, NULL, 'm'},
	    {"out", required_argument, NULL, 'O'},
	    {"leave", no_argument, NULL, 'L'},
	    {NULL, 0, NULL, 0},
	};
	struct opts o = {.watch = true, .drain = true};
	int c;
	if (argc > 1 && streq(argv[1], "work"))
		return work(argc - 2, argv + 2);
	while ((c = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			o.watch = false;
			break;
		case 'o':
			o.outside = true;
			break;
		case 'r':
			o.tel.ring_bytes = (uint32_t)strtoul(optarg, NULL, 0);
			break;
		case 'd':
			o.drain = false;
			break;
		case 'q':
			o.quiet = true;
			break;
		case 'l':
			o.tel.landlock_lsm_hooks = true;
			break;
		case 'p':
			o.tel.pin_root = optarg;
			break;
		case 'm':
			o.memory = strtoull(optarg, NULL, 0);
			break;
		case 'L':
			o.leave = true;
			break;
		case 'O':
			out_fd = open(optarg, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
			if (out_fd < 0)
				die("%s: %m", optarg);
			break;
		default:
			die("usage: see the comment at the top of telwatch.c");
		}
	}
	if (optind < argc && streq(argv[optind], "available"))
		return available();
	if (optind + 1 < argc && streq(argv[optind], "bench-attach"))
		return bench_attach(&o, strtol(argv[optind + 1], NULL, 10));
	if (optind < argc && streq(argv[optind], "--"))
		optind++;
	if (optind >= argc)
		die("no command");
	return watch_cmd(&o, argv + optind);
}
