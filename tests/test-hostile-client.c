/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-hostile-client.c - hostile peers on both sides of the rendezvous
 * socket: raw clients against the embedded host (sgl_host_*), and a fake
 * host against the library's client (sgl_reader_open()).
 *
 * Against the embedded host.  The writer and its host run in a child that
 * drives sgl_host_process() from a poll() loop with RLIMIT_NOFILE at the
 * usual 1024; two legitimate readers (STRICT and TRUSTED, library readers)
 * run in their own children for the whole program; this process is the
 * attacker, speaking raw bytes (no library client).  After every attack:
 * the host process is alive, its descriptor count (tu_count_fds() in the
 * writer process, minus one per live segment) is back at its baseline, the
 * attackers' connections are gone (sgl_host_get_connections()), and both
 * legitimate readers receive a new commit byte-exact.  At the end both
 * readers re-check every chunk they hold byte-exact and leak nothing.
 *
 *  - host_answers_raw_client: a raw client speaking the documented bytes
 *    (HELLO, OPEN with and without SUBSCRIBE, PING, STAT) gets exactly the
 *    documented answers; AREA and SEGMENT carry read-only sealed memfds.
 *  - garbage_frames: random bytes, and a valid HELLO with each header or
 *    payload rule broken (flags, reserved, length, type, serial, role,
 *    versions) end the connection without an answer.
 *  - truncated_oversized_wrong_length: datagrams of 0 ... 27 bytes, > 4096
 *    bytes, and headers whose length differs from the datagram.
 *  - hello_bad_versions: no common version is ERROR -EPROTONOSUPPORT with
 *    the HELLO's serial, then end of file; role writer is -EOPNOTSUPP;
 *    versions 1..65535 negotiate 1.
 *  - requests_out_of_state: every request before HELLO, a second HELLO,
 *    requests of another role, OPEN while subscribed, invalid names on the
 *    wire; OPEN of an unknown name is ERROR -ENOENT and the connection lives.
 *  - Descriptors sent to an embedded host (msg_ctrunc, fds_on_messages_*,
 *    flood_253_fds): the host sets SO_PASSRIGHTS=0 on every connection, so
 *    where the kernel has it the attacker's sendmsg() fails with EPERM and
 *    nothing reaches the host; elsewhere the host must hang up.
 *  - msg_ctrunc: 253 descriptors (and 2) on a message received with a
 *    control buffer for one.
 *  - fds_on_messages_without_fds: a pipe, a socket, /dev/zero, memfds on
 *    HELLO, PING, OPEN, and a PUBLISH_SEGMENT (carries one, but an
 *    embedded host takes no writer).
 *  - flood_253_fds: 32 connections sending 253-descriptor messages as fast
 *    as the kernel takes them (as root; otherwise 16 rounds of 2, since
 *    descriptors in flight count against the uid), while the legitimate
 *    readers keep getting commits.
 *  - ten_thousand_connections: 10,000 connections opened and dropped in
 *    batches of 500 (some after HELLO, some after garbage), under 15 s.
 *  - idle_connections: 1100 connections that never say a word (more than
 *    the writer's 1024 descriptors): the host takes only as many as leave
 *    the writer room (its descriptor count stays below RLIMIT_NOFILE), the
 *    legitimate readers keep getting commits.
 *  - open_and_never_read: 8 peers that send HELLO+OPEN(SUBSCRIBE) (half of
 *    them TRUSTED) and 4 that send eight one-shot OPENs, none of which ever
 *    reads, while the writer commits in batches of 100: every commit
 *    succeeds in bounded time, at every step each client costs the writer
 *    at most one descriptor (its socket; queued messages hold none), the
 *    legitimate readers get every chunk, and all 8 subscribers are
 *    disconnected (the host hangs up: POLLHUP on their sockets).
 *  - stranger_cannot_lock_out_owner (root only): processes of uids 65534
 *    and 65533, not allowed to read the area, each open up to 1100
 *    connections and never say HELLO (together they could fill all 128
 *    the host takes); the owner (the writer's uid) still opens the area
 *    with sgl_reader_open() and reads every chunk byte-exact; once the
 *    host has seen them all, the first stranger holds exactly 64 (the
 *    per-uid quota of doc/protocol.md section 12), the second the rest of
 *    the strangers' 7/8 of the connections (48), the others were closed
 *    at once.
 *  - silent_connection_dropped: with the HELLO deadline at 300 ms
 *    (sgl_host_set_hello_timeout_ms()), a connection that says nothing is
 *    hung up within 2 s (not before its deadline), while one that said
 *    HELLO at once stays and is answered.
 *
 * Against the client (the reader process is this one; tu_count_fds()
 * before and after every sgl_reader_open() and sgl_reader_unref()), a fake
 * host (a raw listening SOCK_SEQPACKET socket in a child, which also checks
 * the client's HELLO and OPEN bytes and that it hangs up):
 *  - fake_host_*: garbage instead of WELCOME, end of file, WELCOME with a
 *    wrong serial or an unknown version, an ERROR, a request type, AREA
 *    without a descriptor, with two, with 253, with a pipe, with an unsealed
 *    memfd, SEGMENT with an unsealed memfd, with the writer's open segment
 *    for a STRICT reader, with a pipe, from another area, a push before
 *    SYNCED, SYNCED with a wrong serial, end of file before SYNCED, an
 *    oversized message, silence (-ETIMEDOUT in about 5 s): each open fails
 *    with -EPROTO (-ECONNRESET, -ETIMEDOUT, the host's ERROR) or the
 *    descriptor check's errno, never crashes, leaks nothing.
 *  - fake_host_repeat_segment: after AREA the host sends SEGMENT seq 1
 *    with the same sealed memfd every millisecond and never SYNCED (each
 *    message used to restart a 5 s timeout, and the same segment again
 *    was accepted, so the open never returned): -EPROTO at the repeat,
 *    well within 5 s, STRICT and TRUSTED.
 *  - fake_host_trickle (run in fake_host_silence, side by side with it, in
 *    a reader process): the host sends SEGMENTs with increasing seqs every
 *    400 ms (each well inside any per-message timeout) and would send
 *    SYNCED only after 10 s: the open fails with -ETIMEDOUT after about
 *    5 s, the deadline of the whole handshake (it used to succeed after
 *    10 s, and a host trickling forever held it forever), leaking nothing.
 *  - fake_host_push_garbage / fake_host_push_bad_segment: after a good open
 *    the host pushes garbage or a pipe: sgl_reader_process() reports it
 *    once, what was mapped stays readable byte-exact, nothing leaks.
 *  - fake_host_push_area_trusted: a pushed AREA (a new control page, as
 *    after a takeover) to a TRUSTED reader whose watcher thread runs: no
 *    crash, and the fd still fires on the next commit.
 *  - fake_host_gone_writer_commits: the host hangs up while its writer
 *    lives on and commits into the open segment: the TRUSTED reader's fd
 *    fires (watcher), the chunk is read from the mapping, and after
 *    sgl_reader_process() the fd is quiet again (not readable forever).
 *  - fake_host_push_area_other: a pushed AREA with another area's control
 *    page ends the connection with -EXDEV (once); the reader keeps its own
 *    control page, and its watcher still reports the writer's commits.
 *  - fake_host_push_flood: after a good open the host queues as many
 *    RETIRED pushes as its socket takes, then floods more as fast as it
 *    can for half a second: every sgl_reader_next() returns -EAGAIN within
 *    100 ms, and one call leaves pushes queued (the fd stays readable:
 *    one call does a bounded amount of work; it used to read until the
 *    socket was empty, which a flooding host could make never happen);
 *    later calls take the rest, the connection stays up, what was mapped
 *    stays readable byte-exact.
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
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sigillo.h"
#include "protocol.h"
#include "rendezvous.h"
#include "test-payload.h"
#include "test-util.h"

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))

#ifndef F_ADD_SEALS
#define F_ADD_SEALS (1024 + 9)
#define F_GET_SEALS (1024 + 10)
#endif
#ifndef F_SEAL_WRITE
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#define F_SEAL_WRITE 0x0008
#endif

/* ------------------------------------------------------------ payloads */

#define MAX_IDS PAYLOAD_MAX_IDS

static uint64_t mono_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* A small deterministic PRNG for garbage. */
static uint64_t rng_state = 0x5eed5eed12345678ULL;
static uint64_t rng(void) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

/* ------------------------------------------- commands between processes */

enum {
        W_READY = 1,
        W_COMMIT,      /* a first id, b count */
        W_STATUS,      /* a wanted connections (or UINT64_MAX), b timeout ms */
        W_HELLO_TIMEOUT, /* a ms: sgl_host_set_hello_timeout_ms() */
        W_EXIT,
        R_OPENED = 100,
        R_WAIT,        /* a count, b timeout ms */
        R_VERIFY,
        R_EXIT,
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

static void close_others(int keep) {
        if (keep > 3)
                close_range(3, (unsigned)keep - 1, 0);
        close_range((unsigned)keep + 1, ~0U, 0);
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

/* ------------------------------------------------ the writer and its host */

#define AREA "hostile.target"
#define WRITER_NOFILE 1024

struct wparams {
        char address[108];
        int sock;
};

static int writer_commit(sgl_writer *w, sgl_host *h, uint64_t id) {
        uint8_t *buf = malloc(payload_size(id, 0));
        int k;

        if (!buf)
                return -ENOMEM;
        payload_fill(buf, id, 0);
        k = sgl_writer_write(w, id, 0, buf, payload_size(id, 0), NULL);
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
        struct rlimit rl;
        sgl_writer *w = NULL;
        sgl_host *h = NULL;
        int k;

        close_others(p->sock);
        /* what a writer gets on a default system */
        TU_CHILD_CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
        if (rl.rlim_cur > WRITER_NOFILE) {
                rl.rlim_cur = WRITER_NOFILE;
                TU_CHILD_CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
        }
        TU_CHILD_CHECK(sgl_writer_new(AREA, 0, &w) == 0);
        k = sgl_host_new(w, p->address, &h);
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
                        return 20;
                TU_CHILD_CHECK(n == (ssize_t)sizeof(m));

                switch (m.op) {
                case W_COMMIT: {
                        uint64_t max = 0, total = 0;
                        k = 0;
                        for (uint64_t i = 0; i < m.b && k == 0; i++) {
                                uint64_t t0 = mono_ns(), dt;
                                k = writer_commit(w, h, m.a + i);
                                dt = mono_ns() - t0;
                                total += dt;
                                max = dt > max ? dt : max;
                        }
                        TU_CHILD_CHECK(child_send(p->sock, k, max, total,
                                                  (uint64_t)sgl_host_get_connections(h),
                                                  0, 0, 0) == 0);
                        break;
                }
                case W_STATUS: {
                        uint64_t deadline = mono_ns() + m.b * 1000000ULL;
                        sgl_writer_stats st;
                        unsigned fds;

                        /* also give the host time to see every hang-up */
                        do {
                                struct pollfd hp = { .fd = sgl_host_get_fd(h), .events = POLLIN };
                                if (poll(&hp, 1, 10) > 0)
                                        TU_CHILD_CHECK(sgl_host_process(h) >= 0);
                        } while (m.a != UINT64_MAX &&
                                 (uint64_t)sgl_host_get_connections(h) != m.a &&
                                 mono_ns() < deadline);
                        TU_CHILD_CHECK(sgl_writer_get_stats(w, &st) == 0);
                        fds = tu_count_fds();
                        TU_CHILD_CHECK(child_send(p->sock, sgl_host_get_connections(h), fds,
                                                  st.segments, st.commits, 0, 0, 0) == 0);
                        break;
                }
                case W_HELLO_TIMEOUT:
                        sgl_host_set_hello_timeout_ms(h, (unsigned)m.a);
                        TU_CHILD_CHECK(child_send(p->sock, 0, 0, 0, 0, 0, 0, 0) == 0);
                        break;
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

/* ----------------------------------------------- the legitimate readers */

struct rparams {
        char address[108];
        unsigned flags;
        int sock;
};

static int reader_main(void *userdata) {
        struct rparams *p = userdata;
        uint64_t count = 0, hash = 0, bad = 0, dups = 0, nerr = 0;
        sgl_chunk **held = NULL;
        size_t nheld = 0;
        uint8_t *seen;
        sgl_reader *r = NULL;
        unsigned fds0;
        int k, fd;

        close_others(p->sock);
        seen = calloc(MAX_IDS, 1);
        held = calloc(MAX_IDS, sizeof(*held));
        TU_CHILD_CHECK(seen && held);
        fds0 = tu_count_fds();
        k = sgl_reader_open(AREA, p->address, p->flags, &r);
        TU_CHILD_CHECK(child_send(p->sock, k, 0, 0, 0, 0, 0, 0) == 0);
        TU_CHILD_CHECK(k == 0);
        fd = sgl_reader_get_fd(r);
        TU_CHILD_CHECK(fd >= 0);

        for (;;) {
                struct cmd m;
                ssize_t n = recv(p->sock, &m, sizeof(m), 0);

                if (n == 0)
                        return 30;
                TU_CHILD_CHECK(n == (ssize_t)sizeof(m));
                switch (m.op) {
                case R_WAIT: {
                        uint64_t deadline = mono_ns() + m.b * 1000000ULL;
                        int64_t ret = 0;

                        for (;;) {
                                struct pollfd pfd = { .fd = fd, .events = POLLIN };
                                sgl_chunk *c;
                                uint32_t gen;

                                k = sgl_reader_process(r);
                                if (k < 0)
                                        nerr++;
                                while ((k = sgl_reader_next(r, &c)) != -EAGAIN) {
                                        if (k < 0) {
                                                bad++;
                                                break;
                                        }
                                        if (!payload_ok(c, &gen) || gen != 0) {
                                                bad++;
                                                sgl_chunk_unref(c);
                                        } else if (seen[sgl_chunk_id(c)]) {
                                                dups++;
                                                sgl_chunk_unref(c);
                                        } else {
                                                seen[sgl_chunk_id(c)] = 1;
                                                count++;
                                                hash += item_hash(sgl_chunk_id(c), 0);
                                                held[nheld++] = c;
                                        }
                                }
                                if (count >= m.a)
                                        break;
                                if (mono_ns() >= deadline) {
                                        ret = -ETIMEDOUT;
                                        break;
                                }
                                (void)poll(&pfd, 1, 50);
                        }
                        TU_CHILD_CHECK(child_send(p->sock, ret, count, hash, bad, dups, nerr,
                                                  0) == 0);
                        break;
                }
                case R_VERIFY: {
                        uint64_t vbad = 0, vhash = 0;
                        for (size_t i = 0; i < nheld; i++) {
                                uint32_t gen;
                                if (payload_ok(held[i], &gen))
                                        vhash += item_hash(sgl_chunk_id(held[i]), gen);
                                else
                                        vbad++;
                        }
                        TU_CHILD_CHECK(child_send(p->sock, (int64_t)vbad, nheld, vhash, 0, 0,
                                                  0, 0) == 0);
                        break;
                }
                case R_EXIT:
                        for (size_t i = 0; i < nheld; i++)
                                sgl_chunk_unref(held[i]);
                        free(held);
                        free(seen);
                        sgl_reader_unref(r);
                        TU_CHILD_CHECK(child_send(p->sock, (int64_t)tu_count_fds() - fds0,
                                                  0, 0, 0, 0, 0, 0) == 0);
                        return 0;
                default:
                        return 31;
                }
        }
}

/* ------------------------------------------------------ the shared setup */

static struct {
        char *dir;
        char address[108];
        struct proc writer;
        struct proc readers[2];
        uint64_t last_id;        /* chunks 1 ... last_id are committed */
        uint64_t baseline;       /* writer: descriptors minus live segments */
} G;

static struct proc start_proc(tu_child_fn fn, void *params, int *sockp) {
        struct proc p;
        int sv[2];

        tu_socketpair(sv);
        *sockp = sv[1];
        p.pid = tu_fork(fn, params);
        close(sv[1]);
        p.sock = sv[0];
        return p;
}

static void check_readers_get(uint64_t id) {
        for (int i = 0; i < 2; i++)
                cmd_post(&G.readers[i], R_WAIT, id, 10000, 0);
        for (int i = 0; i < 2; i++) {
                struct rep r = cmd_wait(&G.readers[i]);
                assert_int_equal(r.ret, 0);
                assert_int_equal(r.v[0], id);
                assert_int_equal(r.v[1], range_hash(1, id, 0));
                assert_int_equal(r.v[2], 0); /* bad */
                assert_int_equal(r.v[3], 0); /* dups */
                assert_int_equal(r.v[4], 0); /* connection errors */
        }
}

/* Commits @n chunks and checks both legitimate readers get them. */
static void commit_and_check(uint64_t n) {
        struct rep r = cmd_call(&G.writer, W_COMMIT, G.last_id + 1, n, 0);

        assert_int_equal(r.ret, 0);
        G.last_id += n;
        check_readers_get(G.last_id);
}

/* The writer's descriptors minus one per live segment (what a segment
 * holds under SGL_SEAL_EVERY_COMMIT), once only @conns clients remain. */
static uint64_t writer_fd_metric(uint64_t conns) {
        struct rep r = cmd_call(&G.writer, W_STATUS, conns, 10000, 0);

        assert_int_equal(r.ret, (int64_t)conns);
        return r.v[0] - r.v[1];
}

static void after_attack(void) {
        assert_int_equal(writer_fd_metric(2), G.baseline);
        commit_and_check(1);
        assert_int_equal(writer_fd_metric(2), G.baseline);
}

static int group_setup(void **state) {
        struct wparams wp = { 0 };
        struct rparams rp[2] = { { .flags = 0 }, { .flags = SGL_READER_TRUSTED } };
        struct rep r;

        G.dir = tu_mkdtemp(NULL);
        snprintf(G.address, sizeof(G.address), "%s/host", G.dir);
        snprintf(wp.address, sizeof(wp.address), "%s", G.address);
        G.writer = start_proc(writer_main, &wp, &wp.sock);
        assert_int_equal(cmd_wait(&G.writer).ret, 0);
        r = cmd_call(&G.writer, W_COMMIT, 1, 20, 0);
        assert_int_equal(r.ret, 0);
        G.last_id = 20;
        for (int i = 0; i < 2; i++) {
                snprintf(rp[i].address, sizeof(rp[i].address), "%s", G.address);
                G.readers[i] = start_proc(reader_main, &rp[i], &rp[i].sock);
                assert_int_equal(cmd_wait(&G.readers[i]).ret, 0);
        }
        check_readers_get(G.last_id);
        G.baseline = writer_fd_metric(2);
        return 0;
}

static int group_teardown(void **state) {
        for (int i = 0; i < 2; i++) {
                struct rep r = cmd_call(&G.readers[i], R_VERIFY, 0, 0, 0);
                assert_int_equal(r.ret, 0);
                assert_int_equal(r.v[0], G.last_id);
                assert_int_equal(r.v[1], range_hash(1, G.last_id, 0));
                assert_int_equal(cmd_call(&G.readers[i], R_EXIT, 0, 0, 0).ret, 0);
                tu_wait_exit(G.readers[i].pid, 0);
                close(G.readers[i].sock);
        }
        assert_int_equal(cmd_call(&G.writer, W_EXIT, 0, 0, 0).ret, 0);
        tu_wait_exit(G.writer.pid, 0);
        close(G.writer.sock);
        tu_rm_rf(G.dir);
        return 0;
}

/* ------------------------------------------------------ raw client side */

static int raw_connect(const char *address) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        socklen_t len;
        int fd;

        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        if (address[0] == '@') {
                size_t n = strlen(address);
                memcpy(sa.sun_path, address, n);
                sa.sun_path[0] = '\0';
                len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
        } else {
                snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", address);
                len = sizeof(sa);
        }
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, len), 0);
        return fd;
}

/* Sends one datagram with @nfds descriptors; returns sendmsg()'s result
 * or -errno. */
static ssize_t raw_send_fds(int fd, const void *buf, size_t len, const int *fds, size_t nfds,
                            int flags) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * 253)];
        } control;
        struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t n;

        if (nfds > 0) {
                struct cmsghdr *cm;
                memset(&control, 0, sizeof(control));
                msg.msg_control = control.buf;
                msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
                cm = CMSG_FIRSTHDR(&msg);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
                memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
        }
        n = sendmsg(fd, &msg, MSG_NOSIGNAL | flags);
        return n < 0 ? -errno : n;
}

