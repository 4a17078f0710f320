/*
 * vfs: kvsfs's filesystem logic (see include/kvsfs/vfs.h, docs/SEMANTICS.md, docs/SIZES.md).
 *
 * Tree and node kinds:
 *   ROOT                      one STREAM directory per ACTIVE stream (ListStreams, cached meta_ttl)
 *   STREAM/                   FRAGMENTS, CLIPS, LIVE_HLS (live.m3u8), LIVE_DASH (live.mpd)
 *   FRAGMENTS/                one DAY per UTC day that the retention window covers
 *   DAY/                      one HOUR per UTC hour of that day inside the window
 *   HOUR/                     one FRAGMENT file per fragment starting in that hour
 * Directories and fragment names are computed, never stored: day and hour folders come from the
 * stream's retention (core/streams.c, no call), an hour's files from its cached listing
 * (core/hours.c: one single-flight ListFragments per stream and hour).
 *
 * Inode table: nodes live in two hash tables (by inode number, and by parent+name) under one
 * mutex. A node keeps what its kind needs (stream, time, fragment metadata), so every later
 * request on an inode is answered without a path walk. The kernel's lookup count decides when a
 * node is freed; streams (struct vstream) live until unmount.
 *
 * Sizes: core/sizes.c (exact from the size index, else predicted and corrected; docs/SIZES.md).
 * Every download is checked against the prediction; a wrong one is recorded, the kernel's
 * attributes are invalidated and that open reads with direct_io.
 *
 * Live playlists: the playback sessions and their documents belong to the live module
 * (include/kvsfs/live.h: single flight, a stat waits at most ~2 s, a listing never); a vstream
 * only keeps its two sessions, made on first use.
 */
#include "kvsfs/vfs.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kvsfs/awserr.h"
#include "kvsfs/buf.h"
#include "kvsfs/clips.h"
#include "kvsfs/export.h"
#include "kvsfs/fcache.h"
#include "kvsfs/fetch.h"
#include "kvsfs/json.h"
#include "kvsfs/live.h"
#include "kvsfs/log.h"
#include "kvsfs/names.h"
#include "kvsfs/sizeidx.h"

#include "core/clock.h"
#include "core/hours.h"
#include "core/sizes.h"
#include "core/streams.h"

enum kind {
	K_ROOT, K_STREAM, K_FRAGMENTS, K_DAY, K_HOUR, K_FRAGMENT, K_CLIPS, K_CLIP, K_LIVE_HLS,
	K_LIVE_DASH, K_EXPORT_DIR, K_EXPORT_FILE,
};

static int is_export(int kind)
{
	return kind == K_EXPORT_DIR || kind == K_EXPORT_FILE;
}

#define LIVE_HLS_NAME "live.m3u8"
#define LIVE_DASH_NAME "live.mpd"
#define FRAGMENTS_NAME "fragments"
#define CLIPS_NAME "clips"
#define IMMUTABLE_TIMEOUT 3600.0

struct node {
	uint64_t ino;
	uint64_t parent;
	char *name;
	enum kind kind;
	uint64_t nlookup;
	struct vstream *stream;        /* all but ROOT */
	int64_t t0;                    /* DAY, HOUR: start ms; CLIP: range start */
	int64_t ts;                    /* FRAGMENT: start on the mount's basis; CLIP: range end */
	struct kvs_fragment frag;      /* FRAGMENT */
	struct node *next_ino, *next_name;
};

struct vfs {
	struct vfs_config c;
	struct fetcher *fetch;
	pthread_mutex_t lock;          /* nodes */
	struct node **by_ino, **by_name;
	size_t nbuckets, nnodes;
	uint64_t next_ino;
	struct streams *streams;       /* the registry and retention windows */
	struct hours *hours;           /* the hour-listing cache */
	int64_t mount_ms;
	struct live_set *live;         /* the live.m3u8 / live.mpd sessions */
};

struct vfs_file {
	enum kind kind;
	int clip;                      /* the pin belongs to the clips module */
	struct export_file *xf;        /* EXPORT_FILE */
	int fd;                        /* FRAGMENT: cache file */
	uint64_t size;
	struct fcache_pin *pin;
	struct live_doc *doc;          /* LIVE */
	struct vstream *stream;
	struct kvs_fragment frag;
};

static int64_t now_ms(void)
{
	return vfs_wall_ms();
}

/* ---------------------------------------------------------------- node table */

static size_t hash_u64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return (size_t)x;
}

static size_t hash_name(uint64_t parent, const char *name)
{
	uint64_t h = 1469598103934665603ULL ^ parent;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return hash_u64(h);
}

static struct node *node_by_ino(struct vfs *v, uint64_t ino)
{
	for (struct node *n = v->by_ino[hash_u64(ino) & (v->nbuckets - 1)]; n; n = n->next_ino)
		if (n->ino == ino)
			return n;
	return NULL;
}

static struct node *node_by_name(struct vfs *v, uint64_t parent, const char *name)
{
	for (struct node *n = v->by_name[hash_name(parent, name) & (v->nbuckets - 1)]; n;
	     n = n->next_name)
		if (n->parent == parent && strcmp(n->name, name) == 0)
			return n;
	return NULL;
}

static void table_insert(struct vfs *v, struct node *n)
{
	size_t a = hash_u64(n->ino) & (v->nbuckets - 1);
	size_t b = hash_name(n->parent, n->name) & (v->nbuckets - 1);
	n->next_ino = v->by_ino[a];
	v->by_ino[a] = n;
	n->next_name = v->by_name[b];
	v->by_name[b] = n;
	v->nnodes++;
}

static void table_grow(struct vfs *v)
{
	if (v->nnodes < v->nbuckets)
		return;
	size_t nb = v->nbuckets * 2;
	struct node **bi = calloc(nb, sizeof(*bi)), **bn = calloc(nb, sizeof(*bn));
	if (!bi || !bn) {
		free(bi);
		free(bn);
		return; /* keep the smaller table: slower, still correct */
	}
	for (size_t i = 0; i < v->nbuckets; i++) {
		struct node *n = v->by_ino[i];
		while (n) {
			struct node *nx = n->next_ino;
			size_t a = hash_u64(n->ino) & (nb - 1);
			n->next_ino = bi[a];
			bi[a] = n;
			n = nx;
		}
		n = v->by_name[i];
		while (n) {
			struct node *nx = n->next_name;
			size_t b = hash_name(n->parent, n->name) & (nb - 1);
			n->next_name = bn[b];
			bn[b] = n;
			n = nx;
		}
	}
	free(v->by_ino);
	free(v->by_name);
	v->by_ino = bi;
	v->by_name = bn;
	v->nbuckets = nb;
}

