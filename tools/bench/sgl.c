/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sgl.c - sigillo as a transport, through the public API only, deployed as
 * a real application would: the writer serves its area on an embedded host
 * (sgl_host_new) and every reader process opens it by name
 * (sgl_reader_open), so segments travel over the real rendezvous protocol.
 *
 * Settings are what a user would tune per use (printed in the table):
 * TRUSTED seals when a segment is full (segments of at least 4 MiB);
 * STRICT seals every commit for latency, and for small-chunk throughput
 * groups commits (SGL_SEAL_BYTES, and a seal whenever the writer has to
 * wait for its readers).  Stream ids rotate over window + 1 ids: a version
 * is superseded only once every reader has released it, so readers see
 * every message and compaction can retire old segments.
 *
 * Waiting: a busy reader spins on sgl_reader_next(); a blocking STRICT
 * reader polls sgl_reader_get_fd() (the host's pushes arrive there), a
 * blocking TRUSTED reader sleeps in sgl_reader_wait().  A process that is
 * both writer and reader (ping-pong) serves its host while it waits, as its
 * event loop would.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sigillo.h"
#include "bench.h"

#define STRICT_GROUP_BYTES (256 * KiB)

struct sgl_chan {
        bool trusted;
        char name[32];
        char address[64];
        sgl_writer *w;
        sgl_host *h;
        sgl_reader *r;
        sgl_chunk *held;
        uint64_t seq;
};

/* this process's host, served while its reader waits (ping-pong) */
static sgl_host *own_host;

static bool strict_grouped(const struct chan *c) {
        return c->kind == CH_TPUT && c->size <= 64 * KiB;
}

static uint64_t trusted_segment(size_t size) {
        uint64_t s = 4 * ((uint64_t)size + 4096);

        s = (s + 4095) / 4096 * 4096;
        return s < 4 * MiB ? 4 * MiB : s;
}

static int sgl_create(struct chan *c, bool trusted) {
        struct sgl_chan *s = calloc(1, sizeof(*s));

        if (!s)
                return -ENOMEM;
        s->trusted = trusted;
        snprintf(s->name, sizeof(s->name), "bench%u", c->id);
        snprintf(s->address, sizeof(s->address), "@sigillo-bench-%d-%u", (int)getpid(), c->id);
        c->priv = s;
        return 0;
}

static int trusted_create(struct chan *c) {
        return sgl_create(c, true);
}

static int strict_create(struct chan *c) {
        return sgl_create(c, false);
}

static void sgl_destroy(struct chan *c) {
        free(c->priv);
}

static int sgl_open_writer(struct chan *c) {
        struct sgl_chan *s = c->priv;
        int k;

        k = sgl_writer_new(s->name, 0, &s->w);
        if (k < 0)
                return k;
        if (s->trusted) {
                k = sgl_writer_set_seal_policy(s->w, SGL_SEAL_WHEN_FULL, 0);
                if (k >= 0)
                        k = sgl_writer_set_segment_size(s->w, trusted_segment(c->size));
        } else if (strict_grouped(c)) {
                k = sgl_writer_set_seal_policy(s->w, SGL_SEAL_BYTES, STRICT_GROUP_BYTES);
        } else {
                k = sgl_writer_set_seal_policy(s->w, SGL_SEAL_EVERY_COMMIT, 0);
        }
        if (k < 0)
                return k;
        k = sgl_host_new(s->w, s->address, &s->h);
        if (k < 0)
                return k;
        own_host = s->h;
        return 0;
}

static int sgl_serve(struct chan *c) {
        struct sgl_chan *s = c->priv;
        int k = sgl_host_process(s->h);

        return k < 0 ? k : 0;
}

static int sgl_send(struct chan *c, const void *buf, size_t size) {
        struct sgl_chan *s = c->priv;
        uint64_t id = s->seq++ % (c->window + 1) + 1;
        void *p;
        int k;

        k = sgl_writer_alloc(s->w, id, 0, size, &p, NULL);
        if (k < 0)
                return k;
        memcpy(p, buf, size);
        return sgl_writer_commit(s->w);
}

static int sgl_flush(struct chan *c) {
        struct sgl_chan *s = c->priv;

        if (s->trusted)
                return 0;
        return sgl_writer_seal(s->w);
}

static void sgl_close_writer(struct chan *c) {
        struct sgl_chan *s = c->priv;

        own_host = NULL;
        s->h = sgl_host_unref(s->h);
        s->w = sgl_writer_unref(s->w);
}

static int sgl_open_reader(struct chan *c, unsigned i) {
        struct sgl_chan *s = c->priv;

        return sgl_reader_open(s->name, s->address, s->trusted ? SGL_READER_TRUSTED : 0, &s->r);
}

/* Blocks in poll on the reader's descriptor (and this process's host). */
static int wait_poll(struct sgl_chan *s) {
        struct pollfd p[2] = {
                { .fd = sgl_reader_get_fd(s->r), .events = POLLIN },
                { .fd = own_host ? sgl_host_get_fd(own_host) : -1, .events = POLLIN },
        };
        int k;

        if (p[0].fd < 0)
                return p[0].fd;
        k = poll(p, 2, 1000);
        if (k < 0)
                return errno == EINTR ? 0 : -errno;
        if (p[1].revents && (k = sgl_host_process(own_host)) < 0)
                return k;
        if (p[0].revents && (k = sgl_reader_process(s->r)) < 0)
                return k;
        return 0;
}

static int sgl_recv(struct chan *c, unsigned i, const void **data, size_t *size) {
        struct sgl_chan *s = c->priv;
        unsigned spins = 0;
        int k;

        for (;;) {
                k = sgl_reader_next(s->r, &s->held);
                if (k == 0)
                        break;
                if (k != -EAGAIN)
                        return k;
                if (c->busy) {
                        /* a busy reader that also writes still serves its host */
                        if (own_host && spins % 4096 == 4095 && (k = sgl_host_process(own_host)) < 0)
                                return k;
                        busy_pause(&spins);
                        continue;
                }
                if (s->trusted && !own_host) {
                        k = sgl_reader_wait(s->r, 100000);
                        if (k < 0 && k != -ETIMEDOUT && k != -EINTR)
                                return k;
                        continue;
                }
                if ((k = wait_poll(s)) < 0)
                        return k;
        }
        *data = sgl_chunk_data(s->held);
        *size = sgl_chunk_size(s->held);
        return 0;
}

static void sgl_release(struct chan *c, unsigned i) {
        struct sgl_chan *s = c->priv;

        s->held = sgl_chunk_unref(s->held);
}

static void sgl_close_reader(struct chan *c, unsigned i) {
        struct sgl_chan *s = c->priv;

        s->r = sgl_reader_unref(s->r);
}

static const char *trusted_settings(size_t size, int kind) {
        static char buf[64];

        snprintf(buf, sizeof(buf), "seal when full, %lluM seg",
                 (unsigned long long)(trusted_segment(size) / MiB));
        return buf;
}

static const char *strict_settings(size_t size, int kind) {
        if (kind == CH_TPUT && size <= 64 * KiB)
                return "seal per 256K or wait, host";
        return "seal every commit, host";
}

const struct alt alt_sgl_trusted = {
        .name = "sigillo-trusted",
        .flags = ALT_WINDOW | ALT_PRODUCES,
        .create = trusted_create,
        .open_writer = sgl_open_writer,
        .serve = sgl_serve,
        .send = sgl_send,
        .flush = sgl_flush,
        .close_writer = sgl_close_writer,
        .open_reader = sgl_open_reader,
        .recv = sgl_recv,
        .release = sgl_release,
        .close_reader = sgl_close_reader,
        .destroy = sgl_destroy,
        .settings = trusted_settings,
};

const struct alt alt_sgl_strict = {
        .name = "sigillo-strict",
        .flags = ALT_WINDOW | ALT_PRODUCES,
        .create = strict_create,
        .open_writer = sgl_open_writer,
        .serve = sgl_serve,
        .send = sgl_send,
        .flush = sgl_flush,
        .close_writer = sgl_close_writer,
        .open_reader = sgl_open_reader,
        .recv = sgl_recv,
        .release = sgl_release,
        .close_reader = sgl_close_reader,
        .destroy = sgl_destroy,
        .settings = strict_settings,
};
