/* telemetry.c: one sandbox's view of the shared BPF programs.
 *
 * Sections: attach (the sandbox's entries in the shared maps); decoding ring records;
 * drain; counts; detach.
 *
 * Attaching claims a ring buffer of the pool for this sandbox alone, names it under the
 * sandbox's cgroup id in `slot_of`, and adds zeroed entries for its counters; the programs
 * find them there. The supervisor reads its own ring and its own entries; detaching
 * removes the entries and gives the ring back to the pool. None of this changes a
 * map-in-map, so none of it waits for an RCU grace period.
 */
#define _GNU_SOURCE
#include "tel-internal.h"

#include "bpf/events.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/pidfd.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL /* Linux 6.9; Debian 12's headers predate it */
#endif

_Static_assert(WD_NR_MAX == WARDEN_TEL_NR_MAX, "system call table sizes differ");
_Static_assert(WD_PATH_MAX == WARDEN_TEL_PATH_MAX && WD_ARG_MAX == WARDEN_TEL_ARG_MAX &&
                   WD_ARGS == WARDEN_TEL_ARGS && WD_LAYERS == WARDEN_TEL_LAYER_MAX,
               "event layouts differ");

struct warden_telemetry {
	uint64_t cgroup_id;
	struct tel_set *set;
	int slot; /* the ring's index in the pool, or -1 */
	int ring_fd;
	struct ring_buffer *rb;
	int ncpus;
	size_t stride; /* bytes per CPU in a per-CPU value */
	int cgroup_fd; /* the group's directory */
	/* during a drain */
	void (*cb)(const struct warden_tel_event *ev, void *ctx);
	void *ctx;
	int64_t boot_to_real;
	int delivered;
};

/* ---- attach ---------------------------------------------------------------------------- */

static void unlink_maps(struct warden_telemetry *t)
{
	/* The gate first: once the programs no longer find the cgroup in `pcpu`, they touch
	 * none of the others. */
	(void)bpf_map_delete_elem(t->set->pcpu_fd, &t->cgroup_id);
	(void)bpf_map_delete_elem(t->set->shared_fd, &t->cgroup_id);
	(void)bpf_map_delete_elem(t->set->slot_of_fd, &t->cgroup_id);
}

static int link_maps(struct warden_telemetry *t, struct warden_error **err)
{
	_cleanup_free_ void *pcpu0 = xcalloc((size_t)t->ncpus, t->stride);
	_cleanup_free_ struct wd_shared_counts *shared0 = xcalloc(1, sizeof(*shared0));
	uint32_t slot = (uint32_t)t->slot;
	/* The ring and refusal counters before the gate (`pcpu`), so that a program that
	 * finds the sandbox finds all of its entries. BPF_NOEXIST: a cgroup has one watcher;
	 * cgroup ids are never reused while the system runs, so an existing entry is another
	 * supervisor's. */
	if (bpf_map_update_elem(t->set->slot_of_fd, &t->cgroup_id, &slot, BPF_NOEXIST) < 0 ||
	    bpf_map_update_elem(t->set->shared_fd, &t->cgroup_id, shared0, BPF_NOEXIST) < 0 ||
	    bpf_map_update_elem(t->set->pcpu_fd, &t->cgroup_id, pcpu0, BPF_NOEXIST) < 0) {
		int e = errno;
		if (e != EEXIST)
			unlink_maps(t);
		return warden_error_set(err, e == EEXIST ? EBUSY : e, "watching cgroup %llu%s",
		                        (unsigned long long)t->cgroup_id,
		                        e == EEXIST ? ": already watched" : "");
	}
	return 0;
}

/* The cgroup v2 directory of id, found by its id (a kernfs file handle) on the unified
 * hierarchy's mount: the caller need not know where that is mounted. */
