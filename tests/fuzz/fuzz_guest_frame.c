/* fuzz_guest_frame.c: the guest protocol's decoders (src/lib/vm/frame.c), which each side
 * runs over bytes from the other: the host over what the guest (running the agent's
 * code) sends, the guest agent over what the host sends.
 *
 * The first byte picks the direction; the rest is a stream, decoded frame by frame the
 * way relay.c and the agent do. Checks: a decoded frame lies within the input, has a
 * type of its direction and a payload no larger than FRAME_MAX (exactly 4 bytes for
 * PING, PONG and RESIZE); EXEC and FILE payloads decode to requests whose strings are
 * terminated and inside the limits; LISTEN to listeners within theirs; the network's
 * frames carry the ids and sizes their types allow, and drive one stream (stream.c, on a
 * socket pair whose other end reads nothing) that never holds more than its window nor
 * has credit beyond it.
 */
#define _GNU_SOURCE
#include "src/lib/vm/stream.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_exec(const struct frame *f)
{
	struct frame_exec x;
	const char *why;
	if (frame_exec_decode(f->payload, f->len, &x, &why) < 0)
		return;
	size_t n = 0;
	for (char **a = x.argv; *a; a++, n++)
		(void)strlen(*a);
	for (char **e = x.env; *e; e++, n++)
		if (!strchr(*e, '='))
			abort();
	if (!n || n > FRAME_EXEC_ARGS || (x.workdir && x.workdir[0] != '/') || x.uid == 0xffffffff)
		abort();
	frame_exec_clear(&x);
}

static void check_file(const struct frame *f)
{
	struct frame_file ff;
	const char *why;
	if (frame_file_decode(f->payload, f->len, &ff, &why) < 0)
		return;
	if (ff.path[0] != '/' || ff.mode > 07777 || ff.data < f->payload ||
	    ff.data + ff.len != f->payload + f->len)
		abort();
}

static void check_listen(const struct frame *f)
{
	struct frame_listener ls[FRAME_NET_LISTENERS];
	const char *why;
	int n = frame_listen_decode(f->payload, f->len, ls, &why);
	unsigned seen = 0, udp = 0;
	for (int i = 0; i < n; i++) {
		if (ls[i].index >= FRAME_NET_LISTENERS || seen & 1u << ls[i].index || !ls[i].port)
			abort();
		seen |= 1u << ls[i].index;
		udp += ls[i].udp;
	}
	if (n > FRAME_NET_LISTENERS || udp > 1)
		abort();
}

static void ignore(void *ctx, uint8_t type, uint32_t id, const void *p, uint32_t len)
{
	(void)ctx, (void)type, (void)id, (void)p, (void)len;
}

static struct stream_side side = {.send = ignore};

/* The network's frames, the way relay.c and the agent apply them to their streams.
 * Returns -1 where the stream's side would end the sandbox. */
static int check_net(const struct frame *f, struct stream *s)
{
	const char *why;
	int r = 0;
	bool stream_type = f->type == FRAME_OPEN || f->type == FRAME_CREDIT_IN ||
	                   f->type == FRAME_CREDIT_OUT || f->type == FRAME_CLOSE_IN ||
	                   f->type == FRAME_CLOSE_OUT;
	if (stream_type &&
	    (!f->id ||
	     f->len != (f->type == FRAME_CLOSE_IN || f->type == FRAME_CLOSE_OUT ? 0u : 4u)))
		abort();
	if (f->type == FRAME_LISTEN && f->id)
		abort();
	if (s->fd < 0 || s->dead || f->id != s->id)
		return 0;
	r = stream_frame(&side, s, f, &why);
	if (s->n_pending > FRAME_NET_WINDOW || s->credit > FRAME_NET_WINDOW)
		abort();
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	enum frame_dir dir = data[0] & 1 ? FRAME_TO_HOST : FRAME_TO_GUEST;
	/* A copy of exactly the input's length, so that ASan sees any read past it. */
	uint8_t *buf = malloc(size - 1 ? size - 1 : 1);
	memcpy(buf, data + 1, size - 1);
	size_t off = 0, used;
	struct frame f;
	const char *why;
	struct stream s = {.fd = -1};
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	stream_init(&s, 1, sv[0]);
	while (frame_decode(buf + off, size - 1 - off, dir, &f, &used, &why) == 1) {
		if (used != FRAME_HEADER + (size_t)f.len || f.len > FRAME_MAX ||
		    f.payload != buf + off + FRAME_HEADER || off + used > size - 1)
			abort();
		if ((dir == FRAME_TO_HOST) != (f.type >= FRAME_READY))
			abort();
		if ((f.type == FRAME_PING || f.type == FRAME_PONG || f.type == FRAME_RESIZE) &&
		    f.len != 4)
			abort();
		if (f.type == FRAME_EXEC)
			check_exec(&f);
		if (f.type == FRAME_FILE)
			check_file(&f);
		if (f.type == FRAME_LISTEN)
			check_listen(&f);
		if (check_net(&f, &s) < 0)
			break;
		off += used;
	}
	stream_free(&s);
	close(sv[1]);
	free(buf);
	return 0;
}
