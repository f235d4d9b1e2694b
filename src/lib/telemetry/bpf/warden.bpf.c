/* warden.bpf.c: the BPF programs behind warden's telemetry, one set for every sandbox.
 *
 * Sections: maps; reading a task (pids, uid, header); counting and emitting; refusals;
 * system call entry and exit (counts, connect, seccomp and Landlock refusals); processes
 * (fork, exec, exit); the LSM-hook fallback for Landlock; OOM kills; cgroup removal; the
 * loader's calibration.
 *
 * Every program starts from the cgroup v2 id of the task it is about and looks it up in
 * the per-sandbox maps; a task of any other cgroup leaves at that first lookup. The system
 * call programs, which every task of the host runs on every call, start from the task's
 * storage instead, which only the tasks of watched sandboxes have (given at fork, and by
 * user space to the tasks a sandbox has when it is attached): a task without one leaves
 * at a test of a pointer, and a watched task counts its calls in its own storage, with no
 * lookup of its cgroup. Each
 * sandbox's supervisor claims a ring buffer of the pool (`rings`, named in `slot_of`) and
 * adds its entries to the counter hashes, so a supervisor reads only its own sandbox's
 * events and counters.
 *
 * Everything that must always work hangs off tracepoints (tp_btf: no tracefs, no kprobes,
 * no BPF trampolines, which some kernels refuse): sys_enter and sys_exit carry the system
 * call counts, connect() and its result, and both kinds of refusal. A call seccomp stops
 * never reaches sys_enter but still passes sys_exit, so a sys_exit without its sys_enter
 * is a seccomp refusal, with the number and errno still in the registers. Landlock keeps
 * a count of the denials of each domain (Linux 6.15+, for its audit records); a failed
 * call after which that count had grown was refused by Landlock. Only where those counts do
 * not exist are the LSM hooks' results read with fexit (BPF trampolines).
 *
 * x86-64 only: system call numbers and registers are read from its pt_regs.
 */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "events.h"

#ifndef __TARGET_ARCH_x86
#error "warden's BPF programs read x86-64 registers"
#endif

/* The kernel lets tracing programs use its tracing helpers (reading kernel and user
 * memory, ring buffers) only when they declare a GPL-compatible license. */
char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define EACCES             13
#define EPERM              1
#define EXDEV              18
#define MAX_ERRNO          4095
#define SIGNAL_GROUP_EXIT  0x00000004
#define AF_UNIX            1
#define AF_INET            2
#define AF_INET6           10
#define NR_CONNECT         42
#define NR_GETPPID         110
#define LANDLOCK_MAX_DEPTH 16

/* ---- maps ------------------------------------------------------------------------------ */

struct ring_inner {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
};

