/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * wait.c - blocking until a shared counter moves (futex on a read-only
 * shared mapping: FUTEX_WAIT only reads the word, so a reader needs no write
 * access, and the writer's FUTEX_WAKE wakes every waiter).
 *
 * Invariant: no single FUTEX_WAIT lasts longer than SGL_WAIT_SLICE_USEC.
 * FUTEX_CMP_REQUEUE also needs only read access, so a hostile reader can
 * move other readers' waiters to a futex of its own, where the writer's
 * wake never reaches them.  Sleeping in slices and re-checking the counter
 * bounds what that costs an honest reader: a delay of one slice, never a
 * lost wake-up.
 */
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>

#include "internal.h"
#include "wait.h"

#define SGL_WAIT_SLICE_USEC 100000

uint64_t sgl_mono_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/*
 * sgl_wait_change() - returns 0 as soon as *@word differs from *@seen (and
 * stores the new value in *@seen), -ETIMEDOUT after @timeout_usec (< 0:
 * forever, 0: just check), -EINTR on a signal.
 */
int sgl_wait_change(const uint32_t *word, uint32_t *seen, int64_t timeout_usec) {
        uint64_t deadline = 0;

        if (timeout_usec > 0)
                deadline = sgl_mono_usec() + (uint64_t)timeout_usec;
        for (;;) {
                uint32_t now = __atomic_load_n(word, __ATOMIC_ACQUIRE);
                uint64_t slice = SGL_WAIT_SLICE_USEC;
                struct timespec ts;
                long r;

                if (now != *seen) {
                        *seen = now;
                        return 0;
                }
                if (timeout_usec == 0)
                        return -ETIMEDOUT;
                if (timeout_usec > 0) {
                        uint64_t t = sgl_mono_usec();
                        if (t >= deadline)
                                return -ETIMEDOUT;
                        slice = MIN(slice, deadline - t);
                }
                ts.tv_sec = (time_t)(slice / 1000000);
                ts.tv_nsec = (long)(slice % 1000000) * 1000;
                r = syscall(SYS_futex, word, FUTEX_WAIT, now, &ts, NULL, 0);
                if (r < 0 && errno == EINTR)
                        return -EINTR;
                if (r < 0 && errno != EAGAIN && errno != ETIMEDOUT)
                        return sgl_negerrno();
        }
}
