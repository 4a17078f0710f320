/*
 * mp4_read: one input MP4 (see include/kvsfs/mp4.h and src/media/mp4_internal.h).
 *
 * Design: a part is scanned box by box at the top level with pread (only headers; mdat payloads
 * are never read). ftyp and moov are loaded into memory (bounded) and the moov is walked with
 * mp4_box_at, which checks every size against the parent's remaining bytes; walks only follow
 * the fixed path moov/trak/mdia/minf/stbl (plus edts and the stsd entries), so the depth is
 * bounded. A struct track keeps pointers into the moov buffer for each sample table (struct
 * tbl) after its entry count was checked against the payload length, so every later table
 * access (mp4_sample_size, mp4_chunk_offset, rd32 on tbl.ent) is in bounds by construction.
 * parse_stbl then checks cross-table consistency in steps (check_stsd, check_sizes,
 * check_times, check_chunks): stts, ctts, stsz and stsc x stco all describe the same number of
 * samples, and stsc/stss indexes are in range, before anything uses the tables.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mp4_internal.h"

void mp4_part_free(struct part *p)
{
	free(p->ftyp);
	free(p->moov);
	p->ftyp = p->moov = NULL;
}

uint32_t mp4_sample_size(const struct track *t, uint32_t i)
{
	if (t->stsz.present)
		return t->stsz_const ? t->stsz_const : rd32(t->stsz.ent + 4 * (size_t)i);
	switch (t->stz2_bits) {
	case 4: {
		uint8_t b = t->stz2.ent[i / 2];
		return i % 2 ? (b & 15u) : (uint32_t)(b >> 4);
	}
	case 8:
		return t->stz2.ent[i];
	default:
		return rd16(t->stz2.ent + 2 * (size_t)i);
	}
}

uint64_t mp4_chunk_offset(const struct track *t, uint32_t c)
{
	return t->stco.present ? rd32(t->stco.ent + 4 * (size_t)c) : rd64(t->co64.ent + 8 * (size_t)c);
}

/* Reads width/height from tkhd and track id; v0 payload 84 bytes, v1 96. */
static int parse_tkhd(struct ectx *e, const struct box *b, struct track *t)
{
	int rc = mp4_full_box(e, b, 84, "tkhd");
	if (rc)
		return rc;
	size_t o = b->p[0] == 1 ? 20 : 12;
	if (b->p[0] > 1)
		return mp4_fail(e, -EBADMSG, "tkhd version %u unknown", b->p[0]);
	if (b->p[0] == 1 && b->len < 96)
		return mp4_fail(e, -EBADMSG, "tkhd box too short (%zu bytes)", b->len);
	t->id = rd32(b->p + o);
	size_t wo = b->len - 8;
	t->width = (uint16_t)(rd32(b->p + wo) >> 16);
	t->height = (uint16_t)(rd32(b->p + wo + 4) >> 16);
	return 0;
}

