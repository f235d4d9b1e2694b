/* seccomp.c: the system-call filter, compiled once per plan with libseccomp.
 *
 * Sections: the refusal table (the reasons are the documentation: docs/security.md lists
 * the same entries); argument filters; compilation to BPF; loading.
 *
 * Why a deny list and not an allow list: agents run arbitrary toolchains (compilers,
 * language runtimes, databases), and an allow list broad enough for all of them is a deny
 * list written backwards that breaks on every new runtime. What is refused is the kernel
 * attack surface that no such workload needs; everything else is already confined by the
 * namespaces, the dropped capabilities and Landlock. System calls newer than this list
 * (numbers past the last one the project knows) get ENOSYS, the answer an older kernel
 * would give, so a future kernel interface is never open by default.
 */
#define _GNU_SOURCE
#include "ns.h"

#include <fcntl.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/ioctl.h>
#include <termios.h>

const struct ns_seccomp_rule ns_seccomp_denied[] = {
    {"keyctl", "kernel keyrings are not namespaced and have a long CVE history"},
    {"add_key", "kernel keyrings are not namespaced and have a long CVE history"},
    {"request_key", "kernel keyrings are not namespaced and have a long CVE history"},
    {"bpf", "loads programs into the kernel; verifier bugs are a classic escape"},
    {"perf_event_open", "kernel profiling: side channels and many CVEs"},
    {"userfaultfd", "stalls kernel page faults to widen exploit race windows"},
    {"io_uring_setup", "io_uring runs operations without passing through seccomp"},
    {"io_uring_enter", "io_uring runs operations without passing through seccomp"},
    {"io_uring_register", "io_uring runs operations without passing through seccomp"},
    {"open_by_handle_at", "opens files by handle, around path-based confinement"},
    {"mount", "the file system layout is fixed by warden"},
    {"umount2", "the file system layout is fixed by warden (unmasking hidden paths)"},
    {"pivot_root", "the file system layout is fixed by warden"},
    {"chroot", "the file system layout is fixed by warden"},
    {"move_mount", "the file system layout is fixed by warden"},
    {"open_tree", "the file system layout is fixed by warden"},
    {"fsopen", "the file system layout is fixed by warden"},
    {"fsconfig", "the file system layout is fixed by warden"},
    {"fsmount", "the file system layout is fixed by warden"},
    {"fspick", "the file system layout is fixed by warden"},
    {"mount_setattr", "the file system layout is fixed by warden"},
    {"setns", "joining other namespaces"},
    {"kexec_load", "replaces the running kernel"},
    {"kexec_file_load", "replaces the running kernel"},
    {"init_module", "loads code into the kernel"},
    {"finit_module", "loads code into the kernel"},
    {"delete_module", "unloads kernel code"},
    {"clock_settime", "the clock is host-wide"},
    {"clock_adjtime", "the clock is host-wide"},
    {"settimeofday", "the clock is host-wide"},
    {"adjtimex", "the clock is host-wide"},
    {"reboot", "host power state"},
    {"swapon", "host memory management"},
    {"swapoff", "host memory management"},
    {"acct", "host-wide process accounting"},
    {"quotactl", "host file system quotas"},
    {"quotactl_fd", "host file system quotas"},
    {"syslog", "the kernel log holds kernel addresses and other tenants' messages"},
    {"ioperm", "direct hardware I/O port access"},
    {"iopl", "direct hardware I/O port access"},
    {"modify_ldt", "segment descriptor tricks used by kernel exploits"},
    {"lookup_dcookie", "kernel profiling interface"},
    {"uselib", "obsolete loader interface"},
    {"vhangup", "hangs up the terminal of other sessions"},
    {"fanotify_init", "file system wide monitoring"},
    {"name_to_handle_at", "pairs with open_by_handle_at; exposes file handles"},
    {NULL, NULL},
};

/* Refused unless the policy sets security.ptrace: debuggers and tracers inside the
 * sandbox can only reach the sandbox's own processes (pid namespace), so this is for
 * policies that want to close even that. */
