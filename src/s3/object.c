/*
 * s3 object.c: the single-object operations HeadObject, GetObject, PutObject (memory or fd
 * range), DeleteObject and CopyObject (see include/kvsfs/s3.h; src/s3/s3_int.h for the map).
 *
 * Design: each call checks its key (s3i_valid_key) before any request, builds the URL and
 * headers and goes through s3i_run once; retries of these idempotent requests are the HTTP
 * layer's. Two checks are S3-specific and live here: a ranged GET must answer 206 with the
 * Content-Range of exactly the bytes asked for (a server that ignored Range would otherwise
 * hand out bytes from the wrong offset), and CopyObject may answer 200 with an <Error> document,
 * which the HTTP layer cannot see: a retryable one is repeated here (S3_COMPLETE_TRIES requests
 * in all, with a short growing pause). Uploads are hashed and sent by upload.c.
 *
 * Invariants: on failure exactly one line is logged and *err filled (see s3_int.h); an info
 * struct is initialised by the call, also on failure, so callers can always free it.
 */
#include "s3_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int s3i_head_object(struct s3_client *c, const char *key, struct s3_object_info *info, int quiet,
		    struct awserr *err)
{
	struct buf url = BUF_INIT;
	struct http_response resp;
	s3i_info_init(info);
	if (!s3i_valid_key(key))
		return s3i_fail(c, "HeadObject", key, EINVAL, "invalid key", err);
	if (s3i_url(c, key, NULL, &url)) {
		buf_free(&url);
		return s3i_fail(c, "HeadObject", key, ENOMEM, "out of memory", err);
	}
	struct awsreq r = { .method = "HEAD", .url = url.data, .idempotent = 1 };
	int rc = s3i_run(c, "HeadObject", key, &r, &resp, quiet, err);
	if (rc == 0 && s3i_info_from_headers(info, &resp.headers))
		rc = s3i_fail(c, "HeadObject", key, ENOMEM, "out of memory", err);
	http_response_free(&resp);
	buf_free(&url);
	return rc;
}

int s3_head_object(struct s3_client *c, const char *key, struct s3_object_info *info,
		   struct awserr *err)
{
	return s3i_head_object(c, key, info, S3I_QUIET_ENOENT, err);
}

/* A ranged GET must answer 206 with Content-Range "bytes FIRST-LAST/TOTAL" for exactly the
 * requested bytes (clipped at the end of the object). */
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

int s3_get_object(struct s3_client *c, const char *key, int64_t offset, int64_t len,
		  s3_body_fn body_fn, s3_reset_fn reset_fn, void *arg,
		  struct s3_object_info *info, struct awserr *err)
{
	struct buf url = BUF_INIT;
	struct http_headers h = HTTP_HEADERS_INIT;
	struct http_response resp;
	char range[64] = "";
	if (info)
		s3i_info_init(info);
	if (!s3i_valid_key(key))
		return s3i_fail(c, "GetObject", key, EINVAL, "invalid key", err);
	if (offset < 0 || len == 0 || (len > 0 && offset > INT64_MAX - len))
		return s3i_fail(c, "GetObject", key, EINVAL, "invalid range", err);
	if (len > 0)
		snprintf(range, sizeof(range), "bytes=%lld-%lld", (long long)offset,
			 (long long)(offset + len - 1));
	else if (offset > 0)
		snprintf(range, sizeof(range), "bytes=%lld-", (long long)offset);
	if (s3i_url(c, key, NULL, &url) || (range[0] && http_headers_add(&h, "Range", range))) {
		buf_free(&url);
		http_headers_free(&h);
		return s3i_fail(c, "GetObject", key, ENOMEM, "out of memory", err);
	}
	struct awsreq r = {
		.method = "GET", .url = url.data, .headers = &h, .idempotent = 1,
		.body_fn = body_fn, .reset_fn = reset_fn, .body_arg = arg,
	};
	int rc = s3i_run(c, "GetObject", key, &r, &resp, S3I_QUIET_NONE, err);
	if (rc == 0 && range[0] && !range_matches(&resp, offset, len))
		rc = s3i_fail(c, "GetObject", key, EIO, "the answer is not the requested range", err);
	if (rc == 0 && info && s3i_info_from_headers(info, &resp.headers))
		rc = s3i_fail(c, "GetObject", key, ENOMEM, "out of memory", err);
	http_response_free(&resp);
	http_headers_free(&h);
	buf_free(&url);
	return rc;
}

int s3_put_object_mem(struct s3_client *c, const char *key, const void *data, size_t len,
		      const struct s3_put_opts *opts, char etag_out[S3_ETAG_MAX],
		      struct awserr *err)
{
	struct s3i_digests d;
	if (!s3i_valid_key(key) || (!data && len))
		return s3i_fail(c, "PutObject", key, EINVAL, "invalid key or body", err);
	if ((int64_t)len > S3_MAX_PUT_SIZE)
		return s3i_fail(c, "PutObject", key, EFBIG, "object larger than 5 GiB", err);
	int rc = s3i_hash_mem(data, len, c->corrupt_md5, &d);
	if (rc)
		return s3i_fail(c, "PutObject", key, -rc, "hashing the body failed", err);
	return s3i_upload(c, "PutObject", key, NULL, data, len, NULL, &d, opts, etag_out, err);
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
	struct s3i_digests d;
	if (!s3i_valid_key(key) || fd < 0)
		return s3i_fail(c, "PutObject", key, EINVAL, "invalid key or file", err);
	int rc = fd_range(fd, offset, &len);
	if (rc)
		return s3i_fail(c, "PutObject", key, -rc, "cannot size the file", err);
	if ((int64_t)len > S3_MAX_PUT_SIZE)
		return s3i_fail(c, "PutObject", key, EFBIG, "object larger than 5 GiB", err);
	rc = s3i_hash_fd(fd, offset, len, c->corrupt_md5, &d);
	if (rc)
		return s3i_fail(c, "PutObject", key, -rc, "reading the file to hash it failed", err);
	struct s3i_fd_body fb = { .fd = fd, .off = offset, .len = len };
	return s3i_upload(c, "PutObject", key, NULL, NULL, 0, &fb, &d, opts, etag_out, err);
}

