/*
 * sigv4: AWS Signature Version 4 (AWS4-HMAC-SHA256) request signing with OpenSSL libcrypto.
 * (Payload hashing: sigv4_hash.h, included here.)
 *
 * The HTTP layer signs every attempt (a retry gets a fresh X-Amz-Date) by describing the request
 * exactly as it will go on the wire:
 *   - method ("GET", "POST", ...);
 *   - path as sent, already percent-encoded ("/putMedia", "/bucket/a%20b.mkv"); NULL or "" is "/";
 *   - raw query string without the '?' (already percent-encoded, as sent), NULL or "" for none;
 *   - every header that will be sent and should be signed, Host included (Host is required);
 *   - the payload hash: 64 lowercase hex digits, SIGV4_UNSIGNED_PAYLOAD, or NULL for the hash of
 *     the empty body (SIGV4_EMPTY_SHA256, also what KVS PutMedia streaming signs);
 *   - credentials, region, service, the time (callers pass time(NULL); tests a fixed time), flags.
 * It gets back either the headers to add (X-Amz-Security-Token, X-Amz-Date, x-amz-content-sha256,
 * Authorization, in that order) or, for presigning, the complete query string for the URL.
 *
 * Canonicalisation rules (match botocore and the AWS test suites):
 *   - Path, default (every service except S3): remove "." and ".." segments and collapse "//"
 *     (unless SIGV4_NO_NORMALIZE), then URI-encode the wire path once more: every byte outside the
 *     RFC 3986 unreserved set (A-Z a-z 0-9 - . _ ~) except '/' becomes %XX, including the '%' of
 *     existing escapes. That is AWS's "double encoding" (wire "a%3Ab" is signed as "a%253Ab").
 *   - Path, SIGV4_S3: no normalisation, single encoding: unreserved bytes and '/' stay, valid %XX
 *     escapes stay (hex upper-cased; escaped unreserved bytes are decoded), any other byte is
 *     encoded. For a wire path built with sigv4_uri_encode(keep_slash=1), which is how S3 keys
 *     should be put on the wire, this is the wire path itself. (A literal '+', '=' or '@' in an S3
 *     wire path is signed as %2B, %3D, %40; botocore would sign it verbatim, but never sends one.)
 *     SIGV4_SINGLE_ENCODE alone gives this encoding with normalisation.
 *   - Query: split on '&' (empty pieces are skipped), name/value split at the first '=' (a piece
 *     without '=' has an empty value), each part percent-decoded then re-encoded with the
 *     unreserved set, pairs sorted by encoded name then encoded value (byte order), repeated keys
 *     kept. '+' is NOT a space: it is signed as %2B, so send spaces as %20 (and '+' as %2B).
 *     Malformed escapes ("%", "%zz") are taken literally (signed as %25...).
 *   - Headers: names lower-cased and trimmed; values trimmed with inner runs of whitespace
 *     (SP, HT, CR, LF) collapsed to one space; repeated names joined with ',' in the order given;
 *     sorted by name. Not signed: Authorization, User-Agent, Expect, X-Amzn-Trace-Id (botocore's
 *     list), and the headers this module adds itself (X-Amz-Date, X-Amz-Security-Token, and
 *     x-amz-content-sha256 when SIGV4_CONTENT_SHA256/SIGV4_S3 asks for it); caller copies of those
 *     are ignored and must not be sent (send the returned ones instead).
 *   - Session token: by default sent as X-Amz-Security-Token and signed (botocore behaviour); for
 *     presigned URLs it is the X-Amz-Security-Token query parameter (signed). SIGV4_TOKEN_UNSIGNED
 *     still sends it but leaves it out of the signature (the "header after" style of the AWS suite
 *     and of the KVS C producer).
 *
 * Secrets: the secret key never leaves this module. The session token, the signature, the
 * Authorization value and a presigned query string are outputs for the wire only; never log them.
 * For logs use sigv4_result.canonical_request_log (the token, and the values of secret headers
 * (log_header_is_secret) and of X-Amz-Security-Token / X-Amz-Signature query parameters, are
 * replaced by "[REDACTED]"; with params->log at debug level it is logged on every signature) and
 * sigv4_result.string_to_sign (holds only a hash). The raw canonical request is kept only when
 * SIGV4_KEEP_CANONICAL is passed (tests), because it contains the session token.
 *
 * Thread-safety: all functions are reentrant and keep no global state. A struct sigv4_key_cache is
 * not locked: use one per thread, or serialise access to it.
 */
