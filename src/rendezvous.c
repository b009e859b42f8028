/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * rendezvous.c - the embedded host: a writer serves its own area on an
 * AF_UNIX SOCK_SEQPACKET socket, so readers need no daemon.
 *
 * Owns: the listening socket, one connection per reader, the protocol's
 * server side for roles reader and query (doc/protocol.md), access checks on
 * the peer's credentials, and pushing segment events to subscribers.
 *
 * Invariants:
 * - Every client is hostile: each datagram goes through sgl_fdpass_recv()
 *   (descriptors are closed unless the type carries them) and
 *   sgl_msg_parse(); any violation closes the connection at once.
 * - Only read-only descriptions are ever sent (the writer's ro_fd).
 * - A peer owes its HELLO within HOST_HELLO_TIMEOUT_MS.  At most
 *   max_conns() connections in all; a uid other than the writer's and root
 *   holds at most HOST_MAX_CONNS_PER_UID, and such uids together at most 7/8
 *   of max_conns(): no stranger can lock the owner out.  An open segment handed to a TRUSTED reader is marked
 *   exposed, so the writer seals it by copy instead of waiting on pins.
 * - Nothing blocks: sockets are non-blocking, replies that do not fit are
 *   queued, and a peer whose queue holds HOST_MAX_QUEUE messages more than
 *   a whole OPEN reply (one per live segment, plus two) is disconnected, so
 *   a reader that never reads costs bounded memory and never a stall.
 * - Readers that do not read cannot run the writer out of descriptors:
 *   a queued message holds none (a SEGMENT names its seq and an AREA the
 *   control page; the descriptor is looked up when the message is sent);
 *   descriptors in flight, which the kernel charges to the sender's uid
 *   against its RLIMIT_NOFILE (ETOOMANYREFS past it, for every
 *   connection), are bounded by the smallest SO_SNDBUF on each connection
 *   (a handful of messages) and by capping connections at an eighth of
 *   RLIMIT_NOFILE (at most HOST_MAX_CONNS).
 * - The host owns the writer's segment callback while it lives (it chains
 *   to the one set before).
 */
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "internal.h"
#include "fdpass.h"
#include "protocol.h"
#include "rendezvous.h"
#include "writer-internal.h"

#define HOST_MAX_CONNS 1024
#define HOST_MAX_CONNS_PER_UID 64    /* doc/protocol.md section 12 */
#define HOST_HELLO_TIMEOUT_MS 10000
#define HOST_TIMER_KEY UINT64_MAX    /* epoll key of the timerfd */
#define HOST_MAX_QUEUE 256
#define HOST_MAX_GROUPS 64
#define HOST_READS_PER_ROUND 16

/* What descriptor goes with a message: looked up only when it is sent. */
enum out_fd {
        OUT_NONE,
        OUT_SEGMENT,             /* the live segment outmsg.seq, if any */
        OUT_CONTROL,             /* a new descriptor of the control page */
};

struct outmsg {
        size_t len;
        enum out_fd what;
        uint64_t seq;
        uint8_t *buf;
};

struct host_conn {
        uint64_t id;             /* epoll key; never reused */
        int fd;
        uid_t uid;
        gid_t gids[HOST_MAX_GROUPS + 1];
        size_t ngids;
        uint64_t accepted_ms;    /* CLOCK_MONOTONIC: HELLO is due 10 s on */
        enum sgl_conn_state state;
        uint32_t role;
        bool trusted;
        bool subscribed;
        bool watching_out;       /* EPOLLOUT is in its epoll events */
        struct outmsg *q;        /* ring of qsize, grown on demand */
        size_t qhead;
        size_t qlen;
        size_t qsize;
};

struct sgl_host {
        unsigned n_ref;
        sgl_writer *w;
        int listen_fd;
        int spare_fd;            /* given up to refuse a peer at EMFILE */
        int timer_fd;            /* ticks while a peer owes its HELLO */
        bool timer_armed;
        unsigned hello_timeout_ms;
        int epfd;
        char *path;              /* to unlink; NULL for abstract names */
        struct host_conn **conns;
        size_t nconns;
        uint64_t next_conn_id;
        uint32_t mode;
        uint32_t *uids;
        size_t n_uids;
        uint32_t *gids;
        size_t n_gids;
        sgl_segment_fn chained_fn;
        void *chained_userdata;
};

