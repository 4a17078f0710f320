/*
 * export/journal: the write-back journal (docs/EXPORT.md "Write-back mode").
 *
 * What it does: one small file per pending upload, STAGING/kvsfs-XXXXXX.stage.wb next to the
 * staging file it describes:
 *
 *     kvsfs-writeback 1
 *     size 35840
 *     mode 420
 *     mtime_ms 1700000000123
 *     sha256 <64 lowercase hex digits>
 *     path cam1/2024/frag-0001.mkv
 *
 * (mode in decimal; path is the rest of the file, so any byte but NUL may be in it). At close
 * the entry is written in place and flushed with the data and the folder: from then on the file
 * is durably staged. A later rename, chmod or utimens (rsync's come right after the close) is
 * written, without any flush, as the NEWER entry: the extended attribute user.kvsfs.newer of
 * the close-time entry (set atomically, no file to create), or where the file system has no user
 * xattrs a complete temp file renamed to STAGING/kvsfs-XXXXXX.stage.wbn; the close-time entry's
 * text is never touched again. At open the newer
 * entry is used when it parses and names the same size and checksum, else the close-time one:
 * a crash leaves the old or the new name and metadata, never a mix, and never loses the file.
 * As on a local filesystem, such a change is durable once fsync'd (the file or a folder, which
 * upload it). An entry is resumed only
 * when its staging file has exactly `size` bytes with that SHA-256; otherwise the file was
 * written again after it was journaled (or damaged), so it is reported like any leftover and
 * never uploaded.
 *
 * Invariants: an entry exists only for a closed file whose data was fsync'd before the entry;
 * it goes with its staging file (ex_stage_dispose) or when the upload is stored (upload.c), the
 * close-time entry first (a newer entry without one is deleted at open).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "export_int.h"
#include "kvsfs/buf.h"
#include "kvsfs/fsutil.h"
#include "kvsfs/log.h"
#include "kvsfs/sigv4_hash.h"

#define JOURNAL_SUFFIX ".wb"
#define NEWER_SUFFIX ".wbn"
#define NEWER_XATTR "user.kvsfs.newer"
#define JOURNAL_MAX 8192

int ex_journal_write(struct export *ex, const char *stage_path, const char *path, uint64_t size,
		     mode_t mode, int64_t mtime_ms, const char *sha, int data_fd)
{
	char fin[4096], newer[4096], tmp[4104];
	snprintf(fin, sizeof(fin), "%s" JOURNAL_SUFFIX, stage_path);
	snprintf(newer, sizeof(newer), "%s" NEWER_SUFFIX, stage_path);
	snprintf(tmp, sizeof(tmp), "%s.tmp", newer);
	struct buf b = BUF_INIT;
	buf_printf(&b, "kvsfs-writeback 1\nsize %" PRIu64 "\nmode %u\nmtime_ms %" PRId64
		   "\nsha256 %s\npath %s", size, (unsigned)(mode & 07777), mtime_ms, sha, path);
	/* at close (data_fd >= 0): the entry in place, then the data, the entry and the folder
	 * flushed (a crash before they are is a file still open: not resumed), and a newer entry
	 * of an earlier close goes; a rewrite: a complete temp file renamed to the newer entry,
	 * nothing flushed (after a crash the newer entry is whole or absent) */
	const char *target = data_fd >= 0 ? fin : tmp;
	int rc = 0;
	if (data_fd < 0) {
		if (setxattr(fin, NEWER_XATTR, buf_str(&b), b.len, 0) == 0) {
			buf_free(&b);  /* the newer entry as an attribute: replaced atomically */
			return 0;
		}
		/* no room or no xattrs: the file; an older attribute would win over it at open */
		if (removexattr(fin, NEWER_XATTR) && errno != ENODATA && errno != ENOTSUP) {
			rc = -errno;
			LOG_ERROR(ex->log, MOD, "cannot write the journal entry of %s in %s: %s", path,
				  ex->staging_dir, strerror(-rc));
			buf_free(&b);
			return rc;
		}
	}
	if (data_fd >= 0)
		unlink(newer);
	int fd = open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		rc = -errno;
	if (!rc && data_fd >= 0 && fremovexattr(fd, NEWER_XATTR) && errno != ENODATA &&
	    errno != ENOTSUP)
		rc = -errno;
	if (!rc)
		rc = fsutil_write_all(fd, buf_str(&b), b.len);
	if (!rc && data_fd >= 0 && fdatasync(data_fd))
		rc = -errno;
	if (!rc && data_fd >= 0 && fdatasync(fd))
		rc = -errno;
	if (fd >= 0 && close(fd) && !rc)
		rc = -errno;
	if (!rc && data_fd < 0 && rename(tmp, newer))
		rc = -errno;
	if (!rc && data_fd >= 0 && fsync(ex->dfd))
		rc = -errno;
	if (rc) {
		unlink(target);
		LOG_ERROR(ex->log, MOD, "cannot write the journal entry of %s in %s: %s", path,
			  ex->staging_dir, strerror(-rc));
	}
	buf_free(&b);
	return rc;
}

