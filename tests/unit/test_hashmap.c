/*
 * Unit tests for hashmap: basic operations, an object in two maps at once, a chain of colliding
 * hashes, reserve, iteration with removal, and a reference-model property test: random
 * sequences of insert / remove / lookup / iterate on string keys and on u64 keys, compared after
 * every step with a plain array that says which keys are present (seeded, so a failure
 * reproduces; KVSFS_TEST_SEED overrides the seed).
 */
#include "check.h"

#include "kvsfs/hashmap.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An object indexed by its number and by its (parent, name), like an inode. */
struct obj {
	uint64_t id;
	uint64_t parent;
	char name[32];
	struct hashmap_node by_id, by_name;
	bool in;
};

struct name_key {
	uint64_t parent;
	const char *name;
};

static int eq_id(const struct hashmap_node *n, const void *key)
{
	return hashmap_entry(n, struct obj, by_id)->id == *(const uint64_t *)key;
}

static int eq_name(const struct hashmap_node *n, const void *key)
{
	const struct obj *o = hashmap_entry(n, struct obj, by_name);
	const struct name_key *k = key;
	return o->parent == k->parent && strcmp(o->name, k->name) == 0;
}

static uint64_t name_hash(uint64_t parent, const char *name)
{
	return hashmap_hash_bytes(parent, name, strlen(name));
}

static struct obj *find_id(struct hashmap *m, uint64_t id)
{
	struct hashmap_node *n = hashmap_find(m, hashmap_hash_u64(id), eq_id, &id);
	return n ? hashmap_entry(n, struct obj, by_id) : NULL;
}

static struct obj *find_name(struct hashmap *m, uint64_t parent, const char *name)
{
	struct name_key k = { parent, name };
	struct hashmap_node *n = hashmap_find(m, name_hash(parent, name), eq_name, &k);
	return n ? hashmap_entry(n, struct obj, by_name) : NULL;
}

static void test_basic_and_two_maps(void)
{
	struct hashmap ids, names;
	CHECK_INT(hashmap_init(&ids, 0), 0, "init by id");
	CHECK_INT(hashmap_init(&names, 0), 0, "init by name");
	struct obj v[100];
	for (int i = 0; i < 100; i++) {
		v[i] = (struct obj){ .id = (uint64_t)i * 7919, .parent = (uint64_t)(i % 3) };
		snprintf(v[i].name, sizeof(v[i].name), "n%d", i / 3);
		hashmap_insert(&ids, &v[i].by_id, hashmap_hash_u64(v[i].id));
		hashmap_insert(&names, &v[i].by_name, name_hash(v[i].parent, v[i].name));
	}
	CHECK_INT(hashmap_count(&ids), 100, "100 by id");
	CHECK_INT(hashmap_count(&names), 100, "100 by name");
	CHECK(ids.nbuckets >= 100, "grew to %zu buckets", ids.nbuckets);
	int ok = 1;
	for (int i = 0; i < 100; i++) {
		ok &= find_id(&ids, v[i].id) == &v[i];
		ok &= find_name(&names, v[i].parent, v[i].name) == &v[i];
	}
	CHECK(ok, "every object found by id and by (parent, name)");
	CHECK(find_id(&ids, 1) == NULL, "absent id");
	CHECK(find_name(&names, 5, "n0") == NULL, "absent parent");
	CHECK(find_name(&names, 0, "n99") == NULL, "absent name");
	hashmap_remove(&ids, &v[10].by_id);
	hashmap_remove(&names, &v[10].by_name);
	CHECK(find_id(&ids, v[10].id) == NULL && find_name(&names, v[10].parent, v[10].name) == NULL,
	      "removed from both");
	CHECK(find_id(&ids, v[11].id) == &v[11], "neighbour still there");
	CHECK_INT(hashmap_count(&ids), 99, "count after remove");
	hashmap_destroy(&ids);
	hashmap_destroy(&names);
	hashmap_destroy(&names); /* idempotent */
	CHECK(names.buckets == NULL && names.count == 0, "destroy empties");
}

