/* yaml-util.c: errors, scalars and loader checks shared by the YAML configuration readers.
 *
 * Sections: errors; scalars; around the loader.
 */
#define _GNU_SOURCE
#include "yaml-util.h"
#include "util.h"

#include <stdio.h>

/* ---- errors ---------------------------------------------------------------------------- */

int wyaml_error(struct warden_error **err, const char *origin, const yaml_node_t *n,
                const char *key, const char *fmt, ...)
{
	_cleanup_free_ char *msg = NULL;
	va_list ap;
	va_start(ap, fmt);
	int r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0)
		abort();
	return warden_error_set(err, 0, "%s:%zu:%zu: %s: %s", origin,
	                        n ? n->start_mark.line + 1 : 1, n ? n->start_mark.column + 1 : 1,
	                        key, msg);
}

void wyaml_key(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

int wyaml_syntax_error(const yaml_parser_t *parser, const char *origin, struct warden_error **err)
{
	return warden_error_set(err, 0, "%s:%zu:%zu: YAML syntax: %s%s%s", origin,
	                        parser->problem_mark.line + 1, parser->problem_mark.column + 1,
	                        parser->problem ? parser->problem : "malformed document",
	                        parser->context ? " " : "", parser->context ? parser->context : "");
}

/* ---- scalars --------------------------------------------------------------------------- */

const char *wyaml_node_kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_SCALAR_NODE:
		return "a scalar";
	case YAML_SEQUENCE_NODE:
		return "a list";
	case YAML_MAPPING_NODE:
		return "a mapping";
	default:
		return "nothing";
	}
}

int wyaml_get_str(struct warden_error **err, const char *origin, const yaml_node_t *n,
                  const char *key, const char **ret)
{
	if (n->type != YAML_SCALAR_NODE)
		return wyaml_error(err, origin, n, key, "expected a string, found %s",
		                   wyaml_node_kind(n));
	/* A value is used as a C string: one cut short by a NUL byte would be checked as
	 * one thing and meant as another. */
	if (strlen((const char *)n->data.scalar.value) != n->data.scalar.length)
		return wyaml_error(err, origin, n, key, "contains a NUL byte");
	*ret = (const char *)n->data.scalar.value;
	return 0;
}

int wyaml_get_bool(struct warden_error **err, const char *origin, const yaml_node_t *n,
                   const char *key, bool *ret)
{
	const char *s;
	if (wyaml_get_str(err, origin, n, key, &s) < 0)
		return -1;
	if (streq(s, "true"))
		*ret = true;
	else if (streq(s, "false"))
		*ret = false;
	else
		return wyaml_error(err, origin, n, key, "\"%s\" is not true or false", s);
	return 0;
}

bool wyaml_is_unlimited(const char *s)
{
	return streq(s, "unlimited") || streq(s, "none");
}

/* ---- around the loader ----------------------------------------------------------------- */

static const yaml_char_t *event_anchor(const yaml_event_t *event)
{
	switch (event->type) {
	case YAML_SCALAR_EVENT:
		return event->data.scalar.anchor;
	case YAML_SEQUENCE_START_EVENT:
		return event->data.sequence_start.anchor;
	case YAML_MAPPING_START_EVENT:
		return event->data.mapping_start.anchor;
	default:
		return NULL;
	}
}

/* Two costs of libyaml's loader grow with the square of the input: its scanner works in
 * proportion to the flow nesting depth for every token, and it compares every anchor with
 * all those before it. The schemas are a few levels deep and need no anchors, so input
 * that nests deeper or names more anchors than they could use is refused from its events,
 * as soon as it does, before the loader sees it. */
int wyaml_check_shape(const char *text, size_t len, const char *origin, const char *what,
                      int max_depth, int max_anchors, struct warden_error **err)
{
	yaml_parser_t parser;
	yaml_event_t event;
	int depth = 0, anchors = 0, r = 0;
	bool end = false;
	if (!yaml_parser_initialize(&parser))
		abort();
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	while (r == 0 && !end && yaml_parser_parse(&parser, &event)) {
		if (event.type == YAML_SEQUENCE_START_EVENT ||
		    event.type == YAML_MAPPING_START_EVENT) {
			if (++depth > max_depth)
				r = warden_error_set(err, 0,
				                     "%s:%zu:%zu: %s: nested deeper than %d levels",
				                     origin, event.start_mark.line + 1,
				                     event.start_mark.column + 1, what, max_depth);
		} else if (event.type == YAML_SEQUENCE_END_EVENT ||
		           event.type == YAML_MAPPING_END_EVENT) {
			depth--;
		}
		if (r == 0 && event_anchor(&event) && ++anchors > max_anchors)
			r = warden_error_set(err, 0, "%s:%zu:%zu: %s: more than %d anchors", origin,
			                     event.start_mark.line + 1, event.start_mark.column + 1,
			                     what, max_anchors);
		end = event.type == YAML_STREAM_END_EVENT;
		yaml_event_delete(&event);
	}
	yaml_parser_delete(&parser);
	return r;
}

int wyaml_no_more_documents(yaml_parser_t *parser, const char *origin, const char *what,
                            struct warden_error **err)
{
	yaml_document_t next;
	int r = 0;
	/* A second document would be ignored by a reader that takes the first: refusing it
	 * keeps what is enforced what the file appears to say. */
	if (!yaml_parser_load(parser, &next))
		return wyaml_syntax_error(parser, origin, err);
	if (yaml_document_get_root_node(&next))
		r = warden_error_set(err, 0, "%s:%zu:%zu: %s: only one YAML document is allowed",
		                     origin, next.start_mark.line + 1, next.start_mark.column + 1,
		                     what);
	yaml_document_delete(&next);
	return r;
}
