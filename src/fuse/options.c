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
	int in_streams;   /* the previous option was streams=..., so a bare word continues it */
};

enum {
	KEY_HELP, KEY_VERSION, KEY_FOREGROUND, KEY_DEBUG, KEY_DEBUG_FG, KEY_DROP,
	KEY_REGION, KEY_PROFILE, KEY_ENDPOINT, KEY_CA_FILE, KEY_NO_VERIFY_SSL,
	KEY_STREAMS, KEY_STREAM_PREFIX, KEY_TIMESTAMPS, KEY_CACHE_DIR, KEY_CACHE_SIZE, KEY_META_TTL,
	KEY_MAX_RETRY_TIME, KEY_EXPORT, KEY_EXPORT_DIR, KEY_EXPORT_CACHE_TTL, KEY_S3_ENDPOINT, KEY_S3_PATH_STYLE,
	KEY_RO, KEY_HLS_EXPIRES, KEY_UID, KEY_GID, KEY_UMASK, KEY_ALLOW_OTHER, KEY_LIVE_PUBLIC, KEY_READAHEAD,
	KEY_LOG_FILE, KEY_IMAGE_INTERVAL, KEY_IMAGE_WIDTH,
	KEY_META_CACHE,
	KEY_MANAGE_STREAMS, KEY_DEFAULT_RETENTION,
	KEY_EXPORT_WRITEBACK, KEY_PARALLEL_UPLOADS,
};

static const struct fuse_opt option_table[] = {
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("-f", KEY_FOREGROUND),
	FUSE_OPT_KEY("-d", KEY_DEBUG_FG),
	FUSE_OPT_KEY("debug", KEY_DEBUG),
	FUSE_OPT_KEY("region=%s", KEY_REGION),
	FUSE_OPT_KEY("profile=%s", KEY_PROFILE),
	FUSE_OPT_KEY("endpoint=%s", KEY_ENDPOINT),
	FUSE_OPT_KEY("ca_file=%s", KEY_CA_FILE),
	FUSE_OPT_KEY("no_verify_ssl", KEY_NO_VERIFY_SSL),
	FUSE_OPT_KEY("streams=%s", KEY_STREAMS),
	FUSE_OPT_KEY("stream_prefix=%s", KEY_STREAM_PREFIX),
	FUSE_OPT_KEY("timestamps=%s", KEY_TIMESTAMPS),
	FUSE_OPT_KEY("cache_dir=%s", KEY_CACHE_DIR),
	FUSE_OPT_KEY("cache_size=%s", KEY_CACHE_SIZE),
	FUSE_OPT_KEY("meta_ttl=%s", KEY_META_TTL),
	FUSE_OPT_KEY("hls_expires=%s", KEY_HLS_EXPIRES),
	FUSE_OPT_KEY("uid=%s", KEY_UID),
	FUSE_OPT_KEY("gid=%s", KEY_GID),
	FUSE_OPT_KEY("umask=%s", KEY_UMASK),
	FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
	FUSE_OPT_KEY("live_public", KEY_LIVE_PUBLIC),
	FUSE_OPT_KEY("readahead=%s", KEY_READAHEAD),
	FUSE_OPT_KEY("image_interval=%s", KEY_IMAGE_INTERVAL),
	FUSE_OPT_KEY("image_width=%s", KEY_IMAGE_WIDTH),
	FUSE_OPT_KEY("meta_cache=%s", KEY_META_CACHE),
	FUSE_OPT_KEY("max_retry_time=%s", KEY_MAX_RETRY_TIME),
	FUSE_OPT_KEY("export=%s", KEY_EXPORT),
	FUSE_OPT_KEY("export_dir=%s", KEY_EXPORT_DIR),
	FUSE_OPT_KEY("export_cache_ttl=%s", KEY_EXPORT_CACHE_TTL),
	FUSE_OPT_KEY("export_writeback", KEY_EXPORT_WRITEBACK),
	FUSE_OPT_KEY("parallel_uploads=%s", KEY_PARALLEL_UPLOADS),
	FUSE_OPT_KEY("s3_endpoint=%s", KEY_S3_ENDPOINT),
	FUSE_OPT_KEY("s3_path_style", KEY_S3_PATH_STYLE),
	FUSE_OPT_KEY("log_file=%s", KEY_LOG_FILE),
	FUSE_OPT_KEY("manage_streams", KEY_MANAGE_STREAMS),
	FUSE_OPT_KEY("default_retention_hours=%s", KEY_DEFAULT_RETENTION),
	/* fstab-only options: accepted and dropped */
	FUSE_OPT_KEY("_netdev", KEY_DROP),
	FUSE_OPT_KEY("noauto", KEY_DROP),
	FUSE_OPT_KEY("auto", KEY_DROP),
	FUSE_OPT_KEY("user", KEY_DROP),
	FUSE_OPT_KEY("users", KEY_DROP),
	FUSE_OPT_KEY("nofail", KEY_DROP),
	FUSE_OPT_KEY("defaults", KEY_DROP),
	/* generic options mount(8) passes along: the kernel side is decided by kvsfs */
	FUSE_OPT_KEY("rw", KEY_DROP),
	FUSE_OPT_KEY("dev", KEY_DROP),
	FUSE_OPT_KEY("nodev", KEY_DROP),
	FUSE_OPT_KEY("suid", KEY_DROP),
	FUSE_OPT_KEY("nosuid", KEY_DROP),
	FUSE_OPT_KEY("exec", KEY_DROP),
	FUSE_OPT_KEY("noexec", KEY_DROP),
	FUSE_OPT_KEY("async", KEY_DROP),
	FUSE_OPT_KEY("atime", KEY_DROP),
	FUSE_OPT_KEY("noatime", KEY_DROP),
	FUSE_OPT_KEY("relatime", KEY_DROP),
	FUSE_OPT_KEY("nodiratime", KEY_DROP),
	FUSE_OPT_KEY("ro", KEY_RO),
	FUSE_OPT_END
};

