/*
 * mp4_join: the joiner of non-fragmented MP4 parts (see include/kvsfs/mp4.h, docs/MP4.md and
 * src/media/mp4_internal.h).
 *
 * Design: mp4_join_prepare loads every part (mp4_read.c), then build() plans the output in
 * steps: layout (tracks of part k matched with part 1's by handler type and rank among tracks
 * of that handler, mdat payloads placed one after the other), build_track (each output track's
 * tables from every part, mp4_tables.c), durations, emit_head (ftyp + moov + mdat header, the
 * moov from mp4_moov.c; stco when every offset fits 32 bits, else co64, decided from the exact
 * size), make_segments and fill_info. The result is an in-memory head followed by a list of
 * segments (part, source offset, length) that mp4_join_pread maps any output range onto; the
 * media bytes are never held in memory.
 * Invariants: a struct mp4_join is immutable once prepared (reads may run in parallel); the
 * segments are sorted by output offset and cover [head.len, total) without gaps.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvsfs/fsutil.h"
#include "kvsfs/log.h"
#include "mp4_internal.h"

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

static int match_tracks(struct ectx *e, const struct part *p0, const struct part *p, size_t *map)
{
	if (p->ntracks != p0->ntracks)
		return mp4_fail(e, -EMEDIUMTYPE, "%s has %zu tracks, %s has %zu", mp4_in_name(&p->in), p->ntracks,
				mp4_in_name(&p0->in), p0->ntracks);
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
		mp4_fourcc_str(p0->tr[i].handler, h);
		if (k == p->ntracks)
			return mp4_fail(e, -EMEDIUMTYPE, "%s has no '%s' track matching track %u",
					mp4_in_name(&p->in), h, p0->tr[i].id);
		map[i] = k;
		int same = mp4_stsd_same(&p0->tr[i].stsd, &p->tr[k].stsd, p0->tr[i].handler);
		if (same < 0)
			return mp4_fail(e, same, "out of memory");
		if (!same)
			return mp4_fail(e, -EMEDIUMTYPE, "%s: sample description of '%s' track %u differs from %s",
					mp4_in_name(&p->in), h, p->tr[k].id, mp4_in_name(&p0->in));
	}
	return 0;
}

/* Matches every part's tracks with part 1's (map[k * MP4_MAX_TRACKS + i]) and lays the mdat
 * payloads out one after the other in the output; *payload and *nsegs get the totals. */
static int layout(struct ectx *e, struct mp4_join *j, struct part *parts, size_t *map,
		  uint64_t *payload, uint64_t *nsegs)
{
	*payload = 0;
	*nsegs = 0;
	for (size_t i = 0; i < parts[0].ntracks; i++)
		map[i] = i;
	for (size_t k = 0; k < j->nparts; k++) {
		int rc;
		if (k && (rc = match_tracks(e, &parts[0], &parts[k], map + k * MP4_MAX_TRACKS)))
			return rc;
		for (size_t m = 0; m < parts[k].nmdat; m++) {
			parts[k].mdat[m].out_rel = *payload;
			*payload += parts[k].mdat[m].len;
			*nsegs += parts[k].mdat[m].len > 0;
		}
	}
	return 0;
}

/* Output track i: the flags that depend on every part, then every part's tables appended. */
static int build_track(struct ectx *e, const struct mp4_join *j, const struct part *parts,
		       const size_t *map, size_t i, struct otrack *o)
{
	const struct track *t0 = &parts[0].tr[i];
	o->timescale = t0->timescale;
	o->has_sdtp = 1;
	o->groups = !t0->extra_groups && t0->sgpd.present && t0->sbgp.present;
	for (size_t k = 0; k < j->nparts; k++) {
		const struct track *t = &parts[k].tr[map[k * MP4_MAX_TRACKS + i]];
		o->has_ctts |= t->ctts.present;
		o->ctts_v1 |= t->ctts.present && t->ctts.version == 1;
		o->has_stss |= t->stss.present;
		o->has_sdtp &= t->sdtp.present;
		if (o->groups && (t->extra_groups || !t->sgpd.present || !t->sbgp.present ||
				  t->sgpd.len != t0->sgpd.len ||
				  memcmp(t->sgpd.p, t0->sgpd.p, t->sgpd.len) != 0 ||
				  t->sbgp.version != t0->sbgp.version || t->sbgp.version > 1 ||
				  memcmp(t->sbgp.p + 4, t0->sbgp.p + 4, 4) != 0))
			o->groups = 0;
	}
	if (t0->sbgp.present && !o->groups)
		LOG_DEBUG(e->lg, MP4_MOD, "track %u: sample groups differ between parts, dropped",
			  t0->id);
	int rc = 0;
	for (size_t k = 0; k < j->nparts && !rc; k++)
		rc = mp4_append_track(e, o, &parts[k].tr[map[k * MP4_MAX_TRACKS + i]], &parts[k],
				      o->has_sdtp, o->groups);
	if (rc && !e->set)
		mp4_fail(e, rc, "out of memory");
	return rc;
}

