/* guard.c: guardrail rules -> actions.
 *
 * Sections: names; networks (parse, match, format); rule lists; the engine.
 *
 * The engine only decides: it is fed what the sandbox did (exec and connect events as
 * they arrive, metric samples every few tens of milliseconds) and returns the rules that
 * fired with their evidence. The supervisor acts (kill, freeze), records the decision in
 * the audit log and reports it. Event rules fire on every matching event; threshold
 * rules fire once, when first crossed.
 */
#define _GNU_SOURCE
#include "guard.h"

#include <arpa/inet.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <sys/socket.h>

const char *const warden_guard_cond_names[WARDEN_GUARD_COND_MAX] = {
    "exec",
    "exec_outside",
    "connect_to",
    "memory_peak_above",
    "pids_above",
    "refused_syscalls_above",
    "cpu_time_above",
    "wall_time_above",
    "gpu_memory_above",
};

const char *const warden_guard_action_names[WARDEN_GUARD_ACTION_MAX] = {"log", "alert", "kill",
                                                                        "freeze"};

/* ---- networks ---------------------------------------------------------------------- */

int warden_net_parse(const char *s, struct warden_net *ret, const char **ret_why)
{
	char host[64];
	const char *rest;
	memset(ret, 0, sizeof(*ret));
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (!end || (size_t)(end - s - 1) >= sizeof(host)) {
			*ret_why = "unterminated [IPv6 address]";
			return -1;
		}
		memcpy(host, s + 1, (size_t)(end - s - 1));
		host[end - s - 1] = '\0';
		rest = end + 1;
	} else {
		size_t n = strcspn(s, "/:");
		/* a bare IPv6 address has colons of its own: no port without brackets */
		if (s[n] == ':' && strchr(s + n + 1, ':'))
			n = strcspn(s, "/");
		if (n >= sizeof(host)) {
			*ret_why = "address too long";
			return -1;
		}
		memcpy(host, s, n);
		host[n] = '\0';
		rest = s + n;
	}
	if (streq(host, "*")) {
		ret->family = AF_UNSPEC;
	} else if (inet_pton(AF_INET, host, ret->addr) == 1) {
		ret->family = AF_INET;
		ret->prefix = 32;
	} else if (inet_pton(AF_INET6, host, ret->addr) == 1) {
		ret->family = AF_INET6;
		ret->prefix = 128;
	} else {
		*ret_why = "not an IP address, a network or *";
		return -1;
	}
	uint64_t v;
	if (*rest == '/') {
		const char *end = strchrnul(rest + 1, ':');
		_cleanup_free_ char *num = strndup(rest + 1, (size_t)(end - rest - 1));
		unsigned max = ret->family == AF_INET ? 32 : 128;
		if (ret->family == AF_UNSPEC || parse_uint(num, max, &v, ret_why) < 0) {
			*ret_why = "bad prefix length";
			return -1;
		}
		ret->prefix = (unsigned)v;
		rest = end;
	}
	if (*rest == ':') {
		if (parse_uint(rest + 1, 65535, &v, ret_why) < 0 || v == 0) {
			*ret_why = "bad port";
			return -1;
		}
		ret->port = (uint16_t)v;
		rest = "";
	}
	if (*rest) {
		*ret_why = "unexpected characters after the address";
		return -1;
	}
	if (ret->family == AF_UNSPEC && !ret->port) {
		*ret_why = "* needs a port (*:PORT)";
		return -1;
	}
	return 0;
}

bool warden_net_match(const struct warden_net *net, int family, const uint8_t *addr, uint16_t port)
{
	if (net->port && net->port != port)
		return false;
	if (net->family == AF_UNSPEC)
		return true;
	if (net->family != family)
		return false;
	unsigned full = net->prefix / 8, bits = net->prefix % 8;
	if (memcmp(net->addr, addr, full) != 0)
		return false;
	if (bits) {
		uint8_t mask = (uint8_t)(0xff << (8 - bits));
		if ((net->addr[full] & mask) != (addr[full] & mask))
			return false;
	}
	return true;
}

void warden_net_format(const struct warden_net *net, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "*", prefix[8] = "", port[8] = "";
	if (net->family != AF_UNSPEC)
		inet_ntop(net->family, net->addr, host, sizeof(host));
	if (net->family != AF_UNSPEC && net->prefix != (net->family == AF_INET ? 32U : 128U))
		snprintf(prefix, sizeof(prefix), "/%u", net->prefix);
	if (net->port)
		snprintf(port, sizeof(port), ":%u", net->port);
	if (net->family == AF_INET6 && net->port)
		snprintf(buf, len, "[%s]%s%s", host, prefix, port);
	else
		snprintf(buf, len, "%s%s%s", host, prefix, port);
}

/* ---- rule lists -------------------------------------------------------------------- */

void warden_guards_clear(struct warden_guards *g)
{
	for (size_t i = 0; i < g->n; i++) {
		free(g->v[i].name);
		strv_clear(&g->v[i].patterns);
		free(g->v[i].nets);
	}
	free(g->v);
	g->v = NULL;
	g->n = 0;
}

