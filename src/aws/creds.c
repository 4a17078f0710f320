/*
 * creds: the AWS credentials provider: the chain's order, the first fetch, and thread-safe
 * refresh (see include/kvsfs/creds.h). The sources live in creds_files.c, creds_process.c,
 * creds_container.c and creds_imds.c (shared declarations: creds_internal.h).
 *
 * Design:
 *   - creds_provider_new() walks the chain once (resolve); the winning source's parameters are
 *     copied into the provider (process command, container URL and token source, IMDS endpoint)
 *     and the provider keeps calling that one fetch function on refresh, as botocore does.
 *   - State shared between threads (cur, have, refresh_at, next_attempt_ms, refreshing, stats)
 *     is guarded by lock. Invariant: while refreshing == 1 exactly one thread is inside fetch()
 *     without holding the lock; everybody else either copies cur (still valid) or waits on cond
 *     (expired). cur is only replaced whole under the lock, so a copy is never torn or empty.
 *   - Clocks: expirations are wall-clock times sent by the source, so validity and refresh_at
 *     are compared with the wall clock; the back-off after a failed refresh is a deadline on the
 *     monotonic clock (capped by the time the credentials have left).
 *   - Secrets are wiped (explicit_bzero) before their memory is freed; process output and
 *     reply bodies are wiped after parsing. Nothing secret is logged or put in err strings.
 */
#include "kvsfs/creds.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "creds_internal.h"
#include "kvsfs/clk.h"
#include "kvsfs/log.h"

#define RETRY_VALID_S 10   /* after a failed refresh while still valid */
#define RETRY_EXPIRED_S 1  /* after a failed refresh once expired */
#define DEFAULT_MARGIN_S 300

const char *creds_getenv(const struct creds_provider *p, const char *name)
{
	return awsconfig_getenv(p->env, name);
}

int creds_env_true(const struct creds_provider *p, const char *name)
{
	const char *v = creds_getenv(p, name);
	return v && strcasecmp(v, "true") == 0;
}

/* One fetch from the provider's source. Returns 0 or a negative errno with err set. */
static int fetch(struct creds_provider *p, struct creds_value *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	err[0] = '\0';
	switch (p->source) {
	case CREDS_SOURCE_ENV: {
		int rc = creds_env_fetch(p, out, err, errlen);
		if (rc == 1) {
			snprintf(err, errlen, "AWS_ACCESS_KEY_ID is no longer set");
			rc = -EACCES;
		}
		return rc;
	}
	case CREDS_SOURCE_PROCESS:
		return creds_process_fetch(p, out, err, errlen);
	case CREDS_SOURCE_CONTAINER:
		return creds_container_fetch(p, out, err, errlen);
	case CREDS_SOURCE_IMDS:
		return creds_imds_fetch(p, out, NULL, err, errlen);
	default:
		snprintf(err, errlen, "static credentials cannot be refreshed");
		return -EACCES;
	}
}

/* ---- refresh bookkeeping ---- */

/* Installs v as the current value (takes ownership), fetched at now. Lock held. */
static void install(struct creds_provider *p, struct creds_value *v, time_t now)
{
	creds_value_free(&p->cur);
	p->cur = *v;
	memset(v, 0, sizeof(*v));
	p->have = 1;
	p->stats.fetches++;
	p->warned = 0;
	p->next_attempt_ms = 0;
	if (!p->cur.expiration) {
		p->refresh_at = 0;
		return;
	}
	time_t e = p->cur.expiration;
	time_t ra = e - p->margin_s;
	if (ra < now + 1) {
		time_t half = (e - now) / 2;
		ra = now + (half < 1 ? 1 : half);
	}
	p->refresh_at = ra;
}

/* Bookkeeping of a failed refresh at wall time after. Lock held. */
static void refresh_failed(struct creds_provider *p, const char *err, time_t after)
{
	p->stats.failures++;
	int still = p->have && (p->cur.expiration == 0 || after < p->cur.expiration);
	if (!still) {
		p->next_attempt_ms = clk_mono_ms() + RETRY_EXPIRED_S * 1000;
		LOG_ERROR(p->lg, CREDS_MOD, "credentials have expired and refreshing them failed: %s",
			  err);
		return;
	}
	/* Retry later, but no later than the expiry itself. */
	int64_t wait_s = RETRY_VALID_S;
	if (p->cur.expiration && p->cur.expiration - after < wait_s)
		wait_s = p->cur.expiration - after;
	p->next_attempt_ms = clk_mono_ms() + wait_s * 1000;
	if (!p->warned)
		LOG_WARN(p->lg, CREDS_MOD, "refreshing credentials failed (%s); keeping the current "
			 "ones, which expire in %lld s", err, (long long)(p->cur.expiration - after));
	else
		LOG_DEBUG(p->lg, CREDS_MOD, "refreshing credentials failed again (%s)", err);
	p->warned = 1;
}