#ifndef KVSFS_SIGV4_H
#define KVSFS_SIGV4_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "kvsfs/sigv4_hash.h"

struct log_ctx;
struct buf;

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
/* SHA-256 of the empty string: the payload hash of an empty body and of KVS PutMedia streaming. */
#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
/* Presigned URLs may live at most 7 days. */
#define SIGV4_MAX_EXPIRES 604800u

/* Credentials. Borrowed by the signer for the duration of one call. */
struct sigv4_creds {
	const char *access_key_id;     /* required */
	const char *secret_access_key; /* required */
	const char *session_token;     /* NULL or "" when there is none */
};

/* One HTTP header (name without ':'). */
struct sigv4_header {
	const char *name;
	const char *value;
};

enum sigv4_flags {
	/* S3 rules: no path normalisation, single encoding, and (header signing) adds and signs
	 * x-amz-content-sha256 with the payload hash. */
	SIGV4_S3 = 1u << 0,
	/* Keep ".", ".." and "//" in the canonical path (implied by SIGV4_S3). */
	SIGV4_NO_NORMALIZE = 1u << 1,
	/* Do not encode the wire path a second time (implied by SIGV4_S3). */
	SIGV4_SINGLE_ENCODE = 1u << 2,
	/* Header signing: add and sign x-amz-content-sha256: <payload hash> (implied by SIGV4_S3;
	 * the KVS Java producer style for PutMedia). Ignored when presigning. */
	SIGV4_CONTENT_SHA256 = 1u << 3,
	/* Send the session token but do not sign it (header: not in SignedHeaders; presign: the
	 * parameter is appended to the URL but left out of the canonical query). */
	SIGV4_TOKEN_UNSIGNED = 1u << 4,
	/* Keep the raw canonical request in sigv4_result.canonical_request (tests only: it contains
	 * the session token). */
	SIGV4_KEEP_CANONICAL = 1u << 5,
};

/* The request as it will be sent. All pointers are borrowed for the duration of one call. */
struct sigv4_request {
	const char *method;                /* required, e.g. "POST" */
	const char *path;                  /* wire path, percent-encoded; NULL or "" means "/" */
	const char *query;                 /* wire query without '?'; NULL or "" for none */
	const struct sigv4_header *headers; /* headers that will be sent; must include Host */
	size_t n_headers;
	const char *payload_hash;          /* 64 hex, SIGV4_UNSIGNED_PAYLOAD, NULL (empty body) */
};

/* Scope, time and options of one signature. */
struct sigv4_params {
	const char *region;   /* required, e.g. "us-west-2" */
	const char *service;  /* required: "kinesisvideo", "s3", ... */
	time_t now;           /* signing time (UTC seconds): time(NULL), or a fixed time in tests */
	unsigned flags;       /* enum sigv4_flags */
	unsigned expires;     /* presign only: X-Amz-Expires in seconds, 1..604800; 0 means 3600 */
	struct log_ctx *log;  /* optional: bad-input errors, debug: redacted canonical request */
};

/* Caller-owned cache of the derived signing key for one (access key, secret, date, region,
 * service); reused while they stay the same. Zero-initialise it (SIGV4_KEY_CACHE_INIT) before first
 * use and wipe it with sigv4_key_cache_clear() when done. Holds key material: never log or copy. */
