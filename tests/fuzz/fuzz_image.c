/* fuzz_image.c: an image's /etc/passwd and /etc/group, merged with the sandbox user by
 * warden_plan_compile() (the image is untrusted).
 *
 * Input: a selector byte for the sandbox user (root, agent or another id), then the
 * passwd file, a NUL byte, and the group file. Checks: the sandbox user's line comes
 * last, and no other line has its name or its id.
 */
#define _GNU_SOURCE
#include "src/lib/plan.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static char *root, *passwd_path, *group_path;

static void rm_image(void)
{
	unlink(passwd_path);
	unlink(group_path);
	char *etc = xasprintf("%s/etc", root);
	rmdir(etc);
	rmdir(root);
	free(etc);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	const char *tmp = getenv("TMPDIR");
	root = xasprintf("%s/warden-fuzz-image.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(root))
		abort();
	char *etc = xasprintf("%s/etc", root);
	if (mkdir(etc, 0755) < 0)
		abort();
	free(etc);
	passwd_path = xasprintf("%s/etc/passwd", root);
	group_path = xasprintf("%s/etc/group", root);
	atexit(rm_image);
	return 0;
}

static void write_all(const char *path, const uint8_t *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || (len && write(fd, data, len) != (ssize_t)len) || close(fd) < 0)
		abort();
}

/* Every line but the last is neither `name` nor `id`; the last is `last`. */
static void check_db(const char *db, const char *name, unsigned id, const char *last)
{
	size_t nlen = strlen(name), llen = strlen(last), dlen = strlen(db);
	if (dlen < llen || !streq(db + dlen - llen, last))
		abort();
	char idstr[16];
	snprintf(idstr, sizeof(idstr), "%u", id);
	for (const char *l = db; l < db + dlen - llen;) {
		const char *end = strchr(l, '\n');
		if (!end)
			abort();
		if ((size_t)(end - l) > nlen && !strncmp(l, name, nlen) && l[nlen] == ':')
			abort();
		const char *c1 = memchr(l, ':', (size_t)(end - l));
		const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(end - c1 - 1)) : NULL;
		if (c2) {
			size_t idlen = strcspn(c2 + 1, ":\n");
			if (idlen == strlen(idstr) && !strncmp(c2 + 1, idstr, idlen))
				abort();
		}
		l = end + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const uint8_t *rest = data + 1;
	size_t len = size - 1;
	const uint8_t *nul = memchr(rest, '\0', len);
	size_t pw_len = nul ? (size_t)(nul - rest) : len;
	write_all(passwd_path, rest, pw_len);
	write_all(group_path, nul ? nul + 1 : rest, nul ? len - pw_len - 1 : 0);

	struct warden_policy *p = warden_policy_new();
	free(p->rootfs);
	p->rootfs = xstrdup(root);
	p->landlock = WARDEN_LANDLOCK_OFF;
	/* With and without a volume (add_volumes() once passed NULL to memcpy()). */
	if (data[0] & 0x80) {
		struct warden_mount v = {.host = root, .path = "/work", .rw = true};
		warden_mounts_push(&p->volumes, &v);
	}
	switch (data[0] % 3) {
	case 0:
		p->uid = p->gid = 0;
		break;
	case 1:
		break;
	default:
		p->uid = data[0];
		p->gid = (gid_t)data[0] * 3;
		break;
	}
	uid_t uid = p->uid;
	gid_t gid = p->gid;
	struct warden_error *e = NULL;
	struct warden_plan *plan = warden_plan_compile(p, NULL, &e);
	if (!plan) {
		fprintf(stderr, "plan: %s\n", warden_error_text(e));
		abort();
	}
	const char *name = uid == 0 ? "root" : "agent";
	char *pw_line = xasprintf("%s:x:%u:%u:%s:%s:/bin/sh\n", name, (unsigned)uid, (unsigned)gid,
	                          name, uid == 0 ? "/root" : "/home/agent");
	char *gr_line = xasprintf("%s:x:%u:\n", name, (unsigned)gid);
	check_db(plan->passwd, name, uid, pw_line);
	check_db(plan->group, name, gid, gr_line);
	free(pw_line);
	free(gr_line);
	warden_plan_free(plan);
	return 0;
}
