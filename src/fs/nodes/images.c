/*
 * images: the thumbnails of a stream, /STREAM/images/DAY/HH/YYYYMMDDTHHMMSSZ.jpg
 * (docs/SEMANTICS.md, "images/").
 *
 *   images/      one DAY folder (YYYY-MM-DD, UTC) per day the retention window covers
 *   DAY/         one HH folder per UTC hour of that day inside the window
 *   HH/          one JPEG per image_interval slot of the hour that has media (src/fs/imgcache.c)
 * Day and hour folders are computed from the stream's retention by the helpers of fragments/
 * (nodes/fragments.c), never asked of the service. Listing an hour, or looking a name up in it, fills
 * the hour: every image is fetched into the disk cache, so each file's size is exact before any
 * stat (the cost is written in SEMANTICS.md). The fill skips the requests whose time no fragment
 * covers (the hour listings of core/hours.c: ListFragments, shared with fragments/), so an hour
 * without media costs no GetImages call. Nothing here runs for fragments/.
 *
 * An image node keeps its hour (t0), its slot (t1, the mtime), its size and KVS timestamp as
 * listed (frag.size, frag.producer_ms; frag.number is unused). A stat answers from the cached
 * listing when there is one (the size a later fill found), else from the node; no stat calls
 * the service. An open pins the cached JPEG; one evicted from the disk cache meanwhile is asked
 * of GetImages again, alone (imgcache_fetch_one); a size that differs from what stat said invalidates the kernel's attributes
 * and the open reads with direct_io, so a reader always gets exactly the image's bytes.
 *
 * Extended attributes: user.kvs.timestamp (the image's KVS timestamp, seconds), the stream, and
 * user.kvs.fragment_number when a fragment of the hour's listing (core/hours.c) holds that time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nodes.h"
#include "kvsfs/array.h"
#include "kvsfs/clk.h"
#include "kvsfs/imgcache.h"
#include "kvsfs/log.h"
#include "kvsfs/names.h"
#include "../core/hours.h"
#include "../core/streams.h"

/* ---------------------------------------------------------------- images/ and DAY/ */

static int images_lookup(struct vfs *v, const struct node_ref *dir, const char *name,
			 struct lookup_res *r)
{
	(void)v;
	return node_days_lookup(dir, name, &node_img_day_ops, r);
}

static int images_list(struct vfs *v, const struct node_ref *dir, struct dir_builder *b)
{
	(void)v;
	return node_days_list(dir, &node_img_day_ops, b);
}

const struct node_ops node_images_ops = {
	.kind = "images",
	.lookup = images_lookup,
	.list = images_list,
	.getattr = node_stream_dir_getattr,
	.getxattr = node_stream_getxattr,
	.listxattr = node_stream_listxattr,
};

static int img_day_lookup(struct vfs *v, const struct node_ref *dir, const char *name,
			  struct lookup_res *r)
{
	(void)v;
	return node_hours_lookup(dir, name, &node_img_hour_ops, r);
}

static int img_day_list(struct vfs *v, const struct node_ref *dir, struct dir_builder *b)
{
	(void)v;
	return node_hours_list(dir, &node_img_hour_ops, b);
}

const struct node_ops node_img_day_ops = {
	.kind = "img_day",
	.lookup = img_day_lookup,
	.list = img_day_list,
	.getattr = node_period_getattr,
	.getxattr = node_stream_getxattr,
	.listxattr = node_stream_listxattr,
};

/* ---------------------------------------------------------------- HH/ */

struct media_arg {
	struct vfs *v;
	struct vstream *s;
};

/* Appends the spans of the fragments of l that may hold time in [from, to) (2 s of margin,
 * 10 s for a fragment of unknown length). Returns 0 or -ENOMEM. */
static int add_spans(const struct hour_listing *l, int64_t from, int64_t to,
		     struct img_span **sp, size_t *n, size_t *cap)
{
	for (size_t i = 0; i < l->n; i++) {
		int64_t dur = l->v[i].frag.duration_ms > 0 ? l->v[i].frag.duration_ms : 10000;
		struct img_span s = { l->v[i].ts - 2000, l->v[i].ts + dur + 2000 };
		if (s.to <= from || s.from >= to)
			continue;
		struct img_span *nv = array_grow(*sp, *n, cap, sizeof(*nv), 64);
		if (!nv)
			return -ENOMEM;
		*sp = nv;
		(*sp)[(*n)++] = s;
	}
	return 0;
}

/* imgcache_media_fn: the fragments of the hour and of the one before it (core/hours.c, one
 * ListFragments each, cached as for fragments/). */
