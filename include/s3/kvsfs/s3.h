/*
 * s3: the Amazon S3 client of kvsfs's export/ directory (any S3-compatible server: AWS, Ceph RGW).
 *
 * Every call is one or more signed requests through awsreq (service "s3", S3 signing rules with
 * x-amz-content-sha256 = the SHA-256 of the body, never UNSIGNED-PAYLOAD). Keys are put on the wire
 * with sigv4_uri_encode(keep_slash=1); query values with keep_slash=0. Addressing: path-style
 * (ENDPOINT/BUCKET/KEY; needed for IP-address endpoints and buckets with dots) or virtual-host
 * style (BUCKET.HOST/KEY).
 *
 * Integrity: every upload (PutObject, UploadPart) carries a Content-MD5 computed here (OpenSSL MD5,
 * streamed over the fd range in the same pass as the SHA-256), and the ETag of the answer must
 * equal that MD5 (hex) or the call fails with -EIO. CompleteMultipartUpload is checked against the
 * multipart ETag computed from the parts (md5(concat(part md5s))-N); when the server answers an
 * empty ETag (Ceph RGW) the computed one is returned. A 200 answer carrying an <Error> document
 * (CopyObject, CompleteMultipartUpload may do that) is a failure; for CopyObject a retryable one
 * is repeated (at most S3_COMPLETE_TRIES requests in all). The body of an fd upload is read
 * with pread: the file must not change during the call (a change shows up as BadDigest /
 * XAmzContentSHA256Mismatch from the server, never as a silently different object).
 *
 * Retries (in the HTTP layer, for requests marked idempotent): Head*, Get (with the caller's
 * reset callback), Put (memory or fd: the body is rewound for a resend), UploadPart, Copy, Delete,
 * Abort, List*, CreateMultipartUpload (a repeat only leaves an unused upload id behind, which
 * s3_mpu_list shows and an abort removes). CompleteMultipartUpload is NOT repeated blindly: a
 * Complete whose answer was lost may have worked, and a second Complete then fails with
 * NoSuchUpload. s3_mpu_complete therefore sends it once; after a retryable failure (transport error,
 * 5xx, throttling) or a NoSuchUpload, it asks HeadObject: when the object's ETag equals the
 * expected multipart ETag, the Complete did happen and the call succeeds; otherwise (upload still
 * open) Complete is sent again, at most S3_COMPLETE_TRIES times in all. An Abort or Delete whose
 * retry finds nothing to remove (NoSuchUpload after a lost answer) succeeds.
 *
 * Errors: every function returns 0 or a negative errno and fills *err (optional, may be NULL)
 * with the typed error; errnos come from awserr's one table (NoSuchKey/NoSuchBucket/404 ENOENT,
 * AccessDenied/SignatureDoesNotMatch/403 EACCES, BadDigest/400 EINVAL, 5xx EIO, throttling EAGAIN,
 * ...). Each failure logs exactly one line (level error, or debug for an expected "not found" of
 * HeadObject and for NoSuchUpload of AbortMultipartUpload) naming the operation, bucket, key and
 * the awserr description; secrets never.
 *
 * Keys: 1..1024 bytes, without "." or ".." segments ("a/./b": libcurl would remove them from the
 * wire path); other keys fail with -EINVAL before any request.
 *
 * Layering: the API speaks S3 only (keys, user metadata as struct s3_meta, body callbacks as
 * s3_body_fn/s3_reset_fn); no HTTP type appears here, so the filesystem layer never sees one.
 * The client is built on an awsreq context (declared in kvsfs/awsreq.h, which only the code that
 * creates the context needs). Test-only settings are in src/s3/s3_testing.h, not here.
 *
 * Ownership: strings in result structs belong to the structs (free functions below). Thread-
 * safety: a client is immutable after creation; any number of threads may use it at once.
 */
#ifndef KVSFS_S3_H
#define KVSFS_S3_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kvsfs/awserr.h"
#include "kvsfs/s3xml.h"