void ex_journal_remove(const char *stage_path)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s" JOURNAL_SUFFIX, stage_path);
	unlink(p);  /* first: a newer entry alone is never resumed */
	snprintf(p, sizeof(p), "%s" NEWER_SUFFIX, stage_path);
	unlink(p);
}

int export_parse_journal(const char *data, size_t len, struct export_journal *j)
{
	memset(j, 0, sizeof(*j));
	static const char head[] = "kvsfs-writeback 1\n";
	if (len > JOURNAL_MAX || len < sizeof(head) - 1 || memcmp(data, head, sizeof(head) - 1) ||
	    memchr(data, 0, len))
		return -EINVAL;
	char text[JOURNAL_MAX + 1];  /* NUL-terminated for sscanf */
	memcpy(text, data, len);
	text[len] = 0;
	const char *p = text + sizeof(head) - 1, *end = text + len;
	unsigned long long size;
	unsigned mode;
	long long mt;
	int used = 0;
	/* the fixed fields are one per line; sscanf stops at "path " */
	if (sscanf(p, "size %llu\nmode %u\nmtime_ms %lld\nsha256 %64[0-9a-f]\n%n", &size, &mode,
		   &mt, j->sha, &used) != 4 || !used || strlen(j->sha) != 64)
		return -EINVAL;
	p += used;
	if (end - p < 5 || memcmp(p, "path ", 5))
		return -EINVAL;
	p += 5;
	if (p == end || (size_t)(end - p) >= sizeof(j->path))
		return -EINVAL;
	memcpy(j->path, p, (size_t)(end - p));
	j->path[end - p] = 0;
	if (export_path_valid(j->path))
		return -EINVAL;
	j->size = size;
	j->mode = mode & 07777;
	j->mtime_ms = mt;
	return 0;
}

/* Reads and parses the entry file jp. 0 or -errno. */
static int read_entry(const char *jp, struct export_journal *j)
{
	struct buf b = BUF_INIT;
	int fd = open(jp, O_RDONLY | O_CLOEXEC);
	int rc = fd < 0 ? -errno : fsutil_read_fd(fd, JOURNAL_MAX, &b);
	if (fd >= 0)
		close(fd);
	if (!rc)
		rc = export_parse_journal(b.data ? b.data : "", b.len, j);
	buf_free(&b);
	return rc;
}

/* Reads and parses the newer entry kept as the attribute NEWER_XATTR of entry file jp. */
static int read_newer_xattr(const char *jp, struct export_journal *j)
{
	char text[JOURNAL_MAX];
	ssize_t n = getxattr(jp, NEWER_XATTR, text, sizeof(text));
	return n < 0 ? -errno : export_parse_journal(text, (size_t)n, j);
}

