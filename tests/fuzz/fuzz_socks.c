/* fuzz_socks.c: the SOCKS5 parsers (src/lib/net/egress-socks.c) on what a client may send.
 *
 * The first byte is the size of the pieces the rest arrives in (1-256); the rest is fed
 * as the front end feeds it: each time more bytes are there, the greeting, then the
 * request, is parsed from the bytes not yet used. Checks: a parser never claims more
 * bytes than it was given, answers SOCKS_MORE only when more could help, and a parsed
 * request's host is a terminated string the destination checks then take (as egress_dest
 * does).
 */
#define _GNU_SOURCE
#include "src/lib/net/egress-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_host(const struct socks_request *req)
{
	char host[256];
	struct egress_addr a;
	const char *why;
	size_t len = strnlen(req->host, sizeof(req->host));
	if (len == 0 || len == sizeof(req->host))
		__builtin_trap();
	memcpy(host, req->host, len + 1);
	egress_printable(host);
	if (!egress_parse_literal(host, &a))
		warden_egress_name_check(host, &why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = (size_t)data[0] + 1, have = 0, off = 0, used;
	bool greeted = false;
	const char *why;
	data++;
	size--;
	while (have < size) {
		have = have + step < size ? have + step : size;
		for (;;) {
			int r;
			struct socks_request req;
			used = 0;
			if (!greeted)
				r = socks_greeting(data + off, have - off, &used, &why);
			else
				r = socks_request(data + off, have - off, &req, &used, &why);
			if (r == SOCKS_MORE) {
				/* the most either message can be */
				if (have - off >= 4 + 1 + 255 + 2)
					__builtin_trap();
				break;
			}
			if (r != SOCKS_DONE) {
				if (!why || (r != SOCKS_BAD && r != SOCKS_NO_METHOD))
					__builtin_trap();
				return 0;
			}
			if (used == 0 || used > have - off)
				__builtin_trap();
			off += used;
			if (greeted) {
				check_host(&req);
				return 0;
			}
			greeted = true;
		}
	}
	return 0;
}
