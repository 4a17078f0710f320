/*
 * clips: the files MNT/<stream>/clips/START-END.mp4, made with KVS GetClip, and START-END.mkv,
 * written by kvsfs from the fragments (clips_make_mkv; see docs/CLIPS.md). The playlists
 * START-END.m3u8/.mpd share the names (clips_parse_kind) but are sessions (include/kvsfs/live.h).
 *
 * A clip holds every fragment whose start (on the mount's timestamp basis) lies in [START, END].
 * GetClip silently stops at 200 fragments or 100 MB and allows 1 call a second per stream, so a
 * clip is made by: ListFragments for the range; clips_plan() cutting the sorted fragment list into
 * groups of consecutive fragments within max_fragments and max_bytes (by FragmentSizeInBytes);
 * one GetClip per group over [first start, last start], each part streamed into a temporary
 * fcache entry and checked with mp4_info_read; the parts joined with the mp4 joiner and the result
 * committed to the disk cache under "clip/<stream>/<name>"; the parts removed. The clip is then
 * served from the cache (exact size, any read order) until evicted, after which it is made again.
 * open() should use clips_make_open, which makes and pins the clip in one step.
 *
 * Concurrency: calls for the same (stream, name) share one generation (single flight): the first
 * caller makes the clip, the others block until it is done and get the same result. Different
 * clips are made in parallel (GetClip on one stream is paced at 1 TPS by the KVS client).
 * All functions are thread-safe. Errors are negative errnos (docs/ERRORS.md), each logged once.
 */
#ifndef KVSFS_CLIPS_H
#define KVSFS_CLIPS_H

#include <stddef.h>
#include <stdint.h>

#include "kvsfs/kvs.h"

struct fcache;
struct fcache_pin;
struct log_ctx;
struct metrics;
struct clips;
struct fetcher;

/* The names of clips/: START-END.mp4 (GetClip), .mkv (written from the fragments), .m3u8 and
 * .mpd (ON_DEMAND HLS and DASH sessions, include/kvsfs/live.h). */
enum clips_kind { CLIPS_MP4 = 0, CLIPS_MKV = 1, CLIPS_M3U8 = 2, CLIPS_MPD = 3 };

#define CLIPS_MAX_SPAN_MS (24LL * 3600 * 1000)  /* GetClip's (and so a clip name's) longest range */
#define CLIPS_DEFAULT_MAX_FRAGMENTS 200
#define CLIPS_DEFAULT_MAX_BYTES (90ULL << 20)   /* margin under GetClip's 100 MB */

struct clips_opts {
	struct kvs_client *kvs;   /* borrowed, must outlive the clips object */
	struct fcache *cache;     /* borrowed, must outlive the clips object */
	struct log_ctx *log;      /* may be NULL */
	struct metrics *metrics;  /* may be NULL: clips in progress, parts done */
	enum kvs_ts_type ts;      /* the mount's timestamp basis */
	int max_fragments;        /* per GetClip, 0: 200 */
	uint64_t max_bytes;       /* per GetClip by FragmentSizeInBytes, 0: 90 MiB */
};

/* Creates the clips object (and removes temporary parts left in the cache by a crash).
 * Returns 0 and *out (free with clips_free), -EINVAL (no kvs or cache) or -ENOMEM. */
int clips_new(const struct clips_opts *o, struct clips **out);
/* Frees c after waiting for the generations and waiters in progress. NULL is a no-op. */
void clips_free(struct clips *c);

/* Strict name check, no network: 0 and the range; -ENOENT malformed name; -EINVAL END before
 * START; -EFBIG span over 24 h. Pure, thread-safe. */
int clips_parse(const char *name, int64_t *start_ms, int64_t *end_ms);

/* clips_parse for any kind: the .mp4 grammar and errnos with the extension .mp4, .mkv, .m3u8 or
 * .mpd, which sets *kind. Pure. */
int clips_parse_kind(const char *name, int64_t *start_ms, int64_t *end_ms, enum clips_kind *kind);
/* The canonical name of a range and kind (names_format_clip with its extension); 0 or -EINVAL. */
int clips_format(int64_t start_ms, int64_t end_ms, enum clips_kind kind, char out[64]);