/* Takes the sample tables of stbl into t (each checked against its own payload). */
static int collect_stbl(struct ectx *e, const struct box *stbl, struct track *t)
{
	struct box b;
	int rc;
	for (size_t off = 0; (rc = mp4_box_at(e, stbl->p + off, stbl->len - off, &b)) == 0;
	     off += b.size) {
		switch (b.type) {
		case FOURCC('s', 't', 's', 'd'):
			rc = mp4_take_tbl(e, &b, &t->stsd, 0, 0, "stsd");
			break;
		case FOURCC('s', 't', 't', 's'):
			rc = mp4_take_tbl(e, &b, &t->stts, 0, 8, "stts");
			break;
		case FOURCC('c', 't', 't', 's'):
			rc = mp4_take_tbl(e, &b, &t->ctts, 0, 8, "ctts");
			break;
		case FOURCC('s', 't', 's', 's'):
			rc = mp4_take_tbl(e, &b, &t->stss, 0, 4, "stss");
			break;
		case FOURCC('s', 't', 's', 'c'):
			rc = mp4_take_tbl(e, &b, &t->stsc, 0, 12, "stsc");
			break;
		case FOURCC('s', 't', 'c', 'o'):
			rc = mp4_take_tbl(e, &b, &t->stco, 0, 4, "stco");
			break;
		case FOURCC('c', 'o', '6', '4'):
			rc = mp4_take_tbl(e, &b, &t->co64, 0, 8, "co64");
			break;
		case FOURCC('s', 't', 's', 'z'):
			rc = mp4_take_tbl(e, &b, &t->stsz, 4, 0, "stsz");
			break;
		case FOURCC('s', 't', 'z', '2'):
			rc = mp4_take_tbl(e, &b, &t->stz2, 4, 0, "stz2");
			break;
		case FOURCC('s', 'd', 't', 'p'):
			if (t->sdtp.present)
				return mp4_fail(e, -EBADMSG, "duplicate sdtp box");
			rc = mp4_full_box(e, &b, 4, "sdtp");
			t->sdtp.present = 1;
			t->sdtp.p = b.p;
			t->sdtp.len = b.len;
			t->sdtp.ent = b.p + 4;
			break;
		case FOURCC('s', 'g', 'p', 'd'):
		case FOURCC('s', 'b', 'g', 'p'): {
			struct tbl *g = b.type == FOURCC('s', 'g', 'p', 'd') ? &t->sgpd : &t->sbgp;
			if (g->present) {
				t->extra_groups = 1;
				break;
			}
			rc = mp4_full_box(e, &b, 12, "sgpd/sbgp");
			if (rc)
				break;
			g->present = 1;
			g->p = b.p;
			g->len = b.len;
			g->version = b.p[0];
			break;
		}
		default:
			break; /* other stbl boxes index samples in ways not merged: dropped */
		}
		if (rc)
			return rc;
	}
	return rc < 0 ? rc : 0;
}

/* stsd: present, at most MAX_STSD_ENTRIES, holding its declared entries (the first's codec). */
static int check_stsd(struct ectx *e, struct track *t)
{
	struct box b;
	if (!t->stsd.present || t->stsd.count == 0)
		return mp4_fail(e, -EBADMSG, "track %u has no sample description", t->id);
	if (t->stsd.count > MAX_STSD_ENTRIES)
		return mp4_fail(e, -EBADMSG, "stsd declares %u entries", t->stsd.count);
	size_t off = 8;
	for (uint32_t i = 0; i < t->stsd.count; i++) {
		int rc = mp4_box_at(e, t->stsd.p + off, t->stsd.len - off, &b);
		if (rc)
			return rc < 0 ? rc :
				mp4_fail(e, -EBADMSG, "stsd holds fewer entries than declared");
		if (i == 0)
			t->codec = b.type;
		off += b.size;
	}
	t->stsd_count = t->stsd.count;
	return 0;
}

/* Sample sizes: exactly one of stsz/stz2, holding every sample. Sets nsamples. */
static int check_sizes(struct ectx *e, struct track *t)
{
	if (t->stsz.present == t->stz2.present)
		return mp4_fail(e, -EBADMSG, "track %u needs exactly one of stsz/stz2", t->id);
	if (t->stsz.present) {
		t->stsz_const = rd32(t->stsz.p + 4);
		t->nsamples = t->stsz.count;
		if (!t->stsz_const && (uint64_t)t->nsamples > (t->stsz.len - 12) / 4)
			return mp4_fail(e, -EBADMSG, "stsz declares %u samples but holds %zu bytes",
					t->nsamples, t->stsz.len - 12);
	} else {
		t->stz2_bits = t->stz2.p[7];
		t->nsamples = t->stz2.count;
		if (t->stz2_bits != 4 && t->stz2_bits != 8 && t->stz2_bits != 16)
			return mp4_fail(e, -EBADMSG, "stz2 field size %u invalid", t->stz2_bits);
		if (((uint64_t)t->nsamples * t->stz2_bits + 7) / 8 > t->stz2.len - 12)
			return mp4_fail(e, -EBADMSG, "stz2 declares %u samples but holds %zu bytes",
					t->nsamples, t->stz2.len - 12);
	}
	if (t->nsamples > MAX_SAMPLES)
		return mp4_fail(e, -EFBIG, "track %u declares %u samples", t->id, t->nsamples);
	return 0;
}

