/* api-exec.c: POST /v1/sandboxes/{id}/exec and .../exec/{exec_id}/kill.
 *
 * Sections: an exec's state; output; the end; starting; kill.
 *
 * The command enters through the sandbox's init (the supervisor's exec op), with pipes
 * wardend made as its stdin, stdout and stderr. Output is streamed as it comes (SSE or
 * NDJSON, by the Accept header) or collected into one JSON answer. The exit status comes
 * on the control connection; output still in the pipes then is read at once, and the
 * answer ends there: a background process that kept the pipes open does not hold it.
 */
#define _GNU_SOURCE
#include "wardend.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <fcntl.h>
#include <sys/socket.h>

#define COLLECT_MAX      (1u << 20) /* per stream, for the collected (non-streamed) answer */
#define READ_CHUNK       (64u << 10)
#define BACKLOG_MAX      (1u << 20) /* unsent streamed output before the pipes wait */
#define STREAM_TIMEOUT_S (86400 + 60)
#define KEEPALIVE_S      15
#define EXECS_MAX        64 /* at once per sandbox: each holds descriptors in wardend */

/* ---- an exec's state --------------------------------------------------------------- */

struct exec {
	struct evhttp_request *req;
	struct sandbox *sb; /* a reference */
	enum api_stream stream;
	uint64_t id;
	json_t *cmd;
	int ctl, in, out[2]; /* out[0]: stdout, out[1]: stderr */
	struct event *ctl_ev, *in_ev, *out_ev[2], *timeout_ev, *resume_ev, *keepalive_ev;
	struct evbuffer *in_buf;
	struct warden_text text[2]; /* streamed: the chunk being built; collected: all of it */
	size_t raw[2];              /* bytes read per stream */
	bool truncated, timed_out;
	json_t *exit_msg;
};

static const char *const stream_names[2] = {"stdout", "stderr"};

static void close_ev(struct event **ev, int *fd)
{
	if (*ev)
		event_free(*ev);
	*ev = NULL;
	if (fd && *fd >= 0)
		close(*fd);
	if (fd)
		*fd = -1;
}

static void exec_free(struct exec *x)
{
	close_ev(&x->ctl_ev, &x->ctl);
	close_ev(&x->in_ev, &x->in);
	close_ev(&x->out_ev[0], &x->out[0]);
	close_ev(&x->out_ev[1], &x->out[1]);
	close_ev(&x->timeout_ev, NULL);
	close_ev(&x->resume_ev, NULL);
	close_ev(&x->keepalive_ev, NULL);
	if (x->in_buf)
		evbuffer_free(x->in_buf);
	warden_text_clear(&x->text[0]);
	warden_text_clear(&x->text[1]);
	json_decref(x->cmd);
	json_decref(x->exit_msg);
	x->sb->execs--;
	sandbox_unref(x->sb);
	free(x);
}

/* ---- output ------------------------------------------------------------------------ */

/* One streamed event: SSE ("event: T\ndata: JSON\n\n") or NDJSON ({"type": T, ...}). A
 * client that went away gets nothing more; the command goes on (and is logged). */
static void emit(struct exec *x, const char *type, json_t *data)
{
	if (evhttp_request_get_connection(x->req)) {
		struct evbuffer *b = evbuffer_new();
		if (x->stream == STREAM_NDJSON) {
			json_object_set_new(data, "type", json_string(type));
			char *s = json_dumps(data, JSON_COMPACT);
			evbuffer_add_printf(b, "%s\n", s);
			free(s);
		} else {
			char *s = json_dumps(data, JSON_COMPACT);
			evbuffer_add_printf(b, "event: %s\ndata: %s\n\n", type, s);
			free(s);
		}
		evhttp_send_reply_chunk(x->req, b);
		evbuffer_free(b);
	}
	json_decref(data);
}

static void deliver(struct exec *x, int which, const char *data, size_t n, bool final)
{
	struct warden_text *t = &x->text[which];
	if (x->stream == STREAM_NONE) {
		size_t room = x->raw[which] < COLLECT_MAX ? COLLECT_MAX - x->raw[which] : 0;
		if (n > room)
			x->truncated = true;
		warden_text_add(t, data, n < room ? n : room, final);
		x->raw[which] += n;
		return;
	}
	t->len = 0;
	warden_text_add(t, data, n, final);
	if (t->len)
		emit(x, stream_names[which], json_pack("{s:s%}", "data", t->s, t->len));
}

