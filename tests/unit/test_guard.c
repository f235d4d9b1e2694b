/* test_guard.c: guardrail rules: parsing (every error path), networks, and the engine's
 * decisions on exec, connect and metric samples. */
#include "unit.h"
#include "../../src/lib/guard.h"

#include <arpa/inet.h>
#include <sys/socket.h>

static char *err_of(const char *text)
{
	return parse_err_len(text, strlen(text));
}

static void expect_error(const char *text, const char *message)
{
	_cleanup_free_ char *e = err_of(text);
	assert_non_null(e);
	assert_string_equal(e, message);
}

static void test_parse_rules(void **state)
{
	(void)state;
	struct warden_policy *p = parse_ok("guardrails:\n"
	                                   "  - name: no-nc\n"
	                                   "    when: {exec: [nc, '*/socat']}\n"
	                                   "    action: kill\n"
	                                   "  - when: {memory_peak_above: 64M}\n"
	                                   "    action: freeze\n"
	                                   "  - when: {cpu_time_above: 1.5m}\n"
	                                   "    action: alert\n"
	                                   "  - when: {wall_time_above: 90s}\n"
	                                   "    action: log\n"
	                                   "  - when: {connect_to: ['10.0.0.0/8', '*:22']}\n"
	                                   "    action: kill\n");
	assert_int_equal(p->guardrails.n, 5);
	const struct warden_guard_rule *r = p->guardrails.v;
	assert_string_equal(r[0].name, "no-nc");
	assert_int_equal(r[0].cond, WARDEN_GUARD_EXEC);
	assert_int_equal(r[0].action, WARDEN_GUARD_KILL);
	assert_int_equal(r[0].patterns.n, 2);
	assert_string_equal(r[1].name, "guardrail-2");
	assert_true(r[1].threshold == 64ULL << 20);
	assert_int_equal(r[1].action, WARDEN_GUARD_FREEZE);
	assert_int_equal(r[2].threshold, 90000);
	assert_int_equal(r[3].threshold, 90000);
	assert_int_equal(r[4].n_nets, 2);
	assert_int_equal(r[4].nets[1].family, AF_UNSPEC);
	assert_int_equal(r[4].nets[1].port, 22);
	assert_round_trip(p);
}

static void test_parse_errors(void **state)
{
	(void)state;
	expect_error("guardrails: {}\n",
	             "t.yaml:1:13: guardrails: expected a list, found a mapping");
	expect_error("guardrails: [3]\n",
	             "t.yaml:1:14: guardrails[0]: expected a mapping (name, when, action), found "
	             "a scalar");
	expect_error("guardrails:\n  - action: kill\n",
	             "t.yaml:2:5: guardrails[0]: missing \"when\"");
	expect_error("guardrails:\n  - when: {pids_above: 3}\n",
	             "t.yaml:2:5: guardrails[0]: missing \"action\"");
	expect_error("guardrails:\n  - when: {pids_above: 3}\n    action: boom\n",
	             "t.yaml:3:13: guardrails[0].action: \"boom\" is not log, alert, kill or "
	             "freeze");
	expect_error("guardrails:\n  - when: {pids_above: 3, exec: [x]}\n    action: kill\n",
	             "t.yaml:2:11: guardrails[0].when: give exactly one condition");
	expect_error("guardrails:\n  - when: {pids: 3}\n    action: kill\n",
	             "t.yaml:2:12: guardrails[0].when: unknown key \"pids\" (expected exec, "
	             "exec_outside, connect_to, memory_peak_above, pids_above, "
	             "refused_syscalls_above, cpu_time_above, wall_time_above, "
	             "gpu_memory_above)");
	expect_error("guardrails:\n  - when: {exec: []}\n    action: kill\n",
	             "t.yaml:2:18: guardrails[0].when.exec: needs at least one pattern");
	expect_error("guardrails:\n  - when: {exec: ['']}\n    action: kill\n",
	             "t.yaml:2:19: guardrails[0].when.exec[0]: empty pattern");
	expect_error("guardrails:\n  - when: {connect_to: ['300.1.1.1']}\n    action: kill\n",
	             "t.yaml:2:25: guardrails[0].when.connect_to[0]: \"300.1.1.1\": not an IP "
	             "address, a network or *");
	expect_error("guardrails:\n  - when: {connect_to: ['*']}\n    action: kill\n",
	             "t.yaml:2:25: guardrails[0].when.connect_to[0]: \"*\": * needs a port "
	             "(*:PORT)");
	expect_error("guardrails:\n  - when: {cpu_time_above: 3x}\n    action: kill\n",
	             "t.yaml:2:28: guardrails[0].when.cpu_time_above: \"3x\": not a number "
	             "(seconds, or a number with s, m or h)");
	expect_error("guardrails:\n  - when: {memory_peak_above: 0}\n    action: kill\n",
	             "t.yaml:2:31: guardrails[0].when.memory_peak_above: must be larger than 0");
	expect_error("guardrails:\n  - {name: a, when: {pids_above: 3}, action: kill}\n"
	             "  - {name: a, when: {pids_above: 4}, action: kill}\n",
	             "t.yaml:3:5: guardrails[1]: a second guardrail named \"a\"");
	expect_error("guardrails:\n  - {name: 'a b', when: {pids_above: 3}, action: kill}\n",
	             "t.yaml:2:12: guardrails[0].name: \"a b\": 1 to 64 letters, digits, '-', "
	             "'_', '.'");
	expect_error("telemetry: {ring_size: 5000}\n",
	             "t.yaml:1:24: telemetry.ring_size: must be a power of two from 4K to 64M");
}

