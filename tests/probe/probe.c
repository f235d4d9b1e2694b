/* probe.c: a tiny static program that integration and escape tests run inside sandboxes.
 *
 * usage: probe [--isolate] [--tmpfs DIR] ATTEMPT [ARGS...]
 * Each attempt does one thing and reports it: exit 0 when the attempt succeeded, 1 when
 * it failed (printing "FAILED: <what>: <errno text> [ERRNO_NAME]" on stderr, so tests can
 * tell the sandbox's EPERM from the kernel's EINVAL), 2 for a usage error.
 * Tests run the same attempt outside the sandbox first, to show that it can succeed,
 * and then inside, where it must fail.
 *
 * Sections: reporting and helpers; isolation for attempts made on the host; kernel
 * interfaces (keyrings, bpf, perf, userfaultfd, io_uring, file handles, kexec, modules,
 * clocks, reboot, swap, accounting, the kernel log, I/O ports, LDT, fanotify, uselib,
 * quotas, System V IPC); mounts and namespaces; terminals; sockets; files, devices and
 * /proc; processes and resource use; identity; other system-call ABIs; the table.
 *
 * --isolate (for attempts made on the host only): enter private mount, network, UTS, IPC
 * and cgroup namespaces first, and a user namespace that maps the caller to root when the
 * caller is not root, so that what the attempt changes never reaches the host. This is
 * also the path an unprivileged process inside a sandbox would take to gain capabilities,
 * which the sandbox refuses. --tmpfs DIR mounts a scratch tmpfs on DIR after isolating.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/fanotify.h>
#include <linux/io_uring.h>
#include <linux/keyctl.h>
#include <linux/mount.h>
#include <linux/netlink.h>
#include <linux/perf_event.h>
#include <linux/random.h>
#include <linux/reboot.h>
#include <linux/sched.h>
#include <linux/userfaultfd.h>
#include <linux/vm_sockets.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/quota.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/timex.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef AF_ALG
#define AF_ALG 38
#endif
#ifndef TIOCL_GETSHIFTSTATE
#define TIOCL_GETSHIFTSTATE 6
#endif
/* x86-64 only: the i386 getpid number and the x32 system-call bit. */
#define I386_NR_GETPID  20
#define X32_SYSCALL_BIT 0x40000000L
/* x86-64 number of open_tree_attr (Linux 6.15), newer than Debian 12's headers */
#define NR_OPEN_TREE_ATTR 467

/* ---- reporting and helpers --------------------------------------------------------- */

static int failed(const char *what)
{
	int e = errno;
	const char *name = strerrorname_np(e);
	fprintf(stderr, "FAILED: %s: %s [%s]\n", what, strerror(e), name ? name : "?");
	return 1;
}

static int failed_msg(const char *what, const char *msg)
{
	fprintf(stderr, "FAILED: %s: %s\n", what, msg);
	return 1;
}

static bool streq(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

static bool has_arg(int argc, char **argv, int i, const char *value)
{
	return argc > i && streq(argv[i], value);
}

static int write_file(const char *path, const char *content)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, content, strlen(content));
	int e = errno;
	close(fd);
	errno = e;
	return n == (ssize_t)strlen(content) ? 0 : -1;
}

/* ---- isolation for attempts made on the host --------------------------------------- */

static int isolate(void)
{
	uid_t uid = geteuid();
	gid_t gid = getegid();
	int flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP;
	char map[64];
	if (uid != 0)
		flags |= CLONE_NEWUSER;
	if (unshare(flags) < 0)
		return failed("isolate: unshare");
	if (uid != 0) {
		if (write_file("/proc/self/setgroups", "deny") < 0)
			return failed("isolate: setgroups");
		snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)uid);
		if (write_file("/proc/self/uid_map", map) < 0)
			return failed("isolate: uid_map");
		snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)gid);
		if (write_file("/proc/self/gid_map", map) < 0)
			return failed("isolate: gid_map");
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return failed("isolate: making mounts private");
	return 0;
}

/* ---- kernel interfaces ------------------------------------------------------------- */

/* add_key: a key in the process keyring (gone when the probe exits) */
static int p_add_key(int argc, char **argv)
{
	(void)argc, (void)argv;
	long k =
	    syscall(SYS_add_key, "user", "warden-probe", "secret", 6, KEY_SPEC_PROCESS_KEYRING);
	if (k < 0)
		return failed("add_key");
	printf("key %ld\n", k);
	return 0;
}

/* keyctl: create and look up the process keyring */
static int p_keyctl(int argc, char **argv)
{
	(void)argc, (void)argv;
	long k = syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_PROCESS_KEYRING, 1);
	if (k < 0)
		return failed("keyctl");
	printf("keyring %ld\n", k);
	return 0;
}

/* request_key: look up a key that does not exist (ENOKEY from the kernel) */
static int p_request_key(int argc, char **argv)
{
	(void)argc, (void)argv;
	if (syscall(SYS_request_key, "user", "warden-probe-absent", NULL, 0) < 0)
		return failed("request_key");
	return 0;
}

/* bpf_map [oversized]: create an array map; "oversized" passes an attribute larger than a
 * page, which the kernel refuses (E2BIG) before any permission check */
static int p_bpf_map(int argc, char **argv)
{
	static unsigned char buf[8192];
	union bpf_attr *attr = (union bpf_attr *)buf;
	size_t size = sizeof(*attr);
	memset(buf, 0, sizeof(buf));
	attr->map_type = BPF_MAP_TYPE_ARRAY;
	attr->key_size = 4;
	attr->value_size = 4;
	attr->max_entries = 1;
	if (has_arg(argc, argv, 1, "oversized")) {
		size = sizeof(buf);
		buf[size - 1] = 1;
	}
	long fd = syscall(SYS_bpf, BPF_MAP_CREATE, buf, size);
	if (fd < 0)
		return failed("bpf(BPF_MAP_CREATE)");
	return 0;
}

/* perf_event_open: a user-space-only software counter on the probe itself */
static int p_perf_event_open(int argc, char **argv)
{
	(void)argc, (void)argv;
	struct perf_event_attr a;
	memset(&a, 0, sizeof(a));
	a.type = PERF_TYPE_SOFTWARE;
	a.size = sizeof(a);
	a.config = PERF_COUNT_SW_TASK_CLOCK;
	a.disabled = 1;
	a.exclude_kernel = 1;
	a.exclude_hv = 1;
	if (syscall(SYS_perf_event_open, &a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC) < 0)
		return failed("perf_event_open");
	return 0;
}

