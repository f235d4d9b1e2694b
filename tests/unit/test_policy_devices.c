/* test_policy_devices.c: the `devices:` and `gpu:` sections, the --device/--gpu specs,
 * the rendering back to YAML, the GPU lock files, and the plan's device checks. */
#include "unit.h"
#include "../../src/lib/gpu/gpu.h"
#include "../../src/lib/plan.h"

static void test_devices_forms(void **state)
{
	(void)state;
	struct warden_policy *p = parse_ok("devices:\n"
	                                   "  - /dev/fuse\n"
	                                   "  - /dev/kvm:r\n"
	                                   "  - {path: /dev/net/tun, access: rwm}\n"
	                                   "  - {path: /dev/x, access: m}\n");
	assert_int_equal(p->devices.n, 4);
	assert_string_equal(p->devices.v[0].path, "/dev/fuse");
	assert_int_equal(p->devices.v[0].access, WARDEN_DEV_READ | WARDEN_DEV_WRITE);
	assert_int_equal(p->devices.v[1].access, WARDEN_DEV_READ);
	assert_string_equal(p->devices.v[2].path, "/dev/net/tun");
	assert_int_equal(p->devices.v[2].access,
	                 WARDEN_DEV_READ | WARDEN_DEV_WRITE | WARDEN_DEV_MKNOD);
	assert_int_equal(p->devices.v[3].access, WARDEN_DEV_MKNOD);
	/* none by default; the GPU defaults are scrub and exclusive */
	struct warden_policy *d = warden_policy_new();
	assert_int_equal(d->devices.n, 0);
	assert_int_equal(d->gpu.devices.n, 0);
	assert_true(d->gpu.scrub);
	assert_true(d->gpu.exclusive);
	assert_false(d->gpu.uvm_tools);
	warden_policy_free(d);
	warden_policy_free(p);
}

static void test_devices_errors(void **state)
{
	(void)state;
	expect_parse_err("devices: /dev/fuse\n",
	                 "t.yaml:1:10: devices: expected a list, found a scalar");
	expect_parse_err("devices:\n  - dev/fuse\n",
	                 "t.yaml:2:5: devices[0]: \"dev/fuse\": \"dev/fuse\" is not an absolute, "
	                 "normalized path");
	expect_parse_err("devices:\n  - /dev/../etc/passwd\n",
	                 "t.yaml:2:5: devices[0]: \"/dev/../etc/passwd\": \"/dev/../etc/passwd\" "
	                 "is not an absolute, normalized path");
	expect_parse_err("devices:\n  - /dev/fuse:rx\n",
	                 "t.yaml:2:5: devices[0]: \"/dev/fuse:rx\": access letters are r (read), "
	                 "w (write) and m (mknod)");
	expect_parse_err("devices:\n  - /dev/fuse:rr\n",
	                 "t.yaml:2:5: devices[0]: \"/dev/fuse:rr\": an access letter is repeated");
	expect_parse_err("devices:\n  - \"/dev/fuse:\"\n",
	                 "t.yaml:2:5: devices[0]: \"/dev/fuse:\": empty access (use r, w, m or a "
	                 "combination such as rw)");
	expect_parse_err("devices:\n  - {path: /dev/fuse, access: x}\n",
	                 "t.yaml:2:31: devices[0]: access \"x\": access letters are r (read), w "
	                 "(write) and m (mknod)");
	expect_parse_err("devices:\n  - {access: r}\n", "t.yaml:2:5: devices[0]: missing \"path\"");
	expect_parse_err("devices:\n  - {path: /dev/a, mode: r}\n",
	                 "t.yaml:2:20: devices[0]: unknown key \"mode\" (expected path, access)");
	expect_parse_err("devices:\n  - {path: /dev/a, path: /dev/b}\n",
	                 "t.yaml:2:20: devices[0]: duplicate key \"path\"");
	expect_parse_err("devices:\n  - /dev/a\n  - /dev/a:r\n",
	                 "t.yaml:3:5: devices[1]: /dev/a is already granted (entry 0)");
	expect_parse_err("devices:\n  - [/dev/a]\n",
	                 "t.yaml:2:5: devices[0]: expected a string, found a list");
}

static void test_gpu_forms(void **state)
{
	(void)state;
	struct warden_policy *p =
	    parse_ok("gpu:\n  devices: [0, GPU-8f6a1c2e-1111-2222-3333-444455556666]\n"
	             "  memory: 20G\n  scrub: false\n  exclusive: false\n  uvm_tools: true\n");
	assert_int_equal(p->gpu.devices.n, 2);
	assert_string_equal(p->gpu.devices.v[0], "0");
	assert_int_equal(p->gpu.memory, 20ULL << 30);
	assert_false(p->gpu.scrub);
	assert_false(p->gpu.exclusive);
	assert_true(p->gpu.uvm_tools);
	warden_policy_free(p);
	p = parse_ok("gpu:\n  devices: all\n  memory: unlimited\n");
	assert_int_equal(p->gpu.devices.n, 1);
	assert_string_equal(p->gpu.devices.v[0], "all");
	assert_int_equal(p->gpu.memory, 0);
	assert_true(p->gpu.scrub);
	warden_policy_free(p);
	p = parse_ok("gpu: {devices: [MIG-5c0a8d3e-aaaa-bbbb-cccc-0123456789ab]}\n");
	assert_string_equal(p->gpu.devices.v[0], "MIG-5c0a8d3e-aaaa-bbbb-cccc-0123456789ab");
	warden_policy_free(p);
}

