/*
 * json: jansson helpers for KVS shapes (see include/kvsfs/json.h for the contract).
 *
 * Design:
 * - Getters funnel through lookup(), which maps absent keys and explicit nulls to -ENOENT and a
 *   non-object container to -EINVAL, so every getter has the same three outcomes.
 * - Timestamps are converted by an exact decimal routine over number text
 *   (json_epoch_text_to_ms): digits are collected into a decimal significand D and an exponent
 *   k such that milliseconds = D * 10^k; multiplication and the half-up rounding are done on the
 *   digit string with overflow checks, never through floating point. A jansson real is first
 *   turned back into the shortest text that round-trips its double (what the server sent, for
 *   any timestamp of up to 15-17 significant digits).
 * - Fragment numbers are validated and compared as digit strings.
 */
#include "kvsfs/json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int json_parse_object(const void *text, size_t len, size_t max_len, json_t **out,
		      char *err, size_t err_n)
{
	if (err && err_n)
		err[0] = '\0';
	if (!max_len)
		max_len = JSON_DEFAULT_MAX_DOC;
	if (len > max_len) {
		if (err && err_n)
			snprintf(err, err_n, "document too large (%zu bytes, limit %zu)", len,
				 max_len);
		return -EFBIG;
	}
	if (!text) {
		if (err && err_n)
			snprintf(err, err_n, "empty document");
		return -EBADMSG;
	}
	json_error_t jerr;
	json_t *root = json_loadb(text, len, 0, &jerr);
	if (!root) {
		enum json_error_code code = json_error_code(&jerr);
		if (code == json_error_out_of_memory)
			return -ENOMEM;
		if (err && err_n)
			snprintf(err, err_n, "%s at line %d column %d",
				 code == json_error_numeric_overflow ? "number out of range"
				 : code == json_error_premature_end_of_input ? "truncated document"
				 : "syntax error", jerr.line, jerr.column);
		return -EBADMSG;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		if (err && err_n)
			snprintf(err, err_n, "top-level value is not an object");
		return -EBADMSG;
	}
	*out = root;
	return 0;
}

/* Returns the member, or NULL with *rc set: -ENOENT (absent or null), -EINVAL (bad container). */
static json_t *lookup(const json_t *obj, const char *key, int *rc)
{
	if (!obj || !json_is_object(obj) || !key) {
		*rc = -EINVAL;
		return NULL;
	}
	json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v)) {
		*rc = -ENOENT;
		return NULL;
	}
	*rc = 0;
	return v;
}

int json_get_str(const json_t *obj, const char *key, const char **out)
{
	int rc;
	json_t *v = lookup(obj, key, &rc);
	if (!v)
		return rc;
	if (!json_is_string(v))
		return -EINVAL;
	*out = json_string_value(v);
	return 0;
}

int json_get_int(const json_t *obj, const char *key, int64_t *out)
{
	int rc;
	json_t *v = lookup(obj, key, &rc);
	if (!v)
		return rc;
	if (json_is_integer(v)) {
		*out = (int64_t)json_integer_value(v);
		return 0;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		/* integral and inside int64 (2^63 is exactly representable) */
		if (!isfinite(d) || d != floor(d) || d < -9223372036854775808.0 ||
		    d >= 9223372036854775808.0)
			return -EINVAL;
		*out = (int64_t)d;
		return 0;
	}
	return -EINVAL;
}

int json_get_number(const json_t *obj, const char *key, double *out)
{
	int rc;
	json_t *v = lookup(obj, key, &rc);
	if (!v)
		return rc;
	if (!json_is_number(v))
		return -EINVAL;
	*out = json_number_value(v);
	return 0;
}

int json_get_bool(const json_t *obj, const char *key, int *out)
{
	int rc;
	json_t *v = lookup(obj, key, &rc);
	if (!v)
		return rc;
	if (!json_is_boolean(v))
		return -EINVAL;
	*out = json_is_true(v) ? 1 : 0;
	return 0;
}

int json_get_object(const json_t *obj, const char *key, json_t **out)
{
	int rc;
	json_t *v = lookup(obj, key, &rc);
	if (!v)
		return rc;
	if (!json_is_object(v))
		return -EINVAL;
	*out = v;
	return 0;
}

int json_get_array(const json_t *obj, const char *key, json_t **out)
{
	int rc;
	json_t *v = lookup(obj, key, &rc);
	if (!v)
		return rc;
	if (!json_is_array(v))
		return -EINVAL;
	*out = v;
	return 0;
}

int json_get_epoch_ms(const json_t *obj, const char *key, int64_t *out)
{
	int rc;
	json_t *v = lookup(obj, key, &rc);
	if (!v)
		return rc;
	return json_value_epoch_ms(v, out);
}

