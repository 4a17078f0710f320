/*
 * kvs: Kinesis Video Streams client (see include/kvsfs/kvs.h for the contract).
 *
 * Design: every operation is one rest-json POST through awsreq_json() (or awsreq_perform() for
 * the streamed GetMediaForFragmentList body). Before each call the client takes a slot in the
 * per-stream quota window of that API (ratelimit), so a busy mount paces itself instead of
 * collecting ClientLimitExceededException replies. Data-plane calls first resolve the stream's
 * data endpoint for that API from a small cache (list under a mutex; entries expire after
 * endpoint_ttl_s on the monotonic clock and are dropped when a call against them fails in a way that suggests a stale
 * endpoint: InvalidEndpointException or no HTTP response at all).
 *
 * Invariants: result structs are either fully filled or left as the caller passed them plus
 * appended complete entries; nothing half-parsed is returned. Malformed replies are -EIO with one
 * log line naming the field.
 */
#include "kvsfs/kvs.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvsfs/array.h"
#include "kvsfs/buf.h"
#include "kvsfs/clk.h"
#include "kvsfs/json.h"
#include "kvsfs/log.h"
#include "kvsfs/metrics.h"
#include "kvsfs/ratelimit.h"
#include "kvs_int.h"


struct endpoint_entry {
	char *stream;
	char *api;
	char *url;
	int64_t expires_ms;  /* monotonic */
	struct endpoint_entry *link;
};

struct kvs_client {
	const struct awsreq_ctx *aws;
	char *control;
	int no_quotas;
	int ttl_s;
	struct ratelimit *rl;
	pthread_mutex_t lock;
	struct endpoint_entry *endpoints;
};

static struct log_ctx *LG(const struct kvs_client *c)
{
	return c->aws->log;
}

/*
 * Budget of the next call before deadline (CLOCK_MONOTONIC ms; 0: none, *left = 0 = the HTTP
 * client's policy). Returns 0, or -ETIMEDOUT with *err (may be NULL) filled when it is spent.
 */
static int budget_left(int64_t deadline, const char *what, unsigned *left, struct awserr *err)
{
	*left = 0;
	if (!deadline)
		return 0;
	int64_t l = deadline - clk_mono_ms();
	if (l <= 0) {
		if (!err)
			return -ETIMEDOUT;
		awserr_clear(err);
		return awserr_set_errno(err, ETIMEDOUT, what);
	}
	*left = (unsigned)l;
	return 0;
}

int kvs_client_new(const struct kvs_client_opts *opts, struct kvs_client **out)
{
	*out = NULL;
	if (!opts->aws || !opts->control_endpoint || !*opts->control_endpoint)
		return -EINVAL;
	struct kvs_client *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->aws = opts->aws;
	c->control = strdup(opts->control_endpoint);
	c->no_quotas = opts->no_quotas;
	c->ttl_s = opts->endpoint_ttl_s > 0 ? opts->endpoint_ttl_s : 2700;
	c->rl = ratelimit_new();
	pthread_mutex_init(&c->lock, NULL);
	if (!c->control || !c->rl) {
		kvs_client_free(c);
		return -ENOMEM;
	}
	size_t n = strlen(c->control);
	while (n > 0 && c->control[n - 1] == '/')
		c->control[--n] = '\0';
	*out = c;
	return 0;
}

void kvs_client_free(struct kvs_client *c)
{
	if (!c)
		return;
	struct endpoint_entry *e = c->endpoints;
	while (e) {
		struct endpoint_entry *n = e->link;
		free(e->stream);
		free(e->api);
		free(e->url);
		free(e);
		e = n;
	}
	ratelimit_free(c->rl);
	pthread_mutex_destroy(&c->lock);
	free(c->control);
	free(c);
}

const struct awsreq_ctx *kvs_client_aws(const struct kvs_client *c)
{
	return c->aws;
}

const char *kvs_client_control(const struct kvs_client *c)
{
	return c->control;
}

void kvs_stream_free(struct kvs_stream *s)
{
	free(s->name);
	free(s->arn);
	free(s->status);
	free(s->media_type);
	memset(s, 0, sizeof(*s));
}

