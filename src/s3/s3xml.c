/*
 * s3xml: tolerant scanner for S3's XML replies (see include/kvsfs/s3xml.h).
 *
 * Design: everything is built on s3xml_find(), which looks for "<name" followed by '>', '/' or
 * whitespace, skips the rest of the start tag (quoted attribute values may hold '>'), and takes
 * the content up to the first "</name" followed by optional whitespace and '>'. Records are
 * walked with a cursor that moves past each block's end tag, so the whole document is scanned
 * once per record kind: linear time, no recursion, no allocation besides returned strings.
 * Invariant: every pointer stays inside [body, body + len); inputs need no NUL terminator.
 */
#include "kvsfs/s3xml.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvsfs/buf.h"

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int s3xml_find(const char *p, size_t n, const char *name, const char **val, size_t *vlen)
{
	size_t nl = strlen(name);
	const char *end = p + n;
	const char *s = p;
	while (s < end) {
		const char *lt = memchr(s, '<', (size_t)(end - s));
		if (!lt)
			return 0;
		s = lt + 1;
		if ((size_t)(end - s) < nl + 1 || memcmp(s, name, nl) != 0)
			continue;
		char c = s[nl];
		if (c != '>' && c != '/' && !is_ws(c))
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
		if (t[-1] == '/') {
			*val = t;
			*vlen = 0;
			return 1;
		}
		const char *content = t + 1;
		const char *q = content;
		while (q < end) {
			const char *e = memmem(q, (size_t)(end - q), "</", 2);
			if (!e)
				return -1;
			const char *r = e + 2;
			if ((size_t)(end - r) >= nl && memcmp(r, name, nl) == 0) {
				r += nl;
				while (r < end && is_ws(*r))
					r++;
				if (r < end && *r == '>') {
					*val = content;
					*vlen = (size_t)(e - content);
					return 1;
				}
			}
			q = e + 2;
		}
		return -1;
	}
	return 0;
}

/* Like s3xml_find, also returns the position just past the element's end (for iteration). */
static int find_block(const char *p, size_t n, const char *name, const char **val, size_t *vlen,
		      const char **after)
{
	int r = s3xml_find(p, n, name, val, vlen);
	if (r != 1)
		return r;
	const char *end = p + n;
	const char *a = *val + *vlen;
	if (*vlen == 0 && a < end && *a == '>' && a > p && a[-1] == '/') {
		*after = a + 1; /* <name/> */
		return 1;
	}
	/* past "</name ... >" */
	const char *gt = memchr(a, '>', (size_t)(end - a));
	*after = gt ? gt + 1 : end;
	return 1;
}

static void put_utf8(struct buf *b, unsigned long cp, int *rc)
{
	char u[4];
	size_t k;
	if (cp < 0x80) {
		u[0] = (char)cp;
		k = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xC0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3F));
		k = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xE0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[2] = (char)(0x80 | (cp & 0x3F));
		k = 3;
	} else {
		u[0] = (char)(0xF0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[3] = (char)(0x80 | (cp & 0x3F));
		k = 4;
	}
	if (!*rc)
		*rc = buf_append(b, u, k);
}

