/*
 * fragments: the time folders of a stream, /STREAM/fragments/DAY/HH/ (docs/SEMANTICS.md).
 *
 *   fragments/   one DAY folder (YYYY-MM-DD, UTC) per day the retention window covers
 *   DAY/         one HH folder per UTC hour of that day inside the window
 *   HH/          one file per fragment starting in that hour (nodes/fragment.c)
 * Day and hour folders are computed from the stream's retention (core/streams.c), never
 * stored and never asked of the service; an hour's files come from its cached listing
 * (core/hours.c). Fragments that left the retention are hidden even from a cached listing.
 * Every folder carries user.kvs.stream; fragments/ has the stream's creation time as mtime, a
 * day or hour folder its start. The day and hour helpers (node_days_*, node_hours_*) serve
 * images/ too (nodes/images.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>

#include "nodes.h"
#include "kvsfs/clk.h"
#include "../core/hours.h"
#include "../core/streams.h"
#include "kvsfs/names.h"

/* ---------------------------------------------------------------- the time folders */

int node_days_lookup(const struct node_ref *dir, const char *name, const struct node_ops *day_ops,
		     struct lookup_res *r)
{
	int64_t day;
	if (names_parse_day(name, &day) || !streams_day_in_window(dir->val.stream, day, clk_wall_ms()))
		return -ENOENT;
	r->val.ops = day_ops;
	r->val.stream = dir->val.stream;
	r->val.t0 = day;
	return 0;
}

int node_days_list(const struct node_ref *dir, const struct node_ops *day_ops,
		   struct dir_builder *b)
{
	int64_t from, to;
	int rc = 0;
	streams_window(dir->val.stream, clk_wall_ms(), &from, &to);
	if (from > to)
		return 0;
	for (int64_t day = from - from % NAMES_MS_PER_DAY; day <= to && rc == 0;
	     day += NAMES_MS_PER_DAY) {
		char name[NAMES_DAY_LEN];
		if (names_format_day(day, name))
			continue;
		struct node_val proto = { .ops = day_ops, .stream = dir->val.stream, .t0 = day };
		rc = vfs_dir_add(b, name, &proto);
	}
	return rc;
}

int node_hours_lookup(const struct node_ref *dir, const char *name,
		      const struct node_ops *hour_ops, struct lookup_res *r)
{
	int h;
	if (names_parse_hour(name, &h))
		return -ENOENT;
	int64_t hour = dir->val.t0 + h * NAMES_MS_PER_HOUR;
	if (!streams_hour_in_window(dir->val.stream, hour, clk_wall_ms()))
		return -ENOENT;
	r->val.ops = hour_ops;
	r->val.stream = dir->val.stream;
	r->val.t0 = hour;
	return 0;
}

int node_hours_list(const struct node_ref *dir, const struct node_ops *hour_ops,
		    struct dir_builder *b)
{
	int rc = 0;
	int64_t now = clk_wall_ms();
	for (int h = 0; h < 24 && rc == 0; h++) {
		int64_t hour = dir->val.t0 + h * NAMES_MS_PER_HOUR;
		if (!streams_hour_in_window(dir->val.stream, hour, now))
			continue;
		char name[4];
		snprintf(name, sizeof(name), "%02d", h);
		struct node_val proto = { .ops = hour_ops, .stream = dir->val.stream, .t0 = hour };
		rc = vfs_dir_add(b, name, &proto);
	}
	return rc;
}

int node_period_getattr(struct vfs *v, const struct node_ref *n, enum attr_use use,
			struct vfs_attr *a)
{
	(void)use;
	vfs_attr_dir(v, n->ino, n->val.t0, a);
	return 0;
}

/* ---------------------------------------------------------------- fragments/ */

static int fragments_lookup(struct vfs *v, const struct node_ref *dir, const char *name,
			    struct lookup_res *r)
{
	(void)v;
	return node_days_lookup(dir, name, &node_day_ops, r);
}

static int fragments_list(struct vfs *v, const struct node_ref *dir, struct dir_builder *b)
{
	(void)v;
	return node_days_list(dir, &node_day_ops, b);
}

const struct node_ops node_fragments_ops = {
	.kind = "fragments",
	.lookup = fragments_lookup,
	.list = fragments_list,
	.getattr = node_stream_dir_getattr,
	.getxattr = node_stream_getxattr,
	.listxattr = node_stream_listxattr,
};

/* ---------------------------------------------------------------- DAY/ and HH/ */

static int day_lookup(struct vfs *v, const struct node_ref *dir, const char *name,
		      struct lookup_res *r)
{
	(void)v;
	return node_hours_lookup(dir, name, &node_hour_ops, r);
}

static int day_list(struct vfs *v, const struct node_ref *dir, struct dir_builder *b)
{
	(void)v;
	return node_hours_list(dir, &node_hour_ops, b);
}

const struct node_ops node_day_ops = {
	.kind = "day",
	.lookup = day_lookup,
	.list = day_list,
	.getattr = node_period_getattr,
	.getxattr = node_stream_getxattr,
	.listxattr = node_stream_listxattr,
};

/* The value of the fragment node for entry e of the hour folder dir. */
static void fragment_val(const struct node_ref *dir, const struct hour_entry *e,
			 struct node_val *out)
{
	out->ops = &node_fragment_ops;
	out->stream = dir->val.stream;
	out->t0 = dir->val.t0;
	out->t1 = e->ts;
	out->frag = e->frag;
}

static int hour_lookup(struct vfs *v, const struct node_ref *dir, const char *name,
		       struct lookup_res *r)
{
	struct hour_listing *h;
	int64_t ts, now = clk_wall_ms();
	const char *num;
	size_t nlen;
	if (names_parse_fragment(name, &ts, &num, &nlen) || ts < dir->val.t0 ||
	    ts >= dir->val.t0 + NAMES_MS_PER_HOUR)
		return -ENOENT;
	int rc = hours_get(v->hours, dir->val.stream, dir->val.t0, &h);
	if (rc)
		return rc;
	long i = hours_find(h, name);
	if (i >= 0 && streams_expired(dir->val.stream, &h->v[i].frag, now))
		i = -1;
	if (i >= 0)
		fragment_val(dir, &h->v[i], &r->val);
	hours_unref(h);
	return i >= 0 ? 0 : -ENOENT;
}

static int hour_list(struct vfs *v, const struct node_ref *dir, struct dir_builder *b)
{
	struct hour_listing *h;
	int64_t now = clk_wall_ms();
	int rc = hours_get(v->hours, dir->val.stream, dir->val.t0, &h);
	if (rc)
		return rc;
	/* a reader that lists the folder first (cp -r, rsync, tar) gets the large window */
	pthread_mutex_lock(&dir->val.stream->lock);
	streams_ra(dir->val.stream, dir->val.t0)->listed = 1;
	pthread_mutex_unlock(&dir->val.stream->lock);
	for (size_t i = 0; rc == 0 && i < h->n; i++) {
		if (streams_expired(dir->val.stream, &h->v[i].frag, now))
			continue;
		struct node_val proto = { 0 };
		fragment_val(dir, &h->v[i], &proto);
		rc = vfs_dir_add(b, h->v[i].name, &proto);
	}
	hours_unref(h);
	return rc;
}

const struct node_ops node_hour_ops = {
	.kind = "hour",
	.lookup = hour_lookup,
	.list = hour_list,
	.getattr = node_period_getattr,
	.getxattr = node_stream_getxattr,
	.listxattr = node_stream_listxattr,
};
