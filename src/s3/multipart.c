/*
 * s3 multipart.c: multipart uploads: CreateMultipartUpload, UploadPart, CompleteMultipartUpload
 * and AbortMultipartUpload (see include/kvsfs/s3.h, "Retries"; src/s3/s3_int.h for the map;
 * ListMultipartUploads is in list.c).
 *
 * Design: Create, UploadPart and Abort are single requests retried by the HTTP layer (a repeated
 * Create only leaves an unused upload id behind; a part is rewound and resent by upload.c). An
 * Abort whose retry finds NoSuchUpload after a lost answer succeeded. Complete is the one call
 * that must not be repeated blindly: it is sent once per attempt (idempotent = 0); after a
 * retryable failure or NoSuchUpload the object is asked with HeadObject, and when its ETag is the
 * multipart ETag computed from the parts (md5 of the part MD5s, "-N") the Complete did happen.
 * Otherwise it is sent again, S3_COMPLETE_TRIES attempts in all, with a short growing pause.
 * The answer's ETag is checked against the computed one; RGW answers an empty one, and the
 * computed value is returned then.
 *
 * Invariants: one log line per failed call; a Complete attempt logs nothing itself (the final
 * outcome is logged once by s3_mpu_complete).
 */
#include "s3_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int s3_mpu_create(struct s3_client *c, const char *key, const struct s3_put_opts *opts,
		  char **upload_id, struct awserr *err)
{
	struct buf url = BUF_INIT, reply = BUF_INIT;
	struct http_headers h = HTTP_HEADERS_INIT;
	struct http_response resp;
	*upload_id = NULL;
	if (!s3i_valid_key(key))
		return s3i_fail(c, "CreateMultipartUpload", key, EINVAL, "invalid key", err);
	int rc = s3i_url(c, key, "uploads", &url);
	if (!rc)
		rc = s3i_put_headers(&h, opts);
	if (rc) {
		rc = s3i_fail(c, "CreateMultipartUpload", key, -rc, rc == -EINVAL ?
			      "invalid metadata header" : "out of memory", err);
		goto out;
	}
	struct awsreq r = { .method = "POST", .url = url.data, .headers = &h, .idempotent = 1 };
	rc = s3i_run_xml(c, "CreateMultipartUpload", key, &r, &reply, &resp, S3I_QUIET_NONE, err);
	http_response_free(&resp);
	if (rc == 0) {
		rc = s3xml_parse_initiate(reply.data, reply.len, upload_id);
		if (rc)
			rc = s3i_fail(c, "CreateMultipartUpload", key, -rc, rc == -ENOMEM ?
				      "out of memory" : "malformed InitiateMultipartUploadResult", err);
	}
out:
	http_headers_free(&h);
	buf_free(&url);
	buf_free(&reply);
	return rc;
}

/* "partNumber=N&uploadId=ID" (part_number > 0) or "uploadId=ID". */
static int part_query(struct buf *q, int part_number, const char *upload_id)
{
	char num[16];
	snprintf(num, sizeof(num), "%d", part_number);
	int rc = 0;
	if (part_number > 0)
		rc = s3i_query_add(q, "partNumber", num);
	if (!rc)
		rc = s3i_query_add(q, "uploadId", upload_id);
	return rc;
}

int s3_mpu_upload_part(struct s3_client *c, const char *key, const char *upload_id,
		       int part_number, int fd, off_t offset, off_t len, struct s3_part *part,
		       struct awserr *err)
{
	struct buf q = BUF_INIT;
	struct s3i_digests d;
	memset(part, 0, sizeof(*part));
	if (!s3i_valid_key(key) || !upload_id || !*upload_id || part_number < 1 ||
	    part_number > S3_MAX_PARTS || fd < 0 || offset < 0 || len < 0)
		return s3i_fail(c, "UploadPart", key, EINVAL, "invalid part", err);
	if ((int64_t)len > S3_MAX_PUT_SIZE)
		return s3i_fail(c, "UploadPart", key, EFBIG, "part larger than 5 GiB", err);
	int rc = s3i_hash_fd(fd, offset, len, c->corrupt_md5, &d);
	if (rc)
		return s3i_fail(c, "UploadPart", key, -rc, "reading the file to hash it failed", err);
	if (part_query(&q, part_number, upload_id)) {
		buf_free(&q);
		return s3i_fail(c, "UploadPart", key, ENOMEM, "out of memory", err);
	}
	/* metadata belongs to the upload, not to its parts */
	struct s3i_fd_body fb = { .fd = fd, .off = offset, .len = len };
	rc = s3i_upload(c, "UploadPart", key, q.data, NULL, 0, &fb, &d, NULL, part->etag, err);
	buf_free(&q);
	if (rc == 0)
		part->number = part_number;
	return rc;
}

