/*
 * export: the S3-backed export/ directory, independent of FUSE (design: docs/EXPORT.md).
 *
 * State: one mutex (ex->mu) guards the node table, every node and the job queue; condition
 * variables: ex->job_cv (workers wait for jobs), ex->done_cv (part completions, node no longer
 * busy). No S3 request is made with the mutex held.
 *
 * Nodes: a file that is open or has staged data has one node (struct xnode) in ex->nodes, found
 * by path. A node holds the staging file (fd, size), mode/mtime, `dirty` (staged bytes or
 * metadata not stored yet) and the multipart state of sequential writers. References: each open
 * file and each queued/running part job holds one; a node leaves the table when it is neither
 * open nor dirty (its staging file is then deleted), and is freed at refs == 0.
 *
 * Invariants:
 *  - staged data is deleted only after the object holding it is stored (or the path was
 *    unlinked/renamed over); a failed upload leaves node->dirty set and the staging file intact.
 *  - `busy` serialises uploads of one node; writes/truncates wait while busy, so the fd ranges
 *    a finalising upload reads never change under it (truncates also wait for parts in flight).
 *  - a multipart upload lives under the key its node had when it was created; once the node is
 *    renamed, nothing else is stored under that key while the upload exists: claim_key aborts
 *    it first (else completing it would overwrite, then delete, the newer object).
 *  - parts queued while writing cover [0, queued_end) with the plan of export_part_range; any
 *    write not at the current end (or a truncate below queued_end) clears seq_ok and the open
 *    multipart upload is aborted at the next flush, which then uploads the whole file.
 *  - ex->staged_bytes = sum of node->alloc (bytes on disk) <= staging_max (ENOSPC otherwise).
 *  - every multipart upload this run opened has an upload record on disk (STAGING/kvsfs-*.upload,
 *    fsync'd before its first part) until it is completed or aborted; export_open aborts the
 *    uploads of the records it finds (an earlier run's: STAGING/lock is flock'ed by one export)
 *    and never any unrecorded upload. See "upload records" below and docs/EXPORT.md.
 */
#include "kvsfs/export.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kvsfs/awserr.h"
#include "kvsfs/buf.h"
#include "kvsfs/fsutil.h"
#include "kvsfs/http.h"
#include "kvsfs/log.h"
#include "kvsfs/s3.h"

#define MOD "export"
#define PLAN_GROUP 1000
#define META_MTIME "mtime"
#define META_MODE "mode"

struct xnode {
	char *path;                 /* export path; NULL once unlinked / replaced */
	int refs;                   /* open files + part jobs */
	int opens;                  /* open files */
	int in_table;
	/* staging */
	int fd;                     /* -1: not staged */
	char *stage_path;
	uint64_t size;              /* logical size of the staged file */
	uint64_t alloc;             /* bytes counted in ex->staged_bytes */
	int dirty;                  /* staged content not stored yet */
	int meta_dirty;             /* mode/mtime not stored yet (object itself stored) */
	mode_t mode;
	int64_t mtime_ms;
	int mtime_set;              /* mtime given by utimens after the last write */
	int busy;
	int last_err;               /* result of the last failed upload (negative) */
	/* multipart upload of a sequential writer */
	int seq_ok;
	char *upload_id;
	char *mpu_key;
	char *mpu_record;           /* name of the upload record in the staging folder, or NULL */
	int creating;
	mode_t mpu_mode;
	int64_t mpu_mtime;          /* -1: sent without mtime */
	struct s3_part *parts;
	int n_parts;                /* parts queued so far */
	int cap_parts;
	uint64_t queued_end;
	int inflight;               /* part jobs queued or running */
	int mpu_err;
	struct xnode *next;
};

/* A multipart upload whose abort failed (server unreachable): aborted again later. */
struct orphan {
	char *key, *upload_id;
	char *record;               /* its upload record (removed once aborted), or NULL */
	struct orphan *next;
};

struct job {
	struct xnode *n;
	int part;                   /* 1-based */
	uint64_t off, len;
	struct job *next;
};

struct export {
	struct s3_client *s3;
	char *prefix;               /* "" or "p/" */
	char *staging_dir;
	int dfd;                    /* the staging folder (records are created and removed in it) */
	int lockfd;                 /* STAGING/lock, flock'ed while open: one export per folder */
	uint64_t staging_max, part_size, max_file;
	int parallel;
	uid_t uid;
	gid_t gid;
	mode_t umask;
	struct log_ctx *log;
	int64_t start_ms;
	pthread_mutex_t mu;
	pthread_cond_t job_cv, done_cv;
	struct xnode *nodes;
	struct job *jobs, *jobs_tail;
	int stopping;
	pthread_t *workers;
	int n_workers;
	uint64_t staged_bytes;
	struct orphan *orphans;
};

struct export_file {
	struct export *ex;
	struct xnode *n;
	int writable;
	char *key;                  /* remote reads: key and size at open */
	uint64_t rsize;
	pthread_mutex_t rmu;        /* guards the read-ahead window below */
	char *rbuf;                 /* bytes [roff, roff + rlen) of the object */
	uint64_t roff;
	size_t rlen;
};

/* Remote reads fetch at least this much per GET and serve later reads from it. */
#define READ_WINDOW (4u << 20)

/* ---- pure helpers ---- */

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
	if (!s)
		return -EINVAL;
	int neg = 0;
	const char *p = s;
	if (*p == '-') {
		neg = 1;
		p++;
	}
	if (*p < '0' || *p > '9')
		return -EINVAL;
	int64_t sec = 0;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (sec > (INT64_MAX / 1000 - 9) / 10)
			return -EINVAL;
		sec = sec * 10 + (*p - '0');
	}
	int64_t frac = 0;
	if (*p == '.') {
		p++;
		int digits = 0;
		for (; *p >= '0' && *p <= '9'; p++, digits++)
			if (digits < 3)
				frac = frac * 10 + (*p - '0');
		if (!digits)
			return -EINVAL;
		for (; digits < 3; digits++)
			frac *= 10;
	}
	if (*p)
		return -EINVAL;
	int64_t v = sec * 1000 + frac;
	*ms = neg ? -v : v;
	return 0;
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

static uint64_t plan_size(uint64_t p, int n)
{
	return p * (uint64_t)(1 + (n - 1) / PLAN_GROUP);
}

int export_part_range(uint64_t p, int n, uint64_t *off, uint64_t *len)
{
	if (n < 1 || n > S3_MAX_PARTS || !p)
		return -EINVAL;
	uint64_t g = (uint64_t)(n - 1) / PLAN_GROUP, r = (uint64_t)(n - 1) % PLAN_GROUP;
	*off = p * PLAN_GROUP * (g * (g + 1) / 2) + r * p * (g + 1);
	*len = plan_size(p, n);
	return 0;
}

/* ---- small utilities ---- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *key_of(const struct export *ex, const char *path, const char *suffix)
{
	struct buf b = BUF_INIT;
	if (buf_appendz(&b, ex->prefix) || buf_appendz(&b, path) || buf_appendz(&b, suffix)) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
}

static void set_err(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t n, const char *fmt, ...)
{
	va_list ap;
	if (!err || !n)
		return;
	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
}

static int path_check(struct export *ex, const char *path)
{
	int rc = export_path_valid(path);
	if (rc)
		LOG_DEBUG(ex->log, MOD, "invalid path \"%s\"", path ? path : "(null)");
	return rc;
}

static struct xnode *node_find(struct export *ex, const char *path)
{
	for (struct xnode *n = ex->nodes; n; n = n->next)
		if (n->path && !strcmp(n->path, path))
			return n;
	return NULL;
}

static void node_unlink_table(struct export *ex, struct xnode *n)
{
	for (struct xnode **pp = &ex->nodes; *pp; pp = &(*pp)->next)
		if (*pp == n) {
			*pp = n->next;
			n->next = NULL;
			n->in_table = 0;
			return;
		}
}

static void stage_drop(struct export *ex, struct xnode *n)
{
	if (n->fd >= 0) {
		close(n->fd);
		n->fd = -1;
	}
	if (n->stage_path) {
		unlink(n->stage_path);
		char side[4096];
		snprintf(side, sizeof(side), "%s.path", n->stage_path);
		unlink(side);
		free(n->stage_path);
		n->stage_path = NULL;
	}
	ex->staged_bytes -= n->alloc;
	n->alloc = 0;
	n->size = 0;
}

static void mpu_reset(struct xnode *n)
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

static void node_free(struct xnode *n)
{
	mpu_reset(n);
	free(n->path);
	free(n);
}

/* Drops a reference (mutex held); a node out of the table at refs 0 is freed. */
static void node_put(struct export *ex, struct xnode *n)
{
	if (--n->refs > 0)
		return;
	if (n->in_table && !n->dirty && !n->opens) {
		node_unlink_table(ex, n);
	}
	if (!n->in_table) {
		if (!n->dirty || !n->path)
			stage_drop(ex, n);
		else if (n->fd >= 0) {
			close(n->fd);  /* a dirty node dropped: keep its staging file for recovery */
			n->fd = -1;
			ex->staged_bytes -= n->alloc;
			free(n->stage_path);
			n->stage_path = NULL;
		}
		node_free(n);
	}
}

