/*
 * Fuzz target for util/xmlscan, the one XML scanner. Input: an optional first line (up to '\n',
 * at most 32 bytes) is the element name to look for (default "Key"), the rest the document.
 * Checks that every span stays inside the input and `next` never goes backwards, that a record
 * walk ends, that the root name fits its buffer, that the bounded decoder never overflows and
 * agrees with the buffered one where it has room, that ASCII-only decoding never grows the text,
 * and that escaping then decoding gives the input back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kvsfs/buf.h"
#include "kvsfs/xmlscan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_span(const char *p, size_t n, const struct xmlscan_span *s, const char *from)
{
	if (s->text < from || s->text + s->len > p + n || s->next < s->text + s->len ||
	    s->next > p + n)
		abort();
}

static void check_find(const char *p, size_t n, const char *name)
{
	struct xmlscan_span s;
	if (xmlscan_element(p, n, name, &s) == 1)
		check_span(p, n, &s, p);
	if (xmlscan_text(p, n, name, &s) == 1) {
		check_span(p, n, &s, p);
		if (memchr(s.text, '<', s.len))
			abort(); /* leaf text stops at the next '<' */
	}
	struct xmlscan_iter it;
	const char *last = p;
	size_t count = 0;
	xmlscan_iter_init(&it, p, n, name);
	while (xmlscan_iter_next(&it, &s) == 1) {
		check_span(p, n, &s, last);
		if (s.next <= last || ++count > n)
			abort(); /* every record moves the walk forward */
		last = s.next;
	}
}

static void check_decode(const char *p, size_t n)
{
	struct buf full = BUF_INIT;
	if (xmlscan_decode_buf(&full, p, n, 0))
		abort();
	size_t cap = n * 4 + 1;
	char *d = malloc(cap);
	if (!d)
		abort();
	size_t got = xmlscan_decode(p, n, 0, d, cap);
	if (got != full.len || d[got] != '\0' || (got && memcmp(d, full.data, got)))
		abort(); /* with room for everything both decoders agree */
	char small[7];
	got = xmlscan_decode(p, n, 0, small, sizeof(small));
	if (got >= sizeof(small) || small[got] != '\0' || (got && memcmp(small, full.data, got)))
		abort(); /* a bounded decode is a prefix of the full one */
	got = xmlscan_decode(p, n, XMLSCAN_REFS_ASCII, d, cap);
	if (got > n || d[got] != '\0')
		abort();
	free(d);
	buf_free(&full);

	struct buf esc = BUF_INIT, back = BUF_INIT;
	if (xmlscan_escape(&esc, p, n) || xmlscan_decode_buf(&back, esc.data, esc.len, 0))
		abort();
	if (back.len != n || (n && memcmp(back.data, p, n)))
		abort(); /* escape then decode is the identity */
	buf_free(&esc);
	buf_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char name[33] = "Key";
	const char *p = (const char *)data;
	size_t n = size;
	const char *nl = memchr(p, '\n', n < 33 ? n : 33);
	if (nl && nl > p && memchr(p, '\0', (size_t)(nl - p)) == NULL) {
		memcpy(name, p, (size_t)(nl - p));
		name[nl - p] = '\0';
		n -= (size_t)(nl - p) + 1;
		p = nl + 1;
	}
	/* a copy of exactly n bytes, so reads past the end are caught by sanitizers */
	char *doc = malloc(n ? n : 1);
	if (!doc)
		abort();
	memcpy(doc, p, n);
	check_find(doc, n, name);
	check_find(doc, n, "a");

	char root[8];
	xmlscan_root(doc, n, root, sizeof(root));
	if (strnlen(root, sizeof(root)) >= sizeof(root))
		abort();
	for (size_t i = 0; i < n; i++) {
		uint32_t cp;
		if (doc[i] == '&') {
			size_t used = xmlscan_ref(doc + i, n - i, &cp);
			if (used > n - i || (used && (cp == 0 || cp > 0x10FFFF)))
				abort();
		}
	}
	check_decode(doc, n);
	free(doc);
	return 0;
}
