/*
 * ingest: a stream's write-only drop folder, /STREAM/ingest/, and the files being written in it.
 *
 * `cp rec.mkv MNT/cam/ingest/` sends the recording into the stream with PutMedia
 * (include/kvsfs/putmedia.h); docs/INGEST.md is the user contract. Design:
 *   - create opens an unlinked staging file in the ingest folder of the cache (vfs_config
 *     ingest_dir): memory stays bounded, the disk holds the recording until close;
 *   - the first write that covers the first four bytes checks the EBML magic (mkvin_sniff): a
 *     file that is not Matroska is refused there with EINVAL, and nothing is ever sent;
 *   - flush (close) checks the whole file (mkvin_scan: one Segment, clusters that start at
 *     keyframes), picks the timestamps (ABSOLUTE cluster times as they are; else RELATIVE to
 *     the name's stamp, the Segment's DateUTC, or now), waits for the stream's one PutMedia
 *     connection (vstream ingest_busy and its condition variable: no lock is held while
 *     sending), sends, and returns 0 only when every fragment was PERSISTED (RECEIVED for a
 *     stream without retention). An ERROR ACK is its errno (kvs_put_ack_errno) with one log
 *     line; the stream's cached hour listings are dropped so fragments/ shows the new ones.
 * The folder lists empty and its names are never found: a file exists only while it is open.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nodes.h"
#include "../core/hours.h"
#include "../core/inodes.h"
#include "../core/streams.h"
#include "kvsfs/clk.h"
#include "kvsfs/log.h"
#include "kvsfs/mkvin.h"
#include "kvsfs/names.h"
#include "kvsfs/putmedia.h"

#define MOD "ingest"

struct ingest_file {
	struct vfs_file f;
	struct vstream *stream;
	int fd;
	uint64_t size;
	unsigned char head[4];
	uint8_t head_known;      /* bit i: head[i] was written */
	int refused;             /* errno of a refused input: every later call fails with it */
	int dirty;               /* written since the last send */
	int result;              /* outcome of the last send */
	off_t pos;               /* read position of the body being sent */
	const struct mkvin_info *in; /* the scan of the file being sent (its skipped ranges) */
	char name[];
};

static int ingest_dir_getattr(struct vfs *v, const struct node_ref *n, enum attr_use use,
			      struct vfs_attr *a)
{
	(void)use;
	vfs_attr_dir(v, n->ino, streams_creation_ms(n->val.stream), a);
	a->mode = S_IFDIR | (0755 & ~v->c.umask) | 0300;
	return 0;
}

static int ingest_lookup(struct vfs *v, const struct node_ref *dir, const char *name,
			 struct lookup_res *r)
{
	(void)v, (void)dir, (void)name, (void)r;
	return -ENOENT;
}

static int ingest_list(struct vfs *v, const struct node_ref *dir, struct dir_builder *b)
{
	(void)v, (void)dir, (void)b;
	return 0;
}

static int ingest_file_getattr(struct vfs *v, const struct node_ref *n, enum attr_use use,
			       struct vfs_attr *a)
{
	(void)use;
	vfs_attr_init(v, n->ino, a);
	a->mode = S_IFREG | (0200 & ~v->c.umask) | 0200;
	a->mtime_ms = clk_wall_ms();
	a->timeout = 0;
	return 0;
}

