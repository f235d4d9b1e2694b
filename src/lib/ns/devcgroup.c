/* devcgroup.c: the device cgroup of a sandbox with granted devices.
 *
 * Sections: the rules (the standard nodes every sandbox has, plus the plan's grants);
 * cgroup v1 (devices.deny / devices.allow); cgroup v2 (a BPF_PROG_TYPE_CGROUP_DEVICE
 * program, compiled once per plan as raw instructions and attached to the sandbox's v2
 * group).
 *
 * Why a device cgroup at all, when /dev inside holds only the granted nodes: the mount
 * table decides which nodes can be reached by path, the device cgroup decides which
 * device numbers can be opened at all, whatever node names them. A node that reaches the
 * sandbox some other way (made with mknod where that is possible, found in a volume,
 * passed in over a socket) still does not open, and a node granted read-only cannot be
 * opened for writing even though its mount and file mode would allow it. The kernel
 * checks both hierarchies: on a hybrid host a sandbox gets both, each enforcing alone.
 */
#define _GNU_SOURCE
#include "ns.h"

#include <bpf/bpf.h>
#include <fcntl.h>

/* The nodes ns_devices_setup() makes, which every sandbox may use. */
static const struct warden_plan_device standard[] = {
    {"/dev/null", 'c', 1, 3, WARDEN_DEV_READ | WARDEN_DEV_WRITE},
    {"/dev/zero", 'c', 1, 5, WARDEN_DEV_READ | WARDEN_DEV_WRITE},
    {"/dev/full", 'c', 1, 7, WARDEN_DEV_READ | WARDEN_DEV_WRITE},
    {"/dev/random", 'c', 1, 8, WARDEN_DEV_READ | WARDEN_DEV_WRITE},
    {"/dev/urandom", 'c', 1, 9, WARDEN_DEV_READ | WARDEN_DEV_WRITE},
    {"/dev/tty", 'c', 5, 0, WARDEN_DEV_READ | WARDEN_DEV_WRITE},
    {"/dev/ptmx", 'c', 5, 2, WARDEN_DEV_READ | WARDEN_DEV_WRITE},
    {"/dev/pts/*", 'c', 136, NS_DEV_ANY, WARDEN_DEV_READ | WARDEN_DEV_WRITE},
};

/* ---- v1 ---------------------------------------------------------------------------- */

static void v1_rule(const struct warden_plan_device *d, char *buf, size_t len)
{
	char access[4], minor[16];
	warden_device_access_format(d->access, access);
	if (d->minor == NS_DEV_ANY)
		snprintf(minor, sizeof(minor), "*");
	else
		snprintf(minor, sizeof(minor), "%u", d->minor);
	snprintf(buf, len, "%c %u:%s %s", d->type, d->major, minor, access);
}

int ns_devcgroup_v1(int dirfd, const struct warden_plan *plan, struct warden_error **err)
{
	char rule[64];
	/* Deny everything first: a new v1 group starts with its parent's list, which on most
	 * hosts is "a *:* rwm". */
	int r = write_file_at(dirfd, "devices.deny", "a");
	if (r < 0)
		return warden_error_set(err, -r, "devices.deny");
	for (size_t i = 0; i < ARRAY_SIZE(standard) + plan->n_devices; i++) {
		const struct warden_plan_device *d = i < ARRAY_SIZE(standard)
		                                         ? &standard[i]
		                                         : &plan->devices[i - ARRAY_SIZE(standard)];
		v1_rule(d, rule, sizeof(rule));
		r = write_file_at(dirfd, "devices.allow", rule);
		if (r < 0)
			return warden_error_set(err, -r, "devices.allow \"%s\"", rule);
	}
	return 0;
}

/* ---- v2: the BPF program ------------------------------------------------------------ */

#define INSN(c, d, s, o, i)                                                                        \
	((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})
