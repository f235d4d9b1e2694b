/* qemu.c: QEMU's command line for a vm sandbox, and the QMP client.
 *
 * Sections: the command line; QMP (one JSON object per line, jansson).
 */
#define _GNU_SOURCE
#include "vm.h"
#include "../util.h"

#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <time.h>

/* ---- the command line -------------------------------------------------------------- */

/* The guest kernel's command line. Every setting either skips work the guest does not
 * need (probing legacy hardware, calibrating the delay loop under an emulated clock,
 * printing) or makes a failing guest end instead of waiting: panic=-1 reboots at once on
 * a panic, which -no-reboot turns into QEMU's exit. */
static char *kernel_cmdline(const struct vm_launch *l)
{
	char *s = xasprintf("console=ttyS0 quiet loglevel=1 panic=-1 reboot=t oops=panic "
	                    "i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd "
	                    "tsc_early_khz=2000000 lpj=4000000 nokaslr pci=off "
	                    "random.trust_cpu=on cryptomgr.notests rcupdate.rcu_expedited=1 "
	                    "warden.tmp=%" PRIu64,
	                    l->tmp_size);
	for (size_t i = 0; i < l->n_volumes; i++) {
		char *next = xasprintf("%s warden.vol=vol%zu:%s:%s", s, i,
		                       l->volumes[i].rw ? "rw" : "ro", l->volumes[i].path);
		free(s);
		s = next;
	}
	if (l->read_only_root) {
		char *next = xasprintf("%s warden.ro", s);
		free(s);
		s = next;
	}
	return s;
}

