/* fuzz_gateway_body.c: what the model gateway reads in bodies (src/lib/net/gateway-body.c):
 * requests from the sandbox, answers and event streams from providers, key redaction.
 *
 * Input: two header bytes, then the body. The first byte's low 3 bits choose the API
 * (modulo 5); with the second byte it seeds the sizes of the pieces the body is cut into.
 * The same body goes to every parser:
 *   - gw_request_parse (not for /v1/models): a failure says why; a success reserves a
 *     bounded number of tokens, and the body sent upstream parses back to the same
 *     limits, with the upstream model and, for a streamed chat, include_usage;
 *   - gw_usage_from_json: a success is complete usage;
 *   - gw_sse_feed, whole and in pieces: the same usage and the same (bounded) text;
 *   - gw_redact, whole and in pieces, with a key taken from the body: the same output as
 *     replacing every occurrence of the key from left to right.
 */
#define _GNU_SOURCE
#include "src/lib/net/gateway-internal.h"
#include "src/lib/util.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TEXT_MAX 300 /* small, so that text truncation is reached */

struct pieces {
	uint32_t state;
};

/* The next piece's size: mostly small, sometimes 0 or large. */
static size_t piece(struct pieces *p, size_t left)
{
	p->state ^= p->state << 13;
	p->state ^= p->state >> 17;
	p->state ^= p->state << 5;
	size_t n = p->state % 8 == 0 ? 0 : p->state % 8 == 1 ? 4096 : 1 + (p->state >> 8) % 24;
	return n < left ? n : left;
}

static void fuzz_request(enum gw_api api, const char *body, size_t len, uint8_t flags)
{
	struct gw_request r, back;
	char why[GW_WHY_MAX];
	if (gw_request_parse(api, body, len, &r, why) < 0) {
		if (!why[0] || strnlen(why, GW_WHY_MAX) == GW_WHY_MAX)
			abort();
		gw_request_clear(&r);
		return;
	}
	if (!r.model || !*r.model || strlen(r.model) > 256 || !r.choices || r.choices > 128)
		abort();
	uint64_t model_max = flags & 0x10 ? 8192 : 0;
	uint64_t out = gw_output_reserve(api, &r, model_max);
	if (api == GW_API_EMBEDDINGS ? out != 0 : out == 0 || out > 1000000000ULL * 128)
		abort();
	if (gw_input_estimate(&r, len) * GW_BYTES_PER_TOKEN < len)
		abort();

	const char *upstream = flags & 0x20 ? "upstream-model" : NULL;
	_cleanup_free_ char *model = xstrdup(r.model);
	bool stream = r.stream;
	uint64_t max_output = r.max_output, choices = r.choices;
	uint64_t per_choice = out / r.choices;
	_cleanup_free_ char *fwd = gw_request_forward(api, &r, upstream, per_choice);
	gw_request_clear(&r);
	if (gw_request_parse(api, fwd, strlen(fwd), &back, why) < 0) {
		fprintf(stderr, "forwarded body does not parse: %s\n%s\n", why, fwd);
		abort();
	}
	/* a request without a maximum leaves with the one reserved for it */
	uint64_t want_max = max_output || api == GW_API_EMBEDDINGS ? max_output : per_choice;
	if (!streq(back.model, upstream ? upstream : model) || back.stream != stream ||
	    back.max_output != want_max || back.choices != choices)
		abort();
	if (api == GW_API_CHAT && stream &&
	    !json_is_true(
	        json_object_get(json_object_get(back.root, "stream_options"), "include_usage")))
		abort();
	gw_request_clear(&back);
}

static void fuzz_usage(enum gw_api api, const char *body, size_t len)
{
	struct gw_usage u = {0};
	if (gw_usage_from_json(api, body, len, &u) == 0 && !gw_usage_complete(api, &u))
		abort();
}

static struct gw_usage sse_run(enum gw_api api, const char *body, size_t len, struct pieces *p,
                               struct gw_buf *text)
{
	struct gw_sse s;
	gw_sse_init(&s, api, text);
	if (!p) {
		gw_sse_feed(&s, body, len);
	} else {
		for (size_t i = 0; i < len || i == 0;) {
			size_t n = piece(p, len - i);
			gw_sse_feed(&s, body + i, n);
			i += n;
			if (!len)
				break;
		}
	}
	struct gw_usage u = s.usage;
	gw_sse_clear(&s);
	return u;
}

static void fuzz_sse(enum gw_api api, const char *body, size_t len, struct pieces *p)
{
	struct gw_buf t1 = {.max = TEXT_MAX}, t2 = {.max = TEXT_MAX};
	struct gw_usage u1 = sse_run(api, body, len, NULL, &t1);
	struct gw_usage u2 = sse_run(api, body, len, p, &t2);
	if (u1.input != u2.input || u1.output != u2.output || u1.have_input != u2.have_input ||
	    u1.have_output != u2.have_output || t1.len != t2.len || t1.truncated != t2.truncated ||
	    t1.len > TEXT_MAX || (t1.len && memcmp(t1.p, t2.p, t1.len)))
		abort();
	gw_buf_clear(&t1);
	gw_buf_clear(&t2);
}

/* Every occurrence of key, from the left, replaced. */
static void redact_reference(const char *key, size_t key_len, const char *s, size_t len,
                             struct gw_buf *out)
{
	size_t i = 0;
	const char *hit;
	while ((hit = memmem(s + i, len - i, key, key_len))) {
		gw_buf_add(out, s + i, (size_t)(hit - (s + i)));
		gw_buf_add(out, GW_REDACTED, strlen(GW_REDACTED));
		i = (size_t)(hit - s) + key_len;
	}
	gw_buf_add(out, s + i, len - i);
}

static void fuzz_redact(const char *body, size_t len, uint8_t seed, struct pieces *p)
{
	static const char fixed[] = "sk-0123456789ABCDEF";
	/* A key cut from the body (so that the fuzzer shapes it, repetitive ones included)
	 * when the body is long enough, else a fixed one. */
	size_t key_len = 1 + seed % 24;
	const char *key = len >= key_len ? body : fixed;
	if (key == fixed)
		key_len = strlen(fixed);
	struct gw_buf want = {0}, whole = {0}, cut = {0};
	redact_reference(key, key_len, body, len, &want);

	struct gw_redactor r = {.key = key, .key_len = key_len};
	gw_redact(&r, body, len, &whole);
	gw_redact_flush(&r, &whole);
	if (r.held)
		abort();
	r = (struct gw_redactor){.key = key, .key_len = key_len};
	for (size_t i = 0; i < len;) {
		size_t n = piece(p, len - i);
		gw_redact(&r, body + i, n, &cut);
		if (r.held >= key_len)
			abort();
		i += n;
	}
	gw_redact_flush(&r, &cut);
	if (want.len != whole.len || want.len != cut.len ||
	    (want.len && (memcmp(want.p, whole.p, want.len) || memcmp(want.p, cut.p, want.len))))
		abort();
	gw_buf_clear(&want);
	gw_buf_clear(&whole);
	gw_buf_clear(&cut);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	enum gw_api api = (enum gw_api)(data[0] % 8 % GW_API_MAX);
	struct pieces p = {.state = ((uint32_t)data[0] << 8 | data[1]) * 2654435761u | 1};
	const char *body = (const char *)data + 2;
	size_t len = size - 2;

	if (api != GW_API_MODELS)
		fuzz_request(api, body, len, data[0]);
	fuzz_usage(api, body, len);
	fuzz_sse(api, body, len, &p);
	fuzz_redact(body, len, data[1], &p);
	return 0;
}