static void test_gpu_errors(void **state)
{
	(void)state;
	expect_parse_err("gpu: [0]\n", "t.yaml:1:6: gpu: expected a mapping, found a list");
	expect_parse_err("gpu:\n  devices: [64]\n",
	                 "t.yaml:2:13: gpu.devices[0]: \"64\": a GPU index is 0 to 63");
	expect_parse_err("gpu:\n  devices: [nvidia0]\n",
	                 "t.yaml:2:13: gpu.devices[0]: \"nvidia0\": a GPU is \"all\", an index, "
	                 "\"GPU-<uuid>\" or \"MIG-<uuid>\"");
	expect_parse_err("gpu:\n  devices: [GPU-xyz]\n",
	                 "t.yaml:2:13: gpu.devices[0]: \"GPU-xyz\": not a UUID (hexadecimal "
	                 "digits and dashes)");
	expect_parse_err("gpu:\n  devices: [0, 0]\n",
	                 "t.yaml:2:16: gpu.devices[1]: \"0\" is listed twice");
	expect_parse_err("gpu:\n  devices: [all, 1]\n",
	                 "t.yaml:2:13: gpu.devices[0]: \"all\" cannot be combined with other GPUs");
	expect_parse_err("gpu:\n  devices: [0]\n  memory: 0\n",
	                 "t.yaml:3:11: gpu.memory: \"0\": at least 1M, or \"unlimited\"");
	expect_parse_err("gpu:\n  devices: [0]\n  scrub: yes\n",
	                 "t.yaml:3:10: gpu.scrub: \"yes\" is not true or false");
	expect_parse_err("gpu:\n  devices: [0]\n  vram: 1G\n",
	                 "t.yaml:3:3: gpu.vram: unknown key (expected one of: devices, memory, "
	                 "scrub, exclusive, uvm_tools)");
	expect_parse_err("gpu:\n  devices: [0]\n  scrub: true\n  scrub: false\n",
	                 "t.yaml:4:3: gpu.scrub: duplicate key");
	expect_parse_err("gpu:\n  scrub: false\n",
	                 "t.yaml:2:3: gpu: settings without \"devices\" grant no GPU");
}

static void test_specs(void **state)
{
	(void)state;
	struct warden_device d;
	struct warden_error *e = NULL;
	assert_int_equal(warden_device_parse_spec("/dev/fuse", &d, &e), 0);
	assert_int_equal(d.access, WARDEN_DEV_READ | WARDEN_DEV_WRITE);
	free(d.path);
	assert_int_equal(warden_device_parse_spec("/dev/fuse:mr", &d, &e), 0);
	assert_int_equal(d.access, WARDEN_DEV_READ | WARDEN_DEV_MKNOD);
	char buf[4];
	warden_device_access_format(d.access, buf);
	assert_string_equal(buf, "rm");
	free(d.path);
	assert_int_equal(warden_device_parse_spec("fuse:r", &d, &e), -1);
	assert_string_equal(warden_error_text(e), "\"fuse:r\": \"fuse\" is not an absolute, "
	                                          "normalized path");
	warden_error_free(e);
	const char *why = NULL;
	assert_true(warden_gpu_spec_valid("all", &why));
	assert_true(warden_gpu_spec_valid("7", &why));
	assert_true(
	    warden_gpu_spec_valid("MIG-GPU-8f6a1c2e-1111-2222-3333-444455556666/1/0", &why));
	assert_false(warden_gpu_spec_valid("-1", &why));
	assert_false(warden_gpu_spec_valid("GPU-", &why));
	assert_false(warden_gpu_spec_valid("GPU-1234567z", &why));
}

/* What `warden policy show` prints reads back to the same grants. */
static void test_render_round_trip(void **state)
{
	(void)state;
	struct warden_policy *p = parse_ok("devices: [/dev/a:r, /dev/b:rwm]\n"
	                                   "gpu: {devices: [1], memory: 2G, scrub: false}\n");
	char *yaml = warden_policy_to_yaml(p);
	struct warden_policy *q = parse_ok(yaml);
	assert_int_equal(q->devices.n, 2);
	assert_int_equal(q->devices.v[0].access, WARDEN_DEV_READ);
	assert_int_equal(q->devices.v[1].access, 7);
	assert_string_equal(q->gpu.devices.v[0], "1");
	assert_int_equal(q->gpu.memory, 2ULL << 30);
	assert_false(q->gpu.scrub);
	assert_true(q->gpu.exclusive);
	free(yaml);
	/* the defaults render no devices: or gpu: section */
	struct warden_policy *d = warden_policy_new();
	yaml = warden_policy_to_yaml(d);
	assert_null(strstr(yaml, "devices"));
	assert_null(strstr(yaml, "gpu"));
	free(yaml);
	warden_policy_free(d);
	warden_policy_free(q);
	warden_policy_free(p);
}

