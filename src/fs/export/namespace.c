/*
 * export/namespace: names and attributes of export/ (docs/EXPORT.md "Names and directories",
 * "Metadata", "rsync"): stat, mkdir, rmdir, unlink, rename, and mode/mtime/owner changes.
 *
 * What it does: answers from the node of a path when it is staged (open for writing or not
 * stored yet: its size, mode and mtime are the truth), else from S3 (HeadObject KEY, HeadObject
 * KEY/, a one-key listing of KEY/). Changes to a staged file apply to its node and travel with
 * its upload; changes to a stored object are server-side requests (CopyObject, DeleteObject,
 * PutObject of a marker).
 *
 * Invariants:
 *  - every S3 request is made with ex->mu released; a node is changed under ex->mu, after
 *    waiting (with a reference) until it is idle, so no upload or write of it is under way;
 *  - unlink and rename-over forget the node of the replaced path: its open handles keep their
 *    staging file, but it is never uploaded under that path;
 *  - a staged file renamed is uploaded once under its new name (an upload already under way
 *    completes under the old key and is copied server-side, see upload.c);
 *  - a directory is never renamed (EXDEV: S3 has no directory rename), nor an object over
 *    5 GiB (one CopyObject cannot copy it).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "export_int.h"
#include "kvsfs/awserr.h"
#include "kvsfs/log.h"

int ex_stat_remote(struct export *ex, const char *path, struct export_attr *a)
{
	struct s3_object_info info;
	struct awserr e;
	char *key = ex_key(ex, path, "");
	if (!key)
		return -ENOMEM;
	int rc = s3_head_object(ex->s3, key, &info, &e);
	if (!rc)
		ex_attr_from_info(ex, &info, 0, a);
	s3_object_info_free(&info);
	if (rc == -ENOENT) {
		free(key);
		key = ex_key(ex, path, "/");
		if (!key)
			return -ENOMEM;
		rc = s3_head_object(ex->s3, key, &info, &e);
		if (!rc)
			ex_attr_from_info(ex, &info, 1, a);
		s3_object_info_free(&info);
		if (rc == -ENOENT) {
			struct s3xml_list l = { 0 };
			rc = s3_list_objects(ex->s3, key, NULL, 1, &l, &e);
			if (!rc && l.n_objects == 0)
				rc = -ENOENT;
			if (!rc)
				ex_attr_dir(ex, a);
			s3xml_list_free(&l);
		}
	}
	free(key);
	return rc;
}

int ex_stat_cached(struct export *ex, const char *path, struct export_attr *a)
{
	int rc = ex_known_get(ex, path, a);
	if (!rc && ex_known_load_dir(ex, path, 1))  /* a listed folder: list it again */
		rc = ex_known_get(ex, path, a);
	if (rc)
		return rc > 0 ? 0 : rc;
	rc = ex_stat_remote(ex, path, a);
	if (!rc)
		ex_known_put(ex, path, a, 0);
	else if (rc == -ENOENT)
		(void)ex_known_load_dir(ex, path, 0);  /* the next misses in that folder cost nothing */
	return rc;
}

int export_stat(struct export *ex, const char *path, struct export_attr *a)
{
	int rc = ex_path_check(ex, path);
	if (rc)
		return rc;
	if (!*path) {
		ex_attr_dir(ex, a);
		return 0;
	}
	pthread_mutex_lock(&ex->mu);
	struct xnode *n = ex_node_find(ex, path);
	if (n && (n->st || n->dirty)) {
		ex_attr_from_node(n, a);
		ex_unlock(ex);
		return 0;
	}
	ex_unlock(ex);
	return ex_stat_cached(ex, path, a);
}

static int parent_of(const char *path, char *out, size_t n)
{
	const char *s = strrchr(path, '/');
	size_t l = s ? (size_t)(s - path) : 0;
	if (l >= n)
		return -ENAMETOOLONG;
	memcpy(out, path, l);
	out[l] = 0;
	return 0;
}

static int check_parent_dir(struct export *ex, const char *path)
{
	char parent[1024];
	int rc = parent_of(path, parent, sizeof(parent));
	if (rc || !*parent)
		return rc;
	struct export_attr a;
	rc = export_stat(ex, parent, &a);
	if (!rc && !a.is_dir)
		rc = -ENOTDIR;
	return rc;
}

