/*
 * fcache: bounded persistent disk cache for immutable media (see include/kvsfs/fcache.h for the
 * on-disk layout, crash safety and the space policy).
 *
 * Index: a chained hash table keyed by the key's SHA-256 (which also names the file), so lookups
 * never rehash strings and 100,000+ entries cost O(1) each. Every visible entry is in the table.
 * Visible entries with no pins are also on the LRU list (head = most recently used, tail = next
 * victim); pinned entries are on no list, so eviction never scans them. An entry that is removed
 * or replaced while pinned is "detached": out of the table, on the detached list, its bytes still
 * counted until its last pin goes (its file is already gone; readers' fds keep the inode alive).
 *
 * Invariants under c->lock: bytes == sum of sizes of table entries + detached entries;
 * entries == number of table entries; pinned == entries (table or detached) with pins > 0; a table
 * entry's files objects/<xx>/<h> and <h>.key exist (unless deleted behind our back, noticed by
 * fcache_get). Files are deleted by renaming them into tmp/ under the lock (cheap, and a later
 * commit of the same key cannot be hit) and unlinking them after the lock is released.
 */
#include "kvsfs/fcache.h"

#include "kvsfs/buf.h"
#include "kvsfs/fsutil.h"
#include "kvsfs/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#define MOD "fcache"
#define KEY_MAGIC "kvsfs-fcache-key 1 "
#define KEY_MAGIC_LEN (sizeof(KEY_MAGIC) - 1)
#define SIDECAR_MAX (KEY_MAGIC_LEN + 21 + FCACHE_KEY_MAX) /* magic, size + '\n', key */
#define TOUCH_INTERVAL 60 /* seconds between mtime refreshes of one entry */
#define REL_MAX 80        /* "xx/" + 64 hex + ".key" + NUL, with room */

