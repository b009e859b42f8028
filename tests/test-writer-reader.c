/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-writer-reader.c - one writer and reader *processes*: what a reader in
 * another process sees of what the writer commits.
 *
 * The writer lives in the test process; every reader is a child (tu_fork())
 * forked before the writer exists, so it inherits none of the writer's
 * descriptors or mappings.  Segment descriptors reach the readers the way a
 * rendezvous host hands them out: the writer's segment callback sends each
 * one over a SOCK_SEQPACKET socketpair with SCM_RIGHTS (src/fdpass.c), in a
 * tiny message of our own ({seq, event} plus the fd).  The same socket
 * carries commands to the reader (drain, get, wait, ...) and its replies,
 * so the assertions run in the test process on what the reader reported:
 * ids, versions, sizes and FNV-1a checksums of the payload bytes.  That
 * harness is test-proc.c's, shared with test-gc.c.
 *
 * It proves:
 * - stream order: chunks committed one by one reach two reader processes
 *   (STRICT and TRUSTED, streaming concurrently) in commit order, byte-exact;
 * - keyed use: sgl_reader_get() returns the newest version, versions grow;
 * - expiry: chunks expired at commit or later are skipped by next() and
 *   -ENOENT for get();
 * - update: a newer version obsoletes the older one in the stream;
 * - delete: tombstones hide the id from get() and the stream; deleting an
 *   unknown, deleted or expired id is -ENOENT at the writer;
 * - batch commit: a TRUSTED reader polling the open segment while the writer
 *   stages slowly (zero-copy, filled in place) sees none or all of the batch;
 * - each seal policy (EVERY_COMMIT, BYTES, USEC + tick, WHEN_FULL, explicit
 *   seal; in place and by copy): STRICT readers see a commit exactly when
 *   its segment is sealed, TRUSTED readers at commit; a reader process that
 *   pins a page of the open segment costs the writer a copy, never a seal;
 *   a seal that fails (no descriptor left) loses nothing, the writer goes
 *   on and the next stage seals;
 * - sgl_reader_wait() across processes: wakes every waiting reader within a
 *   bounded time on a commit, times out when nothing happens;
 * - a late reader (sgl_writer_foreach_segment()) sees every live chunk;
 * - one-shot segments (SGL_SEAL_EVERY_COMMIT, written by pwrite and
 *   sealed before anyone sees them): a failed seal loses nothing and is
 *   retried by the next stage;
 * - a reader connected to an embedded host reads what it mapped before it
 *   takes the host's pushes (no syscall while it has data), in log order;
 * - packing: commits follow each other at 64-byte alignment from offset 64
 *   (commit_end grows by a commit's bytes), and a segment sealed after one
 *   small commit is one page;
 * - chunks of 0, 1, 4095, 4096, 4097 bytes and 3 MiB (more than a segment)
 *   round-trip byte-exact;
 * - descriptor hygiene: the writer process and every reader end each test
 *   with the descriptors they started with, and readers keep none while
 *   they map segments.
 */

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sigillo.h"
#include "segment.h"
#include "test-proc.h"
#include "test-util.h"

#define PAGE 4096u
#define USEC_PER_MSEC 1000ULL
#define NSEC_PER_MSEC 1000000ULL
#define NSEC_PER_SEC 1000000000ULL

/* ============================================================== tests === */

/* N chunks with distinct payloads, committed one by one, reach a STRICT and
 * a TRUSTED reader process, each streaming on its own while the writer
 * commits, in commit order and byte-exact. */
#define STREAM_N 400
static void test_stream_order(void **state) {
        const unsigned flags[] = { 0, SGL_READER_TRUSTED };
        static struct put puts[STREAM_N];
        static struct dlv got[STREAM_N + 1];
        struct rd rd[2];
        struct hub h = {};
        sgl_writer_stats stats;
        sgl_writer *w;
        unsigned fds = tu_count_fds();

        w = spawn_readers(&h, rd, flags, 2, 0);
        for (int i = 0; i < 2; i++) {
                hub_join(&h, w, &rd[i]);
                hub_control(w, &rd[i]);
                rd_send(&rd[i], M_STREAM, 0, 0, 0, -1);
        }

        for (size_t i = 0; i < STREAM_N; i++) {
                /* sizes from 0 to ~9 KiB, ids fresh and named, some anonymous */
                size_t size = (i * 977) % 9000;
                uint64_t id = i % 5 == 4 ? 0 : 1000 + i;
                puts[i] = put_write(w, id, 0x5eed0000 + i, size, 0);
                assert_int_equal(sgl_writer_commit(w), 0);
        }
        for (int i = 0; i < 2; i++)
                rd_send(&rd[i], M_DONE, 0, 0, 0, -1);

        for (int i = 0; i < 2; i++) {
                int last;
                size_t n = rd_collect(&rd[i], got, ELEMENTS(got), &last);

                assert_int_equal(last, -EAGAIN);
                assert_int_equal(n, STREAM_N);
                for (size_t j = 0; j < n; j++) {
                        assert_dlv_is(&got[j], &puts[j]);
                        if (j > 0)
                                assert_true(got[j].version > got[j - 1].version);
                }
        }
        assert_int_equal(sgl_writer_get_stats(w, &stats), 0);
        /* compaction ran (more than 256 segments) and its commits count */
        assert_true(stats.gc_runs > 0);
        assert_int_equal(stats.commits, STREAM_N + stats.gc_runs);
        for (int i = 0; i < 2; i++)
                rd_quit(&rd[i]);
        sgl_writer_unref(w);
        assert_int_equal(tu_count_fds(), fds);
}

/* An id updated several times: get() returns the newest after every
 * commit, its version grows, and the stream yields each id once, newest. */
static void test_keyed_latest(void **state) {
        const unsigned flags[] = { 0, SGL_READER_TRUSTED, 0 };
        struct rd rd[3];
        struct hub h = {};
        struct put other, p = {}, batch[2], want[2];
        uint64_t last_ver[2] = {};
        struct dlv d;
        unsigned fds = tu_count_fds();
        sgl_writer *w = setup(&h, rd, flags, 2, 0);

        rd_spawn(&rd[2], 0); /* joins at the end */
        other = commit_one(w, 7, 1, 100);
        for (unsigned k = 0; k < 6; k++) {
                p = commit_one(w, 42, 100 + k, 10 + k * 1500);
                for (int i = 0; i < 2; i++) {
                        assert_int_equal(rd_get(&rd[i], 42, &d), 0);
                        assert_int_equal(d.size, p.size);
                        assert_int_equal(d.hash, p.hash);
                        assert_true(d.version > last_ver[i]);
                        last_ver[i] = d.version;
                        expect_get(&rd[i], &other);
                }
        }
        assert_int_equal(last_ver[0], last_ver[1]);
        assert_int_equal(rd_get(&rd[0], 43, &d), -ENOENT);

        /* streaming only now: each id once, its newest version */
        want[0] = other;
        want[1] = p;
        expect_drain(&rd[0], want, 2);
        expect_drain(&rd[1], want, 2);
        hub_join(&h, w, &rd[2]);
        expect_drain(&rd[2], want, 2);
        expect_get(&rd[2], &p);

        /* two versions in one batch: the later one wins */
        batch[0] = put_write(w, 42, 200, 333, 0);
        batch[1] = put_write(w, 42, 201, 444, 0);
        assert_int_equal(sgl_writer_commit(w), 0);
        for (int i = 0; i < 3; i++) {
                expect_get(&rd[i], &batch[1]);
                expect_drain(&rd[i], &batch[1], 1);
        }
        assert_int_equal(rd_get(&rd[1], 42, &d), 0);
        assert_true(d.version > last_ver[1]);

        teardown(w, rd, 3);
        assert_int_equal(tu_count_fds(), fds);
}

/* Chunks expired at commit are never seen; a chunk expiring later is seen
 * before and skipped (-ENOENT) after its expiry. */
static void test_expiry(void **state) {
        const unsigned flags[] = { 0, SGL_READER_TRUSTED };
        struct rd rd[2];
        struct hub h = {};
        struct put past, soon, never, want[2];
        uint64_t now, t0;
        struct dlv d;
        unsigned fds = tu_count_fds();
        sgl_writer *w = setup(&h, rd, flags, 2, 0);

        now = sgl_now_ns();
        t0 = mono_usec();
        past = put_write(w, 1, 11, 300, now - NSEC_PER_SEC);
        soon = put_write(w, 2, 12, 300, now + 600 * NSEC_PER_MSEC);
        never = put_write(w, 3, 13, 300, 0);
        assert_int_equal(sgl_writer_commit(w), 0);

        for (int i = 0; i < 2; i++) {
                assert_int_equal(rd_get(&rd[i], past.id, &d), -ENOENT);
                expect_get(&rd[i], &soon);
                expect_get(&rd[i], &never);
        }
        want[0] = soon;
        want[1] = never;
        expect_drain(&rd[1], want, 2); /* expiry time reported as committed */
        assert_true(mono_usec() - t0 < 550 * USEC_PER_MSEC); /* checked in time */

        sleep_ms(650 - (unsigned)((mono_usec() - t0) / USEC_PER_MSEC));
        assert_true(sgl_now_ns() > soon.expiry);
        for (int i = 0; i < 2; i++) {
                assert_int_equal(rd_get(&rd[i], 2, &d), -ENOENT);
                assert_int_equal(rd_get(&rd[i], 1, &d), -ENOENT);
                expect_get(&rd[i], &never);
        }
        expect_drain(&rd[0], &never, 1); /* streams only now: soon is gone */
        expect_drain(&rd[1], NULL, 0);

        /* an expired id cannot be deleted; a chunk expired at commit alone */
        assert_int_equal(sgl_writer_delete(w, 2), -ENOENT);
        assert_int_equal(sgl_writer_delete(w, 1), -ENOENT);
        past = put_write(w, 4, 14, 10, sgl_now_ns() - 1);
        assert_int_equal(sgl_writer_commit(w), 0);
        for (int i = 0; i < 2; i++) {
                expect_drain(&rd[i], NULL, 0);
                assert_int_equal(rd_get(&rd[i], past.id, &d), -ENOENT);
        }
        /* a new version without expiry brings the id back */
        soon = commit_one(w, 2, 15, 77);
        for (int i = 0; i < 2; i++) {
                expect_get(&rd[i], &soon);
                expect_drain(&rd[i], &soon, 1);
        }

        teardown(w, rd, 2);
        assert_int_equal(tu_count_fds(), fds);
}

/* A new version obsoletes the old one: a reader that reads between the
 * commits gets both, one that reads after both gets only the new one. */
static void test_update(void **state) {
        const unsigned flags[] = { 0, 0, SGL_READER_TRUSTED };
        struct rd rd[3];
        struct hub h = {};
        struct put v1, v2;
        struct dlv d1[4], d2[4];
        unsigned fds = tu_count_fds();
        sgl_writer *w = setup(&h, rd, flags, 3, 0);

        v1 = commit_one(w, 5, 21, 1000);
        assert_int_equal(rd_drain(&rd[0], 0, d1, 4), 1);
        assert_dlv_is(&d1[0], &v1);
        v2 = commit_one(w, 5, 22, 2000);
        assert_int_equal(rd_drain(&rd[0], 0, d2, 4), 1);
        assert_dlv_is(&d2[0], &v2);
        assert_true(d2[0].version > d1[0].version);
        for (int i = 1; i < 3; i++) {
                assert_int_equal(rd_drain(&rd[i], 0, d1, 4), 1);
                assert_dlv_is(&d1[0], &v2);
                assert_int_equal(d1[0].version, d2[0].version);
        }
        for (int i = 0; i < 3; i++)
                expect_get(&rd[i], &v2);

        teardown(w, rd, 3);
        assert_int_equal(tu_count_fds(), fds);
}

/* Tombstones: the id is gone for get() and the stream; deleting what is
 * not live is -ENOENT at the writer. */
static void test_delete(void **state) {
        const unsigned flags[] = { 0, SGL_READER_TRUSTED };
        struct rd rd[2];
        struct hub h = {};
        struct put x, y, z, want[2];
        struct dlv d;
        unsigned fds = tu_count_fds();
        sgl_writer *w = setup(&h, rd, flags, 2, 0);

        x = put_write(w, 10, 31, 500, 0);
        y = put_write(w, 11, 32, 600, 0);
        /* staged but not committed: not deletable yet */
        assert_int_equal(sgl_writer_delete(w, 10), -ENOENT);
        assert_int_equal(sgl_writer_commit(w), 0);
        want[0] = x;
        want[1] = y;
        expect_drain(&rd[0], want, 2);

        assert_int_equal(sgl_writer_delete(w, 999), -ENOENT);
        assert_int_equal(sgl_writer_delete(w, 0), -EINVAL);
        assert_int_equal(sgl_writer_delete(w, 10), 0);
        assert_int_equal(sgl_writer_commit(w), 0);
        assert_int_equal(sgl_writer_delete(w, 10), -ENOENT); /* already deleted */

        for (int i = 0; i < 2; i++) {
                assert_int_equal(rd_get(&rd[i], 10, &d), -ENOENT);
                expect_get(&rd[i], &y);
        }
        expect_drain(&rd[0], NULL, 0);
        expect_drain(&rd[1], &y, 1); /* streams only now: x is skipped */

        /* written again after the delete: alive again */
        z = commit_one(w, 10, 33, 700);
        for (int i = 0; i < 2; i++) {
                expect_get(&rd[i], &z);
                expect_drain(&rd[i], &z, 1);
        }

        /* a new version and its delete in one batch: deleted */
        y = put_write(w, 11, 34, 800, 0);
        assert_int_equal(sgl_writer_delete(w, 11), 0);
        assert_int_equal(sgl_writer_commit(w), 0);
        for (int i = 0; i < 2; i++) {
                assert_int_equal(rd_get(&rd[i], 11, &d), -ENOENT);
                expect_drain(&rd[i], NULL, 0);
        }
        assert_int_equal(sgl_writer_delete(w, 11), -ENOENT);

        teardown(w, rd, 2);
        assert_int_equal(tu_count_fds(), fds);
}

/* Stages @k chunks slowly, each allocated in place and filled in two
 * halves with a pause between, while the TRUSTED reader polls; then
 * commits and checks the reader saw none of them before and all at once. */
static void slow_batch(sgl_writer *w, struct rd *poller, struct put *p, size_t k,
                       uint64_t id0, size_t size0) {
        struct tmsg m;
        struct dlv d[16];
        size_t n;

        assert_true(k <= ELEMENTS(d));
        rd_send(poller, M_POLL, 0, k, 10000, -1);
        rd_recv(poller, &m, M_POLLING);
        for (size_t i = 0; i < k; i++) {
                size_t size = size0 + i * 517;
                uint8_t *buf = malloc(size);
                void *data;

                assert_non_null(buf);
                tu_fill_pattern(buf, size, 0xba7c + id0 + i);
                assert_int_equal(sgl_writer_alloc(w, id0 + i, 0, size, &data, &p[i].id), 0);
                memcpy(data, buf, size / 2);
                sleep_ms(10);
                memcpy((uint8_t *)data + size / 2, buf + size / 2, size - size / 2);
                p[i] = (struct put) { .id = id0 + i, .size = size,
                                      .hash = tu_fnv1a64(data, size) };
                assert_int_equal(p[i].hash, tu_fnv1a64(buf, size));
                free(buf);
                sleep_ms(10);
        }
        assert_int_equal(sgl_writer_commit(w), 0);

        n = rd_collect(poller, d, ELEMENTS(d), NULL);
        rd_recv(poller, &m, M_POLLED);
        assert_int_equal(n, k);
        for (size_t i = 0; i < k; i++)
                assert_dlv_is(&d[i], &p[i]);
        assert_true(m.seq >= 20);   /* it polled while we staged: saw nothing */
        assert_int_equal(m.a, k);   /* the first poll that saw any saw all */
        assert_int_equal(m.b, k);
}

/* A batch becomes visible at once: a TRUSTED reader polling the open
 * segment never sees a prefix; STRICT readers see it once sealed. */
static void test_batch_commit(void **state) {
        const unsigned flags[] = { SGL_READER_TRUSTED, 0 };
        struct rd rd[2];
        struct hub h = {};
        struct put all[1 + 8 + 3];
        sgl_writer_stats st;
        unsigned fds = tu_count_fds();
        sgl_writer *w = setup(&h, rd, flags, 2, 0);

        assert_int_equal(sgl_writer_set_seal_policy(w, SGL_SEAL_WHEN_FULL, 0), 0);
        /* the open segment is announced at its first commit */
        all[0] = commit_one(w, 1, 30, 100);
        assert_int_equal(h.opened, 1);
        expect_drain(&rd[0], &all[0], 1);
        expect_drain(&rd[1], NULL, 0);

        /* 8 chunks staged in the segment the reader has mapped */
        slow_batch(w, &rd[0], &all[1], 8, 100, 3000);
        assert_int_equal(h.opened, 1); /* same segment */
        expect_drain(&rd[1], NULL, 0);
        assert_int_equal(sgl_writer_seal(w), 0);
        expect_drain(&rd[1], all, 9);

        /* a batch that outgrows a 1 MiB segment moves while staged */
        slow_batch(w, &rd[0], &all[9], 3, 200, 400 * 1024);
        assert_int_equal(sgl_writer_seal(w), 0);
        expect_drain(&rd[1], &all[9], 3);
        expect_drain(&rd[0], NULL, 0);
        for (size_t i = 0; i < ELEMENTS(all); i++) {
                expect_get(&rd[0], &all[i]);
                expect_get(&rd[1], &all[i]);
        }
        assert_int_equal(sgl_writer_get_stats(w, &st), 0);
        assert_int_equal(st.commits, 3);

        teardown(w, rd, 2);
        assert_int_equal(tu_count_fds(), fds);
}

/* ----------------------------------------------------------- seal policy */

/* What each of the two readers (STRICT, TRUSTED) must get from its stream
 * now. */
static void check2(struct rd *rd, const struct put *strict, size_t ns,
                   const struct put *trusted, size_t nt) {
        expect_drain(&rd[0], strict, ns);
        expect_drain(&rd[1], trusted, nt);
}

static sgl_writer *seal_setup(struct hub *h, struct rd *rd, void **state,
                              sgl_seal_policy policy, uint64_t arg) {
        const unsigned flags[] = { 0, SGL_READER_TRUSTED };
        unsigned wflags = *(unsigned *)*state;
        sgl_writer *w = setup(h, rd, flags, 2, wflags);

        assert_int_equal(sgl_writer_set_seal_policy(w, policy, arg), 0);
        return w;
}

/* Both readers ended with the same segments; every seal was in place, or
 * by copy with SGL_WRITER_SEAL_BY_COPY, except that @noneshot of them were
 * one-shot segments (SGL_SEAL_EVERY_COMMIT): written into a memfd nobody
 * had seen and sealed there, so in place whatever the flags. */
static void seal_teardown_n(sgl_writer *w, struct rd *rd, void **state, uint64_t nseals,
                            uint64_t noneshot) {
        unsigned wflags = *(unsigned *)*state;
        sgl_writer_stats st;
        struct tmsg i0, i1;

        assert_int_equal(sgl_writer_get_stats(w, &st), 0);
        if (wflags & SGL_WRITER_SEAL_BY_COPY) {
                assert_int_equal(st.seals, noneshot);
                assert_int_equal(st.seal_copies, nseals - noneshot);
        } else {
                assert_int_equal(st.seals, nseals);
                assert_int_equal(st.seal_copies, 0);
        }
        rd_info(&rd[0], &i0);
        rd_info(&rd[1], &i1);
        assert_int_equal(i0.seq, i1.seq);   /* a sealed copy replaced the open one */
        assert_int_equal(i0.b, nseals);     /* STRICT got every seal */
        assert_int_equal(i0.a, 0);          /* and nothing open */
        teardown(w, rd, 2);
}

static void seal_teardown(sgl_writer *w, struct rd *rd, void **state, uint64_t nseals) {
        seal_teardown_n(w, rd, state, nseals, 0);
}

static void test_seal_every_commit(void **state) {
        struct rd rd[2];
        struct hub h = {};
        struct put c[3];
        unsigned fds = tu_count_fds();
        sgl_writer *w = seal_setup(&h, rd, state, SGL_SEAL_EVERY_COMMIT, 0);

        c[0] = commit_one(w, 1, 41, 100);
        check2(rd, &c[0], 1, &c[0], 1);
        c[1] = put_write(w, 2, 42, 5000, 0);
        c[2] = put_write(w, 3, 43, 50, 0);
        check2(rd, NULL, 0, NULL, 0); /* staged only */
        assert_int_equal(sgl_writer_seal(w), -EBUSY);
        assert_int_equal(sgl_writer_commit(w), 0);
        check2(rd, &c[1], 2, &c[1], 2);
        assert_int_equal(sgl_writer_seal(w), 0); /* nothing open */
        assert_int_equal(sgl_writer_tick(w), 0);
        assert_int_equal(h.opened, 0);
        seal_teardown_n(w, rd, state, 2, 2);
        assert_int_equal(tu_count_fds(), fds);
}

static void test_seal_bytes(void **state) {
        struct rd rd[2];
        struct hub h = {};
        struct put c[5];
        unsigned fds = tu_count_fds();
        /* a commit of one 100-byte chunk takes 64 + 64 + 128 bytes (commits
         * are packed): sealed at the third */
        sgl_writer *w = seal_setup(&h, rd, state, SGL_SEAL_BYTES, 3 * 256);

        c[0] = commit_one(w, 1, 51, 100);
        check2(rd, NULL, 0, &c[0], 1);
        c[1] = commit_one(w, 2, 52, 100);
        check2(rd, NULL, 0, &c[1], 1);
        assert_int_equal(sgl_writer_tick(w), 0); /* not a time policy */
        check2(rd, NULL, 0, NULL, 0);
        c[2] = commit_one(w, 3, 53, 100);
        check2(rd, c, 3, &c[2], 1);
        /* a commit bigger than the threshold is sealed at once */
        c[3] = commit_one(w, 4, 54, 3 * PAGE);
        check2(rd, &c[3], 1, &c[3], 1);
        c[4] = commit_one(w, 5, 55, 100);
        check2(rd, NULL, 0, &c[4], 1);
        assert_int_equal(sgl_writer_seal(w), 0);
        check2(rd, &c[4], 1, NULL, 0);
        assert_int_equal(h.opened, 3);
        seal_teardown(w, rd, state, 3);
        assert_int_equal(tu_count_fds(), fds);
}

static void test_seal_usec(void **state) {
        struct rd rd[2];
        struct hub h = {};
        struct put c[3];
        unsigned fds = tu_count_fds();
        sgl_writer *w = seal_setup(&h, rd, state, SGL_SEAL_USEC, 250 * USEC_PER_MSEC);

        c[0] = commit_one(w, 1, 61, 100);
        check2(rd, NULL, 0, &c[0], 1);
        assert_int_equal(sgl_writer_tick(w), 0); /* not due */
        check2(rd, NULL, 0, NULL, 0);
        sleep_ms(280);
        check2(rd, NULL, 0, NULL, 0);            /* due, but nobody ticked */
        assert_int_equal(sgl_writer_tick(w), 1);
        check2(rd, &c[0], 1, NULL, 0);
        assert_int_equal(sgl_writer_tick(w), 0); /* nothing open */

        /* also checked on commit */
        c[1] = commit_one(w, 2, 62, 100);
        check2(rd, NULL, 0, &c[1], 1);
        sleep_ms(280);
        c[2] = commit_one(w, 3, 63, 100);
        check2(rd, &c[1], 2, &c[2], 1);
        assert_int_equal(sgl_writer_tick(w), 0);
        seal_teardown(w, rd, state, 2);
        assert_int_equal(tu_count_fds(), fds);
}

static void test_seal_when_full(void **state) {
        struct rd rd[2];
        struct hub h = {};
        struct put c[4];
        void *data;
        unsigned fds = tu_count_fds();
        sgl_writer *w = seal_setup(&h, rd, state, SGL_SEAL_WHEN_FULL, 0);

        /* header + three commits of 64 + 64 + 2432 bytes fill two pages */
        assert_int_equal(sgl_writer_set_segment_size(w, 2 * PAGE), 0);
        for (int i = 0; i < 3; i++) {
                c[i] = commit_one(w, 1 + i, 71 + i, 2400);
                check2(rd, NULL, 0, &c[i], 1);
        }
        assert_int_equal(sgl_writer_tick(w), 0);
        check2(rd, NULL, 0, NULL, 0);
        /* the next commit does not fit: staging it seals the full one */
        assert_int_equal(sgl_writer_alloc(w, 4, 0, 2400, &data, &c[3].id), 0);
        tu_fill_pattern(data, 2400, 74);
        c[3] = (struct put) { .id = 4, .size = 2400, .hash = tu_fnv1a64(data, 2400) };
        check2(rd, c, 3, NULL, 0);
        assert_int_equal(sgl_writer_commit(w), 0);
        check2(rd, NULL, 0, &c[3], 1);
        assert_int_equal(sgl_writer_seal(w), 0);
        check2(rd, &c[3], 1, NULL, 0);
        assert_int_equal(h.opened, 2);
        seal_teardown(w, rd, state, 2);
        assert_int_equal(tu_count_fds(), fds);
}

static void test_seal_explicit(void **state) {
        struct rd rd[2];
        struct hub h = {};
        struct put c[3];
        unsigned fds = tu_count_fds();
        sgl_writer *w = seal_setup(&h, rd, state, SGL_SEAL_WHEN_FULL, 0);

        c[0] = commit_one(w, 1, 81, 1000);
        c[1] = commit_one(w, 2, 82, 1000);
        check2(rd, NULL, 0, c, 2);
        c[2] = put_write(w, 3, 83, 1000, 0);
        assert_int_equal(sgl_writer_seal(w), -EBUSY); /* staged records */
        check2(rd, NULL, 0, NULL, 0);
        assert_int_equal(sgl_writer_commit(w), 0);
        check2(rd, NULL, 0, &c[2], 1);
        assert_int_equal(sgl_writer_seal(w), 0);
        check2(rd, c, 3, NULL, 0);
        assert_int_equal(sgl_writer_seal(w), 0); /* nothing to seal */
        check2(rd, NULL, 0, NULL, 0);
        assert_int_equal(h.sealed, 1);
        seal_teardown(w, rd, state, 1);
        assert_int_equal(tu_count_fds(), fds);
}

/* The reader pins the page of chunk @id (M_PIN): false if this kernel
 * cannot (vmsplice() unsupported); asserts it worked otherwise. */
static bool pin(struct rd *rd, uint64_t id) {
        struct tmsg m;

        rd_send(rd, M_PIN, 0, id, 0, -1);
        rd_recv(rd, &m, M_PINNED);
        if ((int64_t)m.a == -EOPNOTSUPP)
                return false;
        assert_int_equal((int64_t)m.a, 0);
        return true;
}

static void unpin(struct rd *rd) {
        struct tmsg m;

        rd_send(rd, M_UNPIN, 0, 0, 0, -1);
        rd_recv(rd, &m, M_PINNED);
}

/* A TRUSTED reader process pins a page of the open segment: sealing in
 * place fails (EBUSY), the writer seals a copy instead, and every reader,
 * the pinning one included, reads the same exact bytes; a seal without
 * the pin is in place again. */
static void test_seal_pinned(void **state) {
        const unsigned flags[] = { 0, SGL_READER_TRUSTED, SGL_READER_TRUSTED };
        struct rd rd[3];
        struct hub h = {};
        struct put c[3];
        sgl_writer_stats st;
        uint64_t t0;
        unsigned fds = tu_count_fds();
        sgl_writer *w = setup(&h, rd, flags, 3, 0);

        assert_int_equal(sgl_writer_set_seal_policy(w, SGL_SEAL_WHEN_FULL, 0), 0);
        c[0] = commit_one(w, 1, 0x9101, 5000);
        c[1] = commit_one(w, 2, 0x9102, 300);
        expect_drain(&rd[2], c, 2);
        if (!pin(&rd[1], 1)) {
                teardown(w, rd, 3);
                skip();
        }

        t0 = mono_usec();
        assert_int_equal(sgl_writer_seal(w), 0);
        assert_true(mono_usec() - t0 < 2000 * USEC_PER_MSEC); /* not blockable */
        assert_int_equal(sgl_writer_get_stats(w, &st), 0);
        assert_int_equal(st.seal_copies, 1);
        assert_int_equal(st.seals, 0);
        expect_drain(&rd[0], c, 2);
        expect_drain(&rd[1], c, 2);
        expect_drain(&rd[2], NULL, 0);
        for (int i = 0; i < 3; i++)
                for (int j = 0; j < 2; j++)
                        expect_get(&rd[i], &c[j]);

        unpin(&rd[1]);
        c[2] = commit_one(w, 3, 0x9103, 100);
        expect_drain(&rd[1], &c[2], 1);
        assert_int_equal(sgl_writer_seal(w), 0);
        assert_int_equal(sgl_writer_get_stats(w, &st), 0);
        assert_int_equal(st.seal_copies, 1);
        assert_int_equal(st.seals, 1);
        expect_drain(&rd[0], &c[2], 1);

        teardown(w, rd, 3);
        assert_int_equal(tu_count_fds(), fds);
}

/* A seal that fails (the copy finds no descriptor left; in place, a reader
 * also pins a page) loses nothing and does not break the writer: the
 * segment stays open for TRUSTED readers, takes no more commits, and the
 * next stage seals it first. */
static void test_seal_failure(void **state) {
        const unsigned flags[] = { 0, SGL_READER_TRUSTED, SGL_READER_TRUSTED };
        bool in_place = !(*(unsigned *)*state & SGL_WRITER_SEAL_BY_COPY);
        struct rd rd[3];
        struct hub h = {};
        struct put c[3];
        struct rlimit lim;
        sgl_writer_stats st;
        int r;
        unsigned fds = tu_count_fds();
        sgl_writer *w = setup(&h, rd, flags, 3, *(unsigned *)*state);

        assert_int_equal(sgl_writer_set_seal_policy(w, SGL_SEAL_WHEN_FULL, 0), 0);
        c[0] = commit_one(w, 1, 0xfa11, 2000);
        c[1] = commit_one(w, 2, 0xfa12, 20);
        check2(rd, NULL, 0, c, 2);
        expect_drain(&rd[2], c, 2);
        if (in_place) {
                /* in place fails too: a page is pinned */
                if (!pin(&rd[1], 1)) {
                        teardown(w, rd, 3);
                        skip();
                }
        }

        fd_limit(&lim);
        r = sgl_writer_seal(w);
        fd_unlimit(&lim);
        assert_int_equal(r, -EMFILE);
        fd_limit(&lim);
        r = sgl_writer_seal(w); /* tried again: still nothing to copy into */
        fd_unlimit(&lim);
        assert_int_equal(r, -EMFILE);
        assert_int_equal(sgl_writer_get_stats(w, &st), 0);
        assert_int_equal(st.seals + st.seal_copies, 0);
        assert_int_equal(h.sealed, 0);
        expect_drain(&rd[0], NULL, 0);
        for (int i = 1; i < 3; i++)
                for (int j = 0; j < 2; j++)
                        expect_get(&rd[i], &c[j]);
        if (in_place)
                unpin(&rd[1]);

        /* the next stage seals it first, then goes to a new segment */
        c[2] = put_write(w, 3, 0xfa13, 300, 0);
        assert_int_equal(h.sealed, 1);
        expect_drain(&rd[0], c, 2);
        assert_int_equal(sgl_writer_commit(w), 0);
        expect_drain(&rd[2], &c[2], 1);
        expect_drain(&rd[1], &c[2], 1);
        assert_int_equal(sgl_writer_seal(w), 0);
        expect_drain(&rd[0], &c[2], 1);
        for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++)
                        expect_get(&rd[i], &c[j]);
        assert_int_equal(sgl_writer_get_stats(w, &st), 0);
        assert_int_equal(in_place ? st.seals : st.seal_copies, 2);
        assert_int_equal(in_place ? st.seal_copies : st.seals, 0);
        teardown(w, rd, 3);
        assert_int_equal(tu_count_fds(), fds);
}

