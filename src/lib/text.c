/* text.c: bytes repaired as UTF-8 text (text.h). */
#define _GNU_SOURCE
#include "text.h"
#include "util.h"

/* The length of the UTF-8 sequence at s: n (valid), 0 (invalid), -1 (valid so far but
 * cut at avail). Overlong forms, surrogates and code points past U+10FFFF are invalid. */
static int seq_len(const unsigned char *s, size_t avail)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	int n;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c == 0xe0)
		n = 3, lo = 0xa0;
	else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef)
		n = 3;
	else if (c == 0xed)
		n = 3, hi = 0x9f;
	else if (c == 0xf0)
		n = 4, lo = 0x90;
	else if (c >= 0xf1 && c <= 0xf3)
		n = 4;
	else if (c == 0xf4)
		n = 4, hi = 0x8f;
	else
		return 0;
	for (int i = 1; i < n; i++) {
		if ((size_t)i >= avail)
			return -1;
		unsigned char b = s[i];
		if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xbf))
			return 0;
	}
	return n;
}

static void put(struct warden_text *t, const void *p, size_t n)
{
	if (t->len + n + 1 > t->cap) {
		t->cap = (t->len + n + 1) * 2;
		t->s = xrealloc(t->s, t->cap);
	}
	memcpy(t->s + t->len, p, n);
	t->len += n;
	t->s[t->len] = '\0';
}

void warden_text_add(struct warden_text *t, const void *data, size_t len, bool final)
{
	static const char repl[] = "\xef\xbf\xbd";
	size_t n = t->carry_len + len;
	_cleanup_free_ unsigned char *buf = xmalloc(n + 1);
	memcpy(buf, t->carry, t->carry_len);
	if (len)
		memcpy(buf + t->carry_len, data, len);
	t->carry_len = 0;
	put(t, "", 0);
	size_t i = 0, run = 0; /* run: start of the valid bytes not yet copied */
	while (i < n) {
		int l = seq_len(buf + i, n - i);
		if (l > 0) {
			i += (size_t)l;
			continue;
		}
		put(t, buf + run, i - run);
		if (l < 0 && !final) {
			t->carry_len = n - i;
			memcpy(t->carry, buf + i, t->carry_len);
			return;
		}
		put(t, repl, 3);
		i += l < 0 ? n - i : 1;
		run = i;
	}
	put(t, buf + run, i - run);
}

void warden_text_clear(struct warden_text *t)
{
	free(t->s);
	*t = (struct warden_text){0};
}
