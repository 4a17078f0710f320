/*
 * mkv: streaming Matroska reader for Kinesis Video Streams media bodies (GetMedia /
 * GetMediaForFragmentList): splits the byte stream into fragments and reads each fragment's KVS
 * tags, tracks and cluster statistics.
 *
 * A KVS body is a concatenation of self-contained MKV documents, one per fragment:
 * EBML header + Segment (usually of unknown size) holding Info, Tracks, Tags, one Cluster, more
 * Tags. A fragment is defined as the bytes from its EBML header up to the next EBML header (or the
 * end of the stream), so the fragments of a stream partition it exactly: the sum of their lengths
 * is the stream length and each fragment's bytes are the stream's bytes, never rewritten. Bytes
 * before the first EBML header (junk) form a fragment flagged MKV_FRAG_NO_EBML.
 *
 * Streaming use: mkv_reader_new(), then mkv_reader_push() with chunks of any size as they arrive
 * (the reader keeps at most a few bytes of an element header and the metadata elements it is
 * decoding, never the body), then mkv_reader_finish(). Events arrive through struct mkv_callbacks
 * during push/finish. To cut the stream into per-fragment byte ranges while streaming, a caller
 * writes bytes to the "current fragment" up to mkv_reader_safe_offset() after each push and keeps
 * the (at most MKV_PENDING_MAX) bytes after it; when fragment_start(offset) fires, bytes before
 * offset belong to the previous fragment and bytes from offset on to the new one.
 *
 * One-shot use: mkv_parse_buffer() returns an array of fragment descriptors.
 *
 * Bad input never crashes or hangs the reader: a malformed region flags the fragment
 * MKV_FRAG_MALFORMED (one log line names the cause) and the reader resynchronises at the next
 * EBML header magic; sizes are capped (see MKV_* limits below) so input cannot exhaust memory.
 *
 * Thread-safety: a struct mkv_reader is used by one thread at a time; distinct readers are
 * independent. mkv_parse_buffer() is reentrant.
 */
#ifndef KVSFS_MKV_H
#define KVSFS_MKV_H

#include <stddef.h>
#include <stdint.h>

struct log_ctx;

/* Limits (bytes). Elements over a limit are skipped (flag MKV_FRAG_SKIPPED) or, for framing
 * elements, reported as malformed. */
#define MKV_MAX_ELEMENT_SIZE (1024ull * 1024 * 1024) /* any element but Segment */
#define MKV_MAX_METADATA_SIZE (16u * 1024 * 1024)    /* Info, Tracks, Tags decoded in memory */
#define MKV_MAX_TAG_SIZE (1024u * 1024)              /* one Tag / SimpleTag / TrackEntry */
#define MKV_MAX_STRING_SIZE (64u * 1024)             /* one string or binary value */
#define MKV_MAX_TAGS 1024                            /* tags kept per fragment */
#define MKV_MAX_TRACKS 64                            /* tracks kept per fragment */
#define MKV_MAX_BLOCKGROUPS 100000                   /* per cluster, guards memory */
#define MKV_PENDING_MAX 16 /* undecided bytes a streaming caller must hold back */

#define MKV_CODEC_ID_MAX 64
#define MKV_FRAGMENT_NUMBER_MAX 96
#define MKV_ERROR_TEXT_MAX 512

/* Fragment flags. */
#define MKV_FRAG_COMPLETE 0x01  /* EBML header + Segment seen, every element ended where it should */
#define MKV_FRAG_TRUNCATED 0x02 /* ended (stream end or next EBML header) inside an element */
#define MKV_FRAG_MALFORMED 0x04 /* invalid EBML inside; bytes up to the next EBML header skipped */
#define MKV_FRAG_ERROR 0x08     /* a KVS error fragment (ERROR_CODE / EXCEPTION_ERROR_CODE ...) */
#define MKV_FRAG_NO_EBML 0x10   /* does not start with an EBML header (junk) */
#define MKV_FRAG_SKIPPED 0x20   /* a metadata element over a size limit was skipped */
#define MKV_FRAG_BAD_METADATA 0x40 /* an Info/Tracks/Tags element failed to decode */

