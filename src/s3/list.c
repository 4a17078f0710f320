/*
 * s3 list.c: the listings, ListObjectsV2 and ListMultipartUploads, each followed over every page
 * (see include/kvsfs/s3.h; src/s3/s3_int.h for the module's map).
 *
 * Design: one loop per listing builds the page's query (list-type=2, prefix, delimiter,
 * max-keys, continuation-token / uploads, prefix, max-uploads, key-marker, upload-id-marker),
 * reads the bounded XML reply and has s3xml parse it. A truncated page must carry a new
 * continuation token (or new markers): a missing or repeated one is -EIO instead of an endless
 * loop. ListObjectsV2 hands each page to a callback (s3_list_objects_pages, memory bounded by
 * one page); s3_list_objects is that loop with a callback that moves the entries into the
 * caller's list.
 *
 * Invariants: one log line per failed call (s3i_run / s3i_fail, the prefix in place of a key);
 * every page's strings are freed or moved before the next request.
 */
#include "s3_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The query of one ListObjectsV2 page. */
static int list_query(struct buf *q, const char *prefix, const char *delimiter, const char *page,
		      const char *token)
{
	int rc = s3i_query_add(q, "list-type", "2");
	if (!rc && prefix && *prefix)
		rc = s3i_query_add(q, "prefix", prefix);
	if (!rc && delimiter && *delimiter)
		rc = s3i_query_add(q, "delimiter", delimiter);
	if (!rc)
		rc = s3i_query_add(q, "max-keys", page);
	if (!rc && token)
		rc = s3i_query_add(q, "continuation-token", token);
	return rc;
}

/* Fetches and parses one ListObjectsV2 page into *page (emptied first). */
static int list_page(struct s3_client *c, const char *logkey, const char *query,
		     struct s3xml_list *page, struct awserr *err)
{
	struct buf url = BUF_INIT, reply = BUF_INIT;
	struct http_response resp;
	s3xml_list_free(page);
	if (s3i_url(c, NULL, query, &url)) {
		buf_free(&url);
		return s3i_fail(c, "ListObjectsV2", logkey, ENOMEM, "out of memory", err);
	}
	struct awsreq r = { .method = "GET", .url = url.data, .idempotent = 1 };
	int rc = s3i_run_xml(c, "ListObjectsV2", logkey, &r, &reply, &resp, S3I_QUIET_NONE, err);
	http_response_free(&resp);
	if (!rc) {
		rc = s3xml_parse_list_v2(reply.data, reply.len, page);
		if (rc)
			rc = s3i_fail(c, "ListObjectsV2", logkey, -rc, rc == -ENOMEM ?
				      "out of memory" : "malformed ListBucketResult", err);
	}
	buf_free(&url);
	buf_free(&reply);
	return rc;
}

int s3_list_objects_pages(struct s3_client *c, const char *prefix, const char *delimiter,
			  s3_list_page_fn page_fn, void *arg, struct awserr *err)
{
	struct buf q = BUF_INIT;
	struct s3xml_list page = { 0 };
	char *prev_token = NULL;
	char pages[16];
	int rc = 0;
	const char *logkey = prefix ? prefix : "";
	snprintf(pages, sizeof(pages), "%d", c->page_size);
	for (;;) {
		buf_reset(&q);
		if (list_query(&q, prefix, delimiter, pages, prev_token)) {
			rc = s3i_fail(c, "ListObjectsV2", logkey, ENOMEM, "out of memory", err);
			break;
		}
		rc = list_page(c, logkey, q.data, &page, err);
		if (rc)
			break;
		if (page.truncated && (!page.next_token || !page.next_token[0] ||
				       (prev_token && strcmp(prev_token, page.next_token) == 0))) {
			rc = s3i_fail(c, "ListObjectsV2", logkey, EIO,
				      "truncated listing without a new continuation token", err);
			break;
		}
		int more = page.truncated;
		free(prev_token);
		prev_token = page.next_token;
		page.next_token = NULL;
		rc = page_fn(arg, &page);
		if (rc < 0) {
			rc = s3i_fail(c, "ListObjectsV2", logkey, -rc, "stopped by the caller", err);
			break;
		}
		if (rc > 0 || !more) {
			rc = 0;
			break;
		}
	}
	s3xml_list_free(&page);
	free(prev_token);
	buf_free(&q);
	return rc;
}

struct list_merge {
	struct s3xml_list *out;
	size_t start, max;
};

/* Moves n entries of size elem from *src to the end of *dst (capacity *cap, count *dn). */
static int move_entries(void **dst, size_t *dn, size_t *cap, void *src, size_t n, size_t elem)
{
	if (!n)
		return 0;
	size_t need = *dn + n;
	if (need > *cap) {
		void *v = realloc(*dst, need * elem);
		if (!v)
			return -ENOMEM;
		*dst = v;
		*cap = need;
	}
	memcpy((char *)*dst + *dn * elem, src, n * elem);
	*dn = need;
	return 0;
}