/* Read what is there; returns false at end of file (or an error). */
static bool drain(struct exec *x, int which)
{
	char buf[READ_CHUNK];
	for (;;) {
		ssize_t n = read(x->out[which], buf, sizeof(buf));
		if (n > 0) {
			deliver(x, which, buf, (size_t)n, false);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 && errno == EAGAIN;
	}
}

/* Output the client has not taken yet: past BACKLOG_MAX the pipes are left unread, so
 * the command waits on a full pipe instead of wardend buffering without bound. */
static bool backlogged(struct exec *x)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(x->req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	return x->stream != STREAM_NONE && bev &&
	       evbuffer_get_length(bufferevent_get_output(bev)) > BACKLOG_MAX;
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct exec *x = arg;
	struct timeval tv = {.tv_usec = 20000};
	if (backlogged(x))
		return (void)evtimer_add(x->resume_ev, &tv);
	for (int i = 0; i < 2; i++)
		if (x->out_ev[i])
			event_add(x->out_ev[i], NULL);
}

static void out_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct exec *x = arg;
	int which = fd == x->out[0] ? 0 : 1;
	if (!drain(x, which)) {
		close_ev(&x->out_ev[which], &x->out[which]);
		return;
	}
	if (backlogged(x)) {
		for (int i = 0; i < 2; i++)
			if (x->out_ev[i])
				event_del(x->out_ev[i]);
		if (!x->resume_ev)
			x->resume_ev = evtimer_new(wd.base, resume_cb, x);
		resume_cb(-1, 0, x);
	}
}

/* SSE comments keep proxies (and clients' idle timers) from closing a quiet stream. */
static void keepalive_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct exec *x = arg;
	if (!evhttp_request_get_connection(x->req))
		return;
	struct evbuffer *b = evbuffer_new();
	evbuffer_add_printf(b, ": keepalive\n\n");
	evhttp_send_reply_chunk(x->req, b);
	evbuffer_free(b);
}

static void in_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct exec *x = arg;
	while (evbuffer_get_length(x->in_buf)) {
		int n = evbuffer_write(x->in_buf, fd);
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0)
			break; /* the command stopped reading (EPIPE) */
	}
	close_ev(&x->in_ev, &x->in);
}

/* ---- the end ----------------------------------------------------------------------- */

static void finish(struct exec *x)
{
	for (int i = 0; i < 2; i++) {
		if (x->out[i] >= 0)
			drain(x, i);
		deliver(x, i, NULL, 0, true);
	}
	json_t *code = json_object_get(x->exit_msg, "exit");
	int exit_code = json_is_integer(code) ? (int)json_integer_value(code) : -1;
	const char *error = json_string_value(json_object_get(x->exit_msg, "error"));
	if (!x->exit_msg)
		error = "the sandbox ended before the command";
	(void)state_exec_end(x->sb->id, x->id, exit_code, x->timed_out, now_s());

	json_t *end = json_pack("{s:i, s:b}", "exit_code", exit_code, "timed_out", x->timed_out);
	if (error)
		json_object_set_new(end, "error", json_string(error));
	if (x->stream == STREAM_NONE) {
		json_object_set_new(end, "exec_id", json_integer((json_int_t)x->id));
		json_object_set_new(end, "stdout",
		                    json_stringn(x->text[0].s ? x->text[0].s : "", x->text[0].len));
		json_object_set_new(end, "stderr",
		                    json_stringn(x->text[1].s ? x->text[1].s : "", x->text[1].len));
		if (x->truncated)
			json_object_set_new(end, "truncated", json_true());
		reply_json(x->req, 200, end);
	} else {
		emit(x, "exit", end);
		/* Frees the request, also when its client has gone. */
		evhttp_send_reply_end(x->req);
	}
	exec_free(x);
}

