/* test_vm_stream.c: one end of a network stream of the guest protocol
 * (src/lib/vm/stream.c), on a socket pair: the stream's socket on one end, the test
 * playing the connection's other party on the other; the frames the stream sends are
 * recorded.
 *
 * Sections: a recording side; bytes in (window, credit, end of data); bytes out (credit
 * bounds reads); ends (both ends of data, errors, CLOSE).
 */
#include "unit.h"
#include "../../src/lib/vm/stream.h"

#include <poll.h>
#include <sys/socket.h>

/* ---- a recording side ------------------------------------------------------------------ */

struct sent {
	uint8_t type;
	uint32_t id, len, value; /* value: a CREDIT's */
	uint64_t bytes;          /* all DATA bytes so far */
	uint64_t credited;       /* all CREDIT so far */
	int frames;
};

static void record(void *ctx, uint8_t type, uint32_t id, const void *p, uint32_t len)
{
	struct sent *s = ctx;
	s->type = type;
	s->id = id;
	s->len = len;
	s->value = len == 4 ? frame_get_u32(p) : 0;
	if (type == FRAME_DATA_OUT)
		s->bytes += len;
	if (type == FRAME_CREDIT_OUT)
		s->credited += s->value;
	s->frames++;
}

struct fixture {
	struct stream_side *side;
	struct sent sent;
	struct stream s;
	int peer; /* the other party of the connection */
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	fx->side = calloc(1, sizeof(*fx->side));
	*fx->side = (struct stream_side){.data = FRAME_DATA_OUT,
	                                 .credit = FRAME_CREDIT_OUT,
	                                 .close = FRAME_CLOSE_OUT,
	                                 .send = record,
	                                 .ctx = &fx->sent};
	stream_init(&fx->s, 7, sv[0]);
	fx->peer = sv[1];
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	stream_free(&fx->s);
	if (fx->peer >= 0)
		close(fx->peer);
	free(fx->side);
	free(fx);
	return 0;
}

static size_t drain(int fd)
{
	static uint8_t buf[65536];
	size_t total = 0;
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		total += (size_t)n;
	return total;
}

/* ---- bytes in -------------------------------------------------------------------------- */

static void test_window_bounds_what_is_held(void **state)
{
	struct fixture *fx = *state;
	static uint8_t chunk[FRAME_MAX];
	const char *why = NULL;
	/* A sender that keeps to its credit, and a peer that reads nothing: the socket's
	 * buffer fills, credit stops coming back, and the stream holds at most one window. */
	uint64_t sent = 0, credit = FRAME_NET_WINDOW;
	while (credit) {
		uint32_t n = credit < sizeof(chunk) ? (uint32_t)credit : sizeof(chunk);
		assert_int_equal(stream_data(fx->side, &fx->s, chunk, n, &why), 0);
		sent += n;
		credit = FRAME_NET_WINDOW - (sent - fx->sent.credited);
	}
	assert_true(fx->s.n_pending > 0 && fx->s.n_pending <= FRAME_NET_WINDOW);
	assert_true(stream_events(&fx->s, true) & POLLOUT);
	/* One byte more than the credit is a protocol error. */
	assert_int_equal(stream_data(fx->side, &fx->s, chunk, 1, &why), -1);
	assert_non_null(strstr(why, "beyond its window"));
	/* The peer reads: the bytes go, and credit comes back in batches. */
	uint64_t got = 0, credited = fx->sent.credited;
	while (got < sent) {
		got += drain(fx->peer);
		stream_ready(fx->side, &fx->s, POLLOUT);
	}
	assert_int_equal(got, sent);
	assert_int_equal(fx->s.n_pending, 0);
	assert_true(fx->sent.credited > credited);
	assert_true(fx->sent.value >= FRAME_NET_WINDOW / 4);
	assert_false(fx->s.dead);
}

static void test_end_of_data_shuts_the_socket(void **state)
{
	struct fixture *fx = *state;
	const char *why = NULL;
	char buf[16];
	assert_int_equal(stream_data(fx->side, &fx->s, (const uint8_t *)"abc", 3, &why), 0);
	assert_int_equal(stream_data(fx->side, &fx->s, NULL, 0, &why), 0);
	assert_int_equal(read(fx->peer, buf, sizeof(buf)), 3);
	assert_int_equal(read(fx->peer, buf, sizeof(buf)), 0); /* the end, after the bytes */
	/* Nothing may follow the end. */
	assert_int_equal(stream_data(fx->side, &fx->s, (const uint8_t *)"x", 1, &why), -1);
	assert_non_null(strstr(why, "after its end"));
	/* Reading on goes on (half-close) until this side's own end. */
	assert_false(fx->s.dead);
	assert_int_equal(write(fx->peer, "reply", 5), 5);
	shutdown(fx->peer, SHUT_WR);
	stream_ready(fx->side, &fx->s, POLLIN);
	assert_int_equal(fx->sent.type, FRAME_DATA_OUT);
	assert_int_equal(fx->sent.len, 5);
	stream_ready(fx->side, &fx->s, POLLIN);
	assert_int_equal(fx->sent.len, 0); /* the end, sent */
	assert_true(fx->s.dead);           /* both ends went, everything written */
}

