/*
 * export/upload: storing staged files in S3 (docs/EXPORT.md "Staging and parts sent while
 * writing", "Durability").
 *
 * What it does: a sequential writer gets a multipart upload whose parts are queued while it
 * writes (ex_queue_ready_parts) and sent by `parallel` worker threads, each reading its byte
 * range from the staging file; ex_finalize (flush, fsync, release, setattr, sync_all) sends
 * the rest and completes the upload, or PUTs a small file whole, or uploads everything again
 * after a random write. Completed or failed, every multipart upload this module opened is
 * either completed or aborted (or remembered as an orphan when the abort cannot reach S3).
 *
 * States of a node's upload: none -> creating (CreateMultipartUpload in flight, n->creating)
 * -> open (n->upload_id, record on disk, parts queued/in flight: n->inflight) -> completed |
 * aborted. A failed part sets n->mpu_err: no more parts are queued and ex_finalize aborts and
 * uploads the whole file.
 *
 * Invariants:
 *  - parts queued while writing cover [0, queued_end) with the plan of export_part_range, in
 *    order; part n is queued only once data follows it, so the last part is queued by
 *    ex_finalize;
 *  - any write not at the current end (or a truncate below queued_end) clears seq_ok, and the
 *    open upload is aborted at the next finalize, which then uploads the whole file;
 *  - ex_finalize owns the node (n->busy) and waits for n->inflight == 0 before it touches the
 *    upload state; workers touch a node's upload state only while they hold one of its jobs;
 *  - every S3 request, record write and log line is made with ex->mu released; the job queue
 *    and the nodes' upload fields are guarded by ex->mu; each job holds a node reference.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "export_int.h"
#include "kvsfs/awserr.h"
#include "kvsfs/log.h"
#include "kvsfs/metrics.h"

void ex_mpu_reset(struct xnode *n)
{
	free(n->upload_id);
	n->upload_id = NULL;
	free(n->mpu_key);
	n->mpu_key = NULL;
	free(n->mpu_record);  /* a record of an upload not aborted stays on disk for recovery */
	n->mpu_record = NULL;
	free(n->parts);
	n->parts = NULL;
	n->n_parts = n->cap_parts = 0;
	n->queued_end = 0;
	n->mpu_err = 0;
}

