/*
 * hours: the hour-listing cache (see hours.h for the contract).
 *
 * Design: one mutex guards the cache, a list of per-stream heads each holding that stream's
 * listings (newest first; a stream has few cached hours, and lookups scan only its own). A miss
 * starts (or joins) the single-flight generation of key "HOUR/STREAM"; its leader looks in the
 * cache again (a generation that just ended may have filled it), else calls ListFragments with
 * no lock held, builds the immutable listing, and swaps it in under the mutex. The leader takes
 * one reference per waiter before waking them.
 *
 * Invariants: the cache holds one reference on each listing it lists; the mutex is never held
 * across a call, a log line, or a vstream's lock. Ages use the monotonic clock, the hour and the
 * retention the wall clock.
 */
#include "hours.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvsfs/clk.h"
#include "streams.h"
#include "kvsfs/awserr.h"
#include "kvsfs/log.h"
#include "kvsfs/sflight.h"

struct stream_hours {
	const struct vstream *s;
	struct hour_listing *list;
	struct stream_hours *next;
};

struct hours {
	struct hours_opts o;
	struct sflight *flight;         /* one ListFragments per (stream, hour) at a time */
	pthread_mutex_t lock;           /* guards streams and every list */
	struct stream_hours *streams;
	uint64_t bytes;                 /* of the cached listings */
	uint64_t tick;                  /* LRU clock */
	uint64_t evictions;
};

static void listing_ref(void *val);
static void listing_unref(void *val);

int hours_new(const struct hours_opts *o, struct hours **out)
{
	struct hours *h = calloc(1, sizeof(*h));
	static const struct sflight_opts shared = { .ref = listing_ref, .unref = listing_unref };
	if (!h || sflight_new(&shared, &h->flight)) {
		free(h);
		return -ENOMEM;
	}
	h->o = *o;
	if (!h->o.max_bytes)
		h->o.max_bytes = 32ull << 20;
	pthread_mutex_init(&h->lock, NULL);
	*out = h;
	return 0;
}

