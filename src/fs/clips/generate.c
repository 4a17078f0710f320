/*
 * clips generate: one generation of a clip (the steps are in docs/CLIPS.md, "Making a clip").
 *
 *   1. list_range: ListFragments for [start, end]; fragments whose start on the basis lies
 *      outside the range are dropped (the service's range semantics are not pinned down); none
 *      left: -ENOENT.
 *   2. plan_parts: clips_plan(); consecutive groups within max_fragments and max_bytes.
 *   3. fetch_parts: per group, one GetClip over [first start, last start] (the KVS client paces
 *      1 TPS per stream) streamed into a temporary fcache entry "cliptmp/<gen>/<i>" (pinned, so
 *      it cannot be evicted while in use), read with mp4_info_read and checked: a video track
 *      with at least one sync sample per fragment and a duration that covers the fragments'
 *      (GetClip cuts silently: a short part is an error, never a short clip). Transient failures
 *      left after the HTTP layer's retries are retried here a few times, re-paced each time.
 *   4. join_parts: mp4_join_prepare over the parts' fds; the join's sample totals must equal the
 *      sum over the parts, per handler.
 *   5. store_clip: the joined file is streamed (mp4_join_pread) into an fcache writer for
 *      "clip/<stream>/<name>" and committed; the committed size must equal mp4_join_size.
 *   6. gen_release: the temporary entries are unpinned and removed in every case.
 *
 * No lock is held at any step (the caller leads the clip's single flight). Invariant: the cache
 * only ever holds complete, validated clips under "clip/"; parts live under "cliptmp/" and are
 * removed after each generation (and at clips_new, after a crash).
 */
#include "clips_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvsfs/awserr.h"
#include "kvsfs/fcache.h"
#include "kvsfs/log.h"
#include "kvsfs/metrics.h"
#include "kvsfs/mp4.h"

#define PART_ATTEMPTS 4          /* GetClip attempts per part at this level */
#define COPY_CHUNK (1u << 20)

/* ------------------------------------------------------------------ one part */

struct part {
	char key[96];
	int fd;
	struct fcache_pin *pin;
	uint64_t size;
	struct mp4_info info;
};

struct sink {
	struct clips *c;
	const char *key;
	struct fcache_writer *w;
	int werr;            /* cache write failure: not retried */
	uint64_t bytes;
};

static int sink_body(void *arg, const void *data, size_t len)
{
	struct sink *s = arg;
	if (!s->w)
		return -EIO;
	int rc = fcache_write(s->w, data, len);
	if (rc) {
		s->werr = rc;
		return rc;
	}
	s->bytes += len;
	return 0;
}

static int sink_reset(void *arg)
{
	struct sink *s = arg;
	fcache_abort(s->w);
	s->w = NULL;
	s->bytes = 0;
	int rc = fcache_begin(s->c->o.cache, s->key, &s->w);
	if (rc)
		s->werr = rc;
	return rc;
}

static int transient(int rc)
{
	return rc == -EAGAIN || rc == -EIO || rc == -ETIMEDOUT || rc == -ECONNREFUSED ||
	       rc == -EHOSTUNREACH || rc == -ESTALE;
}

