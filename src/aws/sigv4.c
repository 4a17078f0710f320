/*
 * sigv4: AWS Signature Version 4 signing (see include/kvsfs/sigv4.h for the API and the exact
 * canonicalisation rules).
 *
 * Design: one internal pass, sign_common(), builds the canonical request from the wire request
 * (path, query, headers), the string to sign and the signature; the two entry points differ only in
 * which auth parts go into the canonical query (presign) or the canonical headers (header signing)
 * and how the result is rendered. The canonical request is rendered twice from the same parsed
 * pieces: once raw (hashed, kept only on request) and once with secret values replaced by
 * "[REDACTED]" (for logs), so the log text never depends on searching for the secret.
 *
 * Invariants: the secret key is only copied into the "AWS4" + secret buffer of the key derivation,
 * wiped right after; derived keys live in the caller's cache or on the stack (wiped after use).
 * No global state; the caller-owned struct sigv4_key_cache is the only memory kept between calls.
 * Every allocation is checked; failures return -ENOMEM and leave the result empty.
 */
#include "kvsfs/sigv4.h"

#include "kvsfs/buf.h"
#include "kvsfs/log.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define MOD "sigv4"
#define REDACTED "[REDACTED]"

static const char hexdig_lower[] = "0123456789abcdef";
static const char hexdig_upper[] = "0123456789ABCDEF";

/* ---------------------------------------------------------------- small helpers */

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

static void to_hex(const unsigned char *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hexdig_lower[in[i] >> 4];
		out[2 * i + 1] = hexdig_lower[in[i] & 15];
	}
	out[2 * n] = '\0';
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

int sigv4_format_amz_date(time_t t, char out[17])
{
	struct tm tm;
	if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999) {
		out[0] = '\0';
		return -EINVAL;
	}
	if (strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) != 16) {
		out[0] = '\0';
		return -EINVAL;
	}
	return 0;
}

/* ---------------------------------------------------------------- hashing */

int sigv4_hasher_init(struct sigv4_hasher *h)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	h->ctx = NULL;
	if (!ctx)
		return -ENOMEM;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		return -EIO;
	}
	h->ctx = ctx;
	return 0;
}

int sigv4_hasher_update(struct sigv4_hasher *h, const void *data, size_t n)
{
	if (!h->ctx)
		return -EIO;
	if (n == 0)
		return 0;
	return EVP_DigestUpdate(h->ctx, data, n) == 1 ? 0 : -EIO;
}

void sigv4_hasher_free(struct sigv4_hasher *h)
{
	EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
}

