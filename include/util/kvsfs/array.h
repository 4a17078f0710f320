/*
 * array: the growth step of a hand-held growable array (pointer, count, capacity), so the
 * realloc-doubling dance is written once.
 *
 * Usage, for struct thing *v with size_t n, cap:
 *     struct thing *nv = array_grow(v, n, &cap, sizeof(*nv), 8);
 *     if (!nv)
 *             return -ENOMEM;      (v, n and cap are unchanged and still valid)
 *     v = nv;
 *     v[n++] = item;
 * Invariant kept for the caller: n <= cap, and v holds cap elements of elem bytes. Growth
 * doubles the capacity (first elements the first time), so appends are amortised O(1); size
 * overflow is checked. Stateless and thread-safe (the array itself is the caller's to guard).
 */
#ifndef KVSFS_ARRAY_H
#define KVSFS_ARRAY_H

#include <stddef.h>

/*
 * Makes room for one more element at index n. Returns v itself when n < *cap; otherwise
 * reallocates v to twice *cap elements (first when *cap is 0), updates *cap and returns the new
 * pointer. Returns NULL when out of memory or the size would overflow: v is then untouched and
 * still owned by the caller. first must be at least 1.
 */
void *array_grow(void *v, size_t n, size_t *cap, size_t elem, size_t first);

#endif
