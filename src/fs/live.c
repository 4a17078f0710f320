/*
 * live: playback sessions of live.m3u8 / live.mpd (see include/kvsfs/live.h for the contract).
 *
 * Design: one mutex per set guards every session's state; one condition variable (on
 * CLOCK_MONOTONIC) is broadcast when a creation ends and when a creation thread exits. A session
 * is in one of: no current document (none yet, renewal due, or failed), creation in flight
 * (creating, started_at), or current (doc and now < renew_at). The creating flag is set under
 * the lock by the one caller that starts a creation; the thread clears it and bumps gen when it
 * publishes the result, so a waiter knows its creation ended when gen moved.
 *
 * Invariants: the lock is never held across kvs calls, document rewriting or a log line; the
 * creation thread touches the set after it published its result only to count itself out, and
 * live_set_free waits for that count to reach 0 before freeing anything. Documents are
 * immutable and refcounted, so a reader keeps the one its open got while a renewal replaces it.
 */
#include "kvsfs/clk.h"
#include "kvsfs/live.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvsfs/awserr.h"
#include "kvsfs/buf.h"
#include "kvsfs/kvs.h"
#include "kvsfs/log.h"

struct live_session {
	struct live_set *set;
	char *stream;
	int dash;
	int ranged;                 /* an ON_DEMAND session over range (live_range_open) */
	struct kvs_range range;
	/* guarded by set->lock (ranged sessions) */
	int users;                  /* callers inside live_range_open */
	int64_t used_at;            /* monotonic ms of the last live_range_open */
	/* guarded by set->lock */
	struct live_doc *doc;       /* newest document, NULL when none (kept past renew_at) */
	int64_t doc_epoch_ms;       /* when doc was made (wall clock, for mtime) */
	int64_t renew_at;           /* monotonic ms: from then on a new session is needed */
	int creating;               /* a creation is in flight */
	int64_t started_at;         /* monotonic ms: when it began */
	unsigned gen;               /* creations ended so far */
	int fail_rc;                /* negative errno of the last creation when it failed, else 0 */
	int64_t failed_at;          /* monotonic ms */
	struct live_session *link;
};

struct live_set {
	struct live_opts o;
	pthread_mutex_t lock;
	pthread_cond_t cond;        /* CLOCK_MONOTONIC; broadcast: creation ended, thread exited */
	int threads;                /* creation threads running */
	struct live_session *sessions;
};

