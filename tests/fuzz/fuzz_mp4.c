/*
 * Fuzz target for the mp4 reader and joiner. The input is one MP4 file in memory. Besides "no
 * crash, no leak, no hang", it checks invariants and traps when one breaks:
 *  - mp4_info_read only fails with the documented errors;
 *  - when the file parses, joining it with itself either fails with a documented error or gives a
 *    file whose mp4_join_size equals the bytes mp4_join_pread returns (read in uneven steps), that
 *    parses again, and whose per-track sample counts are twice the input's and match
 *    mp4_join_info.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kvsfs/mp4.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int documented(int rc)
{
	return rc == -EBADMSG || rc == -ENOTSUP || rc == -EFBIG || rc == -EMEDIUMTYPE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mp4_input in[2] = { { .fd = -1, .mem = data, .mem_len = size },
				   { .fd = -1, .mem = data, .mem_len = size } };
	struct mp4_info info, ji, ri;
	char why[MP4_REASON_MAX];
	int rc = mp4_info_read(&in[0], &info, NULL, why, sizeof(why));
	if (rc) {
		if (!documented(rc) || !why[0])
			__builtin_trap();
		return 0;
	}
	struct mp4_join *j = NULL;
	rc = mp4_join_prepare(in, 2, NULL, &j, why, sizeof(why));
	if (rc) {
		if (!documented(rc) || !why[0] || j)
			__builtin_trap();
		return 0;
	}
	uint64_t total = mp4_join_size(j);
	if (total > (64u << 20))
		__builtin_trap();
	uint8_t *out = malloc(total ? total : 1);
	if (!out) {
		mp4_join_free(j);
		return 0;
	}
	uint64_t off = 0;
	size_t step = 1 + size % 4093;
	while (off < total) {
		ssize_t k = mp4_join_pread(j, out + off, step, off);
		if (k <= 0)
			__builtin_trap();
		off += (uint64_t)k;
		step = step * 3 % 8191 + 1;
	}
	if (mp4_join_pread(j, out, 16, total) != 0)
		__builtin_trap();
	mp4_join_info(j, &ji);
	struct mp4_input o = { .fd = -1, .mem = out, .mem_len = total };
	rc = mp4_info_read(&o, &ri, NULL, why, sizeof(why));
	if (rc || ri.ntracks != info.ntracks || ji.ntracks != info.ntracks)
		__builtin_trap();
	for (size_t i = 0; i < info.ntracks; i++) {
		if (ri.tracks[i].sample_count != 2 * info.tracks[i].sample_count ||
		    ji.tracks[i].sample_count != ri.tracks[i].sample_count ||
		    ji.tracks[i].duration != ri.tracks[i].duration ||
		    ji.tracks[i].sync_count != ri.tracks[i].sync_count ||
		    ri.tracks[i].timescale != info.tracks[i].timescale ||
		    ri.tracks[i].duration != 2 * info.tracks[i].duration)
			__builtin_trap();
	}
	/* the output joins again (its chunks all lie inside its one mdat) */
	struct mp4_join *j2 = NULL;
	if (mp4_join_prepare(&o, 1, NULL, &j2, why, sizeof(why)) != 0 || mp4_join_size(j2) != total)
		__builtin_trap();
	uint8_t *again = malloc(total ? total : 1);
	if (again && (mp4_join_pread(j2, again, total, 0) != (ssize_t)total || memcmp(again, out, total)))
		__builtin_trap();
	free(again);
	mp4_join_free(j2);
	free(out);
	mp4_join_free(j);
	return 0;
}
