/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-daemon-hostile.c - sigillod against hostile clients.  The real
 * daemon binary runs (fork+exec, a socket in a fresh directory; $SIGILLOD
 * or SIGILLOD_PATH), next to one legitimate writer (a child process using
 * sgl_writer_publish(), one commit per sealed segment) and one legitimate
 * STRICT reader (a child using sgl_reader_open()).  After every hostile
 * phase the writer commits more chunks and the reader must get every one,
 * byte-exact (count and an order-independent hash of (id, generation)),
 * the daemon must still be running, and its descriptor count (entries of
 * /proc/PID/fd) must return to exactly its baseline plus what the
 * legitimate area holds (its two connections, control page and live
 * segments, as STAT reports them).  At the end the daemon is stopped with
 * SIGTERM and must exit 0 (a sanitizer build of it also proves it leaked
 * nothing).
 *
 * What it proves, per test:
 *  - garbage: random bytes, short and 4096-byte datagrams, datagrams longer
 *    than 4096 (MSG_TRUNC), empty datagrams, valid headers with a wrong
 *    length or flags, reply types sent as requests, requests in the wrong
 *    state or role, serial 0: each connection is closed, after an ERROR
 *    with serial 0 of -EBADMSG (malformed) or -EPROTO (not allowed).
 *  - stray_descriptors: descriptors on HELLO (closed: -EBADMSG), and on PING,
 *    LIST and OPEN after a reader's or query's HELLO (refused by the kernel at
 *    the sender where SO_PASSRIGHTS exists, else closed), two or
 *    three on a PUBLISH_CONTROL (the second MSG_CTRUNC), a control message
 *    other than SCM_RIGHTS (SCM_CREDENTIALS), and floods of messages each
 *    carrying 253 descriptors over 300 connections: every connection is
 *    closed, no descriptor stays in the daemon.
 *  - bad_segments: on PUBLISH_SEGMENT after a valid CLAIM and control page,
 *    a pipe, a socket, /dev/zero, a file on disk, an eventfd, a directory,
 *    an O_PATH descriptor, an unsealed memfd, a memfd sealed SHRINK only,
 *    one without WRITE or FUTURE_WRITE, one announced SEALED with only
 *    FUTURE_WRITE, a writable description, an executable memfd, a sparse
 *    one, headers with another area id, another seq, another size, a bad
 *    magic: each gets ERROR -EBADF and the connection closes (its area
 *    with it); bad control pages likewise; a good segment on the same path
 *    is accepted (the harness is not simply always wrong); seq rules
 *    (OPENED twice, SEALED over SEALED, backwards, RETIRE of an unknown
 *    seq, PUBLISH_SEGMENT before the control page) get -EPROTO.
 *  - connection_churn: 10,000 connections opened and dropped (in waves of
 *    40: some say nothing, some HELLO and leave, some leave mid-request);
 *    and (as root) uid 65534 opening 200 at once is held to its quota of
 *    64 (the rest -EDQUOT) without touching root's service; a connection
 *    that never says HELLO is closed after the HELLO timeout.
 *  - never_read: 20 subscribed readers that never read and a client
 *    flooding PINGs without reading are disconnected once their queues
 *    are full (--limit pending-per-conn=64), while the writer's 600
 *    commits all go through and the legitimate reader gets every one.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sigillo.h"
#include "internal.h"
#include "fdpass.h"
#include "memfd.h"
#include "protocol.h"
#include "segment.h"
#include "test-util.h"
#include "test-sigillod.h"


#define NOBODY 65534
#define LEGIT "legit"
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif

/* ------------------------------------------------------------ payloads */

#define PAYLOAD_HDR 16
#define MAX_IDS 8192

static size_t payload_size(uint64_t id) {
        return PAYLOAD_HDR + (size_t)((id * 131) % 2000);
}

static void payload_fill(uint8_t *p, uint64_t id) {
        uint32_t len = (uint32_t)payload_size(id), gen = 0;

        memcpy(p, &id, 8);
        memcpy(p + 8, &gen, 4);
        memcpy(p + 12, &len, 4);
        tu_fill_pattern(p + PAYLOAD_HDR, len - PAYLOAD_HDR, id);
}

static bool payload_ok(const sgl_chunk *c) {
        static uint8_t want[PAYLOAD_HDR + 2000];
        const uint8_t *p = sgl_chunk_data(c);
        size_t size = sgl_chunk_size(c);
        uint64_t id = sgl_chunk_id(c);

        if (!p || id == 0 || id >= MAX_IDS || size != payload_size(id))
                return false;
        payload_fill(want, id);
        return memcmp(want, p, size) == 0;
}

static uint64_t item_hash(uint64_t id) {
        return tu_fnv1a64(&id, sizeof(id));
}

static uint64_t range_hash(uint64_t first, uint64_t last) {
        uint64_t h = 0;

        for (uint64_t id = first; id <= last; id++)
                h += item_hash(id);
        return h;
}

static void close_others(int keep) {
        if (keep > 3)
                close_range(3, (unsigned)keep - 1, 0);
        close_range((unsigned)keep + 1, ~0U, 0);
}

/* ------------------------------------------------------------ the daemon */


static void daemon_alive(const struct daemon *dm) {
        assert_int_equal(waitpid(dm->pid, NULL, WNOHANG), 0);
}

/* --------------------------------------------------- raw protocol client */

static int raw_connect(const char *address) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return -errno;
        strncpy(sa.sun_path, address, sizeof(sa.sun_path) - 1);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int k = -errno;
                close(fd);
                return k;
        }
        return fd;
}

static int send_fds(int sock, const void *buf, size_t len, const int *fds, size_t nfds) {
        ssize_t n = sgl_fdpass_send(sock, buf, len, fds, nfds);
        return n < 0 ? (int)n : 0;
}

/* One message (with at most one descriptor, closed here); Linux reports
 * ECONNRESET once before queued messages when the daemon closed with our
 * requests unread, so that is retried. */
