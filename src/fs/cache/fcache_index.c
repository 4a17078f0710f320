/*
 * fcache_index: the disk cache's in-memory index: keys and their file names, the map of visible
 * entries (util/hashmap), the LRU and detached lists, pins, eviction, and deleting an entry's
 * files. Design and invariants in fcache_int.h; every *_locked function runs under c->lock.
 */
#include "fcache_int.h"

#include "kvsfs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

/* ---- keys, digests, names ---- */

static int key_check(const char *key, size_t *len)
{
	if (!key)
		return -EINVAL;
	size_t n = strnlen(key, FCACHE_KEY_MAX + 1);
	if (n == 0)
		return -EINVAL;
	if (n > FCACHE_KEY_MAX)
		return -ENAMETOOLONG;
	*len = n;
	return 0;
}

int fc_key_digest(const char *key, size_t len, uint8_t md[32])
{
	unsigned int mdlen = 0;
	unsigned char out[EVP_MAX_MD_SIZE];
	if (EVP_Digest(key, len, out, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
		return -EIO;
	memcpy(md, out, 32);
	return 0;
}

int fc_key_md(const char *key, size_t *len, uint8_t md[32])
{
	int r = key_check(key, len);
	return r ? r : fc_key_digest(key, *len, md);
}

static void md_hex(const uint8_t md[32], char hex[65])
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < 32; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[64] = '\0';
}

void fc_rel_path(const uint8_t md[32], bool sidecar, char out[REL_MAX])
{
	char hex[65];
	md_hex(md, hex);
	snprintf(out, REL_MAX, "%.2s/%s%s", hex, hex, sidecar ? ".key" : "");
}

void fc_sub_name(const uint8_t md[32], char out[3])
{
	char hex[65];
	md_hex(md, hex);
	out[0] = hex[0];
	out[1] = hex[1];
	out[2] = '\0';
}

int64_t fc_now_sec(void)
{
	return (int64_t)time(NULL);
}

/* ---- the map and the lists ---- */

/* The digest is uniformly distributed already: its first 8 bytes are the hash. */
static uint64_t md_hash(const uint8_t md[32])
{
	uint64_t h;
	memcpy(&h, md, sizeof(h));
	return h;
}

static int md_eq(const struct hashmap_node *n, const void *key)
{
	return memcmp(hashmap_entry(n, struct fcache_pin, node)->md, key, 32) == 0;
}

int fc_index_init(struct fcache *c)
{
	return hashmap_init(&c->index, 1024);
}

uint64_t fc_count(const struct fcache *c)
{
	return hashmap_count(&c->index);
}

void fc_index_free(struct fcache *c)
{
	struct hashmap_iter it;
	hashmap_iter_init(&it, &c->index);
	for (struct hashmap_node *n; (n = hashmap_next(&it));)
		free(hashmap_entry(n, struct fcache_pin, node));
	for (struct fcache_pin *e = c->detached, *next; e; e = next) {
		next = e->next;
		free(e);
	}
	c->detached = NULL;
	hashmap_destroy(&c->index);
}

struct fcache_pin *fc_find_locked(struct fcache *c, const uint8_t md[32])
{
	struct hashmap_node *n = hashmap_find(&c->index, md_hash(md), md_eq, md);
	return n ? hashmap_entry(n, struct fcache_pin, node) : NULL;
}

void fc_insert_locked(struct fcache *c, struct fcache_pin *e)
{
	hashmap_insert(&c->index, &e->node, md_hash(e->md));
	c->bytes += e->size;
}

static void lru_unlink(struct fcache *c, struct fcache_pin *e)
{
	if (!e->in_lru)
		return;
	if (e->prev)
		e->prev->next = e->next;
	else
		c->lru_first = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->lru_last = e->prev;
	e->prev = e->next = NULL;
	e->in_lru = false;
}

void fc_lru_push_front(struct fcache *c, struct fcache_pin *e)
{
	e->prev = NULL;
	e->next = c->lru_first;
	if (c->lru_first)
		c->lru_first->prev = e;
	else
		c->lru_last = e;
	c->lru_first = e;
	e->in_lru = true;
}

static void detached_push(struct fcache *c, struct fcache_pin *e)
{
	e->detached = true;
	e->prev = NULL;
	e->next = c->detached;
	if (c->detached)
		c->detached->prev = e;
	c->detached = e;
}

static void detached_unlink(struct fcache *c, struct fcache_pin *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->detached = e->next;
	if (e->next)
		e->next->prev = e->prev;
	e->prev = e->next = NULL;
}

struct fcache_pin *fc_entry_new(const char *key, size_t keylen, const uint8_t md[32],
		uint64_t size, int64_t touched)
{
	struct fcache_pin *e = calloc(1, sizeof(*e) + keylen + 1);
	if (!e)
		return NULL;
	memcpy(e->key, key, keylen);
	e->key[keylen] = '\0';
	e->keylen = keylen;
	memcpy(e->md, md, 32);
	e->size = size;
	e->touched = touched;
	return e;
}

/* ---- deleting files: rename into tmp/ under the lock, unlink after ---- */

static void trash_name(uint64_t seq, char out[32])
{
	snprintf(out, 32, "del.%" PRIu64, seq);
}

void fc_drop_files_locked(struct fcache *c, const uint8_t md[32], struct trash *t)
{
	char rel[REL_MAX], name[32];
	fc_rel_path(md, false, rel);
	bool moved = false;
	if (t->n == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 8;
		uint64_t *p = realloc(t->seqs, ncap * sizeof(*p));
		if (p) {
			t->seqs = p;
			t->cap = ncap;
		}
	}
	if (t->n < t->cap) {
		uint64_t seq = c->seq++;
		trash_name(seq, name);
		if (renameat(c->objfd, rel, c->tmpfd, name) == 0) {
			t->seqs[t->n++] = seq;
			moved = true;
		}
	}
	if (!moved && unlinkat(c->objfd, rel, 0) != 0 && errno != ENOENT)
		LOG_WARN(c->log, MOD, "cannot delete %s/objects/%s: %s", c->dir, rel, strerror(errno));
	fc_rel_path(md, true, rel);
	if (unlinkat(c->objfd, rel, 0) != 0 && errno != ENOENT)
		LOG_WARN(c->log, MOD, "cannot delete %s/objects/%s: %s", c->dir, rel, strerror(errno));
}

void fc_trash_empty(struct fcache *c, struct trash *t)
{
	char name[32];
	for (size_t i = 0; i < t->n; i++) {
		trash_name(t->seqs[i], name);
		if (unlinkat(c->tmpfd, name, 0) != 0 && errno != ENOENT)
			LOG_WARN(c->log, MOD, "cannot delete %s/tmp/%s: %s", c->dir, name,
					strerror(errno));
	}
	free(t->seqs);
	t->seqs = NULL;
	t->n = t->cap = 0;
}

/* ---- pins and eviction ---- */

void fc_unindex_locked(struct fcache *c, struct fcache_pin *e)
{
	hashmap_remove(&c->index, &e->node);
	if (e->pins == 0) {
		lru_unlink(c, e);
		c->bytes -= e->size;
		free(e);
	} else {
		detached_push(c, e);
	}
}

void fc_evict_locked(struct fcache *c, const struct fcache_pin *keep, struct trash *t)
{
	if (c->max_bytes == 0)
		return;
	while (c->bytes > c->max_bytes) {
		struct fcache_pin *v = c->lru_last;
		if (!v || v == keep)
			break;
		fc_drop_files_locked(c, v->md, t);
		LOG_DEBUG(c->log, MOD, "evicted %s (%" PRIu64 " bytes)", v->key, v->size);
		c->evictions++;
		fc_unindex_locked(c, v);
	}
	if (c->bytes > c->max_bytes) {
		if (!c->overfull_warned)
			LOG_WARN(c->log, MOD, "cache %s holds %" PRIu64 " bytes, above its limit of %"
					PRIu64 ": what is left is pinned by open files or was just stored; "
					"it shrinks as files are closed and new entries come",
					c->dir, c->bytes, c->max_bytes);
		c->overfull_warned = true;
	} else {
		c->overfull_warned = false;
	}
}

void fc_pin_locked(struct fcache *c, struct fcache_pin *e)
{
	if (e->pins++ == 0) {
		lru_unlink(c, e);
		c->pinned++;
	}
}

void fc_unpin_locked(struct fcache *c, struct fcache_pin *e)
{
	if (e->pins == 0)
		return;
	if (--e->pins > 0)
		return;
	c->pinned--;
	if (e->detached) {
		detached_unlink(c, e);
		c->bytes -= e->size;
		free(e);
	} else {
		fc_lru_push_front(c, e);
	}
}
