/*
 * clips: START-END.mp4 files made with KVS GetClip (contract in include/kvsfs/clips.h, design in
 * docs/CLIPS.md).
 *
 * Generation (one per clip at a time, see "single flight" below):
 *   1. ListFragments for [start, end]; fragments whose start on the basis lies outside the range
 *      are dropped (the service's range semantics are not pinned down); none left: -ENOENT.
 *   2. clips_plan(): consecutive groups within max_fragments and max_bytes, never splitting
 *      fragments that share a start millisecond (GetClip selects by time).
 *   3. Per group, one GetClip over [first start, last start] (the KVS client paces 1 TPS per
 *      stream) streamed into a temporary fcache entry "cliptmp/<gen>/<i>" (pinned, so it cannot
 *      be evicted while in use). The reply is checked with mp4_info_read: it must have a video
 *      track with at least one sync sample per fragment and a duration that covers the
 *      fragments' durations (GetClip cuts silently: a short part is an error, never a short clip).
 *      Transient failures (throttling, 5xx, transport) left after the HTTP layer's retries are
 *      retried here a few times, the request being re-paced each time.
 *   4. mp4_join_prepare over the parts' fds; the sample totals of the join must equal the sum
 *      over the parts, per handler. The joined file is streamed (mp4_join_pread) into an fcache
 *      writer for "clip/<stream>/<name>" and committed; the committed size must equal
 *      mp4_join_size.
 *   5. The temporary entries are unpinned and removed in every case.
 *
 * Single flight: a list of in-progress generations (key "stream/name") under c->lock; a caller
 * that finds one waits on c->cond until it is done and takes its result. c->active counts the
 * generators and waiters, so clips_free waits for them.
 *
 * Invariants: the cache only ever holds complete, validated clips under "clip/"; temporary parts
 * live under "cliptmp/" and are removed after each generation (and at clips_new, after a crash).
 */
#include "kvsfs/clips.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvsfs/awserr.h"
#include "kvsfs/fcache.h"
#include "kvsfs/log.h"
#include "kvsfs/mp4.h"
#include "kvsfs/names.h"

#define CLIP_PREFIX "clip/"
#define TMP_PREFIX "cliptmp/"
#define PART_ATTEMPTS 4          /* GetClip attempts per part at this level */
#define COPY_CHUNK (1u << 20)

struct flight {
	char *key;               /* "stream/name" */
	int done;
	int rc;
	uint64_t size;
	int waiters;
	struct flight *link;
};

struct clips {
	struct clips_opts o;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct flight *flights;
	int active;
	uint64_t gen;
};

/* ------------------------------------------------------------------ names and plans */

int clips_parse(const char *name, int64_t *start_ms, int64_t *end_ms)
{
	int64_t a, b;
	if (!name || names_parse_clip(name, &a, &b))
		return -ENOENT;
	if (b < a)
		return -EINVAL;
	if (b - a > CLIPS_MAX_SPAN_MS)
		return -EFBIG;
	*start_ms = a;
	*end_ms = b;
	return 0;
}

static int64_t frag_start(const struct kvs_fragment *f, enum kvs_ts_type ts)
{
	return ts == KVS_TS_SERVER ? f->server_ms : f->producer_ms;
}

