/*
 * mp4_tables: the sample tables of a joined track (see src/media/mp4_internal.h).
 *
 * Design: tracks of part k are matched with part 1's (mp4_join.c) only when their sample
 * descriptions are the same codec configuration (mp4_stsd_same: byte-equal once the bit-rate
 * fields of btrt and esds, which describe one part, are zeroed). For each output track the
 * tables are rebuilt in one pass over all samples of all parts (mp4_append_track, one step per
 * table family: times, samples, groups, chunks): run-length coded stts/ctts/sbgp, stsz, stss
 * renumbered, sdtp, stsc, and chunk offsets relative to the output mdat payload.
 * Invariants: every chunk extent lies inside one mdat of its part, so the output never points
 * outside the copied media; sample and chunk counts stay below MAX_SAMPLES; durations are
 * rescaled to part 1's timescale with rounding to nearest and stay below 2^62.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mp4_internal.h"


/* Zeroes the bit-rate fields of an esds payload (they describe one part, not the codec). */
static void esds_normalize(uint8_t *p, size_t len)
{
	size_t o = 4;
	for (int depth = 0; depth < 2 && o < len; depth++) {
		uint8_t tag = p[o++];
		size_t dl = 0;
		for (int i = 0; i < 4 && o < len; i++) {
			uint8_t c = p[o++];
			dl = dl << 7 | (c & 0x7f);
			if (!(c & 0x80))
				break;
		}
		if (tag == 3) {
			if (o + 3 > len)
				return;
			uint8_t fl = p[o + 2];
			o += 3;
			if (fl & 0x80)
				o += 2;
			if (fl & 0x40) {
				if (o >= len)
					return;
				o += 1 + (size_t)p[o];
			}
			if (fl & 0x20)
				o += 2;
		} else if (tag == 4) {
			if (o + 13 <= len)
				memset(p + o + 2, 0, 11);
			return;
		} else {
			return;
		}
	}
}

static void stsd_normalize(uint8_t *p, size_t len, uint32_t handler)
{
	struct ectx quiet = { NULL, NULL, 0, 1 };
	struct box b, c;
	for (size_t off = 8; mp4_box_at(&quiet, p + off, len - off, &b) == 0; off += b.size) {
		size_t skip;
		if (handler == FOURCC('v', 'i', 'd', 'e'))
			skip = 78;
		else if (handler == FOURCC('s', 'o', 'u', 'n') && b.len >= 10)
			skip = 28 + (rd16(b.p + 8) == 1 ? 16 : rd16(b.p + 8) == 2 ? 36 : 0);
		else
			continue;
		if (b.len < skip)
			continue;
		uint8_t *cp = (uint8_t *)b.p + skip;
		size_t cl = b.len - skip;
		for (size_t o = 0; mp4_box_at(&quiet, cp + o, cl - o, &c) == 0; o += c.size) {
			if (c.type == FOURCC('b', 't', 'r', 't') && c.len >= 12)
				memset((uint8_t *)c.p, 0, 12);
			else if (c.type == FOURCC('e', 's', 'd', 's'))
				esds_normalize((uint8_t *)c.p, c.len);
		}
	}
}

/* 1 when two stsd payloads describe the same codec configuration, 0 if not, -ENOMEM. */
int mp4_stsd_same(const struct tbl *a, const struct tbl *b, uint32_t handler)
{
	if (a->len != b->len)
		return 0;
	if (memcmp(a->p, b->p, a->len) == 0)
		return 1;
	uint8_t *x = malloc(a->len), *y = malloc(b->len);
	int same = -ENOMEM;
	if (x && y) {
		memcpy(x, a->p, a->len);
		memcpy(y, b->p, b->len);
		stsd_normalize(x, a->len, handler);
		stsd_normalize(y, b->len, handler);
		same = memcmp(x, y, a->len) == 0;
	}
	free(x);
	free(y);
	return same;
}

static int rle_add(struct rle *r, uint32_t count, uint32_t v)
{
	if (count == 0)
		return 0;
	if (r->have && r->last == v) {
		uint8_t *c = (uint8_t *)r->b.data + r->b.len - 8;
		uint32_t old = rd32(c);
		if (old <= UINT32_MAX - count) {
			wr32(c, old + count);
			return 0;
		}
	}
	int rc = put32(&r->b, count);
	if (!rc)
		rc = put32(&r->b, v);
	if (rc)
		return rc;
	r->n++;
	r->have = 1;
	r->last = v;
	return 0;
}

