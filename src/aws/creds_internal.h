/*
 * creds_internal: what the files of the credentials chain share (private to src/aws/creds*.c).
 *
 * The chain is split by source kind: creds.c (the provider, refresh and the chain order),
 * creds_value.c (credential values, times and JSON replies), creds_files.c (environment and
 * static keys of the shared files), creds_process.c (credential_process), creds_http.c (the
 * small HTTP helper of the endpoint sources), creds_container.c and creds_imds.c.
 *
 * Each source has a setup step (run once by the chain, copies its parameters into the provider)
 * and a fetch step (run for the first credentials and again on every refresh, without the
 * provider's lock). Every fetch returns 0 with *out filled, or a negative errno with one sentence
 * in err that names no secret.
 */
#ifndef KVSFS_AWS_CREDS_INTERNAL_H
#define KVSFS_AWS_CREDS_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "kvsfs/buf.h"
#include "kvsfs/creds.h"
#include "kvsfs/http.h"

#define CREDS_MOD "creds"

struct creds_provider {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct log_ctx *lg;

	enum creds_source source;
	char describe[256];

	/* Source parameters, fixed after resolution. */
	char **env;              /* deep copy of opts->env, or NULL for the process environment */
	char *profile;
	char *process_cmd;       /* credential_process */
	int process_timeout_ms;
	char *container_url;
	char *container_token;   /* AWS_CONTAINER_AUTHORIZATION_TOKEN (secret) */
	char *container_token_file;
	int container_timeout_ms;
	char *imds_base;
	int imds_timeout_ms;
	int imds_attempts;
	int imds_v1_disabled;
	struct http_client *http;
	int margin_s;

	/* Shared state (under lock). */
	struct creds_value cur;
	int have;
	time_t refresh_at;       /* wall clock (compared with the expiration); 0: never */
	int64_t next_attempt_ms; /* monotonic: no refresh attempt before this time */
	int refreshing;
	int warned;              /* a refresh-failure warning was logged since the last success */
	struct creds_stats stats;
};

/* ---- values (creds_value.c) ---- */

/* Wipes then frees a secret string (NULL allowed). */
void creds_wipe_free(char *s);
/* Wipes the whole storage of b, then frees it. */
void creds_buf_wipe_free(struct buf *b);
/* Deep copy. Returns 0 or -ENOMEM (dst is then empty). */
int creds_value_copy(struct creds_value *dst, const struct creds_value *src);
/* Fills v from three strings (token may be NULL or ""); each must be printable ASCII without
 * spaces. Returns 0, -EINVAL or -ENOMEM (v is then empty). */
int creds_value_set(struct creds_value *v, const char *ak, const char *sk, const char *tok,
		    time_t exp, enum creds_source src);
/* Copy of s[0..n) without surrounding whitespace, malloc'd, or NULL. */
char *creds_trimmed_dup(const char *s, size_t n);
/*
 * Parses a credentials JSON document. token_key: "SessionToken" (process) or "Token" (container,
 * IMDS). need_version: require "Version": 1. need_token: the token must be present.
 * Returns 0, -EINVAL (*why set to a static phrase), -ENOMEM.
 */
int creds_parse_json(const char *data, size_t len, const char *token_key, int need_version,
		     int need_token, enum creds_source src, struct creds_value *out,
		     const char **why);

/* ---- environment of the provider (creds.c) ---- */

/* Value of name in the provider's environment, or NULL. */
const char *creds_getenv(const struct creds_provider *p, const char *name);
/* 1 when name is set to "true" (any case). */
int creds_env_true(const struct creds_provider *p, const char *name);

/* ---- environment and shared-file keys (creds_files.c) ---- */

/* Returns 0 (found), 1 (AWS_ACCESS_KEY_ID not set), -EINVAL (partial or malformed). */
int creds_env_fetch(struct creds_provider *p, struct creds_value *out, char *err,
		    size_t errlen);
/* Static keys of the profile in cfg (read from path). Returns 0 (found), 1 (none), -EINVAL. */
int creds_static_keys(struct creds_provider *p, const struct awsconfig *cfg, const char *path,
		      enum creds_source src, struct creds_value *out, char *err, size_t errlen);
/* -ENOTSUP with a sentence when the profile needs STS or SSO, else 0. */
int creds_check_unsupported(struct creds_provider *p, const struct awsconfig_files *f,
			    char *err, size_t errlen);

/* ---- credential_process (creds_process.c) ---- */

int creds_process_fetch(struct creds_provider *p, struct creds_value *out, char *err,
			size_t errlen);

/* ---- HTTP for the endpoint sources (creds_http.c) ---- */

struct creds_http_get {
	const char *method;
	const char *url;
	struct http_headers hdrs;
	int timeout_ms;
	int attempts;
	struct buf body;     /* 2xx body (wiped by creds_http_get_free) */
	int status;          /* final status, 0 when none */
};

/* Creates p->http once (short timeouts, no retries of its own). Returns 0 or -errno. */
int creds_http_setup(struct creds_provider *p, const struct creds_options *opts);
/* Runs g (no proxy, idempotent). Returns 0 (2xx, body filled) or the errno of http_perform. */
int creds_http_do(struct creds_provider *p, struct creds_http_get *g);
/* Frees headers and wipes the body; g can be reused after memset. */
void creds_http_get_free(struct creds_http_get *g);
/* "HTTP 404", "no answer within the timeout" or strerror, written to tmp. Returns tmp. */
const char *creds_http_reason(int rc, int status, char *tmp, size_t n);

/* ---- container endpoint (creds_container.c) ---- */

/* Returns 1 when no container variable is set; else sets the source up and fetches. */
int creds_container_resolve(struct creds_provider *p, const struct creds_options *opts,
			    struct creds_value *first, char *err, size_t errlen);
int creds_container_fetch(struct creds_provider *p, struct creds_value *out, char *err,
			  size_t errlen);

/* ---- instance metadata (creds_imds.c) ---- */

/* The end of the chain: sets IMDS up and fetches; -ENOKEY with the whole story when it fails. */
int creds_imds_resolve(struct creds_provider *p, const struct creds_options *opts,
		       const struct awsconfig_files *f, struct creds_value *first, char *err,
		       size_t errlen);
/* role_out (may be NULL) gets the role name (malloc'd). */
int creds_imds_fetch(struct creds_provider *p, struct creds_value *out, char **role_out,
		     char *err, size_t errlen);

#endif
