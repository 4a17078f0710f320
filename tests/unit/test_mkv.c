/*
 * Unit tests for the mkv reader: every real KVS capture in $KVSFS_SHARED/testdata/kvs-real (with
 * the expectations of its README), the same files fed in many chunk sizes, and hand-built MKV
 * streams for the edge cases (unknown sizes, error fragments, junk, truncation, size limits).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kvsfs/log.h"
#include "kvsfs/mkv.h"

static struct log_ctx lg;

/* ---------- file helpers ---------- */

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *d = malloc(n > 0 ? (size_t)n : 1);
	if (d && fread(d, 1, (size_t)n, f) != (size_t)n) {
		free(d);
		d = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return d;
}

static const char *shared_dir(void)
{
	const char *s = getenv("KVSFS_SHARED");
	return s && *s ? s : "../shared";
}

/* ---------- a tiny EBML writer for synthetic streams ---------- */

struct eb {
	uint8_t *d;
	size_t n, cap;
};

static void eb_put(struct eb *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->n + n)
			cap *= 2;
		b->d = realloc(b->d, cap);
		if (!b->d)
			abort();
		b->cap = cap;
	}
	memcpy(b->d + b->n, p, n);
	b->n += n;
}

static void eb_byte(struct eb *b, uint8_t c)
{
	eb_put(b, &c, 1);
}

static void eb_id(struct eb *b, uint32_t id)
{
	int len = id > 0xFFFFFF ? 4 : id > 0xFFFF ? 3 : id > 0xFF ? 2 : 1;
	for (int i = len - 1; i >= 0; i--)
		eb_byte(b, (uint8_t)(id >> (8 * i)));
}

/* width 0: minimal. */
static void eb_size(struct eb *b, uint64_t size, int width)
{
	if (!width) {
		width = 1;
		while (width < 8 && size >= (1ull << (7 * width)) - 1)
			width++;
	}
	uint64_t v = size | (1ull << (7 * width));
	for (int i = width - 1; i >= 0; i--)
		eb_byte(b, (uint8_t)(v >> (8 * i)));
}

static void eb_unknown(struct eb *b, int width)
{
	eb_byte(b, (uint8_t)(0xFF >> (width - 1)));
	for (int i = 1; i < width; i++)
		eb_byte(b, 0xFF);
	if (width == 1)
		return;
	b->d[b->n - (size_t)width] = (uint8_t)(0x01 << (8 - width)) | (uint8_t)((1 << (8 - width)) - 1);
}

static void eb_el(struct eb *b, uint32_t id, const void *p, size_t n)
{
	eb_id(b, id);
	eb_size(b, n, 0);
	eb_put(b, p, n);
}

static void eb_master(struct eb *b, uint32_t id, struct eb *child)
{
	eb_el(b, id, child->d, child->n);
	free(child->d);
	memset(child, 0, sizeof(*child));
}

static void eb_uint(struct eb *b, uint32_t id, uint64_t v)
{
	uint8_t t[8];
	int n = 1;
	while (n < 8 && (v >> (8 * n)))
		n++;
	for (int i = 0; i < n; i++)
		t[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	eb_el(b, id, t, (size_t)n);
}

static void eb_str(struct eb *b, uint32_t id, const char *s)
{
	eb_el(b, id, s, strlen(s));
}

static void w_ebml(struct eb *b)
{
	struct eb c = { 0 };
	eb_uint(&c, 0x4286, 1);
	eb_uint(&c, 0x42F7, 1);
	eb_uint(&c, 0x42F2, 4);
	eb_uint(&c, 0x42F3, 8);
	eb_el(&c, 0x4282, "matroska\0", 9);
	eb_uint(&c, 0x4287, 2);
	eb_uint(&c, 0x4285, 2);
	eb_master(b, 0x1A45DFA3, &c);
}

static void w_segment_unknown(struct eb *b, int width)
{
	eb_id(b, 0x18538067);
	eb_unknown(b, width);
}

/* Tags with one Tag holding n name/value pairs. */
static void w_tags(struct eb *b, int n, const char *const *pairs)
{
	struct eb tag = { 0 }, tags = { 0 };
	for (int i = 0; i < n; i++) {
		struct eb st = { 0 };
		eb_str(&st, 0x45A3, pairs[2 * i]);
		eb_str(&st, 0x4487, pairs[2 * i + 1]);
		eb_master(&tag, 0x67C8, &st);
	}
	eb_master(&tags, 0x7373, &tag);
	eb_master(b, 0x1254C367, &tags);
}

static void w_tracks(struct eb *b, const char *codec, size_t codec_len)
{
	struct eb te = { 0 }, video = { 0 }, tracks = { 0 };
	eb_uint(&te, 0xD7, 1);
	eb_uint(&te, 0x73C5, 1234);
	eb_uint(&te, 0x83, 1);
	eb_el(&te, 0x86, codec, codec_len);
	eb_el(&te, 0x63A2, "0123456789", 10);
	eb_uint(&video, 0xB0, 320);
	eb_uint(&video, 0xBA, 240);
	eb_master(&te, 0xE0, &video);
	eb_master(&tracks, 0xAE, &te);
	/* an audio track too */
	struct eb audio = { 0 };
	eb_uint(&te, 0xD7, 2);
	eb_uint(&te, 0x83, 2);
	eb_str(&te, 0x86, "A_AAC");
	eb_el(&audio, 0xB5, "\x40\xe5\x88\x80\x00\x00\x00\x00", 8); /* 44100.0 as double */
	eb_uint(&audio, 0x9F, 2);
	eb_master(&te, 0xE1, &audio);
	eb_master(&tracks, 0xAE, &te);
	eb_master(b, 0x1654AE6B, &tracks);
}

static void w_simple_block(struct eb *b, unsigned track, int16_t tc, int key, size_t payload)
{
	struct eb sb = { 0 };
	eb_byte(&sb, (uint8_t)(0x80 | track));
	eb_byte(&sb, (uint8_t)((uint16_t)tc >> 8));
	eb_byte(&sb, (uint8_t)tc);
	eb_byte(&sb, key ? 0x80 : 0x00);
	for (size_t i = 0; i < payload; i++)
		eb_byte(&sb, (uint8_t)(i * 7));
	eb_master(b, 0xA3, &sb);
}

/* ---------- comparing runs ---------- */

static int same_fragment(const struct mkv_fragment *a, const struct mkv_fragment *b)
{
	if (a->index != b->index || a->offset != b->offset || a->length != b->length ||
	    a->flags != b->flags || strcmp(a->fragment_number, b->fragment_number) ||
	    a->server_timestamp_ms != b->server_timestamp_ms ||
	    a->producer_timestamp_ms != b->producer_timestamp_ms ||
	    a->cluster_timecode != b->cluster_timecode || a->clusters != b->clusters ||
	    a->unsized_clusters != b->unsized_clusters ||
	    a->blocks != b->blocks || a->duration_ms != b->duration_ms ||
	    a->ntracks != b->ntracks || a->ntags != b->ntags || strcmp(a->problem, b->problem) ||
	    strcmp(a->doc_type, b->doc_type) || a->timecode_scale != b->timecode_scale)
		return 0;
	for (size_t i = 0; i < a->ntracks; i++)
		if (memcmp(&a->tracks[i], &b->tracks[i], sizeof(a->tracks[i])))
			return 0;
	for (size_t i = 0; i < a->ntags; i++)
		if (strcmp(a->tags[i].name, b->tags[i].name) ||
		    strcmp(a->tags[i].value, b->tags[i].value) || a->tags[i].kind != b->tags[i].kind)
			return 0;
	return 1;
}

struct stream_run {
	struct mkv_fragment *v;
	size_t n, cap;
	uint64_t last_safe;
	int order_bad; /* a fragment_start before the last safe offset, or events out of order */
	unsigned starts, tag_events, track_events, cluster_events;
	int in_fragment;
};

static int sr_start(void *opaque, unsigned index, uint64_t offset)
{
	struct stream_run *s = opaque;
	if (offset < s->last_safe || index != s->starts || s->in_fragment)
		s->order_bad = 1;
	s->starts++;
	s->in_fragment = 1;
	return 0;
}

static int sr_end(void *opaque, const struct mkv_fragment *f)
{
	struct stream_run *s = opaque;
	if (!s->in_fragment)
		s->order_bad = 1;
	s->in_fragment = 0;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 8;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
	}
	return mkv_fragment_copy(&s->v[s->n++], f);
}

