/* supervisor-control.c: the supervisor's control socket (the server side of control.h's
 * protocol: stats, freeze, thaw, kill, info, root, destroy) and the commands a service
 * sandbox runs on request (exec, signal), whose requesters wait for their ends.
 *
 * Sections: control requests; commands on request.
 */
#define _GNU_SOURCE
#include "supervisor-internal.h"
#include "control.h"
#include "events.h"

#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

/* ---- control requests -------------------------------------------------------------- */

static json_t *stats_json(struct warden_supervisor *sv)
{
	(void)warden_sandbox_sample(sv->sb, &sv->last);
	sv_read_counts(sv, true);
	json_t *o = sv_sample_fields(json_pack("{s:s, s:s, s:b}", "sandbox", sv->sb->id, "policy",
	                                       sv->plan->policy->name, "frozen", sv->frozen),
	                             &sv->last);
	json_object_set_new(
	    o, "wall_ms",
	    json_integer((json_int_t)((now_ns(CLOCK_MONOTONIC) - sv->start_ns) / 1000000)));
	if (sv->have_counts) {
		uint64_t total = 0;
		for (size_t i = 0; i < WARDEN_TEL_NR_MAX; i++)
			total += sv->counts.syscalls[i];
		json_object_set_new(o, "syscalls", json_integer((json_int_t)total));
		json_object_set_new(o, "refused",
		                    json_integer((json_int_t)sv_refused_total(&sv->counts)));
		json_object_set_new(o, "execs", json_integer((json_int_t)sv->counts.execs));
		json_object_set_new(o, "forks", json_integer((json_int_t)sv->counts.forks));
		json_object_set_new(o, "events", json_integer((json_int_t)sv->counts.events));
		json_object_set_new(o, "drops", json_integer((json_int_t)sv->counts.drops));
	}
	return o;
}

static void control_action(struct warden_supervisor *sv, const char *op, uid_t peer, json_t *reply)
{
	_cleanup_error_ struct warden_error *e = NULL;
	int r = 0;
	if (streq(op, "freeze")) {
		r = warden_sandbox_freeze(sv->sb, true, &e);
		sv->frozen = r == 0 || sv->frozen;
	} else if (streq(op, "thaw")) {
		r = warden_sandbox_freeze(sv->sb, false, &e);
		sv->frozen = r < 0 && sv->frozen;
	} else {
		sv->killing = true;
		r = warden_sandbox_kill(sv->sb, &e);
	}
	json_t *ev = warden_event_new(sv->sb->id, op, 0);
	json_object_set_new(ev, "by", json_string("control"));
	json_object_set_new(ev, "peer_uid", json_integer(peer));
	if (r < 0)
		json_object_set_new(ev, "error", json_string(warden_error_text(e)));
	sv_emit(sv, ev);
	_cleanup_free_ char *kind = xasprintf("sandbox.%s", op);
	sv_audit(sv, kind,
	         json_pack("{s:s, s:i, s:s}", "by", "control", "peer_uid", (int)peer, "result",
	                   r < 0 ? warden_error_text(e) : "done"));
	sv_audit_commit(sv);
	json_object_set_new(reply, "ok", json_boolean(r == 0));
	if (r < 0)
		json_object_set_new(reply, "error", json_string(warden_error_text(e)));
}

/* ---- commands on request (service sandboxes) ---------------------------------------- */

static void send_json(int conn, json_t *msg)
{
	char *out = json_dumps(msg, JSON_COMPACT);
	if (out)
		(void)!send(conn, out, strlen(out), MSG_NOSIGNAL | MSG_DONTWAIT);
	free(out);
	json_decref(msg);
}

/* {"ok":true} with the sandbox's root directory attached (an O_PATH descriptor): files
 * are reached through it with openat2(RESOLVE_IN_ROOT), as the sandbox's user. */