int sgl_sockaddr_from_string(const char *address, struct sockaddr_un *sa,
                             socklen_t *ret_len) {
        size_t len;

        if (!address || !*address)
                return -EINVAL;
        len = strlen(address);
        if (len >= sizeof(sa->sun_path))
                return -ENAMETOOLONG;
        memset(sa, 0, sizeof(*sa));
        sa->sun_family = AF_UNIX;
        memcpy(sa->sun_path, address, len);
        if (address[0] == '@')
                sa->sun_path[0] = '\0'; /* abstract namespace, unterminated */
        else
                len++;
        *ret_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
        return 0;
}

/* $SIGILLO_SOCKET, else $XDG_RUNTIME_DIR/sigillo/socket, else the system
 * daemon's /run/sigillo/socket. */
static int default_address(char *buf, size_t size) {
        const char *e = secure_getenv("SIGILLO_SOCKET");
        int n;

        if (e && *e)
                n = snprintf(buf, size, "%s", e);
        else if ((e = secure_getenv("XDG_RUNTIME_DIR")) && *e == '/')
                n = snprintf(buf, size, "%s/sigillo/socket", e);
        else
                n = snprintf(buf, size, "/run/sigillo/socket");
        return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/*
 * sgl_connect_host() - a connected SOCK_SEQPACKET socket to the host at
 * @address (NULL: the default chain above).  @timeout_ms bounds connect()
 * on a full backlog and later blocking sends (SO_SNDTIMEO).  Returns the
 * descriptor or -errno (-ETIMEDOUT for a host that does not accept).
 */
int sgl_connect_host(const char *address, int timeout_ms) {
        struct timeval tv = { .tv_sec = timeout_ms / 1000,
                              .tv_usec = (timeout_ms % 1000) * 1000 };
        _cleanup_close_ int fd = -1;
        struct sockaddr_un sa;
        socklen_t salen;
        char def[256];
        int r;

        if (!address) {
                r = default_address(def, sizeof(def));
                if (r < 0)
                        return r;
                address = def;
        }
        r = sgl_sockaddr_from_string(address, &sa, &salen);
        if (r < 0)
                return r;
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return sgl_negerrno();
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(fd, (struct sockaddr *)&sa, salen) < 0)
                return errno == EINPROGRESS || errno == EAGAIN ? -ETIMEDOUT : sgl_negerrno();
        return TAKE_FD(fd);
}

static void conn_free(struct host_conn *c) {
        if (!c)
                return;
        for (size_t i = 0; i < c->qlen; i++)
                free(c->q[(c->qhead + i) % c->qsize].buf);
        free(c->q);
        sgl_close(c->fd);
        free(c);
}

