/*
 * options: argv / "-o" parsing with libfuse's fuse_opt (see include/kvsfs/options.h).
 *
 * fuse_opt_parse() drives a callback for every option; this module keeps an explicit table of the
 * options kvsfs understands, so anything else is rejected (unknown options must fail the mount
 * with a clear message rather than being passed silently to the kernel). Validation of values
 * that need other modules (region syntax, URL schemes, files) happens here when it is purely
 * syntactic, so "kvsfs -o bad=..." fails before any network access.
 */
#include "kvsfs/options.h"

#include <errno.h>
#include <fuse_opt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct parse_state {
	struct kvsfs_options *opts;
	char *err;
	size_t errlen;
	int failed;
};

enum {
	KEY_HELP, KEY_VERSION, KEY_FOREGROUND, KEY_DEBUG, KEY_DROP,
	KEY_REGION, KEY_PROFILE, KEY_ENDPOINT, KEY_CA_FILE, KEY_NO_VERIFY_SSL,
};

static const struct fuse_opt option_table[] = {
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("-f", KEY_FOREGROUND),
	FUSE_OPT_KEY("-d", KEY_DEBUG),
	FUSE_OPT_KEY("debug", KEY_DEBUG),
	FUSE_OPT_KEY("region=%s", KEY_REGION),
	FUSE_OPT_KEY("profile=%s", KEY_PROFILE),
	FUSE_OPT_KEY("endpoint=%s", KEY_ENDPOINT),
	FUSE_OPT_KEY("ca_file=%s", KEY_CA_FILE),
	FUSE_OPT_KEY("no_verify_ssl", KEY_NO_VERIFY_SSL),
	/* fstab-only options: accepted and dropped */
	FUSE_OPT_KEY("_netdev", KEY_DROP),
	FUSE_OPT_KEY("noauto", KEY_DROP),
	FUSE_OPT_KEY("auto", KEY_DROP),
	FUSE_OPT_KEY("user", KEY_DROP),
	FUSE_OPT_KEY("users", KEY_DROP),
	FUSE_OPT_KEY("nofail", KEY_DROP),
	FUSE_OPT_KEY("defaults", KEY_DROP),
	FUSE_OPT_END
};

static int fail(struct parse_state *st, const char *fmt, ...)
{
	if (!st->failed) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(st->err, st->errlen, fmt, ap);
		va_end(ap);
	}
	st->failed = 1;
	return -1;
}

/* Stores the value after the first '=' of arg into *dst (replacing an earlier value). */
static int set_value(struct parse_state *st, char **dst, const char *arg)
{
	const char *eq = strchr(arg, '=');
	const char *v = eq ? eq + 1 : "";
	if (!*v)
		return fail(st, "option '%.*s' needs a value", (int)(eq ? eq - arg : (long)strlen(arg)), arg);
	char *copy = strdup(v);
	if (!copy)
		return fail(st, "out of memory");
	free(*dst);
	*dst = copy;
	return 0;
}

static int valid_region(const char *r)
{
	if (!*r || strlen(r) > 64)
		return 0;
	for (const char *p = r; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
			return 0;
	return 1;
}

static int valid_url(const char *u)
{
	return strncmp(u, "https://", 8) == 0 || strncmp(u, "http://", 7) == 0;
}

static int on_option(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct parse_state *st = data;
	struct kvsfs_options *o = st->opts;
	(void)outargs;
	switch (key) {
	case KEY_HELP:
		o->show_help = 1;
		return 0;
	case KEY_VERSION:
		o->show_version = 1;
		return 0;
	case KEY_FOREGROUND:
		o->foreground = 1;
		return 0;
	case KEY_DEBUG:
		o->debug = 1;
		o->foreground = 1;
		return 0;
	case KEY_DROP:
		return 0;
	case KEY_REGION:
		if (set_value(st, &o->region, arg))
			return -1;
		if (!valid_region(o->region))
			return fail(st, "region '%s' is not a valid AWS region name", o->region);
		return 0;
	case KEY_PROFILE:
		return set_value(st, &o->profile, arg);
	case KEY_ENDPOINT:
		if (set_value(st, &o->endpoint, arg))
			return -1;
		if (!valid_url(o->endpoint))
			return fail(st, "endpoint must be an http:// or https:// URL");
		return 0;
	case KEY_CA_FILE:
		return set_value(st, &o->ca_file, arg);
	case KEY_NO_VERIFY_SSL:
		o->no_verify_ssl = 1;
		return 0;
	case FUSE_OPT_KEY_NONOPT:
		if (o->mountpoint)
			return fail(st, "only one mount point may be given (extra argument '%s')", arg);
		o->mountpoint = strdup(arg);
		return o->mountpoint ? 0 : fail(st, "out of memory");
	case FUSE_OPT_KEY_OPT:
	default:
		return fail(st, "unknown option '%s' (see kvsfs --help)", arg);
	}
}

int options_parse(int argc, char **argv, struct kvsfs_options *opts, char *err, size_t errlen)
{
	memset(opts, 0, sizeof(*opts));
	if (errlen)
		err[0] = '\0';
	struct parse_state st = { opts, err, errlen, 0 };
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	int rc = fuse_opt_parse(&args, &st, option_table, on_option);
	fuse_opt_free_args(&args);
	if (rc != 0 || st.failed) {
		if (!st.failed)
			snprintf(err, errlen, "could not parse the command line");
		options_free(opts);
		return -EINVAL;
	}
	return 0;
}

void options_free(struct kvsfs_options *o)
{
	free(o->mountpoint);
	free(o->region);
	free(o->profile);
	free(o->endpoint);
	free(o->ca_file);
	memset(o, 0, sizeof(*o));
}

void options_print_help(const char *prog)
{
	printf("usage: %s [-f] [-d] [-o OPTION[,OPTION...]] MOUNTPOINT\n"
	       "       mount -t fuse.kvsfs kvsfs MOUNTPOINT -o OPTIONS\n"
	       "\n"
	       "Mounts Amazon Kinesis Video Streams as files.\n"
	       "\n"
	       "general options:\n"
	       "    -h, --help             print this help and exit\n"
	       "    -V, --version          print the version and exit\n"
	       "    -f                     stay in the foreground\n"
	       "    -d, -o debug           debug log to stderr (implies -f)\n"
	       "\n"
	       "AWS options:\n"
	       "    -o region=R            AWS region (default: AWS_REGION, AWS_DEFAULT_REGION,\n"
	       "                           then the profile's region)\n"
	       "    -o profile=P           shared config/credentials profile (default: AWS_PROFILE,\n"
	       "                           then 'default')\n"
	       "    -o endpoint=URL        KVS control-plane endpoint (for a local KVS-compatible\n"
	       "                           server; http:// is allowed only here)\n"
	       "    -o ca_file=PATH        extra trusted CA certificate(s), PEM\n"
	       "    -o no_verify_ssl       do not verify TLS certificates (local test servers only)\n"
	       "\n"
	       "fstab options accepted and ignored: _netdev, noauto, auto, user, users, nofail, defaults\n"
	       "\n"
	       "Credentials come from the standard AWS chain: environment, shared files (with\n"
	       "credential_process), container credentials, then IMDSv2. No secret is accepted on\n"
	       "the command line. See kvsfs(1).\n",
	       prog);
}
