/*
 * root: the mount's root folder, /.
 *
 * It shows one folder per stream the registry shows (core/streams.c: ACTIVE, allowed, cached
 * meta_ttl) and, when export/ is on, the export folder under its configured name; a stream of
 * that name is hidden by it on lookup. Its mtime is the mount's time; it carries no extended
 * attributes; writes fail with EROFS.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nodes.h"
#include "../core/streams.h"

static int root_lookup(struct vfs *v, const struct node_ref *dir, const char *name,
		       struct lookup_res *r)
{
	(void)dir;
	if (v->c.export && !strcmp(name, v->c.export_dir))
		return node_export_top(v, r);
	if (!strcmp(name, ".kvsfs"))
		return node_kvsfs_top(v, r);
	struct vstream *s;
	int rc = streams_lookup(v->streams, name, &s);
	if (rc)
		return rc;
	r->val.ops = &node_stream_ops;
	r->val.stream = s;
	return 0;
}

static int root_list(struct vfs *v, const struct node_ref *dir, struct dir_builder *b)
{
	struct vstream **ss;
	(void)dir;
	int rc = streams_shown(v->streams, &ss);
	if (rc)
		return rc;
	for (size_t i = 0; ss[i] && rc == 0; i++) {
		struct node_val proto = { .ops = &node_stream_ops, .stream = ss[i] };
		rc = vfs_dir_add(b, ss[i]->name, &proto);
	}
	free(ss);
	if (rc == 0 && v->c.export) {
		struct node_val proto = { .ops = &node_xdir_ops };
		rc = vfs_dir_add(b, v->c.export_dir, &proto);
	}
	return rc;
}

static int root_getattr(struct vfs *v, const struct node_ref *n, enum attr_use use,
			struct vfs_attr *a)
{
	(void)use;
	vfs_attr_dir(v, n->ino, v->mount_ms, a);
	return 0;
}

const struct node_ops node_root_ops = {
	.kind = "root",
	.lookup = root_lookup,
	.list = root_list,
	.getattr = root_getattr,
	.mkdir = node_manage_mkdir,   /* manage.c: EROFS without manage_streams */
	.rmdir = node_manage_rmdir,
};
