/*
 * clock: the two clocks of the fs core (private; to be replaced by the shared util clock).
 *
 * Wall time (CLOCK_REALTIME) names things: day and hour folders, retention windows, mtimes.
 * Monotonic time (CLOCK_MONOTONIC) measures ages: how old a cached listing is, so a clock step
 * never makes a cache live forever or expire at once.
 */
#ifndef KVSFS_FS_CORE_CLOCK_H
#define KVSFS_FS_CORE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds since the epoch. */
static inline int64_t vfs_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds on the monotonic clock (only differences mean anything). */
static inline int64_t vfs_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
