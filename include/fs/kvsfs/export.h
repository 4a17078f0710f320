/*
 * export: the filesystem-independent core of kvsfs's S3-backed export/ directory, mapped to
 * s3://BUCKET/PREFIX/ (design: docs/EXPORT.md).
 *
 * Paths are relative to export/ without leading or trailing '/': "" is the root, "a/b.mkv" a
 * file. Path components "", "." and ".." are invalid (-EINVAL). Directories are key prefixes
 * ("PREFIX/a/"); mkdir creates the marker object "PREFIX/a/" so an empty directory stays visible.
 *
 * Metadata: x-amz-meta-mtime = seconds with a fraction ("1700000000.123", as s3fs and rclone
 * read it) and x-amz-meta-mode = DECIMAL st_mode including the file type bits (s3fs convention,
 * 33188 = 0100644). When reading, a mode with a leading '0' is taken as octal (rclone style),
 * else decimal; only the permission bits 07777 are used. Objects without metadata show
 * Last-Modified and mode 0644 (files) / 0755 (directories) minus the umask.
 *
 * Writes go to a staging file in staging_dir (kvsfs-*.stage, plus a ".path" sidecar naming the
 * export path). Sequential writers have multipart parts uploaded by worker threads while they
 * write; other writers get the whole file uploaded at flush/fsync/release. flush, fsync and
 * release return 0 only when the object is stored; on failure the staged data stays (a later
 * flush/fsync/release, an open + release of the same path, or export_sync_all retries).
 * With opts.writeback, flush/release return once the file is durably staged (data flushed,
 * journal entry written) and upload threads store it about a second later; export_fsync uploads
 * the file now and export_sync_all waits for every pending upload (both return its error).
 *
 * Errors: every function returns 0 (or a byte count) or a negative errno: -ENOENT (S3 said the
 * key does not exist), -EEXIST, -ENOTDIR, -EISDIR, -ENOTEMPTY, -EINVAL (bad path), -EXDEV (rename
 * of a directory or of an object over 5 GiB: mv then copies), -ENOSPC (staging_max_bytes
 * reached), -EFBIG (file too large for S3's multipart limits), -EPERM (chown to another owner),
 * -EACCES (S3 denied), -EIO (network, 5xx after retries, failed integrity check), -ENOMEM.
 * Each failure logs one line with the cause (module "export").
 *
 * Thread-safety: every function may be called from any thread at once (one mutex inside; no S3
 * request, staging-disk operation or log line is made while it is held: a call waits only for
 * calls on the same file). Open files of the same path share one node (staged data, mode,
 * mtime): a rename or setattr while a writer has the path open applies to the staged file.
 */
#ifndef KVSFS_EXPORT_H
#define KVSFS_EXPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct s3_client;
struct log_ctx;
struct metrics;

/* Defaults. part_size below S3's 5 MiB minimum is raised to it. */
#define EXPORT_DEFAULT_PART_SIZE (8u << 20)
#define EXPORT_DEFAULT_PARALLEL 4
#define EXPORT_MAX_PARALLEL 32
#define EXPORT_DEFAULT_PARALLEL_UPLOADS 8

struct export_opts {
	struct s3_client *s3;          /* borrowed; must outlive the export */
	const char *prefix;            /* key prefix ("" or NULL = bucket root); '/' added */
	const char *staging_dir;       /* existing directory for staging files (inside the cache) */
	uint64_t staging_max_bytes;    /* bound on staged bytes (0: 1 GiB) */
	uint64_t part_size;            /* multipart part size (0: 8 MiB; at least 5 MiB) */
	int parallel_parts;            /* worker threads uploading parts (0: 4; max 32) */
	int cache_ttl_ms;              /* how long names/attributes seen are reused and mode/mtime
	                                * changes of stored files kept pending (0: 1000; <0: never) */
	int writeback;                 /* 1: close returns once durably staged; uploads in the
	                                * background (docs/EXPORT.md "Write-back mode") */
	int parallel_uploads;          /* write-back upload threads (0: 8; max 32) */
	int64_t drain_ms;              /* write-back: unmount drain budget (0: 60 s) */
	uid_t uid;                     /* the mount's owner (chown policy) */
	gid_t gid;
	mode_t umask;                  /* applied to the default modes */
	struct log_ctx *log;           /* borrowed, may be NULL */
	struct metrics *metrics;       /* borrowed, may be NULL: the upload queue */
};

struct export;
struct export_file;

struct export_attr {
	int is_dir;
	mode_t mode;                   /* permission bits only (07777) */
	uint64_t size;
	int64_t mtime_ms;              /* Unix milliseconds */
	int exact;                     /* 1: from HeadObject/local state; 0: from a listing
	                                * (Last-Modified, default mode): export_stat is exact */
};

/*
 * Checks the bucket (HeadBucket: a missing bucket or denied access fails with one clear sentence
 * in err, e.g. "bucket B does not exist at ENDPOINT"), locks staging_dir (STAGING/lock, flock:
 * -EBUSY when another export holds it), reports leftover staging files of an earlier run with
 * one warning line naming them (they are never uploaded), aborts the multipart uploads that an
 * earlier run recorded in staging_dir and never finished (one info line each; a failed abort is
 * one warning and is retried later; uploads kvsfs did not record are never touched), then starts
 * the part workers. Returns 0 and *out, or a negative errno with err filled.
 */
int export_open(const struct export_opts *o, struct export **out, char *err, size_t errlen);
/* Stops the workers and frees ex (NULL allowed). No file may be open. Staged data whose upload
 * failed stays in staging_dir (reported at the next export_open); clean staging files go. */
