/* request.h: wardend's routing table and the validation of everything a request carries
 * (path, query, JSON body), before any of it is acted on.
 *
 * Pure functions over bytes: no event loop, no sandbox, no I/O, so that tests/fuzz/
 * fuzz_api.c can drive them with anything. Each failure fills a struct api_error whose
 * message names the field; the HTTP layer sends it as {"error": {"code", "message"}}.
 */
#ifndef WARDEND_REQUEST_H
#define WARDEND_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/util.h"

struct api_error {
	int status;       /* 4xx or 5xx */
	const char *code; /* snake_case, static */
	char message[512];
	char allow[64]; /* 405: the methods the path has, for the Allow header */
};

int api_fail(struct api_error *e, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- routes ------------------------------------------------------------------------- */

enum api_route {
	R_HEALTHZ,
	R_METRICS,
	R_CREATE,
	R_LIST,
	R_GET,
	R_DELETE,
	R_EXEC,
	R_EXEC_KILL,
	R_FILE_GET,
	R_FILE_PUT,
	R_FILE_DELETE,
	R_FILE_LIST,
	R_FILE_STAT,
	R_FILE_MKDIR,
	R_PAUSE,
	R_RESUME,
	R_STATS,
	R_EVENTS,
	R_LOGS,
	R_MAX,
};

struct api_route_def {
	const char *method;
	const char *pattern;  /* "{id}": a sandbox id, "{exec_id}": an exec id */
	const char *query[4]; /* the query parameters it takes; others are refused */
	bool body;            /* takes a body */
};
extern const struct api_route_def api_routes[R_MAX];

#define SANDBOX_ID_LEN 16

struct api_match {
	enum api_route route;
	char id[SANDBOX_ID_LEN + 1];
	uint64_t exec_id;
};

/* Match method and path (the URI's path, without the query). Returns 0, or -1 with 404
 * (no such path), 405 (the path exists, not with this method: e->allow lists those) or
 * 400 (a malformed id). */
int api_route_match(const char *method, const char *path, struct api_match *ret,
                    struct api_error *e);

/* ---- query strings ------------------------------------------------------------------ */

struct api_param {
	char *name, *value;
};
struct api_query {
	struct api_param *v;
	size_t n;
};
/* Split and percent-decode a query string (NULL: none) and check every name is one the
 * route takes, every value is free of NUL bytes. */
int api_query_parse(enum api_route route, const char *query, struct api_query *ret,
                    struct api_error *e);
void api_query_clear(struct api_query *q);
/* The value of a parameter given at most once, or NULL; -1 if given twice. */
int api_query_get(const struct api_query *q, const char *name, const char **ret,
                  struct api_error *e);

/* The files routes' parameters: path (required), mode, recursive, parents. */
struct api_files_q {
	const char *path; /* borrowed from the api_query */
	int mode;         /* -1: not given */
	bool recursive, parents;
};
int api_files_query(enum api_route route, const struct api_query *q, struct api_files_q *ret,
                    struct api_error *e);

/* GET /v1/sandboxes?label=k=v (repeatable): the pairs, borrowed from q. */
struct api_label_filter {
	const char *key[16];
	size_t key_len[16];
	const char *value[16];
	size_t n;
};
int api_list_query(const struct api_query *q, struct api_label_filter *ret, struct api_error *e);

/* ---- bodies ------------------------------------------------------------------------- */

#define API_TTL_DEFAULT 3600

struct api_create {
	char *policy;      /* a preset or stored policy name; NULL with policy_yaml */
	char *policy_yaml; /* inline policy text */
	size_t policy_yaml_len;
	int64_t ttl;
	json_t *labels;  /* an object of strings (owned reference) */
	struct strv env; /* NAME=VALUE */
};
/* POST /v1/sandboxes. An empty body is {}. ttl above max_ttl is refused. */
int api_parse_create(const char *body, size_t len, int64_t max_ttl, struct api_create *ret,
                     struct api_error *e);
void api_create_clear(struct api_create *c);

struct api_exec {
	struct strv argv;
	struct strv env; /* NAME=VALUE */
	char *workdir;
	char *stdin_data; /* NULL: none (stdin is /dev/null) */
	size_t stdin_len;
	double timeout; /* seconds; 0: none */
};
int api_parse_exec(const char *body, size_t len, struct api_exec *ret, struct api_error *e);
void api_exec_clear(struct api_exec *x);

/* POST .../exec/{exec_id}/kill: {"signal": N}, default 9. */
int api_parse_kill(const char *body, size_t len, int *ret_signal, struct api_error *e);

/* Does a label set (a JSON object of strings) pass the filter? */
bool api_labels_match(json_t *labels, const struct api_label_filter *f);

/* ---- Accept ------------------------------------------------------------------------- */

/* Accept header -> how exec answers. */
enum api_stream { STREAM_NONE, STREAM_SSE, STREAM_NDJSON };
enum api_stream api_stream_kind(const char *accept);

#endif
