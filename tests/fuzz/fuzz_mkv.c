/*
 * Fuzz target for the mkv reader. The first two input bytes seed the chunking; the rest is the
 * stream, pushed in data-chosen chunk sizes (1 byte up to a few KiB). Besides "no crash, no leak,
 * no hang", it checks the reader's invariants and traps when one breaks:
 *  - the fragments partition the stream (contiguous from 0, lengths sum to its size);
 *  - at most MKV_PENDING_MAX bytes are ever undecided, and fragment_start never goes back before
 *    a safe offset already reported;
 *  - streaming in chunks gives exactly the fragments of the one-shot parse.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kvsfs/mkv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
	uint64_t next_offset, last_safe;
	size_t count;
	uint64_t sum_len;
	uint64_t hash; /* over the fields compared with the one-shot result */
	int bad;
};

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	return h;
}

static uint64_t frag_hash(uint64_t h, const struct mkv_fragment *f)
{
	h = mix(h, f->offset);
	h = mix(h, f->length);
	h = mix(h, f->flags);
	h = mix(h, f->blocks);
	h = mix(h, f->clusters);
	h = mix(h, f->cluster_timecode);
	h = mix(h, (uint64_t)f->duration_ms);
	h = mix(h, f->ntracks);
	h = mix(h, f->ntags);
	for (const char *p = f->fragment_number; *p; p++)
		h = mix(h, (uint8_t)*p);
	for (size_t i = 0; i < f->ntags; i++)
		h = mix(h, strlen(f->tags[i].name) * 65536 + strlen(f->tags[i].value));
	return h;
}

static int on_start(void *opaque, unsigned index, uint64_t offset)
{
	struct run *r = opaque;
	(void)index;
	if (offset < r->last_safe || offset != r->next_offset)
		r->bad = 1;
	return 0;
}

static int on_end(void *opaque, const struct mkv_fragment *f)
{
	struct run *r = opaque;
	if (f->offset != r->next_offset || f->index != r->count)
		r->bad = 1;
	r->next_offset = f->offset + f->length;
	r->sum_len += f->length;
	r->count++;
	r->hash = frag_hash(r->hash, f);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint32_t seed = (uint32_t)data[0] << 8 | data[1];
	data += 2;
	size -= 2;

	struct run s = { 0 };
	struct mkv_callbacks cb = { .opaque = &s, .fragment_start = on_start, .fragment_end = on_end };
	struct mkv_reader *r = mkv_reader_new(&cb, NULL);
	if (!r)
		return 0;
	for (size_t off = 0; off < size;) {
		seed = seed * 1103515245u + 12345u;
		size_t n = (seed >> 16) & 1 ? 1 + ((seed >> 17) & 15) : 1 + ((seed >> 17) & 4095);
		if (n > size - off)
			n = size - off;
		if (mkv_reader_push(r, data + off, n))
			__builtin_trap();
		off += n;
		uint64_t safe = mkv_reader_safe_offset(r);
		if (safe > off || off - safe > MKV_PENDING_MAX || safe < s.last_safe)
			__builtin_trap();
		s.last_safe = safe;
	}
	if (mkv_reader_finish(r))
		__builtin_trap();
	mkv_reader_free(r);
	if (s.bad || s.sum_len != size || s.next_offset != size)
		__builtin_trap();

	struct mkv_fragment *f;
	size_t n;
	if (mkv_parse_buffer(data, size, NULL, &f, &n) != 0)
		__builtin_trap();
	uint64_t h = 0;
	for (size_t i = 0; i < n; i++)
		h = frag_hash(h, &f[i]);
	mkv_fragments_free(f, n);
	if (n != s.count || h != s.hash)
		__builtin_trap();
	return 0;
}
