/*
 * mkv_tracks: compares two raw Tracks elements (include/media/kvsfs/mkv.h, mkv_tracks_same).
 *
 * Design: a bounded walk over the two elements in step: the Tracks' children in order, and inside
 * each TrackEntry its children in order, skipping TrackUID (a producer session picks its own), Void
 * and CRC-32; every other element must have the same ID, size and bytes. Every header is checked
 * against its parent's end, so any input ends in linear time without reading out of bounds.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "kvsfs/mkv.h"

#define ID_TRACKS 0x1654AE6Bu
#define ID_TRACKENTRY 0xAEu
#define ID_TRACKUID 0x73C5u
#define ID_VOID 0xECu
#define ID_CRC32 0xBFu

struct elt {
	uint32_t id;
	const uint8_t *body;
	size_t size;
};

/* Reads one element header at *p (< end). 1 and *e, *p past the element; 0 at end; -EINVAL. */
static int next_el(const uint8_t **p, const uint8_t *end, struct elt *e)
{
	const uint8_t *q = *p;
	if (q >= end)
		return 0;
	unsigned l = 1;
	while (l <= 4 && !(q[0] & (0x80u >> (l - 1))))
		l++;
	if (l > 4 || (size_t)(end - q) < l)
		return -EINVAL;
	uint32_t id = 0;
	for (unsigned i = 0; i < l; i++)
		id = id << 8 | q[i];
	q += l;
	if (q >= end || q[0] == 0)
		return -EINVAL;
	unsigned n = 1;
	while (!(q[0] & (0x80u >> (n - 1))))
		n++;
	if ((size_t)(end - q) < n)
		return -EINVAL;
	uint64_t size = q[0] & ((0x80u >> (n - 1)) - 1);
	for (unsigned i = 1; i < n; i++)
		size = size << 8 | q[i];
	q += n;
	if (size > (uint64_t)(end - q))
		return -EINVAL; /* also refuses an unknown size */
	*e = (struct elt){ id, q, (size_t)size };
	*p = q + size;
	return 1;
}

/* The next child of [*p, end) that counts (not skip_uid's TrackUID, Void, CRC-32). */
static int next_kept(const uint8_t **p, const uint8_t *end, struct elt *e, int skip_uid)
{
	int rc;
	while ((rc = next_el(p, end, e)) == 1)
		if (e->id != ID_VOID && e->id != ID_CRC32 && !(skip_uid && e->id == ID_TRACKUID))
			break;
	return rc;
}

/* Children of two masters compared in step; TrackEntries recursively. 1, 0 or -EINVAL. */
static int same_children(const struct elt *a, const struct elt *b, int in_entry)
{
	const uint8_t *pa = a->body, *ea = a->body + a->size, *pb = b->body, *eb = b->body + b->size;
	for (;;) {
		struct elt x, y;
		int ra = next_kept(&pa, ea, &x, in_entry), rb = next_kept(&pb, eb, &y, in_entry);
		if (ra < 0 || rb < 0)
			return -EINVAL;
		if (ra == 0 || rb == 0)
			return ra == rb;
		if (x.id != y.id)
			return 0;
		if (!in_entry && x.id == ID_TRACKENTRY) {
			int r = same_children(&x, &y, 1);
			if (r != 1)
				return r;
		} else if (x.size != y.size || memcmp(x.body, y.body, x.size)) {
			return 0;
		}
	}
}

int mkv_tracks_same(const void *a, size_t alen, const void *b, size_t blen)
{
	const uint8_t *pa = a, *pb = b;
	struct elt x, y;
	if (!a || !b || next_el(&pa, pa + alen, &x) != 1 || next_el(&pb, pb + blen, &y) != 1 ||
	    x.id != ID_TRACKS || y.id != ID_TRACKS)
		return -EINVAL;
	return same_children(&x, &y, 0);
}
