/*
 * vfs: the core of kvsfs's filesystem logic (see include/kvsfs/vfs.h, docs/SEMANTICS.md,
 * docs/SIZES.md, docs/ARCHITECTURE.md).
 *
 * The core is small on purpose: it owns the inode table (core/inodes.c) and the lifetimes of
 * nodes, and dispatches every public vfs_* call to the operations table of the node's kind
 * (core/vfs_int.h); it never asks which kind a node is. The kinds live in src/fs/nodes/ (one
 * file each, listed in nodes/nodes.h). Beside the core, each with its own lock:
 *   core/streams.c   the stream registry (ListStreams, single flight) and retention windows;
 *   core/hours.c     the hour-listing cache (ListFragments, single flight per stream and hour);
 *   core/sizes.c     the fragment-size model;
 *   fetch, live      fragment downloads and the live playback sessions (src/fs/).
 *
 * Lifetimes: a node is made by lookup (or a readdirplus snapshot) with one kernel reference and
 * freed when forget drops its last one; the root (VFS_ROOT_INO) lives until vfs_free. Kinds get
 * copies of nodes (struct node_ref), never pointers into the table, so a node forgotten while a
 * request runs is harmless. Open files own their data (pins, descriptors, documents) and
 * outlive their nodes. Streams (struct vstream) live until vfs_free.
 *
 * Locking: no lock of the core is held across a network call, a disk write or a call into a
 * kind; waiting for a listing another thread is making happens on its single-flight entry.
 */
#include "kvsfs/vfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvsfs/clk.h"
#include "kvsfs/export.h"
#include "hours.h"
#include "kvsfs/imgcache.h"
#include "inodes.h"
#include "sizes.h"
#include "streams.h"
#include "vfs_int.h"
#include "../nodes/nodes.h"
#include "kvsfs/fetch.h"
#include "kvsfs/live.h"
#include "kvsfs/log.h"

/* ---------------------------------------------------------------- helpers for the kinds */

int vfs_node(struct vfs *v, uint64_t ino, struct node_ref *out)
{
	return inodes_get(v->inodes, ino, out);
}

void vfs_attr_init(const struct vfs *v, uint64_t ino, struct vfs_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = ino;
	a->uid = v->c.uid;
	a->gid = v->c.gid;
	a->nlink = 1;
	a->timeout = v->c.meta_ttl_s;
}

void vfs_attr_dir(const struct vfs *v, uint64_t ino, int64_t mtime_ms, struct vfs_attr *a)
{
	vfs_attr_init(v, ino, a);
	a->mode = S_IFDIR | (0555 & ~v->c.umask);
	a->nlink = 2;
	a->mtime_ms = mtime_ms;
}

int vfs_open_flags_ro(int flags)
{
	if ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_APPEND | O_CREAT)))
		return -EROFS;
	return 0;
}

ssize_t vfs_pread_file(struct vfs *v, int fd, uint64_t file_size, char *buf, size_t size,
		       off_t off, const char *what)
{
	if ((uint64_t)off >= file_size)
		return 0;
	if ((uint64_t)off + size > file_size)
		size = (size_t)(file_size - (uint64_t)off);
	size_t done = 0;
	while (done < size) {
		ssize_t r = pread(fd, buf + done, size - done, off + (off_t)done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			LOG_ERROR(v->c.log, "vfs", "reading %s failed: %s", what, strerror(errno));
			return -EIO;
		}
		if (r == 0) {
			LOG_ERROR(v->c.log, "vfs", "%s is shorter than recorded", what);
			return -EIO;
		}
		done += (size_t)r;
	}
	return (ssize_t)done;
}

ssize_t vfs_xattr_value(const char *val, char *buf, size_t size)
{
	size_t len = strlen(val);
	if (size == 0)
		return (ssize_t)len;
	if (size < len)
		return -ERANGE;
	memcpy(buf, val, len);
	return (ssize_t)len;
}