int clips_plan(const struct kvs_fragment *v, size_t n, enum kvs_ts_type ts, int max_fragments,
	       uint64_t max_bytes, struct clips_group **groups, size_t *ngroups)
{
	size_t maxf = max_fragments > 0 ? (size_t)max_fragments : CLIPS_DEFAULT_MAX_FRAGMENTS;
	uint64_t maxb = max_bytes ? max_bytes : CLIPS_DEFAULT_MAX_BYTES;
	struct clips_group *g = NULL;
	size_t ng = 0, cap = 0;
	*groups = NULL;
	*ngroups = 0;
	size_t i = 0;
	while (i < n) {
		/* runs of fragments sharing one start are atomic */
		size_t count = 0;
		uint64_t bytes = 0;
		while (i + count < n) {
			size_t run = 1;
			int64_t t = frag_start(&v[i + count], ts);
			uint64_t rb = v[i + count].size > 0 ? (uint64_t)v[i + count].size : 0;
			while (i + count + run < n && frag_start(&v[i + count + run], ts) == t) {
				const struct kvs_fragment *f = &v[i + count + run];
				rb += f->size > 0 ? (uint64_t)f->size : 0;
				run++;
			}
			if (run > maxf) {
				free(g);
				return -E2BIG;
			}
			if (count > 0 && (count + run > maxf || bytes + rb > maxb))
				break;
			count += run;
			bytes += rb;
		}
		if (ng == cap) {
			size_t nc = cap ? cap * 2 : 8;
			struct clips_group *ngv = realloc(g, nc * sizeof(*g));
			if (!ngv) {
				free(g);
				return -ENOMEM;
			}
			g = ngv;
			cap = nc;
		}
		g[ng].first = i;
		g[ng].count = count;
		g[ng].bytes = bytes;
		g[ng].start_ms = frag_start(&v[i], ts);
		g[ng].end_ms = frag_start(&v[i + count - 1], ts);
		ng++;
		i += count;
	}
	*groups = g;
	*ngroups = ng;
	return 0;
}

/* ------------------------------------------------------------------ object */

static int remove_leftover(void *arg, const char *key, uint64_t size)
{
	struct clips *c = arg;
	(void)size;
	if (fcache_remove(c->o.cache, key) == 0)
		LOG_DEBUG(c->o.log, "clips", "removed a leftover temporary part (%s)", key);
	return 0;
}

int clips_new(const struct clips_opts *o, struct clips **out)
{
	*out = NULL;
	if (!o || !o->kvs || !o->cache)
		return -EINVAL;
	struct clips *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->o = *o;
	if (c->o.max_fragments <= 0)
		c->o.max_fragments = CLIPS_DEFAULT_MAX_FRAGMENTS;
	if (!c->o.max_bytes)
		c->o.max_bytes = CLIPS_DEFAULT_MAX_BYTES;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	c->gen = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
	/* parts left by a crash: fcache_open already emptied tmp/, but committed parts remain */
	fcache_list(c->o.cache, TMP_PREFIX, remove_leftover, c);
	*out = c;
	return 0;
}

void clips_free(struct clips *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	while (c->active > 0)
		pthread_cond_wait(&c->cond, &c->lock);
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}

/* "clip/<stream>/<name>" into out (FCACHE_KEY_MAX + 1 bytes). -ENAMETOOLONG / -ENOENT. */
static int clip_key(const char *stream, const char *name, char *out)
{
	if (!stream || !*stream || strchr(stream, '/') || !name || !*name || strchr(name, '/'))
		return -ENOENT;
	int n = snprintf(out, FCACHE_KEY_MAX + 1, CLIP_PREFIX "%s/%s", stream, name);
	return n < 0 || n > FCACHE_KEY_MAX ? -ENAMETOOLONG : 0;
}

int clips_cached_size(struct clips *c, const char *stream, const char *name, uint64_t *size)
{
	char key[FCACHE_KEY_MAX + 1];
	int rc = clip_key(stream, name, key);
	if (rc)
		return rc;
	return fcache_contains(c->o.cache, key, size) ? 0 : -ENOENT;
}

int clips_open(struct clips *c, const char *stream, const char *name, int *fd, uint64_t *size,
	       struct fcache_pin **pin)
{
	char key[FCACHE_KEY_MAX + 1];
	int rc = clip_key(stream, name, key);
	if (rc)
		return rc;
	return fcache_get(c->o.cache, key, fd, size, pin);
}

void clips_unpin(struct clips *c, struct fcache_pin *pin)
{
	fcache_unpin(c->o.cache, pin);
}

struct list_ctx {
	size_t prefix_len;
	int (*fn)(void *arg, const char *name, uint64_t size);
	void *arg;
};

static int list_one(void *arg, const char *key, uint64_t size)
{
	struct list_ctx *l = arg;
	const char *name = key + l->prefix_len;
	if (!*name || strchr(name, '/'))
		return 0;
	return l->fn(l->arg, name, size);
}

