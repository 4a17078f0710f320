/*
 * mkv_write: a small Matroska writer for files of known layout (clips/START-END.mkv; docs/MKV.md,
 * "Writer").
 *
 * The writer only produces bytes into a util struct buf; it never does I/O and keeps no state, so
 * a caller streams a file part by part (header, Segment head, metadata, then each Cluster's head
 * followed by frame data it copies itself) and can compute every part's size beforehand with the
 * *_size functions (they agree byte for byte with what the put functions append).
 *
 * Layout choices that make sizes computable before positions are known:
 *   - masters written by mkvw_master_end and the Segment use an 8-byte size (valid EBML);
 *   - positions (SeekPosition, CueClusterPosition) are always written as 8-byte unsigned
 *     integers, so the SeekHead and Cues sizes do not depend on the positions they hold.
 *
 * Errors: every put function returns 0 or -ENOMEM (the buf keeps what was appended before).
 * Thread-safety: pure functions over the caller's buf.
 */
#ifndef KVSFS_MKV_WRITE_H
#define KVSFS_MKV_WRITE_H

#include <stddef.h>
#include <stdint.h>

struct buf;

/* Element IDs the writer uses (Matroska). */
#define MKVW_ID_EBML 0x1A45DFA3u
#define MKVW_ID_SEGMENT 0x18538067u
#define MKVW_ID_SEEKHEAD 0x114D9B74u
#define MKVW_ID_INFO 0x1549A966u
#define MKVW_ID_TRACKS 0x1654AE6Bu
#define MKVW_ID_CHAPTERS 0x1043A770u
#define MKVW_ID_CUES 0x1C53BB6Bu
#define MKVW_ID_CLUSTER 0x1F43B675u
#define MKVW_ID_TAGS 0x1254C367u

/* ---- EBML primitives ---- */

/* Bytes of an element ID as written (1..4). */
size_t mkvw_id_len(uint32_t id);
/* Bytes of the minimal size vint for size (1..8). */
size_t mkvw_vint_len(uint64_t size);
/* Total bytes of an element whose body has body bytes (ID + minimal size vint + body). */
uint64_t mkvw_element_size(uint32_t id, uint64_t body);
/* Appends an element header: ID and size (len 0: minimal vint, else exactly len bytes, 1..8). */
int mkvw_put_header(struct buf *b, uint32_t id, uint64_t size, unsigned len);
int mkvw_put_uint(struct buf *b, uint32_t id, uint64_t v);
/* Unsigned integer in exactly 8 bytes (positions). */
int mkvw_put_uint8b(struct buf *b, uint32_t id, uint64_t v);
int mkvw_put_float(struct buf *b, uint32_t id, double v);   /* 8-byte float */
int mkvw_put_string(struct buf *b, uint32_t id, const char *s);
int mkvw_put_bytes(struct buf *b, uint32_t id, const void *d, size_t n);
/* Opens a master of unknown length: appends its ID and an 8-byte size placeholder; *mark is for
 * mkvw_master_end, which writes the size of everything appended since. */
int mkvw_master_begin(struct buf *b, uint32_t id, size_t *mark);
void mkvw_master_end(struct buf *b, size_t mark);

/* ---- document parts ---- */

/* The EBML header of a Matroska v4 file (DocType "matroska"). */
int mkvw_put_ebml_header(struct buf *b);
/* The Segment's header for a body of size bytes (8-byte size). */
int mkvw_put_segment_head(struct buf *b, uint64_t size);

struct mkvw_seek {
	uint32_t id;         /* a level-1 element */
	uint64_t position;   /* its offset from the start of the Segment's body */
};
/* The SeekHead; its size is mkvw_seekhead_size(n) whatever the positions. */
int mkvw_put_seekhead(struct buf *b, const struct mkvw_seek *v, size_t n);
uint64_t mkvw_seekhead_size(size_t n);

struct mkvw_info {
	uint64_t timecode_scale;   /* ns per tick */
	double duration;           /* in ticks */
	int has_date;
	int64_t date_utc_ms;       /* DateUTC, as Unix ms (converted to ns since 2001) */
	const char *title;         /* may be NULL */
	const char *app;           /* MuxingApp and WritingApp */
};
int mkvw_put_info(struct buf *b, const struct mkvw_info *in);

/* One chapter: [start, end) in ns from the Segment's start, titled. uid != 0. */
struct mkvw_chapter {
	uint64_t uid;
	uint64_t start_ns, end_ns;
	const char *title;
};
/* One ChapterAtom, to be appended between mkvw_chapters_begin and mkvw_chapters_end (so a long
 * list never needs to be held as an array). */
int mkvw_chapters_begin(struct buf *b, size_t *mark_chapters, size_t *mark_edition);
int mkvw_put_chapter(struct buf *b, const struct mkvw_chapter *c);
void mkvw_chapters_end(struct buf *b, size_t mark_chapters, size_t mark_edition);

struct mkvw_cue {
	uint64_t time;             /* ticks */
	uint64_t track;
	uint64_t cluster_position; /* offset of the Cluster from the start of the Segment's body */
};
/* The Cues; size mkvw_cues_size(v, n) whatever the cluster positions. */
int mkvw_put_cues(struct buf *b, const struct mkvw_cue *v, size_t n);
uint64_t mkvw_cues_size(const struct mkvw_cue *v, size_t n);

/* A Cluster's head (ID, size, Timecode) for a Cluster holding blocks_bytes of blocks;
 * mkvw_cluster_size is the Cluster's total size. */
int mkvw_put_cluster_head(struct buf *b, uint64_t timecode, uint64_t blocks_bytes);
uint64_t mkvw_cluster_size(uint64_t timecode, uint64_t blocks_bytes);

/* A SimpleBlock's head (ID, size, track, relative timecode, flags) for data_len bytes of lacing
 * and frame data that the caller appends next; mkvw_simpleblock_size is its total size. */
int mkvw_put_simpleblock_head(struct buf *b, uint64_t track, int16_t rel, uint8_t flags,
			      uint64_t data_len);
uint64_t mkvw_simpleblock_size(uint64_t track, uint64_t data_len);

#endif