static void table_remove(struct vfs *v, struct node *x)
{
	struct node **pp = &v->by_ino[hash_u64(x->ino) & (v->nbuckets - 1)];
	while (*pp && *pp != x)
		pp = &(*pp)->next_ino;
	if (*pp)
		*pp = x->next_ino;
	pp = &v->by_name[hash_name(x->parent, x->name) & (v->nbuckets - 1)];
	while (*pp && *pp != x)
		pp = &(*pp)->next_name;
	if (*pp)
		*pp = x->next_name;
	v->nnodes--;
}

/*
 * Under v->lock: returns the node (parent, name), creating it from proto when absent, and adds
 * refs kernel references. Returns NULL when out of memory.
 */
static struct node *node_get(struct vfs *v, uint64_t parent, const char *name,
			     const struct node *proto, uint64_t refs)
{
	struct node *n = node_by_name(v, parent, name);
	if (n) {
		if (n->kind == K_FRAGMENT && proto->kind == K_FRAGMENT)
			n->frag = proto->frag; /* refresh metadata (same number) */
		n->nlookup += refs;
		return n;
	}
	n = calloc(1, sizeof(*n));
	if (!n || !(n->name = strdup(name))) {
		free(n);
		return NULL;
	}
	n->ino = v->next_ino++;
	n->parent = parent;
	n->kind = proto->kind;
	n->stream = proto->stream;
	n->t0 = proto->t0;
	n->ts = proto->ts;
	n->frag = proto->frag;
	n->nlookup = refs;
	table_grow(v);
	table_insert(v, n);
	return n;
}

/* Copies the node of ino (under the lock) so callers can work without holding it. */
static int node_copy(struct vfs *v, uint64_t ino, struct node *out)
{
	pthread_mutex_lock(&v->lock);
	struct node *n = node_by_ino(v, ino);
	if (n) {
		*out = *n;
		out->name = NULL;
	}
	pthread_mutex_unlock(&v->lock);
	return n ? 0 : -ESTALE;
}

/* Called by the fetcher for every stored fragment (any thread). */
static void on_learned(void *arg, const char *stream, const char *number, uint64_t size)
{
	struct vfs *v = arg;
	sizes_record(v->c.sizes, stream, number, size);
}

/* ---------------------------------------------------------------- live playlists */

/* The playback session of s for live.m3u8 (dash 0) or live.mpd (1); NULL: out of memory. */
static struct live_session *live_of(struct vfs *v, struct vstream *s, int dash)
{
	pthread_mutex_lock(&s->lock);
	struct live_session **p = dash ? &s->dash : &s->hls;
	if (!*p)
		*p = live_session_new(v->live, s->name, dash);
	struct live_session *ls = *p;
	pthread_mutex_unlock(&s->lock);
	return ls;
}

/*
 * Attributes of a live file (n is LIVE_HLS or LIVE_DASH). A stat waits at most ~2 s for a
 * session being made, a listing not at all (see live.h); while there is no current document the
 * size is a placeholder with attribute timeout 0, so the next stat asks again (docs/SEMANTICS.md).
 */
static void live_attr(struct vfs *v, const struct node *n, enum live_wait w, struct vfs_attr *a)
{
	struct live_info li = { 0 };
	struct live_session *ls = live_of(v, n->stream, n->kind == K_LIVE_DASH);
	if (ls)
		live_stat(ls, w, &li);
	memset(a, 0, sizeof(*a));
	a->ino = n->ino;
	a->uid = v->c.uid;
	a->gid = v->c.gid;
	a->nlink = 1;
	a->mode = S_IFREG | ((v->c.live_public ? 0444 : 0400) & ~v->c.umask);
	a->size = li.size;
	a->mtime_ms = li.mtime_ms ? li.mtime_ms : v->mount_ms;
	a->timeout = li.exact ? 1 : 0;
}

/* ---------------------------------------------------------------- export/ (S3) */

#define XPATH_MAX 1024

/*
 * Path of an export node relative to the export root ("" for the root), from the node chain
 * (the kernel keeps a directory's inode while it holds entries below it). Returns 0, -ESTALE or
 * -ENAMETOOLONG.
 */
static int xpath(struct vfs *v, uint64_t ino, char *out, size_t n)
{
	const char *names[256];
	size_t k = 0, len = 0;
	int rc = 0;
	pthread_mutex_lock(&v->lock);
	struct node *x = node_by_ino(v, ino);
	while (x && is_export(x->kind) && x->parent != VFS_ROOT_INO) {
		if (k == 256) {
			rc = -ENAMETOOLONG;
			break;
		}
		names[k++] = x->name;
		x = node_by_ino(v, x->parent);
	}
	if (!rc && (!x || x->kind != K_EXPORT_DIR))
		rc = -ESTALE;
	out[0] = '\0';
	for (size_t i = k; rc == 0 && i-- > 0;) {
		size_t l = strlen(names[i]);
		if (len + l + 2 > n) {
			rc = -ENAMETOOLONG;
			break;
		}
		if (len)
			out[len++] = '/';
		memcpy(out + len, names[i], l);
		len += l;
		out[len] = '\0';
	}
	pthread_mutex_unlock(&v->lock);
	return rc;
}

/* Path of name inside the export directory parent. */
static int xchild(struct vfs *v, uint64_t parent, const char *name, char *out, size_t n)
{
	int rc = xpath(v, parent, out, n);
	if (rc)
		return rc;
	size_t len = strlen(out), l = strlen(name);
	if (len + l + 2 > n)
		return -ENAMETOOLONG;
	if (len)
		out[len++] = '/';
	memcpy(out + len, name, l + 1);
	return 0;
}

static void export_to_attr(struct vfs *v, const struct export_attr *xa, uint64_t ino,
			   struct vfs_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = ino;
	a->mode = (xa->is_dir ? S_IFDIR : S_IFREG) | (xa->mode & 07777);
	a->size = xa->is_dir ? 0 : xa->size;
	a->mtime_ms = xa->mtime_ms;
	a->nlink = xa->is_dir ? 2 : 1;
	a->uid = v->c.uid;
	a->gid = v->c.gid;
	a->timeout = 1; /* other S3 clients may change the bucket */
}

