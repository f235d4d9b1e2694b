/* assets.c: what a guest boots from: the kernel setup installed, warden's initramfs, the
 * read-only root image, and the accelerator.
 *
 * Sections: directories; running a tool; the initramfs; the root image (key, staging,
 * mke2fs); the accelerator probe; the public entry.
 *
 * Images are cached in the cache directory under a key of what they are built from, so
 * a policy's image is built once; a new file appears by rename, so concurrent starts see
 * a whole image or none. An image's name also carries what it is of (the host's
 * directories of a policy, or a --rootfs tree): a new image of the same replaces the
 * old, which would otherwise stay on the disk (one of the host's /usr is gigabytes). A
 * build holds a lock on its directory; one whose builder was killed is removed by the
 * next build.
 */
#define _GNU_SOURCE
#include "vm.h"
#include "../util.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <ftw.h>
#include <pthread.h>
#include <openssl/evp.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

/* ---- directories ------------------------------------------------------------------- */

const char *vm_kernel_dir(void)
{
	const char *d = getenv("WARDEN_VM_DIR");
	return d && *d ? d : "/var/cache/warden/vm";
}

static int mkdir_parents(const char *path, struct warden_error **err)
{
	_cleanup_free_ char *buf = xstrdup(path);
	for (char *p = buf + 1;; p++) {
		if (*p == '/' || !*p) {
			char c = *p;
			*p = '\0';
			if (mkdir(buf, 0755) < 0 && errno != EEXIST)
				return warden_error_set(err, errno, "creating %s", buf);
			*p = c;
			if (!c)
				break;
		}
	}
	return 0;
}

char *vm_cache_dir(struct warden_error **err)
{
	const char *env = getenv("WARDEN_VM_CACHE"), *home = getenv("HOME");
	char *dir;
	if (env && *env)
		dir = xstrdup(env);
	else if (geteuid() == 0)
		dir = xasprintf("%s/images", vm_kernel_dir());
	else if (home && *home == '/')
		dir = xasprintf("%s/.cache/warden/vm", home);
	else {
		warden_error_set(err, 0, "no cache directory: set HOME or WARDEN_VM_CACHE");
		return NULL;
	}
	if (mkdir_parents(dir, err) < 0) {
		free(dir);
		return NULL;
	}
	return dir;
}

/* ---- running a tool ---------------------------------------------------------------- */

/* Run argv with stdout and stderr into a buffer; in_ns: in a private mount namespace
 * with `binds` (pairs of source, target) bound read-only first. */
