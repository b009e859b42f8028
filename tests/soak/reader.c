/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * reader.c - a soak reader (STRICT or TRUSTED) of SOAK_AREA through
 * sigillod: verifies every chunk it reads against its pattern, holds some
 * chunks for a while and verifies them again before letting go (sealed
 * bytes never change), and checks that nothing committed is lost: the
 * generation it last saw of each stable id, and the one each checkpoint
 * lists, must still be there (sgl_reader_get(), same or newer), across
 * writer takeovers and GC.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sigillo.h"
#include "soak.h"

#define HOLD 16

static uint64_t seen[SOAK_STABLE + 1];    /* newest gen seen per stable id */
static sgl_chunk *held[HOLD];

static uint64_t gen_of(const sgl_chunk *c) {
        const struct soak_chunk *h = sgl_chunk_data(c);
        return h->gen;
}

/* One stable id must be there with a generation >= @gen. */
static void expect_at_least(sgl_reader *r, uint64_t id, uint64_t gen) {
        sgl_chunk *c = NULL;
        int k = sgl_reader_get(r, id, &c);

        atomic_fetch_add(&soak->checks, 1);
        if (k < 0 || !soak_check(sgl_chunk_data(c), sgl_chunk_size(c)) || gen_of(c) < gen) {
                fprintf(stderr, "soak: reader %d: stable id %llu: %s (wanted gen >= %llu, got %llu)\n",
                        (int)getpid(), (unsigned long long)id, k < 0 ? strerror(-k) : "older or bad",
                        (unsigned long long)gen, c ? (unsigned long long)gen_of(c) : 0ULL);
                atomic_fetch_add(&soak->lost, 1);
        }
        sgl_chunk_unref(c);
}

static void check_all(sgl_reader *r) {
        for (uint64_t id = 1; id <= SOAK_STABLE; id++)
                if (seen[id])
                        expect_at_least(r, id, seen[id]);
}

static void take(sgl_reader *r, sgl_chunk *c, uint64_t *rnd) {
        const struct soak_chunk *h = sgl_chunk_data(c);
        size_t size = sgl_chunk_size(c);
        unsigned slot;

        if (!soak_check(h, size) || (h->id && h->id != sgl_chunk_id(c) && h->id != 0)) {
                fprintf(stderr, "soak: reader %d: chunk %llu: bad content\n", (int)getpid(),
                        (unsigned long long)sgl_chunk_id(c));
                atomic_fetch_add(&soak->corrupt, 1);
                sgl_chunk_unref(c);
                return;
        }
        atomic_fetch_add(&soak->verified, 1);
        if (h->id >= 1 && h->id <= SOAK_STABLE && h->gen > seen[h->id])
                seen[h->id] = h->gen;
        if (h->id == SOAK_CHECKPOINT_ID) {
                const struct soak_pair *p = (const void *)(h + 1);

                for (size_t i = 0; i < h->len / sizeof(*p); i++)
                        if (p[i].id >= 1 && p[i].id <= SOAK_STABLE)
                                expect_at_least(r, p[i].id, p[i].gen);
        }
        /* hold some: they must read the same when let go */
        slot = soak_rand(rnd) % (HOLD * 4);
        if (slot < HOLD) {
                if (held[slot] && !soak_check(sgl_chunk_data(held[slot]), sgl_chunk_size(held[slot])))
                        atomic_fetch_add(&soak->corrupt, 1);
                sgl_chunk_unref(held[slot]);
                held[slot] = c;
        } else {
                sgl_chunk_unref(c);
        }
}

static sgl_reader *open_reader(bool trusted) {
        sgl_reader *r = NULL;

        while (!soak_stop) {
                int k = sgl_reader_open(SOAK_AREA, soak_address, trusted ? SGL_READER_TRUSTED : 0, &r);
                if (k == 0)
                        return r;
                if (k != -ENOENT && k != -ECONNRESET && k != -ETIMEDOUT)
                        soak_error("reader", "open", k);
                usleep(50000);
        }
        return NULL;
}

void soak_reader_main(bool trusted, uint64_t seed) {
        uint64_t rnd = seed, next_check = soak_now_ns();
        sgl_reader *r = open_reader(trusted);

        while (r && !soak_stop) {
                struct pollfd pf = { .fd = sgl_reader_get_fd(r), .events = POLLIN };
                sgl_chunk *c = NULL;
                int k;

                if (pf.fd >= 0)
                        (void)poll(&pf, 1, 100);
                k = sgl_reader_process(r);
                for (int n = 0; n < 4096; n++) {
                        int e = sgl_reader_next(r, &c);

                        if (e == -EAGAIN)
                                break;
                        if (e < 0) {
                                /* -EBADMSG: a corrupt segment; none may be */
                                if (e == -EBADMSG)
                                        atomic_fetch_add(&soak->corrupt, 1);
                                else
                                        soak_error("reader", "next", e);
                                continue;
                        }
                        take(r, c, &rnd);
                        c = NULL;
                }
                if (soak_now_ns() >= next_check) {
                        check_all(r);
                        next_check = soak_now_ns() + 500000000ULL;
                }
                if (k < 0) {
                        /* the daemon ended the connection: what we saw
                         * must be there again through a new one */
                        sgl_reader_unref(r);
                        atomic_fetch_add(&soak->reopens, 1);
                        r = open_reader(trusted);
                        if (r)
                                check_all(r);
                }
        }
        if (r)
                check_all(r);
        for (unsigned i = 0; i < HOLD; i++) {
                if (held[i] && !soak_check(sgl_chunk_data(held[i]), sgl_chunk_size(held[i])))
                        atomic_fetch_add(&soak->corrupt, 1);
                held[i] = sgl_chunk_unref(held[i]);
        }
        sgl_reader_unref(r);
        exit(0);
}