char **vm_qemu_argv(const struct vm_launch *l)
{
	struct strv a = {0};
	const struct vm_assets *as = l->assets;
	bool kvm = as->accel == VM_ACCEL_KVM;
	strv_push(&a, "qemu-system-x86_64");
	/* microvm: no PCI, no firmware option ROMs, virtio-mmio devices only. */
	strv_push(&a, "-M");
	strv_push(&a, "microvm,x-option-roms=off");
	strv_push(&a, "-accel");
	/* TCG's translation cache defaults to 1 GiB; 64 MiB holds a guest's working set. */
	strv_push(&a, kvm ? "kvm" : "tcg,tb-size=64");
	strv_push(&a, "-cpu");
	strv_push(&a, kvm ? "host" : "max");
	strv_push(&a, "-smp");
	strv_push(&a, "1");
	strv_push(&a, "-m");
	strv_push_take(&a, xasprintf("%" PRIu64 "M", l->memory >> 20));
	strv_push(&a, "-nodefaults");
	strv_push(&a, "-no-user-config");
	strv_push(&a, "-display");
	strv_push(&a, "none");
	strv_push(&a, "-no-reboot");
	/* QEMU's own seccomp filter, on top of the namespace sandbox it runs in: no obsolete
	 * system calls, no setuid and friends, no fork/exec, no scheduler or affinity
	 * changes. */
	strv_push(&a, "-sandbox");
	strv_push(&a, "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
	strv_push(&a, "-kernel");
	strv_push(&a, l->kernel);
	strv_push(&a, "-initrd");
	strv_push(&a, l->initrd);
	strv_push(&a, "-append");
	strv_push_take(&a, kernel_cmdline(l));
	strv_push(&a, "-serial");
	strv_push_take(&a, xasprintf("file:%s/console.log", l->state_dir));
	/* Disks are found by serial in the guest: virtio-mmio slots do not keep the order. */
	strv_push(&a, "-drive");
	strv_push_take(&a, xasprintf("id=root,file=%s,format=raw,if=none,readonly=on", l->rootfs));
	strv_push(&a, "-device");
	strv_push(&a, "virtio-blk-device,drive=root,serial=root");
	for (size_t i = 0; i < l->n_volumes; i++) {
		strv_push(&a, "-drive");
		strv_push_take(&a, xasprintf("id=vol%zu,file=%s/%s,format=raw,if=none%s", i,
		                             l->state_dir, strrchr(l->volumes[i].image, '/') + 1,
		                             l->volumes[i].rw ? "" : ",readonly=on"));
		strv_push(&a, "-device");
		strv_push_take(&a, xasprintf("virtio-blk-device,drive=vol%zu,serial=vol%zu", i, i));
	}
	/* The agent's channel and QMP: sockets warden listens on before QEMU starts, so
	 * QEMU connects as a client and neither side polls for the other. */
	strv_push(&a, "-device");
	strv_push(&a, "virtio-serial-device,max_ports=2");
	strv_push(&a, "-chardev");
	strv_push_take(&a, xasprintf("socket,id=agent,path=%s/agent.sock", l->state_dir));
	strv_push(&a, "-device");
	strv_push(&a, "virtserialport,chardev=agent,name=org.warden.agent");
	strv_push(&a, "-chardev");
	strv_push_take(&a, xasprintf("socket,id=qmp,path=%s/qmp.sock", l->state_dir));
	strv_push(&a, "-mon");
	strv_push(&a, "chardev=qmp,mode=control");
	if (l->incoming) {
		/* The saved state arrives later, as a descriptor passed over QMP
		 * (snapshot.c): QEMU itself opens no file and spawns nothing for it. */
		strv_push(&a, "-incoming");
		strv_push(&a, "defer");
	}
	return a.v;
}

/* ---- QMP --------------------------------------------------------------------------- */

/* One line (a JSON object), read a byte at a time: QMP messages are few and short, and
 * nothing after the line may be consumed. Returns 1, 0 on timeout, -1 at EOF. */
static int read_line(int fd, char *buf, size_t len, int timeout_ms)
{
	size_t n = 0;
	while (n < len - 1) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = poll(&p, 1, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			return 0;
		ssize_t got = read(fd, buf + n, 1);
		if (got < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (got <= 0)
			return -1;
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = '\0';
	return 1;
}

static json_t *read_msg(int fd, int timeout_ms, struct warden_error **err)
{
	char line[8192];
	int r = read_line(fd, line, sizeof(line), timeout_ms);
	if (r <= 0) {
		warden_error_set(err, r == 0 ? ETIMEDOUT : EPIPE, "QMP");
		return NULL;
	}
	json_t *j = json_loads(line, 0, NULL);
	if (!json_is_object(j)) {
		json_decref(j);
		warden_error_set(err, EBADMSG, "QMP: not a JSON object");
		return NULL;
	}
	return j;
}

int vm_qmp_handshake(int fd, int timeout_ms, struct warden_error **err)
{
	json_t *greeting = read_msg(fd, timeout_ms, err);
	if (!greeting)
		return warden_error_wrap(err, "QMP greeting");
	bool ok = json_object_get(greeting, "QMP") != NULL;
	json_decref(greeting);
	if (!ok)
		return warden_error_set(err, EBADMSG, "QMP: no greeting");
	return vm_qmp_call(fd, "qmp_capabilities", NULL, -1, timeout_ms, NULL, err);
}

int vm_qmp_call(int fd, const char *cmd, void *args, int send_fd, int timeout_ms, void **ret,
                struct warden_error **err)
{
	json_t *req = json_pack("{s:s}", "execute", cmd);
	if (args)
		json_object_set_new(req, "arguments", args);
	char *text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	size_t len = strlen(text);
	ssize_t w = send_with_fds(fd, text, len, &send_fd, send_fd >= 0 ? 1 : 0, 0);
	free(text);
	if (w != (ssize_t)len)
		return warden_error_set(err, errno, "QMP %s", cmd);
	for (;;) {
		json_t *m = read_msg(fd, timeout_ms, err);
		if (!m)
			return warden_error_wrap(err, "QMP %s", cmd);
		if (json_is_string(json_object_get(m, "event"))) {
			json_decref(m); /* what an event says matters once the guest runs */
			continue;
		}
		json_t *error = json_object_get(m, "error");
		int r = 0;
		if (error)
			r = warden_error_set(err, 0, "QMP %s: %s", cmd,
			                     json_string_value(json_object_get(error, "desc")));
		else if (ret)
			*ret = json_incref(json_object_get(m, "return"));
		json_decref(m);
		return r;
	}
}

int vm_qmp_read_event(int fd, char **ret_name, char **ret_reason)
{
	_cleanup_error_ struct warden_error *e = NULL;
	json_t *m = read_msg(fd, 0, &e);
	if (!m)
		return e && e->errnum == ETIMEDOUT ? 0 : -1;
	json_t *ev = json_object_get(m, "event");
	int r = 0;
	if (json_is_string(ev)) {
		json_t *reason = json_object_get(json_object_get(m, "data"), "reason");
		*ret_name = xstrdup(json_string_value(ev));
		*ret_reason = json_is_string(reason) ? xstrdup(json_string_value(reason)) : NULL;
		r = 1;
	}
	json_decref(m);
	return r;
}
