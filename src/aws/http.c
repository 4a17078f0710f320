/*
 * http: requests over the HTTP client (see include/kvsfs/http.h for the contract; the client
 * object, its pool and trust bundle are in http_client.c, header lists in http_headers.c).
 *
 * Design and invariants:
 * - A handle is checked out of the client's pool for one whole request (all its attempts) and
 *   checked back in after; it is curl_easy_reset() and fully reconfigured before each attempt
 *   (setup: transport options, method and body, header list), which keeps its live
 *   connections, so sequential requests reuse connections.
 * - Per attempt, struct attempt holds all transfer state; curl callbacks only touch it. A
 *   callback that fails records a positive errno in a->cb_err and makes curl abort; such
 *   failures are final (never retried).
 * - The 2xx/non-2xx decision is made at the first body byte from CURLINFO_RESPONSE_CODE: 2xx
 *   bytes go to the caller's body_fn, others into a bounded error buffer.
 * - Success requires CURLE_OK, a 2xx status and, when a Content-Length was announced (and the
 *   body was not chunked, not HEAD, not 204/304), exactly that many bytes delivered.
 * - Retry loop: see http_perform(). The total budget (monotonic clock) bounds when a new
 *   attempt may start; no lock is held while an attempt runs or while sleeping.
 */
#include "kvsfs/http.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"
#include "kvsfs/clk.h"

#define MOD HTTP_MOD

/* ---------------------------------------------------------------- response, sinks, helpers */

void http_response_init(struct http_response *resp)
{
	memset(resp, 0, sizeof(*resp));
}

void http_response_free(struct http_response *resp)
{
	http_headers_free(&resp->headers);
	http_response_init(resp);
}

int http_sink_buf(void *arg, const void *data, size_t len)
{
	struct http_sink *s = arg;
	if (s->max && (s->buf->len > s->max || len > s->max - s->buf->len))
		return -EFBIG;
	return buf_append(s->buf, data, len);
}

int http_sink_buf_reset(void *arg)
{
	struct http_sink *s = arg;
	buf_reset(s->buf);
	return 0;
}

char *http_url_for_log(const char *url, char *out, size_t n)
{
	if (!n)
		return out;
	out[0] = '\0';
	if (!url)
		return out;
	const char *p = strstr(url, "://");
	p = p ? p + 3 : url;
	/* authority ends at '/', '?' or '#'; drop any userinfo */
	size_t alen = strcspn(p, "/?#");
	const char *at = memchr(p, '@', alen);
	if (at) {
		alen -= (size_t)(at + 1 - p);
		p = at + 1;
	}
	size_t plen = strcspn(p + alen, "?#");
	int has_q = p[alen + plen] == '?';
	snprintf(out, n, "%.*s%.*s%s", (int)alen, p, (int)plen, p + alen, has_q ? "?..." : "");
	return out;
}

/* ---------------------------------------------------------------- one attempt */

struct attempt {
	struct http_client *c;
	const struct http_request *req;
	struct http_response *resp;
	CURL *h;
	/* request body */
	size_t mem_off;
	uint64_t sent;      /* body bytes handed to curl since the last rewind */
	uint64_t sent_ever; /* body bytes handed to curl in this attempt */
	/* response */
	int status_known;
	long status;
	int is_2xx;
	uint64_t body_bytes;
	struct buf errbody;
	size_t errbody_dropped;
	int cb_err; /* positive errno from a caller callback: final */
	const char *cb_msg; /* what failed, for the error message */
	char errbuf[CURL_ERROR_SIZE];
	int64_t deadline;   /* monotonic ms at which req->max_total_ms runs out; 0: none */
};

