/*
 * http_internal: what the files of the HTTP client share (private to src/aws/http*.c):
 * the client object (http_client.c creates it, http.c runs requests on it) and the unchecked
 * header append used for headers as received.
 */
#ifndef KVSFS_AWS_HTTP_INTERNAL_H
#define KVSFS_AWS_HTTP_INTERNAL_H

#include <curl/curl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "kvsfs/http.h"

#define HTTP_MOD "http"

struct http_client {
	struct log_ctx *log;
	long connect_timeout_ms;
	long low_speed_limit;
	long low_speed_time_s;
	long total_timeout_ms;
	int no_verify_ssl;
	struct http_retry_policy retry;
	char *user_agent;
	size_t max_error_body;
	unsigned pool_max_idle;

	char *ca_data; /* combined PEM bundle (system + ca_file), NULL when no ca_file */
	size_t ca_len;

	pthread_mutex_t pool_lock;
	CURL **idle;
	size_t n_idle;

	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];

	pthread_mutex_t rng_lock;
	uint64_t rng;
};

/* Appends name[0..nlen): value[0..vlen) without checking them (received headers, already
 * screened by the caller). Returns 0 or -ENOMEM. */
int http_headers_push(struct http_headers *h, const char *name, size_t nlen, const char *value,
		      size_t vlen);

/* Takes an idle easy handle (or a new one); NULL when out of memory. */
CURL *http_pool_get(struct http_client *c);
/* Resets the handle and keeps it idle (its live connections stay), or frees it. */
void http_pool_put(struct http_client *c, CURL *h);
/* The full-jitter delay before retry number n (0-based), from the client's PRNG. */
unsigned http_next_delay(struct http_client *c, unsigned n);

#endif
