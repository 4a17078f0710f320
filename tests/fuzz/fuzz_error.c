/*
 * Fuzz target for awserr: error responses from a server. The first input byte picks the HTTP
 * status, an optional first line (up to '\n') is the x-amzn-ErrorType header, the rest the body.
 * Both body scanners (JSON, XML) also run on the whole input. Checks that every output string
 * is NUL-terminated, bounded and free of control characters, that 5xx is never ENOENT, and that
 * the summary sentence stays short.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kvsfs/awserr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void clean(const char *s, size_t cap)
{
	size_t n = strnlen(s, cap);
	if (n >= cap)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int statuses[] = { 200, 301, 400, 401, 403, 404, 409, 413, 429, 500, 503, 504 };
	int status = 400;
	if (size) {
		status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
		data++;
		size--;
	}
	char hdr[256] = "";
	const uint8_t *nl = memchr(data, '\n', size < 200 ? size : 200);
	const uint8_t *body = data;
	size_t blen = size;
	if (nl) {
		size_t hl = (size_t)(nl - data);
		memcpy(hdr, data, hl);
		hdr[hl] = '\0';
		body = nl + 1;
		blen = size - hl - 1;
	}
	struct awserr e;
	int rc = awserr_parse(&e, status, hdr[0] ? hdr : NULL, NULL, body, blen);
	if (rc != -e.err || e.err < 0 || (e.err == 0 && (status < 200 || status >= 300)))
		abort();
	if (status >= 500 && e.err == ENOENT)
		abort();
	clean(e.type, sizeof(e.type));
	clean(e.message, sizeof(e.message));
	clean(e.request_id, sizeof(e.request_id));
	char line[1024];
	awserr_format(&e, line, sizeof(line));
	awserr_summary(&e, line, sizeof(line));
	clean(line, sizeof(line));
	if (strlen(line) > 400) /* one short sentence: type (< 128) + 120 bytes of message */
		abort();

	char t[AWSERR_TYPE_MAX] = "", m[AWSERR_MSG_MAX] = "", q[AWSERR_REQID_MAX] = "";
	awserr_parse_xml_body(data, size, t, sizeof(t), m, sizeof(m), q, sizeof(q));
	clean(t, sizeof(t));
	clean(m, sizeof(m));
	clean(q, sizeof(q));
	awserr_parse_json_body(data, size, t, sizeof(t), m, sizeof(m));
	clean(t, sizeof(t));
	clean(m, sizeof(m));
	return 0;
}
