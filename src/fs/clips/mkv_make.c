/*
 * clips mkv_make: one clips/START-END.mkv (docs/CLIPS.md, "START-END.mkv"), written by kvsfs
 * from the fragments themselves with the media layer's Matroska writer (mkv_write.h).
 *
 *   1. cl_list_range: the fragments whose start lies in [START, END], sorted.
 *   2. One pass (write_pass), in order, while the later fragments download: rounds of up to
 *      5,000 fragments are dealt in turns of CHUNK to MAX_PARALLEL GetMediaForFragmentList calls
 *      that the fetcher runs at once (start_round; fragments already cached or on the way are
 *      left out), so they arrive in about the order they are written; the next round queues
 *      behind. Each fragment is read from the fragments/ disk cache as soon as it
 *      is there, parsed with the MKV reader's block and element events, checked (its Tracks
 *      must equal the first fragment's, mkv_tracks_same; else -EMEDIUMTYPE), and its blocks are
 *      written at once as SimpleBlocks in Clusters (cut_clusters) into an fcache writer. The
 *      Cues (every key frame of the first video track) are kept, never the blocks.
 *   3. Layout: EBML header, Segment of known size: SeekHead, Info (Duration, DateUTC = the first
 *      fragment's start), Tracks (copied), Chapters (one per fragment: its KVS number and
 *      timestamps, known from the listing), the Clusters, then the Cues. Sizes and positions are
 *      fixed-width (8-byte), so the head is written first with zeros and rewritten at the end
 *      (finish, fcache_pwrite) with the Segment's size, the Duration and the Cues' position.
 *
 * Time line: a block of fragment i is at (start_i - start_0) + (its timecode - the fragment's
 * first Cluster timecode) * the fragment's TimecodeScale, in ms (TimecodeScale 1 ms out), where
 * start_i is the fragment's start on the mount's basis: continuous, and gaps stay gaps.
 *
 * Memory: one fragment's bytes and blocks at a time, 1 MiB of output buffer, plus the Cues and,
 * until the head is written, the Chapters (a 24-hour clip of 2-second fragments: a few MB).
 */
#include "clips_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvsfs/array.h"
#include "kvsfs/buf.h"
#include "kvsfs/fcache.h"
#include "kvsfs/fetch.h"
#include "kvsfs/log.h"
#include "kvsfs/mkv.h"
#include "kvsfs/mkv_write.h"

#define MAX_PARALLEL 5            /* GetMediaForFragmentList connections per stream (KVS) */
#define MIN_WINDOW 64             /* fragments per GetMediaForFragmentList call, at least */
#define ROUND (MAX_PARALLEL * 1000) /* fragments of one round of calls (1,000 a call at most) */
#define CHUNK 4                   /* consecutive fragments per turn of a call */
#define FLUSH_AT (1u << 20)       /* write buffer flushed past this */
#define MAX_FRAGMENT (64u << 20)  /* a KVS fragment is at most 50 MB */
#define ID_TRACKENTRY 0xAEu

struct blk {
	uint64_t track, off, size;
	int64_t out;        /* ms on the output time line */
	unsigned head_len;
	uint8_t flags;
	int key;
};

/* One fragment parsed (valid during one pass step). */
struct frag {
	uint8_t *data;
	uint64_t len;
	struct blk *b;
	size_t nb, capb;
	struct buf tracks;      /* its Tracks element, raw */
	struct buf entries;     /* TrackEntries of an open-ended Tracks */
	uint64_t video;         /* first video track number, 0 when none */
	uint64_t first_track;
	int has_ref;
	int64_t ref_tc;         /* the first Cluster's timecode */
	int64_t base_ms;        /* start_i - start_0 */
	unsigned nfrags, flags;
	int err;
};

