/* Unit tests for util/array: growth doubles from the first size, keeps contents, and a failed
 * step leaves the caller's array untouched. */
#include <stdint.h>

#include "check.h"
#include "kvsfs/array.h"

int main(void)
{
	int *v = NULL;
	size_t n = 0, cap = 0, grew = 0;
	for (int i = 0; i < 1000; i++) {
		size_t before = cap;
		int *nv = array_grow(v, n, &cap, sizeof(*nv), 4);
		if (!nv)
			break;
		grew += cap != before;
		v = nv;
		v[n++] = i;
	}
	CHECK_INT(n, 1000, "1000 appends");
	CHECK_INT(cap, 1024, "capacity doubles from the first size (4 .. 1024)");
	CHECK_INT(grew, 9, "9 reallocations for 1000 appends");
	int ok = 1;
	for (size_t i = 0; i < n; i++)
		ok &= v[i] == (int)i;
	CHECK(ok, "contents kept across growth");
	CHECK(array_grow(v, 10, &cap, sizeof(*v), 4) == v && cap == 1024, "room left: same array");

	size_t big = SIZE_MAX / 2 + 1;
	size_t bcap = big;
	CHECK(array_grow(v, big, &bcap, 1, 4) == NULL && bcap == big, "count overflow refused");
	size_t ecap = 8;
	CHECK(array_grow(v, 8, &ecap, SIZE_MAX / 8, 4) == NULL && ecap == 8,
	      "byte-size overflow refused, capacity unchanged");
	free(v);

	char *c = NULL;
	size_t ccap = 0;
	c = array_grow(c, 0, &ccap, 1, 1);
	CHECK(c && ccap == 1, "first growth to the first size");
	free(c);
	return check_done();
}
