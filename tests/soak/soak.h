/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * soak.h - what the soak's processes share: the counters (one MAP_SHARED
 * page made before the first fork, so a SIGKILLed process's counts
 * survive it), the chunk pattern, and each role's entry point.
 */
#ifndef SGL_SOAK_H
#define SGL_SOAK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SOAK_AREA "soak.area"
#define SOAK_STABLE 64               /* ids 1..64: updated, never deleted */
#define SOAK_VOLATILE_BASE 1000      /* ids 1000..1255: TTLs and deletes */
#define SOAK_VOLATILE_N 256
#define SOAK_CHECKPOINT_ID 900       /* the writer's model, once a second */
#define SOAK_MAGIC 0x4b414f534f4c4753ULL

struct soak_counters {
        atomic_ullong commits, chunks, updates, deletes, expiring, anonymous, gc_runs,
                checkpoints, takeovers, seals;
        atomic_ullong verified, checks, lost, corrupt, reopens;
        atomic_ullong hostile_garbage, hostile_wrong_fd, hostile_flood, hostile_silent,
                hostile_refused_open;
        atomic_ullong errors;        /* unexpected */
        atomic_ullong kills_reader, kills_writer;
};

extern struct soak_counters *soak;
extern const char *soak_address;

/* The chunk: this header, then len bytes derived from (id, gen). */
struct soak_chunk {
        uint64_t magic;
        uint64_t id;
        uint64_t gen;                /* CLOCK_MONOTONIC ns at write: grows
                                      * across writers */
        uint32_t len;
        uint32_t sum;
};

/* A checkpoint's body: (id, gen) of every stable id this writer wrote. */
struct soak_pair {
        uint64_t id, gen;
};

uint64_t soak_now_ns(void);
uint32_t soak_rand(uint64_t *state);
void soak_fill(struct soak_chunk *h, void *body);
bool soak_check(const void *data, size_t size);
void soak_error(const char *who, const char *what, int err);

void soak_writer_main(uint64_t seed) __attribute__((noreturn));
void soak_reader_main(bool trusted, uint64_t seed) __attribute__((noreturn));
void soak_hostile_main(uint64_t seed) __attribute__((noreturn));

/* set by SIGTERM in the children: finish cleanly */
extern volatile int soak_stop;

#endif
