/* frame.c: the host <-> guest agent frames (see frame.h, docs/guest-protocol.md).
 *
 * Sections: header and decoder; the EXEC request; the FILE request; the network. libc
 * only: linked into the static guest agent as well as libwarden.
 */
#define _GNU_SOURCE
#include "frame.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint32_t frame_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void frame_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

uint16_t frame_get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

void frame_put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

void frame_header(uint8_t out[FRAME_HEADER], uint8_t type, uint32_t id, uint32_t len)
{
	out[0] = type;
	out[1] = 0;
	out[2] = out[3] = 0;
	frame_put_u32(out + 4, id);
	frame_put_u32(out + 8, len);
}

/* The payload sizes a type allows: exact (min == max) or a range. */
static bool size_ok(uint8_t type, uint32_t len)
{
	switch (type) {
	case FRAME_SIGNAL:
	case FRAME_READY:
	case FRAME_STARTED:
	case FRAME_PING:
	case FRAME_RESIZE:
	case FRAME_PONG:
	case FRAME_OPEN:
	case FRAME_CREDIT_IN:
	case FRAME_CREDIT_OUT:
		return len == 4;
	case FRAME_EXIT:
		return len == 8;
	case FRAME_POWEROFF:
	case FRAME_CLOSE_IN:
	case FRAME_CLOSE_OUT:
		return len == 0;
	case FRAME_LISTEN:
		return len && len <= FRAME_NET_LISTENERS * FRAME_LISTENER_SIZE &&
		       len % FRAME_LISTENER_SIZE == 0;
	case FRAME_EXEC:
	case FRAME_FILE:
	case FRAME_ERROR:
		return len >= 1;
	default:
		return true;
	}
}

static bool type_dir_ok(uint8_t type, enum frame_dir dir)
{
	if (type >= FRAME_LISTEN && type <= FRAME_CLOSE_IN)
		return dir == FRAME_TO_GUEST;
	if ((type >= FRAME_EXEC && type <= FRAME_FILE) || type == FRAME_PING ||
	    type == FRAME_RESIZE)
		return dir == FRAME_TO_GUEST;
	if (type >= FRAME_READY && type < FRAME_TYPE_MAX)
		return dir == FRAME_TO_HOST;
	return false;
}

/* The ids the network's frames may carry (id 0 is no stream). */
static const char *net_id_check(uint8_t type, uint32_t id)
{
	switch (type) {
	case FRAME_LISTEN:
		return id ? "LISTEN with a stream id" : NULL;
	case FRAME_OPEN:
	case FRAME_CREDIT_IN:
	case FRAME_CREDIT_OUT:
	case FRAME_CLOSE_IN:
	case FRAME_CLOSE_OUT:
		return id ? NULL : "stream id 0";
	default:
		return NULL;
	}
}

int frame_decode(const uint8_t *buf, size_t len, enum frame_dir dir, struct frame *ret,
                 size_t *ret_used, const char **ret_why)
{
	if (len >= 1 && !type_dir_ok(buf[0], dir)) {
		*ret_why = "unknown frame type for this direction";
		return -1;
	}
	if (len >= 4 && (buf[1] || buf[2] || buf[3])) {
		*ret_why = "nonzero flags or reserved bits";
		return -1;
	}
	if (len < FRAME_HEADER)
		return 0;
	uint32_t plen = frame_get_u32(buf + 8);
	if (plen > FRAME_MAX) {
		*ret_why = "payload larger than 64 KiB";
		return -1;
	}
	if (!size_ok(buf[0], plen)) {
		*ret_why = "payload size not allowed for this frame type";
		return -1;
	}
	const char *net_why = net_id_check(buf[0], frame_get_u32(buf + 4));
	if (net_why) {
		*ret_why = net_why;
		return -1;
	}
	if (len - FRAME_HEADER < plen)
		return 0;
	ret->type = buf[0];
	ret->id = frame_get_u32(buf + 4);
	ret->len = plen;
	ret->payload = buf + FRAME_HEADER;
	*ret_used = FRAME_HEADER + (size_t)plen;
	return 1;
}

/* ---- the EXEC request -------------------------------------------------------------- */