static void raw_send(int fd, const void *buf, size_t len) {
        assert_int_equal(raw_send_fds(fd, buf, len, NULL, 0, 0), (ssize_t)len);
}

/* One message from the host within @timeout_ms: its length (0 = end of
 * file), -ECONNRESET, or -ETIMEDOUT.  A descriptor it carries is returned
 * in *fd (or closed if @fd is NULL); more than one fails the test. */
static ssize_t raw_recv(int fd, uint8_t *buf, size_t size, int *rfd, int timeout_ms) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * 4)];
        } control;
        struct iovec iov = { .iov_base = buf, .iov_len = size };
        struct msghdr msg = {
                .msg_iov = &iov, .msg_iovlen = 1,
                .msg_control = control.buf, .msg_controllen = sizeof(control.buf),
        };
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        struct cmsghdr *cm;
        int got = -1, ngot = 0;
        ssize_t n;

        if (rfd)
                *rfd = -1;
        if (poll(&pfd, 1, timeout_ms) == 0)
                return -ETIMEDOUT;
        n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0)
                return -errno;
        assert_false(msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC));
        for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
                assert_int_equal(cm->cmsg_level, SOL_SOCKET);
                assert_int_equal(cm->cmsg_type, SCM_RIGHTS);
                for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                        int x;
                        memcpy(&x, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                        if (ngot++ == 0)
                                got = x;
                        else
                                close(x);
                }
        }
        assert_true(ngot <= 1);
        if (rfd)
                *rfd = got;
        else if (got >= 0)
                close(got);
        return n;
}

/* Parses what raw_recv() got; asserts it is a valid server message. */
static struct sgl_msg raw_expect(int fd, uint8_t *buf, uint16_t type, uint32_t serial, int *rfd) {
        struct sgl_msg m;
        int x = -1;
        ssize_t n = raw_recv(fd, buf, SGL_MSG_MAX_SIZE, &x, 5000);

        assert_true(n >= SGL_MSG_HEADER_SIZE);
        assert_int_equal(sgl_msg_parse(buf, (size_t)n, x >= 0, &m), 0);
        assert_int_equal(m.type, type);
        assert_int_equal(m.serial, serial);
        if (rfd)
                *rfd = x;
        else if (x >= 0)
                close(x);
        return m;
}

/* The host hangs up: nothing but (optionally) one ERROR @error first. */
static void expect_closed(int fd, int32_t error, uint32_t serial) {
        uint8_t buf[SGL_MSG_MAX_SIZE];
        ssize_t n = raw_recv(fd, buf, sizeof(buf), NULL, 5000);

        if (error != 0) {
                struct sgl_msg m;
                assert_true(n >= SGL_MSG_HEADER_SIZE);
                assert_int_equal(sgl_msg_parse(buf, (size_t)n, 0, &m), 0);
                assert_int_equal(m.type, SGL_MSG_ERROR);
                assert_int_equal(m.serial, serial);
                assert_int_equal(m.error.error, error);
                n = raw_recv(fd, buf, sizeof(buf), NULL, 5000);
        }
        if (n > 0)
                fail_msg("host answered a bad message (type %u) instead of closing",
                         (unsigned)sgl_get_le16(buf));
        assert_true(n == 0 || n == -ECONNRESET);
        close(fd);
}

/* Sends @len bytes with descriptors the host must never take.  Where the
 * kernel has SO_PASSRIGHTS the host refused them for good at accept, so our
 * sendmsg() fails with EPERM and nothing reaches it: returns 1 (and closes
 * @fd).  Elsewhere the message is sent and the host must hang up: returns 0
 * once it did. */
static int send_stray_fds(int fd, const void *buf, size_t len, const int *fds, size_t nfds) {
        ssize_t n = raw_send_fds(fd, buf, len, fds, nfds, 0);

        if (n == -EPERM) {
                close(fd);
                return 1;
        }
        assert_int_equal(n, (ssize_t)len);
        expect_closed(fd, 0, 0);
        return 0;
}

