/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-publish.c - the writer's side of the daemon protocol
 * (sgl_writer_publish(), src/publish.c) and takeover adoption (src/adopt.c).
 *
 * Layout: the writer lives in the test process.  The "daemon" is a fake in
 * a child process: a real AF_UNIX SOCK_SEQPACKET listener that answers with
 * the src/protocol.h builders as the test scripted it (WELCOME, CLAIMED,
 * for a takeover SEGMENT* + SYNCED with real descriptors, OK to PING, or an
 * ERROR, a close, a stall) and forwards every datagram the writer sends,
 * bytes and descriptor, to the test over a second socket ("the tap"), where
 * the test parses and checks it.
 *
 * What it proves:
 * - claim_and_segments: HELLO says role writer, versions 1..1; CLAIM carries
 *   exactly the flags, mode, uid and gid lists and name given; the control
 *   page is published read-only with the area id the daemon assigned (the
 *   writer adopts it: its control page and every later segment header carry
 *   it); each commit is published SEALED with a read-only, write-sealed
 *   descriptor of the right seq; serials strictly increase; a STRICT reader
 *   fed the published descriptors reads the payloads back; the callback set
 *   before publishing still gets every event; -EALREADY; no descriptor
 *   leaks; the daemon sees the writer go at unref.
 * - existing_segments: a writer with an open and a sealed segment publishes
 *   into an area with its own id: SEALED and OPENED (FUTURE_WRITE, no WRITE
 *   seal) are replayed, the later seal is published SEALED for the same
 *   seq; a writer with segments is refused (-EXDEV) by an area of another id.
 * - retire_after_gc: compaction's retired segments are published as RETIRE,
 *   exactly the sealed seqs that are no longer live, as many as retired.
 * - takeover: a second writer takes over an area whose first writer died
 *   with a sealed log, an open (unsealed) segment, and a compaction whose
 *   RETIRE never reached the daemon: it publishes a sealed copy of the open
 *   segment (same seq), RETIREs the compacted segment, accounts exactly the
 *   dead writer's live bytes and segments, continues seqs, versions and
 *   anonymous ids past the old ones, knows the old ids (delete works, a
 *   deleted id stays -ENOENT), and a STRICT reader folding both writers'
 *   segments sees the newest versions and tombstones; compacting afterwards
 *   relocates the adopted chunks and RETIREs adopted segments.
 * - takeover_hostile: descriptors that are not segments of the area (a
 *   pipe, an unsealed memfd, another area's segment, a seq that lies) are
 *   dropped and RETIREd while the good one is adopted; a repeated seq, a
 *   seq past next_seq, or a writer that already has segments fail the
 *   takeover; nothing leaks.
 * - errors: bad arguments -EINVAL before connecting; no daemon
 *   -ECONNREFUSED/-ENOENT; CLAIM refused (-EBUSY) and HELLO refused
 *   (-EOPNOTSUPP, also by a real embedded host) leave the writer unpublished;
 *   a daemon that breaks the protocol gets -EPROTO and its descriptor
 *   closed; a daemon that closes, or sends ERROR and closes, makes the
 *   publish fd readable and sgl_writer_publish_process() report
 *   -ECONNRESET / the daemon's error, every time; the writer keeps working.
 * - queue: a daemon that stops reading never blocks the writer: events
 *   queue (sgl_writer_publish_process() counts them), flush in order
 *   without loss once it reads again, and a daemon that never reads ends
 *   publishing with -ENOBUFS (publish fd readable), descriptors released.
 */
#include <errno.h>
#include <fcntl.h>
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
#include <unistd.h>

#include "test-util.h"
#include "fdpass.h"
#include "memfd.h"
#include "protocol.h"
#include "segment.h"
#include "sigillo.h"

/* ------------------------------------------------------------ fake daemon */

enum fake_after {
        FAKE_SERVE,      /* keep reading and forwarding until the writer goes */
        FAKE_CLOSE,      /* close the connection once PING is answered */
        FAKE_ERROR,      /* after error_after more requests: ERROR + close */
        FAKE_STALL,      /* stop reading after PING until the tap says go */
        FAKE_JUNK,       /* answer the PING with an AREA (+ fd) instead */
};

#define FAKE_MAX_SEGS 16

struct fake_cfg {
        int listen_fd;
        int tap;                 /* the child's end */
        int parent_tap;          /* the test's end: closed in the child */
        int hello_error;
        int claim_error;
        uint8_t area_id[16];
        uint32_t claimed_flags;
        uint64_t next_seq;
        size_t n_takeover;
        int takeover_fd[FAKE_MAX_SEGS];
        uint64_t takeover_seq[FAKE_MAX_SEGS];
        uint32_t takeover_event[FAKE_MAX_SEGS];
        enum fake_after after;
        unsigned error_after;
        int error_value;
};

static int fake_reply(int sock, ssize_t n, const uint8_t *buf, int fd) {
        if (n < 0)
                return -1;
        return sgl_fdpass_send(sock, buf, (size_t)n, &fd, fd >= 0) == n ? 0 : -1;
}

static int fake_main(void *userdata) {
        struct fake_cfg *c = userdata;
        unsigned later = 0;
        bool pinged = false;
        int conn;

        /* the tap's EOF must mean the test closed it */
        close(c->parent_tap);
        conn = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        TU_CHILD_CHECK(conn >= 0);
        close(c->listen_fd);

        for (;;) {
                uint8_t buf[SGL_MSG_MAX_SIZE], out[SGL_MSG_MAX_SIZE];
                struct sgl_msg m;
                size_t nfds = 0;
                int fd = -1;
                ssize_t n;

                n = sgl_fdpass_recv(conn, buf, sizeof(buf), &fd, 1, &nfds);
                if (n == 0 || (n < 0 && n == -ECONNRESET))
                        return 0; /* the writer went: closing the tap says so */
                TU_CHILD_CHECK(n > 0);
                if (nfds == 0)
                        fd = -1;
                /* forward everything, then answer */
                TU_CHILD_CHECK(sgl_fdpass_send(c->tap, buf, (size_t)n, &fd, fd >= 0) == n);
                TU_CHILD_CHECK(sgl_msg_parse(buf, (size_t)n, nfds, &m) == 0);
                if (fd >= 0)
                        close(fd);

                switch (m.type) {
                case SGL_MSG_HELLO:
                        if (c->hello_error) {
                                fake_reply(conn, sgl_msg_build_error(out, sizeof(out), m.serial,
                                                                     c->hello_error), out, -1);
                                return 0;
                        }
                        TU_CHILD_CHECK(fake_reply(conn, sgl_msg_build_welcome(out, sizeof(out),
                                                  m.serial, 1, 4096, 255), out, -1) == 0);
                        break;
                case SGL_MSG_CLAIM:
                        if (c->claim_error) {
                                TU_CHILD_CHECK(fake_reply(conn, sgl_msg_build_error(out, sizeof(out),
                                                          m.serial, c->claim_error), out, -1) == 0);
                                break;
                        }
                        TU_CHILD_CHECK(fake_reply(conn, sgl_msg_build_claimed(out, sizeof(out),
                                                  m.serial, c->area_id, c->claimed_flags,
                                                  c->next_seq), out, -1) == 0);
                        if (!(c->claimed_flags & SGL_CLAIMED_TAKEOVER))
                                break;
                        for (size_t i = 0; i < c->n_takeover; i++)
                                TU_CHILD_CHECK(fake_reply(conn, sgl_msg_build_segment(out, sizeof(out),
                                                          m.serial, c->takeover_seq[i],
                                                          c->takeover_event[i]),
                                                          out, c->takeover_fd[i]) == 0);
                        TU_CHILD_CHECK(fake_reply(conn, sgl_msg_build_synced(out, sizeof(out),
                                                  m.serial), out, -1) == 0);
                        break;
                case SGL_MSG_PING:
                        if (c->after == FAKE_JUNK) {
                                int junk = memfd_create("junk", MFD_CLOEXEC);
                                fake_reply(conn, sgl_msg_build_area(out, sizeof(out), m.serial,
                                                                    c->area_id, 0), out, junk);
                                close(junk);
                                break;
                        }
                        TU_CHILD_CHECK(fake_reply(conn, sgl_msg_build_ok(out, sizeof(out),
                                                                         m.serial), out, -1) == 0);
                        if (pinged)
                                break;
                        pinged = true;
                        if (c->after == FAKE_CLOSE)
                                return 0;
                        if (c->after == FAKE_STALL) {
                                char go;
                                /* EOF on the tap: the test is done with us */
                                if (read(c->tap, &go, 1) != 1)
                                        return 0;
                        }
                        break;
                default:
                        if (pinged && c->after == FAKE_ERROR && ++later == c->error_after) {
                                fake_reply(conn, sgl_msg_build_error(out, sizeof(out), 0,
                                                                     c->error_value), out, -1);
                                return 0;
                        }
                        break;
                }
        }
}

struct fake {
        pid_t pid;
        int tap;
        char address[108];
};

static unsigned fake_counter;

static void fake_start(struct fake *f, struct fake_cfg *cfg) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int sv[2];
        size_t len;

        snprintf(f->address, sizeof(f->address), "@sigillo-test-publish-%d-%u",
                 (int)getpid(), ++fake_counter);
        len = strlen(f->address);
        memcpy(sa.sun_path, f->address, len);
        sa.sun_path[0] = '\0';
        cfg->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        assert_true(cfg->listen_fd >= 0);
        assert_int_equal(bind(cfg->listen_fd, (struct sockaddr *)&sa,
                              (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)), 0);
        assert_int_equal(listen(cfg->listen_fd, 4), 0);
        tu_socketpair(sv);
        cfg->tap = sv[1];
        cfg->parent_tap = sv[0];
        f->pid = tu_fork(fake_main, cfg);
        close(sv[1]);
        close(cfg->listen_fd);
        f->tap = sv[0];
}