/* userfaultfd: user-mode-only faults, which unprivileged callers may ask for */
static int p_userfaultfd(int argc, char **argv)
{
	(void)argc, (void)argv;
	if (syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY) < 0)
		return failed("userfaultfd");
	return 0;
}

/* io_uring_setup: a one-entry ring */
static int p_io_uring_setup(int argc, char **argv)
{
	(void)argc, (void)argv;
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	if (syscall(SYS_io_uring_setup, 1, &p) < 0)
		return failed("io_uring_setup");
	return 0;
}

struct handle {
	struct file_handle fh;
	unsigned char bytes[MAX_HANDLE_SZ];
};

/* name_to_handle_at FILE */
static int p_name_to_handle_at(int argc, char **argv)
{
	struct handle h = {.fh.handle_bytes = MAX_HANDLE_SZ};
	int mount_id;
	if (argc < 2)
		return 2;
	if (syscall(SYS_name_to_handle_at, AT_FDCWD, argv[1], &h.fh, &mount_id, 0) < 0)
		return failed("name_to_handle_at");
	printf("handle type %d, %u bytes\n", h.fh.handle_type, h.fh.handle_bytes);
	return 0;
}

/* open_by_handle_at FILE MOUNTDIR|-: open FILE by its handle (the "shocker" escape).
 * Where name_to_handle_at is refused the handle is forged from the inode number, as an
 * exploit would, so that open_by_handle_at itself is always tried. "-" passes a bad
 * mount fd, which the kernel refuses (EBADF) before its permission check. */
