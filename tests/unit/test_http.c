/* Unit tests for http: header lists, URL redaction for logs, full-jitter backoff bounds, the
 * memory sink, client creation errors (ca_file), and request failures that need no server
 * (refused connection with retries, callbacks aborting, bad input) or only a silent listener
 * (a request's own time budget). The wire behaviour against
 * real servers is tested by tests/integration/modules/aws/test_http_retry.py. */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include "check.h"
#include "kvsfs/http.h"

static void test_headers(void)
{
	struct http_headers h = HTTP_HEADERS_INIT;
	CHECK_INT(http_headers_add(&h, "X-Amz-Date", "20240101T000000Z"), 0, "add");
	CHECK_INT(http_headers_add(&h, "x-amz-meta-a", "1"), 0, "add meta");
	CHECK_INT(http_headers_add(&h, "X-AMZ-META-A", "2"), 0, "add duplicate");
	CHECK_STR(http_headers_get(&h, "x-amz-date"), "20240101T000000Z", "case-insensitive get");
	CHECK_STR(http_headers_get(&h, "x-amz-meta-a"), "1", "first of duplicates");
	CHECK_INT(http_headers_set(&h, "X-Amz-Meta-A", "3"), 0, "set replaces");
	CHECK_INT(h.n, 2, "duplicates collapsed");
	CHECK_STR(http_headers_get(&h, "x-amz-meta-a"), "3", "set value");
	CHECK_INT(http_headers_add(&h, "Bad Name", "v"), -EINVAL, "space in name");
	CHECK_INT(http_headers_add(&h, "", "v"), -EINVAL, "empty name");
	CHECK_INT(http_headers_add(&h, "X:Y", "v"), -EINVAL, "colon in name");
	CHECK_INT(http_headers_add(&h, "X", "a\r\nInjected: 1"), -EINVAL, "CRLF in value");
	CHECK_INT(http_headers_set(&h, "X", "a\nb"), -EINVAL, "LF in value (set)");
	CHECK_INT(http_headers_add(&h, "Empty", ""), 0, "empty value allowed");
	struct http_headers c = HTTP_HEADERS_INIT;
	CHECK_INT(http_headers_copy(&c, &h), 0, "copy");
	CHECK_INT(c.n, 3, "copy count");
	http_headers_remove(&c, "x-amz-date");
	CHECK(http_headers_get(&c, "X-Amz-Date") == NULL, "remove");
	CHECK_INT(c.n, 2, "remove count");
	http_headers_clear(&c);
	CHECK_INT(c.n, 0, "clear");
	http_headers_free(&c);
	http_headers_free(&h);
	CHECK(h.v == NULL && h.n == 0, "free resets");
}

static void test_url_for_log(void)
{
	char out[128];
	CHECK_STR(http_url_for_log("https://s-1.kinesisvideo.us-west-2.amazonaws.com/getMedia",
				   out, sizeof(out)),
		  "s-1.kinesisvideo.us-west-2.amazonaws.com/getMedia", "plain URL");
	CHECK_STR(http_url_for_log("https://b.example.com/hls/v1/getHLSMasterPlaylist.m3u8?"
				   "SessionToken=SECRET", out, sizeof(out)),
		  "b.example.com/hls/v1/getHLSMasterPlaylist.m3u8?...", "query dropped");
	CHECK_STR(http_url_for_log("https://bucket.s3.amazonaws.com/k?X-Amz-Signature=abc&"
				   "X-Amz-Security-Token=tok#frag", out, sizeof(out)),
		  "bucket.s3.amazonaws.com/k?...", "presigned query dropped");
	CHECK_STR(http_url_for_log("http://user:pw@127.0.0.1:8080/p#x", out, sizeof(out)),
		  "127.0.0.1:8080/p", "userinfo and fragment dropped");
	CHECK_STR(http_url_for_log("http://h?q=1", out, sizeof(out)), "h?...", "no path");
	http_url_for_log("http://averyveryverylonghostname.example.com/path", out, 10);
	CHECK_INT(strlen(out), 9, "truncated");
	CHECK_STR(http_url_for_log(NULL, out, sizeof(out)), "", "NULL URL");
}

