/*
 * awsreq: signed AWS requests (see include/kvsfs/awsreq.h).
 *
 * Design: awsreq_perform() computes the payload hash once, then hands http_perform() a prepare
 * callback. Before every attempt that callback (1) copies the current credentials from the
 * provider (a refresh by another thread is picked up by the next attempt), (2) parses the URL
 * into Host / wire path / wire query, (3) signs the attempt's headers with SigV4 at the current
 * time and adds the returned headers. The credential copy is wiped right after signing. A
 * per-request key cache avoids re-deriving the signing key on retries.
 *
 * Invariant: no secret (secret key, session token, Authorization, signature) is ever passed to
 * the log; the debug line lists only the service, method, host/path and signed header names.
 */
#include "kvsfs/awsreq.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvsfs/buf.h"
#include "kvsfs/creds.h"
#include "kvsfs/json.h"
#include "kvsfs/log.h"
#include "kvsfs/metrics.h"
#include "kvsfs/sigv4.h"

struct sign_state {
	const struct awsreq_ctx *ctx;
	const struct awsreq *req;
	char payload_hash[SIGV4_HEX_LEN + 1];
	struct sigv4_key_cache cache;
	char host[256];
	const char *path;   /* into req->url */
	size_t path_len;
	const char *query;  /* into req->url, may be NULL */
};

/* Splits an absolute URL into host[:port], path and query (pointers into url). */
static int split_url(const char *url, char *host, size_t hostn, const char **path,
		     size_t *path_len, const char **query)
{
	const char *p = strstr(url, "://");
	if (!p)
		return -EINVAL;
	p += 3;
	size_t hl = strcspn(p, "/?#");
	if (hl == 0 || hl >= hostn)
		return -EINVAL;
	if (memchr(p, '@', hl))
		return -EINVAL;
	memcpy(host, p, hl);
	host[hl] = '\0';
	/* The default port is not part of the Host header curl sends. */
	size_t n = strlen(host);
	if (strncmp(url, "https://", 8) == 0 && n > 4 && strcmp(host + n - 4, ":443") == 0)
		host[n - 4] = '\0';
	else if (strncmp(url, "http://", 7) == 0 && n > 3 && strcmp(host + n - 3, ":80") == 0)
		host[n - 3] = '\0';
	p += hl;
	if (*p == '/') {
		*path = p;
		*path_len = strcspn(p, "?#");
	} else {
		*path = "/";
		*path_len = 1;
	}
	const char *q = strchr(p, '?');
	*query = q ? q + 1 : NULL;
	return 0;
}

/* 1 when the query string has the parameter name (with or without a value). */
static int query_has(const char *query, const char *name)
{
	size_t n = strlen(name);
	for (const char *q = query; q && *q;) {
		if (!strncmp(q, name, n) && (q[n] == '=' || q[n] == '&' || q[n] == '\0' || q[n] == '#'))
			return 1;
		q = strchr(q, '&');
		q = q ? q + 1 : NULL;
	}
	return 0;
}

/* The API a request calls, for the metrics: KVS names it in its path ("/listFragments"), S3 in
 * its method, query and path (a bucket-only path is a bucket call). */
static int request_api(const struct awsreq *req, const struct sign_state *st)
{
	int named = metrics_api_find(req->api);
	if (named != METRICS_API_Other)
		return named;
	if (!req->s3) {
		char name[64];
		size_t n = st->path_len > 1 ? st->path_len - 1 : 0;
		if (n == 0 || n >= sizeof(name))
			return METRICS_API_Other;
		memcpy(name, st->path + 1, n);
		name[n] = '\0';
		return metrics_api_find(name);
	}
	const char *m = req->method, *q = st->query;
	if (!strcmp(m, "POST"))
		return query_has(q, "uploads") ? METRICS_API_CreateMultipartUpload
					       : METRICS_API_CompleteMultipartUpload;
	if (!strcmp(m, "PUT")) {
		if (query_has(q, "partNumber"))
			return METRICS_API_UploadPart;
		return req->headers && http_headers_get(req->headers, "x-amz-copy-source")
			       ? METRICS_API_CopyObject : METRICS_API_PutObject;
	}
	if (!strcmp(m, "DELETE"))
		return query_has(q, "uploadId") ? METRICS_API_AbortMultipartUpload
						: METRICS_API_DeleteObject;
	if (!strcmp(m, "HEAD"))
		return st->path_len <= 1 ? METRICS_API_HeadBucket : METRICS_API_HeadObject;
	if (query_has(q, "list-type"))
		return METRICS_API_ListObjectsV2;
	if (query_has(q, "uploads"))
		return METRICS_API_ListMultipartUploads;
	if (query_has(q, "uploadId"))
		return METRICS_API_ListParts;
	return METRICS_API_GetObject;
}

