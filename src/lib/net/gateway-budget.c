/* gateway-budget.c: a sandbox's budgets and rate limits.
 *
 * Sections: costs; token buckets; reserving and settling.
 *
 * Everything runs on the event loop's one thread, so a reservation is taken or refused
 * in one step: calls in flight hold their worst case, and no interleaving of answers can
 * spend more than was reserved. All arithmetic is integer (tokens, pico-USD,
 * microseconds) and saturating, so a budget check is exact.
 */
#include "gateway-internal.h"
#include "../util.h"

#include <inttypes.h>
#include <stdarg.h>

#define US_PER_MIN   UINT64_C(60000000)
#define PICO_PER_USD UINT64_C(1000000000000)

/* ---- costs ----------------------------------------------------------------------------- */

static uint64_t add_sat(uint64_t a, uint64_t b)
{
	return a + b < a ? UINT64_MAX : a + b;
}

static uint64_t sub_sat(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

static uint64_t mul_sat(uint64_t a, uint64_t b)
{
	uint64_t r;
	return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

uint64_t gw_cost(const struct gw_model *m, uint64_t input, uint64_t output)
{
	return add_sat(mul_sat(input, m->input_price), mul_sat(output, m->output_price));
}

/* ---- token buckets --------------------------------------------------------------------- */

static void bucket_init(struct gw_bucket *k, uint64_t per_min, uint64_t now_us)
{
	k->per_min = per_min;
	k->level = per_min * US_PER_MIN; /* per_min <= 10^9: no overflow */
	k->last_us = now_us;
}

static void bucket_refill(struct gw_bucket *k, uint64_t now_us)
{
	uint64_t dt = sub_sat(now_us, k->last_us);
	k->last_us = now_us;
	if (!k->per_min)
		return;
	if (dt > US_PER_MIN)
		dt = US_PER_MIN;
	k->level += dt * k->per_min;
	if (k->level > k->per_min * US_PER_MIN)
		k->level = k->per_min * US_PER_MIN;
}

/* Whole seconds until n units (n <= per_min) are in the bucket; 0 when they are. */
static uint64_t bucket_wait(const struct gw_bucket *k, uint64_t n)
{
	uint64_t need = n * US_PER_MIN;
	if (!k->per_min || k->level >= need)
		return 0;
	uint64_t us = (need - k->level + k->per_min - 1) / k->per_min;
	return (us + 999999) / 1000000;
}

/* ---- reserving and settling ------------------------------------------------------------ */

void gw_budget_init(struct gw_budget *b, const struct gw_limits *lim, uint64_t now_us)
{
	memset(b, 0, sizeof(*b));
	b->lim = *lim;
	bucket_init(&b->req_rate, lim->requests_per_min, now_us);
	bucket_init(&b->tok_rate, lim->tokens_per_min, now_us);
}

struct dim {
	const char *name;
	uint64_t max, spent, reserved, want;
	bool usd;
};

static void amount(char *buf, size_t len, const struct dim *d, uint64_t v)
{
	if (d->usd)
		snprintf(buf, len, "$%" PRIu64 ".%06" PRIu64, v / PICO_PER_USD,
		         v % PICO_PER_USD / 1000000);
	else
		snprintf(buf, len, "%" PRIu64, v);
}

static int refuse(struct gw_refusal *ret, int status, uint64_t retry_after, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int refuse(struct gw_refusal *ret, int status, uint64_t retry_after, const char *fmt, ...)
{
	va_list ap;
	ret->status = status;
	ret->retry_after = retry_after;
	va_start(ap, fmt);
	vsnprintf(ret->why, sizeof(ret->why), fmt, ap);
	va_end(ap);
	return -1;
}

/* A call that cannot fit even once every call in flight has settled (settling only adds
 * to what is spent) will never fit: 403, which SDKs do not retry. One that fits but for
 * what calls in flight hold may fit in a moment: 429. */
static int check_budget(const struct gw_budget *b, const struct gw_charge *want,
                        struct gw_refusal *ret)
{
	const struct dim dims[] = {
	    {"requests", b->lim.requests, b->requests, 0, 1, false},
	    {"input_tokens", b->lim.input_tokens, b->spent.input, b->reserved.input, want->input,
	     false},
	    {"output_tokens", b->lim.output_tokens, b->spent.output, b->reserved.output,
	     want->output, false},
	    {"cost_usd", b->lim.cost, b->spent.cost, b->reserved.cost, want->cost, true},
	};
	char w[32], left[32];
	for (size_t i = 0; i < ARRAY_SIZE(dims); i++) {
		const struct dim *d = &dims[i];
		if (!d->max || add_sat(d->spent, d->want) <= d->max)
			continue;
		amount(w, sizeof(w), d, d->want);
		amount(left, sizeof(left), d, sub_sat(d->max, d->spent));
		return refuse(ret, 403, 0, "budget: %s exhausted (this call may use %s, %s left)",
		              d->name, w, left);
	}
	for (size_t i = 0; i < ARRAY_SIZE(dims); i++) {
		const struct dim *d = &dims[i];
		if (!d->max || add_sat(add_sat(d->spent, d->reserved), d->want) <= d->max)
			continue;
		amount(w, sizeof(w), d, d->reserved);
		return refuse(ret, 429, 1, "budget: %s held by calls in flight (%s reserved)",
		              d->name, w);
	}
	return 0;
}

static int check_rate(struct gw_budget *b, uint64_t tokens, struct gw_refusal *ret)
{
	if (b->tok_rate.per_min && tokens > b->tok_rate.per_min)
		return refuse(ret, 403, 0,
		              "rate limit: this call may use %" PRIu64
		              " tokens, more than tokens_per_min (%" PRIu64 ")",
		              tokens, b->tok_rate.per_min);
	uint64_t wait_req = bucket_wait(&b->req_rate, 1);
	uint64_t wait_tok = bucket_wait(&b->tok_rate, tokens);
	if (wait_req >= wait_tok && wait_req)
		return refuse(ret, 429, wait_req, "rate limit: requests_per_min (%" PRIu64 ")",
		              b->req_rate.per_min);
	if (wait_tok)
		return refuse(ret, 429, wait_tok, "rate limit: tokens_per_min (%" PRIu64 ")",
		              b->tok_rate.per_min);
	return 0;
}

int gw_budget_reserve(struct gw_budget *b, const struct gw_charge *want, uint64_t now_us,
                      struct gw_refusal *ret)
{
	uint64_t tokens = add_sat(want->input, want->output);
	bucket_refill(&b->req_rate, now_us);
	bucket_refill(&b->tok_rate, now_us);
	if (check_budget(b, want, ret) < 0 || check_rate(b, tokens, ret) < 0)
		return -1;
	b->requests++;
	b->reserved.input = add_sat(b->reserved.input, want->input);
	b->reserved.output = add_sat(b->reserved.output, want->output);
	b->reserved.cost = add_sat(b->reserved.cost, want->cost);
	if (b->req_rate.per_min)
		b->req_rate.level -= US_PER_MIN;
	if (b->tok_rate.per_min)
		b->tok_rate.level -= tokens * US_PER_MIN;
	return 0;
}

void gw_budget_settle(struct gw_budget *b, const struct gw_charge *res,
                      const struct gw_charge *actual, uint64_t now_us)
{
	const struct gw_charge *c = actual ? actual : res;
	b->reserved.input = sub_sat(b->reserved.input, res->input);
	b->reserved.output = sub_sat(b->reserved.output, res->output);
	b->reserved.cost = sub_sat(b->reserved.cost, res->cost);
	b->spent.input = add_sat(b->spent.input, c->input);
	b->spent.output = add_sat(b->spent.output, c->output);
	b->spent.cost = add_sat(b->spent.cost, c->cost);
	if (!b->tok_rate.per_min || !actual)
		return;
	bucket_refill(&b->tok_rate, now_us);
	uint64_t held = add_sat(res->input, res->output);
	uint64_t used = add_sat(actual->input, actual->output);
	uint64_t cap = b->tok_rate.per_min * US_PER_MIN;
	if (held > used)
		b->tok_rate.level +=
		    mul_sat(held - used, US_PER_MIN) > cap ? cap : (held - used) * US_PER_MIN;
	else
		b->tok_rate.level = sub_sat(b->tok_rate.level, mul_sat(used - held, US_PER_MIN));
	if (b->tok_rate.level > cap)
		b->tok_rate.level = cap;
}