/* cgroup id -> the sandbox's per-CPU counters. Also the gate: a task whose cgroup is not
 * here is not watched. The cgroup, because a sandbox's tasks cannot leave it (no write
 * access to any cgroup file system, their own cgroup namespace) and every task they
 * create is born into it; a pid namespace or uid would not hold (nested namespaces,
 * setuid programs). The counters are hash entries, not maps of their own in a
 * map of maps: every change of a map of maps from user space waits for an RCU grace
 * period (see `rings`). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, WD_OUTER_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct wd_pcpu_counts);
} pcpu SEC(".maps");

/* cgroup id -> the sandbox's refusal counters. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WD_OUTER_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct wd_shared_counts);
} shared SEC(".maps");

/* The pool of ring buffers, and which one each watched sandbox writes to. A ring is never
 * put into (or taken out of) `rings` when a sandbox starts or stops: every change of a
 * map-in-map from user space waits for an RCU grace period (tens of milliseconds on a busy
 * many-core host). Rings are added to the pool in batches when it runs out, and a sandbox
 * claims a free one in `slots` (user space only) and names it in `slot_of`. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, WD_SLOTS);
	__type(key, __u32);
	__array(values, struct ring_inner);
} rings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WD_OUTER_MAX);
	__type(key, __u64);
	__type(value, __u32);
} slot_of SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, WD_SLOTS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct wd_slot);
} slots SEC(".maps");

/* Watched cgroups that were removed while still in the maps (their supervisor died
 * without detaching): the next attach removes their entries, so that their rings do not
 * stay allocated until reboot. Programs may only look up map-in-map entries, never delete
 * them, hence this note instead of a deletion here. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WD_OUTER_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, __u8);
} dead SEC(".maps");

/* Written once by the loader: which optional sources it attached. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct wd_info);
} info SEC(".maps");

/* What sys_enter saw, for sys_exit, and the task's call counts; only the tasks of
 * watched sandboxes have an entry, so every other task leaves both at this lookup. Pinned:
 * user space gives an entry to each task a sandbox already has when it is attached, and
 * reads the counts of its live tasks. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct wd_task);
} tasks SEC(".maps");

/* Landlock domain (hierarchy id, unique while the system runs) -> the denials of it that
 * were already counted. LRU: domains die without telling anyone; a domain evicted while
 * alive would have its earlier denials counted again, which takes 65536 newer domains. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} ll_seen SEC(".maps");

/* The loader's calibration (see the last section). */
__u32 calib_pid = 0;
__u32 calib_n = 0;
__u8 calib_blob[2][WD_CALIB_BYTES] = {};

/* Room to measure an argument longer than an event's slot, so the next one is found. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, char[4096]);
} scratch SEC(".maps");

/* ---- reading a task -------------------------------------------------------------------- */

/* The number of `pid` in the namespace `ns` at `level`, or 0 when it has none there (a
 * parent outside the sandbox's pid namespace). */
static __always_inline __u32 pid_nr_in(struct pid *pid, __u32 level, void *ns)
{
	struct upid up = {};
	if (!pid || level > 32 || BPF_CORE_READ(pid, level) < level)
		return 0;
	bpf_probe_read_kernel(&up, sizeof(up),
	                      (void *)pid + bpf_core_field_offset(struct pid, numbers) +
	                          level * bpf_core_type_size(struct upid));
	return up.ns == ns ? (__u32)up.nr : 0;
}

/* from_kuid(): the task's real uid as its own user namespace sees it (65534, the overflow
 * uid, when unmapped). Maps of up to 5 extents are inline; longer ones are walked up to 64
 * extents. */
static __always_inline __u32 uid_in_ns(struct task_struct *t)
{
	const struct cred *cred = BPF_CORE_READ(t, real_cred);
	__u32 kuid = BPF_CORE_READ(cred, uid.val);
	struct user_namespace *ns = BPF_CORE_READ(cred, user_ns);
	__u32 n = BPF_CORE_READ(ns, uid_map.nr_extents);
	struct uid_gid_extent ext;
	if (n <= 5) {
		for (int i = 0; i < 5; i++) {
			if (i >= n)
				break;
			BPF_CORE_READ_INTO(&ext, ns, uid_map.extent[i]);
			if (kuid - ext.lower_first < ext.count)
				return ext.first + (kuid - ext.lower_first);
		}
		return 65534;
	}
	struct uid_gid_extent *fw = BPF_CORE_READ(ns, uid_map.forward);
	for (int i = 0; i < 64; i++) {
		if (i >= n)
			break;
		bpf_probe_read_kernel(&ext, sizeof(ext), &fw[i]);
		if (kuid - ext.lower_first < ext.count)
			return ext.first + (kuid - ext.lower_first);
	}
	return 65534;
}

