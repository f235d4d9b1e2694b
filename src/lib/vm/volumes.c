/* volumes.c: volumes of a vm sandbox, by copy: each host directory becomes an ext4 image
 * the guest mounts (copy-in), and what the guest left in a read-write one is copied back
 * when the sandbox ends (copy-out).
 *
 * Sections: helpers; copy-in; copy-out.
 *
 * Ownership follows the namespace backend's rule: inside, the volume owner's files are
 * the sandbox user's; outside, every file copied back belongs to the volume's owner
 * (`sudo warden run --isolation vm -v ~/proj:/work` leaves files owned by you).
 */
#define _GNU_SOURCE
#include "vm.h"
#include "../util.h"

#include <fcntl.h>
#include <inttypes.h>
#include <ftw.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* ---- helpers ----------------------------------------------------------------------- */

static int run(char *const *argv, struct warden_error **err)
{
	pid_t pid = fork();
	if (pid < 0)
		return warden_error_set(err, errno, "fork");
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		dup2(null, 0), dup2(null, 1), dup2(null, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return warden_error_set(err, errno, "waiting for %s", argv[0]);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return warden_error_set(err, 0, "%s %s failed (status %d)", argv[0],
		                        argv[1] ? argv[1] : "", WEXITSTATUS(status));
	return 0;
}

/* nftw has no context argument; these walks are short and serialized. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	uint64_t bytes;
	FILE *cmds; /* copy-in: debugfs commands giving the owner's files to the sandbox user */
	size_t base_len;
	uid_t owner, uid;
	gid_t owner_gid, gid;
	const char *keep; /* copy-out: the guest's tree; host entries missing there go */
	int failed;
} w;

/* ---- copy-in ----------------------------------------------------------------------- */

static int in_entry(const char *path, const struct stat *st, int type, struct FTW *f)
{
	(void)type, (void)f;
	w.bytes += (uint64_t)st->st_blocks * 512;
	const char *rel = path[w.base_len] ? path + w.base_len : "/";
	if (strpbrk(rel, "\"\n"))
		return 0;
	if (st->st_uid == w.owner)
		fprintf(w.cmds, "sif \"%s\" uid %u\n", rel, (unsigned)w.uid);
	if (st->st_gid == w.owner_gid)
		fprintf(w.cmds, "sif \"%s\" gid %u\n", rel, (unsigned)w.gid);
	return 0;
}

static int make_image(const struct warden_plan *plan, struct vm_volume *v, const char *dir,
                      struct warden_error **err)
{
	_cleanup_free_ char *cmds = xasprintf("%s.cmds", v->image);
	w.cmds = fopen(cmds, "we");
	if (!w.cmds)
		return warden_error_set(err, errno, "creating %s", cmds);
	w.bytes = 0;
	w.base_len = strlen(v->host);
	w.owner = v->owner_uid, w.owner_gid = v->owner_gid;
	w.uid = plan->policy->uid, w.gid = plan->policy->gid;
	(void)nftw(v->host, in_entry, 64, FTW_PHYS | FTW_MOUNT);
	/* lost+found is mke2fs's, not the volume's: the guest does not see it. */
	if (access(v->host, F_OK) == 0)
		fprintf(w.cmds, "rmdir /lost+found\n");
	int r = fclose(w.cmds) == 0 ? 0 : warden_error_set(err, errno, "writing %s", cmds);
	w.cmds = NULL;
	/* A read-write volume gets 1 GiB of room to grow (the image is sparse). */
	char size[32];
	snprintf(size, sizeof(size), "%" PRIu64 "M",
	         (w.bytes + w.bytes / 4) / (1 << 20) + (v->rw ? 1024 : 16));
	char *mk[] = {"mke2fs", "-q", "-F", "-t",    "ext4",   "-O", "^has_journal",
	              "-m",     "0",  "-d", v->host, v->image, size, NULL};
	char *fix[] = {"debugfs", "-w", "-f", cmds, v->image, NULL};
	if (r == 0 && run(mk, err) < 0)
		r = -1;
	if (r == 0 && run(fix, err) < 0)
		r = -1;
	unlink(cmds);
	(void)dir;
	return r;
}