/* stts (and ctts) cover every sample; stss indexes are increasing and in range. */
static int check_times(struct ectx *e, struct track *t)
{
	if (!t->stts.present)
		return mp4_fail(e, -EBADMSG, "track %u has no stts", t->id);
	uint64_t n = 0, dur = 0;
	for (uint32_t i = 0; i < t->stts.count; i++) {
		uint64_t c = rd32(t->stts.ent + 8 * (size_t)i), d = rd32(t->stts.ent + 8 * (size_t)i + 4);
		n += c;
		if (n > t->nsamples)
			break;
		dur += c * d;
	}
	if (n != t->nsamples)
		return mp4_fail(e, -EBADMSG, "stts covers %llu samples, track %u has %u",
				(unsigned long long)n, t->id, t->nsamples);
	t->duration = dur;
	if (t->ctts.present) {
		if (t->ctts.version > 1)
			return mp4_fail(e, -EBADMSG, "ctts version %u unknown", t->ctts.version);
		n = 0;
		for (uint32_t i = 0; i < t->ctts.count && n <= t->nsamples; i++)
			n += rd32(t->ctts.ent + 8 * (size_t)i);
		if (n != t->nsamples)
			return mp4_fail(e, -EBADMSG, "ctts covers %llu samples, track %u has %u",
					(unsigned long long)n, t->id, t->nsamples);
	}
	if (t->stss.present) {
		if (t->stss.count > t->nsamples)
			return mp4_fail(e, -EBADMSG, "stss lists more sync samples than samples");
		uint32_t prev = 0;
		for (uint32_t i = 0; i < t->stss.count; i++) {
			uint32_t s = rd32(t->stss.ent + 4 * (size_t)i);
			if (s <= prev || s > t->nsamples)
				return mp4_fail(e, -EBADMSG, "stss entry %u (%u) out of order or range",
						i, s);
			prev = s;
		}
	}
	if (t->sdtp.present && t->sdtp.len - 4 < t->nsamples)
		t->sdtp.present = 0; /* too short to describe every sample: dropped */
	return 0;
}

/* Chunks: exactly one of stco/co64; stsc runs in order and describing exactly the samples. */
static int check_chunks(struct ectx *e, struct track *t)
{
	if (t->stco.present == t->co64.present)
		return mp4_fail(e, -EBADMSG, "track %u needs exactly one of stco/co64", t->id);
	t->nchunks = t->stco.present ? t->stco.count : t->co64.count;
	if (!t->stsc.present)
		return mp4_fail(e, -EBADMSG, "track %u has no stsc", t->id);
	if (t->stsc.count == 0 && t->nchunks)
		return mp4_fail(e, -EBADMSG, "track %u has chunks but an empty stsc", t->id);
	uint64_t n = 0;
	for (uint32_t i = 0; i < t->stsc.count; i++) {
		const uint8_t *s = t->stsc.ent + 12 * (size_t)i;
		uint32_t first = rd32(s), spc = rd32(s + 4), sdi = rd32(s + 8);
		uint64_t next = i + 1 < t->stsc.count ? rd32(s + 12) : (uint64_t)t->nchunks + 1;
		if ((i == 0 && first != 1) || first == 0 || next <= first || first > t->nchunks)
			return mp4_fail(e, -EBADMSG, "stsc entry %u (first chunk %u) out of order or "
					"range", i, first);
		if (spc == 0 || sdi == 0 || sdi > t->stsd_count)
			return mp4_fail(e, -EBADMSG, "stsc entry %u invalid (%u samples, description "
					"%u)", i, spc, sdi);
		n += (next - first) * spc;
		if (n > t->nsamples)
			break;
	}
	if (n != t->nsamples)
		return mp4_fail(e, -EBADMSG, "stsc/stco describe %s samples than stsz (%u) in track %u",
				n > t->nsamples ? "more" : "fewer", t->nsamples, t->id);
	return 0;
}

