/* test_gateway_config.c: the model gateway's pure parts: gateway.yaml (values, errors with
 * file:line:column, keys), base URLs, request bodies, usage from JSON and from event
 * streams, key redaction, budgets and rate limits, tokens. */
#include "unit.h"
#include "../../src/lib/net/gateway-internal.h"

#include <sys/stat.h>

/* ---- helpers --------------------------------------------------------------------------- */

#define PROVIDERS                                                                                  \
	"providers:\n"                                                                             \
	"  oai:\n"                                                                                 \
	"    type: openai\n"                                                                       \
	"    base_url: https://api.openai.com/v1/\n"                                               \
	"    api_key_env: GW_TEST_KEY\n"                                                           \
	"  ant:\n"                                                                                 \
	"    type: anthropic\n"                                                                    \
	"    base_url: http://127.0.0.1:8080\n"                                                    \
	"    api_key_file: /nonexistent/key\n"                                                     \
	"    timeout: 2.5s\n"
#define MODELS                                                                                     \
	"models:\n"                                                                                \
	"  gpt-mini:\n"                                                                            \
	"    provider: oai\n"                                                                      \
	"    upstream: gpt-4o-mini-2024-07-18\n"                                                   \
	"    input_price: 0.15\n"                                                                  \
	"    output_price: 0.6\n"                                                                  \
	"  claude:\n"                                                                              \
	"    provider: ant\n"                                                                      \
	"    input_price: 3\n"                                                                     \
	"    output_price: 15\n"                                                                   \
	"    max_output_tokens: 8192\n"

static struct warden_gateway_config *cfg_ok(const char *text)
{
	struct warden_error *e = NULL;
	struct warden_gateway_config *c =
	    warden_gateway_config_parse(text, strlen(text), "t.yaml", &e);
	if (!c)
		fail_msg("did not parse: %s\n---\n%s", warden_error_text(e), text);
	return c;
}

static void cfg_err(const char *text, const char *want)
{
	struct warden_error *e = NULL;
	struct warden_gateway_config *c =
	    warden_gateway_config_parse(text, strlen(text), "t.yaml", &e);
	if (c)
		fail_msg("parsed, expected: %s\n---\n%s", want, text);
	if (strcmp(warden_error_text(e), want)) {
		print_error("config:\n%s\n", text);
		assert_string_equal(warden_error_text(e), want);
	}
	warden_error_free(e);
}

/* ---- configuration --------------------------------------------------------------------- */

static void test_config_full(void **state)
{
	(void)state;
	struct warden_gateway_config *c = cfg_ok("version: 1\n" PROVIDERS MODELS "policies:\n"
	                                         "  ci:\n"
	                                         "    models: [claude, gpt-mini]\n"
	                                         "    budget:\n"
	                                         "      requests: 100\n"
	                                         "      input_tokens: unlimited\n"
	                                         "      output_tokens: 5000\n"
	                                         "      cost_usd: 2.5\n"
	                                         "    rate_limit:\n"
	                                         "      requests_per_min: 30\n"
	                                         "      tokens_per_min: 100000\n"
	                                         "    log_content: true\n"
	                                         "  \"*\":\n"
	                                         "    models: [gpt-mini]\n");
	assert_int_equal(c->n_providers, 2);
	const struct gw_provider *oai = &c->providers[0], *ant = &c->providers[1];
	assert_int_equal(oai->kind, GW_KIND_OPENAI);
	assert_true(oai->url.https);
	assert_string_equal(oai->url.host, "api.openai.com");
	assert_string_equal(oai->url.host_header, "api.openai.com");
	assert_int_equal(oai->url.port, 443);
	assert_string_equal(oai->url.path, "/v1");
	assert_int_equal(oai->timeout_ms, 300000);
	assert_int_equal(ant->kind, GW_KIND_ANTHROPIC);
	assert_false(ant->url.https);
	assert_true(ant->url.host_is_ip);
	assert_string_equal(ant->url.host_header, "127.0.0.1:8080");
	assert_string_equal(ant->url.path, "");
	assert_int_equal(ant->timeout_ms, 2500);
	assert_string_equal(ant->key_file, "/nonexistent/key");

	const struct gw_model *m = &c->models[0];
	assert_string_equal(m->name, "gpt-mini");
	assert_string_equal(m->upstream, "gpt-4o-mini-2024-07-18");
	assert_int_equal(m->provider, 0);
	assert_int_equal(m->input_price, 150000);
	assert_int_equal(m->output_price, 600000);
	assert_int_equal(m->max_output, 0);
	assert_int_equal(c->models[1].max_output, 8192);
	assert_null(c->models[1].upstream);

	const struct gw_section *ci = gw_config_section(c, "ci");
	assert_string_equal(ci->policy, "ci");
	assert_int_equal(ci->n_models, 2);
	assert_int_equal(ci->limits.requests, 100);
	assert_int_equal(ci->limits.input_tokens, 0);
	assert_int_equal(ci->limits.output_tokens, 5000);
	assert_true(ci->limits.cost == 2500000000000ULL);
	assert_int_equal(ci->limits.requests_per_min, 30);
	assert_int_equal(ci->limits.tokens_per_min, 100000);
	assert_true(ci->log_content);
	assert_ptr_equal(gw_section_model(c, ci, "claude"), &c->models[1]);
	assert_null(gw_section_model(c, ci, "other"));

	const struct gw_section *any = gw_config_section(c, "whatever");
	assert_string_equal(any->policy, "*");
	assert_false(any->log_content);
	assert_null(gw_section_model(c, any, "claude"));
	assert_true(warden_gateway_config_serves(c, "x"));
	warden_gateway_config_free(c);

	c = cfg_ok(PROVIDERS MODELS "policies:\n  ci:\n    models: []\n");
	assert_false(warden_gateway_config_serves(c, "other"));
	assert_true(warden_gateway_config_serves(c, "ci"));
	warden_gateway_config_free(c);
}