/* A one-shot segment (SGL_SEAL_EVERY_COMMIT) whose memfd cannot be made
 * (no descriptor left) loses nothing: the commit reports the error, no
 * reader sees anything (it has no memfd yet), it takes no more commits,
 * and the next stage writes and seals it first; its image is then reused
 * for the next one-shot segment. */
static void test_oneshot_seal_failure(void **state) {
        const unsigned flags[] = { 0, SGL_READER_TRUSTED };
        struct rd rd[2];
        struct hub h = {};
        struct put c[3];
        struct rlimit lim;
        sgl_writer_stats st;
        int r;
        unsigned fds = tu_count_fds();
        sgl_writer *w = setup(&h, rd, flags, 2, 0);

        (void)state;
        c[0] = commit_one(w, 1, 0x0e01, 100);
        check2(rd, &c[0], 1, &c[0], 1);

        c[1] = put_write(w, 2, 0x0e02, 5000, 0);
        /* drop the memfd the writer made ahead for this commit (switching
         * the policy does), so that the seal needs a new descriptor */
        assert_int_equal(sgl_writer_set_seal_policy(w, SGL_SEAL_WHEN_FULL, 0), 0);
        assert_int_equal(sgl_writer_set_seal_policy(w, SGL_SEAL_EVERY_COMMIT, 0), 0);
        fd_limit(&lim);
        r = sgl_writer_commit(w);
        fd_unlimit(&lim);
        assert_int_equal(r, -EMFILE);
        check2(rd, NULL, 0, NULL, 0);
        assert_int_equal(h.sealed, 1);
        fd_limit(&lim);
        r = sgl_writer_seal(w); /* tried again: still no descriptor */
        fd_unlimit(&lim);
        assert_int_equal(r, -EMFILE);
        check2(rd, NULL, 0, NULL, 0);

        /* the next stage seals it first */
        c[2] = put_write(w, 3, 0x0e03, 100, 0);
        assert_int_equal(h.sealed, 2);
        check2(rd, &c[1], 1, &c[1], 1);
        assert_int_equal(sgl_writer_commit(w), 0);
        check2(rd, &c[2], 1, &c[2], 1);
        for (int i = 0; i < 3; i++)
                expect_get(&rd[0], &c[i]);
        assert_int_equal(sgl_writer_get_stats(w, &st), 0);
        assert_int_equal(st.seals, 3);
        assert_int_equal(st.seal_copies, 0);
        assert_int_equal(st.segments, 3);
        teardown(w, rd, 2);
        assert_int_equal(tu_count_fds(), fds);
}

