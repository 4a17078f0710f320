/*
 * array: growth step for caller-held growable arrays (see include/kvsfs/array.h).
 * Invariant: on failure nothing changes; on success *cap > n.
 */
#include "kvsfs/array.h"

#include <stdint.h>
#include <stdlib.h>

void *array_grow(void *v, size_t n, size_t *cap, size_t elem, size_t first)
{
	if (n < *cap)
		return v;
	size_t nc = *cap ? *cap : (first ? first : 1);
	if (*cap) {
		if (nc > SIZE_MAX / 2)
			return NULL;
		nc *= 2;
	}
	if (elem && nc > SIZE_MAX / elem)
		return NULL;
	void *nv = realloc(v, nc * elem);
	if (!nv)
		return NULL;
	*cap = nc;
	return nv;
}
