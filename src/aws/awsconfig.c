/*
 * awsconfig: AWS shared config/credentials files, region and endpoints (see
 * include/kvsfs/awsconfig.h for the accepted syntax).
 *
 * The parser is a line-by-line transcription of Python 3.11 configparser.RawConfigParser._read
 * with its defaults (delimiters '=' and ':', full-line comment prefixes '#' and ';', no inline
 * comments, empty lines allowed inside values, strict mode) followed by botocore's
 * raw_config_parse (nested values) and build_profile_map (profile names), because the goal is
 * to accept exactly the files the AWS CLI accepts and to read them the same way:
 *   - Whitespace is Python's str.strip() set restricted to ASCII: space, \t \n \v \f \r and
 *     0x1c..0x1f. Line ends are LF, CRLF or CR (Python's universal newlines).
 *   - Continuation: a non-blank line indented deeper than the last key/section line is appended
 *     to the current key's value; a blank line inside a value appends an empty piece. The final
 *     value is the pieces joined with '\n', right-trimmed.
 *   - A value whose first piece is empty is nested (botocore splits it on lines and each line
 *     must contain '='); that is checked while parsing so a bad nested block fails the file.
 * Invariants: a successfully parsed struct awsconfig never holds duplicate section names or
 * duplicate keys within a section; all strings are NUL-free UTF-8. Errors carry a line number
 * and a static reason, never file content.
 */
#include "kvsfs/awsconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvsfs/buf.h"
#include "kvsfs/fsutil.h"

extern char **environ;

static int is_pyspace(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

/* Trims [*s, *e) in place (pointers move). */
static void trim(const char **s, const char **e)
{
	while (*s < *e && is_pyspace((unsigned char)**s))
		(*s)++;
	while (*e > *s && is_pyspace((unsigned char)(*e)[-1]))
		(*e)--;
}

static char *dupn(const char *s, size_t n)
{
	char *p = malloc(n + 1);
	if (!p)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

/* ---- sections ---- */

static void section_free(struct awsconfig_section *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->entries[i].key);
		free(s->entries[i].value);
	}
	free(s->entries);
	free(s->name);
	free(s->profile);
	memset(s, 0, sizeof(*s));
}

static struct awsconfig_entry *section_find(const struct awsconfig_section *s, const char *key)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->entries[i].key, key) == 0)
			return &s->entries[i];
	return NULL;
}

/* Takes ownership of key and value (freed on failure). */
static int section_add(struct awsconfig_section *s, char *key, char *value, int line)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		struct awsconfig_entry *v = realloc(s->entries, cap * sizeof(*v));
		if (!v) {
			free(key);
			free(value);
			return -ENOMEM;
		}
		s->entries = v;
		s->cap = cap;
	}
	s->entries[s->n].key = key;
	s->entries[s->n].value = value;
	s->entries[s->n].line = line;
	s->n++;
	return 0;
}

void awsconfig_init(struct awsconfig *cfg, enum awsconfig_kind kind)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->kind = kind;
}

void awsconfig_free(struct awsconfig *cfg)
{
	enum awsconfig_kind kind = cfg->kind;
	for (size_t i = 0; i < cfg->n; i++)
		section_free(&cfg->sections[i]);
	free(cfg->sections);
	section_free(&cfg->defaults);
	awsconfig_init(cfg, kind);
}

/*
 * Python's shlex.split(s) in POSIX mode: returns the number of words (up to max, each a malloc'd
 * string in words[]), or -1 on unbalanced quotes or a trailing escape (ValueError in Python),
 * -2 on out of memory.
 */
static int shlex_split(const char *s, char **words, int max)
{
	int n = 0;
	struct buf w = BUF_INIT;
	int in_word = 0;
	char quote = 0;
	for (const char *p = s;; p++) {
		char c = *p;
		if (quote) {
			if (c == '\0')
				goto bad;
			if (c == quote) {
				quote = 0;
				continue;
			}
			if (quote == '"' && c == '\\') {
				char d = p[1];
				if (d == '\0')
					goto bad;
				if (d == '"' || d == '\\') {
					if (buf_putc(&w, d))
						goto oom;
				} else {
					if (buf_putc(&w, '\\') || buf_putc(&w, d))
						goto oom;
				}
				p++;
				continue;
			}
			if (buf_putc(&w, c))
				goto oom;
			continue;
		}
		if (c == '\0' || c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			if (in_word) {
				if (n < max) {
					words[n] = buf_steal(&w);
					if (!words[n])
						goto oom;
				} else {
					buf_free(&w);
				}
				n++;
				in_word = 0;
			}
			if (c == '\0')
				break;
			continue;
		}
		in_word = 1;
		if (c == '\'' || c == '"') {
			quote = c;
			continue;
		}
		if (c == '\\') {
			if (p[1] == '\0')
				goto bad;
			p++;
			c = *p;
		}
		if (buf_putc(&w, c))
			goto oom;
	}
	return n;
bad:
	buf_free(&w);
	for (int i = 0; i < n && i < max; i++)
		free(words[i]);
	return -1;
oom:
	buf_free(&w);
	for (int i = 0; i < n && i < max; i++)
		free(words[i]);
	return -2;
}

