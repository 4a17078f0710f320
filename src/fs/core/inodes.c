/*
 * inodes: the inode table (see inodes.h for lifetimes and the locking rule).
 *
 * Design: every node is in two util/hashmap maps, by inode number and by (parent, name); the
 * maps grow themselves (an insert never fails). One mutex guards both maps and every node's
 * fields.
 *
 * Invariants: a node is in both tables from its creation until it is freed; (parent, name) is
 * unique among the nodes (detached nodes get a unique "\001deleted-INO" name under parent 0);
 * next_ino only grows. The root is never forgotten: the core never passes it to forget.
 */
#include "inodes.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvsfs/array.h"
#include "kvsfs/hashmap.h"

struct inode {
	uint64_t ino;
	uint64_t parent;
	char *name;
	uint64_t nlookup;            /* the kernel's references */
	struct node_val val;
	struct hashmap_node hn_ino, hn_name;
};

struct inodes {
	pthread_mutex_t lock;        /* guards everything below and every node */
	struct hashmap by_ino, by_name;
	uint64_t next_ino;
};

struct name_key {
	uint64_t parent;
	const char *name;
};

static uint64_t hash_name(uint64_t parent, const char *name)
{
	return hashmap_hash_u64(parent ^ hashmap_hash_str(name));
}

static int eq_ino(const struct hashmap_node *hn, const void *key)
{
	return hashmap_entry(hn, struct inode, hn_ino)->ino == *(const uint64_t *)key;
}

static int eq_name(const struct hashmap_node *hn, const void *key)
{
	const struct inode *n = hashmap_entry(hn, struct inode, hn_name);
	const struct name_key *k = key;
	return n->parent == k->parent && strcmp(n->name, k->name) == 0;
}

int inodes_new(struct inodes **out)
{
	struct inodes *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	if (hashmap_init(&t->by_ino, 1024) || hashmap_init(&t->by_name, 1024)) {
		hashmap_destroy(&t->by_ino);
		hashmap_destroy(&t->by_name);
		free(t);
		return -ENOMEM;
	}
	t->next_ino = VFS_ROOT_INO;
	pthread_mutex_init(&t->lock, NULL);
	*out = t;
	return 0;
}

