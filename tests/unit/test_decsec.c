/* Unit tests for util/decsec: grammar, flags, rounding, exact range edges. */
#include <errno.h>
#include <stdint.h>

#include "check.h"
#include "kvsfs/decsec.h"

#define MKV (DECSEC_LENIENT | DECSEC_ROUND_UP)

/* Parses s with flags; returns the code and stores the value (or 777 when untouched). */
static int parse(const char *s, unsigned flags, int64_t *v)
{
	*v = 777;
	return decsec_parse_ms(s, flags, v);
}

static void strict_grammar(void)
{
	int64_t v;
	CHECK(parse("1511852109.126", 0, &v) == 0 && v == 1511852109126, "seconds and millis");
	CHECK(parse("17", 0, &v) == 0 && v == 17000, "integer seconds");
	CHECK(parse("1.5", 0, &v) == 0 && v == 1500, "one fractional digit");
	CHECK(parse("0.05", 0, &v) == 0 && v == 50, "two fractional digits");
	CHECK(parse("0", 0, &v) == 0 && v == 0, "zero");
	CHECK(parse("007.000", 0, &v) == 0 && v == 7000, "leading zeros");
	CHECK_INT(parse("", 0, &v), -EINVAL, "empty");
	CHECK_INT(parse(NULL, 0, &v), -EINVAL, "NULL");
	CHECK_INT(parse("abc", 0, &v), -EINVAL, "letters");
	CHECK_INT(parse("12.", 0, &v), -EINVAL, "bare point refused when strict");
	CHECK_INT(parse(".5", 0, &v), -EINVAL, "no leading digit");
	CHECK_INT(parse("+1", 0, &v), -EINVAL, "plus sign");
	CHECK_INT(parse("1e3", 0, &v), -EINVAL, "exponent");
	CHECK_INT(parse("0x10", 0, &v), -EINVAL, "hex");
	CHECK_INT(parse("inf", 0, &v), -EINVAL, "inf");
	CHECK_INT(parse(" 1", 0, &v), -EINVAL, "leading space refused when strict");
	CHECK_INT(parse("1 ", 0, &v), -EINVAL, "trailing space refused when strict");
	CHECK_INT(parse("1.2x", 0, &v), -EINVAL, "trailing junk");
	CHECK_INT(parse("1.2.3", 0, &v), -EINVAL, "two points");
	CHECK_INT(parse("-1", 0, &v), -EINVAL, "sign refused without DECSEC_NEGATIVE");
	CHECK(v == 777, "output untouched on error");
	CHECK_INT(parse("2024-05-01T12:00:00Z", 0, &v), -EINVAL, "ISO date is not seconds");
}

static void flags(void)
{
	int64_t v;
	CHECK(parse("-1.25", DECSEC_NEGATIVE, &v) == 0 && v == -1250, "negative");
	CHECK(parse("-0", DECSEC_NEGATIVE, &v) == 0 && v == 0, "negative zero");
	CHECK_INT(parse("-", DECSEC_NEGATIVE, &v), -EINVAL, "sign alone");
	CHECK_INT(parse("--1", DECSEC_NEGATIVE, &v), -EINVAL, "two signs");
	CHECK_INT(parse("- 1", DECSEC_NEGATIVE | DECSEC_LENIENT, &v), -EINVAL,
		  "space between sign and digits");
	CHECK(parse("  12.5  ", DECSEC_LENIENT, &v) == 0 && v == 12500, "lenient spaces");
	CHECK(parse("5.", DECSEC_LENIENT, &v) == 0 && v == 5000, "lenient bare point");
	CHECK_INT(parse("\t5", DECSEC_LENIENT, &v), -EINVAL, "only spaces, not tabs");
	CHECK_INT(parse("   ", DECSEC_LENIENT, &v), -EINVAL, "spaces only");
}

static void rounding(void)
{
	int64_t v;
	CHECK(parse("1700000000.123456789", DECSEC_NEGATIVE, &v) == 0 && v == 1700000000123,
	      "extra digits dropped");
	CHECK(parse("1.2349", 0, &v) == 0 && v == 1234, "truncates, does not round to nearest");
	CHECK(parse("-1.2349", DECSEC_NEGATIVE, &v) == 0 && v == -1234, "truncates toward zero");
	CHECK(parse("5.0001", DECSEC_ROUND_UP, &v) == 0 && v == 5001, "round up like ceil");
	CHECK(parse("5.0000000", DECSEC_ROUND_UP, &v) == 0 && v == 5000, "zeros do not round up");
	CHECK(parse("-5.0001", DECSEC_ROUND_UP | DECSEC_NEGATIVE, &v) == 0 && v == -5001,
	      "round up is away from zero for negatives");
	CHECK(parse("0.9999", DECSEC_ROUND_UP, &v) == 0 && v == 1000, "round up carries");
	CHECK(parse("0.0001", 0, &v) == 0 && v == 0, "sub-millisecond truncates to 0");
	/* the MKV tag cases kept from test_mkv */
	CHECK(parse("1511852109.126", MKV, &v) == 0 && v == 1511852109126, "mkv .126");
	CHECK(parse("0.000", MKV, &v) == 0 && v == 0, "mkv 0.000");
}

static void range(void)
{
	int64_t v;
	CHECK(parse("9223372036854775.807", 0, &v) == 0 && v == INT64_MAX, "INT64_MAX exactly");
	CHECK_INT(parse("9223372036854775.808", 0, &v), -ERANGE, "one past INT64_MAX");
	CHECK(parse("9223372036854775.8079", 0, &v) == 0 && v == INT64_MAX,
	      "dropped digits do not overflow");
	CHECK_INT(parse("9223372036854775.8071", DECSEC_ROUND_UP, &v), -ERANGE,
		  "rounding up past INT64_MAX");
	CHECK(parse("-9223372036854775.807", DECSEC_NEGATIVE, &v) == 0 && v == -INT64_MAX,
	      "most negative accepted");
	CHECK_INT(parse("-9223372036854775.808", DECSEC_NEGATIVE, &v), -ERANGE,
		  "INT64_MIN refused (magnitude limit)");
	CHECK_INT(parse("9223372036854776", 0, &v), -ERANGE, "seconds too large");
	CHECK_INT(parse("99999999999999999999999", 0, &v), -ERANGE, "uint64 overflow");
	CHECK_INT(parse("99999999999999999999999x", 0, &v), -EINVAL, "garbage wins over range");
	CHECK(parse("000000000000000000000000000001.5", 0, &v) == 0 && v == 1500,
	      "many leading zeros");
}

int main(void)
{
	strict_grammar();
	flags();
	rounding();
	range();
	return check_done();
}
