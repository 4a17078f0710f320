/* Unit tests for util/xmlscan: element and leaf-text finding, record walks, the root element,
 * references, bounded and buffered decoding, escaping. */
#include <errno.h>
#include <stdint.h>

#include "check.h"
#include "kvsfs/buf.h"
#include "kvsfs/xmlscan.h"

/* The content of a found span as a C string (static buffer). */
static const char *span_str(const struct xmlscan_span *s)
{
	static char b[256];
	snprintf(b, sizeof(b), "%.*s", (int)s->len, s->text);
	return b;
}

static void test_element(void)
{
	struct xmlscan_span s;
	static const char doc[] = "<R><ab>no</ab><a x='>' y=\"/>\">v<b/></a ><a>w</a></R>";
	size_t n = sizeof(doc) - 1;
	CHECK_INT(xmlscan_element(doc, n, "a", &s), 1, "element found");
	CHECK_STR(span_str(&s), "v<b/>", "similar name skipped, quoted '>' and '/>' in attributes");
	CHECK(s.next == strstr(doc, "<a>w"), "next is just past the end tag");
	CHECK_INT(xmlscan_element(s.next, (size_t)(doc + n - s.next), "a", &s), 1, "second one");
	CHECK_STR(span_str(&s), "w", "second content");

	CHECK_INT(xmlscan_element("<a/>x", 5, "a", &s), 1, "empty element");
	CHECK(s.len == 0 && *s.text == '>' && *s.next == 'x', "empty: no content, next after '/>'");
	CHECK_INT(xmlscan_element("<a k=\"v\"/><a>z</a>", 18, "a", &s), 1, "empty with attribute");
	CHECK(s.len == 0 && *s.next == '<', "empty with attribute: next");
	CHECK_INT(xmlscan_element("<a></a>", 7, "a", &s), 1, "empty content");
	CHECK_INT(s.len, 0, "empty content length");
	CHECK_INT(xmlscan_element("<a>x</a\n\t>", 10, "a", &s), 1, "whitespace in the end tag");
	CHECK_INT(xmlscan_element("<a>v</ab></a>", 13, "a", &s), 1, "similar end tag skipped");
	CHECK_STR(span_str(&s), "v</ab>", "content up to the real end tag");

	CHECK_INT(xmlscan_element("<b>v</b>", 8, "a", &s), 0, "absent");
	CHECK_INT(xmlscan_element("", 0, "a", &s), 0, "empty input");
	CHECK_INT(xmlscan_element("<a", 2, "a", &s), 0, "name cut at the end: no start tag");
	CHECK_INT(xmlscan_element("<a x", 4, "a", &s), -1, "start tag without '>'");
	CHECK_INT(xmlscan_element("<a x='>", 7, "a", &s), -1, "open quote runs to the end");
	CHECK_INT(xmlscan_element("<a>v</b>", 8, "a", &s), -1, "no end tag");
	CHECK_INT(xmlscan_element("<a>v</a", 7, "a", &s), -1, "end tag cut");
	/* not NUL-terminated: the scanner must stop at n */
	CHECK_INT(xmlscan_element("<a>v</a>", 7, "a", &s), -1, "bound respected");
}

static void test_text(void)
{
	struct xmlscan_span s;
	static const char doc[] = "<E><Code >C1</Code><Message>m <b>x</b></Message>";
	CHECK_INT(xmlscan_text(doc, sizeof(doc) - 1, "Code", &s), 1, "text found");
	CHECK_STR(span_str(&s), "C1", "text");
	CHECK_INT(xmlscan_text(doc, sizeof(doc) - 1, "Message", &s), 1, "message found");
	CHECK_STR(span_str(&s), "m ", "text stops at the next '<'");
	CHECK(*s.next == '<', "next is the '<'");
	CHECK_INT(xmlscan_text("<M>cut sho", 10, "M", &s), 1, "truncated body");
	CHECK_STR(span_str(&s), "cut sho", "truncated text kept");
	CHECK_INT(xmlscan_text("<M/>", 4, "M", &s), 1, "empty leaf");
	CHECK_INT(s.len, 0, "empty leaf length");
	CHECK_INT(xmlscan_text("<M", 2, "M", &s), 0, "cut name");
	CHECK_INT(xmlscan_text("<M a", 4, "M", &s), -1, "start tag without '>'");
	CHECK_INT(xmlscan_text("<MM>x", 5, "M", &s), 0, "similar name is not the element");
}

