/*
 * awsconfig: the profile view of the AWS shared `config` and `credentials` files, as the AWS CLI
 * builds it, plus region and endpoint resolution. The files' syntax and the parsed model are in
 * awsconfig_ini.h (included here).
 *
 * Profile selection and merging: the profile= option, else env AWS_PROFILE, else "default"; a
 * named profile must exist in one of the files. The merged view (awsconfig_files_get) is the
 * CLI's: a key in the credentials file wins over the config file.
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

#include "kvsfs/awsconfig_ini.h"
#include "kvsfs/log.h"

#define AWSCONFIG_REGION_MAX 63

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