static int p_open_by_handle_at(int argc, char **argv)
{
	struct handle h = {.fh.handle_bytes = MAX_HANDLE_SZ};
	int mount_id;
	char buf[16];
	if (argc < 3)
		return 2;
	if (syscall(SYS_name_to_handle_at, AT_FDCWD, argv[1], &h.fh, &mount_id, 0) < 0) {
		struct stat st;
		uint32_t ino_gen[2] = {0, 0};
		fprintf(stderr, "name_to_handle_at: %s; forging a handle\n", strerror(errno));
		if (stat(argv[1], &st) == 0)
			ino_gen[0] = (uint32_t)st.st_ino;
		h.fh.handle_bytes = sizeof(ino_gen);
		h.fh.handle_type = 1; /* FILEID_INO32_GEN */
		memcpy(h.fh.f_handle, ino_gen, sizeof(ino_gen));
	}
	int mfd = -1;
	if (!streq(argv[2], "-") && (mfd = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return failed(argv[2]);
	int fd = (int)syscall(SYS_open_by_handle_at, mfd, &h.fh, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return failed("open_by_handle_at");
	if (read(fd, buf, sizeof(buf)) < 0)
		return failed("reading the file opened by handle");
	return 0;
}

/* kexec_load: more segments than the kernel accepts (EINVAL after its permission check;
 * ENOSYS where the kernel has no kexec) */
static int p_kexec_load(int argc, char **argv)
{
	(void)argc, (void)argv;
	if (syscall(SYS_kexec_load, 0UL, 1000UL, NULL, 0UL) < 0)
		return failed("kexec_load");
	return 0;
}

/* kexec_file_load: unknown flags (EINVAL after the permission check; ENOSYS without
 * kexec) */
static int p_kexec_file_load(int argc, char **argv)
{
	(void)argc, (void)argv;
	if (syscall(SYS_kexec_file_load, -1, -1, 0UL, "", 0xffff0000UL) < 0)
		return failed("kexec_file_load");
	return 0;
}

/* init_module: an empty image (ENOEXEC after the permission check; ENOSYS where the
 * kernel has no module support) */
static int p_init_module(int argc, char **argv)
{
	(void)argc, (void)argv;
	if (syscall(SYS_init_module, NULL, 0UL, "") < 0)
		return failed("init_module");
	return 0;
}

/* finit_module: no file (EBADF after the permission check; ENOSYS without modules) */
static int p_finit_module(int argc, char **argv)
{
	(void)argc, (void)argv;
	if (syscall(SYS_finit_module, -1, "", 0) < 0)
		return failed("finit_module");
	return 0;
}

/* delete_module: a module that is not loaded (ENOENT after the permission check) */
static int p_delete_module(int argc, char **argv)
{
	(void)argc, (void)argv;
	if (syscall(SYS_delete_module, "warden_probe_absent", O_NONBLOCK) < 0)
		return failed("delete_module");
	return 0;
}

/* clock_settime [invalid]: set CLOCK_REALTIME to its current value; "invalid" passes a
 * nanosecond count the kernel refuses (EINVAL) before its permission check */
static int p_clock_settime(int argc, char **argv)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (has_arg(argc, argv, 1, "invalid"))
		ts.tv_nsec = 2000000000L;
	if (syscall(SYS_clock_settime, CLOCK_REALTIME, &ts) < 0)
		return failed("clock_settime");
	return 0;
}

/* settimeofday [invalid]: as clock_settime, through the older interface */
static int p_settimeofday(int argc, char **argv)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	if (has_arg(argc, argv, 1, "invalid"))
		tv.tv_usec = 2000000;
	if (syscall(SYS_settimeofday, &tv, NULL) < 0)
		return failed("settimeofday");
	return 0;
}

/* adjtimex [invalid]: set the tick length to its current value; "invalid" passes a bad
 * pointer (EFAULT before the permission check) */
static int p_adjtimex(int argc, char **argv)
{
	struct timex tx;
	if (has_arg(argc, argv, 1, "invalid")) {
		if (syscall(SYS_adjtimex, (void *)8) < 0)
			return failed("adjtimex");
		return 0;
	}
	memset(&tx, 0, sizeof(tx));
	if (syscall(SYS_adjtimex, &tx) < 0)
		return failed("adjtimex (read)");
	tx.modes = ADJ_TICK;
	if (syscall(SYS_adjtimex, &tx) < 0)
		return failed("adjtimex (set)");
	return 0;
}

/* clock_adjtime [invalid]: as adjtimex, through clock_adjtime(CLOCK_REALTIME) */
static int p_clock_adjtime(int argc, char **argv)
{
	struct timex tx;
	if (has_arg(argc, argv, 1, "invalid")) {
		if (syscall(SYS_clock_adjtime, CLOCK_REALTIME, (void *)8) < 0)
			return failed("clock_adjtime");
		return 0;
	}
	memset(&tx, 0, sizeof(tx));
	if (syscall(SYS_clock_adjtime, CLOCK_REALTIME, &tx) < 0)
		return failed("clock_adjtime (read)");
	tx.modes = ADJ_TICK;
	if (syscall(SYS_clock_adjtime, CLOCK_REALTIME, &tx) < 0)
		return failed("clock_adjtime (set)");
	return 0;
}

/* reboot: wrong magic numbers (EINVAL after the permission check; nothing happens) */
static int p_reboot(int argc, char **argv)
{
	(void)argc, (void)argv;
	if (syscall(SYS_reboot, 0, 0, LINUX_REBOOT_CMD_CAD_OFF, NULL) < 0)
		return failed("reboot");
	return 0;
}

/* swapon PATH [badflags]: PATH should not exist (ENOENT after the permission check);
 * "badflags" passes flags the kernel refuses (EINVAL) before its permission check */
static int p_swapon(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	unsigned long flags = has_arg(argc, argv, 2, "badflags") ? 0x40000000UL : 0;
	if (syscall(SYS_swapon, argv[1], flags) < 0)
		return failed("swapon");
	return 0;
}

/* swapoff PATH: PATH should not exist (ENOENT after the permission check) */
static int p_swapoff(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	if (syscall(SYS_swapoff, argv[1]) < 0)
		return failed("swapoff");
	return 0;
}

/* acct PATH: PATH should not exist (ENOENT after the permission check) */
static int p_acct(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	if (syscall(SYS_acct, argv[1]) < 0)
		return failed("acct");
	return 0;
}

/* syslog: read the kernel log (dmesg) */
static int p_syslog(int argc, char **argv)
{
	(void)argc, (void)argv;
	static char buf[16384];
	long n = syscall(SYS_syslog, 3 /* SYSLOG_ACTION_READ_ALL */, buf, sizeof(buf));
	if (n < 0)
		return failed("syslog");
	printf("read %ld bytes of kernel log\n", n);
	return 0;
}

/* ioperm: give up access to port 0x80 (needs no privilege where the kernel has I/O port
 * support; ENOSYS where it has none) */
static int p_ioperm(int argc, char **argv)
{
	(void)argc, (void)argv;
	if (syscall(SYS_ioperm, 0x80UL, 1UL, 0) < 0)
		return failed("ioperm");
	return 0;
}

/* iopl: set the I/O privilege level to 0 (as ioperm) */
static int p_iopl(int argc, char **argv)
{
	(void)argc, (void)argv;
	if (syscall(SYS_iopl, 0) < 0)
		return failed("iopl");
	return 0;
}

/* modify_ldt: read the local descriptor table */
static int p_modify_ldt(int argc, char **argv)
{
	(void)argc, (void)argv;
	static char buf[4096];
	if (syscall(SYS_modify_ldt, 0, buf, sizeof(buf)) < 0)
		return failed("modify_ldt");
	return 0;
}

/* fanotify_init: a notification group (allowed to unprivileged callers since 5.13) */
static int p_fanotify_init(int argc, char **argv)
{
	(void)argc, (void)argv;
	if (syscall(SYS_fanotify_init, FAN_CLASS_NOTIF | FAN_REPORT_FID | FAN_CLOEXEC, O_RDONLY) <
	    0)
		return failed("fanotify_init");
	return 0;
}

/* uselib FILE: the obsolete a.out loader (ENOENT for a missing FILE where the kernel has
 * it, ENOSYS where it does not) */
static int p_uselib(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	if (syscall(SYS_uselib, argv[1]) < 0)
		return failed("uselib");
	return 0;
}

/* quotactl: sync the quota files of every file system (needs no privilege) */
static int p_quotactl(int argc, char **argv)
{
	(void)argc, (void)argv;
	if (syscall(SYS_quotactl, QCMD(Q_SYNC, USRQUOTA), NULL, 0, NULL) < 0)
		return failed("quotactl");
	return 0;
}

/* shm KEY create|get|rm: a System V shared memory segment with KEY */
static int p_shm(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	key_t key = (key_t)strtol(argv[1], NULL, 0);
	int flags = streq(argv[2], "create") ? IPC_CREAT | IPC_EXCL | 0644 : 0;
	int id = shmget(key, 4096, flags);
	if (id < 0)
		return failed("shmget");
	if (streq(argv[2], "rm") && shmctl(id, IPC_RMID, NULL) < 0)
		return failed("shmctl(IPC_RMID)");
	return 0;
}

/* ---- mounts and namespaces --------------------------------------------------------- */

/* mount FSTYPE DIR: mount a fresh file system of FSTYPE (tmpfs, sysfs, cgroup2, ...) */
static int p_mount(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	if (mount(argv[1], argv[2], argv[1], MS_NOSUID | MS_NODEV | MS_NOEXEC,
	          streq(argv[1], "tmpfs") ? "size=1m" : NULL) < 0)
		return failed("mount");
	return 0;
}

/* bind SRC DST: bind mount */
static int p_bind(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	if (mount(argv[1], argv[2], NULL, MS_BIND, NULL) < 0)
		return failed("bind mount");
	return 0;
}

/* unmask PATH [mask-first]: unmount what covers PATH and read what was under it.
 * "mask-first" first covers PATH with /dev/null, as the sandbox does (for --isolate). */
static int p_unmask(int argc, char **argv)
{
	char buf[256];
	if (argc < 2)
		return 2;
	if (has_arg(argc, argv, 2, "mask-first") &&
	    mount("/dev/null", argv[1], NULL, MS_BIND, NULL) < 0)
		return failed("masking");
	if (umount2(argv[1], MNT_DETACH) < 0)
		return failed("umount2");
	int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return failed(argv[1]);
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n < 0)
		return failed(argv[1]);
	if (n == 0)
		return failed_msg(argv[1], "still empty");
	printf("read %zd bytes\n", n);
	return 0;
}