/* ------------------------------------------------- connected, lazy drain */

struct lazy_ctx {
        const char *address;
        int sv;
};

/* The reader of test_connected_lazy_drain(): reads what it mapped at open
 * while the host's pushes wait in its socket, untaken. */
static int lazy_reader(void *userdata) {
        struct lazy_ctx *ctx = userdata;
        struct pollfd p;
        sgl_reader *r;
        sgl_chunk *c;
        char b = 'o';

        TU_CHILD_CHECK(sgl_reader_open("lazy", ctx->address, 0, &r) == 0);
        TU_CHILD_CHECK(sgl_reader_get_segment_count(r) == 3);
        TU_CHILD_CHECK(write(ctx->sv, &b, 1) == 1);
        TU_CHILD_CHECK(read(ctx->sv, &b, 1) == 1 && b == 'c');
        /* the pushes of chunks 4 and 5 are in the socket */
        p = (struct pollfd) { .fd = sgl_reader_get_fd(r), .events = POLLIN };
        TU_CHILD_CHECK(p.fd >= 0 && poll(&p, 1, 30000) == 1);
        for (uint64_t id = 1; id <= 3; id++) {
                TU_CHILD_CHECK(sgl_reader_next(r, &c) == 0);
                TU_CHILD_CHECK(sgl_chunk_id(c) == id);
                sgl_chunk_unref(c);
                /* mapped data first: nothing taken from the host yet */
                TU_CHILD_CHECK(sgl_reader_get_segment_count(r) == 3);
        }
        /* out of mapped data: now it takes the pushes (both may not have
         * arrived yet: wait for the rest) */
        for (uint64_t id = 4; id <= 5; id++) {
                int k, tries = 0;

                while ((k = sgl_reader_next(r, &c)) == -EAGAIN && tries++ < 300)
                        (void)poll(&p, 1, 100);
                TU_CHILD_CHECK(k == 0);
                TU_CHILD_CHECK(sgl_chunk_id(c) == id);
                sgl_chunk_unref(c);
                TU_CHILD_CHECK(sgl_reader_get_segment_count(r) >= (int)id);
        }
        TU_CHILD_CHECK(sgl_reader_next(r, &c) == -EAGAIN);
        sgl_reader_unref(r);
        return 0;
}

