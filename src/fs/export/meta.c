/*
 * export/meta: paths, keys and metadata of export/ (docs/EXPORT.md "Names", "Metadata").
 *
 * What it does: checks export paths, maps a path to its S3 key (PREFIX + path [+ "/"]), reads
 * and writes the x-amz-meta-mtime / x-amz-meta-mode metadata, turns S3 answers and nodes into
 * struct export_attr, and computes the multipart part plan.
 *
 * Invariants: pure functions except ex_meta_replace (two S3 requests) and ex_now_ms (the
 * clock); none takes a lock or touches a node, so any thread may call them, and
 * ex_meta_replace must be called with ex->mu released.
 *  - a path is valid when it has no "", "." or ".." component and is at most 900 bytes;
 *  - mtime is written as "SECONDS.mmm" and read with any fraction; mode is written decimal
 *    with the type bits (s3fs) and read decimal, or octal with a leading 0 (rclone);
 *  - the part plan covers parts 1..10000 contiguously: 1000 parts of p, 1000 of 2p, ... 10p.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "export_int.h"
#include "kvsfs/awserr.h"
#include "kvsfs/buf.h"
#include "kvsfs/clk.h"
#include "kvsfs/decsec.h"
#include "kvsfs/log.h"

#define META_MTIME "mtime"
#define META_MODE "mode"

int export_path_valid(const char *path)
{
	if (!path)
		return -EINVAL;
	if (!*path)
		return 0;
	const char *p = path;
	for (;;) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return -EINVAL;
		if (!e)
			break;
		p = e + 1;
	}
	return strlen(path) > 900 ? -ENAMETOOLONG : 0;
}

int export_parse_mtime(const char *s, int64_t *ms)
{
	/* the one decimal-seconds parser: "[-]SECONDS[.FRACTION]", extra digits dropped */
	return decsec_parse_ms(s, DECSEC_NEGATIVE, ms) ? -EINVAL : 0;
}

void export_format_mtime(int64_t ms, char *out, size_t n)
{
	const char *sign = "";
	uint64_t v = (uint64_t)ms;
	if (ms < 0) {
		sign = "-";
		v = (uint64_t)0 - (uint64_t)ms;
	}
	snprintf(out, n, "%s%" PRIu64 ".%03u", sign, v / 1000, (unsigned)(v % 1000));
}

int export_parse_mode(const char *s, mode_t *mode)
{
	if (!s || !*s)
		return -EINVAL;
	int base = s[0] == '0' ? 8 : 10;
	uint64_t v = 0;
	for (const char *p = s; *p; p++) {
		int d = *p - '0';
		if (d < 0 || d >= base)
			return -EINVAL;
		v = v * (uint64_t)base + (uint64_t)d;
		if (v > 07777777)
			return -EINVAL;
	}
	*mode = (mode_t)(v & 07777);
	return 0;
}

int export_part_range(uint64_t p, int n, uint64_t *off, uint64_t *len)
{
	if (n < 1 || n > S3_MAX_PARTS || !p)
		return -EINVAL;
	uint64_t g = (uint64_t)(n - 1) / PLAN_GROUP, r = (uint64_t)(n - 1) % PLAN_GROUP;
	*off = p * PLAN_GROUP * (g * (g + 1) / 2) + r * p * (g + 1);
	*len = p * (g + 1);
	return 0;
}

int64_t ex_now_ms(void)
{
	return clk_wall_ms(); /* a file time, not a timeout */
}

char *ex_key(const struct export *ex, const char *path, const char *suffix)
{
	struct buf b = BUF_INIT;
	if (buf_appendz(&b, ex->prefix) || buf_appendz(&b, path) || buf_appendz(&b, suffix)) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
}

int ex_path_check(struct export *ex, const char *path)
{
	int rc = export_path_valid(path);
	if (rc)
		LOG_DEBUG(ex->log, MOD, "invalid path \"%s\"", path ? path : "(null)");
	return rc;
}

int ex_meta_build(struct s3_meta *h, mode_t mode, int64_t mtime_ms, int is_dir)
{
	char v[48];
	if (mtime_ms != INT64_MIN) {
		export_format_mtime(mtime_ms, v, sizeof(v));
		if (s3_meta_set(h, META_MTIME, v))
			return -ENOMEM;
	}
	snprintf(v, sizeof(v), "%u", (unsigned)((is_dir ? S_IFDIR : S_IFREG) | (mode & 07777)));
	if (s3_meta_set(h, META_MODE, v))
		return -ENOMEM;
	return 0;
}

void ex_attr_from_info(struct export *ex, const struct s3_object_info *info, int is_dir,
		       struct export_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->is_dir = is_dir;
	a->size = is_dir ? 0 : (info->size > 0 ? (uint64_t)info->size : 0);
	a->mode = (is_dir ? 0755 : 0644) & ~ex->umask;
	a->mtime_ms = info->last_modified >= 0 ? info->last_modified * 1000 : ex->start_ms;
	a->exact = 1;
	const char *m = s3_meta_get(info, META_MTIME);
	int64_t ms;
	if (m && !export_parse_mtime(m, &ms))
		a->mtime_ms = ms;
	mode_t md;
	m = s3_meta_get(info, META_MODE);
	if (m && !export_parse_mode(m, &md))
		a->mode = md;
}

void ex_attr_from_node(const struct xnode *n, struct export_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->mode = n->mode;
	a->size = n->size;
	a->mtime_ms = n->mtime_ms;
	a->exact = 1;
}

void ex_attr_dir(const struct export *ex, struct export_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->is_dir = 1;
	a->mode = 0755 & ~ex->umask;
	a->mtime_ms = ex->start_ms;
	a->exact = 1;
}

/* Replaces the metadata of key (CopyObject REPLACE), keeping other user metadata and the
 * content type. */
int ex_meta_replace(struct export *ex, const char *key, mode_t mode, int64_t mtime_ms,
		    int is_dir)
{
	struct s3_object_info info;
	struct awserr e;
	int rc = s3_head_object(ex->s3, key, &info, &e);
	if (!rc) {
		struct s3_meta h = S3_META_INIT;
		rc = s3_meta_copy(&h, &info.meta) ? -ENOMEM : 0;
		if (!rc)
			rc = ex_meta_build(&h, mode, mtime_ms, is_dir);
		struct s3_put_opts po = { .meta = &h, .content_type = info.content_type };
		if (!rc)
			rc = s3_copy_object(ex->s3, key, key, S3_META_REPLACE, &po, NULL, &e);
		s3_meta_free(&h);
	}
	s3_object_info_free(&info);
	return rc;
}