static void test_iter(void)
{
	static const char doc[] = "<L><R>1</R><X/><R a='b'>2</R><R/><R>3";
	struct xmlscan_iter it;
	struct xmlscan_span s;
	xmlscan_iter_init(&it, doc, sizeof(doc) - 1, "R");
	CHECK_INT(xmlscan_iter_next(&it, &s), 1, "record 1");
	CHECK_STR(span_str(&s), "1", "record 1 content");
	CHECK_INT(xmlscan_iter_next(&it, &s), 1, "record 2");
	CHECK_STR(span_str(&s), "2", "record 2 content");
	CHECK_INT(xmlscan_iter_next(&it, &s), 1, "record 3 (empty)");
	CHECK_INT(s.len, 0, "record 3 empty");
	CHECK_INT(xmlscan_iter_next(&it, &s), -1, "record 4 truncated");
	CHECK_INT(xmlscan_iter_next(&it, &s), -1, "the walk stays at the truncated record");

	xmlscan_iter_init(&it, doc, 11, "R");
	CHECK_INT(xmlscan_iter_next(&it, &s), 1, "bounded walk: one record");
	CHECK_INT(xmlscan_iter_next(&it, &s), 0, "bounded walk: no more");
}

static void test_root(void)
{
	char r[8];
	static const char doc[] = "\xEF\xBB\xBF <?xml version=\"1.0\"?>\n<!-- c --><!DOCTYPE x>"
				  "<ListBucketResult xmlns=\"u\">";
	CHECK_INT(xmlscan_root(doc, sizeof(doc) - 1, r, sizeof(r)), 1, "root after prolog");
	CHECK_STR(r, "ListBuc", "root name truncated to the buffer");
	CHECK_INT(xmlscan_root("<Error/>", 8, r, sizeof(r)), 1, "empty root");
	CHECK_STR(r, "Error", "empty root name");
	CHECK_INT(xmlscan_root("text<a>", 7, r, sizeof(r)), 0, "text before the root");
	CHECK_STR(r, "", "no root: empty name");
	CHECK_INT(xmlscan_root("<?xml", 5, r, sizeof(r)), 0, "unterminated declaration");
	CHECK_INT(xmlscan_root("< a>", 4, r, sizeof(r)), 0, "no name");
	CHECK_INT(xmlscan_root(NULL, 0, r, sizeof(r)), 0, "NULL input");
}

static void test_ref(void)
{
	uint32_t cp = 0;
	CHECK_INT(xmlscan_ref("&amp;x", 6, &cp), 5, "&amp; length");
	CHECK_INT(cp, '&', "&amp;");
	CHECK_INT(xmlscan_ref("&apos;", 6, &cp), 6, "&apos; length");
	CHECK_INT(cp, '\'', "&apos;");
	CHECK_INT(xmlscan_ref("&#65;", 5, &cp), 5, "decimal");
	CHECK_INT(cp, 65, "decimal value");
	CHECK_INT(xmlscan_ref("&#x1F600;", 9, &cp), 9, "hex");
	CHECK_INT(cp, 0x1F600, "hex value");
	CHECK_INT(xmlscan_ref("&#00000065;", 11, &cp), 11, "8 digits");
	CHECK_INT(xmlscan_ref("&#000000065;", 12, &cp), 0, "9 digits");
	CHECK_INT(xmlscan_ref("&#0;", 4, &cp), 0, "&#0;");
	CHECK_INT(xmlscan_ref("&#xD800;", 8, &cp), 0, "surrogate");
	CHECK_INT(xmlscan_ref("&#x110000;", 10, &cp), 0, "beyond U+10FFFF");
	CHECK_INT(xmlscan_ref("&#65", 4, &cp), 0, "no ';'");
	CHECK_INT(xmlscan_ref("&#;", 3, &cp), 0, "no digits");
	CHECK_INT(xmlscan_ref("&#xG;", 5, &cp), 0, "bad hex digit");
	CHECK_INT(xmlscan_ref("&bogus;", 7, &cp), 0, "unknown entity");
	CHECK_INT(xmlscan_ref("&amp", 4, &cp), 0, "entity cut");
}