#define S3_ETAG_MAX S3XML_ETAG_MAX
/* Complete attempts in all (see the top comment). */
#define S3_COMPLETE_TRIES 3
/* Multipart limits of S3: parts 1..10000, each >= 5 MiB except the last, <= 5 GiB. */
#define S3_MAX_PARTS 10000
#define S3_MIN_PART_SIZE (5 * 1024 * 1024)
/* Largest single PutObject / part. */
#define S3_MAX_PUT_SIZE ((int64_t)5 * 1024 * 1024 * 1024)
/* Bound on XML reply bodies (listings, results). */
#define S3_MAX_XML_REPLY (16u << 20)

struct s3_client;
struct awsreq_ctx;

struct s3_client_opts {
	const struct awsreq_ctx *aws;  /* borrowed, must outlive the client */
	const char *endpoint;          /* "https://s3.us-east-1.amazonaws.com", "http://127.0.0.1:7480"
	                                * (awsconfig settings.s3_endpoint or an override); no path */
	const char *bucket;            /* required, 3-63 characters */
	int path_style;                /* 1: ENDPOINT/BUCKET/KEY; 0: virtual host BUCKET.HOST/KEY */
	int list_page_size;            /* max-keys / max-uploads per listing page; 0: 1000 */
};

/* Creates a client. Returns 0 and *out; -EINVAL (missing aws/endpoint/bucket, bad endpoint URL,
 * bucket name unusable for virtual-host style), -ENOMEM. One log line on failure. */
int s3_client_new(const struct s3_client_opts *opts, struct s3_client **out);
/* Frees the client (NULL allowed). No call may be running. */
void s3_client_free(struct s3_client *c);
/* The bucket name (owned by the client). */
const char *s3_client_bucket(const struct s3_client *c);

/* ---- user metadata ---- */

/* One user metadata entry (x-amz-meta-NAME: VALUE on the wire). */
struct s3_meta_entry {
	char *name;   /* malloc'd */
	char *value;  /* malloc'd */
};

/* User metadata of an object: an ordered list of name/value pairs, names compared
 * case-insensitively. Zero-initialise it (S3_META_INIT); free it with s3_meta_free. */
struct s3_meta {
	struct s3_meta_entry *v;
	size_t n, cap;
};

#define S3_META_INIT { NULL, 0, 0 }

/* Appends name = value (duplicates allowed). The name must be a non-empty header token (no
 * space, ':' or control byte) and the value free of CR/LF, else -EINVAL; values that are not
 * printable ASCII are refused later, by the upload that sends them. Returns 0, -EINVAL or
 * -ENOMEM. */
int s3_meta_add(struct s3_meta *m, const char *name, const char *value);
/* Replaces every entry of that name with one (or appends). Same checks and errors as add. */
int s3_meta_set(struct s3_meta *m, const char *name, const char *value);
/* The value of the first entry of that name (case-insensitive), or NULL. Owned by m. */
const char *s3_meta_lookup(const struct s3_meta *m, const char *name);
/* Appends copies of src's entries to dst. Returns 0 or -ENOMEM (dst may hold a prefix). */
int s3_meta_copy(struct s3_meta *dst, const struct s3_meta *src);
/* Frees every entry; m is empty and reusable afterwards. */
void s3_meta_free(struct s3_meta *m);

/* ---- object metadata ---- */

struct s3_object_info {
	int64_t size;                  /* Content-Length of the object; -1 unknown */
	int64_t last_modified;         /* Unix seconds; -1 when absent */
	char etag[S3_ETAG_MAX];        /* quotes removed */
	char *content_type;            /* malloc'd or NULL */
	struct s3_meta meta;           /* user metadata: names WITHOUT "x-amz-meta-", lower case */
};

/* Frees the struct's strings; it is empty (reusable) afterwards. */
void s3_object_info_free(struct s3_object_info *info);
/* Returns the value of user metadata `name` (without prefix, case-insensitive) or NULL. */
const char *s3_meta_get(const struct s3_object_info *info, const char *name);
/* Parses user metadata `name` as a decimal integer (optional '-', or octal with a leading 0 when
 * base8 is set, as for "mode"; a fractional part "1700000000.123" is cut). Returns 0 and *out;
 * -ENOENT when absent; -EINVAL when not a number. */
