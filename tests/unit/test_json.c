/* Unit tests for json: bounded parsing, getters (nulls, unknown keys, types), epoch-second
 * timestamps to milliseconds (exponents, ints, fractions, huge/negative/garbage), emitting
 * timestamps, and fragment number validation/comparison. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kvsfs/json.h"

static json_t *parse(const char *s)
{
	json_t *j = NULL;
	char err[128];
	if (json_parse_object(s, strlen(s), 0, &j, err, sizeof(err)) != 0)
		return NULL;
	return j;
}

static int64_t text_ms(const char *s, int *rc)
{
	int64_t ms = -12345;
	*rc = json_epoch_text_to_ms(s, strlen(s), &ms);
	return ms;
}

static void test_parse(void)
{
	json_t *j = NULL;
	char err[128];
	const char *doc = "{\"a\":1}";
	CHECK_INT(json_parse_object(doc, strlen(doc), 0, &j, err, sizeof(err)), 0, "parse ok");
	json_decref(j);
	CHECK_INT(json_parse_object(doc, strlen(doc), 3, &j, err, sizeof(err)), -EFBIG,
		  "size limit");
	CHECK_INT(json_parse_object("[1]", 3, 0, &j, err, sizeof(err)), -EBADMSG, "array refused");
	CHECK_INT(json_parse_object("{\"a\":", 5, 0, &j, err, sizeof(err)), -EBADMSG, "truncated");
	CHECK(strstr(err, "line") != NULL, "error has position");
	const char *secret = "{\"SecretAccessKey\":\"wJalrXUtnFEMI\" x}";
	CHECK_INT(json_parse_object(secret, strlen(secret), 0, &j, err, sizeof(err)), -EBADMSG,
		  "syntax error");
	CHECK(strstr(err, "wJalr") == NULL, "error text holds no document content");
	const char *huge = "{\"n\":123456789012345678901234567890}";
	CHECK_INT(json_parse_object(huge, strlen(huge), 0, &j, err, sizeof(err)), -EBADMSG,
		  "integer overflow refused");
	CHECK_INT(json_parse_object("{\"a\":\"\\u0000\"}", 14, 0, &j, err, sizeof(err)), -EBADMSG,
		  "NUL in string refused");
	CHECK_INT(json_parse_object(NULL, 0, 0, &j, err, sizeof(err)), -EBADMSG, "NULL text");
}

static void test_getters(void)
{
	json_t *j = parse("{\"StreamName\":\"cam1\",\"DeviceName\":null,\"Retention\":24,"
			  "\"Size\":1.0E3,\"Frac\":1.5,\"On\":true,\"Obj\":{},\"Arr\":[],"
			  "\"Unknown\":{\"deep\":[1,2]},\"Num\":\"12\"}");
	CHECK(j != NULL, "doc parsed");
	const char *s = NULL;
	int64_t i = 0;
	double d = 0;
	int b = 0;
	json_t *o = NULL;
	CHECK_INT(json_get_str(j, "StreamName", &s), 0, "string");
	CHECK_STR(s, "cam1", "string value");
	CHECK_INT(json_get_str(j, "DeviceName", &s), -ENOENT, "explicit null = absent");
	CHECK_INT(json_get_str(j, "Missing", &s), -ENOENT, "absent");
	CHECK_INT(json_get_str(j, "Retention", &s), -EINVAL, "wrong type");
	CHECK_INT(json_get_int(j, "Retention", &i), 0, "int");
	CHECK_INT(i, 24, "int value");
	CHECK_INT(json_get_int(j, "Size", &i), 0, "integral real as int");
	CHECK_INT(i, 1000, "integral real value");
	CHECK_INT(json_get_int(j, "Frac", &i), -EINVAL, "fractional real not int");
	CHECK_INT(json_get_int(j, "Num", &i), -EINVAL, "numeric string not int");
	CHECK_INT(json_get_int(j, "DeviceName", &i), -ENOENT, "null int absent");
	CHECK_INT(json_get_number(j, "Frac", &d), 0, "number");
	CHECK(d == 1.5, "number value");
	CHECK_INT(json_get_bool(j, "On", &b), 0, "bool");
	CHECK_INT(b, 1, "bool value");
	CHECK_INT(json_get_bool(j, "Retention", &b), -EINVAL, "int is not bool");
	CHECK_INT(json_get_object(j, "Obj", &o), 0, "object");
	CHECK_INT(json_get_array(j, "Arr", &o), 0, "array");
	CHECK_INT(json_get_array(j, "Obj", &o), -EINVAL, "object is not array");
	CHECK_INT(json_get_str(NULL, "x", &s), -EINVAL, "NULL container");
	CHECK_INT(json_get_str(json_object_get(j, "Arr"), "x", &s), -EINVAL, "array container");
	json_decref(j);
}

static void test_timestamps(void)
{
	int rc;
	/* text form */
	CHECK_INT(text_ms("1.735442939457E9", &rc), 1735442939457LL, "exponent form exact");
	CHECK_INT(rc, 0, "rc");
	CHECK_INT(text_ms("1704067200", &rc), 1704067200000LL, "integer seconds");
	CHECK_INT(text_ms("1704067200.5", &rc), 1704067200500LL, "half second");
	CHECK_INT(text_ms("1704067200.0005", &rc), 1704067200001LL, "sub-ms rounds half up");
	CHECK_INT(text_ms("1704067200.0004999", &rc), 1704067200000LL, "sub-ms rounds down");
	CHECK_INT(text_ms("1.7040672005e+9", &rc), 1704067200500LL, "e+9");
	CHECK_INT(text_ms("17040672005E-1", &rc), 1704067200500LL, "negative exponent");
	CHECK_INT(text_ms("0.001e3", &rc), 1000LL, "tiny with exponent");
	CHECK_INT(text_ms("0", &rc), 0, "zero");
	CHECK_INT(text_ms("-0", &rc), 0, "-0 is zero");
	CHECK_INT(text_ms("0.0000001", &rc), 0, "tiny rounds to 0");
	CHECK_INT(text_ms("1e-400", &rc), 0, "huge negative exponent");
	CHECK_INT(text_ms("9223372036854775.807", &rc), INT64_MAX, "INT64_MAX ms");
	CHECK_INT(rc, 0, "max ok");
	text_ms("9223372036854775.808", &rc);
	CHECK_INT(rc, -ERANGE, "INT64_MAX+1 ms out of range");
	text_ms("1e300", &rc);
	CHECK_INT(rc, -ERANGE, "1e300 out of range");
	text_ms("1e99999999999", &rc);
	CHECK_INT(rc, -ERANGE, "absurd exponent out of range");
	text_ms("-1", &rc);
	CHECK_INT(rc, -ERANGE, "negative out of range");
	static const char *const bad[] = { "", "abc", "01", "1.", ".5", "1e", "1e+", "+1", "1 ",
					   "0x10", "NaN", "Infinity", "1.5.5", "--1", "1E9x" };
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		text_ms(bad[k], &rc);
		CHECK_INT(rc, -EINVAL, "garbage '%s' refused", bad[k]);
	}
	char longfrac[600] = "1704067200.";
	memset(longfrac + 11, '9', 500);
	longfrac[511] = '\0';
	CHECK_INT(text_ms(longfrac, &rc), 1704067201000LL, "500 fraction digits round up");

	/* through jansson */
	json_t *j = parse("{\"CreationTime\":1.735442939457E9,\"A\":1704067200,\"B\":1704067200.5,"
			  "\"N\":null,\"S\":\"1704067200\",\"Neg\":-5,\"Big\":1e300,\"Z\":0.0,"
			  "\"Max\":9223372036854775807,\"X\":{\"unknown\":true},"
			  "\"P\":1.7354429394569999E9,\"Q\":1735442939.4565}");
	CHECK(j != NULL, "timestamps doc parsed");
	int64_t ms = 0;
	CHECK_INT(json_get_epoch_ms(j, "CreationTime", &ms), 0, "get CreationTime");
	CHECK_INT(ms, 1735442939457LL, "1.735442939457E9 -> 1735442939457 ms");
	CHECK_INT(json_get_epoch_ms(j, "A", &ms), 0, "int ts");
	CHECK_INT(ms, 1704067200000LL, "int ts value");
	CHECK_INT(json_get_epoch_ms(j, "B", &ms), 0, "frac ts");
	CHECK_INT(ms, 1704067200500LL, "frac ts value");
	CHECK_INT(json_get_epoch_ms(j, "P", &ms), 0, "17-digit ts");
	CHECK_INT(ms, 1735442939457LL, "17-digit ts rounds to the ms");
	CHECK_INT(json_get_epoch_ms(j, "Q", &ms), 0, "half-ms ts");
	CHECK_INT(ms, 1735442939457LL, "half-ms ts rounds half up");
	CHECK_INT(json_get_epoch_ms(j, "N", &ms), -ENOENT, "null ts absent");
	CHECK_INT(json_get_epoch_ms(j, "Missing", &ms), -ENOENT, "missing ts");
	CHECK_INT(json_get_epoch_ms(j, "S", &ms), -EINVAL, "string ts refused");
	CHECK_INT(json_get_epoch_ms(j, "Neg", &ms), -ERANGE, "negative ts");
	CHECK_INT(json_get_epoch_ms(j, "Big", &ms), -ERANGE, "huge ts");
	CHECK_INT(json_get_epoch_ms(j, "Max", &ms), -ERANGE, "int64 max seconds overflows ms");
	CHECK_INT(json_get_epoch_ms(j, "X", &ms), -EINVAL, "object ts");
	CHECK_INT(json_get_epoch_ms(j, "Z", &ms), 0, "0.0 ts");
	CHECK_INT(ms, 0, "0.0 value");
	json_decref(j);

	/* exhaustive-ish: every ms in a few seconds round-trips through a double */
	int bad_rt = 0;
	for (int64_t t = 1735442939000LL; t < 1735442942000LL; t++) {
		json_t *v = json_epoch_ms_value(t);
		int64_t back = -1;
		if (!v || json_value_epoch_ms(v, &back) != 0 || back != t)
			bad_rt++;
		json_decref(v);
	}
	CHECK_INT(bad_rt, 0, "3000 ms values round-trip");

	/* emitting */
	json_t *o = json_object();
	CHECK_INT(json_set_epoch_ms(o, "StartTimestamp", 1704067200000LL), 0, "set whole");
	CHECK_INT(json_set_epoch_ms(o, "EndTimestamp", 1735442939457LL), 0, "set fraction");
	CHECK_INT(json_set_epoch_ms(o, "Bad", -1), -EINVAL, "negative refused");
	char *txt = json_dump_compact(o);
	CHECK_STR(txt, "{\"StartTimestamp\":1704067200,\"EndTimestamp\":1735442939.457}",
		  "emitted as epoch-second numbers");
	free(txt);
	json_decref(o);
}

