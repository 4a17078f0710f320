/*
 * kvsfs entry point: options, start-up checks, mount, serve, unmount.
 *
 * Start-up order (docs/ARCHITECTURE.md, "Threads"): parse the options, then (unless -f or -d)
 * fork at once (daemon.h), before any thread, libcurl handle, OpenSSL state or network
 * connection exists; the child does everything else. fork() copies only the calling thread, so
 * anything made before it (upload workers, the invalidation thread, condition variables with
 * waiters, libcurl's pool) would be half-alive in the daemon: uploads that never run, an exit
 * that never comes. Every failure the user should see (options, region, credentials, endpoint
 * reachability, cache folder, the mount itself) is still printed as one sentence on stderr with
 * a non-zero exit status, because the parent waits for the child's verdict and exits with it.
 * Once mounted and with every thread started, the daemon detaches its stdio (stderr goes to the
 * log file when log_file= is given), switches its log to syslog unless log_file= names a file,
 * and the parent exits 0. SIGINT, SIGTERM and SIGHUP end the session loop; the mount is removed
 * and every module is closed on the way out (export/ finishes or reports its uploads).
 *
 * Process-wide state is limited to what libraries require (curl_global_init, libfuse's signal
 * handlers); everything else hangs off the context structs created here and passed down.
 */
#include "kvsfs_config.h"

#include <curl/curl.h>
#include <errno.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "kvsfs/awsconfig.h"
#include "kvsfs/awsreq.h"
#include "kvsfs/clips.h"
#include "kvsfs/export.h"
#include "kvsfs/creds.h"
#include "kvsfs/daemon.h"
#include "kvsfs/fcache.h"
#include "kvsfs/fuse_ops.h"
#include "kvsfs/http.h"
#include "kvsfs/kvs.h"
#include "kvsfs/log.h"
#include "kvsfs/metrics.h"
#include "kvsfs/options.h"
#include "kvsfs/s3.h"
#include "kvsfs/sizeidx.h"
#include "kvsfs/vfs.h"

#define DEFAULT_CACHE_SIZE (4ULL << 30)

/* The default cache folder: $XDG_CACHE_HOME/kvsfs, else ~/.cache/kvsfs. */
static int default_cache_dir(char *out, size_t n)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	if (xdg && *xdg == '/')
		snprintf(out, n, "%s/kvsfs", xdg);
	else if (home && *home == '/')
		snprintf(out, n, "%s/.cache/kvsfs", home);
	else
		return -ENOENT;
	return 0;
}

/* Makes *path absolute against the current folder (kept when NULL or already absolute).
 * Returns 0 or -ENOMEM. */
static int absolutize(char **path)
{
	if (!*path || (*path)[0] == '/')
		return 0;
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof(cwd)))
		return 0; /* left relative: the error, if any, comes from its first use */
	size_t n = strlen(cwd) + strlen(*path) + 2;
	char *abs = malloc(n);
	if (!abs)
		return -ENOMEM;
	snprintf(abs, n, "%s/%s", cwd, *path);
	free(*path);
	*path = abs;
	return 0;
}

/* A start-up failure: one sentence on stderr (the parent's, before detaching), and the same as
 * an error line in the log file when log_file= names one. */
static int fail(struct log_ctx *lg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct log_ctx *lg, const char *fmt, ...)
{
	char msg[1200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "kvsfs: %s\n", msg);
	if (lg->fp && lg->fp != stderr)
		LOG_ERROR(lg, "main", "%s", msg);
	return 1;
}

