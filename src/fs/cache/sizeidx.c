/*
 * sizeidx: persistent key -> int64 map on an append-only log (format, durability and compaction
 * policy in include/kvsfs/sizeidx.h).
 *
 * Table: a util/hashmap of entries, each holding its key and value. Loading counts the lines
 * first, reserves the map for all of them and carves the entries out of one block (the arena,
 * freed at close), so a million entries load without rehashing or a million mallocs; entries
 * added by later puts are malloc'd.
 *
 * Locking: s->lock guards the table and the counters, and is never held across a disk write.
 * The log file has one writer at a time: a put, remove, sync or compaction first owns it
 * (s->writing, waiting on s->writer_done while another thread owns it), then appends, syncs or
 * rewrites with the lock released, then updates the table under the lock and gives the file
 * back. Only the writer changes the table, so a compaction reads it unlocked; lookups take the
 * lock briefly and never wait for the disk. The writer alone uses s->fd, s->line and
 * s->last_sync_ms.
 *
 * Invariants: s->fd is open O_APPEND on DIR/sizes.log whose size is file_bytes and which ends
 * with '\n' (or is empty) whenever no writer is in the middle of an append; records counts its
 * lines; the map holds one entry per live key.
 */
#include "kvsfs/sizeidx.h"

#include "kvsfs/buf.h"
#include "kvsfs/fsutil.h"
#include "kvsfs/hashmap.h"
#include "kvsfs/clk.h"
#include "kvsfs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MOD "sizeidx"
#define LOG_NAME "sizes.log"
#define TMP_NAME "sizes.log.tmp"
#define LOCK_NAME "sizes.lock"
#define COMPACT_MIN 1024

struct ent {
	struct hashmap_node node;
	int64_t value;
	uint32_t keylen;
	uint8_t in_arena; /* allocated in s->arena (freed with it), else malloc'd */
	char key[];
};

struct sizeidx {
	pthread_mutex_t lock;
	pthread_cond_t writer_done; /* the writer left (writing went 0) */
	bool writing;               /* a thread owns the log file (see the top comment) */
	struct log_ctx *log;
	char *dir;
	int dirfd, fd, lockfd;
	unsigned sync_ms;
	struct hashmap map;  /* of struct ent */
	char *arena;         /* one block holding the entries loaded at open */
	size_t arena_used, arena_cap;
	uint64_t records, file_bytes, compactions;
	uint64_t compact_at; /* records above which the next compaction is tried */
	int64_t last_sync_ms;
	struct buf line;
};

/* ---- table ---- */

struct key_ref {
	const char *key;
	size_t len;
};

static int ent_eq(const struct hashmap_node *n, const void *key)
{
	const struct ent *e = hashmap_entry(n, struct ent, node);
	const struct key_ref *k = key;
	return e->keylen == k->len && memcmp(e->key, k->key, k->len) == 0;
}

static size_t live(const struct sizeidx *s)
{
	return hashmap_count(&s->map);
}

static struct ent *tbl_get(const struct sizeidx *s, const char *key, size_t len)
{
	struct key_ref k = { key, len };
	struct hashmap_node *n = hashmap_find(&s->map, hashmap_hash_bytes(0, key, len), ent_eq, &k);
	return n ? hashmap_entry(n, struct ent, node) : NULL;
}

/* A new entry (not yet in the map), from the arena when asked and it has room, else malloc'd.
 * Returns NULL when out of memory. */
static struct ent *ent_new(struct sizeidx *s, const char *key, size_t len, int64_t value,
		bool from_arena)
{
	struct ent *e;
	size_t need = (sizeof(*e) + len + 1 + 7) & ~(size_t)7;
	if (from_arena && s->arena && s->arena_cap - s->arena_used >= need) {
		e = (struct ent *)(void *)(s->arena + s->arena_used);
		s->arena_used += need;
		e->in_arena = 1;
	} else {
		e = malloc(sizeof(*e) + len + 1);
		if (!e)
			return NULL;
		e->in_arena = 0;
	}
	e->value = value;
	e->keylen = (uint32_t)len;
	memcpy(e->key, key, len);
	e->key[len] = '\0';
	return e;
}