void live_doc_unref(struct live_doc *d)
{
	if (d && __atomic_sub_fetch(&d->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(d);
}

static struct live_doc *doc_ref(struct live_doc *d)
{
	__atomic_add_fetch(&d->refs, 1, __ATOMIC_ACQ_REL);
	return d;
}

/* ---------------------------------------------------------------- document rewriting */

/* Appends base + rel when rel is relative, else rel. */
static int absolutize(struct buf *out, const char *base, size_t base_len, const char *rel, size_t n)
{
	if (n >= 7 && (strncmp(rel, "http://", 7) == 0 || strncmp(rel, "https://", 8) == 0))
		return buf_append(out, rel, n);
	int rc = buf_append(out, base, base_len);
	return rc ? rc : buf_append(out, rel, n);
}

/* Rewrites an HLS playlist so every URI is absolute (URI lines and URI="..." attributes). */
static int hls_absolute(const char *doc, size_t len, const char *url, struct buf *out)
{
	size_t qpos = strcspn(url, "?");
	size_t base_len = qpos;
	while (base_len > 0 && url[base_len - 1] != '/')
		base_len--;
	const char *p = doc, *end = doc + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
		size_t content = ll;
		if (content > 0 && p[content - 1] == '\r')
			content--;
		int rc = 0;
		if (content == 0) {
			/* blank line */
		} else if (p[0] != '#') {
			rc = absolutize(out, url, base_len, p, content);
		} else {
			const char *u = NULL;
			for (const char *q = p; q + 5 <= p + content; q++)
				if (strncmp(q, "URI=\"", 5) == 0) {
					u = q + 5;
					break;
				}
			const char *ue = u ? memchr(u, '"', (size_t)(p + content - u)) : NULL;
			if (u && ue) {
				rc = buf_append(out, p, (size_t)(u - p));
				if (!rc)
					rc = absolutize(out, url, base_len, u, (size_t)(ue - u));
				if (!rc)
					rc = buf_append(out, ue, (size_t)(p + content - ue));
			} else {
				rc = buf_append(out, p, content);
			}
		}
		if (!rc)
			rc = buf_putc(out, '\n');
		if (rc)
			return rc;
		p += ll + (nl ? 1 : 0);
	}
	return 0;
}

/* Adds <BaseURL> and <Location> right after the MPD start tag so the manifest works from a file. */
static int dash_absolute(const char *doc, size_t len, const char *url, struct buf *out)
{
	const char *mpd = NULL;
	for (const char *q = doc; q + 4 <= doc + len; q++)
		if (strncmp(q, "<MPD", 4) == 0 && (q[4] == ' ' || q[4] == '>' || q[4] == '\n')) {
			mpd = q;
			break;
		}
	const char *gt = mpd ? memchr(mpd, '>', (size_t)(doc + len - mpd)) : NULL;
	if (!gt)
		return -EBADMSG;
	size_t qpos = strcspn(url, "?"), base_len = qpos;
	while (base_len > 0 && url[base_len - 1] != '/')
		base_len--;
	struct buf esc = BUF_INIT;
	int rc = 0;
	for (const char *c = url; *c && !rc; c++)
		rc = *c == '&' ? buf_appendz(&esc, "&amp;") : buf_putc(&esc, *c);
	if (!rc)
		rc = buf_append(out, doc, (size_t)(gt + 1 - doc));
	if (!rc)
		rc = buf_printf(out, "<BaseURL>%.*s</BaseURL><Location>%s</Location>", (int)base_len,
				url, buf_str(&esc));
	if (!rc)
		rc = buf_append(out, gt + 1, (size_t)(doc + len - gt - 1));
	buf_free(&esc);
	return rc;
}

/* ---------------------------------------------------------------- creation */

/* The network part, no lock held: a new document in *out, or a negative errno (logged once). */
static int make_doc(struct live_session *s, struct live_doc **out)
{
	struct live_set *set = s->set;
	const char *kind = s->dash ? "DASH" : "HLS";
	char *url = NULL;
	struct buf raw = BUF_INIT, doc = BUF_INIT;
	struct awserr err;
	awserr_clear(&err);
	*out = NULL;
	int rc = kvs_playback_session(set->o.kvs, s->stream, s->dash, s->ranged ? &s->range : NULL,
				      set->o.expires_s, set->o.budget_ms, &url, &raw, &err);
	if (rc == -ENOENT && s->ranged) {
		LOG_WARN(set->o.log, "live", "%s: no fragment in the playlist's range%s%s", s->stream,
			 err.message[0] ? ": " : "", err.message);
	} else if (rc == -ENOENT && err.http_status == 404) {
		LOG_WARN(set->o.log, "live", "%s: stream is not live (no fragment in the last 30 s)%s%s",
			 s->stream, err.message[0] ? ": " : "", err.message);
		rc = -ENODATA;
	} else if (rc) {
		char msg[600];
		LOG_ERROR(set->o.log, "live", "%s: %s playback session failed: %s", s->stream, kind,
			  awserr_format(&err, msg, sizeof(msg)));
	} else {
		const char *d = raw.data ? raw.data : "";
		rc = s->dash ? dash_absolute(d, raw.len, url, &doc) : hls_absolute(d, raw.len, url, &doc);
		if (rc && rc != -ENOMEM) {
			LOG_ERROR(set->o.log, "live", "%s: the %s session document is malformed",
				  s->stream, s->dash ? "DASH manifest" : "HLS playlist");
			rc = -EIO;
		}
	}
	if (rc == 0) {
		struct live_doc *b = malloc(sizeof(*b) + doc.len + 1);
		if (b) {
			b->refs = 1;
			b->len = doc.len;
			memcpy(b->data, doc.data ? doc.data : "", doc.len);
			b->data[doc.len] = '\0';
			*out = b;
		} else {
			rc = -ENOMEM;
		}
	}
	free(url);
	buf_free(&raw);
	buf_free(&doc);
	return rc;
}

/* Makes a document and publishes the result to every waiter. Called with creating set. */
static void create(struct live_session *s)
{
	struct live_set *set = s->set;
	struct live_doc *b = NULL, *old = NULL;
	int rc = make_doc(s, &b);
	pthread_mutex_lock(&set->lock);
	int64_t now = clk_mono_ms();
	if (rc == 0) {
		old = s->doc;
		s->doc = b;
		s->doc_epoch_ms = clk_wall_ms();
		/* renew at 80 % of the lifetime, so a player always gets a URL with time left */
		s->renew_at = now + (int64_t)set->o.expires_s * 800;
		s->fail_rc = 0;
	} else {
		s->fail_rc = rc;
		s->failed_at = now;
		if (rc == -ENODATA) { /* not live: its last document says nothing any more */
			old = s->doc;
			s->doc = NULL;
		}
	}
	s->creating = 0;
	s->gen++;
	pthread_cond_broadcast(&set->cond);
	pthread_mutex_unlock(&set->lock);
	live_doc_unref(old);
	if (rc == 0)
		LOG_INFO(set->o.log, "live", "%s: new %s%s playback session (expires in %d s)", s->stream,
			 s->ranged ? "ON_DEMAND " : "", s->dash ? "DASH" : "HLS", set->o.expires_s);
}

static void *creator(void *arg)
{
	struct live_session *s = arg;
	struct live_set *set = s->set;
	create(s);
	pthread_mutex_lock(&set->lock);
	set->threads--;
	pthread_cond_broadcast(&set->cond);
	pthread_mutex_unlock(&set->lock);
	return NULL;
}

/*
 * Under the lock, with no creation in flight: marks one as begun and starts its thread.
 * Returns 0 (thread started), 1 (no thread could be started and inline is set: the caller
 * must call create() itself, without the lock), or -1 (none started, nothing changed).
 */
static int start_locked(struct live_session *s, int64_t now, int inline_ok)
{
	struct live_set *set = s->set;
	s->creating = 1;
	s->started_at = now;
	pthread_attr_t attr;
	pthread_t t;
	int rc = pthread_attr_init(&attr);
	if (rc == 0) {
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		rc = pthread_create(&t, &attr, creator, s);
		pthread_attr_destroy(&attr);
	}
	if (rc == 0) {
		set->threads++;
		return 0;
	}
	if (inline_ok)
		return 1;
	s->creating = 0;
	return -1;
}

/* Under the lock: waits until the creation in flight ends (1) or until the monotonic time
 * until (< 0: no limit) passes (0). */
static int wait_locked(struct live_session *s, int64_t until)
{
	struct live_set *set = s->set;
	unsigned g = s->gen;
	while (s->gen == g) {
		if (until < 0) {
			pthread_cond_wait(&set->cond, &set->lock);
			continue;
		}
		if (clk_mono_ms() >= until)
			return 0;
		struct timespec ts = { (time_t)(until / 1000), (long)(until % 1000) * 1000000 };
		pthread_cond_timedwait(&set->cond, &set->lock, &ts);
	}
	return 1;
}

static int current(const struct live_session *s, int64_t now)
{
	return s->doc && now < s->renew_at;
}

static int failed_recently(const struct live_session *s, int64_t now)
{
	return s->fail_rc && now - s->failed_at < (int64_t)s->set->o.retry_after_ms;
}

/* ---------------------------------------------------------------- public */

void live_stat(struct live_session *s, enum live_wait w, struct live_info *out)
{
	struct live_set *set = s->set;
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&set->lock);
	int64_t now = clk_mono_ms();
	if (!current(s, now) && !s->creating && !failed_recently(s, now) &&
	    (w != LIVE_LISTING || set->threads < (int)set->o.listing_max))
		start_locked(s, now, 0);
	if (!current(s, now) && s->creating && w == LIVE_STAT)
		wait_locked(s, s->started_at + set->o.stat_wait_ms);
	out->exact = current(s, clk_mono_ms());
	if (s->doc) {
		out->size = s->doc->len;
		out->mtime_ms = s->doc_epoch_ms;
	}
	pthread_mutex_unlock(&set->lock);
}