/* PutObject of the empty marker KEY/ with mode and mtime. */
static int put_marker(struct export *ex, const char *key, mode_t mode, int64_t mtime_ms)
{
	struct s3_meta h = S3_META_INIT;
	struct awserr e;
	int rc = ex_meta_build(&h, mode, mtime_ms, 1);
	struct s3_put_opts po = { .meta = &h };
	if (!rc)
		rc = s3_put_object_mem(ex->s3, key, NULL, 0, &po, NULL, &e);
	s3_meta_free(&h);
	return rc;
}

int export_mkdir(struct export *ex, const char *path, mode_t mode)
{
	int rc = ex_path_check(ex, path);
	if (rc)
		return rc;
	if (!*path)
		return -EEXIST;
	struct export_attr a;
	rc = export_stat(ex, path, &a);
	if (!rc)
		return -EEXIST;
	if (rc != -ENOENT)
		return rc;
	rc = check_parent_dir(ex, path);
	if (rc)
		return rc;
	char *key = ex_key(ex, path, "/");
	if (!key)
		return -ENOMEM;
	rc = put_marker(ex, key, mode & 07777, ex_now_ms());
	free(key);
	ex_known_forget(ex, path);
	if (!rc)
		ex_known_add_name(ex, path);
	return rc;
}

int export_rmdir(struct export *ex, const char *path)
{
	int rc = ex_path_check(ex, path);
	if (rc)
		return rc;
	if (!*path)
		return -EBUSY;
	struct export_attr a;
	rc = export_stat(ex, path, &a);
	if (rc)
		return rc;
	if (!a.is_dir)
		return -ENOTDIR;
	size_t pl = strlen(path);
	pthread_mutex_lock(&ex->mu);
	for (struct xnode *n = ex->nodes; n; n = n->next)
		if (n->path && (n->st || n->dirty) && !strncmp(n->path, path, pl) &&
		    n->path[pl] == '/')
			rc = -ENOTEMPTY;
	ex_unlock(ex);
	if (rc)
		return rc;
	char *key = ex_key(ex, path, "/");
	if (!key)
		return -ENOMEM;
	struct s3xml_list l = { 0 };
	struct awserr e;
	rc = s3_list_objects(ex->s3, key, NULL, 2, &l, &e);
	for (size_t i = 0; !rc && i < l.n_objects; i++)
		if (strcmp(l.objects[i].key, key))
			rc = -ENOTEMPTY;
	s3xml_list_free(&l);
	if (!rc)
		rc = s3_delete_object(ex->s3, key, &e);
	free(key);
	ex_known_forget(ex, path);
	return rc;
}

/* Forgets the node of a path unlinked or replaced (mutex held): its multipart upload is
 * aborted; its staged data is dropped once no handle uses it. */
static void node_forget(struct export *ex, struct xnode *n)
{
	n->refs++;
	ex_abort_idle(ex, n);
	n->dirty = 0;
	n->meta_dirty = 0;
	free(n->path);
	n->path = NULL;
	ex_node_unlink(ex, n);
	ex_node_put(ex, n);
}

int export_unlink(struct export *ex, const char *path)
{
	int rc = ex_path_check(ex, path);
	if (rc)
		return rc;
	if (!*path)
		return -EISDIR;
	struct export_attr a;
	rc = export_stat(ex, path, &a);
	if (rc)
		return rc;
	if (a.is_dir)
		return -EISDIR;
	ex_known_forget(ex, path);
	pthread_mutex_lock(&ex->mu);
	struct xnode *n = ex_node_find(ex, path);
	if (n)
		node_forget(ex, n);
	ex_unlock(ex);
	char *key = ex_key(ex, path, "");
	if (!key)
		return -ENOMEM;
	struct awserr e;
	rc = s3_delete_object(ex->s3, key, &e);
	free(key);
	return rc;
}

/*
 * Renames staged node n (not stored yet; mutex held, caller's reference dropped here, mutex
 * released on return): locally, so the upload goes to the new key (a multipart upload under way
 * completes under the old key and is then copied server-side, so its parts are not sent again).
 * A stored older version under `from` goes; the old target (if any) stays until the upload
 * replaces it.
 */
static int rename_staged(struct export *ex, struct xnode *n, char *npath, const char *fkey,
			 int to_exists)
{
	if (n->upload_id && n->size > (uint64_t)S3_MAX_PUT_SIZE)
		ex_abort_idle(ex, n);
	int fresh = n->fresh && !n->upload_id;  /* nothing stored under fkey: no DeleteObject */
	ex_stage_rename(ex, n, npath);
	n->fresh = !to_exists;
	ex_node_put(ex, n);
	ex_unlock(ex);
	struct awserr e;
	int rc = fresh ? 0 : s3_delete_object(ex->s3, fkey, &e);
	ex_known_forget(ex, fkey + strlen(ex->prefix));
	return rc;
}

