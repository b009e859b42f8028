/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * client.c - the reader's side of the rendezvous: connecting to a host (an
 * embedded writer or sigillod), opening an area, taking pushed segments, and
 * the pollable descriptor for event loops.
 *
 * Owns: the reader's socket, the protocol's client side for role reader,
 * and the watcher thread that turns futex wake-ups into eventfd readiness.
 *
 * Invariants:
 * - The host is hostile too: every datagram goes through sgl_fdpass_recv()
 *   and sgl_msg_parse(); a descriptor it sends is checked by
 *   sgl_reader_add_segment_consume_fd() like any other.  Anything unexpected
 *   ends the connection; what the reader has mapped stays valid.
 * - Blocking happens only in sgl_reader_open(), bounded by CLIENT_TIMEOUT_MS
 *   for the whole handshake; afterwards the socket is non-blocking, and one
 *   drain handles at most CLIENT_READS_PER_DRAIN messages.
 * - The watcher thread only reads the control page and writes its own
 *   eventfd: a hostile reader elsewhere can cause it spurious wake-ups,
 *   never suppress one (the writer wakes every waiter).
 */
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "internal.h"
#include "client.h"
#include "fdpass.h"
#include "protocol.h"
#include "rendezvous.h"
#include "wait.h"

#define CLIENT_TIMEOUT_MS 5000      /* the whole of sgl_reader_open() */
#define CLIENT_READS_PER_DRAIN 64   /* a flooding host cannot stall next() */
#define WATCHER_POLL_USEC 200000

struct sgl_client {
        int sock;
        int epfd;
        int evfd;
        uint32_t serial;
        int64_t deadline_ms;     /* of the handshake, CLOCK_MONOTONIC */
        int error;               /* why the connection ended, 0 while up;
                                  * pending until sgl_client_take_error() */
        pthread_t watcher;
        bool watching;
        bool stop;               /* atomic: tells the watcher to end */
        const uint32_t *events;  /* the futex word the watcher waits on */
};

void sgl_client_free(struct sgl_client *c) {
        if (!c)
                return;
        sgl_client_stop_watcher(c);
        sgl_close(c->sock);
        sgl_close(c->epfd);
        sgl_close(c->evfd);
        free(c);
}

static int64_t mono_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What is left of the handshake's one deadline: a host that trickles
 * messages cannot stretch it. */
static int handshake_left_ms(const struct sgl_client *c) {
        int64_t left = c->deadline_ms - mono_ms();
        return left > 0 ? (int)left : 0;
}

static int client_send(struct sgl_client *c, const uint8_t *buf, ssize_t n) {
        if (n < 0)
                return (int)n;
        n = sgl_fdpass_send(c->sock, buf, (size_t)n, NULL, 0);
        return n < 0 ? (int)n : 0;
}

/* One message from the host; *fd is -1 or the descriptor it carried (the
 * caller owns it).  Only types a host may send are accepted. */
static int client_recv(struct sgl_client *c, uint8_t *buf, struct sgl_msg *m,
                       int *fd, int timeout_ms) {
        size_t nfds = 0;
        ssize_t n;
        int r;

        *fd = -1;
        if (timeout_ms >= 0) {
                struct pollfd p = { .fd = c->sock, .events = POLLIN };
                if (timeout_ms == 0)
                        return -ETIMEDOUT;
                r = poll(&p, 1, timeout_ms);
                if (r < 0)
                        return sgl_negerrno();
                if (r == 0)
                        return -ETIMEDOUT;
        }
        n = sgl_fdpass_recv(c->sock, buf, SGL_MSG_MAX_SIZE, fd, SGL_MSG_MAX_FDS, &nfds);
        if (n == -ECONNRESET) /* a reset may come before what is still queued
                               * (protocol.md section 9); a reset socket never
                               * blocks */
                n = sgl_fdpass_recv(c->sock, buf, SGL_MSG_MAX_SIZE, fd, SGL_MSG_MAX_FDS, &nfds);
        if (n == 0 || n == -ECONNRESET)
                return -ECONNRESET;
        if (n == -EBADMSG)
                return -EPROTO; /* truncated, or descriptors it may not send */
        if (n < 0)
                return (int)n;
        if (nfds == 0)
                *fd = -1;
        r = sgl_msg_parse(buf, (size_t)n, nfds, m);
        if (r < 0 || sgl_msg_type_is_request(m->type)) {
                *fd = sgl_close(*fd);
                return -EPROTO;
        }
        return 0;
}

/* Expects a reply to @serial of type @type (or an ERROR, returned as its
 * negative errno). */