/* fsopen FSTYPE: a file system context (the new mount API) */
static int p_fsopen(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	if (syscall(SYS_fsopen, argv[1], FSOPEN_CLOEXEC) < 0)
		return failed("fsopen");
	return 0;
}

/* open_tree PATH: a detached copy of the mount at PATH */
static int p_open_tree(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	if (syscall(SYS_open_tree, AT_FDCWD, argv[1], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC) < 0)
		return failed("open_tree");
	return 0;
}

/* open_tree_attr PATH: open_tree with mount attributes (newer than libseccomp's tables) */
static int p_open_tree_attr(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	if (syscall(NR_OPEN_TREE_ATTR, AT_FDCWD, argv[1], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC, NULL,
	            0UL) < 0)
		return failed("open_tree_attr");
	return 0;
}

/* pivot_root DIR: make the mount at DIR the root and detach the old one */
static int p_pivot_root(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	if (chdir(argv[1]) < 0)
		return failed(argv[1]);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return failed("pivot_root");
	if (umount2(".", MNT_DETACH) < 0)
		return failed("detaching the old root");
	return 0;
}

/* chroot DIR */
static int p_chroot(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	if (chroot(argv[1]) < 0)
		return failed("chroot");
	if (chdir("/") < 0)
		return failed("chdir");
	return 0;
}

static const struct {
	const char *name;
	unsigned long flag;
} ns_names[] = {
    {"user", CLONE_NEWUSER},     {"mnt", CLONE_NEWNS},    {"pid", CLONE_NEWPID},
    {"net", CLONE_NEWNET},       {"ipc", CLONE_NEWIPC},   {"uts", CLONE_NEWUTS},
    {"cgroup", CLONE_NEWCGROUP}, {"time", CLONE_NEWTIME}, {"none", 0},
};

/* "user,mnt" -> CLONE_NEWUSER | CLONE_NEWNS; returns -1 for an unknown name */
static long ns_flags(const char *list)
{
	char buf[128];
	unsigned long flags = 0;
	snprintf(buf, sizeof(buf), "%s", list);
	for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		size_t i;
		for (i = 0; i < sizeof(ns_names) / sizeof(ns_names[0]); i++)
			if (streq(ns_names[i].name, tok))
				break;
		if (i == sizeof(ns_names) / sizeof(ns_names[0]))
			return -1;
		flags |= ns_names[i].flag;
	}
	return (long)flags;
}

/* unshare NS[,NS...]: new namespaces (user, mnt, pid, net, ipc, uts, cgroup, time) */
static int p_unshare(int argc, char **argv)
{
	long flags = argc > 1 ? ns_flags(argv[1]) : -1;
	if (flags < 0)
		return 2;
	if (unshare((int)flags) < 0)
		return failed("unshare");
	return 0;
}

static int wait_child(pid_t pid, const char *what)
{
	int status;
	if (waitpid(pid, &status, 0) < 0)
		return failed("waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return failed_msg(what, "the child failed");
	return 0;
}

/* clone NS[,NS...]: a child in new namespaces, through the raw clone system call */
static int p_clone(int argc, char **argv)
{
	long flags = argc > 1 ? ns_flags(argv[1]) : -1;
	if (flags < 0)
		return 2;
	long pid = syscall(SYS_clone, (unsigned long)flags | SIGCHLD, NULL, NULL, NULL, 0UL);
	if (pid < 0)
		return failed("clone");
	if (pid == 0)
		_exit(0);
	return wait_child((pid_t)pid, "clone");
}

/* clone3 NS[,NS...]|none: as clone, through clone3 (whose flags seccomp cannot read) */
static int p_clone3(int argc, char **argv)
{
	long flags = argc > 1 ? ns_flags(argv[1]) : -1;
	struct clone_args args;
	if (flags < 0)
		return 2;
	memset(&args, 0, sizeof(args));
	args.flags = (uint64_t)flags;
	args.exit_signal = SIGCHLD;
	long pid = syscall(SYS_clone3, &args, sizeof(args));
	if (pid < 0)
		return failed("clone3");
	if (pid == 0)
		_exit(0);
	return wait_child((pid_t)pid, "clone3");
}

/* setns PATH|-: join the namespace PATH names ("-" passes a bad fd: EBADF before any
 * permission check) */
static int p_setns(int argc, char **argv)
{
	int fd = -1;
	if (argc < 2)
		return 2;
	if (!streq(argv[1], "-") && (fd = open(argv[1], O_RDONLY | O_CLOEXEC)) < 0)
		return failed(argv[1]);
	if (setns(fd, 0) < 0)
		return failed("setns");
	return 0;
}

/* uid_map MAP [fresh]: write MAP to /proc/self/uid_map ("fresh": in a new user namespace
 * made first, the only place a process may write a map for itself) */
static int p_uid_map(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	if (has_arg(argc, argv, 2, "fresh") && unshare(CLONE_NEWUSER) < 0)
		return failed("unshare(CLONE_NEWUSER)");
	if (write_file("/proc/self/uid_map", argv[1]) < 0)
		return failed("writing /proc/self/uid_map");
	return 0;
}

/* ---- terminals --------------------------------------------------------------------- */

static int tty_fd(void)
{
	if (isatty(0))
		return 0;
	return open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
}

/* tiocsti [hi|steal]: push a character into the input of the controlling terminal; "hi"
 * sets bits above the 32 the kernel reads of the command number; "steal" first makes the
 * terminal on stdin the controlling terminal of a new session (possible when it is no
 * session's yet), which is what the kernel asks of an unprivileged TIOCSTI */
static int p_tiocsti(int argc, char **argv)
{
	char c = '#';
	int fd = tty_fd();
	if (fd < 0)
		return failed("opening the terminal");
	unsigned long cmd = TIOCSTI;
	if (has_arg(argc, argv, 1, "hi"))
		cmd |= 1UL << 32;
	if (has_arg(argc, argv, 1, "steal")) {
		(void)setsid(); /* fails where the probe leads its session already */
		if (ioctl(fd, TIOCSCTTY, 0) < 0)
			return failed("ioctl(TIOCSCTTY)");
	}
	if (syscall(SYS_ioctl, fd, cmd, &c) < 0)
		return failed("ioctl(TIOCSTI)");
	return 0;
}

static int tty_ioctl(unsigned long cmd, void *arg, const char *what)
{
	int fd = tty_fd();
	if (fd < 0)
		return failed("opening the terminal");
	if (ioctl(fd, cmd, arg) < 0)
		return failed(what);
	return 0;
}

/* tioclinux: read the shift state of the virtual console (ENOTTY on other terminals) */
static int p_tioclinux(int argc, char **argv)
{
	(void)argc, (void)argv;
	char sub = TIOCL_GETSHIFTSTATE;
	return tty_ioctl(TIOCLINUX, &sub, "ioctl(TIOCLINUX)");
}

/* tiocsetd: set the terminal's line discipline (to N_TTY, the one it has) */
static int p_tiocsetd(int argc, char **argv)
{
	(void)argc, (void)argv;
	int ldisc = N_TTY;
	return tty_ioctl(TIOCSETD, &ldisc, "ioctl(TIOCSETD)");
}

/* vhangup: hang up the controlling terminal (every other process using it loses it; the
 * probe ignores the SIGHUP it gets itself) */
static int p_vhangup(int argc, char **argv)
{
	(void)argc, (void)argv;
	signal(SIGHUP, SIG_IGN);
	if (syscall(SYS_vhangup) < 0)
		return failed("vhangup");
	return 0;
}

/* ---- sockets ----------------------------------------------------------------------- */

static const struct {
	const char *name;
	int family, type, protocol;
} socket_kinds[] = {
    {"raw", AF_INET, SOCK_RAW, IPPROTO_ICMP},
    {"raw6", AF_INET6, SOCK_RAW, IPPROTO_ICMPV6},
    {"inet_packet", AF_INET, SOCK_PACKET, 0x0300 /* htons(ETH_P_ALL) */},
    {"packet", AF_PACKET, SOCK_RAW, 0x0300 /* htons(ETH_P_ALL) */},
    {"netlink_audit", AF_NETLINK, SOCK_RAW, NETLINK_AUDIT},
    {"netlink_uevent", AF_NETLINK, SOCK_DGRAM, NETLINK_KOBJECT_UEVENT},
    {"netlink_netfilter", AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER},
    {"netlink_route", AF_NETLINK, SOCK_RAW, NETLINK_ROUTE},
    {"alg", AF_ALG, SOCK_SEQPACKET, 0},
    {"vsock", AF_VSOCK, SOCK_STREAM, 0},
    {"udp", AF_INET, SOCK_DGRAM, 0},
};

/* socket KIND [hi]: create a socket of KIND; "hi" sets bits above the 32 the kernel reads
 * of the family */
static int p_socket(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	for (size_t i = 0; i < sizeof(socket_kinds) / sizeof(socket_kinds[0]); i++) {
		if (!streq(socket_kinds[i].name, argv[1]))
			continue;
		unsigned long family = (unsigned long)socket_kinds[i].family;
		if (has_arg(argc, argv, 2, "hi"))
			family |= 1UL << 32;
		if (syscall(SYS_socket, family, socket_kinds[i].type | SOCK_CLOEXEC,
		            socket_kinds[i].protocol) < 0)
			return failed("socket");
		return 0;
	}
	return 2;
}

static int inet_addr_of(const char *host, const char *port, struct sockaddr_in *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)atoi(port));
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

