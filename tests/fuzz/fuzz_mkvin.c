/*
 * Fuzz target for media/mkvin, the Matroska check of ingest/ input. The input is a whole file,
 * read through the callback in pieces (as the staging file is). Checked: no crash, no read
 * outside the file, -EINVAL always comes with a reason, a success reports at least one cluster
 * and sorted, disjoint skip ranges inside the file, and the sniff of the first bytes agrees with
 * the scan (a file the sniff refuses is never accepted).
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "kvsfs/mkvin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct mem {
	const uint8_t *p;
	size_t n;
};

static ssize_t rd(void *arg, void *dst, size_t len, uint64_t off)
{
	const struct mem *m = arg;
	assert(off <= m->n);
	size_t k = m->n - off < len ? m->n - (size_t)off : len;
	memcpy(dst, m->p + off, k);
	return (ssize_t)k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mem m = { data, size };
	struct mkvin_info in;
	const char *why;
	int64_t bad_ms;
	int rc = mkvin_scan(rd, &m, size, &in, &why, &bad_ms);
	if (rc == 0) {
		assert(in.clusters >= 1 && in.tracks >= 1 && in.timecode_scale > 0);
		assert(mkvin_sniff(data, size < 4 ? size : 4));
		uint64_t last = 0;
		for (unsigned i = 0; i < in.n_skip; i++) {
			assert(in.skip[i].off >= last && in.skip[i].len > 0);
			assert(in.skip[i].off + in.skip[i].len <= size);
			last = in.skip[i].off + in.skip[i].len;
		}
	} else {
		assert(rc == -EINVAL && why && *why);
	}
	if (size >= 4 && !mkvin_sniff(data, 4))
		assert(rc == -EINVAL);
	return 0;
}