static void hello(int fd, uint32_t serial, uint32_t role) {
        uint8_t buf[SGL_MSG_MAX_SIZE];
        ssize_t n = sgl_msg_build_hello(buf, sizeof(buf), serial, 1, 1, role);
        struct sgl_msg m;

        assert_true(n > 0);
        raw_send(fd, buf, (size_t)n);
        m = raw_expect(fd, buf, SGL_MSG_WELCOME, serial, NULL);
        assert_int_equal(m.welcome.version, 1);
        assert_int_equal(m.welcome.max_message, 4096);
        assert_int_equal(m.welcome.max_name, 255);
}

static size_t build_hello(uint8_t *buf, uint32_t serial, uint16_t min, uint16_t max, uint32_t role) {
        /* by hand: the encoder refuses bad values */
        memset(buf, 0, 28);
        sgl_put_le16(buf, SGL_MSG_HELLO);
        sgl_put_le32(buf + 4, 28);
        sgl_put_le32(buf + 8, serial);
        sgl_put_le16(buf + 16, min);
        sgl_put_le16(buf + 18, max);
        sgl_put_le32(buf + 20, role);
        return 28;
}

static size_t build_open(uint8_t *buf, uint32_t serial, uint32_t flags, const char *name,
                         size_t name_len) {
        size_t len = 24 + name_len;

        memset(buf, 0, 24);
        sgl_put_le16(buf, SGL_MSG_OPEN);
        sgl_put_le32(buf + 4, (uint32_t)len);
        sgl_put_le32(buf + 8, serial);
        sgl_put_le32(buf + 16, flags);
        sgl_put_le32(buf + 20, (uint32_t)name_len);
        memcpy(buf + 24, name, name_len);
        return len;
}

/* Sends @buf on a fresh connection (after HELLO if @after_hello) and
 * expects the host to hang up without an answer. */
static void send_expect_closed(const uint8_t *buf, size_t len, bool after_hello) {
        int fd = raw_connect(G.address);

        if (after_hello)
                hello(fd, 1, SGL_ROLE_READER);
        (void)send_stray_fds(fd, buf, len, NULL, 0);
}

/* ------------------------------------------------- attacks on the host */

static void host_answers_raw_client(void **state) {
        uint8_t buf[SGL_MSG_MAX_SIZE];
        struct sgl_msg m;
        struct stat st;
        int fd, x, nseg = 0;
        ssize_t n;

        fd = raw_connect(G.address);
        hello(fd, 7, SGL_ROLE_READER);
        n = sgl_msg_build_ping(buf, sizeof(buf), 8);
        raw_send(fd, buf, (size_t)n);
        raw_expect(fd, buf, SGL_MSG_OK, 8, NULL);

        /* OPEN without SUBSCRIBE: AREA (control page), SEGMENT*, SYNCED */
        n = sgl_msg_build_open(buf, sizeof(buf), 9, 0, AREA, strlen(AREA));
        raw_send(fd, buf, (size_t)n);
        m = raw_expect(fd, buf, SGL_MSG_AREA, 9, &x);
        assert_int_equal(m.area.flags, SGL_AREA_WRITER_PRESENT);
        assert_true(x >= 0);
        assert_int_equal(fstat(x, &st), 0);
        assert_int_equal(st.st_size, 4096);
        assert_int_equal(fcntl(x, F_GETFL) & O_ACCMODE, O_RDONLY);
        close(x);
        for (;;) {
                int y = -1;
                n = raw_recv(fd, buf, sizeof(buf), &y, 5000);
                assert_true(n >= SGL_MSG_HEADER_SIZE);
                assert_int_equal(sgl_msg_parse(buf, (size_t)n, y >= 0, &m), 0);
                assert_int_equal(m.serial, 9);
                if (m.type == SGL_MSG_SYNCED)
                        break;
                assert_int_equal(m.type, SGL_MSG_SEGMENT);
                assert_int_equal(m.segment.event, SGL_MSG_EVENT_SEALED);
                assert_int_equal(fcntl(y, F_GETFL) & O_ACCMODE, O_RDONLY);
                assert_true(fcntl(y, F_GET_SEALS) & F_SEAL_WRITE);
                assert_true(fcntl(y, F_GET_SEALS) & F_SEAL_SHRINK);
                close(y);
                nseg++;
        }
        assert_true(nseg >= 1);

        /* READY again: STAT is not a reader's request */
        n = sgl_msg_build_ping(buf, sizeof(buf), 10);
        raw_send(fd, buf, (size_t)n);
        raw_expect(fd, buf, SGL_MSG_OK, 10, NULL);
        n = sgl_msg_build_open(buf, sizeof(buf), 11, 0, "nope", 4);
        raw_send(fd, buf, (size_t)n);
        m = raw_expect(fd, buf, SGL_MSG_ERROR, 11, NULL);
        assert_int_equal(m.error.error, -ENOENT);
        n = sgl_msg_build_stat(buf, sizeof(buf), 12, AREA, strlen(AREA));
        raw_send(fd, buf, (size_t)n);
        expect_closed(fd, 0, 0);

        /* a query client: STAT of the area, then of an unknown one */
        fd = raw_connect(G.address);
        hello(fd, 1, SGL_ROLE_QUERY);
        n = sgl_msg_build_stat(buf, sizeof(buf), 2, AREA, strlen(AREA));
        raw_send(fd, buf, (size_t)n);
        m = raw_expect(fd, buf, SGL_MSG_AREA_INFO, 2, NULL);
        assert_int_equal(m.area_info.owner_uid, geteuid());
        assert_int_equal(m.area_info.readers, 2);
        assert_int_equal(m.area_info.name_len, strlen(AREA));
        for (uint64_t i = 0; i < m.area_info.segments; i++)
                raw_expect(fd, buf, SGL_MSG_SEGMENT_INFO, 2, NULL);
        raw_expect(fd, buf, SGL_MSG_END, 2, NULL);
        n = sgl_msg_build_stat(buf, sizeof(buf), 3, "nope", 4);
        raw_send(fd, buf, (size_t)n);
        m = raw_expect(fd, buf, SGL_MSG_ERROR, 3, NULL);
        assert_int_equal(m.error.error, -ENOENT);
        close(fd);

        after_attack();
}

static void garbage_frames(void **state) {
        uint8_t buf[8192], good[28];

        /* random bytes of random sizes */
        for (int i = 0; i < 200; i++) {
                size_t len = 1 + rng() % 4096;
                for (size_t k = 0; k < len; k++)
                        buf[k] = (uint8_t)rng();
                if (i % 3 == 0 && len >= 16) {
                        /* a plausible header: a real type, the right length */
                        sgl_put_le16(buf, (uint16_t)(1 + rng() % 10));
                        sgl_put_le32(buf + 4, (uint32_t)len);
                }
                send_expect_closed(buf, len, i % 2 == 1);
        }

        /* a valid HELLO with one rule broken at a time */
        build_hello(good, 1, 1, 1, SGL_ROLE_READER);
        {
                struct { size_t off; size_t width; uint32_t value; } breaks[] = {
                        { 0, 2, 0 },      /* type 0 */
                        { 0, 2, 11 },     /* unknown request type */
                        { 0, 2, 63 },
                        { 0, 2, SGL_MSG_WELCOME }, /* a server's type */
                        { 0, 2, SGL_MSG_SEGMENT },
                        { 0, 2, 76 },
                        { 0, 2, 0xffff },
                        { 2, 2, 1 },      /* header flags */
                        { 2, 2, 0x8000 },
                        { 4, 4, 0 },      /* length */
                        { 4, 4, 0xffffffff },
                        { 8, 4, 0 },      /* serial 0 on a request */
                        { 12, 4, 1 },     /* header reserved */
                        { 16, 2, 0 },     /* min_version 0 */
                        { 16, 2, 3 },     /* min_version > max_version */
                        { 20, 4, 0 },     /* role 0 */
                        { 20, 4, 4 },     /* role 4 */
                        { 24, 4, 1 },     /* payload reserved */
                };
                for (size_t i = 0; i < ELEMENTSOF(breaks); i++) {
                        memcpy(buf, good, sizeof(good));
                        if (breaks[i].width == 2)
                                sgl_put_le16(buf + breaks[i].off, (uint16_t)breaks[i].value);
                        else
                                sgl_put_le32(buf + breaks[i].off, breaks[i].value);
                        if (breaks[i].off == 16 && breaks[i].value == 3)
                                sgl_put_le16(buf + 18, 2);
                        send_expect_closed(buf, sizeof(good), false);
                }
        }
        after_attack();
}

static void truncated_oversized_wrong_length(void **state) {
        static uint8_t big[70000];
        uint8_t buf[SGL_MSG_MAX_SIZE];
        size_t len = build_hello(buf, 1, 1, 1, SGL_ROLE_READER);
        size_t cuts[] = { 0, 1, 2, 8, 15, 16, 20, 27 };
        size_t sizes[] = { 4097, 4100, 8192, 65536 };
        uint32_t lengths[] = { 16, 27, 29, 4096, 4097 };

        for (size_t i = 0; i < ELEMENTSOF(cuts); i++) {
                send_expect_closed(buf, cuts[i], false);
                send_expect_closed(buf, cuts[i], true);
        }
        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                /* a header that claims the full size */
                memset(big, 0, sizeof(big));
                build_hello(big, 1, 1, 1, SGL_ROLE_READER);
                sgl_put_le32(big + 4, (uint32_t)sizes[i]);
                send_expect_closed(big, sizes[i], false);
                send_expect_closed(big, sizes[i], true);
        }
        for (size_t i = 0; i < ELEMENTSOF(lengths); i++) {
                build_hello(buf, 1, 1, 1, SGL_ROLE_READER);
                sgl_put_le32(buf + 4, lengths[i]);
                send_expect_closed(buf, len, false);
                /* and an OPEN whose header disagrees with its datagram */
                len = build_open(buf, 2, SGL_OPEN_SUBSCRIBE, AREA, strlen(AREA));
                sgl_put_le32(buf + 4, lengths[i]);
                send_expect_closed(buf, len, true);
                len = build_hello(buf, 1, 1, 1, SGL_ROLE_READER);
        }
        /* an OPEN whose name_len disagrees with the datagram */
        len = build_open(buf, 2, 0, AREA, strlen(AREA));
        sgl_put_le32(buf + 20, (uint32_t)strlen(AREA) + 1);
        send_expect_closed(buf, len, true);
        after_attack();
}

static void hello_bad_versions(void **state) {
        uint8_t buf[SGL_MSG_MAX_SIZE];
        struct { uint16_t min, max; } bad[] = { { 2, 2 }, { 2, 9 }, { 100, 65535 } };
        struct sgl_msg m;
        int fd;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                fd = raw_connect(G.address);
                raw_send(fd, buf, build_hello(buf, 40 + (uint32_t)i, bad[i].min, bad[i].max,
                                              SGL_ROLE_READER));
                expect_closed(fd, -EPROTONOSUPPORT, 40 + (uint32_t)i);
        }
        /* an embedded host takes no writer */
        fd = raw_connect(G.address);
        raw_send(fd, buf, build_hello(buf, 5, 1, 1, SGL_ROLE_WRITER));
        expect_closed(fd, -EOPNOTSUPP, 5);
        /* a range that includes 1 negotiates 1 */
        fd = raw_connect(G.address);
        raw_send(fd, buf, build_hello(buf, 6, 1, 65535, SGL_ROLE_READER));
        m = raw_expect(fd, buf, SGL_MSG_WELCOME, 6, NULL);
        assert_int_equal(m.welcome.version, 1);
        raw_send(fd, buf, (size_t)sgl_msg_build_ping(buf, sizeof(buf), 7));
        raw_expect(fd, buf, SGL_MSG_OK, 7, NULL);
        close(fd);
        after_attack();
}