/* Creates (or finds) the node for an export entry and counts one kernel reference. */
static int export_node(struct vfs *v, uint64_t parent, const char *name, int is_dir,
		       struct vstream *none, uint64_t *ino)
{
	struct node proto;
	memset(&proto, 0, sizeof(proto));
	proto.kind = is_dir ? K_EXPORT_DIR : K_EXPORT_FILE;
	proto.stream = none;
	pthread_mutex_lock(&v->lock);
	struct node *n = node_get(v, parent, name, &proto, 1);
	if (n)
		n->kind = proto.kind; /* a file replaced by a folder of that name, or back */
	*ino = n ? n->ino : 0;
	pthread_mutex_unlock(&v->lock);
	return n ? 0 : -ENOMEM;
}

/* ---------------------------------------------------------------- attributes */

static void attr_fill(struct vfs *v, const struct node *n, struct vfs_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = n->ino;
	a->uid = v->c.uid;
	a->gid = v->c.gid;
	a->nlink = 1;
	a->timeout = v->c.meta_ttl_s;
	mode_t dirmode = S_IFDIR | (0555 & ~v->c.umask);
	switch (n->kind) {
	case K_ROOT:
		a->mode = dirmode;
		a->nlink = 2;
		a->mtime_ms = v->mount_ms;
		break;
	case K_STREAM:
	case K_FRAGMENTS:
	case K_CLIPS:
		a->mode = dirmode;
		a->nlink = 2;
		a->mtime_ms = n->stream->creation_ms;
		break;
	case K_DAY:
	case K_HOUR:
		a->mode = dirmode;
		a->nlink = 2;
		a->mtime_ms = n->t0;
		break;
	case K_FRAGMENT: {
		int exact;
		a->mode = S_IFREG | (0444 & ~v->c.umask);
		a->size = sizes_of(v->c.sizes, n->stream, &n->frag, &exact);
		a->mtime_ms = n->ts;
		/* a size confirmed by a download never changes; a predicted one may be corrected */
		a->timeout = exact ? IMMUTABLE_TIMEOUT : v->c.meta_ttl_s;
		break;
	}
	case K_EXPORT_DIR:
	case K_EXPORT_FILE:
		/* listing placeholder; real attributes come from vfs_getattr / vfs_lookup */
		a->mode = (n->kind == K_EXPORT_DIR ? S_IFDIR : S_IFREG) | (0755 & ~v->c.umask);
		a->mtime_ms = v->mount_ms;
		a->timeout = 1;
		break;
	case K_CLIP: {
		char name[64];
		uint64_t size = 0;
		a->mode = S_IFREG | (0444 & ~v->c.umask);
		a->mtime_ms = n->t0;
		a->timeout = IMMUTABLE_TIMEOUT;
		/* exact size of the made clip; made again if the cache evicted it */
		if (names_format_clip(n->t0, n->ts, name) == 0 &&
		    clips_cached_size(v->c.clips, n->stream->name, name, &size) != 0 &&
		    clips_make(v->c.clips, n->stream->name, name, n->t0, n->ts, &size) != 0) {
			size = 0;
			a->timeout = 1;
		}
		a->size = size;
		break;
	}
	case K_LIVE_HLS:
	case K_LIVE_DASH:
		live_attr(v, n, LIVE_STAT, a);
		break;
	}
}

/* ---------------------------------------------------------------- lookup */

/* Resolves (parent node p, name) into a prototype child. Returns 0 or a negative errno. */
static int resolve_child(struct vfs *v, const struct node *p, const char *name, struct node *c)
{
	int64_t now = now_ms();
	memset(c, 0, sizeof(*c));
	c->stream = p->stream;
	switch (p->kind) {
	case K_ROOT: {
		struct vstream *s;
		int err = streams_lookup(v->streams, name, &s);
		if (err)
			return err;
		c->kind = K_STREAM;
		c->stream = s;
		return 0;
	}
	case K_STREAM:
		if (!strcmp(name, FRAGMENTS_NAME))
			c->kind = K_FRAGMENTS;
		else if (!strcmp(name, CLIPS_NAME))
			c->kind = K_CLIPS;
		else if (!strcmp(name, LIVE_HLS_NAME))
			c->kind = K_LIVE_HLS;
		else if (!strcmp(name, LIVE_DASH_NAME))
			c->kind = K_LIVE_DASH;
		else
			return -ENOENT;
		return 0;
	case K_FRAGMENTS: {
		int64_t day;
		if (names_parse_day(name, &day) || !streams_day_in_window(p->stream, day, now))
			return -ENOENT;
		c->kind = K_DAY;
		c->t0 = day;
		return 0;
	}
	case K_DAY: {
		int h;
		if (names_parse_hour(name, &h))
			return -ENOENT;
		int64_t hour = p->t0 + h * NAMES_MS_PER_HOUR;
		if (!streams_hour_in_window(p->stream, hour, now))
			return -ENOENT;
		c->kind = K_HOUR;
		c->t0 = hour;
		return 0;
	}
	case K_HOUR: {
		struct hour_listing *h;
		int64_t ts;
		const char *num;
		size_t nlen;
		if (names_parse_fragment(name, &ts, &num, &nlen) || ts < p->t0 ||
		    ts >= p->t0 + NAMES_MS_PER_HOUR)
			return -ENOENT;
		int rc = hours_get(v->hours, p->stream, p->t0, &h);
		if (rc)
			return rc;
		long i = hours_find(h, name);
		if (i >= 0 && streams_expired(p->stream, &h->v[i].frag, now))
			i = -1;
		if (i >= 0) {
			c->kind = K_FRAGMENT;
			c->ts = h->v[i].ts;
			c->frag = h->v[i].frag;
		}
		hours_unref(h);
		return i >= 0 ? 0 : -ENOENT;
	}
	case K_CLIPS: {
		int64_t start, end;
		char canon[64];
		uint64_t size;
		int rc = clips_parse(name, &start, &end);
		if (rc) {
			LOG_WARN(v->c.log, "vfs", "%s: clip name '%.80s' refused: %s", p->stream->name, name,
				 rc == -EINVAL ? "END is before START" : rc == -EFBIG ?
				 "the range is longer than 24 hours" : "not START-END.mp4 in UTC basic ISO 8601");
			return rc;
		}
		if (names_format_clip(start, end, canon))
			return -ENOENT;
		/* the first stat or open of a clip makes it */
		if (clips_cached_size(v->c.clips, p->stream->name, canon, &size) != 0) {
			rc = clips_make(v->c.clips, p->stream->name, canon, start, end, &size);
			if (rc)
				return rc;
		}
		c->kind = K_CLIP;
		c->t0 = start;
		c->ts = end;
		return 0;
	}
	default:
		return -ENOTDIR;
	}
}