void mp4_otrack_free(struct otrack *o)
{
	buf_free(&o->stts.b);
	buf_free(&o->ctts.b);
	buf_free(&o->sbgp.b);
	buf_free(&o->stss);
	buf_free(&o->stsz);
	buf_free(&o->stsc);
	buf_free(&o->sdtp);
	buf_free(&o->chunks);
}

int64_t mp4_rescale(int64_t v, uint32_t to, uint32_t from)
{
	if (to == from)
		return v;
	__int128 x = (__int128)v * to;
	x = x >= 0 ? (x + from / 2) / from : -((-x + from / 2) / from);
	return (int64_t)x;
}

/* stts / ctts, one sample at a time (runs may need rescaling to the output timescale). */
static int append_times(struct ectx *e, struct otrack *o, const struct track *t)
{
	int rc;
	uint32_t si = 0, sleft = t->stts.count ? rd32(t->stts.ent) : 0;
	uint32_t ci = 0, cleft = t->ctts.present && t->ctts.count ? rd32(t->ctts.ent) : 0;
	uint64_t dts_in = 0;
	uint64_t dts_out0 = o->media_dur;
	for (uint32_t i = 0; i < t->nsamples; i++) {
		while (sleft == 0 && si + 1 < t->stts.count)
			sleft = rd32(t->stts.ent + 8 * (size_t)++si);
		while (t->ctts.present && cleft == 0 && ci + 1 < t->ctts.count)
			cleft = rd32(t->ctts.ent + 8 * (size_t)++ci);
		uint32_t d = rd32(t->stts.ent + 8 * (size_t)si + 4);
		sleft--;
		int64_t cts = 0;
		if (t->ctts.present) {
			uint32_t raw = rd32(t->ctts.ent + 8 * (size_t)ci + 4);
			cts = t->ctts.version ? (int64_t)(int32_t)raw : (int64_t)raw;
			cleft--;
		}
		uint64_t a = dts_out0 + (uint64_t)mp4_rescale((int64_t)dts_in, o->timescale,
							      t->timescale);
		dts_in += d;
		uint64_t z = dts_out0 + (uint64_t)mp4_rescale((int64_t)dts_in, o->timescale,
							      t->timescale);
		if (z - a > UINT32_MAX)
			return mp4_fail(e, -EFBIG, "sample duration too large after rescaling");
		cts = mp4_rescale(cts, o->timescale, t->timescale);
		if (o->ctts_v1 ? (cts > INT32_MAX || cts < INT32_MIN) : (cts < 0 || cts > UINT32_MAX))
			return mp4_fail(e, -EBADMSG, "composition offset %lld does not fit the output "
					"ctts", (long long)cts);
		if ((rc = rle_add(&o->stts, 1, (uint32_t)(z - a))))
			return rc;
		if (o->has_ctts && (rc = rle_add(&o->ctts, 1, (uint32_t)cts)))
			return rc;
		int64_t end = (int64_t)z + cts;
		if (end > o->comp_end)
			o->comp_end = end;
		o->media_dur = z;
		if (o->media_dur > ((uint64_t)1 << 62))
			return mp4_fail(e, -EFBIG, "joined track too long");
	}
	return 0;
}

/* Sizes, sync samples (renumbered after the samples before this part), dependencies. */
static int append_samples(struct otrack *o, const struct track *t, int all_sdtp)
{
	int rc;
	uint32_t base_sample = o->nsamples;
	for (uint32_t i = 0; i < t->nsamples; i++) {
		uint32_t sz = mp4_sample_size(t, i);
		if (o->nsamples == 0 && i == 0) {
			o->size0 = sz;
			o->same_size = 1;
		} else if (sz != o->size0) {
			o->same_size = 0;
		}
		if ((rc = put32(&o->stsz, sz)))
			return rc;
	}
	if (o->has_stss) {
		if (t->stss.present) {
			for (uint32_t i = 0; i < t->stss.count; i++)
				if ((rc = put32(&o->stss, base_sample + rd32(t->stss.ent + 4 * (size_t)i))))
					return rc;
			o->nstss += t->stss.count;
		} else {
			for (uint32_t i = 1; i <= t->nsamples; i++)
				if ((rc = put32(&o->stss, base_sample + i)))
					return rc;
			o->nstss += t->nsamples;
		}
	}
	if (all_sdtp && (rc = buf_append(&o->sdtp, t->sdtp.ent, t->nsamples)))
		return rc;
	return 0;
}

