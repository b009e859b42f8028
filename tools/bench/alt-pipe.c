/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * alt-pipe.c - the copying baseline over a pipe per reader, framed like the
 * AF_UNIX stream, with the pipe grown to 1 MiB (F_SETPIPE_SZ) as a user
 * moving large messages would.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "bench.h"

struct pipe_chan {
        int wfd[BENCH_MAX_READERS];
        int rfd[BENCH_MAX_READERS];
        struct fdstream rs;
};

static int pipe_create(struct chan *c) {
        struct pipe_chan *p = calloc(1, sizeof(*p));

        if (!p)
                return -ENOMEM;
        for (unsigned i = 0; i < c->nreaders; i++) {
                int fd[2];
                if (pipe2(fd, O_CLOEXEC) < 0)
                        return -errno;
                (void)fcntl(fd[1], F_SETPIPE_SZ, 1 << 20);
                p->rfd[i] = fd[0];
                p->wfd[i] = fd[1];
        }
        c->priv = p;
        return 0;
}

static void pipe_destroy(struct chan *c) {
        struct pipe_chan *p = c->priv;

        for (unsigned i = 0; i < c->nreaders; i++) {
                close(p->wfd[i]);
                close(p->rfd[i]);
        }
        free(p);
}

static int pipe_open_writer(struct chan *c) {
        return 0;
}

static int pipe_send(struct chan *c, const void *buf, size_t size) {
        struct pipe_chan *p = c->priv;

        for (unsigned i = 0; i < c->nreaders; i++) {
                int k = fdstream_send(p->wfd[i], buf, size);
                if (k < 0)
                        return k;
        }
        return 0;
}

static void pipe_close_writer(struct chan *c) {
}

static int pipe_open_reader(struct chan *c, unsigned i) {
        struct pipe_chan *p = c->priv;

        return fdstream_init(&p->rs, p->rfd[i], c->size);
}

static int pipe_recv(struct chan *c, unsigned i, const void **data, size_t *size) {
        struct pipe_chan *p = c->priv;

        return fdstream_recv(&p->rs, data, size);
}

static void pipe_release(struct chan *c, unsigned i) {
        struct pipe_chan *p = c->priv;

        fdstream_release(&p->rs);
}

static void pipe_close_reader(struct chan *c, unsigned i) {
        struct pipe_chan *p = c->priv;

        fdstream_fini(&p->rs);
}

static const char *pipe_settings(size_t size, int kind) {
        return "blocking, 1M pipe";
}

const struct alt alt_pipe = {
        .name = "pipe",
        .flags = ALT_COPYING,
        .create = pipe_create,
        .open_writer = pipe_open_writer,
        .send = pipe_send,
        .close_writer = pipe_close_writer,
        .open_reader = pipe_open_reader,
        .recv = pipe_recv,
        .release = pipe_release,
        .close_reader = pipe_close_reader,
        .destroy = pipe_destroy,
        .settings = pipe_settings,
};