static int recv_msg(int sock, struct sgl_msg *m, uint8_t *buf, int timeout_ms) {
        for (int tries = 0; tries < 2; tries++) {
                struct pollfd p = { .fd = sock, .events = POLLIN };
                int fds[1];
                size_t nfds = 0;
                ssize_t n;
                int k;

                k = poll(&p, 1, timeout_ms);
                if (k <= 0)
                        return k < 0 ? -errno : -ETIMEDOUT;
                n = sgl_fdpass_recv(sock, buf, SGL_MSG_MAX_SIZE, fds, 1, &nfds);
                if (n == -ECONNRESET)
                        continue;
                if (n == 0)
                        return -ECONNRESET;
                if (n < 0)
                        return (int)n;
                if (nfds)
                        close(fds[0]);
                return sgl_msg_parse(buf, (size_t)n, nfds, m);
        }
        return -ECONNRESET;
}

/* Reads until the daemon closes; returns the last ERROR with serial 0
 * (0 if none) or -ETIMEDOUT if it does not close. */
static int expect_close(int sock) {
        uint8_t buf[SGL_MSG_MAX_SIZE];
        struct sgl_msg m;
        int last = 0;

        for (;;) {
                int k = recv_msg(sock, &m, buf, 5000);

                if (k == -ETIMEDOUT)
                        return k;
                if (k < 0)
                        return last;
                if (m.type == SGL_MSG_ERROR && m.serial == 0)
                        last = m.error.error;
        }
}

static int hello(int sock, uint32_t role) {
        uint8_t buf[SGL_MSG_MAX_SIZE];
        struct sgl_msg m;
        ssize_t n = sgl_msg_build_hello(buf, sizeof(buf), 1, 1, 1, role);
        int k;

        k = send_fds(sock, buf, (size_t)n, NULL, 0);
        if (k >= 0)
                k = recv_msg(sock, &m, buf, 5000);
        if (k < 0)
                return k;
        if (m.type == SGL_MSG_ERROR)
                return m.error.error;
        return m.type == SGL_MSG_WELCOME ? 0 : -EPROTO;
}

/* ----------------------------------------------- legit writer and reader */

enum {
        W_COMMIT = 1,    /* a first id, b count */
        R_COLLECT = 100, /* a count, b timeout ms -> v0 count, v1 hash, v2 bad */
        X_EXIT = 200,
};

struct cmd {
        uint32_t op;
        uint32_t pad;
        uint64_t a, b;
};

struct rep {
        int64_t ret;
        uint64_t v[3];
};

struct proc {
        pid_t pid;
        int sock;
        int64_t ret;
};

struct params {
        const char *address;
        int sock;
};

static int child_send(int sock, int64_t ret, uint64_t v0, uint64_t v1, uint64_t v2) {
        struct rep r = { ret, { v0, v1, v2 } };
        return send(sock, &r, sizeof(r), MSG_NOSIGNAL) == (ssize_t)sizeof(r) ? 0 : -1;
}

static void cmd_post(const struct proc *p, uint32_t op, uint64_t a, uint64_t b) {
        struct cmd m = { .op = op, .a = a, .b = b };

        assert_int_equal(send(p->sock, &m, sizeof(m), MSG_NOSIGNAL), sizeof(m));
}

static struct rep cmd_wait(const struct proc *p) {
        struct pollfd pfd = { .fd = p->sock, .events = POLLIN };
        struct rep r;

        assert_int_equal(poll(&pfd, 1, 20000), 1);
        assert_int_equal(recv(p->sock, &r, sizeof(r), 0), sizeof(r));
        return r;
}

static struct rep cmd_call(const struct proc *p, uint32_t op, uint64_t a, uint64_t b) {
        cmd_post(p, op, a, b);
        return cmd_wait(p);
}

static struct proc spawn(tu_child_fn fn, struct params *params) {
        struct pollfd pfd;
        struct proc p;
        struct rep r;
        int sv[2];

        tu_socketpair(sv);
        params->sock = sv[1];
        p.pid = tu_fork(fn, params);
        close(sv[1]);
        p.sock = sv[0];
        pfd = (struct pollfd) { .fd = p.sock, .events = POLLIN };
        assert_int_equal(poll(&pfd, 1, 20000), 1);
        assert_int_equal(recv(p.sock, &r, sizeof(r), 0), sizeof(r));
        p.ret = r.ret;
        return p;
}

static void stop(struct proc *p) {
        assert_int_equal(cmd_call(p, X_EXIT, 0, 0).ret, 0);
        tu_wait_exit(p->pid, 0);
        close(p->sock);
}

static int writer_main(void *userdata) {
        struct params *p = userdata;
        uint8_t *buf = malloc(PAYLOAD_HDR + 2000);
        sgl_writer *w = NULL;
        int k;

        close_others(p->sock);
        TU_CHILD_CHECK(buf);
        k = sgl_writer_new(LEGIT, 0, &w);
        if (k == 0) /* no compaction: one live segment per commit */
                k = sgl_writer_set_gc(w, 0, 0, 0);
        if (k == 0)
                k = sgl_writer_publish(w, LEGIT, p->address, 0, 0444, NULL, 0, NULL, 0);
        TU_CHILD_CHECK(child_send(p->sock, k, 0, 0, 0) == 0);
        TU_CHILD_CHECK(k == 0);
        for (;;) {
                struct cmd m;
                ssize_t n = recv(p->sock, &m, sizeof(m), 0);
                uint64_t t0 = daemon_now_ms();

                TU_CHILD_CHECK(n == (ssize_t)sizeof(m));
                if (m.op == X_EXIT) {
                        sgl_writer_unref(w);
                        free(buf);
                        TU_CHILD_CHECK(child_send(p->sock, 0, 0, 0, 0) == 0);
                        return 0;
                }
                TU_CHILD_CHECK(m.op == W_COMMIT);
                k = 0;
                for (uint64_t id = m.a; id < m.a + m.b && k >= 0; id++) {
                        payload_fill(buf, id);
                        k = sgl_writer_write(w, id, 0, buf, payload_size(id), NULL);
                        if (k >= 0)
                                k = sgl_writer_commit(w);
                        if (k >= 0)
                                k = sgl_writer_publish_process(w);
                }
                /* v0: how long the commits took */
                TU_CHILD_CHECK(child_send(p->sock, k < 0 ? k : 0, daemon_now_ms() - t0, 0, 0) == 0);
        }
}

