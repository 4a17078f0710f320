/*
 * sigv4_canon: the canonical pieces of a SigV4 request (see include/kvsfs/sigv4.h for the
 * rules): URI encoding and decoding, the canonical path (normalised and double-encoded, or
 * S3's single encoding), query parameters and header names/values as sortable name/value lists,
 * and the rendering of the canonical request (raw, or with secret values redacted for logs).
 *
 * Invariants: every list entry owns its strings; secret values (tokens, signatures) are marked
 * when added and wiped when freed; nothing here logs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "kvsfs/array.h"
#include "sigv4_internal.h"

static const char hexdig_upper[] = "0123456789ABCDEF";

static int is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int append_pct(struct buf *out, unsigned char c)
{
	char e[3] = { '%', hexdig_upper[c >> 4], hexdig_upper[c & 15] };
	return buf_append(out, e, 3);
}

int sigv4_uri_encode(struct buf *out, const char *s, size_t n, int keep_slash)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		int rc;
		if (is_unreserved(c) || (keep_slash && c == '/'))
			rc = buf_putc(out, (char)c);
		else
			rc = append_pct(out, c);
		if (rc)
			return rc;
	}
	return 0;
}

/* Appends s[0..n) percent-decoded; malformed escapes are copied literally. */
static int uri_decode(struct buf *out, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%' && i + 2 < n) {
			int h = hexval((unsigned char)s[i + 1]);
			int l = hexval((unsigned char)s[i + 2]);
			if (h >= 0 && l >= 0) {
				c = (char)(h * 16 + l);
				i += 2;
			}
		}
		if (buf_putc(out, c))
			return -ENOMEM;
	}
	return 0;
}

/* Decodes then re-encodes one query name or value. */
static int query_part_canonical(struct buf *out, const char *s, size_t n, struct buf *tmp)
{
	buf_reset(tmp);
	int rc = uri_decode(tmp, s, n);
	if (!rc)
		rc = sigv4_uri_encode(out, buf_str(tmp), tmp->len, 0);
	return rc;
}

void sigv4_kvlist_free(struct kvlist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		if (l->v[i].secret && l->v[i].value)
			OPENSSL_cleanse(l->v[i].value, strlen(l->v[i].value));
		free(l->v[i].name);
		free(l->v[i].value);
	}
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

/* Takes ownership of name and value (frees them on failure). */
int sigv4_kvlist_add(struct kvlist *l, char *name, char *value, int secret)
{
	struct kv *v = NULL;
	if (name && value)
		v = array_grow(l->v, l->n, &l->cap, sizeof(*v), 16);
	if (!v) {
		free(name);
		if (value && secret)
			OPENSSL_cleanse(value, strlen(value));
		free(value);
		return -ENOMEM;
	}
	l->v = v;
	l->v[l->n] = (struct kv){ name, value, secret, l->n };
	l->n++;
	return 0;
}

static int kv_cmp(const void *pa, const void *pb)
{
	const struct kv *a = pa, *b = pb;
	int c = strcmp(a->name, b->name);
	if (c)
		return c;
	return a->order < b->order ? -1 : a->order > b->order;
}

static int kv_cmp_query(const void *pa, const void *pb)
{
	const struct kv *a = pa, *b = pb;
	int c = strcmp(a->name, b->name);
	if (c)
		return c;
	return strcmp(a->value, b->value);
}

void sigv4_kvlist_sort(struct kvlist *l, int by_value)
{
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(l->v[0]), by_value ? kv_cmp_query : kv_cmp);
}

/* Joins entries with the same name (the list is sorted stably, so in the order given). */
int sigv4_merge_repeated(struct kvlist *hl)
{
	size_t w = 0;
	for (size_t i = 0; i < hl->n; i++) {
		if (w && strcmp(hl->v[w - 1].name, hl->v[i].name) == 0) {
			struct kv *d = &hl->v[w - 1];
			size_t a = strlen(d->value), c = strlen(hl->v[i].value);
			char *nv = malloc(a + c + 2);
			if (!nv) {
				/* keep the list consistent for kvlist_free */
				for (size_t k = i; k < hl->n; k++)
					hl->v[w++] = hl->v[k];
				hl->n = w;
				return -ENOMEM;
			}
			memcpy(nv, d->value, a);
			nv[a] = ',';
			memcpy(nv + a + 1, hl->v[i].value, c + 1);
			free(d->value);
			d->value = nv;
			d->secret |= hl->v[i].secret;
			free(hl->v[i].name);
			free(hl->v[i].value);
		} else {
			hl->v[w++] = hl->v[i];
		}
	}
	hl->n = w;
	return 0;
}