ssize_t vfs_xattr_list(const char *const *names, size_t n, char *buf, size_t size)
{
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += strlen(names[i]) + 1;
	if (size == 0)
		return (ssize_t)len;
	if (size < len)
		return -ERANGE;
	char *p = buf;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(names[i]) + 1;
		memcpy(p, names[i], l);
		p += l;
	}
	return (ssize_t)len;
}

/* ---------------------------------------------------------------- lookups and attributes */

static int lookup(struct vfs *v, uint64_t parent, const char *name, enum attr_use use,
		  struct vfs_attr *a)
{
	struct node_ref p, c;
	struct lookup_res r;
	int rc = vfs_node(v, parent, &p);
	if (rc)
		return rc;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return -ENOENT; /* the kernel resolves these itself */
	if (strlen(name) > 255)
		return -ENAMETOOLONG;
	if (!p.val.ops->lookup)
		return -ENOTDIR;
	memset(&r, 0, sizeof(r));
	if ((rc = p.val.ops->lookup(v, &p, name, &r)) != 0)
		return rc;
	if ((rc = inodes_ref(v->inodes, parent, name, &r.val, r.replace, 1, &c)) != 0)
		return rc;
	if (r.have_attr) {
		*a = r.attr;
		a->ino = c.ino;
		return 0;
	}
	rc = c.val.ops->getattr(v, &c, use, a);
	if (rc)
		inodes_forget(v->inodes, c.ino, 1);
	return rc;
}

int vfs_lookup(struct vfs *v, uint64_t parent, const char *name, struct vfs_attr *a)
{
	return lookup(v, parent, name, ATTR_STAT, a);
}

int vfs_lookup_listed(struct vfs *v, uint64_t parent, const char *name, struct vfs_attr *a)
{
	return lookup(v, parent, name, ATTR_LISTED, a);
}

void vfs_forget(struct vfs *v, uint64_t ino, uint64_t n)
{
	if (ino != VFS_ROOT_INO)
		inodes_forget(v->inodes, ino, n);
}

int vfs_getattr(struct vfs *v, uint64_t ino, struct vfs_attr *a)
{
	struct node_ref n;
	int rc = vfs_node(v, ino, &n);
	return rc ? rc : n.val.ops->getattr(v, &n, ATTR_STAT, a);
}

/* ---------------------------------------------------------------- directories */

struct dir_builder {
	struct vfs *v;
	struct vfs_dir *d;
	uint64_t parent;
	int with_nodes;
	size_t cap;
};

/* The next entry of b's listing, zeroed, with a copy of name (not counted yet). NULL: no
 * memory. */
static struct vfs_dirent *dir_slot(struct dir_builder *b, const char *name)
{
	struct vfs_dir *d = b->d;
	if (d->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		struct vfs_dirent *nv = realloc(d->v, cap * sizeof(*nv));
		if (!nv)
			return NULL;
		d->v = nv;
		b->cap = cap;
	}
	struct vfs_dirent *e = &d->v[d->n];
	memset(e, 0, sizeof(*e));
	return (e->name = strdup(name)) ? e : NULL;
}

int vfs_dir_add(struct dir_builder *b, const char *name, const struct node_val *proto)
{
	struct vfs_dirent *e = dir_slot(b, name);
	if (!e)
		return -ENOMEM;
	struct node_ref n = { 0, b->parent, *proto };
	int rc = 0;
	if (b->with_nodes)
		rc = inodes_ref(b->v->inodes, b->parent, name, proto, 0, 1, &n);
	if (rc == 0) {
		rc = n.val.ops->getattr(b->v, &n, b->with_nodes ? ATTR_LISTED : ATTR_ENTRY, &e->attr);
		if (rc && n.ino)
			inodes_forget(b->v->inodes, n.ino, 1);
	}
	if (rc) {
		free(e->name);
		return rc;
	}
	e->attr.ino = n.ino;
	b->d->n++;
	return 0;
}

int vfs_dir_add_attr(struct dir_builder *b, const char *name, const struct vfs_attr *a)
{
	struct vfs_dirent *e = dir_slot(b, name);
	if (!e)
		return -ENOMEM;
	e->attr = *a;
	e->attr.ino = 0;
	b->d->n++;
	return 0;
}