static int reader_main(void *userdata) {
        struct params *p = userdata;
        uint64_t count = 0, hash = 0, bad = 0;
        sgl_reader *r = NULL;
        int k, fd = -1;

        close_others(p->sock);
        k = sgl_reader_open(LEGIT, p->address, 0, &r);
        if (k == 0)
                fd = sgl_reader_get_fd(r);
        TU_CHILD_CHECK(child_send(p->sock, k, 0, 0, 0) == 0);
        TU_CHILD_CHECK(k == 0 && fd >= 0);
        for (;;) {
                struct cmd m;
                ssize_t n = recv(p->sock, &m, sizeof(m), 0);
                uint64_t deadline;
                int64_t err = 0;

                TU_CHILD_CHECK(n == (ssize_t)sizeof(m));
                if (m.op == X_EXIT) {
                        sgl_reader_unref(r);
                        TU_CHILD_CHECK(child_send(p->sock, 0, 0, 0, 0) == 0);
                        return 0;
                }
                TU_CHILD_CHECK(m.op == R_COLLECT);
                deadline = daemon_now_ms() + m.b;
                for (;;) {
                        struct pollfd pfd = { .fd = fd, .events = POLLIN };
                        sgl_chunk *c;

                        k = sgl_reader_process(r);
                        if (k < 0 && !err)
                                err = k;
                        while (sgl_reader_next(r, &c) == 0) {
                                if (payload_ok(c)) {
                                        count++;
                                        hash += item_hash(sgl_chunk_id(c));
                                } else {
                                        bad++;
                                }
                                sgl_chunk_unref(c);
                        }
                        if (count >= m.a || daemon_now_ms() >= deadline)
                                break;
                        poll(&pfd, 1, 20);
                }
                TU_CHILD_CHECK(child_send(p->sock, err, count, hash, bad) == 0);
        }
}

struct legit {
        struct params wp, rp;
        struct proc w, r;
        uint64_t committed;
};

static void legit_start(struct legit *l, const struct daemon *dm) {
        memset(l, 0, sizeof(*l));
        l->wp.address = l->rp.address = dm->sock;
        l->w = spawn(writer_main, &l->wp);
        assert_int_equal(l->w.ret, 0);
        l->r = spawn(reader_main, &l->rp);
        assert_int_equal(l->r.ret, 0);
}

/* The writer commits @n more while the reader reads; the reader must get
 * all, byte-exact.  Returns how long the commits took (ms). */
static uint64_t legit_round(struct legit *l, uint64_t n) {
        struct rep rep;
        uint64_t took;

        cmd_post(&l->r, R_COLLECT, l->committed + n, 15000);
        rep = cmd_call(&l->w, W_COMMIT, l->committed + 1, n);
        assert_int_equal(rep.ret, 0);
        took = rep.v[0];
        l->committed += n;
        rep = cmd_wait(&l->r);
        assert_int_equal(rep.ret, 0);
        assert_int_equal(rep.v[2], 0);
        assert_int_equal(rep.v[0], l->committed);
        assert_int_equal(rep.v[1], range_hash(1, l->committed));
        return took;
}

static void legit_stop(struct legit *l) {
        stop(&l->r);
        stop(&l->w);
}

/* STAT's live segment count of an area, or -errno. */
static int64_t stat_segments(const char *address, const char *name) {
        uint8_t buf[SGL_MSG_MAX_SIZE];
        struct sgl_msg m;
        int64_t segs = -ENOENT;
        int s = raw_connect(address), k;

        assert_true(s >= 0);
        assert_int_equal(hello(s, SGL_ROLE_QUERY), 0);
        k = send_fds(s, buf, (size_t)sgl_msg_build_stat(buf, sizeof(buf), 2, name, strlen(name)),
                     NULL, 0);
        assert_int_equal(k, 0);
        for (;;) {
                k = recv_msg(s, &m, buf, 5000);
                assert_int_equal(k, 0);
                if (m.type == SGL_MSG_ERROR) {
                        segs = m.error.error;
                        break;
                }
                if (m.type == SGL_MSG_AREA_INFO)
                        segs = (int64_t)m.area_info.segments;
                if (m.type == SGL_MSG_END)
                        break;
        }
        close(s);
        return segs;
}

/* Everything back to normal: the legitimate pair is served, and the daemon
 * holds its baseline plus the legit area (2 connections, the control page,
 * its live segments). */
static void check_health(const struct daemon *dm, struct legit *l) {
        daemon_alive(dm);
        legit_round(l, 5);
        /* one sealed segment per commit, none retired */
        daemon_wait_fds(dm, dm->base + 3 + (unsigned)l->committed);
        /* (STAT answers with a message per segment: it must fit the queue) */
        if (l->committed < 50)
                assert_int_equal(stat_segments(dm->sock, LEGIT), l->committed);
}

/* ------------------------------------------------- building descriptors */

static const uint8_t no_id[SGL_MSG_AREA_ID_LEN];

/* A control page of @area_id: read-only description, FUTURE_WRITE. */
static int make_control(const uint8_t *area_id, uint64_t magic, uint64_t size) {
        struct sgl_ctl_page c = { .magic = magic, .version = SGL_FORMAT_VERSION };
        int fd = sgl_memfd_create("hostile-ctl", size), ro;

        assert_true(fd >= 0);
        memcpy(c.area_id, area_id, sizeof(c.area_id));
        assert_int_equal(pwrite(fd, &c, sizeof(c), 0), sizeof(c));
        assert_int_equal(sgl_memfd_seal_future_write(fd), 0);
        ro = sgl_memfd_reopen_ro(fd);
        assert_true(ro >= 0);
        close(fd);
        return ro;
}

enum {
        SEG_SEAL_WRITE = 1u << 0,   /* F_SEAL_WRITE (else FUTURE_WRITE) */
        SEG_RW = 1u << 1,           /* hand out the writable description */
        SEG_NO_WSEAL = 1u << 2,     /* neither WRITE nor FUTURE_WRITE */
};

