/*
 * xmlscan: the one XML scanner (see include/kvsfs/xmlscan.h for the rules).
 *
 * Design: one start-tag matcher (find_start) serves both ways of taking an element's content:
 * up to its end tag (xmlscan_element: listings and results, where a missing end tag means a
 * truncated document) or up to the next '<' (xmlscan_text: error replies, read under a size
 * bound, where the text of a cut body is still wanted). One reference reader (xmlscan_ref)
 * serves both decoders: into a fixed array (never allocates) or appended to a struct buf.
 *
 * Invariants: every pointer read stays inside [p, p + n) (each dereference is guarded by a
 * "< end" test, memchr/memmem are given the remaining length); no recursion; a call scans its
 * input at most a small constant number of times.
 */
#include "kvsfs/xmlscan.h"

#include <errno.h>
#include <string.h>

#include "kvsfs/buf.h"

int xmlscan_is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

void xmlscan_trim(const char **p, size_t *n)
{
	while (*n && xmlscan_is_ws(**p)) {
		(*p)++;
		(*n)--;
	}
	while (*n && xmlscan_is_ws((*p)[*n - 1]))
		(*n)--;
}

/* Finds the first start tag "<name" (followed by '>', '/' or whitespace) in [p, end). Returns 1
 * and *gt at the tag's closing '>', 0 when there is none, -1 when the tag has no '>'. */
static int find_start(const char *p, const char *end, const char *name, size_t nl,
		      const char **gt)
{
	const char *s = p;
	while (s < end) {
		const char *lt = memchr(s, '<', (size_t)(end - s));
		if (!lt)
			return 0;
		s = lt + 1;
		if ((size_t)(end - s) < nl + 1 || memcmp(s, name, nl) != 0)
			continue;
		char c = s[nl];
		if (c != '>' && c != '/' && !xmlscan_is_ws(c))
			continue;
		/* skip the rest of the start tag, honouring quoted attribute values */
		const char *t = s + nl;
		char quote = 0;
		while (t < end) {
			if (quote) {
				if (*t == quote)
					quote = 0;
			} else if (*t == '"' || *t == '\'') {
				quote = *t;
			} else if (*t == '>') {
				break;
			}
			t++;
		}
		if (t >= end)
			return -1;
		*gt = t;
		return 1;
	}
	return 0;
}

/* An empty element <name/>: the '>' at gt closes a tag ending in '/' (gt[-1] is inside the tag:
 * at least the last byte of the name). */
static int empty_element(const char *gt, struct xmlscan_span *out)
{
	if (gt[-1] != '/')
		return 0;
	out->text = gt;
	out->len = 0;
	out->next = gt + 1;
	return 1;
}

int xmlscan_element(const char *p, size_t n, const char *name, struct xmlscan_span *out)
{
	size_t nl = strlen(name);
	const char *end = p + n, *gt;
	int r = find_start(p, end, name, nl, &gt);
	if (r != 1)
		return r;
	if (empty_element(gt, out))
		return 1;
	const char *content = gt + 1;
	const char *q = content;
	while (q < end) {
		const char *e = memmem(q, (size_t)(end - q), "</", 2);
		if (!e)
			return -1;
		const char *t = e + 2;
		if ((size_t)(end - t) >= nl && memcmp(t, name, nl) == 0) {
			t += nl;
			while (t < end && xmlscan_is_ws(*t))
				t++;
			if (t < end && *t == '>') {
				out->text = content;
				out->len = (size_t)(e - content);
				out->next = t + 1;
				return 1;
			}
		}
		q = e + 2;
	}
	return -1;
}

int xmlscan_text(const char *p, size_t n, const char *name, struct xmlscan_span *out)
{
	const char *end = p + n, *gt;
	int r = find_start(p, end, name, strlen(name), &gt);
	if (r != 1)
		return r;
	if (empty_element(gt, out))
		return 1;
	const char *v = gt + 1;
	const char *close = memchr(v, '<', (size_t)(end - v));
	if (!close)
		close = end; /* truncated body: take what is there */
	out->text = v;
	out->len = (size_t)(close - v);
	out->next = close;
	return 1;
}

void xmlscan_iter_init(struct xmlscan_iter *it, const char *p, size_t n, const char *name)
{
	it->cur = p;
	it->end = p + n;
	it->name = name;
}

int xmlscan_iter_next(struct xmlscan_iter *it, struct xmlscan_span *out)
{
	struct xmlscan_span s;
	int r = xmlscan_element(it->cur, (size_t)(it->end - it->cur), it->name, &s);
	if (r != 1)
		return r;
	it->cur = s.next;
	*out = s;
	return 1;
}