static void fake_finish(struct fake *f) {
        close(f->tap);
        tu_wait_exit(f->pid, 0);
}

/* One message the writer sent, as forwarded by the fake. */
struct tapped {
        uint8_t buf[SGL_MSG_MAX_SIZE];
        struct sgl_msg m;
        int fd;
};

/* Returns 0 with @t, or -ECONNRESET once the fake is gone. */
static int tap_next(struct fake *f, struct tapped *t) {
        struct pollfd p = { .fd = f->tap, .events = POLLIN };
        size_t nfds = 0;
        ssize_t n;

        assert_int_equal(poll(&p, 1, 10000), 1);
        t->fd = -1;
        n = sgl_fdpass_recv(f->tap, t->buf, sizeof(t->buf), &t->fd, 1, &nfds);
        assert_true(n >= 0);
        if (n == 0)
                return -ECONNRESET;
        if (nfds == 0)
                t->fd = -1;
        /* what the writer sends must pass the daemon's decoder */
        assert_int_equal(sgl_msg_parse(t->buf, (size_t)n, nfds, &t->m), 0);
        assert_true(sgl_msg_type_is_request(t->m.type));
        assert_true(t->m.serial != 0);
        return 0;
}

static void tap_expect(struct fake *f, struct tapped *t, uint16_t type) {
        assert_int_equal(tap_next(f, t), 0);
        if (t->m.type != type)
                fail_msg("writer sent %s, expected %s", sgl_msg_type_name(t->m.type),
                         sgl_msg_type_name(type));
}

static void tap_expect_eof(struct fake *f) {
        struct tapped t;
        assert_int_equal(tap_next(f, &t), -ECONNRESET);
}

/* ---------------------------------------------------------------- helpers */

static const uint8_t AREA_A[16] = { 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8,
                                    0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf, 0xb0 };

static void area_of_control(int fd, uint8_t id[16]) {
        struct sgl_ctl_page page;

        assert_int_equal(pread(fd, &page, sizeof(page), 0), (ssize_t)sizeof(page));
        assert_true(page.magic == SGL_CTL_MAGIC);
        memcpy(id, page.area_id, 16);
}

static void writer_area(sgl_writer *w, uint8_t id[16]) {
        int fd = sgl_writer_control_fd(w);

        assert_true(fd >= 0);
        area_of_control(fd, id);
        close(fd);
}

static void seg_header(int fd, struct sgl_seg_header *h) {
        struct stat st;

        assert_int_equal(pread(fd, h, sizeof(*h), 0), (ssize_t)sizeof(*h));
        assert_true(h->magic == SGL_SEG_MAGIC);
        assert_int_equal(fstat(fd, &st), 0);
        assert_int_equal(h->size, (uint64_t)st.st_size);
}

static void assert_rdonly(int fd) {
        int fl = fcntl(fd, F_GETFL);
        assert_true(fl >= 0);
        assert_int_equal(fl & O_ACCMODE, O_RDONLY);
}

static int seals_of(int fd) {
        int s = fcntl(fd, F_GET_SEALS);
        assert_true(s >= 0);
        return s;
}

/* Checks a published segment: read-only, of area @id, seq as announced,
 * write-sealed for SEALED, FUTURE_WRITE only for OPENED. */
static void check_published(const struct tapped *t, const uint8_t id[16]) {
        struct sgl_seg_header h;
        int seals;

        assert_int_equal(t->m.type, SGL_MSG_PUBLISH_SEGMENT);
        assert_true(t->fd >= 0);
        assert_rdonly(t->fd);
        seg_header(t->fd, &h);
        assert_memory_equal(h.area_id, id, 16);
        assert_int_equal(h.seq, t->m.publish_segment.seq);
        seals = seals_of(t->fd);
        assert_int_equal(seals & (F_SEAL_SHRINK | F_SEAL_GROW), F_SEAL_SHRINK | F_SEAL_GROW);
        assert_int_equal(sgl_memfd_verify(t->fd, 0, NULL, NULL), 0);
        if (t->m.publish_segment.event == SGL_SEGMENT_SEALED) {
                assert_true(seals & F_SEAL_WRITE);
                assert_true(seals & F_SEAL_SEAL);
        } else {
                assert_int_equal(t->m.publish_segment.event, SGL_SEGMENT_OPENED);
                assert_false(seals & F_SEAL_WRITE);
                assert_true(seals & F_SEAL_FUTURE_WRITE);
        }
}

/* The handshake up to the PING; returns the control page descriptor's area. */
static void tap_handshake(struct fake *f, const uint8_t area[16], uint32_t *last_serial) {
        struct tapped t;
        uint8_t id[16];

        tap_expect(f, &t, SGL_MSG_HELLO);
        assert_int_equal(t.m.hello.role, SGL_ROLE_WRITER);
        assert_int_equal(t.m.hello.min_version, 1);
        assert_int_equal(t.m.hello.max_version, 1);
        *last_serial = t.m.serial;
        tap_expect(f, &t, SGL_MSG_CLAIM);
        assert_true(t.m.serial > *last_serial);
        *last_serial = t.m.serial;
        tap_expect(f, &t, SGL_MSG_PUBLISH_CONTROL);
        assert_true(t.m.serial > *last_serial);
        *last_serial = t.m.serial;
        assert_true(t.fd >= 0);
        assert_rdonly(t.fd);
        area_of_control(t.fd, id);
        assert_memory_equal(id, area, 16);
        close(t.fd);
}

struct cb_log {
        unsigned opened, sealed, retired;
};

static void count_events(void *userdata, uint64_t seq, sgl_segment_event ev, int fd) {
        struct cb_log *l = userdata;

        l->opened += ev == SGL_SEGMENT_OPENED;
        l->sealed += ev == SGL_SEGMENT_SEALED;
        l->retired += ev == SGL_SEGMENT_RETIRED;
}

