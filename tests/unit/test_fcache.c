/*
 * Unit tests for fcache: get/pin/evict order, pins, bounds, persistence, cleanup of leftovers and
 * broken files, concurrency (8 threads, self-checking contents), odd keys, the dir lock.
 * Works in a temp dir under $TMPDIR, removed at the end.
 */
#include "check.h"

#include "kvsfs/fcache.h"
#include "kvsfs/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <openssl/evp.h>

static struct log_ctx lg;
static char base[1024];
static int dir_seq;

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_rf(const char *path)
{
	nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh (not yet existing) cache dir path under base. */
static void new_dir(char *out, size_t n)
{
	snprintf(out, n, "%s/c%d/sub", base, ++dir_seq);
}

static struct fcache *open_cache(const char *dir, uint64_t max)
{
	struct fcache_opts o = { .dir = dir, .max_bytes = max, .log = &lg };
	struct fcache *c = NULL;
	char err[256] = "";
	int r = fcache_open(&o, &c, err, sizeof(err));
	if (r)
		printf("# fcache_open(%s): %d %s\n", dir, r, err);
	return c;
}

static void fill(char *p, size_t n, unsigned seed)
{
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (char)(x & 0xff);
	}
}

static int put(struct fcache *c, const char *key, size_t n, unsigned seed)
{
	char *p = malloc(n ? n : 1);
	fill(p, n, seed);
	struct fcache_writer *w;
	int r = fcache_begin(c, key, &w);
	if (r == 0) {
		/* in two pieces, to exercise streaming */
		r = fcache_write(w, p, n / 2);
		if (r == 0)
			r = fcache_write(w, p + n / 2, n - n / 2);
		uint64_t sz = 0;
		if (r == 0)
			r = fcache_commit(w, &sz);
		else
			fcache_abort(w);
		if (r == 0 && sz != n)
			r = -EIO;
	}
	free(p);
	return r;
}

/* 1 when key holds n bytes generated from seed. */
static int content_is(struct fcache *c, const char *key, size_t n, unsigned seed)
{
	int fd;
	uint64_t size;
	struct fcache_pin *pin;
	if (fcache_get(c, key, &fd, &size, &pin) != 0)
		return 0;
	int ok = size == n;
	char *want = malloc(n + 1), *got = malloc(n + 1);
	fill(want, n, seed);
	ssize_t rd = pread(fd, got, n + 1, 0);
	ok = ok && rd == (ssize_t)n && memcmp(want, got, n) == 0;
	free(want);
	free(got);
	close(fd);
	fcache_unpin(c, pin);
	return ok;
}

static int count_files(const char *dir)
{
	int n = 0;
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	if (d)
		closedir(d);
	return n;
}

/* Sum of sizes of data files and number of files (data + sidecars) in objects/. */
static uint64_t disk_bytes(const char *dir, int *nfiles)
{
	char p[4096];
	uint64_t total = 0;
	*nfiles = 0;
	snprintf(p, sizeof(p), "%s/objects", dir);
	DIR *d = opendir(p);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char sp[4096 + 300];
		snprintf(sp, sizeof(sp), "%s/%s", p, e->d_name);
		DIR *sd = opendir(sp);
		struct dirent *f;
		while (sd && (f = readdir(sd))) {
			if (f->d_name[0] == '.')
				continue;
			char fp[8192];
			struct stat st;
			snprintf(fp, sizeof(fp), "%s/%s", sp, f->d_name);
			(*nfiles)++;
			if (!strstr(f->d_name, ".key") && stat(fp, &st) == 0)
				total += (uint64_t)st.st_size;
		}
		if (sd)
			closedir(sd);
	}
	if (d)
		closedir(d);
	return total;
}

/* Files per entry in objects/ under dir: 1 where the file system keeps user xattrs (the key is
 * the data file's xattr), else 2 (data file and .key sidecar). */
static int files_per_entry(const char *dir)
{
	char p[4096 + 16];
	snprintf(p, sizeof(p), "%s/xattr-probe", dir);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int ok = fd >= 0 && fsetxattr(fd, "user.probe", "1", 1, 0) == 0;
	if (fd >= 0)
		close(fd);
	unlink(p);
	return ok ? 1 : 2;
}

