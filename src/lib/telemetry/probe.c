/* probe.c: what the kernel offers BPF telemetry, found in its BTF without loading
 * anything: privileges, bpf(), BTF itself, the tracepoints and helpers the core needs,
 * and the hooks of the optional sources (Landlock refusals, OOM kills).
 */
#define _GNU_SOURCE
#include "tel-internal.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <sys/syscall.h>

bool tel_btf_func(const struct btf *btf, const char *name)
{
	return btf__find_by_name_kind(btf, name, BTF_KIND_FUNC) > 0;
}

/* The number of arguments the tracepoint passes its programs (the context pointer of
 * btf_trace_<name> not counted), or -1 when the kernel has no such tracepoint. */
static int btf_tracepoint_args(const struct btf *btf, const char *name)
{
	char tname[128];
	snprintf(tname, sizeof(tname), "btf_trace_%s", name);
	int id = btf__find_by_name_kind(btf, tname, BTF_KIND_TYPEDEF);
	const struct btf_type *t = id > 0 ? btf__type_by_id(btf, id) : NULL;
	if (t)
		t = btf__type_by_id(btf, t->type); /* pointer */
	if (t && btf_is_ptr(t))
		t = btf__type_by_id(btf, t->type); /* function prototype */
	return t && btf_is_func_proto(t) ? btf_vlen(t) - 1 : -1;
}

static bool btf_member(const struct btf *btf, const char *strct, const char *member)
{
	int id = btf__find_by_name_kind(btf, strct, BTF_KIND_STRUCT);
	const struct btf_type *t = id > 0 ? btf__type_by_id(btf, id) : NULL;
	const struct btf_member *m = t ? btf_members(t) : NULL;
	for (int i = 0; m && i < btf_vlen(t); i++)
		if (streq(btf__name_by_offset(btf, m[i].name_off), member))
			return true;
	return false;
}

/* Whether the kernel knows this BPF helper: its name in enum bpf_func_id. */
static bool btf_helper(const struct btf *btf, const char *name)
{
	int id = btf__find_by_name_kind(btf, "bpf_func_id", BTF_KIND_ENUM);
	const struct btf_type *t = id > 0 ? btf__type_by_id(btf, id) : NULL;
	const struct btf_enum *e = t ? btf_enum(t) : NULL;
	for (int i = 0; e && i < btf_vlen(t); i++)
		if (streq(btf__name_by_offset(btf, e[i].name_off), name))
			return true;
	return false;
}

int tel_landlock_abi(void)
{
	return (int)syscall(SYS_landlock_create_ruleset, NULL, 0, 1 /* _VERSION */);
}

static void probe_set_core(struct tel_probe *p, char *why)
{
	if (!p->core_why)
		p->core_why = why;
	else
		free(why);
}

/* What can run here, without loading anything: privileges, bpf(), BTF and the hooks. The
 * core (counts, exec, exit, connect, seccomp refusals) needs only tracepoints, task
 * storage and ring buffers (Linux 5.11+); Landlock refusals and OOM kills depend on what
 * the kernel has. */
void tel_probe_kernel(struct tel_probe *p, bool lsm_hooks)
{
	static const char *const core_tps[] = {"sys_enter", "sys_exit", "sched_process_fork",
	                                       "sched_process_exec", "sched_process_exit"};
	static const char *const core_helpers[] = {"BPF_FUNC_ringbuf_reserve",
	                                           "BPF_FUNC_task_storage_get",
	                                           "BPF_FUNC_get_current_task_btf"};
	*p = (struct tel_probe){0};
	if (geteuid() != 0) {
		/* BPF tracing programs need CAP_BPF and CAP_PERFMON (CAP_SYS_ADMIN before
		 * 5.8), which rootless warden never has; its sandboxes run without
		 * telemetry rather than fail. */
		probe_set_core(p, xstrdup("bpf: Operation not permitted (not root)"));
		return;
	}
	int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, NULL, 4, 4, 1, NULL);
	if (fd < 0) {
		probe_set_core(p, xasprintf("bpf: %s (bpf() refused: a seccomp filter, a "
		                            "container or kernel lockdown)",
		                            strerror(errno)));
		return;
	}
	close(fd);
	if (access("/sys/kernel/btf/vmlinux", R_OK) < 0) {
		probe_set_core(p, xasprintf("no BTF: /sys/kernel/btf/vmlinux: %s (a kernel "
		                            "without CONFIG_DEBUG_INFO_BTF)",
		                            strerror(errno)));
		return;
	}
	p->btf = btf__load_vmlinux_btf();
	if (!p->btf) {
		probe_set_core(p,
		               xasprintf("no BTF: cannot read the kernel's: %s", strerror(errno)));
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(core_tps); i++)
		if (btf_tracepoint_args(p->btf, core_tps[i]) < 1)
			probe_set_core(p, xasprintf("hook missing: tracepoint %s", core_tps[i]));
	for (size_t i = 0; i < ARRAY_SIZE(core_helpers); i++)
		if (!btf_helper(p->btf, core_helpers[i]))
			probe_set_core(p, xasprintf("hook missing: BPF helper %s (Linux 5.11 or "
			                            "later needed)",
			                            core_helpers[i] + 9));
	if (tel_landlock_abi() >= 1) {
		if (!lsm_hooks && btf_member(p->btf, "landlock_hierarchy", "num_denials"))
			p->sources |= WD_SRC_LANDLOCK_EXIT;
		else if (tel_btf_func(p->btf, "security_file_open") &&
		         btf_helper(p->btf, "BPF_FUNC_get_func_ret"))
			p->sources |= WD_SRC_LANDLOCK_HOOKS;
	}
	if (btf_tracepoint_args(p->btf, "mark_victim") == 2) /* (task, uid): Linux 6.8+ */
		p->sources |= WD_SRC_OOM;
	else if (tel_btf_func(p->btf, "mark_oom_victim"))
		p->sources |= WD_SRC_OOM_FENTRY;
	p->cgroup_rmdir = btf_tracepoint_args(p->btf, "cgroup_rmdir") >= 1;
}

void tel_probe_clear(struct tel_probe *p)
{
	free(p->core_why);
	btf__free(p->btf);
	*p = (struct tel_probe){0};
}

void tel_sources_why_off(uint32_t sources, struct strv *why_not)
{
	const char *tramp = sources & WD_SRC_NO_TRAMPOLINE
	                        ? " (and this kernel refuses fentry/fexit programs)"
	                        : "";
	if (!why_not)
		return;
	if (!(sources & WD_SRC_LANDLOCK_MASK)) {
		if (tel_landlock_abi() < 1)
			strv_push(why_not, "Landlock refusals off: Landlock is not enabled");
		else if (sources & WD_SRC_NO_CALIB)
			strv_push(why_not, "Landlock refusals off: Landlock's domain could not "
			                   "be located in the task credentials");
		else
			strv_push_take(why_not,
			               xasprintf("Landlock refusals off: hook missing: Landlock "
			                         "keeps no denial counts (Linux 6.15+ with "
			                         "CONFIG_AUDIT)%s",
			                         tramp));
	}
	if (!(sources & WD_SRC_OOM_MASK))
		strv_push_take(why_not, xasprintf("OOM kill events off: hook missing: tracepoint "
		                                  "mark_victim with its task (Linux 6.8+)%s",
		                                  tramp));
}
