/* note.c: Ed25519 keys and the signed notes that carry checkpoints (c2sp.org/signed-note,
 * c2sp.org/tlog-checkpoint). Hashes and signatures are libsodium's; OpenSSL only decodes key
 * files in a form other than the one warden writes.
 *
 * Sections: loading, making and generating keys; key IDs; signing and opening notes;
 * checkpoints.
 */
#define _GNU_SOURCE
#include "audit-internal.h"

#include <fcntl.h>
#include <inttypes.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#define KEY_FILE_MAX  (64u << 10)
#define NOTE_MAX_SIGS 100 /* the spec asks verifiers to accept at least 16 */
#define ED25519_SIG   64
static const char em_dash[] = "\xe2\x80\x94 "; /* U+2014 and a space */

/* The last OpenSSL error, for messages. */
static const char *ossl_why(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	return r ? r : "unknown OpenSSL error";
}

/* ---- keys ------------------------------------------------------------------------------ */

/* PEM's default passphrase callback asks on the terminal; a library must never do that. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* RFC 8410's encodings of an Ed25519 key, as OpenSSL and warden's keygen write them: a
 * PKCS#8 v1 private key without attributes, and a SubjectPublicKeyInfo. Each is a fixed
 * prefix and the 32 key bytes. */
static const uint8_t pkcs8_prefix[] = {0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06,
                                       0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20};
static const uint8_t spki_prefix[] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                                      0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};

/* The key bytes of pem when it is exactly one PEM block of a label holding der_prefix and
 * 32 bytes, its base64 on one line: the form every such key is written in. */
static bool pem_fixed(const char *pem, const char *label, const uint8_t *der_prefix,
                      size_t prefix_len, uint8_t raw[32])
{
	char begin[64], end[64];
	snprintf(begin, sizeof(begin), "-----BEGIN %s-----\n", label);
	snprintf(end, sizeof(end), "\n-----END %s-----\n", label);
	if (strncmp(pem, begin, strlen(begin)) != 0)
		return false;
	const char *b64 = pem + strlen(begin), *nl = strchr(b64, '\n');
	if (!nl || strcmp(nl, end) != 0)
		return false;
	uint8_t der[64];
	ssize_t n = audit_b64_decode(b64, (size_t)(nl - b64), der, sizeof(der));
	bool ok = n == (ssize_t)(prefix_len + 32) && memcmp(der, der_prefix, prefix_len) == 0;
	if (ok)
		memcpy(raw, der + prefix_len, 32);
	sodium_memzero(der, sizeof(der));
	return ok;
}

/* Any other PEM form (another PKCS#8 version, other line lengths) through OpenSSL's
 * decoders, which cost milliseconds of provider set-up: 1 if found, 0 if not a key of
 * the kind, -1 with err set for a key of another algorithm. */
static int pem_decoded(const char *pem, size_t n, bool private, const char *path, uint8_t raw[32],
                       struct warden_error **err)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)n);
	if (!bio)
		return warden_error_set(err, ENOMEM, "read audit key %s", path);
	ERR_clear_error();
	EVP_PKEY *pkey = private ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL)
	                         : PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	if (!pkey)
		return 0;
	size_t len = 32;
	int r = 1;
	if (!EVP_PKEY_is_a(pkey, "ED25519"))
		r = warden_error_set(err, 0, "%s: not an Ed25519 key", path);
	else if ((private ? EVP_PKEY_get_raw_private_key(pkey, raw, &len)
	                  : EVP_PKEY_get_raw_public_key(pkey, raw, &len)) != 1 ||
	         len != 32)
		r = warden_error_set(err, 0, "%s: cannot read the key: %s", path, ossl_why());
	EVP_PKEY_free(pkey);
	return r;
}