static size_t on_header(char *p, size_t size, size_t nitems, void *arg)
{
	struct attempt *a = arg;
	size_t n = size * nitems;
	if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		/* a new header block (after 1xx responses): keep only the final one */
		http_headers_clear(&a->resp->headers);
		return n;
	}
	const char *colon = memchr(p, ':', n);
	if (!colon || colon == p)
		return n; /* blank line ending the block, or junk: ignored */
	size_t nlen = (size_t)(colon - p);
	for (size_t i = 0; i < nlen; i++)
		if ((unsigned char)p[i] <= 0x20 || p[i] == 0x7f)
			return n; /* obs-fold continuation or malformed name: ignored */
	const char *v = colon + 1;
	const char *end = p + n;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' ||
			   end[-1] == '\t'))
		end--;
	if (memchr(v, '\0', (size_t)(end - v)))
		return n;
	if (http_headers_push(&a->resp->headers, p, nlen, v, (size_t)(end - v))) {
		a->cb_err = ENOMEM;
		return 0;
	}
	return n;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct attempt *a = arg;
	size_t n = size * nmemb;
	if (!a->status_known) {
		long st = 0;
		curl_easy_getinfo(a->h, CURLINFO_RESPONSE_CODE, &st);
		a->status = st;
		a->status_known = 1;
		a->is_2xx = st >= 200 && st < 300;
	}
	if (a->is_2xx) {
		if (a->req->body_fn && n) {
			int rc = a->req->body_fn(a->req->body_arg, p, n);
			if (rc < 0) {
				a->cb_err = -rc;
				return 0;
			}
		}
		a->body_bytes += n;
		return n;
	}
	size_t room = a->c->max_error_body > a->errbody.len ?
			      a->c->max_error_body - a->errbody.len : 0;
	size_t take = n < room ? n : room;
	if (take && buf_append(&a->errbody, p, take)) {
		a->cb_err = ENOMEM;
		return 0;
	}
	a->errbody_dropped += n - take;
	return n;
}

static size_t on_read(char *dst, size_t size, size_t nitems, void *arg)
{
	struct attempt *a = arg;
	size_t n = size * nitems;
	const struct http_request *r = a->req;
	size_t got;
	if (r->read_fn) {
		ssize_t rc = r->read_fn(r->read_arg, dst, n);
		if (rc < 0) {
			a->cb_err = (int)-rc;
			return CURL_READFUNC_ABORT;
		}
		if ((size_t)rc > n) {
			a->cb_err = EINVAL;
			return CURL_READFUNC_ABORT;
		}
		if (rc == 0 && r->body_size >= 0 && a->sent < (uint64_t)r->body_size) {
			a->cb_err = EIO; /* body shorter than announced: final, not retried */
			a->cb_msg = "request body shorter than its announced size";
			return CURL_READFUNC_ABORT;
		}
		got = (size_t)rc;
	} else {
		size_t left = r->body_len - a->mem_off;
		got = n < left ? n : left;
		if (got)
			memcpy(dst, (const char *)r->body + a->mem_off, got);
		a->mem_off += got;
	}
	a->sent += got;
	a->sent_ever += got;
	return got;
}

/* libcurl asks to rewind the body (it resends on a reused connection that turned out dead). */
static int on_seek(void *arg, curl_off_t offset, int origin)
{
	struct attempt *a = arg;
	if (offset != 0 || origin != SEEK_SET)
		return CURL_SEEKFUNC_CANTSEEK;
	if (a->req->read_fn) {
		if (a->sent == 0)
			return CURL_SEEKFUNC_OK;
		if (!a->req->rewind_fn || a->req->rewind_fn(a->req->read_arg) != 0)
			return CURL_SEEKFUNC_CANTSEEK;
	} else {
		a->mem_off = 0;
	}
	a->sent = 0;
	return CURL_SEEKFUNC_OK;
}

static int has_body(const struct http_request *r)
{
	return r->read_fn != NULL || r->body != NULL;
}

#define SET(opt, val) do { if (cc == CURLE_OK) cc = curl_easy_setopt(h, opt, val); } while (0)

/* Connection, timeouts, TLS and the response callbacks. */
static CURLcode setup_transport(struct attempt *a)
{
	struct http_client *c = a->c;
	const struct http_request *r = a->req;
	CURL *h = a->h;
	CURLcode cc = CURLE_OK;
	SET(CURLOPT_URL, r->url);
	/* send the path exactly as signed: libcurl would otherwise squash "." and ".." segments */
	SET(CURLOPT_PATH_AS_IS, 1L);
	/* libcurl silently resends a request whose reused connection died before any answer; a
	 * request that is not safe to repeat gets a fresh connection so that cannot happen */
	if (!r->idempotent)
		SET(CURLOPT_FRESH_CONNECT, 1L);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_SHARE, c->share);
	SET(CURLOPT_USERAGENT, c->user_agent);
	SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_ERRORBUFFER, a->errbuf);
	long ctmo = r->connect_timeout_ms > 0 ? r->connect_timeout_ms : c->connect_timeout_ms;
	long tmo = r->timeout_ms > 0 ? r->timeout_ms : c->total_timeout_ms;
	if (a->deadline) {
		/* a request with its own budget never outlives it, not even inside one attempt */
		int64_t left = a->deadline - clk_mono_ms();
		if (left < 1)
			left = 1;
		if (ctmo > left)
			ctmo = (long)left;
		if (tmo <= 0 || tmo > left)
			tmo = (long)left;
	}
	SET(CURLOPT_CONNECTTIMEOUT_MS, ctmo);
	if (tmo > 0)
		SET(CURLOPT_TIMEOUT_MS, tmo);
	if (c->low_speed_time_s > 0) {
		SET(CURLOPT_LOW_SPEED_LIMIT, c->low_speed_limit);
		SET(CURLOPT_LOW_SPEED_TIME, c->low_speed_time_s);
	}
	SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (c->no_verify_ssl) {
		SET(CURLOPT_SSL_VERIFYPEER, 0L);
		SET(CURLOPT_SSL_VERIFYHOST, 0L);
	} else {
		SET(CURLOPT_SSL_VERIFYPEER, 1L);
		SET(CURLOPT_SSL_VERIFYHOST, 2L);
		if (c->ca_data) {
			struct curl_blob blob = { c->ca_data, c->ca_len, CURL_BLOB_NOCOPY };
			SET(CURLOPT_CAINFO_BLOB, &blob);
		}
	}
	if (r->no_proxy)
		SET(CURLOPT_NOPROXY, "*");
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, a);
	SET(CURLOPT_WRITEFUNCTION, on_write);
	SET(CURLOPT_WRITEDATA, a);
	return cc;
}