static const struct ns_seccomp_rule ptrace_denied[] = {
    {"ptrace", "security.ptrace: false"},
    {"process_vm_readv", "security.ptrace: false"},
    {"process_vm_writev", "security.ptrace: false"},
    {"pidfd_getfd", "security.ptrace: false"},
    {"process_madvise", "security.ptrace: false"},
    {"kcmp", "security.ptrace: false"},
    {NULL, NULL},
};

/* x86-64 numbers of system calls newer than libseccomp 2.5's table. open_tree_attr is the
 * mount family again; numbers above the last known one are "future" and get ENOSYS. */
#define NR_OPEN_TREE_ATTR 467
#define NR_LAST_KNOWN     469
#define NR_FUTURE_END     511

static bool name_in(const struct strv *list, const char *name)
{
	for (size_t i = 0; i < list->n; i++)
		if (streq(list->v[i], name))
			return true;
	return false;
}

static int add(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n,
               const struct scmp_arg_cmp *args, struct warden_error **err)
{
	int nr = seccomp_syscall_resolve_name(name);
	if (nr == __NR_SCMP_ERROR)
		return warden_error_set(err, 0, "seccomp: unknown system call \"%s\"", name);
	int r = seccomp_rule_add_array(ctx, action, nr, n, args);
	if (r < 0)
		return warden_error_set(err, -r, "seccomp: rule for %s", name);
	return 0;
}

/* Namespace creation flags: a new user namespace hands an unprivileged process a full set
 * of capabilities over fresh namespaces, the entry point of most container escapes through
 * kernel bugs (netfilter, mount, ...). One rule per flag, because a masked comparison
 * matches only an exact value and the flags may be combined with anything. */
static const uint64_t ns_flags[] = {CLONE_NEWUSER,   CLONE_NEWNS,  CLONE_NEWPID,
                                    CLONE_NEWNET,    CLONE_NEWIPC, CLONE_NEWUTS,
                                    CLONE_NEWCGROUP, 0x00000080 /* CLONE_NEWTIME */};

static int add_clone_rules(scmp_filter_ctx ctx, const struct warden_policy *p,
                           struct warden_error **err)
{
	for (size_t i = 0; i < ARRAY_SIZE(ns_flags); i++) {
		struct scmp_arg_cmp a = SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]);
		if (!name_in(&p->seccomp_allow, "clone") &&
		    add(ctx, SCMP_ACT_ERRNO(EPERM), "clone", 1, &a, err) < 0)
			return -1;
		if (!name_in(&p->seccomp_allow, "unshare") &&
		    add(ctx, SCMP_ACT_ERRNO(EPERM), "unshare", 1, &a, err) < 0)
			return -1;
	}
	/* clone3 passes its flags in memory, which seccomp cannot read. ENOSYS makes the C
	 * library fall back to clone(), whose flags the rules above do see. */
	if (!name_in(&p->seccomp_allow, "clone3") &&
	    add(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL, err) < 0)
		return -1;
	return 0;
}

/* Sockets: only the families ordinary programs use. Everything else (packet, netlink
 * families other than routing and socket diagnostics, AF_ALG, vsock, bluetooth, CAN, XDP,
 * RDS, TIPC, ...) is kernel attack surface an agent does not need. Raw and packet-type
 * inet sockets are refused even though dropped capabilities already stop them.
 * The kernel reads these arguments as int; a value with high bits set is caught by the
 * "greater than" rules, which compare all 64 bits. */