int vm_volumes_prepare(const struct warden_plan *plan, const char *dir, struct vm_volume **ret,
                       size_t *ret_n, struct warden_error **err)
{
	struct vm_volume *v = NULL;
	size_t n = 0;
	int r = 0;
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < plan->n_binds && r == 0; i++) {
		const struct warden_bind *b = &plan->binds[i];
		struct stat st;
		if (!b->volume)
			continue;
		if (!b->is_dir || stat(b->host, &st) < 0) {
			r = warden_error_set(err, b->is_dir ? errno : 0,
			                     "volume %s: the vm backend copies directories only",
			                     b->host);
			break;
		}
		if (strpbrk(b->path, " ,:\"\n") || strlen(b->path) > 200) {
			r = warden_error_set(
			    err, 0,
			    "volume %s: the vm backend needs a path inside without "
			    "spaces, commas or colons, under 200 bytes",
			    b->path);
			break;
		}
		v = xrealloc(v, (n + 1) * sizeof(*v));
		v[n] = (struct vm_volume){.host = xstrdup(b->host),
		                          .path = xstrdup(b->path),
		                          .image = xasprintf("%s/volume%zu.ext4", dir, n),
		                          .rw = b->rw,
		                          .owner_uid = st.st_uid,
		                          .owner_gid = st.st_gid};
		if (make_image(plan, &v[n], dir, err) < 0)
			r = warden_error_wrap(err, "volume %s", b->host);
		n++;
	}
	pthread_mutex_unlock(&lock);
	if (r < 0) {
		vm_volumes_free(v, n);
		return -1;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

void vm_volumes_free(struct vm_volume *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].host);
		free(v[i].path);
		if (v[i].image)
			unlink(v[i].image);
		free(v[i].image);
	}
	free(v);
}

/* ---- copy-out ---------------------------------------------------------------------- */

/* What the guest deleted is deleted on the host too: the host directory ends up equal to
 * the volume as the guest left it. */
static int drop_entry(const char *path, const struct stat *st, int type, struct FTW *f)
{
	(void)st, (void)type;
	if (f->level == 0)
		return 0;
	_cleanup_free_ char *mirror = xasprintf("%s%s", w.keep, path + w.base_len);
	struct stat ms;
	if (lstat(mirror, &ms) < 0 && errno == ENOENT && remove(path) < 0)
		w.failed = errno;
	return 0;
}

static int own_entry(const char *path, const struct stat *st, int type, struct FTW *f)
{
	(void)st, (void)type, (void)f;
	if (lchown(path, w.owner, w.owner_gid) < 0 && errno != EPERM)
		w.failed = errno;
	return 0;
}

static int copy_out_one(const struct vm_volume *v, struct warden_error **err)
{
	_cleanup_free_ char *out = xasprintf("%s.out", v->image);
	_cleanup_free_ char *req = xasprintf("rdump / %s", out);
	if (mkdir(out, 0700) < 0)
		return warden_error_set(err, errno, "creating %s", out);
	char *dump[] = {"debugfs", "-R", req, v->image, NULL};
	_cleanup_free_ char *src = xasprintf("%s/.", out);
	/* Each file is replaced rather than written over: its owner may keep it read-only
	 * (git's objects are), which only root could write through. */
	char *cp[] = {"cp", "-a", "--remove-destination", "-T", src, v->host, NULL};
	char *rm[] = {"rm", "-rf", out, NULL};
	int r = run(dump, err);
	if (r == 0) {
		/* lost+found is mke2fs's, not the guest's. */
		_cleanup_free_ char *lf = xasprintf("%s/lost+found", out);
		(void)rmdir(lf);
		w.owner = v->owner_uid, w.owner_gid = v->owner_gid, w.failed = 0;
		(void)nftw(out, own_entry, 64, FTW_PHYS);
		w.keep = out, w.base_len = strlen(v->host);
		(void)nftw(v->host, drop_entry, 64, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
		if (w.failed)
			r = warden_error_set(err, w.failed, "updating %s", v->host);
	}
	if (r == 0)
		r = run(cp, err);
	(void)run(rm, NULL);
	return r;
}

int vm_volumes_copy_out(const struct vm_volume *v, size_t n, struct warden_error **err)
{
	int r = 0;
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < n && r == 0; i++)
		if (v[i].rw && copy_out_one(&v[i], err) < 0)
			r = warden_error_wrap(err, "copying volume %s back", v[i].host);
	pthread_mutex_unlock(&lock);
	return r;
}