static int hour_media(void *arg, int64_t hour_ms, struct img_span **sp, size_t *n)
{
	struct media_arg *a = arg;
	size_t cap = 0;
	int rc = 0;
	*sp = NULL;
	*n = 0;
	for (int k = 1; k >= 0 && rc == 0; k--) {
		struct hour_listing *l;
		int64_t h = hour_ms - k * NAMES_MS_PER_HOUR;
		if (k && !streams_hour_in_window(a->s, h, clk_wall_ms()))
			continue;
		rc = hours_get(a->v->hours, a->s, h, &l);
		if (rc == 0) {
			rc = add_spans(l, hour_ms, hour_ms + NAMES_MS_PER_HOUR, sp, n, &cap);
			hours_unref(l);
		}
	}
	return rc;
}

/* The hour's listing (a fill when it is not cached and fresh). */
static int hour_images(struct vfs *v, const struct node_ref *dir, struct img_hour **out)
{
	int64_t from, to;
	struct vstream *s = dir->val.stream;
	struct media_arg ma = { v, s };
	streams_window(s, clk_wall_ms(), &from, &to);
	int rc = imgcache_get(v->images, s->name, dir->val.t0, from, to, hour_media, &ma, out);
	if (rc == -ENOENT && !streams_gone(v->streams, s)) {
		/* a "not found" for a stream that exists: the folder is not gone, its fill failed */
		LOG_ERROR(v->c.log, "vfs", "%s: images of an hour: GetImages said not found, but the "
			  "stream exists; the hour folder fails with EIO", s->name);
		return -EIO;
	}
	return rc;
}

static void image_val(const struct node_ref *dir, const struct img_entry *e, struct node_val *out)
{
	*out = (struct node_val){ .ops = &node_image_ops, .stream = dir->val.stream,
				  .t0 = dir->val.t0, .t1 = e->ts };
	out->frag.size = (int64_t)e->size;
	out->frag.producer_ms = e->kvs_ts;
}

static int img_hour_lookup(struct vfs *v, const struct node_ref *dir, const char *name,
			   struct lookup_res *r)
{
	struct img_hour *h;
	int64_t ts;
	if (imgcache_parse_name(name, &ts) || ts < dir->val.t0 || ts >= dir->val.t0 + NAMES_MS_PER_HOUR)
		return -ENOENT;
	int rc = hour_images(v, dir, &h);
	if (rc)
		return rc;
	long i = imgcache_find(h, ts);
	if (i >= 0)
		image_val(dir, &h->v[i], &r->val);
	imgcache_unref(h);
	return i >= 0 ? 0 : -ENOENT;
}

static int img_hour_list(struct vfs *v, const struct node_ref *dir, struct dir_builder *b)
{
	struct img_hour *h;
	int rc = hour_images(v, dir, &h);
	if (rc)
		return rc;
	for (size_t i = 0; rc == 0 && i < h->n; i++) {
		char name[IMGCACHE_NAME_LEN];
		struct node_val proto;
		image_val(dir, &h->v[i], &proto);
		if (imgcache_format_name(h->v[i].ts, name) == 0)
			rc = vfs_dir_add(b, name, &proto);
	}
	imgcache_unref(h);
	return rc;
}

const struct node_ops node_img_hour_ops = {
	.kind = "img_hour",
	.lookup = img_hour_lookup,
	.list = img_hour_list,
	.getattr = node_period_getattr,
	.getxattr = node_stream_getxattr,
	.listxattr = node_stream_listxattr,
};

/* ---------------------------------------------------------------- an image */

struct image_file {
	struct vfs_file f;              /* first: the core's view */
	int fd;
	uint64_t size;
	struct fcache_pin *pin;
	int64_t ts;
};

/* The size stat shows: the cached listing's (a later fill's), else the node's. */
static uint64_t image_size(struct vfs *v, const struct node_ref *n)
{
	uint64_t size = (uint64_t)n->val.frag.size;
	struct img_hour *h = imgcache_peek(v->images, n->val.stream->name, n->val.t0);
	long i = h ? imgcache_find(h, n->val.t1) : -1;
	if (i >= 0)
		size = h->v[i].size;
	imgcache_unref(h);
	return size;
}

static int image_getattr(struct vfs *v, const struct node_ref *n, enum attr_use use,
			 struct vfs_attr *a)
{
	(void)use;
	vfs_attr_init(v, n->ino, a);
	a->mode = S_IFREG | (0444 & ~v->c.umask);
	a->size = image_size(v, n);
	a->mtime_ms = n->val.t1;
	return 0;
}

