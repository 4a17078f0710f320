/*
 * imgcache: the thumbnails behind MNT/<stream>/images/DAY/HH/ (docs/SEMANTICS.md, "images/").
 *
 * An hour's images are one listing: the slots hour + k * interval (k >= 0, inside the hour, not
 * in the future, not before the retention window) for which GetImages returned a picture. A
 * fill asks GetImages (kvs_images.h) in requests of at most 300 s that each hold whole slots (so
 * an hour with media throughout takes 12 requests), follows every page, and stores each JPEG in the bounded
 * disk cache (fcache, key "img/STREAM/BASIS/WIDTH/INTERVAL/SLOT_MS") as it arrives; the listing
 * keeps only each image's slot, KVS timestamp and exact size. Entries that GetImages answers
 * with NO_MEDIA or MEDIA_ERROR are not in the listing. A request whose time no fragment covers
 * (the caller's media function: the fragments of the hour from ListFragments) is not sent, so an
 * hour without media costs no GetImages call; when that function fails, every request is sent. A reply's image is given to the slot
 * nearest its TimeStamp (within half an interval); the first one wins a slot.
 *
 * Freshness, as the hour listings of fragments/: an hour that is still open (or ended less than
 * a minute ago) is refreshed after meta_ttl, an older one after past_ttl. A refresh of an open
 * hour asks again only for the requests that had not settled (ended less than a minute before
 * they were asked), and reuses the rest. Fills are single flight per (stream, hour): one fill at
 * a time, its listing (or errno) shared by every caller meanwhile; no lock is held across a call
 * or a disk write. A failed fill caches nothing.
 *
 * Memory: listings are immutable and reference counted; the cache keeps at most max_entries
 * entries over all hours, dropping the least recently used listings beyond that.
 * Thread-safe.
 */
#ifndef KVSFS_IMGCACHE_H
#define KVSFS_IMGCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "kvsfs/kvs.h"

struct fcache;
struct fcache_pin;
struct imgcache;
struct log_ctx;

#define IMGCACHE_NAME_LEN 21      /* "YYYYMMDDTHHMMSSZ.jpg" + NUL */

struct img_entry {
	int64_t ts;                   /* the slot: the name's time (wall ms, whole seconds) */
	int64_t kvs_ts;               /* TimeStamp as GetImages returned it */
	uint64_t size;                /* exact bytes of the JPEG */
};

struct img_hour {
	int refs;                     /* atomic */
	char *stream;
	int64_t hour_ms;              /* wall ms: the hour's start */
	int64_t fetched_ms;           /* monotonic: when the fill began */
	int64_t settled_to;           /* wall ms: the slots before it were asked once settled */
	int64_t used_ms;              /* monotonic: last use (the cache's LRU; under its lock) */
	size_t n;
	struct img_entry *v;          /* sorted by ts */
	struct img_hour *link;        /* the cache's list */
};

/* A time with media: [from, to) in wall ms on the mount's basis. */
struct img_span {
	int64_t from, to;
};

/* Gives the spans of media that may hold slots of the hour at hour_ms: 0 with *spans (malloc'd,
 * the caller frees) and *n, or a negative errno (then every request of the hour is sent). */
typedef int (*imgcache_media_fn)(void *arg, int64_t hour_ms, struct img_span **spans, size_t *n);

struct imgcache_opts {
	struct kvs_client *kvs;       /* borrowed */
	struct fcache *cache;         /* borrowed */
	struct log_ctx *log;          /* borrowed */
	enum kvs_ts_type ts;          /* the mount's basis */
	int interval_s;               /* image_interval, >= 1 */
	int width;                    /* image_width, 1..3840 */
	int meta_ttl_s, past_ttl_s;
	size_t max_entries;           /* 0: 262144 */
};

/* Creates an empty cache (no call, no thread). Returns 0 and *out, or -ENOMEM / -EINVAL. */
int imgcache_new(const struct imgcache_opts *o, struct imgcache **out);
/* Frees it (listings still referenced stay valid until released). NULL is a no-op. */
void imgcache_free(struct imgcache *ic);

/*
 * The listing of stream's hour at hour_ms, from the slots in [from_ms, to_ms] (the retention
 * window): 0 and *out (a reference: imgcache_unref), or the errno of the failed fill (ENOENT
 * only when GetImages said so). media (may be NULL) tells which requests to send.
 */
int imgcache_get(struct imgcache *ic, const char *stream, int64_t hour_ms, int64_t from_ms,
		 int64_t to_ms, imgcache_media_fn media, void *media_arg, struct img_hour **out);
/* The cached listing of stream's hour however old, or NULL; never calls. */
struct img_hour *imgcache_peek(struct imgcache *ic, const char *stream, int64_t hour_ms);
void imgcache_unref(struct img_hour *h);
/* Index of the entry of slot ts in h, or -1. */
long imgcache_find(const struct img_hour *h, int64_t ts);

/* The name of the image of slot ts: "YYYYMMDDTHHMMSSZ.jpg". Returns 0 or -EINVAL. */
int imgcache_format_name(int64_t ts, char out[IMGCACHE_NAME_LEN]);
/* Parses such a name into its slot (whole seconds). Returns 0 or -EINVAL. */
int imgcache_parse_name(const char *name, int64_t *ts);

/* Opens the cached JPEG of stream's slot ts as fcache_get does (fd, size, pin); -ENOENT when it
 * is not (or no longer) in the disk cache. */
int imgcache_open(struct imgcache *ic, const char *stream, int64_t ts, int *fd, uint64_t *size,
		  struct fcache_pin **pin);
/*
 * For an image gone from the disk cache (evicted): asks GetImages for slot ts alone, stores the
 * picture in the disk cache and opens it pinned (fd, size, pin as imgcache_open), and sets its
 * size in the cached listing of hour_ms when it differs. Returns 0, -ENOENT when GetImages has
 * no picture for that slot now, or the errno of the failed call.
 */
int imgcache_fetch_one(struct imgcache *ic, const char *stream, int64_t hour_ms, int64_t ts,
		       int *fd, uint64_t *size, struct fcache_pin **pin);
/* Releases a pin of imgcache_open. */
void imgcache_unpin(struct imgcache *ic, struct fcache_pin *pin);

/* Counters for logs and tests: fills done and GetImages requests sent. */
void imgcache_counts(struct imgcache *ic, uint64_t *fills, uint64_t *requests);

#endif