/* Everything the process owns, created in order and freed in reverse by app_close(). */
struct app {
	struct kvsfs_options opts;
	const char *prog;
	char err[1024];
	FILE *log_fp;
	struct daemon_ctx dm;
	struct log_ctx lg;
	int log_level;                    /* the level chosen at start (SIGUSR2 toggles debug) */
	struct metrics metrics;           /* MNT/.kvsfs/metrics and status */
	char options_text[2048];          /* the options without secrets, for the status page */
	struct daemon_signals sigs;       /* SIGUSR1: status to the log; SIGUSR2: debug on/off */
	struct awsconfig_files files;
	struct awsconfig_settings settings;
	struct creds_provider *creds;
	struct http_client *http;
	struct awsreq_ctx aws;            /* borrowed by the KVS and S3 clients: lives as long */
	struct kvs_client *kvs;
	char cache_dir[PATH_MAX];
	char ingest_dir[PATH_MAX + 16];   /* ingest/ staging files (vfs_config borrows it) */
	struct fcache *cache;
	struct sizeidx *sizes;
	struct clips *clips;
	struct s3_client *s3;
	struct export *export;
	struct vfs *vfs;
	struct fuse_ops_ctx *fops;
	struct fuse_session *se;
	struct fuse_args fargs;
	int mounted, handlers;
};

/* Options, help and version, absolute paths, the log file, then the fork (nothing else exists
 * yet). Returns -1 to go on, else the exit status. */
static int app_start(struct app *a, int argc, char **argv)
{
	struct kvsfs_options *o = &a->opts;
	int rc;
	a->prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	if (options_parse(argc, argv, o, a->err, sizeof(a->err)) != 0) {
		fprintf(stderr, "kvsfs: %s\n", a->err);
		return 2;
	}
	if (o->show_help || o->show_version) {
		if (o->show_help)
			options_print_help(a->prog);
		else
			printf("kvsfs %s (libfuse %s, libcurl %s)\n", KVSFS_VERSION, fuse_pkgversion(),
			       curl_version_info(CURLVERSION_NOW)->version);
		return 0;
	}
	if (!o->mountpoint) {
		fprintf(stderr, "kvsfs: no mount point given (see kvsfs --help)\n");
		return 2;
	}
	/* the daemon works in "/": paths given relative to the caller's folder are made absolute */
	if (absolutize(&o->cache_dir) || absolutize(&o->log_file) || absolutize(&o->mountpoint)) {
		fprintf(stderr, "kvsfs: out of memory\n");
		return 1;
	}
	if (o->log_file) {
		a->log_fp = fopen(o->log_file, "ae");
		if (!a->log_fp) {
			fprintf(stderr, "kvsfs: cannot open the log file %s: %s\n", o->log_file,
				strerror(errno));
			return 1;
		}
		setvbuf(a->log_fp, NULL, _IOLBF, 0);
	}
	/* fork before anything else exists (see the top of this file) */
	a->dm.fd = -1;
	if (!o->foreground && (rc = daemon_start(&a->dm)) != 0) {
		fprintf(stderr, "kvsfs: cannot detach into the background: %s\n", strerror(-rc));
		return 1;
	}
	return -1;
}

