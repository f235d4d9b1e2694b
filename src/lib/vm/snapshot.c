/* snapshot.c: a booted, idle guest saved once and restored by later starts, so that a
 * sandbox does not pay a cold boot (docs/vm.md, "Start latency").
 *
 * Sections: which snapshot; saving; restoring.
 *
 * The state is taken when the agent has said READY and before the host sent anything of
 * a sandbox (files, commands): every restored guest is the same fresh guest. It travels
 * as a descriptor passed over QMP (getfd + migrate/migrate-incoming "fd:"), so QEMU, in
 * its sandbox with spawn=deny, opens no file and runs no helper for it.
 */
#define _GNU_SOURCE
#include "vm.h"
#include "../util.h"

#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <time.h>

#define SNAPSHOT_TIMEOUT_MS 60000
#define SNAPSHOT_MAX_AUTO   (512ULL << 20) /* guest RAM restored without being asked */

/* ---- which snapshot ---------------------------------------------------------------- */

char *vm_snapshot_path(const struct vm_state *st)
{
	const char *env = getenv("WARDEN_VM_SNAPSHOT");
	const struct warden_policy *p = st->sb->plan->policy;
	struct stat qemu;
	/* Volumes are disks of their own: a guest saved without them cannot take them.
	 * QEMU (7.2) writes every page of guest RAM while it loads a saved state, so a
	 * restore costs time and host memory in proportion to the RAM, whatever the guest
	 * used: measured here, restoring beats a cold boot at 256 MiB (0.8 s against 1.9 s,
	 * interleaved) and loses at 1 GiB (2.9 s, and 1 GiB resident per guest). Larger
	 * guests are restored only when asked to (docs/vm.md). */
	if ((env && streq(env, "0")) || st->n_vols ||
	    stat("/usr/bin/qemu-system-x86_64", &qemu) < 0)
		return NULL;
	if (!(env && streq(env, "1")) && p->memory > SNAPSHOT_MAX_AUTO)
		return NULL;
	_cleanup_error_ struct warden_error *e = NULL;
	_cleanup_free_ char *cache = vm_cache_dir(&e);
	if (!cache)
		return NULL;
	/* Everything the saved machine depends on: its devices and memory, the guest's
	 * kernel, initramfs and root image, and the QEMU that saved it. */
	_cleanup_free_ char *what = xasprintf(
	    "snapshot-1 %s %s %s %s %d %" PRIu64 " %" PRIu64 " %lld.%09ld %lld", st->assets.kernel,
	    st->assets.kernel_version, st->assets.initrd, st->assets.rootfs, st->assets.accel,
	    p->memory, p->tmp_size, (long long)qemu.st_mtim.tv_sec, qemu.st_mtim.tv_nsec,
	    (long long)qemu.st_size);
	unsigned char md[32];
	unsigned n = 0;
	EVP_Digest(what, strlen(what), md, &n, EVP_sha256(), NULL);
	char key[17];
	for (int i = 0; i < 8; i++)
		snprintf(key + 2 * i, 3, "%02x", md[i]);
	return xasprintf("%s/snap-%s.state", cache, key);
}

/* ---- saving ------------------------------------------------------------------------ */

/* Wait until query-what reports status `done` (or fails). */
static int wait_status(struct vm_state *st, const char *query, const char *done,
                       struct warden_error **err)
{
	struct timespec ts = {0, 2 * 1000000L};
	for (int waited = 0; waited < SNAPSHOT_TIMEOUT_MS; waited += 2) {
		json_t *ret = NULL;
		if (vm_qmp_call(st->qmp, query, NULL, -1, SNAPSHOT_TIMEOUT_MS, (void **)&ret, err) <
		    0)
			return -1;
		const char *s = json_string_value(json_object_get(ret, "status"));
		bool ok = s && streq(s, done);
		bool bad = s && (streq(s, "failed") || streq(s, "cancelled"));
		json_decref(ret);
		if (ok)
			return 0;
		if (bad)
			return warden_error_set(err, 0, "%s: %s", query, s);
		nanosleep(&ts, NULL);
	}
	return warden_error_set(err, ETIMEDOUT, "%s: not %s in time", query, done);
}

int vm_snapshot_save(struct vm_state *st, const char *path, struct warden_error **err)
{
	_cleanup_free_ char *tmp = xasprintf("%s.%d.tmp", path, getpid());
	_cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return warden_error_set(err, errno, "creating %s", tmp);
	int r = vm_qmp_call(st->qmp, "stop", NULL, -1, SNAPSHOT_TIMEOUT_MS, NULL, err);
	if (r == 0)
		r = vm_qmp_call(st->qmp, "getfd", json_pack("{s:s}", "fdname", "snap"), fd,
		                SNAPSHOT_TIMEOUT_MS, NULL, err);
	if (r == 0)
		r = vm_qmp_call(st->qmp, "migrate", json_pack("{s:s}", "uri", "fd:snap"), -1,
		                SNAPSHOT_TIMEOUT_MS, NULL, err);
	if (r == 0)
		r = wait_status(st, "query-migrate", "completed", err);
	if (r == 0 && rename(tmp, path) < 0)
		r = warden_error_set(err, errno, "renaming %s", tmp);
	if (r < 0)
		unlink(tmp);
	/* The guest goes on either way: this sandbox runs in it. */
	if (vm_qmp_call(st->qmp, "cont", NULL, -1, SNAPSHOT_TIMEOUT_MS, NULL, r < 0 ? NULL : err) <
	    0)
		return -1;
	return r < 0 ? warden_error_wrap(err, "saving the guest") : 0;
}

/* ---- restoring --------------------------------------------------------------------- */

int vm_snapshot_restore(struct vm_state *st, const char *path, struct warden_error **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return warden_error_set(err, errno, "opening %s", path);
	int r = vm_qmp_call(st->qmp, "getfd", json_pack("{s:s}", "fdname", "snap"), fd,
	                    SNAPSHOT_TIMEOUT_MS, NULL, err);
	if (r == 0)
		r = vm_qmp_call(st->qmp, "migrate-incoming", json_pack("{s:s}", "uri", "fd:snap"),
		                -1, SNAPSHOT_TIMEOUT_MS, NULL, err);
	/* The guest was saved stopped, and so it arrives: it runs once told to. */
	if (r == 0)
		r = wait_status(st, "query-migrate", "completed", err);
	if (r == 0)
		r = vm_qmp_call(st->qmp, "cont", NULL, -1, SNAPSHOT_TIMEOUT_MS, NULL, err);
	return r < 0 ? warden_error_wrap(err, "restoring the guest from %s", path) : 0;
}
