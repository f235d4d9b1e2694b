/* egress-splice.c: relaying an open tunnel with splice(2).
 *
 * A tunnel (CONNECT, SOCKS5) carries bytes unchanged both ways once its first client
 * bytes were looked at. From then on, as soon as nothing is left in the bufferevents'
 * buffers, its two sockets are relayed through one pipe per direction with splice(): the
 * bytes stay in the kernel, and each wake-up moves up to a pipe's worth. Through
 * bufferevents, libevent 2.1 reads 4 KiB per wake-up and copies every byte twice, which
 * held a tunnel to about a tenth of a direct loopback transfer (docs/benchmarks.md).
 *
 * Per direction: read (splice from the source socket into the pipe) while the pipe has
 * room, write (splice from the pipe into the destination) while it takes them; when the
 * destination is full, stop reading and wait for it to drain (backpressure); when the
 * source ends, shut the destination's writing side once the pipe is empty (half-close
 * passes through); the tunnel ends when both directions have. Any error ends it.
 */
#define _GNU_SOURCE
#include "egress-internal.h"

#include <fcntl.h>
#include <sys/socket.h>

#define PIPE_BYTES     (512 << 10) /* asked for; a smaller pipe still works */
#define ROUNDS_AT_ONCE 8           /* per wake-up, so that one tunnel cannot starve others */

struct way {
	struct egress_conn *c;
	int from, to;
	int pipe[2];
	size_t held, cap; /* bytes in the pipe, and its size */
	bool eof, shut;
	uint64_t *count;
	struct event *rd, *wr;
};

struct egress_splice {
	struct way way[2]; /* 0: client -> origin; 1: origin -> client */
};

static void way_free(struct way *w)
{
	if (w->rd)
		event_free(w->rd);
	if (w->wr)
		event_free(w->wr);
	for (int i = 0; i < 2; i++)
		if (w->pipe[i] >= 0)
			close(w->pipe[i]);
}

void egress_splice_free(struct egress_conn *c)
{
	if (!c->splice)
		return;
	way_free(&c->splice->way[0]);
	way_free(&c->splice->way[1]);
	free(c->splice);
	c->splice = NULL;
}

static void way_cb(evutil_socket_t fd, short what, void *arg);

/* Moves what can be moved now. Returns false when the connection was freed. */
static bool pump(struct way *w)
{
	struct egress_conn *c = w->c;
	bool blocked = false;
	for (int round = 0; round < ROUNDS_AT_ONCE; round++) {
		bool moved = false;
		if (!w->eof && w->held < w->cap) {
			ssize_t n = splice(w->from, NULL, w->pipe[1], NULL, w->cap - w->held,
			                   SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
			if (n > 0) {
				w->held += (size_t)n;
				*w->count += (uint64_t)n;
				moved = true;
			} else if (n == 0) {
				w->eof = true;
			} else if (errno != EAGAIN && errno != EINTR) {
				egress_conn_free(c); /* reset or error: like a bufferevent error */
				return false;
			}
		}
		if (w->held) {
			ssize_t m = splice(w->pipe[0], NULL, w->to, NULL, w->held,
			                   SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
			if (m > 0) {
				w->held -= (size_t)m;
				moved = true;
			} else if (m < 0 && errno == EAGAIN) {
				blocked = true;
			} else if (m < 0 && errno != EINTR) {
				egress_conn_free(c);
				return false;
			}
		}
		if (!moved || blocked)
			break;
	}
	/* Bytes left in the pipe are written when the destination takes them: at once when
	 * the rounds ran out, else once it drained. They must not wait for the source, which
	 * may have said all it had to say before an answer (or ended). */
	if (w->held)
		event_add(w->wr, NULL);
	else
		event_del(w->wr);
	if (!w->eof && !blocked)
		event_add(w->rd, NULL);
	else
		event_del(w->rd); /* at the end, or backpressure: read again once it drained */
	if (w->eof && !w->held && !w->shut) {
		shutdown(w->to, SHUT_WR);
		w->shut = true;
	}
	if (c->splice->way[0].shut && c->splice->way[1].shut) {
		egress_conn_free(c); /* both sides said all they had to say */
		return false;
	}
	return true;
}

static void way_cb(evutil_socket_t fd _unused_, short what _unused_, void *arg)
{
	struct way *w = arg;
	egress_touch(w->c);
	(void)pump(w);
}

static bool way_init(struct way *w, struct egress_conn *c, int from, int to, uint64_t *count)
{
	*w = (struct way){.c = c, .from = from, .to = to, .pipe = {-1, -1}, .count = count};
	if (pipe2(w->pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return false;
	int size = fcntl(w->pipe[1], F_SETPIPE_SZ, PIPE_BYTES);
	if (size < 0)
		size = fcntl(w->pipe[1], F_GETPIPE_SZ);
	w->cap = size > 0 ? (size_t)size : 65536;
	w->rd = event_new(c->eg->base, from, EV_READ | EV_PERSIST, way_cb, w);
	w->wr = event_new(c->eg->base, to, EV_WRITE | EV_PERSIST, way_cb, w);
	return w->rd && w->wr;
}

bool egress_splice_ready(const struct egress_conn *c)
{
	return c->phase == EGRESS_RELAY && !c->forward && c->sniffed && !c->splice &&
	       !c->client_eof && !c->up_eof && !c->client_shut && !c->up_shut && c->up &&
	       !evbuffer_get_length(bufferevent_get_input(c->client)) &&
	       !evbuffer_get_length(bufferevent_get_output(c->client)) &&
	       !evbuffer_get_length(bufferevent_get_input(c->up)) &&
	       !evbuffer_get_length(bufferevent_get_output(c->up));
}

bool egress_splice_start(struct egress_conn *c)
{
	int cfd = bufferevent_getfd(c->client), ufd = bufferevent_getfd(c->up);
	c->splice = xcalloc(1, sizeof(*c->splice));
	c->splice->way[0].pipe[0] = c->splice->way[0].pipe[1] = -1;
	c->splice->way[1].pipe[0] = c->splice->way[1].pipe[1] = -1;
	if (!way_init(&c->splice->way[0], c, cfd, ufd, &c->bytes_out) ||
	    !way_init(&c->splice->way[1], c, ufd, cfd, &c->bytes_in)) {
		egress_splice_free(c); /* no pipes to spare: the bufferevents go on */
		return false;
	}
	/* The bufferevents keep their sockets but no longer watch them: from here on only
	 * the ways' events do. */
	bufferevent_disable(c->client, EV_READ | EV_WRITE);
	bufferevent_disable(c->up, EV_READ | EV_WRITE);
	event_add(c->splice->way[0].rd, NULL);
	event_add(c->splice->way[1].rd, NULL);
	return true;
}
