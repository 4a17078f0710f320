/*
 * Fuzz target for sizeidx's log parser: arbitrary bytes as the contents of sizes.log.
 * Checks the parser's promises (records are well-formed, good_len ends at a newline) and that
 * every record re-formats and re-parses to the same key and value.
 */
#include "kvsfs/buf.h"
#include "kvsfs/sizeidx.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct one {
	const char *key;
	size_t keylen;
	int64_t value;
	int deleted;
	int seen;
};

static int check_one(void *arg, const char *key, size_t keylen, int64_t value, int deleted)
{
	struct one *o = arg;
	if (o->seen++ || keylen != o->keylen || memcmp(key, o->key, keylen) != 0 ||
			value != o->value || deleted != o->deleted)
		abort();
	return 0;
}

static int on_record(void *arg, const char *key, size_t keylen, int64_t value, int deleted)
{
	size_t *count = arg;
	(*count)++;
	if (keylen == 0 || keylen > SIZEIDX_KEY_MAX || strlen(key) != keylen)
		abort();
	if (deleted && value != 0)
		abort();
	struct buf b = BUF_INIT;
	if (sizeidx_format_record(&b, key, keylen, value, deleted) != 0)
		abort();
	struct one o = { key, keylen, value, deleted, 0 };
	struct sizeidx_parse_result r;
	sizeidx_parse_buffer(b.data, b.len, check_one, &o, &r);
	if (o.seen != 1 || r.records != 1 || r.bad_lines || r.torn || r.good_len != b.len)
		abort();
	buf_free(&b);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t count = 0;
	struct sizeidx_parse_result r;
	sizeidx_parse_buffer((const char *)data, size, on_record, &count, &r);
	if (r.records != count || r.good_len > size)
		abort();
	if (r.good_len && data[r.good_len - 1] != '\n')
		abort();
	if (r.torn != (r.good_len < size))
		abort();
	return 0;
}
