/* Unit tests for the pure parts of fs/export: metadata parsing/formatting, the part plan, paths. */
#include <errno.h>
#include <stdint.h>

#include "check.h"
#include "kvsfs/export.h"
#include "kvsfs/s3.h"

static void test_mtime(void)
{
	int64_t ms = 0;
	CHECK(!export_parse_mtime("1700000000.123456789", &ms) && ms == 1700000000123LL,
	      "mtime with nanoseconds (rclone)");
	CHECK(!export_parse_mtime("1700000000", &ms) && ms == 1700000000000LL, "mtime integer (s3fs)");
	CHECK(!export_parse_mtime("1700000000.5", &ms) && ms == 1700000000500LL, "mtime .5");
	CHECK(!export_parse_mtime("-1.25", &ms) && ms == -1250, "negative mtime");
	CHECK(!export_parse_mtime("0", &ms) && ms == 0, "zero");
	CHECK_INT(export_parse_mtime("", &ms), -EINVAL, "export_parse_mtime(\"\", &ms), -EINVAL");
	CHECK_INT(export_parse_mtime("abc", &ms), -EINVAL, "export_parse_mtime(\"abc\", &ms), -EINVAL");
	CHECK_INT(export_parse_mtime("12.", &ms), -EINVAL, "export_parse_mtime(\"12.\", &ms), -EINVAL");
	CHECK_INT(export_parse_mtime("12.3x", &ms), -EINVAL, "export_parse_mtime(\"12.3x\", &ms), -EINVAL");
	CHECK_INT(export_parse_mtime("2024-05-01T12:00:00Z", &ms), -EINVAL, "export_parse_mtime(\"2024-05-01T12:00:00Z\", &ms), -EINVAL");
	CHECK_INT(export_parse_mtime("99999999999999999999999", &ms), -EINVAL, "export_parse_mtime(\"99999999999999999999999\", &ms), -EINVAL");
	CHECK_INT(export_parse_mtime(NULL, &ms), -EINVAL, "export_parse_mtime(NULL, &ms), -EINVAL");
	char buf[32];
	export_format_mtime(1700000000123LL, buf, sizeof(buf));
	CHECK_STR(buf, "1700000000.123", "format %s", "1700000000.123");
	export_format_mtime(5, buf, sizeof(buf));
	CHECK_STR(buf, "0.005", "format %s", "0.005");
	export_format_mtime(-1250, buf, sizeof(buf));
	CHECK_STR(buf, "-1.250", "format %s", "-1.250");
	CHECK(!export_parse_mtime(buf, &ms) && ms == -1250, "format/parse round trip");
}

static void test_mode(void)
{
	mode_t m = 0;
	CHECK(!export_parse_mode("33188", &m) && m == 0644, "s3fs decimal 0100644");
	CHECK(!export_parse_mode("16877", &m) && m == 0755, "s3fs decimal dir 040755");
	CHECK(!export_parse_mode("0644", &m) && m == 0644, "octal with leading 0");
	CHECK(!export_parse_mode("0100600", &m) && m == 0600, "octal with type bits");
	CHECK(!export_parse_mode("420", &m) && m == 0644, "decimal 420");
	CHECK_INT(export_parse_mode("", &m), -EINVAL, "export_parse_mode(\"\", &m), -EINVAL");
	CHECK_INT(export_parse_mode("0689", &m), -EINVAL, "export_parse_mode(\"0689\", &m), -EINVAL");
	CHECK_INT(export_parse_mode("rw-r--r--", &m), -EINVAL, "export_parse_mode(\"rw-r--r--\", &m), -EINVAL");
	CHECK_INT(export_parse_mode("999999999999", &m), -EINVAL, "export_parse_mode(\"999999999999\", &m), -EINVAL");
}

static void test_plan(void)
{
	const uint64_t p = 8u << 20;
	uint64_t off, len, expect = 0;
	int ok = 1;
	for (int n = 1; n <= S3_MAX_PARTS; n++) {
		if (export_part_range(p, n, &off, &len) || off != expect ||
		    len != p * (uint64_t)(1 + (n - 1) / 1000))
			ok = 0;
		expect = off + len;
	}
	CHECK(ok, "part plan contiguous, sizes p..10p");
	CHECK(expect == p * 55000, "10000 parts cover 55000 p");
	CHECK(!export_part_range(p, 1, &off, &len) && off == 0 && len == p, "part 1");
	CHECK(!export_part_range(p, 1001, &off, &len) && off == 1000 * p && len == 2 * p, "part 1001");
	CHECK_INT(export_part_range(p, 0, &off, &len), -EINVAL, "export_part_range(p, 0, &off, &len), -EINVAL");
	CHECK_INT(export_part_range(p, S3_MAX_PARTS + 1, &off, &len), -EINVAL, "export_part_range(p, S3_MAX_PARTS + 1, &off, &len), -EINVAL");
	CHECK_INT(export_part_range(0, 1, &off, &len), -EINVAL, "export_part_range(0, 1, &off, &len), -EINVAL");
}

