/*
 * s3 meta.c: user metadata (struct s3_meta), object info, and the only place where S3 metadata
 * meets HTTP headers (see include/kvsfs/s3.h; src/s3/s3_int.h for the module's map).
 *
 * Design: struct s3_meta is a small ordered list of malloc'd name/value pairs with
 * case-insensitive names, so the API needs no HTTP type. Names and values are checked when they
 * enter the list with the rules of an HTTP header (a token name, a value without CR/LF), so a
 * bad entry fails where the caller made it. The conversions live here: s3i_put_headers prefixes
 * names with "x-amz-meta-" (unless already there) and refuses values that are not printable
 * ASCII (S3's rule); s3i_info_from_headers takes them back from a HEAD/GET answer with the
 * prefix removed and the name lower-cased.
 *
 * Invariants: every entry's name is a non-empty token and its value has no CR/LF; a freed list
 * is empty and reusable; nothing here logs (callers do, once).
 */
#include "s3_int.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- struct s3_meta ---- */

/* The HTTP header rules: a name of visible ASCII without ':', a value without CR/LF. */
static int entry_ok(const char *name, const char *value)
{
	if (!name || !*name || !value)
		return 0;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f || *p == ':')
			return 0;
	return strpbrk(value, "\r\n") == NULL;
}

static int meta_push(struct s3_meta *m, const char *name, const char *value)
{
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 8;
		struct s3_meta_entry *v = realloc(m->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		m->v = v;
		m->cap = cap;
	}
	struct s3_meta_entry e = { strdup(name), strdup(value) };
	if (!e.name || !e.value) {
		free(e.name);
		free(e.value);
		return -ENOMEM;
	}
	m->v[m->n++] = e;
	return 0;
}

int s3_meta_add(struct s3_meta *m, const char *name, const char *value)
{
	if (!entry_ok(name, value))
		return -EINVAL;
	return meta_push(m, name, value);
}

int s3_meta_set(struct s3_meta *m, const char *name, const char *value)
{
	if (!entry_ok(name, value))
		return -EINVAL;
	size_t i = 0;
	while (i < m->n && strcasecmp(m->v[i].name, name) != 0)
		i++;
	if (i == m->n)
		return meta_push(m, name, value);
	char *val = strdup(value);
	if (!val)
		return -ENOMEM;
	free(m->v[i].value);
	m->v[i].value = val;
	size_t o = i + 1;  /* the first entry of the name stays in place; later ones go */
	for (size_t j = i + 1; j < m->n; j++) {
		if (strcasecmp(m->v[j].name, name) == 0) {
			free(m->v[j].name);
			free(m->v[j].value);
		} else {
			m->v[o++] = m->v[j];
		}
	}
	m->n = o;
	return 0;
}

const char *s3_meta_lookup(const struct s3_meta *m, const char *name)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcasecmp(m->v[i].name, name) == 0)
			return m->v[i].value;
	return NULL;
}

int s3_meta_copy(struct s3_meta *dst, const struct s3_meta *src)
{
	for (size_t i = 0; src && i < src->n; i++) {
		int rc = meta_push(dst, src->v[i].name, src->v[i].value);
		if (rc)
			return rc;
	}
	return 0;
}

void s3_meta_free(struct s3_meta *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->v[i].name);
		free(m->v[i].value);
	}
	free(m->v);
	memset(m, 0, sizeof(*m));
}

/* ---- object info ---- */

void s3i_info_init(struct s3_object_info *info)
{
	memset(info, 0, sizeof(*info));
	info->size = -1;
	info->last_modified = -1;
}

void s3_object_info_free(struct s3_object_info *info)
{
	if (!info)
		return;
	free(info->content_type);
	s3_meta_free(&info->meta);
	s3i_info_init(info);
}

const char *s3_meta_get(const struct s3_object_info *info, const char *name)
{
	return s3_meta_lookup(&info->meta, name);
}