int sigv4_hasher_final(struct sigv4_hasher *h, char hex[SIGV4_HEX_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	int rc = -EIO;
	hex[0] = '\0';
	if (h->ctx && EVP_DigestFinal_ex(h->ctx, md, &len) == 1 && len == 32) {
		to_hex(md, 32, hex);
		rc = 0;
	}
	sigv4_hasher_free(h);
	return rc;
}

int sigv4_sha256_hex(const void *data, size_t n, char hex[SIGV4_HEX_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	static const char empty[1] = { 0 };
	hex[0] = '\0';
	if (EVP_Digest(n ? data : empty, n, md, &len, EVP_sha256(), NULL) != 1 || len != 32)
		return -EIO;
	to_hex(md, 32, hex);
	return 0;
}

int sigv4_sha256_fd(int fd, off_t offset, off_t len, char hex[SIGV4_HEX_LEN + 1])
{
	struct sigv4_hasher h;
	size_t bufsz = 1 << 16;
	char *b = malloc(bufsz);
	hex[0] = '\0';
	if (!b)
		return -ENOMEM;
	int rc = sigv4_hasher_init(&h);
	if (rc) {
		free(b);
		return rc;
	}
	off_t pos = offset;
	for (;;) {
		size_t want = bufsz;
		if (len >= 0) {
			off_t left = offset + len - pos;
			if (left <= 0)
				break;
			if ((uintmax_t)left < want)
				want = (size_t)left;
		}
		ssize_t got = pread(fd, b, want, pos);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		if (got == 0) {
			if (len >= 0)
				rc = -EIO; /* shorter than announced */
			break;
		}
		rc = sigv4_hasher_update(&h, b, (size_t)got);
		if (rc)
			break;
		pos += got;
	}
	free(b);
	if (rc) {
		sigv4_hasher_free(&h);
		return rc;
	}
	return sigv4_hasher_final(&h, hex);
}

static int hmac256(const void *key, size_t keylen, const char *msg, size_t n, unsigned char out[32])
{
	unsigned int len = 0;
	if (!HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, n, out, &len) ||
	    len != 32)
		return -EIO;
	return 0;
}

/* ---------------------------------------------------------------- key cache */

void sigv4_key_cache_clear(struct sigv4_key_cache *cache)
{
	if (cache)
		OPENSSL_cleanse(cache, sizeof(*cache));
}

/* Derives (or reuses) kSigning for the scope. */
static int signing_key(const struct sigv4_creds *cr, const char *date, const char *region,
		       const char *service, struct sigv4_key_cache *cache, unsigned char key[32])
{
	unsigned char fp[32];
	unsigned int fplen = 0;
	size_t slen = strlen(cr->secret_access_key);
	int use_cache = cache && strlen(region) < sizeof(cache->region) &&
			strlen(service) < sizeof(cache->service) &&
			strlen(cr->access_key_id) < sizeof(cache->access_key_id);
	if (use_cache) {
		if (EVP_Digest(cr->secret_access_key, slen, fp, &fplen, EVP_sha256(), NULL) != 1)
			return -EIO;
		if (cache->valid && strcmp(cache->date, date) == 0 &&
		    strcmp(cache->region, region) == 0 && strcmp(cache->service, service) == 0 &&
		    strcmp(cache->access_key_id, cr->access_key_id) == 0 &&
		    CRYPTO_memcmp(cache->secret_fp, fp, 32) == 0) {
			memcpy(key, cache->key, 32);
			OPENSSL_cleanse(fp, sizeof(fp));
			return 0;
		}
	}

	int rc = -ENOMEM;
	size_t klen = 4 + slen;
	unsigned char *k0 = malloc(klen);
	unsigned char a[32], b[32];
	if (!k0)
		goto out;
	memcpy(k0, "AWS4", 4);
	memcpy(k0 + 4, cr->secret_access_key, slen);
	rc = hmac256(k0, klen, date, strlen(date), a);
	if (!rc)
		rc = hmac256(a, 32, region, strlen(region), b);
	if (!rc)
		rc = hmac256(b, 32, service, strlen(service), a);
	if (!rc)
		rc = hmac256(a, 32, "aws4_request", 12, key);
	OPENSSL_cleanse(k0, klen);
	free(k0);
	OPENSSL_cleanse(a, sizeof(a));
	OPENSSL_cleanse(b, sizeof(b));
	if (!rc && use_cache) {
		cache->valid = 1;
		snprintf(cache->date, sizeof(cache->date), "%s", date);
		snprintf(cache->region, sizeof(cache->region), "%s", region);
		snprintf(cache->service, sizeof(cache->service), "%s", service);
		snprintf(cache->access_key_id, sizeof(cache->access_key_id), "%s",
			 cr->access_key_id);
		memcpy(cache->secret_fp, fp, 32);
		memcpy(cache->key, key, 32);
	} else if (rc && use_cache) {
		sigv4_key_cache_clear(cache);
	}
out:
	OPENSSL_cleanse(fp, sizeof(fp));
	return rc;
}

/* ---------------------------------------------------------------- canonical pieces */

struct kv {
	char *name;      /* canonical (lower-cased header name / encoded query name) */
	char *value;     /* canonical value */
	int secret;      /* value is redacted in the log rendering */
	size_t order;    /* original position, for a stable sort */
};

struct kvlist {
	struct kv *v;
	size_t n, cap;
};

static void kvlist_free(struct kvlist *l)
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
static int kvlist_add(struct kvlist *l, char *name, char *value, int secret)
{
	if (!name || !value)
		goto fail;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct kv *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			goto fail;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n] = (struct kv){ name, value, secret, l->n };
	l->n++;
	return 0;
fail:
	free(name);
	if (value && secret)
		OPENSSL_cleanse(value, strlen(value));
	free(value);
	return -ENOMEM;
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

static int bad_input(const struct sigv4_params *p, const char *what)
{
	LOG_ERROR(p->log, MOD, "cannot sign request: %s", what);
	return -EINVAL;
}

/* Adds the caller's query parameters, canonicalised. */
static int parse_query(struct kvlist *l, const char *q)
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
				rc = kvlist_add(l, buf_steal(&name), buf_steal(&value), secret);
			buf_free(&name);
			buf_free(&value);
		}
		q = end ? end + 1 : NULL;
	}
	buf_free(&tmp);
	return rc;
}

