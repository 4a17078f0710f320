/*
 * export/node: the node table of export/ (locking model: export_int.h).
 *
 * What it does: a file that is open or has staged data not stored yet has one node (struct
 * xnode) in ex->nodes, found by its export path; every open handle of the path shares it.
 *
 * States of a node:
 *   - in the table, idle: nobody owns it (busy = 0); any thread may own it;
 *   - in the table, busy: one thread owns it and works with ex->mu released (a write, a
 *     truncate, a download, an upload, an abort, a sidecar rewrite); the others wait on
 *     ex->done_cv, holding a reference;
 *   - out of the table (unlinked, renamed over, or stored and closed): still usable by the
 *     references held; freed at refs == 0.
 *
 * Invariants (all under ex->mu):
 *  - refs counts open files, queued/running part jobs and threads waiting on the node; only
 *    ex_node_put frees, and only a node out of the table at refs 0;
 *  - a node leaves the table when it is neither open nor dirty (ex_node_put at refs 0) or when
 *    its path is unlinked / replaced (namespace.c);
 *  - a node freed while dirty (path still set) keeps its staging file on disk: it is reported
 *    at the next export_open, never uploaded;
 *  - staging files are closed and unlinked only by ex_unlock / export_close, with ex->mu free.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "export_int.h"

struct xnode *ex_node_find(struct export *ex, const char *path)
{
	for (struct xnode *n = ex->nodes; n; n = n->next)
		if (n->path && !strcmp(n->path, path))
			return n;
	return NULL;
}

struct xnode *ex_node_new(struct export *ex, const char *path)
{
	struct xnode *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->path = strdup(path);
	if (!n->path) {
		free(n);
		return NULL;
	}
	n->seq_ok = 1;
	n->mode = 0644 & ~ex->umask;
	n->mtime_ms = ex_now_ms();
	n->in_table = 1;
	n->next = ex->nodes;
	ex->nodes = n;
	return n;
}

void ex_node_unlink(struct export *ex, struct xnode *n)
{
	for (struct xnode **pp = &ex->nodes; *pp; pp = &(*pp)->next)
		if (*pp == n) {
			*pp = n->next;
			n->next = NULL;
			n->in_table = 0;
			return;
		}
}

void ex_node_free(struct xnode *n)
{
	ex_mpu_reset(n);
	free(n->path);
	free(n);
}

void ex_node_put(struct export *ex, struct xnode *n)
{
	if (--n->refs > 0)
		return;
	if (n->in_table && !n->dirty && !n->opens)
		ex_node_unlink(ex, n);
	if (n->in_table)
		return;
	if (!n->dirty || !n->path)
		ex_stage_drop(ex, n);
	else
		ex_stage_keep(ex, n);  /* a dirty node dropped: keep its staging file for recovery */
	ex_node_free(n);
}

void ex_node_wait_idle(struct export *ex, struct xnode *n)
{
	while (n->busy || n->inflight)
		pthread_cond_wait(&ex->done_cv, &ex->mu);
}

void ex_node_own(struct export *ex, struct xnode *n)
{
	while (n->busy)
		pthread_cond_wait(&ex->done_cv, &ex->mu);
	n->busy = 1;
}

void ex_node_disown(struct export *ex, struct xnode *n)
{
	n->busy = 0;
	pthread_cond_broadcast(&ex->done_cv);
}

void ex_unlock(struct export *ex)
{
	struct stage_file *t = ex->trash;
	ex->trash = NULL;
	pthread_mutex_unlock(&ex->mu);
	ex_stage_dispose(ex, t);
}