static void test_backoff(void)
{
	uint64_t st = 42;
	int bad = 0, hit_high = 0;
	for (unsigned n = 0; n < 12; n++) {
		unsigned cap = 100u << n;
		if (cap > 2000)
			cap = 2000;
		unsigned mx = 0;
		for (int k = 0; k < 2000; k++) {
			unsigned d = http_backoff_ms(&st, n, 100, 2000);
			if (d > cap)
				bad++;
			if (d > mx)
				mx = d;
		}
		if (mx >= cap * 9 / 10)
			hit_high++;
	}
	CHECK_INT(bad, 0, "delays within [0, min(cap, base*2^n)]");
	CHECK_INT(hit_high, 12, "full jitter reaches near the cap");
	uint64_t a = 7, b = 7;
	int same = 1;
	for (int k = 0; k < 50; k++)
		same &= http_backoff_ms(&a, 3, 100, 5000) == http_backoff_ms(&b, 3, 100, 5000);
	CHECK(same, "deterministic for a seed");
	CHECK(http_backoff_ms(&a, 1000, 100, 5000) <= 5000, "huge n capped, no overflow");
	CHECK_INT(http_backoff_ms(&a, 5, 0, 5000), 0, "zero base");
}

static void test_sink(void)
{
	struct buf b = BUF_INIT;
	struct http_sink s = { &b, 8 };
	CHECK_INT(http_sink_buf(&s, "abcd", 4), 0, "sink append");
	CHECK_INT(http_sink_buf(&s, "efgh", 4), 0, "sink to limit");
	CHECK_INT(http_sink_buf(&s, "i", 1), -EFBIG, "sink over limit");
	CHECK_INT(http_sink_buf_reset(&s), 0, "sink reset");
	CHECK_INT(b.len, 0, "sink empty after reset");
	buf_free(&b);
}

static void test_client_errors(void)
{
	struct http_client *c = NULL;
	struct http_client_opts o;
	http_client_opts_init(&o);
	o.ca_file = "/nonexistent/ca.pem";
	CHECK_INT(http_client_new(&o, &c), -ENOENT, "missing ca_file");
	char tmpl[] = "/tmp/kvsfs-test-http-XXXXXX";
	int fd = mkstemp(tmpl);
	CHECK(fd >= 0, "temp file");
	if (fd >= 0) {
		CHECK(write(fd, "not a cert\n", 11) == 11, "write temp");
		close(fd);
		o.ca_file = tmpl;
		CHECK_INT(http_client_new(&o, &c), -EINVAL, "non-PEM ca_file");
		unlink(tmpl);
	}
	o.ca_file = "/tmp";
	CHECK_INT(http_client_new(&o, &c), -EINVAL, "directory as ca_file");
	http_client_free(NULL);
	CHECK(1, "free(NULL) ok");
}

static int closed_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t l = sizeof(a);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    getsockname(s, (struct sockaddr *)&a, &l) != 0) {
		if (s >= 0)
			close(s);
		return 1;
	}
	close(s);
	return ntohs(a.sin_port);
}

static int n_prepare;

static int prepare_count(void *arg, const struct http_request *req, struct http_headers *h,
			 int attempt)
{
	(void)arg;
	(void)req;
	n_prepare++;
	CHECK(http_headers_get(h, "X-Fixed") != NULL, "fixed header copied for attempt %d",
	      attempt);
	CHECK(http_headers_get(h, "X-Per-Attempt") == NULL, "fresh copy for attempt %d", attempt);
	return http_headers_set(h, "X-Per-Attempt", "1");
}

static int prepare_fail(void *arg, const struct http_request *req, struct http_headers *h,
			int attempt)
{
	(void)arg;
	(void)req;
	(void)h;
	(void)attempt;
	return -EKEYEXPIRED;
}

