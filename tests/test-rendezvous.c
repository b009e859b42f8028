/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-rendezvous.c - the embedded host (sgl_host_*) and connected readers
 * (sgl_reader_open/get_fd/process), with the writer and every reader in its
 * own process, talking over the real AF_UNIX SOCK_SEQPACKET rendezvous.
 *
 * Layout: the test process only coordinates.  The writer runs in a child
 * that owns the sgl_writer and its sgl_host and drives the host from a poll()
 * loop (host fd + a command socket from the test); each reader is a child
 * that calls sgl_reader_open() and then answers commands (drain, wait, poll,
 * ...).  Every chunk is self-describing (id, generation, length, then a
 * pattern seeded by both), so a reader checks each payload byte-exact and
 * reports a count and an order-independent hash of the (id, generation)
 * pairs it got; the test compares them with what it made the writer commit.
 *
 * What it proves:
 *  - late_joiner_and_pushes_{path,abstract}: readers (two STRICT, two
 *    TRUSTED) opening by a filesystem path and by an "@abstract" address
 *    after the writer committed, replaced and deleted chunks get exactly the
 *    live set (newest versions, no deleted ids) byte-exact; chunks committed
 *    after the open arrive as pushed segments, taken by
 *    sgl_reader_process() + sgl_reader_next() or by sgl_reader_next()
 *    alone; every reader's descriptor count returns to its value before
 *    the open; a clean exit removes the socket file.
 *  - trusted_sees_open_segment: under SGL_SEAL_BYTES a TRUSTED reader reads
 *    commits of the open segment at once (the first through the OPENED push,
 *    later ones straight from its mapping), a STRICT one only after the seal;
 *    sgl_reader_get() agrees; the SEALED push gives the TRUSTED reader no
 *    duplicate.
 *  - pollable_fd: poll() and epoll on sgl_reader_get_fd() time out while
 *    nothing happened; STRICT: still nothing after a commit into the open
 *    segment, readable once the sealed segment is pushed; TRUSTED: readable
 *    on the first commit (push) and on a later commit into the same open
 *    segment (no push: only the watcher thread's eventfd), quiet again after
 *    draining; poll also reports the host's end.
 *  - writer_exit_clean / writer_killed: a writer that exits (or is
 *    SIGKILLed) leaves its readers with every chunk they mapped readable
 *    byte-exact (held chunks, sgl_reader_get(), and an OPENED segment pushed
 *    just before the end); sgl_reader_process() reports -ECONNRESET exactly
 *    once; the fd is quiet afterwards; opening again gives -ENOENT (socket
 *    file removed on a clean exit) or -ECONNREFUSED (stale socket file).
 *  - writer_exit_seen_by_next: the end is still reported once by
 *    sgl_reader_process() when sgl_reader_next() met it first, and the
 *    pollable fd stays readable until then.
 *  - open_errors: unknown area -ENOENT; bad names ("", "../x", ".x", "a/b",
 *    "a b", 256 bytes, NULL) and bad flags -EINVAL while 255 bytes is valid;
 *    no socket -ENOENT, a stale socket file, a non-socket file and an unused
 *    abstract name -ECONNREFUSED; an over-long address fails; a second host
 *    on a live address -EADDRINUSE, also on another program's live
 *    SOCK_STREAM socket (left alone), while a stale socket file is
 *    replaced; no descriptor leaks in the process that tried.
 *  - access_other_uid (root only): a reader of uid 65534 is refused with
 *    -EACCES by default, allowed after sgl_host_set_access(0444), by its uid
 *    in the list, by its gid in the list, by mode 0040 when its gid is the
 *    writer's; refused for a list without it; a reader already open keeps
 *    its pushes when access narrows; both over a path (dir 0755, socket
 *    0666) and an abstract address.
 *  - slow_reader_cannot_suppress_pushes: a reader that opens and then never
 *    reads its socket does not block the writer (1000 commits, each pushed,
 *    finish in bounded time, no single commit slow), is disconnected by the
 *    host (sgl_host_get_connections() drops), afterwards finds a byte-exact
 *    prefix and -ECONNRESET once; the honest readers receive all 1000.
 *  - late_joiner_many_segments: a late joiner of an area with 600 live
 *    segments (an OPEN reply far larger than what the socket takes at once)
 *    still opens and gets every chunk.
 *  - stalled_readers_vs_unprivileged_writer (root only, to run the writer
 *    as uid 65534 with RLIMIT_NOFILE 1024): eight readers that never read
 *    cannot exhaust the descriptors the kernel lets an unprivileged writer
 *    have in flight (ETOOMANYREFS for every connection): 2000 commits all
 *    succeed and two honest readers get every one without being dropped.
 *  - pinned_open_segment_seals_at_once: a TRUSTED reader that got the open
 *    segment from the host (SGL_SEAL_BYTES; in its OPEN reply, then as an
 *    OPENED push) pins a page of one of its chunks (vmsplice() into a pipe
 *    it never reads); each sgl_writer_seal() returns 0 in well under
 *    100 ms (F_SEAL_WRITE used to wait ~150 ms on the pin before the writer
 *    fell back to a copy, for every open segment such a reader pinned), by
 *    copy (stats: seal_copies counts them, no seal in place); a STRICT
 *    reader then gets the commits byte-exact from the copies, the pinning
 *    reader keeps its chunks without duplicates.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sigillo.h"
#include "test-payload.h"
#include "test-util.h"

/* ------------------------------------------------------------ payloads */

#define MAX_IDS PAYLOAD_MAX_IDS

/* ------------------------------------------- commands between processes */

enum {
        /* writer */
        W_READY = 1,   /* -> ret: sgl_host_new() */
        W_COMMIT,      /* a first id, b count, c gen: one commit each */
        W_DELETE,      /* a id */
        W_SEAL,        /* -> v0 ns it took, v1 seal_copies, v2 seals */
        W_ACCESS,      /* a mode, b uid or UINT64_MAX, c gid or UINT64_MAX */
        W_STATUS,      /* a wanted connections (or UINT64_MAX), b timeout ms */
        W_EXIT,
        /* reader */
        R_OPENED = 100, /* -> ret: sgl_reader_open() */
        R_DRAIN,       /* process + next until -EAGAIN */
        R_WAIT,        /* a count, b timeout ms: drain until count reached */
        R_POLL,        /* a timeout ms: poll() on sgl_reader_get_fd() */
        R_EPOLL,       /* a timeout ms: epoll_wait() on a set holding it */
        R_QUIET,       /* drain, settle, drain, then R_POLL(a) */
        R_PROCESS,     /* sgl_reader_process() alone */
        R_VERIFY,      /* re-check every held chunk */
        R_GET,         /* a id: sgl_reader_get() */
        R_NEXT,        /* sgl_reader_next() until -EAGAIN, no process() */
        R_PIN,         /* a id: vmsplice() a page of its chunk into a pipe */
        R_EXIT,        /* -> ret: descriptors left over since before open */
};

struct cmd {
        uint32_t op;
        uint32_t pad;
        uint64_t a, b, c;
};

struct rep {
        int64_t ret;
        uint64_t v[6];
};

struct proc {
        pid_t pid;
        int sock;
};

static int child_send(int sock, int64_t ret, uint64_t v0, uint64_t v1, uint64_t v2,
                      uint64_t v3, uint64_t v4, uint64_t v5) {
        struct rep r = { ret, { v0, v1, v2, v3, v4, v5 } };
        return send(sock, &r, sizeof(r), MSG_NOSIGNAL) == (ssize_t)sizeof(r) ? 0 : -1;
}

/* In a child: close every inherited descriptor except stdio and @keep. */
static void close_others(int keep) {
        if (keep > 3)
                close_range(3, (unsigned)keep - 1, 0);
        close_range((unsigned)keep + 1, ~0U, 0);
}

static uint64_t mono_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void cmd_post(const struct proc *p, uint32_t op, uint64_t a, uint64_t b, uint64_t c) {
        struct cmd m = { .op = op, .a = a, .b = b, .c = c };
        assert_int_equal(send(p->sock, &m, sizeof(m), MSG_NOSIGNAL), sizeof(m));
}

static struct rep cmd_wait(const struct proc *p) {
        struct pollfd pfd = { .fd = p->sock, .events = POLLIN };
        struct rep r;

        assert_int_equal(poll(&pfd, 1, 30000), 1);
        assert_int_equal(recv(p->sock, &r, sizeof(r), 0), sizeof(r));
        return r;
}

static struct rep cmd_call(const struct proc *p, uint32_t op, uint64_t a, uint64_t b,
                           uint64_t c) {
        cmd_post(p, op, a, b, c);
        return cmd_wait(p);
}

/* ---------------------------------------------------------- the writer */

struct wparams {
        char address[108];
        char name[64];
        sgl_seal_policy policy;
        uint64_t policy_arg;
        bool gc_off;
        unsigned sock_mode;      /* chmod the socket file to this, if set */
        bool drop;               /* run as uid/gid 65534, RLIMIT_NOFILE 1024 */
        int sock;
};

static int writer_commit(sgl_writer *w, sgl_host *h, uint64_t id, uint32_t gen) {
        uint8_t *buf = malloc(payload_size(id, gen));
        int k;

        if (!buf)
                return -ENOMEM;
        payload_fill(buf, id, gen);
        k = sgl_writer_write(w, id, 0, buf, payload_size(id, gen), NULL);
        free(buf);
        if (k < 0)
                return k;
        k = sgl_writer_commit(w);
        if (k < 0)
                return k;
        k = sgl_host_process(h);
        return k < 0 ? k : 0;
}

static int writer_main(void *userdata) {
        struct wparams *p = userdata;
        sgl_writer *w = NULL;
        sgl_host *h = NULL;
        int k;

        close_others(p->sock);
        if (p->drop) {
                struct rlimit rl = { 1024, 1024 };
                TU_CHILD_CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
                TU_CHILD_CHECK(setgroups(0, NULL) == 0);
                TU_CHILD_CHECK(setgid(65534) == 0);
                TU_CHILD_CHECK(setuid(65534) == 0);
        }
        k = sgl_writer_new(p->name, 0, &w);
        TU_CHILD_CHECK(k == 0);
        TU_CHILD_CHECK(sgl_writer_set_seal_policy(w, p->policy, p->policy_arg) == 0);
        if (p->gc_off)
                TU_CHILD_CHECK(sgl_writer_set_gc(w, 0, 0, 0) == 0);
        k = sgl_host_new(w, p->address, &h);
        if (k == 0 && p->sock_mode)
                TU_CHILD_CHECK(chmod(p->address, p->sock_mode) == 0);
        TU_CHILD_CHECK(child_send(p->sock, k, 0, 0, 0, 0, 0, 0) == 0);
        TU_CHILD_CHECK(k == 0);

        for (;;) {
                struct pollfd pfd[2] = {
                        { .fd = sgl_host_get_fd(h), .events = POLLIN },
                        { .fd = p->sock, .events = POLLIN },
                };
                struct cmd m;
                ssize_t n;

                k = poll(pfd, 2, -1);
                TU_CHILD_CHECK(k > 0 || (k < 0 && errno == EINTR));
                if (pfd[0].revents)
                        TU_CHILD_CHECK(sgl_host_process(h) >= 0);
                if (!pfd[1].revents)
                        continue;
                n = recv(p->sock, &m, sizeof(m), 0);
                if (n == 0)
                        return 20; /* the test went away */
                TU_CHILD_CHECK(n == (ssize_t)sizeof(m));

                switch (m.op) {
                case W_COMMIT: {
                        uint64_t max = 0, total = 0;
                        k = 0;
                        for (uint64_t i = 0; i < m.b && k == 0; i++) {
                                uint64_t t0 = mono_ns(), dt;
                                k = writer_commit(w, h, m.a + i, (uint32_t)m.c);
                                dt = mono_ns() - t0;
                                total += dt;
                                max = dt > max ? dt : max;
                        }
                        TU_CHILD_CHECK(child_send(p->sock, k, max, total,
                                                  (uint64_t)sgl_host_get_connections(h),
                                                  0, 0, 0) == 0);
                        break;
                }
                case W_DELETE:
                        k = sgl_writer_delete(w, m.a);
                        if (k == 0)
                                k = sgl_writer_commit(w);
                        TU_CHILD_CHECK(child_send(p->sock, k, 0, 0, 0, 0, 0, 0) == 0);
                        break;
                case W_SEAL: {
                        uint64_t t0 = mono_ns(), dt;
                        sgl_writer_stats st;

                        k = sgl_writer_seal(w);
                        dt = mono_ns() - t0;
                        TU_CHILD_CHECK(sgl_writer_get_stats(w, &st) == 0);
                        TU_CHILD_CHECK(child_send(p->sock, k, dt, st.seal_copies, st.seals,
                                                  0, 0, 0) == 0);
                        break;
                }
                case W_ACCESS: {
                        uint32_t uid = (uint32_t)m.b, gid = (uint32_t)m.c;
                        k = sgl_host_set_access(h, (unsigned)m.a, &uid,
                                                m.b == UINT64_MAX ? 0 : 1, &gid,
                                                m.c == UINT64_MAX ? 0 : 1);
                        TU_CHILD_CHECK(child_send(p->sock, k, 0, 0, 0, 0, 0, 0) == 0);
                        break;
                }
                case W_STATUS: {
                        uint64_t deadline = mono_ns() + m.b * 1000000ULL;
                        sgl_writer_stats st;
                        unsigned fds;

                        while (m.a != UINT64_MAX &&
                               (uint64_t)sgl_host_get_connections(h) != m.a &&
                               mono_ns() < deadline) {
                                struct pollfd hp = { .fd = sgl_host_get_fd(h), .events = POLLIN };
                                if (poll(&hp, 1, 10) > 0)
                                        TU_CHILD_CHECK(sgl_host_process(h) >= 0);
                        }
                        TU_CHILD_CHECK(sgl_writer_get_stats(w, &st) == 0);
                        fds = tu_count_fds();
                        TU_CHILD_CHECK(child_send(p->sock, sgl_host_get_connections(h), fds,
                                                  st.segments, st.commits, 0, 0, 0) == 0);
                        break;
                }
                case W_EXIT:
                        sgl_host_unref(h);
                        sgl_writer_unref(w);
                        TU_CHILD_CHECK(child_send(p->sock, 0, 0, 0, 0, 0, 0, 0) == 0);
                        return 0;
                default:
                        return 21;
                }
        }
}

static struct proc start_writer(struct wparams *wp) {
        struct proc p;
        int sv[2];
        struct rep r;

        tu_socketpair(sv);
        wp->sock = sv[1];
        p.pid = tu_fork(writer_main, wp);
        close(sv[1]);
        p.sock = sv[0];
        r = cmd_wait(&p);
        assert_int_equal(r.ret, 0);
        return p;
}

static void stop_writer(struct proc *p) {
        assert_int_equal(cmd_call(p, W_EXIT, 0, 0, 0).ret, 0);
        tu_wait_exit(p->pid, 0);
        close(p->sock);
}

/* ---------------------------------------------------------- the readers */

struct rparams {
        char address[108];
        char name[300];
        unsigned flags;
        bool drop;               /* setgid/setuid before opening */
        uid_t uid;
        gid_t gid;
        int sock;
};

struct rstate {
        sgl_reader *r;
        int ep;
        sgl_chunk **held;
        size_t nheld, aheld;
        uint64_t count, hash, bad, dups;
        uint64_t *seen;          /* per id: a bit per generation */
        uint64_t nerr;
        int64_t first_err;
        int pin[2];              /* R_PIN: a pipe holding a page, never read */
};

static void take(struct rstate *st, sgl_chunk *c) {
        uint32_t gen;

        if (!payload_ok(c, &gen)) {
                st->bad++;
                sgl_chunk_unref(c);
                return;
        }
        if (st->seen[sgl_chunk_id(c)] & (1ULL << gen)) {
                st->dups++;
                sgl_chunk_unref(c);
                return;
        }
        st->seen[sgl_chunk_id(c)] |= 1ULL << gen;
        st->count++;
        st->hash += item_hash(sgl_chunk_id(c), gen);
        if (st->nheld == st->aheld) {
                size_t n = st->aheld ? st->aheld * 2 : 64;
                sgl_chunk **a = realloc(st->held, n * sizeof(*a));
                if (!a) {
                        st->bad++;
                        sgl_chunk_unref(c);
                        return;
                }
                st->held = a;
                st->aheld = n;
        }
        st->held[st->nheld++] = c;
}

static void record_err(struct rstate *st, int k) {
        if (st->nerr++ == 0)
                st->first_err = k;
}

static void drain(struct rstate *st) {
        int k = sgl_reader_process(st->r);

        if (k < 0)
                record_err(st, k);
        for (int i = 0; i < 100000; i++) {
                sgl_chunk *c = NULL;
                k = sgl_reader_next(st->r, &c);
                if (k == -EAGAIN)
                        return;
                if (k < 0) {
                        st->bad++;
                        continue;
                }
                take(st, c);
        }
}

static int reply_summary(int sock, const struct rstate *st, int64_t ret) {
        return child_send(sock, ret, st->count, st->hash, st->bad, st->dups, st->nerr,
                          (uint64_t)st->first_err);
}

static int reader_main(void *userdata) {
        struct rparams *p = userdata;
        struct rstate st = { .ep = -1, .pin = { -1, -1 } };
        unsigned fds0;
        int k;

        close_others(p->sock);
        st.seen = calloc(MAX_IDS, sizeof(*st.seen));
        TU_CHILD_CHECK(st.seen);
        if (p->drop) {
                TU_CHILD_CHECK(setgroups(0, NULL) == 0);
                TU_CHILD_CHECK(setgid(p->gid) == 0);
                TU_CHILD_CHECK(setuid(p->uid) == 0);
                TU_CHILD_CHECK(geteuid() == p->uid);
        }
        fds0 = tu_count_fds();
        k = sgl_reader_open(p->name, p->address, p->flags, &st.r);
        TU_CHILD_CHECK(child_send(p->sock, k, tu_count_fds() - fds0, 0, 0, 0, 0, 0) == 0);

        for (;;) {
                struct cmd m;
                ssize_t n = recv(p->sock, &m, sizeof(m), 0);
                int fd;

                if (n == 0)
                        return 30;
                TU_CHILD_CHECK(n == (ssize_t)sizeof(m));
                if (m.op == R_EXIT) {
                        for (size_t i = 0; i < st.nheld; i++)
                                sgl_chunk_unref(st.held[i]);
                        free(st.held);
                        sgl_reader_unref(st.r);
                        if (st.ep >= 0)
                                close(st.ep);
                        if (st.pin[0] >= 0) {
                                close(st.pin[0]);
                                close(st.pin[1]);
                        }
                        free(st.seen);
                        TU_CHILD_CHECK(child_send(p->sock, (int64_t)tu_count_fds() - fds0,
                                                  0, 0, 0, 0, 0, 0) == 0);
                        return 0;
                }
                if (!st.r) {
                        TU_CHILD_CHECK(child_send(p->sock, -ENOTCONN, 0, 0, 0, 0, 0, 0) == 0);
                        continue;
                }
                switch (m.op) {
                case R_DRAIN:
                        drain(&st);
                        TU_CHILD_CHECK(reply_summary(p->sock, &st, 0) == 0);
                        break;
                case R_WAIT: {
                        uint64_t deadline = mono_ns() + m.b * 1000000ULL;
                        int64_t ret = 0;

                        fd = sgl_reader_get_fd(st.r);
                        TU_CHILD_CHECK(fd >= 0);
                        for (;;) {
                                struct pollfd pfd = { .fd = fd, .events = POLLIN };
                                uint64_t now;

                                drain(&st);
                                if (st.count >= m.a)
                                        break;
                                now = mono_ns();
                                if (now >= deadline) {
                                        ret = -ETIMEDOUT;
                                        break;
                                }
                                /* bounded: the fd may be quiet once the host left */
                                (void)poll(&pfd, 1, 50);
                        }
                        TU_CHILD_CHECK(reply_summary(p->sock, &st, ret) == 0);
                        break;
                }
                case R_QUIET:
                        drain(&st);
                        usleep(50000);
                        drain(&st);
                        /* fall through */
                case R_POLL: {
                        struct pollfd pfd = { .events = POLLIN };
                        pfd.fd = sgl_reader_get_fd(st.r);
                        TU_CHILD_CHECK(pfd.fd >= 0);
                        k = poll(&pfd, 1, (int)m.a);
                        TU_CHILD_CHECK(child_send(p->sock, k < 0 ? -errno : k, pfd.revents,
                                                  st.count, 0, 0, 0, 0) == 0);
                        break;
                }
                case R_EPOLL: {
                        struct epoll_event ev = { .events = EPOLLIN };
                        if (st.ep < 0) {
                                st.ep = epoll_create1(EPOLL_CLOEXEC);
                                TU_CHILD_CHECK(st.ep >= 0);
                                fd = sgl_reader_get_fd(st.r);
                                TU_CHILD_CHECK(fd >= 0);
                                TU_CHILD_CHECK(epoll_ctl(st.ep, EPOLL_CTL_ADD, fd, &ev) == 0);
                        }
                        k = epoll_wait(st.ep, &ev, 1, (int)m.a);
                        TU_CHILD_CHECK(child_send(p->sock, k < 0 ? -errno : k, 0, 0, 0, 0,
                                                  0, 0) == 0);
                        break;
                }
                case R_NEXT:
                        for (int i = 0; i < 100000; i++) {
                                sgl_chunk *c = NULL;
                                k = sgl_reader_next(st.r, &c);
                                if (k < 0)
                                        break;
                                take(&st, c);
                        }
                        TU_CHILD_CHECK(reply_summary(p->sock, &st, k) == 0);
                        break;
                case R_PIN: {
                        /* what any reader can do with a page it maps: take
                         * a reference the kernel waits for at F_SEAL_WRITE */
                        sgl_chunk *c = NULL;
                        struct iovec iov;

                        if (st.pin[0] >= 0) {
                                close(st.pin[0]); /* drops the previous pin */
                                close(st.pin[1]);
                                st.pin[0] = st.pin[1] = -1;
                        }
                        k = sgl_reader_get(st.r, m.a, &c);
                        if (k == 0) {
                                long page = sysconf(_SC_PAGESIZE);
                                iov.iov_base = (void *)((uintptr_t)sgl_chunk_data(c) &
                                                        ~(uintptr_t)(page - 1));
                                iov.iov_len = (size_t)page;
                                if (pipe2(st.pin, O_CLOEXEC) < 0)
                                        k = -errno;
                                else if (vmsplice(st.pin[1], &iov, 1, 0) != page)
                                        k = -EOPNOTSUPP;
                        }
                        sgl_chunk_unref(c);
                        TU_CHILD_CHECK(child_send(p->sock, k, 0, 0, 0, 0, 0, 0) == 0);
                        break;
                }
                case R_PROCESS:
                        k = sgl_reader_process(st.r);
                        TU_CHILD_CHECK(child_send(p->sock, k, 0, 0, 0, 0, 0, 0) == 0);
                        break;
                case R_VERIFY: {
                        uint64_t bad = 0, hash = 0;
                        for (size_t i = 0; i < st.nheld; i++) {
                                uint32_t gen;
                                if (payload_ok(st.held[i], &gen))
                                        hash += item_hash(sgl_chunk_id(st.held[i]), gen);
                                else
                                        bad++;
                        }
                        TU_CHILD_CHECK(child_send(p->sock, (int64_t)bad, st.nheld, hash, 0,
                                                  0, 0, 0) == 0);
                        break;
                }
                case R_GET: {
                        sgl_chunk *c = NULL;
                        uint32_t gen = UINT32_MAX;
                        k = sgl_reader_get(st.r, m.a, &c);
                        if (k == 0 && !payload_ok(c, &gen))
                                k = -EBADMSG;
                        sgl_chunk_unref(c);
                        TU_CHILD_CHECK(child_send(p->sock, k, gen, 0, 0, 0, 0, 0) == 0);
                        break;
                }
                default:
                        return 31;
                }
        }
}

/* Forks a reader; returns its sgl_reader_open() result in *ret_open. */
static struct proc start_reader(const char *address, const char *name, unsigned flags,
                                int *ret_open) {
        struct rparams rp = { .flags = flags };
        struct proc p;
        struct rep r;
        int sv[2];

        snprintf(rp.address, sizeof(rp.address), "%s", address);
        snprintf(rp.name, sizeof(rp.name), "%s", name);
        tu_socketpair(sv);
        rp.sock = sv[1];
        p.pid = tu_fork(reader_main, &rp);
        close(sv[1]);
        p.sock = sv[0];
        r = cmd_wait(&p);
        *ret_open = (int)r.ret;
        if (r.ret < 0)
                assert_int_equal(r.v[0], 0); /* a failed open leaks nothing */
        return p;
}

static struct proc start_reader_as(const char *address, const char *name, unsigned flags,
                                   uid_t uid, gid_t gid, int *ret_open) {
        struct rparams rp = { .flags = flags, .drop = true, .uid = uid, .gid = gid };
        struct proc p;
        struct rep r;
        int sv[2];

        snprintf(rp.address, sizeof(rp.address), "%s", address);
        snprintf(rp.name, sizeof(rp.name), "%s", name);
        tu_socketpair(sv);
        rp.sock = sv[1];
        p.pid = tu_fork(reader_main, &rp);
        close(sv[1]);
        p.sock = sv[0];
        r = cmd_wait(&p);
        *ret_open = (int)r.ret;
        if (r.ret < 0)
                assert_int_equal(r.v[0], 0);
        return p;
}

static struct proc open_reader(const char *address, const char *name, unsigned flags) {
        int k;
        struct proc p = start_reader(address, name, flags, &k);

        assert_int_equal(k, 0);
        return p;
}

static void stop_reader(struct proc *p) {
        /* no descriptor left over from the reader */
        assert_int_equal(cmd_call(p, R_EXIT, 0, 0, 0).ret, 0);
        tu_wait_exit(p->pid, 0);
        close(p->sock);
}

/* Drains and asserts the reader holds exactly @count chunks hashing to
 * @hash, all byte-exact, no duplicate, no error. */
static void expect_reader(const struct proc *p, uint64_t count, uint64_t hash) {
        struct rep r = cmd_call(p, R_DRAIN, 0, 0, 0);

        assert_int_equal(r.v[2], 0); /* bad */
        assert_int_equal(r.v[3], 0); /* dups */
        assert_int_equal(r.v[4], 0); /* process errors */
        assert_int_equal(r.v[0], count);
        assert_int_equal(r.v[1], hash);
}

static void wait_reader(const struct proc *p, uint64_t count, uint64_t hash) {
        struct rep r = cmd_call(p, R_WAIT, count, 10000, 0);

        assert_int_equal(r.ret, 0);
        assert_int_equal(r.v[2], 0);
        assert_int_equal(r.v[3], 0);
        assert_int_equal(r.v[4], 0);
        assert_int_equal(r.v[0], count);
        assert_int_equal(r.v[1], hash);
}

static int64_t reader_get(const struct proc *p, uint64_t id, uint32_t *gen) {
        struct rep r = cmd_call(p, R_GET, id, 0, 0);
        *gen = (uint32_t)r.v[0];
        return r.ret;
}

static void wcall_ok(const struct proc *w, uint32_t op, uint64_t a, uint64_t b, uint64_t c) {
        assert_int_equal(cmd_call(w, op, a, b, c).ret, 0);
}

static void abstract_address(char *buf, size_t size, const char *tag) {
        static unsigned counter;
        snprintf(buf, size, "@sigillo-test-rdv-%d-%s-%u", (int)getpid(), tag, ++counter);
}

/* ---------------------------------------------------------------- tests */

static void late_joiner_and_pushes(const char *address) {
        struct wparams wp = { .policy = SGL_SEAL_BYTES, .policy_arg = 32768 };
        struct proc w, rd[4];
        uint64_t hash;
        uint32_t gen;

        snprintf(wp.address, sizeof(wp.address), "%s", address);
        snprintf(wp.name, sizeof(wp.name), "late.joiner_area-1");
        w = start_writer(&wp);

        /* before anyone opens: 40 chunks, 3 replaced, 2 deleted */
        wcall_ok(&w, W_COMMIT, 1, 40, 0);
        wcall_ok(&w, W_COMMIT, 3, 3, 1);
        wcall_ok(&w, W_DELETE, 7, 0, 0);
        wcall_ok(&w, W_DELETE, 8, 0, 0);
        wcall_ok(&w, W_SEAL, 0, 0, 0);
        hash = range_hash(1, 40, 0) - range_hash(3, 5, 0) + range_hash(3, 5, 1) -
               range_hash(7, 8, 0);

        for (int i = 0; i < 4; i++)
                rd[i] = open_reader(address, wp.name, i % 2 ? SGL_READER_TRUSTED : 0);
        assert_int_equal(cmd_call(&w, W_STATUS, 4, 5000, 0).ret, 4);
        for (int i = 0; i < 4; i++) {
                expect_reader(&rd[i], 38, hash);
                assert_int_equal(reader_get(&rd[i], 4, &gen), 0);
                assert_int_equal(gen, 1);
                assert_int_equal(reader_get(&rd[i], 7, &gen), -ENOENT);
                assert_int_equal(reader_get(&rd[i], 41, &gen), -ENOENT);
        }

        /* after the open: pushed segments (several seals of 32 KiB) */
        wcall_ok(&w, W_COMMIT, 41, 20, 0);
        wcall_ok(&w, W_SEAL, 0, 0, 0);
        hash += range_hash(41, 60, 0);
        for (int i = 0; i < 4; i++)
                wait_reader(&rd[i], 58, hash);
        /* and every pushed segment again, one commit each; readers 0 and 1
         * only call sgl_reader_next(), which takes the push itself (the
         * host sent it before the writer's commit returned) */
        for (uint64_t id = 61; id <= 70; id++) {
                struct rep r;
                wcall_ok(&w, W_COMMIT, id, 1, 0);
                wcall_ok(&w, W_SEAL, 0, 0, 0);
                hash += range_hash(id, id, 0);
                for (int i = 0; i < 2; i++) {
                        r = cmd_call(&rd[i], R_NEXT, 0, 0, 0);
                        assert_int_equal(r.ret, -EAGAIN);
                        assert_int_equal(r.v[0], 58 + id - 60);
                        assert_int_equal(r.v[1], hash);
                        assert_int_equal(r.v[2], 0);
                }
                for (int i = 2; i < 4; i++)
                        wait_reader(&rd[i], 58 + id - 60, hash);
        }
        for (int i = 0; i < 4; i++) {
                assert_int_equal(cmd_call(&rd[i], R_VERIFY, 0, 0, 0).ret, 0);
                stop_reader(&rd[i]);
        }
        stop_writer(&w);
}

static void late_joiner_and_pushes_path(void **state) {
        char *dir = tu_mkdtemp(NULL);
        char address[108];

        snprintf(address, sizeof(address), "%s/socket", dir);
        late_joiner_and_pushes(address);
        /* a clean exit removes the socket file */
        assert_int_equal(access(address, F_OK), -1);
        assert_int_equal(errno, ENOENT);
        tu_rm_rf(dir);
}

static void late_joiner_and_pushes_abstract(void **state) {
        char address[108];

        abstract_address(address, sizeof(address), "late");
        late_joiner_and_pushes(address);
}

static void trusted_sees_open_segment(void **state) {
        struct wparams wp = { .policy = SGL_SEAL_BYTES, .policy_arg = 1 << 20 };
        struct proc w, s, t;
        uint32_t gen;

        abstract_address(wp.address, sizeof(wp.address), "open");
        snprintf(wp.name, sizeof(wp.name), "open-seg");
        w = start_writer(&wp);
        s = open_reader(wp.address, wp.name, 0);
        t = open_reader(wp.address, wp.name, SGL_READER_TRUSTED);
        expect_reader(&s, 0, 0);
        expect_reader(&t, 0, 0);

        /* first commit of a new open segment: OPENED is pushed to TRUSTED */
        wcall_ok(&w, W_COMMIT, 1, 1, 0);
        expect_reader(&t, 1, range_hash(1, 1, 0));
        expect_reader(&s, 0, 0);
        assert_int_equal(reader_get(&s, 1, &gen), -ENOENT);
        assert_int_equal(reader_get(&t, 1, &gen), 0);

        /* a later commit into the same open segment: nothing is pushed, the
         * TRUSTED reader reads it from its mapping */
        wcall_ok(&w, W_COMMIT, 2, 2, 0);
        expect_reader(&t, 3, range_hash(1, 3, 0));
        expect_reader(&s, 0, 0);
        assert_int_equal(reader_get(&s, 3, &gen), -ENOENT);

        /* sealed: now STRICT has them, TRUSTED gets no duplicate */
        wcall_ok(&w, W_SEAL, 0, 0, 0);
        expect_reader(&s, 3, range_hash(1, 3, 0));
        expect_reader(&t, 3, range_hash(1, 3, 0));
        assert_int_equal(reader_get(&s, 3, &gen), 0);
        assert_int_equal(gen, 0);

        /* the next open segment, and a replacement inside it */
        wcall_ok(&w, W_COMMIT, 4, 1, 0);
        wcall_ok(&w, W_COMMIT, 2, 1, 1);
        expect_reader(&t, 5, range_hash(1, 4, 0) + item_hash(2, 1));
        expect_reader(&s, 3, range_hash(1, 3, 0));
        assert_int_equal(reader_get(&t, 2, &gen), 0);
        assert_int_equal(gen, 1);
        assert_int_equal(reader_get(&s, 2, &gen), 0);
        assert_int_equal(gen, 0);
        wcall_ok(&w, W_SEAL, 0, 0, 0);
        expect_reader(&s, 5, range_hash(1, 4, 0) + item_hash(2, 1));
        assert_int_equal(reader_get(&s, 2, &gen), 0);
        assert_int_equal(gen, 1);

        stop_reader(&s);
        stop_reader(&t);
        stop_writer(&w);
}

static int64_t rpoll(const struct proc *p, int op, int ms) {
        return cmd_call(p, (uint32_t)op, (uint64_t)ms, 0, 0).ret;
}

static void pollable_fd(void **state) {
        struct wparams wp = { .policy = SGL_SEAL_BYTES, .policy_arg = 1 << 20 };
        struct proc w, s, t;

        abstract_address(wp.address, sizeof(wp.address), "poll");
        snprintf(wp.name, sizeof(wp.name), "pollable");
        w = start_writer(&wp);
        wcall_ok(&w, W_COMMIT, 1, 1, 0);
        wcall_ok(&w, W_SEAL, 0, 0, 0);
        s = open_reader(wp.address, wp.name, 0);
        t = open_reader(wp.address, wp.name, SGL_READER_TRUSTED);
        expect_reader(&s, 1, range_hash(1, 1, 0));
        expect_reader(&t, 1, range_hash(1, 1, 0));

        /* nothing happened: both stay quiet, with poll and with epoll */
        assert_int_equal(rpoll(&s, R_QUIET, 150), 0);
        assert_int_equal(rpoll(&t, R_QUIET, 150), 0);
        assert_int_equal(rpoll(&s, R_EPOLL, 100), 0);
        assert_int_equal(rpoll(&t, R_EPOLL, 100), 0);

        /* a commit into a fresh open segment: the TRUSTED fd fires (OPENED
         * push and watcher), the STRICT one does not */
        wcall_ok(&w, W_COMMIT, 2, 1, 0);
        assert_int_equal(rpoll(&t, R_POLL, 5000), 1);
        assert_int_equal(rpoll(&t, R_EPOLL, 5000), 1);
        assert_int_equal(rpoll(&s, R_POLL, 150), 0);
        assert_int_equal(rpoll(&s, R_EPOLL, 100), 0);
        expect_reader(&t, 2, range_hash(1, 2, 0));
        assert_int_equal(rpoll(&t, R_QUIET, 150), 0);

        /* a second commit into the same open segment: no push at all, only
         * the watcher thread can make the TRUSTED fd readable */
        wcall_ok(&w, W_COMMIT, 3, 1, 0);
        assert_int_equal(rpoll(&t, R_POLL, 5000), 1);
        assert_int_equal(rpoll(&s, R_POLL, 150), 0);
        expect_reader(&t, 3, range_hash(1, 3, 0));
        assert_int_equal(rpoll(&t, R_QUIET, 150), 0);
        expect_reader(&s, 1, range_hash(1, 1, 0));
        assert_int_equal(rpoll(&s, R_QUIET, 150), 0);

        /* the seal is pushed: now the STRICT fd fires (poll and epoll) */
        wcall_ok(&w, W_SEAL, 0, 0, 0);
        assert_int_equal(rpoll(&s, R_POLL, 5000), 1);
        assert_int_equal(rpoll(&s, R_EPOLL, 5000), 1);
        expect_reader(&s, 3, range_hash(1, 3, 0));
        assert_int_equal(rpoll(&s, R_QUIET, 150), 0);
        expect_reader(&t, 3, range_hash(1, 3, 0));
        assert_int_equal(rpoll(&t, R_QUIET, 150), 0);

        /* the host's end makes both readable; reported once, then quiet */
        stop_writer(&w);
        assert_int_equal(rpoll(&s, R_POLL, 5000), 1);
        assert_int_equal(rpoll(&t, R_POLL, 5000), 1);
        assert_int_equal(rpoll(&s, R_PROCESS, 0), -ECONNRESET);
        assert_int_equal(rpoll(&t, R_PROCESS, 0), -ECONNRESET);
        assert_int_equal(rpoll(&s, R_POLL, 150), 0);
        assert_int_equal(rpoll(&t, R_POLL, 150), 0);
        stop_reader(&s);
        stop_reader(&t);
}

static void writer_exit(bool kill_it) {
        struct wparams wp = { .policy = SGL_SEAL_BYTES, .policy_arg = 1 << 20 };
        char *dir = tu_mkdtemp(NULL);
        struct proc w, s, t, late;
        uint64_t hash30 = range_hash(1, 30, 0), hash40 = range_hash(1, 40, 0);
        uint32_t gen;
        int k;

        snprintf(wp.address, sizeof(wp.address), "%s/host.sock", dir);
        snprintf(wp.name, sizeof(wp.name), "exiting");
        w = start_writer(&wp);
        wcall_ok(&w, W_COMMIT, 1, 30, 0);
        wcall_ok(&w, W_SEAL, 0, 0, 0);
        s = open_reader(wp.address, wp.name, 0);
        t = open_reader(wp.address, wp.name, SGL_READER_TRUSTED);
        wait_reader(&s, 30, hash30);
        wait_reader(&t, 30, hash30);

        /* a new open segment (OPENED pushed to the TRUSTED reader, which
         * has not taken it yet), then the writer goes away */
        wcall_ok(&w, W_COMMIT, 31, 10, 0);
        assert_int_equal(cmd_call(&w, W_STATUS, 2, 5000, 0).ret, 2);
        if (kill_it) {
                assert_int_equal(kill(w.pid, SIGKILL), 0);
                assert_true(WIFSIGNALED(tu_wait_status(w.pid)));
                close(w.sock);
        } else {
                stop_writer(&w);
        }

        /* the end is reported exactly once */
        assert_int_equal(rpoll(&s, R_POLL, 5000), 1);
        assert_int_equal(rpoll(&s, R_PROCESS, 0), -ECONNRESET);
        assert_int_equal(rpoll(&s, R_PROCESS, 0), 0);
        assert_int_equal(rpoll(&t, R_PROCESS, 0), -ECONNRESET);
        assert_int_equal(rpoll(&t, R_PROCESS, 0), 0);
        assert_int_equal(rpoll(&s, R_POLL, 150), 0);

        /* and what is mapped stays readable, byte-exact */
        expect_reader(&s, 30, hash30);
        expect_reader(&t, 40, hash40);
        assert_int_equal(rpoll(&t, R_QUIET, 150), 0);
        for (uint64_t id = 1; id <= 40; id += 3) {
                assert_int_equal(reader_get(&t, id, &gen), 0);
                assert_int_equal(gen, 0);
                assert_int_equal(reader_get(&s, id, &gen), id <= 30 ? 0 : -ENOENT);
        }
        assert_int_equal(cmd_call(&s, R_VERIFY, 0, 0, 0).ret, 0);
        assert_int_equal(cmd_call(&t, R_VERIFY, 0, 0, 0).ret, 0);
        assert_int_equal(cmd_call(&t, R_VERIFY, 0, 0, 0).v[1], hash40);

        /* nobody serves the address any more */
        late = start_reader(wp.address, wp.name, 0, &k);
        assert_int_equal(k, kill_it ? -ECONNREFUSED : -ENOENT);
        stop_reader(&late);

        stop_reader(&s);
        stop_reader(&t);
        tu_rm_rf(dir);
}

static void writer_exit_clean(void **state) {
        writer_exit(false);
}

static void writer_killed(void **state) {
        writer_exit(true);
}

/*
 * The end of the connection must be reported once by sgl_reader_process()
 * even when sgl_reader_next() (or sgl_reader_get()) ran into it first: the
 * client keeps the error pending and the socket shut down (so the pollable
 * fd stays readable) until sgl_reader_process() takes it.  Otherwise an
 * event loop that polls sgl_reader_get_fd() would never learn that the
 * writer left.
 */
static void writer_exit_seen_by_next(void **state) {
        struct wparams wp = { .policy = SGL_SEAL_EVERY_COMMIT };
        struct proc w, s;
        struct rep r;

        abstract_address(wp.address, sizeof(wp.address), "bynext");
        snprintf(wp.name, sizeof(wp.name), "by-next");
        w = start_writer(&wp);
        wcall_ok(&w, W_COMMIT, 1, 3, 0);
        s = open_reader(wp.address, wp.name, 0);
        wait_reader(&s, 3, range_hash(1, 3, 0));
        wcall_ok(&w, W_COMMIT, 4, 2, 0);
        stop_writer(&w);

        assert_int_equal(rpoll(&s, R_POLL, 5000), 1);
        r = cmd_call(&s, R_NEXT, 0, 0, 0); /* takes 4, 5, and meets the end */
        assert_int_equal(r.ret, -EAGAIN);
        assert_int_equal(r.v[0], 5);
        assert_int_equal(r.v[1], range_hash(1, 5, 0));
        assert_int_equal(rpoll(&s, R_PROCESS, 0), -ECONNRESET);
        assert_int_equal(rpoll(&s, R_PROCESS, 0), 0);
        stop_reader(&s);
}

static void open_errors(void **state) {
        struct wparams wp = { .policy = SGL_SEAL_EVERY_COMMIT };
        char *dir = tu_mkdtemp(NULL);
        char name255[256], name256[257], path[108], longaddr[200];
        sgl_reader *r = (sgl_reader *)0x1;
        sgl_writer *w2;
        sgl_host *h2 = (sgl_host *)0x1;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        unsigned fds;
        struct proc w;
        int fd;

        snprintf(wp.address, sizeof(wp.address), "%s/s", dir);
        snprintf(wp.name, sizeof(wp.name), "known");
        w = start_writer(&wp);
        wcall_ok(&w, W_COMMIT, 1, 1, 0);

        memset(name255, 'a', 255);
        name255[255] = '\0';
        memset(name256, 'b', 256);
        name256[256] = '\0';

        fds = tu_count_fds();
        /* unknown areas (a 255-byte name is valid) */
        assert_int_equal(sgl_reader_open("unknown", wp.address, 0, &r), -ENOENT);
        assert_int_equal(sgl_reader_open("unknown", wp.address, SGL_READER_TRUSTED, &r),
                         -ENOENT);
        assert_int_equal(sgl_reader_open("Known", wp.address, 0, &r), -ENOENT);
        assert_int_equal(sgl_reader_open(name255, wp.address, 0, &r), -ENOENT);
        /* bad names and flags: refused before anything is sent */
        assert_int_equal(sgl_reader_open("", wp.address, 0, &r), -EINVAL);
        assert_int_equal(sgl_reader_open("../x", wp.address, 0, &r), -EINVAL);
        assert_int_equal(sgl_reader_open(".x", wp.address, 0, &r), -EINVAL);
        assert_int_equal(sgl_reader_open("a/b", wp.address, 0, &r), -EINVAL);
        assert_int_equal(sgl_reader_open("a b", wp.address, 0, &r), -EINVAL);
        assert_int_equal(sgl_reader_open("caf\xc3\xa9", wp.address, 0, &r), -EINVAL);
        assert_int_equal(sgl_reader_open(name256, wp.address, 0, &r), -EINVAL);
        assert_int_equal(sgl_reader_open(NULL, wp.address, 0, &r), -EINVAL);
        assert_int_equal(sgl_reader_open("known", wp.address, 0x80, &r), -EINVAL);
        assert_int_equal(sgl_reader_open("known", wp.address, 0, NULL), -EINVAL);
        assert_ptr_equal(r, (sgl_reader *)0x1); /* untouched on failure */

        /* no socket: a missing path, a stale socket file, a non-socket file,
         * an abstract name nobody bound */
        snprintf(path, sizeof(path), "%s/missing", dir);
        assert_int_equal(sgl_reader_open("known", path, 0, &r), -ENOENT);
        snprintf(path, sizeof(path), "%s/stale", dir);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        close(fd);
        assert_int_equal(sgl_reader_open("known", path, 0, &r), -ECONNREFUSED);
        snprintf(path, sizeof(path), "%s/plain", dir);
        fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(sgl_reader_open("known", path, 0, &r), -ECONNREFUSED);
        abstract_address(path, sizeof(path), "nobody");
        assert_int_equal(sgl_reader_open("known", path, 0, &r), -ECONNREFUSED);
        memset(longaddr, 'x', sizeof(longaddr) - 1);
        longaddr[0] = '/';
        longaddr[sizeof(longaddr) - 1] = '\0';
        assert_true(sgl_reader_open("known", longaddr, 0, &r) < 0);
        assert_int_equal(sgl_reader_open("known", "", 0, &r), -EINVAL);
        assert_ptr_equal(r, (sgl_reader *)0x1);

        /* and the right one works, from this very process */
        assert_int_equal(sgl_reader_open("known", wp.address, 0, &r), 0);
        assert_int_equal(sgl_reader_get_segment_count(r), 1);
        sgl_reader_unref(r);
        assert_int_equal(tu_count_fds(), fds);

        /* a second host cannot take a live address (path or abstract) */
        assert_int_equal(sgl_writer_new("second", 0, &w2), 0);
        assert_int_equal(sgl_host_new(w2, wp.address, &h2), -EADDRINUSE);
        assert_ptr_equal(h2, (sgl_host *)0x1);
        assert_int_equal(access(wp.address, F_OK), 0); /* not unlinked */
        abstract_address(path, sizeof(path), "dup");
        assert_int_equal(sgl_host_new(w2, path, &h2), 0);
        {
                sgl_host *h3 = NULL;
                sgl_writer *w3;
                assert_int_equal(sgl_writer_new("third", 0, &w3), 0);
                assert_int_equal(sgl_host_new(w3, path, &h3), -EADDRINUSE);
                sgl_writer_unref(w3);
        }
        sgl_host_unref(h2);

        /* nor the socket of another program, whatever its type */
        {
                int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), cfd;
                struct sockaddr_un sb = { .sun_family = AF_UNIX };

                snprintf(path, sizeof(path), "%s/stream", dir);
                snprintf(sb.sun_path, sizeof(sb.sun_path), "%s", path);
                assert_true(lfd >= 0);
                assert_int_equal(bind(lfd, (struct sockaddr *)&sb, sizeof(sb)), 0);
                assert_int_equal(listen(lfd, 4), 0);
                h2 = (sgl_host *)0x1;
                assert_int_equal(sgl_host_new(w2, path, &h2), -EADDRINUSE);
                assert_ptr_equal(h2, (sgl_host *)0x1);
                cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                assert_int_equal(connect(cfd, (struct sockaddr *)&sb, sizeof(sb)), 0);
                close(cfd);
                close(lfd);
                /* once nobody listens there, the stale file is replaced */
                assert_int_equal(sgl_host_new(w2, path, &h2), 0);
                sgl_host_unref(h2);
                assert_int_equal(access(path, F_OK), -1);
        }
        sgl_writer_unref(w2);
        assert_int_equal(tu_count_fds(), fds);

        /* the host survived all of it */
        assert_int_equal(cmd_call(&w, W_STATUS, 0, 5000, 0).ret, 0);
        stop_writer(&w);
        tu_rm_rf(dir);
}

