/*
 * s3_int.h: what the files of the S3 client share (private to src/s3; the API is kvsfs/s3.h).
 *
 * The client is split by concept:
 *   client.c     the client, wire URLs and queries, key checks, the one request path (run /
 *                run_xml: sign + send + type the error + log one line), HeadBucket
 *   meta.c       struct s3_meta, object info, and the only conversions between S3 metadata and
 *                HTTP headers (request headers of uploads, object info from response headers)
 *   upload.c     integrity: Content-MD5 + SHA-256 in one pread pass, the rewindable fd body,
 *                the one PUT of PutObject and UploadPart with its ETag check, the multipart ETag
 *   object.c     HeadObject, GetObject, PutObject, DeleteObject, CopyObject
 *   list.c       ListObjectsV2 and ListMultipartUploads, every page
 *   multipart.c  CreateMultipartUpload, UploadPart, CompleteMultipartUpload, Abort
 *
 * Invariants (every file): a client is immutable after s3_client_new; every public call returns
 * 0 or -errno and, on failure, fills *err (when not NULL) and logs exactly one line (s3i_fail or
 * s3i_run) naming the operation and s3://bucket/key; no secret reaches a log line; no lock is
 * taken anywhere (the client has no mutable state).
 */
#ifndef KVSFS_S3_INT_H
#define KVSFS_S3_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kvsfs/awsreq.h"
#include "kvsfs/buf.h"
#include "kvsfs/http.h"
#include "kvsfs/log.h"
#include "kvsfs/s3.h"
#include "kvsfs/sigv4.h"

#define S3_MOD "s3"
#define S3_META_PREFIX "x-amz-meta-"

struct s3_client {
	const struct awsreq_ctx *aws;
	struct log_ctx *log;
	char *endpoint;   /* scheme://host[:port], no trailing '/' */
	char *bucket;
	char *base;       /* URL prefix before "/key": path-style endpoint/bucket; else scheme://bucket.host */
	int path_style;
	int page_size;
	int corrupt_md5;  /* tests only (s3_testing.h): send a wrong Content-MD5 */
};

/* Log levels of a failed request: QUIET_ENOENT logs "not found" at debug level, QUIET_ALL every
 * failure (the caller then logs its own line). */
enum { S3I_QUIET_NONE = 0, S3I_QUIET_ENOENT = 1, S3I_QUIET_ALL = 2 };

/* ---- client.c: URLs, keys, the request path ---- */

/* A key made safe for one log line: control bytes become '?', long keys are cut ("..."). */
void s3i_key_for_log(const char *key, char *out, size_t n);
/* A usable key: 1..1024 bytes and no "." or ".." path segment (libcurl would remove dot segments
 * from the wire path, breaking the signature and addressing another key). */
int s3i_valid_key(const char *key);
/* Appends the URL of key (NULL: the bucket itself) with query (NULL/"": none) to u. 0/-ENOMEM. */
int s3i_url(const struct s3_client *c, const char *key, const char *query, struct buf *u);
/* Appends "&name=value" ("name=value" when q is empty), value URI-encoded. 0 or -ENOMEM. */
int s3i_query_add(struct buf *q, const char *name, const char *value);
/* Copies *src to *dst when dst is not NULL. */
void s3i_copy_err(struct awserr *dst, const struct awserr *src);
/* Fails with a caller-decided errno e (positive): fills *err, logs one error line. Returns -e. */
int s3i_fail(struct s3_client *c, const char *op, const char *key, int e, const char *detail,
	     struct awserr *err);
/* Logs the failure ae of op on key at level lvl and copies it to *err. Returns -ae->err. */
int s3i_log_failure(struct s3_client *c, int lvl, const char *op, const char *key,
		    const struct awserr *ae, struct awserr *err);
/* Performs one signed request (service s3). On failure copies the typed error into *err and logs
 * one line (see the S3I_QUIET_* levels). resp is the caller's to free, also on failure. */
int s3i_run(struct s3_client *c, const char *op, const char *key, struct awsreq *r,
	    struct http_response *resp, int quiet, struct awserr *err);
/* s3i_run for a request whose 2xx answer is an XML document, read into *reply (bounded by
 * S3_MAX_XML_REPLY). */
int s3i_run_xml(struct s3_client *c, const char *op, const char *key, struct awsreq *r,
		struct buf *reply, struct http_response *resp, int quiet, struct awserr *err);
/* A 200 answer holding an <Error> document (Copy and Complete may send one): fills *ae (not
 * logged) and returns -ae->err; 0 when the reply is not an <Error>. */
int s3i_error_in_200(const struct buf *reply, const struct http_response *resp,
		     struct awserr *ae);
/* Sleeps ms milliseconds (restarted after signals); the pause between repeats of Copy/Complete. */
void s3i_sleep_ms(unsigned ms);

/* ---- meta.c: the S3 metadata <-> HTTP headers conversions ---- */

/* Sets up an empty info (size and last_modified -1). */
void s3i_info_init(struct s3_object_info *info);
/* Adds Content-Type and the x-amz-meta-* headers of o (may be NULL) to h. Returns 0, -EINVAL (a
 * metadata value that is not printable ASCII, or a bad name) or -ENOMEM. */
int s3i_put_headers(struct http_headers *h, const struct s3_put_opts *o);
/* Fills info from response headers (size from Content-Range's total when present; user metadata
 * from x-amz-meta-*, names lower-cased). Returns 0 or -ENOMEM. */
int s3i_info_from_headers(struct s3_object_info *info, const struct http_headers *h);

/* ---- object.c ---- */

/* HeadObject with the given log level (s3_mpu_complete asks quietly). */
int s3i_head_object(struct s3_client *c, const char *key, struct s3_object_info *info, int quiet,
		    struct awserr *err);

/* ---- upload.c: integrity-checked bodies ---- */

/* Digests of one upload body. */
struct s3i_digests {
	unsigned char md5[16];
	char md5_hex[33];
	char md5_b64[32];                 /* Content-MD5 (corrupted on purpose in tests) */
	char sha_hex[SIGV4_HEX_LEN + 1];  /* x-amz-content-sha256 */
};

/* A body read with pread from bytes [off, off + len) of fd; pos is the rewindable cursor. */
struct s3i_fd_body {
	int fd;
	off_t off, len, pos;
};

/* Digests of data[0..len). corrupt: flip the Content-MD5. Returns 0, -ENOMEM or -EIO. */
int s3i_hash_mem(const void *data, size_t len, int corrupt, struct s3i_digests *d);
/* Digests of bytes [off, off + len) of fd in one pread pass. Returns 0, -errno of pread, -EIO
 * (the file is shorter than the range) or -ENOMEM. */
int s3i_hash_fd(int fd, off_t off, off_t len, int corrupt, struct s3i_digests *d);
/* One PUT of PutObject or UploadPart: body from memory (data, len) or from fb (not NULL); the
 * Content-MD5 and SHA-256 of d; opts' headers (NULL for parts). The answer's ETag must equal the
 * MD5 (else -EIO); etag_out (may be NULL) receives it. */
int s3i_upload(struct s3_client *c, const char *op, const char *key, const char *query,
	       const void *data, size_t len, struct s3i_fd_body *fb, const struct s3i_digests *d,
	       const struct s3_put_opts *opts, char etag_out[S3_ETAG_MAX], struct awserr *err);

#endif