/* Moves a page's entries into the caller's list; stops once max entries were collected. */
static int list_merge_page(void *arg, struct s3xml_list *page)
{
	struct list_merge *m = arg;
	struct s3xml_list *o = m->out;
	if (move_entries((void **)&o->objects, &o->n_objects, &o->cap_objects, page->objects,
			 page->n_objects, sizeof(*o->objects)))
		return -ENOMEM;
	page->n_objects = 0;  /* the keys now belong to out */
	if (move_entries((void **)&o->prefixes, &o->n_prefixes, &o->cap_prefixes, page->prefixes,
			 page->n_prefixes, sizeof(*o->prefixes)))
		return -ENOMEM;
	page->n_prefixes = 0;
	o->truncated = page->truncated;
	o->key_count = page->key_count;
	if (m->max && o->n_objects + o->n_prefixes - m->start >= m->max)
		return 1;
	return 0;
}

int s3_list_objects(struct s3_client *c, const char *prefix, const char *delimiter,
		    size_t max_entries, struct s3xml_list *out, struct awserr *err)
{
	struct list_merge m = { out, out->n_objects + out->n_prefixes, max_entries };
	return s3_list_objects_pages(c, prefix, delimiter, list_merge_page, &m, err);
}

/* ---- ListMultipartUploads ---- */

/* The query of one ListMultipartUploads page. */
static int uploads_query(struct buf *q, const char *prefix, const char *page,
			 const char *key_marker, const char *id_marker)
{
	int rc = buf_appendz(q, "uploads");
	if (!rc && prefix && *prefix)
		rc = s3i_query_add(q, "prefix", prefix);
	if (!rc)
		rc = s3i_query_add(q, "max-uploads", page);
	if (!rc && key_marker)
		rc = s3i_query_add(q, "key-marker", key_marker);
	if (!rc && id_marker)
		rc = s3i_query_add(q, "upload-id-marker", id_marker);
	return rc;
}

/* Fetches one ListMultipartUploads page and appends it to *out. */
static int uploads_page(struct s3_client *c, const char *logkey, const char *query,
			struct s3xml_uploads *out, struct awserr *err)
{
	struct buf url = BUF_INIT, reply = BUF_INIT;
	struct http_response resp;
	if (s3i_url(c, NULL, query, &url)) {
		buf_free(&url);
		return s3i_fail(c, "ListMultipartUploads", logkey, ENOMEM, "out of memory", err);
	}
	struct awsreq r = { .method = "GET", .url = url.data, .idempotent = 1 };
	int rc = s3i_run_xml(c, "ListMultipartUploads", logkey, &r, &reply, &resp, S3I_QUIET_NONE,
			     err);
	http_response_free(&resp);
	if (!rc) {
		rc = s3xml_parse_list_uploads(reply.data, reply.len, out);
		if (rc)
			rc = s3i_fail(c, "ListMultipartUploads", logkey, -rc, rc == -ENOMEM ?
				      "out of memory" : "malformed ListMultipartUploadsResult", err);
	}
	buf_free(&url);
	buf_free(&reply);
	return rc;
}

int s3_mpu_list(struct s3_client *c, const char *prefix, struct s3xml_uploads *out,
		struct awserr *err)
{
	struct buf q = BUF_INIT;
	char *key_marker = NULL, *id_marker = NULL;
	char pages[16];
	const char *logkey = prefix ? prefix : "";
	int rc = 0;
	snprintf(pages, sizeof(pages), "%d", c->page_size);
	for (;;) {
		buf_reset(&q);
		if (uploads_query(&q, prefix, pages, key_marker, id_marker)) {
			rc = s3i_fail(c, "ListMultipartUploads", logkey, ENOMEM, "out of memory", err);
			break;
		}
		rc = uploads_page(c, logkey, q.data, out, err);
		if (rc || !out->truncated)
			break;
		const char *nk = out->next_key_marker ? out->next_key_marker : "";
		const char *ni = out->next_upload_id_marker ? out->next_upload_id_marker : "";
		if (!nk[0] || (key_marker && !strcmp(key_marker, nk) && id_marker &&
			       !strcmp(id_marker, ni))) {
			rc = s3i_fail(c, "ListMultipartUploads", logkey, EIO,
				      "truncated listing without new markers", err);
			break;
		}
		free(key_marker);
		free(id_marker);
		key_marker = strdup(nk);
		id_marker = ni[0] ? strdup(ni) : NULL;
		if (!key_marker || (ni[0] && !id_marker)) {
			rc = s3i_fail(c, "ListMultipartUploads", logkey, ENOMEM, "out of memory", err);
			break;
		}
	}
	free(key_marker);
	free(id_marker);
	buf_free(&q);
	return rc;
}
