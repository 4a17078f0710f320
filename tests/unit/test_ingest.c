/*
 * Unit tests of the ingest/ building blocks: media/mkvin (the Matroska input check) on files
 * built element by element, and the PutMedia ACK errno table of kvs/putmedia (docs/ERRORS.md
 * "PutMedia acknowledgements": the rows below are that table).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "check.h"
#include "kvsfs/mkvin.h"
#include "kvsfs/putmedia.h"

struct b {
	uint8_t d[4096];
	size_t n;
};

static void put(struct b *b, const void *p, size_t n)
{
	memcpy(b->d + b->n, p, n);
	b->n += n;
}

/* An element with a 4-byte ID field as given (1 to 4 bytes) and an 8-byte size. */
static void el(struct b *b, uint32_t id, const struct b *payload)
{
	uint8_t h[12];
	size_t k = 0;
	for (int s = 24; s >= 0; s -= 8)
		if ((id >> s) || k)
			h[k++] = (uint8_t)(id >> s);
	uint64_t n = payload ? payload->n : 0;
	h[k++] = 0x01;
	for (int s = 48; s >= 0; s -= 8)
		h[k++] = (uint8_t)(n >> s);
	put(b, h, k);
	if (payload)
		put(b, payload->d, payload->n);
}

static void uint_el(struct b *b, uint32_t id, uint64_t v)
{
	struct b p = { .n = 0 };
	for (int s = 56; s >= 0; s -= 8)
		p.d[p.n++] = (uint8_t)(v >> s);
	el(b, id, &p);
}

static void str_el(struct b *b, uint32_t id, const char *s)
{
	struct b p = { .n = 0 };
	put(&p, s, strlen(s));
	el(b, id, &p);
}

static void cluster(struct b *seg, uint64_t tc, int key)
{
	struct b c = { .n = 0 }, blk = { .n = 0 };
	uint_el(&c, 0xE7, tc);
	uint8_t sb[] = { 0x81, 0x00, 0x00, (uint8_t)(key ? 0x80 : 0x00), 0xAA, 0xBB };
	put(&blk, sb, sizeof(sb));
	el(&c, 0xA3, &blk);
	el(seg, 0x1F43B675, &c);
}

/* EBML header + Segment (known size) with Info, Tracks (one video track), optional KVS tags
 * and the given clusters. */
static void file(struct b *out, const uint64_t *tcs, const int *keys, size_t n, const char *ts)
{
	struct b hdr = { .n = 0 }, seg = { .n = 0 }, info = { .n = 0 }, tracks = { .n = 0 },
		 te = { .n = 0 };
	str_el(&hdr, 0x4282, "matroska");
	el(out, 0x1A45DFA3, &hdr);
	uint_el(&info, 0x2AD7B1, 1000000);
	el(&seg, 0x1549A966, &info);
	uint_el(&te, 0xD7, 1);
	uint_el(&te, 0x83, 1);
	el(&tracks, 0xAE, &te);
	el(&seg, 0x1654AE6B, &tracks);
	if (ts) {
		struct b tags = { .n = 0 }, tag = { .n = 0 }, st = { .n = 0 };
		str_el(&st, 0x45A3, "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP");
		str_el(&st, 0x4487, ts);
		el(&tag, 0x67C8, &st);
		el(&tags, 0x7373, &tag);
		el(&seg, 0x1254C367, &tags);
	}
	for (size_t i = 0; i < n; i++)
		cluster(&seg, tcs[i], keys[i]);
	el(out, 0x18538067, &seg);
}

static ssize_t rd(void *arg, void *dst, size_t len, uint64_t off)
{
	const struct b *b = arg;
	size_t k = b->n - off < len ? b->n - (size_t)off : len;
	memcpy(dst, b->d + off, k);
	return (ssize_t)k;
}

static int scan(const struct b *b, struct mkvin_info *in, const char **why, int64_t *bad)
{
	return mkvin_scan(rd, (void *)b, b->n, in, why, bad);
}

static void test_mkvin(void)
{
	struct mkvin_info in;
	const char *why;
	int64_t bad;
	struct b f = { .n = 0 };
	uint64_t tcs[] = { 0, 2000, 4000 };
	int keys[] = { 1, 1, 1 };
	file(&f, tcs, keys, 3, NULL);
	CHECK_INT(scan(&f, &in, &why, &bad), 0, "keyframe-aligned clusters are accepted");
	CHECK_INT(in.clusters, 3, "three clusters");
	CHECK(!in.absolute && in.first_ms == 0 && in.last_ms == 4000, "relative times");
	CHECK(in.video_track == 1 && in.tracks == 1, "the video track");

	int mid[] = { 1, 0, 1 };
	struct b g = { .n = 0 };
	file(&g, tcs, mid, 3, NULL);
	CHECK_INT(scan(&g, &in, &why, &bad), -EINVAL, "a cluster starting mid-GOP is refused");
	CHECK(why && strstr(why, "keyframe") && bad == 2000, "the reason names the keyframe rule");

	uint64_t abs_tcs[] = { 1796311204017ull, 1796311206017ull };
	struct b h = { .n = 0 };
	file(&h, abs_tcs, keys, 2, NULL);
	CHECK(scan(&h, &in, &why, &bad) == 0 && in.absolute && in.first_ms == 1796311204017,
	      "epoch cluster times are absolute");

	struct b k = { .n = 0 };
	file(&k, tcs, keys, 1, "1796311204.017");
	CHECK(scan(&k, &in, &why, &bad) == 0 && in.has_producer_ts &&
	      in.producer_ts_ms == 1796311204017, "KVS's producer timestamp tag is read");
	CHECK(in.n_skip == 1 && in.skip[0].len > 0 && in.skip[0].off < k.n,
	      "KVS's Tags element is left out of the body");

	struct b two = { .n = 0 };
	file(&two, tcs, keys, 1, NULL);
	size_t one = two.n;
	put(&two, two.d, one);
	CHECK_INT(scan(&two, &in, &why, &bad), -EINVAL, "two Segments are refused");

	struct b cut = f;
	cut.n -= 3;
	CHECK_INT(scan(&cut, &in, &why, &bad), -EINVAL, "a truncated file is refused");
	static const char txt[] = "hello, not video";
	CHECK(!mkvin_sniff(txt, 4) && mkvin_sniff(f.d, 2) && mkvin_sniff(f.d, 4),
	      "the sniff tells EBML from text after a few bytes");
}

static void test_ack_errnos(void)
{
	static const struct { int id, err; } rows[] = {
		{ 4001, EFBIG }, { 4002, EFBIG }, { 4009, EFBIG }, { 4003, ETIMEDOUT },
		{ 4004, EINVAL }, { 4005, EINVAL }, { 4006, EINVAL }, { 4007, EINVAL },
		{ 4010, EINVAL }, { 4011, EINVAL }, { 4012, EINVAL }, { 4008, ENOENT },
		{ 4507, ENOENT }, { 4500, EACCES }, { 4506, EACCES }, { 4000, EIO }, { 5000, EIO },
		{ 5001, EIO }, { 4242, EIO },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		CHECK_INT(kvs_put_ack_errno(rows[i].id), rows[i].err, "ACK ErrorId %d", rows[i].id);
}

int main(void)
{
	test_mkvin();
	test_ack_errnos();
	return check_done();
}
