/*
 * sizeidx: a persistent map from string keys to int64 values, used for the exact sizes of fragment
 * files learned from downloads, so that `stat` is exact after a restart.
 *
 * Storage: one append-only log, DIR/sizes.log, of lines "KEY\tVALUE\n". VALUE is a decimal int64
 * (optional leading '-') or "-" alone for a removal. KEY is 1..SIZEIDX_KEY_MAX bytes (no NUL),
 * written with '\\' as "\\\\", TAB as "\\t" and LF as "\\n"; every other byte is written as is.
 * The log is read whole at open into a hash table (util/hashmap; the last line for a key wins).
 * A torn last line (no '\n', from a crash during an append) is cut off; malformed complete lines
 * are skipped; either is reported by one warning, and malformed lines are then removed by an
 * immediate compaction. Compaction rewrites the live entries to DIR/sizes.log.tmp, syncs it and
 * renames it over the log; it runs when the log holds more than 2x as many records as live keys
 * (and at least 1024 records); it takes about 0.5 s per million live keys, during which other
 * puts and removes wait (lookups do not), which the 2x rule makes rare. A put that does not change the value appends nothing.
 * Loading a log of 1,000,000 keys takes about 0.3 s of CPU (one read, no rehashing, one block
 * for all loaded entries; see the timing printed by tests/unit/test_sizeidx.c).
 *
 * Durability: each put is one write(2) of one whole line (a failed or short write is rolled back
 * with ftruncate, so the log never holds a torn line in the middle). With sync_ms > 0, a put
 * calls fdatasync when the previous one was more than sync_ms ago; sizeidx_sync() and
 * sizeidx_close() always sync. Losing the last few puts in a crash only costs re-learning sizes.
 *
 * One user per DIR: DIR/sizes.lock is flock'ed while open (a second open fails with -EBUSY).
 * Thread-safety: all functions on one struct sizeidx may be called from any thread. Puts,
 * removes, syncs and compactions take turns at the log file; lookups never wait for the disk.
 * sizeidx_parse_buffer and sizeidx_format_record are pure and reentrant.
 */
#ifndef KVSFS_SIZEIDX_H
#define KVSFS_SIZEIDX_H

#include <stddef.h>
#include <stdint.h>

struct buf;
struct log_ctx;
struct sizeidx;

#define SIZEIDX_KEY_MAX 1024

struct sizeidx_opts {
	const char *dir;      /* directory of sizes.log; created (mode 0700) if missing */
	struct log_ctx *log;  /* may be NULL */
	unsigned sync_ms;     /* 0: puts never fdatasync; else at most one fdatasync per sync_ms */
};

struct sizeidx_stats {
	uint64_t live;         /* keys with a value */
	uint64_t records;      /* records in the log file (what compaction shrinks) */
	uint64_t compactions;  /* since open, including one at open */
	uint64_t file_bytes;   /* size of the log file */
};

/* Opens (creating if needed) DIR/sizes.log and loads it. On success *out owns the index (release
 * with sizeidx_close) and 0 is returned; otherwise a negative errno with one sentence in err:
 * -EBUSY when another user holds DIR/sizes.lock, -EINVAL for bad options, -ENOMEM, or the errno of
 * the failing system call. Malformed content never fails the open (see above). */
int sizeidx_open(const struct sizeidx_opts *o, struct sizeidx **out, char *err, size_t errlen);
/* Syncs and closes; NULL is a no-op. */
void sizeidx_close(struct sizeidx *s);

/* Sets key to value (appending one record when the value changes). Returns 0, -EINVAL /
 * -ENAMETOOLONG for a bad key, -ENOMEM, or the errno of the failed write (the map is unchanged). */
int sizeidx_put(struct sizeidx *s, const char *key, int64_t value);
/* Looks key up: 0 with *value set, or -ENOENT (also for a bad key). */
int sizeidx_get(struct sizeidx *s, const char *key, int64_t *value);
/* Removes key (appending a removal record). Returns 0, -ENOENT when absent, -EINVAL, or -errno. */
int sizeidx_remove(struct sizeidx *s, const char *key);
/* fdatasyncs the log. Returns 0 or -errno. */
int sizeidx_sync(struct sizeidx *s);
/* Rewrites the log with only live entries now. Returns 0 or -errno (the old log is kept). */
int sizeidx_compact(struct sizeidx *s);
/* Fills *st with a snapshot. */
void sizeidx_stats(struct sizeidx *s, struct sizeidx_stats *st);

/* ---- the log format, exposed for tests and the fuzz target ---- */

/* Called per well-formed record: key is NUL-terminated (keylen bytes, unescaped; valid only
 * during the call); deleted is 1 for a removal (value is then 0). A non-zero return stops the
 * parse and is returned by sizeidx_parse_buffer. */
typedef int (*sizeidx_record_fn)(void *arg, const char *key, size_t keylen, int64_t value,
		int deleted);

struct sizeidx_parse_result {
	size_t good_len;   /* bytes up to and including the last '\n' (what a load keeps) */
	size_t records;    /* well-formed records passed to fn */
	size_t bad_lines;  /* complete lines that were malformed (skipped) */
	int torn;          /* 1 when bytes follow the last '\n' (ignored) */
};

/* Parses a log held in memory (any bytes). Fills *res (may be NULL). Returns 0, or the first
 * non-zero return of fn. Never reads outside data[0..len). */
int sizeidx_parse_buffer(const char *data, size_t len, sizeidx_record_fn fn, void *arg,
		struct sizeidx_parse_result *res);
/* Appends one record line (escaped key, value or "-" when deleted, '\n') to out. Returns 0,
 * -EINVAL / -ENAMETOOLONG for a bad key (empty, too long), or -ENOMEM. */
int sizeidx_format_record(struct buf *out, const char *key, size_t keylen, int64_t value,
		int deleted);

#endif
