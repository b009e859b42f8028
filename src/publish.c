/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * publish.c - the writer's side of the rendezvous: a writer that lives
 * behind sigillod (doc/protocol.md, role writer).
 *
 * Owns: the writer's connection to the daemon, the lease handshake (HELLO,
 * CLAIM, and for a takeover the segments of the orphaned area up to
 * SYNCED), publishing the control page and every segment event, and the
 * bounded queue of what the socket could not take at once.
 *
 * Invariants:
 * - The daemon is a stranger too: every datagram goes through
 *   sgl_fdpass_recv() and sgl_msg_parse(); descriptors it sends in a
 *   takeover are checked by sgl_writer_adopt() before anything maps them.
 *   After the handshake the only thing it may say is ERROR (then it
 *   closes); anything else ends the connection.
 * - Only read-only descriptions leave: the control page's and each
 *   segment's ro_fd.
 * - Blocking happens only in sgl_writer_publish() (at most
 *   PUBLISH_TIMEOUT_MS per message).  Afterwards publishing is one
 *   non-blocking send per segment event; what does not fit waits in a
 *   queue of PUBLISH_MAX_QUEUE messages (each with a dup of its
 *   descriptor).  Past that the connection is given up (-ENOBUFS): a
 *   daemon that does not read never stalls nor grows the writer.
 * - The connection, once ended for any reason, stays ended: the daemon
 *   has by then dropped the lease (or kept the area without a writer),
 *   and only a new writer may take the area over.
 * - Publishing owns the writer's segment callback while it lives and
 *   chains to the one set before (as the embedded host does).
 */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include "internal.h"
#include "adopt.h"
#include "fdpass.h"
#include "protocol.h"
#include "rendezvous.h"
#include "writer-internal.h"

#define PUBLISH_TIMEOUT_MS 5000
#define PUBLISH_MAX_QUEUE 1024
/* the most segments a takeover may hand us: the daemon's per-uid segment
 * quota is 1024 by default; a hostile server gets no more than this */
#define PUBLISH_MAX_TAKEOVER 65536
#define PUBLISH_MSG_MAX 32      /* our largest message after CLAIM */

struct pub_msg {
        uint8_t buf[PUBLISH_MSG_MAX];
        size_t len;
        int fd;
};

struct sgl_publish {
        sgl_writer *w;           /* not a reference: the writer owns us */
        int sock;
        int epfd;
        int evfd;                /* signalled when we end the connection */
        uint32_t serial;
        int error;               /* why the connection ended; 0 while up */
        struct pub_msg *q;       /* ring of PUBLISH_MAX_QUEUE */
        size_t qhead;
        size_t qlen;
        bool out_armed;
        sgl_segment_fn chained_fn;
        void *chained_userdata;
};

static uint32_t next_serial(struct sgl_publish *p) {
        if (++p->serial == 0)
                p->serial = 1;
        return p->serial;
}

static void queue_clear(struct sgl_publish *p) {
        for (size_t i = 0; i < p->qlen; i++)
                sgl_close(p->q[(p->qhead + i) % PUBLISH_MAX_QUEUE].fd);
        p->qhead = p->qlen = 0;
}

/* Polls for EPOLLOUT exactly while something is queued. */
static void watch_out(struct sgl_publish *p) {
        struct epoll_event ev = { .events = EPOLLIN };
        bool want = p->qlen > 0;

        if (p->epfd < 0 || p->sock < 0 || want == p->out_armed)
                return;
        if (want)
                ev.events |= EPOLLOUT;
        if (epoll_ctl(p->epfd, EPOLL_CTL_MOD, p->sock, &ev) == 0)
                p->out_armed = want;
}

