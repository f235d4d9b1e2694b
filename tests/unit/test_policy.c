/* test_policy.c: warden_policy_parse() and warden_policy_load().
 *
 * Sections: every key accepted, with the resulting fields; `extends`; every error path,
 * with the exact message (origin:line:column: dotted.key: reason); document-level errors;
 * loading files.
 */
#include "unit.h"

/* ---- accepted keys ----------------------------------------------------------------- */

static const char full_policy[] = "version: 1\n"
                                  "name: full-test_1.0\n"
                                  "description: every key set to something not default\n"
                                  "filesystem:\n"
                                  "  read_only:\n"
                                  "    - /usr\n"
                                  "    - {path: /opt, optional: true}\n"
                                  "    - {path: /srv, optional: false}\n"
                                  "    - path: /etc/ssl\n"
                                  "  volumes:\n"
                                  "    - /src:/work\n"
                                  "    - /data:/data/in:ro\n"
                                  "    - /logs:/logs:rw\n"
                                  "    - {host: /cache, path: /cache, mode: ro}\n"
                                  "    - {host: /out, path: /out/x}\n"
                                  "  tmp_size: 2G\n"
                                  "  rootfs: /images/debian\n"
                                  "process:\n"
                                  "  user: \"1234:55\"\n"
                                  "  workdir: /work\n"
                                  "  env:\n"
                                  "    FOO: bar\n"
                                  "    EMPTY: \"\"\n"
                                  "    _x1: 'with spaces: and colon'\n"
                                  "  env_pass: [TERM, HOME_X]\n"
                                  "limits:\n"
                                  "  memory: 8M\n"
                                  "  pids: 2\n"
                                  "  cpus: 0.01\n"
                                  "  timeout: 1.5\n"
                                  "  nofile: 16\n"
                                  "network:\n"
                                  "  mode: host\n"
                                  "  tcp_bind: [8080, 1]\n"
                                  "  tcp_connect: [443, 65535]\n"
                                  "security:\n"
                                  "  seccomp:\n"
                                  "    deny: [uname, getcpu]\n"
                                  "    allow: [ptrace]\n"
                                  "  landlock: off\n"
                                  "  ptrace: false\n";

static void test_every_key(void **state)
{
	(void)state;
	struct warden_policy *p = parse_ok(full_policy);
	assert_string_equal(p->name, "full-test_1.0");

	assert_int_equal(p->read_only.n, 4);
	static const struct {
		const char *path;
		bool optional;
	} ro[] = {{"/usr", false}, {"/opt", true}, {"/srv", false}, {"/etc/ssl", false}};
	for (size_t i = 0; i < ARRAY_SIZE(ro); i++) {
		assert_string_equal(p->read_only.v[i].path, ro[i].path);
		assert_string_equal(p->read_only.v[i].host, ro[i].path);
		assert_int_equal(p->read_only.v[i].optional, ro[i].optional);
		assert_false(p->read_only.v[i].rw);
	}
	assert_int_equal(p->volumes.n, 5);
	static const struct {
		const char *host, *path;
		bool rw;
	} vol[] = {{"/src", "/work", true},
	           {"/data", "/data/in", false},
	           {"/logs", "/logs", true},
	           {"/cache", "/cache", false},
	           {"/out", "/out/x", true}};
	for (size_t i = 0; i < ARRAY_SIZE(vol); i++) {
		assert_string_equal(p->volumes.v[i].host, vol[i].host);
		assert_string_equal(p->volumes.v[i].path, vol[i].path);
		assert_int_equal(p->volumes.v[i].rw, vol[i].rw);
		assert_false(p->volumes.v[i].optional);
	}
	assert_true(p->tmp_size == 2ULL << 30);
	assert_string_equal(p->rootfs, "/images/debian");

	assert_int_equal(p->uid, 1234);
	assert_int_equal(p->gid, 55);
	assert_string_equal(p->workdir, "/work");
	assert_int_equal(p->env.n, 3);
	assert_string_equal(p->env.v[0], "FOO=bar");
	assert_string_equal(p->env.v[1], "EMPTY=");
	assert_string_equal(p->env.v[2], "_x1=with spaces: and colon");
	assert_null(p->env.v[3]);
	assert_int_equal(p->env_pass.n, 2);
	assert_string_equal(p->env_pass.v[0], "TERM");
	assert_string_equal(p->env_pass.v[1], "HOME_X");

	assert_true(p->memory == 8ULL << 20);
	assert_int_equal(p->pids, 2);
	assert_int_equal(p->cpus_milli, 10);
	assert_int_equal(p->timeout_ms, 1500);
	assert_int_equal(p->nofile, 16);

	assert_int_equal(p->net_mode, WARDEN_NET_HOST);
	assert_int_equal(p->tcp_bind.n, 2);
	assert_int_equal(p->tcp_bind.v[0], 8080);
	assert_int_equal(p->tcp_bind.v[1], 1);
	assert_int_equal(p->tcp_connect.n, 2);
	assert_int_equal(p->tcp_connect.v[0], 443);
	assert_int_equal(p->tcp_connect.v[1], 65535);

	assert_int_equal(p->seccomp_deny.n, 2);
	assert_string_equal(p->seccomp_deny.v[0], "uname");
	assert_string_equal(p->seccomp_deny.v[1], "getcpu");
	assert_int_equal(p->seccomp_allow.n, 1);
	assert_string_equal(p->seccomp_allow.v[0], "ptrace");
	assert_int_equal(p->landlock, WARDEN_LANDLOCK_OFF);
	assert_false(p->allow_ptrace);
	warden_policy_free(p);
}

