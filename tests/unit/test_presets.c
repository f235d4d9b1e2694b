/* test_presets.c: the built-in presets and warden_policy_to_yaml().
 *
 * Sections: the default preset equals the documented defaults (the fast path in
 * load_preset() builds it without parsing); strict; rendering and round trips.
 */
#include "unit.h"

static const char default_yaml[] = "name: default\n"
                                   "filesystem:\n"
                                   "  read_only:\n"
                                   "  - /usr\n"
                                   "  - path: /bin\n"
                                   "    optional: true\n"
                                   "  - path: /sbin\n"
                                   "    optional: true\n"
                                   "  - path: /lib\n"
                                   "    optional: true\n"
                                   "  - path: /lib32\n"
                                   "    optional: true\n"
                                   "  - path: /lib64\n"
                                   "    optional: true\n"
                                   "  - path: /libx32\n"
                                   "    optional: true\n"
                                   "  - /etc\n"
                                   "  volumes: []\n"
                                   "  tmp_size: 512M\n"
                                   "process:\n"
                                   "  user: agent\n"
                                   "  env:\n"
                                   "    LANG: C.UTF-8\n"
                                   "  env_pass: []\n"
                                   "limits:\n"
                                   "  memory: 1G\n"
                                   "  pids: 512\n"
                                   "  cpus: unlimited\n"
                                   "  timeout: none\n"
                                   "  nofile: 4096\n"
                                   "network:\n"
                                   "  mode: none\n"
                                   "  tcp_bind: []\n"
                                   "  tcp_connect: []\n"
                                   "  allow: []\n"
                                   "  deny: []\n"
                                   "security:\n"
                                   "  seccomp:\n"
                                   "    deny: []\n"
                                   "    allow: []\n"
                                   "  landlock: best_effort\n"
                                   "  ptrace: true\n"
                                   "telemetry:\n"
                                   "  enabled: true\n"
                                   "  ring_size: 256K\n"
                                   "guardrails: []\n";

/* The preset's own text, parsed the slow way. */
static struct warden_policy *parse_preset_text(const char *name)
{
	const char *text = warden_preset_text(name);
	assert_non_null(text);
	struct warden_error *e = NULL;
	struct warden_policy *p = warden_policy_parse(text, strlen(text), name, &e);
	if (!p)
		fail_msg("preset %s: %s", name, warden_error_text(e));
	return p;
}

static void test_preset_names(void **state)
{
	(void)state;
	assert_string_equal(warden_preset_names[0], "default");
	assert_string_equal(warden_preset_names[1], "strict");
	assert_null(warden_preset_names[2]);
	for (size_t i = 0; warden_preset_names[i]; i++)
		assert_non_null(warden_preset_text(warden_preset_names[i]));
	assert_null(warden_preset_text("nope"));
	assert_null(warden_preset_text(""));
}

/* policies/default.yaml, warden_policy_new() and warden_policy_load("default") are one
 * policy: compared as rendered YAML, which shows every field. */
static void test_default_equals_defaults(void **state)
{
	(void)state;
	struct warden_policy *fresh = warden_policy_new();
	struct warden_policy *parsed = parse_preset_text("default");
	struct warden_policy *loaded = load_ok("default");
	char *a = warden_policy_to_yaml(fresh);
	char *b = warden_policy_to_yaml(parsed);
	char *c = warden_policy_to_yaml(loaded);
	assert_string_equal(a, default_yaml);
	assert_string_equal(b, a);
	assert_string_equal(c, a);
	free(a);
	free(b);
	free(c);

	/* and the fields the rendering summarises */
	assert_int_equal(fresh->uid, WARDEN_AGENT_UID);
	assert_int_equal(fresh->gid, WARDEN_AGENT_UID);
	assert_null(fresh->workdir);
	assert_null(fresh->rootfs);
	assert_int_equal(fresh->read_only.n, 8);
	assert_int_equal(fresh->volumes.n, 0);
	assert_int_equal(fresh->env_pass.n, 0);
	assert_int_equal(fresh->seccomp_deny.n, 0);
	assert_int_equal(fresh->seccomp_allow.n, 0);
	assert_int_equal(parsed->read_only.n, 8);
	for (size_t i = 0; i < 8; i++) {
		assert_string_equal(parsed->read_only.v[i].host, fresh->read_only.v[i].host);
		assert_string_equal(parsed->read_only.v[i].path, fresh->read_only.v[i].path);
		assert_int_equal(parsed->read_only.v[i].optional, fresh->read_only.v[i].optional);
		assert_int_equal(parsed->read_only.v[i].rw, fresh->read_only.v[i].rw);
	}
	assert_null(parsed->workdir);
	assert_null(parsed->rootfs);
	warden_policy_free(fresh);
	warden_policy_free(parsed);
	warden_policy_free(loaded);
}