int audit_key_load(const char *path, bool want_private, struct audit_key *ret,
                   struct warden_error **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return warden_error_set(err, errno, "open audit key %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return warden_error_set(err, errno, "stat audit key %s", path);
	if (!S_ISREG(st.st_mode))
		return warden_error_set(err, 0, "audit key %s: not a regular file", path);
	/* Whoever can read the private key can sign checkpoints, and a signed checkpoint is
	 * what makes rewriting the log detectable: like ssh with its host keys, refuse a
	 * key that others can read rather than sign with a secret that is not one. */
	if (want_private && (st.st_mode & 0077))
		return warden_error_set(err, 0,
		                        "audit key %s is accessible to other users (mode %04o): "
		                        "chmod 600 it",
		                        path, (unsigned)(st.st_mode & 07777));
	if (st.st_size > KEY_FILE_MAX)
		return warden_error_set(err, 0, "audit key %s: larger than %u bytes", path,
		                        KEY_FILE_MAX);
	_cleanup_free_ char *pem = xmalloc((size_t)st.st_size + 1);
	ssize_t n = read(fd, pem, (size_t)st.st_size);
	if (n < 0)
		return warden_error_set(err, errno, "read audit key %s", path);
	pem[n] = '\0';
	bool has_private = strstr(pem, "PRIVATE KEY-----") != NULL;
	bool has_public = strstr(pem, "PUBLIC KEY-----") != NULL;
	bool encrypted = strstr(pem, "ENCRYPTED") != NULL;

	uint8_t raw[32];
	bool private = has_private;
	int found = 0;
	if (has_private)
		found = pem_fixed(pem, "PRIVATE KEY", pkcs8_prefix, sizeof(pkcs8_prefix), raw)
		            ? 1
		            : pem_decoded(pem, (size_t)n, true, path, raw, err);
	else if (!want_private && has_public)
		found = pem_fixed(pem, "PUBLIC KEY", spki_prefix, sizeof(spki_prefix), raw)
		            ? 1
		            : pem_decoded(pem, (size_t)n, false, path, raw, err);
	explicit_bzero(pem, (size_t)n);
	if (found < 0)
		return -1;
	if (!found) {
		if (want_private && !has_private)
			return warden_error_set(err, 0, "audit key %s: not a PEM private key",
			                        path);
		if (!has_private && !has_public)
			return warden_error_set(err, 0, "audit key %s: not a PEM key", path);
		if (encrypted)
			return warden_error_set(
			    err, 0, "audit key %s: encrypted keys are not supported", path);
		return warden_error_set(err, 0, "audit key %s: %s", path, ossl_why());
	}
	int r = audit_key_from_raw(raw, private, ret, err);
	sodium_memzero(raw, sizeof(raw));
	return r;
}

int audit_key_from_raw(const uint8_t raw[32], bool private, struct audit_key *ret,
                       struct warden_error **err)
{
	(void)err;
	*ret = (struct audit_key){.private = private};
	if (private)
		crypto_sign_ed25519_seed_keypair(ret->pub, ret->sk, raw);
	else
		memcpy(ret->pub, raw, sizeof(ret->pub));
	return 0;
}

void audit_key_clear(struct audit_key *k)
{
	sodium_memzero(k, sizeof(*k));
}

/* The PEM text of raw under label, in the fixed form pem_fixed() reads back. */
static char *pem_of(const char *label, const uint8_t *der_prefix, size_t prefix_len,
                    const uint8_t raw[32])
{
	uint8_t der[64];
	char b64[4 * ((sizeof(der) + 2) / 3) + 1];
	memcpy(der, der_prefix, prefix_len);
	memcpy(der + prefix_len, raw, 32);
	audit_b64_encode(der, prefix_len + 32, b64);
	char *out = xasprintf("-----BEGIN %s-----\n%s\n-----END %s-----\n", label, b64, label);
	sodium_memzero(der, sizeof(der));
	sodium_memzero(b64, sizeof(b64));
	return out;
}

int warden_audit_keygen(const char *path, struct warden_error **err)
{
	if (audit_crypto_init(err) < 0)
		return -1;
	_cleanup_free_ char *pub_path = xasprintf("%s.pub", path);
	if (access(pub_path, F_OK) == 0)
		return warden_error_set(err, EEXIST, "create %s", pub_path);
	if (audit_mkdir_parents(path, err) < 0)
		return -1;
	uint8_t pk[crypto_sign_ed25519_PUBLICKEYBYTES], sk[crypto_sign_ed25519_SECRETKEYBYTES];
	crypto_sign_ed25519_keypair(pk, sk);
	/* libsodium's secret key is the RFC 8032 seed followed by the public key. */
	_cleanup_free_ char *priv = pem_of("PRIVATE KEY", pkcs8_prefix, sizeof(pkcs8_prefix), sk);
	_cleanup_free_ char *pub = pem_of("PUBLIC KEY", spki_prefix, sizeof(spki_prefix), pk);
	sodium_memzero(sk, sizeof(sk));
	int r = audit_write_file(path, priv, strlen(priv), 0600, false, err);
	explicit_bzero(priv, strlen(priv));
	if (r < 0)
		return -1;
	if (audit_write_file(pub_path, pub, strlen(pub), 0644, false, err) < 0) {
		/* Leave no private key behind without the public key made with it. */
		unlink(path);
		return -1;
	}
	return 0;
}

uint32_t audit_key_id(const char *name, const uint8_t pub[32])
{
	/* c2sp.org/signed-note: SHA-256(key name || 0x0A || 0x01 || public key)[:4]. The
	 * leaf hash's 0x00 prefix does not fit here, so hash the pieces as one buffer. */
	size_t nlen = strlen(name);
	_cleanup_free_ uint8_t *buf = xmalloc(nlen + 2 + 32);
	memcpy(buf, name, nlen);
	buf[nlen] = '\n';
	buf[nlen + 1] = 0x01;
	memcpy(buf + nlen + 2, pub, 32);
	uint8_t h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, buf, nlen + 2 + 32);
	return (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
}

bool audit_key_name_ok(const char *name)
{
	if (!name || !*name)
		return false;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p <= 0x20 || *p == '+' || *p == 0x7f)
			return false;
	/* U+2014 cannot start a name, or the signature line would be ambiguous to read. */
	return strncmp(name, em_dash, 3) != 0;
}

