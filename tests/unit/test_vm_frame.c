/* test_vm_frame.c: the host <-> guest agent frames (src/lib/vm/frame.c).
 *
 * Sections: whole frames, split and joined; what the decoder refuses; the heartbeat and
 * terminal frames; EXEC requests (round trip, refusals); FILE requests; the network's
 * frames and LISTEN.
 */
#include "unit.h"
#include "../../src/lib/vm/frame.h"

static size_t put(uint8_t *buf, uint8_t type, uint32_t id, const void *p, uint32_t len)
{
	frame_header(buf, type, id, len);
	memcpy(buf + FRAME_HEADER, p, len);
	return FRAME_HEADER + len;
}

static void test_frames(void **state)
{
	(void)state;
	uint8_t buf[256];
	size_t n = put(buf, FRAME_STDOUT, 7, "hello", 5);
	n += put(buf + n, FRAME_EXIT, 7, "\x03\0\0\0\0\0\0\0", 8);
	struct frame f;
	size_t used;
	const char *why = NULL;
	/* Every prefix of a frame asks for more; the whole one decodes. */
	for (size_t i = 0; i < FRAME_HEADER + 5; i++)
		assert_int_equal(frame_decode(buf, i, FRAME_TO_HOST, &f, &used, &why), 0);
	assert_int_equal(frame_decode(buf, n, FRAME_TO_HOST, &f, &used, &why), 1);
	assert_int_equal(f.type, FRAME_STDOUT);
	assert_int_equal(f.id, 7);
	assert_int_equal(f.len, 5);
	assert_memory_equal(f.payload, "hello", 5);
	assert_int_equal(used, FRAME_HEADER + 5);
	assert_int_equal(frame_decode(buf + used, n - used, FRAME_TO_HOST, &f, &used, &why), 1);
	assert_int_equal(f.type, FRAME_EXIT);
	assert_int_equal(frame_get_u32(f.payload), 3);
}

static void refused(const uint8_t *buf, size_t len, enum frame_dir dir, const char *want)
{
	struct frame f;
	size_t used;
	const char *why = NULL;
	assert_int_equal(frame_decode(buf, len, dir, &f, &used, &why), -1);
	assert_non_null(why);
	assert_non_null(strstr(why, want));
}

/* A header alone, refused for the reason want. */
static void header_refused(uint8_t type, uint32_t id, uint32_t len, enum frame_dir dir,
                           const char *want)
{
	uint8_t buf[FRAME_HEADER];
	frame_header(buf, type, id, len);
	refused(buf, FRAME_HEADER, dir, want);
}

/* A header whose payload length its type does not allow is refused on its own. */
static void bad_size(uint8_t type, uint32_t len, enum frame_dir dir)
{
	header_refused(type, 1, len, dir, "size not allowed");
}

/* A frame of type with a 4-byte payload travels in dir only; returns its payload. */
static uint32_t one_way(uint8_t type, uint32_t id, uint32_t v, enum frame_dir dir)
{
	uint8_t buf[FRAME_HEADER + 4], p[4];
	struct frame f;
	size_t used;
	const char *why = NULL;
	frame_put_u32(p, v);
	put(buf, type, id, p, 4);
	assert_int_equal(frame_decode(buf, sizeof(buf), dir, &f, &used, &why), 1);
	assert_int_equal(f.id, id);
	refused(buf, 1, dir == FRAME_TO_GUEST ? FRAME_TO_HOST : FRAME_TO_GUEST,
	        "unknown frame type");
	bad_size(type, dir == FRAME_TO_GUEST ? 0 : 8, dir);
	return frame_get_u32(f.payload);
}

static void test_malformed(void **state)
{
	(void)state;
	uint8_t buf[64] = {0};
	/* Types unknown, or going the wrong way. */
	buf[0] = 0;
	refused(buf, 1, FRAME_TO_HOST, "unknown frame type");
	buf[0] = 99;
	refused(buf, 1, FRAME_TO_GUEST, "unknown frame type");
	buf[0] = FRAME_EXEC;
	refused(buf, 1, FRAME_TO_HOST, "unknown frame type");
	buf[0] = FRAME_STDOUT;
	refused(buf, 1, FRAME_TO_GUEST, "unknown frame type");
	/* Flags and reserved bits. */
	frame_header(buf, FRAME_STDOUT, 1, 0);
	buf[1] = 1;
	refused(buf, FRAME_HEADER, FRAME_TO_HOST, "nonzero");
	frame_header(buf, FRAME_STDOUT, 1, 0);
	buf[3] = 0x80;
	refused(buf, 4, FRAME_TO_HOST, "nonzero");
	/* Lengths: over the limit (refused from the header alone), or not the type's. */
	header_refused(FRAME_STDOUT, 1, FRAME_MAX + 1, FRAME_TO_HOST, "larger than 64 KiB");
	header_refused(FRAME_STDOUT, 1, 0xffffffff, FRAME_TO_HOST, "larger than 64 KiB");
	bad_size(FRAME_EXIT, 4, FRAME_TO_HOST);
	bad_size(FRAME_READY, 0, FRAME_TO_HOST);
	bad_size(FRAME_SIGNAL, 8, FRAME_TO_GUEST);
	bad_size(FRAME_POWEROFF, 1, FRAME_TO_GUEST);
	bad_size(FRAME_EXEC, 0, FRAME_TO_GUEST);
}

