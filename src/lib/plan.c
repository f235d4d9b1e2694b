/* plan.c: warden_policy -> warden_plan (see plan.h).
 *
 * Sections: identity; binds (host paths resolved and checked once, here, so that a
 * missing volume is a clear error before anything is created); generated /etc files;
 * the environment; Landlock and limit checks; the entry point.
 */
#define _GNU_SOURCE
#include "plan.h"
#include "ns/ns.h"
#include "sync.h"
#include "net/egress.h"
#include "net/gateway.h"

#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>

/* ---- binds ------------------------------------------------------------------------- */

static void push_bind(struct warden_plan *plan, struct warden_bind *b)
{
	plan->binds = xrealloc(plan->binds, (plan->n_binds + 1) * sizeof(*b));
	plan->binds[plan->n_binds++] = *b;
}

static int add_read_only(struct warden_plan *plan, const struct warden_mount *m,
                         struct warden_error **err)
{
	struct stat st;
	struct warden_bind b = {0};
	if (lstat(m->host, &st) < 0) {
		if (errno == ENOENT && m->optional)
			return 0;
		return warden_error_set(err, errno, "filesystem.read_only: %s", m->host);
	}
	if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlink(m->host, target, sizeof(target) - 1);
		if (n < 0)
			return warden_error_set(err, errno, "filesystem.read_only: %s", m->host);
		target[n] = '\0';
		b.symlink = xstrdup(target);
	} else if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
		return warden_error_set(err, 0,
		                        "filesystem.read_only: %s: only directories and regular "
		                        "files can be made visible (devices go through devices:)",
		                        m->host);
	}
	b.host = xstrdup(m->host);
	b.path = xstrdup(m->path);
	b.is_dir = S_ISDIR(st.st_mode);
	push_bind(plan, &b);
	return 0;
}

void warden_plan_add_host_file(struct warden_plan *plan, const char *path)
{
	for (size_t i = 0; i < plan->n_binds; i++) {
		const struct warden_bind *b = &plan->binds[i];
		size_t n = strlen(b->path);
		if (streq(b->path, path) ||
		    (b->is_dir && !b->volume && !strncmp(b->path, path, n) && path[n] == '/' &&
		     streq(b->host, b->path)))
			return;
	}
	struct warden_bind b = {.host = xstrdup(path), .path = xstrdup(path)};
	push_bind(plan, &b);
}

static size_t depth(const char *path)
{
	size_t n = 0;
	for (; *path; path++)
		n += *path == '/';
	return n;
}

static int cmp_volume_depth(const void *a, const void *b)
{
	const struct warden_mount *x = a, *y = b;
	size_t dx = depth(x->path), dy = depth(y->path);
	if (dx != dy)
		return dx < dy ? -1 : 1;
	return strcmp(x->path, y->path);
}

static int add_volumes(struct warden_plan *plan, struct warden_error **err)
{
	const struct warden_mounts *v = &plan->policy->volumes;
	if (v->n > SYNC_MAX_FDS - 2)
		return warden_error_set(err, 0, "at most %d volumes", SYNC_MAX_FDS - 2);
	/* Parents before children, so that a volume inside another is not hidden by it. */
	struct warden_mount *sorted = xmalloc((v->n ? v->n : 1) * sizeof(*sorted));
	if (v->n)
		memcpy(sorted, v->v, v->n * sizeof(*sorted));
	qsort(sorted, v->n, sizeof(*sorted), cmp_volume_depth);
	int r = 0;
	for (size_t i = 0; r == 0 && i < v->n; i++) {
		const struct warden_mount *m = &sorted[i];
		struct stat st;
		char *real = realpath(m->host, NULL);
		if (i > 0 && streq(sorted[i - 1].path, m->path))
			r = warden_error_set(err, 0, "volume %s: two volumes at the same path",
			                     m->path);
		else if (!real)
			r = warden_error_set(err, 0, "volume %s: %s", m->host,
			                     errno == ENOENT ? "no such directory"
			                                     : strerror(errno));
		else if (stat(real, &st) < 0)
			r = warden_error_set(err, errno, "volume %s", m->host);
		else if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
			r = warden_error_set(err, 0, "volume %s: not a directory or regular file",
			                     m->host);
		if (r < 0) {
			free(real);
			break;
		}
		struct warden_bind b = {.host = real,
		                        .path = xstrdup(m->path),
		                        .rw = m->rw,
		                        .is_dir = S_ISDIR(st.st_mode),
		                        .volume = true};
		push_bind(plan, &b);
	}
	free(sorted);
	return r;
}

