/*
 * vfs_int.h: what the fs core shares with the node kinds (private to src/fs/core and
 * src/fs/nodes; the FUSE adapter only sees include/kvsfs/vfs.h).
 *
 * A node is an inode number, its parent and name (the inode table's, core/inodes.c) and a value
 * (struct node_val): its kind's operations table and what the kind needs to answer any request
 * without a path walk (stream, times, fragment metadata). Kinds receive a copy of the node taken
 * under the table's lock (struct node_ref), so no kind ever holds that lock, and a node forgotten
 * meanwhile cannot vanish under them. An open file (struct vfs_file) is the first member of a
 * kind's own file struct and carries the kind's table.
 *
 * Dispatch (core/vfs.c): every vfs_* function finds the node and calls the entry of its kind's
 * table; the core never asks which kind a node is. A NULL entry means the default written beside
 * it. The tables are listed in nodes/nodes.h: adding a kind is adding one file there, one line
 * in nodes.h, and the lookup/list of the folder kind that shows it.
 */
#ifndef KVSFS_FS_CORE_VFS_INT_H
#define KVSFS_FS_CORE_VFS_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kvsfs/kvs.h"
#include "kvsfs/vfs.h"

struct fetcher;
struct hours;
struct imgcache;
struct inodes;
struct live_set;
struct node_ops;
struct streams;
struct vstream;

#define VFS_IMMUTABLE_TIMEOUT 3600.0 /* attribute timeout of what never changes */
#define VFS_READAHEAD_MAX 1000       /* fragments per read-ahead batch, at most (the API's max) */

/* A node's value: the kind, and what the kind keeps (unused fields are 0). */
struct node_val {
	const struct node_ops *ops;  /* the kind */
	struct vstream *stream;      /* every node of a stream's tree; NULL for the root, export/ */
	int64_t t0;                  /* DAY, HOUR, FRAGMENT: start of the day/hour; CLIP: start */
	int64_t t1;                  /* FRAGMENT: start on the mount's basis; CLIP: end */
	struct kvs_fragment frag;    /* FRAGMENT */
};

/* A copy of a node, taken under the inode table's lock. ino is 0 for an entry of a plain
 * listing, which has no node. */
struct node_ref {
	uint64_t ino;
	uint64_t parent;
	struct node_val val;
};

/* What a folder kind's lookup found for a name. */
struct lookup_res {
	struct node_val val;         /* the child's value */
	int replace;                 /* 1: an existing node of that name takes this value whatever
				      * its kind (export/: a file replaced by a folder); 0: only a
				      * node of the same kind is refreshed */
	int have_attr;               /* 1: attr is the child's (made by the lookup itself) */
	struct vfs_attr attr;        /* ino is set by the core */
};

/* Which request the attributes answer (a kind may answer more cheaply in listings). */
enum attr_use {
	ATTR_STAT,                   /* getattr, lookup: the true attributes, may wait */
	ATTR_LISTED,                 /* readdirplus: must not wait long (docs/SEMANTICS.md) */
	ATTR_ENTRY,                  /* an entry of a plain listing (the kernel reads the type) */
};

struct dir_builder;

/* The open file of a kind: the first member of the kind's file struct. */
struct vfs_file {
	const struct node_ops *ops;
};

/*
 * A kind's operations. dir/n are the node the request names; results follow the public vfs_*
 * function of the same name (include/kvsfs/vfs.h). Entries may be NULL: the default follows.
 */