static void test_config_errors(void **state)
{
	(void)state;
	const char *pol = "policies:\n  ci:\n    models: [gpt-mini]\n";
	char buf[4096];
	cfg_err("", "t.yaml: empty configuration");
	cfg_err("[1, 2", "t.yaml:2:1: YAML syntax: did not find expected ',' or ']' while parsing "
	                 "a flow sequence");
	cfg_err("a: 1\n", "t.yaml:1:1: a: unknown key (expected one of: version, providers, "
	                  "models, policies)");
	cfg_err("- 1\n", "t.yaml:1:1: gateway: expected a mapping, found a list");
	cfg_err("version: 1\n", "t.yaml:1:1: gateway: missing \"providers\"");
	snprintf(buf, sizeof(buf), "version: 2\n%s%s%s", PROVIDERS, MODELS, pol);
	cfg_err(buf, "t.yaml:1:10: version: unsupported version \"2\" (this warden reads 1)");
	snprintf(buf, sizeof(buf), "%s%s%s---\na: 1\n", PROVIDERS, MODELS, pol);
	cfg_err(buf, "t.yaml:25:1: gateway: only one YAML document is allowed");
	cfg_err("providers: {}\nmodels: {}\npolicies: {}\n",
	        "t.yaml:1:12: providers: needs at least one entry");
	cfg_err("providers:\n  p:\n    type: openai\n    type: openai\n",
	        "t.yaml:4:5: providers.p.type: duplicate key");
	cfg_err("providers:\n  p:\n    type: openai\n",
	        "t.yaml:3:5: providers.p: missing \"base_url\"");
	cfg_err("providers:\n  p:\n    type: azure\n",
	        "t.yaml:3:11: providers.p.type: \"azure\" is not openai or anthropic");
	cfg_err("providers:\n  p q:\n    type: openai\n",
	        "t.yaml:2:3: providers.p q: not a valid name (1 to 64 letters, digits, '-', '_', "
	        "'.')");
	cfg_err("providers:\n  p:\n    base_url: ftp://x\n",
	        "t.yaml:3:15: providers.p.base_url: \"ftp://x\": must start with http:// or "
	        "https://");
	cfg_err("providers:\n  p:\n    type: openai\n    base_url: https://u@x/v1\n",
	        "t.yaml:4:15: providers.p.base_url: \"https://u@x/v1\": no user name, query, "
	        "fragment, spaces or control characters");
	cfg_err("providers:\n  p:\n    type: openai\n    base_url: http://x:0\n",
	        "t.yaml:4:15: providers.p.base_url: \"http://x:0\": the port must be 1 to 65535");
	cfg_err("providers:\n  p:\n    type: openai\n    base_url: http://x\n",
	        "t.yaml:3:5: providers.p: give exactly one of api_key_env and api_key_file");
	cfg_err("providers:\n  p:\n    type: openai\n    base_url: http://x\n"
	        "    api_key_env: K\n    api_key_file: /k\n",
	        "t.yaml:3:5: providers.p: give exactly one of api_key_env and api_key_file");
	cfg_err("providers:\n  p:\n    type: openai\n    base_url: http://x\n"
	        "    api_key_env: K\n    ca_file: /ca.pem\n",
	        "t.yaml:3:5: providers.p: ca_file needs an https:// base_url");
	cfg_err("providers:\n  p:\n    api_key_env: 1K\n",
	        "t.yaml:3:18: providers.p.api_key_env: \"1K\" is not a variable name");
	cfg_err("providers:\n  p:\n    api_key_file: key.txt\n",
	        "t.yaml:3:19: providers.p.api_key_file: \"key.txt\" is not an absolute, "
	        "normalized path");
	cfg_err("providers:\n  p:\n    timeout: 2h\n",
	        "t.yaml:3:14: providers.p.timeout: \"2h\": not a number (seconds, or a number "
	        "with s or m)");
	cfg_err("providers:\n  p:\n    timeout: 61m\n",
	        "t.yaml:3:14: providers.p.timeout: \"61m\": must be more than 0 and at most 1 "
	        "hour");
	snprintf(buf, sizeof(buf), "%smodels:\n  m:\n    provider: nope\n", PROVIDERS);
	cfg_err(buf, "t.yaml:13:15: models.m.provider: no provider named \"nope\" under providers");
	snprintf(buf, sizeof(buf),
	         "%smodels:\n  m:\n    provider: oai\n    input_price: 0.1234567\n", PROVIDERS);
	cfg_err(buf,
	        "t.yaml:14:18: models.m.input_price: \"0.1234567\": more than 6 decimal places");
	snprintf(buf, sizeof(buf), "%smodels:\n  m:\n    provider: oai\n    input_price: -1\n",
	         PROVIDERS);
	cfg_err(buf, "t.yaml:14:18: models.m.input_price: \"-1\": not a number");
	snprintf(buf, sizeof(buf), "%smodels:\n  m:\n    provider: oai\n    input_price: 1\n",
	         PROVIDERS);
	cfg_err(buf, "t.yaml:13:5: models.m: missing \"output_price\"");
	snprintf(buf, sizeof(buf), "%smodels:\n  m:\n    max_output_tokens: 0\n", PROVIDERS);
	cfg_err(buf, "t.yaml:13:24: models.m.max_output_tokens: must be larger than 0");
	snprintf(buf, sizeof(buf), "%smodels:\n  a b:\n    provider: oai\n", PROVIDERS);
	cfg_err(buf, "t.yaml:12:3: models.a b: not a valid name (1 to 128 letters, digits and "
	             "-_.:/@+)");
	snprintf(buf, sizeof(buf), "%s%spolicies:\n  ci:\n    models: [nope]\n", PROVIDERS, MODELS);
	cfg_err(buf, "t.yaml:24:14: policies.ci.models[0]: no model named \"nope\" under models");
	snprintf(buf, sizeof(buf), "%s%spolicies:\n  ci:\n    models: [claude, claude]\n",
	         PROVIDERS, MODELS);
	cfg_err(buf, "t.yaml:24:22: policies.ci.models[1]: \"claude\" is listed twice");
	snprintf(buf, sizeof(buf), "%s%spolicies:\n  ci:\n    log_content: true\n", PROVIDERS,
	         MODELS);
	cfg_err(buf, "t.yaml:24:5: policies.ci: missing \"models\"");
	snprintf(buf, sizeof(buf),
	         "%s%spolicies:\n  ci:\n    models: [claude]\n    log_content: 1\n", PROVIDERS,
	         MODELS);
	cfg_err(buf, "t.yaml:25:18: policies.ci.log_content: \"1\" is not true or false");
	snprintf(buf, sizeof(buf), "%s%spolicies:\n  ci:\n    budget:\n      requests: 0\n",
	         PROVIDERS, MODELS);
	cfg_err(buf, "t.yaml:25:17: policies.ci.budget.requests: 0 is ambiguous: write "
	             "\"unlimited\"");
	snprintf(buf, sizeof(buf), "%s%spolicies:\n  ci:\n    budget:\n      cost: 1\n", PROVIDERS,
	         MODELS);
	cfg_err(buf, "t.yaml:25:7: policies.ci.budget.cost: unknown key (expected one of: "
	             "requests, input_tokens, output_tokens, cost_usd)");
	snprintf(buf, sizeof(buf),
	         "%s%spolicies:\n  ci:\n    rate_limit:\n      tokens_per_min: 1000000001\n",
	         PROVIDERS, MODELS);
	cfg_err(buf, "t.yaml:25:23: policies.ci.rate_limit.tokens_per_min: \"1000000001\": number "
	             "too large");
	snprintf(buf, sizeof(buf), "%s%spolicies:\n  \"ci/x\":\n    models: []\n", PROVIDERS,
	         MODELS);
	cfg_err(buf, "t.yaml:23:3: policies.ci/x: not a valid name (a policy name (1 to 64 "
	             "letters, digits, '-', '_', '.') or \"*\")");
	/* an alias to an enclosing mapping is read as that mapping, once */
	cfg_err("providers: &a\n  p: *a\n",
	        "t.yaml:2:3: providers.p.p: unknown key (expected one of: type, base_url, "
	        "api_key_env, api_key_file, ca_file, timeout)");
}