static int open_cgroup(uint64_t id, struct warden_error **err)
{
	static const char *const roots[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
	struct {
		struct file_handle fh;
		uint64_t id;
	} h = {.fh = {.handle_bytes = sizeof(uint64_t), .handle_type = 0xfe /* FILEID_KERNFS */},
	       .id = id};
	for (size_t i = 0; i < ARRAY_SIZE(roots); i++) {
		struct statfs sf;
		if (statfs(roots[i], &sf) < 0 || sf.f_type != CGROUP2_SUPER_MAGIC)
			continue;
		_cleanup_close_ int mnt = open(roots[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		int fd = mnt < 0
		             ? -1
		             : open_by_handle_at(mnt, &h.fh, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return warden_error_set(err, errno, "opening cgroup %llu under %s",
			                        (unsigned long long)id, roots[i]);
		return fd;
	}
	return warden_error_set(err, ENOENT, "no cgroup v2 hierarchy is mounted");
}

/* Call fn for every thread of the group (cgroup.threads) that still exists, with a pidfd
 * of it; stops at fn's first negative return, which it returns. */
static int each_thread(int cgroup_fd, int (*fn)(int pidfd, void *ctx), void *ctx,
                       struct warden_error **err)
{
	int fd = openat(cgroup_fd, "cgroup.threads", O_RDONLY | O_CLOEXEC);
	_cleanup_fclose_ FILE *f = fd < 0 ? NULL : fdopen(fd, "re");
	long tid;
	if (!f) {
		if (fd >= 0)
			close(fd);
		return warden_error_set(err, errno, "reading the group's cgroup.threads");
	}
	while (fscanf(f, "%ld", &tid) == 1) {
		_cleanup_close_ int pidfd = warden_pidfd_open((pid_t)tid, PIDFD_THREAD);
		/* Before Linux 6.9 only a process (its leader) has a pidfd: its other threads
		 * are read when they exit. */
		if (pidfd < 0 && errno == EINVAL)
			pidfd = warden_pidfd_open((pid_t)tid, 0);
		if (pidfd < 0)
			continue; /* gone since the list was read */
		int r = fn(pidfd, ctx);
		if (r < 0)
			return r;
	}
	return 0;
}

struct seed {
	int tasks_fd;
	struct wd_task *value;
	struct warden_error **err;
};

static int seed_one(int pidfd, void *ctx)
{
	struct seed *s = ctx;
	/* BPF_NOEXIST: a task born after the gate was set got its entry at fork, and may
	 * have counted calls in it already. */
	if (bpf_map_update_elem(s->tasks_fd, &pidfd, s->value, BPF_NOEXIST) < 0 &&
	    errno != EEXIST && errno != ESRCH)
		return warden_error_set(s->err, errno, "giving a task of the group its entry");
	return 0;
}

/* The system call programs watch only tasks that have an entry in `tasks`, which the
 * programs give to every task born of a watched one. The tasks the group holds already
 * (a sandbox's init, waiting for its go-ahead) get theirs here, after the gate is set, so
 * that a task forked meanwhile is either born watched or listed. Without this they would
 * go unwatched: their calls uncounted, their refusals unseen. */
static int seed_tasks(struct warden_telemetry *t, struct warden_error **err)
{
	_cleanup_free_ struct wd_task *v = xcalloc(1, sizeof(*v));
	v->nr = WD_SEEDED;
	struct seed s = {.tasks_fd = t->set->tasks_fd, .value = v, .err = err};
	return each_thread(t->cgroup_fd, seed_one, &s, err);
}

static int ring_sample(void *ctx, void *data, size_t size);

/* The fd of the pool's ring at slot: the array of maps gives its id. */
static int ring_fd_of(const struct tel_set *set, int slot)
{
	uint32_t key = (uint32_t)slot, id = 0;
	if (bpf_map_lookup_elem(set->rings_fd, &key, &id) < 0)
		return -1;
	return bpf_map_get_fd_by_id(id);
}

struct warden_telemetry *warden_telemetry_attach(uint64_t cgroup_id,
                                                 const struct warden_tel_opts *opts,
                                                 struct warden_error **err)
{
	uint32_t ring = opts && opts->ring_bytes ? opts->ring_bytes : WD_RING_DEF;
	if (ring < 4096 || (ring & (ring - 1))) {
		warden_error_set(err, EINVAL, "telemetry ring size %u: not a power of two >= 4096",
		                 ring);
		return NULL;
	}
	if (cgroup_id == 0) {
		warden_error_set(err, EINVAL, "telemetry: no cgroup v2 id to watch");
		return NULL;
	}
	struct tel_set *set = tel_set_get(opts, err);
	if (!set) {
		warden_error_wrap(err, "telemetry");
		return NULL;
	}
	tel_set_collect_dead(set);
	struct warden_telemetry *t = xcalloc(1, sizeof(*t));
	t->cgroup_id = cgroup_id;
	t->set = set;
	t->slot = -1;
	t->ring_fd = -1;
	t->ncpus = set->ncpus;
	t->cgroup_fd = open_cgroup(cgroup_id, err);
	if (t->cgroup_fd < 0) {
		warden_error_wrap(err, "telemetry");
		goto fail;
	}
	/* A per-CPU value goes through bpf() as one copy per possible CPU, each rounded up
	 * to 8 bytes. */
	t->stride = (sizeof(struct wd_pcpu_counts) + 7) & ~(size_t)7;
	t->slot = tel_slot_claim(set, ring, cgroup_id, err);
	if (t->slot < 0) {
		warden_error_wrap(err, "telemetry");
		goto fail;
	}
	t->ring_fd = ring_fd_of(set, t->slot);
	if (t->ring_fd < 0) {
		warden_error_set(err, errno, "telemetry: opening ring buffer %d of the pool",
		                 t->slot);
		goto fail;
	}
	t->rb = ring_buffer__new(t->ring_fd, ring_sample, t, NULL);
	if (!t->rb) {
		warden_error_set(err, errno, "telemetry: mapping the ring buffer");
		goto fail;
	}
	/* What the ring's previous sandbox left unread goes, unread: with no callback set,
	 * ring_sample() drops every record. */
	(void)ring_buffer__consume(t->rb);
	if (link_maps(t, err) < 0) {
		warden_error_wrap(err, "telemetry");
		goto fail;
	}
	if (seed_tasks(t, err) < 0) {
		unlink_maps(t);
		warden_error_wrap(err, "telemetry");
		goto fail;
	}
	return t;
fail:
	ring_buffer__free(t->rb);
	closep(&t->ring_fd);
	closep(&t->cgroup_fd);
	if (t->slot >= 0)
		tel_slot_release(set, (uint32_t)t->slot, cgroup_id);
	free(t);
	return NULL;
}

int warden_telemetry_fd(const struct warden_telemetry *t)
{
	return ring_buffer__epoll_fd(t->rb);
}

/* ---- decoding ring records -------------------------------------------------------------- */

static void copy_str(char *dst, size_t dlen, const char *src, size_t slen)
{
	size_t n = strnlen(src, slen);
	if (n >= dlen)
		n = dlen - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void decode_hdr(const struct warden_telemetry *t, const struct wd_hdr *h,
                       struct warden_tel_event *ev)
{
	ev->ts_ns = (uint64_t)((int64_t)h->ts + t->boot_to_real);
	ev->pid = h->pid;
	ev->ppid = h->ppid;
	ev->host_pid = h->host_pid;
	ev->uid = h->uid;
	copy_str(ev->comm, sizeof(ev->comm), h->comm, sizeof(h->comm));
}

/* Fill ev from a record; false for a record that is too short or of an unknown kind. */
static bool decode(const struct warden_telemetry *t, const void *data, size_t size,
                   struct warden_tel_event *ev)
{
	const struct wd_hdr *h = data;
	if (size < sizeof(*h))
		return false;
	memset(ev, 0, sizeof(*ev));
	decode_hdr(t, h, ev);
	switch (h->kind) {
	case WD_EXEC: {
		const struct wd_exec *e = data;
		if (size < sizeof(*e))
			return false;
		ev->kind = WARDEN_TEL_EXEC;
		copy_str(ev->exec.path, sizeof(ev->exec.path), e->path, sizeof(e->path));
		for (int i = 0; i < WD_ARGS; i++)
			copy_str(ev->exec.argv[i], sizeof(ev->exec.argv[i]), e->argv[i],
			         sizeof(e->argv[i]));
		ev->exec.argc = e->argc;
		return true;
	}
	case WD_EXIT: {
		const struct wd_exit *e = data;
		if (size < sizeof(*e))
			return false;
		ev->kind = WARDEN_TEL_EXIT;
		int status = (int)e->status;
		ev->exit.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		ev->exit.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
		return true;
	}
	case WD_CONNECT: {
		const struct wd_connect *e = data;
		if (size < WD_CONNECT_SHORT)
			return false;
		ev->kind = WARDEN_TEL_CONNECT;
		ev->connect.family = e->family;
		ev->connect.port = ntohs(e->port);
		ev->connect.ret = e->ret;
		memcpy(ev->connect.addr, e->addr, sizeof(ev->connect.addr));
		if (e->family == AF_UNIX && e->pathlen > 0 && size >= sizeof(*e)) {
			/* An abstract name (leading NUL) is shown the way ss(8) does: '@'. */
			size_t n = e->pathlen < sizeof(e->path) ? e->pathlen : sizeof(e->path);
			if (e->path[0] == '\0') {
				ev->connect.path[0] = '@';
				copy_str(ev->connect.path + 1, sizeof(ev->connect.path) - 1,
				         e->path + 1, n - 1);
			} else {
				copy_str(ev->connect.path, sizeof(ev->connect.path), e->path, n);
			}
		}
		return true;
	}
	case WD_REFUSED: {
		const struct wd_refused *e = data;
		if (size < sizeof(*e))
			return false;
		ev->kind = WARDEN_TEL_REFUSED;
		ev->refused.nr = e->nr;
		ev->refused.err = e->err;
		ev->refused.layer = e->layer ? WARDEN_TEL_LAYER_LANDLOCK : WARDEN_TEL_LAYER_SECCOMP;
		ev->refused.count = e->count;
		return true;
	}
	case WD_OOM:
		ev->kind = WARDEN_TEL_OOM;
		ev->oom.victim_pid = h->pid;
		return true;
	}
	return false;
}

/* ---- drain ------------------------------------------------------------------------------ */

static int64_t boot_to_realtime(void)
{
	struct timespec r, b;
	clock_gettime(CLOCK_REALTIME, &r);
	clock_gettime(CLOCK_BOOTTIME, &b);
	return ((int64_t)r.tv_sec - b.tv_sec) * 1000000000LL + (r.tv_nsec - b.tv_nsec);
}

static int ring_sample(void *ctx, void *data, size_t size)
{
	struct warden_telemetry *t = ctx;
	const struct wd_hdr *h = data;
	struct warden_tel_event ev;
	/* A record for another sandbox is one a program wrote for the ring's previous owner
	 * just as it detached: not this sandbox's. */
	if (!t->cb || size < sizeof(*h) || h->cgid != t->cgroup_id)
		return 0;
	if (decode(t, data, size, &ev)) {
		t->cb(&ev, t->ctx);
		t->delivered++;
	}
	return 0;
}

int warden_telemetry_drain(struct warden_telemetry *t,
                           void (*cb)(const struct warden_tel_event *ev, void *ctx), void *ctx,
                           struct warden_error **err)
{
	/* The programs stamp events with the boot clock, which does not jump; the offset to
	 * the wall clock is taken now, so it follows the wall clock's adjustments. */
	t->boot_to_real = boot_to_realtime();
	t->cb = cb;
	t->ctx = ctx;
	t->delivered = 0;
	int r = ring_buffer__consume(t->rb);
	t->cb = NULL;
	if (r < 0)
		return warden_error_set(err, -r, "telemetry: reading the ring buffer");
	return t->delivered;
}

/* ---- counts ----------------------------------------------------------------------------- */

struct live {
	int tasks_fd;
	struct wd_task *buf;
	struct warden_tel_counts *out;
};

static int add_live(int pidfd, void *ctx)
{
	struct live *l = ctx;
	/* A task that has added its counts to the sandbox's (WD_EXITED) is skipped: it is
	 * read after the sandbox's counters, so it is counted once or, for a task ending
	 * between the two reads, not in this reading. */
	if (bpf_map_lookup_elem(l->tasks_fd, &pidfd, l->buf) < 0 || l->buf->nr == WD_EXITED)
		return 0;
	for (int i = 0; i < WD_NR_MAX; i++)
		l->out->syscalls[i] += l->buf->syscalls[i];
	return 0;
}

int warden_telemetry_counts(const struct warden_telemetry *t, bool live,
                            struct warden_tel_counts *out, struct warden_error **err)
{
	size_t stride = t->stride;
	_cleanup_free_ struct wd_pcpu_counts *per = xcalloc((size_t)t->ncpus, stride);
	_cleanup_free_ struct wd_shared_counts *sh = xcalloc(1, sizeof(*sh));
	if (bpf_map_lookup_elem(t->set->pcpu_fd, &t->cgroup_id, per) < 0 ||
	    bpf_map_lookup_elem(t->set->shared_fd, &t->cgroup_id, sh) < 0)
		return warden_error_set(err, errno, "telemetry: reading the counters");
	memset(out, 0, sizeof(*out));
	for (int c = 0; c < t->ncpus; c++) {
		const struct wd_pcpu_counts *p = (const void *)((const char *)per + c * stride);
		for (int i = 0; i < WD_NR_MAX; i++)
			out->syscalls[i] += p->syscalls[i];
		out->forks += p->forks;
		out->execs += p->execs;
		out->events += p->events;
		out->drops += p->drops;
	}
	for (int l = 0; l < WD_LAYERS; l++)
		for (int i = 0; i < WD_NR_MAX; i++) {
			out->refused_layer[l][i] = sh->refused[l][i];
			out->refused[i] += sh->refused[l][i];
		}
	if (!live)
		return 0;
	_cleanup_free_ struct wd_task *buf = xcalloc(1, sizeof(*buf));
	struct live l = {.tasks_fd = t->set->tasks_fd, .buf = buf, .out = out};
	return each_thread(t->cgroup_fd, add_live, &l, err);
}

/* ---- detach ----------------------------------------------------------------------------- */

void warden_telemetry_detach(struct warden_telemetry *t)
{
	if (!t)
		return;
	unlink_maps(t);
	/* A dead-cgroup note for this id (the group went before we detached) is ours to
	 * clear. */
	(void)bpf_map_delete_elem(t->set->dead_fd, &t->cgroup_id);
	ring_buffer__free(t->rb);
	closep(&t->ring_fd);
	closep(&t->cgroup_fd);
	tel_slot_release(t->set, (uint32_t)t->slot, t->cgroup_id);
	free(t);
}
