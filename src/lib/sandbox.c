/* sandbox.c: the public lifecycle API over the backend table (see sandbox.h). */
#define _GNU_SOURCE
#include "sandbox.h"

int warden_sandbox_start(const struct warden_plan *plan, const struct warden_process *proc,
                         warden_sandbox_hook hook, void *hook_ctx, struct warden_sandbox **ret,
                         struct warden_error **err)
{
	if (!proc->service && (!proc->argv || !proc->argv[0]))
		return warden_error_set(err, EINVAL, "no command to run");
	if (proc->service && proc->tty)
		return warden_error_set(err, EINVAL, "a service sandbox has no terminal");
	struct warden_sandbox *sb = xcalloc(1, sizeof(*sb));
	sb->backend = plan->policy->isolation == WARDEN_ISOLATION_VM ? &warden_vm_backend
	                                                             : &warden_ns_backend;
	sb->plan = plan;
	sb->fds[0] = sb->fds[1] = sb->pty_fd = sb->root_fd = -1;
	for (int i = 0; i < WARDEN_NET_LISTENERS; i++)
		sb->net_fds[i] = -1;
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

int warden_sandbox_exec(struct warden_sandbox *sb, uint32_t id, const struct warden_exec *x,
                        struct warden_error **err)
{
	if (!x->argv || !x->argv[0])
		return warden_error_set(err, EINVAL, "no command to run");
	if (x->workdir && x->workdir[0] != '/')
		return warden_error_set(err, EINVAL, "working directory %s is not absolute",
		                        x->workdir);
	return sb->backend->exec(sb, id, x, err);
}

int warden_sandbox_exec_signal(struct warden_sandbox *sb, uint32_t id, int sig,
                               struct warden_error **err)
{
	return sb->backend->exec_signal(sb, id, sig, err);
}

int warden_sandbox_resize(struct warden_sandbox *sb, const struct winsize *ws,
                          struct warden_error **err)
{
	if (sb->pty_fd < 0)
		return 0;
	if (sb->backend->resize)
		return sb->backend->resize(sb, ws, err);
	if (ioctl(sb->pty_fd, TIOCSWINSZ, ws) < 0)
		return warden_error_set(err, errno, "setting the terminal's size");
	return 0;
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
	if (sb->root_fd >= 0)
		close(sb->root_fd);
	for (int i = 0; i < WARDEN_NET_LISTENERS; i++)
		if (sb->net_fds[i] >= 0)
			close(sb->net_fds[i]);
	strv_clear(&sb->warnings);
	free(sb);
}
