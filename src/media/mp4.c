/*
 * mp4: ISO BMFF reader and the joiner of non-fragmented MP4 parts (see include/kvsfs/mp4.h and
 * docs/MP4.md).
 *
 * Reading. A part is scanned box by box at the top level with pread (only headers; mdat payloads
 * are never read). ftyp and moov are loaded into memory (bounded) and the moov is walked with
 * box_at(), which checks every size against the parent's remaining bytes; walks only follow the
 * fixed path moov/trak/mdia/minf/stbl (plus edts and the stsd entries), so the depth is bounded.
 * A struct track keeps pointers into the moov buffer for each sample table (struct tbl) after its
 * entry count was checked against the payload length, so every later table access (sample_size,
 * chunk_offset, rd32 on tbl.ent) is in bounds by construction; cross-table consistency (stts,
 * ctts, stsz and stsc x stco all describe the same number of samples; stsc/stss indexes in range)
 * is checked in parse_stbl before anything uses the tables.
 *
 * Joining. Tracks of part k are matched with part 1's by handler type and rank among tracks of that
 * handler. For each output track the sample tables are rebuilt in one pass over all samples of all
 * parts (struct otrack: run-length coded stts/ctts/stsc/sbgp, stsz, stss, sdtp, and chunk offsets
 * relative to the output mdat payload). Chunk extents are checked to lie inside one mdat of their
 * part, so the output never points outside the copied media. The output moov is then emitted by
 * walking part 1's moov as a template: mvhd/tkhd/mdhd durations are rewritten (upgraded to version
 * 1 when a duration no longer fits 32 bits), edts/elst and stbl are regenerated, other boxes are
 * copied. stco is used when every offset fits 32 bits, else co64 (decided from the exact size).
 * The result is an in-memory head (ftyp + moov + mdat header) followed by a list of segments
 * (part, source offset, length) that mp4_join_pread maps any output range onto.
 */
#include "kvsfs/mp4.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvsfs/buf.h"
#include "kvsfs/log.h"

#define MOD "mp4"
#define FOURCC(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))
#define MAX_TOP_BOXES 4096
#define MAX_MDATS 64
#define MAX_STSD_ENTRIES 16
#define FTYP_MAX 4096
#define MAX_SAMPLES 0x7fffffffu

/* ------------------------------------------------------------------------------------------ */
/* errors */

struct ectx {
	struct log_ctx *lg;
	char *reason;
	size_t reason_len;
	int set;
};

static int fail(struct ectx *e, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct ectx *e, int err, const char *fmt, ...)
{
	if (e->set)
		return err;
	e->set = 1;
	char msg[MP4_REASON_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (e->reason && e->reason_len) {
		strncpy(e->reason, msg, e->reason_len - 1);
		e->reason[e->reason_len - 1] = '\0';
	}
	LOG_WARN(e->lg, MOD, "%s", msg);
	return err;
}

static const char *in_name(const struct mp4_input *in)
{
	return in->name ? in->name : "input";
}

static void fourcc_str(uint32_t t, char out[5])
{
	for (int i = 0; i < 4; i++) {
		unsigned char c = (unsigned char)(t >> (24 - 8 * i));
		out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	out[4] = '\0';
}

/* ------------------------------------------------------------------------------------------ */
/* byte helpers */

static uint32_t rd16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) << 32 | rd32(p + 4); }
static void wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}
static void wr64(uint8_t *p, uint64_t v)
{
	wr32(p, (uint32_t)(v >> 32));
	wr32(p + 4, (uint32_t)v);
}

static int put32(struct buf *b, uint32_t v)
{
	uint8_t t[4];
	wr32(t, v);
	return buf_append(b, t, 4);
}
static int put64(struct buf *b, uint64_t v)
{
	uint8_t t[8];
	wr64(t, v);
	return buf_append(b, t, 8);
}

/* ------------------------------------------------------------------------------------------ */
/* boxes */

struct box {
	uint32_t type;
	const uint8_t *start; /* whole box */
	size_t size;
	const uint8_t *p;     /* payload */
	size_t len;
};

/* Parses the box at p with avail bytes left in its parent. Returns 0, 1 (fewer than 8 bytes
 * left: the end), or -EBADMSG with a reason. */
static int box_at(struct ectx *e, const uint8_t *p, size_t avail, struct box *b)
{
	if (avail < 8)
		return 1;
	uint64_t size = rd32(p);
	size_t hdr = 8;
	b->type = rd32(p + 4);
	if (size == 1) {
		if (avail < 16)
			return fail(e, -EBADMSG, "truncated 64-bit box header");
		size = rd64(p + 8);
		hdr = 16;
	} else if (size == 0) {
		size = avail;
	}
	if (b->type == FOURCC('u', 'u', 'i', 'd'))
		hdr += 16;
	char t[5];
	fourcc_str(b->type, t);
	if (size < hdr)
		return fail(e, -EBADMSG, "box '%s' too small (%llu bytes)", t, (unsigned long long)size);
	if (size > avail)
		return fail(e, -EBADMSG, "box '%s' (%llu bytes) overruns its parent (%zu left)", t,
			    (unsigned long long)size, avail);
	b->start = p;
	b->size = (size_t)size;
	b->p = p + hdr;
	b->len = (size_t)size - hdr;
	return 0;
}

/* A validated table: payload pointer, entry count and entry base (after the count). */
struct tbl {
	const uint8_t *p;
	size_t len;
	int present;
	uint8_t version;
	uint32_t count;
	const uint8_t *ent;
};

static int full_box(struct ectx *e, const struct box *b, size_t min_len, const char *what)
{
	if (b->len < min_len)
		return fail(e, -EBADMSG, "%s box too short (%zu bytes)", what, b->len);
	return 0;
}

