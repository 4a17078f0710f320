/*
 * Unit tests of the Matroska writer (mkv_write) and mkv_tracks_same: exact bytes of the
 * primitives, every *_size function against the bytes its put function appends, and a small
 * document written with the writer read back by the project's MKV reader.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "kvsfs/buf.h"
#include "kvsfs/mkv.h"
#include "kvsfs/mkv_write.h"

static int bytes_are(const struct buf *b, const char *hex)
{
	size_t n = strlen(hex) / 2;
	if (b->len != n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1 || (uint8_t)b->data[i] != v)
			return 0;
	}
	return 1;
}

static void test_primitives(void)
{
	struct buf b = { 0 };
	CHECK_INT(mkvw_vint_len(0), 1, "vint 0");
	CHECK_INT(mkvw_vint_len(126), 1, "vint 126");
	CHECK_INT(mkvw_vint_len(127), 2, "vint 127: all ones is reserved");
	CHECK_INT(mkvw_vint_len(16382), 2, "vint 16382");
	CHECK_INT(mkvw_vint_len(16383), 3, "vint 16383");
	CHECK_INT(mkvw_id_len(0xA3), 1, "1-byte id");
	CHECK_INT(mkvw_id_len(0x1A45DFA3), 4, "4-byte id");
	mkvw_put_uint(&b, 0xE7, 0);
	CHECK(bytes_are(&b, "E78100"), "uint 0");
	buf_reset(&b);
	mkvw_put_uint(&b, 0x2AD7B1, 1000000);
	CHECK(bytes_are(&b, "2AD7B1830F4240"), "TimecodeScale 1000000");
	buf_reset(&b);
	mkvw_put_uint8b(&b, 0xF1, 5);
	CHECK(bytes_are(&b, "F1880000000000000005"), "8-byte position");
	buf_reset(&b);
	mkvw_put_header(&b, 0x18538067, 5, 8);
	CHECK(bytes_are(&b, "185380670100000000000005"), "segment head, 8-byte size");
	buf_reset(&b);
	size_t m;
	mkvw_master_begin(&b, 0xB7, &m);
	mkvw_put_uint(&b, 0xF7, 1);
	mkvw_master_end(&b, m);
	CHECK(bytes_are(&b, "B70100000000000003F78101"), "master closed with its size");
	buf_reset(&b);
	mkvw_put_simpleblock_head(&b, 1, -2, 0x80, 4);
	CHECK(bytes_are(&b, "A38881FFFE80"), "simpleblock head, negative relative timecode");
	buf_free(&b);
}

static void test_sizes(void)
{
	struct buf b = { 0 };
	struct mkvw_seek sk[3] = { { MKVW_ID_INFO, 0 }, { MKVW_ID_TRACKS, 1ull << 40 },
				   { MKVW_ID_CUES, 77 } };
	mkvw_put_seekhead(&b, sk, 3);
	CHECK_INT(b.len, mkvw_seekhead_size(3), "seekhead size");
	struct mkvw_cue cues[4] = { { 0, 1, 0 }, { 2000, 1, 1ull << 33 }, { 1ull << 40, 200, 9 },
				    { 70000, 2, 1 } };
	for (size_t n = 0; n <= 4; n++) {
		buf_reset(&b);
		mkvw_put_cues(&b, cues, n);
		CHECK_INT(b.len, mkvw_cues_size(cues, n), "cues size, %zu points", n);
	}
	cues[1].cluster_position = 3;
	CHECK_INT(mkvw_cues_size(cues, 4), b.len, "cues size independent of positions");
	uint64_t tcs[] = { 0, 255, 256, 1ull << 40 }, lens[] = { 0, 100, 126, 20000, 1ull << 30 };
	for (size_t i = 0; i < 4; i++)
		for (size_t k = 0; k < 5; k++) {
			buf_reset(&b);
			mkvw_put_cluster_head(&b, tcs[i], lens[k]);
			CHECK_INT(b.len + lens[k], mkvw_cluster_size(tcs[i], lens[k]), "cluster size");
			buf_reset(&b);
			mkvw_put_simpleblock_head(&b, i * 60 + 1, 0, 0, lens[k]);
			CHECK_INT(b.len + lens[k], mkvw_simpleblock_size(i * 60 + 1, lens[k]),
				  "simpleblock size");
		}
	buf_free(&b);
}

/* A document of one track and three blocks, read back by the MKV reader. */
static void test_document(void)
{
	struct buf b = { 0 }, tracks = { 0 }, tracks2 = { 0 }, body = { 0 };
	size_t mt, me;
	mkvw_master_begin(&tracks, MKVW_ID_TRACKS, &mt);
	mkvw_master_begin(&tracks, 0xAE, &me);
	mkvw_put_uint(&tracks, 0xD7, 1);           /* TrackNumber */
	mkvw_put_uint(&tracks, 0x73C5, 1234);      /* TrackUID */
	mkvw_put_uint(&tracks, 0x83, 1);           /* TrackType video */
	mkvw_put_string(&tracks, 0x86, "V_MPEG4/ISO/AVC");
	mkvw_master_end(&tracks, me);
	mkvw_master_end(&tracks, mt);
	struct mkvw_info in = { .timecode_scale = 1000000, .duration = 80, .has_date = 1,
				.date_utc_ms = 1714564800000LL, .title = "t", .app = "test" };
	mkvw_put_info(&body, &in);
	buf_append(&body, tracks.data, tracks.len);
	size_t mc, mx;
	mkvw_chapters_begin(&body, &mc, &mx);
	struct mkvw_chapter ch = { 1, 0, 80000000, "frag 1" };
	mkvw_put_chapter(&body, &ch);
	mkvw_chapters_end(&body, mc, mx);
	struct mkvw_cue cue = { 0, 1, body.len + mkvw_cues_size(&cue, 1) };
	mkvw_put_cues(&body, &cue, 1);
	uint64_t blocks = 3 * mkvw_simpleblock_size(1, 2);
	mkvw_put_cluster_head(&body, 0, blocks);
	for (int k = 0; k < 3; k++) {
		mkvw_put_simpleblock_head(&body, 1, (int16_t)(k * 40), k == 0 ? 0x80 : 0, 2);
		buf_append(&body, "\x01\x02", 2);
	}
	mkvw_put_ebml_header(&b);
	mkvw_put_segment_head(&b, body.len);
	buf_append(&b, body.data, body.len);
	struct mkv_fragment *f = NULL;
	size_t n = 0;
	CHECK_INT(mkv_parse_buffer(b.data, b.len, NULL, &f, &n), 0, "reader parses the document");
	CHECK_INT(n, 1, "one document");
	if (n == 1) {
		CHECK(f[0].flags & MKV_FRAG_COMPLETE, "complete");
		CHECK(!(f[0].flags & (MKV_FRAG_MALFORMED | MKV_FRAG_TRUNCATED | MKV_FRAG_BAD_METADATA)),
		      "no problem: %s", f[0].problem);
		CHECK_STR(f[0].doc_type, "matroska", "doc type");
		CHECK_INT(f[0].blocks, 3, "three blocks");
		CHECK_INT(f[0].ntracks, 1, "one track");
		if (f[0].ntracks == 1) {
			CHECK_INT(f[0].tracks[0].keyframes, 1, "one key frame");
			CHECK_INT(f[0].tracks[0].last_timecode, 80, "last timecode");
		}
	}
	mkv_fragments_free(f, n);

	/* mkv_tracks_same: TrackUID ignored, a codec change seen, malformed refused */
	mkvw_master_begin(&tracks2, MKVW_ID_TRACKS, &mt);
	mkvw_master_begin(&tracks2, 0xAE, &me);
	mkvw_put_uint(&tracks2, 0xD7, 1);
	mkvw_put_uint(&tracks2, 0x73C5, 99999999);
	mkvw_put_uint(&tracks2, 0x83, 1);
	mkvw_put_string(&tracks2, 0x86, "V_MPEG4/ISO/AVC");
	mkvw_master_end(&tracks2, me);
	mkvw_master_end(&tracks2, mt);
	CHECK_INT(mkv_tracks_same(tracks.data, tracks.len, tracks2.data, tracks2.len), 1,
		  "same tracks but for TrackUID");
	tracks2.data[tracks2.len - 1] = 'X';
	CHECK_INT(mkv_tracks_same(tracks.data, tracks.len, tracks2.data, tracks2.len), 0,
		  "codec id differs");
	CHECK_INT(mkv_tracks_same(tracks.data, tracks.len - 1, tracks.data, tracks.len), -EINVAL,
		  "cut element refused");
	CHECK_INT(mkv_tracks_same(b.data, b.len, b.data, b.len), -EINVAL, "not a Tracks element");
	buf_free(&b);
	buf_free(&body);
	buf_free(&tracks);
	buf_free(&tracks2);
}

int main(void)
{
	test_primitives();
	test_sizes();
	test_document();
	return check_done();
}
