/*
 * Unit tests for sflight with threads: waiters share one leader's result (errno, number and a
 * refcounted value, freed exactly once), a finished key starts a new generation, different keys
 * run in parallel, kept results, a leader handing its call to a worker thread, sflight_free
 * waiting for a call in progress, and a stress run checking that two leaders of one key never
 * overlap. Waits are on sflight_waiters (no sleeps that decide an outcome).
 */
#include "check.h"

#include "kvsfs/sflight.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- a refcounted value ---- */

struct val {
	int refs;
	int payload;
};

static int vals_freed;

static void val_ref(void *p)
{
	__atomic_add_fetch(&((struct val *)p)->refs, 1, __ATOMIC_ACQ_REL);
}

static void val_unref(void *p)
{
	struct val *v = p;
	if (__atomic_sub_fetch(&v->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		__atomic_add_fetch(&vals_freed, 1, __ATOMIC_ACQ_REL);
		free(v);
	}
}

static const struct sflight_opts val_opts = { val_ref, val_unref };

static void pause_a_little(void)
{
	struct timespec ts = { 0, 1000000 };
	nanosleep(&ts, NULL);
}

/* Spins until n callers wait on key. */
static void await_waiters(struct sflight *sf, const char *key, int n)
{
	while (sflight_waiters(sf, key) < n)
		pause_a_little();
}

/* ---- many waiters, one leader ---- */

#define NTHREADS 8

struct joiner {
	struct sflight *sf;
	const char *key;
	int led;
	struct sflight_result res;
	int payload;
};

static void *join_thread(void *arg)
{
	struct joiner *j = arg;
	struct sflight_call *call;
	int r = sflight_join(j->sf, j->key, &call, &j->res);
	j->led = r == 1;
	if (r == 0 && j->res.value) {
		j->payload = ((struct val *)j->res.value)->payload;
		sflight_result_release(j->sf, &j->res);
	}
	return NULL;
}

static void test_waiters_share_one_result(int err)
{
	struct sflight *sf;
	CHECK_INT(sflight_new(&val_opts, &sf), 0, "new");
	struct sflight_call *call;
	struct sflight_result res;
	CHECK_INT(sflight_join(sf, "frag/s/1", &call, &res), 1, "the first caller leads");
	CHECK(sflight_busy(sf, "frag/s/1") && !sflight_busy(sf, "frag/s/2"), "busy only for its key");
	pthread_t t[NTHREADS];
	struct joiner j[NTHREADS];
	for (int i = 0; i < NTHREADS; i++) {
		j[i] = (struct joiner){ .sf = sf, .key = "frag/s/1" };
		pthread_create(&t[i], NULL, join_thread, &j[i]);
	}
	await_waiters(sf, "frag/s/1", NTHREADS);
	struct val *v = calloc(1, sizeof(*v));
	v->refs = 1;
	v->payload = 77;
	vals_freed = 0;
	sflight_finish(sf, call, &(struct sflight_result){ .err = err, .n = 1234, .value = v }, 0);
	int shared = 1;
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(t[i], NULL);
		shared &= !j[i].led && j[i].res.err == err && j[i].res.n == 1234 && j[i].payload == 77;
	}
	CHECK(shared, "%d waiters got the leader's result (err %d, n, value)", NTHREADS, err);
	CHECK_INT(vals_freed, 1, "the value is freed once, after the last waiter released it");
	CHECK(!sflight_busy(sf, "frag/s/1"), "the key is free once finished");
	CHECK_INT(sflight_join(sf, "frag/s/1", &call, &res), 1, "the next caller starts a new generation");
	sflight_finish(sf, call, &(struct sflight_result){ 0 }, 0);
	sflight_free(sf);
}

/* ---- different keys do not wait for each other ---- */

