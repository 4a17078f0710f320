/*
 * fetch: batched, deduplicated fragment downloads into the disk cache (see fetch.h).
 *
 * State: one mutex guards the in-flight table (a hash of entries keyed by cache key, each with a
 * state and an errno) and the per-stream counters of running batches; one condition variable is
 * broadcast whenever an entry or a slot changes. Entries exist only while a fragment is on the
 * way or just failed (a failed entry is removed by the first waiter that reads it, so a later
 * open retries the download).
 *
 * A batch's worker: waits for a stream slot, calls GetMediaForFragmentList, and splits the body:
 * each chunk is appended to `pending` (the bytes of the fragment being received) and pushed into
 * the MKV reader; when the reader reports a fragment's end, its bytes are the first
 * frag->length bytes of pending, which are checked and committed, then dropped from pending.
 */
#include "kvsfs/fetch.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvsfs/awserr.h"
#include "kvsfs/buf.h"
#include "kvsfs/fcache.h"
#include "kvsfs/kvs.h"
#include "kvsfs/log.h"
#include "kvsfs/mkv.h"

enum { ST_PENDING, ST_DONE, ST_FAILED };

struct flight {
	char *key;
	int state;
	int err;
	struct flight *link;
};

struct stream_slots {
	char *stream;
	int running;
	struct stream_slots *link;
};

#define FLIGHT_BUCKETS 1024 /* in flight at once: a few read-ahead windows (<= 256 each) */

struct fetcher {
	struct fetch_opts o;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct flight *flights[FLIGHT_BUCKETS];
	struct stream_slots *slots;
	int workers;
};

struct batch {
	struct fetcher *f;
	char *stream;
	size_t n;
	char **numbers;
	int *committed;
	/* split state */
	struct buf pending;
	uint64_t pending_start;   /* stream offset of pending's first byte */
	struct mkv_reader *reader;
	int failed_err;
};

char *fetch_key(const char *stream, const char *number, char *out, size_t n)
{
	snprintf(out, n, "frag/%s/%s", stream, number);
	return out;
}

static size_t flight_bucket(const char *key)
{
	uint64_t h = 1469598103934665603ULL;
	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return (size_t)(h % FLIGHT_BUCKETS);
}