static int add_query_param(struct kvlist *l, const char *name, const char *value, int secret)
{
	struct buf v = BUF_INIT;
	int rc = sigv4_uri_encode(&v, value, strlen(value), 0);
	if (rc) {
		buf_free(&v);
		return rc;
	}
	return kvlist_add(l, strdup(name), buf_steal(&v), secret);
}

/* Checks a header value: no control characters except HT and line folds (CR LF or LF followed by
 * SP/HT). Returns 0 or -EINVAL. */
static int check_header_value(const char *v)
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
static char *trimall(const char *v)
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
static char *canon_name(const char *name)
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

static int header_skipped(const char *lname, unsigned flags, int presign)
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

static int canonical_uri(struct buf *out, const char *path, unsigned flags)
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

static int valid_payload_hash(const char *h)
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

static int valid_token_chars(const char *s, int allow_slash)
{
	if (!s || !*s)
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f || (!allow_slash && *p == '/'))
			return 0;
	return 1;
}

static int render_creq(struct buf *o, const char *method, const char *uri, const struct kvlist *q,
		       const struct kvlist *h, const char *signed_headers, const char *payload,
		       int redact)
{
	int rc = buf_printf(o, "%s\n%s\n", method, uri);
	for (size_t i = 0; i < q->n && !rc; i++)
		rc = buf_printf(o, "%s%s=%s", i ? "&" : "", q->v[i].name,
				redact && q->v[i].secret ? REDACTED : q->v[i].value);
	if (!rc)
		rc = buf_putc(o, '\n');
	for (size_t i = 0; i < h->n && !rc; i++)
		rc = buf_printf(o, "%s:%s\n", h->v[i].name,
				redact && h->v[i].secret ? REDACTED : h->v[i].value);
	if (!rc)
		rc = buf_printf(o, "\n%s\n%s", signed_headers, payload);
	return rc;
}

void sigv4_result_free(struct sigv4_result *r)
{
	for (size_t i = 0; i < 4; i++) {
		if (r->values_[i]) {
			OPENSSL_cleanse(r->values_[i], strlen(r->values_[i]));
			free(r->values_[i]);
		}
	}
	if (r->authorization)
		OPENSSL_cleanse(r->authorization, strlen(r->authorization));
	if (r->query)
		OPENSSL_cleanse(r->query, strlen(r->query));
	if (r->canonical_request)
		OPENSSL_cleanse(r->canonical_request, strlen(r->canonical_request));
	free(r->authorization);
	free(r->query);
	free(r->signed_headers);
	free(r->credential_scope);
	free(r->canonical_request_log);
	free(r->string_to_sign);
	free(r->canonical_request);
	OPENSSL_cleanse(r, sizeof(*r));
}

static int add_out_header(struct sigv4_result *out, const char *name, const char *value)
{
	char *v = strdup(value);
	if (!v)
		return -ENOMEM;
	out->values_[out->n_add] = v;
	out->add[out->n_add].name = name;
	out->add[out->n_add].value = v;
	out->n_add++;
	return 0;
}

/* State of one signature while it is being computed. */
struct signing {
	const struct sigv4_request *req;
	const struct sigv4_creds *cr;
	const struct sigv4_params *p;
	unsigned flags;
	int presign;
	const char *token;   /* NULL when there is none */
	int sign_token;      /* token goes into the canonical request */
	const char *payload; /* payload hash */
	unsigned expires;
	char date[9];
	struct kvlist hl;    /* canonical headers, sorted and merged */
	struct kvlist ql;    /* canonical query parameters, sorted */
};

