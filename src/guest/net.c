/* net.c: the guest's network in proxy mode and with a model gateway (docs/vm.md).
 *
 * The guest has no network device. On LISTEN the agent listens on 127.0.0.1 (loopback is
 * up since boot) where the namespace backend's sandbox finds warden's listeners (the HTTP
 * and SOCKS5 proxies, DNS, the model gateway); each connection accepted becomes a stream to
 * the host (OPEN, then DATA both ways with credit: src/lib/vm/stream.c), which hands it
 * to the same proxies and gateway as a namespace sandbox's. DNS questions go as DATA with
 * id 0, their ids replaced by the agent's own so that answers find their askers.
 *
 * Sections: listening; streams; DNS; frames from the host; polling.
 */
#define _GNU_SOURCE
#include "agent.h"
#include "../lib/vm/stream.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include <sys/socket.h>
#include <unistd.h>

#define DNS_SLOTS 64 /* questions awaiting an answer; the oldest is forgotten first */

struct listener {
	int fd; /* -1: none */
	struct frame_listener l;
};

struct dns_slot {
	uint16_t id;    /* the id the host sees: slot index and generation */
	uint16_t asked; /* the client's own id */
	struct sockaddr_in from;
	bool used;
};

static struct listener listeners[FRAME_NET_LISTENERS];
static int n_listeners;
static struct stream streams[FRAME_NET_STREAMS];
static struct stream_side side;
static uint32_t next_id = 1;
static struct dns_slot dns[DNS_SLOTS];
static unsigned dns_next;
static uint8_t dgram[FRAME_MAX];

static void send_to_host(void *ctx, uint8_t type, uint32_t id, const void *p, uint32_t len)
{
	(void)ctx;
	agent_send(type, id, p, len);
}

/* ---- listening --------------------------------------------------------------------- */

/* Accepted connections inherit TCP_NODELAY: bytes relayed in pieces must not wait for
 * the client's delayed ACK. */
