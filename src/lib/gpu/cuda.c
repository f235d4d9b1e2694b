/* cuda.c: the CUDA driver API (libcuda.so.1) through dlopen(), for warden-gpu.
 *
 * Sections: loading and the context; allocating all free memory in chunks.
 */
#define _GNU_SOURCE
#include "driver.h"

#include <dlfcn.h>

#define CHUNK     (1ULL << 30)
#define MIN_CHUNK (2ULL << 20)

struct sym {
	const char *name;
	size_t offset;
};

#define SYM(field, name)                                                                           \
	{                                                                                          \
		name, offsetof(struct cuda, field)                                                 \
	}

static const struct sym syms[] = {
    SYM(init, "cuInit"),
    SYM(device_get, "cuDeviceGet"),
    SYM(device_name, "cuDeviceGetName"),
    SYM(ctx_create, "cuCtxCreate_v2"),
    SYM(ctx_destroy, "cuCtxDestroy_v2"),
    SYM(ctx_sync, "cuCtxSynchronize"),
    SYM(mem_info, "cuMemGetInfo_v2"),
    SYM(alloc, "cuMemAlloc_v2"),
    SYM(free, "cuMemFree_v2"),
    SYM(memset8, "cuMemsetD8_v2"),
    SYM(memset32, "cuMemsetD32_v2"),
    SYM(dtoh, "cuMemcpyDtoH_v2"),
    SYM(htod, "cuMemcpyHtoD_v2"),
    SYM(error_string, "cuGetErrorString"),
    SYM(module_load, "cuModuleLoadData"),
    SYM(module_function, "cuModuleGetFunction"),
    SYM(launch, "cuLaunchKernel"),
};

int cuda_fail(struct cuda *c, int r, const char *what, struct warden_error **err)
{
	const char *msg = NULL;
	if (c->error_string)
		c->error_string(r, &msg);
	return warden_error_set(err, r == CUDA_OUT_OF_MEMORY ? ENOMEM : 0, "%s: %s (CUDA error %d)",
	                        what, msg ? msg : "unknown", r);
}

int cuda_open(struct cuda *c, const char *uuid, struct warden_error **err)
{
	memset(c, 0, sizeof(*c));
	/* Select the device (a GPU or a MIG instance) by UUID: the only way to reach a MIG
	 * instance, and unambiguous for whole GPUs too. */
	if (uuid && setenv("CUDA_VISIBLE_DEVICES", uuid, 1) < 0)
		return warden_error_set(err, errno, "CUDA_VISIBLE_DEVICES");
	c->lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!c->lib)
		return warden_error_set(err, ENODEV, "CUDA is not available: %s", dlerror());
	for (size_t i = 0; i < ARRAY_SIZE(syms); i++) {
		void *f = dlsym(c->lib, syms[i].name);
		if (!f) {
			cuda_close(c);
			return warden_error_set(err, ENODEV, "libcuda has no %s", syms[i].name);
		}
		memcpy((char *)c + syms[i].offset, &f, sizeof(f));
	}
	int r = c->init(0);
	if (r == 0)
		r = c->device_get(&c->device, 0);
	if (r != 0) {
		cuda_fail(c, r, uuid ? uuid : "cuInit", err);
		cuda_close(c);
		return -1;
	}
	r = c->ctx_create(&c->ctx, 0, c->device);
	if (r != 0) {
		cuda_fail(c, r, "cuCtxCreate", err);
		cuda_close(c);
		return -1;
	}
	return 0;
}

void cuda_close(struct cuda *c)
{
	if (c->ctx)
		c->ctx_destroy(c->ctx);
	c->ctx = NULL;
	if (c->lib)
		dlclose(c->lib);
	c->lib = NULL;
}

static void push_chunk(struct cuda_chunks *ch, cu_ptr p, size_t size)
{
	ch->ptr = xrealloc(ch->ptr, (ch->n + 1) * sizeof(*ch->ptr));
	ch->size = xrealloc(ch->size, (ch->n + 1) * sizeof(*ch->size));
	ch->ptr[ch->n] = p;
	ch->size[ch->n++] = size;
	ch->bytes += size;
}

int cuda_alloc_all(struct cuda *c, uint64_t reserve, struct cuda_chunks *ret,
                   struct warden_error **err)
{
	size_t free_b = 0, total = 0;
	memset(ret, 0, sizeof(*ret));
	int r = c->mem_info(&free_b, &total);
	if (r != 0)
		return cuda_fail(c, r, "cuMemGetInfo", err);
	uint64_t want = free_b > reserve ? free_b - reserve : 0;
	size_t size = CHUNK;
	while (ret->bytes < want && size >= MIN_CHUNK) {
		cu_ptr p;
		if (size > want - ret->bytes) {
			size /= 2;
			continue;
		}
		r = c->alloc(&p, size);
		if (r == CUDA_OUT_OF_MEMORY) {
			size /= 2;
			continue;
		}
		if (r != 0) {
			cuda_free_all(c, ret);
			return cuda_fail(c, r, "cuMemAlloc", err);
		}
		push_chunk(ret, p, size);
	}
	return 0;
}

void cuda_free_all(struct cuda *c, struct cuda_chunks *ch)
{
	for (size_t i = 0; i < ch->n; i++)
		c->free(ch->ptr[i]);
	free(ch->ptr);
	free(ch->size);
	memset(ch, 0, sizeof(*ch));
}
