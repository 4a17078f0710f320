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

int main(int argc, char **argv)
{
	struct kvsfs_options opts;
	char err[1024];
	const char *prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	int status = 1, rc;

	if (options_parse(argc, argv, &opts, err, sizeof(err)) != 0) {
		fprintf(stderr, "kvsfs: %s\n", err);
		return 2;
	}
	if (opts.show_help) {
		options_print_help(prog);
		options_free(&opts);
		return 0;
	}
	if (opts.show_version) {
		printf("kvsfs %s (libfuse %s, libcurl %s)\n", KVSFS_VERSION, fuse_pkgversion(),
		       curl_version_info(CURLVERSION_NOW)->version);
		options_free(&opts);
		return 0;
	}
	if (!opts.mountpoint) {
		fprintf(stderr, "kvsfs: no mount point given (see kvsfs --help)\n");
		options_free(&opts);
		return 2;
	}

	/* the daemon works in "/": paths given relative to the caller's folder are made absolute */
	if (absolutize(&opts.cache_dir) || absolutize(&opts.log_file) || absolutize(&opts.mountpoint)) {
		fprintf(stderr, "kvsfs: out of memory\n");
		options_free(&opts);
		return 1;
	}
	FILE *log_fp = NULL;
	if (opts.log_file) {
		log_fp = fopen(opts.log_file, "ae");
		if (!log_fp) {
			fprintf(stderr, "kvsfs: cannot open the log file %s: %s\n", opts.log_file,
				strerror(errno));
			options_free(&opts);
			return 1;
		}
		setvbuf(log_fp, NULL, _IOLBF, 0);
	}
	/* fork before anything else exists (see the top of this file) */
	struct daemon_ctx dm = { .fd = -1 };
	if (!opts.foreground && (rc = daemon_start(&dm)) != 0) {
		fprintf(stderr, "kvsfs: cannot detach into the background: %s\n", strerror(-rc));
		if (log_fp)
			fclose(log_fp);
		options_free(&opts);
		return 1;
	}

	struct log_ctx lg;
	log_init(&lg, opts.debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO, log_fp ? log_fp : stderr);
	curl_global_init(CURL_GLOBAL_DEFAULT);

	struct awsconfig_files files = { 0 };
	struct awsconfig_settings settings = { 0 };
	struct creds_provider *creds = NULL;
	struct http_client *http = NULL;
	struct kvs_client *kvs = NULL;
	struct fcache *cache = NULL;
	struct sizeidx *sizes = NULL;
	struct clips *clips = NULL;
	struct s3_client *s3 = NULL;
	struct export *export = NULL;
	struct vfs *vfs = NULL;
	struct fuse_ops_ctx *fops = NULL;
	struct fuse_session *se = NULL;
	struct fuse_args fargs = FUSE_ARGS_INIT(0, NULL);
	int mounted = 0, handlers = 0;

	if (opts.no_verify_ssl)
		LOG_WARN(&lg, "main", "TLS certificate verification is off (no_verify_ssl): use it only "
			 "with local test servers");
	if (awsconfig_files_load(&files, opts.profile, NULL, &lg, err, sizeof(err)) ||
	    awsconfig_resolve(&settings, &files, opts.region, opts.endpoint, opts.s3_endpoint, NULL,
			      err, sizeof(err))) {
		fail(&lg, "%s", err);
		goto out;
	}
	struct creds_options co = { .profile = opts.profile, .ca_file = opts.ca_file,
				    .no_verify_ssl = opts.no_verify_ssl };
	if (creds_provider_new(&creds, &co, &files, &lg, err, sizeof(err))) {
		fail(&lg, "%s", err);
		goto out;
	}
	struct http_client_opts ho;
	http_client_opts_init(&ho);
	ho.log = &lg;
	ho.ca_file = opts.ca_file;
	ho.no_verify_ssl = opts.no_verify_ssl;
	/* throttling by KVS clears within seconds: retry long enough that a busy stream never
	 * surfaces as an error, but give up within a minute */
	ho.retry.max_attempts = 12;
	ho.retry.base_delay_ms = 200;
	ho.retry.max_delay_ms = 5000;
	ho.retry.max_total_ms = opts.max_retry_time > 0 ? (unsigned)opts.max_retry_time * 1000 : 60000;
	rc = http_client_new(&ho, &http);
	if (rc) {
		fail(&lg, "cannot set up HTTPS (%s); check ca_file", strerror(-rc));
		goto out;
	}
	struct awsreq_ctx aws = { .http = http, .creds = creds, .log = &lg };
	snprintf(aws.region, sizeof(aws.region), "%s", settings.region);
	struct kvs_client_opts ko = { .aws = &aws, .control_endpoint = settings.kvs_endpoint };
	if (kvs_client_new(&ko, &kvs)) {
		fail(&lg, "%s", "out of memory");
		goto out;
	}

	char cache_dir[PATH_MAX], media_dir[PATH_MAX + 16];
	if (opts.cache_dir)
		snprintf(cache_dir, sizeof(cache_dir), "%s", opts.cache_dir);
	else if (default_cache_dir(cache_dir, sizeof(cache_dir))) {
		fail(&lg, "%s", "no cache folder: set HOME or give -o cache_dir=DIR");
		goto out;
	}
	snprintf(media_dir, sizeof(media_dir), "%s/media", cache_dir);
	struct fcache_opts fco = { .dir = media_dir, .log = &lg,
				   .max_bytes = opts.cache_size ? opts.cache_size : DEFAULT_CACHE_SIZE };
	if (fcache_open(&fco, &cache, err, sizeof(err))) {
		fail(&lg, "%s", err);
		goto out;
	}
	struct sizeidx_opts so = { .dir = cache_dir, .log = &lg, .sync_ms = 1000 };
	if (sizeidx_open(&so, &sizes, err, sizeof(err))) {
		fail(&lg, "%s", err);
		goto out;
	}

	if (opts.export_bucket) {
		char staging[PATH_MAX + 16];
		snprintf(staging, sizeof(staging), "%s/staging", cache_dir);
		if (mkdir(staging, 0700) != 0 && errno != EEXIST) {
			fail(&lg, "cannot create the staging folder %s: %s", staging, strerror(errno));
			goto out;
		}
		struct s3_client_opts s3o = { .aws = &aws, .endpoint = settings.s3_endpoint,
					      .bucket = opts.export_bucket,
					      .path_style = opts.s3_path_style };
		if (s3_client_new(&s3o, &s3)) {
			fail(&lg, "%s", "cannot set up the S3 client");
			goto out;
		}
		struct export_opts eo = {
			.s3 = s3,
			.prefix = opts.export_prefix,
			.staging_dir = staging,
			.staging_max_bytes = opts.cache_size ? opts.cache_size : DEFAULT_CACHE_SIZE,
			.uid = opts.uid >= 0 ? (uid_t)opts.uid : getuid(),
			.gid = opts.gid >= 0 ? (gid_t)opts.gid : getgid(),
			.umask = opts.umask >= 0 ? (mode_t)opts.umask : 022,
			.log = &lg,
		};
		if (export_open(&eo, &export, err, sizeof(err))) {
			fail(&lg, "%s", err);
			goto out;
		}
	}
	struct clips_opts clo = { .kvs = kvs, .cache = cache, .log = &lg,
				  .ts = opts.timestamps_server ? KVS_TS_SERVER : KVS_TS_PRODUCER };
	if (clips_new(&clo, &clips)) {
		fail(&lg, "%s", "out of memory");
		goto out;
	}
	struct vfs_config vc = {
		.kvs = kvs,
		.cache = cache,
		.sizes = sizes,
		.clips = clips,
		.export = export,
		.export_dir = opts.export_dir ? opts.export_dir : "export",
		.log = &lg,
		.streams = opts.streams,
		.stream_prefix = opts.stream_prefix,
		.ts = opts.timestamps_server ? KVS_TS_SERVER : KVS_TS_PRODUCER,
		.meta_ttl_s = opts.meta_ttl >= 0 ? opts.meta_ttl : 5,
		.hls_expires_s = opts.hls_expires ? opts.hls_expires : 3600,
		.uid = opts.uid >= 0 ? (uid_t)opts.uid : getuid(),
		.gid = opts.gid >= 0 ? (gid_t)opts.gid : getgid(),
		.umask = opts.umask >= 0 ? (mode_t)opts.umask : 022,
		.live_public = opts.live_public,
		.readahead = opts.readahead,
		.invalidate = fuse_ops_invalidate,
		.invalidate_now = fuse_ops_invalidate_now,
	};
	if (vc.meta_ttl_s == 0)
		vc.meta_ttl_s = 1;
	/* the adapter is the target of the vfs's kernel invalidations, the vfs serves the adapter */
	fops = fuse_ops_new(&lg);
	if (!fops) {
		fail(&lg, "%s", "out of memory");
		goto out;
	}
	vc.invalidate_arg = fops;
	if (vfs_new(&vc, &vfs, err, sizeof(err))) {
		fail(&lg, "%s", err);
		goto out;
	}
	fuse_ops_set_vfs(fops, vfs);
	if (vfs_check(vfs, err, sizeof(err))) {
		fail(&lg, "%s", err);
		goto out;
	}

	/* FUSE arguments: only what kvsfs decides, never user text (nothing secret either) */
	fuse_opt_add_arg(&fargs, prog);
	fuse_opt_add_arg(&fargs, "-o");
	fuse_opt_add_arg(&fargs, opts.allow_other ? "fsname=kvsfs,subtype=kvsfs,default_permissions,allow_other"
						  : "fsname=kvsfs,subtype=kvsfs,default_permissions");
	if (opts.read_only)
		fuse_opt_add_arg(&fargs, "-oro");
	if (opts.debug)
		fuse_opt_add_arg(&fargs, "-odebug");
	se = fuse_session_new(&fargs, fuse_ops_table(), sizeof(struct fuse_lowlevel_ops), fops);
	if (!se) {
		fail(&lg, "%s", "cannot create the FUSE session");
		goto out;
	}
	if (fuse_set_signal_handlers(se) != 0) {
		fail(&lg, "%s", "cannot install signal handlers");
		goto out;
	}
	handlers = 1;
	if (fuse_session_mount(se, opts.mountpoint) != 0) {
		fail(&lg, "cannot mount on %s (is it an existing, empty folder you may use, and is "
		     "/dev/fuse available?)", opts.mountpoint);
		goto out;
	}
	mounted = 1;
	if (fuse_ops_start(fops, se)) {
		fail(&lg, "%s", "cannot start the invalidation thread");
		goto out;
	}
	LOG_INFO(&lg, "main", "mounted Kinesis Video Streams of %s on %s (%s)", settings.region,
		 opts.mountpoint, creds_provider_describe(creds));
	if (dm.fd >= 0) {
		if (!log_fp)
			log_use_syslog(&lg);
		daemon_ready(&dm, 0, log_fp ? fileno(log_fp) : -1);
	}
	struct fuse_loop_config lc = { .clone_fd = 0, .max_idle_threads = 16 };
	rc = fuse_session_loop_mt(se, &lc);
	/* libfuse's signal handler leaves the signal number as the loop's result */
	status = (rc == 0 || rc == SIGINT || rc == SIGTERM || rc == SIGHUP) ? 0 : 1;
	LOG_INFO(&lg, "main", "unmounting %s", opts.mountpoint);
out:
	if (se) {
		if (mounted)
			fuse_session_unmount(se);
		if (handlers)
			fuse_remove_signal_handlers(se);
		fuse_session_destroy(se);
	}
	fuse_opt_free_args(&fargs);
	fuse_ops_free(fops);
	vfs_free(vfs);
	export_close(export);
	s3_client_free(s3);
	clips_free(clips);
	sizeidx_close(sizes);
	fcache_close(cache);
	kvs_client_free(kvs);
	http_client_free(http);
	creds_provider_free(creds);
	awsconfig_settings_free(&settings);
	awsconfig_files_free(&files);
	options_free(&opts);
	curl_global_cleanup();
	LOG_DEBUG(&lg, "main", "exiting with status %d", status);
	log_destroy(&lg);
	if (log_fp)
		fclose(log_fp);
	/* a failure before daemon_ready: the parent takes this exit status (the sentence is on
	 * stderr already) */
	return status;
}