/* Path of the data file of key. */
static void obj_path(const char *dir, const char *key, char *out, size_t n, const char *suffix)
{
	unsigned char md[32];
	unsigned int len;
	char hex[65];
	EVP_Digest(key, strlen(key), md, &len, EVP_sha256(), NULL);
	for (int i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", md[i]);
	snprintf(out, n, "%s/objects/%.2s/%s%s", dir, hex, hex, suffix);
}

static void write_file(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (f) {
		fwrite(data, 1, n, f);
		fclose(f);
	}
}

static void set_mtime(const char *dir, const char *key, time_t t)
{
	char p[4096];
	obj_path(dir, key, p, sizeof(p), "");
	struct timespec ts[2] = { { t, 0 }, { t, 0 } };
	utimensat(AT_FDCWD, p, ts, 0);
}

/* ---- tests ---- */

static void test_basic(void)
{
	char dir[4096];
	new_dir(dir, sizeof(dir));
	struct fcache *c = open_cache(dir, 0);
	CHECK(c != NULL, "open creates the dir (with parents)");
	if (!c)
		return;
	struct stat st;
	CHECK(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700, "dir mode 0700");
	int fd;
	uint64_t size = 0;
	struct fcache_pin *pin;
	CHECK_INT(fcache_get(c, "frag/s/1", &fd, &size, &pin), -ENOENT, "miss -> ENOENT");
	CHECK(fd == -1 && pin == NULL, "miss leaves fd -1 and pin NULL");
	CHECK_INT(put(c, "frag/s/1", 1000, 1), 0, "put");
	CHECK(fcache_contains(c, "frag/s/1", &size) == 1 && size == 1000, "contains + size");
	CHECK_INT(fcache_contains(c, "frag/s/2", NULL), 0, "contains absent");
	CHECK(content_is(c, "frag/s/1", 1000, 1), "get returns the bytes");
	CHECK_INT(fcache_get(c, "frag/s/1", &fd, &size, &pin), 0, "get");
	CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC, "fd is close-on-exec");
	CHECK((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDONLY, "fd is read-only");
	close(fd);
	fcache_unpin(c, pin);
	CHECK_INT(put(c, "frag/s/empty", 0, 0), 0, "empty entry");
	CHECK(fcache_contains(c, "frag/s/empty", &size) == 1 && size == 0, "empty entry cached");
	struct fcache_stats s;
	fcache_stats(c, &s);
	CHECK(s.entries == 2 && s.bytes == 1000 && s.hits == 2 && s.misses == 1 && s.pinned == 0,
			"stats: %llu entries %llu bytes %llu hits %llu misses",
			(unsigned long long)s.entries, (unsigned long long)s.bytes,
			(unsigned long long)s.hits, (unsigned long long)s.misses);
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s/tmp", dir);
	CHECK_INT(count_files(tmp), 0, "no temp files left after commits");

	/* abort and failed writer */
	struct fcache_writer *w;
	CHECK_INT(fcache_begin(c, "frag/s/3", &w), 0, "begin");
	CHECK_INT(count_files(tmp), 1, "temp file while writing");
	fcache_write(w, "abc", 3);
	fcache_abort(w);
	CHECK_INT(count_files(tmp), 0, "abort removes the temp file");
	CHECK_INT(fcache_contains(c, "frag/s/3", NULL), 0, "aborted entry absent");
	fcache_abort(NULL);
	fcache_unpin(c, NULL);

	/* bad keys */
	char longkey[FCACHE_KEY_MAX + 2];
	memset(longkey, 'k', sizeof(longkey));
	longkey[FCACHE_KEY_MAX + 1] = '\0';
	CHECK_INT(fcache_begin(c, longkey, &w), -ENAMETOOLONG, "key of 1025 bytes refused");
	CHECK_INT(fcache_begin(c, "", &w), -EINVAL, "empty key refused");
	longkey[FCACHE_KEY_MAX] = '\0';
	CHECK_INT(put(c, longkey, 10, 3), 0, "key of 1024 bytes accepted");
	CHECK(content_is(c, longkey, 10, 3), "1024-byte key readable");

	/* replacing: second commit wins; an open fd keeps the old bytes */
	CHECK_INT(fcache_get(c, "frag/s/1", &fd, &size, &pin), 0, "pin old version");
	CHECK_INT(put(c, "frag/s/1", 500, 9), 0, "replace");
	CHECK(content_is(c, "frag/s/1", 500, 9), "new version visible");
	char buf[1000], want[1000];
	fill(want, 1000, 1);
	CHECK(pread(fd, buf, 1000, 0) == 1000 && memcmp(buf, want, 1000) == 0,
			"old reader still reads the old bytes");
	fcache_stats(c, &s);
	CHECK(s.bytes == 1000 + 500 + 10 && s.entries == 3 && s.pinned == 1,
			"old version counted while pinned (%llu bytes)", (unsigned long long)s.bytes);
	close(fd);
	fcache_unpin(c, pin);
	fcache_stats(c, &s);
	CHECK(s.bytes == 500 + 10 && s.pinned == 0, "old version uncounted after unpin");

	/* commit_get */
	CHECK_INT(fcache_begin(c, "clip/s/1-2", &w), 0, "begin clip");
	fcache_write(w, "hello", 5);
	CHECK_INT(fcache_commit_get(w, &fd, &size, &pin), 0, "commit_get");
	CHECK(size == 5 && pread(fd, buf, 10, 0) == 5 && memcmp(buf, "hello", 5) == 0,
			"commit_get fd reads the entry");
	fcache_stats(c, &s);
	CHECK_INT(s.pinned, 1, "commit_get pins");
	close(fd);
	fcache_unpin(c, pin);

	/* pwrite: a head rewritten inside what was written; nothing past it */
	CHECK_INT(fcache_begin(c, "clip/s/3-4", &w), 0, "begin patched");
	fcache_write(w, "0000world", 9);
	CHECK_INT(fcache_pwrite(w, "hey", 3, 7), -EINVAL, "pwrite past the end refused");
	CHECK_INT(fcache_pwrite(w, "hello", 5, 0), 0, "pwrite at 0");
	CHECK_INT(fcache_pwrite(w, "", 0, 9), 0, "empty pwrite at the end");
	CHECK_INT(fcache_commit_get(w, &fd, &size, &pin), 0, "commit patched");
	CHECK(size == 9 && pread(fd, buf, 20, 0) == 9 && memcmp(buf, "helloorld", 9) == 0,
	      "patched bytes, size unchanged");
	close(fd);
	fcache_unpin(c, pin);

	int nfiles;
	fcache_stats(c, &s);
	CHECK_INT(disk_bytes(dir, &nfiles), s.bytes, "stats bytes == data file sizes on disk");
	CHECK_INT(nfiles, files_per_entry(dir) * (int)s.entries,
			"one data file per entry, its key as an xattr (or a sidecar file)");
	fcache_close(c);
}

static void test_lru(void)
{
	char dir[4096];
	new_dir(dir, sizeof(dir));
	struct fcache *c = open_cache(dir, 300);
	if (!c)
		return;
	put(c, "a", 100, 1);
	put(c, "b", 100, 2);
	put(c, "c", 100, 3);
	CHECK(content_is(c, "a", 100, 1), "a read (now most recent)");
	put(c, "d", 100, 4);
	CHECK(fcache_contains(c, "a", NULL) && !fcache_contains(c, "b", NULL) &&
			fcache_contains(c, "c", NULL) && fcache_contains(c, "d", NULL),
			"LRU: b evicted, a kept because it was used");
	char p[4096];
	obj_path(dir, "b", p, sizeof(p), "");
	CHECK(access(p, F_OK) != 0, "evicted data file deleted");
	obj_path(dir, "b", p, sizeof(p), ".key");
	CHECK(access(p, F_OK) != 0, "evicted sidecar deleted");
	put(c, "e", 100, 5);
	CHECK(!fcache_contains(c, "c", NULL) && fcache_contains(c, "a", NULL), "then c evicted");
	put(c, "big", 250, 6);
	struct fcache_stats s;
	fcache_stats(c, &s);
	CHECK(s.bytes <= 300 && fcache_contains(c, "big", NULL) && s.entries == 1,
			"a 250-byte entry evicts all the others (%llu bytes)", (unsigned long long)s.bytes);
	CHECK_INT(s.evictions, 5, "evictions counted");

	/* pinned entries are never evicted */
	put(c, "p1", 100, 7);
	put(c, "p2", 100, 8);
	int fd1, fd2;
	uint64_t sz;
	struct fcache_pin *pin1, *pin2;
	CHECK_INT(fcache_get(c, "p1", &fd1, &sz, &pin1), 0, "pin p1");
	CHECK_INT(fcache_get(c, "p1", &fd2, &sz, &pin2), 0, "pin p1 twice");
	close(fd2);
	for (int i = 0; i < 20; i++) {
		char k[16];
		snprintf(k, sizeof(k), "x%d", i);
		put(c, k, 100, (unsigned)(100 + i));
		fcache_stats(c, &s);
		if (!fcache_contains(c, "p1", NULL) || s.bytes > 300)
			break;
	}
	fcache_stats(c, &s);
	CHECK(fcache_contains(c, "p1", NULL) && s.bytes <= 300, "pinned p1 survives 20 commits");
	CHECK(content_is(c, "p1", 100, 7), "pinned p1 intact");
	fcache_unpin(c, pin1);
	put(c, "y1", 100, 200);
	CHECK(fcache_contains(c, "p1", NULL), "still pinned once");
	fcache_unpin(c, pin2);
	put(c, "y2", 100, 201);
	put(c, "y3", 100, 202);
	put(c, "y4", 100, 203);
	CHECK(!fcache_contains(c, "p1", NULL), "unpinned p1 evicted again");
	close(fd1);

	/* everything pinned: the new entry is kept anyway, above the limit */
	struct fcache_pin *pins[3];
	int fds[3];
	const char *keys[3] = { "y2", "y3", "y4" };
	for (int i = 0; i < 3; i++)
		fcache_get(c, keys[i], &fds[i], &sz, &pins[i]);
	CHECK_INT(put(c, "over", 100, 300), 0, "commit with everything pinned succeeds");
	fcache_stats(c, &s);
	CHECK(s.bytes == 400 && fcache_contains(c, "over", NULL), "kept above the limit (%llu)",
			(unsigned long long)s.bytes);
	for (int i = 0; i < 3; i++) {
		close(fds[i]);
		fcache_unpin(c, pins[i]);
	}
	put(c, "z", 100, 301);
	fcache_stats(c, &s);
	CHECK(s.bytes <= 300, "back within the limit once unpinned (%llu)",
			(unsigned long long)s.bytes);

	/* remove */
	CHECK_INT(fcache_remove(c, "z"), 0, "remove");
	CHECK_INT(fcache_remove(c, "z"), -ENOENT, "remove absent");
	CHECK(!fcache_contains(c, "z", NULL), "removed entry gone");
	CHECK_INT(fcache_get(c, "y4", &fd1, &sz, &pin1), 0, "pin for remove");
	CHECK_INT(fcache_remove(c, "y4"), 0, "remove pinned");
	CHECK_INT(fcache_contains(c, "y4", NULL), 0, "pinned removed entry invisible");
	char buf[100], want[100];
	fill(want, 100, 203);
	CHECK(pread(fd1, buf, 100, 0) == 100 && memcmp(buf, want, 100) == 0,
			"reader of removed entry still reads");
	fcache_stats(c, &s);
	uint64_t before = s.bytes;
	fcache_unpin(c, pin1);
	close(fd1);
	fcache_stats(c, &s);
	CHECK_INT(before - s.bytes, 100, "its space is released at unpin");
	int nfiles;
	CHECK_INT(disk_bytes(dir, &nfiles), s.bytes, "disk bytes match stats");
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s/tmp", dir);
	CHECK_INT(count_files(tmp), 0, "no trash left in tmp/");
	fcache_close(c);
}

struct list_acc {
	char text[4096];
	int n, stop_at;
};

static int list_cb(void *arg, const char *key, uint64_t size)
{
	struct list_acc *a = arg;
	size_t l = strlen(a->text);
	snprintf(a->text + l, sizeof(a->text) - l, "%s=%llu;", key, (unsigned long long)size);
	return ++a->n == a->stop_at ? 42 : 0;
}

static void test_list_and_odd_keys(void)
{
	char dir[4096];
	new_dir(dir, sizeof(dir));
	struct fcache *c = open_cache(dir, 0);
	if (!c)
		return;
	const char *odd = "clip/str\xc3\xa9\tam\n/../ a\\b%2F*?\"'.key";
	put(c, "clip/s/20-30", 3, 1);
	put(c, "clip/s/10-20", 2, 2);
	put(c, "frag/s/1", 1, 3);
	put(c, "clip/t/1-2", 4, 4);
	CHECK_INT(put(c, odd, 7, 5), 0, "odd key stored");
	CHECK(content_is(c, odd, 7, 5), "odd key read back");
	struct list_acc a = { "", 0, 0 };
	CHECK_INT(fcache_list(c, "clip/s/", list_cb, &a), 0, "list");
	CHECK_STR(a.text, "clip/s/10-20=2;clip/s/20-30=3;", "list by prefix, sorted");
	memset(&a, 0, sizeof(a));
	a.stop_at = 2;
	CHECK_INT(fcache_list(c, "", list_cb, &a), 42, "callback return stops the listing");
	CHECK_INT(a.n, 2, "stopped after 2");
	fcache_close(c);

	c = open_cache(dir, 0);
	if (!c)
		return;
	memset(&a, 0, sizeof(a));
	fcache_list(c, "clip/str", list_cb, &a);
	char want[256];
	snprintf(want, sizeof(want), "%s=7;", odd);
	CHECK_STR(a.text, want, "odd key survives reopen");
	CHECK(content_is(c, odd, 7, 5), "odd key content after reopen");
	fcache_close(c);
}

static void test_persistence_and_cleanup(void)
{
	char dir[4096];
	new_dir(dir, sizeof(dir));
	struct fcache *c = open_cache(dir, 0);
	if (!c)
		return;
	for (int i = 0; i < 50; i++) {
		char k[32];
		snprintf(k, sizeof(k), "frag/s/%d", i);
		put(c, k, (size_t)(10 + i), (unsigned)i);
	}
	fcache_close(c);

	/* mtimes decide LRU order at open: make frag/s/0..9 the newest */
	time_t now = time(NULL);
	for (int i = 0; i < 50; i++) {
		char k[32];
		snprintf(k, sizeof(k), "frag/s/%d", i);
		set_mtime(dir, k, now - 1000 + (i < 10 ? 500 + i : i));
	}
	c = open_cache(dir, 0);
	CHECK(c != NULL, "reopen");
	if (!c)
		return;
	struct fcache_stats s;
	fcache_stats(c, &s);
	uint64_t total = 0;
	for (int i = 0; i < 50; i++)
		total += (uint64_t)(10 + i);
	CHECK(s.entries == 50 && s.bytes == total, "index rebuilt: %llu entries, %llu bytes",
			(unsigned long long)s.entries, (unsigned long long)s.bytes);
	int ok = 1;
	for (int i = 0; i < 50; i++) {
		char k[32];
		snprintf(k, sizeof(k), "frag/s/%d", i);
		ok &= content_is(c, k, (size_t)(10 + i), (unsigned)i);
	}
	CHECK(ok, "all contents intact after reopen");
	fcache_close(c);

	/* Reapply mtimes (reads above may have refreshed them) and reopen with a small bound. */
	for (int i = 0; i < 50; i++) {
		char k[32];
		snprintf(k, sizeof(k), "frag/s/%d", i);
		set_mtime(dir, k, now - 1000 + (i < 10 ? 500 + i : i));
	}
	uint64_t ten = 0;
	for (int i = 0; i < 10; i++)
		ten += (uint64_t)(10 + i);
	c = open_cache(dir, ten);
	if (!c)
		return;
	fcache_stats(c, &s);
	ok = s.entries == 10;
	for (int i = 0; i < 10; i++) {
		char k[32];
		snprintf(k, sizeof(k), "frag/s/%d", i);
		ok &= fcache_contains(c, k, NULL);
	}
	CHECK(ok && s.bytes == ten, "open evicts down to max_bytes, oldest mtime first (%llu left)",
			(unsigned long long)s.entries);
	fcache_close(c);

	/* Leftovers and broken files, as a crash or damage would leave them. */
	char p[4096 + 64], q[4096 + 64];
	snprintf(p, sizeof(p), "%s/tmp/w.12", dir);
	write_file(p, "partial", 7);
	snprintf(p, sizeof(p), "%s/tmp/k.12", dir);
	write_file(p, "x", 1);
	snprintf(p, sizeof(p), "%s/tmp/del.3", dir);
	write_file(p, "trash", 5);
	/* data without sidecar */
	obj_path(dir, "orphan-data", p, sizeof(p), "");
	snprintf(q, sizeof(q), "%.*s", (int)(strrchr(p, '/') - p), p);
	mkdir(q, 0700);
	write_file(p, "data", 4);
	/* sidecar without data */
	obj_path(dir, "orphan-key", p, sizeof(p), ".key");
	snprintf(q, sizeof(q), "%.*s", (int)(strrchr(p, '/') - p), p);
	mkdir(q, 0700);
	write_file(p, "kvsfs-fcache-key 1 4\norphan-key", 31);
	/* sidecar whose key does not hash to the name */
	obj_path(dir, "liar", p, sizeof(p), "");
	snprintf(q, sizeof(q), "%.*s", (int)(strrchr(p, '/') - p), p);
	mkdir(q, 0700);
	write_file(p, "data", 4);
	obj_path(dir, "liar", p, sizeof(p), ".key");
	write_file(p, "kvsfs-fcache-key 1 4\nnot-liar", 29);
	/* key xattr that does not hash to the data file's name (where xattrs are kept) */
	obj_path(dir, "xliar", p, sizeof(p), "");
	snprintf(q, sizeof(q), "%.*s", (int)(strrchr(p, '/') - p), p);
	mkdir(q, 0700);
	write_file(p, "data", 4);
	(void)setxattr(p, "user.kvsfs.key", "kvsfs-fcache-key 1 4\nnot-xliar", 29, 0);
	/* sidecar with garbage magic for an existing entry */
	obj_path(dir, "frag/s/3", p, sizeof(p), ".key");
	write_file(p, "garbage", 7);
	/* a data file cut short (power loss without fsync) */
	obj_path(dir, "frag/s/6", p, sizeof(p), "");
	CHECK(truncate(p, 3) == 0, "cut a data file short");
	/* stray files */
	obj_path(dir, "frag/s/4", p, sizeof(p), ".tmp");
	write_file(p, "stray", 5);
	obj_path(dir, "frag/s/4", p, sizeof(p), "-x"); /* sorts between data and sidecar */
	write_file(p, "stray", 5);
	snprintf(p, sizeof(p), "%s/objects/stray", dir);
	write_file(p, "stray", 5);
	/* a file outside objects/ and tmp/ is left alone */
	snprintf(p, sizeof(p), "%s/sizes.log", dir);
	write_file(p, "a\t1\n", 4);

	c = open_cache(dir, 0);
	CHECK(c != NULL, "open after damage");
	if (!c)
		return;
	fcache_stats(c, &s);
	CHECK_INT(s.entries, 8, "broken entries dropped, others kept");
	CHECK_INT(fcache_contains(c, "frag/s/6", NULL), 0, "entry cut short dropped");
	CHECK(!fcache_contains(c, "frag/s/3", NULL) && fcache_contains(c, "frag/s/4", NULL),
			"entry with bad sidecar dropped");
	CHECK(!fcache_contains(c, "liar", NULL) && !fcache_contains(c, "not-liar", NULL),
			"mismatched sidecar not trusted");
	CHECK(!fcache_contains(c, "xliar", NULL) && !fcache_contains(c, "not-xliar", NULL),
			"mismatched key xattr not trusted");
	snprintf(p, sizeof(p), "%s/tmp", dir);
	CHECK_INT(count_files(p), 0, "leftover temp files removed");
	int nfiles;
	CHECK_INT(disk_bytes(dir, &nfiles), s.bytes, "only valid data files remain");
	CHECK_INT(nfiles, files_per_entry(dir) * 8, "broken and stray files removed");
	snprintf(p, sizeof(p), "%s/objects/stray", dir);
	CHECK(access(p, F_OK) != 0, "stray file in objects/ removed");
	snprintf(p, sizeof(p), "%s/sizes.log", dir);
	CHECK(access(p, F_OK) == 0, "files outside objects/ and tmp/ kept");

	/* a data file deleted behind the cache's back */
	obj_path(dir, "frag/s/5", p, sizeof(p), "");
	unlink(p);
	int fd;
	uint64_t sz;
	struct fcache_pin *pin;
	CHECK_INT(fcache_get(c, "frag/s/5", &fd, &sz, &pin), -ENOENT, "vanished file -> ENOENT");
	CHECK_INT(fcache_contains(c, "frag/s/5", NULL), 0, "vanished entry dropped");
	obj_path(dir, "frag/s/7", p, sizeof(p), "");
	CHECK(truncate(p, 1) == 0, "change a data file behind the cache");
	CHECK_INT(fcache_get(c, "frag/s/7", &fd, &sz, &pin), -ENOENT, "file changed size -> ENOENT");
	CHECK_INT(fcache_contains(c, "frag/s/7", NULL), 0, "changed entry dropped");
	fcache_stats(c, &s);
	CHECK_INT(disk_bytes(dir, &nfiles), s.bytes, "accounting still exact");

	/* two users of one dir */
	struct fcache_opts o = { .dir = dir, .max_bytes = 0, .log = &lg };
	struct fcache *c2 = NULL;
	char err[256] = "";
	CHECK_INT(fcache_open(&o, &c2, err, sizeof(err)), -EBUSY, "second open -> EBUSY");
	CHECK(c2 == NULL && strstr(err, "in use") != NULL, "clear message: %s", err);
	fcache_close(c);
	c = open_cache(dir, 0);
	CHECK(c != NULL, "open works again after close");
	fcache_close(c);

	/* a file where the dir should be */
	snprintf(p, sizeof(p), "%s/afile", base);
	write_file(p, "x", 1);
	o.dir = p;
	CHECK_INT(fcache_open(&o, &c2, err, sizeof(err)), -ENOTDIR, "dir is a file -> ENOTDIR");
	o.dir = NULL;
	CHECK_INT(fcache_open(&o, &c2, err, sizeof(err)), -EINVAL, "no dir -> EINVAL");
}

static void test_sidecar_parse(void)
{
	uint64_t size = 0;
	const char *key = NULL;
	size_t keylen = 0;
	const char *ok = "kvsfs-fcache-key 1 1234\nclip/s/1-2";
	CHECK(fcache_parse_sidecar(ok, strlen(ok), &size, &key, &keylen) == 0 && size == 1234 &&
			keylen == 10 && memcmp(key, "clip/s/1-2", 10) == 0, "sidecar parsed");
	const char *max = "kvsfs-fcache-key 1 18446744073709551615\nk";
	CHECK(fcache_parse_sidecar(max, strlen(max), &size, &key, &keylen) == 0 &&
			size == UINT64_MAX, "largest size");
	const char *bad[] = { "kvsfs-fcache-key 1 18446744073709551616\nk", "kvsfs-fcache-key 1 \nk",
		"kvsfs-fcache-key 1 12\n", "kvsfs-fcache-key 1 12", "kvsfs-fcache-key 2 1\nk",
		"kvsfs-fcache-key 1 1x\nk", "", "kvsfs" };
	int nbad = 0;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		nbad += fcache_parse_sidecar(bad[i], strlen(bad[i]), &size, &key, &keylen) == -EINVAL;
	CHECK_INT(nbad, 8, "malformed sidecars refused");
	char nul[] = "kvsfs-fcache-key 1 1\na\0b";
	CHECK_INT(fcache_parse_sidecar(nul, sizeof(nul) - 1, &size, &key, &keylen), -EINVAL,
			"NUL in key refused");
}

/* ---- concurrency ---- */

#define NTHREADS 8
#define NKEYS 24

struct thr {
	struct fcache *c;
	unsigned seed;
	int bad_reads, reads, writes, errors;
};

/* Entry content: 8-byte header (length, seed) then bytes from fill(seed): self-checking. */
static int verify_fd(int fd, uint64_t size)
{
	if (size < 8)
		return 0;
	char *p = malloc(size);
	ssize_t n = pread(fd, p, size, 0);
	int ok = n == (ssize_t)size;
	if (ok) {
		uint32_t len, seed;
		memcpy(&len, p, 4);
		memcpy(&seed, p + 4, 4);
		ok = len == size;
		if (ok) {
			char *want = malloc(size);
			fill(want, size - 8, seed);
			ok = memcmp(want, p + 8, size - 8) == 0;
			free(want);
		}
	}
	char extra;
	if (ok && pread(fd, &extra, 1, (off_t)size) != 0)
		ok = 0;
	free(p);
	return ok;
}

static void *worker(void *arg)
{
	struct thr *t = arg;
	unsigned r = t->seed;
	for (int it = 0; it < 600; it++) {
		r = r * 1103515245u + 12345u;
		char key[32];
		snprintf(key, sizeof(key), "frag/s/%u", (r >> 8) % NKEYS);
		unsigned op = (r >> 20) % 10;
		if (op < 4) {
			uint32_t size = 8 + (r >> 4) % 3000, seed = r;
			char *p = malloc(size);
			memcpy(p, &size, 4);
			memcpy(p + 4, &seed, 4);
			fill(p + 8, size - 8, seed);
			struct fcache_writer *w;
			int rc = fcache_begin(t->c, key, &w);
			if (rc == 0) {
				size_t half = size / 3;
				rc = fcache_write(w, p, half);
				if (rc == 0)
					rc = fcache_write(w, p + half, size - half);
				if (rc == 0 && op == 3) {
					fcache_abort(w);
				} else if (rc == 0) {
					rc = fcache_commit(w, NULL);
					t->writes++;
				} else {
					fcache_abort(w);
				}
			}
			if (rc)
				t->errors++;
			free(p);
		} else if (op < 9) {
			int fd;
			uint64_t size;
			struct fcache_pin *pin;
			int rc = fcache_get(t->c, key, &fd, &size, &pin);
			if (rc == 0) {
				t->reads++;
				if (!verify_fd(fd, size))
					t->bad_reads++;
				if (op == 8) /* unpin before close: the fd stays good */
					fcache_unpin(t->c, pin);
				close(fd);
				if (op != 8)
					fcache_unpin(t->c, pin);
			} else if (rc != -ENOENT) {
				t->errors++;
			}
		} else {
			int rc = fcache_remove(t->c, key);
			if (rc && rc != -ENOENT)
				t->errors++;
		}
	}
	return NULL;
}

static void test_concurrency(void)
{
	char dir[4096];
	new_dir(dir, sizeof(dir));
	struct fcache *c = open_cache(dir, 20000);
	if (!c)
		return;
	pthread_t th[NTHREADS];
	struct thr t[NTHREADS];
	for (int i = 0; i < NTHREADS; i++) {
		t[i] = (struct thr){ .c = c, .seed = (unsigned)(i * 7919 + 1) };
		pthread_create(&th[i], NULL, worker, &t[i]);
	}
	int reads = 0, bad = 0, writes = 0, errors = 0;
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		reads += t[i].reads;
		bad += t[i].bad_reads;
		writes += t[i].writes;
		errors += t[i].errors;
	}
	printf("# concurrency: %d writes, %d verified reads\n", writes, reads);
	CHECK(reads > 100 && writes > 100, "threads did work");
	CHECK_INT(bad, 0, "no torn or mixed reads");
	CHECK_INT(errors, 0, "no unexpected errors");
	struct fcache_stats s;
	fcache_stats(c, &s);
	CHECK(s.pinned == 0 && s.bytes <= 20000, "no pins left, within bound (%llu bytes)",
			(unsigned long long)s.bytes);
	int nfiles;
	CHECK_INT(disk_bytes(dir, &nfiles), s.bytes, "accounting matches the disk");
	CHECK_INT(nfiles, files_per_entry(dir) * (int)s.entries, "files match entries");
	char p[4200];
	snprintf(p, sizeof(p), "%s/tmp", dir);
	CHECK_INT(count_files(p), 0, "no temp files left");
	uint64_t entries = s.entries;
	fcache_close(c);
	c = open_cache(dir, 20000);
	if (!c)
		return;
	fcache_stats(c, &s);
	CHECK(s.entries == entries && disk_bytes(dir, &nfiles) == s.bytes,
			"reopen after concurrent use sees the same entries");
	fcache_close(c);
}