void export_close(struct export *ex);

/* Attributes of path ("" = root). -ENOENT when neither an object, a marker nor a prefix (nor a
 * staged file) exists. */
int export_stat(struct export *ex, const char *path, struct export_attr *a);

/* Calls fn(arg, name, attr) for each entry of directory dir (all listing pages, plus files still
 * staged). A non-zero return of fn stops the listing and is returned. Not "." / "..". */
typedef int (*export_list_fn)(void *arg, const char *name, const struct export_attr *a);
int export_list(struct export *ex, const char *dir, export_list_fn fn, void *arg);

int export_mkdir(struct export *ex, const char *path, mode_t mode);   /* -EEXIST */
int export_rmdir(struct export *ex, const char *path);                /* -ENOTEMPTY, -ENOTDIR */
int export_unlink(struct export *ex, const char *path);               /* -EISDIR */
/* Files only (directories: -EXDEV). A staged file is renamed locally; an uploaded one is copied
 * server-side, then the source deleted. Replaces an existing file at `to`. */
int export_rename(struct export *ex, const char *from, const char *to);
/* mtime (utimens). Staged: goes into the upload; else CopyObject with REPLACE metadata. */
int export_set_times(struct export *ex, const char *path, int64_t mtime_ms);
int export_set_mode(struct export *ex, const char *path, mode_t mode);
/* chown policy: (uid_t)-1 / (gid_t)-1 = unchanged; the mount's own uid/gid are accepted (no-op),
 * anything else -EPERM. */
int export_set_owner(struct export *ex, const char *path, uid_t uid, gid_t gid);
/* Truncate by path: applies to the staged file when open, else stored at once. */
int export_truncate(struct export *ex, const char *path, uint64_t size);
/* Retries every staged file whose upload failed and that no handle has open. Returns 0 or the
 * first error. */
int export_sync_all(struct export *ex);

/* Creates (or truncates) path for writing; *f is owned by the caller until export_release. */
int export_create(struct export *ex, const char *path, mode_t mode, struct export_file **f);
/* Opens an existing file. O_RDONLY: reads are ranged GETs (or from the staging file when staged).
 * O_WRONLY/O_RDWR: staged (O_TRUNC: empty; else the object is downloaded into staging). */
int export_open_file(struct export *ex, const char *path, int flags, struct export_file **f);
/* Reads up to size bytes at off. Returns the byte count (0 at the end) or a negative errno. */
ssize_t export_read(struct export_file *f, char *buf, size_t size, off_t off);
/* Writes into the staging file. Returns size or -EBADF (read-only), -ENOSPC, -EFBIG, -EIO. */
ssize_t export_write(struct export_file *f, const char *buf, size_t size, off_t off);
int export_ftruncate(struct export_file *f, uint64_t size);
/* Uploads now if anything changed; 0 only when the object is stored (else the error; the staged
 * data is kept). flush = fsync here (the FUSE layer calls flush on every close()). On a read-only
 * handle they do nothing unless it is the path's last open handle (then a failed earlier upload
 * is retried). */
int export_fsync(struct export_file *f);
int export_flush(struct export_file *f);
/* Frees an open file that was never closed (the session ended first) without storing anything:
 * a file still open may be incomplete, so its staged data is kept and export_close() reports
 * it, as after a crash. */
void export_abandon(struct export_file *f);
/* Final upload if needed; returns its result; frees f (also on failure: the node keeps the staged
 * data for a retry). */
int export_release(struct export_file *f);

/* ---- pure helpers (exposed for the unit tests) ---- */

/* Parses x-amz-meta-mtime: "SECONDS[.FRACTION]" (optional '-'). -EINVAL otherwise. */
int export_parse_mtime(const char *s, int64_t *ms);
/* Formats ms as "SECONDS.mmm" into out (>= 32 bytes). */
void export_format_mtime(int64_t ms, char *out, size_t n);
/* Parses x-amz-meta-mode: decimal, or octal with a leading 0. Returns permission bits in *mode. */
int export_parse_mode(const char *s, mode_t *mode);
/* Part plan: part n (1..10000) of a plan with base size p: parts 1..1000 have size p, 1001..2000
 * 2p, ... 9001..10000 10p. Fills *off and *len. Returns 0 or -EINVAL (n out of range). */
int export_part_range(uint64_t p, int n, uint64_t *off, uint64_t *len);
/* Checks a path (see above): 0 or -EINVAL. */
int export_path_valid(const char *path);
/* Parses the upload record kvsfs keeps in the staging folder while a multipart upload is open
 * (format in docs/EXPORT.md; at most 4096 bytes). On success *bucket, *upload_id and *key are
 * malloc'd (the caller frees them); else they are NULL. Returns 0, -EINVAL (not a complete
 * record) or -ENOMEM. */
int export_parse_upload_record(const char *data, size_t len, char **bucket, char **upload_id,
			       char **key);

/* A write-back journal entry (format in docs/EXPORT.md "Write-back mode"). */
struct export_journal {
	uint64_t size;
	mode_t mode;                   /* permission bits */
	int64_t mtime_ms;
	char sha[65];                  /* SHA-256 hex of the staged data */
	char path[1024];               /* export path */
};
/* Parses a journal entry (not NUL-terminated, at most 8192 bytes). 0 or -EINVAL. */
int export_parse_journal(const char *data, size_t len, struct export_journal *j);

#endif