/* Ends the connection on our side; the first reason sticks. */
static void pub_end(struct sgl_publish *p, int err) {
        if (p->error == 0)
                p->error = err < 0 ? err : -ECONNRESET;
        if (p->sock >= 0) {
                if (p->epfd >= 0)
                        epoll_ctl(p->epfd, EPOLL_CTL_DEL, p->sock, NULL);
                p->sock = sgl_close(p->sock);
        }
        queue_clear(p);
        if (p->evfd >= 0) {
                uint64_t one = 1;
                (void)!write(p->evfd, &one, sizeof(one));
        }
}

/* Sends what is queued, in order, until the socket is full. */
static int pub_flush(struct sgl_publish *p) {
        while (p->qlen > 0) {
                struct pub_msg *m = &p->q[p->qhead];
                ssize_t n = sgl_fdpass_send(p->sock, m->buf, m->len, &m->fd, m->fd >= 0);

                if (n == -EAGAIN)
                        break;
                if (n < 0)
                        return (int)n;
                m->fd = sgl_close(m->fd);
                p->qhead = (p->qhead + 1) % PUBLISH_MAX_QUEUE;
                p->qlen--;
        }
        watch_out(p);
        return 0;
}

/* Sends one message (with @fd, borrowed, if >= 0) now, or queues it with a
 * dup of @fd behind what is queued already.  -ENOBUFS when the queue is
 * full. */
static int pub_send(struct sgl_publish *p, const uint8_t *buf, ssize_t len, int fd) {
        struct pub_msg *m;
        int r;

        if (len < 0)
                return (int)len;
        if (p->sock < 0)
                return p->error < 0 ? p->error : -ENOTCONN;
        r = pub_flush(p);
        if (r < 0)
                return r;
        if (p->qlen == 0) {
                ssize_t n = sgl_fdpass_send(p->sock, buf, (size_t)len, &fd, fd >= 0);
                if (n >= 0)
                        return 0;
                if (n != -EAGAIN)
                        return (int)n;
        }
        if (p->qlen >= PUBLISH_MAX_QUEUE)
                return -ENOBUFS;
        if (!p->q) {
                p->q = calloc(PUBLISH_MAX_QUEUE, sizeof(*p->q));
                if (!p->q)
                        return -ENOMEM;
        }
        if ((size_t)len > sizeof(m->buf))
                return -EMSGSIZE;
        m = &p->q[(p->qhead + p->qlen) % PUBLISH_MAX_QUEUE];
        m->fd = -1;
        if (fd >= 0) {
                m->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
                if (m->fd < 0)
                        return sgl_negerrno();
        }
        memcpy(m->buf, buf, (size_t)len);
        m->len = (size_t)len;
        p->qlen++;
        watch_out(p);
        return 0;
}

static int send_segment(struct sgl_publish *p, uint64_t seq, sgl_segment_event ev, int fd) {
        uint8_t buf[PUBLISH_MSG_MAX];

        if (ev == SGL_SEGMENT_RETIRED)
                return pub_send(p, buf, sgl_msg_build_retire(buf, sizeof(buf), next_serial(p), seq), -1);
        if (ev == SGL_SEGMENT_OPENED)
                sgl_writer_mark_exposed(p->w, seq); /* relayed to TRUSTED readers */
        return pub_send(p, buf, sgl_msg_build_publish_segment(buf, sizeof(buf), next_serial(p),
                                                              seq, ev), fd);
}

/* Reads what the daemon sent, without blocking.  It only ever tells a
 * writer why it closes the connection: an ERROR ends publishing with its
 * error, anything else with -EPROTO, end of file with -ECONNRESET. */
static void pub_read(struct sgl_publish *p) {
        uint8_t buf[SGL_MSG_MAX_SIZE];

        while (p->sock >= 0) {
                struct sgl_msg m;
                size_t nfds = 0;
                int fd = -1, r;
                ssize_t n;

                n = sgl_fdpass_recv(p->sock, buf, sizeof(buf), &fd, SGL_MSG_MAX_FDS, &nfds);
                if (n == -EAGAIN)
                        return;
                if (n <= 0) {
                        pub_end(p, n == 0 ? -ECONNRESET : (int)n);
                        return;
                }
                r = sgl_msg_parse(buf, (size_t)n, nfds, &m);
                if (nfds > 0)
                        sgl_close(fd);
                pub_end(p, r >= 0 && m.type == SGL_MSG_ERROR ? m.error.error : -EPROTO);
        }
}

