/*
 * fcache_int.h: what the files of the disk cache share. Private: the API, the on-disk layout,
 * crash safety and the space policy are in include/kvsfs/fcache.h.
 *
 * Files (one concept each):
 *   fcache_index.c  keys and file names, the in-memory index (util/hashmap keyed by the key's
 *                   SHA-256), the LRU and detached lists, pins, eviction, deleting files
 *   fcache_disk.c   opening and closing a cache dir: the lock, tmp/ cleanup, sidecar parsing and
 *                   rebuilding the index from objects/ (recovery after a crash)
 *   fcache.c        the operations: get, contains, unpin, writers and commit, remove, list, stats
 *
 * Index: every visible entry is in c->index (hash = the first 8 bytes of the key's SHA-256,
 * which also names its file, so a lookup never hashes the key twice). Visible entries with no
 * pins are also on the LRU list (head = most recently used, tail = next victim); pinned entries
 * are on no list, so eviction never scans them. An entry that is removed or replaced while pinned
 * is "detached": out of the index, on the detached list, its bytes still counted until its last
 * pin goes (its file is already gone; readers' fds keep the inode alive).
 *
 * Invariants under c->lock: bytes == sum of sizes of indexed entries + detached entries;
 * pinned == entries (indexed or detached) with pins > 0; an indexed entry's data file
 * objects/<xx>/<h> exists with its key: xattr user.kvsfs.key, or the sidecar <h>.key (unless
 * deleted behind our back, noticed by fcache_get).
 * Files are deleted by renaming them into tmp/ under the lock (cheap, and a later commit of the
 * same key cannot be hit) and unlinking them after the lock is released (struct trash).
 * Functions named *_locked are called with c->lock held.
 */
#ifndef KVSFS_FCACHE_INT_H
#define KVSFS_FCACHE_INT_H

#include "kvsfs/fcache.h"
#include "kvsfs/hashmap.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MOD "fcache"
#define KEY_MAGIC "kvsfs-fcache-key 1 "
#define KEY_MAGIC_LEN (sizeof(KEY_MAGIC) - 1)
#define SIDECAR_MAX (KEY_MAGIC_LEN + 21 + FCACHE_KEY_MAX) /* magic, size + '\n', key */
#define TOUCH_INTERVAL 60 /* seconds between mtime refreshes of one entry */
#define REL_MAX 80        /* "xx/" + 64 hex + ".key" + NUL, with room */
#define KEY_XATTR "user.kvsfs.key" /* the sidecar's text on the data file itself */

/* One cache entry; the pin handles given to readers point at it. */
struct fcache_pin {
	struct hashmap_node node;       /* in c->index while visible */
	struct fcache_pin *prev, *next; /* LRU list or detached list */
	uint64_t size;
	int64_t touched;               /* when the file's mtime was last set (seconds) */
	unsigned pins;
	bool detached;
	bool in_lru;
	uint8_t md[32];
	size_t keylen;
	char key[];
};

struct fcache {
	pthread_mutex_t lock;
	struct log_ctx *log;
	char *dir;
	int lockfd, objfd, tmpfd;
	int fsync;
	uint64_t max_bytes;
	uint64_t bytes, pinned, hits, misses, evictions;
	struct hashmap index;           /* visible entries, by digest */
	struct fcache_pin *lru_first, *lru_last;
	struct fcache_pin *detached;
	uint64_t seq;                   /* names of temp and trash files */
	bool overfull_warned;
};

/* Data files renamed into tmp/ under the lock, unlinked after it (fc_trash_empty). */
struct trash {
	uint64_t *seqs;
	size_t n, cap;
};

/* ---- keys and names (fcache_index.c) ---- */

/* SHA-256 of the key into md. 0 or -EIO. */
int fc_key_digest(const char *key, size_t len, uint8_t md[32]);
/* Checks a key and computes its digest: 0 with its length and md, -EINVAL (NULL, empty),
 * -ENAMETOOLONG or -EIO. */
int fc_key_md(const char *key, size_t *len, uint8_t md[32]);
/* "xx/<hex>" or "xx/<hex>.key", relative to objfd. */
void fc_rel_path(const uint8_t md[32], bool sidecar, char out[REL_MAX]);
/* "xx", the objects/ subdirectory of md. */
void fc_sub_name(const uint8_t md[32], char out[3]);
/* Wall-clock seconds (compared with file mtimes). */
int64_t fc_now_sec(void);

/* ---- the index (fcache_index.c) ---- */

/* Initialises c's index (empty). 0 or -ENOMEM. */
int fc_index_init(struct fcache *c);
/* Frees every entry (indexed and detached) and the index. */
void fc_index_free(struct fcache *c);
/* Number of visible entries. */
uint64_t fc_count(const struct fcache *c);
/* A new entry (not indexed) or NULL when out of memory. */
struct fcache_pin *fc_entry_new(const char *key, size_t keylen, const uint8_t md[32],
		uint64_t size, int64_t touched);
struct fcache_pin *fc_find_locked(struct fcache *c, const uint8_t md[32]);
/* Makes e visible and counts its bytes; the caller then pins it or puts it on the LRU list. */
void fc_insert_locked(struct fcache *c, struct fcache_pin *e);
void fc_lru_push_front(struct fcache *c, struct fcache_pin *e);
/* Takes e out of the index. An unpinned entry is freed; a pinned one is detached and freed by
 * its last unpin. */
void fc_unindex_locked(struct fcache *c, struct fcache_pin *e);
void fc_pin_locked(struct fcache *c, struct fcache_pin *e);
void fc_unpin_locked(struct fcache *c, struct fcache_pin *e);
/* Evicts LRU unpinned entries (never keep) until bytes <= max_bytes; logs one warning per
 * episode of overflow. */
void fc_evict_locked(struct fcache *c, const struct fcache_pin *keep, struct trash *t);

/* ---- deleting files (fcache_index.c) ---- */

/* Deletes the files of the entry with digest md: the data file is renamed into tmp/ (recorded
 * in t) or unlinked directly if that fails; the sidecar is unlinked. */
void fc_drop_files_locked(struct fcache *c, const uint8_t md[32], struct trash *t);
/* Unlinks what fc_drop_files_locked moved aside, and empties t. Called without the lock. */
void fc_trash_empty(struct fcache *c, struct trash *t);

#endif