static __always_inline void fill_hdr(struct wd_hdr *h, struct task_struct *t, __u32 kind)
{
	struct pid *own = BPF_CORE_READ(t, thread_pid);
	__u32 level = BPF_CORE_READ(own, level);
	struct upid up = {};
	if (level <= 32)
		bpf_probe_read_kernel(&up, sizeof(up),
		                      (void *)own + bpf_core_field_offset(struct pid, numbers) +
		                          level * bpf_core_type_size(struct upid));
	h->kind = kind;
	h->pad = 0;
	h->ts = bpf_ktime_get_boot_ns();
	h->host_pid = BPF_CORE_READ(t, tgid);
	h->pid = pid_nr_in(BPF_CORE_READ(t, group_leader, thread_pid), level, up.ns);
	h->ppid = pid_nr_in(BPF_CORE_READ(t, real_parent, group_leader, thread_pid), level, up.ns);
	h->uid = uid_in_ns(t);
	BPF_CORE_READ_STR_INTO(&h->comm, t, comm);
}

static __always_inline __u64 task_cgroup_id(struct task_struct *t)
{
	return BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id);
}

static __always_inline long current_nr(void)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	return (long)BPF_CORE_READ(regs, orig_ax);
}

/* ---- counting and emitting ------------------------------------------------------------- */

static __always_inline struct wd_pcpu_counts *pcpu_of(__u64 cg)
{
	return bpf_map_lookup_elem(&pcpu, &cg);
}

/* Reserve a record in the sandbox's ring. Every attempt counts as produced, every failure
 * as dropped: losses are counted, never silent. */
static __always_inline void *reserve(__u64 cg, struct wd_pcpu_counts *c, __u64 size)
{
	__u32 *slot = bpf_map_lookup_elem(&slot_of, &cg);
	void *ring = slot ? bpf_map_lookup_elem(&rings, slot) : NULL;
	struct wd_hdr *e;
	if (!ring)
		return NULL;
	__sync_fetch_and_add(&c->events, 1);
	e = bpf_ringbuf_reserve(ring, size, 0);
	if (!e)
		__sync_fetch_and_add(&c->drops, 1);
	else
		e->cgid = cg;
	return e;
}

/* ---- refusals -------------------------------------------------------------------------- */

/* Count a refusal exactly and emit a sampled event: the 1st, 2nd, 4th, 8th... refusal of
 * each number and layer, so a loop of refused calls costs a few records, not millions. */
static __always_inline void refusal(__u32 layer, long nr, int err)
{
	__u64 cg = bpf_get_current_cgroup_id();
	struct wd_pcpu_counts *c = pcpu_of(cg);
	struct wd_shared_counts *s;
	struct wd_refused *e;
	__u64 n;
	if (!c)
		return;
	s = bpf_map_lookup_elem(&shared, &cg);
	if (!s)
		return;
	__u64 idx = (__u64)nr; /* a negative number becomes huge: counted as other */
	layer &= 1;
	if (idx < WD_NR_MAX) {
		barrier_var(idx);
		n = __sync_fetch_and_add(&s->refused[layer][idx], 1) + 1;
	} else {
		n = __sync_fetch_and_add(&s->refused_other[layer], 1) + 1;
	}
	if (n & (n - 1))
		return;
	e = reserve(cg, c, sizeof(*e));
	if (!e)
		return;
	fill_hdr(&e->h, bpf_get_current_task_btf(), WD_REFUSED);
	e->nr = nr;
	e->err = err;
	e->layer = layer;
	e->pad = 0;
	e->count = n;
	bpf_ringbuf_submit(e, 0);
}

/* Landlock's own structures (security/landlock/), as far as they are read here. Local
 * copies, so that the object builds against any vmlinux.h; CO-RE finds the fields in the
 * running kernel, and the code reading num_denials is dropped where it has none. */
struct landlock_hierarchy___wd {
	struct landlock_hierarchy___wd *parent;
	atomic64_t num_denials;
	__u64 id;
} __attribute__((preserve_access_index));

struct landlock_ruleset___wd {
	struct landlock_hierarchy___wd *hierarchy;
} __attribute__((preserve_access_index));

