/*
 * Fuzz target for export's metadata parsers: x-amz-meta-mtime and x-amz-meta-mode values written
 * by any S3 tool. The input (cut at the first NUL) is parsed as both; a parsed mtime must format
 * and parse back to the same value, a parsed mode must be permission bits only; paths are checked
 * with export_path_valid. The whole input (NULs included) is also parsed as an upload record of
 * the staging folder: a parsed record has a non-empty bucket, upload id and key, and every prefix
 * of the input (a record cut short by a crash) that is shorter than a parsed one is rejected.
 * The whole input is also parsed as a write-back journal entry: a parsed one has a valid path,
 * 64 hex digits of checksum and permission bits only.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kvsfs/export.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_record(const uint8_t *data, size_t size)
{
	char *b, *i, *k;
	int rc = export_parse_upload_record((const char *)data, size, &b, &i, &k);
	if (rc == 0 && (!b[0] || !i[0] || !k[0]))
		abort();
	if (rc && (b || i || k))
		abort();
	free(b);
	free(i);
	free(k);
	if (rc == 0 && size > 0) {
		/* a cut-short copy never parses */
		if (!export_parse_upload_record((const char *)data, size - 1, &b, &i, &k))
			abort();
	}
}

static void check_journal(const uint8_t *data, size_t size)
{
	struct export_journal j;
	if (export_parse_journal((const char *)data, size, &j))
		return;
	if (export_path_valid(j.path) || strlen(j.sha) != 64 || (j.mode & ~07777u))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_record(data, size);
	check_journal(data, size);
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	int64_t ms;
	if (!export_parse_mtime(s, &ms)) {
		char buf[48];
		int64_t back;
		export_format_mtime(ms, buf, sizeof(buf));
		if (export_parse_mtime(buf, &back) || back != ms)
			abort();
	}
	mode_t m;
	if (!export_parse_mode(s, &m) && (m & ~07777u))
		abort();
	(void)export_path_valid(s);
	free(s);
	return 0;
}
