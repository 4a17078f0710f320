/*
 * awsconfig: the AWS shared `config` and `credentials` files, read exactly as the AWS CLI
 * (botocore on Python's configparser.RawConfigParser) reads them, plus region and endpoint
 * resolution.
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
 * earlier. In `credentials`, the section name is the profile name. The merged view
 * (awsconfig_files_get) is the CLI's: a key in the credentials file wins over the config file.
 *
 * Errors name the file and line, never the line's content (it may hold a secret).
 *
 * Region: the region= option, else env AWS_REGION, else AWS_DEFAULT_REGION, else the profile's
 * "region". Valid names match ^[a-z0-9-]+$ (at most 63 characters).
 * Endpoints: KVS https://kinesisvideo.REGION.amazonaws.com and S3 https://s3.REGION.amazonaws.com
 * (".amazonaws.com.cn" for cn-* regions), unless an endpoint option gives a URL; only such an
 * explicit URL may use http:// (local servers).
 *
 * Environment: every function taking `char *const *env` reads variables from that NULL-terminated
 * "NAME=value" array, or from the process environment when env is NULL (tests pass their own).
 * Thread-safety: no global state; a parsed struct awsconfig is immutable and may be read from
 * any number of threads.
 */
#ifndef KVSFS_AWSCONFIG_H
#define KVSFS_AWSCONFIG_H

#include <stddef.h>

#include "kvsfs/log.h"

#define AWSCONFIG_MAX_SIZE (1024 * 1024)  /* bytes; larger files are refused with -EFBIG */
#define AWSCONFIG_REGION_MAX 63

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

/* ---- the two files of one profile, as the CLI loads them ---- */

struct awsconfig_files {
	struct awsconfig config;
	struct awsconfig credentials;
	char *config_path;       /* expanded paths (malloc'd) */
	char *credentials_path;
	char *profile;           /* the selected profile (malloc'd) */
	int profile_explicit;    /* 1: from the profile= option (like `aws --profile`) */
	int profile_from_env;    /* 1: from AWS_PROFILE */
};

/*
 * Selects the profile (opt_profile, else env AWS_PROFILE, else "default") and loads
 * AWS_CONFIG_FILE (default ~/.aws/config) and AWS_SHARED_CREDENTIALS_FILE (default
 * ~/.aws/credentials); "~" and $VAR/${VAR} in those paths are expanded as the CLI does. Missing
 * files are fine. Returns 0, or a negative errno with one sentence in err: a malformed or
 * unreadable file (see awsconfig_load), or a profile given by option or AWS_PROFILE that
 * neither file defines (-ENOENT), -EINVAL for an empty profile name. On error f is freed. As
 * for awsconfig_load, the caller reports err; nothing is logged above debug level.
 */
int awsconfig_files_load(struct awsconfig_files *f, const char *opt_profile,
			 char *const *env, struct log_ctx *lg, char *err, size_t errlen);
/* Frees f (safe on a zeroed or already freed struct). */
void awsconfig_files_free(struct awsconfig_files *f);
/* The merged profile value of key: credentials file first, then config file; NULL if absent. */
const char *awsconfig_files_get(const struct awsconfig_files *f, const char *key);

/* ---- region and endpoints ---- */

struct awsconfig_settings {
	char *region;            /* malloc'd, valid region name */
	char *kvs_endpoint;      /* malloc'd URL without trailing '/' */
	char *s3_endpoint;       /* malloc'd URL without trailing '/' */
	const char *region_source;  /* "option", "AWS_REGION", "AWS_DEFAULT_REGION", "profile" */
	int kvs_endpoint_explicit;  /* 1: from the option */
	int s3_endpoint_explicit;
};

/*
 * Resolves region and endpoints (see the top comment). files may be NULL (no profile region).
 * opt_* may be NULL. Returns 0, or -EINVAL with one sentence in err: no region anywhere, an
 * invalid region name (named with its source), or a bad endpoint URL. On error out is freed.
 */
int awsconfig_resolve(struct awsconfig_settings *out, const struct awsconfig_files *files,
		      const char *opt_region, const char *opt_endpoint,
		      const char *opt_s3_endpoint, char *const *env, char *err, size_t errlen);
/* Frees the strings of s (safe on a zeroed struct). */
void awsconfig_settings_free(struct awsconfig_settings *s);

/* 1 when r is a valid region name (^[a-z0-9-]+$, 1..63 characters), else 0. */
int awsconfig_region_valid(const char *r);
/*
 * Derived endpoints for a valid region: "https://kinesisvideo.R.amazonaws.com" (or
 * ".amazonaws.com.cn" for cn-*) / "https://s3.R.amazonaws.com[.cn]". Returns a malloc'd string,
 * or NULL when the region is invalid or memory runs out.
 */
char *awsconfig_kvs_endpoint(const char *region);
char *awsconfig_s3_endpoint(const char *region);
/*
 * Checks an explicit endpoint URL: http:// or https:// (case-insensitive scheme), a non-empty
 * host, no user-info ("user:pass@"), no whitespace or control characters, no query or fragment.
 * Returns a malloc'd copy without trailing '/' or NULL with a reason in err (-EINVAL semantics).
 */
char *awsconfig_endpoint_normalize(const char *url, char *err, size_t errlen);

/* ---- helpers shared with the credentials chain ---- */

/* Value of name in env (NULL: the process environment), or NULL when unset. */
const char *awsconfig_getenv(char *const *env, const char *name);
/*
 * Expands a path as the CLI does (os.path.expandvars then expanduser): $VAR and ${VAR} from env
 * (unset variables stay as written), then a leading "~" or "~/" from HOME (or the password
 * database). Returns a malloc'd string or NULL (-ENOMEM).
 */
char *awsconfig_expand_path(const char *path, char *const *env);

#endif