static int lookup(struct vfs *v, uint64_t parent, const char *name, int listing,
		  struct vfs_attr *a)
{
	struct node p, proto;
	int rc = node_copy(v, parent, &p);
	if (rc)
		return rc;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return -ENOENT; /* the kernel resolves these itself */
	if (strlen(name) > 255)
		return -ENAMETOOLONG;
	if (p.kind == K_EXPORT_DIR || (p.kind == K_ROOT && v->c.export && !strcmp(name, v->c.export_dir))) {
		char path[XPATH_MAX];
		struct export_attr xa;
		uint64_t ino;
		if (p.kind == K_ROOT)
			path[0] = '\0';
		else if ((rc = xchild(v, parent, name, path, sizeof(path))) != 0)
			return rc;
		rc = export_stat(v->c.export, path, &xa);
		if (rc)
			return rc;
		if (p.kind == K_ROOT)
			xa.is_dir = 1;
		rc = export_node(v, parent, name, xa.is_dir, NULL, &ino);
		if (rc)
			return rc;
		export_to_attr(v, &xa, ino, a);
		return 0;
	}
	rc = resolve_child(v, &p, name, &proto);
	if (rc)
		return rc;
	pthread_mutex_lock(&v->lock);
	struct node *n = node_get(v, parent, name, &proto, 1);
	struct node copy;
	if (n) {
		copy = *n;
		copy.name = NULL;
	}
	pthread_mutex_unlock(&v->lock);
	if (!n)
		return -ENOMEM;
	if (listing && (copy.kind == K_LIVE_HLS || copy.kind == K_LIVE_DASH))
		live_attr(v, &copy, LIVE_LISTING, a); /* readdirplus never waits for a session */
	else
		attr_fill(v, &copy, a);
	return 0;
}

int vfs_lookup(struct vfs *v, uint64_t parent, const char *name, struct vfs_attr *a)
{
	return lookup(v, parent, name, 0, a);
}

int vfs_lookup_listed(struct vfs *v, uint64_t parent, const char *name, struct vfs_attr *a)
{
	return lookup(v, parent, name, 1, a);
}

void vfs_forget(struct vfs *v, uint64_t ino, uint64_t nl)
{
	if (ino == VFS_ROOT_INO)
		return;
	pthread_mutex_lock(&v->lock);
	struct node *n = node_by_ino(v, ino);
	if (n) {
		n->nlookup = n->nlookup > nl ? n->nlookup - nl : 0;
		if (n->nlookup == 0) {
			table_remove(v, n);
			free(n->name);
			free(n);
		}
	}
	pthread_mutex_unlock(&v->lock);
}

int vfs_getattr(struct vfs *v, uint64_t ino, struct vfs_attr *a)
{
	struct node n;
	int rc = node_copy(v, ino, &n);
	if (rc)
		return rc;
	if (is_export(n.kind)) {
		char path[XPATH_MAX];
		struct export_attr xa;
		if ((rc = xpath(v, ino, path, sizeof(path))) != 0 ||
		    (rc = export_stat(v->c.export, path, &xa)) != 0)
			return rc;
		if (n.kind == K_EXPORT_DIR && n.parent == VFS_ROOT_INO)
			xa.is_dir = 1;
		export_to_attr(v, &xa, ino, a);
		return 0;
	}
	attr_fill(v, &n, a);
	return 0;
}

/* ---------------------------------------------------------------- directories */

struct dir_builder {
	struct vfs *v;
	struct vfs_dir *d;
	const struct node *parent;
	int with_nodes;
	size_t cap;
};