static void ctl_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct exec *x = arg;
	_cleanup_error_ struct warden_error *e = NULL;
	json_t *m = warden_control_recv(fd, MSG_DONTWAIT, NULL, 0, NULL, &e);
	if (m && json_object_get(m, "exit")) {
		x->exit_msg = m;
		return finish(x);
	}
	json_decref(m);
	/* Nothing there yet: wait on. The end of the connection, an error or garbage: the
	 * exchange is over. */
	if (!m && e->errnum != ETIMEDOUT)
		finish(x);
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct exec *x = arg;
	_cleanup_error_ struct warden_error *e = NULL;
	x->timed_out = true;
	json_decref(sandbox_request(
	    x->sb,
	    json_pack("{s:s, s:I, s:i}", "op", "signal", "exec", (json_int_t)x->id, "signal", 9),
	    &e));
	if (e)
		fprintf(stderr, "wardend: exec %" PRIu64 " timed out; killing it: %s\n", x->id,
		        warden_error_text(e));
}

/* ---- starting ---------------------------------------------------------------------- */

static json_t *strv_json(const struct strv *s)
{
	json_t *a = json_array();
	for (size_t i = 0; i < s->n; i++)
		json_array_append_new(a, json_string(s->v[i]));
	return a;
}

static void close_all(int *fds[], size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (*fds[i] >= 0) {
			close(*fds[i]);
			*fds[i] = -1;
		}
}

