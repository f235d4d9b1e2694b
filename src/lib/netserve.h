/* netserve.h: the host side of a sandbox's listeners (sandbox.h, WARDEN_NET_*): the egress
 * proxies of proxy mode (net/egress.h) and the model gateway (net/gateway.h), served on a
 * thread of their own that runs a libevent loop.
 *
 * What they decide goes back to the supervisor's thread as events and audit records,
 * through a queue it drains when warden_netserve_fd() is readable: the supervisor stays
 * single-threaded, and its event stream and audit log keep one writer.
 */
#ifndef WARDEN_NETSERVE_H
#define WARDEN_NETSERVE_H

#include "error.h"
#include "net/gateway.h"
#include "plan.h"
#include "sandbox.h"

#include <jansson.h>

struct warden_netserve_opts {
	/* The model gateway: its configuration (keys loaded) and the sandbox's token; NULL
	 * when the sandbox has no gateway. Borrowed: must outlive the netserve. */
	const struct warden_gateway_config *gateway;
	const char *gateway_token;
	/* Host-side name resolution for the proxies (egress.h): NULL for the host's own. */
	const char *hosts_file;
	const char *const *nameservers;
};

struct warden_netserve;

/* The listeners a sandbox of plan has inside, on 127.0.0.1 (proxy mode: the proxies and
 * DNS; the model gateway): what a backend makes and hands over in sb->net_fds. */
struct warden_net_listener_spec {
	bool on;
	bool udp;
	uint16_t port;
};
void warden_netserve_listeners(const struct warden_plan *plan,
                               struct warden_net_listener_spec ret[WARDEN_NET_LISTENERS]);

/* Serve the listeners sb holds (taking them) on a new thread. NULL with *err set when it
 * cannot; a sandbox without listeners needs none. */
struct warden_netserve *warden_netserve_start(struct warden_sandbox *sb,
                                              const struct warden_plan *plan,
                                              const struct warden_netserve_opts *o,
                                              struct warden_error **err);
/* Readable when items are queued. */
int warden_netserve_fd(const struct warden_netserve *ns);
/* Hand each queued item to fn, in order: the event (always) and, for decisions the audit
 * log must hold, the audit record's kind and fields (else NULL, NULL). fn takes the
 * references. */
void warden_netserve_drain(struct warden_netserve *ns,
                           void (*fn)(json_t *event, const char *audit_kind, json_t *audit,
                                      void *ctx),
                           void *ctx);
/* Stop the thread and close everything (connections still open are reported, queued for
 * one last drain), then free. NULL-safe. */
void warden_netserve_stop(struct warden_netserve *ns,
                          void (*fn)(json_t *event, const char *audit_kind, json_t *audit,
                                     void *ctx),
                          void *ctx);

#endif
