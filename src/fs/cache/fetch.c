/*
 * fetch: batched, deduplicated fragment downloads into the disk cache (see fetch.h).
 *
 * In flight: a util/sflight keyed by cache key holds one call per fragment on the way. The batch
 * worker that downloads a fragment leads its call and finishes it (errno only; the bytes are in
 * the cache) once the fragment is committed or has failed; readers of that fragment wait on the
 * call and share the outcome. A call disappears when finished, so a later open after a failure
 * downloads again. A reader that finds no call leads one for its fragment, hands it to a new batch
 * (with as many read-ahead fragments as it can lead) and waits for it like the others.
 *
 * Slots: one mutex guards the per-stream counts of running batches (util/hashmap by stream name)
 * and the count of workers; its condition variable is broadcast when a batch ends. No lock is
 * held across a download or a cache write.
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
#include "kvsfs/hashmap.h"
#include "kvsfs/kvs.h"
#include "kvsfs/log.h"
#include "kvsfs/metrics.h"
#include "kvsfs/mkv.h"
#include "kvsfs/sflight.h"

struct stream_slots {
	struct hashmap_node node;
	int running;
	char stream[];
};

struct fetcher {
	struct fetch_opts o;
	struct sflight *flights;    /* fragments on the way, by cache key */
	pthread_mutex_t lock;       /* slots, workers */
	pthread_cond_t cond;        /* a batch ended */
	struct hashmap slots;       /* struct stream_slots by stream name */
	int workers;
};

struct batch {
	struct fetcher *f;
	char *stream;
	size_t n;
	char **numbers;
	size_t hint;                /* index_of: the next index expected */
	struct sflight_call **calls; /* the flight of each fragment, until finished */
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

/* Finishes the flight of fragment idx with err (0 or a positive errno) and wakes its readers. */
static void batch_finish(struct batch *b, size_t idx, int err)
{
	if (!b->calls[idx])
		return;
	sflight_finish(b->f->flights, b->calls[idx], &(struct sflight_result){ .err = -err }, 0);
	b->calls[idx] = NULL;
}

int fetch_new(const struct fetch_opts *opts, struct fetcher **out)
{
	*out = NULL;
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
	if (sflight_new(NULL, &f->flights) != 0 || hashmap_init(&f->slots, 0) != 0) {
		sflight_free(f->flights);
		free(f);
		return -ENOMEM;
	}
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
	sflight_free(f->flights);
	struct hashmap_iter it;
	hashmap_iter_init(&it, &f->slots);
	for (struct hashmap_node *n; (n = hashmap_next(&it));)
		free(hashmap_entry(n, struct stream_slots, node));
	hashmap_destroy(&f->slots);
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

static int slots_eq(const struct hashmap_node *n, const void *stream)
{
	return strcmp(hashmap_entry(n, struct stream_slots, node)->stream, stream) == 0;
}

/* Under f->lock: the slot counter of stream (made on first use), or NULL when out of memory. */
static struct stream_slots *slots_of(struct fetcher *f, const char *stream)
{
	uint64_t h = hashmap_hash_str(stream);
	struct hashmap_node *n = hashmap_find(&f->slots, h, slots_eq, stream);
	if (n)
		return hashmap_entry(n, struct stream_slots, node);
	size_t len = strlen(stream);
	struct stream_slots *s = calloc(1, sizeof(*s) + len + 1);
	if (!s)
		return NULL;
	memcpy(s->stream, stream, len + 1);
	hashmap_insert(&f->slots, &s->node, h);
	return s;
}

/* Frees b; its flights must have been finished. */
static void batch_free(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->numbers[i]);
	free(b->numbers);
	free(b->calls);
	free(b->committed);
	free(b->stream);
	buf_free(&b->pending);
	mkv_reader_free(b->reader);
	free(b);
}

/* Index of number in b: the service answers in request order, so the one after the last found
 * is tried first (a batch of 1,000 stays linear). */
static int index_of(struct batch *b, const char *number)
{
	if (b->hint < b->n && strcmp(b->numbers[b->hint], number) == 0)
		return (int)b->hint++;
	for (size_t i = 0; i < b->n; i++) {
		if (strcmp(b->numbers[i], number) == 0) {
			b->hint = i + 1;
			return (int)i;
		}
	}
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
		batch_finish(b, (size_t)idx, e);
	} else if (!(fr->flags & MKV_FRAG_COMPLETE) || (fr->flags & (MKV_FRAG_TRUNCATED | MKV_FRAG_MALFORMED))) {
		LOG_ERROR(f->o.log, "fetch", "%s fragment %s: incomplete or malformed media (%s)",
			  b->stream, b->numbers[idx], fr->problem[0] ? fr->problem : "truncated");
		b->committed[idx] = -EIO;
		batch_finish(b, (size_t)idx, EIO);
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
			batch_finish(b, (size_t)idx, -rc);
			rc = 0;
		} else {
			b->committed[idx] = 1;
			/* wake the readers first: recording the size may wait on a disk sync, and the
			 * fragment's opener compares the true size itself (fragment.c) */
			batch_finish(b, (size_t)idx, 0);
			if (f->o.learned)
				f->o.learned(f->o.learned_arg, b->stream, b->numbers[idx], size);
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
	b->hint = 0;
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
	int slot = metrics_work_begin(f->o.metrics, "readahead", b->stream, b->n, 0);
	METRICS_ADD(f->o.metrics, readahead_batches, 1);

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
			batch_finish(b, i, e);
		}
	}

	metrics_work_end(f->o.metrics, slot);
	METRICS_ADD(f->o.metrics, readahead_batches, -1);
	pthread_mutex_lock(&f->lock);
	if (s)
		s->running--;
	f->workers--;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	batch_free(b);
	return NULL;
}