/* AWS config, credentials, HTTP, the KVS client. Returns 0 or 1 (reported). */
static int app_clients(struct app *a)
{
	struct kvsfs_options *o = &a->opts;
	if (o->no_verify_ssl)
		LOG_WARN(&a->lg, "main", "TLS certificate verification is off (no_verify_ssl): use it "
			 "only with local test servers");
	if (awsconfig_files_load(&a->files, o->profile, NULL, &a->lg, a->err, sizeof(a->err)) ||
	    awsconfig_resolve(&a->settings, &a->files, o->region, o->endpoint, o->s3_endpoint, NULL,
			      a->err, sizeof(a->err)))
		return fail(&a->lg, "%s", a->err);
	struct creds_options co = { .profile = o->profile, .ca_file = o->ca_file,
				    .no_verify_ssl = o->no_verify_ssl };
	if (creds_provider_new(&a->creds, &co, &a->files, &a->lg, a->err, sizeof(a->err)))
		return fail(&a->lg, "%s", a->err);
	struct http_client_opts ho;
	http_client_opts_init(&ho);
	ho.log = &a->lg;
	ho.ca_file = o->ca_file;
	ho.no_verify_ssl = o->no_verify_ssl;
	/* throttling by KVS clears within seconds: retry long enough that a busy stream never
	 * surfaces as an error, but give up within a minute */
	ho.retry.max_attempts = 12;
	ho.retry.base_delay_ms = 200;
	ho.retry.max_delay_ms = 5000;
	ho.retry.max_total_ms = o->max_retry_time > 0 ? (unsigned)o->max_retry_time * 1000 : 60000;
	int rc = http_client_new(&ho, &a->http);
	if (rc)
		return fail(&a->lg, "cannot set up HTTPS (%s); check ca_file", strerror(-rc));
	a->aws = (struct awsreq_ctx){ .http = a->http, .creds = a->creds, .log = &a->lg,
				      .metrics = &a->metrics };
	snprintf(a->aws.region, sizeof(a->aws.region), "%s", a->settings.region);
	struct kvs_client_opts ko = { .aws = &a->aws, .control_endpoint = a->settings.kvs_endpoint };
	if (kvs_client_new(&ko, &a->kvs))
		return fail(&a->lg, "%s", "out of memory");
	return 0;
}

/* The cache folder: media cache and size index. Returns 0 or 1 (reported). */
static int app_caches(struct app *a)
{
	struct kvsfs_options *o = &a->opts;
	char media_dir[PATH_MAX + 16];
	if (o->cache_dir)
		snprintf(a->cache_dir, sizeof(a->cache_dir), "%s", o->cache_dir);
	else if (default_cache_dir(a->cache_dir, sizeof(a->cache_dir)))
		return fail(&a->lg, "%s", "no cache folder: set HOME or give -o cache_dir=DIR");
	snprintf(media_dir, sizeof(media_dir), "%s/media", a->cache_dir);
	struct fcache_opts fco = { .dir = media_dir, .log = &a->lg,
				   .max_bytes = o->cache_size ? o->cache_size : DEFAULT_CACHE_SIZE };
	if (fcache_open(&fco, &a->cache, a->err, sizeof(a->err)))
		return fail(&a->lg, "%s", a->err);
	struct sizeidx_opts so = { .dir = a->cache_dir, .log = &a->lg, .sync_ms = 1000 };
	if (sizeidx_open(&so, &a->sizes, a->err, sizeof(a->err)))
		return fail(&a->lg, "%s", a->err);
	return 0;
}

/* export/ when export= is given: the S3 client and the export core (its upload workers start
 * here, after the fork). Returns 0 or 1 (reported). */
static int app_export(struct app *a)
{
	struct kvsfs_options *o = &a->opts;
	if (!o->export_bucket)
		return 0;
	char staging[PATH_MAX + 16];
	snprintf(staging, sizeof(staging), "%s/staging", a->cache_dir);
	if (mkdir(staging, 0700) != 0 && errno != EEXIST)
		return fail(&a->lg, "cannot create the staging folder %s: %s", staging,
			    strerror(errno));
	struct s3_client_opts s3o = { .aws = &a->aws, .endpoint = a->settings.s3_endpoint,
				      .bucket = o->export_bucket, .path_style = o->s3_path_style };
	if (s3_client_new(&s3o, &a->s3))
		return fail(&a->lg, "%s", "cannot set up the S3 client");
	struct export_opts eo = {
		.s3 = a->s3,
		.prefix = o->export_prefix,
		.staging_dir = staging,
		.staging_max_bytes = o->cache_size ? o->cache_size : DEFAULT_CACHE_SIZE,
		.uid = o->uid >= 0 ? (uid_t)o->uid : getuid(),
		.gid = o->gid >= 0 ? (gid_t)o->gid : getgid(),
		.umask = o->umask >= 0 ? (mode_t)o->umask : 022,
		.cache_ttl_ms = o->export_cache_ttl < 0 ? 0 :
				o->export_cache_ttl ? o->export_cache_ttl * 1000 : -1,
		.writeback = o->export_writeback,
		.parallel_uploads = o->parallel_uploads,
		.drain_ms = o->max_retry_time > 0 ? (int64_t)o->max_retry_time * 1000 : 60000,
		.log = &a->lg,
		.metrics = &a->metrics,
	};
	if (export_open(&eo, &a->export, a->err, sizeof(a->err)))
		return fail(&a->lg, "%s", a->err);
	return 0;
}