/* Plan-time checks on the host: only device nodes under /dev. */
static void test_plan_device_checks(void **state)
{
	(void)state;
	static const struct {
		const char *path, *want;
	} cases[] = {
	    {"/dev/warden-no-such-node", "devices[0]: /dev/warden-no-such-node: No such file or "
	                                 "directory"},
	    {"/etc/passwd", "devices[0]: /etc/passwd: only nodes under /dev can be granted"},
	    {"/dev/shm", "devices[0]: /dev/shm: not a device node"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct warden_policy *p = warden_policy_new();
		struct warden_error *e = NULL;
		warden_devices_push(&p->devices, cases[i].path, WARDEN_DEV_READ);
		struct warden_plan *plan = warden_plan_compile(p, NULL, &e);
		assert_null(plan);
		assert_string_equal(warden_error_text(e), cases[i].want);
		warden_error_free(e);
	}
	struct warden_policy *p = warden_policy_new();
	struct warden_error *e = NULL;
	warden_devices_push(&p->devices, "/dev/null", WARDEN_DEV_READ);
	struct warden_plan *plan = warden_plan_compile(p, NULL, &e);
	assert_non_null(plan);
	assert_int_equal(plan->n_devices, 1);
	assert_int_equal(plan->devices[0].type, 'c');
	assert_int_equal(plan->devices[0].major, 1);
	assert_int_equal(plan->devices[0].minor, 3);
	assert_non_null(plan->dev_prog);
	assert_true(plan->dev_prog_len > 8);
	warden_plan_free(plan);
}

/* Exclusive grants: a second holder is refused while the first lives; a pending marker
 * (no successful scrub) refuses the next grant until a forced acquire clears it. */
static void test_gpu_locks(void **state)
{
	(void)state;
	char *dir = make_tmpdir();
	setenv("WARDEN_GPU_LOCK_DIR", dir, 1);
	struct warden_gpu_lock a, b;
	struct warden_error *e = NULL;
	const char *uuid = "GPU-00000000-1111-2222-3333-444444444444";
	assert_int_equal(warden_gpu_lock_acquire(uuid, true, false, "sb-one", &a, &e), 0);
	warden_gpu_lock_set_owner(&a, "sb-one", true);
	assert_int_equal(warden_gpu_lock_acquire(uuid, true, false, "sb-two", &b, &e), -1);
	assert_int_equal(e->errnum, EBUSY);
	assert_non_null(strstr(warden_error_text(e), "in use by sandbox sb-one"));
	warden_error_free(e);
	e = NULL;
	warden_gpu_lock_release(&a, false); /* the scrub failed: the marker stays */
	assert_int_equal(warden_gpu_lock_acquire(uuid, true, false, "sb-two", &b, &e), -1);
	assert_int_equal(e->errnum, EAGAIN);
	assert_non_null(strstr(warden_error_text(e), "sandbox sb-one ended without a successful"));
	warden_error_free(e);
	e = NULL;
	assert_int_equal(warden_gpu_lock_acquire(uuid, true, true, "scrub", &b, &e), 0);
	warden_gpu_lock_release(&b, true); /* scrubbed */
	assert_int_equal(warden_gpu_lock_acquire(uuid, false, false, "sb-3", &a, &e), 0);
	assert_int_equal(warden_gpu_lock_acquire(uuid, false, false, "sb-4", &b, &e), 0);
	/* both still hold it: an exclusive grant is refused */
	struct warden_gpu_lock c;
	assert_int_equal(warden_gpu_lock_acquire(uuid, true, false, "sb-5", &c, &e), -1);
	assert_int_equal(e->errnum, EBUSY);
	warden_error_free(e);
	e = NULL;
	assert_false(warden_gpu_lock_is_last(&a));
	warden_gpu_lock_release(&a, false);
	assert_true(warden_gpu_lock_is_last(&b));
	warden_gpu_lock_release(&b, true);
	unsetenv("WARDEN_GPU_LOCK_DIR");
	rm_tree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_devices_forms),
	    cmocka_unit_test(test_devices_errors),
	    cmocka_unit_test(test_gpu_forms),
	    cmocka_unit_test(test_gpu_errors),
	    cmocka_unit_test(test_specs),
	    cmocka_unit_test(test_render_round_trip),
	    cmocka_unit_test(test_plan_device_checks),
	    cmocka_unit_test(test_gpu_locks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
