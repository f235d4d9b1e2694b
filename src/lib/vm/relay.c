/* relay.c: the vm backend's relay thread, between the guest agent's port and the host.
 *
 * Sections: frames out (queued, written by the relay only, so no write ever blocks the
 * other direction); events to the supervisor; frames in; the console; the heartbeat; the
 * thread.
 *
 * Everything the guest sends is untrusted: frames are decoded by frame.c, which bounds
 * and checks them; a malformed one ends the sandbox, since the stream cannot be trusted
 * to be in step again.
 */
#define _GNU_SOURCE
#include "vm.h"
#include "../util.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>

#define OUT_HIGH (1u << 20) /* stop reading stdin while this much waits for the guest */

/* ---- frames out -------------------------------------------------------------------- */

void vm_relay_queue(struct vm_state *st, uint8_t type, uint32_t id, const void *payload,
                    uint32_t len)
{
	st->out = xrealloc(st->out, st->n_out + FRAME_HEADER + len);
	frame_header(st->out + st->n_out, type, id, len);
	if (len)
		memcpy(st->out + st->n_out + FRAME_HEADER, payload, len);
	st->n_out += FRAME_HEADER + len;
}

void vm_relay_send(struct vm_state *st, uint8_t type, uint32_t id, const void *payload,
                   uint32_t len)
{
	pthread_mutex_lock(&st->mu);
	vm_relay_queue(st, type, id, payload, len);
	pthread_mutex_unlock(&st->mu);
	uint64_t one = 1;
	(void)!write(st->wake, &one, sizeof(one));
}

static void flush_out(struct vm_state *st)
{
	pthread_mutex_lock(&st->mu);
	while (st->n_out) {
		ssize_t n = send(st->agent, st->out, st->n_out, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n <= 0)
			break;
		memmove(st->out, st->out + n, st->n_out - (size_t)n);
		st->n_out -= (size_t)n;
	}
	pthread_mutex_unlock(&st->mu);
}

/* ---- events to the supervisor ------------------------------------------------------ */

static void push(struct vm_state *st, const struct warden_event *ev)
{
	/* One event is under PIPE_BUF, so each write is whole. */
	(void)!write(st->ev[1], ev, sizeof(*ev));
}

static struct vm_route *route(struct vm_state *st, uint32_t id)
{
	for (int i = 0; i < VM_ROUTES; i++)
		if (st->routes[i].used && st->routes[i].id == id)
			return &st->routes[i];
	return NULL;
}

static void drop_route(struct vm_route *r)
{
	for (int k = 0; k < 3; k++)
		if (r->fd[k] >= 0)
			close(r->fd[k]);
	memset(r, 0, sizeof(*r));
}

/* The sandbox is over (or its guest is): the last events. A failure is followed by the
 * end itself, as the namespace backend's init exits after reporting one. */
static void end(struct vm_state *st, enum warden_event_kind kind, int code, int errnum,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void end(struct vm_state *st, enum warden_event_kind kind, int code, int errnum,
                const char *fmt, ...)
{
	struct warden_event ev = {.kind = kind, .code = code, .errnum = errnum};
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ev.text, sizeof(ev.text), fmt, ap);
	va_end(ap);
	if (st->ended)
		return;
	__atomic_store_n(&st->ended, true, __ATOMIC_RELEASE); /* vm_exec() reads it */
	ev.exec = kind == WARDEN_EVENT_FAILED && errnum != 0;
	push(st, &ev);
	if (kind == WARDEN_EVENT_FAILED)
		push(st, &(struct warden_event){.kind = WARDEN_EVENT_EXITED, .code = code});
}

/* The main command exited: copy the volumes out while the guest (which synced them
 * before it said so) still holds them still, then report. */
static void main_exit(struct vm_state *st, int code, int errnum)
{
	_cleanup_error_ struct warden_error *e = NULL;
	if (vm_volumes_copy_out(st->vols, st->n_vols, &e) < 0)
		return end(st, WARDEN_EVENT_FAILED, 125, 0, "%s", warden_error_text(e));
	if (errnum) /* it could not be executed: said the way the namespace backend says it */
		return end(st, WARDEN_EVENT_FAILED, code, errnum, "exec: %s", st->argv0);
	end(st, WARDEN_EVENT_EXITED, code, 0, "%s", "");
}

/* ---- frames in --------------------------------------------------------------------- */

