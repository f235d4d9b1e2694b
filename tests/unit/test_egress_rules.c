/* test_egress_rules.c: egress rules (src/lib/net/rules.c): parsing (every error path),
 * matching names and addresses, host names as destinations are checked, and the special
 * addresses refused by default in every form that reaches them. */
#include "unit.h"
#include "../../src/lib/net/egress.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <sys/socket.h>

static void parse_ok_rule(const char *text, struct warden_egress_rule *r)
{
	const char *why = NULL;
	if (warden_egress_rule_parse(text, r, &why) < 0)
		fail_msg("%s: %s", text, why);
	assert_string_equal(r->text, text);
}

static void expect_rule_error(const char *text, const char *message)
{
	struct warden_egress_rule r;
	const char *why = NULL;
	if (warden_egress_rule_parse(text, &r, &why) == 0)
		fail_msg("%s parsed, expected: %s", text, message);
	assert_string_equal(why, message);
}

static void test_parse_names(void **state)
{
	(void)state;
	struct warden_egress_rule r;
	parse_ok_rule("Example.COM.", &r);
	assert_string_equal(r.domain, "example.com");
	assert_false(r.wildcard);
	assert_int_equal(r.net.port, 0);
	warden_egress_rule_clear(&r);

	parse_ok_rule("*.example.com:443", &r);
	assert_string_equal(r.domain, "example.com");
	assert_true(r.wildcard);
	assert_int_equal(r.net.port, 443);
	warden_egress_rule_clear(&r);

	parse_ok_rule("a-b.c9.example", &r);
	assert_string_equal(r.domain, "a-b.c9.example");
	warden_egress_rule_clear(&r);
	assert_null(r.text);
}

static void test_parse_addresses(void **state)
{
	(void)state;
	struct warden_egress_rule r;
	parse_ok_rule("10.0.0.0/8", &r);
	assert_null(r.domain);
	assert_int_equal(r.net.family, AF_INET);
	assert_int_equal(r.net.prefix, 8);
	warden_egress_rule_clear(&r);

	parse_ok_rule("192.168.1.10:8080", &r);
	assert_int_equal(r.net.family, AF_INET);
	assert_int_equal(r.net.prefix, 32);
	assert_int_equal(r.net.port, 8080);
	warden_egress_rule_clear(&r);

	parse_ok_rule("[2001:db8::]/32:443", &r);
	assert_int_equal(r.net.family, AF_INET6);
	assert_int_equal(r.net.prefix, 32);
	assert_int_equal(r.net.port, 443);
	warden_egress_rule_clear(&r);

	parse_ok_rule("[::1]:8080", &r);
	assert_int_equal(r.net.family, AF_INET6);
	assert_int_equal(r.net.prefix, 128);
	warden_egress_rule_clear(&r);

	parse_ok_rule("2001:db8::1", &r);
	assert_int_equal(r.net.family, AF_INET6);
	assert_int_equal(r.net.port, 0);
	warden_egress_rule_clear(&r);

	parse_ok_rule("*:25", &r);
	assert_null(r.domain);
	assert_int_equal(r.net.family, AF_UNSPEC);
	assert_int_equal(r.net.port, 25);
	warden_egress_rule_clear(&r);
}

static void test_parse_errors(void **state)
{
	(void)state;
	char long_label[80], long_name[300];
	memset(long_label, 'a', 64);
	strcpy(long_label + 64, ".com");
	for (size_t i = 0; i < 127; i++)
		memcpy(long_name + 2 * i, "a.", 2);
	strcpy(long_name + 254, "com");

	expect_rule_error("", "empty name");
	expect_rule_error("*.", "empty name");
	expect_rule_error(".", "an empty label");
	expect_rule_error("a..b", "an empty label");
	expect_rule_error(long_label, "a label longer than 63 bytes");
	expect_rule_error(long_name, "name longer than 253 bytes");
	expect_rule_error("-a.com", "a label starts or ends with '-'");
	expect_rule_error("a-.com", "a label starts or ends with '-'");
	expect_rule_error("*", "'*' only as a whole first label (*.example.com)");
	expect_rule_error("a.*.com", "'*' only as a whole first label (*.example.com)");
	expect_rule_error("ex_ample.com", "not a host name (letters, digits, '-' and '.')");
	expect_rule_error("example.com:0", "bad port (1-65535)");
	expect_rule_error("example.com:65536", "bad port (1-65535)");
	expect_rule_error("example.com:http", "bad port (1-65535)");
	expect_rule_error("example.com:", "bad port (1-65535)");
	expect_rule_error("10.0.0.0/33", "bad prefix length");
	expect_rule_error("10.0.0.1:0", "bad port");
	expect_rule_error("[::1", "unterminated [IPv6 address]");
	expect_rule_error("[nope]:80", "not an IP address, a network or *");
	expect_rule_error("*:", "bad port");
	expect_rule_error("*/8:80", "bad prefix length");
	expect_rule_error("[::1]x", "unexpected characters after the address");
}