int clips_list(struct clips *c, const char *stream,
	       int (*fn)(void *arg, const char *name, uint64_t size), void *arg)
{
	char prefix[FCACHE_KEY_MAX + 1];
	if (!stream || !*stream || strchr(stream, '/'))
		return 0;
	int n = snprintf(prefix, sizeof(prefix), CLIP_PREFIX "%s/", stream);
	if (n < 0 || n >= (int)sizeof(prefix))
		return 0;
	struct list_ctx l = { (size_t)n, fn, arg };
	return fcache_list(c->o.cache, prefix, list_one, &l);
}

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
		int64_t span = frag_start(last, c->o.ts) - frag_start(&v[g->first], c->o.ts) +
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

/* ------------------------------------------------------------------ generation */

/* Makes one clip (the caller holds its flight). With fd != NULL the committed clip is also
 * opened and pinned (*fd, *pin) so it cannot be evicted before the caller reads it. */
static int make_one(struct clips *c, const char *stream, const char *name, int64_t start_ms,
		    int64_t end_ms, uint64_t *size, int *fd, struct fcache_pin **pin)
{
	char key[FCACHE_KEY_MAX + 1];
	int rc = clip_key(stream, name, key);
	if (rc)
		return rc;
	if (fd) {
		rc = fcache_get(c->o.cache, key, fd, size, pin);
		if (rc != -ENOENT)
			return rc;
	} else if (fcache_contains(c->o.cache, key, size)) {
		return 0;
	}

	struct kvs_fragment_list fl = { 0 };
	struct awserr ae;
	awserr_clear(&ae);
	rc = kvs_list_fragments(c->o.kvs, stream, c->o.ts, start_ms, end_ms, &fl, &ae);
	if (rc) {
		char why[AWSERR_MSG_MAX + 256];
		LOG_ERROR(c->o.log, "clips", "%s/%s: ListFragments failed: %s", stream, name,
			  awserr_format(&ae, why, sizeof(why)));
		return rc;
	}
	size_t n = 0;
	for (size_t i = 0; i < fl.n; i++) {
		int64_t t = frag_start(&fl.v[i], c->o.ts);
		if (t >= start_ms && t <= end_ms)
			fl.v[n++] = fl.v[i];
	}
	fl.n = n;
	if (n == 0) {
		LOG_ERROR(c->o.log, "clips", "%s/%s: no fragment starts in the range (empty, or outside "
			  "the stream's retention)", stream, name);
		kvs_fragment_list_free(&fl);
		return -ENOENT;
	}
	struct clips_group *g = NULL;
	size_t ng = 0;
	rc = clips_plan(fl.v, fl.n, c->o.ts, c->o.max_fragments, c->o.max_bytes, &g, &ng);
	if (rc) {
		LOG_ERROR(c->o.log, "clips", "%s/%s: cannot plan GetClip calls: %s", stream, name,
			  rc == -E2BIG ? "too many fragments share one start time" : strerror(-rc));
		kvs_fragment_list_free(&fl);
		return rc == -E2BIG ? -EIO : rc;
	}
	if (ng > MP4_MAX_PARTS) {
		LOG_ERROR(c->o.log, "clips", "%s/%s: %zu GetClip parts exceed the joiner's %d", stream,
			  name, ng, MP4_MAX_PARTS);
		free(g);
		kvs_fragment_list_free(&fl);
		return -EFBIG;
	}
	LOG_DEBUG(c->o.log, "clips", "%s/%s: %zu fragments in %zu GetClip call%s", stream, name, n, ng,
		  ng == 1 ? "" : "s");

	struct part *parts = calloc(ng, sizeof(*parts));
	struct mp4_input *in = calloc(ng, sizeof(*in));
	struct mp4_join *j = NULL;
	struct fcache_writer *w = NULL;
	char *chunk = NULL;
	size_t got = 0;
	uint64_t gen;
	pthread_mutex_lock(&c->lock);
	gen = ++c->gen;
	pthread_mutex_unlock(&c->lock);
	if (!parts || !in) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < ng; i++) {
		struct part *p = &parts[i];
		snprintf(p->key, sizeof(p->key), TMP_PREFIX "%" PRIx64 "/%zu", gen, i);
		p->fd = -1;
		rc = fetch_part(c, stream, name, i, ng, &g[i], p);
		if (rc)
			goto out;
		got = i + 1;
		char reason[MP4_REASON_MAX];
		in[i] = (struct mp4_input){ .fd = p->fd, .name = p->key };
		rc = mp4_info_read(&in[i], &p->info, NULL, reason, sizeof(reason));
		if (rc) {
			LOG_ERROR(c->o.log, "clips", "%s/%s: part %zu from GetClip is not a usable MP4: %s",
				  stream, name, i + 1, reason);
			rc = rc == -ENOMEM ? rc : -EIO;
			goto out;
		}
		rc = check_part(c, stream, name, i, fl.v, &g[i], &p->info);
		if (rc)
			goto out;
		const struct mp4_track_info *vt = find_track(&p->info, "vide");
		LOG_DEBUG(c->o.log, "clips", "%s/%s: part %zu/%zu: %zu fragments, %" PRIu64 " bytes of "
			  "fragments, %" PRIu64 " bytes of MP4, %" PRIu32 " video frames, %" PRIu64 " ms",
			  stream, name, i + 1, ng, g[i].count, g[i].bytes, p->size, vt->sample_count,
			  vt->duration_ms);
	}

	char reason[MP4_REASON_MAX];
	rc = mp4_join_prepare(in, ng, NULL, &j, reason, sizeof(reason));
	if (rc) {
		LOG_ERROR(c->o.log, "clips", "%s/%s: the GetClip parts cannot be joined: %s", stream,
			  name, reason);
		if (rc != -EMEDIUMTYPE && rc != -ENOMEM && rc != -EFBIG)
			rc = -EIO;
		goto out;
	}
	struct mp4_info ji;
	mp4_join_info(j, &ji);
	for (size_t t = 0; t < ji.ntracks; t++) {
		const char *h = ji.tracks[t].handler;
		uint64_t sum = 0;
		for (size_t i = 0; i < ng; i++)
			for (size_t k = 0; k < parts[i].info.ntracks; k++)
				if (strcmp(parts[i].info.tracks[k].handler, h) == 0)
					sum += parts[i].info.tracks[k].sample_count;
		uint64_t same = 0;
		for (size_t k = 0; k < ji.ntracks; k++)
			if (strcmp(ji.tracks[k].handler, h) == 0)
				same += ji.tracks[k].sample_count;
		if (same != sum) {
			LOG_ERROR(c->o.log, "clips", "%s/%s: the joined clip has %" PRIu64 " '%s' samples, "
				  "its parts %" PRIu64, stream, name, same, h, sum);
			rc = -EIO;
			goto out;
		}
	}

	uint64_t total = mp4_join_size(j), off = 0;
	chunk = malloc(COPY_CHUNK);
	if (!chunk) {
		rc = -ENOMEM;
		goto out;
	}
	rc = fcache_begin(c->o.cache, key, &w);
	if (rc) {
		LOG_ERROR(c->o.log, "clips", "%s/%s: cannot write the clip to the cache: %s", stream,
			  name, strerror(-rc));
		goto out;
	}
	while (off < total) {
		ssize_t r = mp4_join_pread(j, chunk, COPY_CHUNK, off);
		if (r <= 0) {
			rc = r < 0 ? (int)r : -EIO;
			LOG_ERROR(c->o.log, "clips", "%s/%s: reading the joined parts failed: %s", stream,
				  name, strerror(-rc));
			goto out;
		}
		rc = fcache_write(w, chunk, (size_t)r);
		if (rc) {
			LOG_ERROR(c->o.log, "clips", "%s/%s: cannot write the clip to the cache: %s",
				  stream, name, strerror(-rc));
			goto out;
		}
		off += (uint64_t)r;
	}
	uint64_t committed = 0;
	rc = fd ? fcache_commit_get(w, fd, &committed, pin) : fcache_commit(w, &committed);
	w = NULL;
	if (rc) {
		LOG_ERROR(c->o.log, "clips", "%s/%s: cannot commit the clip to the cache: %s", stream,
			  name, strerror(-rc));
		goto out;
	}
	if (committed != total) {
		LOG_ERROR(c->o.log, "clips", "%s/%s: cached clip has %" PRIu64 " bytes, expected %" PRIu64,
			  stream, name, committed, total);
		if (fd) {
			close(*fd);
			*fd = -1;
			fcache_unpin(c->o.cache, *pin);
			*pin = NULL;
		}
		fcache_remove(c->o.cache, key);
		rc = -EIO;
		goto out;
	}
	*size = total;
	LOG_DEBUG(c->o.log, "clips", "%s/%s: made, %" PRIu64 " bytes from %zu part%s", stream, name,
		  total, ng, ng == 1 ? "" : "s");
