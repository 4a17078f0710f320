/*
 * kvsfs-sign: drives aws/sigv4 for the pytest suites (tests/integration/modules/aws/test_sigv4_botocore.py).
 *
 * Reads one JSON request spec (or an array of them) on stdin and writes one JSON result (or an
 * array) on stdout. Credentials come on stdin, never in argv. Spec fields:
 *   method, path, query (wire form), headers: [[name, value], ...] (Host included),
 *   payload: one of  "payload_hash": "<hex>|UNSIGNED-PAYLOAD",  "body_hex": "<hex bytes>" (hashed
 *     incrementally), "body_file": "<path>" (hashed with sigv4_sha256_fd); none = empty-body hash,
 *   access_key_id, secret_access_key, session_token (optional),
 *   region, service, time (epoch seconds),
 *   flags: ["s3", "no_normalize", "single_encode", "content_sha256", "token_unsigned"],
 *   presign (bool), expires (seconds).
 * Result fields: rc (0 or negative errno), authorization, headers [[name, value]...], query,
 * canonical_request (raw), canonical_request_log, string_to_sign, signature, signed_headers,
 * payload_hash. Exit status 0 when every spec was processed (rc reports signing errors), 2 on bad
 * tool input.
 */
#include "kvsfs/sigv4.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Hashes the hex body in small pieces through the incremental hasher. */
static int hash_hex_body(const char *hex, char out[SIGV4_HEX_LEN + 1])
{
	struct sigv4_hasher h;
	int rc = sigv4_hasher_init(&h);
	unsigned char chunk[97]; /* odd size on purpose: exercises many updates */
	size_t n = 0, len = strlen(hex);
	if (len % 2) {
		sigv4_hasher_free(&h);
		return -EINVAL;
	}
	for (size_t i = 0; i < len && !rc; i += 2) {
		int a = hexval(hex[i]), b = hexval(hex[i + 1]);
		if (a < 0 || b < 0) {
			rc = -EINVAL;
			break;
		}
		chunk[n++] = (unsigned char)(a * 16 + b);
		if (n == sizeof(chunk)) {
			rc = sigv4_hasher_update(&h, chunk, n);
			n = 0;
		}
	}
	if (!rc && n)
		rc = sigv4_hasher_update(&h, chunk, n);
	if (rc) {
		sigv4_hasher_free(&h);
		return rc;
	}
	return sigv4_hasher_final(&h, out);
}

static json_t *sign_one(json_t *spec)
{
	json_t *res = json_object();
	struct sigv4_header hs[64];
	size_t nh = 0;
	json_t *jh = json_object_get(spec, "headers");
	for (size_t i = 0; i < json_array_size(jh) && nh < 64; i++) {
		json_t *pair = json_array_get(jh, i);
		hs[nh].name = json_string_value(json_array_get(pair, 0));
		hs[nh].value = json_string_value(json_array_get(pair, 1));
		nh++;
	}
	char hash[SIGV4_HEX_LEN + 1];
	const char *payload = str(spec, "payload_hash");
	int rc = 0;
	if (!payload && str(spec, "body_hex")) {
		rc = hash_hex_body(str(spec, "body_hex"), hash);
		payload = hash;
	} else if (!payload && str(spec, "body_file")) {
		int fd = open(str(spec, "body_file"), O_RDONLY | O_CLOEXEC);
		rc = fd < 0 ? -errno : sigv4_sha256_fd(fd, 0, -1, hash);
		if (fd >= 0)
			close(fd);
		payload = hash;
	}
	unsigned flags = SIGV4_KEEP_CANONICAL;
	json_t *jf = json_object_get(spec, "flags");
	for (size_t i = 0; i < json_array_size(jf); i++) {
		const char *f = json_string_value(json_array_get(jf, i));
		if (!f)
			continue;
		if (!strcmp(f, "s3"))
			flags |= SIGV4_S3;
		else if (!strcmp(f, "no_normalize"))
			flags |= SIGV4_NO_NORMALIZE;
		else if (!strcmp(f, "single_encode"))
			flags |= SIGV4_SINGLE_ENCODE;
		else if (!strcmp(f, "content_sha256"))
			flags |= SIGV4_CONTENT_SHA256;
		else if (!strcmp(f, "token_unsigned"))
			flags |= SIGV4_TOKEN_UNSIGNED;
		else
			rc = -EINVAL;
	}
	struct sigv4_request rq = { str(spec, "method"), str(spec, "path"), str(spec, "query"),
				    hs, nh, payload };
	struct sigv4_creds cr = { str(spec, "access_key_id"), str(spec, "secret_access_key"),
				  str(spec, "session_token") };
	struct sigv4_params pa = { str(spec, "region"), str(spec, "service"),
				   (time_t)json_integer_value(json_object_get(spec, "time")), flags,
				   (unsigned)json_integer_value(json_object_get(spec, "expires")),
				   NULL };
	struct sigv4_result out = SIGV4_RESULT_INIT;
	if (!rc)
		rc = json_is_true(json_object_get(spec, "presign"))
			     ? sigv4_presign(&rq, &cr, &pa, NULL, &out)
			     : sigv4_sign_headers(&rq, &cr, &pa, NULL, &out);
	json_object_set_new(res, "rc", json_integer(rc));
	if (!rc) {
		json_t *add = json_array();
		for (size_t i = 0; i < out.n_add; i++)
			json_array_append_new(add, json_pack("[ss]", out.add[i].name, out.add[i].value));
		json_object_set_new(res, "headers", add);
		json_object_set_new(res, "authorization",
				    out.authorization ? json_string(out.authorization) : json_null());
		json_object_set_new(res, "query", out.query ? json_string(out.query) : json_null());
		json_object_set_new(res, "canonical_request", json_string(out.canonical_request));
		json_object_set_new(res, "canonical_request_log",
				    json_string(out.canonical_request_log));
		json_object_set_new(res, "string_to_sign", json_string(out.string_to_sign));
		json_object_set_new(res, "signature", json_string(out.signature));
		json_object_set_new(res, "signed_headers", json_string(out.signed_headers));
		json_object_set_new(res, "amz_date", json_string(out.amz_date));
		if (payload)
			json_object_set_new(res, "payload_hash", json_string(payload));
	}
	sigv4_result_free(&out);
	return res;
}

int main(int argc, char **argv)
{
	(void)argv;
	if (argc != 1) {
		fprintf(stderr, "usage: kvsfs-sign < spec.json  (see the comment in sign_tool.c)\n");
		return 2;
	}
	json_error_t err;
	json_t *in = json_loadf(stdin, 0, &err);
	if (!in) {
		fprintf(stderr, "kvsfs-sign: bad JSON on stdin: %s (line %d)\n", err.text, err.line);
		return 2;
	}
	json_t *out;
	if (json_is_array(in)) {
		out = json_array();
		for (size_t i = 0; i < json_array_size(in); i++)
			json_array_append_new(out, sign_one(json_array_get(in, i)));
	} else if (json_is_object(in)) {
		out = sign_one(in);
	} else {
		fprintf(stderr, "kvsfs-sign: expected a JSON object or array\n");
		json_decref(in);
		return 2;
	}
	json_dumpf(out, stdout, JSON_INDENT(1) | JSON_ENSURE_ASCII);
	fputc('\n', stdout);
	json_decref(out);
	json_decref(in);
	return 0;
}