static struct warden_egress_rules rules(const char *const *texts)
{
	struct warden_egress_rules rs = {0};
	size_t n = 0;
	while (texts[n])
		n++;
	rs.v = xcalloc(n, sizeof(*rs.v));
	for (; rs.n < n; rs.n++)
		parse_ok_rule(texts[rs.n], &rs.v[rs.n]);
	return rs;
}

static const char *name_rule(const struct warden_egress_rules *rs, const char *name, uint16_t port)
{
	const struct warden_egress_rule *r = warden_egress_match_name(rs, name, port);
	return r ? r->text : NULL;
}

static const char *addr_rule(const struct warden_egress_rules *rs, const char *addr, uint16_t port)
{
	uint8_t a[16];
	int family = strchr(addr, ':') ? AF_INET6 : AF_INET;
	assert_int_equal(inet_pton(family, addr, a), 1);
	const struct warden_egress_rule *r = warden_egress_match_addr(rs, family, a, port);
	return r ? r->text : NULL;
}

static void test_match_names(void **state)
{
	(void)state;
	static const char *const texts[] = {"example.com", "*.example.org", "api.test:443",
	                                    "10.0.0.0/8", NULL};
	struct warden_egress_rules rs = rules(texts);
	assert_string_equal(name_rule(&rs, "example.com", 80), "example.com");
	assert_null(name_rule(&rs, "www.example.com", 80));
	assert_null(name_rule(&rs, "badexample.com", 80));
	assert_string_equal(name_rule(&rs, "a.example.org", 1), "*.example.org");
	assert_string_equal(name_rule(&rs, "a.b.example.org", 1), "*.example.org");
	assert_null(name_rule(&rs, "example.org", 1));     /* the wildcard is strictly below */
	assert_null(name_rule(&rs, "evilexample.org", 1)); /* at a label boundary */
	assert_string_equal(name_rule(&rs, "api.test", 443), "api.test:443");
	assert_null(name_rule(&rs, "api.test", 80));
	assert_null(name_rule(&rs, "api.test", 0));  /* port 0: rules without a port only */
	assert_null(name_rule(&rs, "10.1.2.3", 80)); /* address rules never match a name */
	assert_null(warden_egress_match_name(&rs, NULL, 80));
	const struct warden_egress_rule *r = warden_egress_match_name_any_port(&rs, "api.test");
	assert_non_null(r);
	assert_string_equal(r->text, "api.test:443");
	assert_null(warden_egress_match_name_any_port(&rs, "other.test"));
	warden_egress_rules_clear(&rs);
	assert_int_equal(rs.n, 0);
	assert_null(rs.v);
}

static void test_match_addresses(void **state)
{
	(void)state;
	static const char *const texts[] = {
	    "example.com", "10.0.0.0/8", "192.168.1.10:8080", "*:25", "[2001:db8::]/32:443", NULL};
	struct warden_egress_rules rs = rules(texts);
	assert_string_equal(addr_rule(&rs, "10.255.0.1", 80), "10.0.0.0/8");
	assert_null(addr_rule(&rs, "11.0.0.1", 80));
	assert_string_equal(addr_rule(&rs, "192.168.1.10", 8080), "192.168.1.10:8080");
	assert_null(addr_rule(&rs, "192.168.1.10", 80));
	assert_string_equal(addr_rule(&rs, "93.184.216.34", 25), "*:25");
	assert_string_equal(addr_rule(&rs, "2001:db8:ffff::1", 25), "*:25");
	assert_string_equal(addr_rule(&rs, "2001:db8:ffff::1", 443), "[2001:db8::]/32:443");
	assert_null(addr_rule(&rs, "2001:db9::1", 443));
	assert_null(addr_rule(&rs, "2001:db8::1", 80));

	struct warden_egress_rules copy = {0};
	warden_egress_rules_copy(&copy, &rs);
	warden_egress_rules_clear(&rs);
	assert_int_equal(copy.n, 5);
	assert_string_equal(copy.v[0].domain, "example.com");
	assert_string_equal(addr_rule(&copy, "10.1.1.1", 1), "10.0.0.0/8");
	warden_egress_rules_clear(&copy);
}

static void test_name_check(void **state)
{
	(void)state;
	char name[32];
	const char *why = NULL;
	strcpy(name, "WWW.Example.com.");
	assert_int_equal(warden_egress_name_check(name, &why), 0);
	assert_string_equal(name, "www.example.com");
	strcpy(name, "a b.com");
	assert_int_equal(warden_egress_name_check(name, &why), -1);
	assert_string_equal(why, "not a host name (letters, digits, '-' and '.')");
	strcpy(name, "");
	assert_int_equal(warden_egress_name_check(name, &why), -1);
	assert_string_equal(why, "empty name");
	strcpy(name, "*.example.com");
	assert_int_equal(warden_egress_name_check(name, &why), -1);
}