/* A send failed: if the daemon hung up, what it said before is the reason. */
static void pub_fail(struct sgl_publish *p, int r) {
        if (r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN)
                pub_read(p);
        pub_end(p, r);
}

/* The writer's segment callback while published. */
static void publish_event(void *userdata, uint64_t seq, sgl_segment_event ev, int fd) {
        struct sgl_publish *p = userdata;

        if (p->sock >= 0) {
                int r = send_segment(p, seq, ev, fd);
                if (r < 0)
                        pub_fail(p, r); /* the daemon's view would have a gap */
        }
        if (p->chained_fn)
                p->chained_fn(p->chained_userdata, seq, ev, fd);
}

struct replay {
        struct sgl_publish *p;
        int err;
};

static void replay_segment(void *userdata, uint64_t seq, sgl_segment_event ev, int fd) {
        struct replay *rp = userdata;

        if (rp->err >= 0)
                rp->err = send_segment(rp->p, seq, ev, fd);
}

static void pub_free(struct sgl_publish *p) {
        if (!p)
                return;
        if (p->sock >= 0)
                (void)pub_flush(p); /* what fits now; nobody waits in unref */
        queue_clear(p);
        free(p->q);
        sgl_close(p->sock);
        sgl_close(p->epfd);
        sgl_close(p->evfd);
        free(p);
}

void sgl_publish_free(sgl_writer *w) {
        struct sgl_publish *p = w->publish;

        if (!p)
                return;
        if (w->seg_fn == publish_event && w->seg_userdata == p)
                sgl_writer_set_segment_fn(w, p->chained_fn, p->chained_userdata);
        w->publish = NULL;
        pub_free(p);
}

/* --------------------------------------------------------------- handshake */

static int64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One message from the daemon within PUBLISH_TIMEOUT_MS, flushing the
 * queue meanwhile.  *fd is -1 or the descriptor it carried (ours). */
static int recv_one(struct sgl_publish *p, uint8_t *buf, struct sgl_msg *m, int *fd) {
        int64_t deadline = now_ms() + PUBLISH_TIMEOUT_MS;
        size_t nfds = 0;
        ssize_t n;
        int r;

        *fd = -1;
        for (;;) {
                struct pollfd pf = { .fd = p->sock,
                                     .events = POLLIN | (p->qlen ? POLLOUT : 0) };
                int64_t left = deadline - now_ms();

                if (left <= 0)
                        return -ETIMEDOUT;
                r = poll(&pf, 1, (int)left);
                if (r < 0 && errno != EINTR)
                        return sgl_negerrno();
                if (r <= 0)
                        continue;
                if (pf.revents & POLLOUT) {
                        r = pub_flush(p);
                        if (r < 0 && !(pf.revents & POLLIN))
                                return r; /* else: read why first */
                }
                if (pf.revents & (POLLIN | POLLHUP | POLLERR))
                        break;
        }
        n = sgl_fdpass_recv(p->sock, buf, SGL_MSG_MAX_SIZE, fd, SGL_MSG_MAX_FDS, &nfds);
        if (n == 0)
                return -ECONNRESET;
        if (n < 0)
                return (int)n == -EAGAIN ? -EPROTO : (int)n;
        if (nfds == 0)
                *fd = -1;
        r = sgl_msg_parse(buf, (size_t)n, nfds, m);
        if (r < 0 || sgl_msg_type_is_request(m->type)) {
                *fd = sgl_close(*fd);
                return -EPROTO;
        }
        return 0;
}

