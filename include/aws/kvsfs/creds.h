/*
 * creds: the AWS credentials provider chain, in the AWS CLI's order, with safe refresh.
 *
 * Resolution (creds_provider_new) tries, in order, and the first source that has credentials
 * wins for the life of the provider (later refreshes ask the same source again):
 *   1. environment: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN, or the older
 *      AWS_SECURITY_TOKEN). Skipped when the profile comes from the profile= option, as
 *      `aws --profile P` skips it; an access key without a secret is an error.
 *   2. the profile of the shared files (see awsconfig.h for how it is chosen and read):
 *      role_arn / web_identity_token_file / sso_* settings are refused with a clear error
 *      (kvsfs does not call STS or SSO; the message suggests credential_process), then static
 *      keys from the credentials file, then credential_process, then static keys from the config
 *      file (the CLI's order).
 *      credential_process runs "/bin/sh -c COMMAND" (posix_spawn: fork+exec that is safe in a
 *      threaded process) with stdin /dev/null, stderr inherited and stdout read up to 64 KiB
 *      within a timeout (30 s default); the child is killed (process group) on timeout.
 *      Its stdout must be JSON {"Version": 1, "AccessKeyId", "SecretAccessKey",
 *      ["SessionToken"], ["Expiration" ISO 8601]}; a non-zero exit, a timeout, too much output or
 *      bad JSON is an error. The output is never logged.
 *   3. container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI appended to
 *      http://169.254.170.2 (the base can be replaced by opts.container_endpoint or env
 *      KVSFS_CONTAINER_ENDPOINT, for tests), else AWS_CONTAINER_CREDENTIALS_FULL_URI, which must
 *      be https or use a host the CLI allows (loopback, 169.254.170.2, 169.254.170.23,
 *      fd00:ec2::23). The Authorization header comes from the file named by
 *      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (re-read on every fetch) or from
 *      AWS_CONTAINER_AUTHORIZATION_TOKEN. Reply: JSON AccessKeyId, SecretAccessKey, Token,
 *      Expiration.
 *   4. IMDSv2: PUT /latest/api/token (X-aws-ec2-metadata-token-ttl-seconds: 21600), then GET
 *      /latest/meta-data/iam/security-credentials/ (first line = role), then GET .../ROLE, both
 *      with X-aws-ec2-metadata-token. When the token PUT is answered 403/404/405 the CLI falls
 *      back to IMDSv1 (GETs without a token); so does kvsfs unless AWS_EC2_METADATA_V1_DISABLED
 *      is true. Endpoint: AWS_EC2_METADATA_SERVICE_ENDPOINT, else the profile's
 *      ec2_metadata_service_endpoint, else http://169.254.169.254. Disabled by
 *      AWS_EC2_METADATA_DISABLED=true. Timeout 1 s per request (AWS_METADATA_SERVICE_TIMEOUT
 *      overrides it: decimal seconds such as "2" or "0.5", more than 0 and at most 600, read
 *      with decsec_parse_ms; other values are ignored), one attempt, so a mount without IMDS
 *      fails fast.
 *   Nothing found: -ENOKEY with "no AWS credentials found: ..." in err.
 *
 * Refresh: credentials with an Expiration are refreshed when less than refresh_margin_s
 * (default 300) remain. When a source returns credentials that live shorter than the margin,
 * the refresh is due halfway through their remaining life instead (never sooner than 1 s after
 * the fetch), so short-lived credentials do not cause a fetch per call. creds_get() runs under a
 * mutex for a few instructions only: the caller that finds a refresh due becomes the one
 * refresher (a flag), fetches without the lock, then installs the new value. While a refresh
 * runs, other callers get the current credentials if they are still valid, or wait for the
 * refresh if they have expired. A failed refresh keeps still-valid credentials (one warning,
 * next attempt after 10 s); when they have expired, creds_get fails with -EACCES (and a new
 * attempt is made at most once a second).
 *
 * Logging: one info line naming the winning source ("credentials from environment", "...from
 * shared credentials file profile P", "...from credential_process of profile P", "...from
 * container endpoint", "...from instance metadata (IMDS) role R"), debug lines for
 * refreshes; keys, secrets, tokens and process output never appear.
 *
 * Thread-safety: creds_get() may be called from any number of threads at once; the provider
 * must not be freed while a call runs. creds_value copies belong to the caller.
 */
#ifndef KVSFS_CREDS_H
#define KVSFS_CREDS_H

#include <stddef.h>
#include <time.h>

#include "kvsfs/awsconfig.h"
#include "kvsfs/log.h"