static void requests_out_of_state(void **state) {
        uint8_t buf[SGL_MSG_MAX_SIZE];
        char name256[256];
        uint32_t uid = 0;
        ssize_t n;
        int fd, mfd;

        /* before HELLO */
        send_expect_closed(buf, (size_t)sgl_msg_build_open(buf, sizeof(buf), 1,
                                                           SGL_OPEN_SUBSCRIBE, AREA,
                                                           strlen(AREA)), false);
        send_expect_closed(buf, (size_t)sgl_msg_build_ping(buf, sizeof(buf), 1), false);
        send_expect_closed(buf, (size_t)sgl_msg_build_list(buf, sizeof(buf), 1), false);
        send_expect_closed(buf, (size_t)sgl_msg_build_stat(buf, sizeof(buf), 1, AREA,
                                                           strlen(AREA)), false);
        send_expect_closed(buf, (size_t)sgl_msg_build_claim(buf, sizeof(buf), 1, 0, 0444,
                                                            &uid, 1, NULL, 0, AREA,
                                                            strlen(AREA)), false);
        send_expect_closed(buf, (size_t)sgl_msg_build_retire(buf, sizeof(buf), 1, 1), false);
        send_expect_closed(buf, (size_t)sgl_msg_build_release(buf, sizeof(buf), 1, 0), false);
        /* a server's message sent to the server */
        send_expect_closed(buf, (size_t)sgl_msg_build_welcome(buf, sizeof(buf), 1, 1, 4096,
                                                              255), false);

        /* after HELLO as a reader: a second HELLO, requests of other roles */
        send_expect_closed(buf, build_hello(buf, 2, 1, 1, SGL_ROLE_READER), true);
        send_expect_closed(buf, (size_t)sgl_msg_build_list(buf, sizeof(buf), 2), true);
        send_expect_closed(buf, (size_t)sgl_msg_build_claim(buf, sizeof(buf), 2, 0, 0444,
                                                            NULL, 0, NULL, 0, AREA,
                                                            strlen(AREA)), true);
        send_expect_closed(buf, (size_t)sgl_msg_build_release(buf, sizeof(buf), 2, 0), true);
        /* invalid names on the wire */
        send_expect_closed(buf, build_open(buf, 2, 0, "../x", 4), true);
        send_expect_closed(buf, build_open(buf, 2, 0, ".x", 2), true);
        send_expect_closed(buf, build_open(buf, 2, 0, "a\0b", 3), true);
        send_expect_closed(buf, build_open(buf, 2, 0, "", 0), true);
        memset(name256, 'a', sizeof(name256));
        send_expect_closed(buf, build_open(buf, 2, 0, name256, 256), true);
        send_expect_closed(buf, build_open(buf, 2, 0x4, AREA, strlen(AREA)), true);

        /* a query client may not OPEN */
        fd = raw_connect(G.address);
        hello(fd, 1, SGL_ROLE_QUERY);
        raw_send(fd, buf, (size_t)sgl_msg_build_open(buf, sizeof(buf), 2, 0, AREA, strlen(AREA)));
        expect_closed(fd, 0, 0);

        /* subscribed: only PING; a second OPEN ends it */
        fd = raw_connect(G.address);
        hello(fd, 1, SGL_ROLE_READER);
        raw_send(fd, buf, (size_t)sgl_msg_build_open(buf, sizeof(buf), 2, SGL_OPEN_SUBSCRIBE,
                                                     AREA, strlen(AREA)));
        raw_expect(fd, buf, SGL_MSG_AREA, 2, NULL);
        for (;;) {
                int y;
                struct sgl_msg m;
                n = raw_recv(fd, buf, sizeof(buf), &y, 5000);
                assert_true(n >= SGL_MSG_HEADER_SIZE);
                assert_int_equal(sgl_msg_parse(buf, (size_t)n, y >= 0, &m), 0);
                if (y >= 0)
                        close(y);
                if (m.type == SGL_MSG_SYNCED)
                        break;
        }
        raw_send(fd, buf, (size_t)sgl_msg_build_ping(buf, sizeof(buf), 3));
        raw_expect(fd, buf, SGL_MSG_OK, 3, NULL);
        raw_send(fd, buf, (size_t)sgl_msg_build_open(buf, sizeof(buf), 4, SGL_OPEN_SUBSCRIBE,
                                                     AREA, strlen(AREA)));
        expect_closed(fd, 0, 0);

        /* a writer's request with its descriptor */
        mfd = memfd_create("x", MFD_CLOEXEC);
        assert_true(mfd >= 0);
        fd = raw_connect(G.address);
        hello(fd, 1, SGL_ROLE_READER);
        n = sgl_msg_build_publish_control(buf, sizeof(buf), 2);
        (void)send_stray_fds(fd, buf, (size_t)n, &mfd, 1);
        close(mfd);
        after_attack();
}

static void msg_ctrunc(void **state) {
        uint8_t buf[SGL_MSG_MAX_SIZE];
        int fds[253], devnull, fd;
        size_t len;

        devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_true(devnull >= 0);
        for (int i = 0; i < 253; i++)
                fds[i] = devnull;
        len = build_hello(buf, 1, 1, 1, SGL_ROLE_READER);
        for (int round = 0; round < 4; round++) {
                size_t nfds = round % 2 ? 2 : 253;
                fd = raw_connect(G.address);
                if (round >= 2) {
                        hello(fd, 1, SGL_ROLE_READER);
                        len = (size_t)sgl_msg_build_ping(buf, sizeof(buf), 2);
                }
                (void)send_stray_fds(fd, buf, len, fds, nfds);
        }
        close(devnull);
        after_attack();
}

static void fds_on_messages_without_fds(void **state) {
        uint8_t buf[SGL_MSG_MAX_SIZE];
        int pipefd[2], sv[2], zero, mfd, sealed, fd;
        ssize_t n;

        assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
        tu_socketpair(sv);
        zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
        assert_true(zero >= 0);
        mfd = memfd_create("plain", MFD_CLOEXEC);
        assert_true(mfd >= 0);
        sealed = memfd_create("sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        assert_true(sealed >= 0);
        assert_int_equal(ftruncate(sealed, 8192), 0);
        assert_int_equal(fcntl(sealed, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE), 0);

        {
                int carried[] = { pipefd[0], pipefd[1], sv[0], zero, mfd, sealed };
                for (size_t i = 0; i < ELEMENTSOF(carried); i++) {
                        /* on HELLO */
                        fd = raw_connect(G.address);
                        n = (ssize_t)build_hello(buf, 1, 1, 1, SGL_ROLE_READER);
                        (void)send_stray_fds(fd, buf, (size_t)n, &carried[i], 1);
                        /* on PING and OPEN after HELLO */
                        fd = raw_connect(G.address);
                        hello(fd, 1, SGL_ROLE_READER);
                        n = sgl_msg_build_ping(buf, sizeof(buf), 2);
                        (void)send_stray_fds(fd, buf, (size_t)n, &carried[i], 1);
                        fd = raw_connect(G.address);
                        hello(fd, 1, SGL_ROLE_READER);
                        n = sgl_msg_build_open(buf, sizeof(buf), 2, SGL_OPEN_SUBSCRIBE, AREA,
                                               strlen(AREA));
                        (void)send_stray_fds(fd, buf, (size_t)n, &carried[i], 1);
                }
        }
        /* a type that carries one, which an embedded host does not take */
        fd = raw_connect(G.address);
        hello(fd, 1, SGL_ROLE_READER);
        n = sgl_msg_build_publish_segment(buf, sizeof(buf), 2, 1, SGL_MSG_EVENT_SEALED);
        (void)send_stray_fds(fd, buf, (size_t)n, &sealed, 1);

        close(pipefd[0]);
        close(pipefd[1]);
        close(sv[0]);
        close(sv[1]);
        close(zero);
        close(mfd);
        close(sealed);
        after_attack();
}

static void flood_253_fds(void **state) {
        uint8_t buf[SGL_MSG_MAX_SIZE];
        int fds[253], conns[32], devnull;
        size_t len = build_hello(buf, 1, 1, 1, SGL_ROLE_READER);
        /* descriptors in flight count against our uid's RLIMIT_NOFILE
         * unless we are root: stay far below it, not to starve other tests
         * of this uid running at the same time */
        int per_conn = tu_is_root() ? 64 : 1, nconns = tu_is_root() ? 32 : 2;
        int rounds = tu_is_root() ? 1 : 16;
        uint64_t sent = 0, refused = 0;

        devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_true(devnull >= 0);
        for (int i = 0; i < 253; i++)
                fds[i] = devnull;
        for (int round = 0; round < rounds; round++) {
                for (int i = 0; i < nconns; i++) {
                        conns[i] = raw_connect(G.address);
                        for (int k = 0; k < per_conn; k++) {
                                ssize_t n = raw_send_fds(conns[i], buf, len, fds, 253,
                                                         MSG_DONTWAIT);
                                if (n == -EPERM) {
                                        refused++; /* SO_PASSRIGHTS */
                                        break;
                                }
                                if (n < 0)
                                        break; /* full, or already hung up on */
                                sent++;
                        }
                }
                /* the host keeps serving while the attackers are connected */
                if (round == 0)
                        commit_and_check(3);
                for (int i = 0; i < nconns; i++) {
                        if (refused > 0)
                                close(conns[i]); /* nothing reached the host */
                        else
                                expect_closed(conns[i], 0, 0);
                }
        }
        assert_true(sent + refused >= (uint64_t)(nconns * rounds));
        close(devnull);
        after_attack();
}

static void ten_thousand_connections(void **state) {
        enum { BATCH = 500, TOTAL = 10000 };
        uint8_t buf[SGL_MSG_MAX_SIZE];
        int conns[BATCH];
        uint64_t t0 = mono_ns(), dt;

        for (int b = 0; b < TOTAL / BATCH; b++) {
                /* sends may fail: past its connection limit the host
                 * accepts and closes at once */
                for (int i = 0; i < BATCH; i++) {
                        conns[i] = raw_connect(G.address);
                        switch (i % 4) {
                        case 0:
                                (void)raw_send_fds(conns[i], buf,
                                                   build_hello(buf, 1, 1, 1, SGL_ROLE_READER),
                                                   NULL, 0, MSG_DONTWAIT);
                                break;
                        case 1:
                                memset(buf, 0xa5, 64);
                                (void)raw_send_fds(conns[i], buf, 64, NULL, 0, MSG_DONTWAIT);
                                break;
                        case 2:
                                (void)raw_send_fds(conns[i], buf,
                                                   build_hello(buf, 1, 1, 1, SGL_ROLE_READER),
                                                   NULL, 0, MSG_DONTWAIT);
                                (void)raw_send_fds(conns[i], buf,
                                                   build_open(buf, 2, SGL_OPEN_SUBSCRIBE, AREA,
                                                              strlen(AREA)),
                                                   NULL, 0, MSG_DONTWAIT);
                                break;
                        default:
                                break; /* connect and say nothing */
                        }
                }
                for (int i = 0; i < BATCH; i++)
                        close(conns[i]);
                if (b == TOTAL / BATCH / 2)
                        commit_and_check(1); /* served in the middle of it */
        }
        after_attack();
        dt = mono_ns() - t0;
        print_message("10000 connections in %" PRIu64 " ms\n", dt / 1000000);
        assert_true(dt < 15ULL * 1000000000ULL);
}

static void idle_connections(void **state) {
        struct rlimit rl;
        int idle = 1100;
        int *conns;
        struct rep r;

        assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
        if (rl.rlim_cur < (rlim_t)idle + 200)
                idle = (int)rl.rlim_cur - 200;
        assert_true(idle > 2 * WRITER_NOFILE / 8);
        conns = calloc((size_t)idle, sizeof(int));

        /* more idle connections than the writer has descriptors: they may
         * be refused, but must never cost the writer a commit */
        assert_non_null(conns);
        for (int i = 0; i < idle; i++)
                conns[i] = raw_connect(G.address);
        r = cmd_call(&G.writer, W_STATUS, UINT64_MAX, 0, 0);
        print_message("%d idle connections: the host holds %" PRId64 ", %" PRIu64
                      " descriptors\n", idle, r.ret, r.v[0]);
        assert_true(r.v[0] < WRITER_NOFILE);
        commit_and_check(2);
        for (int i = 0; i < idle; i++)
                close(conns[i]);
        free(conns);
        after_attack();
}

/* The writer's descriptors beyond its baseline, with @conns clients in all:
 * each client may cost its socket, nothing more. */
static void check_cost_per_client(void) {
        struct rep r = cmd_call(&G.writer, W_STATUS, UINT64_MAX, 0, 0);

        assert_true(r.v[0] - r.v[1] <= G.baseline + (uint64_t)r.ret - 2);
}

/* Whether the host hung up on @fd (seen even with unread messages). */
static bool hung_up(int fd) {
        struct pollfd pfd = { .fd = fd, .events = POLLRDHUP };
        return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLHUP);
}