/* The reply to the request with @serial: a message of @type (0 or its
 * descriptor in *fd), or the ERROR it got (its errno).  An ERROR with
 * serial 0 (the daemon closing on us) or with the serial of an earlier
 * request that has no reply (a PUBLISH_* it refused) is an answer too. */
static int expect(struct sgl_publish *p, uint32_t serial, uint16_t type, uint8_t *buf,
                  struct sgl_msg *m, int *fd) {
        int r = recv_one(p, buf, m, fd);

        if (r < 0)
                return r;
        if (m->type == SGL_MSG_ERROR && m->serial <= serial)
                return m->error.error;
        if (m->type != type || m->serial != serial) {
                *fd = sgl_close(*fd);
                return -EPROTO;
        }
        return 0;
}

static int check_args(const char *name, unsigned flags, unsigned mode, const uint32_t *uids,
                      size_t n_uids, const uint32_t *gids, size_t n_gids) {
        if (!name || !sgl_name_valid(name, strlen(name)))
                return -EINVAL;
        if ((flags & ~(unsigned)SGL_PUBLISH_PERSIST) || (mode & ~SGL_MSG_MODE_MASK))
                return -EINVAL;
        if (n_uids > SGL_CLAIM_MAX_IDS || n_gids > SGL_CLAIM_MAX_IDS ||
            (n_uids && !uids) || (n_gids && !gids))
                return -EINVAL;
        for (size_t i = 0; i < n_uids; i++)
                if (uids[i] == SGL_MSG_ID_INVALID)
                        return -EINVAL;
        for (size_t i = 0; i < n_gids; i++)
                if (gids[i] == SGL_MSG_ID_INVALID)
                        return -EINVAL;
        return 0;
}

static void close_adopt(struct sgl_adopt_seg *a, size_t n) {
        for (size_t i = 0; a && i < n; i++)
                a[i].fd = sgl_close(a[i].fd);
        free(a);
}

/* After CLAIMED{TAKEOVER}: SEGMENT* then SYNCED, all with @serial. */
static int recv_takeover(struct sgl_publish *p, uint32_t serial, uint8_t *buf,
                         struct sgl_adopt_seg **ret, size_t *ret_n) {
        struct sgl_adopt_seg *a = NULL;
        size_t n = 0, alloc = 0;
        struct sgl_msg m;
        int fd, r;

        for (;;) {
                r = recv_one(p, buf, &m, &fd);
                if (r < 0)
                        goto fail;
                if (m.type == SGL_MSG_SYNCED && m.serial == serial)
                        break;
                if (m.type == SGL_MSG_ERROR && (m.serial == serial || m.serial == 0)) {
                        r = m.error.error;
                        goto fail;
                }
                if (m.type != SGL_MSG_SEGMENT || m.serial != serial || n >= PUBLISH_MAX_TAKEOVER) {
                        sgl_close(fd);
                        r = -EPROTO;
                        goto fail;
                }
                if (n == alloc) {
                        size_t na = alloc ? alloc * 2 : 64;
                        struct sgl_adopt_seg *x = realloc(a, na * sizeof(*x));
                        if (!x) {
                                sgl_close(fd);
                                r = -ENOMEM;
                                goto fail;
                        }
                        a = x;
                        alloc = na;
                }
                /* the event is a hint: adoption goes by the seals */
                a[n++] = (struct sgl_adopt_seg) { .fd = fd, .seq = m.segment.seq,
                                                  .event = m.segment.event };
        }
        *ret = a;
        *ret_n = n;
        return 0;
fail:
        close_adopt(a, n);
        return r;
}

/* Tells the daemon what adoption changed: what it holds as open is sealed
 * now (a sealed copy, or the same file sealed in place by a writer that
 * died before it said so), dropped segments are retired. */