static int add_socket_rules(scmp_filter_ctx ctx, const struct warden_policy *p,
                            struct warden_error **err)
{
	/* Refused families: every one below AF_NETLINK except unix, inet and inet6, and
	 * everything above AF_NETLINK (one comparison covers that range). */
	static const int refused[] = {AF_UNSPEC, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15};
	if (name_in(&p->seccomp_allow, "socket"))
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(refused); i++) {
		struct scmp_arg_cmp a = SCMP_A0(SCMP_CMP_EQ, (uint64_t)refused[i]);
		if (add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), "socket", 1, &a, err) < 0 ||
		    add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), "socketpair", 1, &a, err) < 0)
			return -1;
	}
	struct scmp_arg_cmp beyond = SCMP_A0(SCMP_CMP_GT, (uint64_t)AF_NETLINK);
	if (add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), "socket", 1, &beyond, err) < 0 ||
	    add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), "socketpair", 1, &beyond, err) < 0)
		return -1;
	static const int inet[] = {AF_INET, AF_INET6};
	static const int types[] = {SOCK_RAW, SOCK_PACKET};
	for (size_t i = 0; i < ARRAY_SIZE(inet); i++)
		for (size_t j = 0; j < ARRAY_SIZE(types); j++) {
			struct scmp_arg_cmp a[2] = {
			    SCMP_A0(SCMP_CMP_EQ, (uint64_t)inet[i]),
			    /* the type carries SOCK_CLOEXEC/SOCK_NONBLOCK in its high bits */
			    SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, (uint64_t)types[j]),
			};
			if (add(ctx, SCMP_ACT_ERRNO(EPERM), "socket", 2, a, err) < 0)
				return -1;
		}
	/* Netlink: routing (getaddrinfo, `ip addr`) and socket diagnostics (`ss`) only; audit,
	 * netfilter, xfrm, generic netlink and uevents stay closed. */
	static const uint64_t nl_refused[] = {1, 2, 3};
	for (size_t i = 0; i < ARRAY_SIZE(nl_refused); i++) {
		struct scmp_arg_cmp a[2] = {SCMP_A0(SCMP_CMP_EQ, AF_NETLINK),
		                            SCMP_A2(SCMP_CMP_EQ, nl_refused[i])};
		if (add(ctx, SCMP_ACT_ERRNO(EPERM), "socket", 2, a, err) < 0)
			return -1;
	}
	struct scmp_arg_cmp nl_beyond[2] = {SCMP_A0(SCMP_CMP_EQ, AF_NETLINK),
	                                    SCMP_A2(SCMP_CMP_GT, 4 /* NETLINK_SOCK_DIAG */)};
	return add(ctx, SCMP_ACT_ERRNO(EPERM), "socket", 2, nl_beyond, err);
}

/* Terminal ioctls that act on *other* programs: TIOCSTI pushes keystrokes into the input
 * of whatever reads the terminal next (the user's shell, after the sandbox exits),
 * TIOCLINUX does the same and more on virtual consoles, TIOCSETD switches line disciplines
 * (kernel attack surface: n_gsm, n_hdlc CVEs). The command argument is an unsigned int
 * in the kernel, so only the low 32 bits are compared: a value with high bits set must
 * not slip past. */
static int add_ioctl_rules(scmp_filter_ctx ctx, const struct warden_policy *p,
                           struct warden_error **err)
{
	static const uint64_t cmds[] = {TIOCSTI, TIOCLINUX, TIOCSETD};
	if (name_in(&p->seccomp_allow, "ioctl"))
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++) {
		struct scmp_arg_cmp a = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffULL, cmds[i]);
		if (add(ctx, SCMP_ACT_ERRNO(EPERM), "ioctl", 1, &a, err) < 0)
			return -1;
	}
	return 0;
}

static int add_mknod_rules(scmp_filter_ctx ctx, const struct warden_policy *p,
                           struct warden_error **err)
{
	/* Device nodes: even where a node can be created it must not be usable; refusing
	 * the creation keeps the error early and clear. FIFOs and sockets stay allowed. */
	static const uint64_t kinds[] = {S_IFCHR, S_IFBLK};
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
		struct scmp_arg_cmp a = SCMP_A1(SCMP_CMP_MASKED_EQ, S_IFMT, kinds[i]);
		struct scmp_arg_cmp b = SCMP_A2(SCMP_CMP_MASKED_EQ, S_IFMT, kinds[i]);
		if (!name_in(&p->seccomp_allow, "mknod") &&
		    add(ctx, SCMP_ACT_ERRNO(EPERM), "mknod", 1, &a, err) < 0)
			return -1;
		if (!name_in(&p->seccomp_allow, "mknodat") &&
		    add(ctx, SCMP_ACT_ERRNO(EPERM), "mknodat", 1, &b, err) < 0)
			return -1;
	}
	return 0;
}

