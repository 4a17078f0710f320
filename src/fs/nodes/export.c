/*
 * export: the nodes of the S3-backed folder, /EXPORT_DIR/... (docs/EXPORT.md, docs/SEMANTICS.md).
 *
 * Two kinds: xdir (the export folder itself and every folder below it) and xfile. They keep no
 * data of their own: every request translates the node into a path relative to the export root
 * (xpath: the names of the node chain up to the export folder, whose parent is the root; the
 * kernel keeps a folder's inode while it holds entries below it) and calls the export module
 * (include/kvsfs/export.h), which owns the objects, the staging and the uploads.
 *
 * Attributes come from export_stat each time (timeout 1 s: other S3 clients may change the
 * bucket); a plain listing of the root shows a placeholder for the folder. The export folder
 * itself is always a folder and belongs to the mount: its mode and times are not stored, so
 * setting them succeeds and changes nothing, while a size or owner change fails with EPERM.
 * A lookup that finds a file where a folder was (or back) turns the node into the new kind.
 * Writes: create, mkdir, unlink, rmdir, rename (flags 0 or RENAME_NOREPLACE), setattr, write,
 * flush, fsync; special files fail with EPERM (S3 keeps regular files and folders only), extended
 * attributes with ENOTSUP (S3 keeps none; cp -p and rsync -a go on), and carry none.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nodes.h"
#include "../core/inodes.h"
#include "kvsfs/export.h"
#include "kvsfs/log.h"

#define XPATH_MAX 1024
#define XDEPTH_MAX 256

struct xfile {
	struct vfs_file f;          /* first: the core's view */
	struct export_file *xf;
};

static int is_export(const struct node_val *val)
{
	return val->ops == &node_xdir_ops || val->ops == &node_xfile_ops;
}

/* ---------------------------------------------------------------- paths */

struct xpath_walk {
	const char *names[XDEPTH_MAX];
	size_t k;
	char *out;
	size_t n;
};

/* inodes_walk_fn: collects the names up to the export folder, then writes the path. */
static int xpath_step(void *arg, uint64_t ino, uint64_t parent, const char *name,
		      const struct node_val *val)
{
	struct xpath_walk *w = arg;
	size_t len = 0;
	(void)ino;
	if (!is_export(val))
		return -ESTALE;
	if (parent != VFS_ROOT_INO) {
		if (w->k == XDEPTH_MAX)
			return -ENAMETOOLONG;
		w->names[w->k++] = name;
		return 0;
	}
	if (val->ops != &node_xdir_ops)
		return -ESTALE;
	w->out[0] = '\0';
	for (size_t i = w->k; i-- > 0;) {
		size_t l = strlen(w->names[i]);
		if (len + l + 2 > w->n)
			return -ENAMETOOLONG;
		if (len)
			w->out[len++] = '/';
		memcpy(w->out + len, w->names[i], l);
		len += l;
		w->out[len] = '\0';
	}
	return 1;
}

/*
 * Path of an export node relative to the export root ("" for the root), from the node chain.
 * Returns 0, -ESTALE or -ENAMETOOLONG.
 */
static int xpath(struct vfs *v, uint64_t ino, char *out, size_t n)
{
	struct xpath_walk w = { .k = 0, .out = out, .n = n };
	out[0] = '\0';
	return inodes_walk_up(v->inodes, ino, xpath_step, &w);
}

/* Path of name inside the export folder parent. */
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

/* Path of name in the folder dir, for a write. */
static int writable_child(struct vfs *v, const struct node_ref *dir, const char *name,
			  char *path, size_t n)
{
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;
	return xchild(v, dir->ino, name, path, n);
}

/* ---------------------------------------------------------------- nodes and attributes */

static void to_attr(struct vfs *v, const struct export_attr *xa, uint64_t ino, struct vfs_attr *a)
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

static void set_kind(struct node_val *val, int is_dir)
{
	memset(val, 0, sizeof(*val));
	val->ops = is_dir ? &node_xdir_ops : &node_xfile_ops;
}

/* Makes (or finds, as that kind) the node of an export entry just created, with one kernel
 * reference, and fills its attributes from xa. */
static int make_node(struct vfs *v, uint64_t parent, const char *name, int is_dir,
		     const struct export_attr *xa, struct vfs_attr *a)
{
	struct node_val val;
	struct node_ref n;
	set_kind(&val, is_dir);
	int rc = inodes_ref(v->inodes, parent, name, &val, 1, 1, &n);
	if (rc == 0)
		to_attr(v, xa, n.ino, a);
	return rc;
}

/* The lookup's answer for an entry stat found. */
static void found(struct vfs *v, const struct export_attr *xa, struct lookup_res *r)
{
	set_kind(&r->val, xa->is_dir);
	r->replace = 1; /* a file replaced by a folder of that name, or back */
	r->have_attr = 1;
	to_attr(v, xa, 0, &r->attr);
}

int node_export_top(struct vfs *v, struct lookup_res *r)
{
	struct export_attr xa;
	int rc = export_stat(v->c.export, "", &xa);
	if (rc)
		return rc;
	xa.is_dir = 1;
	found(v, &xa, r);
	return 0;
}

