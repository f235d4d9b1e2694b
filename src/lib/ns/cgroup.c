/* cgroup.c: one cgroup per sandbox, on whichever hierarchy holds the controllers.
 *
 * Sections: probing the host (v2, v1 or hybrid); where groups go; create; attach;
 * destroy.
 *
 * v1 (and hybrid hosts, whose controllers are on v1): a group per controller under the
 * caller's own group of that controller, so that the caller's limits still bound its
 * sandboxes; the v2 tree, where mounted, still gets a group for grouping and for the
 * cgroup id that telemetry keys on. v2: root puts sandboxes under /sys/fs/cgroup/warden
 * (the root group is exempt from the no-internal-processes rule); rootless uses a
 * delegated parent if it has one. Without any writable controller the sandbox still
 * runs, and each limit that could not be applied is reported.
 */
#define _GNU_SOURCE
#include "ns.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>

#define CGROOT "/sys/fs/cgroup"

enum ns_cgroup_mode ns_cgroup_host_mode(void)
{
	static int mode = -1;
	struct statfs sf;
	struct stat st;
	if (mode >= 0)
		return (enum ns_cgroup_mode)mode;
	if (statfs(CGROOT, &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC)
		mode = NS_CGROUP_V2;
	else if (stat(CGROOT "/memory", &st) == 0 || stat(CGROOT "/pids", &st) == 0)
		mode = NS_CGROUP_V1;
	else
		mode = NS_CGROUP_NONE;
	return (enum ns_cgroup_mode)mode;
}

/* The caller's group in the hierarchy whose controller list contains `ctrl` (v1), or the
 * unified one (ctrl NULL). */
static char *own_group(const char *ctrl)
{
	char buf[4096];
	if (read_file_at(AT_FDCWD, "/proc/self/cgroup", buf, sizeof(buf)) <= 0)
		return NULL;
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = '\0';
		const char *ctrls = c1 + 1;
		if (!ctrl) {
			if (!*ctrls)
				return xstrdup(c2 + 1);
			continue;
		}
		_cleanup_free_ char *list = xstrdup(ctrls);
		for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
		     tok = strtok_r(NULL, ",", &save))
			if (streq(tok, ctrl))
				return xstrdup(c2 + 1);
	}
	return NULL;
}

/* Groups whose supervisor was killed (SIGKILL leaves no chance to clean up) stay behind,
 * empty. Each start removes those older than a minute: rmdir only succeeds on an empty
 * group, and the age keeps it off groups another supervisor is still setting up. */
void ns_cgroup_sweep(const char *parent, time_t max_age)
{
	_cleanup_closedir_ DIR *d = opendir(parent);
	struct dirent *de;
	struct stat st;
	time_t now = time(NULL);
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    now - st.st_ctime > max_age)
			(void)unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
	}
}

/* Make <base>/warden/<id> (or <base>/warden-<id> where base is a delegated parent). */
static char *make_group(const char *base, const char *id, bool nested, int *ret_errno)
{
	_cleanup_free_ char *parent = xasprintf("%s%swarden", base, streq(base, "/") ? "" : "/");
	char *path;
	if (nested) {
		if (mkdir(parent, 0755) < 0 && errno != EEXIST) {
			*ret_errno = errno;
			return NULL;
		}
		ns_cgroup_sweep(parent, 60);
		path = xasprintf("%s/%s", parent, id);
	} else {
		path = xasprintf("%s-%s", parent, id);
	}
	if (mkdir(path, 0755) < 0) {
		*ret_errno = errno;
		free(path);
		return NULL;
	}
	return path;
}

static int limits_v1(const char *id, const struct warden_plan *plan, struct ns_cgroup *cg,
                     struct warden_error **err)
{
	const struct warden_policy *p = plan->policy;
	const bool wanted[NS_CGROUP_V1_CONTROLLERS] = {p->memory != 0, p->pids != 0,
	                                               p->cpus_milli != 0};
	for (int i = 0; i < NS_CGROUP_V1_CONTROLLERS; i++) {
		const char *name = ns_cgroup_v1_names[i];
		if (!wanted[i])
			continue;
		_cleanup_free_ char *own = own_group(name);
		_cleanup_free_ char *base = xasprintf(CGROOT "/%s%s", name, own ? own : "/");
		int e = 0;
		cg->v1_paths[i] = make_group(base, id, true, &e);
		if (!cg->v1_paths[i]) {
			if (plan->rootless) {
				strv_push_take(&cg->warnings,
				               xasprintf("%s limit not applied: no writable cgroup "
				                         "v1 %s controller for this user (%s)%s",
				                         name, name, strerror(e),
				                         i == 1 ? "; RLIMIT_NPROC still bounds the "
				                                  "sandbox user's processes"
				                                : ""));
				continue;
			}
			return warden_error_set(err, e, "cgroup %s", base);
		}
		_cleanup_close_ int dfd = open(cg->v1_paths[i], O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0 || ns_cgroup_v1_limits(i, dfd, p, err) < 0)
			return warden_error_wrap(err, "cgroup %s", cg->v1_paths[i]);
	}
	return 0;
}

