/* egress-sni.c: the server name of a TLS ClientHello, read by OpenSSL.
 *
 * An SSL server object on memory BIOs is fed the client's first bytes; OpenSSL parses
 * the records and the ClientHello, and the ClientHello callback takes the server_name
 * extension and stops the handshake there. The bytes themselves are never changed: the
 * caller forwards its own copy to the origin, which does the real handshake.
 */
#define _GNU_SOURCE
#include "egress-internal.h"

#include <openssl/err.h>

struct sni {
	SSL *ssl;
	BIO *in;
	bool done, malformed;
	bool has_name;
	char name[256];
};

/* RFC 6066 section 3: ServerNameList = length(2) { NameType(1) HostName = length(2) name };
 * exactly one host_name entry, as OpenSSL itself requires of a server name extension. */
static void take_name(struct sni *s, const unsigned char *p, size_t len)
{
	size_t name_len;
	if (len < 5 || (size_t)(p[0] << 8 | p[1]) != len - 2 || p[2] != TLSEXT_NAMETYPE_host_name) {
		s->malformed = true;
		return;
	}
	name_len = (size_t)(p[3] << 8 | p[4]);
	if (name_len != len - 5 || name_len == 0 || name_len >= sizeof(s->name) ||
	    memchr(p + 5, '\0', name_len)) {
		s->malformed = true;
		return;
	}
	memcpy(s->name, p + 5, name_len);
	s->name[name_len] = '\0';
	s->has_name = true;
}

static int client_hello(SSL *ssl, int *alert _unused_, void *arg _unused_)
{
	struct sni *s = SSL_get_app_data(ssl);
	const unsigned char *p;
	size_t len;
	s->done = true;
	if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len))
		take_name(s, p, len);
	/* stop here: this is not the TLS endpoint, the origin is */
	return SSL_CLIENT_HELLO_RETRY;
}

SSL_CTX *sni_ctx_new(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		return NULL;
	/* any version a client offers is parsed: the origin decides what it speaks */
	SSL_CTX_set_min_proto_version(ctx, 0);
	SSL_CTX_set_client_hello_cb(ctx, client_hello, NULL);
	return ctx;
}

struct sni *sni_new(SSL_CTX *ctx)
{
	struct sni *s = xcalloc(1, sizeof(*s));
	BIO *out;
	s->ssl = SSL_new(ctx);
	s->in = BIO_new(BIO_s_mem());
	out = BIO_new(BIO_s_mem());
	if (!s->ssl || !s->in || !out)
		abort();                   /* memory: as xmalloc() */
	BIO_set_mem_eof_return(s->in, -1); /* no more bytes yet: "retry", not end of file */
	SSL_set_bio(s->ssl, s->in, out);
	SSL_set_app_data(s->ssl, s);
	SSL_set_accept_state(s->ssl);
	return s;
}

int sni_feed(struct sni *s, const uint8_t *p, size_t n, const char **ret_name, const char **ret_why)
{
	if (n > 0 && BIO_write(s->in, p, (int)n) != (int)n)
		abort();
	int r = SSL_do_handshake(s->ssl);
	int e = SSL_get_error(s->ssl, r);
	/* OpenSSL's error queue belongs to the thread, and so to whatever else speaks TLS on
	 * it: leave it empty */
	ERR_clear_error();
	if (s->done) {
		if (s->malformed) {
			*ret_why = "malformed TLS server name extension";
			return SNI_BAD;
		}
		*ret_name = s->has_name ? s->name : NULL;
		return SNI_DONE;
	}
	if (e == SSL_ERROR_WANT_READ)
		return SNI_MORE;
	*ret_why = "not a TLS ClientHello";
	return SNI_BAD;
}

void sni_free(struct sni *s)
{
	if (!s)
		return;
	SSL_free(s->ssl);
	free(s);
}