static int dir_add(struct dir_builder *b, const char *name, const struct node *proto)
{
	struct vfs_dir *d = b->d;
	if (d->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		struct vfs_dirent *nv = realloc(d->v, cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		d->v = nv;
		b->cap = cap;
	}
	struct vfs_dirent *e = &d->v[d->n];
	memset(e, 0, sizeof(*e));
	e->name = strdup(name);
	if (!e->name)
		return -ENOMEM;
	struct node tmp = *proto;
	tmp.ino = 0;
	if (b->with_nodes) {
		pthread_mutex_lock(&b->v->lock);
		struct node *n = node_get(b->v, b->parent->ino, name, proto, 1);
		if (n)
			tmp = *n;
		pthread_mutex_unlock(&b->v->lock);
		if (!n) {
			free(e->name);
			return -ENOMEM;
		}
	}
	tmp.name = NULL;
	if (tmp.kind == K_LIVE_HLS || tmp.kind == K_LIVE_DASH) {
		/* a plain listing makes no playback session; one with nodes starts it, no wait */
		e->attr.mode = S_IFREG;
		e->attr.ino = tmp.ino;
		if (b->with_nodes)
			live_attr(b->v, &tmp, LIVE_LISTING, &e->attr);
	} else {
		attr_fill(b->v, &tmp, &e->attr);
		e->attr.ino = tmp.ino;
	}
	d->n++;
	return 0;
}

struct export_list_arg {
	struct dir_builder *b;
	int rc;
};

/* export_list callback: one entry per object or common prefix. */
static int export_list_cb(void *arg, const char *name, const struct export_attr *xa)
{
	struct export_list_arg *xl = arg;
	struct vfs_dir *d = xl->b->d;
	if (d->n == xl->b->cap) {
		size_t cap = xl->b->cap ? xl->b->cap * 2 : 64;
		struct vfs_dirent *nv = realloc(d->v, cap * sizeof(*nv));
		if (!nv)
			return xl->rc = -ENOMEM;
		d->v = nv;
		xl->b->cap = cap;
	}
	struct vfs_dirent *e = &d->v[d->n];
	memset(e, 0, sizeof(*e));
	if (!(e->name = strdup(name)))
		return xl->rc = -ENOMEM;
	export_to_attr(xl->b->v, xa, 0, &e->attr);
	d->n++;
	return 0;
}

struct clip_list_arg {
	struct dir_builder *b;
	struct node *proto;
	int rc;
};

/* clips_list callback: one entry per clip already made (listing never starts GetClip). */
static int clip_list_cb(void *arg, const char *name, uint64_t size)
{
	struct clip_list_arg *la = arg;
	int64_t start, end;
	(void)size;
	if (clips_parse(name, &start, &end))
		return 0;
	la->proto->kind = K_CLIP;
	la->proto->t0 = start;
	la->proto->ts = end;
	la->rc = dir_add(la->b, name, la->proto);
	return la->rc;
}

int vfs_opendir(struct vfs *v, uint64_t ino, int with_nodes, struct vfs_dir **out)
{
	struct node p;
	int rc = node_copy(v, ino, &p);
	if (rc)
		return rc;
	struct vfs_dir *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->ino = ino;
	struct dir_builder b = { v, d, &p, with_nodes, 0 };
	struct node proto;
	memset(&proto, 0, sizeof(proto));
	proto.stream = p.stream;
	int64_t now = now_ms();

	switch (p.kind) {
	case K_ROOT: {
		struct vstream **ss;
		rc = streams_shown(v->streams, &ss);
		if (rc)
			break;
		for (size_t i = 0; ss[i] && rc == 0; i++) {
			proto.kind = K_STREAM;
			proto.stream = ss[i];
			rc = dir_add(&b, ss[i]->name, &proto);
		}
		free(ss);
		if (rc == 0 && v->c.export) {
			proto.kind = K_EXPORT_DIR;
			proto.stream = NULL;
			rc = dir_add(&b, v->c.export_dir, &proto);
		}
		break;
	}
	case K_EXPORT_DIR: {
		char path[XPATH_MAX];
		struct export_list_arg xl = { &b, 0 };
		rc = xpath(v, ino, path, sizeof(path));
		if (rc == 0)
			rc = export_list(v->c.export, path, export_list_cb, &xl);
		if (rc == 0)
			rc = xl.rc;
		break;
	}
	case K_STREAM: {
		static const struct { const char *name; enum kind kind; } fixed[] = {
			{ FRAGMENTS_NAME, K_FRAGMENTS }, { CLIPS_NAME, K_CLIPS },
			{ LIVE_HLS_NAME, K_LIVE_HLS }, { LIVE_DASH_NAME, K_LIVE_DASH },
		};
		for (size_t i = 0; i < 4 && rc == 0; i++) {
			proto.kind = fixed[i].kind;
			rc = dir_add(&b, fixed[i].name, &proto);
		}
		break;
	}
	case K_FRAGMENTS: {
		int64_t from, to;
		streams_window(p.stream, now, &from, &to);
		if (from > to)
			break;
		for (int64_t day = from - from % NAMES_MS_PER_DAY; day <= to && rc == 0;
		     day += NAMES_MS_PER_DAY) {
			char name[NAMES_DAY_LEN];
			if (names_format_day(day, name))
				continue;
			proto.kind = K_DAY;
			proto.t0 = day;
			rc = dir_add(&b, name, &proto);
		}
		break;
	}
	case K_DAY:
		for (int h = 0; h < 24 && rc == 0; h++) {
			int64_t hour = p.t0 + h * NAMES_MS_PER_HOUR;
			if (!streams_hour_in_window(p.stream, hour, now))
				continue;
			char name[4];
			snprintf(name, sizeof(name), "%02d", h);
			proto.kind = K_HOUR;
			proto.t0 = hour;
			rc = dir_add(&b, name, &proto);
		}
		break;
	case K_HOUR: {
		struct hour_listing *h;
		rc = hours_get(v->hours, p.stream, p.t0, &h);
		if (rc)
			break;
		for (size_t i = 0; i < h->n && rc == 0; i++) {
			if (streams_expired(p.stream, &h->v[i].frag, now))
				continue;
			proto.kind = K_FRAGMENT;
			proto.ts = h->v[i].ts;
			proto.frag = h->v[i].frag;
			rc = dir_add(&b, h->v[i].name, &proto);
		}
		hours_unref(h);
		break;
	}
	case K_CLIPS: {
		struct clip_list_arg la = { &b, &proto, 0 };
		rc = clips_list(v->c.clips, p.stream->name, clip_list_cb, &la);
		if (rc == 0)
			rc = la.rc;
		break;
	}
	default:
		rc = -ENOTDIR;
	}
	if (rc) {
		if (with_nodes)
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

#define READAHEAD_MAX 256

/*
 * Read-ahead: the fragments that follow n in its hour (they are what cp -r, rsync and cat *
 * read next). The window starts at `readahead` fragments and grows 4x, up to READAHEAD_MAX,
 * while the stream's opens move forward one fragment at a time; any jump resets it. Returns the
 * number of items filled (at most 2 * window: the second half is the background batch).
 */
static size_t following(struct vfs *v, const struct node *n, struct fetch_item *items,
			char (*numbers)[129], size_t *window)
{
	struct node parent;
	struct hour_listing *h;
	size_t k = 0, base = v->c.readahead > 0 ? (size_t)v->c.readahead : 8;
	*window = base;
	if (node_copy(v, n->parent, &parent) || parent.kind != K_HOUR)
		return 0;
	if (hours_get(v->hours, n->stream, parent.t0, &h))
		return 0;
	size_t i = 0;
	while (i < h->n && strcmp(h->v[i].frag.number, n->frag.number) != 0)
		i++;
	pthread_mutex_lock(&n->stream->lock);
	struct vstream *s = n->stream;
	if (s->seq_hour == parent.t0 && (long)i > s->seq_index && (long)i <= s->seq_index + 2 &&
	    s->window >= base)
		/* x4: a batch streams in order, so its first fragment comes as fast as a lone one's,
		 * and few large calls stay far below the 5-per-second quota */
		s->window = s->window * 4 > READAHEAD_MAX ? READAHEAD_MAX : s->window * 4;
	else if (!(s->seq_hour == parent.t0 && (long)i == s->seq_index))
		s->window = base;
	s->seq_hour = parent.t0;
	s->seq_index = (long)i;
	*window = s->window;
	pthread_mutex_unlock(&n->stream->lock);
	size_t max = *window * 2;
	int64_t now = now_ms();
	for (i++; i < h->n && k < max; i++) {
		if (streams_expired(n->stream, &h->v[i].frag, now))
			continue;
		memcpy(numbers[k], h->v[i].frag.number, sizeof(numbers[k]));
		items[k].number = numbers[k];
		items[k].kvs_size = h->v[i].frag.size;
		k++;
	}
	hours_unref(h);
	return k;
}

/* After a new size correction: the kernel may hold predicted sizes of the stream's fragments.
 * Invalidates them at once (except except_ino, the inode being opened, which is queued). */
static void invalidate_stream_fragments(struct vfs *v, struct vstream *s, uint64_t except_ino)
{
	if (!v->c.invalidate || !v->c.invalidate_now)
		return;
	size_t n = 0, cap = 0;
	uint64_t *inos = NULL;
	pthread_mutex_lock(&v->lock);
	for (size_t b = 0; b < v->nbuckets; b++)
		for (struct node *x = v->by_ino[b]; x; x = x->next_ino) {
			if (x->kind != K_FRAGMENT || x->stream != s)
				continue;
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 256;
				uint64_t *ni = realloc(inos, nc * sizeof(*ni));
				if (!ni)
					goto done;
				inos = ni;
				cap = nc;
			}
			inos[n++] = x->ino;
		}
done:
	pthread_mutex_unlock(&v->lock);
	for (size_t i = 0; i < n; i++) {
		if (inos[i] == except_ino)
			v->c.invalidate(v->c.invalidate_arg, inos[i]);
		else
			v->c.invalidate_now(v->c.invalidate_arg, inos[i]);
	}
	free(inos);
}

int vfs_open(struct vfs *v, uint64_t ino, int flags, struct vfs_file **out, int *direct_io,
	     int *keep_cache)
{
	struct node n;
	int rc = node_copy(v, ino, &n);
	if (rc)
		return rc;
	*direct_io = 0;
	*keep_cache = 0;
	if (n.kind == K_EXPORT_FILE) {
		char path[XPATH_MAX];
		struct vfs_file *xf = calloc(1, sizeof(*xf));
		if (!xf)
			return -ENOMEM;
		xf->kind = n.kind;
		xf->fd = -1;
		if ((rc = xpath(v, ino, path, sizeof(path))) != 0 ||
		    (rc = export_open_file(v->c.export, path, flags, &xf->xf)) != 0) {
			free(xf);
			return rc;
		}
		*out = xf;
		return 0;
	}
	if (n.kind != K_FRAGMENT && n.kind != K_CLIP && n.kind != K_LIVE_HLS && n.kind != K_LIVE_DASH)
		return -EISDIR;
	if ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_APPEND | O_CREAT)))
		return -EROFS;
	struct vfs_file *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->kind = n.kind;
	f->fd = -1;
	f->stream = n.stream;

	if (n.kind == K_CLIP) {
		char name[64];
		if (names_format_clip(n.t0, n.ts, name)) {
			free(f);
			return -ENOENT;
		}
		/* made (again, if evicted) and pinned in one step: it cannot vanish in between */
		rc = clips_open(v->c.clips, n.stream->name, name, &f->fd, &f->size, &f->pin);
		if (rc == -ENOENT)
			rc = clips_make_open(v->c.clips, n.stream->name, name, n.t0, n.ts, &f->fd,
					     &f->size, &f->pin);
		if (rc) {
			free(f);
			return rc;
		}
		f->clip = 1;
		*keep_cache = 1;
		*out = f;
		return 0;
	}
	if (n.kind == K_LIVE_HLS || n.kind == K_LIVE_DASH) {
		struct live_session *ls = live_of(v, n.stream, n.kind == K_LIVE_DASH);
		rc = ls ? live_open(ls, &f->doc) : -ENOMEM;
		if (rc) {
			free(f);
			return rc;
		}
		f->size = f->doc->len;
		*direct_io = 1; /* each open reads the document it got, whatever the kernel cached */
		*out = f;
		return 0;
	}

	int exact;
	uint64_t reported = sizes_of(v->c.sizes, n.stream, &n.frag, &exact);
	struct fetch_item *next = calloc(2 * READAHEAD_MAX, sizeof(*next));
	char (*numbers)[129] = calloc(2 * READAHEAD_MAX, sizeof(*numbers));
	if (!next || !numbers) {
		free(next);
		free(numbers);
		free(f);
		return -ENOMEM;
	}
	size_t window;
	size_t nn = following(v, &n, next, numbers, &window);
	struct fetch_item want = { n.frag.number, n.frag.size };
	rc = fetch_fragment(v->fetch, n.stream->name, &want, next, nn < window ? nn : window,
			    &f->fd, &f->size, &f->pin);
	/* keep the pipeline full for sequential readers: the batch after the current one */
	if (rc == 0 && nn > 0)
		fetch_prefetch(v->fetch, n.stream->name, next, nn, window / 2 ? window / 2 : 1);
	free(next);
	free(numbers);
	if (rc) {
		free(f);
		return rc;
	}

	if (f->size != reported) {
		int first = sizes_learn(n.stream, &n.frag, f->size);
		if (first) {
			LOG_INFO(v->c.log, "vfs", "%s fragment %s: size predicted %llu, true %llu; "
				 "learned (later sizes of this stream are corrected)", n.stream->name,
				 n.frag.number, (unsigned long long)reported, (unsigned long long)f->size);
			invalidate_stream_fragments(v, n.stream, ino);
		} else if (v->c.invalidate) {
			v->c.invalidate(v->c.invalidate_arg, ino);
		}
		*direct_io = 1;
	} else {
		*keep_cache = 1;
	}
	f->frag = n.frag;
	*out = f;
	return 0;
}

