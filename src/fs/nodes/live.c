/*
 * live: the playlists of a stream, /STREAM/live.m3u8 (HLS) and /STREAM/live.mpd (DASH)
 * (docs/SEMANTICS.md, "Live playlists"). The playback sessions and their documents belong to
 * the live module (include/kvsfs/live.h: single flight on its own thread, bounded waits); this
 * file maps the two files on it and keeps each stream's two sessions in its vstream (made on
 * first use, under the vstream's lock, which live_session_new never blocks under).
 *
 * What a request waits for: a stat at most ~2 s (LIVE_STAT), a readdirplus entry never (it only
 * starts the session, LIVE_LISTING), a plain listing not even that (it shows the type only). While
 * there is no current document the size is a placeholder with attribute timeout 0, so the next
 * stat asks again. An open gets the current document (or the creation's errno) and reads it with
 * direct_io: each open reads the document it got, whatever the kernel cached.
 *
 * It also maps the range playlists clips/START-END.m3u8 and .mpd (docs/CLIPS.md, "Playlists"):
 * the node keeps the range (t0, t1); an open gets the document of the range's ON_DEMAND session
 * (live_range_open); a stat makes nothing and shows size 0; reads are the same.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nodes.h"
#include "../core/streams.h"
#include "kvsfs/kvs.h"
#include "kvsfs/live.h"

struct live_file {
	struct vfs_file f;          /* first: the core's view */
	struct live_doc *doc;       /* a reference */
};

static int is_dash(const struct node_ref *n)
{
	return n->val.ops == &node_live_dash_ops;
}

/* The playback session of n's stream and kind; NULL: out of memory. */
static struct live_session *session_of(struct vfs *v, const struct node_ref *n)
{
	struct vstream *s = n->val.stream;
	pthread_mutex_lock(&s->lock);
	struct live_session **p = is_dash(n) ? &s->dash : &s->hls;
	if (!*p)
		*p = live_session_new(v->live, s->name, is_dash(n));
	struct live_session *ls = *p;
	pthread_mutex_unlock(&s->lock);
	return ls;
}

static int live_getattr(struct vfs *v, const struct node_ref *n, enum attr_use use,
			struct vfs_attr *a)
{
	struct live_info li = { 0 };
	if (use == ATTR_ENTRY) {
		/* a plain listing makes no playback session */
		memset(a, 0, sizeof(*a));
		a->mode = S_IFREG;
		return 0;
	}
	struct live_session *ls = session_of(v, n);
	if (ls)
		live_stat(ls, use == ATTR_STAT ? LIVE_STAT : LIVE_LISTING, &li);
	vfs_attr_init(v, n->ino, a);
	a->mode = S_IFREG | ((v->c.live_public ? 0444 : 0400) & ~v->c.umask);
	a->size = li.size;
	a->mtime_ms = li.mtime_ms ? li.mtime_ms : v->mount_ms;
	a->timeout = li.exact ? 1 : 0;
	return 0;
}

/* The document an open of n reads: the stream's live session (live.m3u8/.mpd) or a session
 * made for the range (clips/START-END.m3u8/.mpd). */
static int doc_of(struct vfs *v, const struct node_ref *n, struct live_doc **doc)
{
	if (n->val.ops == &node_clip_m3u8_ops || n->val.ops == &node_clip_mpd_ops) {
		struct kvs_range r = { (enum kvs_ts_type)v->c.ts, n->val.t0, n->val.t1 };
		return live_range_open(v->live, n->val.stream->name,
				       n->val.ops == &node_clip_mpd_ops, &r, doc);
	}
	struct live_session *ls = session_of(v, n);
	return ls ? live_open(ls, doc) : -ENOMEM;
}

static int live_file_open(struct vfs *v, const struct node_ref *n, int flags,
			  struct vfs_file **out, int *direct_io, int *keep_cache)
{
	int rc = vfs_open_flags_ro(flags);
	(void)keep_cache;
	if (rc)
		return rc;
	struct live_file *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->f.ops = n->val.ops;
	rc = doc_of(v, n, &f->doc);
	if (rc) {
		free(f);
		return rc;
	}
	*direct_io = 1; /* each open reads the document it got, whatever the kernel cached */
	*out = &f->f;
	return 0;
}

static ssize_t live_read(struct vfs *v, struct vfs_file *vf, char *buf, size_t size, off_t off)
{
	struct live_file *f = (struct live_file *)vf;
	(void)v;
	if ((uint64_t)off >= f->doc->len)
		return 0;
	if ((uint64_t)off + size > f->doc->len)
		size = (size_t)(f->doc->len - (uint64_t)off);
	memcpy(buf, f->doc->data + off, size);
	return (ssize_t)size;
}

static void live_release(struct vfs *v, struct vfs_file *vf)
{
	struct live_file *f = (struct live_file *)vf;
	(void)v;
	live_doc_unref(f->doc);
	free(f);
}

/* clips/START-END.m3u8 and .mpd: made on open, so a stat shows size 0 (read with direct_io). */
static int range_getattr(struct vfs *v, const struct node_ref *n, enum attr_use use,
			 struct vfs_attr *a)
{
	(void)use;
	vfs_attr_init(v, n->ino, a);
	/* the URLs carry the session token: 0400 unless live_public, like live.m3u8 */
	a->mode = S_IFREG | ((v->c.live_public ? 0444 : 0400) & ~v->c.umask);
	a->size = 0;
	a->mtime_ms = n->val.t0;
	a->timeout = 0;
	return 0;
}

/* The live kinds differ only by name (and by which session of the stream they use); the range
 * playlists by how they stat and open. */
#define PLAYLIST_OPS(name, getattr_fn, open_fn) {       \
	.kind = name,                                   \
	.getattr = getattr_fn,                          \
	.open = open_fn,                                \
	.read = live_read,                              \
	.release = live_release,                        \
	.getxattr = node_stream_getxattr,               \
	.listxattr = node_stream_listxattr,             \
}
const struct node_ops node_live_hls_ops = PLAYLIST_OPS("live.m3u8", live_getattr, live_file_open);
const struct node_ops node_live_dash_ops = PLAYLIST_OPS("live.mpd", live_getattr, live_file_open);
const struct node_ops node_clip_m3u8_ops = PLAYLIST_OPS("clip-m3u8", range_getattr, live_file_open);
const struct node_ops node_clip_mpd_ops = PLAYLIST_OPS("clip-mpd", range_getattr, live_file_open);
