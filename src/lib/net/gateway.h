/* gateway.h: the model gateway: model APIs inside the sandbox, credentials outside.
 *
 * Inside the sandbox a listener on loopback speaks the OpenAI API (/v1/chat/completions,
 * /v1/responses, /v1/embeddings, /v1/models) and the Anthropic API (/v1/messages). A
 * request carries the sandbox's token, which is worthless anywhere else; the gateway checks
 * the model against the policy's allowlist, its budget and rate limits, swaps the token
 * for the provider's real key and forwards it, streaming (SSE) answers chunk by chunk.
 * Budgets never overspend: the worst case (input estimate + max tokens) is reserved before
 * forwarding and settled from the usage the provider reports.
 *
 * The configuration (gateway.yaml, docs/gateway.md) lives on the host and never enters a
 * sandbox. Threading: as egress.h. Error contract: see error.h. Nothing here prints.
 */
#ifndef WARDEN_NET_GATEWAY_H
#define WARDEN_NET_GATEWAY_H

#include "../error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

/* The listener's port inside the sandbox (127.0.0.1); OPENAI_BASE_URL is
 * http://127.0.0.1:4141/v1 and ANTHROPIC_BASE_URL http://127.0.0.1:4141. */
#define WARDEN_GATEWAY_PORT 4141

/* ---- configuration (gateway-config.c) -------------------------------------------------- */

struct warden_gateway_config;

/* Load gateway.yaml. Errors name file:line:column and the key, like policy errors. Keys are
 * not read here (see check_keys). */
struct warden_gateway_config *warden_gateway_config_load(const char *path,
                                                         struct warden_error **err);
struct warden_gateway_config *warden_gateway_config_parse(const char *text, size_t len,
                                                          const char *origin,
                                                          struct warden_error **err);
void warden_gateway_config_free(struct warden_gateway_config *c);

/* Whether the configuration has a section for this policy name (or a "*" section). */
bool warden_gateway_config_serves(const struct warden_gateway_config *c, const char *policy);

/* Read the API key of every provider that policy's models use (from the environment
 * variable or the file the configuration names), so that a missing or unreadable key is
 * an error before the sandbox starts. Keys are kept in memory only (secret_strdup(): not
 * inherited by children), never logged; a key read from the environment is wiped from
 * it, so that no process forked later inherits it there either. */
int warden_gateway_config_load_keys(struct warden_gateway_config *c, const char *policy,
                                    struct warden_error **err);

/* The name of the provider whose loaded key occurs in s, or NULL. */
const char *warden_gateway_config_key_in(const struct warden_gateway_config *c, const char *s);

/* ---- the gateway (gateway.c) ----------------------------------------------------------- */

/* One call, reported when it ends (forwarded or refused). Strings are valid during the
 * callback only. */
struct warden_gateway_call {
	const char *api;   /* "openai.chat", "openai.responses", "openai.embeddings",
	                      "openai.models", "anthropic.messages"; NULL for an unknown path */
	const char *model; /* as asked for, or NULL */
	const char *provider;
	int status;          /* the HTTP status the sandbox got (for a cut answer: the one it
	                        began with) */
	bool streamed;       /* the answer was an event stream */
	const char *refused; /* why the gateway refused it ("model not allowed: x", "budget:
	                        output_tokens exhausted (...)", "rate limit: requests_per_min
	                        (...)", "bad token: ...", ...), or NULL when forwarded */
	const char *error;   /* what went wrong upstream (timeout, connection, TLS) or with
	                        the sandbox's client, or NULL */
	bool usage_reported; /* the provider reported usage; otherwise the call was charged
	                        its whole reservation */
	uint64_t input_tokens, output_tokens; /* as the provider reported them (0 if not) */
	double cost_usd;                      /* what the call was charged */
	uint64_t latency_us;                  /* request received to response complete */
	uint64_t first_byte_us;    /* request received to the first byte of the answer sent */
	const char *request_body;  /* only when the policy's section says log_content */
	const char *response_body; /* likewise (for a stream: the text of its deltas); the
	                              provider's key is replaced by "[redacted]" */
};

/* What a sandbox has spent, and what its section allows (0: no limit). */
struct warden_gateway_usage {
	uint64_t requests, input_tokens, output_tokens;
	double cost_usd;
	uint64_t max_requests, max_input_tokens, max_output_tokens;
	double max_cost_usd;
	/* currently reserved by calls in flight */
	uint64_t reserved_input_tokens, reserved_output_tokens;
	double reserved_cost_usd;
};

struct warden_gateway_opts {
	const struct warden_gateway_config *cfg; /* keys loaded; must outlive the gateway */
	const char *policy;                      /* the sandbox's policy name */
	const char *sandbox_id;                  /* informational: calls are not tagged */
	int http_fd;       /* a listening TCP socket made inside the sandbox; taken over (closed
	                      on failure too) */
	const char *token; /* what the sandbox presents (Authorization: Bearer / x-api-key);
	                      at least 16 characters; copied */
	/* Called on the loop's thread when a call ends; it must not free the gateway. */
	void (*on_call)(const struct warden_gateway_call *c, void *ctx);
	void *ctx;
};

struct warden_gateway;

/* Serve o->http_fd on base. Fails when the configuration has no section for the policy,
 * when a key the section needs is not loaded, or when a ca_file cannot be read. libevent
 * writes to sockets with write(2): the process must ignore SIGPIPE. */
struct warden_gateway *warden_gateway_new(struct event_base *base,
                                          const struct warden_gateway_opts *o,
                                          struct warden_error **err);
void warden_gateway_usage(const struct warden_gateway *gw, struct warden_gateway_usage *out);
/* Close the listener and every call in flight (each reported). NULL-safe. */
void warden_gateway_free(struct warden_gateway *gw);

/* A fresh random token for a sandbox ("wdn-" and 48 hex digits, from getrandom(2));
 * caller frees. NULL if the kernel gives no randomness. */
char *warden_gateway_token_new(void);

#endif
