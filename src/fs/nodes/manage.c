/*
 * manage: stream management through the tree, with -o manage_streams (SEMANTICS.md "Stream
 * management"): mkdir MNT/NAME creates a stream, rmdir MNT/NAME deletes one once
 * user.kvs.delete_confirm was set to its name, user.kvs.retention_hours changes its retention,
 * and read-only user.kvs.* attributes of a stream folder show its DescribeStream fields.
 *
 * Without the option every change is EROFS (the tree is read-only) and a stream folder carries
 * only user.kvs.stream. Calls go to include/kvsfs/manage.h; no lock is held across them (the
 * vstream's lock only guards the confirmation text and the retention copy). A deletion can only
 * follow an explicit confirmation naming the stream: no accident (rm -r, a script with the
 * wrong folder) may delete video.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodes.h"
#include "../core/inodes.h"
#include "../core/streams.h"
#include "kvsfs/awserr.h"
#include "kvsfs/clk.h"
#include "kvsfs/log.h"
#include "kvsfs/manage.h"
#include "kvsfs/names.h"

#define MOD "manage"
#define ACTIVE_WAIT_MS 60000
#define X_CONFIRM "user.kvs.delete_confirm"
#define X_RETENTION "user.kvs.retention_hours"
#define X_TIER "user.kvs.storage_tier"

static const char *const info_xattrs[] = {
	"user.kvs.stream", "user.kvs.status", "user.kvs.media_type", "user.kvs.device_name",
	"user.kvs.kms_key_id", "user.kvs.creation_time", X_RETENTION, "user.kvs.version",
	X_TIER,
};

#define N_INFO (sizeof(info_xattrs) / sizeof(info_xattrs[0]))

static int fail(struct vfs *v, const char *what, const char *name, int rc, struct awserr *e)
{
	char msg[600];
	LOG_WARN(v->c.log, MOD, "%s %s failed: %s", what, name, awserr_format(e, msg, sizeof(msg)));
	return rc;
}

static int valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 256)
		return 0;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

/* DescribeStream of name into a new *si (the caller frees it); on failure *si is NULL and e
 * says why. */
static int describe(struct vfs *v, const char *name, struct kvs_stream_info **si, struct awserr *e)
{
	awserr_clear(e);
	*si = malloc(sizeof(**si));
	if (!*si)
		return -ENOMEM;
	int rc = kvs_describe_stream_info(v->c.kvs, name, *si, e);
	if (rc) {
		free(*si);
		*si = NULL;
	}
	return rc;
}

/* Waits until the new stream is ACTIVE (CreateStream is asynchronous). */
static int wait_active(struct vfs *v, const char *name)
{
	int64_t deadline = clk_mono_ms() + ACTIVE_WAIT_MS;
	struct kvs_stream_info *si;
	struct awserr e;
	for (;;) {
		int rc = describe(v, name, &si, &e);
		if (rc)
			return fail(v, "DescribeStream of the new stream", name, rc, &e);
		int active = !strcmp(si->status, "ACTIVE");
		free(si);
		if (active)
			return 0;
		if (clk_mono_ms() > deadline)
			return -ETIMEDOUT;
		clk_sleep_ms(500);
	}
}

