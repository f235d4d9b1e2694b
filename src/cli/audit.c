/* audit.c: `warden audit keygen | verify | prove | checkpoint | append`.
 *
 * Sections: options shared by the subcommands; keygen; verify (a log, or a proof); prove;
 * checkpoint; append (records from stdin). Exit statuses: 0 intact / done, 1 tampering
 * found, 125 usage and I/O errors.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "../lib/audit/audit.h"

#include <getopt.h>
#include <inttypes.h>

#define EXIT_TAMPERED 1

static const char usage[] =
    "usage: warden audit keygen [--key FILE]\n"
    "       warden audit verify [LOG] --key PUB [--checkpoint FILE]\n"
    "       warden audit verify --proof FILE --key PUB\n"
    "       warden audit prove LOG N [--key PUB]\n"
    "       warden audit checkpoint [--audit-log FILE] [--audit-key FILE]\n"
    "       warden audit append [--audit-log FILE] [--audit-key FILE] [--batch N]\n"
    "\n"
    "The audit log: JSON-line records under a Merkle tree, with signed checkpoints\n"
    "(docs/audit.md).\n"
    "\n"
    "  keygen      create an Ed25519 key pair: FILE (private) and FILE.pub; never\n"
    "              replaces one (default FILE: the default audit key)\n"
    "  verify      check every record, the chain and every checkpoint against PUB;\n"
    "              --checkpoint: also that the log still holds that checkpoint's tree\n"
    "              (a copy kept elsewhere: the only way to detect a truncated log);\n"
    "              --proof: check an inclusion proof alone, without the log.\n"
    "              Exit 0 when intact, 1 when not, 125 when it cannot check\n"
    "  prove       print an inclusion proof (JSON) of record N against the latest\n"
    "              checkpoint; with --key, its signature is checked first\n"
    "  checkpoint  add a signed checkpoint now and write it to LOG.checkpoint\n"
    "  append      append JSON objects read from stdin, one per line; each batch of\n"
    "              what has arrived (at most --batch N records) is committed at once\n"
    "\n"
    "  --audit-log FILE         the log (default: $WARDEN_AUDIT_LOG, else\n"
    "                           /var/lib/warden/audit.log as root,\n"
    "                           $XDG_STATE_HOME/warden/audit.log otherwise)\n"
    "  --audit-key FILE         the signing key, created if absent (default:\n"
    "                           $WARDEN_AUDIT_KEY, else audit.key next to the default log)\n"
    "  --origin NAME            the checkpoints' origin and key name\n"
    "                           (default: warden/HOSTNAME/audit)\n"
    "  --checkpoint-every N     records between checkpoints (default 1000)\n"
    "  --checkpoint-seconds N   seconds between checkpoints (default 300)\n";

enum {
	OPT_KEY = 256,
	OPT_CHECKPOINT,
	OPT_PROOF,
	OPT_AUDIT_LOG,
	OPT_AUDIT_KEY,
	OPT_ORIGIN,
	OPT_BATCH,
	OPT_EVERY,
	OPT_SECONDS,
};

static const struct option long_opts[] = {
    {"key", required_argument, NULL, OPT_KEY},
    {"checkpoint", required_argument, NULL, OPT_CHECKPOINT},
    {"proof", required_argument, NULL, OPT_PROOF},
    {"audit-log", required_argument, NULL, OPT_AUDIT_LOG},
    {"audit-key", required_argument, NULL, OPT_AUDIT_KEY},
    {"origin", required_argument, NULL, OPT_ORIGIN},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"checkpoint-every", required_argument, NULL, OPT_EVERY},
    {"checkpoint-seconds", required_argument, NULL, OPT_SECONDS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

struct audit_cli {
	const char *key, *checkpoint, *proof;
	struct warden_audit_opts open;
	unsigned batch;
	const char *args[2];
	int nargs;
};

static int parse_count(const char *opt, const char *s, unsigned *ret)
{
	uint64_t v;
	const char *why = NULL;
	if (parse_uint(s, UINT32_MAX, &v, &why) < 0 || v == 0)
		return cli_failf("audit: %s \"%s\": %s", opt, s, why ? why : "must be at least 1");
	*ret = (unsigned)v;
	return 0;
}

/* Parse argv (argv[0] is the subcommand). Returns 0, 1 for --help, or EXIT_WARDEN. */
static int parse_args(int argc, char **argv, struct audit_cli *o)
{
	optind = 1;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_KEY:
			o->key = optarg;
			break;
		case OPT_CHECKPOINT:
			o->checkpoint = optarg;
			break;
		case OPT_PROOF:
			o->proof = optarg;
			break;
		case OPT_AUDIT_LOG:
			o->open.path = optarg;
			break;
		case OPT_AUDIT_KEY:
			o->open.key_path = optarg;
			break;
		case OPT_ORIGIN:
			o->open.origin = optarg;
			break;
		case OPT_BATCH:
			if (parse_count("--batch", optarg, &o->batch))
				return EXIT_WARDEN;
			break;
		case OPT_EVERY:
			if (parse_count("--checkpoint-every", optarg, &o->open.checkpoint_every))
				return EXIT_WARDEN;
			break;
		case OPT_SECONDS:
			if (parse_count("--checkpoint-seconds", optarg,
			                &o->open.checkpoint_seconds))
				return EXIT_WARDEN;
			break;
		case 'h':
			fputs(usage, stdout);
			return 1;
		default:
			return cli_failf("audit %s: unknown or incomplete option \"%s\"\n%s",
			                 argv[0], argv[optind - 1], usage);
		}
	}
	for (int i = optind; i < argc; i++) {
		if (o->nargs == (int)ARRAY_SIZE(o->args))
			return cli_failf("audit %s: unexpected argument \"%s\"", argv[0], argv[i]);
		o->args[o->nargs++] = argv[i];
	}
	return 0;
}

