/*
 * metrics: counters and work in progress of a mount (see include/kvsfs/metrics.h).
 *
 * Design: counters are relaxed atomics (a reader may see one counter a moment ahead of another,
 * never a torn value); the work table is a fixed array under a mutex that is held only to copy
 * or set a slot's fields, never across I/O. Rendering reads the atomics and copies the table
 * first, then formats without any lock.
 */
#include "kvsfs/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "kvsfs/buf.h"
#include "kvsfs/clk.h"

#define METRICS_API_NAME(n) #n,
static const char *const api_names[METRICS_API_N] = { METRICS_APIS(METRICS_API_NAME) };
#undef METRICS_API_NAME

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

void metrics_init(struct metrics *m)
{
	memset(m, 0, sizeof(*m));
	for (int i = 0; i < METRICS_API_N; i++) {
		atomic_init(&m->api[i].requests, 0);
		atomic_init(&m->api[i].errors, 0);
		atomic_init(&m->api[i].throttles, 0);
		atomic_init(&m->api[i].retries, 0);
	}
	m->start_ms = clk_wall_ms();
	pthread_mutex_init(&m->lock, NULL);
}

void metrics_destroy(struct metrics *m)
{
	if (m)
		pthread_mutex_destroy(&m->lock);
}

int metrics_api_find(const char *name)
{
	if (name)
		for (int i = 0; i < METRICS_API_Other; i++)
			if (!strcasecmp(name, api_names[i]))
				return i;
	return METRICS_API_Other;
}

const char *metrics_api_name(int id)
{
	return id >= 0 && id < METRICS_API_N ? api_names[id] : "Other";
}

void metrics_count_api(struct metrics *m, int api, int attempts, int failed, int throttled)
{
	if (!m)
		return;
	if (api < 0 || api >= METRICS_API_N)
		api = METRICS_API_Other;
	struct metrics_api *a = &m->api[api];
	atomic_fetch_add_explicit(&a->requests, (uint64_t)attempts, memory_order_relaxed);
	atomic_fetch_add_explicit(&a->errors, (uint64_t)failed, memory_order_relaxed);
	atomic_fetch_add_explicit(&a->throttles, (uint64_t)throttled, memory_order_relaxed);
	if (attempts > 1)
		atomic_fetch_add_explicit(&a->retries, (uint64_t)(attempts - 1),
					  memory_order_relaxed);
}

int metrics_work_begin(struct metrics *m, const char *kind, const char *what, uint64_t total,
		       uint64_t bytes_total)
{
	if (!m)
		return -1;
	int64_t now = clk_wall_ms();
	int slot = -1;
	pthread_mutex_lock(&m->lock);
	for (int i = 0; i < METRICS_WORK_SLOTS; i++) {
		struct metrics_work *w = &m->work[i];
		if (w->used)
			continue;
		memset(w, 0, sizeof(*w));
		w->used = 1;
		snprintf(w->kind, sizeof(w->kind), "%s", kind ? kind : "work");
		snprintf(w->what, sizeof(w->what), "%s", what ? what : "");
		w->total = total;
		w->bytes_total = bytes_total;
		w->started_ms = now;
		slot = i;
		break;
	}
	pthread_mutex_unlock(&m->lock);
	return slot;
}

void metrics_work_progress(struct metrics *m, int slot, uint64_t done, uint64_t total,
			   uint64_t bytes)
{
	if (!m || slot < 0 || slot >= METRICS_WORK_SLOTS)
		return;
	pthread_mutex_lock(&m->lock);
	m->work[slot].done = done;
	if (total)
		m->work[slot].total = total;
	m->work[slot].bytes = bytes;
	pthread_mutex_unlock(&m->lock);
}

void metrics_work_end(struct metrics *m, int slot)
{
	if (!m || slot < 0 || slot >= METRICS_WORK_SLOTS)
		return;
	pthread_mutex_lock(&m->lock);
	m->work[slot].used = 0;
	pthread_mutex_unlock(&m->lock);
}

size_t metrics_work_list(struct metrics *m, struct metrics_work *out, size_t n)
{
	size_t k = 0;
	if (!m)
		return 0;
	pthread_mutex_lock(&m->lock);
	for (int i = 0; i < METRICS_WORK_SLOTS && k < n; i++)
		if (m->work[i].used)
			out[k++] = m->work[i];
	pthread_mutex_unlock(&m->lock);
	return k;
}

void metrics_process_gauges(struct metrics_gauges *g)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		g->rss_peak_bytes = (uint64_t)ru.ru_maxrss * 1024;
	FILE *f = fopen("/proc/self/statm", "re");
	if (f) {
		unsigned long long size, resident;
		if (fscanf(f, "%llu %llu", &size, &resident) == 2)
			g->rss_bytes = resident * (uint64_t)sysconf(_SC_PAGESIZE);
		fclose(f);
	}
	if (g->rss_peak_bytes < g->rss_bytes) /* two sources, a few pages apart */
		g->rss_peak_bytes = g->rss_bytes;
}