/* A sandbox with a read-write volume writes files the host will see. A setuid or setgid
 * file left there runs with its owner's ids when anyone on the host executes it, and the
 * owner is the volume's owner (root, for a root-owned volume): the agent would be
 * leaving the host a privilege escalation. So with such a volume, no mode with S_ISUID
 * or S_ISGID is accepted by any call that sets or creates one; openat2, whose mode sits
 * in memory seccomp cannot read, answers ENOSYS (the C library does not use it, and its
 * users fall back to openat). Without read-write volumes nothing written outlives the
 * sandbox, and every mount is nosuid, so nothing is refused. */
static const struct {
	const char *name;
	unsigned arg;
} mode_setters[] = {
    {"chmod", 1}, {"fchmod", 1}, {"fchmodat", 2}, {"open", 2}, {"openat", 3},
    {"creat", 1}, {"mknod", 1},  {"mknodat", 2},  {NULL, 0},
};
#define NR_FCHMODAT2 452

bool ns_seccomp_guards_volumes(const struct warden_policy *p)
{
	for (size_t i = 0; i < p->volumes.n; i++)
		if (p->volumes.v[i].rw)
			return true;
	return false;
}

static int add_setid_mode_rules(scmp_filter_ctx ctx, const struct warden_policy *p,
                                struct warden_error **err)
{
	static const uint64_t bits[] = {S_ISUID, S_ISGID};
	if (!ns_seccomp_guards_volumes(p))
		return 0;
	for (size_t i = 0; mode_setters[i].name; i++)
		for (size_t b = 0; b < ARRAY_SIZE(bits); b++) {
			struct scmp_arg_cmp a = {mode_setters[i].arg, SCMP_CMP_MASKED_EQ, bits[b],
			                         bits[b]};
			if (add(ctx, SCMP_ACT_ERRNO(EPERM), mode_setters[i].name, 1, &a, err) < 0)
				return -1;
		}
	for (size_t b = 0; b < ARRAY_SIZE(bits); b++) {
		struct scmp_arg_cmp a = SCMP_A2(SCMP_CMP_MASKED_EQ, bits[b], bits[b]);
		int r = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(EPERM), NR_FCHMODAT2, 1, &a);
		if (r < 0)
			return warden_error_set(err, -r, "seccomp: rule for fchmodat2");
	}
	return add(ctx, SCMP_ACT_ERRNO(ENOSYS), "openat2", 0, NULL, err);
}

static int add_table(scmp_filter_ctx ctx, const struct ns_seccomp_rule *t,
                     const struct warden_policy *p, struct warden_error **err)
{
	for (; t->name; t++)
		if (!name_in(&p->seccomp_allow, t->name) &&
		    add(ctx, SCMP_ACT_ERRNO(EPERM), t->name, 0, NULL, err) < 0)
			return -1;
	return 0;
}

static int add_numbered(scmp_filter_ctx ctx, struct warden_error **err)
{
	int r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), NR_OPEN_TREE_ATTR, 0);
	for (int nr = NR_LAST_KNOWN + 1; r == 0 && nr <= NR_FUTURE_END; nr++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
	if (r < 0)
		return warden_error_set(err, -r, "seccomp: rules by number");
	return 0;
}

static int export_bpf(scmp_filter_ctx ctx, struct sock_filter **ret_prog, unsigned short *ret_len,
                      struct warden_error **err)
{
	_cleanup_close_ int fd = memfd_create("warden-seccomp", MFD_CLOEXEC);
	if (fd < 0)
		return warden_error_set(err, errno, "seccomp: memfd");
	int r = seccomp_export_bpf(ctx, fd);
	if (r < 0)
		return warden_error_set(err, -r, "seccomp: export");
	off_t size = lseek(fd, 0, SEEK_END);
	if (size <= 0 || size % (off_t)sizeof(struct sock_filter) ||
	    size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS)
		return warden_error_set(err, 0, "seccomp: compiled program has a bad size (%jd)",
		                        (intmax_t)size);
	struct sock_filter *prog = xmalloc((size_t)size);
	if (pread(fd, prog, (size_t)size, 0) != size) {
		free(prog);
		return warden_error_set(err, errno, "seccomp: reading compiled program");
	}
	*ret_prog = prog;
	*ret_len = (unsigned short)(size / (off_t)sizeof(struct sock_filter));
	return 0;
}