static int fail(struct parse_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
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

static int valid_stream_name(const char *n)
{
	size_t len = strlen(n);
	if (len == 0 || len > 256)
		return 0;
	for (const char *p = n; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '_' || *p == '.' || *p == '-'))
			return 0;
	return 1;
}

/* Appends the ':'- or ','-separated names of list to o->streams. */
static int add_streams(struct parse_state *st, const char *list)
{
	struct kvsfs_options *o = st->opts;
	size_t n = 0;
	while (o->streams && o->streams[n])
		n++;
	char *copy = strdup(list);
	if (!copy)
		return fail(st, "out of memory");
	char *save = NULL;
	for (char *tok = strtok_r(copy, ":,", &save); tok; tok = strtok_r(NULL, ":,", &save)) {
		if (!valid_stream_name(tok)) {
			free(copy);
			return fail(st, "'%s' is not a valid stream name", tok);
		}
		char **nv = realloc(o->streams, (n + 2) * sizeof(*nv));
		if (!nv || !(nv[n] = strdup(tok))) {
			if (nv)
				o->streams = nv;
			free(copy);
			return fail(st, "out of memory");
		}
		nv[++n] = NULL;
		o->streams = nv;
	}
	free(copy);
	if (n == 0)
		return fail(st, "streams= needs at least one stream name");
	return 0;
}

/* Parses a non-negative decimal integer in [min, max]. */
static int parse_long(struct parse_state *st, const char *arg, long min, long max, int base, long *out)
{
	const char *v = strchr(arg, '=') + 1;
	char *end;
	errno = 0;
	long x = strtol(v, &end, base);
	if (!*v || *end || errno || x < min || x > max)
		return fail(st, "option '%s' needs a number from %ld to %ld", arg, min, max);
	*out = x;
	return 0;
}