/* The other spellings every key accepts. */
static void test_other_values(void **state)
{
	(void)state;
	struct warden_policy *p = parse_ok("filesystem:\n"
	                                   "  read_only: []\n"
	                                   "  volumes: []\n"
	                                   "  tmp_size: 1M\n"
	                                   "  rootfs: null\n"
	                                   "process:\n"
	                                   "  user: root\n"
	                                   "  env: {}\n"
	                                   "limits:\n"
	                                   "  memory: unlimited\n"
	                                   "  pids: unlimited\n"
	                                   "  cpus: unlimited\n"
	                                   "  timeout: none\n"
	                                   "  nofile: 1048576\n"
	                                   "network: {mode: none}\n"
	                                   "security: {landlock: required, ptrace: true}\n");
	assert_int_equal(p->read_only.n, 0);
	assert_int_equal(p->volumes.n, 0);
	assert_true(p->tmp_size == 1ULL << 20);
	assert_null(p->rootfs);
	assert_int_equal(p->uid, 0);
	assert_int_equal(p->gid, 0);
	assert_int_equal(p->env.n, 0);
	assert_int_equal(p->memory, 0);
	assert_int_equal(p->pids, 0);
	assert_int_equal(p->cpus_milli, 0);
	assert_int_equal(p->timeout_ms, 0);
	assert_int_equal(p->nofile, 1048576);
	assert_int_equal(p->net_mode, WARDEN_NET_NONE);
	assert_int_equal(p->landlock, WARDEN_LANDLOCK_REQUIRED);
	assert_true(p->allow_ptrace);
	assert_string_equal(p->name, "t.yaml"); /* no name: the origin */
	warden_policy_free(p);

	p = parse_ok("limits: {memory: none, pids: none, cpus: none, timeout: unlimited, "
	             "nofile: 16}\n"
	             "filesystem: {rootfs: ~}\n"
	             "process: {user: agent}\n"
	             "security: {landlock: best_effort}\n");
	assert_int_equal(p->memory, 0);
	assert_int_equal(p->pids, 0);
	assert_int_equal(p->cpus_milli, 0);
	assert_int_equal(p->timeout_ms, 0);
	assert_null(p->rootfs);
	assert_int_equal(p->uid, WARDEN_AGENT_UID);
	assert_int_equal(p->gid, WARDEN_AGENT_UID);
	assert_int_equal(p->landlock, WARDEN_LANDLOCK_BEST_EFFORT);
	warden_policy_free(p);

	/* upper bounds are inclusive */
	p = parse_ok("limits: {pids: 4194304, cpus: 1000000, timeout: 1000000.999, "
	             "memory: 16777215T}\n");
	assert_int_equal(p->pids, 4194304);
	assert_int_equal(p->cpus_milli, 1000000000);
	assert_int_equal(p->timeout_ms, 1000000999);
	assert_true(p->memory == 16777215ULL << 40);
	warden_policy_free(p);

	/* limits at their minimums */
	p = parse_ok("limits: {memory: 8192K, cpus: 0.010, timeout: 0.001}\n");
	assert_true(p->memory == 8ULL << 20);
	assert_int_equal(p->cpus_milli, 10);
	assert_int_equal(p->timeout_ms, 1);
	warden_policy_free(p);

	/* 256 entries is the most a list holds; 64 the most ports */
	struct strv text = {0};
	strv_push(&text, "filesystem:\n  read_only:\n");
	for (int i = 0; i < 256; i++)
		strv_push_take(&text, xasprintf("  - /p%d\n", i));
	strv_push(&text, "network:\n  tcp_bind:\n");
	for (int i = 0; i < 64; i++)
		strv_push_take(&text, xasprintf("  - %d\n", 1000 + i));
	size_t len = 0;
	for (size_t i = 0; i < text.n; i++)
		len += strlen(text.v[i]);
	char *buf = xcalloc(1, len + 1);
	for (size_t i = 0; i < text.n; i++)
		strcat(buf, text.v[i]);
	p = parse_ok(buf);
	assert_int_equal(p->read_only.n, 256);
	assert_string_equal(p->read_only.v[255].path, "/p255");
	assert_int_equal(p->tcp_bind.n, 64);
	assert_int_equal(p->tcp_bind.v[63], 1063);
	warden_policy_free(p);
	free(buf);
	strv_clear(&text);
}

/* A list or mapping given again replaces what the defaults (or the base) had. */
static void test_lists_replace_defaults(void **state)
{
	(void)state;
	struct warden_policy *p = parse_ok("filesystem: {read_only: [/opt]}\n"
	                                   "process: {env: {A: b}}\n");
	assert_int_equal(p->read_only.n, 1);
	assert_string_equal(p->read_only.v[0].path, "/opt");
	assert_int_equal(p->env.n, 1);
	assert_string_equal(p->env.v[0], "A=b");
	/* keys that were not given keep their defaults */
	assert_true(p->memory == 1ULL << 30);
	assert_int_equal(p->pids, 512);
	assert_int_equal(p->nofile, 4096);
	warden_policy_free(p);
}

/* Port lists: a list, or "any"; none by default, in every network mode. */
static void test_ports(void **state)
{
	(void)state;
	struct warden_policy *p = warden_policy_new();
	assert_false(p->tcp_bind.any);
	assert_int_equal(p->tcp_bind.n, 0);
	assert_false(p->tcp_connect.any);
	assert_int_equal(p->tcp_connect.n, 0);
	warden_policy_free(p);

	p = parse_ok("network: {mode: host}\n");
	assert_false(p->tcp_bind.any);
	assert_false(p->tcp_connect.any);
	assert_int_equal(p->tcp_connect.n, 0);
	warden_policy_free(p);

	p = parse_ok("network: {tcp_bind: any, tcp_connect: [443]}\n");
	assert_true(p->tcp_bind.any);
	assert_int_equal(p->tcp_bind.n, 0);
	assert_false(p->tcp_connect.any);
	assert_int_equal(p->tcp_connect.n, 1);
	assert_int_equal(p->tcp_connect.v[0], 443);
	warden_policy_free(p);

	/* a list given again replaces "any", and "any" a list */
	p = parse_ok("network: {tcp_bind: any, tcp_connect: any}\n");
	assert_true(p->tcp_connect.any);
	warden_policy_free(p);
	p = parse_ok("network: {tcp_bind: [22, 23]}\n");
	assert_false(p->tcp_bind.any);
	assert_int_equal(p->tcp_bind.n, 2);
	warden_policy_free(p);
}