static void conn_drop(sgl_host *h, struct host_conn *c) {
        for (size_t i = 0; i < h->nconns; i++) {
                if (h->conns[i] != c)
                        continue;
                h->conns[i] = h->conns[--h->nconns];
                break;
        }
        epoll_ctl(h->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        conn_free(c);
}

/* Whether to wake for room in @c's socket: only while messages wait (one
 * epoll_ctl per change, not per message). */
static int conn_watch_out(sgl_host *h, struct host_conn *c, bool out) {
        struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0), .data.u64 = c->id };

        if (c->watching_out == out)
                return 0;
        if (epoll_ctl(h->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
                return sgl_negerrno();
        c->watching_out = out;
        return 0;
}

/* Sends the queued messages in order; stops at a full socket. */
static int conn_flush(sgl_host *h, struct host_conn *c) {
        while (c->qlen > 0) {
                struct outmsg *m = &c->q[c->qhead];
                _cleanup_close_ int owned = -1;
                int fd = -1;
                ssize_t n;

                if (m->what == OUT_CONTROL) {
                        fd = owned = sgl_writer_control_fd(h->w);
                        if (fd < 0)
                                return fd;
                } else if (m->what == OUT_SEGMENT) {
                        struct sgl_wseg *s = sgl_writer_find_seg(h->w, m->seq);
                        /* retired since it was queued: its live chunks were
                         * relocated into a later segment, which a subscriber
                         * is sent after this; a one-shot OPEN would miss
                         * them, so it ends instead */
                        if (!s && !c->subscribed)
                                return -ESTALE;
                        fd = s ? s->ro_fd : -1;
                }
                if (m->what != OUT_SEGMENT || fd >= 0) {
                        n = sgl_fdpass_send(c->fd, m->buf, m->len, &fd, fd >= 0);
                        if (n == -EAGAIN)
                                return conn_watch_out(h, c, true);
                        if (n < 0)
                                return (int)n;
                }
                free(m->buf);
                c->qhead = (c->qhead + 1) % c->qsize;
                c->qlen--;
        }
        return conn_watch_out(h, c, false);
}

/* Sends one message now (with @fd) or queues it (noting @what and @seq,
 * never a descriptor).  -ENOBUFS when the peer's queue is full: the caller
 * disconnects it. */
static int conn_send(sgl_host *h, struct host_conn *c, const void *buf, size_t len, int fd,
                     enum out_fd what, uint64_t seq) {
        struct outmsg *m;
        ssize_t n;

        if (c->qlen == 0) {
                n = sgl_fdpass_send(c->fd, buf, len, &fd, fd >= 0);
                if (n >= 0)
                        return 0;
                if (n != -EAGAIN)
                        return (int)n;
        }
        /* room for a whole OPEN (or STAT) reply, and HOST_MAX_QUEUE more */
        if (c->qlen >= HOST_MAX_QUEUE + h->w->nsegs + 2)
                return -ENOBUFS;
        if (c->qlen == c->qsize) {
                size_t size = c->qsize ? c->qsize * 2 : 16;
                struct outmsg *q = malloc(size * sizeof(*q));
                if (!q)
                        return -ENOMEM;
                for (size_t i = 0; i < c->qlen; i++)
                        q[i] = c->q[(c->qhead + i) % c->qsize];
                free(c->q);
                c->q = q;
                c->qhead = 0;
                c->qsize = size;
        }
        m = &c->q[(c->qhead + c->qlen) % c->qsize];
        m->buf = malloc(len);
        if (!m->buf)
                return -ENOMEM;
        memcpy(m->buf, buf, len);
        m->len = len;
        m->what = fd >= 0 ? what : OUT_NONE;
        m->seq = seq;
        c->qlen++;
        return conn_watch_out(h, c, true);
}

static bool may_read(const sgl_host *h, const struct host_conn *c) {
        if (c->uid == 0 || (h->mode & 0004))
                return true;
        if ((h->mode & 0400) && c->uid == geteuid())
                return true;
        for (size_t i = 0; i < h->n_uids; i++)
                if (h->uids[i] == c->uid)
                        return true;
        for (size_t i = 0; i < c->ngids; i++) {
                if ((h->mode & 0040) && c->gids[i] == getegid())
                        return true;
                for (size_t j = 0; j < h->n_gids; j++)
                        if (h->gids[j] == c->gids[i])
                                return true;
        }
        return false;
}

struct replay {
        sgl_host *h;
        struct host_conn *c;
        uint32_t serial;
        int err;
};

static void replay_segment(void *userdata, uint64_t seq, sgl_segment_event ev, int fd) {
        struct replay *rp = userdata;
        uint8_t buf[64];
        ssize_t n;

        if (rp->err < 0 || (ev == SGL_SEGMENT_OPENED && !rp->c->trusted))
                return;
        if (ev == SGL_SEGMENT_OPENED)
                sgl_writer_mark_exposed(rp->h->w, seq); /* pinnable now */
        n = sgl_msg_build_segment(buf, sizeof(buf), rp->serial, seq, ev);
        rp->err = n < 0 ? (int)n : conn_send(rp->h, rp->c, buf, (size_t)n, fd, OUT_SEGMENT, seq);
}

static bool name_is_ours(const sgl_host *h, const char *name, size_t len) {
        return strlen(h->w->name) == len && memcmp(h->w->name, name, len) == 0;
}

static int send_info(sgl_host *h, struct host_conn *c, uint32_t serial) {
        sgl_writer_stats st;
        uint8_t buf[SGL_MSG_MAX_SIZE];
        uint32_t readers = 0;
        ssize_t n;

        sgl_writer_get_stats(h->w, &st);
        for (size_t i = 0; i < h->nconns; i++)
                readers += h->conns[i]->subscribed;
        n = sgl_msg_build_area_info(buf, sizeof(buf), serial, geteuid(), h->mode,
                                    SGL_INFO_WRITER_PRESENT, readers, st.segments,
                                    st.bytes_used, st.bytes_live, h->w->name,
                                    strlen(h->w->name));
        return n < 0 ? (int)n : conn_send(h, c, buf, (size_t)n, -1, OUT_NONE, 0);
}

static int send_simple(sgl_host *h, struct host_conn *c, ssize_t n, const uint8_t *buf) {
        return n < 0 ? (int)n : conn_send(h, c, buf, (size_t)n, -1, OUT_NONE, 0);
}

static int send_error(sgl_host *h, struct host_conn *c, uint32_t serial, int err) {
        uint8_t buf[64];
        return send_simple(h, c, sgl_msg_build_error(buf, sizeof(buf), serial, err), buf);
}

/* OPEN: the area message (with the control page), every live segment the
 * reader's integrity level admits, SYNCED; then pushes if subscribed. */
static int handle_open(sgl_host *h, struct host_conn *c, const struct sgl_msg *m) {
        struct replay rp = { .h = h, .c = c, .serial = m->serial };
        _cleanup_close_ int ctl = -1;
        uint8_t buf[64];
        ssize_t n;
        int r;

        if (!name_is_ours(h, m->open.name, m->open.name_len))
                return send_error(h, c, m->serial, -ENOENT);
        if (!may_read(h, c))
                return send_error(h, c, m->serial, -EACCES);

        ctl = sgl_writer_control_fd(h->w);
        if (ctl < 0)
                return send_error(h, c, m->serial, ctl);
        n = sgl_msg_build_area(buf, sizeof(buf), m->serial, h->w->area_id,
                               SGL_AREA_WRITER_PRESENT);
        if (n < 0)
                return (int)n;
        r = conn_send(h, c, buf, (size_t)n, ctl, OUT_CONTROL, 0);
        if (r < 0)
                return r;

        c->trusted = m->open.flags & SGL_OPEN_TRUSTED;
        sgl_writer_foreach_segment(h->w, replay_segment, &rp);
        if (rp.err < 0)
                return rp.err;
        r = send_simple(h, c, sgl_msg_build_synced(buf, sizeof(buf), m->serial), buf);
        if (r < 0)
                return r;
        if (m->open.flags & SGL_OPEN_SUBSCRIBE) {
                c->subscribed = true;
                c->state = SGL_CONN_SUBSCRIBED;
        }
        return 0;
}

static void info_segment(void *userdata, uint64_t seq, sgl_segment_event ev, int fd) {
        struct replay *rp = userdata;
        uint8_t buf[64];
        struct stat st;
        int seals;
        ssize_t n;

        if (rp->err < 0)
                return;
        seals = fcntl(fd, F_GET_SEALS);
        if (seals < 0 || fstat(fd, &st) < 0) {
                rp->err = sgl_negerrno();
                return;
        }
        n = sgl_msg_build_segment_info(buf, sizeof(buf), rp->serial, seq, (uint64_t)st.st_size,
                                       (uint32_t)seals, ev);
        rp->err = n < 0 ? (int)n : conn_send(rp->h, rp->c, buf, (size_t)n, -1, OUT_NONE, 0);
}

static int dispatch(sgl_host *h, struct host_conn *c, const struct sgl_msg *m) {
        struct replay rp = { .h = h, .c = c, .serial = m->serial };
        uint8_t buf[64];
        int v, r;

        if (!sgl_msg_type_is_request(m->type) ||
            !sgl_msg_request_allowed(c->state, c->role, m->type))
                return -EBADMSG;

        switch (m->type) {
        case SGL_MSG_HELLO:
                v = sgl_proto_negotiate(m->hello.min_version, m->hello.max_version);
                if (v < 0 || m->hello.role == SGL_ROLE_WRITER) {
                        /* say why, then hang up: an embedded host takes no writer */
                        send_error(h, c, m->serial, v < 0 ? v : -EOPNOTSUPP);
                        return -EPROTO;
                }
                c->role = m->hello.role;
                c->state = SGL_CONN_READY;
                return send_simple(h, c, sgl_msg_build_welcome(buf, sizeof(buf), m->serial,
                                                               (uint16_t)v, SGL_MSG_MAX_SIZE,
                                                               SGL_NAME_MAX), buf);
        case SGL_MSG_OPEN:
                return handle_open(h, c, m);
        case SGL_MSG_LIST:
                if (may_read(h, c)) {
                        r = send_info(h, c, m->serial);
                        if (r < 0)
                                return r;
                }
                return send_simple(h, c, sgl_msg_build_end(buf, sizeof(buf), m->serial), buf);
        case SGL_MSG_STAT:
                if (!name_is_ours(h, m->stat.name, m->stat.name_len) || !may_read(h, c))
                        return send_error(h, c, m->serial, -ENOENT);
                r = send_info(h, c, m->serial);
                if (r < 0)
                        return r;
                sgl_writer_foreach_segment(h->w, info_segment, &rp);
                if (rp.err < 0)
                        return rp.err;
                return send_simple(h, c, sgl_msg_build_end(buf, sizeof(buf), m->serial), buf);
        case SGL_MSG_PING:
                return send_simple(h, c, sgl_msg_build_ok(buf, sizeof(buf), m->serial), buf);
        default:
                return -EBADMSG;
        }
}

/* Reads and handles what one client sent; -errno means: drop it. */
static int conn_read(sgl_host *h, struct host_conn *c) {
        for (int i = 0; i < HOST_READS_PER_ROUND; i++) {
                uint8_t buf[SGL_MSG_MAX_SIZE];
                int fds[SGL_MSG_MAX_FDS];
                size_t nfds = 0;
                struct sgl_msg m;
                ssize_t n;
                int r;

                n = sgl_fdpass_recv(c->fd, buf, sizeof(buf), fds, SGL_MSG_MAX_FDS, &nfds);
                if (n == -EAGAIN)
                        return 0;
                if (n <= 0)
                        return n == 0 ? -ECONNRESET : (int)n;
                /* no request to an embedded host carries a descriptor */
                for (size_t k = 0; k < nfds; k++)
                        sgl_close(fds[k]);
                r = sgl_msg_parse(buf, (size_t)n, nfds, &m);
                if (r < 0)
                        return r;
                if (nfds > 0)
                        return -EBADMSG;
                r = dispatch(h, c, &m);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void peer_credentials(struct host_conn *c) {
        struct ucred cred;
        socklen_t len = sizeof(cred);
        gid_t groups[HOST_MAX_GROUPS];

        c->uid = (uid_t)-1;
        c->ngids = 0;
        if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return;
        c->uid = cred.uid;
        c->gids[c->ngids++] = cred.gid;
        len = sizeof(groups);
        if (getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0)
                for (size_t i = 0; i < len / sizeof(gid_t) && c->ngids < ELEMENTSOF(c->gids); i++)
                        c->gids[c->ngids++] = groups[i];
}

/* An eighth of the descriptors this process may have, at most
 * HOST_MAX_CONNS: with the smallest SO_SNDBUF (about 6 messages in flight
 * each) the connections' sockets and in-flight descriptors stay well
 * below RLIMIT_NOFILE. */
static size_t max_conns(void) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
            rl.rlim_cur / 8 >= HOST_MAX_CONNS)
                return HOST_MAX_CONNS;
        return MAX((size_t)rl.rlim_cur / 8, 1);
}

static uint64_t mono_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The writer's own uid and root: not bound by the per-uid limit, and they
 * alone may use the last eighth of the connections, so no stranger can
 * lock the owner out of its own area. */
static bool privileged(const struct host_conn *c) {
        return c->uid == 0 || c->uid == geteuid();
}

/* Room for @c: at most @limit connections in all (each costs the writer a
 * descriptor), strangers at most 7/8 of them and HOST_MAX_CONNS_PER_UID of
 * any one uid. */
static bool admit(const sgl_host *h, const struct host_conn *c, size_t limit) {
        size_t strangers = 0, same = 0;

        if (h->nconns >= limit)
                return false;
        if (privileged(c))
                return true;
        for (size_t i = 0; i < h->nconns; i++) {
                if (privileged(h->conns[i]))
                        continue;
                strangers++;
                same += h->conns[i]->uid == c->uid;
        }
        return strangers < limit - limit / 8 && same < HOST_MAX_CONNS_PER_UID;
}

/* A 1 s tick while some peer still owes its HELLO, off otherwise: a peer
 * that connects and says nothing is dropped after HOST_HELLO_TIMEOUT_MS. */
static void arm_timer(sgl_host *h, bool on) {
        struct itimerspec its = { 0 };

        if (h->timer_fd < 0 || h->timer_armed == on)
                return;
        if (on) {
                /* tick at half the deadline, at most every second */
                unsigned ms = MIN(h->hello_timeout_ms / 2 + 1, 1000u);
                its.it_interval.tv_sec = ms / 1000;
                its.it_interval.tv_nsec = (long)(ms % 1000) * 1000000;
                its.it_value = its.it_interval;
        }
        if (timerfd_settime(h->timer_fd, 0, &its, NULL) == 0)
                h->timer_armed = on;
}

static void drop_silent(sgl_host *h) {
        uint64_t now = mono_ms(), ticks;
        bool waiting = false;

        (void)!read(h->timer_fd, &ticks, sizeof(ticks));
        for (size_t i = 0; i < h->nconns;) {
                struct host_conn *c = h->conns[i];
                if (c->state != SGL_CONN_NEW) {
                        i++;
                } else if (now - c->accepted_ms >= h->hello_timeout_ms) {
                        conn_drop(h, c); /* conns[i] now holds another */
                } else {
                        waiting = true;
                        i++;
                }
        }
        arm_timer(h, waiting);
}

static void host_accept(sgl_host *h) {
        size_t limit = max_conns();

        for (;;) {
                struct epoll_event ev = { .events = EPOLLIN };
                struct host_conn *c, **a;
                int fd = accept4(h->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                int one = 1;

                if (fd < 0 && (errno == EMFILE || errno == ENFILE) && h->spare_fd >= 0) {
                        /* out of descriptors: the pending peer would keep
                         * the listener readable and an event loop spinning;
                         * free the spare, take the peer and hang up on it */
                        h->spare_fd = sgl_close(h->spare_fd);
                        fd = accept4(h->listen_fd, NULL, NULL, SOCK_CLOEXEC);
                        sgl_close(fd);
                        h->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                        continue;
                }
                if (fd < 0)
                        return; /* EAGAIN (or no spare to give up) */
                /* the kernel's minimum: what does not fit waits in our
                 * queue, without a descriptor */
                (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &one, sizeof(one));
                /* no request to an embedded host carries a descriptor: the
                 * kernel refuses them at the sender */
                (void)sgl_fdpass_refuse(fd);
                a = realloc(h->conns, (h->nconns + 1) * sizeof(*a));
                c = calloc(1, sizeof(*c));
                if (!a || !c) {
                        if (a)
                                h->conns = a;
                        free(c);
                        close(fd);
                        continue;
                }
                h->conns = a;
                c->fd = fd;
                c->id = ++h->next_conn_id;
                c->accepted_ms = mono_ms();
                peer_credentials(c);
                if (!admit(h, c, limit)) {
                        conn_free(c);
                        continue;
                }
                arm_timer(h, true);
                ev.data.u64 = c->id;
                if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                        conn_free(c);
                        continue;
                }
                h->conns[h->nconns++] = c;
        }
}

/* The writer's segment callback while hosted: push to subscribers. */
static void host_segment_event(void *userdata, uint64_t seq, sgl_segment_event ev, int fd) {
        sgl_host *h = userdata;
        uint8_t buf[64];
        ssize_t n;

        if (ev == SGL_SEGMENT_RETIRED)
                n = sgl_msg_build_retired(buf, sizeof(buf), seq);
        else
                n = sgl_msg_build_segment(buf, sizeof(buf), 0, seq, ev);
        for (size_t i = 0; n > 0 && i < h->nconns;) {
                struct host_conn *c = h->conns[i];
                if (ev == SGL_SEGMENT_OPENED && c->subscribed && c->trusted)
                        sgl_writer_mark_exposed(h->w, seq); /* pinnable now */
                if (!c->subscribed || (ev == SGL_SEGMENT_OPENED && !c->trusted) ||
                    conn_send(h, c, buf, (size_t)n, fd, OUT_SEGMENT, seq) >= 0) {
                        i++;
                        continue;
                }
                conn_drop(h, c); /* too slow or gone: never buffered without bound */
        }
        if (h->chained_fn)
                h->chained_fn(h->chained_userdata, seq, ev, fd);
}

/**
 * sgl_host_new() - serve a writer's area on an AF_UNIX socket, so readers can
 * sgl_reader_open() it without a daemon.
 * @w: the writer (the host takes a reference and its segment callback,
 *     chaining to the one set before)
 * @address: a filesystem path (a stale socket file there, one nobody
 *           listens on, is replaced) or "@name" for the abstract namespace
 * @ret: the new host
 *
 * Readers are served as sgl_host_process() runs; drive it from an event loop
 * with sgl_host_get_fd().  By default only the writer's own uid (and root)
 * may read: see sgl_host_set_access().  At most RLIMIT_NOFILE / 8 clients
 * (and never more than 1024) are connected at a time: raise RLIMIT_NOFILE
 * for more.
 *
 * Return: 0 or -errno (-EADDRINUSE when a live socket is at @address).
 */
_public_ int sgl_host_new(sgl_writer *w, const char *address, sgl_host **ret) {
        struct epoll_event ev = { .events = EPOLLIN };
        struct sockaddr_un sa;
        socklen_t salen;
        sgl_host *h;
        int r;

        if (!w || !ret)
                return -EINVAL;
        r = sgl_sockaddr_from_string(address, &sa, &salen);
        if (r < 0)
                return r;
        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        *h = (sgl_host) { .n_ref = 1, .listen_fd = -1, .epfd = -1, .timer_fd = -1,
                          .mode = 0400, .hello_timeout_ms = HOST_HELLO_TIMEOUT_MS };
        h->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

        h->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (h->listen_fd < 0)
                goto fail_errno;
        if (address[0] != '@') {
                struct stat st;
                /* replace a stale socket file, never anything else */
                if (lstat(address, &st) == 0 && S_ISSOCK(st.st_mode)) {
                        int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
                        bool live;

                        if (probe < 0)
                                goto fail_errno;
                        /* only ECONNREFUSED says nobody listens: a live
                         * socket of another type answers EPROTOTYPE */
                        live = connect(probe, (struct sockaddr *)&sa, salen) == 0 ||
                               errno != ECONNREFUSED;
                        sgl_close(probe);
                        if (live) {
                                r = -EADDRINUSE;
                                goto fail;
                        }
                        unlink(address);
                }
                h->path = strdup(address);
                if (!h->path) {
                        r = -ENOMEM;
                        goto fail;
                }
        }
        if (bind(h->listen_fd, (struct sockaddr *)&sa, salen) < 0 ||
            listen(h->listen_fd, 128) < 0)
                goto fail_errno;
        h->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (h->epfd < 0)
                goto fail_errno;
        ev.data.u64 = 0; /* the listener; connections count from 1 */
        if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->listen_fd, &ev) < 0)
                goto fail_errno;
        h->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        ev.data.u64 = HOST_TIMER_KEY;
        if (h->timer_fd < 0 || epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->timer_fd, &ev) < 0)
                goto fail_errno;

        h->w = sgl_writer_ref(w);
        h->chained_fn = w->seg_fn;
        h->chained_userdata = w->seg_userdata;
        sgl_writer_set_segment_fn(w, host_segment_event, h);
        *ret = h;
        return 0;