static void access_other_uid_at(const char *address, bool path) {
        struct wparams wp = { .policy = SGL_SEAL_EVERY_COMMIT };
        const uid_t nobody = 65534;
        const gid_t nogroup = 65534;
        struct proc w, rd, allowed;
        uint64_t none = UINT64_MAX;
        int k;

        snprintf(wp.address, sizeof(wp.address), "%s", address);
        snprintf(wp.name, sizeof(wp.name), "guarded");
        if (path)
                wp.sock_mode = 0666;
        w = start_writer(&wp);
        wcall_ok(&w, W_COMMIT, 1, 5, 0);

        /* default: the writer's uid (root here) only */
        rd = start_reader_as(wp.address, wp.name, 0, nobody, nogroup, &k);
        assert_int_equal(k, -EACCES);
        stop_reader(&rd);
        rd = start_reader(wp.address, wp.name, 0, &k);
        assert_int_equal(k, 0);
        expect_reader(&rd, 5, range_hash(1, 5, 0));
        stop_reader(&rd);

        /* everyone */
        wcall_ok(&w, W_ACCESS, 0444, none, none);
        allowed = start_reader_as(wp.address, wp.name, SGL_READER_TRUSTED, nobody, nogroup,
                                  &k);
        assert_int_equal(k, 0);
        expect_reader(&allowed, 5, range_hash(1, 5, 0));

        /* by uid */
        wcall_ok(&w, W_ACCESS, 0400, nobody, none);
        rd = start_reader_as(wp.address, wp.name, 0, nobody, nogroup, &k);
        assert_int_equal(k, 0);
        expect_reader(&rd, 5, range_hash(1, 5, 0));
        stop_reader(&rd);
        wcall_ok(&w, W_ACCESS, 0400, 12345, none);
        rd = start_reader_as(wp.address, wp.name, 0, nobody, nogroup, &k);
        assert_int_equal(k, -EACCES);
        stop_reader(&rd);

        /* by gid in the list */
        wcall_ok(&w, W_ACCESS, 0400, none, nogroup);
        rd = start_reader_as(wp.address, wp.name, 0, nobody, nogroup, &k);
        assert_int_equal(k, 0);
        stop_reader(&rd);

        /* by the writer's group (0) and mode 0040; not without 0040 */
        wcall_ok(&w, W_ACCESS, 0040, none, none);
        rd = start_reader_as(wp.address, wp.name, 0, nobody, 0, &k);
        assert_int_equal(k, 0);
        stop_reader(&rd);
        rd = start_reader_as(wp.address, wp.name, 0, nobody, nogroup, &k);
        assert_int_equal(k, -EACCES);
        stop_reader(&rd);
        wcall_ok(&w, W_ACCESS, 0400, none, none);
        rd = start_reader_as(wp.address, wp.name, 0, nobody, 0, &k);
        assert_int_equal(k, -EACCES);
        stop_reader(&rd);

        /* narrowing applies to new opens: the reader already in keeps its
         * pushes */
        wcall_ok(&w, W_COMMIT, 6, 3, 0);
        wait_reader(&allowed, 8, range_hash(1, 8, 0));
        assert_int_equal(cmd_call(&allowed, R_VERIFY, 0, 0, 0).ret, 0);
        stop_reader(&allowed);
        stop_writer(&w);
}