static void test_name_rules(void **state)
{
	(void)state;
	char name64[65], text[128];
	memset(name64, 'a', 64);
	name64[64] = '\0';
	snprintf(text, sizeof(text), "name: %s\n", name64);
	struct warden_policy *p = parse_ok(text);
	assert_string_equal(p->name, name64);
	warden_policy_free(p);
	p = parse_ok("name: A.b-c_9\n");
	assert_string_equal(p->name, "A.b-c_9");
	warden_policy_free(p);
	/* a name given does not depend on where the key is */
	p = parse_ok("limits: {pids: 3}\nname: late\n");
	assert_string_equal(p->name, "late");
	warden_policy_free(p);

	snprintf(text, sizeof(text), "name: %sa\n", name64);
	expect_parse_err(text, "t.yaml:1:7: name: must be 1 to 64 characters");
	expect_parse_err("name: ''\n", "t.yaml:1:7: name: must be 1 to 64 characters");
	expect_parse_err("name: a/b\n", "t.yaml:1:7: name: \"a/b\": use letters, digits, '-', "
	                                "'_', '.'");
	expect_parse_err("name: a b\n", "t.yaml:1:7: name: \"a b\": use letters, digits, '-', "
	                                "'_', '.'");
	expect_parse_err("name: \"caf\\xe9\"\n", "t.yaml:1:7: name: \"caf\xc3\xa9\": use "
	                                         "letters, digits, '-', '_', '.'");
	expect_parse_err("name: [a]\n", "t.yaml:1:7: name: expected a string, found a list");
	expect_parse_err("name: \"a\\0b\"\n", "t.yaml:1:7: name: contains a NUL byte");
}

static void test_version(void **state)
{
	(void)state;
	warden_policy_free(parse_ok("version: 1\n"));
	warden_policy_free(parse_ok("version: \"1\"\n"));
	expect_parse_err("version: 2\n",
	                 "t.yaml:1:10: version: unsupported policy version \"2\" (this warden "
	                 "reads 1)");
	expect_parse_err("version: 1.0\n",
	                 "t.yaml:1:10: version: unsupported policy version \"1.0\" (this warden "
	                 "reads 1)");
	expect_parse_err("version: {a: 1}\n",
	                 "t.yaml:1:10: version: expected a string, found a mapping");
	expect_parse_err("description: [a]\n",
	                 "t.yaml:1:14: description: expected a string, found a list");
}

/* ---- extends ----------------------------------------------------------------------- */

static void test_extends(void **state)
{
	(void)state;
	struct warden_policy *p = parse_ok("extends: strict\n");
	assert_string_equal(p->name, "t.yaml");
	assert_strict_values(p);
	/* what strict does not set comes from default, which it extends */
	assert_int_equal(p->env.n, 1);
	assert_string_equal(p->env.v[0], "LANG=C.UTF-8");
	assert_int_equal(p->uid, WARDEN_AGENT_UID);
	assert_int_equal(p->timeout_ms, 0);
	assert_int_equal(p->net_mode, WARDEN_NET_NONE);
	warden_policy_free(p);

	/* extends applies first, wherever it is written; the file's keys then override */
	p = parse_ok("limits: {memory: 1G}\nname: mine\nextends: strict\n");
	assert_string_equal(p->name, "mine");
	assert_true(p->memory == 1ULL << 30);
	assert_int_equal(p->pids, 128);
	warden_policy_free(p);

	p = parse_ok("extends: default\n");
	assert_true(p->memory == 1ULL << 30);
	assert_int_equal(p->pids, 512);
	assert_true(p->allow_ptrace);
	warden_policy_free(p);

	expect_parse_err("extends: nope\n", "t.yaml:1:10: extends: no preset named \"nope\" "
	                                    "(presets: default, strict)");
	expect_parse_err("extends: /etc/warden/base.yaml\n",
	                 "t.yaml:1:10: extends: no preset named \"/etc/warden/base.yaml\" "
	                 "(presets: default, strict)");
	expect_parse_err("version: 1\nextends: [strict]\n",
	                 "t.yaml:2:10: extends: expected a string, found a list");
	expect_parse_err("extends: strict\nextends: default\n",
	                 "t.yaml:2:1: extends: duplicate key");
	/* errors after extends still name this file */
	expect_parse_err("extends: strict\nlimits: {pids: 1}\n",
	                 "t.yaml:2:16: limits.pids: 1 is below the minimum 2");
}

/* ---- error paths ------------------------------------------------------------------- */

struct err_case {
	const char *text;
	const char *want;
};

static void run_cases(const struct err_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++)
		expect_parse_err(cases[i].text, cases[i].want);
}

static void test_unknown_and_duplicate_keys(void **state)
{
	(void)state;
	static const struct err_case cases[] = {
	    {"bogus: 1\n", "t.yaml:1:1: bogus: unknown key (expected one of: version, name, "
	                   "description, extends, filesystem, process, limits, network, "
	                   "security, telemetry, guardrails, devices, gpu, isolation)"},
	    {"version: 1\nVersion: 1\n",
	     "t.yaml:2:1: Version: unknown key (expected one of: version, name, description, "
	     "extends, filesystem, process, limits, network, security, telemetry, guardrails, "
	     "devices, gpu, isolation)"},
	    {"limits:\n  swap: 1G\n", "t.yaml:2:3: limits.swap: unknown key (expected one of: "
	                              "memory, pids, cpus, timeout, nofile)"},
	    {"filesystem: {tmpsize: 1M}\n",
	     "t.yaml:1:14: filesystem.tmpsize: unknown key (expected one of: read_only, "
	     "volumes, tmp_size, rootfs)"},
	    {"process: {uid: 1}\n", "t.yaml:1:11: process.uid: unknown key (expected one of: "
	                            "user, workdir, env, env_pass)"},
	    {"network: {allowed: []}\n", "t.yaml:1:11: network.allowed: unknown key (expected "
	                                 "one of: mode, tcp_bind, tcp_connect, allow, deny)"},
	    {"security: {apparmor: x}\n", "t.yaml:1:12: security.apparmor: unknown key "
	                                  "(expected one of: seccomp, landlock, ptrace)"},
	    {"security:\n  seccomp:\n    kill: []\n",
	     "t.yaml:3:5: security.seccomp.kill: unknown key (expected one of: deny, allow)"},
	    {"version: 1\nversion: 1\n", "t.yaml:2:1: version: duplicate key"},
	    {"limits: {pids: 2, pids: 3}\n", "t.yaml:1:19: limits.pids: duplicate key"},
	    {"security:\n  seccomp: {deny: [], deny: []}\n",
	     "t.yaml:2:23: security.seccomp.deny: duplicate key"},
	    {"filesystem: {}\nfilesystem: {}\n", "t.yaml:2:1: filesystem: duplicate key"},
	    /* keys must be strings */
	    {"? [a]\n: b\n", "t.yaml:1:3: policy: expected a string, found a list"},
	    {"limits: {[a]: b}\n", "t.yaml:1:10: limits: expected a string, found a list"},
	    {"limits: {{a: 1}: b}\n", "t.yaml:1:10: limits: expected a string, found a mapping"},
	    {"\"a\\0b\": 1\n", "t.yaml:1:1: policy: contains a NUL byte"},
	};
	run_cases(cases, ARRAY_SIZE(cases));
}