int json_get_fragnum(const json_t *obj, const char *key, const char **out)
{
	const char *s;
	int rc = json_get_str(obj, key, &s);
	if (rc)
		return rc;
	if (!json_fragnum_valid(s))
		return -EINVAL;
	*out = s;
	return 0;
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int json_epoch_text_to_ms(const char *text, size_t len, int64_t *out)
{
	if (!text || !len)
		return -EINVAL;
	size_t i = 0;
	int neg = 0;
	if (text[i] == '-') {
		neg = 1;
		i++;
	}
	/* integer part: 0 or [1-9][0-9]* */
	size_t int_start = i;
	if (i < len && text[i] == '0') {
		i++;
	} else {
		while (i < len && is_digit(text[i]))
			i++;
	}
	size_t int_end = i;
	if (int_end == int_start)
		return -EINVAL;
	size_t frac_start = i, frac_end = i;
	if (i < len && text[i] == '.') {
		i++;
		frac_start = i;
		while (i < len && is_digit(text[i]))
			i++;
		frac_end = i;
		if (frac_end == frac_start)
			return -EINVAL;
	}
	long long exp = 0;
	if (i < len && (text[i] == 'e' || text[i] == 'E')) {
		i++;
		int eneg = 0;
		if (i < len && (text[i] == '+' || text[i] == '-')) {
			eneg = text[i] == '-';
			i++;
		}
		size_t es = i;
		while (i < len && is_digit(text[i])) {
			if (exp < 100000000) /* clamp: anything this large is out of range anyway */
				exp = exp * 10 + (text[i] - '0');
			i++;
		}
		if (i == es)
			return -EINVAL;
		if (eneg)
			exp = -exp;
	}
	if (i != len)
		return -EINVAL;

	/* Significand digits D (integer then fraction digits), leading zeros skipped. The value in
	 * milliseconds is D * 10^k with k = exp - nfrac + 3. */
	size_t nfrac = frac_end - frac_start;
	long long k = exp - (long long)nfrac + 3;
	/* iterate over the digit string without copying: digit j of D */
	size_t nint = int_end - int_start;
	size_t total = nint + nfrac;
	size_t lead = 0;
	while (lead < total) {
		char c = lead < nint ? text[int_start + lead] : text[frac_start + lead - nint];
		if (c != '0')
			break;
		lead++;
	}
	size_t L = total - lead; /* significant digits */
	if (L == 0) {
		*out = 0; /* zero, including "-0" and "0.000e5" */
		return 0;
	}
	if (neg)
		return -ERANGE;
#define DIGIT(j) ((lead + (j)) < nint ? text[int_start + lead + (j)] \
				       : text[frac_start + lead + (j) - nint])
	/* number of digits that form the integer part of D * 10^k */
	long long ipart = (long long)L + k;
	if (ipart > 19)
		return -ERANGE;
	uint64_t v = 0;
	for (long long j = 0; j < ipart; j++) {
		int d = j < (long long)L ? DIGIT((size_t)j) - '0' : 0;
		if (v > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)d;
	}
	/* round half up on the first dropped digit */
	if (ipart >= 0 && ipart < (long long)L && DIGIT((size_t)ipart) >= '5')
		v++;
#undef DIGIT
	if (v > (uint64_t)INT64_MAX)
		return -ERANGE;
	*out = (int64_t)v;
	return 0;
}

int json_value_epoch_ms(const json_t *v, int64_t *out)
{
	if (json_is_integer(v)) {
		json_int_t s = json_integer_value(v);
		if (s < 0 || s > INT64_MAX / 1000)
			return -ERANGE;
		*out = (int64_t)s * 1000;
		return 0;
	}
	if (!json_is_real(v))
		return -EINVAL;
	double d = json_real_value(v);
	if (!isfinite(d))
		return -ERANGE;
	if (d == 0) {
		*out = 0;
		return 0;
	}
	if (d < 0)
		return -ERANGE;
	/* shortest %e text that reads back as the same double */
	char text[40];
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(text, sizeof(text), "%.*e", prec - 1, d);
		if (strtod(text, NULL) == d)
			break;
	}
	return json_epoch_text_to_ms(text, strlen(text), out);
}

json_t *json_epoch_ms_value(int64_t ms)
{
	if (ms < 0)
		return NULL;
	if (ms % 1000 == 0)
		return json_integer((json_int_t)(ms / 1000));
	return json_real((double)ms / 1000.0);
}

int json_set_epoch_ms(json_t *obj, const char *key, int64_t ms)
{
	if (!json_is_object(obj) || !key || ms < 0)
		return -EINVAL;
	json_t *v = json_epoch_ms_value(ms);
	if (!v)
		return -ENOMEM;
	if (json_object_set_new(obj, key, v) != 0)
		return -ENOMEM;
	return 0;
}

char *json_dump_compact(const json_t *v)
{
	return json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(15) | JSON_ENCODE_ANY);
}

int json_fragnum_valid(const char *s)
{
	if (!s)
		return 0;
	size_t n = 0;
	for (; s[n]; n++) {
		if (n >= JSON_FRAGNUM_MAX || !is_digit(s[n]))
			return 0;
	}
	return n >= 1;
}

int json_fragnum_cmp(const char *a, const char *b)
{
	while (*a == '0')
		a++;
	while (*b == '0')
		b++;
	size_t la = strlen(a), lb = strlen(b);
	if (la != lb)
		return la < lb ? -1 : 1;
	int c = memcmp(a, b, la);
	return c < 0 ? -1 : c > 0 ? 1 : 0;
}