out:
	fcache_abort(w);
	free(chunk);
	mp4_join_free(j);
	for (size_t i = 0; parts && i < got; i++) {
		if (parts[i].fd >= 0)
			close(parts[i].fd);
		fcache_unpin(c->o.cache, parts[i].pin);
		fcache_remove(c->o.cache, parts[i].key);
	}
	free(parts);
	free(in);
	free(g);
	kvs_fragment_list_free(&fl);
	return rc;
}

#define OPEN_ATTEMPTS 3

/* clips_make (fd NULL) and clips_make_open (fd, pin). */
static int make_common(struct clips *c, const char *stream, const char *name, int64_t start_ms,
		       int64_t end_ms, uint64_t *size, int *fd, struct fcache_pin **pin)
{
	char key[FCACHE_KEY_MAX + 1];
	int rc = clip_key(stream, name, key);
	if (rc)
		return rc;
	if (start_ms < 0 || end_ms < start_ms)
		return -EINVAL;
	const char *fkey = key + strlen(CLIP_PREFIX);
	for (int attempt = 0; attempt < OPEN_ATTEMPTS; attempt++) {
		if (fd) {
			rc = fcache_get(c->o.cache, key, fd, size, pin);
			if (rc != -ENOENT)
				return rc;
		} else if (fcache_contains(c->o.cache, key, size)) {
			return 0;
		}

		pthread_mutex_lock(&c->lock);
		struct flight *f;
		for (f = c->flights; f; f = f->link)
			if (strcmp(f->key, fkey) == 0)
				break;
		if (f) {
			/* another caller is making it: wait and share its result */
			f->waiters++;
			c->active++;
			while (!f->done)
				pthread_cond_wait(&c->cond, &c->lock);
			rc = f->rc;
			uint64_t sz = f->size;
			if (--f->waiters == 0) {
				free(f->key);
				free(f);
			}
			c->active--;
			pthread_cond_broadcast(&c->cond);
			pthread_mutex_unlock(&c->lock);
			if (rc)
				return rc;
			if (!fd) {
				*size = sz;
				return 0;
			}
			continue; /* open it (made again if evicted meanwhile) */
		}
		f = calloc(1, sizeof(*f));
		if (f)
			f->key = strdup(fkey);
		if (!f || !f->key) {
			pthread_mutex_unlock(&c->lock);
			free(f);
			return -ENOMEM;
		}
		f->link = c->flights;
		c->flights = f;
		c->active++;
		pthread_mutex_unlock(&c->lock);

		uint64_t sz = 0;
		rc = make_one(c, stream, name, start_ms, end_ms, &sz, fd, pin);

		pthread_mutex_lock(&c->lock);
		for (struct flight **pp = &c->flights; *pp; pp = &(*pp)->link)
			if (*pp == f) {
				*pp = f->link;
				break;
			}
		f->done = 1;
		f->rc = rc;
		f->size = sz;
		if (f->waiters == 0) {
			free(f->key);
			free(f);
		}
		c->active--;
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
		if (rc == 0)
			*size = sz;
		return rc;
	}
	LOG_ERROR(c->o.log, "clips", "%s/%s: the clip was evicted from the cache before it could be "
		  "opened, %d times (cache too small for it?)", stream, name, OPEN_ATTEMPTS);
	return -ENOSPC;
}

int clips_make(struct clips *c, const char *stream, const char *name, int64_t start_ms,
	       int64_t end_ms, uint64_t *size)
{
	return make_common(c, stream, name, start_ms, end_ms, size, NULL, NULL);
}

int clips_make_open(struct clips *c, const char *stream, const char *name, int64_t start_ms,
		    int64_t end_ms, int *fd, uint64_t *size, struct fcache_pin **pin)
{
	*fd = -1;
	*pin = NULL;
	return make_common(c, stream, name, start_ms, end_ms, size, fd, pin);
}
