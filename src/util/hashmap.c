/*
 * hashmap: intrusive chained hash map (contract in include/kvsfs/hashmap.h).
 *
 * Buckets are singly linked chains of nodes; each node carries its full 64-bit hash, which is
 * compared before the caller's equality function is called, and which places the node again
 * when the array doubles. The bucket index is the hash's low bits (the hash functions below mix
 * every input bit into them).
 */
#include "kvsfs/hashmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MIN_BUCKETS 16

/* Buckets for n entries at a load factor of at most 1/2. */
static size_t buckets_for(size_t n)
{
	size_t b = MIN_BUCKETS;
	while (b / 2 < n && b <= SIZE_MAX / 4)
		b *= 2;
	return b;
}

static int resize(struct hashmap *m, size_t nb)
{
	struct hashmap_node **v = calloc(nb, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct hashmap_node *n = m->buckets[i], *next;
		for (; n; n = next) {
			next = n->next;
			size_t b = (size_t)n->hash & (nb - 1);
			n->next = v[b];
			v[b] = n;
		}
	}
	free(m->buckets);
	m->buckets = v;
	m->nbuckets = nb;
	return 0;
}

int hashmap_init(struct hashmap *m, size_t expected)
{
	m->buckets = NULL;
	m->nbuckets = 0;
	m->count = 0;
	return resize(m, buckets_for(expected));
}

void hashmap_destroy(struct hashmap *m)
{
	free(m->buckets);
	m->buckets = NULL;
	m->nbuckets = 0;
	m->count = 0;
}

int hashmap_reserve(struct hashmap *m, size_t n)
{
	size_t nb = buckets_for(n);
	return nb > m->nbuckets ? resize(m, nb) : 0;
}

struct hashmap_node *hashmap_find(const struct hashmap *m, uint64_t hash, hashmap_eq_fn eq,
		const void *key)
{
	if (m->nbuckets == 0)
		return NULL;
	for (struct hashmap_node *n = m->buckets[(size_t)hash & (m->nbuckets - 1)]; n; n = n->next)
		if (n->hash == hash && eq(n, key))
			return n;
	return NULL;
}

void hashmap_insert(struct hashmap *m, struct hashmap_node *node, uint64_t hash)
{
	if (m->count >= m->nbuckets / 2 && m->nbuckets <= SIZE_MAX / 4)
		(void)resize(m, m->nbuckets ? m->nbuckets * 2 : MIN_BUCKETS); /* failure: longer chains */
	node->hash = hash;
	size_t b = (size_t)hash & (m->nbuckets - 1);
	node->next = m->buckets[b];
	m->buckets[b] = node;
	m->count++;
}

void hashmap_remove(struct hashmap *m, struct hashmap_node *node)
{
	struct hashmap_node **pp = &m->buckets[(size_t)node->hash & (m->nbuckets - 1)];
	for (; *pp; pp = &(*pp)->next) {
		if (*pp == node) {
			*pp = node->next;
			node->next = NULL;
			m->count--;
			return;
		}
	}
}

size_t hashmap_count(const struct hashmap *m)
{
	return m->count;
}

void hashmap_iter_init(struct hashmap_iter *it, const struct hashmap *m)
{
	it->m = m;
	it->bucket = 0;
	it->next = m->nbuckets ? m->buckets[0] : NULL;
}

struct hashmap_node *hashmap_next(struct hashmap_iter *it)
{
	while (!it->next) {
		if (++it->bucket >= it->m->nbuckets)
			return NULL;
		it->next = it->m->buckets[it->bucket];
	}
	struct hashmap_node *n = it->next;
	it->next = n->next;
	return n;
}

/* ---- hashing ---- */

uint64_t hashmap_hash_u64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

uint64_t hashmap_hash_bytes(uint64_t seed, const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 0x9e3779b97f4a7c15ULL ^ hashmap_hash_u64(seed) ^ n;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, s + i, 8);
		h = (h ^ w) * 0x100000001b3ULL;
		h ^= h >> 29;
	}
	uint64_t tail = 0;
	if (n > i)
		memcpy(&tail, s + i, n - i);
	h = (h ^ tail) * 0x100000001b3ULL;
	return hashmap_hash_u64(h);
}

uint64_t hashmap_hash_str(const char *s)
{
	return hashmap_hash_bytes(0, s, strlen(s));
}