static void send_root(int conn, int root_fd)
{
	static const char ok[] = "{\"ok\":true}";
	(void)send_with_fds(conn, ok, sizeof(ok) - 1, &root_fd, 1, MSG_DONTWAIT);
}

static struct pending_exec *find_exec(struct warden_supervisor *sv, uint32_t id)
{
	for (size_t i = 0; i < sv->n_execs; i++)
		if (sv->execs[i].id == id)
			return &sv->execs[i];
	return NULL;
}

void sv_exec_done(struct warden_supervisor *sv, struct pending_exec *pe, json_t *msg)
{
	send_json(pe->conn, msg);
	close(pe->conn);
	*pe = sv->execs[--sv->n_execs];
}

void sv_on_exec_event(struct warden_supervisor *sv, const struct warden_event *ev)
{
	struct pending_exec *pe = find_exec(sv, ev->exec_id);
	if (ev->kind == WARDEN_EVENT_EXEC_STARTED) {
		if (pe)
			send_json(pe->conn, json_pack("{s:b, s:I, s:i}", "ok", 1, "exec",
			                              (json_int_t)ev->exec_id, "pid", ev->pid));
		return;
	}
	const char *why = ev->errnum ? strerror(ev->errnum) : NULL;
	_cleanup_free_ char *error = ev->text[0] && why ? xasprintf("%s: %s", ev->text, why)
	                             : ev->text[0]      ? xstrdup(ev->text)
	                             : why              ? xstrdup(why)
	                                                : NULL;
	sv_audit(sv, "sandbox.exec.exit",
	         json_pack("{s:I, s:i, s:s*}", "exec", (json_int_t)ev->exec_id, "status", ev->code,
	                   "error", error));
	sv_audit_commit(sv);
	if (!pe)
		return;
	if (error) /* it never started: the requester still gets its start reply first */
		send_json(pe->conn, json_pack("{s:b, s:I, s:i}", "ok", 1, "exec",
		                              (json_int_t)ev->exec_id, "pid", 0));
	sv_exec_done(sv, pe, json_pack("{s:i, s:s*}", "exit", ev->code, "error", error));
}

/* The strings of a JSON array (NULL if v is not an array of at most max strings without
 * NUL). */
static bool json_strv(const json_t *v, size_t max, struct strv *out)
{
	size_t i;
	json_t *s;
	if (!json_is_array(v) || json_array_size(v) > max)
		return false;
	json_array_foreach(v, i, s)
	{
		if (!json_is_string(s) || strlen(json_string_value(s)) != json_string_length(s))
			return false;
		strv_push(out, json_string_value(s));
	}
	return true;
}

/* {"op":"exec","argv":[...],"env":["K=V",...],"workdir":"/abs"} with stdin, stdout and
 * stderr attached. The command starts only once its audit record is on disk. Returns the
 * error for the requester, or NULL once the connection is taken (pending). */