static void write_all(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* the reader went away: the output is dropped, as a pipe's would be
			         */
		p += n;
		len -= (size_t)n;
	}
}

static void handle(struct vm_state *st, const struct frame *f)
{
	struct vm_route *r = route(st, f->id);
	struct warden_event ev = {.exec_id = f->id - 1};
	switch (f->type) {
	case FRAME_STARTED:
		if (r && !r->started && f->id) {
			r->started = true;
			ev.kind = WARDEN_EVENT_EXEC_STARTED;
			ev.pid = (int)frame_get_u32(f->payload);
			push(st, &ev);
		}
		break;
	case FRAME_STDOUT:
	case FRAME_STDERR:
		if (r)
			write_all(r->fd[f->type == FRAME_STDOUT ? 1 : 2], f->payload, f->len);
		break;
	case FRAME_EXIT:
		if (!r)
			break;
		drop_route(r);
		if (f->id == 0)
			return main_exit(st, (int)frame_get_u32(f->payload),
			                 (int)frame_get_u32(f->payload + 4));
		ev.kind = WARDEN_EVENT_EXEC_EXIT;
		ev.code = (int)frame_get_u32(f->payload);
		ev.errnum = (int)frame_get_u32(f->payload + 4);
		push(st, &ev);
		break;
	case FRAME_ERROR: {
		char text[256];
		snprintf(text, sizeof(text), "%.*s", (int)(f->len > 200 ? 200 : f->len),
		         (const char *)f->payload);
		if (f->id == 0 || (r && !r->id))
			return end(st, WARDEN_EVENT_FAILED, 125, 0, "guest agent: %s", text);
		if (r) {
			drop_route(r);
			ev.kind = WARDEN_EVENT_EXEC_EXIT;
			ev.code = 125;
			snprintf(ev.text, sizeof(ev.text), "guest agent: %s", text);
			push(st, &ev);
		}
		break;
	}
	case FRAME_OPEN:
	case FRAME_DATA_OUT:
	case FRAME_CREDIT_OUT:
	case FRAME_CLOSE_OUT: {
		const char *why;
		if (vm_net_frame(st, f, &why) < 0)
			end(st, WARDEN_EVENT_FAILED, 125, 0,
			    "the guest agent sent a malformed frame (%s)", why);
		break;
	}
	default: /* READY again: nothing to do */
		break;
	}
}

/* Read what the agent sent and handle every whole frame. Returns -1 at end of stream or
 * on a malformed frame (the sandbox is then ended), else 0. */
static int read_agent(struct vm_state *st, bool *ready)
{
	ssize_t n = read(st->agent, st->in + st->n_in, sizeof(st->in) - st->n_in);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0)
		return -1;
	__atomic_store_n(&st->heard, true, __ATOMIC_RELEASE);
	st->n_in += (size_t)n;
	size_t off = 0, used;
	struct frame f;
	const char *why;
	int r;
	while ((r = frame_decode(st->in + off, st->n_in - off, FRAME_TO_HOST, &f, &used, &why)) ==
	       1) {
		off += used;
		if (ready) {
			if (f.type == FRAME_READY && frame_get_u32(f.payload) == FRAME_VERSION)
				*ready = true;
			continue;
		}
		handle(st, &f);
		if (st->ended)
			return -1;
	}
	memmove(st->in, st->in + off, st->n_in - off);
	st->n_in -= off;
	if (r < 0) {
		end(st, WARDEN_EVENT_FAILED, 125, 0, "the guest agent sent a malformed frame (%s)",
		    why);
		return -1;
	}
	return 0;
}

int vm_relay_wait_ready(struct vm_state *st, int timeout_ms, struct warden_error **err)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		long left = timeout_ms -
		            ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
		struct pollfd p = {.fd = st->agent, .events = POLLIN};
		if (left <= 0 || poll(&p, 1, (int)left) == 0)
			return warden_error_set(err, ETIMEDOUT,
			                        "the guest did not become ready "
			                        "within %d s",
			                        timeout_ms / 1000);
		bool ready = false;
		st->ended = false;
		if (read_agent(st, &ready) < 0) {
			char tail[256];
			vm_console_tail(st, tail, sizeof(tail));
			return warden_error_set(err, 0, "the guest stopped while booting%s%s",
			                        *tail ? ": " : "", tail);
		}
		if (ready)
			return 0;
	}
}