/* The sample tables of one track, and their cross-table consistency, before anything uses them. */
static int parse_stbl(struct ectx *e, const struct box *stbl, struct track *t)
{
	int rc = collect_stbl(e, stbl, t);
	if (!rc)
		rc = check_stsd(e, t);
	if (!rc)
		rc = check_sizes(e, t);
	if (!rc)
		rc = check_times(e, t);
	if (!rc)
		rc = check_chunks(e, t);
	return rc;
}

static int parse_trak(struct ectx *e, const struct box *trak, struct track *t)
{
	struct box b, m, s;
	int rc, have_tkhd = 0, have_mdhd = 0, have_hdlr = 0, have_stbl = 0;
	t->trak = trak->start;
	for (size_t off = 0; (rc = mp4_box_at(e, trak->p + off, trak->len - off, &b)) == 0; off += b.size) {
		if (b.type == FOURCC('t', 'k', 'h', 'd')) {
			if (have_tkhd++)
				return mp4_fail(e, -EBADMSG, "duplicate tkhd box");
			if ((rc = parse_tkhd(e, &b, t)))
				return rc;
		} else if (b.type == FOURCC('e', 'd', 't', 's')) {
			for (size_t o2 = 0; (rc = mp4_box_at(e, b.p + o2, b.len - o2, &m)) == 0; o2 += m.size) {
				if (m.type != FOURCC('e', 'l', 's', 't'))
					continue;
				rc = mp4_take_tbl(e, &m, &t->elst, 0, 0, "elst");
				if (rc)
					return rc;
				if (t->elst.version > 1)
					return mp4_fail(e, -EBADMSG, "elst version %u unknown", t->elst.version);
				size_t es = t->elst.version ? 20 : 12;
				if (t->elst.count > (m.len - 8) / es)
					return mp4_fail(e, -EBADMSG, "elst declares %u entries but holds %zu bytes",
							t->elst.count, m.len - 8);
			}
			if (rc < 0)
				return rc;
		} else if (b.type == FOURCC('m', 'd', 'i', 'a')) {
			for (size_t o2 = 0; (rc = mp4_box_at(e, b.p + o2, b.len - o2, &m)) == 0; o2 += m.size) {
				if (m.type == FOURCC('m', 'd', 'h', 'd')) {
					if (have_mdhd++)
						return mp4_fail(e, -EBADMSG, "duplicate mdhd box");
					if ((rc = mp4_full_box(e, &m, m.len && m.p[0] == 1 ? 32 : 20, "mdhd")))
						return rc;
					if (m.p[0] > 1)
						return mp4_fail(e, -EBADMSG, "mdhd version %u unknown", m.p[0]);
					t->timescale = rd32(m.p + (m.p[0] == 1 ? 20 : 12));
				} else if (m.type == FOURCC('h', 'd', 'l', 'r')) {
					if (have_hdlr++)
						return mp4_fail(e, -EBADMSG, "duplicate hdlr box");
					if ((rc = mp4_full_box(e, &m, 12, "hdlr")))
						return rc;
					t->handler = rd32(m.p + 8);
				} else if (m.type == FOURCC('m', 'i', 'n', 'f')) {
					for (size_t o3 = 0; (rc = mp4_box_at(e, m.p + o3, m.len - o3, &s)) == 0;
					     o3 += s.size) {
						if (s.type != FOURCC('s', 't', 'b', 'l'))
							continue;
						if (have_stbl++)
							return mp4_fail(e, -EBADMSG, "duplicate stbl box");
						if ((rc = parse_stbl(e, &s, t)))
							return rc;
					}
					if (rc < 0)
						return rc;
				}
			}
			if (rc < 0)
				return rc;
		}
	}
	if (rc < 0)
		return rc;
	if (!have_tkhd || !have_mdhd || !have_hdlr || !have_stbl)
		return mp4_fail(e, -EBADMSG, "trak lacks %s", !have_tkhd ? "tkhd" : !have_mdhd ? "mdhd" :
				!have_hdlr ? "hdlr" : "stbl");
	if (t->timescale == 0)
		return mp4_fail(e, -EBADMSG, "track %u has timescale 0", t->id);
	return 0;
}