/* Clips, the vfs and the adapter it serves; checks that KVS answers. Returns 0 or 1. */
static int app_tree(struct app *a)
{
	struct kvsfs_options *o = &a->opts;
	struct clips_opts clo = { .kvs = a->kvs, .cache = a->cache, .log = &a->lg,
				  .metrics = &a->metrics,
				  .ts = o->timestamps_server ? KVS_TS_SERVER : KVS_TS_PRODUCER };
	if (clips_new(&clo, &a->clips))
		return fail(&a->lg, "%s", "out of memory");
	snprintf(a->ingest_dir, sizeof(a->ingest_dir), "%s/ingest", a->cache_dir);
	if (mkdir(a->ingest_dir, 0700) != 0 && errno != EEXIST)
		return fail(&a->lg, "cannot create the ingest folder %s: %s", a->ingest_dir,
			    strerror(errno));
	struct vfs_config vc = {
		.kvs = a->kvs,
		.ingest_dir = a->ingest_dir,
		.manage_streams = o->manage_streams,
		.default_retention_hours = o->default_retention_hours >= 0
					   ? o->default_retention_hours : 24,
		.cache = a->cache,
		.sizes = a->sizes,
		.clips = a->clips,
		.export = a->export,
		.export_dir = o->export_dir ? o->export_dir : "export",
		.log = &a->lg,
		.metrics = &a->metrics,
		.options_text = a->options_text,
		.streams = o->streams,
		.stream_prefix = o->stream_prefix,
		.ts = o->timestamps_server ? KVS_TS_SERVER : KVS_TS_PRODUCER,
		.meta_ttl_s = o->meta_ttl > 0 ? o->meta_ttl : o->meta_ttl == 0 ? 1 : 5,
		.hls_expires_s = o->hls_expires ? o->hls_expires : 3600,
		.uid = o->uid >= 0 ? (uid_t)o->uid : getuid(),
		.gid = o->gid >= 0 ? (gid_t)o->gid : getgid(),
		.umask = o->umask >= 0 ? (mode_t)o->umask : 022,
		.live_public = o->live_public,
		.readahead = o->readahead,
		.image_interval_s = o->image_interval,
		.image_width = o->image_width,
		.meta_cache_mb = o->meta_cache_mb,
		.invalidate = fuse_ops_invalidate,
		.invalidate_now = fuse_ops_invalidate_now,
		.invalidate_entry = fuse_ops_invalidate_entry,
	};
	/* the adapter is the target of the vfs's kernel invalidations, the vfs serves the adapter */
	a->fops = fuse_ops_new(&a->lg);
	if (!a->fops)
		return fail(&a->lg, "%s", "out of memory");
	vc.invalidate_arg = a->fops;
	if (vfs_new(&vc, &a->vfs, a->err, sizeof(a->err)))
		return fail(&a->lg, "%s", a->err);
	fuse_ops_set_vfs(a->fops, a->vfs);
	if (vfs_check(a->vfs, a->err, sizeof(a->err)))
		return fail(&a->lg, "%s", a->err);
	return 0;
}

/* SIGUSR1 (from the signal thread, daemon.h): the status page to the log, one line each. */
static void on_usr1(void *arg)
{
	struct app *a = arg;
	char *text = vfs_status_text(a->vfs);
	if (!text) {
		LOG_ERROR(&a->lg, "status", "%s", "out of memory");
		return;
	}
	for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		LOG_INFO(&a->lg, "status", "%s", line);
	free(text);
}

