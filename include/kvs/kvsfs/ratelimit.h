/*
 * ratelimit: client-side request quotas, one sliding one-second window per key
 * (for KVS: "stream\0API"), so kvsfs stays within the service's per-stream TPS limits instead of
 * relying on throttling errors and retries.
 *
 * A window remembers the start times of the last `rate` calls; a caller may start when the
 * oldest of them is at least 1.1 seconds old (a margin for network jitter), otherwise it sleeps until then. Waiting happens
 * outside the lock. Keys are created on first use and kept (a mount has few streams).
 * Thread-safe.
 */
#ifndef KVSFS_RATELIMIT_H
#define KVSFS_RATELIMIT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct ratelimit;

/* Creates a limiter. Returns NULL when out of memory. */
struct ratelimit *ratelimit_new(void);
/* Frees it (NULL allowed). No call may be waiting. */
void ratelimit_free(struct ratelimit *rl);
/*
 * Blocks until a call under key may start without exceeding rate calls per second, then records
 * it. rate <= 0 means unlimited (returns at once). Returns the milliseconds waited, or -ENOMEM.
 */
long ratelimit_acquire(struct ratelimit *rl, const char *key, int rate);

#endif
