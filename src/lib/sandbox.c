/* sandbox.c: the public lifecycle API over the backend table (see sandbox.h). */
#define _GNU_SOURCE
#include "sandbox.h"

int warden_sandbox_start(const struct warden_plan *plan, const struct warden_process *proc,
                         warden_sandbox_hook hook, void *hook_ctx, struct warden_sandbox **ret,
                         struct warden_error **err)
{
	if (!proc->argv || !proc->argv[0])
		return warden_error_set(err, EINVAL, "no command to run");
	struct warden_sandbox *sb = xcalloc(1, sizeof(*sb));
	sb->backend = &warden_ns_backend;
	sb->plan = plan;
	sb->fds[0] = sb->fds[1] = sb->pty_fd = -1;
	sb->hook = hook;
	sb->hook_ctx = hook_ctx;
	if (sb->backend->start(sb, proc, err) < 0) {
		warden_sandbox_destroy(sb);
		return -1;
	}
	*ret = sb;
	return 0;
}

int warden_sandbox_next_event(struct warden_sandbox *sb, struct warden_event *ev,
                              struct warden_error **err)
{
	return sb->backend->next_event(sb, ev, err);
}

int warden_sandbox_signal(struct warden_sandbox *sb, int sig, struct warden_error **err)
{
	return sb->backend->signal(sb, sig, err);
}

int warden_sandbox_sample(struct warden_sandbox *sb, struct warden_sample *out)
{
	return sb->backend->sample(sb, out);
}

int warden_sandbox_freeze(struct warden_sandbox *sb, bool frozen, struct warden_error **err)
{
	return sb->backend->freeze(sb, frozen, err);
}

int warden_sandbox_kill(struct warden_sandbox *sb, struct warden_error **err)
{
	return sb->backend->kill(sb, err);
}

void warden_sandbox_destroy(struct warden_sandbox *sb)
{
	if (!sb)
		return;
	sb->backend->destroy(sb);
	if (sb->pty_fd >= 0)
		close(sb->pty_fd);
	strv_clear(&sb->warnings);
	free(sb);
}