/* Every key hashes to 42: one chain holds them all. */
static void test_collisions(void)
{
	struct hashmap m;
	hashmap_init(&m, 4);
	struct obj v[50];
	for (int i = 0; i < 50; i++) {
		v[i] = (struct obj){ .id = (uint64_t)i };
		hashmap_insert(&m, &v[i].by_id, 42);
	}
	int ok = 1;
	for (int i = 0; i < 50; i++) {
		uint64_t id = (uint64_t)i;
		struct hashmap_node *n = hashmap_find(&m, 42, eq_id, &id);
		ok &= n == &v[i].by_id;
	}
	CHECK(ok, "50 colliding keys all found");
	for (int i = 0; i < 50; i += 2)
		hashmap_remove(&m, &v[i].by_id);
	ok = 1;
	for (int i = 0; i < 50; i++) {
		uint64_t id = (uint64_t)i;
		struct hashmap_node *n = hashmap_find(&m, 42, eq_id, &id);
		ok &= (i % 2) ? n == &v[i].by_id : n == NULL;
	}
	CHECK(ok, "removal inside one chain keeps the others");
	hashmap_destroy(&m);
}

static void test_reserve_and_iteration(void)
{
	struct hashmap m;
	hashmap_init(&m, 0);
	CHECK_INT(hashmap_reserve(&m, 5000), 0, "reserve");
	size_t nb = m.nbuckets;
	CHECK(nb >= 5000, "reserve sized the array (%zu)", nb);
	struct obj *v = calloc(5000, sizeof(*v));
	for (int i = 0; i < 5000; i++) {
		v[i].id = (uint64_t)i;
		hashmap_insert(&m, &v[i].by_id, hashmap_hash_u64(v[i].id));
	}
	CHECK_INT(m.nbuckets, nb, "no growth within the reserve");
	CHECK_INT(hashmap_reserve(&m, 10), 0, "a smaller reserve is a no-op");
	CHECK_INT(m.nbuckets, nb, "never shrinks");
	/* iterate, removing every odd id as we go */
	struct hashmap_iter it;
	hashmap_iter_init(&it, &m);
	size_t seen = 0;
	char *mark = calloc(5000, 1);
	for (struct hashmap_node *n; (n = hashmap_next(&it));) {
		struct obj *o = hashmap_entry(n, struct obj, by_id);
		mark[o->id]++;
		seen++;
		if (o->id % 2)
			hashmap_remove(&m, n);
	}
	int once = 1;
	for (int i = 0; i < 5000; i++)
		once &= mark[i] == 1;
	CHECK(seen == 5000 && once, "iteration visits each node once while removing (%zu)", seen);
	CHECK_INT(hashmap_count(&m), 2500, "half removed during iteration");
	hashmap_iter_init(&it, &m);
	seen = 0;
	int even = 1;
	for (struct hashmap_node *n; (n = hashmap_next(&it)); seen++)
		even &= hashmap_entry(n, struct obj, by_id)->id % 2 == 0;
	CHECK(seen == 2500 && even, "what is left is the even ids");
	free(mark);
	free(v);
	hashmap_destroy(&m);
	struct hashmap z = { 0 };
	hashmap_iter_init(&it, &z);
	CHECK(hashmap_next(&it) == NULL && hashmap_find(&z, 1, eq_id, &(uint64_t){ 1 }) == NULL,
	      "a zeroed map is empty");
}

/* ---- reference-model property test ---- */

#define NKEYS 300

struct skey {
	char key[24];
	struct hashmap_node node;
	bool in;       /* the model: is it in the map? */
};

static int eq_str(const struct hashmap_node *n, const void *key)
{
	return strcmp(hashmap_entry(n, struct skey, node)->key, key) == 0;
}

/* Compares the map with the model; returns 1 when they agree. */
static int agree_str(struct hashmap *m, struct skey *v, size_t *count)
{
	size_t want = 0;
	for (int i = 0; i < NKEYS; i++) {
		struct hashmap_node *n = hashmap_find(m, hashmap_hash_str(v[i].key), eq_str, v[i].key);
		if (v[i].in)
			want++;
		if (v[i].in ? n != &v[i].node : n != NULL)
			return 0;
	}
	size_t seen = 0;
	struct hashmap_iter it;
	hashmap_iter_init(&it, m);
	for (struct hashmap_node *n; (n = hashmap_next(&it)); seen++)
		if (!hashmap_entry(n, struct skey, node)->in)
			return 0;
	*count = seen;
	return seen == want && hashmap_count(m) == want;
}

