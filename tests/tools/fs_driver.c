/*
 * kvsfs-fs: the filesystem layer (vfs, and export/ under it) in-process, without FUSE, driven by
 * a line-oriented script on stdin. The in-process fs suites (tests/integration/fs) use it the way
 * mountpoint-s3 tests its fs against a mock client: same modules, same start-up as src/main.c
 * (credentials from the AWS chain, the HTTP client, the KVS client, disk cache, size index,
 * clips, optional S3 client + export, vfs_new, vfs_check), but every request comes from the
 * script and every answer is one line on stdout.
 *
 *   kvsfs-fs --cache DIR [options] < SCRIPT
 * options:
 *   --endpoint URL          KVS endpoint (endpoint=)        --region R
 *   --export s3://B[/P]     export= (with --s3-endpoint URL, --s3-path-style, --export-dir NAME)
 *   --streams A:B           --stream-prefix P               --timestamps server
 *   --meta-ttl S            --readahead N                   --umask OCTAL
 *   --max-retry-ms MS       budget of one request's retries (main.c: max_retry_time, 60 s)
 *   --export-cache-ttl-ms MS  export_opts.cache_ttl_ms (main.c: export_cache_ttl; -1: off)
 *   --no-check              skip vfs_check (the start-up ListStreams)
 *   --log FILE              log file (default stderr)       -d  debug log
 * Start-up failures print "error: ..." on stderr and exit 1 (2: bad usage; 3: the driver's own
 * entry bookkeeping left entries behind, a bug here).
 *
 * Script: one operation per line; blank lines and lines starting with '#' are skipped silently.
 * Tokens are separated by blanks; %XX in a token is the byte XX (names with blanks or odd bytes).
 * PATH is relative to the root ("/" is the root itself), e.g. cam/fragments/2024-05-01/12.
 * H names an open file handle (any token). Every other line gets exactly one answer line:
 *   "ok ..." or "err ENAME" (ENOENT, EROFS, ...; "err EUSAGE" for a malformed line).
 *
 *   lookup PATH | stat PATH        ok ino=N type=d|f|o mode=OCTAL size=N mtime=MS nlink=N
 *                                  (stat: the lookup, then getattr's attributes)
 *   ls PATH [plus]                 ok COUNT NAME:TYPE:SIZE ... (plus: readdirplus, every entry
 *                                  looked up; plain: the listing's own attributes)
 *   open H PATH r|w|rw[t]          ok (t: O_TRUNC)
 *   create H PATH [MODE]           as open(O_CREAT|O_WRONLY|O_TRUNC): an existing file is opened
 *                                  with O_TRUNC, else vfs_create; ok ino=N
 *   read H OFF LEN | readall H     ok BYTES SHA256 (reads of at most 128 KiB, like the kernel)
 *   cat PATH                       open r, readall, flush, release: ok BYTES SHA256
 *   write H OFF FILE | hex:HEX     writes FILE's bytes (or HEX) at OFF in 128 KiB calls: ok BYTES
 *   flush H | fsync H              ok
 *   release H                      ok (release alone: its upload result goes to the log)
 *   close H                        flush then release (close(2)): the flush's result
 *   truncate PATH SIZE             setattr(size) without a file: ok size=N
 *   ftruncate H SIZE               setattr(size) with the open file: ok size=N
 *   chmod PATH OCTAL | utimens PATH MS
 *   mkdir PATH [MODE] | rmdir PATH | unlink PATH | rename FROM TO [noreplace]
 *   symlink PATH                   a symlink/link/mknod in PATH's parent (vfs_make_special)
 *   getxattr PATH NAME             ok LEN VALUE  | listxattr PATH   ok NAME ...
 *   setxattr PATH                  setxattr/removexattr (always an error)
 * At the end of the script every handle still open is closed (flush + release), as at exit.
 *
 * Inodes are counted as the kernel counts them: a small dentry cache holds, per name, the
 * lookups the vfs counted for its inode; an entry no longer used (by an open file, a child
 * entry or the operation in progress) is dropped at once with vfs_forget of its whole count,
 * as if the kernel evicted it. Every path operation looks each component up again (entry
 * timeout 0), create/mkdir/readdirplus count like lookups, rename moves an entry (an open file
 * keeps its parents), unlink/rmdir unhash it. The kernel's own checks come first, as they do
 * before a request reaches FUSE: the names are looked up (unknown: ENOENT), a parent must be a
 * folder (ENOTDIR), mkdir/symlink of an existing name is EEXIST, unlink of a folder EISDIR,
 * rmdir of a file ENOTDIR, rename of a file over a folder EISDIR (a folder over a file ENOTDIR,
 * onto itself nothing), open for writing and truncate of a folder EISDIR.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvsfs/awsconfig.h"
#include "kvsfs/awsreq.h"
#include "kvsfs/clips.h"
#include "kvsfs/creds.h"
#include "kvsfs/export.h"
#include "kvsfs/fcache.h"
#include "kvsfs/http.h"
#include "kvsfs/kvs.h"
#include "kvsfs/log.h"
#include "kvsfs/s3.h"
#include "kvsfs/sizeidx.h"
#include "kvsfs/vfs.h"

#define IO_CHUNK (128u << 10)    /* the kernel's largest read/write request without max_pages */
#define MAX_TOKENS 8
#define MAX_HANDLES 64

/* ---------------------------------------------------------------- dentry cache */

