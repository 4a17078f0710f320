/*
 * Fuzz target for clips' pure parts: the first line of the input is a clip name (clips_parse,
 * a file name a user types), the rest is read as a fragment list for clips_plan (12 bytes per
 * fragment: start delta, size, duplicate flag; then max_fragments and max_bytes from the head).
 * Checks the documented promises: parse results obey START <= END <= START + 24 h, and every plan
 * covers the list exactly once, in order, within the limits, never splitting equal starts.
 */
#include "kvsfs/clips.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t nlen = nl ? (size_t)(nl - data) : size;
	char *name = malloc(nlen + 1);
	if (!name)
		return 0;
	memcpy(name, data, nlen);
	name[nlen] = '\0';
	int64_t a = 0, b = 0;
	int rc = clips_parse(name, &a, &b);
	if (rc == 0 && (a < 0 || b < a || b - a > CLIPS_MAX_SPAN_MS))
		abort();
	if (rc != 0 && rc != -ENOENT && rc != -EINVAL && rc != -EFBIG)
		abort();
	free(name);
	if (!nl)
		return 0;

	const uint8_t *p = nl + 1;
	size_t left = size - nlen - 1;
	if (left < 8)
		return 0;
	int maxf = (int)(rd32(p) % 300);
	uint64_t maxb = rd32(p + 4);
	p += 8;
	left -= 8;
	size_t n = left / 9;
	struct kvs_fragment *v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return 0;
	int64_t t = 1700000000000LL;
	for (size_t i = 0; i < n; i++, p += 9) {
		if (!(p[8] & 1))
			t += p[0] | p[1] << 8;
		v[i].producer_ms = t;
		v[i].server_ms = t;
		v[i].duration_ms = 2000;
		v[i].size = (int64_t)rd32(p + 2) - (p[8] & 2 ? 0x7fffffff : 0);
	}
	struct clips_group *g = NULL;
	size_t ng = 0;
	rc = clips_plan(v, n, (p[-1] & 4) ? KVS_TS_SERVER : KVS_TS_PRODUCER, maxf, maxb, &g, &ng);
	size_t lim = maxf > 0 ? (size_t)maxf : CLIPS_DEFAULT_MAX_FRAGMENTS;
	uint64_t blim = maxb ? maxb : CLIPS_DEFAULT_MAX_BYTES;
	if (rc == 0) {
		size_t next = 0;
		for (size_t i = 0; i < ng; i++) {
			if (g[i].first != next || g[i].count == 0 || g[i].count > lim)
				abort();
			/* over the byte bound only as one run of fragments sharing a start */
			if (g[i].bytes > blim && g[i].start_ms != g[i].end_ms)
				abort();
			if (g[i].start_ms != v[g[i].first].producer_ms ||
			    g[i].end_ms != v[g[i].first + g[i].count - 1].producer_ms)
				abort();
			if (i > 0 && v[g[i].first - 1].producer_ms == v[g[i].first].producer_ms)
				abort();
			next += g[i].count;
		}
		if (next != n)
			abort();
	} else if (rc != -E2BIG && rc != -ENOMEM) {
		abort();
	}
	free(g);
	free(v);
	return 0;
}
