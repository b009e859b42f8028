/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-daemon.c - sigillod end to end: the real daemon binary (fork+exec,
 * a socket in a fresh directory), a writer process speaking the wire
 * protocol to it (HELLO, CLAIM, PUBLISH_CONTROL, PUBLISH_SEGMENT, RETIRE,
 * RELEASE, driven by a real sgl_writer whose segment callback publishes),
 * and reader processes using sgl_reader_open(name, address, ...), exactly as
 * applications do.  Every chunk is self-describing (id, generation, length,
 * a pattern seeded by both) and checked byte for byte; readers report a
 * count and an order-independent hash of the (id, generation) pairs they
 * got, which the test compares with what the writer committed.
 *
 * The daemon is found in $SIGILLOD, else at SIGILLOD_PATH (set by the build
 * to the freshly built tools/sigillod/sigillod).  It is stopped with
 * SIGTERM at the end of each test and must exit 0 (so a sanitizer build of
 * the daemon also proves it frees everything).
 *
 * What it proves:
 *  - late_joiner_and_pushes: STRICT and TRUSTED readers opening by name
 *    after 40 commits get all 40 (every live segment), then 40 more as
 *    pushes, byte-exact; a reader that is not subscribed yet cannot tell;
 *    STAT (query role) reports the owner, mode, 3 subscribed readers, every
 *    segment WRITE-sealed with its size, and LIST shows the area; deleting
 *    ids and compacting retires segments (RETIRE reaches the daemon: STAT
 *    shows fewer segments) and readers see the deletions; RELEASE of a
 *    non-PERSIST area removes it: readers get GONE (-ENOENT once) and keep
 *    what they hold; opening again is -ENOENT; the daemon's descriptor
 *    count returns to its baseline.
 *  - strict_and_trusted: with an open segment (SGL_SEAL_BYTES), a TRUSTED
 *    reader reads commits at once, a STRICT one nothing; after the seal the
 *    STRICT one gets every chunk and the TRUSTED one no duplicate.
 *  - writer_exit_not_persist: a writer killed mid-flight (no RELEASE) ends
 *    a non-PERSIST area: GONE to readers, -ENOENT to new ones.
 *  - writer_exit_persist: a PERSIST area whose writer dies with commits in
 *    its OPEN segment stays; the daemon seals that segment by copy, so a
 *    subscribed STRICT reader (which had nothing) gets every commit, a late
 *    STRICT joiner too, STAT shows the copy sealed and no writer; a new
 *    writer of the same uid takes the area over (CLAIMED TAKEOVER, next_seq
 *    past every published seq, every live segment replayed before SYNCED),
 *    a writer of the same uid while the lease is held gets -EBUSY, and the
 *    readers, still subscribed, get the new writer's chunks.
 *  - name_ownership (uid part as root): a second CLAIM of a held name by
 *    the same uid is -EBUSY; uid 65534 claiming a name of root's is -EEXIST
 *    whether the area has a writer or not (PERSIST); uid 65534 may create
 *    its own areas.
 *  - access_control (root only): a reader of uid 65534 is refused (-EACCES)
 *    for mode 0400 and admitted by mode 0004, by its uid in the list, by
 *    its gid in the list, by mode 0040 with the writer's gid; LIST run by
 *    uid 65534 shows exactly the areas it may read; a takeover that narrows
 *    the rules sends GONE to a subscribed reader who no longer passes.
 *  - policy: `reserve` lines in --policy DIR: a reserved name is -EACCES to
 *    other uids and claimable by its uid and by members of its gid; bad
 *    lines are logged and ignored without losing the good ones; SIGHUP
 *    reloads the directory.
 *  - library_writer: the same with the library's own writer client
 *    (sgl_writer_publish()): a PERSIST area whose writer dies with an open
 *    segment keeps every commit for STRICT readers (sealed by copy), and a
 *    second library writer takes it over and continues the log (newer
 *    versions of old ids win, an old id can be deleted), seen by readers
 *    that stayed subscribed throughout.
 *  - fd_store_restart: the test plays the service manager ($NOTIFY_SOCKET,
 *    LISTEN_FDS): a PERSIST area is kept in the fd store whole (metadata,
 *    control page, every live segment, names within FDNAME's rules) and a
 *    non-PERSIST one not at all; READY=1 and STOPPING=1 arrive; stopping
 *    removes nothing; a new daemon handed the stored descriptors (and a
 *    pipe, a junk memfd and an unknown name among them) restores the area
 *    without a writer, its open segment sealed by copy, every chunk there
 *    for a new STRICT reader, refuses the junk (and removes it from the
 *    store); a takeover continues past the highest seq; removing the area
 *    empties the store.
 *  - quotas: with small --limit values, the uid's area quota (CLAIM
 *    -EDQUOT, the connection stays usable), segment quota (PUBLISH_SEGMENT
 *    -EDQUOT, then the connection closes and the non-PERSIST area goes),
 *    byte quota, and connection quota (HELLO -EDQUOT) are enforced, and a
 *    connection closing frees its quota for the next one.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sigillo.h"
#include "fdpass.h"
#include "protocol.h"
#include "writer-internal.h"
#include "memfd.h"
#include "test-payload.h"
#include "test-util.h"
#include "test-sigillod.h"

#define NOBODY 65534
#ifndef ELEMENTSOF
#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))
#endif

/* ------------------------------------------------------------ payloads */

#define MAX_IDS PAYLOAD_MAX_IDS

/* In a child: close every inherited descriptor except stdio and @keep. */
static void close_others(int keep) {
        if (keep > 3)
                close_range(3, (unsigned)keep - 1, 0);
        close_range((unsigned)keep + 1, ~0U, 0);
}

static int drop_to(uid_t uid, gid_t gid) {
        if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
                return -errno;
        return 0;
}

/* --------------------------------------------------- raw protocol client */

struct pc {
        int fd;
        uint32_t serial;
};

static int pc_send(struct pc *pc, const uint8_t *buf, ssize_t n, int fd) {
        if (n < 0)
                return (int)n;
        n = sgl_fdpass_send(pc->fd, buf, (size_t)n, &fd, fd >= 0 ? 1 : 0);
        return n < 0 ? (int)n : 0;
}

/* One message; *fd is -1 or the descriptor it carried (the caller's). */
static int pc_recv(struct pc *pc, struct sgl_msg *m, uint8_t *buf, int *fd, int timeout_ms) {
        struct pollfd p = { .fd = pc->fd, .events = POLLIN };
        size_t nfds = 0;
        ssize_t n;
        int k;

        *fd = -1;
        k = poll(&p, 1, timeout_ms);
        if (k < 0)
                return -errno;
        if (k == 0)
                return -ETIMEDOUT;
        n = sgl_fdpass_recv(pc->fd, buf, SGL_MSG_MAX_SIZE, fd, 1, &nfds);
        if (n == 0)
                return -ECONNRESET;
        if (n < 0)
                return (int)n;
        if (nfds == 0)
                *fd = -1;
        k = sgl_msg_parse(buf, (size_t)n, nfds, m);
        if (k < 0) {
                if (*fd >= 0)
                        close(*fd);
                *fd = -1;
        }
        return k;
}

/* Connects and says HELLO: 0, the ERROR's value, or -errno. */
static int pc_connect(struct pc *pc, const char *address, uint32_t role) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        uint8_t buf[SGL_MSG_MAX_SIZE];
        struct sgl_msg m;
        int fd, k;

        pc->serial = 0;
        pc->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (pc->fd < 0)
                return -errno;
        strncpy(sa.sun_path, address, sizeof(sa.sun_path) - 1);
        if (connect(pc->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                k = -errno;
                goto fail;
        }
        k = pc_send(pc, buf, sgl_msg_build_hello(buf, sizeof(buf), ++pc->serial, 1, 1, role), -1);
        if (k >= 0)
                k = pc_recv(pc, &m, buf, &fd, 5000);
        if (k >= 0 && m.type == SGL_MSG_ERROR)
                k = m.error.error;
        else if (k >= 0 && (m.type != SGL_MSG_WELCOME || m.serial != pc->serial))
                k = -EPROTO;
        if (k >= 0)
                return 0;
fail:
        close(pc->fd);
        pc->fd = -1;
        return k;
}