char *ns_seccomp_key(const struct warden_policy *p)
{
	struct strv parts = {0};
	size_t len = 64;
	strv_push(&parts, p->allow_ptrace ? "ptrace" : "noptrace");
	if (ns_seccomp_guards_volumes(p))
		strv_push(&parts, "volume-setid-guard");
	for (size_t i = 0; i < p->seccomp_deny.n; i++)
		strv_push_take(&parts, xasprintf("-%s", p->seccomp_deny.v[i]));
	for (size_t i = 0; i < p->seccomp_allow.n; i++)
		strv_push_take(&parts, xasprintf("+%s", p->seccomp_allow.v[i]));
	for (size_t i = 0; i < parts.n; i++)
		len += strlen(parts.v[i]) + 1;
	char *key = xcalloc(1, len);
	for (size_t i = 0; i < parts.n; i++) {
		strcat(key, i ? " " : "");
		strcat(key, parts.v[i]);
	}
	strv_clear(&parts);
	return key;
}

int ns_seccomp_compile(const struct warden_policy *p, struct sock_filter **ret_prog,
                       unsigned short *ret_len, struct warden_error **err)
{
	/* The presets' programs were compiled with libseccomp when warden was built (the
	 * unit tests check they still equal a fresh compilation): a cold process then never
	 * touches libseccomp, which is most of what a plan costs to compile. */
	_cleanup_free_ char *key = ns_seccomp_key(p);
	for (const struct ns_seccomp_program *pre = ns_seccomp_precompiled; pre->key; pre++) {
		if (!streq(pre->key, key))
			continue;
		*ret_prog = xmalloc(pre->len * sizeof(struct sock_filter));
		memcpy(*ret_prog, pre->prog, pre->len * sizeof(struct sock_filter));
		*ret_len = pre->len;
		return 0;
	}
	return ns_seccomp_compile_fresh(p, ret_prog, ret_len, err);
}

int ns_seccomp_compile_fresh(const struct warden_policy *p, struct sock_filter **ret_prog,
                             unsigned short *ret_len, struct warden_error **err)
{
	for (size_t i = 0; i < p->seccomp_deny.n; i++)
		if (name_in(&p->seccomp_allow, p->seccomp_deny.v[i]))
			return warden_error_set(err, 0,
			                        "security.seccomp: \"%s\" is both denied and "
			                        "allowed",
			                        p->seccomp_deny.v[i]);
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return warden_error_set(err, ENOMEM, "seccomp: init");
	int r = 0;
	/* Only the native architecture is in the filter: a system call made through the
	 * i386 (int 0x80) or x32 entry points is not a way around it, and no agent workload
	 * legitimately makes one, so the whole process is killed. */
	if (seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS) < 0 ||
	    /* no_new_privs is set explicitly, in its place in the setup order */
	    seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0) < 0 ||
	    /* a binary tree over syscall numbers instead of a linear scan */
	    seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2) < 0)
		r = warden_error_set(err, 0, "seccomp: setting filter attributes");
	if (r == 0)
		r = add_table(ctx, ns_seccomp_denied, p, err);
	if (r == 0 && !p->allow_ptrace)
		r = add_table(ctx, ptrace_denied, p, err);
	for (size_t i = 0; r == 0 && i < p->seccomp_deny.n; i++)
		r = add(ctx, SCMP_ACT_ERRNO(EPERM), p->seccomp_deny.v[i], 0, NULL, err);
	if (r == 0)
		r = add_clone_rules(ctx, p, err);
	if (r == 0)
		r = add_socket_rules(ctx, p, err);
	if (r == 0)
		r = add_ioctl_rules(ctx, p, err);
	if (r == 0)
		r = add_mknod_rules(ctx, p, err);
	if (r == 0)
		r = add_setid_mode_rules(ctx, p, err);
	if (r == 0)
		r = add_numbered(ctx, err);
	if (r == 0)
		r = export_bpf(ctx, ret_prog, ret_len, err);
	seccomp_release(ctx);
	return r;
}

int ns_seccomp_apply(const struct warden_plan *plan, struct warden_error **err)
{
	struct sock_fprog prog = {.len = plan->bpf_len, .filter = plan->bpf};
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
		return warden_error_set(err, errno, "loading the filter");
	return 0;
}