static void test_wrong_node_kinds(void **state)
{
	(void)state;
	static const struct err_case cases[] = {
	    {"- a\n", "t.yaml:1:1: policy: expected a mapping at the top, found a list"},
	    {"just text\n", "t.yaml:1:1: policy: expected a mapping at the top, found a scalar"},
	    {"limits: [1]\n", "t.yaml:1:9: limits: expected a mapping, found a list"},
	    {"filesystem: x\n", "t.yaml:1:13: filesystem: expected a mapping, found a scalar"},
	    {"process:\n", "t.yaml:1:9: process: expected a mapping, found a scalar"},
	    {"network: [mode]\n", "t.yaml:1:10: network: expected a mapping, found a list"},
	    {"security: on\n", "t.yaml:1:11: security: expected a mapping, found a scalar"},
	    {"security: {seccomp: [bpf]}\n",
	     "t.yaml:1:21: security.seccomp: expected a mapping, found a list"},
	    {"limits: {memory: [1G]}\n",
	     "t.yaml:1:18: limits.memory: expected a string, found a list"},
	    {"limits: {pids: {a: b}}\n",
	     "t.yaml:1:16: limits.pids: expected a string, found a mapping"},
	    {"filesystem: {read_only: /usr}\n",
	     "t.yaml:1:25: filesystem.read_only: expected a list, found a scalar"},
	    {"filesystem: {volumes: {a: b}}\n",
	     "t.yaml:1:23: filesystem.volumes: expected a list, found a mapping"},
	    {"filesystem: {tmp_size: [1M]}\n",
	     "t.yaml:1:24: filesystem.tmp_size: expected a string, found a list"},
	    {"filesystem: {rootfs: [/a]}\n",
	     "t.yaml:1:22: filesystem.rootfs: expected a string, found a list"},
	    {"process: {user: [root]}\n",
	     "t.yaml:1:17: process.user: expected a string, found a list"},
	    {"process: {workdir: {a: b}}\n",
	     "t.yaml:1:20: process.workdir: expected a string, found a mapping"},
	    {"process: {env: [A]}\n",
	     "t.yaml:1:16: process.env: expected a mapping of NAME: value, found a list"},
	    {"process: {env: A=b}\n",
	     "t.yaml:1:16: process.env: expected a mapping of NAME: value, found a scalar"},
	    {"process: {env_pass: {A: b}}\n",
	     "t.yaml:1:21: process.env_pass: expected a list, found a mapping"},
	    {"process: {env_pass: A}\n",
	     "t.yaml:1:21: process.env_pass: expected a list, found a scalar"},
	    {"network: {mode: [none]}\n",
	     "t.yaml:1:17: network.mode: expected a string, found a list"},
	    {"network: {tcp_bind: 80}\n",
	     "t.yaml:1:21: network.tcp_bind: expected a list of ports or \"any\", found a scalar"},
	    {"network: {tcp_bind: ANY}\n",
	     "t.yaml:1:21: network.tcp_bind: expected a list of ports or \"any\", found a scalar"},
	    {"network: {tcp_connect: {any: 1}}\n",
	     "t.yaml:1:24: network.tcp_connect: expected a list of ports or \"any\", found a "
	     "mapping"},
	    {"network: {tcp_connect: [[80]]}\n",
	     "t.yaml:1:25: network.tcp_connect[0]: expected a string, found a list"},
	    {"security: {seccomp: {deny: bpf}}\n",
	     "t.yaml:1:28: security.seccomp.deny: expected a list, found a scalar"},
	    {"security: {seccomp: {allow: [{a: b}]}}\n",
	     "t.yaml:1:30: security.seccomp.allow[0]: expected a string, found a mapping"},
	    {"security: {landlock: [off]}\n",
	     "t.yaml:1:22: security.landlock: expected a string, found a list"},
	    {"security: {ptrace: {}}\n",
	     "t.yaml:1:20: security.ptrace: expected a string, found a mapping"},
	};
	run_cases(cases, ARRAY_SIZE(cases));
}

