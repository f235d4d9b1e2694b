/* gateway-internal.h: what the model gateway's files share.
 *
 * Sections: the configuration's structures (gateway-config.c); request and answer bodies:
 * model, token estimate, usage from JSON and from event streams, key redaction
 * (gateway-body.c); budgets and rate limits (gateway-budget.c). The body and budget code
 * does no I/O, so that unit tests and fuzzers can drive it directly.
 */
#ifndef WARDEN_NET_GATEWAY_INTERNAL_H
#define WARDEN_NET_GATEWAY_INTERNAL_H

#include "gateway.h"

#include <jansson.h>
#include <stddef.h>

/* ---- configuration --------------------------------------------------------------------- */

/* Output tokens reserved for a request that names no maximum, when its model names none. */
#define GW_DEFAULT_MAX_OUTPUT 4096
/* The input tokens reserved: a bound, not an estimate, so that no call can spend more
 * than it reserved. Text never takes more tokens than bytes (a token covers at least one
 * byte, and the JSON around each message outweighs the few tokens a chat template adds);
 * an image part (by URL or inline) is bounded apart, by the most any provider charges
 * for one image. */
#define GW_BYTES_PER_TOKEN  1
#define GW_IMAGE_TOKENS_MAX 6400
/* Bounds on an API key: shorter ones are guessable, and redacting them from answers would
 * mangle ordinary text; longer ones are not keys. */
#define GW_KEY_MIN 16
#define GW_KEY_MAX 512

enum gw_kind { GW_KIND_OPENAI, GW_KIND_ANTHROPIC, GW_KIND_MAX };

struct gw_url {
	bool https;
	bool host_is_ip;
	char *host;        /* lower case; an IPv6 address without brackets */
	char *host_header; /* host, bracketed if IPv6, with ":port" if not the default */
	uint16_t port;
	char *path; /* "" or "/..." without a trailing '/' */
};

struct gw_provider {
	char *name;
	enum gw_kind kind;
	char *base_url;
	struct gw_url url;
	char *key_env, *key_file, *ca_file;
	uint64_t timeout_ms;
	char *key; /* warden_gateway_config_load_keys(); wiped when freed */
};

/* Prices are micro-USD per million tokens, which is also pico-USD per token. */
struct gw_model {
	char *name, *upstream;
	size_t provider; /* index in the configuration's providers */
	uint64_t input_price, output_price;
	uint64_t max_output; /* 0: GW_DEFAULT_MAX_OUTPUT */
};

/* 0 means no limit. cost is in pico-USD. */
struct gw_limits {
	uint64_t requests, input_tokens, output_tokens, cost;
	uint64_t requests_per_min, tokens_per_min;
};

struct gw_section {
	char *policy;             /* a policy name or "*" */
	size_t *models, n_models; /* indices in the configuration's models */
	struct gw_limits limits;
	bool log_content;
};

struct warden_gateway_config {
	struct gw_provider *providers;
	size_t n_providers;
	struct gw_model *models;
	size_t n_models;
	struct gw_section *sections;
	size_t n_sections;
};

/* The section for a policy: its own, else "*", else NULL. */
const struct gw_section *gw_config_section(const struct warden_gateway_config *c,
                                           const char *policy);
/* The model of that name if the section allows it, else NULL. */
const struct gw_model *gw_section_model(const struct warden_gateway_config *c,
                                        const struct gw_section *s, const char *name);

/* Parse an http:// or https:// base URL (no user, query or fragment). On error returns -1
 * with a static reason. ret is cleared with gw_url_clear(). */
int gw_url_parse(const char *s, struct gw_url *ret, const char **ret_why);
void gw_url_clear(struct gw_url *u);

/* ---- bodies ---------------------------------------------------------------------------- */

enum gw_api {
	GW_API_CHAT,
	GW_API_RESPONSES,
	GW_API_EMBEDDINGS,
	GW_API_MODELS,
	GW_API_MESSAGES,
	GW_API_MAX
};
/* "openai.chat", ... as in struct warden_gateway_call */
extern const char *const gw_api_names[GW_API_MAX];

#define GW_WHY_MAX 200

/* A bounded growable buffer (max 0: unbounded); bytes past max are dropped and
 * `truncated` set. Always NUL-terminated once something was added. */
struct gw_buf {
	char *p;
	size_t len, cap, max;
	bool truncated;
};
void gw_buf_add(struct gw_buf *b, const char *s, size_t n);
void gw_buf_clear(struct gw_buf *b);