/* Counts a finished request in the metrics (attempts, failures, throttles, bytes). */
static void count_request(const struct awsreq_ctx *ctx, const struct awsreq *req,
			  const struct sign_state *st, const struct http_response *resp, int rc)
{
	struct metrics *m = ctx->metrics;
	if (!m || resp->attempts == 0)
		return;
	metrics_count_api(m, request_api(req, st), resp->attempts, resp->failed_attempts,
			  resp->throttled_attempts);
	if (!req->s3)
		METRICS_ADD(m, kvs_bytes_read, resp->body_bytes);
	else
		METRICS_ADD(m, s3_bytes_read, resp->body_bytes);
	if (req->s3 && rc == 0 && !strcmp(req->method, "PUT")) /* object data, not XML requests */
		METRICS_ADD(m, s3_bytes_written,
			    req->read_fn ? (req->body_size > 0 ? (uint64_t)req->body_size : 0)
					 : (uint64_t)req->body_len);
}

void awsreq_count_plain(const struct awsreq_ctx *ctx, const char *url,
			const struct http_response *resp)
{
	if (!ctx->metrics || resp->attempts == 0)
		return;
	size_t n = strcspn(url, "?#");
	const char *seg = url;
	for (size_t i = 0; i < n; i++)
		if (url[i] == '/')
			seg = url + i + 1;
	char name[64];
	size_t len = strcspn(seg, ".?#");
	snprintf(name, sizeof(name), "%.*s", (int)(len < sizeof(name) ? len : 0), seg);
	metrics_count_api(ctx->metrics, metrics_api_find(name), resp->attempts,
			  resp->failed_attempts, resp->throttled_attempts);
	METRICS_ADD(ctx->metrics, kvs_bytes_read, resp->body_bytes);
}

static int sign_attempt(void *arg, const struct http_request *hreq, struct http_headers *headers,
			int attempt)
{
	struct sign_state *st = arg;
	const struct awsreq_ctx *ctx = st->ctx;
	struct creds_value cv = { 0 };
	struct sigv4_header *sh = NULL;
	struct sigv4_result res = SIGV4_RESULT_INIT;
	char *path = NULL, *query = NULL;
	int rc;
	(void)hreq;

	rc = creds_get(ctx->creds, &cv);
	if (rc) {
		LOG_ERROR(ctx->log, "awsreq", "no usable AWS credentials for %s request (%s)",
			  st->req->service, strerror(-rc));
		return rc;
	}
	rc = http_headers_set(headers, "Host", st->host);
	if (rc)
		goto out;
	/* headers the signer adds itself must not be sent twice */
	http_headers_remove(headers, "X-Amz-Date");
	http_headers_remove(headers, "X-Amz-Security-Token");
	http_headers_remove(headers, "Authorization");
	if (st->req->s3)
		http_headers_remove(headers, "x-amz-content-sha256");

	sh = calloc(headers->n ? headers->n : 1, sizeof(*sh));
	path = strndup(st->path, st->path_len);
	if (st->query) {
		size_t ql = strcspn(st->query, "#");
		query = strndup(st->query, ql);
	}
	if (!sh || !path || (st->query && !query)) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < headers->n; i++) {
		sh[i].name = headers->v[i].name;
		sh[i].value = headers->v[i].value;
	}
	struct sigv4_request sr = {
		.method = st->req->method,
		.path = path,
		.query = query,
		.headers = sh,
		.n_headers = headers->n,
		.payload_hash = st->payload_hash,
	};
	struct sigv4_creds sc = {
		.access_key_id = cv.access_key_id,
		.secret_access_key = cv.secret_access_key,
		.session_token = cv.session_token,
	};
	struct sigv4_params sp = {
		.region = ctx->region,
		.service = st->req->service,
		.now = time(NULL),
		.flags = st->req->s3 ? SIGV4_S3 : 0,
		.log = ctx->log,
	};
	rc = sigv4_sign_headers(&sr, &sc, &sp, &st->cache, &res);
	if (rc) {
		LOG_ERROR(ctx->log, "awsreq", "could not sign %s request (%s)", st->req->service,
			  strerror(-rc));
		goto out;
	}
	for (size_t i = 0; i < res.n_add && rc == 0; i++)
		rc = http_headers_set(headers, res.add[i].name, res.add[i].value);
	if (rc == 0 && log_enabled(ctx->log, LOG_LEVEL_DEBUG))
		LOG_DEBUG(ctx->log, "awsreq", "signed %s %s%.*s attempt %d (service %s, signed headers %s)",
			  st->req->method, st->host, (int)st->path_len, st->path, attempt,
			  st->req->service, res.signed_headers ? res.signed_headers : "");
