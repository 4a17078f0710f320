/*
 * stream: a stream's folder, /STREAM/, with its fixed entries: fragments/, clips/,
 * live.m3u8, live.mpd and images/. Its mtime is the stream's creation time.
 *
 * Every node of a stream's tree carries one read-only extended attribute, user.kvs.stream (the
 * stream's name); the helpers below serve it to the other kinds of the tree too, and the
 * attributes of a folder dated by the stream's creation (this one, fragments/, clips/).
 */
#include <errno.h>
#include <string.h>

#include "nodes.h"
#include "../core/streams.h"

static const struct {
	const char *name;
	const struct node_ops *ops;
} entries[] = {
	{ "fragments", &node_fragments_ops },
	{ "clips", &node_clips_ops },
	{ "live.m3u8", &node_live_hls_ops },
	{ "live.mpd", &node_live_dash_ops },
	{ "images", &node_images_ops },
	{ "ingest", &node_ingest_ops },
};

#define N_ENTRIES (sizeof(entries) / sizeof(entries[0]))

static const char *const stream_xattrs[] = { "user.kvs.stream" };

ssize_t node_stream_getxattr(struct vfs *v, const struct node_ref *n, const char *name,
			     char *buf, size_t size)
{
	(void)v;
	if (!n->val.stream || strcmp(name, stream_xattrs[0]) != 0)
		return -ENODATA;
	return vfs_xattr_value(n->val.stream->name, buf, size);
}

ssize_t node_stream_listxattr(struct vfs *v, const struct node_ref *n, char *buf, size_t size)
{
	(void)v;
	return vfs_xattr_list(stream_xattrs, n->val.stream ? 1 : 0, buf, size);
}

static int stream_lookup(struct vfs *v, const struct node_ref *dir, const char *name,
			 struct lookup_res *r)
{
	(void)v;
	for (size_t i = 0; i < N_ENTRIES; i++) {
		if (!strcmp(name, entries[i].name)) {
			r->val.ops = entries[i].ops;
			r->val.stream = dir->val.stream;
			return 0;
		}
	}
	return -ENOENT;
}

static int stream_list(struct vfs *v, const struct node_ref *dir, struct dir_builder *b)
{
	int rc = 0;
	(void)v;
	for (size_t i = 0; i < N_ENTRIES && rc == 0; i++) {
		struct node_val proto = { .ops = entries[i].ops, .stream = dir->val.stream };
		rc = vfs_dir_add(b, entries[i].name, &proto);
	}
	return rc;
}

int node_stream_dir_getattr(struct vfs *v, const struct node_ref *n, enum attr_use use,
			    struct vfs_attr *a)
{
	(void)use;
	vfs_attr_dir(v, n->ino, streams_creation_ms(n->val.stream), a);
	return 0;
}

const struct node_ops node_stream_ops = {
	.kind = "stream",
	.lookup = stream_lookup,
	.list = stream_list,
	.getattr = node_stream_dir_getattr,
	.getxattr = node_manage_getxattr,     /* manage.c: user.kvs.stream without manage_streams */
	.listxattr = node_manage_listxattr,
	.setxattr_value = node_manage_setxattr,
};
