/*
 * clk: monotonic and wall clocks, and sleeps that survive signals (see include/kvsfs/clk.h).
 *
 * Design: thin wrappers over clock_gettime(2) and nanosleep(2) so the rest of the code never
 * picks a clock by hand. Invariant: every duration-like use goes through the monotonic clock;
 * clk_wall_ms is the only function that reads CLOCK_REALTIME.
 */
#include "kvsfs/clk.h"

#include <errno.h>
#include <time.h>

static int64_t read_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t clk_mono_ns(void)
{
	return read_ns(CLOCK_MONOTONIC);
}

int64_t clk_mono_ms(void)
{
	return read_ns(CLOCK_MONOTONIC) / 1000000;
}

int64_t clk_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void clk_sleep_ns(int64_t ns)
{
	if (ns <= 0)
		return;
	struct timespec ts = { (time_t)(ns / 1000000000), (long)(ns % 1000000000) };
	/* nanosleep leaves the time still to sleep in ts when a signal interrupts it */
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

void clk_sleep_ms(int64_t ms)
{
	if (ms <= 0)
		return;
	if (ms > INT64_MAX / 1000000)
		ms = INT64_MAX / 1000000;
	clk_sleep_ns(ms * 1000000);
}
