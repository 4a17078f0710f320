/*
 * fcache: the bounded, persistent disk cache for immutable media (fragment files, stitched clips).
 *
 * Entries are named by arbitrary string keys (1..FCACHE_KEY_MAX bytes, no NUL), for example
 * "frag/<stream>/<number>" or "clip/<stream>/<start>-<end>". Writers stream an entry into a temp
 * file and commit it atomically; readers look an entry up and get a read-only fd plus a pin that
 * keeps it from being evicted until they unpin it. Total size (sum of file sizes) is kept at or
 * below max_bytes by evicting the least recently used unpinned entries.
 *
 * On-disk layout (DIR is fcache_opts.dir):
 *   DIR/lock                         flock(LOCK_EX) held while open: one user per cache dir
 *   DIR/objects/<xx>/<h>             the entry's bytes, exactly (h = sha256 hex of the key,
 *                                    xx = its first two hex digits)
 *   DIR/objects/<xx>/<h>.key         sidecar: "kvsfs-fcache-key 1 <size>\n" then the raw key;
 *                                    where the file system keeps user xattrs, that text is the
 *                                    data file's xattr user.kvsfs.key instead (one file, one
 *                                    inode and one rename per entry); the open accepts both
 *   DIR/tmp/                         writers' temp files and files being deleted
 * Anything else in DIR (for example sizeidx's sizes.log) is left alone.
 *
 * Crash safety: a commit sets the key xattr before the data file's rename (or renames the sidecar
 * into place first and the data file second); a remove
 * or eviction renames the data file away first and unlinks the sidecar second. So a data file
 * exists only with a valid sidecar, and fcache_open() rebuilds the index from the pairs it finds:
 * a data file without a valid sidecar (missing, bad magic, key not hashing to the file name), a
 * sidecar without data, a data file whose size differs from the sidecar's (cut short by a power
 * loss without fsync), unknown names in objects/, and everything in tmp/ are deleted. Contents
 * are not checksummed: with fsync = 0 a power loss may leave an entry of the right size with
 * wrong bytes (set fsync = 1 when that matters); a process crash never does.
 *
 * Space: when a commit pushes the total above max_bytes and every other entry is pinned, the new
 * entry is still kept (the caller is about to read it) and one warning is logged per episode of
 * overflow; the cache shrinks back as pins are released and later commits evict. max_bytes == 0
 * means unbounded.
 *
 * LRU order is kept in memory, initialised from file mtimes at open; fcache_get() moves an entry
 * to the most-recent end and refreshes the file's mtime (at most once a minute per entry) so the
 * order survives a restart approximately.
 *
 * Thread-safety: every function may be called from any thread; one mutex guards the index. Data
 * writes and fsyncs happen outside it; renames, opens of entries and small sidecar operations
 * happen under it (so the index and the disk always agree). A writer object itself is used by one
 * thread at a time. A cache dir used by two mounts (or two fcache_open calls) at once is refused.
 */
#ifndef KVSFS_FCACHE_H
#define KVSFS_FCACHE_H

#include <stddef.h>
#include <stdint.h>

struct log_ctx;
struct fcache;
struct fcache_pin;
struct fcache_writer;

#define FCACHE_KEY_MAX 1024

struct fcache_opts {
	const char *dir;       /* cache directory; created (mode 0700, parents too) if missing */
	uint64_t max_bytes;    /* bound on the sum of entry sizes; 0 = unbounded */
	struct log_ctx *log;   /* may be NULL */
	int fsync;             /* 1: fdatasync data and sidecar before the rename, fsync the dir after */
};

struct fcache_stats {
	uint64_t bytes;        /* sum of sizes of entries (including removed ones still pinned) */
	uint64_t entries;      /* entries visible to fcache_get */
	uint64_t pinned;       /* entries (visible or removed) with at least one pin */
	uint64_t hits;         /* fcache_get found the key */
	uint64_t misses;       /* fcache_get did not */
	uint64_t evictions;    /* entries evicted to respect max_bytes */
	uint64_t max_bytes;    /* the configured bound */
};

/* Opens (creating if needed) the cache in o->dir: takes DIR/lock, deletes leftover temp files and
 * broken entries, rebuilds the index and evicts down to max_bytes. On success *out owns the cache
 * (release with fcache_close) and 0 is returned. On failure returns a negative errno with one
 * sentence in err (size errlen): -EBUSY when another user holds the dir, -EINVAL for bad options,
 * or the errno of the failing system call. */
