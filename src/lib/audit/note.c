/* note.c: Ed25519 keys and the signed notes that carry checkpoints (c2sp.org/signed-note,
 * c2sp.org/tlog-checkpoint). All cryptography is OpenSSL's (EVP).
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

static int key_fill_pub(struct audit_key *k, const char *path, struct warden_error **err)
{
	size_t len = sizeof(k->pub);
	if (!EVP_PKEY_is_a(k->pkey, "ED25519"))
		return warden_error_set(err, 0, "%s: not an Ed25519 key", path);
	if (EVP_PKEY_get_raw_public_key(k->pkey, k->pub, &len) != 1 || len != sizeof(k->pub))
		return warden_error_set(err, 0, "%s: cannot read the public key: %s", path,
		                        ossl_why());
	return 0;
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

	BIO *bio = BIO_new_mem_buf(pem, (int)n);
	if (!bio)
		return warden_error_set(err, ENOMEM, "read audit key %s", path);
	ERR_clear_error();
	EVP_PKEY *pkey = NULL;
	bool private = has_private;
	if (has_private)
		pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	else if (!want_private && has_public)
		pkey = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	explicit_bzero(pem, (size_t)n);
	if (!pkey) {
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
	struct audit_key k = {.pkey = pkey, .private = private};
	if (key_fill_pub(&k, path, err) < 0) {
		audit_key_clear(&k);
		return -1;
	}
	*ret = k;
	return 0;
}

int audit_key_from_raw(const uint8_t raw[32], bool private, struct audit_key *ret,
                       struct warden_error **err)
{
	struct audit_key k = {.private = private};
	k.pkey = private ? EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, raw, 32)
	                 : EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, 32);
	if (!k.pkey)
		return warden_error_set(err, 0, "not an Ed25519 key: %s", ossl_why());
	if (key_fill_pub(&k, "raw key", err) < 0) {
		audit_key_clear(&k);
		return -1;
	}
	*ret = k;
	return 0;
}

void audit_key_clear(struct audit_key *k)
{
	EVP_PKEY_free(k->pkey);
	k->pkey = NULL;
}

/* PEM text of pkey (private or public half), malloc'd. */
static char *key_pem(EVP_PKEY *pkey, bool private, struct warden_error **err)
{
	BIO *bio = BIO_new(BIO_s_mem());
	if (!bio)
		return warden_error_set(err, ENOMEM, "key to PEM"), NULL;
	int ok = private ? PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL)
	                 : PEM_write_bio_PUBKEY(bio, pkey);
	char *data = NULL;
	long len = BIO_get_mem_data(bio, &data);
	char *out = ok == 1 && len > 0 ? strndup(data, (size_t)len) : NULL;
	BIO_free(bio);
	if (!out)
		warden_error_set(err, 0, "key to PEM: %s", ossl_why());
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
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!pkey)
		return warden_error_set(err, 0, "generate an Ed25519 key: %s", ossl_why());
	_cleanup_free_ char *priv = key_pem(pkey, true, err);
	_cleanup_free_ char *pub = priv ? key_pem(pkey, false, err) : NULL;
	EVP_PKEY_free(pkey);
	if (!pub)
		return -1;
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
	uint8_t h[EVP_MAX_MD_SIZE];
	unsigned hlen = 0;
	if (EVP_Digest(buf, nlen + 2 + 32, h, &hlen, EVP_sha256(), NULL) != 1)
		abort();
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
	size_t slen = ED25519_SIG;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int ok = c && EVP_DigestSignInit(c, NULL, NULL, NULL, key->pkey) == 1 &&
	         EVP_DigestSign(c, blob + 4, &slen, (const unsigned char *)text, tlen) == 1 &&
	         slen == ED25519_SIG;
	EVP_MD_CTX_free(c);
	if (!ok)
		return warden_error_set(err, 0, "Ed25519 signature: %s", ossl_why()), NULL;
	char b64[4 * ((sizeof(blob) + 2) / 3) + 1];
	audit_b64_encode(blob, sizeof(blob), b64);
	return xasprintf("%s\n%s%s %s\n", text, em_dash, name, b64);
}

static bool ed25519_ok(const uint8_t pub[32], const uint8_t *sig, const char *msg, size_t len)
{
	EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	bool ok = pk && c && EVP_DigestVerifyInit(c, NULL, NULL, NULL, pk) == 1 &&
	          EVP_DigestVerify(c, sig, ED25519_SIG, (const unsigned char *)msg, len) == 1;
	EVP_MD_CTX_free(c);
	EVP_PKEY_free(pk);
	return ok;
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
