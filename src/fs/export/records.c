/*
 * export/records: crash recovery of multipart uploads (docs/EXPORT.md "Multipart uploads left
 * by a crash") and the uploads whose abort failed.
 *
 * What it does: while a multipart upload is open, the staging folder holds its record
 * STAGING/kvsfs-XXXXXX.upload (bucket, upload id, key). It is written and fsync'd (file and
 * folder) after CreateMultipartUpload answered and before the first UploadPart, and removed
 * once the upload is completed or aborted. The staging folder is flock'ed by one export at a
 * time, so at export_open every record belongs to an earlier run: its upload is aborted
 * (ex_recover_uploads). Uploads without a record (another tool's) are never touched.
 *
 * States of a recorded upload: open (record on disk, upload in S3) -> completed or aborted
 * (record removed) | abort failed (an orphan: the record stays; aborted again before the next
 * upload, at export_close, and by the next mount).
 *
 * Invariants:
 *  - a record is on disk (fsync'd) before any part of its upload is sent; a record that does
 *    not parse completely was cut short before any part was sent and is only removed;
 *  - a record is removed only after S3 answered the abort/complete (or said NoSuchUpload);
 *  - record files are written and removed with ex->mu released; ex->orphans is guarded by
 *    ex->mu, and ex_abort_orphans takes the whole list before releasing it for the requests.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "export_int.h"
#include "kvsfs/awserr.h"
#include "kvsfs/buf.h"
#include "kvsfs/fsutil.h"
#include "kvsfs/log.h"

#define RECORD_SUFFIX ".upload"
#define RECORD_MAGIC "kvsfs-upload 1\n"
#define RECORD_MAX 4096
#define RECORD_KEY_MAX 1024

/* Reads the line "NAME VALUE\n" at *p: VALUE is 1..maxlen bytes without control characters. */
static int record_line(const char **p, const char *end, const char *name, size_t maxlen,
		       char **out)
{
	size_t nl = strlen(name);
	if ((size_t)(end - *p) < nl + 1 || memcmp(*p, name, nl) || (*p)[nl] != ' ')
		return -EINVAL;
	const char *v = *p + nl + 1;
	const char *e = memchr(v, '\n', (size_t)(end - v));
	if (!e || e == v || (size_t)(e - v) > maxlen)
		return -EINVAL;
	for (const char *c = v; c < e; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return -EINVAL;
	*out = strndup(v, (size_t)(e - v));
	if (!*out)
		return -ENOMEM;
	*p = e + 1;
	return 0;
}

int export_parse_upload_record(const char *data, size_t len, char **bucket, char **upload_id,
			       char **key)
{
	*bucket = *upload_id = *key = NULL;
	size_t ml = strlen(RECORD_MAGIC);
	if (!data || len > RECORD_MAX || len < ml || memcmp(data, RECORD_MAGIC, ml))
		return -EINVAL;
	const char *p = data + ml, *end = data + len;
	char *klen = NULL;
	int rc = record_line(&p, end, "bucket", 63, bucket);
	if (!rc)
		rc = record_line(&p, end, "upload-id", 1024, upload_id);
	if (!rc)
		rc = record_line(&p, end, "key", 4, &klen);
	size_t kl = 0;
	for (const char *c = klen; !rc && *c; c++) {
		if (*c < '0' || *c > '9')
			rc = -EINVAL;
		kl = kl * 10 + (size_t)(*c - '0');
	}
	/* the key's bytes, then "\nend\n" exactly at the end: a record cut short never parses */
	if (!rc && (!kl || kl > RECORD_KEY_MAX || (size_t)(end - p) != kl + 5 ||
		    memchr(p, '\0', kl) || memcmp(p + kl, "\nend\n", 5)))
		rc = -EINVAL;
	if (!rc && !(*key = strndup(p, kl)))
		rc = -ENOMEM;
	free(klen);
	if (rc) {
		free(*bucket);
		free(*upload_id);
		*bucket = *upload_id = NULL;
	}
	return rc;
}

/* The record's text for upload id of key, checked to parse back. 0, -ENOMEM or -EIO. */
static int record_format(struct export *ex, const char *key, const char *id, struct buf *b)
{
	if (buf_printf(b, RECORD_MAGIC "bucket %s\nupload-id %s\nkey %zu\n",
		       s3_client_bucket(ex->s3), id, strlen(key)) ||
	    buf_appendz(b, key) || buf_appendz(b, "\nend\n"))
		return -ENOMEM;
	/* never write a record that the next mount could not read */
	char *pb, *pi, *pk;
	int rc = export_parse_upload_record(b->data, b->len, &pb, &pi, &pk);
	free(pb);
	free(pi);
	free(pk);
	return rc == -EINVAL ? -EIO : rc;
}

int ex_record_write(struct export *ex, const char *key, const char *id, char **name)
{
	*name = NULL;
	struct buf b = BUF_INIT;
	char tmpl[4096];
	int rc = 0, fd = -1;
	int len = snprintf(tmpl, sizeof(tmpl), "%s/kvsfs-XXXXXX" RECORD_SUFFIX, ex->staging_dir);
	if (len < 0 || (size_t)len >= sizeof(tmpl))
		rc = -ENAMETOOLONG;
	if (!rc)
		rc = record_format(ex, key, id, &b);
	if (!rc && (fd = mkostemps(tmpl, (int)strlen(RECORD_SUFFIX), O_CLOEXEC)) < 0)
		rc = -errno;
	if (!rc)
		rc = fsutil_write_all(fd, b.data, b.len);
	if (!rc && fsync(fd))
		rc = -errno;
	if (fd >= 0 && close(fd) && !rc)
		rc = -errno;
	if (!rc && fsync(ex->dfd))
		rc = -errno;
	if (!rc && !(*name = strdup(strrchr(tmpl, '/') + 1)))
		rc = -ENOMEM;
	if (rc) {
		if (fd >= 0)
			unlink(tmpl);
		LOG_ERROR(ex->log, MOD, "cannot record the multipart upload of %s in %s: %s (the "
			  "upload is aborted)", key, ex->staging_dir, strerror(-rc));
	}
	buf_free(&b);
	return rc;
}

/* NULL allowed. A record left behind only costs the next mount an abort answered by
 * NoSuchUpload. */
void ex_record_remove(struct export *ex, const char *name)
{
	if (name && unlinkat(ex->dfd, name, 0) && errno != ENOENT)
		LOG_DEBUG(ex->log, MOD, "removing %s/%s: %s", ex->staging_dir, name, strerror(errno));
}

/*
 * Aborts upload id of key, then confirms with ListMultipartUploads (prefix = key) that it is
 * no longer listed; a listed one is aborted once more (S3 asks for that when a part upload was
 * still arriving). *gone = 1 when S3 said NoSuchUpload at once (the upload had ended). Returns 0
 * or a negative errno. A failed listing does not fail the call: the abort itself was answered.
 */
static int abort_confirmed(struct export *ex, const char *key, const char *id, int *gone)
{
	*gone = 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		struct awserr e;
		int rc = s3_mpu_abort(ex->s3, key, id, &e);
		if (rc == -ENOENT) {
			*gone = !attempt;
			rc = 0;
		}
		if (rc)
			return rc;
		struct s3xml_uploads u = { 0 };
		int listed = 0;
		if (!s3_mpu_list(ex->s3, key, &u, &e))
			for (size_t i = 0; i < u.n; i++)
				if (!strcmp(u.v[i].upload_id, id) && !strcmp(u.v[i].key, key))
					listed = 1;
		s3xml_uploads_free(&u);
		if (!listed)
			return 0;
		*gone = 0;
	}
	return -EIO;
}