int vfs_opendir(struct vfs *v, uint64_t ino, int with_nodes, struct vfs_dir **out)
{
	struct node_ref p;
	int rc = vfs_node(v, ino, &p);
	if (rc)
		return rc;
	if (!p.val.ops->list)
		return -ENOTDIR;
	struct vfs_dir *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->ino = ino;
	struct dir_builder b = { v, d, ino, with_nodes, 0 };
	rc = p.val.ops->list(v, &p, &b);
	if (rc) {
		for (size_t i = 0; i < d->n; i++)
			vfs_dir_unref(v, &d->v[i]);
		vfs_dir_free(d);
		return rc;
	}
	*out = d;
	return 0;
}

void vfs_dir_unref(struct vfs *v, const struct vfs_dirent *e)
{
	if (e->attr.ino)
		vfs_forget(v, e->attr.ino, 1);
}

void vfs_dir_free(struct vfs_dir *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i].name);
	free(d->v);
	free(d);
}

/* ---------------------------------------------------------------- files */

int vfs_open(struct vfs *v, uint64_t ino, int flags, struct vfs_file **out, int *direct_io,
	     int *keep_cache)
{
	struct node_ref n;
	int rc = vfs_node(v, ino, &n);
	if (rc)
		return rc;
	*direct_io = 0;
	*keep_cache = 0;
	if (!n.val.ops->open)
		return -EISDIR;
	return n.val.ops->open(v, &n, flags, out, direct_io, keep_cache);
}

int vfs_file_flushes(const struct vfs_file *f)
{
	return f->ops->flush != NULL;
}

ssize_t vfs_read(struct vfs *v, struct vfs_file *f, char *buf, size_t size, off_t off)
{
	if (off < 0)
		return -EINVAL;
	return f->ops->read(v, f, buf, size, off);
}

void vfs_release(struct vfs *v, struct vfs_file *f)
{
	if (f)
		f->ops->release(v, f);
}

void vfs_abandon(struct vfs *v, struct vfs_file *f)
{
	if (!f)
		return;
	if (f->ops->abandon)
		f->ops->abandon(v, f);
	else
		f->ops->release(v, f);
}

ssize_t vfs_write(struct vfs *v, struct vfs_file *f, const char *buf, size_t size, off_t off)
{
	return f->ops->write ? f->ops->write(v, f, buf, size, off) : -EROFS;
}

int vfs_flush(struct vfs *v, struct vfs_file *f)
{
	return f->ops->flush ? f->ops->flush(v, f) : 0;
}

int vfs_fsync(struct vfs *v, struct vfs_file *f)
{
	return f->ops->fsync ? f->ops->fsync(v, f) : 0;
}

int vfs_fsyncdir(struct vfs *v, uint64_t ino)
{
	(void)ino;
	return v->c.export ? export_sync_all(v->c.export) : 0;
}

/* ---------------------------------------------------------------- namespace writes */

int vfs_make_special(struct vfs *v, uint64_t parent)
{
	struct node_ref p;
	int rc = vfs_node(v, parent, &p);
	if (rc)
		return rc;
	return p.val.ops->make_special ? p.val.ops->make_special(v, &p) : -EROFS;
}

int vfs_create(struct vfs *v, uint64_t parent, const char *name, mode_t mode, int flags,
	       struct vfs_attr *a, struct vfs_file **out)
{
	struct node_ref p;
	int rc = vfs_node(v, parent, &p);
	if (rc)
		return rc;
	return p.val.ops->create ? p.val.ops->create(v, &p, name, mode, flags, a, out) : -EROFS;
}

int vfs_mkdir(struct vfs *v, uint64_t parent, const char *name, mode_t mode, struct vfs_attr *a)
{
	struct node_ref p;
	int rc = vfs_node(v, parent, &p);
	if (rc)
		return rc;
	return p.val.ops->mkdir ? p.val.ops->mkdir(v, &p, name, mode, a) : -EROFS;
}