/* Adds the caller's query parameters, canonicalised. */
int sigv4_parse_query(struct kvlist *l, const char *q)
{
	struct buf tmp = BUF_INIT;
	int rc = 0;
	while (q && *q && !rc) {
		const char *end = strchr(q, '&');
		size_t n = end ? (size_t)(end - q) : strlen(q);
		if (n > 0) {
			const char *eq = memchr(q, '=', n);
			size_t nl = eq ? (size_t)(eq - q) : n;
			struct buf name = BUF_INIT, value = BUF_INIT;
			rc = query_part_canonical(&name, q, nl, &tmp);
			if (!rc && eq)
				rc = query_part_canonical(&value, eq + 1, n - nl - 1, &tmp);
			/* a caller-supplied token or signature is still kept out of logs */
			int secret = !rc && (strcmp(buf_str(&name), "X-Amz-Security-Token") == 0 ||
					     strcmp(buf_str(&name), "X-Amz-Signature") == 0);
			if (!rc)
				rc = sigv4_kvlist_add(l, buf_steal(&name), buf_steal(&value), secret);
			buf_free(&name);
			buf_free(&value);
		}
		q = end ? end + 1 : NULL;
	}
	buf_free(&tmp);
	return rc;
}

int sigv4_add_query_param(struct kvlist *l, const char *name, const char *value, int secret)
{
	struct buf v = BUF_INIT;
	int rc = sigv4_uri_encode(&v, value, strlen(value), 0);
	if (rc) {
		buf_free(&v);
		return rc;
	}
	return sigv4_kvlist_add(l, strdup(name), buf_steal(&v), secret);
}

/* Checks a header value: no control characters except HT and line folds (CR LF or LF followed by
 * SP/HT). Returns 0 or -EINVAL. */
int sigv4_check_header_value(const char *v)
{
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		if (*p == '\r') {
			if (p[1] != '\n')
				return -EINVAL;
			continue;
		}
		if (*p == '\n') {
			if (p[1] != ' ' && p[1] != '\t')
				return -EINVAL;
			continue;
		}
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return -EINVAL;
	}
	return 0;
}

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Returns the trimmed value with inner whitespace runs collapsed, malloc'd. */
char *sigv4_trimall(const char *v)
{
	size_t n = strlen(v);
	char *o = malloc(n + 1), *w = o;
	if (!o)
		return NULL;
	int pending = 0;
	for (const char *p = v; *p; p++) {
		if (is_ws(*p)) {
			pending = w != o;
			continue;
		}
		if (pending)
			*w++ = ' ';
		pending = 0;
		*w++ = *p;
	}
	*w = '\0';
	return o;
}

/* Lower-cased, trimmed header name, or NULL (errno EINVAL for a bad name, ENOMEM). */
char *sigv4_canon_name(const char *name)
{
	while (*name == ' ' || *name == '\t')
		name++;
	size_t n = strlen(name);
	while (n && (name[n - 1] == ' ' || name[n - 1] == '\t'))
		n--;
	if (n == 0) {
		errno = EINVAL;
		return NULL;
	}
	char *o = malloc(n + 1);
	if (!o) {
		errno = ENOMEM;
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c <= 0x20 || c >= 0x7f || c == ':') {
			free(o);
			errno = EINVAL;
			return NULL;
		}
		o[i] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
	}
	o[n] = '\0';
	return o;
}

int sigv4_header_skipped(const char *lname, unsigned flags, int presign)
{
	static const char *const always[] = {
		"authorization", "user-agent", "expect", "x-amzn-trace-id",
		"x-amz-date", "x-amz-security-token",
	};
	for (size_t i = 0; i < sizeof(always) / sizeof(always[0]); i++)
		if (strcmp(lname, always[i]) == 0)
			return 1;
	if (!presign && (flags & (SIGV4_S3 | SIGV4_CONTENT_SHA256)) &&
	    strcmp(lname, "x-amz-content-sha256") == 0)
		return 1;
	return 0;
}

