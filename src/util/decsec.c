/*
 * decsec: decimal seconds to milliseconds (see include/kvsfs/decsec.h for the contract).
 *
 * Design: one left-to-right pass. The whole seconds accumulate in a uint64_t with an overflow
 * flag (digits keep being validated after an overflow, so garbage is told apart from a large
 * number); the first three fractional digits form the milliseconds and the rest only set a
 * "something was dropped" flag. The range check is done once, at the end, on the exact value
 * sec * 1000 + frac (+ 1 when rounding up).
 */
#include "kvsfs/decsec.h"

#include <errno.h>
#include <stddef.h>

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int decsec_parse_ms(const char *s, unsigned flags, int64_t *ms)
{
	if (!s)
		return -EINVAL;
	const char *p = s;
	int lenient = (flags & DECSEC_LENIENT) != 0;
	while (lenient && *p == ' ')
		p++;
	int neg = 0;
	if (*p == '-' && (flags & DECSEC_NEGATIVE)) {
		neg = 1;
		p++;
	}
	if (!is_digit(*p))
		return -EINVAL;
	uint64_t sec = 0;
	int overflow = 0;
	for (; is_digit(*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		if (sec > (UINT64_MAX - d) / 10)
			overflow = 1;
		else
			sec = sec * 10 + d;
	}
	uint64_t frac = 0;
	int digits = 0, dropped = 0;
	if (*p == '.') {
		p++;
		for (; is_digit(*p); p++) {
			if (digits < 3)
				frac = frac * 10 + (uint64_t)(*p - '0');
			else if (*p != '0')
				dropped = 1;
			digits++;
		}
		if (digits == 0 && !lenient)
			return -EINVAL;
	}
	while (lenient && *p == ' ')
		p++;
	if (*p != '\0')
		return -EINVAL;
	for (int i = digits; i < 3; i++)
		frac *= 10;
	uint64_t up = dropped && (flags & DECSEC_ROUND_UP) ? 1 : 0;
	if (overflow || sec > ((uint64_t)INT64_MAX - frac - up) / 1000)
		return -ERANGE;
	int64_t v = (int64_t)(sec * 1000 + frac + up);
	*ms = neg ? -v : v;
	return 0;
}
