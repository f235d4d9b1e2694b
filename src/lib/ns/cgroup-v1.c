/* cgroup-v1.c: limits on cgroup v1 controllers (hybrid hosts keep controllers here). */
#define _GNU_SOURCE
#include "ns.h"

#include <inttypes.h>

const char *const ns_cgroup_v1_names[NS_CGROUP_V1_CONTROLLERS] = {"memory", "pids", "cpu"};

static int put(int dirfd, const char *file, uint64_t v, bool optional, struct warden_error **err)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	int r = write_file_at(dirfd, file, buf);
	if (r == -ENOENT && optional)
		return 0;
	if (r < 0)
		return warden_error_set(err, -r, "%s = %s", file, buf);
	return 0;
}

int ns_cgroup_v1_limits(int ctrl, int dirfd, const struct warden_policy *p,
                        struct warden_error **err)
{
	switch (ctrl) {
	case 0:
		/* No swap: memsw (memory + swap) gets the same limit, where swap accounting
		 * exists at all; swappiness 0 keeps the group's pages out of swap. */
		if (put(dirfd, "memory.limit_in_bytes", p->memory, false, err) < 0 ||
		    put(dirfd, "memory.memsw.limit_in_bytes", p->memory, true, err) < 0 ||
		    put(dirfd, "memory.swappiness", 0, true, err) < 0)
			return -1;
		return 0;
	case 1:
		return put(dirfd, "pids.max", p->pids, false, err);
	case 2:
		if (put(dirfd, "cpu.cfs_period_us", 100000, false, err) < 0 ||
		    put(dirfd, "cpu.cfs_quota_us", p->cpus_milli * 100, false, err) < 0)
			return -1;
		return 0;
	default:
		return warden_error_set(err, EINVAL, "unknown v1 controller %d", ctrl);
	}
}
