/*
 * sigv4: AWS Signature Version 4 signing (see include/kvsfs/sigv4.h for the API and the exact
 * canonicalisation rules).
 *
 * The canonical pieces (encoding, query and header lists, paths) are in sigv4_canon.c, the
 * hashing in sigv4_hash.c; this file derives the key, assembles and renders the signature.
 *
 * Design: one internal pass, sign_common(), builds the canonical request from the wire request
 * (path, query, headers), the string to sign and the signature; the two entry points differ only in
 * which auth parts go into the canonical query (presign) or the canonical headers (header signing)
 * and how the result is rendered. The canonical request is rendered twice from the same parsed
 * pieces: once raw (hashed, kept only on request) and once with secret values replaced by
 * "[REDACTED]" (for logs), so the log text never depends on searching for the secret.
 *
 * Invariants: the secret key is only copied into the "AWS4" + secret buffer of the key derivation,
 * wiped right after; derived keys live in the caller's cache or on the stack (wiped after use).
 * No global state; the caller-owned struct sigv4_key_cache is the only memory kept between calls.
 * Every allocation is checked; failures return -ENOMEM and leave the result empty.
 */
#include "kvsfs/sigv4.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "kvsfs/buf.h"
#include "kvsfs/log.h"
#include "sigv4_internal.h"

#define MOD "sigv4"

int sigv4_format_amz_date(time_t t, char out[17])
{
	struct tm tm;
	if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999) {
		out[0] = '\0';
		return -EINVAL;
	}
	if (strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) != 16) {
		out[0] = '\0';
		return -EINVAL;
	}
	return 0;
}

/* ---------------------------------------------------------------- key cache */

void sigv4_key_cache_clear(struct sigv4_key_cache *cache)
{
	if (cache)
		OPENSSL_cleanse(cache, sizeof(*cache));
}

/* Derives (or reuses) kSigning for the scope. */
static int signing_key(const struct sigv4_creds *cr, const char *date, const char *region,
		       const char *service, struct sigv4_key_cache *cache, unsigned char key[32])
{
	unsigned char fp[32];
	unsigned int fplen = 0;
	size_t slen = strlen(cr->secret_access_key);
	int use_cache = cache && strlen(region) < sizeof(cache->region) &&
			strlen(service) < sizeof(cache->service) &&
			strlen(cr->access_key_id) < sizeof(cache->access_key_id);
	if (use_cache) {
		if (EVP_Digest(cr->secret_access_key, slen, fp, &fplen, EVP_sha256(), NULL) != 1)
			return -EIO;
		if (cache->valid && strcmp(cache->date, date) == 0 &&
		    strcmp(cache->region, region) == 0 && strcmp(cache->service, service) == 0 &&
		    strcmp(cache->access_key_id, cr->access_key_id) == 0 &&
		    CRYPTO_memcmp(cache->secret_fp, fp, 32) == 0) {
			memcpy(key, cache->key, 32);
			OPENSSL_cleanse(fp, sizeof(fp));
			return 0;
		}
	}

	int rc = -ENOMEM;
	size_t klen = 4 + slen;
	unsigned char *k0 = malloc(klen);
	unsigned char a[32], b[32];
	if (!k0)
		goto out;
	memcpy(k0, "AWS4", 4);
	memcpy(k0 + 4, cr->secret_access_key, slen);
	rc = sigv4_hmac256(k0, klen, date, strlen(date), a);
	if (!rc)
		rc = sigv4_hmac256(a, 32, region, strlen(region), b);
	if (!rc)
		rc = sigv4_hmac256(b, 32, service, strlen(service), a);
	if (!rc)
		rc = sigv4_hmac256(a, 32, "aws4_request", 12, key);
	OPENSSL_cleanse(k0, klen);
	free(k0);
	OPENSSL_cleanse(a, sizeof(a));
	OPENSSL_cleanse(b, sizeof(b));
	if (!rc && use_cache) {
		cache->valid = 1;
		snprintf(cache->date, sizeof(cache->date), "%s", date);
		snprintf(cache->region, sizeof(cache->region), "%s", region);
		snprintf(cache->service, sizeof(cache->service), "%s", service);
		snprintf(cache->access_key_id, sizeof(cache->access_key_id), "%s",
			 cr->access_key_id);
		memcpy(cache->secret_fp, fp, 32);
		memcpy(cache->key, key, 32);
	} else if (rc && use_cache) {
		sigv4_key_cache_clear(cache);
	}
out:
	OPENSSL_cleanse(fp, sizeof(fp));
	return rc;
}

static int bad_input(const struct sigv4_params *p, const char *what)
{
	LOG_ERROR(p->log, MOD, "cannot sign request: %s", what);
	return -EINVAL;
}