int xmlscan_root(const char *p, size_t n, char *out, size_t outn)
{
	const char *end = p + n;
	if (outn)
		out[0] = '\0';
	if (!p)
		return 0;
	if (n >= 3 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB &&
	    (unsigned char)p[2] == 0xBF)
		p += 3;
	for (;;) {
		while (p < end && xmlscan_is_ws(*p))
			p++;
		if (p >= end || *p != '<')
			return 0;
		if (end - p >= 2 && (p[1] == '?' || p[1] == '!')) {
			/* declaration, comment or doctype: skip to the next '>' */
			const char *gt = memchr(p, '>', (size_t)(end - p));
			if (!gt)
				return 0;
			p = gt + 1;
			continue;
		}
		p++;
		size_t k = 0;
		while (p + k < end && p[k] != '>' && p[k] != '/' && !xmlscan_is_ws(p[k]))
			k++;
		if (!k)
			return 0;
		if (outn) {
			size_t c = k < outn - 1 ? k : outn - 1;
			memcpy(out, p, c);
			out[c] = '\0';
		}
		return 1;
	}
}

size_t xmlscan_ref(const char *p, size_t n, uint32_t *cp)
{
	static const struct { const char *name; char c; } ents[] = {
		{ "amp;", '&' }, { "lt;", '<' }, { "gt;", '>' }, { "quot;", '"' }, { "apos;", '\'' },
	};
	for (size_t i = 0; i < sizeof(ents) / sizeof(ents[0]); i++) {
		size_t l = strlen(ents[i].name);
		if (n >= l + 1 && memcmp(p + 1, ents[i].name, l) == 0) {
			*cp = (uint32_t)ents[i].c;
			return l + 1;
		}
	}
	if (n < 4 || p[1] != '#')
		return 0;
	size_t i = 2;
	int hex = 0;
	if (p[i] == 'x' || p[i] == 'X') {
		hex = 1;
		i++;
	}
	uint32_t v = 0;
	size_t digits = 0;
	while (i < n && digits < 8) {
		char c = p[i];
		uint32_t d;
		if (c >= '0' && c <= '9')
			d = (uint32_t)(c - '0');
		else if (hex && c >= 'a' && c <= 'f')
			d = (uint32_t)(c - 'a' + 10);
		else if (hex && c >= 'A' && c <= 'F')
			d = (uint32_t)(c - 'A' + 10);
		else
			break;
		v = v * (hex ? 16u : 10u) + d;  /* 8 hex digits fit in 32 bits */
		digits++;
		i++;
	}
	if (!digits || i >= n || p[i] != ';')
		return 0;
	if (v == 0 || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
		return 0;
	*cp = v;
	return i + 1;
}

/* UTF-8 of cp (a valid code point) into u; returns its length (1..4). */
static size_t utf8_encode(uint32_t cp, char u[4])
{
	if (cp < 0x80) {
		u[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		u[0] = (char)(0xC0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		u[0] = (char)(0xE0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	u[0] = (char)(0xF0 | (cp >> 18));
	u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	u[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* The decoded bytes of the reference at src (src[0] == '&') into u: returns how many input bytes
 * it used (1: a literal '&') and *k the bytes in u. */
static size_t decode_one(const char *src, size_t n, unsigned flags, char u[4], size_t *k)
{
	uint32_t cp;
	size_t used = xmlscan_ref(src, n, &cp);
	if (used && (flags & XMLSCAN_REFS_ASCII) && (cp < 0x20 || cp > 0x7e))
		used = 0;
	if (!used) {
		u[0] = '&';
		*k = 1;
		return 1;
	}
	*k = utf8_encode(cp, u);
	return used;
}

size_t xmlscan_decode(const char *src, size_t n, unsigned flags, char *dst, size_t dn)
{
	size_t o = 0, i = 0;
	if (!dn)
		return 0;
	while (i < n) {
		const char *amp = memchr(src + i, '&', n - i);
		size_t run = amp ? (size_t)(amp - (src + i)) : n - i;
		if (run > dn - 1 - o)
			run = dn - 1 - o;
		memcpy(dst + o, src + i, run);
		o += run;
		i += run;
		if (i >= n || src[i] != '&')
			break; /* the end, or dst is full */
		char u[4];
		size_t k;
		size_t used = decode_one(src + i, n - i, flags, u, &k);
		if (k > dn - 1 - o)
			break;
		memcpy(dst + o, u, k);
		o += k;
		i += used;
	}
	dst[o] = '\0';
	return o;
}

int xmlscan_decode_buf(struct buf *out, const char *src, size_t n, unsigned flags)
{
	size_t i = 0;
	int rc = buf_reserve(out, n);
	while (!rc && i < n) {
		const char *amp = memchr(src + i, '&', n - i);
		size_t run = amp ? (size_t)(amp - (src + i)) : n - i;
		if (run)
			rc = buf_append(out, src + i, run);
		i += run;
		if (rc || i >= n)
			break;
		char u[4];
		size_t k;
		i += decode_one(src + i, n - i, flags, u, &k);
		rc = buf_append(out, u, k);
	}
	return rc ? -ENOMEM : 0;
}

int xmlscan_escape(struct buf *out, const char *s, size_t n)
{
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		switch (s[i]) {
		case '&': rc = buf_appendz(out, "&amp;"); break;
		case '<': rc = buf_appendz(out, "&lt;"); break;
		case '>': rc = buf_appendz(out, "&gt;"); break;
		case '"': rc = buf_appendz(out, "&quot;"); break;
		case '\'': rc = buf_appendz(out, "&apos;"); break;
		default: rc = buf_putc(out, s[i]); break;
		}
	}
	return rc;
}
