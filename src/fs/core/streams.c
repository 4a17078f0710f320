/*
 * streams: stream registry and retention windows (see streams.h for the contract).
 *
 * Design: one mutex guards the registry (every vstream ever shown, a singly linked list), the
 * last good listing (an array of vstream pointers in listing order) and its age. A refresh is a
 * single-flight generation: its leader calls ListStreams with no lock held, then swaps the new
 * array in under the mutex; callers that came meanwhile share its errno. Ages are measured on
 * the monotonic clock; `stale` forces the next use to refresh (streams_gone).
 *
 * Invariants: a vstream is never freed before streams_free, so the array and the kernel's nodes
 * may point at it without a reference count; the registry's mutex is never held across a call
 * or a log line, and is taken before a vstream's lock, never after.
 */
#include "streams.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvsfs/clk.h"
#include "kvsfs/awserr.h"
#include "kvsfs/kvs.h"
#include "kvsfs/log.h"
#include "kvsfs/sflight.h"
#include "kvsfs/names.h"

struct streams {
	struct streams_opts o;
	struct sflight *flight;         /* one ListStreams at a time */
	pthread_mutex_t lock;           /* guards all, shown, fetched_ms, stale */
	struct vstream *all;            /* every stream ever shown */
	struct vstream **shown;         /* last good listing, NULL-terminated; NULL before one */
	int64_t fetched_ms;             /* monotonic: when shown was listed */
	int stale;                      /* refresh at next use (a stream went away) */
};

int streams_new(const struct streams_opts *o, struct streams **out)
{
	struct streams *st = calloc(1, sizeof(*st));
	if (!st || sflight_new(NULL, &st->flight)) {
		free(st);
		return -ENOMEM;
	}
	st->o = *o;
	pthread_mutex_init(&st->lock, NULL);
	*out = st;
	return 0;
}

void streams_free(struct streams *st)
{
	if (!st)
		return;
	while (st->all) {
		struct vstream *s = st->all;
		st->all = s->link;
		pthread_mutex_destroy(&s->lock);
		pthread_cond_destroy(&s->ingest_cv);
		free(s->name);
		free(s);
	}
	free(st->shown);
	sflight_free(st->flight);
	pthread_mutex_destroy(&st->lock);
	free(st);
}

int streams_check(struct streams *st, char *err, size_t errlen)
{
	struct kvs_stream_list list = { 0 };
	struct awserr e;
	awserr_clear(&e);
	int rc = kvs_list_streams(st->o.kvs, st->o.prefix, &list, &e);
	if (rc) {
		char msg[600];
		LOG_DEBUG(st->o.log, "vfs", "listing streams at mount failed: %s",
			  awserr_format(&e, msg, sizeof(msg)));
		/* one short sentence: the server's text can be long (a signature mismatch carries
		 * the whole canonical request) */
		snprintf(err, errlen, "cannot list Kinesis Video streams: %s",
			 awserr_summary(&e, msg, sizeof(msg)));
		return rc;
	}
	kvs_stream_list_free(&list);
	return 0;
}

static int allowed(const struct streams *st, const char *name)
{
	if (st->o.prefix && strncmp(name, st->o.prefix, strlen(st->o.prefix)) != 0)
		return 0;
	if (!st->o.allow)
		return 1;
	for (char *const *s = st->o.allow; *s; s++)
		if (strcmp(*s, name) == 0)
			return 1;
	return 0;
}

/* Under st->lock: finds or makes the vstream of ks and updates its metadata. NULL: no memory. */
static struct vstream *upsert(struct streams *st, const struct kvs_stream *ks)
{
	struct vstream *s;
	for (s = st->all; s; s = s->link)
		if (strcmp(s->name, ks->name) == 0)
			break;
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s || !(s->name = strdup(ks->name))) {
			free(s);
			return NULL;
		}
		pthread_mutex_init(&s->lock, NULL);
		pthread_cond_init(&s->ingest_cv, NULL);
		s->link = st->all;
		st->all = s;
	}
	pthread_mutex_lock(&s->lock);
	s->retention_hours = ks->retention_hours;
	s->creation_ms = ks->creation_ms;
	pthread_mutex_unlock(&s->lock);
	return s;
}

/* 1 when the cached listing may be served. */
static int fresh(struct streams *st)
{
	pthread_mutex_lock(&st->lock);
	int ok = st->shown && !st->stale &&
		 clk_mono_ms() - st->fetched_ms < (int64_t)st->o.meta_ttl_s * 1000;
	pthread_mutex_unlock(&st->lock);
	return ok;
}

