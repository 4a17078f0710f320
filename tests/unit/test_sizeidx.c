/*
 * Unit tests for sizeidx: put/get/remove, persistence, escaping, torn and garbage lines,
 * compaction, the dir lock, 8 writer threads (with syncs and compactions among them), and a
 * timed load of 1,000,000 entries (printed, not asserted). Works in a temp dir under $TMPDIR,
 * removed at the end.
 */
#include "check.h"

#include "kvsfs/buf.h"
#include "kvsfs/log.h"
#include "kvsfs/sizeidx.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

static void new_dir(char *out, size_t n)
{
	snprintf(out, n, "%s/d%d", base, ++dir_seq);
}

static struct sizeidx *open_idx(const char *dir)
{
	struct sizeidx_opts o = { .dir = dir, .log = &lg, .sync_ms = 0 };
	struct sizeidx *s = NULL;
	char err[256] = "";
	int r = sizeidx_open(&o, &s, err, sizeof(err));
	if (r)
		printf("# sizeidx_open(%s): %d %s\n", dir, r, err);
	return s;
}

static char *read_log(const char *dir, size_t *len)
{
	char p[4200];
	snprintf(p, sizeof(p), "%s/sizes.log", dir);
	FILE *f = fopen(p, "rb");
	if (!f)
		return NULL;
	struct buf b = BUF_INIT;
	char tmp[65536];
	size_t n;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		buf_append(&b, tmp, n);
	fclose(f);
	*len = b.len;
	return buf_steal(&b);
}