static int sr_tag(void *opaque, unsigned index, const struct mkv_tag *t)
{
	struct stream_run *s = opaque;
	(void)t;
	if (index + 1 != s->starts)
		s->order_bad = 1;
	s->tag_events++;
	return 0;
}

static int sr_track(void *opaque, unsigned index, const struct mkv_track *t)
{
	struct stream_run *s = opaque;
	(void)t;
	if (index + 1 != s->starts)
		s->order_bad = 1;
	s->track_events++;
	return 0;
}

static int sr_cluster(void *opaque, unsigned index, uint64_t offset, int has_tc, uint64_t tc)
{
	struct stream_run *s = opaque;
	(void)offset;
	(void)has_tc;
	(void)tc;
	if (index + 1 != s->starts)
		s->order_bad = 1;
	s->cluster_events++;
	return 0;
}

static uint32_t lcg(uint32_t *state)
{
	*state = *state * 1103515245u + 12345u;
	return *state >> 8;
}

/* Streams data in chunks (chunk 0: random sizes) and compares against the one-shot result. */
static int stream_matches(const char *what, const uint8_t *d, size_t len, size_t chunk,
			  const struct mkv_fragment *ref, size_t nref)
{
	struct stream_run s = { 0 };
	struct mkv_callbacks cb = { .opaque = &s, .fragment_start = sr_start, .fragment_end = sr_end,
				    .tag = sr_tag, .track = sr_track, .cluster = sr_cluster };
	struct mkv_reader *r = mkv_reader_new(&cb, NULL);
	uint32_t seed = (uint32_t)len;
	int ok = 1;
	for (size_t off = 0; off < len;) {
		size_t n = chunk ? chunk : 1 + lcg(&seed) % (lcg(&seed) % 2 ? 9000 : 17);
		if (n > len - off)
			n = len - off;
		if (mkv_reader_push(r, d + off, n))
			ok = 0;
		off += n;
		uint64_t safe = mkv_reader_safe_offset(r);
		if (mkv_reader_offset(r) != off || safe > off || off - safe > MKV_PENDING_MAX)
			ok = 0;
		s.last_safe = safe;
	}
	if (mkv_reader_finish(r))
		ok = 0;
	mkv_reader_free(r);
	if (s.order_bad || s.n != nref)
		ok = 0;
	for (size_t i = 0; ok && i < nref; i++)
		if (!same_fragment(&s.v[i], &ref[i])) {
			printf("# %s chunk %zu: fragment %zu differs\n", what, chunk, i);
			ok = 0;
		}
	mkv_fragments_free(s.v, s.n);
	return ok;
}

/* ---------- real captures ---------- */

struct expect {
	const char *file;
	size_t fragments;
};

static const struct mkv_fragment *parse_file(const char *name, uint8_t **data, size_t *len,
					     struct mkv_fragment **frags, size_t *n)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/testdata/kvs-real/%s", shared_dir(), name);
	*data = read_file(path, len);
	*frags = NULL;
	*n = 0;
	if (!*data) {
		CHECK(0, "read %s", path);
		return NULL;
	}
	int rc = mkv_parse_buffer(*data, *len, &lg, frags, n);
	CHECK_INT(rc, 0, "%s: parse", name);
	return *frags;
}

