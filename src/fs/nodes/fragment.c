/*
 * fragment: one fragment file, /STREAM/fragments/DAY/HH/NAME.mkv (docs/SEMANTICS.md,
 * docs/SIZES.md).
 *
 * The node keeps the fragment's ListFragments metadata, its hour (t0) and its start on the
 * mount's basis (t1, the mtime). Its size is exact once a download confirmed it (attribute
 * timeout: an hour), else predicted (core/sizes.c; timeout meta_ttl). An open makes sure the
 * fragment is in the disk cache (fetch: one GetMediaForFragmentList carrying read-ahead) and
 * pins it; reads are preads of the cached file. When the download shows the prediction was
 * wrong, the stream's correction is learned, the kernel's cached sizes are invalidated and the
 * open reads with direct_io, so a reader always gets exactly the fragment's bytes.
 *
 * Read-ahead: the fragments that follow in the hour (what cp -r, rsync and cat * read next).
 * Each recently read hour of a stream has a slot (struct vstream_ra, VSTREAM_RA_SLOTS per stream,
 * LRU, under the vstream's lock) with the last opened index and the range [first, next) already
 * asked for. An open inside that range whose fragment is cached or on the way asks for nothing
 * (no scan, no allocation: the "prefetched up to" mark); once a forward reader is within half a
 * window of the mark, the next window is asked for in the background. An open outside it starts
 * a batch: VFS_READAHEAD_MAX fragments (one GetMediaForFragmentList of 1,000) when the hour was
 * listed by readdir and the open is of its first fragments (cp -r, rsync, tar, find -exec cat),
 * the window x4 (up to that maximum) for a reader moving forward one or two fragments at a time,
 * else `readahead` fragments (a random reader: one small batch). Sequential readers also get the
 * following window in the background at once, so the pipeline stays full. Parallel readers of
 * different hours keep their own slots; the quotas are kept by the KVS client's pacer and
 * fetch's per-stream batch slots.
 *
 * Extended attributes: user.kvs.fragment_number, producer_timestamp, server_timestamp,
 * duration_ms, kvs_size and stream.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nodes.h"
#include "kvsfs/clk.h"
#include "../core/hours.h"
#include "../core/inodes.h"
#include "../core/sizes.h"
#include "../core/streams.h"
#include "kvsfs/fcache.h"
#include "kvsfs/fetch.h"
#include "kvsfs/log.h"

struct fragment_file {
	struct vfs_file f;          /* first: the core's view */
	int fd;                     /* the cached file */
	uint64_t size;
	struct fcache_pin *pin;
	struct kvs_fragment frag;
};

static int fragment_getattr(struct vfs *v, const struct node_ref *n, enum attr_use use,
			    struct vfs_attr *a)
{
	int exact;
	(void)use;
	vfs_attr_init(v, n->ino, a);
	a->mode = S_IFREG | (0444 & ~v->c.umask);
	a->size = sizes_of(v->c.sizes, n->val.stream, &n->val.frag, &exact);
	a->mtime_ms = n->val.t1;
	/* a size confirmed by a download never changes; a predicted one may be corrected */
	a->timeout = exact ? VFS_IMMUTABLE_TIMEOUT : v->c.meta_ttl_s;
	return 0;
}

/* ---------------------------------------------------------------- read-ahead */

/* What an open asks for: [fg_from, fg_to) with its own fragment (the batch it waits for), then
 * [bg_from, bg_to) in the background; indexes of the hour's listing. */
struct ra_plan {
	long fg_from, fg_to;
	long bg_from, bg_to;
};

/* Plans the read-ahead of an open of fragment i (have: it is cached or on the way) of an hour of
 * n fragments, and moves the stream's marks (see the top comment). */
static void ra_step(struct vfs *v, struct vstream *s, int64_t hour_ms, long i, long n, int have,
		    struct ra_plan *p)
{
	long base = v->c.readahead > 0 ? v->c.readahead : 8, max = VFS_READAHEAD_MAX;
	if (base > max)
		base = max;
	*p = (struct ra_plan){ i, i + 1, 0, 0 };
	pthread_mutex_lock(&s->lock);
	struct vstream_ra *r = streams_ra(s, hour_ms);
	int forward = i > r->last && i <= r->last + 2;
	long w = (long)r->window;
	int fresh = 0;
	if (have && i >= r->first && i < r->next) {
		/* covered by an earlier batch: extend in the background when half the window is read */
		if (forward && r->next < n && r->next - i <= w / 2) {
			w = w * 4 > max ? max : w * 4;
			p->bg_from = r->next;
			p->bg_to = r->next + w;
		}
	} else {
		if (forward && w > 0)
			w = w * 4 > max ? max : w * 4;   /* x4: a batch streams in order */
		else if (r->listed && i <= 1)
			w = max;   /* the folder was listed and is read from its start: cp -r, rsync, tar */
		else
			w = base;  /* a random reader: one small batch */
		p->fg_to = i + w;
		r->first = i;
		fresh = 1;
		if (forward || w == max) {
			/* a sequential reader: keep the pipeline full with the batch after this one */
			p->bg_from = i + w;
			p->bg_to = i + 2 * w;
		}
	}
	if (p->fg_to > n)
		p->fg_to = n;
	if (p->bg_to > n)
		p->bg_to = n;
	if (p->bg_to > p->bg_from)
		r->next = p->bg_to;
	else if (fresh)
		r->next = p->fg_to;   /* a new batch without a background one */
	r->window = (size_t)w;
	r->last = i;
	r->tick = ++s->ra_tick;
	pthread_mutex_unlock(&s->lock);
}