static int run_tool(char *const *argv, char *const *binds, struct warden_error **err)
{
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return warden_error_set(err, errno, "pipe");
	pid_t pid = fork();
	if (pid < 0)
		return warden_error_set(err, errno, "fork");
	if (pid == 0) {
		dup2(pipefd[1], 1);
		dup2(pipefd[1], 2);
		if (binds && (unshare(CLONE_NEWNS) < 0 ||
		              mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0))
			_exit(126);
		for (size_t i = 0; binds && binds[i]; i += 2)
			if (mount(binds[i], binds[i + 1], NULL, MS_BIND | MS_REC, NULL) < 0) {
				dprintf(2, "binding %s: %s\n", binds[i], strerror(errno));
				_exit(126);
			}
		execvp(argv[0], argv);
		dprintf(2, "%s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(pipefd[1]);
	char out[2048];
	size_t have = 0;
	ssize_t n;
	while ((n = read(pipefd[0], out + have, sizeof(out) - 1 - have)) > 0)
		have += (size_t)n;
	close(pipefd[0]);
	out[have] = '\0';
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	out[strcspn(out, "\n")] = '\0';
	return warden_error_set(err, 0, "%s failed: %s", argv[0], have ? out : "no output");
}

/* ---- the initramfs ----------------------------------------------------------------- */

static void hex(const unsigned char *md, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static int read_all(const char *path, char **ret, size_t *ret_len, struct warden_error **err)
{
	return read_small_file(path, 256u << 20, "file", ret, ret_len, err);
}

/* Write len bytes to path through a temporary file and a rename. */
static int write_atomic(const char *path, const void *a, size_t na, const void *b, size_t nb,
                        struct warden_error **err)
{
	_cleanup_free_ char *tmp = xasprintf("%s.%d.tmp", path, getpid());
	_cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return warden_error_set(err, errno, "creating %s", tmp);
	if (write(fd, a, na) != (ssize_t)na || (nb && write(fd, b, nb) != (ssize_t)nb) ||
	    rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		return warden_error_set(err, e, "writing %s", path);
	}
	return 0;
}

/* The kernel unpacks concatenated cpio archives in order: warden's agent as /init, then
 * the modules setup picked from the kernel package. */
static int get_initrd(const char *cache, char **ret, struct warden_error **err)
{
	_cleanup_free_ char *modpath = xasprintf("%s/modules.cpio", vm_kernel_dir());
	_cleanup_free_ char *mods = NULL;
	size_t nmods;
	if (read_all(modpath, &mods, &nmods, err) < 0)
		return warden_error_wrap(err, "the guest's modules (run scripts/setup.sh as root)");
	unsigned char md[32];
	char key[17];
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	EVP_DigestUpdate(c, warden_guest_cpio, warden_guest_cpio_len);
	EVP_DigestUpdate(c, mods, nmods);
	EVP_DigestFinal_ex(c, md, NULL);
	EVP_MD_CTX_free(c);
	hex(md, 8, key);
	char *path = xasprintf("%s/initrd-%s.cpio", cache, key);
	if (access(path, R_OK) != 0 &&
	    write_atomic(path, warden_guest_cpio, warden_guest_cpio_len, mods, nmods, err) < 0) {
		free(path);
		return -1;
	}
	*ret = path;
	return 0;
}

/* ---- the root image ---------------------------------------------------------------- */

/* One walk over a tree (nftw has no context argument: this state is per call, under a
 * lock, since a daemon may start sandboxes from several threads). */
static struct {
	EVP_MD_CTX *md; /* non-NULL: hash every entry (a --rootfs tree) */
	uint64_t bytes, inodes;
	struct strv hidden; /* paths (relative to the image) left out of a host tree */
	const char *prefix; /* the tree's path inside the image */
	size_t base_len;    /* length of the host path of the tree */
} walk;
static pthread_mutex_t walk_lock = PTHREAD_MUTEX_INITIALIZER;

static int walk_entry(const char *path, const struct stat *st, int type, struct FTW *f)
{
	(void)f;
	walk.bytes += (uint64_t)st->st_blocks * 512;
	walk.inodes++;
	const char *rel = path + walk.base_len;
	if (walk.md) {
		char line[160];
		int n = snprintf(line, sizeof(line), "%o %u %u %lld %lld.%09ld", st->st_mode,
		                 st->st_uid, st->st_gid, (long long)st->st_size,
		                 (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
		EVP_DigestUpdate(walk.md, rel, strlen(rel) + 1);
		EVP_DigestUpdate(walk.md, line, (size_t)n + 1);
		if (type == FTW_SL) {
			char target[4096];
			ssize_t t = readlink(path, target, sizeof(target));
			if (t > 0)
				EVP_DigestUpdate(walk.md, target, (size_t)t);
		}
	} else if (type == FTW_F && !(st->st_mode & S_IROTH)) {
		/* The namespace backend's sandbox user reads the host's system directories
		 * as "others" (root mode maps it to an id of its own), so a file others
		 * cannot read (/etc/shadow, private keys) stays out of the image, which guest
		 * root could otherwise read. */
		strv_push_take(&walk.hidden, xasprintf("%s%s", walk.prefix, rel));
	}
	return 0;
}

static void walk_tree(const char *host, const char *prefix)
{
	walk.base_len = strlen(host);
	walk.prefix = prefix;
	(void)nftw(host, walk_entry, 64, FTW_PHYS | FTW_MOUNT);
}

/* What an image is built from, as a key: for --rootfs every entry's metadata (path,
 * mode, owner, size, mtime, link target); for the host's system directories the paths,
 * the identity and times of each top directory and dpkg's status file, which changes
 * with every package installed (a full walk of /usr would cost a second per start).
 * out: "SET-KEY", SET a hash of what the image is of (the tree's path, or the paths of
 * the host's directories), KEY of all the above. */
#define IMAGE_KEY_LEN 26

static void image_key(const struct warden_plan *plan, char out[IMAGE_KEY_LEN])
{
	unsigned char md[32], smd[32];
	struct stat st;
	EVP_MD_CTX *set = EVP_MD_CTX_new();
	EVP_DigestInit_ex(set, EVP_sha256(), NULL);
	walk.md = EVP_MD_CTX_new();
	EVP_DigestInit_ex(walk.md, EVP_sha256(), NULL);
	EVP_DigestUpdate(walk.md, "warden-image-1", 15);
	if (plan->policy->rootfs) {
		EVP_DigestUpdate(set, plan->policy->rootfs, strlen(plan->policy->rootfs) + 1);
		walk_tree(plan->policy->rootfs, "");
	} else {
		for (size_t i = 0; i < plan->n_binds; i++) {
			const struct warden_bind *b = &plan->binds[i];
			if (b->volume)
				continue;
			const char *from = b->symlink ? b->symlink : b->host;
			char line[256];
			memset(&st, 0, sizeof(st));
			if (!b->symlink)
				(void)stat(b->host, &st);
			int n = snprintf(line, sizeof(line), "%lu %lu %lld.%09ld %lld.%09ld",
			                 (unsigned long)st.st_dev, (unsigned long)st.st_ino,
			                 (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
			                 (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
			EVP_DigestUpdate(walk.md, b->path, strlen(b->path) + 1);
			EVP_DigestUpdate(walk.md, from, strlen(from) + 1);
			EVP_DigestUpdate(walk.md, line, (size_t)n + 1);
			EVP_DigestUpdate(set, b->path, strlen(b->path) + 1);
			EVP_DigestUpdate(set, from, strlen(from) + 1);
		}
		if (stat("/var/lib/dpkg/status", &st) == 0)
			EVP_DigestUpdate(walk.md, &st.st_mtim, sizeof(st.st_mtim));
	}
	EVP_DigestFinal_ex(walk.md, md, NULL);
	EVP_DigestFinal_ex(set, smd, NULL);
	EVP_MD_CTX_free(walk.md);
	EVP_MD_CTX_free(set);
	walk.md = NULL;
	hex(smd, 4, out);
	out[8] = '-';
	hex(md, 8, out + 9);
}

/* The host's system directories, assembled under one staging directory: symlinks as
 * they are, directories bound (in the tool's own mount namespace) onto empty ones. */
static int stage_host_dirs(const struct warden_plan *plan, const char *stage, struct strv *binds,
                           struct warden_error **err)
{
	for (size_t i = 0; i < plan->n_binds; i++) {
		const struct warden_bind *b = &plan->binds[i];
		if (b->volume)
			continue;
		_cleanup_free_ char *dst = xasprintf("%s%s", stage, b->path);
		_cleanup_free_ char *parent = xstrdup(dst);
		*strrchr(parent, '/') = '\0';
		if (mkdir_parents(parent, err) < 0)
			return -1;
		if (b->symlink) {
			if (symlink(b->symlink, dst) < 0)
				return warden_error_set(err, errno, "staging %s", b->path);
			continue;
		}
		if (b->is_dir ? mkdir(dst, 0755) < 0 && errno != EEXIST
		              : close(open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) < 0)
			return warden_error_set(err, errno, "staging %s", b->path);
		strv_push(binds, b->host);
		strv_push(binds, dst);
		walk_tree(b->host, b->path);
	}
	return 0;
}

/* Files left out of a host tree are removed from the image afterwards with debugfs. */
static int remove_hidden(const char *image, const char *dir, struct warden_error **err)
{
	if (!walk.hidden.n)
		return 0;
	_cleanup_free_ char *cmds = xasprintf("%s/debugfs.cmds", dir);
	_cleanup_fclose_ FILE *f = fopen(cmds, "we");
	if (!f)
		return warden_error_set(err, errno, "creating %s", cmds);
	for (size_t i = 0; i < walk.hidden.n; i++)
		if (!strpbrk(walk.hidden.v[i], "\"\n"))
			fprintf(f, "rm \"%s\"\n", walk.hidden.v[i]);
	if (fflush(f) != 0)
		return warden_error_set(err, errno, "writing %s", cmds);
	char *argv[] = {"debugfs", "-w", "-f", cmds, (char *)image, NULL};
	return run_tool(argv, NULL, err);
}

static int build_image(const struct warden_plan *plan, const char *path, const char *tmpdir,
                       struct warden_error **err)
{
	struct strv binds = {0};
	_cleanup_free_ char *stage = xasprintf("%s/root", tmpdir);
	_cleanup_free_ char *tmp = xasprintf("%s/image", tmpdir);
	const char *src = plan->policy->rootfs;
	int r = 0;
	walk.bytes = walk.inodes = 0;
	if (!src) {
		if (mkdir(stage, 0755) < 0)
			return warden_error_set(err, errno, "creating %s", stage);
		r = stage_host_dirs(plan, stage, &binds, err);
		src = stage;
	} else {
		walk_tree(src, "");
	}
	/* Room for the data, the inode tables and some slack; the file is sparse. */
	uint64_t mib = (walk.bytes + walk.bytes / 8) / (1 << 20) + 64;
	char size[32], inodes[32];
	snprintf(size, sizeof(size), "%" PRIu64 "M", mib);
	snprintf(inodes, sizeof(inodes), "%" PRIu64, walk.inodes + walk.inodes / 4 + 1024);
	char *argv[] = {
	    "mke2fs",    "-q", "-F", "-t",   "ext4", "-O",          "^has_journal,^resize_inode",
	    "-m",        "0",  "-N", inodes, "-L",   "warden-root", "-d",
	    (char *)src, tmp,  size, NULL};
	if (r == 0)
		r = run_tool(argv, binds.n ? binds.v : NULL, err);
	if (r == 0)
		r = remove_hidden(tmp, tmpdir, err);
	if (r == 0 && rename(tmp, path) < 0)
		r = warden_error_set(err, errno, "renaming the image to %s", path);
	strv_clear(&binds);
	return r < 0 ? warden_error_wrap(err, "building the root image") : 0;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *f)
{
	(void)st, (void)type, (void)f;
	(void)remove(path);
	return 0;
}

#define BUILD_STALE_S 60

/* Build directories whose builder was killed (a lock nobody holds, and older than a
 * start takes to lock its own) are removed: each can hold gigabytes. */
static void sweep_builds(const char *cache)
{
	_cleanup_closedir_ DIR *d = opendir(cache);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (strncmp(e->d_name, "build-", 6) != 0)
			continue;
		_cleanup_free_ char *dir = xasprintf("%s/%s", cache, e->d_name);
		_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		struct stat st;
		if (fd >= 0 && fstat(fd, &st) == 0 && time(NULL) - st.st_mtime > BUILD_STALE_S &&
		    flock(fd, LOCK_EX | LOCK_NB) == 0)
			(void)nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	}
}

/* The other images of what keep (cache/root-SET-KEY.ext4) is of: superseded by it. A
 * guest still running from one keeps its open file. */
static void evict_superseded(const char *cache, const char *keep)
{
	const char *name = strrchr(keep, '/') + 1;
	size_t set_len = strlen("root-") + 9; /* "root-SET-" */
	_cleanup_closedir_ DIR *d = opendir(cache);
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (strncmp(e->d_name, name, set_len) == 0 && !streq(e->d_name, name) &&
		    strstr(e->d_name, ".ext4"))
			(void)unlinkat(dirfd(d), e->d_name, 0);
}

static int build_in_cache(const struct warden_plan *plan, const char *cache, const char *path,
                          struct warden_error **err)
{
	sweep_builds(cache);
	_cleanup_free_ char *tmpdir = xasprintf("%s/build-XXXXXX", cache);
	if (!mkdtemp(tmpdir))
		return warden_error_set(err, errno, "creating a directory in %s", cache);
	_cleanup_close_ int lock = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lock >= 0)
		(void)flock(lock, LOCK_EX);
	int r = build_image(plan, path, tmpdir, err);
	(void)nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	if (r == 0)
		evict_superseded(cache, path);
	return r;
}

static int get_rootfs(const struct warden_plan *plan, const char *cache, char **ret,
                      struct warden_error **err)
{
	char key[IMAGE_KEY_LEN];
	pthread_mutex_lock(&walk_lock);
	image_key(plan, key);
	char *path = xasprintf("%s/root-%s.ext4", cache, key);
	/* A rootless caller finds an image root already built in the system cache. */
	_cleanup_free_ char *sys = xasprintf("%s/images/root-%s.ext4", vm_kernel_dir(), key);
	int r = 0;
	if (access(path, R_OK) != 0 && access(sys, R_OK) == 0) {
		free(path);
		path = xstrdup(sys);
	} else if (access(path, R_OK) != 0) {
		r = build_in_cache(plan, cache, path, err);
	}
	strv_clear(&walk.hidden);
	pthread_mutex_unlock(&walk_lock);
	if (r < 0) {
		free(path);
		return -1;
	}
	*ret = path;
	return 0;
}

/* ---- the accelerator --------------------------------------------------------------- */

#define PROBE_MARK "warden-guest: probe ok"

/* Boot the guest under KVM with warden.probe (the agent prints PROBE_MARK and powers off
 * at once) and see whether it got there in time: some hosts' /dev/kvm (nested PVM
 * hypervisors) accept the VM and then hang in the kernel's real-mode stage forever. */
static bool kvm_boots(const struct vm_assets *a, const char *dir)
{
	_cleanup_free_ char *log = xasprintf("%s/kvm-probe.log", dir);
	_cleanup_free_ char *serial = xasprintf("file:%s", log);
	char *argv[] = {"qemu-system-x86_64",
	                "-M",
	                "microvm",
	                "-accel",
	                "kvm",
	                "-cpu",
	                "host",
	                "-m",
	                "128M",
	                "-nodefaults",
	                "-no-user-config",
	                "-display",
	                "none",
	                "-no-reboot",
	                "-kernel",
	                a->kernel,
	                "-initrd",
	                a->initrd,
	                "-append",
	                "console=ttyS0 quiet panic=-1 reboot=t warden.probe",
	                "-serial",
	                serial,
	                NULL};
	pid_t pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		dup2(null, 0), dup2(null, 1), dup2(null, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	int status = 0;
	for (int i = 0; i < 100; i++) { /* 10 s: a working KVM boots in well under one */
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		struct timespec ts = {0, 100 * 1000000L};
		nanosleep(&ts, NULL);
		if (i == 99) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
		}
	}
	char buf[8192];
	ssize_t n = read_file_at(AT_FDCWD, log, buf, sizeof(buf));
	unlink(log);
	return n > 0 && strstr(buf, PROBE_MARK);
}

enum vm_accel vm_accel_probe(const struct vm_assets *a, const char **ret_note)
{
	char boot_id[64] = "", cached[16] = "";
	if (access("/dev/kvm", R_OK | W_OK) != 0) {
		*ret_note = "no usable /dev/kvm";
		return VM_ACCEL_TCG;
	}
	_cleanup_error_ struct warden_error *e = NULL;
	_cleanup_free_ char *dir = vm_cache_dir(&e);
	if (!dir) {
		*ret_note = "KVM not probed (no cache directory)";
		return VM_ACCEL_TCG;
	}
	/* The answer holds for this kernel image until the host reboots. */
	(void)read_file_at(AT_FDCWD, "/proc/sys/kernel/random/boot_id", boot_id, sizeof(boot_id));
	boot_id[strcspn(boot_id, "\n")] = '\0';
	_cleanup_free_ char *stamp = xasprintf("%s/kvm-%s-%s", dir, boot_id, a->kernel_version);
	if (read_file_at(AT_FDCWD, stamp, cached, sizeof(cached)) <= 0) {
		snprintf(cached, sizeof(cached), "%s", kvm_boots(a, dir) ? "kvm" : "tcg");
		(void)write_atomic(stamp, cached, strlen(cached), NULL, 0, NULL);
	}
	if (streq(cached, "kvm")) {
		*ret_note = NULL;
		return VM_ACCEL_KVM;
	}
	*ret_note = "/dev/kvm cannot boot the guest kernel (probed once, cached)";
	return VM_ACCEL_TCG;
}

/* ---- the public entry -------------------------------------------------------------- */

void vm_assets_clear(struct vm_assets *a)
{
	free(a->kernel);
	free(a->initrd);
	free(a->rootfs);
	free(a->kernel_version);
	memset(a, 0, sizeof(*a));
}

static char *kernel_field(const char *name)
{
	char buf[2048];
	_cleanup_free_ char *path = xasprintf("%s/kernel.txt", vm_kernel_dir());
	if (read_file_at(AT_FDCWD, path, buf, sizeof(buf)) <= 0)
		return NULL;
	size_t nl = strlen(name);
	for (char *save, *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		if (strncmp(l, name, nl) == 0 && l[nl] == '=')
			return xstrdup(l + nl + 1);
	return NULL;
}

int vm_assets_get(const struct warden_plan *plan, struct vm_assets *ret, struct warden_error **err)
{
	struct vm_assets a = {0};
	/* The uncompressed kernel, started at its PVH entry (scripts/setup-vm-kernel.sh). */
	a.kernel = xasprintf("%s/vmlinux", vm_kernel_dir());
	a.kernel_version = kernel_field("kernel");
	if (access(a.kernel, R_OK) != 0 || !a.kernel_version) {
		int e = errno;
		vm_assets_clear(&a);
		return warden_error_set(err, e,
		                        "no guest kernel in %s (run scripts/setup.sh as root)",
		                        vm_kernel_dir());
	}
	_cleanup_free_ char *cache = vm_cache_dir(err);
	if (!cache || get_initrd(cache, &a.initrd, err) < 0 ||
	    get_rootfs(plan, cache, &a.rootfs, err) < 0) {
		vm_assets_clear(&a);
		return -1;
	}
	a.accel = vm_accel_probe(&a, &a.accel_note);
	*ret = a;
	return 0;
}