static void test_many(void)
{
	char dir[4096];
	new_dir(dir, sizeof(dir));
	struct fcache *c = open_cache(dir, 0);
	if (!c)
		return;
	int ok = 1;
	for (int i = 0; i < 3000 && ok; i++) {
		char k[32];
		snprintf(k, sizeof(k), "frag/many/%d", i);
		ok = put(c, k, 1, (unsigned)i) == 0;
	}
	CHECK(ok, "3000 entries stored");
	fcache_close(c);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	c = open_cache(dir, 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (!c)
		return;
	struct fcache_stats s;
	fcache_stats(c, &s);
	printf("# reopen of 3000 entries: %.1f ms\n",
			(double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	CHECK_INT(s.entries, 3000, "all 3000 rebuilt");
	ok = 1;
	for (int i = 0; i < 3000; i++) {
		char k[32];
		snprintf(k, sizeof(k), "frag/many/%d", i);
		ok &= fcache_contains(c, k, NULL);
	}
	CHECK(ok, "all found in the hash table");
	fcache_close(c);
}

int main(void)
{
	log_init(&lg, getenv("FCACHE_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR, stderr);
	const char *tmp = getenv("TMPDIR");
	snprintf(base, sizeof(base), "%s/kvsfs-test-fcache-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(base)) {
		perror("mkdtemp");
		return 1;
	}
	test_basic();
	test_lru();
	test_list_and_odd_keys();
	test_sidecar_parse();
	test_persistence_and_cleanup();
	test_concurrency();
	test_many();
	rm_rf(base);
	log_destroy(&lg);
	return check_done();
}
