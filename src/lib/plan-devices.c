/* plan-devices.c: the devices a policy grants (devices:, gpu:), resolved on the host once
 * per plan.
 *
 * Sections: checking granted nodes; the GPU grant (gpu/grant.c finds its nodes and driver
 * files); the device cgroup program.
 *
 * Only nodes under /dev are granted: /dev inside is a fresh directory warden builds
 * (devices.c), so a grant never has to make a path in a place the sandbox can write.
 */
#define _GNU_SOURCE
#include "plan.h"
#include "gpu/gpu.h"
#include "ns/ns.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

int warden_plan_add_device(struct warden_plan *plan, const char *what, const char *path,
                           unsigned access, struct warden_error **err)
{
	struct stat st;
	if (strncmp(path, "/dev/", 5) || !path_is_normal_absolute(path))
		return warden_error_set(err, 0, "%s: %s: only nodes under /dev can be granted",
		                        what, path);
	if (lstat(path, &st) < 0)
		return warden_error_set(err, errno, "%s: %s", what, path);
	if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode))
		return warden_error_set(err, 0, "%s: %s: not a device node", what, path);
	for (size_t i = 0; i < plan->n_devices; i++)
		if (streq(plan->devices[i].path, path)) {
			plan->devices[i].access |= access;
			return 0;
		}
	plan->devices = xrealloc(plan->devices, (plan->n_devices + 1) * sizeof(*plan->devices));
	plan->devices[plan->n_devices++] = (struct warden_plan_device){
	    .path = xstrdup(path),
	    .type = S_ISCHR(st.st_mode) ? 'c' : 'b',
	    .major = major(st.st_rdev),
	    .minor = minor(st.st_rdev),
	    .access = access,
	};
	return 0;
}

int warden_plan_devices(struct warden_plan *plan, struct warden_error **err)
{
	const struct warden_policy *p = plan->policy;
	for (size_t i = 0; i < p->devices.n; i++) {
		char what[32];
		snprintf(what, sizeof(what), "devices[%zu]", i);
		if (warden_plan_add_device(plan, what, p->devices.v[i].path, p->devices.v[i].access,
		                           err) < 0)
			return -1;
	}
	if (p->gpu.devices.n && warden_gpu_plan(plan, err) < 0)
		return -1;
	if (plan->n_devices)
		ns_devcgroup_compile(plan);
	return 0;
}

void warden_plan_devices_free(struct warden_plan *plan)
{
	for (size_t i = 0; i < plan->n_devices; i++)
		free(plan->devices[i].path);
	free(plan->devices);
	for (size_t i = 0; i < plan->n_gpus; i++) {
		free(plan->gpus[i].uuid);
		free(plan->gpus[i].parent_uuid);
	}
	free(plan->gpus);
	free(plan->dev_prog);
}