/* Sets s->profile from the section name per botocore's build_profile_map. */
static int section_set_profile(struct awsconfig_section *s, enum awsconfig_kind kind)
{
	if (kind == AWSCONFIG_CREDENTIALS) {
		s->profile = strdup(s->name);
		return s->profile ? 0 : -ENOMEM;
	}
	if (strncmp(s->name, "profile", 7) == 0) {
		char *words[3] = { NULL, NULL, NULL };
		int n = shlex_split(s->name, words, 3);
		if (n == -2)
			return -ENOMEM;
		if (n == 2) {
			s->profile = words[1];
			words[1] = NULL;
		}
		for (int i = 0; i < n && i < 3; i++)
			free(words[i]);
		return 0;
	}
	if (strcmp(s->name, "default") == 0) {
		s->profile = strdup("default");
		return s->profile ? 0 : -ENOMEM;
	}
	return 0;
}

/* ---- the parser ---- */

/* Returns the byte length (1..4) of a valid UTF-8 sequence at p (n bytes left), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	if (c < 0x80)
		return 1;
	size_t len;
	uint32_t cp;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

struct pending {
	int active;          /* a key is open (Python's optname) */
	int sect;            /* index in sections, or -1 for [DEFAULT] */
	char *key;
	struct buf value;
	int line;
	int first_empty;     /* first piece was empty: the value is nested */
};

static struct awsconfig_section *sect_at(struct awsconfig *cfg, int idx)
{
	return idx < 0 ? &cfg->defaults : &cfg->sections[idx];
}

/* Stores the open key's value (right-trimmed) in its section. */
static int pending_flush(struct awsconfig *cfg, struct pending *pd)
{
	if (!pd->active)
		return 0;
	pd->active = 0;
	while (pd->value.len && is_pyspace((unsigned char)pd->value.data[pd->value.len - 1]))
		pd->value.len--;
	char *v = dupn(pd->value.data ? pd->value.data : "", pd->value.len);
	buf_reset(&pd->value);
	char *k = pd->key;
	pd->key = NULL;
	if (!v) {
		free(k);
		return -ENOMEM;
	}
	return section_add(sect_at(cfg, pd->sect), k, v, pd->line);
}

