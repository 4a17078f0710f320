/*
 * streams: the stream registry of the fs core and the streams' retention windows.
 *
 * The root folder shows one folder per ACTIVE stream that the mount's allow-list and prefix
 * admit, from one ListStreams (all pages) cached meta_ttl seconds. Refreshes are single flight
 * (one ListStreams at a time, its result shared by every caller that came meanwhile; no lock is
 * held across the call). When a refresh fails, the last good list keeps being served.
 *
 * A struct vstream is made the first time a listing shows its stream and lives until
 * streams_free (the kernel's nodes and open files point at it): pointers to it are stable and
 * its name never changes. Its other fields belong to the modules named beside them and are
 * guarded by its lock, which is only ever held to read or write those fields.
 */
#ifndef KVSFS_FS_CORE_STREAMS_H
#define KVSFS_FS_CORE_STREAMS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct kvs_client;
struct kvs_fragment;
struct live_session;
struct log_ctx;
struct streams;

#define VSTREAM_RA_SLOTS 8

/* Read-ahead state of one hour being read (nodes/fragment.c), under the vstream's lock. */
struct vstream_ra {
	int used;                        /* 0: free slot */
	int64_t hour;                    /* the hour's start (wall ms) */
	long last;                       /* index of the last open */
	long first, next;                /* [first, next): indexes already asked for */
	size_t window;                   /* fragments per batch */
	int listed;                      /* nodes/fragments.c: the hour was listed by readdir */
	uint64_t tick;                   /* last use (LRU) */
};

struct vstream {
	char *name;                      /* immutable */
	pthread_mutex_t lock;            /* guards the fields below (never held across a call) */
	int64_t retention_hours;         /* streams.c: from the last listing that showed it */
	int64_t creation_ms;
	struct live_session *hls, *dash; /* nodes/live.c: playback sessions, made on first use */
	int correction_known;            /* sizes.c: true size - predicted model size, learned */
	int64_t correction;
	struct vstream_ra ra[VSTREAM_RA_SLOTS]; /* nodes/fragment.c: read-ahead of recent hours */
	uint64_t ra_tick;                /* nodes/fragment.c: LRU clock of ra */
	int ingest_busy;                 /* nodes/ingest.c: a PutMedia runs (one per stream) */
	pthread_cond_t ingest_cv;        /* nodes/ingest.c: signalled when ingest_busy drops */
	char delete_confirm[257];        /* nodes/manage.c: user.kvs.delete_confirm as set */
	struct vstream *link;            /* streams.c: the registry (under its own lock) */
};

struct streams_opts {
	struct kvs_client *kvs;          /* borrowed */
	struct log_ctx *log;             /* borrowed */
	char *const *allow;              /* NULL-terminated allow-list, or NULL for all */
	const char *prefix;              /* NULL for all */
	int meta_ttl_s;                  /* how long a listing is served from the cache */
};

/* Creates an empty registry (no call). Returns 0 and *out, or -ENOMEM. */
int streams_new(const struct streams_opts *o, struct streams **out);
/* Frees the registry and every vstream. NULL is a no-op. */
void streams_free(struct streams *st);

/* Start-up check: one ListStreams, so a mount that cannot work fails early. Returns 0 or a
 * negative errno with one short sentence in err. */
int streams_check(struct streams *st, char *err, size_t errlen);

/* The vstream of the shown stream called name: 0 and *out, -ENOENT when not shown, or the
 * errno of the listing when there is no list at all yet. */
int streams_lookup(struct streams *st, const char *name, struct vstream **out);

/* The shown streams, in listing order: 0 and *out (a NULL-terminated array the caller frees;
 * the vstreams stay the registry's), or a negative errno as for streams_lookup. */
int streams_shown(struct streams *st, struct vstream ***out);

/*
 * After a "not found" for a stream's data: asks DescribeStream whether the stream itself is
 * gone (ResourceNotFoundException, or DELETING). Returns 1 when it is, and then the next use of
 * the listing refreshes it (the stream's folder goes too); 0 when it exists or the call failed.
 */
int streams_gone(struct streams *st, struct vstream *s);

/* Marks the listing stale: the next use lists the streams again (after mkdir/rmdir of a
 * stream, nodes/manage.c). */
void streams_invalidate(struct streams *st);

/* The stream's creation time (wall ms), from the last listing that showed it. */
int64_t streams_creation_ms(struct vstream *s);

/* Under s->lock: the read-ahead slot of s's hour starting at hour_ms, or else the least recently
 * used slot, reset for that hour (never NULL). */
struct vstream_ra *streams_ra(struct vstream *s, int64_t hour_ms);

/* Retention window of s at wall time now: [*from, *to]; empty (from > to) when s keeps no data. */
void streams_window(struct vstream *s, int64_t now, int64_t *from, int64_t *to);
/* 1 when the UTC day starting at day_ms overlaps the window. */
int streams_day_in_window(struct vstream *s, int64_t day_ms, int64_t now);
/* 1 when the UTC hour starting at hour_ms overlaps the window. */
int streams_hour_in_window(struct vstream *s, int64_t hour_ms, int64_t now);
/* 1 when f has left the retention (KVS counts it on server time), so a cached listing of a past
 * hour never shows a fragment the service no longer has. */
int streams_expired(struct vstream *s, const struct kvs_fragment *f, int64_t now);

#endif
