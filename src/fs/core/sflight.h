/*
 * sflight: single flight for the fs core (a minimal private module, kept apart so that the
 * shared util/sflight can replace it without touching its callers).
 *
 * One generation of work per key at a time. The first caller of sflight_do for a key (the
 * leader) runs the work with no lock held; callers arriving while it runs (the waiters) sleep on
 * the generation's condition variable and share its result: the errno, and the value through a
 * reference the leader takes for each of them. When the work ends the generation leaves the set,
 * so the next caller starts a new one: work that fills a cache should look in the cache first.
 *
 * Invariants: a generation is in the set exactly while its work runs; the set's mutex guards the
 * set and every generation's fields and is never held while work runs; a generation is freed by
 * the last of its leader and its waiters. Thread-safe.
 */
#ifndef KVSFS_FS_CORE_SFLIGHT_H
#define KVSFS_FS_CORE_SFLIGHT_H

struct sflight;

/* The work of a generation: returns 0 and *val (a reference the leader owns, may be NULL), or a
 * negative errno. Runs on the leader's thread with no sflight lock held. */
typedef int (*sflight_work_fn)(void *arg, void **val);
/* Takes one more reference on a value for a waiter (called under the set's mutex: must not
 * block). NULL when values are not shared. */
typedef void (*sflight_ref_fn)(void *val);

/* Creates an empty set. Returns 0 and *out, or -ENOMEM. */
int sflight_new(struct sflight **out);
/* Frees the set; no generation may be running. NULL is a no-op. */
void sflight_free(struct sflight *sf);

/*
 * Runs work(arg) as the leader of key's generation, or joins the one in progress. Returns the
 * generation's result: 0 with *val (the caller owns one reference; NULL when the work gave
 * none), or its negative errno. Out of memory for a new generation runs the work unshared.
 */
int sflight_do(struct sflight *sf, const char *key, sflight_work_fn work, void *arg,
	       sflight_ref_fn ref, void **val);

/* How many callers wait on key's generation right now (0 when none runs): for tests and
 * diagnostics. */
unsigned sflight_waiters(struct sflight *sf, const char *key);

#endif