struct dent {
	char *name;
	uint64_t ino;
	uint64_t nlookup;      /* lookups the vfs counted for ino through this entry */
	struct dent *parent;   /* each entry holds one use of its parent */
	struct dent *kids;     /* hashed children */
	struct dent *sib;
	int uses;              /* children + open files + the operation in progress */
	int hashed;
};

struct handle {
	char name[32];
	struct vfs_file *f;
	struct dent *d;        /* pinned while open */
};

struct driver {
	struct vfs *vfs;
	struct dent root;
	struct handle h[MAX_HANDLES];
};

static void dent_unhash(struct dent *d)
{
	if (!d->hashed)
		return;
	for (struct dent **pp = &d->parent->kids; *pp; pp = &(*pp)->sib)
		if (*pp == d) {
			*pp = d->sib;
			break;
		}
	d->sib = NULL;
	d->hashed = 0;
}

/* Drops one use; an unused entry is evicted (vfs_forget of its count), then its parent's use. */
static void dent_put(struct driver *dr, struct dent *d)
{
	while (d && d != &dr->root && --d->uses == 0) {
		struct dent *p = d->parent;
		dent_unhash(d);
		vfs_forget(dr->vfs, d->ino, d->nlookup);
		free(d->name);
		free(d);
		d = p;
	}
}

static struct dent *dent_child(struct dent *p, const char *name)
{
	for (struct dent *k = p->kids; k; k = k->sib)
		if (!strcmp(k->name, name))
			return k;
	return NULL;
}

/* Records one counted lookup of name in p (answered with ino); returns the entry with one use
 * for the caller, or NULL (out of memory: the lookup is given back). */
static struct dent *dent_add(struct driver *dr, struct dent *p, const char *name, uint64_t ino)
{
	struct dent *k = dent_child(p, name);
	if (k && k->ino == ino) {
		k->nlookup++;
		k->uses++;
		return k;
	}
	if (k)
		dent_unhash(k); /* another inode now: the old entry lives on while used */
	k = calloc(1, sizeof(*k));
	if (!k || !(k->name = strdup(name))) {
		free(k);
		vfs_forget(dr->vfs, ino, 1);
		return NULL;
	}
	k->ino = ino;
	k->nlookup = 1;
	k->uses = 1;
	k->parent = p;
	p->uses++;
	k->hashed = 1;
	k->sib = p->kids;
	p->kids = k;
	return k;
}

/* Looks every component of path up from the root. Returns 0 and *out (one use for the caller;
 * dent_put it) with the last lookup's attributes in *a (the root: getattr), or a negative errno. */
static int walk(struct driver *dr, const char *path, struct dent **out, struct vfs_attr *a)
{
	char buf[PATH_MAX], *save = NULL;
	if (strlen(path) >= sizeof(buf))
		return -ENAMETOOLONG;
	strcpy(buf, path);
	struct dent *cur = &dr->root;
	int rc = vfs_getattr(dr->vfs, VFS_ROOT_INO, a);
	for (char *c = strtok_r(buf, "/", &save); c && !rc; c = strtok_r(NULL, "/", &save)) {
		rc = vfs_lookup(dr->vfs, cur->ino, c, a);
		if (rc)
			break;
		struct dent *k = dent_add(dr, cur, c, a->ino);
		dent_put(dr, cur);
		if (!k)
			return -ENOMEM;
		cur = k;
	}
	if (rc) {
		dent_put(dr, cur);
		return rc;
	}
	*out = cur;
	return 0;
}

/* Splits path into its parent (walked: *parent has one use) and last name (into name). The
 * parent must be a directory (ENOTDIR, as the kernel's path walk decides). */
static int walk_parent(struct driver *dr, const char *path, struct dent **parent, char *name,
		       size_t n)
{
	char dir[PATH_MAX];
	const char *s = strrchr(path, '/');
	size_t dl = s ? (size_t)(s - path) : 0;
	const char *base = s ? s + 1 : path;
	if (dl >= sizeof(dir) || strlen(base) >= n || !*base)
		return -EINVAL;
	memcpy(dir, path, dl);
	dir[dl] = 0;
	strcpy(name, base);
	struct vfs_attr a;
	int rc = walk(dr, dir, parent, &a);
	if (!rc && !S_ISDIR(a.mode)) {
		dent_put(dr, *parent);
		rc = -ENOTDIR;
	}
	return rc;
}

/* ---------------------------------------------------------------- output */

static void pct_print(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= ' ' || c >= 0x7f || c == '%' || c == ':')
			printf("%%%02X", c);
		else
			putchar(c);
	}
}

static void pct_decode(char *s)
{
	char *o = s;
	for (char *p = s; *p; p++) {
		unsigned v;
		if (p[0] == '%' && p[1] && p[2] && sscanf(p + 1, "%2x", &v) == 1) {
			*o++ = (char)v;
			p += 2;
		} else {
			*o++ = *p;
		}
	}
	*o = 0;
}

static int err_line(int rc)
{
	const char *n = strerrorname_np(rc < 0 ? -rc : rc);
	printf("err %s\n", n ? n : "EUNKNOWN");
	return 0;
}

static char type_of(mode_t m)
{
	return S_ISDIR(m) ? 'd' : S_ISREG(m) ? 'f' : 'o';
}

static void print_attr(const struct vfs_attr *a)
{
	printf("ok ino=%llu type=%c mode=%04o size=%llu mtime=%lld nlink=%u\n",
	       (unsigned long long)a->ino, type_of(a->mode), (unsigned)(a->mode & 07777),
	       (unsigned long long)a->size, (long long)a->mtime_ms, a->nlink);
}

