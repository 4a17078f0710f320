/*
 * export_int.h: what the modules of src/fs/export/ share. Private: the API is
 * include/kvsfs/export.h, the design docs/EXPORT.md.
 *
 * Modules (one concept each):
 *   export.c     life cycle: export_open, export_close, export_sync_all
 *   meta.c       paths, keys, x-amz-meta-* metadata, attributes, the part plan (pure helpers)
 *   node.c       the node table: lookup, references, ownership (busy), unlocking
 *   staging.c    staging files: create, sidecar, space accounting, truncate, drop, leftovers
 *   records.c    upload records (crash recovery of multipart uploads) and failed aborts
 *   upload.c     the part queue and its workers, multipart uploads, finalize
 *   namespace.c  stat, mkdir, rmdir, unlink, rename, mode/mtime/owner changes
 *   list.c       directory listings: S3 pages merged with staged files
 *   file.c       open files: create/open, read (staged or a remote window), write, truncate,
 *                fsync/flush/release
 *   known.c      what the mount learnt in the last second (attributes, directory names) and
 *                mode/mtime changes of files it stored, kept pending until a rename or due
 *   writeback.c  -o export_writeback: journal entries, upload threads, drain, resume at open
 *   journal.c    the write-back journal entry format (write, parse) and the resume scan
 *
 * Locking. One mutex, ex->mu, guards the node table, every field of every node, the part-job
 * queue, the orphan list, ex->staged_bytes and ex->trash. Condition variables: ex->job_cv
 * (workers wait for jobs), ex->done_cv (a node stopped being busy, a part finished, a
 * multipart upload was created). ex->mu is never held across a network call, a disk operation
 * on the staging folder (create, write, truncate, close, unlink, fsync) or a log line:
 *   - a thread that changes a node's staged data or upload (a write, truncate, download,
 *     sidecar rewrite, upload or abort) first OWNS the node (n->busy = 1, after waiting on
 *     done_cv while another thread owns it), then releases ex->mu for the slow work, then
 *     re-locks, updates the node and disowns it (busy = 0, broadcast). Other threads that need
 *     the same node wait on done_cv without holding ex->mu; other nodes are never blocked.
 *     While a node is busy, only its owner changes n->path, n->st and the staged bytes, so
 *     the owner may read those (e.g. n->path for a log line) with ex->mu released;
 *   - staging files that are no longer needed go to ex->trash under ex->mu and are closed and
 *     unlinked by ex_unlock() once ex->mu is released (every public function unlocks with it);
 *   - a thread waiting on a node holds a reference to it (n->refs), so it cannot be freed
 *     under the waiter.
 * ex->kmu (known.c) is a leaf lock: taken with or without ex->mu, never the other way round.
 * An open file's read window has its own mutex (f->rmu, never taken together with ex->mu)
 * and a `fetching` flag: one GET fills the window while other readers of the handle wait on
 * f->rcv.
 */
#ifndef KVSFS_EXPORT_INT_H
#define KVSFS_EXPORT_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kvsfs/export.h"
#include "kvsfs/s3.h"

struct s3_meta;

#define MOD "export"
#define PLAN_GROUP 1000

/* A staging file: STAGING/kvsfs-XXXXXX.stage and its sidecar ".path" naming the export path. */
struct stage_file {
	int fd;
	char *path;
	int keep;                   /* in the trash: close only (the data stays for a report) */
	struct stage_file *next;    /* in ex->trash */
};