fail_errno:
        r = sgl_negerrno();
fail:
        if (h->path && h->listen_fd >= 0 && r != -EADDRINUSE)
                unlink(h->path);
        free(h->path);
        h->path = NULL;
        sgl_close(h->listen_fd);
        sgl_close(h->spare_fd);
        sgl_close(h->timer_fd);
        sgl_close(h->epfd);
        free(h);
        return r;
}

/**
 * sgl_host_ref() - take a reference.
 * @h: the host, or NULL
 *
 * Return: @h.
 */
_public_ sgl_host *sgl_host_ref(sgl_host *h) {
        if (h)
                h->n_ref++;
        return h;
}

/**
 * sgl_host_unref() - drop a reference; the last one disconnects every
 * reader (they keep what they mapped), removes the socket file, gives the
 * writer its segment callback back and drops the writer reference.
 * @h: the host, or NULL
 *
 * Return: NULL.
 */
_public_ sgl_host *sgl_host_unref(sgl_host *h) {
        if (!h || --h->n_ref > 0)
                return NULL;
        if (h->w) {
                sgl_writer_set_segment_fn(h->w, h->chained_fn, h->chained_userdata);
                sgl_writer_unref(h->w);
        }
        for (size_t i = 0; i < h->nconns; i++)
                conn_free(h->conns[i]);
        free(h->conns);
        if (h->path)
                unlink(h->path);
        free(h->path);
        sgl_close(h->listen_fd);
        sgl_close(h->spare_fd);
        sgl_close(h->timer_fd);
        sgl_close(h->epfd);
        free(h->uids);
        free(h->gids);
        free(h);
        return NULL;
}