static void test_heartbeat_and_terminal(void **state)
{
	(void)state;
	/* PING and RESIZE go to the guest, PONG to the host; each carries 4 bytes. */
	assert_int_equal(one_way(FRAME_PING, 0, 7, FRAME_TO_GUEST), 7);
	assert_int_equal(one_way(FRAME_PONG, 0, 7, FRAME_TO_HOST), 7);
	uint8_t p[4];
	frame_put_u16(p, 50);
	frame_put_u16(p + 2, 132);
	uint32_t size = one_way(FRAME_RESIZE, 3, frame_get_u32(p), FRAME_TO_GUEST);
	frame_put_u32(p, size);
	assert_int_equal(frame_get_u16(p), 50);
	assert_int_equal(frame_get_u16(p + 2), 132);
	bad_size(FRAME_RESIZE, 2, FRAME_TO_GUEST);
}

static void test_exec_round_trip(void **state)
{
	(void)state;
	char *argv[] = {"sh", "-c", "echo $A", NULL};
	char *env[] = {"A=1", "PATH=/bin", NULL};
	uint8_t *buf;
	size_t len;
	const char *why = NULL;
	struct frame_exec req = {
	    .argv = argv, .env = env, .workdir = "/work", .uid = 1000, .gid = 100};
	assert_int_equal(frame_exec_encode(&req, &buf, &len, &why), 0);
	struct frame_exec x;
	assert_int_equal(frame_exec_decode(buf, len, &x, &why), 0);
	assert_false(x.tty);
	assert_false(x.limits);
	assert_string_equal(x.argv[0], "sh");
	assert_string_equal(x.argv[2], "echo $A");
	assert_null(x.argv[3]);
	assert_string_equal(x.env[1], "PATH=/bin");
	assert_null(x.env[2]);
	assert_string_equal(x.workdir, "/work");
	assert_int_equal(x.uid, 1000);
	assert_int_equal(x.gid, 100);
	frame_exec_clear(&x);
	free(buf);
	/* With a terminal and limits: they travel with the request. */
	req = (struct frame_exec){.argv = argv,
	                          .tty = true,
	                          .rows = 24,
	                          .cols = 65535,
	                          .limits = true,
	                          .pids = 0,
	                          .nofile = 4294967295u};
	assert_int_equal(frame_exec_encode(&req, &buf, &len, &why), 0);
	assert_int_equal(frame_exec_decode(buf, len, &x, &why), 0);
	assert_true(x.tty);
	assert_int_equal(x.rows, 24);
	assert_int_equal(x.cols, 65535);
	assert_true(x.limits);
	assert_int_equal(x.pids, 0);
	assert_int_equal(x.nofile, 4294967295u);
	assert_null(x.workdir);
	assert_null(x.env[0]);
	frame_exec_clear(&x);
	free(buf);
}

static void exec_refused(const char *req, size_t len, const char *want)
{
	struct frame_exec x;
	const char *why = NULL;
	assert_int_equal(frame_exec_decode((const uint8_t *)req, len, &x, &why), -1);
	assert_non_null(strstr(why, want));
}

#define REQ(s) s, sizeof(s)

