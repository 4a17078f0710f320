/*
 * export/staging: the staging files of export/ (docs/EXPORT.md "Staging", "Crash recovery").
 *
 * What it does: every node being written has one staging file STAGING/kvsfs-XXXXXX.stage in
 * the staging folder (inside the cache), plus a sidecar kvsfs-XXXXXX.stage.path naming the
 * export path so that a crash report can say which file it was. This module creates them,
 * keeps the sidecar in step with renames, bounds the staged bytes (ENOSPC), truncates, and
 * disposes of them; at open it reports leftovers of an earlier run and locks the folder.
 *
 * Life of a staging file: created by ex_stage_open (no lock held), attached to its node under
 * ex->mu, written by the node's owner with ex->mu released, then either dropped (stored,
 * unlinked, replaced: unlinked) or kept (dirty when the node is freed or at export_close: the
 * data stays and the next export_open names it in one warning; it is never uploaded, since it
 * may hold only part of what the writer meant to write).
 *
 * Invariants:
 *  - ex->staged_bytes == sum of node->alloc over attached staging files <= ex->staging_max;
 *    node->alloc is the high-water mark of the file's size (a write that fails gives back
 *    what it reserved beyond what it wrote);
 *  - no disk operation runs with ex->mu held: files are created before they are attached,
 *    truncated and renamed by the node's owner with ex->mu released, and closed/unlinked from
 *    ex->trash by ex_unlock;
 *  - staged data is deleted only after its object is stored or its path unlinked/replaced;
 *  - one export per staging folder (flock on STAGING/lock), so every leftover file and every
 *    upload record found at open belongs to an earlier run.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "export_int.h"
#include "kvsfs/buf.h"
#include "kvsfs/fsutil.h"
#include "kvsfs/log.h"

#define STAGE_SUFFIX ".stage"
#define PATH_XATTR "user.kvsfs.path"

void ex_stage_sidecar(const char *stage_path, const char *path)
{
	if (!stage_path || !path)
		return;
	/* an extended attribute of the staging file where the file system has user xattrs (no
	 * file to create), else the sidecar file STAGE.path */
	if (setxattr(stage_path, PATH_XATTR, path, strlen(path), 0) == 0)
		return;
	(void)removexattr(stage_path, PATH_XATTR);  /* an older one would win over the file */
	char side[4096];
	snprintf(side, sizeof(side), "%s.path", stage_path);
	int fd = open(side, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	ssize_t w = write(fd, path, strlen(path));
	(void)w;
	close(fd);
}

int ex_stage_open(struct export *ex, const char *path, struct stage_file **out)
{
	*out = NULL;
	char tmpl[4096];
	int len = snprintf(tmpl, sizeof(tmpl), "%s/kvsfs-XXXXXX" STAGE_SUFFIX, ex->staging_dir);
	if (len < 0 || (size_t)len >= sizeof(tmpl))
		return -ENAMETOOLONG;
	struct stage_file *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	int fd = mkostemps(tmpl, (int)strlen(STAGE_SUFFIX), O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		free(st);
		LOG_ERROR(ex->log, MOD, "cannot create a staging file in %s: %s", ex->staging_dir,
			  strerror(e));
		return -e;
	}
	st->path = strdup(tmpl);
	if (!st->path) {
		close(fd);
		unlink(tmpl);
		free(st);
		return -ENOMEM;
	}
	st->fd = fd;
	ex_stage_sidecar(st->path, path);
	*out = st;
	return 0;
}

int ex_stage_reserve(struct export *ex, struct xnode *n, uint64_t end, uint64_t *used)
{
	if (end <= n->alloc)
		return 0;
	uint64_t extra = end - n->alloc;
	if (ex->staged_bytes + extra > ex->staging_max) {
		*used = ex->staged_bytes;
		return -ENOSPC;
	}
	ex->staged_bytes += extra;
	n->alloc = end;
	return 0;
}

void ex_stage_log_full(struct export *ex, const char *path, uint64_t used)
{
	LOG_ERROR(ex->log, MOD, "staging space full (%" PRIu64 " of %" PRIu64 " bytes used) "
		  "writing %s: ENOSPC", used, ex->staging_max, path ? path : "?");
}

int ex_stage_truncate(struct export *ex, struct xnode *n, uint64_t size)
{
	ex_node_wait_idle(ex, n);  /* parts being sent read the staging file: it may not shrink */
	ex_node_own(ex, n);
	uint64_t used = 0;
	int rc = n->st ? ex_stage_reserve(ex, n, size, &used) : -EIO;
	int fd = n->st ? n->st->fd : -1;
	pthread_mutex_unlock(&ex->mu);
	/* owned: n->path does not change meanwhile */
	if (rc == -ENOSPC)
		ex_stage_log_full(ex, n->path, used);
	if (!rc && ftruncate(fd, (off_t)size)) {
		rc = -errno;
		LOG_ERROR(ex->log, MOD, "truncating the staging file of %s: %s",
			  n->path ? n->path : "?", strerror(-rc));
	}
	pthread_mutex_lock(&ex->mu);
	if (!rc) {
		if (size < n->queued_end || (n->n_parts && size != n->size))
			n->seq_ok = 0;
		n->size = size;
		n->dirty = 1;
		n->journaled = 0;
		n->mtime_ms = ex_now_ms();
	}
	ex_node_disown(ex, n);
	return rc;
}