static void check_partition(const char *name, size_t len, const struct mkv_fragment *f, size_t n)
{
	uint64_t sum = 0, next = 0;
	int contiguous = 1;
	for (size_t i = 0; i < n; i++) {
		if (f[i].offset != next || f[i].index != i)
			contiguous = 0;
		next = f[i].offset + f[i].length;
		sum += f[i].length;
	}
	CHECK(contiguous, "%s: fragments are contiguous from offset 0", name);
	CHECK_INT(sum, len, "%s: fragment lengths sum to the file size", name);
}

static void check_starts_with_ebml(const char *name, const uint8_t *d, const struct mkv_fragment *f,
				   size_t n)
{
	int ok = 1;
	for (size_t i = 0; i < n; i++)
		if (memcmp(d + f[i].offset, "\x1a\x45\xdf\xa3", 4) != 0)
			ok = 0;
	CHECK(ok, "%s: every fragment starts with an EBML header", name);
}

static void check_chunked(const char *name, const uint8_t *d, size_t len,
			  const struct mkv_fragment *f, size_t n)
{
	static const size_t chunks[] = { 1, 7, 4096, 0 };
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		if (chunks[i] == 1 && len > 600000)
			continue; /* byte-at-a-time is covered by the smaller captures */
		CHECK(stream_matches(name, d, len, chunks[i], f, n),
		      "%s: streaming in chunks of %zu gives the same fragments", name, chunks[i]);
	}
}

static const struct mkv_track *video(const struct mkv_fragment *f)
{
	for (size_t i = 0; i < f->ntracks; i++)
		if (f->tracks[i].type == MKV_TRACK_VIDEO)
			return &f->tracks[i];
	return NULL;
}

static void test_output_get_media(void)
{
	const char *name = "output_get_media.mkv";
	uint8_t *d;
	size_t len, n;
	struct mkv_fragment *f;
	if (!parse_file(name, &d, &len, &f, &n))
		return;
	CHECK_INT(n, 5, "%s: 5 fragments", name);
	check_partition(name, len, f, n);
	check_starts_with_ebml(name, d, f, n);
	if (n == 5) {
		CHECK_STR(f[0].fragment_number, "91343852333181432392682062607743920146159169392",
			  "%s: fragment number", name);
		CHECK_INT(f[0].server_timestamp_ms, 1511852109126, "%s: server timestamp", name);
		CHECK_INT(f[0].producer_timestamp_ms, 1511852108513, "%s: producer timestamp", name);
		CHECK_INT(f[0].millis_behind_now, 15858, "%s: millis behind now", name);
		CHECK_STR(f[0].continuation_token, f[0].fragment_number, "%s: continuation token", name);
		int ok = 1;
		for (size_t i = 0; i < n; i++) {
			const struct mkv_track *v = video(&f[i]);
			if (!(f[i].flags & MKV_FRAG_COMPLETE) || f[i].flags & ~MKV_FRAG_COMPLETE ||
			    !f[i].has_cluster_timecode || f[i].cluster_timecode != 2000 * i ||
			    f[i].producer_timestamp_ms != 1511852108513 + 2000 * (int64_t)i ||
			    f[i].clusters != 1 || f[i].unsized_clusters != 0 || f[i].ntracks != 1 ||
			    !v || v->width != 640 ||
			    v->height != 360 || strcmp(v->codec_id, "V_MPEG4/ISO/AVC") ||
			    v->blocks != 60 || v->keyframes != 1 || f[i].duration_ms != 2000 ||
			    strcmp(f[i].doc_type, "matroska") || f[i].timecode_scale != 1000000 ||
			    v->codec_private_size == 0)
				ok = 0;
		}
		CHECK(ok, "%s: complete, timecodes 0..8000, 640x360 H.264, 60 blocks, 1 key, 2 s", name);
	}
	check_chunked(name, d, len, f, n);
	mkv_fragments_free(f, n);
	free(d);
}

static void test_sparse(void)
{
	const char *name = "output_get_media_sparse_fragments.mkv";
	uint8_t *d;
	size_t len, n;
	struct mkv_fragment *f;
	if (!parse_file(name, &d, &len, &f, &n))
		return;
	CHECK_INT(n, 3, "%s: 3 fragments", name);
	check_partition(name, len, f, n);
	if (n == 3) {
		CHECK_STR(f[0].fragment_number, "91343852333181432392682062607743920146159169392",
			  "%s: 1st is fragment 1", name);
		CHECK_STR(f[1].fragment_number, "91343852333181432402585582922026963247510532162",
			  "%s: 2nd is fragment 3", name);
		CHECK(f[0].cluster_timecode == 0 && f[1].cluster_timecode == 4000 &&
		      f[2].cluster_timecode == 8000, "%s: cluster timecodes 0, 4000, 8000", name);
		CHECK(f[2].producer_timestamp_ms == 1511852116513 &&
		      (f[0].flags & f[1].flags & f[2].flags & MKV_FRAG_COMPLETE),
		      "%s: all complete, producer timestamps kept", name);
	}
	check_chunked(name, d, len, f, n);
	mkv_fragments_free(f, n);
	free(d);
}

static void test_merged(void)
{
	const char *name = "output_get_media_sparse_fragments_merged.mkv";
	uint8_t *d;
	size_t len, n;
	struct mkv_fragment *f;
	if (!parse_file(name, &d, &len, &f, &n))
		return;
	CHECK_INT(n, 1, "%s: one document", name);
	check_partition(name, len, f, n);
	if (n == 1) {
		const struct mkv_track *v = video(&f[0]);
		CHECK(f[0].clusters == 3 && v && v->blocks == 180 && v->keyframes == 3 &&
		      (f[0].flags & MKV_FRAG_COMPLETE), "%s: 3 clusters, 180 blocks, 3 keys", name);
		CHECK_INT(f[0].duration_ms, 6000, "%s: 6 s", name);
	}
	check_chunked(name, d, len, f, n);
	mkv_fragments_free(f, n);
	free(d);
}