/* A call failed with an errno Landlock gives: was it Landlock? Landlock counts every
 * denial in the domain layer that made it (landlock_log_denial(), whatever the audit
 * settings, except in domains created with logging disabled). Each layer's count is
 * compared with what was already claimed for it, and the difference claimed with a
 * compare-and-swap, so a denial is counted once however many tasks look. A permission
 * error the kernel's own checks gave (file modes, capabilities) leaves the counts alone
 * and is not counted. */
static __always_inline void landlock_exit_check(long nr, long ret)
{
	__u32 zero = 0;
	struct wd_info *inf = bpf_map_lookup_elem(&info, &zero);
	struct landlock_ruleset___wd *dom = NULL;
	struct landlock_hierarchy___wd *h;
	__u64 claimed = 0;
	if (!bpf_core_field_exists(struct landlock_hierarchy___wd, num_denials))
		return;
	if (!inf || inf->landlock_off < 0 || inf->landlock_off > WD_CALIB_BYTES - 8)
		return;
	struct task_struct *t = bpf_get_current_task_btf();
	void *sec = BPF_CORE_READ(t, cred, security);
	if (!sec)
		return;
	bpf_probe_read_kernel(&dom, sizeof(dom), sec + inf->landlock_off);
	if (!dom)
		return;
	h = BPF_CORE_READ(dom, hierarchy);
	for (int i = 0; i < LANDLOCK_MAX_DEPTH && h; i++) {
		__u64 id = BPF_CORE_READ(h, id);
		__u64 n = (__u64)BPF_CORE_READ(h, num_denials.counter);
		__u64 z = 0, *seen = bpf_map_lookup_elem(&ll_seen, &id);
		if (!seen) {
			bpf_map_update_elem(&ll_seen, &id, &z, BPF_NOEXIST);
			seen = bpf_map_lookup_elem(&ll_seen, &id);
		}
		if (seen) {
			__u64 old = *seen;
			if (n > old && __sync_val_compare_and_swap(seen, old, n) == old)
				claimed += n - old;
		}
		h = BPF_CORE_READ(h, parent);
	}
	if (claimed)
		refusal(1, nr, (int)-ret);
}

/* ---- system call entry and exit ------------------------------------------------------- */