static void pc_close(struct pc *pc) {
        if (pc->fd >= 0)
                close(pc->fd);
        pc->fd = -1;
}

/* PING, and wait for its OK: everything sent before is processed. */
static int pc_ping(struct pc *pc) {
        uint8_t buf[SGL_MSG_MAX_SIZE];
        struct sgl_msg m;
        int fd, k;

        /* even when the send fails (the daemon closed), what it said
         * before closing is still to be read */
        int sent = pc_send(pc, buf, sgl_msg_build_ping(buf, sizeof(buf), ++pc->serial), -1);

        for (;;) {
                k = pc_recv(pc, &m, buf, &fd, 5000);
                if (k < 0)
                        return sent < 0 ? sent : k;
                if (fd >= 0)
                        close(fd);
                if (m.type == SGL_MSG_ERROR)
                        return m.error.error;
                if (m.type == SGL_MSG_OK && m.serial == pc->serial)
                        return 0;
        }
}

/* STAT by the query role, in the test process. */
struct area_stat {
        uint32_t owner, mode, flags, readers;
        uint64_t segments, bytes_used;
        uint64_t seq[64], size[64];
        uint32_t seals[64], event[64];
        size_t n;
};

static int query_stat(const char *address, const char *name, struct area_stat *st) {
        uint8_t buf[SGL_MSG_MAX_SIZE];
        struct sgl_msg m;
        struct pc pc;
        int fd, k;

        memset(st, 0, sizeof(*st));
        k = pc_connect(&pc, address, SGL_ROLE_QUERY);
        if (k < 0)
                return k;
        k = pc_send(&pc, buf, sgl_msg_build_stat(buf, sizeof(buf), ++pc.serial, name, strlen(name)), -1);
        while (k >= 0) {
                k = pc_recv(&pc, &m, buf, &fd, 5000);
                if (k < 0)
                        break;
                if (fd >= 0)
                        close(fd);
                if (m.type == SGL_MSG_ERROR) {
                        k = m.error.error;
                        break;
                }
                if (m.type == SGL_MSG_END)
                        break;
                if (m.type == SGL_MSG_AREA_INFO) {
                        st->owner = m.area_info.owner_uid;
                        st->mode = m.area_info.mode;
                        st->flags = m.area_info.flags;
                        st->readers = m.area_info.readers;
                        st->segments = m.area_info.segments;
                        st->bytes_used = m.area_info.bytes_used;
                        if (m.area_info.bytes_live != SGL_MSG_BYTES_UNKNOWN)
                                k = -EPROTO;
                } else if (m.type == SGL_MSG_SEGMENT_INFO && st->n < 64) {
                        st->seq[st->n] = m.segment_info.seq;
                        st->size[st->n] = m.segment_info.size;
                        st->seals[st->n] = m.segment_info.seals;
                        st->event[st->n] = m.segment_info.event;
                        st->n++;
                } else {
                        k = -EPROTO;
                }
        }
        pc_close(&pc);
        return k;
}

/* LIST: how many areas, and which of @names (bit i) were among them. */
static int query_list(const char *address, const char *const *names, size_t n_names,
                      uint64_t *ret_mask) {
        uint8_t buf[SGL_MSG_MAX_SIZE];
        struct sgl_msg m;
        struct pc pc;
        int fd, k, count = 0;

        *ret_mask = 0;
        k = pc_connect(&pc, address, SGL_ROLE_QUERY);
        if (k < 0)
                return k;
        k = pc_send(&pc, buf, sgl_msg_build_list(buf, sizeof(buf), ++pc.serial), -1);
        while (k >= 0) {
                k = pc_recv(&pc, &m, buf, &fd, 5000);
                if (k < 0)
                        break;
                if (fd >= 0)
                        close(fd);
                if (m.type == SGL_MSG_END)
                        break;
                if (m.type != SGL_MSG_AREA_INFO) {
                        k = -EPROTO;
                        break;
                }
                count++;
                for (size_t i = 0; i < n_names; i++)
                        if (strlen(names[i]) == m.area_info.name_len &&
                            memcmp(names[i], m.area_info.name, m.area_info.name_len) == 0)
                                *ret_mask |= 1ULL << i;
        }
        pc_close(&pc);
        return k < 0 ? k : count;
}

/* ------------------------------------------- commands between processes */

enum {
        W_CLAIM = 1,   /* -> ret, v0 CLAIMED flags, v1 next_seq, v2 segments replayed */
        W_COMMIT,      /* a first id, b count, c gen; then a PING barrier */
        W_DELETE,      /* a first id, b count: one commit of tombstones */
        W_GC,          /* -> ret: segments retired; then a PING barrier */
        W_SEAL,
        W_RELEASE,     /* a flags */
        W_DIE,         /* _exit(0) at once: the connection just closes */
        /* reader */
        R_COLLECT = 100, /* a count, b timeout ms -> v0 count, v1 hash, v2 bad, v3 dups */
        R_GET,         /* a id -> ret, v0 gen */
        R_EXIT,        /* -> v0 descriptors left over since before the open */
};

struct cmd {
        uint32_t op;
        uint32_t pad;
        uint64_t a, b, c;
};

struct rep {
        int64_t ret;
        uint64_t v[4];
};

struct proc {
        pid_t pid;
        int sock;
        int64_t ret;             /* the child's first reply */
};

static int child_send(int sock, int64_t ret, uint64_t v0, uint64_t v1, uint64_t v2, uint64_t v3) {
        struct rep r = { ret, { v0, v1, v2, v3 } };
        return send(sock, &r, sizeof(r), MSG_NOSIGNAL) == (ssize_t)sizeof(r) ? 0 : -1;
}

static struct rep cmd_call(const struct proc *p, uint32_t op, uint64_t a, uint64_t b, uint64_t c) {
        struct cmd m = { .op = op, .a = a, .b = b, .c = c };
        struct pollfd pfd = { .fd = p->sock, .events = POLLIN };
        struct rep r;

        assert_int_equal(send(p->sock, &m, sizeof(m), MSG_NOSIGNAL), sizeof(m));
        assert_int_equal(poll(&pfd, 1, 15000), 1);
        assert_int_equal(recv(p->sock, &r, sizeof(r), 0), sizeof(r));
        return r;
}

static struct proc spawn(tu_child_fn fn, void *params, int *sockp) {
        struct pollfd pfd;
        struct proc p;
        struct rep r;
        int sv[2];

        tu_socketpair(sv);
        *sockp = sv[1];
        p.pid = tu_fork(fn, params);
        close(sv[1]);
        p.sock = sv[0];
        pfd = (struct pollfd) { .fd = p.sock, .events = POLLIN };
        assert_int_equal(poll(&pfd, 1, 15000), 1);
        assert_int_equal(recv(p.sock, &r, sizeof(r), 0), sizeof(r));
        p.ret = r.ret;
        return p;
}

/* ---------------------------------------------------------- the writer */

struct wparams {
        const char *address;
        const char *name;
        uint32_t claim_flags;
        uint32_t mode;
        uint32_t uids[4], gids[4];
        size_t n_uids, n_gids;
        sgl_seal_policy policy;
        uint64_t policy_arg;
        bool drop;
        uid_t uid;
        gid_t gid;
        bool lib;                /* sgl_writer_publish() instead of raw */
        int sock;
};

struct wstate {
        struct pc pc;
        sgl_writer *w;
        bool lib;
        int err;
};

/* The barrier after a change: PING for the raw writer; the library writer
 * has none, so flush what it queued (readers wait for what follows). */
static int w_barrier(struct wstate *ws) {
        int k;

        if (ws->lib) {
                k = sgl_writer_publish_process(ws->w);
                return k < 0 ? k : 0;
        }
        return ws->err < 0 ? ws->err : pc_ping(&ws->pc);
}