static void test_config_shape(void **state)
{
	(void)state;
	char deep[200] = "";
	for (int i = 0; i < 20; i++)
		strcat(deep, "[");
	cfg_err(deep, "t.yaml:1:17: gateway: nested deeper than 16 levels");
	cfg_err("\"a\\0\": 1\n", "t.yaml:1:1: gateway: contains a NUL byte");
	struct warden_error *e = NULL;
	assert_null(warden_gateway_config_parse("a\0b", 3, "t.yaml", &e));
	assert_string_equal(warden_error_text(e), "t.yaml: contains a NUL byte");
	warden_error_free(e);
}

/* warden_gateway_config_load(): only a regular file of at most 1 MiB, read whole. */
static void test_config_load(void **state)
{
	(void)state;
	char *dir = make_tmpdir();
	char *path = xasprintf("%s/gateway.yaml", dir), *fifo = xasprintf("%s/fifo", dir);
	struct warden_error *e = NULL;
	char *want;

	assert_null(warden_gateway_config_load(path, &e));
	want = xasprintf("gateway configuration %s: No such file or directory", path);
	assert_string_equal(warden_error_text(e), want);
	free(want);
	warden_error_free(e);
	e = NULL;

	assert_null(warden_gateway_config_load(dir, &e));
	want = xasprintf("gateway configuration %s: not a regular file", dir);
	assert_string_equal(warden_error_text(e), want);
	free(want);
	warden_error_free(e);
	e = NULL;

	/* a FIFO is refused without waiting for a writer */
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_null(warden_gateway_config_load(fifo, &e));
	want = xasprintf("gateway configuration %s: not a regular file", fifo);
	assert_string_equal(warden_error_text(e), want);
	free(want);
	warden_error_free(e);
	e = NULL;

	char *big = xmalloc((1 << 20) + 2);
	memset(big, '#', (1 << 20) + 1);
	big[(1 << 20) + 1] = '\0';
	write_text(path, big);
	free(big);
	assert_null(warden_gateway_config_load(path, &e));
	want = xasprintf("gateway configuration %s: larger than 1048576 bytes", path);
	assert_string_equal(warden_error_text(e), want);
	free(want);
	warden_error_free(e);
	e = NULL;

	write_text(path, PROVIDERS MODELS "policies:\n  ci:\n    models: [claude]\n");
	struct warden_gateway_config *c = warden_gateway_config_load(path, &e);
	assert_non_null(c);
	assert_true(warden_gateway_config_serves(c, "ci"));
	warden_gateway_config_free(c);

	write_text(path, "providers: [\n");
	assert_null(warden_gateway_config_load(path, &e));
	want = xasprintf("%s:2:1: YAML syntax: did not find expected node content while parsing "
	                 "a flow node",
	                 path);
	assert_string_equal(warden_error_text(e), want);
	free(want);
	warden_error_free(e);

	free(path);
	free(fifo);
	rm_tree(dir);
}

