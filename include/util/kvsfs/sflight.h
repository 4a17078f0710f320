/*
 * sflight: single flight. At most one generation of a thing (a fragment download, a clip, a
 * listing, a session) is in progress per key, and everyone who wants it meanwhile shares it.
 *
 * The first caller for a key becomes the leader: it gets a call handle and does the work without
 * holding any lock of this module (or, ideally, of its own). Later callers for the same key wait
 * on the call's condition variable and, when the leader calls sflight_finish, get its result: an
 * errno, a number (say, a size) and an optional shared value, refcounted through the ref/unref
 * functions given at creation. By default the key's entry disappears when the call finishes, so
 * the next caller starts a new generation (the cache that holds the outcome is the caller's);
 * finishing with keep = 1 leaves the result under the key (a positive or negative cache) until
 * sflight_forget.
 *
 * The leader may hand the call to another thread (e.g. a worker that downloads a batch) and still
 * wait for it: sflight_hold before handing it over, then sflight_wait.
 *
 * Invariants (under the object's mutex): a key maps to at most one call; a call stays in the map
 * from its start until it is finished (or, when kept, until forgotten); a call is freed when the
 * leader has finished it, no waiter or holder is left and it is not in the map. Waiters block only
 * on a call's condition variable, never while holding a caller's lock (callers must not hold one
 * across sflight_join or sflight_wait). A leader that never finishes leaves its waiters blocked:
 * leaders finish on every path.
 *
 * Thread-safety: every function may be called from any thread.
 */
#ifndef KVSFS_SFLIGHT_H
#define KVSFS_SFLIGHT_H

#include <stdint.h>

struct sflight;
struct sflight_call;

struct sflight_opts {
	/* For shared values: ref takes one more reference, unref drops one. Both NULL: values are
	 * passed as they are and their lifetime is the caller's business. */
	void (*ref)(void *value);
	void (*unref)(void *value);
};

/* What a call produced, as the leader reports it and each waiter receives it. */
struct sflight_result {
	int err;          /* 0 or a negative errno */
	uint64_t n;       /* a number the leader reports (e.g. a size); 0 when unused */
	void *value;      /* optional shared value (a reference of its own for each receiver) */
};

/* Creates an empty set of flights; o may be NULL (no shared values). Returns 0 and *out (free
 * with sflight_free) or -ENOMEM. */
int sflight_new(const struct sflight_opts *o, struct sflight **out);
/* Waits until every call in progress has finished and its waiters have taken their results,
 * drops kept results, then frees sf. NULL is a no-op. */
void sflight_free(struct sflight *sf);

/*
 * Joins the flight of key. When none is in progress the caller becomes the leader: returns 1
 * with *call, and must call sflight_finish on every path. Otherwise blocks until the call in
 * progress finishes (or takes a kept result at once) and returns 0 with its result in *res
 * (release a value with sflight_result_release). Returns -ENOMEM when a new call cannot be made.
 */
int sflight_join(struct sflight *sf, const char *key, struct sflight_call **call,
		 struct sflight_result *res);
/* Becomes the leader of key only if no call exists for it (in progress or kept); never blocks.
 * Returns 0 with *call, -EEXIST, or -ENOMEM. */
int sflight_lead(struct sflight *sf, const char *key, struct sflight_call **call);
/* Returns 1 when a call for key is in progress or kept, else 0. */
int sflight_busy(struct sflight *sf, const char *key);
/* Number of callers blocked waiting for key's call in progress (for tests and statistics). */
int sflight_waiters(struct sflight *sf, const char *key);

/* Takes a ticket to wait on call later with sflight_wait (for a leader that hands the work to
 * another thread). Must be called before the call is finished. */
void sflight_hold(struct sflight *sf, struct sflight_call *call);
/* Waits until call (held with sflight_hold) is finished, fills *res as sflight_join does and
 * gives the ticket back. */
void sflight_wait(struct sflight *sf, struct sflight_call *call, struct sflight_result *res);

/* Finishes call with *res (copied; a value's reference passes to the call, which shares it with
 * each waiter and drops it when freed) and wakes its waiters. keep = 0: the key is free for a new
 * call at once; keep = 1: the result stays under the key (later joins get it without waiting)
 * until sflight_forget. The leader must not use call afterwards. */
void sflight_finish(struct sflight *sf, struct sflight_call *call,
		    const struct sflight_result *res, int keep);
/* Drops the kept result of key, if any (a call in progress is left alone). */
void sflight_forget(struct sflight *sf, const char *key);

/*
 * The whole pattern in one call, for work done on the caller's thread: as the leader, runs
 * work(arg, &value) with no lock held and shares its result; as a waiter, blocks for the
 * leader's. Returns the work's result (0 or -errno) and, on 0, *value with a reference of the
 * caller's own (work returns one for the leader; waiters get theirs through the ref function of
 * sflight_opts). When no call can be made (-ENOMEM), the work runs unshared.
 */
int sflight_do(struct sflight *sf, const char *key, int (*work)(void *arg, void **value),
	       void *arg, void **value);

/* Releases the value reference a waiter received (calls unref); clears res->value. */
void sflight_result_release(struct sflight *sf, struct sflight_result *res);

#endif
