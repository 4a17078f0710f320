/*
 * Fuzz target for util/decsec, the decimal-seconds parser fed by MKV tag values, the
 * environment and S3 metadata. The input (cut at the first NUL) is parsed under all eight flag
 * combinations and each answer is compared with a reference model written differently (token
 * spans with strspn, 128-bit arithmetic); then the relations between flags are checked: the
 * lenient and signed forms accept supersets, rounding up differs by at most one millisecond,
 * and a parsed value formats back to text that parses to the same value.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvsfs/decsec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char DIGITS[] = "0123456789";

/* The reference: returns 0 / -EINVAL / -ERANGE like decsec_parse_ms. */
static int model(const char *s, unsigned flags, int64_t *out)
{
	size_t len = strlen(s), b = 0, e = len;
	if (flags & DECSEC_LENIENT) {
		while (b < len && s[b] == ' ')
			b++;
		while (e > b && s[e - 1] == ' ')
			e--;
	}
	const char *p = s + b;
	size_t n = e - b;
	int neg = n > 0 && p[0] == '-' && (flags & DECSEC_NEGATIVE);
	p += neg;
	n -= (size_t)neg;
	size_t ip = strspn(p, DIGITS);
	if (ip == 0 || ip > n)
		return -EINVAL;
	size_t fp = 0;
	int point = ip < n && p[ip] == '.';
	if (point) {
		fp = strspn(p + ip + 1, DIGITS);
		if (fp == 0 && !(flags & DECSEC_LENIENT))
			return -EINVAL;
	}
	if (ip + point + fp != n)
		return -EINVAL;
	unsigned __int128 v = 0;
	const unsigned __int128 cap = (unsigned __int128)1 << 100;
	for (size_t i = 0; i < ip; i++)
		if ((v = v * 10 + (unsigned)(p[i] - '0')) > cap)
			v = cap;
	v *= 1000;
	unsigned __int128 f = 0;
	for (size_t i = 0; i < 3; i++)
		f = f * 10 + (i < fp ? (unsigned)(p[ip + 1 + i] - '0') : 0);
	v += f;
	if ((flags & DECSEC_ROUND_UP) && fp > 3 && strspn(p + ip + 4, "0") < fp - 3)
		v += 1;
	if (v > INT64_MAX)
		return -ERANGE;
	*out = neg ? -(int64_t)v : (int64_t)v;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	int rc[8];
	int64_t v[8];
	for (unsigned fl = 0; fl < 8; fl++) {
		int64_t want = 0;
		int mrc = model(s, fl, &want);
		rc[fl] = decsec_parse_ms(s, fl, &v[fl]);
		if (rc[fl] != mrc || (!mrc && v[fl] != want))
			abort();
	}
	for (unsigned fl = 0; fl < 8; fl++) {
		if (rc[fl])
			continue;
		/* a wider grammar accepts what a narrower one does, with the same value */
		if (rc[fl | DECSEC_LENIENT] || v[fl | DECSEC_LENIENT] != v[fl] ||
		    rc[fl | DECSEC_NEGATIVE] || v[fl | DECSEC_NEGATIVE] != v[fl])
			abort();
		/* rounding up adds at most one millisecond of magnitude */
		if (!(fl & DECSEC_ROUND_UP) && !rc[fl | DECSEC_ROUND_UP]) {
			int64_t d = v[fl | DECSEC_ROUND_UP] - v[fl];
			if (d != 0 && d != (v[fl] < 0 || s[strspn(s, " ")] == '-' ? -1 : 1))
				abort();
		}
		/* the value formats back to strict text that parses to itself */
		char buf[48];
		uint64_t mag = v[fl] < 0 ? (uint64_t)0 - (uint64_t)v[fl] : (uint64_t)v[fl];
		snprintf(buf, sizeof(buf), "%s%" PRIu64 ".%03u", v[fl] < 0 ? "-" : "", mag / 1000,
			 (unsigned)(mag % 1000));
		int64_t back;
		if (decsec_parse_ms(buf, DECSEC_NEGATIVE, &back) || back != v[fl])
			abort();
	}
	free(s);
	return 0;
}
