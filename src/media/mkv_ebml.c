/*
 * mkv_ebml: the byte-level EBML framer of the Matroska reader (see include/kvsfs/mkv.h,
 * docs/MKV.md and src/media/mkv_internal.h).
 *
 * Design: element headers are read byte by byte (header_byte) and each complete header goes to
 * on_header, which finds the element's parent (ending open-ended elements that cannot hold it),
 * checks its size and dispatches on the parent's kind: the top level, a Segment, an open-ended
 * metadata master, a Cluster or a BlockGroup. A small stack of open masters (Segment, Cluster,
 * BlockGroup, or an unknown-size metadata master) tracks nesting. Every EBML header ID seen
 * where an element header is expected starts a fragment and closes everything open;
 * unknown-size elements end at the first ID that cannot be their child (a Cluster at any
 * level-1 ID or EBML header, a Segment at an EBML header or another Segment). Cluster
 * Timecodes and the first bytes of every SimpleBlock/Block (track, relative timecode, flags,
 * lacing) are read (on_head); frame data is skipped. Unknown children (Position, CRC-32, Void,
 * anything of known size) never end a Cluster: this is why the framing is not left to libwebm.
 *
 * Invariants: the reader holds at most one element header (<= 12 bytes) of undecided bytes;
 * every byte is examined a bounded number of times (a malformed header is rescanned once from
 * its second byte for the EBML magic, in RS_RESYNC), so any input terminates in linear time.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mkv_internal.h"

static const uint8_t ebml_magic[4] = { 0x1A, 0x45, 0xDF, 0xA3 };

/* The element whose header was just read. */
struct el {
	uint32_t id;
	uint64_t start, size, end; /* size and end: UNKNOWN_SIZE when open-ended */
};

/* Pops the top context; cut_at is where it stops. A known-size element stopped before its end
 * marks the fragment truncated (truncated != 0) or malformed. */
void mkv_pop_ctx(struct mkv_reader *r, uint64_t cut_at, int truncated)
{
	struct ctx *c = &r->stack[--r->depth];
	if (c->end != UNKNOWN_SIZE && c->end > cut_at) {
		if (truncated)
			mkv_problem(r, MKV_FRAG_TRUNCATED, "element 0x%" PRIX32 " at %" PRIu64
				    " cut short by %" PRIu64 " bytes", c->id, c->start, c->end - cut_at);
		else
			mkv_problem(r, MKV_FRAG_MALFORMED, "element 0x%" PRIX32 " at %" PRIu64
				    " ends early at a level-1 element", c->id, c->start);
	}
	if (c->kind == CTX_BLOCKGROUP)
		mkv_blockgroup_end(r);
	else if (c->kind == CTX_CLUSTER)
		mkv_cluster_end(r);
}

void mkv_pop_all(struct mkv_reader *r, uint64_t cut_at, int truncated)
{
	while (r->depth && r->state != RS_STOPPED)
		mkv_pop_ctx(r, cut_at, truncated);
}

static int is_level1(uint32_t id)
{
	switch (id) {
	case ID_SEEKHEAD: case ID_INFO: case ID_TRACKS: case ID_CLUSTER: case ID_CUES:
	case ID_CHAPTERS: case ID_TAGS: case ID_ATTACHMENTS:
		return 1;
	}
	return 0;
}

static int is_blockgroup_child(uint32_t id)
{
	switch (id) {
	case 0xA1: case 0xA2: case 0x75A1: case 0x9B: case 0xFA: case 0xFB: case 0xFD: case 0xA4:
	case 0x75A2: case 0x8E: case 0xC8: case ID_CRC32: case ID_VOID:
		return 1;
	}
	return 0;
}

/* Whether an open-ended context accepts id as a child. */
static int accepts(const struct ctx *c, uint32_t id)
{
	switch (c->kind) {
	case CTX_SEGMENT:
		return id != ID_SEGMENT;
	case CTX_CLUSTER:
	case CTX_GENERIC:
		return id != ID_SEGMENT && !is_level1(id);
	case CTX_BLOCKGROUP:
		return is_blockgroup_child(id);
	}
	return 0;
}

