/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * writer.c - the soak's writer: publishes SOAK_AREA PERSIST to sigillod
 * (taking over from its SIGKILLed predecessor), with small segments and
 * low GC thresholds so that compaction runs all the time, and commits
 * batches of updates of stable ids, volatile ids with short TTLs, deletes
 * and anonymous chunks; once a second a checkpoint chunk lists the
 * generation of every stable id it committed, which readers check their
 * view against.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sigillo.h"
#include "soak.h"

static uint8_t buf[sizeof(struct soak_chunk) + 4096];

static int put(sgl_writer *w, uint64_t id, uint64_t expire_ns, uint32_t len) {
        struct soak_chunk *h = (struct soak_chunk *)buf;
        uint64_t ret_id;
        int r;

        *h = (struct soak_chunk) { .magic = SOAK_MAGIC, .id = id, .gen = soak_now_ns(), .len = len };
        soak_fill(h, buf + sizeof(*h));
        /* an anonymous chunk's id is the writer's: the pattern names 0 */
        r = sgl_writer_write(w, id, expire_ns, buf, sizeof(*h) + len, &ret_id);
        return r < 0 ? r : 0;
}

static int publish(sgl_writer *w) {
        /* the predecessor's connection may not be gone yet: the daemon
         * refuses a second writer until it is */
        for (int i = 0; i < 100; i++) {
                int r = sgl_writer_publish(w, SOAK_AREA, soak_address, SGL_PUBLISH_PERSIST,
                                           0444, NULL, 0, NULL, 0);
                if (r == 0)
                        return 0;
                if (r != -EBUSY && r != -EADDRINUSE && r != -EAGAIN && r != -ECONNREFUSED)
                        return r;
                usleep(50000);
        }
        return -ETIMEDOUT;
}

void soak_writer_main(uint64_t seed) {
        static struct soak_pair model[SOAK_STABLE + 1];
        sgl_writer *w = NULL;
        sgl_writer_stats st, last = { 0 };
        uint64_t rnd = seed, next_ckpt = soak_now_ns() + 1000000000ULL;
        int r;

        r = sgl_writer_new(SOAK_AREA, 0, &w);
        if (r >= 0)
                r = sgl_writer_set_segment_size(w, 64 * 1024);
        if (r >= 0)
                r = sgl_writer_set_seal_policy(w, SGL_SEAL_USEC, 20000);
        if (r >= 0)
                r = sgl_writer_set_gc(w, 20, 8192, 32);
        if (r >= 0)
                r = publish(w);
        if (r < 0) {
                soak_error("writer", "start", r);
                sgl_writer_unref(w);
                exit(1);
        }
        atomic_fetch_add(&soak->takeovers, 1);

        while (!soak_stop) {
                unsigned n = 1 + soak_rand(&rnd) % 4;

                for (unsigned i = 0; i < n && r >= 0; i++) {
                        unsigned op = soak_rand(&rnd) % 100;
                        uint32_t len = soak_rand(&rnd) % 2048;

                        if (op < 40) {
                                uint64_t id = 1 + soak_rand(&rnd) % SOAK_STABLE;
                                r = put(w, id, 0, len);
                                if (r >= 0) {
                                        struct soak_chunk *h = (struct soak_chunk *)buf;
                                        model[id] = (struct soak_pair) { id, h->gen };
                                        atomic_fetch_add(&soak->updates, 1);
                                }
                        } else if (op < 60) {
                                uint64_t id = SOAK_VOLATILE_BASE + soak_rand(&rnd) % SOAK_VOLATILE_N;
                                r = put(w, id, sgl_now_ns() + 20000000ULL * (1 + soak_rand(&rnd) % 25), len);
                                atomic_fetch_add(&soak->expiring, 1);
                        } else if (op < 75) {
                                uint64_t id = SOAK_VOLATILE_BASE + soak_rand(&rnd) % SOAK_VOLATILE_N;
                                r = put(w, id, 0, len);
                                atomic_fetch_add(&soak->updates, 1);
                        } else if (op < 85) {
                                r = sgl_writer_delete(w, SOAK_VOLATILE_BASE +
                                                         soak_rand(&rnd) % SOAK_VOLATILE_N);
                                if (r == -ENOENT)
                                        r = 0; /* never written, or expired */
                                else if (r >= 0)
                                        atomic_fetch_add(&soak->deletes, 1);
                                continue;
                        } else {
                                r = put(w, 0, 0, len);
                                atomic_fetch_add(&soak->anonymous, 1);
                        }
                        if (r >= 0)
                                atomic_fetch_add(&soak->chunks, 1);
                }
                if (r >= 0)
                        r = sgl_writer_commit(w);
                if (r >= 0)
                        atomic_fetch_add(&soak->commits, 1);

                if (r >= 0 && soak_now_ns() >= next_ckpt) {
                        struct soak_chunk *h = (struct soak_chunk *)buf;
                        struct soak_pair *p = (struct soak_pair *)(buf + sizeof(*h));
                        uint32_t k = 0;
                        uint64_t id;

                        for (uint64_t i = 1; i <= SOAK_STABLE; i++)
                                if (model[i].id)
                                        p[k++] = model[i];
                        *h = (struct soak_chunk) { .magic = SOAK_MAGIC, .id = SOAK_CHECKPOINT_ID,
                                                   .gen = soak_now_ns(),
                                                   .len = k * (uint32_t)sizeof(*p) };
                        soak_fill(h, p);
                        r = sgl_writer_write(w, SOAK_CHECKPOINT_ID, 0, buf, sizeof(*h) + h->len, &id);
                        if (r >= 0)
                                r = sgl_writer_commit(w);
                        if (r >= 0)
                                atomic_fetch_add(&soak->checkpoints, 1);
                        next_ckpt = soak_now_ns() + 1000000000ULL;
                }
                if (r >= 0)
                        r = sgl_writer_tick(w);
                if (r >= 0) {
                        r = sgl_writer_publish_process(w);
                        if (r > 0)
                                r = 0;
                }
                if (r >= 0 && sgl_writer_get_stats(w, &st) >= 0) {
                        atomic_fetch_add(&soak->gc_runs, st.gc_runs - last.gc_runs);
                        atomic_fetch_add(&soak->seals, st.seals + st.seal_copies -
                                                       last.seals - last.seal_copies);
                        last = st;
                }
                if (r < 0) {
                        /* the daemon ended the publication (a quota): a
                         * new writer takes over, as after a crash */
                        soak_error("writer", "commit or publish", r);
                        sgl_writer_abort(w);
                        if (sgl_writer_publish_process(w) < 0)
                                break;
                        r = 0;
                }
                /* a steady rate, not a CPU hog: the machine is shared */
                usleep(500);
        }
        sgl_writer_unref(w);
        exit(soak_stop ? 0 : 1);
}