static int parse_moov(struct ectx *e, struct part *p)
{
	struct box b;
	int rc, have_mvhd = 0;
	for (size_t off = 0; (rc = mp4_box_at(e, p->moov + off, p->moov_len - off, &b)) == 0; off += b.size) {
		if (b.type == FOURCC('m', 'v', 'h', 'd')) {
			if (have_mvhd++)
				return mp4_fail(e, -EBADMSG, "duplicate mvhd box");
			if ((rc = mp4_full_box(e, &b, b.len && b.p[0] == 1 ? 32 : 20, "mvhd")))
				return rc;
			if (b.p[0] > 1)
				return mp4_fail(e, -EBADMSG, "mvhd version %u unknown", b.p[0]);
			p->movie_ts = rd32(b.p + (b.p[0] == 1 ? 20 : 12));
			p->movie_dur = b.p[0] == 1 ? rd64(b.p + 24) : rd32(b.p + 16);
		} else if (b.type == FOURCC('t', 'r', 'a', 'k')) {
			if (p->ntracks == MP4_MAX_TRACKS)
				return mp4_fail(e, -EFBIG, "more than %d tracks", MP4_MAX_TRACKS);
			if ((rc = parse_trak(e, &b, &p->tr[p->ntracks])))
				return rc;
			p->ntracks++;
		} else if (b.type == FOURCC('m', 'v', 'e', 'x')) {
			return mp4_fail(e, -ENOTSUP, "fragmented MP4 (mvex) is not supported");
		}
	}
	if (rc < 0)
		return rc;
	if (!have_mvhd || p->movie_ts == 0)
		return mp4_fail(e, -EBADMSG, "moov lacks a valid mvhd");
	return 0;
}

/* Scans the top level, loads ftyp and moov, parses the moov. */
int mp4_part_load(struct ectx *e, struct part *p, const struct mp4_input *in)
{
	memset(p, 0, sizeof(*p));
	p->in = *in;
	if (in->fd >= 0) {
		struct stat st;
		if (fstat(in->fd, &st) < 0)
			return mp4_fail(e, -errno, "%s: fstat: %s", mp4_in_name(in), strerror(errno));
		if (!S_ISREG(st.st_mode))
			return mp4_fail(e, -EINVAL, "%s: not a regular file", mp4_in_name(in));
		p->fsize = (uint64_t)st.st_size;
	} else {
		if (!in->mem && in->mem_len)
			return mp4_fail(e, -EINVAL, "%s: no data", mp4_in_name(in));
		p->fsize = in->mem_len;
	}
	uint64_t off = 0;
	int nboxes = 0, rc;
	while (off < p->fsize) {
		uint8_t h[16];
		uint64_t left = p->fsize - off;
		if (left < 8)
			return mp4_fail(e, -EBADMSG, "%s: %llu trailing bytes after the last box", mp4_in_name(in),
					(unsigned long long)left);
		if (++nboxes > MAX_TOP_BOXES)
			return mp4_fail(e, -EBADMSG, "%s: more than %d top-level boxes", mp4_in_name(in), MAX_TOP_BOXES);
		size_t hl = left >= 16 ? 16 : 8;
		if ((rc = mp4_in_read(in, h, hl, off)))
			return mp4_fail(e, rc, "%s: read failed at %llu", mp4_in_name(in), (unsigned long long)off);
		uint64_t size = rd32(h), hdr = 8;
		uint32_t type = rd32(h + 4);
		char t[5];
		mp4_fourcc_str(type, t);
		if (size == 1) {
			if (hl < 16)
				return mp4_fail(e, -EBADMSG, "%s: truncated box header", mp4_in_name(in));
			size = rd64(h + 8);
			hdr = 16;
		} else if (size == 0) {
			size = left;
		}
		if (size < hdr || size > left)
			return mp4_fail(e, -EBADMSG, "%s: top-level box '%s' has bad size %llu (%llu bytes left)",
					mp4_in_name(in), t, (unsigned long long)size, (unsigned long long)left);
		if (type == FOURCC('f', 't', 'y', 'p')) {
			if (p->ftyp || size > FTYP_MAX)
				return mp4_fail(e, -EBADMSG, "%s: duplicate or oversized ftyp", mp4_in_name(in));
			p->ftyp = malloc((size_t)size);
			if (!p->ftyp)
				return mp4_fail(e, -ENOMEM, "out of memory");
			p->ftyp_len = (size_t)size;
			if ((rc = mp4_in_read(in, p->ftyp, p->ftyp_len, off)))
				return mp4_fail(e, rc, "%s: read failed", mp4_in_name(in));
		} else if (type == FOURCC('m', 'o', 'o', 'v')) {
			if (p->moov)
				return mp4_fail(e, -EBADMSG, "%s: more than one moov", mp4_in_name(in));
			if (size - hdr > MP4_MOOV_MAX)
				return mp4_fail(e, -EFBIG, "%s: moov of %llu bytes exceeds the limit", mp4_in_name(in),
						(unsigned long long)size);
			p->moov_len = (size_t)(size - hdr);
			p->moov = malloc(p->moov_len ? p->moov_len : 1);
			if (!p->moov)
				return mp4_fail(e, -ENOMEM, "out of memory");
			if ((rc = mp4_in_read(in, p->moov, p->moov_len, off + hdr)))
				return mp4_fail(e, rc, "%s: read failed", mp4_in_name(in));
		} else if (type == FOURCC('m', 'd', 'a', 't')) {
			if (p->nmdat == MAX_MDATS)
				return mp4_fail(e, -EFBIG, "%s: more than %d mdat boxes", mp4_in_name(in), MAX_MDATS);
			p->mdat[p->nmdat].start = off + hdr;
			p->mdat[p->nmdat].len = size - hdr;
			p->nmdat++;
		} else if (type == FOURCC('m', 'o', 'o', 'f')) {
			return mp4_fail(e, -ENOTSUP, "%s: fragmented MP4 (moof) is not supported", mp4_in_name(in));
		}
		off += size;
	}
	if (!p->moov)
		return mp4_fail(e, -EBADMSG, "%s: no moov box", mp4_in_name(in));
	rc = parse_moov(e, p);
	if (rc && !e->set)
		return mp4_fail(e, rc, "%s: bad moov", mp4_in_name(in));
	for (size_t i = 0; i < p->ntracks && !rc; i++)
		if ((uint64_t)p->tr[i].nsamples * p->tr[i].stsz_const > p->fsize)
			rc = mp4_fail(e, -EBADMSG, "%s: track %u declares more sample bytes than the file holds",
				      mp4_in_name(in), p->tr[i].id);
	return rc;
}

