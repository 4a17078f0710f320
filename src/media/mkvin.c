/*
 * mkvin: the Matroska input check of ingest/ (see include/kvsfs/mkvin.h).
 *
 * Design: a walk over element headers with explicit offsets, reading through the caller's
 * callback a few bytes at a time (at most 16 per header or small value), so memory is constant
 * and a file of any size is checked in one pass over its headers. Known-size elements that do
 * not matter are skipped without reading them; unknown sizes are allowed for the Segment (it
 * then ends at the end of the file) and for Clusters (they end at the next level-1 element), as
 * live producers and GetMedia write them.
 *
 * Invariants: every element must lie inside its parent and inside the file; any violation is
 * -EINVAL with a static reason, never a read beyond size.
 */
#include "kvsfs/mkvin.h"

#include <errno.h>
#include <string.h>

#include "kvsfs/decsec.h"
#include "mkv_internal.h"

/* element IDs of the reader (mkv_internal.h) plus the few this check reads besides */
#define ID_DATEUTC 0x4461u
#define ID_TRACKNUMBER 0xD7u
#define ID_TRACKTYPE 0x83u
#define ID_TAGNAME 0x45A3u
#define ID_TAGSTRING 0x4487u
#define KVS_TAG_PREFIX "AWS_KINESISVIDEO_"
#define KVS_PRODUCER_TS "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP"

#define UNKNOWN UNKNOWN_SIZE
#define EPOCH_2001_MS 978307200000LL
#define ABSOLUTE_MIN_MS 1000000000000LL

struct rd {
	mkvin_read_fn fn;
	void *arg;
	uint64_t size;
	const char **why;
};

struct el {
	uint32_t id;
	uint64_t data;   /* offset of the payload */
	uint64_t end;    /* end of the payload, UNKNOWN for an unknown size */
};

int mkvin_sniff(const void *data, size_t n)
{
	static const unsigned char magic[4] = { 0x1A, 0x45, 0xDF, 0xA3 };
	return memcmp(data, magic, n < 4 ? n : 4) == 0;
}

static int bad(struct rd *r, const char *why)
{
	*r->why = why;
	return -EINVAL;
}

/* Reads exactly n bytes at off (inside the file); -EINVAL when the file is shorter. */
static int get(struct rd *r, uint64_t off, void *dst, size_t n)
{
	if (off > r->size || n > r->size - off)
		return bad(r, "an element overruns the end of the file");
	ssize_t got = r->fn(r->arg, dst, n, off);
	if (got < 0)
		return (int)got;
	return (size_t)got == n ? 0 : bad(r, "the file is shorter than its elements say");
}

/* The element header at off, which must lie before limit. */
static int header(struct rd *r, uint64_t off, uint64_t limit, struct el *e)
{
	unsigned char b[12];
	size_t avail = (size_t)((limit - off) < sizeof(b) ? (limit - off) : sizeof(b));
	if (avail < 2)
		return bad(r, "a truncated element header");
	int rc = get(r, off, b, avail);
	if (rc)
		return rc;
	unsigned il = 1;
	while (il <= 4 && !(b[0] & (0x80u >> (il - 1))))
		il++;
	if (il > 4 || il >= avail)
		return bad(r, "an invalid element ID");
	uint32_t id = 0;
	for (unsigned i = 0; i < il; i++)
		id = id << 8 | b[i];
	unsigned sl = 1;
	while (sl <= 8 && !(b[il] & (0x80u >> (sl - 1))))
		sl++;
	if (sl > 8 || il + sl > avail)
		return bad(r, "an invalid element size");
	uint64_t v = b[il] & (0xFFu >> sl);
	int ones = v == (0xFFu >> sl);
	for (unsigned i = 1; i < sl; i++) {
		v = v << 8 | b[il + i];
		ones = ones && b[il + i] == 0xFF;
	}
	e->id = id;
	e->data = off + il + sl;
	if (ones) {
		e->end = UNKNOWN;
	} else {
		if (v > limit - e->data)
			return bad(r, "an element overruns its parent");
		e->end = e->data + v;
	}
	return 0;
}