/* ---- signing and opening notes ---------------------------------------------------------- */

char *audit_note_sign(const struct audit_key *key, const char *name, const char *text,
                      struct warden_error **err)
{
	size_t tlen = strlen(text);
	if (!key->private)
		return warden_error_set(err, 0, "signing needs a private key"), NULL;
	if (!audit_key_name_ok(name))
		return warden_error_set(err, 0, "\"%s\" cannot be a key name", name), NULL;
	if (tlen == 0 || text[tlen - 1] != '\n')
		return warden_error_set(err, 0, "a note's text must end with a newline"), NULL;

	uint8_t blob[4 + ED25519_SIG];
	uint32_t id = audit_key_id(name, key->pub);
	blob[0] = id >> 24;
	blob[1] = id >> 16;
	blob[2] = id >> 8;
	blob[3] = id;
	crypto_sign_ed25519_detached(blob + 4, NULL, (const unsigned char *)text, tlen, key->sk);
	char b64[4 * ((sizeof(blob) + 2) / 3) + 1];
	audit_b64_encode(blob, sizeof(blob), b64);
	return xasprintf("%s\n%s%s %s\n", text, em_dash, name, b64);
}

static bool ed25519_ok(const uint8_t pub[32], const uint8_t *sig, const char *msg, size_t len)
{
	return crypto_sign_ed25519_verify_detached(sig, (const unsigned char *)msg, len, pub) == 0;
}

int audit_note_open(const char *note, size_t len, const struct audit_key *key, size_t *ret_text_len,
                    char **ret_name, struct warden_error **err)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)note[i] < 0x20 && note[i] != '\n')
			return warden_error_set(err, 0, "note holds a control character");
	if (len < 2 || note[len - 1] != '\n')
		return warden_error_set(err, 0, "note does not end with a newline");
	/* The text ends at the last blank line; the signature lines follow it. */
	size_t sep = 0;
	bool found = false;
	for (size_t i = len - 1; i-- > 0;)
		if (note[i] == '\n' && note[i + 1] == '\n') {
			sep = i + 1;
			found = true;
			break;
		}
	if (!found || sep == 0)
		return warden_error_set(err, 0, "note has no blank line before its signatures");

	unsigned nsigs = 0;
	_cleanup_free_ char *others = NULL;
	_cleanup_free_ char *signer = NULL;
	for (size_t p = sep + 1; p < len;) {
		const char *line = note + p;
		const char *nl = memchr(line, '\n', len - p);
		size_t llen = (size_t)(nl - line);
		p += llen + 1;
		if (++nsigs > NOTE_MAX_SIGS)
			return warden_error_set(err, 0, "note has more than %d signatures",
			                        NOTE_MAX_SIGS);
		if (llen < 4 || memcmp(line, em_dash, 4) != 0)
			return warden_error_set(err, 0,
			                        "note signature line %u does not start "
			                        "with \"\xe2\x80\x94 \"",
			                        nsigs);
		const char *name = line + 4;
		const char *sp = memchr(name, ' ', (size_t)(nl - name));
		if (!sp || sp == name)
			return warden_error_set(err, 0, "note signature line %u has no key name",
			                        nsigs);
		_cleanup_free_ char *nm = strndup(name, (size_t)(sp - name));
		if (!nm)
			abort();
		uint8_t blob[4 + 5000];
		ssize_t blen = audit_b64_decode(sp + 1, (size_t)(nl - sp - 1), blob, sizeof(blob));
		if (!audit_key_name_ok(nm) || blen < 5)
			return warden_error_set(err, 0, "note signature line %u is malformed",
			                        nsigs);
		uint32_t id = (uint32_t)blob[0] << 24 | (uint32_t)blob[1] << 16 |
		              (uint32_t)blob[2] << 8 | blob[3];
		if (!key) {
			if (!signer)
				signer = TAKE_PTR(nm);
			continue;
		}
		if (id != audit_key_id(nm, key->pub)) {
			/* Another key's signature: ignored, but named if none is ours. */
			char *o = xasprintf("%s%s%s (key ID %08x)", others ? others : "",
			                    others ? ", " : "", nm, id);
			free(others);
			others = o;
			continue;
		}
		if (blen != 4 + ED25519_SIG || !ed25519_ok(key->pub, blob + 4, note, sep))
			return warden_error_set(
			    err, 0, "the signature by %s (key ID %08x) does not verify", nm, id);
		if (!signer)
			signer = TAKE_PTR(nm);
	}
	if (!signer && !key)
		return warden_error_set(err, 0, "note has no signature");
	if (!signer)
		return warden_error_set(err, 0, "not signed by the given key (signed by: %s)",
		                        others ? others : "nobody");
	*ret_text_len = sep;
	if (ret_name)
		*ret_name = TAKE_PTR(signer);
	return 0;
}

