/*
 * mp4_internal: what the files of the MP4 module share (private to src/media/mp4*.c).
 *
 * The module is split along its concepts:
 *   - mp4_box.c: reading boxes from memory (bounded by the parent), validated tables, reading
 *     the inputs, and writing boxes (sizes patched on close, duration boxes rewritten);
 *   - mp4_read.c: one input part: its top level, ftyp, moov, tracks and sample tables, and
 *     mp4_info_read;
 *   - mp4_tables.c: matching sample descriptions, and the output sample tables of a joined
 *     track built from every part's tables;
 *   - mp4_moov.c: the output moov, written from part 1's as a template;
 *   - mp4_join.c: the joiner (plan, layout, reads of the joined file).
 */
#ifndef KVSFS_MEDIA_MP4_INTERNAL_H
#define KVSFS_MEDIA_MP4_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "kvsfs/buf.h"
#include "kvsfs/mp4.h"

#define MP4_MOD "mp4"
#define FOURCC(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))
#define MAX_TOP_BOXES 4096
#define MAX_MDATS 64
#define MAX_STSD_ENTRIES 16
#define FTYP_MAX 4096
#define MAX_SAMPLES 0x7fffffffu

/* ---- errors (mp4_box.c) ---- */

struct ectx {
	struct log_ctx *lg;
	char *reason;
	size_t reason_len;
	int set;
};

/* Records the first failure: reason (once), one warning line. Returns err. */
int mp4_fail(struct ectx *e, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The input's name for messages ("input" when it has none). */
const char *mp4_in_name(const struct mp4_input *in);
/* A box type as text ('?' for unprintable bytes). */
void mp4_fourcc_str(uint32_t t, char out[5]);

/* ---- big-endian bytes ---- */

static inline uint32_t rd16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) << 32 | rd32(p + 4); }
static inline void wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}
static inline void wr64(uint8_t *p, uint64_t v)
{
	wr32(p, (uint32_t)(v >> 32));
	wr32(p + 4, (uint32_t)v);
}
static inline int put32(struct buf *b, uint32_t v)
{
	uint8_t t[4];
	wr32(t, v);
	return buf_append(b, t, 4);
}
static inline int put64(struct buf *b, uint64_t v)
{
	uint8_t t[8];
	wr64(t, v);
	return buf_append(b, t, 8);
}

/* ---- reading boxes (mp4_box.c) ---- */

struct box {
	uint32_t type;
	const uint8_t *start; /* whole box */
	size_t size;
	const uint8_t *p;     /* payload */
	size_t len;
};

/* Parses the box at p with avail bytes left in its parent. Returns 0, 1 (fewer than 8 bytes
 * left: the end), or -EBADMSG with a reason. */
int mp4_box_at(struct ectx *e, const uint8_t *p, size_t avail, struct box *b);

/* A validated table: payload pointer, entry count and entry base (after the count). */
struct tbl {
	const uint8_t *p;
	size_t len;
	int present;
	uint8_t version;
	uint32_t count;
	const uint8_t *ent;
};

/* -EBADMSG unless the payload holds at least min_len bytes. */
int mp4_full_box(struct ectx *e, const struct box *b, size_t min_len, const char *what);
/* Takes a "version/flags, u32 count, count * esize" table (after skip extra bytes before the
 * count), checking the count against the payload. */
int mp4_take_tbl(struct ectx *e, const struct box *b, struct tbl *t, size_t skip, size_t esize,
		 const char *what);
/* Reads len bytes of an input at off (pread, or memory). Returns 0, -EIO (short) or -errno. */
int mp4_in_read(const struct mp4_input *in, void *buf, size_t len, uint64_t off);

/* ---- writing boxes (mp4_box.c): each step does nothing once *rc is set ---- */

/* Opens a box of that type (size patched by mp4_box_end); returns its offset in b. */
size_t mp4_box_begin(struct buf *b, uint32_t type, int *rc);
/* Writes the size of the box opened at at (-EFBIG past 4 GiB). */
void mp4_box_end(struct buf *b, size_t at, int *rc);
/* Copies a whole box. */
void mp4_copy_box(struct buf *o, const struct box *b, int *rc);
/* Rewrites mvhd/tkhd/mdhd with a new duration (upgraded to version 1 when it needs 64 bits). */
void mp4_time_box(struct buf *o, const struct box *b, uint64_t dur, int is_tkhd, int *rc);