static void test_non_increasing(void)
{
	const char *name = "output-get-media-non-increasing-timecode.mkv";
	uint8_t *d;
	size_t len, n;
	struct mkv_fragment *f;
	if (!parse_file(name, &d, &len, &f, &n))
		return;
	CHECK_INT(n, 12, "%s: 12 fragments", name);
	check_partition(name, len, f, n);
	check_starts_with_ebml(name, d, f, n);
	if (n == 12) {
		static const uint64_t tc[] = { 10014, 0, 1001, 2003 };
		int ok = 1;
		for (size_t i = 0; i < 4; i++)
			if (f[i].cluster_timecode != tc[i])
				ok = 0;
		CHECK(ok, "%s: cluster timecodes 10014, 0, 1001, 2003 (backwards)", name);
		CHECK_STR(f[0].fragment_number, "91343852338381293673923423239754896920603583280",
			  "%s: first fragment number", name);
		CHECK_INT(f[0].server_timestamp_ms, 1517789296298, "%s: server timestamp", name);
		ok = 1;
		for (size_t i = 0; i < 11; i++) {
			const struct mkv_track *v = video(&f[i]);
			if (!(f[i].flags & MKV_FRAG_COMPLETE) || (f[i].flags & MKV_FRAG_TRUNCATED) ||
			    !v || v->width != 960 || v->height != 720 || v->blocks != 30)
				ok = 0;
		}
		CHECK(ok, "%s: fragments 1-11 complete, 960x720, 30 blocks", name);
		CHECK(f[11].flags & MKV_FRAG_TRUNCATED, "%s: last fragment flagged truncated", name);
		CHECK(!(f[11].flags & MKV_FRAG_COMPLETE), "%s: last fragment not complete", name);
		CHECK(f[11].ntracks && f[11].tracks[0].blocks < 30, "%s: last has fewer blocks", name);
	}
	check_chunked(name, d, len, f, n);
	mkv_fragments_free(f, n);
	free(d);
}

static void test_equal_timecode(void)
{
	const char *name = "output-get-media-equal-timecode.mkv";
	uint8_t *d;
	size_t len, n;
	struct mkv_fragment *f;
	if (!parse_file(name, &d, &len, &f, &n))
		return;
	CHECK_INT(n, 2, "%s: 2 fragments", name);
	check_partition(name, len, f, n);
	if (n == 2) {
		CHECK(f[0].has_cluster_timecode && f[1].has_cluster_timecode &&
		      f[0].cluster_timecode == 0 && f[1].cluster_timecode == 0,
		      "%s: both cluster timecodes 0", name);
		CHECK((f[0].flags & MKV_FRAG_COMPLETE) && !(f[0].flags & MKV_FRAG_TRUNCATED),
		      "%s: 1st complete", name);
		CHECK((f[1].flags & MKV_FRAG_TRUNCATED) && !(f[1].flags & MKV_FRAG_COMPLETE),
		      "%s: 2nd cluster flagged truncated", name);
		CHECK(strstr(f[1].problem, "4660 bytes") != NULL, "%s: cut short by 4660 bytes (%s)",
		      name, f[1].problem);
		const struct mkv_track *v = video(&f[0]);
		CHECK(v && v->width == 1280 && v->height == 674 && v->blocks == 120,
		      "%s: 1280x674, 120 frames", name);
	}
	check_chunked(name, d, len, f, n);
	mkv_fragments_free(f, n);
	free(d);
}

static void test_renderer(void)
{
	const char *name = "kinesis_video_renderer_example_output.mkv";
	uint8_t *d;
	size_t len, n;
	struct mkv_fragment *f;
	if (!parse_file(name, &d, &len, &f, &n))
		return;
	CHECK_INT(n, 8, "%s: 8 fragments", name);
	check_partition(name, len, f, n);
	check_starts_with_ebml(name, d, f, n);
	int ok = n == 8;
	for (size_t i = 0; ok && i < n; i++) {
		const struct mkv_track *v = video(&f[i]);
		if (!(f[i].flags & MKV_FRAG_COMPLETE) || !v || v->width != 640 || v->height != 480 ||
		    !f[i].fragment_number[0] || !f[i].has_server_timestamp ||
		    !f[i].has_producer_timestamp || !f[i].has_millis_behind_now)
			ok = 0;
	}
	CHECK(ok, "%s: all complete, 640x480, KVS tags present", name);
	check_chunked(name, d, len, f, n);
	mkv_fragments_free(f, n);
	free(d);
}

static int has_tag(const struct mkv_fragment *f, const char *name, const char *value)
{
	for (size_t i = 0; i < f->ntags; i++)
		if (strcmp(f->tags[i].name, name) == 0 && strcmp(f->tags[i].value, value) == 0)
			return 1;
	return 0;
}