static void open_and_never_read(void **state) {
        enum { PEERS = 8, REPEATERS = 4 };
        uint8_t buf[SGL_MSG_MAX_SIZE];
        int peers[PEERS + REPEATERS];
        uint64_t max_ns = 0, total_ns = 0;
        int batches = 0, dropped = 0;

        /* subscribers that never read, half of them TRUSTED */
        for (int i = 0; i < PEERS; i++) {
                peers[i] = raw_connect(G.address);
                raw_send(peers[i], buf, build_hello(buf, 1, 1, 1, SGL_ROLE_READER));
                raw_send(peers[i], buf, build_open(buf, 2, SGL_OPEN_SUBSCRIBE |
                                                   (i % 2 ? SGL_OPEN_TRUSTED : 0),
                                                   AREA, strlen(AREA)));
        }
        /* and one-shot OPENs, again and again, never read: each asks for a
         * descriptor per live segment */
        for (int i = PEERS; i < PEERS + REPEATERS; i++) {
                peers[i] = raw_connect(G.address);
                raw_send(peers[i], buf, build_hello(buf, 1, 1, 1, SGL_ROLE_READER));
                for (uint32_t k = 0; k < 8; k++)
                        (void)raw_send_fds(peers[i], buf,
                                           build_open(buf, 2 + k, 0, AREA, strlen(AREA)),
                                           NULL, 0, MSG_DONTWAIT);
        }
        assert_true(cmd_call(&G.writer, W_STATUS, 2 + PEERS + REPEATERS, 2000, 0).ret >=
                    2 + PEERS);
        check_cost_per_client();

        while (batches < 40) {
                struct rep r;
                for (int i = 0; i < 2; i++)
                        cmd_post(&G.readers[i], R_WAIT, G.last_id + 100, 10000, 0);
                r = cmd_call(&G.writer, W_COMMIT, G.last_id + 1, 100, 0);
                /* a stalled peer must never make a commit fail */
                assert_int_equal(r.ret, 0);
                max_ns = r.v[0] > max_ns ? r.v[0] : max_ns;
                total_ns += r.v[1];
                G.last_id += 100;
                batches++;
                for (int i = 0; i < 2; i++) {
                        r = cmd_wait(&G.readers[i]);
                        assert_int_equal(r.ret, 0);
                        assert_int_equal(r.v[0], G.last_id);
                        assert_int_equal(r.v[2], 0);
                        assert_int_equal(r.v[3], 0);
                }
                check_cost_per_client();
                dropped = 0;
                for (int i = 0; i < PEERS; i++)
                        dropped += hung_up(peers[i]);
                if (dropped == PEERS)
                        break;
        }
        print_message("%d commits until the stalled subscribers were dropped: %" PRIu64
                      " ms, slowest %" PRIu64 " us\n", batches * 100, total_ns / 1000000,
                      max_ns / 1000);
        /* every stalled subscriber is disconnected (one-shot OPENs get no
         * pushes: they stay, their replies queued, until they hang up) */
        assert_int_equal(dropped, PEERS);
        assert_true(max_ns < 1000000000ULL);
        for (int i = 0; i < PEERS + REPEATERS; i++)
                close(peers[i]);
        check_readers_get(G.last_id);
        after_attack();
}

/* Strangers (uids other than the writer's and root, not allowed to read
 * the area) open as many connections as they can and never say HELLO. */
#define STRANGER_TRIES 1100
#define CONNS_PER_UID 64         /* doc/protocol.md section 12 */
/* the host takes an eighth of the writer's RLIMIT_NOFILE in connections,
 * strangers together at most 7/8 of them */
#define HOST_CONNS (WRITER_NOFILE / 8)
#define STRANGERS_MAX (HOST_CONNS - HOST_CONNS / 8)

struct stranger {
        char address[108];
        uid_t uid;
        int sock;
};

static int stranger_main(void *userdata) {
        struct stranger *p = userdata;
        static int conns[STRANGER_TRIES];
        int n = 0, open_ = 0;
        char c;

        close_others(p->sock);
        TU_CHILD_CHECK(setgroups(0, NULL) == 0);
        TU_CHILD_CHECK(setgid(p->uid) == 0);
        TU_CHILD_CHECK(setuid(p->uid) == 0);
        for (int i = 0; i < STRANGER_TRIES; i++) {
                int fd = sgl_connect_host(p->address, 2000);
                if (fd < 0)
                        break; /* out of descriptors, or refused */
                conns[n++] = fd;
        }
        TU_CHILD_CHECK(child_send(p->sock, n, 0, 0, 0, 0, 0, 0) == 0);
        /* the test opened the area as its owner meanwhile: the host has
         * seen (accepted, kept or closed) every connection of ours */
        TU_CHILD_CHECK(recv(p->sock, &c, 1, 0) == 1);
        for (int i = 0; i < n; i++) {
                struct pollfd pfd = { .fd = conns[i], .events = POLLIN | POLLRDHUP };
                TU_CHILD_CHECK(poll(&pfd, 1, 0) >= 0);
                open_ += pfd.revents == 0;
        }
        TU_CHILD_CHECK(child_send(p->sock, open_, 0, 0, 0, 0, 0, 0) == 0);
        TU_CHILD_CHECK(recv(p->sock, &c, 1, 0) == 1);
        for (int i = 0; i < n; i++)
                close(conns[i]);
        return 0;
}

static void stranger_cannot_lock_out_owner(void **state) {
        /* the first gets its quota, the second what the first left of
         * the strangers' 7/8 */
        const int64_t want[2] = { CONNS_PER_UID, STRANGERS_MAX - CONNS_PER_UID };
        struct stranger sp[2] = { { .uid = 65534 }, { .uid = 65533 } };
        struct proc att[2];
        sgl_reader *r = NULL;
        sgl_chunk *c;
        uint64_t count = 0, hash = 0, bad = 0;
        unsigned fds;
        struct rep rp;
        uint32_t gen;
        int k;

        if (!tu_is_root())
                skip();
        /* two strangers together could fill every connection the host
         * takes (but the last two, which the legitimate readers hold) */
        assert_true(2 * CONNS_PER_UID >= HOST_CONNS - 2);
        assert_true(want[1] > 0 && want[1] < CONNS_PER_UID);
        /* they may reach the socket; the host decides */
        assert_int_equal(chmod(G.dir, 0755), 0);
        assert_int_equal(chmod(G.address, 0666), 0);
        for (int i = 0; i < 2; i++) {
                snprintf(sp[i].address, sizeof(sp[i].address), "%s", G.address);
                att[i] = start_proc(stranger_main, &sp[i], &sp[i].sock);
                rp = cmd_wait(&att[i]);
                print_message("uid %d opened %" PRId64 " connections\n", (int)sp[i].uid,
                              rp.ret);
                assert_true(rp.ret > CONNS_PER_UID);
        }

        /* the owner is not locked out, and reads everything */
        fds = tu_count_fds();
        k = sgl_reader_open(AREA, G.address, 0, &r);
        assert_int_equal(k, 0);
        while ((k = sgl_reader_next(r, &c)) == 0) {
                if (payload_ok(c, &gen) && gen == 0) {
                        count++;
                        hash += item_hash(sgl_chunk_id(c), 0);
                } else {
                        bad++;
                }
                sgl_chunk_unref(c);
        }
        assert_int_equal(k, -EAGAIN);
        assert_int_equal(bad, 0);
        assert_int_equal(count, G.last_id);
        assert_int_equal(hash, range_hash(1, G.last_id, 0));
        r = sgl_reader_unref(r);
        assert_int_equal(tu_count_fds(), fds);

        /* each stranger holds its quota at most, all of them together at
         * most theirs; the others were closed at once */
        for (int i = 0; i < 2; i++) {
                assert_int_equal(send(att[i].sock, "c", 1, 0), 1);
                rp = cmd_wait(&att[i]);
                print_message("the host kept %" PRId64 " of uid %d's\n", rp.ret,
                              (int)sp[i].uid);
                assert_int_equal(rp.ret, want[i]);
        }
        assert_int_equal(cmd_call(&G.writer, W_STATUS, 2 + STRANGERS_MAX, 5000, 0).ret,
                         2 + STRANGERS_MAX);

        for (int i = 0; i < 2; i++) {
                assert_int_equal(send(att[i].sock, "q", 1, 0), 1);
                tu_wait_exit(att[i].pid, 0);
                close(att[i].sock);
        }
        assert_int_equal(chmod(G.address, 0600), 0);
        assert_int_equal(chmod(G.dir, 0700), 0);
        after_attack();
}

static void silent_connection_dropped(void **state) {
        uint8_t buf[SGL_MSG_MAX_SIZE];
        uint64_t t0, dt;
        ssize_t n;
        int silent, talker;

        assert_int_equal(cmd_call(&G.writer, W_HELLO_TIMEOUT, 300, 0, 0).ret, 0);
        t0 = mono_ns();
        silent = raw_connect(G.address);
        talker = raw_connect(G.address);
        hello(talker, 1, SGL_ROLE_READER);

        /* hung up after its deadline, without a word */
        n = raw_recv(silent, buf, sizeof(buf), NULL, 2000);
        dt = mono_ns() - t0;
        print_message("a silent connection was dropped after %" PRIu64 " ms\n", dt / 1000000);
        assert_true(n == 0 || n == -ECONNRESET);
        assert_true(dt >= 250ULL * 1000000ULL);
        assert_true(dt < 2000ULL * 1000000ULL);
        close(silent);

        /* the one that said HELLO is still served, well past the deadline */
        assert_false(hung_up(talker));
        raw_send(talker, buf, (size_t)sgl_msg_build_ping(buf, sizeof(buf), 2));
        raw_expect(talker, buf, SGL_MSG_OK, 2, NULL);
        assert_int_equal(cmd_call(&G.writer, W_STATUS, 3, 2000, 0).ret, 3);
        close(talker);

        assert_int_equal(cmd_call(&G.writer, W_HELLO_TIMEOUT, 10000, 0, 0).ret, 0);
        after_attack();
}

/* ------------------------------------------------- a hostile host */

enum scenario {
        F_GARBAGE_WELCOME,
        F_CLOSE,
        F_WELCOME_WRONG_SERIAL,
        F_WELCOME_V2,
        F_ERROR_HELLO,
        F_REQUEST_TYPE,
        F_ERROR_OPEN,
        F_ERROR_OPEN_UNREAD,     /* ERROR for the OPEN, closed with it unread */
        F_ERROR_SERIAL0,
        F_AREA_NO_FD,
        F_AREA_TWO_FDS,
        F_AREA_253_FDS,
        F_AREA_PIPE,
        F_AREA_UNSEALED,
        F_AREA_OVERSIZED,
        F_SEG_UNSEALED,
        F_SEG_OPEN_FOR_STRICT,
        F_SEG_PIPE,
        F_SEG_OTHER_AREA,
        F_SEG_PUSH_BEFORE_SYNCED,
        F_SYNCED_WRONG_SERIAL,
        F_CLOSE_BEFORE_SYNCED,
        F_SILENCE,
        F_REPEAT_SEGMENT,        /* SEGMENT seq 1 again and again, no SYNCED */
        F_TRICKLE,               /* SEGMENT seq 1, 2, ... every 400 ms */
        F_GOOD,                  /* a good open, then pushes (below) */
};

enum push {
        P_NONE,
        P_GARBAGE,
        P_BAD_SEGMENT,
        P_AREA,
        P_CLOSE_THEN_COMMIT,
        P_AREA_OTHER,
        P_FLOOD,                 /* RETIRED pushes, as many as possible */
};

