/*
 * Fuzz target for json: bounded object parsing, every getter on every member (nulls, wrong
 * types), epoch timestamps through jansson, the exact number-text parser on the raw input, and
 * fragment number validation/comparison. Checks invariants, not just absence of crashes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kvsfs/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void probe(const json_t *obj)
{
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)obj, key, v) {
		const char *s;
		int64_t i;
		double d;
		int b;
		json_t *o;
		json_get_str(obj, key, &s);
		json_get_int(obj, key, &i);
		json_get_number(obj, key, &d);
		json_get_bool(obj, key, &b);
		json_get_array(obj, key, &o);
		if (json_get_fragnum(obj, key, &s) == 0 && json_fragnum_cmp(s, s) != 0)
			abort();
		int64_t ms;
		if (json_get_epoch_ms(obj, key, &ms) == 0 && ms < 0)
			abort();
		if (json_get_object(obj, key, &o) == 0)
			json_get_str(o, "Message", &s);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *root = NULL;
	char err[128];
	if (json_parse_object(data, size, 1u << 20, &root, err, sizeof(err)) == 0) {
		probe(root);
		char *dump = json_dump_compact(root);
		free(dump);
		json_decref(root);
	}
	int64_t ms;
	if (json_epoch_text_to_ms((const char *)data, size, &ms) == 0) {
		if (ms < 0)
			abort();
		/* re-emitting and re-reading a value must give it back */
		json_t *v = json_epoch_ms_value(ms);
		int64_t back;
		if (v && json_value_epoch_ms(v, &back) == 0 && ms < (INT64_C(1) << 50) && back != ms)
			abort();
		json_decref(v);
	}
	/* fragment numbers: split the input in two strings */
	char a[160], b[160];
	size_t h = size / 2;
	size_t la = h < sizeof(a) - 1 ? h : sizeof(a) - 1;
	size_t lb = size - h < sizeof(b) - 1 ? size - h : sizeof(b) - 1;
	memcpy(a, data, la);
	a[la] = '\0';
	memcpy(b, data + h, lb);
	b[lb] = '\0';
	if (json_fragnum_valid(a) && json_fragnum_valid(b)) {
		int x = json_fragnum_cmp(a, b), y = json_fragnum_cmp(b, a);
		if ((x > 0) != (y < 0) || (x == 0) != (y == 0))
			abort();
	}
	return 0;
}
