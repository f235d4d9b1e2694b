/* client-cp.c: `warden cp`: files between here and a wardend sandbox, through its files
 * API (docs/api.yaml), directories recursively (client.h).
 */
#define _GNU_SOURCE
#include "client.h"

#include <dirent.h>
#include <event2/http.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

static const char cp_usage[] =
    "usage: warden cp [OPTIONS] SRC DST\n"
    "\n"
    "Copy files between here and a sandbox; the sandbox's side is written ID:/path.\n"
    "A directory is copied with what it holds (symlinks are skipped). SRC '-' reads our\n"
    "standard input; DST '-' writes to our standard output.\n";

/* "ID:/path" → id and path; false for a local path. */
static bool split_remote(const char *arg, char **ret_id, const char **ret_path)
{
	const char *colon = strchr(arg, ':');
	if (!colon || colon == arg || memchr(arg, '/', (size_t)(colon - arg)))
		return false;
	*ret_id = strndup(arg, (size_t)(colon - arg));
	*ret_path = colon + 1;
	return true;
}

static char *join(const char *dir, const char *name)
{
	size_t n = strlen(dir);
	return xasprintf("%s%s%s", dir, n && dir[n - 1] == '/' ? "" : "/", name);
}

static const char *base_name(const char *p)
{
	static char buf[PATH_MAX];
	snprintf(buf, sizeof(buf), "%s", p);
	size_t n = strlen(buf);
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
	const char *slash = strrchr(buf, '/');
	return slash && slash[1] ? slash + 1 : buf;
}

/* Stat a path inside the sandbox: 1 and *ret (FileInfo) if it exists, 0 if not (a 404
 * when missing_ok), or EXIT_WARDEN having said why. */
static int remote_stat(struct client *c, const char *id, const char *path, bool missing_ok,
                       json_t **ret)
{
	_cleanup_free_ char *q = client_path_query(path, NULL);
	_cleanup_free_ char *url = client_sandbox_path(id, NULL);
	_cleanup_free_ char *full = xasprintf("%s/files/stat%s", url, q);
	struct http h = {0};
	int r = http_exchange(&h, c, "GET", full, NULL, ret);
	if (r < 0)
		r = missing_ok && h.status == 404 ? 0 : http_fail(&h, id);
	else
		r = 1;
	http_done(&h);
	return r;
}

static int sink_fd(struct http *h, const char *data, size_t len)
{
	int fd = *(int *)h->arg;
	if (client_write_all(fd, data, len) < 0) {
		if (errno == EPIPE)
			client_die_of_sigpipe();
		http_why(h, errno, "writing the copy");
		return -1;
	}
	return 0;
}

static int download(struct client *c, const char *id, const char *src, const char *dst, int depth);

static int download_dir(struct client *c, const char *id, const char *src, const char *dst,
                        int depth)
{
	if (mkdir(dst, 0755) < 0 && errno != EEXIST)
		return cli_failf("cp: %s: %s", dst, strerror(errno));
	_cleanup_free_ char *q = client_path_query(src, NULL);
	_cleanup_free_ char *url = client_sandbox_path(id, NULL);
	_cleanup_free_ char *full = xasprintf("%s/files/list%s", url, q);
	_cleanup_json_ json_t *list = NULL;
	int r = http_call(c, "GET", full, NULL, &list, id);
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(list, "entries"), i, e)
	{
		const char *name = json_string_value(json_object_get(e, "name"));
		if (r || !name || streq(name, ".") || streq(name, ".."))
			continue;
		_cleanup_free_ char *s = join(src, name), *d = join(dst, name);
		r = download(c, id, s, d, depth + 1);
	}
	return r;
}

static int download(struct client *c, const char *id, const char *src, const char *dst, int depth)
{
	if (depth > 64)
		return cli_failf("cp: %s:%s: too deep", id, src);
	_cleanup_json_ json_t *info = NULL;
	int r = remote_stat(c, id, src, false, &info);
	if (r != 1)
		return r;
	const char *type = json_string_value(json_object_get(info, "type"));
	const char *mode_s = json_string_value(json_object_get(info, "mode"));
	mode_t mode = mode_s ? (mode_t)strtoul(mode_s, NULL, 8) & 07777 : 0644;
	struct stat st;
	_cleanup_free_ char *target = NULL;
	if (!streq(dst, "-") && depth == 0 && stat(dst, &st) == 0 && S_ISDIR(st.st_mode))
		target = join(dst, base_name(src));
	else
		target = xstrdup(dst);
	if (type && streq(type, "dir")) {
		if (streq(target, "-"))
			return cli_failf("cp: %s:%s is a directory: cannot write it to stdout", id,
			                 src);
		return download_dir(c, id, src, target, depth);
	}
	if (!type || !streq(type, "file")) {
		cli_warn("cp: %s:%s: skipped (a %s)", id, src, type ? type : "special file");
		return 0;
	}
	bool to_stdout = streq(target, "-");
	_cleanup_close_ int fd =
	    to_stdout ? dup(STDOUT_FILENO)
	              : open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode ? mode : 0644);
	if (fd < 0)
		return cli_failf("cp: %s: %s", target, strerror(errno));
	_cleanup_free_ char *q = client_path_query(src, NULL);
	_cleanup_free_ char *url = client_sandbox_path(id, NULL);
	_cleanup_free_ char *full = xasprintf("%s/files%s", url, q);
	struct http h = {.sink = sink_fd, .arg = &fd};
	if (http_start(&h, c, "GET", full, "application/octet-stream", NULL, NULL) < 0 ||
	    http_wait(&h) < 0) {
		r = http_fail(&h, id);
		if (!to_stdout)
			unlink(target);
	}
	http_done(&h);
	return r == 1 ? 0 : r;
}