/* Parses a size with an optional K/M/G/T suffix (powers of 1024). */
static int parse_size(struct parse_state *st, const char *arg, unsigned long long *out)
{
	const char *v = strchr(arg, '=') + 1;
	char *end;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 10);
	int shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: break;
	}
	if (*end == 'i' || *end == 'B')
		end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	if (!*v || *v == '-' || *end || errno || x == 0 || (shift && x > (~0ULL >> shift)))
		return fail(st, "option '%s' needs a size such as 512M or 10G", arg);
	*out = x << shift;
	return 0;
}

/* The options without a value that only set a flag (-h, -V, -f, -d, debug, ro, and the fstab
 * options that are dropped). */
static void on_flag(struct kvsfs_options *o, int key)
{
	switch (key) {
	case KEY_HELP:
		o->show_help = 1;
		break;
	case KEY_VERSION:
		o->show_version = 1;
		break;
	case KEY_FOREGROUND:
		o->foreground = 1;
		break;
	case KEY_DEBUG_FG:
		o->foreground = 1;
		/* fall through */
	case KEY_DEBUG:
		/* -o debug alone keeps the daemon in the background (an fstab line with debug must
		 * not hang mount(8)); its lines go to log_file= or syslog */
		o->debug = 1;
		break;
	case KEY_DROP:
		break;
	case KEY_RO:
		o->read_only = 1;
		break;
	default:
		break;
	}
}

/* The export options (export=, export_dir=, s3_endpoint=, s3_path_style). */
static int on_export_option(struct parse_state *st, const char *arg, int key)
{
	struct kvsfs_options *o = st->opts;
	switch (key) {
	case KEY_EXPORT: {
		const char *u = strchr(arg, '=') + 1;
		if (strncmp(u, "s3://", 5) != 0 || !u[5] || u[5] == '/')
			return fail(st, "export must be s3://BUCKET or s3://BUCKET/PREFIX");
		const char *b = u + 5, *slash = strchr(b, '/');
		size_t bl = slash ? (size_t)(slash - b) : strlen(b);
		for (size_t i = 0; i < bl; i++)
			if (!((b[i] >= 'a' && b[i] <= 'z') || (b[i] >= '0' && b[i] <= '9') || b[i] == '-' ||
			      b[i] == '.'))
				return fail(st, "'%.*s' is not a valid S3 bucket name", (int)bl, b);
		if (bl < 3 || bl > 63)
			return fail(st, "'%.*s' is not a valid S3 bucket name", (int)bl, b);
		free(o->export_bucket);
		free(o->export_prefix);
		o->export_bucket = strndup(b, bl);
		const char *pfx = slash ? slash + 1 : "";
		size_t pl = strlen(pfx);
		while (pl > 0 && pfx[pl - 1] == '/')
			pl--;
		o->export_prefix = strndup(pfx, pl);
		return o->export_bucket && o->export_prefix ? 0 : fail(st, "out of memory");
	}
	case KEY_EXPORT_DIR:
		if (set_value(st, &o->export_dir, arg))
			return -1;
		if (strchr(o->export_dir, '/') || !strcmp(o->export_dir, ".") || !strcmp(o->export_dir, ".."))
			return fail(st, "export_dir must be a plain name");
		return 0;
	case KEY_S3_ENDPOINT:
		if (set_value(st, &o->s3_endpoint, arg))
			return -1;
		if (!valid_url(o->s3_endpoint))
			return fail(st, "s3_endpoint must be an http:// or https:// URL");
		return 0;
	case KEY_S3_PATH_STYLE:
		o->s3_path_style = 1;
		return 0;
	default:
		return fail(st, "unknown option '%s' (see kvsfs --help)", arg);
	}
}

