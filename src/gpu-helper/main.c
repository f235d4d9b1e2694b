/* warden-gpu: the one process of warden that loads the NVIDIA driver's libraries (NVML,
 * libcuda, both with dlopen()); src/lib/gpu/gpu.h says why it is separate.
 *
 * Sections: JSON output; list; watch; scrub and bandwidth; the leak check; the verb table.
 *
 * Every command prints JSON objects, one per line, on standard output; the last line is
 * the answer. Exit status: 0 done, 1 failed, 2 no driver (library or nodes missing), 3
 * usage; a failure's line is {"error": TEXT}.
 */
#define _GNU_SOURCE
#include "../lib/gpu/driver.h"

#include <inttypes.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>

/* ---- output ---------------------------------------------------------------------------- */

/* A JSON string (names come from the driver; escape what JSON needs). */
static void jstr(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static int fail(struct warden_error *e)
{
	printf("{\"error\": ");
	jstr(stdout, e->msg);
	printf("}\n");
	int absent = e->errnum == ENODEV;
	warden_error_free(e);
	return absent ? 2 : 1;
}

static int usage(void)
{
	fputs("usage: warden-gpu list | watch --sandbox ID UUID... |\n"
	      "       scrub UUID [--sandbox ID] [--wait-ms N] | bandwidth UUID | leakcheck UUID |\n"
	      "       leak-write|leak-listen|leak-control UUID TAG\n",
	      stderr);
	return 3;
}

/* ---- list ------------------------------------------------------------------------------ */

static void list_mig(struct nvml *n, nvml_device d)
{
	unsigned cur = 0, pending = 0, max = 0;
	printf(", \"mig\": [");
	if (!n->mig_mode || n->mig_mode(d, &cur, &pending) != 0 || !cur || n->mig_max(d, &max)) {
		printf("]");
		return;
	}
	for (unsigned i = 0, k = 0; i < max; i++) {
		nvml_device m;
		char uuid[96];
		unsigned gi = 0, ci = 0;
		if (n->mig_by_index(d, i, &m) != 0 || n->uuid(m, uuid, sizeof(uuid)) != 0)
			continue;
		n->gpu_instance_id(m, &gi);
		n->compute_instance_id(m, &ci);
		printf("%s{\"uuid\": ", k++ ? ", " : "");
		jstr(stdout, uuid);
		printf(", \"gi\": %u, \"ci\": %u}", gi, ci);
	}
	printf("]");
}

static int cmd_list(void)
{
	struct nvml n;
	struct warden_error *e = NULL;
	char version[96] = "";
	unsigned count = 0;
	if (nvml_open(&n, &e) < 0)
		return fail(e);
	n.driver_version(version, sizeof(version));
	n.count(&count);
	printf("{\"driver\": ");
	jstr(stdout, version);
	printf(", \"gpus\": [");
	for (unsigned i = 0; i < count; i++) {
		nvml_device d;
		char uuid[96] = "", name[96] = "";
		unsigned minor = 0;
		struct nvml_memory mem = {0};
		if (n.by_index(i, &d) != 0)
			continue;
		n.uuid(d, uuid, sizeof(uuid));
		n.name(d, name, sizeof(name));
		n.minor(d, &minor);
		n.memory(d, &mem);
		printf("%s{\"index\": %u, \"uuid\": ", i ? ", " : "", i);
		jstr(stdout, uuid);
		printf(", \"name\": ");
		jstr(stdout, name);
		printf(", \"minor\": %u, \"memory_total\": %llu", minor, mem.total);
		list_mig(&n, d);
		printf("}");
	}
	printf("]}\n");
	nvml_close(&n);
	return 0;
}

/* ---- watch ----------------------------------------------------------------------------- */

static volatile sig_atomic_t stop;
static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

/* One sample of a device: utilization, memory, and the memory of the sandbox's processes
 * (NVML reports host pids; each is mapped to a sandbox through its cgroup). */
static void watch_sample(struct nvml *n, nvml_device d, const char *uuid, const char *id)
{
	struct nvml_utilization u = {0};
	struct nvml_memory mem = {0};
	struct nvml_process procs[64];
	uint64_t mine = 0;
	n->utilization(d, &u);
	n->memory(d, &mem);
	struct warden_error *e = NULL;
	int count = nvml_processes(n, d, procs, ARRAY_SIZE(procs), &e);
	warden_error_free(e);
	printf("{\"uuid\": ");
	jstr(stdout, uuid);
	printf(", \"utilization_gpu\": %u, \"utilization_memory\": %u, \"memory_used\": %llu, "
	       "\"sandbox_pids\": [",
	       u.gpu, u.memory, mem.used);
	for (int i = 0, k = 0; i < count; i++)
		if (nvml_pid_in_sandbox((pid_t)procs[i].pid, id)) {
			mine += procs[i].used;
			printf("%s%u", k++ ? ", " : "", procs[i].pid);
		}
	printf("], \"sandbox_memory\": %" PRIu64 "}\n", mine);
}

static int cmd_watch(int argc, char **argv)
{
	const char *id = NULL;
	unsigned interval = 200;
	int first = 0;
	for (int i = 0; i < argc; i++) {
		if (streq(argv[i], "--sandbox") && i + 1 < argc)
			id = argv[++i];
		else if (streq(argv[i], "--interval") && i + 1 < argc)
			interval = (unsigned)atoi(argv[++i]);
		else if (!first)
			first = i;
	}
	if (!id || !first || interval < 10)
		return usage();
	struct nvml n;
	struct warden_error *e = NULL;
	/* A watcher outlives no supervisor, however the supervisor ends. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() == 1)
		return 1;
	if (nvml_open(&n, &e) < 0)
		return fail(e);
	nvml_device devs[16];
	int nd = 0;
	void *set = NULL;
	if (n.event_set_create)
		n.event_set_create(&set);
	for (int i = first; i < argc && nd < 16; i++)
		if (n.by_uuid(argv[i], &devs[nd]) == 0) {
			if (set)
				n.register_events(devs[nd], NVML_XID_EVENT, set);
			argv[first + nd] = argv[i];
			nd++;
		}
	signal(SIGTERM, on_term);
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (!stop) {
		for (int i = 0; i < nd; i++)
			watch_sample(&n, devs[i], argv[first + i], id);
		struct nvml_event ev;
		/* Device errors arrive as Xid events; the wait doubles as the interval. Any
		 * answer but an event or a timeout (NVML_ERROR_TIMEOUT, 10) comes at once, and
		 * must not turn the loop into a busy one. */
		int r = set ? n.event_set_wait(set, &ev, interval) : -1;
		if (r == 0)
			printf("{\"xid\": %llu, \"gpu_instance\": %u, \"compute_instance\": %u}\n",
			       ev.data, ev.gpu_instance, ev.compute_instance);
		else if (r != 10)
			usleep(interval * 1000);
	}
	nvml_close(&n);
	return 0;
}

