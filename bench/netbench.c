/* netbench.c: the network benchmarks' servers and clients (bench/net.py drives them).
 *
 * usage: netbench origin [CC]
 *        netbench provider [DELAY_US]
 *        netbench get direct|connect|socks PORT HOST DPORT BYTES
 *        netbench chat PORT PATH CALLS stream|whole
 *
 * origin    a TCP server on 127.0.0.1 (port printed as {"port":N}): each connection sends a
 *           decimal byte count and a newline, and gets that many bytes from a 1 MiB buffer
 *           written with write(2), then end of file. With CC, its connections use that
 *           congestion control algorithm (TCP_CONGESTION) instead of the host's default.
 * provider  a fake OpenAI chat-completions server on 127.0.0.1, HTTP/1.1 with keep-alive,
 *           one thread (epoll): a POST whose body says "stream": true gets a
 *           chunked server-sent-events answer whose first delta ("tok0") is sent at once
 *           and the rest DELAY_US (default 2000) later; any other POST gets one JSON
 *           answer. Built for latency: no parsing beyond what answering needs.
 * get       connects to 127.0.0.1:PORT, directly (then HOST is ignored) or through an
 *           HTTP proxy (CONNECT HOST:DPORT) or SOCKS5 (a domain-name request for HOST),
 *           asks the origin for BYTES bytes and reads them with 256 KiB reads until end of
 *           file. For every line read from stdin it does one transfer and prints
 *           {"bytes":B,"seconds":S,"cpu_seconds":C,"setup_seconds":T}: S from asking to
 *           end of file, T the connection and the proxy's handshake before it.
 * chat      CALLS sequential chat-completion calls to http://127.0.0.1:PORT/PATH over one
 *           kept-alive connection (the token is $OPENAI_API_KEY, if set), for every line
 *           read from stdin; prints {"ms":[...],"total_ms":[...],"reconnects":R}: per
 *           call the time from the request's first byte to the whole answer (whole) or to
 *           the first content delta (stream; total_ms then holds the whole answer's).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SEND_BUF (1u << 20)
#define READ_BUF (256u << 10)

static double now_s(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("netbench: ", stderr);
	vfprintf(stderr, fmt, ap);
	if (errno)
		fprintf(stderr, ": %s", strerror(errno));
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static int write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static const char *listen_cc; /* the origin's congestion control, if not the default */

static int listen_loopback(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	if (fd < 0)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* accepted connections inherit it */
	if (listen_cc && setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, listen_cc, strlen(listen_cc)))
		die("TCP_CONGESTION %s", listen_cc);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 128) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		die("bind/listen");
	printf("{\"port\":%u}\n", ntohs(sa.sin_port));
	fflush(stdout);
	return fd;
}

static int connect_loopback(unsigned port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (fd < 0)
		die("socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("connect to 127.0.0.1:%u", port);
	return fd;
}

/* ---- origin ------------------------------------------------------------------------------ */

static char *pattern;

static void *origin_conn(void *arg)
{
	int fd = (int)(long)arg;
	char line[64];
	size_t got = 0;
	while (got < sizeof(line) - 1) {
		ssize_t r = read(fd, line + got, 1);
		if (r <= 0)
			goto out;
		if (line[got++] == '\n')
			break;
	}
	line[got] = 0;
	unsigned long long left = strtoull(line, NULL, 10);
	while (left) {
		size_t n = left < SEND_BUF ? (size_t)left : SEND_BUF;
		if (write_all(fd, pattern, n) < 0)
			goto out;
		left -= n;
	}
	shutdown(fd, SHUT_WR);
	while (read(fd, line, sizeof(line)) > 0) /* until the client closes */
		;
out:
	close(fd);
	return NULL;
}

static void serve(void *(*fn)(void *))
{
	int lfd = listen_loopback();
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		pthread_t t;
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			die("accept");
		}
		if (pthread_create(&t, NULL, fn, (void *)(long)fd) != 0)
			die("pthread_create");
		pthread_detach(t);
	}
}

/* ---- a buffered reader ---------------------------------------------------------------------- */

struct rd {
	int fd;
	size_t off, len;
	char buf[65536];
};

