/*
 * kvs_images: GetImages (../shared/docs/kvs-api.md 2.6), the thumbnails of a stream.
 *
 * One call of kvs_get_images() asks for the images of one time range of at most 300 s (the
 * service's limit) and follows every NextToken page, each page paced within the stream's quota
 * (5 a second, as for the other archived-media APIs: the GetImages quota is unconfirmed) and
 * retried by the HTTP layer on throttling and 5xx. Every image is handed to a callback as it is
 * decoded, so memory stays one page of the reply whatever the range.
 *
 * Request shape (where the documents disagree, the newer model is followed and the choice is
 * written in docs/SEMANTICS.md): Format JPEG, SamplingInterval in ms (>= 200, no upper bound as
 * in the newer model), WidthPixels alone (the height keeps the aspect), MaxResults given, and on
 * follow-up pages the same request plus NextToken (the older model requires every field).
 * Thread-safe (the client is).
 */
#ifndef KVSFS_KVS_IMAGES_H
#define KVSFS_KVS_IMAGES_H

#include <stddef.h>
#include <stdint.h>

#include "kvsfs/json.h"
#include "kvsfs/kvs.h"

#define KVS_IMAGES_MAX_SPAN_MS 300000       /* EndTimestamp - StartTimestamp, at most */
#define KVS_IMAGES_MIN_INTERVAL_MS 200      /* SamplingInterval, at least */
#define KVS_IMAGES_MAX_BYTES (6u << 20)     /* one decoded image, at most */

enum kvs_image_status {
	KVS_IMAGE_OK = 0,        /* ImageContent present */
	KVS_IMAGE_NO_MEDIA,      /* Error NO_MEDIA: nothing at that time */
	KVS_IMAGE_MEDIA_ERROR,   /* Error MEDIA_ERROR (or an unknown Error value) */
};

/* One entry of a reply. data (len bytes) is valid only during the callback. */
struct kvs_image {
	int64_t ts_ms;                  /* TimeStamp */
	enum kvs_image_status status;
	const unsigned char *data;      /* decoded ImageContent; NULL unless KVS_IMAGE_OK */
	size_t len;
};

/* Called for each entry, in reply order; returns 0 to go on or a negative errno to stop (the
 * call then fails with it). */
typedef int (*kvs_image_fn)(void *arg, const struct kvs_image *img);

struct kvs_images_req {
	const char *stream;
	enum kvs_ts_type type;          /* ImageSelectorType */
	int64_t start_ms, end_ms;       /* inclusive; end - start <= KVS_IMAGES_MAX_SPAN_MS */
	int interval_ms;                /* SamplingInterval, >= KVS_IMAGES_MIN_INTERVAL_MS */
	int width;                      /* WidthPixels 1..3840; 0: the source size */
	int max_results;                /* MaxResults 1..100 */
};

/*
 * GetImages for r, every page. Returns 0, -EINVAL for a request outside the limits above
 * (nothing sent), or the errno of the failed call (err filled when not NULL); a reply whose
 * entries do not parse is -EIO with one log line. *pages (may be NULL) counts the requests sent.
 */
int kvs_get_images(struct kvs_client *c, const struct kvs_images_req *r, kvs_image_fn fn,
		   void *arg, long *pages, struct awserr *err);

/*
 * Parses one entry of a reply's Images array (a JSON object) into *img, decoding ImageContent
 * into *buf (malloc'd, replaced; the caller frees it). Returns 0, 1 for an entry that does not
 * parse (no or bad TimeStamp, bad base64, an image over KVS_IMAGES_MAX_BYTES, neither image nor
 * Error), or -ENOMEM. Exposed for the fuzz target.
 */
int kvs_images_parse_entry(const json_t *o, struct kvs_image *img, unsigned char **buf);

#endif
