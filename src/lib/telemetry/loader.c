/* loader.c: one set of BPF programs for the whole host, loaded once and pinned.
 *
 * Sections: libbpf's messages; bpffs and the lock; removing what is stale; loading and
 * pinning; opening the pinned set; the public probe. What the kernel offers is found by
 * probe.c; the pool of rings is pool.c's.
 *
 * Layout: <pin root>/<tag>/ holds the shared maps (pcpu, shared, slot_of, slots, rings,
 * dead), one link per attached program (named after it), and `info`, pinned last: a set
 * whose `info` exists is complete. The tag is a hash of the BPF object, so wardens built from the
 * same programs share one set and a new build never reads maps laid out by another.
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
#include <sys/mman.h>
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
	if (level == LIBBPF_DEBUG)
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	if (line[0])
		memcpy(libbpf_last, line, sizeof(line));
	return 0;
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
int tel_take_lock(struct warden_error **err)
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

/* Whether the cgroup v2 group with this id still exists: its id is its file handle on
 * the cgroup2 mount. */
static bool cgroup_exists(uint64_t id)
{
	static const char *const mounts[] = {"/sys/fs/cgroup/unified", "/sys/fs/cgroup"};
	struct {
		struct file_handle fh;
		uint64_t id;
	} h = {.fh.handle_bytes = sizeof(uint64_t), .fh.handle_type = 0xfe /* FILEID_KERNFS */};
	memcpy(h.fh.f_handle, &id, sizeof(id));
	for (size_t i = 0; i < ARRAY_SIZE(mounts); i++) {
		struct statfs sf;
		_cleanup_close_ int mfd = open(mounts[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (mfd < 0 || fstatfs(mfd, &sf) < 0 || sf.f_type != CGROUP2_SUPER_MAGIC)
			continue;
		_cleanup_close_ int fd = open_by_handle_at(mfd, &h.fh, O_RDONLY | O_CLOEXEC);
		return fd >= 0 || errno != ESTALE;
	}
	return true; /* cannot tell: assume it does */
}

/* Whether a set still watches a sandbox that exists. */
static bool set_in_use(const char *dir)
{
	_cleanup_free_ char *map = xasprintf("%s/pcpu", dir);
	_cleanup_close_ int fd = bpf_obj_get(map);
	uint64_t key;
	if (fd < 0)
		return false;
	int r = bpf_map_get_next_key(fd, NULL, &key);
	while (r == 0) {
		if (cgroup_exists(key))
			return true;
		r = bpf_map_get_next_key(fd, &key, &key);
	}
	return false;
}

/* Sets pinned by other builds of warden keep their programs attached, costing every
 * system call on the host a little, until their pins go. Under the lock, a set that
 * watches no live sandbox is removed (unpinning its links detaches its programs); one
 * still in use is left to its wardens. A warden of that build attaching at this very
 * moment would find its programs gone: the price of not keeping dead programs forever. */
static bool remove_stale_sets(const char *root, const char *keep, bool dry)
{
	_cleanup_closedir_ DIR *d = opendir(root);
	struct dirent *de;
	bool found = false;
	if (!d)
		return false;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || streq(de->d_name, keep))
			continue;
		found = true;
		_cleanup_free_ char *dir = xasprintf("%s/%s", root, de->d_name);
		if (!dry && !set_in_use(dir))
			remove_pins(dir);
	}
	return found;
}

/* A set of another build that was in use when this build's set was loaded stays attached
 * after its last sandbox unless someone removes it later: every attach looks (one
 * readdir of a directory that normally holds one entry) and, finding one, removes it
 * under the lock once it watches nothing. */
static void remove_stale_sets_later(const char *root, const char *dir)
{
	const char *keep = strrchr(dir, '/') + 1;
	if (!remove_stale_sets(root, keep, true))
		return;
	_cleanup_close_ int lock = tel_take_lock(NULL);
	if (lock >= 0)
		(void)remove_stale_sets(root, keep, false);
}

/* ---- loading and pinning ----------------------------------------------------------------- */