/* What the library returned, as an exit status: tampering is 1, anything else 125. */
static int audit_fail(int r, struct warden_error *e)
{
	if (r == WARDEN_AUDIT_TAMPERED) {
		fprintf(stderr, "warden: %s\n", warden_error_text(e));
		warden_error_free(e);
		return EXIT_TAMPERED;
	}
	return cli_fail(e);
}

/* ---- keygen ---------------------------------------------------------------------------- */

static int audit_keygen(struct audit_cli *o)
{
	struct warden_error *e = NULL;
	_cleanup_free_ char *dlog = NULL, *dkey = NULL;
	if (o->nargs)
		return cli_failf("audit keygen: unexpected argument \"%s\"", o->args[0]);
	const char *key = o->key ? o->key : o->open.key_path;
	if (!key) {
		if (warden_audit_default_paths(&dlog, &dkey, &e) < 0)
			return cli_fail(e);
		key = dkey;
	}
	if (warden_audit_keygen(key, &e) < 0) {
		if (e->errnum == EEXIST)
			warden_error_wrap(&e, "audit keygen: refusing to replace a key");
		return cli_fail(e);
	}
	printf("%s: private key (keep it secret)\n%s.pub: public key (give it to verifiers)\n", key,
	       key);
	return 0;
}

/* ---- verify ---------------------------------------------------------------------------- */

static int audit_verify(struct audit_cli *o)
{
	struct warden_error *e = NULL;
	/* The key that checks signatures must come from somewhere the log's attacker cannot
	 * write; taking the one next to the log by default would check nothing. */
	if (!o->key)
		return cli_failf("audit verify: --key PUB is required (the public key to trust, "
		                 "kept apart from the log)");
	if (o->proof) {
		if (o->nargs || o->checkpoint)
			return cli_failf("audit verify --proof: takes no LOG and no --checkpoint");
		uint64_t index, size;
		int r = warden_audit_verify_proof(o->proof, o->key, &index, &size, &e);
		if (r < 0)
			return audit_fail(r, e);
		printf("%s: valid: record %" PRIu64 " is in the signed tree of %" PRIu64
		       " records\n",
		       o->proof, index, size);
		return 0;
	}
	if (o->nargs > 1)
		return cli_failf("audit verify: one LOG at most");
	_cleanup_free_ char *dlog = NULL, *dkey = NULL;
	const char *log = o->nargs ? o->args[0] : o->open.path;
	if (!log) {
		if (warden_audit_default_paths(&dlog, &dkey, &e) < 0)
			return cli_fail(e);
		log = dlog;
	}
	uint64_t records = 0, checked = 0;
	int r = warden_audit_verify(log, o->key, o->checkpoint, &records, &checked, &e);
	if (r < 0)
		return audit_fail(r, e);
	printf("%s: intact: %" PRIu64 " records, %" PRIu64 " covered by a signed checkpoint%s\n",
	       log, records, checked, o->checkpoint ? " (and the given checkpoint matches)" : "");
	if (records > checked)
		printf("%s: the last %" PRIu64 " records are chained but not signed yet: only a "
		       "later checkpoint makes changes to them detectable\n",
		       log, records - checked);
	if (!o->checkpoint)
		printf("%s: without --checkpoint, records removed from the end of the log go "
		       "unnoticed\n",
		       log);
	return 0;
}

/* ---- prove ----------------------------------------------------------------------------- */