static void test_nets(void **state)
{
	(void)state;
	struct warden_net n;
	const char *why;
	uint8_t a4[4], a6[16];
	char buf[96];
	static const char *const good[] = {
	    "10.0.0.0/8", "169.254.169.254", "10.1.2.3:443", "[fd00::]/8:443", "::1",
	    "*:22",       "0.0.0.0/0"};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		assert_int_equal(warden_net_parse(good[i], &n, &why), 0);
		warden_net_format(&n, buf, sizeof(buf));
		assert_string_equal(buf, good[i]);
	}
	static const char *const bad[] = {"10.0.0.0/33", "1.2.3",     "[::1",
	                                  "*",           "1.2.3.4:0", "1.2.3.4:70000",
	                                  "fd00::/200",  "10.0.0.1x"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_int_equal(warden_net_parse(bad[i], &n, &why), -1);

	assert_int_equal(warden_net_parse("10.0.0.0/8", &n, &why), 0);
	inet_pton(AF_INET, "10.200.3.4", a4);
	assert_true(warden_net_match(&n, AF_INET, a4, 80));
	inet_pton(AF_INET, "11.0.0.1", a4);
	assert_false(warden_net_match(&n, AF_INET, a4, 80));
	assert_int_equal(warden_net_parse("[fd00::]/8:443", &n, &why), 0);
	inet_pton(AF_INET6, "fd12::1", a6);
	assert_true(warden_net_match(&n, AF_INET6, a6, 443));
	assert_false(warden_net_match(&n, AF_INET6, a6, 80));
	assert_int_equal(warden_net_parse("10.0.0.0/12", &n, &why), 0);
	inet_pton(AF_INET, "10.15.255.255", a4);
	assert_true(warden_net_match(&n, AF_INET, a4, 1));
	inet_pton(AF_INET, "10.16.0.0", a4);
	assert_false(warden_net_match(&n, AF_INET, a4, 1));
	assert_int_equal(warden_net_parse("*:22", &n, &why), 0);
	assert_true(warden_net_match(&n, AF_INET6, a6, 22));
	assert_false(warden_net_match(&n, AF_INET6, a6, 23));
}