int fcache_open(const struct fcache_opts *o, struct fcache **out, char *err, size_t errlen);
/* Releases c and its lock. All writers must have been committed or aborted first; outstanding pins
 * become invalid (their fds stay usable). NULL is a no-op. */
void fcache_close(struct fcache *c);

/* Looks key up. On success returns 0, *fd is a new fd opened O_RDONLY|O_CLOEXEC (the caller closes
 * it), *size the entry's size and *pin a pin the caller releases with fcache_unpin (after or before
 * closing fd: the fd keeps the bytes readable either way). -ENOENT when absent, -EINVAL for a bad
 * key, other negative errno if the file cannot be opened. */
int fcache_get(struct fcache *c, const char *key, int *fd, uint64_t *size, struct fcache_pin **pin);
/* Releases one pin. Once an entry's pins reach 0 it may be evicted again (or, if it was removed or
 * replaced meanwhile, its space stops being counted). NULL is a no-op. */
void fcache_unpin(struct fcache *c, struct fcache_pin *pin);
/* Returns 1 and sets *size (if not NULL) when key is cached, else 0. Takes no pin, does not touch
 * LRU order or hit/miss counters. */
int fcache_contains(struct fcache *c, const char *key, uint64_t *size);

/* Starts writing an entry: creates a temp file in DIR/tmp. On success *w is owned by the caller
 * until fcache_commit or fcache_abort. Returns 0, -EINVAL / -ENAMETOOLONG for a bad key, -ENOMEM or
 * the errno of open(2). Several writers may write the same key at once. */
int fcache_begin(struct fcache *c, const char *key, struct fcache_writer **w);
/* Appends len bytes. Returns 0 or a negative errno (then the writer is failed: commit returns the
 * same error; the caller still calls commit or abort to free it). */
int fcache_write(struct fcache_writer *w, const void *data, size_t len);
/* Overwrites len bytes at offset off of what was already written (off + len at most the size
 * written so far; else -EINVAL): for a header whose values are known only at the end. 0 or a
 * negative errno (then the writer is failed, as for fcache_write). */
int fcache_pwrite(struct fcache_writer *w, const void *data, size_t len, uint64_t off);
/* Publishes the entry atomically (readers see the old entry or the new one, never partial data)
 * and frees w in every case. If the key already exists the later commit replaces it (readers that
 * hold fds keep the bytes they opened). Evicts LRU unpinned entries to stay within max_bytes (see
 * the top comment for when that is impossible). Returns 0 with the size in *size (may be NULL), or
 * a negative errno (write/fsync/rename failure; the temp file is removed). */
int fcache_commit(struct fcache_writer *w, uint64_t *size);
/* Like fcache_commit, but also pins the new entry and opens it, as fcache_get would (so it cannot be
 * evicted before the caller reads it). fd/size/pin as for fcache_get. */
int fcache_commit_get(struct fcache_writer *w, int *fd, uint64_t *size, struct fcache_pin **pin);
/* Discards the writer: removes its temp file and frees w. NULL is a no-op. */
void fcache_abort(struct fcache_writer *w);

/* Removes key at once: later fcache_get calls miss and its files are deleted. If it is pinned, the
 * readers' fds keep working and its size stays counted until the last pin is released.
 * Returns 0, -ENOENT when absent, -EINVAL for a bad key. */
int fcache_remove(struct fcache *c, const char *key);

/* Calls fn(arg, key, size) for every entry whose key starts with prefix ("" = all), in strcmp order
 * of keys, from a snapshot taken under the lock (fn runs without it and may call fcache functions).
 * Stops at the first non-zero return of fn and returns that value; returns 0 when all were visited,
 * or -ENOMEM. */
int fcache_list(struct fcache *c, const char *prefix,
		int (*fn)(void *arg, const char *key, uint64_t size), void *arg);

/* Fills *st with a snapshot of the counters. */
void fcache_stats(struct fcache *c, struct fcache_stats *st);

/* Parses the content of a sidecar file (exposed for tests and the fuzz target). On success returns
 * 0 with the recorded data size in *size and *key / *keylen pointing into data (not NUL-
 * terminated); -EINVAL when malformed (bad magic or size, empty or oversized key, NUL in key). */
int fcache_parse_sidecar(const char *data, size_t len, uint64_t *size, const char **key,
		size_t *keylen);

#endif
