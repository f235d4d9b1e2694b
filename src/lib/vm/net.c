/* net.c: the host's side of a guest's network (docs/vm.md): proxy mode and the model
 * gateway, through the agent's port; the guest has no network device.
 *
 * A namespace sandbox's init makes listening sockets on its loopback (the HTTP and SOCKS5
 * proxies, DNS, the model gateway) and hands them to the supervisor, which serves them
 * with netserve.c. For a guest, the same listeners are Unix sockets of the supervisor's
 * own, handed over the same way (sb->net_fds) and served by the same netserve: each
 * stream the guest's agent opens (a connection to its own listener on the guest's
 * loopback) becomes a connection to the listener here, so the policy's checks, events,
 * audit records and the gateway are the same code with the same results. DNS is one
 * datagram socket pair: the guest's questions in, the answers back as DATA with id 0.
 *
 * Everything the guest sends is untrusted: streams are bounded in number and by their
 * windows (stream.h); a frame that breaks the protocol ends the sandbox.
 *
 * Sections: listeners; frames from the guest; polling; the end. The relay thread runs
 * everything after vm_net_prepare(), with st->mu held.
 */
#define _GNU_SOURCE
#include "vm.h"
#include "stream.h"
#include "../netserve.h"
#include "../util.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

_Static_assert(WARDEN_NET_LISTENERS <= FRAME_NET_LISTENERS, "a listener index per listener");

struct vm_net {
	int path[WARDEN_NET_LISTENERS]; /* O_PATH of each stream listener's socket, or -1 */
	int dns;                        /* this end of the DNS socket pair, or -1 */
	struct frame_listener offer[WARDEN_NET_LISTENERS];
	size_t n_offer;
	struct stream streams[FRAME_NET_STREAMS];
	int polled[VM_NET_POLL]; /* what each polled entry is: a stream's slot, or -1 (DNS) */
	struct stream_side side;
};

static void send_locked(void *ctx, uint8_t type, uint32_t id, const void *p, uint32_t len)
{
	vm_relay_queue(ctx, type, id, p, len);
}

/* ---- listeners --------------------------------------------------------------------- */

/* A listening Unix socket that only this process can connect to: its name is removed at
 * once, and connections go through a descriptor of the socket's inode
 * (/proc/self/fd/N), which nobody else holds. (A name in the state directory would be
 * reachable from QEMU's sandbox; an abstract name from anything in the host's network
 * namespace.) */
static int private_listener(const char *dir, int index, int *ret_path, struct warden_error **err)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if ((size_t)snprintf(a.sun_path, sizeof(a.sun_path), "%s/net%d.sock", dir, index) >=
	    sizeof(a.sun_path))
		return warden_error_set(err, ENAMETOOLONG, "socket path in %s", dir);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, SOMAXCONN) < 0 ||
	    (*ret_path = open(a.sun_path, O_PATH | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		int e = errno;
		(void)unlink(a.sun_path);
		return warden_error_set(err, e, "listening on %s", a.sun_path);
	}
	(void)unlink(a.sun_path);
	return TAKE_FD(fd);
}

static int connect_listener(const struct vm_net *net, uint32_t index)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "/proc/self/fd/%d", net->path[index]);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int vm_net_prepare(struct vm_state *st, struct warden_error **err)
{
	struct warden_net_listener_spec want[WARDEN_NET_LISTENERS];
	warden_netserve_listeners(st->sb->plan, want);
	bool any = false;
	for (int i = 0; i < WARDEN_NET_LISTENERS; i++)
		any |= want[i].on;
	if (!any)
		return 0;
	struct vm_net *net = xcalloc(1, sizeof(*net));
	st->net = net;
	net->dns = -1;
	net->side = (struct stream_side){.data = FRAME_DATA_IN,
	                                 .credit = FRAME_CREDIT_IN,
	                                 .close = FRAME_CLOSE_IN,
	                                 .send = send_locked,
	                                 .ctx = st};
	for (int i = 0; i < FRAME_NET_STREAMS; i++)
		net->streams[i].fd = -1;
	for (int i = 0; i < WARDEN_NET_LISTENERS; i++)
		net->path[i] = -1;
	/* The same listeners, at the same ports inside, as a namespace sandbox's. */
	for (int i = 0; i < WARDEN_NET_LISTENERS; i++) {
		if (!want[i].on)
			continue;
		int fd, pair[2];
		if (want[i].udp) {
			if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0,
			               pair) < 0)
				return warden_error_set(err, errno, "socketpair");
			fd = pair[0];
			net->dns = pair[1];
		} else if ((fd = private_listener(st->state_dir, i, &net->path[i], err)) < 0) {
			return -1;
		}
		st->sb->net_fds[i] = fd;
		net->offer[net->n_offer++] = (struct frame_listener){
		    .index = (uint8_t)i, .udp = want[i].udp, .port = want[i].port};
	}
	return 0;
}