/* ---- scrub, bandwidth ------------------------------------------------------------------ */

static int cmd_scrub(int argc, char **argv)
{
	const char *uuid = NULL, *id = NULL;
	unsigned wait_ms = 10000;
	for (int i = 0; i < argc; i++) {
		if (streq(argv[i], "--sandbox") && i + 1 < argc)
			id = argv[++i];
		else if (streq(argv[i], "--wait-ms") && i + 1 < argc)
			wait_ms = (unsigned)atoi(argv[++i]);
		else if (!uuid)
			uuid = argv[i];
		else
			return usage();
	}
	if (!uuid)
		return usage();
	struct scrub_result r;
	struct warden_error *e = NULL;
	if (gpu_scrub(uuid, id, wait_ms, &r, &e) < 0)
		return fail(e);
	double gib = (double)r.bytes / (double)(1ULL << 30);
	printf("{\"uuid\": ");
	jstr(stdout, uuid);
	printf(", \"bytes\": %" PRIu64 ", \"chunks\": %" PRIu64 ", \"free_before\": %" PRIu64
	       ", \"total\": %" PRIu64 ", \"seconds\": %.3f, \"memset_seconds\": %.3f, "
	       "\"memset_gib_s\": %.1f, \"samples\": %" PRIu64 ", \"verified\": %s, "
	       "\"foreign_processes\": %" PRIu64 "}\n",
	       r.bytes, r.chunks, r.free_before, r.total, r.seconds, r.memset_seconds,
	       r.memset_seconds > 0 ? gib / r.memset_seconds : 0.0, r.samples,
	       r.verified ? "true" : "false", r.foreign);
	return 0; /* a scrub that ran has a result; "verified" says whether it cleared */
}

static int cmd_bandwidth(const char *uuid)
{
	double gib_s;
	struct warden_error *e = NULL;
	if (gpu_memset_bandwidth(uuid, 1ULL << 30, &gib_s, &e) < 0)
		return fail(e);
	printf("{\"uuid\": ");
	jstr(stdout, uuid);
	printf(", \"buffer_bytes\": %llu, \"memset_gib_s\": %.1f}\n", 1ULL << 30, gib_s);
	return 0;
}

/* ---- the leak check -------------------------------------------------------------------- */

static int cmd_leak_part(const char *part, const char *uuid, const char *tag_s)
{
	uint32_t tag = (uint32_t)strtoul(tag_s, NULL, 16);
	uint64_t bytes = 0, tagged = 0;
	struct warden_error *e = NULL;
	int r = streq(part, "leak-write")    ? leak_write(uuid, tag, &bytes, &e)
	        : streq(part, "leak-listen") ? leak_listen(uuid, tag, &bytes, &tagged, &e)
	                                     : leak_control(uuid, tag, &bytes, &tagged, &e);
	if (r < 0)
		return fail(e);
	printf("{\"part\": \"%s\", \"bytes\": %" PRIu64 ", \"tagged_words\": %" PRIu64 "}\n", part,
	       bytes, tagged);
	fflush(stdout);
	/* The writer exits without freeing anything: that is the test. */
	_exit(0);
}

