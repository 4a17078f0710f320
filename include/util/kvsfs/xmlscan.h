/*
 * xmlscan: the one XML scanner of kvsfs, for the small documents AWS services answer with
 * (S3 listings and results in s3xml, XML error replies in awserr).
 *
 * It is not a general XML parser: it finds elements by name and hands back their raw content as
 * a span of the input, and it decodes text. The rules, shared by every caller:
 *   - Start tag: "<name" followed by '>', '/' or whitespace (so <Contents> never matches
 *     <ContentsX>). The rest of the tag is skipped up to its '>'; quoted attribute values ('..'
 *     or "..") may hold '>'. A start tag whose last byte before '>' is '/' is an empty element
 *     (<name/>, <name a="b"/>). Namespace prefixes are not interpreted.
 *   - Element content (xmlscan_element): up to the first end tag "</name" + optional whitespace
 *     + '>'. The documents read with it never nest an element in one of the same name.
 *   - Leaf text (xmlscan_text): up to the next '<', or to the end of the input when there is
 *     none, so a body cut short by a size bound still yields the text it holds.
 *   - Text decoding: the five predefined entities and decimal/hex character references (1..8
 *     digits, value not 0, not a surrogate, at most U+10FFFF), encoded as UTF-8; anything else
 *     after '&' stays literal. No DTDs, no external entities, no CDATA semantics.
 *   - Whitespace is ' ', '\t', '\r' and '\n'.
 *
 * Bounds: every function reads only [p, p + n); inputs need not be NUL-terminated and may hold
 * NUL bytes. No recursion; each call is linear in its input. Only xmlscan_decode_buf and
 * xmlscan_escape allocate, and only in the caller's struct buf; the rest never allocates.
 * Thread-safety: no state; every function is reentrant.
 */
#ifndef KVSFS_XMLSCAN_H
#define KVSFS_XMLSCAN_H

#include <stddef.h>
#include <stdint.h>

struct buf;

/* An element found in the input: its raw (undecoded) content and where scanning may go on. */
struct xmlscan_span {
	const char *text;  /* first byte of the content (of an empty element: its start tag's '>') */
	size_t len;        /* content length in bytes; 0 for an empty element */
	const char *next;  /* first byte after the element (after its end tag, after "/>", or for
	                    * leaf text after the text) */
};

/* 1 for XML whitespace (' ', '\t', '\r', '\n'), else 0. */
int xmlscan_is_ws(char c);
/* Narrows the span [*p, *p + *n) to drop leading and trailing XML whitespace. */
void xmlscan_trim(const char **p, size_t *n);

/*
 * Finds the first element `name` in [p, p + n) and its content up to its end tag. Returns 1 and
 * *out, 0 when there is no such start tag, -1 when the first one has no end (start tag without
 * '>', or no matching end tag: a truncated document). *out is untouched unless 1 is returned.
 */
int xmlscan_element(const char *p, size_t n, const char *name, struct xmlscan_span *out);

/*
 * Finds the first element `name` in [p, p + n) and its leaf text: up to the next '<' or the end
 * of the input (a truncated body keeps what it holds). Returns 1 and *out, 0 when absent, -1
 * when the start tag has no '>'.
 */
int xmlscan_text(const char *p, size_t n, const char *name, struct xmlscan_span *out);

/* Walks the successive elements of one name (records such as <Contents> or <Upload>). */
struct xmlscan_iter {
	const char *cur, *end;
	const char *name;
};

/* Starts a walk over [p, p + n) for elements `name` (borrowed: must outlive the walk). */
void xmlscan_iter_init(struct xmlscan_iter *it, const char *p, size_t n, const char *name);
/* The next element as with xmlscan_element: 1 and *out, 0 when there are no more, -1 when the
 * next one is truncated (the walk then stays there). */
int xmlscan_iter_next(struct xmlscan_iter *it, struct xmlscan_span *out);

/* Copies the name of the root element (after a UTF-8 BOM, whitespace, the XML declaration,
 * comments and a doctype) into out (truncated, NUL-terminated when n > 0). Returns 1 when there
 * is one, else 0 (out is then ""). p may be NULL (then 0). */
int xmlscan_root(const char *p, size_t n, char *out, size_t outn);

/*
 * Reads one reference at p (p[0] == '&'; n bytes available): an entity or a character reference
 * as in the top comment. Returns its length in bytes (';' included) and *cp, or 0 when p does not
 * start a valid reference (the '&' is then literal text).
 */
size_t xmlscan_ref(const char *p, size_t n, uint32_t *cp);

enum xmlscan_decode_flags {
	/* decode character references only for printable ASCII (U+0020..U+007E); others stay
	 * literal (for strings that must stay plain ASCII-safe, such as error messages) */
	XMLSCAN_REFS_ASCII = 1u << 0,
};

/*
 * Decodes raw text src[0..n) into dst (dn bytes, dn > 0): writes at most dn - 1 bytes and a NUL;
 * stops at the first decoded unit (a byte, or a reference's UTF-8 sequence) that does not fit.
 * Decoded NULs are impossible, literal NUL bytes are copied. Never allocates. Returns the number
 * of bytes written (without the NUL).
 */
size_t xmlscan_decode(const char *src, size_t n, unsigned flags, char *dst, size_t dn);

/* Decodes raw text src[0..n) and appends it to out (no NUL handling: out's own terminator).
 * Returns 0 or -ENOMEM (out may then hold a prefix). */
int xmlscan_decode_buf(struct buf *out, const char *src, size_t n, unsigned flags);

/* Appends s[0..n) escaped for XML text and attribute values (& < > " ') to out. Returns 0 or
 * -ENOMEM. */
int xmlscan_escape(struct buf *out, const char *s, size_t n);

#endif