static int add_content_sha256(const struct signing *s)
{
	return !s->presign && (s->flags & (SIGV4_S3 | SIGV4_CONTENT_SHA256));
}

/* Checks everything that does not depend on the headers. Returns 0 or -EINVAL (logged). */
static int validate(const struct signing *s)
{
	const struct sigv4_request *req = s->req;
	const struct sigv4_params *p = s->p;
	if (!req->method || !valid_token_chars(req->method, 1))
		return bad_input(p, "missing or malformed method");
	if (!valid_token_chars(s->cr->access_key_id, 0) || !s->cr->secret_access_key ||
	    !*s->cr->secret_access_key)
		return bad_input(p, "missing or malformed credentials");
	if (s->token && check_header_value(s->token))
		return bad_input(p, "session token has control characters");
	if (!valid_token_chars(p->region, 0) || !valid_token_chars(p->service, 0))
		return bad_input(p, "missing or malformed region or service");
	if (!valid_payload_hash(s->payload))
		return bad_input(p, "payload hash is not 64 lowercase hex digits or a literal");
	if (s->presign && s->expires > SIGV4_MAX_EXPIRES)
		return bad_input(p, "presign expiry above 7 days");
	if (req->n_headers && !req->headers)
		return bad_input(p, "header count without headers");
	return 0;
}

/* Joins entries with the same name (the list is sorted stably, so in the order given). */
static int merge_repeated(struct kvlist *hl)
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

/* Builds s->hl from the caller's headers plus the signer's own. */
static int canonical_headers(struct signing *s, const char *amz_date)
{
	const struct sigv4_params *p = s->p;
	int have_host = 0, rc = 0;
	for (size_t i = 0; i < s->req->n_headers; i++) {
		const struct sigv4_header *h = &s->req->headers[i];
		if (!h->name || !h->value)
			return bad_input(p, "header without name or value");
		char *ln = canon_name(h->name);
		if (!ln)
			return errno == ENOMEM ? -ENOMEM : bad_input(p, "malformed header name");
		if (check_header_value(h->value)) {
			free(ln);
			return bad_input(p, "header value has a control character or bare newline");
		}
		if (header_skipped(ln, s->flags, s->presign)) {
			free(ln);
			continue;
		}
		if (strcmp(ln, "host") == 0)
			have_host = 1;
		int secret = log_header_is_secret(ln);
		rc = kvlist_add(&s->hl, ln, trimall(h->value), secret);
		if (rc)
			return rc;
	}
	if (!have_host)
		return bad_input(p, "no Host header");
	if (!s->presign) {
		rc = kvlist_add(&s->hl, strdup("x-amz-date"), strdup(amz_date), 0);
		if (!rc && s->sign_token)
			rc = kvlist_add(&s->hl, strdup("x-amz-security-token"), trimall(s->token),
					1);
		if (!rc && add_content_sha256(s))
			rc = kvlist_add(&s->hl, strdup("x-amz-content-sha256"), strdup(s->payload),
					0);
		if (rc)
			return rc;
	}
	if (s->hl.n > 1)
		qsort(s->hl.v, s->hl.n, sizeof(s->hl.v[0]), kv_cmp);
	return merge_repeated(&s->hl);
}

/* Builds s->ql: the caller's parameters plus, when presigning, the auth parameters. */
static int canonical_query(struct signing *s, const struct sigv4_result *out)
{
	int rc = parse_query(&s->ql, s->req->query);
	if (!rc && s->presign) {
		char num[16];
		struct buf cred = BUF_INIT;
		snprintf(num, sizeof(num), "%u", s->expires);
		rc = buf_printf(&cred, "%s/%s", s->cr->access_key_id, out->credential_scope);
		if (!rc)
			rc = add_query_param(&s->ql, "X-Amz-Algorithm", SIGV4_ALGORITHM, 0);
		if (!rc)
			rc = add_query_param(&s->ql, "X-Amz-Credential", buf_str(&cred), 0);
		if (!rc)
			rc = add_query_param(&s->ql, "X-Amz-Date", out->amz_date, 0);
		if (!rc)
			rc = add_query_param(&s->ql, "X-Amz-Expires", num, 0);
		if (!rc)
			rc = add_query_param(&s->ql, "X-Amz-SignedHeaders", out->signed_headers, 0);
		if (!rc && s->sign_token)
			rc = add_query_param(&s->ql, "X-Amz-Security-Token", s->token, 1);
		buf_free(&cred);
	}
	if (!rc && s->ql.n > 1)
		qsort(s->ql.v, s->ql.n, sizeof(s->ql.v[0]), kv_cmp_query);
	return rc;
}

