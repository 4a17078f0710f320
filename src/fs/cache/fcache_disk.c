/*
 * fcache_disk: opening and closing a cache directory, and recovery (see fcache_int.h for the
 * files of the cache and include/kvsfs/fcache.h for the on-disk layout and crash safety).
 *
 * fcache_open takes DIR/lock (flock, one user per dir), empties tmp/ (writers' temp files and
 * files being deleted when a process died), then rebuilds the index from objects/: each
 * objects/<xx> directory is read whole and sorted, so "<h>" and "<h>.key" pair up by binary
 * search and each entry costs one stat and one sidecar read. A pair is kept only when the
 * sidecar parses, its key hashes to the file name and the data file has the recorded size;
 * everything else in objects/ that kvsfs could have written is deleted (directories and other
 * file types are left alone with a warning). The LRU order starts from the files' mtimes.
 * Nothing here runs concurrently with other operations: the cache is not shared yet.
 */
#include "fcache_int.h"

#include "kvsfs/fsutil.h"
#include "kvsfs/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

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

/* Validates sidecar text data[0, len) for data file hexname of stat st. Returns a new entry or
 * NULL (invalid or out of memory: *bad says which). */
static struct fcache_pin *load_key(struct fcache *c, const char *hexname, const struct stat *st,
		const char *data, size_t len, bool *bad)
{
	uint8_t want[32], got[32];
	const char *key;
	size_t keylen;
	uint64_t size;
	*bad = true;
	if (parse_hex(hexname, 64, want) != 0)
		return NULL;
	if (fcache_parse_sidecar(data, len, &size, &key, &keylen) != 0)
		return NULL;
	if (size != (uint64_t)st->st_size) {
		LOG_WARN(c->log, MOD, "cache file of %.*s has %" PRIu64 " bytes instead of %" PRIu64
				" (cut by a crash?); dropping it", (int)keylen, key, (uint64_t)st->st_size,
				size);
		return NULL;
	}
	if (fc_key_digest(key, keylen, got) != 0 || memcmp(got, want, 32) != 0)
		return NULL;
	*bad = false;
	return fc_entry_new(key, keylen, want, (uint64_t)st->st_size, (int64_t)st->st_mtime);
}

/* Reads and validates the sidecar file of data file hexname in subfd. As load_key. */
static struct fcache_pin *load_pair(struct fcache *c, int subfd, const char *hexname,
		const struct stat *st, bool *bad)
{
	char kname[300];
	char data[SIDECAR_MAX + 1];
	*bad = true;
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
	return load_key(c, hexname, st, data, len, bad);
}

/* A data file without a sidecar file: its key in the xattr KEY_XATTR (fcache.c). As load_key. */
static struct fcache_pin *load_xattr(struct fcache *c, int subfd, const char *hexname,
		const struct stat *st, bool *bad)
{
	char data[SIDECAR_MAX + 1];
	*bad = true;
	int fd = openat(subfd, hexname, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return NULL;
	ssize_t n = fgetxattr(fd, KEY_XATTR, data, sizeof(data));
	close(fd);
	if (n < 0)
		return NULL;
	return load_key(c, hexname, st, data, (size_t)n, bad);
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
		bool keyed = paired || (hexed && len == 64); /* the key may be the data's xattr */
		if (!keyed) {
			/* a sidecar without data, or a stray name */
			remove_broken(c, subfd, sub, name, s);
			continue;
		}
		struct stat st;
		if (fstatat(subfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		bool bad = true;
		struct fcache_pin *e = !S_ISREG(st.st_mode) ? NULL :
				paired ? load_pair(c, subfd, name, &st, &bad) :
				load_xattr(c, subfd, name, &st, &bad);
		if (e) {
			r = scan_push(s, e);
			if (r)
				free(e);
		} else if (bad) {
			remove_broken(c, subfd, sub, name, s);
			if (paired)
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
			fc_insert_locked(c, s.v[i]);
			fc_lru_push_front(c, s.v[i]); /* oldest first, so the newest ends at the head */
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
	int ir = fc_index_init(c);
	c->dir = strdup(o->dir);
	if (ir != 0 || !c->dir || pthread_mutex_init(&c->lock, NULL) != 0) {
		fc_index_free(c);
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
	int dfd;
	enum fsutil_lock_step step;
	r = fsutil_lock_dir(o->dir, "lock", &dfd, &c->lockfd, &step);
	if (r == -EBUSY)
		set_err(err, errlen, "cache directory %s is in use by another kvsfs mount "
				"(%s/lock is locked); give each mount its own cache_dir", o->dir, o->dir);
	else if (r && step == FSUTIL_LOCK_OPEN_DIR)
		set_err(err, errlen, "cannot open cache directory %s: %s", o->dir, strerror(-r));
	else if (r)
		set_err(err, errlen, "cannot lock %s/lock: %s", o->dir, strerror(-r));
	if (r)
		goto fail;
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
	uint64_t before = fc_count(c);
	fc_evict_locked(c, NULL, &t);
	fc_trash_empty(c, &t);
	if (tmp_removed || broken)
		LOG_INFO(c->log, MOD, "cache %s: removed %u leftover temp files and %u broken files",
				c->dir, tmp_removed, broken);
	LOG_INFO(c->log, MOD, "cache %s: %" PRIu64 " entries, %" PRIu64 " bytes (limit %" PRIu64
			", %" PRIu64 " evicted at open)", c->dir, fc_count(c), c->bytes, c->max_bytes,
			before - fc_count(c));
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
	fc_index_free(c);
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
