/*
 * sizes: the fragment-size model of the fs core (docs/SIZES.md).
 *
 * A fragment's size is exact when a download of it was seen before (the persistent size index,
 * keyed "STREAM/NUMBER"). Otherwise it is predicted: ListFragments' FragmentSizeInBytes plus the
 * bytes GetMediaForFragmentList adds (a Segment header and the KVS Tags, whose length follows
 * from the fragment number and timestamps), plus the correction the stream's earlier downloads
 * taught (true size - model). Every download is checked against the prediction by the caller,
 * which reports the true size here (sizes_learn) and invalidates what the kernel cached.
 *
 * Thread-safe: the correction lives in the vstream under its lock; the index is thread-safe.
 */
#ifndef KVSFS_FS_CORE_SIZES_H
#define KVSFS_FS_CORE_SIZES_H

#include <stdint.h>

struct kvs_fragment;
struct sizeidx;
struct vstream;

/* The size a stat reports for f of s; *exact is 1 when a download confirmed it. idx may be
 * NULL (no index: always predicted). */
uint64_t sizes_of(struct sizeidx *idx, struct vstream *s, const struct kvs_fragment *f,
		  int *exact);

/* The model's prediction for f without the stream's correction (FragmentSizeInBytes plus the
 * bytes GetMediaForFragmentList adds). */
int64_t sizes_model(const struct kvs_fragment *f);

/* A download of f showed true_size, unlike the prediction: stores the stream's new correction.
 * Returns 1 when the correction changed (the kernel's sizes of the stream's other fragments are
 * then stale), 0 when it was already known. */
int sizes_learn(struct vstream *s, const struct kvs_fragment *f, uint64_t true_size);

/* Records the true size of a stored fragment in idx (NULL: no-op); for the fetcher's
 * fetch_learned_fn (any thread). */
void sizes_record(struct sizeidx *idx, const char *stream, const char *number, uint64_t size);

#endif
