/* leak.c: the writer/listener test of `warden gpu leakcheck`, each part run in a fresh
 * process by warden-gpu.
 *
 * Sections: counting tagged words; the writer; the listener; the negative control.
 *
 * The writer fills most free device memory with a 32-bit tag and exits without freeing;
 * the listener, a later process, allocates all free memory without initialising it and
 * counts the tag's words: any it finds is another process's data. The control proves the
 * listener can see residue at all: one process writes the tag, frees, allocates again and
 * counts what it finds in memory it never wrote.
 */
#define _GNU_SOURCE
#include "driver.h"

#define WRITER_RESERVE (256ULL << 20) /* left for the listener's context */
#define COPY_BYTES     (64ULL << 20)
#define CONTROL_BYTES  (256ULL << 20)

static int count_tagged(struct cuda *c, cu_ptr p, size_t size, uint32_t tag, uint64_t *count,
                        struct warden_error **err)
{
	_cleanup_free_ uint32_t *buf = xmalloc(COPY_BYTES);
	for (size_t off = 0; off < size; off += COPY_BYTES) {
		size_t len = size - off < COPY_BYTES ? size - off : COPY_BYTES;
		int r = c->dtoh(buf, p + off, len);
		if (r != 0)
			return cuda_fail(c, r, "reading device memory", err);
		for (size_t i = 0; i < len / 4; i++)
			*count += buf[i] == tag;
	}
	return 0;
}

int leak_write(const char *uuid, uint32_t tag, uint64_t *ret_bytes, struct warden_error **err)
{
	struct cuda c;
	struct cuda_chunks ch;
	if (cuda_open(&c, uuid, err) < 0)
		return -1;
	if (cuda_alloc_all(&c, WRITER_RESERVE, &ch, err) < 0)
		return -1;
	int r = 0;
	for (size_t i = 0; r == 0 && i < ch.n; i++)
		r = c.memset32(ch.ptr[i], tag, ch.size[i] / 4);
	if (r == 0)
		r = c.ctx_sync();
	if (r != 0)
		return cuda_fail(&c, r, "cuMemsetD32", err);
	*ret_bytes = ch.bytes;
	/* Deliberately no free and no context teardown: the caller exits at once. */
	return 0;
}

int leak_listen(const char *uuid, uint32_t tag, uint64_t *ret_bytes, uint64_t *ret_tagged,
                struct warden_error **err)
{
	struct cuda c;
	struct cuda_chunks ch;
	*ret_tagged = 0;
	if (cuda_open(&c, uuid, err) < 0)
		return -1;
	if (cuda_alloc_all(&c, 0, &ch, err) < 0) {
		cuda_close(&c);
		return -1;
	}
	int r = 0;
	for (size_t i = 0; r == 0 && i < ch.n; i++)
		r = count_tagged(&c, ch.ptr[i], ch.size[i], tag, ret_tagged, err);
	*ret_bytes = ch.bytes;
	cuda_free_all(&c, &ch);
	cuda_close(&c);
	return r;
}

int leak_control(const char *uuid, uint32_t tag, uint64_t *ret_bytes, uint64_t *ret_tagged,
                 struct warden_error **err)
{
	struct cuda c;
	cu_ptr p;
	*ret_tagged = 0;
	*ret_bytes = CONTROL_BYTES;
	if (cuda_open(&c, uuid, err) < 0)
		return -1;
	int r = c.alloc(&p, CONTROL_BYTES);
	if (r == 0)
		r = c.memset32(p, tag, CONTROL_BYTES / 4);
	if (r == 0)
		r = c.ctx_sync();
	if (r == 0)
		r = c.free(p);
	if (r == 0)
		r = c.alloc(&p, CONTROL_BYTES);
	if (r != 0) {
		cuda_fail(&c, r, "control allocation", err);
		cuda_close(&c);
		return -1;
	}
	int v = count_tagged(&c, p, CONTROL_BYTES, tag, ret_tagged, err);
	c.free(p);
	cuda_close(&c);
	return v;
}