static int grow_parts(struct xnode *n, int need)
{
	if (need <= n->cap_parts)
		return 0;
	int cap = n->cap_parts ? n->cap_parts * 2 : 16;
	while (cap < need)
		cap *= 2;
	struct s3_part *p = realloc(n->parts, (size_t)cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	memset(p + n->cap_parts, 0, (size_t)(cap - n->cap_parts) * sizeof(*p));
	n->parts = p;
	n->cap_parts = cap;
	return 0;
}

/* Queues part number n->n_parts + 1 covering [off, off + len). */
static int queue_part(struct export *ex, struct xnode *n, uint64_t off, uint64_t len)
{
	struct job *j = calloc(1, sizeof(*j));
	if (!j || grow_parts(n, n->n_parts + 1)) {
		free(j);
		return -ENOMEM;
	}
	j->n = n;
	j->part = ++n->n_parts;
	j->off = off;
	j->len = len;
	METRICS_ADD(ex->metrics, upload_parts_queued, 1);
	METRICS_ADD(ex->metrics, upload_bytes_queued, len);
	n->queued_end = off + len;
	n->refs++;
	n->inflight++;
	if (ex->jobs_tail)
		ex->jobs_tail->next = j;
	else
		ex->jobs = j;
	ex->jobs_tail = j;
	pthread_cond_signal(&ex->job_cv);
	return 0;
}

/* Creates the multipart upload of n if needed (released during the request and the record
 * write). */
static int mpu_ensure(struct export *ex, struct xnode *n, int64_t mtime_for_create)
{
	while (n->creating)
		pthread_cond_wait(&ex->done_cv, &ex->mu);
	if (n->upload_id)
		return 0;
	if (n->mpu_err)
		return n->mpu_err;
	char *key = ex_key(ex, n->path ? n->path : "", "");
	if (!key)
		return -ENOMEM;
	n->creating = 1;
	mode_t mode = n->mode;
	pthread_mutex_unlock(&ex->mu);
	struct s3_meta h = S3_META_INIT;
	struct awserr e;
	char *id = NULL, *rec = NULL;
	int rc = ex_meta_build(&h, mode, mtime_for_create, 0);
	struct s3_put_opts po = { .meta = &h };
	if (!rc)
		rc = s3_mpu_create(ex->s3, key, &po, &id, &e);
	s3_meta_free(&h);
	/* the record goes to disk before any part: a crash from here on leaves it for the next
	 * mount, which aborts the upload (docs/EXPORT.md: the window before it holds no part) */
	if (!rc) {
		rc = ex_record_write(ex, key, id, &rec);
		if (rc) {
			s3_mpu_abort(ex->s3, key, id, &e);
			free(id);
		}
	}
	pthread_mutex_lock(&ex->mu);
	n->creating = 0;
	if (!rc) {
		n->upload_id = id;
		n->mpu_record = rec;
		n->mpu_key = key;
		n->mpu_mode = mode;
		n->mpu_mtime = mtime_for_create;
	} else {
		free(key);
		n->mpu_err = rc;
	}
	pthread_cond_broadcast(&ex->done_cv);
	return rc;
}

/* Sends one queued part (mutex held, released during the request). */
static int send_part(struct export *ex, struct job *j)
{
	struct xnode *n = j->n;
	int rc = n->mpu_err;
	if (!rc)
		rc = mpu_ensure(ex, n, INT64_MIN);
	if (rc)
		return rc;
	char *key = strdup(n->mpu_key), *id = strdup(n->upload_id);
	int fd = n->st ? n->st->fd : -1;
	pthread_mutex_unlock(&ex->mu);
	int slot = metrics_work_begin(ex->metrics, "upload part", key, 0, j->len);
	struct s3_part part;
	struct awserr e;
	rc = !key || !id ? -ENOMEM : fd < 0 ? -EIO :
	     s3_mpu_upload_part(ex->s3, key, id, j->part, fd, (off_t)j->off, (off_t)j->len, &part,
				&e);
	metrics_work_end(ex->metrics, slot);
	free(key);
	free(id);
	pthread_mutex_lock(&ex->mu);
	if (!rc)
		n->parts[j->part - 1] = part;
	return rc;
}

static void *worker_main(void *arg)
{
	struct export *ex = arg;
	pthread_mutex_lock(&ex->mu);
	for (;;) {
		while (!ex->jobs && !ex->stopping) {
			int64_t due = ex_known_next_due(ex);
			if (due == INT64_MAX) {
				pthread_cond_wait(&ex->job_cv, &ex->mu);
				continue;
			}
			if (due <= ex_mono_ms()) {  /* pending mode/mtime changes (known.c) */
				pthread_mutex_unlock(&ex->mu);
				ex_known_flush(ex, 0);
				pthread_mutex_lock(&ex->mu);
				continue;
			}
			ex_timed_wait(&ex->job_cv, &ex->mu, due - ex_mono_ms());
		}
		if (!ex->jobs)
			break;
		struct job *j = ex->jobs;
		ex->jobs = j->next;
		if (!ex->jobs)
			ex->jobs_tail = NULL;
		struct xnode *n = j->n;
		int rc = send_part(ex, j);
		if (rc && !n->mpu_err)
			n->mpu_err = rc;
		n->inflight--;
		pthread_cond_broadcast(&ex->done_cv);
		ex_node_put(ex, n);
		METRICS_ADD(ex->metrics, upload_parts_queued, -1);
		METRICS_ADD(ex->metrics, upload_bytes_queued, -(int64_t)j->len);
		free(j);
		if (ex->trash) {  /* the last reference: its staging file goes, with the lock free */
			ex_unlock(ex);
			pthread_mutex_lock(&ex->mu);
		}
	}
	ex_unlock(ex);
	return NULL;
}

int ex_workers_start(struct export *ex)
{
	ex->workers = calloc((size_t)ex->parallel, sizeof(pthread_t));
	if (!ex->workers)
		return -ENOMEM;
	for (int i = 0; i < ex->parallel; i++) {
		if (pthread_create(&ex->workers[i], NULL, worker_main, ex))
			return -EAGAIN;
		ex->n_workers++;
	}
	return 0;
}

void ex_workers_stop(struct export *ex)
{
	pthread_mutex_lock(&ex->mu);
	ex->stopping = 1;
	pthread_cond_broadcast(&ex->job_cv);
	pthread_mutex_unlock(&ex->mu);
	for (int i = 0; i < ex->n_workers; i++)
		pthread_join(ex->workers[i], NULL);
	free(ex->workers);
	ex->workers = NULL;
	ex->n_workers = 0;
}

int ex_queue_ready_parts(struct export *ex, struct xnode *n)
{
	while (n->seq_ok && !n->mpu_err && n->path && n->n_parts < S3_MAX_PARTS - 1) {
		uint64_t off, len;
		export_part_range(ex->part_size, n->n_parts + 1, &off, &len);
		if (off != n->queued_end || n->size <= off + len)
			break;
		int rc = queue_part(ex, n, off, len);
		if (rc)
			return rc;
	}
	return 0;
}

/* Aborts n's open multipart upload, if any (n owned and idle; released during the request). */
static void mpu_abort_locked(struct export *ex, struct xnode *n)
{
	if (n->upload_id) {
		char *key = n->mpu_key, *id = n->upload_id, *rec = n->mpu_record;
		n->mpu_key = NULL;
		n->upload_id = NULL;
		n->mpu_record = NULL;
		pthread_mutex_unlock(&ex->mu);
		struct awserr e;
		int rc = s3_mpu_abort(ex->s3, key, id, &e);
		int failed = rc && rc != -ENOENT;
		if (!failed)
			ex_record_remove(ex, rec);
		else
			LOG_WARN(ex->log, MOD, "abort of the multipart upload of %s failed (%s); "
				 "retried at the next upload", key, strerror(-rc));
		pthread_mutex_lock(&ex->mu);
		if (failed) {
			ex_orphan_add(ex, key, id, rec);
		} else {
			free(key);
			free(id);
			free(rec);
		}
	}
	ex_mpu_reset(n);
}

void ex_abort_idle(struct export *ex, struct xnode *n)
{
	ex_node_wait_idle(ex, n);
	n->busy = 1;
	mpu_abort_locked(ex, n);
	ex_node_disown(ex, n);
}

int ex_claim_key(struct export *ex, const struct xnode *self, const char *key)
{
	struct xnode *m = ex->nodes;
	while (m && (m == self || !m->upload_id || !m->mpu_key || strcmp(m->mpu_key, key)))
		m = m->next;
	if (!m)
		return 0;
	m->refs++;
	ex_node_wait_idle(ex, m);
	if (m->upload_id && m->mpu_key && !strcmp(m->mpu_key, key)) { /* still under key */
		m->busy = 1;
		mpu_abort_locked(ex, m);
		ex_node_disown(ex, m);
	}
	ex_node_put(ex, m);
	return 1;
}

/* After Complete under the old key of a renamed file: copies it to key (with mode/mtime),
 * then deletes the old key (mutex NOT held). Nothing else was stored under the old key since
 * the rename (ex_claim_key aborts this upload before anything is), so the object there is
 * only this file's. */
static int mpu_copy_renamed(struct export *ex, const char *mkey, const char *key, mode_t mode,
			    int64_t mt)
{
	struct s3_meta h = S3_META_INIT;
	struct awserr e;
	int rc = ex_meta_build(&h, mode, mt, 0);
	struct s3_put_opts po = { .meta = &h };
	if (!rc)
		rc = s3_copy_object(ex->s3, mkey, key, S3_META_REPLACE, &po, NULL, &e);
	s3_meta_free(&h);
	if (rc)
		return rc;
	s3_delete_object(ex->s3, mkey, &e);
	return 0;
}

/*
 * Completes n's multipart upload once every part is sent (n owned; released during requests):
 * CompleteMultipartUpload under the key it was created with, then a server-side copy when the
 * file was renamed meanwhile, or a metadata update when mode/mtime changed after the create.
 * Removes the upload record once the upload is completed. Returns 0 or a negative errno.
 */
static int mpu_finish(struct export *ex, struct xnode *n, const char *key, mode_t mode,
		      int64_t mt, uint64_t size)
{
	char *id = strdup(n->upload_id), *mkey = strdup(n->mpu_key);
	size_t np = (size_t)n->n_parts;
	struct s3_part *parts = malloc(np * sizeof(*parts));
	int64_t sent_mt = n->mpu_mtime;
	int n_mt_set = n->mtime_set || sent_mt != INT64_MIN;
	mode_t sent_mode = n->mpu_mode;
	if (!id || !mkey || !parts) {
		free(id);
		free(mkey);
		free(parts);
		return -ENOMEM;
	}
	memcpy(parts, n->parts, np * sizeof(*parts));
	char *rec = n->mpu_record;  /* owned: nobody else touches it */
	n->mpu_record = NULL;
	pthread_mutex_unlock(&ex->mu);
	struct awserr e;
	int rc = s3_mpu_complete(ex->s3, mkey, id, parts, np, NULL, &e);
	int completed = !rc;
	if (completed)
		ex_record_remove(ex, rec);  /* nothing left to abort */
	if (!rc && strcmp(mkey, key))
		rc = mpu_copy_renamed(ex, mkey, key, mode, mt);  /* renamed while uploading */
	else if (!rc && ((n_mt_set && sent_mt != mt) || sent_mode != mode) &&
		 size <= (uint64_t)S3_MAX_PUT_SIZE)
		rc = ex_meta_replace(ex, mkey, mode, mt, 0);
	pthread_mutex_lock(&ex->mu);
	if (completed)
		free(rec);
	else
		n->mpu_record = rec;  /* the caller's abort removes it */
	free(id);
	free(mkey);
	free(parts);
	if (!rc) {
		free(n->upload_id);
		n->upload_id = NULL;  /* completed: nothing to abort */
	}
	return rc;
}

/* Sends the rest of the file as parts and completes the upload (n owned). */
static int finalize_multipart(struct export *ex, struct xnode *n, const char *key,
			      uint64_t size, mode_t mode, int64_t mt)
{
	int rc = 0;
	if (!n->upload_id) {
		n->seq_ok = 1;
		rc = mpu_ensure(ex, n, mt);
	}
	/* the rest of the file: full planned parts, then the last */
	while (!rc && n->queued_end < size) {
		uint64_t off, len;
		export_part_range(ex->part_size, n->n_parts + 1, &off, &len);
		if (off != n->queued_end) {
			rc = -EIO;
			break;
		}
		if (off + len > size || n->n_parts + 1 == S3_MAX_PARTS)
			len = size - off;
		rc = queue_part(ex, n, off, len);
	}
	while (n->inflight)
		pthread_cond_wait(&ex->done_cv, &ex->mu);
	if (!rc)
		rc = n->mpu_err;
	if (!rc && n->queued_end != size)
		rc = -EIO;
	if (!rc)
		rc = mpu_finish(ex, n, key, mode, mt, size);
	mpu_abort_locked(ex, n);
	return rc;
}

/* Stores the staged bytes of n (n owned, idle): one PUT, or a multipart upload. */
static int finalize_data(struct export *ex, struct xnode *n, const char *key)
{
	if (!n->seq_ok || n->mpu_err) {
		int perr = n->mpu_err;
		if (perr) {
			pthread_mutex_unlock(&ex->mu);
			LOG_WARN(ex->log, MOD, "upload of parts of %s failed while writing (%s); "
				 "uploading the whole file again", n->path, strerror(-perr));
			pthread_mutex_lock(&ex->mu);
		}
		mpu_abort_locked(ex, n);
	}
	uint64_t size = n->size;
	mode_t mode = n->mode;
	int64_t mt = n->mtime_ms;
	if (n->upload_id || size > ex->part_size)
		return size > ex->max_file ? -EFBIG :
		       finalize_multipart(ex, n, key, size, mode, mt);
	int fd = n->st ? n->st->fd : -1;
	pthread_mutex_unlock(&ex->mu);
	struct s3_meta h = S3_META_INIT;
	struct awserr e;
	int rc = fd < 0 ? -EIO : ex_meta_build(&h, mode, mt, 0);
	struct s3_put_opts po = { .meta = &h };
	if (!rc)
		rc = s3_put_object_fd(ex->s3, key, fd, 0, (off_t)size, &po, NULL, &e);
	s3_meta_free(&h);
	pthread_mutex_lock(&ex->mu);
	return rc;
}

int ex_finalize(struct export *ex, struct xnode *n)
{
	char *key = NULL;
	int claimed;
	do {
		ex_node_wait_idle(ex, n);
		free(key);
		key = NULL;
		if (!n->path || (!n->dirty && !n->meta_dirty))
			return 0;
		key = ex_key(ex, n->path, "");
		/* a file renamed away from this key while uploading still has its multipart
		 * upload here: abort it before storing (the mutex was released: look again) */
		claimed = key && n->dirty && ex_claim_key(ex, n, key);
	} while (claimed);
	n->busy = 1;
	ex_abort_orphans(ex);
	int rc = -ENOMEM;
	int data = key && n->dirty;
	if (data) {
		n->fresh = 0;  /* even a failed store may have acted: a rename deletes the key */
		rc = finalize_data(ex, n, key);
	} else if (key) {
		/* only metadata changed on a stored object */
		mode_t mode = n->mode;
		int64_t mt = n->mtime_ms;
		pthread_mutex_unlock(&ex->mu);
		/* a file this mount just stored (rsync's temp file, released after its utimens):
		 * kept pending for the rename that usually follows (known.c) */
		rc = ex_known_defer_meta(ex, n->path, 1, mode, 1, mt) ? 0 :
		     ex_meta_replace(ex, key, mode, mt, 0);
		pthread_mutex_lock(&ex->mu);
	}
	if (!rc && n->journaled && n->st) {
		char *sp = strdup(n->st->path);  /* stored: the journal entry goes */
		pthread_mutex_unlock(&ex->mu);
		if (sp)
			ex_journal_remove(sp);
		free(sp);
		pthread_mutex_lock(&ex->mu);
		n->journaled = 0;
	}
	if (!rc) {
		n->dirty = 0;
		n->meta_dirty = 0;
		n->last_err = 0;
		n->seq_ok = 1;
		/* stat, rsync's utimens/chmod and rename of it need no request for a second */
		struct export_attr a = { .mode = n->mode, .size = n->size, .mtime_ms = n->mtime_ms };
		ex_known_put(ex, n->path, &a, data);
	} else {
		n->last_err = rc;
		pthread_mutex_unlock(&ex->mu);  /* owned: n->path does not change */
		LOG_ERROR(ex->log, MOD, "storing %s failed: %s (the staged data is kept for a retry)",
			  key ? key : n->path, strerror(-rc));
		pthread_mutex_lock(&ex->mu);
	}
	free(key);
	ex_node_disown(ex, n);
	return rc;
}