void warden_guards_copy(struct warden_guards *dst, const struct warden_guards *src)
{
	warden_guards_clear(dst);
	dst->v = xcalloc(src->n ? src->n : 1, sizeof(*dst->v));
	dst->n = src->n;
	for (size_t i = 0; i < src->n; i++) {
		const struct warden_guard_rule *s = &src->v[i];
		struct warden_guard_rule *d = &dst->v[i];
		*d = *s;
		d->name = xstrdup(s->name);
		d->patterns = (struct strv){0};
		for (size_t j = 0; j < s->patterns.n; j++)
			strv_push(&d->patterns, s->patterns.v[j]);
		d->nets = xcalloc(s->n_nets ? s->n_nets : 1, sizeof(*d->nets));
		memcpy(d->nets, s->nets, s->n_nets * sizeof(*d->nets));
	}
}

/* ---- the engine -------------------------------------------------------------------- */

void warden_guard_init(struct warden_guard_engine *e, const struct warden_guards *g)
{
	e->rules = g;
	e->fired = xcalloc(g->n ? g->n : 1, sizeof(bool));
}

void warden_guard_free(struct warden_guard_engine *e)
{
	free(e->fired);
	e->fired = NULL;
}

static bool pattern_match(const char *pattern, const char *path)
{
	const char *base = strrchr(path, '/');
	/* A pattern without '/' names a program wherever it lives. */
	if (!strchr(pattern, '/'))
		return fnmatch(pattern, base ? base + 1 : path, 0) == 0;
	return fnmatch(pattern, path, 0) == 0;
}

static bool any_match(const struct strv *patterns, const char *path)
{
	for (size_t i = 0; i < patterns->n; i++)
		if (pattern_match(patterns->v[i], path))
			return true;
	return false;
}

static size_t hit(struct warden_guard_hit *hits, size_t n, size_t max,
                  const struct warden_guard_rule *r, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static size_t hit(struct warden_guard_hit *hits, size_t n, size_t max,
                  const struct warden_guard_rule *r, const char *fmt, ...)
{
	if (n >= max)
		return n;
	va_list ap;
	hits[n].rule = r;
	va_start(ap, fmt);
	vsnprintf(hits[n].evidence, sizeof(hits[n].evidence), fmt, ap);
	va_end(ap);
	return n + 1;
}

size_t warden_guard_on_exec(struct warden_guard_engine *e, const char *path,
                            struct warden_guard_hit *hits, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < e->rules->n; i++) {
		const struct warden_guard_rule *r = &e->rules->v[i];
		if (r->cond == WARDEN_GUARD_EXEC && any_match(&r->patterns, path))
			n = hit(hits, n, max, r, "exec of %s", path);
		else if (r->cond == WARDEN_GUARD_EXEC_OUTSIDE && !any_match(&r->patterns, path))
			n = hit(hits, n, max, r, "exec of %s, outside the allowed programs", path);
	}
	return n;
}

size_t warden_guard_on_connect(struct warden_guard_engine *e, int family, const uint8_t *addr,
                               uint16_t port, struct warden_guard_hit *hits, size_t max)
{
	size_t n = 0;
	char host[INET6_ADDRSTRLEN] = "?";
	if (family == AF_INET || family == AF_INET6)
		inet_ntop(family, addr, host, sizeof(host));
	for (size_t i = 0; i < e->rules->n; i++) {
		const struct warden_guard_rule *r = &e->rules->v[i];
		if (r->cond != WARDEN_GUARD_CONNECT_TO)
			continue;
		for (size_t j = 0; j < r->n_nets; j++)
			if (warden_net_match(&r->nets[j], family, addr, port)) {
				n = hit(hits, n, max, r,
				        family == AF_INET6 ? "connect to [%s]:%u"
				                           : "connect to %s:%u",
				        host, port);
				break;
			}
	}
	return n;
}

size_t warden_guard_on_sample(struct warden_guard_engine *e, const struct warden_guard_sample *s,
                              struct warden_guard_hit *hits, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < e->rules->n; i++) {
		const struct warden_guard_rule *r = &e->rules->v[i];
		uint64_t value;
		bool known;
		const char *what;
		switch (r->cond) {
		case WARDEN_GUARD_MEMORY_PEAK:
			value = s->memory_peak, known = s->has_memory,
			what = "peak memory %" PRIu64 " bytes, above %" PRIu64;
			break;
		case WARDEN_GUARD_PIDS:
			value = s->pids, known = s->has_pids,
			what = "%" PRIu64 " processes and threads, above %" PRIu64;
			break;
		case WARDEN_GUARD_REFUSED:
			value = s->refused, known = s->has_refused,
			what = "%" PRIu64 " refused system calls, above %" PRIu64;
			break;
		case WARDEN_GUARD_CPU_TIME:
			value = s->cpu_ms, known = s->has_cpu,
			what = "%" PRIu64 " ms of CPU time, above %" PRIu64 " ms";
			break;
		case WARDEN_GUARD_WALL_TIME:
			value = s->wall_ms, known = true,
			what = "%" PRIu64 " ms of wall time, above %" PRIu64 " ms";
			break;
		case WARDEN_GUARD_GPU_MEMORY:
			value = s->gpu_memory, known = s->has_gpu_memory,
			what = "%" PRIu64 " bytes of GPU memory, above %" PRIu64;
			break;
		default:
			continue;
		}
		if (e->fired[i] || !known || value <= r->threshold)
			continue;
		e->fired[i] = true;
		n = hit(hits, n, max, r, what, value, r->threshold);
	}
	return n;
}
