/* yaml-util.h: what the readers of YAML configuration files share (policy-yaml.c for
 * policies, net/gateway-config.c for gateway.yaml).
 *
 * Sections: errors that name file:line:column and a key path; scalars; the checks made
 * around libyaml's loader (the input's shape before it, one document after it).
 *
 * Error contract: see error.h. Nothing here prints.
 */
#ifndef WARDEN_YAML_UTIL_H
#define WARDEN_YAML_UTIL_H

#include "error.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

/* ---- errors ---------------------------------------------------------------------------- */

/* Fill *err with "ORIGIN:LINE:COLUMN: KEY: MESSAGE", at n's start (1:1 when n is NULL);
 * returns -1. */
int wyaml_error(struct warden_error **err, const char *origin, const yaml_node_t *n,
                const char *key, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* A key path below another ("policies.ci.models[2]") into buf; one that does not fit is
 * cut, which only shortens a message. */
void wyaml_key(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A YAML syntax error at the parser's problem mark; returns -1. */
int wyaml_syntax_error(const yaml_parser_t *parser, const char *origin, struct warden_error **err);

/* ---- scalars --------------------------------------------------------------------------- */

/* "a scalar", "a list", "a mapping" or "nothing", for messages. */
const char *wyaml_node_kind(const yaml_node_t *n);

/* The text of a scalar (owned by the document). Lists, mappings and scalars with a NUL
 * byte are refused with an error at n: "expected a string, found a list". */
int wyaml_get_str(struct warden_error **err, const char *origin, const yaml_node_t *n,
                  const char *key, const char **ret);

/* "true" or "false"; anything else ("yes", "1", ...) is refused. */
int wyaml_get_bool(struct warden_error **err, const char *origin, const yaml_node_t *n,
                   const char *key, bool *ret);

/* Whether a limit is written as no limit ("unlimited" or "none"). */
bool wyaml_is_unlimited(const char *s);

/* ---- around the loader ----------------------------------------------------------------- */

/* Read the input's events and refuse it ("ORIGIN:LINE:COLUMN: WHAT: nested deeper than N
 * levels", "...: more than N anchors") before libyaml's loader builds a document from it.
 * Syntax errors are left to the loader, which reports them. Returns 0 or -1. */
int wyaml_check_shape(const char *text, size_t len, const char *origin, const char *what,
                      int max_depth, int max_anchors, struct warden_error **err);

/* After one document was loaded from parser: refuse a second one ("ORIGIN:LINE:COLUMN:
 * WHAT: only one YAML document is allowed") or a syntax error after the first. Returns 0
 * or -1. */
int wyaml_no_more_documents(yaml_parser_t *parser, const char *origin, const char *what,
                            struct warden_error **err);

#endif
