/* error.h: the error contract of libwarden.
 *
 * A function that can fail returns a negative value (or NULL) and fills
 * `struct warden_error **err`; on success *err is untouched. Context is added on the way
 * up with warden_error_wrap() ("policy.yaml:12:3: network.allow[2]: not a hostname").
 * Only front ends print errors, with warden_error_text().
 */
#ifndef WARDEN_ERROR_H
#define WARDEN_ERROR_H

struct warden_error {
	int errnum; /* errno value, 0 when the message says it all */
	char *msg;  /* what failed, without the errno text */
	char *text; /* cached full text, built by warden_error_text() */
};

/* Fill *err (if err is not NULL and *err is NULL) and return -1. errnum 0 means the
 * message is complete on its own. */
int warden_error_set(struct warden_error **err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefix the message of *err with context ("step: "); returns -1 for chaining. */
int warden_error_wrap(struct warden_error **err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "msg: strerror(errnum)" or "msg". Owned by the error. */
const char *warden_error_text(struct warden_error *e);
void warden_error_free(struct warden_error *e);
static inline void warden_error_freep(struct warden_error **e)
{
	warden_error_free(*e);
}
#define _cleanup_error_ __attribute__((cleanup(warden_error_freep)))

#endif