/* Resumes one entry (single-threaded open). 1: a node was made; 0: not resumed. */
static int resume_one(struct export *ex, const char *name)
{
	char jp[4096], sp[4096], np[4104];
	snprintf(jp, sizeof(jp), "%s/%s", ex->staging_dir, name);
	snprintf(sp, sizeof(sp), "%.*s", (int)(strlen(jp) - strlen(JOURNAL_SUFFIX)), jp);
	snprintf(np, sizeof(np), "%s" NEWER_SUFFIX, sp);
	struct export_journal j, nj;
	int rc = read_entry(jp, &j);
	if (rc) {
		LOG_WARN(ex->log, MOD, "journal entry %s is not valid (%s); its staging file is not "
			 "uploaded", jp, strerror(-rc));
		unlink(jp);
		unlink(np);
		return 0;
	}
	/* a rename/chmod/utimens after the close: its newer entry, when whole and of this data */
	if ((read_newer_xattr(jp, &nj) == 0 || read_entry(np, &nj) == 0) && nj.size == j.size &&
	    !strcmp(nj.sha, j.sha))
		j = nj;
	int sfd = open(sp, O_RDWR | O_CLOEXEC);
	struct stat st;
	char sha[65] = "";
	if (sfd < 0 || fstat(sfd, &st) || (uint64_t)st.st_size != j.size ||
	    sigv4_sha256_fd(sfd, 0, (off_t)j.size, sha) || strcmp(sha, j.sha)) {
		LOG_WARN(ex->log, MOD, "%s: the staged data no longer matches its journal entry "
			 "(written again after close, or damaged); it is NOT uploaded", j.path);
		if (sfd >= 0)
			close(sfd);
		unlink(jp);
		unlink(np);
		return 0;
	}
	struct stage_file *sf = calloc(1, sizeof(*sf));
	struct xnode *n = ex_node_find(ex, j.path) ? NULL : ex_node_new(ex, j.path);
	char *spath = strdup(sp);
	if (!sf || !n || !spath) {
		free(sf);
		free(spath);
		close(sfd);
		if (n)
			LOG_ERROR(ex->log, MOD, "out of memory resuming %s", j.path);
		return 0;  /* a second entry for the same path: the staging file stays a leftover */
	}
	sf->fd = sfd;
	sf->path = spath;
	n->st = sf;
	n->size = n->alloc = j.size;
	ex->staged_bytes += j.size;
	n->mode = j.mode;
	n->mtime_ms = j.mtime_ms;
	n->mtime_set = 1;
	n->dirty = 1;
	n->journaled = 1;
	n->seq_ok = 0;
	memcpy(n->sha, j.sha, sizeof(n->sha));
	n->wb_due = 0;
	return 1;
}

void ex_journal_resume(struct export *ex)
{
	DIR *d = opendir(ex->staging_dir);
	if (!d)
		return;
	struct dirent *de;
	int count = 0;
	size_t sl = strlen(".stage" JOURNAL_SUFFIX);
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (!strncmp(de->d_name, "kvsfs-", 6) && l > 4 &&
		    !strcmp(de->d_name + l - 4, ".tmp")) {
			unlinkat(ex->dfd, de->d_name, 0);  /* a rewrite cut short: the old entry holds */
			continue;
		}
		size_t nl = strlen(".stage" NEWER_SUFFIX);
		if (!strncmp(de->d_name, "kvsfs-", 6) && l > nl &&
		    !strcmp(de->d_name + l - nl, ".stage" NEWER_SUFFIX)) {
			char wb[512];
			snprintf(wb, sizeof(wb), "%.*s", (int)(l - 1), de->d_name);  /* .wbn -> .wb */
			if (l < 500 && faccessat(ex->dfd, wb, F_OK, 0) != 0)
				unlinkat(ex->dfd, de->d_name, 0);  /* its close-time entry is gone */
			continue;
		}
		if (l < sl || strcmp(de->d_name + l - sl, ".stage" JOURNAL_SUFFIX) ||
		    strncmp(de->d_name, "kvsfs-", 6))
			continue;
		count += resume_one(ex, de->d_name);
	}
	closedir(d);
	if (count)
		LOG_INFO(ex->log, MOD, "resuming %d journaled upload(s) of an earlier run", count);
}