static int rd_fill(struct rd *r)
{
	if (r->off == r->len)
		r->off = r->len = 0;
	if (r->len == sizeof(r->buf)) {
		if (r->off == 0)
			return -1;
		memmove(r->buf, r->buf + r->off, r->len - r->off);
		r->len -= r->off;
		r->off = 0;
	}
	for (;;) {
		ssize_t n = read(r->fd, r->buf + r->len, sizeof(r->buf) - r->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		r->len += (size_t)n;
		return 0;
	}
}

/* A line (CRLF or LF ended, the end removed) into out; -1 at end of file. */
static int rd_line(struct rd *r, char *out, size_t max)
{
	for (;;) {
		char *nl = memchr(r->buf + r->off, '\n', r->len - r->off);
		if (nl) {
			size_t n = (size_t)(nl - (r->buf + r->off));
			size_t k = n && nl[-1] == '\r' ? n - 1 : n;
			if (k >= max)
				k = max - 1;
			memcpy(out, r->buf + r->off, k);
			out[k] = 0;
			r->off += n + 1;
			return 0;
		}
		if (rd_fill(r) < 0)
			return -1;
	}
}

/* n bytes into out (or dropped, out NULL). */
static int rd_bytes(struct rd *r, char *out, size_t n)
{
	while (n) {
		if (r->off == r->len && rd_fill(r) < 0)
			return -1;
		size_t k = r->len - r->off < n ? r->len - r->off : n;
		if (out) {
			memcpy(out, r->buf + r->off, k);
			out += k;
		}
		r->off += k;
		n -= k;
	}
	return 0;
}

/* ---- provider ----------------------------------------------------------------------------- */

static unsigned delay_us = 2000;

static int stream_asked(const char *body)
{
	const char *p = strstr(body, "\"stream\"");
	if (!p)
		return 0;
	p += 8;
	while (*p == ' ' || *p == ':')
		p++;
	return strncmp(p, "true", 4) == 0;
}

static int send_chunk(int fd, const char *data)
{
	char *all;
	int len = asprintf(&all, "%zx\r\n%s\r\n", strlen(data), data);
	if (len < 0)
		return -1;
	int rc = write_all(fd, all, (size_t)len);
	free(all);
	return rc;
}

#define CHUNK_HEAD                                                                                 \
	"{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":0,"           \
	"\"model\":\"bench-model\",\"choices\":[{\"index\":0,"

/* Answer one request; -1 if the connection is gone. */
static int answer(int fd, const char *body)
{
	if (stream_asked(body)) {
		static const char head[] =
		    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
		    "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n";
		static const char first[] = "data: " CHUNK_HEAD "\"delta\":{\"role\":\"assistant\","
		                            "\"content\":\"tok0\"},\"finish_reason\":null}]}\n\n";
		/* the head and the first delta's chunk in one write, as providers do */
		char *c1;
		if (asprintf(&c1, "%s%zx\r\n%s\r\n", head, sizeof(first) - 1, first) < 0)
			return -1;
		int rc = write_all(fd, c1, strlen(c1));
		free(c1);
		if (rc < 0)
			return -1;
		if (delay_us)
			usleep(delay_us);
		if (send_chunk(fd, "data: " CHUNK_HEAD "\"delta\":{\"content\":\" tok1\"},"
		                   "\"finish_reason\":null}]}\n\n") < 0 ||
		    send_chunk(fd, "data: " CHUNK_HEAD "\"delta\":{\"content\":\" tok2\"},"
		                   "\"finish_reason\":null}]}\n\n") < 0 ||
		    send_chunk(fd, "data: " CHUNK_HEAD "\"delta\":{},\"finish_reason\":"
		                   "\"stop\"}]}\n\n") < 0 ||
		    send_chunk(fd, "data: {\"id\":\"chatcmpl-bench\",\"object\":"
		                   "\"chat.completion.chunk\",\"created\":0,\"model\":"
		                   "\"bench-model\",\"choices\":[],\"usage\":{"
		                   "\"prompt_tokens\":12,\"completion_tokens\":3,"
		                   "\"total_tokens\":15}}\n\n") < 0 ||
		    send_chunk(fd, "data: [DONE]\n\n") < 0)
			return -1;
		return write_all(fd, "0\r\n\r\n", 5);
	}
	static const char whole[] =
	    "{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion\",\"created\":0,"
	    "\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
	    "\"assistant\",\"content\":\"tok0 tok1 tok2\"},\"finish_reason\":\"stop\"}],"
	    "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3,\"total_tokens\":15}}";
	char *all;
	int len = asprintf(&all,
	                   "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	                   "Content-Length: %zu\r\n\r\n%s",
	                   sizeof(whole) - 1, whole);
	if (len < 0)
		return -1;
	int rc = write_all(fd, all, (size_t)len);
	free(all);
	return rc;
}

struct pconn {
	int fd;
	size_t len;
	char buf[65536];
};

/* Answer every complete request in c->buf; -1 to close the connection. */
static int provider_requests(struct pconn *c)
{
	for (;;) {
		c->buf[c->len] = 0;
		char *end = strstr(c->buf, "\r\n\r\n");
		if (!end)
			return c->len < sizeof(c->buf) - 1 ? 0 : -1;
		size_t head = (size_t)(end + 4 - c->buf), clen = 0;
		int close_after = 0;
		for (char *l = strstr(c->buf, "\r\n"); l && l < end; l = strstr(l + 2, "\r\n")) {
			if (strncasecmp(l + 2, "content-length:", 15) == 0)
				clen = strtoul(l + 17, NULL, 10);
			else if (strncasecmp(l + 2, "connection: close", 17) == 0)
				close_after = 1;
		}
		if (head + clen >= sizeof(c->buf))
			return -1;
		if (c->len < head + clen)
			return 0;
		char save = c->buf[head + clen];
		c->buf[head + clen] = 0;
		int rc = answer(c->fd, c->buf + head);
		c->buf[head + clen] = save;
		if (rc < 0 || close_after)
			return -1;
		memmove(c->buf, c->buf + head + clen, c->len - head - clen);
		c->len -= head + clen;
	}
}

/* One thread, epoll: no thread to create per connection and none to wake, so that what
 * is timed is the path to it. A stream's pause holds up the others: the benchmark makes
 * one call at a time. */
static void provider(void)
{
	int lfd = listen_loopback(), ep = epoll_create1(EPOLL_CLOEXEC), one = 1;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
		die("epoll");
	for (;;) {
		struct epoll_event evs[64];
		int n = epoll_wait(ep, evs, 64, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("epoll_wait");
		for (int i = 0; i < n; i++) {
			struct pconn *c = evs[i].data.ptr;
			if (!c) {
				int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
				if (fd < 0)
					continue;
				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
				c = calloc(1, sizeof(*c));
				c->fd = fd;
				ev.data.ptr = c;
				if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
					die("epoll_ctl");
				continue;
			}
			ssize_t r = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
			if (r > 0)
				c->len += (size_t)r;
			if (r <= 0 || provider_requests(c) < 0) {
				close(c->fd); /* removes it from the epoll set */
				free(c);
			}
		}
	}
}

/* ---- get ---------------------------------------------------------------------------------- */

enum via { VIA_DIRECT, VIA_CONNECT, VIA_SOCKS };

static void handshake(int fd, enum via via, const char *host, unsigned dport)
{
	if (via == VIA_CONNECT) {
		char req[512], line[1024];
		int n = snprintf(req, sizeof(req), "CONNECT %s:%u HTTP/1.1\r\nHost: %s:%u\r\n\r\n",
		                 host, dport, host, dport);
		if (write_all(fd, req, (size_t)n) < 0)
			die("CONNECT");
		/* byte by byte, so that nothing after the answer's head is taken from the tunnel */
		size_t got = 0;
		while (got < 4 || memcmp(line + got - 4, "\r\n\r\n", 4) != 0) {
			if (got == sizeof(line) - 1 || read(fd, line + got, 1) != 1)
				die("CONNECT: no answer");
			got++;
		}
		line[got] = 0;
		if (strncmp(line, "HTTP/1.1 200", 12) != 0 &&
		    strncmp(line, "HTTP/1.0 200", 12) != 0) {
			errno = 0;
			die("CONNECT %s:%u: %.*s", host, dport, (int)strcspn(line, "\r\n"), line);
		}
	} else if (via == VIA_SOCKS) {
		unsigned char b[300];
		size_t hl = strlen(host);
		if (write_all(fd, "\x05\x01\x00", 3) < 0 || read(fd, b, 2) != 2 || b[0] != 5 ||
		    b[1] != 0)
			die("SOCKS5 greeting");
		b[0] = 5, b[1] = 1, b[2] = 0, b[3] = 3, b[4] = (unsigned char)hl;
		memcpy(b + 5, host, hl);
		b[5 + hl] = (unsigned char)(dport >> 8), b[6 + hl] = (unsigned char)dport;
		if (write_all(fd, b, 7 + hl) < 0)
			die("SOCKS5 request");
		size_t want = 10, got = 0; /* an IPv4 answer; longer for IPv6 */
		while (got < want) {
			ssize_t r = read(fd, b + got, want - got);
			if (r <= 0)
				die("SOCKS5: no answer");
			got += (size_t)r;
			if (got >= 4 && b[3] == 4)
				want = 22;
		}
		if (b[1] != 0) {
			errno = 0;
			die("SOCKS5 %s:%u: reply %u", host, dport, b[1]);
		}
	}
}

static int cmd_get(int argc, char **argv)
{
	if (argc != 7)
		return 2;
	enum via via = strcmp(argv[2], "connect") == 0 ? VIA_CONNECT
	               : strcmp(argv[2], "socks") == 0 ? VIA_SOCKS
	                                               : VIA_DIRECT;
	unsigned port = (unsigned)atoi(argv[3]), dport = (unsigned)atoi(argv[5]);
	const char *host = argv[4];
	unsigned long long bytes = strtoull(argv[6], NULL, 10);
	char *buf = malloc(READ_BUF), line[64];
	while (fgets(line, sizeof(line), stdin)) {
		double t0 = now_s(CLOCK_MONOTONIC);
		int fd = connect_loopback(port);
		handshake(fd, via, host, dport);
		double t1 = now_s(CLOCK_MONOTONIC), c1 = now_s(CLOCK_PROCESS_CPUTIME_ID);
		char req[32];
		int n = snprintf(req, sizeof(req), "%llu\n", bytes);
		if (write_all(fd, req, (size_t)n) < 0)
			die("send");
		unsigned long long got = 0;
		for (;;) {
			ssize_t r = read(fd, buf, READ_BUF);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				die("read");
			if (r == 0)
				break;
			got += (unsigned long long)r;
		}
		double t2 = now_s(CLOCK_MONOTONIC), c2 = now_s(CLOCK_PROCESS_CPUTIME_ID);
		close(fd);
		if (got != bytes) {
			errno = 0;
			die("got %llu bytes of %llu", got, bytes);
		}
		printf("{\"bytes\":%llu,\"seconds\":%.6f,\"cpu_seconds\":%.6f,"
		       "\"setup_seconds\":%.6f}\n",
		       got, t2 - t1, c2 - c1, t1 - t0);
		fflush(stdout);
	}
	free(buf);
	return 0;
}

/* ---- chat --------------------------------------------------------------------------------- */

static const char *const REQ_BODY[2] = {
    "{\"model\":\"bench-model\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hi.\"}],"
    "\"max_tokens\":16}",
    "{\"model\":\"bench-model\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hi.\"}],"
    "\"max_tokens\":16,\"stream\":true}",
};

/* One call on r->fd: 0, or -1 if the connection was closed before an answer began (the
 * caller reconnects and tries again), or dies. *first: when "tok0" arrived. */
static int one_call(struct rd *r, const char *req, size_t req_len, double *first)
{
	char line[8192];
	size_t clen = 0;
	int chunked = 0, status;
	*first = 0;
	if (write_all(r->fd, req, req_len) < 0)
		return -1;
	if (rd_line(r, line, sizeof(line)) < 0)
		return -1;
	if (sscanf(line, "HTTP/1.%*d %d", &status) != 1 || status != 200) {
		errno = 0;
		die("answer: %s", line);
	}
	for (;;) {
		if (rd_line(r, line, sizeof(line)) < 0)
			die("answer head");
		if (!line[0])
			break;
		if (strncasecmp(line, "content-length:", 15) == 0)
			clen = strtoul(line + 15, NULL, 10);
		else if (strncasecmp(line, "transfer-encoding:", 18) == 0 &&
		         strcasestr(line, "chunked"))
			chunked = 1;
	}
	static char data[1 << 20];
	if (!chunked) {
		if (clen >= sizeof(data) || rd_bytes(r, data, clen) < 0)
			die("answer body");
		data[clen] = 0;
		if (strstr(data, "tok0"))
			*first = now_s(CLOCK_MONOTONIC);
		return 0;
	}
	for (;;) {
		if (rd_line(r, line, sizeof(line)) < 0)
			die("chunk size");
		size_t n = strtoul(line, NULL, 16);
		if (n >= sizeof(data) || rd_bytes(r, n ? data : NULL, n) < 0)
			die("chunk");
		data[n] = 0;
		if (!*first && n && strstr(data, "tok0"))
			*first = now_s(CLOCK_MONOTONIC);
		if (rd_line(r, line, sizeof(line)) < 0)
			die("chunk end");
		if (n == 0)
			return 0;
	}
}

static int cmd_chat(int argc, char **argv)
{
	if (argc != 6)
		return 2;
	unsigned port = (unsigned)atoi(argv[2]);
	const char *path = argv[3];
	int calls = atoi(argv[4]), stream = strcmp(argv[5], "stream") == 0;
	const char *token = getenv("OPENAI_API_KEY");
	char *req, line[64];
	int len = asprintf(&req,
	                   "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
	                   "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
	                   "Accept: %s\r\nContent-Length: %zu\r\n\r\n%s",
	                   path, port, token ? token : "none",
	                   stream ? "text/event-stream" : "application/json",
	                   strlen(REQ_BODY[stream]), REQ_BODY[stream]);
	if (len < 0)
		die("asprintf");
	struct rd *r = calloc(1, sizeof(*r));
	double *ms = calloc((size_t)calls, sizeof(double)),
	       *total = calloc((size_t)calls, sizeof(double));
	int one = 1, reconnects = 0;
	r->fd = -1;
	while (fgets(line, sizeof(line), stdin)) {
		for (int i = 0; i < calls; i++) {
			double t0 = 0, first;
			for (int tries = 0;; tries++) {
				if (r->fd < 0) {
					r->fd = connect_loopback(port);
					r->off = r->len = 0;
					setsockopt(r->fd, IPPROTO_TCP, TCP_NODELAY, &one,
					           sizeof(one));
					reconnects += tries > 0 || i > 0;
				}
				t0 = now_s(CLOCK_MONOTONIC);
				if (one_call(r, req, (size_t)len, &first) == 0)
					break;
				close(r->fd);
				r->fd = -1;
				if (tries == 2)
					die("connection closed three times");
			}
			double t1 = now_s(CLOCK_MONOTONIC);
			if (!first) {
				errno = 0;
				die("no \"tok0\" in the answer");
			}
			ms[i] = ((stream ? first : t1) - t0) * 1e3;
			total[i] = (t1 - t0) * 1e3;
		}
		fputs("{\"ms\":[", stdout);
		for (int i = 0; i < calls; i++)
			printf("%s%.4f", i ? "," : "", ms[i]);
		fputs("],\"total_ms\":[", stdout);
		for (int i = 0; i < calls; i++)
			printf("%s%.4f", i ? "," : "", total[i]);
		printf("],\"reconnects\":%d}\n", reconnects);
		fflush(stdout);
	}
	return 0;
}

int main(int argc, char **argv)
{
	int rc = 2;
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 2 && strcmp(argv[1], "origin") == 0) {
		pattern = malloc(SEND_BUF);
		for (size_t i = 0; i < SEND_BUF; i++)
			pattern[i] = "0123456789abcdef"[i % 16];
		listen_cc = argc >= 3 ? argv[2] : NULL;
		serve(origin_conn);
	} else if (argc >= 2 && strcmp(argv[1], "provider") == 0) {
		if (argc >= 3)
			delay_us = (unsigned)atoi(argv[2]);
		provider();
	} else if (argc >= 2 && strcmp(argv[1], "get") == 0) {
		rc = cmd_get(argc, argv);
	} else if (argc >= 2 && strcmp(argv[1], "chat") == 0) {
		rc = cmd_chat(argc, argv);
	}
	if (rc == 2)
		fprintf(
		    stderr,
		    "usage: netbench origin [CC] | provider [DELAY_US] | get direct|connect|socks "
		    "PORT HOST DPORT BYTES | chat PORT PATH CALLS stream|whole\n");
	return rc;
}
