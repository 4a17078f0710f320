/*
 * clips: START-END.mp4 files made with KVS GetClip and START-END.mkv files written from the
 * fragments (contract in include/kvsfs/clips.h, design in docs/CLIPS.md; the files of this folder
 * in clips_int.h). This file: the object, names of every kind, made clips in the cache (size,
 * open, listing), and the single flight of generations (one per clip name, either kind).
 *
 * Single flight: a util/sflight keyed "stream/name". The first caller for a clip that is not
 * cached leads: it generates (generate.c) with no lock held, then finishes the flight with the
 * errno and the size; callers arriving meanwhile wait on the flight and share that result (a
 * waiter that wants the clip open opens it from the cache afterwards, and makes it again if it
 * was evicted in between). clips_free waits for generations and waiters through sflight_free.
 */
#include "clips_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvsfs/fcache.h"
#include "kvsfs/log.h"
#include "kvsfs/names.h"
#include "kvsfs/sflight.h"

/* ------------------------------------------------------------------ names */

int clips_parse(const char *name, int64_t *start_ms, int64_t *end_ms)
{
	int64_t a, b;
	if (!name || names_parse_clip(name, &a, &b))
		return -ENOENT;
	if (b < a)
		return -EINVAL;
	if (b - a > CLIPS_MAX_SPAN_MS)
		return -EFBIG;
	*start_ms = a;
	*end_ms = b;
	return 0;
}

static const char *const kind_ext[] = { ".mp4", ".mkv", ".m3u8", ".mpd" };

int clips_parse_kind(const char *name, int64_t *start_ms, int64_t *end_ms, enum clips_kind *kind)
{
	char tmp[96];
	size_t len = name ? strlen(name) : 0;
	for (int k = 0; k < 4; k++) {
		size_t el = strlen(kind_ext[k]);
		if (len <= el || len - el + 4 >= sizeof(tmp) || strcmp(name + len - el, kind_ext[k]))
			continue;
		/* the .mp4 grammar with the extension swapped */
		memcpy(tmp, name, len - el);
		memcpy(tmp + len - el, ".mp4", 5);
		*kind = (enum clips_kind)k;
		return clips_parse(tmp, start_ms, end_ms);
	}
	return -ENOENT;
}

int clips_format(int64_t start_ms, int64_t end_ms, enum clips_kind kind, char out[64])
{
	if (names_format_clip(start_ms, end_ms, out) || (unsigned)kind > CLIPS_MPD)
		return -EINVAL;
	size_t len = strlen(out);
	if (len - 4 + strlen(kind_ext[kind]) >= 64)
		return -EINVAL;
	strcpy(out + len - 4, kind_ext[kind]);
	return 0;
}

/* ------------------------------------------------------------------ object and cache */

static int remove_leftover(void *arg, const char *key, uint64_t size)
{
	struct clips *c = arg;
	(void)size;
	if (fcache_remove(c->o.cache, key) == 0)
		LOG_DEBUG(c->o.log, "clips", "removed a leftover temporary part (%s)", key);
	return 0;
}

int clips_new(const struct clips_opts *o, struct clips **out)
{
	*out = NULL;
	if (!o || !o->kvs || !o->cache)
		return -EINVAL;
	struct clips *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->o = *o;
	if (c->o.max_fragments <= 0)
		c->o.max_fragments = CLIPS_DEFAULT_MAX_FRAGMENTS;
	if (!c->o.max_bytes)
		c->o.max_bytes = CLIPS_DEFAULT_MAX_BYTES;
	if (sflight_new(NULL, &c->flights) != 0) {
		free(c);
		return -ENOMEM;
	}
	c->gen = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
	/* parts left by a crash: fcache_open already emptied tmp/, but committed parts remain */
	fcache_list(c->o.cache, TMP_PREFIX, remove_leftover, c);
	*out = c;
	return 0;
}

void clips_free(struct clips *c)
{
	if (!c)
		return;
	sflight_free(c->flights); /* waits for the generations and their waiters */
	free(c);
}

int cl_clip_key(const char *stream, const char *name, char *out)
{
	if (!stream || !*stream || strchr(stream, '/') || !name || !*name || strchr(name, '/'))
		return -ENOENT;
	int n = snprintf(out, FCACHE_KEY_MAX + 1, CLIP_PREFIX "%s/%s", stream, name);
	return n < 0 || n > FCACHE_KEY_MAX ? -ENAMETOOLONG : 0;
}

int clips_cached_size(struct clips *c, const char *stream, const char *name, uint64_t *size)
{
	char key[FCACHE_KEY_MAX + 1];
	int rc = cl_clip_key(stream, name, key);
	if (rc)
		return rc;
	return fcache_contains(c->o.cache, key, size) ? 0 : -ENOENT;
}