static void test_sizes_counts_ranges(void **state)
{
	(void)state;
	static const struct err_case cases[] = {
	    {"version: 1\nlimits:\n  memory: 12X\n",
	     "t.yaml:3:11: limits.memory: \"12X\": unknown size unit (use K, M, G or T)"},
	    {"limits: {memory: 0}\n",
	     "t.yaml:1:18: limits.memory: 0 is ambiguous: write \"unlimited\""},
	    {"limits: {memory: 0G}\n",
	     "t.yaml:1:18: limits.memory: 0 is ambiguous: write \"unlimited\""},
	    {"limits: {memory: 4M}\n",
	     "t.yaml:1:18: limits.memory: must be at least 8M (or \"unlimited\")"},
	    {"limits: {memory: 8388607}\n",
	     "t.yaml:1:18: limits.memory: must be at least 8M (or \"unlimited\")"},
	    {"limits: {memory: ''}\n", "t.yaml:1:18: limits.memory: \"\": empty size"},
	    {"limits: {memory: -1}\n",
	     "t.yaml:1:18: limits.memory: \"-1\": a size starts with a number (e.g. 512M)"},
	    {"limits: {memory: Unlimited}\n", "t.yaml:1:18: limits.memory: \"Unlimited\": a size "
	                                      "starts with a number (e.g. 512M)"},
	    {"limits: {memory: 16777216T}\n",
	     "t.yaml:1:18: limits.memory: \"16777216T\": size too large"},
	    {"filesystem: {tmp_size: 0}\n",
	     "t.yaml:1:24: filesystem.tmp_size: must be larger than 0"},
	    {"filesystem: {tmp_size: 512K}\n",
	     "t.yaml:1:24: filesystem.tmp_size: must be at least 1M"},
	    {"filesystem: {tmp_size: unlimited}\n",
	     "t.yaml:1:24: filesystem.tmp_size: \"unlimited\": a size starts with a number (e.g. "
	     "512M)"},
	    {"filesystem: {tmp_size: 99999999999999999999}\n",
	     "t.yaml:1:24: filesystem.tmp_size: \"99999999999999999999\": size too large"},
	    {"limits: {pids: 1}\n", "t.yaml:1:16: limits.pids: 1 is below the minimum 2"},
	    {"limits: {pids: 0}\n", "t.yaml:1:16: limits.pids: 0 is below the minimum 2"},
	    {"limits: {pids: 4194305}\n",
	     "t.yaml:1:16: limits.pids: \"4194305\": number too large (at most 4194304)"},
	    {"limits: {pids: -1}\n",
	     "t.yaml:1:16: limits.pids: \"-1\": not a whole number (at most 4194304)"},
	    {"limits: {pids: 1.5}\n",
	     "t.yaml:1:16: limits.pids: \"1.5\": not a whole number (at most 4194304)"},
	    {"limits: {pids: ''}\n",
	     "t.yaml:1:16: limits.pids: \"\": empty number (at most 4194304)"},
	    {"limits: {nofile: 15}\n", "t.yaml:1:18: limits.nofile: 15 is below the minimum 16"},
	    {"limits: {nofile: 1048577}\n",
	     "t.yaml:1:18: limits.nofile: \"1048577\": number too large (at most 1048576)"},
	    {"limits: {nofile: unlimited}\n",
	     "t.yaml:1:18: limits.nofile: \"unlimited\": not a whole number (at most 1048576)"},
	    {"limits: {cpus: 0}\n",
	     "t.yaml:1:16: limits.cpus: 0 is ambiguous: write \"unlimited\" or \"none\""},
	    {"limits: {cpus: 0.000}\n",
	     "t.yaml:1:16: limits.cpus: 0 is ambiguous: write \"unlimited\" or \"none\""},
	    {"limits: {cpus: 0.009}\n",
	     "t.yaml:1:16: limits.cpus: must be at least 0.01 (or \"unlimited\")"},
	    {"limits: {cpus: two}\n", "t.yaml:1:16: limits.cpus: \"two\": not a number"},
	    {"limits: {cpus: .5}\n", "t.yaml:1:16: limits.cpus: \".5\": not a number"},
	    {"limits: {cpus: 2000000}\n",
	     "t.yaml:1:16: limits.cpus: \"2000000\": number too large"},
	    {"limits: {timeout: 0}\n",
	     "t.yaml:1:19: limits.timeout: 0 is ambiguous: write \"unlimited\" or \"none\""},
	    {"limits: {timeout: 30s}\n", "t.yaml:1:19: limits.timeout: \"30s\": not a number"},
	    {"limits: {timeout: 1.}\n", "t.yaml:1:19: limits.timeout: \"1.\": not a number"},
	    {"network: {tcp_bind: [0]}\n",
	     "t.yaml:1:22: network.tcp_bind[0]: 0 is below the minimum 1"},
	    {"network: {tcp_bind: [80, 65536]}\n",
	     "t.yaml:1:26: network.tcp_bind[1]: \"65536\": number too large (at most 65535)"},
	    {"network: {tcp_connect: [http]}\n",
	     "t.yaml:1:25: network.tcp_connect[0]: \"http\": not a whole number (at most 65535)"},
	    {"network: {tcp_connect: [any]}\n",
	     "t.yaml:1:25: network.tcp_connect[0]: \"any\": not a whole number (at most 65535)"},
	    {"network: {tcp_connect: [unlimited]}\n",
	     "t.yaml:1:25: network.tcp_connect[0]: \"unlimited\": not a whole number (at most "
	     "65535)"},
	    {"network: {allow: [pypi.org, bad..com]}\n",
	     "t.yaml:1:29: network.allow[1]: \"bad..com\": an empty label"},
	    {"network: {allow: [\"example.com:0\"]}\n",
	     "t.yaml:1:19: network.allow[0]: \"example.com:0\": bad port (1-65535)"},
	    {"network: {deny: [\"*example.com\"]}\n",
	     "t.yaml:1:18: network.deny[0]: \"*example.com\": '*' only as a whole first label "
	     "(*.example.com)"},
	    {"network: {deny: [\"10.0.0.0/33\"]}\n",
	     "t.yaml:1:18: network.deny[0]: \"10.0.0.0/33\": bad prefix length"},
	    {"network: {deny: [\"[::1\"]}\n",
	     "t.yaml:1:18: network.deny[0]: \"[::1\": unterminated [IPv6 address]"},
	    {"network: {allow: [\"-x.com\"]}\n",
	     "t.yaml:1:19: network.allow[0]: \"-x.com\": a label starts or ends with '-'"},
	    {"network: {allow: {a: b}}\n",
	     "t.yaml:1:18: network.allow: expected a list, found a mapping"},
	};
	run_cases(cases, ARRAY_SIZE(cases));
}

/* One more entry than a list may hold: read_only and ports. */
static void test_too_many(void **state)
{
	(void)state;
	char *text = xstrdup("network:\n  tcp_bind: [");
	for (int i = 0; i < 65; i++) {
		char *next = xasprintf("%s%s%d", text, i ? ", " : "", 1000 + i);
		free(text);
		text = next;
	}
	char *full = xasprintf("%s]\n", text);
	/* the 65th port, at column 14 + 6 * 64 */
	expect_parse_err(full, "t.yaml:2:398: network.tcp_bind[64]: more than 64 ports");
	free(full);
	free(text);

	/* a list longer than any list may be is refused before its ports are read */
	text = xstrdup("network:\n  tcp_connect: [");
	for (int i = 0; i < 257; i++) {
		char *next = xasprintf("%s%s1", text, i ? ", " : "");
		free(text);
		text = next;
	}
	full = xasprintf("%s]\n", text);
	expect_parse_err(full, "t.yaml:2:16: network.tcp_connect: more than 256 entries");
	free(full);
	free(text);

	struct strv lines = {0};
	strv_push(&lines, "security:\n  seccomp:\n    deny:\n");
	size_t len = strlen(lines.v[0]);
	for (int i = 0; i < 257; i++) {
		strv_push(&lines, "      - uname\n");
		len += strlen(lines.v[lines.n - 1]);
	}
	text = xcalloc(1, len + 1);
	for (size_t i = 0; i < lines.n; i++)
		strcat(text, lines.v[i]);
	expect_parse_err(text, "t.yaml:4:7: security.seccomp.deny: more than 256 entries");
	free(text);
	strv_clear(&lines);
}

