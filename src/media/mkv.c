/*
 * mkv: streaming Matroska reader for KVS media bodies (see include/kvsfs/mkv.h and docs/MKV.md).
 *
 * This file holds the reader's public API and the one-shot parse; the framer is in mkv_ebml.c,
 * the fragment model in mkv_fragment.c, the libwebm side in mkv_meta.c (see mkv_internal.h).
 *
 * Design. Two layers:
 *  - A byte-level EBML framer, here in C, that walks element headers as bytes arrive and keeps a
 *    small stack of open master elements (Segment, Cluster, BlockGroup, or an unknown-size
 *    metadata master). It decides fragment boundaries (every EBML header ID seen where an element
 *    header is expected starts a fragment and closes everything open), ends unknown-size elements
 *    at the first ID that cannot be their child (a Cluster ends at any level-1 ID or EBML header,
 *    a Segment at an EBML header or another Segment), reads Cluster Timecodes and the first bytes
 *    of every SimpleBlock/Block (track, relative timecode, flags, lacing), and skips frame data.
 *    Unknown children (Position, CRC-32, Void, anything of known size) never end a Cluster --
 *    this is why the framing is not left to libwebm, whose unknown-size masters end at the first
 *    ID they do not know (e.g. Position in PIC-produced clusters), which then ends the Segment.
 *  - libwebm's webm_parser (webm_reader.cc) decodes the metadata elements the framer hands it:
 *    the EBML header, Info, Tracks and Tags (or, inside unknown-size ones, each TrackEntry/Tag).
 *
 * Invariants: fragment i covers [offset_i, offset_{i+1}); fragment 0 starts at offset 0 (its
 * fragment_start is sent on the first pushed byte); the reader holds at most one element header
 * (<= 12 bytes) of undecided bytes; decoded metadata is bounded by the MKV_MAX_* limits; every
 * byte is examined a bounded number of times (a malformed header is rescanned once from its second
 * byte for the EBML magic), so any input terminates in linear time.
 */
#include "kvsfs/mkv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvsfs/array.h"
#include "kvsfs/log.h"
#include "mkv_internal.h"

void mkv_stop(struct mkv_reader *r, int rc)
{
	if (r->state == RS_STOPPED)
		return;
	r->stop_rc = rc < 0 ? rc : -ECANCELED;
	r->state = RS_STOPPED;
}

/* Records the first problem of the current fragment; logs it once. */
void mkv_problem(struct mkv_reader *r, unsigned flag, const char *fmt, ...)
{
	struct mkv_fragment *f = &r->fb.f;
	f->flags |= flag;
	if (f->problem[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->problem, sizeof(f->problem), fmt, ap);
	va_end(ap);
	LOG_WARN(r->lg, MKV_MOD, "fragment %u at offset %" PRIu64 ": %s", f->index, f->offset, f->problem);
}

/* ---------- public API ---------- */

struct mkv_reader *mkv_reader_new(const struct mkv_callbacks *cb, struct log_ctx *lg)
{
	struct mkv_reader *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	if (cb)
		r->cb = *cb;
	r->lg = lg;
	r->wr = mkv_meta_decoder_new(r);
	if (!r->wr) {
		free(r);
		return NULL;
	}
	r->state = RS_HEADER;
	return r;
}

void mkv_reader_free(struct mkv_reader *r)
{
	if (!r)
		return;
	mkv_fragment_clear(&r->fb.f);
	buf_free(&r->cap);
	mkv_wr_free(r->wr);
	free(r);
}

int mkv_reader_push(struct mkv_reader *r, const void *data, size_t len)
{
	if (r->state == RS_STOPPED)
		return r->stop_rc;
	if (r->state == RS_DONE)
		return -EINVAL;
	if (len == 0)
		return 0;
	if (!r->fb.active && r->nfrags == 0) {
		mkv_fragment_begin(r, 0, 0);
		if (r->state == RS_STOPPED)
			return r->stop_rc;
	}
	mkv_process(r, data, len);
	return r->state == RS_STOPPED ? r->stop_rc : 0;
}

int mkv_reader_finish(struct mkv_reader *r)
{
	if (r->state == RS_STOPPED)
		return r->stop_rc;
	if (r->state == RS_DONE)
		return 0;
	if (r->fb.active) {
		switch (r->state) {
		case RS_HEADER:
			if (r->hdr_len)
				mkv_problem(r, MKV_FRAG_TRUNCATED, "stream ends inside an element header");
			break;
		case RS_SKIP:
		case RS_HEAD:
			mkv_problem(r, MKV_FRAG_TRUNCATED, "stream ends %" PRIu64 " bytes early inside"
				    " element 0x%" PRIX32 " at %" PRIu64,
				r->remaining + (r->state == RS_HEAD ? r->head_want - r->head_len : 0),
				r->el_id, r->el_start);
			break;
		case RS_CAPTURE:
			mkv_problem(r, MKV_FRAG_TRUNCATED, "stream ends %" PRIu64 " bytes early inside"
				    " element 0x%" PRIX32 " at %" PRIu64, r->remaining, r->el_id, r->el_start);
			mkv_capture_end(r); /* deliver what can be decoded */
			break;
		default:
			break;
		}
		if (r->state != RS_STOPPED)
			mkv_fragment_end(r, r->pos);
	}
	if (r->state == RS_STOPPED)
		return r->stop_rc;
	r->state = RS_DONE;
	return 0;
}

uint64_t mkv_reader_offset(const struct mkv_reader *r)
{
	return r->pos;
}

uint64_t mkv_reader_safe_offset(const struct mkv_reader *r)
{
	if (r->state == RS_HEADER)
		return r->pos - r->hdr_len;
	if (r->state == RS_RESYNC)
		return r->pos - r->magic_match;
	return r->pos;
}

/* ---------- one-shot ---------- */

struct collect {
	struct mkv_fragment *v;
	size_t n, cap;
};

static int collect_end(void *opaque, const struct mkv_fragment *f)
{
	struct collect *c = opaque;
	struct mkv_fragment *v = array_grow(c->v, c->n, &c->cap, sizeof(*v), 8);
	if (!v)
		return -ENOMEM;
	c->v = v;
	if (mkv_fragment_copy(&c->v[c->n], f))
		return -ENOMEM;
	c->n++;
	return 0;
}

int mkv_parse_buffer(const void *data, size_t len, struct log_ctx *lg,
		     struct mkv_fragment **out, size_t *count)
{
	struct collect c = { 0 };
	struct mkv_callbacks cb = { .opaque = &c, .fragment_end = collect_end };
	*out = NULL;
	*count = 0;
	struct mkv_reader *r = mkv_reader_new(&cb, lg);
	if (!r)
		return -ENOMEM;
	int rc = mkv_reader_push(r, data, len);
	if (!rc)
		rc = mkv_reader_finish(r);
	mkv_reader_free(r);
	if (rc) {
		mkv_fragments_free(c.v, c.n);
		return rc;
	}
	*out = c.v;
	*count = c.n;
	return 0;
}

void mkv_fragments_free(struct mkv_fragment *frags, size_t count)
{
	if (!frags)
		return;
	for (size_t i = 0; i < count; i++)
		mkv_fragment_clear(&frags[i]);
	free(frags);
}
