/* loader.c: one set of BPF programs for the whole host, loaded once and pinned.
 *
 * Sections: libbpf's messages; probing what the kernel offers; bpffs and the lock;
 * removing what is stale; loading and pinning; opening the pinned set; the public probe.
 *
 * Layout: <pin root>/<tag>/ holds the outer maps (pcpu, shared, rings, dead), one link per
 * attached program (named after it), and `info`, pinned last: a set whose `info` exists
 * is complete. The tag is a hash of the BPF object, so wardens built from the same
 * programs share one set and a new build never reads maps laid out by another.
 */
#define _GNU_SOURCE
#include "tel-internal.h"

#include "bpf/events.h"
#include "src/lib/telemetry/warden-bpf-tag.h"
#include "src/lib/telemetry/warden.skel.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <signal.h>

/* ---- libbpf's messages ------------------------------------------------------------------ */

/* The library never prints: libbpf's warnings are kept (the last one) and become part of
 * the error when loading fails, e.g. the verifier's complaint. */
static char libbpf_last[512];

static int libbpf_capture(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[sizeof(libbpf_last)];
	if (getenv("TELDEBUG")) { vfprintf(stderr, fmt, ap); return 0; } /* XXX */
	if (level == LIBBPF_DEBUG)
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	if (line[0])
		memcpy(libbpf_last, line, sizeof(line));
	return 0;
}

/* ---- probing what the kernel offers ------------------------------------------------------ */

struct probe {
	char *core_why;     /* why nothing can run, or NULL */
	uint32_t sources;   /* optional sources the kernel has (WD_SRC_*) */
	bool cgroup_rmdir;  /* the cgroup_rmdir tracepoint is there */
	struct btf *btf;    /* the kernel's BTF, for the per-hook checks when loading */
};

static bool btf_func(const struct btf *btf, const char *name)
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

static int landlock_abi(void)
{
	return (int)syscall(SYS_landlock_create_ruleset, NULL, 0, 1 /* _VERSION */);
}

static void probe_set_core(struct probe *p, char *why)
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
static void probe_kernel(struct probe *p, bool lsm_hooks)
{
	static const char *const core_tps[] = {"sys_enter", "sys_exit", "sched_process_fork",
					       "sched_process_exec", "sched_process_exit"};
	static const char *const core_helpers[] = {"BPF_FUNC_ringbuf_reserve",
						   "BPF_FUNC_task_storage_get",
						   "BPF_FUNC_get_current_task_btf"};
	*p = (struct probe){0};
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
		probe_set_core(p, xasprintf("no BTF: cannot read the kernel's: %s",
					    strerror(errno)));
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
	if (landlock_abi() >= 1) {
		if (!lsm_hooks && btf_member(p->btf, "landlock_hierarchy", "num_denials"))
			p->sources |= WD_SRC_LANDLOCK_EXIT;
		else if (btf_func(p->btf, "security_file_open") &&
			 btf_helper(p->btf, "BPF_FUNC_get_func_ret"))
			p->sources |= WD_SRC_LANDLOCK_HOOKS;
	}
	if (btf_tracepoint_args(p->btf, "mark_victim") == 2) /* (task, uid): Linux 6.8+ */
		p->sources |= WD_SRC_OOM;
	else if (btf_func(p->btf, "mark_oom_victim"))
		p->sources |= WD_SRC_OOM_FENTRY;
	p->cgroup_rmdir = btf_tracepoint_args(p->btf, "cgroup_rmdir") >= 1;
}

static void probe_clear(struct probe *p)
{
	free(p->core_why);
	btf__free(p->btf);
	*p = (struct probe){0};
}

