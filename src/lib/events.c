/* events.c: building events (see events.h, docs/events.md). */
#define _GNU_SOURCE
#include "events.h"
#include "util.h"

#include <arpa/inet.h>
#include <seccomp.h>
#include <sys/socket.h>
#include <time.h>

void warden_format_ts(char *buf, size_t len, uint64_t ns)
{
	struct timespec ts;
	struct tm tm;
	if (!ns) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ns = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	}
	time_t sec = (time_t)(ns / 1000000000ULL);
	gmtime_r(&sec, &tm);
	char date[32];
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%06uZ", date, (unsigned)(ns % 1000000000ULL / 1000));
}

json_t *warden_event_new(const char *sandbox, const char *kind, uint64_t ts_ns)
{
	char ts[40];
	warden_format_ts(ts, sizeof(ts), ts_ns);
	return json_pack("{s:i, s:s, s:s, s:s}", "v", WARDEN_EVENTS_VERSION, "ts", ts, "sandbox",
	                 sandbox, "kind", kind);
}

char *warden_syscall_name(int nr)
{
	char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
	return name ? name : xasprintf("syscall_%d", nr);
}

static json_t *address(uint16_t family, const uint8_t *addr)
{
	char buf[INET6_ADDRSTRLEN] = "";
	if (family == AF_INET || family == AF_INET6)
		inet_ntop(family, addr, buf, sizeof(buf));
	return json_string(buf);
}

static json_t *process_fields(json_t *ev, const struct warden_tel_event *e)
{
	json_object_set_new(ev, "pid", json_integer(e->pid));
	json_object_set_new(ev, "host_pid", json_integer(e->host_pid));
	json_object_set_new(ev, "comm", json_stringn(e->comm, strnlen(e->comm, sizeof(e->comm))));
	return ev;
}

json_t *warden_event_from_tel(const char *sandbox, const struct warden_tel_event *e)
{
	static const char *const kinds[WARDEN_TEL_KIND_MAX] = {"exec", "exit", "connect", "refused",
	                                                       "oom"};
	static const char *const layers[WARDEN_TEL_LAYER_MAX] = {"seccomp", "landlock"};
	if ((unsigned)e->kind >= WARDEN_TEL_KIND_MAX)
		return NULL;
	json_t *ev = process_fields(warden_event_new(sandbox, kinds[e->kind], e->ts_ns), e);
	switch (e->kind) {
	case WARDEN_TEL_EXEC: {
		json_t *argv = json_array();
		for (uint32_t i = 0; i < e->exec.argc && i < WARDEN_TEL_ARGS; i++)
			json_array_append_new(
			    argv, json_stringn(e->exec.argv[i],
			                       strnlen(e->exec.argv[i], WARDEN_TEL_ARG_MAX)));
		json_object_set_new(ev, "ppid", json_integer(e->ppid));
		json_object_set_new(ev, "uid", json_integer(e->uid));
		json_object_set_new(
		    ev, "path",
		    json_stringn(e->exec.path, strnlen(e->exec.path, WARDEN_TEL_PATH_MAX)));
		json_object_set_new(ev, "argv", argv);
		json_object_set_new(ev, "argc", json_integer(e->exec.argc));
		break;
	}
	case WARDEN_TEL_EXIT:
		json_object_set_new(ev, "code", json_integer(e->exit.code));
		json_object_set_new(ev, "signal", json_integer(e->exit.signal));
		break;
	case WARDEN_TEL_CONNECT:
		json_object_set_new(ev, "family",
		                    json_string(e->connect.family == AF_INET    ? "inet"
		                                : e->connect.family == AF_INET6 ? "inet6"
		                                : e->connect.family == AF_UNIX  ? "unix"
		                                                                : "other"));
		if (e->connect.family == AF_UNIX)
			json_object_set_new(
			    ev, "path",
			    json_stringn(e->connect.path,
			                 strnlen(e->connect.path, sizeof(e->connect.path))));
		else {
			json_object_set_new(ev, "address",
			                    address(e->connect.family, e->connect.addr));
			json_object_set_new(ev, "port", json_integer(e->connect.port));
		}
		json_object_set_new(ev, "result", json_integer(e->connect.ret));
		break;
	case WARDEN_TEL_REFUSED: {
		_cleanup_free_ char *name = warden_syscall_name(e->refused.nr);
		json_object_set_new(ev, "syscall", json_string(name));
		json_object_set_new(ev, "nr", json_integer(e->refused.nr));
		json_object_set_new(ev, "errno", json_integer(e->refused.err));
		json_object_set_new(ev, "layer",
		                    json_string((unsigned)e->refused.layer < WARDEN_TEL_LAYER_MAX
		                                    ? layers[e->refused.layer]
		                                    : "unknown"));
		json_object_set_new(ev, "count", json_integer((json_int_t)e->refused.count));
		break;
	}
	case WARDEN_TEL_OOM:
		json_object_set_new(ev, "victim_pid", json_integer(e->oom.victim_pid));
		break;
	default:
		break;
	}
	return ev;
}
