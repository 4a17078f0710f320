/*
 * creds_imds: the instance metadata source, IMDSv2 with the CLI's v1 fallback (see
 * include/kvsfs/creds.h, step 4), the last link of the chain.
 *
 * Design: resolution reads the endpoint (environment, then profile, then the IPv4/IPv6 default),
 * the v1 switch, the timeout (AWS_METADATA_SERVICE_TIMEOUT, decimal seconds) and the attempts.
 * A fetch is three exchanges, one function each: imds_token (PUT /latest/api/token; 403/404/405
 * means "no IMDSv2", so the next GETs go without a token unless v1 is disabled), imds_role (the
 * first line of .../security-credentials/) and imds_role_creds (GET .../ROLE, a JSON document
 * that must carry a token). Every exchange uses the per-request timeout and attempt count.
 * Invariants: the metadata token and the reply bodies are secrets (wiped, never in err); the
 * role name is checked to be [A-Za-z0-9+=,.@_-]+ before it goes into a URL.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "creds_internal.h"
#include "kvsfs/decsec.h"
#include "kvsfs/log.h"

#define DEFAULT_IMDS "http://169.254.169.254"
#define DEFAULT_IMDS_V6 "http://[fd00:ec2::254]"

/* A fresh exchange with the IMDS timeout and attempts. */
static void imds_get_init(struct creds_provider *p, struct creds_http_get *g, const char *method)
{
	memset(g, 0, sizeof(*g));
	g->method = method;
	g->timeout_ms = p->imds_timeout_ms;
	g->attempts = p->imds_attempts;
}

/* PUT /latest/api/token. Returns 0 with *token (malloc'd) or NULL (v1 fallback), or -errno. */
static int imds_token(struct creds_provider *p, struct buf *url, char **token, char *err,
		      size_t errlen)
{
	struct creds_http_get g;
	char tmp[64];
	imds_get_init(p, &g, "PUT");
	*token = NULL;
	int rc = -ENOMEM;
	if (buf_printf(url, "%s/latest/api/token", p->imds_base) ||
	    http_headers_add(&g.hdrs, "X-aws-ec2-metadata-token-ttl-seconds", "21600"))
		goto out;
	g.url = buf_str(url);
	rc = creds_http_do(p, &g);
	if (rc == 0) {
		*token = creds_trimmed_dup(g.body.data ? g.body.data : "", g.body.len);
		rc = *token ? 0 : -ENOMEM;
	} else if (g.status == 403 || g.status == 404 || g.status == 405) {
		if (p->imds_v1_disabled) {
			snprintf(err, errlen, "instance metadata at %s refused an IMDSv2 token (HTTP %d) "
				 "and AWS_EC2_METADATA_V1_DISABLED is set", p->imds_base, g.status);
			rc = -EACCES;
		} else {
			LOG_DEBUG(p->lg, CREDS_MOD, "IMDS token request got HTTP %d, using IMDSv1",
				  g.status);
			rc = 0;
		}
	} else {
		snprintf(err, errlen, "instance metadata at %s: %s", p->imds_base,
			 creds_http_reason(rc, g.status, tmp, sizeof(tmp)));
	}
out:
	creds_http_get_free(&g);
	return rc;
}

/* A GET with the token (when there is one). Returns 0, -EINVAL (bad token) or -ENOMEM. */
static int imds_get_setup(struct creds_provider *p, struct creds_http_get *g, const char *token,
			  char *err, size_t errlen)
{
	imds_get_init(p, g, "GET");
	if (token && http_headers_add(&g->hdrs, "X-aws-ec2-metadata-token", token)) {
		snprintf(err, errlen, "instance metadata at %s returned an invalid token", p->imds_base);
		return -EINVAL;
	}
	return 0;
}

/* GET .../security-credentials/: the role name (first line). */
static int imds_role(struct creds_provider *p, struct buf *url, const char *token, char **role,
		     char *err, size_t errlen)
{
	struct creds_http_get g;
	char tmp[64];
	int rc = imds_get_setup(p, &g, token, err, errlen);
	buf_reset(url);
	if (!rc && buf_printf(url, "%s/latest/meta-data/iam/security-credentials/", p->imds_base))
		rc = -ENOMEM;
	if (!rc) {
		g.url = buf_str(url);
		rc = creds_http_do(p, &g);
		if (rc && g.status == 404)
			snprintf(err, errlen, "instance metadata at %s: the instance has no IAM role",
				 p->imds_base);
		else if (rc)
			snprintf(err, errlen, "instance metadata at %s: listing the IAM role failed: %s",
				 p->imds_base, creds_http_reason(rc, g.status, tmp, sizeof(tmp)));
	}
	if (!rc) {
		const char *s = g.body.data ? g.body.data : "";
		*role = creds_trimmed_dup(s, strcspn(s, "\r\n"));
		rc = *role ? 0 : -ENOMEM;
	}
	if (!rc) {
		int ok = **role != '\0';
		for (const char *c = *role; *c; c++)
			if (!(isalnum((unsigned char)*c) || strchr("+=,.@_-", *c)))
				ok = 0;
		if (!ok) {
			snprintf(err, errlen, "instance metadata at %s returned an invalid role name",
				 p->imds_base);
			rc = -EINVAL;
		}
	}
	creds_http_get_free(&g);
	return rc;
}

