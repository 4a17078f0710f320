/*
 * sflight: single flight (contract in include/kvsfs/sflight.h).
 *
 * One mutex guards the map of calls (util/hashmap, keyed by string) and every call's fields;
 * each call has its own condition variable, so finishing one key wakes only its waiters. A call
 * counts its references: one for the leader until it finishes, one per waiter or holder until it
 * has copied the result, one while the call is in the map. The last reference frees it (and
 * drops the value's reference the leader handed over). sf->live counts calls not yet freed, and
 * sf->idle is signalled when it drops, so sflight_free can wait for stragglers.
 */
#include "kvsfs/sflight.h"

#include "kvsfs/hashmap.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct sflight_call {
	struct hashmap_node node;
	pthread_cond_t done_cond;
	unsigned refs;
	unsigned waiters;    /* callers blocked in take_result_locked */
	bool done;
	bool in_map;
	struct sflight_result res;
	char key[];
};

struct sflight {
	struct sflight_opts o;
	pthread_mutex_t lock;
	pthread_cond_t idle;
	struct hashmap calls;
	size_t live;
};

int sflight_new(const struct sflight_opts *o, struct sflight **out)
{
	*out = NULL;
	struct sflight *sf = calloc(1, sizeof(*sf));
	if (!sf)
		return -ENOMEM;
	if (o)
		sf->o = *o;
	if (hashmap_init(&sf->calls, 0) != 0) {
		free(sf);
		return -ENOMEM;
	}
	pthread_mutex_init(&sf->lock, NULL);
	pthread_cond_init(&sf->idle, NULL);
	*out = sf;
	return 0;
}

static int eq_key(const struct hashmap_node *n, const void *key)
{
	return strcmp(hashmap_entry(n, struct sflight_call, node)->key, key) == 0;
}

static struct sflight_call *find_locked(struct sflight *sf, const char *key)
{
	struct hashmap_node *n = hashmap_find(&sf->calls, hashmap_hash_str(key), eq_key, key);
	return n ? hashmap_entry(n, struct sflight_call, node) : NULL;
}

/* Drops one reference; frees the call at the last. Under sf->lock. */
static void unref_locked(struct sflight *sf, struct sflight_call *c)
{
	if (--c->refs > 0)
		return;
	if (c->res.value && sf->o.unref)
		sf->o.unref(c->res.value);
	pthread_cond_destroy(&c->done_cond);
	free(c);
	if (--sf->live == 0)
		pthread_cond_broadcast(&sf->idle);
}

static void unmap_locked(struct sflight *sf, struct sflight_call *c)
{
	if (!c->in_map)
		return;
	hashmap_remove(&sf->calls, &c->node);
	c->in_map = false;
	unref_locked(sf, c);
}

/* A new call for key in the map, led by the caller (refs: leader + map). Under sf->lock. */
static struct sflight_call *start_locked(struct sflight *sf, const char *key)
{
	size_t len = strlen(key);
	struct sflight_call *c = calloc(1, sizeof(*c) + len + 1);
	if (!c)
		return NULL;
	memcpy(c->key, key, len + 1);
	pthread_cond_init(&c->done_cond, NULL);
	c->refs = 2;
	c->in_map = true;
	hashmap_insert(&sf->calls, &c->node, hashmap_hash_str(key));
	sf->live++;
	return c;
}

/* Waits for c to finish, copies its result (with a value reference) and drops the caller's
 * reference. Under sf->lock; the caller holds a reference. */
static void take_result_locked(struct sflight *sf, struct sflight_call *c,
			       struct sflight_result *res)
{
	c->waiters++;
	while (!c->done)
		pthread_cond_wait(&c->done_cond, &sf->lock);
	c->waiters--;
	*res = c->res;
	if (res->value && sf->o.ref)
		sf->o.ref(res->value);
	unref_locked(sf, c);
}

int sflight_join(struct sflight *sf, const char *key, struct sflight_call **call,
		 struct sflight_result *res)
{
	*call = NULL;
	pthread_mutex_lock(&sf->lock);
	struct sflight_call *c = find_locked(sf, key);
	if (c) {
		c->refs++;
		take_result_locked(sf, c, res);
		pthread_mutex_unlock(&sf->lock);
		return 0;
	}
	c = start_locked(sf, key);
	pthread_mutex_unlock(&sf->lock);
	if (!c)
		return -ENOMEM;
	*call = c;
	return 1;
}