static void test_keys_independent(void)
{
	struct sflight *sf;
	sflight_new(NULL, &sf);
	struct sflight_call *a, *b;
	struct sflight_result res;
	CHECK_INT(sflight_join(sf, "clip/a", &a, &res), 1, "leader of a");
	CHECK_INT(sflight_join(sf, "clip/b", &b, &res), 1, "leader of b while a is in progress");
	CHECK_INT(sflight_lead(sf, "clip/a", &(struct sflight_call *){ NULL }), -EEXIST,
		  "lead on a key in progress: EEXIST");
	sflight_finish(sf, b, &(struct sflight_result){ .n = 2 }, 0);
	sflight_finish(sf, a, &(struct sflight_result){ .n = 1 }, 0);
	CHECK(!sflight_busy(sf, "clip/a") && !sflight_busy(sf, "clip/b"), "both done");
	sflight_free(sf);
}

/* ---- kept results ---- */

static void test_keep(void)
{
	struct sflight *sf;
	sflight_new(&val_opts, &sf);
	struct sflight_call *call;
	struct sflight_result res = { 0 };
	sflight_join(sf, "hour/1", &call, &res);
	struct val *v = calloc(1, sizeof(*v));
	v->refs = 1;
	v->payload = 5;
	vals_freed = 0;
	sflight_finish(sf, call, &(struct sflight_result){ .err = -ENOENT, .value = v }, 1);
	CHECK_INT(sflight_join(sf, "hour/1", &call, &res), 0, "a kept result is returned at once");
	CHECK(res.err == -ENOENT && res.value == v, "with its errno and value");
	sflight_result_release(sf, &res);
	CHECK(res.value == NULL, "release clears the value");
	CHECK_INT(sflight_lead(sf, "hour/1", &call), -EEXIST, "lead on a kept key: EEXIST");
	CHECK(sflight_busy(sf, "hour/1"), "busy while kept");
	CHECK_INT(vals_freed, 0, "kept value alive");
	sflight_forget(sf, "hour/1");
	CHECK_INT(vals_freed, 1, "forget frees it");
	CHECK_INT(sflight_lead(sf, "hour/1", &call), 0, "after forget a new leader");
	sflight_forget(sf, "hour/1"); /* in progress: left alone */
	CHECK(sflight_busy(sf, "hour/1"), "forget does not drop a call in progress");
	sflight_finish(sf, call, &(struct sflight_result){ .n = 9 }, 1);
	sflight_free(sf); /* drops the kept result */
	CHECK(1, "free with a kept result");
}

/* ---- the leader hands its call to a worker and waits for it ---- */

struct handoff {
	struct sflight *sf;
	struct sflight_call *call;
	const char *key;
	int extra_waiters;
	int finished;
};

static void *worker(void *arg)
{
	struct handoff *h = arg;
	if (h->extra_waiters < 0) {
		/* give a wrong sflight_free time to return early */
		struct timespec ts = { 0, 50000000 };
		nanosleep(&ts, NULL);
	} else {
		await_waiters(h->sf, h->key, 1 + h->extra_waiters); /* the leader and the others */
	}
	__atomic_store_n(&h->finished, 1, __ATOMIC_RELEASE);
	sflight_finish(h->sf, h->call, &(struct sflight_result){ .err = -EIO, .n = 3 }, 0);
	return NULL;
}

static void test_hold_and_wait(void)
{
	struct sflight *sf;
	sflight_new(NULL, &sf);
	struct handoff h = { .sf = sf, .key = "frag/s/9", .extra_waiters = 2 };
	CHECK_INT(sflight_lead(sf, h.key, &h.call), 0, "lead");
	sflight_hold(sf, h.call);
	pthread_t w, t[2];
	struct joiner j[2];
	for (int i = 0; i < 2; i++) {
		j[i] = (struct joiner){ .sf = sf, .key = h.key };
		pthread_create(&t[i], NULL, join_thread, &j[i]);
	}
	pthread_create(&w, NULL, worker, &h);
	struct sflight_result res;
	sflight_wait(sf, h.call, &res);
	CHECK(res.err == -EIO && res.n == 3, "the holder gets the worker's result");
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	pthread_join(w, NULL);
	CHECK(j[0].res.err == -EIO && j[1].res.err == -EIO && !j[0].led && !j[1].led,
	      "so do the other waiters");
	sflight_free(sf);
}