/* GET .../security-credentials/ROLE: the credentials. */
static int imds_role_creds(struct creds_provider *p, struct buf *url, const char *token,
			   const char *role, struct creds_value *out, char *err, size_t errlen)
{
	struct creds_http_get g;
	char tmp[64];
	int rc = imds_get_setup(p, &g, token, err, errlen);
	buf_reset(url);
	if (!rc && buf_printf(url, "%s/latest/meta-data/iam/security-credentials/%s", p->imds_base,
			      role))
		rc = -ENOMEM;
	if (!rc) {
		g.url = buf_str(url);
		rc = creds_http_do(p, &g);
		if (rc)
			snprintf(err, errlen, "instance metadata at %s: fetching the role's credentials "
				 "failed: %s", p->imds_base, creds_http_reason(rc, g.status, tmp,
									       sizeof(tmp)));
	}
	if (!rc) {
		const char *why = NULL;
		rc = creds_parse_json(g.body.data ? g.body.data : "", g.body.len, "Token", 0, 1,
				      CREDS_SOURCE_IMDS, out, &why);
		if (rc)
			snprintf(err, errlen, "instance metadata at %s: %s", p->imds_base, why);
	}
	creds_http_get_free(&g);
	return rc;
}

int creds_imds_fetch(struct creds_provider *p, struct creds_value *out, char **role_out,
		     char *err, size_t errlen)
{
	struct buf url = BUF_INIT;
	char *token = NULL, *role = NULL;
	int rc = imds_token(p, &url, &token, err, errlen);
	if (!rc)
		rc = imds_role(p, &url, token, &role, err, errlen);
	if (!rc)
		rc = imds_role_creds(p, &url, token, role, out, err, errlen);
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	if (!rc && role_out) {
		*role_out = role;
		role = NULL;
	}
	buf_free(&url);
	creds_wipe_free(token);
	free(role);
	return rc;
}

/* Endpoint, v1 switch, timeout and attempts from the environment and the profile. */
static int imds_settings(struct creds_provider *p, const struct creds_options *opts,
			 const struct awsconfig_files *f, char *err, size_t errlen)
{
	const char *ep = creds_getenv(p, "AWS_EC2_METADATA_SERVICE_ENDPOINT");
	if (!ep || !*ep)
		ep = awsconfig_files_get(f, "ec2_metadata_service_endpoint");
	if (!ep || !*ep) {
		const char *mode = creds_getenv(p, "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
		if (!mode || !*mode)
			mode = awsconfig_files_get(f, "ec2_metadata_service_endpoint_mode");
		ep = mode && strcasecmp(mode, "ipv6") == 0 ? DEFAULT_IMDS_V6 : DEFAULT_IMDS;
	}
	char why[128];
	p->imds_base = awsconfig_endpoint_normalize(ep, why, sizeof(why));
	if (!p->imds_base) {
		snprintf(err, errlen, "the instance metadata endpoint %s", why);
		return -EINVAL;
	}
	const char *v1off = awsconfig_files_get(f, "ec2_metadata_v1_disabled");
	p->imds_v1_disabled = creds_env_true(p, "AWS_EC2_METADATA_V1_DISABLED") ||
			      (v1off && strcasecmp(v1off, "true") == 0);
	p->imds_timeout_ms = opts->imds_timeout_ms > 0 ? opts->imds_timeout_ms : 1000;
	const char *ts = creds_getenv(p, "AWS_METADATA_SERVICE_TIMEOUT");
	int64_t tms;
	if (opts->imds_timeout_ms <= 0 && ts && *ts && decsec_parse_ms(ts, 0, &tms) == 0 &&
	    tms >= 1 && tms <= 600000)
		p->imds_timeout_ms = (int)tms;
	p->imds_attempts = 1;
	const char *na = creds_getenv(p, "AWS_METADATA_SERVICE_NUM_ATTEMPTS");
	if (na && *na) {
		int n = atoi(na);
		if (n >= 1 && n <= 10)
			p->imds_attempts = n;
	}
	return 0;
}

int creds_imds_resolve(struct creds_provider *p, const struct creds_options *opts,
		       const struct awsconfig_files *f, struct creds_value *first, char *err,
		       size_t errlen)
{
	if (creds_env_true(p, "AWS_EC2_METADATA_DISABLED")) {
		snprintf(err, errlen, "no AWS credentials found: none in the environment, in profile "
			 "%s of %s or %s, no container endpoint, and instance metadata is disabled "
			 "(AWS_EC2_METADATA_DISABLED)", p->profile, f->credentials_path,
			 f->config_path);
		return -ENOKEY;
	}
	int rc = imds_settings(p, opts, f, err, errlen);
	if (rc)
		return rc;
	p->source = CREDS_SOURCE_IMDS;
	if ((rc = creds_http_setup(p, opts))) {
		snprintf(err, errlen, "cannot set up HTTP for instance metadata: %s", strerror(-rc));
		return rc;
	}
	char *role = NULL;
	char ierr[384];
	rc = creds_imds_fetch(p, first, &role, ierr, sizeof(ierr));
	if (rc) {
		if (rc == -ENOMEM) {
			snprintf(err, errlen, "out of memory");
			return rc;
		}
		snprintf(err, errlen, "no AWS credentials found: none in the environment, in profile "
			 "%s of %s or %s, no container endpoint, and %s", p->profile,
			 f->credentials_path, f->config_path, ierr);
		return -ENOKEY;
	}
	snprintf(p->describe, sizeof(p->describe), "instance metadata (IMDS) role %s", role);
	free(role);
	return 0;
}