/* The library's own writer client: CLAIM, takeover adoption and all. */
static int w_claim_lib(const struct wparams *p, struct wstate *ws) {
        int k;

        ws->lib = true;
        k = sgl_writer_new(p->name, 0, &ws->w);
        if (k < 0)
                return k;
        k = sgl_writer_set_seal_policy(ws->w, p->policy, p->policy_arg);
        if (k < 0)
                return k;
        return sgl_writer_publish(ws->w, p->name, p->address,
                                  (p->claim_flags & SGL_CLAIM_PERSIST) ? SGL_PUBLISH_PERSIST : 0,
                                  p->mode, p->uids, p->n_uids, p->gids, p->n_gids);
}

/* The writer's segment callback: publish, or retire, at once. */
static void w_segment(void *userdata, uint64_t seq, sgl_segment_event ev, int fd) {
        struct wstate *ws = userdata;
        uint8_t buf[64];
        int k;

        if (ev == SGL_SEGMENT_RETIRED)
                k = pc_send(&ws->pc, buf, sgl_msg_build_retire(buf, sizeof(buf), ++ws->pc.serial, seq), -1);
        else
                k = pc_send(&ws->pc, buf, sgl_msg_build_publish_segment(buf, sizeof(buf), ++ws->pc.serial,
                                                                        seq, ev), fd);
        if (k < 0 && ws->err == 0)
                ws->err = k;
}

/* CLAIM, then (on success) a fresh sgl_writer wearing the area's id, and
 * its control page published.  Replies ret, CLAIMED flags, next_seq and
 * how many segments a takeover replayed. */
static int w_claim(const struct wparams *p, struct wstate *ws, struct rep *ret) {
        uint8_t buf[SGL_MSG_MAX_SIZE];
        uint8_t area_id[SGL_MSG_AREA_ID_LEN];
        uint64_t next_seq, replayed = 0;
        uint32_t flags, serial;
        struct sgl_msg m;
        int fd, k, ctl;

        memset(ret, 0, sizeof(*ret));
        k = pc_connect(&ws->pc, p->address, SGL_ROLE_WRITER);
        if (k < 0)
                return k;
        serial = ++ws->pc.serial;
        k = pc_send(&ws->pc, buf, sgl_msg_build_claim(buf, sizeof(buf), serial, p->claim_flags, p->mode,
                                                      p->uids, p->n_uids, p->gids, p->n_gids,
                                                      p->name, strlen(p->name)), -1);
        if (k >= 0)
                k = pc_recv(&ws->pc, &m, buf, &fd, 5000);
        if (k < 0)
                return k;
        if (m.type == SGL_MSG_ERROR)
                return m.error.error;
        if (m.type != SGL_MSG_CLAIMED || m.serial != serial)
                return -EPROTO;
        memcpy(area_id, m.claimed.area_id, sizeof(area_id));
        flags = m.claimed.flags;
        next_seq = m.claimed.next_seq;
        if (flags & SGL_CLAIMED_TAKEOVER) {
                for (;;) {
                        k = pc_recv(&ws->pc, &m, buf, &fd, 5000);
                        if (k < 0)
                                return k;
                        if (fd >= 0)
                                close(fd);
                        if (m.serial != serial)
                                return -EPROTO;
                        if (m.type == SGL_MSG_SYNCED)
                                break;
                        if (m.type != SGL_MSG_SEGMENT || fd < 0 || m.segment.seq >= next_seq)
                                return -EPROTO;
                        replayed++;
                }
        }

        k = sgl_writer_new(p->name, 0, &ws->w);
        if (k < 0)
                return k;
        /* the daemon's area id, in the control page and every segment */
        memcpy(ws->w->area_id, area_id, sizeof(area_id));
        memcpy(ws->w->ctl->area_id, area_id, sizeof(area_id));
        ws->w->next_seq = next_seq;
        if (flags & SGL_CLAIMED_TAKEOVER)
                ws->w->next_version = 1ULL << 32; /* past the old writer's */
        k = sgl_writer_set_seal_policy(ws->w, p->policy, p->policy_arg);
        if (k < 0)
                return k;
        sgl_writer_set_segment_fn(ws->w, w_segment, ws);
        ctl = sgl_writer_control_fd(ws->w);
        if (ctl < 0)
                return ctl;
        k = pc_send(&ws->pc, buf, sgl_msg_build_publish_control(buf, sizeof(buf), ++ws->pc.serial), ctl);
        close(ctl);
        if (k < 0)
                return k;
        k = pc_ping(&ws->pc);
        if (k < 0)
                return k;
        ret->v[0] = flags;
        ret->v[1] = next_seq;
        ret->v[2] = replayed;
        return 0;
}

static int w_commit(struct wstate *ws, uint64_t first, uint64_t count, uint32_t gen) {
        uint8_t *buf = malloc(PAYLOAD_MAX_SIZE);
        int k = 0;

        if (!buf)
                return -ENOMEM;
        for (uint64_t id = first; id < first + count && k >= 0; id++) {
                payload_fill(buf, id, gen);
                k = sgl_writer_write(ws->w, id, 0, buf, payload_size(id, gen), NULL);
                if (k >= 0)
                        k = sgl_writer_commit(ws->w);
        }
        free(buf);
        return k < 0 ? k : w_barrier(ws);
}

static int writer_main(void *userdata) {
        struct wparams *p = userdata;
        struct wstate ws = { .pc = { .fd = -1 } };

        close_others(p->sock);
        if (p->drop)
                TU_CHILD_CHECK(drop_to(p->uid, p->gid) == 0);
        TU_CHILD_CHECK(child_send(p->sock, 0, 0, 0, 0, 0) == 0);

        for (;;) {
                struct cmd m;
                struct rep r = { 0 };
                ssize_t n = recv(p->sock, &m, sizeof(m), 0);
                uint8_t buf[SGL_MSG_MAX_SIZE];
                struct sgl_msg msg;
                int k = 0, fd;

                if (n == 0)
                        return 20; /* the test went away */
                TU_CHILD_CHECK(n == (ssize_t)sizeof(m));
                switch (m.op) {
                case W_CLAIM:
                        k = p->lib ? w_claim_lib(p, &ws) : w_claim(p, &ws, &r);
                        break;
                case W_COMMIT:
                        k = ws.w ? w_commit(&ws, m.a, m.b, (uint32_t)m.c) : -ENOTCONN;
                        break;
                case W_DELETE:
                        for (uint64_t id = m.a; id < m.a + m.b && k >= 0; id++)
                                k = sgl_writer_delete(ws.w, id);
                        if (k >= 0)
                                k = sgl_writer_commit(ws.w);
                        if (k >= 0)
                                k = w_barrier(&ws);
                        break;
                case W_GC:
                        k = sgl_writer_gc(ws.w);
                        if (k >= 0) {
                                int b = w_barrier(&ws);
                                if (b < 0)
                                        k = b;
                        }
                        break;
                case W_SEAL:
                        k = sgl_writer_seal(ws.w);
                        if (k >= 0)
                                k = w_barrier(&ws);
                        break;
                case W_RELEASE:
                        k = pc_send(&ws.pc, buf, sgl_msg_build_release(buf, sizeof(buf), ++ws.pc.serial,
                                                                       (uint32_t)m.a), -1);
                        if (k >= 0)
                                k = pc_recv(&ws.pc, &msg, buf, &fd, 5000);
                        if (k >= 0 && msg.type == SGL_MSG_ERROR)
                                k = msg.error.error;
                        else if (k >= 0 && (msg.type != SGL_MSG_OK || msg.serial != ws.pc.serial))
                                k = -EPROTO;
                        break;
                case W_DIE:
                        _exit(0);
                default:
                        return 21;
                }
                r.ret = k;
                TU_CHILD_CHECK(child_send(p->sock, r.ret, r.v[0], r.v[1], r.v[2], r.v[3]) == 0);
        }
}

static struct proc start_writer(struct wparams *wp) {
        return spawn(writer_main, wp, &wp->sock);
}

static struct rep writer_claim(const struct proc *w) {
        return cmd_call(w, W_CLAIM, 0, 0, 0);
}

static void writer_commit(const struct proc *w, uint64_t first, uint64_t count, uint32_t gen) {
        assert_int_equal(cmd_call(w, W_COMMIT, first, count, gen).ret, 0);
}

static void writer_die(struct proc *w) {
        struct cmd m = { .op = W_DIE };

        assert_int_equal(send(w->sock, &m, sizeof(m), MSG_NOSIGNAL), sizeof(m));
        tu_wait_exit(w->pid, 0);
        close(w->sock);
}