void inodes_free(struct inodes *t)
{
	if (!t)
		return;
	struct hashmap_iter it;
	hashmap_iter_init(&it, &t->by_ino);
	for (struct hashmap_node *hn; (hn = hashmap_next(&it));) {
		struct inode *n = hashmap_entry(hn, struct inode, hn_ino);
		hashmap_remove(&t->by_ino, hn);
		free(n->name);
		free(n);
	}
	hashmap_destroy(&t->by_ino);
	hashmap_destroy(&t->by_name);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/* ---------------------------------------------------------------- under the lock */

static struct inode *by_ino(struct inodes *t, uint64_t ino)
{
	struct hashmap_node *hn = hashmap_find(&t->by_ino, hashmap_hash_u64(ino), eq_ino, &ino);
	return hn ? hashmap_entry(hn, struct inode, hn_ino) : NULL;
}

static struct inode *by_name(struct inodes *t, uint64_t parent, const char *name)
{
	struct name_key k = { parent, name };
	struct hashmap_node *hn = hashmap_find(&t->by_name, hash_name(parent, name), eq_name, &k);
	return hn ? hashmap_entry(hn, struct inode, hn_name) : NULL;
}

static void insert(struct inodes *t, struct inode *n)
{
	hashmap_insert(&t->by_ino, &n->hn_ino, hashmap_hash_u64(n->ino));
	hashmap_insert(&t->by_name, &n->hn_name, hash_name(n->parent, n->name));
}

static void unlink_node(struct inodes *t, struct inode *x)
{
	hashmap_remove(&t->by_ino, &x->hn_ino);
	hashmap_remove(&t->by_name, &x->hn_name);
}

static void copy_out(const struct inode *n, struct node_ref *out)
{
	if (!out)
		return;
	out->ino = n->ino;
	out->parent = n->parent;
	out->val = n->val;
}

/* ---------------------------------------------------------------- API */

int inodes_get(struct inodes *t, uint64_t ino, struct node_ref *out)
{
	pthread_mutex_lock(&t->lock);
	struct inode *n = by_ino(t, ino);
	if (n)
		copy_out(n, out);
	pthread_mutex_unlock(&t->lock);
	return n ? 0 : -ESTALE;
}

int inodes_ref(struct inodes *t, uint64_t parent, const char *name, const struct node_val *val,
	       int replace, uint64_t refs, struct node_ref *out)
{
	pthread_mutex_lock(&t->lock);
	struct inode *n = by_name(t, parent, name);
	if (n) {
		if (replace || n->val.ops == val->ops)
			n->val = *val;
		n->nlookup += refs;
		copy_out(n, out);
		pthread_mutex_unlock(&t->lock);
		return 0;
	}
	n = calloc(1, sizeof(*n));
	if (!n || !(n->name = strdup(name))) {
		pthread_mutex_unlock(&t->lock);
		free(n);
		return -ENOMEM;
	}
	n->ino = t->next_ino++;
	n->parent = parent;
	n->val = *val;
	n->nlookup = refs;
	insert(t, n);
	copy_out(n, out);
	pthread_mutex_unlock(&t->lock);
	return 0;
}

void inodes_forget(struct inodes *t, uint64_t ino, uint64_t nl)
{
	pthread_mutex_lock(&t->lock);
	struct inode *n = by_ino(t, ino);
	if (n) {
		n->nlookup = n->nlookup > nl ? n->nlookup - nl : 0;
		if (n->nlookup == 0) {
			unlink_node(t, n);
			free(n->name);
			free(n);
		}
	}
	pthread_mutex_unlock(&t->lock);
}

void inodes_detach(struct inodes *t, uint64_t parent, const char *name)
{
	pthread_mutex_lock(&t->lock);
	struct inode *n = by_name(t, parent, name);
	if (n) {
		unlink_node(t, n);
		char dead[48];
		snprintf(dead, sizeof(dead), "\001deleted-%llu", (unsigned long long)n->ino);
		char *nn = strdup(dead);
		if (nn) {
			free(n->name);
			n->name = nn;
		}
		n->parent = 0;
		insert(t, n);
	}
	pthread_mutex_unlock(&t->lock);
}

int inodes_move(struct inodes *t, uint64_t parent, const char *name, uint64_t newparent,
		const char *newname)
{
	int rc = 0;
	pthread_mutex_lock(&t->lock);
	struct inode *n = by_name(t, parent, name);
	char *nn = n ? strdup(newname) : NULL;
	if (n && nn) {
		unlink_node(t, n);
		free(n->name);
		n->name = nn;
		n->parent = newparent;
		insert(t, n);
	} else if (n) {
		rc = -ENOMEM;
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int inodes_walk_up(struct inodes *t, uint64_t ino, inodes_walk_fn fn, void *arg)
{
	int rc;
	pthread_mutex_lock(&t->lock);
	for (;;) {
		struct inode *n = by_ino(t, ino);
		if (!n) {
			rc = -ESTALE;
			break;
		}
		rc = fn(arg, n->ino, n->parent, n->name, &n->val);
		if (rc)
			break;
		ino = n->parent;
	}
	pthread_mutex_unlock(&t->lock);
	return rc < 0 ? rc : 0;
}

void inodes_select(struct inodes *t, int (*match)(const struct node_val *val, const void *arg),
		   const void *arg, uint64_t **out, size_t *n)
{
	size_t k = 0, cap = 0;
	uint64_t *inos = NULL;
	pthread_mutex_lock(&t->lock);
	struct hashmap_iter it;
	hashmap_iter_init(&it, &t->by_ino);
	for (struct hashmap_node *hn; (hn = hashmap_next(&it));) {
		const struct inode *x = hashmap_entry(hn, struct inode, hn_ino);
		if (!match(&x->val, arg))
			continue;
		if (k == cap) {
			uint64_t *ni = array_grow(inos, k, &cap, sizeof(*ni), 256);
			if (!ni)
				goto done;
			inos = ni;
		}
		inos[k++] = x->ino;
	}
done:
	pthread_mutex_unlock(&t->lock);
	*out = inos;
	*n = k;
}