/* Normalised path per RFC 3986 5.2.4 plus "//" collapsing (botocore's remove_dot_segments). */
static int normalize_path(struct buf *out, const char *p)
{
	size_t n = strlen(p);
	const char *s = p, *end = p + n;
	while (s < end) {
		const char *slash = memchr(s, '/', (size_t)(end - s));
		const char *e = slash ? slash : end;
		size_t len = (size_t)(e - s);
		if (len == 0 || (len == 1 && s[0] == '.')) {
			/* skip */
		} else if (len == 2 && s[0] == '.' && s[1] == '.') {
			if (out->len) {
				char *last = strrchr(out->data, '/');
				out->len = (size_t)(last - out->data);
				out->data[out->len] = '\0';
			}
		} else {
			if (buf_putc(out, '/') || buf_append(out, s, len))
				return -ENOMEM;
		}
		s = slash ? slash + 1 : end;
	}
	if (out->len == 0)
		return buf_putc(out, '/');
	if (n && p[n - 1] == '/')
		return buf_putc(out, '/');
	return 0;
}

/* S3 single encoding: keeps unreserved bytes and '/', keeps valid escapes (upper-case hex, with
 * escaped unreserved bytes decoded), encodes everything else. */
static int s3_encode_path(struct buf *out, const char *p)
{
	for (size_t i = 0; p[i]; i++) {
		unsigned char c = (unsigned char)p[i];
		int rc;
		if (c == '%' && hexval((unsigned char)p[i + 1]) >= 0 &&
		    hexval((unsigned char)p[i + 2]) >= 0) {
			unsigned char d = (unsigned char)(hexval((unsigned char)p[i + 1]) * 16 +
							  hexval((unsigned char)p[i + 2]));
			i += 2;
			rc = is_unreserved(d) ? buf_putc(out, (char)d) : append_pct(out, d);
		} else if (is_unreserved(c) || c == '/') {
			rc = buf_putc(out, (char)c);
		} else {
			rc = append_pct(out, c);
		}
		if (rc)
			return rc;
	}
	return 0;
}

int sigv4_canonical_uri(struct buf *out, const char *path, unsigned flags)
{
	if (!path || !*path)
		path = "/";
	struct buf norm = BUF_INIT;
	const char *src = path;
	int rc = 0;
	if (!(flags & (SIGV4_S3 | SIGV4_NO_NORMALIZE))) {
		rc = normalize_path(&norm, path);
		src = buf_str(&norm);
	}
	if (!rc && src[0] != '/')
		rc = buf_putc(out, '/');
	if (!rc) {
		if (flags & (SIGV4_S3 | SIGV4_SINGLE_ENCODE))
			rc = s3_encode_path(out, src);
		else
			rc = sigv4_uri_encode(out, src, strlen(src), 1);
	}
	buf_free(&norm);
	return rc;
}

int sigv4_valid_payload_hash(const char *h)
{
	size_t n = strlen(h);
	if (n == SIGV4_HEX_LEN) {
		for (size_t i = 0; i < n; i++)
			if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
				return 0;
		return 1;
	}
	if (strcmp(h, SIGV4_UNSIGNED_PAYLOAD) == 0)
		return 1;
	if (strncmp(h, "STREAMING-", 10) == 0) {
		for (size_t i = 0; i < n; i++)
			if (!((h[i] >= 'A' && h[i] <= 'Z') || (h[i] >= '0' && h[i] <= '9') ||
			      h[i] == '-'))
				return 0;
		return 1;
	}
	return 0;
}

int sigv4_valid_token_chars(const char *s, int allow_slash)
{
	if (!s || !*s)
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f || (!allow_slash && *p == '/'))
			return 0;
	return 1;
}

int sigv4_render_creq(struct buf *o, const char *method, const char *uri, const struct kvlist *q,
		      const struct kvlist *h, const char *signed_headers, const char *payload,
		      int redact)
{
	int rc = buf_printf(o, "%s\n%s\n", method, uri);
	for (size_t i = 0; i < q->n && !rc; i++)
		rc = buf_printf(o, "%s%s=%s", i ? "&" : "", q->v[i].name,
				redact && q->v[i].secret ? SIGV4_REDACTED : q->v[i].value);
	if (!rc)
		rc = buf_putc(o, '\n');
	for (size_t i = 0; i < h->n && !rc; i++)
		rc = buf_printf(o, "%s:%s\n", h->v[i].name,
				redact && h->v[i].secret ? SIGV4_REDACTED : h->v[i].value);
	if (!rc)
		rc = buf_printf(o, "\n%s\n%s", signed_headers, payload);
	return rc;
}