static void append_log(const char *dir, const char *text)
{
	char p[4200];
	snprintf(p, sizeof(p), "%s/sizes.log", dir);
	FILE *f = fopen(p, "ab");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static int64_t get_or(struct sizeidx *s, const char *key, int64_t dflt)
{
	int64_t v;
	return sizeidx_get(s, key, &v) == 0 ? v : dflt;
}

/* ---- the format ---- */

struct rec_acc {
	char text[4096];
};

static int rec_cb(void *arg, const char *key, size_t keylen, int64_t value, int deleted)
{
	struct rec_acc *a = arg;
	size_t l = strlen(a->text);
	if (deleted)
		snprintf(a->text + l, sizeof(a->text) - l, "[%zu:%s=DEL]", keylen, key);
	else
		snprintf(a->text + l, sizeof(a->text) - l, "[%zu:%s=%" PRId64 "]", keylen, key, value);
	return 0;
}

static void test_format(void)
{
	struct buf b = BUF_INIT;
	CHECK_INT(sizeidx_format_record(&b, "a\tb\nc\\d", 7, -5, 0), 0, "format odd key");
	CHECK_STR(buf_str(&b), "a\\tb\\nc\\\\d\t-5\n", "escaped record");
	CHECK_INT(sizeidx_format_record(&b, "k", 1, 0, 1), 0, "format removal");
	CHECK_INT(sizeidx_format_record(&b, "", 0, 1, 0), -EINVAL, "empty key refused");
	CHECK_INT(sizeidx_format_record(&b, "a\0b", 3, 1, 0), -EINVAL, "NUL in key refused");
	char big[SIZEIDX_KEY_MAX + 1];
	memset(big, 'x', sizeof(big));
	CHECK_INT(sizeidx_format_record(&b, big, sizeof(big), 1, 0), -ENAMETOOLONG, "long key refused");

	struct rec_acc a = { "" };
	struct sizeidx_parse_result r;
	CHECK_INT(sizeidx_parse_buffer(b.data, b.len, rec_cb, &a, &r), 0, "parse");
	CHECK_STR(a.text, "[7:a\tb\nc\\d=-5][1:k=DEL]", "round trip");
	CHECK(r.records == 2 && r.bad_lines == 0 && !r.torn && r.good_len == b.len, "clean result");
	buf_free(&b);

	const char *t = "max\t9223372036854775807\nmin\t-9223372036854775808\n"
			"over\t9223372036854775808\nunder\t-9223372036854775809\n"
			"long\t12345678901234567890\nhex\t0x10\nnone\t\n\t5\nnotab\n\n"
			"badesc\\x\t1\nend\\\t1\nsp\t 1\nplus\t+1\ntwo\t1\t2\nok\t007\ntorn\t1";
	memset(&a, 0, sizeof(a));
	CHECK_INT(sizeidx_parse_buffer(t, strlen(t), rec_cb, &a, &r), 0, "parse edge cases");
	CHECK_STR(a.text, "[3:max=9223372036854775807][3:min=-9223372036854775808][2:ok=7]",
			"int64 bounds parsed, malformed lines skipped");
	CHECK_INT(r.bad_lines, 13, "malformed lines counted");
	CHECK(r.torn && r.good_len == strlen(t) - strlen("torn\t1"), "torn tail reported");
	CHECK_INT(sizeidx_parse_buffer(NULL, 0, rec_cb, &a, &r), 0, "empty buffer");
	CHECK(r.records == 0 && r.good_len == 0 && !r.torn, "empty result");

	/* 1024-byte key parses; 1025 does not */
	struct buf k = BUF_INIT;
	for (int i = 0; i < SIZEIDX_KEY_MAX; i++)
		buf_putc(&k, 'k');
	buf_appendz(&k, "\t1\n");
	sizeidx_parse_buffer(k.data, k.len, NULL, NULL, &r);
	CHECK(r.records == 1 && r.bad_lines == 0, "1024-byte key accepted");
	buf_reset(&k);
	for (int i = 0; i < SIZEIDX_KEY_MAX + 1; i++)
		buf_putc(&k, 'k');
	buf_appendz(&k, "\t1\n");
	sizeidx_parse_buffer(k.data, k.len, NULL, NULL, &r);
	CHECK(r.records == 0 && r.bad_lines == 1, "1025-byte key refused");
	buf_free(&k);
}

/* ---- the persistent map ---- */

static void test_basic(void)
{
	char dir[4096];
	new_dir(dir, sizeof(dir));
	struct sizeidx *s = open_idx(dir);
	CHECK(s != NULL, "open creates the dir and log");
	if (!s)
		return;
	int64_t v = 0;
	CHECK_INT(sizeidx_get(s, "frag/x/1", &v), -ENOENT, "absent");
	CHECK_INT(sizeidx_put(s, "frag/x/1", 123456), 0, "put");
	CHECK_INT(get_or(s, "frag/x/1", -1), 123456, "get");
	CHECK_INT(sizeidx_put(s, "frag/x/1", 654321), 0, "overwrite");
	CHECK_INT(get_or(s, "frag/x/1", -1), 654321, "get overwritten");
	CHECK_INT(sizeidx_put(s, "neg", -7), 0, "negative value");
	CHECK_INT(sizeidx_put(s, "max", INT64_MAX), 0, "INT64_MAX");
	CHECK_INT(sizeidx_put(s, "min", INT64_MIN), 0, "INT64_MIN");
	const char *odd = "clip/a\tb\nc\\d\\t\xc3\xa9 ";
	CHECK_INT(sizeidx_put(s, odd, 42), 0, "odd key");
	CHECK_INT(sizeidx_put(s, "gone", 1), 0, "put gone");
	CHECK_INT(sizeidx_remove(s, "gone"), 0, "remove");
	CHECK_INT(sizeidx_remove(s, "gone"), -ENOENT, "remove absent");
	CHECK_INT(sizeidx_get(s, "gone", &v), -ENOENT, "removed");
	CHECK_INT(sizeidx_put(s, "", 1), -EINVAL, "empty key");
	char big[SIZEIDX_KEY_MAX + 2];
	memset(big, 'b', sizeof(big));
	big[SIZEIDX_KEY_MAX + 1] = '\0';
	CHECK_INT(sizeidx_put(s, big, 1), -ENAMETOOLONG, "1025-byte key");
	big[SIZEIDX_KEY_MAX] = '\0';
	CHECK_INT(sizeidx_put(s, big, 99), 0, "1024-byte key");
	struct sizeidx_stats st;
	sizeidx_stats(s, &st);
	uint64_t records = st.records;
	CHECK_INT(sizeidx_put(s, "max", INT64_MAX), 0, "same value again");
	sizeidx_stats(s, &st);
	CHECK_INT(st.records, records, "unchanged value appends nothing");
	CHECK_INT(st.live, 6, "live count");
	CHECK_INT(sizeidx_sync(s), 0, "sync");

	/* second user */
	struct sizeidx_opts o = { .dir = dir, .log = &lg };
	struct sizeidx *s2 = NULL;
	char err[256] = "";
	CHECK_INT(sizeidx_open(&o, &s2, err, sizeof(err)), -EBUSY, "second open -> EBUSY");
	CHECK(s2 == NULL && strstr(err, "in use"), "clear message: %s", err);
	sizeidx_close(s);

	s = open_idx(dir);
	CHECK(s != NULL, "reopen");
	if (!s)
		return;
	CHECK_INT(get_or(s, "frag/x/1", -1), 654321, "persisted overwrite");
	CHECK_INT(get_or(s, "neg", 0), -7, "persisted negative");
	CHECK(get_or(s, "max", 0) == INT64_MAX && get_or(s, "min", 0) == INT64_MIN, "persisted bounds");
	CHECK_INT(get_or(s, odd, 0), 42, "persisted odd key");
	CHECK_INT(get_or(s, big, 0), 99, "persisted long key");
	CHECK_INT(sizeidx_get(s, "gone", &v), -ENOENT, "removal persisted");
	sizeidx_stats(s, &st);
	CHECK_INT(st.live, 6, "live after reopen");
	sizeidx_close(s);
	size_t len;
	char *log = read_log(dir, &len);
	CHECK(log && strstr(log, "clip/a\\tb\\nc\\\\d\\\\t\xc3\xa9 \t42\n") != NULL,
			"odd key escaped on one line in the log");
	free(log);

	o.dir = NULL;
	CHECK_INT(sizeidx_open(&o, &s2, err, sizeof(err)), -EINVAL, "no dir -> EINVAL");
}

static void test_crash(void)
{
	char dir[4096];
	new_dir(dir, sizeof(dir));
	struct sizeidx *s = open_idx(dir);
	if (!s)
		return;
	sizeidx_put(s, "a", 1);
	sizeidx_put(s, "b", 2);
	sizeidx_close(s);

	/* torn last line: half a record without its newline */
	append_log(dir, "c\t3");
	size_t len0;
	char *log = read_log(dir, &len0);
	free(log);
	s = open_idx(dir);
	CHECK(s != NULL, "open with a torn last line");
	if (!s)
		return;
	int64_t v;
	CHECK(get_or(s, "a", 0) == 1 && get_or(s, "b", 0) == 2, "earlier records kept");
	CHECK_INT(sizeidx_get(s, "c", &v), -ENOENT, "torn record ignored");
	struct sizeidx_stats st;
	sizeidx_stats(s, &st);
	CHECK_INT(st.file_bytes, len0 - 3, "torn tail cut off");
	CHECK_INT(sizeidx_put(s, "d", 4), 0, "append after a torn tail");
	sizeidx_close(s);
	s = open_idx(dir);
	if (!s)
		return;
	CHECK(get_or(s, "d", 0) == 4 && get_or(s, "a", 0) == 1, "record after the cut is intact");
	sizeidx_close(s);

	/* garbage lines, binary junk, an unterminated garbage tail */
	append_log(dir, "garbage line\nk\tabc\n\t5\n\\q\t1\ne\t5\n");
	char p[4200];
	snprintf(p, sizeof(p), "%s/sizes.log", dir);
	FILE *f = fopen(p, "ab");
	if (f) {
		const char junk[] = { 'x', 0, '\t', (char)0xff, '\n', 'f', '\t', '6', '\n', (char)0x80, 1, 2 };
		fwrite(junk, 1, sizeof(junk), f);
		fclose(f);
	}
	/* a leftover of a crashed compaction */
	snprintf(p, sizeof(p), "%s/sizes.log.tmp", dir);
	f = fopen(p, "wb");
	if (f) {
		fputs("a\t999\n", f);
		fclose(f);
	}
	s = open_idx(dir);
	CHECK(s != NULL, "open with garbage");
	if (!s)
		return;
	CHECK(get_or(s, "a", 0) == 1 && get_or(s, "b", 0) == 2 && get_or(s, "d", 0) == 4 &&
			get_or(s, "e", 0) == 5 && get_or(s, "f", 0) == 6, "good records around garbage kept");
	CHECK_INT(sizeidx_get(s, "k", &v), -ENOENT, "bad value skipped");
	sizeidx_stats(s, &st);
	CHECK(st.compactions == 1 && st.records == 5 && st.live == 5,
			"garbage removed by compaction at open (%llu records)",
			(unsigned long long)st.records);
	CHECK(access(p, F_OK) != 0, "stale sizes.log.tmp removed");
	sizeidx_close(s);
	size_t len;
	log = read_log(dir, &len);
	struct sizeidx_parse_result r;
	sizeidx_parse_buffer(log, len, NULL, NULL, &r);
	CHECK(r.records == 5 && r.bad_lines == 0 && !r.torn, "log is clean after compaction");
	free(log);

	/* empty and missing log */
	snprintf(p, sizeof(p), "%s/sizes.log", dir);
	unlink(p);
	s = open_idx(dir);
	CHECK(s != NULL && sizeidx_get(s, "a", &v) == -ENOENT, "missing log -> empty map");
	sizeidx_close(s);
}

static void test_compaction(void)
{
	char dir[4096];
	new_dir(dir, sizeof(dir));
	struct sizeidx *s = open_idx(dir);
	if (!s)
		return;
	enum { N = 3000, ROUNDS = 5 };
	int ok = 1;
	for (int r = 0; r < ROUNDS; r++) {
		for (int i = 0; i < N; i++) {
			char k[32];
			snprintf(k, sizeof(k), "frag/c/%d", i);
			ok &= sizeidx_put(s, k, (int64_t)i * 1000 + r) == 0;
		}
	}
	/* remove every third key */
	for (int i = 0; i < N; i += 3) {
		char k[32];
		snprintf(k, sizeof(k), "frag/c/%d", i);
		ok &= sizeidx_remove(s, k) == 0;
	}
	CHECK(ok, "puts and removes");
	struct sizeidx_stats st;
	sizeidx_stats(s, &st);
	printf("# %llu records, %llu live, %llu compactions\n", (unsigned long long)st.records,
			(unsigned long long)st.live, (unsigned long long)st.compactions);
	CHECK(st.compactions >= 2, "compaction ran (%llu)", (unsigned long long)st.compactions);
	CHECK(st.records <= 2 * st.live + 1, "log stays within 2x live records");
	ok = 1;
	for (int i = 0; i < N; i++) {
		char k[32];
		int64_t v;
		snprintf(k, sizeof(k), "frag/c/%d", i);
		int r = sizeidx_get(s, k, &v);
		ok &= i % 3 == 0 ? r == -ENOENT : (r == 0 && v == (int64_t)i * 1000 + ROUNDS - 1);
	}
	CHECK(ok, "every value correct after compactions");
	CHECK_INT(sizeidx_compact(s), 0, "explicit compaction");
	sizeidx_stats(s, &st);
	CHECK_INT(st.records, st.live, "explicit compaction leaves live records only");
	sizeidx_close(s);
	s = open_idx(dir);
	if (!s)
		return;
	ok = 1;
	for (int i = 0; i < N; i++) {
		char k[32];
		int64_t v;
		snprintf(k, sizeof(k), "frag/c/%d", i);
		int r = sizeidx_get(s, k, &v);
		ok &= i % 3 == 0 ? r == -ENOENT : (r == 0 && v == (int64_t)i * 1000 + ROUNDS - 1);
	}
	CHECK(ok, "every value correct after reopen");
	sizeidx_stats(s, &st);
	CHECK_INT(st.live, N - (N + 2) / 3, "live count after reopen");
	sizeidx_close(s);
}

/* Random puts/removes/gets against a plain array, across compactions and reopens: exercises
 * the table's backward-shift deletion and the arena of loaded entries. */
static void test_random(void)
{
	char dir[4096];
	new_dir(dir, sizeof(dir));
	struct sizeidx *s = open_idx(dir);
	if (!s)
		return;
	enum { K = 700, OPS = 60000 };
	static int64_t ref[K];
	static char present[K];
	unsigned x = 12345;
	int bad = 0;
	for (int op = 0; op < OPS && s; op++) {
		x = x * 1103515245u + 12345u;
		int k = (int)((x >> 8) % K);
		char key[32];
		snprintf(key, sizeof(key), "r/%d", k);
		unsigned what = (x >> 24) % 8;
		if (what < 4) {
			int64_t v = (int64_t)(x >> 3) - 100000;
			bad += sizeidx_put(s, key, v) != 0;
			ref[k] = v;
			present[k] = 1;
		} else if (what < 6) {
			int r = sizeidx_remove(s, key);
			bad += r != (present[k] ? 0 : -ENOENT);
			present[k] = 0;
		} else {
			int64_t v;
			int r = sizeidx_get(s, key, &v);
			bad += present[k] ? (r != 0 || v != ref[k]) : r != -ENOENT;
		}
		if (op % 20000 == 19999) {
			sizeidx_close(s);
			s = open_idx(dir);
		}
	}
	CHECK_INT(bad, 0, "random ops match a reference map");
	int mismatch = 0;
	size_t live = 0;
	for (int k = 0; k < K && s; k++) {
		char key[32];
		int64_t v;
		snprintf(key, sizeof(key), "r/%d", k);
		int r = sizeidx_get(s, key, &v);
		mismatch += present[k] ? (r != 0 || v != ref[k]) : r != -ENOENT;
		live += present[k] ? 1 : 0;
	}
	CHECK_INT(mismatch, 0, "final state matches");
	struct sizeidx_stats st;
	if (s) {
		sizeidx_stats(s, &st);
		CHECK_INT(st.live, live, "live count matches");
	}
	sizeidx_close(s);
}

#define NTHREADS 8
#define PER_THREAD 2000

struct thr {
	struct sizeidx *s;
	int id, errors;
};

static void *worker(void *arg)
{
	struct thr *t = arg;
	for (int i = 0; i < PER_THREAD; i++) {
		char k[48];
		snprintf(k, sizeof(k), "frag/t%d/%d", t->id, i);
		if (sizeidx_put(t->s, k, (int64_t)t->id * 1000000 + i) != 0)
			t->errors++;
		snprintf(k, sizeof(k), "shared/%d", i % 50);
		if (sizeidx_put(t->s, k, i) != 0)
			t->errors++;
		int64_t v;
		snprintf(k, sizeof(k), "frag/t%d/%d", t->id, i / 2);
		int r = sizeidx_get(t->s, k, &v);
		if ((i / 2) % 10 == 9 && i / 2 < i ? r != -ENOENT
				: (r != 0 || v != (int64_t)t->id * 1000000 + i / 2))
			t->errors++;
		if (i % 10 == 9) {
			snprintf(k, sizeof(k), "frag/t%d/%d", t->id, i);
			if (sizeidx_remove(t->s, k) != 0)
				t->errors++;
		}
		/* syncs and compactions own the log file too, between the others' appends */
		if (t->id == 0 && i % 500 == 250 && sizeidx_compact(t->s) != 0)
			t->errors++;
		if (t->id == 1 && i % 300 == 150 && sizeidx_sync(t->s) != 0)
			t->errors++;
	}
	return NULL;
}

static void test_threads(void)
{
	char dir[4096];
	new_dir(dir, sizeof(dir));
	struct sizeidx_opts o = { .dir = dir, .log = &lg, .sync_ms = 50 };
	struct sizeidx *s = NULL;
	char err[256];
	if (sizeidx_open(&o, &s, err, sizeof(err)) != 0)
		return;
	pthread_t th[NTHREADS];
	struct thr t[NTHREADS];
	for (int i = 0; i < NTHREADS; i++) {
		t[i] = (struct thr){ .s = s, .id = i };
		pthread_create(&th[i], NULL, worker, &t[i]);
	}
	int errors = 0;
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		errors += t[i].errors;
	}
	CHECK_INT(errors, 0, "8 threads: no errors");
	struct sizeidx_stats st;
	sizeidx_stats(s, &st);
	CHECK(st.compactions >= 4, "compactions ran while the threads wrote (%llu)",
	      (unsigned long long)st.compactions);
	sizeidx_close(s);
	s = open_idx(dir);
	if (!s)
		return;
	int ok = 1;
	for (int id = 0; id < NTHREADS; id++) {
		for (int i = 0; i < PER_THREAD; i++) {
			char k[48];
			int64_t v;
			snprintf(k, sizeof(k), "frag/t%d/%d", id, i);
			int r = sizeidx_get(s, k, &v);
			ok &= i % 10 == 9 ? r == -ENOENT : (r == 0 && v == (int64_t)id * 1000000 + i);
		}
	}
	CHECK(ok, "every thread's values persisted");
	sizeidx_stats(s, &st);
	CHECK_INT(st.live, NTHREADS * PER_THREAD * 9 / 10 + 50, "live count");
	sizeidx_close(s);
}