/* ---------------------------------------------------------- the readers */

struct rparams {
        const char *address;
        const char *name;
        unsigned flags;
        bool drop;
        uid_t uid;
        gid_t gid;
        int sock;
};

static int reader_main(void *userdata) {
        struct rparams *p = userdata;
        uint64_t count = 0, hash = 0, bad = 0, dups = 0;
        uint64_t *seen = NULL;
        int64_t err = 0;
        sgl_reader *r = NULL;
        unsigned fds0;
        int k, fd = -1;

        close_others(p->sock);
        if (p->drop)
                TU_CHILD_CHECK(drop_to(p->uid, p->gid) == 0);
        seen = calloc(MAX_IDS, sizeof(*seen));
        TU_CHILD_CHECK(seen);
        fds0 = tu_count_fds();
        k = sgl_reader_open(p->name, p->address, p->flags, &r);
        if (k == 0) {
                fd = sgl_reader_get_fd(r);
                TU_CHILD_CHECK(fd >= 0);
        }
        TU_CHILD_CHECK(child_send(p->sock, k, 0, 0, 0, 0) == 0);

        for (;;) {
                struct cmd m;
                ssize_t n = recv(p->sock, &m, sizeof(m), 0);

                if (n == 0)
                        return 20;
                TU_CHILD_CHECK(n == (ssize_t)sizeof(m));
                switch (m.op) {
                case R_COLLECT: {
                        uint64_t deadline = daemon_now_ms() + m.b;

                        TU_CHILD_CHECK(r);
                        for (;;) {
                                sgl_chunk *c;
                                uint32_t gen;

                                k = sgl_reader_process(r);
                                if (k < 0 && err == 0)
                                        err = k;
                                while (sgl_reader_next(r, &c) == 0) {
                                        uint64_t id = sgl_chunk_id(c);

                                        if (!payload_ok(c, &gen))
                                                bad++;
                                        else if (seen[id] & (1ULL << gen))
                                                dups++;
                                        else {
                                                seen[id] |= 1ULL << gen;
                                                count++;
                                                hash += item_hash(id, gen);
                                        }
                                        sgl_chunk_unref(c);
                                }
                                if (count >= m.a || daemon_now_ms() >= deadline)
                                        break;
                                if (fd >= 0) {
                                        struct pollfd pfd = { .fd = fd, .events = POLLIN };
                                        poll(&pfd, 1, 20);
                                } else {
                                        usleep(20000);
                                }
                        }
                        TU_CHILD_CHECK(child_send(p->sock, err, count, hash, bad, dups) == 0);
                        break;
                }
                case R_GET: {
                        sgl_chunk *c = NULL;
                        uint32_t gen = 0;

                        k = sgl_reader_get(r, m.a, &c);
                        if (k == 0) {
                                if (!payload_ok(c, &gen))
                                        k = -EBADMSG;
                                sgl_chunk_unref(c);
                        }
                        TU_CHILD_CHECK(child_send(p->sock, k, gen, 0, 0, 0) == 0);
                        break;
                }
                case R_EXIT: {
                        unsigned left;

                        sgl_reader_unref(r);
                        free(seen);
                        left = tu_count_fds() - fds0;
                        TU_CHILD_CHECK(child_send(p->sock, 0, left, 0, 0, 0) == 0);
                        return 0;
                }
                default:
                        return 21;
                }
        }
}

static struct proc start_reader(struct rparams *rp) {
        return spawn(reader_main, rp, &rp->sock);
}

/* Collects until @count chunks in all (or @timeout_ms); checks no bad
 * payload and no duplicate. */
static struct rep reader_collect(const struct proc *r, uint64_t count, uint64_t timeout_ms) {
        struct rep rep = cmd_call(r, R_COLLECT, count, timeout_ms, 0);

        assert_int_equal(rep.v[2], 0); /* bad payloads */
        assert_int_equal(rep.v[3], 0); /* duplicates */
        return rep;
}

static void reader_expect(const struct proc *r, uint64_t first, uint64_t last, uint32_t gen) {
        struct rep rep = reader_collect(r, last - first + 1, 5000);

        assert_int_equal(rep.v[0], last - first + 1);
        assert_int_equal(rep.v[1], range_hash(first, last, gen));
}

static void reader_stop(struct proc *r) {
        struct rep rep = cmd_call(r, R_EXIT, 0, 0, 0);

        assert_int_equal(rep.ret, 0);
        assert_int_equal(rep.v[0], 0); /* no descriptor left behind */
        tu_wait_exit(r->pid, 0);
        close(r->sock);
}

/* Opens as @uid/@gid (or ourselves when !drop) and returns the result. */
static int64_t try_open(const char *address, const char *name, unsigned flags, bool drop,
                        uid_t uid, gid_t gid) {
        struct rparams rp = { .address = address, .name = name, .flags = flags,
                              .drop = drop, .uid = uid, .gid = gid };
        struct proc r = start_reader(&rp);
        int64_t ret = r.ret;

        reader_stop(&r);
        return ret;
}

/* ----------------------------------------------------------------- tests */

static void late_joiner_and_pushes(void **state) {
        struct wparams wp = { .name = "demo", .mode = 0444, .policy = SGL_SEAL_EVERY_COMMIT };
        struct rparams rp[3];
        struct proc w, r[3];
        struct area_stat st;
        struct daemon dm;
        unsigned base;
        uint64_t mask;
        const char *names[] = { "demo" };
        struct rep rep;

        (void)state;
        daemon_init(&dm);
        daemon_start(&dm, NULL);
        base = daemon_baseline(&dm);
        wp.address = dm.sock;

        w = start_writer(&wp);
        rep = writer_claim(&w);
        assert_int_equal(rep.ret, 0);
        assert_int_equal(rep.v[0], 0);     /* not a takeover */
        assert_int_equal(rep.v[1], 1);     /* next_seq */
        writer_commit(&w, 1, 40, 0);

        /* late joiners: every live segment */
        for (int i = 0; i < 3; i++) {
                rp[i] = (struct rparams) { .address = dm.sock, .name = "demo",
                                           .flags = i == 2 ? SGL_READER_TRUSTED : 0 };
                r[i] = start_reader(&rp[i]);
                assert_int_equal(r[i].ret, 0);
                reader_expect(&r[i], 1, 40, 0);
        }

        assert_int_equal(query_stat(dm.sock, "demo", &st), 0);
        assert_int_equal(st.owner, geteuid());
        assert_int_equal(st.mode, 0444);
        assert_int_equal(st.flags, SGL_INFO_WRITER_PRESENT);
        assert_int_equal(st.readers, 3);
        assert_int_equal(st.segments, 40);
        assert_int_equal(st.n, 40);
        for (size_t i = 0; i < st.n; i++) {
                assert_int_equal(st.seq[i], i + 1);
                assert_true(st.seals[i] & F_SEAL_WRITE);
                assert_int_equal(st.seals[i] & (F_SEAL_SHRINK | F_SEAL_GROW), F_SEAL_SHRINK | F_SEAL_GROW);
                assert_int_equal(st.event[i], SGL_SEGMENT_SEALED);
                assert_true(st.size[i] >= 4096 && st.size[i] % 4096 == 0);
        }
        assert_int_equal(query_list(dm.sock, names, 1, &mask), 1);
        assert_int_equal(mask, 1);
        assert_int_equal(query_stat(dm.sock, "nope", &st), -ENOENT);

        /* pushes */
        writer_commit(&w, 41, 40, 0);
        for (int i = 0; i < 3; i++) {
                rep = reader_collect(&r[i], 80, 5000);
                assert_int_equal(rep.v[0], 80);
                assert_int_equal(rep.v[1], range_hash(1, 80, 0));
        }

        /* delete and compact: the writer retires segments */
        assert_int_equal(cmd_call(&w, W_DELETE, 1, 30, 0).ret, 0);
        rep = cmd_call(&w, W_GC, 0, 0, 0);
        assert_true(rep.ret > 0);
        assert_int_equal(query_stat(dm.sock, "demo", &st), 0);
        assert_true(st.segments < 81);
        for (int i = 0; i < 3; i++) {
                reader_collect(&r[i], 81, 300);
                assert_int_equal(cmd_call(&r[i], R_GET, 5, 0, 0).ret, -ENOENT);
                rep = cmd_call(&r[i], R_GET, 55, 0, 0);
                assert_int_equal(rep.ret, 0);
                assert_int_equal(rep.v[0], 0);
        }

        /* RELEASE of a non-PERSIST area: GONE */
        assert_int_equal(cmd_call(&w, W_RELEASE, 0, 0, 0).ret, 0);
        for (int i = 0; i < 3; i++) {
                rep = reader_collect(&r[i], UINT64_MAX, 300);
                assert_int_equal(rep.ret, -ENOENT);
                /* what it holds stays */
                assert_int_equal(cmd_call(&r[i], R_GET, 77, 0, 0).ret, 0);
                reader_stop(&r[i]);
        }
        assert_int_equal(try_open(dm.sock, "demo", 0, false, 0, 0), -ENOENT);
        assert_int_equal(query_stat(dm.sock, "demo", &st), -ENOENT);
        writer_die(&w);
        daemon_wait_fds(&dm, base);
        daemon_stop(&dm);
}