/* ---- checkpoints ------------------------------------------------------------------------ */

char *audit_checkpoint_text(const char *origin, uint64_t size, const uint8_t root[AUDIT_HASH_LEN])
{
	char b64[AUDIT_B64_HASH];
	audit_b64_encode(root, AUDIT_HASH_LEN, b64);
	return xasprintf("%s\n%" PRIu64 "\n%s\n", origin, size, b64);
}

int audit_checkpoint_open(const char *note, size_t len, const struct audit_key *key,
                          struct audit_checkpoint *ret, struct warden_error **err)
{
	size_t tlen = 0;
	_cleanup_free_ char *signer = NULL;
	if (audit_note_open(note, len, key, &tlen, &signer, err) < 0)
		return -1;
	/* The text: origin, size, root hash, optional non-empty extension lines. */
	const char *lines[3];
	size_t lens[3];
	size_t p = 0;
	for (int i = 0; i < 3; i++) {
		const char *nl = p < tlen ? memchr(note + p, '\n', tlen - p) : NULL;
		if (!nl)
			return warden_error_set(err, 0, "checkpoint has fewer than 3 lines");
		lines[i] = note + p;
		lens[i] = (size_t)(nl - lines[i]);
		if (lens[i] == 0)
			return warden_error_set(err, 0, "checkpoint line %d is empty", i + 1);
		p += lens[i] + 1;
	}
	for (size_t q = p; q < tlen; q++)
		if (note[q] == '\n' && (q == p || note[q - 1] == '\n'))
			return warden_error_set(err, 0, "checkpoint has an empty extension line");

	uint64_t size = 0;
	const char *s = lines[1];
	bool digits = lens[1] <= 20 && (lens[1] == 1 || s[0] != '0');
	for (size_t i = 0; i < lens[1] && digits; i++) {
		digits = s[i] >= '0' && s[i] <= '9';
		uint64_t d = (uint64_t)(s[i] - '0');
		if (digits && size > (UINT64_MAX - d) / 10)
			digits = false;
		size = size * 10 + d;
	}
	if (!digits)
		return warden_error_set(err, 0, "checkpoint size \"%.*s\" is not a decimal number",
		                        (int)lens[1], s);
	struct audit_checkpoint c = {.size = size};
	if (audit_b64_decode(lines[2], lens[2], c.root, AUDIT_HASH_LEN) != AUDIT_HASH_LEN)
		return warden_error_set(err, 0, "checkpoint root \"%.*s\" is not a base64 SHA-256",
		                        (int)lens[2], lines[2]);
	c.origin = strndup(lines[0], lens[0]);
	if (!c.origin)
		abort();
	c.signer = TAKE_PTR(signer);
	*ret = c;
	return 0;
}

void audit_checkpoint_clear(struct audit_checkpoint *c)
{
	free(c->origin);
	free(c->signer);
	c->origin = c->signer = NULL;
}
