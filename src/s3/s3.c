/*
 * s3: the S3 service client (see include/kvsfs/s3.h for the contract).
 *
 * Design: each operation builds the wire URL (base + '/' + sigv4_uri_encode(key, keep_slash=1)
 * [+ '?' + query with values encoded by sigv4_uri_encode(keep_slash=0)]), its fixed headers
 * (Content-MD5, x-amz-meta-*, x-amz-copy-source, ...) and hands one struct awsreq to
 * awsreq_perform(), which signs every attempt. All requests go through run(), the one place that
 * copies the typed error out and logs the single failure line. Upload bodies are hashed in one
 * pread pass (MD5 for Content-MD5 and the ETag check, SHA-256 for x-amz-content-sha256) and then
 * streamed with pread from a cursor that the rewind callback resets, so retries resend the same
 * bytes. XML replies are read into bounded buffers and parsed by s3xml.
 *
 * Invariants: the client is immutable after s3_client_new (thread-safe); no secret reaches the
 * log (lines name the operation, s3://bucket/key with control bytes replaced, and awserr_format);
 * every failure returns -err->err with *err filled.
 */
#include "kvsfs/s3.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kvsfs/buf.h"
#include "kvsfs/log.h"
#include "kvsfs/sigv4.h"

#define MOD "s3"
#define META_PREFIX "x-amz-meta-"

struct s3_client {
	const struct awsreq_ctx *aws;
	struct log_ctx *log;
	char *endpoint;   /* scheme://host[:port], no trailing '/' */
	char *bucket;
	char *base;       /* URL prefix before "/key": path-style endpoint/bucket; else scheme://bucket.host */
	int path_style;
	int page_size;
};

/* ---- small helpers ---- */