/* tcp_connect HOST PORT */
static int p_tcp_connect(int argc, char **argv)
{
	struct sockaddr_in sa;
	if (argc < 3 || inet_addr_of(argv[1], argv[2], &sa) < 0)
		return 2;
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return failed("socket");
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return failed("connect");
	return 0;
}

/* tcp_bind HOST PORT: bind and listen */
static int p_tcp_bind(int argc, char **argv)
{
	struct sockaddr_in sa;
	int one = 1;
	if (argc < 3 || inet_addr_of(argv[1], argv[2], &sa) < 0)
		return 2;
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return failed("socket");
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return failed("bind");
	if (listen(s, 1) < 0)
		return failed("listen");
	return 0;
}

/* "PATH" or "@NAME" (abstract) as a unix socket address; returns its length, or 0 */
static socklen_t unix_addr(const char *name, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(name) >= sizeof(sa->sun_path))
		return 0;
	memcpy(sa->sun_path, name, strlen(name));
	if (name[0] == '@') {
		sa->sun_path[0] = '\0';
		return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name));
	}
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name) + 1);
}

/* unix_connect PATH|@NAME: connect to a unix socket by path or abstract name */
static int p_unix_connect(int argc, char **argv)
{
	struct sockaddr_un sa;
	socklen_t len = argc > 1 ? unix_addr(argv[1], &sa) : 0;
	if (!len)
		return 2;
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return failed("socket");
	if (connect(s, (struct sockaddr *)&sa, len) < 0)
		return failed("connect");
	return 0;
}

/* unix_listen PATH|@NAME MS: listen on a unix socket for MS milliseconds (printing
 * "listening" once ready) */
static int p_unix_listen(int argc, char **argv)
{
	struct sockaddr_un sa;
	socklen_t len = argc > 2 ? unix_addr(argv[1], &sa) : 0;
	if (!len)
		return 2;
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return failed("socket");
	if (bind(s, (struct sockaddr *)&sa, len) < 0)
		return failed("bind");
	if (listen(s, 16) < 0)
		return failed("listen");
	printf("listening\n");
	fflush(stdout);
	usleep((useconds_t)atoi(argv[2]) * 1000);
	return 0;
}

/* ---- files, devices and /proc ------------------------------------------------------ */

/* read FILE: open and read the first bytes of FILE */
static int p_read(int argc, char **argv)
{
	char buf[64];
	if (argc < 2)
		return 2;
	int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return failed(argv[1]);
	if (read(fd, buf, sizeof(buf)) < 0)
		return failed(argv[1]);
	close(fd);
	return 0;
}

/* read_content FILE: read FILE and fail when it is empty (a masked file reads empty) */
static int p_read_content(int argc, char **argv)
{
	char buf[4096];
	if (argc < 2)
		return 2;
	int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return failed(argv[1]);
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n < 0)
		return failed(argv[1]);
	if (n == 0)
		return failed_msg(argv[1], "empty");
	printf("read %zd bytes\n", n);
	return 0;
}