/* The v2 group: limits on a pure v2 host, grouping only on a hybrid one. */
static int group_v2(const char *id, const struct warden_plan *plan, bool limits,
                    struct ns_cgroup *cg, struct warden_error **err)
{
	struct statfs sf;
	const char *root = limits ? CGROOT : CGROOT "/unified";
	if (statfs(root, &sf) < 0 || sf.f_type != CGROUP2_SUPER_MAGIC)
		return 0; /* hybrid host without a unified mount: no grouping */
	_cleanup_free_ char *own = own_group(NULL);
	_cleanup_free_ char *base = NULL;
	bool nested = !plan->rootless;
	if (plan->rootless) {
		/* A delegated subtree: the parent of our own group, if it is ours to write. */
		char *slash = own ? strrchr(own, '/') : NULL;
		if (slash)
			*slash = '\0';
		base = xasprintf("%s%s", root, own && *own ? own : "");
	} else {
		base = xstrdup(root);
		if (limits) {
			/* Enable the controllers down to /sys/fs/cgroup/warden. */
			(void)write_file_at(AT_FDCWD, CGROOT "/cgroup.subtree_control",
			                    "+memory +pids +cpu");
			(void)mkdir(CGROOT "/warden", 0755);
			(void)write_file_at(AT_FDCWD, CGROOT "/warden/cgroup.subtree_control",
			                    "+memory +pids +cpu");
		}
	}
	int e = 0;
	cg->v2_path = make_group(base, id, nested, &e);
	if (!cg->v2_path) {
		if (!limits)
			return 0;
		if (plan->rootless) {
			strv_push_take(&cg->warnings,
			               xasprintf("memory, pids and cpu limits not applied: no "
			                         "delegated cgroup v2 subtree for this user (%s)",
			                         strerror(e)));
			return 0;
		}
		return warden_error_set(err, e, "cgroup %s", base);
	}
	cg->v2_fd = open(cg->v2_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cg->v2_fd < 0)
		return warden_error_set(err, errno, "cgroup %s", cg->v2_path);
	if (!limits)
		return 0;
	_cleanup_error_ struct warden_error *e2 = NULL;
	if (ns_cgroup_v2_limits(cg->v2_fd, plan->policy, &e2) < 0) {
		if (!plan->rootless) {
			*err = TAKE_PTR(e2);
			return warden_error_wrap(err, "cgroup %s", cg->v2_path);
		}
		strv_push_take(&cg->warnings,
		               xasprintf("some limits not applied: %s", warden_error_text(e2)));
	}
	return 0;
}

/* Granted devices: the device cgroup on every hierarchy that has one here (devcgroup.c
 * says why). Without root neither can be written: the grant then rests on the mount table
 * alone, and the user is told. */
static int devices_cgroup(const char *id, const struct warden_plan *plan, struct ns_cgroup *cg,
                          struct warden_error **err)
{
	if (plan->rootless) {
		strv_push(&cg->warnings,
		          "devices: no device cgroup without root: granted nodes are reachable "
		          "only at their paths, and Landlock refuses writing to those granted "
		          "without w, but the device numbers themselves are not restricted");
		return 0;
	}
	_cleanup_free_ char *own = own_group("devices");
	if (own) {
		_cleanup_free_ char *base = xasprintf(CGROOT "/devices%s", own);
		int e = 0;
		cg->v1_devices = make_group(base, id, true, &e);
		if (!cg->v1_devices)
			return warden_error_set(err, e, "cgroup %s", base);
		_cleanup_close_ int dfd = open(cg->v1_devices, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0 || ns_devcgroup_v1(dfd, plan, err) < 0)
			return warden_error_wrap(err, "cgroup %s", cg->v1_devices);
	}
	if (cg->v2_path && ns_devcgroup_v2(cg->v2_path, plan, err) < 0)
		return -1;
	if (!own && !cg->v2_path)
		return warden_error_set(err, ENOTSUP,
		                        "devices: no device cgroup on this host (neither a v1 "
		                        "devices controller nor a cgroup v2 group): a grant "
		                        "could not be enforced");
	return 0;
}