/* Items [from, to) of listing h that are still in the retention, into items/numbers (room for
 * to - from). Returns how many. */
static size_t ra_items(const struct hour_listing *h, struct vstream *s, long from, long to,
		       struct fetch_item *items, char (*numbers)[129])
{
	size_t k = 0;
	int64_t now = clk_wall_ms();
	for (long i = from; i < to; i++) {
		if (streams_expired(s, &h->v[i].frag, now))
			continue;
		memcpy(numbers[k], h->v[i].frag.number, sizeof(numbers[k]));
		items[k].number = numbers[k];
		items[k].kvs_size = h->v[i].frag.size;
		k++;
	}
	return k;
}

/* Downloads (or finds) n in the disk cache, with read-ahead; fills f's fd, size and pin. An
 * open inside the range already asked for costs no scan and no allocation. */
static int fetch_with_readahead(struct vfs *v, const struct node_ref *n, struct fragment_file *f)
{
	struct fetch_item want = { n->val.frag.number, n->val.frag.size };
	const char *stream = n->val.stream->name;
	struct hour_listing *h = NULL;
	struct ra_plan p = { 0, 0, 0, 0 };
	long i = -1;
	if (hours_get(v->hours, n->val.stream, n->val.t0, &h) == 0)
		i = hours_index(h, n->val.t1, n->val.frag.number);
	if (i >= 0)
		ra_step(v, n->val.stream, n->val.t0, i, (long)h->n,
			fetch_has(v->fetch, stream, want.number), &p);
	size_t room = (size_t)(p.fg_to - p.fg_from - 1 > 0 ? p.fg_to - p.fg_from - 1 : 0) +
		      (size_t)(p.bg_to - p.bg_from > 0 ? p.bg_to - p.bg_from : 0);
	struct fetch_item *items = room ? calloc(room, sizeof(*items)) : NULL;
	char (*numbers)[129] = room ? calloc(room, sizeof(*numbers)) : NULL;
	size_t nfg = 0, nbg = 0;
	if (items && numbers) {
		nfg = ra_items(h, n->val.stream, p.fg_from + 1, p.fg_to, items, numbers);
		if (p.bg_to > p.bg_from)
			nbg = ra_items(h, n->val.stream, p.bg_from, p.bg_to, items + nfg, numbers + nfg);
	}
	hours_unref(h);
	int rc = fetch_fragment(v->fetch, stream, &want, items, nfg, &f->fd, &f->size, &f->pin);
	if (rc == 0 && nbg > 0)
		fetch_prefetch(v->fetch, stream, items + nfg, nbg, 1);
	free(items);
	free(numbers);
	return rc;
}

/* ---------------------------------------------------------------- size corrections */

static int is_fragment_of(const struct node_val *val, const void *stream)
{
	return val->ops == &node_fragment_ops && val->stream == stream;
}

/* After a new size correction: the kernel may hold predicted sizes of the stream's fragments.
 * Invalidates them at once (except except_ino, the inode being opened, which is queued). */
static void invalidate_stream_fragments(struct vfs *v, struct vstream *s, uint64_t except_ino)
{
	uint64_t *inos;
	size_t n;
	if (!v->c.invalidate || !v->c.invalidate_now)
		return;
	inodes_select(v->inodes, is_fragment_of, s, &inos, &n);
	for (size_t i = 0; i < n; i++) {
		if (inos[i] == except_ino)
			v->c.invalidate(v->c.invalidate_arg, inos[i]);
		else
			v->c.invalidate_now(v->c.invalidate_arg, inos[i]);
	}
	free(inos);
}