/* The refresh generation's work: one ListStreams, its result swapped in. */
static int fill(void *arg, void **val)
{
	struct streams *st = arg;
	(void)val;
	if (fresh(st))
		return 0; /* a generation that just ended made it */
	struct kvs_stream_list list = { 0 };
	struct awserr err;
	awserr_clear(&err);
	int rc = kvs_list_streams(st->o.kvs, st->o.prefix, &list, &err);
	if (rc) {
		char msg[600];
		LOG_ERROR(st->o.log, "vfs", "listing streams failed: %s",
			  awserr_format(&err, msg, sizeof(msg)));
		/* keep serving a stale list rather than failing, when there is one */
		pthread_mutex_lock(&st->lock);
		int have = st->shown != NULL;
		pthread_mutex_unlock(&st->lock);
		return have ? 0 : rc;
	}
	struct vstream **shown = calloc(list.n + 1, sizeof(*shown));
	size_t k = 0;
	pthread_mutex_lock(&st->lock);
	for (size_t i = 0; shown && i < list.n; i++) {
		struct kvs_stream *ks = &list.v[i];
		if (strcmp(ks->status, "ACTIVE") != 0 || !allowed(st, ks->name))
			continue;
		struct vstream *s = upsert(st, ks);
		if (s)
			shown[k++] = s;
	}
	if (shown) {
		free(st->shown);
		st->shown = shown;
		st->fetched_ms = clk_mono_ms();
		st->stale = 0;
	}
	pthread_mutex_unlock(&st->lock);
	kvs_stream_list_free(&list);
	return shown ? 0 : -ENOMEM;
}

/* Refreshes the listing when older than meta_ttl. Returns 0 or a negative errno. */
static int refresh(struct streams *st)
{
	void *unused;
	if (fresh(st))
		return 0;
	return sflight_do(st->flight, "ListStreams", fill, st, &unused);
}

int streams_lookup(struct streams *st, const char *name, struct vstream **out)
{
	int rc = refresh(st);
	if (rc)
		return rc;
	*out = NULL;
	pthread_mutex_lock(&st->lock);
	for (struct vstream **p = st->shown; p && *p; p++)
		if (strcmp((*p)->name, name) == 0) {
			*out = *p;
			break;
		}
	pthread_mutex_unlock(&st->lock);
	return *out ? 0 : -ENOENT;
}

int streams_shown(struct streams *st, struct vstream ***out)
{
	int rc = refresh(st);
	if (rc)
		return rc;
	pthread_mutex_lock(&st->lock);
	size_t n = 0;
	while (st->shown && st->shown[n])
		n++;
	struct vstream **v = calloc(n + 1, sizeof(*v));
	if (v && n)
		memcpy(v, st->shown, n * sizeof(*v));
	pthread_mutex_unlock(&st->lock);
	*out = v;
	return v ? 0 : -ENOMEM;
}

int streams_gone(struct streams *st, struct vstream *s)
{
	struct kvs_stream ks;
	struct awserr err;
	memset(&ks, 0, sizeof(ks));
	awserr_clear(&err);
	int rc = kvs_describe_stream(st->o.kvs, s->name, &ks, &err);
	int gone = rc == -ENOENT || (rc == 0 && ks.status && strcmp(ks.status, "DELETING") == 0);
	if (rc == 0)
		kvs_stream_free(&ks);
	if (gone) {
		pthread_mutex_lock(&st->lock);
		st->stale = 1;
		pthread_mutex_unlock(&st->lock);
	}
	return gone;
}

void streams_invalidate(struct streams *st)
{
	pthread_mutex_lock(&st->lock);
	st->stale = 1;
	pthread_mutex_unlock(&st->lock);
}

int64_t streams_creation_ms(struct vstream *s)
{
	pthread_mutex_lock(&s->lock);
	int64_t ms = s->creation_ms;
	pthread_mutex_unlock(&s->lock);
	return ms;
}

/* ---------------------------------------------------------------- read-ahead slots */

struct vstream_ra *streams_ra(struct vstream *s, int64_t hour_ms)
{
	struct vstream_ra *lru = &s->ra[0];
	for (int i = 0; i < VSTREAM_RA_SLOTS; i++) {
		struct vstream_ra *r = &s->ra[i];
		if (r->used && r->hour == hour_ms)
			return r;
		if (!r->used || (lru->used && r->tick < lru->tick))
			lru = r;
	}
	*lru = (struct vstream_ra){ .used = 1, .hour = hour_ms, .last = -10 };
	lru->tick = ++s->ra_tick;
	return lru;
}

/* ---------------------------------------------------------------- retention windows */

void streams_window(struct vstream *s, int64_t now, int64_t *from, int64_t *to)
{
	pthread_mutex_lock(&s->lock);
	int64_t hours = s->retention_hours;
	pthread_mutex_unlock(&s->lock);
	*to = now;
	*from = hours > 0 ? now - hours * NAMES_MS_PER_HOUR : now + 1;
}

int streams_day_in_window(struct vstream *s, int64_t day_ms, int64_t now)
{
	int64_t from, to;
	streams_window(s, now, &from, &to);
	return from <= to && day_ms + NAMES_MS_PER_DAY > from && day_ms <= to;
}

int streams_hour_in_window(struct vstream *s, int64_t hour_ms, int64_t now)
{
	int64_t from, to;
	streams_window(s, now, &from, &to);
	return from <= to && hour_ms + NAMES_MS_PER_HOUR > from && hour_ms <= to;
}

int streams_expired(struct vstream *s, const struct kvs_fragment *f, int64_t now)
{
	pthread_mutex_lock(&s->lock);
	int64_t hours = s->retention_hours;
	pthread_mutex_unlock(&s->lock);
	return hours > 0 && f->server_ms < now - hours * NAMES_MS_PER_HOUR;
}