/* A key made safe for one log line: control bytes become '?', long keys are cut. */
static void key_for_log(const char *key, char *out, size_t n)
{
	size_t w = 0;
	if (!key)
		key = "";
	for (size_t i = 0; key[i] && w + 4 < n; i++) {
		unsigned char ch = (unsigned char)key[i];
		out[w++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	if (key[0] && strlen(key) > w && w + 4 >= n && n > 4) {
		memcpy(out + w, "...", 3);
		w += 3;
	}
	out[w] = '\0';
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static void copy_err(struct awserr *dst, const struct awserr *src)
{
	if (dst)
		*dst = *src;
}

/* Fails with a caller-decided errno: fills err, logs one line. */
static int fail(struct s3_client *c, const char *op, const char *key, int e, const char *detail,
		struct awserr *err)
{
	struct awserr ae;
	char kl[512], line[768];
	awserr_clear(&ae);
	awserr_set_errno(&ae, e, detail);
	key_for_log(key, kl, sizeof(kl));
	LOG_ERROR(c->log, MOD, "%s s3://%s/%s failed: %s", op, c->bucket, kl,
		  awserr_format(&ae, line, sizeof(line)));
	copy_err(err, &ae);
	return -e;
}

enum { QUIET_NONE = 0, QUIET_ENOENT = 1, QUIET_ALL = 2 };

/* Performs one signed request. On failure copies the typed error into *err and logs one line
 * (debug only for ENOENT with QUIET_ENOENT, or for any failure with QUIET_ALL). resp belongs to
 * the caller (freed by it, also on failure). */
static int run(struct s3_client *c, const char *op, const char *key, struct awsreq *r,
	       struct http_response *resp, int quiet, struct awserr *err)
{
	r->service = "s3";
	r->s3 = 1;
	int rc = awsreq_perform(c->aws, r, resp);
	if (rc == 0) {
		if (err)
			awserr_clear(err);
		return 0;
	}
	char kl[512], line[768];
	key_for_log(key, kl, sizeof(kl));
	int lvl = LOG_LEVEL_ERROR;
	if (quiet == QUIET_ALL || (quiet == QUIET_ENOENT && resp->err.err == ENOENT))
		lvl = LOG_LEVEL_DEBUG;
	log_msg(c->log, lvl, MOD, "%s s3://%s/%s failed: %s", op, c->bucket, kl,
		awserr_format(&resp->err, line, sizeof(line)));
	copy_err(err, &resp->err);
	return rc;
}

/* URL for key (NULL: the bucket itself) and query (NULL: none). */
static int build_url(const struct s3_client *c, const char *key, const char *query, struct buf *u)
{
	int rc = buf_appendz(u, c->base);
	if (!rc && key) {
		rc = buf_putc(u, '/');
		if (!rc)
			rc = sigv4_uri_encode(u, key, strlen(key), 1);
	} else if (!rc && !c->path_style) {
		rc = buf_putc(u, '/');
	}
	if (!rc && query && *query) {
		rc = buf_putc(u, '?');
		if (!rc)
			rc = buf_appendz(u, query);
	}
	return rc;
}

/* Appends "&name=value" (or "name=value" when q is empty), value URI-encoded. */
static int q_add(struct buf *q, const char *name, const char *value)
{
	int rc = 0;
	if (q->len)
		rc = buf_putc(q, '&');
	if (!rc)
		rc = buf_appendz(q, name);
	if (!rc)
		rc = buf_putc(q, '=');
	if (!rc && value)
		rc = sigv4_uri_encode(q, value, strlen(value), 0);
	return rc;
}

/* A usable key: 1..1024 bytes and no "." or ".." path segment (libcurl removes dot segments from
 * the wire path, which would break the signature and address another key; a filesystem name is
 * never "." or ".." anyway). */
static int valid_key(const char *key)
{
	if (!key || !*key || strlen(key) > 1024)
		return 0;
	for (const char *s = key;;) {
		size_t n = strcspn(s, "/");
		if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
			return 0;
		if (!s[n])
			return 1;
		s += n + 1;
	}
}

static void bin_to_hex(const unsigned char *b, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[b[i] >> 4];
		out[2 * i + 1] = hx[b[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hex_to_bin(const char *s, unsigned char *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int v = 0;
		for (int k = 0; k < 2; k++) {
			char ch = s[2 * i + (size_t)k];
			int d;
			if (ch >= '0' && ch <= '9')
				d = ch - '0';
			else if (ch >= 'a' && ch <= 'f')
				d = ch - 'a' + 10;
			else if (ch >= 'A' && ch <= 'F')
				d = ch - 'A' + 10;
			else
				return -EINVAL;
			v = v * 16 + d;
		}
		out[i] = (unsigned char)v;
	}
	return s[2 * n] == '\0' ? 0 : -EINVAL;
}

/* ---- hashing ---- */

struct digests {
	unsigned char md5[16];
	char md5_hex[33];
	char md5_b64[32];
	char sha_hex[SIGV4_HEX_LEN + 1];
};

static int md5_finish(EVP_MD_CTX *m, struct digests *d, int corrupt)
{
	unsigned int ml = 0;
	if (EVP_DigestFinal_ex(m, d->md5, &ml) != 1 || ml != 16)
		return -EIO;
	bin_to_hex(d->md5, 16, d->md5_hex);
	unsigned char md[16];
	memcpy(md, d->md5, 16);
	if (corrupt)
		md[0] ^= 0xff;
	EVP_EncodeBlock((unsigned char *)d->md5_b64, md, 16);
	return 0;
}

static int hash_mem(const void *data, size_t len, int corrupt, struct digests *d)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	int rc = -EIO;
	if (!m)
		return -ENOMEM;
	if (EVP_DigestInit_ex(m, EVP_md5(), NULL) == 1 &&
	    (len == 0 || EVP_DigestUpdate(m, data, len) == 1))
		rc = md5_finish(m, d, corrupt);
	EVP_MD_CTX_free(m);
	if (!rc)
		rc = sigv4_sha256_hex(data, len, d->sha_hex);
	return rc;
}

/* One pread pass over [off, off + len): MD5 and SHA-256. */
static int hash_fd(int fd, off_t off, off_t len, int corrupt, struct digests *d)
{
	enum { CHUNK = 256 * 1024 };
	struct sigv4_hasher sh = { 0 };
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	unsigned char *b = malloc(CHUNK);
	int rc = 0;
	if (!m || !b) {
		rc = -ENOMEM;
		goto out;
	}
	if (EVP_DigestInit_ex(m, EVP_md5(), NULL) != 1) {
		rc = -EIO;
		goto out;
	}
	rc = sigv4_hasher_init(&sh);
	off_t done = 0;
	while (!rc && done < len) {
		size_t want = (size_t)((len - done) < CHUNK ? (len - done) : CHUNK);
		ssize_t got = pread(fd, b, want, off + done);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
		} else if (got == 0) {
			rc = -EIO; /* file shorter than the range */
		} else {
			if (EVP_DigestUpdate(m, b, (size_t)got) != 1)
				rc = -EIO;
			else
				rc = sigv4_hasher_update(&sh, b, (size_t)got);
			done += got;
		}
	}
	if (!rc)
		rc = sigv4_hasher_final(&sh, d->sha_hex);
	if (!rc)
		rc = md5_finish(m, d, corrupt);
out:
	sigv4_hasher_free(&sh);
	EVP_MD_CTX_free(m);
	free(b);
	return rc;
}

/* ---- fd body ---- */

struct fd_body {
	int fd;
	off_t off, len, pos;
};

static ssize_t fd_read(void *arg, void *dst, size_t n)
{
	struct fd_body *b = arg;
	if (b->pos >= b->len)
		return 0;
	if ((off_t)n > b->len - b->pos)
		n = (size_t)(b->len - b->pos);
	for (;;) {
		ssize_t got = pread(b->fd, dst, n, b->off + b->pos);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		if (got == 0)
			return -EIO; /* the file shrank since it was hashed */
		b->pos += got;
		return got;
	}
}

static int fd_rewind(void *arg)
{
	struct fd_body *b = arg;
	b->pos = 0;
	return 0;
}

/* ---- headers ---- */

static int add_put_headers(struct http_headers *h, const struct s3_put_opts *o)
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
		if (!rc && strncasecmp(n, META_PREFIX, strlen(META_PREFIX)) != 0)
			rc = buf_appendz(&name, META_PREFIX);
		if (!rc)
			rc = buf_appendz(&name, n);
		if (!rc)
			rc = http_headers_add(h, buf_str(&name), v);
	}
	buf_free(&name);
	return rc;
}

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

/* Fills info from response headers (size from Content-Range's total when present). */
static int info_from_headers(struct s3_object_info *info, const struct http_headers *h)
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
	size_t pl = strlen(META_PREFIX);
	for (size_t i = 0; i < h->n; i++) {
		if (strncasecmp(h->v[i].name, META_PREFIX, pl) != 0 || !h->v[i].name[pl])
			continue;
		char *n = strdup(h->v[i].name + pl);
		if (!n)
			return -ENOMEM;
		for (char *p = n; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		int rc = http_headers_add(&info->meta, n, h->v[i].value);
		free(n);
		if (rc)
			return rc;
	}
	return 0;
}

void s3_object_info_free(struct s3_object_info *info)
{
	if (!info)
		return;
	free(info->content_type);
	http_headers_free(&info->meta);
	memset(info, 0, sizeof(*info));
	info->size = -1;
	info->last_modified = -1;
}

static void info_init(struct s3_object_info *info)
{
	memset(info, 0, sizeof(*info));
	info->size = -1;
	info->last_modified = -1;
}

const char *s3_meta_get(const struct s3_object_info *info, const char *name)
{
	return http_headers_get(&info->meta, name);
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

/* ---- client ---- */

int s3_client_new(const struct s3_client_opts *o, struct s3_client **out)
{
	struct log_ctx *lg = o && o->aws ? o->aws->log : NULL;
	*out = NULL;
	if (!o || !o->aws || !o->endpoint || !o->bucket) {
		LOG_ERROR(lg, MOD, "S3 client needs an AWS context, an endpoint and a bucket");
		return -EINVAL;
	}
	size_t bl = strlen(o->bucket);
	if (bl < 3 || bl > 63 || strspn(o->bucket, "abcdefghijklmnopqrstuvwxyz0123456789.-_") != bl) {
		LOG_ERROR(lg, MOD, "invalid bucket name (3-63 characters: a-z, 0-9, '.', '-')");
		return -EINVAL;
	}
	const char *e = o->endpoint;
	size_t sl;
	if (strncasecmp(e, "https://", 8) == 0)
		sl = 8;
	else if (strncasecmp(e, "http://", 7) == 0)
		sl = 7;
	else {
		LOG_ERROR(lg, MOD, "S3 endpoint must be an http:// or https:// URL");
		return -EINVAL;
	}
	size_t el = strlen(e);
	while (el > sl && e[el - 1] == '/')
		el--;
	size_t hl = strcspn(e + sl, "/?#@");
	if (hl == 0 || sl + hl != el) {
		LOG_ERROR(lg, MOD, "S3 endpoint must be scheme://host[:port] without a path");
		return -EINVAL;
	}
	if (!o->path_style && strchr(o->bucket, '_')) {
		LOG_ERROR(lg, MOD, "bucket %s cannot be used with virtual-host addressing", o->bucket);
		return -EINVAL;
	}
	struct s3_client *c = calloc(1, sizeof(*c));
	struct buf base = BUF_INIT;
	if (!c)
		return -ENOMEM;
	c->aws = o->aws;
	c->log = o->aws->log;
	c->path_style = o->path_style;
	c->page_size = o->list_page_size > 0 && o->list_page_size <= 1000 ? o->list_page_size : 1000;
	c->endpoint = strndup(e, el);
	c->bucket = strdup(o->bucket);
	int rc = 0;
	if (!c->endpoint || !c->bucket)
		rc = -ENOMEM;
	else if (o->path_style)
		rc = buf_printf(&base, "%s/%s", c->endpoint, c->bucket);
	else
		rc = buf_printf(&base, "%.*s%s.%.*s", (int)sl, e, c->bucket, (int)hl, e + sl);
	if (rc) {
		buf_free(&base);
		s3_client_free(c);
		return -ENOMEM;
	}
	c->base = buf_steal(&base);
	if (!c->base) {
		s3_client_free(c);
		return -ENOMEM;
	}
	*out = c;
	return 0;
}

void s3_client_free(struct s3_client *c)
{
	if (!c)
		return;
	free(c->endpoint);
	free(c->bucket);
	free(c->base);
	free(c);
}

const char *s3_client_bucket(const struct s3_client *c)
{
	return c->bucket;
}

/* ---- bucket ---- */

int s3_head_bucket(struct s3_client *c, struct awserr *err)
{
	struct buf url = BUF_INIT;
	struct http_response resp;
	struct awserr ae;
	int rc;
	awserr_clear(&ae);
	if (build_url(c, NULL, NULL, &url)) {
		buf_free(&url);
		return fail(c, "HeadBucket", "", ENOMEM, "out of memory", err);
	}
	struct awsreq r = { .method = "HEAD", .url = url.data, .idempotent = 1 };
	rc = run(c, "HeadBucket", "", &r, &resp, QUIET_ALL, &ae);
	http_response_free(&resp);
	buf_free(&url);
	if (rc == 0) {
		copy_err(err, &ae);
		return 0;
	}
	char msg[AWSERR_MSG_MAX], line[768];
	if (ae.err == ENOENT)
		snprintf(msg, sizeof(msg), "bucket %s does not exist at %s", c->bucket, c->endpoint);
	else if (ae.err == EACCES)
		snprintf(msg, sizeof(msg), "access to bucket %s at %s denied: check the credentials "
			 "and the bucket policy", c->bucket, c->endpoint);
	else
		snprintf(msg, sizeof(msg), "bucket %s at %s cannot be checked", c->bucket,
			 c->endpoint);
	if (!ae.message[0]) {
		snprintf(ae.message, sizeof(ae.message), "%s", msg);
		LOG_ERROR(c->log, MOD, "HeadBucket failed: %s", awserr_format(&ae, line, sizeof(line)));
	} else {
		LOG_ERROR(c->log, MOD, "%s (%s)", msg, awserr_format(&ae, line, sizeof(line)));
	}
	copy_err(err, &ae);
	return -ae.err;
}

/* ---- objects ---- */

static int head_object(struct s3_client *c, const char *key, struct s3_object_info *info,
		       int quiet, struct awserr *err)
{
	struct buf url = BUF_INIT;
	struct http_response resp;
	info_init(info);
	if (!valid_key(key))
		return fail(c, "HeadObject", key, EINVAL, "invalid key", err);
	if (build_url(c, key, NULL, &url)) {
		buf_free(&url);
		return fail(c, "HeadObject", key, ENOMEM, "out of memory", err);
	}
	struct awsreq r = { .method = "HEAD", .url = url.data, .idempotent = 1 };
	int rc = run(c, "HeadObject", key, &r, &resp, quiet, err);
	if (rc == 0 && info_from_headers(info, &resp.headers))
		rc = fail(c, "HeadObject", key, ENOMEM, "out of memory", err);
	http_response_free(&resp);
	buf_free(&url);
	return rc;
}

/* A ranged GET must answer 206 with Content-Range "bytes FIRST-LAST/TOTAL" for exactly the
 * requested bytes (clipped at the end of the object); a server that ignored the Range header
 * (200, whole object) would otherwise hand the caller bytes from the wrong offset. */
static int range_matches(const struct http_response *resp, int64_t offset, int64_t len)
{
	const char *v = http_headers_get(&resp->headers, "Content-Range");
	long long first, last, total;
	int used = 0;
	if (resp->status != 206 || !v)
		return 0;
	if (sscanf(v, "bytes %lld-%lld/%lld%n", &first, &last, &total, &used) != 3 ||
	    v[used] != '\0')
		return 0;
	long long want_last = len > 0 && offset + len < total ? offset + len - 1 : total - 1;
	return first == offset && last == want_last && (uint64_t)(last - first + 1) ==
	       resp->body_bytes;
}

int s3_head_object(struct s3_client *c, const char *key, struct s3_object_info *info,
		   struct awserr *err)
{
	return head_object(c, key, info, QUIET_ENOENT, err);
}

int s3_get_object(struct s3_client *c, const char *key, int64_t offset, int64_t len,
		  http_body_fn body_fn, http_reset_fn reset_fn, void *arg,
		  struct s3_object_info *info, struct awserr *err)
{
	struct buf url = BUF_INIT;
	struct http_headers h = HTTP_HEADERS_INIT;
	struct http_response resp;
	char range[64] = "";
	if (info)
		info_init(info);
	if (!valid_key(key))
		return fail(c, "GetObject", key, EINVAL, "invalid key", err);
	if (offset < 0 || len == 0)
		return fail(c, "GetObject", key, EINVAL, "invalid range", err);
	if (len > 0 && offset > INT64_MAX - len)
		return fail(c, "GetObject", key, EINVAL, "invalid range", err);
	if (len > 0)
		snprintf(range, sizeof(range), "bytes=%lld-%lld", (long long)offset,
			 (long long)(offset + len - 1));
	else if (offset > 0)
		snprintf(range, sizeof(range), "bytes=%lld-", (long long)offset);
	if (build_url(c, key, NULL, &url) || (range[0] && http_headers_add(&h, "Range", range))) {
		buf_free(&url);
		http_headers_free(&h);
		return fail(c, "GetObject", key, ENOMEM, "out of memory", err);
	}
	struct awsreq r = {
		.method = "GET", .url = url.data, .headers = &h, .idempotent = 1,
		.body_fn = body_fn, .reset_fn = reset_fn, .body_arg = arg,
	};
	int rc = run(c, "GetObject", key, &r, &resp, QUIET_NONE, err);
	if (rc == 0 && range[0] && !range_matches(&resp, offset, len))
		rc = fail(c, "GetObject", key, EIO, "the answer is not the requested range", err);
	if (rc == 0 && info && info_from_headers(info, &resp.headers))
		rc = fail(c, "GetObject", key, ENOMEM, "out of memory", err);
	http_response_free(&resp);
	http_headers_free(&h);
	buf_free(&url);
	return rc;
}

/* Checks the ETag header of an upload answer against the MD5 sent. */
static int check_etag(struct s3_client *c, const char *op, const char *key,
		      const struct http_response *resp, const struct digests *d,
		      char etag_out[S3_ETAG_MAX], struct awserr *err)
{
	char etag[S3_ETAG_MAX] = "";
	const char *v = http_headers_get(&resp->headers, "ETag");
	if (v)
		s3xml_etag_clean(v, strlen(v), etag);
	if (strcasecmp(etag, d->md5_hex) != 0) {
		char detail[256];
		snprintf(detail, sizeof(detail), "ETag %s of the answer is not the MD5 %s of the data",
			 etag[0] ? etag : "(none)", d->md5_hex);
		return fail(c, op, key, EIO, detail, err);
	}
	if (etag_out)
		snprintf(etag_out, S3_ETAG_MAX, "%s", d->md5_hex);
	return 0;
}

/* PutObject / UploadPart: body from memory (data) or from fb. */
static int upload(struct s3_client *c, const char *op, const char *key, const char *query,
		  const void *data, size_t len, struct fd_body *fb, const struct digests *d,
		  const struct s3_put_opts *opts, char etag_out[S3_ETAG_MAX], struct awserr *err)
{
	struct buf url = BUF_INIT;
	struct http_headers h = HTTP_HEADERS_INIT;
	struct http_response resp;
	int rc = build_url(c, key, query, &url);
	if (!rc)
		rc = http_headers_add(&h, "Content-MD5", d->md5_b64);
	if (!rc)
		rc = add_put_headers(&h, opts);
	if (rc) {
		buf_free(&url);
		http_headers_free(&h);
		return fail(c, op, key, -rc, rc == -EINVAL ? "invalid metadata header" :
			    "out of memory", err);
	}
	struct awsreq r = {
		.method = "PUT", .url = url.data, .headers = &h,
		.payload = AWSREQ_PAYLOAD_GIVEN, .payload_hash = d->sha_hex,
		.idempotent = 1,
	};
	if (fb) {
		r.read_fn = fd_read;
		r.rewind_fn = fd_rewind;
		r.read_arg = fb;
		r.body_size = (int64_t)fb->len;
	} else {
		r.body = data;
		r.body_len = len;
	}
	rc = run(c, op, key, &r, &resp, QUIET_NONE, err);
	if (rc == 0)
		rc = check_etag(c, op, key, &resp, d, etag_out, err);
	http_response_free(&resp);
	http_headers_free(&h);
	buf_free(&url);
	return rc;
}

int s3_put_object_mem(struct s3_client *c, const char *key, const void *data, size_t len,
		      const struct s3_put_opts *opts, char etag_out[S3_ETAG_MAX],
		      struct awserr *err)
{
	struct digests d;
	if (!valid_key(key) || (!data && len))
		return fail(c, "PutObject", key, EINVAL, "invalid key or body", err);
	if ((int64_t)len > S3_MAX_PUT_SIZE)
		return fail(c, "PutObject", key, EFBIG, "object larger than 5 GiB", err);
	int rc = hash_mem(data, len, opts && opts->test_corrupt_md5, &d);
	if (rc)
		return fail(c, "PutObject", key, -rc, "hashing the body failed", err);
	return upload(c, "PutObject", key, NULL, data, len, NULL, &d, opts, etag_out, err);
}

/* Resolves len < 0 to "up to the end of the file". */
static int fd_range(int fd, off_t offset, off_t *len)
{
	if (offset < 0)
		return -EINVAL;
	if (*len >= 0)
		return 0;
	struct stat st;
	if (fstat(fd, &st))
		return -errno;
	*len = st.st_size > offset ? st.st_size - offset : 0;
	return 0;
}

int s3_put_object_fd(struct s3_client *c, const char *key, int fd, off_t offset, off_t len,
		     const struct s3_put_opts *opts, char etag_out[S3_ETAG_MAX],
		     struct awserr *err)
{
	struct digests d;
	if (!valid_key(key) || fd < 0)
		return fail(c, "PutObject", key, EINVAL, "invalid key or file", err);
	int rc = fd_range(fd, offset, &len);
	if (rc)
		return fail(c, "PutObject", key, -rc, "cannot size the file", err);
	if ((int64_t)len > S3_MAX_PUT_SIZE)
		return fail(c, "PutObject", key, EFBIG, "object larger than 5 GiB", err);
	rc = hash_fd(fd, offset, len, opts && opts->test_corrupt_md5, &d);
	if (rc)
		return fail(c, "PutObject", key, -rc, "reading the file to hash it failed", err);
	struct fd_body fb = { .fd = fd, .off = offset, .len = len };
	return upload(c, "PutObject", key, NULL, NULL, 0, &fb, &d, opts, etag_out, err);
}

int s3_delete_object(struct s3_client *c, const char *key, struct awserr *err)
{
	struct buf url = BUF_INIT;
	struct http_response resp;
	if (!valid_key(key))
		return fail(c, "DeleteObject", key, EINVAL, "invalid key", err);
	if (build_url(c, key, NULL, &url)) {
		buf_free(&url);
		return fail(c, "DeleteObject", key, ENOMEM, "out of memory", err);
	}
	struct awsreq r = { .method = "DELETE", .url = url.data, .idempotent = 1 };
	int rc = run(c, "DeleteObject", key, &r, &resp, QUIET_NONE, err);
	http_response_free(&resp);
	buf_free(&url);
	return rc;
}

/* Runs a request whose 2xx answer is an XML document (bounded) into *reply. For results that
 * may carry an <Error> with status 200, the caller checks the root. */
static int run_xml(struct s3_client *c, const char *op, const char *key, struct awsreq *r,
		   struct buf *reply, struct http_response *resp, int quiet, struct awserr *err)
{
	struct http_sink sink = { .buf = reply, .max = S3_MAX_XML_REPLY };
	r->body_fn = http_sink_buf;
	r->reset_fn = http_sink_buf_reset;
	r->body_arg = &sink;
	return run(c, op, key, r, resp, quiet, err);
}

/* A 200 answer holding an <Error> document: turn it into a typed error (not logged here). */
static int error_in_200(const struct buf *reply, const struct http_response *resp,
			struct awserr *ae)
{
	char root[32];
	if (!s3xml_root(reply->data, reply->len, root, sizeof(root)) || strcmp(root, "Error"))
		return 0;
	const char *rid = http_headers_get(&resp->headers, "x-amz-request-id");
	awserr_parse(ae, 200, NULL, rid, reply->data, reply->len);
	if (!ae->err)
		ae->err = EIO;
	return -ae->err;
}

int s3_copy_object(struct s3_client *c, const char *src_key, const char *dst_key,
		   enum s3_metadata_directive directive, const struct s3_put_opts *opts,
		   char etag_out[S3_ETAG_MAX], struct awserr *err)
{
	struct buf url = BUF_INIT, src = BUF_INIT, reply = BUF_INIT;
	struct http_headers h = HTTP_HEADERS_INIT;
	struct http_response resp;
	char etag[S3_ETAG_MAX];
	if (!valid_key(src_key) || !valid_key(dst_key))
		return fail(c, "CopyObject", dst_key, EINVAL, "invalid key", err);
	int rc = build_url(c, dst_key, NULL, &url);
	if (!rc)
		rc = buf_putc(&src, '/');
	if (!rc)
		rc = sigv4_uri_encode(&src, c->bucket, strlen(c->bucket), 0);
	if (!rc)
		rc = buf_putc(&src, '/');
	if (!rc)
		rc = sigv4_uri_encode(&src, src_key, strlen(src_key), 1);
	if (!rc)
		rc = http_headers_add(&h, "x-amz-copy-source", src.data);
	if (!rc)
		rc = http_headers_add(&h, "x-amz-metadata-directive",
				      directive == S3_META_REPLACE ? "REPLACE" : "COPY");
	if (!rc && directive == S3_META_REPLACE)
		rc = add_put_headers(&h, opts);
	if (rc) {
		rc = fail(c, "CopyObject", dst_key, -rc, rc == -EINVAL ? "invalid metadata header" :
			  "out of memory", err);
		goto out;
	}
	/* An error found while copying comes as a 200 answer holding <Error>; the HTTP layer cannot
	 * see it, so a retryable one (InternalError, SlowDown, ...) is repeated here. */
	struct awserr ae;
	for (int attempt = 1;; attempt++) {
		struct awsreq r = { .method = "PUT", .url = url.data, .headers = &h, .idempotent = 1 };
		buf_reset(&reply);
		awserr_clear(&ae);
		rc = run_xml(c, "CopyObject", dst_key, &r, &reply, &resp, QUIET_NONE, err);
		if (rc || !error_in_200(&reply, &resp, &ae) || !ae.retryable ||
		    attempt >= S3_COMPLETE_TRIES)
			break;
		http_response_free(&resp);
		sleep_ms(200u * (unsigned)attempt);
	}
	if (rc == 0) {
		if (ae.err) {
			char line[768];
			rc = fail(c, "CopyObject", dst_key, ae.err,
				  awserr_format(&ae, line, sizeof(line)), NULL);
			copy_err(err, &ae);
		} else if (s3xml_parse_etag_result(reply.data, reply.len, "CopyObjectResult", etag)) {
			rc = fail(c, "CopyObject", dst_key, EIO, "malformed CopyObjectResult", err);
		} else if (etag_out) {
			snprintf(etag_out, S3_ETAG_MAX, "%s", etag);
		}
	}
	http_response_free(&resp);
out:
	http_headers_free(&h);
	buf_free(&url);
	buf_free(&src);
	buf_free(&reply);
	return rc;
}

int s3_list_objects_pages(struct s3_client *c, const char *prefix, const char *delimiter,
			  s3_list_page_fn page_fn, void *arg, struct awserr *err)
{
	struct buf q = BUF_INIT, url = BUF_INIT, reply = BUF_INIT;
	struct s3xml_list page = { 0 };
	char *prev_token = NULL;
	char pages[16];
	int rc = 0;
	const char *logkey = prefix ? prefix : "";
	snprintf(pages, sizeof(pages), "%d", c->page_size);
	for (;;) {
		buf_reset(&q);
		buf_reset(&url);
		buf_reset(&reply);
		s3xml_list_free(&page);
		rc = q_add(&q, "list-type", "2");
		if (!rc && prefix && *prefix)
			rc = q_add(&q, "prefix", prefix);
		if (!rc && delimiter && *delimiter)
			rc = q_add(&q, "delimiter", delimiter);
		if (!rc)
			rc = q_add(&q, "max-keys", pages);
		if (!rc && prev_token)
			rc = q_add(&q, "continuation-token", prev_token);
		if (!rc)
			rc = build_url(c, NULL, q.data, &url);
		if (rc) {
			rc = fail(c, "ListObjectsV2", logkey, ENOMEM, "out of memory", err);
			break;
		}
		struct awsreq r = { .method = "GET", .url = url.data, .idempotent = 1 };
		struct http_response resp;
		rc = run_xml(c, "ListObjectsV2", logkey, &r, &reply, &resp, QUIET_NONE, err);
		http_response_free(&resp);
		if (rc)
			break;
		rc = s3xml_parse_list_v2(reply.data, reply.len, &page);
		if (rc) {
			rc = fail(c, "ListObjectsV2", logkey, -rc, rc == -ENOMEM ? "out of memory" :
				  "malformed ListBucketResult", err);
			break;
		}
		if (page.truncated && (!page.next_token || !page.next_token[0] ||
				       (prev_token && strcmp(prev_token, page.next_token) == 0))) {
			rc = fail(c, "ListObjectsV2", logkey, EIO,
				  "truncated listing without a new continuation token", err);
			break;
		}
		int more = page.truncated;
		free(prev_token);
		prev_token = page.next_token;
		page.next_token = NULL;
		rc = page_fn(arg, &page);
		if (rc < 0) {
			rc = fail(c, "ListObjectsV2", logkey, -rc, "stopped by the caller", err);
			break;
		}
		if (rc > 0 || !more) {
			rc = 0;
			break;
		}
	}
	s3xml_list_free(&page);
	free(prev_token);
	buf_free(&q);
	buf_free(&url);
	buf_free(&reply);
	return rc;
}

struct list_merge {
	struct s3xml_list *out;
	size_t start, max;
};

/* Moves a page's entries into the caller's list; stops once max entries were collected. */
static int list_merge_page(void *arg, struct s3xml_list *page)
{
	struct list_merge *m = arg;
	struct s3xml_list *o = m->out;
	if (page->n_objects) {
		size_t need = o->n_objects + page->n_objects;
		if (need > o->cap_objects) {
			struct s3xml_object *v = realloc(o->objects, need * sizeof(*v));
			if (!v)
				return -ENOMEM;
			o->objects = v;
			o->cap_objects = need;
		}
		memcpy(o->objects + o->n_objects, page->objects, page->n_objects * sizeof(*o->objects));
		o->n_objects = need;
		page->n_objects = 0;  /* the keys now belong to out */
	}
	if (page->n_prefixes) {
		size_t need = o->n_prefixes + page->n_prefixes;
		if (need > o->cap_prefixes) {
			char **v = realloc(o->prefixes, need * sizeof(*v));
			if (!v)
				return -ENOMEM;
			o->prefixes = v;
			o->cap_prefixes = need;
		}
		memcpy(o->prefixes + o->n_prefixes, page->prefixes, page->n_prefixes * sizeof(char *));
		o->n_prefixes = need;
		page->n_prefixes = 0;
	}
	o->truncated = page->truncated;
	o->key_count = page->key_count;
	if (m->max && o->n_objects + o->n_prefixes - m->start >= m->max)
		return 1;
	return 0;
}

int s3_list_objects(struct s3_client *c, const char *prefix, const char *delimiter,
		    size_t max_entries, struct s3xml_list *out, struct awserr *err)
{
	struct list_merge m = { out, out->n_objects + out->n_prefixes, max_entries };
	return s3_list_objects_pages(c, prefix, delimiter, list_merge_page, &m, err);
}

/* ---- multipart ---- */

int s3_multipart_etag(const struct s3_part *parts, size_t n, char out[S3_ETAG_MAX])
{
	out[0] = '\0';
	if (!n || n > S3_MAX_PARTS)
		return -EINVAL;
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	if (!m)
		return -ENOMEM;
	int rc = EVP_DigestInit_ex(m, EVP_md5(), NULL) == 1 ? 0 : -EIO;
	for (size_t i = 0; !rc && i < n; i++) {
		unsigned char b[16];
		if (strlen(parts[i].etag) != 32 || hex_to_bin(parts[i].etag, b, 16))
			rc = -EINVAL;
		else if (EVP_DigestUpdate(m, b, 16) != 1)
			rc = -EIO;
	}
	unsigned char md[16];
	unsigned int ml = 0;
	if (!rc && (EVP_DigestFinal_ex(m, md, &ml) != 1 || ml != 16))
		rc = -EIO;
	EVP_MD_CTX_free(m);
	if (rc)
		return rc;
	char hex[33];
	bin_to_hex(md, 16, hex);
	snprintf(out, S3_ETAG_MAX, "%s-%zu", hex, n);
	return 0;
}

int s3_mpu_create(struct s3_client *c, const char *key, const struct s3_put_opts *opts,
		  char **upload_id, struct awserr *err)
{
	struct buf url = BUF_INIT, reply = BUF_INIT;
	struct http_headers h = HTTP_HEADERS_INIT;
	struct http_response resp;
	*upload_id = NULL;
	if (!valid_key(key))
		return fail(c, "CreateMultipartUpload", key, EINVAL, "invalid key", err);
	int rc = build_url(c, key, "uploads", &url);
	if (!rc)
		rc = add_put_headers(&h, opts);
	if (rc) {
		rc = fail(c, "CreateMultipartUpload", key, -rc, rc == -EINVAL ?
			  "invalid metadata header" : "out of memory", err);
		goto out;
	}
	struct awsreq r = { .method = "POST", .url = url.data, .headers = &h, .idempotent = 1 };
	rc = run_xml(c, "CreateMultipartUpload", key, &r, &reply, &resp, QUIET_NONE, err);
	http_response_free(&resp);
	if (rc == 0) {
		rc = s3xml_parse_initiate(reply.data, reply.len, upload_id);
		if (rc)
			rc = fail(c, "CreateMultipartUpload", key, -rc, rc == -ENOMEM ?
				  "out of memory" : "malformed InitiateMultipartUploadResult", err);
	}
out:
	http_headers_free(&h);
	buf_free(&url);
	buf_free(&reply);
	return rc;
}

static int part_query(struct buf *q, int part_number, const char *upload_id)
{
	char num[16];
	snprintf(num, sizeof(num), "%d", part_number);
	int rc = 0;
	if (part_number > 0)
		rc = q_add(q, "partNumber", num);
	if (!rc)
		rc = q_add(q, "uploadId", upload_id);
	return rc;
}

int s3_mpu_upload_part(struct s3_client *c, const char *key, const char *upload_id,
		       int part_number, int fd, off_t offset, off_t len,
		       const struct s3_put_opts *opts, struct s3_part *part, struct awserr *err)
{
	struct buf q = BUF_INIT;
	struct digests d;
	memset(part, 0, sizeof(*part));
	if (!valid_key(key) || !upload_id || !*upload_id || part_number < 1 ||
	    part_number > S3_MAX_PARTS || fd < 0 || offset < 0 || len < 0)
		return fail(c, "UploadPart", key, EINVAL, "invalid part", err);
	if ((int64_t)len > S3_MAX_PUT_SIZE)
		return fail(c, "UploadPart", key, EFBIG, "part larger than 5 GiB", err);
	int rc = hash_fd(fd, offset, len, opts && opts->test_corrupt_md5, &d);
	if (rc)
		return fail(c, "UploadPart", key, -rc, "reading the file to hash it failed", err);
	if (part_query(&q, part_number, upload_id)) {
		buf_free(&q);
		return fail(c, "UploadPart", key, ENOMEM, "out of memory", err);
	}
	/* metadata belongs to the upload, not to parts: only the corrupt flag is used here */
	struct fd_body fb = { .fd = fd, .off = offset, .len = len };
	rc = upload(c, "UploadPart", key, q.data, NULL, 0, &fb, &d, NULL, part->etag, err);
	buf_free(&q);
	if (rc == 0)
		part->number = part_number;
	return rc;
}

/* One CompleteMultipartUpload request. *ae receives the error; the etag of a good answer goes
 * to etag (may be ""). Does not log. */
static int complete_once(struct s3_client *c, const char *url, const char *xml,
			 char etag[S3_ETAG_MAX], struct awserr *ae)
{
	struct buf reply = BUF_INIT;
	struct http_headers h = HTTP_HEADERS_INIT;
	struct http_response resp;
	int rc = http_headers_add(&h, "Content-Type", "application/xml");
	if (rc) {
		http_headers_free(&h);
		return awserr_set_errno(ae, ENOMEM, "out of memory");
	}
	struct awsreq r = {
		.method = "POST", .url = url, .headers = &h,
		.payload = AWSREQ_PAYLOAD_SHA256, .body = xml, .body_len = strlen(xml),
		.idempotent = 0,  /* never blindly repeated: see s3.h */
	};
	rc = run_xml(c, "CompleteMultipartUpload", NULL, &r, &reply, &resp, QUIET_ALL, ae);
	if (rc == 0) {
		if (error_in_200(&reply, &resp, ae))
			rc = -ae->err;
		else if (s3xml_parse_etag_result(reply.data, reply.len,
						 "CompleteMultipartUploadResult", etag))
			rc = awserr_set_errno(ae, EIO, "malformed CompleteMultipartUploadResult");
	}
	http_response_free(&resp);
	http_headers_free(&h);
	buf_free(&reply);
	return rc;
}

int s3_mpu_complete(struct s3_client *c, const char *key, const char *upload_id,
		    const struct s3_part *parts, size_t n, char etag_out[S3_ETAG_MAX],
		    struct awserr *err)
{
	const char *op = "CompleteMultipartUpload";
	struct buf q = BUF_INIT, url = BUF_INIT, xml = BUF_INIT;
	char expected[S3_ETAG_MAX], etag[S3_ETAG_MAX];
	struct awserr ae;
	int rc;
	awserr_clear(&ae);
	if (!valid_key(key) || !upload_id || !*upload_id || !parts || !n || n > S3_MAX_PARTS)
		return fail(c, op, key, EINVAL, "invalid upload", err);
	for (size_t i = 0; i < n; i++)
		if (parts[i].number < 1 || parts[i].number > S3_MAX_PARTS ||
		    (i && parts[i].number <= parts[i - 1].number))
			return fail(c, op, key, EINVAL, "part numbers must increase", err);
	if (s3_multipart_etag(parts, n, expected))
		return fail(c, op, key, EINVAL, "a part ETag is not an MD5", err);
	rc = part_query(&q, 0, upload_id);
	if (!rc)
		rc = build_url(c, key, q.data, &url);
	if (!rc)
		rc = buf_appendz(&xml, "<CompleteMultipartUpload "
				 "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
	for (size_t i = 0; !rc && i < n; i++)
		rc = buf_printf(&xml, "<Part><PartNumber>%d</PartNumber><ETag>&quot;%s&quot;</ETag>"
				"</Part>", parts[i].number, parts[i].etag);
	if (!rc)
		rc = buf_appendz(&xml, "</CompleteMultipartUpload>");
	if (rc) {
		rc = fail(c, op, key, ENOMEM, "out of memory", err);
		goto out;
	}
	for (int attempt = 1;; attempt++) {
		etag[0] = '\0';
		rc = complete_once(c, url.data, xml.data, etag, &ae);
		if (rc == 0) {
			if (etag[0] && strchr(etag, '-') && strcasecmp(etag, expected) != 0) {
				char detail[256];
				snprintf(detail, sizeof(detail), "ETag %s of the answer is not the "
					 "expected %s", etag, expected);
				rc = fail(c, op, key, EIO, detail, err);
				goto out;
			}
			if (etag_out)
				snprintf(etag_out, S3_ETAG_MAX, "%s", etag[0] ? etag : expected);
			if (err)
				awserr_clear(err);
			goto out;
		}
		int maybe_done = ae.retryable || ae.err == ENOENT;
		if (!maybe_done)
			break;
		/* the answer may have been lost after the server completed: ask the object */
		struct s3_object_info info;
		struct awserr he;
		int hr = head_object(c, key, &info, QUIET_ALL, &he);
		int matches = hr == 0 && strcasecmp(info.etag, expected) == 0;
		s3_object_info_free(&info);
		if (matches) {
			char kl[512];
			key_for_log(key, kl, sizeof(kl));
			LOG_INFO(c->log, MOD, "%s s3://%s/%s: the answer was lost but the object is "
				 "complete (ETag %s)", op, c->bucket, kl, expected);
			if (etag_out)
				snprintf(etag_out, S3_ETAG_MAX, "%s", expected);
			if (err)
				awserr_clear(err);
			rc = 0;
			goto out;
		}
		if (ae.err == ENOENT || attempt >= S3_COMPLETE_TRIES)
			break;
		sleep_ms(200u * (unsigned)attempt);
	}
	{
		char kl[512], line[768];
		key_for_log(key, kl, sizeof(kl));
		LOG_ERROR(c->log, MOD, "%s s3://%s/%s failed: %s", op, c->bucket, kl,
			  awserr_format(&ae, line, sizeof(line)));
		copy_err(err, &ae);
		rc = -ae.err;
	}
out:
	buf_free(&q);
	buf_free(&url);
	buf_free(&xml);
	return rc;
}

int s3_mpu_abort(struct s3_client *c, const char *key, const char *upload_id, struct awserr *err)
{
	struct buf q = BUF_INIT, url = BUF_INIT;
	struct http_response resp;
	struct awserr ae;
	if (!valid_key(key) || !upload_id || !*upload_id)
		return fail(c, "AbortMultipartUpload", key, EINVAL, "invalid upload", err);
	if (part_query(&q, 0, upload_id) || build_url(c, key, q.data, &url)) {
		buf_free(&q);
		buf_free(&url);
		return fail(c, "AbortMultipartUpload", key, ENOMEM, "out of memory", err);
	}
	struct awsreq r = { .method = "DELETE", .url = url.data, .idempotent = 1 };
	int rc = run(c, "AbortMultipartUpload", key, &r, &resp, QUIET_ALL, &ae);
	if (rc && ae.err == ENOENT && resp.attempts > 1)
		rc = 0; /* an earlier attempt whose answer was lost did it */
	if (rc) {
		/* NoSuchUpload: the upload has ended, which cleanup callers take as done */
		char kl[512], line[768];
		key_for_log(key, kl, sizeof(kl));
		log_msg(c->log, ae.err == ENOENT ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR, MOD,
			"AbortMultipartUpload s3://%s/%s failed: %s", c->bucket, kl,
			awserr_format(&ae, line, sizeof(line)));
		copy_err(err, &ae);
	} else if (err) {
		awserr_clear(err);
	}
	http_response_free(&resp);
	buf_free(&q);
	buf_free(&url);
	return rc;
}

int s3_mpu_list(struct s3_client *c, const char *prefix, struct s3xml_uploads *out,
		struct awserr *err)
{
	struct buf q = BUF_INIT, url = BUF_INIT, reply = BUF_INIT;
	char *key_marker = NULL, *id_marker = NULL;
	char pages[16];
	const char *logkey = prefix ? prefix : "";
	int rc = 0;
	snprintf(pages, sizeof(pages), "%d", c->page_size);
	for (;;) {
		buf_reset(&q);
		buf_reset(&url);
		buf_reset(&reply);
		rc = buf_appendz(&q, "uploads");
		if (!rc && prefix && *prefix)
			rc = q_add(&q, "prefix", prefix);
		if (!rc)
			rc = q_add(&q, "max-uploads", pages);
		if (!rc && key_marker)
			rc = q_add(&q, "key-marker", key_marker);
		if (!rc && id_marker)
			rc = q_add(&q, "upload-id-marker", id_marker);
		if (!rc)
			rc = build_url(c, NULL, q.data, &url);
		if (rc) {
			rc = fail(c, "ListMultipartUploads", logkey, ENOMEM, "out of memory", err);
			break;
		}
		struct awsreq r = { .method = "GET", .url = url.data, .idempotent = 1 };
		struct http_response resp;
		rc = run_xml(c, "ListMultipartUploads", logkey, &r, &reply, &resp, QUIET_NONE, err);
		http_response_free(&resp);
		if (rc)
			break;
		rc = s3xml_parse_list_uploads(reply.data, reply.len, out);
		if (rc) {
			rc = fail(c, "ListMultipartUploads", logkey, -rc, rc == -ENOMEM ?
				  "out of memory" : "malformed ListMultipartUploadsResult", err);
			break;
		}
		if (!out->truncated)
			break;
		const char *nk = out->next_key_marker ? out->next_key_marker : "";
		const char *ni = out->next_upload_id_marker ? out->next_upload_id_marker : "";
		if (!nk[0] || (key_marker && !strcmp(key_marker, nk) && id_marker &&
			       !strcmp(id_marker, ni))) {
			rc = fail(c, "ListMultipartUploads", logkey, EIO,
				  "truncated listing without new markers", err);
			break;
		}
		free(key_marker);
		free(id_marker);
		key_marker = strdup(nk);
		id_marker = ni[0] ? strdup(ni) : NULL;
		if (!key_marker || (ni[0] && !id_marker)) {
			rc = fail(c, "ListMultipartUploads", logkey, ENOMEM, "out of memory", err);
			break;
		}
	}
	free(key_marker);
	free(id_marker);
	buf_free(&q);
	buf_free(&url);
	buf_free(&reply);
	return rc;
}
