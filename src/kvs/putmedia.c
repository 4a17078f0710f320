/*
 * putmedia: the PutMedia call (see include/kvsfs/putmedia.h for the contract).
 *
 * Design: one awsreq_perform() with a chunked read-callback body and a streamed response. The
 * body callback (pace_read) wraps the caller's reader: it counts the bytes sent (so a retry is
 * only possible before the first one) and sleeps when the body runs ahead of the ingest rate.
 * The response callback (on_ack) splits the reply into lines and parses each line as one ACK
 * event with jansson; BUFFERING/RECEIVED/PERSISTED are counted, IDLE ignored, and the first
 * ERROR is kept. Nothing is held across the call but the call's own state.
 */
#include "kvsfs/putmedia.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvsfs/awsreq.h"
#include "kvsfs/clk.h"
#include "kvsfs/kvs.h"
#include "kvsfs/log.h"

#define ACK_LINE_MAX 4096
#define DEFAULT_RATE (12500000u) /* 12.5 MB/s per stream (kvs-api.md 3.1) */
#define FRAGMENT_RATE 5          /* fragments/s per stream (kvs-api.md 3.1) */

struct put_state {
	const struct kvs_put_opts *o;
	struct kvs_put_result *res;
	struct log_ctx *log;
	const char *stream;
	int64_t t0_ns;
	uint64_t rate;
	char line[ACK_LINE_MAX];
	size_t len;
	int overlong;
};

int kvs_put_ack_errno(int id)
{
	switch (id) {
	case 4001: /* fragment over 50 MB */
	case 4002: /* fragment over 10 s */
	case 4009: /* fragment metadata limit */
		return EFBIG;
	case 4003: /* connection over its maximum duration */
		return ETIMEDOUT;
	case 4004: /* timecode not after the previous fragment's */
	case 4005: case 4006: case 4007: case 4010: case 4011: case 4012:
		return EINVAL;
	case 4008: case 4507: /* stream deleted or not active */
		return ENOENT;
	default:
		if (id >= 4500 && id <= 4506) /* KMS */
			return EACCES;
		return EIO;
	}
}

static ssize_t pace_read(void *arg, void *dst, size_t len)
{
	struct put_state *st = arg;
	int64_t due_ns = (int64_t)(st->res->bytes_sent * 1000000000.0 / (double)st->rate);
	int64_t ahead = due_ns - (clk_mono_ns() - st->t0_ns);
	if (ahead > 1000000)
		clk_sleep_ns(ahead);
	ssize_t n = st->o->read_fn(st->o->read_arg, dst, len);
	if (n > 0)
		st->res->bytes_sent += (uint64_t)n;
	return n;
}

static void ack_line(struct put_state *st, const char *s, size_t n)
{
	json_error_t je;
	json_t *o = json_loadb(s, n, JSON_DECODE_ANY, &je);
	if (!json_is_object(o)) {
		if (n > 0)
			LOG_DEBUG(st->log, "putmedia", "%s: unparsed ACK line ignored", st->stream);
		json_decref(o);
		return;
	}
	const char *ev = json_string_value(json_object_get(o, "EventType"));
	struct kvs_put_result *r = st->res;
	if (!ev) {
		/* not an event */
	} else if (!strcmp(ev, "BUFFERING")) {
		r->buffering++;
	} else if (!strcmp(ev, "RECEIVED")) {
		r->received++;
	} else if (!strcmp(ev, "PERSISTED")) {
		r->persisted++;
	} else if (!strcmp(ev, "ERROR") && r->error_id == 0) {
		json_t *id = json_object_get(o, "ErrorId"), *tc = json_object_get(o, "FragmentTimecode");
		const char *code = json_string_value(json_object_get(o, "ErrorCode"));
		r->error_id = json_is_integer(id) ? (int)json_integer_value(id) : 5000;
		r->error_timecode = json_is_integer(tc) ? (int64_t)json_integer_value(tc) : -1;
		snprintf(r->error_code, sizeof(r->error_code), "%s", code ? code : "");
	}
	json_decref(o);
}

