/* Unit tests for the fs core's private modules: single flight (core/sflight) and the inode table
 * (core/inodes: lifetimes, detach, move, walks). */
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "check.h"
#include "src/fs/core/inodes.h"
#include "kvsfs/sflight.h"

#define THREADS 8

struct shared {
	int refs;                   /* atomic */
	int value;
};

struct flight {
	struct sflight *sf;
	int calls;                  /* atomic: how often the work ran */
	int fail;                   /* the work fails with -EIO */
	unsigned expect;            /* waiters the work waits for */
	struct shared val;
};

static void shared_ref(void *v)
{
	__atomic_add_fetch(&((struct shared *)v)->refs, 1, __ATOMIC_ACQ_REL);
}

static void shared_unref(void *v)
{
	__atomic_sub_fetch(&((struct shared *)v)->refs, 1, __ATOMIC_ACQ_REL);
}

/* The work: waits (at most ~10 s) until the other threads joined, so the sharing is certain. */
static int work(void *arg, void **val)
{
	struct flight *fl = arg;
	struct timespec ms = { 0, 1000000 };
	__atomic_add_fetch(&fl->calls, 1, __ATOMIC_ACQ_REL);
	for (int i = 0; i < 10000 && sflight_waiters(fl->sf, "k") < (int)fl->expect; i++)
		nanosleep(&ms, NULL);
	if (fl->fail)
		return -EIO;
	fl->val.refs = 1;
	fl->val.value = 42;
	*val = &fl->val;
	return 0;
}

struct caller {
	struct flight *fl;
	int rc;
	void *val;
};

static void *call(void *arg)
{
	struct caller *c = arg;
	c->rc = sflight_do(c->fl->sf, "k", work, c->fl, &c->val);
	return NULL;
}

static void run_flight(struct flight *fl, struct caller *c)
{
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++) {
		c[i].fl = fl;
		pthread_create(&t[i], NULL, call, &c[i]);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
}

static void test_sflight(void)
{
	struct flight fl = { .expect = THREADS - 1 };
	struct caller c[THREADS] = { { 0 } };
	static const struct sflight_opts shared = { .ref = shared_ref, .unref = shared_unref };
	CHECK(sflight_new(&shared, &fl.sf) == 0, "sflight_new");
	run_flight(&fl, c);
	int same = 1;
	for (int i = 0; i < THREADS; i++)
		same &= c[i].rc == 0 && c[i].val == &fl.val;
	CHECK_INT(fl.calls, 1, "one generation for %d concurrent callers", THREADS);
	CHECK(same, "every caller got the leader's value");
	CHECK_INT(fl.val.refs, THREADS, "one reference per caller");
	CHECK_INT(sflight_waiters(fl.sf, "k"), 0, "the generation left the set");

	fl.fail = 1;
	fl.calls = 0;
	run_flight(&fl, c);
	int failed = 1;
	for (int i = 0; i < THREADS; i++)
		failed &= c[i].rc == -EIO && c[i].val == NULL;
	CHECK_INT(fl.calls, 1, "a failing generation also runs once");
	CHECK(failed, "every caller shares its errno, without a value");

	void *v;
	fl.fail = 0;
	fl.expect = 0;
	CHECK(sflight_do(fl.sf, "other", work, &fl, &v) == 0 && v == &fl.val,
	      "a lone caller leads");
	sflight_free(fl.sf);
}

static const struct node_ops kind_a = { .kind = "a" }, kind_b = { .kind = "b" };

/* inodes_walk_fn: counts the nodes up to the root. */
static int count_up(void *arg, uint64_t ino, uint64_t parent, const char *name,
		    const struct node_val *val)
{
	(void)ino;
	(void)name;
	(void)val;
	++*(int *)arg;
	return parent == 0 ? 1 : 0;
}

static int is_b(const struct node_val *val, const void *arg)
{
	(void)arg;
	return val->ops == &kind_b;
}

static void test_lifetimes(struct inodes *t)
{
	struct node_val a = { .ops = &kind_a }, b = { .ops = &kind_b };
	struct node_ref r, r2;
	CHECK(inodes_ref(t, 0, "/", &a, 0, 1, &r) == 0 && r.ino == VFS_ROOT_INO, "the root is ino 1");
	CHECK(inodes_ref(t, 1, "x", &a, 0, 1, &r) == 0 && r.ino == 2 && r.parent == 1, "child");
	CHECK(inodes_ref(t, 1, "x", &b, 0, 1, &r2) == 0 && r2.ino == 2 && r2.val.ops == &kind_a,
	      "same name: same node, its kind kept without replace");
	CHECK(inodes_ref(t, 1, "x", &b, 1, 0, &r2) == 0 && r2.val.ops == &kind_b, "replace");
	inodes_forget(t, 2, 1);
	CHECK(inodes_get(t, 2, &r) == 0, "one reference left: still there");
	inodes_forget(t, 2, 1);
	CHECK(inodes_get(t, 2, &r) == -ESTALE, "forgotten at 0");
	CHECK(inodes_ref(t, 1, "x", &a, 0, 1, &r) == 0 && r.ino == 3, "numbers are not reused");

	inodes_detach(t, 1, "x");
	CHECK(inodes_get(t, 3, &r) == 0 && r.parent == 0, "detached: still valid, parent 0");
	CHECK(inodes_ref(t, 1, "x", &a, 0, 1, &r) == 0 && r.ino == 4, "the name starts afresh");
	CHECK(inodes_move(t, 1, "x", 3, "y") == 0 && inodes_ref(t, 3, "y", &a, 0, 0, &r) == 0 &&
	      r.ino == 4, "moved");
	int n = 0;
	CHECK(inodes_walk_up(t, 4, count_up, &n) == 0 && n == 2, "walk up to the detached parent");
	inodes_forget(t, 3, 1);
	CHECK(inodes_walk_up(t, 4, count_up, &n) == -ESTALE, "a missing parent is ESTALE");
}

static void test_many(struct inodes *t)
{
	struct node_val b = { .ops = &kind_b };
	struct node_ref r;
	char name[32];
	int ok = 1;
	uint64_t first = 0, *inos;
	size_t n;
	for (int i = 0; i < 5000; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		ok &= inodes_ref(t, 1, name, &b, 0, 1, &r) == 0;
		if (i == 0)
			first = r.ino;
	}
	CHECK(ok, "5000 nodes made (the tables grow)");
	ok = 1;
	for (int i = 0; i < 5000; i++)
		ok &= inodes_get(t, first + (uint64_t)i, &r) == 0 && r.val.ops == &kind_b;
	CHECK(ok, "every one found by number after growing");
	inodes_select(t, is_b, NULL, &inos, &n);
	CHECK_INT(n, 5000, "select by kind");
	free(inos);
}

int main(void)
{
	struct inodes *t;
	test_sflight();
	CHECK(inodes_new(&t) == 0, "inodes_new");
	test_lifetimes(t);
	test_many(t);
	inodes_free(t);
	return check_done();
}
