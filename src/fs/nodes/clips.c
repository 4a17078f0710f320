/*
 * clips: the clips folder of a stream, /STREAM/clips/, and its files START-END.mp4 and
 * START-END.mkv (docs/CLIPS.md). The clips themselves are made by the clips module
 * (include/kvsfs/clips.h: GetClip parts joined and cached for .mp4, the fragments written as one
 * Matroska file for .mkv; single flight per clip); this file only maps the tree on it.
 *
 * The folder lists the clips already made (a listing never calls GetClip). Looking a name up
 * checks it strictly (a malformed name, END before START or a span over 24 h is refused with one
 * warning) and makes the clip, so its size is exact from the first stat; a stat of a clip the
 * cache evicted makes it again. An open makes (if needed) and pins the clip in one step, so it
 * cannot vanish between being made and being read; cached pages stay valid (a clip's bytes never
 * change). The node keeps the range: t0 = START, t1 = END. Every node carries user.kvs.stream.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nodes.h"
#include "../core/streams.h"
#include "kvsfs/clips.h"
#include "kvsfs/log.h"
#include "kvsfs/names.h"

/* The kind of a clip node (its ops table tells). */
static enum clips_kind kind_of(const struct node_ref *n)
{
	return n->val.ops == &node_clip_mkv_ops ? CLIPS_MKV : CLIPS_MP4;
}

/* Makes the clip (or shares its generation); size exact. */
static int make(struct vfs *v, enum clips_kind kind, const char *stream, const char *name,
		int64_t start, int64_t end, uint64_t *size)
{
	if (kind == CLIPS_MKV)
		return clips_make_mkv(v->c.clips, v->fetch, stream, name, start, end, size);
	return clips_make(v->c.clips, stream, name, start, end, size);
}

struct clip_file {
	struct vfs_file f;          /* first: the core's view */
	int fd;
	uint64_t size;
	struct fcache_pin *pin;     /* the clips module's */
	char name[64];
};

/* ---------------------------------------------------------------- clips/ */

static int clips_lookup(struct vfs *v, const struct node_ref *dir, const char *name,
			struct lookup_res *r)
{
	int64_t start, end;
	char canon[64];
	uint64_t size;
	enum clips_kind kind;
	const char *stream = dir->val.stream->name;
	int rc = clips_parse_kind(name, &start, &end, &kind);
	if (rc) {
		LOG_WARN(v->c.log, "vfs", "%s: clip name '%.80s' refused: %s", stream, name,
			 rc == -EINVAL ? "END is before START" : rc == -EFBIG ?
			 "the range is longer than 24 hours" :
			 "not START-END.mp4, .mkv, .m3u8 or .mpd in UTC basic ISO 8601");
		return rc;
	}
	if (kind == CLIPS_M3U8 || kind == CLIPS_MPD) {
		/* a playlist (nodes/live.c): its session is made on open */
		r->val.ops = kind == CLIPS_MPD ? &node_clip_mpd_ops : &node_clip_m3u8_ops;
		r->val.stream = dir->val.stream;
		r->val.t0 = start;
		r->val.t1 = end;
		return 0;
	}
	if (clips_format(start, end, kind, canon))
		return -ENOENT;
	/* the first stat or open of a clip makes it */
	if (clips_cached_size(v->c.clips, stream, canon, &size) != 0) {
		rc = make(v, kind, stream, canon, start, end, &size);
		if (rc)
			return rc;
	}
	r->val.ops = kind == CLIPS_MKV ? &node_clip_mkv_ops : &node_clip_ops;
	r->val.stream = dir->val.stream;
	r->val.t0 = start;
	r->val.t1 = end;
	return 0;
}

struct list_arg {
	struct dir_builder *b;
	struct vstream *stream;
};

/* clips_list callback: one entry per clip already made. */
static int list_one(void *arg, const char *name, uint64_t size)
{
	struct list_arg *la = arg;
	int64_t start, end;
	enum clips_kind kind;
	(void)size;
	if (clips_parse_kind(name, &start, &end, &kind) || kind == CLIPS_M3U8 || kind == CLIPS_MPD)
		return 0; /* playlists are not listed */
	struct node_val proto = { .ops = kind == CLIPS_MKV ? &node_clip_mkv_ops : &node_clip_ops,
				  .stream = la->stream, .t0 = start,
				  .t1 = end };
	return vfs_dir_add(la->b, name, &proto);
}