static int publish_adopted(struct sgl_publish *p, const struct sgl_adopt_seg *a, size_t n) {
        for (size_t i = 0; i < n; i++) {
                struct sgl_wseg *s;
                int r = 0;

                switch (a[i].result) {
                case SGL_ADOPT_KEPT:
                        if (a[i].event != SGL_SEGMENT_OPENED)
                                break;
                        /* fall through */
                case SGL_ADOPT_COPIED:
                        s = sgl_writer_find_seg(p->w, a[i].seq);
                        if (s)
                                r = send_segment(p, s->seq, SGL_SEGMENT_SEALED, s->ro_fd);
                        break;
                case SGL_ADOPT_DROPPED:
                        r = send_segment(p, a[i].seq, SGL_SEGMENT_RETIRED, -1);
                        break;
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

static int setup_poll(struct sgl_publish *p) {
        struct epoll_event ev = { .events = EPOLLIN };

        p->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (p->epfd < 0)
                return sgl_negerrno();
        p->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (p->evfd < 0)
                return sgl_negerrno();
        ev.data.fd = p->evfd;
        if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->evfd, &ev) < 0)
                return sgl_negerrno();
        ev.data.fd = p->sock;
        if (p->qlen > 0)
                ev.events |= EPOLLOUT;
        if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->sock, &ev) < 0)
                return sgl_negerrno();
        p->out_armed = p->qlen > 0;
        return 0;
}

/**
 * sgl_writer_publish() - put the writer's area behind sigillod: take the
 * lease of area @name, hand the daemon the control page and every live
 * segment, and from then on every segment the writer opens, seals or
 * retires.  Readers then sgl_reader_open() @name at the daemon, also after
 * the writer is gone when @flags has SGL_PUBLISH_PERSIST.
 * @w: the writer; call this before its first commit (see below)
 * @name: the area's name (1 to 255 of [A-Za-z0-9._-], not starting with
 *        '.'); NULL for the name given to sgl_writer_new()
 * @address: the daemon's socket: a path, or "@name" for the abstract
 *           namespace; NULL for $SIGILLO_SOCKET, else
 *           $XDG_RUNTIME_DIR/sigillo/socket, else /run/sigillo/socket (as
 *           sgl_reader_open())
 * @flags: 0 or SGL_PUBLISH_PERSIST
 * @mode: who may read, only bits 0444: 0400 the writer's uid, 0040 its
 *        gid, 0004 everyone (root always may)
 * @uids: further uids that may read (NULL when @n_uids is 0)
 * @n_uids: at most 64
 * @gids: further groups that may read (NULL when @n_gids is 0)
 * @n_gids: at most 64
 *
 * The daemon decides the area's id.  A writer that has no segment yet
 * takes it; one that already has segments can only publish into an area
 * with its own id (-EXDEV otherwise: segments are immutable, their
 * headers cannot change).  If the name belongs to a PERSIST area of this
 * uid without a writer, the writer takes it over: the daemon hands it the
 * area's live segments, which the writer checks as a reader would and
 * adopts (this needs a writer without segments, else -EBUSY), and it then
 * continues that log: its seqs, versions and anonymous ids go on past the
 * old writer's, and sgl_writer_delete() and compaction know the old ids.
 *
 * Blocks until the daemon confirmed everything (at most 5 s per message).
 * Afterwards nothing blocks: each segment event is one non-blocking send;
 * what the socket cannot take waits in a queue of 1024 messages, flushed on
 * the next event and by sgl_writer_publish_process().  If the queue
 * overflows, publishing ends with -ENOBUFS: the daemon then treats the
 * writer as gone (a PERSIST area stays for a new writer to take over).
 * Publishing ends too when the daemon closes the connection or refuses a
 * segment; see sgl_writer_publish_process().  A writer publishes once:
 * after the connection ended, a new writer takes the area over.
 *
 * The segment callback set with sgl_writer_set_segment_fn() before this
 * call is still called (chained); set it before publishing, not after.
 *
 * Return: 0; -EINVAL (bad name, flags, mode or ids); -EALREADY (published
 * before); -EXDEV (see above); -EBUSY (the lease is held by another writer,
 * or a takeover of a writer that has segments); -EEXIST (the name belongs
 * to another uid); -EACCES (policy reserves the name); -EDQUOT, -ENOSPC
 * (quotas); -EOPNOTSUPP (@address is an embedded host, which takes no
 * writer); -ENOENT, -ECONNREFUSED (no daemon); -ETIMEDOUT; -EPROTO (the
 * daemon broke the protocol); -ENOMEM.  On failure the writer is not
 * published; a takeover that failed after adopting leaves the adopted
 * segments in the writer.
 */
