/* driver.c: what the drivers of tests/net share (driver.h). */
#define _GNU_SOURCE
#include "driver.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

void driver_print(json_t *line)
{
	char *s = json_dumps(line, JSON_COMPACT);
	json_decref(line);
	if (!s)
		abort();
	printf("%s\n", s);
	fflush(stdout);
	free(s);
}

json_t *driver_str(const char *s)
{
	return s ? json_string(s) : json_null();
}

_Noreturn void driver_die(const char *what)
{
	fprintf(stderr, "%s: %s\n", program_invocation_short_name, what);
	exit(1);
}

int driver_socket(int type, const char *host, unsigned port, unsigned *ret_port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	socklen_t len = sizeof(sa);
	int one = 1;
	if (port > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		driver_die("bad address or port");
	int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    (type == SOCK_STREAM && listen(fd, 128) < 0) ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		driver_die(strerror(errno));
	*ret_port = ntohs(sa.sin_port);
	return fd;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	event_base_loopbreak(arg);
}

void driver_signals(struct event_base *base, struct event *ev[2])
{
	signal(SIGPIPE, SIG_IGN);
	ev[0] = evsignal_new(base, SIGTERM, on_signal, base);
	ev[1] = evsignal_new(base, SIGINT, on_signal, base);
	if (!ev[0] || !ev[1] || evsignal_add(ev[0], NULL) < 0 || evsignal_add(ev[1], NULL) < 0)
		driver_die("cannot catch signals");
}

void driver_signals_free(struct event *ev[2])
{
	event_free(ev[0]);
	event_free(ev[1]);
}
