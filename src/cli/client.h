/* client.h: what the verbs that drive wardend share (client.c: create, exec, ps, rm,
 * pause, resume, logs, events; client-cp.c: cp): where wardend is, and one HTTP exchange
 * with it (client-http.c).
 */
#ifndef WARDEN_CLI_CLIENT_H
#define WARDEN_CLI_CLIENT_H

#include "cli.h"
#include "../lib/util.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <getopt.h>
#include <http_parser.h>
#include <jansson.h>
#include <stdbool.h>

static inline void evbuffer_freep(struct evbuffer **b)
{
	if (*b)
		evbuffer_free(*b);
}
#define _cleanup_json_     __attribute__((cleanup(json_decrefp))) /* jansson.h */
#define _cleanup_evbuffer_ __attribute__((cleanup(evbuffer_freep)))

/* ---- where wardend is (client-http.c) ---------------------------------------------- */

struct client {
	const char *verb; /* for messages: "warden: VERB: ..." */
	const char *socket, *url, *token;
	char *host, *port, *prefix; /* from url */
	struct event_base *base;
};

enum { OPT_SOCKET = 0x100, OPT_URL, OPT_TOKEN, OPT_JSON, OPT_POLICY, OPT_TTL, OPT_LABEL };

#define COMMON_OPTIONS                                                                             \
	{"socket", required_argument, NULL, OPT_SOCKET},                                           \
	    {"url", required_argument, NULL, OPT_URL},                                             \
	    {"token", required_argument, NULL, OPT_TOKEN}, {"help", no_argument, NULL, 'h'},

/* Handle a common option; false if opt is not one. */
bool client_option(struct client *c, int opt, const char *arg);
/* For getopt's '?' (and -h): the help (0), or which option was wrong (EXIT_WARDEN). */
int client_usage_error(const char *verb, const char *usage, int opt, char **argv);
/* Settle where wardend is: options, then the environment, then the default socket.
 * Returns 0, or EXIT_WARDEN having said why. */
int client_init(struct client *c);
void client_done(struct client *c);

/* ---- one HTTP exchange (client-http.c) --------------------------------------------- */

struct http {
	struct client *c;
	struct bufferevent *bev;
	http_parser parser;
	int status; /* 0 until the answer's headers are in */
	bool complete, failed;
	int err;               /* errno of a transport failure, or 0 */
	int write_err;         /* errno of a failed write of the request, or 0 */
	char why[256];         /* what failed, for the message */
	struct evbuffer *body; /* the answer's body (always for an error status) */
	/* Takes the body of a 2xx answer as it arrives, instead of body; returns 0, or -1
	 * to stop (it then sets why). */
	int (*sink)(struct http *h, const char *data, size_t len);
	void *arg;
};

/* Mark the exchange failed, with errno e (0: none) and a reason. */
void http_why(struct http *h, int e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Start one exchange: connect, queue the request (method, path with its query already
 * encoded, Accept, and an optional body of type ctype). Returns 0, or -1 with h->why. */
int http_start(struct http *h, struct client *c, const char *method, const char *path,
               const char *accept, const char *ctype, struct evbuffer *body);
/* Run the loop until the answer is complete. 0 for a 2xx answer, else -1. */
int http_wait(struct http *h);
void http_done(struct http *h);
/* Print why an exchange failed: "warden: VERB: [sandbox ID: ]MESSAGE". Returns
 * EXIT_WARDEN. */
int http_fail(struct http *h, const char *id);
/* One exchange with an optional JSON body; its JSON answer (NULL when empty) goes to *ret
 * (may be NULL). Returns 0, or -1 with h left for http_fail() (the caller ends it with
 * http_done()). */
int http_exchange(struct http *h, struct client *c, const char *method, const char *path,
                  json_t *req, json_t **ret);
/* http_exchange(), saying why it failed. Returns 0 or EXIT_WARDEN. */
int http_call(struct client *c, const char *method, const char *path, json_t *req, json_t **ret,
              const char *id);
/* "/v1/sandboxes/ID" + suffix, the id encoded. Caller frees. */
char *client_sandbox_path(const char *id, const char *suffix);
/* "?path=P" + extra, P encoded. Caller frees. */
char *client_path_query(const char *path, const char *extra);

/* ---- our standard streams (client-http.c) ------------------------------------------ */

/* A reader of our output that went away (EPIPE) ends us the way it ends any filter. */
void client_die_of_sigpipe(void) __attribute__((noreturn));
/* Write all of p to fd. Returns 0, or -1 with errno. */
int client_write_all(int fd, const char *p, size_t len);
/* Read all of standard input into buf. Returns 0, or -1 with errno. */
int client_read_stdin(struct evbuffer *buf);

#endif
