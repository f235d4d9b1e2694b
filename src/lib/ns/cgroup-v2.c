/* cgroup-v2.c: limits on the unified hierarchy. */
#define _GNU_SOURCE
#include "ns.h"

#include <inttypes.h>

int ns_cgroup_v2_limits(int dirfd, const struct warden_policy *p, struct warden_error **err)
{
	char buf[48];
	int r = 0;
	const char *file = NULL;
	if (p->memory) {
		snprintf(buf, sizeof(buf), "%" PRIu64, p->memory);
		file = "memory.max";
		r = write_file_at(dirfd, file, buf);
		if (r == 0) {
			/* No swap; absent where the kernel has no swap accounting. */
			file = "memory.swap.max";
			snprintf(buf, sizeof(buf), "0");
			r = write_file_at(dirfd, file, buf);
			if (r == -ENOENT)
				r = 0;
		}
	}
	if (r == 0 && p->pids) {
		snprintf(buf, sizeof(buf), "%" PRIu64, p->pids);
		file = "pids.max";
		r = write_file_at(dirfd, file, buf);
	}
	if (r == 0 && p->cpus_milli) {
		snprintf(buf, sizeof(buf), "%" PRIu64 " 100000", p->cpus_milli * 100);
		file = "cpu.max";
		r = write_file_at(dirfd, file, buf);
	}
	if (r < 0)
		return warden_error_set(err, -r, "%s = %s", file, buf);
	return 0;
}