/* Tag kinds: the KVS tag names are recognised in both spellings the docs and the service use. */
enum mkv_tag_kind {
	MKV_TAG_USER = 0,              /* anything not starting with AWS_KINESISVIDEO_ */
	MKV_TAG_AWS_OTHER,             /* AWS_KINESISVIDEO_* not listed below */
	MKV_TAG_FRAGMENT_NUMBER,       /* AWS_KINESISVIDEO_FRAGMENT_NUMBER */
	MKV_TAG_SERVER_TIMESTAMP,      /* ..._SERVER_TIMESTAMP or ..._SERVER_SIDE_TIMESTAMP */
	MKV_TAG_PRODUCER_TIMESTAMP,    /* ..._PRODUCER_TIMESTAMP or ..._PRODUCER_SIDE_TIMESTAMP */
	MKV_TAG_MILLIS_BEHIND_NOW,     /* ..._MILLIS_BEHIND_NOW */
	MKV_TAG_CONTINUATION_TOKEN,    /* ..._CONTINUATION_TOKEN */
	MKV_TAG_ERROR_CODE,            /* ..._ERROR_CODE */
	MKV_TAG_ERROR_ID,              /* ..._ERROR_ID */
	MKV_TAG_EXCEPTION_ERROR_CODE,  /* ..._EXCEPTION_ERROR_CODE */
	MKV_TAG_EXCEPTION_MESSAGE,     /* ..._EXCEPTION_MESSAGE */
};

struct mkv_tag {
	char *name;  /* NUL-trimmed, at most MKV_MAX_STRING_SIZE bytes */
	char *value; /* TagString (NUL-trimmed), "" for a binary or missing value */
	enum mkv_tag_kind kind;
};

/* Matroska TrackType values. */
#define MKV_TRACK_VIDEO 1
#define MKV_TRACK_AUDIO 2
#define MKV_TRACK_SUBTITLE 17

struct mkv_track {
	uint64_t number;
	uint64_t uid;
	unsigned type;                      /* MKV_TRACK_*, 0 when unknown/undeclared */
	int declared;                       /* 1 when a TrackEntry described it */
	char codec_id[MKV_CODEC_ID_MAX];    /* trimmed of NUL and space padding */
	uint64_t codec_private_size;        /* bytes (the data itself is not kept) */
	uint64_t default_duration_ns;       /* 0 when absent */
	unsigned width, height;             /* video, 0 when absent */
	double sampling_frequency;          /* audio, 0 when absent */
	unsigned channels;                  /* audio, 0 when absent */
	/* Block statistics over this fragment's clusters (timecodes in Segment ticks, absolute:
	 * cluster timecode + block's relative timecode). */
	uint64_t blocks, keyframes, frames;
	int64_t first_timecode, last_timecode, min_timecode, max_timecode;
};

/* One fragment. Owned by the reader while passed to a callback; mkv_parse_buffer() returns owned
 * copies (free with mkv_fragments_free). */
struct mkv_fragment {
	unsigned index;      /* 0-based position in the stream */
	uint64_t offset;     /* stream offset of its EBML header */
	uint64_t length;     /* bytes up to the next EBML header or the end of the stream */
	unsigned flags;      /* MKV_FRAG_* */
	char problem[160];   /* first problem found ("" when none) */
	char doc_type[32];   /* EBML DocType, NUL-trimmed */
	char fragment_number[MKV_FRAGMENT_NUMBER_MAX]; /* "" when absent */
	int has_server_timestamp, has_producer_timestamp, has_millis_behind_now;
	int64_t server_timestamp_ms;   /* ceil(seconds * 1000), as the parser library does */
	int64_t producer_timestamp_ms;
	int64_t millis_behind_now;
	char continuation_token[MKV_FRAGMENT_NUMBER_MAX];
	char error_code[128];               /* ERROR_CODE or EXCEPTION_ERROR_CODE, "" when none */
	char error_id[64];                  /* ERROR_ID, "" when none */
	char error_message[MKV_ERROR_TEXT_MAX]; /* EXCEPTION_MESSAGE (capped), "" when none */
	uint64_t timecode_scale;            /* ns per tick (Info), default 1000000 */
	unsigned clusters;                  /* Cluster elements seen */
	unsigned unsized_clusters;          /* of which had an unknown size (ended by a sibling) */
	int has_cluster_timecode;
	uint64_t cluster_timecode;          /* the first Cluster's Timecode (ticks) */
	uint64_t cluster_offset;            /* stream offset of the first Cluster (0 when none) */
	uint64_t blocks;                    /* all blocks of all tracks */
	int64_t duration_ms;                /* estimate from block timecodes, 0 when < 2 blocks */
	size_t ntracks;
	struct mkv_track *tracks;
	size_t ntags;
	struct mkv_tag *tags;               /* in stream order, at most MKV_MAX_TAGS */
};

/* One block (SimpleBlock, or the Block of a BlockGroup) as the block callback reports it. The
 * element's body is the stream bytes [offset, offset + size): head_len bytes of head (track
 * number, relative timecode, flags) then the lacing and frame data, which a writer copies. */
struct mkv_block {
	uint64_t track;
	int64_t timecode;      /* absolute, in Segment ticks (cluster timecode + relative) */
	int key;               /* SimpleBlock keyframe flag, or a BlockGroup without ReferenceBlock */
	uint8_t flags;         /* the block's flags byte as stored */
	int simple;            /* 1: SimpleBlock, 0: Block of a BlockGroup */
	uint64_t offset, size; /* the element's body in the stream */
	unsigned head_len;
};