static const char *control_exec(struct warden_supervisor *sv, int *conn, const json_t *req,
                                int *fds, size_t nfds, uid_t peer, char *why, size_t why_len)
{
	struct strv argv = {0}, env = {0};
	const json_t *e = json_object_get(req, "env"), *w = json_object_get(req, "workdir");
	const char *workdir = json_string_value(w);
	const char *bad = NULL;
	_cleanup_error_ struct warden_error *err = NULL;
	if (!sv->service)
		bad = "exec: this sandbox runs one command (started by warden run)";
	else if (sv->frozen)
		bad = "exec: the sandbox is paused";
	else if (nfds != 3)
		bad = "exec: attach exactly 3 descriptors (stdin, stdout, stderr)";
	else if (!json_strv(json_object_get(req, "argv"), 4096, &argv) || !argv.n)
		bad = "exec: \"argv\" must be a non-empty array of strings";
	else if (e && !json_strv(e, 4096, &env))
		bad = "exec: \"env\" must be an array of NAME=VALUE strings";
	else if (w && (!workdir || !path_is_normal_absolute(workdir)))
		bad = "exec: \"workdir\" must be an absolute, normalized path";
	else if (sv->n_execs == MAX_PENDING_EXECS)
		bad = "exec: too many commands running";
	for (size_t i = 0; !bad && i < env.n; i++) {
		_cleanup_free_ char *name = strndup(env.v[i], strcspn(env.v[i], "="));
		if (!strchr(env.v[i], '=') || !warden_env_name_valid(name))
			bad = "exec: \"env\" must be an array of NAME=VALUE strings";
	}
	if (!bad) {
		uint32_t id = ++sv->next_exec;
		sv_audit(sv, "sandbox.exec",
		         json_pack("{s:I, s:o, s:s, s:s, s:i}", "exec", (json_int_t)id, "argv",
		                   sv_strv_json(argv.v), "workdir",
		                   workdir ? workdir : sv->plan->workdir, "by", "control",
		                   "peer_uid", (int)peer));
		struct warden_exec x = {.argv = argv.v,
		                        .env = env.v,
		                        .workdir = workdir,
		                        .stdio = {fds[0], fds[1], fds[2]}};
		if (sv_audit_commit(sv), warden_sandbox_exec(sv->sb, id, &x, &err) < 0) {
			snprintf(why, why_len, "exec: %s", warden_error_text(err));
			bad = why;
		} else {
			sv->execs = xrealloc(sv->execs, (sv->n_execs + 1) * sizeof(*sv->execs));
			sv->execs[sv->n_execs++] = (struct pending_exec){id, *conn};
			*conn = -1;
		}
	}
	strv_clear(&argv);
	strv_clear(&env);
	return bad;
}

static void control_info(struct warden_supervisor *sv, json_t *reply)
{
	const struct warden_plan *plan = sv->plan;
	const struct warden_policy *p = plan->policy;
	/* The sandbox user as the host sees it: what files made from outside must belong to. */
	unsigned uid = plan->rootless ? (unsigned)plan->caller_uid : plan->host_base + p->uid;
	unsigned gid = plan->rootless ? (unsigned)plan->caller_gid : plan->host_base + p->gid;
	json_object_update(reply, json_pack("{s:b, s:s, s:s, s:i, s:I, s:I, s:b, s:b, s:i}", "ok",
	                                    1, "sandbox", sv->sb->id, "policy", p->name, "init_pid",
	                                    (int)sv->sb->init_pid, "uid", (json_int_t)uid, "gid",
	                                    (json_int_t)gid, "service", sv->service, "frozen",
	                                    sv->frozen, "supervisor_pid", (int)getpid()));
}

static const char *fmt(char *buf, size_t len, const char *f, ...)
    __attribute__((format(printf, 3, 4)));
static const char *fmt(char *buf, size_t len, const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	vsnprintf(buf, len, f, ap);
	va_end(ap);
	return buf;
}

/* One request per connection (an exec's connection stays open until its command ends):
 * {"op": "info"|"root"|"stats"|"freeze"|"thaw"|"kill"|"destroy"|"exec"|"signal", ...}. Only the
 * supervisor's own user (or root) is answered: the socket's directory is theirs, and the
 * peer's credentials are checked again here. */