/* sbgp: [ver/flags][grouping_type][param if v1][count] entries (sample_count, index), cut or
 * padded (index 0) to this part's samples. */
static int append_groups(struct otrack *o, const struct track *t)
{
	int rc;
	size_t h = t->sbgp.version == 1 ? 16 : 12;
	uint32_t cnt = t->sbgp.len >= h ? rd32(t->sbgp.p + h - 4) : 0;
	if (cnt && cnt > (t->sbgp.len - h) / 8)
		cnt = (uint32_t)((t->sbgp.len - h) / 8);
	uint64_t covered = 0;
	for (uint32_t i = 0; i < cnt && covered < t->nsamples; i++) {
		uint32_t c = rd32(t->sbgp.p + h + 8 * (size_t)i);
		if (c > t->nsamples - covered)
			c = (uint32_t)(t->nsamples - covered);
		covered += c;
		if ((rc = rle_add(&o->sbgp, c, rd32(t->sbgp.p + h + 8 * (size_t)i + 4))))
			return rc;
	}
	return rle_add(&o->sbgp, (uint32_t)(t->nsamples - covered), 0);
}

/* Chunks: stsc runs, and each chunk's extent checked to lie inside one mdat of the part; the
 * offsets kept are relative to the output mdat payload. */
static int append_chunks(struct ectx *e, struct otrack *o, const struct track *t,
			 const struct part *p)
{
	int rc;
	uint32_t base_chunk = o->nchunks, sample = 0;
	for (uint32_t i = 0; i < t->stsc.count; i++) {
		const uint8_t *s = t->stsc.ent + 12 * (size_t)i;
		uint32_t first = rd32(s), spc = rd32(s + 4), sdi = rd32(s + 8);
		uint32_t next = i + 1 < t->stsc.count ? rd32(s + 12) : t->nchunks + 1;
		if (!(o->nstsc && o->last_spc == spc && o->last_sdi == sdi)) {
			if ((rc = put32(&o->stsc, base_chunk + first)) || (rc = put32(&o->stsc, spc)) ||
			    (rc = put32(&o->stsc, sdi)))
				return rc;
			o->nstsc++;
			o->last_spc = spc;
			o->last_sdi = sdi;
		}
		for (uint32_t c = first - 1; c < next - 1; c++) {
			uint64_t off = mp4_chunk_offset(t, c), size = 0;
			for (uint32_t k = 0; k < spc; k++)
				size += mp4_sample_size(t, sample + k);
			sample += spc;
			size_t m;
			for (m = 0; m < p->nmdat; m++)
				if (off >= p->mdat[m].start && size <= p->mdat[m].len &&
				    off - p->mdat[m].start <= p->mdat[m].len - size)
					break;
			if (m == p->nmdat)
				return mp4_fail(e, -EBADMSG, "%s: chunk %u of track %u (offset %llu, %llu "
						"bytes) is outside every mdat", mp4_in_name(&p->in), c + 1,
						t->id, (unsigned long long)off, (unsigned long long)size);
			uint64_t rel = p->mdat[m].out_rel + (off - p->mdat[m].start);
			if ((rc = buf_append(&o->chunks, &rel, sizeof(rel))))
				return rc;
		}
	}
	return 0;
}

int mp4_append_track(struct ectx *e, struct otrack *o, const struct track *t,
		     const struct part *p, int all_sdtp, int all_groups)
{
	if ((uint64_t)o->nsamples + t->nsamples > MAX_SAMPLES ||
	    (uint64_t)o->nchunks + t->nchunks > MAX_SAMPLES)
		return mp4_fail(e, -EFBIG, "joined track has too many samples");
	int rc = append_times(e, o, t);
	if (!rc)
		rc = append_samples(o, t, all_sdtp);
	if (!rc && all_groups)
		rc = append_groups(o, t);
	if (!rc)
		rc = append_chunks(e, o, t, p);
	if (rc)
		return rc;
	o->nsamples += t->nsamples;
	o->nchunks += t->nchunks;
	return 0;
}
