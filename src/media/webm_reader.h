/*
 * webm_reader: private C view of libwebm's webm_parser, used only by mkv.c.
 *
 * mkv.c does the stream framing itself (fragment boundaries, clusters, blocks) and hands each
 * metadata element it wants decoded -- the EBML header, Info, Tracks, Tags, or a single
 * TrackEntry / Tag -- to this wrapper, header included, once it has all its bytes (they are
 * small and capped). The wrapper tells libwebm that it "seeked" to that element
 * (WebmParser::DidSeek), so libwebm resolves the element's ancestry itself and parses it as it
 * would inside a Segment, in one Feed call that sees end-of-input at the element's end. Decoded
 * values come back through struct mkv_wr_events. No exception leaves this file.
 * Not thread-safe: one wrapper per reader.
 */
#ifndef KVSFS_MEDIA_WEBM_READER_H
#define KVSFS_MEDIA_WEBM_READER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MKV_WR_UNKNOWN_SIZE UINT64_MAX

/* Results of mkv_wr_feed / mkv_wr_end besides 0 (a positive value is a callback's abort code). */
#define MKV_WR_TRUNCATED (-1) /* input ended inside the element */
#define MKV_WR_INVALID (-2)   /* libwebm reported a parsing error */
#define MKV_WR_NOMEM (-3)     /* an allocation failed inside libwebm */

struct mkv_wr_track {
	uint64_t number, uid, type, default_duration;
	const char *codec_id; /* not NUL-terminated */
	size_t codec_id_len;
	int has_video;
	uint64_t width, height;
	int has_audio;
	double sampling_frequency;
	uint64_t channels;
};

struct mkv_wr_events {
	void *opaque;
	/* Every element header inside the decoded element (the element itself included). Set *skip
	 * to 1 to skip its body. Returns 0, or a positive code to abort decoding. */
	int (*element)(void *opaque, uint32_t id, uint64_t size, int *skip);
	int (*ebml)(void *opaque, const char *doc_type, size_t len);
	int (*info)(void *opaque, uint64_t timecode_scale);
	int (*track)(void *opaque, const struct mkv_wr_track *t);
	/* One SimpleTag (nested ones are flattened, depth-first). value is NULL for a binary or
	 * missing TagString. */
	int (*simple_tag)(void *opaque, const char *name, size_t name_len, const char *value,
			  size_t value_len);
};

struct mkv_wr;

/* Returns a new wrapper (events copied) or NULL when out of memory. */
struct mkv_wr *mkv_wr_new(const struct mkv_wr_events *ev);
void mkv_wr_free(struct mkv_wr *w);
/* Decodes one whole element (header included, n bytes, first byte at stream offset pos) in a
 * single libwebm Feed with end-of-input already set. Returns 0 when libwebm finished cleanly,
 * MKV_WR_TRUNCATED / MKV_WR_INVALID / MKV_WR_NOMEM, or a callback's positive abort code. */
int mkv_wr_parse(struct mkv_wr *w, uint64_t pos, const uint8_t *p, size_t n);

#ifdef __cplusplus
}
#endif

#endif
