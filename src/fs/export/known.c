/*
 * export/known: what this mount learnt about S3 names in the last second (docs/EXPORT.md
 * "Many small files"), so rsync's lookups, stats and metadata changes of the files it just
 * stored cost no request.
 *
 * Three things, all bounded; "a second" is export_opts.cache_ttl_ms (ex->ttl_ms, default 1 s,
 * 0: this module is off and answers nothing):
 *  - attributes of paths (KNOWN_MAX entries): exact ones from a HeadObject or from an upload of
 *    this mount, fresh for a second (the kernel's own attribute timeout is 1 s too, so no
 *    answer is older than it already could be);
 *  - the names of a few folders (KDIR_MAX, each listed whole with at most KDIR_NAMES names),
 *    fresh for a second: a name missing from a fresh listing is ENOENT without a request.
 *    This mount's own stores add their names, so a listing never hides a file stored here; a
 *    listing during which a name was added anywhere is not kept (it may miss it);
 *  - mode/mtime changes of a file this mount stored itself (so mode and mtime are its only
 *    metadata): kept pending for a second, so the rename that follows (rsync) copies the
 *    object once to its final name with its final metadata. Otherwise the upload workers
 *    store them when due (one CopyObject REPLACE), as do fsync, syncfs and unmount. A failed
 *    store is logged and retried with backoff (at most KNOWN_BACKOFF_MAX_MS apart).
 *
 * Locking: ex->kmu guards everything here. It is a leaf: nothing else is locked while it is
 * held (ex->mu may be held when it is taken, never the other way round), and it is never held
 * across a request or a log line. A pending change being stored is marked `flushing`; a rename
 * of that path waits for it on ex->kcv.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "export_int.h"
#include "kvsfs/awserr.h"
#include "kvsfs/log.h"

#define KNOWN_MAX 4096
#define KNOWN_BACKOFF_MAX_MS 60000
#define KDIR_MAX 8
#define KDIR_NAMES 20000

struct known {
	char *path;
	int64_t at_ms;
	struct export_attr a;
	int own;                    /* stored by this mount: mode and mtime are all its metadata */
	int pending;                /* a.mode / a.mtime not stored yet */
	int flushing;               /* being stored (kmu released) */
	unsigned gen;               /* bumped by each change while pending */
	int64_t due_ms;
	int64_t backoff_ms;
	unsigned pass;              /* the ex_known_flush pass that last tried it */
	struct known *next;
};

struct kdir {
	char *path;                 /* "" (the root) or "a/b" */
	int64_t at_ms;
	char **slots;               /* open-addressing hash set of names */
	size_t cap, n;
	struct kdir *next;
};

int64_t ex_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

/* ---------------------------------------------------------------- name sets */

static int set_has(const struct kdir *d, const char *name, size_t len)
{
	if (!d->cap)
		return 0;
	for (size_t i = hash(name, len) & (d->cap - 1);; i = (i + 1) & (d->cap - 1)) {
		const char *s = d->slots[i];
		if (!s)
			return 0;
		if (strlen(s) == len && !memcmp(s, name, len))
			return 1;
	}
}

/* Adds name (len bytes); -ENOMEM or -E2BIG (over KDIR_NAMES). */
static int set_add(struct kdir *d, const char *name, size_t len)
{
	if (set_has(d, name, len))
		return 0;
	if (d->n >= KDIR_NAMES)
		return -E2BIG;
	if ((d->n + 1) * 2 > d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		char **s = calloc(cap, sizeof(*s));
		if (!s)
			return -ENOMEM;
		for (size_t i = 0; i < d->cap; i++) {
			if (!d->slots[i])
				continue;
			size_t j = hash(d->slots[i], strlen(d->slots[i])) & (cap - 1);
			while (s[j])
				j = (j + 1) & (cap - 1);
			s[j] = d->slots[i];
		}
		free(d->slots);
		d->slots = s;
		d->cap = cap;
	}
	char *c = strndup(name, len);
	if (!c)
		return -ENOMEM;
	size_t j = hash(name, len) & (d->cap - 1);
	while (d->slots[j])
		j = (j + 1) & (d->cap - 1);
	d->slots[j] = c;
	d->n++;
	return 0;
}

static void kdir_free(struct kdir *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->cap; i++)
		free(d->slots[i]);
	free(d->slots);
	free(d->path);
	free(d);
}

