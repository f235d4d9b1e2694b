/* fuzz_guest_frame.c: the guest protocol's decoders (src/lib/vm/frame.c), which each side
 * runs over bytes from the other: the host over what the guest (running the agent's
 * code) sends, the guest agent over what the host sends.
 *
 * The first byte picks the direction; the rest is a stream, decoded frame by frame the
 * way relay.c and the agent do. Checks: a decoded frame lies within the input, has a
 * type of its direction and a payload no larger than FRAME_MAX (exactly 4 bytes for
 * PING, PONG and RESIZE); EXEC and FILE payloads decode to requests whose strings are
 * terminated and inside the limits.
 */
#define _GNU_SOURCE
#include "src/lib/vm/frame.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_exec(const struct frame *f)
{
	struct frame_exec x;
	const char *why;
	if (frame_exec_decode(f->payload, f->len, &x, &why) < 0)
		return;
	size_t n = 0;
	for (char **a = x.argv; *a; a++, n++)
		(void)strlen(*a);
	for (char **e = x.env; *e; e++, n++)
		if (!strchr(*e, '='))
			abort();
	if (!n || n > FRAME_EXEC_ARGS || (x.workdir && x.workdir[0] != '/') || x.uid == 0xffffffff)
		abort();
	frame_exec_clear(&x);
}

static void check_file(const struct frame *f)
{
	struct frame_file ff;
	const char *why;
	if (frame_file_decode(f->payload, f->len, &ff, &why) < 0)
		return;
	if (ff.path[0] != '/' || ff.mode > 07777 || ff.data < f->payload ||
	    ff.data + ff.len != f->payload + f->len)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	enum frame_dir dir = data[0] & 1 ? FRAME_TO_HOST : FRAME_TO_GUEST;
	/* A copy of exactly the input's length, so that ASan sees any read past it. */
	uint8_t *buf = malloc(size - 1 ? size - 1 : 1);
	memcpy(buf, data + 1, size - 1);
	size_t off = 0, used;
	struct frame f;
	const char *why;
	while (frame_decode(buf + off, size - 1 - off, dir, &f, &used, &why) == 1) {
		if (used != FRAME_HEADER + (size_t)f.len || f.len > FRAME_MAX ||
		    f.payload != buf + off + FRAME_HEADER || off + used > size - 1)
			abort();
		if ((dir == FRAME_TO_HOST) != (f.type >= FRAME_READY))
			abort();
		if ((f.type == FRAME_PING || f.type == FRAME_PONG || f.type == FRAME_RESIZE) &&
		    f.len != 4)
			abort();
		if (f.type == FRAME_EXEC)
			check_exec(&f);
		if (f.type == FRAME_FILE)
			check_file(&f);
		off += used;
	}
	free(buf);
	return 0;
}
