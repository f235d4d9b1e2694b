/* telemetry-off.c: telemetry for a build without BPF (no clang, no bpftool or no kernel
 * BTF where it was built): every call says why, so that sandboxes run without it. */
#include "telemetry.h"

#define WHY "BPF telemetry not built (clang, bpftool or /sys/kernel/btf/vmlinux missing)"

bool warden_telemetry_available(struct strv *why_not)
{
	if (why_not)
		strv_push(why_not, WHY);
	return false;
}

struct warden_telemetry *warden_telemetry_attach(uint64_t cgroup_id _unused_,
                                                 const struct warden_tel_opts *opts _unused_,
                                                 struct warden_error **err)
{
	warden_error_set(err, ENOTSUP, WHY);
	return NULL;
}

int warden_telemetry_fd(const struct warden_telemetry *t _unused_)
{
	return -1;
}

int warden_telemetry_drain(struct warden_telemetry *t _unused_,
                           void (*cb)(const struct warden_tel_event *ev, void *ctx) _unused_,
                           void *ctx _unused_, struct warden_error **err)
{
	return warden_error_set(err, ENOTSUP, WHY);
}

int warden_telemetry_counts(const struct warden_telemetry *t _unused_, bool live _unused_,
                            struct warden_tel_counts *out _unused_, struct warden_error **err)
{
	return warden_error_set(err, ENOTSUP, WHY);
}

void warden_telemetry_detach(struct warden_telemetry *t _unused_)
{
}