/* A reader connected to a host takes pushed segments only when it has run
 * out of what it mapped: reading makes no syscall while data is there, and
 * the stream stays in log order. */
static void test_connected_lazy_drain(void **state) {
        char address[64];
        struct lazy_ctx ctx;
        sgl_writer *w;
        sgl_host *h;
        int sv[2], status = 0;
        bool committed = false;
        uint64_t deadline;
        pid_t pid;

        (void)state;
        snprintf(address, sizeof(address), "@sigillo-test-lazy-%d", (int)getpid());
        assert_int_equal(sgl_writer_new("lazy", 0, &w), 0);
        assert_int_equal(sgl_host_new(w, address, &h), 0);
        for (uint64_t id = 1; id <= 3; id++) {
                assert_int_equal(sgl_writer_write(w, id, 0, "abc", 3, NULL), 0);
                assert_int_equal(sgl_writer_commit(w), 0);
        }
        tu_socketpair(sv);
        ctx = (struct lazy_ctx) { .address = address, .sv = sv[1] };
        pid = tu_fork(lazy_reader, &ctx);
        close(sv[1]);

        deadline = sgl_now_ns() + 30 * NSEC_PER_SEC;
        for (;;) {
                struct pollfd p[2] = {
                        { .fd = sgl_host_get_fd(h), .events = POLLIN },
                        { .fd = committed ? -1 : sv[0], .events = POLLIN },
                };
                char b;
                pid_t k;

                assert_true(sgl_now_ns() < deadline);
                assert_true(poll(p, 2, 20) >= 0);
                assert_true(sgl_host_process(h) >= 0);
                if (p[1].revents && read(sv[0], &b, 1) == 1) {
                        for (uint64_t id = 4; id <= 5; id++) {
                                assert_int_equal(sgl_writer_write(w, id, 0, "de", 2, NULL), 0);
                                assert_int_equal(sgl_writer_commit(w), 0);
                        }
                        assert_true(sgl_host_process(h) >= 0);
                        b = 'c';
                        assert_int_equal(write(sv[0], &b, 1), 1);
                        committed = true;
                }
                k = waitpid(pid, &status, WNOHANG);
                assert_true(k >= 0);
                if (k == pid)
                        break;
        }
        close(sv[0]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_null(sgl_host_unref(h));
        assert_null(sgl_writer_unref(w));
}

/* ------------------------------------------------------------------ wait */

static void wait_send(struct rd *rd, int64_t timeout_usec) {
        rd_send(rd, M_WAIT, 0, 0, (uint64_t)timeout_usec, -1);
}

static int wait_result(struct rd *rd, uint64_t *elapsed_usec) {
        struct tmsg m;

        rd_recv(rd, &m, M_WAITED);
        *elapsed_usec = m.b;
        return (int)(int64_t)m.a;
}

/* The reader forgets the events so far, then blocks in a wait of 5 s (given
 * 200 ms to get there). */
static void wait_blocked(struct rd *rd) {
        uint64_t us;

        wait_send(rd, 0);
        (void)wait_result(rd, &us);
        wait_send(rd, 5 * 1000000);
        sleep_ms(200);
}

/* The reader's blocked wait returned 0, late enough to have blocked and
 * soon enough after what woke it. */
static void expect_woken(struct rd *rd) {
        uint64_t us;

        assert_int_equal(wait_result(rd, &us), 0);
        assert_true(us >= 50 * USEC_PER_MSEC);  /* it really blocked */
        assert_true(us < 2000 * USEC_PER_MSEC); /* and woke soon */
}

/* sgl_reader_wait() in reader processes: every blocked reader wakes soon
 * after a commit, and a wait with nothing happening times out. */
static void test_wait(void **state) {
        const unsigned flags[] = { 0, SGL_READER_TRUSTED, SGL_READER_TRUSTED };
        struct rd rd[3];
        struct hub h = {};
        struct put c[3];
        uint64_t us;
        unsigned fds = tu_count_fds();
        sgl_writer *w = setup(&h, rd, flags, 3, 0);

        /* without a control page there is nothing to wait on */
        wait_send(&rd[2], 1000);
        assert_int_equal(wait_result(&rd[2], &us), -ENOTCONN);
        for (int i = 0; i < 2; i++) {
                hub_control(w, &rd[i]);
                wait_send(&rd[i], 0); /* nothing happened yet */
                assert_int_equal(wait_result(&rd[i], &us), -ETIMEDOUT);
        }

        /* both block; one commit wakes both (nobody swallows a wake-up) */
        for (int i = 0; i < 2; i++)
                wait_send(&rd[i], 5 * 1000000);
        sleep_ms(200);
        c[0] = commit_one(w, 1, 91, 100);
        for (int i = 0; i < 2; i++) {
                expect_woken(&rd[i]);
                expect_drain(&rd[i], &c[0], 1);
        }

        /* nothing happens: times out, on time */
        for (int i = 0; i < 2; i++) {
                wait_send(&rd[i], 100 * USEC_PER_MSEC);
                assert_int_equal(wait_result(&rd[i], &us), -ETIMEDOUT);
                assert_true(us >= 100 * USEC_PER_MSEC);
                assert_true(us < 1000 * USEC_PER_MSEC);
        }

        /* a commit between drain and wait is not lost */
        c[1] = commit_one(w, 2, 92, 100);
        for (int i = 0; i < 2; i++) {
                wait_send(&rd[i], 5 * 1000000);
                assert_int_equal(wait_result(&rd[i], &us), 0);
                assert_true(us < 1000 * USEC_PER_MSEC);
                expect_drain(&rd[i], &c[1], 1);
        }

        /* commits into an open segment the TRUSTED reader already maps:
         * no descriptor arrives, only the futex wakes it */
        assert_int_equal(sgl_writer_set_seal_policy(w, SGL_SEAL_WHEN_FULL, 0), 0);
        c[2] = commit_one(w, 3, 93, 100);
        expect_drain(&rd[1], &c[2], 1);
        expect_drain(&rd[0], NULL, 0);
        wait_blocked(&rd[1]);
        c[0] = commit_one(w, 4, 94, 100);
        expect_woken(&rd[1]);
        expect_drain(&rd[1], &c[0], 1);
        assert_int_equal(h.opened, 1);

        /* a STRICT reader is woken by the seal */
        wait_blocked(&rd[0]);
        assert_int_equal(sgl_writer_seal(w), 0);
        expect_woken(&rd[0]);
        c[1] = c[2];
        c[2] = c[0];
        expect_drain(&rd[0], &c[1], 2);

        teardown(w, rd, 3);
        assert_int_equal(tu_count_fds(), fds);
}

/* ----------------------------------------------------------- late reader */

/* The test's model of an area: per id, what a reader must see. */
#define MODEL_IDS 80
struct model {
        struct put p[MODEL_IDS + 1];
        bool live[MODEL_IDS + 1];
};

/* A deterministic history of @nops writes, batches, deletes and chunks
 * expired at commit over ids 1...MODEL_IDS, committed one by one. */
static void churn(sgl_writer *w, struct model *m, unsigned nops, uint64_t seed) {
        uint64_t s = seed;

        for (unsigned op = 0; op < nops; op++) {
                uint64_t x = rng(&s);
                uint64_t id = 1 + x % MODEL_IDS;
                unsigned kind = (unsigned)((x >> 32) % 100);
                size_t size = (size_t)((x >> 40) % 6000);

                if (kind < 15 && m->live[id]) {
                        assert_int_equal(sgl_writer_delete(w, id), 0);
                        m->live[id] = false;
                } else if (kind < 20) {
                        (void)put_write(w, id, x, size, sgl_now_ns() - NSEC_PER_SEC);
                        m->live[id] = false;
                } else if (kind < 30) {
                        for (int b = 0; b < 3; b++) {
                                uint64_t bid = 1 + (id + (uint64_t)b * 7) % MODEL_IDS;
                                m->p[bid] = put_write(w, bid, x + (uint64_t)b, size / (b + 1), 0);
                                m->live[bid] = true;
                        }
                } else {
                        m->p[id] = put_write(w, id, x, size, 0);
                        m->live[id] = true;
                }
                assert_int_equal(sgl_writer_commit(w), 0);
        }
}

/* The reader's stream yields every live id of @m exactly once, byte-exact,
 * and get() agrees for every id. */
static void expect_model(struct rd *rd, const struct model *m) {
        static struct dlv d[2 * MODEL_IDS];
        bool seen[MODEL_IDS + 1] = {};
        size_t n, nlive = 0;
        struct dlv g;

        n = rd_drain(rd, 0, d, ELEMENTS(d));
        for (size_t i = 0; i < n; i++) {
                uint64_t id = d[i].id;
                assert_true(id >= 1 && id <= MODEL_IDS);
                assert_true(m->live[id]);
                assert_false(seen[id]);
                seen[id] = true;
                assert_dlv_is(&d[i], &m->p[id]);
        }
        for (uint64_t id = 1; id <= MODEL_IDS; id++) {
                if (!m->live[id]) {
                        assert_int_equal(rd_get(rd, id, &g), -ENOENT);
                        continue;
                }
                nlive++;
                assert_true(seen[id]);
                assert_int_equal(rd_get(rd, id, &g), 0);
                assert_int_equal(g.size, m->p[id].size);
                assert_int_equal(g.hash, m->p[id].hash);
        }
        assert_int_equal(n, nlive);
        assert_true(nlive > MODEL_IDS / 4);
}

/* A reader that joins after hundreds of commits (updates, deletes, expired
 * chunks, compaction) sees exactly the live chunks. */
static void test_late_reader(void **state) {
        const unsigned flags[] = { SGL_READER_TRUSTED, 0 };
        unsigned policy = *(unsigned *)*state;
        static struct model m;
        struct rd rd[2];
        struct hub h = {};
        sgl_writer_stats st;
        struct tmsg info;
        unsigned fds = tu_count_fds();
        sgl_writer *w;

        memset(&m, 0, sizeof(m));
        w = spawn_readers(&h, rd, flags, 2, 0);
        if (policy == SGL_SEAL_WHEN_FULL) {
                assert_int_equal(sgl_writer_set_seal_policy(w, SGL_SEAL_WHEN_FULL, 0), 0);
                assert_int_equal(sgl_writer_set_segment_size(w, 64 * 1024), 0);
        }
        churn(w, &m, 600, 0xc0ffee + policy);
        assert_int_equal(sgl_writer_get_stats(w, &st), 0);
        assert_true(st.gc_runs > 0); /* relocated copies are among what it sees */

        /* TRUSTED joins with the segment still open, then STRICT after a seal */
        hub_join(&h, w, &rd[0]);
        expect_model(&rd[0], &m);
        assert_int_equal(sgl_writer_seal(w), 0);
        hub_join(&h, w, &rd[1]);
        expect_model(&rd[1], &m);
        expect_drain(&rd[0], NULL, 0);
        rd_info(&rd[1], &info);
        assert_int_equal(sgl_writer_get_stats(w, &st), 0);
        assert_int_equal(info.seq, st.segments); /* every live segment */
        /* sockets, control, one ro fd per sealed segment, and under
         * SGL_SEAL_EVERY_COMMIT the next one-shot memfd made ahead (two) */
        assert_int_equal(tu_count_fds(), fds + 2 + 1 + st.segments +
                                         (policy == SGL_SEAL_EVERY_COMMIT ? 2 : 0));

        teardown(w, rd, 2);
        assert_int_equal(tu_count_fds(), fds);
}

/* ----------------------------------------------------------------- sizes */

/* Chunks of 0, 1, 4095, 4096, 4097 bytes and 3 MiB (more than a 1 MiB
 * segment) round-trip byte-exact, committed alone and all in one batch,
 * copied in and filled in place. */
static void test_sizes(void **state) {
        const unsigned flags[] = { 0, SGL_READER_TRUSTED };
        const size_t sizes[] = { 0, 1, 4095, 4096, 4097, 3 * 1024 * 1024 };
        unsigned policy = *(unsigned *)*state;
        struct put p[2 * ELEMENTS(sizes)];
        struct rd rd[2];
        struct hub h = {};
        unsigned fds = tu_count_fds();
        size_t n = 0;
        sgl_writer *w = setup(&h, rd, flags, 2, 0);

        assert_int_equal(sgl_writer_set_seal_policy(w, policy, 0), 0);
        for (size_t i = 0; i < ELEMENTS(sizes); i++) {
                if (i % 2)
                        p[n] = put_alloc(w, 1 + i, 0x517e + i, sizes[i], 0);
                else
                        p[n] = put_write(w, 1 + i, 0x517e + i, sizes[i], 0);
                n++;
                assert_int_equal(sgl_writer_commit(w), 0);
        }
        for (size_t i = 0; i < ELEMENTS(sizes); i++) {
                if (i % 2)
                        p[n] = put_write(w, 11 + i, 0x2517e + i, sizes[i], 0);
                else
                        p[n] = put_alloc(w, 11 + i, 0x2517e + i, sizes[i], 0);
                n++;
        }
        assert_int_equal(sgl_writer_commit(w), 0);
        expect_drain(&rd[1], p, n);
        if (policy != SGL_SEAL_EVERY_COMMIT)
                assert_int_equal(sgl_writer_seal(w), 0);
        expect_drain(&rd[0], p, n);
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(p[i].hash, pattern_fnv(p[i].size,
                                                        p[i].id < 11 ? 0x517e + p[i].id - 1
                                                                     : 0x2517e + p[i].id - 11));
                for (int r = 0; r < 2; r++)
                        expect_get(&rd[r], &p[i]);
        }
        expect_drain(&rd[1], NULL, 0);

        teardown(w, rd, 2);
        assert_int_equal(tu_count_fds(), fds);
}