int vfs_unlink(struct vfs *v, uint64_t parent, const char *name)
{
	struct node_ref p;
	int rc = vfs_node(v, parent, &p);
	if (rc)
		return rc;
	return p.val.ops->unlink ? p.val.ops->unlink(v, &p, name) : -EROFS;
}

int vfs_rmdir(struct vfs *v, uint64_t parent, const char *name)
{
	struct node_ref p;
	int rc = vfs_node(v, parent, &p);
	if (rc)
		return rc;
	return p.val.ops->rmdir ? p.val.ops->rmdir(v, &p, name) : -EROFS;
}

int vfs_rename(struct vfs *v, uint64_t parent, const char *name, uint64_t newparent,
	       const char *newname, unsigned int flags)
{
	struct node_ref p;
	int rc = vfs_node(v, parent, &p);
	if (rc)
		return rc;
	if (!p.val.ops->rename)
		return -EROFS;
	return p.val.ops->rename(v, &p, name, newparent, newname, flags);
}

int vfs_setattr(struct vfs *v, uint64_t ino, int mask, mode_t mode, uid_t uid, gid_t gid,
		uint64_t size, int64_t mtime_ms, struct vfs_file *f, struct vfs_attr *a)
{
	struct node_ref n;
	int rc = vfs_node(v, ino, &n);
	if (rc)
		return rc;
	if (!n.val.ops->setattr)
		return -EROFS;
	return n.val.ops->setattr(v, &n, mask, mode, uid, gid, size, mtime_ms, f, a);
}

/* ---------------------------------------------------------------- extended attributes */

ssize_t vfs_getxattr(struct vfs *v, uint64_t ino, const char *name, char *buf, size_t size)
{
	struct node_ref n;
	int rc = vfs_node(v, ino, &n);
	if (rc)
		return rc;
	return n.val.ops->getxattr ? n.val.ops->getxattr(v, &n, name, buf, size) : -ENODATA;
}

int vfs_setxattr(struct vfs *v, uint64_t ino)
{
	struct node_ref n;
	int rc = vfs_node(v, ino, &n);
	if (rc)
		return rc;
	return n.val.ops->setxattr ? n.val.ops->setxattr(v, &n) : -EROFS;
}

int vfs_setxattr_value(struct vfs *v, uint64_t ino, const char *name, const char *value,
		       size_t size)
{
	struct node_ref n;
	int rc = vfs_node(v, ino, &n);
	if (rc)
		return rc;
	if (n.val.ops->setxattr_value)
		return n.val.ops->setxattr_value(v, &n, name, value, size);
	return n.val.ops->setxattr ? n.val.ops->setxattr(v, &n) : -EROFS;
}

ssize_t vfs_listxattr(struct vfs *v, uint64_t ino, char *buf, size_t size)
{
	struct node_ref n;
	int rc = vfs_node(v, ino, &n);
	if (rc)
		return rc;
	if (!n.val.ops->listxattr)
		return vfs_xattr_list(NULL, 0, buf, size);
	return n.val.ops->listxattr(v, &n, buf, size);
}

/* ---------------------------------------------------------------- life cycle */

/* Called by the fetcher for every stored fragment (any thread). */
static void on_learned(void *arg, const char *stream, const char *number, uint64_t size)
{
	struct vfs *v = arg;
	sizes_record(v->c.sizes, stream, number, size);
}

struct hour_key {
	const struct vstream *s;
	int64_t hour_ms;
};

static int is_hour(const struct node_val *val, const void *arg)
{
	const struct hour_key *k = arg;
	return val->ops == &node_hour_ops && val->stream == k->s && val->t0 == k->hour_ms;
}

/* An hour listing left the cache: the kernel drops the hour folder's entry and, when unused,
 * the nodes below it, so the inode table shrinks with the listings (docs/SEMANTICS.md). */