static void test_fragnum(void)
{
	const char *n47 = "91343852333181432392682062607743920146159169392";
	char n128[129], n129[130];
	memset(n128, '9', 128);
	n128[128] = '\0';
	memset(n129, '1', 129);
	n129[129] = '\0';
	CHECK(json_fragnum_valid(n47), "47 digits valid");
	CHECK(json_fragnum_valid(n128), "128 digits valid");
	CHECK(!json_fragnum_valid(n129), "129 digits invalid");
	CHECK(json_fragnum_valid("0"), "0 valid");
	CHECK(json_fragnum_valid("000123"), "leading zeros valid");
	CHECK(!json_fragnum_valid(""), "empty invalid");
	CHECK(!json_fragnum_valid(NULL), "NULL invalid");
	CHECK(!json_fragnum_valid("-1"), "sign invalid");
	CHECK(!json_fragnum_valid("12a"), "letter invalid");
	CHECK(!json_fragnum_valid(" 12"), "space invalid");
	CHECK(!json_fragnum_valid("1e5"), "exponent invalid");

	CHECK(json_fragnum_cmp(n47, "91343852333181432392682062607743920146159169393") < 0,
	      "47 digits: last digit");
	CHECK(json_fragnum_cmp("91343852333181432392682062607743920146159169392",
			       "9134385233318143239268206260774392014615916939") > 0,
	      "longer is larger");
	CHECK(json_fragnum_cmp("9", "10") < 0, "9 < 10 (not lexicographic)");
	CHECK(json_fragnum_cmp("007", "7") == 0, "leading zeros ignored");
	CHECK(json_fragnum_cmp("0008", "10") < 0, "padded 8 < 10");
	CHECK(json_fragnum_cmp("0", "000") == 0, "zeros equal");
	CHECK(json_fragnum_cmp(n128, n47) > 0, "128 > 47 digits");
	CHECK(json_fragnum_cmp(n47, n47) == 0, "equal");

	json_t *j = parse("{\"FragmentNumber\":\"91343852333181432392682062607743920146159169392\","
			  "\"Bad\":\"12x\",\"Num\":12,\"Null\":null}");
	const char *s;
	CHECK_INT(json_get_fragnum(j, "FragmentNumber", &s), 0, "get fragnum");
	CHECK_STR(s, n47, "fragnum stays a string");
	CHECK_INT(json_get_fragnum(j, "Bad", &s), -EINVAL, "bad fragnum");
	CHECK_INT(json_get_fragnum(j, "Num", &s), -EINVAL, "numeric fragnum refused");
	CHECK_INT(json_get_fragnum(j, "Null", &s), -ENOENT, "null fragnum absent");
	json_decref(j);
}

int main(void)
{
	test_parse();
	test_getters();
	test_timestamps();
	test_fragnum();
	return check_done();
}
