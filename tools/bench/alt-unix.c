/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * alt-unix.c - the copying baselines over AF_UNIX: SOCK_STREAM (framed,
 * read greedily) and SOCK_SEQPACKET (one record per message, split into
 * 64 KiB records above that, since a record must fit the socket buffer).
 * One socketpair per reader: every reader costs the writer a copy.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bench.h"

#define SEQ_RECORD (64 * KiB)

struct unix_chan {
        int wfd[BENCH_MAX_READERS];
        int rfd[BENCH_MAX_READERS];
        struct fdstream rs;      /* stream: this reader's buffer */
        uint8_t *rbuf;           /* seqpacket: reassembly buffer */
};

/* ------------------------------------------------------- framed streams */

static int write_all(int fd, const struct iovec *iov_in, int n) {
        struct iovec iov[2];

        memcpy(iov, iov_in, (size_t)n * sizeof(*iov));
        while (n > 0) {
                ssize_t k = writev(fd, iov, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                while (n > 0 && (size_t)k >= iov[0].iov_len) {
                        k -= (ssize_t)iov[0].iov_len;
                        memmove(iov, iov + 1, (size_t)(n - 1) * sizeof(*iov));
                        n--;
                }
                if (n > 0) {
                        iov[0].iov_base = (uint8_t *)iov[0].iov_base + k;
                        iov[0].iov_len -= (size_t)k;
                }
        }
        return 0;
}

int fdstream_send(int fd, const void *buf, size_t size) {
        uint64_t len = size;
        struct iovec iov[2] = { { &len, 8 }, { (void *)buf, size } };

        return write_all(fd, iov, 2);
}

int fdstream_init(struct fdstream *s, int fd, size_t max_msg) {
        memset(s, 0, sizeof(*s));
        s->fd = fd;
        s->cap = 2 * (max_msg + 8) > 256 * KiB ? 2 * (max_msg + 8) : 256 * KiB;
        s->buf = malloc(s->cap);
        return s->buf ? 0 : -ENOMEM;
}

int fdstream_recv(struct fdstream *s, const void **data, size_t *size) {
        uint64_t len = 0;

        for (;;) {
                if (s->have - s->off >= 8) {
                        memcpy(&len, s->buf + s->off, 8);
                        if (len > s->cap - 8)
                                return -EBADMSG;
                        if (s->have - s->off >= 8 + len)
                                break;
                }
                /* make room at the end for the rest of this message */
                if (s->cap - s->off < 8 + len || s->have == s->cap) {
                        memmove(s->buf, s->buf + s->off, s->have - s->off);
                        s->have -= s->off;
                        s->off = 0;
                }
                ssize_t k = read(s->fd, s->buf + s->have, s->cap - s->have);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return k == 0 ? -EPIPE : -errno;
                s->have += (size_t)k;
        }
        *data = s->buf + s->off + 8;
        *size = len;
        s->cur = 8 + len;
        return 0;
}

void fdstream_release(struct fdstream *s) {
        s->off += s->cur;
        s->cur = 0;
        if (s->off == s->have)
                s->off = s->have = 0;
}

void fdstream_fini(struct fdstream *s) {
        free(s->buf);
        s->buf = NULL;
}

/* ------------------------------------------------------------ creation */

static int unix_create(struct chan *c, int type) {
        struct unix_chan *u = calloc(1, sizeof(*u));

        if (!u)
                return -ENOMEM;
        for (unsigned i = 0; i < c->nreaders; i++) {
                int sv[2];
                if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) < 0)
                        return -errno;
                u->wfd[i] = sv[0];
                u->rfd[i] = sv[1];
        }
        c->priv = u;
        return 0;
}

static void unix_destroy(struct chan *c) {
        struct unix_chan *u = c->priv;

        for (unsigned i = 0; i < c->nreaders; i++) {
                close(u->wfd[i]);
                close(u->rfd[i]);
        }
        free(u);
}

static int nop_open_writer(struct chan *c) {
        return 0;
}

static void nop_close_writer(struct chan *c) {
}

/* --------------------------------------------------------------- stream */

static int stream_create(struct chan *c) {
        return unix_create(c, SOCK_STREAM);
}

