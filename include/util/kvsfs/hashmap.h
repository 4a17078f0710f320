/*
 * hashmap: one intrusive hash map (separate chaining) for every in-memory index of kvsfs.
 *
 * The map never allocates or frees entries: the caller embeds a struct hashmap_node in its own
 * struct (one per map the struct is in, so an object can be in several maps at once, e.g. by
 * inode number and by parent+name), computes the key's hash itself and passes an equality
 * function with the key when it looks up. Keys can be anything (strings, u64s, digests, pairs):
 * the map only sees the 64-bit hash, which it keeps in the node so growing never calls back.
 * hashmap_entry() gets from the node to the containing struct.
 *
 * Growth: the bucket array is a power of two and doubles when an insert would make the map more
 * than half full (load factor <= 1/2: short chains, about 1.25 nodes visited per hit, so a
 * million-key map looks up as fast as the open-addressing table it replaced); it never shrinks. If doubling fails for lack of memory the
 * insert still succeeds (chains get longer), so inserting never fails. hashmap_reserve() sizes
 * the array up front (a bulk load then never rehashes).
 *
 * Invariants: every inserted node is in the chain of bucket (hash & (nbuckets - 1)), exactly
 * once; count is the number of inserted nodes. Duplicates are the caller's business (find before
 * insert when keys must be unique).
 *
 * Not thread-safe: the caller serialises access (each user guards its map with its own lock).
 */
#ifndef KVSFS_HASHMAP_H
#define KVSFS_HASHMAP_H

#include <stddef.h>
#include <stdint.h>

/* Embedded in the caller's struct; owned by the map while inserted. */
struct hashmap_node {
	struct hashmap_node *next;
	uint64_t hash;
};

struct hashmap {
	struct hashmap_node **buckets;
	size_t nbuckets;   /* a power of two once initialised */
	size_t count;
};

/* Returns nonzero when node's key equals key (the caller's key type). */
typedef int (*hashmap_eq_fn)(const struct hashmap_node *node, const void *key);

/* The struct of type `type` whose member `member` is the hashmap_node *node. */
#define hashmap_entry(node, type, member) \
	((type *)(void *)((char *)(node) - offsetof(type, member)))

/* Initialises an empty map with room for at least expected entries before it grows (0: a small
 * default). Returns 0 or -ENOMEM (then m is empty and hashmap_destroy is still safe). */
int hashmap_init(struct hashmap *m, size_t expected);
/* Frees the bucket array; the nodes belong to the caller, who frees them first (iterate, or keep
 * them on a list of their own). m may be zeroed or failed to initialise. */
void hashmap_destroy(struct hashmap *m);
/* Grows the bucket array so that n entries fit without growing. Returns 0 or -ENOMEM (the map
 * is unchanged and still works). */
int hashmap_reserve(struct hashmap *m, size_t n);

/* Returns the first inserted node with this hash for which eq(node, key) holds, or NULL. */
struct hashmap_node *hashmap_find(const struct hashmap *m, uint64_t hash, hashmap_eq_fn eq,
		const void *key);
/* Inserts node (not already in m) under hash. Never fails (see Growth above). */
void hashmap_insert(struct hashmap *m, struct hashmap_node *node, uint64_t hash);
/* Removes node, which must be in m. The node is the caller's again. */
void hashmap_remove(struct hashmap *m, struct hashmap_node *node);
/* Number of inserted nodes. */
size_t hashmap_count(const struct hashmap *m);

/* Iteration in bucket order (unspecified order of keys). The node just returned by
 * hashmap_next may be removed (and freed) before the next call; no other change is allowed
 * during an iteration. */
struct hashmap_iter {
	const struct hashmap *m;
	size_t bucket;
	struct hashmap_node *next;
};
void hashmap_iter_init(struct hashmap_iter *it, const struct hashmap *m);
/* Returns the next node, or NULL at the end. */
struct hashmap_node *hashmap_next(struct hashmap_iter *it);

/* ---- hash functions (good 64-bit mixing; not keyed, so not for keys chosen by an attacker
 * who could flood one bucket: kvsfs's keys come from the service and the mount) ---- */

/* Hash of n bytes, seeded (e.g. with a parent inode number for a parent+name key). */
uint64_t hashmap_hash_bytes(uint64_t seed, const void *p, size_t n);
/* Hash of a NUL-terminated string (seed 0). */
uint64_t hashmap_hash_str(const char *s);
/* Hash of a 64-bit integer (a bijective mix, so distinct keys never collide in the hash). */
uint64_t hashmap_hash_u64(uint64_t x);

#endif
