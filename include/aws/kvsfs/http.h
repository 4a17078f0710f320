/*
 * http: HTTP/1.1 client over libcurl with connection reuse, retries and typed errors. Header
 * lists are in http_headers.h (included here); the client object in http_client.c.
 *
 * One struct http_client per process (or per endpoint family with different timeouts, e.g. the
 * credentials helper's short IMDS timeouts). It is thread-safe: any number of threads may call
 * http_perform() on the same client at once.
 *
 * Connection reuse: the client keeps a pool of idle CURL easy handles (checked out and in under a
 * mutex, most recently used first). An easy handle keeps its own live connections between
 * transfers (curl_easy_reset() does not drop them), so sequential requests to one host reuse one
 * TCP/TLS connection. A CURLSH share (with lock callbacks, one mutex per lock data kind) shares
 * the DNS cache and TLS session ids between all handles, so a new connection from another handle
 * resumes TLS sessions. The connection cache is deliberately NOT put in the share: libcurl
 * documents sharing it between concurrently running threads as unsafe (known bug 11.11 for this
 * libcurl generation), and the handle pool gives reuse without that risk.
 *
 * TLS: peer and host verification are always on unless opts.no_verify_ssl is set (logged as a
 * warning). opts.ca_file ADDS a trust anchor, it does not replace system trust: the client reads
 * libcurl's default CA bundle (CURLINFO_CAINFO) plus ca_file into one in-memory PEM bundle given
 * to libcurl with CURLOPT_CAINFO_BLOB (libcurl's default CA path still applies as well).
 * Minimum TLS 1.2. Redirects are not followed. HTTP/1.1 only.
 *
 * A request (struct http_request) runs as one or more attempts. Before every attempt the
 * caller's prepare() callback gets a fresh copy of req->headers to add per-attempt headers (SigV4
 * signs each attempt with a fresh X-Amz-Date). The request body comes from memory or from a read
 * callback (known size, or chunked when the size is -1). 2xx response bodies are streamed to the
 * caller's body callback as they arrive; nothing needs to fit in memory. Non-2xx bodies go into a
 * bounded error buffer (64 KiB by default) and are parsed into a struct awserr.
 *
 * Completeness: a request succeeds (returns 0) only with a 2xx status and the WHOLE body: libcurl
 * errors such as PARTIAL_FILE, RECV_ERROR, GOT_NOTHING, an unterminated chunked body, and a
 * Content-Length that differs from the bytes received are failures (EIO, retryable). The caller
 * never sees a short body as success. (A body delimited only by the server closing the
 * connection, with neither Content-Length nor chunked encoding, cannot be checked; AWS never
 * sends one.) A read-callback body that ends before its announced size fails with EIO.
 *
 * Retries: only for requests marked idempotent (safe to repeat). Retried: throttling
 * (ClientLimitExceededException, ConnectionLimitExceededException, SlowDown, Throttling*,
 * RequestLimitExceeded, 429, ...), 5xx, connection failures, timeouts, resets and truncated
 * bodies (see awserr_retryable()). Never retried: other 4xx. Backoff is full jitter:
 * sleep = uniform(0, min(max_delay, base_delay * 2^n)) from a per-client PRNG under a mutex. No
 * new attempt is started once max_total_ms would be exceeded by the sleep before it. Before a
 * retry, the reset callback tells the caller to discard body bytes it got from the failed attempt,
 * and the request body is rewound (memory bodies always; read-callback bodies only through the
 * rewind callback: a body without one is not retried once bytes of it were sent).
 * Logging: one debug line per attempt (method, host and path with the query string dropped,
 * status or curl error, attempt number, next delay), one warning when retries run out. Header
 * values and query strings are never logged.
 */
#ifndef KVSFS_HTTP_H
#define KVSFS_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kvsfs/awserr.h"
#include "kvsfs/buf.h"
#include "kvsfs/http_headers.h"
#include "kvsfs/log.h"

struct http_client;

/* ---- client ---- */

struct http_retry_policy {
	int max_attempts;        /* attempts in all, first included; 1 = no retries. 0: default 5 */
	unsigned base_delay_ms;  /* backoff base. 0: default 100 */
	unsigned max_delay_ms;   /* cap on one sleep. 0: default 5000 */
	unsigned max_total_ms;   /* budget from the first attempt's start; no sleep/attempt starts
	                          * beyond it. 0: default 60000 */
};

struct http_client_opts {
	struct log_ctx *log;          /* may be NULL (silent); must outlive the client */
	long connect_timeout_ms;      /* TCP+TLS connect timeout. 0: default 10000 */
	long low_speed_limit;         /* abort an attempt slower than this many bytes/s ... */
	long low_speed_time_s;        /* ... for this many seconds. 0/0: defaults 1 B/s over 30 s;
	                               * a negative low_speed_time_s disables the check */
	long total_timeout_ms;        /* default whole-attempt timeout; 0: none */
	const char *ca_file;          /* PEM file ADDED to system trust; NULL: system trust only */
	int no_verify_ssl;            /* 1: disable TLS verification (tests only; logged) */
	struct http_retry_policy retry;
	const char *user_agent;       /* NULL: "kvsfs/<version>" */
	unsigned pool_max_idle;       /* idle easy handles kept. 0: default 16 */
	uint64_t seed;                /* jitter PRNG seed; 0: from getrandom() */
	size_t max_error_body;        /* error-body buffer bound. 0: default 65536 */
};

/* Fills opts with defaults (all zero, meaning "use the defaults above"). */
void http_client_opts_init(struct http_client_opts *opts);

