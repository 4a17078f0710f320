/*
 * fetch: gets fragment bytes into the disk cache, fast and exactly.
 *
 * Fragments are immutable, so each is downloaded once and then served from fcache (key
 * "frag/<stream>/<number>"). Downloads are batched: one GetMediaForFragmentList call carries the
 * wanted fragment plus the following ones of its folder that are neither cached nor already on
 * the way (read-ahead for sequential readers such as cp -r, rsync and cat *), bounded by a
 * fragment count and a byte budget. The response streams through the MKV reader, which cuts it
 * at each fragment's EBML header; every fragment is checked (complete, not a KVS error fragment,
 * its FRAGMENT_NUMBER tag one of those asked for) and committed to the cache under the number its
 * tag carries, so the service's output order does not matter. A retried request (the HTTP layer
 * retries throttling, 5xx and broken connections) restarts the split; fragments already
 * committed are kept and not written twice.
 *
 * Concurrency: every fragment on the way has an entry in the in-flight table; a second reader
 * of the same fragment waits for it instead of downloading it again. Each batch runs on its own
 * worker thread; at most max_parallel batches per stream run at once (KVS allows few concurrent
 * media connections per stream), further ones wait for a slot. fetch_free() waits for workers.
 *
 * Memory: only the fragment being received is held in memory (fragments are at most 50 MB).
 */
#ifndef KVSFS_FETCH_H
#define KVSFS_FETCH_H

#include <stddef.h>
#include <stdint.h>

struct kvs_client;
struct fcache;
struct fcache_pin;
struct log_ctx;
struct metrics;
struct fetcher;

/* Called after each fragment is committed to the cache, with its exact size (any thread). */
typedef void (*fetch_learned_fn)(void *arg, const char *stream, const char *number,
				 uint64_t size);

struct fetch_opts {
	struct kvs_client *kvs;     /* borrowed */
	struct fcache *cache;       /* borrowed */
	struct log_ctx *log;        /* borrowed, may be NULL */
	struct metrics *metrics;    /* borrowed, may be NULL: batches in flight */
	int batch_max;              /* fragments per GetMediaForFragmentList; 0: 8 */
	uint64_t batch_bytes;       /* byte budget per batch (by KVS sizes); 0: 64 MiB */
	int max_parallel;           /* concurrent batches per stream; 0: 3 */
	fetch_learned_fn learned;   /* may be NULL */
	void *learned_arg;
};

/* One fragment to fetch: its number and FragmentSizeInBytes (for the batch budget). */
struct fetch_item {
	const char *number;
	int64_t kvs_size;
};

/* Creates a fetcher. Returns 0 and *out, or -ENOMEM. */
int fetch_new(const struct fetch_opts *opts, struct fetcher **out);
/* Waits for running batches, then frees. NULL allowed. */
void fetch_free(struct fetcher *f);

/* Cache key of a fragment: "frag/<stream>/<number>" into out (n bytes). Returns out. */
char *fetch_key(const char *stream, const char *number, char *out, size_t n);

/*
 * Makes sure fragment want of stream is cached, downloading it (with the items of next that
 * are neither cached nor in flight, as read-ahead) when needed, and blocks until it is there.
 * On success returns 0 with *fd (caller closes), *size and *pin (caller unpins with
 * fcache_unpin). Errors: the errno of the failed download (EIO, EACCES, ENOENT when KVS says the
 * fragment does not exist, EAGAIN when throttling outlasted the retries, ...), one log line.
 */
int fetch_fragment(struct fetcher *f, const char *stream, const struct fetch_item *want,
		   const struct fetch_item *next, size_t n_next, int *fd, uint64_t *size,
		   struct fcache_pin **pin);

/* 1 when fragment number of stream is in the cache or on the way (no download needed). */
int fetch_has(struct fetcher *f, const char *stream, const char *number);

/* Starts a background batch for those of items that are neither cached nor in flight, when
 * there are at least min_new of them (so a reader moving one file at a time does not cause a
 * call per file). Never blocks on the download. */
void fetch_prefetch(struct fetcher *f, const char *stream, const struct fetch_item *items,
		    size_t n, size_t min_new);

#endif
