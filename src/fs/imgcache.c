/*
 * imgcache: the images of an hour (see include/kvsfs/imgcache.h for the contract).
 *
 * Design: one mutex guards the list of cached listings (all streams, most recently used
 * first) and the entry count. A miss runs the single-flight generation of key "HOUR/STREAM";
 * its leader looks in the cache again (a generation that just ended may have filled it), else
 * fills with no lock held: for each request of the hour (whole slots, at most 300 s) it either
 * reuses the entries of the previous listing (a settled request of an open hour) or calls
 * GetImages, whose callback writes each JPEG into the disk cache and records its slot and size.
 * The new listing is sorted and swapped in under the mutex.
 *
 * Invariants: the mutex is never held across a call, a disk write or a log line; a listing's
 * entries each have their JPEG committed to the disk cache with exactly that size at the time
 * of the fill (eviction later is the open's business: it fetches that one image again).
 */
#include "kvsfs/imgcache.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvsfs/array.h"
#include "kvsfs/awserr.h"
#include "kvsfs/clk.h"
#include "kvsfs/fcache.h"
#include "kvsfs/kvs_images.h"
#include "kvsfs/log.h"
#include "kvsfs/names.h"
#include "kvsfs/sflight.h"

#define SETTLE_MS 60000           /* a request is final once it ended this long before it was asked */
#define PAGE_BYTES (8u << 20)     /* aim of one reply page, base64 included */

struct imgcache {
	struct imgcache_opts o;
	struct sflight *flight;
	pthread_mutex_t lock;         /* guards list, entries and the counters */
	struct img_hour *list;
	size_t entries;
	uint64_t fills, requests;
};

static void hour_ref(void *val)
{
	struct img_hour *h = val;
	__atomic_add_fetch(&h->refs, 1, __ATOMIC_ACQ_REL);
}

