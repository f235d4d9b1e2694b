/* stream.c: one end of a network stream of the guest protocol (stream.h).
 *
 * Sections: state; this side's bytes out; the other side's bytes in. libc only: linked
 * into the static guest agent as well as libwarden.
 */
#define _GNU_SOURCE
#include "stream.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Credit goes back once this much is taken: one frame per quarter window, not per write. */
#define CREDIT_BATCH (FRAME_NET_WINDOW / 4)

/* ---- state ------------------------------------------------------------------------- */

void stream_init(struct stream *s, uint32_t id, int fd)
{
	*s = (struct stream){.id = id, .fd = fd, .credit = FRAME_NET_WINDOW};
}

short stream_events(const struct stream *s, bool may_read)
{
	short ev = 0;
	if (s->dead)
		return 0;
	if (may_read && s->credit && !s->eof_out)
		ev |= POLLIN;
	if (s->n_pending)
		ev |= POLLOUT;
	return ev;
}

/* Both ends of data went, and every byte is written: nothing more can happen. */
static void check_done(struct stream *s)
{
	if (s->eof_in && s->eof_out && !s->n_pending)
		s->dead = true;
}

static void fail(struct stream_side *sd, struct stream *s)
{
	sd->send(sd->ctx, sd->close, s->id, NULL, 0);
	s->dead = true;
}

void stream_close(struct stream *s)
{
	s->dead = true;
}

struct stream *stream_find(struct stream *tab, size_t n, uint32_t id)
{
	for (size_t i = 0; i < n; i++)
		if (tab[i].fd >= 0 && tab[i].id == id)
			return &tab[i];
	return NULL;
}

struct stream *stream_free_slot(struct stream *tab, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (tab[i].fd < 0)
			return &tab[i];
	return NULL;
}

void stream_free(struct stream *s)
{
	if (s->fd >= 0)
		close(s->fd);
	free(s->pending);
	*s = (struct stream){.fd = -1};
}

/* ---- this side's bytes out --------------------------------------------------------- */

static void read_some(struct stream_side *sd, struct stream *s)
{
	size_t max = s->credit < FRAME_MAX ? s->credit : FRAME_MAX;
	ssize_t n = read(s->fd, sd->buf, max);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0)
		return fail(sd, s);
	sd->send(sd->ctx, sd->data, s->id, sd->buf, (uint32_t)n);
	if (n == 0)
		s->eof_out = true;
	s->credit -= (uint32_t)n;
	check_done(s);
}

/* ---- the other side's bytes in ----------------------------------------------------- */

/* Write what waits; credit back what was taken, in batches; once the other side's end
 * of data is written, shut the socket for writing. */
static void flush(struct stream_side *sd, struct stream *s)
{
	size_t off = 0;
	while (off < s->n_pending) {
		ssize_t n =
		    send(s->fd, s->pending + off, s->n_pending - off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0)
			return fail(sd, s);
		off += (size_t)n;
	}
	if (off) {
		memmove(s->pending, s->pending + off, s->n_pending - off);
		s->n_pending -= off;
		s->unacked += (uint32_t)off;
	}
	if (s->unacked >= CREDIT_BATCH) {
		uint8_t b[4];
		frame_put_u32(b, s->unacked);
		sd->send(sd->ctx, sd->credit, s->id, b, 4);
		s->unacked = 0;
	}
	if (s->eof_in && !s->n_pending)
		(void)shutdown(s->fd, SHUT_WR);
	check_done(s);
}

void stream_ready(struct stream_side *sd, struct stream *s, short revents)
{
	if (s->n_pending && (revents & (POLLOUT | POLLERR | POLLHUP)))
		flush(sd, s);
	if (!s->dead && s->credit && !s->eof_out && (revents & (POLLIN | POLLERR | POLLHUP)))
		read_some(sd, s);
}

int stream_data(struct stream_side *sd, struct stream *s, const uint8_t *p, uint32_t len,
                const char **ret_why)
{
	if (s->eof_in) {
		*ret_why = "stream data after its end";
		return -1;
	}
	if ((uint64_t)s->n_pending + s->unacked + len > FRAME_NET_WINDOW) {
		*ret_why = "stream data beyond its window";
		return -1;
	}
	if (s->dead)
		return 0;
	if (len == 0) {
		s->eof_in = true;
	} else {
		uint8_t *n = realloc(s->pending, s->n_pending + len);
		if (!n)
			return fail(sd, s), 0;
		memcpy(n + s->n_pending, p, len);
		s->pending = n;
		s->n_pending += len;
	}
	flush(sd, s);
	return 0;
}

int stream_credit(struct stream *s, uint32_t n, const char **ret_why)
{
	if ((uint64_t)s->credit + n > FRAME_NET_WINDOW) {
		*ret_why = "stream credit beyond its window";
		return -1;
	}
	s->credit += n;
	return 0;
}

int stream_frame(struct stream_side *sd, struct stream *s, const struct frame *f,
                 const char **ret_why)
{
	switch (f->type) {
	case FRAME_DATA_IN:
	case FRAME_DATA_OUT:
		return stream_data(sd, s, f->payload, f->len, ret_why);
	case FRAME_CREDIT_IN:
	case FRAME_CREDIT_OUT:
		return stream_credit(s, frame_get_u32(f->payload), ret_why);
	case FRAME_CLOSE_IN:
	case FRAME_CLOSE_OUT:
		stream_close(s);
		return 0;
	default:
		return 0;
	}
}
