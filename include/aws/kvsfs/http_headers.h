/*
 * http_headers: an ordered list of HTTP header name/value pairs, names compared
 * case-insensitively, as the HTTP client sends and receives them (and as the S3 and KVS clients
 * build them).
 *
 * Invariant: every entry added through this API has a non-empty token name (no control
 * characters, spaces or ':') and a value free of CR/LF/NUL, so a list can go on the wire as is.
 * Duplicates are allowed (the order is kept); set/remove act on every entry of a name.
 * Not thread-safe: a list belongs to one request or response.
 */
#ifndef KVSFS_HTTP_HEADERS_H
#define KVSFS_HTTP_HEADERS_H

#include <stddef.h>

/* ---- headers: an ordered list of name/value pairs, names compared case-insensitively ---- */

struct http_header {
	char *name;   /* malloc'd, as given (request) or as received (response) */
	char *value;  /* malloc'd, surrounding whitespace trimmed for received headers */
};

struct http_headers {
	struct http_header *v;
	size_t n, cap;
};

#define HTTP_HEADERS_INIT { NULL, 0, 0 }

/* Frees all entries; h is empty and reusable afterwards. */
void http_headers_free(struct http_headers *h);
/* Removes all entries but keeps storage. */
void http_headers_clear(struct http_headers *h);
/* Appends name: value (duplicates allowed). Names must be non-empty tokens and values free of
 * CR/LF/NUL, else -EINVAL. Returns 0, -EINVAL or -ENOMEM. */
int http_headers_add(struct http_headers *h, const char *name, const char *value);
/* Replaces every existing entry of that name with one entry (or appends). Same errors as add. */
int http_headers_set(struct http_headers *h, const char *name, const char *value);
/* Removes every entry of that name. */
void http_headers_remove(struct http_headers *h, const char *name);
/* Returns the value of the first entry of that name (case-insensitive), or NULL. The pointer is
 * owned by h and valid until h changes. */
const char *http_headers_get(const struct http_headers *h, const char *name);
/* Copies src's entries after dst's. Returns 0 or -ENOMEM (dst may then hold a prefix). */
int http_headers_copy(struct http_headers *dst, const struct http_headers *src);

#endif
