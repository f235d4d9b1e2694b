/* egress-socks.c: the SOCKS5 proxy (RFC 1928): no authentication, CONNECT only, to an
 * IPv4 or IPv6 address or a domain name.
 *
 * Sections: the parsers (pure: tests/fuzz/fuzz_socks.c calls them); the front end.
 */
#define _GNU_SOURCE
#include "egress-internal.h"

#include <errno.h>

#define SOCKS_VERSION      5
#define SOCKS_NO_AUTH      0x00
#define SOCKS_CONNECT      0x01
#define SOCKS_IPV4         0x01
#define SOCKS_DOMAIN       0x03
#define SOCKS_IPV6         0x04
#define SOCKS_GREETING_MAX (2 + 255)
#define SOCKS_REQUEST_MAX  (4 + 1 + 255 + 2)

/* ---- the parsers ----------------------------------------------------------------------- */

int socks_greeting(const uint8_t *p, size_t n, size_t *ret_used, const char **ret_why)
{
	if (n >= 1 && p[0] != SOCKS_VERSION) {
		*ret_why = "not SOCKS version 5";
		return SOCKS_BAD;
	}
	if (n < 2 || n < 2 + (size_t)p[1])
		return SOCKS_MORE;
	*ret_used = 2 + (size_t)p[1];
	/* Username/password (RFC 1929) would only protect a socket nobody but the sandbox can
	 * reach: the one method served is "no authentication". */
	if (!memchr(p + 2, SOCKS_NO_AUTH, p[1])) {
		*ret_why =
		    "the client does not offer \"no authentication\", the only method served";
		return SOCKS_NO_METHOD;
	}
	return SOCKS_DONE;
}

int socks_request(const uint8_t *p, size_t n, struct socks_request *ret, size_t *ret_used,
                  const char **ret_why)
{
	memset(ret, 0, sizeof(*ret));
	ret->rep = SOCKS_REP_FAILURE;
	if (n >= 1 && p[0] != SOCKS_VERSION) {
		*ret_why = "not SOCKS version 5";
		return SOCKS_BAD;
	}
	if (n >= 2 && p[1] != SOCKS_CONNECT) {
		/* BIND and UDP ASSOCIATE would open the sandbox to inbound connections and to
		 * datagrams no rule could follow */
		ret->rep = SOCKS_REP_COMMAND;
		*ret_why = "only CONNECT is served (not BIND, not UDP ASSOCIATE)";
		return SOCKS_BAD;
	}
	if (n >= 3 && p[2] != 0) {
		*ret_why = "reserved byte is not 0";
		return SOCKS_BAD;
	}
	if (n < 5)
		return SOCKS_MORE;
	size_t addr_len;
	switch (p[3]) {
	case SOCKS_IPV4:
		addr_len = 4;
		break;
	case SOCKS_IPV6:
		addr_len = 16;
		break;
	case SOCKS_DOMAIN:
		if (p[4] == 0) {
			*ret_why = "empty domain name";
			return SOCKS_BAD;
		}
		addr_len = 1 + (size_t)p[4];
		break;
	default:
		ret->rep = SOCKS_REP_ADDR_TYPE;
		*ret_why = "address type not supported";
		return SOCKS_BAD;
	}
	size_t total = 4 + addr_len + 2;
	if (n < total)
		return SOCKS_MORE;
	if (p[3] == SOCKS_DOMAIN) {
		if (memchr(p + 5, '\0', p[4])) {
			*ret_why = "NUL byte in the domain name";
			return SOCKS_BAD;
		}
		memcpy(ret->host, p + 5, p[4]);
		ret->host[p[4]] = '\0';
	} else {
		inet_ntop(p[3] == SOCKS_IPV4 ? AF_INET : AF_INET6, p + 4, ret->host,
		          sizeof(ret->host));
	}
	ret->port = (uint16_t)(p[total - 2] << 8 | p[total - 1]);
	*ret_used = total;
	return SOCKS_DONE;
}

/* ---- the front end --------------------------------------------------------------------- */

/* BND.ADDR and BND.PORT are always 0.0.0.0:0: the host's own address is none of the
 * sandbox's business, and a CONNECT client has no use for it. */
static void reply(struct egress_conn *c, uint8_t rep)
{
	const uint8_t r[10] = {SOCKS_VERSION, rep, 0, SOCKS_IPV4};
	bufferevent_write(c->client, r, sizeof(r));
}

static void socks_read(struct egress_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->client);
	struct socks_request req;
	size_t used, len = evbuffer_get_length(in);
	const char *why;
	if (!c->socks_greeted) {
		size_t n = len < SOCKS_GREETING_MAX ? len : SOCKS_GREETING_MAX;
		int r = socks_greeting(evbuffer_pullup(in, (ssize_t)n), n, &used, &why);
		if (r == SOCKS_MORE)
			return;
		if (r != SOCKS_DONE) {
			static const uint8_t none[2] = {SOCKS_VERSION, 0xff};
			if (r == SOCKS_NO_METHOD)
				bufferevent_write(c->client, none, sizeof(none));
			egress_close(c);
			return;
		}
		static const uint8_t no_auth[2] = {SOCKS_VERSION, SOCKS_NO_AUTH};
		bufferevent_write(c->client, no_auth, sizeof(no_auth));
		evbuffer_drain(in, used);
		c->socks_greeted = true;
		len -= used;
	}
	if (len == 0)
		return;
	size_t n = len < SOCKS_REQUEST_MAX ? len : SOCKS_REQUEST_MAX;
	int r = socks_request(evbuffer_pullup(in, (ssize_t)n), n, &req, &used, &why);
	if (r == SOCKS_MORE)
		return;
	if (r != SOCKS_DONE) {
		reply(c, req.rep);
		egress_close(c);
		return;
	}
	/* what follows is the client's first bytes for the destination: kept for it */
	evbuffer_drain(in, used);
	egress_dest(c, "socks5", req.host, req.port);
}

static void socks_open(struct egress_conn *c)
{
	reply(c, SOCKS_REP_OK);
}

static uint8_t connect_rep(int error)
{
	switch (error) {
	case ECONNREFUSED:
		return SOCKS_REP_REFUSED;
	case ENETUNREACH:
		return SOCKS_REP_NET_UNREACH;
	case EHOSTUNREACH:
		return SOCKS_REP_UNREACHABLE;
	default:
		return SOCKS_REP_FAILURE;
	}
}

static void socks_fail(struct egress_conn *c, enum egress_fail f, const char *reason _unused_,
                       const char *rule _unused_)
{
	/* a tunnel already open, a client still greeting or one too slow to ask: no reply
	 * fits, closing says it */
	if (c->opened || !c->socks_greeted || f == EGRESS_FAIL_REQUEST_TIMEOUT)
		return;
	switch (f) {
	case EGRESS_FAIL_REFUSED:
		reply(c, SOCKS_REP_NOT_ALLOWED);
		return;
	case EGRESS_FAIL_UNRESOLVED:
	case EGRESS_FAIL_TIMEOUT:
		reply(c, SOCKS_REP_UNREACHABLE);
		return;
	case EGRESS_FAIL_UNREACHABLE:
		reply(c, connect_rep(c->error));
		return;
	case EGRESS_FAIL_BAD_REQUEST:
	case EGRESS_FAIL_REQUEST_TIMEOUT:
		reply(c, SOCKS_REP_FAILURE);
		return;
	}
}

const struct egress_proto egress_socks_proto = {
    .request = socks_read,
    .open = socks_open,
    .fail = socks_fail,
};