/* Splits path into its parent (length *plen) and its last name. */
static const char *split(const char *path, size_t *plen)
{
	const char *s = strrchr(path, '/');
	*plen = s ? (size_t)(s - path) : 0;
	return s ? s + 1 : path;
}

static struct kdir *kdir_find(struct export *ex, const char *dir, size_t len)
{
	for (struct kdir *d = ex->kdirs; d; d = d->next)
		if (strlen(d->path) == len && !memcmp(d->path, dir, len))
			return d;
	return NULL;
}

/* ---------------------------------------------------------------- attributes */

static struct known *kfind(struct export *ex, const char *path)
{
	for (struct known *k = ex->known; k; k = k->next)
		if (!strcmp(k->path, path))
			return k;
	return NULL;
}

static void kfree(struct known *k)
{
	free(k->path);
	free(k);
}

/* Drops expired entries that hold nothing pending (kmu held). */
static void kexpire(struct export *ex, int64_t now)
{
	struct known **pp = &ex->known;
	while (*pp) {
		struct known *k = *pp;
		if (!k->pending && !k->flushing && now - k->at_ms >= ex->ttl_ms) {
			*pp = k->next;
			ex->n_known--;
			kfree(k);
		} else {
			pp = &k->next;
		}
	}
}

int ex_known_get(struct export *ex, const char *path, struct export_attr *a)
{
	if (!ex->ttl_ms)
		return 0;
	int64_t now = ex_mono_ms();
	int rc = 0;
	size_t plen;
	const char *name = split(path, &plen);
	pthread_mutex_lock(&ex->kmu);
	struct known *k = kfind(ex, path);
	if (k && (k->pending || k->flushing || now - k->at_ms < ex->ttl_ms)) {
		*a = k->a;
		rc = 1;
	} else {
		struct kdir *d = kdir_find(ex, path, plen);
		if (d && now - d->at_ms < ex->ttl_ms && !set_has(d, name, strlen(name)))
			rc = -ENOENT;
	}
	pthread_mutex_unlock(&ex->kmu);
	return rc;
}

/* Adds the last name of path to its parent's listing, if one is kept (kmu held). */
static void add_name(struct export *ex, const char *path)
{
	size_t plen;
	const char *name = split(path, &plen);
	ex->kgen++;
	struct kdir *d = kdir_find(ex, path, plen);
	if (d && set_add(d, name, strlen(name))) {
		d->at_ms = INT64_MIN / 2;  /* cannot hold it: no longer trusted */
	}
}

void ex_known_put(struct export *ex, const char *path, const struct export_attr *a, int own)
{
	if (!ex->ttl_ms)
		return;
	int64_t now = ex_mono_ms();
	pthread_mutex_lock(&ex->kmu);
	add_name(ex, path);
	kexpire(ex, now);  /* before the lookup: it may free the entry found */
	struct known *k = kfind(ex, path);
	if (k && (k->pending || k->flushing)) {
		pthread_mutex_unlock(&ex->kmu);
		return;  /* the pending change wins; it is stored soon */
	}
	if (!k && ex->n_known < KNOWN_MAX && (k = calloc(1, sizeof(*k))) != NULL) {
		if (!(k->path = strdup(path))) {
			free(k);
			k = NULL;
		} else {
			k->next = ex->known;
			ex->known = k;
			ex->n_known++;
		}
	}
	if (k) {
		k->a = *a;
		k->a.exact = 1;
		k->own = own;
		k->at_ms = now;
	}
	pthread_mutex_unlock(&ex->kmu);
}

void ex_known_add_name(struct export *ex, const char *path)
{
	pthread_mutex_lock(&ex->kmu);
	add_name(ex, path);
	pthread_mutex_unlock(&ex->kmu);
}

/* Waits until no pending change of k is being stored (kmu held; k may be freed meanwhile, so
 * the caller looks it up again). Returns 1 when it waited. */
static int wait_flush(struct export *ex, struct known *k)
{
	if (!k || !k->flushing)
		return 0;
	while (k->flushing)
		pthread_cond_wait(&ex->kcv, &ex->kmu);
	return 1;
}

void ex_known_forget(struct export *ex, const char *path)
{
	pthread_mutex_lock(&ex->kmu);
	struct known *k;
	while (wait_flush(ex, kfind(ex, path)))
		;
	for (struct known **pp = &ex->known; (k = *pp) != NULL; pp = &k->next)
		if (!strcmp(k->path, path)) {
			*pp = k->next;
			ex->n_known--;
			kfree(k);
			break;
		}
	pthread_mutex_unlock(&ex->kmu);
}