static int pin_map(struct bpf_map *m, const char *dir, const char *name, struct warden_error **err)
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
static void choose_programs(struct warden_bpf *skel, const struct tel_probe *p, bool trampolines)
{
	struct bpf_program *prog;
	bpf_object__for_each_program(prog, skel->obj)
	{
		const char *name = bpf_program__name(prog);
		bool on = true;
		if (strncmp(name, "wd_ll_", 6) == 0)
			on = (p->sources & WD_SRC_LANDLOCK_HOOKS) && tel_btf_func(p->btf, name + 6);
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
static int load_and_pin(const char *dir, struct tel_probe *p, bool trampolines,
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
	/* The first rings of the pool, so that the first sandboxes find one free. */
	struct wd_slot *slots = mmap(NULL, tel_slots_bytes(), PROT_READ | PROT_WRITE, MAP_SHARED,
	                             bpf_map__fd(skel->maps.slots), 0);
	if (slots == MAP_FAILED) {
		warden_error_set(err, errno, "mapping the ring pool");
		goto out;
	}
	int g =
	    tel_pool_grow(bpf_map__fd(skel->maps.rings), slots, WD_RING_DEF, TEL_POOL_GROW, err);
	munmap(slots, tel_slots_bytes());
	if (g < 0)
		goto out;
	if (pin_map(skel->maps.pcpu, dir, "pcpu", err) < 0 ||
	    pin_map(skel->maps.shared, dir, "shared", err) < 0 ||
	    pin_map(skel->maps.slot_of, dir, "slot_of", err) < 0 ||
	    pin_map(skel->maps.slots, dir, "slots", err) < 0 ||
	    pin_map(skel->maps.rings, dir, "rings", err) < 0 ||
	    pin_map(skel->maps.dead, dir, "dead", err) < 0 ||
	    pin_map(skel->maps.tasks, dir, "tasks", err) < 0 ||
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
static int load_best(const char *dir, struct tel_probe *p, struct warden_error **err)
{
	bool wanted = p->sources & (WD_SRC_LANDLOCK_HOOKS | WD_SRC_OOM_FENTRY);
	_cleanup_error_ struct warden_error *first = NULL;
	if (!wanted)
		return load_and_pin(dir, p, false, err);
	if (load_and_pin(dir, p, true, &first) == 0)
		return 0;
	p->sources |= WD_SRC_NO_TRAMPOLINE;
	if (load_and_pin(dir, p, false, err) < 0)
		return warden_error_wrap(err, "without fentry/fexit (with them: %s)",
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

static void close_set(struct tel_set *s)
{
	int *fds[] = {&s->pcpu_fd,  &s->shared_fd, &s->slot_of_fd,
	              &s->rings_fd, &s->dead_fd,   &s->tasks_fd};
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++) {
		closep(fds[i]);
		*fds[i] = -1;
	}
	if (s->slots)
		munmap(s->slots, tel_slots_bytes());
	s->slots = NULL;
}

/* Open a complete set (its `info` pinned) into s; -errno when there is none. */
static int open_set(struct tel_set *s)
{
	_cleanup_close_ int info_fd = open_pin(s->dir, "info");
	_cleanup_close_ int slots_fd = -1;
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
	s->slot_of_fd = open_pin(s->dir, "slot_of");
	s->rings_fd = open_pin(s->dir, "rings");
	s->dead_fd = open_pin(s->dir, "dead");
	s->tasks_fd = open_pin(s->dir, "tasks");
	slots_fd = open_pin(s->dir, "slots");
	if (slots_fd >= 0) {
		/* Shared memory with every other warden: claims are compare-and-swaps. */
		s->slots =
		    mmap(NULL, tel_slots_bytes(), PROT_READ | PROT_WRITE, MAP_SHARED, slots_fd, 0);
		if (s->slots == MAP_FAILED)
			s->slots = NULL;
	}
	if (s->pcpu_fd < 0 || s->shared_fd < 0 || s->slot_of_fd < 0 || s->rings_fd < 0 ||
	    s->dead_fd < 0 || s->tasks_fd < 0 || !s->slots) {
		int e = errno ? errno : EIO;
		close_set(s);
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
	struct tel_probe p;
	int r;
	if (ensure_bpffs(root, err) < 0)
		return -1;
	_cleanup_close_ int lock = tel_take_lock(err);
	if (lock < 0)
		return -1;
	if (open_set(s) == 0) /* loaded by another warden while we waited */
		return 0;
	tel_probe_kernel(&p, lsm_hooks);
	if (p.core_why) {
		warden_error_set(err, 0, "%s", p.core_why);
		tel_probe_clear(&p);
		return -1;
	}
	remove_pins(s->dir); /* what a loader that died half-way left */
	(void)remove_stale_sets(root, strrchr(s->dir, '/') + 1, false);
	r = load_best(s->dir, &p, err);
	tel_probe_clear(&p);
	if (r < 0)
		return -1;
	r = open_set(s);
	if (r < 0)
		return warden_error_set(err, -r, "opening the pinned maps in %s", s->dir);
	return 0;
}

/* The set of opts this process has open, or opens now if it is pinned; NULL when it is
 * not loaded. *ret_fresh: the struct for a load to fill (freed by the caller otherwise). */
static struct tel_set *set_open_locked(const struct warden_tel_opts *opts,
                                       struct tel_set **ret_fresh)
{
	_cleanup_free_ char *dir = set_dir(opts);
	const char *root = opts && opts->pin_root ? opts->pin_root : TEL_PIN_ROOT;
	/* A set this process opened before, if its pins are still there: a long-lived
	 * process (the daemon) may see its set removed as stale by a newer build's loader
	 * while it watched nothing. The old set's struct stays (sandboxes attached to it keep
	 * their fds); a new one is opened or loaded. */
	for (struct tel_set **pp = &sets; *pp; pp = &(*pp)->next) {
		if (!streq((*pp)->dir, dir))
			continue;
		if (access((*pp)->dir, F_OK) == 0) {
			remove_stale_sets_later(root, (*pp)->dir);
			return *pp;
		}
		*pp = (*pp)->next;
		break;
	}
	struct tel_set *s = xcalloc(1, sizeof(*s));
	s->dir = TAKE_PTR(dir);
	s->root = xstrdup(root);
	s->pcpu_fd = s->shared_fd = s->slot_of_fd = s->rings_fd = s->dead_fd = s->tasks_fd = -1;
	/* The fast path, every start but the host's first: a few bpf(BPF_OBJ_GET) calls. */
	if (open_set(s) < 0) {
		*ret_fresh = s;
		return NULL;
	}
	remove_stale_sets_later(root, s->dir);
	s->next = sets;
	sets = s;
	return s;
}

static void set_free(struct tel_set *s)
{
	free(s->root);
	free(s->dir);
	free(s);
}

static struct tel_set *set_get_locked(const struct warden_tel_opts *opts, struct warden_error **err)
{
	struct tel_set *fresh = NULL, *s = set_open_locked(opts, &fresh);
	if (s)
		return s;
	if (load_locked(fresh, fresh->root, opts && opts->landlock_lsm_hooks, err) < 0) {
		set_free(fresh);
		return NULL;
	}
	fresh->next = sets;
	sets = fresh;
	return fresh;
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
	uint32_t idx;
	/* Usually empty: one system call. */
	while (bpf_map_get_next_key(s->dead_fd, NULL, &key) == 0) {
		(void)bpf_map_delete_elem(s->pcpu_fd, &key);
		(void)bpf_map_delete_elem(s->shared_fd, &key);
		if (bpf_map_lookup_elem(s->slot_of_fd, &key, &idx) == 0) {
			(void)bpf_map_delete_elem(s->slot_of_fd, &key);
			tel_slot_release(s, idx, key);
		}
		if (bpf_map_delete_elem(s->dead_fd, &key) < 0)
			break;
	}
}

/* ---- the public probe -------------------------------------------------------------------- */

static bool probe_available(struct strv *reasons)
{
	struct tel_probe p;
	bool ok;
	if (geteuid() == 0) {
		/* Already loaded: the loader checked everything, and noted what is off. The set
		 * stays open for the attach that usually follows. */
		struct tel_set *fresh = NULL;
		pthread_mutex_lock(&sets_lock);
		struct tel_set *s = set_open_locked(NULL, &fresh);
		pthread_mutex_unlock(&sets_lock);
		if (fresh)
			set_free(fresh);
		if (s) {
			tel_sources_why_off(s->sources, reasons);
			return true;
		}
	}
	tel_probe_kernel(&p, false);
	ok = !p.core_why;
	if (ok)
		tel_sources_why_off(p.sources, reasons);
	else
		strv_push(reasons, p.core_why);
	tel_probe_clear(&p);
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