ssize_t vfs_read(struct vfs *v, struct vfs_file *f, char *buf, size_t size, off_t off)
{
	(void)v;
	if (off < 0)
		return -EINVAL;
	if (f->xf)
		return export_read(f->xf, buf, size, off);
	if ((uint64_t)off >= f->size)
		return 0;
	if ((uint64_t)off + size > f->size)
		size = (size_t)(f->size - (uint64_t)off);
	if (f->doc) {
		memcpy(buf, f->doc->data + off, size);
		return (ssize_t)size;
	}
	size_t done = 0;
	while (done < size) {
		ssize_t r = pread(f->fd, buf + done, size - done, off + (off_t)done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			LOG_ERROR(v->c.log, "vfs", "reading cached fragment %s failed: %s",
				  f->frag.number, strerror(errno));
			return -EIO;
		}
		if (r == 0) {
			LOG_ERROR(v->c.log, "vfs", "cached fragment %s is shorter than recorded",
				  f->frag.number);
			return -EIO;
		}
		done += (size_t)r;
	}
	return (ssize_t)done;
}

void vfs_release(struct vfs *v, struct vfs_file *f)
{
	if (!f)
		return;
	if (f->xf) {
		int rc = export_release(f->xf);
		if (rc)
			LOG_ERROR(v->c.log, "vfs", "export: the last upload at release failed (%s); the "
				  "staged data is kept", strerror(-rc));
	}
	if (f->fd >= 0)
		close(f->fd);
	if (f->pin && f->clip)
		clips_unpin(v->c.clips, f->pin);
	else if (f->pin)
		fcache_unpin(v->c.cache, f->pin);
	live_doc_unref(f->doc);
	free(f);
}

void vfs_abandon(struct vfs *v, struct vfs_file *f)
{
	if (!f)
		return;
	if (f->xf) {
		export_abandon(f->xf);
		f->xf = NULL;
	}
	vfs_release(v, f);
}

/* ---------------------------------------------------------------- writes (export/ only) */

