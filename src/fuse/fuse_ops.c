/*
 * fuse_ops: libfuse low-level adapter over vfs (see include/kvsfs/fuse_ops.h).
 *
 * Directory handles: opendir takes a snapshot of the listing (vfs_opendir) that readdir and
 * readdirplus page through by offset, so a listing is consistent even while the cache behind it
 * is refreshed. readdirplus looks every emitted entry up (one kernel reference each), and gives
 * the reference back when the reply buffer is full.
 *
 * Open handles: every file and directory handle given to the kernel is on one list (fi->fh
 * points at its struct handle). When the session ends by a signal or an unmount, the kernel may
 * never send RELEASE for handles still open; fuse_ops_free() frees those itself (vfs_abandon: an
 * export/ file still open is not stored, since it may be incomplete, and is reported), so
 * nothing leaks.
 */
#include "kvsfs/fuse_ops.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "kvsfs/clk.h"
#include "kvsfs/log.h"
#include "kvsfs/vfs.h"

struct inval {
	uint64_t ino;
	struct inval *next;
	char name[];      /* "": the inode's cached data; else the entry name of folder ino */
};

struct handle {
	struct handle *prev, *next;
	int is_dir;
	void *obj;        /* struct vfs_file * or struct vfs_dir * */
};

struct fuse_ops_ctx {
	struct vfs *vfs;
	struct handle *handles; /* open handles, under lock */
	struct log_ctx *log;
	struct fuse_session *se;
	pthread_t thread;
	int started, stopping;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct inval *queue;
};

