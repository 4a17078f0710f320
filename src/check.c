/*
 * check: `kvsfs check [-o OPTIONS]`, the permissions a mount needs, tested without mounting
 * (docs/IAM.md).
 *
 * It loads the AWS config and credentials exactly as a mount does, then makes one harmless
 * call per IAM action the options need and prints one line per action:
 *
 *   ok       kinesisvideo:ListFragments
 *   MISSING  kinesisvideo:GetClip  (AccessDeniedException): add "kinesisvideo:GetClip" to ...
 *   FAILED   kinesisvideo:GetImages  (the reason: endpoint, network, 5xx)
 *
 * "Harmless": reads of tiny or empty ranges (a clip, images, a session over a minute of the
 * year 2000), a fragment download of one fragment at most, a PutMedia with an empty body (no
 * fragment is stored); with export=, one probe object `PREFIX/.kvsfs-check-PID` is written, read
 * and deleted, and one multipart upload is created and aborted. A call answered with anything
 * but an authorization failure (not found, bad argument, no data) proves the permission. The
 * exit status is 0 when every action is allowed, 1 otherwise (2 for bad options). Nothing
 * secret is printed: credentials are named by their source only.
 */
#include "check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvsfs/awsconfig.h"
#include "kvsfs/awsreq.h"
#include "kvsfs/creds.h"
#include "kvsfs/http.h"
#include "kvsfs/kvs.h"
#include "kvsfs/log.h"
#include "kvsfs/s3.h"
#include "kvsfs/s3xml.h"

#define Y2000_MS 946684800000LL /* a range with no fragment in any stream */

struct chk {
	struct awsreq_ctx *aws;
	struct kvs_client *kvs;
	struct s3_client *s3;
	const char *stream;
	int bad;                      /* actions missing or failed */
};

/* An authorization failure of the action itself (not of the credentials: those stop early). */
static int denied(int rc, const struct awserr *e)
{
	return rc == -EACCES && (!strcmp(e->type, "AccessDeniedException") ||
				 !strcmp(e->type, "AccessDenied") ||
				 !strcmp(e->type, "NotAuthorizedException"));
}

/* A failure that says nothing about the permission: network, timeouts, 5xx, throttling. */
static int inconclusive(int rc, const struct awserr *e)
{
	return rc && (e->curl_code || e->http_status >= 500 || e->http_status == 0 || e->throttled ||
		      rc == -EAGAIN || rc == -ENOMEM || (rc == -EACCES && !denied(rc, e)));
}

/* Prints the line of one action after the call that tested it. */
static void report(struct chk *k, const char *action, int rc, const struct awserr *e)
{
	char why[400];
	if (rc == 0 || (!denied(rc, e) && !inconclusive(rc, e))) {
		printf("  ok       %s\n", action);
	} else if (denied(rc, e)) {
		printf("  MISSING  %s  (%s): add \"%s\" to the IAM policy (docs/IAM.md)\n", action,
		       e->type[0] ? e->type : "denied", action);
		k->bad++;
	} else {
		printf("  FAILED   %s  (%s)\n", action, awserr_summary(e, why, sizeof(why)));
		k->bad++;
	}
}

static int discard(void *arg, const void *data, size_t len)
{
	(void)arg, (void)data, (void)len;
	return 0;
}

static int discard_reset(void *arg)
{
	(void)arg;
	return 0;
}