static void strict_and_trusted(void **state) {
        struct wparams wp = { .name = "open-seg", .mode = 0444, .policy = SGL_SEAL_BYTES,
                              .policy_arg = 1 << 20 };
        struct rparams rs = { .name = "open-seg" }, rt = { .name = "open-seg",
                                                           .flags = SGL_READER_TRUSTED };
        struct proc w, s, t;
        struct area_stat st;
        struct daemon dm;
        struct rep rep;
        unsigned base;

        (void)state;
        daemon_init(&dm);
        daemon_start(&dm, NULL);
        base = daemon_baseline(&dm);
        wp.address = rs.address = rt.address = dm.sock;
        w = start_writer(&wp);
        assert_int_equal(writer_claim(&w).ret, 0);
        writer_commit(&w, 1, 5, 0);
        s = start_reader(&rs);
        t = start_reader(&rt);
        assert_int_equal(s.ret, 0);
        assert_int_equal(t.ret, 0);

        writer_commit(&w, 6, 5, 0);
        reader_expect(&t, 1, 10, 0);
        rep = reader_collect(&s, 1, 300);
        assert_int_equal(rep.v[0], 0); /* STRICT: nothing of the open segment */
        assert_int_equal(query_stat(dm.sock, "open-seg", &st), 0);
        assert_int_equal(st.n, 1);
        assert_int_equal(st.event[0], SGL_SEGMENT_OPENED);
        assert_false(st.seals[0] & F_SEAL_WRITE);

        assert_int_equal(cmd_call(&w, W_SEAL, 0, 0, 0).ret, 0);
        reader_expect(&s, 1, 10, 0);
        rep = reader_collect(&t, 11, 300);
        assert_int_equal(rep.v[0], 10); /* no duplicate from the seal */
        assert_int_equal(query_stat(dm.sock, "open-seg", &st), 0);
        assert_int_equal(st.event[0], SGL_SEGMENT_SEALED);
        assert_true(st.seals[0] & F_SEAL_WRITE);

        reader_stop(&s);
        reader_stop(&t);
        writer_die(&w);
        daemon_wait_fds(&dm, base);
        daemon_stop(&dm);
}

static void writer_exit_not_persist(void **state) {
        struct wparams wp = { .name = "brief", .mode = 0444 };
        struct rparams rp = { .name = "brief" };
        struct proc w, r;
        struct daemon dm;
        struct rep rep;
        unsigned base;

        (void)state;
        daemon_init(&dm);
        daemon_start(&dm, NULL);
        base = daemon_baseline(&dm);
        wp.address = rp.address = dm.sock;
        w = start_writer(&wp);
        assert_int_equal(writer_claim(&w).ret, 0);
        writer_commit(&w, 1, 10, 3);
        r = start_reader(&rp);
        assert_int_equal(r.ret, 0);
        reader_expect(&r, 1, 10, 3);

        writer_die(&w);
        rep = reader_collect(&r, UINT64_MAX, 500);
        assert_int_equal(rep.ret, -ENOENT);     /* GONE */
        rep = cmd_call(&r, R_GET, 7, 0, 0);
        assert_int_equal(rep.ret, 0);
        assert_int_equal(rep.v[0], 3);
        assert_int_equal(try_open(dm.sock, "brief", 0, false, 0, 0), -ENOENT);
        reader_stop(&r);
        daemon_wait_fds(&dm, base);
        daemon_stop(&dm);
}

static void writer_exit_persist(void **state) {
        struct wparams wp = { .name = "keep", .mode = 0444, .claim_flags = SGL_CLAIM_PERSIST,
                              .policy = SGL_SEAL_WHEN_FULL };
        struct rparams rs = { .name = "keep" }, rt = { .name = "keep", .flags = SGL_READER_TRUSTED };
        struct proc w, w2, w3, s, t, late;
        struct area_stat st;
        struct daemon dm;
        struct rep rep;
        unsigned base;

        (void)state;
        daemon_init(&dm);
        daemon_start(&dm, NULL);
        base = daemon_baseline(&dm);
        wp.address = rs.address = rt.address = dm.sock;
        w = start_writer(&wp);
        assert_int_equal(writer_claim(&w).ret, 0);
        writer_commit(&w, 1, 20, 1);   /* all in the one open segment */
        s = start_reader(&rs);
        t = start_reader(&rt);
        assert_int_equal(s.ret, 0);
        assert_int_equal(t.ret, 0);
        reader_expect(&t, 1, 20, 1);
        rep = reader_collect(&s, 1, 200);
        assert_int_equal(rep.v[0], 0);

        writer_die(&w);
        /* sealed by copy: the STRICT reader gets every commit */
        reader_expect(&s, 1, 20, 1);
        rep = reader_collect(&s, 21, 200);
        assert_int_equal(rep.ret, 0);           /* no GONE: the area stays */
        rep = reader_collect(&t, 21, 200);
        assert_int_equal(rep.v[0], 20);
        assert_int_equal(rep.ret, 0);

        assert_int_equal(query_stat(dm.sock, "keep", &st), 0);
        assert_int_equal(st.flags, SGL_INFO_PERSIST); /* no writer */
        assert_int_equal(st.n, 1);
        assert_int_equal(st.event[0], SGL_SEGMENT_SEALED);
        assert_int_equal(st.seals[0] & (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW),
                         F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW);
        assert_true(st.size[0] < (1 << 20)); /* the copy holds the commits only */

        late = start_reader(&rs);
        assert_int_equal(late.ret, 0);
        reader_expect(&late, 1, 20, 1);

        /* takeover by the owner's uid */
        w2 = start_writer(&wp);
        rep = writer_claim(&w2);
        assert_int_equal(rep.ret, 0);
        assert_int_equal(rep.v[0], SGL_CLAIMED_TAKEOVER);
        assert_int_equal(rep.v[1], st.seq[0] + 1);
        assert_int_equal(rep.v[2], 1);          /* the one live segment */
        w3 = start_writer(&wp);
        assert_int_equal(writer_claim(&w3).ret, -EBUSY);
        writer_die(&w3);

        writer_commit(&w2, 21, 10, 2);
        assert_int_equal(cmd_call(&w2, W_SEAL, 0, 0, 0).ret, 0);
        rep = reader_collect(&s, 30, 5000);
        assert_int_equal(rep.v[0], 30);
        assert_int_equal(rep.v[1], range_hash(1, 20, 1) + range_hash(21, 30, 2));
        rep = reader_collect(&t, 30, 5000);
        assert_int_equal(rep.v[0], 30);
        assert_int_equal(rep.v[1], range_hash(1, 20, 1) + range_hash(21, 30, 2));
        rep = reader_collect(&late, 30, 5000);
        assert_int_equal(rep.v[0], 30);

        /* RELEASE with REMOVE ends it for everyone */
        assert_int_equal(cmd_call(&w2, W_RELEASE, SGL_RELEASE_REMOVE, 0, 0).ret, 0);
        rep = reader_collect(&s, UINT64_MAX, 300);
        assert_int_equal(rep.ret, -ENOENT);
        reader_stop(&s);
        reader_stop(&t);
        reader_stop(&late);
        writer_die(&w2);
        daemon_wait_fds(&dm, base);
        daemon_stop(&dm);
}

