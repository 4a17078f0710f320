/*
 * inodes: the inode table (see inodes.h for lifetimes and the locking rule).
 *
 * Design: every node is in two chained hash tables, by inode number and by (parent, name),
 * whose bucket counts (a power of two) double when the nodes outnumber them; when that fails
 * the smaller tables stay (slower, still correct). One mutex guards both tables and every
 * node's fields.
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

struct inode {
	uint64_t ino;
	uint64_t parent;
	char *name;
	uint64_t nlookup;            /* the kernel's references */
	struct node_val val;
	struct inode *next_ino, *next_name;
};

struct inodes {
	pthread_mutex_t lock;        /* guards everything below and every node */
	struct inode **by_ino, **by_name;
	size_t nbuckets, nnodes;
	uint64_t next_ino;
};

static size_t hash_u64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return (size_t)x;
}

static size_t hash_name(uint64_t parent, const char *name)
{
	uint64_t h = 1469598103934665603ULL ^ parent;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return hash_u64(h);
}

int inodes_new(struct inodes **out)
{
	struct inodes *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->nbuckets = 1024;
	t->by_ino = calloc(t->nbuckets, sizeof(*t->by_ino));
	t->by_name = calloc(t->nbuckets, sizeof(*t->by_name));
	if (!t->by_ino || !t->by_name) {
		free(t->by_ino);
		free(t->by_name);
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
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct inode *n = t->by_ino[i];
		while (n) {
			struct inode *nx = n->next_ino;
			free(n->name);
			free(n);
			n = nx;
		}
	}
	free(t->by_ino);
	free(t->by_name);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/* ---------------------------------------------------------------- under the lock */

static struct inode *by_ino(struct inodes *t, uint64_t ino)
{
	for (struct inode *n = t->by_ino[hash_u64(ino) & (t->nbuckets - 1)]; n; n = n->next_ino)
		if (n->ino == ino)
			return n;
	return NULL;
}

static struct inode *by_name(struct inodes *t, uint64_t parent, const char *name)
{
	for (struct inode *n = t->by_name[hash_name(parent, name) & (t->nbuckets - 1)]; n;
	     n = n->next_name)
		if (n->parent == parent && strcmp(n->name, name) == 0)
			return n;
	return NULL;
}

static void insert(struct inodes *t, struct inode *n)
{
	size_t a = hash_u64(n->ino) & (t->nbuckets - 1);
	size_t b = hash_name(n->parent, n->name) & (t->nbuckets - 1);
	n->next_ino = t->by_ino[a];
	t->by_ino[a] = n;
	n->next_name = t->by_name[b];
	t->by_name[b] = n;
	t->nnodes++;
}

static void grow(struct inodes *t)
{
	if (t->nnodes < t->nbuckets)
		return;
	size_t nb = t->nbuckets * 2;
	struct inode **bi = calloc(nb, sizeof(*bi)), **bn = calloc(nb, sizeof(*bn));
	if (!bi || !bn) {
		free(bi);
		free(bn);
		return; /* keep the smaller tables: slower, still correct */
	}
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct inode *n = t->by_ino[i];
		while (n) {
			struct inode *nx = n->next_ino;
			size_t a = hash_u64(n->ino) & (nb - 1);
			n->next_ino = bi[a];
			bi[a] = n;
			n = nx;
		}
		n = t->by_name[i];
		while (n) {
			struct inode *nx = n->next_name;
			size_t b = hash_name(n->parent, n->name) & (nb - 1);
			n->next_name = bn[b];
			bn[b] = n;
			n = nx;
		}
	}
	free(t->by_ino);
	free(t->by_name);
	t->by_ino = bi;
	t->by_name = bn;
	t->nbuckets = nb;
}

static void unlink_node(struct inodes *t, struct inode *x)
{
	struct inode **pp = &t->by_ino[hash_u64(x->ino) & (t->nbuckets - 1)];
	while (*pp && *pp != x)
		pp = &(*pp)->next_ino;
	if (*pp)
		*pp = x->next_ino;
	pp = &t->by_name[hash_name(x->parent, x->name) & (t->nbuckets - 1)];
	while (*pp && *pp != x)
		pp = &(*pp)->next_name;
	if (*pp)
		*pp = x->next_name;
	t->nnodes--;
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
	grow(t);
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
	for (size_t b = 0; b < t->nbuckets; b++) {
		for (struct inode *x = t->by_ino[b]; x; x = x->next_ino) {
			if (!match(&x->val, arg))
				continue;
			if (k == cap) {
				size_t nc = cap ? cap * 2 : 256;
				uint64_t *ni = realloc(inos, nc * sizeof(*ni));
				if (!ni)
					goto done;
				inos = ni;
				cap = nc;
			}
			inos[k++] = x->ino;
		}
	}
done:
	pthread_mutex_unlock(&t->lock);
	*out = inos;
	*n = k;
}