struct mkgen {
	struct clips *c;
	struct fetcher *f;
	const char *stream, *name;
	char key[FCACHE_KEY_MAX + 1];
	struct kvs_fragment_list fl;
	struct fetch_item *items;
	struct buf tracks;        /* the first fragment's Tracks */
	struct buf chap;          /* the Chapters, until the head is written */
	uint64_t cue_track;
	int cue_video;
	size_t ncl;               /* Clusters written */
	struct mkvw_cue *cues;
	size_t ncues, capcues;
	int64_t max_out;
	struct fcache_writer *w;
	struct buf out;           /* bytes not yet handed to w */
	uint64_t flushed;         /* bytes handed to w */
	uint64_t head_len, seg0;  /* the head's size but Chapters; where the Segment's body starts */
	uint64_t total;
};

/* ------------------------------------------------------------------ one fragment */

/* Makes room for one more element of *v (n used, *cap allocated). 0 or -ENOMEM. */
static int grow(void *vp, size_t n, size_t *cap, size_t elem)
{
	void **v = vp;
	void *nv = array_grow(*v, n, cap, elem, 16);
	if (!nv)
		return -ENOMEM;
	*v = nv;
	return 0;
}

static int on_block(void *opaque, unsigned index, const struct mkv_block *b)
{
	struct frag *fr = opaque;
	(void)index;
	if (b->size < b->head_len || b->offset + b->size > fr->len)
		return 0; /* cut: the fragment is refused as not complete */
	if (!fr->has_ref) {
		fr->has_ref = 1;
		fr->ref_tc = b->timecode;
	}
	if (grow(&fr->b, fr->nb, &fr->capb, sizeof(*fr->b)))
		return -ENOMEM;
	/* out holds the raw timecode until on_end knows the fragment's TimecodeScale */
	fr->b[fr->nb++] = (struct blk){ .track = b->track, .off = b->offset, .size = b->size,
					.out = b->timecode, .head_len = b->head_len,
					.flags = (uint8_t)(b->simple ? b->flags
							   : (b->flags & 0x7F) | (b->key ? 0x80 : 0)),
					.key = b->key };
	return 0;
}

static int on_cluster(void *opaque, unsigned index, uint64_t offset, int has_tc, uint64_t tc)
{
	struct frag *fr = opaque;
	(void)index;
	(void)offset;
	if (has_tc && !fr->has_ref) {
		fr->has_ref = 1;
		fr->ref_tc = (int64_t)(tc & 0x3fffffffffffffffull);
	}
	return 0;
}

static int on_element(void *opaque, unsigned index, uint32_t id, const void *data, size_t len)
{
	struct frag *fr = opaque;
	(void)index;
	if (id == MKVW_ID_TRACKS && fr->tracks.len == 0)
		return buf_append(&fr->tracks, data, len) ? -ENOMEM : 0;
	if (id == ID_TRACKENTRY)
		return buf_append(&fr->entries, data, len) ? -ENOMEM : 0;
	return 0;
}

static int on_track(void *opaque, unsigned index, const struct mkv_track *t)
{
	struct frag *fr = opaque;
	(void)index;
	if (!fr->first_track)
		fr->first_track = t->number;
	if (t->type == MKV_TRACK_VIDEO && !fr->video)
		fr->video = t->number;
	return 0;
}

static int on_end(void *opaque, const struct mkv_fragment *f)
{
	struct frag *fr = opaque;
	fr->nfrags++;
	fr->flags |= f->flags;
	uint64_t scale = f->timecode_scale ? f->timecode_scale : 1000000;
	for (size_t k = 0; k < fr->nb; k++) {
		__int128 ns = (__int128)(fr->b[k].out - fr->ref_tc) * (__int128)scale;
		int64_t rel = (int64_t)(ns >= 0 ? (ns + 500000) / 1000000 : -((-ns + 500000) / 1000000));
		int64_t out = fr->base_ms + rel;
		fr->b[k].out = out < 0 ? 0 : out;
	}
	return 0;
}

static void frag_clear(struct frag *fr)
{
	free(fr->data);
	free(fr->b);
	buf_free(&fr->tracks);
	buf_free(&fr->entries);
	memset(fr, 0, sizeof(*fr));
}