int frame_exec_encode(const struct frame_exec *x, uint8_t **ret_buf, size_t *ret_len,
                      const char **ret_why)
{
	char ids[2][16], size[16] = "", limits[32] = "";
	size_t n = 0, total = 0;
	snprintf(ids[0], sizeof(ids[0]), "%u", x->uid);
	snprintf(ids[1], sizeof(ids[1]), "%u", x->gid);
	if (x->tty)
		snprintf(size, sizeof(size), "%u %u", x->rows, x->cols);
	if (x->limits)
		snprintf(limits, sizeof(limits), "%u %u", x->pids, x->nofile);
	for (char *const *a = x->argv; *a; a++, n++)
		total += strlen(*a) + 2;
	for (char *const *e = x->env; e && *e; e++, n++)
		total += strlen(*e) + 2;
	total += (x->workdir ? strlen(x->workdir) + 2 : 0) + (x->tty ? strlen(size) + 2 : 0) +
	         (x->limits ? strlen(limits) + 2 : 0) + strlen(ids[0]) + strlen(ids[1]) + 4;
	if (total > FRAME_MAX || n > FRAME_EXEC_ARGS) {
		*ret_why = "arguments and environment do not fit in one 64 KiB request";
		return -1;
	}
	uint8_t *buf = malloc(total), *p = buf;
	if (!buf) {
		*ret_why = "out of memory";
		return -1;
	}
#define PUT(tag, s)                                                                                \
	do {                                                                                       \
		*p++ = (tag);                                                                      \
		size_t l_ = strlen(s) + 1;                                                         \
		memcpy(p, (s), l_);                                                                \
		p += l_;                                                                           \
	} while (0)
	for (char *const *a = x->argv; *a; a++)
		PUT('A', *a);
	for (char *const *e = x->env; e && *e; e++)
		PUT('E', *e);
	if (x->workdir)
		PUT('W', x->workdir);
	if (x->tty)
		PUT('T', size);
	if (x->limits)
		PUT('L', limits);
	PUT('U', ids[0]);
	PUT('G', ids[1]);
#undef PUT
	*ret_buf = buf;
	*ret_len = (size_t)(p - buf);
	return 0;
}