static void write_header(int fd, const uint8_t *area_id, uint64_t seq, uint64_t size,
                         uint64_t magic) {
        struct sgl_seg_header h = {
                .magic = magic, .version = SGL_FORMAT_VERSION,
                .header_size = sizeof(h), .seq = seq, .size = size, .commit_end = SGL_SEG_DATA,
        };

        memcpy(h.area_id, area_id, sizeof(h.area_id));
        assert_int_equal(pwrite(fd, &h, sizeof(h), 0), sizeof(h));
}

/* A segment as a writer makes it (no commit in it), or broken as asked. */
static int make_segment(const uint8_t *area_id, uint64_t seq, uint64_t size,
                        uint64_t hdr_size, uint64_t magic, unsigned how) {
        int fd = sgl_memfd_create("hostile-seg", size), ro;

        assert_true(fd >= 0);
        write_header(fd, area_id, seq, hdr_size, magic);
        if (how & SEG_SEAL_WRITE)
                assert_int_equal(sgl_memfd_seal_write(fd), 0);
        else if (!(how & SEG_NO_WSEAL))
                assert_int_equal(sgl_memfd_seal_future_write(fd), 0);
        if (how & SEG_RW)
                return fd;
        ro = sgl_memfd_reopen_ro(fd);
        assert_true(ro >= 0);
        close(fd);
        return ro;
}

/* A memfd sealed with exactly @seals (no fallocate when @sparse). */
static int make_raw_memfd(const uint8_t *area_id, uint64_t seq, int seals, bool sparse,
                          unsigned mfd_flags) {
        int fd = memfd_create("hostile-raw", MFD_CLOEXEC | MFD_ALLOW_SEALING | mfd_flags), ro;

        if (fd < 0 && errno == EINVAL && mfd_flags) /* no MFD_NOEXEC_SEAL before 6.3 */
                fd = memfd_create("hostile-raw", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        assert_int_equal(ftruncate(fd, 8192), 0);
        if (!sparse)
                assert_int_equal(fallocate(fd, 0, 0, 8192), 0);
        write_header(fd, area_id, seq, 8192, SGL_SEG_MAGIC);
        if (seals)
                assert_int_equal(fcntl(fd, F_ADD_SEALS, seals), 0);
        ro = sgl_memfd_reopen_ro(fd);
        assert_true(ro >= 0);
        close(fd);
        return ro;
}

/* A writer connection: HELLO, CLAIM @name, and (if @control) a good
 * control page.  Returns the socket and the area id. */
static int writer_conn(const char *address, const char *name, bool control,
                       uint8_t area_id[SGL_MSG_AREA_ID_LEN]) {
        uint8_t buf[SGL_MSG_MAX_SIZE];
        struct sgl_msg m;
        int s = raw_connect(address), k;

        assert_true(s >= 0);
        assert_int_equal(hello(s, SGL_ROLE_WRITER), 0);
        k = send_fds(s, buf, (size_t)sgl_msg_build_claim(buf, sizeof(buf), 2, 0, 0444, NULL, 0,
                                                          NULL, 0, name, strlen(name)), NULL, 0);
        assert_int_equal(k, 0);
        assert_int_equal(recv_msg(s, &m, buf, 5000), 0);
        assert_int_equal(m.type, SGL_MSG_CLAIMED);
        memcpy(area_id, m.claimed.area_id, SGL_MSG_AREA_ID_LEN);
        if (control) {
                int ctl = make_control(area_id, SGL_CTL_MAGIC, SGL_PAGE);
                ssize_t n = sgl_msg_build_publish_control(buf, sizeof(buf), 3);

                assert_int_equal(send_fds(s, buf, (size_t)n, &ctl, 1), 0);
                close(ctl);
        }
        return s;
}

static int publish(int s, uint64_t seq, uint32_t event, int fd) {
        uint8_t buf[64];
        ssize_t n = sgl_msg_build_publish_segment(buf, sizeof(buf), 9, seq, event);
        int k = send_fds(s, buf, (size_t)n, &fd, fd >= 0 ? 1 : 0);

        if (fd >= 0)
                close(fd);
        return k;
}

static int ping(int s) {
        uint8_t buf[SGL_MSG_MAX_SIZE];
        struct sgl_msg m;
        int k = send_fds(s, buf, (size_t)sgl_msg_build_ping(buf, sizeof(buf), 77), NULL, 0);

        if (k < 0)
                return k;
        k = recv_msg(s, &m, buf, 5000);
        if (k < 0)
                return k;
        if (m.type == SGL_MSG_ERROR)
                return m.error.error;
        return m.type == SGL_MSG_OK ? 0 : -EPROTO;
}

/* ----------------------------------------------------------------- tests */

static void garbage(void **state) {
        struct daemon dm;
        struct legit l;
        uint8_t buf[8192];
        uint64_t seed = 1;

        (void)state;
        daemon_init(&dm);
        daemon_start(&dm, NULL);
        dm.base = daemon_baseline(&dm);
        legit_start(&l, &dm);
        legit_round(&l, 5);

        /* random bytes, random lengths */
        for (int i = 0; i < 200; i++) {
                int s = raw_connect(dm.sock);
                size_t len = 1 + (size_t)(tu_fnv1a64(&seed, 8) % 4096);

                assert_true(s >= 0);
                tu_fill_pattern(buf, len, seed++);
                if (i % 3 == 0) /* a plausible header, then garbage */
                        sgl_put_le32(buf + 4, (uint32_t)len), buf[2] = buf[3] = 0;
                assert_int_equal(send_fds(s, buf, len, NULL, 0), 0);
                assert_int_equal(expect_close(s), -EBADMSG);
                close(s);
        }
        /* too long for the daemon's buffer: MSG_TRUNC */
        {
                int s = raw_connect(dm.sock);
                ssize_t n = sgl_msg_build_hello(buf, sizeof(buf), 1, 1, 1, SGL_ROLE_READER);

                assert_true(n > 0);
                memset(buf + n, 0, sizeof(buf) - (size_t)n);
                sgl_put_le32(buf + 4, 5000);
                assert_int_equal(send_fds(s, buf, 5000, NULL, 0), 0);
                assert_int_equal(expect_close(s), -EBADMSG);
                close(s);
        }
        /* an empty datagram reads as end of file: just closed */
        {
                int s = raw_connect(dm.sock);

                assert_int_equal(send(s, buf, 0, 0), 0);
                assert_int_equal(expect_close(s), 0);
                close(s);
        }
        /* well-formed messages that are not allowed: -EPROTO */
        {
                static const struct {
                        uint32_t role;   /* 0: no HELLO first */
                        int what;
                } cases[] = {
                        { 0, 1 },                /* OPEN before HELLO */
                        { SGL_ROLE_READER, 2 },  /* CLAIM as a reader */
                        { SGL_ROLE_WRITER, 3 },  /* PUBLISH_SEGMENT before CLAIM */
                        { SGL_ROLE_QUERY, 1 },   /* OPEN as a query */
                        { SGL_ROLE_WRITER, 4 },  /* RETIRE before CLAIM */
                        { SGL_ROLE_READER, 5 },  /* a second HELLO */
                        { SGL_ROLE_WRITER, 6 },  /* RELEASE without a lease */
                };
                for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                        int s = raw_connect(dm.sock), fd = -1;
                        ssize_t n = 0;

                        if (cases[i].role)
                                assert_int_equal(hello(s, cases[i].role), 0);
                        switch (cases[i].what) {
                        case 1:
                                n = sgl_msg_build_open(buf, sizeof(buf), 5, 0, LEGIT, 5);
                                break;
                        case 2:
                                n = sgl_msg_build_claim(buf, sizeof(buf), 5, 0, 0444, NULL, 0, NULL, 0, "x", 1);
                                break;
                        case 3:
                                n = sgl_msg_build_publish_segment(buf, sizeof(buf), 5, 1, SGL_MSG_EVENT_SEALED);
                                fd = make_segment(no_id, 1, 8192, 8192, SGL_SEG_MAGIC, SEG_SEAL_WRITE);
                                break;
                        case 4:
                                n = sgl_msg_build_retire(buf, sizeof(buf), 5, 1);
                                break;
                        case 5:
                                n = sgl_msg_build_hello(buf, sizeof(buf), 5, 1, 1, SGL_ROLE_READER);
                                break;
                        case 6:
                                n = sgl_msg_build_release(buf, sizeof(buf), 5, 0);
                                break;
                        }
                        assert_true(n > 0);
                        assert_int_equal(send_fds(s, buf, (size_t)n, &fd, fd >= 0), 0);
                        sgl_close(fd);
                        assert_int_equal(expect_close(s), -EPROTO);
                        close(s);
                }
        }
        /* malformed ones: -EBADMSG */
        for (int what = 0; what < 6; what++) {
                int s = raw_connect(dm.sock);
                ssize_t n = sgl_msg_build_hello(buf, sizeof(buf), 1, 1, 1, SGL_ROLE_READER);

                if (what >= 3)
                        assert_int_equal(hello(s, SGL_ROLE_READER), 0);
                switch (what) {
                case 0: sgl_put_le32(buf + 4, (uint32_t)n + 1); break;  /* length */
                case 1: buf[2] = 1; break;                              /* flags */
                case 2: sgl_put_le32(buf + 8, 0); break;                /* serial 0 */
                case 3: n = sgl_msg_build_ok(buf, sizeof(buf), 3); break; /* a reply type */
                case 4: n = sgl_msg_build_open(buf, sizeof(buf), 3, 0, LEGIT, 5);
                        buf[16] = 0x80; break;                          /* undefined flag */
                case 5: n = sgl_msg_build_open(buf, sizeof(buf), 3, 0, LEGIT, 5);
                        buf[24] = '/'; break;                           /* bad name */
                }
                assert_int_equal(send_fds(s, buf, (size_t)n, NULL, 0), 0);
                assert_int_equal(expect_close(s), -EBADMSG);
                close(s);
        }
        check_health(&dm, &l);
        legit_stop(&l);
        daemon_wait_fds(&dm, dm.base);
        daemon_stop(&dm);
}

