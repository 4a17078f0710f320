/*
 * creds_value: one set of credentials as a value, and the two text forms sources send them in
 * (ISO 8601 expiration times and the JSON documents of credential_process, the container
 * endpoint and IMDS). See include/kvsfs/creds.h and src/aws/creds_internal.h.
 *
 * Invariants: a struct creds_value is either empty (all NULL) or holds an access key and a
 * secret that are non-empty printable ASCII without spaces (they go into HTTP headers), and a
 * token that is NULL or the same; secrets are wiped (explicit_bzero) before their memory is
 * freed, and so is any buffer that held a reply.
 */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "creds_internal.h"

void creds_wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void creds_value_free(struct creds_value *v)
{
	creds_wipe_free(v->access_key_id);
	creds_wipe_free(v->secret_access_key);
	creds_wipe_free(v->session_token);
	memset(v, 0, sizeof(*v));
}

void creds_buf_wipe_free(struct buf *b)
{
	if (b->data)
		explicit_bzero(b->data, b->cap);
	buf_free(b);
}

int creds_value_copy(struct creds_value *dst, const struct creds_value *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->access_key_id = strdup(src->access_key_id);
	dst->secret_access_key = strdup(src->secret_access_key);
	dst->session_token = src->session_token ? strdup(src->session_token) : NULL;
	dst->expiration = src->expiration;
	dst->source = src->source;
	if (!dst->access_key_id || !dst->secret_access_key ||
	    (src->session_token && !dst->session_token)) {
		creds_value_free(dst);
		return -ENOMEM;
	}
	return 0;
}

/* Credentials strings go into HTTP headers: printable ASCII only, non-empty. */
static int cred_string_ok(const char *s, size_t len)
{
	if (!s || len == 0 || strlen(s) != len)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

/* Fills v from three strings (token may be NULL or ""). Returns 0, -EINVAL or -ENOMEM. */
int creds_value_set(struct creds_value *v, const char *ak, const char *sk, const char *tok,
		    time_t exp, enum creds_source src)
{
	memset(v, 0, sizeof(*v));
	if (!cred_string_ok(ak, ak ? strlen(ak) : 0) || !cred_string_ok(sk, sk ? strlen(sk) : 0))
		return -EINVAL;
	if (tok && *tok && !cred_string_ok(tok, strlen(tok)))
		return -EINVAL;
	v->access_key_id = strdup(ak);
	v->secret_access_key = strdup(sk);
	v->session_token = tok && *tok ? strdup(tok) : NULL;
	v->expiration = exp;
	v->source = src;
	if (!v->access_key_id || !v->secret_access_key || (tok && *tok && !v->session_token)) {
		creds_value_free(v);
		return -ENOMEM;
	}
	return 0;
}

char *creds_trimmed_dup(const char *s, size_t n)
{
	while (n && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	char *o = malloc(n + 1);
	if (o) {
		memcpy(o, s, n);
		o[n] = '\0';
	}
	return o;
}

const char *creds_source_name(enum creds_source s)
{
	switch (s) {
	case CREDS_SOURCE_ENV: return "environment";
	case CREDS_SOURCE_CREDENTIALS_FILE: return "credentials-file";
	case CREDS_SOURCE_CONFIG_FILE: return "config-file";
	case CREDS_SOURCE_PROCESS: return "process";
	case CREDS_SOURCE_CONTAINER: return "container";
	case CREDS_SOURCE_IMDS: return "imds";
	default: return "none";
	}
}

/* ---- time ---- */

static int digits(const char *s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int creds_parse_time(const char *s, time_t *out)
{
	int Y, M, D, h, m, sec;
	if (!s || strlen(s) < 19)
		return -EINVAL;
	if (digits(s, 4, &Y) || s[4] != '-' || digits(s + 5, 2, &M) || s[7] != '-' ||
	    digits(s + 8, 2, &D) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
	    digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &m) || s[16] != ':' ||
	    digits(s + 17, 2, &sec))
		return -EINVAL;
	const char *p = s + 19;
	if (*p == '.' || *p == ',') {
		p++;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	long off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1, oh, om;
		p++;
		if (digits(p, 2, &oh))
			return -EINVAL;
		p += 2;
		if (*p == ':')
			p++;
		if (digits(p, 2, &om))
			return -EINVAL;
		p += 2;
		if (oh > 23 || om > 59)
			return -EINVAL;
		off = sign * (oh * 3600L + om * 60L);
	}
	if (*p)
		return -EINVAL;
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	if (Y < 1970 || M < 1 || M > 12 || D < 1 || D > mdays[M - 1] || h > 23 || m > 59 ||
	    sec > 60)
		return -EINVAL;
	int leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
	if (M == 2 && D == 29 && !leap)
		return -EINVAL;
	struct tm tm = { 0 };
	tm.tm_year = Y - 1900;
	tm.tm_mon = M - 1;
	tm.tm_mday = D;
	tm.tm_hour = h;
	tm.tm_min = m;
	tm.tm_sec = sec;
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return -EINVAL;
	*out = t - off;
	return 0;
}

/* ---- JSON replies ---- */

static const char *jstr(json_t *o, const char *key, int *bad)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
		*bad = 1;
		return NULL;
	}
	return json_string_value(v);
}

/*
 * Parses a credentials JSON document. token_key: "SessionToken" (process) or "Token" (container,
 * IMDS). need_version: require "Version": 1. need_token: the token must be present.
 * Returns 0, -EINVAL (why set), -ENOMEM.
 */
int creds_parse_json(const char *data, size_t len, const char *token_key, int need_version,
		     int need_token, enum creds_source src, struct creds_value *out,
		     const char **why)
{
	json_error_t jerr;
	json_t *root = json_loadb(data, len, 0, &jerr);
	int rc = -EINVAL, bad = 0;
	memset(out, 0, sizeof(*out));
	if (!root || !json_is_object(root)) {
		*why = "the reply is not a JSON object";
		goto out;
	}
	if (need_version) {
		json_t *ver = json_object_get(root, "Version");
		if (!ver || !json_is_number(ver) || json_number_value(ver) != 1.0) {
			*why = "the reply's Version is not 1";
			goto out;
		}
	}
	const char *ak = jstr(root, "AccessKeyId", &bad);
	const char *sk = jstr(root, "SecretAccessKey", &bad);
	const char *tok = jstr(root, token_key, &bad);
	const char *exp = jstr(root, "Expiration", &bad);
	if (bad) {
		*why = "a credentials field of the reply is not a string";
		goto out;
	}
	if (!ak || !*ak || !sk || !*sk) {
		*why = "the reply lacks AccessKeyId or SecretAccessKey";
		goto out;
	}
	if (need_token && (!tok || !*tok)) {
		*why = "the reply lacks a session token";
		goto out;
	}
	time_t t = 0;
	if (exp && creds_parse_time(exp, &t)) {
		*why = "the reply's Expiration is not an ISO 8601 time";
		goto out;
	}
	rc = creds_value_set(out, ak, sk, tok, t, src);
	if (rc == -EINVAL)
		*why = "a credentials field of the reply has invalid characters";
	else if (rc)
		*why = "out of memory";
out:
	if (root)
		json_decref(root);
	return rc;
}