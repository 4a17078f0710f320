/*
 * check.h: a tiny TAP producer for the C unit tests (meson runs them with protocol 'tap').
 * CHECK* macros record one test point each; check_done() prints the plan and returns the exit code.
 * Header-only on purpose: each unit test is one executable.
 */
#ifndef KVSFS_TEST_CHECK_H
#define KVSFS_TEST_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_count_, check_failed_;

static inline void check_point_(int ok, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static inline void check_point_(int ok, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	check_count_++;
	if (!ok)
		check_failed_++;
	printf("%s %d - ", ok ? "ok" : "not ok", check_count_);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	if (!ok)
		printf(" (%s:%d)", file, line);
	printf("\n");
	fflush(stdout);
}

#define CHECK(cond, ...) check_point_(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

#define CHECK_STR(got, want, ...) do { \
		const char *g_ = (got), *w_ = (want); \
		int ok_ = g_ && w_ && strcmp(g_, w_) == 0; \
		if (!ok_) \
			printf("# got:  %s\n# want: %s\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)"); \
		CHECK(ok_, __VA_ARGS__); \
	} while (0)

#define CHECK_INT(got, want, ...) do { \
		long long g_ = (long long)(got), w_ = (long long)(want); \
		if (g_ != w_) \
			printf("# got: %lld want: %lld\n", g_, w_); \
		CHECK(g_ == w_, __VA_ARGS__); \
	} while (0)

static inline int check_done(void)
{
	printf("1..%d\n", check_count_);
	if (check_failed_)
		printf("# %d of %d failed\n", check_failed_, check_count_);
	return check_failed_ ? 1 : 0;
}

#endif