static void test_paths(void **state)
{
	(void)state;
#define NOT_NORMAL "is not an absolute, normalized path (no \"..\", \".\", \"//\"; not /)"
	static const struct err_case cases[] = {
	    {"process: {workdir: work}\n", "t.yaml:1:20: process.workdir: \"work\" " NOT_NORMAL},
	    {"process: {workdir: /}\n", "t.yaml:1:20: process.workdir: \"/\" " NOT_NORMAL},
	    {"process: {workdir: /a/}\n", "t.yaml:1:20: process.workdir: \"/a/\" " NOT_NORMAL},
	    {"process: {workdir: /a/../b}\n",
	     "t.yaml:1:20: process.workdir: \"/a/../b\" " NOT_NORMAL},
	    {"process: {workdir: ''}\n", "t.yaml:1:20: process.workdir: \"\" " NOT_NORMAL},
	    {"filesystem: {rootfs: images/x}\n",
	     "t.yaml:1:22: filesystem.rootfs: \"images/x\" " NOT_NORMAL},
	    {"filesystem: {rootfs: //x}\n", "t.yaml:1:22: filesystem.rootfs: \"//x\" " NOT_NORMAL},
	    {"filesystem: {rootfs: '~'}\n", "t.yaml:1:22: filesystem.rootfs: \"~\" " NOT_NORMAL},
	    {"filesystem:\n  read_only:\n    - /usr\n    - usr\n",
	     "t.yaml:4:7: filesystem.read_only[1]: \"usr\" " NOT_NORMAL},
	    {"filesystem: {read_only: [/usr/./lib]}\n",
	     "t.yaml:1:26: filesystem.read_only[0]: \"/usr/./lib\" " NOT_NORMAL},
	    {"filesystem: {read_only: [{path: /a/., optional: true}]}\n",
	     "t.yaml:1:33: filesystem.read_only[0]: \"/a/.\" " NOT_NORMAL},
	};
#undef NOT_NORMAL
	run_cases(cases, ARRAY_SIZE(cases));
}

static void test_read_only_entries(void **state)
{
	(void)state;
	static const struct err_case cases[] = {
	    {"filesystem:\n  read_only:\n    - {optional: true}\n",
	     "t.yaml:3:7: filesystem.read_only[0]: missing \"path\""},
	    {"filesystem:\n  read_only:\n    - {}\n",
	     "t.yaml:3:7: filesystem.read_only[0]: missing \"path\""},
	    {"filesystem:\n  read_only:\n    - /usr\n    - {path: /a, rw: true}\n",
	     "t.yaml:4:18: filesystem.read_only[1]: unknown key \"rw\" (expected path, "
	     "optional)"},
	    {"filesystem:\n  read_only:\n    - {path: /a, optional: yes}\n",
	     "t.yaml:3:28: filesystem.read_only[0]: \"yes\" is not true or false"},
	    {"filesystem:\n  read_only:\n    - {path: [/a]}\n",
	     "t.yaml:3:14: filesystem.read_only[0]: expected a string, found a list"},
	    {"filesystem:\n  read_only:\n    - {[path]: /a}\n",
	     "t.yaml:3:8: filesystem.read_only[0]: expected a string, found a list"},
	    {"filesystem:\n  read_only:\n    - [/a]\n",
	     "t.yaml:3:7: filesystem.read_only[0]: expected a string, found a list"},
	};
	run_cases(cases, ARRAY_SIZE(cases));
}

static void test_volumes(void **state)
{
	(void)state;
	static const struct err_case cases[] = {
	    {"filesystem:\n  volumes:\n    - /src\n",
	     "t.yaml:3:7: filesystem.volumes[0]: \"/src\": expected HOST:PATH[:ro|rw]"},
	    {"filesystem:\n  volumes:\n    - /src:/work:rx\n",
	     "t.yaml:3:7: filesystem.volumes[0]: \"/src:/work:rx\": mode \"rx\" is not ro or rw"},
	    {"filesystem:\n  volumes:\n    - /src:work\n",
	     "t.yaml:3:7: filesystem.volumes[0]: \"/src:work\": sandbox path \"work\" must be "
	     "absolute, normalized and not /"},
	    {"filesystem:\n  volumes:\n    - :/work\n",
	     "t.yaml:3:7: filesystem.volumes[0]: \":/work\": empty host path"},
	    {"filesystem:\n  volumes:\n    - /a:/b\n    - src:/work\n",
	     "t.yaml:4:7: filesystem.volumes[1]: host path must be absolute in a policy file"},
	    {"filesystem:\n  volumes:\n    - ./src:/work:ro\n",
	     "t.yaml:3:7: filesystem.volumes[0]: host path must be absolute in a policy file"},
	    {"filesystem:\n  volumes:\n    - [/a, /b]\n",
	     "t.yaml:3:7: filesystem.volumes[0]: expected a string, found a list"},
	    {"filesystem:\n  volumes:\n    - {host: /a, path: /b, mode: rx}\n",
	     "t.yaml:3:34: filesystem.volumes[0]: mode \"rx\" is not ro or rw"},
	    {"filesystem:\n  volumes:\n    - {host: /a, path: /b, mode: [ro]}\n",
	     "t.yaml:3:34: filesystem.volumes[0]: expected a string, found a list"},
	    {"filesystem:\n  volumes:\n    - {host: /a}\n",
	     "t.yaml:3:7: filesystem.volumes[0]: needs both \"host\" and \"path\""},
	    {"filesystem:\n  volumes:\n    - {path: /b, mode: ro}\n",
	     "t.yaml:3:7: filesystem.volumes[0]: needs both \"host\" and \"path\""},
	    {"filesystem:\n  volumes:\n    - {host: a, path: /b}\n",
	     "t.yaml:3:14: filesystem.volumes[0]: \"a\" is not an absolute, normalized path (no "
	     "\"..\", \".\", \"//\"; not /)"},
	    {"filesystem:\n  volumes:\n    - {host: /a, path: /}\n",
	     "t.yaml:3:24: filesystem.volumes[0]: \"/\" is not an absolute, normalized path (no "
	     "\"..\", \".\", \"//\"; not /)"},
	    {"filesystem:\n  volumes:\n    - {[host]: /a, path: /b}\n",
	     "t.yaml:3:8: filesystem.volumes[0]: expected a string, found a list"},
	    {"filesystem:\n  volumes:\n    - {host: /a, path: /b, ro: true}\n",
	     "t.yaml:3:28: filesystem.volumes[0]: unknown key \"ro\" (expected host, path, "
	     "mode)"},
	};
	run_cases(cases, ARRAY_SIZE(cases));
}

