/*
 * awsreq: one signed AWS request, end to end. The top of the AWS core: service clients (KVS, S3)
 * call this and nothing below it.
 *
 * An awsreq_ctx bundles what every request needs: the shared HTTP client, the credentials
 * provider, the region and the log. awsreq_perform() turns a struct awsreq into an http_request
 * whose prepare() callback, run before EVERY attempt, fetches the current credentials (which
 * may have been refreshed meanwhile) and signs with SigV4 using the current time, so retries
 * never reuse a stale X-Amz-Date. The payload hash is computed once per request.
 *
 * Nothing secret is logged: the debug line per request names the service, method, host and path
 * (no query) and the signed header names; credential values, signatures and tokens never are.
 * The ctx is read-only after creation and may be shared by any number of threads.
 */
#ifndef KVSFS_AWSREQ_H
#define KVSFS_AWSREQ_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "kvsfs/http.h"

struct creds_provider;
struct log_ctx;
struct metrics;

struct awsreq_ctx {
	struct http_client *http;       /* borrowed; thread-safe */
	struct creds_provider *creds;   /* borrowed; thread-safe */
	struct log_ctx *log;            /* borrowed; may be NULL */
	struct metrics *metrics;        /* borrowed; may be NULL: requests, errors, bytes by API */
	char region[64];
};

enum awsreq_payload {
	AWSREQ_PAYLOAD_SHA256 = 0,   /* SHA-256 of the memory body (empty body: e3b0...) */
	AWSREQ_PAYLOAD_UNSIGNED,     /* "UNSIGNED-PAYLOAD" */
	AWSREQ_PAYLOAD_EMPTY,        /* SHA-256 of "" whatever the body (KVS PutMedia streaming) */
	AWSREQ_PAYLOAD_GIVEN,        /* payload_hash below (hex SHA-256 computed by the caller) */
};

struct awsreq {
	const char *service;          /* SigV4 service: "kinesisvideo", "s3" */
	const char *api;              /* API name for the metrics ("HeadBucket"); NULL: taken from
	                               * the path (KVS) or the method and query (S3) */
	const char *method;
	const char *url;              /* absolute URL; path and query already percent-encoded */
	const struct http_headers *headers; /* extra fixed headers (Content-Type, ...); may be NULL */
	int s3;                       /* S3 signing rules (no path normalisation, single encoding,
	                               * x-amz-content-sha256 header) */
	enum awsreq_payload payload;
	const char *payload_hash;     /* with AWSREQ_PAYLOAD_GIVEN */

	/* body, response sink, retry flags: as in struct http_request */
	const void *body;
	size_t body_len;
	http_read_fn read_fn;
	http_rewind_fn rewind_fn;
	void *read_arg;
	int64_t body_size;
	http_body_fn body_fn;
	http_reset_fn reset_fn;
	void *body_arg;
	int idempotent;
	long timeout_ms;
	unsigned max_total_ms;        /* 0: the client's retry budget; else as in http_request */
};

/*
 * Runs a signed request (see struct awsreq). Returns 0 on a complete 2xx response, else a
 * negative errno with resp->err describing the failure. resp is owned by the caller (free with
 * http_response_free). Thread-safe.
 */
int awsreq_perform(const struct awsreq_ctx *ctx, const struct awsreq *req,
		   struct http_response *resp);

/*
 * Counts in ctx->metrics a request sent without awsreq_perform (a presigned or session URL such
 * as HLS's getHLSMasterPlaylist.m3u8): the API is the URL's last path segment without its
 * extension. A no-op without metrics.
 */
void awsreq_count_plain(const struct awsreq_ctx *ctx, const char *url,
			const struct http_response *resp);

/*
 * POSTs a JSON document to base_url + path (rest-json style, service "kinesisvideo" unless given)
 * and parses the JSON reply. body is borrowed (not stolen). On success returns 0 and *out (a new
 * reference the caller must json_decref; an empty 2xx body gives an empty object). On failure
 * returns a negative errno and fills *err (may be NULL). Replies over max_reply bytes
 * (0: 16 MiB) fail with -EFBIG. The request is marked idempotent when idempotent != 0.
 */
int awsreq_json(const struct awsreq_ctx *ctx, const char *service, const char *base_url,
		const char *path, json_t *body, int idempotent, size_t max_reply,
		json_t **out, struct awserr *err);

/*
 * awsreq_json() for an idempotent call with its own time budget: retries, sleeps and each
 * attempt's timeouts stay within max_total_ms (0: the client's policy), for calls a user waits
 * on that must fail fast rather than ride out the mount's whole retry budget.
 */
int awsreq_json_within(const struct awsreq_ctx *ctx, const char *base_url, const char *path,
		       json_t *body, unsigned max_total_ms, json_t **out, struct awserr *err);

/*
 * POSTs a JSON document like awsreq_json(), but streams the 2xx reply body to body_fn (with
 * reset_fn called before a retry), for APIs whose answer is media (GetMediaForFragmentList).
 * Returns 0 or a negative errno with *err (may be NULL) filled.
 */
int awsreq_json_stream(const struct awsreq_ctx *ctx, const char *service, const char *base_url,
		       const char *path, json_t *body, int idempotent, http_body_fn body_fn,
		       http_reset_fn reset_fn, void *arg, struct awserr *err);

#endif