static void test_mixed_tags(void)
{
	const char *name = "test_mixed_tags.mkv";
	uint8_t *d;
	size_t len, n;
	struct mkv_fragment *f;
	if (!parse_file(name, &d, &len, &f, &n))
		return;
	CHECK_INT(n, 10, "%s: 10 fragments", name);
	check_partition(name, len, f, n);
	check_starts_with_ebml(name, d, f, n);
	int ok = n == 10;
	for (size_t i = 0; ok && i < n; i++) {
		const struct mkv_track *v = video(&f[i]);
		if (!(f[i].flags & MKV_FRAG_COMPLETE) || f[i].cluster_timecode != 5000 * i ||
		    f[i].producer_timestamp_ms != 5000 * (int64_t)i || !v ||
		    strcmp(v->codec_id, "V_MS/VFW/FOURCC") || v->blocks != 10 || v->keyframes != 1 ||
		    !has_tag(&f[i], "testTag_4", "testTag_4_Value") || f[i].clusters != 1 ||
		    f[i].unsized_clusters != 1 ||
		    strcmp(f[i].doc_type, "matroska"))
			ok = 0;
	}
	CHECK(ok, "%s: unknown-size clusters (with Position) read whole: timecodes, 10 blocks, "
	      "NUL-trimmed codec id, user tags after the cluster", name);
	if (n == 10) {
		CHECK_INT(f[0].ntags, 15, "%s: 1st fragment has user tags before Info too", name);
		CHECK(f[0].tags[0].kind == MKV_TAG_USER && strcmp(f[0].tags[0].name, "testTag_0") == 0,
		      "%s: tags in stream order", name);
		CHECK_INT(f[1].ntags, 10, "%s: other fragments have 10 tags", name);
		CHECK_STR(f[0].fragment_number, "91343852333713038908964877623801423530396737899",
			  "%s: fragment number", name);
		CHECK(f[0].has_millis_behind_now && f[0].millis_behind_now == 910,
		      "%s: MILLIS_BEHIND_NOW after the unknown-size cluster", name);
		CHECK_INT(f[0].duration_ms, 5000, "%s: duration 5 s", name);
	}
	check_chunked(name, d, len, f, n);
	mkv_fragments_free(f, n);
	free(d);
}

static void test_empty_with_tags(void)
{
	const char *name = "empty-mkv-with-tags.mkv";
	uint8_t *d;
	size_t len, n;
	struct mkv_fragment *f;
	if (!parse_file(name, &d, &len, &f, &n))
		return;
	CHECK_INT(n, 1, "%s: one fragment", name);
	check_partition(name, len, f, n);
	if (n == 1) {
		CHECK(f[0].clusters == 0 && !f[0].has_cluster_timecode && f[0].blocks == 0,
		      "%s: no cluster", name);
		CHECK(f[0].flags & MKV_FRAG_COMPLETE, "%s: still a complete fragment", name);
		CHECK_STR(f[0].fragment_number, "91343852338378294813695855977007281634605393997",
			  "%s: fragment number", name);
		CHECK_INT(f[0].server_timestamp_ms, 1516124526822, "%s: server timestamp", name);
		CHECK_INT(f[0].producer_timestamp_ms, 1515865326543, "%s: producer timestamp", name);
		const struct mkv_track *v = video(&f[0]);
		CHECK(v && v->width == 960 && v->height == 720 && v->codec_private_size == 50,
		      "%s: track header read", name);
		CHECK_INT(f[0].duration_ms, 0, "%s: no duration", name);
	}
	check_chunked(name, d, len, f, n);
	mkv_fragments_free(f, n);
	free(d);
}

static void test_tags_empty_cluster(void)
{
	const char *name = "test_tags_empty_cluster.mkv";
	uint8_t *d;
	size_t len, n;
	struct mkv_fragment *f;
	if (!parse_file(name, &d, &len, &f, &n))
		return;
	CHECK_INT(n, 1, "%s: one fragment", name);
	check_partition(name, len, f, n);
	if (n == 1) {
		int ok = f[0].ntags == 5;
		for (int i = 0; ok && i < 5; i++) {
			char k[32], v[32];
			snprintf(k, sizeof(k), "testTag_%d", i);
			snprintf(v, sizeof(v), "testTag_%d_Value", i);
			ok = strcmp(f[0].tags[i].name, k) == 0 && strcmp(f[0].tags[i].value, v) == 0 &&
			     f[0].tags[i].kind == MKV_TAG_USER;
		}
		CHECK(ok, "%s: 5 user tags", name);
		CHECK(f[0].clusters == 0 && f[0].ntracks == 0 && !f[0].fragment_number[0] &&
		      !f[0].has_server_timestamp && (f[0].flags & MKV_FRAG_COMPLETE),
		      "%s: no cluster, tracks or KVS tags; complete", name);
	}
	check_chunked(name, d, len, f, n);
	mkv_fragments_free(f, n);
	free(d);
}

/* ---------- synthetic streams ---------- */

static const char *const kvs_tags[] = {
	"AWS_KINESISVIDEO_FRAGMENT_NUMBER", "91343852333181432392682062607743920146159169392",
	"AWS_KINESISVIDEO_SERVER_SIDE_TIMESTAMP", "1511852109.126",
	"AWS_KINESISVIDEO_PRODUCER_SIDE_TIMESTAMP", "1511852108.5131",
};

/* A PIC-like fragment: 1-byte unknown Segment, unknown-size Cluster with Position, CRC-32 and
 * Void children, user tags after it. */
static void w_pic_fragment(struct eb *b, uint64_t tc)
{
	w_ebml(b);
	w_segment_unknown(b, 1);
	struct eb info = { 0 };
	eb_uint(&info, 0x2AD7B1, 1000000);
	eb_el(&info, 0x7BA9, "Kinesis Video SDK\0", 18);
	eb_master(b, 0x1549A966, &info);
	w_tracks(b, "V_MS/VFW/FOURCC\0\0\0  ", 20);
	w_tags(b, 3, kvs_tags);
	eb_id(b, 0x1F43B675);
	eb_unknown(b, 1);
	eb_uint(b, 0xE7, tc);
	eb_uint(b, 0xA7, 0);            /* Position */
	eb_el(b, 0xBF, "\1\2\3\4", 4);  /* CRC-32 */
	eb_el(b, 0xEC, "\0\0\0", 3);    /* Void */
	for (int i = 0; i < 10; i++)
		w_simple_block(b, 1, (int16_t)(i * 100), i == 0, 50);
	w_simple_block(b, 2, 0, 1, 10);
	w_simple_block(b, 2, 500, 1, 10);
	static const char *const user[] = { "testTag_0", "v0" };
	w_tags(b, 1, user);
}

static void parse_eb(struct eb *b, struct mkv_fragment **f, size_t *n)
{
	int rc = mkv_parse_buffer(b->d, b->n, &lg, f, n);
	if (rc) {
		*f = NULL;
		*n = 0;
	}
}

