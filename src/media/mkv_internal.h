/*
 * mkv_internal: what the files of the Matroska reader share (private to src/media/mkv*.c).
 *
 * The reader is split along its two models:
 *   - mkv_ebml.c: the byte-level EBML framer (element headers, the stack of open masters,
 *     fragment boundaries, resynchronisation, cluster timecodes and block heads);
 *   - mkv_fragment.c: the fragment model (struct mkv_fragment, tracks, tags, block statistics,
 *     the start and end of a fragment and their callbacks);
 *   - mkv_meta.c: metadata elements captured whole and decoded by libwebm (webm_reader.cc);
 *   - mkv.c: the public reader API and the one-shot parse.
 * All of them work on one struct mkv_reader, used by one thread at a time.
 */
#ifndef KVSFS_MEDIA_MKV_INTERNAL_H
#define KVSFS_MEDIA_MKV_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "kvsfs/buf.h"
#include "kvsfs/mkv.h"
#include "webm_reader.h"

#define MKV_MOD "mkv"

#define ID_EBML 0x1A45DFA3u
#define ID_SEGMENT 0x18538067u
#define ID_SEEKHEAD 0x114D9B74u
#define ID_INFO 0x1549A966u
#define ID_TRACKS 0x1654AE6Bu
#define ID_CLUSTER 0x1F43B675u
#define ID_CUES 0x1C53BB6Bu
#define ID_CHAPTERS 0x1043A770u
#define ID_TAGS 0x1254C367u
#define ID_ATTACHMENTS 0x1941A469u
#define ID_VOID 0xECu
#define ID_CRC32 0xBFu
#define ID_TIMECODE 0xE7u
#define ID_SIMPLEBLOCK 0xA3u
#define ID_BLOCKGROUP 0xA0u
#define ID_BLOCK 0xA1u
#define ID_REFERENCEBLOCK 0xFBu
#define ID_TRACKENTRY 0xAEu
#define ID_TAG 0x7373u
#define ID_SIMPLETAG 0x67C8u
#define ID_CODECPRIVATE 0x63A2u
#define ID_TIMECODESCALE 0x2AD7B1u

#define UNKNOWN_SIZE UINT64_MAX
#define MAX_EBML_HEADER (64u * 1024)
#define MAX_TAG_BYTES (1024u * 1024) /* tag text kept per fragment */
#define MAX_DEPTH 8

enum ctx_kind { CTX_SEGMENT, CTX_CLUSTER, CTX_BLOCKGROUP, CTX_GENERIC };

struct ctx {
	uint32_t id;
	enum ctx_kind kind;
	uint64_t start, end; /* end: UNKNOWN_SIZE while open-ended */
};

enum rstate { RS_HEADER, RS_SKIP, RS_HEAD, RS_CAPTURE, RS_RESYNC, RS_STOPPED, RS_DONE };
enum head_use { HEAD_TIMECODE, HEAD_SIMPLEBLOCK, HEAD_BLOCK, HEAD_TCSCALE };

/* The fragment being built. */
struct frag_build {
	struct mkv_fragment f;
	size_t tracks_cap, tags_cap, tag_bytes;
	int active, had_ebml, had_segment;
	/* current cluster */
	int in_cluster, cl_has_tc, cl_event_sent;
	uint64_t cl_tc, cl_offset;
	unsigned cl_blockgroups;
	/* pending BlockGroup */
	int bg_has_block, bg_has_ref;
	uint64_t bg_track;
	int16_t bg_tc;
	unsigned bg_frames;
	uint8_t bg_flags;
	unsigned bg_head_len;
	/* body of the block being read (SimpleBlock or Block) */
	uint64_t blk_off, blk_size;
	/* TrackEntry being decoded */
	uint64_t pending_codec_private;
};