/* proc_keys: add a key to the process keyring (where allowed, ignoring a refusal) and read
 * /proc/keys, which lists the keys the caller may view; fail when it reads empty */
static int p_proc_keys(int argc, char **argv)
{
	(void)argc;
	(void)syscall(SYS_add_key, "user", "warden-probe", "secret", 6, KEY_SPEC_PROCESS_KEYRING);
	char *args[] = {argv[0], "/proc/keys", NULL};
	return p_read_content(2, args);
}

/* find FILE TEXT: succeed when FILE (read whole, NUL bytes included) contains TEXT */
static int p_find(int argc, char **argv)
{
	static char buf[1 << 16];
	size_t len = 0;
	ssize_t n;
	if (argc < 3)
		return 2;
	int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return failed(argv[1]);
	while (len < sizeof(buf) && (n = read(fd, buf + len, sizeof(buf) - len)) > 0)
		len += (size_t)n;
	if (!memmem(buf, len, argv[2], strlen(argv[2])))
		return failed_msg(argv[1], "text not found");
	printf("found\n");
	return 0;
}

/* write FILE: create/truncate FILE and write a line */
static int p_write(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return failed(argv[1]);
	if (write(fd, "probe\n", 6) != 6)
		return failed(argv[1]);
	close(fd);
	return 0;
}

/* open FILE r|w|rw: open FILE and nothing more (opening is where permission to write a
 * sysctl or a device is checked; nothing is written) */
static int p_open(int argc, char **argv)
{
	int flags = O_RDONLY;
	if (argc < 3)
		return 2;
	if (streq(argv[2], "w"))
		flags = O_WRONLY;
	else if (streq(argv[2], "rw"))
		flags = O_RDWR;
	if (open(argv[1], flags | O_CLOEXEC | O_NOCTTY) < 0)
		return failed(argv[1]);
	return 0;
}

/* stat PATH: print its type and device numbers */
static int p_stat(int argc, char **argv)
{
	struct stat st;
	if (argc < 2)
		return 2;
	if (lstat(argv[1], &st) < 0)
		return failed(argv[1]);
	const char *type = S_ISREG(st.st_mode)   ? "file"
	                   : S_ISDIR(st.st_mode) ? "dir"
	                   : S_ISCHR(st.st_mode) ? "char"
	                   : S_ISBLK(st.st_mode) ? "block"
	                   : S_ISLNK(st.st_mode) ? "link"
	                                         : "other";
	printf("%s rdev=%u:%u uid=%u\n", type, major(st.st_rdev), minor(st.st_rdev),
	       (unsigned)st.st_uid);
	return 0;
}

/* fill FILE MIB: write MIB mebibytes to FILE */
static int p_fill(int argc, char **argv)
{
	static char chunk[1 << 20];
	if (argc < 3)
		return 2;
	int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return failed(argv[1]);
	memset(chunk, 'x', sizeof(chunk));
	for (int i = 0; i < atoi(argv[2]); i++) {
		/* a short write is followed by one for the rest, which reports the error */
		for (size_t done = 0; done < sizeof(chunk);) {
			ssize_t n = write(fd, chunk + done, sizeof(chunk) - done);
			if (n < 0)
				return failed("write");
			done += (size_t)n;
		}
	}
	if (fsync(fd) < 0)
		return failed("fsync");
	printf("wrote %s MiB\n", argv[2]);
	return 0;
}

/* plant_suid SRC DST: copy the program SRC to DST and make DST setuid and setgid (a
 * file the probe owns, in its own view) */