static void test_url(void **state)
{
	(void)state;
	static const struct {
		const char *in, *host, *host_header, *path;
		uint16_t port;
	} ok[] = {
	    {"https://API.example.com", "api.example.com", "api.example.com", "", 443},
	    {"http://x:8080/a//b", NULL, NULL, NULL, 0},
	    /* a last "." or ".." component (found by fuzz_gateway_config) */
	    {"https://x/v1/..", NULL, NULL, NULL, 0},
	    {"https://x/v1/./", NULL, NULL, NULL, 0},
	    {"https://x/..", NULL, NULL, NULL, 0},
	    {"https://x/v1/../", NULL, NULL, NULL, 0},
	    {"https://x/v1/%2e%2e", NULL, NULL, NULL, 0},
	    {"https://x/v1/..a/.b", "x", "x", "/v1/..a/.b", 443},
	    {"http://x:8080/a/b/", "x", "x:8080", "/a/b", 8080},
	    {"https://[::1]:4443/v1", "::1", "[::1]:4443", "/v1", 4443},
	    {"https://[2001:db8::1]", "2001:db8::1", "[2001:db8::1]", "", 443},
	    {"http://10.0.0.1:80/", "10.0.0.1", "10.0.0.1", "", 80},
	};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		struct gw_url u;
		const char *why = NULL;
		int r = gw_url_parse(ok[i].in, &u, &why);
		if (!ok[i].host) {
			assert_int_equal(r, -1);
			assert_string_equal(why, "the path is not normalized");
			continue;
		}
		assert_int_equal(r, 0);
		assert_string_equal(u.host, ok[i].host);
		assert_string_equal(u.host_header, ok[i].host_header);
		assert_string_equal(u.path, ok[i].path);
		assert_int_equal(u.port, ok[i].port);
		gw_url_clear(&u);
	}
	static const char *const bad[] = {
	    "https://",        "https:///v1",         "https://-x.com",
	    "https://x..com",  "https://x.com:99999", "https://[::1",
	    "https://[zz]/",   "https://a b",         "https://x.com?q=1",
	    "https://x.com#f", "https://x_y.com",     "HTTPS://x.com",
	    "https://x.com:/", "https://[::1]x",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct gw_url u;
		const char *why = NULL;
		if (gw_url_parse(bad[i], &u, &why) == 0)
			fail_msg("%s parsed", bad[i]);
		assert_non_null(why);
	}
}

static void test_keys(void **state)
{
	(void)state;
	char *dir = make_tmpdir();
	char *path = xasprintf("%s/key", dir);
	char *text = xasprintf("providers:\n  p:\n    type: anthropic\n    base_url: http://x\n"
	                       "    api_key_file: %s\n"
	                       "  q:\n    type: openai\n    base_url: http://y\n"
	                       "    api_key_env: GW_TEST_KEY\n"
	                       "models:\n  a:\n    provider: p\n    input_price: 0\n"
	                       "    output_price: 0\n"
	                       "  b:\n    provider: q\n    input_price: 0\n    output_price: 0\n"
	                       "policies:\n  one:\n    models: [a]\n  two:\n    models: [b]\n",
	                       path);
	struct warden_gateway_config *c = cfg_ok(text);
	struct warden_error *e = NULL;

	assert_int_equal(warden_gateway_config_load_keys(c, "one", &e), -1);
	assert_non_null(strstr(warden_error_text(e), "provider p: api_key_file "));
	warden_error_free(e);
	e = NULL;
	write_text(path, "sk-ant-0123456789abcdef\n");
	chmod(path, 0644);
	assert_int_equal(warden_gateway_config_load_keys(c, "one", &e), -1);
	char *want = xasprintf("provider p: api_key_file %s: readable by every user (mode 0644): "
	                       "chmod o-rwx it",
	                       path);
	assert_string_equal(warden_error_text(e), want);
	free(want);
	warden_error_free(e);
	e = NULL;
	chmod(path, 0640);
	assert_int_equal(warden_gateway_config_load_keys(c, "one", &e), 0);
	assert_string_equal(c->providers[0].key, "sk-ant-0123456789abcdef");
	assert_null(c->providers[1].key); /* not a provider of policy one */

	unsetenv("GW_TEST_KEY");
	assert_int_equal(warden_gateway_config_load_keys(c, "two", &e), -1);
	assert_string_equal(warden_error_text(e), "provider q: api_key_env GW_TEST_KEY is not set");
	warden_error_free(e);
	e = NULL;
	setenv("GW_TEST_KEY", "short", 1);
	assert_int_equal(warden_gateway_config_load_keys(c, "two", &e), -1);
	assert_string_equal(warden_error_text(e), "provider q: api_key_env GW_TEST_KEY: the key "
	                                          "must be 16 to 512 characters, not 5");
	warden_error_free(e);
	e = NULL;
	setenv("GW_TEST_KEY", "sk-0123456789 abcdef", 1);
	assert_int_equal(warden_gateway_config_load_keys(c, "two", &e), -1);
	assert_string_equal(warden_error_text(e),
	                    "provider q: api_key_env GW_TEST_KEY: the key has a character that is "
	                    "not visible ASCII (at offset 13)");
	warden_error_free(e);
	e = NULL;
	setenv("GW_TEST_KEY", "sk-0123456789abcdef", 1);
	assert_int_equal(warden_gateway_config_load_keys(c, "two", &e), 0);
	assert_string_equal(c->providers[1].key, "sk-0123456789abcdef");
	assert_int_equal(warden_gateway_config_load_keys(c, "three", &e), -1);
	assert_string_equal(warden_error_text(e), "gateway: no section for policy three and no "
	                                          "\"*\"");
	warden_error_free(e);
	unsetenv("GW_TEST_KEY");
	warden_gateway_config_free(c);
	free(text);
	free(path);
	rm_tree(dir);
}

