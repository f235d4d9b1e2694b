/* userns.c: user namespace id maps (parent side).
 *
 * Sections: the sandbox's maps; the volume idmap namespace.
 *
 * Root mode: sandbox ids 0-65535 map to an unprivileged host range that no host user
 * owns, so nothing in the sandbox is ever host root, even uid 0 inside. Rootless mode: the
 * kernel lets an unprivileged caller map exactly one id, its own, which becomes the
 * sandbox user; setgroups is denied first, as the kernel requires (a process could
 * otherwise drop a group that a file's permissions deny to it).
 */
#define _GNU_SOURCE
#include "ns.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static int write_proc(pid_t pid, const char *file, const char *content, struct warden_error **err)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	int r = write_file_at(AT_FDCWD, path, content);
	if (r < 0)
		return warden_error_set(err, -r, "writing %s", file);
	return 0;
}

static int write_maps(pid_t pid, const char *uid_map, const char *gid_map, bool deny_setgroups,
                      struct warden_error **err)
{
	if (deny_setgroups && write_proc(pid, "setgroups", "deny", err) < 0)
		return -1;
	if (write_proc(pid, "uid_map", uid_map, err) < 0 ||
	    write_proc(pid, "gid_map", gid_map, err) < 0)
		return -1;
	return 0;
}

int ns_userns_write_maps(pid_t pid, const struct warden_plan *plan, struct warden_error **err)
{
	char uid_map[64], gid_map[64];
	const struct warden_policy *p = plan->policy;
	if (plan->rootless) {
		snprintf(uid_map, sizeof(uid_map), "%u %u 1\n", (unsigned)p->uid,
		         (unsigned)plan->caller_uid);
		snprintf(gid_map, sizeof(gid_map), "%u %u 1\n", (unsigned)p->gid,
		         (unsigned)plan->caller_gid);
		return write_maps(pid, uid_map, gid_map, true, err);
	}
	snprintf(uid_map, sizeof(uid_map), "0 %u %u\n", (unsigned)plan->host_base,
	         (unsigned)plan->host_count);
	return write_maps(pid, uid_map, uid_map, false, err);
}

/* A user namespace whose only member is a stopped child: it exists to carry the id map
 * that idmapped volume mounts translate through. The volume owner's uid and gid become
 * the sandbox user's host ids, so the owner's files belong to the sandbox user inside and
 * what it creates belongs to the owner outside. */
int ns_userns_volume_idmap(const struct warden_plan *plan, uid_t owner_uid, gid_t owner_gid,
                           struct warden_error **err)
{
	int pipefd[2];
	char uid_map[64], gid_map[64], path[64];
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return warden_error_set(err, errno, "pipe");
	pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL);
	if (pid < 0) {
		int e = errno;
		close(pipefd[0]);
		close(pipefd[1]);
		return warden_error_set(err, e, "creating the volume id map");
	}
	if (pid == 0) {
		char c;
		close(pipefd[1]);
		(void)!read(pipefd[0], &c, 1);
		_exit(0);
	}
	close(pipefd[0]);
	snprintf(uid_map, sizeof(uid_map), "%u %u 1\n", (unsigned)owner_uid,
	         (unsigned)(plan->host_base + plan->policy->uid));
	snprintf(gid_map, sizeof(gid_map), "%u %u 1\n", (unsigned)owner_gid,
	         (unsigned)(plan->host_base + plan->policy->gid));
	int fd = -1;
	if (write_maps(pid, uid_map, gid_map, false, err) == 0) {
		snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			warden_error_set(err, errno, "opening the volume id map");
	}
	close(pipefd[1]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	return fd;
}
