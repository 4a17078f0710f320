/*
 * creds_files: the sources that need no I/O of their own: the environment
 * (AWS_ACCESS_KEY_ID, ...) and static keys in the already loaded shared files, plus the check
 * that refuses profiles needing STS or SSO with advice instead of falling through the chain.
 * See include/kvsfs/creds.h for the order and src/aws/creds_internal.h for the contracts.
 *
 * Invariant: values are only read here (from the provider's environment copy or the parsed
 * files); error sentences name variables, files, lines and profiles, never a key or a secret.
 */
#include <errno.h>
#include <stdio.h>
#include <time.h>

#include "creds_internal.h"

int creds_env_fetch(struct creds_provider *p, struct creds_value *out, char *err, size_t errlen)
{
	const char *ak = creds_getenv(p, "AWS_ACCESS_KEY_ID");
	const char *sk = creds_getenv(p, "AWS_SECRET_ACCESS_KEY");
	const char *tok = creds_getenv(p, "AWS_SESSION_TOKEN");
	if (!tok || !*tok)
		tok = creds_getenv(p, "AWS_SECURITY_TOKEN");
	const char *exps = creds_getenv(p, "AWS_CREDENTIAL_EXPIRATION");
	if (!ak || !*ak)
		return 1;
	if (!sk || !*sk) {
		snprintf(err, errlen, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
		return -EINVAL;
	}
	time_t exp = 0;
	if (exps && *exps && creds_parse_time(exps, &exp)) {
		snprintf(err, errlen, "AWS_CREDENTIAL_EXPIRATION is not an ISO 8601 time");
		return -EINVAL;
	}
	int rc = creds_value_set(out, ak, sk, tok, exp, CREDS_SOURCE_ENV);
	if (rc == -EINVAL)
		snprintf(err, errlen, "the AWS credentials in the environment contain invalid "
			 "characters");
	return rc;
}

int creds_static_keys(struct creds_provider *p, const struct awsconfig *cfg, const char *path,
		      enum creds_source src, struct creds_value *out, char *err, size_t errlen)
{
	const char *ak = awsconfig_get(cfg, p->profile, "aws_access_key_id");
	if (!ak)
		return 1;
	const char *sk = awsconfig_get(cfg, p->profile, "aws_secret_access_key");
	const char *tok = awsconfig_get(cfg, p->profile, "aws_session_token");
	if (!tok)
		tok = awsconfig_get(cfg, p->profile, "aws_security_token");
	int line = awsconfig_get_line(cfg, p->profile, "aws_access_key_id");
	if (!sk || !*sk || !*ak) {
		snprintf(err, errlen, "%s line %d: profile %s has %s without %s", path, line,
			 p->profile, *ak ? "aws_access_key_id" : "an empty aws_access_key_id",
			 "aws_secret_access_key");
		return -EINVAL;
	}
	int rc = creds_value_set(out, ak, sk, tok, 0, src);
	if (rc == -EINVAL)
		snprintf(err, errlen, "%s line %d: the keys of profile %s contain invalid characters",
			 path, line, p->profile);
	return rc;
}

int creds_check_unsupported(struct creds_provider *p, const struct awsconfig_files *f,
			    char *err, size_t errlen)
{
	const char *unsup = NULL;
	if (awsconfig_files_get(f, "role_arn"))
		unsup = "role_arn (an assume-role profile)";
	else if (awsconfig_files_get(f, "web_identity_token_file"))
		unsup = "web_identity_token_file";
	else if (awsconfig_files_get(f, "sso_start_url") || awsconfig_files_get(f, "sso_session"))
		unsup = "AWS SSO (IAM Identity Center)";
	else if (!f->profile_explicit && creds_getenv(p, "AWS_WEB_IDENTITY_TOKEN_FILE") &&
		 creds_getenv(p, "AWS_ROLE_ARN"))
		unsup = "AWS_WEB_IDENTITY_TOKEN_FILE/AWS_ROLE_ARN (web identity)";
	if (!unsup)
		return 0;
	snprintf(err, errlen, "profile %s uses %s, which kvsfs cannot use directly; add a "
		 "profile with credential_process = aws configure export-credentials "
		 "--profile %s --format process, and mount with that profile", p->profile,
		 unsup, p->profile);
	return -ENOTSUP;
}