static void access_other_uid(void **state) {
        char *dir;
        char address[108];

        if (!tu_is_root())
                skip();
        dir = tu_mkdtemp(NULL);
        assert_int_equal(chmod(dir, 0755), 0);
        snprintf(address, sizeof(address), "%s/socket", dir);
        access_other_uid_at(address, true);
        tu_rm_rf(dir);

        abstract_address(address, sizeof(address), "uid");
        access_other_uid_at(address, false);
}

static void slow_reader_cannot_suppress_pushes(void **state) {
        struct wparams wp = { .policy = SGL_SEAL_EVERY_COMMIT };
        struct proc w, honest, honest_t, slow;
        uint64_t total_ns = 0, max_ns = 0, id = 0;
        struct rep r;
        int batches = 0;

        abstract_address(wp.address, sizeof(wp.address), "slow");
        snprintf(wp.name, sizeof(wp.name), "firehose");
        w = start_writer(&wp);
        wcall_ok(&w, W_COMMIT, 1, 1, 0);
        id = 1;
        honest = open_reader(wp.address, wp.name, 0);
        honest_t = open_reader(wp.address, wp.name, SGL_READER_TRUSTED);
        slow = open_reader(wp.address, wp.name, 0); /* and never reads again */
        assert_int_equal(cmd_call(&w, W_STATUS, 3, 5000, 0).ret, 3);

        /* 1000 commits in batches of 100; the honest readers keep up, the
         * slow one lets its socket and its queue on the host fill up */
        while (batches < 30) {
                cmd_post(&honest, R_WAIT, id + 100, 10000, 0);
                cmd_post(&honest_t, R_WAIT, id + 100, 10000, 0);
                r = cmd_call(&w, W_COMMIT, id + 1, 100, 0);
                assert_int_equal(r.ret, 0);
                max_ns = r.v[0] > max_ns ? r.v[0] : max_ns;
                total_ns += r.v[1];
                id += 100;
                batches++;
                r = cmd_wait(&honest);
                assert_int_equal(r.ret, 0);
                assert_int_equal(r.v[0], id);
                r = cmd_wait(&honest_t);
                assert_int_equal(r.ret, 0);
                assert_int_equal(r.v[0], id);
                if (batches >= 10 &&
                    cmd_call(&w, W_STATUS, 2, 1000, 0).ret == 2)
                        break;
        }
        /* the writer never waited for the slow reader */
        assert_true(total_ns < 10ULL * 1000000000ULL);
        assert_true(max_ns < 1000000000ULL);
        /* and dropped it within the first 1000 commits */
        assert_int_equal(batches, 10);
        assert_int_equal(cmd_call(&w, W_STATUS, 2, 5000, 0).ret, 2);
        print_message("1000 commits with a stalled reader: %" PRIu64 " ms in all, "
                      "slowest %" PRIu64 " us\n", total_ns / 1000000, max_ns / 1000);

        expect_reader(&honest, id, range_hash(1, id, 0));
        expect_reader(&honest_t, id, range_hash(1, id, 0));
        assert_int_equal(cmd_call(&honest, R_VERIFY, 0, 0, 0).ret, 0);

        /* the slow reader finds a byte-exact prefix, then the end, once */
        {
                int64_t k;
                int n = 0;
                do
                        k = rpoll(&slow, R_PROCESS, 0);
                while (k >= 0 && ++n < 100000);
                assert_int_equal(k, -ECONNRESET);
                assert_int_equal(rpoll(&slow, R_PROCESS, 0), 0);
                r = cmd_call(&slow, R_DRAIN, 0, 0, 0);
                assert_int_equal(r.v[2], 0);
                assert_int_equal(r.v[3], 0);
                assert_true(r.v[0] >= 1 && r.v[0] < id);
                assert_int_equal(r.v[1], range_hash(1, r.v[0], 0));
        }

        stop_reader(&slow);
        stop_reader(&honest);
        stop_reader(&honest_t);
        stop_writer(&w);
}