void vm_net_offer(struct vm_state *st)
{
	uint8_t buf[FRAME_NET_LISTENERS * FRAME_LISTENER_SIZE];
	if (!st->net)
		return;
	for (size_t i = 0; i < st->net->n_offer; i++)
		frame_listener_put(buf + i * FRAME_LISTENER_SIZE, &st->net->offer[i]);
	vm_relay_send(st, FRAME_LISTEN, 0, buf, (uint32_t)(st->net->n_offer * FRAME_LISTENER_SIZE));
}

/* ---- frames from the guest --------------------------------------------------------- */

/* A new stream: connected to its listener, or refused (CLOSE) when FRAME_NET_STREAMS are
 * open or the listener takes no more. */
static int open_stream(struct vm_state *st, const struct frame *f, const char **ret_why)
{
	struct vm_net *net = st->net;
	uint32_t index = frame_get_u32(f->payload);
	if (stream_find(net->streams, FRAME_NET_STREAMS, f->id)) {
		*ret_why = "stream id in use";
		return -1;
	}
	if (index >= WARDEN_NET_LISTENERS || net->path[index] < 0) {
		*ret_why = "stream to a listener not offered";
		return -1;
	}
	struct stream *s = stream_free_slot(net->streams, FRAME_NET_STREAMS);
	int fd = s ? connect_listener(net, index) : -1;
	if (fd < 0) {
		vm_relay_queue(st, FRAME_CLOSE_IN, f->id, NULL, 0);
		return 0;
	}
	stream_init(s, f->id, fd);
	return 0;
}

int vm_net_frame(struct vm_state *st, const struct frame *f, const char **ret_why)
{
	struct vm_net *net = st->net;
	if (!net) {
		*ret_why = "network frame without a network";
		return -1;
	}
	if (f->type == FRAME_OPEN)
		return open_stream(st, f, ret_why);
	if (f->type == FRAME_DATA_OUT && f->id == FRAME_NET_DNS_ID) {
		/* A question the socket cannot take now is dropped: its client asks again. */
		if (net->dns >= 0 && f->len)
			(void)send(net->dns, f->payload, f->len, MSG_DONTWAIT | MSG_NOSIGNAL);
		return 0;
	}
	struct stream *s = stream_find(net->streams, FRAME_NET_STREAMS, f->id);
	if (!s)
		return 0; /* over on this side already */
	int r = stream_frame(&net->side, s, f, ret_why);
	if (s->dead)
		stream_free(s);
	return r;
}

/* ---- polling ----------------------------------------------------------------------- */

int vm_net_poll(struct vm_state *st, struct pollfd *p, bool may_read)
{
	struct vm_net *net = st->net;
	int n = 0;
	if (!net)
		return 0;
	if (net->dns >= 0 && may_read) {
		net->polled[n] = -1;
		p[n++] = (struct pollfd){.fd = net->dns, .events = POLLIN};
	}
	for (int i = 0; i < FRAME_NET_STREAMS; i++) {
		struct stream *s = &net->streams[i];
		short ev = s->fd >= 0 ? stream_events(s, may_read) : 0;
		if (!ev)
			continue;
		net->polled[n] = i;
		p[n++] = (struct pollfd){.fd = s->fd, .events = ev};
	}
	return n;
}

/* DNS answers to the guest, as DATA with id 0. */
static void read_answers(struct vm_state *st)
{
	struct vm_net *net = st->net;
	ssize_t n;
	while ((n = recv(net->dns, net->side.buf, sizeof(net->side.buf), MSG_DONTWAIT)) > 0)
		vm_relay_queue(st, FRAME_DATA_IN, FRAME_NET_DNS_ID, net->side.buf, (uint32_t)n);
}

void vm_net_ready(struct vm_state *st, const struct pollfd *p, int n)
{
	struct vm_net *net = st->net;
	for (int i = 0; i < n; i++) {
		if (!p[i].revents)
			continue;
		if (net->polled[i] < 0) {
			read_answers(st);
			continue;
		}
		struct stream *s = &net->streams[net->polled[i]];
		if (s->fd != p[i].fd)
			continue; /* freed since, by a frame */
		stream_ready(&net->side, s, p[i].revents);
		if (s->dead)
			stream_free(s);
	}
}

/* ---- the end ----------------------------------------------------------------------- */

void vm_net_free(struct vm_state *st)
{
	struct vm_net *net = st->net;
	if (!net)
		return;
	for (int i = 0; i < FRAME_NET_STREAMS; i++)
		if (net->streams[i].fd >= 0)
			stream_free(&net->streams[i]);
	for (int i = 0; i < WARDEN_NET_LISTENERS; i++)
		if (net->path[i] >= 0)
			close(net->path[i]);
	if (net->dns >= 0)
		close(net->dns);
	free(net);
	st->net = NULL;
}