void sigv4_result_free(struct sigv4_result *r)
{
	for (size_t i = 0; i < 4; i++) {
		if (r->values_[i]) {
			OPENSSL_cleanse(r->values_[i], strlen(r->values_[i]));
			free(r->values_[i]);
		}
	}
	if (r->authorization)
		OPENSSL_cleanse(r->authorization, strlen(r->authorization));
	if (r->query)
		OPENSSL_cleanse(r->query, strlen(r->query));
	if (r->canonical_request)
		OPENSSL_cleanse(r->canonical_request, strlen(r->canonical_request));
	free(r->authorization);
	free(r->query);
	free(r->signed_headers);
	free(r->credential_scope);
	free(r->canonical_request_log);
	free(r->string_to_sign);
	free(r->canonical_request);
	OPENSSL_cleanse(r, sizeof(*r));
}

static int add_out_header(struct sigv4_result *out, const char *name, const char *value)
{
	char *v = strdup(value);
	if (!v)
		return -ENOMEM;
	out->values_[out->n_add] = v;
	out->add[out->n_add].name = name;
	out->add[out->n_add].value = v;
	out->n_add++;
	return 0;
}

/* State of one signature while it is being computed. */
struct signing {
	const struct sigv4_request *req;
	const struct sigv4_creds *cr;
	const struct sigv4_params *p;
	unsigned flags;
	int presign;
	const char *token;   /* NULL when there is none */
	int sign_token;      /* token goes into the canonical request */
	const char *payload; /* payload hash */
	unsigned expires;
	char date[9];
	struct kvlist hl;    /* canonical headers, sorted and merged */
	struct kvlist ql;    /* canonical query parameters, sorted */
};

static int add_content_sha256(const struct signing *s)
{
	return !s->presign && (s->flags & (SIGV4_S3 | SIGV4_CONTENT_SHA256));
}

/* Checks everything that does not depend on the headers. Returns 0 or -EINVAL (logged). */
static int validate(const struct signing *s)
{
	const struct sigv4_request *req = s->req;
	const struct sigv4_params *p = s->p;
	if (!req->method || !sigv4_valid_token_chars(req->method, 1))
		return bad_input(p, "missing or malformed method");
	if (!sigv4_valid_token_chars(s->cr->access_key_id, 0) || !s->cr->secret_access_key ||
	    !*s->cr->secret_access_key)
		return bad_input(p, "missing or malformed credentials");
	if (s->token && sigv4_check_header_value(s->token))
		return bad_input(p, "session token has control characters");
	if (!sigv4_valid_token_chars(p->region, 0) || !sigv4_valid_token_chars(p->service, 0))
		return bad_input(p, "missing or malformed region or service");
	if (!sigv4_valid_payload_hash(s->payload))
		return bad_input(p, "payload hash is not 64 lowercase hex digits or a literal");
	if (s->presign && s->expires > SIGV4_MAX_EXPIRES)
		return bad_input(p, "presign expiry above 7 days");
	if (req->n_headers && !req->headers)
		return bad_input(p, "header count without headers");
	return 0;
}

/* Builds s->hl from the caller's headers plus the signer's own. */
static int canonical_headers(struct signing *s, const char *amz_date)
{
	const struct sigv4_params *p = s->p;
	int have_host = 0, rc = 0;
	for (size_t i = 0; i < s->req->n_headers; i++) {
		const struct sigv4_header *h = &s->req->headers[i];
		if (!h->name || !h->value)
			return bad_input(p, "header without name or value");
		char *ln = sigv4_canon_name(h->name);
		if (!ln)
			return errno == ENOMEM ? -ENOMEM : bad_input(p, "malformed header name");
		if (sigv4_check_header_value(h->value)) {
			free(ln);
			return bad_input(p, "header value has a control character or bare newline");
		}
		if (sigv4_header_skipped(ln, s->flags, s->presign)) {
			free(ln);
			continue;
		}
		if (strcmp(ln, "host") == 0)
			have_host = 1;
		int secret = log_header_is_secret(ln);
		rc = sigv4_kvlist_add(&s->hl, ln, sigv4_trimall(h->value), secret);
		if (rc)
			return rc;
	}
	if (!have_host)
		return bad_input(p, "no Host header");
	if (!s->presign) {
		rc = sigv4_kvlist_add(&s->hl, strdup("x-amz-date"), strdup(amz_date), 0);
		if (!rc && s->sign_token)
			rc = sigv4_kvlist_add(&s->hl, strdup("x-amz-security-token"), sigv4_trimall(s->token),
					      1);
		if (!rc && add_content_sha256(s))
			rc = sigv4_kvlist_add(&s->hl, strdup("x-amz-content-sha256"), strdup(s->payload),
					      0);
		if (rc)
			return rc;
	}
	sigv4_kvlist_sort(&s->hl, 0);
	return sigv4_merge_repeated(&s->hl);
}

