/*
 * manage: stream-changing control-plane calls (see include/kvsfs/manage.h).
 *
 * Design: each call is one rest-json POST through awsreq_json() to the client's control
 * endpoint. DescribeStream is copied field by field into fixed buffers (no allocation for the
 * caller to free); strings longer than the API allows are cut (the API bounds them).
 */
#include "kvsfs/manage.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "kvsfs/awsreq.h"
#include "kvsfs/json.h"
#include "kvsfs/kvs.h"

static int call(struct kvs_client *c, const char *path, json_t *body, int idempotent,
		json_t **reply, struct awserr *err)
{
	json_t *r = NULL;
	if (!body)
		return err ? awserr_set_errno(err, ENOMEM, "out of memory") : -ENOMEM;
	int rc = awsreq_json(kvs_client_aws(c), NULL, kvs_client_control(c), path, body,
			     idempotent, 0, &r, err);
	json_decref(body);
	if (reply)
		*reply = r;
	else
		json_decref(r);
	return rc;
}

static void copy_str(const json_t *o, const char *key, char *dst, size_t n)
{
	const char *v = NULL;
	if (json_get_str(o, key, &v) != 0 || !v)
		v = "";
	snprintf(dst, n, "%s", v);
}

int kvs_describe_stream_info(struct kvs_client *c, const char *name, struct kvs_stream_info *out,
			     struct awserr *err)
{
	json_t *reply = NULL, *info = NULL;
	memset(out, 0, sizeof(*out));
	int rc = call(c, "/describeStream", json_pack("{s:s}", "StreamName", name), 1, &reply, err);
	if (rc)
		return rc;
	if (json_get_object(reply, "StreamInfo", &info)) {
		json_decref(reply);
		return err ? awserr_set_errno(err, EIO, "DescribeStream: no StreamInfo") : -EIO;
	}
	copy_str(info, "StreamName", out->name, sizeof(out->name));
	copy_str(info, "StreamARN", out->arn, sizeof(out->arn));
	copy_str(info, "Status", out->status, sizeof(out->status));
	copy_str(info, "MediaType", out->media_type, sizeof(out->media_type));
	copy_str(info, "DeviceName", out->device_name, sizeof(out->device_name));
	copy_str(info, "KmsKeyId", out->kms_key_id, sizeof(out->kms_key_id));
	copy_str(info, "Version", out->version, sizeof(out->version));
	if (json_get_epoch_ms(info, "CreationTime", &out->creation_ms))
		out->creation_ms = 0;
	if (json_get_int(info, "DataRetentionInHours", &out->retention_hours))
		out->retention_hours = 0;
	json_decref(reply);
	return 0;
}

int kvs_describe_storage_tier(struct kvs_client *c, const char *name, char tier[16],
			      struct awserr *err)
{
	json_t *reply = NULL, *cfg = NULL;
	int rc = call(c, "/describeStreamStorageConfiguration",
		      json_pack("{s:s}", "StreamName", name), 1, &reply, err);
	if (rc)
		return rc;
	if (json_get_object(reply, "StreamStorageConfiguration", &cfg)) {
		json_decref(reply);
		return err ? awserr_set_errno(err, EIO, "no StreamStorageConfiguration") : -EIO;
	}
	copy_str(cfg, "DefaultStorageTier", tier, 16);
	json_decref(reply);
	return 0;
}

int kvs_create_stream(struct kvs_client *c, const char *name, int64_t retention_hours,
		      struct awserr *err)
{
	json_t *body = json_pack("{s:s,s:I}", "StreamName", name, "DataRetentionInHours",
				 (json_int_t)retention_hours);
	return call(c, "/createStream", body, 0, NULL, err);
}

int kvs_delete_stream(struct kvs_client *c, const char *arn, const char *version,
		      struct awserr *err)
{
	json_t *body = json_pack("{s:s,s:s}", "StreamARN", arn, "CurrentVersion", version);
	return call(c, "/deleteStream", body, 0, NULL, err);
}

int kvs_update_retention(struct kvs_client *c, const char *name, const char *version,
			 int64_t cur, int64_t want, struct awserr *err)
{
	if (want == cur)
		return 0;
	json_t *body = json_pack("{s:s,s:s,s:s,s:I}", "StreamName", name, "CurrentVersion", version,
				 "Operation", want > cur ? "INCREASE_DATA_RETENTION"
							 : "DECREASE_DATA_RETENTION",
				 "DataRetentionChangeInHours",
				 (json_int_t)(want > cur ? want - cur : cur - want));
	return call(c, "/updateDataRetention", body, 0, NULL, err);
}