static void test_env(void **state)
{
	(void)state;
	static const struct err_case cases[] = {
	    {"process:\n  env:\n    1A: x\n",
	     "t.yaml:3:5: process.env.1A: not a valid variable name"},
	    {"process:\n  env:\n    A-B: x\n",
	     "t.yaml:3:5: process.env.A-B: not a valid variable name"},
	    {"process:\n  env:\n    '': x\n", "t.yaml:3:5: process.env.: not a valid variable "
	                                      "name"},
	    {"process:\n  env:\n    'A=B': x\n",
	     "t.yaml:3:5: process.env.A=B: not a valid variable name"},
	    {"process:\n  env:\n    A: x\n    B: y\n    A: z\n",
	     "t.yaml:5:5: process.env.A: duplicate key"},
	    {"process:\n  env:\n    A: [x]\n",
	     "t.yaml:3:8: process.env.A: expected a string, found a list"},
	    {"process:\n  env:\n    A: \"x\\0y\"\n", "t.yaml:3:8: process.env.A: contains a NUL "
	                                             "byte"},
	    {"process:\n  env:\n    [A]: x\n",
	     "t.yaml:3:5: process.env: expected a string, found a list"},
	    {"process:\n  env_pass: [TERM, 1A]\n",
	     "t.yaml:2:20: process.env_pass[1]: \"1A\" is not a valid variable name"},
	    {"process:\n  env_pass: [A=B]\n",
	     "t.yaml:2:14: process.env_pass[0]: \"A=B\" is not a valid variable name"},
	    {"process:\n  env_pass: [[A]]\n",
	     "t.yaml:2:14: process.env_pass[0]: expected a string, found a list"},
	};
	run_cases(cases, ARRAY_SIZE(cases));

	/* a name that is a prefix of another is not a duplicate */
	struct warden_policy *p = parse_ok("process: {env: {A: 1, AB: 2, B: 3}}\n");
	assert_int_equal(p->env.n, 3);
	assert_string_equal(p->env.v[1], "AB=2");
	warden_policy_free(p);
}

static void test_network_security_user(void **state)
{
	(void)state;
	static const struct err_case cases[] = {
	    {"network: {mode: bridge}\n",
	     "t.yaml:1:17: network.mode: \"bridge\" is not none, proxy or host"},
	    {"network: {mode: Host}\n",
	     "t.yaml:1:17: network.mode: \"Host\" is not none, proxy or host"},
	    {"security:\n  seccomp:\n    deny: [nosuchcall]\n",
	     "t.yaml:3:12: security.seccomp.deny[0]: unknown system call \"nosuchcall\""},
	    {"security:\n  seccomp:\n    allow: [ptrace, '']\n",
	     "t.yaml:3:21: security.seccomp.allow[1]: unknown system call \"\""},
	    {"security: {landlock: maybe}\n",
	     "t.yaml:1:22: security.landlock: \"maybe\" is not best_effort, required or off"},
	    {"security: {landlock: false}\n",
	     "t.yaml:1:22: security.landlock: \"false\" is not best_effort, required or off"},
	    {"security: {ptrace: yes}\n",
	     "t.yaml:1:20: security.ptrace: \"yes\" is not true or false"},
	    {"security: {ptrace: 1}\n", "t.yaml:1:20: security.ptrace: \"1\" is not true or false"},
	    {"security: {ptrace: True}\n",
	     "t.yaml:1:20: security.ptrace: \"True\" is not true or false"},
	    {"process: {user: nobody}\n",
	     "t.yaml:1:17: process.user: \"nobody\": expected agent, root or UID[:GID] with ids "
	     "0-65533 (not a whole number)"},
	    {"process: {user: 70000}\n",
	     "t.yaml:1:17: process.user: \"70000\": expected agent, root or UID[:GID] with ids "
	     "0-65533 (number too large)"},
	    {"process: {user: '5:x'}\n",
	     "t.yaml:1:17: process.user: \"5:x\": bad GID \"x\" (not a whole number)"},
	};
	run_cases(cases, ARRAY_SIZE(cases));
}

/* ---- document-level errors --------------------------------------------------------- */

static void test_documents(void **state)
{
	(void)state;
	static const struct err_case cases[] = {
	    {"", "t.yaml: empty policy"},
	    {"# only a comment\n\n", "t.yaml: empty policy"},
	    {"---\n", "t.yaml:2:1: policy: expected a mapping at the top, found a scalar"},
	    {"version: 1\n---\nversion: 1\n",
	     "t.yaml:2:1: policy: only one YAML document is allowed"},
	    {"version: 1\n--- {}\n", "t.yaml:2:1: policy: only one YAML document is allowed"},
	    {"version: 1\n---\n", "t.yaml:2:1: policy: only one YAML document is allowed"},
	    {"version: 1\n---\n[\n",
	     "t.yaml:4:1: YAML syntax: did not find expected node content while parsing a flow "
	     "node"},
	    {"a: [1, 2\n", "t.yaml:2:1: YAML syntax: did not find expected ',' or ']' while "
	                   "parsing a flow sequence"},
	    {"version: 1\n  bad: x\n",
	     "t.yaml:2:6: YAML syntax: mapping values are not allowed in this context"},
	    {"name: \"abc\n",
	     "t.yaml:2:1: YAML syntax: found unexpected end of stream while scanning a quoted "
	     "scalar"},
	    {"name: *x\n", "t.yaml:1:7: YAML syntax: found undefined alias"},
	    {"filesystem:\n\tread_only: []\n",
	     "t.yaml:2:1: YAML syntax: found character that cannot start any token while "
	     "scanning for the next token"},
	};
	run_cases(cases, ARRAY_SIZE(cases));

	/* a document end marker with nothing after it is fine */
	warden_policy_free(parse_ok("version: 1\n...\n"));
	warden_policy_free(parse_ok("---\nversion: 1\n"));
	/* aliases are read as what they name */
	struct warden_policy *p =
	    parse_ok("limits: {memory: &m 64M}\nfilesystem: {tmp_size: *m}\n");
	assert_true(p->tmp_size == 64ULL << 20);
	warden_policy_free(p);
}