static int xdir_lookup(struct vfs *v, const struct node_ref *dir, const char *name,
		       struct lookup_res *r)
{
	char path[XPATH_MAX];
	struct export_attr xa;
	int rc = xchild(v, dir->ino, name, path, sizeof(path));
	if (rc == 0)
		rc = export_stat(v->c.export, path, &xa);
	if (rc == 0)
		found(v, &xa, r);
	return rc;
}

struct list_arg {
	struct vfs *v;
	struct dir_builder *b;
	int rc;
};

/* export_list callback: one entry per object or common prefix (no node). */
static int list_one(void *arg, const char *name, const struct export_attr *xa)
{
	struct list_arg *la = arg;
	struct vfs_attr a;
	to_attr(la->v, xa, 0, &a);
	return la->rc = vfs_dir_add_attr(la->b, name, &a);
}

static int xdir_list(struct vfs *v, const struct node_ref *dir, struct dir_builder *b)
{
	char path[XPATH_MAX];
	struct list_arg la = { v, b, 0 };
	int rc = xpath(v, dir->ino, path, sizeof(path));
	if (rc == 0)
		rc = export_list(v->c.export, path, list_one, &la);
	return rc ? rc : la.rc;
}

static int export_getattr(struct vfs *v, const struct node_ref *n, enum attr_use use,
			  struct vfs_attr *a)
{
	char path[XPATH_MAX];
	struct export_attr xa;
	int is_dir = n->val.ops == &node_xdir_ops;
	if (use != ATTR_STAT) {
		/* listing placeholder; real attributes come from a stat or a lookup */
		vfs_attr_init(v, n->ino, a);
		a->mode = (is_dir ? S_IFDIR : S_IFREG) | (0755 & ~v->c.umask);
		a->mtime_ms = v->mount_ms;
		a->timeout = 1;
		return 0;
	}
	int rc = xpath(v, n->ino, path, sizeof(path));
	if (rc == 0)
		rc = export_stat(v->c.export, path, &xa);
	if (rc)
		return rc;
	if (is_dir && n->parent == VFS_ROOT_INO)
		xa.is_dir = 1;
	to_attr(v, &xa, n->ino, a);
	return 0;
}

/* ---------------------------------------------------------------- namespace writes */

static int xdir_create(struct vfs *v, const struct node_ref *dir, const char *name, mode_t mode,
		       int flags, struct vfs_attr *a, struct vfs_file **out)
{
	char path[XPATH_MAX];
	struct export_attr xa;
	(void)flags;
	int rc = writable_child(v, dir, name, path, sizeof(path));
	if (rc)
		return rc;
	struct xfile *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->f.ops = &node_xfile_ops;
	if ((rc = export_create(v->c.export, path, mode & 07777, &f->xf)) != 0) {
		free(f);
		return rc;
	}
	if ((rc = export_stat(v->c.export, path, &xa)) != 0 ||
	    (rc = make_node(v, dir->ino, name, 0, &xa, a)) != 0) {
		export_release(f->xf);
		free(f);
		return rc;
	}
	*out = &f->f;
	return 0;
}

static int xdir_mkdir(struct vfs *v, const struct node_ref *dir, const char *name, mode_t mode,
		      struct vfs_attr *a)
{
	char path[XPATH_MAX];
	struct export_attr xa;
	int rc = writable_child(v, dir, name, path, sizeof(path));
	if (rc == 0)
		rc = export_mkdir(v->c.export, path, mode & 07777);
	if (rc == 0)
		rc = export_stat(v->c.export, path, &xa);
	if (rc == 0)
		rc = make_node(v, dir->ino, name, 1, &xa, a);
	return rc;
}

/* Removes the entry name of dir with op (export_unlink or export_rmdir), then its node. */
static int remove_entry(struct vfs *v, const struct node_ref *dir, const char *name,
			int (*op)(struct export *ex, const char *path))
{
	char path[XPATH_MAX];
	int rc = writable_child(v, dir, name, path, sizeof(path));
	if (rc == 0)
		rc = op(v->c.export, path);
	if (rc == 0)
		inodes_detach(v->inodes, dir->ino, name);
	return rc;
}

static int xdir_unlink(struct vfs *v, const struct node_ref *dir, const char *name)
{
	return remove_entry(v, dir, name, export_unlink);
}

static int xdir_rmdir(struct vfs *v, const struct node_ref *dir, const char *name)
{
	return remove_entry(v, dir, name, export_rmdir);
}

static int xdir_rename(struct vfs *v, const struct node_ref *dir, const char *name,
		       uint64_t newdir, const char *newname, unsigned int flags)
{
	char from[XPATH_MAX], to[XPATH_MAX];
	struct node_ref nd;
	int rc = writable_child(v, dir, name, from, sizeof(from));
	if (rc == 0)
		rc = vfs_node(v, newdir, &nd);
	if (rc == 0 && nd.val.ops != &node_xdir_ops)
		rc = -EROFS; /* out of export/ (or into a file) */
	if (rc == 0)
		rc = writable_child(v, &nd, newname, to, sizeof(to));
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
	inodes_detach(v->inodes, newdir, newname);
	inodes_move(v->inodes, dir->ino, name, newdir, newname); /* no memory: a lookup heals it */
	return 0;
}