/* Builds s->ql: the caller's parameters plus, when presigning, the auth parameters. */
static int canonical_query(struct signing *s, const struct sigv4_result *out)
{
	int rc = sigv4_parse_query(&s->ql, s->req->query);
	if (!rc && s->presign) {
		char num[16];
		struct buf cred = BUF_INIT;
		snprintf(num, sizeof(num), "%u", s->expires);
		rc = buf_printf(&cred, "%s/%s", s->cr->access_key_id, out->credential_scope);
		if (!rc)
			rc = sigv4_add_query_param(&s->ql, "X-Amz-Algorithm", SIGV4_ALGORITHM, 0);
		if (!rc)
			rc = sigv4_add_query_param(&s->ql, "X-Amz-Credential", buf_str(&cred), 0);
		if (!rc)
			rc = sigv4_add_query_param(&s->ql, "X-Amz-Date", out->amz_date, 0);
		if (!rc)
			rc = sigv4_add_query_param(&s->ql, "X-Amz-Expires", num, 0);
		if (!rc)
			rc = sigv4_add_query_param(&s->ql, "X-Amz-SignedHeaders", out->signed_headers, 0);
		if (!rc && s->sign_token)
			rc = sigv4_add_query_param(&s->ql, "X-Amz-Security-Token", s->token, 1);
		buf_free(&cred);
	}
	if (!rc)
		sigv4_kvlist_sort(&s->ql, 1);
	return rc;
}

/* Canonical request (raw and for logs), string to sign and signature. */
static int compute_signature(const struct signing *s, struct sigv4_key_cache *cache,
			     struct sigv4_result *out)
{
	struct buf uri = BUF_INIT, creq = BUF_INIT, logreq = BUF_INIT, sts = BUF_INIT;
	unsigned char key[32], sig[32];
	char hash[SIGV4_HEX_LEN + 1];
	const char *m = s->req->method;
	int rc = sigv4_canonical_uri(&uri, s->req->path, s->flags);
	if (!rc)
		rc = sigv4_render_creq(&creq, m, buf_str(&uri), &s->ql, &s->hl, out->signed_headers,
				       s->payload, 0);
	if (!rc)
		rc = sigv4_render_creq(&logreq, m, buf_str(&uri), &s->ql, &s->hl, out->signed_headers,
				       s->payload, 1);
	if (!rc)
		rc = sigv4_sha256_hex(creq.data, creq.len, hash);
	if (!rc)
		rc = buf_printf(&sts, "%s\n%s\n%s\n%s", SIGV4_ALGORITHM, out->amz_date,
				out->credential_scope, hash);
	if (!rc)
		rc = signing_key(s->cr, s->date, s->p->region, s->p->service, cache, key);
	if (!rc)
		rc = sigv4_hmac256(key, 32, sts.data, sts.len, sig);
	OPENSSL_cleanse(key, sizeof(key));
	if (!rc) {
		sigv4_to_hex(sig, 32, out->signature);
		out->canonical_request_log = buf_steal(&logreq);
		out->string_to_sign = buf_steal(&sts);
		if (s->flags & SIGV4_KEEP_CANONICAL)
			out->canonical_request = buf_steal(&creq);
		if (!out->canonical_request_log || !out->string_to_sign ||
		    ((s->flags & SIGV4_KEEP_CANONICAL) && !out->canonical_request))
			rc = -ENOMEM;
	}
	OPENSSL_cleanse(sig, sizeof(sig));
	if (creq.data)
		OPENSSL_cleanse(creq.data, creq.len);
	buf_free(&uri);
	buf_free(&creq);
	buf_free(&logreq);
	buf_free(&sts);
	return rc;
}

/* Presign output: caller query, auth parameters in botocore's order, signature. */
static int render_presigned_query(const struct signing *s, struct sigv4_result *out)
{
	const char *q = s->req->query && *s->req->query ? s->req->query : NULL;
	struct buf b = BUF_INIT, cred = BUF_INIT;
	int rc = buf_printf(&b, "%s%sX-Amz-Algorithm=%s&X-Amz-Credential=", q ? q : "",
			    q ? "&" : "", SIGV4_ALGORITHM);
	if (!rc)
		rc = buf_printf(&cred, "%s/%s", s->cr->access_key_id, out->credential_scope);
	if (!rc)
		rc = sigv4_uri_encode(&b, cred.data, cred.len, 0);
	if (!rc)
		rc = buf_printf(&b, "&X-Amz-Date=%s&X-Amz-Expires=%u&X-Amz-SignedHeaders=",
				out->amz_date, s->expires);
	if (!rc)
		rc = sigv4_uri_encode(&b, out->signed_headers, strlen(out->signed_headers), 0);
	if (!rc && s->token) {
		rc = buf_appendz(&b, "&X-Amz-Security-Token=");
		if (!rc)
			rc = sigv4_uri_encode(&b, s->token, strlen(s->token), 0);
	}
	if (!rc)
		rc = buf_printf(&b, "&X-Amz-Signature=%s", out->signature);
	if (!rc && !(out->query = buf_steal(&b)))
		rc = -ENOMEM;
	if (b.data)
		OPENSSL_cleanse(b.data, b.len);
	buf_free(&b);
	buf_free(&cred);
	return rc;
}

