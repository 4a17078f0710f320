/*
 * kvsfs_dir: MNT/.kvsfs/, the daemon looking at itself (docs/OBSERVE.md).
 *
 *   .kvsfs/            found by name in the root, never listed there (ls -a MNT shows streams
 *                      only; tools that walk the tree never wander into it)
 *   .kvsfs/metrics     the counters in the Prometheus text exposition format (version 0.0.4)
 *   .kvsfs/status      one screen for a person: work in progress, queues, the cache, the last
 *                      warnings and errors with their time, the mount's options (no secret)
 *
 * Both files are read-only and made at open: each open gets a snapshot (direct_io, so the
 * kernel never serves an older one from its page cache); a stat renders the text to report its
 * size with attribute timeout 0. Nothing here touches the network or holds a lock while
 * formatting (the metrics module copies what it needs under its own short locks). The folder
 * hides a stream named ".kvsfs" (KVS allows the name; no camera is expected to use it).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "kvsfs_config.h"
#include "nodes.h"
#include "kvsfs/buf.h"
#include "kvsfs/clk.h"
#include "kvsfs/fcache.h"
#include "kvsfs/log.h"
#include "kvsfs/metrics.h"

enum { KF_METRICS = 0, KF_STATUS = 1 };

static const char *const kf_names[] = { "metrics", "status" };

struct kvsfs_file {
	struct vfs_file f;          /* first: the core's view */
	char *text;
	size_t len;
};

/* Gauges the metrics module cannot see: the disk cache and the process. */
static void gauges(struct vfs *v, struct metrics_gauges *g)
{
	memset(g, 0, sizeof(*g));
	if (v->c.cache) {
		struct fcache_stats st;
		fcache_stats(v->c.cache, &st);
		*g = (struct metrics_gauges){ .cache_bytes = st.bytes, .cache_max_bytes = st.max_bytes,
					      .cache_entries = st.entries, .cache_hits = st.hits,
					      .cache_misses = st.misses,
					      .cache_evictions = st.evictions };
	}
	metrics_process_gauges(g);
}

static void utc(int64_t ms, char *out, size_t n)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int render_counts(struct vfs *v, const struct metrics_gauges *g, struct buf *b)
{
	struct metrics *m = v->c.metrics;
	uint64_t req = 0, err = 0, thr = 0, retr = 0;
	for (int i = 0; i < METRICS_API_N; i++) {
		req += atomic_load(&m->api[i].requests);
		err += atomic_load(&m->api[i].errors);
		thr += atomic_load(&m->api[i].throttles);
		retr += atomic_load(&m->api[i].retries);
	}
	int rc = buf_printf(b, "Export upload queue: %" PRId64 " parts, %" PRId64 " bytes\n"
			    "Read-ahead batches in flight: %" PRId64 "\n",
			    (int64_t)atomic_load(&m->upload_parts_queued),
			    (int64_t)atomic_load(&m->upload_bytes_queued),
			    (int64_t)atomic_load(&m->readahead_batches));
	if (!rc)
		rc = buf_printf(b, "Disk cache: %" PRIu64 " of %" PRIu64 " bytes, %" PRIu64 " entries, "
				"%" PRIu64 " hits, %" PRIu64 " misses, %" PRIu64 " evictions\n",
				g->cache_bytes, g->cache_max_bytes, g->cache_entries, g->cache_hits,
				g->cache_misses, g->cache_evictions);
	if (!rc)
		rc = buf_printf(b, "AWS requests: %" PRIu64 " (%" PRIu64 " failed, %" PRIu64
				" throttled, %" PRIu64 " retries); read %" PRIu64 " bytes from KVS, %"
				PRIu64 " from S3; wrote %" PRIu64 " to S3\n", req, err, thr, retr,
				(uint64_t)atomic_load(&m->kvs_bytes_read),
				(uint64_t)atomic_load(&m->s3_bytes_read),
				(uint64_t)atomic_load(&m->s3_bytes_written));
	if (!rc)
		rc = buf_printf(b, "Memory: resident %" PRIu64 " bytes (peak %" PRIu64 ")\n",
				g->rss_bytes, g->rss_peak_bytes);
	return rc;
}

static int render_errors(struct vfs *v, struct buf *b)
{
	struct log_recent r[LOG_RECENT];
	size_t n = v->c.log ? log_recent_list(v->c.log, r, LOG_RECENT) : 0;
	int rc = buf_appendz(b, "\nLast warnings and errors:\n");
	if (!rc && n == 0)
		rc = buf_appendz(b, "  none\n");
	for (size_t i = n; i-- > 0 && !rc;) {
		char t[32];
		utc(r[i].t_ms, t, sizeof(t));
		rc = buf_printf(b, "  %s %s %s\n", t, r[i].level == LOG_LEVEL_ERROR ? "error" : "warning",
				r[i].text);
	}
	return rc;
}