/**
 * sgl_host_set_access() - who may read the hosted area.
 * @h: the host
 * @mode: read bits: 0400 the writer's uid, 0040 its gid, 0004 everyone
 * @uids: further uids allowed (may be NULL when @n_uids is 0)
 * @n_uids: at most 64
 * @gids: further gids allowed (primary or supplementary groups of the peer)
 * @n_gids: at most 64
 *
 * Checked against SO_PEERCRED/SO_PEERGROUPS when a reader opens the area;
 * root may always read.  Applies to readers that open from now on.
 *
 * Return: 0, -EINVAL, -ENOMEM.
 */
_public_ int sgl_host_set_access(sgl_host *h, unsigned mode, const uint32_t *uids,
                                 size_t n_uids, const uint32_t *gids, size_t n_gids) {
        uint32_t *u = NULL, *g = NULL;

        if (!h || (mode & ~0444u) || n_uids > SGL_CLAIM_MAX_IDS ||
            n_gids > SGL_CLAIM_MAX_IDS || (n_uids && !uids) || (n_gids && !gids))
                return -EINVAL;
        if (n_uids && !(u = malloc(n_uids * sizeof(*u))))
                return -ENOMEM;
        if (n_gids && !(g = malloc(n_gids * sizeof(*g)))) {
                free(u);
                return -ENOMEM;
        }
        if (n_uids)
                memcpy(u, uids, n_uids * sizeof(*u));
        if (n_gids)
                memcpy(g, gids, n_gids * sizeof(*g));
        free(h->uids);
        free(h->gids);
        h->uids = u;
        h->n_uids = n_uids;
        h->gids = g;
        h->n_gids = n_gids;
        h->mode = mode;
        return 0;
}

