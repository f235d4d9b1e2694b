/* rlimits.c: resource limits that hold without cgroups.
 *
 * RLIMIT_NPROC is counted per user per user namespace, so it bounds the sandbox user's
 * processes even where no pids cgroup can be had (rootless without delegation). Core
 * dumps are off: a dump could land in a volume and carry secrets out of memory. Hard
 * limits can only be lowered (warden never has CAP_SYS_RESOURCE on the host), so a
 * policy asking for more than the host allows is capped, with a warning at plan time.
 */
#define _GNU_SOURCE
#include "ns.h"

#include <sys/resource.h>

static int set_limit(int resource, const char *name, uint64_t value, struct warden_error **err)
{
	struct rlimit cur, rl;
	if (getrlimit(resource, &cur) < 0)
		return warden_error_set(err, errno, "%s", name);
	rl.rlim_max =
	    (cur.rlim_max != RLIM_INFINITY && value > cur.rlim_max) ? cur.rlim_max : value;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(resource, &rl) < 0)
		return warden_error_set(err, errno, "%s", name);
	return 0;
}

int ns_rlimits_apply(const struct warden_plan *plan, struct warden_error **err)
{
	const struct warden_policy *p = plan->policy;
	if (set_limit(RLIMIT_NOFILE, "RLIMIT_NOFILE", p->nofile, err) < 0 ||
	    set_limit(RLIMIT_CORE, "RLIMIT_CORE", 0, err) < 0)
		return -1;
	if (p->pids && set_limit(RLIMIT_NPROC, "RLIMIT_NPROC", p->pids, err) < 0)
		return -1;
	return 0;
}
