/*
 * kvs_int.h: what the modules of the KVS client share (private to src/kvs/): the paginated
 * request loop, the data-plane call with its endpoint cache, the per-stream pacing and the
 * malformed-reply error. kvs.c defines them; images.c (GetImages) uses them.
 */
#ifndef KVSFS_KVS_INT_H
#define KVSFS_KVS_INT_H

#include <stdint.h>

#include "kvsfs/json.h"
#include "kvsfs/kvs.h"

#define KVS_TPS_STREAM 5      /* ListFragments, GetMediaForFragmentList, GetDataEndpoint, DescribeStream */
#define KVS_TPS_SESSION 1     /* HLS/DASH session creation, sustained */

/*
 * One paginated listing (ListStreams, ListFragments, GetImages): request() sends one page (token
 * NULL for the first) and returns the reply; every element of the reply's array field goes to
 * item(), which returns 0, a negative errno, or 1 for an element that does not parse (the
 * listing then fails with a malformed-reply error naming why). Pages follow NextToken until
 * there is none.
 */
struct pager {
	const char *api;            /* "ListStreams", for errors */
	const char *field;          /* the array of each reply */
	const char *bad_field;      /* message when that field is not an array */
	const char *bad_item;       /* message when item() refuses an element */
	long max_pages;             /* more is an endless pagination (a server bug) */
	int (*request)(struct kvs_client *c, void *arg, const char *token, json_t **reply,
		       struct awserr *err);
	int (*item)(struct kvs_client *c, void *arg, json_t *item);
};

/* Runs the listing p (see struct pager). Returns 0 or the first failure's negative errno. */
int kvs_paginate(struct kvs_client *c, const struct pager *p, void *arg, struct awserr *err);

/* Waits for a quota slot of (stream, api) at rate calls a second (no-op with no_quotas). */
void kvs_pace(struct kvs_client *c, const char *stream, const char *api, int rate);

/* One JSON call against the stream's data endpoint for api (GetDataEndpoint, cached), paced at
 * rate, within deadline (CLOCK_MONOTONIC ms; 0: none). body is borrowed; *reply is new. */
int kvs_data_call(struct kvs_client *c, const char *stream, const char *api, const char *path,
		  json_t *body, int rate, int64_t deadline, json_t **reply, struct awserr *err);

/* Logs one line for a malformed reply of op and returns -EIO (err filled when not NULL). */
int kvs_fail_reply(struct kvs_client *c, struct awserr *err, const char *op, const char *what);

#endif