/* Run this program again with args; the numbers of its answer line. */
static int run_part(char *const *args, uint64_t *ret_bytes, uint64_t *ret_tagged, char *line,
                    size_t len)
{
	int fds[2];
	if (pipe(fds) < 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		execv("/proc/self/exe", args);
		_exit(127);
	}
	close(fds[1]);
	FILE *f = fdopen(fds[0], "r");
	line[0] = '\0';
	while (f && fgets(line, (int)len, f))
		;
	if (f)
		fclose(f);
	int status = 0;
	waitpid(pid, &status, 0);
	line[strcspn(line, "\n")] = '\0';
	const char *b = strstr(line, "\"bytes\": "), *t = strstr(line, "\"tagged_words\": ");
	if (ret_bytes && b)
		*ret_bytes = strtoull(b + 9, NULL, 10);
	if (ret_tagged && t)
		*ret_tagged = strtoull(t + 16, NULL, 10);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static uint32_t new_tag(void)
{
	uint32_t t = 0;
	while (t == 0 || t == 0xffffffffu)
		if (getrandom(&t, sizeof(t), 0) != sizeof(t))
			t = (uint32_t)time(NULL) ^ 0x5ca1ab1e;
	return t;
}

/* One round: a writer, then (scrub) the scrub, then a listener. */
static int leak_round(const char *uuid, bool scrub, uint64_t *wrote, uint64_t *read,
                      uint64_t *tagged, char *err, size_t len)
{
	char tag[16], line[1024];
	snprintf(tag, sizeof(tag), "%08x", new_tag());
	char *w[] = {"warden-gpu", "leak-write", (char *)uuid, tag, NULL};
	char *s[] = {"warden-gpu", "scrub", (char *)uuid, NULL};
	char *l[] = {"warden-gpu", "leak-listen", (char *)uuid, tag, NULL};
	if (run_part(w, wrote, NULL, line, sizeof(line)) < 0 ||
	    (scrub && run_part(s, NULL, NULL, line, sizeof(line)) < 0) ||
	    run_part(l, read, tagged, line, sizeof(line)) < 0) {
		snprintf(err, len, "%s", line);
		return -1;
	}
	return 0;
}

static int cmd_leakcheck(const char *uuid)
{
	uint64_t cb = 0, ct = 0, w[2] = {0}, r[2] = {0}, t[2] = {0};
	char tag[16], line[1024];
	snprintf(tag, sizeof(tag), "%08x", new_tag());
	char *c[] = {"warden-gpu", "leak-control", (char *)uuid, tag, NULL};
	if (run_part(c, &cb, &ct, line, sizeof(line)) < 0 ||
	    leak_round(uuid, false, &w[0], &r[0], &t[0], line, sizeof(line)) < 0 ||
	    leak_round(uuid, true, &w[1], &r[1], &t[1], line, sizeof(line)) < 0) {
		printf("{\"error\": \"a leak check part failed: ");
		for (char *p = line; *p; p++)
			if (*p != '"' && *p != '\\')
				putchar(*p);
		printf("\"}\n");
		return strstr(line, "not available") ? 2 : 1;
	}
	printf("{\"uuid\": ");
	jstr(stdout, uuid);
	printf(", \"control\": {\"bytes\": %" PRIu64 ", \"tagged_words\": %" PRIu64 "}, "
	       "\"scrub_off\": {\"written\": %" PRIu64 ", \"read\": %" PRIu64
	       ", \"tagged_words\": %" PRIu64 "}, \"scrub_on\": {\"written\": %" PRIu64
	       ", \"read\": %" PRIu64 ", \"tagged_words\": %" PRIu64 "}}\n",
	       cb, ct, w[0], r[0], t[0], w[1], r[1], t[1]);
	return 0;
}

/* ---- verbs ----------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	const char *verb = argv[1];
	if (streq(verb, "list") && argc == 2)
		return cmd_list();
	if (streq(verb, "watch"))
		return cmd_watch(argc - 2, argv + 2);
	if (streq(verb, "scrub"))
		return cmd_scrub(argc - 2, argv + 2);
	if (streq(verb, "bandwidth") && argc == 3)
		return cmd_bandwidth(argv[2]);
	if (streq(verb, "leakcheck") && argc == 3)
		return cmd_leakcheck(argv[2]);
	if ((streq(verb, "leak-write") || streq(verb, "leak-listen") ||
	     streq(verb, "leak-control")) &&
	    argc == 4)
		return cmd_leak_part(verb, argv[2], argv[3]);
	return usage();
}
