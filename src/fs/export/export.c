/*
 * export: the S3-backed export/ directory, independent of FUSE (API: include/kvsfs/export.h,
 * design: docs/EXPORT.md, how the modules of this folder share the work and the locks:
 * export_int.h).
 *
 * This file is the life cycle: export_open checks the bucket, locks the staging folder,
 * reports leftovers of an earlier run, aborts the multipart uploads that run recorded, and
 * starts the part workers; export_sync_all retries the files whose upload failed;
 * export_close stops the workers and settles every node.
 *
 * States of an export: opening (single-threaded: no worker yet) -> open (any thread may call
 * any function) -> closing (no file open, no other call in progress: single-threaded again
 * once the workers are joined).
 *
 * Invariants:
 *  - the workers start last in export_open (after the daemon forked: docs/ARCHITECTURE.md) and
 *    are joined first in export_close, so nothing else runs while nodes are torn down;
 *  - at close, a node with data not stored keeps its staging file (one warning each, reported
 *    again by the next export_open); every multipart upload still open is aborted, or left to
 *    the next mount through its upload record when the abort fails;
 *  - export_sync_all tries each failed node at most once per call (last_err == 1 marks the
 *    ones tried), so a node that keeps failing cannot make it loop.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "export_int.h"
#include "kvsfs/awserr.h"
#include "kvsfs/log.h"

void ex_set_err(char *err, size_t n, const char *fmt, ...)
{
	va_list ap;
	if (!err || !n)
		return;
	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
}

/* HeadBucket: 0, or the errno with one sentence in err. */
static int check_bucket(const struct export_opts *o, char *err, size_t errlen)
{
	struct awserr e;
	awserr_clear(&e);
	int rc = s3_head_bucket(o->s3, &e);
	const char *b = s3_client_bucket(o->s3);
	if (rc == -ENOENT)
		ex_set_err(err, errlen, "export bucket %s does not exist", b);
	else if (rc == -EACCES)
		ex_set_err(err, errlen, "access to export bucket %s denied: check the credentials "
			   "and the bucket policy", b);
	else if (rc)
		ex_set_err(err, errlen, "export bucket %s cannot be reached: %s", b, strerror(-rc));
	return rc;
}

/* The export with its options applied (no thread, nothing on disk), or NULL (ENOMEM). */
static struct export *export_new(const struct export_opts *o)
{
	struct export *ex = calloc(1, sizeof(*ex));
	if (!ex)
		return NULL;
	const char *p = o->prefix ? o->prefix : "";
	while (*p == '/')
		p++;
	size_t pl = strlen(p);
	while (pl && p[pl - 1] == '/')
		pl--;
	ex->prefix = malloc(pl + 2);
	ex->staging_dir = strdup(o->staging_dir);
	if (!ex->prefix || !ex->staging_dir) {
		free(ex->prefix);
		free(ex->staging_dir);
		free(ex);
		return NULL;
	}
	memcpy(ex->prefix, p, pl);
	if (pl)
		ex->prefix[pl++] = '/';
	ex->prefix[pl] = 0;
	ex->s3 = o->s3;
	ex->staging_max = o->staging_max_bytes ? o->staging_max_bytes : (1ull << 30);
	ex->part_size = o->part_size ? o->part_size : EXPORT_DEFAULT_PART_SIZE;
	if (ex->part_size < S3_MIN_PART_SIZE)
		ex->part_size = S3_MIN_PART_SIZE;
	if (ex->part_size > (uint64_t)S3_MAX_PUT_SIZE / 10)
		ex->part_size = (uint64_t)S3_MAX_PUT_SIZE / 10;
	uint64_t off, len;
	export_part_range(ex->part_size, S3_MAX_PARTS, &off, &len);
	ex->max_file = off + (uint64_t)S3_MAX_PUT_SIZE;
	ex->parallel = o->parallel_parts > 0 ? o->parallel_parts : EXPORT_DEFAULT_PARALLEL;
	if (ex->parallel > EXPORT_MAX_PARALLEL)
		ex->parallel = EXPORT_MAX_PARALLEL;
	ex->uid = o->uid;
	ex->gid = o->gid;
	ex->umask = o->umask & 0777;
	ex->log = o->log;
	ex->ttl_ms = o->cache_ttl_ms < 0 ? 0 : o->cache_ttl_ms ? o->cache_ttl_ms : 1000;
	ex->metrics = o->metrics;
	ex->wb = !!o->writeback;
	ex->wb_parallel = o->parallel_uploads > 0 ? o->parallel_uploads :
			  EXPORT_DEFAULT_PARALLEL_UPLOADS;
	if (ex->wb_parallel > EXPORT_MAX_PARALLEL)
		ex->wb_parallel = EXPORT_MAX_PARALLEL;
	ex->drain_ms = o->drain_ms > 0 ? o->drain_ms : 60000;
	pthread_cond_init(&ex->wb_cv, NULL);
	ex->wb_timer_at = INT64_MAX;
	ex->start_ms = ex_now_ms();
	ex->dfd = ex->lockfd = -1;
	pthread_mutex_init(&ex->mu, NULL);
	pthread_cond_init(&ex->job_cv, NULL);
	pthread_cond_init(&ex->done_cv, NULL);
	pthread_mutex_init(&ex->kmu, NULL);
	pthread_cond_init(&ex->kcv, NULL);
	return ex;
}

