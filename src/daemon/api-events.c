/* api-events.c: GET /v1/sandboxes/{id}/events: the sandbox's events file (written by its
 * supervisor, --events) from the beginning and then as it grows, as server-sent events,
 * one event per line. The stream ends when the sandbox does.
 */
#define _GNU_SOURCE
#include "wardend.h"

#include <event2/buffer.h>
#include <fcntl.h>

#define TICK_MS      200
#define KEEPALIVE_MS 15000
#define LINE_MAX_    (256u << 10)

struct tail {
	struct evhttp_request *req;
	char id[SANDBOX_ID_LEN + 1];
	int fd;
	struct evbuffer *partial;
	struct event *tick;
	int64_t last_write;
	struct tail *next;
};

static struct tail *tails;

static void tail_end(struct tail *t)
{
	for (struct tail **p = &tails; *p; p = &(*p)->next)
		if (*p == t) {
			*p = t->next;
			break;
		}
	evhttp_send_reply_end(t->req); /* frees the request, also when its client has gone */
	event_free(t->tick);
	evbuffer_free(t->partial);
	close(t->fd);
	free(t);
}

/* Send the complete lines read so far; returns false when the client has gone. */
static bool pump(struct tail *t)
{
	if (!evhttp_request_get_connection(t->req))
		return false;
	while (evbuffer_read(t->partial, t->fd, 64 << 10) > 0)
		;
	struct evbuffer *out = evbuffer_new();
	size_t n;
	char *line;
	while ((line = evbuffer_readln(t->partial, &n, EVBUFFER_EOL_LF))) {
		if (n)
			evbuffer_add_printf(out, "data: %s\n\n", line);
		free(line);
	}
	/* A line longer than any event is not an event: drop it rather than grow. */
	if (evbuffer_get_length(t->partial) > LINE_MAX_)
		evbuffer_drain(t->partial, evbuffer_get_length(t->partial));
	int64_t now = mono_us();
	if (!evbuffer_get_length(out) && now - t->last_write > KEEPALIVE_MS * 1000)
		evbuffer_add_printf(out, ": keepalive\n\n");
	if (evbuffer_get_length(out)) {
		evhttp_send_reply_chunk(t->req, out);
		t->last_write = now;
	}
	evbuffer_free(out);
	return true;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct tail *t = arg;
	struct sandbox *sb = sandbox_find(t->id);
	bool alive = sb && !sb->destroying;
	if (!pump(t) || !alive)
		tail_end(t);
}

void api_events(struct call *c, struct sandbox *sb)
{
	_cleanup_free_ char *path = xasprintf("%s/%s.jsonl", wd.events_dir, sb->id);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return reply_error(c->req, 404, "not_found", "sandbox %s: no events file: %s",
		                   sb->id, strerror(errno));
	struct tail *t = xcalloc(1, sizeof(*t));
	t->req = c->req;
	memcpy(t->id, sb->id, sizeof(t->id));
	t->fd = fd;
	t->partial = evbuffer_new();
	t->last_write = mono_us();
	t->tick = event_new(wd.base, -1, EV_PERSIST, tick_cb, t);
	struct timeval tv = {.tv_usec = TICK_MS * 1000};
	event_add(t->tick, &tv);
	t->next = tails;
	tails = t;
	struct evkeyvalq *h = evhttp_request_get_output_headers(c->req);
	evhttp_add_header(h, "Content-Type", "text/event-stream");
	evhttp_add_header(h, "Cache-Control", "no-cache");
	count_status(200);
	evhttp_send_reply_start(c->req, 200, "OK");
	/* Quiet for a while is normal here; the keepalive comments find a client gone. */
	struct evhttp_connection *evcon = evhttp_request_get_connection(c->req);
	if (evcon)
		evhttp_connection_set_timeout(evcon, KEEPALIVE_MS / 1000 * 4);
	pump(t);
}

void api_events_stop_all(void)
{
	while (tails)
		tail_end(tails);
}
