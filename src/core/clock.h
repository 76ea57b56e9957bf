/*
 * The monotonic clock in nanoseconds: time stamps, intervals and deadlines
 * (CLOCK_MONOTONIC, the clock Python's time.monotonic() reads too).
 */
#ifndef POCKETVM_CLOCK_H
#define POCKETVM_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

#endif