void imgcache_unref(struct img_hour *h)
{
	if (h && __atomic_sub_fetch(&h->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		free(h->stream);
		free(h->v);
		free(h);
	}
}

static void hour_unref(void *val)
{
	imgcache_unref(val);
}

int imgcache_new(const struct imgcache_opts *o, struct imgcache **out)
{
	static const struct sflight_opts shared = { .ref = hour_ref, .unref = hour_unref };
	if (o->interval_s < 1 || o->width < 1 || o->width > 3840 || !o->kvs || !o->cache)
		return -EINVAL;
	struct imgcache *ic = calloc(1, sizeof(*ic));
	if (!ic || sflight_new(&shared, &ic->flight)) {
		free(ic);
		return -ENOMEM;
	}
	ic->o = *o;
	if (!ic->o.max_entries)
		ic->o.max_entries = 262144;
	pthread_mutex_init(&ic->lock, NULL);
	*out = ic;
	return 0;
}

void imgcache_free(struct imgcache *ic)
{
	if (!ic)
		return;
	sflight_free(ic->flight);
	while (ic->list) {
		struct img_hour *h = ic->list;
		ic->list = h->link;
		imgcache_unref(h);
	}
	pthread_mutex_destroy(&ic->lock);
	free(ic);
}

/* ---------------------------------------------------------------- names and keys */

int imgcache_format_name(int64_t ts, char out[IMGCACHE_NAME_LEN])
{
	char stamp[NAMES_STAMP_LEN];
	if (ts % 1000 || names_format_stamp(ts, stamp))
		return -EINVAL;
	snprintf(out, IMGCACHE_NAME_LEN, "%.15sZ.jpg", stamp);
	return 0;
}

int imgcache_parse_name(const char *name, int64_t *ts)
{
	size_t n = strlen(name);
	if (n != IMGCACHE_NAME_LEN - 1 || strcmp(name + 16, ".jpg") != 0)
		return -EINVAL;
	return names_parse_stamp(name, 16, ts);
}

static void image_key(const struct imgcache *ic, const char *stream, int64_t ts, char *key,
		      size_t n)
{
	snprintf(key, n, "img/%s/%c/%d/%d/%lld", stream, ic->o.ts == KVS_TS_SERVER ? 's' : 'p',
		 ic->o.width, ic->o.interval_s, (long long)ts);
}

int imgcache_open(struct imgcache *ic, const char *stream, int64_t ts, int *fd, uint64_t *size,
		  struct fcache_pin **pin)
{
	char key[FCACHE_KEY_MAX];
	image_key(ic, stream, ts, key, sizeof(key));
	return fcache_get(ic->o.cache, key, fd, size, pin);
}

void imgcache_unpin(struct imgcache *ic, struct fcache_pin *pin)
{
	fcache_unpin(ic->o.cache, pin);
}

void imgcache_counts(struct imgcache *ic, uint64_t *fills, uint64_t *requests)
{
	pthread_mutex_lock(&ic->lock);
	*fills = ic->fills;
	*requests = ic->requests;
	pthread_mutex_unlock(&ic->lock);
}

long imgcache_find(const struct img_hour *h, int64_t ts)
{
	size_t lo = 0, hi = h->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (h->v[mid].ts < ts)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < h->n && h->v[lo].ts == ts ? (long)lo : -1;
}

/* ---------------------------------------------------------------- the cache */

/* Under ic->lock: the listing of (stream, hour), or NULL. */
static struct img_hour *find_locked(struct imgcache *ic, const char *stream, int64_t hour_ms)
{
	for (struct img_hour *h = ic->list; h; h = h->link)
		if (h->hour_ms == hour_ms && strcmp(h->stream, stream) == 0)
			return h;
	return NULL;
}

struct img_hour *imgcache_peek(struct imgcache *ic, const char *stream, int64_t hour_ms)
{
	pthread_mutex_lock(&ic->lock);
	struct img_hour *h = find_locked(ic, stream, hour_ms);
	if (h)
		hour_ref(h);
	pthread_mutex_unlock(&ic->lock);
	return h;
}

static int64_t ttl_of(const struct imgcache *ic, int64_t hour_ms)
{
	int open_hour = hour_ms + NAMES_MS_PER_HOUR + SETTLE_MS > clk_wall_ms();
	return (int64_t)(open_hour ? ic->o.meta_ttl_s : ic->o.past_ttl_s) * 1000;
}

/* A fresh listing of (stream, hour) with a new reference, or NULL; *older gets the cached one
 * however old (a reference too, may be NULL) when older is not NULL. */
static struct img_hour *cached(struct imgcache *ic, const char *stream, int64_t hour_ms,
			       struct img_hour **older)
{
	int64_t now = clk_mono_ms(), ttl = ttl_of(ic, hour_ms);
	struct img_hour *fresh = NULL;
	pthread_mutex_lock(&ic->lock);
	struct img_hour *h = find_locked(ic, stream, hour_ms);
	if (h && now - h->fetched_ms < ttl) {
		h->used_ms = now;
		hour_ref(h);
		fresh = h;
	} else if (h && older) {
		hour_ref(h);
		*older = h;
	}
	pthread_mutex_unlock(&ic->lock);
	return fresh;
}

/* Puts h in place of the older listing of its hour and drops the least recently used listings
 * while more than max_entries entries are kept (h itself is always kept). */
static void cache_put(struct imgcache *ic, struct img_hour *h)
{
	struct img_hour *drop = NULL;
	pthread_mutex_lock(&ic->lock);
	for (struct img_hour **pp = &ic->list; *pp; pp = &(*pp)->link) {
		struct img_hour *o = *pp;
		if (o->hour_ms == h->hour_ms && strcmp(o->stream, h->stream) == 0) {
			*pp = o->link;
			ic->entries -= o->n;
			o->link = drop;
			drop = o;
			break;
		}
	}
	hour_ref(h);
	h->used_ms = clk_mono_ms();
	h->link = ic->list;
	ic->list = h;
	ic->entries += h->n;
	while (ic->entries > ic->o.max_entries) {
		struct img_hour **lru = NULL;
		for (struct img_hour **pp = &ic->list->link; *pp; pp = &(*pp)->link)
			if (!lru || (*pp)->used_ms <= (*lru)->used_ms)
				lru = pp;
		if (!lru)
			break;
		struct img_hour *o = *lru;
		*lru = o->link;
		ic->entries -= o->n;
		o->link = drop;
		drop = o;
	}
	pthread_mutex_unlock(&ic->lock);
	while (drop) {
		struct img_hour *o = drop;
		drop = o->link;
		imgcache_unref(o);
	}
}

/* ---------------------------------------------------------------- a fill */

struct fill {
	struct imgcache *ic;
	const char *stream;
	int64_t hour_ms, from_ms, to_ms;
	imgcache_media_fn media;
	void *media_arg;
	/* the request being made */
	int64_t first, last;           /* its first and last slot */
	/* the listing being built */
	struct img_entry *v;
	size_t n, cap;
	size_t chunk_start;            /* first entry of the current request */
};

/* GetImages callback: stores one image in the disk cache and records its slot. */
static int on_image(void *arg, const struct kvs_image *img)
{
	struct fill *f = arg;
	struct imgcache *ic = f->ic;
	int64_t iv = (int64_t)ic->o.interval_s * 1000;
	if (img->status != KVS_IMAGE_OK)
		return 0; /* NO_MEDIA, MEDIA_ERROR: not a file */
	int64_t d = img->ts_ms - f->first;
	int64_t k = (d + (d >= 0 ? iv / 2 : -iv / 2)) / iv;
	int64_t slot = f->first + k * iv;
	int64_t off = img->ts_ms - slot;
	if (slot < f->first || slot > f->last || off > iv / 2 || off < -iv / 2)
		return 0; /* outside the request: a lenient server */
	for (size_t i = f->chunk_start; i < f->n; i++)
		if (f->v[i].ts == slot)
			return 0; /* the slot is taken: the first image wins */
	struct img_entry *nv = array_grow(f->v, f->n, &f->cap, sizeof(*nv), 64);
	if (!nv)
		return -ENOMEM;
	f->v = nv;
	char key[FCACHE_KEY_MAX];
	struct fcache_writer *w = NULL;
	uint64_t size = 0;
	image_key(ic, f->stream, slot, key, sizeof(key));
	int rc = fcache_begin(ic->o.cache, key, &w);
	if (rc == 0) {
		rc = fcache_write(w, img->data, img->len);
		int crc = fcache_commit(w, &size);
		rc = rc ? rc : crc;
	}
	if (rc == 0 && size != img->len)
		rc = -EIO;
	if (rc) {
		LOG_ERROR(ic->o.log, "images", "%s: storing the image of %lld in the disk cache failed: %s",
			  f->stream, (long long)slot, strerror(-rc));
		return rc;
	}
	f->v[f->n++] = (struct img_entry){ .ts = slot, .kvs_ts = img->ts_ms, .size = size };
	return 0;
}

/* Page size: as many images as fit in PAGE_BYTES at a generous guess of their size. */
static int max_results(int width)
{
	uint64_t guess = (uint64_t)width * width * 3 / 4 / 2 + 4096; /* w x 3w/4, ~0.5 B a pixel */
	uint64_t n = PAGE_BYTES / (guess * 4 / 3);
	return n < 1 ? 1 : n > 100 ? 100 : (int)n;
}

/* kvs_get_images() with the request counted and one log line when it fails. */
static int get_images(struct imgcache *ic, const struct kvs_images_req *r, kvs_image_fn fn,
		      void *arg)
{
	struct awserr err;
	long pages = 0;
	awserr_clear(&err);
	int rc = kvs_get_images(ic->o.kvs, r, fn, arg, &pages, &err);
	pthread_mutex_lock(&ic->lock);
	ic->requests += (uint64_t)pages;
	pthread_mutex_unlock(&ic->lock);
	if (rc) {
		char msg[600];
		awserr_format(&err, msg, sizeof(msg));
		LOG_ERROR(ic->o.log, "images", "%s: GetImages failed: %s", r->stream, msg);
	}
	return rc;
}

/* One request of the hour: the slots first..last. */
static int fill_request(struct fill *f, int64_t end_ms)
{
	struct imgcache *ic = f->ic;
	struct kvs_images_req r = {
		.stream = f->stream, .type = ic->o.ts, .start_ms = f->first, .end_ms = end_ms,
		.interval_ms = ic->o.interval_s * 1000, .width = ic->o.width,
		.max_results = max_results(ic->o.width),
	};
	f->chunk_start = f->n;
	return get_images(ic, &r, on_image, f);
}

/* Copies the entries of old in [first, last] (a settled request asked before). */
static int reuse(struct fill *f, const struct img_hour *old)
{
	for (size_t i = 0; i < old->n; i++) {
		if (old->v[i].ts < f->first || old->v[i].ts > f->last)
			continue;
		struct img_entry *nv = array_grow(f->v, f->n, &f->cap, sizeof(*nv), 64);
		if (!nv)
			return -ENOMEM;
		f->v = nv;
		f->v[f->n++] = old->v[i];
	}
	return 0;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct img_entry *x = a, *y = b;
	return x->ts < y->ts ? -1 : x->ts > y->ts;
}

/* 1 when [c, end] overlaps a span of media (or the spans are unknown: sp == NULL). */
static int has_media(const struct img_span *sp, size_t n, int64_t c, int64_t end)
{
	if (!sp)
		return 1;
	for (size_t i = 0; i < n; i++)
		if (sp[i].from <= end && sp[i].to > c)
			return 1;
	return 0;
}

/* Fills the hour (no lock held): every request of whole slots, at most 300 s each. */
static int fetch(struct fill *f, const struct img_hour *old, struct img_hour **out)
{
	struct imgcache *ic = f->ic;
	int64_t iv = (int64_t)ic->o.interval_s * 1000;
	int64_t per = KVS_IMAGES_MAX_SPAN_MS / iv > 0 ? KVS_IMAGES_MAX_SPAN_MS / iv : 1;
	int64_t asked = clk_mono_ms(), now = clk_wall_ms(), settled_to = f->hour_ms;
	int64_t hour_end = f->hour_ms + NAMES_MS_PER_HOUR - 1;
	int rc = 0, contiguous = 1;
	int open_hour = f->hour_ms + NAMES_MS_PER_HOUR + SETTLE_MS > now; /* past: ask again */
	struct img_span *sp = NULL;
	size_t nsp = 0;
	if (f->media && f->media(f->media_arg, f->hour_ms, &sp, &nsp)) {
		free(sp);
		sp = NULL; /* unknown: ask every request */
	} else if (f->media && !sp && !(sp = malloc(sizeof(*sp)))) {
		return -ENOMEM; /* (a non-NULL empty set: no media at all) */
	}
	for (int64_t c = f->hour_ms; rc == 0 && c <= hour_end && c <= now; c += per * iv) {
		int64_t end = c + per * iv - 1;
		if (end > hour_end)
			end = hour_end;
		if (end - c >= KVS_IMAGES_MAX_SPAN_MS)
			end = c + KVS_IMAGES_MAX_SPAN_MS - 1;
		f->first = c;
		f->last = c + (end - c) / iv * iv;
		if (end < f->from_ms || c > f->to_ms)
			continue; /* outside the retention window */
		if (old && open_hour && end < old->settled_to)
			rc = reuse(f, old);
		else if (has_media(sp, nsp, c, end))
			rc = fill_request(f, end);
		if (contiguous && end + SETTLE_MS < now)
			settled_to = end + 1;
		else
			contiguous = 0;
	}
	free(sp);
	if (rc)
		return rc;
	struct img_hour *h = calloc(1, sizeof(*h));
	if (!h || !(h->stream = strdup(f->stream))) {
		free(h);
		return -ENOMEM;
	}
	if (f->n)  /* an hour without images has no array (qsort wants one) */
		qsort(f->v, f->n, sizeof(*f->v), cmp_entry);
	h->refs = 1;
	h->hour_ms = f->hour_ms;
	h->fetched_ms = asked;
	h->settled_to = settled_to;
	h->n = f->n;
	h->v = f->v;
	f->v = NULL;
	pthread_mutex_lock(&ic->lock);
	ic->fills++;
	pthread_mutex_unlock(&ic->lock);
	cache_put(ic, h);
	*out = h;
	return 0;
}

/* The fill generation's work. */
static int fill_work(void *arg, void **val)
{
	struct fill *f = arg;
	struct img_hour *old = NULL, *h = cached(f->ic, f->stream, f->hour_ms, &old);
	int rc = h ? 0 : fetch(f, old, &h);
	imgcache_unref(old);
	free(f->v);
	f->v = NULL;
	f->n = f->cap = 0;
	*val = rc ? NULL : h;
	return rc;
}

int imgcache_get(struct imgcache *ic, const char *stream, int64_t hour_ms, int64_t from_ms,
		 int64_t to_ms, imgcache_media_fn media, void *media_arg, struct img_hour **out)
{
	*out = cached(ic, stream, hour_ms, NULL);
	if (*out)
		return 0;
	struct fill f = { .ic = ic, .stream = stream, .hour_ms = hour_ms, .from_ms = from_ms,
			  .to_ms = to_ms, .media = media, .media_arg = media_arg };
	char key[512];
	void *val = NULL;
	int rc;
	if ((size_t)snprintf(key, sizeof(key), "%lld/%s", (long long)hour_ms, stream) < sizeof(key))
		rc = sflight_do(ic->flight, key, fill_work, &f, &val);
	else
		rc = fill_work(&f, &val); /* longer than any stream name: not shared */
	*out = val;
	return rc;
}

/* ---------------------------------------------------------------- one image again */

struct one {
	struct imgcache *ic;
	const char *stream;
	int64_t slot;
	int fd;
	uint64_t size;
	struct fcache_pin *pin;
	int found;
};

/* GetImages callback of imgcache_fetch_one: stores the slot's picture, pinned. */
static int on_one(void *arg, const struct kvs_image *img)
{
	struct one *o = arg;
	int64_t half = (int64_t)o->ic->o.interval_s * 500;
	if (img->status != KVS_IMAGE_OK || o->found || img->ts_ms - o->slot > half ||
	    o->slot - img->ts_ms > half)
		return 0;
	char key[FCACHE_KEY_MAX];
	struct fcache_writer *w = NULL;
	image_key(o->ic, o->stream, o->slot, key, sizeof(key));
	int rc = fcache_begin(o->ic->o.cache, key, &w);
	if (rc)
		return rc;
	rc = fcache_write(w, img->data, img->len);
	if (rc) {
		fcache_abort(w);
		return rc;
	}
	rc = fcache_commit_get(w, &o->fd, &o->size, &o->pin);
	o->found = rc == 0;
	return rc;
}

/* Sets the size of slot ts in the cached listing of (stream, hour) (a new listing in its place:
 * listings are immutable). */
static void set_size(struct imgcache *ic, const char *stream, int64_t hour_ms, int64_t ts,
		     uint64_t size)
{
	struct img_hour *drop = NULL;
	pthread_mutex_lock(&ic->lock);
	for (struct img_hour **pp = &ic->list; *pp; pp = &(*pp)->link) {
		struct img_hour *o = *pp, *c;
		long i;
		if (o->hour_ms != hour_ms || strcmp(o->stream, stream) != 0)
			continue;
		if ((i = imgcache_find(o, ts)) < 0 || o->v[i].size == size ||
		    !(c = malloc(sizeof(*c))))
			break;
		*c = *o;
		c->refs = 1;
		c->stream = strdup(o->stream);
		c->v = malloc(o->n * sizeof(*c->v));
		if (!c->stream || !c->v) {
			free(c->stream);
			free(c->v);
			free(c);
			break;
		}
		memcpy(c->v, o->v, o->n * sizeof(*c->v));
		c->v[i].size = size;
		*pp = c;
		drop = o;
		break;
	}
	pthread_mutex_unlock(&ic->lock);
	imgcache_unref(drop);
}

int imgcache_fetch_one(struct imgcache *ic, const char *stream, int64_t hour_ms, int64_t ts,
		       int *fd, uint64_t *size, struct fcache_pin **pin)
{
	struct one o = { .ic = ic, .stream = stream, .slot = ts, .fd = -1 };
	struct kvs_images_req r = {
		.stream = stream, .type = ic->o.ts, .start_ms = ts, .end_ms = ts,
		.interval_ms = ic->o.interval_s * 1000, .width = ic->o.width, .max_results = 1,
	};
	int rc = get_images(ic, &r, on_one, &o);
	if (rc) {
		if (o.found) {
			close(o.fd);
			fcache_unpin(ic->o.cache, o.pin);
		}
		return rc;
	}
	if (!o.found)
		return -ENOENT;
	set_size(ic, stream, hour_ms, ts, o.size);
	*fd = o.fd;
	*size = o.size;
	*pin = o.pin;
	return 0;
}