/* Reads fragment i (through the fetcher) and parses it into fr. 0 or a negative errno (logged). */
static int frag_load(struct mkgen *g, size_t i, struct frag *fr)
{
	struct clips *c = g->c;
	size_t n = g->fl.n, ahead = n - i - 1 < MIN_WINDOW ? n - i - 1 : MIN_WINDOW;
	int fd = -1;
	uint64_t size = 0;
	struct fcache_pin *pin = NULL;
	memset(fr, 0, sizeof(*fr));
	int rc = fetch_fragment(g->f, g->stream, &g->items[i], &g->items[i + 1], ahead, &fd, &size,
				&pin);
	if (rc)
		return rc; /* logged by the fetcher */
	if (size > MAX_FRAGMENT || !(fr->data = malloc(size ? size : 1))) {
		rc = -ENOMEM;
	} else {
		ssize_t r = pread(fd, fr->data, size, 0);
		fr->len = size;
		rc = r == (ssize_t)size ? 0 : -EIO;
	}
	close(fd);
	fcache_unpin(c->o.cache, pin);
	if (rc) {
		LOG_ERROR(c->o.log, "clips", "%s/%s: cannot read fragment %s from the cache: %s",
			  g->stream, g->name, g->fl.v[i].number, strerror(-rc));
		return rc;
	}
	fr->base_ms = cl_frag_start(&g->fl.v[i], c->o.ts) - cl_frag_start(&g->fl.v[0], c->o.ts);
	struct mkv_callbacks cb = { .opaque = fr, .block = on_block, .cluster = on_cluster,
				    .element = on_element, .track = on_track, .fragment_end = on_end };
	struct mkv_reader *r = mkv_reader_new(&cb, c->o.log);
	if (!r)
		return -ENOMEM;
	rc = mkv_reader_push(r, fr->data, fr->len);
	if (rc == 0)
		rc = mkv_reader_finish(r);
	mkv_reader_free(r);
	if (rc)
		return rc;
	if (fr->nfrags != 1 || !(fr->flags & MKV_FRAG_COMPLETE) ||
	    (fr->flags & (MKV_FRAG_TRUNCATED | MKV_FRAG_MALFORMED | MKV_FRAG_ERROR))) {
		LOG_ERROR(c->o.log, "clips", "%s/%s: fragment %s is not one complete MKV document",
			  g->stream, g->name, g->fl.v[i].number);
		return -EIO;
	}
	if (fr->tracks.len == 0 && fr->entries.len) {
		if (mkvw_put_header(&fr->tracks, MKVW_ID_TRACKS, fr->entries.len, 0) ||
		    buf_append(&fr->tracks, fr->entries.data, fr->entries.len))
			return -ENOMEM;
	}
	return 0;
}

/* ------------------------------------------------------------------ clusters */

/* The rule: a fragment's blocks in stream order; a new Cluster at its first block and whenever a
 * block's time does not fit the 16-bit relative timecode. Calls fn for each Cluster with its
 * blocks [a, b). */
static int cut_clusters(struct frag *fr, int (*fn)(void *arg, struct frag *fr, size_t a, size_t b,
						   uint64_t tc), void *arg)
{
	size_t a = 0;
	while (a < fr->nb) {
		int64_t tc = fr->b[a].out;
		size_t b = a + 1;
		while (b < fr->nb && fr->b[b].out - tc <= INT16_MAX && fr->b[b].out - tc >= INT16_MIN)
			b++;
		int rc = fn(arg, fr, a, b, (uint64_t)tc);
		if (rc)
			return rc;
		a = b;
	}
	return 0;
}

static uint64_t blocks_bytes(const struct frag *fr, size_t a, size_t b)
{
	uint64_t sum = 0;
	for (size_t k = a; k < b; k++)
		sum += mkvw_simpleblock_size(fr->b[k].track, fr->b[k].size - fr->b[k].head_len);
	return sum;
}

