/*
 * live: the playback sessions behind MNT/<stream>/live.m3u8 and live.mpd (docs/SEMANTICS.md,
 * "Live playlists").
 *
 * A live session (one per stream and kind, HLS or DASH) holds the current document: the HLS
 * master playlist with every URI made absolute, or the DASH manifest with <BaseURL> and
 * <Location> added. Making it takes three calls (kvs_live_session: GetDataEndpoint,
 * Get*StreamingSessionURL, the GET of the session URL) within one time budget (budget_ms).
 *
 * Single flight: at most one creation per session is in flight. It runs on its own short-lived
 * thread, started on demand by the first caller that needs it (so always after the daemon forked),
 * with no lock held across the network calls; every other caller joins it. What a caller waits
 * for depends on who it is:
 *   - an open (live_open) waits for the creation to end and gets its document or its errno;
 *   - a stat (live_stat, LIVE_STAT) waits until stat_wait_ms after the creation BEGAN, so stats
 *     that join a creation never wait longer than the first one, then answers with the placeholder;
 *   - a listing (LIVE_LISTING) never waits: it only starts the creation, so the stats that follow
 *     it (ls -l) find it under way.
 * A failed creation is remembered for retry_after_ms: stats answer with the placeholder and opens
 * with its errno at once, without a new attempt. A document is renewed (a new session) at 80 % of
 * the session's lifetime; until then every caller shares it.
 *
 * Placeholder (what a stat shows while no current document exists): the size of the previous
 * document during a renewal, else 0 (before the first session, or while the stream is not
 * live); it is flagged inexact so the caller gives it an attribute timeout of 0.
 *
 * All functions are thread-safe. Sessions belong to their set and live until live_set_free.
 */
#ifndef KVSFS_LIVE_H
#define KVSFS_LIVE_H

#include <stddef.h>
#include <stdint.h>

struct kvs_client;
struct log_ctx;
struct live_set;
struct live_session;

#define LIVE_DEFAULT_BUDGET_MS 5000      /* whole creation, retries and pacing included */
#define LIVE_DEFAULT_STAT_WAIT_MS 2000   /* longest a stat waits, from the creation's start */
#define LIVE_DEFAULT_RETRY_AFTER_MS 2000 /* a failure is answered at once for this long */

/* A refcounted immutable document (NUL-terminated after len bytes). */
struct live_doc {
	int refs;
	size_t len;
	char data[];
};

struct live_opts {
	struct kvs_client *kvs;     /* borrowed, must outlive the set */
	struct log_ctx *log;        /* may be NULL */
	int expires_s;              /* session lifetime asked for (Expires) */
	unsigned budget_ms;         /* 0: LIVE_DEFAULT_BUDGET_MS */
	unsigned stat_wait_ms;      /* 0: LIVE_DEFAULT_STAT_WAIT_MS */
	unsigned retry_after_ms;    /* 0: LIVE_DEFAULT_RETRY_AFTER_MS */
	unsigned listing_max;       /* creations a listing may have in flight at once; 0: 8 */
};

enum live_wait {
	LIVE_LISTING,   /* start a creation if needed, never wait */
	LIVE_STAT,      /* start or join one, wait at most stat_wait_ms from its start */
};

struct live_info {
	uint64_t size;      /* the current document's length, or the placeholder */
	int64_t mtime_ms;   /* when the document shown was made (epoch ms); 0 when none */
	int exact;          /* 1: size is the current document's; 0: placeholder */
};

/* Creates an empty set. Returns 0 and *out, -EINVAL (no kvs) or -ENOMEM. */
int live_set_new(const struct live_opts *o, struct live_set **out);
/* Waits for the creations in flight (each bounded by budget_ms), then frees every session and
 * document not referenced elsewhere. NULL is a no-op. */
void live_set_free(struct live_set *set);

/* A new session of stream (copied) and kind (dash 0: HLS, 1: DASH), owned by set. NULL: out of
 * memory. Callers keep one per (stream, kind). */
struct live_session *live_session_new(struct live_set *set, const char *stream, int dash);

/* Attributes for stat/listing (see enum live_wait). Never fails; never waits longer than
 * stat_wait_ms. */
void live_stat(struct live_session *s, enum live_wait w, struct live_info *out);

/*
 * The current document for an open, making (or joining the making of) a session when needed.
 * Returns 0 and *out (a reference: live_doc_unref), -ENODATA when the stream is not live (no
 * fragment in the last 30 s), or the errno of the failed creation (docs/ERRORS.md; -ETIMEDOUT
 * when the budget ran out between calls).
 */
int live_open(struct live_session *s, struct live_doc **out);

/*
 * ON_DEMAND playlists (clips/START-END.m3u8 and .mpd): the current document of the session over
 * range of stream (HLS fMP4 or DASH), made on first use, shared by every caller of the same range,
 * renewed at 80 % of its lifetime like a live one. At most LIVE_RANGE_MAX range sessions are kept
 * per stream and kind (the least recently opened idle one is dropped), so with their renewals and
 * the live session they stay within KVS's 10 active sessions per stream. Returns like live_open;
 * a range without fragments is -ENOENT; -ENOMEM.
 */
#define LIVE_RANGE_MAX 4
struct kvs_range;
int live_range_open(struct live_set *set, const char *stream, int dash,
		    const struct kvs_range *range, struct live_doc **out);

/* Drops a reference; NULL is a no-op. */
void live_doc_unref(struct live_doc *d);

#endif