/* Takes a "version/flags, u32 count, count * esize" table (after skip extra bytes before the count). */
static int take_tbl(struct ectx *e, const struct box *b, struct tbl *t, size_t skip, size_t esize,
		    const char *what)
{
	if (t->present)
		return fail(e, -EBADMSG, "duplicate %s box", what);
	int rc = full_box(e, b, 8 + skip, what);
	if (rc)
		return rc;
	t->present = 1;
	t->p = b->p;
	t->len = b->len;
	t->version = b->p[0];
	t->count = rd32(b->p + 4 + skip);
	t->ent = b->p + 8 + skip;
	if (esize && (uint64_t)t->count > (b->len - 8 - skip) / esize)
		return fail(e, -EBADMSG, "%s declares %u entries but holds %zu bytes", what, t->count,
			    b->len - 8 - skip);
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* parts */

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

static int in_read(const struct mp4_input *in, void *buf, size_t len, uint64_t off)
{
	if (in->fd < 0) {
		if (off > in->mem_len || len > in->mem_len - off)
			return -EIO;
		memcpy(buf, (const uint8_t *)in->mem + off, len);
		return 0;
	}
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(in->fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	return 0;
}

static void part_free(struct part *p)
{
	free(p->ftyp);
	free(p->moov);
	p->ftyp = p->moov = NULL;
}

static uint32_t sample_size(const struct track *t, uint32_t i)
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

static uint64_t chunk_offset(const struct track *t, uint32_t c)
{
	return t->stco.present ? rd32(t->stco.ent + 4 * (size_t)c) : rd64(t->co64.ent + 8 * (size_t)c);
}

/* Reads width/height from tkhd and track id; v0 payload 84 bytes, v1 96. */
static int parse_tkhd(struct ectx *e, const struct box *b, struct track *t)
{
	int rc = full_box(e, b, 84, "tkhd");
	if (rc)
		return rc;
	size_t o = b->p[0] == 1 ? 20 : 12;
	if (b->p[0] > 1)
		return fail(e, -EBADMSG, "tkhd version %u unknown", b->p[0]);
	if (b->p[0] == 1 && b->len < 96)
		return fail(e, -EBADMSG, "tkhd box too short (%zu bytes)", b->len);
	t->id = rd32(b->p + o);
	size_t wo = b->len - 8;
	t->width = (uint16_t)(rd32(b->p + wo) >> 16);
	t->height = (uint16_t)(rd32(b->p + wo + 4) >> 16);
	return 0;
}

static int parse_stbl(struct ectx *e, const struct box *stbl, struct track *t)
{
	struct box b;
	int rc;
	for (size_t off = 0; (rc = box_at(e, stbl->p + off, stbl->len - off, &b)) == 0; off += b.size) {
		switch (b.type) {
		case FOURCC('s', 't', 's', 'd'):
			rc = take_tbl(e, &b, &t->stsd, 0, 0, "stsd");
			break;
		case FOURCC('s', 't', 't', 's'):
			rc = take_tbl(e, &b, &t->stts, 0, 8, "stts");
			break;
		case FOURCC('c', 't', 't', 's'):
			rc = take_tbl(e, &b, &t->ctts, 0, 8, "ctts");
			break;
		case FOURCC('s', 't', 's', 's'):
			rc = take_tbl(e, &b, &t->stss, 0, 4, "stss");
			break;
		case FOURCC('s', 't', 's', 'c'):
			rc = take_tbl(e, &b, &t->stsc, 0, 12, "stsc");
			break;
		case FOURCC('s', 't', 'c', 'o'):
			rc = take_tbl(e, &b, &t->stco, 0, 4, "stco");
			break;
		case FOURCC('c', 'o', '6', '4'):
			rc = take_tbl(e, &b, &t->co64, 0, 8, "co64");
			break;
		case FOURCC('s', 't', 's', 'z'):
			rc = take_tbl(e, &b, &t->stsz, 4, 0, "stsz");
			break;
		case FOURCC('s', 't', 'z', '2'):
			rc = take_tbl(e, &b, &t->stz2, 4, 0, "stz2");
			break;
		case FOURCC('s', 'd', 't', 'p'):
			if (t->sdtp.present)
				return fail(e, -EBADMSG, "duplicate sdtp box");
			rc = full_box(e, &b, 4, "sdtp");
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
			rc = full_box(e, &b, 12, "sgpd/sbgp");
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
	if (rc < 0)
		return rc;

	/* stsd */
	if (!t->stsd.present || t->stsd.count == 0)
		return fail(e, -EBADMSG, "track %u has no sample description", t->id);
	if (t->stsd.count > MAX_STSD_ENTRIES)
		return fail(e, -EBADMSG, "stsd declares %u entries", t->stsd.count);
	size_t off = 8;
	for (uint32_t i = 0; i < t->stsd.count; i++) {
		rc = box_at(e, t->stsd.p + off, t->stsd.len - off, &b);
		if (rc)
			return rc < 0 ? rc : fail(e, -EBADMSG, "stsd holds fewer entries than declared");
		if (i == 0)
			t->codec = b.type;
		off += b.size;
	}
	t->stsd_count = t->stsd.count;

	/* sample sizes */
	if (t->stsz.present == t->stz2.present)
		return fail(e, -EBADMSG, "track %u needs exactly one of stsz/stz2", t->id);
	if (t->stsz.present) {
		t->stsz_const = rd32(t->stsz.p + 4);
		t->nsamples = t->stsz.count;
		if (!t->stsz_const && (uint64_t)t->nsamples > (t->stsz.len - 12) / 4)
			return fail(e, -EBADMSG, "stsz declares %u samples but holds %zu bytes",
				    t->nsamples, t->stsz.len - 12);
	} else {
		t->stz2_bits = t->stz2.p[7];
		t->nsamples = t->stz2.count;
		if (t->stz2_bits != 4 && t->stz2_bits != 8 && t->stz2_bits != 16)
			return fail(e, -EBADMSG, "stz2 field size %u invalid", t->stz2_bits);
		if (((uint64_t)t->nsamples * t->stz2_bits + 7) / 8 > t->stz2.len - 12)
			return fail(e, -EBADMSG, "stz2 declares %u samples but holds %zu bytes",
				    t->nsamples, t->stz2.len - 12);
	}
	if (t->nsamples > MAX_SAMPLES)
		return fail(e, -EFBIG, "track %u declares %u samples", t->id, t->nsamples);

	/* durations */
	if (!t->stts.present)
		return fail(e, -EBADMSG, "track %u has no stts", t->id);
	uint64_t n = 0, dur = 0;
	for (uint32_t i = 0; i < t->stts.count; i++) {
		uint64_t c = rd32(t->stts.ent + 8 * (size_t)i), d = rd32(t->stts.ent + 8 * (size_t)i + 4);
		n += c;
		if (n > t->nsamples)
			break;
		dur += c * d;
	}
	if (n != t->nsamples)
		return fail(e, -EBADMSG, "stts covers %llu samples, track %u has %u",
			    (unsigned long long)n, t->id, t->nsamples);
	t->duration = dur;
	if (t->ctts.present) {
		if (t->ctts.version > 1)
			return fail(e, -EBADMSG, "ctts version %u unknown", t->ctts.version);
		n = 0;
		for (uint32_t i = 0; i < t->ctts.count && n <= t->nsamples; i++)
			n += rd32(t->ctts.ent + 8 * (size_t)i);
		if (n != t->nsamples)
			return fail(e, -EBADMSG, "ctts covers %llu samples, track %u has %u",
				    (unsigned long long)n, t->id, t->nsamples);
	}
	if (t->stss.present) {
		if (t->stss.count > t->nsamples)
			return fail(e, -EBADMSG, "stss lists more sync samples than samples");
		uint32_t prev = 0;
		for (uint32_t i = 0; i < t->stss.count; i++) {
			uint32_t s = rd32(t->stss.ent + 4 * (size_t)i);
			if (s <= prev || s > t->nsamples)
				return fail(e, -EBADMSG, "stss entry %u (%u) out of order or range", i, s);
			prev = s;
		}
	}
	if (t->sdtp.present && t->sdtp.len - 4 < t->nsamples)
		t->sdtp.present = 0; /* too short to describe every sample: dropped */

	/* chunks */
	if (t->stco.present == t->co64.present)
		return fail(e, -EBADMSG, "track %u needs exactly one of stco/co64", t->id);
	t->nchunks = t->stco.present ? t->stco.count : t->co64.count;
	if (!t->stsc.present)
		return fail(e, -EBADMSG, "track %u has no stsc", t->id);
	if (t->stsc.count == 0 && t->nchunks)
		return fail(e, -EBADMSG, "track %u has chunks but an empty stsc", t->id);
	n = 0;
	for (uint32_t i = 0; i < t->stsc.count; i++) {
		const uint8_t *s = t->stsc.ent + 12 * (size_t)i;
		uint32_t first = rd32(s), spc = rd32(s + 4), sdi = rd32(s + 8);
		uint64_t next = i + 1 < t->stsc.count ? rd32(s + 12) : (uint64_t)t->nchunks + 1;
		if ((i == 0 && first != 1) || first == 0 || next <= first || first > t->nchunks)
			return fail(e, -EBADMSG, "stsc entry %u (first chunk %u) out of order or range",
				    i, first);
		if (spc == 0 || sdi == 0 || sdi > t->stsd_count)
			return fail(e, -EBADMSG, "stsc entry %u invalid (%u samples, description %u)",
				    i, spc, sdi);
		n += (next - first) * spc;
		if (n > t->nsamples)
			break;
	}
	if (n != t->nsamples)
		return fail(e, -EBADMSG, "stsc/stco describe %s samples than stsz (%u) in track %u",
			    n > t->nsamples ? "more" : "fewer", t->nsamples, t->id);
	return 0;
}

static int parse_trak(struct ectx *e, const struct box *trak, struct track *t)
{
	struct box b, m, s;
	int rc, have_tkhd = 0, have_mdhd = 0, have_hdlr = 0, have_stbl = 0;
	t->trak = trak->start;
	for (size_t off = 0; (rc = box_at(e, trak->p + off, trak->len - off, &b)) == 0; off += b.size) {
		if (b.type == FOURCC('t', 'k', 'h', 'd')) {
			if (have_tkhd++)
				return fail(e, -EBADMSG, "duplicate tkhd box");
			if ((rc = parse_tkhd(e, &b, t)))
				return rc;
		} else if (b.type == FOURCC('e', 'd', 't', 's')) {
			for (size_t o2 = 0; (rc = box_at(e, b.p + o2, b.len - o2, &m)) == 0; o2 += m.size) {
				if (m.type != FOURCC('e', 'l', 's', 't'))
					continue;
				rc = take_tbl(e, &m, &t->elst, 0, 0, "elst");
				if (rc)
					return rc;
				if (t->elst.version > 1)
					return fail(e, -EBADMSG, "elst version %u unknown", t->elst.version);
				size_t es = t->elst.version ? 20 : 12;
				if (t->elst.count > (m.len - 8) / es)
					return fail(e, -EBADMSG, "elst declares %u entries but holds %zu bytes",
						    t->elst.count, m.len - 8);
			}
			if (rc < 0)
				return rc;
		} else if (b.type == FOURCC('m', 'd', 'i', 'a')) {
			for (size_t o2 = 0; (rc = box_at(e, b.p + o2, b.len - o2, &m)) == 0; o2 += m.size) {
				if (m.type == FOURCC('m', 'd', 'h', 'd')) {
					if (have_mdhd++)
						return fail(e, -EBADMSG, "duplicate mdhd box");
					if ((rc = full_box(e, &m, m.len && m.p[0] == 1 ? 32 : 20, "mdhd")))
						return rc;
					if (m.p[0] > 1)
						return fail(e, -EBADMSG, "mdhd version %u unknown", m.p[0]);
					t->timescale = rd32(m.p + (m.p[0] == 1 ? 20 : 12));
				} else if (m.type == FOURCC('h', 'd', 'l', 'r')) {
					if (have_hdlr++)
						return fail(e, -EBADMSG, "duplicate hdlr box");
					if ((rc = full_box(e, &m, 12, "hdlr")))
						return rc;
					t->handler = rd32(m.p + 8);
				} else if (m.type == FOURCC('m', 'i', 'n', 'f')) {
					for (size_t o3 = 0; (rc = box_at(e, m.p + o3, m.len - o3, &s)) == 0;
					     o3 += s.size) {
						if (s.type != FOURCC('s', 't', 'b', 'l'))
							continue;
						if (have_stbl++)
							return fail(e, -EBADMSG, "duplicate stbl box");
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
		return fail(e, -EBADMSG, "trak lacks %s", !have_tkhd ? "tkhd" : !have_mdhd ? "mdhd" :
			    !have_hdlr ? "hdlr" : "stbl");
	if (t->timescale == 0)
		return fail(e, -EBADMSG, "track %u has timescale 0", t->id);
	return 0;
}

static int parse_moov(struct ectx *e, struct part *p)
{
	struct box b;
	int rc, have_mvhd = 0;
	for (size_t off = 0; (rc = box_at(e, p->moov + off, p->moov_len - off, &b)) == 0; off += b.size) {
		if (b.type == FOURCC('m', 'v', 'h', 'd')) {
			if (have_mvhd++)
				return fail(e, -EBADMSG, "duplicate mvhd box");
			if ((rc = full_box(e, &b, b.len && b.p[0] == 1 ? 32 : 20, "mvhd")))
				return rc;
			if (b.p[0] > 1)
				return fail(e, -EBADMSG, "mvhd version %u unknown", b.p[0]);
			p->movie_ts = rd32(b.p + (b.p[0] == 1 ? 20 : 12));
			p->movie_dur = b.p[0] == 1 ? rd64(b.p + 24) : rd32(b.p + 16);
		} else if (b.type == FOURCC('t', 'r', 'a', 'k')) {
			if (p->ntracks == MP4_MAX_TRACKS)
				return fail(e, -EFBIG, "more than %d tracks", MP4_MAX_TRACKS);
			if ((rc = parse_trak(e, &b, &p->tr[p->ntracks])))
				return rc;
			p->ntracks++;
		} else if (b.type == FOURCC('m', 'v', 'e', 'x')) {
			return fail(e, -ENOTSUP, "fragmented MP4 (mvex) is not supported");
		}
	}
	if (rc < 0)
		return rc;
	if (!have_mvhd || p->movie_ts == 0)
		return fail(e, -EBADMSG, "moov lacks a valid mvhd");
	return 0;
}

/* Scans the top level, loads ftyp and moov, parses the moov. */
static int part_load(struct ectx *e, struct part *p, const struct mp4_input *in)
{
	memset(p, 0, sizeof(*p));
	p->in = *in;
	if (in->fd >= 0) {
		struct stat st;
		if (fstat(in->fd, &st) < 0)
			return fail(e, -errno, "%s: fstat: %s", in_name(in), strerror(errno));
		if (!S_ISREG(st.st_mode))
			return fail(e, -EINVAL, "%s: not a regular file", in_name(in));
		p->fsize = (uint64_t)st.st_size;
	} else {
		if (!in->mem && in->mem_len)
			return fail(e, -EINVAL, "%s: no data", in_name(in));
		p->fsize = in->mem_len;
	}
	uint64_t off = 0;
	int nboxes = 0, rc;
	while (off < p->fsize) {
		uint8_t h[16];
		uint64_t left = p->fsize - off;
		if (left < 8)
			return fail(e, -EBADMSG, "%s: %llu trailing bytes after the last box", in_name(in),
				    (unsigned long long)left);
		if (++nboxes > MAX_TOP_BOXES)
			return fail(e, -EBADMSG, "%s: more than %d top-level boxes", in_name(in), MAX_TOP_BOXES);
		size_t hl = left >= 16 ? 16 : 8;
		if ((rc = in_read(in, h, hl, off)))
			return fail(e, rc, "%s: read failed at %llu", in_name(in), (unsigned long long)off);
		uint64_t size = rd32(h), hdr = 8;
		uint32_t type = rd32(h + 4);
		char t[5];
		fourcc_str(type, t);
		if (size == 1) {
			if (hl < 16)
				return fail(e, -EBADMSG, "%s: truncated box header", in_name(in));
			size = rd64(h + 8);
			hdr = 16;
		} else if (size == 0) {
			size = left;
		}
		if (size < hdr || size > left)
			return fail(e, -EBADMSG, "%s: top-level box '%s' has bad size %llu (%llu bytes left)",
				    in_name(in), t, (unsigned long long)size, (unsigned long long)left);
		if (type == FOURCC('f', 't', 'y', 'p')) {
			if (p->ftyp || size > FTYP_MAX)
				return fail(e, -EBADMSG, "%s: duplicate or oversized ftyp", in_name(in));
			p->ftyp = malloc((size_t)size);
			if (!p->ftyp)
				return fail(e, -ENOMEM, "out of memory");
			p->ftyp_len = (size_t)size;
			if ((rc = in_read(in, p->ftyp, p->ftyp_len, off)))
				return fail(e, rc, "%s: read failed", in_name(in));
		} else if (type == FOURCC('m', 'o', 'o', 'v')) {
			if (p->moov)
				return fail(e, -EBADMSG, "%s: more than one moov", in_name(in));
			if (size - hdr > MP4_MOOV_MAX)
				return fail(e, -EFBIG, "%s: moov of %llu bytes exceeds the limit", in_name(in),
					    (unsigned long long)size);
			p->moov_len = (size_t)(size - hdr);
			p->moov = malloc(p->moov_len ? p->moov_len : 1);
			if (!p->moov)
				return fail(e, -ENOMEM, "out of memory");
			if ((rc = in_read(in, p->moov, p->moov_len, off + hdr)))
				return fail(e, rc, "%s: read failed", in_name(in));
		} else if (type == FOURCC('m', 'd', 'a', 't')) {
			if (p->nmdat == MAX_MDATS)
				return fail(e, -EFBIG, "%s: more than %d mdat boxes", in_name(in), MAX_MDATS);
			p->mdat[p->nmdat].start = off + hdr;
			p->mdat[p->nmdat].len = size - hdr;
			p->nmdat++;
		} else if (type == FOURCC('m', 'o', 'o', 'f')) {
			return fail(e, -ENOTSUP, "%s: fragmented MP4 (moof) is not supported", in_name(in));
		}
		off += size;
	}
	if (!p->moov)
		return fail(e, -EBADMSG, "%s: no moov box", in_name(in));
	rc = parse_moov(e, p);
	if (rc && !e->set)
		return fail(e, rc, "%s: bad moov", in_name(in));
	for (size_t i = 0; i < p->ntracks && !rc; i++)
		if ((uint64_t)p->tr[i].nsamples * p->tr[i].stsz_const > p->fsize)
			rc = fail(e, -EBADMSG, "%s: track %u declares more sample bytes than the file holds",
				  in_name(in), p->tr[i].id);
	return rc;
}

static void track_info(const struct track *t, struct mp4_track_info *ti)
{
	memset(ti, 0, sizeof(*ti));
	ti->track_id = t->id;
	fourcc_str(t->handler, ti->handler);
	fourcc_str(t->codec, ti->codec);
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
		return fail(&e, -ENOMEM, "out of memory");
	int rc = part_load(&e, p, in);
	if (rc == 0) {
		info->movie_timescale = p->movie_ts;
		info->movie_duration = p->movie_dur;
		info->duration_ms = (uint64_t)((unsigned __int128)p->movie_dur * 1000 / p->movie_ts);
		for (size_t i = 0; i < p->nmdat; i++)
			info->mdat_bytes += p->mdat[i].len;
		info->ntracks = p->ntracks;
		for (size_t i = 0; i < p->ntracks; i++)
			track_info(&p->tr[i], &info->tracks[i]);
	}
	part_free(p);
	free(p);
	return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* sample description comparison */

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
	for (size_t off = 8; box_at(&quiet, p + off, len - off, &b) == 0; off += b.size) {
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
		for (size_t o = 0; box_at(&quiet, cp + o, cl - o, &c) == 0; o += c.size) {
			if (c.type == FOURCC('b', 't', 'r', 't') && c.len >= 12)
				memset((uint8_t *)c.p, 0, 12);
			else if (c.type == FOURCC('e', 's', 'd', 's'))
				esds_normalize((uint8_t *)c.p, c.len);
		}
	}
}

/* 1 when two stsd payloads describe the same codec configuration, 0 if not, -ENOMEM. */
static int stsd_same(const struct tbl *a, const struct tbl *b, uint32_t handler)
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

/* ------------------------------------------------------------------------------------------ */
/* output sample tables */

/* Run-length coded (count, value) pairs as big-endian u32 pairs. */
struct rle {
	struct buf b;
	uint32_t n;
	int have;
	uint32_t last;
};

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

static void otrack_free(struct otrack *o)
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

struct seg {
	uint64_t out_off, src_off, len;
	size_t part;
};

struct mp4_join {
	size_t nparts;
	struct mp4_input *in;
	struct buf head;        /* ftyp + moov + mdat header */
	size_t nsegs;
	struct seg *segs;
	uint64_t total;
	struct mp4_info info;
};

static int64_t rescale_s(int64_t v, uint32_t to, uint32_t from)
{
	if (to == from)
		return v;
	__int128 x = (__int128)v * to;
	x = x >= 0 ? (x + from / 2) / from : -((-x + from / 2) / from);
	return (int64_t)x;
}

/* Appends part p's track t (matched with output track o) to o's tables. */
static int append_track(struct ectx *e, struct otrack *o, const struct track *t, const struct part *p,
			int all_sdtp, int all_groups)
{
	int rc = 0;
	if ((uint64_t)o->nsamples + t->nsamples > MAX_SAMPLES ||
	    (uint64_t)o->nchunks + t->nchunks > MAX_SAMPLES)
		return fail(e, -EFBIG, "joined track has too many samples");
	uint32_t base_sample = o->nsamples, base_chunk = o->nchunks;
	/* stts / ctts, one sample at a time (runs may need rescaling) */
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
		uint64_t a = dts_out0 + (uint64_t)rescale_s((int64_t)dts_in, o->timescale, t->timescale);
		dts_in += d;
		uint64_t z = dts_out0 + (uint64_t)rescale_s((int64_t)dts_in, o->timescale, t->timescale);
		if (z - a > UINT32_MAX)
			return fail(e, -EFBIG, "sample duration too large after rescaling");
		cts = rescale_s(cts, o->timescale, t->timescale);
		if (o->ctts_v1 ? (cts > INT32_MAX || cts < INT32_MIN) : (cts < 0 || cts > UINT32_MAX))
			return fail(e, -EBADMSG, "composition offset %lld does not fit the output ctts",
				    (long long)cts);
		if ((rc = rle_add(&o->stts, 1, (uint32_t)(z - a))))
			return rc;
		if (o->has_ctts) {
			if ((rc = rle_add(&o->ctts, 1, (uint32_t)cts)))
				return rc;
		}
		int64_t end = (int64_t)z + cts;
		if (end > o->comp_end)
			o->comp_end = end;
		o->media_dur = z;
		if (o->media_dur > ((uint64_t)1 << 62))
			return fail(e, -EFBIG, "joined track too long");
	}
	/* sizes, sync samples, dependencies */
	for (uint32_t i = 0; i < t->nsamples; i++) {
		uint32_t sz = sample_size(t, i);
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
	if (all_groups) {
		/* sbgp: [ver/flags][grouping_type][param if v1][count] entries (sample_count, index) */
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
		if ((rc = rle_add(&o->sbgp, (uint32_t)(t->nsamples - covered), 0)))
			return rc;
	}
	/* chunks: stsc runs, extents checked against the part's mdat boxes */
	uint32_t sample = 0;
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
			uint64_t off = chunk_offset(t, c), size = 0;
			for (uint32_t k = 0; k < spc; k++)
				size += sample_size(t, sample + k);
			sample += spc;
			size_t m;
			for (m = 0; m < p->nmdat; m++)
				if (off >= p->mdat[m].start && size <= p->mdat[m].len &&
				    off - p->mdat[m].start <= p->mdat[m].len - size)
					break;
			if (m == p->nmdat)
				return fail(e, -EBADMSG, "%s: chunk %u of track %u (offset %llu, %llu bytes) "
					    "is outside every mdat", in_name(&p->in), c + 1, t->id,
					    (unsigned long long)off, (unsigned long long)size);
			uint64_t rel = p->mdat[m].out_rel + (off - p->mdat[m].start);
			if ((rc = buf_append(&o->chunks, &rel, sizeof(rel))))
				return rc;
		}
	}
	o->nsamples += t->nsamples;
	o->nchunks += t->nchunks;
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* moov writer */

static size_t box_begin(struct buf *b, uint32_t type, int *rc)
{
	size_t at = b->len;
	if (!*rc)
		*rc = put32(b, 0);
	if (!*rc)
		*rc = put32(b, type);
	return at;
}

static void box_end(struct buf *b, size_t at, int *rc)
{
	if (*rc)
		return;
	if (b->len - at > UINT32_MAX) {
		*rc = -EFBIG;
		return;
	}
	wr32((uint8_t *)b->data + at, (uint32_t)(b->len - at));
}

static void copy_box(struct buf *o, const struct box *b, int *rc)
{
	if (!*rc)
		*rc = buf_append(o, b->start, b->size);
}

/* Rewrites mvhd/tkhd/mdhd with a new duration (dur_at: duration offset in a v0 payload). */
static void time_box(struct buf *o, const struct box *b, uint64_t dur, int is_tkhd, int *rc)
{
	if (*rc)
		return;
	size_t at = box_begin(o, b->type, rc);
	if (b->p[0] == 1) {
		*rc = *rc ? *rc : buf_append(o, b->p, b->len);
		if (!*rc)
			wr64((uint8_t *)o->data + at + 8 + (is_tkhd ? 28 : 24), dur);
	} else if (dur <= UINT32_MAX) {
		*rc = *rc ? *rc : buf_append(o, b->p, b->len);
		if (!*rc)
			wr32((uint8_t *)o->data + at + 8 + (is_tkhd ? 20 : 16), (uint32_t)dur);
	} else {
		uint8_t h[4] = { 1, b->p[1], b->p[2], b->p[3] };
		if (!*rc)
			*rc = buf_append(o, h, 4);
		if (!*rc)
			*rc = put64(o, rd32(b->p + 4));
		if (!*rc)
			*rc = put64(o, rd32(b->p + 8));
		if (!*rc)
			*rc = buf_append(o, b->p + 12, is_tkhd ? 8 : 4);
		if (!*rc)
			*rc = put64(o, dur);
		size_t rest = is_tkhd ? 24 : 20;
		if (!*rc)
			*rc = buf_append(o, b->p + rest, b->len - rest);
	}
	box_end(o, at, rc);
}

struct emit {
	struct mp4_join *j;
	struct part *p0;
	struct otrack *ot;
	uint64_t base;  /* absolute offset of the output mdat payload */
	int co64;
	uint64_t *tkhd_dur;
	uint64_t movie_dur;
};

/* Output elst from part 1's: entries up to the first one with media (media_time >= 0), whose
 * duration becomes the whole joined presentation from its media_time; later entries dropped.
 * Fills up to 64 entries and returns their count; *tkdur gets the sum of the durations. */
struct edit {
	uint64_t seg;
	int64_t mt;
	uint32_t rate;
};

static size_t edits(const struct track *t, const struct otrack *o, uint32_t movie_ts,
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
			x->seg = span > 0 ? (uint64_t)rescale_s(span, movie_ts, o->timescale) : 0;
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
	size_t n = edits(t, o, m->p0->movie_ts, ed, &tkdur, &v1);
	struct buf *b = &m->j->head;
	size_t eb = box_begin(b, FOURCC('e', 'd', 't', 's'), rc);
	size_t at = box_begin(b, FOURCC('e', 'l', 's', 't'), rc);
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
	box_end(b, at, rc);
	box_end(b, eb, rc);
}

static void emit_stbl(struct emit *m, const struct track *t, const struct otrack *o, int *rc)
{
	struct buf *b = &m->j->head;
	size_t st = box_begin(b, FOURCC('s', 't', 'b', 'l'), rc), at;
	/* stsd: part 1's */
	at = box_begin(b, FOURCC('s', 't', 's', 'd'), rc);
	if (!*rc)
		*rc = buf_append(b, t->stsd.p, t->stsd.len);
	box_end(b, at, rc);
	at = box_begin(b, FOURCC('s', 't', 't', 's'), rc);
	if (!*rc && !(*rc = put32(b, 0)) && !(*rc = put32(b, o->stts.n)))
		*rc = buf_append(b, o->stts.b.data, o->stts.b.len);
	box_end(b, at, rc);
	if (o->has_ctts) {
		at = box_begin(b, FOURCC('c', 't', 't', 's'), rc);
		if (!*rc && !(*rc = put32(b, o->ctts_v1 ? 0x01000000u : 0)) && !(*rc = put32(b, o->ctts.n)))
			*rc = buf_append(b, o->ctts.b.data, o->ctts.b.len);
		box_end(b, at, rc);
	}
	if (o->has_stss) {
		at = box_begin(b, FOURCC('s', 't', 's', 's'), rc);
		if (!*rc && !(*rc = put32(b, 0)) && !(*rc = put32(b, o->nstss)))
			*rc = buf_append(b, o->stss.data, o->stss.len);
		box_end(b, at, rc);
	}
	if (o->has_sdtp) {
		at = box_begin(b, FOURCC('s', 'd', 't', 'p'), rc);
		if (!*rc && !(*rc = put32(b, 0)))
			*rc = buf_append(b, o->sdtp.data, o->sdtp.len);
		box_end(b, at, rc);
	}
	at = box_begin(b, FOURCC('s', 't', 's', 'c'), rc);
	if (!*rc && !(*rc = put32(b, 0)) && !(*rc = put32(b, o->nstsc)))
		*rc = buf_append(b, o->stsc.data, o->stsc.len);
	box_end(b, at, rc);
	at = box_begin(b, FOURCC('s', 't', 's', 'z'), rc);
	int konst = o->same_size && o->nsamples > 0 && o->size0 > 0;
	if (!*rc && !(*rc = put32(b, 0)) && !(*rc = put32(b, konst ? o->size0 : 0)) &&
	    !(*rc = put32(b, o->nsamples)) && !konst)
		*rc = buf_append(b, o->stsz.data, o->stsz.len);
	box_end(b, at, rc);
	at = box_begin(b, m->co64 ? FOURCC('c', 'o', '6', '4') : FOURCC('s', 't', 'c', 'o'), rc);
	if (!*rc && !(*rc = put32(b, 0)))
		*rc = put32(b, o->nchunks);
	const uint64_t *rel = (const uint64_t *)(const void *)o->chunks.data;
	for (uint32_t i = 0; i < o->nchunks && !*rc; i++)
		*rc = m->co64 ? put64(b, m->base + rel[i]) : put32(b, (uint32_t)(m->base + rel[i]));
	box_end(b, at, rc);
	if (o->groups) {
		at = box_begin(b, FOURCC('s', 'g', 'p', 'd'), rc);
		if (!*rc)
			*rc = buf_append(b, t->sgpd.p, t->sgpd.len);
		box_end(b, at, rc);
		at = box_begin(b, FOURCC('s', 'b', 'g', 'p'), rc);
		size_t h = t->sbgp.version == 1 ? 12 : 8; /* version/flags, grouping_type[, param] */
		if (!*rc && !(*rc = buf_append(b, t->sbgp.p, h)) && !(*rc = put32(b, o->sbgp.n)))
			*rc = buf_append(b, o->sbgp.b.data, o->sbgp.b.len);
		box_end(b, at, rc);
	}
	box_end(b, st, rc);
}

static void emit_container(struct emit *m, const struct box *c, const struct track *t,
			   const struct otrack *o, size_t ti, int *rc);

static void emit_child(struct emit *m, const struct box *c, const struct track *t,
		       const struct otrack *o, size_t ti, int *rc)
{
	struct buf *b = &m->j->head;
	switch (c->type) {
	case FOURCC('t', 'k', 'h', 'd'):
		time_box(b, c, m->tkhd_dur[ti], 1, rc);
		break;
	case FOURCC('m', 'd', 'h', 'd'):
		time_box(b, c, o->media_dur, 0, rc);
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
		copy_box(b, c, rc);
		break;
	}
	if (c->type == FOURCC('t', 'k', 'h', 'd') && t->elst.present)
		emit_edts(m, t, o, rc);
}

static void emit_container(struct emit *m, const struct box *c, const struct track *t,
			   const struct otrack *o, size_t ti, int *rc)
{
	struct ectx quiet = { NULL, NULL, 0, 1 };
	struct buf *b = &m->j->head;
	size_t at = box_begin(b, c->type, rc);
	struct box x;
	for (size_t off = 0; !*rc && box_at(&quiet, c->p + off, c->len - off, &x) == 0; off += x.size)
		emit_child(m, &x, t, o, ti, rc);
	box_end(b, at, rc);
}

static int emit_moov(struct emit *m)
{
	struct ectx quiet = { NULL, NULL, 0, 1 };
	struct buf *b = &m->j->head;
	int rc = 0;
	size_t at = box_begin(b, FOURCC('m', 'o', 'o', 'v'), &rc);
	struct box x;
	size_t ti = 0;
	for (size_t off = 0; !rc && box_at(&quiet, m->p0->moov + off, m->p0->moov_len - off, &x) == 0;
	     off += x.size) {
		if (x.type == FOURCC('m', 'v', 'h', 'd')) {
			time_box(b, &x, m->movie_dur, 0, &rc);
		} else if (x.type == FOURCC('t', 'r', 'a', 'k')) {
			emit_container(m, &x, &m->p0->tr[ti], &m->ot[ti], ti, &rc);
			ti++;
		} else {
			copy_box(b, &x, &rc);
		}
	}
	box_end(b, at, &rc);
	return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* join */

static int match_tracks(struct ectx *e, const struct part *p0, const struct part *p, size_t *map)
{
	if (p->ntracks != p0->ntracks)
		return fail(e, -EMEDIUMTYPE, "%s has %zu tracks, %s has %zu", in_name(&p->in), p->ntracks,
			    in_name(&p0->in), p0->ntracks);
	for (size_t i = 0; i < p0->ntracks; i++) {
		size_t rank = 0;
		for (size_t k = 0; k < i; k++)
			rank += p0->tr[k].handler == p0->tr[i].handler;
		size_t k;
		for (k = 0; k < p->ntracks; k++) {
			if (p->tr[k].handler != p0->tr[i].handler)
				continue;
			if (rank-- == 0)
				break;
		}
		char h[5];
		fourcc_str(p0->tr[i].handler, h);
		if (k == p->ntracks)
			return fail(e, -EMEDIUMTYPE, "%s has no '%s' track matching track %u",
				    in_name(&p->in), h, p0->tr[i].id);
		map[i] = k;
		int same = stsd_same(&p0->tr[i].stsd, &p->tr[k].stsd, p0->tr[i].handler);
		if (same < 0)
			return fail(e, same, "out of memory");
		if (!same)
			return fail(e, -EMEDIUMTYPE, "%s: sample description of '%s' track %u differs from %s",
				    in_name(&p->in), h, p->tr[k].id, in_name(&p0->in));
	}
	return 0;
}

static int build(struct ectx *e, struct mp4_join *j, struct part *parts, struct otrack *ot)
{
	struct part *p0 = &parts[0];
	size_t nt = p0->ntracks;
	size_t *map = calloc(j->nparts * MP4_MAX_TRACKS, sizeof(*map));
	int rc = 0;
	if (!map)
		return fail(e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < nt; i++)
		map[i] = i;
	/* mdat layout of the output payload */
	uint64_t payload = 0, nsegs = 0;
	for (size_t k = 0; k < j->nparts; k++) {
		if (k && (rc = match_tracks(e, p0, &parts[k], map + k * MP4_MAX_TRACKS)))
			goto out;
		for (size_t m = 0; m < parts[k].nmdat; m++) {
			parts[k].mdat[m].out_rel = payload;
			payload += parts[k].mdat[m].len;
			nsegs += parts[k].mdat[m].len > 0;
		}
	}
	/* per-track flags that depend on every part */
	for (size_t i = 0; i < nt; i++) {
		struct otrack *o = &ot[i];
		o->timescale = p0->tr[i].timescale;
		o->has_sdtp = 1;
		o->groups = !p0->tr[i].extra_groups && p0->tr[i].sgpd.present && p0->tr[i].sbgp.present;
		for (size_t k = 0; k < j->nparts; k++) {
			const struct track *t = &parts[k].tr[map[k * MP4_MAX_TRACKS + i]];
			o->has_ctts |= t->ctts.present;
			o->ctts_v1 |= t->ctts.present && t->ctts.version == 1;
			o->has_stss |= t->stss.present;
			o->has_sdtp &= t->sdtp.present;
			if (o->groups && (t->extra_groups || !t->sgpd.present || !t->sbgp.present ||
					  t->sgpd.len != p0->tr[i].sgpd.len ||
					  memcmp(t->sgpd.p, p0->tr[i].sgpd.p, t->sgpd.len) != 0 ||
					  t->sbgp.version != p0->tr[i].sbgp.version ||
					  t->sbgp.version > 1 ||
					  memcmp(t->sbgp.p + 4, p0->tr[i].sbgp.p + 4, 4) != 0))
				o->groups = 0;
		}
		if (p0->tr[i].sbgp.present && !o->groups)
			LOG_DEBUG(e->lg, MOD, "track %u: sample groups differ between parts, dropped",
				  p0->tr[i].id);
		for (size_t k = 0; k < j->nparts && !rc; k++)
			rc = append_track(e, o, &parts[k].tr[map[k * MP4_MAX_TRACKS + i]], &parts[k],
					  o->has_sdtp, o->groups);
		if (rc) {
			if (!e->set)
				fail(e, rc, "out of memory");
			goto out;
		}
	}

	/* head: ftyp + moov + mdat header; try stco first, co64 when offsets need it */
	uint64_t tkdur[MP4_MAX_TRACKS] = { 0 }, mdur = 0;
	for (size_t i = 0; i < nt; i++) {
		const struct track *t = &p0->tr[i];
		uint64_t d = (uint64_t)rescale_s((int64_t)ot[i].media_dur, p0->movie_ts, ot[i].timescale);
		if (t->elst.present) {
			struct edit ed[64];
			int v1;
			edits(t, &ot[i], p0->movie_ts, ed, &d, &v1);
		}
		tkdur[i] = d;
		if (d > mdur)
			mdur = d;
	}
	struct emit m = { j, p0, ot, 0, 0, tkdur, mdur };
	for (int pass = 0; pass < 3; pass++) {
		buf_reset(&j->head);
		if (p0->ftyp && (rc = buf_append(&j->head, p0->ftyp, p0->ftyp_len)))
			goto nomem;
		if ((rc = emit_moov(&m)))
			goto nomem;
		uint64_t mhdr = payload + 8 > UINT32_MAX ? 16 : 8;
		uint64_t base = j->head.len + mhdr;
		if (pass == 0 && !m.co64 && base + payload > UINT32_MAX) {
			m.co64 = 1;
			continue;
		}
		if (m.base != base) {
			m.base = base;
			continue;
		}
		uint8_t h[16];
		wr32(h, mhdr == 16 ? 1 : (uint32_t)(payload + 8));
		wr32(h + 4, FOURCC('m', 'd', 'a', 't'));
		wr64(h + 8, payload + 16);
		if ((rc = buf_append(&j->head, h, (size_t)mhdr)))
			goto nomem;
		break;
	}
	if (m.base + 0 != j->head.len) {
		rc = fail(e, -EFBIG, "could not lay out the output");
		goto out;
	}
	j->segs = calloc(nsegs ? nsegs : 1, sizeof(*j->segs));
	if (!j->segs)
		goto nomem;
	uint64_t at = j->head.len;
	for (size_t k = 0; k < j->nparts; k++)
		for (size_t mi = 0; mi < parts[k].nmdat; mi++) {
			if (!parts[k].mdat[mi].len)
				continue;
			struct seg *s = &j->segs[j->nsegs++];
			s->out_off = at;
			s->src_off = parts[k].mdat[mi].start;
			s->len = parts[k].mdat[mi].len;
			s->part = k;
			at += s->len;
		}
	j->total = at;
	/* info */
	j->info.movie_timescale = p0->movie_ts;
	j->info.movie_duration = mdur;
	j->info.duration_ms = (uint64_t)((unsigned __int128)mdur * 1000 / p0->movie_ts);
	j->info.mdat_bytes = payload;
	j->info.ntracks = nt;
	for (size_t i = 0; i < nt; i++) {
		struct track t = p0->tr[i];
		t.nsamples = ot[i].nsamples;
		t.duration = ot[i].media_dur;
		t.stss.present = ot[i].has_stss;
		t.stss.count = ot[i].nstss;
		track_info(&t, &j->info.tracks[i]);
	}
	rc = 0;
	goto out;
nomem:
	rc = fail(e, rc ? rc : -ENOMEM, "%s", rc == -EFBIG ? "output moov too large" : "out of memory");
out:
	free(map);
	return rc;
}

int mp4_join_prepare(const struct mp4_input *inputs, size_t nparts, struct log_ctx *lg,
		     struct mp4_join **out, char *reason, size_t reason_len)
{
	struct ectx e = { lg, reason, reason_len, 0 };
	if (reason && reason_len)
		reason[0] = '\0';
	*out = NULL;
	if (!inputs || nparts == 0 || nparts > MP4_MAX_PARTS)
		return fail(&e, -EINVAL, "need 1 to %d parts", MP4_MAX_PARTS);
	struct mp4_join *j = calloc(1, sizeof(*j));
	struct part *parts = calloc(nparts, sizeof(*parts));
	struct otrack *ot = calloc(MP4_MAX_TRACKS, sizeof(*ot));
	int rc = 0;
	if (!j || !parts || !ot || !(j->in = calloc(nparts, sizeof(*j->in)))) {
		rc = fail(&e, -ENOMEM, "out of memory");
		goto out;
	}
	j->nparts = nparts;
	for (size_t k = 0; k < nparts && !rc; k++) {
		j->in[k] = inputs[k];
		j->in[k].name = NULL; /* not kept: the caller's string may not outlive the join */
		rc = part_load(&e, &parts[k], &inputs[k]);
	}
	if (!rc)
		rc = build(&e, j, parts, ot);
out:
	if (parts)
		for (size_t k = 0; k < nparts; k++)
			part_free(&parts[k]);
	free(parts);
	if (ot)
		for (size_t i = 0; i < MP4_MAX_TRACKS; i++)
			otrack_free(&ot[i]);
	free(ot);
	if (rc) {
		mp4_join_free(j);
		return rc;
	}
	LOG_DEBUG(lg, MOD, "joined %zu parts: %llu bytes, moov+head %zu", nparts,
		  (unsigned long long)j->total, j->head.len);
	*out = j;
	return 0;
}

uint64_t mp4_join_size(const struct mp4_join *j)
{
	return j->total;
}

void mp4_join_info(const struct mp4_join *j, struct mp4_info *info)
{
	*info = j->info;
}

ssize_t mp4_join_pread(const struct mp4_join *j, void *buf, size_t len, uint64_t off)
{
	if (off >= j->total || len == 0)
		return 0;
	if (len > j->total - off)
		len = (size_t)(j->total - off);
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	size_t done = 0;
	uint8_t *d = buf;
	if (off < j->head.len) {
		size_t n = j->head.len - (size_t)off;
		if (n > len)
			n = len;
		memcpy(d, j->head.data + off, n);
		done = n;
	}
	/* first segment holding off + done */
	size_t lo = 0, hi = j->nsegs;
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;
		if (j->segs[mid].out_off <= off + done)
			lo = mid;
		else
			hi = mid;
	}
	for (size_t s = lo; done < len && s < j->nsegs; s++) {
		const struct seg *g = &j->segs[s];
		uint64_t pos = off + done;
		if (pos < g->out_off || pos >= g->out_off + g->len)
			continue;
		uint64_t in = pos - g->out_off;
		size_t n = len - done;
		if (n > g->len - in)
			n = (size_t)(g->len - in);
		int rc = in_read(&j->in[g->part], d + done, n, g->src_off + in);
		if (rc)
			return rc;
		done += n;
	}
	return (ssize_t)done;
}

int mp4_join_write(const struct mp4_join *j, int out_fd)
{
	size_t cap = 1u << 20;
	uint8_t *b = malloc(cap);
	if (!b)
		return -ENOMEM;
	int rc = 0;
	for (uint64_t off = 0; off < j->total && !rc;) {
		ssize_t n = mp4_join_pread(j, b, cap, off);
		if (n <= 0) {
			rc = n < 0 ? (int)n : -EIO;
			break;
		}
		for (ssize_t w = 0; w < n;) {
			ssize_t k = write(out_fd, b + w, (size_t)(n - w));
			if (k < 0) {
				if (errno == EINTR)
					continue;
				rc = -errno;
				break;
			}
			w += k;
		}
		off += (uint64_t)n;
	}
	free(b);
	return rc;
}

void mp4_join_free(struct mp4_join *j)
{
	if (!j)
		return;
	buf_free(&j->head);
	free(j->segs);
	free(j->in);
	free(j);
}

int mp4_join_files(const char *const *paths, size_t nparts, const char *out_path,
		   struct log_ctx *lg, char *reason, size_t reason_len)
{
	struct ectx e = { lg, reason, reason_len, 0 };
	if (reason && reason_len)
		reason[0] = '\0';
	if (nparts == 0 || nparts > MP4_MAX_PARTS)
		return fail(&e, -EINVAL, "need 1 to %d parts", MP4_MAX_PARTS);
	struct mp4_input *in = calloc(nparts, sizeof(*in));
	if (!in)
		return fail(&e, -ENOMEM, "out of memory");
	int rc = 0;
	size_t opened = 0;
	for (; opened < nparts; opened++) {
		in[opened].fd = open(paths[opened], O_RDONLY | O_CLOEXEC);
		in[opened].name = paths[opened];
		if (in[opened].fd < 0) {
			rc = fail(&e, -errno, "%s: %s", paths[opened], strerror(errno));
			break;
		}
	}
	struct mp4_join *j = NULL;
	if (!rc)
		rc = mp4_join_prepare(in, nparts, lg, &j, reason, reason_len);
	if (!rc) {
		int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0) {
			rc = fail(&e, -errno, "%s: %s", out_path, strerror(errno));
		} else {
			rc = mp4_join_write(j, fd);
			if (close(fd) < 0 && !rc)
				rc = -errno;
			if (rc)
				fail(&e, rc, "%s: write failed: %s", out_path, strerror(-rc));
		}
	}
	mp4_join_free(j);
	for (size_t i = 0; i < opened; i++)
		close(in[i].fd);
	free(in);
	return rc;
}
