/* helper-run.c: running warden-gpu, the process that talks to the NVIDIA driver (gpu.h
 * says why it is a process of its own).
 *
 * Sections: finding the helper; driver presence; running it and reading its answer.
 */
#define _GNU_SOURCE
#include "gpu.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define ANSWER_MAX (1 << 20)

extern char **environ;

char *warden_gpu_helper_path(void)
{
	const char *env = getenv("WARDEN_GPU_HELPER");
	char self[PATH_MAX];
	if (env && *env == '/')
		return xstrdup(env);
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return xstrdup("warden-gpu");
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	*slash = '\0';
	return xasprintf("%s/warden-gpu", self);
}

bool warden_gpu_driver_present(const char **ret_why)
{
	struct stat st;
	/* The quick answer for the common case; a stale node without the driver loaded is
	 * left to NVML, whose initialisation then says so. */
	if (stat("/dev/nvidiactl", &st) < 0 || !S_ISCHR(st.st_mode)) {
		*ret_why = "no NVIDIA driver on this host (/dev/nvidiactl is missing)";
		return false;
	}
	return true;
}

int warden_gpu_helper_spawn(char *const *args, int *ret_fd, pid_t *ret_pid,
                            struct warden_error **err)
{
	_cleanup_free_ char *path = warden_gpu_helper_path();
	struct strv argv = {0};
	int pipefd[2];
	strv_push(&argv, path);
	for (; *args; args++)
		strv_push(&argv, *args);
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		strv_clear(&argv);
		return warden_error_set(err, errno, "pipe");
	}
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
	/* A supervisor blocks the signals it reads through a signalfd; the helper must not
	 * inherit that mask (or handlers), or it could not be stopped. */
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	pid_t pid;
	int r = posix_spawn(&pid, path, &fa, &attr, argv.v, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	strv_clear(&argv);
	close(pipefd[1]);
	if (r != 0) {
		close(pipefd[0]);
		return warden_error_set(err, r, "starting %s (the GPU helper)", path);
	}
	*ret_fd = pipefd[0];
	*ret_pid = pid;
	return 0;
}

static const char *last_line(char *buf, size_t len)
{
	while (len && buf[len - 1] == '\n')
		buf[--len] = '\0';
	char *nl = strrchr(buf, '\n');
	return nl ? nl + 1 : buf;
}

int warden_gpu_helper_run(char *const *args, json_t **ret, struct warden_error **err)
{
	int fd;
	pid_t pid;
	if (warden_gpu_helper_spawn(args, &fd, &pid, err) < 0)
		return -1;
	_cleanup_close_ int rfd = fd;
	_cleanup_free_ char *buf = xmalloc(ANSWER_MAX + 1);
	size_t len = 0;
	for (;;) {
		ssize_t n = read(rfd, buf + len, ANSWER_MAX - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == ANSWER_MAX)
			len = 0; /* only the last line matters: keep reading, keep the tail */
	}
	buf[len] = '\0';
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	json_error_t je;
	json_t *j = json_loads(last_line(buf, len), 0, &je);
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	if (code != WARDEN_GPU_OK) {
		const char *msg = j ? json_string_value(json_object_get(j, "error")) : NULL;
		warden_error_set(err, 0, "%s", msg ? msg : "the GPU helper failed");
		if (!msg)
			warden_error_wrap(err, "status %d", code);
		json_decref(j);
		return -1;
	}
	if (!j || !json_is_object(j)) {
		json_decref(j);
		return warden_error_set(err, EPROTO, "the GPU helper's answer is not JSON");
	}
	*ret = j;
	return 0;
}
