/*
 * options: the mount's configuration, parsed from argv and "-o" options (fuse_opt syntax, so the
 * same text works on the command line, with mount -t fuse.kvsfs and in /etc/fstab).
 *
 * Every string field is malloc'd and owned by struct kvsfs_options; options_free() releases them.
 * Parsing validates values; a bad value or an unknown option fails with one sentence in err.
 * Options that exist so far are listed by options_print_help(); the man page documents the same.
 */
#ifndef KVSFS_OPTIONS_H
#define KVSFS_OPTIONS_H

#include <stddef.h>

struct kvsfs_options {
	char *mountpoint;      /* the non-option argument (of two, the second: mount.fuse3 passes
	                        * "kvsfs MOUNTPOINT") */
	int source_seen;
	char *region;          /* region=R */
	char *profile;         /* profile=P */
	char *endpoint;        /* endpoint=URL: KVS control-plane endpoint override */
	char *ca_file;         /* ca_file=PATH: extra trust anchor */
	int no_verify_ssl;     /* no_verify_ssl: only for local test servers; warns */
	char **streams;        /* streams=a:b (or a,b): NULL-terminated allow-list, NULL = all */
	char *stream_prefix;   /* stream_prefix=P */
	int timestamps_server; /* timestamps=server (default producer) */
	char *cache_dir;       /* cache_dir=DIR (NULL: the default per-user cache folder) */
	unsigned long long cache_size; /* cache_size=SIZE in bytes (0: default) */
	int meta_ttl;          /* meta_ttl=SECONDS (-1: default) */
	int hls_expires;       /* hls_expires=SECONDS, 300..43200 (0: default) */
	long uid, gid;         /* uid=, gid= (-1: the mounting user) */
	long umask;            /* umask=OCTAL (-1: 022) */
	int allow_other;       /* allow_other */
	int read_only;         /* ro: the whole mount read-only (the KVS tree always is) */
	int live_public;       /* live_public: live.m3u8/live.mpd 0444 (needs allow_other) */
	int readahead;         /* readahead=N fragments per download batch (0: default) */
	int image_interval;    /* image_interval=SECONDS between images/ thumbnails (0: 60) */
	int image_width;       /* image_width=PIXELS of images/ thumbnails, 1..3840 (0: 320) */
	int meta_cache_mb;     /* meta_cache=MIB: memory of the hour listings (0: default 16) */
	int max_retry_time;    /* max_retry_time=SECONDS: retry budget of one request (0: 60) */
	char *export_bucket;   /* export=s3://BUCKET/PREFIX: bucket (NULL: no export/) */
	char *export_prefix;   /* ... and key prefix without leading/trailing '/' ("" for none) */
	char *export_dir;      /* export_dir=NAME (default "export") */
	int export_cache_ttl;  /* export_cache_ttl=SECONDS (-1: default 1 s; 0: off) */
	int export_writeback;  /* export_writeback: close returns once durably staged */
	int parallel_uploads;  /* parallel_uploads=N write-back uploads at once (0: 8) */
	char *s3_endpoint;     /* s3_endpoint=URL */
	int s3_path_style;     /* s3_path_style */
	int manage_streams;    /* manage_streams: mkdir/rmdir streams, retention xattr */
	int default_retention_hours; /* default_retention_hours=N, 0..87600 (-1: 24) */
	char *log_file;        /* log_file=PATH: log lines appended here instead of stderr/syslog */
	int foreground;        /* -f */
	int debug;             /* -d or -o debug: debug log (-d also implies -f) */
	int show_help;         /* -h, --help */
	int show_version;      /* -V, --version */
};

/* Parses argv into opts (zeroed first). Returns 0, or -EINVAL with a one-sentence message in
 * err (size errlen). Unknown options are errors; fstab-only options (_netdev, noauto, auto,
 * user, users, nofail, defaults) are accepted and dropped. */
int options_parse(int argc, char **argv, struct kvsfs_options *opts, char *err, size_t errlen);
/* Frees the strings owned by opts. */
void options_free(struct kvsfs_options *opts);
/* Writes the options in effect as "name=value,..." into out (n bytes, always NUL-terminated):
 * for the status page; no secret (the command line holds none; userinfo of URLs is dropped). */
void options_describe(const struct kvsfs_options *opts, char *out, size_t n);
/* Prints usage and the list of options to stdout. */
void options_print_help(const char *progname);

#endif