static int p_plant_suid(int argc, char **argv)
{
	static char buf[1 << 16];
	struct stat st;
	ssize_t n;
	if (argc < 3)
		return 2;
	int in = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return failed(argv[1]);
	int out = open(argv[2], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	if (out < 0)
		return failed(argv[2]);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			return failed("write");
	if (n < 0)
		return failed("read");
	if (fchmod(out, 06755) < 0)
		return failed("fchmod");
	if (fstat(out, &st) < 0)
		return failed("fstat");
	printf("mode %o uid %u\n", (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
	return 0;
}

/* mknod PATH char|block MAJOR MINOR: create a device node (and remove it at once) */
static int p_mknod(int argc, char **argv)
{
	if (argc < 5)
		return 2;
	mode_t type = streq(argv[2], "block") ? S_IFBLK : S_IFCHR;
	if (mknod(argv[1], type | 0600, makedev(atoi(argv[3]), atoi(argv[4]))) < 0)
		return failed("mknod");
	unlink(argv[1]);
	return 0;
}

/* rndgetentcnt DEVICE: a device-specific ioctl (the entropy count of a random device) */
static int p_rndgetentcnt(int argc, char **argv)
{
	int count;
	if (argc < 2)
		return 2;
	int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return failed(argv[1]);
	if (ioctl(fd, RNDGETENTCNT, &count) < 0)
		return failed("ioctl(RNDGETENTCNT)");
	printf("entropy %d\n", count);
	return 0;
}

/* landlock_abi: print the Landlock ABI version the kernel offers */
static int p_landlock_abi(int argc, char **argv)
{
	(void)argc, (void)argv;
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, 1U /* VERSION */);
	if (abi < 0)
		return failed("landlock_create_ruleset");
	printf("%ld\n", abi);
	return 0;
}

/* fd_read FD: read from an inherited descriptor */
static int p_fd_read(int argc, char **argv)
{
	char buf[16];
	if (argc < 2)
		return 2;
	if (read(atoi(argv[1]), buf, sizeof(buf)) < 0)
		return failed("read");
	return 0;
}

/* getenv NAME: print NAME's value; fail when it is not set */
static int p_getenv(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	const char *v = getenv(argv[1]);
	if (!v)
		return failed_msg(argv[1], "not set");
	printf("%s\n", v);
	return 0;
}

/* ---- processes and resource use ---------------------------------------------------- */

/* kill PID SIG [WAIT_MS]: send SIG to PID, then stay alive WAIT_MS (so that a sandbox
 * whose init died would take the probe with it) */
static int p_kill(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	if (kill(atoi(argv[1]), atoi(argv[2])) < 0)
		return failed("kill");
	if (argc > 3)
		usleep((useconds_t)atoi(argv[3]) * 1000);
	printf("signal sent\n");
	return 0;
}

/* ptrace_attach PID: seize PID (no stop; the probe detaches by exiting) */
static int p_ptrace_attach(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	if (ptrace(PTRACE_SEIZE, atoi(argv[1]), NULL, NULL) < 0)
		return failed("ptrace(PTRACE_SEIZE)");
	return 0;
}

/* pidfd_getfd PID FD: copy descriptor FD out of process PID */
static int p_pidfd_getfd(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	long pfd = syscall(SYS_pidfd_open, atoi(argv[1]), 0);
	if (pfd < 0)
		return failed("pidfd_open");
	if (syscall(SYS_pidfd_getfd, pfd, atoi(argv[2]), 0) < 0)
		return failed("pidfd_getfd");
	return 0;
}

static volatile int ptrace_target = 42;

/* ptrace_child: trace a child of the probe and read its memory */
static int p_ptrace_child(int argc, char **argv)
{
	(void)argc, (void)argv;
	int value = 0, r = 0;
	pid_t pid = fork();
	if (pid < 0)
		return failed("fork");
	if (pid == 0) {
		pause();
		_exit(0);
	}
	struct iovec local = {&value, sizeof(value)};
	struct iovec remote = {(void *)&ptrace_target, sizeof(value)};
	if (ptrace(PTRACE_SEIZE, pid, NULL, NULL) < 0)
		r = failed("ptrace(PTRACE_SEIZE)");
	else if (process_vm_readv(pid, &local, 1, &remote, 1, 0) != sizeof(value))
		r = failed("process_vm_readv");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	if (r == 0 && value != 42)
		r = failed_msg("process_vm_readv", "wrong value");
	return r;
}

/* fork_n N: start N sleeping children, report how many started, then end them */
static int p_fork_n(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	int n = atoi(argv[1]), started = 0, err = 0;
	pid_t *pids = calloc((size_t)n, sizeof(pid_t));
	if (!pids)
		return failed("calloc");
	for (; started < n; started++) {
		pid_t pid = fork();
		if (pid == 0) {
			pause();
			_exit(0);
		}
		if (pid < 0) {
			err = errno;
			break;
		}
		pids[started] = pid;
	}
	printf("started %d of %d\n", started, n);
	fflush(stdout);
	for (int i = 0; i < started; i++)
		kill(pids[i], SIGKILL);
	for (int i = 0; i < started; i++)
		waitpid(pids[i], NULL, 0);
	if (err) {
		errno = err;
		return failed("fork");
	}
	return 0;
}

/* alloc MIB: allocate MIB mebibytes and touch every page */
static int p_alloc(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	size_t size = (size_t)atoi(argv[1]) << 20;
	char *p = malloc(size);
	if (!p)
		return failed("malloc");
	for (size_t i = 0; i < size; i += 4096)
		p[i] = 1;
	printf("allocated %s MiB\n", argv[1]);
	return 0;
}

/* ---- identity ---------------------------------------------------------------------- */

/* caps: print the capability sets; succeed when any of them is non-empty */
static int p_caps(int argc, char **argv)
{
	(void)argc, (void)argv;
	char line[256];
	bool any = false;
	FILE *f = fopen("/proc/self/status", "re");
	if (!f)
		return failed("/proc/self/status");
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "Cap", 3) != 0)
			continue;
		fputs(line, stdout);
		char *colon = strchr(line, ':');
		if (colon && strtoull(colon + 1, NULL, 16) != 0)
			any = true;
	}
	fclose(f);
	if (!any)
		return failed_msg("capabilities", "all sets are empty");
	return 0;
}

/* euid: succeed when the effective uid is 0 (run from a setuid-root copy) */
static int p_euid(int argc, char **argv)
{
	(void)argc, (void)argv;
	printf("euid %u\n", (unsigned)geteuid());
	if (geteuid() != 0)
		return failed_msg("euid", "not root");
	return 0;
}

/* exec_euid PROGRAM: run PROGRAM --help and read the effective uid it ran with from
 * /proc while it is a zombie (a setuid-root PROGRAM runs with euid 0) */
static int p_exec_euid(int argc, char **argv)
{
	char path[64], line[256];
	unsigned ruid = 0, euid = 1;
	bool execed = false;
	siginfo_t si;
	if (argc < 2)
		return 2;
	pid_t pid = fork();
	if (pid < 0)
		return failed("fork");
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		execl(argv[1], argv[1], "--help", (char *)NULL);
		_exit(127);
	}
	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) < 0)
		return failed("waitid");
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return failed(path);
	const char *base = strrchr(argv[1], '/') ? strrchr(argv[1], '/') + 1 : argv[1];
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "Name:", 5) && strstr(line, base))
			execed = true;
		if (!strncmp(line, "Uid:", 4))
			sscanf(line + 4, "%u %u", &ruid, &euid);
	}
	fclose(f);
	waitpid(pid, NULL, 0);
	if (!execed)
		return failed_msg(argv[1], "could not be executed");
	printf("ruid %u euid %u\n", ruid, euid);
	if (euid != 0)
		return failed_msg(argv[1], "ran without euid 0");
	return 0;
}

/* ---- other system-call ABIs -------------------------------------------------------- */

/* int80_getpid: getpid through the i386 entry point (int 0x80) */
static int p_int80_getpid(int argc, char **argv)
{
	(void)argc, (void)argv;
	long ret;
	__asm__ volatile("int $0x80"
	                 : "=a"(ret)
	                 : "a"(I386_NR_GETPID)
	                 : "memory", "r8", "r9", "r10", "r11");
	if (ret < 0) {
		errno = (int)-ret;
		return failed("int 0x80 getpid");
	}
	printf("pid %ld\n", ret);
	return ret == getpid() ? 0 : failed_msg("int 0x80 getpid", "wrong pid");
}

/* x32_getpid: getpid through the x32 numbering (ENOSYS on kernels without x32) */
static int p_x32_getpid(int argc, char **argv)
{
	(void)argc, (void)argv;
	long ret = syscall(X32_SYSCALL_BIT | SYS_getpid);
	if (ret < 0)
		return failed("x32 getpid");
	printf("pid %ld\n", ret);
	return 0;
}

/* ---- the table --------------------------------------------------------------------- */

struct attempt {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};