/* ---- one input part (mp4_read.c) ---- */

struct track {
	const uint8_t *trak; /* trak box in the moov buffer (template for part 1) */
	uint32_t id, handler, codec, timescale;
	uint16_t width, height;
	struct tbl stsd, stts, ctts, stss, stsz, stz2, stsc, stco, co64, sdtp, elst, sgpd, sbgp;
	int extra_groups;      /* more than one sgpd/sbgp: group info is dropped */
	uint32_t nsamples, nchunks, stsz_const, stz2_bits, stsd_count;
	uint64_t duration;     /* sum of stts */
};

struct mdat {
	uint64_t start, len;   /* payload range in the file */
	uint64_t out_rel;      /* offset of this payload within the output mdat payload */
};

struct part {
	struct mp4_input in;
	uint64_t fsize;
	uint8_t *ftyp;         /* whole ftyp box */
	size_t ftyp_len;
	uint8_t *moov;         /* moov payload */
	size_t moov_len;
	size_t nmdat;
	struct mdat mdat[MAX_MDATS];
	uint32_t movie_ts;
	uint64_t movie_dur;
	size_t ntracks;
	struct track tr[MP4_MAX_TRACKS];
};

/* Scans the top level, loads ftyp and moov, parses and checks the moov. */
int mp4_part_load(struct ectx *e, struct part *p, const struct mp4_input *in);
/* Frees what part_load allocated. */
void mp4_part_free(struct part *p);
/* Size of sample i / offset of chunk c (in bounds: the tables were checked). */
uint32_t mp4_sample_size(const struct track *t, uint32_t i);
uint64_t mp4_chunk_offset(const struct track *t, uint32_t c);
/* The public summary of a track. */
void mp4_track_summary(const struct track *t, struct mp4_track_info *ti);

/* ---- output sample tables (mp4_tables.c) ---- */

/* 1 when two stsd payloads describe the same codec configuration, 0 if not, -ENOMEM. */
int mp4_stsd_same(const struct tbl *a, const struct tbl *b, uint32_t handler);

/* Run-length coded (count, value) pairs as big-endian u32 pairs. */
struct rle {
	struct buf b;
	uint32_t n;
	int have;
	uint32_t last;
};

struct otrack {
	uint32_t timescale;
	uint32_t nsamples, nchunks;
	uint64_t media_dur;
	int64_t comp_end;
	struct rle stts, ctts, sbgp;
	int has_ctts, ctts_v1, has_stss, has_sdtp, groups;
	struct buf stss, stsz, stsc, sdtp, chunks; /* chunks: native uint64_t relative offsets */
	uint32_t nstss, nstsc, size0;
	int same_size;
	uint32_t last_spc, last_sdi;
	struct mp4_track_info info;
};

void mp4_otrack_free(struct otrack *o);
/* v ticks of timescale from, in timescale to (rounded to nearest). */
int64_t mp4_rescale(int64_t v, uint32_t to, uint32_t from);
/* Appends part p's track t (matched with output track o) to o's tables. */
int mp4_append_track(struct ectx *e, struct otrack *o, const struct track *t,
		     const struct part *p, int all_sdtp, int all_groups);

/* ---- the output moov (mp4_moov.c) ---- */

struct emit {
	struct buf *head;
	struct part *p0;
	struct otrack *ot;
	uint64_t base;  /* absolute offset of the output mdat payload */
	int co64;
	uint64_t *tkhd_dur;
	uint64_t movie_dur;
};

struct edit {
	uint64_t seg;
	int64_t mt;
	uint32_t rate;
};

/* Output elst from part 1's: entries up to the first one with media (media_time >= 0), whose
 * duration becomes the whole joined presentation from its media_time; later entries dropped.
 * Fills up to 64 entries and returns their count; *tkdur gets the sum of the durations. */
size_t mp4_edits(const struct track *t, const struct otrack *o, uint32_t movie_ts,
		 struct edit *ed, uint64_t *tkdur, int *v1);
/* Appends the output moov to m->head. Returns 0 or -ENOMEM/-EFBIG. */
int mp4_emit_moov(struct emit *m);

#endif
