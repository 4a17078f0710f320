/*
 * images: GetImages (see include/kvsfs/kvs_images.h for the contract).
 *
 * Design: one kvs_get_images() call is one paginated listing (kvs_paginate in kvs.c) whose
 * pages are GetImages requests against the stream's GET_IMAGES data endpoint, each paced within
 * the per-stream quota. Each entry of a page is decoded (strict base64) into one reused buffer
 * and handed to the caller's callback before the next one, so at most one page of the reply and
 * one decoded image are in memory.
 *
 * Invariants: nothing is sent for a request outside the service's limits; an entry that does
 * not parse fails the whole call (-EIO, one log line), never a short or wrong image.
 */
#include "kvsfs/kvs_images.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kvs_int.h"

/* base64, standard alphabet (A-Z a-z 0-9 + and slash), padding optional: the value of one
 * character, or -1. */
static int b64_value(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

/* Decodes s (n chars) into a new buffer: 0 with *out and *len, 1 when s is not base64 or decodes
 * to more than max bytes, -ENOMEM. */
static int b64_decode(const char *s, size_t n, size_t max, unsigned char **out, size_t *len)
{
	while (n > 0 && s[n - 1] == '=' )
		n--;
	if (n % 4 == 1 || (size_t)(n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0)) > max)
		return 1;
	unsigned char *b = malloc(n / 4 * 3 + 3);
	if (!b)
		return -ENOMEM;
	size_t k = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64_value((unsigned char)s[i]);
		if (v < 0) {
			free(b);
			return 1;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			b[k++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	*out = b;
	*len = k;
	return 0;
}

int kvs_images_parse_entry(const json_t *o, struct kvs_image *img, unsigned char **buf)
{
	const char *err = NULL, *content = NULL;
	memset(img, 0, sizeof(*img));
	if (json_get_epoch_ms(o, "TimeStamp", &img->ts_ms))
		return 1;
	int erc = json_get_str(o, "Error", &err);
	int crc = json_get_str(o, "ImageContent", &content);
	if (erc == -EINVAL || crc == -EINVAL)
		return 1; /* present but not a string (null counts as absent) */
	if (erc == 0 && *err) {
		img->status = strcmp(err, "NO_MEDIA") == 0 ? KVS_IMAGE_NO_MEDIA : KVS_IMAGE_MEDIA_ERROR;
		return 0;
	}
	if (crc != 0 || !*content)
		return 1;
	unsigned char *b = NULL;
	size_t len = 0;
	int rc = b64_decode(content, strlen(content), KVS_IMAGES_MAX_BYTES, &b, &len);
	if (rc)
		return rc;
	if (len == 0) {
		free(b);
		return 1;
	}
	free(*buf);
	*buf = b;
	img->status = KVS_IMAGE_OK;
	img->data = b;
	img->len = len;
	return 0;
}

struct images_call {
	const struct kvs_images_req *r;
	kvs_image_fn fn;
	void *arg;
	long pages;
	unsigned char *buf;             /* the last decoded image */
	int stop;                       /* the callback's errno */
};

static int images_request(struct kvs_client *c, void *arg, const char *token, json_t **reply,
			  struct awserr *err)
{
	struct images_call *ic = arg;
	const struct kvs_images_req *r = ic->r;
	json_t *body = json_pack("{s:s,s:s,s:s,s:i,s:I}", "StreamName", r->stream,
				 "ImageSelectorType",
				 r->type == KVS_TS_SERVER ? "SERVER_TIMESTAMP" : "PRODUCER_TIMESTAMP",
				 "Format", "JPEG", "SamplingInterval", r->interval_ms, "MaxResults",
				 (json_int_t)r->max_results);
	if (!body || json_set_epoch_ms(body, "StartTimestamp", r->start_ms) ||
	    json_set_epoch_ms(body, "EndTimestamp", r->end_ms) ||
	    (r->width > 0 && json_object_set_new(body, "WidthPixels", json_integer(r->width))) ||
	    (token && json_object_set_new(body, "NextToken", json_string(token)))) {
		json_decref(body);
		return err ? awserr_set_errno(err, ENOMEM, "GetImages request") : -ENOMEM;
	}
	ic->pages++;
	int rc = kvs_data_call(c, r->stream, "GET_IMAGES", "/getImages", body, KVS_TPS_STREAM, 0,
			       reply, err);
	json_decref(body);
	return rc;
}

static int images_item(struct kvs_client *c, void *arg, json_t *it)
{
	struct images_call *ic = arg;
	struct kvs_image img;
	(void)c;
	int rc = kvs_images_parse_entry(it, &img, &ic->buf);
	if (rc)
		return rc;
	rc = ic->fn(ic->arg, &img);
	if (rc)
		ic->stop = rc;
	return rc < 0 ? rc : 0;
}

int kvs_get_images(struct kvs_client *c, const struct kvs_images_req *r, kvs_image_fn fn,
		   void *arg, long *pages, struct awserr *err)
{
	static const struct pager p = {
		.api = "GetImages", .field = "Images",
		.bad_field = "Images is not an array",
		.bad_item = "an image has no valid TimeStamp, or neither a valid ImageContent nor Error",
		.max_pages = 100000, .request = images_request, .item = images_item,
	};
	struct awserr local;
	struct awserr *e = err ? err : &local;
	if (pages)
		*pages = 0;
	if (!r->stream || r->start_ms < 0 || r->end_ms < r->start_ms ||
	    r->end_ms - r->start_ms > KVS_IMAGES_MAX_SPAN_MS ||
	    r->interval_ms < KVS_IMAGES_MIN_INTERVAL_MS || r->width < 0 || r->width > 3840 ||
	    r->max_results < 1 || r->max_results > 100)
		return awserr_set_errno(e, EINVAL, "GetImages request outside the service's limits");
	struct images_call ic = { .r = r, .fn = fn, .arg = arg };
	int rc = kvs_paginate(c, &p, &ic, e);
	free(ic.buf);
	if (pages)
		*pages = ic.pages;
	return rc;
}
