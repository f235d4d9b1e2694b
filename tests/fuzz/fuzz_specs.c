/* fuzz_specs.c: the small string parsers, chosen by the first byte: volume specs
 * ("HOST:PATH[:ro|rw]"), user specs, sizes, whole numbers, decimals, paths and variable
 * names, device specs ("PATH[:ACCESS]") and GPU names. Each accepted value is written back the way
 * warden writes it and must parse to the same value.
 */
#include "src/lib/policy.h"

#include <inttypes.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { SPEC_MOUNT, SPEC_USER, SPEC_SIZE, SPEC_UINT, SPEC_MILLI, SPEC_PATH, SPEC_DEVICE, SPEC_MAX };

/* A device spec: an accepted one has a normal absolute path and access bits within rwm,
 * and its rendering parses back to the same grant. GPU names are checked alongside. */
static void check_device(const char *s)
{
	struct warden_device d = {0}, back = {0};
	struct warden_error *e = NULL;
	const char *why = NULL;
	char access[4];
	(void)warden_gpu_spec_valid(s, &why);
	if (warden_device_parse_spec(s, &d, &e) < 0) {
		if (!e || d.path)
			abort();
		warden_error_free(e);
		return;
	}
	if (e || !path_is_normal_absolute(d.path) || !d.access || (d.access & ~7u))
		abort();
	warden_device_access_format(d.access, access);
	char *again = xasprintf("%s:%s", d.path, access);
	if (warden_device_parse_spec(again, &back, &e) < 0 || !streq(back.path, d.path) ||
	    back.access != d.access)
		abort();
	free(again);
	free(d.path);
	free(back.path);
}

static void check_mount(const char *s)
{
	struct warden_mount m = {0}, back = {0};
	struct warden_error *e = NULL;
	if (warden_mount_parse_spec(s, &m, &e) < 0) {
		if (!e || m.host || m.path)
			abort();
		warden_error_free(e);
		return;
	}
	if (e || !m.host[0] || !path_is_normal_absolute(m.path) || m.optional)
		abort();
	char *again = xasprintf("%s:%s:%s", m.host, m.path, m.rw ? "rw" : "ro");
	if (warden_mount_parse_spec(again, &back, &e) < 0 || !streq(back.host, m.host) ||
	    !streq(back.path, m.path) || back.rw != m.rw)
		abort();
	free(again);
	free(m.host);
	free(m.path);
	free(back.host);
	free(back.path);
}

static void check_user(const char *s)
{
	uid_t u = 99999, u2;
	gid_t g = 99999, g2;
	struct warden_error *e = NULL;
	if (warden_user_parse(s, &u, &g, &e) < 0) {
		if (!e || u != 99999 || g != 99999)
			abort();
		warden_error_free(e);
		return;
	}
	if (e || u > 65533 || g > 65533)
		abort();
	char again[32];
	snprintf(again, sizeof(again), "%u:%u", (unsigned)u, (unsigned)g);
	if (warden_user_parse(again, &u2, &g2, &e) < 0 || u2 != u || g2 != g)
		abort();
}

static void check_size(const char *s)
{
	uint64_t v, back;
	const char *why = NULL;
	char buf[32];
	if (parse_size(s, &v, &why) < 0) {
		if (!why)
			abort();
		return;
	}
	format_size(v, buf, sizeof(buf));
	/* the few values whose digits overflow parse_size's check are written in bytes */
	if (parse_size(buf, &back, &why) == 0 && back != v)
		abort();
}

static void check_uint(const char *s, uint64_t max)
{
	uint64_t v, back;
	const char *why = NULL;
	char buf[32];
	if (parse_uint(s, max, &v, &why) < 0) {
		if (!why)
			abort();
		return;
	}
	if (v > max)
		abort();
	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	if (parse_uint(buf, max, &back, &why) < 0 || back != v)
		abort();
}

static void check_milli(const char *s)
{
	uint64_t v, back;
	const char *why = NULL;
	char buf[48];
	if (parse_milli(s, &v, &why) < 0) {
		if (!why)
			abort();
		return;
	}
	if (v > 1000000999)
		abort();
	snprintf(buf, sizeof(buf), "%" PRIu64 ".%03" PRIu64, v / 1000, v % 1000);
	if (parse_milli(buf, &back, &why) < 0 || back != v)
		abort();
}

/* A second implementation of path_is_normal_absolute() to compare with. */
static bool normal_absolute(const char *p)
{
	size_t n = strlen(p);
	if (n < 2 || p[0] != '/' || p[n - 1] == '/' || strstr(p, "//") || strstr(p, "/./") ||
	    strstr(p, "/../"))
		return false;
	if ((n >= 2 && streq(p + n - 2, "/.")) || (n >= 3 && streq(p + n - 3, "/..")))
		return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	char *s = strndup((const char *)data + 1, size - 1);
	if (!s)
		abort();
	switch (data[0] % SPEC_MAX) {
	case SPEC_MOUNT:
		check_mount(s);
		break;
	case SPEC_USER:
		check_user(s);
		break;
	case SPEC_SIZE:
		check_size(s);
		break;
	case SPEC_UINT:
		check_uint(s, UINT64_MAX);
		check_uint(s, 65535);
		break;
	case SPEC_MILLI:
		check_milli(s);
		break;
	case SPEC_PATH:
		if (path_is_normal_absolute(s) != normal_absolute(s))
			abort();
		(void)warden_env_name_valid(s);
		break;
	case SPEC_DEVICE:
		check_device(s);
		break;
	}
	free(s);
	return 0;
}