static const char *special(const char *addr)
{
	uint8_t a[16];
	int family = strchr(addr, ':') ? AF_INET6 : AF_INET;
	assert_int_equal(inet_pton(family, addr, a), 1);
	return warden_egress_special_addr(family, a);
}

static void expect_special(const char *addr, const char *why)
{
	const char *got = special(addr);
	if (!got)
		fail_msg("%s: not special, expected \"%s\"", addr, why);
	assert_string_equal(got, why);
}

static void test_special_v4(void **state)
{
	(void)state;
	expect_special("127.0.0.1", "loopback address");
	expect_special("127.255.255.254", "loopback address");
	expect_special("169.254.169.254", "cloud metadata address");
	expect_special("100.100.100.200", "cloud metadata address");
	expect_special("169.254.1.1", "link-local address");
	expect_special("10.1.2.3", "private address");
	expect_special("172.16.0.1", "private address");
	expect_special("172.31.255.255", "private address");
	expect_special("192.168.0.1", "private address");
	expect_special("100.64.0.1", "shared (CGNAT) address");
	expect_special("0.0.0.0", "unspecified address");
	expect_special("0.1.2.3", "unspecified address");
	expect_special("192.0.0.1", "IETF protocol address");
	expect_special("198.18.0.1", "benchmarking address");
	expect_special("224.0.0.1", "multicast address");
	expect_special("239.255.255.250", "multicast address");
	expect_special("240.0.0.1", "reserved address");
	expect_special("255.255.255.255", "reserved address");
	assert_null(special("93.184.216.34"));
	assert_null(special("172.32.0.1"));
	assert_null(special("100.128.0.1"));
	assert_null(special("8.8.8.8"));
}

static void test_special_v6(void **state)
{
	(void)state;
	expect_special("::1", "loopback address");
	expect_special("::", "unspecified address");
	expect_special("fe80::1", "link-local address");
	expect_special("febf::1", "link-local address");
	expect_special("fec0::1", "site-local (private) address");
	expect_special("fc00::1", "unique local (private) address");
	expect_special("fd12:3456::1", "unique local (private) address");
	expect_special("ff02::1", "multicast address");
	/* the forms that carry an IPv4 address are judged by it */
	expect_special("::ffff:127.0.0.1", "loopback address");
	expect_special("::ffff:169.254.169.254", "cloud metadata address");
	expect_special("::ffff:10.0.0.1", "private address");
	expect_special("64:ff9b::7f00:1", "loopback address");
	expect_special("64:ff9b::a9fe:a9fe", "cloud metadata address");
	expect_special("64:ff9b::c0a8:101", "private address");
	expect_special("64:ff9b:1::5db8:d822", "NAT64 local-use address");
	expect_special("::127.0.0.1", "loopback address");
	expect_special("::10.0.0.1", "private address");
	expect_special("2002:7f00:1::", "loopback address");
	expect_special("2002:a9fe:a9fe::1", "cloud metadata address");
	expect_special("2002:c0a8:0101::1", "private address");
	assert_null(special("2606:2800:220:1:248:1893:25c8:1946"));
	assert_null(special("::ffff:93.184.216.34"));
	assert_null(special("64:ff9b::5db8:d822"));
	assert_null(special("2002:5db8:d822::1"));
	assert_null(special("2001:db8::1"));
}

/* The host's own addresses are special even when ordinary otherwise. */
static void test_special_own(void **state)
{
	(void)state;
	struct ifaddrs *ifs, *i;
	assert_int_equal(getifaddrs(&ifs), 0);
	for (i = ifs; i; i = i->ifa_next) {
		if (!i->ifa_addr ||
		    (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6))
			continue;
		int family = i->ifa_addr->sa_family;
		const uint8_t *a =
		    family == AF_INET
		        ? (const uint8_t *)&((struct sockaddr_in *)i->ifa_addr)->sin_addr
		        : (const uint8_t *)&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
		assert_non_null(warden_egress_special_addr(family, a));
	}
	freeifaddrs(ifs);
	assert_string_equal(warden_egress_special_addr(AF_UNIX, (const uint8_t *)"x"),
	                    "not an IP address");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_names),     cmocka_unit_test(test_parse_addresses),
	    cmocka_unit_test(test_parse_errors),    cmocka_unit_test(test_match_names),
	    cmocka_unit_test(test_match_addresses), cmocka_unit_test(test_name_check),
	    cmocka_unit_test(test_special_v4),      cmocka_unit_test(test_special_v6),
	    cmocka_unit_test(test_special_own),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