int sflight_lead(struct sflight *sf, const char *key, struct sflight_call **call)
{
	*call = NULL;
	pthread_mutex_lock(&sf->lock);
	int rc = 0;
	if (find_locked(sf, key))
		rc = -EEXIST;
	else if (!(*call = start_locked(sf, key)))
		rc = -ENOMEM;
	pthread_mutex_unlock(&sf->lock);
	return rc;
}

int sflight_busy(struct sflight *sf, const char *key)
{
	pthread_mutex_lock(&sf->lock);
	int busy = find_locked(sf, key) != NULL;
	pthread_mutex_unlock(&sf->lock);
	return busy;
}

int sflight_waiters(struct sflight *sf, const char *key)
{
	pthread_mutex_lock(&sf->lock);
	struct sflight_call *c = find_locked(sf, key);
	int n = c && !c->done ? (int)c->waiters : 0;
	pthread_mutex_unlock(&sf->lock);
	return n;
}

void sflight_hold(struct sflight *sf, struct sflight_call *call)
{
	pthread_mutex_lock(&sf->lock);
	call->refs++;
	pthread_mutex_unlock(&sf->lock);
}

void sflight_wait(struct sflight *sf, struct sflight_call *call, struct sflight_result *res)
{
	pthread_mutex_lock(&sf->lock);
	take_result_locked(sf, call, res);
	pthread_mutex_unlock(&sf->lock);
}

void sflight_finish(struct sflight *sf, struct sflight_call *call,
		    const struct sflight_result *res, int keep)
{
	pthread_mutex_lock(&sf->lock);
	call->res = *res;
	call->done = true;
	pthread_cond_broadcast(&call->done_cond);
	if (!keep)
		unmap_locked(sf, call);
	unref_locked(sf, call); /* the leader's */
	pthread_mutex_unlock(&sf->lock);
}

void sflight_forget(struct sflight *sf, const char *key)
{
	pthread_mutex_lock(&sf->lock);
	struct sflight_call *c = find_locked(sf, key);
	if (c && c->done)
		unmap_locked(sf, c);
	pthread_mutex_unlock(&sf->lock);
}

void sflight_result_release(struct sflight *sf, struct sflight_result *res)
{
	if (res->value && sf->o.unref)
		sf->o.unref(res->value);
	res->value = NULL;
}

void sflight_free(struct sflight *sf)
{
	if (!sf)
		return;
	pthread_mutex_lock(&sf->lock);
	struct hashmap_iter it;
	hashmap_iter_init(&it, &sf->calls);
	for (struct hashmap_node *n; (n = hashmap_next(&it));) {
		struct sflight_call *c = hashmap_entry(n, struct sflight_call, node);
		if (c->done)
			unmap_locked(sf, c); /* kept results */
	}
	while (sf->live > 0)
		pthread_cond_wait(&sf->idle, &sf->lock);
	pthread_mutex_unlock(&sf->lock);
	hashmap_destroy(&sf->calls);
	pthread_cond_destroy(&sf->idle);
	pthread_mutex_destroy(&sf->lock);
	free(sf);
}

int sflight_do(struct sflight *sf, const char *key, int (*work)(void *arg, void **value),
	       void *arg, void **value)
{
	struct sflight_call *call = NULL;
	struct sflight_result res = { 0 };
	*value = NULL;
	int rc = sflight_join(sf, key, &call, &res);
	if (rc == 0) {
		*value = res.err ? NULL : res.value;
		return res.err;
	}
	void *v = NULL;
	int err = work(arg, &v);
	if (rc < 0) { /* no call could be made: correct, only not shared */
		*value = err ? NULL : v;
		return err;
	}
	struct sflight_result out = { .err = err, .value = err ? NULL : v };
	if (out.value && sf->o.ref)
		sf->o.ref(out.value); /* the call's own reference; the leader keeps work's */
	sflight_finish(sf, call, &out, 0);
	*value = out.value;
	return err;
}
