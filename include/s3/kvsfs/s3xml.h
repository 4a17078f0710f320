/*
 * s3xml: a small, tolerant scanner for the XML documents S3 answers with: ListObjectsV2
 * (ListBucketResult), InitiateMultipartUploadResult, CompleteMultipartUploadResult,
 * CopyObjectResult and ListMultipartUploadsResult.
 *
 * It is not a general XML parser: the scanning is xmlscan's (include/kvsfs/xmlscan.h, the
 * project's one XML scanner), which finds elements by name (<Name>, <Name attr="...">, <Name/>)
 * and takes the text up to the matching </Name>; the documents above never nest an element in
 * one of the same name. Repeated records (<Contents>, <CommonPrefixes>, <Upload>) are scanned
 * one block at a time, and their fields are looked up inside the block only. Text is decoded:
 * the five XML entities, decimal/hex character references (encoded as UTF-8; &#0; and invalid
 * code points are kept literally) and nothing else (no DTDs, no external entities, no CDATA
 * semantics). Namespaces on the root element and an XML declaration are ignored.
 *
 * Bad input: a record without its end tag, a missing required field (<Key> in <Contents>,
 * <UploadId> in an <Upload> or an InitiateMultipartUploadResult), or a size that is not a
 * decimal number is -EIO (the caller logs one line). Unknown elements are ignored. The scanner
 * is linear in the input, never recurses, allocates only the strings it returns, and never reads
 * outside [body, body + len). Inputs need not be NUL-terminated.
 *
 * Ownership: result structs own every string in them; free them with the _free functions
 * (safe on zeroed structs). Thread-safety: no state; all functions are reentrant.
 */
#ifndef KVSFS_S3XML_H
#define KVSFS_S3XML_H

#include <stddef.h>
#include <stdint.h>

/* An ETag without its quotes: 32 hex digits, or "<32 hex>-<parts>" for multipart objects.
 * Longer values are truncated (they never match an MD5 then). */
#define S3XML_ETAG_MAX 80

struct s3xml_object {
	char *key;                   /* decoded object key (malloc'd) */
	int64_t size;                /* bytes; -1 when the listing did not say */
	int64_t last_modified;       /* Unix seconds (UTC); -1 when absent or unparsable */
	char etag[S3XML_ETAG_MAX];   /* quotes removed; "" when absent */
};

/* One or more ListObjectsV2 pages. */
struct s3xml_list {
	struct s3xml_object *objects;
	size_t n_objects, cap_objects;
	char **prefixes;             /* CommonPrefixes (malloc'd strings, with the delimiter) */
	size_t n_prefixes, cap_prefixes;
	int truncated;               /* IsTruncated of the LAST page parsed */
	char *next_token;            /* NextContinuationToken of the last page, or NULL */
	int64_t key_count;           /* KeyCount of the last page; -1 when absent */
};

struct s3xml_upload {
	char *key;                   /* object key of the upload (malloc'd) */
	char *upload_id;             /* malloc'd */
	int64_t initiated;           /* Unix seconds; -1 when absent */
};

/* One or more ListMultipartUploads pages. */
struct s3xml_uploads {
	struct s3xml_upload *v;
	size_t n, cap;
	int truncated;               /* IsTruncated of the last page */
	char *next_key_marker;       /* NextKeyMarker / NextUploadIdMarker of the last page, or NULL */
	char *next_upload_id_marker;
};

/* Frees every string and array; the struct is zeroed (reusable) afterwards. */
void s3xml_list_free(struct s3xml_list *l);
void s3xml_uploads_free(struct s3xml_uploads *u);

/*
 * Parses one ListObjectsV2 page and APPENDS its objects and common prefixes to *l; truncated,
 * next_token and key_count are replaced by this page's. Returns 0, -EIO (malformed: *l keeps
 * what earlier pages added, this page may be partly appended) or -ENOMEM.
 */
int s3xml_parse_list_v2(const void *body, size_t len, struct s3xml_list *l);

/* Parses one ListMultipartUploads page and appends its uploads to *u. Same errors. */
int s3xml_parse_list_uploads(const void *body, size_t len, struct s3xml_uploads *u);

/* InitiateMultipartUploadResult: *upload_id (malloc'd, non-empty). Returns 0, -EIO, -ENOMEM. */
int s3xml_parse_initiate(const void *body, size_t len, char **upload_id);

/*
 * CompleteMultipartUploadResult or CopyObjectResult (or CopyPartResult): the <ETag> (quotes
 * removed; "" when absent or empty, as RGW answers CompleteMultipartUpload). Returns 0 when the
 * root element is `expect_root`, -EIO for an <Error> document (S3 may send one with status 200
 * for Copy and Complete) or any other document.
 */
int s3xml_parse_etag_result(const void *body, size_t len, const char *expect_root,
			    char etag[S3XML_ETAG_MAX]);

/* The helpers below are the s3xml names of xmlscan calls (kept for the s3 client, its tests and
 * its fuzz target). */

/* Copies the name of the root element (after the XML declaration, comments and whitespace) into
 * out (truncated, NUL-terminated). Returns 1 when there is one, else 0 (out is ""). */
int s3xml_root(const void *body, size_t len, char *out, size_t n);

/*
 * Finds the first element `name` in [p, p + n): *val and *vlen get its raw content (empty for
 * <name/>). Returns 1 when found with its end tag, 0 when absent, -1 when the start tag has no
 * end tag (truncated document).
 */
int s3xml_find(const char *p, size_t n, const char *name, const char **val, size_t *vlen);

/* Decodes raw element text (entities, character references) into *out (malloc'd, NUL-terminated;
 * decoded NULs are impossible). Returns 0 or -ENOMEM. */
int s3xml_decode(const char *val, size_t vlen, char **out);

/* Writes an ETag without surrounding quotes (raw text: entities decoded, '"' and whitespace
 * trimmed) into out, truncated and with control bytes dropped. */
void s3xml_etag_clean(const char *val, size_t vlen, char out[S3XML_ETAG_MAX]);

/* Parses an ISO 8601 UTC time as S3 lists it ("2009-10-12T17:50:30.000Z", fraction and 'Z'
 * optional). Returns Unix seconds or -1. */
int64_t s3xml_parse_time(const char *s, size_t n);

/* Appends s[0..n) escaped for XML text (& < > " ') to out (a struct buf). Returns 0 or -ENOMEM. */
struct buf;
int s3xml_escape(struct buf *out, const char *s, size_t n);

#endif