/* The status page into b. */
static int render_status(struct vfs *v, struct buf *b)
{
	struct metrics_gauges g;
	char now[32], since[32];
	gauges(v, &g);
	utc(clk_wall_ms(), now, sizeof(now));
	utc(v->mount_ms, since, sizeof(since));
	int rc = buf_printf(b, "kvsfs %s status at %s (mounted %s, debug log %s)\n\n"
			    "Work in progress:\n", KVSFS_VERSION, now, since,
			    v->c.log && log_get_level(v->c.log) >= LOG_LEVEL_DEBUG ? "on" : "off");
	if (!rc)
		rc = metrics_render_work(v->c.metrics, b);
	if (!rc)
		rc = render_counts(v, &g, b);
	if (!rc)
		rc = render_errors(v, b);
	if (!rc)
		rc = buf_printf(b, "\nOptions: %s\n", v->c.options_text ? v->c.options_text : "");
	return rc;
}

/* The text of file which; 0 and *out (malloc'd, *len bytes) or -ENOMEM. */
static int render(struct vfs *v, int which, char **out, size_t *len)
{
	struct buf b = BUF_INIT;
	int rc;
	if (which == KF_METRICS) {
		struct metrics_gauges g;
		gauges(v, &g);
		rc = metrics_render(v->c.metrics, &g, &b);
	} else {
		rc = render_status(v, &b);
	}
	if (rc) {
		buf_free(&b);
		return -ENOMEM;
	}
	*len = b.len;
	*out = buf_steal(&b);
	return *out ? 0 : -ENOMEM;
}

char *vfs_status_text(struct vfs *v)
{
	char *text = NULL;
	size_t len;
	if (!v->c.metrics || render(v, KF_STATUS, &text, &len))
		return NULL;
	return text;
}

/* ---- .kvsfs/ ---- */

int node_kvsfs_top(struct vfs *v, struct lookup_res *r)
{
	if (!v->c.metrics)
		return -ENOENT;
	r->val.ops = &node_kvsfs_dir_ops;
	return 0;
}

static int dir_lookup(struct vfs *v, const struct node_ref *dir, const char *name,
		      struct lookup_res *r)
{
	(void)v;
	(void)dir;
	for (int i = 0; i < (int)(sizeof(kf_names) / sizeof(kf_names[0])); i++) {
		if (!strcmp(name, kf_names[i])) {
			r->val.ops = &node_kvsfs_file_ops;
			r->val.t0 = i;
			return 0;
		}
	}
	return -ENOENT;
}

static int dir_list(struct vfs *v, const struct node_ref *dir, struct dir_builder *b)
{
	(void)v;
	(void)dir;
	int rc = 0;
	for (int i = 0; i < (int)(sizeof(kf_names) / sizeof(kf_names[0])) && !rc; i++) {
		struct node_val proto = { .ops = &node_kvsfs_file_ops, .t0 = i };
		rc = vfs_dir_add(b, kf_names[i], &proto);
	}
	return rc;
}

static int dir_getattr(struct vfs *v, const struct node_ref *n, enum attr_use use,
		       struct vfs_attr *a)
{
	(void)use;
	vfs_attr_dir(v, n->ino, v->mount_ms, a);
	return 0;
}

/* ---- metrics, status ---- */

static int file_getattr(struct vfs *v, const struct node_ref *n, enum attr_use use,
			struct vfs_attr *a)
{
	vfs_attr_init(v, n->ino, a);
	a->mode = S_IFREG | (0444 & ~v->c.umask);
	a->mtime_ms = clk_wall_ms();
	a->timeout = 0;
	if (use == ATTR_ENTRY)
		return 0;
	char *text;
	size_t len;
	if (render(v, (int)n->val.t0, &text, &len) == 0) {
		a->size = len;
		free(text);
	}
	return 0;
}

static int file_open(struct vfs *v, const struct node_ref *n, int flags, struct vfs_file **out,
		     int *direct_io, int *keep_cache)
{
	int rc = vfs_open_flags_ro(flags);
	(void)keep_cache;
	if (rc)
		return rc;
	struct kvsfs_file *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->f.ops = n->val.ops;
	if (render(v, (int)n->val.t0, &f->text, &f->len)) {
		free(f);
		return -ENOMEM;
	}
	*direct_io = 1; /* each open reads its own snapshot */
	*out = &f->f;
	return 0;
}

static ssize_t file_read(struct vfs *v, struct vfs_file *vf, char *buf, size_t size, off_t off)
{
	struct kvsfs_file *f = (struct kvsfs_file *)vf;
	(void)v;
	if (off < 0 || (uint64_t)off >= f->len)
		return 0;
	if ((uint64_t)off + size > f->len)
		size = f->len - (size_t)off;
	memcpy(buf, f->text + off, size);
	return (ssize_t)size;
}

static void file_release(struct vfs *v, struct vfs_file *vf)
{
	struct kvsfs_file *f = (struct kvsfs_file *)vf;
	(void)v;
	free(f->text);
	free(f);
}

const struct node_ops node_kvsfs_dir_ops = {
	.kind = ".kvsfs",
	.lookup = dir_lookup,
	.list = dir_list,
	.getattr = dir_getattr,
};

const struct node_ops node_kvsfs_file_ops = {
	.kind = ".kvsfs file",
	.getattr = file_getattr,
	.open = file_open,
	.read = file_read,
	.release = file_release,
};