static void test_exec_refused(void **state)
{
	(void)state;
	exec_refused("Atrue\0U1\0G1", 10, "not NUL-terminated");
	exec_refused(REQ("U1\0G1"), "no command");
	exec_refused(REQ("Atrue\0G1"), "uid or gid missing");
	exec_refused(REQ("Atrue\0U1\0U2\0G1"), "uid repeated");
	exec_refused(REQ("Atrue\0U-1\0G1"), "not a number");
	exec_refused(REQ("Atrue\0U4294967295\0G1"), "not a number");
	exec_refused(REQ("Atrue\0U99999999999\0G1"), "not a number");
	exec_refused(REQ("Atrue\0Wrelative\0U1\0G1"), "relative");
	exec_refused(REQ("Atrue\0W/a\0W/b\0U1\0G1"), "repeated");
	exec_refused(REQ("Atrue\0ENOEQUALS\0U1\0G1"), "NAME=VALUE");
	exec_refused(REQ("Atrue\0E1A=b\0U1\0G1"), "NAME=VALUE");
	exec_refused(REQ("Atrue\0E=b\0U1\0G1"), "NAME=VALUE");
	exec_refused(REQ("Atrue\0Xwhat\0U1\0G1"), "unknown record tag");
	exec_refused(REQ("Atrue\0T24 80\0T24 80\0U1\0G1"), "terminal size repeated");
	exec_refused(REQ("Atrue\0T24\0U1\0G1"), "not ROWS COLS");
	exec_refused(REQ("Atrue\0T24 80 \0U1\0G1"), "not ROWS COLS");
	exec_refused(REQ("Atrue\0T 80\0U1\0G1"), "not ROWS COLS");
	exec_refused(REQ("Atrue\0T24 65536\0U1\0G1"), "not ROWS COLS");
	exec_refused(REQ("Atrue\0T24 123456\0U1\0G1"), "not ROWS COLS");
	exec_refused(REQ("Atrue\0T-1 80\0U1\0G1"), "not ROWS COLS");
	exec_refused(REQ("Atrue\0L16 4096\0L16 4096\0U1\0G1"), "limits repeated");
	exec_refused(REQ("Atrue\0L16\0U1\0G1"), "not PIDS NOFILE");
	exec_refused(REQ("Atrue\0L16 4294967296\0U1\0G1"), "not PIDS NOFILE");
	exec_refused(REQ("Atrue\0L16 12345678901\0U1\0G1"), "not PIDS NOFILE");
	exec_refused(REQ("Atrue\0\0U1\0G1"), "unknown record tag");
}

static void test_exec_limits(void **state)
{
	(void)state;
	/* More entries than a request may carry, though they fit in 64 KiB. */
	size_t n = FRAME_EXEC_ARGS + 2;
	char **argv = calloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		argv[i] = "x";
	uint8_t *buf;
	size_t len;
	const char *why = NULL;
	struct frame_exec many = {.argv = argv};
	assert_int_equal(frame_exec_encode(&many, &buf, &len, &why), -1);
	assert_non_null(strstr(why, "do not fit"));
	/* Hand-made, the decoder refuses it as well. */
	char *req = malloc(n * 3 + 16), *p = req;
	for (size_t i = 0; i < n; i++)
		p = stpcpy(p, "Ax") + 1;
	p = stpcpy(p, "U0") + 1;
	p = stpcpy(p, "G0") + 1;
	exec_refused(req, (size_t)(p - req), "too many arguments");
	free(req);
	free(argv);
}

static void test_file(void **state)
{
	(void)state;
	struct frame_file f;
	const char *why = NULL;
	static const char ok[] = "/etc/hosts\0"
	                         "0644\0"
	                         "127.0.0.1 localhost\n";
	assert_int_equal(frame_file_decode((const uint8_t *)ok, sizeof(ok) - 1, &f, &why), 0);
	assert_string_equal(f.path, "/etc/hosts");
	assert_int_equal(f.mode, 0644);
	assert_int_equal(f.len, 20);
	assert_int_equal(frame_file_decode((const uint8_t *)"etc/x\0"
	                                                    "0644\0",
	                                   11, &f, &why),
	                 -1);
	assert_int_equal(frame_file_decode((const uint8_t *)"/x\0"
	                                                    "0648\0",
	                                   8, &f, &why),
	                 -1);
	assert_non_null(strstr(why, "octal"));
	assert_int_equal(frame_file_decode((const uint8_t *)"/x\0"
	                                                    "0644",
	                                   7, &f, &why),
	                 -1);
	assert_int_equal(frame_file_decode((const uint8_t *)"/x", 2, &f, &why), -1);
	assert_int_equal(frame_file_decode((const uint8_t *)"/x\0"
	                                                    "77777\0",
	                                   9, &f, &why),
	                 -1);
}

/* ---- the network --------------------------------------------------------------------- */

static void decodes(uint8_t type, uint32_t id, uint32_t len, enum frame_dir dir)
{
	uint8_t buf[FRAME_HEADER + 64] = {0};
	struct frame f;
	size_t used;
	const char *why = NULL;
	frame_header(buf, type, id, len);
	assert_int_equal(frame_decode(buf, FRAME_HEADER + len, dir, &f, &used, &why), 1);
	assert_int_equal(f.type, type);
	assert_int_equal(f.id, id);
}