static struct fuse_ops_ctx *CTX(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Registers obj as an open handle and stores it in fi->fh. Returns 0 or -ENOMEM. */
static int handle_add(struct fuse_ops_ctx *c, struct fuse_file_info *fi, int is_dir, void *obj)
{
	struct handle *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->is_dir = is_dir;
	h->obj = obj;
	pthread_mutex_lock(&c->lock);
	h->next = c->handles;
	if (c->handles)
		c->handles->prev = h;
	c->handles = h;
	pthread_mutex_unlock(&c->lock);
	fi->fh = (uint64_t)(uintptr_t)h;
	return 0;
}

static void *handle_obj(const struct fuse_file_info *fi)
{
	return fi && fi->fh ? ((struct handle *)(uintptr_t)fi->fh)->obj : NULL;
}

#define FILE_OF(fi) ((struct vfs_file *)handle_obj(fi))
#define DIR_OF(fi) ((struct vfs_dir *)handle_obj(fi))

/* Unregisters the handle in fi; returns its object (the caller releases it). */
static void *handle_del(struct fuse_ops_ctx *c, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	if (!h)
		return NULL;
	pthread_mutex_lock(&c->lock);
	if (h->prev)
		h->prev->next = h->next;
	else
		c->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	pthread_mutex_unlock(&c->lock);
	void *obj = h->obj;
	free(h);
	fi->fh = 0;
	return obj;
}

static void to_stat(const struct vfs_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = a->ino;
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_size = (off_t)a->size;
	st->st_blksize = 65536;
	st->st_blocks = (blkcnt_t)((a->size + 511) / 512);
	st->st_mtim.tv_sec = a->mtime_ms / 1000;
	st->st_mtim.tv_nsec = (long)(a->mtime_ms % 1000) * 1000000;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

static void to_entry(const struct vfs_attr *a, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = a->ino;
	e->generation = 1;
	e->attr_timeout = a->timeout;
	e->entry_timeout = a->timeout;
	to_stat(a, &e->attr);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	if (conn->capable & FUSE_CAP_READDIRPLUS_AUTO)
		conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO; /* always plus: ls -l, rsync need attributes */
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	conn->max_readahead = 1u << 20;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct vfs_attr a;
	int rc = vfs_lookup(CTX(req)->vfs, parent, name, &a);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	struct fuse_entry_param e;
	to_entry(&a, &e);
	if (fuse_reply_entry(req, &e) != 0)
		vfs_forget(CTX(req)->vfs, a.ino, 1);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	vfs_forget(CTX(req)->vfs, ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		vfs_forget(CTX(req)->vfs, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	struct vfs_attr a;
	int rc = vfs_getattr(CTX(req)->vfs, ino, &a);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	struct stat st;
	to_stat(&a, &st);
	fuse_reply_attr(req, &st, a.timeout);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct fuse_ops_ctx *c = CTX(req);
	int mask = 0;
	int64_t mtime_ms = 0;
	if (to_set & FUSE_SET_ATTR_MODE)
		mask |= VFS_SET_MODE;
	if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
		mask |= VFS_SET_OWNER;
	if (to_set & FUSE_SET_ATTR_SIZE)
		mask |= VFS_SET_SIZE;
	if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) {
		mask |= VFS_SET_MTIME;
		if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
			mtime_ms = clk_wall_ms();
		} else {
			mtime_ms = (int64_t)attr->st_mtim.tv_sec * 1000 + attr->st_mtim.tv_nsec / 1000000;
		}
	}
	/* atime and ctime are not kept: accepted and ignored */
	struct vfs_attr a;
	uid_t uid = (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
	gid_t gid = (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;
	struct vfs_file *f = FILE_OF(fi);
	int rc = mask ? vfs_setattr(c->vfs, ino, mask, attr->st_mode, uid, gid, (uint64_t)attr->st_size,
				    mtime_ms, f, &a)
		      : vfs_getattr(c->vfs, ino, &a);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	struct stat st;
	to_stat(&a, &st);
	fuse_reply_attr(req, &st, a.timeout);
}

static void reply_entry_or_err(fuse_req_t req, int rc, const struct vfs_attr *a)
{
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	struct fuse_entry_param e;
	to_entry(a, &e);
	if (fuse_reply_entry(req, &e) != 0)
		vfs_forget(CTX(req)->vfs, a->ino, 1);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	(void)rdev;
	if (!S_ISREG(mode)) {
		fuse_reply_err(req, -vfs_make_special(CTX(req)->vfs, parent));
		return;
	}
	struct vfs_attr a;
	struct vfs_file *f = NULL;
	int rc = vfs_create(CTX(req)->vfs, parent, name, mode, O_WRONLY, &a, &f);
	if (rc == 0) {
		rc = vfs_flush(CTX(req)->vfs, f);
		vfs_release(CTX(req)->vfs, f);
		if (rc)
			vfs_forget(CTX(req)->vfs, a.ino, 1);
	}
	reply_entry_or_err(req, rc, &a);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct vfs_attr a;
	int rc = vfs_mkdir(CTX(req)->vfs, parent, name, mode, &a);
	reply_entry_or_err(req, rc, &a);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, -vfs_unlink(CTX(req)->vfs, parent, name));
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, -vfs_rmdir(CTX(req)->vfs, parent, name));
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	(void)link;
	(void)name;
	fuse_reply_err(req, -vfs_make_special(CTX(req)->vfs, parent));
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	fuse_reply_err(req, -vfs_rename(CTX(req)->vfs, parent, name, newparent, newname, flags));
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino;
	(void)newname;
	fuse_reply_err(req, -vfs_make_special(CTX(req)->vfs, newparent));
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct vfs_attr a;
	struct vfs_file *f;
	int rc = vfs_create(CTX(req)->vfs, parent, name, mode, fi->flags, &a, &f);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	struct fuse_entry_param e;
	to_entry(&a, &e);
	if (handle_add(CTX(req), fi, 0, f) != 0) {
		vfs_release(CTX(req)->vfs, f);
		vfs_forget(CTX(req)->vfs, a.ino, 1);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (fuse_reply_create(req, &e, fi) != 0) {
		vfs_release(CTX(req)->vfs, handle_del(CTX(req), fi));
		vfs_forget(CTX(req)->vfs, a.ino, 1);
	}
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vfs_file *f;
	int direct_io, keep_cache;
	int rc = vfs_open(CTX(req)->vfs, ino, fi->flags, &f, &direct_io, &keep_cache);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (handle_add(CTX(req), fi, 0, f) != 0) {
		vfs_release(CTX(req)->vfs, f);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fi->direct_io = direct_io ? 1 : 0;
	fi->keep_cache = keep_cache ? 1 : 0;
	/* FOPEN_NOFLUSH: no FLUSH at close for files with nothing to store; a direct_io file (a
	 * live document, a corrected size) keeps it, since the kernel drops its cached attributes
	 * at each FLUSH */
	fi->noflush = !vfs_file_flushes(f) && !direct_io;
	if (fuse_reply_open(req, fi) != 0)
		vfs_release(CTX(req)->vfs, handle_del(CTX(req), fi));
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	(void)ino;
	struct vfs_file *f = FILE_OF(fi);
	char *buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t n = vfs_read(CTX(req)->vfs, f, buf, size, off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	(void)ino;
	ssize_t n = vfs_write(CTX(req)->vfs, FILE_OF(fi), buf, size, off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

/* close(2): the upload's result is the close's result (durability). */
static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	fuse_reply_err(req, -vfs_flush(CTX(req)->vfs, FILE_OF(fi)));
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	fuse_reply_err(req, -vfs_fsync(CTX(req)->vfs, FILE_OF(fi)));
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	vfs_release(CTX(req)->vfs, handle_del(CTX(req), fi));
	fuse_reply_err(req, 0);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vfs_dir *d;
	int rc = vfs_opendir(CTX(req)->vfs, ino, 0, &d);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (handle_add(CTX(req), fi, 1, d) != 0) {
		vfs_dir_free(d);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (fuse_reply_open(req, fi) != 0)
		vfs_dir_free(handle_del(CTX(req), fi));
}

/* Offsets: 1 = ".", 2 = "..", 3 + i = entry i. */
static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi, int plus)
{
	struct fuse_ops_ctx *c = CTX(req);
	struct vfs_dir *d = DIR_OF(fi);
	char *buf = malloc(size);
	size_t used = 0;
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (off_t o = off; (size_t)o < d->n + 2; o++) {
		const char *name;
		struct stat st;
		struct fuse_entry_param e;
		memset(&st, 0, sizeof(st));
		memset(&e, 0, sizeof(e));
		int looked_up = 0;
		if (o == 0) {
			name = ".";
			st.st_ino = ino;
			st.st_mode = S_IFDIR;
		} else if (o == 1) {
			name = "..";
			st.st_mode = S_IFDIR;
		} else {
			const struct vfs_dirent *de = &d->v[o - 2];
			name = de->name;
			if (plus) {
				struct vfs_attr a;
				if (vfs_lookup_listed(c->vfs, ino, name, &a) != 0)
					continue; /* vanished since the snapshot */
				to_entry(&a, &e);
				looked_up = 1;
			} else {
				to_stat(&de->attr, &st);
			}
		}
		size_t need;
		if (plus) {
			if (!looked_up)
				e.attr = st;
			need = fuse_add_direntry_plus(req, buf + used, size - used, name, &e, o + 1);
		} else {
			need = fuse_add_direntry(req, buf + used, size - used, name, &st, o + 1);
		}
		if (need > size - used) {
			if (looked_up)
				vfs_forget(c->vfs, e.ino, 1);
			break;
		}
		used += need;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	readdir_common(req, ino, size, off, fi, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	readdir_common(req, ino, size, off, fi, 1);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, -vfs_fsyncdir(CTX(req)->vfs, ino));
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	vfs_dir_free(handle_del(CTX(req), fi));
	fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	(void)ino;
	struct statvfs s;
	memset(&s, 0, sizeof(s));
	s.f_bsize = 65536;
	s.f_frsize = 65536;
	s.f_namemax = 255;
	s.f_flag = ST_NOSUID | ST_NODEV;
	fuse_reply_statfs(req, &s);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	char *buf = size ? malloc(size) : NULL;
	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t n = vfs_getxattr(CTX(req)->vfs, ino, name, buf, size);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char *buf = size ? malloc(size) : NULL;
	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t n = vfs_listxattr(CTX(req)->vfs, ino, buf, size);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	(void)flags;
	fuse_reply_err(req, -vfs_setxattr_value(CTX(req)->vfs, ino, name, value, size));
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)name;
	fuse_reply_err(req, -vfs_setxattr(CTX(req)->vfs, ino));
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.create = op_create,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.fsync = op_fsync,
	.fsyncdir = op_fsyncdir,
	.release = op_release,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.statfs = op_statfs,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
};

const struct fuse_lowlevel_ops *fuse_ops_table(void)
{
	return &ops;
}

static void *inval_thread(void *arg)
{
	struct fuse_ops_ctx *c = arg;
	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (!c->queue && !c->stopping)
			pthread_cond_wait(&c->cond, &c->lock);
		if (!c->queue && c->stopping)
			break;
		struct inval *q = c->queue;
		c->queue = q->next;
		pthread_mutex_unlock(&c->lock);
		int rc = q->name[0] ? fuse_lowlevel_notify_inval_entry(c->se, q->ino, q->name,
									 strlen(q->name))
				    : fuse_lowlevel_notify_inval_inode(c->se, q->ino, 0, 0);
		if (rc && rc != -ENOENT)
			LOG_DEBUG(c->log, "fuse", "invalidating inode %llu%s%s: %s",
				  (unsigned long long)q->ino, q->name[0] ? " entry " : "", q->name,
				  strerror(-rc));
		free(q);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

void fuse_ops_set_vfs(struct fuse_ops_ctx *c, struct vfs *vfs)
{
	c->vfs = vfs;
}

struct fuse_ops_ctx *fuse_ops_new(struct log_ctx *log)
{
	struct fuse_ops_ctx *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->log = log;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	return c;
}

int fuse_ops_start(struct fuse_ops_ctx *c, struct fuse_session *se)
{
	c->se = se;
	if (pthread_create(&c->thread, NULL, inval_thread, c) != 0)
		return -EAGAIN;
	c->started = 1;
	return 0;
}

/* Queues an invalidation for the invalidation thread (name NULL: the inode's). */
static void inval_queue(struct fuse_ops_ctx *c, uint64_t ino, const char *name)
{
	size_t len = name ? strlen(name) : 0;
	struct inval *q = malloc(sizeof(*q) + len + 1);
	if (!q)
		return;
	q->ino = ino;
	memcpy(q->name, name ? name : "", len + 1);
	pthread_mutex_lock(&c->lock);
	if (!c->started || c->stopping) {
		pthread_mutex_unlock(&c->lock);
		free(q);
		return;
	}
	q->next = c->queue;
	c->queue = q;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

void fuse_ops_invalidate(void *arg, uint64_t ino)
{
	inval_queue(arg, ino, NULL);
}

void fuse_ops_invalidate_entry(void *arg, uint64_t parent, const char *name)
{
	inval_queue(arg, parent, name);
}

void fuse_ops_invalidate_now(void *arg, uint64_t ino)
{
	struct fuse_ops_ctx *c = arg;
	if (!c->started || c->stopping)
		return;
	int rc = fuse_lowlevel_notify_inval_inode(c->se, ino, 0, 0);
	if (rc && rc != -ENOENT)
		LOG_DEBUG(c->log, "fuse", "invalidating inode %llu: %s", (unsigned long long)ino,
			  strerror(-rc));
}

void fuse_ops_free(struct fuse_ops_ctx *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stopping = 1;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	if (c->started)
		pthread_join(c->thread, NULL);
	while (c->queue) {
		struct inval *q = c->queue;
		c->queue = q->next;
		free(q);
	}
	/* handles the kernel never released (the session ended first) */
	while (c->handles) {
		struct handle *h = c->handles;
		c->handles = h->next;
		if (h->is_dir)
			vfs_dir_free(h->obj);
		else if (c->vfs)
			vfs_abandon(c->vfs, h->obj);
		free(h);
	}
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
