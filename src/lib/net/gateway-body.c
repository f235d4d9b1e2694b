/* gateway-body.c: what the gateway reads in request and answer bodies.
 *
 * Sections: bounded buffers; requests (model, limits, token estimate, the body sent
 * upstream); usage in a whole JSON answer; usage and text in a server-sent event stream;
 * redaction of the provider key from answers.
 *
 * Request bodies come from the sandbox and are untrusted; answers come from providers.
 * Nothing here does I/O, so the fuzzers drive all of it (tests/fuzz/fuzz_gateway_body.c).
 */
#define _GNU_SOURCE
#include "gateway-internal.h"
#include "../util.h"

#include <inttypes.h>
#include <stdarg.h>

#define MODEL_MAX   256
#define TOKENS_MAX  1000000000ULL
#define CHOICES_MAX 128
/* One event of a stream: responses' response.completed repeats the whole answer. */
#define SSE_EVENT_MAX (8u << 20)

const char *const gw_api_names[GW_API_MAX] = {
    "openai.chat", "openai.responses", "openai.embeddings", "openai.models", "anthropic.messages",
};

/* ---- bounded buffers ------------------------------------------------------------------- */

void gw_buf_add(struct gw_buf *b, const char *s, size_t n)
{
	if (b->max && b->len + n > b->max) {
		n = b->max > b->len ? b->max - b->len : 0;
		b->truncated = true;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = xrealloc(b->p, cap);
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void gw_buf_clear(struct gw_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	b->truncated = false;
}

/* ---- requests -------------------------------------------------------------------------- */

static int why(char ret_why[GW_WHY_MAX], const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int why(char ret_why[GW_WHY_MAX], const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ret_why, GW_WHY_MAX, fmt, ap);
	va_end(ap);
	return -1;
}

/* An optional positive integer. Anything else is refused rather than ignored: a limit the
 * provider would read differently from the gateway would make the reservation wrong. */
static int opt_count(json_t *root, const char *name, uint64_t max, uint64_t *ret,
                     char ret_why[GW_WHY_MAX])
{
	json_t *v = json_object_get(root, name);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 1 ||
	    (uint64_t)json_integer_value(v) > max)
		return why(ret_why, "\"%s\" must be an integer from 1 to %" PRIu64, name, max);
	*ret = (uint64_t)json_integer_value(v);
	return 0;
}

static int opt_type(json_t *root, const char *name, json_type type, const char *what,
                    char ret_why[GW_WHY_MAX])
{
	json_t *v = json_object_get(root, name);
	if (v && !json_is_null(v) && json_typeof(v) != type)
		return why(ret_why, "\"%s\" must be %s", name, what);
	return 0;
}

static int request_limits(enum gw_api api, struct gw_request *r, char ret_why[GW_WHY_MAX])
{
	uint64_t legacy = 0;
	switch (api) {
	case GW_API_CHAT:
		if (opt_count(r->root, "max_completion_tokens", TOKENS_MAX, &r->max_output,
		              ret_why) < 0 ||
		    opt_count(r->root, "max_tokens", TOKENS_MAX, &legacy, ret_why) < 0 ||
		    opt_count(r->root, "n", CHOICES_MAX, &r->choices, ret_why) < 0 ||
		    opt_type(r->root, "stream_options", JSON_OBJECT, "an object", ret_why) < 0)
			return -1;
		/* Both given: the provider honours one of them; reserve for the larger. */
		if (legacy > r->max_output)
			r->max_output = legacy;
		return 0;
	case GW_API_RESPONSES:
		return opt_count(r->root, "max_output_tokens", TOKENS_MAX, &r->max_output, ret_why);
	case GW_API_MESSAGES:
		return opt_count(r->root, "max_tokens", TOKENS_MAX, &r->max_output, ret_why);
	default:
		return 0;
	}
}

int gw_request_parse(enum gw_api api, const char *body, size_t len, struct gw_request *r,
                     char ret_why[GW_WHY_MAX])
{
	json_error_t jerr;
	memset(r, 0, sizeof(*r));
	r->choices = 1;
	/* Duplicate keys are refused: the gateway and the provider could pick different
	 * "model" values from one body, and the allowlist would check the wrong one. */
	r->root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!r->root)
		return why(ret_why, "the body is not valid JSON: %s (line %d, column %d)",
		           jerr.text, jerr.line, jerr.column);
	if (!json_is_object(r->root))
		return why(ret_why, "the body must be a JSON object");
	json_t *model = json_object_get(r->root, "model");
	if (!model)
		return why(ret_why, "\"model\" is missing");
	/* jansson refuses \u0000 in strings: a model name is one C string. */
	if (!json_is_string(model) || json_string_length(model) == 0 ||
	    json_string_length(model) > MODEL_MAX)
		return why(ret_why, "\"model\" must be a string of 1 to %d characters", MODEL_MAX);
	r->model = json_string_value(model);
	json_t *stream = json_object_get(r->root, "stream");
	if (stream && !json_is_null(stream) && !json_is_boolean(stream))
		return why(ret_why, "\"stream\" must be true or false");
	r->stream = json_is_true(stream) && api != GW_API_EMBEDDINGS;
	return request_limits(api, r, ret_why);
}