int s3_meta_get_int64(const struct s3_object_info *info, const char *name, int base8,
		      int64_t *out)
{
	const char *v = s3_meta_get(info, name);
	if (!v)
		return -ENOENT;
	while (*v == ' ')
		v++;
	int neg = 0;
	if (*v == '-') {
		neg = 1;
		v++;
	}
	int base = (base8 && v[0] == '0' && v[1]) ? 8 : 10;
	if (!*v)
		return -EINVAL;
	int64_t x = 0;
	const char *p = v;
	for (; *p && *p != '.'; p++) {
		int d = *p - '0';
		if (!isdigit((unsigned char)*p) || d >= base || x > (INT64_MAX - d) / base)
			return -EINVAL;
		x = x * base + d;
	}
	if (*p == '.') {
		if (base != 10)
			return -EINVAL;
		for (p++; *p; p++)
			if (!isdigit((unsigned char)*p))
				return -EINVAL;
	}
	*out = neg ? -x : x;
	return 0;
}

/* ---- conversions to and from HTTP headers ---- */

int s3i_put_headers(struct http_headers *h, const struct s3_put_opts *o)
{
	int rc = 0;
	struct buf name = BUF_INIT;
	if (!o)
		return 0;
	if (o->content_type)
		rc = http_headers_set(h, "Content-Type", o->content_type);
	for (size_t i = 0; !rc && o->meta && i < o->meta->n; i++) {
		const char *n = o->meta->v[i].name, *v = o->meta->v[i].value;
		for (const char *p = v; *p && !rc; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
				rc = -EINVAL; /* S3 user metadata is printable ASCII */
		buf_reset(&name);
		if (!rc && strncasecmp(n, S3_META_PREFIX, strlen(S3_META_PREFIX)) != 0)
			rc = buf_appendz(&name, S3_META_PREFIX);
		if (!rc)
			rc = buf_appendz(&name, n);
		if (!rc)
			rc = http_headers_add(h, buf_str(&name), v);
	}
	buf_free(&name);
	return rc;
}

/* A non-negative decimal header value, or -1. */
static int64_t parse_dec(const char *v)
{
	if (!v || !*v)
		return -1;
	int64_t x = 0;
	for (const char *p = v; *p; p++) {
		if (!isdigit((unsigned char)*p) || x > (INT64_MAX - 9) / 10)
			return -1;
		x = x * 10 + (*p - '0');
	}
	return x;
}

/* User metadata of the answer: x-amz-meta-NAME headers, NAME lower-cased. -EINVAL for a name
 * that is not a token, -ENOMEM. */
static int meta_from_headers(struct s3_meta *m, const struct http_headers *h)
{
	size_t pl = strlen(S3_META_PREFIX);
	for (size_t i = 0; i < h->n; i++) {
		if (strncasecmp(h->v[i].name, S3_META_PREFIX, pl) != 0 || !h->v[i].name[pl])
			continue;
		char *n = strdup(h->v[i].name + pl);
		if (!n)
			return -ENOMEM;
		for (char *p = n; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		int rc = s3_meta_add(m, n, h->v[i].value);
		free(n);
		if (rc)
			return rc;
	}
	return 0;
}

int s3i_info_from_headers(struct s3_object_info *info, const struct http_headers *h)
{
	const char *v;
	info->size = parse_dec(http_headers_get(h, "Content-Length"));
	v = http_headers_get(h, "Content-Range");
	if (v) {
		const char *slash = strrchr(v, '/');
		info->size = slash ? parse_dec(slash + 1) : -1;
	}
	v = http_headers_get(h, "Last-Modified");
	info->last_modified = -1;
	if (v) {
		time_t t = curl_getdate(v, NULL);
		if (t != (time_t)-1)
			info->last_modified = (int64_t)t;
	}
	v = http_headers_get(h, "ETag");
	info->etag[0] = '\0';
	if (v)
		s3xml_etag_clean(v, strlen(v), info->etag);
	v = http_headers_get(h, "Content-Type");
	if (v && !(info->content_type = strdup(v)))
		return -ENOMEM;
	return meta_from_headers(&info->meta, h);
}