/* ---- CompleteMultipartUpload ---- */

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
	rc = s3i_run_xml(c, "CompleteMultipartUpload", NULL, &r, &reply, &resp, S3I_QUIET_ALL, ae);
	if (rc == 0) {
		if (s3i_error_in_200(&reply, &resp, ae))
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

/* Checks the parts and builds the request: URL (with uploadId), XML body, expected ETag. */
static int complete_prepare(struct s3_client *c, const char *key, const char *upload_id,
			    const struct s3_part *parts, size_t n, struct buf *url,
			    struct buf *xml, char expected[S3_ETAG_MAX], struct awserr *err)
{
	const char *op = "CompleteMultipartUpload";
	struct buf q = BUF_INIT;
	if (!s3i_valid_key(key) || !upload_id || !*upload_id || !parts || !n || n > S3_MAX_PARTS)
		return s3i_fail(c, op, key, EINVAL, "invalid upload", err);
	for (size_t i = 0; i < n; i++)
		if (parts[i].number < 1 || parts[i].number > S3_MAX_PARTS ||
		    (i && parts[i].number <= parts[i - 1].number))
			return s3i_fail(c, op, key, EINVAL, "part numbers must increase", err);
	if (s3_multipart_etag(parts, n, expected))
		return s3i_fail(c, op, key, EINVAL, "a part ETag is not an MD5", err);
	int rc = part_query(&q, 0, upload_id);
	if (!rc)
		rc = s3i_url(c, key, q.data, url);
	if (!rc)
		rc = buf_appendz(xml, "<CompleteMultipartUpload "
				 "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
	for (size_t i = 0; !rc && i < n; i++)
		rc = buf_printf(xml, "<Part><PartNumber>%d</PartNumber><ETag>&quot;%s&quot;</ETag>"
				"</Part>", parts[i].number, parts[i].etag);
	if (!rc)
		rc = buf_appendz(xml, "</CompleteMultipartUpload>");
	buf_free(&q);
	if (rc)
		return s3i_fail(c, op, key, ENOMEM, "out of memory", err);
	return 0;
}

/* After a failed Complete attempt whose answer may have been lost: 1 when the object exists
 * with the expected multipart ETag (the Complete did happen; logged at info level). */
static int complete_happened(struct s3_client *c, const char *key, const char *expected)
{
	struct s3_object_info info;
	struct awserr he;
	int hr = s3i_head_object(c, key, &info, S3I_QUIET_ALL, &he);
	int matches = hr == 0 && strcasecmp(info.etag, expected) == 0;
	s3_object_info_free(&info);
	if (matches) {
		char kl[512];
		s3i_key_for_log(key, kl, sizeof(kl));
		LOG_INFO(c->log, S3_MOD, "CompleteMultipartUpload s3://%s/%s: the answer was lost but "
			 "the object is complete (ETag %s)", c->bucket, kl, expected);
	}
	return matches;
}

/* The attempts of one Complete (see the top comment). Returns 0 and etag_out, or -errno with
 * *err filled and one line logged. */
static int complete_attempts(struct s3_client *c, const char *key, const char *url,
			     const char *xml, const char *expected, char etag_out[S3_ETAG_MAX],
			     struct awserr *err)
{
	const char *op = "CompleteMultipartUpload";
	char etag[S3_ETAG_MAX];
	struct awserr ae;
	awserr_clear(&ae);
	for (int attempt = 1;; attempt++) {
		etag[0] = '\0';
		if (complete_once(c, url, xml, etag, &ae) == 0) {
			if (etag[0] && strchr(etag, '-') && strcasecmp(etag, expected) != 0) {
				char detail[256];
				snprintf(detail, sizeof(detail), "ETag %s of the answer is not the "
					 "expected %s", etag, expected);
				return s3i_fail(c, op, key, EIO, detail, err);
			}
			if (etag_out)
				snprintf(etag_out, S3_ETAG_MAX, "%s", etag[0] ? etag : expected);
			return 0;
		}
		if (!ae.retryable && ae.err != ENOENT)
			break;
		/* the answer may have been lost after the server completed: ask the object */
		if (complete_happened(c, key, expected)) {
			if (etag_out)
				snprintf(etag_out, S3_ETAG_MAX, "%s", expected);
			return 0;
		}
		if (ae.err == ENOENT || attempt >= S3_COMPLETE_TRIES)
			break;
		s3i_sleep_ms(200u * (unsigned)attempt);
	}
	return s3i_log_failure(c, LOG_LEVEL_ERROR, op, key, &ae, err);
}

int s3_mpu_complete(struct s3_client *c, const char *key, const char *upload_id,
		    const struct s3_part *parts, size_t n, char etag_out[S3_ETAG_MAX],
		    struct awserr *err)
{
	struct buf url = BUF_INIT, xml = BUF_INIT;
	char expected[S3_ETAG_MAX];
	int rc = complete_prepare(c, key, upload_id, parts, n, &url, &xml, expected, err);
	if (!rc)
		rc = complete_attempts(c, key, url.data, xml.data, expected, etag_out, err);
	if (!rc && err)
		awserr_clear(err);
	buf_free(&url);
	buf_free(&xml);
	return rc;
}

/* ---- AbortMultipartUpload ---- */

int s3_mpu_abort(struct s3_client *c, const char *key, const char *upload_id, struct awserr *err)
{
	struct buf q = BUF_INIT, url = BUF_INIT;
	struct http_response resp;
	struct awserr ae;
	if (!s3i_valid_key(key) || !upload_id || !*upload_id)
		return s3i_fail(c, "AbortMultipartUpload", key, EINVAL, "invalid upload", err);
	if (part_query(&q, 0, upload_id) || s3i_url(c, key, q.data, &url)) {
		buf_free(&q);
		buf_free(&url);
		return s3i_fail(c, "AbortMultipartUpload", key, ENOMEM, "out of memory", err);
	}
	struct awsreq r = { .method = "DELETE", .url = url.data, .idempotent = 1 };
	int rc = s3i_run(c, "AbortMultipartUpload", key, &r, &resp, S3I_QUIET_ALL, &ae);
	if (rc && ae.err == ENOENT && resp.attempts > 1)
		rc = 0; /* an earlier attempt whose answer was lost did it */
	if (rc) {
		/* NoSuchUpload: the upload has ended, which cleanup callers take as done */
		s3i_log_failure(c, ae.err == ENOENT ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR,
				"AbortMultipartUpload", key, &ae, err);
	} else if (err) {
		awserr_clear(err);
	}
	http_response_free(&resp);
	buf_free(&q);
	buf_free(&url);
	return rc;
}