static int stream_send(struct chan *c, const void *buf, size_t size) {
        struct unix_chan *u = c->priv;

        for (unsigned i = 0; i < c->nreaders; i++) {
                int k = fdstream_send(u->wfd[i], buf, size);
                if (k < 0)
                        return k;
        }
        return 0;
}

static int stream_open_reader(struct chan *c, unsigned i) {
        struct unix_chan *u = c->priv;

        return fdstream_init(&u->rs, u->rfd[i], c->size);
}

static int stream_recv(struct chan *c, unsigned i, const void **data, size_t *size) {
        struct unix_chan *u = c->priv;

        return fdstream_recv(&u->rs, data, size);
}

static void stream_release(struct chan *c, unsigned i) {
        struct unix_chan *u = c->priv;

        fdstream_release(&u->rs);
}

static void stream_close_reader(struct chan *c, unsigned i) {
        struct unix_chan *u = c->priv;

        fdstream_fini(&u->rs);
}

static const char *stream_settings(size_t size, int kind) {
        return "blocking, 8B frame";
}

const struct alt alt_unix_stream = {
        .name = "unix-stream",
        .flags = ALT_COPYING,
        .create = stream_create,
        .open_writer = nop_open_writer,
        .send = stream_send,
        .close_writer = nop_close_writer,
        .open_reader = stream_open_reader,
        .recv = stream_recv,
        .release = stream_release,
        .close_reader = stream_close_reader,
        .destroy = unix_destroy,
        .settings = stream_settings,
};

/* ------------------------------------------------------------ seqpacket */

static int seq_create(struct chan *c) {
        return unix_create(c, SOCK_SEQPACKET);
}

/* The first record starts with the message's total length. */
static int seq_send(struct chan *c, const void *buf, size_t size) {
        struct unix_chan *u = c->priv;

        for (unsigned i = 0; i < c->nreaders; i++) {
                uint64_t len = size;
                size_t off = 0;
                bool first = true;

                do {
                        size_t n = size - off > SEQ_RECORD ? SEQ_RECORD : size - off;
                        struct iovec iov[2] = { { &len, 8 }, { (uint8_t *)buf + off, n } };
                        struct msghdr mh = {
                                .msg_iov = first ? iov : iov + 1,
                                .msg_iovlen = first ? 2 : 1,
                        };
                        if (sendmsg(u->wfd[i], &mh, MSG_NOSIGNAL) < 0) {
                                if (errno == EINTR)
                                        continue;
                                return -errno;
                        }
                        off += n;
                        first = false;
                } while (off < size);
        }
        return 0;
}

static int seq_open_reader(struct chan *c, unsigned i) {
        struct unix_chan *u = c->priv;

        u->rbuf = malloc(c->size + SEQ_RECORD + 8);
        return u->rbuf ? 0 : -ENOMEM;
}

static int seq_recv(struct chan *c, unsigned i, const void **data, size_t *size) {
        struct unix_chan *u = c->priv;
        uint64_t len = 0;
        size_t have = 0;
        bool first = true;

        do {
                ssize_t k = recv(u->rfd[i], u->rbuf + have, c->size + SEQ_RECORD + 8 - have, 0);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return k == 0 ? -EPIPE : -errno;
                if (first) {
                        if (k < 8)
                                return -EBADMSG;
                        memcpy(&len, u->rbuf, 8);
                        if (len > c->size)
                                return -EBADMSG;
                        first = false;
                }
                have += (size_t)k;
        } while (have < 8 + len);
        if (have != 8 + len)
                return -EBADMSG;
        *data = u->rbuf + 8;
        *size = len;
        return 0;
}

static void seq_release(struct chan *c, unsigned i) {
}

static void seq_close_reader(struct chan *c, unsigned i) {
        struct unix_chan *u = c->priv;

        free(u->rbuf);
}

static const char *seq_settings(size_t size, int kind) {
        return size > SEQ_RECORD ? "blocking, 64K records" : "blocking";
}

const struct alt alt_unix_seqpacket = {
        .name = "unix-seqpacket",
        .flags = ALT_COPYING,
        .create = seq_create,
        .open_writer = nop_open_writer,
        .send = seq_send,
        .close_writer = nop_close_writer,
        .open_reader = seq_open_reader,
        .recv = seq_recv,
        .release = seq_release,
        .close_reader = seq_close_reader,
        .destroy = unix_destroy,
        .settings = seq_settings,
};