/* GetImages and PutMedia have no client function (no view uses them yet): one plain call. */
static int data_post(struct chk *k, const char *api, const char *path, const char *json_body,
		     int put_media, struct awserr *e)
{
	char *base = NULL;
	int rc = kvs_data_endpoint(k->kvs, k->stream, api, &base, e);
	if (rc)
		return rc;
	struct buf url = BUF_INIT;
	struct http_headers h = HTTP_HEADERS_INIT;
	if (buf_printf(&url, "%s%s", base, path) ||
	    http_headers_add(&h, "Content-Type", put_media ? "application/octet-stream"
							   : "application/json") ||
	    (put_media && (http_headers_add(&h, "x-amzn-stream-name", k->stream) ||
			   http_headers_add(&h, "x-amzn-fragment-timecode-type", "RELATIVE")))) {
		rc = awserr_set_errno(e, ENOMEM, "out of memory");
	} else {
		struct awsreq r = { .service = "kinesisvideo", .method = "POST", .url = url.data,
				    .headers = &h, .body = json_body, .api = api,
				    .body_len = strlen(json_body), .body_fn = discard,
				    .reset_fn = discard_reset, .idempotent = !put_media,
				    .payload = put_media ? AWSREQ_PAYLOAD_EMPTY : AWSREQ_PAYLOAD_SHA256,
				    .timeout_ms = 20000 };
		struct http_response resp;
		rc = awsreq_perform(k->aws, &r, &resp);
		*e = resp.err;
		http_response_free(&resp);
	}
	http_headers_free(&h);
	buf_free(&url);
	free(base);
	return rc;
}

/* The KVS actions, against k->stream (which may not exist: the answer is then "not found"). */
static void check_kvs(struct chk *k)
{
	struct awserr e;
	struct kvs_stream st;
	memset(&st, 0, sizeof(st));
	awserr_clear(&e);
	report(k, "kinesisvideo:DescribeStream", kvs_describe_stream(k->kvs, k->stream, &st, &e), &e);
	kvs_stream_free(&st);
	char *url = NULL;
	awserr_clear(&e);
	int rc = kvs_data_endpoint(k->kvs, k->stream, "LIST_FRAGMENTS", &url, &e);
	report(k, "kinesisvideo:GetDataEndpoint", rc, &e);
	free(url);
	struct kvs_fragment_list fl = { 0 };
	int64_t now = (int64_t)time(NULL) * 1000;
	awserr_clear(&e);
	rc = kvs_list_fragments(k->kvs, k->stream, KVS_TS_SERVER, now - 600000, now, &fl, &e);
	report(k, "kinesisvideo:ListFragments", rc, &e);
	/* one fragment at most (the newest of the last ten minutes), else a number that is none */
	const char *num = fl.n ? fl.v[fl.n - 1].number : "91343852333181432392682062607743920146264225151";
	awserr_clear(&e);
	rc = kvs_get_media_for_fragment_list(k->kvs, k->stream, &num, 1, discard, discard_reset, NULL,
					     &e);
	report(k, "kinesisvideo:GetMediaForFragmentList", rc, &e);
	kvs_fragment_list_free(&fl);
	awserr_clear(&e);
	rc = kvs_get_clip(k->kvs, k->stream, KVS_TS_SERVER, Y2000_MS, Y2000_MS + 1000, discard,
			  discard_reset, NULL, &e);
	report(k, "kinesisvideo:GetClip", rc, &e);
	awserr_clear(&e);
	rc = kvs_get_hls_url(k->kvs, k->stream, 300, &url, &e);
	report(k, "kinesisvideo:GetHLSStreamingSessionURL", rc, &e);
	free(url);
	url = NULL;
	awserr_clear(&e);
	rc = kvs_get_dash_url(k->kvs, k->stream, 300, &url, &e);
	report(k, "kinesisvideo:GetDASHStreamingSessionURL", rc, &e);
	free(url);
	char body[400];
	snprintf(body, sizeof(body), "{\"StreamName\":\"%s\",\"ImageSelectorType\":\"SERVER_TIMESTAMP\","
		 "\"StartTimestamp\":%lld,\"EndTimestamp\":%lld,\"SamplingInterval\":3000,"
		 "\"Format\":\"JPEG\",\"MaxResults\":1}", k->stream, Y2000_MS / 1000,
		 Y2000_MS / 1000 + 1);
	awserr_clear(&e);
	report(k, "kinesisvideo:GetImages", data_post(k, "GET_IMAGES", "/getImages", body, 0, &e), &e);
	awserr_clear(&e);
	report(k, "kinesisvideo:PutMedia", data_post(k, "PUT_MEDIA", "/putMedia", "", 1, &e), &e);
}