static void test_strict(void **state)
{
	(void)state;
	struct warden_policy *p = load_ok("strict");
	struct warden_policy *slow = parse_preset_text("strict");
	struct warden_policy *def = warden_policy_new();
	char *a = warden_policy_to_yaml(p);
	char *b = warden_policy_to_yaml(slow);
	char *d = warden_policy_to_yaml(def);
	assert_string_equal(a, b);
	assert_string_not_equal(a, d);
	free(a);
	free(b);
	free(d);

	assert_string_equal(p->name, "strict");
	/* where it differs from default */
	assert_strict_values(p);
	/* only /usr is required; /etc is replaced by its parts that programs need */
	assert_int_equal(p->read_only.n, 14);
	assert_string_equal(p->read_only.v[0].path, "/usr");
	assert_false(p->read_only.v[0].optional);
	for (size_t i = 1; i < p->read_only.n; i++) {
		assert_true(p->read_only.v[i].optional);
		assert_string_not_equal(p->read_only.v[i].path, "/etc");
	}
	assert_string_equal(p->read_only.v[13].path, "/etc/ssl");
	/* where it keeps default's values */
	assert_int_equal(p->uid, def->uid);
	assert_int_equal(p->timeout_ms, def->timeout_ms);
	assert_int_equal(p->net_mode, WARDEN_NET_NONE);
	assert_int_equal(p->volumes.n, 0);
	assert_int_equal(p->env.n, 1);
	assert_string_equal(p->env.v[0], "LANG=C.UTF-8");
	assert_int_equal(p->seccomp_deny.n, 0);
	assert_int_equal(p->seccomp_allow.n, 0);
	warden_policy_free(p);
	warden_policy_free(slow);
	warden_policy_free(def);
}

/* ---- round trips ------------------------------------------------------------------- */

static void test_round_trip_presets(void **state)
{
	(void)state;
	assert_round_trip(warden_policy_new());
	for (size_t i = 0; warden_preset_names[i]; i++)
		assert_round_trip(load_ok(warden_preset_names[i]));
}

static void test_round_trip_lists(void **state)
{
	(void)state;
	assert_round_trip(
	    parse_ok("name: lists\n"
	             "filesystem:\n"
	             "  read_only: [/usr, {path: /opt, optional: true}]\n"
	             "  volumes:\n"
	             "    - /src:/work\n"
	             "    - /data:/data/in:ro\n"
	             "    - {host: /cache, path: /cache, mode: ro}\n"
	             "  tmp_size: 1536K\n"
	             "  rootfs: /images/x\n"
	             "process:\n"
	             "  user: '1234:55'\n"
	             "  workdir: /work\n"
	             "  env: {A: b, EMPTY: '', QUOTED: 'x: y', SPACES: ' a ', NUM: '1',\n"
	             "        NULLISH: 'null', TRUTHY: 'true', HASH: '#x', LONG: '"
	             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa "
	             "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'}\n"
	             "  env_pass: [TERM, LANG]\n"
	             "limits: {memory: unlimited, pids: 2, cpus: 1.25, timeout: 0.5, "
	             "nofile: 16}\n"
	             "network: {mode: host, tcp_bind: [80, 443], tcp_connect: [1, 65535]}\n"
	             "security:\n"
	             "  seccomp: {deny: [uname, getcpu], allow: [keyctl]}\n"
	             "  landlock: off\n"
	             "  ptrace: false\n"));
	assert_round_trip(
	    parse_ok("process: {user: root, env: {}}\n"
	             "limits: {memory: 12345678, pids: unlimited, cpus: 0.01, timeout: 90}\n"
	             "security: {landlock: required}\n"));
	assert_round_trip(parse_ok("extends: strict\nname: s2\nfilesystem: {read_only: []}\n"));
	assert_round_trip(parse_ok("network: {mode: host}\n"));
	assert_round_trip(parse_ok("network: {mode: host, tcp_bind: [], tcp_connect: any}\n"));
	assert_round_trip(parse_ok("network: {tcp_bind: any, tcp_connect: [1, 2]}\n"));
}

/* What a rendering says for values the parser spells in several ways. */
static void test_render_values(void **state)
{
	(void)state;
	struct warden_policy *p = parse_ok("name: r\n"
	                                   "process: {user: '0:7'}\n"
	                                   "limits: {memory: 1048576K, cpus: 2.5, timeout: 0.25, "
	                                   "pids: none}\n");
	char *y = warden_policy_to_yaml(p);
	assert_non_null(strstr(y, "\n  user: 0:7\n"));
	assert_non_null(strstr(y, "\n  memory: 1G\n"));
	assert_non_null(strstr(y, "\n  pids: unlimited\n"));
	assert_non_null(strstr(y, "\n  cpus: 2.500\n"));
	assert_non_null(strstr(y, "\n  timeout: 0.250\n"));
	free(y);
	warden_policy_free(p);

	p = parse_ok("network: {mode: host, tcp_bind: any, tcp_connect: [443]}\n");
	y = warden_policy_to_yaml(p);
	assert_non_null(strstr(y, "\n  mode: host\n  tcp_bind: any\n  tcp_connect: [443]\n"));
	free(y);
	warden_policy_free(p);

	p = parse_ok("network: {mode: host}\n");
	y = warden_policy_to_yaml(p);
	assert_non_null(strstr(y, "\n  mode: host\n  tcp_bind: []\n  tcp_connect: []\n"));
	free(y);
	warden_policy_free(p);

	p = parse_ok("process: {user: '1000:1000'}\n");
	y = warden_policy_to_yaml(p);
	assert_non_null(strstr(y, "\n  user: agent\n"));
	free(y);
	warden_policy_free(p);
	p = parse_ok("process: {user: '0:0'}\n");
	y = warden_policy_to_yaml(p);
	assert_non_null(strstr(y, "\n  user: root\n"));
	free(y);
	warden_policy_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_preset_names),     cmocka_unit_test(test_default_equals_defaults),
	    cmocka_unit_test(test_strict),           cmocka_unit_test(test_round_trip_presets),
	    cmocka_unit_test(test_round_trip_lists), cmocka_unit_test(test_render_values),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
