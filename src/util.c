/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* util.c - small public utilities that belong to no object. */
#include <time.h>

#include "internal.h"

/**
 * sgl_now_ns() - the current CLOCK_REALTIME in nanoseconds, the clock of
 * chunk expiry times.
 *
 * Return: nanoseconds since the epoch.
 */
_public_ uint64_t sgl_now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}