static void test_synthetic_pic(void)
{
	struct eb b = { 0 };
	w_pic_fragment(&b, 0);
	size_t first = b.n;
	w_pic_fragment(&b, 1000);
	struct mkv_fragment *f;
	size_t n;
	parse_eb(&b, &f, &n);
	CHECK_INT(n, 2, "synthetic PIC: 2 fragments");
	if (n == 2) {
		CHECK(f[0].offset == 0 && f[0].length == first && f[1].offset == first &&
		      f[1].offset + f[1].length == b.n, "synthetic PIC: exact byte ranges");
		const struct mkv_track *v = video(&f[0]);
		CHECK(v && strcmp(v->codec_id, "V_MS/VFW/FOURCC") == 0 && v->width == 320 &&
		      v->height == 240 && v->codec_private_size == 10 && v->uid == 1234,
		      "synthetic PIC: NUL/space-trimmed codec id, video size, codec private size");
		CHECK(v && v->blocks == 10 && v->keyframes == 1 && v->last_timecode == 900 &&
		      f[1].tracks && f[1].tracks[0].last_timecode == 1900,
		      "synthetic PIC: blocks after Position/CRC/Void still counted (last tc %" PRId64 ")",
		      v ? v->last_timecode : -1);
		CHECK(f[0].ntracks == 2 && f[0].tracks[1].type == MKV_TRACK_AUDIO &&
		      f[0].tracks[1].channels == 2 && f[0].tracks[1].sampling_frequency == 44100.0 &&
		      strcmp(f[0].tracks[1].codec_id, "A_AAC") == 0 && f[0].tracks[1].blocks == 2,
		      "synthetic PIC: audio track");
		CHECK(f[0].has_server_timestamp && f[0].server_timestamp_ms == 1511852109126 &&
		      f[0].producer_timestamp_ms == 1511852108514,
		      "synthetic PIC: _SIDE_ timestamp spellings, ceil to ms");
		CHECK((f[0].flags & MKV_FRAG_COMPLETE) && (f[1].flags & MKV_FRAG_COMPLETE) &&
		      f[1].cluster_timecode == 1000 && has_tag(&f[1], "testTag_0", "v0"),
		      "synthetic PIC: complete, cluster timecode, trailing user tag");
		CHECK_INT(f[0].duration_ms, 1000, "synthetic PIC: duration (10 blocks 100 ms apart)");
	}
	mkv_fragments_free(f, n);
	free(b.d);
}

static void test_error_fragment(void)
{
	struct eb b = { 0 };
	static const char *const err1[] = {
		"AWS_KINESISVIDEO_FRAGMENT_NUMBER", "123",
		"AWS_KINESISVIDEO_EXCEPTION_ERROR_CODE", "FRAGMENT_NOT_FOUND",
		"AWS_KINESISVIDEO_EXCEPTION_MESSAGE", "Fragment 123 was not found",
	};
	static const char *const err2[] = {
		"AWS_KINESISVIDEO_FRAGMENT_NUMBER", "456",
		"AWS_KINESISVIDEO_ERROR_CODE", "INTERNAL_ERROR",
		"AWS_KINESISVIDEO_ERROR_ID", "5000",
	};
	w_ebml(&b);
	w_segment_unknown(&b, 8);
	w_tags(&b, 3, err1);
	w_ebml(&b);
	w_segment_unknown(&b, 8);
	w_tags(&b, 3, err2);
	struct mkv_fragment *f;
	size_t n;
	parse_eb(&b, &f, &n);
	CHECK_INT(n, 2, "error fragments: 2");
	if (n == 2) {
		CHECK((f[0].flags & MKV_FRAG_ERROR) && strcmp(f[0].error_code, "FRAGMENT_NOT_FOUND") == 0 &&
		      strcmp(f[0].error_message, "Fragment 123 was not found") == 0 &&
		      strcmp(f[0].fragment_number, "123") == 0,
		      "EXCEPTION_ERROR_CODE / EXCEPTION_MESSAGE");
		CHECK((f[1].flags & MKV_FRAG_ERROR) && strcmp(f[1].error_code, "INTERNAL_ERROR") == 0 &&
		      strcmp(f[1].error_id, "5000") == 0, "ERROR_CODE / ERROR_ID");
		CHECK(f[0].tags[1].kind == MKV_TAG_EXCEPTION_ERROR_CODE &&
		      f[1].tags[2].kind == MKV_TAG_ERROR_ID, "error tag kinds");
	}
	mkv_fragments_free(f, n);
	free(b.d);
}

static void test_junk_and_resync(void)
{
	struct eb b = { 0 };
	eb_put(&b, "garbage!", 8); /* junk before the first EBML header */
	size_t good1 = b.n;
	w_pic_fragment(&b, 0);
	size_t bad = b.n;
	w_pic_fragment(&b, 1000);
	/* corrupt the 2nd fragment's cluster: zero its first SimpleBlock header (invalid IDs) */
	size_t cl = bad;
	while (cl + 4 < b.n && memcmp(b.d + cl, "\x1f\x43\xb6\x75", 4) != 0)
		cl++;
	memset(b.d + cl + 22, 0x00, 16);
	size_t good2 = b.n;
	w_pic_fragment(&b, 2000);
	struct mkv_fragment *f;
	size_t n;
	parse_eb(&b, &f, &n);
	CHECK_INT(n, 4, "junk + corrupt: 4 fragments");
	if (n == 4) {
		CHECK(f[0].offset == 0 && f[0].length == good1 && (f[0].flags & MKV_FRAG_NO_EBML) &&
		      !(f[0].flags & MKV_FRAG_COMPLETE), "leading junk is its own flagged fragment");
		CHECK(f[1].offset == good1 && (f[1].flags & MKV_FRAG_COMPLETE), "then a good fragment");
		CHECK(f[2].offset == bad && (f[2].flags & MKV_FRAG_MALFORMED) &&
		      !(f[2].flags & MKV_FRAG_COMPLETE) && f[2].problem[0],
		      "corrupt fragment flagged malformed (%s, flags %u)", f[2].problem, f[2].flags);
		CHECK(f[3].offset == good2 && f[3].length == b.n - good2 &&
		      (f[3].flags & MKV_FRAG_COMPLETE) && f[3].cluster_timecode == 2000,
		      "resynchronised at the next EBML header");
	}
	mkv_fragments_free(f, n);
	struct mkv_fragment *g;
	size_t m;
	if (mkv_parse_buffer(b.d, b.n, NULL, &g, &m) == 0) {
		CHECK(stream_matches("junk", b.d, b.n, 1, g, m) && stream_matches("junk", b.d, b.n, 0, g, m),
		      "junk + corrupt: same result byte by byte and in random chunks");
		mkv_fragments_free(g, m);
	}
	free(b.d);
}