int node_manage_mkdir(struct vfs *v, const struct node_ref *dir, const char *name, mode_t mode,
		      struct vfs_attr *a)
{
	(void)mode;
	if (!v->c.manage_streams)
		return -EROFS;
	if ((v->c.export && !strcmp(name, v->c.export_dir)))
		return -EEXIST;
	if (!valid_name(name) || (v->c.stream_prefix &&
				  strncmp(name, v->c.stream_prefix, strlen(v->c.stream_prefix)))) {
		LOG_WARN(v->c.log, MOD, "mkdir %s: not a stream name this mount shows (1 to 256 of "
			 "a-z A-Z 0-9 _ . -, and the stream_prefix)", name);
		return -EINVAL;
	}
	struct awserr e;
	awserr_clear(&e);
	int rc = kvs_create_stream(v->c.kvs, name, v->c.default_retention_hours, &e);
	if (rc == -EBUSY && !strcmp(e.type, "ResourceInUseException"))
		return -EEXIST;
	if (rc)
		return fail(v, "CreateStream", name, rc, &e);
	if ((rc = wait_active(v, name)) != 0)
		return rc;
	LOG_INFO(v->c.log, MOD, "stream %s created (retention %d hours)", name,
		 v->c.default_retention_hours);
	streams_invalidate(v->streams);
	struct vstream *s;
	if ((rc = streams_lookup(v->streams, name, &s)) != 0)
		return rc == -ENOENT ? -EACCES : rc; /* made, but the allow-list hides it */
	struct node_val val = { .ops = &node_stream_ops, .stream = s };
	struct node_ref n;
	if ((rc = inodes_ref(v->inodes, dir->ino, name, &val, 0, 1, &n)) != 0)
		return rc;
	return node_stream_dir_getattr(v, &n, ATTR_STAT, a);
}

int node_manage_rmdir(struct vfs *v, const struct node_ref *dir, const char *name)
{
	if (!v->c.manage_streams)
		return -EROFS;
	struct vstream *s;
	int rc = streams_lookup(v->streams, name, &s);
	if (rc)
		return rc;
	pthread_mutex_lock(&s->lock);
	int confirmed = !strcmp(s->delete_confirm, name);
	pthread_mutex_unlock(&s->lock);
	if (!confirmed) {
		LOG_WARN(v->c.log, MOD, "rmdir %s refused: deleting a stream deletes its video; "
			 "confirm first with: setfattr -n " X_CONFIRM " -v %s MNT/%s", name, name,
			 name);
		return -EPERM;
	}
	struct kvs_stream_info *si;
	struct awserr e;
	if ((rc = describe(v, name, &si, &e)) == 0) {
		rc = kvs_delete_stream(v->c.kvs, si->arn, si->version, &e);
		free(si);
	}
	if (rc)
		return fail(v, "DeleteStream", name, rc, &e);
	LOG_INFO(v->c.log, MOD, "stream %s deleted", name);
	pthread_mutex_lock(&s->lock);
	s->delete_confirm[0] = '\0';
	pthread_mutex_unlock(&s->lock);
	streams_invalidate(v->streams);
	inodes_detach(v->inodes, dir->ino, name);
	return 0;
}

static ssize_t info_value(const struct kvs_stream_info *si, const char *name, char *buf,
			  size_t size)
{
	char tmp[64];
	const char *val = NULL;
	if (!strcmp(name, "user.kvs.status"))
		val = si->status;
	else if (!strcmp(name, "user.kvs.media_type"))
		val = si->media_type;
	else if (!strcmp(name, "user.kvs.device_name"))
		val = si->device_name;
	else if (!strcmp(name, "user.kvs.kms_key_id"))
		val = si->kms_key_id;
	else if (!strcmp(name, "user.kvs.version"))
		val = si->version;
	else if (!strcmp(name, X_RETENTION))
		snprintf(tmp, sizeof(tmp), "%" PRId64, si->retention_hours), val = tmp;
	else if (!strcmp(name, "user.kvs.creation_time") && names_format_stamp(si->creation_ms, tmp) == 0)
		val = tmp;
	if (!val || !*val)
		return -ENODATA;
	return vfs_xattr_value(val, buf, size);
}

/* user.kvs.storage_tier: ENODATA where the service has no DescribeStreamStorageConfiguration. */
static ssize_t storage_tier(struct vfs *v, const char *stream, char *buf, size_t size)
{
	char tier[16];
	struct awserr e;
	awserr_clear(&e);
	int rc = kvs_describe_storage_tier(v->c.kvs, stream, tier, &e);
	if (rc == -EACCES || rc == -EAGAIN || rc == -EIO || rc == -ETIMEDOUT)
		return fail(v, "DescribeStreamStorageConfiguration", stream, rc, &e);
	if (rc || !tier[0]) {
		LOG_INFO(v->c.log, MOD, "%s: no storage tier (%s)", stream,
			 e.type[0] ? e.type : "absent");
		return -ENODATA;
	}
	return vfs_xattr_value(tier, buf, size);
}