/* The download showed true_size where stat said reported: learns it (docs/SIZES.md). */
static void size_mismatch(struct vfs *v, const struct node_ref *n, uint64_t reported,
			  uint64_t true_size)
{
	struct vstream *s = n->val.stream;
	if (sizes_learn(s, &n->val.frag, true_size)) {
		LOG_INFO(v->c.log, "vfs", "%s fragment %s: size predicted %llu, true %llu; "
			 "learned (later sizes of this stream are corrected)", s->name,
			 n->val.frag.number, (unsigned long long)reported,
			 (unsigned long long)true_size);
		invalidate_stream_fragments(v, s, n->ino);
	} else if (v->c.invalidate) {
		v->c.invalidate(v->c.invalidate_arg, n->ino);
	}
}

/* ---------------------------------------------------------------- open files */

static int fragment_open(struct vfs *v, const struct node_ref *n, int flags,
			 struct vfs_file **out, int *direct_io, int *keep_cache)
{
	int exact, rc = vfs_open_flags_ro(flags);
	if (rc)
		return rc;
	struct fragment_file *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->f.ops = &node_fragment_ops;
	f->fd = -1;
	uint64_t reported = sizes_of(v->c.sizes, n->val.stream, &n->val.frag, &exact);
	if ((rc = fetch_with_readahead(v, n, f)) != 0) {
		free(f);
		return rc;
	}
	if (f->size != reported) {
		/* the fetcher records true sizes after waking readers: record it before stat sees it */
		sizes_record(v->c.sizes, n->val.stream->name, n->val.frag.number, f->size);
		size_mismatch(v, n, reported, f->size);
		*direct_io = 1;
	} else {
		*keep_cache = 1;
	}
	f->frag = n->val.frag;
	*out = &f->f;
	return 0;
}

static ssize_t fragment_read(struct vfs *v, struct vfs_file *vf, char *buf, size_t size, off_t off)
{
	struct fragment_file *f = (struct fragment_file *)vf;
	char what[160];
	snprintf(what, sizeof(what), "cached fragment %s", f->frag.number);
	return vfs_pread_file(v, f->fd, f->size, buf, size, off, what);
}

static void fragment_release(struct vfs *v, struct vfs_file *vf)
{
	struct fragment_file *f = (struct fragment_file *)vf;
	if (f->fd >= 0)
		close(f->fd);
	if (f->pin)
		fcache_unpin(v->c.cache, f->pin);
	free(f);
}

/* ---------------------------------------------------------------- extended attributes */

enum { XA_NUMBER, XA_PRODUCER, XA_SERVER, XA_DURATION, XA_SIZE, XA_STREAM, XA_COUNT };

static const char *const fragment_xattrs[XA_COUNT] = {
	"user.kvs.fragment_number", "user.kvs.producer_timestamp", "user.kvs.server_timestamp",
	"user.kvs.duration_ms", "user.kvs.kvs_size", "user.kvs.stream",
};

static void fmt_seconds(int64_t ms, char *out, size_t n)
{
	snprintf(out, n, "%lld.%03lld", (long long)(ms / 1000), (long long)(ms % 1000));
}

static ssize_t fragment_getxattr(struct vfs *v, const struct node_ref *n, const char *name,
				 char *buf, size_t size)
{
	const struct kvs_fragment *fr = &n->val.frag;
	char val[256];
	size_t i = 0;
	while (i < XA_COUNT && strcmp(name, fragment_xattrs[i]) != 0)
		i++;
	if (!n->val.stream || i == XA_COUNT)
		return -ENODATA;
	switch (i) {
	case XA_NUMBER:
		snprintf(val, sizeof(val), "%s", fr->number);
		break;
	case XA_PRODUCER:
		fmt_seconds(fr->producer_ms, val, sizeof(val));
		break;
	case XA_SERVER:
		fmt_seconds(fr->server_ms, val, sizeof(val));
		break;
	case XA_DURATION:
		snprintf(val, sizeof(val), "%lld", (long long)fr->duration_ms);
		break;
	case XA_SIZE:
		snprintf(val, sizeof(val), "%lld", (long long)fr->size);
		break;
	default: /* XA_STREAM */
		return node_stream_getxattr(v, n, name, buf, size);
	}
	return vfs_xattr_value(val, buf, size);
}

static ssize_t fragment_listxattr(struct vfs *v, const struct node_ref *n, char *buf, size_t size)
{
	(void)v;
	return vfs_xattr_list(fragment_xattrs, n->val.stream ? XA_COUNT : 0, buf, size);
}

const struct node_ops node_fragment_ops = {
	.kind = "fragment",
	.getattr = fragment_getattr,
	.open = fragment_open,
	.read = fragment_read,
	.release = fragment_release,
	.getxattr = fragment_getxattr,
	.listxattr = fragment_listxattr,
};