/* Opens the cached JPEG of n; one evicted from the disk cache is fetched again, alone. */
static int image_fetch(struct vfs *v, const struct node_ref *n, struct image_file *f)
{
	const char *stream = n->val.stream->name;
	int rc = imgcache_open(v->images, stream, n->val.t1, &f->fd, &f->size, &f->pin);
	if (rc == -ENOENT)
		rc = imgcache_fetch_one(v->images, stream, n->val.t0, n->val.t1, &f->fd, &f->size,
					&f->pin);
	return rc;
}

static int image_open(struct vfs *v, const struct node_ref *n, int flags, struct vfs_file **out,
		      int *direct_io, int *keep_cache)
{
	int rc = vfs_open_flags_ro(flags);
	if (rc)
		return rc;
	struct image_file *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->f.ops = &node_image_ops;
	f->fd = -1;
	f->ts = n->val.t1;
	uint64_t reported = image_size(v, n);
	if ((rc = image_fetch(v, n, f)) != 0) {
		free(f);
		return rc;
	}
	if (f->size != reported) {
		LOG_INFO(v->c.log, "vfs", "%s image %lld: size listed %llu, now %llu (fetched again); "
			 "the kernel's attributes are invalidated", n->val.stream->name,
			 (long long)n->val.t1, (unsigned long long)reported,
			 (unsigned long long)f->size);
		if (v->c.invalidate)
			v->c.invalidate(v->c.invalidate_arg, n->ino);
		*direct_io = 1;
	} else {
		*keep_cache = 1;
	}
	*out = &f->f;
	return 0;
}

static ssize_t image_read(struct vfs *v, struct vfs_file *vf, char *buf, size_t size, off_t off)
{
	struct image_file *f = (struct image_file *)vf;
	char what[80];
	snprintf(what, sizeof(what), "cached image %lld", (long long)f->ts);
	return vfs_pread_file(v, f->fd, f->size, buf, size, off, what);
}

static void image_release(struct vfs *v, struct vfs_file *vf)
{
	struct image_file *f = (struct image_file *)vf;
	if (f->fd >= 0)
		close(f->fd);
	if (f->pin)
		imgcache_unpin(v->images, f->pin);
	free(f);
}

/* ---------------------------------------------------------------- extended attributes */

enum { XI_TIMESTAMP, XI_STREAM, XI_FRAGMENT, XI_COUNT };

static const char *const image_xattrs[XI_COUNT] = {
	"user.kvs.timestamp", "user.kvs.stream", "user.kvs.fragment_number",
};

/* The number of the fragment of the hour's listing that holds time ts on the mount's basis
 * (0 and out), or -ENODATA. */
static int source_fragment(struct vfs *v, const struct node_ref *n, int64_t ts, char *out,
			   size_t len)
{
	struct hour_listing *h;
	if (hours_get(v->hours, n->val.stream, n->val.t0, &h))
		return -ENODATA;
	int rc = -ENODATA;
	for (size_t i = 0; i < h->n && rc; i++) {
		int64_t start = h->v[i].ts, dur = h->v[i].frag.duration_ms;
		if (start <= ts && ts < start + (dur > 0 ? dur : 1)) {
			snprintf(out, len, "%s", h->v[i].frag.number);
			rc = 0;
		}
	}
	hours_unref(h);
	return rc;
}

static ssize_t image_getxattr(struct vfs *v, const struct node_ref *n, const char *name,
			      char *buf, size_t size)
{
	char val[160];
	int64_t ts = n->val.frag.producer_ms;
	if (strcmp(name, image_xattrs[XI_TIMESTAMP]) == 0)
		snprintf(val, sizeof(val), "%lld.%03lld", (long long)(ts / 1000),
			 (long long)(ts % 1000));
	else if (strcmp(name, image_xattrs[XI_FRAGMENT]) == 0) {
		int rc = source_fragment(v, n, ts, val, sizeof(val));
		if (rc)
			return rc;
	} else
		return node_stream_getxattr(v, n, name, buf, size);
	return vfs_xattr_value(val, buf, size);
}

static ssize_t image_listxattr(struct vfs *v, const struct node_ref *n, char *buf, size_t size)
{
	char num[160];
	int known = source_fragment(v, n, n->val.frag.producer_ms, num, sizeof(num)) == 0;
	return vfs_xattr_list(image_xattrs, known ? XI_COUNT : XI_FRAGMENT, buf, size);
}

const struct node_ops node_image_ops = {
	.kind = "image",
	.getattr = image_getattr,
	.open = image_open,
	.read = image_read,
	.release = image_release,
	.getxattr = image_getxattr,
	.listxattr = image_listxattr,
};
