/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* wait.h - futex wait for a shared counter to move (wait.c). */
#ifndef SGL_WAIT_H
#define SGL_WAIT_H

#include <stdint.h>

/* CLOCK_MONOTONIC in microseconds. */
uint64_t sgl_mono_usec(void);
int sgl_wait_change(const uint32_t *word, uint32_t *seen, int64_t timeout_usec);

#endif