/* ---- sflight_free waits for a call in progress ---- */

static void test_free_waits(void)
{
	struct sflight *sf;
	sflight_new(NULL, &sf);
	struct handoff h = { .sf = sf, .key = "k", .extra_waiters = -1 }; /* no waiter to await */
	sflight_lead(sf, h.key, &h.call);
	pthread_t w;
	pthread_create(&w, NULL, worker, &h);
	sflight_free(sf);
	CHECK_INT(__atomic_load_n(&h.finished, __ATOMIC_ACQUIRE), 1,
		  "free returned only after the leader finished");
	pthread_join(w, NULL);
}

/* ---- stress: leaders of one key never overlap ---- */

#define SKEYS 5

struct stress {
	struct sflight *sf;
	int active[SKEYS];      /* leaders working on each key right now */
	int overlaps;
	int generations;
	int bad_results;
	unsigned seed;
};

static void *stress_thread(void *arg)
{
	struct stress *s = arg;
	unsigned seed = __atomic_add_fetch(&s->seed, 7919, __ATOMIC_RELAXED);
	for (int i = 0; i < 2000; i++) {
		int k = (int)(rand_r(&seed) % SKEYS);
		char key[16] = "key-";
		key[4] = (char)('0' + k);
		key[5] = '\0';
		struct sflight_call *call;
		struct sflight_result res;
		int r = sflight_join(s->sf, key, &call, &res);
		if (r == 1) {
			if (__atomic_add_fetch(&s->active[k], 1, __ATOMIC_ACQ_REL) != 1)
				__atomic_add_fetch(&s->overlaps, 1, __ATOMIC_RELAXED);
			int gen = __atomic_add_fetch(&s->generations, 1, __ATOMIC_RELAXED);
			if (rand_r(&seed) % 4 == 0)
				sched_yield();
			__atomic_sub_fetch(&s->active[k], 1, __ATOMIC_ACQ_REL);
			sflight_finish(s->sf, call, &(struct sflight_result){
				.err = gen % 3 ? 0 : -EAGAIN, .n = (uint64_t)(k * 1000000 + gen) }, 0);
		} else if (r == 0) {
			/* the number tells the key; the errno follows from the generation */
			int gen = (int)(res.n % 1000000);
			if ((int)(res.n / 1000000) != k || res.err != (gen % 3 ? 0 : -EAGAIN))
				__atomic_add_fetch(&s->bad_results, 1, __ATOMIC_RELAXED);
		} else {
			__atomic_add_fetch(&s->bad_results, 1, __ATOMIC_RELAXED);
		}
	}
	return NULL;
}

static void test_stress(void)
{
	struct stress s = { .seed = 1 };
	sflight_new(NULL, &s.sf);
	pthread_t t[NTHREADS];
	for (int i = 0; i < NTHREADS; i++)
		pthread_create(&t[i], NULL, stress_thread, &s);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	CHECK_INT(s.overlaps, 0, "no two leaders of one key at once (%d generations for %d joins)",
		  s.generations, NTHREADS * 2000);
	CHECK_INT(s.bad_results, 0, "every waiter got the result of its own key");
	for (int k = 0; k < SKEYS; k++) {
		char key[8] = "key-";
		key[4] = (char)('0' + k);
		key[5] = '\0';
		if (sflight_busy(s.sf, key))
			s.bad_results++;
	}
	CHECK_INT(s.bad_results, 0, "nothing left in flight");
	sflight_free(s.sf);
}

int main(void)
{
	test_waiters_share_one_result(0);
	test_waiters_share_one_result(-EIO);
	test_keys_independent();
	test_keep();
	test_hold_and_wait();
	test_free_waits();
	test_stress();
	return check_done();
}