int ex_known_take(struct export *ex, const char *path, mode_t *mode, int64_t *mtime_ms)
{
	int rc = 0;
	pthread_mutex_lock(&ex->kmu);
	while (wait_flush(ex, kfind(ex, path)))
		;
	struct known *k = kfind(ex, path);
	if (k && k->pending) {
		*mode = k->a.mode;
		*mtime_ms = k->a.mtime_ms;
		rc = 1;
	}
	pthread_mutex_unlock(&ex->kmu);
	return rc;
}

int ex_known_defer_meta(struct export *ex, const char *path, int set_mode, mode_t mode,
			int set_time, int64_t mtime_ms)
{
	if (!ex->ttl_ms)
		return 0;
	int64_t now = ex_mono_ms();
	int rc = 0;
	pthread_mutex_lock(&ex->kmu);
	struct known *k = kfind(ex, path);
	if (k && k->own && !k->a.is_dir && k->a.size <= (uint64_t)S3_MAX_PUT_SIZE &&
	    (k->pending || k->flushing || now - k->at_ms < ex->ttl_ms)) {
		if (set_mode)
			k->a.mode = mode & 07777;
		if (set_time)
			k->a.mtime_ms = mtime_ms;
		if (!k->pending)
			k->due_ms = now + ex->ttl_ms;
		k->pending = 1;
		k->gen++;
		k->at_ms = now;
		rc = 1;
	}
	pthread_mutex_unlock(&ex->kmu);
	if (rc) {  /* a worker stores it when due */
		pthread_mutex_lock(&ex->mu);
		pthread_cond_broadcast(&ex->job_cv);
		pthread_mutex_unlock(&ex->mu);
	}
	return rc;
}

int64_t ex_known_next_due(struct export *ex)
{
	int64_t due = INT64_MAX;
	pthread_mutex_lock(&ex->kmu);
	for (struct known *k = ex->known; k; k = k->next)
		if (k->pending && !k->flushing && k->due_ms < due)
			due = k->due_ms;
	pthread_mutex_unlock(&ex->kmu);
	return due;
}

/* Stores one pending change due by `by` (all when by is INT64_MAX), of path only unless NULL.
 * 1: one was tried (*rc its result), 0: none left. */
static int flush_one(struct export *ex, const char *path, int64_t by, int *rc)
{
	pthread_mutex_lock(&ex->kmu);
	if (path)
		while (wait_flush(ex, kfind(ex, path)))
			;
	struct known *k = ex->known;
	while (k && !(k->pending && !k->flushing && k->due_ms <= by && k->pass != ex->kpass &&
		      (!path || !strcmp(k->path, path))))
		k = k->next;
	if (!k) {
		pthread_mutex_unlock(&ex->kmu);
		return 0;
	}
	k->flushing = 1;
	k->pass = ex->kpass;  /* tried once per pass, so a failing store cannot make it loop */
	unsigned gen = k->gen;
	mode_t mode = k->a.mode;
	int64_t mt = k->a.mtime_ms;
	char *key = ex_key(ex, k->path, "");
	pthread_mutex_unlock(&ex->kmu);
	struct s3_meta h = S3_META_INIT;
	struct awserr e;
	*rc = key ? ex_meta_build(&h, mode, mt, 0) : -ENOMEM;
	struct s3_put_opts po = { .meta = &h };
	if (!*rc)
		*rc = s3_copy_object(ex->s3, key, key, S3_META_REPLACE, &po, NULL, &e);
	s3_meta_free(&h);
	pthread_mutex_lock(&ex->kmu);
	k->flushing = 0;
	int64_t now = ex_mono_ms();
	if (!*rc && k->gen == gen) {
		k->pending = 0;
		k->at_ms = now;
		k->backoff_ms = 0;
	} else if (*rc) {
		k->backoff_ms = k->backoff_ms ? k->backoff_ms * 2 : 1000;
		if (k->backoff_ms > KNOWN_BACKOFF_MAX_MS)
			k->backoff_ms = KNOWN_BACKOFF_MAX_MS;
		k->due_ms = now + k->backoff_ms;
	}
	pthread_cond_broadcast(&ex->kcv);
	pthread_mutex_unlock(&ex->kmu);
	if (*rc)
		LOG_WARN(ex->log, MOD, "storing the mode/mtime of %s failed: %s (retried)",
			 key ? key : "?", strerror(-*rc));
	free(key);
	return 1;
}