/* Hands the buffered bytes to the cache writer once there are FLUSH_AT of them (all: force). */
static int flush(struct mkgen *g, int force)
{
	if (g->out.len == 0 || (!force && g->out.len < FLUSH_AT))
		return 0;
	int rc = fcache_write(g->w, g->out.data, g->out.len);
	g->flushed += g->out.len;
	buf_reset(&g->out);
	return rc;
}

/* One Cluster: its Cues (at its position, now known), the time line's end, its bytes. */
static int write_cluster(void *arg, struct frag *fr, size_t a, size_t b, uint64_t tc)
{
	struct mkgen *g = arg;
	uint64_t pos = g->flushed + g->out.len - g->seg0, bytes = blocks_bytes(fr, a, b);
	int cued = 0;
	for (size_t k = a; k < b; k++) {
		const struct blk *x = &fr->b[k];
		if (x->out > g->max_out)
			g->max_out = x->out;
		if (x->track != g->cue_track || !x->key || (!g->cue_video && cued))
			continue;
		if (g->ncues && g->cues[g->ncues - 1].time >= (uint64_t)x->out)
			continue; /* Cues in time order, one per time */
		if (grow(&g->cues, g->ncues, &g->capcues, sizeof(*g->cues)))
			return -ENOMEM;
		g->cues[g->ncues++] = (struct mkvw_cue){ (uint64_t)x->out, x->track, pos };
		cued = 1;
	}
	g->ncl++;
	if (mkvw_put_cluster_head(&g->out, tc, bytes))
		return -ENOMEM;
	for (size_t k = a; k < b; k++) {
		const struct blk *y = &fr->b[k];
		uint64_t len = y->size - y->head_len;
		if (mkvw_put_simpleblock_head(&g->out, y->track, (int16_t)(y->out - (int64_t)tc),
					      y->flags, len) ||
		    buf_append(&g->out, fr->data + y->off + y->head_len, len))
			return -ENOMEM;
		int rc = flush(g, 0);
		if (rc)
			return rc;
	}
	return 0;
}

/* ------------------------------------------------------------------ head and tail */

/* The chapters: one per fragment, titled with its KVS number and timestamps. */
static int put_chapters(struct mkgen *g, struct buf *b)
{
	size_t mc, me;
	if (mkvw_chapters_begin(b, &mc, &me))
		return -ENOMEM;
	int64_t t0 = cl_frag_start(&g->fl.v[0], g->c->o.ts);
	for (size_t i = 0; i < g->fl.n; i++) {
		const struct kvs_fragment *f = &g->fl.v[i];
		char title[256];
		snprintf(title, sizeof(title), "%s producer %" PRId64 ".%03" PRId64 " server %" PRId64
			 ".%03" PRId64, f->number, f->producer_ms / 1000, f->producer_ms % 1000,
			 f->server_ms / 1000, f->server_ms % 1000);
		uint64_t s = (uint64_t)(cl_frag_start(f, g->c->o.ts) - t0) * 1000000u;
		struct mkvw_chapter ch = { i + 1, s, s + (uint64_t)(f->duration_ms > 0 ?
								  f->duration_ms : 1) * 1000000u,
					   title };
		if (mkvw_put_chapter(b, &ch))
			return -ENOMEM;
	}
	mkvw_chapters_end(b, mc, me);
	return 0;
}

/* Everything before the first Cluster into b: EBML header, Segment head (body size seg), SeekHead
 * (the Cues at cues_pos), Info (Duration end ms), Tracks, and when chapters the Chapters (the
 * same at the end as at the start, so not written again); g->seg0 set. Every value is written with a
 * fixed width, so the size does not depend on seg, end or cues_pos: the head written first with
 * zeros is overwritten at the end with the same size. 0 or -ENOMEM. */
