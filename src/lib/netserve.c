/* netserve.c: the listeners of a sandbox served on a thread of their own (netserve.h).
 *
 * Sections: the queue back to the supervisor; decisions as events; the thread; public.
 */
#define _GNU_SOURCE
#include "netserve.h"
#include "events.h"
#include "net/egress.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <sys/eventfd.h>

struct item {
	json_t *event;
	const char *audit_kind; /* static, or NULL */
	json_t *audit;
	struct item *next;
};

struct warden_netserve {
	char id[17];
	struct event_base *base;
	struct warden_egress *egress;
	struct warden_gateway *gateway;
	pthread_t thread;
	bool running;
	int efd;
	pthread_mutex_t lock;
	struct item *head, **tail;
};

/* ---- the queue ------------------------------------------------------------------------- */

static void push(struct warden_netserve *ns, json_t *event, const char *audit_kind, json_t *audit)
{
	struct item *it = xcalloc(1, sizeof(*it));
	uint64_t one = 1;
	it->event = event;
	it->audit_kind = audit_kind;
	it->audit = audit;
	pthread_mutex_lock(&ns->lock);
	*ns->tail = it;
	ns->tail = &it->next;
	pthread_mutex_unlock(&ns->lock);
	(void)!write(ns->efd, &one, sizeof(one));
}

void warden_netserve_drain(struct warden_netserve *ns,
                           void (*fn)(json_t *event, const char *audit_kind, json_t *audit,
                                      void *ctx),
                           void *ctx)
{
	uint64_t n;
	(void)!read(ns->efd, &n, sizeof(n));
	pthread_mutex_lock(&ns->lock);
	struct item *it = ns->head;
	ns->head = NULL;
	ns->tail = &ns->head;
	pthread_mutex_unlock(&ns->lock);
	while (it) {
		struct item *next = it->next;
		fn(it->event, it->audit_kind, it->audit, ctx);
		free(it);
		it = next;
	}
}

/* ---- decisions as events --------------------------------------------------------------- */

static void set_str(json_t *o, const char *k, const char *v)
{
	if (v)
		json_object_set_new(o, k, json_string(v));
}

/* An allowed connection is an event when it starts and when it ends; a refusal is also
 * an audit record: what the sandbox tried and was not let do. */
static void on_decision(const struct warden_egress_decision *d, void *ctx)
{
	struct warden_netserve *ns = ctx;
	const char *kind = !d->allowed ? "net.refused" : d->final ? "net.end" : "net.allowed";
	json_t *ev = warden_event_new(ns->id, kind, 0);
	set_str(ev, "proto", d->proto);
	set_str(ev, "host", d->host);
	if (d->port)
		json_object_set_new(ev, "port", json_integer(d->port));
	set_str(ev, "address", d->address);
	set_str(ev, "rule", d->rule);
	set_str(ev, "reason", d->reason);
	if (d->allowed && d->final) {
		json_object_set_new(ev, "bytes_out", json_integer((json_int_t)d->bytes_out));
		json_object_set_new(ev, "bytes_in", json_integer((json_int_t)d->bytes_in));
		json_object_set_new(ev, "duration_ms", json_real((double)d->duration_us / 1000.0));
	}
	json_t *rec = NULL;
	if (!d->allowed) {
		rec = json_deep_copy(ev);
		/* the record carries its own kind, sandbox and time */
		json_object_del(rec, "v");
		json_object_del(rec, "kind");
		json_object_del(rec, "sandbox");
	}
	push(ns, ev, rec ? "net.refused" : NULL, rec);
}

static void on_call(const struct warden_gateway_call *c, void *ctx)
{
	struct warden_netserve *ns = ctx;
	json_t *ev = warden_event_new(ns->id, "model.call", 0);
	set_str(ev, "api", c->api);
	set_str(ev, "model", c->model);
	set_str(ev, "provider", c->provider);
	json_object_set_new(ev, "status", json_integer(c->status));
	json_object_set_new(ev, "streamed", json_boolean(c->streamed));
	json_object_set_new(ev, "input_tokens", json_integer((json_int_t)c->input_tokens));
	json_object_set_new(ev, "output_tokens", json_integer((json_int_t)c->output_tokens));
	json_object_set_new(ev, "cost_usd", json_real(c->cost_usd));
	json_object_set_new(ev, "latency_ms", json_real((double)c->latency_us / 1000.0));
	json_object_set_new(ev, "first_byte_ms", json_real((double)c->first_byte_us / 1000.0));
	set_str(ev, "refused", c->refused);
	set_str(ev, "error", c->error);
	set_str(ev, "request", c->request_body);
	set_str(ev, "response", c->response_body);
	json_t *rec = json_deep_copy(ev);
	json_object_del(rec, "v");
	json_object_del(rec, "kind");
	json_object_del(rec, "sandbox");
	push(ns, ev, "model.call", rec);
}

/* ---- the thread ------------------------------------------------------------------------ */