out:
	sigv4_result_free(&res);
	creds_value_free(&cv);
	free(sh);
	free(path);
	free(query);
	return rc;
}

int awsreq_perform(const struct awsreq_ctx *ctx, const struct awsreq *req,
		   struct http_response *resp)
{
	struct sign_state st = { .ctx = ctx, .req = req, .cache = SIGV4_KEY_CACHE_INIT };
	int rc;

	http_response_init(resp);
	if (!req->service || !req->method || !req->url)
		return awserr_set_errno(&resp->err, EINVAL, "incomplete request");
	if (split_url(req->url, st.host, sizeof(st.host), &st.path, &st.path_len, &st.query))
		return awserr_set_errno(&resp->err, EINVAL, "malformed request URL");

	switch (req->payload) {
	case AWSREQ_PAYLOAD_SHA256:
		if (req->read_fn)
			return awserr_set_errno(&resp->err, EINVAL,
						"a streamed body needs an explicit payload hash");
		rc = sigv4_sha256_hex(req->body, req->body_len, st.payload_hash);
		if (rc)
			return awserr_set_errno(&resp->err, -rc, "payload hash failed");
		break;
	case AWSREQ_PAYLOAD_UNSIGNED:
		snprintf(st.payload_hash, sizeof(st.payload_hash), "%s", SIGV4_UNSIGNED_PAYLOAD);
		break;
	case AWSREQ_PAYLOAD_EMPTY:
		snprintf(st.payload_hash, sizeof(st.payload_hash), "%s", SIGV4_EMPTY_SHA256);
		break;
	case AWSREQ_PAYLOAD_GIVEN:
		if (!req->payload_hash || strlen(req->payload_hash) != SIGV4_HEX_LEN)
			return awserr_set_errno(&resp->err, EINVAL, "bad payload hash");
		snprintf(st.payload_hash, sizeof(st.payload_hash), "%s", req->payload_hash);
		break;
	default:
		return awserr_set_errno(&resp->err, EINVAL, "bad payload mode");
	}

	struct http_request hr = {
		.method = req->method,
		.url = req->url,
		.headers = req->headers,
		.body = req->body,
		.body_len = req->body_len,
		.read_fn = req->read_fn,
		.rewind_fn = req->rewind_fn,
		.read_arg = req->read_arg,
		.body_size = req->read_fn ? req->body_size : (int64_t)req->body_len,
		.prepare = sign_attempt,
		.prepare_arg = &st,
		.body_fn = req->body_fn,
		.reset_fn = req->reset_fn,
		.body_arg = req->body_arg,
		.idempotent = req->idempotent,
		.timeout_ms = req->timeout_ms,
		.max_total_ms = req->max_total_ms,
	};
	rc = http_perform(ctx->http, &hr, resp);
	count_request(ctx, req, &st, resp, rc);
	sigv4_key_cache_clear(&st.cache);
	return rc;
}

