/*
 * kvsfs-export: drives the export core (src/fs/export/) from the command line for the pytest
 * suites, the way the FUSE layer would. Credentials come from the normal chain, never argv.
 *
 *   kvsfs-export [options] COMMAND ARGS...
 * options:
 *   -d                   debug log on stderr
 *   --endpoint URL --bucket B --prefix P --staging DIR   (bucket and staging required)
 *   --staging-max N --part-size N --parallel N --umask OCTAL --max-attempts N
 *   --chunk N            write()/read() size (default 131072, like cp)
 *   --random             cp: write the chunks in a non-sequential order (2nd half first)
 *   --fsync              cp: fsync before release
 *   --write-delay-us N   sleep after each write() (a slow writer)
 *   --fsize-limit N      RLIMIT_FSIZE of N bytes (SIGXFSZ ignored): writes to the staging file
 *                        beyond N fail with EFBIG, as on a full disk
 *   --stat               cp: print the file's stat JSON after the writes, before the release
 *   --retry              cp/rsync: after a failure print "FAILED <errno>" on stdout, wait for a
 *                        line on stdin, then retry (export_sync_all) and exit with its result
 * commands:
 *   cp LOCAL PATH                  create + write() chunks + release ("WRITES-DONE <time>" on
 *                                  stdout after the last write)
 *   rsync LOCAL TMP FINAL MTIME_MS MODE [early]
 *                                  rsync's pattern: write TMP, release, utimens, chmod, rename
 *                                  (early: utimens/chmod/rename before the release)
 *   append LOCAL PATH              open O_WRONLY (existing content downloaded), write at the end
 *   par N LOCAL DIR                N threads copy LOCAL to DIR/f0..f<N-1> at once (listing meanwhile)
 *   beside LOCAL_A A LOCAL_B B     a thread copies LOCAL_A to A (cp); after a line on stdin
 *                                  (A's upload is under way) this thread creates B, writes
 *                                  LOCAL_B ("B-WRITTEN"), stats A ("A-SIZE N"), lists A's
 *                                  folder ("LISTED N"), then after another line releases B
 *   cat PATH                       content to stdout (reads of --chunk bytes)
 *   stat PATH                      JSON {is_dir, mode, size, mtime_ms}
 *   ls DIR                         one line per entry: NAME TAB d|f TAB SIZE TAB MTIME_MS TAB MODE
 *   mkdir PATH [MODE] | rmdir PATH | rm PATH | mv FROM TO | touch PATH MTIME_MS
 *   chmod PATH OCTAL | chown PATH UID GID | truncate PATH SIZE | open-only
 * Exit status: 0, or the errno of the failure (one line "error: ..." on stderr); 100 bad usage.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kvsfs/awsconfig.h"
#include "kvsfs/awsreq.h"
#include "kvsfs/creds.h"
#include "kvsfs/export.h"
#include "kvsfs/http.h"
#include "kvsfs/log.h"
#include "kvsfs/s3.h"

static void usage(void)
{
	fprintf(stderr, "usage: kvsfs-export [-d] [--endpoint URL] --bucket B [--prefix P] "
		"--staging DIR [--staging-max N] [--part-size N] [--parallel N] [--chunk N] "
		"[--random] [--fsync] [--retry] COMMAND ARGS...\n");
	exit(100);
}

static size_t chunk = 131072;
static int random_order, do_fsync, do_retry, do_stat;
static long write_delay_us;

static int read_local(const char *path, char **data, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "error: cannot open %s\n", path);
		return -ENOENT;
	}
	char *d = NULL;
	size_t n = 0, cap = 0;
	for (;;) {
		if (cap - n < 65536) {
			cap = cap ? cap * 2 : 1 << 20;
			char *nd = realloc(d, cap);
			if (!nd) {
				free(d);
				fclose(f);
				return -ENOMEM;
			}
			d = nd;
		}
		size_t got = fread(d + n, 1, cap - n, f);
		if (!got)
			break;
		n += got;
	}
	fclose(f);
	*data = d;
	*len = n;
	return 0;
}

static int write_all(struct export_file *f, const char *data, size_t len)
{
	size_t nchunks = len ? (len + chunk - 1) / chunk : 0;
	for (size_t k = 0; k < nchunks; k++) {
		size_t i = k;
		if (random_order)  /* second half first, then the first half */
			i = (k + nchunks / 2 + 1) % nchunks;
		size_t off = i * chunk, n = len - off < chunk ? len - off : chunk;
		ssize_t w = export_write(f, data + off, n, (off_t)off);
		if (w < 0)
			return (int)w;
		if ((size_t)w != n)
			return -EIO;
		if (write_delay_us)
			usleep((useconds_t)write_delay_us);
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	printf("WRITES-DONE %lld.%03ld\n", (long long)ts.tv_sec, ts.tv_nsec / 1000000);
	fflush(stdout);
	return 0;
}