void tel_sources_why_off(uint32_t sources, struct strv *why_not)
{
	const char *tramp = sources & WD_SRC_NO_TRAMPOLINE
				? " (and this kernel refuses fentry/fexit programs)"
				: "";
	if (!why_not)
		return;
	if (!(sources & WD_SRC_LANDLOCK_MASK)) {
		if (landlock_abi() < 1)
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

/* ---- bpffs and the lock ------------------------------------------------------------------ */

/* Pinning needs a bpf filesystem; mount one where systemd and bpftool expect it if the host
 * has none. Mode 0700: whoever can open the pinned maps can read every sandbox's events and
 * counters, and change them, so only root may. */
static int ensure_bpffs(const char *root, struct warden_error **err)
{
	struct statfs sf;
	if (statfs("/sys/fs/bpf", &sf) < 0 || sf.f_type != BPF_FS_MAGIC) {
		if (mount("bpf", "/sys/fs/bpf", "bpf", MS_NOSUID | MS_NODEV | MS_NOEXEC,
			  "mode=0700") < 0)
			return warden_error_set(err, errno, "mounting bpffs at /sys/fs/bpf");
	}
	if (mkdir(root, 0700) < 0 && errno != EEXIST)
		return warden_error_set(err, errno, "%s", root);
	if (statfs(root, &sf) < 0 || sf.f_type != BPF_FS_MAGIC)
		return warden_error_set(err, ENOTSUP, "%s is not on a bpf filesystem", root);
	return 0;
}

/* Two wardens starting at once must load the programs once: the loader holds this lock
 * from its check that nothing is pinned until its last pin. */
static int take_lock(struct warden_error **err)
{
	if (mkdir(TEL_LOCK_DIR, 0755) < 0 && errno != EEXIST)
		return warden_error_set(err, errno, "%s", TEL_LOCK_DIR);
	int fd = open(TEL_LOCK_FILE, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return warden_error_set(err, errno, "%s", TEL_LOCK_FILE);
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			int e = errno;
			close(fd);
			return warden_error_set(err, e, "locking %s", TEL_LOCK_FILE);
		}
	}
	return fd;
}

/* ---- removing what is stale -------------------------------------------------------------- */

static void remove_pins(const char *dir)
{
	_cleanup_closedir_ DIR *d = opendir(dir);
	struct dirent *de;
	if (!d)
		return;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			(void)unlinkat(dirfd(d), de->d_name, 0);
	d = (closedir(d), NULL);
	(void)rmdir(dir);
}

/* Sets pinned by other builds of warden keep their programs attached, costing every
 * system call on the host a little, until their pins go. Under the lock, a set that
 * watches no sandbox is removed (unpinning its links detaches its programs); one still in
 * use is left to its wardens. A warden of that build attaching at this very moment would
 * find its programs gone: the price of not keeping dead programs forever. */
static void remove_stale_sets(const char *root, const char *keep)
{
	_cleanup_closedir_ DIR *d = opendir(root);
	struct dirent *de;
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || streq(de->d_name, keep))
			continue;
		_cleanup_free_ char *dir = xasprintf("%s/%s", root, de->d_name);
		_cleanup_free_ char *map = xasprintf("%s/pcpu", dir);
		_cleanup_close_ int fd = bpf_obj_get(map);
		uint64_t key;
		if (fd >= 0 && bpf_map_get_next_key(fd, NULL, &key) == 0)
			continue; /* watching at least one sandbox */
		remove_pins(dir);
	}
}

/* ---- loading and pinning ----------------------------------------------------------------- */

static int pin_map(struct bpf_map *m, const char *dir, const char *name,
		   struct warden_error **err)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
	if (bpf_map__pin(m, path) < 0)
		return warden_error_set(err, errno, "pinning %s", path);
	return 0;
}

static bool is_trampoline(const struct bpf_program *prog)
{
	enum bpf_attach_type t = bpf_program__expected_attach_type(prog);
	return t == BPF_TRACE_FENTRY || t == BPF_TRACE_FEXIT;
}

/* Which programs to load: the core ones always, the optional ones where the kernel has
 * their hook; fentry/fexit ones only while `trampolines`. The calibration program is
 * loaded with the rest but attached only while calibrating. */
