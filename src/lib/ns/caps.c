/* caps.c: capabilities and securebits.
 *
 * Sections: securebits; init's reduced set; dropping everything for a started process.
 *
 * Inside its user namespace init starts with every capability. It needs CAP_SETUID and
 * CAP_SETGID to give each started process the sandbox user's identity, CAP_SETPCAP to
 * then empty that process's bounding set, and CAP_KILL to forward signals to processes
 * of another uid (init is the sandbox's root, the command runs as the sandbox user);
 * nothing else survives setup, and all four only reach into the sandbox's own user
 * namespace. Every
 * process it starts ends with all five sets empty and the securebits locked, so that
 * exec of any file (root-owned, uid 0 inside, file capabilities) yields no capability.
 */
#define _GNU_SOURCE
#include "ns.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

static int last_cap(void)
{
	static int last = -1;
	char buf[16];
	if (last < 0) {
		/* Read once, before pivot_root; later calls reuse the value. */
		if (read_file_at(AT_FDCWD, "/proc/sys/kernel/cap_last_cap", buf, sizeof(buf)) > 0)
			last = atoi(buf);
		if (last <= 0 || last > 63)
			last = CAP_LAST_CAP;
	}
	return last;
}

static int capset_sets(uint64_t effective, uint64_t permitted, uint64_t inheritable)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct d[2] = {
	    {(uint32_t)effective, (uint32_t)permitted, (uint32_t)inheritable},
	    {(uint32_t)(effective >> 32), (uint32_t)(permitted >> 32),
	     (uint32_t)(inheritable >> 32)},
	};
	return (int)syscall(SYS_capset, &h, d);
}

static int drop_bounding_except(uint64_t keep, struct warden_error **err)
{
	for (int cap = 0; cap <= last_cap(); cap++) {
		if (keep & (1ULL << cap))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			return warden_error_set(
			    err, errno, "dropping capability %d from the bounding set", cap);
	}
	return 0;
}

int ns_caps_restrict_init(struct warden_error **err)
{
	(void)last_cap(); /* cache before /proc changes under us */
	/* NOROOT: uid 0 gets no capabilities from exec. NO_SETUID_FIXUP: changing uids never
	 * re-grants any. NO_CAP_AMBIENT_RAISE: the ambient set stays empty. Each locked. */
	unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
	                     SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
	                     SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
	if (prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) < 0)
		return warden_error_set(err, errno, "setting securebits");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		return warden_error_set(err, errno, "clearing ambient capabilities");
	uint64_t keep = (1ULL << CAP_SETUID) | (1ULL << CAP_SETGID) | (1ULL << CAP_SETPCAP) |
	                (1ULL << CAP_KILL);
	if (drop_bounding_except(keep, err) < 0)
		return -1;
	if (capset_sets(keep, keep, 0) < 0)
		return warden_error_set(err, errno, "reducing init's capabilities");
	return 0;
}

int ns_caps_drop_all(struct warden_error **err)
{
	/* init has already emptied the bounding set but for these (CAP_SETPCAP last: dropping
	 * the others needs it). */
	static const int kept[] = {CAP_SETUID, CAP_SETGID, CAP_KILL, CAP_SETPCAP};
	for (size_t i = 0; i < ARRAY_SIZE(kept); i++)
		if (prctl(PR_CAPBSET_DROP, kept[i], 0, 0, 0) < 0)
			return warden_error_set(err, errno,
			                        "dropping capability %d from the "
			                        "bounding set",
			                        kept[i]);
	if (capset_sets(0, 0, 0) < 0)
		return warden_error_set(err, errno, "dropping capabilities");
	return 0;
}
