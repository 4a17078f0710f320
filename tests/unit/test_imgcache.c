/* Unit tests for fs/imgcache: image names (strict, whole seconds) and the slot lookup. */
#include <errno.h>
#include <stdlib.h>

#include "check.h"
#include "kvsfs/imgcache.h"

int main(void)
{
	char n[IMGCACHE_NAME_LEN];
	int64_t ts;

	CHECK(imgcache_format_name(1714564800000LL, n) == 0, "format name");
	CHECK_STR(n, "20240501T120000Z.jpg", "name text");
	CHECK(imgcache_parse_name(n, &ts) == 0 && ts == 1714564800000LL, "name round trip");
	CHECK(imgcache_format_name(1714564800120LL, n) == -EINVAL, "a slot is whole seconds");
	CHECK(imgcache_format_name(-1000, n) == -EINVAL, "negative time rejected");
	CHECK(imgcache_parse_name("20240501T120000.000Z.jpg", &ts) == -EINVAL, "milliseconds rejected");
	CHECK(imgcache_parse_name("20240501T120000Z.jpeg", &ts) == -EINVAL, "other suffix rejected");
	CHECK(imgcache_parse_name("20240501T120000Z.jp", &ts) == -EINVAL, "short suffix rejected");
	CHECK(imgcache_parse_name("20240230T120000Z.jpg", &ts) == -EINVAL, "30 February rejected");
	CHECK(imgcache_parse_name("20240501T120000z.jpg", &ts) == -EINVAL, "lower-case z rejected");
	CHECK(imgcache_parse_name("", &ts) == -EINVAL, "empty rejected");

	struct img_entry v[] = { { 1000, 1000, 5 }, { 61000, 61020, 7 }, { 181000, 180990, 9 } };
	struct img_hour h = { .n = 3, .v = v };
	CHECK(imgcache_find(&h, 1000) == 0 && imgcache_find(&h, 61000) == 1 &&
	      imgcache_find(&h, 181000) == 2, "slots found");
	CHECK(imgcache_find(&h, 121000) == -1 && imgcache_find(&h, 0) == -1 &&
	      imgcache_find(&h, 241000) == -1, "missing slots not found");
	struct img_hour empty = { 0 };
	CHECK(imgcache_find(&empty, 1000) == -1, "empty listing");
	return check_done();
}