int ns_cgroup_create(const char *id, const struct warden_plan *plan, struct ns_cgroup *cg,
                     struct warden_error **err)
{
	memset(cg, 0, sizeof(*cg));
	cg->v2_fd = -1;
	cg->mode = ns_cgroup_host_mode();
	int r = 0;
	switch (cg->mode) {
	case NS_CGROUP_V1:
		r = limits_v1(id, plan, cg, err);
		if (r == 0)
			r = group_v2(id, plan, false, cg, err);
		break;
	case NS_CGROUP_V2:
		r = group_v2(id, plan, true, cg, err);
		break;
	default:
		strv_push(&cg->warnings, "memory, pids and cpu limits not applied: no cgroup "
		                         "file system is mounted");
		break;
	}
	if (r == 0 && plan->n_devices)
		r = devices_cgroup(id, plan, cg, err);
	if (r < 0)
		ns_cgroup_destroy(cg);
	return r;
}

int ns_cgroup_attach(struct ns_cgroup *cg, pid_t pid, struct warden_error **err)
{
	char buf[24];
	const char *paths[NS_CGROUP_V1_CONTROLLERS + 2];
	snprintf(buf, sizeof(buf), "%d", (int)pid);
	memcpy(paths, cg->v1_paths, sizeof(cg->v1_paths));
	paths[NS_CGROUP_V1_CONTROLLERS] = cg->v1_devices;
	paths[NS_CGROUP_V1_CONTROLLERS + 1] = cg->v2_path;
	/* Back to back: the first write waits for an RCU grace period, the others reuse it. */
	for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
		if (!paths[i])
			continue;
		_cleanup_free_ char *procs = xasprintf("%s/cgroup.procs", paths[i]);
		int r = write_file_at(AT_FDCWD, procs, buf);
		if (r < 0)
			return warden_error_set(err, -r, "joining %s", paths[i]);
	}
	return 0;
}

/* ---- what the sandbox uses ----------------------------------------------------------- */

static bool read_u64(const char *dir, const char *file, uint64_t *ret)
{
	char path[512], buf[64];
	if (!dir)
		return false;
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (read_file_at(AT_FDCWD, path, buf, sizeof(buf)) <= 0)
		return false;
	char *end;
	errno = 0;
	*ret = strtoull(buf, &end, 10);
	return errno == 0 && end != buf;
}

/* A "key value" line of a flat-keyed file such as cpu.stat. */
static bool read_keyed(const char *dir, const char *file, const char *key, uint64_t *ret)
{
	char path[512], buf[1024];
	if (!dir)
		return false;
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (read_file_at(AT_FDCWD, path, buf, sizeof(buf)) <= 0)
		return false;
	size_t klen = strlen(key);
	for (char *line = buf; line && *line;
	     line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
		if (!strncmp(line, key, klen) && line[klen] == ' ') {
			*ret = strtoull(line + klen + 1, NULL, 10);
			return true;
		}
	return false;
}

/* "some avg10=1.23 ..." of a pressure file. */
static bool read_psi(const char *dir, const char *file, double *ret)
{
	char path[512], buf[256];
	if (!dir)
		return false;
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (read_file_at(AT_FDCWD, path, buf, sizeof(buf)) <= 0)
		return false;
	const char *p = strstr(buf, "some avg10=");
	if (!p)
		return false;
	*ret = strtod(p + strlen("some avg10="), NULL);
	return true;
}

static uint64_t count_lines(const char *dir, const char *file, bool *ok)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	_cleanup_fclose_ FILE *f = dir ? fopen(path, "re") : NULL;
	uint64_t n = 0;
	int c;
	*ok = f != NULL;
	while (f && (c = fgetc(f)) != EOF)
		n += c == '\n';
	return n;
}