/*
 * Descriptors in flight over AF_UNIX are charged to the SENDER's uid and
 * limited by its RLIMIT_NOFILE (the kernel's too_many_unix_fds(): sendmsg
 * fails with ETOOMANYREFS once the uid has more in flight than that,
 * unless it has CAP_SYS_RESOURCE, which is why the root writer of
 * slow_reader_cannot_suppress_pushes never meets it).  Every SEGMENT sent
 * to a reader that does not read stays in flight in its receive queue,
 * even after the host dropped it, for as long as it keeps its socket.
 * With the default socket buffer (~278 such messages per connection) a
 * few stalled readers made every push fail, and the host dropped the
 * honest readers too; the host now keeps a handful in flight per
 * connection (SO_SNDBUF) and caps connections from RLIMIT_NOFILE.
 */
static void stalled_readers_vs_unprivileged_writer(void **state) {
        struct wparams wp = { .policy = SGL_SEAL_EVERY_COMMIT, .drop = true };
        struct proc w, honest[2], stalled[8];
        uint64_t id = 0;
        struct rep r;

        if (!tu_is_root())
                skip();
        abstract_address(wp.address, sizeof(wp.address), "inflight");
        snprintf(wp.name, sizeof(wp.name), "unprivileged");
        w = start_writer(&wp);
        wcall_ok(&w, W_COMMIT, 1, 1, 0);
        id = 1;
        for (int i = 0; i < 2; i++)
                honest[i] = open_reader(wp.address, wp.name, i ? SGL_READER_TRUSTED : 0);
        for (int i = 0; i < 8; i++)
                stalled[i] = open_reader(wp.address, wp.name, 0);

        for (int b = 0; b < 20; b++) {
                for (int i = 0; i < 2; i++)
                        cmd_post(&honest[i], R_WAIT, id + 100, 10000, 0);
                r = cmd_call(&w, W_COMMIT, id + 1, 100, 0);
                assert_int_equal(r.ret, 0);
                id += 100;
                for (int i = 0; i < 2; i++) {
                        r = cmd_wait(&honest[i]);
                        assert_int_equal(r.v[4], 0); /* never disconnected */
                        assert_int_equal(r.ret, 0);
                        assert_int_equal(r.v[0], id);
                        assert_int_equal(r.v[1], range_hash(1, id, 0));
                }
        }
        for (int i = 0; i < 8; i++)
                stop_reader(&stalled[i]);
        for (int i = 0; i < 2; i++)
                stop_reader(&honest[i]);
        stop_writer(&w);
}