static int json_stream(const struct awsreq_ctx *ctx, const char *service, const char *base_url,
		       const char *path, json_t *body, int idempotent, unsigned max_total_ms,
		       http_body_fn body_fn, http_reset_fn reset_fn, void *arg, struct awserr *err)
{
	struct buf url = BUF_INIT;
	struct http_headers hdrs = HTTP_HEADERS_INIT;
	char *text = body ? json_dump_compact(body) : strdup("{}");
	int rc;

	if (!text || buf_printf(&url, "%s%s", base_url, path) ||
	    http_headers_add(&hdrs, "Content-Type", "application/json")) {
		rc = -ENOMEM;
		if (err)
			awserr_set_errno(err, ENOMEM, "out of memory");
		goto out;
	}
	struct awsreq r = {
		.service = service ? service : "kinesisvideo",
		.method = "POST",
		.url = url.data,
		.headers = &hdrs,
		.payload = AWSREQ_PAYLOAD_SHA256,
		.body = text,
		.body_len = strlen(text),
		.body_fn = body_fn,
		.reset_fn = reset_fn,
		.body_arg = arg,
		.idempotent = idempotent,
		.max_total_ms = max_total_ms,
	};
	struct http_response resp;
	rc = awsreq_perform(ctx, &r, &resp);
	if (rc && err)
		*err = resp.err;
	http_response_free(&resp);
out:
	free(text);
	buf_free(&url);
	http_headers_free(&hdrs);
	return rc;
}

int awsreq_json_stream(const struct awsreq_ctx *ctx, const char *service, const char *base_url,
		       const char *path, json_t *body, int idempotent, http_body_fn body_fn,
		       http_reset_fn reset_fn, void *arg, struct awserr *err)
{
	return json_stream(ctx, service, base_url, path, body, idempotent, 0, body_fn, reset_fn,
			   arg, err);
}

static int json_call(const struct awsreq_ctx *ctx, const char *service, const char *base_url,
		     const char *path, json_t *body, int idempotent, unsigned max_total_ms,
		     size_t max_reply, json_t **out, struct awserr *err)
{
	struct buf reply = BUF_INIT;
	int rc;

	*out = NULL;
	if (max_reply == 0)
		max_reply = JSON_DEFAULT_MAX_DOC;
	struct http_sink sink = { .buf = &reply, .max = max_reply };
	rc = json_stream(ctx, service, base_url, path, body, idempotent, max_total_ms, http_sink_buf,
			 http_sink_buf_reset, &sink, err);
	if (rc)
		goto out;
	if (reply.len == 0) {
		*out = json_object();
		rc = *out ? 0 : -ENOMEM;
		goto out;
	}
	char perr[160];
	rc = json_parse_object(reply.data, reply.len, max_reply, out, perr, sizeof(perr));
	if (rc) {
		LOG_ERROR(ctx->log, "awsreq", "malformed JSON reply from %s%s: %s", base_url, path, perr);
		if (err)
			awserr_set_errno(err, EBADMSG, "malformed JSON reply");
		rc = -EIO;
	}
out:
	buf_free(&reply);
	return rc;
}

int awsreq_json(const struct awsreq_ctx *ctx, const char *service, const char *base_url,
		const char *path, json_t *body, int idempotent, size_t max_reply,
		json_t **out, struct awserr *err)
{
	return json_call(ctx, service, base_url, path, body, idempotent, 0, max_reply, out, err);
}

int awsreq_json_within(const struct awsreq_ctx *ctx, const char *base_url, const char *path,
		       json_t *body, unsigned max_total_ms, json_t **out, struct awserr *err)
{
	return json_call(ctx, NULL, base_url, path, body, 1, max_total_ms, 0, out, err);
}
