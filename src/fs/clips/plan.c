/*
 * clips plan: cutting a sorted fragment list into GetClip calls (contract of clips_plan in
 * include/kvsfs/clips.h). Pure: no I/O, no state.
 *
 * Groups are grown greedily from the front, one run of fragments sharing a start millisecond at
 * a time (GetClip selects by time, so a run is never split); a group closes when the next run
 * would exceed max_fragments or max_bytes. A first run alone may exceed max_bytes (a group of its
 * own); a run longer than max_fragments cannot be planned (-E2BIG).
 */
#include "clips_int.h"

#include <errno.h>
#include <stdlib.h>

int64_t cl_frag_start(const struct kvs_fragment *f, enum kvs_ts_type ts)
{
	return ts == KVS_TS_SERVER ? f->server_ms : f->producer_ms;
}

int clips_plan(const struct kvs_fragment *v, size_t n, enum kvs_ts_type ts, int max_fragments,
	       uint64_t max_bytes, struct clips_group **groups, size_t *ngroups)
{
	size_t maxf = max_fragments > 0 ? (size_t)max_fragments : CLIPS_DEFAULT_MAX_FRAGMENTS;
	uint64_t maxb = max_bytes ? max_bytes : CLIPS_DEFAULT_MAX_BYTES;
	struct clips_group *g = NULL;
	size_t ng = 0, cap = 0;
	*groups = NULL;
	*ngroups = 0;
	size_t i = 0;
	while (i < n) {
		/* runs of fragments sharing one start are atomic */
		size_t count = 0;
		uint64_t bytes = 0;
		while (i + count < n) {
			size_t run = 1;
			int64_t t = cl_frag_start(&v[i + count], ts);
			uint64_t rb = v[i + count].size > 0 ? (uint64_t)v[i + count].size : 0;
			while (i + count + run < n && cl_frag_start(&v[i + count + run], ts) == t) {
				const struct kvs_fragment *f = &v[i + count + run];
				rb += f->size > 0 ? (uint64_t)f->size : 0;
				run++;
			}
			if (run > maxf) {
				free(g);
				return -E2BIG;
			}
			if (count > 0 && (count + run > maxf || bytes + rb > maxb))
				break;
			count += run;
			bytes += rb;
		}
		if (ng == cap) {
			size_t nc = cap ? cap * 2 : 8;
			struct clips_group *ngv = realloc(g, nc * sizeof(*g));
			if (!ngv) {
				free(g);
				return -ENOMEM;
			}
			g = ngv;
			cap = nc;
		}
		g[ng].first = i;
		g[ng].count = count;
		g[ng].bytes = bytes;
		g[ng].start_ms = cl_frag_start(&v[i], ts);
		g[ng].end_ms = cl_frag_start(&v[i + count - 1], ts);
		ng++;
		i += count;
	}
	*groups = g;
	*ngroups = ng;
	return 0;
}