/* GetClip of one group into a pinned temporary entry p->key. 0 or a negative errno (logged). */
static int fetch_part(struct clips *c, const char *stream, const char *clip, size_t idx,
		      size_t nparts, const struct clips_group *g, struct part *p)
{
	char why[AWSERR_MSG_MAX + 256];
	int rc = 0;
	for (int attempt = 1; attempt <= PART_ATTEMPTS; attempt++) {
		struct sink s = { .c = c, .key = p->key };
		struct awserr ae;
		awserr_clear(&ae);
		rc = fcache_begin(c->o.cache, p->key, &s.w);
		if (rc) {
			LOG_ERROR(c->o.log, "clips", "%s/%s: cannot write part %zu to the cache: %s",
				  stream, clip, idx + 1, strerror(-rc));
			return rc;
		}
		rc = kvs_get_clip(c->o.kvs, stream, c->o.ts, g->start_ms, g->end_ms, sink_body,
				  sink_reset, &s, &ae);
		if (rc == 0) {
			rc = fcache_commit_get(s.w, &p->fd, &p->size, &p->pin);
			if (rc) {
				LOG_ERROR(c->o.log, "clips", "%s/%s: cannot store part %zu in the cache: %s",
					  stream, clip, idx + 1, strerror(-rc));
				fcache_remove(c->o.cache, p->key);
				p->fd = -1;
				p->pin = NULL;
			}
			return rc;
		}
		fcache_abort(s.w);
		if (s.werr) {
			LOG_ERROR(c->o.log, "clips", "%s/%s: cannot write part %zu to the cache: %s",
				  stream, clip, idx + 1, strerror(-s.werr));
			return s.werr;
		}
		awserr_format(&ae, why, sizeof(why));
		if (!transient(rc) || attempt == PART_ATTEMPTS) {
			LOG_ERROR(c->o.log, "clips", "%s/%s: GetClip for part %zu/%zu failed: %s", stream,
				  clip, idx + 1, nparts, why);
			return rc;
		}
		LOG_DEBUG(c->o.log, "clips", "%s/%s: GetClip for part %zu/%zu failed (%s), retrying",
			  stream, clip, idx + 1, nparts, why);
		struct timespec ts = { .tv_sec = 0, .tv_nsec = 250000000L * attempt };
		nanosleep(&ts, NULL);
	}
	return rc;
}

static const struct mp4_track_info *find_track(const struct mp4_info *in, const char *handler)
{
	for (size_t i = 0; i < in->ntracks; i++)
		if (strcmp(in->tracks[i].handler, handler) == 0)
			return &in->tracks[i];
	return NULL;
}