enum creds_source {
	CREDS_SOURCE_NONE = 0,
	CREDS_SOURCE_ENV,
	CREDS_SOURCE_CREDENTIALS_FILE,  /* static keys in the shared credentials file */
	CREDS_SOURCE_CONFIG_FILE,       /* static keys in the shared config file */
	CREDS_SOURCE_PROCESS,           /* credential_process */
	CREDS_SOURCE_CONTAINER,
	CREDS_SOURCE_IMDS,
};

/* A copy of one set of credentials. All strings malloc'd and owned by the holder. */
struct creds_value {
	char *access_key_id;
	char *secret_access_key;
	char *session_token;      /* NULL for long-term keys */
	time_t expiration;        /* 0: does not expire */
	enum creds_source source;
};

struct creds_options {
	const char *profile;            /* the profile= option; NULL: AWS_PROFILE, then "default" */
	char *const *env;               /* NULL: process environment; else "NAME=value" array */
	int refresh_margin_s;           /* refresh when fewer seconds remain; 0: 300, < 0: none */
	int imds_timeout_ms;            /* per IMDS request; 0: 1000 (or AWS_METADATA_SERVICE_TIMEOUT) */
	int container_timeout_ms;       /* per container request; 0: 2000 */
	int process_timeout_ms;         /* credential_process; 0: 30000 */
	const char *container_endpoint; /* base for the relative URI; NULL: env
					 * KVSFS_CONTAINER_ENDPOINT, else http://169.254.170.2 */
	const char *ca_file;            /* for an https container full URI */
	int no_verify_ssl;
};

struct creds_provider;

/* Statistics for tests and debug logs. */
struct creds_stats {
	unsigned long fetches;          /* successful fetches from the source (the first included) */
	unsigned long failures;         /* failed refresh attempts */
};

/*
 * Resolves the chain (see the top comment) and fetches the first credentials, so a mount with
 * no usable credentials fails here. files: the already loaded shared files (borrowed for the
 * call only), or NULL to load them here from opts->profile and opts->env. lg may be NULL; it
 * must outlive the provider. Returns 0 and *out, or a negative errno with one sentence in err
 * (errlen bytes): -ENOKEY when no source has credentials; -EINVAL for a malformed file or
 * setting, a bad process/endpoint reply or an incomplete key pair; -ENOTSUP for profiles that
 * need STS/SSO; -ENOENT for an undefined named profile; -EACCES when the source refuses;
 * -ETIMEDOUT / -EIO / -ECONNREFUSED for an unreachable container endpoint; -ETIMEDOUT / -EFBIG
 * for a credential_process that hangs or floods its output; -ENOMEM. (An unreachable instance
 * metadata service is the end of the chain: -ENOKEY, the sentence says why.)
 * The caller reports err once (the mount prints it); the provider logs failures here only at
 * debug level, and the winning source at info level.
 */
int creds_provider_new(struct creds_provider **out, const struct creds_options *opts,
		       const struct awsconfig_files *files, struct log_ctx *lg, char *err,
		       size_t errlen);
/* Frees the provider (NULL allowed) and wipes the secrets it holds. */
void creds_provider_free(struct creds_provider *p);

/*
 * Copies the current credentials into *out (overwritten; free with creds_value_free),
 * refreshing first when due (see the top comment). Returns 0, -EACCES when the credentials have
 * expired and could not be refreshed, or -ENOMEM. Thread-safe.
 */
int creds_get(struct creds_provider *p, struct creds_value *out);
/* Wipes and frees the strings of v (safe on a zeroed or freed value). */
void creds_value_free(struct creds_value *v);

/* The source that won. */
enum creds_source creds_provider_source(const struct creds_provider *p);
/* One phrase describing the source, safe to log ("shared credentials file profile prod"). */
const char *creds_provider_describe(const struct creds_provider *p);
/* Copies the counters (thread-safe). */
void creds_provider_stats(struct creds_provider *p, struct creds_stats *st);
/* "environment", "credentials-file", "config-file", "process", "container", "imds", "none". */
const char *creds_source_name(enum creds_source s);

/*
 * Parses an ISO 8601 / RFC 3339 UTC time as AWS returns it: "YYYY-MM-DDTHH:MM:SS" with an
 * optional fraction and a "Z" or "+HH:MM"/"-HH:MM"/"+HHMM" offset (no offset means UTC). Returns
 * 0 and *out (seconds since the epoch), or -EINVAL.
 */
int creds_parse_time(const char *s, time_t *out);

#endif