static int expect(struct sgl_client *c, uint8_t *buf, struct sgl_msg *m, int *fd,
                  uint16_t type) {
        int r = client_recv(c, buf, m, fd, handshake_left_ms(c));

        if (r < 0)
                return r;
        if (m->type == SGL_MSG_ERROR && m->serial == c->serial)
                return m->error.error;
        if (m->type != type || m->serial != c->serial) {
                *fd = sgl_close(*fd);
                return -EPROTO;
        }
        return 0;
}

/**
 * sgl_client_open() - connect, say HELLO, OPEN @name and take everything up
 * to SYNCED into @r.  On failure the client is freed.
 */
int sgl_client_open(sgl_reader *r, const char *name, const char *address,
                    bool trusted, struct sgl_client **ret) {
        uint8_t buf[SGL_MSG_MAX_SIZE];
        struct sgl_client *c;
        struct sgl_msg m;
        int fd = -1, k;

        if (!name || !sgl_name_valid(name, strlen(name)))
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        *c = (struct sgl_client) { .sock = -1, .epfd = -1, .evfd = -1 };

        c->deadline_ms = mono_ms() + CLIENT_TIMEOUT_MS;
        k = c->sock = sgl_connect_host(address, CLIENT_TIMEOUT_MS);
        if (k < 0)
                goto fail;
        k = client_send(c, buf, sgl_msg_build_hello(buf, sizeof(buf), ++c->serial,
                                                    SGL_PROTO_VERSION_MIN,
                                                    SGL_PROTO_VERSION_MAX, SGL_ROLE_READER));
        if (k >= 0)
                k = expect(c, buf, &m, &fd, SGL_MSG_WELCOME);
        if (k >= 0 && (m.welcome.version < SGL_PROTO_VERSION_MIN ||
                       m.welcome.version > SGL_PROTO_VERSION_MAX))
                k = -EPROTO; /* a version we did not offer */
        if (k < 0)
                goto fail;
        k = client_send(c, buf, sgl_msg_build_open(buf, sizeof(buf), ++c->serial,
                                                   SGL_OPEN_SUBSCRIBE |
                                                   (trusted ? SGL_OPEN_TRUSTED : 0),
                                                   name, strlen(name)));
        if (k >= 0)
                k = expect(c, buf, &m, &fd, SGL_MSG_AREA);
        if (k < 0)
                goto fail;
        k = sgl_reader_set_control_consume_fd(r, fd);
        if (k < 0)
                goto fail;

        for (uint64_t last_seq = 0;;) {
                k = client_recv(c, buf, &m, &fd, handshake_left_ms(c));
                if (k < 0)
                        goto fail;
                if (m.type == SGL_MSG_SYNCED && m.serial == c->serial)
                        break;
                /* the live segments come once each, in increasing seq
                 * order: a host repeating one cannot keep us here */
                if (m.type != SGL_MSG_SEGMENT || m.serial != c->serial ||
                    m.segment.seq <= last_seq) {
                        sgl_close(fd);
                        k = -EPROTO;
                        goto fail;
                }
                last_seq = m.segment.seq;
                k = sgl_reader_add_segment_consume_fd(r, fd);
                if (k < 0)
                        goto fail;
        }
        if (fcntl(c->sock, F_SETFL, fcntl(c->sock, F_GETFL) | O_NONBLOCK) < 0) {
                k = sgl_negerrno();
                goto fail;
        }
        *ret = c;
        return 0;
fail:
        sgl_client_free(c);
        return k;
}

/*
 * sgl_client_drain() - takes every pushed message without blocking.
 * Returns the number of segments added, or the error that ended the
 * connection.  The error also stays pending for sgl_client_take_error(),
 * and the socket stays open, shut down (so it polls readable), until then:
 * an event loop must learn that the host left even if sgl_reader_next()
 * was the one that met the end.
 */
