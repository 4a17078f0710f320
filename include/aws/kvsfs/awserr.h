/*
 * awserr: typed AWS errors and the ONE errno table of kvsfs.
 *
 * A failed AWS request is described by a struct awserr: the HTTP status (0 when no response
 * arrived), the transport (libcurl) code (0 when the transfer itself worked), the AWS error type
 * ("ResourceNotFoundException", "NoSuchKey", ...), a truncated message, the request id, and the
 * errno kvsfs returns for it. Every errno decision in the project goes through
 * awserr_errno_for(); docs/ERRORS.md lists the same table in prose. Principles:
 *   - ENOENT only when the server said "not found" (404 or a not-found type); a 5xx or a timeout
 *     is never ENOENT, whatever the body claims.
 *   - throttling (after the HTTP layer's retries ran out) is EAGAIN.
 *   - 5xx and transport failures are EIO, except timeouts (ETIMEDOUT), refused connections
 *     (ECONNREFUSED) and DNS failures (EHOSTUNREACH).
 *
 * Parsing (awserr_parse): the type comes from the x-amzn-ErrorType header cut at the first ':',
 * else from a JSON body's "__type" (any "namespace#" prefix stripped), else its "code"/"Code";
 * the message from "Message"/"message". S3-style XML bodies (<Error><Code>..</Code><Message>..
 * </Message><RequestId>..</RequestId></Error>) are read with a small tolerant scanner. Anything
 * else (HTML, garbage, empty) falls back to the HTTP status. Strings copied into the struct are
 * truncated to the fixed sizes below and sanitised (control characters become '?'), so they are
 * safe to log. No function here allocates or keeps pointers to its inputs.
 *
 * Thread-safety: all functions are pure or work only on the struct passed in.
 */
#ifndef KVSFS_AWSERR_H
#define KVSFS_AWSERR_H

#include <stddef.h>

#define AWSERR_TYPE_MAX 128   /* buffer sizes, including the NUL */
#define AWSERR_MSG_MAX 512
#define AWSERR_REQID_MAX 128

struct awserr {
	int http_status;   /* final HTTP status; 0 when no response was received */
	int curl_code;     /* CURLcode of the failed transfer; 0 when the transfer completed */
	int err;           /* positive errno kvsfs reports (ENOENT, EACCES, ...); 0 = no error */
	int retryable;     /* 1 when awserr_is_retryable() said the request may be repeated */
	int throttled;     /* 1 for throttling (ClientLimitExceeded, SlowDown, 429, ...) */
	char type[AWSERR_TYPE_MAX];        /* AWS error type, "" when unknown */
	char message[AWSERR_MSG_MAX];      /* server message or transport detail, "" when none */
	char request_id[AWSERR_REQID_MAX]; /* x-amzn-RequestId / x-amz-request-id, "" when none */
};

/* Resets e to "no error" (all zero / empty). */
void awserr_clear(struct awserr *e);

/*
 * Fills e from an HTTP error response (status >= 300 expected; any status is accepted).
 * errtype_hdr: value of x-amzn-ErrorType (may be NULL); reqid_hdr: x-amzn-RequestId or
 * x-amz-request-id (may be NULL; the XML <RequestId> is used when absent); body/len: the error
 * body (may be NULL/0, need not be NUL-terminated, may be truncated). Sets type, message,
 * request_id, http_status, curl_code = 0, then err/retryable/throttled from the table.
 * Never fails; returns -e->err (a negative errno).
 */
int awserr_parse(struct awserr *e, int http_status, const char *errtype_hdr,
		 const char *reqid_hdr, const void *body, size_t len);

/*
 * Fills e for a transport failure (no complete response): curl_code is a CURLcode, detail a
 * human-readable reason (curl's error buffer; may be NULL), http_status the status if a status
 * line was received (a body cut short after the headers), else 0. Returns -e->err.
 */
int awserr_set_transport(struct awserr *e, int curl_code, int http_status, const char *detail);

/*
 * Fills e for a failure decided by the caller (a callback aborted the request, out of memory,
 * a body that cannot be rewound, ...): err is a positive errno, detail a reason (may be NULL).
 * Not retryable. Returns -err.
 */
int awserr_set_errno(struct awserr *e, int err, const char *detail);

/*
 * THE errno table. http_status may be 0 (no response), type may be NULL or "", curl_code 0 when
 * the transfer completed. Returns a positive errno, or 0 for a 2xx status with no type and no
 * transport error. Order: transport code first, then 5xx (EIO, never ENOENT), then the type,
 * then the status.
 */
int awserr_errno_for(int http_status, const char *type, int curl_code);

/* 1 when the type or status means throttling (ClientLimitExceededException,
 * ConnectionLimitExceededException, SlowDown, Throttling*, RequestLimitExceeded,
 * TooManyRequestsException, ProvisionedThroughputExceeded*, HTTP 429), else 0. */
int awserr_is_throttle(int http_status, const char *type);

/*
 * 1 when repeating the same request may succeed: throttling, 5xx, transient types
 * (InternalFailure, ServiceUnavailable, RequestTimeout, ...), and transport failures that are
 * not the caller's fault (connect failures, DNS, timeouts, resets, truncated bodies). 4xx client
 * errors are never retryable (except throttling and RequestTimeout). The HTTP layer additionally
 * retries only requests marked safe to repeat.
 */
int awserr_retryable(int http_status, const char *type, int curl_code);
/* Same for a filled struct. */
int awserr_is_retryable(const struct awserr *e);

/*
 * Writes a one-line description ("HTTP 404 ResourceNotFoundException: Stream not found
 * (request id abc) -> ENOENT") into out (always NUL-terminated when n > 0). Safe to log.
 * Returns out.
 */
char *awserr_format(const struct awserr *e, char *out, size_t n);

/*
 * Writes one short sentence for a person (the mount's start-up error): credential and
 * permission types get a fixed phrase with the type, the HTTP status and what to check ("the
 * credentials were rejected (SignatureDoesNotMatch, HTTP 403): check the secret access key");
 * anything else the type or transport code, the first sentence of the message (at most 120
 * bytes) and the errno. Never the server's whole message (a signature mismatch carries the
 * canonical request) nor the request id. Safe to print; always NUL-terminated when n > 0.
 * Returns out.
 */
char *awserr_summary(const struct awserr *e, char *out, size_t n);

/* Low-level body scanners, exposed for tests and fuzzing. Each fills type/message (and
 * request_id for XML) when found, truncating and sanitising; returns 1 when the body was
 * recognised as that format (even if some fields were missing), else 0. Outputs untouched
 * fields stay as they were. */
int awserr_parse_json_body(const void *body, size_t len, char *type, size_t type_n,
			   char *msg, size_t msg_n);
int awserr_parse_xml_body(const void *body, size_t len, char *type, size_t type_n,
			  char *msg, size_t msg_n, char *reqid, size_t reqid_n);

#endif