static void stray_descriptors(void **state) {
        struct daemon dm;
        struct legit l;
        uint8_t buf[SGL_MSG_MAX_SIZE];
        int many[SGL_FDPASS_MAX];
        int memfd, pipes[2];
        int socks[30];

        (void)state;
        daemon_init(&dm);
        daemon_start(&dm, NULL);
        dm.base = daemon_baseline(&dm);
        legit_start(&l, &dm);
        legit_round(&l, 5);
        memfd = sgl_memfd_create("stray", 8192);
        assert_true(memfd >= 0);
        assert_int_equal(pipe2(pipes, O_CLOEXEC), 0);

        /* one descriptor on types that carry none */
        for (int what = 0; what < 4; what++) {
                int s = raw_connect(dm.sock);
                ssize_t n = 0;
                int k;

                if (what > 0)
                        assert_int_equal(hello(s, what == 3 ? SGL_ROLE_QUERY : SGL_ROLE_READER), 0);
                switch (what) {
                case 0: n = sgl_msg_build_hello(buf, sizeof(buf), 1, 1, 1, SGL_ROLE_READER); break;
                case 1: n = sgl_msg_build_ping(buf, sizeof(buf), 2); break;
                case 2: n = sgl_msg_build_open(buf, sizeof(buf), 2, 0, LEGIT, 5); break;
                case 3: n = sgl_msg_build_list(buf, sizeof(buf), 2); break;
                }
                k = send_fds(s, buf, (size_t)n, what % 2 ? &pipes[0] : &memfd, 1);
                if (what > 0 && k == -EPERM) {
                        /* SO_PASSRIGHTS: once a peer said it is no writer,
                         * the kernel refuses descriptors at the sender;
                         * nothing reached the daemon and the peer may go on */
                        assert_int_equal(ping(s), 0);
                } else {
                        assert_int_equal(k, 0);
                        assert_int_equal(expect_close(s), -EBADMSG);
                }
                close(s);
        }
        /* two and three descriptors where one belongs (three: MSG_CTRUNC) */
        for (int k = 2; k <= 3; k++) {
                uint8_t id[SGL_MSG_AREA_ID_LEN];
                int s = writer_conn(dm.sock, "stray", false, id);
                int fds[3] = { make_control(id, SGL_CTL_MAGIC, SGL_PAGE), pipes[0], memfd };
                ssize_t n = sgl_msg_build_publish_control(buf, sizeof(buf), 3);

                assert_int_equal(send_fds(s, buf, (size_t)n, fds, (size_t)k), 0);
                close(fds[0]);
                assert_int_equal(expect_close(s), -EBADMSG);
                close(s);
        }
        /* SCM_CREDENTIALS instead of SCM_RIGHTS */
        {
                int s = raw_connect(dm.sock);
                union {
                        struct cmsghdr align;
                        char b[CMSG_SPACE(sizeof(struct ucred))];
                } ctl;
                struct ucred cred = { .pid = getpid(), .uid = getuid(), .gid = getgid() };
                ssize_t n = sgl_msg_build_hello(buf, sizeof(buf), 1, 1, 1, SGL_ROLE_READER);
                struct iovec iov = { buf, (size_t)n };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                                     .msg_controllen = sizeof(ctl.b) };
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_CREDENTIALS;
                c->cmsg_len = CMSG_LEN(sizeof(cred));
                memcpy(CMSG_DATA(c), &cred, sizeof(cred));
                struct sgl_msg m;

                assert_true(sendmsg(s, &mh, MSG_NOSIGNAL) == n);
                /* the kernel drops it unless the daemon asked SO_PASSCRED
                 * (it does not): the HELLO is answered */
                assert_int_equal(recv_msg(s, &m, buf, 5000), 0);
                assert_int_equal(m.type, SGL_MSG_WELCOME);
                close(s);
        }
        check_health(&dm, &l);

        /* floods: 300 connections (10 waves of 30, within root's
         * connection quota), each sending messages of 253 descriptors until
         * the daemon hangs up */
        for (size_t i = 0; i < ELEMENTSOF(many); i++)
                many[i] = i % 2 ? memfd : pipes[1];
        for (int wave = 0; wave < 10; wave++) {
                for (size_t i = 0; i < ELEMENTSOF(socks); i++) {
                        socks[i] = raw_connect(dm.sock);
                        assert_true(socks[i] >= 0);
                        if (i % 2)
                                assert_int_equal(hello(socks[i], SGL_ROLE_WRITER), 0);
                }
                for (int round = 0; round < 4; round++)
                        for (size_t i = 0; i < ELEMENTSOF(socks); i++) {
                                ssize_t n = round % 2 ? sgl_msg_build_publish_control(buf, sizeof(buf), 5)
                                                      : sgl_msg_build_ping(buf, sizeof(buf), 5);
                                (void)sgl_fdpass_send(socks[i], buf, (size_t)n, many, ELEMENTSOF(many));
                        }
                for (size_t i = 0; i < ELEMENTSOF(socks); i++) {
                        assert_int_equal(expect_close(socks[i]), -EBADMSG);
                        close(socks[i]);
                }
        }
        close(memfd);
        close(pipes[0]);
        close(pipes[1]);
        check_health(&dm, &l);
        legit_stop(&l);
        daemon_wait_fds(&dm, dm.base);
        daemon_stop(&dm);
}