static void test_truncated_then_next(void)
{
	/* A sized Cluster cut short (at an element boundary) by the next fragment's EBML header. */
	struct eb b = { 0 };
	w_ebml(&b);
	w_segment_unknown(&b, 8);
	w_tags(&b, 3, kvs_tags);
	eb_id(&b, 0x1F43B675);
	eb_size(&b, 1000, 4); /* claims 1000 bytes */
	eb_uint(&b, 0xE7, 7);
	w_simple_block(&b, 1, 0, 1, 20);
	size_t second = b.n;
	w_pic_fragment(&b, 0);
	struct mkv_fragment *f;
	size_t n;
	parse_eb(&b, &f, &n);
	CHECK_INT(n, 2, "cut cluster: 2 fragments");
	if (n == 2) {
		CHECK((f[0].flags & MKV_FRAG_TRUNCATED) && !(f[0].flags & MKV_FRAG_COMPLETE) &&
		      f[0].length == second && f[0].cluster_timecode == 7 && f[0].blocks == 1,
		      "1st flagged truncated, byte range exact");
		CHECK(f[1].flags & MKV_FRAG_COMPLETE, "2nd complete");
	}
	mkv_fragments_free(f, n);
	free(b.d);

	/* Stream ends inside an element header / inside the EBML header. */
	struct eb c = { 0 };
	w_ebml(&c);
	w_segment_unknown(&c, 8);
	eb_put(&c, "\x1f\x43\xb6", 3);
	parse_eb(&c, &f, &n);
	CHECK(n == 1 && (f[0].flags & MKV_FRAG_TRUNCATED) && f[0].length == c.n,
	      "stream ending inside a header: truncated");
	mkv_fragments_free(f, n);
	parse_eb(&(struct eb){ c.d, 20, 0 }, &f, &n);
	CHECK(n == 1 && (f[0].flags & MKV_FRAG_TRUNCATED) && f[0].length == 20,
	      "stream ending inside the EBML header: truncated");
	mkv_fragments_free(f, n);
	free(c.d);
}

static void test_limits(void)
{
	struct eb b = { 0 };
	/* a TagString over the string limit is skipped, the rest still read */
	w_ebml(&b);
	w_segment_unknown(&b, 8);
	char *big = malloc(MKV_MAX_STRING_SIZE + 10);
	memset(big, 'x', MKV_MAX_STRING_SIZE + 9);
	big[MKV_MAX_STRING_SIZE + 9] = '\0';
	const char *pairs[] = { "big", big, "AWS_KINESISVIDEO_FRAGMENT_NUMBER", "42" };
	w_tags(&b, 2, pairs);
	free(big);
	struct mkv_fragment *f;
	size_t n;
	parse_eb(&b, &f, &n);
	CHECK(n == 1 && (f[0].flags & MKV_FRAG_SKIPPED) && strcmp(f[0].fragment_number, "42") == 0 &&
	      has_tag(&f[0], "big", ""), "oversized TagString skipped, other tags kept");
	mkv_fragments_free(f, n);
	free(b.d);

	/* absurd element size: malformed, no allocation */
	struct eb c = { 0 };
	w_ebml(&c);
	w_segment_unknown(&c, 8);
	eb_id(&c, 0x1254C367);
	eb_size(&c, 1ull << 50, 8);
	eb_put(&c, "\x73\x73\x81\x00", 4);
	parse_eb(&c, &f, &n);
	CHECK(n == 1 && (f[0].flags & MKV_FRAG_MALFORMED) && f[0].length == c.n,
	      "absurd element size rejected (%s)", n ? f[0].problem : "");
	mkv_fragments_free(f, n);
	free(c.d);

	/* huge declared TagString inside a small Tags: libwebm must not allocate it */
	struct eb d = { 0 };
	w_ebml(&d);
	w_segment_unknown(&d, 8);
	struct eb st = { 0 }, tag = { 0 }, tags = { 0 };
	eb_str(&st, 0x45A3, "n");
	eb_id(&st, 0x4487);
	eb_size(&st, 1ull << 40, 8);
	eb_master(&tag, 0x67C8, &st);
	eb_master(&tags, 0x7373, &tag);
	eb_master(&d, 0x1254C367, &tags);
	parse_eb(&d, &f, &n);
	CHECK(n == 1 && (f[0].flags & (MKV_FRAG_BAD_METADATA | MKV_FRAG_SKIPPED)),
	      "lying TagString size inside Tags: flagged, no crash");
	mkv_fragments_free(f, n);
	free(d.d);

	/* empty stream */
	CHECK(mkv_parse_buffer("", 0, NULL, &f, &n) == 0 && n == 0 && f == NULL, "empty stream");
}

