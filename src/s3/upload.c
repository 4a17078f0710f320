/*
 * s3 upload.c: integrity of uploads (see include/kvsfs/s3.h, "Integrity"; src/s3/s3_int.h for
 * the module's map).
 *
 * Design: an upload body is hashed once before the request: MD5 (for Content-MD5 and the ETag
 * check) and SHA-256 (x-amz-content-sha256, signed) in the same pass, from memory or with pread
 * from an fd range. The fd body is then streamed with pread from a cursor that the rewind
 * callback resets, so a retry resends the same bytes; a file that changed in between shows up
 * as a server-side digest mismatch or a short read (-EIO), never as a different object.
 * s3i_upload is the one PUT of PutObject and UploadPart: the answer's ETag must equal the hex
 * MD5 sent. s3_multipart_etag computes the ETag a completed multipart upload must have.
 *
 * Invariants: nothing here keeps state between calls; the test setting corrupt_md5 only changes
 * the Content-MD5 header (the checked MD5 stays the true one, so the server's rejection is
 * what the test sees).
 */
#include "s3_int.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static int md5_finish(EVP_MD_CTX *m, struct s3i_digests *d, int corrupt)
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

int s3i_hash_mem(const void *data, size_t len, int corrupt, struct s3i_digests *d)
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

int s3i_hash_fd(int fd, off_t off, off_t len, int corrupt, struct s3i_digests *d)
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

static ssize_t fd_read(void *arg, void *dst, size_t n)
{
	struct s3i_fd_body *b = arg;
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
	struct s3i_fd_body *b = arg;
	b->pos = 0;
	return 0;
}

/* ---- the PUT ---- */

/* Checks the ETag header of an upload answer against the MD5 sent. */
static int check_etag(struct s3_client *c, const char *op, const char *key,
		      const struct http_response *resp, const struct s3i_digests *d,
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
		return s3i_fail(c, op, key, EIO, detail, err);
	}
	if (etag_out)
		snprintf(etag_out, S3_ETAG_MAX, "%s", d->md5_hex);
	return 0;
}

int s3i_upload(struct s3_client *c, const char *op, const char *key, const char *query,
	       const void *data, size_t len, struct s3i_fd_body *fb, const struct s3i_digests *d,
	       const struct s3_put_opts *opts, char etag_out[S3_ETAG_MAX], struct awserr *err)
{
	struct buf url = BUF_INIT;
	struct http_headers h = HTTP_HEADERS_INIT;
	struct http_response resp;
	int rc = s3i_url(c, key, query, &url);
	if (!rc)
		rc = http_headers_add(&h, "Content-MD5", d->md5_b64);
	if (!rc)
		rc = s3i_put_headers(&h, opts);
	if (rc) {
		buf_free(&url);
		http_headers_free(&h);
		return s3i_fail(c, op, key, -rc, rc == -EINVAL ? "invalid metadata header" :
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
	rc = s3i_run(c, op, key, &r, &resp, S3I_QUIET_NONE, err);
	if (rc == 0)
		rc = check_etag(c, op, key, &resp, d, etag_out, err);
	http_response_free(&resp);
	http_headers_free(&h);
	buf_free(&url);
	return rc;
}

/* ---- multipart ETag ---- */

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