void hours_free(struct hours *h)
{
	if (!h)
		return;
	if (h->evictions)
		LOG_INFO(h->o.log, "vfs", "hour listings dropped to stay within meta_cache: %llu",
			 (unsigned long long)h->evictions);
	while (h->streams) {
		struct stream_hours *sh = h->streams;
		h->streams = sh->next;
		while (sh->list) {
			struct hour_listing *l = sh->list;
			sh->list = l->link;
			hours_unref(l);
		}
		free(sh);
	}
	sflight_free(h->flight);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

void hours_unref(struct hour_listing *l)
{
	if (l && __atomic_sub_fetch(&l->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		free(l->v);
		free(l);
	}
}

static void listing_unref(void *val)
{
	hours_unref(val);
}

static void listing_ref(void *val)
{
	struct hour_listing *l = val;
	__atomic_add_fetch(&l->refs, 1, __ATOMIC_ACQ_REL);
}

/* Under h->lock: the head of s's listings; made when create is set (NULL: none, or no memory). */
static struct stream_hours *head_of(struct hours *h, const struct vstream *s, int create)
{
	struct stream_hours *sh;
	for (sh = h->streams; sh; sh = sh->next)
		if (sh->s == s)
			return sh;
	if (!create || !(sh = calloc(1, sizeof(*sh))))
		return NULL;
	sh->s = s;
	sh->next = h->streams;
	h->streams = sh;
	return sh;
}

void hours_drop(struct hours *h, const struct vstream *s)
{
	pthread_mutex_lock(&h->lock);
	struct stream_hours *sh = head_of(h, s, 0);
	struct hour_listing *l = sh ? sh->list : NULL;
	if (sh)
		sh->list = NULL;
	pthread_mutex_unlock(&h->lock);
	while (l) {
		struct hour_listing *n = l->link;
		hours_unref(l);
		l = n;
	}
}

/* A cached listing of s's hour_ms younger than ttl_ms (with a new reference), or NULL. */
static struct hour_listing *cached(struct hours *h, const struct vstream *s, int64_t hour_ms,
				   int64_t ttl_ms)
{
	struct hour_listing *found = NULL;
	int64_t now = clk_mono_ms();
	pthread_mutex_lock(&h->lock);
	struct stream_hours *sh = head_of(h, s, 0);
	for (struct hour_listing *l = sh ? sh->list : NULL; l; l = l->link) {
		if (l->hour_ms == hour_ms && now - l->fetched_ms < ttl_ms) {
			l->used = ++h->tick;
			listing_ref(l);
			found = l;
			break;
		}
	}
	pthread_mutex_unlock(&h->lock);
	return found;
}

/* Memory a listing takes. */
static uint64_t listing_bytes(const struct hour_listing *l)
{
	return sizeof(*l) + l->n * sizeof(*l->v);
}

/* Under h->lock: unlinks the least recently used listing other than keep onto *drop. Returns 0
 * when there is none. */
static int evict_lru(struct hours *h, const struct hour_listing *keep, struct hour_listing **drop)
{
	struct hour_listing **victim = NULL;
	for (struct stream_hours *sh = h->streams; sh; sh = sh->next)
		for (struct hour_listing **pp = &sh->list; *pp; pp = &(*pp)->link)
			if (*pp != keep && (!victim || (*pp)->used < (*victim)->used))
				victim = pp;
	if (!victim)
		return 0;
	struct hour_listing *o = *victim;
	*victim = o->link;
	h->bytes -= listing_bytes(o);
	h->evictions++;
	o->link = *drop;
	*drop = o;
	return 1;
}

/* Puts l (one reference for the cache) in place of the older listing of its hour, drops the
 * stream's listings older than twice past_ttl, then the least recently used ones past
 * max_bytes. */
static void cache_put(struct hours *h, const struct vstream *s, struct hour_listing *l)
{
	struct hour_listing *drop = NULL;
	pthread_mutex_lock(&h->lock);
	struct stream_hours *sh = head_of(h, s, 1);
	if (sh) {
		for (struct hour_listing **pp = &sh->list; *pp;) {
			struct hour_listing *o = *pp;
			if (o->hour_ms == l->hour_ms ||
			    l->fetched_ms - o->fetched_ms > (int64_t)h->o.past_ttl_s * 1000 * 2) {
				*pp = o->link;
				h->bytes -= listing_bytes(o);
				o->link = drop;
				drop = o;
			} else {
				pp = &o->link;
			}
		}
		listing_ref(l);
		l->s = s;
		l->used = ++h->tick;
		l->link = sh->list;
		sh->list = l;
		h->bytes += listing_bytes(l);
		while (h->bytes > h->o.max_bytes && evict_lru(h, l, &drop))
			;
	}
	pthread_mutex_unlock(&h->lock);
	while (drop) {
		struct hour_listing *o = drop;
		drop = o->link;
		if (h->o.dropped && !(o->s == s && o->hour_ms == l->hour_ms))
			h->o.dropped(h->o.dropped_arg, o->s, o->hour_ms);
		hours_unref(o);
	}
}

/* Names and filters what ListFragments returned for the hour (fl sorted by the client). */
static struct hour_listing *build(struct hours *h, int64_t hour_ms, int64_t asked_ms,
				  const struct kvs_fragment_list *fl)
{
	struct hour_listing *l = calloc(1, sizeof(*l));
	if (!l || (fl->n && !(l->v = calloc(fl->n, sizeof(*l->v))))) {
		free(l);
		return NULL;
	}
	l->refs = 1;
	l->hour_ms = hour_ms;
	l->fetched_ms = asked_ms;
	for (size_t i = 0; i < fl->n; i++) {
		const struct kvs_fragment *f = &fl->v[i];
		int64_t ts = h->o.ts == KVS_TS_SERVER ? f->server_ms : f->producer_ms;
		if (ts < hour_ms || ts >= hour_ms + NAMES_MS_PER_HOUR)
			continue; /* outside the asked range: a lenient server */
		if (l->n > 0 && strcmp(l->v[l->n - 1].frag.number, f->number) == 0)
			continue; /* the same fragment twice (pages overlapped) */
		int dup = l->n > 0 && l->v[l->n - 1].ts == ts;
		struct hour_entry *e = &l->v[l->n];
		if (names_format_fragment(ts, f->number, dup, e->name))
			continue;
		e->ts = ts;
		e->frag = *f;
		l->n++;
	}
	return l;
}

/* Lists the hour with ListFragments (no lock held) and caches the result. */
static int fetch(struct hours *h, struct vstream *s, int64_t hour_ms, struct hour_listing **out)
{
	struct kvs_fragment_list fl = { 0 };
	struct awserr err;
	int64_t asked_ms = clk_mono_ms(); /* the listing's age counts from the question */
	awserr_clear(&err);
	int rc = kvs_list_fragments(h->o.kvs, s->name, h->o.ts, hour_ms,
				    hour_ms + NAMES_MS_PER_HOUR - 1, &fl, &err);
	if (rc) {
		char msg[600];
		awserr_format(&err, msg, sizeof(msg));
		if (rc == -ENOENT && !streams_gone(h->o.streams, s)) {
			/* a "not found" for a stream that exists (a bare 404, a stale endpoint): the
			 * folder is not gone, its listing failed */
			LOG_ERROR(h->o.log, "vfs", "%s: listing fragments failed: %s; the stream still "
				  "exists, so the hour folder fails with EIO", s->name, msg);
			return -EIO;
		}
		LOG_ERROR(h->o.log, "vfs", "%s: listing fragments failed: %s", s->name, msg);
		return rc;
	}
	struct hour_listing *l = build(h, hour_ms, asked_ms, &fl);
	kvs_fragment_list_free(&fl);
	if (!l)
		return -ENOMEM;
	cache_put(h, s, l);
	*out = l;
	return 0;
}

struct fill_arg {
	struct hours *h;
	struct vstream *s;
	int64_t hour_ms;
	int64_t ttl_ms;
};

/* The fill generation's work. */
static int fill(void *arg, void **val)
{
	struct fill_arg *a = arg;
	struct hour_listing *l = cached(a->h, a->s, a->hour_ms, a->ttl_ms);
	int rc = l ? 0 : fetch(a->h, a->s, a->hour_ms, &l);
	*val = rc ? NULL : l;
	return rc;
}

int hours_get(struct hours *h, struct vstream *s, int64_t hour_ms, struct hour_listing **out)
{
	int open_hour = hour_ms + NAMES_MS_PER_HOUR + 60000 > clk_wall_ms();
	int64_t ttl_ms = (int64_t)(open_hour ? h->o.meta_ttl_s : h->o.past_ttl_s) * 1000;
	*out = cached(h, s, hour_ms, ttl_ms);
	if (*out)
		return 0;
	struct fill_arg a = { h, s, hour_ms, ttl_ms };
	char key[512];
	void *val = NULL;
	int rc;
	if ((size_t)snprintf(key, sizeof(key), "%lld/%s", (long long)hour_ms, s->name) < sizeof(key))
		rc = sflight_do(h->flight, key, fill, &a, &val);
	else
		rc = fill(&a, &val); /* longer than any stream name: not shared */
	*out = val;
	return rc;
}

/* The first index of l whose start is >= ts. */
static size_t first_at(const struct hour_listing *l, int64_t ts)
{
	size_t lo = 0, hi = l->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (l->v[mid].ts < ts)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

long hours_find(const struct hour_listing *l, const char *name)
{
	int64_t ts;
	const char *num;
	size_t nlen;
	if (names_parse_fragment(name, &ts, &num, &nlen))
		return -1;
	for (size_t i = first_at(l, ts); i < l->n && l->v[i].ts == ts; i++)
		if (strcmp(l->v[i].name, name) == 0)
			return (long)i;
	return -1;
}

long hours_index(const struct hour_listing *l, int64_t ts, const char *number)
{
	for (size_t i = first_at(l, ts); i < l->n && l->v[i].ts == ts; i++)
		if (strcmp(l->v[i].frag.number, number) == 0)
			return (long)i;
	return -1;
}
