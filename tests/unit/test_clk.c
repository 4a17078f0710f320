/*
 * Unit tests for util/clk: the monotonic clock never goes back, the two clocks agree in unit,
 * wall time is the epoch time, and sleeps last their whole duration even when a signal
 * interrupts them (only lower bounds are asserted: a loaded machine may sleep longer).
 */
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "check.h"
#include "kvsfs/clk.h"

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

int main(void)
{
	int64_t a = clk_mono_ms(), prev = a, back = 0;
	for (int i = 0; i < 100000; i++) {
		int64_t t = clk_mono_ms();
		back |= t < prev;
		prev = t;
	}
	CHECK(!back, "monotonic milliseconds never decrease");
	int64_t ns = clk_mono_ns(), ms = clk_mono_ms();
	CHECK(ms >= ns / 1000000, "ns and ms share one origin");

	time_t w0 = time(NULL);
	int64_t wall = clk_wall_ms();
	time_t w1 = time(NULL);
	CHECK(wall / 1000 >= w0 && wall / 1000 <= w1 + 1, "wall ms is the epoch time");

	int64_t t0 = clk_mono_ms();
	clk_sleep_ms(30);
	CHECK(clk_mono_ms() - t0 >= 30, "sleep lasts at least its duration");
	t0 = clk_mono_ms();
	clk_sleep_ms(0);
	clk_sleep_ms(-5);
	clk_sleep_ns(-1);
	CHECK(clk_mono_ms() - t0 < 1000, "non-positive sleeps return");

	/* a signal without SA_RESTART interrupts nanosleep: the sleep must go on */
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = { { 0, 5000 }, { 0, 5000 } }; /* every 5 ms */
	setitimer(ITIMER_REAL, &it, NULL);
	t0 = clk_mono_ms();
	clk_sleep_ms(60);
	int64_t slept = clk_mono_ms() - t0;
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	setitimer(ITIMER_REAL, &off, NULL);
	CHECK(alarms > 0, "signals arrived during the sleep (%d)", (int)alarms);
	CHECK(slept >= 60, "interrupted sleep still lasts 60 ms (slept %lld)", (long long)slept);
	t0 = clk_mono_ns();
	clk_sleep_ns(2000000);
	CHECK(clk_mono_ns() - t0 >= 2000000, "nanosecond sleep");
	return check_done();
}