/* ------------------------------------------------- no stale staged bytes */

/* How many of the 32-byte slices of @secret (at offsets 0, 32, 64, ...)
 * occur anywhere in the file @fd, read through the descriptor (pread(), as
 * any reader may: not only up to commit_end).  Asserts. */
static size_t secret_slices_in(int fd, const uint8_t *secret, size_t len) {
        struct stat st;
        uint8_t *buf;
        size_t found = 0;

        assert_int_equal(fstat(fd, &st), 0);
        buf = malloc((size_t)st.st_size);
        assert_non_null(buf);
        for (off_t off = 0; off < st.st_size;) {
                ssize_t n = pread(fd, buf + off, (size_t)(st.st_size - off), off);
                assert_true(n > 0);
                off += n;
        }
        for (size_t k = 0; k + 32 <= len; k += 32)
                found += memmem(buf, (size_t)st.st_size, secret + k, 32) != NULL;
        free(buf);
        return found;
}

/* Every live segment of @w is sealed; none holds any slice of @secret.
 * Returns how many segments were scanned.  Asserts. */
static size_t expect_secret_nowhere(sgl_writer *w, const uint8_t *secret, size_t len) {
        struct seg_cap cap = {};
        size_t n = 0;

        assert_true(sgl_writer_foreach_segment(w, cap_fn, &cap) > 0);
        assert_false(cap.overflow);
        for (size_t i = 0; i < cap.n; i++) {
                assert_int_equal(cap.e[i].ev, SGL_SEGMENT_SEALED);
                assert_true(cap.e[i].fd >= 0);
                assert_int_equal(secret_slices_in(cap.e[i].fd, secret, len), 0);
                n++;
        }
        cap_close(&cap);
        return n;
}