struct fparams {
        int listen_fd;
        int ctl;                 /* socket to the test, for the push steps */
        enum scenario scenario;
        enum push push;
        bool trusted;
};

struct fake_area {
        sgl_writer *w, *other;
        int ctl;
        int sealed;              /* seq 1, sealed */
        int open_seg;            /* seq 2, open */
        int other_seg;           /* seq 1 of another area */
};

static void grab_segment(void *userdata, uint64_t seq, sgl_segment_event ev, int fd) {
        int *fds = userdata;
        if (seq < 4 && fds[seq] < 0)
                fds[seq] = fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

static int fake_area_make(struct fake_area *a) {
        uint8_t buf[PAYLOAD_MAX_SIZE];
        int fds[4] = { -1, -1, -1, -1 };
        int ofds[4] = { -1, -1, -1, -1 };

        if (sgl_writer_new("fake", 0, &a->w) < 0 ||
            sgl_writer_set_seal_policy(a->w, SGL_SEAL_BYTES, 1 << 20) < 0)
                return -1;
        payload_fill(buf, 1, 0);
        if (sgl_writer_write(a->w, 1, 0, buf, payload_size(1, 0), NULL) < 0 ||
            sgl_writer_commit(a->w) < 0 || sgl_writer_seal(a->w) < 0)
                return -1;
        payload_fill(buf, 2, 0);
        if (sgl_writer_write(a->w, 2, 0, buf, payload_size(2, 0), NULL) < 0 ||
            sgl_writer_commit(a->w) < 0)
                return -1;
        sgl_writer_foreach_segment(a->w, grab_segment, fds);
        a->sealed = fds[1];
        a->open_seg = fds[2];
        a->ctl = sgl_writer_control_fd(a->w);
        if (sgl_writer_new("other", 0, &a->other) < 0)
                return -1;
        payload_fill(buf, 1, 0);
        if (sgl_writer_write(a->other, 1, 0, buf, payload_size(1, 0), NULL) < 0 ||
            sgl_writer_commit(a->other) < 0)
                return -1;
        sgl_writer_foreach_segment(a->other, grab_segment, ofds);
        a->other_seg = ofds[1];
        return a->sealed >= 0 && a->open_seg >= 0 && a->ctl >= 0 && a->other_seg >= 0 ? 0 : -1;
}

static int fsend(int fd, const uint8_t *buf, ssize_t len, int carried) {
        if (len < 0)
                return -1;
        return raw_send_fds(fd, buf, (size_t)len, &carried, carried >= 0, 0) == len ? 0 : -1;
}

/* Waits for the client to hang up (it must, after an error). */
static int wait_hangup(int fd) {
        uint8_t buf[SGL_MSG_MAX_SIZE];
        struct pollfd pfd = { .fd = fd, .events = POLLIN };

        for (;;) {
                ssize_t n;
                if (poll(&pfd, 1, 10000) != 1)
                        return -1;
                n = recv(fd, buf, sizeof(buf), 0);
                if (n == 0 || (n < 0 && errno == ECONNRESET))
                        return 0;
                if (n < 0)
                        return -1;
        }
}

/* Whether the client hung up within @timeout_ms (it sends nothing while
 * it waits for SYNCED, so any event is its end). */
static bool client_gone(int fd, int timeout_ms) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN | POLLRDHUP };
        return poll(&pfd, 1, timeout_ms) == 1;
}

static int ctl_step(int ctl) {
        char c;
        if (recv(ctl, &c, 1, 0) != 1)
                return -1;
        return c;
}

static int fake_host_main(void *userdata) {
        struct fparams *p = userdata;
        uint8_t buf[SGL_MSG_MAX_SIZE], big[5000];
        struct fake_area a = { 0 };
        struct sgl_msg m;
        uint32_t open_serial;
        int c, pipefd[2], fds[253], plain;
        ssize_t n;

        TU_CHILD_CHECK(fake_area_make(&a) == 0);
        TU_CHILD_CHECK(pipe2(pipefd, O_CLOEXEC) == 0);
        plain = memfd_create("plain", MFD_CLOEXEC);
        TU_CHILD_CHECK(plain >= 0 && ftruncate(plain, 8192) == 0);
        c = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        TU_CHILD_CHECK(c >= 0);

        /* the client's HELLO, byte for byte what the spec says */
        n = recv(c, buf, sizeof(buf), 0);
        TU_CHILD_CHECK(n == 28);
        TU_CHILD_CHECK(sgl_msg_parse(buf, (size_t)n, 0, &m) == 0);
        TU_CHILD_CHECK(m.type == SGL_MSG_HELLO && m.serial != 0);
        TU_CHILD_CHECK(m.hello.min_version == 1 && m.hello.max_version == 1);
        TU_CHILD_CHECK(m.hello.role == SGL_ROLE_READER);

        switch (p->scenario) {
        case F_GARBAGE_WELCOME:
                memset(buf, 0x5a, 40);
                TU_CHILD_CHECK(send(c, buf, 40, MSG_NOSIGNAL) == 40);
                return wait_hangup(c) == 0 ? 0 : 40;
        case F_ERROR_OPEN_UNREAD:
                /* answer the OPEN without taking it from the socket, and
                 * close: the kernel then makes the client's next recvmsg
                 * fail with ECONNRESET before it gets the ERROR */
                TU_CHILD_CHECK(fsend(c, buf, sgl_msg_build_welcome(buf, sizeof(buf), m.serial,
                                                                  1, 4096, 255), -1) == 0);
                n = recv(c, buf, sizeof(buf), MSG_PEEK);
                TU_CHILD_CHECK(n > 0 && sgl_msg_parse(buf, (size_t)n, 0, &m) == 0);
                TU_CHILD_CHECK(m.type == SGL_MSG_OPEN);
                TU_CHILD_CHECK(fsend(c, buf, sgl_msg_build_error(buf, sizeof(buf), m.serial,
                                                                -ENOENT), -1) == 0);
                close(c);
                return 0;
        case F_CLOSE:
                close(c);
                return 0;
        case F_WELCOME_WRONG_SERIAL:
                TU_CHILD_CHECK(fsend(c, buf, sgl_msg_build_welcome(buf, sizeof(buf), m.serial + 1,
                                                                  1, 4096, 255), -1) == 0);
                return wait_hangup(c) == 0 ? 0 : 41;
        case F_WELCOME_V2:
                TU_CHILD_CHECK(fsend(c, buf, sgl_msg_build_welcome(buf, sizeof(buf), m.serial,
                                                                  2, 4096, 255), -1) == 0);
                return wait_hangup(c) == 0 ? 0 : 42;
        case F_ERROR_HELLO:
                TU_CHILD_CHECK(fsend(c, buf, sgl_msg_build_error(buf, sizeof(buf), m.serial,
                                                                -EACCES), -1) == 0);
                return wait_hangup(c) == 0 ? 0 : 43;
        case F_REQUEST_TYPE:
                TU_CHILD_CHECK(fsend(c, buf, sgl_msg_build_hello(buf, sizeof(buf), m.serial, 1,
                                                                1, SGL_ROLE_READER), -1) == 0);
                return wait_hangup(c) == 0 ? 0 : 44;
        case F_SILENCE:
                return wait_hangup(c) == 0 ? 0 : 45;
        default:
                break;
        }

        TU_CHILD_CHECK(fsend(c, buf, sgl_msg_build_welcome(buf, sizeof(buf), m.serial, 1, 4096,
                                                          255), -1) == 0);
        /* the client's OPEN */
        n = recv(c, buf, sizeof(buf), 0);
        TU_CHILD_CHECK(n > 0 && sgl_msg_parse(buf, (size_t)n, 0, &m) == 0);
        TU_CHILD_CHECK(m.type == SGL_MSG_OPEN);
        TU_CHILD_CHECK(m.open.name_len == 4 && memcmp(m.open.name, "fake", 4) == 0);
        TU_CHILD_CHECK(m.open.flags == (SGL_OPEN_SUBSCRIBE | (p->trusted ? SGL_OPEN_TRUSTED : 0)));
        open_serial = m.serial;

        switch (p->scenario) {
        case F_ERROR_OPEN:
                TU_CHILD_CHECK(fsend(c, buf, sgl_msg_build_error(buf, sizeof(buf), open_serial,
                                                                -ENOENT), -1) == 0);
                return wait_hangup(c) == 0 ? 0 : 50;
        case F_ERROR_SERIAL0:
                TU_CHILD_CHECK(fsend(c, buf, sgl_msg_build_error(buf, sizeof(buf), 0, -EBADMSG),
                                     -1) == 0);
                return wait_hangup(c) == 0 ? 0 : 51;
        case F_AREA_NO_FD:
                TU_CHILD_CHECK(fsend(c, buf, sgl_msg_build_area(buf, sizeof(buf), open_serial,
                                                               (uint8_t[16]){ 0 }, 1), -1) == 0);
                return wait_hangup(c) == 0 ? 0 : 52;
        case F_AREA_TWO_FDS: {
                int two[2] = { a.ctl, a.ctl };
                n = sgl_msg_build_area(buf, sizeof(buf), open_serial, (uint8_t[16]){ 0 }, 1);
                TU_CHILD_CHECK(raw_send_fds(c, buf, (size_t)n, two, 2, 0) == n);
                return wait_hangup(c) == 0 ? 0 : 53;
        }
        case F_AREA_253_FDS:
                for (int i = 0; i < 253; i++)
                        fds[i] = a.ctl;
                n = sgl_msg_build_area(buf, sizeof(buf), open_serial, (uint8_t[16]){ 0 }, 1);
                TU_CHILD_CHECK(raw_send_fds(c, buf, (size_t)n, fds, 253, 0) == n);
                return wait_hangup(c) == 0 ? 0 : 54;
        case F_AREA_PIPE:
                TU_CHILD_CHECK(fsend(c, buf, sgl_msg_build_area(buf, sizeof(buf), open_serial,
                                                               (uint8_t[16]){ 0 }, 1),
                                     pipefd[0]) == 0);
                return wait_hangup(c) == 0 ? 0 : 55;
        case F_AREA_UNSEALED:
                TU_CHILD_CHECK(fsend(c, buf, sgl_msg_build_area(buf, sizeof(buf), open_serial,
                                                               (uint8_t[16]){ 0 }, 1),
                                     plain) == 0);
                return wait_hangup(c) == 0 ? 0 : 56;
        case F_AREA_OVERSIZED:
                memset(big, 0, sizeof(big));
                n = sgl_msg_build_area(big, sizeof(big), open_serial, (uint8_t[16]){ 0 }, 1);
                sgl_put_le32(big + 4, sizeof(big));
                TU_CHILD_CHECK(raw_send_fds(c, big, sizeof(big), &a.ctl, 1, 0) ==
                               (ssize_t)sizeof(big));
                return wait_hangup(c) == 0 ? 0 : 57;
        default:
                break;
        }

        /* a good AREA (the area id in the message is the writer's) */
        {
                uint8_t id[16];
                TU_CHILD_CHECK(pread(a.ctl, id, 16, 16) == 16);
                TU_CHILD_CHECK(fsend(c, buf, sgl_msg_build_area(buf, sizeof(buf), open_serial, id,
                                                               SGL_AREA_WRITER_PRESENT),
                                     a.ctl) == 0);
        }
        switch (p->scenario) {
        case F_SEG_UNSEALED:
                TU_CHILD_CHECK(fsend(c, buf, sgl_msg_build_segment(buf, sizeof(buf), open_serial,
                                                                  1, SGL_MSG_EVENT_SEALED),
                                     plain) == 0);
                return wait_hangup(c) == 0 ? 0 : 60;
        case F_SEG_OPEN_FOR_STRICT:
                TU_CHILD_CHECK(fsend(c, buf, sgl_msg_build_segment(buf, sizeof(buf), open_serial,
                                                                  2, SGL_MSG_EVENT_SEALED),
                                     a.open_seg) == 0);
                return wait_hangup(c) == 0 ? 0 : 61;
        case F_SEG_PIPE:
                TU_CHILD_CHECK(fsend(c, buf, sgl_msg_build_segment(buf, sizeof(buf), open_serial,
                                                                  1, SGL_MSG_EVENT_SEALED),
                                     pipefd[1]) == 0);
                return wait_hangup(c) == 0 ? 0 : 62;
        case F_SEG_OTHER_AREA:
                TU_CHILD_CHECK(fsend(c, buf, sgl_msg_build_segment(buf, sizeof(buf), open_serial,
                                                                  1, SGL_MSG_EVENT_SEALED),
                                     a.other_seg) == 0);
                return wait_hangup(c) == 0 ? 0 : 63;
        case F_SEG_PUSH_BEFORE_SYNCED:
                TU_CHILD_CHECK(fsend(c, buf, sgl_msg_build_segment(buf, sizeof(buf), 0, 1,
                                                                  SGL_MSG_EVENT_SEALED),
                                     a.sealed) == 0);
                return wait_hangup(c) == 0 ? 0 : 64;
        case F_CLOSE_BEFORE_SYNCED:
                TU_CHILD_CHECK(fsend(c, buf, sgl_msg_build_segment(buf, sizeof(buf), open_serial,
                                                                  1, SGL_MSG_EVENT_SEALED),
                                     a.sealed) == 0);
                close(c);
                return 0;
        case F_SYNCED_WRONG_SERIAL:
                TU_CHILD_CHECK(fsend(c, buf, sgl_msg_build_segment(buf, sizeof(buf), open_serial,
                                                                  1, SGL_MSG_EVENT_SEALED),
                                     a.sealed) == 0);
                TU_CHILD_CHECK(fsend(c, buf, sgl_msg_build_synced(buf, sizeof(buf),
                                                                 open_serial + 1), -1) == 0);
                return wait_hangup(c) == 0 ? 0 : 65;
        case F_REPEAT_SEGMENT: {
                /* the same sealed segment every ms, for 8 s at most */
                uint64_t end = mono_ns() + 8000000000ULL;
                n = sgl_msg_build_segment(buf, sizeof(buf), open_serial, 1, SGL_MSG_EVENT_SEALED);
                while (mono_ns() < end)
                        if (fsend(c, buf, n, a.sealed) < 0 || client_gone(c, 1))
                                return 0;
                return 66; /* the client still listened */
        }
        case F_TRICKLE: {
                /* a new seq every 400 ms (the same segment: taken again
                 * as it is), SYNCED only after 10 s */
                uint64_t end = mono_ns() + 10000000000ULL;
                for (uint64_t seq = 1; mono_ns() < end; seq++) {
                        n = sgl_msg_build_segment(buf, sizeof(buf), open_serial, seq,
                                                  SGL_MSG_EVENT_SEALED);
                        if (fsend(c, buf, n, a.sealed) < 0 || client_gone(c, 400))
                                return 0;
                }
                TU_CHILD_CHECK(fsend(c, buf, sgl_msg_build_synced(buf, sizeof(buf), open_serial),
                                     -1) == 0);
                return 67; /* the client waited for it */
        }
        default:
                break;
        }

        /* F_GOOD: the sealed segment, the open one for TRUSTED, SYNCED */
        TU_CHILD_CHECK(fsend(c, buf, sgl_msg_build_segment(buf, sizeof(buf), open_serial, 1,
                                                          SGL_MSG_EVENT_SEALED), a.sealed) == 0);
        if (p->trusted)
                TU_CHILD_CHECK(fsend(c, buf, sgl_msg_build_segment(buf, sizeof(buf), open_serial,
                                                                  2, SGL_MSG_EVENT_OPENED),
                                     a.open_seg) == 0);
        TU_CHILD_CHECK(fsend(c, buf, sgl_msg_build_synced(buf, sizeof(buf), open_serial), -1) == 0);

        /* the test says when to push */
        TU_CHILD_CHECK(ctl_step(p->ctl) == 'p');
        switch (p->push) {
        case P_GARBAGE:
                memset(buf, 0xee, 48);
                TU_CHILD_CHECK(send(c, buf, 48, MSG_NOSIGNAL) == 48);
                break;
        case P_BAD_SEGMENT:
                TU_CHILD_CHECK(fsend(c, buf, sgl_msg_build_segment(buf, sizeof(buf), 0, 3,
                                                                  SGL_MSG_EVENT_SEALED),
                                     pipefd[0]) == 0);
                break;
        case P_AREA: {
                /* the control page again, on a new description (as after a
                 * takeover); then a commit that must still wake the fd */
                uint8_t id[16];
                int ctl2 = sgl_writer_control_fd(a.w);
                TU_CHILD_CHECK(ctl2 >= 0 && pread(ctl2, id, 16, 16) == 16);
                TU_CHILD_CHECK(fsend(c, buf, sgl_msg_build_area(buf, sizeof(buf), 0, id,
                                                               SGL_AREA_WRITER_PRESENT),
                                     ctl2) == 0);
                close(ctl2);
                TU_CHILD_CHECK(send(p->ctl, "a", 1, 0) == 1);
                TU_CHILD_CHECK(ctl_step(p->ctl) == 'c');
                payload_fill(buf, 3, 0);
                TU_CHILD_CHECK(sgl_writer_write(a.w, 3, 0, buf, payload_size(3, 0), NULL) == 0);
                TU_CHILD_CHECK(sgl_writer_commit(a.w) == 0);
                break;
        }
        case P_CLOSE_THEN_COMMIT:
        case P_AREA_OTHER:
                if (p->push == P_AREA_OTHER) {
                        /* another area's control page: the reader must
                         * refuse it and keep the one it has */
                        uint8_t id[16];
                        int ctl2 = sgl_writer_control_fd(a.other);
                        TU_CHILD_CHECK(ctl2 >= 0 && pread(ctl2, id, 16, 16) == 16);
                        TU_CHILD_CHECK(fsend(c, buf, sgl_msg_build_area(buf, sizeof(buf), 0,
                                                                       id, 1), ctl2) == 0);
                        close(ctl2);
                        TU_CHILD_CHECK(wait_hangup(c) == 0);
                }
                /* the host goes away, the writer lives on and commits */
                close(c);
                TU_CHILD_CHECK(send(p->ctl, "a", 1, 0) == 1);
                TU_CHILD_CHECK(ctl_step(p->ctl) == 'c');
                payload_fill(buf, 3, 0);
                TU_CHILD_CHECK(sgl_writer_write(a.w, 3, 0, buf, payload_size(3, 0), NULL) == 0);
                TU_CHILD_CHECK(sgl_writer_commit(a.w) == 0);
                TU_CHILD_CHECK(send(p->ctl, "d", 1, 0) == 1);
                return 0;
        case P_FLOOD: {
                int sndbuf = 4 << 20;
                struct timeval tv = { .tv_usec = 20000 };
                uint64_t queued = 0;

                /* first a backlog: as many as the socket takes */
                if (setsockopt(c, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)) < 0)
                        (void)setsockopt(c, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
                n = sgl_msg_build_retired(buf, sizeof(buf), 12345);
                TU_CHILD_CHECK(n > 0);
                while (raw_send_fds(c, buf, (size_t)n, NULL, 0, MSG_DONTWAIT) == n)
                        queued++;
                TU_CHILD_CHECK(send(p->ctl, &queued, sizeof(queued), 0) == sizeof(queued));
                /* then as fast as we can, until told to stop */
                TU_CHILD_CHECK(ctl_step(p->ctl) == 'f');
                TU_CHILD_CHECK(setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0);
                for (;;) {
                        struct pollfd cp = { .fd = p->ctl, .events = POLLIN };
                        for (int i = 0; i < 64; i++)
                                (void)raw_send_fds(c, buf, (size_t)n, NULL, 0, 0);
                        if (poll(&cp, 1, 0) == 1)
                                break;
                }
                TU_CHILD_CHECK(ctl_step(p->ctl) == 's');
                break;
        }
        default:
                break;
        }
        TU_CHILD_CHECK(send(p->ctl, "d", 1, 0) == 1);
        TU_CHILD_CHECK(wait_hangup(c) == 0);
        return 0;
}