/* ---- bodies ---------------------------------------------------------------------------- */

static void request_err(enum gw_api api, const char *body, const char *want)
{
	struct gw_request r;
	char why[GW_WHY_MAX];
	assert_int_equal(gw_request_parse(api, body, strlen(body), &r, why), -1);
	assert_string_equal(why, want);
	gw_request_clear(&r);
}

static void test_request(void **state)
{
	(void)state;
	struct gw_request r;
	char why[GW_WHY_MAX];
	const char *body = "{\"model\":\"m\",\"stream\":true,\"max_tokens\":100,"
	                   "\"max_completion_tokens\":50,\"n\":3,\"temperature\":0.5,"
	                   "\"stream_options\":{\"x\":1}}";
	assert_int_equal(gw_request_parse(GW_API_CHAT, body, strlen(body), &r, why), 0);
	assert_string_equal(r.model, "m");
	assert_true(r.stream);
	assert_int_equal(r.max_output, 100);
	assert_int_equal(r.choices, 3);
	assert_int_equal(gw_output_reserve(GW_API_CHAT, &r, 0), 300);
	char *fwd = gw_request_forward(GW_API_CHAT, &r, "up-model", 999);
	assert_string_equal(fwd, "{\"model\":\"up-model\",\"stream\":true,\"max_tokens\":100,"
	                         "\"max_completion_tokens\":50,\"n\":3,\"temperature\":0.5,"
	                         "\"stream_options\":{\"x\":1,\"include_usage\":true}}");
	free(fwd);
	gw_request_clear(&r);

	body = "{\"model\":\"m\",\"input\":\"hi\"}";
	assert_int_equal(gw_request_parse(GW_API_RESPONSES, body, strlen(body), &r, why), 0);
	assert_false(r.stream);
	assert_int_equal(gw_output_reserve(GW_API_RESPONSES, &r, 0), GW_DEFAULT_MAX_OUTPUT);
	assert_int_equal(gw_output_reserve(GW_API_RESPONSES, &r, 77), 77);
	assert_int_equal(gw_output_reserve(GW_API_EMBEDDINGS, &r, 77), 0);
	fwd = gw_request_forward(GW_API_RESPONSES, &r, NULL, 0);
	assert_string_equal(fwd, body);
	free(fwd);
	/* no maximum named: the one reserved is added, so the provider cannot exceed it */
	fwd = gw_request_forward(GW_API_RESPONSES, &r, NULL, 77);
	assert_string_equal(fwd, "{\"model\":\"m\",\"input\":\"hi\",\"max_output_tokens\":77}");
	free(fwd);
	gw_request_clear(&r);
	body = "{\"model\":\"m\",\"messages\":[]}";
	assert_int_equal(gw_request_parse(GW_API_CHAT, body, strlen(body), &r, why), 0);
	fwd = gw_request_forward(GW_API_CHAT, &r, NULL, 5);
	assert_string_equal(fwd, "{\"model\":\"m\",\"messages\":[],\"max_completion_tokens\":5}");
	free(fwd);
	gw_request_clear(&r);

	body = "{\"model\":\"m\",\"stream\":true,\"max_tokens\":10}";
	assert_int_equal(gw_request_parse(GW_API_MESSAGES, body, strlen(body), &r, why), 0);
	fwd = gw_request_forward(GW_API_MESSAGES, &r, NULL, 10);
	assert_string_equal(fwd, body); /* only chat streams get stream_options */
	free(fwd);
	gw_request_clear(&r);

	/* a bound: a token covers at least one byte of text; images are bounded apart */
	assert_int_equal(gw_input_estimate(NULL, 0), 0);
	assert_int_equal(gw_input_estimate(NULL, 7), 7);
	body = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":["
	       "{\"type\":\"text\",\"text\":\"what is this\"},"
	       "{\"type\":\"image_url\",\"image_url\":{\"url\":\"http://x/a.png\"}}]}]}";
	assert_int_equal(gw_request_parse(GW_API_CHAT, body, strlen(body), &r, why), 0);
	assert_int_equal(gw_input_estimate(&r, strlen(body)), strlen(body) + GW_IMAGE_TOKENS_MAX);
	gw_request_clear(&r);

	request_err(GW_API_CHAT, "",
	            "the body is not valid JSON: '[' or '{' expected near end "
	            "of file (line 1, column 0)");
	request_err(GW_API_CHAT, "[1]", "the body must be a JSON object");
	request_err(GW_API_CHAT, "{}", "\"model\" is missing");
	request_err(GW_API_CHAT, "{\"model\":1}",
	            "\"model\" must be a string of 1 to 256 "
	            "characters");
	request_err(GW_API_CHAT, "{\"model\":\"a\\u0000b\"}",
	            "the body is not valid JSON: \\u0000 is not allowed without JSON_ALLOW_NUL "
	            "near '\"a\\u0000b\"' (line 1, column 19)");
	request_err(GW_API_CHAT, "{\"model\":\"a\",\"model\":\"b\"}",
	            "the body is not valid JSON: duplicate object key near '\"model\"' (line 1, "
	            "column 20)");
	request_err(GW_API_CHAT, "{\"model\":\"a\",\"stream\":\"yes\"}",
	            "\"stream\" must be true or false");
	request_err(GW_API_CHAT, "{\"model\":\"a\",\"max_tokens\":\"100000\"}",
	            "\"max_tokens\" must be an integer from 1 to 1000000000");
	request_err(GW_API_CHAT, "{\"model\":\"a\",\"max_completion_tokens\":0}",
	            "\"max_completion_tokens\" must be an integer from 1 to 1000000000");
	request_err(GW_API_CHAT, "{\"model\":\"a\",\"n\":1000}",
	            "\"n\" must be an integer from 1 to 128");
	request_err(GW_API_CHAT, "{\"model\":\"a\",\"stream_options\":true}",
	            "\"stream_options\" must be an object");
	request_err(GW_API_RESPONSES, "{\"model\":\"a\",\"max_output_tokens\":1.5}",
	            "\"max_output_tokens\" must be an integer from 1 to 1000000000");
	request_err(GW_API_MESSAGES, "{\"model\":\"a\",\"max_tokens\":-1}",
	            "\"max_tokens\" must be an integer from 1 to 1000000000");
}

