/*
 * Unit tests of clips: name rules, GetClip planning, and the cache-only functions (cached size,
 * open, list, make of a clip already cached) with a temporary fcache and a KVS client that is
 * never called.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "kvsfs/awsreq.h"
#include "kvsfs/clips.h"
#include "kvsfs/fcache.h"
#include "kvsfs/kvs.h"

#define T0 1714564800000LL /* 2024-05-01T12:00:00Z */

static void test_parse(void)
{
	int64_t a = -1, b = -1;
	CHECK_INT(clips_parse("20240501T120000Z-20240501T120500Z.mp4", &a, &b), 0, "plain name");
	CHECK_INT(a, T0, "start");
	CHECK_INT(b, T0 + 300000, "end");
	CHECK_INT(clips_parse("20240501T120000.250Z-20240501T120500.999Z.mp4", &a, &b), 0, "ms name");
	CHECK_INT(a, T0 + 250, "start ms");
	CHECK_INT(b, T0 + 300999, "end ms");
	CHECK_INT(clips_parse("20240501T120000Z-20240501T120000Z.mp4", &a, &b), 0, "empty span ok");
	CHECK_INT(clips_parse("20240501T120000Z-20240502T120000Z.mp4", &a, &b), 0, "exactly 24 h ok");
	CHECK_INT(clips_parse("20240501T120000Z-20240502T120000.001Z.mp4", &a, &b), -EFBIG,
		  "24 h + 1 ms is EFBIG");
	CHECK_INT(clips_parse("20240501T120500Z-20240501T120000Z.mp4", &a, &b), -EINVAL,
		  "END before START is EINVAL");
	static const char *bad[] = {
		"", "x.mp4", "20240501T120000Z-20240501T120500Z", "20240501T120000Z-20240501T120500Z.mkv",
		"20240501T120000Z-20240501T120500Z.mp4.part", "20240501T120000Z_20240501T120500Z.mp4",
		"20240501T120000-20240501T120500Z.mp4", "20240501T120000Z-20240501T120500.5Z.mp4",
		"20240532T120000Z-20240601T120500Z.mp4", "20240501T250000Z-20240501T120500Z.mp4",
		" 20240501T120000Z-20240501T120500Z.mp4", "20240501t120000z-20240501t120500z.mp4",
		"20240501T120000Z-20240501T120500Z-.mp4", "-20240501T120500Z.mp4",
		"20240501T120000Z--20240501T120500Z.mp4",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_INT(clips_parse(bad[i], &a, &b), -ENOENT, "malformed '%s' is ENOENT", bad[i]);
	CHECK_INT(clips_parse(NULL, &a, &b), -ENOENT, "NULL name");
}

static struct kvs_fragment frag(int64_t ms, int64_t size)
{
	struct kvs_fragment f;
	memset(&f, 0, sizeof(f));
	snprintf(f.number, sizeof(f.number), "%lld", (long long)ms);
	f.producer_ms = ms;
	f.server_ms = ms + 500;
	f.duration_ms = 2000;
	f.size = size;
	return f;
}

static void test_plan(void)
{
	struct clips_group *g = NULL;
	size_t ng = 99;
	CHECK_INT(clips_plan(NULL, 0, KVS_TS_PRODUCER, 0, 0, &g, &ng), 0, "empty list");
	CHECK_INT(ng, 0, "no group");
	free(g);

	/* 450 fragments of 100 kB: 200 + 200 + 50 */
	size_t n = 450;
	struct kvs_fragment *v = calloc(n, sizeof(*v));
	for (size_t i = 0; i < n; i++)
		v[i] = frag(T0 + (int64_t)i * 2000, 100000);
	CHECK_INT(clips_plan(v, n, KVS_TS_PRODUCER, 0, 0, &g, &ng), 0, "450 fragments");
	CHECK_INT(ng, 3, "3 groups by count");
	if (ng == 3) {
		CHECK_INT(g[0].first, 0, "g0 first");
		CHECK_INT(g[0].count, 200, "g0 count");
		CHECK_INT(g[1].first, 200, "g1 first");
		CHECK_INT(g[1].count, 200, "g1 count");
		CHECK_INT(g[2].first, 400, "g2 first");
		CHECK_INT(g[2].count, 50, "g2 count");
		CHECK_INT(g[0].start_ms, T0, "g0 start");
		CHECK_INT(g[0].end_ms, T0 + 199 * 2000, "g0 end = last start");
		CHECK_INT(g[2].end_ms, T0 + 449 * 2000, "g2 end");
		CHECK_INT(g[1].bytes, 200 * 100000ULL, "g1 bytes");
	}
	free(g);

	/* server basis uses server timestamps */
	CHECK_INT(clips_plan(v, 3, KVS_TS_SERVER, 0, 0, &g, &ng), 0, "server basis");
	CHECK_INT(ng, 1, "one group");
	if (ng == 1) {
		CHECK_INT(g[0].start_ms, T0 + 500, "server start");
		CHECK_INT(g[0].end_ms, T0 + 4500, "server end");
	}
	free(g);

	/* bytes: 1 MB fragments, 90 MiB limit -> 94 per group */
	for (size_t i = 0; i < n; i++)
		v[i].size = 1000000;
	CHECK_INT(clips_plan(v, 200, KVS_TS_PRODUCER, 0, 0, &g, &ng), 0, "200 x 1 MB");
	CHECK_INT(ng, 3, "3 groups by bytes");
	if (ng == 3) {
		CHECK_INT(g[0].count, 94, "94 fit in 90 MiB");
		CHECK_INT(g[1].count, 94, "94 again");
		CHECK_INT(g[2].count, 12, "rest");
		CHECK(g[0].bytes <= (90ULL << 20), "within the byte bound");
	}
	free(g);

	/* explicit small limits; a fragment larger than max_bytes goes alone */
	v[0].size = 50; v[1].size = 50; v[2].size = 500; v[3].size = 10; v[4].size = 10;
	CHECK_INT(clips_plan(v, 5, KVS_TS_PRODUCER, 10, 100, &g, &ng), 0, "small limits");
	CHECK_INT(ng, 3, "3 groups");
	if (ng == 3) {
		CHECK_INT(g[0].count, 2, "50+50");
		CHECK_INT(g[1].count, 1, "oversized alone");
		CHECK_INT(g[2].count, 2, "10+10");
	}
	free(g);
	CHECK_INT(clips_plan(v, 5, KVS_TS_PRODUCER, 1, 0, &g, &ng), 0, "max 1 fragment");
	CHECK_INT(ng, 5, "one group each");
	free(g);

	/* unknown sizes (-1) count as 0 */
	for (size_t i = 0; i < 5; i++)
		v[i].size = -1;
	CHECK_INT(clips_plan(v, 5, KVS_TS_PRODUCER, 2, 1, &g, &ng), 0, "unknown sizes");
	CHECK_INT(ng, 3, "by count only");
	free(g);

	/* fragments sharing a start are never split */
	for (size_t i = 0; i < 6; i++)
		v[i] = frag(T0 + (int64_t)(i / 2) * 2000, 10); /* pairs: 0 0 1 1 2 2 */
	CHECK_INT(clips_plan(v, 6, KVS_TS_PRODUCER, 3, 0, &g, &ng), 0, "duplicate starts");
	CHECK_INT(ng, 3, "pairs kept together");
	if (ng == 3)
		CHECK(g[0].count == 2 && g[1].count == 2 && g[2].count == 2, "2+2+2");
	free(g);
	CHECK_INT(clips_plan(v, 6, KVS_TS_PRODUCER, 1, 0, &g, &ng), -E2BIG,
		  "more fragments on one start than a GetClip takes");
	free(v);
}

static int count_fn(void *arg, const char *name, uint64_t size)
{
	int *n = arg;
	(*n)++;
	printf("# listed %s (%llu bytes)\n", name, (unsigned long long)size);
	return 0;
}

static int put(struct fcache *fc, const char *key, const char *data)
{
	struct fcache_writer *w = NULL;
	int rc = fcache_begin(fc, key, &w);
	if (rc)
		return rc;
	fcache_write(w, data, strlen(data));
	return fcache_commit(w, NULL);
}

static void test_cache_side(void)
{
	char dir[] = "/tmp/test_clips.XXXXXX";
	if (!mkdtemp(dir)) {
		CHECK(0, "mkdtemp");
		return;
	}
	struct fcache *fc = NULL;
	char err[256];
	struct fcache_opts fo = { .dir = dir };
	CHECK_INT(fcache_open(&fo, &fc, err, sizeof(err)), 0, "fcache_open");
	if (!fc)
		return;
	/* a leftover part from a "crash" */
	CHECK_INT(put(fc, "cliptmp/1/0", "junk"), 0, "leftover part");
	put(fc, "clip/cam1/20240501T120000Z-20240501T120500Z.mp4", "0123456789");
	put(fc, "clip/cam1/20240501T130000Z-20240501T130500Z.mp4", "01234");
	put(fc, "clip/cam10/20240501T120000Z-20240501T120500Z.mp4", "x");
	put(fc, "frag/cam1/123", "y");

	struct awsreq_ctx aws = { 0 };
	struct kvs_client_opts ko = { .aws = &aws, .control_endpoint = "http://127.0.0.1:9" };
	struct kvs_client *kvs = NULL;
	CHECK_INT(kvs_client_new(&ko, &kvs), 0, "kvs client");
	struct clips *c = NULL;
	struct clips_opts co = { .cache = fc };
	CHECK_INT(clips_new(&co, &c), -EINVAL, "no kvs client");
	co.kvs = kvs;
	CHECK_INT(clips_new(&co, &c), 0, "clips_new");
	CHECK(!fcache_contains(fc, "cliptmp/1/0", NULL), "leftover part removed");

	uint64_t size = 0;
	const char *n1 = "20240501T120000Z-20240501T120500Z.mp4";
	CHECK_INT(clips_cached_size(c, "cam1", n1, &size), 0, "cached size");
	CHECK_INT(size, 10, "size 10");
	CHECK_INT(clips_cached_size(c, "cam2", n1, &size), -ENOENT, "other stream");
	CHECK_INT(clips_cached_size(c, "cam1", "20240501T140000Z-20240501T140500Z.mp4", &size),
		  -ENOENT, "not made");
	CHECK_INT(clips_cached_size(c, "a/b", n1, &size), -ENOENT, "slash in stream");

	int fd = -1;
	struct fcache_pin *pin = NULL;
	CHECK_INT(clips_open(c, "cam1", n1, &fd, &size, &pin), 0, "open");
	char buf[16] = { 0 };
	CHECK_INT(pread(fd, buf, sizeof(buf), 0), 10, "read");
	CHECK_STR(buf, "0123456789", "bytes");
	close(fd);
	clips_unpin(c, pin);
	CHECK_INT(clips_open(c, "cam1", "20240501T140000Z-20240501T140500Z.mp4", &fd, &size, &pin),
		  -ENOENT, "open of a clip not made");

	int n = 0;
	CHECK_INT(clips_list(c, "cam1", count_fn, &n), 0, "list");
	CHECK_INT(n, 2, "two clips of cam1 (not cam10's, not fragments)");

	/* make of a cached clip never touches the network */
	size = 0;
	CHECK_INT(clips_make(c, "cam1", n1, T0, T0 + 300000, &size), 0, "make cached");
	CHECK_INT(size, 10, "make size");
	CHECK_INT(clips_make(c, "cam1", n1, T0 + 1, T0, &size), -EINVAL, "reversed range checked first");
	CHECK_INT(clips_make(c, "cam1", "20240501T140000Z-20240501T140500Z.mp4", T0 + 1, T0, &size),
		  -EINVAL, "reversed range");

	clips_free(c);
	kvs_client_free(kvs);
	fcache_close(fc);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK_INT(system(cmd), 0, "cleanup");
}

int main(void)
{
	test_parse();
	test_plan();
	test_cache_side();
	clips_free(NULL);
	return check_done();
}