static int retry_wait(struct export *ex, int rc)
{
	if (!rc || !do_retry)
		return rc;
	printf("FAILED %d\n", -rc);
	fflush(stdout);
	char line[64];
	if (!fgets(line, sizeof(line), stdin))
		return rc;
	return export_sync_all(ex);
}

static void print_attr(const char *name, const struct export_attr *a);

static int cmd_cp(struct export *ex, const char *local, const char *path)
{
	char *data = NULL;
	size_t len = 0;
	int rc = read_local(local, &data, &len);
	if (rc)
		return rc;
	struct export_file *f;
	rc = export_create(ex, path, 0644, &f);
	if (!rc) {
		rc = write_all(f, data, len);
		struct export_attr a;
		if (do_stat && !export_stat(ex, path, &a))
			print_attr(NULL, &a);
		if (!rc && do_fsync)
			rc = export_fsync(f);
		int r2 = export_release(f);
		if (!rc)
			rc = r2;
	}
	free(data);
	return retry_wait(ex, rc);
}

static int cmd_rsync(struct export *ex, char **a, int early)
{
	char *data = NULL;
	size_t len = 0;
	int rc = read_local(a[0], &data, &len);
	if (rc)
		return rc;
	int64_t mt = atoll(a[3]);
	mode_t mode = (mode_t)strtol(a[4], NULL, 8);
	struct export_file *f;
	rc = export_create(ex, a[1], 0600, &f);
	if (rc) {
		free(data);
		return rc;
	}
	rc = write_all(f, data, len);
	free(data);
	if (early) {
		if (!rc)
			rc = export_set_times(ex, a[1], mt);
		if (!rc)
			rc = export_set_mode(ex, a[1], mode);
		if (!rc)
			rc = export_rename(ex, a[1], a[2]);
		int r2 = export_release(f);
		return retry_wait(ex, rc ? rc : r2);
	}
	int r2 = export_release(f);
	if (!rc)
		rc = r2;
	if (!rc)
		rc = export_set_times(ex, a[1], mt);
	if (!rc)
		rc = export_set_mode(ex, a[1], mode);
	if (!rc)
		rc = export_rename(ex, a[1], a[2]);
	return retry_wait(ex, rc);
}

static int cmd_append(struct export *ex, const char *local, const char *path)
{
	char *data = NULL;
	size_t len = 0;
	int rc = read_local(local, &data, &len);
	if (rc)
		return rc;
	struct export_attr a;
	struct export_file *f;
	rc = export_stat(ex, path, &a);
	if (!rc)
		rc = export_open_file(ex, path, O_WRONLY, &f);
	if (!rc) {
		ssize_t w = len ? export_write(f, data, len, (off_t)a.size) : 0;
		rc = w < 0 ? (int)w : 0;
		int r2 = export_release(f);
		if (!rc)
			rc = r2;
	}
	free(data);
	return rc;
}