static void usage_is(enum gw_api api, const char *body, int r, uint64_t in, uint64_t out)
{
	struct gw_usage u = {0};
	assert_int_equal(gw_usage_from_json(api, body, strlen(body), &u), r);
	if (r == 0) {
		assert_int_equal(u.input, in);
		assert_int_equal(u.output, out);
	}
}

static void test_usage_json(void **state)
{
	(void)state;
	usage_is(GW_API_CHAT, "{\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":5}}", 0, 12,
	         5);
	usage_is(GW_API_CHAT, "{\"usage\":{\"prompt_tokens\":12}}", -1, 0, 0);
	usage_is(GW_API_CHAT, "{\"usage\":{\"prompt_tokens\":-1,\"completion_tokens\":5}}", -1, 0,
	         0);
	usage_is(GW_API_CHAT, "{\"usage\":null}", -1, 0, 0);
	usage_is(GW_API_CHAT, "not json", -1, 0, 0);
	usage_is(GW_API_EMBEDDINGS, "{\"usage\":{\"prompt_tokens\":8,\"total_tokens\":8}}", 0, 8,
	         0);
	usage_is(GW_API_RESPONSES, "{\"usage\":{\"input_tokens\":7,\"output_tokens\":9}}", 0, 7, 9);
	usage_is(GW_API_MESSAGES,
	         "{\"usage\":{\"input_tokens\":7,\"cache_creation_input_tokens\":100,"
	         "\"cache_read_input_tokens\":1000,\"output_tokens\":9}}",
	         0, 1107, 9);
}

/* Feed text to a stream parser in pieces of `step` bytes. */
static struct gw_usage sse_usage(enum gw_api api, const char *text, size_t step,
                                 struct gw_buf *deltas)
{
	struct gw_sse s;
	gw_sse_init(&s, api, deltas);
	for (size_t i = 0; i < strlen(text); i += step)
		gw_sse_feed(&s, text + i, strlen(text) - i < step ? strlen(text) - i : step);
	struct gw_usage u = s.usage;
	gw_sse_clear(&s);
	return u;
}

