/*
 * export/writeback: -o export_writeback (docs/EXPORT.md "Write-back mode").
 *
 * What it does: close() of a written file stages it durably (ex_wb_stage: fsync of the staging
 * file, SHA-256 of its bytes, journal entry naming path, size, mode, mtime and checksum) and
 * returns; `wb_parallel` upload threads then store the pending files (ex_finalize), oldest
 * first, each once it has been left alone for WB_HOLD_MS, so the utimens/chmod/rename that
 * rsync does right after close apply to the node (journal rewritten) and the file is uploaded
 * once, under its final name, with its final metadata. A failed upload is logged by
 * ex_finalize and tried again after a backoff (1 s doubling up to 60 s).
 *
 * Sync passes: ex_wb_sync (fsync of a directory, unmount) starts pass P (wb_urgent = P): every
 * pending node whose last attempt belongs to an earlier pass is due at once; the pass ends
 * when each was tried in it, and returns the first error. A writer short of staging space makes
 * fresh nodes due at once too (space_waiters).
 *
 * Threads: one upload thread at a time waits for the earliest due time (wb_timer_at), the
 * others until signalled; a thread that picks a node signals one more when another is due or
 * no one keeps the timer, so a due time wakes one thread, not all of them.
 *
 * Invariants: a node is picked only when it is journaled, dirty, in the table, not open for
 * writing, idle and not being uploaded; the picker holds a reference while it uploads; no
 * lock is held across the upload, the fsync or the journal write (the node is owned instead).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "export_int.h"
#include "kvsfs/log.h"
#include "kvsfs/sigv4_hash.h"

#define WB_HOLD_MS 1000
#define WB_BACKOFF_MAX_MS 60000

int ex_wb_stage(struct export *ex, struct xnode *n)
{
	ex_node_own(ex, n);
	int rc = 0;
	if (!n->journaled && n->dirty && n->path) {
		int fd = n->st ? n->st->fd : -1;
		char *sp = n->st ? strdup(n->st->path) : NULL;
		uint64_t size = n->size;
		mode_t mode = n->mode;
		int64_t mt = n->mtime_ms;
		char sha[65] = "";
		pthread_mutex_unlock(&ex->mu);  /* owned: path, data and metadata do not change */
		rc = fd < 0 || !sp ? -EIO : 0;
		if (!rc)
			rc = sigv4_sha256_fd(fd, 0, (off_t)size, sha);
		if (!rc)
			rc = ex_journal_write(ex, sp, n->path, size, mode, mt, sha, fd);
		else
			LOG_ERROR(ex->log, MOD, "staging %s durably failed: %s", n->path,
				  strerror(-rc));
		free(sp);
		pthread_mutex_lock(&ex->mu);
		if (!rc) {
			n->journaled = 1;
			memcpy(n->sha, sha, sizeof(n->sha));
			n->wb_due = ex_mono_ms() + WB_HOLD_MS;
			n->wb_fails = 0;
			/* not part of a sync pass that started before: wb_urgent stays at the last
			 * pass, so an older wb_tried would make it due at once, before the rename */
			n->wb_tried = ex->wb_pass;
		}
	}
	ex_node_disown(ex, n);
	pthread_cond_signal(&ex->wb_cv);  /* due in WB_HOLD_MS: one thread sets its timer */
	return rc;
}

void ex_wb_rejournal(struct export *ex, struct xnode *n)
{
	if (!ex->wb || !n->journaled || !n->st || !n->path)
		return;
	char *sp = strdup(n->st->path), *path = strdup(n->path);
	uint64_t size = n->size;
	mode_t mode = n->mode;
	int64_t mt = n->mtime_ms;
	char sha[65];
	memcpy(sha, n->sha, sizeof(sha));
	n->wb_due = ex_mono_ms() + WB_HOLD_MS;
	pthread_mutex_unlock(&ex->mu);
	int rc = sp && path ? ex_journal_write(ex, sp, path, size, mode, mt, sha, -1) : -ENOMEM;
	free(sp);
	free(path);
	pthread_mutex_lock(&ex->mu);
	if (rc)
		n->journaled = 0;  /* the entry on disk is stale: staged again at the next close */
}

int ex_wb_pending(const struct export *ex)
{
	int c = 0;
	for (const struct xnode *n = ex->nodes; n; n = n->next)
		if (n->in_table && n->path && n->dirty && n->journaled)
			c++;
	return c;
}

static int pickable(const struct xnode *n)
{
	return n->in_table && n->path && n->dirty && n->journaled && n->st && !n->writers &&
	       !n->busy && !n->inflight && !n->uploading;
}

/* The next node to upload, or NULL with *next_due the time the first one is due; *more: another
 * node is due now too (mutex held). */
static struct xnode *wb_pick(struct export *ex, int64_t now, int64_t *next_due, int *more)
{
	struct xnode *best = NULL;
	*next_due = INT64_MAX;
	*more = 0;
	for (struct xnode *n = ex->nodes; n; n = n->next) {
		if (!pickable(n))
			continue;
		int64_t due = n->wb_due;
		if (n->wb_tried < ex->wb_urgent || (ex->space_waiters && !n->wb_fails))
			due = 0;
		if (due > now) {
			if (due < *next_due)
				*next_due = due;
			continue;
		}
		*more = best != NULL;
		if (!best || n->wb_due < best->wb_due)
			best = n;
	}
	return best;
}

