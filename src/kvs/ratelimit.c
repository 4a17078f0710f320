/*
 * ratelimit: per-key sliding one-second windows (see include/kvsfs/ratelimit.h).
 *
 * Each key holds a ring of the last RATELIMIT_MAX_RATE start times. To admit a call at rate r,
 * the r-th most recent start must be >= 1 s ago; the slot is reserved under the lock (with the
 * future start time when the caller must wait), so concurrent callers queue in order and never
 * exceed the rate even while sleeping.
 */
#include "kvsfs/ratelimit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kvsfs/clk.h"

#define RATELIMIT_MAX_RATE 64
/* One second plus a margin for network jitter, so the server never counts rate+1 in a second. */
#define RATELIMIT_WINDOW_NS 1100000000LL

struct rl_key {
	char *key;
	int64_t starts[RATELIMIT_MAX_RATE]; /* ring of reserved start times, ns */
	unsigned next;                      /* ring position of the oldest entry */
	struct rl_key *link;
};

struct ratelimit {
	pthread_mutex_t lock;
	struct rl_key *keys;
};

struct ratelimit *ratelimit_new(void)
{
	struct ratelimit *rl = calloc(1, sizeof(*rl));
	if (rl)
		pthread_mutex_init(&rl->lock, NULL);
	return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
	if (!rl)
		return;
	struct rl_key *k = rl->keys;
	while (k) {
		struct rl_key *n = k->link;
		free(k->key);
		free(k);
		k = n;
	}
	pthread_mutex_destroy(&rl->lock);
	free(rl);
}

long ratelimit_acquire(struct ratelimit *rl, const char *key, int rate)
{
	if (rate <= 0)
		return 0;
	if (rate > RATELIMIT_MAX_RATE)
		rate = RATELIMIT_MAX_RATE;
	pthread_mutex_lock(&rl->lock);
	struct rl_key *k;
	for (k = rl->keys; k; k = k->link)
		if (strcmp(k->key, key) == 0)
			break;
	if (!k) {
		k = calloc(1, sizeof(*k));
		if (!k || !(k->key = strdup(key))) {
			free(k);
			pthread_mutex_unlock(&rl->lock);
			return -ENOMEM;
		}
		for (int i = 0; i < RATELIMIT_MAX_RATE; i++)
			k->starts[i] = INT64_MIN / 2;
		k->link = rl->keys;
		rl->keys = k;
	}
	/* The rate-th most recent start is at ring index (newest - rate + 1). The ring's newest is
	 * at next-1; entries older than rate are irrelevant. */
	unsigned newest = (k->next + RATELIMIT_MAX_RATE - 1) % RATELIMIT_MAX_RATE;
	unsigned idx = (newest + RATELIMIT_MAX_RATE - (unsigned)rate + 1) % RATELIMIT_MAX_RATE;
	int64_t now = clk_mono_ns();
	int64_t start = k->starts[idx] + RATELIMIT_WINDOW_NS;
	if (start < now)
		start = now;
	/* also never before the newest reservation (keeps order) */
	if (start < k->starts[newest])
		start = k->starts[newest];
	k->starts[k->next] = start;
	k->next = (k->next + 1) % RATELIMIT_MAX_RATE;
	pthread_mutex_unlock(&rl->lock);

	int64_t wait = start - now;
	clk_sleep_ns(wait);
	return (long)(wait / 1000000);
}