void api_exec(struct call *c, struct sandbox *sb)
{
	struct api_exec req;
	struct api_error e = {0};
	_cleanup_error_ struct warden_error *we = NULL;
	if (api_parse_exec(c->body, c->body_len, &req, &e) < 0)
		return reply_api_error(c->req, &e);
	if (sb->paused) {
		api_exec_clear(&req);
		return reply_error(c->req, 409, "paused", "sandbox %s is paused (resume it first)",
		                   sb->id);
	}
	if (sb->execs >= EXECS_MAX) {
		api_exec_clear(&req);
		return reply_error(c->req, 429, "too_many_execs",
		                   "sandbox %s runs %u commands already (at most %d at once)",
		                   sb->id, sb->execs, EXECS_MAX);
	}
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
	bool ok = pipe2(out, O_CLOEXEC) == 0 && pipe2(err, O_CLOEXEC) == 0;
	if (ok && req.stdin_data)
		ok = pipe2(in, O_CLOEXEC) == 0;
	else if (ok)
		ok = (in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;
	json_t *msg = json_pack("{s:s, s:o}", "op", "exec", "argv", strv_json(&req.argv));
	if (req.env.n)
		json_object_set_new(msg, "env", strv_json(&req.env));
	if (req.workdir)
		json_object_set_new(msg, "workdir", json_string(req.workdir));
	json_t *reply = NULL;
	int ctl = -1;
	if (!ok)
		warden_error_set(&we, errno, "pipe");
	else
		ctl = warden_control_open(sb->control, msg, (int[3]){in[0], out[1], err[1]}, 3,
		                          CTL_TIMEOUT_MS, &reply, &we);
	json_decref(msg);
	/* The command's ends are the command's now (the supervisor has its copies). */
	close_all((int *[]){&in[0], &out[1], &err[1]}, 3);
	if (ctl < 0 || !json_is_true(json_object_get(reply, "ok"))) {
		const char *why = json_string_value(json_object_get(reply, "error"));
		if (ctl >= 0)
			close(ctl);
		close_all((int *[]){&in[1], &out[0], &err[0]}, 3);
		api_exec_clear(&req);
		if (why)
			reply_error(c->req, 400, "exec_failed", "exec: %s", why);
		else
			reply_werror(c->req, we);
		json_decref(reply);
		return;
	}

	struct exec *x = xcalloc(1, sizeof(*x));
	x->req = c->req;
	x->sb = sandbox_ref(sb);
	sb->execs++;
	x->stream =
	    api_stream_kind(evhttp_find_header(evhttp_request_get_input_headers(c->req), "Accept"));
	x->id = (uint64_t)json_integer_value(json_object_get(reply, "exec"));
	json_int_t pid = json_integer_value(json_object_get(reply, "pid"));
	json_decref(reply);
	x->cmd = strv_json(&req.argv);
	x->ctl = ctl;
	x->in = in[1];
	x->out[0] = out[0];
	x->out[1] = err[0];
	for (int i = 0; i < 2; i++) {
		(void)fcntl(x->out[i], F_SETFL, O_NONBLOCK);
		x->out_ev[i] = event_new(wd.base, x->out[i], EV_READ | EV_PERSIST, out_cb, x);
		event_add(x->out_ev[i], NULL);
	}
	if (x->in >= 0) {
		(void)fcntl(x->in, F_SETFL, O_NONBLOCK);
		x->in_buf = evbuffer_new();
		evbuffer_add(x->in_buf, req.stdin_data, req.stdin_len);
		x->in_ev = event_new(wd.base, x->in, EV_WRITE | EV_PERSIST, in_cb, x);
		event_add(x->in_ev, NULL);
	}
	x->ctl_ev = event_new(wd.base, x->ctl, EV_READ | EV_PERSIST, ctl_cb, x);
	event_add(x->ctl_ev, NULL);
	if (req.timeout > 0) {
		x->timeout_ev = evtimer_new(wd.base, timeout_cb, x);
		struct timeval tv = {
		    .tv_sec = (time_t)req.timeout,
		    .tv_usec = (suseconds_t)((req.timeout - (double)(time_t)req.timeout) * 1e6)};
		evtimer_add(x->timeout_ev, &tv);
	}
	(void)state_exec_start(sb->id, x->id, x->cmd, now_s());
	wd.execs++;
	api_exec_clear(&req);

	if (x->stream != STREAM_NONE) {
		struct evkeyvalq *h = evhttp_request_get_output_headers(c->req);
		evhttp_add_header(h, "Content-Type",
		                  x->stream == STREAM_SSE ? "text/event-stream"
		                                          : "application/x-ndjson");
		evhttp_add_header(h, "Cache-Control", "no-cache");
		count_status(200);
		evhttp_send_reply_start(c->req, 200, "OK");
		/* A stream may be silent as long as its command: the connection's idle timeout
		 * (for reading requests) is lifted to the longest exec. */
		struct evhttp_connection *evcon = evhttp_request_get_connection(c->req);
		if (evcon)
			evhttp_connection_set_timeout(evcon, STREAM_TIMEOUT_S);
		emit(x, "started",
		     json_pack("{s:I, s:I}", "exec_id", (json_int_t)x->id, "pid", pid));
		if (x->stream == STREAM_SSE) {
			x->keepalive_ev = event_new(wd.base, -1, EV_PERSIST, keepalive_cb, x);
			struct timeval ka = {.tv_sec = KEEPALIVE_S};
			event_add(x->keepalive_ev, &ka);
		}
	}
}

/* ---- kill -------------------------------------------------------------------------- */

void api_exec_kill(struct call *c, struct sandbox *sb)
{
	int sig;
	struct api_error e = {0};
	_cleanup_error_ struct warden_error *we = NULL;
	if (api_parse_kill(c->body, c->body_len, &sig, &e) < 0)
		return reply_api_error(c->req, &e);
	json_t *log = state_exec_list(sb->id), *found = NULL, *x;
	size_t i;
	json_array_foreach(log, i, x)
	{
		if ((uint64_t)json_integer_value(json_object_get(x, "exec_id")) == c->m.exec_id)
			found = x;
	}
	bool ended = found && !json_is_null(json_object_get(found, "exit_code"));
	json_decref(log);
	if (!found)
		return reply_error(c->req, 404, "not_found", "exec %" PRIu64 ": no such exec in %s",
		                   c->m.exec_id, sb->id);
	if (ended)
		return reply_error(c->req, 409, "ended", "exec %" PRIu64 ": has ended",
		                   c->m.exec_id);
	json_t *r = sandbox_request(sb,
	                            json_pack("{s:s, s:I, s:i}", "op", "signal", "exec",
	                                      (json_int_t)c->m.exec_id, "signal", sig),
	                            &we);
	if (!r)
		return reply_error(c->req, 409, "signal_failed", "%s", warden_error_text(we));
	json_decref(r);
	reply_empty(c->req, 204);
}
