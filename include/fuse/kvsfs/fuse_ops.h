/*
 * fuse_ops: the FUSE adapter. Translates libfuse low-level requests into vfs calls and vfs
 * results into replies; it holds no filesystem state of its own beyond open handles.
 *
 * Writes of any kind in the KVS tree answer EROFS (docs/SEMANTICS.md). Kernel cache
 * invalidations requested by the vfs are queued and sent from a separate thread, because
 * libfuse's notify calls must not run inside the handler of a related request.
 */
#ifndef KVSFS_FUSE_OPS_H
#define KVSFS_FUSE_OPS_H

#include <fuse_lowlevel.h>

struct vfs;
struct log_ctx;
struct fuse_ops_ctx;

/* Creates the adapter context. Returns NULL when out of memory. */
struct fuse_ops_ctx *fuse_ops_new(struct log_ctx *log);
/* Sets the vfs the adapter serves (borrowed; before the session starts). */
void fuse_ops_set_vfs(struct fuse_ops_ctx *c, struct vfs *vfs);
/* The operations table; pass the context as userdata to fuse_session_new. */
const struct fuse_lowlevel_ops *fuse_ops_table(void);
/* Attaches the session (for notifications) and starts the invalidation thread. */
int fuse_ops_start(struct fuse_ops_ctx *c, struct fuse_session *se);
/* The vfs_config.invalidate callback: queues an inode invalidation. */
void fuse_ops_invalidate(void *arg, uint64_t ino);
/* The vfs_config.invalidate_now callback: invalidates at once (never for the inode of the
 * request being served). */
void fuse_ops_invalidate_now(void *arg, uint64_t ino);
/* Queues asking the kernel to forget the entry name of folder parent (and, when unused, the
 * dentries and inodes below it: the kernel then sends their FORGETs). Any thread. */
void fuse_ops_invalidate_entry(void *arg, uint64_t parent, const char *name);
/* Stops the invalidation thread, frees the handles the kernel left open (export/ files among
 * them are kept staged and reported, never stored) and frees the context. Call before
 * vfs_free() and export_close(). */
void fuse_ops_free(struct fuse_ops_ctx *c);

#endif