/* ---------------------------------------------------------------- handles */

static struct handle *handle_find(struct driver *dr, const char *name)
{
	for (int i = 0; i < MAX_HANDLES; i++)
		if (dr->h[i].f && !strcmp(dr->h[i].name, name))
			return &dr->h[i];
	return NULL;
}

/* Registers an open file under name (pinning d, whose use passes to the handle). */
static int handle_add(struct driver *dr, const char *name, struct vfs_file *f, struct dent *d)
{
	for (int i = 0; i < MAX_HANDLES; i++)
		if (!dr->h[i].f) {
			snprintf(dr->h[i].name, sizeof(dr->h[i].name), "%s", name);
			dr->h[i].f = f;
			dr->h[i].d = d;
			return 0;
		}
	return -EMFILE;
}

static void handle_release(struct driver *dr, struct handle *h)
{
	vfs_release(dr->vfs, h->f);
	dent_put(dr, h->d);
	memset(h, 0, sizeof(*h));
}

/* ---------------------------------------------------------------- commands */

typedef int (*cmd_fn)(struct driver *dr, char **a, int n);

static int cmd_stat(struct driver *dr, char **a, int n, int getattr)
{
	(void)n;
	struct dent *d;
	struct vfs_attr at;
	int rc = walk(dr, a[1], &d, &at);
	if (rc)
		return err_line(rc);
	if (getattr)
		rc = vfs_getattr(dr->vfs, d->ino, &at);
	dent_put(dr, d);
	if (rc)
		return err_line(rc);
	print_attr(&at);
	return 0;
}

static int cmd_lookup(struct driver *dr, char **a, int n)
{
	return cmd_stat(dr, a, n, 0);
}

static int cmd_getattr(struct driver *dr, char **a, int n)
{
	return cmd_stat(dr, a, n, 1);
}

static int cmd_ls(struct driver *dr, char **a, int n)
{
	int plus = n > 2 && !strcmp(a[2], "plus");
	struct dent *d;
	struct vfs_attr at;
	struct vfs_dir *dir;
	int rc = walk(dr, a[1], &d, &at);
	if (rc)
		return err_line(rc);
	if ((rc = vfs_opendir(dr->vfs, d->ino, 0, &dir)) != 0) {
		dent_put(dr, d);
		return err_line(rc);
	}
	printf("ok %zu", dir->n);
	for (size_t i = 0; i < dir->n; i++) {
		struct vfs_attr ea = dir->v[i].attr;
		if (plus) { /* readdirplus: one counted lookup per entry (vanished ones skipped) */
			if (vfs_lookup(dr->vfs, d->ino, dir->v[i].name, &ea) != 0)
				continue;
			dent_put(dr, dent_add(dr, d, dir->v[i].name, ea.ino));
		}
		putchar(' ');
		pct_print(dir->v[i].name, strlen(dir->v[i].name));
		printf(":%c:%llu", type_of(ea.mode), (unsigned long long)ea.size);
	}
	putchar('\n');
	vfs_dir_free(dir);
	dent_put(dr, d);
	return 0;
}

static int open_flags(const char *s)
{
	int f = !strncmp(s, "rw", 2) ? O_RDWR : s[0] == 'w' ? O_WRONLY : s[0] == 'r' ? O_RDONLY : -1;
	if (f >= 0 && strchr(s, 't'))
		f |= O_TRUNC;
	return f;
}

/* Opens path as handle hname; 0 or a negative errno. */
static int do_open(struct driver *dr, const char *hname, const char *path, int flags)
{
	struct dent *d;
	struct vfs_attr at;
	struct vfs_file *f;
	int dio, keep;
	if (handle_find(dr, hname) || flags < 0)
		return -EINVAL;
	int rc = walk(dr, path, &d, &at);
	if (rc)
		return rc;
	if (S_ISDIR(at.mode) && (flags & O_ACCMODE) != O_RDONLY)
		rc = -EISDIR; /* the kernel's may_open */
	else
		rc = vfs_open(dr->vfs, d->ino, flags, &f, &dio, &keep);
	if (!rc && (rc = handle_add(dr, hname, f, d)) != 0)
		vfs_release(dr->vfs, f);
	if (rc)
		dent_put(dr, d);
	return rc;
}

static int cmd_open(struct driver *dr, char **a, int n)
{
	int rc = n < 4 ? -EINVAL : do_open(dr, a[1], a[2], open_flags(a[3]));
	if (rc)
		return err_line(rc);
	printf("ok\n");
	return 0;
}

static int cmd_create(struct driver *dr, char **a, int n)
{
	char name[NAME_MAX + 1];
	struct dent *p, *d = NULL;
	struct vfs_attr at;
	struct vfs_file *f = NULL;
	int dio, keep;
	mode_t mode = n > 3 ? (mode_t)strtoul(a[3], NULL, 8) : 0644;
	if (n < 3 || handle_find(dr, a[1]))
		return err_line(EINVAL);
	int rc = walk_parent(dr, a[2], &p, name, sizeof(name));
	if (rc)
		return err_line(rc);
	rc = vfs_lookup(dr->vfs, p->ino, name, &at);
	if (rc == 0) { /* exists: the kernel opens it with O_TRUNC */
		d = dent_add(dr, p, name, at.ino);
		rc = !d ? -ENOMEM : S_ISDIR(at.mode) ? -EISDIR
			: vfs_open(dr->vfs, d->ino, O_WRONLY | O_TRUNC, &f, &dio, &keep);
		if (!rc)
			rc = vfs_getattr(dr->vfs, d->ino, &at);
	} else if (rc == -ENOENT) {
		rc = vfs_create(dr->vfs, p->ino, name, S_IFREG | mode, O_CREAT | O_WRONLY | O_TRUNC,
				&at, &f);
		if (!rc && !(d = dent_add(dr, p, name, at.ino)))
			rc = -ENOMEM;
	}
	if (!rc)
		rc = handle_add(dr, a[1], f, d);
	if (rc && f)
		vfs_release(dr->vfs, f);
	if (rc)
		dent_put(dr, d);
	dent_put(dr, p);
	if (rc)
		return err_line(rc);
	printf("ok ino=%llu\n", (unsigned long long)at.ino);
	return 0;
}