/* For tests: a shorter HELLO deadline than HOST_HELLO_TIMEOUT_MS. */
void sgl_host_set_hello_timeout_ms(sgl_host *h, unsigned ms) {
        h->hello_timeout_ms = MAX(ms, 1u);
        if (h->timer_armed) {
                arm_timer(h, false);
                arm_timer(h, true);
        }
}

/**
 * sgl_host_get_fd() - a descriptor that polls readable when
 * sgl_host_process() has work (an epoll descriptor, owned by the host).
 * @h: the host
 *
 * Return: the descriptor or -EINVAL.
 */
_public_ int sgl_host_get_fd(sgl_host *h) {
        return h ? h->epfd : -EINVAL;
}

/**
 * sgl_host_process() - accept readers and answer them without blocking.
 * @h: the host
 *
 * A client that breaks the protocol, sends descriptors it may not, or lets
 * HOST_MAX_QUEUE messages beyond a whole OPEN reply pile up is
 * disconnected; that is not an error of the host.
 *
 * Return: the number of events handled (0 if none was pending) or -errno.
 */
_public_ int sgl_host_process(sgl_host *h) {
        struct epoll_event evs[32];
        int n;

        if (!h)
                return -EINVAL;
        n = epoll_wait(h->epfd, evs, ELEMENTSOF(evs), 0);
        if (n < 0)
                return errno == EINTR ? 0 : sgl_negerrno();
        for (int i = 0; i < n; i++) {
                struct host_conn *c = NULL;
                int r = 0;

                if (evs[i].data.u64 == 0) {
                        host_accept(h);
                        continue;
                }
                if (evs[i].data.u64 == HOST_TIMER_KEY) {
                        drop_silent(h);
                        continue;
                }
                /* a connection dropped earlier in this round is gone */
                for (size_t k = 0; k < h->nconns && !c; k++)
                        if (h->conns[k]->id == evs[i].data.u64)
                                c = h->conns[k];
                if (!c)
                        continue;
                if (evs[i].events & EPOLLOUT)
                        r = conn_flush(h, c);
                if (r >= 0 && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                        r = conn_read(h, c);
                if (r >= 0 && (evs[i].events & (EPOLLHUP | EPOLLERR)) && !(evs[i].events & EPOLLIN))
                        r = -ECONNRESET;
                if (r < 0)
                        conn_drop(h, c);
        }
        return n;
}

/**
 * sgl_host_get_connections() - how many clients are connected.
 * @h: the host
 *
 * Return: the count or -EINVAL.
 */
_public_ int sgl_host_get_connections(sgl_host *h) {
        return h ? (int)h->nconns : -EINVAL;
}