_public_ int sgl_writer_publish(sgl_writer *w, const char *name, const char *address,
                                unsigned flags, unsigned mode, const uint32_t *uids,
                                size_t n_uids, const uint32_t *gids, size_t n_gids) {
        uint8_t buf[SGL_MSG_MAX_SIZE];
        struct sgl_adopt_seg *adopt = NULL;
        size_t n_adopt = 0;
        struct sgl_publish *p;
        struct replay rp;
        struct sgl_msg m;
        uint32_t serial;
        bool takeover, hooked = false;
        int fd = -1, r;

        if (!w)
                return -EINVAL;
        if (!name)
                name = w->name;
        r = check_args(name, flags, mode, uids, n_uids, gids, n_gids);
        if (r < 0)
                return r;
        if (w->publish)
                return -EALREADY;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        *p = (struct sgl_publish) { .w = w, .sock = -1, .epfd = -1, .evfd = -1 };

        r = p->sock = sgl_connect_host(address, PUBLISH_TIMEOUT_MS);
        if (r < 0)
                goto fail;
        serial = next_serial(p);
        r = pub_send(p, buf, sgl_msg_build_hello(buf, sizeof(buf), serial, SGL_PROTO_VERSION_MIN,
                                                 SGL_PROTO_VERSION_MAX, SGL_ROLE_WRITER), -1);
        if (r >= 0)
                r = expect(p, serial, SGL_MSG_WELCOME, buf, &m, &fd);
        if (r >= 0 && (m.welcome.version < SGL_PROTO_VERSION_MIN ||
                       m.welcome.version > SGL_PROTO_VERSION_MAX))
                r = -EPROTO;
        if (r < 0)
                goto fail;

        serial = next_serial(p);
        r = pub_send(p, buf, sgl_msg_build_claim(buf, sizeof(buf), serial,
                                                 (flags & SGL_PUBLISH_PERSIST) ? SGL_CLAIM_PERSIST : 0,
                                                 mode, uids, n_uids, gids, n_gids,
                                                 name, strlen(name)), -1);
        if (r >= 0)
                r = expect(p, serial, SGL_MSG_CLAIMED, buf, &m, &fd);
        if (r < 0)
                goto fail;
        takeover = m.claimed.flags & SGL_CLAIMED_TAKEOVER;

        if (takeover) {
                uint8_t area_id[SGL_AREA_ID_LEN];
                uint64_t next_seq = m.claimed.next_seq;

                memcpy(area_id, m.claimed.area_id, sizeof(area_id));
                r = recv_takeover(p, serial, buf, &adopt, &n_adopt);
                if (r < 0)
                        goto fail;
                /* consumes every descriptor */
                r = sgl_writer_adopt(w, area_id, next_seq, adopt, n_adopt);
                if (r < 0)
                        goto fail;
        } else if (w->nsegs == 0) {
                memcpy(w->area_id, m.claimed.area_id, SGL_AREA_ID_LEN);
                memcpy(w->ctl->area_id, m.claimed.area_id, SGL_AREA_ID_LEN);
                w->next_seq = MAX(w->next_seq, m.claimed.next_seq);
        } else if (memcmp(w->area_id, m.claimed.area_id, SGL_AREA_ID_LEN) != 0 ||
                   w->segs[0]->seq < m.claimed.next_seq) {
                r = -EXDEV;
                goto fail;
        }

        if (fcntl(p->sock, F_SETFL, fcntl(p->sock, F_GETFL) | O_NONBLOCK) < 0) {
                r = sgl_negerrno();
                goto fail;
        }
        r = pub_send(p, buf, sgl_msg_build_publish_control(buf, sizeof(buf), next_serial(p)),
                     w->ctl_fd);
        if (r < 0)
                goto fail;
        if (takeover) {
                r = publish_adopted(p, adopt, n_adopt);
        } else {
                rp = (struct replay) { .p = p };
                (void)sgl_writer_foreach_segment(w, replay_segment, &rp);
                r = rp.err;
        }
        if (r < 0)
                goto fail;

        p->chained_fn = w->seg_fn;
        p->chained_userdata = w->seg_userdata;
        sgl_writer_set_segment_fn(w, publish_event, p);
        hooked = true;

        /* a barrier: the daemon accepted everything before it */
        serial = next_serial(p);
        r = pub_send(p, buf, sgl_msg_build_ping(buf, sizeof(buf), serial), -1);
        if (r >= 0)
                r = expect(p, serial, SGL_MSG_OK, buf, &m, &fd);
        if (r >= 0 && p->sock < 0)
                r = p->error; /* ended while we waited (queue overflow) */
        if (r >= 0)
                r = setup_poll(p);
        if (r < 0)
                goto fail;

        free(adopt);
        w->publish = p;
        return 0;

fail:
        if (hooked && w->seg_fn == publish_event && w->seg_userdata == p)
                sgl_writer_set_segment_fn(w, p->chained_fn, p->chained_userdata);
        close_adopt(adopt, n_adopt);
        pub_free(p);
        return r;
}