/* A new flush pass (kmu NOT held). */
static void new_pass(struct export *ex)
{
	pthread_mutex_lock(&ex->kmu);
	if (!++ex->kpass)
		ex->kpass = 1;
	pthread_mutex_unlock(&ex->kmu);
}

int ex_known_flush(struct export *ex, int all)
{
	int first = 0, rc = 0, tries = 0;
	int64_t by = all ? INT64_MAX : ex_mono_ms();
	new_pass(ex);
	while (tries++ < KNOWN_MAX && flush_one(ex, NULL, by, &rc))
		if (rc && !first)
			first = rc;
	return first;
}

int ex_known_flush_path(struct export *ex, const char *path)
{
	int rc = 0;
	new_pass(ex);
	if (!flush_one(ex, path, INT64_MAX, &rc))
		rc = 0;
	return rc;
}

int ex_known_settle(struct export *ex, const char *path)
{
	int rc = 0;
	new_pass(ex);
	if (!flush_one(ex, path, INT64_MAX, &rc))
		rc = 0;
	ex_known_forget(ex, path);
	return rc;
}

/* ---------------------------------------------------------------- directory listings */

struct load {
	struct export *ex;
	struct kdir *d;
	size_t plen;                /* length of the listed key prefix */
	int rc;
};

static int load_page(void *arg, struct s3xml_list *page)
{
	struct load *l = arg;
	for (size_t i = 0; i < page->n_objects && !l->rc; i++) {
		const char *k = page->objects[i].key;
		if (strlen(k) > l->plen && !strchr(k + l->plen, '/'))
			l->rc = set_add(l->d, k + l->plen, strlen(k + l->plen));
	}
	for (size_t i = 0; i < page->n_prefixes && !l->rc; i++) {
		const char *p = page->prefixes[i];
		size_t len = strlen(p);
		if (len > l->plen + 1)
			l->rc = set_add(l->d, p + l->plen, len - l->plen - 1);
	}
	return l->rc;
}

int ex_known_load_dir(struct export *ex, const char *path, int again)
{
	if (!ex->ttl_ms)
		return 0;
	size_t dlen;
	(void)split(path, &dlen);
	int64_t now = ex_mono_ms();
	pthread_mutex_lock(&ex->kmu);
	struct kdir *old = kdir_find(ex, path, dlen);
	int fresh = old && now - old->at_ms < ex->ttl_ms;
	unsigned gen = ex->kgen;
	pthread_mutex_unlock(&ex->kmu);
	if (fresh || (again && !old))
		return 0;
	struct kdir *d = calloc(1, sizeof(*d));
	char *dir = d ? strndup(path, dlen) : NULL;
	char *pfx = dir ? ex_key(ex, dir, *dir ? "/" : "") : NULL;
	if (!pfx) {
		free(dir);
		free(d);
		return 0;
	}
	d->path = dir;
	d->at_ms = now;
	struct load l = { ex, d, strlen(pfx), 0 };
	struct awserr e;
	int rc = s3_list_objects_pages(ex->s3, pfx, "/", load_page, &l, &e);
	free(pfx);
	pthread_mutex_lock(&ex->kmu);
	int keep = !rc && !l.rc && gen == ex->kgen;
	struct kdir **pp = &ex->kdirs;
	int n = 0;
	while (*pp) {  /* the old listing goes (failed, too large, or a name was added meanwhile:
			* none is kept, so no later lookup lists it again); so does the oldest one
			* beyond KDIR_MAX */
		struct kdir *x = *pp;
		if (x == kdir_find(ex, path, dlen) || ++n >= KDIR_MAX) {
			*pp = x->next;
			kdir_free(x);
		} else {
			pp = &x->next;
		}
	}
	if (!keep) {
		pthread_mutex_unlock(&ex->kmu);
		kdir_free(d);
		return 0;
	}
	d->next = ex->kdirs;
	ex->kdirs = d;
	pthread_mutex_unlock(&ex->kmu);
	return 1;
}

void ex_known_free(struct export *ex)
{
	while (ex->known) {
		struct known *k = ex->known;
		ex->known = k->next;
		if (k->pending)
			LOG_WARN(ex->log, MOD, "the mode/mtime change of %s was not stored", k->path);
		kfree(k);
	}
	while (ex->kdirs) {
		struct kdir *d = ex->kdirs;
		ex->kdirs = d->next;
		kdir_free(d);
	}
	ex->n_known = 0;
}