/* One metric family: HELP and TYPE lines. */
static int family(struct buf *out, const char *name, const char *type, const char *help)
{
	return buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int render_api(struct metrics *m, struct buf *out)
{
	static const struct { const char *name, *help; size_t off; } fams[] = {
		{ "kvsfs_aws_requests_total", "HTTP requests sent to AWS (every attempt), by API",
		  offsetof(struct metrics_api, requests) },
		{ "kvsfs_aws_errors_total", "failed attempts (HTTP error or transport failure), by API",
		  offsetof(struct metrics_api, errors) },
		{ "kvsfs_aws_throttles_total", "attempts refused by throttling, by API",
		  offsetof(struct metrics_api, throttles) },
		{ "kvsfs_aws_retries_total", "attempts after the first of a request, by API",
		  offsetof(struct metrics_api, retries) },
	};
	int rc = 0;
	for (size_t f = 0; f < sizeof(fams) / sizeof(fams[0]) && !rc; f++) {
		rc = family(out, fams[f].name, "counter", fams[f].help);
		for (int i = 0; i < METRICS_API_N && !rc; i++) {
			atomic_uint_least64_t *c = (atomic_uint_least64_t *)((char *)&m->api[i] +
									     fams[f].off);
			rc = buf_printf(out, "%s{api=\"%s\"} %" PRIu64 "\n", fams[f].name, api_names[i],
					(uint64_t)LOAD(*c));
		}
	}
	return rc;
}

int metrics_render(struct metrics *m, const struct metrics_gauges *g, struct buf *out)
{
	struct { const char *name, *type, *help; int64_t v; } one[] = {
		{ "kvsfs_kvs_read_bytes_total", "counter", "bytes read from Kinesis Video Streams",
		  (int64_t)LOAD(m->kvs_bytes_read) },
		{ "kvsfs_s3_read_bytes_total", "counter", "bytes read from S3",
		  (int64_t)LOAD(m->s3_bytes_read) },
		{ "kvsfs_s3_written_bytes_total", "counter", "object bytes stored in S3 (PUTs that succeeded)",
		  (int64_t)LOAD(m->s3_bytes_written) },
		{ "kvsfs_fragments_listed_total", "counter", "fragments in ListFragments replies",
		  (int64_t)LOAD(m->fragments_listed) },
		{ "kvsfs_clips_in_progress", "gauge", "clips being made",
		  (int64_t)LOAD(m->clips_in_progress) },
		{ "kvsfs_upload_queue_parts", "gauge", "export/ parts queued or being uploaded",
		  (int64_t)LOAD(m->upload_parts_queued) },
		{ "kvsfs_upload_queue_bytes", "gauge", "bytes of the export/ parts queued",
		  (int64_t)LOAD(m->upload_bytes_queued) },
		{ "kvsfs_readahead_batches_in_progress", "gauge", "read-ahead downloads in flight",
		  (int64_t)LOAD(m->readahead_batches) },
		{ "kvsfs_cache_hits_total", "counter", "disk cache lookups that found the entry",
		  (int64_t)g->cache_hits },
		{ "kvsfs_cache_misses_total", "counter", "disk cache lookups that did not",
		  (int64_t)g->cache_misses },
		{ "kvsfs_cache_evictions_total", "counter", "disk cache entries evicted for space",
		  (int64_t)g->cache_evictions },
		{ "kvsfs_cache_bytes", "gauge", "bytes in the disk cache", (int64_t)g->cache_bytes },
		{ "kvsfs_cache_max_bytes", "gauge", "the disk cache's bound (cache_size)",
		  (int64_t)g->cache_max_bytes },
		{ "kvsfs_cache_entries", "gauge", "entries in the disk cache",
		  (int64_t)g->cache_entries },
		{ "kvsfs_resident_memory_bytes", "gauge", "resident set size now",
		  (int64_t)g->rss_bytes },
		{ "kvsfs_resident_memory_peak_bytes", "gauge", "peak resident set size",
		  (int64_t)g->rss_peak_bytes },
		{ "kvsfs_start_time_seconds", "gauge", "wall time of the mount (Unix seconds)",
		  m->start_ms / 1000 },
	};
	int rc = render_api(m, out);
	for (size_t i = 0; i < sizeof(one) / sizeof(one[0]) && !rc; i++) {
		rc = family(out, one[i].name, one[i].type, one[i].help);
		if (!rc)
			rc = buf_printf(out, "%s %" PRId64 "\n", one[i].name, one[i].v);
	}
	return rc;
}

int metrics_render_work(struct metrics *m, struct buf *out)
{
	struct metrics_work w[METRICS_WORK_SLOTS];
	size_t n = metrics_work_list(m, w, METRICS_WORK_SLOTS);
	int64_t now = clk_wall_ms();
	int rc = 0;
	if (n == 0)
		return buf_appendz(out, "  none\n");
	for (size_t i = 0; i < n && !rc; i++) {
		rc = buf_printf(out, "  %s %s:", w[i].kind, w[i].what);
		if (!rc && w[i].total)
			rc = buf_printf(out, " %" PRIu64 "/%" PRIu64 " parts,", w[i].done, w[i].total);
		if (!rc)
			rc = buf_printf(out, " %" PRIu64, w[i].bytes);
		if (!rc && w[i].bytes_total)
			rc = buf_printf(out, "/%" PRIu64, w[i].bytes_total);
		if (!rc)
			rc = buf_printf(out, " bytes, %" PRId64 " s\n", (now - w[i].started_ms) / 1000);
	}
	return rc;
}
