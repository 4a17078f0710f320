/*
 * names: formatting and strict parsing of the tree's time-based names (see names.h).
 * Conversions use the proleptic Gregorian calendar arithmetic of days-from-civil, with no
 * dependency on the process time zone (no mktime/localtime).
 */
#include "kvsfs/names.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define MAX_MS 253402300799999LL /* 9999-12-31T23:59:59.999Z */

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const unsigned yoe = (unsigned)(y - era * 400);
	const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
	z += 719468;
	const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	const unsigned doe = (unsigned)(z - era * 146097);
	const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	const int64_t yy = (int64_t)yoe + era * 400;
	const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	const unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int)(yy + (*m <= 2));
}

static int days_in_month(int y, unsigned m)
{
	static const int dm[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return dm[m - 1];
}

/* Reads n decimal digits; -1 if any is not a digit. */
static int digits(const char *s, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

struct civil {
	int y;
	unsigned mo, d, h, mi, s, ms;
};

static int split(int64_t ms, struct civil *c)
{
	if (ms < 0 || ms > MAX_MS)
		return -EINVAL;
	int64_t days = ms / 86400000, rem = ms % 86400000;
	civil_from_days(days, &c->y, &c->mo, &c->d);
	c->h = (unsigned)(rem / 3600000);
	c->mi = (unsigned)(rem / 60000 % 60);
	c->s = (unsigned)(rem / 1000 % 60);
	c->ms = (unsigned)(rem % 1000);
	return 0;
}

static int join(const struct civil *c, int64_t *ms)
{
	if (c->y < 1970 || c->y > 9999 || c->mo < 1 || c->mo > 12 || c->d < 1 ||
	    (int)c->d > days_in_month(c->y, c->mo) || c->h > 23 || c->mi > 59 || c->s > 59 ||
	    c->ms > 999)
		return -EINVAL;
	*ms = days_from_civil(c->y, c->mo, c->d) * 86400000 + (int64_t)c->h * 3600000 +
	      (int64_t)c->mi * 60000 + (int64_t)c->s * 1000 + c->ms;
	return 0;
}

int names_format_stamp(int64_t ms, char out[NAMES_STAMP_LEN])
{
	struct civil c;
	if (split(ms, &c))
		return -EINVAL;
	char tmp[64];
	snprintf(tmp, sizeof(tmp), "%04d%02u%02uT%02u%02u%02u.%03uZ", c.y, c.mo, c.d, c.h, c.mi,
		 c.s, c.ms);
	memcpy(out, tmp, NAMES_STAMP_LEN - 1);
	out[NAMES_STAMP_LEN - 1] = '\0';
	return 0;
}

int names_parse_stamp(const char *s, size_t len, int64_t *ms)
{
	struct civil c = { 0 };
	if (len != 16 && len != 20)
		return -EINVAL;
	if (s[8] != 'T' || s[len - 1] != 'Z')
		return -EINVAL;
	int y = digits(s, 4), mo = digits(s + 4, 2), d = digits(s + 6, 2);
	int h = digits(s + 9, 2), mi = digits(s + 11, 2), sec = digits(s + 13, 2), frac = 0;
	if (len == 20) {
		if (s[15] != '.')
			return -EINVAL;
		frac = digits(s + 16, 3);
	}
	if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || sec < 0 || frac < 0)
		return -EINVAL;
	c.y = y;
	c.mo = (unsigned)mo;
	c.d = (unsigned)d;
	c.h = (unsigned)h;
	c.mi = (unsigned)mi;
	c.s = (unsigned)sec;
	c.ms = (unsigned)frac;
	return join(&c, ms);
}

int names_format_day(int64_t ms, char out[NAMES_DAY_LEN])
{
	struct civil c;
	if (split(ms, &c))
		return -EINVAL;
	char tmp[64];
	snprintf(tmp, sizeof(tmp), "%04d-%02u-%02u", c.y, c.mo, c.d);
	memcpy(out, tmp, NAMES_DAY_LEN - 1);
	out[NAMES_DAY_LEN - 1] = '\0';
	return 0;
}

int names_parse_day(const char *s, int64_t *day_ms)
{
	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return -EINVAL;
	int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
	if (y < 0 || mo < 0 || d < 0)
		return -EINVAL;
	struct civil c = { .y = y, .mo = (unsigned)mo, .d = (unsigned)d };
	return join(&c, day_ms);
}

int names_parse_hour(const char *s, int *hour)
{
	if (strlen(s) != 2)
		return -EINVAL;
	int h = digits(s, 2);
	if (h < 0 || h > 23)
		return -EINVAL;
	*hour = h;
	return 0;
}

int names_format_fragment(int64_t start_ms, const char *number, int dup,
			  char out[NAMES_FRAGMENT_LEN])
{
	char stamp[NAMES_STAMP_LEN];
	if (names_format_stamp(start_ms, stamp))
		return -EINVAL;
	if (dup) {
		size_t n = number ? strlen(number) : 0;
		if (n == 0 || n > 128)
			return -EINVAL;
		snprintf(out, NAMES_FRAGMENT_LEN, "%s-%s.mkv", stamp, number);
	} else {
		snprintf(out, NAMES_FRAGMENT_LEN, "%s.mkv", stamp);
	}
	return 0;
}

int names_parse_fragment(const char *s, int64_t *start_ms, const char **number, size_t *number_len)
{
	size_t len = strlen(s);
	*number = NULL;
	*number_len = 0;
	if (len < 24 || strcmp(s + len - 4, ".mkv") != 0)
		return -EINVAL;
	if (names_parse_stamp(s, 20, start_ms))
		return -EINVAL;
	if (len == 24)
		return 0;
	if (s[20] != '-')
		return -EINVAL;
	size_t n = len - 4 - 21;
	if (n == 0 || n > 128)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (s[21 + i] < '0' || s[21 + i] > '9')
			return -EINVAL;
	*number = s + 21;
	*number_len = n;
	return 0;
}

int names_parse_clip(const char *s, int64_t *start_ms, int64_t *end_ms)
{
	size_t len = strlen(s);
	if (len < 4 || strcmp(s + len - 4, ".mp4") != 0)
		return -EINVAL;
	const char *dash = memchr(s, '-', len);
	if (!dash)
		return -EINVAL;
	size_t a = (size_t)(dash - s), b = len - 4 - a - 1;
	if (names_parse_stamp(s, a, start_ms) || names_parse_stamp(dash + 1, b, end_ms))
		return -EINVAL;
	return 0;
}

int names_format_clip(int64_t start_ms, int64_t end_ms, char out[64])
{
	char a[NAMES_STAMP_LEN], b[NAMES_STAMP_LEN];
	if (names_format_stamp(start_ms, a) || names_format_stamp(end_ms, b))
		return -EINVAL;
	if (start_ms % 1000 == 0 && end_ms % 1000 == 0) {
		/* drop ".000" */
		memmove(a + 15, a + 19, 2);
		memmove(b + 15, b + 19, 2);
	}
	snprintf(out, 64, "%s-%s.mp4", a, b);
	return 0;
}
