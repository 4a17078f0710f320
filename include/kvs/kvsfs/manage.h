/*
 * manage: the control-plane calls that change streams (kvs-api.md 1.1), for the mount's stream
 * management (-o manage_streams): CreateStream, DeleteStream, UpdateDataRetention, and a
 * DescribeStream that keeps every StreamInfo field (version, device, KMS key) for the stream
 * folder's extended attributes.
 *
 * Every function returns 0 or a negative errno with *err (may be NULL) filled (ERRORS.md:
 * ResourceInUseException is EBUSY, ResourceNotFoundException ENOENT, ...). Calls are idempotent
 * where the API is (Describe) and retried by the HTTP layer; the changing calls are retried
 * only for throttling and connection failures before a reply (a repeated CreateStream would
 * find its own stream: ResourceInUseException). Thread-safe.
 */
#ifndef KVSFS_MANAGE_H
#define KVSFS_MANAGE_H

#include <stdint.h>

#include "kvsfs/awserr.h"

struct kvs_client;

#define KVS_INFO_STR 2049

struct kvs_stream_info {
	char name[257];
	char arn[1025];
	char status[16];
	char media_type[129];
	char device_name[129];
	char kms_key_id[KVS_INFO_STR];
	char version[65];
	int64_t creation_ms;
	int64_t retention_hours;
};

/* DescribeStream by name, every field ("" for absent ones). */
int kvs_describe_stream_info(struct kvs_client *c, const char *name, struct kvs_stream_info *out,
			     struct awserr *err);
/* DescribeStreamStorageConfiguration: DefaultStorageTier ("HOT", "WARM") into tier. */
int kvs_describe_storage_tier(struct kvs_client *c, const char *name, char tier[16],
			      struct awserr *err);
/* CreateStream with DataRetentionInHours. */
int kvs_create_stream(struct kvs_client *c, const char *name, int64_t retention_hours,
		      struct awserr *err);
/* DeleteStream by ARN with the CurrentVersion guard. */
int kvs_delete_stream(struct kvs_client *c, const char *arn, const char *version,
		      struct awserr *err);
/* UpdateDataRetention from cur to want hours: the INCREASE/DECREASE form with the change. */
int kvs_update_retention(struct kvs_client *c, const char *name, const char *version,
			 int64_t cur, int64_t want, struct awserr *err);

#endif