static const struct attempt attempts[] = {
    {"read", p_read, "read FILE"},
    {"read_content", p_read_content, "read_content FILE"},
    {"proc_keys", p_proc_keys, "proc_keys"},
    {"find", p_find, "find FILE TEXT"},
    {"write", p_write, "write FILE"},
    {"open", p_open, "open FILE r|w|rw"},
    {"stat", p_stat, "stat PATH"},
    {"fill", p_fill, "fill FILE MIB"},
    {"mknod", p_mknod, "mknod PATH char|block MAJOR MINOR"},
    {"plant_suid", p_plant_suid, "plant_suid SRC DST"},
    {"rndgetentcnt", p_rndgetentcnt, "rndgetentcnt DEVICE"},
    {"landlock_abi", p_landlock_abi, "landlock_abi"},
    {"fd_read", p_fd_read, "fd_read FD"},
    {"getenv", p_getenv, "getenv NAME"},
    {"add_key", p_add_key, "add_key"},
    {"keyctl", p_keyctl, "keyctl"},
    {"request_key", p_request_key, "request_key"},
    {"bpf_map", p_bpf_map, "bpf_map [oversized]"},
    {"perf_event_open", p_perf_event_open, "perf_event_open"},
    {"userfaultfd", p_userfaultfd, "userfaultfd"},
    {"io_uring_setup", p_io_uring_setup, "io_uring_setup"},
    {"name_to_handle_at", p_name_to_handle_at, "name_to_handle_at FILE"},
    {"open_by_handle_at", p_open_by_handle_at, "open_by_handle_at FILE MOUNTDIR|-"},
    {"kexec_load", p_kexec_load, "kexec_load"},
    {"kexec_file_load", p_kexec_file_load, "kexec_file_load"},
    {"init_module", p_init_module, "init_module"},
    {"finit_module", p_finit_module, "finit_module"},
    {"delete_module", p_delete_module, "delete_module"},
    {"clock_settime", p_clock_settime, "clock_settime [invalid]"},
    {"settimeofday", p_settimeofday, "settimeofday [invalid]"},
    {"adjtimex", p_adjtimex, "adjtimex [invalid]"},
    {"clock_adjtime", p_clock_adjtime, "clock_adjtime [invalid]"},
    {"reboot", p_reboot, "reboot"},
    {"swapon", p_swapon, "swapon PATH [badflags]"},
    {"swapoff", p_swapoff, "swapoff PATH"},
    {"acct", p_acct, "acct PATH"},
    {"syslog", p_syslog, "syslog"},
    {"ioperm", p_ioperm, "ioperm"},
    {"iopl", p_iopl, "iopl"},
    {"modify_ldt", p_modify_ldt, "modify_ldt"},
    {"fanotify_init", p_fanotify_init, "fanotify_init"},
    {"uselib", p_uselib, "uselib FILE"},
    {"quotactl", p_quotactl, "quotactl"},
    {"shm", p_shm, "shm KEY create|get|rm"},
    {"mount", p_mount, "mount FSTYPE DIR"},
    {"bind", p_bind, "bind SRC DST"},
    {"unmask", p_unmask, "unmask PATH [mask-first]"},
    {"fsopen", p_fsopen, "fsopen FSTYPE"},
    {"open_tree", p_open_tree, "open_tree PATH"},
    {"open_tree_attr", p_open_tree_attr, "open_tree_attr PATH"},
    {"pivot_root", p_pivot_root, "pivot_root DIR"},
    {"chroot", p_chroot, "chroot DIR"},
    {"unshare", p_unshare, "unshare NS[,NS...]"},
    {"clone", p_clone, "clone NS[,NS...]"},
    {"clone3", p_clone3, "clone3 NS[,NS...]|none"},
    {"setns", p_setns, "setns PATH|-"},
    {"uid_map", p_uid_map, "uid_map MAP [fresh]"},
    {"tiocsti", p_tiocsti, "tiocsti [hi|steal]"},
    {"tioclinux", p_tioclinux, "tioclinux"},
    {"tiocsetd", p_tiocsetd, "tiocsetd"},
    {"vhangup", p_vhangup, "vhangup"},
    {"socket", p_socket, "socket raw|raw6|inet_packet|packet|netlink_*|alg|vsock|udp [hi]"},
    {"tcp_connect", p_tcp_connect, "tcp_connect HOST PORT"},
    {"tcp_bind", p_tcp_bind, "tcp_bind HOST PORT"},
    {"unix_connect", p_unix_connect, "unix_connect PATH|@NAME"},
    {"unix_listen", p_unix_listen, "unix_listen PATH|@NAME MS"},
    {"kill", p_kill, "kill PID SIG [WAIT_MS]"},
    {"ptrace_attach", p_ptrace_attach, "ptrace_attach PID"},
    {"pidfd_getfd", p_pidfd_getfd, "pidfd_getfd PID FD"},
    {"ptrace_child", p_ptrace_child, "ptrace_child"},
    {"fork_n", p_fork_n, "fork_n N"},
    {"alloc", p_alloc, "alloc MIB"},
    {"caps", p_caps, "caps"},
    {"euid", p_euid, "euid"},
    {"exec_euid", p_exec_euid, "exec_euid PROGRAM"},
    {"int80_getpid", p_int80_getpid, "int80_getpid"},
    {"x32_getpid", p_x32_getpid, "x32_getpid"},
    {NULL, NULL, NULL},
};

int main(int argc, char **argv)
{
	int i = 1;
	for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
		if (streq(argv[i], "--isolate")) {
			if (isolate() != 0)
				return 1;
		} else if (streq(argv[i], "--tmpfs") && i + 1 < argc) {
			i++;
			if (mount("tmpfs", argv[i], "tmpfs", 0, "size=1m") < 0)
				return failed("--tmpfs");
		} else {
			break;
		}
	}
	if (i >= argc) {
		fprintf(stderr, "usage: probe [--isolate] [--tmpfs DIR] ATTEMPT [ARGS...]\n"
		                "attempts:\n");
		for (const struct attempt *a = attempts; a->name; a++)
			fprintf(stderr, "  %s\n", a->help);
		return 2;
	}
	for (const struct attempt *a = attempts; a->name; a++)
		if (streq(a->name, argv[i]))
			return a->fn(argc - i, argv + i);
	fprintf(stderr, "probe: unknown attempt %s\n", argv[i]);
	return 2;
}