/* Header output: X-Amz-Security-Token, X-Amz-Date, x-amz-content-sha256, Authorization. */
static int render_auth_headers(const struct signing *s, struct sigv4_result *out)
{
	struct buf b = BUF_INIT;
	int rc = 0;
	if (s->token)
		rc = add_out_header(out, "X-Amz-Security-Token", s->token);
	if (!rc)
		rc = add_out_header(out, "X-Amz-Date", out->amz_date);
	if (!rc && add_content_sha256(s))
		rc = add_out_header(out, "x-amz-content-sha256", s->payload);
	if (!rc)
		rc = buf_printf(&b, "%s Credential=%s/%s, SignedHeaders=%s, Signature=%s",
				SIGV4_ALGORITHM, s->cr->access_key_id, out->credential_scope,
				out->signed_headers, out->signature);
	if (!rc && !(out->authorization = buf_steal(&b)))
		rc = -ENOMEM;
	if (!rc)
		rc = add_out_header(out, "Authorization", out->authorization);
	if (b.data)
		OPENSSL_cleanse(b.data, b.len);
	buf_free(&b);
	return rc;
}

/* The shared signing pass. presign selects query-string auth. */
static int sign_common(const struct sigv4_request *req, const struct sigv4_creds *cr,
		       const struct sigv4_params *p, struct sigv4_key_cache *cache,
		       struct sigv4_result *out, int presign)
{
	memset(out, 0, sizeof(*out));
	if (!req || !cr || !p)
		return -EINVAL;
	struct signing s = {
		.req = req,
		.cr = cr,
		.p = p,
		.flags = p->flags,
		.presign = presign,
		.token = cr->session_token && *cr->session_token ? cr->session_token : NULL,
		.payload = req->payload_hash ? req->payload_hash : SIGV4_EMPTY_SHA256,
		.expires = p->expires ? p->expires : 3600,
	};
	s.sign_token = s.token && !(s.flags & SIGV4_TOKEN_UNSIGNED);
	int rc = validate(&s);
	if (rc)
		return rc;
	if (sigv4_format_amz_date(p->now, out->amz_date))
		return bad_input(p, "time out of range");
	memcpy(s.date, out->amz_date, 8);
	s.date[8] = '\0';

	struct buf b = BUF_INIT;
	rc = canonical_headers(&s, out->amz_date);
	for (size_t i = 0; i < s.hl.n && !rc; i++)
		rc = buf_printf(&b, "%s%s", i ? ";" : "", s.hl.v[i].name);
	if (!rc && !(out->signed_headers = buf_steal(&b)))
		rc = -ENOMEM;
	if (!rc && buf_printf(&b, "%s/%s/%s/aws4_request", s.date, p->region, p->service))
		rc = -ENOMEM;
	if (!rc && !(out->credential_scope = buf_steal(&b)))
		rc = -ENOMEM;
	if (!rc)
		rc = canonical_query(&s, out);
	if (!rc)
		rc = compute_signature(&s, cache, out);
	if (!rc)
		rc = presign ? render_presigned_query(&s, out) : render_auth_headers(&s, out);
	if (!rc && log_enabled(p->log, LOG_LEVEL_DEBUG))
		LOG_DEBUG(p->log, MOD, "canonical request (redacted):\n%s\nstring to sign:\n%s",
			  out->canonical_request_log, out->string_to_sign);
	sigv4_kvlist_free(&s.hl);
	sigv4_kvlist_free(&s.ql);
	buf_free(&b);
	if (rc)
		sigv4_result_free(out);
	return rc;
}

int sigv4_sign_headers(const struct sigv4_request *req, const struct sigv4_creds *creds,
		       const struct sigv4_params *params, struct sigv4_key_cache *cache,
		       struct sigv4_result *out)
{
	return sign_common(req, creds, params, cache, out, 0);
}

int sigv4_presign(const struct sigv4_request *req, const struct sigv4_creds *creds,
		  const struct sigv4_params *params, struct sigv4_key_cache *cache,
		  struct sigv4_result *out)
{
	return sign_common(req, creds, params, cache, out, 1);
}
