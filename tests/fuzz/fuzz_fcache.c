/*
 * Fuzz target for fcache's sidecar parser: arbitrary bytes as the content of an
 * objects/<xx>/<h>.key file (damaged disks and crashes make these outside input).
 */
#include "kvsfs/fcache.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t n = 0;
	const char *key = NULL;
	size_t keylen = 0;
	const char *p = (const char *)data;
	if (fcache_parse_sidecar(p, size, &n, &key, &keylen) == 0) {
		if (keylen == 0 || keylen > FCACHE_KEY_MAX || key < p || key + keylen != p + size ||
				memchr(key, '\0', keylen))
			abort();
	}
	return 0;
}
