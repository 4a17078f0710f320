/*
 * awsconfig_ini: the AWS shared `config` and `credentials` files as INI text, read exactly as
 * the AWS CLI (botocore on Python's configparser.RawConfigParser) reads them: the parser, the
 * parsed model (sections of key/value entries) and lookups by profile. awsconfig.h builds the
 * profile view, region and endpoints on top.
 *
 * File syntax (what the CLI accepts, and nothing more):
 *   - Lines end with LF, CRLF or CR; a missing final newline is fine. The text must be UTF-8
 *     without NUL bytes; files larger than AWSCONFIG_MAX_SIZE are refused (-EFBIG).
 *   - A line whose first non-blank character is '#' or ';' is a comment (inline comments do not
 *     exist: "region = x # y" has the value "x # y"). Blank lines are ignored.
 *   - "[name]" opens a section (name kept as written, case-sensitive; the text between the
 *     first '[' and the last ']'). A key line before any section is an error.
 *   - "key = value" or "key: value": the key ends at the first '=' or ':', is trimmed and
 *     lower-cased; the value is trimmed. A line with neither delimiter, or an empty key, is an
 *     error.
 *   - A line indented deeper than the key line above it continues that key's value (joined with
 *     '\n'). A value that starts with such a line ("s3 =\n  addressing_style = path") is a
 *     nested sub-section: each of its lines must contain '=' (else the file is malformed);
 *     awsconfig_nested_get() reads it.
 *   - A section name appearing twice, or a key appearing twice in one section, makes the file
 *     malformed (the CLI refuses such files: "Unable to parse config file"), so "last wins"
 *     never silently applies. "[DEFAULT]" is special: its keys are defaults for every section.
 * Profiles: in `config`, "[default]" and "[profile NAME]" (NAME may be quoted as the CLI's
 * shlex split allows; other sections such as [sso-session x] are not profiles); when a profile
 * is defined twice (e.g. [default] and [profile default]) the later section replaces the
 * earlier. In `credentials`, the section name is the profile name.
 *
 * Errors name the file and line, never the line's content (it may hold a secret).
 * Thread-safety: no global state; a parsed struct awsconfig is immutable and may be read from
 * any number of threads.
 */
#ifndef KVSFS_AWSCONFIG_INI_H
#define KVSFS_AWSCONFIG_INI_H

#include <stddef.h>

#include "kvsfs/log.h"

#define AWSCONFIG_MAX_SIZE (1024 * 1024)  /* bytes; larger files are refused with -EFBIG */

enum awsconfig_kind {
	AWSCONFIG_CONFIG = 0,       /* ~/.aws/config: [default], [profile NAME] */
	AWSCONFIG_CREDENTIALS = 1,  /* ~/.aws/credentials: [NAME] */
};

struct awsconfig_entry {
	char *key;    /* lower-cased */
	char *value;  /* trimmed; continuation lines joined with '\n'; "" allowed */
	int line;     /* 1-based line of the key */
};

struct awsconfig_section {
	char *name;   /* header text as written */
	char *profile;  /* profile this section defines, or NULL (not a profile) */
	struct awsconfig_entry *entries;
	size_t n, cap;
	int line;
};

struct awsconfig {
	enum awsconfig_kind kind;
	struct awsconfig_section *sections;  /* in file order; [DEFAULT] is kept in defaults */
	size_t n, cap;
	struct awsconfig_section defaults;   /* [DEFAULT] keys (name "DEFAULT"), maybe empty */
	int has_defaults;
};

/* Initialises an empty configuration (no profiles). */
void awsconfig_init(struct awsconfig *cfg, enum awsconfig_kind kind);
/* Frees everything cfg owns; cfg is empty afterwards. */
void awsconfig_free(struct awsconfig *cfg);

/*
 * Parses text (len bytes, need not be NUL-terminated) into cfg (initialised by the call).
 * Returns 0, -EINVAL for malformed text (then *err_line, when not NULL, is the 1-based line and
 * reason, when not NULL, points to a static description such as "duplicate key"), -EFBIG when
 * len > AWSCONFIG_MAX_SIZE, -ENOMEM. On error cfg is left empty. Does not log.
 */
int awsconfig_parse(struct awsconfig *cfg, enum awsconfig_kind kind, const char *text,
		    size_t len, int *err_line, const char **reason);

/*
 * Reads and parses the file at path. Returns 0; -ENOENT when the file does not exist (cfg is
 * then empty and nothing is logged: missing files are normal); -EINVAL/-EFBIG/-EACCES/-EIO/
 * -ENOMEM otherwise, with one sentence "FILE line N: REASON" in err (errlen bytes, may be 0).
 * The caller reports err (it is logged here only at debug level; lg may be NULL).
 */
int awsconfig_load(struct awsconfig *cfg, enum awsconfig_kind kind, const char *path,
		   struct log_ctx *lg, char *err, size_t errlen);

/* Returns 1 when cfg defines profile (for AWSCONFIG_CREDENTIALS: a section of that name). */
int awsconfig_has_profile(const struct awsconfig *cfg, const char *profile);
/*
 * Returns the value of key (lower-case) in profile, falling back to [DEFAULT], or NULL when
 * absent (or when the profile does not exist). The pointer is owned by cfg.
 */
const char *awsconfig_get(const struct awsconfig *cfg, const char *profile, const char *key);
/* The line where that key was defined (0 when absent), for error messages. */
int awsconfig_get_line(const struct awsconfig *cfg, const char *profile, const char *key);

/*
 * Looks up subkey in a nested value ("\naddressing_style = path\n..."). Returns a malloc'd,
 * trimmed copy (caller frees) or NULL when value is not nested, lacks the subkey, or on -ENOMEM.
 * When the subkey repeats, the last one wins (as in the CLI).
 */
char *awsconfig_nested_get(const char *value, const char *subkey);

#endif
