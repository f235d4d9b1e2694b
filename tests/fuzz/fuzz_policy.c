/* fuzz_policy.c: warden_policy_parse() on arbitrary bytes.
 *
 * Besides the sanitizers, checks the parser's contract: a failure fills the error and
 * names the origin; a success renders with warden_policy_to_yaml() into text that
 * parses back and renders identically.
 */
#include "src/lib/policy.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct warden_error *e = NULL;
	struct warden_policy *p = warden_policy_parse((const char *)data, size, "fuzz.yaml", &e);
	if (!p) {
		if (!e || !e->msg || strncmp(e->msg, "fuzz.yaml", 9) != 0)
			abort();
		(void)warden_error_text(e);
		warden_error_free(e);
		return 0;
	}
	if (e)
		abort();
	char *once = warden_policy_to_yaml(p);
	struct warden_policy *q = warden_policy_parse(once, strlen(once), "fuzz.yaml", &e);
	if (!q) {
		fprintf(stderr, "rendered policy does not parse: %s\n---\n%s", warden_error_text(e),
		        once);
		abort();
	}
	char *twice = warden_policy_to_yaml(q);
	if (!streq(once, twice)) {
		fprintf(stderr, "rendering changed:\n---\n%s---\n%s", once, twice);
		abort();
	}
	free(twice);
	warden_policy_free(q);
	free(once);
	warden_policy_free(p);
	return 0;
}