int live_open(struct live_session *s, struct live_doc **out)
{
	struct live_set *set = s->set;
	*out = NULL;
	pthread_mutex_lock(&set->lock);
	int64_t now = clk_mono_ms();
	if (current(s, now)) {
		*out = doc_ref(s->doc);
		pthread_mutex_unlock(&set->lock);
		return 0;
	}
	if (!s->creating && failed_recently(s, now)) {
		int rc = s->fail_rc;
		pthread_mutex_unlock(&set->lock);
		return rc;
	}
	if (!s->creating && start_locked(s, now, 1) == 1) {
		/* no thread to be had: make it here (others join as usual) */
		pthread_mutex_unlock(&set->lock);
		create(s);
		pthread_mutex_lock(&set->lock);
	} else {
		wait_locked(s, -1);
	}
	int rc = 0;
	if (current(s, clk_mono_ms()))
		*out = doc_ref(s->doc);
	else
		rc = s->fail_rc ? s->fail_rc : -EIO;
	pthread_mutex_unlock(&set->lock);
	return rc;
}

struct live_session *live_session_new(struct live_set *set, const char *stream, int dash)
{
	struct live_session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->set = set;
	s->dash = dash;
	s->stream = strdup(stream);
	if (!s->stream) {
		free(s);
		return NULL;
	}
	pthread_mutex_lock(&set->lock);
	s->link = set->sessions;
	set->sessions = s;
	pthread_mutex_unlock(&set->lock);
	return s;
}