/* Reads one record file: 0 and the fields, -EINVAL (an incomplete record of this format),
 * -EPROTO (not a record of this format: kept), or another negative errno (unreadable). */
static int record_read(struct export *ex, const char *name, char **bucket, char **id, char **key)
{
	*bucket = *id = *key = NULL;
	struct buf raw = BUF_INIT;
	struct stat st;
	int fd = openat(ex->dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	int rc = fd < 0 ? -errno : 0;
	if (!rc && (fstat(fd, &st) || !S_ISREG(st.st_mode)))
		rc = -EPROTO;
	if (!rc)
		rc = fsutil_read_fd(fd, RECORD_MAX, &raw);
	if (fd >= 0)
		close(fd);
	if (rc == -EFBIG)
		rc = -EPROTO;
	if (!rc) {
		size_t ml = strlen(RECORD_MAGIC), n = raw.len < ml ? raw.len : ml;
		if (n && memcmp(raw.data, RECORD_MAGIC, n))
			rc = -EPROTO;
	}
	if (!rc)
		rc = export_parse_upload_record(raw.data ? raw.data : "", raw.len, bucket, id, key);
	buf_free(&raw);
	return rc;
}

void ex_orphan_add(struct export *ex, char *key, char *id, char *record)
{
	struct orphan *o = calloc(1, sizeof(*o));
	if (!o) {
		free(key);
		free(id);
		free(record);
		return;
	}
	o->key = key;
	o->upload_id = id;
	o->record = record;
	o->next = ex->orphans;
	ex->orphans = o;
}

static void orphan_free(struct orphan *o)
{
	free(o->key);
	free(o->upload_id);
	free(o->record);
	free(o);
}

/* Aborts the recorded upload of a readable record in this mount's bucket: one log line. */
static void recover_one(struct export *ex, const char *name, const char *bucket, char *id,
			char *key)
{
	int gone;
	int rc = abort_confirmed(ex, key, id, &gone);
	if (!rc) {
		ex_record_remove(ex, name);
		if (gone)
			LOG_INFO(ex->log, MOD, "multipart upload %s of s3://%s/%s of an earlier run had "
				 "already ended (completed or aborted); record removed", id, bucket, key);
		else
			LOG_INFO(ex->log, MOD, "aborted multipart upload %s of s3://%s/%s left "
				 "unfinished by an earlier run", id, bucket, key);
		free(id);
		free(key);
		return;
	}
	LOG_WARN(ex->log, MOD, "multipart upload %s of s3://%s/%s left by an earlier run could not "
		 "be aborted (%s); retried before the next upload and at the next mount", id,
		 bucket, key, strerror(-rc));
	if (rc == -EINVAL) {  /* a request S3 rejects is not retried in this run */
		free(id);
		free(key);
		return;
	}
	char *rec = strdup(name);  /* no copy: the record stays */
	pthread_mutex_lock(&ex->mu);
	ex_orphan_add(ex, key, id, rec);
	pthread_mutex_unlock(&ex->mu);
}

/* Aborts the upload of one record of an earlier run and removes the record: one log line. */
static void recover_record(struct export *ex, const char *name)
{
	char *bucket, *id, *key;
	int rc = record_read(ex, name, &bucket, &id, &key);
	if (rc == -EINVAL) {
		/* cut short: the run stopped while writing it, so before sending any part */
		LOG_WARN(ex->log, MOD, "removing the incomplete upload record %s/%s of an earlier "
			 "run (it stopped before sending any part)", ex->staging_dir, name);
		ex_record_remove(ex, name);
	} else if (rc) {
		LOG_WARN(ex->log, MOD, "upload record %s/%s of an earlier run cannot be read (%s); "
			 "kept", ex->staging_dir, name, rc == -EPROTO ? "unknown format" :
			 strerror(-rc));
	} else if (strcmp(bucket, s3_client_bucket(ex->s3))) {
		LOG_WARN(ex->log, MOD, "multipart upload %s of s3://%s/%s (recorded in %s/%s) is not "
			 "in this mount's bucket: kept; remove it with aws s3api abort-multipart-upload "
			 "and delete the record", id, bucket, key, ex->staging_dir, name);
	} else {
		recover_one(ex, name, bucket, id, key);
		id = key = NULL;
	}
	free(bucket);
	free(id);
	free(key);
}

void ex_recover_uploads(struct export *ex)
{
	DIR *d = opendir(ex->staging_dir);
	if (!d)
		return;
	struct buf names = BUF_INIT;  /* NUL-separated: the folder is changed while processing */
	struct dirent *de;
	int oom = 0;
	size_t sl = strlen(RECORD_SUFFIX);
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l <= sl + 6 || strncmp(de->d_name, "kvsfs-", 6) ||
		    strcmp(de->d_name + l - sl, RECORD_SUFFIX))
			continue;
		if (buf_append(&names, de->d_name, l + 1))
			oom = 1;
	}
	closedir(d);
	if (oom)
		LOG_ERROR(ex->log, MOD, "out of memory listing the upload records in %s",
			  ex->staging_dir);
	for (size_t off = 0; off < names.len; off += strlen(names.data + off) + 1)
		recover_record(ex, names.data + off);
	buf_free(&names);
}