static void late_joiner_many_segments(void **state) {
        struct wparams wp = { .policy = SGL_SEAL_EVERY_COMMIT, .gc_off = true };
        struct proc w, s, t;
        struct rep r;

        abstract_address(wp.address, sizeof(wp.address), "many");
        snprintf(wp.name, sizeof(wp.name), "many-segments");
        w = start_writer(&wp);
        wcall_ok(&w, W_COMMIT, 1, 600, 0);
        r = cmd_call(&w, W_STATUS, UINT64_MAX, 0, 0);
        assert_int_equal(r.v[1], 600); /* live segments */

        s = open_reader(wp.address, wp.name, 0);
        t = open_reader(wp.address, wp.name, SGL_READER_TRUSTED);
        expect_reader(&s, 600, range_hash(1, 600, 0));
        expect_reader(&t, 600, range_hash(1, 600, 0));
        wcall_ok(&w, W_COMMIT, 601, 1, 0);
        wait_reader(&s, 601, range_hash(1, 601, 0));
        stop_reader(&s);
        stop_reader(&t);
        stop_writer(&w);
}

/* The writer seals a segment a reader pinned: at once, by copy (the
 * @copies-th). */
static void seal_at_once(const struct proc *w, uint64_t copies) {
        struct rep r = cmd_call(w, W_SEAL, 0, 0, 0);

        print_message("sealing a pinned open segment took %" PRIu64 " us\n", r.v[0] / 1000);
        assert_int_equal(r.ret, 0);
        assert_true(r.v[0] < 100ULL * 1000000ULL); /* ns: the pin wait is ~150 ms */
        assert_int_equal(r.v[1], copies); /* seal_copies */
        assert_int_equal(r.v[2], 0);      /* seals in place */
}