int s3_delete_object(struct s3_client *c, const char *key, struct awserr *err)
{
	struct buf url = BUF_INIT;
	struct http_response resp;
	if (!s3i_valid_key(key))
		return s3i_fail(c, "DeleteObject", key, EINVAL, "invalid key", err);
	if (s3i_url(c, key, NULL, &url)) {
		buf_free(&url);
		return s3i_fail(c, "DeleteObject", key, ENOMEM, "out of memory", err);
	}
	struct awsreq r = { .method = "DELETE", .url = url.data, .idempotent = 1 };
	int rc = s3i_run(c, "DeleteObject", key, &r, &resp, S3I_QUIET_NONE, err);
	http_response_free(&resp);
	buf_free(&url);
	return rc;
}

/* The headers of a copy: x-amz-copy-source (/bucket/key, encoded), the metadata directive, and
 * with REPLACE the new metadata / content type. Returns 0, -EINVAL (bad metadata), -ENOMEM. */
static int copy_headers(struct s3_client *c, const char *src_key,
			enum s3_metadata_directive directive, const struct s3_put_opts *opts,
			struct http_headers *h)
{
	struct buf src = BUF_INIT;
	int rc = buf_putc(&src, '/');
	if (!rc)
		rc = sigv4_uri_encode(&src, c->bucket, strlen(c->bucket), 0);
	if (!rc)
		rc = buf_putc(&src, '/');
	if (!rc)
		rc = sigv4_uri_encode(&src, src_key, strlen(src_key), 1);
	if (!rc)
		rc = http_headers_add(h, "x-amz-copy-source", src.data);
	if (!rc)
		rc = http_headers_add(h, "x-amz-metadata-directive",
				      directive == S3_META_REPLACE ? "REPLACE" : "COPY");
	if (!rc && directive == S3_META_REPLACE)
		rc = s3i_put_headers(h, opts);
	buf_free(&src);
	return rc;
}

/* Sends the copy until it succeeds, fails, or answers a non-retryable (or the last) <Error> in
 * a 200: rc of the request, *ae the <Error> found (ae->err 0 when none), the reply in *reply. */
static int copy_send(struct s3_client *c, const char *dst_key, const char *url,
		     const struct http_headers *h, struct buf *reply, struct awserr *ae,
		     struct awserr *err)
{
	struct http_response resp;
	int rc;
	for (int attempt = 1;; attempt++) {
		struct awsreq r = { .method = "PUT", .url = url, .headers = h, .idempotent = 1 };
		buf_reset(reply);
		awserr_clear(ae);
		rc = s3i_run_xml(c, "CopyObject", dst_key, &r, reply, &resp, S3I_QUIET_NONE, err);
		int again = rc == 0 && s3i_error_in_200(reply, &resp, ae) && ae->retryable &&
			    attempt < S3_COMPLETE_TRIES;
		http_response_free(&resp);
		if (!again)
			return rc;
		s3i_sleep_ms(200u * (unsigned)attempt);
	}
}

int s3_copy_object(struct s3_client *c, const char *src_key, const char *dst_key,
		   enum s3_metadata_directive directive, const struct s3_put_opts *opts,
		   char etag_out[S3_ETAG_MAX], struct awserr *err)
{
	struct buf url = BUF_INIT, reply = BUF_INIT;
	struct http_headers h = HTTP_HEADERS_INIT;
	char etag[S3_ETAG_MAX];
	if (!s3i_valid_key(src_key) || !s3i_valid_key(dst_key))
		return s3i_fail(c, "CopyObject", dst_key, EINVAL, "invalid key", err);
	int rc = s3i_url(c, dst_key, NULL, &url);
	if (!rc)
		rc = copy_headers(c, src_key, directive, opts, &h);
	if (rc) {
		rc = s3i_fail(c, "CopyObject", dst_key, -rc, rc == -EINVAL ?
			      "invalid metadata header" : "out of memory", err);
		goto out;
	}
	/* An error found while copying comes as a 200 answer holding <Error>; the HTTP layer cannot
	 * see it, so a retryable one (InternalError, SlowDown, ...) is repeated by copy_send. */
	struct awserr ae;
	rc = copy_send(c, dst_key, url.data, &h, &reply, &ae, err);
	if (rc == 0) {
		if (ae.err) {
			char line[768];
			rc = s3i_fail(c, "CopyObject", dst_key, ae.err,
				      awserr_format(&ae, line, sizeof(line)), NULL);
			s3i_copy_err(err, &ae);
		} else if (s3xml_parse_etag_result(reply.data, reply.len, "CopyObjectResult", etag)) {
			rc = s3i_fail(c, "CopyObject", dst_key, EIO, "malformed CopyObjectResult", err);
		} else if (etag_out) {
			snprintf(etag_out, S3_ETAG_MAX, "%s", etag);
		}
	}
out:
	http_headers_free(&h);
	buf_free(&url);
	buf_free(&reply);
	return rc;
}
