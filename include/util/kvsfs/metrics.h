/*
 * metrics: the daemon's counters and its work in progress, for MNT/.kvsfs/metrics (Prometheus
 * text format) and MNT/.kvsfs/status (one screen for a person) (docs/OBSERVE.md).
 *
 * One struct metrics per mount, made by main and passed down by pointer in each module's options
 * (awsreq_ctx, clips, export, vfs); a NULL pointer means "not counted", so every module works
 * without it. Counters are plain C11 atomics updated with relaxed increments from any thread
 * (the counting points are few and central: the AWS request path, the clip maker, the export
 * upload queue, the hour listings). Work in progress (a clip being made, an upload, a read-ahead
 * batch) takes one of a fixed number of slots under a mutex held only to copy a few fields; a
 * full table just leaves the work unlisted. Nothing here allocates after metrics_init().
 */
#ifndef KVSFS_METRICS_H
#define KVSFS_METRICS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

/* The AWS APIs counted one by one (any other request counts as "Other"). */
#define METRICS_APIS(X) \
	X(ListStreams) X(DescribeStream) X(GetDataEndpoint) X(ListFragments) \
	X(GetMediaForFragmentList) X(GetClip) X(GetHLSStreamingSessionURL) \
	X(GetDASHStreamingSessionURL) X(GetImages) X(PutMedia) X(GetMedia) \
	X(HeadBucket) X(HeadObject) X(GetObject) X(PutObject) X(CopyObject) X(DeleteObject) \
	X(ListObjectsV2) X(CreateMultipartUpload) X(UploadPart) X(CompleteMultipartUpload) \
	X(AbortMultipartUpload) X(ListMultipartUploads) X(ListParts) \
	X(GetHLSMasterPlaylist) X(GetHLSMediaPlaylist) X(GetDASHManifest) X(Other)

#define METRICS_API_ENUM(n) METRICS_API_##n,
enum metrics_api_id { METRICS_APIS(METRICS_API_ENUM) METRICS_API_N };
#undef METRICS_API_ENUM

/* Counters of one API: HTTP requests sent (every attempt), failed attempts, throttled attempts,
 * retries (attempts after the first). */
struct metrics_api {
	atomic_uint_least64_t requests, errors, throttles, retries;
};

#define METRICS_WORK_SLOTS 32

/* One piece of work in progress (a copy of a slot). */
struct metrics_work {
	int used;
	char kind[16];             /* "clip", "upload", "readahead" */
	char what[200];            /* stream and name, a path: never a secret */
	uint64_t done, total;      /* parts done of total (0 total: unknown) */
	uint64_t bytes, bytes_total;
	int64_t started_ms;        /* wall clock */
};

struct metrics {
	struct metrics_api api[METRICS_API_N];
	atomic_uint_least64_t kvs_bytes_read;     /* response bodies of KVS requests */
	atomic_uint_least64_t s3_bytes_read;      /* response bodies of S3 requests */
	atomic_uint_least64_t s3_bytes_written;   /* request bodies of S3 requests that succeeded */
	atomic_uint_least64_t fragments_listed;   /* fragments in ListFragments replies */
	atomic_int_least64_t clips_in_progress;   /* clips being made */
	atomic_int_least64_t upload_parts_queued; /* export: parts waiting for or being uploaded */
	atomic_int_least64_t upload_bytes_queued; /* ... and their bytes */
	atomic_int_least64_t readahead_batches;   /* read-ahead batches in flight */
	int64_t start_ms;                         /* wall clock at metrics_init */
	pthread_mutex_t lock;                     /* the work slots only */
	struct metrics_work work[METRICS_WORK_SLOTS];
};

/* Gauges the renderer reads from other modules at render time (the disk cache, the process). */
struct metrics_gauges {
	uint64_t cache_bytes, cache_max_bytes, cache_entries;
	uint64_t cache_hits, cache_misses, cache_evictions;
	uint64_t rss_bytes, rss_peak_bytes;
};

/* Zeroes m and makes its mutex; free with metrics_destroy. */
void metrics_init(struct metrics *m);
void metrics_destroy(struct metrics *m);

/* The id of an API name (case-insensitive: "listFragments" is ListFragments), or
 * METRICS_API_Other. Pure. */
int metrics_api_find(const char *name);
/* The name of an id ("Other" when out of range). */
const char *metrics_api_name(int id);

/* Adds n to a counter of m; m may be NULL. */
#define METRICS_ADD(m, field, n) \
	do { \
		if (m) \
			atomic_fetch_add_explicit(&(m)->field, (n), memory_order_relaxed); \
	} while (0)

/* Counts one request's attempts: attempts sent, failed ones, throttled ones. m may be NULL. */
void metrics_count_api(struct metrics *m, int api, int attempts, int failed, int throttled);

/* Takes a work slot for work of kind on what with total parts and bytes_total bytes (0:
 * unknown). Returns the slot (>= 0) or -1 when m is NULL or the table is full; the other
 * work functions accept -1 and do nothing then. */
int metrics_work_begin(struct metrics *m, const char *kind, const char *what, uint64_t total,
		       uint64_t bytes_total);
/* Sets the progress of a slot: done parts of total (0: total unchanged), bytes so far. */
void metrics_work_progress(struct metrics *m, int slot, uint64_t done, uint64_t total,
			   uint64_t bytes);
/* Frees a slot. */
void metrics_work_end(struct metrics *m, int slot);
/* Copies up to n slots in use into out; returns how many. */
size_t metrics_work_list(struct metrics *m, struct metrics_work *out, size_t n);

/* Fills the process gauges of g (RSS now and at its peak, from /proc and getrusage). */
void metrics_process_gauges(struct metrics_gauges *g);

/* Appends the Prometheus text exposition of m and g to out. Returns 0 or -ENOMEM. */
int metrics_render(struct metrics *m, const struct metrics_gauges *g, struct buf *out);
/* Appends the work in progress, one line each ("clip cam1/...: 3/10 parts, 4.2 MiB"), or
 * "none". Returns 0 or -ENOMEM. */
int metrics_render_work(struct metrics *m, struct buf *out);

#endif