void ex_stage_drop(struct export *ex, struct xnode *n)
{
	if (n->st) {
		n->st->next = ex->trash;
		ex->trash = n->st;
		n->st = NULL;
	}
	ex->staged_bytes -= n->alloc;
	if (n->alloc && ex->space_waiters)
		pthread_cond_broadcast(&ex->done_cv);  /* writers waiting for space (writeback.c) */
	n->alloc = 0;
	n->size = 0;
}

void ex_stage_keep(struct export *ex, struct xnode *n)
{
	if (n->st)
		n->st->keep = 1;
	ex_stage_drop(ex, n);
}

void ex_stage_dispose(struct export *ex, struct stage_file *list)
{
	(void)ex;
	while (list) {
		struct stage_file *st = list;
		list = st->next;
		if (st->fd >= 0)
			close(st->fd);
		if (!st->keep && st->path) {
			ex_journal_remove(st->path);  /* first: an entry never outlives its data */
			unlink(st->path);
			char side[4096];
			snprintf(side, sizeof(side), "%s.path", st->path);
			unlink(side);
		}
		free(st->path);
		free(st);
	}
}

void ex_stage_rename(struct export *ex, struct xnode *n, char *npath)
{
	ex_node_own(ex, n);
	free(n->path);
	n->path = npath;
	char *sp = n->st ? strdup(n->st->path) : NULL;
	char *p = sp ? strdup(npath) : NULL;
	pthread_mutex_unlock(&ex->mu);
	ex_stage_sidecar(sp, p);
	free(sp);
	free(p);
	pthread_mutex_lock(&ex->mu);
	ex_wb_rejournal(ex, n);  /* write-back: the entry names the new path */
	ex_node_disown(ex, n);
}

/* 1 when a node (a resumed journaled upload) uses staging file `name` (single-threaded open). */
static int stage_attached(const struct export *ex, const char *name)
{
	for (const struct xnode *n = ex->nodes; n; n = n->next) {
		const char *s = n->st && n->st->path ? strrchr(n->st->path, '/') : NULL;
		if (s && !strcmp(s + 1, name))
			return 1;
	}
	return 0;
}

void ex_staging_report_leftovers(struct export *ex)
{
	DIR *d = opendir(ex->staging_dir);
	if (!d)
		return;
	struct buf names = BUF_INIT;
	int count = 0;
	struct dirent *de;
	size_t sl = strlen(STAGE_SUFFIX);
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l < sl || strcmp(de->d_name + l - sl, STAGE_SUFFIX) ||
		    strncmp(de->d_name, "kvsfs-", 6) || stage_attached(ex, de->d_name))
			continue;
		char side[4096], path[1024] = "";
		snprintf(side, sizeof(side), "%s/%s", ex->staging_dir, de->d_name);
		ssize_t r = getxattr(side, PATH_XATTR, path, sizeof(path) - 1);
		path[r > 0 ? r : 0] = 0;
		snprintf(side, sizeof(side), "%s/%s.path", ex->staging_dir, de->d_name);
		int fd = r > 0 ? -1 : open(side, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			r = read(fd, path, sizeof(path) - 1);
			path[r > 0 ? r : 0] = 0;
			close(fd);
		}
		buf_printf(&names, "%s%s/%s (%s)", count ? ", " : "", ex->staging_dir, de->d_name,
			   path[0] ? path : "unknown path");
		count++;
	}
	closedir(d);
	if (count)
		LOG_WARN(ex->log, MOD, "%d staging file(s) of an earlier run were never stored in S3 "
			 "and are NOT uploaded; copy them again if needed: %s", count,
			 buf_str(&names));
	buf_free(&names);
}

int ex_staging_lock(struct export *ex, char *err, size_t errlen)
{
	enum fsutil_lock_step step;
	int rc = fsutil_lock_dir(ex->staging_dir, "lock", &ex->dfd, &ex->lockfd, &step);
	if (rc == -EBUSY)
		ex_set_err(err, errlen, "export staging folder %s is in use by another kvsfs mount "
			"(%s/lock is locked); give each mount its own cache_dir", ex->staging_dir,
			ex->staging_dir);
	else if (rc)
		ex_set_err(err, errlen, "cannot lock the export staging folder %s: %s",
			ex->staging_dir, strerror(-rc));
	return rc;
}