/*
 * Renames a stored object (mutex held, caller's reference to n (may be NULL) dropped here,
 * mutex released on return): CopyObject (REPLACE when the node has metadata not stored yet),
 * then DeleteObject of the source; a node of `from` (open, stored) follows the new name.
 */
static int rename_stored(struct export *ex, struct xnode *n, const char *from, uint64_t size,
			 const char *fkey, const char *tkey, char *npath)
{
	int have_meta = n && n->meta_dirty;
	mode_t mode = n ? n->mode : 0;
	int64_t mt = n ? n->mtime_ms : 0;
	if (n)
		ex_node_put(ex, n);
	ex_unlock(ex);
	/* a mode/mtime change kept pending (rsync: utimens and chmod of the stored temp file) goes
	 * with the copy: one CopyObject REPLACE to the final name */
	struct export_attr ka;
	int own = !have_meta && ex_known_get(ex, from, &ka) > 0 && ex_known_take(ex, from, &mode, &mt);
	have_meta |= own;
	struct awserr e;
	int rc = 0;
	if (size > (uint64_t)S3_MAX_PUT_SIZE) {
		rc = -EXDEV;
	} else if (have_meta) {
		struct s3_meta h = S3_META_INIT;
		rc = ex_meta_build(&h, mode, mt, 0);
		struct s3_put_opts po = { .meta = &h };
		if (!rc)
			rc = s3_copy_object(ex->s3, fkey, tkey, S3_META_REPLACE, &po, NULL, &e);
		s3_meta_free(&h);
	} else {
		rc = s3_copy_object(ex->s3, fkey, tkey, S3_META_COPY, NULL, NULL, &e);
	}
	if (!rc)
		rc = s3_delete_object(ex->s3, fkey, &e);
	if (rc) {
		free(npath);
		return rc;
	}
	ex_known_forget(ex, from);
	if (own) {
		ka.mode = mode;
		ka.mtime_ms = mt;
		ex_known_put(ex, npath, &ka, 1);
	} else {
		ex_known_forget(ex, npath);
		ex_known_add_name(ex, npath);
	}
	pthread_mutex_lock(&ex->mu);
	n = ex_node_find(ex, from);
	if (n) {
		n->refs++;
		ex_stage_rename(ex, n, npath);
		npath = NULL;
		n->meta_dirty = 0;
		ex_node_put(ex, n);
	}
	ex_unlock(ex);
	free(npath);
	return 0;
}

/* The checks of a rename: *a gets the source's attributes. 0, 1 (same name: nothing to do) or
 * a negative errno. */
static int rename_check(struct export *ex, const char *from, const char *to,
			struct export_attr *a, int *to_exists)
{
	int rc = ex_path_check(ex, from);
	if (!rc)
		rc = ex_path_check(ex, to);
	if (rc)
		return rc;
	if (!*from || !*to)
		return -EBUSY;
	if (!strcmp(from, to))
		return 1;
	struct export_attr b;
	rc = export_stat(ex, from, a);
	if (rc)
		return rc;
	if (a->is_dir) {
		LOG_INFO(ex->log, MOD, "rename of directory %s: EXDEV (S3 has no directory rename; "
			 "mv copies instead)", from);
		return -EXDEV;
	}
	rc = export_stat(ex, to, &b);
	*to_exists = rc != -ENOENT;
	if (!rc && b.is_dir)
		return -EISDIR;
	if (rc && rc != -ENOENT)
		return rc;
	return check_parent_dir(ex, to);
}

int export_rename(struct export *ex, const char *from, const char *to)
{
	struct export_attr a;
	int to_exists = 1;
	int rc = rename_check(ex, from, to, &a, &to_exists);
	if (rc)
		return rc > 0 ? 0 : rc;
	ex_known_forget(ex, to);  /* a change pending on the replaced file must not follow */
	char *fkey = ex_key(ex, from, ""), *tkey = ex_key(ex, to, "");
	char *npath = strdup(to);
	if (!fkey || !tkey || !npath) {
		free(fkey);
		free(tkey);
		free(npath);
		return -ENOMEM;
	}
	pthread_mutex_lock(&ex->mu);
	while (ex_claim_key(ex, ex_node_find(ex, from), tkey))
		;
	struct xnode *tn = ex_node_find(ex, to);
	if (tn)
		node_forget(ex, tn);
	struct xnode *n = ex_node_find(ex, from);
	if (n) {
		n->refs++;
		ex_node_wait_idle(ex, n);
	}
	if (n && n->dirty)
		rc = rename_staged(ex, n, npath, fkey, to_exists);
	else
		rc = rename_stored(ex, n, from, a.size, fkey, tkey, npath);
	free(fkey);
	free(tkey);
	return rc;
}