static void test_nul_and_size(void **state)
{
	(void)state;
	static const char with_nul[] = "version: 1\n\0name: x\n";
	char *got = parse_err_len(with_nul, sizeof(with_nul) - 1);
	assert_non_null(got);
	assert_string_equal(got, "t.yaml: policy contains a NUL byte");
	free(got);

	/* exactly 1 MiB is read; one byte more is refused before parsing */
	size_t max = 1 << 20;
	char *big = xmalloc(max + 2);
	memset(big, '#', max + 1);
	memcpy(big, "version: 1\n", 11);
	big[max - 1] = '\n';
	big[max + 1] = '\0';
	struct warden_error *e = NULL;
	struct warden_policy *p = warden_policy_parse(big, max, "t.yaml", &e);
	if (!p)
		fail_msg("1 MiB policy: %s", warden_error_text(e));
	warden_policy_free(p);
	got = parse_err_len(big, max + 1);
	assert_non_null(got);
	assert_string_equal(got, "t.yaml: policy larger than 1048576 bytes");
	free(got);
	free(big);
}

/* ---- loading files ----------------------------------------------------------------- */

static void test_isolation(void **state)
{
	(void)state;
	struct warden_error *e = NULL;
	struct warden_policy *p = warden_policy_parse("isolation: vm\n", 14, "t.yaml", &e);
	assert_non_null(p);
	assert_int_equal(p->isolation, WARDEN_ISOLATION_VM);
	char *y = warden_policy_to_yaml(p);
	assert_non_null(strstr(y, "\nisolation: vm\n"));
	free(y);
	warden_policy_free(p);
	p = warden_policy_new();
	assert_int_equal(p->isolation, WARDEN_ISOLATION_NS);
	warden_policy_free(p);
	static const struct err_case cases[] = {
	    {"isolation: gvisor\n", "t.yaml:1:12: isolation: \"gvisor\" is not ns or vm"},
	    {"isolation: [vm]\n", "t.yaml:1:12: isolation: expected a string, found a list"},
	};
	run_cases(cases, ARRAY_SIZE(cases));
}

static void test_load(void **state)
{
	(void)state;
	char *dir = make_tmpdir();
	struct warden_error *e = NULL;

	char *path = xasprintf("%s/p.yaml", dir);
	write_text(path, "version: 1\nlimits:\n  pids: 64\n");
	struct warden_policy *p = warden_policy_load(path, &e);
	if (!p)
		fail_msg("%s", warden_error_text(e));
	assert_int_equal(p->pids, 64);
	assert_string_equal(p->name, path);
	warden_policy_free(p);

	/* errors name the file */
	write_text(path, "version: 1\nlimits:\n  pids: 1\n");
	assert_null(warden_policy_load(path, &e));
	char *want = xasprintf("%s:3:9: limits.pids: 1 is below the minimum 2", path);
	assert_string_equal(warden_error_text(e), want);
	free(want);
	warden_error_free(e);
	e = NULL;

	/* a name without '/' but ending in .yaml or .yml is a path too */
	char cwd[PATH_MAX];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(dir), 0);
	write_text("rel.yml", "name: rel\n");
	p = warden_policy_load("rel.yml", &e);
	assert_int_equal(chdir(cwd), 0);
	if (!p)
		fail_msg("%s", warden_error_text(e));
	assert_string_equal(p->name, "rel");
	warden_policy_free(p);

	/* missing file */
	char *missing = xasprintf("%s/missing.yaml", dir);
	assert_null(warden_policy_load(missing, &e));
	assert_int_equal(e->errnum, ENOENT);
	want = xasprintf("policy %s: No such file or directory", missing);
	assert_string_equal(warden_error_text(e), want);
	free(want);
	free(missing);
	warden_error_free(e);
	e = NULL;

	/* a directory */
	assert_null(warden_policy_load(dir, &e));
	want = xasprintf("policy %s: not a regular file", dir);
	assert_string_equal(warden_error_text(e), want);
	free(want);
	warden_error_free(e);
	e = NULL;

	/* too large, by one byte */
	char *big = xasprintf("%s/big.yaml", dir);
	int fd = open(big, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (1 << 20) + 1), 0);
	close(fd);
	assert_null(warden_policy_load(big, &e));
	want = xasprintf("policy %s: larger than 1048576 bytes", big);
	assert_string_equal(warden_error_text(e), want);
	free(want);
	free(big);
	warden_error_free(e);
	e = NULL;

	/* an empty file */
	write_text(path, "");
	assert_null(warden_policy_load(path, &e));
	want = xasprintf("%s: empty policy", path);
	assert_string_equal(warden_error_text(e), want);
	free(want);
	warden_error_free(e);
	e = NULL;

	/* names are presets */
	assert_null(warden_policy_load("nope", &e));
	assert_string_equal(warden_error_text(e), "no preset named \"nope\" (presets: default, "
	                                          "strict)");
	warden_error_free(e);
	e = NULL;
	p = warden_policy_load("strict", &e);
	assert_non_null(p);
	assert_string_equal(p->name, "strict");
	warden_policy_free(p);

	free(path);
	rm_tree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_key),
	    cmocka_unit_test(test_other_values),
	    cmocka_unit_test(test_lists_replace_defaults),
	    cmocka_unit_test(test_ports),
	    cmocka_unit_test(test_name_rules),
	    cmocka_unit_test(test_version),
	    cmocka_unit_test(test_extends),
	    cmocka_unit_test(test_unknown_and_duplicate_keys),
	    cmocka_unit_test(test_wrong_node_kinds),
	    cmocka_unit_test(test_sizes_counts_ranges),
	    cmocka_unit_test(test_too_many),
	    cmocka_unit_test(test_paths),
	    cmocka_unit_test(test_read_only_entries),
	    cmocka_unit_test(test_volumes),
	    cmocka_unit_test(test_env),
	    cmocka_unit_test(test_network_security_user),
	    cmocka_unit_test(test_documents),
	    cmocka_unit_test(test_nul_and_size),
	    cmocka_unit_test(test_isolation),
	    cmocka_unit_test(test_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