static void on_hour_dropped(void *arg, const struct vstream *s, int64_t hour_ms)
{
	struct vfs *v = arg;
	struct hour_key k = { s, hour_ms };
	uint64_t *inos;
	size_t n;
	if (!v->c.invalidate_entry)
		return;
	inodes_select(v->inodes, is_hour, &k, &inos, &n);
	for (size_t i = 0; i < n; i++) {
		struct node_ref ref;
		char name[8];
		if (vfs_node(v, inos[i], &ref) != 0)
			continue;
		snprintf(name, sizeof(name), "%02d", (int)((hour_ms % NAMES_MS_PER_DAY) / NAMES_MS_PER_HOUR));
		v->c.invalidate_entry(v->c.invalidate_arg, ref.parent, name);
	}
	free(inos);
}

/* Makes the core's parts for v->c; 0 or -ENOMEM (vfs_free undoes a partial start). */
static int parts_new(struct vfs *v)
{
	const struct vfs_config *c = &v->c;
	struct streams_opts so = {
		.kvs = c->kvs, .log = c->log, .allow = c->streams, .prefix = c->stream_prefix,
		.meta_ttl_s = c->meta_ttl_s,
	};
	if (streams_new(&so, &v->streams))
		return -ENOMEM;
	struct hours_opts ho = {
		.kvs = c->kvs, .streams = v->streams, .log = c->log, .ts = (enum kvs_ts_type)c->ts,
		.meta_ttl_s = c->meta_ttl_s, .past_ttl_s = c->past_ttl_s,
		.max_bytes = (uint64_t)(c->meta_cache_mb > 0 ? c->meta_cache_mb : 16) << 20,
		.dropped = on_hour_dropped, .dropped_arg = v,
	};
	struct fetch_opts fo = {
		.kvs = c->kvs, .cache = c->cache, .log = c->log, .metrics = c->metrics,
		.batch_max = VFS_READAHEAD_MAX,
		.batch_bytes = 256ull << 20,
		.max_parallel = 5, /* KVS: 5 GetMediaForFragmentList connections per stream */
		.learned = on_learned, .learned_arg = v,
	};
	struct live_opts lo = { .kvs = c->kvs, .log = c->log, .expires_s = c->hls_expires_s };
	struct imgcache_opts io = {
		.kvs = c->kvs, .cache = c->cache, .log = c->log, .ts = (enum kvs_ts_type)c->ts,
		.interval_s = c->image_interval_s > 0 ? c->image_interval_s : 60,
		.width = c->image_width > 0 ? c->image_width : 320,
		.meta_ttl_s = c->meta_ttl_s, .past_ttl_s = c->past_ttl_s,
	};
	if (imgcache_new(&io, &v->images))
		return -ENOMEM;
	struct node_val root = { .ops = &node_root_ops };
	if (hours_new(&ho, &v->hours) || inodes_new(&v->inodes) || live_set_new(&lo, &v->live) ||
	    fetch_new(&fo, &v->fetch) || inodes_ref(v->inodes, 0, "/", &root, 0, 1, NULL))
		return -ENOMEM;
	return 0;
}

int vfs_new(const struct vfs_config *cfg, struct vfs **out, char *err, size_t errlen)
{
	struct vfs *v = calloc(1, sizeof(*v));
	if (!v) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	v->c = *cfg;
	if (v->c.meta_ttl_s <= 0)
		v->c.meta_ttl_s = 5;
	if (v->c.past_ttl_s <= 0)
		v->c.past_ttl_s = 3600;
	if (v->c.hls_expires_s < 300 || v->c.hls_expires_s > 43200)
		v->c.hls_expires_s = 3600;
	v->mount_ms = clk_wall_ms();
	if (parts_new(v)) {
		vfs_free(v);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	*out = v;
	return 0;
}

int vfs_check(struct vfs *v, char *err, size_t errlen)
{
	return streams_check(v->streams, err, errlen);
}

void vfs_free(struct vfs *v)
{
	if (!v)
		return;
	live_set_free(v->live); /* waits for sessions being made */
	fetch_free(v->fetch);
	inodes_free(v->inodes);
	hours_free(v->hours);
	imgcache_free(v->images);
	streams_free(v->streams);
	free(v);
}