static void bad_segments(void **state) {
        enum { BAD_FD, BAD_PROTO, GOOD };
        struct daemon dm;
        struct legit l;
        int devzero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
        unsigned n_cases = 0;

        (void)state;
        assert_true(devzero >= 0);
        daemon_init(&dm);
        daemon_start(&dm, NULL);
        dm.base = daemon_baseline(&dm);
        legit_start(&l, &dm);
        legit_round(&l, 5);

        for (int what = 0; ; what++) {
                uint8_t id[SGL_MSG_AREA_ID_LEN], other[SGL_MSG_AREA_ID_LEN];
                int s = writer_conn(dm.sock, "victim", true, id), fd = -1, sp[2], k;
                int expect = BAD_FD;
                uint32_t event = SGL_MSG_EVENT_SEALED;

                memcpy(other, id, sizeof(other));
                other[0] ^= 1;
                switch (what) {
                case 0: assert_int_equal(pipe2(sp, O_CLOEXEC), 0); fd = sp[0]; close(sp[1]); break;
                case 1: assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
                        fd = sp[0]; close(sp[1]); break;
                case 2: fd = fcntl(devzero, F_DUPFD_CLOEXEC, 3); break;
                case 3: fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC); break;
                case 4: fd = eventfd(0, EFD_CLOEXEC); break;
                case 5: fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC); break;
                case 6: {
                        int m = make_segment(id, 1, 8192, 8192, SGL_SEG_MAGIC, SEG_SEAL_WRITE);
                        char path[64];
                        snprintf(path, sizeof(path), "/proc/self/fd/%d", m);
                        fd = open(path, O_PATH | O_CLOEXEC);
                        close(m);
                        break;
                }
                case 7: fd = make_raw_memfd(id, 1, 0, false, 0); break;                 /* unsealed */
                case 8: fd = make_raw_memfd(id, 1, F_SEAL_SHRINK, false, 0); break;
                case 9: fd = make_segment(id, 1, 8192, 8192, SGL_SEG_MAGIC, SEG_NO_WSEAL);
                        event = SGL_MSG_EVENT_OPENED; break;
                case 10: fd = make_segment(id, 1, 8192, 8192, SGL_SEG_MAGIC, 0); break; /* SEALED, FUTURE only */
                case 11: fd = make_segment(id, 1, 8192, 8192, SGL_SEG_MAGIC, SEG_SEAL_WRITE | SEG_RW); break;
                case 12: /* executable: only where the kernel still makes them */
                        fd = make_raw_memfd(id, 1, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE, false, 0);
                        if (fd >= 0) {
                                struct stat st;
                                assert_int_equal(fstat(fd, &st), 0);
                                if (!(st.st_mode & 0111)) {
                                        close(fd);
                                        fd = make_raw_memfd(id, 1, F_SEAL_SHRINK, false, 0);
                                }
                        }
                        break;
                case 13: fd = make_raw_memfd(id, 1, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE, true,
                                             MFD_NOEXEC_SEAL); break;                  /* sparse */
                case 14: fd = make_segment(other, 1, 8192, 8192, SGL_SEG_MAGIC, SEG_SEAL_WRITE); break;
                case 15: fd = make_segment(id, 2, 8192, 8192, SGL_SEG_MAGIC, SEG_SEAL_WRITE); break;
                case 16: fd = make_segment(id, 1, 16384, 8192, SGL_SEG_MAGIC, SEG_SEAL_WRITE); break;
                case 17: fd = make_segment(id, 1, 8192, 8192, SGL_CTL_MAGIC, SEG_SEAL_WRITE); break;
                case 18: /* a control page where a segment belongs */
                        fd = make_control(id, SGL_CTL_MAGIC, SGL_PAGE); break;
                /* control pages */
                case 19: case 20: case 21: case 22: {
                        uint8_t buf[64];
                        ssize_t n;
                        close(s);
                        s = writer_conn(dm.sock, "victim", false, id);
                        memcpy(other, id, sizeof(other));
                        other[3] ^= 0x40;
                        fd = what == 19 ? make_control(other, SGL_CTL_MAGIC, SGL_PAGE)
                           : what == 20 ? make_control(id, SGL_SEG_MAGIC, SGL_PAGE)
                           : what == 21 ? make_control(id, SGL_CTL_MAGIC, 2 * SGL_PAGE)
                                        : make_segment(id, 1, 8192, 8192, SGL_SEG_MAGIC, SEG_SEAL_WRITE);
                        n = sgl_msg_build_publish_control(buf, sizeof(buf), 3);
                        assert_int_equal(send_fds(s, buf, (size_t)n, &fd, 1), 0);
                        close(fd);
                        fd = -2;
                        break;
                }
                /* seq rules */
                case 23: /* OPENED twice */
                        assert_int_equal(publish(s, 1, SGL_MSG_EVENT_OPENED,
                                                 make_segment(id, 1, 8192, 8192, SGL_SEG_MAGIC, 0)), 0);
                        fd = make_segment(id, 1, 8192, 8192, SGL_SEG_MAGIC, 0);
                        event = SGL_MSG_EVENT_OPENED;
                        expect = BAD_PROTO;
                        break;
                case 24: /* SEALED over SEALED */
                        assert_int_equal(publish(s, 1, SGL_MSG_EVENT_SEALED,
                                                 make_segment(id, 1, 8192, 8192, SGL_SEG_MAGIC, SEG_SEAL_WRITE)), 0);
                        fd = make_segment(id, 1, 8192, 8192, SGL_SEG_MAGIC, SEG_SEAL_WRITE);
                        expect = BAD_PROTO;
                        break;
                case 25: /* backwards */
                        assert_int_equal(publish(s, 5, SGL_MSG_EVENT_SEALED,
                                                 make_segment(id, 5, 8192, 8192, SGL_SEG_MAGIC, SEG_SEAL_WRITE)), 0);
                        fd = make_segment(id, 4, 8192, 8192, SGL_SEG_MAGIC, SEG_SEAL_WRITE);
                        expect = BAD_PROTO;
                        break;
                case 26: { /* RETIRE of an unknown seq */
                        uint8_t buf[64];
                        ssize_t n = sgl_msg_build_retire(buf, sizeof(buf), 4, 3);
                        assert_int_equal(send_fds(s, buf, (size_t)n, NULL, 0), 0);
                        fd = -2;
                        expect = BAD_PROTO;
                        break;
                }
                case 27: /* a segment before the control page */
                        close(s);
                        s = writer_conn(dm.sock, "victim", false, id);
                        fd = make_segment(id, 1, 8192, 8192, SGL_SEG_MAGIC, SEG_SEAL_WRITE);
                        expect = BAD_PROTO;
                        break;
                case 28: /* the good case: accepted, the area works */
                        fd = make_segment(id, 1, 8192, 8192, SGL_SEG_MAGIC, SEG_SEAL_WRITE);
                        expect = GOOD;
                        break;
                default:
                        close(s);
                        s = -1;
                        break;
                }
                if (s < 0)
                        break;
                n_cases++;
                if (fd != -2) {
                        assert_true(fd >= 0);
                        k = publish(s, what == 25 ? 4 : 1, event, fd);
                        assert_int_equal(k, 0);
                }
                if (expect == GOOD) {
                        assert_int_equal(ping(s), 0);
                        assert_int_equal(stat_segments(dm.sock, "victim"), 1);
                } else {
                        k = expect_close(s);
                        if (k != (expect == BAD_FD ? -EBADF : -EPROTO))
                                fail_msg("case %d: %d", what, k);
                }
                close(s);
                daemon_alive(&dm);
        }
        assert_int_equal(n_cases, 29);
        close(devzero);
        check_health(&dm, &l);
        legit_stop(&l);
        daemon_wait_fds(&dm, dm.base);
        daemon_stop(&dm);
}

