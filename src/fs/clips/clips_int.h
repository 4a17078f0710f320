/*
 * clips_int.h: what the files of src/fs/clips/ share. Private: the API is include/kvsfs/clips.h,
 * the design docs/CLIPS.md.
 *
 * Files (one concept each):
 *   clips.c       the object, names, made clips in the cache (size, open, listing), and the
 *                 single flight: one generation per clip at a time, shared by its callers
 *   plan.c        clips_plan: cutting a fragment list into GetClip calls (pure)
 *   mkv_make.c    one START-END.mkv: fragments through the fetcher, laid out and written
 *   generate.c    one generation: ListFragments, the plan, one GetClip per part into a pinned
 *                 temporary entry, checks, the join, the commit of the clip, the cleanup
 *
 * Locking: the clips object has no lock of its own. Callers of one clip meet in a util/sflight
 * keyed "stream/name": the leader generates without holding any lock (GetClip calls and cache
 * writes happen with nothing held), the others wait on the flight. The generation counter that
 * names temporary parts is atomic.
 */
#ifndef KVSFS_CLIPS_INT_H
#define KVSFS_CLIPS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "kvsfs/clips.h"

struct sflight;
struct fetcher;
struct fcache_writer;
struct fcache_pin;

#define CLIP_PREFIX "clip/"
#define TMP_PREFIX "cliptmp/"

struct clips {
	struct clips_opts o;
	struct sflight *flights;  /* generations in progress, by "stream/name" */
	uint64_t gen;             /* atomic: names the temporary parts of a generation */
};

/* Start of fragment f on the basis ts. */
int64_t cl_frag_start(const struct kvs_fragment *f, enum kvs_ts_type ts);

/* ListFragments for [start_ms, end_ms] into *fl (caller frees), keeping the fragments whose
 * start on the basis lies in the range, sorted. 0, -ENOENT when none is left, or the listing's
 * errno; logged once. */
int cl_list_range(struct clips *c, const char *stream, const char *name, int64_t start_ms,
		  int64_t end_ms, struct kvs_fragment_list *fl);

/*
 * Makes one START-END.mkv (the caller leads its flight; mkv_make.c, docs/CLIPS.md): unless
 * cached, lists the range, gets every fragment through the fetcher (the fragments/ disk cache),
 * lays the file out and writes it into the cache under key. fd/pin/size as cl_make_one.
 */
int cl_make_mkv(struct clips *c, struct fetcher *f, const char *stream, const char *name,
		int64_t start_ms, int64_t end_ms, uint64_t *size, int *fd, struct fcache_pin **pin);

/* Commits w (a clip of total bytes under key), opened and pinned when fd != NULL. A committed
 * size other than total removes the entry: -EIO. 0 or a negative errno, logged once. */
int cl_commit(struct clips *c, const char *stream, const char *name, const char *key,
	      struct fcache_writer *w, uint64_t total, int *fd, struct fcache_pin **pin);
/* A made clip under key: opened and pinned (fd != NULL, as fcache_get) or its size. 0, -ENOENT. */
int cl_lookup(struct clips *c, const char *key, uint64_t *size, int *fd, struct fcache_pin **pin);

/* "clip/<stream>/<name>" into out (FCACHE_KEY_MAX + 1 bytes). 0, -ENOENT (empty or with '/'),
 * -ENAMETOOLONG. */
int cl_clip_key(const char *stream, const char *name, char *out);

/*
 * Makes one clip (the caller leads its flight): unless it is cached already, lists, plans,
 * fetches and checks the parts, joins them and commits the clip under key. With fd != NULL the
 * committed clip is also opened and pinned (*fd, *pin) so it cannot be evicted before the
 * caller reads it. Returns 0 with *size, or a negative errno (logged once; see clips_make).
 */
int cl_make_one(struct clips *c, const char *stream, const char *name, int64_t start_ms,
		int64_t end_ms, uint64_t *size, int *fd, struct fcache_pin **pin);

#endif