void ns_cgroup_sample(const struct ns_cgroup *cg, struct warden_sample *s)
{
	const char *mem = cg->mode == NS_CGROUP_V1 ? cg->v1_paths[0] : cg->v2_path;
	const char *pids = cg->mode == NS_CGROUP_V1 ? cg->v1_paths[1] : cg->v2_path;
	memset(s, 0, sizeof(*s));
	if (cg->mode == NS_CGROUP_V1)
		s->has_memory = read_u64(mem, "memory.usage_in_bytes", &s->memory_current) &&
		                read_u64(mem, "memory.max_usage_in_bytes", &s->memory_peak);
	else
		s->has_memory = read_u64(mem, "memory.current", &s->memory_current) &&
		                read_u64(mem, "memory.peak", &s->memory_peak);
	s->has_pids = read_u64(pids, "pids.current", &s->pids);
	if (!s->has_pids && cg->v2_path)
		s->pids = count_lines(cg->v2_path, "cgroup.threads", &s->has_pids);
	/* cpu.stat's usage and the pressure files exist in every v2 group, controllers or
	 * not: the v2 group of a hybrid host has them too. */
	s->has_cpu = read_keyed(cg->v2_path, "cpu.stat", "usage_usec", &s->cpu_usec);
	s->has_psi = read_psi(cg->v2_path, "cpu.pressure", &s->psi_cpu) &&
	             read_psi(cg->v2_path, "memory.pressure", &s->psi_memory) &&
	             read_psi(cg->v2_path, "io.pressure", &s->psi_io);
}

bool ns_cgroup_can_freeze(const struct ns_cgroup *cg)
{
	char path[512];
	if (!cg->v2_path)
		return false;
	snprintf(path, sizeof(path), "%s/cgroup.freeze", cg->v2_path);
	return access(path, W_OK) == 0;
}

int ns_cgroup_freeze(const struct ns_cgroup *cg, bool frozen, struct warden_error **err)
{
	char path[512], buf[256];
	if (!ns_cgroup_can_freeze(cg))
		return warden_error_set(err, ENOTSUP,
		                        "freezing: no cgroup v2 freezer for this "
		                        "sandbox");
	snprintf(path, sizeof(path), "%s/cgroup.freeze", cg->v2_path);
	int r = write_file_at(AT_FDCWD, path, frozen ? "1" : "0");
	if (r < 0)
		return warden_error_set(err, -r, "writing %s", path);
	/* The freezer works asynchronously: report done only when cgroup.events says so
	 * (bounded: a task stuck in the kernel can delay it). */
	snprintf(path, sizeof(path), "%s/cgroup.events", cg->v2_path);
	for (int i = 0; i < 1000; i++) {
		if (read_file_at(AT_FDCWD, path, buf, sizeof(buf)) > 0 &&
		    strstr(buf, frozen ? "frozen 1" : "frozen 0"))
			return 0;
		usleep(1000);
	}
	return warden_error_set(err, ETIMEDOUT, "%s the sandbox", frozen ? "freezing" : "thawing");
}

int ns_cgroup_kill(const struct ns_cgroup *cg)
{
	char path[512];
	if (!cg->v2_path)
		return -ENOTSUP;
	snprintf(path, sizeof(path), "%s/cgroup.kill", cg->v2_path);
	return write_file_at(AT_FDCWD, path, "1");
}

int ns_cgroup_id(const char *path, uint64_t *ret_id)
{
	/* A cgroup v2 directory's file handle is its kernfs id, which is what
	 * bpf_get_current_cgroup_id() returns for the tasks in it. */
	struct {
		struct file_handle fh;
		uint64_t id;
	} h = {.fh.handle_bytes = sizeof(uint64_t)};
	int mount_id;
	if (name_to_handle_at(AT_FDCWD, path, &h.fh, &mount_id, 0) < 0)
		return -errno;
	if (h.fh.handle_bytes != sizeof(uint64_t))
		return -EINVAL;
	memcpy(ret_id, h.fh.f_handle, sizeof(*ret_id));
	return 0;
}

void ns_cgroup_destroy(struct ns_cgroup *cg)
{
	for (int i = 0; i < NS_CGROUP_V1_CONTROLLERS; i++) {
		if (cg->v1_paths[i])
			(void)rmdir(cg->v1_paths[i]);
		free(cg->v1_paths[i]);
		cg->v1_paths[i] = NULL;
	}
	if (cg->v1_devices)
		(void)rmdir(cg->v1_devices);
	free(cg->v1_devices);
	cg->v1_devices = NULL;
	if (cg->v2_fd >= 0)
		close(cg->v2_fd);
	cg->v2_fd = -1;
	if (cg->v2_path)
		(void)rmdir(cg->v2_path);
	free(cg->v2_path);
	cg->v2_path = NULL;
	strv_clear(&cg->warnings);
}