static int cmd_cat(struct export *ex, const char *path)
{
	struct export_file *f;
	int rc = export_open_file(ex, path, O_RDONLY, &f);
	if (rc)
		return rc;
	char *b = malloc(chunk);
	off_t off = 0;
	for (;;) {
		ssize_t r = b ? export_read(f, b, chunk, off) : -ENOMEM;
		if (r < 0) {
			rc = (int)r;
			break;
		}
		if (!r)
			break;
		fwrite(b, 1, (size_t)r, stdout);
		off += r;
	}
	free(b);
	int r2 = export_release(f);
	return rc ? rc : r2;
}

struct par_arg {
	struct export *ex;
	const char *local;
	char path[512];
	int rc;
};

static void *par_main(void *arg)
{
	struct par_arg *p = arg;
	p->rc = cmd_cp(p->ex, p->local, p->path);
	return NULL;
}

static int count_entry(void *arg, const char *name, const struct export_attr *a)
{
	(void)name;
	(void)a;
	(*(int *)arg)++;
	return 0;
}

/* N threads copy LOCAL to DIR/f<i> at once while this thread lists and stats DIR. */
static int cmd_par(struct export *ex, int n, const char *local, const char *dir)
{
	if (n < 1 || n > 64)
		return -EINVAL;
	struct par_arg args[64];
	pthread_t th[64];
	for (int i = 0; i < n; i++) {
		args[i] = (struct par_arg){ .ex = ex, .local = local };
		snprintf(args[i].path, sizeof(args[i].path), "%s/f%d", dir, i);
		if (pthread_create(&th[i], NULL, par_main, &args[i]))
			return -EAGAIN;
	}
	for (int k = 0; k < 5; k++) {
		int count = 0;
		struct export_attr a;
		export_list(ex, dir, count_entry, &count);
		export_stat(ex, args[k % n].path, &a);
	}
	int rc = 0;
	for (int i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		if (args[i].rc && !rc)
			rc = args[i].rc;
	}
	return rc;
}

static int wait_line(void)
{
	char line[64];
	return fgets(line, sizeof(line), stdin) ? 0 : -EPIPE;
}

/* Writes and stats other files while A uploads (see "beside" above). */
static int cmd_beside(struct export *ex, char **a)
{
	struct par_arg pa = { .ex = ex, .local = a[0] };
	snprintf(pa.path, sizeof(pa.path), "%s", a[1]);
	pthread_t th;
	if (pthread_create(&th, NULL, par_main, &pa))
		return -EAGAIN;
	char *data = NULL;
	size_t len = 0;
	struct export_file *f = NULL;
	struct export_attr at;
	int count = 0;
	int rc = wait_line();
	if (!rc)
		rc = read_local(a[2], &data, &len);
	if (!rc)
		rc = export_create(ex, a[3], 0644, &f);
	if (!rc) {
		ssize_t w = len ? export_write(f, data, len, 0) : 0;
		rc = w < 0 ? (int)w : 0;
	}
	if (!rc) {
		printf("B-WRITTEN\n");
		fflush(stdout);
		rc = export_stat(ex, a[1], &at);
	}
	if (!rc) {
		printf("A-SIZE %llu\n", (unsigned long long)at.size);
		fflush(stdout);
		char dir[512];
		const char *sl = strrchr(a[1], '/');
		snprintf(dir, sizeof(dir), "%.*s", sl ? (int)(sl - a[1]) : 0, a[1]);
		rc = export_list(ex, dir, count_entry, &count);
	}
	if (!rc) {
		printf("LISTED %d\n", count);
		fflush(stdout);
		rc = wait_line();
	}
	int r2 = export_release(f);
	pthread_join(th, NULL);
	free(data);
	return rc ? rc : r2 ? r2 : pa.rc;
}

static void print_attr(const char *name, const struct export_attr *a)
{
	if (name)
		printf("%s\t%c\t%llu\t%lld\t%o\n", name, a->is_dir ? 'd' : 'f',
		       (unsigned long long)a->size, (long long)a->mtime_ms, (unsigned)a->mode);
	else
		printf("{\"is_dir\": %d, \"mode\": %u, \"size\": %llu, \"mtime_ms\": %lld}\n",
		       a->is_dir, (unsigned)a->mode, (unsigned long long)a->size,
		       (long long)a->mtime_ms);
}