/* Opens a master element (its children are read next). */
static void push_ctx(struct mkv_reader *r, const struct el *e, enum ctx_kind kind)
{
	struct ctx *c = &r->stack[r->depth++];
	c->id = e->id;
	c->kind = kind;
	c->start = e->start;
	c->end = e->end;
	r->state = RS_HEADER;
}

static void start_resync(struct mkv_reader *r)
{
	mkv_pop_all(r, r->pos, 0);
	if (r->state == RS_STOPPED)
		return;
	r->state = RS_RESYNC;
	r->magic_match = 0;
}

/* The header just read is bad: flag, then rescan its bytes after the first for the EBML magic. */
static void bad_header(struct mkv_reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bad_header(struct mkv_reader *r, const char *fmt, ...)
{
	char msg[128];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	uint64_t start = r->pos - r->hdr_len;
	mkv_problem(r, MKV_FRAG_MALFORMED, "%s at offset %" PRIu64, msg, start);
	uint8_t again[12];
	unsigned n = r->hdr_len - 1;
	memcpy(again, r->hdr + 1, n);
	r->hdr_len = 0;
	start_resync(r);
	if (r->state == RS_STOPPED)
		return;
	r->pos = start + 1;
	mkv_process(r, again, n);
	r->rescanned = 1;
}

static void begin_skip(struct mkv_reader *r, uint64_t size)
{
	r->remaining = size;
	r->state = size ? RS_SKIP : RS_HEADER;
}

static void on_head(struct mkv_reader *r);

static void begin_head(struct mkv_reader *r, enum head_use use, uint64_t size, unsigned want)
{
	r->head_use = use;
	r->head_len = 0;
	r->head_want = size < want ? (unsigned)size : want;
	r->remaining = size - r->head_want;
	if (r->head_want == 0) {
		on_head(r);
		if (r->state != RS_STOPPED)
			begin_skip(r, r->remaining);
	} else {
		r->state = RS_HEAD;
	}
}

static int parse_vint(const uint8_t *p, unsigned n, unsigned *len, uint64_t *val)
{
	if (n == 0 || p[0] == 0)
		return -1;
	unsigned l = 1;
	while (!(p[0] & (0x80 >> (l - 1))))
		l++;
	if (l > n)
		return -1;
	uint64_t v = p[0] & ((0x80u >> (l - 1)) - 1);
	for (unsigned i = 1; i < l; i++)
		v = (v << 8) | p[i];
	*len = l;
	*val = v;
	return 0;
}

static void on_head(struct mkv_reader *r)
{
	struct frag_build *fb = &r->fb;
	const uint8_t *h = r->head;
	unsigned n = r->head_len;
	uint64_t v = 0;
	switch (r->head_use) {
	case HEAD_TIMECODE:
	case HEAD_TCSCALE:
		for (unsigned i = 0; i < n; i++)
			v = (v << 8) | h[i];
		if (r->head_use == HEAD_TCSCALE) {
			if (v > 0 && v <= 1000000000000ull)
				fb->f.timecode_scale = v;
			return;
		}
		if (!fb->in_cluster || fb->cl_event_sent)
			return; /* a second Timecode is ignored */
		fb->cl_tc = v;
		fb->cl_has_tc = 1;
		if (!fb->f.has_cluster_timecode) {
			fb->f.has_cluster_timecode = 1;
			fb->f.cluster_timecode = v;
		}
		mkv_emit_cluster(r);
		return;
	case HEAD_SIMPLEBLOCK:
	case HEAD_BLOCK: {
		unsigned l;
		uint64_t track;
		if (parse_vint(h, n, &l, &track) || n < l + 3)
			return; /* too short to be a block: not counted */
		int16_t rel = (int16_t)(uint16_t)((h[l] << 8) | h[l + 1]);
		uint8_t flags = h[l + 2];
		unsigned frames = 1;
		if ((flags & 0x06) && n >= l + 4)
			frames = h[l + 3] + 1u;
		if (r->head_use == HEAD_SIMPLEBLOCK) {
			mkv_record_block(r, track, rel, (flags & 0x80) != 0, frames, flags, l + 3, 1);
		} else {
			fb->bg_has_block = 1;
			fb->bg_track = track;
			fb->bg_tc = rel;
			fb->bg_frames = frames;
			fb->bg_flags = flags;
			fb->bg_head_len = l + 3;
		}
		return;
	}
	}
}

static void skip_too_large(struct mkv_reader *r, const struct el *e)
{
	mkv_problem(r, MKV_FRAG_SKIPPED, "element 0x%" PRIX32 " of %" PRIu64 " bytes skipped", e->id,
		    e->size);
	begin_skip(r, e->size);
}

/* An EBML header: starts a fragment (unless it opens the current, junk-free one). */
static void on_ebml_header(struct mkv_reader *r, const struct el *e)
{
	struct frag_build *fb = &r->fb;
	if (e->size == UNKNOWN_SIZE || e->size > MAX_EBML_HEADER) {
		bad_header(r, "EBML header of bad size");
		return;
	}
	int same = fb->active && !fb->had_ebml && fb->f.offset == e->start;
	if (same) {
		fb->had_ebml = 1;
	} else {
		mkv_fragment_end(r, e->start);
		if (r->state == RS_STOPPED)
			return;
		mkv_fragment_begin(r, e->start, 1);
		if (r->state == RS_STOPPED)
			return;
	}
	mkv_begin_capture(r, e->size);
}

/* Ends open-ended elements that cannot hold id (and a sized Cluster or BlockGroup cut by a
 * level-1 ID). Returns the parent, or NULL at the top level; *stopped when a callback stopped. */
static struct ctx *find_parent(struct mkv_reader *r, const struct el *e, int *stopped)
{
	*stopped = 0;
	while (r->depth) {
		struct ctx *top = &r->stack[r->depth - 1];
		if (top->end == UNKNOWN_SIZE) {
			if (accepts(top, e->id))
				break;
			mkv_pop_ctx(r, e->start, 0);
		} else if ((top->kind == CTX_CLUSTER || top->kind == CTX_BLOCKGROUP) &&
			   (is_level1(e->id) || e->id == ID_SEGMENT)) {
			mkv_pop_ctx(r, e->start, 0); /* a sized Cluster that stopped early */
		} else {
			break;
		}
		if (r->state == RS_STOPPED) {
			*stopped = 1;
			return NULL;
		}
	}
	return r->depth ? &r->stack[r->depth - 1] : NULL;
}

/* Sizes: bounded, and inside a sized parent. Returns 0 (bad_header called) or 1. */
static int size_fits(struct mkv_reader *r, const struct ctx *parent, const struct el *e)
{
	if (e->size == UNKNOWN_SIZE)
		return 1;
	if (e->id != ID_SEGMENT && e->size > MKV_MAX_ELEMENT_SIZE) {
		bad_header(r, "element 0x%" PRIX32 " of absurd size %" PRIu64, e->id, e->size);
		return 0;
	}
	if (parent && parent->end != UNKNOWN_SIZE && e->size > parent->end - r->pos) {
		bad_header(r, "element 0x%" PRIX32 " overflows its parent", e->id);
		return 0;
	}
	return 1;
}

/* At the top level only a Segment (after an EBML header) or a sized Void may stand. */
static void top_level(struct mkv_reader *r, const struct el *e)
{
	if (e->id == ID_SEGMENT) {
		if (!r->fb.had_ebml) {
			bad_header(r, "Segment without EBML header");
			return;
		}
		r->fb.had_segment = 1;
		push_ctx(r, e, CTX_SEGMENT);
	} else if (e->id == ID_VOID && e->size != UNKNOWN_SIZE) {
		begin_skip(r, e->size);
	} else {
		bad_header(r, "unexpected top-level element 0x%" PRIX32, e->id);
	}
}

/* Children of a Segment: Clusters, and the metadata decoded by libwebm. Returns 1 if handled. */
static int segment_child(struct mkv_reader *r, const struct el *e)
{
	struct frag_build *fb = &r->fb;
	if (e->id == ID_CLUSTER) {
		push_ctx(r, e, CTX_CLUSTER);
		fb->in_cluster = 1;
		fb->cl_has_tc = 0;
		fb->cl_event_sent = 0;
		fb->cl_offset = e->start;
		fb->cl_blockgroups = 0;
		if (fb->f.clusters++ == 0)
			fb->f.cluster_offset = e->start;
		if (e->size == UNKNOWN_SIZE)
			fb->f.unsized_clusters++;
		return 1;
	}
	if (e->id != ID_INFO && e->id != ID_TRACKS && e->id != ID_TAGS)
		return 0;
	if (e->size == UNKNOWN_SIZE)
		push_ctx(r, e, CTX_GENERIC);
	else if (e->size > MKV_MAX_METADATA_SIZE)
		skip_too_large(r, e);
	else
		mkv_begin_capture(r, e->size);
	return 1;
}

/* Children of an open-ended Info/Tracks/Tags: each Tag or TrackEntry is decoded on its own. */
static int generic_child(struct mkv_reader *r, const struct ctx *parent, const struct el *e)
{
	if (e->size == UNKNOWN_SIZE)
		return 0;
	if ((parent->id == ID_TAGS && e->id == ID_TAG) ||
	    (parent->id == ID_TRACKS && e->id == ID_TRACKENTRY)) {
		if (e->size > MKV_MAX_TAG_SIZE)
			skip_too_large(r, e);
		else
			mkv_begin_capture(r, e->size);
		return 1;
	}
	if (parent->id == ID_INFO && e->id == ID_TIMECODESCALE) {
		begin_head(r, HEAD_TCSCALE, e->size, 8);
		return 1;
	}
	return 0;
}

/* Children of a Cluster: its Timecode, blocks (only their first bytes are read), BlockGroups. */
static int cluster_child(struct mkv_reader *r, const struct el *e)
{
	struct frag_build *fb = &r->fb;
	if (e->size == UNKNOWN_SIZE && e->id != ID_BLOCKGROUP)
		return 0;
	switch (e->id) {
	case ID_TIMECODE:
		begin_head(r, HEAD_TIMECODE, e->size, 8);
		return 1;
	case ID_SIMPLEBLOCK:
		fb->blk_off = r->pos;
		fb->blk_size = e->size;
		begin_head(r, HEAD_SIMPLEBLOCK, e->size, 12);
		return 1;
	case ID_BLOCKGROUP:
		if (++fb->cl_blockgroups > MKV_MAX_BLOCKGROUPS) {
			bad_header(r, "more than %d BlockGroups in a Cluster", MKV_MAX_BLOCKGROUPS);
			return 1;
		}
		push_ctx(r, e, CTX_BLOCKGROUP);
		fb->bg_has_block = 0;
		fb->bg_has_ref = 0;
		return 1;
	}
	return 0;
}

static int blockgroup_child(struct mkv_reader *r, const struct el *e)
{
	if (e->id == ID_BLOCK && e->size != UNKNOWN_SIZE) {
		r->fb.blk_off = r->pos;
		r->fb.blk_size = e->size;
		begin_head(r, HEAD_BLOCK, e->size, 12);
		return 1;
	}
	if (e->id == ID_REFERENCEBLOCK)
		r->fb.bg_has_ref = 1;
	return 0;
}

/* Called with a complete element header in r->hdr. */
static void on_header(struct mkv_reader *r, uint32_t id, uint64_t size)
{
	struct el e = { id, r->pos - r->hdr_len, size,
			size == UNKNOWN_SIZE ? UNKNOWN_SIZE : r->pos + size };
	r->el_id = id;
	r->el_start = e.start;
	if (id == ID_EBML) {
		on_ebml_header(r, &e);
		return;
	}
	int stopped;
	struct ctx *parent = find_parent(r, &e, &stopped);
	if (stopped || !size_fits(r, parent, &e))
		return;
	if (!parent) {
		top_level(r, &e);
		return;
	}
	if (r->depth >= MAX_DEPTH - 1) {
		bad_header(r, "elements nested too deep");
		return;
	}
	int done = 0;
	switch (parent->kind) {
	case CTX_SEGMENT:
		done = segment_child(r, &e);
		break;
	case CTX_GENERIC:
		done = generic_child(r, parent, &e);
		break;
	case CTX_CLUSTER:
		done = cluster_child(r, &e);
		break;
	case CTX_BLOCKGROUP:
		done = blockgroup_child(r, &e);
		break;
	}
	if (done)
		return;
	/* Anything else: skip it if it is sized; an open-ended unknown master is walked generically
	 * at level 1 only. */
	if (size != UNKNOWN_SIZE)
		begin_skip(r, size);
	else if (parent->kind == CTX_SEGMENT)
		push_ctx(r, &e, CTX_GENERIC);
	else
		bad_header(r, "element 0x%" PRIX32 " of unknown size", id);
}

/* Pops sized contexts that end exactly here (called between elements). */
static void close_finished(struct mkv_reader *r)
{
	while (r->depth && r->state != RS_STOPPED) {
		struct ctx *top = &r->stack[r->depth - 1];
		if (top->end == UNKNOWN_SIZE || top->end > r->pos)
			break;
		mkv_pop_ctx(r, r->pos, 1);
	}
}

static size_t header_byte(struct mkv_reader *r, uint8_t b)
{
	if (r->hdr_len == 0)
		close_finished(r);
	if (r->state == RS_STOPPED)
		return 0;
	r->hdr[r->hdr_len++] = b;
	r->pos++;
	unsigned id_len = 1;
	while (id_len <= 4 && !(r->hdr[0] & (0x80 >> (id_len - 1))))
		id_len++;
	if (id_len > 4) {
		bad_header(r, "invalid element ID");
		return 1;
	}
	if (r->hdr_len <= id_len)
		return 1;
	uint8_t s0 = r->hdr[id_len];
	if (s0 == 0) {
		bad_header(r, "invalid element size");
		return 1;
	}
	unsigned size_len = 1;
	while (!(s0 & (0x80 >> (size_len - 1))))
		size_len++;
	if (r->hdr_len < id_len + size_len)
		return 1;
	uint32_t id = 0;
	for (unsigned i = 0; i < id_len; i++)
		id = (id << 8) | r->hdr[i];
	uint64_t size = s0 & ((0x80u >> (size_len - 1)) - 1);
	/* all value bits set means "unknown size", whatever the width */
	int unknown = size == (0x80u >> (size_len - 1)) - 1;
	for (unsigned i = 1; i < size_len; i++) {
		uint8_t c = r->hdr[id_len + i];
		size = (size << 8) | c;
		if (c != 0xff)
			unknown = 0;
	}
	if (unknown)
		size = UNKNOWN_SIZE;
	r->rescanned = 0;
	on_header(r, id, size);
	if (!r->rescanned)
		r->hdr_len = 0;
	return 1;
}

/* Consumes bytes of p; may be re-entered (bad_header rescans up to 11 bytes). */
void mkv_process(struct mkv_reader *r, const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		switch (r->state) {
		case RS_STOPPED:
		case RS_DONE:
			return;
		case RS_HEADER:
			i += header_byte(r, p[i]);
			break;
		case RS_SKIP: {
			uint64_t k = n - i < r->remaining ? n - i : r->remaining;
			r->remaining -= k;
			r->pos += k;
			i += (size_t)k;
			if (r->remaining == 0)
				r->state = RS_HEADER;
			break;
		}
		case RS_HEAD: {
			while (i < n && r->head_len < r->head_want) {
				r->head[r->head_len++] = p[i++];
				r->pos++;
			}
			if (r->head_len == r->head_want) {
				on_head(r);
				if (r->state != RS_STOPPED)
					begin_skip(r, r->remaining);
			}
			break;
		}
		case RS_CAPTURE: {
			uint64_t k = n - i < r->remaining ? n - i : r->remaining;
			if (mkv_capture_append(r, p + i, (size_t)k))
				return;
			r->remaining -= k;
			r->pos += k;
			i += (size_t)k;
			if (r->remaining == 0)
				mkv_capture_end(r);
			break;
		}
		case RS_RESYNC: {
			uint8_t b = p[i++];
			r->pos++;
			if (b == ebml_magic[r->magic_match])
				r->magic_match++;
			else
				r->magic_match = b == ebml_magic[0] ? 1 : 0;
			if (r->magic_match == 4) {
				memcpy(r->hdr, ebml_magic, 4);
				r->hdr_len = 4;
				r->magic_match = 0;
				r->state = RS_HEADER;
			}
			break;
		}
		}
	}
}