/* Canonical request (raw and for logs), string to sign and signature. */
static int compute_signature(const struct signing *s, struct sigv4_key_cache *cache,
			     struct sigv4_result *out)
{
	struct buf uri = BUF_INIT, creq = BUF_INIT, logreq = BUF_INIT, sts = BUF_INIT;
	unsigned char key[32], sig[32];
	char hash[SIGV4_HEX_LEN + 1];
	const char *m = s->req->method;
	int rc = canonical_uri(&uri, s->req->path, s->flags);
	if (!rc)
		rc = render_creq(&creq, m, buf_str(&uri), &s->ql, &s->hl, out->signed_headers,
				 s->payload, 0);
	if (!rc)
		rc = render_creq(&logreq, m, buf_str(&uri), &s->ql, &s->hl, out->signed_headers,
				 s->payload, 1);
	if (!rc)
		rc = sigv4_sha256_hex(creq.data, creq.len, hash);
	if (!rc)
		rc = buf_printf(&sts, "%s\n%s\n%s\n%s", SIGV4_ALGORITHM, out->amz_date,
				out->credential_scope, hash);
	if (!rc)
		rc = signing_key(s->cr, s->date, s->p->region, s->p->service, cache, key);
	if (!rc)
		rc = hmac256(key, 32, sts.data, sts.len, sig);
	OPENSSL_cleanse(key, sizeof(key));
	if (!rc) {
		to_hex(sig, 32, out->signature);
		out->canonical_request_log = buf_steal(&logreq);
		out->string_to_sign = buf_steal(&sts);
		if (s->flags & SIGV4_KEEP_CANONICAL)
			out->canonical_request = buf_steal(&creq);
		if (!out->canonical_request_log || !out->string_to_sign ||
		    ((s->flags & SIGV4_KEEP_CANONICAL) && !out->canonical_request))
			rc = -ENOMEM;
	}
	OPENSSL_cleanse(sig, sizeof(sig));
	if (creq.data)
		OPENSSL_cleanse(creq.data, creq.len);
	buf_free(&uri);
	buf_free(&creq);
	buf_free(&logreq);
	buf_free(&sts);
	return rc;
}

/* Presign output: caller query, auth parameters in botocore's order, signature. */
static int render_presigned_query(const struct signing *s, struct sigv4_result *out)
{
	const char *q = s->req->query && *s->req->query ? s->req->query : NULL;
	struct buf b = BUF_INIT, cred = BUF_INIT;
	int rc = buf_printf(&b, "%s%sX-Amz-Algorithm=%s&X-Amz-Credential=", q ? q : "",
			    q ? "&" : "", SIGV4_ALGORITHM);
	if (!rc)
		rc = buf_printf(&cred, "%s/%s", s->cr->access_key_id, out->credential_scope);
	if (!rc)
		rc = sigv4_uri_encode(&b, cred.data, cred.len, 0);
	if (!rc)
		rc = buf_printf(&b, "&X-Amz-Date=%s&X-Amz-Expires=%u&X-Amz-SignedHeaders=",
				out->amz_date, s->expires);
	if (!rc)
		rc = sigv4_uri_encode(&b, out->signed_headers, strlen(out->signed_headers), 0);
	if (!rc && s->token) {
		rc = buf_appendz(&b, "&X-Amz-Security-Token=");
		if (!rc)
			rc = sigv4_uri_encode(&b, s->token, strlen(s->token), 0);
	}
	if (!rc)
		rc = buf_printf(&b, "&X-Amz-Signature=%s", out->signature);
	if (!rc && !(out->query = buf_steal(&b)))
		rc = -ENOMEM;
	if (b.data)
		OPENSSL_cleanse(b.data, b.len);
	buf_free(&b);
	buf_free(&cred);
	return rc;
}