/* Track durations in the movie timescale (the edit list's when there is one); returns the
 * movie duration, the longest. */
static uint64_t durations(const struct part *p0, const struct otrack *ot, uint64_t *tkdur)
{
	uint64_t mdur = 0;
	for (size_t i = 0; i < p0->ntracks; i++) {
		const struct track *t = &p0->tr[i];
		uint64_t d = (uint64_t)mp4_rescale((int64_t)ot[i].media_dur, p0->movie_ts,
						   ot[i].timescale);
		if (t->elst.present) {
			struct edit ed[64];
			int v1;
			mp4_edits(t, &ot[i], p0->movie_ts, ed, &d, &v1);
		}
		tkdur[i] = d;
		if (d > mdur)
			mdur = d;
	}
	return mdur;
}

/* head: ftyp + moov + mdat header. The chunk offsets depend on the head's size: try stco first,
 * co64 when offsets need it, and emit again until the payload base is stable. */
static int emit_head(struct ectx *e, struct mp4_join *j, struct emit *m, uint64_t payload)
{
	const struct part *p0 = m->p0;
	int rc = 0;
	for (int pass = 0; pass < 3; pass++) {
		buf_reset(&j->head);
		if (p0->ftyp && (rc = buf_append(&j->head, p0->ftyp, p0->ftyp_len)))
			break;
		if ((rc = mp4_emit_moov(m)))
			break;
		uint64_t mhdr = payload + 8 > UINT32_MAX ? 16 : 8;
		uint64_t base = j->head.len + mhdr;
		if (pass == 0 && !m->co64 && base + payload > UINT32_MAX) {
			m->co64 = 1;
			continue;
		}
		if (m->base != base) {
			m->base = base;
			continue;
		}
		uint8_t h[16];
		wr32(h, mhdr == 16 ? 1 : (uint32_t)(payload + 8));
		wr32(h + 4, FOURCC('m', 'd', 'a', 't'));
		wr64(h + 8, payload + 16);
		rc = buf_append(&j->head, h, (size_t)mhdr);
		break;
	}
	if (rc)
		return mp4_fail(e, rc, "%s", rc == -EFBIG ? "output moov too large" : "out of memory");
	if (m->base != j->head.len)
		return mp4_fail(e, -EFBIG, "could not lay out the output");
	return 0;
}

/* The segments of the joined file after the head: every non-empty mdat payload, in order. */
static int make_segments(struct ectx *e, struct mp4_join *j, const struct part *parts,
			 uint64_t nsegs)
{
	j->segs = calloc(nsegs ? nsegs : 1, sizeof(*j->segs));
	if (!j->segs)
		return mp4_fail(e, -ENOMEM, "out of memory");
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
	return 0;
}

/* The summary of the joined file, as mp4_info_read would report it. */
static void fill_info(struct mp4_join *j, const struct part *p0, const struct otrack *ot,
		      uint64_t mdur, uint64_t payload)
{
	j->info.movie_timescale = p0->movie_ts;
	j->info.movie_duration = mdur;
	j->info.duration_ms = (uint64_t)((unsigned __int128)mdur * 1000 / p0->movie_ts);
	j->info.mdat_bytes = payload;
	j->info.ntracks = p0->ntracks;
	for (size_t i = 0; i < p0->ntracks; i++) {
		struct track t = p0->tr[i];
		t.nsamples = ot[i].nsamples;
		t.duration = ot[i].media_dur;
		t.stss.present = ot[i].has_stss;
		t.stss.count = ot[i].nstss;
		mp4_track_summary(&t, &j->info.tracks[i]);
	}
}