int awsconfig_parse(struct awsconfig *cfg, enum awsconfig_kind kind, const char *text,
		    size_t len, int *err_line, const char **reason)
{
	awsconfig_init(cfg, kind);
	if (err_line)
		*err_line = 0;
	if (reason)
		*reason = NULL;
	if (len > AWSCONFIG_MAX_SIZE) {
		if (reason)
			*reason = "file too large";
		return -EFBIG;
	}
	struct pending pd = { 0, 0, NULL, BUF_INIT, 0, 0 };
	int cur = -2;           /* current section: -2 none, -1 [DEFAULT], else index */
	size_t indent_level = 0;
	int lineno = 0;
	int rc = 0;
	const char *why = NULL;
	size_t pos = 0;

	while (pos < len) {
		/* Cut one line (LF, CRLF or CR), validating bytes on the way. */
		const char *ls = text + pos;
		size_t i = pos;
		lineno++;
		while (i < len && text[i] != '\n' && text[i] != '\r') {
			if (text[i] == '\0') {
				why = "NUL byte";
				rc = -EINVAL;
				goto out;
			}
			size_t ul = utf8_len((const unsigned char *)text + i, len - i);
			if (!ul) {
				why = "invalid UTF-8";
				rc = -EINVAL;
				goto out;
			}
			i += ul;
		}
		const char *le = text + i;
		if (i < len) {
			if (text[i] == '\r' && i + 1 < len && text[i + 1] == '\n')
				i++;
			i++;
		}
		pos = i;

		const char *vs = ls, *ve = le;
		trim(&vs, &ve);
		int comment = vs < ve && (*vs == '#' || *vs == ';');
		if (comment || vs == ve) {
			/* An empty (not comment) line inside a value adds an empty piece. */
			if (!comment && cur != -2 && pd.active) {
				if (buf_putc(&pd.value, '\n')) {
					rc = -ENOMEM;
					goto out;
				}
			}
			continue;
		}
		size_t cur_indent = (size_t)(vs - ls);
		if (cur != -2 && pd.active && cur_indent > indent_level) {
			/* Continuation line. */
			if (pd.first_empty && !memchr(vs, '=', (size_t)(ve - vs))) {
				why = "nested setting without '='";
				rc = -EINVAL;
				goto out;
			}
			if (buf_putc(&pd.value, '\n') || buf_append(&pd.value, vs, (size_t)(ve - vs))) {
				rc = -ENOMEM;
				goto out;
			}
			continue;
		}
		indent_level = cur_indent;
		/* Section header: '[' then at least one char then the last ']' of the line. */
		const char *rb = NULL;
		if (*vs == '[') {
			for (const char *p = ve - 1; p > vs + 1; p--)
				if (*p == ']') {
					rb = p;
					break;
				}
		}
		if (rb) {
			if ((rc = pending_flush(cfg, &pd)))
				goto out;
			size_t hl = (size_t)(rb - vs - 1);
			if (hl == 7 && memcmp(vs + 1, "DEFAULT", 7) == 0) {
				if (!cfg->has_defaults) {
					cfg->defaults.name = strdup("DEFAULT");
					if (!cfg->defaults.name) {
						rc = -ENOMEM;
						goto out;
					}
					cfg->defaults.line = lineno;
					cfg->has_defaults = 1;
				}
				cur = -1;
				continue;
			}
			for (size_t k = 0; k < cfg->n; k++) {
				if (strlen(cfg->sections[k].name) == hl &&
				    memcmp(cfg->sections[k].name, vs + 1, hl) == 0) {
					why = "duplicate section (the AWS CLI refuses this too)";
					rc = -EINVAL;
					goto out;
				}
			}
			if (cfg->n == cfg->cap) {
				size_t cap = cfg->cap ? cfg->cap * 2 : 8;
				struct awsconfig_section *v = realloc(cfg->sections, cap * sizeof(*v));
				if (!v) {
					rc = -ENOMEM;
					goto out;
				}
				cfg->sections = v;
				cfg->cap = cap;
			}
			struct awsconfig_section *s = &cfg->sections[cfg->n];
			memset(s, 0, sizeof(*s));
			s->line = lineno;
			s->name = dupn(vs + 1, hl);
			if (!s->name) {
				rc = -ENOMEM;
				goto out;
			}
			cfg->n++;
			if ((rc = section_set_profile(s, kind)))
				goto out;
			cur = (int)(cfg->n - 1);
			continue;
		}
		if (cur == -2) {
			why = "setting before any [section] header";
			rc = -EINVAL;
			goto out;
		}
		/* key = value / key: value, split at the first delimiter. */
		const char *d = vs;
		while (d < ve && *d != '=' && *d != ':')
			d++;
		if (d == ve) {
			why = "line is neither a [section], a comment nor key = value";
			rc = -EINVAL;
			goto out;
		}
		const char *ks = vs, *ke = d;
		trim(&ks, &ke);
		if (ks == ke) {
			why = "empty key";
			rc = -EINVAL;
			goto out;
		}
		if ((rc = pending_flush(cfg, &pd)))
			goto out;
		char *key = dupn(ks, (size_t)(ke - ks));
		if (!key) {
			rc = -ENOMEM;
			goto out;
		}
		for (char *p = key; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		if (section_find(sect_at(cfg, cur), key)) {
			free(key);
			why = "duplicate key in a section (the AWS CLI refuses this too)";
			rc = -EINVAL;
			goto out;
		}
		const char *xs = d + 1, *xe = ve;
		trim(&xs, &xe);
		pd.active = 1;
		pd.sect = cur;
		pd.key = key;
		pd.line = lineno;
		pd.first_empty = xs == xe;
		buf_reset(&pd.value);
		if (buf_append(&pd.value, xs, (size_t)(xe - xs))) {
			rc = -ENOMEM;
			goto out;
		}
	}
	rc = pending_flush(cfg, &pd);
out:
	free(pd.key);
	buf_free(&pd.value);
	if (rc) {
		awsconfig_free(cfg);
		if (err_line)
			*err_line = rc == -ENOMEM ? 0 : lineno;
		if (reason)
			*reason = why ? why : (rc == -ENOMEM ? "out of memory" : "malformed");
	}
	return rc;
}

int awsconfig_load(struct awsconfig *cfg, enum awsconfig_kind kind, const char *path,
		   struct log_ctx *lg, char *err, size_t errlen)
{
	awsconfig_init(cfg, kind);
	if (errlen)
		err[0] = '\0';
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT || e == ENOTDIR)
			return -ENOENT;
		if (errlen)
			snprintf(err, errlen, "cannot read %s: %s", path, strerror(e));
		LOG_DEBUG(lg, "awsconfig", "cannot read %s: %s", path, strerror(e));
		return e == EACCES || e == EPERM ? -EACCES : -EIO;
	}
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		close(fd);
		/* botocore: os.path.isfile() false, so the file counts as absent. */
		return -ENOENT;
	}
	struct buf b = BUF_INIT;
	int rc = fsutil_read_fd(fd, AWSCONFIG_MAX_SIZE, &b);
	close(fd);
	if (rc) {
		if (rc == -EFBIG) {
			if (errlen)
				snprintf(err, errlen, "%s is larger than %d bytes, refusing to read it",
					 path, AWSCONFIG_MAX_SIZE);
			LOG_DEBUG(lg, "awsconfig", "%s is larger than %d bytes, refusing to read it",
				  path, AWSCONFIG_MAX_SIZE);
		} else {
			if (errlen)
				snprintf(err, errlen, "cannot read %s: %s", path, strerror(-rc));
			LOG_DEBUG(lg, "awsconfig", "cannot read %s: %s", path, strerror(-rc));
		}
		explicit_bzero(b.data, b.cap);
		buf_free(&b);
		return rc;
	}
	int line = 0;
	const char *why = NULL;
	rc = awsconfig_parse(cfg, kind, b.data ? b.data : "", b.len, &line, &why);
	if (b.data)
		explicit_bzero(b.data, b.cap);
	buf_free(&b);
	if (rc) {
		if (errlen)
			snprintf(err, errlen, "%s line %d: %s", path, line, why);
		LOG_DEBUG(lg, "awsconfig", "malformed file %s line %d: %s", path, line, why);
	}
	return rc;
}