static int ls_entry(void *arg, const char *name, const struct export_attr *a)
{
	(void)arg;
	print_attr(name, a);
	return 0;
}

int main(int argc, char **argv)
{
	const char *endpoint = NULL, *bucket = NULL, *prefix = NULL, *staging = NULL;
	int debug = 0, max_attempts = 0, parallel = 0, i;
	unsigned long long staging_max = 0, part_size = 0;
	mode_t um = 022;

	for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
		const char *a = argv[i];
		int more = i + 1 < argc;
		if (!strcmp(a, "-d"))
			debug = 1;
		else if (!strcmp(a, "--random"))
			random_order = 1;
		else if (!strcmp(a, "--fsync"))
			do_fsync = 1;
		else if (!strcmp(a, "--retry"))
			do_retry = 1;
		else if (!strcmp(a, "--stat"))
			do_stat = 1;
		else if (more && !strcmp(a, "--fsize-limit")) {
			struct rlimit rl;
			rl.rlim_cur = rl.rlim_max = (rlim_t)strtoull(argv[++i], NULL, 10);
			signal(SIGXFSZ, SIG_IGN);
			if (setrlimit(RLIMIT_FSIZE, &rl))
				usage();
		}
		else if (more && !strcmp(a, "--endpoint"))
			endpoint = argv[++i];
		else if (more && !strcmp(a, "--bucket"))
			bucket = argv[++i];
		else if (more && !strcmp(a, "--prefix"))
			prefix = argv[++i];
		else if (more && !strcmp(a, "--staging"))
			staging = argv[++i];
		else if (more && !strcmp(a, "--staging-max"))
			staging_max = strtoull(argv[++i], NULL, 10);
		else if (more && !strcmp(a, "--part-size"))
			part_size = strtoull(argv[++i], NULL, 10);
		else if (more && !strcmp(a, "--parallel"))
			parallel = atoi(argv[++i]);
		else if (more && !strcmp(a, "--max-attempts"))
			max_attempts = atoi(argv[++i]);
		else if (more && !strcmp(a, "--write-delay-us"))
			write_delay_us = atol(argv[++i]);
		else if (more && !strcmp(a, "--umask"))
			um = (mode_t)strtol(argv[++i], NULL, 8);
		else if (more && !strcmp(a, "--chunk")) {
			chunk = strtoull(argv[++i], NULL, 10);
			if (!chunk)
				usage();
		} else
			usage();
	}
	if (i >= argc || !bucket || !staging)
		usage();
	const char *cmd = argv[i++];
	int nargs = argc - i;
	char **args = argv + i;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct log_ctx lg;
	log_init(&lg, debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN, stderr);
	struct awsconfig_files files = { 0 };
	struct awsconfig_settings settings = { 0 };
	struct creds_provider *cp = NULL;
	struct http_client *http = NULL;
	struct s3_client *s3 = NULL;
	struct export *ex = NULL;
	char err[512];
	int rc = 0, status = 1;

	if (awsconfig_files_load(&files, NULL, NULL, &lg, err, sizeof(err)) ||
	    awsconfig_resolve(&settings, &files, NULL, NULL, endpoint, NULL, err, sizeof(err))) {
		fprintf(stderr, "error: %s\n", err);
		goto out;
	}
	struct creds_options co = { 0 };
	if (creds_provider_new(&cp, &co, &files, &lg, err, sizeof(err))) {
		fprintf(stderr, "error: %s\n", err);
		goto out;
	}
	struct http_client_opts ho;
	http_client_opts_init(&ho);
	ho.log = &lg;
	ho.retry.max_total_ms = 15000;
	ho.retry.max_attempts = max_attempts;
	ho.low_speed_time_s = 20;
	if (http_client_new(&ho, &http)) {
		fprintf(stderr, "error: http client set-up failed\n");
		goto out;
	}
	struct awsreq_ctx ctx = { .http = http, .creds = cp, .log = &lg };
	snprintf(ctx.region, sizeof(ctx.region), "%s", settings.region);
	struct s3_client_opts so = {
		.aws = &ctx, .endpoint = settings.s3_endpoint, .bucket = bucket, .path_style = 1,
	};
	rc = s3_client_new(&so, &s3);
	if (rc) {
		fprintf(stderr, "error: S3 client set-up failed: %s\n", strerror(-rc));
		status = -rc;
		goto out;
	}
	struct export_opts eo = {
		.s3 = s3, .prefix = prefix, .staging_dir = staging, .staging_max_bytes = staging_max,
		.part_size = part_size, .parallel_parts = parallel, .uid = getuid(),
		.gid = getgid(), .umask = um, .log = &lg,
	};
	rc = export_open(&eo, &ex, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "error: %s\n", err);
		status = -rc;
		goto out;
	}
	struct export_attr a;
	if (!strcmp(cmd, "cp") && nargs == 2)
		rc = cmd_cp(ex, args[0], args[1]);
	else if (!strcmp(cmd, "rsync") && (nargs == 5 || nargs == 6))
		rc = cmd_rsync(ex, args, nargs == 6);
	else if (!strcmp(cmd, "par") && nargs == 3)
		rc = cmd_par(ex, atoi(args[0]), args[1], args[2]);
	else if (!strcmp(cmd, "beside") && nargs == 4)
		rc = cmd_beside(ex, args);
	else if (!strcmp(cmd, "append") && nargs == 2)
		rc = cmd_append(ex, args[0], args[1]);
	else if (!strcmp(cmd, "cat") && nargs == 1)
		rc = cmd_cat(ex, args[0]);
	else if (!strcmp(cmd, "stat") && nargs == 1) {
		rc = export_stat(ex, args[0], &a);
		if (!rc)
			print_attr(NULL, &a);
	} else if (!strcmp(cmd, "ls") && nargs == 1)
		rc = export_list(ex, args[0], ls_entry, NULL);
	else if (!strcmp(cmd, "mkdir") && (nargs == 1 || nargs == 2))
		rc = export_mkdir(ex, args[0], nargs == 2 ? (mode_t)strtol(args[1], NULL, 8) : 0755);
	else if (!strcmp(cmd, "rmdir") && nargs == 1)
		rc = export_rmdir(ex, args[0]);
	else if (!strcmp(cmd, "rm") && nargs == 1)
		rc = export_unlink(ex, args[0]);
	else if (!strcmp(cmd, "mv") && nargs == 2)
		rc = export_rename(ex, args[0], args[1]);
	else if (!strcmp(cmd, "touch") && nargs == 2)
		rc = export_set_times(ex, args[0], atoll(args[1]));
	else if (!strcmp(cmd, "chmod") && nargs == 2)
		rc = export_set_mode(ex, args[0], (mode_t)strtol(args[1], NULL, 8));
	else if (!strcmp(cmd, "chown") && nargs == 3)
		rc = export_set_owner(ex, args[0], (uid_t)atol(args[1]), (gid_t)atol(args[2]));
	else if (!strcmp(cmd, "truncate") && nargs == 2)
		rc = export_truncate(ex, args[0], strtoull(args[1], NULL, 10));
	else if (!strcmp(cmd, "open-only") && nargs == 0)
		rc = 0;
	else {
		export_close(ex);
		ex = NULL;
		usage();
	}
	if (rc)
		fprintf(stderr, "error: %s: %s\n", cmd, strerror(-rc));
	status = rc ? -rc : 0;
out:
	fflush(stdout);
	export_close(ex);
	s3_client_free(s3);
	http_client_free(http);
	creds_provider_free(cp);
	awsconfig_settings_free(&settings);
	awsconfig_files_free(&files);
	log_destroy(&lg);
	curl_global_cleanup();
	return status;
}