static void test_decode(void)
{
	char d[64];
	static const char raw[] = "a&amp;b&lt;&#233;&#x1F600;&bogus;&#0;&";
	size_t n = xmlscan_decode(raw, sizeof(raw) - 1, 0, d, sizeof(d));
	CHECK_STR(d, "a&b<\xc3\xa9\xf0\x9f\x98\x80&bogus;&#0;&", "UTF-8 decoding");
	CHECK_INT(n, strlen(d), "length returned");
	xmlscan_decode(raw, sizeof(raw) - 1, XMLSCAN_REFS_ASCII, d, sizeof(d));
	CHECK_STR(d, "a&b<&#233;&#x1F600;&bogus;&#0;&", "ASCII-only character references");
	xmlscan_decode("&#65;&#x42;&#10;", 16, XMLSCAN_REFS_ASCII, d, sizeof(d));
	CHECK_STR(d, "AB&#10;", "ASCII mode: control characters stay literal");

	/* bounds: a unit that does not fit is not split */
	CHECK_INT(xmlscan_decode("ab&#233;", 8, 0, d, 4), 2, "two-byte sequence does not fit");
	CHECK_STR(d, "ab", "stopped before the sequence");
	CHECK_INT(xmlscan_decode("abcdef", 6, 0, d, 4), 3, "plain text cut");
	CHECK_STR(d, "abc", "cut text");
	CHECK_INT(xmlscan_decode("abc", 3, 0, d, 1), 0, "room for the NUL only");
	CHECK_STR(d, "", "empty output");
	CHECK_INT(xmlscan_decode("a\0b", 3, 0, d, sizeof(d)), 3, "literal NUL copied");
	CHECK(d[1] == '\0' && d[2] == 'b', "NUL kept in place");

	struct buf b = BUF_INIT;
	CHECK_INT(buf_appendz(&b, "x:"), 0, "prefix");
	CHECK_INT(xmlscan_decode_buf(&b, raw, sizeof(raw) - 1, 0), 0, "decode into a buf");
	CHECK_STR(buf_str(&b), "x:a&b<\xc3\xa9\xf0\x9f\x98\x80&bogus;&#0;&", "appended, same decoding");
	buf_free(&b);
}

static void test_trim(void)
{
	const char *p = " \t\r\n a b \n";
	size_t n = strlen(p);
	xmlscan_trim(&p, &n);
	CHECK(n == 3 && !strncmp(p, "a b", 3), "whitespace trimmed at both ends");
	p = "\v x";
	n = 3;
	xmlscan_trim(&p, &n);
	CHECK_INT(n, 3, "only XML whitespace is trimmed");
	p = "  ";
	n = 2;
	xmlscan_trim(&p, &n);
	CHECK_INT(n, 0, "all whitespace: empty");
}

static void test_escape(void)
{
	struct buf b = BUF_INIT;
	static const char s[] = "a<&>\"'z&amp;";
	CHECK_INT(xmlscan_escape(&b, s, sizeof(s) - 1), 0, "escape");
	CHECK_STR(buf_str(&b), "a&lt;&amp;&gt;&quot;&apos;z&amp;amp;", "escaped");
	struct buf r = BUF_INIT;
	CHECK_INT(xmlscan_decode_buf(&r, b.data, b.len, 0), 0, "decode the escaped text");
	CHECK_STR(buf_str(&r), s, "escape then decode is the identity");
	buf_free(&r);
	buf_free(&b);
}

int main(void)
{
	test_element();
	test_text();
	test_iter();
	test_root();
	test_ref();
	test_decode();
	test_trim();
	test_escape();
	return check_done();
}