/* SIGUSR2: debug logging on, or back to the level of the start. */
static void on_usr2(void *arg)
{
	struct app *a = arg;
	int on = log_get_level(&a->lg) < LOG_LEVEL_DEBUG;
	if (on)
		log_set_level(&a->lg, LOG_LEVEL_DEBUG);
	LOG_INFO(&a->lg, "main", "debug logging %s (SIGUSR2)", on ? "on" : "off");
	if (!on)
		log_set_level(&a->lg, a->log_level > LOG_LEVEL_INFO ? LOG_LEVEL_INFO : a->log_level);
}

/* The FUSE session: mounted, signal handlers, the invalidation thread. Returns 0 or 1. */
static int app_mount(struct app *a)
{
	struct kvsfs_options *o = &a->opts;
	/* FUSE arguments: only what kvsfs decides, never user text (nothing secret either) */
	fuse_opt_add_arg(&a->fargs, a->prog);
	fuse_opt_add_arg(&a->fargs, "-o");
	fuse_opt_add_arg(&a->fargs, o->allow_other
			 ? "fsname=kvsfs,subtype=kvsfs,default_permissions,allow_other"
			 : "fsname=kvsfs,subtype=kvsfs,default_permissions");
	if (o->read_only)
		fuse_opt_add_arg(&a->fargs, "-oro");
	if (o->debug)
		fuse_opt_add_arg(&a->fargs, "-odebug");
	a->se = fuse_session_new(&a->fargs, fuse_ops_table(), sizeof(struct fuse_lowlevel_ops),
				 a->fops);
	if (!a->se)
		return fail(&a->lg, "%s", "cannot create the FUSE session");
	if (fuse_set_signal_handlers(a->se) != 0)
		return fail(&a->lg, "%s", "cannot install signal handlers");
	a->handlers = 1;
	if (fuse_session_mount(a->se, o->mountpoint) != 0)
		return fail(&a->lg, "cannot mount on %s (is it an existing, empty folder you may use, "
			    "and is /dev/fuse available?)", o->mountpoint);
	a->mounted = 1;
	if (fuse_ops_start(a->fops, a->se))
		return fail(&a->lg, "%s", "cannot start the invalidation thread");
	a->sigs = (struct daemon_signals){ .on_usr1 = on_usr1, .on_usr2 = on_usr2, .arg = a };
	if (daemon_signals_start(&a->sigs))
		return fail(&a->lg, "%s", "cannot start the signal thread");
	return 0;
}

/* Frees everything app_* made, in reverse order (NULLs are skipped by each free). */
static void app_close(struct app *a)
{
	daemon_signals_stop(&a->sigs);
	if (a->se) {
		if (a->mounted)
			fuse_session_unmount(a->se);
		if (a->handlers)
			fuse_remove_signal_handlers(a->se);
		fuse_session_destroy(a->se);
	}
	fuse_opt_free_args(&a->fargs);
	fuse_ops_free(a->fops);
	vfs_free(a->vfs);
	export_close(a->export);
	s3_client_free(a->s3);
	clips_free(a->clips);
	sizeidx_close(a->sizes);
	fcache_close(a->cache);
	kvs_client_free(a->kvs);
	http_client_free(a->http);
	creds_provider_free(a->creds);
	awsconfig_settings_free(&a->settings);
	awsconfig_files_free(&a->files);
}

/* `kvsfs check [-o OPTIONS]` (check.h): the clients a mount would build, no fork, no mount.
 * Returns the exit status. */