/* Allocates an empty batch of room fragments for stream. NULL when out of memory. */
static struct batch *batch_new(struct fetcher *f, const char *stream, size_t room)
{
	struct batch *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->f = f;
	b->stream = strdup(stream);
	b->numbers = calloc(room, sizeof(*b->numbers));
	b->calls = calloc(room, sizeof(*b->calls));
	b->committed = calloc(room, sizeof(*b->committed));
	if (!b->stream || !b->numbers || !b->calls || !b->committed) {
		batch_free(b);
		return NULL;
	}
	return b;
}

/* Adds fragment number to b under call (led by the caller). Returns 0, or -ENOMEM after
 * finishing call with that error. */
static int batch_add(struct batch *b, const char *number, struct sflight_call *call)
{
	char *num = strdup(number);
	if (!num) {
		sflight_finish(b->f->flights, call, &(struct sflight_result){ .err = -ENOMEM }, 0);
		return -ENOMEM;
	}
	b->numbers[b->n] = num;
	b->calls[b->n++] = call;
	return 0;
}

/* Leads the flight of key (checked to be neither in flight nor cached). Returns the call, or
 * NULL when another batch took it meanwhile, it was just committed, or memory ran out (its
 * reader then fetches it). */
static struct sflight_call *lead_fresh(struct fetcher *f, const char *key)
{
	struct sflight_call *call;
	if (sflight_lead(f->flights, key, &call) != 0)
		return NULL;
	if (fcache_contains(f->o.cache, key, NULL)) {
		/* committed by a batch that finished between the check and the lead */
		sflight_finish(f->flights, call, &(struct sflight_result){ 0 }, 0);
		return NULL;
	}
	return call;
}

/* 1 when fragment key needs no download: in flight or cached. */
static int needless(struct fetcher *f, const char *key)
{
	return sflight_busy(f->flights, key) || fcache_contains(f->o.cache, key, NULL);
}

/* Starts b's worker thread, or finishes all its flights with EAGAIN and frees it. */
static int batch_start(struct batch *b)
{
	struct fetcher *f = b->f;
	pthread_attr_t attr;
	pthread_t tid;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_mutex_lock(&f->lock);
	f->workers++;
	pthread_mutex_unlock(&f->lock);
	int rc = pthread_create(&tid, &attr, batch_worker, b);
	pthread_attr_destroy(&attr);
	if (rc == 0)
		return 0;
	pthread_mutex_lock(&f->lock);
	f->workers--;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	for (size_t i = 0; i < b->n; i++)
		batch_finish(b, i, EAGAIN);
	batch_free(b);
	return -EAGAIN;
}

