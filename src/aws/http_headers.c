/*
 * http_headers: ordered header lists (see include/kvsfs/http_headers.h).
 * Design: a growable array of malloc'd name/value pairs; lookups are linear (lists are short).
 * The checks of the public add/set keep the invariant; http_headers_push skips them for headers
 * that come from the wire.
 */
#include "kvsfs/http_headers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_internal.h"
#include "kvsfs/array.h"

static int header_name_ok(const char *name)
{
	if (!name || !*name)
		return 0;
	for (const char *p = name; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch <= 0x20 || ch >= 0x7f || ch == ':')
			return 0;
	}
	return 1;
}

static int header_value_ok(const char *value)
{
	if (!value)
		return 0;
	for (const char *p = value; *p; p++)
		if (*p == '\r' || *p == '\n')
			return 0;
	return 1;
}

void http_headers_clear(struct http_headers *h)
{
	for (size_t i = 0; i < h->n; i++) {
		free(h->v[i].name);
		free(h->v[i].value);
	}
	h->n = 0;
}

void http_headers_free(struct http_headers *h)
{
	http_headers_clear(h);
	free(h->v);
	h->v = NULL;
	h->cap = 0;
}

int http_headers_push(struct http_headers *h, const char *name, size_t nlen, const char *value,
		      size_t vlen)
{
	struct http_header *v = array_grow(h->v, h->n, &h->cap, sizeof(*v), 8);
	if (!v)
		return -ENOMEM;
	h->v = v;
	char *n = strndup(name, nlen);
	char *val = strndup(value, vlen);
	if (!n || !val) {
		free(n);
		free(val);
		return -ENOMEM;
	}
	h->v[h->n].name = n;
	h->v[h->n].value = val;
	h->n++;
	return 0;
}

int http_headers_add(struct http_headers *h, const char *name, const char *value)
{
	if (!header_name_ok(name) || !header_value_ok(value))
		return -EINVAL;
	return http_headers_push(h, name, strlen(name), value, strlen(value));
}

void http_headers_remove(struct http_headers *h, const char *name)
{
	size_t o = 0;
	for (size_t i = 0; i < h->n; i++) {
		if (strcasecmp(h->v[i].name, name) == 0) {
			free(h->v[i].name);
			free(h->v[i].value);
			continue;
		}
		h->v[o++] = h->v[i];
	}
	h->n = o;
}

int http_headers_set(struct http_headers *h, const char *name, const char *value)
{
	if (!header_name_ok(name) || !header_value_ok(value))
		return -EINVAL;
	for (size_t i = 0; i < h->n; i++) {
		if (strcasecmp(h->v[i].name, name) != 0)
			continue;
		char *val = strdup(value);
		if (!val)
			return -ENOMEM;
		free(h->v[i].value);
		h->v[i].value = val;
		/* drop later duplicates */
		size_t o = i + 1;
		for (size_t j = i + 1; j < h->n; j++) {
			if (strcasecmp(h->v[j].name, name) == 0) {
				free(h->v[j].name);
				free(h->v[j].value);
				continue;
			}
			h->v[o++] = h->v[j];
		}
		h->n = o;
		return 0;
	}
	return http_headers_push(h, name, strlen(name), value, strlen(value));
}

const char *http_headers_get(const struct http_headers *h, const char *name)
{
	for (size_t i = 0; i < h->n; i++)
		if (strcasecmp(h->v[i].name, name) == 0)
			return h->v[i].value;
	return NULL;
}

int http_headers_copy(struct http_headers *dst, const struct http_headers *src)
{
	for (size_t i = 0; src && i < src->n; i++) {
		const struct http_header *e = &src->v[i];
		int rc = http_headers_push(dst, e->name, strlen(e->name), e->value, strlen(e->value));
		if (rc)
			return rc;
	}
	return 0;
}