static void write_sidecar(const struct xnode *n)
{
	if (!n->stage_path || !n->path)
		return;
	char side[4096];
	snprintf(side, sizeof(side), "%s.path", n->stage_path);
	int fd = open(side, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	ssize_t w = write(fd, n->path, strlen(n->path));
	(void)w;
	close(fd);
}

/* Creates the staging file of n (mutex held). */
static int stage_create(struct export *ex, struct xnode *n)
{
	char tmpl[4096];
	int len = snprintf(tmpl, sizeof(tmpl), "%s/kvsfs-XXXXXX.stage", ex->staging_dir);
	if (len < 0 || (size_t)len >= sizeof(tmpl))
		return -ENAMETOOLONG;
	int fd = mkostemps(tmpl, 6, O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		LOG_ERROR(ex->log, MOD, "cannot create a staging file in %s: %s", ex->staging_dir,
			  strerror(e));
		return -e;
	}
	n->stage_path = strdup(tmpl);
	if (!n->stage_path) {
		close(fd);
		unlink(tmpl);
		return -ENOMEM;
	}
	n->fd = fd;
	n->size = n->alloc = 0;
	write_sidecar(n);
	return 0;
}

/* Accounts growth of n's staging file to `end` bytes (mutex held). */
static int stage_reserve(struct export *ex, struct xnode *n, uint64_t end)
{
	if (end <= n->alloc)
		return 0;
	uint64_t extra = end - n->alloc;
	if (ex->staged_bytes + extra > ex->staging_max) {
		LOG_ERROR(ex->log, MOD, "staging space full (%" PRIu64 " of %" PRIu64
			  " bytes used) writing %s: ENOSPC", ex->staged_bytes, ex->staging_max,
			  n->path ? n->path : "?");
		return -ENOSPC;
	}
	ex->staged_bytes += extra;
	n->alloc = end;
	return 0;
}

static struct xnode *node_new(struct export *ex, const char *path)
{
	struct xnode *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->path = strdup(path);
	if (!n->path) {
		free(n);
		return NULL;
	}
	n->fd = -1;
	n->seq_ok = 1;
	n->mode = 0644 & ~ex->umask;
	n->mtime_ms = now_ms();
	n->in_table = 1;
	n->next = ex->nodes;
	ex->nodes = n;
	return n;
}

static void wait_idle(struct export *ex, struct xnode *n)
{
	while (n->busy || n->inflight)
		pthread_cond_wait(&ex->done_cv, &ex->mu);
}

/* ---- metadata ---- */

static int meta_build(struct http_headers *h, mode_t mode, int64_t mtime_ms, int is_dir)
{
	char v[48];
	if (mtime_ms != INT64_MIN) {
		export_format_mtime(mtime_ms, v, sizeof(v));
		if (http_headers_set(h, META_MTIME, v))
			return -ENOMEM;
	}
	snprintf(v, sizeof(v), "%u", (unsigned)((is_dir ? S_IFDIR : S_IFREG) | (mode & 07777)));
	if (http_headers_set(h, META_MODE, v))
		return -ENOMEM;
	return 0;
}

static void attr_from_info(struct export *ex, const struct s3_object_info *info, int is_dir,
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

static void attr_from_node(const struct xnode *n, struct export_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->mode = n->mode;
	a->size = n->size;
	a->mtime_ms = n->mtime_ms;
	a->exact = 1;
}

/* Replaces the metadata of key (CopyObject REPLACE), keeping other user metadata and the
 * content type. */
static int meta_replace(struct export *ex, const char *key, mode_t mode, int64_t mtime_ms,
			int is_dir)
{
	struct s3_object_info info;
	struct awserr e;
	int rc = s3_head_object(ex->s3, key, &info, &e);
	if (!rc) {
		struct http_headers h = HTTP_HEADERS_INIT;
		rc = http_headers_copy(&h, &info.meta) ? -ENOMEM : 0;
		if (!rc)
			rc = meta_build(&h, mode, mtime_ms, is_dir);
		struct s3_put_opts po = { .meta = &h, .content_type = info.content_type };
		if (!rc)
			rc = s3_copy_object(ex->s3, key, key, S3_META_REPLACE, &po, NULL, &e);
		http_headers_free(&h);
	}
	s3_object_info_free(&info);
	return rc;
}

/* ---- upload records: crash recovery of multipart uploads ---- */

/*
 * While a multipart upload is open, the staging folder holds its record
 * STAGING/kvsfs-XXXXXX.upload (bucket, upload id, key; format in docs/EXPORT.md). It is written
 * and fsync'd (file and folder) after CreateMultipartUpload answered and before the first
 * UploadPart, and removed once the upload is completed or aborted. The staging folder is
 * flock'ed by one export at a time, so at export_open every record belongs to an earlier run:
 * its upload is aborted (recover_uploads). Uploads without a record (another tool's) are never
 * touched.
 */
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

/* Writes the record of upload id of key (mutex NOT held: disk writes) and fsyncs it and the
 * folder. *name gets its file name (malloc'd). Returns 0 or a negative errno (one line logged,
 * nothing left on disk). */
static int record_write(struct export *ex, const char *key, const char *id, char **name)
{
	*name = NULL;
	struct buf b = BUF_INIT;
	char tmpl[4096];
	int rc = 0, fd = -1;
	int len = snprintf(tmpl, sizeof(tmpl), "%s/kvsfs-XXXXXX" RECORD_SUFFIX, ex->staging_dir);
	if (len < 0 || (size_t)len >= sizeof(tmpl))
		rc = -ENAMETOOLONG;
	if (!rc && (buf_printf(&b, RECORD_MAGIC "bucket %s\nupload-id %s\nkey %zu\n",
			       s3_client_bucket(ex->s3), id, strlen(key)) ||
		    buf_appendz(&b, key) || buf_appendz(&b, "\nend\n")))
		rc = -ENOMEM;
	if (!rc) {
		/* never write a record that the next mount could not read */
		char *pb, *pi, *pk;
		rc = export_parse_upload_record(b.data, b.len, &pb, &pi, &pk);
		free(pb);
		free(pi);
		free(pk);
		if (rc == -EINVAL)
			rc = -EIO;
	}
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

/* Removes a record (mutex NOT held). NULL allowed. A record left behind only costs the next
 * mount an abort answered by NoSuchUpload. */
static void record_remove(struct export *ex, const char *name)
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

/* Remembers an upload whose abort failed, with its record, for abort_orphans (mutex held). */
static void orphan_add(struct export *ex, char *key, char *id, char *record)
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

/* Aborts the upload of one record of an earlier run and removes the record: one log line. */
static void recover_record(struct export *ex, const char *name)
{
	char *bucket, *id, *key;
	int rc = record_read(ex, name, &bucket, &id, &key);
	if (rc == -EINVAL) {
		/* cut short: the run stopped while writing it, so before sending any part */
		LOG_WARN(ex->log, MOD, "removing the incomplete upload record %s/%s of an earlier "
			 "run (it stopped before sending any part)", ex->staging_dir, name);
		record_remove(ex, name);
	} else if (rc) {
		LOG_WARN(ex->log, MOD, "upload record %s/%s of an earlier run cannot be read (%s); "
			 "kept", ex->staging_dir, name, rc == -EPROTO ? "unknown format" :
			 strerror(-rc));
	} else if (strcmp(bucket, s3_client_bucket(ex->s3))) {
		LOG_WARN(ex->log, MOD, "multipart upload %s of s3://%s/%s (recorded in %s/%s) is not "
			 "in this mount's bucket: kept; remove it with aws s3api abort-multipart-upload "
			 "and delete the record", id, bucket, key, ex->staging_dir, name);
	} else {
		int gone;
		rc = abort_confirmed(ex, key, id, &gone);
		if (!rc) {
			record_remove(ex, name);
			if (gone)
				LOG_INFO(ex->log, MOD, "multipart upload %s of s3://%s/%s of an earlier "
					 "run had already ended (completed or aborted); record removed",
					 id, bucket, key);
			else
				LOG_INFO(ex->log, MOD, "aborted multipart upload %s of s3://%s/%s left "
					 "unfinished by an earlier run", id, bucket, key);
		} else {
			LOG_WARN(ex->log, MOD, "multipart upload %s of s3://%s/%s left by an earlier "
				 "run could not be aborted (%s); retried before the next upload and at "
				 "the next mount", id, bucket, key, strerror(-rc));
			if (rc != -EINVAL) {  /* a request S3 rejects is not retried in this run */
				pthread_mutex_lock(&ex->mu);
				orphan_add(ex, key, id, strdup(name));  /* no copy: the record stays */
				pthread_mutex_unlock(&ex->mu);
				key = id = NULL;
			}
		}
	}
	free(bucket);
	free(id);
	free(key);
}

/* At open, before the workers start: the uploads of every record of an earlier run. */
static void recover_uploads(struct export *ex)
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

/* Locks the staging folder for this export: -EBUSY when another one (a mount sharing the
 * cache folder) holds it. */
static int staging_lock(struct export *ex, char *err, size_t errlen)
{
	ex->dfd = open(ex->staging_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = ex->dfd < 0 ? -errno : 0;
	if (!rc) {
		ex->lockfd = openat(ex->dfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (ex->lockfd < 0)
			rc = -errno;
	}
	if (!rc && flock(ex->lockfd, LOCK_EX | LOCK_NB))
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
	if (rc == -EBUSY)
		set_err(err, errlen, "export staging folder %s is in use by another kvsfs mount "
			"(%s/lock is locked); give each mount its own cache_dir", ex->staging_dir,
			ex->staging_dir);
	else if (rc)
		set_err(err, errlen, "cannot lock the export staging folder %s: %s",
			ex->staging_dir, strerror(-rc));
	return rc;
}

/* ---- upload (the worker side and the finalising side) ---- */

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

/* Queues part number n->n_parts + 1 covering [off, off + len) (mutex held). */
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

/* Creates the multipart upload of n if needed (mutex held; released during the request). */
static int mpu_ensure(struct export *ex, struct xnode *n, int64_t mtime_for_create)
{
	while (n->creating)
		pthread_cond_wait(&ex->done_cv, &ex->mu);
	if (n->upload_id)
		return 0;
	if (n->mpu_err)
		return n->mpu_err;
	char *key = key_of(ex, n->path ? n->path : "", "");
	if (!key)
		return -ENOMEM;
	n->creating = 1;
	mode_t mode = n->mode;
	pthread_mutex_unlock(&ex->mu);
	struct http_headers h = HTTP_HEADERS_INIT;
	struct awserr e;
	char *id = NULL, *rec = NULL;
	int rc = meta_build(&h, mode, mtime_for_create, 0);
	struct s3_put_opts po = { .meta = &h };
	if (!rc)
		rc = s3_mpu_create(ex->s3, key, &po, &id, &e);
	http_headers_free(&h);
	/* the record goes to disk before any part: a crash from here on leaves it for the next
	 * mount, which aborts the upload (docs/EXPORT.md: the window before it holds no part) */
	if (!rc) {
		rc = record_write(ex, key, id, &rec);
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

static void *worker_main(void *arg)
{
	struct export *ex = arg;
	pthread_mutex_lock(&ex->mu);
	for (;;) {
		while (!ex->jobs && !ex->stopping)
			pthread_cond_wait(&ex->job_cv, &ex->mu);
		if (!ex->jobs)
			break;
		struct job *j = ex->jobs;
		ex->jobs = j->next;
		if (!ex->jobs)
			ex->jobs_tail = NULL;
		struct xnode *n = j->n;
		int rc = n->mpu_err;
		if (!rc)
			rc = mpu_ensure(ex, n, INT64_MIN);
		if (!rc) {
			char *key = strdup(n->mpu_key), *id = strdup(n->upload_id);
			int fd = n->fd;
			pthread_mutex_unlock(&ex->mu);
			struct s3_part part;
			struct awserr e;
			rc = key && id ? s3_mpu_upload_part(ex->s3, key, id, j->part, fd,
							    (off_t)j->off, (off_t)j->len, NULL,
							    &part, &e)
				       : -ENOMEM;
			free(key);
			free(id);
			pthread_mutex_lock(&ex->mu);
			if (!rc)
				n->parts[j->part - 1] = part;
		}
		if (rc && !n->mpu_err)
			n->mpu_err = rc;
		n->inflight--;
		pthread_cond_broadcast(&ex->done_cv);
		node_put(ex, n);
		free(j);
	}
	pthread_mutex_unlock(&ex->mu);
	return NULL;
}

/* Queues the parts that sequential writes have completed (mutex held): a part is queued once
 * more data follows it, so the last part is always queued at finalisation. */
static int queue_ready_parts(struct export *ex, struct xnode *n)
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
		if (!rc || rc == -ENOENT)
			record_remove(ex, rec);
		pthread_mutex_lock(&ex->mu);
		if (rc && rc != -ENOENT) {
			LOG_WARN(ex->log, MOD, "abort of the multipart upload of %s failed (%s); "
				 "retried at the next upload", key, strerror(-rc));
			orphan_add(ex, key, id, rec);
		} else {
			free(key);
			free(id);
			free(rec);
		}
	}
	mpu_reset(n);
}

/*
 * Before an object is stored under key (an upload, or a rename's copy onto it): a node renamed
 * away while its multipart upload was under way still has that upload under key, and completing
 * it there would overwrite (then delete) the new object. Such an upload is aborted here; its
 * node uploads under its new name instead. Returns 1 when one was aborted (the mutex was
 * released: the caller looks again), 0 when none is left (mutex held throughout). `self` is
 * skipped.
 */
static int claim_key(struct export *ex, const struct xnode *self, const char *key)
{
	struct xnode *m = ex->nodes;
	while (m && (m == self || !m->upload_id || !m->mpu_key || strcmp(m->mpu_key, key)))
		m = m->next;
	if (!m)
		return 0;
	m->refs++;
	wait_idle(ex, m);
	if (m->upload_id && m->mpu_key && !strcmp(m->mpu_key, key)) { /* still there */
		m->busy = 1;
		mpu_abort_locked(ex, m);
		m->busy = 0;
		pthread_cond_broadcast(&ex->done_cv);
	}
	node_put(ex, m);
	return 1;
}

/* Aborts the multipart uploads whose abort failed earlier (mutex held; released meanwhile). */
static void abort_orphans(struct export *ex)
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
		record_remove(ex, o->record);
		free(o->key);
		free(o->upload_id);
		free(o->record);
		free(o);
	}
	pthread_mutex_lock(&ex->mu);
	while (keep) {
		struct orphan *o = keep;
		keep = o->next;
		o->next = ex->orphans;
		ex->orphans = o;
	}
}

/*
 * Completes n's multipart upload once every part is sent (mutex held, released during
 * requests): CompleteMultipartUpload under the key it was created with, then a server-side copy
 * when the file was renamed meanwhile, or a metadata update when mode/mtime changed after the
 * create. Removes the upload record once the upload is completed. Returns 0 or a negative errno.
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
	char *rec = n->mpu_record;  /* busy: nobody else touches it */
	n->mpu_record = NULL;
	pthread_mutex_unlock(&ex->mu);
	struct awserr e;
	int rc = s3_mpu_complete(ex->s3, mkey, id, parts, np, NULL, &e);
	int completed = !rc;
	if (completed)
		record_remove(ex, rec);  /* nothing left to abort */
	int renamed = strcmp(mkey, key) != 0;
	if (!rc && renamed) {
		/* renamed while uploading: copy to the new name */
		struct http_headers h = HTTP_HEADERS_INIT;
		rc = meta_build(&h, mode, mt, 0);
		struct s3_put_opts po = { .meta = &h };
		if (!rc)
			rc = s3_copy_object(ex->s3, mkey, key, S3_META_REPLACE, &po, NULL, &e);
		http_headers_free(&h);
	} else if (!rc && ((n_mt_set && sent_mt != mt) || sent_mode != mode) &&
		   size <= (uint64_t)S3_MAX_PUT_SIZE) {
		rc = meta_replace(ex, mkey, mode, mt, 0);
	}
	pthread_mutex_lock(&ex->mu);
	if (completed)
		free(rec);
	else
		n->mpu_record = rec;  /* the caller's abort removes it */
	if (!rc && renamed) {
		/* nothing else was stored under mkey since the rename (claim_key), so the
		 * completed object there is only ours */
		pthread_mutex_unlock(&ex->mu);
		s3_delete_object(ex->s3, mkey, &e);
		pthread_mutex_lock(&ex->mu);
	}
	free(id);
	free(mkey);
	free(parts);
	if (!rc) {
		free(n->upload_id);
		n->upload_id = NULL;  /* completed: nothing to abort */
	}
	return rc;
}

/*
 * Stores node n (mutex held, released during requests). Returns 0 when the object holds the
 * staged bytes and metadata, else a negative errno (staged data kept, dirty stays set).
 */
static int finalize(struct export *ex, struct xnode *n)
{
	char *key = NULL;
	int waited;
	do {
		wait_idle(ex, n);
		if (!n->path)
			return 0;
		if (!n->dirty && !n->meta_dirty)
			return 0;
		free(key);
		key = key_of(ex, n->path, "");
		waited = key && n->dirty && claim_key(ex, n, key);
	} while (waited);
	n->busy = 1;
	abort_orphans(ex);
	int rc = 0;
	if (!n->dirty) {
		/* only metadata changed on a stored object */
		mode_t mode = n->mode;
		int64_t mt = n->mtime_ms;
		pthread_mutex_unlock(&ex->mu);
		rc = key ? meta_replace(ex, key, mode, mt, 0) : -ENOMEM;
		pthread_mutex_lock(&ex->mu);
		if (!rc)
			n->meta_dirty = 0;
		goto out;
	}
	if (!n->seq_ok || n->mpu_err) {
		if (n->mpu_err)
			LOG_WARN(ex->log, MOD, "upload of parts of %s failed while writing (%s); "
				 "uploading the whole file again", n->path, strerror(-n->mpu_err));
		mpu_abort_locked(ex, n);
	}
	if (!key) {
		rc = -ENOMEM;
		goto out;
	}
	uint64_t size = n->size;
	mode_t mode = n->mode;
	int64_t mt = n->mtime_ms;
	if (!n->upload_id && size <= ex->part_size) {
		int fd = n->fd;
		pthread_mutex_unlock(&ex->mu);
		struct http_headers h = HTTP_HEADERS_INIT;
		struct awserr e;
		rc = meta_build(&h, mode, mt, 0);
		struct s3_put_opts po = { .meta = &h };
		if (!rc)
			rc = s3_put_object_fd(ex->s3, key, fd, 0, (off_t)size, &po, NULL, &e);
		http_headers_free(&h);
		pthread_mutex_lock(&ex->mu);
	} else {
		if (size > ex->max_file) {
			rc = -EFBIG;
			goto out;
		}
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
	}
out:
	if (!rc) {
		n->dirty = 0;
		n->meta_dirty = 0;
		n->last_err = 0;
		n->seq_ok = 1;
	} else {
		n->last_err = rc;
		LOG_ERROR(ex->log, MOD, "storing %s failed: %s (the staged data is kept for a retry)",
			  key ? key : n->path, strerror(-rc));
	}
	free(key);
	n->busy = 0;
	pthread_cond_broadcast(&ex->done_cv);
	return rc;
}

/* ---- open / close ---- */

static void report_leftovers(struct export *ex)
{
	DIR *d = opendir(ex->staging_dir);
	if (!d)
		return;
	struct buf names = BUF_INIT;
	int count = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l < 6 || strcmp(de->d_name + l - 6, ".stage") || strncmp(de->d_name, "kvsfs-", 6))
			continue;
		char side[4096], path[1024] = "";
		snprintf(side, sizeof(side), "%s/%s.path", ex->staging_dir, de->d_name);
		int fd = open(side, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t r = read(fd, path, sizeof(path) - 1);
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

int export_open(const struct export_opts *o, struct export **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!o || !o->s3 || !o->staging_dir) {
		set_err(err, errlen, "export: missing S3 client or staging folder");
		return -EINVAL;
	}
	struct stat st;
	if (stat(o->staging_dir, &st) || !S_ISDIR(st.st_mode)) {
		set_err(err, errlen, "export staging folder %s is not a directory", o->staging_dir);
		return -ENOTDIR;
	}
	struct awserr e;
	awserr_clear(&e);
	int rc = s3_head_bucket(o->s3, &e);
	if (rc) {
		const char *b = s3_client_bucket(o->s3);
		if (rc == -ENOENT)
			set_err(err, errlen, "export bucket %s does not exist", b);
		else if (rc == -EACCES)
			set_err(err, errlen, "access to export bucket %s denied: check the credentials "
				"and the bucket policy", b);
		else
			set_err(err, errlen, "export bucket %s cannot be reached: %s", b,
				strerror(-rc));
		return rc;
	}
	struct export *ex = calloc(1, sizeof(*ex));
	if (!ex)
		return -ENOMEM;
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
		return -ENOMEM;
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
	ex->start_ms = now_ms();
	ex->dfd = ex->lockfd = -1;
	pthread_mutex_init(&ex->mu, NULL);
	pthread_cond_init(&ex->job_cv, NULL);
	pthread_cond_init(&ex->done_cv, NULL);
	rc = staging_lock(ex, err, errlen);
	if (rc) {
		export_close(ex);
		return rc;
	}
	report_leftovers(ex);
	recover_uploads(ex);
	ex->workers = calloc((size_t)ex->parallel, sizeof(pthread_t));
	if (!ex->workers) {
		export_close(ex);
		return -ENOMEM;
	}
	for (int i = 0; i < ex->parallel; i++) {
		if (pthread_create(&ex->workers[i], NULL, worker_main, ex)) {
			export_close(ex);
			set_err(err, errlen, "export: cannot start upload threads");
			return -EAGAIN;
		}
		ex->n_workers++;
	}
	*out = ex;
	return 0;
}

void export_close(struct export *ex)
{
	if (!ex)
		return;
	pthread_mutex_lock(&ex->mu);
	ex->stopping = 1;
	pthread_cond_broadcast(&ex->job_cv);
	pthread_mutex_unlock(&ex->mu);
	for (int i = 0; i < ex->n_workers; i++)
		pthread_join(ex->workers[i], NULL);
	free(ex->workers);
	int kept = 0;
	while (ex->nodes) {
		struct xnode *n = ex->nodes;
		ex->nodes = n->next;
		if (n->upload_id) {
			struct awserr e;
			int rc = s3_mpu_abort(ex->s3, n->mpu_key, n->upload_id, &e);
			if (!rc || rc == -ENOENT)
				record_remove(ex, n->mpu_record);  /* else the next mount aborts it */
		}
		if (n->dirty && n->path) {
			kept++;
			LOG_WARN(ex->log, MOD, "%s was not stored in S3; its data stays in %s", n->path,
				 n->stage_path ? n->stage_path : "?");
			if (n->fd >= 0)
				close(n->fd);
			free(n->stage_path);
		} else {
			stage_drop(ex, n);
		}
		node_free(n);
	}
	(void)kept;
	pthread_mutex_lock(&ex->mu);
	abort_orphans(ex);
	while (ex->orphans) {
		struct orphan *o = ex->orphans;
		ex->orphans = o->next;
		if (o->record)
			LOG_WARN(ex->log, MOD, "multipart upload %s of %s could not be aborted; the next "
				 "mount with this cache folder aborts it", o->upload_id, o->key);
		else
			LOG_WARN(ex->log, MOD, "multipart upload %s of %s could not be aborted; remove "
				 "it with abort-multipart-upload", o->upload_id, o->key);
		free(o->key);
		free(o->upload_id);
		free(o->record);
		free(o);
	}
	pthread_mutex_unlock(&ex->mu);
	pthread_cond_destroy(&ex->job_cv);
	pthread_cond_destroy(&ex->done_cv);
	pthread_mutex_destroy(&ex->mu);
	if (ex->dfd >= 0)
		close(ex->dfd);
	if (ex->lockfd >= 0)
		close(ex->lockfd);  /* releases the flock */
	free(ex->prefix);
	free(ex->staging_dir);
	free(ex);
}

/* ---- namespace ---- */

/* Remote lookup (no node). */
static int stat_remote(struct export *ex, const char *path, struct export_attr *a)
{
	struct s3_object_info info;
	struct awserr e;
	char *key = key_of(ex, path, "");
	if (!key)
		return -ENOMEM;
	int rc = s3_head_object(ex->s3, key, &info, &e);
	if (!rc)
		attr_from_info(ex, &info, 0, a);
	s3_object_info_free(&info);
	if (rc == -ENOENT) {
		free(key);
		key = key_of(ex, path, "/");
		if (!key)
			return -ENOMEM;
		rc = s3_head_object(ex->s3, key, &info, &e);
		if (!rc)
			attr_from_info(ex, &info, 1, a);
		s3_object_info_free(&info);
		if (rc == -ENOENT) {
			struct s3xml_list l = { 0 };
			rc = s3_list_objects(ex->s3, key, NULL, 1, &l, &e);
			if (!rc && l.n_objects == 0)
				rc = -ENOENT;
			if (!rc) {
				memset(a, 0, sizeof(*a));
				a->is_dir = 1;
				a->mode = 0755 & ~ex->umask;
				a->mtime_ms = ex->start_ms;
				a->exact = 1;
			}
			s3xml_list_free(&l);
		}
	}
	free(key);
	return rc;
}

int export_stat(struct export *ex, const char *path, struct export_attr *a)
{
	int rc = path_check(ex, path);
	if (rc)
		return rc;
	if (!*path) {
		memset(a, 0, sizeof(*a));
		a->is_dir = 1;
		a->mode = 0755 & ~ex->umask;
		a->mtime_ms = ex->start_ms;
		a->exact = 1;
		return 0;
	}
	pthread_mutex_lock(&ex->mu);
	struct xnode *n = node_find(ex, path);
	if (n && (n->fd >= 0 || n->dirty)) {
		attr_from_node(n, a);
		pthread_mutex_unlock(&ex->mu);
		return 0;
	}
	pthread_mutex_unlock(&ex->mu);
	return stat_remote(ex, path, a);
}

struct list_ctx {
	struct export *ex;
	size_t plen;
	export_list_fn fn;
	void *arg;
	char **local;               /* staged names in this dir */
	struct export_attr *lattr;
	int *seen;
	size_t n_local;
	char **files;               /* names of the objects listed (emitted at once) */
	size_t n_files, cap_files;
	char **dirs;                /* names of the prefixes listed (emitted at the end) */
	size_t n_dirs, cap_dirs;
	int stop;
	size_t emitted;
};

/* Appends name (owned from now on) to *v; frees it and returns -ENOMEM on failure. */
static int names_push(char ***v, size_t *n, size_t *cap, char *name)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		char **nv = realloc(*v, nc * sizeof(*nv));
		if (!nv) {
			free(name);
			return -ENOMEM;
		}
		*v = nv;
		*cap = nc;
	}
	(*v)[(*n)++] = name;
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_emit(struct list_ctx *c, const char *name, struct export_attr *a)
{
	for (size_t i = 0; i < c->n_local; i++)
		if (!strcmp(c->local[i], name)) {
			if (c->seen[i])
				return 0;
			c->seen[i] = 1;
			if (!a->is_dir)
				a = &c->lattr[i];
		}
	c->emitted++;
	int r = c->fn(c->arg, name, a);
	if (r)
		c->stop = r;
	return r;
}

static int list_page(void *arg, struct s3xml_list *page)
{
	struct list_ctx *c = arg;
	struct export *ex = c->ex;
	/* folders wait for the end of the listing: a name that is also an object is the file */
	for (size_t i = 0; i < page->n_prefixes && !c->stop; i++) {
		char *pfx = page->prefixes[i];
		size_t l = strlen(pfx);
		if (l <= c->plen + 1)
			continue;
		char *name = strndup(pfx + c->plen, l - c->plen - 1);
		if (!name)
			return -ENOMEM;
		if (export_path_valid(name) || strchr(name, '/'))
			free(name);
		else if (names_push(&c->dirs, &c->n_dirs, &c->cap_dirs, name)) {
			c->stop = -ENOMEM;
			return 1;
		}
	}
	for (size_t i = 0; i < page->n_objects && !c->stop; i++) {
		const struct s3xml_object *o = &page->objects[i];
		const char *name = o->key + c->plen;
		if (strlen(o->key) <= c->plen || export_path_valid(name) || strchr(name, '/'))
			continue;  /* the directory's own marker, or a name unusable as a file */
		struct export_attr a = {
			.size = o->size > 0 ? (uint64_t)o->size : 0,
			.mode = 0644 & ~ex->umask,
			.mtime_ms = o->last_modified >= 0 ? o->last_modified * 1000 : ex->start_ms,
		};
		char *copy = strdup(name);
		if (!copy || names_push(&c->files, &c->n_files, &c->cap_files, copy)) {
			c->stop = -ENOMEM;
			return 1;
		}
		list_emit(c, name, &a);
	}
	return c->stop ? 1 : 0;
}

/*
 * Emits the folders of a finished listing. A name that is both an object (KEY) and a prefix
 * (KEY/, a marker or objects below it), or a prefix and a staged file, is listed once, as the
 * file: that is what export_stat (HeadObject KEY first) says it is (docs/EXPORT.md).
 */
static int list_dirs(struct list_ctx *c)
{
	if (c->n_files > 1)
		qsort(c->files, c->n_files, sizeof(*c->files), cmp_name);
	for (size_t i = 0; i < c->n_dirs && !c->stop; i++) {
		const char *name = c->dirs[i];
		int shadowed = c->n_files && bsearch(&name, c->files, c->n_files, sizeof(*c->files),
						     cmp_name) != NULL;
		for (size_t j = 0; j < c->n_local && !shadowed; j++)
			shadowed = strcmp(c->local[j], name) == 0;
		if (shadowed)
			continue;
		struct export_attr a = { .is_dir = 1, .mode = 0755 & ~c->ex->umask,
					 .mtime_ms = c->ex->start_ms };
		list_emit(c, name, &a);
	}
	return c->stop;
}

int export_list(struct export *ex, const char *dir, export_list_fn fn, void *arg)
{
	int rc = path_check(ex, dir);
	if (rc)
		return rc;
	char *pfx = key_of(ex, dir, *dir ? "/" : "");
	if (!pfx)
		return -ENOMEM;
	struct list_ctx c = { .ex = ex, .plen = strlen(pfx), .fn = fn, .arg = arg };
	size_t dl = strlen(dir);
	/* staged files directly in dir */
	pthread_mutex_lock(&ex->mu);
	size_t cap = 0;
	for (struct xnode *n = ex->nodes; n; n = n->next)
		cap++;
	c.local = calloc(cap + 1, sizeof(char *));
	c.lattr = calloc(cap + 1, sizeof(*c.lattr));
	c.seen = calloc(cap + 1, sizeof(int));
	if (!c.local || !c.lattr || !c.seen)
		rc = -ENOMEM;
	for (struct xnode *n = ex->nodes; n && !rc; n = n->next) {
		if (!n->path || (n->fd < 0 && !n->dirty))
			continue;
		const char *rest = n->path;
		if (dl) {
			if (strncmp(n->path, dir, dl) || n->path[dl] != '/')
				continue;
			rest = n->path + dl + 1;
		}
		if (strchr(rest, '/'))
			continue;
		c.local[c.n_local] = strdup(rest);
		if (!c.local[c.n_local]) {
			rc = -ENOMEM;
			break;
		}
		attr_from_node(n, &c.lattr[c.n_local]);
		c.n_local++;
	}
	pthread_mutex_unlock(&ex->mu);
	struct awserr e;
	if (!rc)
		rc = s3_list_objects_pages(ex->s3, pfx, "/", list_page, &c, &e);
	if (!rc && c.stop)
		rc = c.stop;
	if (!rc)
		rc = list_dirs(&c);
	for (size_t i = 0; i < c.n_local && !rc; i++)
		if (!c.seen[i]) {
			c.emitted++;
			rc = fn(arg, c.local[i], &c.lattr[i]);
		}
	if (!rc && !c.emitted && *dir) {
		/* nothing listed: say whether the directory exists at all */
		struct export_attr a;
		rc = export_stat(ex, dir, &a);
		if (!rc && !a.is_dir)
			rc = -ENOTDIR;
	}
	for (size_t i = 0; i < c.n_local; i++)
		free(c.local[i]);
	for (size_t i = 0; i < c.n_files; i++)
		free(c.files[i]);
	for (size_t i = 0; i < c.n_dirs; i++)
		free(c.dirs[i]);
	free(c.files);
	free(c.dirs);
	free(c.local);
	free(c.lattr);
	free(c.seen);
	free(pfx);
	return rc;
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

int export_mkdir(struct export *ex, const char *path, mode_t mode)
{
	int rc = path_check(ex, path);
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
	char *key = key_of(ex, path, "/");
	if (!key)
		return -ENOMEM;
	struct http_headers h = HTTP_HEADERS_INIT;
	struct awserr e;
	rc = meta_build(&h, mode & 07777, now_ms(), 1);
	struct s3_put_opts po = { .meta = &h };
	if (!rc)
		rc = s3_put_object_mem(ex->s3, key, NULL, 0, &po, NULL, &e);
	http_headers_free(&h);
	free(key);
	return rc;
}

int export_rmdir(struct export *ex, const char *path)
{
	int rc = path_check(ex, path);
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
		if (n->path && (n->fd >= 0 || n->dirty) && !strncmp(n->path, path, pl) &&
		    n->path[pl] == '/')
			rc = -ENOTEMPTY;
	pthread_mutex_unlock(&ex->mu);
	if (rc)
		return rc;
	char *key = key_of(ex, path, "/");
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
	return rc;
}

/* Aborts n's multipart upload once no part is in flight (mutex held). */
static void abort_idle(struct export *ex, struct xnode *n)
{
	wait_idle(ex, n);
	n->busy = 1;
	mpu_abort_locked(ex, n);
	n->busy = 0;
	pthread_cond_broadcast(&ex->done_cv);
}

/* Forgets the node of path (mutex held): its staged data is dropped when no longer used. */
static void node_forget(struct export *ex, struct xnode *n)
{
	abort_idle(ex, n);
	n->dirty = 0;
	n->meta_dirty = 0;
	free(n->path);
	n->path = NULL;
	node_unlink_table(ex, n);
	if (!n->refs) {
		stage_drop(ex, n);
		node_free(n);
	}
}

int export_unlink(struct export *ex, const char *path)
{
	int rc = path_check(ex, path);
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
	pthread_mutex_lock(&ex->mu);
	struct xnode *n = node_find(ex, path);
	if (n)
		node_forget(ex, n);
	pthread_mutex_unlock(&ex->mu);
	char *key = key_of(ex, path, "");
	if (!key)
		return -ENOMEM;
	struct awserr e;
	rc = s3_delete_object(ex->s3, key, &e);
	free(key);
	return rc;
}

int export_rename(struct export *ex, const char *from, const char *to)
{
	int rc = path_check(ex, from);
	if (!rc)
		rc = path_check(ex, to);
	if (rc)
		return rc;
	if (!*from || !*to)
		return -EBUSY;
	if (!strcmp(from, to))
		return 0;
	struct export_attr a, b;
	rc = export_stat(ex, from, &a);
	if (rc)
		return rc;
	if (a.is_dir) {
		LOG_INFO(ex->log, MOD, "rename of directory %s: EXDEV (S3 has no directory rename; "
			 "mv copies instead)", from);
		return -EXDEV;
	}
	rc = export_stat(ex, to, &b);
	if (!rc && b.is_dir)
		return -EISDIR;
	if (rc && rc != -ENOENT)
		return rc;
	int to_exists = !rc;
	rc = check_parent_dir(ex, to);
	if (rc)
		return rc;
	char *fkey = key_of(ex, from, ""), *tkey = key_of(ex, to, "");
	char *npath = strdup(to);
	if (!fkey || !tkey || !npath) {
		free(fkey);
		free(tkey);
		free(npath);
		return -ENOMEM;
	}
	struct awserr e;
	pthread_mutex_lock(&ex->mu);
	while (claim_key(ex, node_find(ex, from), tkey))
		;
	struct xnode *tn = node_find(ex, to);
	if (tn)
		node_forget(ex, tn);
	struct xnode *n = node_find(ex, from);
	if (n)
		wait_idle(ex, n);
	if (n && n->dirty) {
		/* not stored yet: rename locally; the upload goes to the new key (a multipart
		 * upload already under way completes under the old key and is then copied
		 * server-side, so its parts are not sent again) */
		if (n->upload_id && n->size > (uint64_t)S3_MAX_PUT_SIZE)
			abort_idle(ex, n);
		free(n->path);
		n->path = npath;
		npath = NULL;
		write_sidecar(n);
		pthread_mutex_unlock(&ex->mu);
		/* a stored older version under `from` goes; `to` is replaced at the upload */
		/* the old target (if any) stays until the upload replaces it */
		(void)to_exists;
		rc = s3_delete_object(ex->s3, fkey, &e);
		goto done;
	}
	int have_meta = n && n->meta_dirty;
	mode_t mode = n ? n->mode : 0;
	int64_t mt = n ? n->mtime_ms : 0;
	pthread_mutex_unlock(&ex->mu);
	if (a.size > (uint64_t)S3_MAX_PUT_SIZE) {
		rc = -EXDEV;
		goto done;
	}
	if (have_meta) {
		struct http_headers h = HTTP_HEADERS_INIT;
		rc = meta_build(&h, mode, mt, 0);
		struct s3_put_opts po = { .meta = &h };
		if (!rc)
			rc = s3_copy_object(ex->s3, fkey, tkey, S3_META_REPLACE, &po, NULL, &e);
		http_headers_free(&h);
	} else {
		rc = s3_copy_object(ex->s3, fkey, tkey, S3_META_COPY, NULL, NULL, &e);
	}
	if (!rc)
		rc = s3_delete_object(ex->s3, fkey, &e);
	if (!rc) {
		pthread_mutex_lock(&ex->mu);
		n = node_find(ex, from);
		if (n) {
			free(n->path);
			n->path = npath;
			npath = NULL;
			n->meta_dirty = 0;
			write_sidecar(n);
		}
		pthread_mutex_unlock(&ex->mu);
	}
done:
	free(npath);
	free(fkey);
	free(tkey);
	return rc;
}

/* Applies a metadata change: to the node when staged/open (stored with the upload), else to the
 * stored object or directory marker at once. */
static int set_meta(struct export *ex, const char *path, int set_mode, mode_t mode,
		    int set_time, int64_t mtime_ms)
{
	int rc = path_check(ex, path);
	if (rc)
		return rc;
	if (!*path)
		return 0;
	pthread_mutex_lock(&ex->mu);
	struct xnode *n = node_find(ex, path);
	if (n && (n->fd >= 0 || n->dirty)) {
		wait_idle(ex, n);
		if (set_mode)
			n->mode = mode & 07777;
		if (set_time) {
			n->mtime_ms = mtime_ms;
			n->mtime_set = 1;
		}
		if (!n->dirty) {
			n->meta_dirty = 1;
			if (!n->opens) {
				n->refs++;
				rc = finalize(ex, n);
				node_put(ex, n);
			}
		}
		pthread_mutex_unlock(&ex->mu);
		return rc;
	}
	pthread_mutex_unlock(&ex->mu);
	struct export_attr a;
	rc = stat_remote(ex, path, &a);
	if (rc)
		return rc;
	if (set_mode)
		a.mode = mode & 07777;
	if (set_time)
		a.mtime_ms = mtime_ms;
	char *key = key_of(ex, path, a.is_dir ? "/" : "");
	if (!key)
		return -ENOMEM;
	struct s3_object_info info;
	struct awserr e;
	rc = s3_head_object(ex->s3, key, &info, &e);
	s3_object_info_free(&info);
	if (rc == -ENOENT && a.is_dir) {
		/* an implicit directory: give it a marker carrying the metadata */
		struct http_headers h = HTTP_HEADERS_INIT;
		rc = meta_build(&h, a.mode, a.mtime_ms, 1);
		struct s3_put_opts po = { .meta = &h };
		if (!rc)
			rc = s3_put_object_mem(ex->s3, key, NULL, 0, &po, NULL, &e);
		http_headers_free(&h);
	} else if (!rc) {
		if (a.size > (uint64_t)S3_MAX_PUT_SIZE)
			rc = -EFBIG;
		else
			rc = meta_replace(ex, key, a.mode, a.mtime_ms, a.is_dir);
	}
	free(key);
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
	int rc = path_check(ex, path);
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

/* ---- files ---- */

static int file_new(struct export *ex, struct xnode *n, int writable, struct export_file **f)
{
	struct export_file *x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->ex = ex;
	x->n = n;
	x->writable = writable;
	n->refs++;
	n->opens++;
	*f = x;
	return 0;
}

/* Truncates the staged file of n to size (mutex held, node idle). */
static int stage_truncate(struct export *ex, struct xnode *n, uint64_t size)
{
	int rc = stage_reserve(ex, n, size);
	if (rc)
		return rc;
	if (ftruncate(n->fd, (off_t)size)) {
		rc = -errno;
		LOG_ERROR(ex->log, MOD, "truncating the staging file of %s: %s", n->path,
			  strerror(-rc));
		return rc;
	}
	if (size < n->queued_end || (n->n_parts && size != n->size))
		n->seq_ok = 0;
	n->size = size;
	n->dirty = 1;
	n->mtime_ms = now_ms();
	return 0;
}

struct dl_ctx {
	int fd;
	off_t off;
};

static int dl_body(void *arg, const void *data, size_t len)
{
	struct dl_ctx *d = arg;
	const char *p = data;
	while (len) {
		ssize_t w = pwrite(d->fd, p, len, d->off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -EIO;
		p += w;
		len -= (size_t)w;
		d->off += w;
	}
	return 0;
}

static int dl_reset(void *arg)
{
	struct dl_ctx *d = arg;
	d->off = 0;
	return 0;
}

/* Gets node n for path, staged (mutex held; released while downloading), with one reference
 * for the caller (drop it with node_put). With trunc the staged file is empty; else an existing
 * object is downloaded. must_exist: -ENOENT when there is no such file. */
static int node_staged(struct export *ex, const char *path, int trunc, int must_exist,
		       mode_t mode, struct xnode **out)
{
	struct xnode *n = node_find(ex, path);
	int rc = 0;
	if (n) {
		wait_idle(ex, n);
		n = node_find(ex, path);
	}
	struct export_attr a;
	int exists = 0;
	if (!n) {
		pthread_mutex_unlock(&ex->mu);
		rc = stat_remote(ex, path, &a);
		pthread_mutex_lock(&ex->mu);
		if (!rc && a.is_dir)
			return -EISDIR;
		if (rc && rc != -ENOENT)
			return rc;
		exists = !rc;
		if (!exists && must_exist)
			return -ENOENT;
		rc = 0;
		n = node_find(ex, path);  /* may have appeared meanwhile */
	}
	if (n && n->fd >= 0) {
		n->refs++;
		if (trunc)
			rc = stage_truncate(ex, n, 0);
		if (rc)
			node_put(ex, n);
		else
			*out = n;
		return rc;
	}
	if (!n) {
		n = node_new(ex, path);
		if (!n)
			return -ENOMEM;
		if (exists) {
			n->mode = a.mode;
			n->mtime_ms = a.mtime_ms;
		} else {
			n->mode = mode & 07777;
		}
	}
	n->refs++;
	rc = stage_create(ex, n);
	if (!rc && exists && !trunc && a.size) {
		rc = stage_reserve(ex, n, a.size);
		char *key = key_of(ex, path, "");
		n->busy = 1;
		int fd = n->fd;
		pthread_mutex_unlock(&ex->mu);
		struct dl_ctx d = { .fd = fd };
		struct awserr e;
		if (!rc)
			rc = key ? s3_get_object(ex->s3, key, 0, -1, dl_body, dl_reset, &d, NULL, &e)
				 : -ENOMEM;
		if (!rc && (uint64_t)d.off != a.size)
			rc = -EIO;
		free(key);
		pthread_mutex_lock(&ex->mu);
		n->busy = 0;
		pthread_cond_broadcast(&ex->done_cv);
		if (!rc)
			n->size = a.size;
	}
	if (!rc && (trunc || !exists))
		n->dirty = 1;
	if (rc) {
		if (!n->dirty)
			stage_drop(ex, n);
		node_put(ex, n);
		return rc;
	}
	*out = n;
	return 0;
}

int export_create(struct export *ex, const char *path, mode_t mode, struct export_file **f)
{
	*f = NULL;
	int rc = path_check(ex, path);
	if (rc)
		return rc;
	if (!*path)
		return -EISDIR;
	pthread_mutex_lock(&ex->mu);
	struct xnode *n = NULL;
	rc = node_staged(ex, path, 1, 0, mode, &n);
	if (!rc) {
		n->mtime_ms = now_ms();
		n->mtime_set = 0;
		rc = file_new(ex, n, 1, f);
		node_put(ex, n);
	}
	pthread_mutex_unlock(&ex->mu);
	return rc;
}

int export_open_file(struct export *ex, const char *path, int flags, struct export_file **f)
{
	*f = NULL;
	int rc = path_check(ex, path);
	if (rc)
		return rc;
	if (!*path)
		return -EISDIR;
	int acc = flags & O_ACCMODE;
	pthread_mutex_lock(&ex->mu);
	struct xnode *n = NULL;
	if (acc != O_RDONLY) {
		rc = node_staged(ex, path, !!(flags & O_TRUNC), 1, 0644, &n);
		if (!rc) {
			rc = file_new(ex, n, 1, f);
			node_put(ex, n);
		}
		pthread_mutex_unlock(&ex->mu);
		return rc;
	}
	n = node_find(ex, path);
	if (n && (n->fd >= 0 || n->dirty)) {
		rc = file_new(ex, n, 0, f);
		pthread_mutex_unlock(&ex->mu);
		return rc;
	}
	pthread_mutex_unlock(&ex->mu);
	struct export_attr a;
	rc = stat_remote(ex, path, &a);
	if (rc)
		return rc;
	if (a.is_dir)
		return -EISDIR;
	struct export_file *x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->ex = ex;
	x->key = key_of(ex, path, "");
	x->rsize = a.size;
	if (!x->key) {
		free(x);
		return -ENOMEM;
	}
	pthread_mutex_init(&x->rmu, NULL);
	*f = x;
	return 0;
}

struct rd_ctx {
	char *buf;
	size_t cap, got;
};

static int rd_body(void *arg, const void *data, size_t len)
{
	struct rd_ctx *r = arg;
	if (len > r->cap - r->got)
		return -EIO;
	memcpy(r->buf + r->got, data, len);
	r->got += len;
	return 0;
}

static int rd_reset(void *arg)
{
	((struct rd_ctx *)arg)->got = 0;
	return 0;
}

ssize_t export_read(struct export_file *f, char *buf, size_t size, off_t off)
{
	struct export *ex = f->ex;
	if (off < 0)
		return -EINVAL;
	if (f->n) {
		pthread_mutex_lock(&ex->mu);
		int fd = f->n->fd;
		uint64_t sz = f->n->size;
		pthread_mutex_unlock(&ex->mu);
		if (fd < 0)
			return -EIO;
		if ((uint64_t)off >= sz)
			return 0;
		if (size > sz - (uint64_t)off)
			size = (size_t)(sz - (uint64_t)off);
		ssize_t r = pread(fd, buf, size, off);
		return r < 0 ? -errno : r;
	}
	if ((uint64_t)off >= f->rsize || !size)
		return 0;
	if (size > f->rsize - (uint64_t)off)
		size = (size_t)(f->rsize - (uint64_t)off);
	uint64_t uoff = (uint64_t)off;
	pthread_mutex_lock(&f->rmu);
	if (!(f->rbuf && uoff >= f->roff && uoff + size <= f->roff + f->rlen)) {
		/* fetch a window starting at off (one GET per READ_WINDOW for sequential readers) */
		size_t want = size > READ_WINDOW ? size : READ_WINDOW;
		if (want > f->rsize - uoff)
			want = (size_t)(f->rsize - uoff);
		char *nb = realloc(f->rbuf, want > READ_WINDOW ? want : READ_WINDOW);
		if (!nb) {
			pthread_mutex_unlock(&f->rmu);
			return -ENOMEM;
		}
		f->rbuf = nb;
		f->rlen = 0;
		struct rd_ctx r = { .buf = nb, .cap = want };
		struct awserr e;
		int rc = s3_get_object(ex->s3, f->key, off, (int64_t)want, rd_body, rd_reset, &r,
				       NULL, &e);
		if (rc) {
			pthread_mutex_unlock(&f->rmu);
			return rc == -EINVAL ? 0 : rc;  /* 416: the object shrank meanwhile */
		}
		f->roff = uoff;
		f->rlen = r.got;
	}
	size_t have = f->roff + f->rlen > uoff ? (size_t)(f->roff + f->rlen - uoff) : 0;
	if (size > have)
		size = have;
	memcpy(buf, f->rbuf + (uoff - f->roff), size);
	pthread_mutex_unlock(&f->rmu);
	return (ssize_t)size;
}

ssize_t export_write(struct export_file *f, const char *buf, size_t size, off_t off)
{
	struct export *ex = f->ex;
	struct xnode *n = f->n;
	if (!f->writable || !n)
		return -EBADF;
	if (off < 0)
		return -EINVAL;
	uint64_t end = (uint64_t)off + size;
	pthread_mutex_lock(&ex->mu);
	while (n->busy)
		pthread_cond_wait(&ex->done_cv, &ex->mu);
	int rc = 0;
	if (n->fd < 0)
		rc = -EIO;  /* (a path unlinked while open keeps its staging file: writes go there) */
	if (!rc && end > ex->max_file)
		rc = -EFBIG;
	if (!rc)
		rc = stage_reserve(ex, n, end);
	if (rc) {
		pthread_mutex_unlock(&ex->mu);
		return rc;
	}
	const char *p = buf;
	size_t left = size;
	off_t o = off;
	while (left) {
		ssize_t w = pwrite(n->fd, p, left, o);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rc = w < 0 ? -errno : -EIO;
			LOG_ERROR(ex->log, MOD, "writing the staging file of %s: %s", n->path,
				  strerror(-rc));
			break;
		}
		p += w;
		left -= (size_t)w;
		o += w;
	}
	if ((uint64_t)off != n->size)
		n->seq_ok = 0;
	if (end > n->size)
		n->size = end;
	n->dirty = 1;
	n->mtime_ms = now_ms();
	n->mtime_set = 0;
	if (!rc)
		rc = queue_ready_parts(ex, n);
	pthread_mutex_unlock(&ex->mu);
	return rc ? rc : (ssize_t)size;
}

int export_ftruncate(struct export_file *f, uint64_t size)
{
	struct export *ex = f->ex;
	struct xnode *n = f->n;
	if (!f->writable || !n)
		return -EBADF;
	pthread_mutex_lock(&ex->mu);
	wait_idle(ex, n);  /* parts being sent read the staging file: it may not shrink under them */
	int rc = n->fd >= 0 ? stage_truncate(ex, n, size) : -EIO;
	pthread_mutex_unlock(&ex->mu);
	return rc;
}

int export_truncate(struct export *ex, const char *path, uint64_t size)
{
	int rc = path_check(ex, path);
	if (rc)
		return rc;
	if (!*path)
		return -EISDIR;
	pthread_mutex_lock(&ex->mu);
	struct xnode *n = NULL;
	rc = node_staged(ex, path, size == 0, 1, 0644, &n);
	if (!rc) {
		wait_idle(ex, n);
		rc = stage_truncate(ex, n, size);
		if (!rc && !n->opens)
			rc = finalize(ex, n);
		node_put(ex, n);
	}
	pthread_mutex_unlock(&ex->mu);
	return rc;
}

int export_fsync(struct export_file *f)
{
	struct export *ex = f->ex;
	if (!f->n)
		return 0;
	pthread_mutex_lock(&ex->mu);
	int rc = f->writable || f->n->opens == 1 ? finalize(ex, f->n) : 0;
	pthread_mutex_unlock(&ex->mu);
	return rc;
}

int export_flush(struct export_file *f)
{
	return export_fsync(f);
}

int export_release(struct export_file *f)
{
	if (!f)
		return 0;
	struct export *ex = f->ex;
	int rc = 0;
	if (f->n) {
		pthread_mutex_lock(&ex->mu);
		struct xnode *n = f->n;
		if (f->writable || n->opens == 1)
			rc = finalize(ex, n);
		n->opens--;
		if (!n->opens && !n->dirty && n->in_table && !n->busy) {
			/* stored and no longer open: the staged copy goes */
			node_unlink_table(ex, n);
		}
		node_put(ex, n);
		pthread_mutex_unlock(&ex->mu);
	}
	if (f->key)
		pthread_mutex_destroy(&f->rmu);
	free(f->rbuf);
	free(f->key);
	free(f);
	return rc;
}

void export_abandon(struct export_file *f)
{
	if (!f)
		return;
	struct export *ex = f->ex;
	if (f->n) {
		pthread_mutex_lock(&ex->mu);
		f->n->opens--;
		node_put(ex, f->n); /* a dirty node stays: export_close reports it */
		pthread_mutex_unlock(&ex->mu);
	}
	if (f->key)
		pthread_mutex_destroy(&f->rmu);
	free(f->rbuf);
	free(f->key);
	free(f);
}

int export_sync_all(struct export *ex)
{
	int first = 0;
	pthread_mutex_lock(&ex->mu);
	abort_orphans(ex);
	for (;;) {
		struct xnode *todo = NULL;
		for (struct xnode *n = ex->nodes; n; n = n->next)
			if (n->dirty && !n->opens && !n->busy && n->last_err != 1) {
				todo = n;
				break;
			}
		if (!todo)
			break;
		todo->refs++;
		int rc = finalize(ex, todo);
		if (rc && !first)
			first = rc;
		if (rc)
			todo->last_err = 1;  /* tried in this pass */
		node_put(ex, todo);
	}
	for (struct xnode *n = ex->nodes; n; n = n->next)
		if (n->last_err == 1)
			n->last_err = -EIO;
	pthread_mutex_unlock(&ex->mu);
	return first;
}