static void test_engine_events(void **state)
{
	(void)state;
	struct warden_policy *p =
	    parse_ok("guardrails:\n"
	             "  - {name: deny, when: {exec: [nc, '/opt/*']}, action: kill}\n"
	             "  - {name: allow, when: {exec_outside: ['/usr/bin/*']}, "
	             "action: alert}\n"
	             "  - {name: meta, when: {connect_to: ['169.254.169.254']}, "
	             "action: log}\n");
	struct warden_guard_engine e;
	struct warden_guard_hit hits[4];
	warden_guard_init(&e, &p->guardrails);
	assert_int_equal(warden_guard_on_exec(&e, "/usr/bin/ls", hits, 4), 0);
	assert_int_equal(warden_guard_on_exec(&e, "/usr/bin/nc", hits, 4), 1);
	assert_string_equal(hits[0].rule->name, "deny");
	assert_string_equal(hits[0].evidence, "exec of /usr/bin/nc");
	assert_int_equal(warden_guard_on_exec(&e, "/opt/tool", hits, 4), 2);
	assert_string_equal(hits[1].rule->name, "allow");
	/* event rules fire on every matching event */
	assert_int_equal(warden_guard_on_exec(&e, "/usr/bin/nc", hits, 4), 1);
	uint8_t a4[4];
	inet_pton(AF_INET, "169.254.169.254", a4);
	assert_int_equal(warden_guard_on_connect(&e, AF_INET, a4, 80, hits, 4), 1);
	assert_string_equal(hits[0].evidence, "connect to 169.254.169.254:80");
	inet_pton(AF_INET, "1.1.1.1", a4);
	assert_int_equal(warden_guard_on_connect(&e, AF_INET, a4, 80, hits, 4), 0);
	warden_guard_free(&e);
	warden_policy_free(p);
}

static void test_engine_thresholds(void **state)
{
	(void)state;
	struct warden_policy *p =
	    parse_ok("guardrails:\n"
	             "  - {name: mem, when: {memory_peak_above: 1M}, action: freeze}\n"
	             "  - {name: pids, when: {pids_above: 10}, action: kill}\n"
	             "  - {name: wall, when: {wall_time_above: 2}, action: alert}\n"
	             "  - {name: cpu, when: {cpu_time_above: 1}, action: alert}\n"
	             "  - {name: ref, when: {refused_syscalls_above: 5}, action: log}\n");
	struct warden_guard_engine e;
	struct warden_guard_hit hits[8];
	warden_guard_init(&e, &p->guardrails);
	struct warden_guard_sample s = {.memory_peak = 1 << 20,
	                                .has_memory = true,
	                                .pids = 10,
	                                .has_pids = true,
	                                .wall_ms = 2000,
	                                .cpu_ms = 1000,
	                                .has_cpu = true,
	                                .refused = 5,
	                                .has_refused = true};
	/* at the threshold: nothing ("above") */
	assert_int_equal(warden_guard_on_sample(&e, &s, hits, 8), 0);
	s.memory_peak++, s.wall_ms++;
	assert_int_equal(warden_guard_on_sample(&e, &s, hits, 8), 2);
	assert_string_equal(hits[0].rule->name, "mem");
	assert_string_equal(hits[0].evidence, "peak memory 1048577 bytes, above 1048576");
	assert_string_equal(hits[1].rule->name, "wall");
	/* once fired, a threshold rule stays quiet */
	assert_int_equal(warden_guard_on_sample(&e, &s, hits, 8), 0);
	/* unknown metrics never fire */
	s.pids = 100, s.has_pids = false, s.refused = 100, s.has_refused = false;
	assert_int_equal(warden_guard_on_sample(&e, &s, hits, 8), 0);
	s.has_pids = true, s.has_refused = true, s.cpu_ms = 1001;
	assert_int_equal(warden_guard_on_sample(&e, &s, hits, 8), 3);
	warden_guard_free(&e);
	warden_policy_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_rules),
	    cmocka_unit_test(test_parse_errors),
	    cmocka_unit_test(test_nets),
	    cmocka_unit_test(test_engine_events),
	    cmocka_unit_test(test_engine_thresholds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