/* ---- the console ------------------------------------------------------------------- */

void vm_console_tail(const struct vm_state *st, char *buf, size_t len)
{
	char log[16384];
	_cleanup_free_ char *path = xasprintf("%s/console.log", st->state_dir);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	buf[0] = '\0';
	if (fd < 0)
		return;
	off_t size = lseek(fd, 0, SEEK_END);
	off_t from = size > (off_t)sizeof(log) - 1 ? size - (off_t)sizeof(log) + 1 : 0;
	ssize_t n = pread(fd, log, sizeof(log) - 1, from);
	if (n <= 0)
		return;
	log[n] = '\0';
	/* The most telling line: a panic's, the agent's own, else the last one. */
	const char *pick = strstr(log, "Kernel panic");
	if (!pick)
		pick = strstr(log, "warden-guest: ");
	if (!pick) {
		while (n > 0 && (log[n - 1] == '\n' || log[n - 1] == '\r'))
			log[--n] = '\0';
		pick = strrchr(log, '\n');
		pick = pick ? pick + 1 : log;
	}
	snprintf(buf, len, "%.*s", (int)strcspn(pick, "\r\n"), pick);
}

/* ---- the heartbeat ----------------------------------------------------------------- */

/* A guest whose kernel or agent hangs while QEMU runs sends nothing, and nothing else
 * would end the sandbox before --timeout (QEMU itself goes on). So the relay pings the
 * agent every tick, and a guest from which no byte at all (a PONG or any other frame)
 * came for heartbeat_ms is taken for wedged: the sandbox ends and QEMU's sandbox is
 * killed. What is counted is ticks in a row without a byte, not the time since the last
 * one: a relay that was itself held up (blocked writing output to a slow reader, or the
 * supervisor stopped) reads what the guest sent meanwhile before its next tick, so it
 * never blames the guest for its own delay. A frozen QEMU (vm_freeze()) is not pinged. */
static int tick_ms(const struct vm_state *st)
{
	int t = st->heartbeat_ms / 4;
	return t < 100 ? 100 : t > 1000 ? 1000 : t;
}

static void ping(struct vm_state *st)
{
	uint8_t b[4];
	frame_put_u32(b, ++st->pings);
	vm_relay_send(st, FRAME_PING, 0, b, 4);
}

/* One tick; false when the guest is taken for wedged and the sandbox has ended. */
static bool heartbeat_tick(struct vm_state *st)
{
	bool heard = __atomic_exchange_n(&st->heard, false, __ATOMIC_ACQ_REL);
	if (__atomic_load_n(&st->frozen, __ATOMIC_ACQUIRE))
		return st->missed = 0, true;
	if (heard) {
		st->missed = 0;
	} else if (++st->missed * tick_ms(st) >= st->heartbeat_ms) {
		end(st, WARDEN_EVENT_FAILED, 125, 0,
		    "the guest stopped answering (no heartbeat for %g s)",
		    st->heartbeat_ms / 1000.0);
		(void)warden_sandbox_kill(st->qsb, NULL);
		return false;
	}
	ping(st);
	return true;
}

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---- the thread -------------------------------------------------------------------- */

static const char *reason_text(const char *reason)
{
	if (!*reason)
		return "QEMU ended";
	if (streq(reason, "guest-reset"))
		return "the guest kernel reset (a panic reboots at once)";
	if (streq(reason, "guest-panic"))
		return "the guest kernel panicked";
	if (streq(reason, "guest-shutdown"))
		return "the guest powered off";
	return reason;
}

static void read_qmp(struct vm_state *st)
{
	char *name = NULL, *reason = NULL;
	int r = vm_qmp_read_event(st->qmp, &name, &reason);
	if (r > 0 && streq(name, "SHUTDOWN") && reason)
		snprintf(st->shutdown_reason, sizeof(st->shutdown_reason), "%s", reason);
	free(name);
	free(reason);
	if (r < 0) {
		close(st->qmp);
		st->qmp = -1;
	}
}

