/*
 * mkvin: checks Matroska input before it is sent to KVS with PutMedia (the ingest/ folder).
 *
 * KVS turns each Cluster into one fragment and wants one Segment per request whose clusters each
 * start at a keyframe. mkvin_sniff() looks at the first bytes (an EBML header ID or not), so a
 * file that is not Matroska is refused at its first write; mkvin_scan() walks a whole file
 * (element headers only, plus the first block of each cluster, through a read callback: memory
 * stays bounded whatever the file's size) and reports what the sender needs: the number of
 * clusters, whether their timecodes are absolute (epoch) times, the Segment's DateUTC, and the
 * first cluster that does not start at a keyframe of the video track.
 *
 * Pure functions, no state, no logging: the caller logs the reason string.
 */
#ifndef KVSFS_MKVIN_H
#define KVSFS_MKVIN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MKVIN_MAX_SKIP 16

/* Reads up to len bytes at off into dst; returns the count (short only at the end) or -errno. */
typedef ssize_t (*mkvin_read_fn)(void *arg, void *dst, size_t len, uint64_t off);

struct mkvin_info {
	uint64_t clusters;          /* clusters in the Segment */
	uint64_t timecode_scale;    /* ns per timecode tick (Info; default 1000000) */
	int64_t first_ms;           /* first cluster's time, ms (timecode * scale) */
	int64_t last_ms;            /* last cluster's time, ms */
	int absolute;               /* 1: cluster times are epoch times (first_ms >= 2001-09-09) */
	int has_date;               /* 1: Info has DateUTC */
	int64_t date_ms;            /* DateUTC as epoch ms */
	unsigned tracks;            /* TrackEntry count */
	uint64_t video_track;       /* number of the first video track, 0 when none */
	uint64_t segment_start;     /* offset of the Segment element (its ID) */
	int has_producer_ts;        /* 1: a Tags element before the first Cluster holds KVS's
	                             * AWS_KINESISVIDEO_PRODUCER_TIMESTAMP (a fragments/ file) */
	int64_t producer_ts_ms;     /* its value, epoch ms */
	/* Level-1 Tags elements that hold AWS_KINESISVIDEO_* tags (added by KVS on output, reserved
	 * for the service on input): left out of the body sent ([off, off + len) of the file). At
	 * most MKVIN_MAX_SKIP are listed; more are sent as they are. */
	struct { uint64_t off, len; } skip[MKVIN_MAX_SKIP];
	unsigned n_skip;
};

/*
 * Looks at the first n bytes of a file: 1 when they can start an EBML header (n < 4 and a
 * prefix of its ID included), 0 when they prove the file is not Matroska.
 */
int mkvin_sniff(const void *data, size_t n);

/*
 * Walks a file of size bytes. Returns 0 with *info filled, -EINVAL with *why set (a static
 * sentence) when the input cannot be sent as is: not Matroska, more than one Segment, no Tracks
 * before the first Cluster, no Cluster, a Cluster without Timecode, a Cluster whose first frame
 * of the video track is not a keyframe, or a structure that overruns the file; or the read
 * callback's errno. *bad_cluster_ms is the time of the offending cluster when there is one
 * (else -1).
 */
int mkvin_scan(mkvin_read_fn rd, void *arg, uint64_t size, struct mkvin_info *info,
	       const char **why, int64_t *bad_cluster_ms);

#endif