/* Header output: X-Amz-Security-Token, X-Amz-Date, x-amz-content-sha256, Authorization. */
static int render_auth_headers(const struct signing *s, struct sigv4_result *out)
{
	struct buf b = BUF_INIT;
	int rc = 0;
	if (s->token)
		rc = add_out_header(out, "X-Amz-Security-Token", s->token);
	if (!rc)
		rc = add_out_header(out, "X-Amz-Date", out->amz_date);
	if (!rc && add_content_sha256(s))
		rc = add_out_header(out, "x-amz-content-sha256", s->payload);
	if (!rc)
		rc = buf_printf(&b, "%s Credential=%s/%s, SignedHeaders=%s, Signature=%s",
				SIGV4_ALGORITHM, s->cr->access_key_id, out->credential_scope,
				out->signed_headers, out->signature);
	if (!rc && !(out->authorization = buf_steal(&b)))
		rc = -ENOMEM;
	if (!rc)
		rc = add_out_header(out, "Authorization", out->authorization);
	if (b.data)
		OPENSSL_cleanse(b.data, b.len);
	buf_free(&b);
	return rc;
}

/* The shared signing pass. presign selects query-string auth. */
static int sign_common(const struct sigv4_request *req, const struct sigv4_creds *cr,
		       const struct sigv4_params *p, struct sigv4_key_cache *cache,
		       struct sigv4_result *out, int presign)
{
	memset(out, 0, sizeof(*out));
	if (!req || !cr || !p)
		return -EINVAL;
	struct signing s = {
		.req = req,
		.cr = cr,
		.p = p,
		.flags = p->flags,
		.presign = presign,
		.token = cr->session_token && *cr->session_token ? cr->session_token : NULL,
		.payload = req->payload_hash ? req->payload_hash : SIGV4_EMPTY_SHA256,
		.expires = p->expires ? p->expires : 3600,
	};
	s.sign_token = s.token && !(s.flags & SIGV4_TOKEN_UNSIGNED);
	int rc = validate(&s);
	if (rc)
		return rc;
	if (sigv4_format_amz_date(p->now, out->amz_date))
		return bad_input(p, "time out of range");
	memcpy(s.date, out->amz_date, 8);
	s.date[8] = '\0';

	struct buf b = BUF_INIT;
	rc = canonical_headers(&s, out->amz_date);
	for (size_t i = 0; i < s.hl.n && !rc; i++)
		rc = buf_printf(&b, "%s%s", i ? ";" : "", s.hl.v[i].name);
	if (!rc && !(out->signed_headers = buf_steal(&b)))
		rc = -ENOMEM;
	if (!rc && buf_printf(&b, "%s/%s/%s/aws4_request", s.date, p->region, p->service))
		rc = -ENOMEM;
	if (!rc && !(out->credential_scope = buf_steal(&b)))
		rc = -ENOMEM;
	if (!rc)
		rc = canonical_query(&s, out);
	if (!rc)
		rc = compute_signature(&s, cache, out);
	if (!rc)
		rc = presign ? render_presigned_query(&s, out) : render_auth_headers(&s, out);
	if (!rc && log_enabled(p->log, LOG_LEVEL_DEBUG))
		LOG_DEBUG(p->log, MOD, "canonical request (redacted):\n%s\nstring to sign:\n%s",
			  out->canonical_request_log, out->string_to_sign);
	kvlist_free(&s.hl);
	kvlist_free(&s.ql);
	buf_free(&b);
	if (rc)
		sigv4_result_free(out);
	return rc;
}

int sigv4_sign_headers(const struct sigv4_request *req, const struct sigv4_creds *creds,
		       const struct sigv4_params *params, struct sigv4_key_cache *cache,
		       struct sigv4_result *out)
{
	return sign_common(req, creds, params, cache, out, 0);
}

int sigv4_presign(const struct sigv4_request *req, const struct sigv4_creds *creds,
		  const struct sigv4_params *params, struct sigv4_key_cache *cache,
		  struct sigv4_result *out)
{
	return sign_common(req, creds, params, cache, out, 1);
}
