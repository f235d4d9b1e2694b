/* error.c: the error contract (see error.h). */
#define _GNU_SOURCE
#include "error.h"
#include "util.h"

#include <stdarg.h>

int warden_error_set(struct warden_error **err, int errnum, const char *fmt, ...)
{
	if (!err || *err)
		return -1;
	struct warden_error *e = xcalloc(1, sizeof(*e));
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&e->msg, fmt, ap) < 0)
		abort();
	va_end(ap);
	e->errnum = errnum < 0 ? -errnum : errnum;
	*err = e;
	return -1;
}

int warden_error_wrap(struct warden_error **err, const char *fmt, ...)
{
	if (!err || !*err)
		return -1;
	char *ctx;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&ctx, fmt, ap) < 0)
		abort();
	va_end(ap);
	char *msg = xasprintf("%s: %s", ctx, (*err)->msg);
	free(ctx);
	free((*err)->msg);
	(*err)->msg = msg;
	free((*err)->text);
	(*err)->text = NULL;
	return -1;
}

const char *warden_error_text(struct warden_error *e)
{
	if (!e)
		return "unknown error";
	if (!e->text)
		e->text =
		    e->errnum ? xasprintf("%s: %s", e->msg, strerror(e->errnum)) : xstrdup(e->msg);
	return e->text;
}

void warden_error_free(struct warden_error *e)
{
	if (!e)
		return;
	free(e->msg);
	free(e->text);
	free(e);
}