static int upload(struct client *c, const char *src, const char *id, const char *dst, int depth);

static int upload_dir(struct client *c, const char *src, const char *id, const char *dst, int depth)
{
	_cleanup_free_ char *q = client_path_query(dst, NULL);
	_cleanup_free_ char *url = client_sandbox_path(id, NULL);
	_cleanup_free_ char *full = xasprintf("%s/files/mkdir%s", url, q);
	struct http h = {0};
	int r = http_exchange(&h, c, "POST", full, NULL, NULL) < 0 && h.status != 409
	            ? http_fail(&h, id)
	            : 0;
	http_done(&h);
	if (r)
		return r;
	_cleanup_closedir_ DIR *d = opendir(src);
	if (!d)
		return cli_failf("cp: %s: %s", src, strerror(errno));
	struct dirent *de;
	while (r == 0 && (de = readdir(d))) {
		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		_cleanup_free_ char *s = join(src, de->d_name), *t = join(dst, de->d_name);
		r = upload(c, s, id, t, depth + 1);
	}
	return r;
}

static int upload(struct client *c, const char *src, const char *id, const char *dst, int depth)
{
	if (depth > 64)
		return cli_failf("cp: %s: too deep", src);
	bool from_stdin = streq(src, "-");
	struct stat st = {.st_mode = S_IFREG | 0644};
	if (!from_stdin && lstat(src, &st) < 0)
		return cli_failf("cp: %s: %s", src, strerror(errno));
	_cleanup_free_ char *target = NULL;
	if (depth == 0) {
		size_t n = strlen(dst);
		_cleanup_json_ json_t *info = NULL;
		int r = n && dst[n - 1] == '/' ? 1 : remote_stat(c, id, dst, true, &info);
		if (r > 1)
			return r;
		const char *type = json_string_value(json_object_get(info, "type"));
		bool into = r == 1 && (!info || (type && streq(type, "dir")));
		if (into && from_stdin)
			return cli_failf("cp: %s:%s is a directory: name the file to write", id,
			                 dst);
		target = into ? join(dst, base_name(src)) : xstrdup(dst);
	} else {
		target = xstrdup(dst);
	}
	if (S_ISDIR(st.st_mode))
		return upload_dir(c, src, id, target, depth);
	if (!S_ISREG(st.st_mode)) {
		cli_warn("cp: %s: skipped (not a regular file or directory)", src);
		return 0;
	}
	_cleanup_evbuffer_ struct evbuffer *body = evbuffer_new();
	if (from_stdin) {
		if (client_read_stdin(body) < 0)
			return cli_failf("cp: reading standard input: %s", strerror(errno));
	} else {
		int fd = open(src, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return cli_failf("cp: %s: %s", src, strerror(errno));
		if (st.st_size == 0)
			close(fd);
		else if (evbuffer_add_file(body, fd, 0, st.st_size) < 0) /* takes fd */
			return cli_failf("cp: %s: cannot read it", src);
	}
	char mode[32];
	snprintf(mode, sizeof(mode), "&mode=%04o", (unsigned)(st.st_mode & 0777));
	_cleanup_free_ char *q = client_path_query(target, mode);
	_cleanup_free_ char *url = client_sandbox_path(id, NULL);
	_cleanup_free_ char *full = xasprintf("%s/files%s", url, q);
	struct http h = {0};
	int r = 0;
	if (http_start(&h, c, "PUT", full, "application/json", "application/octet-stream", body) <
	        0 ||
	    http_wait(&h) < 0)
		r = http_fail(&h, id);
	http_done(&h);
	return r;
}

int cmd_cp(int argc, char **argv)
{
	static const struct option opts[] = {COMMON_OPTIONS{NULL, 0, NULL, 0}};
	struct client c = {.verb = "cp"};
	int o;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1)
		if (!client_option(&c, o, optarg))
			return client_usage_error("cp", cp_usage, o, argv);
	if (argc - optind != 2)
		return cli_failf("cp: expected SRC and DST (usage: warden cp SRC DST, one of them "
		                 "ID:/path)");
	const char *src = argv[optind], *dst = argv[optind + 1];
	_cleanup_free_ char *sid = NULL, *did = NULL;
	const char *spath = NULL, *dpath = NULL;
	bool sr = split_remote(src, &sid, &spath), dr = split_remote(dst, &did, &dpath);
	if (sr == dr)
		return cli_failf("cp: %s", sr ? "copying between sandboxes is not supported"
		                              : "one of SRC and DST must be ID:/path");
	const char *rpath = sr ? spath : dpath;
	if (rpath[0] != '/')
		return cli_failf("cp: \"%s\": the path in the sandbox must be absolute",
		                 sr ? src : dst);
	if (client_init(&c))
		return EXIT_WARDEN;
	int r = sr ? download(&c, sid, spath, dst, 0) : upload(&c, src, did, dpath, 0);
	client_done(&c);
	return r;
}
