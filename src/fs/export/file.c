/*
 * export/file: open files of export/ (docs/EXPORT.md "Staging", "Durability").
 *
 * What it does: an open file (struct export_file) is either
 *   - staged: it holds a reference to the node of its path; writes go to the node's staging
 *     file, reads come from it (a read-only open of a file that is staged shares the node);
 *   - remote: a read-only open of a stored object: key and size seen at open, and a read
 *     window of at least READ_WINDOW bytes filled by one ranged GET that serves the following
 *     reads (one GET per 4 MiB for a sequential reader).
 * flush/fsync/release store the node (ex_finalize) and return 0 only when S3 holds the object.
 *
 * Writes: the writer owns the node (n->busy) for the pwrite, which runs with ex->mu released,
 * so writes to other files, listings, stats and uploads go on meanwhile; other writers of the
 * same node wait on ex->done_cv. The size grows only by the bytes actually written: a failed
 * or short pwrite leaves the size at the end of what reached the staging file, and gives back
 * the staging space it reserved beyond it.
 *
 * Invariants:
 *  - a staged open file holds one node reference and counts in n->opens until
 *    export_release/export_abandon; the node outlives it;
 *  - opening for writing waits until the node is idle, then downloads an existing object into
 *    a new staging file (unless O_TRUNC) as the node's owner, with ex->mu released;
 *  - the read window (rbuf, roff, rlen) is guarded by f->rmu; one reader at a time fetches a
 *    window (f->fetching) with f->rmu released, into a new buffer that replaces the old one
 *    once complete, so readers served by the current window never wait for a GET.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "export_int.h"
#include "kvsfs/awserr.h"
#include "kvsfs/log.h"

/* Remote reads fetch at least this much per GET and serve later reads from it. */
#define READ_WINDOW (4u << 20)

static int file_new(struct export *ex, struct xnode *n, int writable, struct export_file **f)
{
	struct export_file *x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->ex = ex;
	x->n = n;
	x->writable = writable;
	n->refs++;
	n->opens++;
	n->writers += !!writable;
	*f = x;
	return 0;
}

static void file_free(struct export_file *f)
{
	if (f->key) {
		pthread_cond_destroy(&f->rcv);
		pthread_mutex_destroy(&f->rmu);
	}
	free(f->rbuf);
	free(f->key);
	free(f);
}

struct dl_ctx {
	int fd;
	off_t off;
};