void kvs_stream_list_free(struct kvs_stream_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		kvs_stream_free(&l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

void kvs_fragment_list_free(struct kvs_fragment_list *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}

void kvs_pace(struct kvs_client *c, const char *stream, const char *api, int rate)
{
	if (c->no_quotas || !stream)
		return;
	char key[512];
	snprintf(key, sizeof(key), "%s/%s", api, stream);
	long waited = ratelimit_acquire(c->rl, key, rate);
	if (waited > 0)
		LOG_DEBUG(LG(c), "kvs", "%s on %s paced %ld ms for the per-stream quota", api, stream, waited);
}

int kvs_fail_reply(struct kvs_client *c, struct awserr *err, const char *op, const char *what)
{
	LOG_ERROR(LG(c), "kvs", "%s: malformed reply (%s)", op, what);
	if (err)
		awserr_set_errno(err, EIO, what);
	return -EIO;
}

static int parse_stream(struct kvs_client *c, const json_t *o, struct kvs_stream *s)
{
	const char *name = NULL, *arn = NULL, *status = NULL, *mt = NULL;
	memset(s, 0, sizeof(*s));
	if (json_get_str(o, "StreamName", &name) || json_get_str(o, "StreamARN", &arn))
		return -EIO;
	if (json_get_str(o, "Status", &status))
		status = "ACTIVE";
	if (json_get_str(o, "MediaType", &mt) == -EINVAL)
		return -EIO;
	int rc = json_get_epoch_ms(o, "CreationTime", &s->creation_ms);
	if (rc && rc != -ENOENT)
		return -EIO;
	rc = json_get_int(o, "DataRetentionInHours", &s->retention_hours);
	if (rc && rc != -ENOENT)
		return -EIO;
	s->name = strdup(name);
	s->arn = strdup(arn);
	s->status = strdup(status);
	s->media_type = mt ? strdup(mt) : NULL;
	if (!s->name || !s->arn || !s->status || (mt && !s->media_type)) {
		kvs_stream_free(s);
		return -ENOMEM;
	}
	(void)c;
	return 0;
}

int kvs_paginate(struct kvs_client *c, const struct pager *p, void *arg, struct awserr *err)
{
	char *token = NULL;
	for (long page = 0;; page++) {
		json_t *reply = NULL, *list = NULL;
		int rc = p->request(c, arg, token, &reply, err);
		free(token);
		token = NULL;
		if (rc)
			return rc;
		if (json_get_array(reply, p->field, &list) == -EINVAL) {
			json_decref(reply);
			return kvs_fail_reply(c, err, p->api, p->bad_field);
		}
		size_t i;
		json_t *it;
		json_array_foreach(list, i, it) {
			rc = p->item(c, arg, it);
			if (rc) {
				json_decref(reply);
				return rc < 0 ? rc : kvs_fail_reply(c, err, p->api, p->bad_item);
			}
		}
		const char *next = NULL;
		if (json_get_str(reply, "NextToken", &next) == 0 && *next)
			token = strdup(next);
		json_decref(reply);
		if (!token)
			return 0;
		if (page > p->max_pages) {
			free(token);
			return kvs_fail_reply(c, err, p->api, "endless pagination");
		}
	}
}

struct streams_page {
	const char *prefix;
	struct kvs_stream_list *out;
};

static int streams_request(struct kvs_client *c, void *arg, const char *token, json_t **reply,
			   struct awserr *err)
{
	struct streams_page *sp = arg;
	json_t *body = json_object();
	json_object_set_new(body, "MaxResults", json_integer(1000));
	if (token)
		json_object_set_new(body, "NextToken", json_string(token));
	if (sp->prefix && *sp->prefix)
		json_object_set_new(body, "StreamNameCondition",
				    json_pack("{s:s,s:s}", "ComparisonOperator", "BEGINS_WITH",
					      "ComparisonValue", sp->prefix));
	int rc = awsreq_json(c->aws, NULL, c->control, "/listStreams", body, 1, 0, reply, err);
	json_decref(body);
	return rc;
}

static int streams_item(struct kvs_client *c, void *arg, json_t *it)
{
	struct kvs_stream_list *out = ((struct streams_page *)arg)->out;
	struct kvs_stream *nv = array_grow(out->v, out->n, &out->cap, sizeof(*nv), 16);
	if (!nv)
		return -ENOMEM;
	out->v = nv;
	int rc = parse_stream(c, it, &out->v[out->n]);
	if (rc)
		return rc == -ENOMEM ? rc : 1;
	out->n++;
	return 0;
}

int kvs_list_streams(struct kvs_client *c, const char *prefix, struct kvs_stream_list *out,
		     struct awserr *err)
{
	static const struct pager p = {
		.api = "ListStreams", .field = "StreamInfoList",
		.bad_field = "StreamInfoList is not an array",
		.bad_item = "a StreamInfo lacks StreamName or StreamARN",
		.max_pages = 100000, .request = streams_request, .item = streams_item,
	};
	struct streams_page sp = { prefix, out };
	return kvs_paginate(c, &p, &sp, err);
}

int kvs_describe_stream(struct kvs_client *c, const char *name, struct kvs_stream *out,
			struct awserr *err)
{
	json_t *body = json_pack("{s:s}", "StreamName", name), *reply = NULL, *info = NULL;
	kvs_pace(c, name, "DescribeStream", KVS_TPS_STREAM);
	int rc = awsreq_json(c->aws, NULL, c->control, "/describeStream", body, 1, 0, &reply, err);
	json_decref(body);
	if (rc)
		return rc;
	if (json_get_object(reply, "StreamInfo", &info)) {
		json_decref(reply);
		return kvs_fail_reply(c, err, "DescribeStream", "no StreamInfo");
	}
	rc = parse_stream(c, info, out);
	json_decref(reply);
	if (rc == -EIO)
		return kvs_fail_reply(c, err, "DescribeStream", "StreamInfo lacks StreamName or StreamARN");
	return rc;
}

/* kvs_data_endpoint() within deadline (see budget_left). */
static int endpoint_get(struct kvs_client *c, const char *stream, const char *api,
			int64_t deadline, char **url, struct awserr *err)
{
	int64_t now = clk_mono_ms();
	*url = NULL;
	pthread_mutex_lock(&c->lock);
	for (struct endpoint_entry *e = c->endpoints; e; e = e->link) {
		if (strcmp(e->stream, stream) == 0 && strcmp(e->api, api) == 0 && e->expires_ms > now) {
			*url = strdup(e->url);
			pthread_mutex_unlock(&c->lock);
			return *url ? 0 : -ENOMEM;
		}
	}
	pthread_mutex_unlock(&c->lock);

	json_t *body = json_pack("{s:s,s:s}", "StreamName", stream, "APIName", api), *reply = NULL;
	kvs_pace(c, stream, "GetDataEndpoint", KVS_TPS_STREAM);
	unsigned left;
	int rc = budget_left(deadline, "time budget spent before GetDataEndpoint", &left, err);
	if (rc == 0)
		rc = awsreq_json_within(c->aws, c->control, "/getDataEndpoint", body, left, &reply, err);
	json_decref(body);
	if (rc)
		return rc;
	const char *ep = NULL;
	if (json_get_str(reply, "DataEndpoint", &ep) || strncmp(ep, "http", 4) != 0) {
		json_decref(reply);
		return kvs_fail_reply(c, err, "GetDataEndpoint", "no usable DataEndpoint");
	}
	struct endpoint_entry *e = calloc(1, sizeof(*e));
	if (e) {
		e->stream = strdup(stream);
		e->api = strdup(api);
		e->url = strdup(ep);
		e->expires_ms = now + (int64_t)c->ttl_s * 1000;
	}
	*url = strdup(ep);
	json_decref(reply);
	if (!e || !e->stream || !e->api || !e->url || !*url) {
		if (e) {
			free(e->stream);
			free(e->api);
			free(e->url);
			free(e);
		}
		free(*url);
		*url = NULL;
		return -ENOMEM;
	}
	size_t n = strlen(e->url);
	while (n > 0 && e->url[n - 1] == '/')
		e->url[--n] = '\0';
	(*url)[n] = '\0';
	pthread_mutex_lock(&c->lock);
	/* drop older entries of the same key */
	for (struct endpoint_entry **pp = &c->endpoints; *pp;) {
		struct endpoint_entry *o = *pp;
		if (strcmp(o->stream, stream) == 0 && strcmp(o->api, api) == 0) {
			*pp = o->link;
			free(o->stream);
			free(o->api);
			free(o->url);
			free(o);
		} else {
			pp = &o->link;
		}
	}
	e->link = c->endpoints;
	c->endpoints = e;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

int kvs_data_endpoint(struct kvs_client *c, const char *stream, const char *api, char **url,
		      struct awserr *err)
{
	return endpoint_get(c, stream, api, 0, url, err);
}

void kvs_data_endpoint_forget(struct kvs_client *c, const char *stream, const char *api)
{
	pthread_mutex_lock(&c->lock);
	for (struct endpoint_entry *e = c->endpoints; e; e = e->link)
		if (strcmp(e->stream, stream) == 0 && strcmp(e->api, api) == 0)
			e->expires_ms = INT64_MIN;
	pthread_mutex_unlock(&c->lock);
}

/* After a failed data-plane call: forget the endpoint when it may be stale. */
static void maybe_forget(struct kvs_client *c, const char *stream, const char *api,
			 const struct awserr *e)
{
	if (!e)
		return;
	if (e->http_status == 0 || strcmp(e->type, "InvalidEndpointException") == 0)
		kvs_data_endpoint_forget(c, stream, api);
}

int kvs_data_call(struct kvs_client *c, const char *stream, const char *api, const char *path,
		     json_t *body, int rate, int64_t deadline, json_t **reply, struct awserr *err)
{
	struct awserr local;
	struct awserr *e = err ? err : &local;
	char *ep = NULL;
	int rc = endpoint_get(c, stream, api, deadline, &ep, e);
	if (rc)
		return rc;
	kvs_pace(c, stream, path + 1, rate);
	unsigned left;
	rc = budget_left(deadline, "time budget spent before the data-plane call", &left, e);
	if (rc == 0) {
		rc = awsreq_json_within(c->aws, ep, path, body, left, reply, e);
		if (rc)
			maybe_forget(c, stream, api, e);
	}
	free(ep);
	return rc;
}

static int cmp_producer(const void *a, const void *b)
{
	const struct kvs_fragment *x = a, *y = b;
	if (x->producer_ms != y->producer_ms)
		return x->producer_ms < y->producer_ms ? -1 : 1;
	return json_fragnum_cmp(x->number, y->number);
}

static int cmp_server(const void *a, const void *b)
{
	const struct kvs_fragment *x = a, *y = b;
	if (x->server_ms != y->server_ms)
		return x->server_ms < y->server_ms ? -1 : 1;
	return json_fragnum_cmp(x->number, y->number);
}

void kvs_fragments_sort(struct kvs_fragment_list *l, enum kvs_ts_type type)
{
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), type == KVS_TS_SERVER ? cmp_server : cmp_producer);
}

static int parse_fragment(const json_t *o, struct kvs_fragment *f)
{
	const char *num = NULL;
	if (json_get_fragnum(o, "FragmentNumber", &num))
		return -1;
	snprintf(f->number, sizeof(f->number), "%s", num);
	if (json_get_epoch_ms(o, "ProducerTimestamp", &f->producer_ms) ||
	    json_get_epoch_ms(o, "ServerTimestamp", &f->server_ms))
		return -1;
	if (json_get_int(o, "FragmentLengthInMilliseconds", &f->duration_ms))
		f->duration_ms = 0;
	if (json_get_int(o, "FragmentSizeInBytes", &f->size))
		f->size = -1;
	return 0;
}

struct fragments_page {
	const char *stream;
	enum kvs_ts_type type;
	int64_t start_ms, end_ms;
	struct kvs_fragment_list *out;
};

static int fragments_request(struct kvs_client *c, void *arg, const char *token, json_t **reply,
			     struct awserr *err)
{
	struct fragments_page *fp = arg;
	json_t *body = json_pack("{s:s,s:I}", "StreamName", fp->stream, "MaxResults",
				 (json_int_t)1000);
	if (token) {
		json_object_set_new(body, "NextToken", json_string(token));
	} else {
		json_t *range = json_object();
		json_set_epoch_ms(range, "StartTimestamp", fp->start_ms);
		json_set_epoch_ms(range, "EndTimestamp", fp->end_ms);
		json_object_set_new(body, "FragmentSelector",
				    json_pack("{s:s,s:o}", "FragmentSelectorType",
					      fp->type == KVS_TS_SERVER ? "SERVER_TIMESTAMP"
									: "PRODUCER_TIMESTAMP",
					      "TimestampRange", range));
	}
	int rc = kvs_data_call(c, fp->stream, "LIST_FRAGMENTS", "/listFragments", body, KVS_TPS_STREAM,
			   0, reply, err);
	json_decref(body);
	return rc;
}

static int fragments_item(struct kvs_client *c, void *arg, json_t *it)
{
	struct kvs_fragment_list *out = ((struct fragments_page *)arg)->out;
	struct kvs_fragment *nv = array_grow(out->v, out->n, &out->cap, sizeof(*nv), 256);
	if (!nv)
		return -ENOMEM;
	out->v = nv;
	if (parse_fragment(it, &out->v[out->n]))
		return 1;
	out->n++;
	METRICS_ADD(c->aws->metrics, fragments_listed, 1);
	return 0;
}

int kvs_list_fragments(struct kvs_client *c, const char *stream, enum kvs_ts_type type,
		       int64_t start_ms, int64_t end_ms, struct kvs_fragment_list *out,
		       struct awserr *err)
{
	static const struct pager p = {
		.api = "ListFragments", .field = "Fragments",
		.bad_field = "Fragments is not an array",
		.bad_item = "a fragment has an invalid number or timestamp",
		.max_pages = 1000000, .request = fragments_request, .item = fragments_item,
	};
	struct fragments_page fp = { stream, type, start_ms, end_ms, out };
	size_t first = out->n;
	int rc = kvs_paginate(c, &p, &fp, err);
	if (rc) {
		out->n = first; /* nothing of a failed listing is kept */
		return rc;
	}
	kvs_fragments_sort(out, type);
	return 0;
}

int kvs_get_media_for_fragment_list(struct kvs_client *c, const char *stream,
				    const char *const *numbers, size_t n, http_body_fn body_fn,
				    http_reset_fn reset_fn, void *arg, struct awserr *err)
{
	static const char api[] = "GET_MEDIA_FOR_FRAGMENT_LIST";
	struct awserr local;
	struct awserr *e = err ? err : &local;
	if (n == 0 || n > 1000)
		return awserr_set_errno(e, EINVAL, "GetMediaForFragmentList takes 1 to 1000 fragments");
	char *ep = NULL;
	int rc = kvs_data_endpoint(c, stream, api, &ep, e);
	if (rc)
		return rc;
	json_t *list = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(list, json_string(numbers[i]));
	json_t *body = json_pack("{s:s,s:o}", "StreamName", stream, "Fragments", list);
	kvs_pace(c, stream, "getMediaForFragmentList", KVS_TPS_STREAM);
	rc = awsreq_json_stream(c->aws, NULL, ep, "/getMediaForFragmentList", body, 1, body_fn,
				reset_fn, arg, e);
	if (rc)
		maybe_forget(c, stream, api, e);
	json_decref(body);
	free(ep);
	return rc;
}

/* The ON_DEMAND part of a session request: the fragment selector over [start, end] and the
 * longest playlist KVS allows. 0 or -ENOMEM. */
static int ondemand_body(json_t *body, int dash, const struct kvs_range *r)
{
	json_t *range = json_object();
	if (!range || json_set_epoch_ms(range, "StartTimestamp", r->start_ms) ||
	    json_set_epoch_ms(range, "EndTimestamp", r->end_ms)) {
		json_decref(range);
		return -ENOMEM;
	}
	json_t *sel = json_pack("{s:s,s:o}", "FragmentSelectorType",
				r->ts == KVS_TS_SERVER ? "SERVER_TIMESTAMP" : "PRODUCER_TIMESTAMP",
				"TimestampRange", range);
	if (!sel || json_object_set_new(body, dash ? "DASHFragmentSelector" : "HLSFragmentSelector",
					sel) ||
	    json_object_set_new(body, dash ? "MaxManifestFragmentResults" :
				"MaxMediaPlaylistFragmentResults", json_integer(KVS_PLAYLIST_MAX)))
		return -ENOMEM;
	return 0;
}

static int session_url(struct kvs_client *c, const char *stream, int dash, int expires_s,
		       const struct kvs_range *r, int64_t deadline, char **url, struct awserr *err)
{
	const char *api = dash ? "GET_DASH_STREAMING_SESSION_URL" : "GET_HLS_STREAMING_SESSION_URL";
	const char *path = dash ? "/getDASHStreamingSessionURL" : "/getHLSStreamingSessionURL";
	const char *key = dash ? "DASHStreamingSessionURL" : "HLSStreamingSessionURL";
	json_t *body = json_pack("{s:s,s:s,s:i}", "StreamName", stream, "PlaybackMode",
				 r ? "ON_DEMAND" : "LIVE", "Expires", expires_s);
	*url = NULL;
	if (!body || (r && ondemand_body(body, dash, r))) {
		json_decref(body);
		if (err)
			awserr_set_errno(err, ENOMEM, "session request");
		return -ENOMEM;
	}
	if (!dash)
		json_object_set_new(body, "ContainerFormat", json_string("FRAGMENTED_MP4"));
	json_t *reply = NULL;
	*url = NULL;
	int rc = kvs_data_call(c, stream, api, path, body, KVS_TPS_SESSION, deadline, &reply, err);
	json_decref(body);
	if (rc)
		return rc;
	const char *u = NULL;
	if (json_get_str(reply, key, &u) || strncmp(u, "http", 4) != 0) {
		json_decref(reply);
		return kvs_fail_reply(c, err, path + 1, "no session URL");
	}
	*url = strdup(u);
	json_decref(reply);
	return *url ? 0 : -ENOMEM;
}

int kvs_get_hls_url(struct kvs_client *c, const char *stream, int expires_s, char **url,
		    struct awserr *err)
{
	return session_url(c, stream, 0, expires_s, NULL, 0, url, err);
}

int kvs_get_dash_url(struct kvs_client *c, const char *stream, int expires_s, char **url,
		     struct awserr *err)
{
	return session_url(c, stream, 1, expires_s, NULL, 0, url, err);
}

/* kvs_get_session_document() within deadline (0: none). */
static int session_document(struct kvs_client *c, const char *url, int64_t deadline,
			    struct buf *out, struct awserr *err)
{
	unsigned left;
	int rc = budget_left(deadline, "time budget spent before the session document", &left, err);
	if (rc)
		return rc;
	struct http_sink sink = { .buf = out, .max = 1u << 20 };
	struct http_request r = {
		.method = "GET",
		.url = url,
		.body_fn = http_sink_buf,
		.reset_fn = http_sink_buf_reset,
		.body_arg = &sink,
		.idempotent = 1,
		.max_total_ms = left,
	};
	struct http_response resp;
	rc = http_perform(c->aws->http, &r, &resp);
	awsreq_count_plain(c->aws, url, &resp);
	if (rc && err)
		*err = resp.err;
	http_response_free(&resp);
	return rc;
}

int kvs_get_session_document(struct kvs_client *c, const char *url, struct buf *out,
			     struct awserr *err)
{
	return session_document(c, url, 0, out, err);
}

int kvs_live_session(struct kvs_client *c, const char *stream, int dash, int expires_s,
		     unsigned budget_ms, char **url, struct buf *doc, struct awserr *err)
{
	return kvs_playback_session(c, stream, dash, NULL, expires_s, budget_ms, url, doc, err);
}

int kvs_playback_session(struct kvs_client *c, const char *stream, int dash,
			 const struct kvs_range *range, int expires_s, unsigned budget_ms,
			 char **url, struct buf *doc, struct awserr *err)
{
	int64_t deadline = budget_ms ? clk_mono_ms() + budget_ms : 0;
	int rc = session_url(c, stream, dash, expires_s, range, deadline, url, err);
	if (rc)
		return rc;
	rc = session_document(c, *url, deadline, doc, err);
	if (rc) {
		free(*url);
		*url = NULL;
	}
	return rc;
}

int kvs_get_clip(struct kvs_client *c, const char *stream, enum kvs_ts_type type, int64_t start_ms,
		 int64_t end_ms, http_body_fn body_fn, http_reset_fn reset_fn, void *arg,
		 struct awserr *err)
{
	static const char api[] = "GET_CLIP";
	struct awserr local;
	struct awserr *e = err ? err : &local;
	if (start_ms < 0 || end_ms < start_ms)
		return awserr_set_errno(e, EINVAL, "GetClip needs 0 <= start <= end");
	char *ep = NULL;
	int rc = kvs_data_endpoint(c, stream, api, &ep, e);
	if (rc)
		return rc;
	json_t *range = json_object();
	if (!range || json_set_epoch_ms(range, "StartTimestamp", start_ms) ||
	    json_set_epoch_ms(range, "EndTimestamp", end_ms)) {
		json_decref(range);
		free(ep);
		return awserr_set_errno(e, ENOMEM, "GetClip request");
	}
	json_t *body = json_pack("{s:s,s:{s:s,s:o}}", "StreamName", stream, "ClipFragmentSelector",
				 "FragmentSelectorType",
				 type == KVS_TS_SERVER ? "SERVER_TIMESTAMP" : "PRODUCER_TIMESTAMP",
				 "TimestampRange", range);
	if (!body) {
		free(ep);
		return awserr_set_errno(e, ENOMEM, "GetClip request");
	}
	kvs_pace(c, stream, "getClip", 1);
	rc = awsreq_json_stream(c->aws, NULL, ep, "/getClip", body, 1, body_fn, reset_fn, arg, e);
	if (rc)
		maybe_forget(c, stream, api, e);
	json_decref(body);
	free(ep);
	return rc;
}
