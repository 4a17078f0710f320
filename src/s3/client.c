/*
 * s3 client.c: the S3 client object and the one request path of every operation (see
 * include/kvsfs/s3.h for the contract, src/s3/s3_int.h for the map of the module).
 *
 * Design: each operation builds the wire URL (base + '/' + sigv4_uri_encode(key, keep_slash=1)
 * [+ '?' + query with values encoded by sigv4_uri_encode(keep_slash=0)]) with s3i_url and
 * s3i_query_add, its fixed headers, and hands one struct awsreq to s3i_run, which calls
 * awsreq_perform() (that signs every attempt and retries idempotent requests), copies the typed
 * error out and logs the single failure line. s3i_fail is the same line for failures decided
 * here (bad arguments, out of memory, malformed replies). This file also holds HeadBucket, the
 * mount-time check, whose failure line names the bucket and endpoint instead of a key.
 *
 * Invariants: the client is immutable after s3_client_new (thread-safe); no secret reaches the
 * log (lines name the operation, s3://bucket/key with control bytes replaced, and
 * awserr_format); every failure returns -err->err with *err filled.
 */
#include "s3_int.h"
#include "s3_testing.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void s3i_key_for_log(const char *key, char *out, size_t n)
{
	size_t w = 0;
	if (!key)
		key = "";
	for (size_t i = 0; key[i] && w + 4 < n; i++) {
		unsigned char ch = (unsigned char)key[i];
		out[w++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	if (key[0] && strlen(key) > w && w + 4 >= n && n > 4) {
		memcpy(out + w, "...", 3);
		w += 3;
	}
	out[w] = '\0';
}

void s3i_sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

void s3i_copy_err(struct awserr *dst, const struct awserr *src)
{
	if (dst)
		*dst = *src;
}

int s3i_log_failure(struct s3_client *c, int lvl, const char *op, const char *key,
		    const struct awserr *ae, struct awserr *err)
{
	char kl[512], line[768];
	s3i_key_for_log(key, kl, sizeof(kl));
	log_msg(c->log, lvl, S3_MOD, "%s s3://%s/%s failed: %s", op, c->bucket, kl,
		awserr_format(ae, line, sizeof(line)));
	s3i_copy_err(err, ae);
	return -ae->err;
}

int s3i_fail(struct s3_client *c, const char *op, const char *key, int e, const char *detail,
	     struct awserr *err)
{
	struct awserr ae;
	awserr_clear(&ae);
	awserr_set_errno(&ae, e, detail);
	s3i_log_failure(c, LOG_LEVEL_ERROR, op, key, &ae, err);
	return -e;
}

int s3i_run(struct s3_client *c, const char *op, const char *key, struct awsreq *r,
	    struct http_response *resp, int quiet, struct awserr *err)
{
	r->service = "s3";
	r->s3 = 1;
	r->api = r->api ? r->api : op;
	int rc = awsreq_perform(c->aws, r, resp);
	if (rc == 0) {
		if (err)
			awserr_clear(err);
		return 0;
	}
	int lvl = LOG_LEVEL_ERROR;
	if (quiet == S3I_QUIET_ALL || (quiet == S3I_QUIET_ENOENT && resp->err.err == ENOENT))
		lvl = LOG_LEVEL_DEBUG;
	s3i_log_failure(c, lvl, op, key, &resp->err, err);
	return rc;
}

int s3i_run_xml(struct s3_client *c, const char *op, const char *key, struct awsreq *r,
		struct buf *reply, struct http_response *resp, int quiet, struct awserr *err)
{
	struct http_sink sink = { .buf = reply, .max = S3_MAX_XML_REPLY };
	r->body_fn = http_sink_buf;
	r->reset_fn = http_sink_buf_reset;
	r->body_arg = &sink;
	return s3i_run(c, op, key, r, resp, quiet, err);
}

int s3i_error_in_200(const struct buf *reply, const struct http_response *resp,
		     struct awserr *ae)
{
	char root[32];
	if (!s3xml_root(reply->data, reply->len, root, sizeof(root)) || strcmp(root, "Error"))
		return 0;
	const char *rid = http_headers_get(&resp->headers, "x-amz-request-id");
	awserr_parse(ae, 200, NULL, rid, reply->data, reply->len);
	if (!ae->err)
		ae->err = EIO;
	return -ae->err;
}

int s3i_url(const struct s3_client *c, const char *key, const char *query, struct buf *u)
{
	int rc = buf_appendz(u, c->base);
	if (!rc && key) {
		rc = buf_putc(u, '/');
		if (!rc)
			rc = sigv4_uri_encode(u, key, strlen(key), 1);
	} else if (!rc && !c->path_style) {
		rc = buf_putc(u, '/');
	}
	if (!rc && query && *query) {
		rc = buf_putc(u, '?');
		if (!rc)
			rc = buf_appendz(u, query);
	}
	return rc;
}

int s3i_query_add(struct buf *q, const char *name, const char *value)
{
	int rc = 0;
	if (q->len)
		rc = buf_putc(q, '&');
	if (!rc)
		rc = buf_appendz(q, name);
	if (!rc)
		rc = buf_putc(q, '=');
	if (!rc && value)
		rc = sigv4_uri_encode(q, value, strlen(value), 0);
	return rc;
}

int s3i_valid_key(const char *key)
{
	if (!key || !*key || strlen(key) > 1024)
		return 0;
	for (const char *s = key;;) {
		size_t n = strcspn(s, "/");
		if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
			return 0;
		if (!s[n])
			return 1;
		s += n + 1;
	}
}

/* ---- the client ---- */

/* Checks the options; *sl and *hl get the lengths of the endpoint's scheme ("https://") and
 * host[:port], *el that of the endpoint without trailing '/'. Logs one line on failure. */
static int check_opts(const struct s3_client_opts *o, struct log_ctx *lg, size_t *sl, size_t *hl,
		      size_t *el)
{
	if (!o || !o->aws || !o->endpoint || !o->bucket) {
		LOG_ERROR(lg, S3_MOD, "S3 client needs an AWS context, an endpoint and a bucket");
		return -EINVAL;
	}
	size_t bl = strlen(o->bucket);
	if (bl < 3 || bl > 63 || strspn(o->bucket, "abcdefghijklmnopqrstuvwxyz0123456789.-_") != bl) {
		LOG_ERROR(lg, S3_MOD, "invalid bucket name (3-63 characters: a-z, 0-9, '.', '-')");
		return -EINVAL;
	}
	const char *e = o->endpoint;
	if (strncasecmp(e, "https://", 8) == 0) {
		*sl = 8;
	} else if (strncasecmp(e, "http://", 7) == 0) {
		*sl = 7;
	} else {
		LOG_ERROR(lg, S3_MOD, "S3 endpoint must be an http:// or https:// URL");
		return -EINVAL;
	}
	*el = strlen(e);
	while (*el > *sl && e[*el - 1] == '/')
		(*el)--;
	*hl = strcspn(e + *sl, "/?#@");
	if (*hl == 0 || *sl + *hl != *el) {
		LOG_ERROR(lg, S3_MOD, "S3 endpoint must be scheme://host[:port] without a path");
		return -EINVAL;
	}
	if (!o->path_style && strchr(o->bucket, '_')) {
		LOG_ERROR(lg, S3_MOD, "bucket %s cannot be used with virtual-host addressing",
			  o->bucket);
		return -EINVAL;
	}
	return 0;
}

int s3_client_new(const struct s3_client_opts *o, struct s3_client **out)
{
	return s3_client_new_testing(o, NULL, out);
}

int s3_client_new_testing(const struct s3_client_opts *o, const struct s3_testing *t,
			  struct s3_client **out)
{
	struct log_ctx *lg = o && o->aws ? o->aws->log : NULL;
	size_t sl, hl, el;
	*out = NULL;
	int rc = check_opts(o, lg, &sl, &hl, &el);
	if (rc)
		return rc;
	const char *e = o->endpoint;
	struct s3_client *c = calloc(1, sizeof(*c));
	struct buf base = BUF_INIT;
	if (!c)
		return -ENOMEM;
	c->aws = o->aws;
	c->log = o->aws->log;
	c->path_style = o->path_style;
	c->page_size = o->list_page_size > 0 && o->list_page_size <= 1000 ? o->list_page_size : 1000;
	c->corrupt_md5 = t && t->corrupt_md5;
	c->endpoint = strndup(e, el);
	c->bucket = strdup(o->bucket);
	if (!c->endpoint || !c->bucket)
		rc = -ENOMEM;
	else if (o->path_style)
		rc = buf_printf(&base, "%s/%s", c->endpoint, c->bucket);
	else
		rc = buf_printf(&base, "%.*s%s.%.*s", (int)sl, e, c->bucket, (int)hl, e + sl);
	if (!rc)
		c->base = buf_steal(&base);
	if (rc || !c->base) {
		buf_free(&base);
		s3_client_free(c);
		return -ENOMEM;
	}
	*out = c;
	return 0;
}

void s3_client_free(struct s3_client *c)
{
	if (!c)
		return;
	free(c->endpoint);
	free(c->bucket);
	free(c->base);
	free(c);
}

const char *s3_client_bucket(const struct s3_client *c)
{
	return c->bucket;
}

/* ---- bucket ---- */

int s3_head_bucket(struct s3_client *c, struct awserr *err)
{
	struct buf url = BUF_INIT;
	struct http_response resp;
	struct awserr ae;
	int rc;
	awserr_clear(&ae);
	if (s3i_url(c, NULL, NULL, &url)) {
		buf_free(&url);
		return s3i_fail(c, "HeadBucket", "", ENOMEM, "out of memory", err);
	}
	struct awsreq r = { .method = "HEAD", .url = url.data, .idempotent = 1 };
	rc = s3i_run(c, "HeadBucket", "", &r, &resp, S3I_QUIET_ALL, &ae);
	http_response_free(&resp);
	buf_free(&url);
	if (rc == 0) {
		s3i_copy_err(err, &ae);
		return 0;
	}
	char msg[AWSERR_MSG_MAX], line[768];
	if (ae.err == ENOENT)
		snprintf(msg, sizeof(msg), "bucket %s does not exist at %s", c->bucket, c->endpoint);
	else if (ae.err == EACCES)
		snprintf(msg, sizeof(msg), "access to bucket %s at %s denied: check the credentials "
			 "and the bucket policy", c->bucket, c->endpoint);
	else
		snprintf(msg, sizeof(msg), "bucket %s at %s cannot be checked", c->bucket,
			 c->endpoint);
	if (!ae.message[0]) {
		snprintf(ae.message, sizeof(ae.message), "%s", msg);
		LOG_ERROR(c->log, S3_MOD, "HeadBucket failed: %s",
			  awserr_format(&ae, line, sizeof(line)));
	} else {
		LOG_ERROR(c->log, S3_MOD, "%s (%s)", msg, awserr_format(&ae, line, sizeof(line)));
	}
	s3i_copy_err(err, &ae);
	return -ae.err;
}