static int export_setattr(struct vfs *v, const struct node_ref *n, int mask, mode_t mode,
			  uid_t uid, gid_t gid, uint64_t size, int64_t mtime_ms,
			  struct vfs_file *f, struct vfs_attr *a)
{
	char path[XPATH_MAX];
	int rc = xpath(v, n->ino, path, sizeof(path));
	if (rc)
		return rc;
	if (n->val.ops == &node_xdir_ops && n->parent == VFS_ROOT_INO) {
		/* the export folder itself belongs to the mount: its times and mode are not stored
		 * anywhere, so setting them (rsync -a dir/ MNT/export/) succeeds and changes nothing */
		if (mask & (VFS_SET_SIZE | VFS_SET_OWNER))
			return -EPERM;
		return vfs_getattr(v, n->ino, a);
	}
	struct export_file *xf = f && f->ops == &node_xfile_ops ? ((struct xfile *)f)->xf : NULL;
	if (mask & VFS_SET_SIZE)
		rc = xf ? export_ftruncate(xf, size) : export_truncate(v->c.export, path, size);
	if ((mask & VFS_SET_MODE) && rc == 0)
		rc = export_set_mode(v->c.export, path, mode & 07777);
	if ((mask & VFS_SET_OWNER) && rc == 0)
		rc = export_set_owner(v->c.export, path, uid, gid);
	if ((mask & VFS_SET_MTIME) && rc == 0)
		rc = export_set_times(v->c.export, path, mtime_ms);
	return rc ? rc : vfs_getattr(v, n->ino, a);
}

static int export_make_special(struct vfs *v, const struct node_ref *dir)
{
	(void)v;
	(void)dir;
	return -EPERM; /* S3 keeps regular files and folders only */
}

static int export_setxattr(struct vfs *v, const struct node_ref *n)
{
	(void)v;
	(void)n;
	return -ENOTSUP; /* S3 keeps no extended attributes: cp -p and rsync -a go on */
}

/* ---------------------------------------------------------------- open files */

static int xfile_open(struct vfs *v, const struct node_ref *n, int flags, struct vfs_file **out,
		      int *direct_io, int *keep_cache)
{
	char path[XPATH_MAX];
	(void)direct_io;
	(void)keep_cache;
	struct xfile *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->f.ops = &node_xfile_ops;
	int rc = xpath(v, n->ino, path, sizeof(path));
	if (rc == 0)
		rc = export_open_file(v->c.export, path, flags, &f->xf);
	if (rc) {
		free(f);
		return rc;
	}
	*out = &f->f;
	return 0;
}

static ssize_t xfile_read(struct vfs *v, struct vfs_file *f, char *buf, size_t size, off_t off)
{
	(void)v;
	return export_read(((struct xfile *)f)->xf, buf, size, off);
}

static ssize_t xfile_write(struct vfs *v, struct vfs_file *f, const char *buf, size_t size,
			   off_t off)
{
	(void)v;
	return export_write(((struct xfile *)f)->xf, buf, size, off);
}

static int xfile_flush(struct vfs *v, struct vfs_file *f)
{
	(void)v;
	return export_flush(((struct xfile *)f)->xf);
}

static int xfile_fsync(struct vfs *v, struct vfs_file *f)
{
	(void)v;
	return export_fsync(((struct xfile *)f)->xf);
}

static void xfile_release(struct vfs *v, struct vfs_file *f)
{
	int rc = export_release(((struct xfile *)f)->xf);
	if (rc)
		LOG_ERROR(v->c.log, "vfs", "export: the last upload at release failed (%s); the "
			  "staged data is kept", strerror(-rc));
	free(f);
}

static void xfile_abandon(struct vfs *v, struct vfs_file *f)
{
	(void)v;
	export_abandon(((struct xfile *)f)->xf);
	free(f);
}

const struct node_ops node_xdir_ops = {
	.kind = "export folder",
	.lookup = xdir_lookup,
	.list = xdir_list,
	.getattr = export_getattr,
	.setxattr = export_setxattr,
	.make_special = export_make_special,
	.create = xdir_create,
	.mkdir = xdir_mkdir,
	.unlink = xdir_unlink,
	.rmdir = xdir_rmdir,
	.rename = xdir_rename,
	.setattr = export_setattr,
};

const struct node_ops node_xfile_ops = {
	.kind = "export file",
	.getattr = export_getattr,
	.open = xfile_open,
	.read = xfile_read,
	.release = xfile_release,
	.abandon = xfile_abandon,
	.setxattr = export_setxattr,
	.make_special = export_make_special,
	.setattr = export_setattr,
	.write = xfile_write,
	.flush = xfile_flush,
	.fsync = xfile_fsync,
};