/* Uploads n (mutex held, a reference held) and plans a retry on failure. */
static void wb_upload(struct export *ex, struct xnode *n)
{
	n->uploading = 1;
	n->wb_tried = ex->wb_pass;
	int rc = ex_finalize(ex, n);
	n->uploading = 0;
	if (rc && n->dirty) {
		int64_t back = 1000ll << (n->wb_fails < 6 ? n->wb_fails : 6);
		n->wb_fails++;
		n->wb_due = ex_mono_ms() + (back < WB_BACKOFF_MAX_MS ? back : WB_BACKOFF_MAX_MS);
	} else if (!rc && !n->opens && n->in_table && !n->dirty && !n->busy) {
		ex_node_unlink(ex, n);  /* stored: the staged copy goes */
	}
	pthread_cond_broadcast(&ex->done_cv);
}

void ex_timed_wait(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(cv, mu, &ts);
}

static void *uploader_main(void *arg)
{
	struct export *ex = arg;
	pthread_mutex_lock(&ex->mu);
	while (!ex->wb_stop) {
		int64_t next;
		int more;
		struct xnode *n = wb_pick(ex, ex_mono_ms(), &next, &more);
		if (!n) {
			/* one thread waits for the next due time, the others until they are woken:
			 * a due time wakes one thread, not all of them */
			if (next >= ex->wb_timer_at) {
				pthread_cond_wait(&ex->wb_cv, &ex->mu);
			} else {
				ex->wb_timer_at = next;
				ex_timed_wait(&ex->wb_cv, &ex->mu, next - ex_mono_ms());
				if (ex->wb_timer_at == next)
					ex->wb_timer_at = INT64_MAX;
			}
			continue;
		}
		/* the others: one more thread for another due node, or to keep the timer */
		if (more || ex->wb_timer_at == INT64_MAX)
			pthread_cond_signal(&ex->wb_cv);
		n->refs++;
		wb_upload(ex, n);
		ex_node_put(ex, n);
		if (ex->trash) {
			ex_unlock(ex);
			pthread_mutex_lock(&ex->mu);
		}
	}
	ex_unlock(ex);
	return NULL;
}

int ex_wb_start(struct export *ex)
{
	if (!ex->wb)
		return 0;
	ex->uploaders = calloc((size_t)ex->wb_parallel, sizeof(pthread_t));
	if (!ex->uploaders)
		return -ENOMEM;
	for (int i = 0; i < ex->wb_parallel; i++) {
		if (pthread_create(&ex->uploaders[i], NULL, uploader_main, ex))
			return -EAGAIN;
		ex->n_uploaders++;
	}
	return 0;
}

/* Runs one sync pass until every pending node was tried in it or deadline (monotonic ms,
 * INT64_MAX: none) passes (mutex held). First error of the pass, or 0. */
static int wb_pass(struct export *ex, int64_t deadline)
{
	unsigned pass = ++ex->wb_pass;
	ex->wb_urgent = pass;
	pthread_cond_broadcast(&ex->wb_cv);
	for (;;) {
		int left = 0, err = 0;
		for (struct xnode *n = ex->nodes; n; n = n->next) {
			if (!n->in_table || !n->path || !n->dirty || !n->journaled || n->writers)
				continue;
			if (n->wb_tried < pass || n->uploading)
				left++;
			else if (n->last_err && !err)
				err = n->last_err;
		}
		if (!left)
			return err;
		int64_t now = ex_mono_ms();
		if (now >= deadline)
			return -ETIMEDOUT;
		ex_timed_wait(&ex->done_cv, &ex->mu, deadline - now < 1000 ? deadline - now : 1000);
	}
}

int ex_wb_sync(struct export *ex)
{
	if (!ex->wb)
		return 0;
	pthread_mutex_lock(&ex->mu);
	int rc = wb_pass(ex, INT64_MAX);
	ex_unlock(ex);
	return rc;
}

void ex_wb_drain(struct export *ex)
{
	if (!ex->wb)
		return;
	pthread_mutex_lock(&ex->mu);
	int64_t deadline = ex_mono_ms() + ex->drain_ms;
	while (ex->n_uploaders && ex_wb_pending(ex) && ex_mono_ms() < deadline) {
		if (wb_pass(ex, deadline) && ex_wb_pending(ex) && ex_mono_ms() < deadline)
			ex_timed_wait(&ex->done_cv, &ex->mu, 1000);  /* failures: a moment, then again */
	}
	ex->wb_stop = 1;
	pthread_cond_broadcast(&ex->wb_cv);
	pthread_mutex_unlock(&ex->mu);
	for (int i = 0; i < ex->n_uploaders; i++)
		pthread_join(ex->uploaders[i], NULL);
	free(ex->uploaders);
	ex->uploaders = NULL;
	ex->n_uploaders = 0;
	int left = ex_wb_pending(ex);
	if (left)
		LOG_WARN(ex->log, MOD, "%d file(s) not uploaded yet stay journaled in %s; the next "
			 "mount uploads them", left, ex->staging_dir);
}

int ex_wb_wait_space(struct export *ex, const char *path)
{
	if (!ex->wb || !ex_wb_pending(ex))
		return 0;
	if (!ex->space_waiters) {
		int pending = ex_wb_pending(ex);
		pthread_mutex_unlock(&ex->mu);
		LOG_INFO(ex->log, MOD, "staging space full writing %s: waiting for %d pending "
			 "upload(s)", path ? path : "?", pending);
		pthread_mutex_lock(&ex->mu);
	}
	ex->space_waiters++;
	pthread_cond_broadcast(&ex->wb_cv);
	uint64_t before = ex->staged_bytes;
	int64_t deadline = ex_mono_ms() + ex->drain_ms;
	while (ex->staged_bytes >= before && ex_wb_pending(ex) && ex_mono_ms() < deadline)
		ex_timed_wait(&ex->done_cv, &ex->mu, 1000);
	ex->space_waiters--;
	return ex->staged_bytes < before;
}
