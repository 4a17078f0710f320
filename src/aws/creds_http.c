/*
 * creds_http: the one small HTTP exchange of the endpoint sources (container endpoint and IMDS):
 * a GET or PUT whose 2xx body (at most 64 KiB) lands in memory.
 *
 * Design: the provider owns one http_client made for these sources only: a 2 s connect timeout,
 * no retries inside the client (the source decides the attempts per request), no proxy ever
 * (link-local endpoints must not go through one). Reply bodies hold secrets: they are wiped when
 * the exchange is freed.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "creds_internal.h"

#define REPLY_MAX (64 * 1024)

int creds_http_setup(struct creds_provider *p, const struct creds_options *opts)
{
	if (p->http)
		return 0;
	struct http_client_opts ho;
	http_client_opts_init(&ho);
	ho.log = p->lg;
	ho.ca_file = opts->ca_file;
	ho.no_verify_ssl = opts->no_verify_ssl;
	ho.retry.max_attempts = 1;
	ho.retry.base_delay_ms = 100;
	ho.retry.max_delay_ms = 500;
	ho.retry.max_total_ms = 10000;
	ho.connect_timeout_ms = 2000;
	ho.pool_max_idle = 2;
	return http_client_new(&ho, &p->http);
}

int creds_http_do(struct creds_provider *p, struct creds_http_get *g)
{
	struct http_sink sink = { &g->body, REPLY_MAX };
	struct http_request req;
	memset(&req, 0, sizeof(req));
	req.method = g->method;
	req.url = g->url;
	req.headers = &g->hdrs;
	req.body_fn = http_sink_buf;
	req.reset_fn = http_sink_buf_reset;
	req.body_arg = &sink;
	req.idempotent = 1;
	req.max_attempts = g->attempts > 0 ? g->attempts : 1;
	req.timeout_ms = g->timeout_ms;
	req.connect_timeout_ms = g->timeout_ms;
	req.no_proxy = 1;
	struct http_response resp;
	http_response_init(&resp);
	int rc = http_perform(p->http, &req, &resp);
	g->status = resp.status;
	http_response_free(&resp);
	return rc;
}

void creds_http_get_free(struct creds_http_get *g)
{
	http_headers_free(&g->hdrs);
	creds_buf_wipe_free(&g->body);
}

const char *creds_http_reason(int rc, int status, char *tmp, size_t n)
{
	if (status >= 300 || (status && rc))
		snprintf(tmp, n, "HTTP %d", status);
	else if (rc == -ETIMEDOUT)
		snprintf(tmp, n, "no answer within the timeout");
	else
		snprintf(tmp, n, "%s", strerror(-rc));
	return tmp;
}