int clips_open(struct clips *c, const char *stream, const char *name, int *fd, uint64_t *size,
	       struct fcache_pin **pin)
{
	char key[FCACHE_KEY_MAX + 1];
	int rc = cl_clip_key(stream, name, key);
	if (rc)
		return rc;
	return fcache_get(c->o.cache, key, fd, size, pin);
}

void clips_unpin(struct clips *c, struct fcache_pin *pin)
{
	fcache_unpin(c->o.cache, pin);
}

struct list_ctx {
	size_t prefix_len;
	int (*fn)(void *arg, const char *name, uint64_t size);
	void *arg;
};

static int list_one(void *arg, const char *key, uint64_t size)
{
	struct list_ctx *l = arg;
	const char *name = key + l->prefix_len;
	if (!*name || strchr(name, '/'))
		return 0;
	return l->fn(l->arg, name, size);
}

int clips_list(struct clips *c, const char *stream,
	       int (*fn)(void *arg, const char *name, uint64_t size), void *arg)
{
	char prefix[FCACHE_KEY_MAX + 1];
	if (!stream || !*stream || strchr(stream, '/'))
		return 0;
	int n = snprintf(prefix, sizeof(prefix), CLIP_PREFIX "%s/", stream);
	if (n < 0 || n >= (int)sizeof(prefix))
		return 0;
	struct list_ctx l = { (size_t)n, fn, arg };
	return fcache_list(c->o.cache, prefix, list_one, &l);
}

/* ------------------------------------------------------------------ single flight */

#define OPEN_ATTEMPTS 3

/* clips_make* (fd NULL) and clips_make*_open (fd, pin); f: a .mkv, made from fragments. */
static int make_common(struct clips *c, struct fetcher *f, const char *stream, const char *name,
		       int64_t start_ms, int64_t end_ms, uint64_t *size, int *fd,
		       struct fcache_pin **pin)
{
	char key[FCACHE_KEY_MAX + 1];
	int rc = cl_clip_key(stream, name, key);
	if (rc)
		return rc;
	if (start_ms < 0 || end_ms < start_ms)
		return -EINVAL;
	const char *fkey = key + strlen(CLIP_PREFIX);
	for (int attempt = 0; attempt < OPEN_ATTEMPTS; attempt++) {
		if (fd) {
			rc = fcache_get(c->o.cache, key, fd, size, pin);
			if (rc != -ENOENT)
				return rc;
		} else if (fcache_contains(c->o.cache, key, size)) {
			return 0;
		}
		struct sflight_call *call;
		struct sflight_result res;
		rc = sflight_join(c->flights, fkey, &call, &res);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			/* another caller made it: share its result */
			if (res.err)
				return res.err;
			if (!fd) {
				*size = res.n;
				return 0;
			}
			continue; /* open it (made again if evicted meanwhile) */
		}
		uint64_t sz = 0;
		rc = f ? cl_make_mkv(c, f, stream, name, start_ms, end_ms, &sz, fd, pin)
		       : cl_make_one(c, stream, name, start_ms, end_ms, &sz, fd, pin);
		sflight_finish(c->flights, call, &(struct sflight_result){ .err = rc, .n = sz }, 0);
		if (rc == 0)
			*size = sz;
		return rc;
	}
	LOG_ERROR(c->o.log, "clips", "%s/%s: the clip was evicted from the cache before it could be "
		  "opened, %d times (cache too small for it?)", stream, name, OPEN_ATTEMPTS);
	return -ENOSPC;
}

int clips_make(struct clips *c, const char *stream, const char *name, int64_t start_ms,
	       int64_t end_ms, uint64_t *size)
{
	return make_common(c, NULL, stream, name, start_ms, end_ms, size, NULL, NULL);
}

int clips_make_mkv(struct clips *c, struct fetcher *f, const char *stream, const char *name,
		   int64_t start_ms, int64_t end_ms, uint64_t *size)
{
	if (!f)
		return -EINVAL;
	return make_common(c, f, stream, name, start_ms, end_ms, size, NULL, NULL);
}

int clips_make_mkv_open(struct clips *c, struct fetcher *f, const char *stream, const char *name,
			int64_t start_ms, int64_t end_ms, int *fd, uint64_t *size,
			struct fcache_pin **pin)
{
	*fd = -1;
	*pin = NULL;
	if (!f)
		return -EINVAL;
	return make_common(c, f, stream, name, start_ms, end_ms, size, fd, pin);
}

int clips_make_open(struct clips *c, const char *stream, const char *name, int64_t start_ms,
		    int64_t end_ms, int *fd, uint64_t *size, struct fcache_pin **pin)
{
	*fd = -1;
	*pin = NULL;
	return make_common(c, NULL, stream, name, start_ms, end_ms, size, fd, pin);
}