/* Event callbacks; any may be NULL. Each returns 0 to continue or a negative errno to stop: the
 * push/finish call then returns that value and the reader refuses further input. Pointers passed
 * are valid only during the call. */
struct mkv_callbacks {
	void *opaque;
	/* A fragment begins at stream offset (its EBML header; 0 for leading junk). */
	int (*fragment_start)(void *opaque, unsigned index, uint64_t offset);
	/* A tag (SimpleTag) of fragment index, in stream order. */
	int (*tag)(void *opaque, unsigned index, const struct mkv_tag *tag);
	/* A TrackEntry was decoded (block statistics are still zero here). */
	int (*track)(void *opaque, unsigned index, const struct mkv_track *track);
	/* A Cluster's Timecode was read (or the cluster ended without one: has_timecode 0). */
	int (*cluster)(void *opaque, unsigned index, uint64_t offset, int has_timecode,
		       uint64_t timecode);
	/* The fragment ended; frag->offset + frag->length is one past its last byte. */
	int (*fragment_end)(void *opaque, const struct mkv_fragment *frag);
	/* A block was read (its frame data follows in the stream; see struct mkv_block). */
	int (*block)(void *opaque, unsigned index, const struct mkv_block *b);
	/* A metadata element collected whole (Info, Tracks, Tags, or a TrackEntry/Tag of an
	 * open-ended parent): id and its raw bytes, element header included, before decoding. */
	int (*element)(void *opaque, unsigned index, uint32_t id, const void *data, size_t len);
};

struct mkv_reader;

/* Creates a reader. cb is copied (NULL: no events); lg may be NULL (no logging) and must outlive
 * the reader. Returns NULL when out of memory. */
struct mkv_reader *mkv_reader_new(const struct mkv_callbacks *cb, struct log_ctx *lg);
/* Frees the reader (NULL allowed). No events are sent. */
void mkv_reader_free(struct mkv_reader *r);
/* Feeds len bytes of the stream. Returns 0, -ENOMEM, or a callback's negative errno (then the
 * reader is stopped and returns that error again). Malformed input is not an error here: it is
 * reported in the fragment's flags. */
int mkv_reader_push(struct mkv_reader *r, const void *data, size_t len);
/* Ends the stream: closes the last fragment (flagged truncated when it stops inside an element)
 * and sends its fragment_end. Returns like mkv_reader_push; afterwards only free is allowed. */
int mkv_reader_finish(struct mkv_reader *r);
/* Bytes pushed so far. */
uint64_t mkv_reader_offset(const struct mkv_reader *r);
/* Every byte before this offset belongs to a fragment whose fragment_start was already sent (or
 * to the next one to start exactly at this offset); bytes after it may still begin a new
 * fragment. offset - safe_offset <= MKV_PENDING_MAX. */
uint64_t mkv_reader_safe_offset(const struct mkv_reader *r);

/* Parses a whole in-memory stream. On success returns 0 and sets *out (malloc'd array, NULL when
 * no fragment) and *count; free with mkv_fragments_free. Returns -ENOMEM on allocation failure
 * (nothing to free). lg may be NULL. */
int mkv_parse_buffer(const void *data, size_t len, struct log_ctx *lg,
		     struct mkv_fragment **out, size_t *count);
/* Frees an array returned by mkv_parse_buffer (NULL allowed). */
void mkv_fragments_free(struct mkv_fragment *frags, size_t count);
/* Deep-copies src into dst (for keeping a fragment passed to fragment_end). Returns 0 or -ENOMEM
 * (dst is then empty). Free dst's contents with mkv_fragment_clear. */
int mkv_fragment_copy(struct mkv_fragment *dst, const struct mkv_fragment *src);
/* Frees the tracks and tags of f and zeroes it. */
void mkv_fragment_clear(struct mkv_fragment *f);
/* Classifies a tag name. */
enum mkv_tag_kind mkv_tag_kind_of(const char *name);
/* Parses a KVS timestamp "1511852109.126" (decimal seconds) to milliseconds, rounding up like the
 * parser library (ceil(x * 1000)), exactly (no floating point). Returns 0 or -EINVAL. */
int mkv_parse_timestamp_ms(const char *s, int64_t *ms);
/* Compares two raw Tracks elements (header included, as the element callback passes them):
 * 1 when they describe the same tracks (every element equal but TrackUID, Void and CRC-32, in
 * the same order), 0 when they differ, -EINVAL when either is not one well-formed sized Tracks.
 * Pure; bounded by the inputs' lengths. */
int mkv_tracks_same(const void *a, size_t alen, const void *b, size_t blen);
/* Human-readable name of a tag kind ("user", "fragment_number", ...). */
const char *mkv_tag_kind_name(enum mkv_tag_kind kind);

#endif
