/* policy.c: `warden policy list | show NAME|FILE | check FILE...`. */
#define _GNU_SOURCE
#include "cli.h"
#include "../lib/policy.h"

static const char usage[] =
    "usage: warden policy list\n"
    "       warden policy show NAME|FILE   (the effective policy, as YAML)\n"
    "       warden policy check FILE...    (validate; exit 0 if all are valid)\n";

int cmd_policy(int argc, char **argv)
{
	if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_WARDEN : 0;
	}
	const char *sub = argv[1];
	if (streq(sub, "list")) {
		for (const char *const *n = warden_preset_names; *n; n++)
			printf("%s\n", *n);
		return 0;
	}
	if (streq(sub, "show")) {
		if (argc != 3)
			return cli_failf("policy show: expected one NAME or FILE");
		struct warden_error *e = NULL;
		struct warden_policy *p = warden_policy_load(argv[2], &e);
		if (!p)
			return cli_fail(e);
		char *yaml = warden_policy_to_yaml(p);
		fputs(yaml, stdout);
		free(yaml);
		warden_policy_free(p);
		return 0;
	}
	if (streq(sub, "check")) {
		if (argc < 3)
			return cli_failf("policy check: expected at least one FILE");
		int bad = 0;
		for (int i = 2; i < argc; i++) {
			struct warden_error *e = NULL;
			struct warden_policy *p = warden_policy_load(argv[i], &e);
			if (!p) {
				cli_fail(e);
				bad = 1;
				continue;
			}
			printf("%s: ok\n", argv[i]);
			warden_policy_free(p);
		}
		return bad ? EXIT_WARDEN : 0;
	}
	return cli_failf("policy: unknown subcommand \"%s\"\n%s", sub, usage);
}
