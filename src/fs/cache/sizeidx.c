/*
 * sizeidx: persistent key -> int64 map on an append-only log (format, durability and compaction
 * policy in include/kvsfs/sizeidx.h).
 *
 * Table: open addressing with linear probing over slots {hash, entry*}; the capacity is a power
 * of two kept at most 1/2 full, and deletion shifts later entries back (no tombstones), so probe
 * sequences stay short. Each entry holds its key. Loading counts the lines first, sizes the table
 * for all of them and carves the entries out of one block (the arena, freed at close), so a
 * million entries load without rehashing or a million mallocs; later entries are malloc'd.
 *
 * Invariants under s->lock: s->fd is open O_APPEND on DIR/sizes.log whose size is file_bytes and
 * which ends with '\n' (or is empty); records counts its lines; live counts table entries.
 */
#include "kvsfs/sizeidx.h"

#include "kvsfs/buf.h"
#include "kvsfs/fsutil.h"
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
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MOD "sizeidx"
#define LOG_NAME "sizes.log"
#define TMP_NAME "sizes.log.tmp"
#define LOCK_NAME "sizes.lock"
#define COMPACT_MIN 1024

struct ent {
	int64_t value;
	uint32_t keylen;
	uint8_t in_arena; /* allocated in s->arena (freed with it), else malloc'd */
	char key[];
};

struct slot {
	uint64_t h;
	struct ent *e; /* NULL: empty */
};

struct sizeidx {
	pthread_mutex_t lock;
	struct log_ctx *log;
	char *dir;
	int dirfd, fd, lockfd;
	unsigned sync_ms;
	struct slot *slots;
	size_t cap;      /* power of two */
	char *arena;     /* one block holding the entries loaded at open */
	size_t arena_used, arena_cap;
	size_t live;
	uint64_t records, file_bytes, compactions;
	uint64_t compact_at; /* records above which the next compaction is tried */
	int64_t last_sync_ms;
	struct buf line;
};

/* ---- hashing and table ---- */

static uint64_t mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static uint64_t hash_key(const char *key, size_t len)
{
	uint64_t h = 0x9e3779b97f4a7c15ULL ^ len;
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t w;
		memcpy(&w, key + i, 8);
		h = (h ^ w) * 0x100000001b3ULL;
		h ^= h >> 29;
	}
	uint64_t tail = 0;
	memcpy(&tail, key + i, len - i);
	h = (h ^ tail) * 0x100000001b3ULL;
	return mix(h);
}

/* Returns the slot index holding key, or the empty slot where it would go. */
static size_t tbl_probe(const struct sizeidx *s, uint64_t h, const char *key, size_t len)
{
	size_t mask = s->cap - 1;
	for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
		const struct slot *sl = &s->slots[i];
		if (!sl->e)
			return i;
		if (sl->h == h && sl->e->keylen == len && memcmp(sl->e->key, key, len) == 0)
			return i;
	}
}