void gw_request_clear(struct gw_request *r)
{
	json_decref(r->root);
	memset(r, 0, sizeof(*r));
}

/* Image parts anywhere in the request: {"type": "image_url" | "input_image" | "image"}. */
static uint64_t count_images(const json_t *v, int depth)
{
	uint64_t n = 0;
	size_t i;
	const char *k;
	json_t *x;
	if (depth > 64)
		return 0; /* jansson's own parser stops far earlier */
	if (json_is_object(v)) {
		const char *t = json_string_value(json_object_get(v, "type"));
		if (t && (streq(t, "image_url") || streq(t, "input_image") || streq(t, "image")))
			n++;
		json_object_foreach((json_t *)v, k, x) n += count_images(x, depth + 1);
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, x) n += count_images(x, depth + 1);
	}
	return n;
}

uint64_t gw_input_estimate(const struct gw_request *r, size_t len)
{
	uint64_t text = ((uint64_t)len + GW_BYTES_PER_TOKEN - 1) / GW_BYTES_PER_TOKEN;
	return text + (r ? count_images(r->root, 0) * GW_IMAGE_TOKENS_MAX : 0);
}

uint64_t gw_output_reserve(enum gw_api api, const struct gw_request *r, uint64_t model_max)
{
	if (api == GW_API_EMBEDDINGS)
		return 0;
	uint64_t per = r->max_output ? r->max_output
	               : model_max   ? model_max
	                             : GW_DEFAULT_MAX_OUTPUT;
	return per * r->choices;
}

char *gw_request_forward(enum gw_api api, struct gw_request *r, const char *upstream,
                         uint64_t max_output)
{
	/* A request that names no maximum is given the one reserved for it: the provider then
	 * cannot produce more than the budget holds back (Anthropic requires one anyway). */
	if (!r->max_output && max_output && api != GW_API_EMBEDDINGS) {
		const char *name = api == GW_API_CHAT       ? "max_completion_tokens"
		                   : api == GW_API_MESSAGES ? "max_tokens"
		                                            : "max_output_tokens";
		json_object_set_new(r->root, name, json_integer((json_int_t)max_output));
	}
	if (upstream) {
		json_object_set_new(r->root, "model", json_string(upstream));
		r->model = NULL; /* it pointed into the value just replaced */
	}
	if (api == GW_API_CHAT && r->stream) {
		json_t *so = json_object_get(r->root, "stream_options");
		if (!json_is_object(so)) {
			so = json_object();
			json_object_set_new(r->root, "stream_options", so);
		}
		json_object_set_new(so, "include_usage", json_true());
	}
	char *out = json_dumps(r->root, JSON_COMPACT);
	if (!out)
		abort();
	return out;
}