/*
 * A TRUSTED reader is handed the open segment, so it can pin one of its
 * pages (vmsplice() into a pipe it never reads); F_SEAL_WRITE then waits
 * for the pin (~150 ms in the kernel's memfd_wait_for_pins()) before it
 * fails with EBUSY, and the writer used to pay that on every seal of every
 * open segment such a reader pinned.  The host now marks an open segment
 * it hands out as exposed, and the writer seals it by copy at once.
 */
static void pinned_open_segment_seals_at_once(void **state) {
        struct wparams wp = { .policy = SGL_SEAL_BYTES, .policy_arg = 1 << 20 };
        struct proc w, s, t;
        uint32_t gen;
        struct rep r;

        abstract_address(wp.address, sizeof(wp.address), "pin");
        snprintf(wp.name, sizeof(wp.name), "pinned");
        w = start_writer(&wp);
        wcall_ok(&w, W_COMMIT, 1, 5, 0); /* id 5 spans pages */
        /* the open segment reaches the TRUSTED reader in its OPEN reply */
        t = open_reader(wp.address, wp.name, SGL_READER_TRUSTED);
        s = open_reader(wp.address, wp.name, 0);
        expect_reader(&t, 5, range_hash(1, 5, 0));
        expect_reader(&s, 0, 0);

        r = cmd_call(&t, R_PIN, 5, 0, 0);
        if (r.ret == -EOPNOTSUPP) {
                print_message("vmsplice() cannot pin here: skipped\n");
                stop_reader(&s);
                stop_reader(&t);
                stop_writer(&w);
                skip();
        }
        assert_int_equal(r.ret, 0);
        seal_at_once(&w, 1);

        /* the copy reaches STRICT readers, byte-exact; TRUSTED ones get no
         * duplicate and keep what they hold */
        wait_reader(&s, 5, range_hash(1, 5, 0));
        assert_int_equal(cmd_call(&s, R_VERIFY, 0, 0, 0).ret, 0);
        assert_int_equal(reader_get(&s, 5, &gen), 0);
        assert_int_equal(gen, 0);
        expect_reader(&t, 5, range_hash(1, 5, 0));
        assert_int_equal(cmd_call(&t, R_VERIFY, 0, 0, 0).ret, 0);

        /* the next open segment reaches it as an OPENED push: the same */
        wcall_ok(&w, W_COMMIT, 6, 2, 0);
        expect_reader(&t, 7, range_hash(1, 7, 0));
        assert_int_equal(cmd_call(&t, R_PIN, 6, 0, 0).ret, 0);
        seal_at_once(&w, 2);
        wait_reader(&s, 7, range_hash(1, 7, 0));
        assert_int_equal(cmd_call(&s, R_VERIFY, 0, 0, 0).ret, 0);
        expect_reader(&t, 7, range_hash(1, 7, 0));
        assert_int_equal(cmd_call(&t, R_VERIFY, 0, 0, 0).ret, 0);

        stop_reader(&s);
        stop_reader(&t);
        stop_writer(&w);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(late_joiner_and_pushes_path),
                cmocka_unit_test(late_joiner_and_pushes_abstract),
                cmocka_unit_test(trusted_sees_open_segment),
                cmocka_unit_test(pollable_fd),
                cmocka_unit_test(writer_exit_clean),
                cmocka_unit_test(writer_killed),
                cmocka_unit_test(writer_exit_seen_by_next),
                cmocka_unit_test(open_errors),
                cmocka_unit_test(access_other_uid),
                cmocka_unit_test(slow_reader_cannot_suppress_pushes),
                cmocka_unit_test(late_joiner_many_segments),
                cmocka_unit_test(stalled_readers_vs_unprivileged_writer),
                cmocka_unit_test(pinned_open_segment_seals_at_once),
        };

        signal(SIGPIPE, SIG_IGN);
        tu_watchdog(60);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