static void test_sse(void **state)
{
	(void)state;
	const char *chat =
	    "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n"
	    ": keep-alive\r\n\r\n"
	    "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}],\"usage\":null}\r\n\r\n"
	    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":2}}\r\r"
	    "data: [DONE]\n\n";
	for (size_t step = 1; step < 40; step += 7) {
		struct gw_buf text = {.max = 100};
		struct gw_usage u = sse_usage(GW_API_CHAT, chat, step, &text);
		assert_true(gw_usage_complete(GW_API_CHAT, &u));
		assert_int_equal(u.input, 11);
		assert_int_equal(u.output, 2);
		assert_string_equal(text.p, "Hello");
		gw_buf_clear(&text);
	}
	const char *messages =
	    "event: message_start\n"
	    "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,"
	    "\"cache_read_input_tokens\":5,\"output_tokens\":1}}}\n\n"
	    "event: content_block_delta\n"
	    "data: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\","
	    "\"text\":\"Hi\"}}\n\n";
	struct gw_usage u = sse_usage(GW_API_MESSAGES, messages, 5, NULL);
	assert_false(gw_usage_complete(GW_API_MESSAGES, &u)); /* cut before message_delta */
	assert_int_equal(u.input, 30);
	char *full = xasprintf("%sevent: message_delta\ndata: {\"type\":\"message_delta\","
	                       "\"usage\":{\"output_tokens\":15}}\n\n",
	                       messages);
	u = sse_usage(GW_API_MESSAGES, full, 3, NULL);
	assert_true(gw_usage_complete(GW_API_MESSAGES, &u));
	assert_int_equal(u.input, 30);
	assert_int_equal(u.output, 15);
	free(full);

	const char *responses =
	    "event: response.created\n"
	    "data: {\"type\":\"response.created\",\"response\":{\"usage\":null}}\n\n"
	    "event: response.output_text.delta\n"
	    "data: {\"type\":\"response.output_text.delta\",\"delta\":\"ok\"}\n\n"
	    "event: response.completed\n"
	    "data: {\"type\":\"response.completed\",\n"
	    "data: \"response\":{\"usage\":{\"input_tokens\":4,\"output_tokens\":6}}}\n\n";
	struct gw_buf text = {0};
	u = sse_usage(GW_API_RESPONSES, responses, 2, &text);
	assert_true(gw_usage_complete(GW_API_RESPONSES, &u));
	assert_int_equal(u.input, 4);
	assert_int_equal(u.output, 6);
	assert_string_equal(text.p, "ok");
	gw_buf_clear(&text);

	/* An event never ended by a blank line is not read. */
	u = sse_usage(GW_API_CHAT,
	              "data: {\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n", 4, NULL);
	assert_false(gw_usage_complete(GW_API_CHAT, &u));

	/* "data" without a colon is a data line with an empty value (found by
	 * fuzz_gateway_body: its length was taken from the wrong pointer), and a line is read
	 * by its length: one that begins with a NUL byte is not a blank line. */
	static const char odd[] =
	    "data\n"
	    "data: {\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n"
	    "\0\n"
	    "data\n"
	    "\n";
	for (size_t step = 1; step < sizeof(odd); step++) {
		struct gw_sse s;
		gw_sse_init(&s, GW_API_CHAT, NULL);
		for (size_t i = 0; i < sizeof(odd) - 1; i += step) {
			size_t n = sizeof(odd) - 1 - i < step ? sizeof(odd) - 1 - i : step;
			gw_sse_feed(&s, odd + i, n);
			/* nothing is dispatched before the blank line at the end */
			if (i + n < sizeof(odd) - 1)
				assert_false(s.usage.have_input);
		}
		assert_true(gw_usage_complete(GW_API_CHAT, &s.usage));
		assert_int_equal(s.usage.input, 3);
		assert_int_equal(s.usage.output, 4);
		gw_sse_clear(&s);
	}
}

static char *redact_all(const char *key, const char *in, size_t step)
{
	struct gw_redactor r = {.key = key, .key_len = strlen(key)};
	struct gw_buf out = {0};
	for (size_t i = 0; i < strlen(in); i += step)
		gw_redact(&r, in + i, strlen(in) - i < step ? strlen(in) - i : step, &out);
	gw_redact_flush(&r, &out);
	char *s = xstrdup(out.p ? out.p : "");
	gw_buf_clear(&out);
	return s;
}

static void test_redact(void **state)
{
	(void)state;
	const char *key = "sk-abcabd0123456789";
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"plain text", "plain text"},
	    {"key sk-abcabd0123456789 here", "key [redacted] here"},
	    {"sk-abcabd0123456789sk-abcabd0123456789", "[redacted][redacted]"},
	    {"sk-abcsk-abcabd0123456789", "sk-abc[redacted]"},
	    {"ends with sk-abcabd012345678", "ends with sk-abcabd012345678"},
	    {"ends with sk-abc", "ends with sk-abc"},
	    {"", ""},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		for (size_t step = 1; step <= strlen(cases[i].in) + 1; step++) {
			char *got = redact_all(key, cases[i].in, step);
			assert_string_equal(got, cases[i].out);
			free(got);
		}
	}
	/* Nothing is held back that cannot start the key. */
	struct gw_redactor r = {.key = key, .key_len = strlen(key)};
	struct gw_buf out = {0};
	gw_redact(&r, "data: {}\n\n", 10, &out);
	assert_int_equal(out.len, 10);
	gw_redact(&r, "x sk-ab", 7, &out);
	assert_int_equal(out.len, 12);
	assert_int_equal(r.held, 5);
	gw_buf_clear(&out);
}

/* ---- budgets and rate limits ----------------------------------------------------------- */