struct gw_request {
	json_t *root;
	const char *model; /* inside root */
	bool stream;
	uint64_t max_output; /* what the request allows per choice, 0 if it says nothing */
	uint64_t choices;    /* chat's "n", else 1 */
};

/* Parse a request body for api (not GW_API_MODELS): a JSON object with a "model" string
 * and well-typed token and stream fields. On error returns -1 and writes why (for a 400
 * answer) into ret_why. r is cleared with gw_request_clear(). */
int gw_request_parse(enum gw_api api, const char *body, size_t len, struct gw_request *r,
                     char ret_why[GW_WHY_MAX]);
void gw_request_clear(struct gw_request *r);
/* The input tokens reserved for a request whose body is len bytes. */
uint64_t gw_input_estimate(const struct gw_request *r, size_t len);
/* The output tokens reserved: the request's maximum (times its choices), else the model's,
 * else GW_DEFAULT_MAX_OUTPUT; 0 for embeddings. */
uint64_t gw_output_reserve(enum gw_api api, const struct gw_request *r, uint64_t model_max);
/* The body to send upstream: "model" replaced by upstream (when not NULL), and for a
 * streamed chat, stream_options.include_usage set so that the last chunk carries usage.
 * Caller frees. */
char *gw_request_forward(enum gw_api api, struct gw_request *r, const char *upstream,
                         uint64_t max_output);

/* Usage as the provider reports it. Anthropic's cache_creation_input_tokens and
 * cache_read_input_tokens are added to input. */
struct gw_usage {
	uint64_t input, output;
	bool have_input, have_output;
};
/* Whether u is enough to settle a call of api (embeddings report no output). */
bool gw_usage_complete(enum gw_api api, const struct gw_usage *u);
/* Usage from a whole JSON answer; 0 when found, -1 otherwise. */
int gw_usage_from_json(enum gw_api api, const char *body, size_t len, struct gw_usage *ret);

/* A server-sent event stream, fed as it arrives: usage from the events that carry it
 * (chat: a chunk with "usage"; responses: response.completed/incomplete/failed; messages:
 * message_start and message_delta) and, when text is not NULL, the text of the deltas. */
struct gw_sse {
	enum gw_api api;
	struct gw_buf line, data;
	bool after_cr;
	struct gw_usage usage;
	struct gw_buf *text;
};
void gw_sse_init(struct gw_sse *s, enum gw_api api, struct gw_buf *text);
void gw_sse_feed(struct gw_sse *s, const char *p, size_t n);
void gw_sse_clear(struct gw_sse *s);

/* Replaces every occurrence of key in a stream cut at arbitrary places with
 * GW_REDACTED: a chunk's tail that could begin the key is held back until the next chunk
 * (or gw_redact_flush) decides. key must outlive r. */
#define GW_REDACTED "[redacted]"
struct gw_redactor {
	const char *key;
	size_t key_len, held;
};
void gw_redact(struct gw_redactor *r, const char *p, size_t n, struct gw_buf *out);
void gw_redact_flush(struct gw_redactor *r, struct gw_buf *out);

/* ---- budgets and rate limits ----------------------------------------------------------- */

struct gw_charge {
	uint64_t input, output, cost; /* cost in pico-USD */
};
/* What input and output tokens cost at m's prices (saturating). */
uint64_t gw_cost(const struct gw_model *m, uint64_t input, uint64_t output);

/* A token bucket holding up to per_min units, refilled continuously at per_min per
 * minute; level is in units of 1/60,000,000 (a microsecond's refill at 1 per minute). */
struct gw_bucket {
	uint64_t per_min, level, last_us;
};

struct gw_budget {
	struct gw_limits lim;
	uint64_t requests;
	struct gw_charge spent, reserved;
	struct gw_bucket req_rate, tok_rate;
};

struct gw_refusal {
	int status;           /* 403: cannot fit anymore; 429: try again later */
	uint64_t retry_after; /* seconds, for 429 */
	char why[GW_WHY_MAX];
};

void gw_budget_init(struct gw_budget *b, const struct gw_limits *lim, uint64_t now_us);
/* Reserve want (and one request) if every budget and rate limit allows it; otherwise
 * return -1 with ret filled and nothing taken. */
int gw_budget_reserve(struct gw_budget *b, const struct gw_charge *want, uint64_t now_us,
                      struct gw_refusal *ret);
/* Release a reservation and charge actual, or the whole reservation when actual is NULL;
 * the tokens bucket gets back what the reservation took beyond actual. */
void gw_budget_settle(struct gw_budget *b, const struct gw_charge *res,
                      const struct gw_charge *actual, uint64_t now_us);

#endif