static void test_paths(void)
{
	CHECK_INT(export_path_valid(""), 0, "export_path_valid(\"\"), 0");
	CHECK_INT(export_path_valid("a"), 0, "export_path_valid(\"a\"), 0");
	CHECK_INT(export_path_valid("a/b c/.hidden.x3Zq"), 0, "export_path_valid(\"a/b c/.hidden.x3Zq\"), 0");
	CHECK_INT(export_path_valid("a/"), -EINVAL, "export_path_valid(\"a/\"), -EINVAL");
	CHECK_INT(export_path_valid("/a"), -EINVAL, "export_path_valid(\"/a\"), -EINVAL");
	CHECK_INT(export_path_valid("a//b"), -EINVAL, "export_path_valid(\"a//b\"), -EINVAL");
	CHECK_INT(export_path_valid("a/./b"), -EINVAL, "export_path_valid(\"a/./b\"), -EINVAL");
	CHECK_INT(export_path_valid(".."), -EINVAL, "export_path_valid(\"..\"), -EINVAL");
	CHECK_INT(export_path_valid(NULL), -EINVAL, "export_path_valid(NULL), -EINVAL");
}

static int parse_rec(const char *s, size_t n, char **b, char **i, char **k)
{
	return export_parse_upload_record(s, n, b, i, k);
}

static void test_upload_record(void)
{
	static const char good[] = "kvsfs-upload 1\nbucket exports\nupload-id 2~AbC.d_e-f\n"
				   "key 14\ncam1/a\nb c.mp4\nend\n";
	char *b, *i, *k;
	size_t n = sizeof(good) - 1;
	CHECK(!parse_rec(good, n, &b, &i, &k) && !strcmp(b, "exports") && !strcmp(i, "2~AbC.d_e-f") &&
	      !strcmp(k, "cam1/a\nb c.mp4"), "record with a newline in the key");
	free(b);
	free(i);
	free(k);
	int cut_ok = 1;
	for (size_t l = 0; l < n; l++) {  /* every truncation (a crash while writing) is rejected */
		if (parse_rec(good, l, &b, &i, &k) != -EINVAL || b || i || k)
			cut_ok = 0;
	}
	CHECK(cut_ok, "every cut-short record is -EINVAL with NULL outputs");
	static const char *bad[] = {
		"kvsfs-upload 2\nbucket b\nupload-id x\nkey 1\nk\nend\n",     /* other version */
		"kvsfs-upload 1\nbucket b\nupload-id x\nkey 2\nk\nend\n",     /* length mismatch */
		"kvsfs-upload 1\nbucket b\nupload-id x\nkey 0\n\nend\n",      /* empty key */
		"kvsfs-upload 1\nbucket b\nupload-id x\nkey -1\nk\nend\n",    /* sign */
		"kvsfs-upload 1\nbucket b\nupload-id \x01x\nkey 1\nk\nend\n", /* control byte */
		"kvsfs-upload 1\nbucket b\nupload-id \nkey 1\nk\nend\n",      /* empty id */
		"kvsfs-upload 1\nupload-id x\nbucket b\nkey 1\nk\nend\n",     /* order */
		"kvsfs-upload 1\nbucket b\nupload-id x\nkey 1\nk\nend\nX",    /* trailing bytes */
		"kvsfs-upload 1\nbucket b\nupload-id x\nkey 99999\nk\nend\n", /* too long */
	};
	for (size_t t = 0; t < sizeof(bad) / sizeof(bad[0]); t++)
		CHECK_INT(parse_rec(bad[t], strlen(bad[t]), &b, &i, &k), -EINVAL, "bad record %zu", t);
	static const char nul[] = "kvsfs-upload 1\nbucket b\nupload-id x\nkey 3\na\0b\nend\n";
	CHECK_INT(parse_rec(nul, sizeof(nul) - 1, &b, &i, &k), -EINVAL, "NUL in the key");
	CHECK_INT(parse_rec(NULL, 0, &b, &i, &k), -EINVAL, "NULL data");
}

static void test_journal(void)
{
	static const char good[] = "kvsfs-writeback 1\nsize 35840\nmode 420\nmtime_ms 1700000000123\n"
		"sha256 2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881\n"
		"path cam1/a b.mkv";
	struct export_journal j;
	CHECK(!export_parse_journal(good, sizeof(good) - 1, &j) && j.size == 35840 &&
	      j.mode == 0644 && j.mtime_ms == 1700000000123 && !strcmp(j.path, "cam1/a b.mkv") &&
	      !strncmp(j.sha, "2d7116", 6), "journal entry");
	int cut_ok = 1;
	for (size_t l = 0; l < sizeof(good) - 14; l++)  /* cut before the path: rejected */
		if (export_parse_journal(good, l, &j) != -EINVAL)
			cut_ok = 0;
	CHECK(cut_ok, "a journal entry cut before its path is -EINVAL");
	static const char *bad[] = {
		"kvsfs-writeback 2\nsize 1\nmode 420\nmtime_ms 1\nsha256 "
		"2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881\npath a",
		"kvsfs-writeback 1\nsize 1\nmode 420\nmtime_ms 1\nsha256 2d71\npath a",
		"kvsfs-writeback 1\nsize 1\nmode 420\nmtime_ms 1\nsha256 "
		"2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881\npath a/../b",
		"kvsfs-writeback 1\nsize 1\nmode 420\nmtime_ms 1\nsha256 "
		"2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881\npath ",
	};
	for (size_t t = 0; t < sizeof(bad) / sizeof(bad[0]); t++)
		CHECK_INT(export_parse_journal(bad[t], strlen(bad[t]), &j), -EINVAL, "bad journal %zu", t);
}

int main(void)
{
	test_mtime();
	test_mode();
	test_plan();
	test_paths();
	test_upload_record();
	test_journal();
	return check_done();
}