static int on_option(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct parse_state *st = data;
	struct kvsfs_options *o = st->opts;
	(void)outargs;
	int continues = st->in_streams;
	st->in_streams = 0;
	long x;
	switch (key) {
	case KEY_HELP:
	case KEY_VERSION:
	case KEY_FOREGROUND:
	case KEY_DEBUG_FG:
	case KEY_DEBUG:
	case KEY_DROP:
	case KEY_RO:
		on_flag(o, key);
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
	case KEY_STREAMS:
		st->in_streams = 1;
		return add_streams(st, strchr(arg, '=') + 1);
	case KEY_STREAM_PREFIX:
		return set_value(st, &o->stream_prefix, arg);
	case KEY_TIMESTAMPS:
		if (!strcmp(arg, "timestamps=server"))
			o->timestamps_server = 1;
		else if (!strcmp(arg, "timestamps=producer"))
			o->timestamps_server = 0;
		else
			return fail(st, "timestamps must be 'producer' or 'server'");
		return 0;
	case KEY_CACHE_DIR:
		return set_value(st, &o->cache_dir, arg);
	case KEY_CACHE_SIZE:
		return parse_size(st, arg, &o->cache_size);
	case KEY_META_TTL:
		if (parse_long(st, arg, 0, 86400, 10, &x))
			return -1;
		o->meta_ttl = (int)x;
		return 0;
	case KEY_HLS_EXPIRES:
		if (parse_long(st, arg, 300, 43200, 10, &x))
			return -1;
		o->hls_expires = (int)x;
		return 0;
	case KEY_UID:
		return parse_long(st, arg, 0, 0x7fffffffL, 10, &o->uid);
	case KEY_GID:
		return parse_long(st, arg, 0, 0x7fffffffL, 10, &o->gid);
	case KEY_UMASK:
		return parse_long(st, arg, 0, 0777, 8, &o->umask);
	case KEY_ALLOW_OTHER:
		o->allow_other = 1;
		return 0;
	case KEY_LIVE_PUBLIC:
		o->live_public = 1;
		return 0;
	case KEY_MAX_RETRY_TIME:
		if (parse_long(st, arg, 1, 3600, 10, &x))
			return -1;
		o->max_retry_time = (int)x;
		return 0;
	case KEY_EXPORT_CACHE_TTL:
		if (parse_long(st, arg, 0, 3600, 10, &x))
			return -1;
		o->export_cache_ttl = (int)x;
		return 0;
	case KEY_EXPORT_WRITEBACK:
		o->export_writeback = 1;
		return 0;
	case KEY_PARALLEL_UPLOADS:
		if (parse_long(st, arg, 1, 32, 10, &x))
			return -1;
		o->parallel_uploads = (int)x;
		return 0;
	case KEY_EXPORT:
	case KEY_EXPORT_DIR:
	case KEY_S3_ENDPOINT:
	case KEY_S3_PATH_STYLE:
		return on_export_option(st, arg, key);
	case KEY_LOG_FILE:
		if (set_value(st, &o->log_file, arg))
			return -1;
		if (!o->log_file[0])
			return fail(st, "log_file needs a path");
		return 0;
	case KEY_READAHEAD:
		if (parse_long(st, arg, 1, 1000, 10, &x))
			return -1;
		o->readahead = (int)x;
		return 0;
	case KEY_IMAGE_INTERVAL:
		if (parse_long(st, arg, 1, 3600, 10, &x))
			return -1;
		o->image_interval = (int)x;
		return 0;
	case KEY_IMAGE_WIDTH:
		if (parse_long(st, arg, 1, 3840, 10, &x))
			return -1;
		o->image_width = (int)x;
		return 0;
	case KEY_META_CACHE:
		if (parse_long(st, arg, 1, 65536, 10, &x))
			return -1;
		o->meta_cache_mb = (int)x;
		return 0;
	case KEY_MANAGE_STREAMS:
		o->manage_streams = 1;
		return 0;
	case KEY_DEFAULT_RETENTION:
		if (parse_long(st, arg, 0, 87600, 10, &x))
			return -1;
		o->default_retention_hours = (int)x;
		return 0;
	case FUSE_OPT_KEY_NONOPT:
		/* mount.fuse3 passes "kvsfs MOUNTPOINT": the first of two is the source */
		if (o->mountpoint && !o->source_seen) {
			o->source_seen = 1;
			free(o->mountpoint);
			o->mountpoint = strdup(arg);
			return o->mountpoint ? 0 : fail(st, "out of memory");
		}
		if (o->mountpoint)
			return fail(st, "only one mount point may be given (extra argument '%s')", arg);
		o->mountpoint = strdup(arg);
		return o->mountpoint ? 0 : fail(st, "out of memory");
	case FUSE_OPT_KEY_OPT:
		/* "-o streams=a,b": fuse_opt splits at the comma, so bare names continue the list */
		if (continues && !strchr(arg, '=') && valid_stream_name(arg)) {
			st->in_streams = 1;
			return add_streams(st, arg);
		}
		return fail(st, "unknown option '%s' (see kvsfs --help)", arg);
	default:
		return fail(st, "unknown option '%s' (see kvsfs --help)", arg);
	}
}