/* An unsigned (or, with sign, signed) integer payload of at most 8 bytes. */
static int uint_at(struct rd *r, const struct el *e, int sign, uint64_t *out)
{
	unsigned char b[8];
	if (e->end == UNKNOWN || e->end - e->data > 8)
		return bad(r, "an integer element of a bad size");
	size_t n = (size_t)(e->end - e->data);
	int rc = get(r, e->data, b, n);
	if (rc)
		return rc;
	uint64_t v = (sign && n && (b[0] & 0x80)) ? UINT64_MAX : 0;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | b[i];
	*out = v;
	return 0;
}

/* A string payload of at most n - 1 bytes into out (longer: truncated), NUL-terminated. */
static int str_at(struct rd *r, const struct el *e, char *out, size_t n)
{
	uint64_t len = e->end - e->data;
	size_t k = len < n - 1 ? (size_t)len : n - 1;
	int rc = get(r, e->data, out, k);
	if (rc)
		return rc;
	out[k] = '\0';
	return 0;
}

/* One SimpleTag: notes a KVS tag (*kvs) and the producer timestamp before the first cluster. */
static int scan_simpletag(struct rd *r, const struct el *st, struct mkvin_info *out, int *kvs)
{
	struct el c;
	char name[64] = "", val[40] = "";
	int rc;
	for (uint64_t p = st->data; p < st->end; p = c.end) {
		if ((rc = header(r, p, st->end, &c)) != 0)
			return rc;
		if (c.end == UNKNOWN)
			return bad(r, "an unknown-size element inside a SimpleTag");
		if (c.id == ID_TAGNAME && (rc = str_at(r, &c, name, sizeof(name))) != 0)
			return rc;
		if (c.id == ID_TAGSTRING && (rc = str_at(r, &c, val, sizeof(val))) != 0)
			return rc;
	}
	if (strncmp(name, KVS_TAG_PREFIX, strlen(KVS_TAG_PREFIX)) == 0)
		*kvs = 1;
	int64_t ms;
	if (!strcmp(name, KVS_PRODUCER_TS) && out->clusters == 0 &&
	    decsec_parse_ms(val, DECSEC_LENIENT, &ms) == 0) {
		out->has_producer_ts = 1;
		out->producer_ts_ms = ms;
	}
	return 0;
}

/* A level-1 Tags element starting at off: listed for skipping when it holds KVS tags. */
static int scan_tags(struct rd *r, uint64_t off, const struct el *tags, struct mkvin_info *out)
{
	struct el t, c;
	int kvs = 0, rc;
	for (uint64_t p = tags->data; p < tags->end; p = t.end) {
		if ((rc = header(r, p, tags->end, &t)) != 0)
			return rc;
		if (t.end == UNKNOWN)
			return bad(r, "an unknown-size element inside Tags");
		if (t.id != ID_TAG)
			continue;
		for (uint64_t q = t.data; q < t.end; q = c.end) {
			if ((rc = header(r, q, t.end, &c)) != 0)
				return rc;
			if (c.end == UNKNOWN)
				return bad(r, "an unknown-size element inside a Tag");
			if (c.id == ID_SIMPLETAG && (rc = scan_simpletag(r, &c, out, &kvs)) != 0)
				return rc;
		}
	}
	if (kvs && out->n_skip < MKVIN_MAX_SKIP) {
		out->skip[out->n_skip].off = off;
		out->skip[out->n_skip].len = tags->end - off;
		out->n_skip++;
	}
	return 0;
}

static int64_t to_ms(uint64_t tc, uint64_t scale)
{
	return (int64_t)((unsigned __int128)tc * scale / 1000000u);
}

static int scan_info(struct rd *r, const struct el *info, struct mkvin_info *out)
{
	struct el c;
	for (uint64_t p = info->data; p < info->end; p = c.end) {
		int rc = header(r, p, info->end, &c);
		if (rc)
			return rc;
		if (c.end == UNKNOWN)
			return bad(r, "an unknown-size element inside Info");
		uint64_t v;
		if (c.id == ID_TIMECODESCALE) {
			if ((rc = uint_at(r, &c, 0, &v)) != 0)
				return rc;
			if (v == 0)
				return bad(r, "a TimecodeScale of 0");
			out->timecode_scale = v;
		} else if (c.id == ID_DATEUTC) {
			if ((rc = uint_at(r, &c, 1, &v)) != 0)
				return rc;
			out->has_date = 1;
			out->date_ms = EPOCH_2001_MS + (int64_t)v / 1000000;
		}
	}
	return 0;
}