/* One cache entry; the pin handles given to readers point at it. */
struct fcache_pin {
	struct fcache_pin *hnext;      /* hash chain */
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

struct fcache {
	pthread_mutex_t lock;
	struct log_ctx *log;
	char *dir;
	int lockfd, objfd, tmpfd;
	int fsync;
	uint64_t max_bytes;
	uint64_t bytes, entries, pinned, hits, misses, evictions;
	struct fcache_pin **buckets;
	size_t nbuckets;
	struct fcache_pin *lru_first, *lru_last;
	struct fcache_pin *detached;
	uint64_t seq;
	bool overfull_warned;
};

/* ---- keys, digests, names ---- */

static int key_check(const char *key, size_t *len)
{
	if (!key)
		return -EINVAL;
	size_t n = strnlen(key, FCACHE_KEY_MAX + 1);
	if (n == 0)
		return -EINVAL;
	if (n > FCACHE_KEY_MAX)
		return -ENAMETOOLONG;
	*len = n;
	return 0;
}

static int key_digest(const char *key, size_t len, uint8_t md[32])
{
	unsigned int mdlen = 0;
	unsigned char out[EVP_MAX_MD_SIZE];
	if (EVP_Digest(key, len, out, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
		return -EIO;
	memcpy(md, out, 32);
	return 0;
}

static void md_hex(const uint8_t md[32], char hex[65])
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < 32; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[64] = '\0';
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/* Parses exactly n lowercase hex digits. Returns 0 or -1. */
static int parse_hex(const char *s, size_t n, uint8_t *out)
{
	for (size_t i = 0; i < n; i += 2) {
		int hi = hexval(s[i]), lo = hexval(s[i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/* "xx/<hex>" or "xx/<hex>.key", relative to objfd. */
static void rel_path(const uint8_t md[32], bool sidecar, char out[REL_MAX])
{
	char hex[65];
	md_hex(md, hex);
	snprintf(out, REL_MAX, "%.2s/%s%s", hex, hex, sidecar ? ".key" : "");
}

static void sub_name(const uint8_t md[32], char out[3])
{
	char hex[65];
	md_hex(md, hex);
	out[0] = hex[0];
	out[1] = hex[1];
	out[2] = '\0';
}

static int64_t now_sec(void)
{
	return (int64_t)time(NULL);
}

/* ---- hash table and lists (all under c->lock) ---- */

static size_t bucket_of(const struct fcache *c, const uint8_t md[32])
{
	uint64_t h;
	memcpy(&h, md, sizeof(h));
	return (size_t)(h & (c->nbuckets - 1));
}

static struct fcache_pin *ht_find(struct fcache *c, const uint8_t md[32])
{
	for (struct fcache_pin *e = c->buckets[bucket_of(c, md)]; e; e = e->hnext)
		if (memcmp(e->md, md, 32) == 0)
			return e;
	return NULL;
}

static void ht_grow(struct fcache *c)
{
	size_t n = c->nbuckets * 2;
	struct fcache_pin **nb = calloc(n, sizeof(*nb));
	if (!nb)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < c->nbuckets; i++) {
		struct fcache_pin *e = c->buckets[i], *next;
		for (; e; e = next) {
			next = e->hnext;
			uint64_t h;
			memcpy(&h, e->md, sizeof(h));
			size_t b = (size_t)(h & (n - 1));
			e->hnext = nb[b];
			nb[b] = e;
		}
	}
	free(c->buckets);
	c->buckets = nb;
	c->nbuckets = n;
}

static void ht_insert(struct fcache *c, struct fcache_pin *e)
{
	if (c->entries >= c->nbuckets)
		ht_grow(c);
	size_t b = bucket_of(c, e->md);
	e->hnext = c->buckets[b];
	c->buckets[b] = e;
	c->entries++;
}

static void ht_remove(struct fcache *c, struct fcache_pin *e)
{
	struct fcache_pin **pp = &c->buckets[bucket_of(c, e->md)];
	for (; *pp; pp = &(*pp)->hnext) {
		if (*pp == e) {
			*pp = e->hnext;
			e->hnext = NULL;
			c->entries--;
			return;
		}
	}
}

static void lru_unlink(struct fcache *c, struct fcache_pin *e)
{
	if (!e->in_lru)
		return;
	if (e->prev)
		e->prev->next = e->next;
	else
		c->lru_first = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->lru_last = e->prev;
	e->prev = e->next = NULL;
	e->in_lru = false;
}

static void lru_push_front(struct fcache *c, struct fcache_pin *e)
{
	e->prev = NULL;
	e->next = c->lru_first;
	if (c->lru_first)
		c->lru_first->prev = e;
	else
		c->lru_last = e;
	c->lru_first = e;
	e->in_lru = true;
}

static void detached_push(struct fcache *c, struct fcache_pin *e)
{
	e->detached = true;
	e->prev = NULL;
	e->next = c->detached;
	if (c->detached)
		c->detached->prev = e;
	c->detached = e;
}

static void detached_unlink(struct fcache *c, struct fcache_pin *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->detached = e->next;
	if (e->next)
		e->next->prev = e->prev;
	e->prev = e->next = NULL;
}

static struct fcache_pin *entry_new(const char *key, size_t keylen, const uint8_t md[32],
		uint64_t size, int64_t touched)
{
	struct fcache_pin *e = calloc(1, sizeof(*e) + keylen + 1);
	if (!e)
		return NULL;
	memcpy(e->key, key, keylen);
	e->key[keylen] = '\0';
	e->keylen = keylen;
	memcpy(e->md, md, 32);
	e->size = size;
	e->touched = touched;
	return e;
}

/* ---- deleting files: rename into tmp/ under the lock, unlink after ---- */

struct trash {
	uint64_t *seqs;
	size_t n, cap;
};

static void trash_name(uint64_t seq, char out[32])
{
	snprintf(out, 32, "del.%" PRIu64, seq);
}

/* Deletes the files of the entry with digest md. Under c->lock. The data file is renamed into
 * tmp/ (recorded in t, unlinked later by trash_empty) or unlinked directly if that fails. */
static void drop_files_locked(struct fcache *c, const uint8_t md[32], struct trash *t)
{
	char rel[REL_MAX], name[32];
	rel_path(md, false, rel);
	bool moved = false;
	if (t->n == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 8;
		uint64_t *p = realloc(t->seqs, ncap * sizeof(*p));
		if (p) {
			t->seqs = p;
			t->cap = ncap;
		}
	}
	if (t->n < t->cap) {
		uint64_t seq = c->seq++;
		trash_name(seq, name);
		if (renameat(c->objfd, rel, c->tmpfd, name) == 0) {
			t->seqs[t->n++] = seq;
			moved = true;
		}
	}
	if (!moved && unlinkat(c->objfd, rel, 0) != 0 && errno != ENOENT)
		LOG_WARN(c->log, MOD, "cannot delete %s/objects/%s: %s", c->dir, rel, strerror(errno));
	rel_path(md, true, rel);
	if (unlinkat(c->objfd, rel, 0) != 0 && errno != ENOENT)
		LOG_WARN(c->log, MOD, "cannot delete %s/objects/%s: %s", c->dir, rel, strerror(errno));
}

/* Unlinks what drop_files_locked moved aside. Called without the lock. */
static void trash_empty(struct fcache *c, struct trash *t)
{
	char name[32];
	for (size_t i = 0; i < t->n; i++) {
		trash_name(t->seqs[i], name);
		if (unlinkat(c->tmpfd, name, 0) != 0 && errno != ENOENT)
			LOG_WARN(c->log, MOD, "cannot delete %s/tmp/%s: %s", c->dir, name,
					strerror(errno));
	}
	free(t->seqs);
	t->seqs = NULL;
	t->n = t->cap = 0;
}

/* Takes e out of the index (it must be in the table). An unpinned entry is freed; a pinned one
 * is detached and freed by its last unpin. Under c->lock. */
static void unindex_locked(struct fcache *c, struct fcache_pin *e)
{
	ht_remove(c, e);
	if (e->pins == 0) {
		lru_unlink(c, e);
		c->bytes -= e->size;
		free(e);
	} else {
		detached_push(c, e);
	}
}

/* Evicts LRU unpinned entries (never keep) until bytes <= max_bytes. Under c->lock. */
static void evict_locked(struct fcache *c, const struct fcache_pin *keep, struct trash *t)
{
	if (c->max_bytes == 0)
		return;
	while (c->bytes > c->max_bytes) {
		struct fcache_pin *v = c->lru_last;
		if (!v || v == keep)
			break;
		drop_files_locked(c, v->md, t);
		LOG_DEBUG(c->log, MOD, "evicted %s (%" PRIu64 " bytes)", v->key, v->size);
		c->evictions++;
		unindex_locked(c, v);
	}
	if (c->bytes > c->max_bytes) {
		if (!c->overfull_warned)
			LOG_WARN(c->log, MOD, "cache %s holds %" PRIu64 " bytes, above its limit of %"
					PRIu64 ": what is left is pinned by open files or was just stored; "
					"it shrinks as files are closed and new entries come",
					c->dir, c->bytes, c->max_bytes);
		c->overfull_warned = true;
	} else {
		c->overfull_warned = false;
	}
}

static void pin_locked(struct fcache *c, struct fcache_pin *e)
{
	if (e->pins++ == 0) {
		lru_unlink(c, e);
		c->pinned++;
	}
}

static void unpin_locked(struct fcache *c, struct fcache_pin *e)
{
	if (e->pins == 0)
		return;
	if (--e->pins > 0)
		return;
	c->pinned--;
	if (e->detached) {
		detached_unlink(c, e);
		c->bytes -= e->size;
		free(e);
	} else {
		lru_push_front(c, e);
	}
}

/* ---- open / close ---- */

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* mkdir -p with mode 0700 for the directories it creates. Returns 0 or -errno. */
static int mkdir_p(const char *path)
{
	int r = fsutil_mkdir_p(path);
	if (r == 0) {
		struct stat st;
		if (stat(path, &st) != 0)
			r = -errno;
		else if (!S_ISDIR(st.st_mode))
			r = -ENOTDIR;
	}
	return r;
}

static int open_subdir(int dirfd, const char *name, bool create)
{
	if (create && mkdirat(dirfd, name, 0700) != 0 && errno != EEXIST)
		return -errno;
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Removes every regular file in tmp/. Returns how many. */
static unsigned clean_tmp(struct fcache *c)
{
	unsigned n = 0;
	int fd = dup(c->tmpfd);
	if (fd < 0)
		return 0;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return 0;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(c->tmpfd, de->d_name, 0) == 0)
			n++;
		else
			LOG_WARN(c->log, MOD, "cannot delete %s/tmp/%s: %s", c->dir, de->d_name,
					strerror(errno));
	}
	closedir(d);
	return n;
}

int fcache_parse_sidecar(const char *data, size_t len, uint64_t *size, const char **key,
		size_t *keylen)
{
	if (len < KEY_MAGIC_LEN || memcmp(data, KEY_MAGIC, KEY_MAGIC_LEN) != 0)
		return -EINVAL;
	size_t i = KEY_MAGIC_LEN;
	uint64_t v = 0;
	size_t digits = 0;
	for (; i < len && data[i] >= '0' && data[i] <= '9'; i++, digits++) {
		uint64_t d = (uint64_t)(data[i] - '0');
		if (digits == 20 || v > (UINT64_MAX - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	if (digits == 0 || i == len || data[i] != '\n')
		return -EINVAL;
	i++;
	size_t n = len - i;
	if (n == 0 || n > FCACHE_KEY_MAX || memchr(data + i, '\0', n))
		return -EINVAL;
	*size = v;
	*key = data + i;
	*keylen = n;
	return 0;
}

/* Reads and validates the sidecar of data file hexname in subfd. Returns a new entry or NULL
 * (invalid or out of memory: *bad says which). */
static struct fcache_pin *load_pair(struct fcache *c, int subfd, const char *hexname,
		const struct stat *st, bool *bad)
{
	char kname[300];
	char data[SIDECAR_MAX + 1];
	uint8_t want[32], got[32];
	*bad = true;
	if (parse_hex(hexname, 64, want) != 0)
		return NULL;
	snprintf(kname, sizeof(kname), "%s.key", hexname);
	int fd = openat(subfd, kname, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return NULL;
	size_t len = 0;
	for (;;) {
		ssize_t n = read(fd, data + len, sizeof(data) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == sizeof(data) || (size_t)n < (size_t)st->st_blksize)
			break; /* a short read of a regular file is its end */
	}
	close(fd);
	const char *key;
	size_t keylen;
	uint64_t size;
	if (fcache_parse_sidecar(data, len, &size, &key, &keylen) != 0)
		return NULL;
	if (size != (uint64_t)st->st_size) {
		LOG_WARN(c->log, MOD, "cache file of %.*s has %" PRIu64 " bytes instead of %" PRIu64
				" (cut by a crash?); dropping it", (int)keylen, key, (uint64_t)st->st_size,
				size);
		return NULL;
	}
	if (key_digest(key, keylen, got) != 0 || memcmp(got, want, 32) != 0)
		return NULL;
	*bad = false;
	return entry_new(key, keylen, want, (uint64_t)st->st_size, (int64_t)st->st_mtime);
}

static bool is_hex_name(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (hexval(s[i]) < 0)
			return false;
	return true;
}

struct scan {
	struct fcache_pin **v;
	size_t n, cap;
	unsigned removed;
};

static int scan_push(struct scan *s, struct fcache_pin *e)
{
	if (s->n == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 1024;
		struct fcache_pin **p = realloc(s->v, ncap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		s->v = p;
		s->cap = ncap;
	}
	s->v[s->n++] = e;
	return 0;
}

static void remove_broken(struct fcache *c, int subfd, const char *sub, const char *name,
		struct scan *s)
{
	if (unlinkat(subfd, name, 0) == 0) {
		s->removed++;
		LOG_DEBUG(c->log, MOD, "removed broken file objects/%s/%s", sub, name);
	} else if (errno != ENOENT) {
		LOG_WARN(c->log, MOD, "cannot delete %s/objects/%s/%s: %s", c->dir, sub, name,
				strerror(errno));
	}
}

struct name_item {
	char *name;
	unsigned char type; /* d_type */
};

static int cmp_name(const void *a, const void *b)
{
	return strcmp(((const struct name_item *)a)->name, ((const struct name_item *)b)->name);
}

static bool is_dir_entry(int dirfd, const struct name_item *it)
{
	struct stat st;
	if (it->type == DT_DIR)
		return true;
	if (it->type != DT_UNKNOWN)
		return false;
	return fstatat(dirfd, it->name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

/* Scans one objects/<xx> directory: reads all names, sorts them and pairs "<h>" with "<h>.key"
 * in memory (binary search), so each entry costs one stat and one sidecar read.
 * Returns 0 or -ENOMEM. */
static int scan_subdir(struct fcache *c, const char *sub, struct scan *s)
{
	int subfd = open_subdir(c->objfd, sub, false);
	if (subfd < 0) {
		LOG_WARN(c->log, MOD, "cannot open %s/objects/%s: %s", c->dir, sub, strerror(-subfd));
		return 0;
	}
	int fd = dup(subfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		close(subfd);
		return 0;
	}
	struct name_item *v = NULL;
	size_t n = 0, cap = 0;
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 256;
			struct name_item *p = realloc(v, ncap * sizeof(*p));
			if (!p) {
				r = -ENOMEM;
				break;
			}
			v = p;
			cap = ncap;
		}
		v[n].name = strdup(de->d_name);
		if (!v[n].name) {
			r = -ENOMEM;
			break;
		}
		v[n++].type = de->d_type;
	}
	closedir(d);
	if (r == 0 && n)
		qsort(v, n, sizeof(*v), cmp_name);
	for (size_t i = 0; i < n && r == 0; i++) {
		const char *name = v[i].name;
		size_t len = strlen(name);
		bool hexed = len >= 64 && is_hex_name(name, 64) && memcmp(name, sub, 2) == 0;
		bool is_key = hexed && len == 68 && strcmp(name + 64, ".key") == 0;
		char other[80];
		struct name_item probe = { other, 0 };
		if (hexed && (len == 64 || is_key))
			snprintf(other, sizeof(other), "%.64s%s", name, is_key ? "" : ".key");
		bool paired = hexed && (len == 64 || is_key) &&
				bsearch(&probe, v, n, sizeof(*v), cmp_name) != NULL;
		if (is_dir_entry(subfd, &v[i])) {
			LOG_WARN(c->log, MOD, "ignoring unexpected %s/objects/%s/%s", c->dir, sub, name);
			continue;
		}
		if (is_key && paired)
			continue; /* handled with its data file */
		if (!paired) {
			/* data without sidecar, sidecar without data, or a stray name */
			remove_broken(c, subfd, sub, name, s);
			continue;
		}
		struct stat st;
		if (fstatat(subfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		bool bad = true;
		struct fcache_pin *e = S_ISREG(st.st_mode) ? load_pair(c, subfd, name, &st, &bad) : NULL;
		if (e) {
			r = scan_push(s, e);
			if (r)
				free(e);
		} else if (bad) {
			remove_broken(c, subfd, sub, name, s);
			remove_broken(c, subfd, sub, other, s);
		} else {
			r = -ENOMEM;
		}
	}
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
	close(subfd);
	return r;
}

static int cmp_touched(const void *a, const void *b)
{
	const struct fcache_pin *x = *(struct fcache_pin *const *)a;
	const struct fcache_pin *y = *(struct fcache_pin *const *)b;
	return (x->touched > y->touched) - (x->touched < y->touched);
}

/* Rebuilds the index from objects/. Returns 0 or a negative errno. */
static int rebuild(struct fcache *c, unsigned *removed)
{
	struct scan s = { 0 };
	int fd = dup(c->objfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		int r = -errno;
		if (fd >= 0)
			close(fd);
		return r;
	}
	int r = 0;
	struct dirent *de;
	while (r == 0 && (de = readdir(d))) {
		const char *name = de->d_name;
		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		struct stat st;
		if (fstatat(c->objfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		if (S_ISDIR(st.st_mode) && strlen(name) == 2 && is_hex_name(name, 2)) {
			r = scan_subdir(c, name, &s);
		} else if (S_ISREG(st.st_mode)) {
			if (unlinkat(c->objfd, name, 0) == 0)
				s.removed++;
		} else {
			LOG_WARN(c->log, MOD, "ignoring unexpected %s/objects/%s", c->dir, name);
		}
	}
	closedir(d);
	if (r == 0) {
		if (s.n)
			qsort(s.v, s.n, sizeof(*s.v), cmp_touched);
		for (size_t i = 0; i < s.n; i++) {
			ht_insert(c, s.v[i]);
			c->bytes += s.v[i]->size;
			lru_push_front(c, s.v[i]); /* oldest first, so the newest ends at the head */
		}
	} else {
		for (size_t i = 0; i < s.n; i++)
			free(s.v[i]);
	}
	free(s.v);
	*removed = s.removed;
	return r;
}

int fcache_open(const struct fcache_opts *o, struct fcache **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!o || !o->dir || !o->dir[0]) {
		set_err(err, errlen, "cache directory not set");
		return -EINVAL;
	}
	struct fcache *c = calloc(1, sizeof(*c));
	if (!c) {
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	c->lockfd = c->objfd = c->tmpfd = -1;
	c->log = o->log;
	c->fsync = o->fsync;
	c->max_bytes = o->max_bytes;
	c->nbuckets = 1024;
	c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
	c->dir = strdup(o->dir);
	if (!c->buckets || !c->dir || pthread_mutex_init(&c->lock, NULL) != 0) {
		free(c->buckets);
		free(c->dir);
		free(c);
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int r = mkdir_p(o->dir);
	if (r) {
		set_err(err, errlen, "cannot create cache directory %s: %s", o->dir, strerror(-r));
		goto fail;
	}
	int dfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		r = -errno;
		set_err(err, errlen, "cannot open cache directory %s: %s", o->dir, strerror(-r));
		goto fail;
	}
	c->lockfd = openat(dfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (c->lockfd < 0) {
		r = -errno;
		close(dfd);
		set_err(err, errlen, "cannot open %s/lock: %s", o->dir, strerror(-r));
		goto fail;
	}
	if (flock(c->lockfd, LOCK_EX | LOCK_NB) != 0) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		close(dfd);
		if (r == -EBUSY)
			set_err(err, errlen, "cache directory %s is in use by another kvsfs mount "
					"(%s/lock is locked); give each mount its own cache_dir", o->dir, o->dir);
		else
			set_err(err, errlen, "cannot lock %s/lock: %s", o->dir, strerror(-r));
		goto fail;
	}
	c->objfd = open_subdir(dfd, "objects", true);
	c->tmpfd = c->objfd < 0 ? -1 : open_subdir(dfd, "tmp", true);
	close(dfd);
	if (c->objfd < 0 || c->tmpfd < 0) {
		r = c->objfd < 0 ? c->objfd : c->tmpfd;
		set_err(err, errlen, "cannot create %s/%s: %s", o->dir,
				c->objfd < 0 ? "objects" : "tmp", strerror(-r));
		goto fail;
	}
	unsigned tmp_removed = clean_tmp(c), broken = 0;
	r = rebuild(c, &broken);
	if (r) {
		set_err(err, errlen, "cannot read cache directory %s: %s", o->dir, strerror(-r));
		goto fail;
	}
	struct trash t = { 0 };
	uint64_t before = c->entries;
	evict_locked(c, NULL, &t);
	trash_empty(c, &t);
	if (tmp_removed || broken)
		LOG_INFO(c->log, MOD, "cache %s: removed %u leftover temp files and %u broken files",
				c->dir, tmp_removed, broken);
	LOG_INFO(c->log, MOD, "cache %s: %" PRIu64 " entries, %" PRIu64 " bytes (limit %" PRIu64
			", %" PRIu64 " evicted at open)", c->dir, c->entries, c->bytes, c->max_bytes,
			before - c->entries);
	*out = c;
	return 0;
fail:
	fcache_close(c);
	return r;
}

void fcache_close(struct fcache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nbuckets; i++) {
		struct fcache_pin *e = c->buckets[i], *next;
		for (; e; e = next) {
			next = e->hnext;
			free(e);
		}
	}
	for (struct fcache_pin *e = c->detached, *next; e; e = next) {
		next = e->next;
		free(e);
	}
	free(c->buckets);
	if (c->tmpfd >= 0)
		close(c->tmpfd);
	if (c->objfd >= 0)
		close(c->objfd);
	if (c->lockfd >= 0)
		close(c->lockfd); /* releases the flock */
	pthread_mutex_destroy(&c->lock);
	free(c->dir);
	free(c);
}

/* ---- readers ---- */

/* Opens entry e (pinned by the caller, under the lock). Returns an fd or -errno. */
static int open_entry_locked(struct fcache *c, const struct fcache_pin *e)
{
	char rel[REL_MAX];
	rel_path(e->md, false, rel);
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
	int r = key_check(key, &len);
	if (r == 0)
		r = key_digest(key, len, md);
	if (r)
		return r;
	pthread_mutex_lock(&c->lock);
	struct fcache_pin *e = ht_find(c, md);
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
			drop_files_locked(c, md, &t);
			unindex_locked(c, e);
			c->misses++;
			pthread_mutex_unlock(&c->lock);
			trash_empty(c, &t);
			return -ENOENT;
		}
		pthread_mutex_unlock(&c->lock);
		LOG_WARN(c->log, MOD, "cannot open cache file of %s: %s", key, strerror(-f));
		return f;
	}
	c->hits++;
	pin_locked(c, e);
	int64_t now = now_sec();
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
	unpin_locked(c, pin);
	pthread_mutex_unlock(&c->lock);
}

int fcache_contains(struct fcache *c, const char *key, uint64_t *size)
{
	size_t len;
	uint8_t md[32];
	if (key_check(key, &len) != 0 || key_digest(key, len, md) != 0)
		return 0;
	pthread_mutex_lock(&c->lock);
	struct fcache_pin *e = ht_find(c, md);
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
	*w = NULL;
	int r = key_check(key, &len);
	if (r)
		return r;
	struct fcache_writer *nw = calloc(1, sizeof(*nw) + len + 1);
	if (!nw)
		return -ENOMEM;
	memcpy(nw->key, key, len);
	nw->keylen = len;
	nw->c = c;
	r = key_digest(key, len, nw->md);
	if (r) {
		free(nw);
		return r;
	}
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

/* Writes the sidecar temp file k.<seq>. Returns 0 or -errno. */
static int write_sidecar(struct fcache *c, const struct fcache_writer *w)
{
	char name[32];
	char data[SIDECAR_MAX + 1];
	writer_tmp_name(w->seq, true, name);
	int n = snprintf(data, sizeof(data), "%s%" PRIu64 "\n", KEY_MAGIC, w->size);
	memcpy(data + n, w->key, w->keylen);
	int fd = openat(c->tmpfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int r = fsutil_write_all(fd, data, (size_t)n + w->keylen);
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
	int r = w->err;
	if (r == 0 && c->fsync && fdatasync(w->fd) != 0)
		r = -errno;
	if (close(w->fd) != 0 && r == 0)
		r = -errno;
	w->fd = -1;
	if (r == 0)
		r = write_sidecar(c, w);
	struct fcache_pin *e = NULL;
	if (r == 0) {
		e = entry_new(w->key, w->keylen, w->md, w->size, now_sec());
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
	rel_path(w->md, false, rel);
	rel_path(w->md, true, krel);
	sub_name(w->md, sub);
	struct trash t = { 0 };
	int f = -1;

	pthread_mutex_lock(&c->lock);
	struct fcache_pin *old = ht_find(c, w->md);
	r = publish_locked(c, kname, krel, sub);
	if (r == 0) {
		r = publish_locked(c, wname, rel, sub);
		if (r && !old)
			unlinkat(c->objfd, krel, 0);
	}
	if (r) {
		pthread_mutex_unlock(&c->lock);
		LOG_WARN(c->log, MOD, "cannot store cache entry %s: %s", w->key, strerror(-r));
		free(e);
		fcache_abort(w);
		return r;
	}
	if (old)
		unindex_locked(c, old);
	ht_insert(c, e);
	c->bytes += e->size;
	if (pin_out) {
		pin_locked(c, e);
		f = open_entry_locked(c, e);
	} else {
		lru_push_front(c, e);
	}
	evict_locked(c, e, &t);
	if (pin_out && f < 0)
		unpin_locked(c, e); /* it may now be evicted by a later commit */
	pthread_mutex_unlock(&c->lock);

	trash_empty(c, &t);
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
	int r = key_check(key, &len);
	if (r == 0)
		r = key_digest(key, len, md);
	if (r)
		return r;
	struct trash t = { 0 };
	pthread_mutex_lock(&c->lock);
	struct fcache_pin *e = ht_find(c, md);
	if (e) {
		drop_files_locked(c, md, &t);
		unindex_locked(c, e);
	}
	pthread_mutex_unlock(&c->lock);
	trash_empty(c, &t);
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
	for (size_t i = 0; i < c->nbuckets && r == 0; i++) {
		for (struct fcache_pin *e = c->buckets[i]; e && r == 0; e = e->hnext) {
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
	st->entries = c->entries;
	st->pinned = c->pinned;
	st->hits = c->hits;
	st->misses = c->misses;
	st->evictions = c->evictions;
	st->max_bytes = c->max_bytes;
	pthread_mutex_unlock(&c->lock);
}