static void commit_one(sgl_writer *w, uint64_t id, const char *s) {
        assert_int_equal(sgl_writer_write(w, id, 0, s, strlen(s), NULL), 0);
        assert_int_equal(sgl_writer_commit(w), 0);
}

static void assert_get_str(sgl_reader *r, uint64_t id, const char *s, uint64_t *version) {
        sgl_chunk *c = NULL;

        assert_int_equal(sgl_reader_get(r, id, &c), 0);
        assert_int_equal(sgl_chunk_size(c), strlen(s));
        assert_memory_equal(sgl_chunk_data(c), s, strlen(s));
        if (version)
                *version = sgl_chunk_version(c);
        sgl_chunk_unref(c);
}

static void assert_gone(sgl_reader *r, uint64_t id) {
        sgl_chunk *c = NULL;
        assert_int_equal(sgl_reader_get(r, id, &c), -ENOENT);
        assert_null(c);
}

static void wait_readable(int fd) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        assert_int_equal(poll(&p, 1, 10000), 1);
        assert_true(p.revents & POLLIN);
}

static bool readable_now(int fd) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        return poll(&p, 1, 0) == 1;
}

/* ------------------------------------------------------------------ tests */

static void test_claim_and_segments(void **state) {
        static const uint32_t uids[] = { 1000, 4242 }, gids[] = { 27 };
        struct fake_cfg cfg = { .next_seq = 1, .after = FAKE_SERVE };
        struct cb_log log = { 0 };
        unsigned before = tu_count_fds();
        struct tapped t;
        uint32_t serial;
        uint8_t id[16];
        sgl_writer *w;
        sgl_reader *r;
        struct fake f;
        int pfd;

        memcpy(cfg.area_id, AREA_A, 16);
        fake_start(&f, &cfg);

        assert_int_equal(sgl_writer_new("pub-one", 0, &w), 0);
        sgl_writer_set_segment_fn(w, count_events, &log);
        assert_int_equal(sgl_writer_get_publish_fd(w), -ENOTCONN);
        assert_int_equal(sgl_writer_publish_process(w), -ENOTCONN);
        assert_int_equal(sgl_writer_publish(w, "pub-one", f.address, SGL_PUBLISH_PERSIST, 0440,
                                            uids, 2, gids, 1), 0);

        tap_expect(&f, &t, SGL_MSG_HELLO);
        assert_int_equal(t.m.hello.role, SGL_ROLE_WRITER);
        assert_int_equal(t.m.hello.min_version, 1);
        assert_int_equal(t.m.hello.max_version, 1);
        serial = t.m.serial;

        tap_expect(&f, &t, SGL_MSG_CLAIM);
        assert_true(t.m.serial > serial);
        serial = t.m.serial;
        assert_int_equal(t.m.claim.flags, SGL_CLAIM_PERSIST);
        assert_int_equal(t.m.claim.mode, 0440);
        assert_int_equal(t.m.claim.n_uids, 2);
        assert_int_equal(sgl_msg_claim_uid(&t.m, 0), 1000);
        assert_int_equal(sgl_msg_claim_uid(&t.m, 1), 4242);
        assert_int_equal(t.m.claim.n_gids, 1);
        assert_int_equal(sgl_msg_claim_gid(&t.m, 0), 27);
        assert_int_equal(t.m.claim.name_len, strlen("pub-one"));
        assert_memory_equal(t.m.claim.name, "pub-one", strlen("pub-one"));

        tap_expect(&f, &t, SGL_MSG_PUBLISH_CONTROL);
        assert_true(t.m.serial > serial);
        serial = t.m.serial;
        assert_true(t.fd >= 0);
        assert_rdonly(t.fd);
        assert_int_equal(sgl_memfd_verify(t.fd, 0, NULL, NULL), 0);
        area_of_control(t.fd, id);
        assert_memory_equal(id, AREA_A, 16);
        assert_int_equal(sgl_reader_new(0, &r), 0);
        assert_int_equal(sgl_reader_set_control_consume_fd(r, t.fd), 0);

        tap_expect(&f, &t, SGL_MSG_PING);
        assert_true(t.m.serial > serial);
        serial = t.m.serial;

        /* the writer took the daemon's area id */
        writer_area(w, id);
        assert_memory_equal(id, AREA_A, 16);
        pfd = sgl_writer_get_publish_fd(w);
        assert_true(pfd >= 0);
        assert_false(readable_now(pfd));
        assert_int_equal(sgl_writer_publish_process(w), 0);
        assert_int_equal(sgl_writer_publish(w, NULL, f.address, 0, 0, NULL, 0, NULL, 0), -EALREADY);

        commit_one(w, 1, "alpha");
        commit_one(w, 2, "beta");
        commit_one(w, 1, "gamma");
        for (uint64_t seq = 1; seq <= 3; seq++) {
                tap_expect(&f, &t, SGL_MSG_PUBLISH_SEGMENT);
                assert_true(t.m.serial > serial);
                serial = t.m.serial;
                assert_int_equal(t.m.publish_segment.seq, seq);
                assert_int_equal(t.m.publish_segment.event, SGL_SEGMENT_SEALED);
                check_published(&t, AREA_A);
                assert_int_equal(sgl_reader_add_segment_consume_fd(r, t.fd), 0);
        }
        assert_get_str(r, 1, "gamma", NULL);
        assert_get_str(r, 2, "beta", NULL);
        assert_int_equal(log.sealed, 3); /* chained */
        assert_int_equal(sgl_writer_publish_process(w), 0);
        assert_false(readable_now(pfd));

        sgl_reader_unref(r);
        assert_null(sgl_writer_unref(w));
        tap_expect_eof(&f);
        fake_finish(&f);
        assert_int_equal(tu_count_fds(), before);
}

static void test_existing_segments(void **state) {
        struct fake_cfg cfg = { .next_seq = 1, .after = FAKE_SERVE };
        unsigned before = tu_count_fds();
        struct tapped t;
        uint32_t serial;
        sgl_writer *w, *w2;
        struct fake f;

        assert_int_equal(sgl_writer_new("pub-existing", 0, &w), 0);
        assert_int_equal(sgl_writer_set_seal_policy(w, SGL_SEAL_BYTES, 1 << 20), 0);
        commit_one(w, 1, "sealed-one");
        assert_int_equal(sgl_writer_seal(w), 0);
        commit_one(w, 2, "open-two");

        /* the daemon hands back the writer's own id (an area it knows) */
        writer_area(w, cfg.area_id);
        fake_start(&f, &cfg);
        assert_int_equal(sgl_writer_publish(w, NULL, f.address, 0, 0400, NULL, 0, NULL, 0), 0);
        tap_handshake(&f, cfg.area_id, &serial);
        tap_expect(&f, &t, SGL_MSG_PUBLISH_SEGMENT);
        assert_int_equal(t.m.publish_segment.seq, 1);
        assert_int_equal(t.m.publish_segment.event, SGL_SEGMENT_SEALED);
        check_published(&t, cfg.area_id);
        close(t.fd);
        tap_expect(&f, &t, SGL_MSG_PUBLISH_SEGMENT);
        assert_int_equal(t.m.publish_segment.seq, 2);
        assert_int_equal(t.m.publish_segment.event, SGL_SEGMENT_OPENED);
        check_published(&t, cfg.area_id);
        close(t.fd);
        tap_expect(&f, &t, SGL_MSG_PING);

        /* a commit into the open segment is no event; its seal is */
        commit_one(w, 3, "open-three");
        assert_int_equal(sgl_writer_seal(w), 0);
        tap_expect(&f, &t, SGL_MSG_PUBLISH_SEGMENT);
        assert_int_equal(t.m.publish_segment.seq, 2);
        assert_int_equal(t.m.publish_segment.event, SGL_SEGMENT_SEALED);
        check_published(&t, cfg.area_id);
        close(t.fd);
        assert_null(sgl_writer_unref(w));
        tap_expect_eof(&f);
        fake_finish(&f);

        /* segments cannot change their area id */
        assert_int_equal(sgl_writer_new("pub-existing", 0, &w2), 0);
        commit_one(w2, 1, "mine");
        memcpy(cfg.area_id, AREA_A, 16);
        fake_start(&f, &cfg);
        assert_int_equal(sgl_writer_publish(w2, NULL, f.address, 0, 0400, NULL, 0, NULL, 0), -EXDEV);
        assert_int_equal(sgl_writer_get_publish_fd(w2), -ENOTCONN);
        tap_expect(&f, &t, SGL_MSG_HELLO);
        tap_expect(&f, &t, SGL_MSG_CLAIM);
        tap_expect_eof(&f);
        fake_finish(&f);
        commit_one(w2, 2, "still works");
        assert_null(sgl_writer_unref(w2));
        assert_int_equal(tu_count_fds(), before);
}