static int scan_tracks(struct rd *r, const struct el *tracks, struct mkvin_info *out)
{
	struct el t, c;
	for (uint64_t p = tracks->data; p < tracks->end; p = t.end) {
		int rc = header(r, p, tracks->end, &t);
		if (rc)
			return rc;
		if (t.end == UNKNOWN)
			return bad(r, "an unknown-size element inside Tracks");
		if (t.id != ID_TRACKENTRY)
			continue;
		uint64_t num = 0, type = 0;
		for (uint64_t q = t.data; q < t.end; q = c.end) {
			if ((rc = header(r, q, t.end, &c)) != 0)
				return rc;
			if (c.end == UNKNOWN)
				return bad(r, "an unknown-size element inside a TrackEntry");
			if (c.id == ID_TRACKNUMBER && (rc = uint_at(r, &c, 0, &num)) != 0)
				return rc;
			if (c.id == ID_TRACKTYPE && (rc = uint_at(r, &c, 0, &type)) != 0)
				return rc;
		}
		out->tracks++;
		if (type == 1 && !out->video_track)
			out->video_track = num;
	}
	return 0;
}

/* Track number and keyframe flag of the block in SimpleBlock / Block element b. */
static int block_head(struct rd *r, const struct el *b, uint64_t *track, int *key)
{
	unsigned char h[12];
	uint64_t n = b->end - b->data;
	if (n < 4)
		return bad(r, "a block too short for its header");
	int rc = get(r, b->data, h, n < sizeof(h) ? (size_t)n : sizeof(h));
	if (rc)
		return rc;
	unsigned l = 1;
	while (l <= 8 && !(h[0] & (0x80u >> (l - 1))))
		l++;
	if (l > 8 || l + 3 > n)
		return bad(r, "a block with an invalid track number");
	uint64_t v = h[0] & (0xFFu >> l);
	for (unsigned i = 1; i < l; i++)
		v = v << 8 | h[i];
	*track = v;
	*key = (h[l + 2] & 0x80) != 0;
	return 0;
}

/* A BlockGroup: its Block's track, key when it has no ReferenceBlock. */
static int group_head(struct rd *r, const struct el *g, uint64_t *track, int *key)
{
	struct el c;
	int have = 0, ref = 0, rc;
	for (uint64_t p = g->data; p < g->end; p = c.end) {
		if ((rc = header(r, p, g->end, &c)) != 0)
			return rc;
		if (c.end == UNKNOWN)
			return bad(r, "an unknown-size element inside a BlockGroup");
		if (c.id == ID_BLOCK) {
			if ((rc = block_head(r, &c, track, key)) != 0)
				return rc;
			have = 1;
		} else if (c.id == ID_REFERENCEBLOCK) {
			ref = 1;
		}
	}
	if (!have)
		return bad(r, "a BlockGroup without a Block");
	*key = !ref;
	return 0;
}

static int level1(uint32_t id)
{
	return id == ID_CLUSTER || id == ID_CUES || id == ID_TAGS || id == ID_INFO ||
	       id == ID_TRACKS || id == ID_SEEKHEAD || id == ID_CHAPTERS || id == ID_ATTACHMENTS ||
	       id == ID_EBML || id == ID_SEGMENT;
}

/* One Cluster: its end (*end, for an unknown size the next level-1 element), its time, and
 * whether its first frame of the checked track is a keyframe. */