static void test_blockgroups_and_generic(void)
{
	struct eb b = { 0 };
	w_ebml(&b);
	w_segment_unknown(&b, 8);
	/* unknown-size Tags: its Tag children are decoded one by one */
	eb_id(&b, 0x1254C367);
	eb_unknown(&b, 1);
	{
		struct eb st = { 0 }, tag = { 0 };
		eb_str(&st, 0x45A3, "AWS_KINESISVIDEO_FRAGMENT_NUMBER");
		eb_str(&st, 0x4487, "777");
		eb_master(&tag, 0x67C8, &st);
		eb_master(&b, 0x7373, &tag);
	}
	/* a sized Cluster with BlockGroups (one key, one with ReferenceBlock) and a laced block */
	struct eb cl = { 0 };
	eb_uint(&cl, 0xE7, 100);
	for (int i = 0; i < 2; i++) {
		struct eb bg = { 0 }, blk = { 0 };
		eb_byte(&blk, 0x81);
		eb_byte(&blk, 0);
		eb_byte(&blk, (uint8_t)(i * 40));
		eb_byte(&blk, 0);
		eb_put(&blk, "frame", 5);
		eb_master(&bg, 0xA1, &blk);
		if (i)
			eb_uint(&bg, 0xFB, 1);
		eb_master(&cl, 0xA0, &bg);
	}
	{
		struct eb sb = { 0 };
		eb_byte(&sb, 0x82);
		eb_byte(&sb, 0);
		eb_byte(&sb, 0);
		eb_byte(&sb, 0x82); /* key, Xiph lacing */
		eb_byte(&sb, 2);    /* 3 frames */
		eb_put(&sb, "\x01\x01xyz", 5);
		eb_master(&cl, 0xA3, &sb);
	}
	eb_master(&b, 0x1F43B675, &cl);
	struct mkv_fragment *f;
	size_t n;
	parse_eb(&b, &f, &n);
	CHECK_INT(n, 1, "blockgroups: one fragment");
	if (n == 1) {
		CHECK_STR(f[0].fragment_number, "777", "unknown-size Tags decoded tag by tag");
		CHECK(f[0].ntracks == 2 && f[0].tracks[0].blocks == 2 && f[0].tracks[0].keyframes == 1 &&
		      f[0].tracks[0].last_timecode == 140 && f[0].tracks[0].declared == 0,
		      "BlockGroup keyframes from ReferenceBlock, undeclared track kept");
		CHECK(f[0].tracks[1].frames == 3 && f[0].tracks[1].keyframes == 1, "laced frames counted");
		CHECK(f[0].flags & MKV_FRAG_COMPLETE, "complete");
	}
	mkv_fragments_free(f, n);
	free(b.d);
}

static int abort_start(void *opaque, unsigned index, uint64_t offset)
{
	(void)opaque;
	(void)offset;
	return index == 1 ? -EIO : 0;
}

static void test_callback_abort(void)
{
	struct eb b = { 0 };
	w_pic_fragment(&b, 0);
	w_pic_fragment(&b, 1);
	struct mkv_callbacks cb = { .fragment_start = abort_start };
	struct mkv_reader *r = mkv_reader_new(&cb, NULL);
	int rc = mkv_reader_push(r, b.d, b.n);
	CHECK_INT(rc, -EIO, "callback error stops the push");
	CHECK_INT(mkv_reader_push(r, b.d, 1), -EIO, "and sticks");
	CHECK_INT(mkv_reader_finish(r), -EIO, "finish reports it too");
	mkv_reader_free(r);
	free(b.d);
}

static void test_helpers(void)
{
	int64_t ms = -1;
	CHECK(mkv_parse_timestamp_ms("1511852109.126", &ms) == 0 && ms == 1511852109126, "ts .126");
	CHECK(mkv_parse_timestamp_ms("0.000", &ms) == 0 && ms == 0, "ts 0.000");
	CHECK(mkv_parse_timestamp_ms("5.0001", &ms) == 0 && ms == 5001, "ts rounds up like ceil");
	CHECK(mkv_parse_timestamp_ms("1.5", &ms) == 0 && ms == 1500, "ts 1.5");
	CHECK(mkv_parse_timestamp_ms("17", &ms) == 0 && ms == 17000, "ts integer");
	CHECK(mkv_parse_timestamp_ms("abc", &ms) == -EINVAL, "ts invalid");
	CHECK(mkv_parse_timestamp_ms("", &ms) == -EINVAL, "ts empty");
	CHECK(mkv_parse_timestamp_ms("1.2x", &ms) == -EINVAL, "ts trailing junk");
	CHECK(mkv_parse_timestamp_ms("99999999999999999999999", &ms) == -EINVAL, "ts overflow");
	CHECK(mkv_tag_kind_of("AWS_KINESISVIDEO_SERVER_SIDE_TIMESTAMP") == MKV_TAG_SERVER_TIMESTAMP &&
	      mkv_tag_kind_of("AWS_KINESISVIDEO_PRODUCER_TIMESTAMP") == MKV_TAG_PRODUCER_TIMESTAMP &&
	      mkv_tag_kind_of("AWS_KINESISVIDEO_END_OF_FRAGMENT") == MKV_TAG_AWS_OTHER &&
	      mkv_tag_kind_of("title") == MKV_TAG_USER, "tag kinds");
	CHECK_STR(mkv_tag_kind_name(MKV_TAG_ERROR_ID), "error_id", "tag kind name");
}

int main(void)
{
	log_init(&lg, LOG_LEVEL_ERROR, stderr);
	test_helpers();
	test_output_get_media();
	test_sparse();
	test_merged();
	test_non_increasing();
	test_equal_timecode();
	test_renderer();
	test_mixed_tags();
	test_empty_with_tags();
	test_tags_empty_cluster();
	test_synthetic_pic();
	test_error_fragment();
	test_junk_and_resync();
	test_truncated_then_next();
	test_limits();
	test_blockgroups_and_generic();
	test_callback_abort();
	log_destroy(&lg);
	return check_done();
}