struct live_ctx {
        uint64_t *v;
        int *n;
};

static void collect_live(void *userdata, uint64_t seq, sgl_segment_event ev, int fd) {
        struct live_ctx *c = userdata;
        c->v[(*c->n)++] = seq;
}

static void test_retire_after_gc(void **state) {
        struct fake_cfg cfg = { .next_seq = 7, .after = FAKE_SERVE };
        unsigned before = tu_count_fds(), nsealed = 0, nretire = 0;
        uint64_t sealed[64], retired[64], live[64];
        sgl_writer_stats st;
        struct tapped t;
        uint32_t serial;
        sgl_writer *w;
        struct fake f;
        int n, nlive = 0;

        memcpy(cfg.area_id, AREA_A, 16);
        fake_start(&f, &cfg);
        assert_int_equal(sgl_writer_new("pub-gc", 0, &w), 0);
        assert_int_equal(sgl_writer_set_gc(w, 0, 0, 0), 0);
        assert_int_equal(sgl_writer_publish(w, "pub-gc", f.address, 0, 0444, NULL, 0, NULL, 0), 0);
        tap_handshake(&f, AREA_A, &serial);
        tap_expect(&f, &t, SGL_MSG_PING);

        for (unsigned round = 0; round < 4; round++)
                for (uint64_t id = 1; id <= 3; id++)
                        commit_one(w, id, round == 3 ? "final" : "old");
        commit_one(w, 9, "doomed");
        assert_int_equal(sgl_writer_delete(w, 9), 0);
        assert_int_equal(sgl_writer_commit(w), 0);

        n = sgl_writer_gc(w);
        assert_true(n > 0);
        assert_int_equal(sgl_writer_get_stats(w, &st), 0);
        assert_int_equal(st.retired, (uint64_t)n);

        /* everything the writer said, in order */
        for (;;) {
                assert_int_equal(tap_next(&f, &t), 0);
                if (t.m.type == SGL_MSG_PUBLISH_SEGMENT) {
                        assert_true(t.m.serial > serial);
                        check_published(&t, AREA_A);
                        close(t.fd);
                        assert_true(nsealed < 64);
                        /* the writer continues at the CLAIMED next_seq */
                        assert_true(t.m.publish_segment.seq >= 7);
                        sealed[nsealed++] = t.m.publish_segment.seq;
                } else {
                        assert_int_equal(t.m.type, SGL_MSG_RETIRE);
                        assert_true(t.fd < 0);
                        retired[nretire++] = t.m.retire.seq;
                        if (nretire == (unsigned)n)
                                break;
                }
                serial = t.m.serial;
        }
        assert_int_equal(nsealed, 14 + 1); /* 12 + doomed + tombstone + compaction */
        assert_int_equal(sealed[0], 7);

        /* RETIRE names exactly the sealed seqs that are no longer live */
        {
                struct live_ctx ctx = { live, &nlive };
                int calls = sgl_writer_foreach_segment(w, collect_live, &ctx);
                assert_int_equal(calls, nlive);
                assert_true(nlive >= 1);
        }
        for (unsigned i = 0; i < nsealed; i++) {
                bool is_live = false, is_retired = false;
                for (int k = 0; k < nlive; k++)
                        is_live |= live[k] == sealed[i];
                for (unsigned k = 0; k < nretire; k++)
                        is_retired |= retired[k] == sealed[i];
                assert_true(is_live != is_retired);
        }
        assert_int_equal(nlive + (int)nretire, (int)nsealed);
        assert_int_equal(sgl_writer_publish_process(w), 0);

        assert_null(sgl_writer_unref(w));
        tap_expect_eof(&f);
        fake_finish(&f);
        assert_int_equal(tu_count_fds(), before);
}

/* -------------------------------------------------------------- takeover */

/* Keeps a dup of every segment descriptor the writer announces (the newest
 * per seq), like a daemon; retired ones are kept too (see below). */
struct keep {
        size_t n;
        uint64_t seq[FAKE_MAX_SEGS];
        uint32_t event[FAKE_MAX_SEGS];
        int fd[FAKE_MAX_SEGS];
        uint64_t retired[FAKE_MAX_SEGS];
        size_t nretired;
};

static void keep_event(void *userdata, uint64_t seq, sgl_segment_event ev, int fd) {
        struct keep *k = userdata;
        size_t i;

        if (ev == SGL_SEGMENT_RETIRED) {
                k->retired[k->nretired++] = seq;
                return;
        }
        for (i = 0; i < k->n && k->seq[i] != seq; i++)
                ;
        if (i == k->n) {
                assert_true(k->n < FAKE_MAX_SEGS);
                k->n++;
        } else {
                close(k->fd[i]);
        }
        k->seq[i] = seq;
        k->event[i] = ev;
        k->fd[i] = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        assert_true(k->fd[i] >= 0);
}

static bool keep_retired(const struct keep *k, uint64_t seq) {
        for (size_t i = 0; i < k->nretired; i++)
                if (k->retired[i] == seq)
                        return true;
        return false;
}