/* A chunk staged in place (sgl_writer_alloc()), filled, then aborted is
 * never committed: none of its bytes may be sealed into a segment that
 * STRICT readers get, not even past commit_end, where the next commit
 * (smaller, reusing the same segment) does not overwrite them.  Each
 * policy (the segment sized for the aborted chunk and reused, or shared),
 * sealed in place and by copy; the STRICT reader gets exactly the commit. */
#define SECRET_SIZE 6000
static void test_abort_leaves_no_bytes(void **state) {
        const struct { sgl_seal_policy policy; unsigned wflags; } *v = *state;
        const unsigned flags[] = { 0 };
        static uint8_t secret[SECRET_SIZE];
        struct rd rd[1];
        struct hub h = {};
        struct put c[2];
        sgl_writer_stats st;
        void *data;
        unsigned fds = tu_count_fds();
        sgl_writer *w = setup(&h, rd, flags, 1, v->wflags);

        assert_int_equal(sgl_writer_set_seal_policy(w, v->policy, 0), 0);
        tu_fill_pattern(secret, sizeof(secret), 0x5ec12e7);
        /* once with a fresh segment, once behind a commit */
        for (int round = 0; round < 2; round++) {
                assert_int_equal(sgl_writer_alloc(w, 900 + round, 0, sizeof(secret), &data,
                                                  NULL), 0);
                memcpy(data, secret, sizeof(secret));
                sgl_writer_abort(w);
                c[round] = commit_one(w, 1 + round, 0xab0 + round, 100);
                assert_int_equal(sgl_writer_seal(w), 0);
                expect_drain(&rd[0], &c[round], 1);
                assert_true(expect_secret_nowhere(w, secret, sizeof(secret)) >= 1);
        }
        for (int i = 0; i < 2; i++)
                expect_get(&rd[0], &c[i]);
        assert_int_equal(sgl_writer_get_stats(w, &st), 0);
        assert_int_equal(st.commits, 2);
        teardown(w, rd, 1);
        assert_int_equal(tu_count_fds(), fds);
}