static void ent_free(struct ent *e)
{
	if (e && !e->in_arena)
		free(e);
}

static void tbl_insert(struct sizeidx *s, struct ent *e)
{
	hashmap_insert(&s->map, &e->node, hashmap_hash_bytes(0, e->key, e->keylen));
}

/* Removes key; returns 1 if it was present. */
static int tbl_del(struct sizeidx *s, const char *key, size_t len)
{
	struct ent *e = tbl_get(s, key, len);
	if (!e)
		return 0;
	hashmap_remove(&s->map, &e->node);
	ent_free(e);
	return 1;
}

static void tbl_free(struct sizeidx *s)
{
	struct hashmap_iter it;
	hashmap_iter_init(&it, &s->map);
	for (struct hashmap_node *n; (n = hashmap_next(&it));)
		ent_free(hashmap_entry(n, struct ent, node));
	hashmap_destroy(&s->map);
	free(s->arena);
	s->arena = NULL;
}

/* ---- the log format ---- */

int sizeidx_format_record(struct buf *out, const char *key, size_t keylen, int64_t value,
		int deleted)
{
	if (keylen == 0 || memchr(key, '\0', keylen))
		return -EINVAL;
	if (keylen > SIZEIDX_KEY_MAX)
		return -ENAMETOOLONG;
	if (buf_reserve(out, 2 * keylen + 24) != 0)
		return -ENOMEM;
	char *p = out->data + out->len;
	for (size_t i = 0; i < keylen; i++) {
		char ch = key[i];
		if (ch == '\\' || ch == '\t' || ch == '\n') {
			*p++ = '\\';
			*p++ = ch == '\\' ? '\\' : ch == '\t' ? 't' : 'n';
		} else {
			*p++ = ch;
		}
	}
	*p++ = '\t';
	if (deleted) {
		*p++ = '-';
	} else {
		char num[24];
		size_t n = 0;
		uint64_t u = value < 0 ? (uint64_t)0 - (uint64_t)value : (uint64_t)value;
		do {
			num[n++] = (char)('0' + u % 10);
			u /= 10;
		} while (u);
		if (value < 0)
			*p++ = '-';
		while (n)
			*p++ = num[--n];
	}
	*p++ = '\n';
	out->len = (size_t)(p - out->data);
	out->data[out->len] = '\0';
	return 0;
}

/* Parses "[-]digits" (1..19 digits, in int64 range) or "-" alone. Returns 0 or -1. */
static int parse_value(const char *p, size_t n, int64_t *value, int *deleted)
{
	*deleted = 0;
	*value = 0;
	if (n == 1 && p[0] == '-') {
		*deleted = 1;
		return 0;
	}
	bool neg = false;
	if (n > 0 && p[0] == '-') {
		neg = true;
		p++;
		n--;
	}
	if (n == 0 || n > 19)
		return -1;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(p[i] - '0'); /* 19 digits cannot overflow uint64 */
	}
	if (neg) {
		if (v > (uint64_t)INT64_MAX + 1)
			return -1;
		*value = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	} else {
		if (v > (uint64_t)INT64_MAX)
			return -1;
		*value = (int64_t)v;
	}
	return 0;
}

/* Unescapes the key part of a line into out (SIZEIDX_KEY_MAX + 1 bytes). Returns its length or
 * -1 when malformed (bad escape, NUL, raw tab, empty, too long). */
static long unescape_key(const char *p, size_t n, char *out)
{
	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		char ch = p[i];
		if (ch == '\0' || ch == '\t')
			return -1;
		if (ch == '\\') {
			if (++i == n)
				return -1;
			ch = p[i] == '\\' ? '\\' : p[i] == 't' ? '\t' : p[i] == 'n' ? '\n' : '\0';
			if (ch == '\0')
				return -1;
		}
		if (len == SIZEIDX_KEY_MAX)
			return -1;
		out[len++] = ch;
	}
	if (len == 0)
		return -1;
	out[len] = '\0';
	return (long)len;
}

