/*
 * names: the textual names of the tree, all UTC, ISO 8601 basic form without colons.
 *
 *   day folder       YYYY-MM-DD
 *   hour folder      HH                      (00..23)
 *   fragment file    YYYYMMDDTHHMMSS.mmmZ.mkv
 *                    YYYYMMDDTHHMMSS.mmmZ-<fragment number>.mkv  for every fragment that shares
 *                    its start millisecond with a fragment of lower number (see docs/SEMANTICS.md)
 *   clip file        START-END.mp4 with START/END = YYYYMMDDTHHMMSS[.mmm]Z
 *
 * Parsing is strict: exact widths, digits only, valid calendar dates and times; anything else is
 * rejected (-EINVAL), so two different names never denote the same object. All functions are
 * pure and thread-safe. Times are int64 milliseconds since the epoch, >= 0.
 */
#ifndef KVSFS_NAMES_H
#define KVSFS_NAMES_H

#include <stddef.h>
#include <stdint.h>

#define NAMES_MS_PER_HOUR 3600000LL
#define NAMES_MS_PER_DAY 86400000LL

/* Buffer sizes that always suffice. */
#define NAMES_DAY_LEN 11       /* "YYYY-MM-DD" + NUL */
#define NAMES_FRAGMENT_LEN 200 /* stamp + '-' + 128 digits + ".mkv" + NUL */
#define NAMES_STAMP_LEN 21     /* "YYYYMMDDTHHMMSS.mmmZ" + NUL */

/* "YYYYMMDDTHHMMSS.mmmZ" for ms. Returns 0 or -EINVAL (negative or beyond year 9999). */
int names_format_stamp(int64_t ms, char out[NAMES_STAMP_LEN]);
/* Parses "YYYYMMDDTHHMMSS[.mmm]Z" (the milliseconds optional) from s[0..len). 0 or -EINVAL. */
int names_parse_stamp(const char *s, size_t len, int64_t *ms);

/* Day folder name of the UTC day containing ms. */
int names_format_day(int64_t ms, char out[NAMES_DAY_LEN]);
/* Parses "YYYY-MM-DD" into the ms of that day's midnight. 0 or -EINVAL. */
int names_parse_day(const char *s, int64_t *day_ms);
/* Parses "HH" (00..23) into hours. 0 or -EINVAL. */
int names_parse_hour(const char *s, int *hour);

/* Fragment file name; number is appended when dup is non-zero. Returns 0 or -EINVAL. */
int names_format_fragment(int64_t start_ms, const char *number, int dup, char out[NAMES_FRAGMENT_LEN]);
/* Parses a fragment file name: start time, and the number suffix if any (*number points into s,
 * *number_len its length, 0 when absent). Returns 0 or -EINVAL. */
int names_parse_fragment(const char *s, int64_t *start_ms, const char **number, size_t *number_len);

/* Parses "START-END.mp4". Returns 0 or -EINVAL (END before START is NOT checked here). */
int names_parse_clip(const char *s, int64_t *start_ms, int64_t *end_ms);
/* Formats a clip name with milliseconds when either end has them. out needs 64 bytes. */
int names_format_clip(int64_t start_ms, int64_t end_ms, char out[64]);

#endif