/* A staged batch that outgrows the open segment moves to a new one, and
 * the old one is sealed at once: the moved chunk's bytes must not stay
 * behind in the old segment past its commit_end (they were never committed
 * there), and the batch arrives whole. */
static void test_moved_batch_leaves_no_bytes(void **state) {
        const unsigned flags[] = { 0 };
        static uint8_t moved[1500];
        struct rd rd[1];
        struct hub h = {};
        struct put c[3];
        struct seg_cap cap = {};
        uint64_t commit_end = 0;
        unsigned fds = tu_count_fds();
        sgl_writer *w = setup(&h, rd, flags, 1, 0);
        int old;

        assert_int_equal(sgl_writer_set_seal_policy(w, SGL_SEAL_WHEN_FULL, 0), 0);
        /* four pages */
        assert_int_equal(sgl_writer_set_segment_size(w, 4 * PAGE), 0);
        c[0] = commit_one(w, 1, 0x3001, 200);
        /* fits ... */
        c[1] = put_write(w, 2, 0x3002, sizeof(moved), 0);
        tu_fill_pattern(moved, sizeof(moved), 0x3002);
        assert_int_equal(h.sealed, 0);
        /* ... but this one does not: the batch moves, the old segment seals */
        c[2] = put_write(w, 3, 0x3003, 16000, 0);
        assert_int_equal(h.sealed, 1);
        assert_int_equal(h.last_sealed, 1);
        expect_drain(&rd[0], &c[0], 1);

        /* the new segment holds no commit yet: not handed out */
        assert_true(sgl_writer_foreach_segment(w, cap_fn, &cap) == 1);
        assert_int_equal(cap.e[0].seq, 1);
        assert_int_equal(cap.e[0].ev, SGL_SEGMENT_SEALED);
        old = cap.e[0].fd;
        assert_int_equal(pread(old, &commit_end, sizeof(commit_end),
                               offsetof(struct sgl_seg_header, commit_end)),
                         sizeof(commit_end));
        /* header, then the one commit of c[0]: 64 + 64 + 256 bytes */
        assert_int_equal(commit_end, 64 + 64 + 64 + 256);
        assert_int_equal(secret_slices_in(old, moved, sizeof(moved)), 0);
        cap_close(&cap);

        assert_int_equal(sgl_writer_commit(w), 0);
        assert_int_equal(sgl_writer_seal(w), 0);
        expect_drain(&rd[0], &c[1], 2);
        /* the moved chunk lives only where it was committed */
        assert_true(sgl_writer_foreach_segment(w, cap_fn, &cap) == 2);
        assert_int_equal(secret_slices_in(cap.e[0].fd, moved, sizeof(moved)), 0);
        assert_int_equal(secret_slices_in(cap.e[1].fd, moved, sizeof(moved)),
                         sizeof(moved) / 32);
        cap_close(&cap);
        for (int i = 0; i < 3; i++)
                expect_get(&rd[0], &c[i]);
        teardown(w, rd, 1);
        assert_int_equal(tu_count_fds(), fds);
}

