/*
 * putmedia: KVS PutMedia (kvs-api.md 3.1): one request streams a Matroska body (one Segment,
 * each Cluster one fragment) to the stream's PUT_MEDIA data endpoint with chunked transfer
 * encoding and reads the ACK events (one JSON object per line) that the service sends back on
 * the same connection while the body goes out.
 *
 * The call returns once the body is sent and every fragment has a final ACK (PERSISTED, or
 * RECEIVED for a stream without retention) or the first ERROR ACK arrives. Memory stays bounded:
 * the body comes from a read callback and ACK lines are parsed as they arrive (one line at most
 * 4 KiB). The request is signed with the empty-payload hash (the streaming form of the Java and
 * C producers). It is retried (throttling, ConnectionLimitExceededException, connection errors)
 * only while no byte of the body was sent: re-sending fragments KVS already took would only draw
 * 4004 errors. The body is paced to the documented ingest limits of a stream: 12.5 MB/s and,
 * on average over the body, 5 fragments/s; the caller serialises requests per stream (one
 * connection per stream).
 */
#ifndef KVSFS_PUTMEDIA_H
#define KVSFS_PUTMEDIA_H

#include <stdint.h>

#include "kvsfs/http.h"

struct kvs_client;

struct kvs_put_opts {
	int absolute;             /* 1: ABSOLUTE cluster timecodes; 0: RELATIVE to start_ms */
	int64_t start_ms;         /* x-amzn-producer-start-timestamp (RELATIVE) */
	http_read_fn read_fn;     /* the body (the whole Matroska Segment) */
	void *read_arg;
	uint64_t fragments;       /* clusters in the body: the call waits for their ACKs */
	int need_persisted;       /* 1: PERSISTED ends a fragment; 0: RECEIVED does */
	uint64_t max_bytes_per_s; /* pacing; 0: 12.5 MB/s */
	uint64_t body_bytes;      /* size of the body when known (0: unknown), for pacing the
	                           * fragment rate: 5 fragments/s on average */
};

struct kvs_put_result {
	uint64_t persisted, received, buffering;
	int error_id;             /* first ERROR ACK's ErrorId, 0 when none */
	int64_t error_timecode;   /* its FragmentTimecode, -1 when absent */
	char error_code[64];      /* its ErrorCode, "" when absent */
	uint64_t bytes_sent;
};

/*
 * Sends the body. Returns 0 when every fragment was acknowledged; the errno of the first ERROR
 * ACK (kvs_put_ack_errno) with *res describing it; -EIO when the reply ended before every
 * fragment had its ACK; or the errno of the request with *err (may be NULL) filled.
 */
int kvs_put_media(struct kvs_client *c, const char *stream, const struct kvs_put_opts *o,
		  struct kvs_put_result *res, struct awserr *err);

/* The errno of a PutMedia ERROR ACK ErrorId (docs/ERRORS.md "ingest/"); EIO for unknown ids. */
int kvs_put_ack_errno(int error_id);

#endif