static int nobody_flood(void *userdata) {
        const char *address = userdata;
        int socks[200], ok = 0, dquot = 0, reset = 0;

        if (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 || setuid(NOBODY) < 0)
                return 2;
        for (int i = 0; i < 200; i++) {
                socks[i] = raw_connect(address);
                TU_CHILD_CHECK(socks[i] >= 0);
        }
        for (int i = 0; i < 200; i++) {
                int k = hello(socks[i], SGL_ROLE_READER);

                if (k == 0)
                        ok++;
                else if (k == -EDQUOT)
                        dquot++;
                else if (k == -ECONNRESET || k == -EPIPE)
                        reset++; /* past the daemon's pool of refused ones */
        }
        TU_CHILD_CHECK(ok == 64);
        TU_CHILD_CHECK(dquot > 0);
        TU_CHILD_CHECK(ok + dquot + reset == 200);
        /* hold them until told */
        pause();
        return 0;
}

static void connection_churn(void **state) {
        static const char *const limits[] = { "--limit", "hello-timeout-ms=500", NULL };
        struct daemon dm;
        struct legit l;
        uint8_t buf[SGL_MSG_MAX_SIZE];
        int wave[40];
        int total = 0;

        (void)state;
        daemon_init(&dm);
        daemon_start(&dm, limits);
        dm.base = daemon_baseline(&dm);
        legit_start(&l, &dm);
        legit_round(&l, 5);

        while (total < 10000) {
                for (size_t i = 0; i < ELEMENTSOF(wave); i++) {
                        wave[i] = raw_connect(dm.sock);
                        assert_true(wave[i] >= 0);
                }
                for (size_t i = 0; i < ELEMENTSOF(wave); i++) {
                        ssize_t n;

                        switch ((total + (int)i) % 4) {
                        case 0: /* nothing */
                                break;
                        case 1: /* HELLO, never reads the answer */
                                n = sgl_msg_build_hello(buf, sizeof(buf), 1, 1, 1, SGL_ROLE_READER);
                                (void)send_fds(wave[i], buf, (size_t)n, NULL, 0);
                                break;
                        case 2: /* HELLO and an OPEN */
                                n = sgl_msg_build_hello(buf, sizeof(buf), 1, 1, 1, SGL_ROLE_READER);
                                (void)send_fds(wave[i], buf, (size_t)n, NULL, 0);
                                n = sgl_msg_build_open(buf, sizeof(buf), 2, SGL_OPEN_SUBSCRIBE, LEGIT, 5);
                                (void)send_fds(wave[i], buf, (size_t)n, NULL, 0);
                                break;
                        case 3: /* half a message's worth of claim */
                                n = sgl_msg_build_hello(buf, sizeof(buf), 1, 1, 1, SGL_ROLE_WRITER);
                                (void)send_fds(wave[i], buf, (size_t)n, NULL, 0);
                                break;
                        }
                }
                for (size_t i = 0; i < ELEMENTSOF(wave); i++)
                        close(wave[i]);
                total += (int)ELEMENTSOF(wave);
                if (total % 2000 == 0)
                        daemon_alive(&dm);
        }
        check_health(&dm, &l);

        /* a connection that never says HELLO is closed */
        {
                int s = raw_connect(dm.sock);
                uint64_t t0 = daemon_now_ms();

                assert_int_equal(expect_close(s), 0);
                assert_true(daemon_now_ms() - t0 >= 400);
                close(s);
        }

        if (tu_is_root()) {
                pid_t pid = tu_fork(nobody_flood, dm.sock);
                int status;

                /* root is served meanwhile */
                for (int i = 0; i < 20; i++) {
                        daemon_alive(&dm);
                        legit_round(&l, 2);
                        usleep(20000);
                        if (waitpid(pid, &status, WNOHANG) == pid)
                                fail_msg("flood child ended early: status %d", status);
                }
                kill(pid, SIGTERM);
                status = tu_wait_status(pid);
                assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
        }
        check_health(&dm, &l);
        legit_stop(&l);
        daemon_wait_fds(&dm, dm.base);
        daemon_stop(&dm);
}