static struct flight *flight_find(struct fetcher *f, const char *key)
{
	for (struct flight *e = f->flights[flight_bucket(key)]; e; e = e->link)
		if (strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

static void flight_insert(struct fetcher *f, struct flight *e)
{
	size_t b = flight_bucket(e->key);
	e->link = f->flights[b];
	f->flights[b] = e;
}

static void flight_remove(struct fetcher *f, struct flight *x)
{
	for (struct flight **pp = &f->flights[flight_bucket(x->key)]; *pp; pp = &(*pp)->link) {
		if (*pp == x) {
			*pp = x->link;
			free(x->key);
			free(x);
			return;
		}
	}
}

/* Marks the flight of (stream, number) done or failed and wakes waiters. */
static void flight_finish(struct fetcher *f, const char *stream, const char *number, int err)
{
	char key[FCACHE_KEY_MAX];
	fetch_key(stream, number, key, sizeof(key));
	pthread_mutex_lock(&f->lock);
	struct flight *e = flight_find(f, key);
	if (e && e->state == ST_PENDING) {
		if (err) {
			e->state = ST_FAILED;
			e->err = err;
		} else {
			flight_remove(f, e);
		}
	}
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

int fetch_new(const struct fetch_opts *opts, struct fetcher **out)
{
	struct fetcher *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->o = *opts;
	if (f->o.batch_max <= 0)
		f->o.batch_max = 8;
	if (f->o.batch_max > 1000)
		f->o.batch_max = 1000;
	if (f->o.batch_bytes == 0)
		f->o.batch_bytes = 64ull << 20;
	if (f->o.max_parallel <= 0)
		f->o.max_parallel = 3;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	*out = f;
	return 0;
}

void fetch_free(struct fetcher *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	while (f->workers > 0)
		pthread_cond_wait(&f->cond, &f->lock);
	pthread_mutex_unlock(&f->lock);
	for (size_t b = 0; b < FLIGHT_BUCKETS; b++)
		while (f->flights[b])
			flight_remove(f, f->flights[b]);
	while (f->slots) {
		struct stream_slots *s = f->slots;
		f->slots = s->link;
		free(s->stream);
		free(s);
	}
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

static struct stream_slots *slots_of(struct fetcher *f, const char *stream)
{
	for (struct stream_slots *s = f->slots; s; s = s->link)
		if (strcmp(s->stream, stream) == 0)
			return s;
	struct stream_slots *s = calloc(1, sizeof(*s));
	if (!s || !(s->stream = strdup(stream))) {
		free(s);
		return NULL;
	}
	s->link = f->slots;
	f->slots = s;
	return s;
}

static void batch_free(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->numbers[i]);
	free(b->numbers);
	free(b->committed);
	free(b->stream);
	buf_free(&b->pending);
	mkv_reader_free(b->reader);
	free(b);
}

static int index_of(const struct batch *b, const char *number)
{
	for (size_t i = 0; i < b->n; i++)
		if (strcmp(b->numbers[i], number) == 0)
			return (int)i;
	return -1;
}

/* errno for a KVS error fragment. The id is ERROR_ID (GetMedia's spelling) or, without one, the
 * integer of EXCEPTION_ERROR_CODE (GetMediaForFragmentList's): 4000 not found, 45xx KMS. */
static int error_fragment_errno(const struct mkv_fragment *fr)
{
	const char *id = fr->error_id[0] ? fr->error_id : fr->error_code;
	if (strstr(fr->error_code, "NotFound") || strcmp(id, "4000") == 0)
		return ENOENT;
	if (strstr(fr->error_code, "KMS") || strncmp(id, "45", 2) == 0)
		return EACCES;
	return EIO;
}

static int on_fragment_end(void *opaque, const struct mkv_fragment *fr)
{
	struct batch *b = opaque;
	struct fetcher *f = b->f;
	if (fr->offset < b->pending_start || fr->offset - b->pending_start + fr->length > b->pending.len) {
		LOG_ERROR(f->o.log, "fetch", "internal: fragment bytes of %s not buffered", b->stream);
		return -EIO;
	}
	const char *data = b->pending.data + (fr->offset - b->pending_start);
	int idx = fr->fragment_number[0] ? index_of(b, fr->fragment_number) : -1;
	int rc = 0;

	if (fr->flags & MKV_FRAG_NO_EBML) {
		LOG_WARN(f->o.log, "fetch", "%s: %llu bytes before the first fragment ignored",
			 b->stream, (unsigned long long)fr->length);
	} else if (idx < 0) {
		LOG_ERROR(f->o.log, "fetch", "%s: GetMediaForFragmentList returned a fragment that was "
			  "not asked for (number '%.60s')", b->stream, fr->fragment_number);
		b->failed_err = EIO;
	} else if (b->committed[idx]) {
		/* a retried request repeats fragments already stored */
	} else if (fr->flags & MKV_FRAG_ERROR) {
		int e = error_fragment_errno(fr);
		LOG_ERROR(f->o.log, "fetch", "%s fragment %s: KVS error fragment %s %s: %.200s", b->stream,
			  b->numbers[idx], fr->error_code, fr->error_id, fr->error_message);
		b->committed[idx] = -e;
		flight_finish(f, b->stream, b->numbers[idx], e);
	} else if (!(fr->flags & MKV_FRAG_COMPLETE) || (fr->flags & (MKV_FRAG_TRUNCATED | MKV_FRAG_MALFORMED))) {
		LOG_ERROR(f->o.log, "fetch", "%s fragment %s: incomplete or malformed media (%s)",
			  b->stream, b->numbers[idx], fr->problem[0] ? fr->problem : "truncated");
		b->committed[idx] = -EIO;
		flight_finish(f, b->stream, b->numbers[idx], EIO);
	} else {
		char key[FCACHE_KEY_MAX];
		struct fcache_writer *w = NULL;
		uint64_t size = 0;
		fetch_key(b->stream, b->numbers[idx], key, sizeof(key));
		rc = fcache_begin(f->o.cache, key, &w);
		if (rc == 0)
			rc = fcache_write(w, data, (size_t)fr->length);
		if (rc == 0) {
			rc = fcache_commit(w, &size);
			w = NULL;
		}
		fcache_abort(w);
		if (rc) {
			LOG_ERROR(f->o.log, "fetch", "%s fragment %s: cannot store in the cache (%s)",
				  b->stream, b->numbers[idx], strerror(-rc));
			b->committed[idx] = rc;
			flight_finish(f, b->stream, b->numbers[idx], -rc);
			rc = 0;
		} else {
			b->committed[idx] = 1;
			if (f->o.learned)
				f->o.learned(f->o.learned_arg, b->stream, b->numbers[idx], size);
			flight_finish(f, b->stream, b->numbers[idx], 0);
		}
	}
	/* drop the fragment's bytes */
	uint64_t consumed = fr->offset - b->pending_start + fr->length;
	memmove(b->pending.data, b->pending.data + consumed, b->pending.len - (size_t)consumed);
	b->pending.len -= (size_t)consumed;
	b->pending_start += consumed;
	return rc;
}

static int batch_reader_reset(struct batch *b)
{
	mkv_reader_free(b->reader);
	buf_reset(&b->pending);
	b->pending_start = 0;
	b->failed_err = 0;
	struct mkv_callbacks cb = { .opaque = b, .fragment_end = on_fragment_end };
	b->reader = mkv_reader_new(&cb, b->f->o.log);
	return b->reader ? 0 : -ENOMEM;
}

static int on_body(void *arg, const void *data, size_t len)
{
	struct batch *b = arg;
	int rc = buf_append(&b->pending, data, len);
	if (rc)
		return rc;
	return mkv_reader_push(b->reader, data, len);
}

static int on_reset(void *arg)
{
	struct batch *b = arg;
	LOG_DEBUG(b->f->o.log, "fetch", "%s: GetMediaForFragmentList retried, restarting the split",
		  b->stream);
	return batch_reader_reset(b);
}

static void *batch_worker(void *arg)
{
	struct batch *b = arg;
	struct fetcher *f = b->f;
	struct awserr err;
	int rc;

	pthread_mutex_lock(&f->lock);
	struct stream_slots *s = slots_of(f, b->stream);
	while (s && s->running >= f->o.max_parallel)
		pthread_cond_wait(&f->cond, &f->lock);
	if (s)
		s->running++;
	pthread_mutex_unlock(&f->lock);

	awserr_clear(&err);
	rc = batch_reader_reset(b);
	if (rc == 0) {
		const char **nums = calloc(b->n, sizeof(*nums));
		if (!nums) {
			rc = -ENOMEM;
		} else {
			for (size_t i = 0; i < b->n; i++)
				nums[i] = b->numbers[i];
			LOG_DEBUG(f->o.log, "fetch", "%s: GetMediaForFragmentList of %zu fragment(s) from %s",
				  b->stream, b->n, b->numbers[0]);
			rc = kvs_get_media_for_fragment_list(f->o.kvs, b->stream, nums, b->n, on_body,
							     on_reset, b, &err);
			free(nums);
			if (rc == 0)
				rc = mkv_reader_finish(b->reader);
		}
	}
	if (rc) {
		char msg[600];
		LOG_ERROR(f->o.log, "fetch", "%s: GetMediaForFragmentList failed: %s", b->stream,
			  err.err ? awserr_format(&err, msg, sizeof(msg)) : strerror(-rc));
	}
	int e = rc ? -rc : (b->failed_err ? b->failed_err : EIO);
	for (size_t i = 0; i < b->n; i++) {
		if (b->committed[i] == 0) {
			if (rc == 0)
				LOG_ERROR(f->o.log, "fetch", "%s fragment %s missing from the "
					  "GetMediaForFragmentList reply", b->stream, b->numbers[i]);
			flight_finish(f, b->stream, b->numbers[i], e);
		}
	}

	pthread_mutex_lock(&f->lock);
	if (s)
		s->running--;
	f->workers--;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	batch_free(b);
	return NULL;
}

/*
 * Under f->lock: builds a batch from want (may be NULL) and items, registering in-flight entries
 * for those neither cached nor in flight, and starts its worker. Returns 0 (possibly without a
 * batch when nothing is needed) or a negative errno.
 */
static int start_batch_locked(struct fetcher *f, const char *stream, const struct fetch_item *want,
			      const struct fetch_item *items, size_t n_items)
{
	struct batch *b = calloc(1, sizeof(*b));
	size_t cap = (want ? 1 : 0) + n_items;
	if (cap > (size_t)f->o.batch_max)
		cap = (size_t)f->o.batch_max;
	if (!b || cap == 0) {
		free(b);
		return b ? 0 : -ENOMEM;
	}
	b->f = f;
	b->stream = strdup(stream);
	b->numbers = calloc(cap, sizeof(*b->numbers));
	b->committed = calloc(cap, sizeof(*b->committed));
	if (!b->stream || !b->numbers || !b->committed) {
		batch_free(b);
		return -ENOMEM;
	}
	uint64_t bytes = 0;
	for (size_t i = 0; i < (want ? 1 : 0) + n_items && b->n < cap; i++) {
		const struct fetch_item *it = (want && i == 0) ? want : &items[i - (want ? 1 : 0)];
		char key[FCACHE_KEY_MAX];
		fetch_key(stream, it->number, key, sizeof(key));
		if (index_of(b, it->number) >= 0 || flight_find(f, key) ||
		    fcache_contains(f->o.cache, key, NULL))
			continue;
		uint64_t sz = it->kvs_size > 0 ? (uint64_t)it->kvs_size : 0;
		if (b->n > 0 && bytes + sz > f->o.batch_bytes)
			break;
		struct flight *e = calloc(1, sizeof(*e));
		char *num = strdup(it->number);
		if (!e || !num || !(e->key = strdup(key))) {
			free(e);
			free(num);
			break;
		}
		e->state = ST_PENDING;
		flight_insert(f, e);
		b->numbers[b->n++] = num;
		bytes += sz;
	}
	if (b->n == 0) {
		batch_free(b);
		return 0;
	}
	pthread_attr_t attr;
	pthread_t tid;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	f->workers++;
	int rc = pthread_create(&tid, &attr, batch_worker, b);
	pthread_attr_destroy(&attr);
	if (rc) {
		f->workers--;
		for (size_t i = 0; i < b->n; i++) {
			char key[FCACHE_KEY_MAX];
			struct flight *e = flight_find(f, fetch_key(stream, b->numbers[i], key, sizeof(key)));
			if (e) {
				e->state = ST_FAILED;
				e->err = EAGAIN;
			}
		}
		pthread_cond_broadcast(&f->cond);
		batch_free(b);
		return -EAGAIN;
	}
	return 0;
}

int fetch_fragment(struct fetcher *f, const char *stream, const struct fetch_item *want,
		   const struct fetch_item *next, size_t n_next, int *fd, uint64_t *size,
		   struct fcache_pin **pin)
{
	char key[FCACHE_KEY_MAX];
	fetch_key(stream, want->number, key, sizeof(key));
	for (int round = 0; round < 3; round++) {
		if (fcache_get(f->o.cache, key, fd, size, pin) == 0)
			return 0;
		pthread_mutex_lock(&f->lock);
		struct flight *e = flight_find(f, key);
		if (!e) {
			int rc = start_batch_locked(f, stream, want, next, n_next);
			if (rc) {
				pthread_mutex_unlock(&f->lock);
				return rc;
			}
			e = flight_find(f, key);
		}
		while (e && e->state == ST_PENDING) {
			pthread_cond_wait(&f->cond, &f->lock);
			e = flight_find(f, key);
		}
		if (e && e->state == ST_FAILED) {
			int err = e->err;
			flight_remove(f, e);
			pthread_mutex_unlock(&f->lock);
			return -err;
		}
		pthread_mutex_unlock(&f->lock);
		/* done (entry removed): it is in the cache unless evicted at once; loop */
	}
	LOG_ERROR(f->o.log, "fetch", "%s fragment %s: evicted from the cache as soon as stored "
		  "(cache_size too small?)", stream, want->number);
	return -ENOSPC;
}

void fetch_prefetch(struct fetcher *f, const char *stream, const struct fetch_item *items,
		    size_t n, size_t min_new)
{
	pthread_mutex_lock(&f->lock);
	size_t fresh = 0;
	for (size_t i = 0; i < n && fresh < min_new; i++) {
		char key[FCACHE_KEY_MAX];
		fetch_key(stream, items[i].number, key, sizeof(key));
		if (!flight_find(f, key) && !fcache_contains(f->o.cache, key, NULL))
			fresh++;
	}
	/* the tail of a folder (fewer than min_new left) is fetched when opened */
	if (fresh >= min_new || fresh == n)
		start_batch_locked(f, stream, NULL, items, n);
	pthread_mutex_unlock(&f->lock);
}
