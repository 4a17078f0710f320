/*
 * Fuzz target for a GetImages reply (src/kvs/images.c): the reply is parsed as a JSON object
 * and every element of its Images array goes through kvs_images_parse_entry, as the client does.
 * Checks invariants: an image has data of 1..KVS_IMAGES_MAX_BYTES bytes, an error entry has
 * none, and decoding the same entry twice gives the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kvsfs/kvs_images.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const json_t *it)
{
	struct kvs_image a, b;
	unsigned char *ba = NULL, *bb = NULL;
	int ra = kvs_images_parse_entry(it, &a, &ba);
	int rb = kvs_images_parse_entry(it, &b, &bb);
	if (ra != rb)
		abort();
	if (ra == 0) {
		if (a.ts_ms < 0 || a.status != b.status || a.ts_ms != b.ts_ms)
			abort();
		if (a.status == KVS_IMAGE_OK) {
			if (!a.data || a.len == 0 || a.len > KVS_IMAGES_MAX_BYTES || a.len != b.len ||
			    memcmp(a.data, b.data, a.len) != 0)
				abort();
		} else if (a.data || a.len) {
			abort();
		}
	}
	free(ba);
	free(bb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *root = NULL, *list = NULL;
	char err[128];
	if (json_parse_object(data, size, 1u << 20, &root, err, sizeof(err)) != 0)
		return 0;
	if (json_get_array(root, "Images", &list) == 0) {
		size_t i;
		json_t *it;
		json_array_foreach(list, i, it)
			check(it);
	}
	json_decref(root);
	return 0;
}