int s3_meta_get_int64(const struct s3_object_info *info, const char *name, int base8,
		      int64_t *out);

/* Options of uploads and copies. All optional (NULL opts = none). */
struct s3_put_opts {
	const struct s3_meta *meta;  /* user metadata: names without "x-amz-meta-" (a name that
	                              * already has the prefix is sent as is); values must be
	                              * printable ASCII (S3 rule), else the call fails with -EINVAL */
	const char *content_type;    /* NULL: none */
};

/*
 * Receives successive chunks of a GetObject body. Return 0 to go on or a negative errno to abort
 * the call (it then fails with that errno and is not retried).
 */
typedef int (*s3_body_fn)(void *arg, const void *data, size_t len);
/* Called before a retry when the failed attempt already passed bytes to the body callback:
 * discard them. Return 0 or a negative errno (the call then fails with it). */
typedef int (*s3_reset_fn)(void *arg);

/* ---- bucket ---- */

/*
 * HeadBucket: the mount-time check. Returns 0 when the bucket exists and these credentials may
 * use it; -ENOENT (logged "bucket B does not exist at ENDPOINT"), -EACCES ("access to bucket B at
 * ENDPOINT denied: check the credentials and the bucket policy"), or another errno.
 */
int s3_head_bucket(struct s3_client *c, struct awserr *err);

/* ---- objects ---- */

/* HeadObject: fills *info (initialised by the call; free it with s3_object_info_free, also after
 * a failure). -ENOENT when the key does not exist (logged at debug level only). */
int s3_head_object(struct s3_client *c, const char *key, struct s3_object_info *info,
		   struct awserr *err);

/*
 * GetObject of bytes [offset, offset + len) (len < 0: to the end; offset 0 and len < 0: the whole
 * object, no Range header). The body streams to body_fn; reset_fn (may be NULL, then a failure
 * after the first byte is not retried) is called before a retry to drop the bytes already given.
 * A range starting at or past the end of a non-empty object fails with -EINVAL (416). A ranged
 * answer must be 206 with the matching Content-Range, else -EIO (the sink may then hold bytes
 * already: on any failure the caller discards what it received). info may be
 * NULL; else it receives the object's headers (size = the whole object's size, from Content-Range
 * when ranged). Idempotent.
 */
int s3_get_object(struct s3_client *c, const char *key, int64_t offset, int64_t len,
		  s3_body_fn body_fn, s3_reset_fn reset_fn, void *arg,
		  struct s3_object_info *info, struct awserr *err);

/* PutObject from memory (data may be NULL when len is 0). etag_out (may be NULL) receives the
 * ETag (= hex MD5 of the data; verified). Idempotent. */
int s3_put_object_mem(struct s3_client *c, const char *key, const void *data, size_t len,
		      const struct s3_put_opts *opts, char etag_out[S3_ETAG_MAX],
		      struct awserr *err);

/* PutObject of bytes [offset, offset + len) of fd (pread; len < 0: to the end of the file, as
 * it is when the call starts). At most S3_MAX_PUT_SIZE bytes, else -EFBIG. The body is rewound
 * for retries. etag_out as above. */
int s3_put_object_fd(struct s3_client *c, const char *key, int fd, off_t offset, off_t len,
		     const struct s3_put_opts *opts, char etag_out[S3_ETAG_MAX],
		     struct awserr *err);

/* DeleteObject. Deleting a missing key succeeds (S3 semantics). Idempotent. */
int s3_delete_object(struct s3_client *c, const char *key, struct awserr *err);

enum s3_metadata_directive {
	S3_META_COPY = 0,     /* keep the source's metadata (opts->meta ignored) */
	S3_META_REPLACE = 1,  /* replace it with opts->meta / content_type */
};

/*
 * CopyObject src_key -> dst_key inside the bucket (server side; up to 5 GiB). dst may equal src
 * with S3_META_REPLACE: the way to change metadata (utimens, chmod). etag_out (may be NULL) gets
 * the new object's ETag. Idempotent.
 */