/* Parent must be an export directory; fills path of parent/name. EROFS elsewhere. */
static int writable_child(struct vfs *v, uint64_t parent, const char *name, char *path, size_t n)
{
	struct node p;
	int rc = node_copy(v, parent, &p);
	if (rc)
		return rc;
	if (p.kind != K_EXPORT_DIR)
		return -EROFS;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;
	return xchild(v, parent, name, path, n);
}

/* Moves the node (parent, name) out of the name table, so a later lookup starts afresh. */
static void node_detach(struct vfs *v, uint64_t parent, const char *name)
{
	pthread_mutex_lock(&v->lock);
	struct node *n = node_by_name(v, parent, name);
	if (n) {
		table_remove(v, n);
		char dead[48];
		snprintf(dead, sizeof(dead), "\001deleted-%llu", (unsigned long long)n->ino);
		char *nn = strdup(dead);
		if (nn) {
			free(n->name);
			n->name = nn;
		}
		n->parent = 0;
		table_insert(v, n);
	}
	pthread_mutex_unlock(&v->lock);
}

int vfs_make_special(struct vfs *v, uint64_t parent)
{
	struct node p;
	int rc = node_copy(v, parent, &p);
	if (rc)
		return rc;
	return is_export(p.kind) ? -EPERM : -EROFS;
}

int vfs_create(struct vfs *v, uint64_t parent, const char *name, mode_t mode, int flags,
	       struct vfs_attr *a, struct vfs_file **out)
{
	char path[XPATH_MAX];
	int rc = writable_child(v, parent, name, path, sizeof(path));
	if (rc)
		return rc;
	struct vfs_file *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->kind = K_EXPORT_FILE;
	f->fd = -1;
	(void)flags;
	rc = export_create(v->c.export, path, mode & 07777, &f->xf);
	if (rc) {
		free(f);
		return rc;
	}
	uint64_t ino;
	struct export_attr xa;
	if ((rc = export_node(v, parent, name, 0, NULL, &ino)) != 0 ||
	    (rc = export_stat(v->c.export, path, &xa)) != 0) {
		export_release(f->xf);
		free(f);
		return rc;
	}
	export_to_attr(v, &xa, ino, a);
	f->kind = K_EXPORT_FILE;
	*out = f;
	return 0;
}

int vfs_mkdir(struct vfs *v, uint64_t parent, const char *name, mode_t mode, struct vfs_attr *a)
{
	char path[XPATH_MAX];
	struct export_attr xa;
	uint64_t ino;
	int rc = writable_child(v, parent, name, path, sizeof(path));
	if (rc == 0)
		rc = export_mkdir(v->c.export, path, mode & 07777);
	if (rc == 0)
		rc = export_stat(v->c.export, path, &xa);
	if (rc == 0)
		rc = export_node(v, parent, name, 1, NULL, &ino);
	if (rc == 0)
		export_to_attr(v, &xa, ino, a);
	return rc;
}

int vfs_unlink(struct vfs *v, uint64_t parent, const char *name)
{
	char path[XPATH_MAX];
	int rc = writable_child(v, parent, name, path, sizeof(path));
	if (rc == 0)
		rc = export_unlink(v->c.export, path);
	if (rc == 0)
		node_detach(v, parent, name);
	return rc;
}

int vfs_rmdir(struct vfs *v, uint64_t parent, const char *name)
{
	char path[XPATH_MAX];
	int rc = writable_child(v, parent, name, path, sizeof(path));
	if (rc == 0)
		rc = export_rmdir(v->c.export, path);
	if (rc == 0)
		node_detach(v, parent, name);
	return rc;
}

int vfs_rename(struct vfs *v, uint64_t parent, const char *name, uint64_t newparent,
	       const char *newname, unsigned int flags)
{
	char from[XPATH_MAX], to[XPATH_MAX];
	int rc = writable_child(v, parent, name, from, sizeof(from));
	if (rc == 0)
		rc = writable_child(v, newparent, newname, to, sizeof(to));
	if (rc)
		return rc;
	if (flags & ~(unsigned)RENAME_NOREPLACE)
		return -EINVAL; /* RENAME_EXCHANGE and whiteouts are not possible on S3 */
	if (flags & RENAME_NOREPLACE) {
		struct export_attr xa;
		if (export_stat(v->c.export, to, &xa) == 0)
			return -EEXIST;
	}
	rc = export_rename(v->c.export, from, to);
	if (rc)
		return rc;
	node_detach(v, newparent, newname);
	pthread_mutex_lock(&v->lock);
	struct node *n = node_by_name(v, parent, name);
	char *nn = n ? strdup(newname) : NULL;
	if (n && nn) {
		table_remove(v, n);
		free(n->name);
		n->name = nn;
		n->parent = newparent;
		table_insert(v, n);
	} else {
		free(nn);
	}
	pthread_mutex_unlock(&v->lock);
	return 0;
}

int vfs_setattr(struct vfs *v, uint64_t ino, int mask, mode_t mode, uid_t uid, gid_t gid,
		uint64_t size, int64_t mtime_ms, struct vfs_file *f, struct vfs_attr *a)
{
	struct node n;
	char path[XPATH_MAX];
	int rc = node_copy(v, ino, &n);
	if (rc)
		return rc;
	if (!is_export(n.kind))
		return -EROFS;
	if ((rc = xpath(v, ino, path, sizeof(path))) != 0)
		return rc;
	if (n.kind == K_EXPORT_DIR && n.parent == VFS_ROOT_INO) {
		/* the export folder itself belongs to the mount: its times and mode are not stored
		 * anywhere, so setting them (rsync -a dir/ MNT/export/) succeeds and changes nothing */
		if (mask & (VFS_SET_SIZE | VFS_SET_OWNER))
			return -EPERM;
		return vfs_getattr(v, ino, a);
	}
	if ((mask & VFS_SET_SIZE) && rc == 0)
		rc = f && f->xf ? export_ftruncate(f->xf, size) : export_truncate(v->c.export, path, size);
	if ((mask & VFS_SET_MODE) && rc == 0)
		rc = export_set_mode(v->c.export, path, mode & 07777);
	if ((mask & VFS_SET_OWNER) && rc == 0)
		rc = export_set_owner(v->c.export, path, uid, gid);
	if ((mask & VFS_SET_MTIME) && rc == 0)
		rc = export_set_times(v->c.export, path, mtime_ms);
	if (rc)
		return rc;
	return vfs_getattr(v, ino, a);
}

ssize_t vfs_write(struct vfs *v, struct vfs_file *f, const char *buf, size_t size, off_t off)
{
	(void)v;
	if (!f->xf)
		return -EROFS;
	return export_write(f->xf, buf, size, off);
}

