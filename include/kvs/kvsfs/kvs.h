/*
 * kvs: the Kinesis Video Streams service client (control plane + archived media).
 *
 * Every call goes through awsreq (SigV4 service "kinesisvideo") and is shaped as in
 * ../shared/docs/kvs-api.md. The client adds what the service expects of a good citizen:
 *   - data endpoints (GetDataEndpoint) cached per (stream, API) for 45 minutes and dropped when
 *     a data call fails with InvalidEndpointException or a transport error;
 *   - per-stream quotas enforced on the client side (ratelimit): 5 TPS for ListFragments,
 *     GetMediaForFragmentList, GetDataEndpoint and DescribeStream, 1 TPS for GetClip and HLS/DASH
 *     session creation; throttling that still happens is retried by the HTTP layer;
 *   - results normalised: ListStreams and ListFragments follow every NextToken page, fragments
 *     are sorted (the service returns them in no order) by start time on the requested basis,
 *     then by fragment number as a big integer.
 * Strings returned inside result structs are owned by those structs (free functions below).
 * Every function returns 0 or a negative errno and fills *err (optional) with the typed error.
 * Thread-safe: any number of threads may use one client.
 */
#ifndef KVSFS_KVS_H
#define KVSFS_KVS_H

#include <stddef.h>
#include <stdint.h>

#include "kvsfs/awsreq.h"

struct kvs_client;

struct kvs_client_opts {
	const struct awsreq_ctx *aws;   /* borrowed, must outlive the client */
	const char *control_endpoint;   /* e.g. https://kinesisvideo.us-east-1.amazonaws.com */
	int no_quotas;                  /* 1: do not pace calls on the client side */
	int endpoint_ttl_s;             /* data endpoint cache lifetime; 0: 2700 (45 min) */
};

struct kvs_stream {
	char *name;
	char *arn;
	char *status;          /* CREATING, ACTIVE, UPDATING, DELETING */
	char *media_type;      /* may be NULL */
	int64_t creation_ms;
	int64_t retention_hours;
};

struct kvs_stream_list {
	struct kvs_stream *v;
	size_t n, cap;
};

enum kvs_ts_type { KVS_TS_PRODUCER = 0, KVS_TS_SERVER = 1 };

struct kvs_fragment {
	char number[129];      /* decimal digits */
	int64_t producer_ms;
	int64_t server_ms;
	int64_t duration_ms;
	int64_t size;          /* FragmentSizeInBytes (NOT the GetMediaForFragmentList length) */
};

struct kvs_fragment_list {
	struct kvs_fragment *v;
	size_t n, cap;
};

/* Creates a client. Returns 0 and *out, -EINVAL (no endpoint), -ENOMEM. */
int kvs_client_new(const struct kvs_client_opts *opts, struct kvs_client **out);
void kvs_client_free(struct kvs_client *c);
/* The AWS request context the client was made with (borrowed), for calls in other files of
 * the KVS layer (putmedia.c, manage.c). */
const struct awsreq_ctx *kvs_client_aws(const struct kvs_client *c);
/* The control-plane endpoint URL (no trailing '/'), owned by the client. */
const char *kvs_client_control(const struct kvs_client *c);

void kvs_stream_free(struct kvs_stream *s);
void kvs_stream_list_free(struct kvs_stream_list *l);
void kvs_fragment_list_free(struct kvs_fragment_list *l);

/* ListStreams, every page; prefix (may be NULL) becomes a BEGINS_WITH StreamNameCondition. */
int kvs_list_streams(struct kvs_client *c, const char *prefix, struct kvs_stream_list *out,
		     struct awserr *err);
/* DescribeStream by name. */
int kvs_describe_stream(struct kvs_client *c, const char *name, struct kvs_stream *out,
			struct awserr *err);
/* GetDataEndpoint for (stream, api) from the cache or the service; *url is malloc'd. */
int kvs_data_endpoint(struct kvs_client *c, const char *stream, const char *api, char **url,
		      struct awserr *err);
/* Drops the cached endpoint of (stream, api), after a failure. */
void kvs_data_endpoint_forget(struct kvs_client *c, const char *stream, const char *api);

