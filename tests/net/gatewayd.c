/* gatewayd.c: the model gateway without a sandbox, for tests/integration/test_gateway.py.
 *
 * usage: gatewayd --config FILE --policy NAME --token TOKEN [--port N] [--host ADDR]
 *
 * Listens on ADDR:N (127.0.0.1; a free port when N is 0 or absent), serves it with the
 * gateway, and prints one JSON line per event on stdout: {"event":"ready","port":N} once
 * listening, {"event":"call",...} when a call ends, and on SIGTERM or SIGINT
 * {"event":"usage",...}, then the calls still in flight, before it exits 0.
 */
#define _GNU_SOURCE
#include "../../src/lib/net/gateway.h"
#include "../../src/lib/util.h"
#include "driver.h"

#include <getopt.h>
#include <sys/socket.h>

static void on_call(const struct warden_gateway_call *c, void *ctx)
{
	(void)ctx;
	driver_print(
	    json_pack("{s:s, s:o, s:o, s:o, s:i, s:b, s:o, s:o, s:b, s:I, s:I, s:f, s:I, s:I, "
	              "s:o, s:o}",
	              "event", "call", "api", driver_str(c->api), "model", driver_str(c->model),
	              "provider", driver_str(c->provider), "status", c->status, "streamed",
	              c->streamed, "refused", driver_str(c->refused), "error", driver_str(c->error),
	              "usage_reported", c->usage_reported, "input_tokens",
	              (json_int_t)c->input_tokens, "output_tokens", (json_int_t)c->output_tokens,
	              "cost_usd", c->cost_usd, "latency_us", (json_int_t)c->latency_us,
	              "first_byte_us", (json_int_t)c->first_byte_us, "request_body",
	              driver_str(c->request_body), "response_body", driver_str(c->response_body)));
}

static void print_usage(const struct warden_gateway *gw)
{
	struct warden_gateway_usage u;
	warden_gateway_usage(gw, &u);
	driver_print(json_pack(
	    "{s:s, s:I, s:I, s:I, s:f, s:I, s:I, s:I, s:f, s:I, s:I, s:f}", "event", "usage",
	    "requests", (json_int_t)u.requests, "input_tokens", (json_int_t)u.input_tokens,
	    "output_tokens", (json_int_t)u.output_tokens, "cost_usd", u.cost_usd, "max_requests",
	    (json_int_t)u.max_requests, "max_input_tokens", (json_int_t)u.max_input_tokens,
	    "max_output_tokens", (json_int_t)u.max_output_tokens, "max_cost_usd", u.max_cost_usd,
	    "reserved_input_tokens", (json_int_t)u.reserved_input_tokens, "reserved_output_tokens",
	    (json_int_t)u.reserved_output_tokens, "reserved_cost_usd", u.reserved_cost_usd));
}

static void die(const char *what, struct warden_error *e)
{
	fprintf(stderr, "gatewayd: %s: %s\n", what, warden_error_text(e));
	exit(1);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'}, {"policy", required_argument, NULL, 'p'},
	    {"token", required_argument, NULL, 't'},  {"port", required_argument, NULL, 'P'},
	    {"host", required_argument, NULL, 'H'},   {NULL, 0, NULL, 0},
	};
	const char *config = NULL, *policy = NULL, *token = NULL, *host = "127.0.0.1";
	unsigned port = 0;
	struct warden_error *e = NULL;
	for (int o; (o = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
		if (o == 'c')
			config = optarg;
		else if (o == 'p')
			policy = optarg;
		else if (o == 't')
			token = optarg;
		else if (o == 'P')
			port = (unsigned)strtoul(optarg, NULL, 10);
		else if (o == 'H')
			host = optarg;
		else
			return 2;
	}
	if (!config || !policy || !token || optind != argc) {
		fprintf(stderr, "usage: gatewayd --config FILE --policy NAME --token TOKEN "
		                "[--port N] [--host ADDR]\n");
		return 2;
	}
	struct warden_gateway_config *cfg = warden_gateway_config_load(config, &e);
	if (!cfg)
		die("configuration", e);
	if (warden_gateway_config_load_keys(cfg, policy, &e) < 0)
		die("keys", e);
	struct event_base *base = event_base_new();
	if (!base)
		abort();
	unsigned bound;
	struct event *signals[2];
	struct warden_gateway_opts o = {
	    .cfg = cfg,
	    .policy = policy,
	    .sandbox_id = "gatewayd",
	    .http_fd = driver_socket(SOCK_STREAM, host, port, &bound),
	    .token = token,
	    .on_call = on_call,
	};
	struct warden_gateway *gw = warden_gateway_new(base, &o, &e);
	if (!gw)
		die("gateway", e);
	driver_signals(base, signals);
	driver_print(json_pack("{s:s, s:i}", "event", "ready", "port", (int)bound));
	event_base_dispatch(base);
	print_usage(gw);
	warden_gateway_free(gw);
	driver_signals_free(signals);
	event_base_free(base);
	warden_gateway_config_free(cfg);
	return 0;
}