static void test_takeover(void **state) {
        struct fake_cfg cfg = { .after = FAKE_SERVE, .claimed_flags = SGL_CLAIMED_TAKEOVER };
        unsigned before = tu_count_fds();
        uint64_t anon1, anon2, anon3, max_version = 0, max_seq = 0, v, open_seq = 0;
        uint64_t w2_seqs[16];
        size_t n_w2 = 0;
        sgl_writer_stats st1, st2;
        struct keep k = { 0 };
        struct tapped t;
        uint32_t serial;
        sgl_writer *w1, *w2;
        sgl_reader *r;
        struct fake f;
        int n;

        /* the first writer: a log with overwrites, a delete, anonymous ids,
         * a compaction, and an open segment when it dies */
        assert_int_equal(sgl_writer_new("pub-area", 0, &w1), 0);
        assert_int_equal(sgl_writer_set_seal_policy(w1, SGL_SEAL_BYTES, 1 << 20), 0);
        assert_int_equal(sgl_writer_set_gc(w1, 0, 0, 0), 0);
        sgl_writer_set_segment_fn(w1, keep_event, &k);
        commit_one(w1, 1, "one-v1");
        commit_one(w1, 2, "two");
        commit_one(w1, 3, "three");
        assert_int_equal(sgl_writer_write(w1, 0, 0, "anon-1", 6, &anon1), 0);
        assert_int_equal(sgl_writer_commit(w1), 0);
        assert_int_equal(sgl_writer_seal(w1), 0);                 /* seg 1 */
        for (int i = 0; i < 20; i++)
                commit_one(w1, 4, "four: overwritten again and again");
        assert_int_equal(sgl_writer_seal(w1), 0);                 /* seg 2 */
        commit_one(w1, 1, "one-v2");
        assert_int_equal(sgl_writer_delete(w1, 3), 0);
        assert_int_equal(sgl_writer_commit(w1), 0);
        assert_int_equal(sgl_writer_write(w1, 0, 0, "anon-2", 6, &anon2), 0);
        assert_int_equal(sgl_writer_commit(w1), 0);
        assert_int_equal(sgl_writer_seal(w1), 0);                 /* seg 3 */
        /* compaction: seg 2 holds 19 dead copies of id 4 */
        n = sgl_writer_gc(w1);
        assert_true(n >= 1);
        assert_true(keep_retired(&k, 2));
        commit_one(w1, 5, "five, never sealed");                  /* open */
        assert_int_equal(sgl_writer_get_stats(w1, &st1), 0);
        writer_area(w1, cfg.area_id);
        for (size_t i = 0; i < k.n; i++) {
                max_seq = k.seq[i] > max_seq ? k.seq[i] : max_seq;
                if (k.event[i] == SGL_SEGMENT_OPENED)
                        open_seq = k.seq[i];
        }
        assert_true(open_seq > 0);
        assert_true(anon2 > anon1 && anon1 >= (1ULL << 63));

        /* its newest version, as a reader sees the log */
        assert_int_equal(sgl_reader_new(SGL_READER_TRUSTED, &r), 0);
        for (size_t i = 0; i < k.n; i++)
                if (!keep_retired(&k, k.seq[i]))
                        assert_int_equal(sgl_reader_add_segment_consume_fd(
                                r, fcntl(k.fd[i], F_DUPFD_CLOEXEC, 3)), 0);
        for (;;) {
                sgl_chunk *c;
                if (sgl_reader_next(r, &c) < 0)
                        break;
                max_version = sgl_chunk_version(c) > max_version ? sgl_chunk_version(c) : max_version;
                sgl_chunk_unref(c);
        }
        sgl_reader_unref(r);
        assert_true(max_version > 20);

        /* the first writer dies before it told the daemon about the RETIRE:
         * the daemon still has segment 2, and the open segment */
        sgl_writer_set_segment_fn(w1, NULL, NULL);
        assert_null(sgl_writer_unref(w1));
        cfg.next_seq = max_seq + 1;
        for (size_t i = 0; i < k.n; i++) {
                cfg.takeover_fd[i] = k.fd[i];
                cfg.takeover_seq[i] = k.seq[i];
                cfg.takeover_event[i] = k.event[i];
        }
        cfg.n_takeover = k.n;
        fake_start(&f, &cfg);

        assert_int_equal(sgl_writer_new("pub-area", 0, &w2), 0);
        assert_int_equal(sgl_writer_set_gc(w2, 0, 0, 0), 0);
        assert_int_equal(sgl_writer_publish(w2, NULL, f.address, SGL_PUBLISH_PERSIST, 0444,
                                            NULL, 0, NULL, 0), 0);
        tap_handshake(&f, cfg.area_id, &serial);

        /* the sealed copy of the open segment, and a RETIRE for each
         * segment the dead writer compacted away */
        assert_int_equal(sgl_reader_new(0, &r), 0);
        {
                size_t copies = 0, retires = 0;

                for (;;) {
                        assert_int_equal(tap_next(&f, &t), 0);
                        if (t.m.type == SGL_MSG_PING)
                                break;
                        if (t.m.type == SGL_MSG_RETIRE) {
                                assert_true(keep_retired(&k, t.m.retire.seq));
                                retires++;
                                continue;
                        }
                        assert_int_equal(t.m.type, SGL_MSG_PUBLISH_SEGMENT);
                        assert_int_equal(t.m.publish_segment.seq, open_seq);
                        assert_int_equal(t.m.publish_segment.event, SGL_SEGMENT_SEALED);
                        check_published(&t, cfg.area_id);
                        assert_int_equal(sgl_reader_add_segment_consume_fd(r, t.fd), 0);
                        copies++;
                }
                assert_int_equal(copies, 1);
                assert_int_equal(retires, k.nretired);
        }

        /* the dead writer's accounting, exactly */
        assert_int_equal(sgl_writer_get_stats(w2, &st2), 0);
        assert_int_equal(st2.segments, st1.segments);
        assert_int_equal(st2.bytes_used, st1.bytes_used);
        assert_int_equal(st2.bytes_live, st1.bytes_live);

        /* it knows the old ids */
        assert_int_equal(sgl_writer_delete(w2, 3), -ENOENT);   /* deleted before */
        assert_int_equal(sgl_writer_delete(w2, 999), -ENOENT);
        assert_int_equal(sgl_writer_delete(w2, 2), 0);
        assert_int_equal(sgl_writer_commit(w2), 0);
        commit_one(w2, 1, "one-v3");
        assert_int_equal(sgl_writer_write(w2, 0, 0, "anon-3", 6, &anon3), 0);
        assert_int_equal(sgl_writer_commit(w2), 0);
        assert_true(anon3 > anon2);

        for (int i = 0; i < 3; i++) {
                tap_expect(&f, &t, SGL_MSG_PUBLISH_SEGMENT);
                assert_int_equal(t.m.publish_segment.event, SGL_SEGMENT_SEALED);
                assert_int_equal(t.m.publish_segment.seq, max_seq + 1 + (uint64_t)i);
                check_published(&t, cfg.area_id);
                w2_seqs[n_w2++] = t.m.publish_segment.seq;
                assert_int_equal(sgl_reader_add_segment_consume_fd(r, t.fd), 0);
        }

        /* a STRICT reader folding both writers' sealed segments */
        for (size_t i = 0; i < k.n; i++)
                if (k.event[i] == SGL_SEGMENT_SEALED)
                        assert_int_equal(sgl_reader_add_segment_consume_fd(
                                r, fcntl(k.fd[i], F_DUPFD_CLOEXEC, 3)), 0);
        assert_get_str(r, 1, "one-v3", &v);
        assert_true(v > max_version);
        assert_gone(r, 2);
        assert_gone(r, 3);
        assert_get_str(r, 4, "four: overwritten again and again", NULL);
        assert_get_str(r, 5, "five, never sealed", NULL);
        assert_get_str(r, anon1, "anon-1", NULL);
        assert_get_str(r, anon2, "anon-2", NULL);
        assert_get_str(r, anon3, "anon-3", &v);
        assert_true(v > max_version);

        /* compaction works on the adopted log: relocates, RETIREs adopted */
        n = sgl_writer_gc(w2);
        assert_true(n >= 1);
        {
                unsigned retires = 0;
                while (retires < (unsigned)n) {
                        assert_int_equal(tap_next(&f, &t), 0);
                        if (t.m.type == SGL_MSG_PUBLISH_SEGMENT) {
                                check_published(&t, cfg.area_id);
                                assert_true(t.m.publish_segment.seq > w2_seqs[n_w2 - 1]);
                                assert_int_equal(sgl_reader_add_segment_consume_fd(r, t.fd), 0);
                                continue;
                        }
                        assert_int_equal(t.m.type, SGL_MSG_RETIRE);
                        assert_true(t.m.retire.seq != 2);
                        retires++;
                }
        }
        assert_get_str(r, 1, "one-v3", NULL);
        assert_get_str(r, 4, "four: overwritten again and again", NULL);
        assert_get_str(r, 5, "five, never sealed", NULL);
        assert_get_str(r, anon1, "anon-1", NULL);
        assert_gone(r, 2);
        assert_gone(r, 3);
        assert_int_equal(sgl_writer_publish_process(w2), 0);

        sgl_reader_unref(r);
        assert_null(sgl_writer_unref(w2));
        tap_expect_eof(&f);
        fake_finish(&f);
        for (size_t i = 0; i < k.n; i++)
                close(k.fd[i]);
        assert_int_equal(tu_count_fds(), before);
}

/* A sealed segment of area @id with seq @seq holding one record (@kind,
 * @chunk, @version, payload @s); its commit header says the writer's next
 * version is @next_version, or says nothing (0: an old or hostile writer;
 * the adopter must then go by the records). */