static void fake_address(char *buf, size_t size) {
        static unsigned counter;
        snprintf(buf, size, "@sigillo-test-fake-%d-%u", (int)getpid(), ++counter);
}

static pid_t fake_host_start(enum scenario sc, enum push push, bool trusted, char *address,
                             int *ctl) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct fparams fp = { .scenario = sc, .push = push, .trusted = trusted };
        socklen_t len;
        int sv[2];
        pid_t pid;

        fake_address(address, 108);
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(address));
        memcpy(sa.sun_path, address, strlen(address));
        sa.sun_path[0] = '\0';
        fp.listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        assert_true(fp.listen_fd >= 0);
        assert_int_equal(bind(fp.listen_fd, (struct sockaddr *)&sa, len), 0);
        assert_int_equal(listen(fp.listen_fd, 4), 0);
        tu_socketpair(sv);
        fp.ctl = sv[1];
        pid = tu_fork(fake_host_main, &fp);
        close(fp.listen_fd);
        close(sv[1]);
        *ctl = sv[0];
        return pid;
}

static void fake_host_open_fails(enum scenario sc, bool trusted, int expect) {
        char address[108];
        sgl_reader *r = NULL;
        unsigned fds;
        int ctl, k;
        pid_t pid;

        pid = fake_host_start(sc, P_NONE, trusted, address, &ctl);
        fds = tu_count_fds();
        k = sgl_reader_open("fake", address, trusted ? SGL_READER_TRUSTED : 0, &r);
        assert_int_equal(k, expect);
        assert_null(r);
        assert_int_equal(tu_count_fds(), fds);
        tu_wait_exit(pid, 0);
        close(ctl);
}

static void fake_host_garbage(void **state) {
        fake_host_open_fails(F_GARBAGE_WELCOME, false, -EPROTO);
        fake_host_open_fails(F_CLOSE, false, -ECONNRESET);
        fake_host_open_fails(F_REQUEST_TYPE, true, -EPROTO);
}

static void fake_host_bad_welcome(void **state) {
        fake_host_open_fails(F_WELCOME_WRONG_SERIAL, false, -EPROTO);
        fake_host_open_fails(F_WELCOME_V2, false, -EPROTO);
        fake_host_open_fails(F_ERROR_HELLO, false, -EACCES);
        fake_host_open_fails(F_ERROR_SERIAL0, false, -EPROTO);
        fake_host_open_fails(F_ERROR_OPEN, true, -ENOENT);
        /* protocol.md section 9: after ECONNRESET, read once more */
        fake_host_open_fails(F_ERROR_OPEN_UNREAD, false, -ENOENT);
}

static void fake_host_bad_area(void **state) {
        fake_host_open_fails(F_AREA_NO_FD, false, -EPROTO);
        fake_host_open_fails(F_AREA_TWO_FDS, false, -EPROTO);
        fake_host_open_fails(F_AREA_253_FDS, true, -EPROTO);
        fake_host_open_fails(F_AREA_OVERSIZED, false, -EPROTO);
        fake_host_open_fails(F_AREA_PIPE, false, -EMEDIUMTYPE);
        fake_host_open_fails(F_AREA_UNSEALED, true, -ENOLCK);
}

static void fake_host_bad_segment(void **state) {
        fake_host_open_fails(F_SEG_UNSEALED, false, -ENOLCK);
        fake_host_open_fails(F_SEG_UNSEALED, true, -ENOLCK);
        fake_host_open_fails(F_SEG_OPEN_FOR_STRICT, false, -EACCES);
        fake_host_open_fails(F_SEG_PIPE, false, -EMEDIUMTYPE);
        fake_host_open_fails(F_SEG_OTHER_AREA, false, -EXDEV);
        fake_host_open_fails(F_SEG_PUSH_BEFORE_SYNCED, false, -EPROTO);
        fake_host_open_fails(F_SYNCED_WRONG_SERIAL, true, -EPROTO);
        fake_host_open_fails(F_CLOSE_BEFORE_SYNCED, false, -ECONNRESET);
}

static void fake_host_repeat_segment(void **state) {
        for (int trusted = 0; trusted < 2; trusted++) {
                uint64_t t0 = mono_ns();
                fake_host_open_fails(F_REPEAT_SEGMENT, trusted, -EPROTO);
                assert_true(mono_ns() - t0 < 5ULL * 1000000000ULL);
        }
}

/* A reader process that opens at a fake host: replies its result, how
 * long it took (ms), and the descriptors it leaked. */