/* A task's count of one call wrapped: 2^32 more in its sandbox's counters. */
static __noinline void count_wrapped(__u32 nr)
{
	struct wd_pcpu_counts *c = pcpu_of(bpf_get_current_cgroup_id());
	if (c && nr < WD_NR_MAX)
		c->syscalls[nr] += 1ULL << 32;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(wd_sys_enter, struct pt_regs *regs, long id)
{
	/* Every task of the host runs this on every call: the gate is the task's storage,
	 * which only watched tasks have (a NULL test for the rest), not a hash lookup of the
	 * cgroup, which cost every task ~120 ns per call on the virtual machines measured. */
	struct wd_task *st = bpf_task_storage_get(&tasks, bpf_get_current_task_btf(), NULL, 0);
	if (!st)
		return 0;
	/* A plain increment: the storage is this task's, and a task runs one system call
	 * at a time. */
	if (id >= 0 && id < WD_NR_MAX && ++st->syscalls[id] == 0)
		count_wrapped((__u32)id);
	st->nr = id;
	if (id == NR_CONNECT) {
		/* The address is read from the caller's memory as the call starts: another
		 * thread of the caller could rewrite it between this read and the kernel's
		 * own copy (docs/telemetry.md, limits). */
		const void *uaddr = (const void *)regs->si;
		__u64 len = regs->dx & 0xffffffff;
		if (len > WD_SOCKADDR_MAX)
			len = WD_SOCKADDR_MAX;
		barrier_var(len); /* the verifier must see the bounded value used */
		st->addrlen = (__u32)len;
		if (bpf_probe_read_user(st->sa, len, uaddr) < 0)
			st->addrlen = 0;
	}
	return 0;
}

static __always_inline void emit_connect(struct wd_task *st, long ret)
{
	__u64 cg = bpf_get_current_cgroup_id();
	struct wd_pcpu_counts *c = pcpu_of(cg);
	struct wd_connect *e;
	__u64 len = st->addrlen;
	__u16 family = len >= 2 ? *(__u16 *)st->sa : 0;
	bool with_path = family == AF_UNIX && len > 2;
	if (!c)
		return;
	/* Two constant sizes (the verifier wants one per reservation). */
	e = with_path ? reserve(cg, c, sizeof(*e)) : reserve(cg, c, WD_CONNECT_SHORT);
	if (!e)
		return;
	fill_hdr(&e->h, bpf_get_current_task_btf(), WD_CONNECT);
	__builtin_memset(e->addr, 0, sizeof(e->addr));
	e->port = 0;
	e->pathlen = 0;
	e->pad = 0;
	e->ret = ret;
	e->family = family;
	if (family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		struct sockaddr_in *in = (void *)st->sa;
		e->port = in->sin_port;
		__builtin_memcpy(e->addr, &in->sin_addr, 4);
	} else if (family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		struct sockaddr_in6 *in6 = (void *)st->sa;
		e->port = in6->sin6_port;
		__builtin_memcpy(e->addr, &in6->sin6_addr, 16);
	} else if (with_path) {
		/* The path is len - 2 bytes, not always NUL-terminated, and starts with a NUL
		 * for an abstract socket: copied as bytes, decoded in user space. */
		__u64 n = len - 2;
		if (n > WD_UNIX_PATH - 1)
			n = WD_UNIX_PATH - 1;
		barrier_var(n);
		bpf_probe_read_kernel(e->path, n, st->sa + 2);
		e->pathlen = n;
	}
	bpf_ringbuf_submit(e, 0);
}

SEC("tp_btf/sys_exit")
int BPF_PROG(wd_sys_exit, struct pt_regs *regs, long ret)
{
	struct wd_task *st = bpf_task_storage_get(&tasks, bpf_get_current_task_btf(), NULL, 0);
	long nr, entered;
	if (!st)
		return 0;
	/* regs is a typed kernel pointer here (tp_btf): a direct load, relocated like
	 * BPF_CORE_READ, but without a helper call on every system call. */
	nr = (long)regs->orig_ax;
	entered = st->nr;
	st->nr = WD_NOT_IN_SYSCALL;
	/* A task given its storage by user space at attach may have been inside a call
	 * (init, waiting for its go-ahead); that call's end says nothing. */
	if (entered == WD_SEEDED)
		return 0;
	if (entered != nr) {
		/* No sys_enter: seccomp stopped the call. SECCOMP_RET_ERRNO (and a user
		 * notification answered with an error) leave -errno as the result;
		 * SECCOMP_RET_TRAP and the kill actions roll the result back to the number
		 * and send SIGSYS. A new task's first return (from fork) has neither. */
		if (ret < 0 && ret >= -MAX_ERRNO)
			refusal(0, nr, (int)-ret);
		else if (ret == nr)
			refusal(0, nr, 0);
		return 0;
	}
	if (nr == NR_CONNECT)
		emit_connect(st, ret);
	if (ret == -EACCES || ret == -EPERM || ret == -EXDEV)
		landlock_exit_check(nr, ret);
	return 0;
}

/* ---- processes ------------------------------------------------------------------------- */

/* Counts new processes, not threads (sched_process_fork fires for both), and gives every
 * new task of the sandbox its task storage at birth: a call seccomp stops before the task
 * ever entered one must still find it at sys_exit. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(wd_fork, struct task_struct *parent, struct task_struct *child)
{
	struct wd_pcpu_counts *c = pcpu_of(bpf_get_current_cgroup_id());
	struct wd_task *st;
	if (!c)
		return 0;
	st = bpf_task_storage_get(&tasks, child, NULL, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (st)
		st->nr = WD_NOT_IN_SYSCALL;
	if (BPF_CORE_READ(child, pid) == BPF_CORE_READ(child, tgid))
		__sync_fetch_and_add(&c->forks, 1);
	return 0;
}

/* After a successful execve: the new image is in place, so the arguments are read from the
 * new mm's argument area. Each slot holds the start of one argument; a longer one is
 * measured in the scratch buffer to find where the next begins. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(wd_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u64 cg = bpf_get_current_cgroup_id();
	struct wd_pcpu_counts *c = pcpu_of(cg);
	struct wd_exec *e;
	__u32 zero = 0;
	if (!c)
		return 0;
	__sync_fetch_and_add(&c->execs, 1);
	e = reserve(cg, c, sizeof(*e));
	if (!e)
		return 0;
	fill_hdr(&e->h, p, WD_EXEC);
	e->argc = BPF_CORE_READ(bprm, argc);
	e->truncated = 0;
	bpf_probe_read_kernel_str(e->path, sizeof(e->path), BPF_CORE_READ(bprm, filename));
	unsigned long arg = BPF_CORE_READ(p, mm, arg_start);
	unsigned long end = BPF_CORE_READ(p, mm, arg_end);
	char *buf = bpf_map_lookup_elem(&scratch, &zero);
	for (int i = 0; i < WD_ARGS; i++) {
		e->argv[i][0] = '\0';
		if (arg >= end || !buf)
			continue;
		long n = bpf_probe_read_user_str(e->argv[i], WD_ARG_MAX, (void *)arg);
		if (n == WD_ARG_MAX)
			n = bpf_probe_read_user_str(buf, 4096, (void *)arg);
		if (n <= 0 || n >= 4096) {
			e->truncated = 1;
			arg = end;
			continue;
		}
		arg += n;
	}
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* The last thread of a process leaving (signal->live has dropped to zero): the status
 * wait(2) will report, from the group's exit code when the whole group was told to exit
 * (exit_group with other threads, a fatal signal), else from this task's own. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(wd_exit, struct task_struct *p)
{
	__u64 cg = bpf_get_current_cgroup_id();
	struct wd_pcpu_counts *c = pcpu_of(cg);
	struct wd_task *st;
	struct wd_exit *e;
	if (!c)
		return 0;
	/* Every task, thread or not, adds its counts to the sandbox's before it goes. Plain
	 * additions: this CPU's counters, with preemption off in a tracepoint, and the only
	 * other writer (count_wrapped) runs in system calls, not here. */
	st = bpf_task_storage_get(&tasks, p, NULL, 0);
	if (st && st->nr != WD_EXITED) {
		st->nr = WD_EXITED;
		for (__u32 i = 0; i < WD_NR_MAX; i++)
			if (st->syscalls[i])
				c->syscalls[i] += st->syscalls[i];
	}
	if (BPF_CORE_READ(p, signal, live.counter) != 0)
		return 0;
	e = reserve(cg, c, sizeof(*e));
	if (!e)
		return 0;
	fill_hdr(&e->h, p, WD_EXIT);
	if (BPF_CORE_READ(p, signal, flags) & SIGNAL_GROUP_EXIT)
		e->status = BPF_CORE_READ(p, signal, group_exit_code);
	else
		e->status = BPF_CORE_READ(p, exit_code);
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* ---- the LSM-hook fallback for Landlock ------------------------------------------------- */

/* For kernels whose Landlock keeps no denial counts (before 6.15, or built without audit)
 * but that allow BPF trampolines: the results of the LSM hooks Landlock implements. Of the
 * LSMs such kernels stack, only Landlock (and BPF LSM programs) refuse through these hooks
 * unless AppArmor, SELinux, Smack or TOMOYO are active; where they are, their refusals of
 * the sandbox's calls are counted here too (docs/telemetry.md). */
static __always_inline int lsm_hook_ret(void *ctx)
{
	__u64 ret = 0;
	int r;
	if (bpf_get_func_ret(ctx, &ret) < 0)
		return 0;
	r = (int)ret;
	if (r == -EACCES || r == -EPERM || r == -EXDEV)
		refusal(1, current_nr(), -r);
	return 0;
}

#define LSM_HOOK(fn)                                                                               \
	SEC("fexit/" #fn)                                                                          \
	int wd_ll_##fn(void *ctx)                                                                  \
	{                                                                                          \
		return lsm_hook_ret(ctx);                                                          \
	}

LSM_HOOK(security_file_open)
LSM_HOOK(security_file_truncate)
LSM_HOOK(security_path_truncate)
LSM_HOOK(security_path_mknod)
LSM_HOOK(security_path_mkdir)
LSM_HOOK(security_path_rmdir)
LSM_HOOK(security_path_unlink)
LSM_HOOK(security_path_symlink)
LSM_HOOK(security_path_link)
LSM_HOOK(security_path_rename)
LSM_HOOK(security_socket_connect)
LSM_HOOK(security_socket_bind)

/* ---- OOM kills ------------------------------------------------------------------------- */

/* The OOM killer marks each victim it chooses; the current task is whoever allocated, so
 * the victim's own cgroup says which sandbox lost a process. */
static __always_inline void emit_oom(struct task_struct *victim)
{
	__u64 cg = task_cgroup_id(victim);
	struct wd_pcpu_counts *c = pcpu_of(cg);
	struct wd_oom *e;
	if (!c)
		return;
	e = reserve(cg, c, sizeof(*e));
	if (!e)
		return;
	fill_hdr(&e->h, victim, WD_OOM);
	bpf_ringbuf_submit(e, 0);
}

/* Linux 6.8+, where the tracepoint passes the task. */
SEC("tp_btf/mark_victim")
int BPF_PROG(wd_oom, struct task_struct *victim)
{
	emit_oom(victim);
	return 0;
}

/* Older kernels that allow BPF trampolines. */
SEC("fentry/mark_oom_victim")
int BPF_PROG(wd_oom_fentry, struct task_struct *victim)
{
	emit_oom(victim);
	return 0;
}

/* ---- cgroup removal -------------------------------------------------------------------- */

/* Only the default (v2) hierarchy's ids are what programs key on; v1 hierarchies number
 * their groups separately, so their ids may collide. */
SEC("tp_btf/cgroup_rmdir")
int BPF_PROG(wd_cgroup_rmdir, struct cgroup *cgrp, const char *path)
{
	__u64 id;
	__u8 one = 1;
	if (BPF_CORE_READ(cgrp, root, hierarchy_id) != 0)
		return 0;
	id = BPF_CORE_READ(cgrp, kn, id);
	if (bpf_map_lookup_elem(&pcpu, &id))
		bpf_map_update_elem(&dead, &id, &one, BPF_ANY);
	return 0;
}

/* ---- the loader's calibration ---------------------------------------------------------- */

/* Where Landlock keeps a task's domain inside cred->security depends on which LSMs the
 * kernel stacks before it (their blobs come first), and that offset is in no BTF and, on
 * kernels without CONFIG_KALLSYMS_ALL, in no symbol table. The loader finds it once: a
 * child of the loader calls getppid(), restricts itself with Landlock, calls getppid()
 * again, and this program (attached only meanwhile, never pinned) copies the child's blob
 * each time. The one pointer that appears is the domain. */
SEC("tp_btf/sys_enter")
int BPF_PROG(wd_calib, struct pt_regs *regs, long id)
{
	__u32 n = calib_n;
	void *sec;
	if (id != NR_GETPPID || (__u32)(bpf_get_current_pid_tgid() >> 32) != calib_pid || n >= 2)
		return 0;
	sec = BPF_CORE_READ(bpf_get_current_task_btf(), cred, security);
	if (sec)
		bpf_probe_read_kernel(calib_blob[n & 1], WD_CALIB_BYTES, sec);
	calib_n = n + 1;
	return 0;
}