static bool env_ok(const char *s)
{
	const char *eq = strchr(s, '=');
	if (!eq || eq == s)
		return false;
	for (const char *c = s; c < eq; c++)
		if (!(*c == '_' || (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
		      (c > s && *c >= '0' && *c <= '9')))
			return false;
	return true;
}

static bool id_ok(const char *s, uint32_t *ret)
{
	unsigned long long v = 0;
	if (!*s || strlen(s) > 10)
		return false;
	for (const char *c = s; *c; c++) {
		if (*c < '0' || *c > '9')
			return false;
		v = v * 10 + (unsigned)(*c - '0');
	}
	if (v >= 0xffffffffULL)
		return false; /* (uid_t)-1 means "unchanged" to setresuid */
	*ret = (uint32_t)v;
	return true;
}

/* Two decimals separated by one space, each at most max (< 2^32). */
static bool two_numbers(const char *s, uint32_t max, uint32_t out[2])
{
	for (int i = 0; i < 2; i++, s++) {
		const char *start = s;
		uint64_t v = 0;
		for (; *s >= '0' && *s <= '9' && s - start < 10; s++)
			v = v * 10 + (unsigned)(*s - '0');
		if (s == start || v > max || *s != (i ? '\0' : ' '))
			return false;
		out[i] = (uint32_t)v;
	}
	return true;
}

void frame_exec_clear(struct frame_exec *x)
{
	free(x->argv);
	free(x->env);
	free(x->buf);
	memset(x, 0, sizeof(*x));
}

static int exec_fail(struct frame_exec *x, const char *why, const char **ret_why)
{
	frame_exec_clear(x);
	*ret_why = why;
	return -1;
}

int frame_exec_decode(const uint8_t *p, size_t len, struct frame_exec *ret, const char **ret_why)
{
	struct frame_exec x = {0};
	size_t na = 0, ne = 0;
	uint32_t v[2];
	bool have_uid = false, have_gid = false;
	if (len == 0 || len > FRAME_MAX || p[len - 1] != '\0')
		return exec_fail(&x, "request not NUL-terminated", ret_why);
	x.buf = malloc(len);
	x.argv = calloc(FRAME_EXEC_ARGS + 1, sizeof(char *));
	x.env = calloc(FRAME_EXEC_ARGS + 1, sizeof(char *));
	if (!x.buf || !x.argv || !x.env)
		return exec_fail(&x, "out of memory", ret_why);
	memcpy(x.buf, p, len);
	for (char *r = x.buf; r < x.buf + len; r += strlen(r) + 1) {
		char tag = *r++;
		if (r > x.buf + len - 1 && tag != '\0')
			return exec_fail(&x, "record without a value", ret_why);
		switch (tag) {
		case 'A':
			if (na + ne >= FRAME_EXEC_ARGS)
				return exec_fail(&x, "too many arguments", ret_why);
			x.argv[na++] = r;
			break;
		case 'E':
			if (na + ne >= FRAME_EXEC_ARGS)
				return exec_fail(&x, "too many environment entries", ret_why);
			if (!env_ok(r))
				return exec_fail(&x, "environment entry is not NAME=VALUE",
				                 ret_why);
			x.env[ne++] = r;
			break;
		case 'W':
			if (x.workdir || r[0] != '/')
				return exec_fail(&x, "working directory repeated or relative",
				                 ret_why);
			x.workdir = r;
			break;
		case 'U':
			if (have_uid || !id_ok(r, &x.uid))
				return exec_fail(&x, "uid repeated or not a number", ret_why);
			have_uid = true;
			break;
		case 'G':
			if (have_gid || !id_ok(r, &x.gid))
				return exec_fail(&x, "gid repeated or not a number", ret_why);
			have_gid = true;
			break;
		case 'T':
			if (x.tty || !two_numbers(r, 0xffff, v))
				return exec_fail(&x, "terminal size repeated or not ROWS COLS",
				                 ret_why);
			x.tty = true;
			x.rows = (uint16_t)v[0];
			x.cols = (uint16_t)v[1];
			break;
		case 'L':
			if (x.limits || !two_numbers(r, 0xffffffff, v))
				return exec_fail(&x, "limits repeated or not PIDS NOFILE", ret_why);
			x.limits = true;
			x.pids = v[0];
			x.nofile = v[1];
			break;
		default:
			return exec_fail(&x, "unknown record tag", ret_why);
		}
	}
	if (!na)
		return exec_fail(&x, "no command", ret_why);
	if (!have_uid || !have_gid)
		return exec_fail(&x, "uid or gid missing", ret_why);
	*ret = x;
	return 0;
}

/* ---- the FILE request -------------------------------------------------------------- */

int frame_file_decode(const uint8_t *p, size_t len, struct frame_file *ret, const char **ret_why)
{
	const uint8_t *end = p + len;
	const uint8_t *nul = memchr(p, '\0', len);
	if (!nul || p[0] != '/' || nul - p > 4095) {
		*ret_why = "file path missing, relative or too long";
		return -1;
	}
	const uint8_t *m = nul + 1, *mnul = memchr(m, '\0', (size_t)(end - m));
	if (!mnul || mnul == m || mnul - m > 4) {
		*ret_why = "file mode missing";
		return -1;
	}
	unsigned mode = 0;
	for (const uint8_t *c = m; c < mnul; c++) {
		if (*c < '0' || *c > '7') {
			*ret_why = "file mode is not octal";
			return -1;
		}
		mode = mode * 8 + (unsigned)(*c - '0');
	}
	ret->path = (const char *)p;
	ret->mode = mode;
	ret->data = mnul + 1;
	ret->len = (size_t)(end - ret->data);
	return 0;
}

/* ---- the network ------------------------------------------------------------------- */

void frame_listener_put(uint8_t out[FRAME_LISTENER_SIZE], const struct frame_listener *l)
{
	out[0] = l->index;
	out[1] = l->udp ? 2 : 1;
	out[2] = (uint8_t)l->port;
	out[3] = (uint8_t)(l->port >> 8);
}

int frame_listen_decode(const uint8_t *p, size_t len, struct frame_listener *ret,
                        const char **ret_why)
{
	unsigned seen = 0, udp = 0;
	size_t n = 0;
	if (len == 0 || len % FRAME_LISTENER_SIZE ||
	    len / FRAME_LISTENER_SIZE > FRAME_NET_LISTENERS) {
		*ret_why = "listeners: not whole records, or too many";
		return -1;
	}
	for (; n < len / FRAME_LISTENER_SIZE; n++, p += FRAME_LISTENER_SIZE) {
		struct frame_listener l = {
		    .index = p[0], .udp = p[1] == 2, .port = (uint16_t)(p[2] | p[3] << 8)};
		if (l.index >= FRAME_NET_LISTENERS || seen & 1u << l.index) {
			*ret_why = "listener index out of range or repeated";
			return -1;
		}
		if ((p[1] != 1 && p[1] != 2) || !l.port || (l.udp && udp++)) {
			*ret_why = "listener kind or port not allowed";
			return -1;
		}
		seen |= 1u << l.index;
		ret[n] = l;
	}
	return (int)n;
}