struct xnode {
	char *path;                 /* export path; NULL once unlinked / replaced */
	int refs;                   /* open files + part jobs + threads waiting on the node */
	int opens;                  /* open files */
	int in_table;
	/* staging */
	struct stage_file *st;      /* NULL: not staged */
	uint64_t size;              /* logical size of the staged file */
	uint64_t alloc;             /* bytes counted in ex->staged_bytes */
	int dirty;                  /* staged content not stored yet */
	int meta_dirty;             /* mode/mtime not stored yet (object itself stored) */
	mode_t mode;
	int64_t mtime_ms;
	int mtime_set;              /* mtime given by utimens after the last write */
	int busy;                   /* owned by one thread (see "Locking" above) */
	int last_err;               /* result of the last failed upload (negative) */
	/* multipart upload of a sequential writer */
	int seq_ok;
	char *upload_id;
	char *mpu_key;
	char *mpu_record;           /* name of the upload record in the staging folder, or NULL */
	int creating;               /* CreateMultipartUpload in flight (a worker or finalize) */
	mode_t mpu_mode;
	int64_t mpu_mtime;          /* INT64_MIN: sent without mtime */
	struct s3_part *parts;
	int n_parts;                /* parts queued so far */
	int cap_parts;
	uint64_t queued_end;
	int inflight;               /* part jobs queued or running */
	int mpu_err;
	/* write-back (writeback.c) */
	int writers;                /* writable open handles */
	int journaled;              /* a journal entry matches the staged data and metadata */
	int uploading;              /* picked by an upload thread */
	int fresh;                  /* nothing stored under path by anyone as far as known */
	char sha[65];               /* SHA-256 hex of the staged data when journaled */
	int64_t wb_due;             /* monotonic ms: upload not before (hold, backoff) */
	unsigned wb_tried;          /* the sync pass of the last upload attempt */
	int wb_fails;               /* failed attempts in a row */
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
	struct metrics *metrics;    /* may be NULL: parts and bytes queued */
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
	struct stage_file *trash;   /* staging files to close/unlink once ex->mu is released */
	/* known.c, guarded by kmu (a leaf lock) */
	pthread_mutex_t kmu;
	pthread_cond_t kcv;         /* a pending metadata change stopped being stored */
	struct known *known;
	size_t n_known;
	struct kdir *kdirs;
	unsigned kgen;              /* bumped whenever a name is added */
	unsigned kpass;             /* the current ex_known_flush pass (never 0) */
	int ttl_ms;                 /* export_opts.cache_ttl_ms; 0: known.c is off */
	/* write-back (writeback.c), guarded by mu */
	int wb;                     /* export_opts.writeback */
	int wb_parallel;            /* upload threads */
	int64_t drain_ms;           /* unmount drain budget, and the longest backpressure wait */
	pthread_cond_t wb_cv;       /* upload threads wait here for due uploads */
	pthread_t *uploaders;
	int n_uploaders;
	int wb_stop;
	unsigned wb_pass;           /* sync passes started */
	unsigned wb_urgent;         /* nodes with wb_tried below it are due now */
	int64_t wb_timer_at;        /* due time an upload thread waits for (INT64_MAX: none) */
	int space_waiters;          /* writers waiting for staging space */
};

struct export_file {
	struct export *ex;
	struct xnode *n;            /* staged files; NULL for remote reads */
	int writable;
	char *key;                  /* remote reads: key and size at open */
	uint64_t rsize;
	pthread_mutex_t rmu;        /* guards the read window below */
	pthread_cond_t rcv;         /* a window fetch ended */
	int fetching;               /* one reader is fetching a window (rmu released) */
	char *rbuf;                 /* bytes [roff, roff + rlen) of the object */
	uint64_t roff;
	size_t rlen;
};