int sizeidx_parse_buffer(const char *data, size_t len, sizeidx_record_fn fn, void *arg,
		struct sizeidx_parse_result *res)
{
	struct sizeidx_parse_result r = { 0 };
	char key[SIZEIDX_KEY_MAX + 1];
	size_t pos = 0;
	int ret = 0;
	while (pos < len) {
		const char *line = data + pos;
		const char *nl = memchr(line, '\n', len - pos);
		if (!nl) {
			r.torn = 1;
			break;
		}
		size_t n = (size_t)(nl - line);
		pos += n + 1;
		r.good_len = pos;
		const char *tab = memchr(line, '\t', n);
		int64_t value;
		int deleted;
		long klen = tab ? unescape_key(line, (size_t)(tab - line), key) : -1;
		if (klen < 0 || parse_value(tab + 1, n - (size_t)(tab + 1 - line), &value, &deleted) != 0) {
			r.bad_lines++;
			continue;
		}
		r.records++;
		if (fn) {
			ret = fn(arg, key, (size_t)klen, value, deleted);
			if (ret)
				break;
		}
	}
	if (res)
		*res = r;
	return ret;
}

/* ---- open, load, compaction ---- */

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


/* Applies one record of the log being loaded (the last record of a key wins). */
static int load_record(void *arg, const char *key, size_t keylen, int64_t value, int deleted)
{
	struct sizeidx *s = arg;
	if (deleted) {
		tbl_del(s, key, keylen);
		return 0;
	}
	struct ent *e = tbl_get(s, key, keylen);
	if (e) {
		e->value = value;
		return 0;
	}
	e = ent_new(s, key, keylen, value, true);
	if (!e)
		return -ENOMEM;
	tbl_insert(s, e);
	return 0;
}