static void test_requests(void)
{
	struct http_client *c = NULL;
	struct http_client_opts o;
	http_client_opts_init(&o);
	o.retry.max_attempts = 3;
	o.retry.base_delay_ms = 1;
	o.retry.max_delay_ms = 5;
	o.seed = 1;
	CHECK_INT(http_client_new(&o, &c), 0, "client");
	if (!c)
		return;
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/x?X-Amz-Signature=s", closed_port());
	struct http_headers fixed = HTTP_HEADERS_INIT;
	http_headers_add(&fixed, "X-Fixed", "1");
	struct http_request r;
	memset(&r, 0, sizeof(r));
	r.url = url;
	r.headers = &fixed;
	r.idempotent = 1;
	r.prepare = prepare_count;
	struct http_response resp;
	n_prepare = 0;
	int rc = http_perform(c, &r, &resp);
	CHECK_INT(rc, -ECONNREFUSED, "refused");
	CHECK_INT(resp.attempts, 3, "refused retried up to max attempts");
	CHECK_INT(n_prepare, 3, "prepare before every attempt");
	CHECK_INT(resp.status, 0, "no status");
	CHECK_INT(resp.err.curl_code, CURLE_COULDNT_CONNECT, "curl code kept");
	http_response_free(&resp);

	r.idempotent = 0;
	n_prepare = 0;
	rc = http_perform(c, &r, &resp);
	CHECK_INT(resp.attempts, 1, "not idempotent: one attempt");
	http_response_free(&resp);

	r.idempotent = 1;
	r.max_attempts = 1;
	rc = http_perform(c, &r, &resp);
	CHECK_INT(resp.attempts, 1, "per-request max_attempts");
	http_response_free(&resp);

	r.prepare = prepare_fail;
	r.max_attempts = 0;
	rc = http_perform(c, &r, &resp);
	CHECK_INT(rc, -EKEYEXPIRED, "prepare error returned");
	CHECK_INT(resp.attempts, 1, "prepare error not retried");
	http_response_free(&resp);

	memset(&r, 0, sizeof(r));
	rc = http_perform(c, &r, &resp);
	CHECK_INT(rc, -EINVAL, "no URL");
	http_response_free(&resp);

	r.url = "ftp://127.0.0.1/x";
	rc = http_perform(c, &r, &resp);
	CHECK_INT(rc, -EINVAL, "non-HTTP scheme refused");
	http_response_free(&resp);

	http_headers_free(&fixed);
	http_client_free(c);
}

/* A request with its own budget never outlives it, even against a server that never answers:
 * the client has no total timeout and no low-speed limit, so without the cap it would hang. */
static void test_request_budget(void)
{
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t l = sizeof(a);
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(ls, 8) != 0 ||
	    getsockname(ls, (struct sockaddr *)&a, &l) != 0) {
		CHECK(0, "listening socket");
		if (ls >= 0)
			close(ls);
		return;
	}
	struct http_client *c = NULL;
	struct http_client_opts o;
	http_client_opts_init(&o);
	o.retry.max_attempts = 3;
	o.retry.base_delay_ms = 1;
	o.retry.max_delay_ms = 5;
	o.low_speed_time_s = -1;
	o.seed = 1;
	CHECK_INT(http_client_new(&o, &c), 0, "client");
	if (!c) {
		close(ls);
		return;
	}
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/silent", ntohs(a.sin_port));
	struct http_request r;
	memset(&r, 0, sizeof(r));
	r.url = url;
	r.idempotent = 1;
	r.max_total_ms = 200;
	struct http_response resp;
	int rc = http_perform(c, &r, &resp);
	CHECK_INT(rc, -ETIMEDOUT, "a silent server: the budget ends the request");
	CHECK(resp.attempts <= 2, "no attempt after the budget (%d attempts)", resp.attempts);
	http_response_free(&resp);
	http_client_free(c);
	close(ls);
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	test_headers();
	test_url_for_log();
	test_backoff();
	test_sink();
	test_client_errors();
	test_requests();
	test_request_budget();
	curl_global_cleanup();
	return check_done();
}