static void test_model_strings(unsigned seed)
{
	struct skey *v = calloc(NKEYS, sizeof(*v));
	for (int i = 0; i < NKEYS; i++)
		snprintf(v[i].key, sizeof(v[i].key), "frag/s%d/%d", i % 7, i * 31);
	struct hashmap m;
	hashmap_init(&m, 0);
	srand(seed);
	int ok = 1, steps = 0;
	size_t peak = 0, count = 0;
	for (; steps < 20000 && ok; steps++) {
		int i = rand() % NKEYS, op = rand() % 10;
		if (op < 5) { /* insert when absent, as the users do (find, then insert) */
			if (!hashmap_find(&m, hashmap_hash_str(v[i].key), eq_str, v[i].key)) {
				hashmap_insert(&m, &v[i].node, hashmap_hash_str(v[i].key));
				ok &= !v[i].in;
				v[i].in = true;
			} else {
				ok &= v[i].in;
			}
		} else if (op < 9) {
			struct hashmap_node *n = hashmap_find(&m, hashmap_hash_str(v[i].key), eq_str,
							      v[i].key);
			ok &= (n != NULL) == v[i].in;
			if (n) {
				hashmap_remove(&m, n);
				v[i].in = false;
			}
		} else {
			ok &= agree_str(&m, v, &count);
		}
		if (hashmap_count(&m) > peak)
			peak = hashmap_count(&m);
	}
	ok &= agree_str(&m, v, &count);
	CHECK(ok, "string keys: %d random steps agree with the model (seed %u, peak %zu, end %zu)",
	      steps, seed, peak, count);
	hashmap_destroy(&m);
	free(v);
}

static void test_model_u64(unsigned seed)
{
	/* ids drawn from a small range so inserts, hits and misses all happen often */
	struct obj *v = calloc(NKEYS, sizeof(*v));
	for (int i = 0; i < NKEYS; i++)
		v[i].id = (uint64_t)i << 40 | (uint64_t)i; /* high and low bits both vary */
	struct hashmap m;
	hashmap_init(&m, 0);
	srand(seed + 1);
	int ok = 1, steps = 0;
	for (; steps < 20000 && ok; steps++) {
		int i = rand() % NKEYS;
		struct obj *o = find_id(&m, v[i].id);
		ok &= (o == &v[i]) == v[i].in && (o == NULL || o == &v[i]);
		if (rand() % 2) {
			if (!o) {
				hashmap_insert(&m, &v[i].by_id, hashmap_hash_u64(v[i].id));
				v[i].in = true;
			}
		} else if (o) {
			hashmap_remove(&m, &o->by_id);
			v[i].in = false;
		}
	}
	size_t want = 0;
	for (int i = 0; i < NKEYS; i++) {
		want += v[i].in;
		ok &= (find_id(&m, v[i].id) != NULL) == v[i].in;
	}
	ok &= hashmap_count(&m) == want;
	CHECK(ok, "u64 keys: %d random steps agree with the model (seed %u)", steps, seed);
	hashmap_destroy(&m);
	free(v);
}

static void test_hashes(void)
{
	CHECK(hashmap_hash_str("abc") == hashmap_hash_bytes(0, "abc", 3), "str is bytes with seed 0");
	CHECK(hashmap_hash_bytes(1, "abc", 3) != hashmap_hash_bytes(2, "abc", 3), "seed matters");
	CHECK(hashmap_hash_str("") != hashmap_hash_str("a"), "empty differs");
	CHECK(hashmap_hash_bytes(0, NULL, 0) == hashmap_hash_str(""), "no bytes");
	CHECK(hashmap_hash_u64(1) != hashmap_hash_u64(2), "u64 mix");
	/* the low bits (the bucket) spread: 4096 sequential ids over 256 buckets */
	int hits[256] = { 0 }, worst = 0;
	for (uint64_t i = 0; i < 4096; i++)
		hits[hashmap_hash_u64(i) & 255]++;
	for (int i = 0; i < 256; i++)
		worst = hits[i] > worst ? hits[i] : worst;
	CHECK(worst < 40, "sequential ids spread over buckets (worst bucket %d of mean 16)", worst);
}

int main(void)
{
	const char *s = getenv("KVSFS_TEST_SEED");
	unsigned seed = s ? (unsigned)strtoul(s, NULL, 10) : 20240611u;
	test_basic_and_two_maps();
	test_collisions();
	test_reserve_and_iteration();
	test_hashes();
	for (unsigned k = 0; k < 4; k++) {
		test_model_strings(seed + k);
		test_model_u64(seed + k);
	}
	return check_done();
}