static int bind_listener(const struct frame_listener *l)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons(l->port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1;
	int fd =
	    socket(AF_INET, (l->udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 ||
	    (!l->udp && (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	                 setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)) ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || (!l->udp && listen(fd, 128) < 0)) {
		char what[64];
		snprintf(what, sizeof(what), "listening on 127.0.0.1:%u", l->port);
		agent_fatal(what, errno);
	}
	return fd;
}

void net_listen(const uint8_t *p, uint32_t len)
{
	struct frame_listener ls[FRAME_NET_LISTENERS];
	const char *why;
	int n = frame_listen_decode(p, len, ls, &why);
	if (n < 0 || n_listeners) {
		agent_send_error(0, n < 0 ? why : "LISTEN repeated");
		agent_fatal(n < 0 ? why : "LISTEN repeated", EBADMSG);
	}
	side = (struct stream_side){.data = FRAME_DATA_OUT,
	                            .credit = FRAME_CREDIT_OUT,
	                            .close = FRAME_CLOSE_OUT,
	                            .send = send_to_host};
	for (int i = 0; i < FRAME_NET_STREAMS; i++)
		streams[i].fd = -1;

	for (int i = 0; i < n; i++)
		listeners[n_listeners++] =
		    (struct listener){.fd = bind_listener(&ls[i]), .l = ls[i]};
}

/* ---- streams ----------------------------------------------------------------------- */

static struct stream *find_stream(uint32_t id)
{
	return id ? stream_find(streams, FRAME_NET_STREAMS, id) : NULL;
}

/* Ids are never reused while the host may still know them: they count up, skipping 0
 * and those in use. */
static uint32_t new_id(void)
{
	while (!next_id || find_stream(next_id))
		next_id++;
	return next_id++;
}

/* A connection to a stream listener: a stream to the host, or closed at once when
 * FRAME_NET_STREAMS are open already. */
static void accept_streams(const struct listener *l)
{
	int fd;
	while ((fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		struct stream *s = stream_free_slot(streams, FRAME_NET_STREAMS);
		if (!s) {
			close(fd);
			continue;
		}
		stream_init(s, new_id(), fd);
		uint8_t b[4];
		frame_put_u32(b, l->l.index);
		agent_send(FRAME_OPEN, s->id, b, 4);
	}
}

static void reap_stream(struct stream *s)
{
	if (s->dead)
		stream_free(s);
}

/* ---- DNS --------------------------------------------------------------------------- */

/* A question from a client: sent on under an id of the agent's (slot and generation),
 * so that two clients' equal ids cannot take each other's answers. */
static void dns_question(int fd)
{
	struct sockaddr_in from;
	socklen_t fl;
	ssize_t n;
	while (fl = sizeof(from),
	       (n = recvfrom(fd, dgram, sizeof(dgram), 0, (struct sockaddr *)&from, &fl)) >= 0) {
		if (n < 12 || fl != sizeof(from))
			continue; /* not a DNS message */
		unsigned k = dns_next++;
		struct dns_slot *d = &dns[k % DNS_SLOTS];
		d->id = (uint16_t)(k % DNS_SLOTS | (k / DNS_SLOTS & 0x3ff) << 6);
		d->asked = (uint16_t)(dgram[0] << 8 | dgram[1]);
		d->from = from;
		d->used = true;
		dgram[0] = (uint8_t)(d->id >> 8);
		dgram[1] = (uint8_t)d->id;
		agent_send(FRAME_DATA_OUT, FRAME_NET_DNS_ID, dgram, (uint32_t)n);
	}
}

/* An answer from the host: back to whoever asked, under their id. */
static void dns_answer(const uint8_t *p, uint32_t len)
{
	int fd = -1;
	for (int i = 0; i < n_listeners; i++)
		if (listeners[i].l.udp)
			fd = listeners[i].fd;
	if (len < 12 || len > sizeof(dgram) || fd < 0)
		return;
	uint16_t id = (uint16_t)(p[0] << 8 | p[1]);
	struct dns_slot *d = &dns[id % DNS_SLOTS];
	if (!d->used || d->id != id)
		return; /* forgotten, or answered already */
	memcpy(dgram, p, len);
	dgram[0] = (uint8_t)(d->asked >> 8);
	dgram[1] = (uint8_t)d->asked;
	d->used = false;
	(void)sendto(fd, dgram, len, MSG_DONTWAIT, (struct sockaddr *)&d->from, sizeof(d->from));
}

/* ---- frames from the host ---------------------------------------------------------- */

void net_frame(const struct frame *f)
{
	const char *why = NULL;
	if (!n_listeners)
		return; /* no LISTEN yet: no stream either */
	if (f->type == FRAME_DATA_IN && f->id == FRAME_NET_DNS_ID)
		return dns_answer(f->payload, f->len);
	struct stream *s = find_stream(f->id);
	if (!s)
		return; /* over on this side already */
	if (stream_frame(&side, s, f, &why) < 0) {
		agent_send_error(0, why);
		agent_fatal(why, EBADMSG);
	}
	reap_stream(s);
}

/* ---- polling ----------------------------------------------------------------------- */

static int polled[NET_POLL_MAX]; /* what each entry is: listener i, or stream -1 - i */

int net_poll(struct pollfd *p)
{
	int n = 0;
	if (!n_listeners)
		return 0;
	for (int i = 0; i < n_listeners; i++) {
		polled[n] = i;
		p[n++] = (struct pollfd){.fd = listeners[i].fd, .events = POLLIN};
	}
	for (int i = 0; i < FRAME_NET_STREAMS; i++) {
		short ev = streams[i].fd >= 0 ? stream_events(&streams[i], true) : 0;
		if (!ev)
			continue;
		polled[n] = -1 - i;
		p[n++] = (struct pollfd){.fd = streams[i].fd, .events = ev};
	}
	return n;
}

void net_ready(const struct pollfd *p, int n)
{
	for (int i = 0; i < n; i++) {
		if (!p[i].revents)
			continue;
		if (polled[i] >= 0) {
			const struct listener *l = &listeners[polled[i]];
			if (l->l.udp)
				dns_question(l->fd);
			else
				accept_streams(l);
			continue;
		}
		struct stream *s = &streams[-1 - polled[i]];
		if (s->fd == p[i].fd) {
			stream_ready(&side, s, p[i].revents);
			reap_stream(s);
		}
	}
}