/*
 * ListFragments for [start_ms, end_ms] (inclusive, on the fragment start) with every page
 * (MaxResults 1000), appended to *out and sorted. Fragments with an invalid number or
 * timestamp in the reply fail the call with -EIO (one log line).
 */
int kvs_list_fragments(struct kvs_client *c, const char *stream, enum kvs_ts_type type,
		       int64_t start_ms, int64_t end_ms, struct kvs_fragment_list *out,
		       struct awserr *err);

/*
 * GetMediaForFragmentList for up to 1000 fragment numbers; the body streams to body_fn (see
 * http.h; reset_fn is called before a retry). The request is retried as a whole.
 */
int kvs_get_media_for_fragment_list(struct kvs_client *c, const char *stream,
				    const char *const *numbers, size_t n, http_body_fn body_fn,
				    http_reset_fn reset_fn, void *arg, struct awserr *err);

/* GetHLSStreamingSessionURL (LIVE, fMP4) / GetDASHStreamingSessionURL (LIVE) with Expires. */
int kvs_get_hls_url(struct kvs_client *c, const char *stream, int expires_s, char **url,
		    struct awserr *err);
int kvs_get_dash_url(struct kvs_client *c, const char *stream, int expires_s, char **url,
		     struct awserr *err);

/*
 * GETs a streaming-session document (HLS master playlist, DASH manifest) at url: no SigV4, the
 * session token in the URL is the credential. The body (at most 1 MiB) is appended to out
 * (a struct buf). The URL is never logged with its query.
 */
struct buf;
int kvs_get_session_document(struct kvs_client *c, const char *url, struct buf *out,
			     struct awserr *err);

/*
 * Makes a LIVE playback session and fetches its document: GetDataEndpoint (unless cached), then
 * GetHLSStreamingSessionURL (fMP4) or GetDASHStreamingSessionURL with Expires, then the GET of
 * the session URL (as kvs_get_session_document). All of it, retries and pacing included, stays
 * within budget_ms (0: each call gets the HTTP client's whole retry policy); a budget spent
 * between calls is -ETIMEDOUT. On success *url is malloc'd and the document appended to doc.
 * Returns 0 or a negative errno with *err (may be NULL) filled; a stream with no recent
 * fragment is -ENOENT with err->http_status 404.
 */
int kvs_live_session(struct kvs_client *c, const char *stream, int dash, int expires_s,
		     unsigned budget_ms, char **url, struct buf *doc, struct awserr *err);

/* A time range on a timestamp basis (ON_DEMAND playback sessions). */
struct kvs_range {
	enum kvs_ts_type ts;
	int64_t start_ms, end_ms;
};
#define KVS_PLAYLIST_MAX 5000  /* fragments in one ON_DEMAND playlist or manifest, at most */

/*
 * kvs_live_session with range NULL; with a range, an ON_DEMAND session over it (HLS fMP4 or DASH,
 * at most KVS_PLAYLIST_MAX fragments). A range without fragments is -ENOENT (404).
 */
int kvs_playback_session(struct kvs_client *c, const char *stream, int dash,
			 const struct kvs_range *range, int expires_s, unsigned budget_ms,
			 char **url, struct buf *doc, struct awserr *err);

/* Sorts a fragment list by start time on the given basis, then by number (big integers). */
void kvs_fragments_sort(struct kvs_fragment_list *l, enum kvs_ts_type type);

/*
 * GetClip for the fragments starting in [start_ms, end_ms] on the given basis, paced at 1 TPS
 * per stream. The reply (a classic MP4; KVS cuts it at 200 fragments or 100 MB without an error)
 * streams to body_fn, with reset_fn called before a retry. The request is idempotent and retried
 * as a whole. Returns 0 or a negative errno with *err (may be NULL) filled.
 */
int kvs_get_clip(struct kvs_client *c, const char *stream, enum kvs_ts_type type, int64_t start_ms,
		 int64_t end_ms, http_body_fn body_fn, http_reset_fn reset_fn, void *arg,
		 struct awserr *err);

#endif
