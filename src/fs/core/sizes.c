/*
 * sizes: the fragment-size model (see sizes.h and docs/SIZES.md).
 *
 * Invariant: a size once confirmed by a download (in the index) is what stat shows from then on;
 * a prediction may change when the stream's correction is learned, never after confirmation.
 */
#include "sizes.h"

#include <stdio.h>
#include <string.h>

#include "streams.h"
#include "kvsfs/fcache.h"
#include "kvsfs/kvs.h"
#include "kvsfs/sizeidx.h"

static size_t digits_of_seconds(int64_t ms)
{
	char tmp[32];
	return (size_t)snprintf(tmp, sizeof(tmp), "%lld.%03lld", (long long)(ms / 1000),
				(long long)(ms % 1000));
}

/*
 * Bytes GetMediaForFragmentList adds to a stored fragment: a Segment header with an 8-byte
 * unknown size (12) and one Tags element as KVS writes it (4-byte sizes everywhere): Tags (8),
 * one Tag (6), three SimpleTags (6 each) holding TagName (6 + name) and TagString (6 + value)
 * for FRAGMENT_NUMBER, SERVER_TIMESTAMP and PRODUCER_TIMESTAMP (values: the number, and the
 * timestamps as seconds with 3 decimals).
 */
static int64_t overhead(const struct kvs_fragment *f)
{
	static const size_t names_len = sizeof("AWS_KINESISVIDEO_FRAGMENT_NUMBER") - 1 +
					sizeof("AWS_KINESISVIDEO_SERVER_TIMESTAMP") - 1 +
					sizeof("AWS_KINESISVIDEO_PRODUCER_TIMESTAMP") - 1;
	size_t values = strlen(f->number) + digits_of_seconds(f->server_ms) +
			digits_of_seconds(f->producer_ms);
	return (int64_t)(12 + 8 + 6 + 3 * (6 + 6 + 6) + names_len + values);
}

int64_t sizes_model(const struct kvs_fragment *f)
{
	return (f->size > 0 ? f->size : 0) + overhead(f);
}

static void key_of(const char *stream, const char *number, char *out, size_t n)
{
	snprintf(out, n, "%s/%s", stream, number);
}

uint64_t sizes_of(struct sizeidx *idx, struct vstream *s, const struct kvs_fragment *f,
		  int *exact)
{
	char key[FCACHE_KEY_MAX];
	int64_t known;
	key_of(s->name, f->number, key, sizeof(key));
	if (idx && sizeidx_get(idx, key, &known) == 0 && known >= 0) {
		*exact = 1;
		return (uint64_t)known;
	}
	*exact = 0;
	pthread_mutex_lock(&s->lock);
	int64_t corr = s->correction_known ? s->correction : 0;
	pthread_mutex_unlock(&s->lock);
	int64_t pred = sizes_model(f) + corr;
	return pred > 0 ? (uint64_t)pred : 0;
}

int sizes_learn(struct vstream *s, const struct kvs_fragment *f, uint64_t true_size)
{
	int64_t corr = (int64_t)true_size - sizes_model(f);
	pthread_mutex_lock(&s->lock);
	int changed = !s->correction_known || s->correction != corr;
	s->correction_known = 1;
	s->correction = corr;
	pthread_mutex_unlock(&s->lock);
	return changed;
}

void sizes_record(struct sizeidx *idx, const char *stream, const char *number, uint64_t size)
{
	char key[FCACHE_KEY_MAX];
	if (!idx)
		return;
	key_of(stream, number, key, sizeof(key));
	sizeidx_put(idx, key, (int64_t)size);
}