/* ---- generated /etc files ---------------------------------------------------------- */

/* Lines of an image's passwd/group file that do not clash with the sandbox user. The
 * image is untrusted: it is read inside its own root (RESOLVE_IN_ROOT), bounded in size. */
static char *image_file(const char *rootfs, const char *path)
{
	_cleanup_close_ int root = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY,
	                       .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
	if (root < 0)
		return NULL;
	_cleanup_close_ int fd = (int)syscall(SYS_openat2, root, path, &how, sizeof(how));
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (1 << 20))
		return NULL;
	char *buf = xcalloc(1, (size_t)st.st_size + 1);
	if (read(fd, buf, (size_t)st.st_size) != st.st_size) {
		free(buf);
		return NULL;
	}
	return buf;
}

static char *merge_db(const char *base, const char *name, unsigned id, const char *line)
{
	struct strv out = {0};
	size_t len = strlen(line) + 1;
	if (base) {
		_cleanup_free_ char *copy = xstrdup(base);
		for (char *save = NULL, *l = strtok_r(copy, "\n", &save); l;
		     l = strtok_r(NULL, "\n", &save)) {
			_cleanup_free_ char *idpart = NULL;
			const char *c1 = strchr(l, ':');
			const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
			size_t nlen = c1 ? (size_t)(c1 - l) : strlen(l);
			if (c2)
				idpart = strndup(c2 + 1, strcspn(c2 + 1, ":"));
			if ((nlen == strlen(name) && !strncmp(l, name, nlen)) ||
			    (idpart && (unsigned)strtoul(idpart, NULL, 10) == id))
				continue;
			strv_push(&out, l);
			len += strlen(l) + 1;
		}
	}
	char *res = xcalloc(1, len + 1);
	for (size_t i = 0; i < out.n; i++) {
		strcat(res, out.v[i]);
		strcat(res, "\n");
	}
	strcat(res, line);
	strv_clear(&out);
	return res;
}