static void name_ownership(void **state) {
        struct wparams wp = { .name = "owned", .mode = 0444, .claim_flags = SGL_CLAIM_PERSIST };
        struct wparams np = { .name = "owned", .mode = 0444, .drop = true, .uid = NOBODY,
                              .gid = NOBODY };
        struct proc w, w2, n;
        struct daemon dm;

        (void)state;
        daemon_init(&dm);
        daemon_start(&dm, NULL);
        wp.address = np.address = dm.sock;
        w = start_writer(&wp);
        assert_int_equal(writer_claim(&w).ret, 0);
        writer_commit(&w, 1, 3, 0);
        w2 = start_writer(&wp);
        assert_int_equal(writer_claim(&w2).ret, -EBUSY);
        writer_die(&w2);

        if (tu_is_root()) {
                n = start_writer(&np);
                assert_int_equal(writer_claim(&n).ret, -EEXIST);
                writer_die(&n);
                /* without a writer the name is still root's */
                writer_die(&w);
                n = start_writer(&np);
                assert_int_equal(writer_claim(&n).ret, -EEXIST);
                writer_die(&n);
                /* a name of its own is fine */
                np.name = "nobodys";
                n = start_writer(&np);
                assert_int_equal(writer_claim(&n).ret, 0);
                writer_commit(&n, 1, 2, 0);
                /* and root cannot take that one */
                wp.name = "nobodys";
                w2 = start_writer(&wp);
                assert_int_equal(writer_claim(&w2).ret, -EEXIST);
                writer_die(&w2);
                writer_die(&n);
        } else {
                writer_die(&w);
        }
        daemon_stop(&dm);
}

static void access_control(void **state) {
        static const struct {
                const char *name;
                uint32_t mode;
                uint32_t uid, gid;       /* UINT32_MAX: none */
                int64_t want;
        } cases[] = {
                { "a-owner", 0400, UINT32_MAX, UINT32_MAX, -EACCES },
                { "a-none", 0, UINT32_MAX, UINT32_MAX, -EACCES },
                { "a-all", 0004, UINT32_MAX, UINT32_MAX, 0 },
                { "a-uid", 0400, NOBODY, UINT32_MAX, 0 },
                { "a-gid", 0400, UINT32_MAX, NOBODY, 0 },
                { "a-otheruid", 0440, 4242, 4242, -EACCES },
        };
        const char *names[ELEMENTSOF(cases) + 1];
        struct proc w[ELEMENTSOF(cases) + 1], r;
        struct wparams wp[ELEMENTSOF(cases) + 1];
        struct rparams rp;
        struct daemon dm;
        struct rep rep;
        uint64_t mask;
        pid_t pid;
        int status;

        (void)state;
        if (!tu_is_root())
                skip();
        daemon_init(&dm);
        daemon_start(&dm, NULL);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                wp[i] = (struct wparams) { .address = dm.sock, .name = cases[i].name,
                                           .mode = cases[i].mode };
                if (cases[i].uid != UINT32_MAX)
                        wp[i].uids[wp[i].n_uids++] = cases[i].uid;
                if (cases[i].gid != UINT32_MAX)
                        wp[i].gids[wp[i].n_gids++] = cases[i].gid;
                names[i] = cases[i].name;
                w[i] = start_writer(&wp[i]);
                assert_int_equal(writer_claim(&w[i]).ret, 0);
                writer_commit(&w[i], 1, 2, 0);
        }
        /* mode 0040: the writer's group, here gid 4343 */
        wp[ELEMENTSOF(cases)] = (struct wparams) { .address = dm.sock, .name = "a-group", .mode = 0040,
                                                   .drop = true, .uid = 4343, .gid = 4343 };
        names[ELEMENTSOF(cases)] = "a-group";
        w[ELEMENTSOF(cases)] = start_writer(&wp[ELEMENTSOF(cases)]);
        assert_int_equal(writer_claim(&w[ELEMENTSOF(cases)]).ret, 0);
        writer_commit(&w[ELEMENTSOF(cases)], 1, 2, 0);

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                assert_int_equal(try_open(dm.sock, cases[i].name, 0, true, NOBODY, NOBODY),
                                 cases[i].want);
                /* root may always read */
                assert_int_equal(try_open(dm.sock, cases[i].name, 0, false, 0, 0), 0);
        }
        assert_int_equal(try_open(dm.sock, "a-group", 0, true, NOBODY, 4343), 0);
        assert_int_equal(try_open(dm.sock, "a-group", 0, true, NOBODY, NOBODY), -EACCES);
        /* the owner itself needs 0400: mode 0040 alone still lets it in
         * through its group */
        assert_int_equal(try_open(dm.sock, "a-group", 0, true, 4343, 4343), 0);

        /* LIST as uid 65534: exactly the areas it may read */
        fflush(stderr);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int k;
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (drop_to(NOBODY, NOBODY) < 0)
                        _exit(3);
                k = query_list(dm.sock, names, ELEMENTSOF(cases) + 1, &mask);
                _exit(k == 3 && mask == ((1u << 2) | (1u << 3) | (1u << 4)) ? 0 : 4);
        }
        status = tu_wait_status(pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_int_equal(query_list(dm.sock, names, ELEMENTSOF(cases) + 1, &mask), 7);

        for (size_t i = 0; i <= ELEMENTSOF(cases); i++)
                writer_die(&w[i]);

        /* a takeover that narrows access: GONE to the reader it shuts out */
        wp[0] = (struct wparams) { .address = dm.sock, .name = "narrow", .mode = 0444,
                                   .claim_flags = SGL_CLAIM_PERSIST };
        w[0] = start_writer(&wp[0]);
        assert_int_equal(writer_claim(&w[0]).ret, 0);
        writer_commit(&w[0], 1, 2, 0);
        rp = (struct rparams) { .address = dm.sock, .name = "narrow", .drop = true, .uid = NOBODY,
                                .gid = NOBODY };
        r = start_reader(&rp);
        assert_int_equal(r.ret, 0);
        reader_expect(&r, 1, 2, 0);
        writer_die(&w[0]);
        rep = reader_collect(&r, 3, 300);
        assert_int_equal(rep.ret, 0);           /* PERSIST: still there */
        wp[0].mode = 0400;
        w[0] = start_writer(&wp[0]);
        assert_int_equal(writer_claim(&w[0]).ret, 0);
        rep = reader_collect(&r, UINT64_MAX, 500);
        assert_int_equal(rep.ret, -ENOENT);     /* GONE */
        reader_stop(&r);
        assert_int_equal(try_open(dm.sock, "narrow", 0, true, NOBODY, NOBODY), -EACCES);
        writer_die(&w[0]);
        daemon_stop(&dm);
}

static void write_file(const char *dir, const char *name, const char *text, mode_t mode) {
        char path[512];
        int fd;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        assert_int_equal(fchmod(fd, mode), 0);
        close(fd);
}

static int64_t claim_as(const char *address, const char *name, bool drop, uid_t uid, gid_t gid) {
        struct wparams wp = { .address = address, .name = name, .mode = 0444, .drop = drop,
                              .uid = uid, .gid = gid };
        struct proc w = start_writer(&wp);
        int64_t k = writer_claim(&w).ret;

        writer_die(&w);
        return k;
}

