/*
 * Fuzz target for mkv_tracks_same (two raw Tracks elements from fragments, outside input): the
 * first byte picks where the input is cut into the two elements. Checks: no crash or overread
 * (sanitizers), the result is -EINVAL, 0 or 1, symmetric, and a well-formed element equals itself.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kvsfs/mkv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t cut = size > 1 ? data[0] % size : 0;
	/* copies, so an overread past either part is caught by the sanitizers */
	uint8_t *a = malloc(cut ? cut : 1), *b = malloc(size - 1 - (cut ? cut - 1 : 0) + 1);
	if (!a || !b)
		abort();
	size_t alen = cut ? cut - 1 : 0, blen = size - 1 - alen;
	memcpy(a, data + 1, alen);
	memcpy(b, data + 1 + alen, blen);
	int ab = mkv_tracks_same(a, alen, b, blen), ba = mkv_tracks_same(b, blen, a, alen);
	if ((ab != 0 && ab != 1 && ab != -EINVAL) || ab != ba)
		abort();
	if (mkv_tracks_same(a, alen, a, alen) == 0 || mkv_tracks_same(b, blen, b, blen) == 0)
		abort();
	free(a);
	free(b);
	return 0;
}
