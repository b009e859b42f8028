/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * alt-ring.c - the floor for trusted transport: a raw single-writer,
 * multi-reader byte ring in one memfd, messages read in place (8-byte
 * length, payload, 8-aligned; a length of ~0 marks a wrap).  The writer
 * waits for the slowest reader's tail.  Busy: both sides spin.  Futex: a
 * side sleeps only after re-checking under a waiter count, and the other
 * side wakes only when someone sleeps.  The ring is pre-faulted: a
 * trusted transport reuses its pages, so it never pays for fresh ones.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"

#define WRAP UINT64_MAX

struct ring_hdr {
        _Alignas(64) _Atomic uint64_t head;
        struct waitq data;                        /* writer -> readers */
        _Alignas(64) struct waitq space;          /* readers -> writer */
        struct {
                _Alignas(64) _Atomic uint64_t tail;
        } r[BENCH_MAX_READERS];
};

struct ring {
        struct ring_hdr *h;
        uint8_t *base;
        size_t cap, map_size;
        uint64_t cur;    /* reader: position of the message it holds */
        uint64_t next;   /* reader: position after it */
};

static size_t round_up(size_t v, size_t a) {
        return (v + a - 1) / a * a;
}

static int ring_create(struct chan *c) {
        struct ring *g = calloc(1, sizeof(*g));
        int fd;

        if (!g)
                return -ENOMEM;
        g->cap = round_up((2 * (c->size + 8) > MiB ? 2 * (c->size + 8) : MiB) + 4096, 4096);
        g->map_size = 4096 + g->cap;
        fd = memfd_create("bench-ring", MFD_CLOEXEC);
        if (fd < 0 || ftruncate(fd, (off_t)g->map_size) < 0)
                return -errno;
        g->h = mmap(NULL, g->map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        if (g->h == MAP_FAILED)
                return -errno;
        memset(g->h, 0, g->map_size); /* pre-fault */
        g->base = (uint8_t *)g->h + 4096;
        c->priv = g;
        return 0;
}

static void ring_destroy(struct chan *c) {
        struct ring *g = c->priv;

        munmap(g->h, g->map_size);
        free(g);
}

static int ring_open(struct chan *c) {
        return 0;
}

static int ring_open_reader(struct chan *c, unsigned i) {
        return 0;
}

static void ring_close(struct chan *c) {
}

static void ring_close_reader(struct chan *c, unsigned i) {
}

static uint64_t min_tail(struct ring *g, unsigned n) {
        uint64_t m = UINT64_MAX;

        for (unsigned i = 0; i < n; i++) {
                uint64_t t = atomic_load(&g->h->r[i].tail);
                if (t < m)
                        m = t;
        }
        return m;
}

static void wait_space(struct chan *c, struct ring *g, uint64_t end) {
        unsigned spins = 0;

        while (end - min_tail(g, c->nreaders) > g->cap) {
                if (c->busy) {
                        busy_pause(&spins);
                        continue;
                }
                uint32_t seen = waitq_prepare(&g->h->space);
                if (end - min_tail(g, c->nreaders) > g->cap)
                        waitq_sleep(&g->h->space, seen, 100000);
                waitq_finish(&g->h->space);
        }
}

static int ring_send(struct chan *c, const void *buf, size_t size) {
        struct ring *g = c->priv;
        uint64_t pos = atomic_load_explicit(&g->h->head, memory_order_relaxed);
        size_t need = 8 + round_up(size, 8);
        size_t off = pos % g->cap;
        uint64_t len = size;

        if (off + need > g->cap) {
                uint64_t wrap = WRAP;
                wait_space(c, g, pos + 8);
                memcpy(g->base + off, &wrap, 8);
                pos += g->cap - off;
                off = 0;
        }
        wait_space(c, g, pos + need);
        memcpy(g->base + off, &len, 8);
        memcpy(g->base + off + 8, buf, size);
        atomic_store(&g->h->head, pos + need);
        if (!c->busy)
                waitq_signal(&g->h->data);
        return 0;
}

static int ring_recv(struct chan *c, unsigned i, const void **data, size_t *size) {
        struct ring *g = c->priv;
        uint64_t pos = atomic_load_explicit(&g->h->r[i].tail, memory_order_relaxed);
        unsigned spins = 0;
        uint64_t len;

        for (;;) {
                while (atomic_load(&g->h->head) == pos) {
                        if (c->busy) {
                                busy_pause(&spins);
                                continue;
                        }
                        uint32_t seen = waitq_prepare(&g->h->data);
                        if (atomic_load(&g->h->head) == pos)
                                waitq_sleep(&g->h->data, seen, 100000);
                        waitq_finish(&g->h->data);
                }
                memcpy(&len, g->base + pos % g->cap, 8);
                if (len != WRAP)
                        break;
                pos += g->cap - pos % g->cap;
        }
        if (len > g->cap)
                return -EBADMSG;
        g->cur = pos;
        g->next = pos + 8 + round_up(len, 8);
        *data = g->base + pos % g->cap + 8;
        *size = len;
        return 0;
}

static void ring_release(struct chan *c, unsigned i) {
        struct ring *g = c->priv;

        atomic_store(&g->h->r[i].tail, g->next);
        if (!c->busy)
                waitq_signal(&g->h->space);
}

static const char *ring_settings(size_t size, int kind) {
        return "pre-faulted memfd ring";
}

const struct alt alt_ring_busy = {
        .name = "ring-busy",
        .flags = ALT_PRODUCES,
        .create = ring_create,
        .open_writer = ring_open,
        .send = ring_send,
        .close_writer = ring_close,
        .open_reader = ring_open_reader,
        .recv = ring_recv,
        .release = ring_release,
        .close_reader = ring_close_reader,
        .destroy = ring_destroy,
        .settings = ring_settings,
};

const struct alt alt_ring_futex = {
        .name = "ring-futex",
        .flags = ALT_PRODUCES,
        .create = ring_create,
        .open_writer = ring_open,
        .send = ring_send,
        .close_writer = ring_close,
        .open_reader = ring_open_reader,
        .recv = ring_recv,
        .release = ring_release,
        .close_reader = ring_close_reader,
        .destroy = ring_destroy,
        .settings = ring_settings,
};