/* The method and the request body; *chunked is set for a body of unknown size. */
static CURLcode setup_method(struct attempt *a, int *chunked)
{
	const struct http_request *r = a->req;
	CURL *h = a->h;
	const char *method = r->method ? r->method : "GET";
	CURLcode cc = CURLE_OK;
	*chunked = 0;
	if (strcmp(method, "HEAD") == 0) {
		SET(CURLOPT_NOBODY, 1L);
	} else if (has_body(r) || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
		curl_off_t size = r->read_fn ? (curl_off_t)r->body_size : (curl_off_t)r->body_len;
		if (r->read_fn && r->body_size < 0) {
			size = -1;
			*chunked = 1;
		}
		if (!has_body(r))
			size = 0;
		SET(CURLOPT_POST, 1L);
		SET(CURLOPT_POSTFIELDSIZE_LARGE, size);
		SET(CURLOPT_READFUNCTION, on_read);
		SET(CURLOPT_READDATA, a);
		SET(CURLOPT_SEEKFUNCTION, on_seek);
		SET(CURLOPT_SEEKDATA, a);
		if (strcmp(method, "POST") != 0)
			SET(CURLOPT_CUSTOMREQUEST, method);
	} else if (strcmp(method, "GET") == 0) {
		SET(CURLOPT_HTTPGET, 1L);
	} else {
		SET(CURLOPT_CUSTOMREQUEST, method);
	}
	return cc;
}

#undef SET

/* The header list: the caller's, then defaults libcurl would otherwise add. */
static int setup_headers(CURL *h, const struct http_headers *hdrs, int chunked,
			 struct curl_slist **hl)
{
	struct buf line = BUF_INIT;
	int rc = 0;
	for (size_t i = 0; i < hdrs->n && !rc; i++) {
		buf_reset(&line);
		if (hdrs->v[i].value[0])
			rc = buf_printf(&line, "%s: %s", hdrs->v[i].name, hdrs->v[i].value);
		else
			rc = buf_printf(&line, "%s;", hdrs->v[i].name);
		if (!rc) {
			struct curl_slist *nl = curl_slist_append(*hl, buf_str(&line));
			if (!nl)
				rc = -ENOMEM;
			else
				*hl = nl;
		}
	}
	static const char *const defaults[][2] = {
		{ "Expect", "Expect:" },             /* no 100-continue round trip */
		{ "Content-Type", "Content-Type:" }, /* not form-urlencoded for POST */
		{ "Transfer-Encoding", "Transfer-Encoding: chunked" },
	};
	for (size_t i = 0; i < 3 && !rc; i++) {
		if (http_headers_get(hdrs, defaults[i][0]))
			continue;
		if (i == 2 && !chunked)
			continue;
		struct curl_slist *nl = curl_slist_append(*hl, defaults[i][1]);
		if (!nl)
			rc = -ENOMEM;
		else
			*hl = nl;
	}
	buf_free(&line);
	if (rc)
		return rc;
	if (curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hl) != CURLE_OK)
		return -ENOMEM;
	return 0;
}

