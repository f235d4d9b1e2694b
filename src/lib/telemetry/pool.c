/* pool.c: the pool of ring buffers the sandboxes take turns with.
 *
 * A sandbox never adds a ring to the programs' array of rings, nor takes one out: every
 * change of a map-in-map from user space waits for an RCU grace period, measured at 15 to
 * 24 ms on a 16-CPU host. Rings are added in batches of TEL_POOL_GROW under the lock file
 * when none of the wanted size is free (one grace period per batch), and stay. The
 * `slots` array, mapped into every warden's memory, says each ring's size and owner; a
 * sandbox claims a free one with a compare-and-swap and gives it back on detach.
 */
#define _GNU_SOURCE
#include "tel-internal.h"

#include <bpf/bpf.h>
#include <sys/syscall.h>

size_t tel_slots_bytes(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	return (WD_SLOTS * sizeof(struct wd_slot) + page - 1) & ~(page - 1);
}

int tel_map_create(enum bpf_map_type type, const char *name, uint32_t key, uint32_t value,
                   uint32_t entries)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_type = type;
	a.key_size = key;
	a.value_size = value;
	a.max_entries = entries;
	snprintf(a.map_name, sizeof(a.map_name), "%s", name);
	return (int)syscall(__NR_bpf, BPF_MAP_CREATE, &a, sizeof(a));
}

/* Add up to n rings of `size` bytes to the pool after the last one. The caller holds the
 * lock file (or is the loader, before anyone else can see the set). Sizes are published
 * last: a ring can be claimed only once it is in `rings`. */
int tel_pool_grow(int rings_fd, struct wd_slot *slots, uint32_t size, uint32_t n,
                  struct warden_error **err)
{
	uint32_t first = 0, keys[TEL_POOL_GROW], count = 0;
	int fds[TEL_POOL_GROW], r = 0;
	while (first < WD_SLOTS && __atomic_load_n(&slots[first].size, __ATOMIC_ACQUIRE))
		first++;
	if (n > TEL_POOL_GROW)
		n = TEL_POOL_GROW;
	if (first + n > WD_SLOTS)
		n = WD_SLOTS - first;
	if (n == 0)
		return warden_error_set(err, ENOSPC, "all %d ring buffers are in use", WD_SLOTS);
	for (; count < n; count++) {
		keys[count] = first + count;
		fds[count] = tel_map_create(BPF_MAP_TYPE_RINGBUF, "wd_ring", 0, 0, size);
		if (fds[count] < 0) {
			r = warden_error_set(err, errno, "creating a ring buffer of %u bytes",
			                     size);
			break;
		}
	}
	/* One batch: the kernel waits for one grace period for all of them. */
	uint32_t done = count;
	if (r == 0 && bpf_map_update_batch(rings_fd, keys, fds, &done, NULL) < 0)
		r = warden_error_set(err, errno, "adding ring buffers to the pool");
	for (uint32_t i = 0; i < count; i++)
		close(fds[i]); /* the pool holds them now */
	if (r < 0)
		return r;
	for (uint32_t i = 0; i < done; i++)
		__atomic_store_n(&slots[first + i].size, size, __ATOMIC_RELEASE);
	return 0;
}

/* A free ring of this size, claimed for cg; -1 when there is none. */
static int pool_take(struct wd_slot *slots, uint32_t size, uint64_t cg)
{
	for (uint32_t i = 0; i < WD_SLOTS; i++) {
		uint32_t sz = __atomic_load_n(&slots[i].size, __ATOMIC_ACQUIRE);
		uint64_t free_owner = 0;
		if (sz == 0)
			break;
		if (sz == size &&
		    __atomic_compare_exchange_n(&slots[i].owner, &free_owner, cg, false,
		                                __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			return (int)i;
	}
	return -1;
}

int tel_slot_claim(struct tel_set *s, uint32_t size, uint64_t cg, struct warden_error **err)
{
	int idx = pool_take(s->slots, size, cg);
	if (idx >= 0)
		return idx;
	_cleanup_close_ int lock = tel_take_lock(err);
	if (lock < 0)
		return -1;
	idx = pool_take(s->slots, size, cg); /* grown by another warden while we waited */
	if (idx >= 0)
		return idx;
	if (tel_pool_grow(s->rings_fd, s->slots, size, TEL_POOL_GROW, err) < 0)
		return -1;
	idx = pool_take(s->slots, size, cg);
	if (idx < 0)
		return warden_error_set(err, EAGAIN, "no free ring buffer of %u bytes", size);
	return idx;
}

void tel_slot_release(struct tel_set *s, uint32_t idx, uint64_t cg)
{
	uint64_t owner = cg;
	if (idx < WD_SLOTS)
		__atomic_compare_exchange_n(&s->slots[idx].owner, &owner, 0, false,
		                            __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}
