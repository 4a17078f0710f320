/*
 * hours: the hour-listing cache of the fs core: the fragments of one UTC hour of one stream,
 * from one ListFragments query (all pages), named and sorted for the hour folder.
 *
 * A listing is cached meta_ttl seconds for the hour that is still open (or ended less than a
 * minute ago), past_ttl seconds for older hours; listings older than twice past_ttl are dropped
 * when their stream's hours are filled again. Within an hour the entries are sorted by start time
 * then fragment number; the first of equal start times gets the plain name, the others carry
 * their number (never renamed later, since numbers grow with ingestion). Entries outside the hour
 * and repeats of the previous fragment (overlapping pages) are left out.
 *
 * Fills are single flight per (stream, hour): one ListFragments at a time for an hour, its
 * listing (or errno) shared by every caller that came meanwhile; no lock is held across the call.
 * A "not found" for a stream that still exists (DescribeStream) is EIO, not ENOENT.
 *
 * Memory: the cached listings take at most max_bytes (entries and headers); past it the least
 * recently used listings are dropped (any stream), however long a walk is; their count is
 * logged when the cache is freed. A listing still in
 * use stays valid until released (reference counted), so only the cache's share is bounded.
 *
 * Listings are immutable and reference counted: a caller keeps its listing valid while a newer
 * one replaces it in the cache. Thread-safe.
 */
#ifndef KVSFS_FS_CORE_HOURS_H
#define KVSFS_FS_CORE_HOURS_H

#include <stddef.h>
#include <stdint.h>

#include "kvsfs/kvs.h"
#include "kvsfs/names.h"

struct hours;
struct log_ctx;
struct streams;
struct vstream;

struct hour_entry {
	char name[NAMES_FRAGMENT_LEN];
	int64_t ts;                      /* start on the mount's basis */
	struct kvs_fragment frag;
};

struct hour_listing {
	int refs;                        /* atomic */
	int64_t hour_ms;                 /* wall time: the hour's start */
	int64_t fetched_ms;              /* monotonic: when it was listed */
	size_t n;
	struct hour_entry *v;
	struct hour_listing *link;       /* hours.c's cache */
	uint64_t used;                   /* hours.c: LRU clock of the last use, under its lock */
	const struct vstream *s;         /* hours.c: the stream, while cached */
};

struct hours_opts {
	struct kvs_client *kvs;          /* borrowed */
	struct streams *streams;         /* borrowed: asked whether a stream is gone */
	struct log_ctx *log;             /* borrowed */
	enum kvs_ts_type ts;             /* the mount's basis for names and selection */
	int meta_ttl_s;                  /* open hours */
	int past_ttl_s;                  /* hours that have ended */
	uint64_t max_bytes;              /* memory of the cached listings, at most (0: 32 MiB) */
	/* called (no lock held) for each listing dropped to keep within max_bytes or by age; may
	 * be NULL */
	void (*dropped)(void *arg, const struct vstream *s, int64_t hour_ms);
	void *dropped_arg;
};

/* Creates an empty cache. Returns 0 and *out, or -ENOMEM. */
int hours_new(const struct hours_opts *o, struct hours **out);
/* Frees the cache; listings still referenced elsewhere stay valid until released. */
void hours_free(struct hours *h);

/* The listing of s's hour starting at hour_ms (wall ms): 0 and *out (a reference:
 * hours_unref), or the errno of the failed listing (never ENOENT for a 5xx or a timeout). */
int hours_get(struct hours *h, struct vstream *s, int64_t hour_ms, struct hour_listing **out);
/* Drops a reference; NULL is a no-op. */
void hours_unref(struct hour_listing *l);
/* Drops every cached listing of s (after fragments were added to it: ingest/), so the next
 * use lists again. Listings still referenced stay valid until released. */
void hours_drop(struct hours *h, const struct vstream *s);
/* Index of the entry called name in l, or -1. */
long hours_find(const struct hour_listing *l, const char *name);
/* Index of the entry starting at ts with fragment number number in l, or -1 (binary search). */
long hours_index(const struct hour_listing *l, int64_t ts, const char *number);

#endif
