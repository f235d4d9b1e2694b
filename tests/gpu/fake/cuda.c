/* A test double of the CUDA driver API (libcuda.so.1) for tests/integration/
 * test_gpu_fake.py: "device memory" is host memory, so warden's scrub and leak check run
 * their whole course on machines without a GPU. It measures nothing.
 *
 *   FAKE_CUDA_MEM    bytes of "device memory" (default 64 MiB)
 *   FAKE_CUDA_DIRTY  when set, cuMemsetD8 writes nothing: a scrub's read-back then finds
 *                    the pattern every allocation starts with, and fails verification
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned long long cu_ptr;

static size_t pool, used;

int cuInit(unsigned flags);
int cuDeviceGet(int *d, int i);
int cuDeviceGetName(char *buf, int len, int d);
int cuCtxCreate_v2(void **ctx, unsigned flags, int d);
int cuCtxDestroy_v2(void *ctx);
int cuCtxSynchronize(void);
int cuMemGetInfo_v2(size_t *free_b, size_t *total);
int cuMemAlloc_v2(cu_ptr *p, size_t size);
int cuMemFree_v2(cu_ptr p);
int cuMemsetD8_v2(cu_ptr p, unsigned char v, size_t n);
int cuMemsetD32_v2(cu_ptr p, unsigned v, size_t n);
int cuMemcpyDtoH_v2(void *dst, cu_ptr src, size_t n);
int cuMemcpyHtoD_v2(cu_ptr dst, const void *src, size_t n);
int cuGetErrorString(int r, const char **s);
int cuModuleLoadData(void **m, const void *img);
int cuModuleGetFunction(void **f, void *m, const char *name);
int cuLaunchKernel(void *f, unsigned a, unsigned b, unsigned c, unsigned d, unsigned e, unsigned g,
                   unsigned h, void *s, void **p, void **x);

int cuInit(unsigned flags)
{
	(void)flags;
	const char *mem = getenv("FAKE_CUDA_MEM");
	pool = mem ? strtoull(mem, NULL, 10) : 64ULL << 20;
	return 0;
}

int cuDeviceGet(int *d, int i)
{
	*d = i;
	return 0;
}

int cuDeviceGetName(char *buf, int len, int d)
{
	(void)d;
	snprintf(buf, (size_t)len, "Fake GPU (test double)");
	return 0;
}

int cuCtxCreate_v2(void **ctx, unsigned flags, int d)
{
	(void)flags;
	(void)d;
	*ctx = &pool;
	return 0;
}

int cuCtxDestroy_v2(void *ctx)
{
	(void)ctx;
	return 0;
}

int cuCtxSynchronize(void)
{
	return 0;
}

int cuMemGetInfo_v2(size_t *free_b, size_t *total)
{
	*free_b = pool - used;
	*total = pool;
	return 0;
}

/* A header before each block keeps its size for cuMemFree. */
int cuMemAlloc_v2(cu_ptr *p, size_t size)
{
	if (size > pool - used)
		return 2; /* CUDA_ERROR_OUT_OF_MEMORY */
	size_t *b = malloc(size + sizeof(size_t));
	if (!b)
		return 2;
	b[0] = size;
	memset(b + 1, 0xab, size);
	used += size;
	*p = (cu_ptr)(b + 1);
	return 0;
}

int cuMemFree_v2(cu_ptr p)
{
	size_t *b = (size_t *)p - 1;
	used -= b[0];
	free(b);
	return 0;
}

int cuMemsetD8_v2(cu_ptr p, unsigned char v, size_t n)
{
	if (!getenv("FAKE_CUDA_DIRTY"))
		memset((void *)p, v, n);
	return 0;
}

int cuMemsetD32_v2(cu_ptr p, unsigned v, size_t n)
{
	unsigned *w = (unsigned *)p;
	for (size_t i = 0; i < n; i++)
		w[i] = v;
	return 0;
}

int cuMemcpyDtoH_v2(void *dst, cu_ptr src, size_t n)
{
	memcpy(dst, (void *)src, n);
	return 0;
}

int cuMemcpyHtoD_v2(cu_ptr dst, const void *src, size_t n)
{
	memcpy((void *)dst, src, n);
	return 0;
}

int cuGetErrorString(int r, const char **s)
{
	*s = r == 2 ? "out of memory (fake)" : "error (fake)";
	return 0;
}

int cuModuleLoadData(void **m, const void *img)
{
	(void)img;
	*m = &pool;
	return 0;
}

int cuModuleGetFunction(void **f, void *m, const char *name)
{
	(void)m;
	(void)name;
	*f = &pool;
	return 0;
}

int cuLaunchKernel(void *f, unsigned a, unsigned b, unsigned c, unsigned d, unsigned e, unsigned g,
                   unsigned h, void *s, void **p, void **x)
{
	(void)f, (void)a, (void)b, (void)c, (void)d, (void)e, (void)g, (void)h, (void)s, (void)p,
	    (void)x;
	return 999; /* no kernels here: a test double */
}