static void *run(void *arg)
{
	struct warden_netserve *ns = arg;
	/* EVLOOP_NO_EXIT_ON_EMPTY: the loop runs until stop() breaks it, even between
	 * connections. */
	event_base_loop(ns->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

static void free_parts(struct warden_netserve *ns)
{
	warden_egress_free(ns->egress);
	warden_gateway_free(ns->gateway);
	ns->egress = NULL;
	ns->gateway = NULL;
	if (ns->base)
		event_base_free(ns->base);
	ns->base = NULL;
}

/* ---- public ---------------------------------------------------------------------------- */

void warden_netserve_listeners(const struct warden_plan *plan,
                               struct warden_net_listener_spec ret[WARDEN_NET_LISTENERS])
{
	bool proxy = plan->policy->net_mode == WARDEN_NET_PROXY;
	ret[WARDEN_NET_HTTP] =
	    (struct warden_net_listener_spec){proxy, false, WARDEN_PROXY_HTTP_PORT};
	ret[WARDEN_NET_SOCKS] =
	    (struct warden_net_listener_spec){proxy, false, WARDEN_PROXY_SOCKS_PORT};
	ret[WARDEN_NET_DNS] = (struct warden_net_listener_spec){proxy, true, WARDEN_PROXY_DNS_PORT};
	ret[WARDEN_NET_GATEWAY] =
	    (struct warden_net_listener_spec){plan->gateway, false, WARDEN_GATEWAY_PORT};
}

struct warden_netserve *warden_netserve_start(struct warden_sandbox *sb,
                                              const struct warden_plan *plan,
                                              const struct warden_netserve_opts *o,
                                              struct warden_error **err)
{
	static pthread_once_t threads = PTHREAD_ONCE_INIT;
	/* libevent's locks: stop() breaks the loop from the supervisor's thread. */
	pthread_once(&threads, (void (*)(void))evthread_use_pthreads);
	struct warden_netserve *ns = xcalloc(1, sizeof(*ns));
	memcpy(ns->id, sb->id, sizeof(ns->id));
	pthread_mutex_init(&ns->lock, NULL);
	ns->tail = &ns->head;
	ns->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ns->base = event_base_new();
	if (ns->efd < 0 || !ns->base) {
		warden_error_set(err, errno ? errno : ENOMEM, "network: the event loop");
		goto fail;
	}
	const struct warden_policy *p = plan->policy;
	if (sb->net_fds[WARDEN_NET_HTTP] >= 0 || sb->net_fds[WARDEN_NET_SOCKS] >= 0 ||
	    sb->net_fds[WARDEN_NET_DNS] >= 0) {
		struct warden_egress_opts eo = {
		    .allow = &p->allow,
		    .deny = &p->deny,
		    .http_fd = sb->net_fds[WARDEN_NET_HTTP],
		    .socks_fd = sb->net_fds[WARDEN_NET_SOCKS],
		    .dns_fd = sb->net_fds[WARDEN_NET_DNS],
		    .hosts_file = o->hosts_file,
		    .nameservers = o->nameservers,
		    .on_decision = on_decision,
		    .ctx = ns,
		};
		sb->net_fds[WARDEN_NET_HTTP] = sb->net_fds[WARDEN_NET_SOCKS] =
		    sb->net_fds[WARDEN_NET_DNS] = -1; /* taken, even on failure */
		ns->egress = warden_egress_new(ns->base, &eo, err);
		if (!ns->egress) {
			warden_error_wrap(err, "network proxies");
			goto fail;
		}
	}
	if (sb->net_fds[WARDEN_NET_GATEWAY] >= 0 && o->gateway) {
		struct warden_gateway_opts go = {
		    .cfg = o->gateway,
		    .policy = p->name,
		    .sandbox_id = sb->id,
		    .http_fd = sb->net_fds[WARDEN_NET_GATEWAY],
		    .token = o->gateway_token,
		    .on_call = on_call,
		    .ctx = ns,
		};
		sb->net_fds[WARDEN_NET_GATEWAY] = -1;
		ns->gateway = warden_gateway_new(ns->base, &go, err);
		if (!ns->gateway) {
			warden_error_wrap(err, "model gateway");
			goto fail;
		}
	}
	int r = pthread_create(&ns->thread, NULL, run, ns);
	if (r != 0) {
		warden_error_set(err, r, "network: starting its thread");
		goto fail;
	}
	ns->running = true;
	return ns;
fail:
	free_parts(ns);
	closep(&ns->efd);
	pthread_mutex_destroy(&ns->lock);
	free(ns);
	return NULL;
}

int warden_netserve_fd(const struct warden_netserve *ns)
{
	return ns->efd;
}

void warden_netserve_stop(struct warden_netserve *ns,
                          void (*fn)(json_t *event, const char *audit_kind, json_t *audit,
                                     void *ctx),
                          void *ctx)
{
	if (!ns)
		return;
	if (ns->running) {
		event_base_loopbreak(ns->base);
		pthread_join(ns->thread, NULL);
	}
	free_parts(ns); /* reports what was still open: queued */
	warden_netserve_drain(ns, fn, ctx);
	close(ns->efd);
	pthread_mutex_destroy(&ns->lock);
	free(ns);
}
