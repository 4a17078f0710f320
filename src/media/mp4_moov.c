/*
 * mp4_moov: the output moov of a join (see src/media/mp4_internal.h).
 *
 * Design: the moov is emitted by walking part 1's moov as a template: mvhd/tkhd/mdhd durations
 * are rewritten (upgraded to version 1 when a duration no longer fits 32 bits), edts/elst and
 * stbl are regenerated from the joined tables (struct otrack), every other box is copied. The
 * elst keeps part 1's edits up to the first one with media, whose duration becomes the whole
 * joined presentation. Chunk offsets are written as stco or co64 (m->co64) from the payload
 * base m->base, which mp4_join.c settles by emitting until the layout is stable.
 * Invariants: the walk follows only moov/trak/mdia/minf, so its depth is bounded; writing stops
 * at the first error (int *rc).
 */
#include <errno.h>

#include "mp4_internal.h"

size_t mp4_edits(const struct track *t, const struct otrack *o, uint32_t movie_ts,
		 struct edit *ed, uint64_t *tkdur, int *v1)
{
	const struct tbl *el = &t->elst;
	size_t n = 0;
	*v1 = el->version == 1;
	*tkdur = 0;
	for (uint32_t i = 0; i < el->count && n < 64; i++) {
		const uint8_t *q = el->ent + (*v1 ? 20 : 12) * (size_t)i;
		struct edit *x = &ed[n++];
		x->seg = *v1 ? rd64(q) : rd32(q);
		x->mt = *v1 ? (int64_t)rd64(q + 8) : (int64_t)(int32_t)rd32(q + 4);
		x->rate = rd32(q + (*v1 ? 16 : 8));
		if (x->mt >= 0) {
			int64_t span = o->comp_end - x->mt;
			x->seg = span > 0 ? (uint64_t)mp4_rescale(span, movie_ts, o->timescale) : 0;
			break;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (ed[i].seg > ((uint64_t)1 << 62))
			ed[i].seg = (uint64_t)1 << 62;
		*tkdur += ed[i].seg;
		if (ed[i].seg > UINT32_MAX || ed[i].mt > INT32_MAX || ed[i].mt < INT32_MIN)
			*v1 = 1;
	}
	return n;
}

static void emit_edts(struct emit *m, const struct track *t, const struct otrack *o, int *rc)
{
	struct edit ed[64];
	uint64_t tkdur;
	int v1;
	size_t n = mp4_edits(t, o, m->p0->movie_ts, ed, &tkdur, &v1);
	struct buf *b = m->head;
	size_t eb = mp4_box_begin(b, FOURCC('e', 'd', 't', 's'), rc);
	size_t at = mp4_box_begin(b, FOURCC('e', 'l', 's', 't'), rc);
	if (!*rc)
		*rc = put32(b, v1 ? 0x01000000u : 0);
	if (!*rc)
		*rc = put32(b, (uint32_t)n);
	for (size_t i = 0; i < n && !*rc; i++) {
		if (v1) {
			*rc = put64(b, ed[i].seg);
			if (!*rc)
				*rc = put64(b, (uint64_t)ed[i].mt);
		} else {
			*rc = put32(b, (uint32_t)ed[i].seg);
			if (!*rc)
				*rc = put32(b, (uint32_t)ed[i].mt);
		}
		if (!*rc)
			*rc = put32(b, ed[i].rate);
	}
	mp4_box_end(b, at, rc);
	mp4_box_end(b, eb, rc);
}

static void emit_stbl(struct emit *m, const struct track *t, const struct otrack *o, int *rc)
{
	struct buf *b = m->head;
	size_t st = mp4_box_begin(b, FOURCC('s', 't', 'b', 'l'), rc), at;
	/* stsd: part 1's */
	at = mp4_box_begin(b, FOURCC('s', 't', 's', 'd'), rc);
	if (!*rc)
		*rc = buf_append(b, t->stsd.p, t->stsd.len);
	mp4_box_end(b, at, rc);
	at = mp4_box_begin(b, FOURCC('s', 't', 't', 's'), rc);
	if (!*rc && !(*rc = put32(b, 0)) && !(*rc = put32(b, o->stts.n)))
		*rc = buf_append(b, o->stts.b.data, o->stts.b.len);
	mp4_box_end(b, at, rc);
	if (o->has_ctts) {
		at = mp4_box_begin(b, FOURCC('c', 't', 't', 's'), rc);
		if (!*rc && !(*rc = put32(b, o->ctts_v1 ? 0x01000000u : 0)) && !(*rc = put32(b, o->ctts.n)))
			*rc = buf_append(b, o->ctts.b.data, o->ctts.b.len);
		mp4_box_end(b, at, rc);
	}
	if (o->has_stss) {
		at = mp4_box_begin(b, FOURCC('s', 't', 's', 's'), rc);
		if (!*rc && !(*rc = put32(b, 0)) && !(*rc = put32(b, o->nstss)))
			*rc = buf_append(b, o->stss.data, o->stss.len);
		mp4_box_end(b, at, rc);
	}
	if (o->has_sdtp) {
		at = mp4_box_begin(b, FOURCC('s', 'd', 't', 'p'), rc);
		if (!*rc && !(*rc = put32(b, 0)))
			*rc = buf_append(b, o->sdtp.data, o->sdtp.len);
		mp4_box_end(b, at, rc);
	}
	at = mp4_box_begin(b, FOURCC('s', 't', 's', 'c'), rc);
	if (!*rc && !(*rc = put32(b, 0)) && !(*rc = put32(b, o->nstsc)))
		*rc = buf_append(b, o->stsc.data, o->stsc.len);
	mp4_box_end(b, at, rc);
	at = mp4_box_begin(b, FOURCC('s', 't', 's', 'z'), rc);
	int konst = o->same_size && o->nsamples > 0 && o->size0 > 0;
	if (!*rc && !(*rc = put32(b, 0)) && !(*rc = put32(b, konst ? o->size0 : 0)) &&
	    !(*rc = put32(b, o->nsamples)) && !konst)
		*rc = buf_append(b, o->stsz.data, o->stsz.len);
	mp4_box_end(b, at, rc);
	at = mp4_box_begin(b, m->co64 ? FOURCC('c', 'o', '6', '4') : FOURCC('s', 't', 'c', 'o'), rc);
	if (!*rc && !(*rc = put32(b, 0)))
		*rc = put32(b, o->nchunks);
	const uint64_t *rel = (const uint64_t *)(const void *)o->chunks.data;
	for (uint32_t i = 0; i < o->nchunks && !*rc; i++)
		*rc = m->co64 ? put64(b, m->base + rel[i]) : put32(b, (uint32_t)(m->base + rel[i]));
	mp4_box_end(b, at, rc);
	if (o->groups) {
		at = mp4_box_begin(b, FOURCC('s', 'g', 'p', 'd'), rc);
		if (!*rc)
			*rc = buf_append(b, t->sgpd.p, t->sgpd.len);
		mp4_box_end(b, at, rc);
		at = mp4_box_begin(b, FOURCC('s', 'b', 'g', 'p'), rc);
		size_t h = t->sbgp.version == 1 ? 12 : 8; /* version/flags, grouping_type[, param] */
		if (!*rc && !(*rc = buf_append(b, t->sbgp.p, h)) && !(*rc = put32(b, o->sbgp.n)))
			*rc = buf_append(b, o->sbgp.b.data, o->sbgp.b.len);
		mp4_box_end(b, at, rc);
	}
	mp4_box_end(b, st, rc);
}

static void emit_container(struct emit *m, const struct box *c, const struct track *t,
			   const struct otrack *o, size_t ti, int *rc);

static void emit_child(struct emit *m, const struct box *c, const struct track *t,
		       const struct otrack *o, size_t ti, int *rc)
{
	struct buf *b = m->head;
	switch (c->type) {
	case FOURCC('t', 'k', 'h', 'd'):
		mp4_time_box(b, c, m->tkhd_dur[ti], 1, rc);
		break;
	case FOURCC('m', 'd', 'h', 'd'):
		mp4_time_box(b, c, o->media_dur, 0, rc);
		break;
	case FOURCC('e', 'd', 't', 's'):
		break; /* emitted right after tkhd */
	case FOURCC('m', 'd', 'i', 'a'):
	case FOURCC('m', 'i', 'n', 'f'):
		emit_container(m, c, t, o, ti, rc);
		break;
	case FOURCC('s', 't', 'b', 'l'):
		emit_stbl(m, t, o, rc);
		break;
	default:
		mp4_copy_box(b, c, rc);
		break;
	}
	if (c->type == FOURCC('t', 'k', 'h', 'd') && t->elst.present)
		emit_edts(m, t, o, rc);
}

static void emit_container(struct emit *m, const struct box *c, const struct track *t,
			   const struct otrack *o, size_t ti, int *rc)
{
	struct ectx quiet = { NULL, NULL, 0, 1 };
	struct buf *b = m->head;
	size_t at = mp4_box_begin(b, c->type, rc);
	struct box x;
	for (size_t off = 0; !*rc && mp4_box_at(&quiet, c->p + off, c->len - off, &x) == 0; off += x.size)
		emit_child(m, &x, t, o, ti, rc);
	mp4_box_end(b, at, rc);
}

int mp4_emit_moov(struct emit *m)
{
	struct ectx quiet = { NULL, NULL, 0, 1 };
	struct buf *b = m->head;
	int rc = 0;
	size_t at = mp4_box_begin(b, FOURCC('m', 'o', 'o', 'v'), &rc);
	struct box x;
	size_t ti = 0;
	for (size_t off = 0; !rc && mp4_box_at(&quiet, m->p0->moov + off, m->p0->moov_len - off, &x) == 0;
	     off += x.size) {
		if (x.type == FOURCC('m', 'v', 'h', 'd')) {
			mp4_time_box(b, &x, m->movie_dur, 0, &rc);
		} else if (x.type == FOURCC('t', 'r', 'a', 'k')) {
			emit_container(m, &x, &m->p0->tr[ti], &m->ot[ti], ti, &rc);
			ti++;
		} else {
			mp4_copy_box(b, &x, &rc);
		}
	}
	mp4_box_end(b, at, &rc);
	return rc;
}
