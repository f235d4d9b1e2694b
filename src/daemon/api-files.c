/* api-files.c: /v1/sandboxes/{id}/files[/list|/stat|/mkdir]: files inside a sandbox,
 * through src/lib/files.c (paths resolved under the sandbox's root, with the sandbox
 * user's rights).
 */
#define _GNU_SOURCE
#include "wardend.h"

#include <event2/buffer.h>

#define LIST_MAX 10000

static json_t *info_json(const char *path, const char *name, const struct warden_file_info *fi)
{
	char mode[8], mtime[32];
	snprintf(mode, sizeof(mode), "%04o", (unsigned)fi->mode);
	return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s}", "path", path, "name", name, "type",
	                 warden_file_type_names[fi->type], "size", (json_int_t)fi->size, "mode",
	                 mode, "mtime", rfc3339(fi->mtime.tv_sec, mtime, sizeof(mtime)));
}

/* The last component of a path ("/" for the root). */
static const char *base_name(const char *path, char *buf, size_t len)
{
	size_t n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		n--;
	size_t start = n;
	while (start > 0 && path[start - 1] != '/')
		start--;
	if (n == start)
		return "/";
	snprintf(buf, len, "%.*s", (int)(n - start), path + start);
	return buf;
}

struct listing {
	const char *dir;
	json_t *entries;
};

static int list_one(const char *name, const struct warden_file_info *fi, void *ctx)
{
	struct listing *l = ctx;
	_cleanup_free_ char *path =
	    xasprintf("%s%s%s", l->dir, l->dir[strlen(l->dir) - 1] == '/' ? "" : "/", name);
	json_array_append_new(l->entries, info_json(path, name, fi));
	return 0;
}

void api_files(struct call *c, struct sandbox *sb)
{
	struct api_files_q q;
	struct api_error e = {0};
	_cleanup_error_ struct warden_error *we = NULL;
	struct warden_file_info fi;
	char name[256 + 1];
	if (api_files_query(c->m.route, &c->q, &q, &e) < 0)
		return reply_api_error(c->req, &e);
	const struct warden_root *root = sandbox_root(sb, &we);
	if (!root)
		return reply_werror(c->req, we);
	const char *base = base_name(q.path, name, sizeof(name));
	int r = 0;
	switch (c->m.route) {
	case R_FILE_GET: {
		int fd = warden_file_open_read(root, q.path, &fi, &we);
		if (fd < 0) {
			r = -1;
			break;
		}
		/* The open file, sent as it is read: the fd is the buffer's now. */
		struct evbuffer *b = evbuffer_new();
		if (fi.size == 0) {
			close(fd);
		} else if (evbuffer_add_file(b, fd, 0, (ev_off_t)fi.size) < 0) {
			close(fd);
			evbuffer_free(b);
			warden_error_set(&we, EIO, "%s: reading", q.path);
			r = -1;
			break;
		}
		reply_text(c->req, 200, "application/octet-stream", b);
		evbuffer_free(b);
		break;
	}
	case R_FILE_PUT:
		if ((r = warden_file_write(root, q.path, c->body, c->body_len, q.mode, &fi, &we)) ==
		    0)
			reply_json(c->req, 201, info_json(q.path, base, &fi));
		break;
	case R_FILE_DELETE:
		if ((r = warden_file_delete(root, q.path, q.recursive, &we)) == 0)
			reply_empty(c->req, 204);
		break;
	case R_FILE_LIST: {
		struct listing l = {.dir = q.path, .entries = json_array()};
		bool truncated = false;
		r = warden_file_list(root, q.path, LIST_MAX, list_one, &l, &truncated, &we);
		if (r == 0)
			reply_json(c->req, 200,
			           json_pack("{s:s, s:o, s:b}", "path", q.path, "entries",
			                     l.entries, "truncated", truncated));
		else
			json_decref(l.entries);
		break;
	}
	case R_FILE_STAT:
		if ((r = warden_file_stat(root, q.path, &fi, &we)) == 0)
			reply_json(c->req, 200, info_json(q.path, base, &fi));
		break;
	case R_FILE_MKDIR:
		if ((r = warden_file_mkdir(root, q.path, q.mode, q.parents, &fi, &we)) == 0)
			reply_json(c->req, 201, info_json(q.path, base, &fi));
		break;
	default:
		break;
	}
	if (r < 0)
		reply_werror(c->req, we);
}