/* A mode/mtime change of a staged node (mutex held): stored with its upload, or at once (a
 * CopyObject) when its data is stored and no handle is open. */
static int set_meta_staged(struct export *ex, struct xnode *n, const char *path, int set_mode,
			   mode_t mode, int set_time, int64_t mtime_ms)
{
	int rc = 0;
	n->refs++;
	ex_node_wait_idle(ex, n);
	if (set_mode)
		n->mode = mode & 07777;
	if (set_time) {
		n->mtime_ms = mtime_ms;
		n->mtime_set = 1;
	}
	if (n->dirty && n->journaled) {
		ex_node_own(ex, n);
		ex_wb_rejournal(ex, n);  /* write-back: the entry carries the new mode/mtime */
		ex_node_disown(ex, n);
	}
	if (!n->dirty) {
		n->meta_dirty = 1;
		if (!n->opens) {
			/* just stored, last handle being released: kept pending like a stored file */
			pthread_mutex_unlock(&ex->mu);
			int d = ex_known_defer_meta(ex, path, set_mode, mode, set_time, mtime_ms);
			pthread_mutex_lock(&ex->mu);
			if (d)
				n->meta_dirty = 0;
			else
				rc = ex_finalize(ex, n);
		}
	}
	ex_node_put(ex, n);
	return rc;
}

/* A mode/mtime change of a stored object or directory (mutex NOT held). */
static int set_meta_stored(struct export *ex, const char *path, int set_mode, mode_t mode,
			   int set_time, int64_t mtime_ms)
{
	struct export_attr a;
	int rc = ex_stat_remote(ex, path, &a);
	if (rc)
		return rc;
	if (set_mode)
		a.mode = mode & 07777;
	if (set_time)
		a.mtime_ms = mtime_ms;
	char *key = ex_key(ex, path, a.is_dir ? "/" : "");
	if (!key)
		return -ENOMEM;
	struct s3_object_info info;
	struct awserr e;
	rc = s3_head_object(ex->s3, key, &info, &e);
	s3_object_info_free(&info);
	if (rc == -ENOENT && a.is_dir) {
		/* an implicit directory: give it a marker carrying the metadata */
		rc = put_marker(ex, key, a.mode, a.mtime_ms);
	} else if (!rc) {
		if (a.size > (uint64_t)S3_MAX_PUT_SIZE)
			rc = -EFBIG;
		else
			rc = ex_meta_replace(ex, key, a.mode, a.mtime_ms, a.is_dir);
	}
	free(key);
	return rc;
}

/* Applies a metadata change: to the node when staged/open (stored with the upload), else to the
 * stored object or directory marker at once. */
static int set_meta(struct export *ex, const char *path, int set_mode, mode_t mode,
		    int set_time, int64_t mtime_ms)
{
	int rc = ex_path_check(ex, path);
	if (rc)
		return rc;
	if (!*path)
		return 0;
	pthread_mutex_lock(&ex->mu);
	struct xnode *n = ex_node_find(ex, path);
	if (n && (n->st || n->dirty)) {
		rc = set_meta_staged(ex, n, path, set_mode, mode, set_time, mtime_ms);
		ex_unlock(ex);
		return rc;
	}
	ex_unlock(ex);
	if (ex_known_defer_meta(ex, path, set_mode, mode, set_time, mtime_ms))
		return 0;  /* a file stored here: stored with its rename, or when due */
	ex_known_forget(ex, path);
	rc = set_meta_stored(ex, path, set_mode, mode, set_time, mtime_ms);
	ex_known_forget(ex, path);
	return rc;
}

int export_set_times(struct export *ex, const char *path, int64_t mtime_ms)
{
	return set_meta(ex, path, 0, 0, 1, mtime_ms);
}

int export_set_mode(struct export *ex, const char *path, mode_t mode)
{
	return set_meta(ex, path, 1, mode, 0, 0);
}

int export_set_owner(struct export *ex, const char *path, uid_t uid, gid_t gid)
{
	int rc = ex_path_check(ex, path);
	if (rc)
		return rc;
	if ((uid != (uid_t)-1 && uid != ex->uid) || (gid != (gid_t)-1 && gid != ex->gid)) {
		LOG_DEBUG(ex->log, MOD, "chown of %s: EPERM (export/ files belong to the mount's "
			  "owner)", path);
		return -EPERM;
	}
	struct export_attr a;
	return export_stat(ex, path, &a);
}
