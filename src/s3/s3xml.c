/*
 * s3xml: tolerant scanner for S3's XML replies (see include/kvsfs/s3xml.h).
 *
 * Design: element finding, text decoding and the root check are xmlscan's (the one scanner, with
 * its rules: start tags "<name" + '>', '/' or whitespace, quoted attributes, content up to the
 * first "</name" + optional whitespace + '>'); this file knows the S3 documents. Records are
 * walked with an xmlscan_iter that moves past each block's end tag, so the whole document is
 * scanned once per record kind: linear time, no recursion, no allocation besides returned
 * strings. s3xml_find/decode/root/escape are kept as the s3xml names of those xmlscan calls.
 * Invariant: every pointer stays inside [body, body + len); inputs need no NUL terminator.
 */
#include "kvsfs/s3xml.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvsfs/buf.h"
#include "kvsfs/xmlscan.h"

int s3xml_find(const char *p, size_t n, const char *name, const char **val, size_t *vlen)
{
	struct xmlscan_span s;
	int r = xmlscan_element(p, n, name, &s);
	if (r == 1) {
		*val = s.text;
		*vlen = s.len;
	}
	return r;
}

int s3xml_decode(const char *val, size_t vlen, char **out)
{
	struct buf b = BUF_INIT;
	if (xmlscan_decode_buf(&b, val, vlen, 0)) {
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
	while (n && (xmlscan_is_ws(*s) || *s == '"')) {
		s++;
		n--;
	}
	while (n && (xmlscan_is_ws(s[n - 1]) || s[n - 1] == '"'))
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
	while (i < n && xmlscan_is_ws(s[i]))
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
	while (i < n && xmlscan_is_ws(s[i]))
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
	return xmlscan_escape(out, s, n);
}

int s3xml_root(const void *body, size_t len, char *out, size_t n)
{
	return xmlscan_root(body, len, out, n);
}

/* The raw content of child element `name`: 1 and the span (*v, *vl) when found, 0 when absent, -EIO when
 * truncated. */
static int child(const char *p, size_t n, const char *name, const char **v, size_t *vl)
{
	int r = s3xml_find(p, n, name, v, vl);
	return r < 0 ? -EIO : r;
}

/* Decoded text of a child element; NULL (and 0) when absent; -EIO truncated; -ENOMEM. */
static int child_text(const char *p, size_t n, const char *name, char **out)
{
	const char *v;
	size_t vl;
	*out = NULL;
	int r = child(p, n, name, &v, &vl);
	return r == 1 ? s3xml_decode(v, vl, out) : r;
}

/* A child element "true" (any case, surrounding whitespace allowed): *out 1, else 0. */
static int parse_bool(const char *p, size_t n, const char *name, int *out)
{
	const char *v;
	size_t vl;
	int r = child(p, n, name, &v, &vl);
	if (r < 0)
		return r;
	*out = 0;
	if (r == 1) {
		xmlscan_trim(&v, &vl);
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
	int r = child(p, n, name, &v, &vl);
	if (r != 1)
		return r;
	xmlscan_trim(&v, &vl);
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

/* One <Contents> record (content v[0..vl)) appended to l. */
static int contents_fn(const char *v, size_t vl, void *arg)
{
	struct s3xml_list *l = arg;
	struct s3xml_object o = { .size = -1, .last_modified = -1 };
	int rc = child_text(v, vl, "Key", &o.key);
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
		rc = grow((void **)&l->objects, &l->cap_objects, l->n_objects, sizeof(*l->objects));
	if (rc) {
		free(o.key);
		return rc;
	}
	o.last_modified = parse_time_child(v, vl, "LastModified");
	l->objects[l->n_objects++] = o;
	return 0;
}

/* One <CommonPrefixes><Prefix>..</Prefix></CommonPrefixes> record appended to l (a record
 * without <Prefix> adds nothing). */
static int prefix_fn(const char *v, size_t vl, void *arg)
{
	struct s3xml_list *l = arg;
	char *pre = NULL;
	int rc = child_text(v, vl, "Prefix", &pre);
	if (rc || !pre)
		return rc;
	rc = grow((void **)&l->prefixes, &l->cap_prefixes, l->n_prefixes, sizeof(*l->prefixes));
	if (rc) {
		free(pre);
		return rc;
	}
	l->prefixes[l->n_prefixes++] = pre;
	return 0;
}

/* Calls fn on every record `name` of [p, p + len). -EIO when one is truncated. */
static int each_record(const char *p, size_t len, const char *name,
		       int (*fn)(const char *v, size_t vl, void *arg), void *arg)
{
	struct xmlscan_iter it;
	struct xmlscan_span s;
	int r;
	xmlscan_iter_init(&it, p, len, name);
	while ((r = xmlscan_iter_next(&it, &s)) == 1) {
		int rc = fn(s.text, s.len, arg);
		if (rc)
			return rc;
	}
	return r < 0 ? -EIO : 0;
}

int s3xml_parse_list_v2(const void *body, size_t len, struct s3xml_list *l)
{
	const char *p = body;
	int rc;
	if (!body || check_root(body, len, "ListBucketResult"))
		return -EIO;
	rc = each_record(p, len, "Contents", contents_fn, l);
	if (!rc)
		rc = each_record(p, len, "CommonPrefixes", prefix_fn, l);
	if (rc)
		return rc;
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

/* One <Upload> record appended to u: <Key> and a non-empty <UploadId> are required. */
static int upload_fn(const char *v, size_t vl, void *arg)
{
	struct s3xml_uploads *u = arg;
	struct s3xml_upload up = { .initiated = -1 };
	int rc = child_text(v, vl, "Key", &up.key);
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
	return 0;
}

int s3xml_parse_list_uploads(const void *body, size_t len, struct s3xml_uploads *u)
{
	const char *p = body;
	int rc;
	if (!body || check_root(body, len, "ListMultipartUploadsResult"))
		return -EIO;
	rc = each_record(p, len, "Upload", upload_fn, u);
	if (rc)
		return rc;
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