/* The agent's channel closed before the main command ended: QEMU is gone. */
static void guest_gone(struct vm_state *st)
{
	char tail[256];
	if (st->killed)
		return end(st, WARDEN_EVENT_LOST, 128 + SIGKILL, 0, "%s", "the VM was killed");
	/* QMP's SHUTDOWN event says why, if it is not read yet. */
	for (int i = 0; st->qmp >= 0 && !st->shutdown_reason[0] && i < 20; i++) {
		struct pollfd p = {.fd = st->qmp, .events = POLLIN};
		if (poll(&p, 1, 10) == 1)
			read_qmp(st);
	}
	vm_console_tail(st, tail, sizeof(tail));
	end(st, WARDEN_EVENT_FAILED, 125, 0, "the guest stopped before the command ended: %s%s%s",
	    reason_text(st->shutdown_reason), *tail ? ": " : "", tail);
}

static void read_stdin(struct vm_state *st, struct vm_route *r)
{
	static uint8_t buf[FRAME_MAX];
	ssize_t n = read(r->fd[0], buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	uint32_t id = r->id;
	if (n <= 0) {
		close(r->fd[0]);
		r->fd[0] = -1;
	}
	pthread_mutex_unlock(&st->mu);
	vm_relay_send(st, FRAME_STDIN, id, buf, n > 0 ? (uint32_t)n : 0);
	pthread_mutex_lock(&st->mu);
}

static void *relay_main(void *arg)
{
	struct vm_state *st = arg;
	struct pollfd p[3 + VM_ROUTES + VM_NET_POLL];
	struct vm_route *owner[3 + VM_ROUTES];
	int64_t tick = st->heartbeat_ms ? now_ms() : 0;
	for (;;) {
		nfds_t n = 0;
		int n_net;
		pthread_mutex_lock(&st->mu);
		p[n++] =
		    (struct pollfd){.fd = st->agent, .events = POLLIN | (st->n_out ? POLLOUT : 0)};
		p[n++] = (struct pollfd){.fd = st->wake, .events = POLLIN};
		p[n++] = (struct pollfd){.fd = st->qmp, .events = POLLIN};
		for (int i = 0; i < VM_ROUTES && st->n_out < OUT_HIGH; i++)
			if (st->routes[i].used && st->routes[i].fd[0] >= 0) {
				owner[n] = &st->routes[i];
				p[n++] =
				    (struct pollfd){.fd = st->routes[i].fd[0], .events = POLLIN};
			}
		n_net = vm_net_poll(st, p + n, st->n_out < OUT_HIGH);
		pthread_mutex_unlock(&st->mu);
		int timeout = -1;
		if (tick) {
			int64_t left = tick - now_ms();
			timeout = left > 0 ? (int)left : 0;
		}
		if (poll(p, n + (nfds_t)n_net, timeout) < 0 && errno != EINTR)
			break;
		uint64_t v;
		if (p[1].revents && read(st->wake, &v, sizeof(v)) < 0 && errno != EAGAIN)
			break;
		if (__atomic_load_n(&st->stop, __ATOMIC_ACQUIRE))
			break;
		if (p[0].revents & POLLOUT)
			flush_out(st);
		pthread_mutex_lock(&st->mu);
		for (nfds_t i = 3; i < n; i++)
			if (p[i].revents && owner[i]->used && owner[i]->fd[0] == p[i].fd)
				read_stdin(st, owner[i]);
		if (n_net)
			vm_net_ready(st, p + n, n_net);
		pthread_mutex_unlock(&st->mu);
		if (st->qmp >= 0 && p[2].revents)
			read_qmp(st);
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			pthread_mutex_lock(&st->mu);
			int r = read_agent(st, NULL);
			pthread_mutex_unlock(&st->mu);
			if (r < 0) {
				if (!st->ended)
					guest_gone(st);
				break;
			}
		}
		if (tick && now_ms() >= tick) {
			if (!heartbeat_tick(st))
				break;
			tick = now_ms() + tick_ms(st);
		}
		flush_out(st);
	}
	return NULL;
}

int vm_relay_start(struct vm_state *st, struct warden_error **err)
{
	fcntl(st->agent, F_SETFL, O_NONBLOCK);
	st->heard = true; /* the first tick only pings */
	int r = pthread_create(&st->thread, NULL, relay_main, st);
	if (r != 0)
		return warden_error_set(err, r, "starting the relay thread");
	st->thread_started = true;
	return 0;
}

void vm_relay_stop(struct vm_state *st)
{
	if (!st->thread_started)
		return;
	__atomic_store_n(&st->stop, true, __ATOMIC_RELEASE);
	uint64_t one = 1;
	(void)!write(st->wake, &one, sizeof(one));
	pthread_join(st->thread, NULL);
	st->thread_started = false;
}