/* This thread refreshes: fetches without the lock, then installs or records the failure.
 * Lock held on entry and on return. */
static void refresh(struct creds_provider *p)
{
	p->refreshing = 1;
	pthread_mutex_unlock(&p->lock);
	struct creds_value nv;
	char err[512];
	int rc = fetch(p, &nv, err, sizeof(err));
	time_t after = time(NULL);
	if (!rc && nv.expiration && nv.expiration <= after) {
		creds_value_free(&nv);
		snprintf(err, sizeof(err), "the %s returned credentials that have already expired",
			 p->describe);
		rc = -EACCES;
	}
	pthread_mutex_lock(&p->lock);
	p->refreshing = 0;
	if (!rc) {
		install(p, &nv, after);
		LOG_DEBUG(p->lg, CREDS_MOD, "credentials refreshed from %s (expire in %lld s)",
			  p->describe, (long long)(p->cur.expiration - after));
	} else {
		refresh_failed(p, err, after);
	}
	pthread_cond_broadcast(&p->cond);
}

int creds_get(struct creds_provider *p, struct creds_value *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&p->lock);
	for (;;) {
		time_t now = time(NULL);
		int64_t mono = clk_mono_ms();
		int valid = p->have && (p->cur.expiration == 0 || now < p->cur.expiration);
		int due = p->have && p->refresh_at && now >= p->refresh_at &&
			  mono >= p->next_attempt_ms;
		/* Still valid: copy it, unless a refresh is due and nobody runs one yet. */
		if (valid && (!due || p->refreshing)) {
			int rc = creds_value_copy(out, &p->cur);
			pthread_mutex_unlock(&p->lock);
			return rc;
		}
		if (p->refreshing) {
			pthread_cond_wait(&p->cond, &p->lock);
			continue;
		}
		if (!valid && mono < p->next_attempt_ms) {
			pthread_mutex_unlock(&p->lock);
			return -EACCES;
		}
		refresh(p);
		/* Loop: copy the new value, the still-valid old one, or fail. */
	}
}

/* ---- resolution ---- */

static char **env_dup(char *const *env)
{
	size_t n = 0;
	while (env[n])
		n++;
	char **c = calloc(n + 1, sizeof(*c));
	if (!c)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		c[i] = strdup(env[i]);
		if (!c[i]) {
			for (size_t j = 0; j < i; j++)
				creds_wipe_free(c[j]);
			free(c);
			return NULL;
		}
	}
	return c;
}

void creds_provider_free(struct creds_provider *p)
{
	if (!p)
		return;
	creds_value_free(&p->cur);
	if (p->env) {
		for (char **e = p->env; *e; e++)
			creds_wipe_free(*e);
		free(p->env);
	}
	free(p->profile);
	free(p->process_cmd);
	free(p->container_url);
	creds_wipe_free(p->container_token);
	free(p->container_token_file);
	free(p->imds_base);
	http_client_free(p->http);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p);
}

enum creds_source creds_provider_source(const struct creds_provider *p)
{
	return p->source;
}

const char *creds_provider_describe(const struct creds_provider *p)
{
	return p->describe;
}

void creds_provider_stats(struct creds_provider *p, struct creds_stats *st)
{
	pthread_mutex_lock(&p->lock);
	*st = p->stats;
	pthread_mutex_unlock(&p->lock);
}

/* Records the source that won and the phrase that describes it. */
static void won(struct creds_provider *p, enum creds_source src, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void won(struct creds_provider *p, enum creds_source src, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->describe, sizeof(p->describe), fmt, ap);
	va_end(ap);
	p->source = src;
}

/* Walks the chain. Returns 0 with p->source/describe and *first set, or an error. Each step
 * returns 0 (it won), 1 (not configured: go on) or a negative errno (the chain stops). */
