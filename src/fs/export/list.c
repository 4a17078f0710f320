/*
 * export/list: directory listings of export/ (docs/EXPORT.md "Names and directories").
 *
 * What it does: export_list pages through ListObjectsV2 (delimiter "/") of the directory's key
 * prefix and merges in the files of the directory that are staged (open for writing or not
 * stored yet), so a file appears as soon as it is created and shows its staged size.
 *
 * Order and precedence: objects are emitted page by page as they come; folders (common
 * prefixes) wait for the end of the listing, because a name that is both an object KEY and a
 * prefix KEY/ is listed once, as the file (what export_stat says); a staged file replaces the
 * listed object of the same name (its attributes are the truth) and is listed at the end when
 * S3 does not have it yet.
 *
 * Invariants: the staged names are copied under ex->mu before the first request and the
 * listing runs with ex->mu released; memory holds one page plus the names listed so far;
 * keys that cannot be file names ("", ".", ".." components) are skipped.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "export_int.h"
#include "kvsfs/awserr.h"

struct list_ctx {
	struct export *ex;
	size_t plen;
	export_list_fn fn;
	void *arg;
	char **local;               /* staged names in this dir */
	struct export_attr *lattr;
	int *seen;
	size_t n_local;
	char **files;               /* names of the objects listed (emitted at once) */
	size_t n_files, cap_files;
	char **dirs;                /* names of the prefixes listed (emitted at the end) */
	size_t n_dirs, cap_dirs;
	int stop;
	size_t emitted;
};

/* Appends name (owned from now on) to *v; frees it and returns -ENOMEM on failure. */
static int names_push(char ***v, size_t *n, size_t *cap, char *name)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		char **nv = realloc(*v, nc * sizeof(*nv));
		if (!nv) {
			free(name);
			return -ENOMEM;
		}
		*v = nv;
		*cap = nc;
	}
	(*v)[(*n)++] = name;
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_emit(struct list_ctx *c, const char *name, struct export_attr *a)
{
	for (size_t i = 0; i < c->n_local; i++)
		if (!strcmp(c->local[i], name)) {
			if (c->seen[i])
				return 0;
			c->seen[i] = 1;
			if (!a->is_dir)
				a = &c->lattr[i];
		}
	c->emitted++;
	int r = c->fn(c->arg, name, a);
	if (r)
		c->stop = r;
	return r;
}

static int list_page(void *arg, struct s3xml_list *page)
{
	struct list_ctx *c = arg;
	struct export *ex = c->ex;
	/* folders wait for the end of the listing: a name that is also an object is the file */
	for (size_t i = 0; i < page->n_prefixes && !c->stop; i++) {
		char *pfx = page->prefixes[i];
		size_t l = strlen(pfx);
		if (l <= c->plen + 1)
			continue;
		char *name = strndup(pfx + c->plen, l - c->plen - 1);
		if (!name)
			return -ENOMEM;
		if (export_path_valid(name) || strchr(name, '/'))
			free(name);
		else if (names_push(&c->dirs, &c->n_dirs, &c->cap_dirs, name)) {
			c->stop = -ENOMEM;
			return 1;
		}
	}
	for (size_t i = 0; i < page->n_objects && !c->stop; i++) {
		const struct s3xml_object *o = &page->objects[i];
		const char *name = o->key + c->plen;
		if (strlen(o->key) <= c->plen || export_path_valid(name) || strchr(name, '/'))
			continue;  /* the directory's own marker, or a name unusable as a file */
		struct export_attr a = {
			.size = o->size > 0 ? (uint64_t)o->size : 0,
			.mode = 0644 & ~ex->umask,
			.mtime_ms = o->last_modified >= 0 ? o->last_modified * 1000 : ex->start_ms,
		};
		char *copy = strdup(name);
		if (!copy || names_push(&c->files, &c->n_files, &c->cap_files, copy)) {
			c->stop = -ENOMEM;
			return 1;
		}
		list_emit(c, name, &a);
	}
	return c->stop ? 1 : 0;
}