static void policy(void **state) {
        struct daemon dm;
        bool root = tu_is_root();
        uid_t me = geteuid();
        char text[512];

        (void)state;
        daemon_init(&dm);
        snprintf(text, sizeof(text),
                 "# reservations\n"
                 "reserve sys.* uid=%u\n"
                 "\treserve   exact  uid=4242  \n"
                 "reserve team.* gid=4343\n"
                 "reserve bad/name uid=1\n"
                 "reserve x uid=-1\n"
                 "reserve y uid=4294967295\n"
                 "reserve z uid=007\n"
                 "reserve z\n"
                 "allow z uid=1\n"
                 "reserve .hidden* uid=1\n"
                 "reserve q uid=1 extra\n", (unsigned)me + 1);
        write_file(dm.policy, "10-test.conf", text, 0644);
        write_file(dm.policy, "20-ignored.txt", "reserve other uid=1\n", 0644);
        write_file(dm.policy, "30-more.conf", "reserve mine uid=4242", 0644);
        daemon_start(&dm, NULL);

        assert_int_equal(claim_as(dm.sock, "sys.clock", false, 0, 0), -EACCES);
        assert_int_equal(claim_as(dm.sock, "exact", false, 0, 0), -EACCES);
        assert_int_equal(claim_as(dm.sock, "exactly", false, 0, 0), 0);
        assert_int_equal(claim_as(dm.sock, "mine", false, 0, 0), -EACCES);
        assert_int_equal(claim_as(dm.sock, "team.a", false, 0, 0), -EACCES);
        /* the bad lines reserved nothing */
        assert_int_equal(claim_as(dm.sock, "x", false, 0, 0), 0);
        assert_int_equal(claim_as(dm.sock, "z", false, 0, 0), 0);
        assert_int_equal(claim_as(dm.sock, "other", false, 0, 0), 0);
        assert_true(log_has(&dm, "10-test.conf:5:"));
        assert_true(log_has(&dm, "10-test.conf:12:"));
        assert_false(log_has(&dm, "10-test.conf:3:"));
        assert_true(log_has(&dm, ": 4 rules"));
        if (root) {
                assert_int_equal(claim_as(dm.sock, "exact", true, 4242, 4242), 0);
                assert_int_equal(claim_as(dm.sock, "mine", true, 4242, 4242), 0);
                assert_int_equal(claim_as(dm.sock, "team.a", true, 4242, 4343), 0);
                assert_int_equal(claim_as(dm.sock, "team.a", true, 4242, 4242), -EACCES);
                assert_int_equal(claim_as(dm.sock, "sys.clock", true, me + 1, me + 1), 0);
        }

        /* SIGHUP: the directory again */
        write_file(dm.policy, "40-late.conf", "reserve late.* uid=4242\n", 0644);
        assert_int_equal(claim_as(dm.sock, "late.one", false, 0, 0), 0);
        assert_int_equal(kill(dm.pid, SIGHUP), 0);
        for (int i = 0; i < 200 && !log_has(&dm, ": 5 rules"); i++)
                usleep(10000);
        assert_true(log_has(&dm, ": 5 rules"));
        assert_int_equal(claim_as(dm.sock, "late.one", false, 0, 0), -EACCES);
        daemon_stop(&dm);
}

static void quotas(void **state) {
        static const char *const limits[] = {
                "--limit", "areas-per-uid=2", "--limit", "segments-per-uid=5",
                "--limit", "conns-per-uid=6", "--limit", "bytes-per-uid=300000", NULL
        };
        struct wparams wa = { .name = "q1", .mode = 0444 }, wb = { .name = "q2", .mode = 0444 },
                       wc = { .name = "q3", .mode = 0444 },
                       wd = { .name = "q4", .mode = 0444, .policy = SGL_SEAL_WHEN_FULL };
        struct proc a, b, c;
        struct pc extra[6];
        struct area_stat st;
        struct daemon dm;
        unsigned base;
        int n_ok = 0;

        (void)state;
        daemon_init(&dm);
        daemon_start(&dm, limits);
        base = daemon_baseline(&dm);
        wa.address = wb.address = wc.address = wd.address = dm.sock;

        /* areas: two per uid */
        a = start_writer(&wa);
        b = start_writer(&wb);
        c = start_writer(&wc);
        assert_int_equal(writer_claim(&a).ret, 0);
        assert_int_equal(writer_claim(&b).ret, 0);
        assert_int_equal(writer_claim(&c).ret, -EDQUOT);
        writer_die(&c);

        /* segments: five over all areas of the uid; the sixth is refused
         * and ends that writer's connection, and its non-PERSIST area */
        writer_commit(&a, 1, 3, 0);
        writer_commit(&b, 1, 2, 0);
        assert_int_equal(cmd_call(&b, W_COMMIT, 3, 1, 0).ret, -EDQUOT);
        writer_die(&b);
        daemon_wait_fds(&dm, base + 1 + 4); /* a: connection, control, 3 segments */
        assert_int_equal(query_stat(dm.sock, "q2", &st), -ENOENT);
        assert_int_equal(query_stat(dm.sock, "q1", &st), 0);
        assert_int_equal(st.segments, 3);
        daemon_wait_fds(&dm, base + 1 + 4);

        /* the freed area and segments are usable again */
        c = start_writer(&wc);
        assert_int_equal(writer_claim(&c).ret, 0);
        writer_commit(&c, 1, 2, 0);
        writer_die(&c);
        daemon_wait_fds(&dm, base + 1 + 4);

        /* bytes: a 1 MiB open segment does not fit in 300000 */
        c = start_writer(&wd);
        assert_int_equal(writer_claim(&c).ret, 0);
        assert_int_equal(cmd_call(&c, W_COMMIT, 1, 1, 0).ret, -EDQUOT);
        writer_die(&c);
        daemon_wait_fds(&dm, base + 1 + 4);

        /* connections: the writer holds one; five more fit, not six */
        for (int i = 0; i < 6; i++) {
                int k = pc_connect(&extra[i], dm.sock, SGL_ROLE_QUERY);
                if (k == 0)
                        n_ok++;
                else
                        assert_int_equal(k, -EDQUOT);
        }
        assert_int_equal(n_ok, 5);
        assert_int_equal(extra[5].fd, -1);
        pc_close(&extra[0]);
        daemon_wait_fds(&dm, base + 1 + 4 + 4);
        assert_int_equal(pc_connect(&extra[5], dm.sock, SGL_ROLE_QUERY), 0);
        assert_int_equal(pc_ping(&extra[5]), 0);
        for (int i = 0; i < 6; i++)
                pc_close(&extra[i]);

        writer_die(&a);
        daemon_wait_fds(&dm, base);
        daemon_stop(&dm);
}

static void library_writer(void **state) {
        struct wparams wp = { .name = "libarea", .mode = 0444, .claim_flags = SGL_CLAIM_PERSIST,
                              .policy = SGL_SEAL_BYTES, .policy_arg = 1 << 20, .lib = true };
        struct rparams rs = { .name = "libarea" }, rt = { .name = "libarea",
                                                          .flags = SGL_READER_TRUSTED };
        struct proc w, w2, s, t;
        struct area_stat st;
        struct daemon dm;
        struct rep rep;

        (void)state;
        daemon_init(&dm);
        daemon_start(&dm, NULL);
        wp.address = rs.address = rt.address = dm.sock;
        w = start_writer(&wp);
        assert_int_equal(writer_claim(&w).ret, 0);
        writer_commit(&w, 1, 10, 0);       /* one open segment */
        s = start_reader(&rs);
        t = start_reader(&rt);
        assert_int_equal(s.ret, 0);
        assert_int_equal(t.ret, 0);
        reader_expect(&t, 1, 10, 0);
        assert_int_equal(reader_collect(&s, 1, 200).v[0], 0);

        /* the writer dies: its open segment is sealed by copy */
        writer_die(&w);
        reader_expect(&s, 1, 10, 0);
        assert_int_equal(query_stat(dm.sock, "libarea", &st), 0);
        assert_int_equal(st.flags, SGL_INFO_PERSIST);

        /* a second library writer takes the area over and continues the
         * log: newer versions of old ids, and a deletion of an old id */
        w2 = start_writer(&wp);
        assert_int_equal(writer_claim(&w2).ret, 0);
        writer_commit(&w2, 5, 10, 1);
        assert_int_equal(cmd_call(&w2, W_DELETE, 1, 1, 0).ret, 0);
        assert_int_equal(cmd_call(&w2, W_SEAL, 0, 0, 0).ret, 0);
        rep = reader_collect(&s, 20, 5000);
        assert_int_equal(rep.v[0], 20);
        assert_int_equal(rep.v[1], range_hash(1, 10, 0) + range_hash(5, 14, 1));
        rep = reader_collect(&t, 20, 5000);
        if (rep.v[0] != 20)
                print_message("TRUSTED reader: %" PRIu64 " chunks, error %" PRId64 "\n",
                              rep.v[0], rep.ret);
        assert_int_equal(rep.v[0], 20);
        for (int i = 0; i < 2; i++) {
                const struct proc *r = i ? &t : &s;

                assert_int_equal(cmd_call(r, R_GET, 1, 0, 0).ret, -ENOENT);
                rep = cmd_call(r, R_GET, 2, 0, 0);
                assert_int_equal(rep.ret, 0);
                assert_int_equal(rep.v[0], 0);
                rep = cmd_call(r, R_GET, 7, 0, 0);
                assert_int_equal(rep.ret, 0);
                assert_int_equal(rep.v[0], 1);
        }
        assert_int_equal(query_stat(dm.sock, "libarea", &st), 0);
        assert_int_equal(st.flags, SGL_INFO_PERSIST | SGL_INFO_WRITER_PRESENT);

        reader_stop(&s);
        reader_stop(&t);
        writer_die(&w2);
        /* PERSIST: the area stays without its writer */
        assert_int_equal(query_stat(dm.sock, "libarea", &st), 0);
        daemon_stop(&dm);
}