static int tbl_resize(struct sizeidx *s, size_t ncap)
{
	struct slot *ns = calloc(ncap, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	size_t mask = ncap - 1;
	for (size_t i = 0; i < s->cap; i++) {
		if (!s->slots[i].e)
			continue;
		size_t j = (size_t)s->slots[i].h & mask;
		while (ns[j].e)
			j = (j + 1) & mask;
		ns[j] = s->slots[i];
	}
	free(s->slots);
	s->slots = ns;
	s->cap = ncap;
	return 0;
}

static void ent_free(struct ent *e)
{
	if (e && !e->in_arena)
		free(e);
}

/* Sets key to value. Returns 0 or -ENOMEM (table unchanged). */
static int tbl_set(struct sizeidx *s, const char *key, size_t len, int64_t value)
{
	uint64_t h = hash_key(key, len);
	size_t i = tbl_probe(s, h, key, len);
	if (s->slots[i].e) {
		s->slots[i].e->value = value;
		return 0;
	}
	if ((s->live + 1) * 2 > s->cap) {
		if (tbl_resize(s, s->cap * 2) != 0)
			return -ENOMEM;
		i = tbl_probe(s, h, key, len);
	}
	struct ent *e;
	size_t need = (sizeof(*e) + len + 1 + 7) & ~(size_t)7;
	if (s->arena && s->arena_cap - s->arena_used >= need) {
		e = (struct ent *)(void *)(s->arena + s->arena_used);
		s->arena_used += need;
		e->in_arena = 1;
	} else {
		e = malloc(sizeof(*e) + len + 1);
		if (!e)
			return -ENOMEM;
		e->in_arena = 0;
	}
	e->value = value;
	e->keylen = (uint32_t)len;
	memcpy(e->key, key, len);
	e->key[len] = '\0';
	s->slots[i].h = h;
	s->slots[i].e = e;
	s->live++;
	return 0;
}

static struct ent *tbl_get(const struct sizeidx *s, const char *key, size_t len)
{
	size_t i = tbl_probe(s, hash_key(key, len), key, len);
	return s->slots[i].e;
}

/* Removes key; returns 1 if it was present. Backward-shift deletion keeps probing correct. */
static int tbl_del(struct sizeidx *s, const char *key, size_t len)
{
	size_t mask = s->cap - 1;
	size_t i = tbl_probe(s, hash_key(key, len), key, len);
	if (!s->slots[i].e)
		return 0;
	ent_free(s->slots[i].e);
	s->slots[i].e = NULL;
	s->live--;
	size_t j = i;
	for (;;) {
		j = (j + 1) & mask;
		if (!s->slots[j].e)
			break;
		size_t home = (size_t)s->slots[j].h & mask;
		/* Move j back to i unless its home lies cyclically in (i, j]. */
		bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (stays)
			continue;
		s->slots[i] = s->slots[j];
		s->slots[j].e = NULL;
		i = j;
	}
	return 1;
}

static void tbl_free(struct sizeidx *s)
{
	for (size_t i = 0; i < s->cap; i++)
		ent_free(s->slots[i].e);
	free(s->slots);
	free(s->arena);
	s->arena = NULL;
	s->slots = NULL;
	s->cap = 0;
	s->live = 0;
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

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}



static int load_record(void *arg, const char *key, size_t keylen, int64_t value, int deleted)
{
	struct sizeidx *s = arg;
	if (deleted) {
		tbl_del(s, key, keylen);
		return 0;
	}
	return tbl_set(s, key, keylen, value);
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

/* Rewrites the log from the table. Under s->lock (or before s is shared). Returns 0 or -errno. */
static int compact_locked(struct sizeidx *s)
{
	int64_t t0 = now_ms();
	(void)unlinkat(s->dirfd, TMP_NAME, 0);
	int fd = openat(s->dirfd, TMP_NAME, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	struct buf b = BUF_INIT;
	uint64_t bytes = 0;
	int r = 0;
	for (size_t i = 0; i < s->cap && r == 0; i++) {
		const struct ent *e = s->slots[i].e;
		if (!e)
			continue;
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
		s->compact_at = s->records * 2 + COMPACT_MIN; /* back off */
		return r;
	}
	(void)fsync(s->dirfd);
	uint64_t old = s->records;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = fd;
	s->records = s->live;
	s->file_bytes = bytes;
	s->compactions++;
	s->compact_at = 0;
	s->last_sync_ms = now_ms();
	LOG_DEBUG(s->log, MOD, "compacted %s/%s: %" PRIu64 " records -> %zu in %" PRId64 " ms",
			s->dir, LOG_NAME, old, s->live, now_ms() - t0);
	return 0;
}

static void maybe_compact_locked(struct sizeidx *s)
{
	uint64_t limit = (uint64_t)s->live * 2;
	if (limit < COMPACT_MIN)
		limit = COMPACT_MIN;
	if (s->compact_at > limit)
		limit = s->compact_at;
	if (s->records > limit)
		(void)compact_locked(s);
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
	s->cap = 1024;
	s->slots = calloc(s->cap, sizeof(*s->slots));
	s->dir = strdup(o->dir);
	if (!s->slots || !s->dir || pthread_mutex_init(&s->lock, NULL) != 0) {
		free(s->slots);
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
	s->dirfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		r = -errno;
		set_err(err, errlen, "cannot open directory %s: %s", o->dir, strerror(-r));
		goto fail;
	}
	s->lockfd = openat(s->dirfd, LOCK_NAME, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lockfd < 0 || flock(s->lockfd, LOCK_EX | LOCK_NB) != 0) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		if (r == -EBUSY)
			set_err(err, errlen, "size index %s/%s is in use by another kvsfs mount (%s/%s "
					"is locked)", o->dir, LOG_NAME, o->dir, LOCK_NAME);
		else
			set_err(err, errlen, "cannot lock %s/%s: %s", o->dir, LOCK_NAME, strerror(-r));
		goto fail;
	}
	(void)unlinkat(s->dirfd, TMP_NAME, 0); /* leftover of a crashed compaction */
	s->fd = openat(s->dirfd, LOG_NAME, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (s->fd < 0) {
		r = -errno;
		set_err(err, errlen, "cannot open %s/%s: %s", o->dir, LOG_NAME, strerror(-r));
		goto fail;
	}
	int64_t t0 = now_ms();
	char *data;
	size_t len;
	r = read_whole(s->fd, &data, &len);
	if (r) {
		set_err(err, errlen, "cannot read %s/%s: %s", o->dir, LOG_NAME, strerror(-r));
		goto fail;
	}
	/* Size the table for every line up front, so the load never rehashes. */
	size_t lines = 0;
	for (const char *q = data; q && (q = memchr(q, '\n', len - (size_t)(q - data))); q++)
		lines++;
	size_t want = s->cap;
	while (want < lines * 2 + 2)
		want *= 2;
	/* Every entry fits in its line plus the entry header, rounded up. */
	s->arena_cap = len + lines * (sizeof(struct ent) + 8);
	s->arena = lines ? malloc(s->arena_cap) : NULL;
	if (!s->arena)
		s->arena_cap = 0;
	if (want > s->cap && tbl_resize(s, want) != 0) {
		free(data);
		r = -ENOMEM;
		set_err(err, errlen, "out of memory loading %s/%s", o->dir, LOG_NAME);
		goto fail;
	}
	struct sizeidx_parse_result pr;
	r = sizeidx_parse_buffer(data, len, load_record, s, &pr);
	free(data);
	if (r) {
		set_err(err, errlen, "out of memory loading %s/%s", o->dir, LOG_NAME);
		goto fail;
	}
	s->records = pr.records + pr.bad_lines;
	s->file_bytes = pr.good_len;
	if (pr.torn || pr.bad_lines)
		LOG_WARN(s->log, MOD, "%s/%s: ignored %zu malformed line(s)%s (left by a crash or "
				"damage; those sizes will be learned again)", o->dir, LOG_NAME,
				pr.bad_lines, pr.torn ? " and a torn last line" : "");
	if (pr.torn && ftruncate(s->fd, (off_t)pr.good_len) != 0) {
		r = -errno;
		set_err(err, errlen, "cannot truncate the torn end of %s/%s: %s", o->dir, LOG_NAME,
				strerror(-r));
		goto fail;
	}
	if (pr.bad_lines)
		(void)compact_locked(s);
	else
		maybe_compact_locked(s);
	LOG_DEBUG(s->log, MOD, "loaded %zu sizes from %s/%s in %" PRId64 " ms", s->live, o->dir,
			LOG_NAME, now_ms() - t0);
	s->last_sync_ms = now_ms();
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

/* Appends one record. Under s->lock. Returns 0 or -errno (the file is rolled back). */
static int append_locked(struct sizeidx *s, const char *key, size_t len, int64_t value, int deleted)
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
	s->file_bytes += s->line.len;
	s->records++;
	if (s->sync_ms) {
		int64_t now = now_ms();
		if (now - s->last_sync_ms >= (int64_t)s->sync_ms) {
			s->last_sync_ms = now;
			if (fdatasync(s->fd) != 0)
				LOG_WARN(s->log, MOD, "cannot sync %s/%s: %s", s->dir, LOG_NAME,
						strerror(errno));
		}
	}
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
	/* Make room first, so a failed insert never leaves a record the table lacks. */
	if (!e && (s->live + 1) * 2 > s->cap && tbl_resize(s, s->cap * 2) != 0) {
		pthread_mutex_unlock(&s->lock);
		return -ENOMEM;
	}
	r = append_locked(s, key, len, value, 0);
	if (r == 0) {
		r = tbl_set(s, key, len, value);
		maybe_compact_locked(s);
	}
	pthread_mutex_unlock(&s->lock);
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
	if (!tbl_get(s, key, len)) {
		r = -ENOENT;
	} else {
		r = append_locked(s, key, len, 0, 1);
		if (r == 0) {
			tbl_del(s, key, len);
			maybe_compact_locked(s);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

int sizeidx_sync(struct sizeidx *s)
{
	pthread_mutex_lock(&s->lock);
	int r = fdatasync(s->fd) == 0 ? 0 : -errno;
	s->last_sync_ms = now_ms();
	pthread_mutex_unlock(&s->lock);
	return r;
}

int sizeidx_compact(struct sizeidx *s)
{
	pthread_mutex_lock(&s->lock);
	int r = compact_locked(s);
	pthread_mutex_unlock(&s->lock);
	return r;
}

void sizeidx_stats(struct sizeidx *s, struct sizeidx_stats *st)
{
	pthread_mutex_lock(&s->lock);
	st->live = s->live;
	st->records = s->records;
	st->compactions = s->compactions;
	st->file_bytes = s->file_bytes;
	pthread_mutex_unlock(&s->lock);
}