static int dl_body(void *arg, const void *data, size_t len)
{
	struct dl_ctx *d = arg;
	const char *p = data;
	while (len) {
		ssize_t w = pwrite(d->fd, p, len, d->off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -EIO;
		p += w;
		len -= (size_t)w;
		d->off += w;
	}
	return 0;
}

static int dl_reset(void *arg)
{
	struct dl_ctx *d = arg;
	d->off = 0;
	return 0;
}

/*
 * Finds the node of path once it is idle (mutex held; released while waiting and for S3).
 * Without a node, looks the path up in S3: *exists and *a tell what is stored; -EISDIR for a
 * directory, -ENOENT when must_exist and nothing is stored. *out: the node or NULL.
 */
static int node_lookup(struct export *ex, const char *path, int must_exist,
		       struct xnode **out, struct export_attr *a, int *exists)
{
	int looked = 0;
	*exists = 0;
	for (;;) {
		struct xnode *n = ex_node_find(ex, path);
		if (n && (n->busy || n->inflight)) {
			n->refs++;
			ex_node_wait_idle(ex, n);
			ex_node_put(ex, n);
			continue;  /* it may have gone, or been replaced */
		}
		if (n || looked) {
			*out = n;
			return 0;
		}
		pthread_mutex_unlock(&ex->mu);
		int rc = ex_stat_cached(ex, path, a);
		pthread_mutex_lock(&ex->mu);
		if (!rc && a->is_dir)
			return -EISDIR;
		if (rc && rc != -ENOENT)
			return rc;
		*exists = !rc;
		if (!*exists && must_exist)
			return -ENOENT;
		looked = 1;  /* a node may have appeared meanwhile */
	}
}

/* Gives owned node n a new staging file holding the first `size` bytes of the stored object
 * (0: empty). Mutex held; released for the disk and the GET. */
static int stage_fill(struct export *ex, struct xnode *n, const char *path, uint64_t size)
{
	uint64_t used = 0;
	int rc = size ? ex_stage_reserve(ex, n, size, &used) : 0;
	char *key = size ? ex_key(ex, path, "") : NULL;
	pthread_mutex_unlock(&ex->mu);
	struct stage_file *st = NULL;
	if (rc == -ENOSPC)
		ex_stage_log_full(ex, path, used);
	if (!rc)
		rc = ex_stage_open(ex, path, &st);
	if (!rc && size) {
		struct dl_ctx d = { .fd = st->fd };
		struct awserr e;
		rc = key ? s3_get_object(ex->s3, key, 0, -1, dl_body, dl_reset, &d, NULL, &e)
			 : -ENOMEM;
		if (!rc && (uint64_t)d.off != size)
			rc = -EIO;
	}
	free(key);
	pthread_mutex_lock(&ex->mu);
	n->st = st;  /* also on failure: dropped (unlinked) by the caller */
	n->size = rc ? 0 : size;
	return rc;
}

/* Gets node n for path, staged (mutex held; released while downloading), with one reference
 * for the caller (drop it with ex_node_put). With trunc the staged file is empty; else an
 * existing object is downloaded. must_exist: -ENOENT when there is no such file. */
static int node_staged(struct export *ex, const char *path, int trunc, int must_exist,
		       mode_t mode, struct xnode **out)
{
	struct export_attr a;
	struct xnode *n = NULL;
	int exists;
	int rc = node_lookup(ex, path, must_exist, &n, &a, &exists);
	if (rc)
		return rc;
	if (n && n->st) {
		n->refs++;
		if (trunc)
			rc = ex_stage_truncate(ex, n, 0);
		if (rc)
			ex_node_put(ex, n);
		else
			*out = n;
		return rc;
	}
	if (!n) {
		n = ex_node_new(ex, path);
		if (!n)
			return -ENOMEM;
		n->mode = exists ? a.mode : mode & 07777;
		if (exists)
			n->mtime_ms = a.mtime_ms;
	}
	n->refs++;
	ex_node_own(ex, n);
	rc = stage_fill(ex, n, path, exists && !trunc ? a.size : 0);
	if (!rc && (trunc || !exists))
		n->dirty = 1;
	if (!rc && !exists)
		n->fresh = 1;  /* nothing under path: a local rename needs no DeleteObject */
	ex_node_disown(ex, n);
	if (rc) {
		if (!n->dirty)
			ex_stage_drop(ex, n);
		ex_node_put(ex, n);
		return rc;
	}
	*out = n;
	return 0;
}

/* The checks of every open of path: 0, -EINVAL / -ENAMETOOLONG (bad path) or -EISDIR (the
 * root). */
static int open_check(struct export *ex, const char *path)
{
	int rc = ex_path_check(ex, path);
	return rc ? rc : *path ? 0 : -EISDIR;
}

int export_create(struct export *ex, const char *path, mode_t mode, struct export_file **f)
{
	*f = NULL;
	int rc = open_check(ex, path);
	if (!rc)
		rc = ex_known_settle(ex, path);
	if (rc)
		return rc;
	pthread_mutex_lock(&ex->mu);
	struct xnode *n = NULL;
	rc = node_staged(ex, path, 1, 0, mode, &n);
	if (!rc) {
		n->mtime_ms = ex_now_ms();
		n->mtime_set = 0;
		rc = file_new(ex, n, 1, f);
		ex_node_put(ex, n);
	}
	ex_unlock(ex);
	return rc;
}

/* A read-only open of a stored object (mutex NOT held). */
static int open_remote(struct export *ex, const char *path, struct export_file **f)
{
	struct export_attr a;
	int rc = ex_stat_cached(ex, path, &a);
	if (rc)
		return rc;
	if (a.is_dir)
		return -EISDIR;
	struct export_file *x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->ex = ex;
	x->key = ex_key(ex, path, "");
	x->rsize = a.size;
	if (!x->key) {
		free(x);
		return -ENOMEM;
	}
	pthread_mutex_init(&x->rmu, NULL);
	pthread_cond_init(&x->rcv, NULL);
	*f = x;
	return 0;
}

int export_open_file(struct export *ex, const char *path, int flags, struct export_file **f)
{
	*f = NULL;
	int rc = open_check(ex, path);
	if (rc)
		return rc;
	int acc = flags & O_ACCMODE;
	if (acc != O_RDONLY && (rc = ex_known_settle(ex, path)) != 0)
		return rc;
	pthread_mutex_lock(&ex->mu);
	struct xnode *n = NULL;
	if (acc != O_RDONLY) {
		rc = node_staged(ex, path, !!(flags & O_TRUNC), 1, 0644, &n);
		if (!rc) {
			rc = file_new(ex, n, 1, f);
			ex_node_put(ex, n);
		}
		ex_unlock(ex);
		return rc;
	}
	n = ex_node_find(ex, path);
	if (n && (n->st || n->dirty)) {
		rc = file_new(ex, n, 0, f);
		ex_unlock(ex);
		return rc;
	}
	ex_unlock(ex);
	return open_remote(ex, path, f);
}

struct rd_ctx {
	char *buf;
	size_t cap, got;
};

static int rd_body(void *arg, const void *data, size_t len)
{
	struct rd_ctx *r = arg;
	if (len > r->cap - r->got)
		return -EIO;
	memcpy(r->buf + r->got, data, len);
	r->got += len;
	return 0;
}

static int rd_reset(void *arg)
{
	((struct rd_ctx *)arg)->got = 0;
	return 0;
}

/* Reads a staged file from its staging file. */
static ssize_t read_staged(struct export_file *f, char *buf, size_t size, off_t off)
{
	struct export *ex = f->ex;
	pthread_mutex_lock(&ex->mu);
	int fd = f->n->st ? f->n->st->fd : -1;
	uint64_t sz = f->n->size;
	ex_unlock(ex);
	if (fd < 0)
		return -EIO;
	if ((uint64_t)off >= sz)
		return 0;
	if (size > sz - (uint64_t)off)
		size = (size_t)(sz - (uint64_t)off);
	ssize_t r = pread(fd, buf, size, off);
	return r < 0 ? -errno : r;
}

/* Fills the window with [off, off + max(size, READ_WINDOW)) clamped to the size seen at open
 * (f->rmu held; released during the GET, f->fetching set meanwhile). 0 or a negative errno. */
static int window_fetch(struct export_file *f, uint64_t off, size_t size)
{
	size_t want = size > READ_WINDOW ? size : READ_WINDOW;
	if (want > f->rsize - off)
		want = (size_t)(f->rsize - off);
	f->fetching = 1;
	pthread_mutex_unlock(&f->rmu);
	struct rd_ctx r = { .buf = malloc(want), .cap = want };
	struct awserr e;
	int rc = r.buf ? s3_get_object(f->ex->s3, f->key, (off_t)off, (int64_t)want, rd_body,
				       rd_reset, &r, NULL, &e)
		       : -ENOMEM;
	pthread_mutex_lock(&f->rmu);
	f->fetching = 0;
	pthread_cond_broadcast(&f->rcv);
	if (rc) {
		free(r.buf);
		return rc;
	}
	free(f->rbuf);
	f->rbuf = r.buf;
	f->roff = off;
	f->rlen = r.got;
	return 0;
}

static int window_has(const struct export_file *f, uint64_t off, size_t size)
{
	return f->rbuf && off >= f->roff && off + size <= f->roff + f->rlen;
}

/* Reads a stored object through the handle's window. */
static ssize_t read_remote(struct export_file *f, char *buf, size_t size, uint64_t off)
{
	if (off >= f->rsize || !size)
		return 0;
	if (size > f->rsize - off)
		size = (size_t)(f->rsize - off);
	pthread_mutex_lock(&f->rmu);
	int fetched = 0;
	while (!fetched && !window_has(f, off, size)) {
		if (f->fetching) {
			pthread_cond_wait(&f->rcv, &f->rmu);
			continue;
		}
		int rc = window_fetch(f, off, size);
		if (rc) {
			pthread_mutex_unlock(&f->rmu);
			return rc == -EINVAL ? 0 : rc;  /* 416: the object shrank meanwhile */
		}
		fetched = 1;
	}
	size_t have = f->rbuf && off >= f->roff && f->roff + f->rlen > off ?
		      (size_t)(f->roff + f->rlen - off) : 0;
	if (size > have)
		size = have;
	if (size)
		memcpy(buf, f->rbuf + (off - f->roff), size);
	pthread_mutex_unlock(&f->rmu);
	return (ssize_t)size;
}

ssize_t export_read(struct export_file *f, char *buf, size_t size, off_t off)
{
	if (off < 0)
		return -EINVAL;
	if (f->n)
		return read_staged(f, buf, size, off);
	return read_remote(f, buf, size, (uint64_t)off);
}

/* pwrite of all size bytes at off (n owned, mutex NOT held). *done: bytes written. */
static int stage_pwrite(struct export *ex, const struct xnode *n, int fd, const char *p,
			size_t size, off_t off, size_t *done)
{
	*done = 0;
	while (*done < size) {
		ssize_t w = pwrite(fd, p + *done, size - *done, off + (off_t)*done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int rc = w < 0 ? -errno : -EIO;
			LOG_ERROR(ex->log, MOD, "writing the staging file of %s: %s",
				  n->path ? n->path : "?", strerror(-rc));
			return rc;
		}
		*done += (size_t)w;
	}
	return 0;
}

/* Records `done` bytes written at off (mutex held, n owned): the size grows only by what was
 * written; space reserved beyond it (above alloc0, the reservation before) is given back. */
static void write_done(struct export *ex, struct xnode *n, uint64_t off, size_t done,
		       uint64_t alloc0)
{
	if (done) {
		if (off != n->size)
			n->seq_ok = 0;
		if (off + done > n->size)
			n->size = off + done;
		n->dirty = 1;
		n->journaled = 0;
		n->mtime_ms = ex_now_ms();
		n->mtime_set = 0;
	}
	uint64_t keep = alloc0 > n->size ? alloc0 : n->size;
	if (n->alloc > keep) {
		ex->staged_bytes -= n->alloc - keep;
		n->alloc = keep;
	}
}

ssize_t export_write(struct export_file *f, const char *buf, size_t size, off_t off)
{
	struct export *ex = f->ex;
	struct xnode *n = f->n;
	if (!f->writable || !n)
		return -EBADF;
	if (off < 0)
		return -EINVAL;
	uint64_t end = (uint64_t)off + size, used = 0;
	pthread_mutex_lock(&ex->mu);
	ex_node_own(ex, n);
	uint64_t alloc0 = n->alloc;
	/* (a path unlinked while open keeps its staging file: writes go there) */
	int rc = !n->st ? -EIO : end > ex->max_file ? -EFBIG : ex_stage_reserve(ex, n, end, &used);
	while (rc == -ENOSPC && ex_wb_wait_space(ex, n->path))  /* write-back: uploads free space */
		rc = ex_stage_reserve(ex, n, end, &used);
	int fd = n->st ? n->st->fd : -1;
	pthread_mutex_unlock(&ex->mu);
	size_t done = 0;
	if (rc == -ENOSPC)
		ex_stage_log_full(ex, n->path, used);  /* owned: n->path does not change */
	if (!rc)
		rc = stage_pwrite(ex, n, fd, buf, size, off, &done);
	pthread_mutex_lock(&ex->mu);
	write_done(ex, n, (uint64_t)off, done, alloc0);
	ex_node_disown(ex, n);
	if (!rc)
		rc = ex_queue_ready_parts(ex, n);
	ex_unlock(ex);
	return rc ? rc : (ssize_t)size;
}

int export_ftruncate(struct export_file *f, uint64_t size)
{
	struct export *ex = f->ex;
	struct xnode *n = f->n;
	if (!f->writable || !n)
		return -EBADF;
	pthread_mutex_lock(&ex->mu);
	int rc = ex_stage_truncate(ex, n, size);
	ex_unlock(ex);
	return rc;
}

int export_truncate(struct export *ex, const char *path, uint64_t size)
{
	int rc = open_check(ex, path);
	if (!rc)
		rc = ex_known_settle(ex, path);
	if (rc)
		return rc;
	pthread_mutex_lock(&ex->mu);
	struct xnode *n = NULL;
	rc = node_staged(ex, path, size == 0, 1, 0644, &n);
	if (!rc) {
		ex_node_wait_idle(ex, n);
		rc = ex_stage_truncate(ex, n, size);
		if (!rc && !n->opens)
			rc = ex->wb ? ex_wb_stage(ex, n) : ex_finalize(ex, n);
		ex_node_put(ex, n);
	}
	ex_unlock(ex);
	return rc;
}

/* Write-back: close stages durably and queues the upload (mutex held). */
static int wb_close(struct export_file *f)
{
	return f->writable ? ex_wb_stage(f->ex, f->n) : 0;
}

int export_fsync(struct export_file *f)
{
	struct export *ex = f->ex;
	if (!f->n)
		return ex_known_flush(ex, 1);  /* a read-only handle: pending mode/mtime changes */
	int rc = 0;
	if (ex->wb) {
		/* write-back: this file's upload, now, in this thread; its error is fsync's */
		pthread_mutex_lock(&ex->mu);
		rc = wb_close(f);
		if (!rc)
			rc = ex_finalize(ex, f->n);
		ex_unlock(ex);
	} else {
		rc = export_flush(f);
	}
	pthread_mutex_lock(&ex->mu);
	char *path = f->n->path ? strdup(f->n->path) : NULL;
	ex_unlock(ex);
	if (!rc && path)
		rc = ex_known_flush_path(ex, path);  /* a mode/mtime change kept pending */
	free(path);
	return rc;
}

int export_flush(struct export_file *f)
{
	struct export *ex = f->ex;
	if (!f->n)
		return 0;
	pthread_mutex_lock(&ex->mu);
	int rc = ex->wb ? wb_close(f) :
		 f->writable || f->n->opens == 1 ? ex_finalize(ex, f->n) : 0;
	ex_unlock(ex);
	return rc;
}

int export_release(struct export_file *f)
{
	if (!f)
		return 0;
	struct export *ex = f->ex;
	int rc = 0;
	if (f->n) {
		pthread_mutex_lock(&ex->mu);
		struct xnode *n = f->n;
		if (ex->wb)
			rc = wb_close(f);
		else if (f->writable || n->opens == 1)
			rc = ex_finalize(ex, n);
		n->opens--;
		n->writers -= !!f->writable;
		if (ex->wb && !n->writers)
			pthread_cond_signal(&ex->wb_cv);  /* its upload may start */
		if (!n->opens && !n->dirty && n->in_table && !n->busy) {
			/* stored and no longer open: the staged copy goes */
			ex_node_unlink(ex, n);
		}
		ex_node_put(ex, n);
		ex_unlock(ex);
	}
	file_free(f);
	return rc;
}

void export_abandon(struct export_file *f)
{
	if (!f)
		return;
	struct export *ex = f->ex;
	if (f->n) {
		pthread_mutex_lock(&ex->mu);
		f->n->opens--;
		f->n->writers -= !!f->writable;
		ex_node_put(ex, f->n); /* a dirty node stays: export_close reports it */
		ex_unlock(ex);
	}
	file_free(f);
}