/* The segment's size and commit_end as a reader's descriptor shows them. */
static void seg_geometry(int fd, uint64_t *size, uint64_t *commit_end) {
        struct stat st;

        assert_int_equal(fstat(fd, &st), 0);
        *size = (uint64_t)st.st_size;
        assert_int_equal(pread(fd, commit_end, sizeof(*commit_end),
                               offsetof(struct sgl_seg_header, commit_end)),
                         sizeof(*commit_end));
}

/* Commits are packed at 64 bytes from right after the 64-byte header: a
 * segment sealed after one small commit is a single page (in place and by
 * copy), and a segment that takes many commits grows by their bytes, not
 * by a page each; readers get every chunk either way. */
static void test_packed_commits(void **state) {
        const uint64_t one = 64 + 64 + 64; /* commit header, record, payload */
        struct rd rd[2];
        struct hub h = {};
        struct put c[7];
        struct seg_cap cap = {};
        uint64_t size, end;
        unsigned fds = tu_count_fds();
        sgl_writer *w = seal_setup(&h, rd, state, SGL_SEAL_EVERY_COMMIT, 0);

        c[0] = commit_one(w, 1, 0x5001, 64);
        check2(rd, &c[0], 1, &c[0], 1);
        assert_int_equal(sgl_writer_foreach_segment(w, cap_fn, &cap), 1);
        seg_geometry(cap_fd(&cap, SGL_SEGMENT_SEALED), &size, &end);
        assert_int_equal(size, PAGE);
        assert_int_equal(end, SGL_SEG_DATA + one);
        cap_close(&cap);

        /* many commits into one open segment */
        assert_int_equal(sgl_writer_set_seal_policy(w, SGL_SEAL_WHEN_FULL, 0), 0);
        for (int i = 1; i <= 4; i++) {
                c[i] = commit_one(w, 1 + (uint64_t)i, 0x5001 + (uint64_t)i, 64);
                check2(rd, NULL, 0, &c[i], 1);
                assert_int_equal(sgl_writer_foreach_segment(w, cap_fn, &cap), 2);
                seg_geometry(cap_fd(&cap, SGL_SEGMENT_OPENED), &size, &end);
                assert_int_equal(end, SGL_SEG_DATA + (uint64_t)i * one);
                cap_close(&cap);
        }
        /* a batch: one commit header for all of it */
        c[5] = put_write(w, 6, 0x5006, 1, 0);
        c[6] = put_write(w, 7, 0x5007, 1, 0);
        assert_int_equal(sgl_writer_commit(w), 0);
        assert_int_equal(sgl_writer_foreach_segment(w, cap_fn, &cap), 2);
        seg_geometry(cap_fd(&cap, SGL_SEGMENT_OPENED), &size, &end);
        assert_int_equal(end, SGL_SEG_DATA + 4 * one + 64 + 2 * 128);
        cap_close(&cap);
        assert_int_equal(sgl_writer_seal(w), 0);
        check2(rd, &c[1], 6, &c[5], 2);
        /* sealed by copy, it shrinks to the page its commits need */
        assert_int_equal(sgl_writer_foreach_segment(w, cap_fn, &cap), 2);
        seg_geometry(cap_fd(&cap, SGL_SEGMENT_SEALED), &size, &end);
        assert_int_equal(end, SGL_SEG_DATA + 4 * one + 64 + 2 * 128);
        if (*(unsigned *)*state & SGL_WRITER_SEAL_BY_COPY)
                assert_int_equal(size, PAGE);
        cap_close(&cap);
        for (int i = 0; i < 7; i++)
                expect_get(&rd[0], &c[i]);
        seal_teardown_n(w, rd, state, 2, 1); /* the first was one-shot */
        assert_int_equal(tu_count_fds(), fds);
}

/* SGL_SEAL_USEC takes microseconds and compares nanoseconds: an argument
 * whose product overflows (it wrapped to a deadline of a few ns: every
 * commit sealed at once) is refused, the largest one that fits is taken
 * and never comes due. */
static void test_seal_usec_overflow(void **state) {
        sgl_writer_stats st;
        sgl_writer *w = NULL;

        assert_int_equal(sgl_writer_new("usec-overflow", 0, &w), 0);
        assert_int_equal(sgl_writer_set_seal_policy(w, SGL_SEAL_WHEN_FULL, 0), 0);
        assert_int_equal(sgl_writer_set_seal_policy(w, SGL_SEAL_USEC, UINT64_MAX), -EINVAL);
        assert_int_equal(sgl_writer_set_seal_policy(w, SGL_SEAL_USEC, UINT64_MAX / 1000 + 1),
                         -EINVAL);
        assert_int_equal(sgl_writer_set_seal_policy(w, SGL_SEAL_USEC, UINT64_MAX / 1000), 0);
        assert_int_equal(sgl_writer_write(w, 1, 0, "x", 1, NULL), 0);
        assert_int_equal(sgl_writer_commit(w), 0);
        assert_int_equal(sgl_writer_tick(w), 0);
        assert_int_equal(sgl_writer_get_stats(w, &st), 0);
        assert_int_equal(st.seals + st.seal_copies, 0);
        assert_null(sgl_writer_unref(w));
}

int main(void) {
        static unsigned in_place = 0, by_copy = SGL_WRITER_SEAL_BY_COPY;
        static unsigned every_commit = SGL_SEAL_EVERY_COMMIT, when_full = SGL_SEAL_WHEN_FULL;
        static const struct { sgl_seal_policy policy; unsigned wflags; } abort_every = {
                SGL_SEAL_EVERY_COMMIT, 0 }, abort_full = { SGL_SEAL_WHEN_FULL, 0 },
                abort_full_copy = { SGL_SEAL_WHEN_FULL, SGL_WRITER_SEAL_BY_COPY };
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_stream_order),
                cmocka_unit_test(test_keyed_latest),
                cmocka_unit_test(test_expiry),
                cmocka_unit_test(test_update),
                cmocka_unit_test(test_delete),
                cmocka_unit_test(test_batch_commit),
                cmocka_unit_test_prestate(test_seal_every_commit, &in_place),
                cmocka_unit_test_prestate(test_seal_every_commit, &by_copy),
                cmocka_unit_test_prestate(test_seal_bytes, &in_place),
                cmocka_unit_test_prestate(test_seal_bytes, &by_copy),
                cmocka_unit_test_prestate(test_seal_usec, &in_place),
                cmocka_unit_test_prestate(test_seal_usec, &by_copy),
                cmocka_unit_test_prestate(test_seal_when_full, &in_place),
                cmocka_unit_test_prestate(test_seal_when_full, &by_copy),
                cmocka_unit_test_prestate(test_seal_explicit, &in_place),
                cmocka_unit_test_prestate(test_seal_explicit, &by_copy),
                cmocka_unit_test(test_seal_pinned),
                cmocka_unit_test_prestate(test_seal_failure, &in_place),
                cmocka_unit_test_prestate(test_seal_failure, &by_copy),
                cmocka_unit_test(test_wait),
                cmocka_unit_test_prestate(test_late_reader, &every_commit),
                cmocka_unit_test_prestate(test_late_reader, &when_full),
                cmocka_unit_test_prestate(test_sizes, &every_commit),
                cmocka_unit_test_prestate(test_sizes, &when_full),
                cmocka_unit_test_prestate(test_abort_leaves_no_bytes, (void *)&abort_every),
                cmocka_unit_test_prestate(test_abort_leaves_no_bytes, (void *)&abort_full),
                cmocka_unit_test_prestate(test_abort_leaves_no_bytes, (void *)&abort_full_copy),
                cmocka_unit_test(test_moved_batch_leaves_no_bytes),
                cmocka_unit_test_prestate(test_packed_commits, &in_place),
                cmocka_unit_test_prestate(test_packed_commits, &by_copy),
                cmocka_unit_test(test_oneshot_seal_failure),
                cmocka_unit_test(test_connected_lazy_drain),
                cmocka_unit_test(test_seal_usec_overflow),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