static int put_head(struct mkgen *g, struct buf *b, uint64_t seg, int64_t end, uint64_t cues_pos,
		    int chapters)
{
	struct buf info = { 0 };
	char title[160];
	snprintf(title, sizeof(title), "%s %s", g->stream, g->name);
	struct mkvw_info in = { .timecode_scale = 1000000, .duration = (double)end, .has_date = 1,
				.date_utc_ms = cl_frag_start(&g->fl.v[0], g->c->o.ts), .title = title,
				.app = "kvsfs" };
	uint64_t off_info = mkvw_seekhead_size(4);
	int rc = mkvw_put_info(&info, &in) ? -ENOMEM : 0;
	uint64_t off_tracks = off_info + info.len, off_chap = off_tracks + g->tracks.len;
	struct mkvw_seek sk[4] = { { MKVW_ID_INFO, off_info }, { MKVW_ID_TRACKS, off_tracks },
				   { MKVW_ID_CHAPTERS, off_chap }, { MKVW_ID_CUES, cues_pos } };
	if (rc == 0 && (mkvw_put_ebml_header(b) || mkvw_put_segment_head(b, seg)))
		rc = -ENOMEM;
	g->seg0 = b->len;
	if (rc == 0 && (mkvw_put_seekhead(b, sk, 4) || buf_append(b, info.data, info.len) ||
			buf_append(b, g->tracks.data, g->tracks.len) ||
			(chapters && buf_append(b, g->chap.data, g->chap.len))))
		rc = -ENOMEM;
	buf_free(&info);
	return rc;
}

/* After the last Cluster: the Cues, then the head again with the Segment's size, the Duration
 * and the Cues' position, over the first one. 0 or a negative errno. */
static int finish(struct mkgen *g)
{
	struct buf head = { 0 };
	const struct kvs_fragment *last = &g->fl.v[g->fl.n - 1];
	int64_t end = cl_frag_start(last, g->c->o.ts) - cl_frag_start(&g->fl.v[0], g->c->o.ts) +
		      (last->duration_ms > 0 ? last->duration_ms : 0);
	if (end < g->max_out + 1)
		end = g->max_out + 1;
	uint64_t cues_pos = g->flushed + g->out.len - g->seg0;
	int rc = mkvw_put_cues(&g->out, g->cues, g->ncues) ? -ENOMEM : 0;
	uint64_t seg = g->flushed + g->out.len - g->seg0;
	if (rc == 0)
		rc = flush(g, 1);
	if (rc == 0)
		rc = put_head(g, &head, seg, end, cues_pos, 0);
	if (rc == 0 && head.len != g->head_len)
		rc = -EIO; /* the writer's sizes depend on the values: a bug */
	if (rc == 0)
		rc = fcache_pwrite(g->w, head.data, head.len, 0);
	g->total = g->seg0 + seg;
	buf_free(&head);
	return rc;
}

/* ------------------------------------------------------------------ the pass */

/* Fragment 0 fixes the tracks, the Cue track and the head (written with placeholder values). */
static int first_fragment(struct mkgen *g, struct frag *fr)
{
	g->cue_video = fr->video != 0;
	g->cue_track = fr->video ? fr->video : fr->first_track;
	if (buf_append(&g->tracks, fr->tracks.data, fr->tracks.len) || put_chapters(g, &g->chap))
		return -ENOMEM;
	struct buf head = { 0 };
	int rc = put_head(g, &head, 0, 0, 0, 1);
	if (rc == 0 && buf_append(&g->out, head.data, head.len))
		rc = -ENOMEM;
	g->head_len = head.len - g->chap.len;
	buf_free(&head);
	buf_free(&g->chap);
	return rc;
}

/* Starts round r of downloads: fragments [r * ROUND, (r + 1) * ROUND) dealt in turns of CHUNK
 * consecutive fragments to up to MAX_PARALLEL GetMediaForFragmentList calls (at least MIN_WINDOW
 * fragments each, at most 1,000), so that the calls, running at once, bring the fragments in
 * about the order they are written. Fragments cached or on the way are left out (the fetcher's
 * rule). Never blocks on a download; out of memory only means the reads fetch for themselves. */