void sv_handle_control(struct warden_supervisor *sv)
{
	int fd = accept4(sv->control_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	_cleanup_close_ int conn = fd;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	_cleanup_free_ char *buf = xmalloc(WARDEN_CONTROL_MSG_MAX + 1);
	char why[600];
	int fds[3];
	size_t nfds = 0;
	struct timeval tv = {.tv_sec = 1};
	setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
	    (cred.uid != 0 && cred.uid != geteuid()))
		return;
	ssize_t n = warden_control_recvmsg(conn, buf, WARDEN_CONTROL_MSG_MAX, 0, fds,
	                                   ARRAY_SIZE(fds), &nfds);
	size_t kept = nfds < ARRAY_SIZE(fds) ? nfds : ARRAY_SIZE(fds);
	json_t *req = n > 0 ? (buf[n] = '\0', json_loads(buf, 0, NULL)) : NULL;
	const char *op = req ? json_string_value(json_object_get(req, "op")) : NULL;
	json_t *reply = json_object();
	const char *bad = NULL;
	if (n <= 0) {
		bad = "a request is one JSON object of at most 64 KiB";
	} else if (!op) {
		bad = "expected {\"op\": \"info\"|\"stats\"|\"freeze\"|\"thaw\"|\"kill\"|"
		      "\"destroy\"|\"exec\"|\"signal\"}";
	} else if (streq(op, "exec")) {
		bad = control_exec(sv, &conn, req, fds, nfds, cred.uid, why, sizeof(why));
	} else if (nfds) {
		bad = "only exec takes descriptors";
	} else if (streq(op, "info")) {
		control_info(sv, reply);
	} else if (streq(op, "root") && sv->sb->root_fd >= 0) {
		send_root(conn, sv->sb->root_fd);
		json_decref(reply);
		json_decref(req);
		return;
	} else if (streq(op, "stats")) {
		json_object_set_new(reply, "ok", json_true());
		json_object_set_new(reply, "stats", stats_json(sv));
	} else if (streq(op, "signal")) {
		json_int_t id = json_integer_value(json_object_get(req, "exec"));
		json_int_t sig = json_integer_value(json_object_get(req, "signal"));
		_cleanup_error_ struct warden_error *e = NULL;
		if (!find_exec(sv, (uint32_t)id) || id <= 0 || id > UINT32_MAX)
			bad = "signal: no running command with that \"exec\" id";
		else if (sig < 1 || sig >= NSIG)
			bad = "signal: \"signal\" must be a signal number";
		else if (warden_sandbox_exec_signal(sv->sb, (uint32_t)id, (int)sig, &e) < 0)
			bad = fmt(why, sizeof(why), "signal: %s", warden_error_text(e));
		else
			json_object_set_new(reply, "ok", json_true());
	} else if (streq(op, "freeze") || streq(op, "thaw") || streq(op, "kill")) {
		control_action(sv, op, cred.uid, reply);
	} else if (streq(op, "destroy")) {
		control_action(sv, "kill", cred.uid, reply);
	} else {
		bad = fmt(why, sizeof(why), "unknown op \"%.64s\"", op);
	}
	if (bad) {
		json_object_set_new(reply, "ok", json_false());
		json_object_set_new(reply, "error", json_string(bad));
	}
	for (size_t i = 0; i < kept; i++)
		close(fds[i]); /* init got its own copies */
	if (conn >= 0)
		send_json(conn, reply);
	else
		json_decref(reply); /* an exec under way: its replies come with its events */
	json_decref(req);
}

int sv_open_control(struct warden_supervisor *sv, struct warden_error **err)
{
	_cleanup_free_ char *dir = warden_control_dir(true, err);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (!dir)
		return -1;
	/* Bound under a temporary name and renamed once listening: a socket under its final
	 * name that refuses connections is a stale one, which readers may remove. */
	_cleanup_free_ char *tmp = xasprintf("%s/%s.sock.new", dir, sv->sb->id);
	if (strlen(tmp) >= sizeof(sa.sun_path))
		return warden_error_set(err, ENAMETOOLONG, "control socket %s", tmp);
	strcpy(sa.sun_path, tmp);
	sv->control_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	mode_t old = umask(0077);
	int r = sv->control_fd < 0 ? -1 : bind(sv->control_fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || listen(sv->control_fd, 8) < 0)
		return warden_error_set(err, errno, "control socket %s", tmp);
	sv->control_path = xasprintf("%s/%s.sock", dir, sv->sb->id);
	if (rename(tmp, sv->control_path) < 0) {
		int e = errno;
		unlink(tmp);
		return warden_error_set(err, e, "control socket %s", sv->control_path);
	}
	return 0;
}