struct sigv4_key_cache {
	int valid;
	char date[9];                  /* YYYYMMDD */
	char region[64];
	char service[64];
	char access_key_id[129];
	unsigned char secret_fp[32];   /* SHA-256 of the secret, to notice a changed secret */
	unsigned char key[32];         /* kSigning */
};

#define SIGV4_KEY_CACHE_INIT { 0 }

/* Wipes the cached key. */
void sigv4_key_cache_clear(struct sigv4_key_cache *cache);

/* Result of one signature. Every string is owned by the result; release with sigv4_result_free().
 * After a failed call the result is empty (all NULL / 0) and needs no free (freeing is
 * harmless). */
struct sigv4_result {
	/* Header signing: headers to add to the request, in order; names are static strings, values
	 * point into this result. Contains secrets (token, signature): never log. */
	struct sigv4_header add[4];
	size_t n_add;
	char *values_[4];           /* private: storage behind add[].value */
	char *authorization;        /* header signing: Authorization value (secret: do not log) */
	char *query;                /* presign: whole query string for the URL, no '?' (secret) */
	char amz_date[17];          /* "YYYYMMDDTHHMMSSZ" */
	char signature[SIGV4_HEX_LEN + 1]; /* secret: do not log */
	char *signed_headers;       /* "host;x-amz-date" */
	char *credential_scope;     /* "20150830/us-east-1/service/aws4_request" */
	char *canonical_request_log; /* for logs: canonical request with the token "[REDACTED]" */
	char *string_to_sign;       /* for logs: contains no secret */
	char *canonical_request;    /* raw, only with SIGV4_KEEP_CANONICAL (contains the token) */
};

#define SIGV4_RESULT_INIT { 0 }

/* Frees and wipes everything in r; r is empty afterwards. */
void sigv4_result_free(struct sigv4_result *r);

/* Header signing. Computes the signature for req and fills out (which must be empty, e.g.
 * SIGV4_RESULT_INIT or freed) with the headers to add. cache may be NULL. Returns 0, -EINVAL for
 * bad input (missing method/host/credentials/region/service, bad payload hash, control characters
 * or a bare line break in a header, a time that cannot be formatted; one line is logged to
 * params->log naming the cause), -ENOMEM, or -EIO when libcrypto fails. */
int sigv4_sign_headers(const struct sigv4_request *req, const struct sigv4_creds *creds,
		       const struct sigv4_params *params, struct sigv4_key_cache *cache,
		       struct sigv4_result *out);

/* Presigning: like sigv4_sign_headers(), but the auth goes into the query. out->query receives
 * the full query string: the caller's query verbatim, then X-Amz-Algorithm, X-Amz-Credential,
 * X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders, X-Amz-Security-Token (when there is a token),
 * X-Amz-Signature (botocore's order). The headers in req (Host at least) must be sent unchanged.
 * For S3 pass SIGV4_S3 and payload_hash SIGV4_UNSIGNED_PAYLOAD. Same errors; also -EINVAL for
 * expires > SIGV4_MAX_EXPIRES. out->n_add is 0. */
int sigv4_presign(const struct sigv4_request *req, const struct sigv4_creds *creds,
		  const struct sigv4_params *params, struct sigv4_key_cache *cache,
		  struct sigv4_result *out);

/* Appends s[0..n) URI-encoded with the RFC 3986 unreserved set (uppercase %XX); '/' is kept
 * when keep_slash is set (paths), else encoded (query names/values). Useful for building wire
 * paths and query strings. Returns 0 or -ENOMEM. */
int sigv4_uri_encode(struct buf *out, const char *s, size_t n, int keep_slash);

/* Formats t as "YYYYMMDDTHHMMSSZ" (UTC). Returns 0 or -EINVAL (time out of range). */
int sigv4_format_amz_date(time_t t, char out[17]);

#endif
