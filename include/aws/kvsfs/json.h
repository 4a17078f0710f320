/*
 * json: helpers over jansson for the shapes KVS and the AWS JSON APIs use.
 *
 * - Parsing is bounded (json_parse_object refuses documents larger than a limit) and only accepts
 *   a top-level object. Integers that do not fit in 64 bits make the document invalid (jansson).
 * - Getters treat an explicit JSON null exactly like an absent key (the real service sends
 *   "DeviceName":null) and never fail on unknown keys (callers just do not ask for them).
 *   They return 0 (found, *out set), -ENOENT (absent or null) or -EINVAL (wrong type or invalid
 *   value; *out untouched) so callers can tell "optional and missing" from "malformed".
 * - Timestamps: KVS sends epoch SECONDS as JSON numbers in any form: 1704067200, 1704067200.5,
 *   1.735442939457E9. They are converted to int64 MILLISECONDS exactly by a decimal parser of the
 *   number text (json_epoch_text_to_ms), rounding sub-millisecond digits half up. jansson does not
 *   keep the text of a real, so for reals the shortest text that round-trips the double (at most
 *   17 significant digits, normally the text the server sent) is rebuilt and parsed: any value
 *   with up to 15 significant digits, i.e. every millisecond timestamp before year 33658, comes out
 *   exact (1.735442939457E9 -> 1735442939457). Negative, non-finite and out-of-range values
 *   (beyond INT64_MAX ms) are -ERANGE.
 *   Emitted timestamps are JSON numbers in epoch seconds: an integer when whole, else a real
 *   with millisecond precision (dump with json_dump_compact so it prints as 1735442939.457).
 * - Fragment numbers are strings of 1..128 decimal digits (47 digits in practice), far beyond 64
 *   bits: they stay strings, are validated with json_fragnum_valid and compared as unsigned big
 *   integers by json_fragnum_cmp (leading zeros stripped, then by length, then bytewise).
 *
 * Thread-safety: no shared state; jansson values must not be shared between threads while one
 * of them modifies them.
 */
#ifndef KVSFS_JSON_H
#define KVSFS_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_FRAGNUM_MAX 128          /* longest valid fragment number, in digits */
#define JSON_DEFAULT_MAX_DOC (16u << 20) /* default size limit for json_parse_object */

/*
 * Parses text (len bytes, need not be NUL-terminated) that must hold one JSON object.
 * max_len: refuse longer input (0: JSON_DEFAULT_MAX_DOC). On success returns 0 and *out (a new
 * reference the caller releases with json_decref). Errors: -EFBIG (too long), -EBADMSG (syntax
 * error, not an object, NUL bytes, integer overflow), -ENOMEM. When err is not NULL it receives a
 * short reason with line/column (never the document's content), always NUL-terminated.
 */
int json_parse_object(const void *text, size_t len, size_t max_len, json_t **out,
		      char *err, size_t err_n);

/* Getters on an object (obj may be NULL or not an object: then -EINVAL). See the top comment for
 * the 0 / -ENOENT / -EINVAL convention. Returned pointers are owned by obj. */
int json_get_str(const json_t *obj, const char *key, const char **out);
/* Integer: a JSON integer, or a real with an integral value that fits in int64. */
int json_get_int(const json_t *obj, const char *key, int64_t *out);
/* Any JSON number as a double. */
int json_get_number(const json_t *obj, const char *key, double *out);
/* true/false. */
int json_get_bool(const json_t *obj, const char *key, int *out);
/* A nested object / array (borrowed reference). */
int json_get_object(const json_t *obj, const char *key, json_t **out);
int json_get_array(const json_t *obj, const char *key, json_t **out);
/* Epoch-seconds number -> milliseconds. -ERANGE for negative/huge values, -EINVAL for non-numbers
 * (a numeric string is also -EINVAL: KVS sends numbers). */
int json_get_epoch_ms(const json_t *obj, const char *key, int64_t *out);
/* A fragment number string, validated (json_fragnum_valid), else -EINVAL. */
int json_get_fragnum(const json_t *obj, const char *key, const char **out);

/* Converts one JSON number value (integer or real) holding epoch seconds to milliseconds.
 * Returns 0, -EINVAL (not a number) or -ERANGE. */
int json_value_epoch_ms(const json_t *v, int64_t *out);

/*
 * Converts the text of a JSON number (len bytes: -?int(.frac)?([eE][+-]?exp)?, strict JSON
 * grammar) holding epoch seconds into milliseconds, exactly, rounding digits below the
 * millisecond half up. Returns 0, -EINVAL (not a JSON number) or -ERANGE (negative or beyond
 * INT64_MAX ms; "-0" is 0).
 */
int json_epoch_text_to_ms(const char *text, size_t len, int64_t *out);

/* A new JSON number for an epoch-milliseconds time, in seconds: an integer when ms is a whole
 * second, else a real (ms / 1000). NULL when ms < 0 or out of memory. Caller owns the reference. */
json_t *json_epoch_ms_value(int64_t ms);
/* Sets obj[key] to json_epoch_ms_value(ms). Returns 0, -EINVAL (ms < 0, obj not an object) or
 * -ENOMEM. */
int json_set_epoch_ms(json_t *obj, const char *key, int64_t ms);

/* Serialises compactly with reals at 15 significant digits (1735442939.457, not ...4570000171).
 * Returns a malloc'd string the caller frees with free(), or NULL when out of memory. */
char *json_dump_compact(const json_t *v);

/* 1 when s matches ^[0-9]{1,128}$, else 0 (NULL is invalid). */
int json_fragnum_valid(const char *s);
/* Compares two VALID fragment numbers as unsigned big integers: <0, 0, >0. Leading zeros are
 * ignored ("007" == "7"). */
int json_fragnum_cmp(const char *a, const char *b);

#endif