int export_open(const struct export_opts *o, struct export **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!o || !o->s3 || !o->staging_dir) {
		ex_set_err(err, errlen, "export: missing S3 client or staging folder");
		return -EINVAL;
	}
	struct stat st;
	if (stat(o->staging_dir, &st) || !S_ISDIR(st.st_mode)) {
		ex_set_err(err, errlen, "export staging folder %s is not a directory",
			   o->staging_dir);
		return -ENOTDIR;
	}
	int rc = check_bucket(o, err, errlen);
	if (rc)
		return rc;
	struct export *ex = export_new(o);
	if (!ex)
		return -ENOMEM;
	rc = ex_staging_lock(ex, err, errlen);
	if (rc) {
		export_close(ex);
		return rc;
	}
	if (ex->wb)
		ex_journal_resume(ex);
	ex_staging_report_leftovers(ex);
	ex_recover_uploads(ex);
	rc = ex_workers_start(ex);
	if (!rc)
		rc = ex_wb_start(ex);
	if (rc) {
		export_close(ex);
		if (rc == -EAGAIN)
			ex_set_err(err, errlen, "export: cannot start upload threads");
		return rc;
	}
	*out = ex;
	return 0;
}

/* Settles one node at close (single-threaded): aborts its open upload, keeps or drops its
 * staging file. */
static void close_node(struct export *ex, struct xnode *n)
{
	if (n->upload_id) {
		struct awserr e;
		int rc = s3_mpu_abort(ex->s3, n->mpu_key, n->upload_id, &e);
		if (!rc || rc == -ENOENT)
			ex_record_remove(ex, n->mpu_record);  /* else the next mount aborts it */
	}
	if (n->dirty && n->path && n->journaled) {
		ex_stage_keep(ex, n);  /* journaled: uploaded by the next mount (one line above) */
	} else if (n->dirty && n->path) {
		LOG_WARN(ex->log, MOD, "%s was not stored in S3; its data stays in %s", n->path,
			 n->st ? n->st->path : "?");
		ex_stage_keep(ex, n);
	} else {
		ex_stage_drop(ex, n);
	}
	ex_node_free(n);
}

void export_close(struct export *ex)
{
	if (!ex)
		return;
	ex_wb_drain(ex);
	ex_workers_stop(ex);
	ex_known_flush(ex, 1);
	ex_known_free(ex);
	while (ex->nodes) {
		struct xnode *n = ex->nodes;
		ex->nodes = n->next;
		close_node(ex, n);
	}
	ex_stage_dispose(ex, ex->trash);
	ex->trash = NULL;
	pthread_mutex_lock(&ex->mu);
	ex_abort_orphans(ex);
	pthread_mutex_unlock(&ex->mu);
	ex_orphans_report(ex);
	pthread_cond_destroy(&ex->job_cv);
	pthread_cond_destroy(&ex->done_cv);
	pthread_cond_destroy(&ex->wb_cv);
	pthread_mutex_destroy(&ex->mu);
	pthread_cond_destroy(&ex->kcv);
	pthread_mutex_destroy(&ex->kmu);
	if (ex->dfd >= 0)
		close(ex->dfd);
	if (ex->lockfd >= 0)
		close(ex->lockfd);  /* releases the flock */
	free(ex->prefix);
	free(ex->staging_dir);
	free(ex);
}

int export_sync_all(struct export *ex)
{
	int first = ex_wb_sync(ex);  /* write-back: every journaled upload tried once */
	pthread_mutex_lock(&ex->mu);
	ex_abort_orphans(ex);
	for (;;) {
		struct xnode *todo = NULL;
		for (struct xnode *n = ex->nodes; n; n = n->next)
			if (n->dirty && !n->opens && !n->busy && n->last_err != 1 && !n->journaled) {
				todo = n;
				break;
			}
		if (!todo)
			break;
		todo->refs++;
		int rc = ex_finalize(ex, todo);
		if (rc && !first)
			first = rc;
		if (rc)
			todo->last_err = 1;  /* tried in this pass */
		ex_node_put(ex, todo);
	}
	for (struct xnode *n = ex->nodes; n; n = n->next)
		if (n->last_err == 1)
			n->last_err = -EIO;
	ex_unlock(ex);
	int rc = ex_known_flush(ex, 1);
	return first ? first : rc;
}