static int make_segment_rec(const uint8_t id[16], uint64_t seq, uint32_t kind, uint64_t chunk,
                            uint64_t version, const char *s, uint64_t next_version) {
        struct sgl_seg_header h = {
                .magic = SGL_SEG_MAGIC, .version = SGL_FORMAT_VERSION,
                .header_size = sizeof(h), .seq = seq, .size = 2 * SGL_PAGE,
        };
        struct sgl_commit_header c = {
                .magic = SGL_COMMIT_MAGIC, .nrec = 1, .commit_no = seq,
                .len = sizeof(c) + sgl_record_span(strlen(s)),
                .next_version = next_version,
                .next_anon_id = next_version ? 1ULL << 63 : 0,
        };
        struct sgl_record rec = {
                .kind = kind, .id = chunk, .version = version, .len = strlen(s),
        };
        int fd = sgl_memfd_create("test-seg", 2 * SGL_PAGE), ro;

        assert_true(fd >= 0);
        memcpy(h.area_id, id, 16);
        h.commit_end = SGL_SEG_DATA + c.len;
        assert_int_equal(pwrite(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
        assert_int_equal(pwrite(fd, &c, sizeof(c), SGL_SEG_DATA), (ssize_t)sizeof(c));
        assert_int_equal(pwrite(fd, &rec, sizeof(rec), SGL_SEG_DATA + sizeof(c)), (ssize_t)sizeof(rec));
        if (*s)
                assert_int_equal(pwrite(fd, s, strlen(s), SGL_SEG_DATA + sizeof(c) + sizeof(rec)),
                                 (ssize_t)strlen(s));
        assert_int_equal(sgl_memfd_seal_write(fd), 0);
        ro = sgl_memfd_reopen_ro(fd);
        assert_true(ro >= 0);
        close(fd);
        return ro;
}

/* Chunk 7 = @s, version 100 * @seq. */
static int make_segment(const uint8_t id[16], uint64_t seq, const char *s) {
        return make_segment_rec(id, seq, SGL_REC_DATA, 7, 100 * seq, s, 100 * seq + 1);
}

static void test_takeover_hostile(void **state) {
        static const uint8_t other[16] = { 9, 9, 9 };
        struct fake_cfg cfg = { .after = FAKE_SERVE, .claimed_flags = SGL_CLAIMED_TAKEOVER,
                                .next_seq = 20 };
        unsigned before = tu_count_fds(), nretire = 0, sealed13 = 0;
        uint64_t retired[8], v, anon;
        struct tapped t;
        uint32_t serial;
        sgl_writer *w;
        sgl_reader *r;
        struct fake f;
        int pfd[2], raw;

        memcpy(cfg.area_id, AREA_A, 16);
        assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
        raw = memfd_create("unsealed", MFD_CLOEXEC);
        assert_true(raw >= 0);
        assert_int_equal(ftruncate(raw, 2 * 4096), 0);
        cfg.takeover_fd[0] = pfd[0];                          cfg.takeover_seq[0] = 3;
        cfg.takeover_fd[1] = raw;                             cfg.takeover_seq[1] = 4;
        cfg.takeover_fd[2] = make_segment(other, 5, "x"); cfg.takeover_seq[2] = 5;
        cfg.takeover_fd[3] = make_segment(AREA_A, 6, "liar"); cfg.takeover_seq[3] = 16;
        cfg.takeover_fd[4] = make_segment(AREA_A, 8, "good"); cfg.takeover_seq[4] = 8;
        /* good ones whose commit headers say nothing about counters */
        cfg.takeover_fd[5] = make_segment_rec(AREA_A, 9, SGL_REC_DATA, (1ULL << 63) + 50, 900,
                                              "anon", 0);
        cfg.takeover_seq[5] = 9;
        /* a tombstone, then data of the same version: the tombstone wins,
         * as it does for a reader */
        cfg.takeover_fd[6] = make_segment_rec(AREA_A, 10, SGL_REC_TOMBSTONE, 11, 950, "", 0);
        cfg.takeover_seq[6] = 10;
        cfg.takeover_fd[7] = make_segment_rec(AREA_A, 11, SGL_REC_DATA, 11, 950, "undead", 0);
        cfg.takeover_seq[7] = 11;
        cfg.takeover_fd[8] = make_segment_rec(AREA_A, 12, SGL_REC_DATA, 12, 960, "twelve", 0);
        cfg.takeover_seq[8] = 12;
        /* its writer had staged (and aborted) up to version 4999 */
        cfg.takeover_fd[9] = make_segment_rec(AREA_A, 13, SGL_REC_DATA, 13, 970, "13", 5000);
        cfg.takeover_seq[9] = 13;
        /* counters about to wrap: corrupt, not a reason to wrap to 0 */
        cfg.takeover_fd[10] = make_segment_rec(AREA_A, 14, SGL_REC_DATA, UINT64_MAX - 1,
                                               UINT64_MAX - 1, "wrap", UINT64_MAX);
        cfg.takeover_seq[10] = 14;
        for (int i = 0; i < 11; i++)
                cfg.takeover_event[i] = SGL_SEGMENT_SEALED;
        /* sealed in place, but its writer died before saying so */
        cfg.takeover_event[9] = SGL_SEGMENT_OPENED;
        cfg.n_takeover = 11;
        fake_start(&f, &cfg);

        assert_int_equal(sgl_writer_new("pub-hostile", 0, &w), 0);
        assert_int_equal(sgl_writer_publish(w, NULL, f.address, 0, 0400, NULL, 0, NULL, 0), 0);
        tap_handshake(&f, AREA_A, &serial);
        for (;;) {
                assert_int_equal(tap_next(&f, &t), 0);
                if (t.m.type == SGL_MSG_PING)
                        break;
                if (t.m.type == SGL_MSG_PUBLISH_SEGMENT) {
                        struct stat a, b;

                        /* the very file the daemon holds as open */
                        assert_int_equal(t.m.publish_segment.seq, 13);
                        assert_int_equal(t.m.publish_segment.event, SGL_SEGMENT_SEALED);
                        check_published(&t, AREA_A);
                        assert_int_equal(fstat(t.fd, &a), 0);
                        assert_int_equal(fstat(cfg.takeover_fd[9], &b), 0);
                        assert_int_equal(a.st_ino, b.st_ino);
                        close(t.fd);
                        sealed13++;
                        continue;
                }
                assert_int_equal(t.m.type, SGL_MSG_RETIRE);
                retired[nretire++] = t.m.retire.seq;
        }
        assert_int_equal(sealed13, 1);
        /* dropped in seq order, and only the bad ones */
        assert_int_equal(nretire, 4);
        assert_int_equal(retired[0], 3);
        assert_int_equal(retired[1], 4);
        assert_int_equal(retired[2], 5);
        assert_int_equal(retired[3], 16);

        /* the good ones are the writer's: it knows their ids, and its
         * versions and anonymous ids go on past theirs */
        assert_int_equal(sgl_writer_delete(w, 11), -ENOENT);
        assert_int_equal(sgl_writer_delete(w, 12), 0);
        assert_int_equal(sgl_writer_commit(w), 0);
        tap_expect(&f, &t, SGL_MSG_PUBLISH_SEGMENT);
        assert_int_equal(t.m.publish_segment.seq, 20);
        close(t.fd);
        commit_one(w, 7, "newer");
        assert_int_equal(sgl_writer_write(w, 0, 0, "anon-new", 8, &anon), 0);
        assert_true(anon > (1ULL << 63) + 50);
        assert_true(anon < UINT64_MAX - (1ULL << 32));
        assert_int_equal(sgl_reader_new(0, &r), 0);
        assert_int_equal(sgl_reader_add_segment_consume_fd(r, cfg.takeover_fd[4]), 0);
        tap_expect(&f, &t, SGL_MSG_PUBLISH_SEGMENT);
        assert_int_equal(t.m.publish_segment.seq, 21);
        assert_int_equal(sgl_reader_add_segment_consume_fd(r, t.fd), 0);
        assert_get_str(r, 7, "newer", &v);
        assert_true(v >= 5000);
        assert_true(v < (1ULL << 32));
        sgl_reader_unref(r);
        assert_null(sgl_writer_unref(w));
        tap_expect_eof(&f);
        fake_finish(&f);
        for (int i = 0; i < 11; i++)
                if (i != 4)
                        close(cfg.takeover_fd[i]);
        close(pfd[1]);

        /* a server that repeats a seq, or goes past next_seq */
        for (int c = 0; c < 3; c++) {
                sgl_writer *w3;

                memset(&cfg, 0, sizeof(cfg));
                memcpy(cfg.area_id, AREA_A, 16);
                cfg.claimed_flags = SGL_CLAIMED_TAKEOVER;
                cfg.next_seq = 10;
                cfg.takeover_fd[0] = make_segment(AREA_A, 2, "a");
                cfg.takeover_seq[0] = 2;
                cfg.takeover_fd[1] = make_segment(AREA_A, c == 0 ? 2 : 10, "b");
                cfg.takeover_seq[1] = c == 0 ? 2 : 10;
                cfg.takeover_event[0] = cfg.takeover_event[1] = SGL_SEGMENT_SEALED;
                cfg.n_takeover = 2;
                fake_start(&f, &cfg);
                assert_int_equal(sgl_writer_new("pub-hostile", 0, &w3), 0);
                if (c == 2)
                        commit_one(w3, 1, "a writer with a segment cannot adopt");
                assert_int_equal(sgl_writer_publish(w3, NULL, f.address, 0, 0400, NULL, 0, NULL, 0),
                                 c == 2 ? -EBUSY : -EPROTO);
                assert_int_equal(sgl_writer_get_publish_fd(w3), -ENOTCONN);
                if (c < 2) {
                        struct sgl_writer_stats st;
                        assert_int_equal(sgl_writer_get_stats(w3, &st), 0);
                        assert_int_equal(st.segments, 0);
                }
                tap_expect(&f, &t, SGL_MSG_HELLO);
                tap_expect(&f, &t, SGL_MSG_CLAIM);
                tap_expect_eof(&f);
                fake_finish(&f);
                close(cfg.takeover_fd[0]);
                close(cfg.takeover_fd[1]);
                assert_null(sgl_writer_unref(w3));
        }
        assert_int_equal(tu_count_fds(), before);
}

/* ---------------------------------------------------------------- errors */

static void test_errors(void **state) {
        static const uint32_t bad_id = UINT32_MAX, ok_ids[65] = { 0 };
        struct fake_cfg cfg = { .next_seq = 1 };
        unsigned before = tu_count_fds();
        char address[108], *dir, path[256];
        struct tapped t;
        uint32_t serial;
        sgl_writer *w;
        sgl_host *h;
        struct fake f;
        int pfd;

        memcpy(cfg.area_id, AREA_A, 16);
        assert_int_equal(sgl_writer_new("pub-errors", 0, &w), 0);

        /* bad arguments: refused before anything is sent */
        snprintf(address, sizeof(address), "@sigillo-test-publish-none-%d", (int)getpid());
        assert_int_equal(sgl_writer_publish(NULL, "x", address, 0, 0, NULL, 0, NULL, 0), -EINVAL);
        assert_int_equal(sgl_writer_publish(w, ".x", address, 0, 0, NULL, 0, NULL, 0), -EINVAL);
        assert_int_equal(sgl_writer_publish(w, "a/b", address, 0, 0, NULL, 0, NULL, 0), -EINVAL);
        assert_int_equal(sgl_writer_publish(w, "", address, 0, 0, NULL, 0, NULL, 0), -EINVAL);
        assert_int_equal(sgl_writer_publish(w, "x", address, 2, 0, NULL, 0, NULL, 0), -EINVAL);
        assert_int_equal(sgl_writer_publish(w, "x", address, 0, 0200, NULL, 0, NULL, 0), -EINVAL);
        assert_int_equal(sgl_writer_publish(w, "x", address, 0, 0, ok_ids, 65, NULL, 0), -EINVAL);
        assert_int_equal(sgl_writer_publish(w, "x", address, 0, 0, NULL, 0, ok_ids, 65), -EINVAL);
        assert_int_equal(sgl_writer_publish(w, "x", address, 0, 0, NULL, 1, NULL, 0), -EINVAL);
        assert_int_equal(sgl_writer_publish(w, "x", address, 0, 0, &bad_id, 1, NULL, 0), -EINVAL);
        assert_int_equal(sgl_writer_publish(w, "x", address, 0, 0, NULL, 0, &bad_id, 1), -EINVAL);

        /* no daemon */
        assert_int_equal(sgl_writer_publish(w, "x", address, 0, 0, NULL, 0, NULL, 0), -ECONNREFUSED);
        dir = tu_mkdtemp(NULL);
        snprintf(path, sizeof(path), "%s/none", dir);
        assert_int_equal(sgl_writer_publish(w, "x", path, 0, 0, NULL, 0, NULL, 0), -ENOENT);
        setenv("SIGILLO_SOCKET", path, 1);
        assert_int_equal(sgl_writer_publish(w, "x", NULL, 0, 0, NULL, 0, NULL, 0), -ENOENT);
        unsetenv("SIGILLO_SOCKET");
        tu_rm_rf(dir);

        /* an embedded host takes no writer */
        assert_int_equal(sgl_host_new(w, address, &h), 0);
        {
                sgl_writer *other;
                pid_t pid;
                int status;

                assert_int_equal(sgl_writer_new("pub-errors-2", 0, &other), 0);
                /* the host must run while we publish: serve it from a child */
                fflush(stdout);
                pid = fork();
                assert_true(pid >= 0);
                if (pid == 0) {
                        for (int i = 0; i < 500; i++) {
                                struct pollfd p = { .fd = sgl_host_get_fd(h), .events = POLLIN };
                                poll(&p, 1, 10);
                                sgl_host_process(h);
                        }
                        _exit(0);
                }
                assert_int_equal(sgl_writer_publish(other, "x", address, 0, 0, NULL, 0, NULL, 0),
                                 -EOPNOTSUPP);
                kill(pid, SIGKILL);
                waitpid(pid, &status, 0);
                assert_null(sgl_writer_unref(other));
        }
        assert_null(sgl_host_unref(h));

        /* CLAIM refused: not published, may try again */
        cfg.claim_error = -EBUSY;
        fake_start(&f, &cfg);
        assert_int_equal(sgl_writer_publish(w, "x", f.address, 0, 0, NULL, 0, NULL, 0), -EBUSY);
        assert_int_equal(sgl_writer_get_publish_fd(w), -ENOTCONN);
        tap_expect(&f, &t, SGL_MSG_HELLO);
        tap_expect(&f, &t, SGL_MSG_CLAIM);
        tap_expect_eof(&f);
        fake_finish(&f);
        cfg.claim_error = 0;

        /* HELLO refused */
        cfg.hello_error = -EACCES;
        fake_start(&f, &cfg);
        assert_int_equal(sgl_writer_publish(w, "x", f.address, 0, 0, NULL, 0, NULL, 0), -EACCES);
        fake_finish(&f);
        cfg.hello_error = 0;

        /* a daemon that answers PING with something else (and an fd) */
        cfg.after = FAKE_JUNK;
        fake_start(&f, &cfg);
        assert_int_equal(sgl_writer_publish(w, "x", f.address, 0, 0, NULL, 0, NULL, 0), -EPROTO);
        assert_int_equal(sgl_writer_get_publish_fd(w), -ENOTCONN);
        fake_finish(&f);
        assert_int_equal(tu_count_fds(), before + 1); /* the writer's control page */

        /* the daemon closes after the handshake */
        cfg.after = FAKE_CLOSE;
        fake_start(&f, &cfg);
        assert_int_equal(sgl_writer_publish(w, "x", f.address, 0, 0, NULL, 0, NULL, 0), 0);
        pfd = sgl_writer_get_publish_fd(w);
        assert_true(pfd >= 0);
        wait_readable(pfd);
        assert_int_equal(sgl_writer_publish_process(w), -ECONNRESET);
        assert_int_equal(sgl_writer_publish_process(w), -ECONNRESET);
        assert_false(readable_now(pfd));
        commit_one(w, 1, "the writer does not care");
        assert_int_equal(sgl_writer_publish_process(w), -ECONNRESET);
        assert_int_equal(sgl_writer_publish(w, "x", f.address, 0, 0, NULL, 0, NULL, 0), -EALREADY);
        fake_finish(&f);
        assert_null(sgl_writer_unref(w));

        /* the daemon refuses the second segment: ERROR, close */
        assert_int_equal(sgl_writer_new("pub-errors", 0, &w), 0);
        cfg.after = FAKE_ERROR;
        cfg.error_after = 2;
        cfg.error_value = -EDQUOT;
        fake_start(&f, &cfg);
        assert_int_equal(sgl_writer_publish(w, "x", f.address, 0, 0, NULL, 0, NULL, 0), 0);
        tap_handshake(&f, AREA_A, &serial);
        tap_expect(&f, &t, SGL_MSG_PING);
        pfd = sgl_writer_get_publish_fd(w);
        commit_one(w, 1, "first");
        commit_one(w, 2, "second");
        wait_readable(pfd);
        assert_int_equal(sgl_writer_publish_process(w), -EDQUOT);
        commit_one(w, 3, "third");
        assert_int_equal(sgl_writer_publish_process(w), -EDQUOT);
        for (int i = 0; i < 2; i++) {
                tap_expect(&f, &t, SGL_MSG_PUBLISH_SEGMENT);
                close(t.fd);
        }
        tap_expect_eof(&f);
        fake_finish(&f);
        assert_null(sgl_writer_unref(w));
        /* ERROR and close at once: the events the writer sends meanwhile
         * fail (EPIPE), but what the daemon said is the reason given */
        assert_int_equal(sgl_writer_new("pub-errors", 0, &w), 0);
        cfg.error_after = 1;
        cfg.error_value = -EBADF;
        fake_start(&f, &cfg);
        assert_int_equal(sgl_writer_publish(w, "x", f.address, 0, 0, NULL, 0, NULL, 0), 0);
        tap_handshake(&f, AREA_A, &serial);
        tap_expect(&f, &t, SGL_MSG_PING);
        for (int i = 0; i < 5; i++) {
                commit_one(w, 1, "into the void");
                usleep(2000);
        }
        tap_expect(&f, &t, SGL_MSG_PUBLISH_SEGMENT);
        close(t.fd);
        tap_expect_eof(&f);
        assert_int_equal(sgl_writer_publish_process(w), -EBADF);
        assert_null(sgl_writer_unref(w));
        fake_finish(&f);
        assert_int_equal(tu_count_fds(), before);
}

/* ----------------------------------------------------------------- queue */

static void test_queue_flush(void **state) {
        struct fake_cfg cfg = { .next_seq = 1, .after = FAKE_STALL };
        unsigned before = tu_count_fds(), got = 0, N = 0;
        struct tapped t;
        uint32_t serial;
        sgl_writer *w;
        struct fake f;
        int pfd, q;

        memcpy(cfg.area_id, AREA_A, 16);
        fake_start(&f, &cfg);
        assert_int_equal(sgl_writer_new("pub-queue", 0, &w), 0);
        assert_int_equal(sgl_writer_set_gc(w, 0, 0, 0), 0);
        assert_int_equal(sgl_writer_publish(w, "q", f.address, 0, 0, NULL, 0, NULL, 0), 0);
        tap_handshake(&f, AREA_A, &serial);
        tap_expect(&f, &t, SGL_MSG_PING);
        pfd = sgl_writer_get_publish_fd(w);

        /* the daemon does not read: the writer does not wait; commit
         * until the socket is full and 100 events are queued */
        for (q = 0; q < 100; N++) {
                assert_true(N < 20000);
                commit_one(w, 1 + N % 7, "queued while the daemon sleeps");
                q = sgl_writer_publish_process(w);
                assert_true(q >= 0);
        }
        assert_int_equal(q, 100);
        assert_false(readable_now(pfd)); /* nothing can be sent yet */

        /* the daemon wakes: everything arrives, in order */
        assert_int_equal(write(f.tap, "g", 1), 1);
        while (got < N) {
                struct pollfd p[2] = { { .fd = pfd, .events = POLLIN },
                                       { .fd = f.tap, .events = POLLIN } };
                assert_true(poll(p, 2, 10000) > 0);
                if (p[0].revents)
                        assert_true(sgl_writer_publish_process(w) >= 0);
                if (p[1].revents) {
                        tap_expect(&f, &t, SGL_MSG_PUBLISH_SEGMENT);
                        assert_int_equal(t.m.publish_segment.seq, ++got);
                        assert_true(t.m.serial > serial);
                        serial = t.m.serial;
                        close(t.fd);
                }
        }
        assert_int_equal(sgl_writer_publish_process(w), 0);
        assert_null(sgl_writer_unref(w));
        tap_expect_eof(&f);
        fake_finish(&f);
        assert_int_equal(tu_count_fds(), before);
}

static void test_queue_overflow(void **state) {
        struct fake_cfg cfg = { .next_seq = 1, .after = FAKE_STALL };
        unsigned before = tu_count_fds(), with_segments, i;
        struct tapped t;
        uint32_t serial;
        sgl_writer *w;
        struct fake f;
        int pfd, q, last_q = 0;
        struct rlimit rl;

        /* the writer holds a descriptor per segment, plus one per queued
         * event: a few thousand in all */
        assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 8192)
                skip();
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 8192) {
                rl.rlim_cur = 8192;
                assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
        }

        memcpy(cfg.area_id, AREA_A, 16);
        fake_start(&f, &cfg);
        assert_int_equal(sgl_writer_new("pub-overflow", 0, &w), 0);
        assert_int_equal(sgl_writer_set_gc(w, 0, 0, 0), 0);
        assert_int_equal(sgl_writer_publish(w, "q", f.address, 0, 0, NULL, 0, NULL, 0), 0);
        tap_handshake(&f, AREA_A, &serial);
        tap_expect(&f, &t, SGL_MSG_PING);
        pfd = sgl_writer_get_publish_fd(w);

        for (i = 0; i < 20000; i++) {
                commit_one(w, 1, "nobody reads this");
                /* quiet while the queue only grows: the socket is full */
                if (readable_now(pfd))
                        break;
                q = sgl_writer_publish_process(w);
                assert_true(q >= last_q);
                last_q = q;
        }
        assert_int_equal(last_q, 1024);
        assert_int_equal(sgl_writer_publish_process(w), -ENOBUFS);
        assert_false(readable_now(pfd));
        assert_int_equal(sgl_writer_publish_process(w), -ENOBUFS);

        /* the writer goes on; the queued descriptors are gone: only the
         * writer's own (one per live segment) remain */
        commit_one(w, 2, "after");
        with_segments = tu_count_fds();
        /* tap, control page, publish epoll + eventfd, one per segment,
         * the next one-shot memfd made ahead and its read-only description */
        assert_int_equal(with_segments, before + 4 + (i + 2) + 2);
        assert_null(sgl_writer_unref(w));
        fake_finish(&f);
        assert_int_equal(tu_count_fds(), before);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_claim_and_segments),
                cmocka_unit_test(test_existing_segments),
                cmocka_unit_test(test_retire_after_gc),
                cmocka_unit_test(test_takeover),
                cmocka_unit_test(test_takeover_hostile),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_queue_flush),
                cmocka_unit_test(test_queue_overflow),
        };

        signal(SIGPIPE, SIG_IGN);
        tu_watchdog(60);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