/*
 * Emits the folders of a finished listing. A name that is both an object (KEY) and a prefix
 * (KEY/, a marker or objects below it), or a prefix and a staged file, is listed once, as the
 * file: that is what export_stat (HeadObject KEY first) says it is (docs/EXPORT.md).
 */
static int list_dirs(struct list_ctx *c)
{
	if (c->n_files > 1)
		qsort(c->files, c->n_files, sizeof(*c->files), cmp_name);
	for (size_t i = 0; i < c->n_dirs && !c->stop; i++) {
		const char *name = c->dirs[i];
		int shadowed = c->n_files && bsearch(&name, c->files, c->n_files, sizeof(*c->files),
						     cmp_name) != NULL;
		for (size_t j = 0; j < c->n_local && !shadowed; j++)
			shadowed = strcmp(c->local[j], name) == 0;
		if (shadowed)
			continue;
		struct export_attr a = { .is_dir = 1, .mode = 0755 & ~c->ex->umask,
					 .mtime_ms = c->ex->start_ms };
		list_emit(c, name, &a);
	}
	return c->stop;
}

/* Copies the names and attributes of the staged files directly in dir (mutex taken here). */
static int list_local(struct export *ex, const char *dir, struct list_ctx *c)
{
	size_t dl = strlen(dir), cap = 0;
	int rc = 0;
	pthread_mutex_lock(&ex->mu);
	for (struct xnode *n = ex->nodes; n; n = n->next)
		cap++;
	c->local = calloc(cap + 1, sizeof(char *));
	c->lattr = calloc(cap + 1, sizeof(*c->lattr));
	c->seen = calloc(cap + 1, sizeof(int));
	if (!c->local || !c->lattr || !c->seen)
		rc = -ENOMEM;
	for (struct xnode *n = ex->nodes; n && !rc; n = n->next) {
		if (!n->path || (!n->st && !n->dirty))
			continue;
		const char *rest = n->path;
		if (dl) {
			if (strncmp(n->path, dir, dl) || n->path[dl] != '/')
				continue;
			rest = n->path + dl + 1;
		}
		if (strchr(rest, '/'))
			continue;
		c->local[c->n_local] = strdup(rest);
		if (!c->local[c->n_local]) {
			rc = -ENOMEM;
			break;
		}
		ex_attr_from_node(n, &c->lattr[c->n_local]);
		c->n_local++;
	}
	ex_unlock(ex);
	return rc;
}

static void list_ctx_free(struct list_ctx *c)
{
	for (size_t i = 0; i < c->n_local; i++)
		free(c->local[i]);
	for (size_t i = 0; i < c->n_files; i++)
		free(c->files[i]);
	for (size_t i = 0; i < c->n_dirs; i++)
		free(c->dirs[i]);
	free(c->files);
	free(c->dirs);
	free(c->local);
	free(c->lattr);
	free(c->seen);
}

int export_list(struct export *ex, const char *dir, export_list_fn fn, void *arg)
{
	int rc = ex_path_check(ex, dir);
	if (rc)
		return rc;
	char *pfx = ex_key(ex, dir, *dir ? "/" : "");
	if (!pfx)
		return -ENOMEM;
	struct list_ctx c = { .ex = ex, .plen = strlen(pfx), .fn = fn, .arg = arg };
	rc = list_local(ex, dir, &c);
	struct awserr e;
	if (!rc)
		rc = s3_list_objects_pages(ex->s3, pfx, "/", list_page, &c, &e);
	if (!rc && c.stop)
		rc = c.stop;
	if (!rc)
		rc = list_dirs(&c);
	for (size_t i = 0; i < c.n_local && !rc; i++)
		if (!c.seen[i]) {
			c.emitted++;
			rc = fn(arg, c.local[i], &c.lattr[i]);
		}
	if (!rc && !c.emitted && *dir) {
		/* nothing listed: say whether the directory exists at all */
		struct export_attr a;
		rc = export_stat(ex, dir, &a);
		if (!rc && !a.is_dir)
			rc = -ENOTDIR;
	}
	list_ctx_free(&c);
	free(pfx);
	return rc;
}
