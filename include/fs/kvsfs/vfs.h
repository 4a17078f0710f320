/*
 * vfs: the filesystem logic of kvsfs, independent of FUSE's wire protocol.
 *
 * The FUSE adapter (src/fuse/) translates requests into these calls; this layer owns the inode
 * table, the kinds of directories and files, their listing caches, exact sizes, opens and reads,
 * extended attributes and the live playlists, and calls the service clients (kvs) and the disk
 * cache below it. See docs/SEMANTICS.md for what each operation does on each kind of entry,
 * docs/SIZES.md for how sizes are exact, docs/ARCHITECTURE.md for the core (src/fs/core/) and
 * the node kinds (src/fs/nodes/). This header needs no service header: the clients and caches
 * are opaque here.
 *
 * Inodes: numbers are allocated on first lookup and stay stable while the kernel holds a
 * reference (lookup count); the root is 1. A node is forgotten when its count drops to 0.
 * Thread-safety: every function may be called from any FUSE worker thread.
 */
#ifndef KVSFS_VFS_H
#define KVSFS_VFS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct kvs_client;
struct fcache;
struct sizeidx;
struct clips;
struct export;
struct log_ctx;
struct metrics;
struct vfs;
struct vfs_file;

#define VFS_ROOT_INO 1

struct vfs_config {
	struct kvs_client *kvs;      /* borrowed */
	struct fcache *cache;        /* borrowed */
	struct sizeidx *sizes;       /* borrowed */
	struct clips *clips;         /* borrowed: clips/START-END.mp4 */
	struct export *export;       /* borrowed: the S3-backed folder, NULL when off */
	const char *export_dir;      /* its name in the root */
	struct log_ctx *log;         /* borrowed */
	struct metrics *metrics;     /* borrowed, may be NULL: MNT/.kvsfs/metrics and status */
	const char *options_text;    /* borrowed: the mount's options without secrets (status) */
	char *const *streams;        /* NULL-terminated allow-list, or NULL for all */
	const char *stream_prefix;   /* NULL for all */
	int ts;                      /* enum kvs_ts_type (kvs.h): names, dates and selection by
				      * producer (KVS_TS_PRODUCER) or server (KVS_TS_SERVER) time */
	int meta_ttl_s;              /* how stale a listing of live data may be */
	int past_ttl_s;              /* listing cache of hours that have ended */
	int hls_expires_s;           /* playback session lifetime asked for */
	uid_t uid;
	gid_t gid;
	mode_t umask;
	int live_public;             /* live.m3u8/live.mpd readable by all (needs allow_other) */
	int readahead;               /* fragments per GetMediaForFragmentList batch */
	int image_interval_s;        /* images/: one image per this many seconds (0: 60) */
	int image_width;             /* images/: width in pixels (0: 320) */
	int meta_cache_mb;           /* memory of the cached hour listings, MiB (0: 16) */
	const char *ingest_dir;      /* ingest/ staging folder (NULL: ingest/ refuses writes) */
	int manage_streams;          /* mkdir/rmdir of streams, retention xattr (else EROFS) */
	int default_retention_hours; /* retention of streams made by mkdir */
	/* Asks the kernel to drop cached attributes/data of an inode (set by the FUSE adapter):
	 * queued (safe for the inode of the request being served), or at once (for other inodes,
	 * so the very next stat sees the change). */
	void (*invalidate)(void *arg, uint64_t ino);
	void (*invalidate_now)(void *arg, uint64_t ino);
	/* Asks the kernel to drop the entry name of folder parent and what it keeps below it
	 * (queued; may be NULL): an hour whose listing left the cache (meta_cache). */
	void (*invalidate_entry)(void *arg, uint64_t parent, const char *name);
	void *invalidate_arg;
};

struct vfs_attr {
	uint64_t ino;
	mode_t mode;        /* type and permission bits */
	uint64_t size;
	int64_t mtime_ms;
	unsigned nlink;
	uid_t uid;
	gid_t gid;
	double timeout;     /* seconds the kernel may cache the entry and attributes */
};

struct vfs_dirent {
	char *name;
	struct vfs_attr attr;  /* ino 0 when the entry has no node yet (plain readdir) */
};

struct vfs_dir {
	struct vfs_dirent *v;
	size_t n;
	uint64_t ino;
};

/* Creates the filesystem logic. Returns 0 and *out, or a negative errno with a sentence in err. */
int vfs_new(const struct vfs_config *cfg, struct vfs **out, char *err, size_t errlen);
/* Frees everything (waits for background downloads). */
void vfs_free(struct vfs *v);

/* Startup check: lists the streams once, so a mount that cannot work fails early. Returns 0 or
 * a negative errno with a sentence in err. */
int vfs_check(struct vfs *v, char *err, size_t errlen);

/* Looks name up in parent; on success fills *a and counts one kernel reference. Errors: ENOENT,
 * ENOTDIR, or the errno of a failed listing (never ENOENT for a 5xx or a timeout). */
int vfs_lookup(struct vfs *v, uint64_t parent, const char *name, struct vfs_attr *a);
/* vfs_lookup() for an entry readdirplus emits: the same, except that a live playlist's
 * playback session is only started, never waited for (its size is then a placeholder with
 * timeout 0, see docs/SEMANTICS.md), so a listing returns at once. */
int vfs_lookup_listed(struct vfs *v, uint64_t parent, const char *name, struct vfs_attr *a);
/* Drops n kernel references. */
void vfs_forget(struct vfs *v, uint64_t ino, uint64_t n);
/* Attributes of ino (may wait: a clip is made, a live session waited for ~2 s at most, an
 * export/ entry asked of S3). Errors: ESTALE for an unknown inode, or the failure's errno. */
