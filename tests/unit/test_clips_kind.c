/*
 * Unit tests of the clip names of every kind (clips_parse_kind, clips_format): .mp4, .mkv and
 * .m3u8 share the .mp4 grammar and errnos.
 */
#include <errno.h>
#include <stdint.h>

#include "check.h"
#include "kvsfs/clips.h"

#define T0 1714564800000LL /* 2024-05-01T12:00:00Z */

int main(void)
{
	int64_t a = 0, b = 0;
	enum clips_kind k = CLIPS_MP4;
	char out[64];
	CHECK_INT(clips_parse_kind("20240501T120000Z-20240501T120500Z.mkv", &a, &b, &k), 0, ".mkv");
	CHECK_INT(k, CLIPS_MKV, "kind mkv");
	CHECK_INT(a, T0, "start");
	CHECK_INT(b, T0 + 300000, "end");
	CHECK_INT(clips_parse_kind("20240501T120000.250Z-20240501T120500Z.m3u8", &a, &b, &k), 0,
		  ".m3u8 with ms");
	CHECK_INT(k, CLIPS_M3U8, "kind m3u8");
	CHECK_INT(a, T0 + 250, "start ms");
	CHECK_INT(clips_parse_kind("20240501T120000Z-20240501T120500Z.mp4", &a, &b, &k), 0, ".mp4");
	CHECK_INT(k, CLIPS_MP4, "kind mp4");
	CHECK_INT(clips_parse_kind("20240501T120500Z-20240501T120000Z.mkv", &a, &b, &k), -EINVAL,
		  "END before START");
	CHECK_INT(clips_parse_kind("20240501T120000Z-20240502T120000.001Z.mkv", &a, &b, &k), -EFBIG,
		  "over 24 h");
	CHECK_INT(clips_parse_kind("20240501T120000Z-20240501T120500Z.mkvx", &a, &b, &k), -ENOENT,
		  "other extension");
	CHECK_INT(clips_parse_kind(".mkv", &a, &b, &k), -ENOENT, "extension alone");
	CHECK_INT(clips_parse_kind("20240501T120000Z-20240501T120500Z", &a, &b, &k), -ENOENT,
		  "no extension");
	CHECK_INT(clips_parse_kind(NULL, &a, &b, &k), -ENOENT, "NULL");
	CHECK_INT(clips_format(T0, T0 + 300000, CLIPS_MKV, out), 0, "format mkv");
	CHECK_STR(out, "20240501T120000Z-20240501T120500Z.mkv", "canonical mkv");
	CHECK_INT(clips_format(T0 + 5, T0 + 300000, CLIPS_M3U8, out), 0, "format m3u8");
	CHECK_STR(out, "20240501T120000.005Z-20240501T120500.000Z.m3u8", "canonical m3u8 with ms");
	CHECK_INT(clips_parse_kind("20240501T120000Z-20240501T120500Z.mpd", &a, &b, &k), 0, ".mpd");
	CHECK_INT(k, CLIPS_MPD, "kind mpd");
	CHECK_INT(clips_format(T0, T0, (enum clips_kind)7, out), -EINVAL, "bad kind");
	return check_done();
}
