/*
 * inodes: the inode table of the fs core (a small API over its own hash tables, so that the
 * shared util hash map can replace them without touching the callers).
 *
 * Lifetimes: a node is made by the first lookup (or readdirplus entry) of (parent, name) and
 * gets the next inode number (the root, made first, is VFS_ROOT_INO); it counts the kernel's
 * references (lookup count) and is freed when forget brings them to 0. Numbers are never reused
 * while the mount lives. A node removed from its folder (unlink, rmdir, replaced by a rename)
 * is detached: renamed to a name no lookup can ask for, under parent 0, so its inode stays valid
 * for the kernel until forgotten while the next lookup of the old name starts afresh.
 *
 * Every function takes the table's one mutex for its own duration and never calls out while
 * holding it, except to the walk and select callbacks, which must neither block nor call back
 * into the table. Values are copied in and out: callers never hold a pointer into the table.
 */
#ifndef KVSFS_FS_CORE_INODES_H
#define KVSFS_FS_CORE_INODES_H

#include <stddef.h>
#include <stdint.h>

#include "vfs_int.h"

struct inodes;

/* Creates an empty table. Returns 0 and *out, or -ENOMEM. */
int inodes_new(struct inodes **out);
/* Frees the table and every node. NULL is a no-op. */
void inodes_free(struct inodes *t);

/* Copies the node ino into *out. Returns 0 or -ESTALE. */
int inodes_get(struct inodes *t, uint64_t ino, struct node_ref *out);

/*
 * The node (parent, name): made with value val when absent; when present, it takes val if
 * replace is set or its kind is val's (fresher metadata), else keeps its own. Adds refs kernel
 * references and copies the node into *out (may be NULL). Returns 0 or -ENOMEM.
 */
int inodes_ref(struct inodes *t, uint64_t parent, const char *name, const struct node_val *val,
	       int replace, uint64_t refs, struct node_ref *out);

/* Drops n kernel references of ino; at 0 the node is freed. Unknown inodes are ignored. */
void inodes_forget(struct inodes *t, uint64_t ino, uint64_t n);

/* Detaches the node (parent, name), if any (see above). */
void inodes_detach(struct inodes *t, uint64_t parent, const char *name);

/* Moves the node (parent, name), if any, to (newparent, newname). Returns 0 or -ENOMEM (the
 * node then stays where it was). */
int inodes_move(struct inodes *t, uint64_t parent, const char *name, uint64_t newparent,
		const char *newname);

/* Called for ino, then its parent, and so on (under the lock: name is valid only during the
 * call). Returns 0 to go on to the parent, 1 to stop, or a negative errno to fail. */
typedef int (*inodes_walk_fn)(void *arg, uint64_t ino, uint64_t parent, const char *name,
			      const struct node_val *val);
/* Walks up from ino. Returns 0 when fn stopped, fn's errno, or -ESTALE when a node on the
 * way is not in the table. */
int inodes_walk_up(struct inodes *t, uint64_t ino, inodes_walk_fn fn, void *arg);

/* The inode numbers of the nodes whose value match accepts (called under the lock): *n of them
 * in *out (the caller frees it; fewer, or none and NULL, when out of memory). */
void inodes_select(struct inodes *t, int (*match)(const struct node_val *val, const void *arg),
		   const void *arg, uint64_t **out, size_t *n);

#endif
