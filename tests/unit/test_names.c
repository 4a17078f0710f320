/* Unit tests for fs/names: formatting and strict parsing of time-based names. */
#include <errno.h>

#include "check.h"
#include "kvsfs/names.h"

int main(void)
{
	char s[NAMES_FRAGMENT_LEN], d[NAMES_DAY_LEN], c[64];
	int64_t ms, a, b;
	const char *num;
	size_t nlen;
	int h;

	CHECK(names_format_stamp(1714564800120LL, s) == 0, "format stamp");
	CHECK_STR(s, "20240501T120000.120Z", "stamp text");
	CHECK(names_parse_stamp(s, 20, &ms) == 0 && ms == 1714564800120LL, "stamp round trip");
	CHECK(names_parse_stamp("20240501T120000Z", 16, &ms) == 0 && ms == 1714564800000LL,
	      "stamp without milliseconds");
	CHECK(names_parse_stamp("20240230T120000Z", 16, &ms) == -EINVAL, "30 February rejected");
	CHECK(names_parse_stamp("20240229T120000Z", 16, &ms) == 0, "leap day accepted");
	CHECK(names_parse_stamp("20230229T120000Z", 16, &ms) == -EINVAL, "non-leap 29 Feb rejected");
	CHECK(names_parse_stamp("20240501T240000Z", 16, &ms) == -EINVAL, "hour 24 rejected");
	CHECK(names_parse_stamp("20240501T12000aZ", 16, &ms) == -EINVAL, "letters rejected");
	CHECK(names_parse_stamp("20240501T120000.12Z", 19, &ms) == -EINVAL, "2-digit ms rejected");
	CHECK(names_parse_stamp("19691231T235959Z", 16, &ms) == -EINVAL, "before epoch rejected");
	CHECK(names_format_stamp(-1, s) == -EINVAL, "negative time rejected");
	CHECK(names_format_stamp(0, s) == 0 && strcmp(s, "19700101T000000.000Z") == 0, "epoch");

	CHECK(names_format_day(1714564800120LL, d) == 0 && strcmp(d, "2024-05-01") == 0, "day name");
	CHECK(names_parse_day("2024-05-01", &ms) == 0 && ms == 1714521600000LL, "day parse");
	CHECK(names_parse_day("2024-5-01", &ms) == -EINVAL, "short day rejected");
	CHECK(names_parse_day("2024-05-01x", &ms) == -EINVAL, "trailing garbage rejected");
	CHECK(names_parse_hour("07", &h) == 0 && h == 7, "hour parse");
	CHECK(names_parse_hour("7", &h) == -EINVAL && names_parse_hour("24", &h) == -EINVAL,
	      "bad hours rejected");

	CHECK(names_format_fragment(1714564800120LL, "913", 0, s) == 0 &&
	      strcmp(s, "20240501T120000.120Z.mkv") == 0, "fragment name");
	CHECK(names_format_fragment(1714564800120LL, "913", 1, s) == 0 &&
	      strcmp(s, "20240501T120000.120Z-913.mkv") == 0, "duplicate fragment name");
	CHECK(names_parse_fragment("20240501T120000.120Z.mkv", &ms, &num, &nlen) == 0 &&
	      ms == 1714564800120LL && nlen == 0, "fragment parse");
	CHECK(names_parse_fragment("20240501T120000.120Z-913.mkv", &ms, &num, &nlen) == 0 &&
	      nlen == 3 && strncmp(num, "913", 3) == 0, "duplicate fragment parse");
	CHECK(names_parse_fragment("20240501T120000Z.mkv", &ms, &num, &nlen) == -EINVAL,
	      "fragment without ms rejected");
	CHECK(names_parse_fragment("20240501T120000.120Z-.mkv", &ms, &num, &nlen) == -EINVAL,
	      "empty number rejected");
	CHECK(names_parse_fragment("20240501T120000.120Z-9a.mkv", &ms, &num, &nlen) == -EINVAL,
	      "non-digit number rejected");
	CHECK(names_parse_fragment("../etc/passwd", &ms, &num, &nlen) == -EINVAL, "path rejected");

	CHECK(names_parse_clip("20240501T120000Z-20240501T120500Z.mp4", &a, &b) == 0 &&
	      a == 1714564800000LL && b == 1714565100000LL, "clip parse");
	CHECK(names_parse_clip("20240501T120000.500Z-20240501T120500Z.mp4", &a, &b) == 0 &&
	      a == 1714564800500LL, "clip parse with ms");
	CHECK(names_parse_clip("20240501T120000Z-20240501T120500Z.mkv", &a, &b) == -EINVAL,
	      "clip wrong extension");
	CHECK(names_parse_clip("20240501T120000Z20240501T120500Z.mp4", &a, &b) == -EINVAL,
	      "clip without dash");
	CHECK(names_format_clip(1714564800000LL, 1714565100000LL, c) == 0 &&
	      strcmp(c, "20240501T120000Z-20240501T120500Z.mp4") == 0, "clip format");
	CHECK(names_format_clip(1714564800500LL, 1714565100000LL, c) == 0 &&
	      strcmp(c, "20240501T120000.500Z-20240501T120500.000Z.mp4") == 0, "clip format ms");
	return check_done();
}