/* Checks that a part holds the fragments asked for. 0 or -EIO/-EMEDIUMTYPE (logged). */
static int check_part(struct clips *c, const char *stream, const char *clip, size_t idx,
		      const struct kvs_fragment *v, const struct clips_group *g,
		      const struct mp4_info *in)
{
	const struct mp4_track_info *vt = find_track(in, "vide");
	if (!vt || vt->sample_count == 0) {
		LOG_ERROR(c->o.log, "clips", "%s/%s: part %zu from GetClip has no video samples",
			  stream, clip, idx + 1);
		return -EIO;
	}
	/* Two estimates of the media the fragments hold: the sum of their durations (KVS's
	 * FragmentLengthInMilliseconds, which can run a few ms long per fragment, e.g. when audio
	 * outlasts video) and their time span (last start - first start + last duration, exact
	 * but counting any gap between fragments). A part cut short by GetClip misses whole
	 * fragments, so it falls below both by at least half the shortest fragment. */
	int64_t sum = 0, shortest = INT64_MAX;
	int known = 1;
	for (size_t i = g->first; i < g->first + g->count; i++) {
		if (v[i].duration_ms <= 0)
			known = 0;
		sum += v[i].duration_ms;
		if (v[i].duration_ms > 0 && v[i].duration_ms < shortest)
			shortest = v[i].duration_ms;
	}
	if (vt->sync_count < g->count) {
		LOG_ERROR(c->o.log, "clips", "%s/%s: part %zu from GetClip has %" PRIu32 " key frames "
			  "for %zu fragments: the clip was cut short", stream, clip, idx + 1,
			  vt->sync_count, g->count);
		return -EIO;
	}
	if (known) {
		const struct kvs_fragment *last = &v[g->first + g->count - 1];
		int64_t span = cl_frag_start(last, c->o.ts) - cl_frag_start(&v[g->first], c->o.ts) +
			       last->duration_ms;
		int64_t lo = sum < span ? sum : span, hi = sum < span ? span : sum;
		int64_t tol = shortest / 2;
		int64_t have = (int64_t)vt->duration_ms;
		if (have + tol < lo || have > hi + tol) {
			LOG_ERROR(c->o.log, "clips", "%s/%s: part %zu from GetClip holds %" PRId64 " ms of "
				  "video, its %zu fragments %" PRId64 " ms (span %" PRId64 " ms)", stream,
				  clip, idx + 1, have, g->count, sum, span);
			return -EIO;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------ one generation */

/* What one generation holds; gen_release frees it. */
struct gen {
	struct clips *c;
	const char *stream, *name;
	char key[FCACHE_KEY_MAX + 1];     /* the clip's cache key */
	struct kvs_fragment_list fl;      /* the fragments in range */
	struct clips_group *g;            /* the plan */
	size_t ng;
	struct part *parts;               /* ng parts, the first got of them fetched */
	struct mp4_input *in;
	size_t got;
	struct mp4_join *j;
	int slot;                         /* metrics work slot (-1: none) */
	uint64_t bytes;                   /* MP4 bytes of the parts fetched */
};

int cl_list_range(struct clips *c, const char *stream, const char *name, int64_t start_ms,
		  int64_t end_ms, struct kvs_fragment_list *fl)
{
	struct awserr ae;
	awserr_clear(&ae);
	int rc = kvs_list_fragments(c->o.kvs, stream, c->o.ts, start_ms, end_ms, fl, &ae);
	if (rc) {
		char why[AWSERR_MSG_MAX + 256];
		LOG_ERROR(c->o.log, "clips", "%s/%s: ListFragments failed: %s", stream, name,
			  awserr_format(&ae, why, sizeof(why)));
		return rc;
	}
	size_t n = 0;
	for (size_t i = 0; i < fl->n; i++) {
		int64_t t = cl_frag_start(&fl->v[i], c->o.ts);
		if (t >= start_ms && t <= end_ms)
			fl->v[n++] = fl->v[i];
	}
	fl->n = n;
	if (n == 0) {
		LOG_ERROR(c->o.log, "clips", "%s/%s: no fragment starts in the range (empty, or outside "
			  "the stream's retention)", stream, name);
		return -ENOENT;
	}
	return 0;
}

/* Step 1: the fragments whose start lies in [start_ms, end_ms], into g->fl. */
static int list_range(struct gen *g, int64_t start_ms, int64_t end_ms)
{
	return cl_list_range(g->c, g->stream, g->name, start_ms, end_ms, &g->fl);
}

/* Step 2: the GetClip calls, into g->g / g->ng, and room for their parts. */
static int plan_parts(struct gen *g)
{
	struct clips *c = g->c;
	int rc = clips_plan(g->fl.v, g->fl.n, c->o.ts, c->o.max_fragments, c->o.max_bytes, &g->g,
			    &g->ng);
	if (rc) {
		LOG_ERROR(c->o.log, "clips", "%s/%s: cannot plan GetClip calls: %s", g->stream, g->name,
			  rc == -E2BIG ? "too many fragments share one start time" : strerror(-rc));
		return rc == -E2BIG ? -EIO : rc;
	}
	if (g->ng > MP4_MAX_PARTS) {
		LOG_ERROR(c->o.log, "clips", "%s/%s: %zu GetClip parts exceed the joiner's %d", g->stream,
			  g->name, g->ng, MP4_MAX_PARTS);
		return -EFBIG;
	}
	LOG_DEBUG(c->o.log, "clips", "%s/%s: %zu fragments in %zu GetClip call%s", g->stream, g->name,
		  g->fl.n, g->ng, g->ng == 1 ? "" : "s");
	g->parts = calloc(g->ng, sizeof(*g->parts));
	g->in = calloc(g->ng, sizeof(*g->in));
	return g->parts && g->in ? 0 : -ENOMEM;
}

/* Step 3: every part fetched into a pinned temporary entry, read and checked. */
static int fetch_parts(struct gen *g)
{
	struct clips *c = g->c;
	uint64_t gen = __atomic_add_fetch(&c->gen, 1, __ATOMIC_RELAXED);
	for (size_t i = 0; i < g->ng; i++) {
		struct part *p = &g->parts[i];
		snprintf(p->key, sizeof(p->key), TMP_PREFIX "%" PRIx64 "/%zu", gen, i);
		p->fd = -1;
		int rc = fetch_part(c, g->stream, g->name, i, g->ng, &g->g[i], p);
		if (rc)
			return rc;
		g->got = i + 1;
		metrics_work_progress(c->o.metrics, g->slot, i + 1, g->ng, g->bytes += p->size);
		char reason[MP4_REASON_MAX];
		g->in[i] = (struct mp4_input){ .fd = p->fd, .name = p->key };
		rc = mp4_info_read(&g->in[i], &p->info, NULL, reason, sizeof(reason));
		if (rc) {
			LOG_ERROR(c->o.log, "clips", "%s/%s: part %zu from GetClip is not a usable MP4: %s",
				  g->stream, g->name, i + 1, reason);
			return rc == -ENOMEM ? rc : -EIO;
		}
		rc = check_part(c, g->stream, g->name, i, g->fl.v, &g->g[i], &p->info);
		if (rc)
			return rc;
		const struct mp4_track_info *vt = find_track(&p->info, "vide");
		LOG_DEBUG(c->o.log, "clips", "%s/%s: part %zu/%zu: %zu fragments, %" PRIu64 " bytes of "
			  "fragments, %" PRIu64 " bytes of MP4, %" PRIu32 " video frames, %" PRIu64 " ms",
			  g->stream, g->name, i + 1, g->ng, g->g[i].count, g->g[i].bytes, p->size,
			  vt->sample_count, vt->duration_ms);
	}
	return 0;
}

/* Sum of the sample counts of handler h over n track infos. */
static uint64_t samples_of(const struct mp4_info *in, const char *h)
{
	uint64_t sum = 0;
	for (size_t k = 0; k < in->ntracks; k++)
		if (strcmp(in->tracks[k].handler, h) == 0)
			sum += in->tracks[k].sample_count;
	return sum;
}

/* Step 4: the parts joined into g->j, with the same samples as the parts. */
static int join_parts(struct gen *g)
{
	struct clips *c = g->c;
	char reason[MP4_REASON_MAX];
	int rc = mp4_join_prepare(g->in, g->ng, NULL, &g->j, reason, sizeof(reason));
	if (rc) {
		LOG_ERROR(c->o.log, "clips", "%s/%s: the GetClip parts cannot be joined: %s", g->stream,
			  g->name, reason);
		if (rc != -EMEDIUMTYPE && rc != -ENOMEM && rc != -EFBIG)
			rc = -EIO;
		return rc;
	}
	struct mp4_info ji;
	mp4_join_info(g->j, &ji);
	for (size_t t = 0; t < ji.ntracks; t++) {
		const char *h = ji.tracks[t].handler;
		uint64_t sum = 0;
		for (size_t i = 0; i < g->ng; i++)
			sum += samples_of(&g->parts[i].info, h);
		uint64_t same = samples_of(&ji, h);
		if (same != sum) {
			LOG_ERROR(c->o.log, "clips", "%s/%s: the joined clip has %" PRIu64 " '%s' samples, "
				  "its parts %" PRIu64, g->stream, g->name, same, h, sum);
			return -EIO;
		}
	}
	return 0;
}

/* Streams the joined file into w. 0 or a negative errno (logged). */
static int copy_join(struct gen *g, struct fcache_writer *w, uint64_t total)
{
	struct clips *c = g->c;
	char *chunk = malloc(COPY_CHUNK);
	if (!chunk)
		return -ENOMEM;
	int rc = 0;
	for (uint64_t off = 0; off < total && rc == 0;) {
		ssize_t r = mp4_join_pread(g->j, chunk, COPY_CHUNK, off);
		if (r <= 0) {
			rc = r < 0 ? (int)r : -EIO;
			LOG_ERROR(c->o.log, "clips", "%s/%s: reading the joined parts failed: %s", g->stream,
				  g->name, strerror(-rc));
			break;
		}
		rc = fcache_write(w, chunk, (size_t)r);
		if (rc)
			LOG_ERROR(c->o.log, "clips", "%s/%s: cannot write the clip to the cache: %s",
				  g->stream, g->name, strerror(-rc));
		off += (uint64_t)r;
	}
	free(chunk);
	return rc;
}

int cl_commit(struct clips *c, const char *stream, const char *name, const char *key,
	      struct fcache_writer *w, uint64_t total, int *fd, struct fcache_pin **pin)
{
	uint64_t committed = 0;
	int rc = fd ? fcache_commit_get(w, fd, &committed, pin) : fcache_commit(w, &committed);
	if (rc) {
		LOG_ERROR(c->o.log, "clips", "%s/%s: cannot commit the clip to the cache: %s", stream,
			  name, strerror(-rc));
		return rc;
	}
	if (committed == total)
		return 0;
	LOG_ERROR(c->o.log, "clips", "%s/%s: cached clip has %" PRIu64 " bytes, expected %" PRIu64,
		  stream, name, committed, total);
	if (fd) {
		close(*fd);
		*fd = -1;
		fcache_unpin(c->o.cache, *pin);
		*pin = NULL;
	}
	fcache_remove(c->o.cache, key);
	return -EIO;
}

int cl_lookup(struct clips *c, const char *key, uint64_t *size, int *fd, struct fcache_pin **pin)
{
	if (fd)
		return fcache_get(c->o.cache, key, fd, size, pin);
	return fcache_contains(c->o.cache, key, size) ? 0 : -ENOENT;
}

/* Step 5: the joined clip committed under g->key (opened and pinned when fd != NULL). */
static int store_clip(struct gen *g, uint64_t *size, int *fd, struct fcache_pin **pin)
{
	struct clips *c = g->c;
	uint64_t total = mp4_join_size(g->j);
	struct fcache_writer *w = NULL;
	int rc = fcache_begin(c->o.cache, g->key, &w);
	if (rc) {
		LOG_ERROR(c->o.log, "clips", "%s/%s: cannot write the clip to the cache: %s", g->stream,
			  g->name, strerror(-rc));
		return rc;
	}
	rc = copy_join(g, w, total);
	if (rc) {
		fcache_abort(w);
		return rc;
	}
	rc = cl_commit(c, g->stream, g->name, g->key, w, total, fd, pin);
	if (rc)
		return rc;
	*size = total;
	LOG_DEBUG(c->o.log, "clips", "%s/%s: made, %" PRIu64 " bytes from %zu part%s", g->stream,
		  g->name, total, g->ng, g->ng == 1 ? "" : "s");
	return 0;
}

/* Step 6: frees what the generation holds and removes its temporary parts. */
static void gen_release(struct gen *g)
{
	mp4_join_free(g->j);
	for (size_t i = 0; g->parts && i < g->got; i++) {
		if (g->parts[i].fd >= 0)
			close(g->parts[i].fd);
		fcache_unpin(g->c->o.cache, g->parts[i].pin);
		fcache_remove(g->c->o.cache, g->parts[i].key);
	}
	free(g->parts);
	free(g->in);
	free(g->g);
	kvs_fragment_list_free(&g->fl);
}

int cl_make_one(struct clips *c, const char *stream, const char *name, int64_t start_ms,
		int64_t end_ms, uint64_t *size, int *fd, struct fcache_pin **pin)
{
	struct gen g = { .c = c, .stream = stream, .name = name };
	int rc = cl_clip_key(stream, name, g.key);
	if (rc)
		return rc;
	rc = cl_lookup(c, g.key, size, fd, pin);
	if (rc != -ENOENT)
		return rc; /* made meanwhile */
	char what[200];
	snprintf(what, sizeof(what), "%s/clips/%s", stream, name);
	METRICS_ADD(c->o.metrics, clips_in_progress, 1);
	g.slot = metrics_work_begin(c->o.metrics, "clip", what, 0, 0);
	rc = list_range(&g, start_ms, end_ms);
	if (rc == 0)
		rc = plan_parts(&g);
	if (rc == 0)
		metrics_work_progress(c->o.metrics, g.slot, 0, g.ng, 0);
	if (rc == 0)
		rc = fetch_parts(&g);
	if (rc == 0)
		rc = join_parts(&g);
	if (rc == 0)
		rc = store_clip(&g, size, fd, pin);
	gen_release(&g);
	metrics_work_end(c->o.metrics, g.slot);
	METRICS_ADD(c->o.metrics, clips_in_progress, -1);
	return rc;
}