int options_parse(int argc, char **argv, struct kvsfs_options *opts, char *err, size_t errlen)
{
	memset(opts, 0, sizeof(*opts));
	if (errlen)
		err[0] = '\0';
	struct parse_state st = { opts, err, errlen, 0, 0 };
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	opts->uid = -1;
	opts->gid = -1;
	opts->umask = -1;
	opts->export_cache_ttl = -1;
	opts->meta_ttl = -1;
	opts->default_retention_hours = -1;
	int rc = fuse_opt_parse(&args, &st, option_table, on_option);
	if (rc == 0 && !st.failed && opts->live_public && !opts->allow_other)
		fail(&st, "live_public needs allow_other (the playlists carry session URLs)");
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
	for (char **p = o->streams; p && *p; p++)
		free(*p);
	free(o->streams);
	free(o->stream_prefix);
	free(o->cache_dir);
	free(o->export_bucket);
	free(o->export_prefix);
	free(o->export_dir);
	free(o->s3_endpoint);
	free(o->log_file);
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
	       "    -d                     debug log to stderr, in the foreground (-f)\n"
	       "    -o debug               debug log (to log_file= or syslog in the background)\n"
	       "    -o log_file=PATH       append the log to PATH (default: stderr in the\n"
	       "                           foreground, syslog in the background)\n"
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
	       "tree options:\n"
	       "    -o streams=A:B         show only these streams (',' works too)\n"
	       "    -o stream_prefix=P     show only streams whose name starts with P\n"
	       "    -o timestamps=producer|server\n"
	       "                           which KVS timestamp names, dates and selects\n"
	       "                           fragments (default producer)\n"
	       "    -o meta_ttl=SECONDS    how stale a listing of live data may be (default 5)\n"
	       "    -o hls_expires=SECONDS lifetime of live.m3u8/live.mpd sessions, 300..43200\n"
	       "                           (default 3600)\n"
	       "    -o cache_dir=DIR       disk cache for media (default $XDG_CACHE_HOME/kvsfs)\n"
	       "    -o cache_size=SIZE     bound of the disk cache, e.g. 2G (default 4G)\n"
	       "    -o readahead=N         fragments fetched per GetMediaForFragmentList (default 8)\n"
	       "    -o image_interval=SECONDS  one images/ thumbnail per SECONDS, 1..3600 (default 60)\n"
	       "    -o image_width=PIXELS  width of images/ thumbnails, 1..3840 (default 320)\n"
	       "    -o meta_cache=MIB      memory of the cached hour listings (default 16)\n"
	       "    -o manage_streams      mkdir/rmdir streams, user.kvs.retention_hours (see the man page)\n"
	       "    -o default_retention_hours=N  retention of streams made by mkdir (default 24)\n"
	       "    -o max_retry_time=SECONDS  how long throttling, 5xx and broken connections are\n"
	       "                           retried before an operation fails (default 60)\n"
	       "\n"
	       "export options:\n"
	       "    -o export=s3://BUCKET/PREFIX  an S3-backed folder where copies are stored\n"
	       "    -o export_dir=NAME     its name in the mount (default export)\n"
	       "    -o export_cache_ttl=SECONDS  reuse of names seen in S3 and delay of mode/mtime\n"
	       "                           changes of stored files (default 1; 0: off)\n"
	       "    -o export_writeback    close() returns once the file is durably staged;\n"
	       "                           uploads run in the background (see kvsfs(1))\n"
	       "    -o parallel_uploads=N  write-back uploads at once, 1..32 (default 8)\n"
	       "    -o s3_endpoint=URL     S3 endpoint (for a local S3 server; http:// only here)\n"
	       "    -o s3_path_style       path-style S3 addressing\n"
	       "\n"
	       "FUSE options:\n"
	       "    -o uid=N,gid=N         owner shown for every file (default: the mounting user)\n"
	       "    -o umask=OCTAL         permission bits removed (default 022)\n"
	       "    -o allow_other         let other users access the mount\n"
	       "    -o live_public         make live.m3u8/live.mpd readable by all (needs allow_other)\n"
	       "\n"
	       "mount(8) and fstab options: ro is honoured; _netdev, noauto, auto, user, users, nofail,\n"
	       "defaults, rw, (no)dev, (no)suid, (no)exec, async, (no|rel)atime are accepted and ignored\n"
	       "\n"
	       "Credentials come from the standard AWS chain: environment, shared files (with\n"
	       "credential_process), container credentials, then IMDSv2. No secret is accepted on\n"
	       "the command line. See kvsfs(1).\n",
	       prog);
}

