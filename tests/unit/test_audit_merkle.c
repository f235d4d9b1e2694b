/* test_audit_merkle.c: the audit log's Merkle tree, base64 and signed notes, against
 * published vectors.
 *
 * Sections: helpers; tree roots (RFC 6962 test vectors, and a recursive definition);
 * audit paths; base64; signed notes (the signed-note reference example); checkpoints.
 */
#include "unit.h"
#include "../../src/lib/audit/audit-internal.h"

/* ---- helpers --------------------------------------------------------------------------- */

static void hex_to(const char *hex, uint8_t *out, size_t len)
{
	assert_int_equal(strlen(hex), len * 2);
	for (size_t i = 0; i < len; i++) {
		unsigned v;
		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

static void assert_hash(const uint8_t *h, const char *hex)
{
	uint8_t want[AUDIT_HASH_LEN];
	hex_to(hex, want, sizeof(want));
	assert_memory_equal(h, want, sizeof(want));
}

/* The leaves of the RFC 6962 test vectors (certificate-transparency's merkle tree tests). */
static const struct {
	const char *data;
	size_t len;
} leaves[] = {
    {"", 0},
    {"\x00", 1},
    {"\x10", 1},
    {"\x20\x21", 2},
    {"\x30\x31", 2},
    {"\x40\x41\x42\x43", 4},
    {"\x50\x51\x52\x53\x54\x55\x56\x57", 8},
    {"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f", 16},
};

static const char *const roots[] = {
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

static void vector_leaf(unsigned i, uint8_t out[AUDIT_HASH_LEN])
{
	audit_leaf_hash(leaves[i].data, leaves[i].len, out);
}

/* Leaf i of a longer synthetic list. */
static void synth_leaf(uint64_t i, uint8_t out[AUDIT_HASH_LEN])
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "leaf %llu", (unsigned long long)i);
	audit_leaf_hash(buf, (size_t)n, out);
}

/* MTH(D[lo:hi]) straight from RFC 6962's recursive definition. */
static void reference_root(uint64_t lo, uint64_t hi, uint8_t out[AUDIT_HASH_LEN])
{
	if (hi == lo) {
		audit_empty_root(out);
		return;
	}
	if (hi - lo == 1) {
		synth_leaf(lo, out);
		return;
	}
	uint64_t k = 1;
	while (k * 2 < hi - lo)
		k *= 2;
	uint8_t l[AUDIT_HASH_LEN], r[AUDIT_HASH_LEN];
	reference_root(lo, lo + k, l);
	reference_root(lo + k, hi, r);
	audit_node_hash(l, r, out);
}

static int setup(void **state)
{
	(void)state;
	assert_int_equal(audit_crypto_init(NULL), 0);
	return 0;
}

/* ---- tree roots ------------------------------------------------------------------------ */

static void test_rfc6962_roots(void **state)
{
	(void)state;
	struct audit_tree t;
	audit_tree_init(&t);
	uint8_t root[AUDIT_HASH_LEN], leaf[AUDIT_HASH_LEN];
	for (unsigned n = 0; n <= ARRAY_SIZE(leaves); n++) {
		audit_tree_root(&t, root);
		assert_hash(root, roots[n]);
		assert_int_equal(t.size, n);
		if (n < ARRAY_SIZE(leaves)) {
			vector_leaf(n, leaf);
			audit_tree_push(&t, leaf);
		}
	}
}

static void test_frontier_matches_definition(void **state)
{
	(void)state;
	struct audit_tree t;
	audit_tree_init(&t);
	uint8_t got[AUDIT_HASH_LEN], want[AUDIT_HASH_LEN], leaf[AUDIT_HASH_LEN];
	for (uint64_t n = 0; n <= 300; n++) {
		assert_int_equal(t.n, __builtin_popcountll(n));
		audit_tree_root(&t, got);
		reference_root(0, n, want);
		assert_memory_equal(got, want, sizeof(got));
		synth_leaf(n, leaf);
		audit_tree_push(&t, leaf);
	}
}

/* ---- audit paths ------------------------------------------------------------------------ */

/* The path of leaf m in the tree of the first n synthetic leaves, from its ranges. */
static unsigned synth_path(uint64_t m, uint64_t n, uint8_t path[AUDIT_MAX_HEIGHT][AUDIT_HASH_LEN])
{
	uint64_t ranges[AUDIT_MAX_HEIGHT][2];
	unsigned np = audit_path_ranges(m, n, ranges);
	for (unsigned i = 0; i < np; i++)
		reference_root(ranges[i][0], ranges[i][1], path[i]);
	return np;
}

static void test_rfc6962_paths(void **state)
{
	(void)state;
	static const struct {
		uint64_t m, n;
		const char *path[3];
	} cases[] = {
	    {0,
	     8,
	     {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
	      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
	    {5,
	     8,
	     {"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
	      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
	      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
	    {2, 3, {"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"}},
	    {1,
	     5,
	     {"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
	};
	for (unsigned c = 0; c < ARRAY_SIZE(cases); c++) {
		uint64_t ranges[AUDIT_MAX_HEIGHT][2];
		unsigned np = audit_path_ranges(cases[c].m, cases[c].n, ranges);
		uint8_t path[AUDIT_MAX_HEIGHT][AUDIT_HASH_LEN];
		for (unsigned i = 0; i < np; i++) {
			assert_non_null(cases[c].path[i]);
			/* Hash the range of vector leaves the way the prover does: as a tree. */
			struct audit_tree t;
			audit_tree_init(&t);
			for (uint64_t j = ranges[i][0]; j < ranges[i][1]; j++) {
				uint8_t leaf[AUDIT_HASH_LEN];
				vector_leaf((unsigned)j, leaf);
				audit_tree_push(&t, leaf);
			}
			audit_tree_root(&t, path[i]);
			assert_hash(path[i], cases[c].path[i]);
		}
		assert_true(np == 3 || cases[c].path[np] == NULL);
		uint8_t leaf[AUDIT_HASH_LEN], root[AUDIT_HASH_LEN];
		vector_leaf((unsigned)cases[c].m, leaf);
		hex_to(roots[cases[c].n], root, sizeof(root));
		assert_true(audit_inclusion_ok(cases[c].m, cases[c].n, leaf,
		                               (const uint8_t(*)[AUDIT_HASH_LEN])path, np, root));
	}
}

static void test_paths_verify_and_alterations_fail(void **state)
{
	(void)state;
	uint8_t path[AUDIT_MAX_HEIGHT][AUDIT_HASH_LEN], leaf[AUDIT_HASH_LEN], root[AUDIT_HASH_LEN];
	const uint8_t(*p)[AUDIT_HASH_LEN] = (const uint8_t(*)[AUDIT_HASH_LEN])path;
	for (uint64_t n = 1; n <= 40; n++) {
		reference_root(0, n, root);
		for (uint64_t m = 0; m < n; m++) {
			unsigned np = synth_path(m, n, path);
			synth_leaf(m, leaf);
			assert_true(audit_inclusion_ok(m, n, leaf, p, np, root));
			/* another leaf, another index, a path too short or long (the tree size
			 * is bound by the signed checkpoint, not by the path: leaf 0 of 5 and of
			 * 6 hash alike) */
			uint8_t other[AUDIT_HASH_LEN];
			synth_leaf(m + 1, other);
			assert_false(audit_inclusion_ok(m, n, other, p, np, root));
			if (n > 1)
				assert_false(audit_inclusion_ok((m + 1) % n, n, leaf, p, np, root));
			assert_false(audit_inclusion_ok(m, n, leaf, p, np + 1, root));
			if (np > 0)
				assert_false(audit_inclusion_ok(m, n, leaf, p, np - 1, root));
			assert_false(audit_inclusion_ok(n, n, leaf, p, np, root));
			/* each element of the path altered by one bit */
			for (unsigned i = 0; i < np; i++) {
				path[i][i % AUDIT_HASH_LEN] ^= 0x01;
				assert_false(audit_inclusion_ok(m, n, leaf, p, np, root));
				path[i][i % AUDIT_HASH_LEN] ^= 0x01;
			}
		}
	}
}

/* ---- base64 ---------------------------------------------------------------------------- */

static void test_base64_strict(void **state)
{
	(void)state;
	uint8_t out[8];
	char enc[16];
	audit_b64_encode("A", 1, enc);
	assert_string_equal(enc, "QQ==");
	assert_int_equal(audit_b64_decode("QQ==", 4, out, sizeof(out)), 1);
	assert_int_equal(out[0], 'A');
	assert_int_equal(audit_b64_decode("QUI=", 4, out, sizeof(out)), 2);
	assert_int_equal(audit_b64_decode("QUJD", 4, out, sizeof(out)), 3);
	assert_int_equal(audit_b64_decode("", 0, out, sizeof(out)), 0);
	static const char *const refused[] = {
	    "QQ",           /* no padding */
	    "QR==",         /* spare bits set: not the canonical encoding */
	    "Q Q=",         /* whitespace */
	    "QQ=\n",        /* newline */
	    "QQ=A",         /* padding in the middle */
	    "Q$==",         /* not in the alphabet */
	    "QUJDRA==QQ==", /* two encodings */
	    "QUJDREVGR0hJ", /* 9 bytes, more than fits */
	};
	for (unsigned i = 0; i < ARRAY_SIZE(refused); i++)
		assert_int_equal(audit_b64_decode(refused[i], strlen(refused[i]), out, sizeof(out)),
		                 -1);
}

/* ---- signed notes ------------------------------------------------------------------------ */

/* The reference example of golang.org/x/mod/sumdb/note (c2sp.org/signed-note's origin):
 * the key PeterNeumann+c74f20a3+ARpc2QcU..., its private seed, a text and its note. */
static const char pn_pub[] = "1a5cd907143c384c41e830c5bce12aa8817ec5649aaabf2c31388b35b2d744d6";
static const char pn_seed[] = "810a1402d5146c8d84f2443330f54080ebf98ee17d9c74f6252fc5d5c7283173";
static const char pn_text[] = "If you think cryptography is the answer to your problem,\n"
                              "then you don't know what your problem is.\n";
static const char pn_note[] =
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
    "\n"
    "\xe2\x80\x94 PeterNeumann "
    "x08go/ZJkuBS9UG/"
    "SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

static void pn_keys(struct audit_key *priv, struct audit_key *pub)
{
	uint8_t raw[32];
	hex_to(pn_seed, raw, sizeof(raw));
	assert_int_equal(audit_key_from_raw(raw, true, priv, NULL), 0);
	hex_to(pn_pub, raw, sizeof(raw));
	assert_int_equal(audit_key_from_raw(raw, false, pub, NULL), 0);
	assert_memory_equal(priv->pub, pub->pub, 32);
}

static char *open_err(const char *note, const struct audit_key *key)
{
	struct warden_error *e = NULL;
	size_t tlen;
	if (audit_note_open(note, strlen(note), key, &tlen, NULL, &e) == 0)
		return NULL;
	char *msg = xstrdup(e->msg);
	warden_error_free(e);
	return msg;
}

static void test_note_reference_example(void **state)
{
	(void)state;
	struct audit_key priv, pub;
	pn_keys(&priv, &pub);
	assert_int_equal(audit_key_id("PeterNeumann", pub.pub), 0xc74f20a3);

	/* Ed25519 is deterministic: signing the text gives the very same note. */
	char *note = audit_note_sign(&priv, "PeterNeumann", pn_text, NULL);
	assert_string_equal(note, pn_note);
	free(note);

	size_t tlen = 0;
	char *name = NULL;
	assert_int_equal(audit_note_open(pn_note, strlen(pn_note), &pub, &tlen, &name, NULL), 0);
	assert_int_equal(tlen, strlen(pn_text));
	assert_string_equal(name, "PeterNeumann");
	free(name);

	/* a changed text */
	char *bad = xstrdup(pn_note);
	bad[3] ^= 0x20;
	char *msg = open_err(bad, &pub);
	assert_non_null(msg);
	assert_non_null(strstr(msg, "does not verify"));
	free(msg);
	free(bad);

	/* another key: its signature is not ours */
	uint8_t raw[32] = {1};
	struct audit_key other, other_pub;
	assert_int_equal(audit_key_from_raw(raw, true, &other, NULL), 0);
	assert_int_equal(audit_key_from_raw(other.pub, false, &other_pub, NULL), 0);
	msg = open_err(pn_note, &other_pub);
	assert_non_null(msg);
	assert_string_equal(msg, "not signed by the given key (signed by: PeterNeumann (key ID "
	                         "c74f20a3))");
	free(msg);

	/* the same name signed by another key, next to the real signature: ignored */
	char *forged = audit_note_sign(&other, "PeterNeumann", pn_text, NULL);
	char *both = xasprintf("%s%s", forged, strstr(pn_note, "\xe2\x80\x94"));
	assert_null(open_err(both, &pub));
	free(both);
	free(forged);

	/* malformed notes */
	static const char *const broken[] = {
	    "no blank line\n\xe2\x80\x94 PeterNeumann AAAA\n",
	    "text\n\n- PeterNeumann x08go/ZJ\n",
	    "text\n\n\xe2\x80\x94 PeterNeumann\n",
	    "text\n\n\xe2\x80\x94 PeterNeumann not-base64\n",
	    "text\n\n\xe2\x80\x94 PeterNeumann QQ==",
	    "te\tt\n\n\xe2\x80\x94 PeterNeumann QQ==\n",
	    "text\n\n",
	};
	for (unsigned i = 0; i < ARRAY_SIZE(broken); i++) {
		msg = open_err(broken[i], &pub);
		assert_non_null(msg);
		free(msg);
	}
	audit_key_clear(&other);
	audit_key_clear(&other_pub);
	audit_key_clear(&priv);
	audit_key_clear(&pub);
}

static void test_key_names(void **state)
{
	(void)state;
	assert_true(audit_key_name_ok("warden/host/audit"));
	assert_true(audit_key_name_ok("example.com/log42"));
	assert_false(audit_key_name_ok(""));
	assert_false(audit_key_name_ok("a b"));
	assert_false(audit_key_name_ok("a+b"));
	assert_false(audit_key_name_ok("a\nb"));
	assert_false(audit_key_name_ok(NULL));
}

/* ---- checkpoints ------------------------------------------------------------------------ */

static char *cp_err(struct audit_key *priv, struct audit_key *pub, const char *text)
{
	char *note = audit_note_sign(priv, "PeterNeumann", text, NULL);
	assert_non_null(note);
	struct audit_checkpoint cp;
	struct warden_error *e = NULL;
	char *msg = NULL;
	if (audit_checkpoint_open(note, strlen(note), pub, &cp, &e) == 0) {
		audit_checkpoint_clear(&cp);
	} else {
		msg = xstrdup(e->msg);
		warden_error_free(e);
	}
	free(note);
	return msg;
}

static void test_checkpoint_text(void **state)
{
	(void)state;
	struct audit_key priv, pub;
	pn_keys(&priv, &pub);
	uint8_t root[AUDIT_HASH_LEN];
	hex_to(roots[8], root, sizeof(root));
	char *text = audit_checkpoint_text("example.com/log", 8, root);
	assert_string_equal(text, "example.com/log\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/Rg"
	                          "Qyg=\n");
	char *note = audit_note_sign(&priv, "PeterNeumann", text, NULL);
	struct audit_checkpoint cp;
	assert_int_equal(audit_checkpoint_open(note, strlen(note), &pub, &cp, NULL), 0);
	assert_string_equal(cp.origin, "example.com/log");
	assert_string_equal(cp.signer, "PeterNeumann");
	assert_int_equal(cp.size, 8);
	assert_memory_equal(cp.root, root, sizeof(root));
	audit_checkpoint_clear(&cp);
	free(note);
	free(text);

	/* extension lines are allowed, empty ones are not */
	char *msg =
	    cp_err(&priv, &pub, "o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\next\n");
	assert_null(msg);
	static const char *const broken[] = {
	    "o\n08\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n", /* leading zero */
	    "o\n-1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
	    "o\n18446744073709551616\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
	    "o\n1\nQQ==\n", /* not 32 bytes */
	    "o\n1\n",
	    "\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n", /* empty origin */
	};
	for (unsigned i = 0; i < ARRAY_SIZE(broken); i++) {
		msg = cp_err(&priv, &pub, broken[i]);
		if (!msg)
			fail_msg("accepted checkpoint text %u: %s", i, broken[i]);
		free(msg);
	}
	audit_key_clear(&priv);
	audit_key_clear(&pub);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc6962_roots),
	    cmocka_unit_test(test_frontier_matches_definition),
	    cmocka_unit_test(test_rfc6962_paths),
	    cmocka_unit_test(test_paths_verify_and_alterations_fail),
	    cmocka_unit_test(test_base64_strict),
	    cmocka_unit_test(test_note_reference_example),
	    cmocka_unit_test(test_key_names),
	    cmocka_unit_test(test_checkpoint_text),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
