/*
 * sflight: single flight for the fs core (see sflight.h for the contract and invariants).
 *
 * Design: a list of running generations under one mutex (few keys are ever in flight at once:
 * one per listing being fetched), each with its own condition variable. The leader publishes
 * done/rc/val under the mutex, takes the waiters' references, broadcasts and leaves; the waiters
 * count themselves out, and whoever is last frees the generation.
 */
#include "sflight.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct generation {
	char *key;
	int done;                  /* the work ended: rc and val are set */
	int rc;
	void *val;
	unsigned waiters;          /* callers sleeping on cv (or not yet counted out) */
	pthread_cond_t cv;
	struct generation *next;
};

struct sflight {
	pthread_mutex_t lock;      /* guards gens and every generation's fields */
	struct generation *gens;   /* the generations whose work runs */
};

int sflight_new(struct sflight **out)
{
	struct sflight *sf = calloc(1, sizeof(*sf));
	if (!sf)
		return -ENOMEM;
	pthread_mutex_init(&sf->lock, NULL);
	*out = sf;
	return 0;
}

void sflight_free(struct sflight *sf)
{
	if (!sf)
		return;
	pthread_mutex_destroy(&sf->lock);
	free(sf);
}

static void generation_free(struct generation *g)
{
	pthread_cond_destroy(&g->cv);
	free(g->key);
	free(g);
}

/* Under sf->lock: sleeps until g's work ends and takes its result. */
static int join(struct sflight *sf, struct generation *g, void **val)
{
	g->waiters++;
	while (!g->done)
		pthread_cond_wait(&g->cv, &sf->lock);
	int rc = g->rc;
	*val = rc == 0 ? g->val : NULL;
	if (--g->waiters == 0)
		generation_free(g); /* the leader has left */
	return rc;
}

int sflight_do(struct sflight *sf, const char *key, sflight_work_fn work, void *arg,
	       sflight_ref_fn ref, void **val)
{
	*val = NULL;
	pthread_mutex_lock(&sf->lock);
	for (struct generation *g = sf->gens; g; g = g->next) {
		if (strcmp(g->key, key) == 0) {
			int rc = join(sf, g, val);
			pthread_mutex_unlock(&sf->lock);
			return rc;
		}
	}
	struct generation *g = calloc(1, sizeof(*g));
	if (!g || !(g->key = strdup(key))) {
		pthread_mutex_unlock(&sf->lock);
		free(g);
		return work(arg, val); /* correct, only not shared */
	}
	pthread_cond_init(&g->cv, NULL);
	g->next = sf->gens;
	sf->gens = g;
	pthread_mutex_unlock(&sf->lock);

	void *v = NULL;
	int rc = work(arg, &v);

	pthread_mutex_lock(&sf->lock);
	for (struct generation **pp = &sf->gens; *pp; pp = &(*pp)->next) {
		if (*pp == g) {
			*pp = g->next;
			break;
		}
	}
	g->done = 1;
	g->rc = rc;
	g->val = v;
	if (rc == 0 && v && ref)
		for (unsigned i = 0; i < g->waiters; i++)
			ref(v);
	pthread_cond_broadcast(&g->cv);
	if (g->waiters == 0)
		generation_free(g);
	pthread_mutex_unlock(&sf->lock);
	*val = rc == 0 ? v : NULL;
	return rc;
}

unsigned sflight_waiters(struct sflight *sf, const char *key)
{
	unsigned n = 0;
	pthread_mutex_lock(&sf->lock);
	for (struct generation *g = sf->gens; g; g = g->next)
		if (strcmp(g->key, key) == 0)
			n = g->waiters;
	pthread_mutex_unlock(&sf->lock);
	return n;
}