/* Appends ",name=value" to out (n bytes) when value is set, dropping any "user:pass@" of a URL. */
static void describe_add(char *out, size_t n, const char *name, const char *value)
{
	size_t len = strlen(out);
	if (!value || len + 1 >= n)
		return;
	const char *at = strchr(value, '@'), *scheme = strstr(value, "://");
	if (scheme && at && at > scheme && !memchr(scheme + 3, '/', (size_t)(at - scheme - 3)))
		snprintf(out + len, n - len, "%s%s=%.*s%s", len ? "," : "", name,
			 (int)(scheme + 3 - value), value, at + 1);
	else
		snprintf(out + len, n - len, "%s%s=%s", len ? "," : "", name, value);
}

void options_describe(const struct kvsfs_options *o, char *out, size_t n)
{
	char num[32], streams[512] = "";
	if (n == 0)
		return;
	out[0] = '\0';
	for (size_t i = 0; o->streams && o->streams[i]; i++)
		snprintf(streams + strlen(streams), sizeof(streams) - strlen(streams), "%s%s",
			 i ? ":" : "", o->streams[i]);
	describe_add(out, n, "mountpoint", o->mountpoint);
	describe_add(out, n, "region", o->region);
	describe_add(out, n, "profile", o->profile);
	describe_add(out, n, "endpoint", o->endpoint);
	describe_add(out, n, "ca_file", o->ca_file);
	describe_add(out, n, "no_verify_ssl", o->no_verify_ssl ? "1" : NULL);
	describe_add(out, n, "streams", o->streams ? streams : NULL);
	describe_add(out, n, "stream_prefix", o->stream_prefix);
	describe_add(out, n, "timestamps", o->timestamps_server ? "server" : "producer");
	describe_add(out, n, "cache_dir", o->cache_dir);
	snprintf(num, sizeof(num), "%llu", o->cache_size);
	describe_add(out, n, "cache_size", o->cache_size ? num : NULL);
	snprintf(num, sizeof(num), "%d", o->meta_ttl);
	describe_add(out, n, "meta_ttl", o->meta_ttl >= 0 ? num : NULL);
	snprintf(num, sizeof(num), "%d", o->readahead);
	describe_add(out, n, "readahead", o->readahead ? num : NULL);
	describe_add(out, n, "allow_other", o->allow_other ? "1" : NULL);
	describe_add(out, n, "ro", o->read_only ? "1" : NULL);
	describe_add(out, n, "export_bucket", o->export_bucket);
	describe_add(out, n, "export_prefix", o->export_bucket ? o->export_prefix : NULL);
	describe_add(out, n, "export_dir", o->export_dir);
	describe_add(out, n, "s3_endpoint", o->s3_endpoint);
	describe_add(out, n, "log_file", o->log_file);
}