/**
 * sgl_writer_get_publish_fd() - a descriptor for poll/epoll/sd-event/GLib
 * that polls readable when publishing needs sgl_writer_publish_process():
 * the daemon said something (it only ever says why it closes the
 * connection) or closed it, queued segment events can be sent, or
 * publishing ended on the writer's side (-ENOBUFS).
 * @w: a writer published with sgl_writer_publish()
 *
 * The descriptor (an epoll descriptor) belongs to the writer.
 *
 * Return: the descriptor, -ENOTCONN if @w was never published, -EINVAL.
 */
_public_ int sgl_writer_get_publish_fd(sgl_writer *w) {
        if (!w)
                return -EINVAL;
        if (!w->publish)
                return -ENOTCONN;
        return w->publish->epfd;
}

/**
 * sgl_writer_publish_process() - send queued segment events and read what
 * the daemon said, without blocking.
 * @w: a writer published with sgl_writer_publish()
 *
 * Return: the number of messages still queued (0 when everything the
 * writer published has been sent), or why publishing ended, every time
 * from then on: -ENOBUFS (the queue overflowed), -ECONNRESET (the daemon
 * closed the connection), the error the daemon gave (-EDQUOT for a quota,
 * -EBADF for a descriptor it refused, -EPROTO...), -EPROTO if it broke the
 * protocol; -ENOTCONN if @w was never published, -EINVAL.
 */
_public_ int sgl_writer_publish_process(sgl_writer *w) {
        struct sgl_publish *p;

        if (!w)
                return -EINVAL;
        p = w->publish;
        if (!p)
                return -ENOTCONN;
        if (p->evfd >= 0) {
                uint64_t v;
                (void)!read(p->evfd, &v, sizeof(v)); /* reset readiness */
        }
        /* first what the daemon said: after an ERROR nothing more goes */
        pub_read(p);
        if (p->sock >= 0) {
                int r = pub_flush(p);
                if (r < 0)
                        pub_fail(p, r);
        }
        if (p->error)
                return p->error;
        return (int)p->qlen;
}