/* ---- export.c ---- */
/* Formats one sentence into err (NULL or errlen 0: nothing). */
void ex_set_err(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- meta.c: paths, keys, metadata, attributes ---- */
int64_t ex_now_ms(void);
/* PREFIX + path + suffix, malloc'd; NULL on ENOMEM. */
char *ex_key(const struct export *ex, const char *path, const char *suffix);
/* export_path_valid plus one debug line for a bad path. */
int ex_path_check(struct export *ex, const char *path);
/* Adds x-amz-meta-mtime (unless INT64_MIN) and x-amz-meta-mode to h. 0 or -ENOMEM. */
int ex_meta_build(struct s3_meta *h, mode_t mode, int64_t mtime_ms, int is_dir);
void ex_attr_from_info(struct export *ex, const struct s3_object_info *info, int is_dir,
		       struct export_attr *a);
void ex_attr_from_node(const struct xnode *n, struct export_attr *a);
/* The attributes of a directory without metadata (the root, implicit directories). */
void ex_attr_dir(const struct export *ex, struct export_attr *a);
/* CopyObject of key onto itself with REPLACE metadata (network; mutex NOT held). */
int ex_meta_replace(struct export *ex, const char *key, mode_t mode, int64_t mtime_ms,
		    int is_dir);

/* ---- node.c: the node table (mutex held unless said otherwise) ---- */
struct xnode *ex_node_find(struct export *ex, const char *path);
/* A new node for path in the table (refs 0, mode 0644 - umask, mtime now), or NULL. */
struct xnode *ex_node_new(struct export *ex, const char *path);
void ex_node_unlink(struct export *ex, struct xnode *n);
void ex_node_free(struct xnode *n);
/* Drops a reference; a node out of the table at refs 0 is freed (its staging file trashed,
 * or only closed when it holds data not stored yet). */
void ex_node_put(struct export *ex, struct xnode *n);
/* Waits (caller holds a reference) until no thread owns n and no part job of n is queued. */
void ex_node_wait_idle(struct export *ex, struct xnode *n);
/* Waits until no thread owns n, then owns it (caller holds a reference). */
void ex_node_own(struct export *ex, struct xnode *n);
void ex_node_disown(struct export *ex, struct xnode *n);
/* Releases ex->mu, then closes/unlinks the staging files in ex->trash. */
void ex_unlock(struct export *ex);

/* ---- staging.c: staging files ---- */
/* Creates a staging file and its sidecar naming path (mutex NOT held). 0 or -errno (logged). */
int ex_stage_open(struct export *ex, const char *path, struct stage_file **out);
/* Rewrites the sidecar of stage_path to name path (mutex NOT held). */
void ex_stage_sidecar(const char *stage_path, const char *path);
/* Counts growth of n's staging file to end bytes (mutex held, n owned). 0 or -ENOSPC (not
 * logged: the caller logs with ex_stage_log_full after unlocking; *used = bytes in use). */
int ex_stage_reserve(struct export *ex, struct xnode *n, uint64_t end, uint64_t *used);
void ex_stage_log_full(struct export *ex, const char *path, uint64_t used);
/* Truncates n's staged file to size (mutex held, caller holds a reference; owns n meanwhile,
 * ftruncate with the mutex released). 0, -ENOSPC, -EIO (logged). */
int ex_stage_truncate(struct export *ex, struct xnode *n, uint64_t size);
/* Moves n's staging file to the trash (unlinked at ex_unlock) and releases its space. */
void ex_stage_drop(struct export *ex, struct xnode *n);
/* Same, but the file is only closed: it holds data not stored (reported at the next open). */
void ex_stage_keep(struct export *ex, struct xnode *n);
/* Closes (and unless keep, unlinks) every staging file of list and frees it (mutex NOT held). */
void ex_stage_dispose(struct export *ex, struct stage_file *list);
/* Renames node n to npath (owned from now on; mutex held, caller holds a reference); the
 * sidecar is rewritten with the mutex released while n is owned. */
void ex_stage_rename(struct export *ex, struct xnode *n, char *npath);
void ex_staging_report_leftovers(struct export *ex);
/* flock STAGING/lock: 0, or -EBUSY (another export) / -errno with err filled. */
int ex_staging_lock(struct export *ex, char *err, size_t errlen);

/* ---- records.c: upload records and failed aborts ---- */
/* Writes and fsyncs the record of upload id of key (mutex NOT held). *name: its file name. */
int ex_record_write(struct export *ex, const char *key, const char *id, char **name);
void ex_record_remove(struct export *ex, const char *name);
/* Remembers an upload whose abort failed (mutex held; takes key, id and record). */
void ex_orphan_add(struct export *ex, char *key, char *id, char *record);
/* Aborts the remembered uploads (mutex held; released meanwhile). */
void ex_abort_orphans(struct export *ex);
/* At close: one warning per upload still not aborted, then frees the list (mutex NOT held). */
void ex_orphans_report(struct export *ex);
/* At open, before the workers start: aborts the uploads recorded by an earlier run. */
void ex_recover_uploads(struct export *ex);

/* ---- upload.c: part queue, workers, multipart uploads, finalize (mutex held) ---- */
int ex_workers_start(struct export *ex);
void ex_workers_stop(struct export *ex);   /* mutex NOT held */
int ex_queue_ready_parts(struct export *ex, struct xnode *n);
void ex_mpu_reset(struct xnode *n);
/* Aborts n's multipart upload once n is idle (owns n meanwhile; mutex released for S3). */
void ex_abort_idle(struct export *ex, struct xnode *n);
/* Before an object is stored under key (an upload, or a rename's copy onto it), mutex held: a
 * node renamed away while its multipart upload was under way still has that upload under key,
 * and completing it there would overwrite (then delete) the new object; such an upload is
 * aborted (that node uploads under its new name instead). Returns 1 when one was aborted (the
 * mutex was released meanwhile: the caller looks again), 0 when none is left. self is skipped. */
int ex_claim_key(struct export *ex, const struct xnode *self, const char *key);
/* Stores n (caller holds a reference; owns n meanwhile; mutex released for S3). 0 when the
 * object holds the staged bytes and metadata, else a negative errno (staged data kept). */
int ex_finalize(struct export *ex, struct xnode *n);

/* ---- known.c: the last second's knowledge (mutex ex->mu may be held unless said) ---- */
int64_t ex_mono_ms(void);
/* 1: *a is path's fresh (or pending) attributes; -ENOENT: a fresh listing of its folder lacks
 * it; 0: unknown. */
int ex_known_get(struct export *ex, const char *path, struct export_attr *a);
/* Remembers path's exact attributes (own: stored by this mount, only mode/mtime metadata)
 * and adds its name to its folder's listing. Never waits. */
void ex_known_put(struct export *ex, const char *path, const struct export_attr *a, int own);
void ex_known_add_name(struct export *ex, const char *path);
/* Forgets path's attributes and any pending change (waits for one being stored: ex->mu NOT
 * held). */
void ex_known_forget(struct export *ex, const char *path);
/* 1 with the pending mode/mtime of path (still pending until forgotten), else 0 (ex->mu NOT
 * held: waits for a store in flight). */
int ex_known_take(struct export *ex, const char *path, mode_t *mode, int64_t *mtime_ms);
/* Keeps a mode/mtime change of a file this mount stored pending: 1, or 0 when it cannot (the
 * caller stores it now). ex->mu NOT held. */
int ex_known_defer_meta(struct export *ex, const char *path, int set_mode, mode_t mode,
			int set_time, int64_t mtime_ms);
/* Monotonic ms when the next pending change is due, INT64_MAX when none. */
int64_t ex_known_next_due(struct export *ex);
/* Stores the pending changes due now (all: every one). First error or 0 (ex->mu NOT held). */
int ex_known_flush(struct export *ex, int all);
/* Stores path's pending change now (fsync). 0 or the store's error (ex->mu NOT held). */
int ex_known_flush_path(struct export *ex, const char *path);
/* Before path's object changes otherwise (an open for writing, a truncate): stores its pending
 * change now, then forgets it. 0 or the store's error (ex->mu NOT held). */
int ex_known_settle(struct export *ex, const char *path);
/* Lists the folder of path whole (at most once a second; again: only a folder listed before).
 * 1 when a new listing is kept (ex->mu NOT held). */
int ex_known_load_dir(struct export *ex, const char *path, int again);
/* At close, single-threaded: one warning per change still pending, frees everything. */
void ex_known_free(struct export *ex);

/* ---- journal.c: journal entries STAGING/kvsfs-XXXXXX.stage.wb (docs/EXPORT.md) ---- */
/* Writes the entry of stage_path (mutex NOT held). At close (data_fd: the staging file) the
 * data, the entry and the folder are flushed before it returns; a rewrite (data_fd -1, after
 * a rename/chmod/utimens) writes the newer entry atomically and without any flush (the xattr
 * user.kvsfs.newer of the entry, else a complete temp file renamed to .wbn), so a crash keeps
 * the close-time or the new entry. 0 or -errno (logged). */
int ex_journal_write(struct export *ex, const char *stage_path, const char *path, uint64_t size,
		     mode_t mode, int64_t mtime_ms, const char *sha, int data_fd);
/* Removes the entries of stage_path, close-time first (mutex NOT held). */
void ex_journal_remove(const char *stage_path);
/* At open, before any thread: a node for each entry whose staged data matches its size and
 * checksum (queued for upload); one warning for each that does not (the staging file is then
 * reported as a leftover, never uploaded). */
void ex_journal_resume(struct export *ex);

/* ---- writeback.c: -o export_writeback ---- */
/* Stages n durably (fsync of the data, journal entry) unless already journaled, then queues
 * its upload. Mutex held, caller holds a reference; owns n meanwhile. 0 or -errno. */
int ex_wb_stage(struct export *ex, struct xnode *n);
/* Rewrites n's journal entry after a rename or a mode/mtime change (mutex held, n owned by the
 * caller; released meanwhile) and pushes its upload back by the hold time. */
void ex_wb_rejournal(struct export *ex, struct xnode *n);
int ex_wb_start(struct export *ex);
/* Waits until every journaled upload was tried once (0 or the first error; mutex NOT held). */
int ex_wb_sync(struct export *ex);
/* Uploads what it can within ex->drain_ms, stops the threads; one line for what stays. */
void ex_wb_drain(struct export *ex);
/* A write short of staging space waits for pending uploads (mutex held, n owned): 1 when it
 * may try again, 0 when nothing pending can free space or the wait timed out. */
int ex_wb_wait_space(struct export *ex, const char *path);
int ex_wb_pending(const struct export *ex);
/* pthread_cond_timedwait for ms milliseconds from now (CLOCK_REALTIME deadline). */
void ex_timed_wait(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms);

/* ---- namespace.c ---- */
/* HeadObject KEY, KEY/, then a one-key listing (mutex NOT held). */
int ex_stat_remote(struct export *ex, const char *path, struct export_attr *a);
/* The same answered from known.c when it can (a remote answer is remembered there). */
int ex_stat_cached(struct export *ex, const char *path, struct export_attr *a);

#endif