static const struct awsconfig_section *find_profile(const struct awsconfig *cfg,
						    const char *profile)
{
	/* The last section defining a profile replaces earlier ones (a dict assignment in
	 * botocore). */
	for (size_t i = cfg->n; i-- > 0;)
		if (cfg->sections[i].profile && strcmp(cfg->sections[i].profile, profile) == 0)
			return &cfg->sections[i];
	return NULL;
}

int awsconfig_has_profile(const struct awsconfig *cfg, const char *profile)
{
	return profile && find_profile(cfg, profile) != NULL;
}

static const struct awsconfig_entry *get_entry(const struct awsconfig *cfg, const char *profile,
					       const char *key)
{
	if (!profile || !key)
		return NULL;
	const struct awsconfig_section *s = find_profile(cfg, profile);
	if (!s)
		return NULL;
	const struct awsconfig_entry *e = section_find(s, key);
	if (!e && cfg->has_defaults)
		e = section_find(&cfg->defaults, key);
	return e;
}

const char *awsconfig_get(const struct awsconfig *cfg, const char *profile, const char *key)
{
	const struct awsconfig_entry *e = get_entry(cfg, profile, key);
	return e ? e->value : NULL;
}

int awsconfig_get_line(const struct awsconfig *cfg, const char *profile, const char *key)
{
	const struct awsconfig_entry *e = get_entry(cfg, profile, key);
	return e ? e->line : 0;
}

