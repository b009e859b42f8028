/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * util.c - futex waits, the clock, the payload and its checksum, and a
 * process's memory from /proc/self/smaps_rollup.
 */
#include <errno.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

uint64_t now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int futex_wait_u32(_Atomic uint32_t *w, uint32_t val, long timeout_us) {
        struct timespec ts = { timeout_us / 1000000, (timeout_us % 1000000) * 1000 };

        if (syscall(SYS_futex, w, FUTEX_WAIT, val, timeout_us >= 0 ? &ts : NULL, NULL, 0) < 0)
                return -errno;
        return 0;
}

void futex_wake_all(_Atomic uint32_t *w) {
        syscall(SYS_futex, w, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

/* seq_cst on both sides (progress store / waiters load, waiters store /
 * condition load): one of them sees the other, so no wake-up is lost. */
void waitq_signal(struct waitq *q) {
        if (atomic_load(&q->waiters) != 0) {
                atomic_fetch_add(&q->seq, 1);
                futex_wake_all(&q->seq);
        }
}

uint32_t waitq_prepare(struct waitq *q) {
        atomic_fetch_add(&q->waiters, 1);
        return atomic_load(&q->seq);
}

void waitq_sleep(struct waitq *q, uint32_t seen, long timeout_us) {
        futex_wait_u32(&q->seq, seen, timeout_us);
}

void waitq_finish(struct waitq *q) {
        atomic_fetch_sub(&q->waiters, 1);
}

/* ------------------------------------------------------------ payload */

const uint64_t *bench_src;
static size_t src_words;

void payload_init(size_t max_size) {
        uint64_t *v, x = 0x9e3779b97f4a7c15u;

        src_words = max_size / 8;
        v = malloc(src_words * 8);
        if (!v) {
                fprintf(stderr, "sigillo-bench: out of memory\n");
                exit(1);
        }
        for (size_t k = 0; k < src_words; k++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                v[k] = x;
        }
        bench_src = v;
}

uint64_t payload_sum(const void *data, size_t size) {
        const uint64_t *w = data;
        uint64_t a = 0, b = 0, c = 0, d = 0;
        size_t n = size / 8, k = 0;

        /* four lanes: the reader reads at memory speed, not adder speed */
        for (; k + 4 <= n; k += 4) {
                a += w[k];
                b += w[k + 1];
                c += w[k + 2];
                d += w[k + 3];
        }
        for (; k < n; k++)
                a += w[k];
        return a + b + c + d;
}

/* sum of the source's words 1..size/8-1, remembered for the last few sizes */
uint64_t payload_expect(uint64_t seq, size_t size) {
        static struct {
                size_t size;
                uint64_t sum;
        } memo[8];
        static unsigned next;

        for (unsigned i = 0; i < 8; i++)
                if (memo[i].size == size)
                        return seq + memo[i].sum;
        memo[next % 8].size = size;
        memo[next % 8].sum = payload_sum(bench_src, size) - bench_src[0];
        return seq + memo[next++ % 8].sum;
}

/* ------------------------------------------------------------- memory */

int mem_self(struct mem *m) {
        char line[256];
        FILE *f = fopen("/proc/self/smaps_rollup", "re");
        unsigned long long v;

        memset(m, 0, sizeof(*m));
        if (!f)
                return -errno;
        while (fgets(line, sizeof(line), f)) {
                if (sscanf(line, "Rss: %llu kB", &v) == 1)
                        m->rss = v;
                else if (sscanf(line, "Pss: %llu kB", &v) == 1)
                        m->pss = v;
                else if (sscanf(line, "Shared_Clean: %llu kB", &v) == 1 ||
                         sscanf(line, "Shared_Dirty: %llu kB", &v) == 1)
                        m->shared += v;
        }
        fclose(f);
        return 0;
}

/* ---------------------------------------------------------------- stats */

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

/* linear interpolation between the closest ranks; sorts @v */
double stats_percentile(double *v, size_t n, double p) {
        double pos, frac;
        size_t i;

        if (n == 0)
                return 0;
        qsort(v, n, sizeof(*v), cmp_double);
        pos = p * (double)(n - 1);
        i = (size_t)pos;
        frac = pos - (double)i;
        if (i + 1 >= n)
                return v[n - 1];
        return v[i] + (v[i + 1] - v[i]) * frac;
}