static int audit_prove(struct audit_cli *o)
{
	if (o->nargs != 2)
		return cli_failf("audit prove: expected LOG and a record number N");
	uint64_t n;
	const char *why = NULL;
	if (parse_uint(o->args[1], INT64_MAX, &n, &why) < 0)
		return cli_failf("audit prove: record number \"%s\": %s", o->args[1], why);
	struct warden_error *e = NULL;
	_cleanup_free_ char *proof = NULL;
	int r = warden_audit_prove(o->args[0], n, o->key, &proof, &e);
	if (r < 0)
		return audit_fail(r, e);
	fputs(proof, stdout);
	return 0;
}

/* ---- checkpoint and append ------------------------------------------------------------- */

static struct warden_audit *open_log(struct audit_cli *o)
{
	struct warden_error *e = NULL;
	struct strv notices = {0};
	struct warden_audit *a = warden_audit_open(&o->open, &notices, &e);
	for (size_t i = 0; i < notices.n; i++)
		fprintf(stderr, "warden: %s\n", notices.v[i]);
	strv_clear(&notices);
	if (!a)
		cli_fail(e);
	return a;
}

static int audit_checkpoint(struct audit_cli *o)
{
	if (o->nargs)
		return cli_failf("audit checkpoint: unexpected argument \"%s\"", o->args[0]);
	struct warden_audit *a = open_log(o);
	if (!a)
		return EXIT_WARDEN;
	struct warden_error *e = NULL;
	uint64_t size;
	int r = warden_audit_checkpoint(a, &size, &e);
	warden_audit_close(a);
	if (r < 0)
		return cli_fail(e);
	printf("checkpoint of %" PRIu64 " records\n", size);
	return 0;
}

/* Queue each complete line of buf[0..*len) (JSON objects); keep a partial last line. */
static int queue_lines(struct warden_audit *a, char *buf, size_t *len, uint64_t *line_no,
                       unsigned batch)
{
	char *p = buf, *end = buf + *len, *nl;
	size_t queued = 0;
	while ((nl = memchr(p, '\n', (size_t)(end - p)))) {
		(*line_no)++;
		if (nl > p) {
			json_error_t jerr;
			json_t *j = json_loadb(p, (size_t)(nl - p), 0, &jerr);
			struct warden_error *e = NULL;
			if (!j)
				return cli_failf("audit append: stdin:%" PRIu64 ": not JSON: %s",
				                 *line_no, jerr.text);
			int r = warden_audit_append(a, j, &e);
			json_decref(j);
			if (r < 0)
				return warden_error_wrap(&e, "stdin:%" PRIu64, *line_no),
				       cli_fail(e);
			if (++queued == batch) {
				queued = 0;
				if (warden_audit_commit(a, &e) < 0)
					return cli_fail(e);
			}
		}
		p = nl + 1;
	}
	*len = (size_t)(end - p);
	memmove(buf, p, *len);
	return 0;
}

static int audit_append(struct audit_cli *o)
{
	if (o->nargs)
		return cli_failf("audit append: unexpected argument \"%s\" (records come from "
		                 "stdin)",
		                 o->args[0]);
	struct warden_audit *a = open_log(o);
	if (!a)
		return EXIT_WARDEN;
	size_t cap = 1 << 16, len = 0;
	_cleanup_free_ char *buf = xmalloc(cap);
	uint64_t line_no = 0;
	int r = 0;
	struct warden_error *e = NULL;
	for (;;) {
		if (cap - len < 4096)
			buf = xrealloc(buf, cap *= 2);
		ssize_t n = read(STDIN_FILENO, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = cli_failf("audit append: read stdin: %s", strerror(errno));
			break;
		}
		if (n == 0 && len > 0)
			buf[len++] = '\n'; /* a last line without its newline */
		else
			len += (size_t)n;
		r = queue_lines(a, buf, &len, &line_no, o->batch);
		/* Whatever has arrived is committed together: one write, one fdatasync. */
		if (r == 0 && warden_audit_commit(a, &e) < 0)
			r = cli_fail(e);
		if (r != 0 || n == 0)
			break;
	}
	warden_audit_close(a);
	return r;
}

int cmd_audit(int argc, char **argv)
{
	if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_WARDEN : 0;
	}
	struct audit_cli o = {0};
	int r = parse_args(argc - 1, argv + 1, &o);
	if (r)
		return r == 1 ? 0 : r;
	const char *sub = argv[1];
	if (streq(sub, "keygen"))
		return audit_keygen(&o);
	if (streq(sub, "verify"))
		return audit_verify(&o);
	if (streq(sub, "prove"))
		return audit_prove(&o);
	if (streq(sub, "checkpoint"))
		return audit_checkpoint(&o);
	if (streq(sub, "append"))
		return audit_append(&o);
	return cli_failf("audit: unknown subcommand \"%s\"\n%s", sub, usage);
}