void mp4_track_summary(const struct track *t, struct mp4_track_info *ti)
{
	memset(ti, 0, sizeof(*ti));
	ti->track_id = t->id;
	mp4_fourcc_str(t->handler, ti->handler);
	mp4_fourcc_str(t->codec, ti->codec);
	ti->timescale = t->timescale;
	ti->sample_count = t->nsamples;
	ti->sync_count = t->stss.present ? t->stss.count : t->nsamples;
	ti->duration = t->duration;
	ti->duration_ms = (uint64_t)((unsigned __int128)t->duration * 1000 / t->timescale);
	ti->width = t->width;
	ti->height = t->height;
}

int mp4_info_read(const struct mp4_input *in, struct mp4_info *info, struct log_ctx *lg,
		  char *reason, size_t reason_len)
{
	struct ectx e = { lg, reason, reason_len, 0 };
	memset(info, 0, sizeof(*info));
	if (reason && reason_len)
		reason[0] = '\0';
	struct part *p = calloc(1, sizeof(*p));
	if (!p)
		return mp4_fail(&e, -ENOMEM, "out of memory");
	int rc = mp4_part_load(&e, p, in);
	if (rc == 0) {
		info->movie_timescale = p->movie_ts;
		info->movie_duration = p->movie_dur;
		info->duration_ms = (uint64_t)((unsigned __int128)p->movie_dur * 1000 / p->movie_ts);
		for (size_t i = 0; i < p->nmdat; i++)
			info->mdat_bytes += p->mdat[i].len;
		info->ntracks = p->ntracks;
		for (size_t i = 0; i < p->ntracks; i++)
			mp4_track_summary(&p->tr[i], &info->tracks[i]);
	}
	mp4_part_free(p);
	free(p);
	return rc;
}