static void generate_etc(struct warden_plan *plan)
{
	const struct warden_policy *p = plan->policy;
	const char *name = p->uid == 0 ? "root" : "agent";
	_cleanup_free_ char *pw_line =
	    xasprintf("%s:x:%u:%u:%s:%s:/bin/sh\n", name, (unsigned)p->uid, (unsigned)p->gid, name,
	              plan->home);
	_cleanup_free_ char *gr_line = xasprintf("%s:x:%u:\n", name, (unsigned)p->gid);
	if (p->rootfs) {
		_cleanup_free_ char *pw = image_file(p->rootfs, "etc/passwd");
		_cleanup_free_ char *gr = image_file(p->rootfs, "etc/group");
		plan->passwd = merge_db(pw, name, p->uid, pw_line);
		plan->group = merge_db(gr, name, p->gid, gr_line);
	} else {
		/* A minimal database: the host's user names are none of the sandbox's business. */
		plan->passwd =
		    merge_db("root:x:0:0:root:/root:/bin/sh\n"
		             "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		             name, p->uid, pw_line);
		plan->group =
		    merge_db("root:x:0:\ntty:x:5:\nnogroup:x:65534:\n", name, p->gid, gr_line);
	}
	plan->hosts = xasprintf("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost "
	                        "ip6-loopback\n127.0.1.1\t%s\n",
	                        plan->hostname);
}

/* ---- environment ------------------------------------------------------------------- */

static void env_set(struct strv *env, const char *entry)
{
	size_t nlen = strcspn(entry, "=");
	for (size_t i = 0; i < env->n; i++)
		if (!strncmp(env->v[i], entry, nlen) && env->v[i][nlen] == '=') {
			free(env->v[i]);
			env->v[i] = xstrdup(entry);
			return;
		}
	strv_push(env, entry);
}

static const char *env_get(char **env, const char *name)
{
	size_t nlen = strlen(name);
	for (; env && *env; env++)
		if (!strncmp(*env, name, nlen) && (*env)[nlen] == '=')
			return *env + nlen + 1;
	return NULL;
}

static char **build_env(const struct warden_plan *plan, char **caller_env)
{
	const struct warden_policy *p = plan->policy;
	const char *user = p->uid == 0 ? "root" : "agent";
	struct strv env = {0};
	strv_push(&env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	strv_push_take(&env, xasprintf("HOME=%s", plan->home));
	strv_push_take(&env, xasprintf("USER=%s", user));
	strv_push_take(&env, xasprintf("LOGNAME=%s", user));
	strv_push(&env, "SHELL=/bin/sh");
	strv_push(&env, "TMPDIR=/tmp");
	for (size_t i = 0; i < p->env.n; i++)
		env_set(&env, p->env.v[i]);
	for (size_t i = 0; i < p->env_pass.n; i++) {
		const char *v = env_get(caller_env, p->env_pass.v[i]);
		if (v) {
			_cleanup_free_ char *e = xasprintf("%s=%s", p->env_pass.v[i], v);
			env_set(&env, e);
		}
	}
	return env.v;
}

void warden_plan_setenv(struct warden_plan *plan, const char *entry)
{
	struct strv env = {.v = plan->envp};
	while (env.v && env.v[env.n])
		env.n++;
	env.cap = env.n + 1; /* at least: the array is NULL-terminated */
	env_set(&env, entry);
	plan->envp = env.v;
}

/* ---- network ----------------------------------------------------------------------- */

/* Landlock must let the sandbox reach warden's own listeners on its loopback. */
static void ports_add(struct warden_ports *ports, uint16_t port)
{
	if (ports->any)
		return;
	for (size_t i = 0; i < ports->n; i++)
		if (ports->v[i] == port)
			return;
	ports->v[ports->n++] = port;
}

/* Proxy mode: clients find the proxies through the usual variables (both cases: curl
 * reads only the lower-case http_proxy, most others either); a policy that sets one
 * itself keeps its value. */
static void enable_proxy(struct warden_plan *plan)
{
	struct warden_policy *p = plan->policy;
	static const char *const vars[][2] = {{"HTTP_PROXY", "http://127.0.0.1:3128"},
	                                      {"HTTPS_PROXY", "http://127.0.0.1:3128"},
	                                      {"ALL_PROXY", "socks5h://127.0.0.1:1080"},
	                                      {"NO_PROXY", "localhost,127.0.0.1,::1"}};
	for (size_t i = 0; i < ARRAY_SIZE(vars); i++) {
		_cleanup_free_ char *lower = xstrdup(vars[i][0]);
		for (char *c = lower; *c; c++)
			*c = (char)tolower(*c);
		const char *names[] = {vars[i][0], lower};
		for (size_t j = 0; j < 2; j++) {
			if (env_get(p->env.v, names[j]))
				continue;
			_cleanup_free_ char *e = xasprintf("%s=%s", names[j], vars[i][1]);
			warden_plan_setenv(plan, e);
		}
	}
	plan->resolv_conf = xstrdup("nameserver 127.0.0.1\noptions edns0\n");
	struct stat st;
	/* A guest's root has a writable layer, where the file replaces whatever is there. */
	if (!p->rootfs && p->isolation != WARDEN_ISOLATION_VM &&
	    lstat("/etc/resolv.conf", &st) == 0 && !S_ISREG(st.st_mode))
		strv_push(&plan->warnings,
		          "network.mode: proxy: the host's /etc/resolv.conf is not a regular file, "
		          "so it cannot be replaced inside: programs that resolve names before "
		          "connecting fail; those using the proxy variables work");
	ports_add(&p->tcp_connect, WARDEN_PROXY_HTTP_PORT);
	ports_add(&p->tcp_connect, WARDEN_PROXY_SOCKS_PORT);
}

void warden_plan_enable_gateway(struct warden_plan *plan, const char *token)
{
	static const char *const vars[] = {"OPENAI_BASE_URL=http://127.0.0.1:4141/v1",
	                                   "ANTHROPIC_BASE_URL=http://127.0.0.1:4141"};
	plan->gateway = true;
	for (size_t i = 0; i < ARRAY_SIZE(vars); i++)
		warden_plan_setenv(plan, vars[i]);
	_cleanup_free_ char *o = xasprintf("OPENAI_API_KEY=%s", token);
	_cleanup_free_ char *a = xasprintf("ANTHROPIC_API_KEY=%s", token);
	warden_plan_setenv(plan, o);
	warden_plan_setenv(plan, a);
	ports_add(&plan->policy->tcp_connect, WARDEN_GATEWAY_PORT);
}

/* ---- checks ------------------------------------------------------------------------ */

static int check_landlock(struct warden_plan *plan, struct warden_error **err)
{
	enum warden_landlock_mode mode = plan->policy->landlock;
	int abi = ns_landlock_abi();
	if (mode == WARDEN_LANDLOCK_OFF) {
		strv_push(&plan->warnings, "security.landlock: off: no Landlock rules applied");
		return 0;
	}
	if (mode == WARDEN_LANDLOCK_REQUIRED && abi < 6)
		return warden_error_set(err, 0,
		                        "security.landlock: required, but this kernel offers "
		                        "Landlock ABI %d (6 or later needed)",
		                        abi);
	plan->landlock_abi = abi;
	if (abi == 0)
		strv_push(&plan->warnings, "Landlock is not available on this kernel: file "
		                           "system, TCP and scoping rules not applied");
	else if (abi < 4)
		strv_push_take(&plan->warnings,
		               xasprintf("Landlock ABI %d: TCP bind/connect rules and scoping not "
		                         "applied (need ABI 4 and 6)",
		                         abi));
	else if (abi < 6)
		strv_push_take(&plan->warnings,
		               xasprintf("Landlock ABI %d: abstract unix socket and signal scoping "
		                         "not applied (need ABI 6)%s",
		                         abi, abi < 5 ? "; device ioctls not restricted" : ""));
	return 0;
}

static void check_rlimit(struct warden_plan *plan, int resource, const char *key, uint64_t want)
{
	struct rlimit rl;
	if (want && getrlimit(resource, &rl) == 0 && rl.rlim_max != RLIM_INFINITY &&
	    want > rl.rlim_max)
		strv_push_take(&plan->warnings,
		               xasprintf("%s: %llu is above this host's hard limit; capped to %llu",
		                         key, (unsigned long long)want,
		                         (unsigned long long)rl.rlim_max));
}

/* ---- entry point ------------------------------------------------------------------- */

struct warden_plan *warden_plan_compile(struct warden_policy *policy, char **caller_env,
                                        struct warden_error **err)
{
	struct warden_plan *plan = xcalloc(1, sizeof(*plan));
	plan->policy = policy;
	const struct warden_policy *p = policy;

	plan->caller_uid = getuid();
	plan->caller_gid = getgid();
	plan->rootless = geteuid() != 0;
	plan->host_base = WARDEN_HOST_ID_BASE;
	plan->host_count = WARDEN_HOST_ID_COUNT;
	plan->home = xstrdup(p->uid == 0 ? "/root" : "/home/agent");
	plan->workdir = xstrdup(p->workdir ? p->workdir : plan->home);
	plan->hostname = xstrdup("warden");

	int r = 0;
	if (!p->rootfs) {
		for (size_t i = 0; r == 0 && i < p->read_only.n; i++)
			r = add_read_only(plan, &p->read_only.v[i], err);
	} else {
		struct stat st;
		if (stat(p->rootfs, &st) < 0)
			r = warden_error_set(err, errno, "rootfs %s", p->rootfs);
		else if (!S_ISDIR(st.st_mode))
			r = warden_error_set(err, 0, "rootfs %s: not a directory", p->rootfs);
	}
	if (r == 0)
		r = add_volumes(plan, err);
	if (r == 0)
		r = warden_plan_devices(plan, err);
	if (r == 0)
		r = ns_seccomp_compile(p, &plan->bpf, &plan->bpf_len, err);
	if (r == 0)
		r = check_landlock(plan, err);
	if (r < 0) {
		warden_plan_free(plan);
		return NULL;
	}
	generate_etc(plan);
	plan->envp = build_env(plan, caller_env);
	if (p->net_mode == WARDEN_NET_PROXY)
		enable_proxy(plan);
	else if (p->allow.n || p->deny.n)
		strv_push(&plan->warnings, "network.allow and network.deny apply only with "
		                           "network.mode: proxy; ignored");
	if (p->net_mode == WARDEN_NET_HOST)
		strv_push(&plan->warnings,
		          p->tcp_connect.any ? "network.mode: host: the sandbox shares the host's "
		                               "network namespace"
		                             : "network.mode: host: the sandbox shares the host's "
		                               "network namespace (TCP only to the ports in "
		                               "network.tcp_connect; \"any\" opens all)");
	check_rlimit(plan, RLIMIT_NOFILE, "limits.nofile", p->nofile);
	check_rlimit(plan, RLIMIT_NPROC, "limits.pids (RLIMIT_NPROC)", p->pids);
	return plan;
}

void warden_plan_free(struct warden_plan *plan)
{
	if (!plan)
		return;
	warden_policy_free(plan->policy);
	free(plan->home);
	free(plan->workdir);
	free(plan->hostname);
	for (size_t i = 0; i < plan->n_binds; i++) {
		free(plan->binds[i].host);
		free(plan->binds[i].path);
		free(plan->binds[i].symlink);
	}
	free(plan->binds);
	free(plan->passwd);
	free(plan->group);
	free(plan->hosts);
	free(plan->resolv_conf);
	strv_free(plan->envp);
	free(plan->bpf);
	warden_plan_devices_free(plan);
	strv_clear(&plan->warnings);
	free(plan);
}
