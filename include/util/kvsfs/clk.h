/*
 * clk: the process's two clocks and a sleep, in one place.
 *
 *   - Monotonic time (CLOCK_MONOTONIC): for every TTL, deadline, timeout, elapsed time and rate
 *     window. It never jumps when the wall clock is set, so a cache entry cannot live for days
 *     or expire at once because an administrator or NTP moved the date.
 *   - Wall time (CLOCK_REALTIME, milliseconds since the Unix epoch): only where a wall-clock
 *     timestamp is meant, i.e. compared with or shown as a date (credential expirations sent by
 *     a server, file times, signing dates).
 *   - Sleeps last the whole duration: a signal that interrupts nanosleep (EINTR) does not cut
 *     them short.
 *
 * The module is named clk, not clock: POSIX reserves the clock_ prefix for <time.h>.
 * Stateless and thread-safe; nothing here can fail (the clocks used always exist on Linux).
 */
#ifndef KVSFS_CLK_H
#define KVSFS_CLK_H

#include <stdint.h>

/* Monotonic milliseconds (arbitrary origin; only differences mean something). */
int64_t clk_mono_ms(void);
/* Monotonic nanoseconds, same origin as clk_mono_ms() * 1000000. */
int64_t clk_mono_ns(void);
/* Wall-clock milliseconds since 1970-01-01 00:00:00 UTC. */
int64_t clk_wall_ms(void);
/* Sleeps ms milliseconds (returns at once for ms <= 0), resuming after signals. */
void clk_sleep_ms(int64_t ms);
/* Sleeps ns nanoseconds (returns at once for ns <= 0), resuming after signals. */
void clk_sleep_ns(int64_t ns);

#endif