/* Configures the handle for one attempt. Returns 0 or a negative errno. */
static int setup(struct attempt *a, struct curl_slist **hl, struct http_headers *hdrs)
{
	int chunked = 0;
	curl_easy_reset(a->h);
	CURLcode cc = setup_transport(a);
	if (cc == CURLE_OK)
		cc = setup_method(a, &chunked);
	if (cc != CURLE_OK) {
		LOG_ERROR(a->c->log, MOD, "libcurl option set-up failed: %s", curl_easy_strerror(cc));
		return cc == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
	}
	return setup_headers(a->h, hdrs, chunked, hl);
}

/* Parses a decimal Content-Length; -1 when absent or malformed. */
static int64_t content_length(const struct http_headers *hs)
{
	const char *v = http_headers_get(hs, "Content-Length");
	if (!v || !*v)
		return -1;
	int64_t n = 0;
	for (const char *p = v; *p; p++) {
		if (!isdigit((unsigned char)*p) || n > (INT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (*p - '0');
	}
	return n;
}

/* Runs one attempt and fills resp (status, headers, err). Returns 0 on complete 2xx success,
 * else a negative errno with resp->err filled. */
static int run_attempt(struct attempt *a, int attempt_no)
{
	struct http_response *resp = a->resp;
	const struct http_request *r = a->req;
	struct http_headers hdrs = HTTP_HEADERS_INIT;
	struct curl_slist *hl = NULL;
	http_headers_clear(&resp->headers);
	awserr_clear(&resp->err);
	resp->status = 0;
	resp->body_bytes = 0;

	int rc = http_headers_copy(&hdrs, r->headers);
	if (!rc && r->prepare)
		rc = r->prepare(r->prepare_arg, r, &hdrs, attempt_no);
	if (!rc)
		rc = setup(a, &hl, &hdrs);
	if (rc) {
		awserr_set_errno(&resp->err, -rc, "request preparation failed");
		http_headers_free(&hdrs);
		curl_slist_free_all(hl);
		return rc;
	}
	CURLcode cc = curl_easy_perform(a->h);
	long st = 0;
	curl_easy_getinfo(a->h, CURLINFO_RESPONSE_CODE, &st);
	curl_easy_setopt(a->h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hl);
	http_headers_free(&hdrs);
	resp->status = (int)st;
	resp->body_bytes = a->body_bytes;

	if (a->cb_err) {
		char msg[96];
		snprintf(msg, sizeof(msg), "%s (%s)",
			 a->cb_msg ? a->cb_msg : "aborted by a callback", strerror(a->cb_err));
		return awserr_set_errno(&resp->err, a->cb_err, msg);
	}
	if (cc != CURLE_OK)
		return awserr_set_transport(&resp->err, cc, (int)st,
					    a->errbuf[0] ? a->errbuf : NULL);
	if (st >= 200 && st < 300) {
		int64_t cl = content_length(&resp->headers);
		const char *te = http_headers_get(&resp->headers, "Transfer-Encoding");
		int is_head = r->method && strcmp(r->method, "HEAD") == 0;
		if (cl >= 0 && !te && !is_head && st != 204 && (uint64_t)cl != a->body_bytes) {
			char msg[128];
			snprintf(msg, sizeof(msg), "short body: %" PRIu64 " of %" PRId64 " bytes",
				 a->body_bytes, cl);
			return awserr_set_transport(&resp->err, CURLE_PARTIAL_FILE, (int)st, msg);
		}
		return 0;
	}
	const struct http_headers *rh = &resp->headers;
	const char *reqid = http_headers_get(rh, "x-amzn-RequestId");
	if (!reqid)
		reqid = http_headers_get(rh, "x-amz-request-id");
	return awserr_parse(&resp->err, (int)st, http_headers_get(rh, "x-amzn-ErrorType"), reqid,
			    a->errbody.data, a->errbody.len);
}

static void describe(const struct http_response *resp, char *out, size_t n)
{
	const struct awserr *e = &resp->err;
	if (e->curl_code)
		snprintf(out, n, "curl error %d (%s)", e->curl_code, e->message);
	else if (e->http_status && (e->http_status < 200 || e->http_status >= 300))
		snprintf(out, n, "HTTP %d%s%s", e->http_status, e->type[0] ? " " : "", e->type);
	else if (e->err)
		snprintf(out, n, "failed: %s", e->message[0] ? e->message : strerror(e->err));
	else
		snprintf(out, n, "HTTP %d (%" PRIu64 " bytes)", resp->status, resp->body_bytes);
}

/* Clears the per-attempt state (the handle, request and response stay). */
static void attempt_reset(struct attempt *a)
{
	a->mem_off = 0;
	a->sent = 0;
	a->sent_ever = 0;
	a->status_known = 0;
	a->status = 0;
	a->is_2xx = 0;
	a->body_bytes = 0;
	a->cb_err = 0;
	a->cb_msg = NULL;
	a->errbuf[0] = '\0';
	a->errbody_dropped = 0;
	buf_reset(&a->errbody);
}

/* Why failed attempt n may not be repeated (budget aside), or NULL. */
static const char *no_retry_reason(const struct http_request *req, const struct attempt *a,
				   int n, int max_attempts)
{
	if (!a->resp->err.retryable)
		return "not retryable";
	if (!req->idempotent)
		return "request not safe to repeat";
	if (n >= max_attempts)
		return "attempts exhausted";
	if (req->read_fn && a->sent_ever > 0 && !req->rewind_fn)
		return "request body cannot be rewound";
	if (a->body_bytes > 0 && !req->reset_fn && req->body_fn)
		return "partial response body cannot be discarded";
	return NULL;
}

/* Before a retry: the caller discards the failed attempt's body bytes and the request body is
 * rewound. Returns 0 or a negative errno (resp->err set). */
static int prepare_retry(const struct http_request *req, const struct attempt *a,
			 struct http_response *resp)
{
	if (a->body_bytes > 0 && req->reset_fn) {
		int r2 = req->reset_fn(req->body_arg);
		if (r2 < 0)
			return awserr_set_errno(&resp->err, -r2, "reset callback failed");
	}
	if (req->read_fn && a->sent > 0) {
		int r2 = req->rewind_fn(req->read_arg);
		if (r2 < 0)
			return awserr_set_errno(&resp->err, -r2, "request body rewind failed");
	}
	return 0;
}

int http_perform(struct http_client *c, const struct http_request *req,
		 struct http_response *resp)
{
	http_response_init(resp);
	if (!c || !req || !req->url) {
		awserr_set_errno(&resp->err, EINVAL, "no URL");
		return -EINVAL;
	}
	const char *method = req->method ? req->method : "GET";
	char where[256];
	http_url_for_log(req->url, where, sizeof(where));
	int max_attempts = req->max_attempts > 0 ? req->max_attempts : c->retry.max_attempts;
	CURL *h = http_pool_get(c);
	if (!h) {
		awserr_set_errno(&resp->err, ENOMEM, "curl_easy_init failed");
		return -ENOMEM;
	}
	int64_t t0 = clk_mono_ms();
	unsigned budget = req->max_total_ms ? req->max_total_ms : c->retry.max_total_ms;
	struct attempt a;
	memset(&a, 0, sizeof(a));
	a.deadline = req->max_total_ms ? t0 + req->max_total_ms : 0;
	a.c = c;
	a.req = req;
	a.resp = resp;
	a.h = h;
	int rc = 0;
	for (int n = 1;; n++) {
		resp->attempts = n;
		attempt_reset(&a);
		rc = run_attempt(&a, n);
		char what[AWSERR_MSG_MAX + 64];
		describe(resp, what, sizeof(what));
		if (rc == 0) {
			LOG_DEBUG(c->log, MOD, "%s %s attempt %d/%d: %s in %" PRId64 " ms", method,
				  where, n, max_attempts, what, clk_mono_ms() - t0);
			break;
		}
		resp->failed_attempts++, resp->throttled_attempts += resp->err.throttled ? 1 : 0;
		const char *why_not = no_retry_reason(req, &a, n, max_attempts);
		unsigned delay = 0;
		if (!why_not) {
			delay = http_next_delay(c, (unsigned)(n - 1));
			if (clk_mono_ms() - t0 + delay > (int64_t)budget)
				why_not = "retry time budget exhausted";
		}
		if (why_not) {
			LOG_DEBUG(c->log, MOD, "%s %s attempt %d/%d: %s, no retry (%s)", method,
				  where, n, max_attempts, what, why_not);
			if (resp->err.retryable && req->idempotent && n > 1)
				LOG_WARN(c->log, MOD, "%s %s: giving up after %d attempts in "
					 "%" PRId64 " ms: %s", method, where, n, clk_mono_ms() - t0, what);
			break;
		}
		LOG_DEBUG(c->log, MOD, "%s %s attempt %d/%d: %s, retry in %u ms", method, where, n,
			  max_attempts, what, delay);
		if ((rc = prepare_retry(req, &a, resp)))
			break;
		clk_sleep_ms(delay);
	}
	buf_free(&a.errbody);
	http_pool_put(c, h);
	return rc;
}
