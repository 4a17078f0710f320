/* Unit tests for the S3 client's user metadata (struct s3_meta) and for the layering of its API:
 * kvsfs/s3.h must not bring HTTP types (http.h, awsreq.h) to its callers. */
#include <errno.h>

#include "kvsfs/s3.h"

#if defined(KVSFS_HTTP_H) || defined(KVSFS_AWSREQ_H)
#error "kvsfs/s3.h must not include HTTP types (kvsfs/http.h, kvsfs/awsreq.h)"
#endif

#include "check.h"

static void test_add_lookup(void)
{
	struct s3_meta m = S3_META_INIT;
	CHECK_INT(s3_meta_add(&m, "mtime", "1700000000.500"), 0, "add");
	CHECK_INT(s3_meta_add(&m, "Mode", "33188"), 0, "add another");
	CHECK_INT(s3_meta_add(&m, "MTIME", "2"), 0, "duplicates allowed");
	CHECK_STR(s3_meta_lookup(&m, "MtImE"), "1700000000.500", "case-insensitive, first wins");
	CHECK_STR(s3_meta_lookup(&m, "mode"), "33188", "second entry");
	CHECK(s3_meta_lookup(&m, "none") == NULL, "absent");
	CHECK_INT(m.n, 3, "three entries");

	CHECK_INT(s3_meta_add(&m, "", "v"), -EINVAL, "empty name");
	CHECK_INT(s3_meta_add(&m, "a b", "v"), -EINVAL, "space in name");
	CHECK_INT(s3_meta_add(&m, "a:b", "v"), -EINVAL, "colon in name");
	CHECK_INT(s3_meta_add(&m, "a\x7f", "v"), -EINVAL, "DEL in name");
	CHECK_INT(s3_meta_add(&m, "x", "a\r\nInjected: 1"), -EINVAL, "CRLF in value");
	CHECK_INT(s3_meta_set(&m, "x", "a\nb"), -EINVAL, "LF in value (set)");
	CHECK_INT(s3_meta_add(&m, "empty", ""), 0, "empty value allowed");
	CHECK_INT(s3_meta_add(&m, "utf8", "\xc3\xa9"), 0, "non-ASCII accepted here (refused when sent)");
	CHECK_INT(m.n, 5, "bad entries not added");
	s3_meta_free(&m);
	CHECK(m.v == NULL && m.n == 0 && m.cap == 0, "free empties");
	CHECK_INT(s3_meta_add(&m, "again", "1"), 0, "reusable after free");
	s3_meta_free(&m);
}

static void test_set_copy(void)
{
	struct s3_meta m = S3_META_INIT, c = S3_META_INIT;
	s3_meta_add(&m, "a", "1");
	s3_meta_add(&m, "b", "2");
	s3_meta_add(&m, "A", "3");
	s3_meta_add(&m, "c", "4");
	CHECK_INT(s3_meta_set(&m, "a", "9"), 0, "set replaces");
	CHECK_INT(m.n, 3, "later duplicates dropped");
	CHECK(!strcmp(m.v[0].name, "a") && !strcmp(m.v[0].value, "9"), "first entry kept in place");
	CHECK(!strcmp(m.v[1].name, "b") && !strcmp(m.v[2].name, "c"), "order of the others kept");
	CHECK_INT(s3_meta_set(&m, "d", "5"), 0, "set appends a new name");
	CHECK_STR(m.v[3].value, "5", "appended at the end");

	s3_meta_add(&c, "z", "0");
	CHECK_INT(s3_meta_copy(&c, &m), 0, "copy");
	CHECK_INT(c.n, 5, "copy appends");
	CHECK_STR(s3_meta_lookup(&c, "A"), "9", "copied value");
	CHECK(c.v[1].name != m.v[0].name, "copies own their strings");
	CHECK_INT(s3_meta_copy(&c, NULL), 0, "copy of nothing");
	s3_meta_free(&m);
	CHECK_STR(s3_meta_lookup(&c, "d"), "5", "copy outlives the source");
	s3_meta_free(&c);
}

static void test_object_info(void)
{
	struct s3_object_info info = { 0 };
	s3_meta_add(&info.meta, "mtime", "-12.5");
	CHECK_STR(s3_meta_get(&info, "MTIME"), "-12.5", "s3_meta_get reads the info's metadata");
	int64_t x = 0;
	CHECK_INT(s3_meta_get_int64(&info, "mtime", 0, &x), 0, "negative with fraction");
	CHECK_INT(x, -12, "fraction cut");
	s3_object_info_free(&info);
	CHECK(info.meta.n == 0 && info.size == -1 && info.last_modified == -1, "info reset by free");
}

int main(void)
{
	test_add_lookup();
	test_set_copy();
	test_object_info();
	return check_done();
}
