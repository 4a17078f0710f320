/*
 * decsec: the one parser of decimal seconds ("1511852109.126") into integer milliseconds, exact
 * (integer arithmetic only, no floating point), for every place that reads such text from
 * outside: KVS tag values in MKV fragments, the AWS_METADATA_SERVICE_TIMEOUT setting, and S3
 * object metadata times.
 *
 * Grammar, strict by default (anything else is -EINVAL):
 *     [ "-" ] DIGIT+ [ "." DIGIT+ ]
 *   - ASCII digits only: no '+', no exponent, no hex, no "inf"/"nan", no leading ".5".
 *   - "-" is accepted only with DECSEC_NEGATIVE.
 *   - DECSEC_LENIENT also accepts spaces (' ' only) before and after the number and a point
 *     with no digits after it ("5." is 5000): the forms seen in KVS tag values.
 * Rounding: the result is the number of whole milliseconds. Digits past the third fractional
 *   digit are dropped (rounding toward zero: "1.2349" -> 1234, "-1.2349" -> -1234), unless
 *   DECSEC_ROUND_UP, which rounds the magnitude up when any dropped digit is not 0
 *   ("5.0001" -> 5001, "-5.0001" -> -5001), as KVS's own parser library does.
 * Range: the magnitude in milliseconds, after rounding, must be at most INT64_MAX, else -ERANGE
 *   (so -9223372036854775.808 is refused although INT64_MIN exists). The grammar is checked
 *   first: "99999999999999999999x" is -EINVAL, "99999999999999999999" is -ERANGE.
 * Any number of digits is accepted (leading zeros, long fractions); the input is read once.
 */
#ifndef KVSFS_DECSEC_H
#define KVSFS_DECSEC_H

#include <stdint.h>

#define DECSEC_NEGATIVE 0x1u  /* accept a leading '-' */
#define DECSEC_ROUND_UP 0x2u  /* round the magnitude up instead of dropping extra digits */
#define DECSEC_LENIENT 0x4u   /* accept surrounding spaces and a bare trailing point */

/*
 * Parses the NUL-terminated s (flags: DECSEC_* or 0) into *ms. Returns 0, -EINVAL (s is NULL or
 * not in the grammar) or -ERANGE (too large). *ms is written only on success.
 */
int decsec_parse_ms(const char *s, unsigned flags, int64_t *ms);

#endif