void ex_abort_orphans(struct export *ex)
{
	struct orphan *list = ex->orphans, *keep = NULL;
	ex->orphans = NULL;
	if (!list)
		return;
	pthread_mutex_unlock(&ex->mu);
	while (list) {
		struct orphan *o = list;
		list = o->next;
		struct awserr e;
		int rc = s3_mpu_abort(ex->s3, o->key, o->upload_id, &e);
		if (rc && rc != -ENOENT) {
			o->next = keep;
			keep = o;
			continue;
		}
		ex_record_remove(ex, o->record);
		orphan_free(o);
	}
	pthread_mutex_lock(&ex->mu);
	while (keep) {
		struct orphan *o = keep;
		keep = o->next;
		o->next = ex->orphans;
		ex->orphans = o;
	}
}

void ex_orphans_report(struct export *ex)
{
	while (ex->orphans) {
		struct orphan *o = ex->orphans;
		ex->orphans = o->next;
		if (o->record)
			LOG_WARN(ex->log, MOD, "multipart upload %s of %s could not be aborted; the next "
				 "mount with this cache folder aborts it", o->upload_id, o->key);
		else
			LOG_WARN(ex->log, MOD, "multipart upload %s of %s could not be aborted; remove "
				 "it with abort-multipart-upload", o->upload_id, o->key);
		orphan_free(o);
	}
}