static int on_ack(void *arg, const void *data, size_t len)
{
	struct put_state *st = arg;
	const char *p = data;
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\n') {
			if (!st->overlong)
				ack_line(st, st->line, st->len);
			st->len = 0;
			st->overlong = 0;
		} else if (st->len < sizeof(st->line)) {
			st->line[st->len++] = p[i];
		} else {
			st->overlong = 1;
		}
	}
	return 0;
}

static int put_headers(struct http_headers *h, const char *stream, const struct kvs_put_opts *o)
{
	char start[32];
	snprintf(start, sizeof(start), "%" PRId64 ".%03d", o->start_ms / 1000,
		 (int)(o->start_ms % 1000));
	if (http_headers_add(h, "x-amzn-stream-name", stream) ||
	    http_headers_add(h, "x-amzn-fragment-timecode-type", o->absolute ? "ABSOLUTE" : "RELATIVE") ||
	    http_headers_add(h, "x-amzn-producer-start-timestamp", start) ||
	    http_headers_add(h, "x-amzn-fragment-acknowledgment-required", "1") ||
	    http_headers_add(h, "Content-Type", "application/json"))
		return -ENOMEM;
	return 0;
}

/* The outcome once the reply ended: ERROR ACK, missing ACKs, or success. */
static int outcome(struct put_state *st, struct awserr *e)
{
	struct kvs_put_result *r = st->res;
	if (r->error_id)
		return -kvs_put_ack_errno(r->error_id);
	uint64_t done = st->o->need_persisted ? r->persisted : r->received;
	if (done < st->o->fragments) {
		char msg[128];
		snprintf(msg, sizeof(msg), "PutMedia reply ended after %" PRIu64 " of %" PRIu64
			 " fragment acknowledgements", done, st->o->fragments);
		return awserr_set_errno(e, EIO, msg);
	}
	return 0;
}

int kvs_put_media(struct kvs_client *c, const char *stream, const struct kvs_put_opts *o,
		  struct kvs_put_result *res, struct awserr *err)
{
	static const char api[] = "PUT_MEDIA";
	struct awserr local;
	struct awserr *e = err ? err : &local;
	const struct awsreq_ctx *aws = kvs_client_aws(c);
	memset(res, 0, sizeof(*res));
	res->error_timecode = -1;
	awserr_clear(e);
	char *ep = NULL;
	int rc = kvs_data_endpoint(c, stream, api, &ep, e);
	if (rc)
		return rc;
	struct http_headers h = HTTP_HEADERS_INIT;
	char *url = malloc(strlen(ep) + sizeof("/putMedia"));
	struct put_state *st = calloc(1, sizeof(*st));
	if (!url || !st || put_headers(&h, stream, o)) {
		rc = awserr_set_errno(e, ENOMEM, "out of memory");
		goto out;
	}
	sprintf(url, "%s/putMedia", ep);
	*st = (struct put_state){ .o = o, .res = res, .log = aws->log, .stream = stream,
				  .t0_ns = clk_mono_ns(),
				  .rate = o->max_bytes_per_s ? o->max_bytes_per_s : DEFAULT_RATE };
	if (o->body_bytes && o->fragments) {
		uint64_t by_frags = o->body_bytes * FRAGMENT_RATE / o->fragments;
		if (by_frags > 0 && by_frags < st->rate)
			st->rate = by_frags;
	}
	struct awsreq r = {
		.service = "kinesisvideo",
		.method = "POST",
		.url = url,
		.headers = &h,
		.payload = AWSREQ_PAYLOAD_EMPTY,
		.read_fn = pace_read,
		.read_arg = st,
		.body_size = -1,
		.body_fn = on_ack,
		.body_arg = st,
		/* retried only before the first body byte (no rewind callback) */
		.idempotent = 1,
	};
	struct http_response resp;
	rc = awsreq_perform(aws, &r, &resp);
	if (rc) {
		*e = resp.err;
		if (e->http_status == 0 || !strcmp(e->type, "InvalidEndpointException"))
			kvs_data_endpoint_forget(c, stream, api);
	}
	http_response_free(&resp);
	if (st->len && !st->overlong)
		ack_line(st, st->line, st->len); /* a last line without its newline */
	if (rc == 0 || res->error_id)
		rc = outcome(st, e);
out:
	http_headers_free(&h);
	free(st);
	free(url);
	free(ep);
	return rc;
}