int vfs_flush(struct vfs *v, struct vfs_file *f)
{
	(void)v;
	return f->xf ? export_flush(f->xf) : 0;
}

int vfs_fsync(struct vfs *v, struct vfs_file *f)
{
	(void)v;
	return f->xf ? export_fsync(f->xf) : 0;
}

/* ---------------------------------------------------------------- xattrs */

/*
 * kvsfs's read-only attributes. A fragment carries all of them, every other node of a stream's
 * tree only user.kvs.stream; the root and export/ entries carry none (S3 keeps no extended
 * attributes, and export/ shows what the bucket holds, nothing of kvsfs's).
 */
enum { XA_NUMBER, XA_PRODUCER, XA_SERVER, XA_DURATION, XA_SIZE, XA_STREAM, XA_COUNT };

static const char *const xattr_names[XA_COUNT] = {
	"user.kvs.fragment_number", "user.kvs.producer_timestamp", "user.kvs.server_timestamp",
	"user.kvs.duration_ms", "user.kvs.kvs_size", "user.kvs.stream",
};

/* The attributes n carries: xattr_names[first .. XA_COUNT); first == XA_COUNT means none. The
 * switch has no default, so a new kind cannot compile (-Wswitch) without a decision here. */
static size_t xattr_first(const struct node *n)
{
	switch (n->kind) {
	case K_FRAGMENT:
		return n->stream ? XA_NUMBER : XA_COUNT;
	case K_STREAM:
	case K_FRAGMENTS:
	case K_DAY:
	case K_HOUR:
	case K_CLIPS:
	case K_CLIP:
	case K_LIVE_HLS:
	case K_LIVE_DASH:
		return n->stream ? XA_STREAM : XA_COUNT;
	case K_ROOT:
	case K_EXPORT_DIR:
	case K_EXPORT_FILE:
		return XA_COUNT;
	}
	return XA_COUNT;
}

static void fmt_seconds(int64_t ms, char *out, size_t n)
{
	snprintf(out, n, "%lld.%03lld", (long long)(ms / 1000), (long long)(ms % 1000));
}

ssize_t vfs_getxattr(struct vfs *v, uint64_t ino, const char *name, char *buf, size_t size)
{
	struct node n;
	int rc = node_copy(v, ino, &n);
	if (rc)
		return rc;
	size_t i = xattr_first(&n);
	while (i < XA_COUNT && strcmp(name, xattr_names[i]) != 0)
		i++;
	char val[256];
	switch (i) {
	case XA_NUMBER:
		snprintf(val, sizeof(val), "%s", n.frag.number);
		break;
	case XA_PRODUCER:
		fmt_seconds(n.frag.producer_ms, val, sizeof(val));
		break;
	case XA_SERVER:
		fmt_seconds(n.frag.server_ms, val, sizeof(val));
		break;
	case XA_DURATION:
		snprintf(val, sizeof(val), "%lld", (long long)n.frag.duration_ms);
		break;
	case XA_SIZE:
		snprintf(val, sizeof(val), "%lld", (long long)n.frag.size);
		break;
	case XA_STREAM:
		snprintf(val, sizeof(val), "%s", n.stream->name); /* xattr_first checked stream */
		break;
	default:
		return -ENODATA;
	}
	size_t len = strlen(val);
	if (size == 0)
		return (ssize_t)len;
	if (size < len)
		return -ERANGE;
	memcpy(buf, val, len);
	return (ssize_t)len;
}

int vfs_setxattr(struct vfs *v, uint64_t ino)
{
	struct node n;
	int rc = node_copy(v, ino, &n);
	if (rc)
		return rc;
	/* S3 keeps no extended attributes (ENOTSUP lets cp -p and rsync -a go on); the KVS
	 * tree is read-only */
	return is_export(n.kind) ? -ENOTSUP : -EROFS;
}

ssize_t vfs_listxattr(struct vfs *v, uint64_t ino, char *buf, size_t size)
{
	struct node n;
	int rc = node_copy(v, ino, &n);
	if (rc)
		return rc;
	size_t first = xattr_first(&n), len = 0;
	for (size_t i = first; i < XA_COUNT; i++)
		len += strlen(xattr_names[i]) + 1;
	if (size == 0)
		return (ssize_t)len;
	if (size < len)
		return -ERANGE;
	char *p = buf;
	for (size_t i = first; i < XA_COUNT; i++) {
		size_t l = strlen(xattr_names[i]) + 1;
		memcpy(p, xattr_names[i], l);
		p += l;
	}
	return (ssize_t)len;
}

/* ---------------------------------------------------------------- life cycle */

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
	v->nbuckets = 1024;
	v->by_ino = calloc(v->nbuckets, sizeof(*v->by_ino));
	v->by_name = calloc(v->nbuckets, sizeof(*v->by_name));
	v->next_ino = VFS_ROOT_INO;
	v->mount_ms = now_ms();
	pthread_mutex_init(&v->lock, NULL);
	struct fetch_opts fo = {
		.kvs = cfg->kvs, .cache = cfg->cache, .log = cfg->log,
		.batch_max = READAHEAD_MAX,
		.batch_bytes = 256ull << 20,
		.learned = on_learned, .learned_arg = v,
	};
	struct live_opts lo = { .kvs = cfg->kvs, .log = cfg->log, .expires_s = v->c.hls_expires_s };
	struct streams_opts so = {
		.kvs = cfg->kvs, .log = cfg->log, .allow = cfg->streams, .prefix = cfg->stream_prefix,
		.meta_ttl_s = v->c.meta_ttl_s,
	};
	int sok = streams_new(&so, &v->streams);
	struct hours_opts ho = {
		.kvs = cfg->kvs, .streams = v->streams, .log = cfg->log, .ts = cfg->ts,
		.meta_ttl_s = v->c.meta_ttl_s, .past_ttl_s = v->c.past_ttl_s,
	};
	struct node root = { .kind = K_ROOT };
	if (sok || hours_new(&ho, &v->hours) || !v->by_ino || !v->by_name || live_set_new(&lo, &v->live) || fetch_new(&fo, &v->fetch) ||
	    !node_get(v, 0, "/", &root, 1)) {
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
	for (size_t i = 0; v->by_ino && i < v->nbuckets; i++) {
		struct node *n = v->by_ino[i];
		while (n) {
			struct node *nx = n->next_ino;
			free(n->name);
			free(n);
			n = nx;
		}
	}
	hours_free(v->hours);
	streams_free(v->streams);
	free(v->by_ino);
	free(v->by_name);
	pthread_mutex_destroy(&v->lock);
	free(v);
}