static int app_check(struct app *a, int argc, char **argv)
{
	struct kvsfs_options *o = &a->opts;
	if (options_parse(argc, argv, o, a->err, sizeof(a->err)) != 0) {
		fprintf(stderr, "kvsfs check: %s\n", a->err);
		return 2;
	}
	/* the checks print one line each; the clients' own log lines would repeat them */
	log_init(&a->lg, o->debug ? LOG_LEVEL_DEBUG : -1, stderr);
	metrics_init(&a->metrics);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int status = app_clients(a) ? 1 : -1;
	char export_url[1024] = "";
	if (status < 0 && o->export_bucket) {
		snprintf(export_url, sizeof(export_url), "s3://%s/%s", o->export_bucket,
			 o->export_prefix ? o->export_prefix : "");
		struct s3_client_opts s3o = { .aws = &a->aws, .endpoint = a->settings.s3_endpoint,
					      .bucket = o->export_bucket,
					      .path_style = o->s3_path_style };
		if (s3_client_new(&s3o, &a->s3))
			status = fail(&a->lg, "%s", "cannot set up the S3 client");
	}
	if (status < 0) {
		struct check_setup cs = {
			.aws = &a->aws, .kvs = a->kvs, .s3 = a->s3, .region = a->settings.region,
			.kvs_endpoint = a->settings.kvs_endpoint ? a->settings.kvs_endpoint : "(default)",
			.s3_endpoint = a->settings.s3_endpoint ? a->settings.s3_endpoint : "(default)",
			.creds_source = creds_provider_describe(a->creds),
			.stream = o->streams ? o->streams[0] : NULL, .stream_prefix = o->stream_prefix,
			.export_url = export_url, .export_prefix = o->export_prefix,
		};
		status = check_run(&cs);
	}
	app_close(a);
	options_free(o);
	curl_global_cleanup();
	log_destroy(&a->lg);
	metrics_destroy(&a->metrics);
	return status;
}

int main(int argc, char **argv)
{
	struct app app;
	memset(&app, 0, sizeof(app)); /* every pointer NULL: app_close() frees what exists */
	struct app *a = &app;
	a->fargs = (struct fuse_args)FUSE_ARGS_INIT(0, NULL);
	if (argc > 1 && !strcmp(argv[1], "check")) {
		argv[1] = argv[0];
		return app_check(a, argc - 1, argv + 1);
	}
	int status = app_start(a, argc, argv);
	if (status >= 0) {
		if (a->log_fp)
			fclose(a->log_fp);
		options_free(&a->opts);
		return status;
	}
	status = 1;
	/* before any thread exists, so that every thread inherits the mask (daemon.h) */
	daemon_signals_block();
	a->log_level = a->opts.debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO;
	log_init(&a->lg, a->log_level, a->log_fp ? a->log_fp : stderr);
	metrics_init(&a->metrics);
	options_describe(&a->opts, a->options_text, sizeof(a->options_text));
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (!app_clients(a) && !app_caches(a) && !app_export(a) && !app_tree(a) && !app_mount(a)) {
		LOG_INFO(&a->lg, "main", "mounted Kinesis Video Streams of %s on %s (%s)",
			 a->settings.region, a->opts.mountpoint, creds_provider_describe(a->creds));
		if (a->dm.fd >= 0) {
			if (!a->log_fp)
				log_use_syslog(&a->lg);
			daemon_ready(&a->dm, 0, a->log_fp ? fileno(a->log_fp) : -1);
		}
		struct fuse_loop_config lc = { .clone_fd = 0, .max_idle_threads = 16 };
		int rc = fuse_session_loop_mt(a->se, &lc);
		/* libfuse's signal handler leaves the signal number as the loop's result */
		status = (rc == 0 || rc == SIGINT || rc == SIGTERM || rc == SIGHUP) ? 0 : 1;
		LOG_INFO(&a->lg, "main", "unmounting %s", a->opts.mountpoint);
	}
	app_close(a);
	options_free(&a->opts);
	curl_global_cleanup();
	LOG_DEBUG(&a->lg, "main", "exiting with status %d", status);
	log_destroy(&a->lg);
	metrics_destroy(&a->metrics);
	if (a->log_fp)
		fclose(a->log_fp);
	/* a failure before daemon_ready: the parent takes this exit status (the sentence is on
	 * stderr already) */
	return status;
}