#define LDX_W(d, s, o)    INSN(BPF_LDX | BPF_MEM | BPF_W, d, s, o, 0)
#define MOV_REG(d, s)     INSN(BPF_ALU64 | BPF_MOV | BPF_X, d, s, 0, 0)
#define MOV_IMM(d, i)     INSN(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, i)
#define ALU_IMM(op, d, i) INSN(BPF_ALU64 | (op) | BPF_K, d, 0, 0, i)
#define JNE_IMM(d, i, o)  INSN(BPF_JMP | BPF_JNE | BPF_K, d, 0, o, i)
#define EXIT()            INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

static unsigned bpf_access(unsigned access)
{
	return ((access & WARDEN_DEV_READ) ? BPF_DEVCG_ACC_READ : 0) |
	       ((access & WARDEN_DEV_WRITE) ? BPF_DEVCG_ACC_WRITE : 0) |
	       ((access & WARDEN_DEV_MKNOD) ? BPF_DEVCG_ACC_MKNOD : 0);
}

/* One rule: fall through to "allow" when type, access, major and minor all match, else
 * jump to the next rule. Registers: r2 access, r3 type, r4 major, r5 minor. */
static size_t emit_rule(struct bpf_insn *p, const struct warden_plan_device *d)
{
	bool any_minor = d->minor == NS_DEV_ANY;
	short len = any_minor ? 7 : 8; /* instructions in this rule */
	size_t n = 0;
	int type = d->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR;
	int denied = (int)(~bpf_access(d->access) & 7u);
	p[n++] = JNE_IMM(3, type, len - 1);
	p[n++] = MOV_REG(0, 2);
	p[n++] = ALU_IMM(BPF_AND, 0, denied);
	p[n++] = JNE_IMM(0, 0, len - 4);
	p[n++] = JNE_IMM(4, (int)d->major, len - 5);
	if (!any_minor)
		p[n++] = JNE_IMM(5, (int)d->minor, len - 6);
	p[n++] = MOV_IMM(0, 1);
	p[n++] = EXIT();
	return n;
}

void ns_devcgroup_compile(struct warden_plan *plan)
{
	size_t rules = ARRAY_SIZE(standard) + plan->n_devices;
	struct bpf_insn *p = xcalloc(6 + 8 * rules + 2, sizeof(*p));
	size_t n = 0;
	p[n++] = LDX_W(2, 1, offsetof(struct bpf_cgroup_dev_ctx, access_type));
	p[n++] = MOV_REG(3, 2);
	p[n++] = ALU_IMM(BPF_AND, 3, 0xffff);
	p[n++] = ALU_IMM(BPF_RSH, 2, 16);
	p[n++] = LDX_W(4, 1, offsetof(struct bpf_cgroup_dev_ctx, major));
	p[n++] = LDX_W(5, 1, offsetof(struct bpf_cgroup_dev_ctx, minor));
	for (size_t i = 0; i < rules; i++)
		n += emit_rule(p + n, i < ARRAY_SIZE(standard)
		                          ? &standard[i]
		                          : &plan->devices[i - ARRAY_SIZE(standard)]);
	p[n++] = MOV_IMM(0, 0);
	p[n++] = EXIT();
	plan->dev_prog = p;
	plan->dev_prog_len = n;
}

int ns_devcgroup_v2(const char *group, const struct warden_plan *plan, struct warden_error **err)
{
	char log[4096] = "";
	LIBBPF_OPTS(bpf_prog_load_opts, opts, .log_buf = log, .log_size = sizeof(log),
	            .log_level = 0);
	_cleanup_close_ int dir = open(group, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return warden_error_set(err, errno, "%s", group);
	_cleanup_close_ int prog = bpf_prog_load(BPF_PROG_TYPE_CGROUP_DEVICE, "warden_dev", "GPL",
	                                         plan->dev_prog, plan->dev_prog_len, &opts);
	if (prog < 0)
		return warden_error_set(err, -prog, "loading the device program%s%s",
		                        log[0] ? ": " : "", log);
	/* ALLOW_MULTI: a program of the host's (systemd puts one on some groups) keeps
	 * running too; the kernel allows an access only when every program allows it. The
	 * attachment holds the program; it goes with the group. */
	int r = bpf_prog_attach(prog, dir, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI);
	if (r < 0)
		return warden_error_set(err, -r, "attaching the device program to %s", group);
	return 0;
}