int vfs_getattr(struct vfs *v, uint64_t ino, struct vfs_attr *a);

/* Lists a directory into a snapshot (with_nodes: create nodes and count one reference per
 * entry, for readdirplus). Free with vfs_dir_free. */
int vfs_opendir(struct vfs *v, uint64_t ino, int with_nodes, struct vfs_dir **out);
/* Frees a snapshot (the references of its entries are the kernel's, see vfs_dir_unref).
 * NULL is a no-op. */
void vfs_dir_free(struct vfs_dir *d);
/* Takes a kernel reference on an entry returned by vfs_opendir(with_nodes) that the adapter
 * could not pass to the kernel (buffer full): releases it again. */
void vfs_dir_unref(struct vfs *v, const struct vfs_dirent *e);

/* Opens a file for reading. *direct_io is set when reads must bypass the page cache (the size
 * the kernel saw may be stale), *keep_cache when cached pages stay valid (immutable data). */
int vfs_open(struct vfs *v, uint64_t ino, int flags, struct vfs_file **out, int *direct_io,
	     int *keep_cache);
/* 1 when closing f has work to do (an export/ file: its upload), 0 when a close needs no
 * FLUSH request at all (the KVS tree's read-only files). */
int vfs_file_flushes(const struct vfs_file *f);
/* Reads up to size bytes at off; returns the count (0 at end of file) or a negative errno. */
ssize_t vfs_read(struct vfs *v, struct vfs_file *f, char *buf, size_t size, off_t off);
/* Closes f and frees it; an export/ file is stored first (a failure is logged, its staged data
 * kept). NULL is a no-op. */
void vfs_release(struct vfs *v, struct vfs_file *f);
/* Frees a file the kernel never released because the session ended: like vfs_release, but an
 * export/ file is not stored (it may be incomplete); its staged data is kept and reported. */
void vfs_abandon(struct vfs *v, struct vfs_file *f);

/* ---- writes: only inside export/; everywhere else they fail with EROFS ---- */

#define VFS_SET_MODE 0x1
#define VFS_SET_OWNER 0x2
#define VFS_SET_SIZE 0x4
#define VFS_SET_MTIME 0x8

/* A symlink, a hard link, or a fifo/socket/device node to be made in parent: always fails,
 * EPERM inside export/ (S3 keeps regular files and folders only), EROFS elsewhere (the KVS
 * tree is read-only), ESTALE for an unknown parent. */
int vfs_make_special(struct vfs *v, uint64_t parent);
/* Creates and opens a file (one kernel reference on success). */
int vfs_create(struct vfs *v, uint64_t parent, const char *name, mode_t mode, int flags,
	       struct vfs_attr *a, struct vfs_file **out);
/* Creates a folder (one kernel reference on success). */
int vfs_mkdir(struct vfs *v, uint64_t parent, const char *name, mode_t mode, struct vfs_attr *a);
/* Removes a file / an empty folder; the node stays valid for the kernel until forgotten. */
int vfs_unlink(struct vfs *v, uint64_t parent, const char *name);
int vfs_rmdir(struct vfs *v, uint64_t parent, const char *name);
/* flags: 0 or RENAME_NOREPLACE (others: EINVAL). */
int vfs_rename(struct vfs *v, uint64_t parent, const char *name, uint64_t newparent,
	       const char *newname, unsigned int flags);
/* Applies the VFS_SET_* parts of mask (f: the open file when the kernel names one) and
 * returns the new attributes. */
int vfs_setattr(struct vfs *v, uint64_t ino, int mask, mode_t mode, uid_t uid, gid_t gid,
		uint64_t size, int64_t mtime_ms, struct vfs_file *f, struct vfs_attr *a);
/* Writes size bytes at off of an export/ file (staged); returns the count or a negative errno
 * (EROFS for any other file). */
ssize_t vfs_write(struct vfs *v, struct vfs_file *f, const char *buf, size_t size, off_t off);
/* close(2) of a descriptor: stores the data and returns 0 only when it is stored. */
int vfs_flush(struct vfs *v, struct vfs_file *f);
/* fsync(2): same guarantee. */
int vfs_fsync(struct vfs *v, struct vfs_file *f);
/* fsync(2) of a directory: every export/ upload not stored yet (write-back: every journaled
 * one) is tried; 0 or the first error. (The kernel sends syncfs, `sync -f`, only to virtiofs
 * servers, so this is how `sync -f` is spelled for a FUSE mount.) */
int vfs_fsyncdir(struct vfs *v, uint64_t ino);

/* The status page of MNT/.kvsfs/status (work in progress, last errors, options) as a malloc'd
 * string the caller frees; NULL when out of memory. For SIGUSR1. */
char *vfs_status_text(struct vfs *v);

/* Extended attributes: value of name into buf (size 0: just the length); returns the length or
 * a negative errno (ENODATA when absent, ERANGE when buf is too small). */
ssize_t vfs_getxattr(struct vfs *v, uint64_t ino, const char *name, char *buf, size_t size);
/* Setting or removing an extended attribute: ENOTSUP in export/, EROFS elsewhere. */
int vfs_setxattr(struct vfs *v, uint64_t ino);
/* Setting name to value (size bytes): a stream folder's user.kvs.retention_hours and
 * user.kvs.delete_confirm with manage_streams (SEMANTICS.md); elsewhere as vfs_setxattr. */
int vfs_setxattr_value(struct vfs *v, uint64_t ino, const char *name, const char *value,
		       size_t size);
/* NUL-separated list of names, same conventions. */
ssize_t vfs_listxattr(struct vfs *v, uint64_t ino, char *buf, size_t size);

#endif
