/*
 * nodes.h: the node kinds of the tree, one operations table each (see core/vfs_int.h for the
 * table and its defaults, docs/SEMANTICS.md for what each kind does).
 *
 *   root                 /                          streams (core/streams.c) and export/
 *   stream               /STREAM/                   fragments/, clips/, live.m3u8, live.mpd
 *   fragments, day, hour /STREAM/fragments/DAY/HH/  retention days, hours, an hour's listing
 *   fragment             .../HH/FRAGMENT.mkv        one fragment (disk cache, read-ahead)
 *   clips, clip          /STREAM/clips/START-END.mp4  GetClip results (src/fs/clips.c)
 *   live_hls, live_dash  /STREAM/live.m3u8, live.mpd  playback sessions (src/fs/live.c)
 *   xdir, xfile          /export/...                the S3-backed folder (include/kvsfs/export.h)
 *   images, img_day, img_hour, image  /STREAM/images/DAY/HH/NAME.jpg  GetImages (src/fs/imgcache.c)
 *   kvsfs_dir, _file     /.kvsfs/metrics, status    the daemon's own view (hidden in listings)
 *
 * Adding a kind: one file in src/fs/nodes/ defining its table, one line below, and the lookup
 * and list of the folder kind that shows it.
 */
#ifndef KVSFS_FS_NODES_H
#define KVSFS_FS_NODES_H

#include <sys/types.h>

#include "../core/vfs_int.h"

extern const struct node_ops node_root_ops;        /* root.c */
extern const struct node_ops node_stream_ops;      /* stream.c */
extern const struct node_ops node_fragments_ops;   /* fragments.c */
extern const struct node_ops node_day_ops;         /* fragments.c */
extern const struct node_ops node_hour_ops;        /* fragments.c */
extern const struct node_ops node_fragment_ops;    /* fragment.c */
extern const struct node_ops node_clips_ops;       /* clips.c */
extern const struct node_ops node_clip_ops;        /* clips.c */
extern const struct node_ops node_clip_mkv_ops;    /* clips.c */
extern const struct node_ops node_clip_m3u8_ops;   /* live.c */
extern const struct node_ops node_clip_mpd_ops;    /* live.c */
extern const struct node_ops node_live_hls_ops;    /* live.c */
extern const struct node_ops node_live_dash_ops;   /* live.c */
extern const struct node_ops node_xdir_ops;        /* export.c */
extern const struct node_ops node_xfile_ops;       /* export.c */
extern const struct node_ops node_images_ops, node_img_day_ops, node_img_hour_ops,
	node_image_ops;                                /* images.c: images/DAY/HH/NAME.jpg */
extern const struct node_ops node_kvsfs_dir_ops;   /* kvsfs_dir.c: MNT/.kvsfs/ */
extern const struct node_ops node_kvsfs_file_ops;  /* kvsfs_dir.c: .kvsfs/metrics, status */
extern const struct node_ops node_ingest_ops;      /* ingest.c: /STREAM/ingest/ */
extern const struct node_ops node_ingest_file_ops; /* ingest.c: a file being written there */

/* export.c: the lookup of export/ itself in the root (the folder named export_dir). */
int node_export_top(struct vfs *v, struct lookup_res *r);

/* fragments.c: the time folders of a stream, for fragments/ and images/: the retention days
 * of dir's stream as folders of kind day_ops, the hours of the day dir inside the window as
 * folders of kind hour_ops (names checked, -ENOENT outside the window), and the attributes of a
 * day or hour folder (its start is its mtime). */
int node_days_lookup(const struct node_ref *dir, const char *name, const struct node_ops *day_ops,
		     struct lookup_res *r);
int node_days_list(const struct node_ref *dir, const struct node_ops *day_ops,
		   struct dir_builder *b);
int node_hours_lookup(const struct node_ref *dir, const char *name,
		      const struct node_ops *hour_ops, struct lookup_res *r);
int node_hours_list(const struct node_ref *dir, const struct node_ops *hour_ops,
		    struct dir_builder *b);
int node_period_getattr(struct vfs *v, const struct node_ref *n, enum attr_use use,
			struct vfs_attr *a);
/* kvsfs_dir.c: the lookup of .kvsfs in the root (never listed there); -ENOENT without metrics. */
int node_kvsfs_top(struct vfs *v, struct lookup_res *r);

/* stream.c: attributes of a read-only folder of the stream whose mtime is the stream's
 * creation (the stream folder, fragments/, clips/). */
int node_stream_dir_getattr(struct vfs *v, const struct node_ref *n, enum attr_use use,
			    struct vfs_attr *a);
/* stream.c: the one extended attribute of every node of a stream's tree, user.kvs.stream. */
ssize_t node_stream_getxattr(struct vfs *v, const struct node_ref *n, const char *name,
			     char *buf, size_t size);
ssize_t node_stream_listxattr(struct vfs *v, const struct node_ref *n, char *buf, size_t size);

/* manage.c: stream management with manage_streams (else EROFS / user.kvs.stream only). */
int node_manage_mkdir(struct vfs *v, const struct node_ref *dir, const char *name, mode_t mode,
		      struct vfs_attr *a);
int node_manage_rmdir(struct vfs *v, const struct node_ref *dir, const char *name);
ssize_t node_manage_getxattr(struct vfs *v, const struct node_ref *n, const char *name,
			     char *buf, size_t size);
ssize_t node_manage_listxattr(struct vfs *v, const struct node_ref *n, char *buf, size_t size);
int node_manage_setxattr(struct vfs *v, const struct node_ref *n, const char *name,
			 const char *value, size_t size);

#endif