/* Reads the whole log into memory. Returns 0 or -errno; *data is malloc'd (may be NULL if empty). */
static int read_whole(int fd, char **data, size_t *len)
{
	struct stat st;
	*data = NULL;
	*len = 0;
	if (fstat(fd, &st) != 0)
		return -errno;
	size_t cap = (size_t)st.st_size + 1, n = 0;
	char *p = malloc(cap);
	if (!p)
		return -ENOMEM;
	for (;;) {
		if (n == cap) {
			char *q = realloc(p, cap * 2);
			if (!q) {
				free(p);
				return -ENOMEM;
			}
			p = q;
			cap *= 2;
		}
		ssize_t r = pread(fd, p + n, cap - n, (off_t)n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int e = -errno;
			free(p);
			return e;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*data = p;
	*len = n;
	return 0;
}

/* Rewrites the log from the table. By the writer, without s->lock (or before s is shared).
 * Returns 0 or -errno. */
static int compact(struct sizeidx *s)
{
	int64_t t0 = clk_mono_ms();
	(void)unlinkat(s->dirfd, TMP_NAME, 0);
	int fd = openat(s->dirfd, TMP_NAME, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	struct buf b = BUF_INIT;
	uint64_t bytes = 0;
	int r = 0;
	struct hashmap_iter it;
	hashmap_iter_init(&it, &s->map);
	for (struct hashmap_node *n; r == 0 && (n = hashmap_next(&it));) {
		const struct ent *e = hashmap_entry(n, struct ent, node);
		r = sizeidx_format_record(&b, e->key, e->keylen, e->value, 0);
		if (r == 0 && b.len >= (1u << 20)) {
			r = fsutil_write_all(fd, b.data, b.len);
			bytes += b.len;
			buf_reset(&b);
		}
	}
	if (r == 0 && b.len) {
		r = fsutil_write_all(fd, b.data, b.len);
		bytes += b.len;
	}
	buf_free(&b);
	if (r == 0 && fdatasync(fd) != 0)
		r = -errno;
	if (r == 0 && fcntl(fd, F_SETFL, O_APPEND) != 0)
		r = -errno;
	if (r == 0 && renameat(s->dirfd, TMP_NAME, s->dirfd, LOG_NAME) != 0)
		r = -errno;
	if (r) {
		close(fd);
		(void)unlinkat(s->dirfd, TMP_NAME, 0);
		LOG_WARN(s->log, MOD, "cannot compact %s/%s: %s (keeping the old log)", s->dir,
				LOG_NAME, strerror(-r));
		pthread_mutex_lock(&s->lock);
		s->compact_at = s->records * 2 + COMPACT_MIN; /* back off */
		pthread_mutex_unlock(&s->lock);
		return r;
	}
	(void)fsync(s->dirfd);
	int old_fd = s->fd;
	pthread_mutex_lock(&s->lock);
	uint64_t old = s->records;
	s->fd = fd;
	s->records = live(s);
	s->file_bytes = bytes;
	s->compactions++;
	s->compact_at = 0;
	pthread_mutex_unlock(&s->lock);
	if (old_fd >= 0)
		close(old_fd);
	s->last_sync_ms = clk_mono_ms();
	LOG_DEBUG(s->log, MOD, "compacted %s/%s: %" PRIu64 " records -> %zu in %" PRId64 " ms",
			s->dir, LOG_NAME, old, live(s), clk_mono_ms() - t0);
	return 0;
}

/* 1 when the log holds more than 2x as many records as live keys (and at least COMPACT_MIN, and
 * more than a failed compaction left). Under s->lock. */
static int compaction_due_locked(const struct sizeidx *s)
{
	uint64_t limit = (uint64_t)live(s) * 2;
	if (limit < COMPACT_MIN)
		limit = COMPACT_MIN;
	if (s->compact_at > limit)
		limit = s->compact_at;
	return s->records > limit;
}

/* Loads the log into the (empty) table, cuts a torn last line, compacts when due. Before s is
 * shared. Returns 0 or -errno with one sentence in err. */
static int load_log(struct sizeidx *s, char *err, size_t errlen)
{
	int64_t t0 = clk_mono_ms();
	char *data;
	size_t len;
	int r = read_whole(s->fd, &data, &len);
	if (r) {
		set_err(err, errlen, "cannot read %s/%s: %s", s->dir, LOG_NAME, strerror(-r));
		return r;
	}
	/* Size the table for every line up front, so the load never rehashes. */
	size_t lines = 0;
	for (const char *q = data; q && (q = memchr(q, '\n', len - (size_t)(q - data))); q++)
		lines++;
	/* Every entry fits in its line plus the entry header, rounded up. */
	s->arena_cap = len + lines * (sizeof(struct ent) + 8);
	s->arena = lines ? malloc(s->arena_cap) : NULL;
	if (!s->arena)
		s->arena_cap = 0;
	if (hashmap_reserve(&s->map, lines) != 0) {
		free(data);
		r = -ENOMEM;
		set_err(err, errlen, "out of memory loading %s/%s", s->dir, LOG_NAME);
		return r;
	}
	struct sizeidx_parse_result pr;
	r = sizeidx_parse_buffer(data, len, load_record, s, &pr);
	free(data);
	if (r) {
		set_err(err, errlen, "out of memory loading %s/%s", s->dir, LOG_NAME);
		return r;
	}
	s->records = pr.records + pr.bad_lines;
	s->file_bytes = pr.good_len;
	if (pr.torn || pr.bad_lines)
		LOG_WARN(s->log, MOD, "%s/%s: ignored %zu malformed line(s)%s (left by a crash or "
				"damage; those sizes will be learned again)", s->dir, LOG_NAME,
				pr.bad_lines, pr.torn ? " and a torn last line" : "");
	if (pr.torn && ftruncate(s->fd, (off_t)pr.good_len) != 0) {
		r = -errno;
		set_err(err, errlen, "cannot truncate the torn end of %s/%s: %s", s->dir, LOG_NAME,
				strerror(-r));
		return r;
	}
	if (pr.bad_lines || compaction_due_locked(s))
		(void)compact(s);
	LOG_DEBUG(s->log, MOD, "loaded %zu sizes from %s/%s in %" PRId64 " ms", live(s), s->dir,
			LOG_NAME, clk_mono_ms() - t0);
	return 0;
}

int sizeidx_open(const struct sizeidx_opts *o, struct sizeidx **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!o || !o->dir || !o->dir[0]) {
		set_err(err, errlen, "size index directory not set");
		return -EINVAL;
	}
	struct sizeidx *s = calloc(1, sizeof(*s));
	if (!s) {
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->dirfd = s->fd = s->lockfd = -1;
	s->log = o->log;
	s->sync_ms = o->sync_ms;
	int hr = hashmap_init(&s->map, 1024);
	s->dir = strdup(o->dir);
	if (hr != 0 || !s->dir || pthread_mutex_init(&s->lock, NULL) != 0 ||
	    pthread_cond_init(&s->writer_done, NULL) != 0) {
		hashmap_destroy(&s->map);
		free(s->dir);
		free(s);
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int r = fsutil_mkdir_p(o->dir);
	if (r) {
		set_err(err, errlen, "cannot create directory %s: %s", o->dir, strerror(-r));
		goto fail;
	}
	enum fsutil_lock_step step;
	r = fsutil_lock_dir(o->dir, LOCK_NAME, &s->dirfd, &s->lockfd, &step);
	if (r == -EBUSY)
		set_err(err, errlen, "size index %s/%s is in use by another kvsfs mount (%s/%s "
				"is locked)", o->dir, LOG_NAME, o->dir, LOCK_NAME);
	else if (r && step == FSUTIL_LOCK_OPEN_DIR)
		set_err(err, errlen, "cannot open directory %s: %s", o->dir, strerror(-r));
	else if (r)
		set_err(err, errlen, "cannot lock %s/%s: %s", o->dir, LOCK_NAME, strerror(-r));
	if (r)
		goto fail;
	(void)unlinkat(s->dirfd, TMP_NAME, 0); /* leftover of a crashed compaction */
	s->fd = openat(s->dirfd, LOG_NAME, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (s->fd < 0) {
		r = -errno;
		set_err(err, errlen, "cannot open %s/%s: %s", o->dir, LOG_NAME, strerror(-r));
		goto fail;
	}
	r = load_log(s, err, errlen);
	if (r)
		goto fail;
	s->last_sync_ms = clk_mono_ms();
	*out = s;
	return 0;
fail:
	sizeidx_close(s);
	return r;
}

void sizeidx_close(struct sizeidx *s)
{
	if (!s)
		return;
	if (s->fd >= 0) {
		(void)fdatasync(s->fd);
		close(s->fd);
	}
	if (s->lockfd >= 0)
		close(s->lockfd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	tbl_free(s);
	buf_free(&s->line);
	pthread_cond_destroy(&s->writer_done);
	pthread_mutex_destroy(&s->lock);
	free(s->dir);
	free(s);
}

/* ---- operations ---- */

static int key_check(const char *key, size_t *len)
{
	if (!key)
		return -EINVAL;
	size_t n = strnlen(key, SIZEIDX_KEY_MAX + 1);
	if (n == 0)
		return -EINVAL;
	if (n > SIZEIDX_KEY_MAX)
		return -ENAMETOOLONG;
	*len = n;
	return 0;
}

/* Waits until no other thread owns the log file, then owns it. Under s->lock. */
static void writer_enter_locked(struct sizeidx *s)
{
	while (s->writing)
		pthread_cond_wait(&s->writer_done, &s->lock);
	s->writing = true;
}

/* writer_enter_locked without s->lock held on entry or return. */
static void writer_enter(struct sizeidx *s)
{
	pthread_mutex_lock(&s->lock);
	writer_enter_locked(s);
	pthread_mutex_unlock(&s->lock);
}

/* Gives the log file back; compacts first when due. Called by the writer without s->lock;
 * returns with it released. */
static void writer_leave(struct sizeidx *s)
{
	pthread_mutex_lock(&s->lock);
	int due = compaction_due_locked(s);
	pthread_mutex_unlock(&s->lock);
	if (due)
		(void)compact(s);
	pthread_mutex_lock(&s->lock);
	s->writing = false;
	pthread_cond_broadcast(&s->writer_done);
	pthread_mutex_unlock(&s->lock);
}

/* Appends one record and counts it. By the writer, without s->lock. Returns 0 or -errno (the
 * file is rolled back). */
static int append(struct sizeidx *s, const char *key, size_t len, int64_t value, int deleted)
{
	buf_reset(&s->line);
	int r = sizeidx_format_record(&s->line, key, len, value, deleted);
	if (r)
		return r;
	r = fsutil_write_all(s->fd, s->line.data, s->line.len);
	if (r) {
		LOG_WARN(s->log, MOD, "cannot append to %s/%s: %s", s->dir, LOG_NAME, strerror(-r));
		if (ftruncate(s->fd, (off_t)s->file_bytes) != 0)
			LOG_WARN(s->log, MOD, "cannot roll back %s/%s: %s", s->dir, LOG_NAME,
					strerror(errno));
		return r;
	}
	if (s->sync_ms) {
		int64_t now = clk_mono_ms();
		if (now - s->last_sync_ms >= (int64_t)s->sync_ms) {
			s->last_sync_ms = now;
			if (fdatasync(s->fd) != 0)
				LOG_WARN(s->log, MOD, "cannot sync %s/%s: %s", s->dir, LOG_NAME,
						strerror(errno));
		}
	}
	pthread_mutex_lock(&s->lock);
	s->file_bytes += s->line.len;
	s->records++;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int sizeidx_put(struct sizeidx *s, const char *key, int64_t value)
{
	size_t len;
	int r = key_check(key, &len);
	if (r)
		return r;
	pthread_mutex_lock(&s->lock);
	struct ent *e = tbl_get(s, key, len);
	if (e && e->value == value) {
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	writer_enter_locked(s);
	e = tbl_get(s, key, len); /* as the previous writer left it */
	pthread_mutex_unlock(&s->lock);
	if (e && e->value == value) {
		writer_leave(s);
		return 0;
	}
	/* Allocate first, so a failed insert never leaves a record the table lacks. */
	struct ent *ne = e ? NULL : ent_new(s, key, len, value, false);
	r = e || ne ? append(s, key, len, value, 0) : -ENOMEM;
	if (r == 0) {
		pthread_mutex_lock(&s->lock);
		if (e)
			e->value = value;
		else
			tbl_insert(s, ne);
		pthread_mutex_unlock(&s->lock);
	} else {
		ent_free(ne);
	}
	writer_leave(s);
	return r;
}

int sizeidx_get(struct sizeidx *s, const char *key, int64_t *value)
{
	size_t len;
	if (key_check(key, &len) != 0)
		return -ENOENT;
	pthread_mutex_lock(&s->lock);
	const struct ent *e = tbl_get(s, key, len);
	if (e)
		*value = e->value;
	pthread_mutex_unlock(&s->lock);
	return e ? 0 : -ENOENT;
}

int sizeidx_remove(struct sizeidx *s, const char *key)
{
	size_t len;
	int r = key_check(key, &len);
	if (r)
		return r;
	pthread_mutex_lock(&s->lock);
	writer_enter_locked(s);
	int present = tbl_get(s, key, len) != NULL;
	pthread_mutex_unlock(&s->lock);
	r = present ? append(s, key, len, 0, 1) : -ENOENT;
	if (r == 0) {
		pthread_mutex_lock(&s->lock);
		tbl_del(s, key, len);
		pthread_mutex_unlock(&s->lock);
	}
	writer_leave(s);
	return r;
}

int sizeidx_sync(struct sizeidx *s)
{
	writer_enter(s);
	int r = fdatasync(s->fd) == 0 ? 0 : -errno;
	s->last_sync_ms = clk_mono_ms();
	writer_leave(s);
	return r;
}

int sizeidx_compact(struct sizeidx *s)
{
	writer_enter(s);
	int r = compact(s);
	writer_leave(s); /* never compacts again: done, or backed off after a failure */
	return r;
}

void sizeidx_stats(struct sizeidx *s, struct sizeidx_stats *st)
{
	pthread_mutex_lock(&s->lock);
	st->live = live(s);
	st->records = s->records;
	st->compactions = s->compactions;
	st->file_bytes = s->file_bytes;
	pthread_mutex_unlock(&s->lock);
}