static int resolve(struct creds_provider *p, const struct creds_options *opts,
		   const struct awsconfig_files *f, struct creds_value *first, char *err,
		   size_t errlen)
{
	int rc;
	/* 1. environment (skipped for an explicit profile= option, like aws --profile). */
	if (!f->profile_explicit) {
		rc = creds_env_fetch(p, first, err, errlen);
		if (rc == 0)
			won(p, CREDS_SOURCE_ENV, "environment");
		if (rc <= 0)
			return rc;
	} else if (creds_getenv(p, "AWS_ACCESS_KEY_ID")) {
		LOG_DEBUG(p->lg, CREDS_MOD, "profile option given: ignoring AWS_ACCESS_KEY_ID in the "
			  "environment");
	}
	/* STS / SSO based profiles are not supported: say so instead of falling through. */
	if ((rc = creds_check_unsupported(p, f, err, errlen)))
		return rc;
	/* 2a. static keys in the credentials file. */
	rc = creds_static_keys(p, &f->credentials, f->credentials_path,
			       CREDS_SOURCE_CREDENTIALS_FILE, first, err, errlen);
	if (rc == 0)
		won(p, CREDS_SOURCE_CREDENTIALS_FILE, "shared credentials file profile %s",
		    p->profile);
	if (rc <= 0)
		return rc;
	/* 2b. credential_process. */
	const char *cmd = awsconfig_files_get(f, "credential_process");
	if (cmd && *cmd) {
		p->process_cmd = strdup(cmd);
		if (!p->process_cmd)
			return -ENOMEM;
		won(p, CREDS_SOURCE_PROCESS, "credential_process of profile %s", p->profile);
		return creds_process_fetch(p, first, err, errlen);
	}
	/* 2c. static keys in the config file. */
	rc = creds_static_keys(p, &f->config, f->config_path, CREDS_SOURCE_CONFIG_FILE, first,
			       err, errlen);
	if (rc == 0)
		won(p, CREDS_SOURCE_CONFIG_FILE, "shared config file profile %s", p->profile);
	if (rc <= 0)
		return rc;
	/* 3. container credentials. */
	rc = creds_container_resolve(p, opts, first, err, errlen);
	if (rc <= 0)
		return rc;
	/* 4. IMDS, the end of the chain. */
	return creds_imds_resolve(p, opts, f, first, err, errlen);
}

int creds_provider_new(struct creds_provider **out, const struct creds_options *opts,
		       const struct awsconfig_files *files, struct log_ctx *lg, char *err,
		       size_t errlen)
{
	char ebuf[512];
	struct creds_options dflt;
	*out = NULL;
	if (!opts) {
		memset(&dflt, 0, sizeof(dflt));
		opts = &dflt;
	}
	ebuf[0] = '\0';
	struct creds_provider *p = calloc(1, sizeof(*p));
	if (!p) {
		if (errlen)
			snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->lg = lg;
	p->margin_s = opts->refresh_margin_s > 0 ? opts->refresh_margin_s :
		      (opts->refresh_margin_s < 0 ? 0 : DEFAULT_MARGIN_S);
	p->process_timeout_ms = opts->process_timeout_ms > 0 ? opts->process_timeout_ms : 30000;
	p->container_timeout_ms = opts->container_timeout_ms > 0 ? opts->container_timeout_ms :
				  2000;
	int rc = 0;
	if (opts->env && !(p->env = env_dup(opts->env))) {
		rc = -ENOMEM;
		goto fail;
	}
	struct awsconfig_files own;
	memset(&own, 0, sizeof(own));
	const struct awsconfig_files *f = files;
	if (!f) {
		rc = awsconfig_files_load(&own, opts->profile, opts->env, NULL, ebuf, sizeof(ebuf));
		if (rc)
			goto fail;
		f = &own;
	}
	p->profile = strdup(f->profile ? f->profile : "default");
	if (!p->profile) {
		rc = -ENOMEM;
		goto fail_files;
	}
	struct creds_value first;
	memset(&first, 0, sizeof(first));
	rc = resolve(p, opts, f, &first, ebuf, sizeof(ebuf));
	if (!rc) {
		time_t now = time(NULL);
		if (first.expiration && first.expiration <= now) {
			creds_value_free(&first);
			snprintf(ebuf, sizeof(ebuf), "the credentials from %s have already expired",
				 p->describe);
			rc = -EACCES;
		} else {
			install(p, &first, now);
		}
	}
fail_files:
	if (f == &own)
		awsconfig_files_free(&own);
	if (rc)
		goto fail;
	if (p->cur.expiration)
		LOG_INFO(lg, CREDS_MOD, "credentials from %s (temporary, expire in %lld s)", p->describe,
			 (long long)(p->cur.expiration - time(NULL)));
	else
		LOG_INFO(lg, CREDS_MOD, "credentials from %s", p->describe);
	*out = p;
	if (errlen)
		err[0] = '\0';
	return 0;
fail:
	if (rc == -ENOMEM && !ebuf[0])
		snprintf(ebuf, sizeof(ebuf), "out of memory");
	if (!ebuf[0])
		snprintf(ebuf, sizeof(ebuf), "getting AWS credentials failed: %s", strerror(-rc));
	/* The caller reports err once (the mount prints it); only a debug trace here. */
	LOG_DEBUG(lg, CREDS_MOD, "resolving credentials failed: %s", ebuf);
	if (errlen)
		snprintf(err, errlen, "%s", ebuf);
	creds_provider_free(p);
	return rc;
}
