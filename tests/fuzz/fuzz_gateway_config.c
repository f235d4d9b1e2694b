/* fuzz_gateway_config.c: warden_gateway_config_parse() (gateway.yaml) and the base URL
 * parser on arbitrary bytes.
 *
 * Besides the sanitizers, checks the parser's contract: a failure fills the error and
 * names the origin; a success holds only what the schema allows (at least one provider,
 * model and section; indices in range; every provider with a parsed URL whose path has
 * no empty, ".", ".." or percent-encoded component, a timeout and exactly one key source;
 * no key loaded), and the lookups find every section and every model a section allows.
 * The whole input, as a C string, also goes to gw_url_parse().
 */
#define _GNU_SOURCE
#include "src/lib/net/gateway-internal.h"
#include "src/lib/util.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_url(const struct gw_url *u)
{
	size_t n = strlen(u->path);
	if (!u->host || !*u->host || !u->host_header || !u->port)
		abort();
	/* The path is sent as given: no empty, "." or ".." component may change where. */
	if (n &&
	    (!path_is_normal_absolute(u->path) || u->path[n - 1] == '/' || strchr(u->path, '%')))
		abort();
}

static void check_config(const struct warden_gateway_config *c)
{
	if (!c->n_providers || !c->n_models || !c->n_sections)
		abort();
	for (size_t i = 0; i < c->n_providers; i++) {
		const struct gw_provider *p = &c->providers[i];
		if (!p->name || p->kind >= GW_KIND_MAX || !p->key_env == !p->key_file || p->key)
			abort();
		if (!p->timeout_ms || p->timeout_ms > 3600000 || (p->ca_file && !p->url.https))
			abort();
		check_url(&p->url);
	}
	for (size_t i = 0; i < c->n_models; i++)
		if (!c->models[i].name || c->models[i].provider >= c->n_providers)
			abort();
	bool any = false;
	for (size_t i = 0; i < c->n_sections; i++) {
		const struct gw_section *s = &c->sections[i];
		any |= streq(s->policy, "*");
		if (gw_config_section(c, s->policy) != s ||
		    !warden_gateway_config_serves(c, s->policy))
			abort();
		for (size_t j = 0; j < s->n_models; j++) {
			if (s->models[j] >= c->n_models)
				abort();
			const char *name = c->models[s->models[j]].name;
			if (gw_section_model(c, s, name) != &c->models[s->models[j]])
				abort();
		}
	}
	/* No policy name contains '/': only "*" serves it. */
	if (warden_gateway_config_serves(c, "no/such/policy") != any)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct warden_error *e = NULL;
	struct warden_gateway_config *c =
	    warden_gateway_config_parse((const char *)data, size, "fuzz.yaml", &e);
	if (!c) {
		if (!e || !e->msg || strncmp(e->msg, "fuzz.yaml", 9) != 0)
			abort();
		(void)warden_error_text(e);
		warden_error_free(e);
	} else {
		if (e)
			abort();
		check_config(c);
		warden_gateway_config_free(c);
	}

	char *s = strndup((const char *)data, size);
	struct gw_url u;
	const char *why = NULL;
	if (!s)
		abort();
	if (gw_url_parse(s, &u, &why) == 0) {
		check_url(&u);
		gw_url_clear(&u);
	} else if (!why) {
		abort();
	}
	free(s);
	return 0;
}