static void start_round(struct mkgen *g, size_t r)
{
	size_t n = g->fl.n, a = r * ROUND;
	if (a >= n)
		return;
	size_t m = n - a < ROUND ? n - a : ROUND;
	size_t calls = (m + MIN_WINDOW - 1) / MIN_WINDOW;
	if (calls > MAX_PARALLEL)
		calls = MAX_PARALLEL;
	struct fetch_item *v = malloc(m * sizeof(*v));
	if (!v)
		return;
	for (size_t k = 0; k < calls; k++) {
		size_t nv = 0;
		for (size_t c = k * CHUNK; c < m; c += calls * CHUNK)
			for (size_t j = c; j < c + CHUNK && j < m; j++)
				v[nv++] = g->items[a + j];
		if (nv)
			fetch_prefetch(g->f, g->stream, v, nv, 1);
	}
	free(v);
}

/* Every fragment fetched, checked and written, in order, while the later ones download. */
static int write_pass(struct mkgen *g)
{
	struct clips *c = g->c;
	size_t n = g->fl.n;
	int rc = fcache_begin(c->o.cache, g->key, &g->w), logged = 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (i % ROUND == 0) {
			/* the next round queues behind this one in the fetcher's slots */
			if (i == 0)
				start_round(g, 0);
			start_round(g, i / ROUND + 1);
		}
		struct frag fr;
		rc = frag_load(g, i, &fr);
		logged = rc != 0;
		if (rc == 0 && i == 0)
			rc = first_fragment(g, &fr);
		if (rc == 0 && mkv_tracks_same(fr.tracks.data, fr.tracks.len, g->tracks.data,
					       g->tracks.len) != 1) {
			LOG_ERROR(c->o.log, "clips", "%s/%s: fragment %s has %s tracks than fragment %s: "
				  "codec settings change inside the range", g->stream, g->name,
				  g->fl.v[i].number, fr.tracks.len ? "other" : "no", g->fl.v[0].number);
			rc = -EMEDIUMTYPE;
			logged = 1;
		}
		if (rc == 0)
			rc = cut_clusters(&fr, write_cluster, g);
		frag_clear(&fr);
	}
	if (rc == 0)
		rc = finish(g);
	if (rc && !logged)
		LOG_ERROR(c->o.log, "clips", "%s/%s: cannot write the clip: %s", g->stream, g->name,
			  strerror(-rc));
	return rc;
}

int cl_make_mkv(struct clips *c, struct fetcher *f, const char *stream, const char *name,
		int64_t start_ms, int64_t end_ms, uint64_t *size, int *fd, struct fcache_pin **pin)
{
	struct mkgen g = { .c = c, .f = f, .stream = stream, .name = name };
	int rc = cl_clip_key(stream, name, g.key);
	if (rc)
		return rc;
	if (!f)
		return -ENOSYS;
	rc = cl_lookup(c, g.key, size, fd, pin);
	if (rc != -ENOENT)
		return rc; /* made meanwhile */
	rc = cl_list_range(c, stream, name, start_ms, end_ms, &g.fl);
	if (rc == 0 && !(g.items = calloc(g.fl.n, sizeof(*g.items))))
		rc = -ENOMEM;
	for (size_t i = 0; rc == 0 && i < g.fl.n; i++)
		g.items[i] = (struct fetch_item){ g.fl.v[i].number, g.fl.v[i].size };
	if (rc == 0) {
		rc = write_pass(&g);
		if (rc == 0)
			rc = cl_commit(c, stream, name, g.key, g.w, g.total, fd, pin);
		else
			fcache_abort(g.w);
		g.w = NULL;
	}
	if (rc == 0) {
		*size = g.total;
		LOG_DEBUG(c->o.log, "clips", "%s/%s: made, %" PRIu64 " bytes, %zu fragments, %zu "
			  "clusters, %zu cues", stream, name, *size, g.fl.n, g.ncl, g.ncues);
	}
	buf_free(&g.tracks);
	buf_free(&g.chap);
	buf_free(&g.out);
	free(g.cues);
	free(g.items);
	kvs_fragment_list_free(&g.fl);
	return rc;
}