int sgl_client_drain(struct sgl_client *c, sgl_reader *r) {
        uint8_t buf[SGL_MSG_MAX_SIZE];
        int added = 0;

        if (c->evfd >= 0) {
                uint64_t v;
                /* reset readiness, also once the connection is gone: the
                 * watcher still signals commits to the mapped segments */
                (void)!read(c->evfd, &v, sizeof(v));
        }
        if (c->sock < 0 || c->error < 0)
                return 0;
        for (int n = 0; n < CLIENT_READS_PER_DRAIN; n++) {
                struct sgl_msg m;
                int fd, k;

                k = client_recv(c, buf, &m, &fd, -1);
                if (k == -EAGAIN)
                        return added;
                if (k == 0) {
                        switch (m.type) {
                        case SGL_MSG_SEGMENT:
                                k = sgl_reader_add_segment_consume_fd(r, fd);
                                /* a TRUSTED reader is told "sealed" for a
                                 * segment it has: that is an upgrade */
                                if (k >= 0)
                                        added++;
                                /* another sealed copy of a sealed segment
                                 * (a takeover may announce one again):
                                 * what is mapped stays, nothing to end */
                                if (k == -EEXIST)
                                        k = 0;
                                break;
                        case SGL_MSG_RETIRED:
                                break; /* the log's RETIRE record rules */
                        case SGL_MSG_AREA:
                                /* the watcher waits on the old page, which
                                 * the replacement unmaps: stop it first */
                                sgl_client_stop_watcher(c);
                                k = sgl_reader_replace_control_consume_fd(r, fd);
                                if (sgl_client_restart_watcher(c, r) < 0 && k >= 0)
                                        k = -EAGAIN;
                                break;
                        case SGL_MSG_GONE:
                                k = -ENOENT;
                                break;
                        default:
                                sgl_close(fd);
                                k = -EPROTO;
                        }
                }
                if (k < 0) {
                        /* the host broke the protocol or left: hang up,
                         * keep what is mapped */
                        (void)shutdown(c->sock, SHUT_RDWR);
                        c->error = k;
                        return k;
                }
        }
        return added; /* more may wait: the socket stays readable */
}

/*
 * sgl_client_take_error() - the error that ended the connection, once; then
 * the socket is closed and leaves the pollable descriptor.  0 while the
 * connection is up or once the error was taken.
 */
int sgl_client_take_error(struct sgl_client *c) {
        int k = c->error;

        if (k >= 0 || c->sock < 0)
                return 0;
        if (c->epfd >= 0)
                epoll_ctl(c->epfd, EPOLL_CTL_DEL, c->sock, NULL);
        c->sock = sgl_close(c->sock);
        return k;
}

static void *watcher_main(void *userdata) {
        struct sgl_client *c = userdata;
        uint32_t seen = __atomic_load_n(c->events, __ATOMIC_ACQUIRE);

        while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
                /* bounded, so a stop request that races with falling
                 * asleep is seen within WATCHER_POLL_USEC */
                int k = sgl_wait_change(c->events, &seen, WATCHER_POLL_USEC);
                if (k == 0 && !__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
                        uint64_t one = 1;
                        (void)!write(c->evfd, &one, sizeof(one));
                }
        }
        return NULL;
}

void sgl_client_stop_watcher(struct sgl_client *c) {
        if (!c->watching)
                return;
        __atomic_store_n(&c->stop, true, __ATOMIC_RELEASE);
        /* FUTEX_WAKE needs no write access; others waiting on the word get
         * a spurious wake-up, which every waiter tolerates */
        syscall(SYS_futex, c->events, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
        pthread_join(c->watcher, NULL);
        c->watching = false;
        __atomic_store_n(&c->stop, false, __ATOMIC_RELEASE);
}

int sgl_client_restart_watcher(struct sgl_client *c, sgl_reader *r) {
        const uint32_t *events = sgl_reader_events_word(r);

        if (c->evfd < 0)
                return 0; /* nobody asked for a pollable descriptor */
        sgl_client_stop_watcher(c);
        if (!events)
                return 0;
        c->events = events;
        if (pthread_create(&c->watcher, NULL, watcher_main, c) != 0)
                return -EAGAIN;
        c->watching = true;
        return 0;
}

/*
 * sgl_client_get_fd() - an epoll descriptor that polls readable when the
 * host pushed something (new or sealed segments) or, for a TRUSTED reader,
 * when the writer committed (the watcher thread).
 */
int sgl_client_get_fd(struct sgl_client *c, sgl_reader *r, bool trusted) {
        struct epoll_event ev = { .events = EPOLLIN };
        int k;

        if (c->epfd >= 0)
                return c->epfd;
        c->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (c->epfd < 0)
                return sgl_negerrno();
        if (c->sock >= 0 && epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->sock, &ev) < 0)
                goto fail;
        if (trusted) {
                c->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                if (c->evfd < 0 || epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->evfd, &ev) < 0)
                        goto fail;
                k = sgl_client_restart_watcher(c, r);
                if (k < 0) {
                        errno = -k;
                        goto fail;
                }
        }
        return c->epfd;
fail:
        k = sgl_negerrno();
        c->evfd = sgl_close(c->evfd);
        c->epfd = sgl_close(c->epfd);
        return k;
}