struct node_ops {
	const char *kind;            /* for logs */
	/* folders: the child called name (NULL: -ENOTDIR); the entries (NULL: -ENOTDIR) */
	int (*lookup)(struct vfs *v, const struct node_ref *dir, const char *name,
		      struct lookup_res *r);
	int (*list)(struct vfs *v, const struct node_ref *dir, struct dir_builder *b);
	/* attributes (required) */
	int (*getattr)(struct vfs *v, const struct node_ref *n, enum attr_use use,
		       struct vfs_attr *a);
	/* files: open (NULL: -EISDIR); read (required with open); release frees f (required
	 * with open); abandon (NULL: release) */
	int (*open)(struct vfs *v, const struct node_ref *n, int flags, struct vfs_file **out,
		    int *direct_io, int *keep_cache);
	ssize_t (*read)(struct vfs *v, struct vfs_file *f, char *buf, size_t size, off_t off);
	void (*release)(struct vfs *v, struct vfs_file *f);
	void (*abandon)(struct vfs *v, struct vfs_file *f);
	/* extended attributes (NULL: none, -ENODATA / an empty list); setting (NULL: -EROFS) */
	ssize_t (*getxattr)(struct vfs *v, const struct node_ref *n, const char *name, char *buf,
			    size_t size);
	ssize_t (*listxattr)(struct vfs *v, const struct node_ref *n, char *buf, size_t size);
	int (*setxattr)(struct vfs *v, const struct node_ref *n);
	/* setting one with its value (NULL: setxattr above) */
	int (*setxattr_value)(struct vfs *v, const struct node_ref *n, const char *name,
			      const char *value, size_t size);
	/* writes (NULL: -EROFS, the KVS tree is read-only); special files (NULL: -EROFS) */
	int (*make_special)(struct vfs *v, const struct node_ref *dir);
	int (*create)(struct vfs *v, const struct node_ref *dir, const char *name, mode_t mode,
		      int flags, struct vfs_attr *a, struct vfs_file **out);
	int (*mkdir)(struct vfs *v, const struct node_ref *dir, const char *name, mode_t mode,
		     struct vfs_attr *a);
	int (*unlink)(struct vfs *v, const struct node_ref *dir, const char *name);
	int (*rmdir)(struct vfs *v, const struct node_ref *dir, const char *name);
	int (*rename)(struct vfs *v, const struct node_ref *dir, const char *name,
		      uint64_t newdir, const char *newname, unsigned int flags);
	int (*setattr)(struct vfs *v, const struct node_ref *n, int mask, mode_t mode, uid_t uid,
		       gid_t gid, uint64_t size, int64_t mtime_ms, struct vfs_file *f,
		       struct vfs_attr *a);
	/* open files: write (NULL: -EROFS); flush and fsync (NULL: 0, nothing to store) */
	ssize_t (*write)(struct vfs *v, struct vfs_file *f, const char *buf, size_t size,
			 off_t off);
	int (*flush)(struct vfs *v, struct vfs_file *f);
	int (*fsync)(struct vfs *v, struct vfs_file *f);
};

/* The filesystem: the mount's settings and the core's parts (all set up by vfs_new). */
struct vfs {
	struct vfs_config c;         /* meta_ttl_s, past_ttl_s, hls_expires_s: defaults applied */
	struct inodes *inodes;       /* core/inodes.c */
	struct streams *streams;     /* core/streams.c: registry and retention windows */
	struct hours *hours;         /* core/hours.c: hour-listing cache */
	struct fetcher *fetch;       /* batched fragment downloads into the disk cache */
	struct live_set *live;       /* live.m3u8 / live.mpd playback sessions */
	struct imgcache *images;     /* images/: listings of GetImages (src/fs/imgcache.c) */
	int64_t mount_ms;            /* wall time of the mount: mtime of the root */
};

/* ---- core helpers for the kinds (core/vfs.c) ---- */

/* A copy of node ino: 0, or -ESTALE when the kernel forgot it. */
int vfs_node(struct vfs *v, uint64_t ino, struct node_ref *out);
/* Attributes every kind starts from: ino, owner, one link, timeout meta_ttl, the rest 0. */
void vfs_attr_init(const struct vfs *v, uint64_t ino, struct vfs_attr *a);
/* vfs_attr_init() for a read-only folder with mtime mtime_ms. */
void vfs_attr_dir(const struct vfs *v, uint64_t ino, int64_t mtime_ms, struct vfs_attr *a);
/* Open flags of a read-only file: 0, or -EROFS when they ask to write, truncate or create. */
int vfs_open_flags_ro(int flags);
/* Reads size bytes at off of a file of file_size bytes from fd (0 at its end); -EIO with one
 * log line (what names the file) on a read error or a short file. */
ssize_t vfs_pread_file(struct vfs *v, int fd, uint64_t file_size, char *buf, size_t size,
		       off_t off, const char *what);
/* Copies an extended attribute's value (size 0: just the length): its length, or -ERANGE. */
ssize_t vfs_xattr_value(const char *val, char *buf, size_t size);
/* The NUL-separated list of n names (same conventions). */
ssize_t vfs_xattr_list(const char *const *names, size_t n, char *buf, size_t size);

/* Adds the entry name with child value proto to a listing being built: with nodes (readdirplus
 * snapshots) the node is made and referenced, its attributes filled (ATTR_LISTED, else
 * ATTR_ENTRY). Returns 0 or -ENOMEM. */
int vfs_dir_add(struct dir_builder *b, const char *name, const struct node_val *proto);
/* Adds an entry that gets no node, with attributes a (ino 0). Returns 0 or -ENOMEM. */
int vfs_dir_add_attr(struct dir_builder *b, const char *name, const struct vfs_attr *a);

#endif