/*
 * Creates a client. opts is copied (strings duplicated). Requires curl_global_init() to have
 * been called by main. Returns 0 and *out, or a negative errno: -ENOENT/-EACCES when ca_file
 * cannot be read, -EINVAL when it holds no PEM certificate, -ENOMEM, -EIO (libcurl set-up).
 * One log line names the cause.
 */
int http_client_new(const struct http_client_opts *opts, struct http_client **out);
/* Frees the client and its idle handles. No request may be running. NULL is allowed. */
void http_client_free(struct http_client *c);

/* ---- request ---- */

struct http_request;

/*
 * Receives successive chunks of a 2xx response body of the current attempt. Return 0 to go on or
 * a negative errno to abort the request (it then fails with that errno and is not retried).
 */
typedef int (*http_body_fn)(void *arg, const void *data, size_t len);
/* Called before a retry when the failed attempt passed bytes to body_fn: discard them. Return 0
 * or a negative errno (the request then fails with it). */
typedef int (*http_reset_fn)(void *arg);
/* Supplies up to len bytes of the request body; returns the count (0 = end of body) or a negative
 * errno (the request fails with it, not retried). */
typedef ssize_t (*http_read_fn)(void *arg, void *dst, size_t len);
/* Rewinds the request body to its start for a resend; returns 0 or a negative errno. */
typedef int (*http_rewind_fn)(void *arg);
/*
 * Called before every attempt (attempt = 1, 2, ...). headers holds a fresh copy of req->headers;
 * the callback adds or replaces headers for this attempt (X-Amz-Date, Authorization, tokens...).
 * Return 0, or a negative errno to abort the request (not retried).
 */
typedef int (*http_prepare_fn)(void *arg, const struct http_request *req,
			       struct http_headers *headers, int attempt);

struct http_request {
	const char *method;               /* "GET", "HEAD", "PUT", "POST", "DELETE", ... */
	const char *url;                  /* absolute http(s) URL, query already encoded */
	const struct http_headers *headers; /* fixed headers, may be NULL */

	/* Request body: memory (body, body_len), or read_fn, or none (both NULL). */
	const void *body;
	size_t body_len;
	http_read_fn read_fn;
	http_rewind_fn rewind_fn;         /* NULL: not resent once bytes were read */
	void *read_arg;
	int64_t body_size;                /* read_fn body: exact size, or -1 for chunked */

	http_prepare_fn prepare;          /* may be NULL */
	void *prepare_arg;

	/* 2xx response body sink. body_fn NULL: the body is read and discarded. */
	http_body_fn body_fn;
	http_reset_fn reset_fn;           /* NULL with bytes received: the request is not retried */
	void *body_arg;

	int idempotent;                   /* 1: safe to repeat, so it may be retried */
	int max_attempts;                 /* 0: the client's policy; else overrides it */
	unsigned max_total_ms;            /* 0: the client's retry budget; else this request's
	                                   * whole time budget: no attempt or sleep starts beyond
	                                   * it, and each attempt's connect and total timeouts are
	                                   * capped at what is left of it (-ETIMEDOUT then) */
	long timeout_ms;                  /* whole-attempt timeout; 0: client default */
	long connect_timeout_ms;          /* 0: client default */
	int no_proxy;                     /* 1: never use a proxy (IMDS, container endpoint) */
};

struct http_response {
	int status;                   /* status of the final attempt; 0 when none arrived */
	struct http_headers headers;  /* headers of the final attempt (owned; freed by _free) */
	uint64_t body_bytes;          /* body bytes passed to body_fn by the final attempt */
	int attempts;                 /* attempts made */
	int failed_attempts;          /* attempts that failed (metrics) */
	int throttled_attempts;       /* attempts refused by throttling (metrics) */
	struct awserr err;            /* the error when http_perform() returned < 0, else cleared */
};

/* Initialises / frees a response (free leaves it initialised, ready for reuse). */
void http_response_init(struct http_response *resp);
void http_response_free(struct http_response *resp);

/*
 * Runs the request with retries. Returns 0 when the final attempt got a 2xx status and the whole
 * body went to body_fn; otherwise a negative errno equal to -resp->err.err, with resp->err
 * describing the failure (HTTP status and AWS type for non-2xx, curl code for transport
 * failures). resp need not be initialised: the call initialises it (so free a previously used
 * response first); afterwards the caller owns it and frees it with http_response_free(), on
 * success and on failure. Thread-safe on a shared client; req and resp belong to the caller.
 */
int http_perform(struct http_client *c, const struct http_request *req,
		 struct http_response *resp);

/* Memory body sink for small bodies (JSON replies): pass http_sink_buf / http_sink_buf_reset with
 * a struct http_sink as body_arg. Fails with -EFBIG once more than max bytes arrive (0: no
 * limit). .buf points to a struct buf the caller owns (BUF_INIT, freed with buf_free()). */
struct http_sink {
	struct buf *buf;
	size_t max;
};
int http_sink_buf(void *arg, const void *data, size_t len);
int http_sink_buf_reset(void *arg);

/* Writes "host/path" of url into out (query and fragment dropped, userinfo removed), always
 * NUL-terminated when n > 0: the form safe to log. Returns out. */
char *http_url_for_log(const char *url, char *out, size_t n);

/* Full-jitter delay for retry number n (0-based) from a caller-held PRNG state; exposed for
 * tests. Returns a value in [0, min(max_ms, base_ms * 2^n)]. */
unsigned http_backoff_ms(uint64_t *state, unsigned n, unsigned base_ms, unsigned max_ms);

#endif