/* ---- usage in a whole answer ----------------------------------------------------------- */

static bool count_of(json_t *o, const char *name, uint64_t *ret)
{
	json_t *v = json_object_get(o, name);
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*ret = (uint64_t)json_integer_value(v);
	return true;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
	return a + b < a ? UINT64_MAX : a + b;
}

/* Take what a usage object of api says into u. */
static void usage_take(enum gw_api api, json_t *usage, struct gw_usage *u)
{
	static const char *const in_name[GW_API_MAX] = {"prompt_tokens", "input_tokens",
	                                                "prompt_tokens", NULL, "input_tokens"};
	static const char *const out_name[GW_API_MAX] = {"completion_tokens", "output_tokens", NULL,
	                                                 NULL, "output_tokens"};
	uint64_t v, extra;
	if (!json_is_object(usage) || !in_name[api])
		return;
	if (count_of(usage, in_name[api], &v)) {
		/* Anthropic counts cached input apart from input_tokens; all of it is input. */
		if (api == GW_API_MESSAGES &&
		    count_of(usage, "cache_creation_input_tokens", &extra))
			v = add_sat(v, extra);
		if (api == GW_API_MESSAGES && count_of(usage, "cache_read_input_tokens", &extra))
			v = add_sat(v, extra);
		u->input = v;
		u->have_input = true;
	}
	if (out_name[api] && count_of(usage, out_name[api], &v)) {
		u->output = v;
		u->have_output = true;
	}
}

bool gw_usage_complete(enum gw_api api, const struct gw_usage *u)
{
	return u->have_input && (u->have_output || api == GW_API_EMBEDDINGS);
}

int gw_usage_from_json(enum gw_api api, const char *body, size_t len, struct gw_usage *ret)
{
	struct gw_usage u = {0};
	json_t *root = json_loadb(body, len, 0, NULL);
	if (!root)
		return -1;
	usage_take(api, json_object_get(root, "usage"), &u);
	json_decref(root);
	if (!gw_usage_complete(api, &u))
		return -1;
	*ret = u;
	return 0;
}

/* ---- server-sent events ---------------------------------------------------------------- */

void gw_sse_init(struct gw_sse *s, enum gw_api api, struct gw_buf *text)
{
	memset(s, 0, sizeof(*s));
	s->api = api;
	s->line.max = s->data.max = SSE_EVENT_MAX;
	s->text = text;
}

void gw_sse_clear(struct gw_sse *s)
{
	gw_buf_clear(&s->line);
	gw_buf_clear(&s->data);
}

static void text_add(struct gw_sse *s, json_t *v)
{
	if (s->text && json_is_string(v))
		gw_buf_add(s->text, json_string_value(v), json_string_length(v));
}

static void event_chat(struct gw_sse *s, json_t *ev)
{
	json_t *choice;
	size_t i;
	usage_take(s->api, json_object_get(ev, "usage"), &s->usage);
	json_array_foreach(json_object_get(ev, "choices"), i, choice)
	{
		text_add(s, json_object_get(json_object_get(choice, "delta"), "content"));
	}
}

static void event_responses(struct gw_sse *s, json_t *ev, const char *type)
{
	if (streq(type, "response.completed") || streq(type, "response.incomplete") ||
	    streq(type, "response.failed"))
		usage_take(s->api, json_object_get(json_object_get(ev, "response"), "usage"),
		           &s->usage);
	else if (streq(type, "response.output_text.delta"))
		text_add(s, json_object_get(ev, "delta"));
}