/* One GetClip call of a plan: fragments v[first .. first + count) of the planned list. */
struct clips_group {
	size_t first, count;
	uint64_t bytes;          /* sum of FragmentSizeInBytes (unknown sizes count as 0) */
	int64_t start_ms, end_ms; /* [first start, last start] on the basis */
};

/*
 * Cuts the fragments v[0..n) (sorted by start on the basis ts) into groups of consecutive
 * fragments, each with at most max_fragments fragments and at most max_bytes bytes (a single
 * fragment larger than max_bytes forms a group alone). Fragments sharing one start millisecond are
 * never split across two groups (GetClip selects by time, so they would be fetched twice).
 * max_fragments 0: 200; max_bytes 0: 90 MiB. On success returns 0, *groups (malloc'd, caller
 * frees) and *ngroups (0 when n == 0). -E2BIG when more than max_fragments fragments share one
 * start millisecond; -ENOMEM. Pure, thread-safe.
 */
int clips_plan(const struct kvs_fragment *v, size_t n, enum kvs_ts_type ts, int max_fragments,
	       uint64_t max_bytes, struct clips_group **groups, size_t *ngroups);

/* Exact size of a clip already made (cached), without making it: 0 and *size, or -ENOENT. */
int clips_cached_size(struct clips *c, const char *stream, const char *name, uint64_t *size);

/*
 * Makes the clip name of stream (range already parsed with clips_parse) unless cached, and
 * returns its exact size in *size. Blocks (network). Concurrent calls for one clip share one
 * generation. Returns 0, -ENOENT (no fragment in range, outside retention, no such stream),
 * -EMEDIUMTYPE (media GetClip cannot package, parts that cannot be joined), -EIO (bad part, a
 * part shorter than its fragments, ...), -EAGAIN (throttled), -EINVAL (bad arguments) or another
 * errno of the table in docs/ERRORS.md; one log line names the cause.
 */
int clips_make(struct clips *c, const char *stream, const char *name, int64_t start_ms,
	       int64_t end_ms, uint64_t *size);

/*
 * clips_make, then opens the clip pinned (as clips_open) in one step, so it cannot be evicted
 * between being made and being opened (use this from open()). Waiters of a shared generation open
 * it after it is made; if it was evicted meanwhile it is made again (up to 3 times, then
 * -ENOSPC: the cache is too small to hold it). Errors as clips_make; on error *fd = -1 and
 * *pin = NULL.
 */
int clips_make_open(struct clips *c, const char *stream, const char *name, int64_t start_ms,
		    int64_t end_ms, int *fd, uint64_t *size, struct fcache_pin **pin);

/*
 * START-END.mkv: like clips_make / clips_make_open, but the file is written by kvsfs from the
 * fragments of the range, got through f (the fragments/ fetcher and disk cache) in batches (see
 * docs/CLIPS.md, "START-END.mkv"). Errors as clips_make, plus -EMEDIUMTYPE when the fragments'
 * Tracks differ inside the range (codec settings changed), -EIO for a fragment that is not one
 * complete MKV document, -EINVAL without f.
 */
int clips_make_mkv(struct clips *c, struct fetcher *f, const char *stream, const char *name,
		   int64_t start_ms, int64_t end_ms, uint64_t *size);
int clips_make_mkv_open(struct clips *c, struct fetcher *f, const char *stream, const char *name,
			int64_t start_ms, int64_t end_ms, int *fd, uint64_t *size,
			struct fcache_pin **pin);

/* Opens a made clip like fcache_get: 0 with *fd (caller closes), *size and *pin (caller releases
 * with clips_unpin or fcache_unpin on the same cache); -ENOENT when not cached (e.g. evicted):
 * call clips_make again. */
int clips_open(struct clips *c, const char *stream, const char *name, int *fd, uint64_t *size,
	       struct fcache_pin **pin);
/* Releases a pin from clips_open. NULL is a no-op. */
void clips_unpin(struct clips *c, struct fcache_pin *pin);

/* Calls fn(arg, name, size) for every clip of stream already made (cached), in name order; never
 * calls GetClip. Stops at fn's first non-zero return and returns it; 0 when all were visited,
 * -ENOMEM. */
int clips_list(struct clips *c, const char *stream,
	       int (*fn)(void *arg, const char *name, uint64_t size), void *arg);

#endif