static int scan_cluster(struct rd *r, const struct el *cl, uint64_t limit,
			struct mkvin_info *out, uint64_t *end, int *nonkey)
{
	struct el c;
	int have_tc = 0, checked = 0, rc;
	uint64_t tc = 0, stop = cl->end == UNKNOWN ? limit : cl->end, p;
	*nonkey = 0;
	for (p = cl->data; p < stop; p = c.end) {
		if ((rc = header(r, p, stop, &c)) != 0)
			return rc;
		if (cl->end == UNKNOWN && level1(c.id))
			break;
		if (c.end == UNKNOWN)
			return bad(r, "an unknown-size element inside a Cluster");
		if (c.id == ID_TIMECODE) {
			if ((rc = uint_at(r, &c, 0, &tc)) != 0)
				return rc;
			have_tc = 1;
		} else if (!checked && (c.id == ID_SIMPLEBLOCK || c.id == ID_BLOCKGROUP)) {
			uint64_t track;
			int key;
			rc = c.id == ID_SIMPLEBLOCK ? block_head(r, &c, &track, &key)
						    : group_head(r, &c, &track, &key);
			if (rc)
				return rc;
			if (!out->video_track || track == out->video_track) {
				checked = 1;
				*nonkey = !key;
			}
		}
		if (have_tc && checked && cl->end != UNKNOWN)
			break; /* the rest of a known-size cluster does not matter */
	}
	if (!have_tc)
		return bad(r, "a Cluster without a Timecode");
	int64_t ms = to_ms(tc, out->timecode_scale);
	if (out->clusters == 0)
		out->first_ms = ms;
	out->last_ms = ms;
	out->clusters++;
	*end = cl->end == UNKNOWN ? p : cl->end;
	return 0;
}

/* The children of the Segment from p to end. */
static int scan_segment(struct rd *r, uint64_t p, uint64_t end, struct mkvin_info *out,
			int64_t *bad_ms)
{
	struct el c;
	int rc;
	while (p < end) {
		if ((rc = header(r, p, end, &c)) != 0)
			return rc;
		if (c.id == ID_EBML || c.id == ID_SEGMENT)
			return bad(r, "more than one Segment (send one recording per file)");
		if (c.id == ID_CLUSTER) {
			if (!out->tracks)
				return bad(r, "no Tracks before the first Cluster");
			int nonkey;
			uint64_t cend;
			if ((rc = scan_cluster(r, &c, end, out, &cend, &nonkey)) != 0)
				return rc;
			if (nonkey) {
				*bad_ms = out->last_ms;
				return bad(r, "a Cluster does not start at a keyframe (re-mux with one "
					   "cluster per GOP)");
			}
			p = cend;
			continue;
		}
		if (c.end == UNKNOWN)
			return bad(r, "an unknown-size element in the Segment");
		if (c.id == ID_INFO && (rc = scan_info(r, &c, out)) != 0)
			return rc;
		if (c.id == ID_TRACKS && (rc = scan_tracks(r, &c, out)) != 0)
			return rc;
		if (c.id == ID_TAGS && (rc = scan_tags(r, p, &c, out)) != 0)
			return rc;
		p = c.end;
	}
	return 0;
}

int mkvin_scan(mkvin_read_fn rd, void *arg, uint64_t size, struct mkvin_info *info,
	       const char **why, int64_t *bad_cluster_ms)
{
	struct rd r = { .fn = rd, .arg = arg, .size = size, .why = why };
	struct el e;
	int rc;
	*why = NULL;
	*bad_cluster_ms = -1;
	memset(info, 0, sizeof(*info));
	info->timecode_scale = 1000000;
	unsigned char m[4];
	if (size < 4 || (rc = get(&r, 0, m, 4)) != 0 || !mkvin_sniff(m, 4))
		return bad(&r, "not a Matroska file (no EBML header)");
	if ((rc = header(&r, 0, size, &e)) != 0)
		return rc;
	if (e.end == UNKNOWN)
		return bad(&r, "an EBML header of unknown size");
	uint64_t p = e.end;
	if ((rc = header(&r, p, size, &e)) != 0)
		return rc;
	if (e.id != ID_SEGMENT)
		return bad(&r, "no Segment after the EBML header");
	info->segment_start = p;
	uint64_t end = e.end == UNKNOWN ? size : e.end;
	if ((rc = scan_segment(&r, e.data, end, info, bad_cluster_ms)) != 0)
		return rc;
	if (end < size)
		return bad(&r, "data after the Segment (send one recording per file)");
	if (!info->clusters)
		return bad(&r, "no Cluster (no frames)");
	info->absolute = info->first_ms >= ABSOLUTE_MIN_MS;
	return 0;
}