static void choose_programs(struct warden_bpf *skel, const struct probe *p, bool trampolines)
{
	struct bpf_program *prog;
	bpf_object__for_each_program(prog, skel->obj)
	{
		const char *name = bpf_program__name(prog);
		bool on = true;
		if (strncmp(name, "wd_ll_", 6) == 0)
			on = (p->sources & WD_SRC_LANDLOCK_HOOKS) && btf_func(p->btf, name + 6);
		else if (streq(name, "wd_oom"))
			on = p->sources & WD_SRC_OOM;
		else if (streq(name, "wd_oom_fentry"))
			on = p->sources & WD_SRC_OOM_FENTRY;
		else if (streq(name, "wd_cgroup_rmdir"))
			on = p->cgroup_rmdir;
		else if (streq(name, "wd_calib"))
			on = p->sources & WD_SRC_LANDLOCK_EXIT;
		if (is_trampoline(prog) && !trampolines)
			on = false;
		bpf_program__set_autoload(prog, on);
	}
}

/* The offset of Landlock's domain pointer in cred->security (see wd_calib): a child
 * restricts itself between two getppid() calls; the 8-byte slot that changes to a kernel
 * pointer is it. -1 when it cannot be found. */
static int calibrate_landlock(struct warden_bpf *skel)
{
	struct landlock_attr {
		uint64_t handled_access_fs;
	} attr = {.handled_access_fs = 1ULL << 2 /* READ_FILE */};
	int go[2];
	int off = -1;
	if (pipe2(go, O_CLOEXEC) < 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		/* Only system calls here: the parent may have other threads. */
		char c;
		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(1);
		syscall(SYS_getppid);
		int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
		if (rs < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
		    syscall(SYS_landlock_restrict_self, rs, 0) < 0)
			_exit(1);
		syscall(SYS_getppid);
		_exit(0);
	}
	close(go[0]);
	if (pid < 0) {
		close(go[1]);
		return -1;
	}
	skel->bss->calib_pid = (uint32_t)pid;
	skel->bss->calib_n = 0;
	struct bpf_link *link = bpf_program__attach(skel->progs.wd_calib);
	int status = -1;
	if (link && write(go[1], "g", 1) != 1)
		kill(pid, SIGKILL);
	close(go[1]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	bpf_link__destroy(link);
	if (!link || status != 0 || skel->bss->calib_n != 2)
		return -1;
	for (int i = 0; i + 8 <= WD_CALIB_BYTES; i += 8) {
		uint64_t before, after;
		memcpy(&before, skel->bss->calib_blob[0] + i, 8);
		memcpy(&after, skel->bss->calib_blob[1] + i, 8);
		if (before != after && after >= 0xffff800000000000ULL) {
			off = i;
			break;
		}
	}
	return off;
}

/* Load the chosen programs, attach and pin them. Fails without side effects in dir. */
static int load_and_pin(const char *dir, struct probe *p, bool trampolines,
			struct warden_error **err)
{
	struct warden_bpf *skel = warden_bpf__open();
	struct bpf_program *prog;
	int r = -1;
	if (!skel)
		return warden_error_set(err, errno, "opening the BPF object: %s", libbpf_last);
	choose_programs(skel, p, trampolines);
	if (warden_bpf__load(skel) < 0) {
		warden_error_set(err, errno, "loading the BPF programs: %s", libbpf_last);
		goto out;
	}
	struct wd_info info = {.sources = p->sources,
			       .abi = WD_ABI,
			       .landlock_off = -1,
			       .ncpus = (uint32_t)libbpf_num_possible_cpus()};
	if (!trampolines)
		info.sources &= ~(WD_SRC_LANDLOCK_HOOKS | WD_SRC_OOM_FENTRY);
	if (info.sources & WD_SRC_LANDLOCK_EXIT) {
		info.landlock_off = calibrate_landlock(skel);
		if (info.landlock_off < 0)
			info.sources = (info.sources & ~WD_SRC_LANDLOCK_EXIT) | WD_SRC_NO_CALIB;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		warden_error_set(err, errno, "%s", dir);
		goto out;
	}
	bpf_object__for_each_program(prog, skel->obj)
	{
		if (!bpf_program__autoload(prog) || prog == skel->progs.wd_calib)
			continue;
		struct bpf_link *link = bpf_program__attach(prog);
		if (!link) {
			warden_error_set(err, errno, "attaching %s: %s", bpf_program__name(prog),
					 libbpf_last);
			goto out;
		}
		_cleanup_free_ char *path = xasprintf("%s/%s", dir, bpf_program__name(prog));
		int pr = bpf_link__pin(link, path);
		int e = errno;
		/* Pinned, the link keeps the program attached after this process exits;
		 * destroying our handle then only closes our fd. */
		bpf_link__destroy(link);
		if (pr < 0) {
			warden_error_set(err, e, "pinning %s", path);
			goto out;
		}
	}
	uint32_t zero = 0;
	if (bpf_map__update_elem(skel->maps.info, &zero, sizeof(zero), &info, sizeof(info),
				 BPF_ANY) < 0) {
		warden_error_set(err, errno, "writing the info map");
		goto out;
	}
	if (pin_map(skel->maps.pcpu, dir, "pcpu", err) < 0 ||
	    pin_map(skel->maps.shared, dir, "shared", err) < 0 ||
	    pin_map(skel->maps.rings, dir, "rings", err) < 0 ||
	    pin_map(skel->maps.dead, dir, "dead", err) < 0 ||
	    pin_map(skel->maps.info, dir, "info", err) < 0) /* last: the set is complete */
		goto out;
	r = 0;
out:
	warden_bpf__destroy(skel);
	if (r < 0)
		remove_pins(dir);
	return r;
}

/* Some kernels refuse BPF trampolines (fentry/fexit) outright; everything essential runs
 * without them, so a refusal means loading again without, and saying what that turned
 * off. */
static int load_best(const char *dir, struct probe *p, struct warden_error **err)
{
	bool wanted = p->sources & (WD_SRC_LANDLOCK_HOOKS | WD_SRC_OOM_FENTRY);
	_cleanup_error_ struct warden_error *first = NULL;
	if (!wanted)
		return load_and_pin(dir, p, false, err);
	if (load_and_pin(dir, p, true, &first) == 0)
		return 0;
	p->sources |= WD_SRC_NO_TRAMPOLINE;
	if (load_and_pin(dir, p, false, err) < 0)
		return warden_error_wrap(err, "(and with fentry/fexit: %s)",
					 warden_error_text(first));
	return 0;
}

/* ---- opening the pinned set -------------------------------------------------------------- */

static int open_pin(const char *dir, const char *name)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return bpf_obj_get(path);
}

