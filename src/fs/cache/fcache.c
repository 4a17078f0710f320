/*
 * fcache: bounded persistent disk cache for immutable media: the operations (API, on-disk layout,
 * crash safety and space policy in include/kvsfs/fcache.h; the index and its invariants in
 * fcache_int.h; opening and recovery in fcache_disk.c).
 *
 * Readers: fcache_get finds the entry, opens its file and pins it under c->lock (so the index
 * and the disk agree), and refreshes the file's mtime after unlocking, at most once a minute.
 * Writers: data goes to tmp/w.<seq>, its key to the xattr user.kvsfs.key of that file or, where
 * the file system has none, to a sidecar tmp/k.<seq>, without the lock (fsync too, when asked);
 * the commit renames (sidecar then) data into objects/ under the lock, replaces
 * any older entry of the key and evicts; files evicted or replaced are unlinked after unlocking.
 */
#include "fcache_int.h"

#include "kvsfs/fsutil.h"
#include "kvsfs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

struct fcache_writer {
	struct fcache *c;
	int fd;
	int err;
	uint64_t size;
	uint64_t seq;
	uint8_t md[32];
	size_t keylen;
	char key[];
};

/* ---- readers ---- */

/* Opens entry e (pinned by the caller, under the lock). Returns an fd or -errno. */
static int open_entry_locked(struct fcache *c, const struct fcache_pin *e)
{
	char rel[REL_MAX];
	fc_rel_path(e->md, false, rel);
	int fd = openat(c->objfd, rel, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static void touch_file(int fd)
{
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { 0, UTIME_NOW } };
	(void)futimens(fd, ts);
}

int fcache_get(struct fcache *c, const char *key, int *fd, uint64_t *size, struct fcache_pin **pin)
{
	size_t len;
	uint8_t md[32];
	*fd = -1;
	*pin = NULL;
	int r = fc_key_md(key, &len, md);
	if (r)
		return r;
	pthread_mutex_lock(&c->lock);
	struct fcache_pin *e = fc_find_locked(c, md);
	if (!e) {
		c->misses++;
		pthread_mutex_unlock(&c->lock);
		return -ENOENT;
	}
	int f = open_entry_locked(c, e);
	struct stat st;
	if (f >= 0 && (fstat(f, &st) != 0 || (uint64_t)st.st_size != e->size)) {
		close(f);
		f = -ENOENT;
	}
	if (f < 0) {
		if (f == -ENOENT) {
			/* Deleted or changed behind our back: forget it (its sidecar too). */
			struct trash t = { 0 };
			LOG_WARN(c->log, MOD, "cache file of %s vanished or changed size; dropping the entry",
					e->key);
			fc_drop_files_locked(c, md, &t);
			fc_unindex_locked(c, e);
			c->misses++;
			pthread_mutex_unlock(&c->lock);
			fc_trash_empty(c, &t);
			return -ENOENT;
		}
		pthread_mutex_unlock(&c->lock);
		LOG_WARN(c->log, MOD, "cannot open cache file of %s: %s", key, strerror(-f));
		return f;
	}
	c->hits++;
	fc_pin_locked(c, e);
	int64_t now = fc_now_sec();
	bool touch = now - e->touched >= TOUCH_INTERVAL;
	if (touch)
		e->touched = now;
	*size = e->size;
	pthread_mutex_unlock(&c->lock);
	if (touch)
		touch_file(f);
	*fd = f;
	*pin = e;
	return 0;
}

void fcache_unpin(struct fcache *c, struct fcache_pin *pin)
{
	if (!pin)
		return;
	pthread_mutex_lock(&c->lock);
	fc_unpin_locked(c, pin);
	pthread_mutex_unlock(&c->lock);
}

int fcache_contains(struct fcache *c, const char *key, uint64_t *size)
{
	size_t len;
	uint8_t md[32];
	if (fc_key_md(key, &len, md) != 0)
		return 0;
	pthread_mutex_lock(&c->lock);
	struct fcache_pin *e = fc_find_locked(c, md);
	if (e && size)
		*size = e->size;
	pthread_mutex_unlock(&c->lock);
	return e != NULL;
}

/* ---- writers ---- */

static void writer_tmp_name(uint64_t seq, bool sidecar, char out[32])
{
	snprintf(out, 32, "%c.%" PRIu64, sidecar ? 'k' : 'w', seq);
}

int fcache_begin(struct fcache *c, const char *key, struct fcache_writer **w)
{
	size_t len;
	uint8_t md[32];
	*w = NULL;
	int r = fc_key_md(key, &len, md);
	if (r)
		return r;
	struct fcache_writer *nw = calloc(1, sizeof(*nw) + len + 1);
	if (!nw)
		return -ENOMEM;
	memcpy(nw->key, key, len);
	nw->keylen = len;
	nw->c = c;
	memcpy(nw->md, md, 32);
	pthread_mutex_lock(&c->lock);
	nw->seq = c->seq++;
	pthread_mutex_unlock(&c->lock);
	char name[32];
	writer_tmp_name(nw->seq, false, name);
	nw->fd = openat(c->tmpfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (nw->fd < 0) {
		r = -errno;
		LOG_WARN(c->log, MOD, "cannot create %s/tmp/%s: %s", c->dir, name, strerror(-r));
		free(nw);
		return r;
	}
	*w = nw;
	return 0;
}

int fcache_write(struct fcache_writer *w, const void *data, size_t len)
{
	if (w->err)
		return w->err;
	if (len == 0)
		return 0;
	int r = fsutil_write_all(w->fd, data, len);
	if (r) {
		w->err = r;
		LOG_WARN(w->c->log, MOD, "cannot write cache entry %s: %s", w->key, strerror(-r));
		return r;
	}
	w->size += len;
	return 0;
}

int fcache_pwrite(struct fcache_writer *w, const void *data, size_t len, uint64_t off)
{
	if (w->err)
		return w->err;
	if (off > w->size || len > w->size - off)
		return -EINVAL;
	const uint8_t *p = data;
	while (len) {
		ssize_t r = pwrite(w->fd, p, len, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			w->err = r < 0 ? -errno : -EIO;
			LOG_WARN(w->c->log, MOD, "cannot write cache entry %s: %s", w->key,
				 strerror(-w->err));
			return w->err;
		}
		p += r;
		off += (uint64_t)r;
		len -= (size_t)r;
	}
	return 0;
}

void fcache_abort(struct fcache_writer *w)
{
	if (!w)
		return;
	char name[32];
	if (w->fd >= 0)
		close(w->fd);
	writer_tmp_name(w->seq, false, name);
	unlinkat(w->c->tmpfd, name, 0);
	writer_tmp_name(w->seq, true, name);
	unlinkat(w->c->tmpfd, name, 0);
	free(w);
}

/* The sidecar's text of w into data (SIDECAR_MAX + 1 bytes). Returns its length. */
static size_t sidecar_text(const struct fcache_writer *w, char *data)
{
	int n = snprintf(data, SIDECAR_MAX + 1, "%s%" PRIu64 "\n", KEY_MAGIC, w->size);
	memcpy(data + n, w->key, w->keylen);
	return (size_t)n + w->keylen;
}

/* Stores w's key with its data: as the extended attribute KEY_XATTR of the data file (w->fd,
 * still open: no second file to create, one rename), else, where the file system has no user
 * xattrs, in the sidecar temp file k.<seq> (*in_file = 1). Returns 0 or -errno. */
static int write_sidecar(struct fcache *c, const struct fcache_writer *w, int *in_file)
{
	char name[32];
	char data[SIDECAR_MAX + 1];
	size_t len = sidecar_text(w, data);
	*in_file = 0;
	if (fsetxattr(w->fd, KEY_XATTR, data, len, 0) == 0)
		return 0;
	*in_file = 1;
	writer_tmp_name(w->seq, true, name);
	int fd = openat(c->tmpfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int r = fsutil_write_all(fd, data, len);
	if (r == 0 && c->fsync && fdatasync(fd) != 0)
		r = -errno;
	if (close(fd) != 0 && r == 0)
		r = -errno;
	return r;
}

/* renameat from tmp/ into objects/, creating objects/<xx> when missing. Under the lock. */
static int publish_locked(struct fcache *c, const char *tmpname, const char *rel, const char *sub)
{
	if (renameat(c->tmpfd, tmpname, c->objfd, rel) == 0)
		return 0;
	if (errno != ENOENT)
		return -errno;
	if (mkdirat(c->objfd, sub, 0700) != 0 && errno != EEXIST)
		return -errno;
	return renameat(c->tmpfd, tmpname, c->objfd, rel) == 0 ? 0 : -errno;
}

static void fsync_subdir(struct fcache *c, const char *sub)
{
	int fd = openat(c->objfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

static int commit_common(struct fcache_writer *w, int *fd_out, uint64_t *size_out,
		struct fcache_pin **pin_out)
{
	struct fcache *c = w->c;
	char wname[32], kname[32], rel[REL_MAX], krel[REL_MAX], sub[3];
	int r = w->err, key_file = 0;
	if (r == 0)
		r = write_sidecar(c, w, &key_file);
	/* fsync, not fdatasync: the key may be an xattr (inode metadata) */
	if (r == 0 && c->fsync && fsync(w->fd) != 0)
		r = -errno;
	if (close(w->fd) != 0 && r == 0)
		r = -errno;
	w->fd = -1;
	struct fcache_pin *e = NULL;
	if (r == 0) {
		e = fc_entry_new(w->key, w->keylen, w->md, w->size, fc_now_sec());
		if (!e)
			r = -ENOMEM;
	}
	if (r) {
		LOG_WARN(c->log, MOD, "cannot store cache entry %s: %s", w->key, strerror(-r));
		fcache_abort(w);
		return r;
	}
	writer_tmp_name(w->seq, false, wname);
	writer_tmp_name(w->seq, true, kname);
	fc_rel_path(w->md, false, rel);
	fc_rel_path(w->md, true, krel);
	fc_sub_name(w->md, sub);
	struct trash t = { 0 };
	int f = -1;

	pthread_mutex_lock(&c->lock);
	struct fcache_pin *old = fc_find_locked(c, w->md);
	if (key_file) {
		r = publish_locked(c, kname, krel, sub);
		if (r == 0) {
			r = publish_locked(c, wname, rel, sub);
			if (r && !old)
				unlinkat(c->objfd, krel, 0);
		}
	} else {
		/* an older entry's sidecar file would pair with the new data file: gone first */
		if (old)
			unlinkat(c->objfd, krel, 0);
		r = publish_locked(c, wname, rel, sub);
	}
	if (r) {
		pthread_mutex_unlock(&c->lock);
		LOG_WARN(c->log, MOD, "cannot store cache entry %s: %s", w->key, strerror(-r));
		free(e);
		fcache_abort(w);
		return r;
	}
	if (old)
		fc_unindex_locked(c, old);
	fc_insert_locked(c, e);
	if (pin_out) {
		fc_pin_locked(c, e);
		f = open_entry_locked(c, e);
	} else {
		fc_lru_push_front(c, e);
	}
	fc_evict_locked(c, e, &t);
	if (pin_out && f < 0)
		fc_unpin_locked(c, e); /* it may now be evicted by a later commit */
	pthread_mutex_unlock(&c->lock);

	fc_trash_empty(c, &t);
	if (c->fsync)
		fsync_subdir(c, sub);
	uint64_t size = w->size;
	if (size_out)
		*size_out = size;
	if (pin_out) {
		if (f < 0) {
			LOG_WARN(c->log, MOD, "cannot open cache entry %s after storing it: %s", w->key,
					strerror(-f));
			free(w);
			return f;
		}
		*fd_out = f;
		*pin_out = e;
	}
	free(w);
	return 0;
}

int fcache_commit(struct fcache_writer *w, uint64_t *size)
{
	return commit_common(w, NULL, size, NULL);
}

int fcache_commit_get(struct fcache_writer *w, int *fd, uint64_t *size, struct fcache_pin **pin)
{
	*fd = -1;
	*pin = NULL;
	return commit_common(w, fd, size, pin);
}

/* ---- remove, list, stats ---- */

int fcache_remove(struct fcache *c, const char *key)
{
	size_t len;
	uint8_t md[32];
	int r = fc_key_md(key, &len, md);
	if (r)
		return r;
	struct trash t = { 0 };
	pthread_mutex_lock(&c->lock);
	struct fcache_pin *e = fc_find_locked(c, md);
	if (e) {
		fc_drop_files_locked(c, md, &t);
		fc_unindex_locked(c, e);
	}
	pthread_mutex_unlock(&c->lock);
	fc_trash_empty(c, &t);
	return e ? 0 : -ENOENT;
}

struct list_item {
	char *key;
	uint64_t size;
};

static int cmp_item(const void *a, const void *b)
{
	return strcmp(((const struct list_item *)a)->key, ((const struct list_item *)b)->key);
}

int fcache_list(struct fcache *c, const char *prefix,
		int (*fn)(void *arg, const char *key, uint64_t size), void *arg)
{
	if (!prefix)
		prefix = "";
	size_t plen = strlen(prefix);
	struct list_item *v = NULL;
	size_t n = 0, cap = 0;
	int r = 0;
	pthread_mutex_lock(&c->lock);
	struct hashmap_iter it;
	hashmap_iter_init(&it, &c->index);
	for (struct hashmap_node *hn; r == 0 && (hn = hashmap_next(&it));) {
		const struct fcache_pin *e = hashmap_entry(hn, struct fcache_pin, node);
		if (e->keylen < plen || memcmp(e->key, prefix, plen) != 0)
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct list_item *p = realloc(v, ncap * sizeof(*p));
			if (!p) {
				r = -ENOMEM;
				break;
			}
			v = p;
			cap = ncap;
		}
		v[n].key = strdup(e->key);
		if (!v[n].key) {
			r = -ENOMEM;
			break;
		}
		v[n++].size = e->size;
	}
	pthread_mutex_unlock(&c->lock);
	if (r == 0) {
		if (n)
			qsort(v, n, sizeof(*v), cmp_item);
		for (size_t i = 0; i < n && r == 0; i++)
			r = fn(arg, v[i].key, v[i].size);
	}
	for (size_t i = 0; i < n; i++)
		free(v[i].key);
	free(v);
	return r;
}

void fcache_stats(struct fcache *c, struct fcache_stats *st)
{
	pthread_mutex_lock(&c->lock);
	st->bytes = c->bytes;
	st->entries = fc_count(c);
	st->pinned = c->pinned;
	st->hits = c->hits;
	st->misses = c->misses;
	st->evictions = c->evictions;
	st->max_bytes = c->max_bytes;
	pthread_mutex_unlock(&c->lock);
}