/* Decodes one reference at p (p[0] == '&'); returns its length, or 0 when not a valid one. */
static size_t decode_ref(const char *p, size_t n, struct buf *b, int *rc)
{
	static const struct { const char *name; char c; } ents[] = {
		{ "amp;", '&' }, { "lt;", '<' }, { "gt;", '>' }, { "quot;", '"' }, { "apos;", '\'' },
	};
	for (size_t i = 0; i < sizeof(ents) / sizeof(ents[0]); i++) {
		size_t l = strlen(ents[i].name);
		if (n >= l + 1 && memcmp(p + 1, ents[i].name, l) == 0) {
			if (!*rc)
				*rc = buf_putc(b, ents[i].c);
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
	unsigned long cp = 0;
	size_t digits = 0;
	while (i < n && digits < 8) {
		char c = p[i];
		int d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (hex && c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (hex && c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			break;
		cp = cp * (hex ? 16u : 10u) + (unsigned long)d;
		digits++;
		i++;
	}
	if (!digits || i >= n || p[i] != ';')
		return 0;
	if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	put_utf8(b, cp, rc);
	return i + 1;
}

int s3xml_decode(const char *val, size_t vlen, char **out)
{
	struct buf b = BUF_INIT;
	int rc = buf_reserve(&b, vlen);
	size_t i = 0;
	while (!rc && i < vlen) {
		const char *amp = memchr(val + i, '&', vlen - i);
		size_t run = amp ? (size_t)(amp - (val + i)) : vlen - i;
		if (run)
			rc = buf_append(&b, val + i, run);
		i += run;
		if (rc || i >= vlen)
			break;
		size_t used = decode_ref(val + i, vlen - i, &b, &rc);
		if (!used) {
			rc = rc ? rc : buf_putc(&b, '&');
			used = 1;
		}
		i += used;
	}
	if (rc) {
		buf_free(&b);
		*out = NULL;
		return -ENOMEM;
	}
	/* a literal NUL in the raw text would cut the string short: drop such bytes */
	if (b.data && memchr(b.data, '\0', b.len)) {
		size_t w = 0;
		for (size_t r = 0; r < b.len; r++)
			if (b.data[r])
				b.data[w++] = b.data[r];
		b.len = w;
		b.data[w] = '\0';
	}
	*out = buf_steal(&b);
	return *out ? 0 : -ENOMEM;
}

void s3xml_etag_clean(const char *val, size_t vlen, char out[S3XML_ETAG_MAX])
{
	char *d = NULL;
	out[0] = '\0';
	if (s3xml_decode(val, vlen, &d))
		return;
	const char *s = d;
	size_t n = strlen(s);
	while (n && (is_ws(*s) || *s == '"')) {
		s++;
		n--;
	}
	while (n && (is_ws(s[n - 1]) || s[n - 1] == '"'))
		n--;
	size_t w = 0;
	for (size_t i = 0; i < n && w + 1 < S3XML_ETAG_MAX; i++)
		if ((unsigned char)s[i] >= 0x20 && s[i] != 0x7f)
			out[w++] = s[i];
	out[w] = '\0';
	free(d);
}

int64_t s3xml_parse_time(const char *s, size_t n)
{
	int v[6] = { 0 };
	static const int widths[6] = { 4, 2, 2, 2, 2, 2 };
	static const char seps[6] = { '-', '-', 'T', ':', ':', 0 };
	size_t i = 0;
	while (i < n && is_ws(s[i]))
		i++;
	for (int f = 0; f < 6; f++) {
		for (int k = 0; k < widths[f]; k++, i++) {
			if (i >= n || !isdigit((unsigned char)s[i]))
				return -1;
			v[f] = v[f] * 10 + (s[i] - '0');
		}
		if (seps[f]) {
			if (i >= n || (s[i] != seps[f] && !(f == 2 && s[i] == 't')))
				return -1;
			i++;
		}
	}
	if (i < n && s[i] == '.') {
		i++;
		while (i < n && isdigit((unsigned char)s[i]))
			i++;
	}
	if (i < n && (s[i] == 'Z' || s[i] == 'z'))
		i++;
	while (i < n && is_ws(s[i]))
		i++;
	if (i != n)
		return -1;
	if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 || v[4] > 59 || v[5] > 60)
		return -1;
	struct tm tm = { 0 };
	tm.tm_year = v[0] - 1900;
	tm.tm_mon = v[1] - 1;
	tm.tm_mday = v[2];
	tm.tm_hour = v[3];
	tm.tm_min = v[4];
	tm.tm_sec = v[5];
	time_t t = timegm(&tm);
	return t == (time_t)-1 ? -1 : (int64_t)t;
}

int s3xml_escape(struct buf *out, const char *s, size_t n)
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

int s3xml_root(const void *body, size_t len, char *out, size_t n)
{
	const char *p = body, *end = p + len;
	if (n)
		out[0] = '\0';
	if (!body)
		return 0;
	if (len >= 3 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB &&
	    (unsigned char)p[2] == 0xBF)
		p += 3;
	for (;;) {
		while (p < end && is_ws(*p))
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
		while (p + k < end && p[k] != '>' && p[k] != '/' && !is_ws(p[k]))
			k++;
		if (!k)
			return 0;
		if (n) {
			size_t c = k < n - 1 ? k : n - 1;
			memcpy(out, p, c);
			out[c] = '\0';
		}
		return 1;
	}
}

/* Decoded text of a child element; NULL (and 0) when absent; -EIO truncated; -ENOMEM. */
static int child_text(const char *p, size_t n, const char *name, char **out)
{
	const char *v;
	size_t vl;
	*out = NULL;
	int r = s3xml_find(p, n, name, &v, &vl);
	if (r < 0)
		return -EIO;
	if (r == 0)
		return 0;
	return s3xml_decode(v, vl, out);
}

static int parse_bool(const char *p, size_t n, const char *name, int *out)
{
	const char *v;
	size_t vl;
	int r = s3xml_find(p, n, name, &v, &vl);
	if (r < 0)
		return -EIO;
	*out = 0;
	if (r == 1) {
		while (vl && is_ws(*v)) {
			v++;
			vl--;
		}
		*out = vl >= 4 && strncasecmp(v, "true", 4) == 0;
	}
	return 0;
}

/* Decimal int64 of a child element: *out = -1 when absent; -EIO when malformed. */
static int parse_int(const char *p, size_t n, const char *name, int64_t *out)
{
	const char *v;
	size_t vl;
	*out = -1;
	int r = s3xml_find(p, n, name, &v, &vl);
	if (r < 0)
		return -EIO;
	if (r == 0)
		return 0;
	while (vl && is_ws(*v)) {
		v++;
		vl--;
	}
	while (vl && is_ws(v[vl - 1]))
		vl--;
	if (!vl)
		return -EIO;
	int64_t x = 0;
	for (size_t i = 0; i < vl; i++) {
		if (!isdigit((unsigned char)v[i]) || x > (INT64_MAX - 9) / 10)
			return -EIO;
		x = x * 10 + (v[i] - '0');
	}
	*out = x;
	return 0;
}

static int64_t parse_time_child(const char *p, size_t n, const char *name)
{
	const char *v;
	size_t vl;
	if (s3xml_find(p, n, name, &v, &vl) != 1)
		return -1;
	return s3xml_parse_time(v, vl);
}

static int grow(void **v, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return 0;
	size_t nc = *cap ? *cap * 2 : 16;
	if (nc > SIZE_MAX / elem)
		return -ENOMEM;
	void *nv = realloc(*v, nc * elem);
	if (!nv)
		return -ENOMEM;
	*v = nv;
	*cap = nc;
	return 0;
}

static int check_root(const void *body, size_t len, const char *want)
{
	char root[64];
	if (!s3xml_root(body, len, root, sizeof(root)) || strcmp(root, want) != 0)
		return -EIO;
	return 0;
}

void s3xml_list_free(struct s3xml_list *l)
{
	for (size_t i = 0; i < l->n_objects; i++)
		free(l->objects[i].key);
	free(l->objects);
	for (size_t i = 0; i < l->n_prefixes; i++)
		free(l->prefixes[i]);
	free(l->prefixes);
	free(l->next_token);
	memset(l, 0, sizeof(*l));
}

void s3xml_uploads_free(struct s3xml_uploads *u)
{
	for (size_t i = 0; i < u->n; i++) {
		free(u->v[i].key);
		free(u->v[i].upload_id);
	}
	free(u->v);
	free(u->next_key_marker);
	free(u->next_upload_id_marker);
	memset(u, 0, sizeof(*u));
}

int s3xml_parse_list_v2(const void *body, size_t len, struct s3xml_list *l)
{
	const char *p = body, *end;
	int rc;
	if (!body || check_root(body, len, "ListBucketResult"))
		return -EIO;
	end = p + len;

	/* <Contents> records */
	const char *cur = p;
	for (;;) {
		const char *v, *after;
		size_t vl;
		int r = find_block(cur, (size_t)(end - cur), "Contents", &v, &vl, &after);
		if (r < 0)
			return -EIO;
		if (r == 0)
			break;
		struct s3xml_object o = { .size = -1, .last_modified = -1 };
		rc = child_text(v, vl, "Key", &o.key);
		if (rc)
			return rc;
		if (!o.key)
			return -EIO;
		rc = parse_int(v, vl, "Size", &o.size);
		if (!rc) {
			const char *ev;
			size_t el;
			int er = s3xml_find(v, vl, "ETag", &ev, &el);
			if (er < 0)
				rc = -EIO;
			else if (er == 1)
				s3xml_etag_clean(ev, el, o.etag);
		}
		if (!rc)
			rc = grow((void **)&l->objects, &l->cap_objects, l->n_objects,
				  sizeof(*l->objects));
		if (rc) {
			free(o.key);
			return rc;
		}
		o.last_modified = parse_time_child(v, vl, "LastModified");
		l->objects[l->n_objects++] = o;
		cur = after;
	}

	/* <CommonPrefixes><Prefix>..</Prefix></CommonPrefixes> records */
	cur = p;
	for (;;) {
		const char *v, *after;
		size_t vl;
		int r = find_block(cur, (size_t)(end - cur), "CommonPrefixes", &v, &vl, &after);
		if (r < 0)
			return -EIO;
		if (r == 0)
			break;
		char *pre = NULL;
		rc = child_text(v, vl, "Prefix", &pre);
		if (rc)
			return rc;
		if (pre) {
			rc = grow((void **)&l->prefixes, &l->cap_prefixes, l->n_prefixes,
				  sizeof(*l->prefixes));
			if (rc) {
				free(pre);
				return rc;
			}
			l->prefixes[l->n_prefixes++] = pre;
		}
		cur = after;
	}

	/* page fields: look only outside the records, i.e. anywhere (the names are unique) */
	rc = parse_bool(p, len, "IsTruncated", &l->truncated);
	if (rc)
		return rc;
	free(l->next_token);
	l->next_token = NULL;
	rc = child_text(p, len, "NextContinuationToken", &l->next_token);
	if (rc)
		return rc;
	return parse_int(p, len, "KeyCount", &l->key_count);
}

int s3xml_parse_list_uploads(const void *body, size_t len, struct s3xml_uploads *u)
{
	const char *p = body, *end;
	int rc;
	if (!body || check_root(body, len, "ListMultipartUploadsResult"))
		return -EIO;
	end = p + len;
	const char *cur = p;
	for (;;) {
		const char *v, *after;
		size_t vl;
		int r = find_block(cur, (size_t)(end - cur), "Upload", &v, &vl, &after);
		if (r < 0)
			return -EIO;
		if (r == 0)
			break;
		struct s3xml_upload up = { .initiated = -1 };
		rc = child_text(v, vl, "Key", &up.key);
		if (!rc)
			rc = child_text(v, vl, "UploadId", &up.upload_id);
		if (!rc && (!up.key || !up.upload_id || !up.upload_id[0]))
			rc = -EIO;
		if (!rc)
			rc = grow((void **)&u->v, &u->cap, u->n, sizeof(*u->v));
		if (rc) {
			free(up.key);
			free(up.upload_id);
			return rc;
		}
		up.initiated = parse_time_child(v, vl, "Initiated");
		u->v[u->n++] = up;
		cur = after;
	}
	rc = parse_bool(p, len, "IsTruncated", &u->truncated);
	if (rc)
		return rc;
	free(u->next_key_marker);
	free(u->next_upload_id_marker);
	u->next_key_marker = u->next_upload_id_marker = NULL;
	rc = child_text(p, len, "NextKeyMarker", &u->next_key_marker);
	if (!rc)
		rc = child_text(p, len, "NextUploadIdMarker", &u->next_upload_id_marker);
	return rc;
}

int s3xml_parse_initiate(const void *body, size_t len, char **upload_id)
{
	*upload_id = NULL;
	if (!body || check_root(body, len, "InitiateMultipartUploadResult"))
		return -EIO;
	int rc = child_text(body, len, "UploadId", upload_id);
	if (rc)
		return rc;
	if (!*upload_id || !**upload_id) {
		free(*upload_id);
		*upload_id = NULL;
		return -EIO;
	}
	return 0;
}

int s3xml_parse_etag_result(const void *body, size_t len, const char *expect_root,
			    char etag[S3XML_ETAG_MAX])
{
	etag[0] = '\0';
	if (!body || check_root(body, len, expect_root))
		return -EIO;
	const char *v;
	size_t vl;
	int r = s3xml_find(body, len, "ETag", &v, &vl);
	if (r < 0)
		return -EIO;
	if (r == 1)
		s3xml_etag_clean(v, vl, etag);
	return 0;
}