/* Under the lock: frees the least recently used idle ranged session of (stream, dash) while
 * there are more than LIVE_RANGE_MAX of them. Only when no creator thread runs (a creator may
 * still touch its session after publishing). */
static void evict_ranged_locked(struct live_set *set, const char *stream, int dash)
{
	for (;;) {
		struct live_session **victim = NULL;
		int n = 0;
		for (struct live_session **p = &set->sessions; *p; p = &(*p)->link) {
			struct live_session *x = *p;
			if (!x->ranged || x->dash != dash || strcmp(x->stream, stream))
				continue;
			n++;
			if (!x->users && !x->creating && (!victim || x->used_at < (*victim)->used_at))
				victim = p;
		}
		if (n <= LIVE_RANGE_MAX || !victim || set->threads > 0)
			return;
		struct live_session *x = *victim;
		*victim = x->link;
		live_doc_unref(x->doc);
		free(x->stream);
		free(x);
	}
}

int live_range_open(struct live_set *set, const char *stream, int dash,
		    const struct kvs_range *range, struct live_doc **out)
{
	*out = NULL;
	pthread_mutex_lock(&set->lock);
	struct live_session *s = set->sessions;
	for (; s; s = s->link)
		if (s->ranged && s->dash == dash && s->range.ts == range->ts &&
		    s->range.start_ms == range->start_ms && s->range.end_ms == range->end_ms &&
		    strcmp(s->stream, stream) == 0)
			break;
	if (!s && (s = calloc(1, sizeof(*s))) && !(s->stream = strdup(stream))) {
		free(s);
		s = NULL;
	}
	if (!s) {
		pthread_mutex_unlock(&set->lock);
		return -ENOMEM;
	}
	if (!s->set) {
		s->set = set;
		s->dash = dash;
		s->ranged = 1;
		s->range = *range;
		s->link = set->sessions;
		set->sessions = s;
	}
	s->users++;
	pthread_mutex_unlock(&set->lock);
	int rc = live_open(s, out);
	pthread_mutex_lock(&set->lock);
	s->users--;
	s->used_at = clk_mono_ms();
	evict_ranged_locked(set, stream, dash);
	pthread_mutex_unlock(&set->lock);
	return rc;
}

int live_set_new(const struct live_opts *o, struct live_set **out)
{
	*out = NULL;
	if (!o->kvs)
		return -EINVAL;
	struct live_set *set = calloc(1, sizeof(*set));
	if (!set)
		return -ENOMEM;
	set->o = *o;
	if (!set->o.budget_ms)
		set->o.budget_ms = LIVE_DEFAULT_BUDGET_MS;
	if (!set->o.stat_wait_ms)
		set->o.stat_wait_ms = LIVE_DEFAULT_STAT_WAIT_MS;
	if (!set->o.retry_after_ms)
		set->o.retry_after_ms = LIVE_DEFAULT_RETRY_AFTER_MS;
	if (!set->o.listing_max)
		set->o.listing_max = 8;
	pthread_condattr_t ca;
	if (pthread_condattr_init(&ca) != 0) {
		free(set);
		return -ENOMEM;
	}
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	int rc = pthread_cond_init(&set->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (rc != 0) {
		free(set);
		return -ENOMEM;
	}
	pthread_mutex_init(&set->lock, NULL);
	*out = set;
	return 0;
}

void live_set_free(struct live_set *set)
{
	if (!set)
		return;
	pthread_mutex_lock(&set->lock);
	while (set->threads > 0)
		pthread_cond_wait(&set->cond, &set->lock);
	struct live_session *s = set->sessions;
	set->sessions = NULL;
	pthread_mutex_unlock(&set->lock);
	while (s) {
		struct live_session *n = s->link;
		live_doc_unref(s->doc);
		free(s->stream);
		free(s);
		s = n;
	}
	pthread_cond_destroy(&set->cond);
	pthread_mutex_destroy(&set->lock);
	free(set);
}