/*
 * Builds a batch from want (may be NULL; then want_call is NULL, else the caller leads want's
 * flight and the batch takes it over: it is finished on every path) and those of items that
 * are neither cached nor in flight, within batch_max fragments and batch_bytes, and starts its
 * worker. Returns 0 (possibly without a batch when nothing is needed) or a negative errno.
 */
static int start_batch(struct fetcher *f, const char *stream, const struct fetch_item *want,
		       struct sflight_call *want_call, const struct fetch_item *items,
		       size_t n_items)
{
	size_t total = (want ? 1 : 0) + n_items, cap = total;
	if (cap > (size_t)f->o.batch_max)
		cap = (size_t)f->o.batch_max;
	struct batch *b = cap ? batch_new(f, stream, cap) : NULL;
	if (!b) {
		if (want_call)
			sflight_finish(f->flights, want_call,
				       &(struct sflight_result){ .err = cap ? -ENOMEM : 0 }, 0);
		return cap ? -ENOMEM : 0;
	}
	uint64_t bytes = 0;
	char key[FCACHE_KEY_MAX];
	for (size_t i = 0; i < total && b->n < cap; i++) {
		const struct fetch_item *it = (want && i == 0) ? want : &items[i - (want ? 1 : 0)];
		uint64_t sz = it->kvs_size > 0 ? (uint64_t)it->kvs_size : 0;
		struct sflight_call *call;
		fetch_key(stream, it->number, key, sizeof(key));
		if (want && i == 0) {
			call = want_call;
			if (fcache_contains(f->o.cache, key, NULL)) {
				sflight_finish(f->flights, call, &(struct sflight_result){ 0 }, 0);
				continue;
			}
		} else {
			/* a repeated number is skipped too: its flight is this batch's */
			if (needless(f, key))
				continue;
			if (b->n > 0 && bytes + sz > f->o.batch_bytes)
				break;
			if (!(call = lead_fresh(f, key)))
				continue;
		}
		if (batch_add(b, it->number, call) != 0)
			break;
		bytes += sz;
	}
	if (b->n == 0) {
		batch_free(b);
		return 0;
	}
	return batch_start(b);
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
		struct sflight_call *call;
		struct sflight_result res;
		int rc = sflight_join(f->flights, key, &call, &res);
		if (rc < 0)
			return rc;
		if (rc == 1) {
			/* no one is fetching it: a new batch does, and this reader waits like others */
			sflight_hold(f->flights, call);
			rc = start_batch(f, stream, want, call, next, n_next);
			sflight_wait(f->flights, call, &res);
			if (rc)
				return rc;
		}
		if (res.err)
			return res.err;
		/* done: it is in the cache unless evicted at once; loop */
	}
	LOG_ERROR(f->o.log, "fetch", "%s fragment %s: evicted from the cache as soon as stored "
		  "(cache_size too small?)", stream, want->number);
	return -ENOSPC;
}

int fetch_has(struct fetcher *f, const char *stream, const char *number)
{
	char key[FCACHE_KEY_MAX];
	fetch_key(stream, number, key, sizeof(key));
	return needless(f, key);
}

void fetch_prefetch(struct fetcher *f, const char *stream, const struct fetch_item *items,
		    size_t n, size_t min_new)
{
	size_t fresh = 0;
	for (size_t i = 0; i < n && fresh < min_new; i++) {
		char key[FCACHE_KEY_MAX];
		fetch_key(stream, items[i].number, key, sizeof(key));
		if (!needless(f, key))
			fresh++;
	}
	/* the tail of a folder (fewer than min_new left) is fetched when opened */
	if (fresh >= min_new || fresh == n)
		start_batch(f, stream, NULL, NULL, items, n);
}