static void event_messages(struct gw_sse *s, json_t *ev, const char *type)
{
	if (streq(type, "message_start")) {
		/* Its output_tokens is a running start value: the final count comes in
		 * message_delta, and a stream cut before it has no known output. */
		struct gw_usage start = {0};
		usage_take(s->api, json_object_get(json_object_get(ev, "message"), "usage"),
		           &start);
		s->usage.input = start.input;
		s->usage.have_input = start.have_input;
	} else if (streq(type, "message_delta")) {
		usage_take(s->api, json_object_get(ev, "usage"), &s->usage);
	} else if (streq(type, "content_block_delta")) {
		json_t *d = json_object_get(ev, "delta");
		text_add(s, json_object_get(d, "text"));
		text_add(s, json_object_get(d, "partial_json"));
		text_add(s, json_object_get(d, "thinking"));
	}
}

static void sse_dispatch(struct gw_sse *s)
{
	json_t *ev = NULL;
	if (s->data.len && !s->data.truncated)
		ev = json_loadb(s->data.p, s->data.len, 0, NULL);
	s->data.len = 0;
	s->data.truncated = false;
	if (!json_is_object(ev)) {
		json_decref(ev);
		return;
	}
	const char *type = json_string_value(json_object_get(ev, "type"));
	if (s->api == GW_API_CHAT)
		event_chat(s, ev);
	else if (type && s->api == GW_API_RESPONSES)
		event_responses(s, ev, type);
	else if (type && s->api == GW_API_MESSAGES)
		event_messages(s, ev, type);
	json_decref(ev);
}

/* One line (without its end): a blank line ends an event, "data:" lines make it. The line
 * is read by its length, never as a C string: a provider's stream may hold NUL bytes, and
 * "data" alone (no colon) is a data line with an empty value, with nothing after it. */
static void sse_line(struct gw_sse *s)
{
	const char *l = s->line.p;
	size_t n = s->line.len, v;
	if (!n) {
		sse_dispatch(s);
		return;
	}
	if (n < 4 || memcmp(l, "data", 4) || (n > 4 && l[4] != ':'))
		return;
	v = n > 4 ? 5 : 4;
	if (v < n && l[v] == ' ')
		v++;
	if (s->line.truncated)
		s->data.truncated = true;
	if (s->data.len)
		gw_buf_add(&s->data, "\n", 1);
	gw_buf_add(&s->data, l + v, n - v);
}

void gw_sse_feed(struct gw_sse *s, const char *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		if (s->after_cr) {
			s->after_cr = false;
			if (p[i] == '\n') {
				i++;
				continue;
			}
		}
		size_t j = i;
		while (j < n && p[j] != '\r' && p[j] != '\n')
			j++;
		gw_buf_add(&s->line, p + i, j - i);
		if (j == n)
			return;
		s->after_cr = p[j] == '\r';
		sse_line(s);
		s->line.len = 0;
		s->line.truncated = false;
		i = j + 1;
	}
}

/* ---- redaction ------------------------------------------------------------------------- */

void gw_redact(struct gw_redactor *r, const char *p, size_t n, struct gw_buf *out)
{
	_cleanup_free_ char *joined = NULL;
	const char *s = p;
	size_t len = n, i = 0;
	if (!r->key_len) {
		gw_buf_add(out, p, n);
		return;
	}
	if (r->held) {
		joined = xmalloc(r->held + n + 1);
		memcpy(joined, r->key, r->held);
		memcpy(joined + r->held, p, n);
		s = joined;
		len = r->held + n;
	}
	for (;;) {
		const char *hit = memmem(s + i, len - i, r->key, r->key_len);
		if (!hit)
			break;
		gw_buf_add(out, s + i, (size_t)(hit - (s + i)));
		gw_buf_add(out, GW_REDACTED, strlen(GW_REDACTED));
		i = (size_t)(hit - s) + r->key_len;
	}
	/* Hold back the longest tail that could be the start of the key. */
	size_t h = len - i < r->key_len - 1 ? len - i : r->key_len - 1;
	while (h && memcmp(s + len - h, r->key, h))
		h--;
	gw_buf_add(out, s + i, len - i - h);
	r->held = h;
}

void gw_redact_flush(struct gw_redactor *r, struct gw_buf *out)
{
	gw_buf_add(out, r->key, r->held);
	r->held = 0;
}
