/*
 * awsconfig_ini: the INI dialect of the AWS shared config/credentials files (see
 * include/kvsfs/awsconfig_ini.h for the accepted syntax); awsconfig.c builds the profile view,
 * region and endpoints on top of it.
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
 * Steps of one parse: cut_line (line ends, UTF-8, NUL) then parse_line, which dispatches to a
 * blank/comment, a continuation, open_section or open_key; struct parser holds what Python's
 * _read keeps in locals.
 * Invariants: a successfully parsed struct awsconfig never holds duplicate section names or
 * duplicate keys within a section; all strings are NUL-free UTF-8. Errors carry a line number
 * and a static reason, never file content.
 */
#include "kvsfs/awsconfig_ini.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvsfs/array.h"
#include "kvsfs/buf.h"
#include "kvsfs/fsutil.h"

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
	struct awsconfig_entry *v = array_grow(s->entries, s->n, &s->cap, sizeof(*v), 8);
	if (!v) {
		free(key);
		free(value);
		return -ENOMEM;
	}
	s->entries = v;
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

/* State of one parse: Python's _read() locals. */
struct parser {
	struct awsconfig *cfg;
	enum awsconfig_kind kind;
	struct pending pd;
	int cur;             /* current section: -2 none, -1 [DEFAULT], else index */
	size_t indent_level; /* indentation of the last key or section line */
	int lineno;
	const char *why;     /* static reason of a -EINVAL */
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

static int malformed(struct parser *ps, const char *why)
{
	ps->why = why;
	return -EINVAL;
}

/* Cuts the line starting at *pos (ended by LF, CRLF, CR or the end), checking that it is NUL-free
 * UTF-8; [*ls, *le) is the line without its end, *pos moves past the end. */
static int cut_line(struct parser *ps, const char *text, size_t len, size_t *pos, const char **ls,
		    const char **le)
{
	size_t i = *pos;
	*ls = text + i;
	while (i < len && text[i] != '\n' && text[i] != '\r') {
		if (text[i] == '\0')
			return malformed(ps, "NUL byte");
		size_t ul = utf8_len((const unsigned char *)text + i, len - i);
		if (!ul)
			return malformed(ps, "invalid UTF-8");
		i += ul;
	}
	*le = text + i;
	if (i < len) {
		if (text[i] == '\r' && i + 1 < len && text[i + 1] == '\n')
			i++;
		i++;
	}
	*pos = i;
	return 0;
}

/* "[name]": opens a section (or switches to [DEFAULT]). hl: length of the name after '['. */
static int open_section(struct parser *ps, const char *name, size_t hl)
{
	struct awsconfig *cfg = ps->cfg;
	int rc = pending_flush(cfg, &ps->pd);
	if (rc)
		return rc;
	if (hl == 7 && memcmp(name, "DEFAULT", 7) == 0) {
		if (!cfg->has_defaults) {
			cfg->defaults.name = strdup("DEFAULT");
			if (!cfg->defaults.name)
				return -ENOMEM;
			cfg->defaults.line = ps->lineno;
			cfg->has_defaults = 1;
		}
		ps->cur = -1;
		return 0;
	}
	for (size_t k = 0; k < cfg->n; k++)
		if (strlen(cfg->sections[k].name) == hl && memcmp(cfg->sections[k].name, name, hl) == 0)
			return malformed(ps, "duplicate section (the AWS CLI refuses this too)");
	struct awsconfig_section *v = array_grow(cfg->sections, cfg->n, &cfg->cap, sizeof(*v), 8);
	if (!v)
		return -ENOMEM;
	cfg->sections = v;
	struct awsconfig_section *s = &cfg->sections[cfg->n];
	memset(s, 0, sizeof(*s));
	s->line = ps->lineno;
	s->name = dupn(name, hl);
	if (!s->name)
		return -ENOMEM;
	cfg->n++;
	ps->cur = (int)(cfg->n - 1);
	return section_set_profile(s, ps->kind);
}

/* "key = value" / "key: value" (split at the first delimiter): opens a key. */
static int open_key(struct parser *ps, const char *vs, const char *ve)
{
	const char *d = vs;
	while (d < ve && *d != '=' && *d != ':')
		d++;
	if (d == ve)
		return malformed(ps, "line is neither a [section], a comment nor key = value");
	const char *ks = vs, *ke = d;
	trim(&ks, &ke);
	if (ks == ke)
		return malformed(ps, "empty key");
	int rc = pending_flush(ps->cfg, &ps->pd);
	if (rc)
		return rc;
	char *key = dupn(ks, (size_t)(ke - ks));
	if (!key)
		return -ENOMEM;
	for (char *p = key; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	if (section_find(sect_at(ps->cfg, ps->cur), key)) {
		free(key);
		return malformed(ps, "duplicate key in a section (the AWS CLI refuses this too)");
	}
	const char *xs = d + 1, *xe = ve;
	trim(&xs, &xe);
	struct pending *pd = &ps->pd;
	pd->active = 1;
	pd->sect = ps->cur;
	pd->key = key;
	pd->line = ps->lineno;
	pd->first_empty = xs == xe;
	buf_reset(&pd->value);
	return buf_append(&pd->value, xs, (size_t)(xe - xs)) ? -ENOMEM : 0;
}

/* One line [ls, le): blank, comment, continuation, section header or key. */
static int parse_line(struct parser *ps, const char *ls, const char *le)
{
	struct pending *pd = &ps->pd;
	const char *vs = ls, *ve = le;
	trim(&vs, &ve);
	int comment = vs < ve && (*vs == '#' || *vs == ';');
	if (comment || vs == ve) {
		/* An empty (not comment) line inside a value adds an empty piece. */
		if (!comment && ps->cur != -2 && pd->active && buf_putc(&pd->value, '\n'))
			return -ENOMEM;
		return 0;
	}
	size_t cur_indent = (size_t)(vs - ls);
	if (ps->cur != -2 && pd->active && cur_indent > ps->indent_level) {
		/* Continuation line. */
		if (pd->first_empty && !memchr(vs, '=', (size_t)(ve - vs)))
			return malformed(ps, "nested setting without '='");
		if (buf_putc(&pd->value, '\n') || buf_append(&pd->value, vs, (size_t)(ve - vs)))
			return -ENOMEM;
		return 0;
	}
	ps->indent_level = cur_indent;
	/* Section header: '[' then at least one char then the last ']' of the line. */
	if (*vs == '[') {
		for (const char *p = ve - 1; p > vs + 1; p--)
			if (*p == ']')
				return open_section(ps, vs + 1, (size_t)(p - vs - 1));
	}
	if (ps->cur == -2)
		return malformed(ps, "setting before any [section] header");
	return open_key(ps, vs, ve);
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
	struct parser ps = { cfg, kind, { 0, 0, NULL, BUF_INIT, 0, 0 }, -2, 0, 0, NULL };
	int rc = 0;
	for (size_t pos = 0; pos < len && !rc;) {
		const char *ls, *le;
		ps.lineno++;
		rc = cut_line(&ps, text, len, &pos, &ls, &le);
		if (!rc)
			rc = parse_line(&ps, ls, le);
	}
	if (!rc)
		rc = pending_flush(cfg, &ps.pd);
	free(ps.pd.key);
	buf_free(&ps.pd.value);
	if (rc) {
		awsconfig_free(cfg);
		if (err_line)
			*err_line = rc == -ENOMEM ? 0 : ps.lineno;
		if (reason)
			*reason = ps.why ? ps.why : (rc == -ENOMEM ? "out of memory" : "malformed");
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
