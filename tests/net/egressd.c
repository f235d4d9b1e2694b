/* egressd.c: the egress proxies without a sandbox, for tests/integration/test_egress.py.
 *
 * usage: egressd [--http PORT] [--socks PORT] [--dns PORT] [--allow RULE]... [--deny RULE]...
 *                [--hosts FILE] [--nameserver IP[:PORT]]... [--connect-timeout S]
 *                [--resolve-timeout S] [--idle-timeout S]
 *
 * Makes the listening sockets on 127.0.0.1 (TCP for the HTTP and SOCKS5 proxies, UDP for
 * DNS; port 0: a free one; a proxy without its option is not served), serves them with
 * warden_egress_new(), and prints JSON lines on stdout: {"event":"ready","http":N,
 * "socks":N,"dns":N} once listening, then one {"event":"decision",...} per decision. On
 * SIGTERM or SIGINT it frees the egress (the final decisions of open connections follow)
 * and exits 0. Errors go to stderr, exit 1.
 */
#define _GNU_SOURCE
#include "../../src/lib/net/egress.h"
#include "../../src/lib/util.h"
#include "driver.h"

#include <getopt.h>
#include <sys/socket.h>

static void on_decision(const struct warden_egress_decision *d, void *ctx)
{
	(void)ctx;
	driver_print(json_pack("{s:s, s:s, s:o, s:i, s:o, s:b, s:b, s:o, s:o, s:I, s:I, s:I}",
	                       "event", "decision", "proto", d->proto, "host", driver_str(d->host),
	                       "port", d->port, "address", driver_str(d->address), "allowed",
	                       d->allowed, "final", d->final, "rule", driver_str(d->rule), "reason",
	                       driver_str(d->reason), "bytes_out", (json_int_t)d->bytes_out,
	                       "bytes_in", (json_int_t)d->bytes_in, "duration_us",
	                       (json_int_t)d->duration_us));
}

/* A socket on 127.0.0.1:port (0: a free one), listening when TCP; its port in *ret_port. */
static int make_socket(int type, const char *port, unsigned *ret_port)
{
	uint64_t p;
	const char *why;
	if (parse_uint(port, 65535, &p, &why) < 0)
		driver_die("bad port");
	return driver_socket(type, "127.0.0.1", (unsigned)p, ret_port);
}

static void add_rule(struct warden_egress_rules *rs, const char *text)
{
	const char *why;
	rs->v = xrealloc(rs->v, (rs->n + 1) * sizeof(*rs->v));
	if (warden_egress_rule_parse(text, &rs->v[rs->n], &why) < 0) {
		fprintf(stderr, "egressd: rule %s: %s\n", text, why);
		exit(1);
	}
	rs->n++;
}

static unsigned seconds(const char *s)
{
	uint64_t v;
	const char *why;
	if (parse_uint(s, 86400, &v, &why) < 0)
		driver_die("bad number of seconds");
	return (unsigned)v;
}

int main(int argc, char **argv)
{
	enum {
		HTTP = 256,
		SOCKS,
		DNS,
		ALLOW,
		DENY,
		HOSTS,
		NAMESERVER,
		CONNECT_T,
		RESOLVE_T,
		IDLE_T
	};
	static const struct option options[] = {
	    {"http", required_argument, NULL, HTTP},
	    {"socks", required_argument, NULL, SOCKS},
	    {"dns", required_argument, NULL, DNS},
	    {"allow", required_argument, NULL, ALLOW},
	    {"deny", required_argument, NULL, DENY},
	    {"hosts", required_argument, NULL, HOSTS},
	    {"nameserver", required_argument, NULL, NAMESERVER},
	    {"connect-timeout", required_argument, NULL, CONNECT_T},
	    {"resolve-timeout", required_argument, NULL, RESOLVE_T},
	    {"idle-timeout", required_argument, NULL, IDLE_T},
	    {0},
	};
	struct warden_egress_rules allow = {0}, deny = {0};
	struct warden_egress_opts o = {.http_fd = -1, .socks_fd = -1, .dns_fd = -1};
	struct strv nameservers = {0};
	unsigned ports[3] = {0, 0, 0};
	int opt;
	o.on_decision = on_decision;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case HTTP:
			o.http_fd = make_socket(SOCK_STREAM, optarg, &ports[0]);
			break;
		case SOCKS:
			o.socks_fd = make_socket(SOCK_STREAM, optarg, &ports[1]);
			break;
		case DNS:
			o.dns_fd = make_socket(SOCK_DGRAM, optarg, &ports[2]);
			break;
		case ALLOW:
			add_rule(&allow, optarg);
			break;
		case DENY:
			add_rule(&deny, optarg);
			break;
		case HOSTS:
			o.hosts_file = optarg;
			break;
		case NAMESERVER:
			strv_push(&nameservers, optarg);
			break;
		case CONNECT_T:
			o.connect_timeout_s = seconds(optarg);
			break;
		case RESOLVE_T:
			o.resolve_timeout_s = seconds(optarg);
			break;
		case IDLE_T:
			o.idle_timeout_s = seconds(optarg);
			break;
		default:
			driver_die("usage: see tests/net/egressd.c");
		}
	}
	if (optind != argc)
		driver_die("unexpected arguments");
	o.allow = &allow;
	o.deny = &deny;
	o.nameservers = nameservers.n ? (const char *const *)nameservers.v : NULL;

	struct event_base *base = event_base_new();
	struct event *signals[2];
	if (!base)
		driver_die("cannot create an event base");
	driver_signals(base, signals);
	struct warden_error *err = NULL;
	struct warden_egress *eg = warden_egress_new(base, &o, &err);
	if (!eg)
		driver_die(warden_error_text(err));
	driver_print(json_pack("{s:s, s:i, s:i, s:i}", "event", "ready", "http", (int)ports[0],
	                       "socks", (int)ports[1], "dns", (int)ports[2]));
	event_base_dispatch(base);

	warden_egress_free(eg);
	driver_signals_free(signals);
	/* the resolver is released once its cancelled requests come back (egress.h) */
	event_base_dispatch(base);
	event_base_free(base);
	warden_egress_rules_clear(&allow);
	warden_egress_rules_clear(&deny);
	strv_clear(&nameservers);
	return 0;
}