/* The S3 actions of export=: a probe object written, read, deleted; one upload aborted. */
static void check_s3(struct chk *k, const char *prefix)
{
	struct awserr e;
	char key[512];
	snprintf(key, sizeof(key), "%s%s.kvsfs-check-%ld", prefix ? prefix : "",
		 prefix && *prefix ? "/" : "", (long)getpid());
	awserr_clear(&e);
	int rc = s3_head_bucket(k->s3, &e);
	if (rc == -ENOENT) { /* every other answer would be "no such bucket" too */
		printf("  FAILED   s3:ListBucket (HeadBucket)  (the bucket does not exist)\n");
		k->bad++;
		return;
	}
	report(k, "s3:ListBucket (HeadBucket)", rc, &e);
	struct s3xml_list list;
	memset(&list, 0, sizeof(list));
	awserr_clear(&e);
	rc = s3_list_objects(k->s3, key, NULL, 1, &list, &e);
	report(k, "s3:ListBucket (ListObjectsV2)", rc, &e);
	s3xml_list_free(&list);
	awserr_clear(&e);
	rc = s3_put_object_mem(k->s3, key, "kvsfs check\n", 12, NULL, NULL, &e);
	report(k, "s3:PutObject", rc, &e);
	int put = rc == 0;
	awserr_clear(&e);
	rc = s3_get_object(k->s3, key, 0, -1, discard, discard_reset, NULL, NULL, &e);
	report(k, "s3:GetObject", rc, &e);
	awserr_clear(&e);
	rc = s3_delete_object(k->s3, key, &e);
	report(k, "s3:DeleteObject", rc, &e);
	if (put && rc)
		printf("           (the probe object %s is left in the bucket)\n", key);
	char *id = NULL;
	awserr_clear(&e);
	rc = s3_mpu_create(k->s3, key, NULL, &id, &e);
	report(k, "s3:PutObject (CreateMultipartUpload)", rc, &e);
	if (rc == 0) {
		awserr_clear(&e);
		rc = s3_mpu_abort(k->s3, key, id, &e);
		report(k, "s3:AbortMultipartUpload", rc, &e);
	}
	free(id);
	struct s3xml_uploads ups;
	memset(&ups, 0, sizeof(ups));
	awserr_clear(&e);
	rc = s3_mpu_list(k->s3, key, &ups, &e);
	report(k, "s3:ListBucketMultipartUploads", rc, &e);
	s3xml_uploads_free(&ups);
}

int check_run(const struct check_setup *cs)
{
	struct chk k = { .aws = cs->aws, .kvs = cs->kvs, .s3 = cs->s3 };
	printf("kvsfs check: region %s, KVS endpoint %s, credentials from %s\n", cs->region,
	       cs->kvs_endpoint, cs->creds_source);
	if (cs->s3)
		printf("             export to %s (S3 endpoint %s)\n", cs->export_url, cs->s3_endpoint);
	struct awserr e;
	struct kvs_stream_list sl = { 0 };
	awserr_clear(&e);
	int rc = kvs_list_streams(cs->kvs, cs->stream_prefix, &sl, &e);
	if (rc && (e.curl_code || e.http_status == 0)) {
		char why[400];
		printf("  FAILED   the KVS endpoint cannot be reached (%s)\n",
		       awserr_summary(&e, why, sizeof(why)));
		return 1;
	}
	if (rc == -EACCES && !denied(rc, &e)) {
		char why[400];
		printf("  FAILED   credentials: %s\n", awserr_summary(&e, why, sizeof(why)));
		return 1;
	}
	report(&k, "kinesisvideo:ListStreams", rc, &e);
	k.stream = cs->stream ? cs->stream : sl.n ? sl.v[0].name : "kvsfs-check-no-stream";
	printf("             stream checked: %s%s\n", k.stream,
	       cs->stream || sl.n ? "" : " (none listed: a missing stream still proves each action)");
	check_kvs(&k);
	kvs_stream_list_free(&sl);
	if (cs->s3)
		check_s3(&k, cs->export_prefix);
	if (k.bad)
		printf("%d action%s missing or failing\n", k.bad, k.bad == 1 ? "" : "s");
	else
		printf("every action these options need is allowed\n");
	return k.bad ? 1 : 0;
}