/* ---- bytes out ------------------------------------------------------------------------- */

static void test_credit_bounds_reads(void **state)
{
	struct fixture *fx = *state;
	static uint8_t chunk[FRAME_MAX];
	const char *why = NULL;
	/* The peer sends and sends: the stream reads one window, then stops. */
	while (stream_events(&fx->s, true) & POLLIN) {
		(void)!write(fx->peer, chunk, sizeof(chunk));
		stream_ready(fx->side, &fx->s, POLLIN);
	}
	assert_int_equal(fx->sent.bytes, FRAME_NET_WINDOW);
	assert_int_equal(fx->s.credit, 0);
	assert_false(stream_events(&fx->s, true) & POLLIN);
	/* Credit reopens it, as far as it goes; credit beyond the window is refused. */
	assert_int_equal(stream_credit(&fx->s, 1000, &why), 0);
	assert_true(stream_events(&fx->s, true) & POLLIN);
	assert_false(stream_events(&fx->s, false) & POLLIN); /* the caller's queue is full */
	(void)!write(fx->peer, chunk, sizeof(chunk));
	stream_ready(fx->side, &fx->s, POLLIN);
	assert_int_equal(fx->sent.bytes, FRAME_NET_WINDOW + 1000);
	assert_int_equal(stream_credit(&fx->s, FRAME_NET_WINDOW, &why), 0);
	assert_int_equal(stream_credit(&fx->s, 1, &why), -1);
	assert_non_null(strstr(why, "beyond its window"));
}

/* ---- ends ------------------------------------------------------------------------------ */

static void test_errors_and_close(void **state)
{
	struct fixture *fx = *state;
	const char *why = NULL;
	/* The peer is gone: bytes for it fail, and the stream says CLOSE. */
	close(fx->peer);
	fx->peer = -1;
	assert_int_equal(stream_data(fx->side, &fx->s, (const uint8_t *)"abc", 3, &why), 0);
	assert_int_equal(fx->sent.type, FRAME_CLOSE_OUT);
	assert_int_equal(fx->sent.id, 7);
	assert_true(fx->s.dead);
	assert_int_equal(stream_events(&fx->s, true), 0);
	/* The other side's CLOSE ends a stream without a frame. */
	stream_free(&fx->s);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	stream_init(&fx->s, 8, sv[0]);
	fx->peer = sv[1];
	int frames = fx->sent.frames;
	stream_close(&fx->s);
	assert_true(fx->s.dead);
	assert_int_equal(fx->sent.frames, frames);
}

/* A frame from the other side goes to the part of the stream its type names; a table
 * finds its open streams by id and gives out free slots. */
static void test_frames_and_tables(void **state)
{
	struct fixture *fx = *state;
	const char *why = NULL;
	uint8_t credit[4];
	frame_put_u32(credit, 100);
	struct frame f = {.type = FRAME_CREDIT_IN, .id = 7, .payload = credit, .len = 4};
	uint32_t before = fx->s.credit;
	assert_int_equal(stream_frame(fx->side, &fx->s, &f, &why), -1); /* window full */
	assert_non_null(strstr(why, "credit beyond"));
	assert_int_equal(fx->s.credit, before);
	f = (struct frame){
	    .type = FRAME_DATA_IN, .id = 7, .payload = (const uint8_t *)"hi", .len = 2};
	assert_int_equal(stream_frame(fx->side, &fx->s, &f, &why), 0);
	char got[2];
	assert_int_equal(read(fx->peer, got, 2), 2);
	assert_memory_equal(got, "hi", 2);
	f = (struct frame){.type = FRAME_EXIT, .id = 7};
	assert_int_equal(stream_frame(fx->side, &fx->s, &f, &why), 0); /* not a stream's */
	assert_false(fx->s.dead);
	f = (struct frame){.type = FRAME_CLOSE_OUT, .id = 7};
	assert_int_equal(stream_frame(fx->side, &fx->s, &f, &why), 0);
	assert_true(fx->s.dead);

	struct stream tab[3];
	for (int i = 0; i < 3; i++)
		tab[i].fd = -1;
	tab[1] = (struct stream){.id = 5, .fd = 0};
	assert_ptr_equal(stream_find(tab, 3, 5), &tab[1]);
	assert_null(stream_find(tab, 3, 6));
	assert_ptr_equal(stream_free_slot(tab, 3), &tab[0]);
	tab[0].fd = tab[2].fd = 0;
	assert_null(stream_free_slot(tab, 3));
	assert_null(stream_find(tab, 3, 6));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_window_bounds_what_is_held, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_end_of_data_shuts_the_socket, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_credit_bounds_reads, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_errors_and_close, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_frames_and_tables, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
