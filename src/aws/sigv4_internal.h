/*
 * sigv4_internal: what the files of the signer share (private to src/aws/sigv4*.c):
 * hashing primitives (sigv4_hash.c) and the canonical pieces of a request (sigv4_canon.c) that
 * sigv4.c assembles into a signature.
 */
#ifndef KVSFS_AWS_SIGV4_INTERNAL_H
#define KVSFS_AWS_SIGV4_INTERNAL_H

#include <stddef.h>

#include "kvsfs/buf.h"
#include "kvsfs/sigv4.h"

#define SIGV4_REDACTED "[REDACTED]"

/* ---- hashing (sigv4_hash.c) ---- */

/* Lowercase hex of in[0..n) into out (2n + 1 bytes). */
void sigv4_to_hex(const unsigned char *in, size_t n, char *out);
/* HMAC-SHA256. Returns 0 or -EIO. */
int sigv4_hmac256(const void *key, size_t keylen, const char *msg, size_t n,
		  unsigned char out[32]);

/* ---- canonical pieces (sigv4_canon.c) ---- */

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

/* Frees (and wipes secret values of) every entry; l is empty afterwards. */
void sigv4_kvlist_free(struct kvlist *l);
/* Appends; takes ownership of name and value (frees them on failure; NULL is -ENOMEM). */
int sigv4_kvlist_add(struct kvlist *l, char *name, char *value, int secret);
/* Sorts by name, then (by_value) by value, else by original position (stable). */
void sigv4_kvlist_sort(struct kvlist *l, int by_value);
/* Joins adjacent entries with the same name with ','. Returns 0 or -ENOMEM. */
int sigv4_merge_repeated(struct kvlist *hl);
/* Adds the caller's query parameters, decoded and re-encoded. Returns 0 or -ENOMEM. */
int sigv4_parse_query(struct kvlist *l, const char *q);
/* Adds one parameter, value encoded. Returns 0 or -ENOMEM. */
int sigv4_add_query_param(struct kvlist *l, const char *name, const char *value, int secret);
/* 0 when a header value has no control characters but HT and line folds, else -EINVAL. */
int sigv4_check_header_value(const char *v);
/* The value trimmed with inner whitespace runs collapsed, malloc'd (NULL: -ENOMEM). */
char *sigv4_trimall(const char *v);
/* Lower-cased, trimmed header name, or NULL (errno EINVAL for a bad name, ENOMEM). */
char *sigv4_canon_name(const char *name);
/* 1 when the header is never signed (or added by the signer itself). */
int sigv4_header_skipped(const char *lname, unsigned flags, int presign);
/* The canonical URI of a wire path under flags. Returns 0 or -ENOMEM. */
int sigv4_canonical_uri(struct buf *out, const char *path, unsigned flags);
/* 1 for 64 lowercase hex digits, UNSIGNED-PAYLOAD or STREAMING-..., else 0. */
int sigv4_valid_payload_hash(const char *h);
/* 1 for a non-empty string of printable ASCII without spaces (and '/' unless allowed). */
int sigv4_valid_token_chars(const char *s, int allow_slash);
/* The canonical request text; with redact, secret values read "[REDACTED]". */
int sigv4_render_creq(struct buf *o, const char *method, const char *uri, const struct kvlist *q,
		      const struct kvlist *h, const char *signed_headers, const char *payload,
		      int redact);

#endif