static void test_budget(void **state)
{
	(void)state;
	struct gw_limits lim = {.requests = 10, .output_tokens = 1000, .cost = 5000000};
	struct gw_budget b;
	struct gw_refusal rf;
	struct gw_charge want = {100, 400, 1000000};
	gw_budget_init(&b, &lim, 0);
	assert_int_equal(gw_budget_reserve(&b, &want, 0, &rf), 0);
	assert_int_equal(gw_budget_reserve(&b, &want, 0, &rf), 0);
	/* 800 of 1000 output tokens held: a third call must wait for those in flight. */
	assert_int_equal(gw_budget_reserve(&b, &want, 0, &rf), -1);
	assert_int_equal(rf.status, 429);
	assert_int_equal(rf.retry_after, 1);
	assert_string_equal(rf.why, "budget: output_tokens held by calls in flight (800 "
	                            "reserved)");
	/* One settles at less than it reserved: room again. */
	struct gw_charge used = {50, 100, 200000};
	gw_budget_settle(&b, &want, &used, 0);
	assert_int_equal(b.spent.output, 100);
	assert_int_equal(b.reserved.output, 400);
	assert_int_equal(gw_budget_reserve(&b, &want, 0, &rf), 0);
	/* One ends without usage: its reservation stays charged. */
	gw_budget_settle(&b, &want, NULL, 0);
	gw_budget_settle(&b, &want, NULL, 0);
	assert_int_equal(b.spent.output, 900);
	assert_int_equal(b.reserved.output, 0);
	assert_int_equal(b.reserved.cost, 0);
	assert_int_equal(b.requests, 3);
	assert_int_equal(gw_budget_reserve(&b, &want, 0, &rf), -1);
	assert_int_equal(rf.status, 403);
	assert_string_equal(rf.why, "budget: output_tokens exhausted (this call may use 400, 100 "
	                            "left)");
	struct gw_charge small = {1, 100, 3000000};
	assert_int_equal(gw_budget_reserve(&b, &small, 0, &rf), -1);
	assert_string_equal(rf.why, "budget: cost_usd exhausted (this call may use $0.000003, "
	                            "$0.000002 left)");

	lim = (struct gw_limits){.requests = 2};
	gw_budget_init(&b, &lim, 0);
	assert_int_equal(gw_budget_reserve(&b, &small, 0, &rf), 0);
	assert_int_equal(gw_budget_reserve(&b, &small, 0, &rf), 0);
	assert_int_equal(gw_budget_reserve(&b, &small, 0, &rf), -1);
	assert_string_equal(rf.why, "budget: requests exhausted (this call may use 1, 0 left)");

	struct gw_model m = {.input_price = 150000, .output_price = 600000};
	assert_true(gw_cost(&m, 1000000, 1000000) == 750000000000ULL); /* $0.75 */
	m.input_price = UINT64_MAX / 2;
	assert_true(gw_cost(&m, 3, 0) == UINT64_MAX);
}

static void test_rate(void **state)
{
	(void)state;
	struct gw_limits lim = {.requests_per_min = 2, .tokens_per_min = 1000};
	struct gw_budget b;
	struct gw_refusal rf;
	struct gw_charge want = {100, 200, 0};
	gw_budget_init(&b, &lim, 1000);
	assert_int_equal(gw_budget_reserve(&b, &want, 1000, &rf), 0);
	assert_int_equal(gw_budget_reserve(&b, &want, 1000, &rf), 0);
	assert_int_equal(gw_budget_reserve(&b, &want, 1000, &rf), -1);
	assert_int_equal(rf.status, 429);
	assert_int_equal(rf.retry_after, 30); /* one request every 30 s */
	assert_string_equal(rf.why, "rate limit: requests_per_min (2)");
	assert_int_equal(gw_budget_reserve(&b, &want, 1000 + 30000000, &rf), 0);

	/* tokens: 900 taken of 1000; 300 more need 200 refilled, 12 s at 1000/min */
	lim = (struct gw_limits){.tokens_per_min = 1000};
	gw_budget_init(&b, &lim, 0);
	struct gw_charge big = {400, 500, 0};
	assert_int_equal(gw_budget_reserve(&b, &big, 0, &rf), 0);
	assert_int_equal(gw_budget_reserve(&b, &want, 0, &rf), -1);
	assert_string_equal(rf.why, "rate limit: tokens_per_min (1000)");
	assert_int_equal(rf.retry_after, 12);
	/* settling at less than reserved gives the difference back */
	struct gw_charge used = {100, 100, 0};
	gw_budget_settle(&b, &big, &used, 0);
	assert_int_equal(gw_budget_reserve(&b, &want, 0, &rf), 0);

	struct gw_charge huge = {1000, 1, 0};
	assert_int_equal(gw_budget_reserve(&b, &huge, 0, &rf), -1);
	assert_int_equal(rf.status, 403);
	assert_string_equal(rf.why, "rate limit: this call may use 1001 tokens, more than "
	                            "tokens_per_min (1000)");
}

static void test_token(void **state)
{
	(void)state;
	char *a = warden_gateway_token_new(), *b = warden_gateway_token_new();
	assert_int_equal(strlen(a), 52);
	assert_memory_equal(a, "wdn-", 4);
	for (size_t i = 4; i < 52; i++)
		assert_non_null(strchr("0123456789abcdef", a[i]));
	assert_string_not_equal(a, b);
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config_full),  cmocka_unit_test(test_config_errors),
	    cmocka_unit_test(test_config_shape), cmocka_unit_test(test_config_load),
	    cmocka_unit_test(test_url),          cmocka_unit_test(test_keys),
	    cmocka_unit_test(test_request),      cmocka_unit_test(test_usage_json),
	    cmocka_unit_test(test_sse),          cmocka_unit_test(test_redact),
	    cmocka_unit_test(test_budget),       cmocka_unit_test(test_rate),
	    cmocka_unit_test(test_token),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