/* Open a complete set (its `info` pinned) into s; -errno when there is none. */
static int open_set(struct tel_set *s)
{
	_cleanup_close_ int info_fd = open_pin(s->dir, "info");
	struct wd_info info;
	uint32_t zero = 0;
	if (info_fd < 0)
		return -errno;
	if (bpf_map_lookup_elem(info_fd, &zero, &info) < 0)
		return -errno;
	if (info.abi != WD_ABI || info.ncpus == 0)
		return -EPROTO;
	s->pcpu_fd = open_pin(s->dir, "pcpu");
	s->shared_fd = open_pin(s->dir, "shared");
	s->rings_fd = open_pin(s->dir, "rings");
	s->dead_fd = open_pin(s->dir, "dead");
	if (s->pcpu_fd < 0 || s->shared_fd < 0 || s->rings_fd < 0 || s->dead_fd < 0) {
		int e = errno;
		closep(&s->pcpu_fd);
		closep(&s->shared_fd);
		closep(&s->rings_fd);
		closep(&s->dead_fd);
		s->pcpu_fd = s->shared_fd = s->rings_fd = s->dead_fd = -1;
		return -e;
	}
	s->sources = info.sources;
	s->ncpus = (int)info.ncpus;
	return 0;
}

static pthread_mutex_t sets_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tel_set *sets;

static char *set_dir(const struct warden_tel_opts *opts)
{
	const char *root = opts && opts->pin_root ? opts->pin_root : TEL_PIN_ROOT;
	return xasprintf("%s/%s%s", root, WARDEN_BPF_TAG,
			 opts && opts->landlock_lsm_hooks ? "-lsmhooks" : "");
}

/* Load the set into s->dir under the lock (unless another warden did while we waited for
 * it) and open it. */