ssize_t node_manage_getxattr(struct vfs *v, const struct node_ref *n, const char *name,
			     char *buf, size_t size)
{
	if (!v->c.manage_streams || !strcmp(name, "user.kvs.stream"))
		return node_stream_getxattr(v, n, name, buf, size);
	if (!strcmp(name, X_CONFIRM)) {
		char c[sizeof(n->val.stream->delete_confirm)];
		pthread_mutex_lock(&n->val.stream->lock);
		memcpy(c, n->val.stream->delete_confirm, sizeof(c));
		pthread_mutex_unlock(&n->val.stream->lock);
		return c[0] ? vfs_xattr_value(c, buf, size) : -ENODATA;
	}
	size_t i;
	for (i = 1; i < N_INFO && strcmp(name, info_xattrs[i]); i++)
		;
	if (i == N_INFO)
		return -ENODATA;
	if (!strcmp(name, X_TIER))
		return storage_tier(v, n->val.stream->name, buf, size);
	struct kvs_stream_info *si;
	struct awserr e;
	int rc = describe(v, n->val.stream->name, &si, &e);
	if (rc)
		return fail(v, "DescribeStream", n->val.stream->name, rc, &e);
	ssize_t len = info_value(si, name, buf, size);
	free(si);
	return len;
}

ssize_t node_manage_listxattr(struct vfs *v, const struct node_ref *n, char *buf, size_t size)
{
	if (!v->c.manage_streams)
		return node_stream_listxattr(v, n, buf, size);
	return vfs_xattr_list(info_xattrs, N_INFO, buf, size);
}

/* user.kvs.retention_hours = text: UpdateDataRetention from the current value. */
static int set_retention(struct vfs *v, struct vstream *s, const char *value, size_t size)
{
	char txt[16], *end;
	if (size == 0 || size >= sizeof(txt))
		return -EINVAL;
	memcpy(txt, value, size);
	txt[size] = '\0';
	long want = strtol(txt, &end, 10);
	if (end == txt || (*end && *end != '\n') || want < 0 || want > 87600)
		return -EINVAL;
	struct kvs_stream_info *si;
	struct awserr e;
	int rc = describe(v, s->name, &si, &e);
	if (rc == 0) {
		rc = kvs_update_retention(v->c.kvs, s->name, si->version, si->retention_hours, want,
					  &e);
		free(si);
	}
	if (rc)
		return fail(v, "UpdateDataRetention", s->name, rc, &e);
	pthread_mutex_lock(&s->lock);
	s->retention_hours = want;
	pthread_mutex_unlock(&s->lock);
	streams_invalidate(v->streams);
	LOG_INFO(v->c.log, MOD, "stream %s: retention set to %ld hours", s->name, want);
	return 0;
}

int node_manage_setxattr(struct vfs *v, const struct node_ref *n, const char *name,
			 const char *value, size_t size)
{
	struct vstream *s = n->val.stream;
	if (!v->c.manage_streams)
		return -EROFS;
	if (!strcmp(name, X_RETENTION))
		return set_retention(v, s, value, size);
	if (!strcmp(name, X_CONFIRM)) {
		if (size >= sizeof(s->delete_confirm))
			return -EINVAL;
		pthread_mutex_lock(&s->lock);
		memcpy(s->delete_confirm, value, size);
		s->delete_confirm[size] = '\0';
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	for (size_t i = 0; i < N_INFO; i++)
		if (!strcmp(name, info_xattrs[i]))
			return -EPERM; /* read-only */
	return -ENOTSUP;
}
