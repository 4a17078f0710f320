/*
 * Fuzz target for sigv4: the signer canonicalises strings that can come from outside (object keys
 * built from file names, query strings and URLs returned by services). The input is split at '\n'
 * into: flags byte line, method, path, query, then "name:value" header lines (a line starting with
 * a space or tab continues the previous value). Both header signing and presigning run.
 * Invariants checked, not just absence of crashes:
 *   - a success always has Host among the signed headers and a 64-hex signature;
 *   - the canonical URI and query use only unreserved characters, '%XX', '/', '=' and '&';
 *   - the secret key never appears in any output; the session token never appears in the log
 *     rendering or the string to sign (both unless the input itself contains them);
 *   - signing twice (with and without the key cache) gives the same signature.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kvsfs/sigv4.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SECRET "fuzzSecretKeyValue/0123456789+abcdefghijk"
#define TOKEN "fuzzSessionTokenValue//+=XYZ"
#define MAXH 16

static int ok_uri_char(unsigned char c, int query)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	    c == '-' || c == '.' || c == '_' || c == '~' || c == '%')
		return 1;
	return query ? (c == '=' || c == '&') : c == '/';
}

static int is_upper_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static void check_line(const char *s, size_t n, int query)
{
	for (size_t i = 0; i < n; i++) {
		if (!ok_uri_char((unsigned char)s[i], query))
			abort();
		if (s[i] == '%') {
			if (i + 2 >= n || !is_upper_hex(s[i + 1]) || !is_upper_hex(s[i + 2]))
				abort();
			i += 2;
		}
	}
}

static void check_result(const struct sigv4_result *r, int input_has_token)
{
	if (strlen(r->signature) != SIGV4_HEX_LEN)
		abort();
	if (strncmp(r->signed_headers, "host", 4) != 0 && !strstr(r->signed_headers, ";host"))
		abort();
	/* canonical request: method \n uri \n query \n ... */
	const char *c = r->canonical_request;
	const char *l1 = strchr(c, '\n');
	if (!l1)
		abort();
	const char *l2 = strchr(l1 + 1, '\n');
	if (!l2)
		abort();
	const char *l3 = strchr(l2 + 1, '\n');
	if (!l3)
		abort();
	check_line(l1 + 1, (size_t)(l2 - l1 - 1), 0);
	check_line(l2 + 1, (size_t)(l3 - l2 - 1), 1);
	const char *outs[] = { r->canonical_request_log, r->string_to_sign, r->authorization,
			       r->query, r->canonical_request };
	for (size_t i = 0; i < sizeof(outs) / sizeof(outs[0]) && !input_has_token; i++)
		if (outs[i] && strstr(outs[i], SECRET))
			abort();
	if (!input_has_token &&
	    (strstr(r->canonical_request_log, TOKEN) || strstr(r->string_to_sign, TOKEN) ||
	     strstr(r->canonical_request_log, "fuzzSessionTokenValue")))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 8192)
		return 0;
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	int has_token = memmem(data, size, "fuzzSessionTokenValue", 21) != NULL ||
			memmem(data, size, "fuzzSecretKeyValue", 18) != NULL;

	char *lines[4 + MAXH] = { 0 };
	size_t nl = 0;
	for (char *p = text; p && nl < 4 + MAXH;) {
		char *e = strchr(p, '\n');
		if (e)
			*e = '\0';
		if (nl > 4 && (p[0] == ' ' || p[0] == '\t')) {
			/* fold: rejoin with the previous line */
			lines[nl - 1][strlen(lines[nl - 1])] = '\n';
		} else {
			lines[nl++] = p;
		}
		p = e ? e + 1 : NULL;
	}
	unsigned flags = nl > 0 && lines[0][0] ? (unsigned char)lines[0][0] : 0;
	flags &= SIGV4_S3 | SIGV4_NO_NORMALIZE | SIGV4_SINGLE_ENCODE | SIGV4_CONTENT_SHA256 |
		 SIGV4_TOKEN_UNSIGNED;
	flags |= SIGV4_KEEP_CANONICAL;

	struct sigv4_header hs[MAXH + 1];
	size_t nh = 0;
	hs[nh++] = (struct sigv4_header){ "Host", "example.amazonaws.com" };
	for (size_t i = 4; i < nl && nh <= MAXH; i++) {
		char *colon = strchr(lines[i], ':');
		if (!colon)
			continue;
		*colon = '\0';
		hs[nh++] = (struct sigv4_header){ lines[i], colon + 1 };
	}
	struct sigv4_request rq = { nl > 1 && lines[1][0] ? lines[1] : "GET", nl > 2 ? lines[2] : "/",
				    nl > 3 ? lines[3] : NULL, hs, nh, NULL };
	struct sigv4_creds cr = { "AKIDFUZZ", SECRET, (flags & 1) ? NULL : TOKEN };
	struct sigv4_params pa = { "us-east-1", "kinesisvideo", 1440938160, flags, 900, NULL };
	struct sigv4_key_cache cache = SIGV4_KEY_CACHE_INIT;

	for (int presign = 0; presign < 2; presign++) {
		struct sigv4_result a = SIGV4_RESULT_INIT, b = SIGV4_RESULT_INIT;
		int ra = presign ? sigv4_presign(&rq, &cr, &pa, NULL, &a)
				 : sigv4_sign_headers(&rq, &cr, &pa, NULL, &a);
		int rb = presign ? sigv4_presign(&rq, &cr, &pa, &cache, &b)
				 : sigv4_sign_headers(&rq, &cr, &pa, &cache, &b);
		if (ra != rb)
			abort();
		if (ra == 0) {
			check_result(&a, has_token);
			if (strcmp(a.signature, b.signature) != 0)
				abort();
		} else if (a.authorization || a.query || a.n_add) {
			abort();
		}
		sigv4_result_free(&a);
		sigv4_result_free(&b);
	}
	sigv4_key_cache_clear(&cache);
	free(text);
	return 0;
}