/* Reads [off, off + len) in kernel-sized requests (len 0: to the end) into *got bytes and
 * their SHA-256 (hex). Returns 0 or the first failed read's errno. */
static int read_range(struct driver *dr, struct vfs_file *f, uint64_t off, uint64_t len,
		      uint64_t *got, char hex[65])
{
	static char buf[IO_CHUNK];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int rc = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 ? 0 : -ENOMEM;
	*got = 0;
	while (!rc && (len == 0 || *got < len)) {
		size_t want = len && len - *got < IO_CHUNK ? (size_t)(len - *got) : IO_CHUNK;
		ssize_t r = vfs_read(dr->vfs, f, buf, want, (off_t)(off + *got));
		if (r < 0)
			rc = (int)r;
		else if (r == 0)
			break;
		else if (EVP_DigestUpdate(ctx, buf, (size_t)r) != 1)
			rc = -ENOMEM;
		else
			*got += (uint64_t)r;
	}
	if (!rc && EVP_DigestFinal_ex(ctx, md, &mdlen) != 1)
		rc = -ENOMEM;
	EVP_MD_CTX_free(ctx);
	for (unsigned i = 0; !rc && i < mdlen && i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return rc;
}

static int cmd_read(struct driver *dr, char **a, int n)
{
	struct handle *h = handle_find(dr, a[1]);
	int all = !strcmp(a[0], "readall");
	if (!h || (n < 4 && !all))
		return err_line(h ? EINVAL : EBADF);
	uint64_t got, off = all ? 0 : strtoull(a[2], NULL, 10), len = all ? 0 : strtoull(a[3], NULL, 10);
	char hex[65];
	int rc = !all && !len ? 0 : read_range(dr, h->f, off, len, &got, hex);
	if (!all && !len) {
		got = 0;
		strcpy(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	}
	if (rc)
		return err_line(rc);
	printf("ok %llu %s\n", (unsigned long long)got, hex);
	return 0;
}

static int cmd_cat(struct driver *dr, char **a, int n)
{
	(void)n;
	uint64_t got;
	char hex[65];
	int rc = do_open(dr, "\001cat", a[1], O_RDONLY);
	if (rc)
		return err_line(rc);
	struct handle *h = handle_find(dr, "\001cat");
	rc = read_range(dr, h->f, 0, 0, &got, hex);
	int frc = vfs_flush(dr->vfs, h->f);
	handle_release(dr, h);
	if (rc || frc)
		return err_line(rc ? rc : frc);
	printf("ok %llu %s\n", (unsigned long long)got, hex);
	return 0;
}

/* The bytes of a write: hex:HEX inline, else the whole content of a file. */
static int load_data(const char *spec, char **data, size_t *len)
{
	*data = NULL;
	*len = 0;
	if (!strncmp(spec, "hex:", 4)) {
		size_t n = strlen(spec + 4) / 2;
		*data = malloc(n ? n : 1);
		for (size_t i = 0; *data && i < n; i++) {
			unsigned v;
			if (sscanf(spec + 4 + 2 * i, "%2x", &v) != 1)
				return -EINVAL;
			(*data)[i] = (char)v;
		}
		*len = n;
		return *data ? 0 : -ENOMEM;
	}
	FILE *fp = fopen(spec, "rb");
	if (!fp)
		return -errno;
	struct stat st;
	int rc = fstat(fileno(fp), &st) ? -errno : 0;
	if (!rc && !(*data = malloc(st.st_size ? (size_t)st.st_size : 1)))
		rc = -ENOMEM;
	if (!rc && st.st_size && fread(*data, 1, (size_t)st.st_size, fp) != (size_t)st.st_size)
		rc = -EIO;
	fclose(fp);
	*len = rc ? 0 : (size_t)st.st_size;
	return rc;
}

static int cmd_write(struct driver *dr, char **a, int n)
{
	struct handle *h = handle_find(dr, a[1]);
	char *data;
	size_t len, done = 0;
	if (!h || n < 4)
		return err_line(h ? EINVAL : EBADF);
	uint64_t off = strtoull(a[2], NULL, 10);
	int rc = load_data(a[3], &data, &len);
	while (!rc && done < len) {
		size_t k = len - done < IO_CHUNK ? len - done : IO_CHUNK;
		ssize_t w = vfs_write(dr->vfs, h->f, data + done, k, (off_t)(off + done));
		if (w < 0)
			rc = (int)w;
		else if (w == 0)
			rc = -EIO;
		else
			done += (size_t)w;
	}
	free(data);
	if (rc)
		return err_line(rc);
	printf("ok %zu\n", done);
	return 0;
}

/* flush, fsync, release, close of a handle. */
static int cmd_handle(struct driver *dr, char **a, int n)
{
	(void)n;
	struct handle *h = handle_find(dr, a[1]);
	int rc = 0;
	if (!h)
		return err_line(EBADF);
	if (!strcmp(a[0], "fsync"))
		rc = vfs_fsync(dr->vfs, h->f);
	else if (strcmp(a[0], "release"))
		rc = vfs_flush(dr->vfs, h->f);
	if (!strcmp(a[0], "close") || !strcmp(a[0], "release"))
		handle_release(dr, h);
	if (rc)
		return err_line(rc);
	printf("ok\n");
	return 0;
}

/* truncate, chmod, utimens by path; ftruncate with a handle. */
static int cmd_setattr(struct driver *dr, char **a, int n)
{
	struct dent *d = NULL;
	struct vfs_attr at;
	struct handle *h = NULL;
	int rc = 0, mask;
	if (n < 3)
		return err_line(EINVAL);
	if (!strcmp(a[0], "ftruncate")) {
		if (!(h = handle_find(dr, a[1])))
			return err_line(EBADF);
		d = h->d;
		d->uses++;
	} else if ((rc = walk(dr, a[1], &d, &at)) == 0 && S_ISDIR(at.mode) &&
		   !strcmp(a[0], "truncate")) {
		dent_put(dr, d);
		rc = -EISDIR; /* the kernel's do_truncate */
	}
	if (rc)
		return err_line(rc);
	mask = !strcmp(a[0], "chmod") ? VFS_SET_MODE : !strcmp(a[0], "utimens") ? VFS_SET_MTIME
										 : VFS_SET_SIZE;
	rc = vfs_setattr(dr->vfs, d->ino, mask, (mode_t)strtoul(a[2], NULL, 8), (uid_t)-1,
			 (gid_t)-1, strtoull(a[2], NULL, 10), strtoll(a[2], NULL, 10),
			 h ? h->f : NULL, &at);
	dent_put(dr, d);
	if (rc)
		return err_line(rc);
	printf("ok size=%llu mode=%04o mtime=%lld\n", (unsigned long long)at.size,
	       (unsigned)(at.mode & 07777), (long long)at.mtime_ms);
	return 0;
}

/* mkdir, unlink, rmdir, symlink: PATH's parent and name; the name is looked up first and the
 * kernel's own checks apply (mkdir/symlink of an existing name: EEXIST; unlink of a directory:
 * EISDIR; rmdir of a file: ENOTDIR). */
static int cmd_entry(struct driver *dr, char **a, int n)
{
	char name[NAME_MAX + 1];
	struct dent *p, *d = NULL;
	struct vfs_attr at;
	int unlink = !strcmp(a[0], "unlink");
	int rc = walk_parent(dr, a[1], &p, name, sizeof(name));
	if (rc)
		return err_line(rc);
	int found = vfs_lookup(dr->vfs, p->ino, name, &at);
	if (found == 0 && !(d = dent_add(dr, p, name, at.ino)))
		found = -ENOMEM;
	if (!strcmp(a[0], "mkdir")) {
		rc = found == 0 ? -EEXIST : found != -ENOENT ? found
			: vfs_mkdir(dr->vfs, p->ino, name,
				    S_IFDIR | (n > 2 ? (mode_t)strtoul(a[2], NULL, 8) : 0755), &at);
		if (found == -ENOENT && !rc && !(d = dent_add(dr, p, name, at.ino)))
			rc = -ENOMEM;
	} else if (!strcmp(a[0], "symlink")) {
		rc = found == 0 ? -EEXIST : found != -ENOENT ? found : vfs_make_special(dr->vfs, p->ino);
	} else if (found) {
		rc = found;
	} else if (unlink ? S_ISDIR(at.mode) : !S_ISDIR(at.mode)) {
		rc = unlink ? -EISDIR : -ENOTDIR;
	} else {
		rc = unlink ? vfs_unlink(dr->vfs, p->ino, name) : vfs_rmdir(dr->vfs, p->ino, name);
		if (!rc)
			dent_unhash(d);
	}
	dent_put(dr, d);
	dent_put(dr, p);
	if (rc)
		return err_line(rc);
	printf("ok\n");
	return 0;
}

/* Moves the entry src (renamed to `to` under tp), as the kernel's d_move does. */
static void dent_move(struct driver *dr, struct dent *src, struct dent *tp, const char *to)
{
	char *nn = strdup(to);
	struct dent *old = dent_child(tp, to);
	if (old)
		dent_unhash(old);
	dent_unhash(src);
	if (!nn)
		return; /* left unhashed: the next lookup makes a new entry */
	free(src->name);
	src->name = nn;
	tp->uses++;
	struct dent *op = src->parent;
	src->parent = tp;
	src->hashed = 1;
	src->sib = tp->kids;
	tp->kids = src;
	dent_put(dr, op);
}

/* rename FROM TO: both names are looked up first; the kernel's checks apply (a file over a
 * directory: EISDIR; a directory over a file: ENOTDIR; the same inode: nothing to do). */
static int cmd_rename(struct driver *dr, char **a, int n)
{
	char from[NAME_MAX + 1], to[NAME_MAX + 1];
	struct dent *fp = NULL, *tp = NULL, *src = NULL;
	struct vfs_attr fa, ta;
	int rc = walk_parent(dr, a[1], &fp, from, sizeof(from));
	if (!rc)
		rc = walk_parent(dr, a[2], &tp, to, sizeof(to));
	if (!rc && (rc = vfs_lookup(dr->vfs, fp->ino, from, &fa)) == 0 &&
	    !(src = dent_add(dr, fp, from, fa.ino)))
		rc = -ENOMEM;
	int tr = rc ? rc : vfs_lookup(dr->vfs, tp->ino, to, &ta);
	if (!rc && tr == 0) {
		vfs_forget(dr->vfs, ta.ino, 1); /* the target's entry is not kept */
		if (ta.ino == fa.ino)
			tr = 1;
		else if (S_ISDIR(ta.mode) != S_ISDIR(fa.mode))
			rc = S_ISDIR(ta.mode) ? -EISDIR : -ENOTDIR;
	} else if (!rc && tr != -ENOENT) {
		rc = tr;
	}
	if (!rc && tr != 1)
		rc = vfs_rename(dr->vfs, fp->ino, from, tp->ino, to,
				n > 3 && !strcmp(a[3], "noreplace") ? RENAME_NOREPLACE : 0);
	if (!rc && tr != 1 && (src->parent != tp || strcmp(src->name, to)))
		dent_move(dr, src, tp, to);
	dent_put(dr, src);
	dent_put(dr, tp);
	dent_put(dr, fp);
	if (rc)
		return err_line(rc);
	printf("ok\n");
	return 0;
}

static int cmd_xattr(struct driver *dr, char **a, int n)
{
	struct dent *d;
	struct vfs_attr at;
	char buf[4096];
	ssize_t len;
	int list = !strcmp(a[0], "listxattr");
	if (!strcmp(a[0], "getxattr") && n < 3)
		return err_line(EINVAL);
	int rc = walk(dr, a[1], &d, &at);
	if (rc)
		return err_line(rc);
	if (!strcmp(a[0], "setxattr")) {
		len = vfs_setxattr(dr->vfs, d->ino);
	} else { /* first the size, then the value, as getfattr asks */
		len = list ? vfs_listxattr(dr->vfs, d->ino, NULL, 0)
			   : vfs_getxattr(dr->vfs, d->ino, a[2], NULL, 0);
		if (len > (ssize_t)sizeof(buf))
			len = -E2BIG;
		else if (len > 0)
			len = list ? vfs_listxattr(dr->vfs, d->ino, buf, (size_t)len)
				   : vfs_getxattr(dr->vfs, d->ino, a[2], buf, (size_t)len);
	}
	dent_put(dr, d);
	if (len < 0)
		return err_line((int)len);
	if (!strcmp(a[0], "setxattr")) {
		printf("ok\n");
	} else if (list) {
		printf("ok");
		for (ssize_t i = 0; i < len; i += (ssize_t)strlen(buf + i) + 1) {
			putchar(' ');
			pct_print(buf + i, strlen(buf + i));
		}
		putchar('\n');
	} else {
		printf("ok %zd ", len);
		pct_print(buf, (size_t)len);
		putchar('\n');
	}
	return 0;
}

static const struct {
	const char *name;
	int min_args;          /* tokens after the command */
	cmd_fn fn;
} commands[] = {
	{ "lookup", 1, cmd_lookup },    { "stat", 1, cmd_getattr },     { "ls", 1, cmd_ls },
	{ "open", 3, cmd_open },        { "create", 2, cmd_create },    { "read", 3, cmd_read },
	{ "readall", 1, cmd_read },     { "cat", 1, cmd_cat },          { "write", 3, cmd_write },
	{ "flush", 1, cmd_handle },     { "fsync", 1, cmd_handle },     { "release", 1, cmd_handle },
	{ "close", 1, cmd_handle },     { "truncate", 2, cmd_setattr }, { "ftruncate", 2, cmd_setattr },
	{ "chmod", 2, cmd_setattr },    { "utimens", 2, cmd_setattr },  { "mkdir", 1, cmd_entry },
	{ "rmdir", 1, cmd_entry },      { "unlink", 1, cmd_entry },     { "symlink", 1, cmd_entry },
	{ "rename", 2, cmd_rename },    { "getxattr", 2, cmd_xattr },   { "listxattr", 1, cmd_xattr },
	{ "setxattr", 1, cmd_xattr },
};

/* Runs one script line (tokens decoded in place). */
static void run_line(struct driver *dr, char *line)
{
	char *tok[MAX_TOKENS + 1], *save = NULL;
	int n = 0;
	for (char *t = strtok_r(line, " \t\r\n", &save); t && n <= MAX_TOKENS;
	     t = strtok_r(NULL, " \t\r\n", &save))
		tok[n++] = t;
	if (n == 0 || tok[0][0] == '#')
		return;
	for (int i = 1; i < n; i++)
		pct_decode(tok[i]);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(tok[0], commands[i].name)) {
			if (n - 1 < commands[i].min_args || n > MAX_TOKENS)
				printf("err EUSAGE\n");
			else
				commands[i].fn(dr, tok, n);
			fflush(stdout);
			return;
		}
	printf("err EUSAGE\n");
	fflush(stdout);
}

/* ---------------------------------------------------------------- start-up (as src/main.c) */

struct config {
	const char *endpoint, *region, *cache, *export_url, *s3_endpoint, *export_dir, *stream_prefix;
	const char *log_file;
	char **streams;
	int s3_path_style, server_ts, meta_ttl, readahead, no_check, debug;
	int export_cache_ttl_ms;    /* export_opts.cache_ttl_ms (0: default 1 s, -1: off) */
	long umask, max_retry_ms;
};

struct stack {
	struct log_ctx lg;
	FILE *log_fp;
	struct awsconfig_files files;
	struct awsconfig_settings settings;
	struct creds_provider *creds;
	struct http_client *http;
	struct awsreq_ctx aws;
	struct kvs_client *kvs;
	struct fcache *cache;
	struct sizeidx *sizes;
	struct clips *clips;
	struct s3_client *s3;
	struct export *export;
	struct vfs *vfs;
	char bucket[128];
};

/* The S3 client and export/, as main.c makes them for export=s3://BUCKET/PREFIX. */
static int stack_export(struct stack *s, const struct config *c, char *err, size_t n)
{
	char staging[PATH_MAX];
	const char *b = c->export_url + 5, *slash = strchr(b, '/');
	size_t bl = slash ? (size_t)(slash - b) : strlen(b);
	if (strncmp(c->export_url, "s3://", 5) || !bl || bl >= sizeof(s->bucket)) {
		snprintf(err, n, "--export must be s3://BUCKET[/PREFIX]");
		return -EINVAL;
	}
	memcpy(s->bucket, b, bl);
	s->bucket[bl] = 0;
	snprintf(staging, sizeof(staging), "%s/staging", c->cache);
	if (mkdir(staging, 0700) != 0 && errno != EEXIST) {
		int e = errno;
		snprintf(err, n, "cannot create %.900s: %s", staging, strerror(e));
		return -e;
	}
	struct s3_client_opts so = { .aws = &s->aws, .endpoint = s->settings.s3_endpoint,
				     .bucket = s->bucket, .path_style = c->s3_path_style };
	if (s3_client_new(&so, &s->s3)) {
		snprintf(err, n, "cannot set up the S3 client");
		return -EINVAL;
	}
	struct export_opts eo = {
		.s3 = s->s3, .prefix = slash ? slash + 1 : "", .staging_dir = staging,
		.staging_max_bytes = 4ULL << 30, .uid = getuid(), .gid = getgid(),
		.umask = (mode_t)c->umask, .log = &s->lg, .cache_ttl_ms = c->export_cache_ttl_ms,
	};
	return export_open(&eo, &s->export, err, n);
}

/* Everything below the FUSE adapter, in main.c's order. Returns 0 or an errno (err filled). */
static int stack_open(struct stack *s, const struct config *c, char *err, size_t n)
{
	char media[PATH_MAX];
	int rc;
	struct creds_options co = { 0 };
	struct http_client_opts ho;
	if ((rc = awsconfig_files_load(&s->files, NULL, NULL, &s->lg, err, n)) ||
	    (rc = awsconfig_resolve(&s->settings, &s->files, c->region, c->endpoint, c->s3_endpoint,
				    NULL, err, n)) ||
	    (rc = creds_provider_new(&s->creds, &co, &s->files, &s->lg, err, n)))
		return rc;
	http_client_opts_init(&ho);
	ho.log = &s->lg;
	ho.retry.max_attempts = 12;
	ho.retry.base_delay_ms = 200;
	ho.retry.max_delay_ms = 5000;
	ho.retry.max_total_ms = (unsigned)c->max_retry_ms;
	if ((rc = http_client_new(&ho, &s->http)) != 0) {
		snprintf(err, n, "cannot set up HTTP: %s", strerror(-rc));
		return rc;
	}
	s->aws = (struct awsreq_ctx){ .http = s->http, .creds = s->creds, .log = &s->lg };
	snprintf(s->aws.region, sizeof(s->aws.region), "%s", s->settings.region);
	struct kvs_client_opts ko = { .aws = &s->aws, .control_endpoint = s->settings.kvs_endpoint };
	if ((rc = kvs_client_new(&ko, &s->kvs)) != 0) {
		snprintf(err, n, "cannot set up the KVS client");
		return rc;
	}
	snprintf(media, sizeof(media), "%s/media", c->cache);
	struct fcache_opts fo = { .dir = media, .log = &s->lg, .max_bytes = 4ULL << 30 };
	struct sizeidx_opts so = { .dir = c->cache, .log = &s->lg, .sync_ms = 1000 };
	if ((rc = fcache_open(&fo, &s->cache, err, n)) || (rc = sizeidx_open(&so, &s->sizes, err, n)))
		return rc;
	if (c->export_url && (rc = stack_export(s, c, err, n)) != 0)
		return rc;
	enum kvs_ts_type ts = c->server_ts ? KVS_TS_SERVER : KVS_TS_PRODUCER;
	struct clips_opts clo = { .kvs = s->kvs, .cache = s->cache, .log = &s->lg, .ts = ts };
	if ((rc = clips_new(&clo, &s->clips)) != 0) {
		snprintf(err, n, "cannot set up clips");
		return rc;
	}
	struct vfs_config vc = {
		.kvs = s->kvs, .cache = s->cache, .sizes = s->sizes, .clips = s->clips,
		.export = s->export, .export_dir = c->export_dir, .log = &s->lg,
		.streams = c->streams, .stream_prefix = c->stream_prefix, .ts = ts,
		.meta_ttl_s = c->meta_ttl ? c->meta_ttl : 1, .hls_expires_s = 3600,
		.uid = getuid(), .gid = getgid(), .umask = (mode_t)c->umask,
		.readahead = c->readahead,
	};
	if ((rc = vfs_new(&vc, &s->vfs, err, n)) != 0)
		return rc;
	return c->no_check ? 0 : vfs_check(s->vfs, err, n);
}

static void stack_close(struct stack *s)
{
	vfs_free(s->vfs);
	export_close(s->export);
	s3_client_free(s->s3);
	clips_free(s->clips);
	sizeidx_close(s->sizes);
	fcache_close(s->cache);
	kvs_client_free(s->kvs);
	http_client_free(s->http);
	creds_provider_free(s->creds);
	awsconfig_settings_free(&s->settings);
	awsconfig_files_free(&s->files);
}

/* ":"-separated list into a NULL-terminated array of pointers into s (free the array). */
static char **split_streams(char *s)
{
	size_t n = 2;
	for (char *p = s; *p; p++)
		n += *p == ':';
	char **v = calloc(n, sizeof(*v)), *save = NULL;
	size_t i = 0;
	for (char *t = strtok_r(s, ":", &save); v && t; t = strtok_r(NULL, ":", &save))
		v[i++] = t;
	return v;
}

static void usage(void)
{
	fprintf(stderr, "usage: kvsfs-fs --cache DIR [--endpoint URL] [--region R] "
		"[--export s3://B/P --s3-endpoint URL --s3-path-style --export-dir NAME] "
		"[--streams A:B] [--stream-prefix P] [--timestamps server] [--meta-ttl S] "
		"[--readahead N] [--umask OCTAL] [--max-retry-ms MS] [--export-cache-ttl-ms MS] "
		"[--no-check] [--log FILE] [-d] "
		"< SCRIPT\n");
	exit(2);
}

static void parse_args(int argc, char **argv, struct config *c)
{
	static const struct option lo[] = {
		{ "endpoint", 1, 0, 'e' }, { "region", 1, 0, 'r' }, { "cache", 1, 0, 'c' },
		{ "export", 1, 0, 'x' }, { "s3-endpoint", 1, 0, 's' }, { "s3-path-style", 0, 0, 'p' },
		{ "export-dir", 1, 0, 'X' }, { "streams", 1, 0, 'S' }, { "stream-prefix", 1, 0, 'P' },
		{ "timestamps", 1, 0, 't' }, { "meta-ttl", 1, 0, 'm' }, { "readahead", 1, 0, 'a' },
		{ "umask", 1, 0, 'u' }, { "max-retry-ms", 1, 0, 'R' }, { "no-check", 0, 0, 'n' },
		{ "log", 1, 0, 'l' }, { "export-cache-ttl-ms", 1, 0, 'K' }, { 0, 0, 0, 0 },
	};
	*c = (struct config){ .export_dir = "export", .umask = 022, .max_retry_ms = 60000 };
	for (int o; (o = getopt_long(argc, argv, "d", lo, NULL)) != -1;) {
		switch (o) {
		case 'e': c->endpoint = optarg; break;
		case 'r': c->region = optarg; break;
		case 'c': c->cache = optarg; break;
		case 'x': c->export_url = optarg; break;
		case 's': c->s3_endpoint = optarg; break;
		case 'p': c->s3_path_style = 1; break;
		case 'X': c->export_dir = optarg; break;
		case 'S': c->streams = split_streams(optarg); break;
		case 'P': c->stream_prefix = optarg; break;
		case 't': c->server_ts = !strcmp(optarg, "server"); break;
		case 'm': c->meta_ttl = atoi(optarg); break;
		case 'a': c->readahead = atoi(optarg); break;
		case 'u': c->umask = strtol(optarg, NULL, 8); break;
		case 'R': c->max_retry_ms = atol(optarg); break;
		case 'n': c->no_check = 1; break;
		case 'l': c->log_file = optarg; break;
		case 'K': c->export_cache_ttl_ms = atoi(optarg); break;
		case 'd': c->debug = 1; break;
		default: usage();
		}
	}
	if (!c->cache || optind != argc)
		usage();
}

int main(int argc, char **argv)
{
	struct config c;
	struct stack s = { 0 };
	static struct driver dr;
	char err[1024] = "", *line = NULL;
	size_t cap = 0;
	parse_args(argc, argv, &c);
	if (c.log_file && !(s.log_fp = fopen(c.log_file, "ae"))) {
		fprintf(stderr, "error: cannot open %s: %s\n", c.log_file, strerror(errno));
		return 1;
	}
	if (s.log_fp)
		setvbuf(s.log_fp, NULL, _IOLBF, 0);
	log_init(&s.lg, c.debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO, s.log_fp ? s.log_fp : stderr);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int status = 0;
	if (stack_open(&s, &c, err, sizeof(err)) != 0) {
		fprintf(stderr, "error: %s\n", err[0] ? err : "start-up failed");
		status = 1;
	} else {
		dr.vfs = s.vfs;
		dr.root = (struct dent){ .ino = VFS_ROOT_INO, .uses = 1, .hashed = 1 };
		while (getline(&line, &cap, stdin) > 0)
			run_line(&dr, line);
		for (int i = 0; i < MAX_HANDLES; i++) /* exit closes what is still open */
			if (dr.h[i].f) {
				vfs_flush(dr.vfs, dr.h[i].f);
				handle_release(&dr, &dr.h[i]);
			}
		if (dr.root.kids) { /* every lookup must have been forgotten by now */
			fprintf(stderr, "error: kvsfs-fs kept entries after the end (%s, ...)\n",
				dr.root.kids->name);
			status = 3;
		}
	}
	free(line);
	stack_close(&s);
	free(c.streams);
	curl_global_cleanup();
	log_destroy(&s.lg);
	if (s.log_fp)
		fclose(s.log_fp);
	return status;
}