static void fd_store_restart(void **state) {
        struct wparams wp = { .name = "stored", .mode = 0444, .claim_flags = SGL_CLAIM_PERSIST,
                              .policy = SGL_SEAL_BYTES, .policy_arg = 8192 };
        struct wparams tp = { .name = "transient", .mode = 0444 };
        struct rparams rp = { .name = "stored" };
        struct proc w, t, r, w2;
        struct area_stat st, st2;
        struct daemon dm;
        struct store sm;
        char hex[33] = "", name[80];
        int fds[STORE_MAX + 8];
        char *names[STORE_MAX + 8];
        size_t n = 0, before;
        unsigned removes;
        uint64_t last = 20;
        struct rep rep;
        int pipefd[2], junk;

        (void)state;
        daemon_init(&dm);
        store_open(&sm, &dm);
        dm.notify = sm.path;
        daemon_start(&dm, NULL);
        STORE_WAIT(&sm, sm.ready == 1);
        STORE_UNLOCK(&sm);
        wp.address = tp.address = rp.address = dm.sock;

        w = start_writer(&wp);
        assert_int_equal(writer_claim(&w).ret, 0);
        t = start_writer(&tp);
        assert_int_equal(writer_claim(&t).ret, 0);
        writer_commit(&t, 1, 3, 0);
        writer_commit(&w, 1, 20, 0);
        assert_int_equal(query_stat(dm.sock, "stored", &st), 0);
        if (st.event[st.n - 1] == SGL_SEGMENT_SEALED) {
                /* one more, small enough to stay in a new open segment */
                writer_commit(&w, 21, 1, 0);
                last = 21;
                assert_int_equal(query_stat(dm.sock, "stored", &st), 0);
        }
        assert_true(st.n >= 3);
        assert_int_equal(st.event[st.n - 1], SGL_SEGMENT_OPENED); /* the last one is open */

        /* the PERSIST area is in the store, whole; the other one is not */
        STORE_WAIT(&sm, store_count(&sm, "sgl.s.") == st.n);
        assert_int_equal(store_count(&sm, "sgl.m."), 1);
        assert_int_equal(store_count(&sm, "sgl.c."), 1);
        assert_int_equal(sm.n, st.n + 2);
        for (size_t i = 0; i < sm.n; i++)
                if (strncmp(sm.names[i], "sgl.m.", 6) == 0)
                        memcpy(hex, sm.names[i] + 6, 32);
        assert_int_equal(strlen(hex), 32);
        for (size_t i = 0; i < st.n; i++) {
                snprintf(name, sizeof(name), "sgl.s.%s.%" PRIu64, hex, st.seq[i]);
                assert_true(store_find(&sm, name) >= 0);
        }
        before = sm.n;
        STORE_UNLOCK(&sm);

        /* the daemon stops: nothing leaves the store */
        daemon_stop_keep(&dm);
        STORE_WAIT(&sm, sm.stopping == 1);
        assert_int_equal(sm.n, before);
        removes = sm.removes;
        for (size_t i = 0; i < sm.n; i++) {
                fds[n] = fcntl(sm.fds[i], F_DUPFD_CLOEXEC, 3);
                assert_true(fds[n] >= 0);
                names[n++] = strdup(sm.names[i]);
        }
        STORE_UNLOCK(&sm);
        writer_die(&w);
        writer_die(&t);

        /* a new daemon gets it all back (and some junk to refuse) */
        assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
        junk = sgl_memfd_create("junk", 4096);
        assert_true(junk >= 0);
        snprintf(name, sizeof(name), "sgl.s.%s.999", hex);
        fds[n] = pipefd[0];
        names[n++] = strdup(name);
        fds[n] = junk;
        names[n++] = strdup("sgl.m.0123456789abcdef0123456789abcdef");
        fds[n] = pipefd[1];
        names[n++] = strdup("sgl.x.whatever");
        dm.listen_fds = fds;
        dm.listen_names = names;
        dm.n_listen = n;
        daemon_start(&dm, NULL);
        for (size_t i = 0; i < n; i++) {
                close(fds[i]);
                free(names[i]);
        }
        dm.n_listen = 0;
        STORE_WAIT(&sm, sm.ready == 2);
        /* the junk; then the open segment replaced by its sealed copy and
         * the metadata rewritten (its highest seq) */
        assert_int_equal(sm.removes - removes, 3 + 1 + 1);
        assert_int_equal(sm.n, st.n + 2);
        STORE_UNLOCK(&sm);
        assert_true(log_has(&dm, "fd store: 1 areas restored"));
        assert_true(log_has(&dm, "sgl.x.whatever"));

        /* the area is back, without a writer, everything sealed */
        assert_int_equal(query_stat(dm.sock, "stored", &st2), 0);
        assert_int_equal(st2.flags, SGL_INFO_PERSIST);
        assert_int_equal(st2.n, st.n);
        for (size_t i = 0; i < st2.n; i++) {
                assert_int_equal(st2.seq[i], st.seq[i]);
                assert_int_equal(st2.event[i], SGL_SEGMENT_SEALED);
                assert_true(st2.seals[i] & F_SEAL_WRITE);
        }
        assert_int_equal(query_stat(dm.sock, "transient", &st2), -ENOENT);
        r = start_reader(&rp);
        assert_int_equal(r.ret, 0);
        reader_expect(&r, 1, last, 0);

        /* a takeover continues past the highest seq */
        w2 = start_writer(&wp);
        rep = writer_claim(&w2);
        assert_int_equal(rep.ret, 0);
        assert_int_equal(rep.v[0], SGL_CLAIMED_TAKEOVER);
        assert_int_equal(rep.v[1], st.seq[st.n - 1] + 1);
        writer_commit(&w2, last + 1, 10, 0);
        assert_int_equal(cmd_call(&w2, W_SEAL, 0, 0, 0).ret, 0);
        reader_expect(&r, 1, last + 10, 0);

        /* removed: out of the store */
        assert_int_equal(cmd_call(&w2, W_RELEASE, SGL_RELEASE_REMOVE, 0, 0).ret, 0);
        STORE_WAIT(&sm, sm.n == 0);
        STORE_UNLOCK(&sm);
        reader_stop(&r);
        writer_die(&w2);
        daemon_stop(&dm);
        store_close(&sm);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(late_joiner_and_pushes),
                cmocka_unit_test(strict_and_trusted),
                cmocka_unit_test(writer_exit_not_persist),
                cmocka_unit_test(writer_exit_persist),
                cmocka_unit_test(name_ownership),
                cmocka_unit_test(access_control),
                cmocka_unit_test(policy),
                cmocka_unit_test(quotas),
                cmocka_unit_test(library_writer),
                cmocka_unit_test(fd_store_restart),
        };

        signal(SIGPIPE, SIG_IGN);
        tu_watchdog(120);
        if (getenv("SGLD_TEST_FILTER")) /* e.g. "never_read" */
                cmocka_set_test_filter(getenv("SGLD_TEST_FILTER"));
        return cmocka_run_group_tests(tests, NULL, NULL);
}