struct opener {
        char address[108];
        int sock;
};

static int opener_main(void *userdata) {
        struct opener *p = userdata;
        sgl_reader *r = NULL;
        uint64_t t0;
        unsigned fds;
        int k;

        close_others(p->sock);
        fds = tu_count_fds();
        t0 = mono_ns();
        k = sgl_reader_open("fake", p->address, 0, &r);
        TU_CHILD_CHECK(child_send(p->sock, k, (mono_ns() - t0) / 1000000,
                                  tu_count_fds() - fds, 0, 0, 0, 0) == 0);
        sgl_reader_unref(r);
        return 0;
}

/* Silence, and side by side (both take the 5 s deadline) a host that
 * trickles SEGMENTs (fake_host_trickle in the list above). */
static void fake_host_silence(void **state) {
        struct opener op = { 0 };
        struct proc trickler;
        uint64_t t0 = mono_ns();
        struct rep r;
        pid_t host;
        int ctl;

        host = fake_host_start(F_TRICKLE, P_NONE, false, op.address, &ctl);
        trickler = start_proc(opener_main, &op, &op.sock);

        fake_host_open_fails(F_SILENCE, false, -ETIMEDOUT);
        assert_true(mono_ns() - t0 < 8ULL * 1000000000ULL);

        r = cmd_wait(&trickler);
        print_message("a trickling host was given up after %" PRIu64 " ms\n", r.v[0]);
        assert_int_equal(r.ret, -ETIMEDOUT);
        assert_true(r.v[0] >= 4500 && r.v[0] < 7000);
        assert_int_equal(r.v[1], 0);
        tu_wait_exit(trickler.pid, 0);
        close(trickler.sock);
        tu_wait_exit(host, 0);
        close(ctl);
}

/* One sgl_reader_next() and one sgl_reader_process() (which always takes
 * pushes; next() only now and then on an idle area) while the host floods:
 * -EAGAIN and 0 (RETIRED pushes of an unknown seq add nothing) in bounded
 * time; returns the time they took. */
#define FLOOD_CALL_MAX_NS (100ULL * 1000000ULL)
static uint64_t next_in_flood(sgl_reader *r) {
        sgl_chunk *x = NULL;
        uint64_t t0 = mono_ns(), dt;
        int k = sgl_reader_next(r, &x);

        assert_int_equal(k, -EAGAIN);
        assert_null(x);
        assert_int_equal(sgl_reader_process(r), 0);
        dt = mono_ns() - t0;
        if (dt >= FLOOD_CALL_MAX_NS)
                fail_msg("sgl_reader_next() took %" PRIu64 " ms in a flood", dt / 1000000);
        return dt;
}

static void flood_checks(sgl_reader *r, int ctl, struct pollfd *pfd) {
        uint64_t queued, calls, max = 0, end;
        char c;

        assert_int_equal(recv(ctl, &queued, sizeof(queued), 0), sizeof(queued));
        assert_true(queued >= 256);
        assert_int_equal(poll(pfd, 1, 5000), 1);
        /* one call takes some of the backlog, not all of it: the fd stays
         * readable for the rest */
        max = next_in_flood(r);
        assert_int_equal(poll(pfd, 1, 0), 1);
        for (calls = 1; poll(pfd, 1, 0) == 1; calls++) {
                uint64_t dt = next_in_flood(r);
                assert_true(calls < queued); /* each takes at least one */
                max = dt > max ? dt : max;
        }
        print_message("%" PRIu64 " queued pushes took %" PRIu64 " calls\n", queued, calls);

        /* a flood that goes on: every call still returns */
        assert_int_equal(send(ctl, "f", 1, 0), 1);
        end = mono_ns() + 500000000ULL;
        for (calls = 0; mono_ns() < end; calls++) {
                uint64_t dt = next_in_flood(r);
                max = dt > max ? dt : max;
                (void)poll(pfd, 1, 5);
        }
        assert_true(calls >= 10);
        print_message("%" PRIu64 " calls in a 0.5 s flood, slowest %" PRIu64 " us\n", calls,
                      max / 1000);
        assert_int_equal(send(ctl, "s", 1, 0), 1);
        assert_int_equal(recv(ctl, &c, 1, 0), 1);
        assert_int_equal(c, 'd');
        /* what is left drains, the connection stays up, the fd quiets */
        for (calls = 0; poll(pfd, 1, 0) == 1; calls++) {
                assert_true(calls < 1000000);
                (void)next_in_flood(r);
        }
        assert_int_equal(sgl_reader_process(r), 0);
        assert_int_equal(poll(pfd, 1, 100), 0);
}

/* A good open, then a hostile push. */
static void fake_host_push(enum push push, bool trusted, int expect) {
        char address[108], c;
        sgl_reader *r = NULL;
        sgl_chunk *held = NULL, *x = NULL;
        struct pollfd pfd = { .events = POLLIN };
        unsigned fds;
        uint32_t gen;
        int ctl;
        pid_t pid;

        pid = fake_host_start(F_GOOD, push, trusted, address, &ctl);
        fds = tu_count_fds();
        assert_int_equal(sgl_reader_open("fake", address, trusted ? SGL_READER_TRUSTED : 0, &r), 0);
        assert_int_equal(sgl_reader_next(r, &held), 0);
        assert_int_equal(sgl_chunk_id(held), 1);
        if (trusted) {
                assert_int_equal(sgl_reader_next(r, &x), 0);
                assert_int_equal(sgl_chunk_id(x), 2);
                assert_true(payload_ok(x, &gen));
                x = sgl_chunk_unref(x);
        }
        assert_int_equal(sgl_reader_next(r, &x), -EAGAIN);
        pfd.fd = sgl_reader_get_fd(r);
        assert_true(pfd.fd >= 0);
        assert_int_equal(poll(&pfd, 1, 100), 0);

        assert_int_equal(send(ctl, "p", 1, 0), 1);
        if (push == P_FLOOD) {
                flood_checks(r, ctl, &pfd);
        } else if (push == P_AREA) {
                assert_int_equal(recv(ctl, &c, 1, 0), 1);
                assert_int_equal(c, 'a');
                assert_int_equal(poll(&pfd, 1, 5000), 1);
                /* a new control page replaces the old one: no crash, even
                 * with the watcher thread waiting on the old one */
                assert_int_equal(sgl_reader_process(r), 0);
                usleep(300000);
                assert_int_equal(sgl_reader_process(r), 0);
                assert_int_equal(sgl_reader_next(r, &x), -EAGAIN);
                /* the writer commits: the fd still fires */
                assert_int_equal(send(ctl, "c", 1, 0), 1);
                assert_int_equal(recv(ctl, &c, 1, 0), 1);
                assert_int_equal(c, 'd');
                assert_int_equal(poll(&pfd, 1, 5000), 1);
                assert_int_equal(sgl_reader_process(r), 0);
                assert_int_equal(sgl_reader_next(r, &x), 0);
                assert_int_equal(sgl_chunk_id(x), 3);
                assert_true(payload_ok(x, &gen));
                x = sgl_chunk_unref(x);
        } else if (push == P_CLOSE_THEN_COMMIT || push == P_AREA_OTHER) {
                if (push == P_AREA_OTHER) {
                        assert_int_equal(poll(&pfd, 1, 5000), 1);
                        assert_int_equal(sgl_reader_process(r), expect);
                }
                assert_int_equal(recv(ctl, &c, 1, 0), 1);
                assert_int_equal(c, 'a');
                if (push == P_CLOSE_THEN_COMMIT) {
                        assert_int_equal(poll(&pfd, 1, 5000), 1);
                        assert_int_equal(sgl_reader_process(r), -ECONNRESET);
                }
                assert_int_equal(sgl_reader_process(r), 0);
                assert_int_equal(poll(&pfd, 1, 150), 0);
                /* the watcher still reports commits into the open segment,
                 * and sgl_reader_process() still quiets the fd after one */
                assert_int_equal(send(ctl, "c", 1, 0), 1);
                assert_int_equal(recv(ctl, &c, 1, 0), 1);
                assert_int_equal(c, 'd');
                assert_int_equal(poll(&pfd, 1, 5000), 1);
                assert_int_equal(sgl_reader_process(r), 0);
                assert_int_equal(sgl_reader_next(r, &x), 0);
                assert_int_equal(sgl_chunk_id(x), 3);
                assert_true(payload_ok(x, &gen));
                x = sgl_chunk_unref(x);
                assert_int_equal(poll(&pfd, 1, 150), 0);
        } else {
                assert_int_equal(recv(ctl, &c, 1, 0), 1);
                assert_int_equal(c, 'd');
                assert_int_equal(poll(&pfd, 1, 5000), 1);
                assert_int_equal(sgl_reader_process(r), expect);
                assert_int_equal(sgl_reader_process(r), 0); /* reported once */
                assert_int_equal(poll(&pfd, 1, 100), 0);
        }
        /* what was mapped stays readable */
        assert_true(payload_ok(held, &gen));
        assert_int_equal(sgl_reader_get(r, 1, &x), 0);
        assert_true(payload_ok(x, &gen));
        x = sgl_chunk_unref(x);
        held = sgl_chunk_unref(held);
        r = sgl_reader_unref(r);
        assert_int_equal(tu_count_fds(), fds);
        tu_wait_exit(pid, 0);
        close(ctl);
}

static void fake_host_push_garbage(void **state) {
        fake_host_push(P_GARBAGE, false, -EPROTO);
        fake_host_push(P_GARBAGE, true, -EPROTO);
}

static void fake_host_push_bad_segment(void **state) {
        fake_host_push(P_BAD_SEGMENT, false, -EMEDIUMTYPE);
}

static void fake_host_push_area_trusted(void **state) {
        fake_host_push(P_AREA, true, 0);
}

static void fake_host_gone_writer_commits(void **state) {
        fake_host_push(P_CLOSE_THEN_COMMIT, true, 0);
}

static void fake_host_push_area_other(void **state) {
        fake_host_push(P_AREA_OTHER, true, -EXDEV);
}

static void fake_host_push_flood(void **state) {
        fake_host_push(P_FLOOD, false, 0);
}

int main(void) {
        const struct CMUnitTest host_tests[] = {
                cmocka_unit_test(host_answers_raw_client),
                cmocka_unit_test(garbage_frames),
                cmocka_unit_test(truncated_oversized_wrong_length),
                cmocka_unit_test(hello_bad_versions),
                cmocka_unit_test(requests_out_of_state),
                cmocka_unit_test(msg_ctrunc),
                cmocka_unit_test(fds_on_messages_without_fds),
                cmocka_unit_test(flood_253_fds),
                cmocka_unit_test(ten_thousand_connections),
                cmocka_unit_test(idle_connections),
                cmocka_unit_test(open_and_never_read),
                cmocka_unit_test(stranger_cannot_lock_out_owner),
                cmocka_unit_test(silent_connection_dropped),
        };
        const struct CMUnitTest client_tests[] = {
                cmocka_unit_test(fake_host_garbage),
                cmocka_unit_test(fake_host_bad_welcome),
                cmocka_unit_test(fake_host_bad_area),
                cmocka_unit_test(fake_host_bad_segment),
                cmocka_unit_test(fake_host_silence),
                cmocka_unit_test(fake_host_repeat_segment),
                cmocka_unit_test(fake_host_push_garbage),
                cmocka_unit_test(fake_host_push_bad_segment),
                cmocka_unit_test(fake_host_push_area_trusted),
                cmocka_unit_test(fake_host_gone_writer_commits),
                cmocka_unit_test(fake_host_push_area_other),
                cmocka_unit_test(fake_host_push_flood),
        };
        struct rlimit rl;
        int failed;

        /* the attacker wants more descriptors than the writer may have */
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096 &&
            rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
                (void)setrlimit(RLIMIT_NOFILE, &rl);
        }
        signal(SIGPIPE, SIG_IGN);
        tu_watchdog(60);
        failed = cmocka_run_group_tests_name("hostile clients vs the embedded host", host_tests,
                                             group_setup, group_teardown);
        failed += cmocka_run_group_tests_name("a hostile host vs the client", client_tests,
                                              NULL, NULL);
        return failed;
}