struct mkv_reader {
	struct mkv_callbacks cb;
	struct log_ctx *lg;
	struct mkv_wr *wr;
	uint64_t pos;
	enum rstate state;
	int stop_rc;
	/* element header being read */
	uint8_t hdr[12];
	unsigned hdr_len;
	/* element body being processed */
	uint32_t el_id;
	uint64_t el_start, remaining;
	enum head_use head_use;
	uint8_t head[16];
	unsigned head_len, head_want;
	/* metadata element being collected for libwebm (at most MKV_MAX_METADATA_SIZE + header) */
	struct buf cap;
	/* open masters */
	struct ctx stack[MAX_DEPTH];
	unsigned depth;
	unsigned magic_match;
	int rescanned; /* set by bad_header: hdr holds rescanned bytes */
	unsigned nfrags;
	struct frag_build fb;
};

/* ---- the reader (mkv.c) ---- */

/* Stops the reader with rc (a callback's error or -ENOMEM; anything else becomes -ECANCELED). */
void mkv_stop(struct mkv_reader *r, int rc);
/* Flags the current fragment and records (and logs once) its first problem. */
void mkv_problem(struct mkv_reader *r, unsigned flag, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- the framer (mkv_ebml.c) ---- */

/* Consumes n bytes of the stream. May be re-entered (a bad header is rescanned). */
void mkv_process(struct mkv_reader *r, const uint8_t *p, size_t n);
/* Pops the top open element; cut_at is where it stops (short of its end: truncated or, when
 * truncated is 0, malformed). */
void mkv_pop_ctx(struct mkv_reader *r, uint64_t cut_at, int truncated);
/* Pops every open element. */
void mkv_pop_all(struct mkv_reader *r, uint64_t cut_at, int truncated);

/* ---- the fragment model (mkv_fragment.c) ---- */

/* Copies src[0..len) up to its first NUL into dst (cap bytes), optionally without surrounding
 * spaces and tabs; always NUL-terminated. */
void mkv_copy_trimmed(char *dst, size_t cap, const char *src, size_t len, int trim_space);
/* The track of that number in the current fragment, added when new; NULL past the limit or
 * when out of memory (the reader is then stopped). */
struct mkv_track *mkv_track_get(struct mkv_reader *r, uint64_t number);
/* Starts fragment number r->nfrags at offset (had_ebml: it starts with an EBML header). */
void mkv_fragment_begin(struct mkv_reader *r, uint64_t offset, int had_ebml);
/* Closes the current fragment at end (exclusive) and sends fragment_end. */
void mkv_fragment_end(struct mkv_reader *r, uint64_t end);
/* Sends the cluster event of the current cluster once. */
void mkv_emit_cluster(struct mkv_reader *r);
/* Counts one block of track with a relative timecode. */
void mkv_record_block(struct mkv_reader *r, uint64_t track, int16_t rel, int key,
		      unsigned frames, uint8_t flags, unsigned head_len, int simple);
/* A BlockGroup or Cluster closed. */
void mkv_blockgroup_end(struct mkv_reader *r);
void mkv_cluster_end(struct mkv_reader *r);
/* Applies a KVS tag (fragment number, timestamps, errors) to the current fragment. */
void mkv_apply_tag(struct mkv_reader *r, const struct mkv_tag *tag);

/* ---- metadata elements (mkv_meta.c) ---- */

/* The libwebm decoder of a reader (events go to r). NULL when out of memory. */
struct mkv_wr *mkv_meta_decoder_new(struct mkv_reader *r);
/* Starts collecting the element whose header is in r->hdr (size bytes of body follow). */
void mkv_begin_capture(struct mkv_reader *r, uint64_t size);
/* Appends bytes of the element being collected. Returns 0 or -ENOMEM (reader stopped). */
int mkv_capture_append(struct mkv_reader *r, const uint8_t *p, size_t n);
/* Hands the collected element to libwebm (whole, or what arrived of it at the stream end). */
void mkv_capture_end(struct mkv_reader *r);

#endif