static int clips_dir_list(struct vfs *v, const struct node_ref *dir, struct dir_builder *b)
{
	struct list_arg la = { b, dir->val.stream };
	return clips_list(v->c.clips, dir->val.stream->name, list_one, &la);
}

const struct node_ops node_clips_ops = {
	.kind = "clips",
	.lookup = clips_lookup,
	.list = clips_dir_list,
	.getattr = node_stream_dir_getattr,
	.getxattr = node_stream_getxattr,
	.listxattr = node_stream_listxattr,
};

/* ---------------------------------------------------------------- START-END.mp4 */

static int clip_getattr(struct vfs *v, const struct node_ref *n, enum attr_use use,
			struct vfs_attr *a)
{
	char name[64];
	uint64_t size = 0;
	const char *stream = n->val.stream->name;
	(void)use;
	vfs_attr_init(v, n->ino, a);
	a->mode = S_IFREG | (0444 & ~v->c.umask);
	a->mtime_ms = n->val.t0;
	a->timeout = VFS_IMMUTABLE_TIMEOUT;
	/* exact size of the made clip; made again if the cache evicted it */
	if (clips_format(n->val.t0, n->val.t1, kind_of(n), name) == 0 &&
	    clips_cached_size(v->c.clips, stream, name, &size) != 0 &&
	    make(v, kind_of(n), stream, name, n->val.t0, n->val.t1, &size) != 0) {
		size = 0;
		a->timeout = 1;
	}
	a->size = size;
	return 0;
}

static int clip_open(struct vfs *v, const struct node_ref *n, int flags, struct vfs_file **out,
		     int *direct_io, int *keep_cache)
{
	const char *stream = n->val.stream->name;
	int rc = vfs_open_flags_ro(flags);
	(void)direct_io;
	if (rc)
		return rc;
	struct clip_file *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->f.ops = n->val.ops;
	f->fd = -1;
	if (clips_format(n->val.t0, n->val.t1, kind_of(n), f->name)) {
		free(f);
		return -ENOENT;
	}
	/* made (again, if evicted) and pinned in one step: it cannot vanish in between */
	rc = clips_open(v->c.clips, stream, f->name, &f->fd, &f->size, &f->pin);
	if (rc == -ENOENT && kind_of(n) == CLIPS_MKV)
		rc = clips_make_mkv_open(v->c.clips, v->fetch, stream, f->name, n->val.t0, n->val.t1,
					 &f->fd, &f->size, &f->pin);
	else if (rc == -ENOENT)
		rc = clips_make_open(v->c.clips, stream, f->name, n->val.t0, n->val.t1, &f->fd,
				     &f->size, &f->pin);
	if (rc) {
		free(f);
		return rc;
	}
	*keep_cache = 1;
	*out = &f->f;
	return 0;
}

static ssize_t clip_read(struct vfs *v, struct vfs_file *vf, char *buf, size_t size, off_t off)
{
	struct clip_file *f = (struct clip_file *)vf;
	char what[96];
	snprintf(what, sizeof(what), "cached clip %s", f->name);
	return vfs_pread_file(v, f->fd, f->size, buf, size, off, what);
}

static void clip_release(struct vfs *v, struct vfs_file *vf)
{
	struct clip_file *f = (struct clip_file *)vf;
	if (f->fd >= 0)
		close(f->fd);
	clips_unpin(v->c.clips, f->pin);
	free(f);
}

/* .mp4 and .mkv differ only by how a clip is made (kind_of: clips_make or clips_make_mkv). */
#define CLIP_OPS(name) {                                \
	.kind = name,                                   \
	.getattr = clip_getattr,                        \
	.open = clip_open,                              \
	.read = clip_read,                              \
	.release = clip_release,                        \
	.getxattr = node_stream_getxattr,               \
	.listxattr = node_stream_listxattr,             \
}
const struct node_ops node_clip_ops = CLIP_OPS("clip");
const struct node_ops node_clip_mkv_ops = CLIP_OPS("clip-mkv");
