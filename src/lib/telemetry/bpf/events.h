/* events.h: what the BPF programs and the loader share: map values and ring records.
 *
 * Sections: limits; per-sandbox counters (the inner maps); ring records; the loader's
 * note of which sources are on.
 *
 * Compiled twice, by clang for BPF (with vmlinux.h's types) and by the C compiler for the
 * loader (with <linux/types.h>), so it uses only the __u* types and fixed-size arrays:
 * both sides must agree on every offset.
 */
#ifndef WARDEN_TEL_EVENTS_H
#define WARDEN_TEL_EVENTS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define WD_NR_MAX    512 /* system call numbers counted (x86-64: < 512) */
#define WD_PATH_MAX  256
#define WD_ARG_MAX   64
#define WD_ARGS      4
#define WD_UNIX_PATH 108
#define WD_LAYERS    2    /* seccomp, Landlock */
#define WD_OUTER_MAX 8192 /* sandboxes watched at once */
#define WD_SLOTS     8192 /* rings in the pool */
#define WD_RING_DEF  (256 * 1024)

/* Per sandbox, one per CPU (the sandbox's entry in a PERCPU_HASH): incremented on the CPU
 * the task runs on, summed by the reader. Atomic adds even so, because a task can be preempted
 * inside a program by another task of the same sandbox on the same CPU. */
struct wd_pcpu_counts {
	__u64 syscalls[WD_NR_MAX];
	__u64 forks;
	__u64 execs;
	__u64 events; /* ring records produced, whether or not they fitted */
	__u64 drops;  /* of those, records that found the ring full */
};

/* Per sandbox, shared by all CPUs (its entry in a HASH): refusals per layer and number.
 * Shared, not per CPU, because the program must know the sandbox-wide count to sample the
 * refusal events (one at each power of two). */
struct wd_shared_counts {
	__u64 refused[WD_LAYERS][WD_NR_MAX];
	__u64 refused_other[WD_LAYERS]; /* numbers outside 0..WD_NR_MAX-1 */
};

enum wd_kind {
	WD_EXEC = 0,
	WD_EXIT = 1,
	WD_CONNECT = 2,
	WD_REFUSED = 3,
	WD_OOM = 4,
};

struct wd_hdr {
	__u64 cgid; /* the sandbox it is for: a ring may hold a previous owner's last records */
	__u32 kind;
	__u32 pid;      /* thread group id in the task's own pid namespace */
	__u32 ppid;     /* the parent's, in the same namespace; 0 when outside it */
	__u32 host_pid; /* thread group id in the initial pid namespace */
	__u32 uid;      /* real uid mapped into the task's user namespace */
	__u32 pad;
	__u64 ts; /* bpf_ktime_get_boot_ns() */
	char comm[16];
};

struct wd_exec {
	struct wd_hdr h;
	__u32 argc;
	__u32 truncated; /* 1: an argument ran past what could be read */
	char path[WD_PATH_MAX];
	char argv[WD_ARGS][WD_ARG_MAX];
};

struct wd_exit {
	struct wd_hdr h;
	__u32 status; /* the wait(2) status */
	__u32 pad;
};

struct wd_connect {
	struct wd_hdr h;
	__u16 family;
	__u16 port;    /* network byte order, as in the sockaddr */
	__u16 pathlen; /* AF_UNIX: bytes of path (an abstract name starts with a NUL) */
	__u16 pad;
	__s32 ret;
	__u8 addr[16];
	char path[WD_UNIX_PATH]; /* AF_UNIX only: other records end before it */
};
/* A connect record without its path: what every connect other than AF_UNIX takes in the
 * ring (92 bytes with the ring's header instead of 200), so that a storm of connects
 * fills it half as fast. */
#define WD_CONNECT_SHORT __builtin_offsetof(struct wd_connect, path)

struct wd_refused {
	struct wd_hdr h;
	__s32 nr;
	__s32 err; /* errno given back; 0: the call was stopped with SIGSYS */
	__u32 layer;
	__u32 pad;
	__u64 count;
};

struct wd_oom {
	struct wd_hdr h; /* the victim */
};

/* A ring of the pool (the `slots` array, mapped into every warden's memory): its size, and
 * the cgroup id of the sandbox using it (0: free), claimed with a compare-and-swap. */
struct wd_slot {
	__u64 owner;
	__u32 size;
	__u32 pad;
};

/* The one entry of the pinned `info` map, written by the loader: which optional sources
 * it attached (so that later wardens can say which are off without probing again), and
 * what the programs need to know at run time. */
#define WD_SRC_LANDLOCK_EXIT  (1u << 0) /* Landlock's denial counters, read at syscall exit */
#define WD_SRC_LANDLOCK_HOOKS (1u << 1) /* the LSM hooks' results (fexit) */
#define WD_SRC_OOM            (1u << 2) /* tracepoint mark_victim */
#define WD_SRC_OOM_FENTRY     (1u << 3) /* fentry mark_oom_victim */
#define WD_SRC_NO_TRAMPOLINE  (1u << 8) /* the kernel refused fentry/fexit programs */
#define WD_SRC_NO_CALIB       (1u << 9) /* Landlock's domain could not be located */
#define WD_SRC_LANDLOCK_MASK  (WD_SRC_LANDLOCK_EXIT | WD_SRC_LANDLOCK_HOOKS)
#define WD_SRC_OOM_MASK       (WD_SRC_OOM | WD_SRC_OOM_FENTRY)

struct wd_info {
	__u32 sources;
	__u32 abi;          /* layout version of these structures */
	__s32 landlock_off; /* offset of Landlock's domain pointer in cred->security, or -1 */
	__u32 ncpus;        /* possible CPUs: the copies in a per-CPU value */
};

#define WD_ABI 2

/* Per task (task storage), for the tasks of watched sandboxes only: what sys_enter saw,
 * for sys_exit, and the task's own system call counts, added to its sandbox's per-CPU
 * counters when it exits (and 2^32 at a time when one wraps). Its presence is the gate of
 * sys_enter and sys_exit. */
#define WD_NOT_IN_SYSCALL (-2)
#define WD_SEEDED         (-3) /* given by user space at attach: its next exit is not judged */
#define WD_EXITED         (-4) /* its counts are in the sandbox's counters already */
#define WD_SOCKADDR_MAX   128

struct wd_task {
	__s32 nr; /* the system call entered, or one of the marks above */
	__u32 addrlen;
	__u8 sa[WD_SOCKADDR_MAX]; /* connect(2)'s address, read at entry */
	__u32 syscalls[WD_NR_MAX];
};

/* The loader's calibration: the task's cred->security blob before and after it restricts
 * itself with Landlock; the pointer that appears is Landlock's domain. */
#define WD_CALIB_BYTES 256

#endif