static int build(struct ectx *e, struct mp4_join *j, struct part *parts, struct otrack *ot)
{
	struct part *p0 = &parts[0];
	size_t *map = calloc(j->nparts * MP4_MAX_TRACKS, sizeof(*map));
	if (!map)
		return mp4_fail(e, -ENOMEM, "out of memory");
	uint64_t payload, nsegs;
	int rc = layout(e, j, parts, map, &payload, &nsegs);
	for (size_t i = 0; i < p0->ntracks && !rc; i++)
		rc = build_track(e, j, parts, map, i, &ot[i]);
	free(map);
	if (rc)
		return rc;
	uint64_t tkdur[MP4_MAX_TRACKS] = { 0 };
	uint64_t mdur = durations(p0, ot, tkdur);
	struct emit m = { &j->head, p0, ot, 0, 0, tkdur, mdur };
	rc = emit_head(e, j, &m, payload);
	if (!rc)
		rc = make_segments(e, j, parts, nsegs);
	if (!rc)
		fill_info(j, p0, ot, mdur, payload);
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
		return mp4_fail(&e, -EINVAL, "need 1 to %d parts", MP4_MAX_PARTS);
	struct mp4_join *j = calloc(1, sizeof(*j));
	struct part *parts = calloc(nparts, sizeof(*parts));
	struct otrack *ot = calloc(MP4_MAX_TRACKS, sizeof(*ot));
	int rc = 0;
	if (!j || !parts || !ot || !(j->in = calloc(nparts, sizeof(*j->in)))) {
		rc = mp4_fail(&e, -ENOMEM, "out of memory");
		goto out;
	}
	j->nparts = nparts;
	for (size_t k = 0; k < nparts && !rc; k++) {
		j->in[k] = inputs[k];
		j->in[k].name = NULL; /* not kept: the caller's string may not outlive the join */
		rc = mp4_part_load(&e, &parts[k], &inputs[k]);
	}
	if (!rc)
		rc = build(&e, j, parts, ot);
out:
	if (parts)
		for (size_t k = 0; k < nparts; k++)
			mp4_part_free(&parts[k]);
	free(parts);
	if (ot)
		for (size_t i = 0; i < MP4_MAX_TRACKS; i++)
			mp4_otrack_free(&ot[i]);
	free(ot);
	if (rc) {
		mp4_join_free(j);
		return rc;
	}
	LOG_DEBUG(lg, MP4_MOD, "joined %zu parts: %llu bytes, moov+head %zu", nparts,
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
		int rc = mp4_in_read(&j->in[g->part], d + done, n, g->src_off + in);
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
		rc = fsutil_write_all(out_fd, b, (size_t)n);
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
		return mp4_fail(&e, -EINVAL, "need 1 to %d parts", MP4_MAX_PARTS);
	struct mp4_input *in = calloc(nparts, sizeof(*in));
	if (!in)
		return mp4_fail(&e, -ENOMEM, "out of memory");
	int rc = 0;
	size_t opened = 0;
	for (; opened < nparts; opened++) {
		in[opened].fd = open(paths[opened], O_RDONLY | O_CLOEXEC);
		in[opened].name = paths[opened];
		if (in[opened].fd < 0) {
			rc = mp4_fail(&e, -errno, "%s: %s", paths[opened], strerror(errno));
			break;
		}
	}
	struct mp4_join *j = NULL;
	if (!rc)
		rc = mp4_join_prepare(in, nparts, lg, &j, reason, reason_len);
	if (!rc) {
		int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0) {
			rc = mp4_fail(&e, -errno, "%s: %s", out_path, strerror(errno));
		} else {
			rc = mp4_join_write(j, fd);
			if (close(fd) < 0 && !rc)
				rc = -errno;
			if (rc)
				mp4_fail(&e, rc, "%s: write failed: %s", out_path, strerror(-rc));
		}
	}
	mp4_join_free(j);
	for (size_t i = 0; i < opened; i++)
		close(in[i].fd);
	free(in);
	return rc;
}
