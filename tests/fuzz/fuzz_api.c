/* fuzz_api.c: wardend's request layer (src/daemon/request.c), on what a client sends:
 * "METHOD\nPATH[?QUERY]\nBODY". The route is matched, the query parsed for it, and the
 * body given to every body parser; each outcome is checked (a refusal has a status, a
 * code and a message; an acceptance satisfies what the handlers rely on). The UTF-8
 * repair of exec output (src/lib/text.c) is checked on the body too: valid UTF-8 out, the same text
 * whether the bytes came at once or in two pieces.
 */
#include "src/daemon/request.h"
#include "src/lib/text.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_error(const struct api_error *e)
{
	if (e->status < 400 || e->status > 599 || !e->code || !e->message[0] ||
	    strnlen(e->message, sizeof(e->message)) == sizeof(e->message))
		abort();
}

static bool is_hex_id(const char *s)
{
	return strlen(s) == SANDBOX_ID_LEN && strspn(s, "0123456789abcdef") == SANDBOX_ID_LEN;
}

static void check_query(enum api_route route, const char *query)
{
	struct api_query q;
	struct api_error e = {0};
	if (api_query_parse(route, query, &q, &e) < 0) {
		check_error(&e);
		if (q.n || q.v)
			abort();
		return;
	}
	for (size_t i = 0; i < q.n; i++)
		if (!q.v[i].name || !q.v[i].value)
			abort();
	struct api_files_q fq;
	if (api_files_query(route, &q, &fq, &e) < 0) {
		check_error(&e);
	} else {
		if (!fq.path || fq.path[0] != '/' || strlen(fq.path) >= 4096 || fq.mode > 0777 ||
		    fq.mode < -1)
			abort();
	}
	struct api_label_filter f;
	if (api_list_query(&q, &f, &e) < 0) {
		check_error(&e);
	} else {
		json_t *labels = json_pack("{s:s, s:s}", "team", "red", "a", "");
		for (size_t i = 0; i < f.n; i++)
			if (!f.key_len[i] || !f.value[i])
				abort();
		(void)api_labels_match(labels, &f);
		json_decref(labels);
	}
	api_query_clear(&q);
}

static void check_bodies(const char *body, size_t len)
{
	struct api_error e = {0};
	struct api_create c;
	if (api_parse_create(body, len, 7200, &c, &e) < 0) {
		check_error(&e);
	} else {
		if (!c.policy == !c.policy_yaml || c.ttl < 1 || c.ttl > 7200 ||
		    !json_is_object(c.labels))
			abort();
		for (size_t i = 0; i < c.env.n; i++)
			if (!strchr(c.env.v[i], '='))
				abort();
		api_create_clear(&c);
	}
	struct api_exec x;
	if (api_parse_exec(body, len, &x, &e) < 0) {
		check_error(&e);
	} else {
		if (x.argv.n == 0 || !x.argv.v[0][0] || x.timeout < 0 ||
		    (x.workdir && x.workdir[0] != '/'))
			abort();
		api_exec_clear(&x);
	}
	int sig = 0;
	if (api_parse_kill(body, len, &sig, &e) < 0)
		check_error(&e);
	else if (sig < 1 || sig > 64)
		abort();
}

static void check_text(const uint8_t *data, size_t size)
{
	struct warden_text whole = {0}, parts = {0};
	size_t cut = size ? data[0] % (size + 1) : 0;
	warden_text_add(&whole, data, size, true);
	warden_text_add(&parts, data, cut, false);
	warden_text_add(&parts, data + cut, size - cut, true);
	/* jansson refuses invalid UTF-8: what comes out must be a JSON string as it is. */
	json_t *s = json_stringn(whole.s, whole.len);
	if (!s || whole.len != parts.len || memcmp(whole.s, parts.s, whole.len))
		abort();
	json_decref(s);
	warden_text_clear(&whole);
	warden_text_clear(&parts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = xmalloc(size + 1);
	memcpy(buf, data, size);
	buf[size] = '\0';
	char *method = buf, *path = memchr(buf, '\n', size), *body = NULL;
	size_t body_len = 0;
	if (path) {
		*path++ = '\0';
		body = strchr(path, '\n');
		if (body) {
			*body++ = '\0';
			body_len = size - (size_t)(body - buf);
		}
	}
	if (path) {
		char *query = strchr(path, '?');
		if (query)
			*query++ = '\0';
		struct api_match m;
		struct api_error e = {0};
		if (api_route_match(method, path, &m, &e) < 0) {
			check_error(&e);
			if (e.status != 400 && e.status != 404 && e.status != 405)
				abort();
			if (e.status == 405 && !e.allow[0])
				abort();
		} else {
			if (m.route >= R_MAX || strcmp(api_routes[m.route].method, method))
				abort();
			if (strstr(api_routes[m.route].pattern, "{id}") && !is_hex_id(m.id))
				abort();
			if (strstr(api_routes[m.route].pattern, "{exec_id}") && m.exec_id == 0)
				abort();
			check_query(m.route, query);
		}
	}
	if (body)
		check_bodies(body, body_len);
	(void)api_stream_kind(buf);
	check_text(data, size);
	free(buf);
	return 0;
}
