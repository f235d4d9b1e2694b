/* text.h: bytes that should be UTF-8 text (a command's output, a file shown as text),
 * repaired as they come: invalid sequences become U+FFFD, so the result is always valid
 * UTF-8 (what JSON strings need), and a sequence cut between two pieces is kept for the
 * next. wardend's exec answers and `warden mcp`'s tool results use it.
 */
#ifndef WARDEN_TEXT_H
#define WARDEN_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* Zero-initialised before the first warden_text_add(). */
struct warden_text {
	char *s; /* the text so far, NUL-terminated (NULL before the first add) */
	size_t len, cap;
	unsigned char carry[4]; /* an incomplete sequence at the end of the last piece */
	size_t carry_len;
};

/* Append len bytes: overlong forms, surrogates, code points past U+10FFFF and stray
 * bytes become U+FFFD, one per byte; an incomplete sequence at the end is kept in carry
 * (at most 3 bytes) for the next call. final: there is no next call, so such a sequence
 * becomes one U+FFFD; leave it unset to drop the end of a piece cut at a limit. */
void warden_text_add(struct warden_text *t, const void *data, size_t len, bool final);
void warden_text_clear(struct warden_text *t);

#endif
