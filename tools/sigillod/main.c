/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * main.c - sigillod: the rendezvous daemon of sigillo.
 *
 * Owns: arguments, setting up (listening sockets, inherited or bound; the
 * policy; limits; the fd store's descriptors handed back at start; dropping
 * privileges), the one epoll loop, and every connection's bytes: receiving
 * through the one hardened path (sgl_fdpass_recv), parsing
 * (sgl_msg_parse), the bounded outbound queue, timeouts, and closing; and
 * talking to the service manager (READY=1, STATUS=, STOPPING=1, FDSTORE=1).
 * What a message means is registry.c's business.
 *
 * Invariants:
 *  - Nothing blocks: every socket is non-blocking, what cannot be sent at
 *    once is queued, and a connection whose queue reaches its bound (or
 *    its uid's) is closed without another word: a peer that never reads
 *    costs bounded memory and never a stall.
 *  - epoll keys are connection ids, never pointers, and a connection is
 *    freed only at the end of a loop round ("doomed" until then), so an
 *    event that names a connection closed earlier in the round finds it
 *    doomed, not freed.
 *  - Every descriptor that arrives is either handed to the registry (which
 *    keeps or closes it) or closed here before the next message is read.
 *  - Signals arrive through a signalfd: SIGTERM/SIGINT end the loop (clean
 *    exit 0, everything freed), SIGHUP reloads the policy.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "fdpass.h"
#include "protocol.h"
#include "rendezvous.h"
#include "policy.h"
#include "privs.h"
#include "registry.h"
#include "systemd.h"

#define MAX_LISTENERS 16
#define CONN_BUCKETS 4096
#define READS_PER_ROUND 16        /* messages per connection per round */
#define ACCEPTS_PER_ROUND 16        /* accepting must not outpace closing */
#define CLOSING_TIMEOUT_MS 5000   /* to flush what was queued before GONE */
#define REFUSED_TIMEOUT_MS 1000   /* a refused peer has this long to HELLO */
#define FD_RESERVE 32             /* descriptors kept free for the daemon */
#define TICK_MS 250
#define DRAIN_AT_CLOSE 64         /* unread requests discarded at close */

/* epoll keys below KEY_CONN_BASE are not connections */
#define KEY_SIGNAL 1
#define KEY_TIMER 2
#define KEY_LISTENER 16           /* + index */
#define KEY_CONN_BASE 1024

#define container_of(ptr, type, member) \
        ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

struct outmsg {
        struct outmsg *next;
        struct sgld_file *file;
        size_t len;
        uint8_t buf[];
};

struct conn {
        struct sgld_peer peer;
        int fd;
        struct outmsg *qhead, **qtail;
        size_t qlen;
        bool doomed;              /* freed at the end of the round */
        bool closing;             /* close once the queue is empty */
        bool want_out;
        uint64_t since_ms;        /* accepted, or began closing */
        struct conn *hnext;       /* id hash chain */
        struct conn *prev, *next; /* every connection */
        struct conn *doom_next;
};

struct listener {
        int fd;
        bool paused;              /* out of descriptors: retry next tick */
        char *path;               /* to unlink at exit; NULL if inherited */
};

static struct {
        struct sgld_registry *reg;
        const struct sgld_limits *lim;
        int epfd, sigfd, timerfd;
        struct listener listeners[MAX_LISTENERS];
        size_t n_listeners;
        struct conn *conns[CONN_BUCKETS];
        struct conn *all;
        struct conn *doomed;
        size_t n_conns;
        uint64_t next_id;
        uint64_t nofile;
        int log_level;
        bool journal;
        bool fdstore;             /* $NOTIFY_SOCKET: areas go to the fd store */
        bool quit;
        const char *policy_dir;
        uint64_t log_window_ms;
        unsigned log_in_window, log_suppressed;
        size_t last_areas, last_conns;
} d = {
        .epfd = -1, .sigfd = -1, .timerfd = -1,
        .next_id = KEY_CONN_BASE,
        .log_level = SGLD_LOG_INFO,
};

/* ------------------------------------------------------------- logging */

static uint64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* One line per event to stderr (with a <N> level prefix for the journal).
 * Everything but errors can be caused by peers at will, so unless
 * --verbose it is limited to 100 lines a second. */
void sgld_log(int level, const char *fmt, ...) {
        va_list ap;

        if (level > d.log_level)
                return;
        if (level > SGLD_LOG_ERR && d.log_level < SGLD_LOG_DEBUG) {
                uint64_t t = now_ms();

                if (t - d.log_window_ms >= 1000) {
                        if (d.log_suppressed)
                                fprintf(stderr, "%ssigillod: %u messages suppressed\n",
                                        d.journal ? "<4>" : "", d.log_suppressed);
                        d.log_window_ms = t;
                        d.log_in_window = 0;
                        d.log_suppressed = 0;
                }
                if (++d.log_in_window > 100) {
                        d.log_suppressed++;
                        return;
                }
        }
        if (d.journal)
                fprintf(stderr, "<%d>", level);
        fputs("sigillod: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

static void policy_log(void *userdata, const char *origin, unsigned line, const char *msg) {
        (void)userdata;
        if (line)
                sgld_log(SGLD_LOG_WARN, "policy %s:%u: %s, line ignored", origin, line, msg);
        else
                sgld_log(SGLD_LOG_WARN, "policy %s: %s", origin, msg);
}

/* --------------------------------------------------------- connections */

static struct conn *conn_find(uint64_t id) {
        for (struct conn *c = d.conns[id % CONN_BUCKETS]; c; c = c->hnext)
                if (c->peer.id == id)
                        return c;
        return NULL;
}

static void conn_arm(struct conn *c) {
        struct epoll_event ev = {
                .events = (c->closing ? 0 : EPOLLIN) | (c->want_out ? EPOLLOUT : 0),
                .data.u64 = c->peer.id,
        };

        if (!c->doomed)
                epoll_ctl(d.epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_doom(struct conn *c) {
        if (c->doomed)
                return;
        c->doomed = true;
        epoll_ctl(d.epfd, EPOLL_CTL_DEL, c->fd, NULL);
        c->doom_next = d.doomed;
        d.doomed = c;
}

static void outmsg_free(struct conn *c, struct outmsg *m) {
        uint64_t *pending = sgld_peer_pending(&c->peer);

        sgld_file_unref(m->file);
        free(m);
        c->qlen--;
        if (pending)
                (*pending)--;
}

static void conn_free(struct conn *c) {
        struct conn **h;

        while (c->qhead) {
                struct outmsg *m = c->qhead;
                c->qhead = m->next;
                outmsg_free(c, m);
        }
        for (h = &d.conns[c->peer.id % CONN_BUCKETS]; *h; h = &(*h)->hnext)
                if (*h == c) {
                        *h = c->hnext;
                        break;
                }
        if (c->prev)
                c->prev->next = c->next;
        else
                d.all = c->next;
        if (c->next)
                c->next->prev = c->prev;
        d.n_conns--;
        /* may push to others, and doom them */
        sgld_peer_detach(d.reg, &c->peer);
        /* Linux makes the peer's next recvmsg() fail with ECONNRESET,
         * before what we sent it last (an ERROR, GONE), if we close with
         * its requests unread: read them away first */
        for (int i = 0; i < DRAIN_AT_CLOSE; i++) {
                uint8_t buf[SGL_MSG_MAX_SIZE];
                int fds[SGL_MSG_MAX_FDS];
                size_t nfds = 0;
                ssize_t n = sgl_fdpass_recv(c->fd, buf, sizeof(buf), fds, SGL_MSG_MAX_FDS, &nfds);

                if (n <= 0 && n != -EBADMSG)
                        break;
                for (size_t k = 0; n > 0 && k < nfds; k++)
                        sgl_close(fds[k]);
        }
        sgl_close(c->fd);
        free(c);
}

static void reap(void) {
        while (d.doomed) {
                struct conn *c = d.doomed;
                d.doomed = c->doom_next;
                conn_free(c);
        }
}

int sgld_peer_send(struct sgld_peer *p, const void *buf, size_t len, struct sgld_file *file) {
        struct conn *c = container_of(p, struct conn, peer);
        uint64_t *pending = sgld_peer_pending(p);
        struct outmsg *m;

        if (c->doomed || c->closing)
                return -EPIPE;
        if (c->qlen == 0) {
                ssize_t n = sgl_fdpass_send(c->fd, buf, len, file ? &file->fd : NULL, file ? 1 : 0);
                if (n >= 0)
                        return 0;
                if (n != -EAGAIN) {
                        sgld_log(SGLD_LOG_DEBUG, "peer %" PRIu64 ": send: %s", p->id,
                                 strerror((int)-n));
                        conn_doom(c);
                        return (int)n;
                }
        }
        if (c->qlen >= d.lim->pending_per_conn ||
            (pending && *pending >= d.lim->pending_per_uid)) {
                sgld_log(SGLD_LOG_WARN, "peer %" PRIu64 " (uid %u pid %d): does not read, %zu messages queued (%" PRIu64 " for the uid): disconnected",
                         p->id, (unsigned)p->uid, (int)p->pid, c->qlen, pending ? *pending : 0);
                conn_doom(c);
                return -ENOBUFS;
        }
        m = malloc(sizeof(*m) + len);
        if (!m) {
                conn_doom(c);
                return -ENOMEM;
        }
        m->next = NULL;
        m->file = sgld_file_ref(file);
        m->len = len;
        memcpy(m->buf, buf, len);
        *c->qtail = m;
        c->qtail = &m->next;
        c->qlen++;
        if (pending)
                (*pending)++;
        if (!c->want_out) {
                c->want_out = true;
                conn_arm(c);
        }
        return 0;
}

void sgld_peer_hangup(struct sgld_peer *p) {
        struct conn *c = container_of(p, struct conn, peer);

        if (c->doomed || c->closing)
                return;
        c->closing = true;
        c->since_ms = now_ms();
        if (c->qlen == 0)
                conn_doom(c);
        else
                conn_arm(c);
}

static void conn_flush(struct conn *c) {
        while (c->qhead) {
                struct outmsg *m = c->qhead;
                ssize_t n = sgl_fdpass_send(c->fd, m->buf, m->len, m->file ? &m->file->fd : NULL,
                                            m->file ? 1 : 0);
                if (n == -EAGAIN)
                        return;
                if (n < 0) {
                        conn_doom(c);
                        return;
                }
                c->qhead = m->next;
                if (!c->qhead)
                        c->qtail = &c->qhead;
                outmsg_free(c, m);
        }
        if (c->closing) {
                conn_doom(c);
                return;
        }
        c->want_out = false;
        conn_arm(c);
}

/* A protocol error (section 8): one ERROR with serial 0, unless replies
 * are still queued (they go first, or not at all), then close. */
static void conn_protocol_error(struct conn *c, int error, const char *what) {
        uint8_t buf[64];
        ssize_t n;

        sgld_log(SGLD_LOG_WARN, "peer %" PRIu64 " (uid %u pid %d): protocol error: %s (%s)",
                 c->peer.id, (unsigned)c->peer.uid, (int)c->peer.pid, what, strerror(-error));
        if (c->qlen == 0 && !c->closing) {
                n = sgl_msg_build_error(buf, sizeof(buf), 0, error);
                if (n > 0)
                        (void)sgl_fdpass_send(c->fd, buf, (size_t)n, NULL, 0);
        }
        conn_doom(c);
}

/* Reads and handles up to READS_PER_ROUND messages; true if more may be
 * waiting (level-triggered epoll brings us back). */
static bool conn_read(struct conn *c) {
        for (int i = 0; i < READS_PER_ROUND; i++) {
                uint8_t buf[SGL_MSG_MAX_SIZE];
                int fds[SGL_MSG_MAX_FDS];
                size_t nfds = 0;
                struct sgl_msg m;
                ssize_t n;
                int r;

                if (c->doomed || c->closing)
                        return false;
                n = sgl_fdpass_recv(c->fd, buf, sizeof(buf), fds, SGL_MSG_MAX_FDS, &nfds);
                if (n == -EAGAIN)
                        return false;
                if (n == 0) {
                        conn_doom(c);
                        return false;
                }
                if (n < 0) {
                        if (n == -EBADMSG)
                                conn_protocol_error(c, -EBADMSG, "truncated message or stray control data");
                        else
                                conn_doom(c);
                        return false;
                }
                r = sgl_msg_parse(buf, (size_t)n, nfds, &m);
                if (r < 0) {
                        for (size_t k = 0; k < nfds; k++)
                                sgl_close(fds[k]);
                        conn_protocol_error(c, -EBADMSG, "malformed message");
                        return false;
                }
                r = sgld_registry_handle(d.reg, &c->peer, &m, nfds ? fds[0] : -1);
                /* only writers send descriptors: once a peer said it is
                 * something else, the kernel refuses them at the sender
                 * (sgl_fdpass_recv() still closes any queued before, or on
                 * kernels without SO_PASSRIGHTS) */
                if (m.type == SGL_MSG_HELLO && r >= 0 && c->peer.role != SGL_ROLE_WRITER)
                        (void)sgl_fdpass_refuse(c->fd);
                if (r == SGLD_CLOSE)
                        sgld_peer_hangup(&c->peer);
                else if (r < 0)
                        conn_protocol_error(c, r, sgl_msg_type_name(m.type));
        }
        return true;
}

static unsigned open_fds_estimate(void) {
        /* stdio, epoll, signalfd, timerfd, listeners, connections, files */
        return 6 + (unsigned)d.n_listeners + (unsigned)d.n_conns +
               (unsigned)sgld_registry_files(d.reg);
}

static void listener_pause(struct listener *l, bool pause) {
        struct epoll_event ev = { .events = pause ? 0 : EPOLLIN,
                                  .data.u64 = KEY_LISTENER + (uint64_t)(l - d.listeners) };

        if (l->paused == pause)
                return;
        l->paused = pause;
        epoll_ctl(d.epfd, EPOLL_CTL_MOD, l->fd, &ev);
}

static void do_accept(struct listener *l) {
        for (int i = 0; i < ACCEPTS_PER_ROUND; i++) {
                struct epoll_event ev = { .events = EPOLLIN };
                struct conn *c;
                int fd, r;

                fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                                continue;
                        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                            errno == ENOMEM) {
                                sgld_log(SGLD_LOG_WARN, "accept: %m; pausing");
                                listener_pause(l, true);
                        } else if (errno != EAGAIN) {
                                sgld_log(SGLD_LOG_WARN, "accept: %m");
                        }
                        return;
                }
                if (open_fds_estimate() + FD_RESERVE >= d.nofile) {
                        sgld_log(SGLD_LOG_WARN, "out of descriptors: connection refused");
                        close(fd);
                        continue;
                }
                c = calloc(1, sizeof(*c));
                if (!c) {
                        close(fd);
                        continue;
                }
                c->fd = fd;
                c->qtail = &c->qhead;
                c->peer.id = d.next_id++;
                c->since_ms = now_ms();
                r = sgld_peer_attach(d.reg, &c->peer, fd);
                if (r < 0) {
                        sgld_log(SGLD_LOG_WARN, "connection refused: %s", strerror(-r));
                        close(fd);
                        free(c);
                        continue;
                }
                ev.data.u64 = c->peer.id;
                if (epoll_ctl(d.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                        sgld_peer_detach(d.reg, &c->peer);
                        close(fd);
                        free(c);
                        continue;
                }
                c->hnext = d.conns[c->peer.id % CONN_BUCKETS];
                d.conns[c->peer.id % CONN_BUCKETS] = c;
                c->next = d.all;
                if (d.all)
                        d.all->prev = c;
                d.all = c;
                d.n_conns++;
                sgld_log(SGLD_LOG_DEBUG, "peer %" PRIu64 ": connected, uid %u gid %u pid %d%s",
                         c->peer.id, (unsigned)c->peer.uid, (unsigned)c->peer.gid,
                         (int)c->peer.pid, c->peer.refusal ? " (over quota)" : "");
        }
}

static void notify_status(void) {
        char s[128];
        size_t areas = sgld_registry_areas(d.reg);

        if (areas == d.last_areas && d.n_conns == d.last_conns)
                return;
        d.last_areas = areas;
        d.last_conns = d.n_conns;
        snprintf(s, sizeof(s), "STATUS=%zu areas, %zu connections", areas, d.n_conns);
        (void)sgl_sd_notify(s, NULL, 0);
}

static void tick(void) {
        uint64_t t = now_ms();
        uint64_t junk;

        (void)!read(d.timerfd, &junk, sizeof(junk));
        for (struct conn *c = d.all; c; c = c->next) {
                if (c->doomed)
                        continue;
                if (c->peer.state == SGL_CONN_NEW && !c->closing &&
                    t - c->since_ms >= (c->peer.refusal ? REFUSED_TIMEOUT_MS
                                                        : d.lim->hello_timeout_ms)) {
                        sgld_log(SGLD_LOG_DEBUG, "peer %" PRIu64 ": no HELLO in time", c->peer.id);
                        conn_doom(c);
                } else if (c->closing && t - c->since_ms >= CLOSING_TIMEOUT_MS) {
                        conn_doom(c);
                }
        }
        for (size_t i = 0; i < d.n_listeners; i++)
                if (d.listeners[i].paused && open_fds_estimate() + FD_RESERVE < d.nofile)
                        listener_pause(&d.listeners[i], false);
        notify_status();
}

static void load_policy(void) {
        struct sgld_policy *p = sgld_policy_new();
        int r;

        if (!p) {
                sgld_log(SGLD_LOG_ERR, "policy: out of memory");
                return;
        }
        r = sgld_policy_load_dir(p, d.policy_dir, policy_log, NULL);
        if (r < 0)
                sgld_log(SGLD_LOG_WARN, "policy %s: %s", d.policy_dir, strerror(-r));
        sgld_log(SGLD_LOG_INFO, "policy %s: %zu rules", d.policy_dir, sgld_policy_rules(p));
        sgld_registry_set_policy(d.reg, p);
}

static void on_signal(void) {
        struct signalfd_siginfo si;

        while (read(d.sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                if (si.ssi_signo == SIGHUP) {
                        sgld_log(SGLD_LOG_INFO, "SIGHUP: reloading the policy");
                        load_policy();
                } else {
                        sgld_log(SGLD_LOG_INFO, "signal %u: exiting", si.ssi_signo);
                        d.quit = true;
                }
        }
}

static int run(void) {
        struct epoll_event evs[256];

        while (!d.quit) {
                int n = epoll_wait(d.epfd, evs, ELEMENTSOF(evs), -1);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        sgld_log(SGLD_LOG_ERR, "epoll_wait: %m");
                        return -errno;
                }
                for (int i = 0; i < n; i++) {
                        uint64_t key = evs[i].data.u64;
                        struct conn *c;

                        if (key == KEY_SIGNAL) {
                                on_signal();
                                continue;
                        }
                        if (key == KEY_TIMER) {
                                tick();
                                continue;
                        }
                        if (key >= KEY_LISTENER && key < KEY_LISTENER + d.n_listeners) {
                                do_accept(&d.listeners[key - KEY_LISTENER]);
                                continue;
                        }
                        c = conn_find(key);
                        if (!c || c->doomed)
                                continue;
                        if (evs[i].events & EPOLLOUT)
                                conn_flush(c);
                        /* a peer that hung up may have left requests (a
                         * writer's last publishes): read to the end first */
                        if (!c->doomed && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) &&
                            !conn_read(c) && (evs[i].events & (EPOLLHUP | EPOLLERR)))
                                conn_doom(c);
                }
                reap();
        }
        return 0;
}

/* ---------------------------------------------------------------- setup */

static int mkdir_parent(const char *path, mode_t mode) {
        _cleanup_free_ char *dir = strdup(path);
        char *slash;

        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (!slash || slash == dir)
                return 0;
        *slash = '\0';
        if (mkdir(dir, mode) < 0 && errno != EEXIST)
                return sgl_negerrno();
        return 0;
}

static int add_listener(int fd, const char *path) {
        struct epoll_event ev = { .events = EPOLLIN };
        struct listener *l;

        if (d.n_listeners == MAX_LISTENERS)
                return -E2BIG;
        l = &d.listeners[d.n_listeners];
        ev.data.u64 = KEY_LISTENER + d.n_listeners;
        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ||
            epoll_ctl(d.epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
                return sgl_negerrno();
        *l = (struct listener) { .fd = fd };
        if (path && !(l->path = strdup(path)))
                return -ENOMEM;
        d.n_listeners++;
        return 0;
}

/* Binds @address ("@abstract" or a path; a stale socket file there is
 * replaced, a live one is -EADDRINUSE, anything else is left alone). */
static int bind_socket(const char *address, bool make_dir, mode_t dir_mode) {
        _cleanup_close_ int fd = -1;
        struct sockaddr_un sa;
        socklen_t salen;
        bool path = address[0] != '@';
        struct stat st;
        int r;

        r = sgl_sockaddr_from_string(address, &sa, &salen);
        if (r < 0)
                return r;
        if (path && make_dir) {
                r = mkdir_parent(address, dir_mode);
                if (r < 0)
                        return r;
        }
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return sgl_negerrno();
        if (path && lstat(address, &st) == 0) {
                int probe;
                bool live;

                if (!S_ISSOCK(st.st_mode))
                        return -EEXIST;
                probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
                live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, salen) == 0;
                sgl_close(probe);
                if (live)
                        return -EADDRINUSE;
                unlink(address);
        }
        if (bind(fd, (struct sockaddr *)&sa, salen) < 0)
                return sgl_negerrno();
        /* who may connect is decided per peer (SO_PEERCRED), not here */
        if (path && chmod(address, 0666) < 0)
                return sgl_negerrno();
        if (listen(fd, SOMAXCONN) < 0)
                return sgl_negerrno();
        r = add_listener(fd, path ? address : NULL);
        if (r < 0)
                return r;
        fd = -1;
        return 0;
}

/* LISTEN_FDS: SEQPACKET listeners are ours; descriptors named "sgl.*" are
 * what an earlier run left in the fd store (restored by the registry, which
 * checks each); anything else is closed. */
static int inherit_sockets(void) {
        int *fds = NULL, *stored = NULL;
        char **names = NULL, **stored_names = NULL;
        size_t n = 0, n_stored = 0;
        int r;

        r = sgl_sd_listen_fds(&fds, &names, &n);
        if (r < 0) {
                sgld_log(SGLD_LOG_ERR, "LISTEN_FDS: %s", strerror(-r));
                return r;
        }
        if (n > 0) {
                stored = calloc(n, sizeof(*stored));
                stored_names = calloc(n, sizeof(*stored_names));
                if (!stored || !stored_names) {
                        for (size_t i = 0; i < n; i++)
                                close(fds[i]);
                        r = -ENOMEM;
                        goto out;
                }
        }
        for (size_t i = 0; i < n; i++) {
                const char *name = names && names[i] ? names[i] : "";

                if (strncmp(name, "sgl.", 4) == 0) {
                        stored[n_stored] = fds[i];
                        stored_names[n_stored++] = names[i];
                } else if (sgl_sd_is_seqpacket_listener(fds[i])) {
                        r = add_listener(fds[i], NULL);
                        if (r < 0) {
                                sgld_log(SGLD_LOG_WARN, "inherited socket %d: %s", fds[i], strerror(-r));
                                close(fds[i]);
                        }
                } else {
                        sgld_log(SGLD_LOG_WARN, "inherited descriptor %d (\"%s\") is not a SEQPACKET listener: closed",
                                 fds[i], name);
                        close(fds[i]);
                }
        }
        if (n_stored > 0)
                sgld_registry_restore(d.reg, stored, stored_names, n_stored);
        r = 0;
out:
        free(stored);
        free(stored_names);
        sgl_sd_names_free(names);
        free(fds);
        return r;
}

void sgld_fdstore(const char *name, int fd) {
        char state[128];
        int r;

        if (!d.fdstore)
                return;
        snprintf(state, sizeof(state), "%s\nFDNAME=%s", fd >= 0 ? "FDSTORE=1" : "FDSTOREREMOVE=1", name);
        r = sgl_sd_notify(state, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);
        if (r < 0)
                sgld_log(SGLD_LOG_WARN, "fd store, %s: %s", state, strerror(-r));
}

static int setup_loop(void) {
        struct itimerspec its = {
                .it_interval = { .tv_sec = 0, .tv_nsec = TICK_MS * 1000000L },
                .it_value = { .tv_sec = 0, .tv_nsec = TICK_MS * 1000000L },
        };
        struct epoll_event ev = { .events = EPOLLIN };
        sigset_t mask;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return sgl_negerrno();
        signal(SIGPIPE, SIG_IGN);

        d.epfd = epoll_create1(EPOLL_CLOEXEC);
        d.sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        d.timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (d.epfd < 0 || d.sigfd < 0 || d.timerfd < 0)
                return sgl_negerrno();
        if (timerfd_settime(d.timerfd, 0, &its, NULL) < 0)
                return sgl_negerrno();
        ev.data.u64 = KEY_SIGNAL;
        if (epoll_ctl(d.epfd, EPOLL_CTL_ADD, d.sigfd, &ev) < 0)
                return sgl_negerrno();
        ev.data.u64 = KEY_TIMER;
        if (epoll_ctl(d.epfd, EPOLL_CTL_ADD, d.timerfd, &ev) < 0)
                return sgl_negerrno();
        return 0;
}

static void teardown(void) {
        if (d.reg)
                sgld_registry_shutdown(d.reg);
        while (d.all) {
                conn_doom(d.all);
                reap();
        }
        d.reg = sgld_registry_free(d.reg);
        for (size_t i = 0; i < d.n_listeners; i++) {
                sgl_close(d.listeners[i].fd);
                if (d.listeners[i].path)
                        unlink(d.listeners[i].path);
                free(d.listeners[i].path);
        }
        sgl_close(d.timerfd);
        sgl_close(d.sigfd);
        sgl_close(d.epfd);
}

/* "KEY=N" of --limit */
static int parse_limit(struct sgld_limits *l, const char *arg) {
        static const struct {
                const char *key;
                size_t off;
        } keys[] = {
                { "conns-per-uid", offsetof(struct sgld_limits, conns_per_uid) },
                { "areas-per-uid", offsetof(struct sgld_limits, areas_per_uid) },
                { "segments-per-uid", offsetof(struct sgld_limits, segments_per_uid) },
                { "fds-per-uid", offsetof(struct sgld_limits, fds_per_uid) },
                { "bytes-per-uid", offsetof(struct sgld_limits, bytes_per_uid) },
                { "pending-per-conn", offsetof(struct sgld_limits, pending_per_conn) },
                { "pending-per-uid", offsetof(struct sgld_limits, pending_per_uid) },
                { "hello-timeout-ms", offsetof(struct sgld_limits, hello_timeout_ms) },
                { "conns", offsetof(struct sgld_limits, conns_max) },
                { "areas", offsetof(struct sgld_limits, areas_max) },
        };
        const char *eq = strchr(arg, '=');
        unsigned long long v;
        char *end;

        if (!eq || !eq[1] || eq[1] == '-')
                return -EINVAL;
        errno = 0;
        v = strtoull(eq + 1, &end, 10);
        if (errno || *end || v == 0)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (strlen(keys[i].key) == (size_t)(eq - arg) &&
                    memcmp(keys[i].key, arg, (size_t)(eq - arg)) == 0) {
                        *(uint64_t *)(void *)((char *)l + keys[i].off) = v;
                        return 0;
                }
        return -EINVAL;
}

static void usage(FILE *f) {
        fputs("Usage: sigillod [OPTION]...\n"
              "The sigillo rendezvous daemon: holds areas' descriptors for readers.\n\n"
              "  --socket ADDR        listen on ADDR (a path, or @name for the abstract\n"
              "                       namespace; default: see --system and --user)\n"
              "  --system             /run/sigillo/socket (default when run as root)\n"
              "  --user               $XDG_RUNTIME_DIR/sigillo/socket (default otherwise)\n"
              "  --policy DIR         admin policy directory (default " SGLD_POLICY_DIR ")\n"
              "  --persist-default    every area outlives its writer, as if CLAIMed PERSIST\n"
              "  --limit KEY=N        change a limit: conns-per-uid, areas-per-uid,\n"
              "                       segments-per-uid, fds-per-uid, bytes-per-uid,\n"
              "                       pending-per-conn, pending-per-uid, hello-timeout-ms,\n"
              "                       conns, areas\n"
              "  -v, --verbose        log every connection and segment\n"
              "  -h, --help           this text\n", f);
}

int main(int argc, char **argv) {
        enum { OPT_SOCKET = 256, OPT_SYSTEM, OPT_USER, OPT_POLICY, OPT_PERSIST, OPT_LIMIT };
        static const struct option opts[] = {
                { "socket", required_argument, NULL, OPT_SOCKET },
                { "system", no_argument, NULL, OPT_SYSTEM },
                { "user", no_argument, NULL, OPT_USER },
                { "policy", required_argument, NULL, OPT_POLICY },
                { "persist-default", no_argument, NULL, OPT_PERSIST },
                { "limit", required_argument, NULL, OPT_LIMIT },
                { "verbose", no_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        struct sgld_limits limits = SGLD_LIMITS_DEFAULT;
        const char *address = NULL;
        char defaddr[sizeof(((struct sockaddr_un *)0)->sun_path) + 32];
        bool persist = false, make_dir = false;
        int mode = -1; /* 0 system, 1 user */
        struct rlimit rl;
        int c, r;

        d.policy_dir = SGLD_POLICY_DIR;
        d.journal = getenv("JOURNAL_STREAM") != NULL;
        while ((c = getopt_long(argc, argv, "vh", opts, NULL)) >= 0) {
                switch (c) {
                case OPT_SOCKET:
                        address = optarg;
                        break;
                case OPT_SYSTEM:
                        mode = 0;
                        break;
                case OPT_USER:
                        mode = 1;
                        break;
                case OPT_POLICY:
                        d.policy_dir = optarg;
                        break;
                case OPT_PERSIST:
                        persist = true;
                        break;
                case OPT_LIMIT:
                        if (parse_limit(&limits, optarg) < 0) {
                                fprintf(stderr, "sigillod: bad --limit '%s'\n", optarg);
                                return 2;
                        }
                        break;
                case 'v':
                        d.log_level = SGLD_LOG_DEBUG;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind < argc) {
                usage(stderr);
                return 2;
        }
        if (mode < 0)
                mode = geteuid() == 0 ? 0 : 1;

        r = setup_loop();
        if (r < 0) {
                sgld_log(SGLD_LOG_ERR, "setup: %s", strerror(-r));
                return 1;
        }
        r = sgld_registry_new(&limits, persist, &d.reg);
        if (r < 0) {
                sgld_log(SGLD_LOG_ERR, "%s", strerror(-r));
                return 1;
        }
        d.lim = sgld_registry_limits(d.reg);
        d.fdstore = getenv("NOTIFY_SOCKET") && *getenv("NOTIFY_SOCKET");
        sgld_registry_set_fdstore(d.reg, d.fdstore);
        if (limits.pending_per_conn < limits.segments_per_uid + 2)
                sgld_log(SGLD_LOG_WARN, "pending-per-conn %" PRIu64 " < segments-per-uid + 2: "
                         "the answer to an OPEN or STAT of a full area may not fit",
                         limits.pending_per_conn);
        load_policy();

        r = inherit_sockets();
        if (r < 0)
                goto fail;
        if (!address && d.n_listeners == 0) {
                if (mode == 0) {
                        address = "/run/sigillo/socket";
                } else {
                        const char *rt = getenv("XDG_RUNTIME_DIR");
                        if (!rt || rt[0] != '/') {
                                sgld_log(SGLD_LOG_ERR, "--user: $XDG_RUNTIME_DIR is not set");
                                r = -EINVAL;
                                goto fail;
                        }
                        snprintf(defaddr, sizeof(defaddr), "%s/sigillo/socket", rt);
                        address = defaddr;
                }
                make_dir = true;
        }
        if (address) {
                r = bind_socket(address, make_dir, mode == 0 ? 0755 : 0700);
                if (r < 0) {
                        sgld_log(SGLD_LOG_ERR, "%s: %s", address, strerror(-r));
                        goto fail;
                }
        }

        /* all we needed privileges for is done */
        r = sgl_privs_drop(0);
        if (r < 0) {
                sgld_log(SGLD_LOG_ERR, "dropping privileges: %s", strerror(-r));
                goto fail;
        }
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                rl.rlim_cur = 1024;
        d.nofile = rl.rlim_cur == RLIM_INFINITY ? UINT32_MAX : (uint64_t)rl.rlim_cur;

        sgld_log(SGLD_LOG_INFO, "listening on %s (%zu sockets), %" PRIu64 " descriptors",
                 address ? address : "inherited sockets", d.n_listeners, d.nofile);
        (void)sgl_sd_notify("READY=1\nSTATUS=0 areas, 0 connections", NULL, 0);
        r = run();
        (void)sgl_sd_notify("STOPPING=1", NULL, 0);
        teardown();
        return r < 0 ? 1 : 0;
fail:
        teardown();
        return 1;
}
