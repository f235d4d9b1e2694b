/* driver.h: what the drivers of tests/net share (egressd, gatewayd): they serve one of
 * warden's network services on sockets of their own, without a sandbox, and report on
 * stdout in JSON lines.
 */
#ifndef WARDEN_TESTS_NET_DRIVER_H
#define WARDEN_TESTS_NET_DRIVER_H

#include <event2/event.h>
#include <jansson.h>

/* Print one JSON line on stdout (flushed) and release it. */
void driver_print(json_t *line);
/* A JSON string, or null for NULL. */
json_t *driver_str(const char *s);
/* Print "PROGRAM: what" on stderr and exit 1. */
_Noreturn void driver_die(const char *what);
/* A socket of type (SOCK_STREAM: listening; SOCK_DGRAM) bound to the IPv4 address host,
 * port port (0: a free one); the port bound in *ret_port. Dies on failure. */
int driver_socket(int type, const char *host, unsigned port, unsigned *ret_port);
/* Ignore SIGPIPE and make SIGTERM and SIGINT end event_base_dispatch(base): ev receives
 * the two signal events, for driver_signals_free. Dies on failure. */
void driver_signals(struct event_base *base, struct event *ev[2]);
void driver_signals_free(struct event *ev[2]);

#endif