static void test_net_frames(void **state)
{
	(void)state;
	uint8_t buf[64] = {0};
	/* Each way its own types, with the payloads and ids they allow. */
	decodes(FRAME_LISTEN, 0, 8, FRAME_TO_GUEST);
	decodes(FRAME_DATA_IN, 3, 5, FRAME_TO_GUEST);
	decodes(FRAME_DATA_IN, 0, 40, FRAME_TO_GUEST); /* a DNS answer */
	decodes(FRAME_DATA_IN, 3, 0, FRAME_TO_GUEST);  /* the end of data */
	decodes(FRAME_CREDIT_IN, 3, 4, FRAME_TO_GUEST);
	decodes(FRAME_CLOSE_IN, 3, 0, FRAME_TO_GUEST);
	decodes(FRAME_OPEN, 3, 4, FRAME_TO_HOST);
	decodes(FRAME_DATA_OUT, 0, 30, FRAME_TO_HOST);
	decodes(FRAME_CREDIT_OUT, 3, 4, FRAME_TO_HOST);
	decodes(FRAME_CLOSE_OUT, 3, 0, FRAME_TO_HOST);
	for (uint8_t t = FRAME_LISTEN; t <= FRAME_CLOSE_IN; t++) {
		buf[0] = t;
		refused(buf, 1, FRAME_TO_HOST, "unknown frame type");
	}
	for (uint8_t t = FRAME_OPEN; t <= FRAME_CLOSE_OUT; t++) {
		buf[0] = t;
		refused(buf, 1, FRAME_TO_GUEST, "unknown frame type");
	}
	/* Sizes: refused from the header alone. */
	header_refused(FRAME_LISTEN, 0, 0, FRAME_TO_GUEST, "size not allowed");
	header_refused(FRAME_LISTEN, 0, 6, FRAME_TO_GUEST, "size not allowed");
	header_refused(FRAME_LISTEN, 0, 4 * (FRAME_NET_LISTENERS + 1), FRAME_TO_GUEST,
	               "size not allowed");
	bad_size(FRAME_OPEN, 8, FRAME_TO_HOST);
	bad_size(FRAME_CREDIT_OUT, 0, FRAME_TO_HOST);
	bad_size(FRAME_CREDIT_IN, 5, FRAME_TO_GUEST);
	bad_size(FRAME_CLOSE_IN, 1, FRAME_TO_GUEST);
	bad_size(FRAME_CLOSE_OUT, 4, FRAME_TO_HOST);
	/* Id 0 carries datagrams only: no stream opens, is credited or closes as 0. */
	header_refused(FRAME_OPEN, 0, 4, FRAME_TO_HOST, "stream id 0");
	header_refused(FRAME_CREDIT_OUT, 0, 4, FRAME_TO_HOST, "stream id 0");
	header_refused(FRAME_CLOSE_IN, 0, 0, FRAME_TO_GUEST, "stream id 0");
	header_refused(FRAME_LISTEN, 7, 4, FRAME_TO_GUEST, "stream id");
}

static void listen_refused(const uint8_t *p, size_t len, const char *want)
{
	struct frame_listener ls[FRAME_NET_LISTENERS];
	const char *why = NULL;
	assert_int_equal(frame_listen_decode(p, len, ls, &why), -1);
	assert_non_null(strstr(why, want));
}

static void test_listen(void **state)
{
	(void)state;
	const struct frame_listener want[] = {{.index = 0, .port = 3128},
	                                      {.index = 2, .udp = true, .port = 53},
	                                      {.index = 3, .port = 4141}};
	uint8_t buf[4 * FRAME_NET_LISTENERS];
	for (size_t i = 0; i < 3; i++)
		frame_listener_put(buf + 4 * i, &want[i]);
	struct frame_listener got[FRAME_NET_LISTENERS];
	const char *why = NULL;
	assert_int_equal(frame_listen_decode(buf, 12, got, &why), 3);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(got[i].index, want[i].index);
		assert_int_equal(got[i].udp, want[i].udp);
		assert_int_equal(got[i].port, want[i].port);
	}
	listen_refused(buf, 0, "not whole records");
	listen_refused(buf, 7, "not whole records");
	listen_refused((const uint8_t *)"\x04\x01\x80\x0c", 4, "index out of range");
	listen_refused((const uint8_t *)"\x01\x01\x80\x0c\x01\x01\x81\x0c", 8, "repeated");
	listen_refused((const uint8_t *)"\x01\x03\x80\x0c", 4, "kind or port");
	listen_refused((const uint8_t *)"\x01\x01\x00\x00", 4, "kind or port");
	listen_refused((const uint8_t *)"\x01\x02\x35\x00\x02\x02\x36\x00", 8, "kind or port");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_frames),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_heartbeat_and_terminal),
	    cmocka_unit_test(test_exec_round_trip),
	    cmocka_unit_test(test_exec_refused),
	    cmocka_unit_test(test_exec_limits),
	    cmocka_unit_test(test_file),
	    cmocka_unit_test(test_net_frames),
	    cmocka_unit_test(test_listen),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