int s3_copy_object(struct s3_client *c, const char *src_key, const char *dst_key,
		   enum s3_metadata_directive directive, const struct s3_put_opts *opts,
		   char etag_out[S3_ETAG_MAX], struct awserr *err);

/*
 * ListObjectsV2 with prefix (NULL/"" = all) and delimiter (NULL/"" = none), following every page
 * (continuation tokens; a truncated page without a token, or a repeated token, is -EIO). Results
 * are APPENDED to *out (zero it first; free with s3xml_list_free): out->objects (key, size,
 * last_modified, etag) and out->prefixes (CommonPrefixes). max_entries > 0 stops after that many
 * objects + prefixes (out->truncated is then 1); 0 = no limit.
 */
int s3_list_objects(struct s3_client *c, const char *prefix, const char *delimiter,
		    size_t max_entries, struct s3xml_list *out, struct awserr *err);

/*
 * Callback for s3_list_objects_pages: gets each page (objects, prefixes, truncated = more pages
 * follow). It may take ownership of entries by moving them out and zeroing the counts. Return 0
 * for the next page, 1 to stop (success), or a negative errno to fail the call with it.
 */
typedef int (*s3_list_page_fn)(void *arg, struct s3xml_list *page);

/* ListObjectsV2 page by page (same checks as s3_list_objects), for listings too large to hold:
 * memory stays bounded by one page. */
int s3_list_objects_pages(struct s3_client *c, const char *prefix, const char *delimiter,
			  s3_list_page_fn page_fn, void *arg, struct awserr *err);

/* ---- multipart uploads ---- */

struct s3_part {
	int number;                   /* 1..10000 */
	char etag[S3_ETAG_MAX];       /* as returned by s3_mpu_upload_part (hex MD5) */
};

/* CreateMultipartUpload with opts' metadata / content type. *upload_id is malloc'd. */
int s3_mpu_create(struct s3_client *c, const char *key, const struct s3_put_opts *opts,
		  char **upload_id, struct awserr *err);

/*
 * UploadPart number part_number from bytes [offset, offset + len) of fd (len >= 0; at most 5 GiB).
 * Content-MD5 is sent and the answer's ETag checked against it; part->number/etag are filled.
 * (Metadata belongs to the upload: see s3_mpu_create.) Idempotent (the body is rewound).
 */
int s3_mpu_upload_part(struct s3_client *c, const char *key, const char *upload_id,
		       int part_number, int fd, off_t offset, off_t len, struct s3_part *part,
		       struct awserr *err);

/*
 * CompleteMultipartUpload with parts[0..n) (sorted by number, strictly increasing). Not blindly
 * repeated: see the top comment. etag_out (may be NULL) receives the object's ETag (the server's,
 * checked against md5-of-md5s-N, or that computed value when the server sent none).
 */
int s3_mpu_complete(struct s3_client *c, const char *key, const char *upload_id,
		    const struct s3_part *parts, size_t n, char etag_out[S3_ETAG_MAX],
		    struct awserr *err);

/* AbortMultipartUpload. -ENOENT (NoSuchUpload) means the upload is gone: never existed, already
 * aborted or completed, or aborted by an earlier attempt whose answer was lost (when the HTTP layer
 * saw that retry, the call returns 0). Cleanup callers treat -ENOENT as done; it is logged at
 * debug level only. */
int s3_mpu_abort(struct s3_client *c, const char *key, const char *upload_id, struct awserr *err);

/* ListMultipartUploads under prefix (NULL = all), every page; appended to *out (zero it first;
 * free with s3xml_uploads_free). */
int s3_mpu_list(struct s3_client *c, const char *prefix, struct s3xml_uploads *out,
		struct awserr *err);

/* The multipart ETag "<md5 of the concatenated binary part MD5s>-<n>" of parts[0..n) (their etags
 * must be 32 hex digits). Returns 0 or -EINVAL. Exposed for callers and tests. */
int s3_multipart_etag(const struct s3_part *parts, size_t n, char out[S3_ETAG_MAX]);

#endif