static void never_read(void **state) {
        static const char *const limits[] = { "--limit", "pending-per-conn=64", NULL };
        struct daemon dm;
        struct legit l;
        uint8_t buf[SGL_MSG_MAX_SIZE];
        int lazy[20], pinger;

        (void)state;
        daemon_init(&dm);
        daemon_start(&dm, limits);
        dm.base = daemon_baseline(&dm);
        legit_start(&l, &dm);
        legit_round(&l, 5);

        for (size_t i = 0; i < ELEMENTSOF(lazy); i++) {
                ssize_t n;
                int one = 4096;

                lazy[i] = raw_connect(dm.sock);
                assert_true(lazy[i] >= 0);
                /* small buffers: the daemon's queue fills sooner */
                setsockopt(lazy[i], SOL_SOCKET, SO_RCVBUF, &one, sizeof(one));
                assert_int_equal(hello(lazy[i], SGL_ROLE_READER), 0);
                n = sgl_msg_build_open(buf, sizeof(buf), 2, SGL_OPEN_SUBSCRIBE, LEGIT, 5);
                assert_int_equal(send_fds(lazy[i], buf, (size_t)n, NULL, 0), 0);
        }
        pinger = raw_connect(dm.sock);
        assert_int_equal(hello(pinger, SGL_ROLE_QUERY), 0);
        for (int i = 0; i < 2000; i++) {
                ssize_t n = sgl_msg_build_ping(buf, sizeof(buf), (uint32_t)i + 2);
                if (send_fds(pinger, buf, (size_t)n, NULL, 0) < 0)
                        break;
        }

        /* 600 commits, 600 pushes to each (more than the daemon's queue
         * of 64 and what the kernel buffers): no lazy reader slows the
         * writer; the legitimate reader, reading meanwhile, gets every one
         * (in rounds of 50, so it never lags by more than its queue) */
        for (int i = 0; i < 12; i++)
                assert_true(legit_round(&l, 50) < 10000);

        /* every lazy one was disconnected */
        for (size_t i = 0; i < ELEMENTSOF(lazy); i++) {
                int n = 0, k;
                for (;;) {
                        struct sgl_msg m;
                        k = recv_msg(lazy[i], &m, buf, 5000);
                        if (k < 0)
                                break;
                        n++;
                }
                assert_int_equal(k, -ECONNRESET);
                assert_true(n < 600);
                close(lazy[i]);
        }
        assert_int_equal(expect_close(pinger), 0);
        close(pinger);
        check_health(&dm, &l);
        legit_stop(&l);
        daemon_wait_fds(&dm, dm.base);
        daemon_stop(&dm);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(garbage),
                cmocka_unit_test(stray_descriptors),
                cmocka_unit_test(bad_segments),
                cmocka_unit_test(connection_churn),
                cmocka_unit_test(never_read),
        };

        signal(SIGPIPE, SIG_IGN);
        tu_watchdog(120);
        if (getenv("SGLD_TEST_FILTER")) /* e.g. "never_read" */
                cmocka_set_test_filter(getenv("SGLD_TEST_FILTER"));
        return cmocka_run_group_tests(tests, NULL, NULL);
}