/* A new open file with its unlinked staging file. */
static int file_new(struct vfs *v, struct vstream *s, const char *name, struct ingest_file **out)
{
	if (!v->c.ingest_dir)
		return -EROFS;
	struct ingest_file *f = calloc(1, sizeof(*f) + strlen(name) + 1);
	if (!f)
		return -ENOMEM;
	f->fd = open(v->c.ingest_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (f->fd < 0) {
		int e = errno;
		LOG_ERROR(v->c.log, MOD, "cannot make a staging file in %s: %s", v->c.ingest_dir,
			  strerror(e));
		free(f);
		return -e;
	}
	f->f.ops = &node_ingest_file_ops;
	f->stream = s;
	strcpy(f->name, name);
	*out = f;
	return 0;
}

static int ingest_create(struct vfs *v, const struct node_ref *dir, const char *name,
			 mode_t mode, int flags, struct vfs_attr *a, struct vfs_file **out)
{
	(void)mode, (void)flags;
	struct ingest_file *f;
	struct node_ref n;
	int rc = file_new(v, dir->val.stream, name, &f);
	if (rc)
		return rc;
	struct node_val val = { .ops = &node_ingest_file_ops, .stream = dir->val.stream };
	if ((rc = inodes_ref(v->inodes, dir->ino, name, &val, 1, 1, &n)) != 0) {
		close(f->fd);
		free(f);
		return rc;
	}
	ingest_file_getattr(v, &n, ATTR_STAT, a);
	*out = &f->f;
	return 0;
}

/* The name of node n (from the inode table) for the open of a file still known to the kernel. */
static int ingest_open(struct vfs *v, const struct node_ref *n, int flags, struct vfs_file **out,
		       int *direct_io, int *keep_cache)
{
	if ((flags & O_ACCMODE) == O_RDONLY)
		return -EACCES; /* write-only */
	struct ingest_file *f;
	int rc = file_new(v, n->val.stream, "", &f);
	if (rc)
		return rc;
	*direct_io = 1;
	*keep_cache = 0;
	*out = &f->f;
	return 0;
}

static ssize_t ingest_read(struct vfs *v, struct vfs_file *vf, char *buf, size_t size, off_t off)
{
	(void)v, (void)vf, (void)buf, (void)size, (void)off;
	return -EBADF;
}

static ssize_t ingest_write(struct vfs *v, struct vfs_file *vf, const char *buf, size_t size,
			    off_t off)
{
	struct ingest_file *f = (struct ingest_file *)vf;
	if (f->refused)
		return -f->refused;
	for (off_t i = off; i < 4 && (size_t)(i - off) < size; i++) {
		f->head[i] = (unsigned char)buf[i - off];
		f->head_known |= (uint8_t)(1u << i);
	}
	size_t prefix = 0;
	while (prefix < 4 && (f->head_known & (1u << prefix)))
		prefix++;
	if (prefix && !mkvin_sniff(f->head, prefix)) {
		LOG_WARN(v->c.log, MOD, "%s/ingest/%s: not a Matroska file (no EBML header): "
			 "refused, nothing sent", f->stream->name, f->name);
		f->refused = EINVAL;
		return -EINVAL;
	}
	ssize_t n = pwrite(f->fd, buf, size, off);
	if (n < 0)
		return -errno;
	if ((uint64_t)off + (uint64_t)n > f->size)
		f->size = (uint64_t)off + (uint64_t)n;
	f->dirty = 1;
	return n;
}

static int ingest_setattr(struct vfs *v, const struct node_ref *n, int mask, mode_t mode,
			  uid_t uid, gid_t gid, uint64_t size, int64_t mtime_ms,
			  struct vfs_file *vf, struct vfs_attr *a)
{
	(void)mode, (void)uid, (void)gid, (void)mtime_ms;
	struct ingest_file *f = (struct ingest_file *)vf;
	if ((mask & VFS_SET_SIZE) && f && !f->refused) {
		if (ftruncate(f->fd, (off_t)size) != 0)
			return -errno;
		f->size = size;
		f->dirty = 1;
	} else if ((mask & VFS_SET_SIZE) && size != 0) {
		return -EINVAL;
	}
	return ingest_file_getattr(v, n, ATTR_STAT, a);
}

static ssize_t scan_read(void *arg, void *dst, size_t len, uint64_t off)
{
	struct ingest_file *f = arg;
	ssize_t n = pread(f->fd, dst, len, (off_t)off);
	return n < 0 ? -errno : n;
}

static ssize_t body_read(void *arg, void *dst, size_t len)
{
	struct ingest_file *f = arg;
	for (unsigned i = 0; i < f->in->n_skip; i++) {
		uint64_t off = f->in->skip[i].off, end = off + f->in->skip[i].len;
		if ((uint64_t)f->pos >= off && (uint64_t)f->pos < end)
			f->pos = (off_t)end; /* KVS's own tags are not sent back to it */
		else if ((uint64_t)f->pos < off && off - (uint64_t)f->pos < len)
			len = (size_t)(off - (uint64_t)f->pos);
	}
	ssize_t n = pread(f->fd, dst, len, f->pos);
	if (n < 0)
		return -errno;
	f->pos += n;
	return n;
}

/* Producer start time of a RELATIVE upload: the name's stamp, else DateUTC, else now. */
static int64_t start_time(const struct ingest_file *f, const struct mkvin_info *in)
{
	int64_t ms;
	size_t len = strlen(f->name);
	const char *dot = strrchr(f->name, '.');
	if (dot)
		len = (size_t)(dot - f->name);
	if (len && names_parse_stamp(f->name, len, &ms) == 0)
		return ms;
	if (in->has_date && in->date_ms > 0)
		return in->date_ms;
	return clk_wall_ms();
}

/* Waits for the stream's one PutMedia connection (no lock held while sending). */
static void conn_take(struct vstream *s)
{
	pthread_mutex_lock(&s->lock);
	while (s->ingest_busy)
		pthread_cond_wait(&s->ingest_cv, &s->lock);
	s->ingest_busy = 1;
	pthread_mutex_unlock(&s->lock);
}

static void conn_give(struct vstream *s)
{
	pthread_mutex_lock(&s->lock);
	s->ingest_busy = 0;
	pthread_cond_signal(&s->ingest_cv);
	pthread_mutex_unlock(&s->lock);
}

/* Sends the whole staged file; returns 0 or a negative errno (one log line on failure). */
static int send_file(struct vfs *v, struct ingest_file *f)
{
	struct mkvin_info in;
	const char *why;
	int64_t bad_ms;
	const char *sn = f->stream->name;
	int rc = mkvin_scan(scan_read, f, f->size, &in, &why, &bad_ms);
	if (rc == -EINVAL) {
		LOG_WARN(v->c.log, MOD, "%s/ingest/%s: refused, nothing sent: %s%s", sn, f->name, why,
			 bad_ms >= 0 ? " (see docs/INGEST.md)" : "");
		return rc;
	}
	if (rc) {
		LOG_ERROR(v->c.log, MOD, "%s/ingest/%s: cannot read the staging file: %s", sn,
			  f->name, strerror(-rc));
		return rc;
	}
	pthread_mutex_lock(&f->stream->lock);
	int64_t retention = f->stream->retention_hours;
	pthread_mutex_unlock(&f->stream->lock);
	struct kvs_put_opts o = {
		.absolute = in.absolute,
		.start_ms = in.absolute ? in.first_ms
			  : in.has_producer_ts ? in.producer_ts_ms - in.first_ms : start_time(f, &in),
		.read_fn = body_read,
		.read_arg = f,
		.fragments = in.clusters,
		.body_bytes = f->size,
		.need_persisted = retention > 0,
	};
	struct kvs_put_result res;
	struct awserr err;
	f->pos = 0;
	f->in = &in;
	conn_take(f->stream);
	rc = kvs_put_media(v->c.kvs, sn, &o, &res, &err);
	conn_give(f->stream);
	hours_drop(v->hours, f->stream);
	if (rc && res.error_id)
		LOG_WARN(v->c.log, MOD, "%s/ingest/%s: KVS refused the fragment at timecode %" PRId64
			 ": %d %s (%s)", sn, f->name, res.error_timecode, res.error_id,
			 res.error_code[0] ? res.error_code : "no code", strerror(-rc));
	else if (rc)
		LOG_WARN(v->c.log, MOD, "%s/ingest/%s: PutMedia failed: %s%s%s (%s)", sn, f->name,
			 err.type[0] ? err.type : "", err.type[0] ? ": " : "", err.message,
			 strerror(-rc));
	else
		LOG_INFO(v->c.log, MOD, "%s/ingest/%s: %" PRIu64 " fragments stored (%s from %" PRId64
			 ", %" PRIu64 " bytes)", sn, f->name, in.clusters,
			 in.absolute ? "ABSOLUTE" : "RELATIVE", o.start_ms, res.bytes_sent);
	return rc;
}

static int ingest_flush(struct vfs *v, struct vfs_file *vf)
{
	struct ingest_file *f = (struct ingest_file *)vf;
	if (f->refused)
		return -f->refused;
	if (!f->dirty)
		return f->result;
	f->dirty = 0;
	f->result = f->size ? send_file(v, f) : 0;
	return f->result;
}

static void ingest_release(struct vfs *v, struct vfs_file *vf)
{
	struct ingest_file *f = (struct ingest_file *)vf;
	if (f->dirty && !f->refused)
		ingest_flush(v, vf);
	close(f->fd);
	free(f);
}

static void ingest_abandon(struct vfs *v, struct vfs_file *vf)
{
	struct ingest_file *f = (struct ingest_file *)vf;
	if (f->dirty && !f->refused)
		LOG_WARN(v->c.log, MOD, "%s/ingest/%s: still open at unmount: not sent",
			 f->stream->name, f->name);
	close(f->fd);
	free(f);
}

const struct node_ops node_ingest_ops = {
	.kind = "ingest",
	.lookup = ingest_lookup,
	.list = ingest_list,
	.getattr = ingest_dir_getattr,
	.getxattr = node_stream_getxattr,
	.listxattr = node_stream_listxattr,
	.create = ingest_create,
};

const struct node_ops node_ingest_file_ops = {
	.kind = "ingest_file",
	.getattr = ingest_file_getattr,
	.open = ingest_open,
	.read = ingest_read,
	.write = ingest_write,
	.setattr = ingest_setattr,
	.flush = ingest_flush,
	.fsync = ingest_flush,
	.release = ingest_release,
	.abandon = ingest_abandon,
};
