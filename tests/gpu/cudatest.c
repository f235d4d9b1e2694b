/* cudatest: a CUDA program for tests/gpu/run.sh, run inside sandboxes. It needs no CUDA
 * toolkit: libcuda.so.1 is loaded with dlopen() and the kernel is PTX text, compiled by
 * the driver.
 *
 *   cudatest                 add two vectors on device 0 and check the sum
 *   cudatest --hold MIB SEC  also keep MIB MiB allocated for SEC seconds (what NVML must
 *                            attribute to the sandbox; what gpu.memory limits)
 *
 * Prints one JSON line; exit 0 when the sum was right.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef unsigned long long cu_ptr;

static const char ptx[] =
    ".version 6.0\n"
    ".target sm_50\n"
    ".address_size 64\n"
    ".visible .entry add(.param .u64 a, .param .u64 b, .param .u64 c, .param .u32 n)\n"
    "{\n"
    "  .reg .pred p;\n"
    "  .reg .b32 r<6>;\n"
    "  .reg .f32 f<4>;\n"
    "  .reg .b64 rd<11>;\n"
    "  ld.param.u64 rd1, [a];\n"
    "  ld.param.u64 rd2, [b];\n"
    "  ld.param.u64 rd3, [c];\n"
    "  ld.param.u32 r1, [n];\n"
    "  mov.u32 r2, %ctaid.x;\n"
    "  mov.u32 r3, %ntid.x;\n"
    "  mov.u32 r4, %tid.x;\n"
    "  mad.lo.s32 r5, r2, r3, r4;\n"
    "  setp.ge.u32 p, r5, r1;\n"
    "  @p bra DONE;\n"
    "  cvta.to.global.u64 rd4, rd1;\n"
    "  cvta.to.global.u64 rd5, rd2;\n"
    "  cvta.to.global.u64 rd6, rd3;\n"
    "  mul.wide.u32 rd7, r5, 4;\n"
    "  add.s64 rd8, rd4, rd7;\n"
    "  add.s64 rd9, rd5, rd7;\n"
    "  add.s64 rd10, rd6, rd7;\n"
    "  ld.global.f32 f1, [rd8];\n"
    "  ld.global.f32 f2, [rd9];\n"
    "  add.f32 f3, f1, f2;\n"
    "  st.global.f32 [rd10], f3;\n"
    "DONE:\n"
    "  ret;\n"
    "}\n";

static void *lib;

static void *sym(const char *name)
{
	void *f = dlsym(lib, name);
	if (!f) {
		printf("{\"ok\": false, \"error\": \"libcuda has no %s\"}\n", name);
		exit(1);
	}
	return f;
}

static void check(int r, const char *what)
{
	if (r == 0)
		return;
	const char *msg = "?";
	int (*err_string)(int, const char **) =
	    (int (*)(int, const char **))sym("cuGetErrorString");
	err_string(r, &msg);
	printf("{\"ok\": false, \"error\": \"%s: %s (%d)\"}\n", what, msg, r);
	exit(1);
}

int main(int argc, char **argv)
{
	size_t hold_mib = 0;
	unsigned hold_s = 0;
	if (argc == 4 && !strcmp(argv[1], "--hold")) {
		hold_mib = strtoul(argv[2], NULL, 10);
		hold_s = (unsigned)strtoul(argv[3], NULL, 10);
	}
	lib = dlopen("libcuda.so.1", RTLD_NOW);
	if (!lib) {
		printf("{\"ok\": false, \"error\": \"%s\"}\n", dlerror());
		return 1;
	}
	int (*init)(unsigned) = (int (*)(unsigned))sym("cuInit");
	int (*device_get)(int *, int) = (int (*)(int *, int))sym("cuDeviceGet");
	int (*device_name)(char *, int, int) = (int (*)(char *, int, int))sym("cuDeviceGetName");
	int (*ctx_create)(void **, unsigned, int) =
	    (int (*)(void **, unsigned, int))sym("cuCtxCreate_v2");
	int (*load)(void **, const void *) =
	    (int (*)(void **, const void *))sym("cuModuleLoadData");
	int (*function)(void **, void *, const char *) =
	    (int (*)(void **, void *, const char *))sym("cuModuleGetFunction");
	int (*alloc)(cu_ptr *, size_t) = (int (*)(cu_ptr *, size_t))sym("cuMemAlloc_v2");
	int (*htod)(cu_ptr, const void *, size_t) =
	    (int (*)(cu_ptr, const void *, size_t))sym("cuMemcpyHtoD_v2");
	int (*dtoh)(void *, cu_ptr, size_t) =
	    (int (*)(void *, cu_ptr, size_t))sym("cuMemcpyDtoH_v2");
	int (*launch)(void *, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
	              void *, void **, void **) =
	    (int (*)(void *, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
	             void *, void **, void **))sym("cuLaunchKernel");
	int (*sync)(void) = (int (*)(void))sym("cuCtxSynchronize");

	int dev;
	void *ctx, *mod, *fn;
	char name[128] = "";
	check(init(0), "cuInit");
	check(device_get(&dev, 0), "cuDeviceGet");
	check(device_name(name, sizeof(name), dev), "cuDeviceGetName");
	check(ctx_create(&ctx, 0, dev), "cuCtxCreate");
	check(load(&mod, ptx), "cuModuleLoadData");
	check(function(&fn, mod, "add"), "cuModuleGetFunction");

	unsigned n = 1 << 20;
	size_t bytes = n * sizeof(float);
	float *a = malloc(bytes), *b = malloc(bytes), *c = malloc(bytes);
	for (unsigned i = 0; i < n; i++) {
		a[i] = (float)i;
		b[i] = 2.0f * (float)i;
	}
	cu_ptr da, db, dc;
	check(alloc(&da, bytes), "cuMemAlloc");
	check(alloc(&db, bytes), "cuMemAlloc");
	check(alloc(&dc, bytes), "cuMemAlloc");
	check(htod(da, a, bytes), "cuMemcpyHtoD");
	check(htod(db, b, bytes), "cuMemcpyHtoD");
	void *args[] = {&da, &db, &dc, &n};
	check(launch(fn, (n + 255) / 256, 1, 1, 256, 1, 1, 0, NULL, args, NULL), "cuLaunchKernel");
	check(sync(), "cuCtxSynchronize");
	check(dtoh(c, dc, bytes), "cuMemcpyDtoH");
	unsigned wrong = 0;
	for (unsigned i = 0; i < n; i++)
		wrong += c[i] != 3.0f * (float)i;
	if (hold_mib) {
		cu_ptr held;
		check(alloc(&held, hold_mib << 20), "cuMemAlloc (hold)");
		printf("{\"holding_mib\": %zu, \"pid\": %d}\n", hold_mib, (int)getpid());
		fflush(stdout);
		sleep(hold_s);
	}
	printf("{\"ok\": %s, \"device\": \"%s\", \"elements\": %u, \"wrong\": %u}\n",
	       wrong ? "false" : "true", name, n, wrong);
	return wrong ? 1 : 0;
}