static double ms_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static void test_million(void)
{
	char dir[4096];
	new_dir(dir, sizeof(dir));
	mkdir(dir, 0700);
	enum { N = 1000000 };
	char p[4200];
	snprintf(p, sizeof(p), "%s/sizes.log", dir);
	FILE *f = fopen(p, "wb");
	if (!f)
		return;
	struct buf b = BUF_INIT;
	for (int i = 0; i < N; i++) {
		char k[96];
		int n = snprintf(k, sizeof(k), "frag/stream-%d/9187465347347236%012d", i % 7, i);
		sizeidx_format_record(&b, k, (size_t)n, (int64_t)i * 37 + 1000, 0);
		if (b.len > (1 << 20)) {
			fwrite(b.data, 1, b.len, f);
			buf_reset(&b);
		}
	}
	fwrite(b.data, 1, b.len, f);
	fclose(f);
	buf_free(&b);

	struct timespec t0, c0, c1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
	struct sizeidx *s = open_idx(dir);
	double ms = ms_since(&t0);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
	CHECK(s != NULL, "open 1,000,000 entries");
	if (!s)
		return;
	printf("# sizeidx: loaded 1000000 entries in %.1f ms (%.1f ms of CPU)\n", ms,
			(double)(c1.tv_sec - c0.tv_sec) * 1e3 + (double)(c1.tv_nsec - c0.tv_nsec) / 1e6);
	struct sizeidx_stats st;
	sizeidx_stats(s, &st);
	CHECK_INT(st.live, N, "all loaded");
	CHECK_INT(st.compactions, 0, "no compaction needed");
	int ok = 1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < N; i++) {
		char k[96];
		int64_t v;
		snprintf(k, sizeof(k), "frag/stream-%d/9187465347347236%012d", i % 7, i);
		ok &= sizeidx_get(s, k, &v) == 0 && v == (int64_t)i * 37 + 1000;
	}
	printf("# sizeidx: 1000000 lookups in %.1f ms\n", ms_since(&t0));
	CHECK(ok, "every value found");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_INT(sizeidx_compact(s), 0, "compact 1,000,000");
	printf("# sizeidx: compaction of 1000000 entries in %.1f ms\n", ms_since(&t0));
	sizeidx_close(s);
}

int main(void)
{
	log_init(&lg, getenv("SIZEIDX_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR, stderr);
	const char *tmp = getenv("TMPDIR");
	snprintf(base, sizeof(base), "%s/kvsfs-test-sizeidx-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(base)) {
		perror("mkdtemp");
		return 1;
	}
	test_format();
	test_basic();
	test_crash();
	test_compaction();
	test_random();
	test_threads();
	test_million();
	nftw(base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	log_destroy(&lg);
	return check_done();
}