static int load_locked(struct tel_set *s, const char *root, bool lsm_hooks,
		       struct warden_error **err)
{
	struct probe p;
	int r;
	if (ensure_bpffs(root, err) < 0)
		return -1;
	_cleanup_close_ int lock = take_lock(err);
	if (lock < 0)
		return -1;
	if (open_set(s) == 0) /* loaded by another warden while we waited */
		return 0;
	probe_kernel(&p, lsm_hooks);
	if (p.core_why) {
		warden_error_set(err, 0, "%s", p.core_why);
		probe_clear(&p);
		return -1;
	}
	remove_pins(s->dir); /* what a loader that died half-way left */
	remove_stale_sets(root, strrchr(s->dir, '/') + 1);
	r = load_best(s->dir, &p, err);
	probe_clear(&p);
	if (r < 0)
		return -1;
	r = open_set(s);
	if (r < 0)
		return warden_error_set(err, -r, "opening the pinned maps in %s", s->dir);
	return 0;
}

static struct tel_set *set_get_locked(const struct warden_tel_opts *opts,
				      struct warden_error **err)
{
	_cleanup_free_ char *dir = set_dir(opts);
	const char *root = opts && opts->pin_root ? opts->pin_root : TEL_PIN_ROOT;
	for (struct tel_set *s = sets; s; s = s->next)
		if (streq(s->dir, dir))
			return s;
	struct tel_set *s = xcalloc(1, sizeof(*s));
	s->dir = TAKE_PTR(dir);
	s->pcpu_fd = s->shared_fd = s->rings_fd = s->dead_fd = -1;
	/* The fast path, every start but the host's first: a few bpf(BPF_OBJ_GET) calls. */
	if (open_set(s) < 0 && load_locked(s, root, opts && opts->landlock_lsm_hooks, err) < 0) {
		free(s->dir);
		free(s);
		return NULL;
	}
	s->next = sets;
	sets = s;
	return s;
}

struct tel_set *tel_set_get(const struct warden_tel_opts *opts, struct warden_error **err)
{
	pthread_mutex_lock(&sets_lock);
	libbpf_set_print(libbpf_capture);
	struct tel_set *s = set_get_locked(opts, err);
	pthread_mutex_unlock(&sets_lock);
	return s;
}

void tel_set_collect_dead(struct tel_set *s)
{
	uint64_t key;
	/* Usually empty: one system call. */
	while (bpf_map_get_next_key(s->dead_fd, NULL, &key) == 0) {
		(void)bpf_map_delete_elem(s->pcpu_fd, &key);
		(void)bpf_map_delete_elem(s->shared_fd, &key);
		(void)bpf_map_delete_elem(s->rings_fd, &key);
		if (bpf_map_delete_elem(s->dead_fd, &key) < 0)
			break;
	}
}

/* ---- the public probe -------------------------------------------------------------------- */

static bool probe_available(struct strv *reasons)
{
	struct tel_set s = {.dir = set_dir(NULL), .pcpu_fd = -1};
	struct probe p;
	bool ok;
	if (geteuid() == 0 && open_set(&s) == 0) {
		/* Already loaded: the loader checked everything, and noted what is off. */
		tel_sources_why_off(s.sources, reasons);
		close(s.pcpu_fd);
		close(s.shared_fd);
		close(s.rings_fd);
		close(s.dead_fd);
		free(s.dir);
		return true;
	}
	free(s.dir);
	probe_kernel(&p, false);
	ok = !p.core_why;
	if (ok)
		tel_sources_why_off(p.sources, reasons);
	else
		strv_push(reasons, p.core_why);
	probe_clear(&p);
	return ok;
}

bool warden_telemetry_available(struct strv *why_not)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static int state = -1;
	static struct strv reasons;
	pthread_mutex_lock(&lock);
	if (state < 0) {
		libbpf_set_print(libbpf_capture);
		state = probe_available(&reasons);
	}
	for (size_t i = 0; why_not && i < reasons.n; i++)
		strv_push(why_not, reasons.v[i]);
	pthread_mutex_unlock(&lock);
	return state;
}