char *awsconfig_nested_get(const char *value, const char *subkey)
{
	if (!value || value[0] != '\n' || !subkey)
		return NULL;
	const char *found = NULL, *found_end = NULL;
	size_t sl = strlen(subkey);
	const char *p = value;
	while (*p) {
		const char *ls = p;
		while (*p && *p != '\n')
			p++;
		const char *le = p;
		if (*p)
			p++;
		trim(&ls, &le);
		if (ls == le)
			continue;
		const char *eq = memchr(ls, '=', (size_t)(le - ls));
		if (!eq)
			continue;
		const char *ks = ls, *ke = eq;
		trim(&ks, &ke);
		if ((size_t)(ke - ks) == sl && memcmp(ks, subkey, sl) == 0) {
			found = eq + 1;
			found_end = le;
			trim(&found, &found_end);
		}
	}
	return found ? dupn(found, (size_t)(found_end - found)) : NULL;
}

/* ---- environment and paths ---- */

const char *awsconfig_getenv(char *const *env, const char *name)
{
	if (!env)
		env = environ;
	if (!env || !name)
		return NULL;
	size_t n = strlen(name);
	for (; *env; env++)
		if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
			return *env + n + 1;
	return NULL;
}

static int is_word(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

char *awsconfig_expand_path(const char *path, char *const *env)
{
	struct buf b = BUF_INIT;
	/* os.path.expandvars: $name ([A-Za-z0-9_]+) and ${name}; unknown names stay. */
	for (const char *p = path; *p;) {
		if (*p == '$') {
			const char *ns, *ne, *after;
			if (p[1] == '{') {
				ns = p + 2;
				ne = strchr(ns, '}');
				after = ne ? ne + 1 : NULL;
			} else {
				ns = p + 1;
				ne = ns;
				while (is_word(*ne))
					ne++;
				after = ne;
			}
			if (ne && ne > ns) {
				char *name = dupn(ns, (size_t)(ne - ns));
				if (!name)
					goto oom;
				const char *v = awsconfig_getenv(env, name);
				free(name);
				if (v) {
					if (buf_appendz(&b, v))
						goto oom;
					p = after;
					continue;
				}
			}
		}
		if (buf_putc(&b, *p))
			goto oom;
		p++;
	}
	if (!b.data && buf_reserve(&b, 1))
		goto oom;
	/* os.path.expanduser: "~" or "~/..." from HOME (else passwd), "~user/...". */
	if (b.data[0] == '~') {
		const char *rest = strchr(b.data, '/');
		size_t ul = rest ? (size_t)(rest - b.data - 1) : b.len - 1;
		const char *home = NULL;
		char pwbuf[4096];
		struct passwd pw, *res = NULL;
		if (ul == 0) {
			home = awsconfig_getenv(env, "HOME");
			if (!home && getpwuid_r(getuid(), &pw, pwbuf, sizeof(pwbuf), &res) == 0 && res)
				home = pw.pw_dir;
		} else {
			char *user = dupn(b.data + 1, ul);
			if (!user)
				goto oom;
			if (getpwnam_r(user, &pw, pwbuf, sizeof(pwbuf), &res) == 0 && res)
				home = pw.pw_dir;
			free(user);
		}
		if (home) {
			struct buf o = BUF_INIT;
			size_t hl = strlen(home);
			while (hl > 1 && home[hl - 1] == '/')
				hl--;
			if (buf_append(&o, home, hl) || (rest && buf_appendz(&o, rest))) {
				buf_free(&o);
				goto oom;
			}
			if (!o.data && buf_appendz(&o, "/")) {
				buf_free(&o);
				goto oom;
			}
			buf_free(&b);
			return buf_steal(&o);
		}
	}
	return buf_steal(&b);
oom:
	buf_free(&b);
	return NULL;
}

/* ---- files of one profile ---- */

void awsconfig_files_free(struct awsconfig_files *f)
{
	awsconfig_free(&f->config);
	awsconfig_free(&f->credentials);
	free(f->config_path);
	free(f->credentials_path);
	free(f->profile);
	memset(f, 0, sizeof(*f));
	f->config.kind = AWSCONFIG_CONFIG;
	f->credentials.kind = AWSCONFIG_CREDENTIALS;
}

int awsconfig_files_load(struct awsconfig_files *f, const char *opt_profile,
			 char *const *env, struct log_ctx *lg, char *err, size_t errlen)
{
	memset(f, 0, sizeof(*f));
	awsconfig_init(&f->config, AWSCONFIG_CONFIG);
	awsconfig_init(&f->credentials, AWSCONFIG_CREDENTIALS);
	if (errlen)
		err[0] = '\0';
	const char *prof = NULL;
	if (opt_profile) {
		prof = opt_profile;
		f->profile_explicit = 1;
	} else if ((prof = awsconfig_getenv(env, "AWS_PROFILE")) && *prof) {
		f->profile_from_env = 1;
	} else {
		prof = "default";
	}
	if (!*prof) {
		if (errlen)
			snprintf(err, errlen, "the profile name is empty");
		LOG_DEBUG(lg, "awsconfig", "the profile name is empty");
		return -EINVAL;
	}
	const char *cp = awsconfig_getenv(env, "AWS_CONFIG_FILE");
	const char *kp = awsconfig_getenv(env, "AWS_SHARED_CREDENTIALS_FILE");
	f->profile = strdup(prof);
	f->config_path = awsconfig_expand_path(cp && *cp ? cp : "~/.aws/config", env);
	f->credentials_path = awsconfig_expand_path(kp && *kp ? kp : "~/.aws/credentials", env);
	if (!f->profile || !f->config_path || !f->credentials_path) {
		awsconfig_files_free(f);
		if (errlen)
			snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int rc = awsconfig_load(&f->config, AWSCONFIG_CONFIG, f->config_path, lg, err, errlen);
	if (rc && rc != -ENOENT)
		goto fail;
	rc = awsconfig_load(&f->credentials, AWSCONFIG_CREDENTIALS, f->credentials_path, lg, err,
			    errlen);
	if (rc && rc != -ENOENT)
		goto fail;
	if ((f->profile_explicit || f->profile_from_env) &&
	    !awsconfig_has_profile(&f->config, f->profile) &&
	    !awsconfig_has_profile(&f->credentials, f->profile)) {
		if (errlen)
			snprintf(err, errlen, "the profile \"%s\" (from %s) is not defined in %s or %s",
				 f->profile, f->profile_explicit ? "the profile option" : "AWS_PROFILE",
				 f->config_path, f->credentials_path);
		LOG_DEBUG(lg, "awsconfig", "profile \"%s\" is not defined in %s or %s", f->profile,
			  f->config_path, f->credentials_path);
		rc = -ENOENT;
		goto fail;
	}
	return 0;
fail:
	awsconfig_files_free(f);
	return rc;
}

const char *awsconfig_files_get(const struct awsconfig_files *f, const char *key)
{
	if (!f || !f->profile)
		return NULL;
	const char *v = awsconfig_get(&f->credentials, f->profile, key);
	return v ? v : awsconfig_get(&f->config, f->profile, key);
}

/* ---- region and endpoints ---- */

int awsconfig_region_valid(const char *r)
{
	if (!r || !*r)
		return 0;
	size_t n = 0;
	for (const char *p = r; *p; p++, n++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
			return 0;
	return n <= AWSCONFIG_REGION_MAX;
}

static char *derive(const char *prefix, const char *region)
{
	if (!awsconfig_region_valid(region))
		return NULL;
	struct buf b = BUF_INIT;
	int cn = strncmp(region, "cn-", 3) == 0;
	if (buf_printf(&b, "https://%s.%s.amazonaws.com%s", prefix, region, cn ? ".cn" : "")) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
}

char *awsconfig_kvs_endpoint(const char *region)
{
	return derive("kinesisvideo", region);
}

char *awsconfig_s3_endpoint(const char *region)
{
	return derive("s3", region);
}

char *awsconfig_endpoint_normalize(const char *url, char *err, size_t errlen)
{
	if (errlen)
		err[0] = '\0';
	size_t skip;
	if (!url) {
		if (errlen)
			snprintf(err, errlen, "is empty");
		return NULL;
	}
	if (strncasecmp(url, "https://", 8) == 0)
		skip = 8;
	else if (strncasecmp(url, "http://", 7) == 0)
		skip = 7;
	else {
		if (errlen)
			snprintf(err, errlen, "must start with http:// or https://");
		return NULL;
	}
	for (const char *p = url; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c <= 0x20 || c == 0x7f) {
			if (errlen)
				snprintf(err, errlen, "contains whitespace or control characters");
			return NULL;
		}
		if (c == '?' || c == '#') {
			if (errlen)
				snprintf(err, errlen, "must not have a query or fragment");
			return NULL;
		}
	}
	const char *host = url + skip;
	size_t al = strcspn(host, "/");
	if (memchr(host, '@', al)) {
		if (errlen)
			snprintf(err, errlen, "must not contain user information");
		return NULL;
	}
	/* Host part: non-empty, port (if any) all digits. */
	size_t hl = al;
	if (host[0] == '[') {
		const char *rb = memchr(host, ']', al);
		if (!rb || rb == host + 1) {
			if (errlen)
				snprintf(err, errlen, "has a malformed IPv6 host");
			return NULL;
		}
		hl = (size_t)(rb - host) + 1;
		if (hl < al && host[hl] != ':') {
			if (errlen)
				snprintf(err, errlen, "has a malformed host");
			return NULL;
		}
	} else {
		const char *colon = memchr(host, ':', al);
		if (colon)
			hl = (size_t)(colon - host);
	}
	if (hl == 0) {
		if (errlen)
			snprintf(err, errlen, "has no host");
		return NULL;
	}
	if (hl < al) {
		size_t plen = al - hl - 1;
		if (plen == 0 || plen > 5) {
			if (errlen)
				snprintf(err, errlen, "has a malformed port");
			return NULL;
		}
		long port = 0;
		for (size_t i = hl + 1; i < al; i++) {
			if (host[i] < '0' || host[i] > '9') {
				if (errlen)
					snprintf(err, errlen, "has a malformed port");
				return NULL;
			}
			port = port * 10 + (host[i] - '0');
		}
		if (port < 1 || port > 65535) {
			if (errlen)
				snprintf(err, errlen, "has a port out of range");
			return NULL;
		}
	}
	size_t n = strlen(url);
	while (n > skip + al && url[n - 1] == '/')
		n--;
	char *out = dupn(url, n);
	if (!out && errlen)
		snprintf(err, errlen, "out of memory");
	return out;
}

void awsconfig_settings_free(struct awsconfig_settings *s)
{
	free(s->region);
	free(s->kvs_endpoint);
	free(s->s3_endpoint);
	memset(s, 0, sizeof(*s));
}

int awsconfig_resolve(struct awsconfig_settings *out, const struct awsconfig_files *files,
		      const char *opt_region, const char *opt_endpoint,
		      const char *opt_s3_endpoint, char *const *env, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (errlen)
		err[0] = '\0';
	const char *r = NULL, *src = NULL;
	const char *v;
	if (opt_region && *opt_region) {
		r = opt_region;
		src = "option";
	} else if ((v = awsconfig_getenv(env, "AWS_REGION")) && *v) {
		r = v;
		src = "AWS_REGION";
	} else if ((v = awsconfig_getenv(env, "AWS_DEFAULT_REGION")) && *v) {
		r = v;
		src = "AWS_DEFAULT_REGION";
	} else if ((v = awsconfig_files_get(files, "region")) && *v) {
		r = v;
		src = "profile";
	}
	if (!r) {
		if (errlen)
			snprintf(err, errlen, "no AWS region is set: use the region= option, "
				 "AWS_REGION or a region in the profile");
		return -EINVAL;
	}
	if (!awsconfig_region_valid(r)) {
		if (errlen) {
			if (strcmp(src, "profile") == 0)
				snprintf(err, errlen, "the region of profile \"%s\" is not a valid "
					 "region name", files->profile);
			else
				snprintf(err, errlen, "the region from %s is not a valid region name", src);
		}
		return -EINVAL;
	}
	out->region = strdup(r);
	out->region_source = src;
	char why[128];
	if (opt_endpoint && *opt_endpoint) {
		out->kvs_endpoint = awsconfig_endpoint_normalize(opt_endpoint, why, sizeof(why));
		if (!out->kvs_endpoint) {
			if (errlen)
				snprintf(err, errlen, "the endpoint option %s", why);
			awsconfig_settings_free(out);
			return -EINVAL;
		}
		out->kvs_endpoint_explicit = 1;
	} else {
		out->kvs_endpoint = awsconfig_kvs_endpoint(r);
	}
	if (opt_s3_endpoint && *opt_s3_endpoint) {
		out->s3_endpoint = awsconfig_endpoint_normalize(opt_s3_endpoint, why, sizeof(why));
		if (!out->s3_endpoint) {
			if (errlen)
				snprintf(err, errlen, "the s3_endpoint option %s", why);
			awsconfig_settings_free(out);
			return -EINVAL;
		}
		out->s3_endpoint_explicit = 1;
	} else {
		out->s3_endpoint = awsconfig_s3_endpoint(r);
	}
	if (!out->region || !out->kvs_endpoint || !out->s3_endpoint) {
		awsconfig_settings_free(out);
		if (errlen)
			snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}
