/* merkle.c: SHA-256 and the RFC 6962 / RFC 9162 Merkle tree of the audit log.
 *
 * Sections: hashing (libsodium); the tree kept as its frontier; audit paths and their verification;
 * base64.
 */
#define _GNU_SOURCE
#include "audit-internal.h"

#include <openssl/evp.h>

/* ---- hashing -------------------------------------------------------------------------- */

/* libsodium's SHA-256: it needs no set-up beyond sodium_init(), where OpenSSL's EVP fetch
 * initialises its providers, a few milliseconds on every `warden run` (the audit log
 * hashes before the sandbox starts). */
int audit_crypto_init(struct warden_error **err)
{
	if (sodium_init() < 0)
		return warden_error_set(err, 0, "libsodium cannot be initialised");
	return 0;
}

/* SHA-256(prefix || a || b). */
static void hash3(uint8_t prefix, const void *a, size_t alen, const void *b, size_t blen,
                  uint8_t out[AUDIT_HASH_LEN])
{
	crypto_hash_sha256_state c;
	crypto_hash_sha256_init(&c);
	crypto_hash_sha256_update(&c, &prefix, 1);
	crypto_hash_sha256_update(&c, a, alen);
	crypto_hash_sha256_update(&c, b, blen);
	crypto_hash_sha256_final(&c, out);
}

void audit_leaf_hash(const void *data, size_t len, uint8_t out[AUDIT_HASH_LEN])
{
	hash3(0x00, data, len, NULL, 0, out);
}

void audit_node_hash(const uint8_t *left, const uint8_t *right, uint8_t out[AUDIT_HASH_LEN])
{
	/* out may alias left or right: hash3 reads both before it writes out. */
	hash3(0x01, left, AUDIT_HASH_LEN, right, AUDIT_HASH_LEN, out);
}

void audit_empty_root(uint8_t out[AUDIT_HASH_LEN])
{
	crypto_hash_sha256(out, NULL, 0);
}

/* ---- the tree as its frontier ---------------------------------------------------------- */

void audit_tree_init(struct audit_tree *t)
{
	t->size = 0;
	t->n = 0;
}

void audit_tree_push(struct audit_tree *t, const uint8_t leaf[AUDIT_HASH_LEN])
{
	uint8_t h[AUDIT_HASH_LEN];
	memcpy(h, leaf, sizeof(h));
	/* Each trailing one bit of the old size is a perfect subtree as large as the one being
	 * built: merge them, right to left, as binary addition carries. */
	for (uint64_t s = t->size; s & 1; s >>= 1)
		audit_node_hash(t->frontier[--t->n], h, h);
	memcpy(t->frontier[t->n++], h, sizeof(h));
	t->size++;
}

void audit_tree_root(const struct audit_tree *t, uint8_t out[AUDIT_HASH_LEN])
{
	if (t->n == 0) {
		audit_empty_root(out);
		return;
	}
	uint8_t r[AUDIT_HASH_LEN];
	memcpy(r, t->frontier[t->n - 1], sizeof(r));
	for (unsigned i = t->n - 1; i-- > 0;)
		audit_node_hash(t->frontier[i], r, r);
	memcpy(out, r, sizeof(r));
}

/* ---- audit paths ----------------------------------------------------------------------- */

/* The largest power of two smaller than n (n > 1). */
static uint64_t split_point(uint64_t n)
{
	return (uint64_t)1 << (63 - __builtin_clzll(n - 1));
}

unsigned audit_path_ranges(uint64_t index, uint64_t size, uint64_t ret[AUDIT_MAX_HEIGHT][2])
{
	/* RFC 9162: PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) when m < k, else
	 * PATH(m - k, D[k:n]) : MTH(D[0:k]). Walking down from the root yields the siblings
	 * root first; the path lists them leaf first. */
	unsigned n = 0;
	uint64_t lo = 0, hi = size;
	while (hi - lo > 1) {
		uint64_t k = split_point(hi - lo);
		if (index - lo < k) {
			ret[n][0] = lo + k;
			ret[n][1] = hi;
			hi = lo + k;
		} else {
			ret[n][0] = lo;
			ret[n][1] = lo + k;
			lo += k;
		}
		n++;
	}
	for (unsigned i = 0; i < n / 2; i++) {
		uint64_t a = ret[i][0], b = ret[i][1];
		ret[i][0] = ret[n - 1 - i][0];
		ret[i][1] = ret[n - 1 - i][1];
		ret[n - 1 - i][0] = a;
		ret[n - 1 - i][1] = b;
	}
	return n;
}

bool audit_inclusion_ok(uint64_t index, uint64_t size, const uint8_t leaf[AUDIT_HASH_LEN],
                        const uint8_t (*path)[AUDIT_HASH_LEN], unsigned path_len,
                        const uint8_t root[AUDIT_HASH_LEN])
{
	/* RFC 9162 2.1.3.2, step by step. */
	if (index >= size)
		return false;
	uint64_t fn = index, sn = size - 1;
	uint8_t r[AUDIT_HASH_LEN];
	memcpy(r, leaf, sizeof(r));
	for (unsigned i = 0; i < path_len; i++) {
		if (sn == 0)
			return false;
		if ((fn & 1) || fn == sn) {
			audit_node_hash(path[i], r, r);
			if (!(fn & 1))
				while (!(fn & 1) && fn != 0) {
					fn >>= 1;
					sn >>= 1;
				}
		} else {
			audit_node_hash(r, path[i], r);
		}
		fn >>= 1;
		sn >>= 1;
	}
	return sn == 0 && memcmp(r, root, sizeof(r)) == 0;
}

/* ---- base64 ---------------------------------------------------------------------------- */

void audit_b64_encode(const void *data, size_t len, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, data, (int)len);
}

ssize_t audit_b64_decode(const char *s, size_t slen, uint8_t *out, size_t max)
{
	if (slen == 0)
		return 0;
	if (slen % 4 != 0 || slen / 4 * 3 > max + 2 || slen > (size_t)INT32_MAX)
		return -1;
	_cleanup_free_ uint8_t *tmp = xmalloc(slen / 4 * 3 + 1);
	int n = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)slen);
	if (n < 0)
		return -1;
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	size_t pad = s[slen - 1] == '=' ? (s[slen - 2] == '=' ? 2 : 1) : 0;
	size_t len = (size_t)n - pad;
	if (len > max)
		return -1;
	/* Only the canonical encoding: re-encoding gives back the very same text (this
	 * refuses whitespace, which EVP_DecodeBlock skips, and non-zero spare bits). */
	_cleanup_free_ char *again = xmalloc(slen + 1);
	audit_b64_encode(tmp, len, again);
	if (strlen(again) != slen || memcmp(again, s, slen) != 0)
		return -1;
	memcpy(out, tmp, len);
	return (ssize_t)len;
}
