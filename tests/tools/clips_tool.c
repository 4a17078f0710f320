/*
 * kvsfs-clips: makes one clip through the whole chain (shared config files and credentials from
 * the environment, HTTP, awsreq, KVS client, a disk cache, clips), for the pytest suites.
 *
 *   kvsfs-clips [-d] [--endpoint URL] [--region R] [--server] [--cache DIR] [--threads N]
 *               [--max-fragments N] [--max-bytes N] [--open] [--cache-max BYTES]
 *               make STREAM NAME OUT
 *   kvsfs-clips parse NAME
 *
 * make: parses NAME (clips_parse), makes the clip (clips_make; --threads N runs N concurrent
 * callers, which must share one generation and agree on the size), copies the cached clip to OUT
 * and prints its size on stdout. --cache DIR keeps the cache there (default: a temp dir removed
 * at exit); --cache-max bounds it. --open uses clips_make_open (made and opened pinned in one
 * step) instead of clips_make + clips_open. --server uses SERVER_TIMESTAMP (default PRODUCER_TIMESTAMP).
 * parse: prints "START_MS END_MS".
 * Exit status: 0, or the positive errno of the failure (2 for usage errors). Debug logs (-d) and
 * error lines go to stderr.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvsfs/awsconfig.h"
#include "kvsfs/awsreq.h"
#include "kvsfs/clips.h"
#include "kvsfs/creds.h"
#include "kvsfs/fcache.h"
#include "kvsfs/http.h"
#include "kvsfs/kvs.h"
#include "kvsfs/log.h"

static void usage(void)
{
	fprintf(stderr, "usage: kvsfs-clips [-d] [--endpoint URL] [--region R] [--server] [--cache DIR] "
		"[--threads N] [--max-fragments N] [--max-bytes N] [--open] [--cache-max B]\n"
		"       make STREAM NAME OUT | parse NAME\n");
	exit(2);
}

struct job {
	struct clips *c;
	const char *stream, *name;
	int64_t start, end;
	uint64_t size;
	int rc;
	int open;
	int fd;
	struct fcache_pin *pin;
};

static void *run_job(void *arg)
{
	struct job *j = arg;
	if (j->open)
		j->rc = clips_make_open(j->c, j->stream, j->name, j->start, j->end, &j->fd, &j->size,
					&j->pin);
	else
		j->rc = clips_make(j->c, j->stream, j->name, j->start, j->end, &j->size);
	return NULL;
}

static int copy_out(int fd, const char *path, uint64_t size)
{
	int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0)
		return -errno;
	char buf[1 << 16];
	uint64_t off = 0;
	while (off < size) {
		ssize_t r = pread(fd, buf, sizeof(buf), (off_t)off);
		if (r <= 0) {
			close(out);
			return r < 0 ? -errno : -EIO;
		}
		for (ssize_t w = 0; w < r;) {
			ssize_t k = write(out, buf + w, (size_t)(r - w));
			if (k < 0) {
				close(out);
				return -errno;
			}
			w += k;
		}
		off += (uint64_t)r;
	}
	return close(out) ? -errno : 0;
}

int main(int argc, char **argv)
{
	const char *region = NULL, *endpoint = NULL, *cache_dir = NULL;
	int debug = 0, server = 0, threads = 1, max_fragments = 0, use_open = 0, i;
	uint64_t max_bytes = 0, cache_max = 0;
	char err[512];

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-d"))
			debug = 1;
		else if (!strcmp(argv[i], "--server"))
			server = 1;
		else if (!strcmp(argv[i], "--open"))
			use_open = 1;
		else if (i + 1 < argc && !strcmp(argv[i], "--cache-max"))
			cache_max = strtoull(argv[++i], NULL, 10);
		else if (i + 1 < argc && !strcmp(argv[i], "--region"))
			region = argv[++i];
		else if (i + 1 < argc && !strcmp(argv[i], "--endpoint"))
			endpoint = argv[++i];
		else if (i + 1 < argc && !strcmp(argv[i], "--cache"))
			cache_dir = argv[++i];
		else if (i + 1 < argc && !strcmp(argv[i], "--threads"))
			threads = atoi(argv[++i]);
		else if (i + 1 < argc && !strcmp(argv[i], "--max-fragments"))
			max_fragments = atoi(argv[++i]);
		else if (i + 1 < argc && !strcmp(argv[i], "--max-bytes"))
			max_bytes = strtoull(argv[++i], NULL, 10);
		else
			usage();
	}
	if (i >= argc || threads < 1 || threads > 64)
		usage();
	const char *mode = argv[i++];
	int64_t start = 0, end = 0;
	if (!strcmp(mode, "parse") && i + 1 == argc) {
		int rc = clips_parse(argv[i], &start, &end);
		if (rc) {
			fprintf(stderr, "error: %s: %s\n", argv[i], strerror(-rc));
			return -rc;
		}
		printf("%" PRId64 " %" PRId64 "\n", start, end);
		return 0;
	}
	if (strcmp(mode, "make") || i + 3 != argc)
		usage();
	const char *stream = argv[i], *name = argv[i + 1], *out_path = argv[i + 2];
	int rc = clips_parse(name, &start, &end);
	if (rc) {
		fprintf(stderr, "error: %s: %s\n", name, strerror(-rc));
		return -rc;
	}

	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct log_ctx lg;
	log_init(&lg, debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN, stderr);
	struct awsconfig_files files = { 0 };
	struct awsconfig_settings settings = { 0 };
	struct creds_provider *cp = NULL;
	struct http_client *http = NULL;
	struct kvs_client *kvs = NULL;
	struct fcache *fc = NULL;
	struct clips *c = NULL;
	char tmpdir[] = "/tmp/kvsfs-clips.XXXXXX";
	int made_tmp = 0;
	rc = EIO;

	if (awsconfig_files_load(&files, NULL, NULL, &lg, err, sizeof(err)) ||
	    awsconfig_resolve(&settings, &files, region, endpoint, NULL, NULL, err, sizeof(err))) {
		fprintf(stderr, "error: %s\n", err);
		rc = EINVAL;
		goto out;
	}
	struct creds_options co = { 0 };
	if (creds_provider_new(&cp, &co, &files, &lg, err, sizeof(err))) {
		fprintf(stderr, "error: %s\n", err);
		rc = EACCES;
		goto out;
	}
	struct http_client_opts ho;
	http_client_opts_init(&ho);
	ho.log = &lg;
	if (http_client_new(&ho, &http)) {
		fprintf(stderr, "error: http client set-up failed\n");
		goto out;
	}
	struct awsreq_ctx ctx = { .http = http, .creds = cp, .log = &lg };
	snprintf(ctx.region, sizeof(ctx.region), "%s", settings.region);
	struct kvs_client_opts ko = { .aws = &ctx, .control_endpoint = settings.kvs_endpoint };
	if (kvs_client_new(&ko, &kvs)) {
		fprintf(stderr, "error: kvs client set-up failed\n");
		goto out;
	}
	if (!cache_dir) {
		if (!mkdtemp(tmpdir)) {
			rc = errno;
			fprintf(stderr, "error: mkdtemp: %s\n", strerror(rc));
			goto out;
		}
		made_tmp = 1;
		cache_dir = tmpdir;
	}
	struct fcache_opts fo = { .dir = cache_dir, .log = &lg, .max_bytes = cache_max };
	int r = fcache_open(&fo, &fc, err, sizeof(err));
	if (r) {
		fprintf(stderr, "error: %s\n", err);
		rc = -r;
		goto out;
	}
	struct clips_opts cop = { .kvs = kvs, .cache = fc, .log = &lg,
				  .ts = server ? KVS_TS_SERVER : KVS_TS_PRODUCER,
				  .max_fragments = max_fragments, .max_bytes = max_bytes };
	r = clips_new(&cop, &c);
	if (r) {
		rc = -r;
		goto out;
	}

	struct job jobs[64];
	pthread_t tids[64];
	for (int t = 0; t < threads; t++) {
		jobs[t] = (struct job){ c, stream, name, start, end, 0, 0, use_open, -1, NULL };
		if (threads == 1)
			run_job(&jobs[t]);
		else
			pthread_create(&tids[t], NULL, run_job, &jobs[t]);
	}
	for (int t = 0; threads > 1 && t < threads; t++)
		pthread_join(tids[t], NULL);
	int agree = 1;
	for (int t = 0; t < threads; t++)
		if (jobs[t].rc != jobs[0].rc || jobs[t].size != jobs[0].size)
			agree = 0;
	for (int t = 1; t < threads; t++) {
		if (jobs[t].fd >= 0)
			close(jobs[t].fd);
		clips_unpin(c, jobs[t].pin);
	}
	if (!agree) {
		fprintf(stderr, "error: concurrent makes disagree\n");
		goto out;
	}
	if (jobs[0].rc) {
		rc = -jobs[0].rc;
		fprintf(stderr, "error: %s/%s: %s\n", stream, name, strerror(rc));
		goto out;
	}
	uint64_t size = 0, cached = 0;
	int fd = jobs[0].fd;
	struct fcache_pin *pin = jobs[0].pin;
	if (!use_open) {
		if (clips_cached_size(c, stream, name, &cached) || cached != jobs[0].size) {
			fprintf(stderr, "error: cached size disagrees\n");
			goto out;
		}
		r = clips_open(c, stream, name, &fd, &size, &pin);
		if (r) {
			rc = -r;
			fprintf(stderr, "error: open of the made clip: %s\n", strerror(rc));
			goto out;
		}
	} else {
		size = jobs[0].size;
	}
	r = copy_out(fd, out_path, size);
	close(fd);
	clips_unpin(c, pin);
	if (r) {
		rc = -r;
		fprintf(stderr, "error: %s: %s\n", out_path, strerror(rc));
		goto out;
	}
	printf("%" PRIu64 "\n", size);
	fflush(stdout);
	rc = 0;
out:
	clips_free(c);
	fcache_close(fc);
	if (made_tmp) {
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "warning: could not remove %s\n", tmpdir);
	}
	kvs_client_free(kvs);
	http_client_free(http);
	creds_provider_free(cp);
	awsconfig_settings_free(&settings);
	awsconfig_files_free(&files);
	log_destroy(&lg);
	curl_global_cleanup();
	return rc;
}
