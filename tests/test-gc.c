/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-gc.c - compaction (src/gc.c) with reader *processes* streaming and
 * holding chunks while the writer relocates and retires segments.
 *
 * The harness is test-proc.c's, shared with test-writer-reader.c: the
 * writer lives in the test process, readers are tu_fork() children forked
 * before the writer exists, and segment descriptors (opened, sealed, sealed
 * copies) and retirements reach them over SOCK_SEQPACKET socketpairs with
 * SCM_RIGHTS, in a tiny message of our own ({seq, event} plus the fd).
 * Readers report what they get (id, version, size, FNV-1a of the bytes);
 * the test process asserts on it.
 *
 * It proves:
 * - no chunk lost or delivered twice under compaction: while the writer
 *   commits a long history of updates, deletes and expiring chunks under a
 *   low GC threshold plus forced sgl_writer_gc() calls (sealing every
 *   commit, and sealing groups by copy), reader processes streaming all
 *   along, one joining midway and one at the end deliver no (id, version)
 *   twice, deliver each id's versions in increasing order, deliver every
 *   never-updated chunk exactly once and every id's final version, only
 *   bytes the writer wrote; and their final keyed view equals the writer's
 *   model exactly;
 * - chunks held across compaction keep their exact bytes (also after the
 *   writer is gone), are released afterwards with their mappings;
 *   relocated copies are not delivered again to a reader that had the
 *   originals, but are to a reader that joins after the retirement;
 * - tombstones survive compaction: compacting the segment with the
 *   tombstone of X, while an older version of X stays in a live segment,
 *   does not bring X back for a late reader; nor does compacting the
 *   segment of an expired newer version (the expired-chunk shadow); nor,
 *   under group sealing, does a STRICT reader joining after compaction,
 *   nor compaction after one whose seal failed;
 * - live-byte accounting: bytes_live is exactly the record spans
 *   (64 + payload rounded up to 64) of live chunks, bytes_used exactly the
 *   page-rounded commits of live segments, before and after compaction;
 * - descriptor hygiene: the writer holds one descriptor per live sealed
 *   segment plus its control page, and is back to its start after unref;
 *   readers hold none for what they map, and are back to their start.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "sigillo.h"
#include "test-proc.h"
#include "test-util.h"

#define PAGE 4096u
#define NSEC_PER_MSEC 1000000ULL

/* ============================================================== tests === */

/* The record span of a payload, as the format defines it. */
static uint64_t span(uint64_t len) {
        return 64 + ((len + 63) & ~(uint64_t)63);
}

static void seq_fn(void *userdata, uint64_t seq, sgl_segment_event ev, int fd) {
        uint64_t *s = userdata;

        assert_true(s[0] < 63);
        s[1 + s[0]++] = seq;
}

/* Whether segment @seq is live at the writer. */
static bool seg_live(sgl_writer *w, uint64_t seq) {
        uint64_t s[64] = {};

        assert_true(sgl_writer_foreach_segment(w, seq_fn, s) >= 0);
        for (uint64_t i = 0; i < s[0]; i++)
                if (s[1 + i] == seq)
                        return true;
        return false;
}

static int cmp_dlv(const void *x, const void *y) {
        const struct dlv *a = x, *b = y;

        if (a->id != b->id)
                return a->id < b->id ? -1 : 1;
        if (a->version != b->version)
                return a->version < b->version ? -1 : 1;
        return 0;
}

/* ------------------------------------------------- GC under concurrency */

#define GC_IDS 150               /* ids 1...150: updated, deleted, expiring */
#define GC_PERM 60               /* ids 1001...1060: written once, never touched */
#define GC_OPS 2500
#define GC_NIDX (GC_IDS + GC_PERM + 1)
#define GC_MAX_DLV 16384

static uint64_t id_of(size_t idx) {
        return idx <= GC_IDS ? idx : 1000 + (idx - GC_IDS);
}

static size_t idx_of(uint64_t id) {
        if (id >= 1 && id <= GC_IDS)
                return (size_t)id;
        if (id > 1000 && id <= 1000 + GC_PERM)
                return (size_t)(id - 1000 + GC_IDS);
        return 0;
}

/* Everything the writer ever put under each id, and what is current. */
struct gc_model {
        struct put cur[GC_NIDX];
        bool live[GC_NIDX];      /* not deleted, not expired at commit */
        struct put *hist[GC_NIDX];
        size_t nhist[GC_NIDX];
        uint64_t max_expiry;
};

static void gm_put(struct gc_model *m, sgl_writer *w, uint64_t id, uint64_t seed,
                   size_t size, uint64_t expiry) {
        size_t i = idx_of(id);
        struct put *a;

        /* copied in, or filled in place */
        m->cur[i] = seed % 2 ? put_alloc(w, id, seed, size, expiry)
                             : put_write(w, id, seed, size, expiry);
        m->live[i] = expiry == 0 || expiry > sgl_now_ns();
        if (expiry > m->max_expiry)
                m->max_expiry = expiry;
        a = realloc(m->hist[i], (m->nhist[i] + 1) * sizeof(*a));
        assert_non_null(a);
        a[m->nhist[i]++] = m->cur[i];
        m->hist[i] = a;
}

/* Live at the end, when every short expiry has passed. */
static bool gm_final_live(const struct gc_model *m, size_t i) {
        return m->live[i] && m->cur[i].expiry == 0;
}

static void gm_free(struct gc_model *m) {
        for (size_t i = 0; i < GC_NIDX; i++)
                free(m->hist[i]);
}

/* One reader's deliveries: nothing twice, versions increasing per id, only
 * bytes the writer wrote, every never-updated chunk once, and the final
 * version of every id live at the end. */
static void check_deliveries(const struct gc_model *m, const struct dlv *d, size_t n) {
        static struct dlv sorted[GC_MAX_DLV];
        uint64_t last[GC_NIDX] = {};
        size_t lasti[GC_NIDX];
        unsigned count[GC_NIDX] = {};

        for (size_t k = 0; k < n; k++) {
                size_t i = idx_of(d[k].id);
                bool known = false;

                assert_true(i != 0);
                assert_true(d[k].version > last[i]); /* log order, never twice */
                last[i] = d[k].version;
                lasti[i] = k;
                count[i]++;
                for (size_t j = 0; j < m->nhist[i] && !known; j++)
                        known = m->hist[i][j].size == d[k].size &&
                                m->hist[i][j].hash == d[k].hash &&
                                m->hist[i][j].expiry == d[k].expiry;
                assert_true(known);
        }
        for (size_t i = 1; i < GC_NIDX; i++) {
                if (i > GC_IDS)
                        assert_int_equal(count[i], 1); /* never updated: exactly once */
                if (gm_final_live(m, i)) {
                        assert_true(count[i] > 0);
                        assert_dlv_is(&d[lasti[i]], &m->cur[i]);
                }
        }
        memcpy(sorted, d, n * sizeof(*d));
        qsort(sorted, n, sizeof(*d), cmp_dlv);
        for (size_t k = 1; k < n; k++)
                assert_true(cmp_dlv(&sorted[k - 1], &sorted[k]) < 0);
}

/* The reader's keyed view is the model, version for version. */
static void check_view(const struct gc_model *m, struct rd *rd, uint64_t *versions) {
        for (size_t i = 1; i < GC_NIDX; i++) {
                struct dlv g;
                int k = rd_get(rd, id_of(i), &g);

                if (!gm_final_live(m, i)) {
                        assert_int_equal(k, -ENOENT);
                        continue;
                }
                assert_int_equal(k, 0);
                assert_int_equal(g.size, m->cur[i].size);
                assert_int_equal(g.hash, m->cur[i].hash);
                if (versions[i] == 0)
                        versions[i] = g.version;
                assert_int_equal(g.version, versions[i]); /* every reader agrees */
        }
}

/* A long history under aggressive compaction with readers streaming in
 * other processes: nothing lost, nothing twice, the same final view. */
static void test_gc_concurrent(void **state) {
        const unsigned flags[] = { 0, SGL_READER_TRUSTED, 0, SGL_READER_TRUSTED };
        unsigned config = *(unsigned *)*state;
        static struct gc_model m;
        static struct dlv d[3][GC_MAX_DLV];
        static struct dlv all[3 * GC_MAX_DLV];
        uint64_t versions[GC_NIDX] = {};
        size_t n[3], nall = 0, nperm = 0, nlive = 0;
        struct rd rd[4];
        struct hub h = {};
        sgl_writer_stats st;
        struct tmsg info;
        uint64_t s = 0x6cc0 + config;
        unsigned fds = tu_count_fds();
        sgl_writer *w;
        int k;

        memset(&m, 0, sizeof(m));
        w = spawn_readers(&h, rd, flags, 4, config ? SGL_WRITER_SEAL_BY_COPY : 0);
        if (config) {
                /* group sealing; sealed by copy while TRUSTED readers map
                 * the open segment */
                assert_int_equal(sgl_writer_set_seal_policy(w, SGL_SEAL_BYTES, 24 * 1024), 0);
                assert_int_equal(sgl_writer_set_segment_size(w, 128 * 1024), 0);
        }
        assert_int_equal(sgl_writer_set_gc(w, 25, 16 * 1024, 48), 0);
        for (int i = 0; i < 2; i++) {
                hub_join(&h, w, &rd[i]);
                hub_control(w, &rd[i]);
                rd_send(&rd[i], M_STREAM, 0, 0, 0, -1);
        }

        for (unsigned op = 0; op < GC_OPS; op++) {
                uint64_t x = rng(&s);
                uint64_t id = 1 + x % GC_IDS;
                unsigned kind = (unsigned)((x >> 32) % 100);
                size_t size = (size_t)((x >> 40) % 7000);
                size_t i = idx_of(id);

                if (op == GC_OPS / 2) {
                        /* a reader joins midway and streams from there */
                        hub_join(&h, w, &rd[2]);
                        hub_control(w, &rd[2]);
                        rd_send(&rd[2], M_STREAM, 0, 0, 0, -1);
                }
                if (op % 37 == 0 && nperm < GC_PERM) {
                        nperm++;
                        gm_put(&m, w, 1000 + nperm, x ^ 0x9e77, 100 + nperm * 53, 0);
                }
                if (kind < 12 && m.live[i] && m.cur[i].expiry == 0) {
                        assert_int_equal(sgl_writer_delete(w, id), 0);
                        m.live[i] = false;
                } else if (kind < 20) {
                        /* expires while the readers stream */
                        gm_put(&m, w, id, x, size, sgl_now_ns() + (20 + x % 60) * NSEC_PER_MSEC);
                } else if (kind < 24) {
                        gm_put(&m, w, id, x, size, sgl_now_ns() - NSEC_PER_MSEC);
                } else if (kind < 34) {
                        for (uint64_t b = 0; b < 3; b++)
                                gm_put(&m, w, 1 + (id + b * 7) % GC_IDS, x + b, size / (b + 1), 0);
                } else {
                        gm_put(&m, w, id, x, size, 0);
                }
                assert_int_equal(sgl_writer_commit(w), 0);
                if (op % 150 == 149) {
                        k = sgl_writer_gc(w);
                        assert_true(k >= 0);
                }
        }
        assert_int_equal(nperm, GC_PERM);

        /* every short expiry passes, then a last compaction and seal */
        while (sgl_now_ns() <= m.max_expiry + 10 * NSEC_PER_MSEC)
                sleep_ms(10);
        assert_true(sgl_writer_gc(w) > 0);
        assert_int_equal(sgl_writer_seal(w), 0);

        for (int i = 0; i < 3; i++)
                rd_send(&rd[i], M_DONE, 0, 0, 0, -1);
        for (int i = 0; i < 3; i++) {
                int last;

                n[i] = rd_collect(&rd[i], d[i], GC_MAX_DLV, &last);
                assert_int_equal(last, -EAGAIN);
                check_deliveries(&m, d[i], n[i]);
                check_view(&m, &rd[i], versions);
                memcpy(all + nall, d[i], n[i] * sizeof(all[0]));
                nall += n[i];
        }
        /* a version means the same bytes to every reader */
        qsort(all, nall, sizeof(all[0]), cmp_dlv);
        for (size_t j = 1; j < nall; j++)
                if (cmp_dlv(&all[j - 1], &all[j]) == 0) {
                        assert_int_equal(all[j - 1].hash, all[j].hash);
                        assert_int_equal(all[j - 1].size, all[j].size);
                }

        /* a reader joining now gets exactly the live chunks, once each */
        hub_join(&h, w, &rd[3]);
        n[0] = rd_drain(&rd[3], 0, d[0], GC_MAX_DLV);
        check_deliveries(&m, d[0], n[0]);
        check_view(&m, &rd[3], versions);
        for (size_t i = 1; i < GC_NIDX; i++)
                nlive += gm_final_live(&m, i);
        assert_int_equal(n[0], nlive);

        assert_int_equal(sgl_writer_get_stats(w, &st), 0);
        assert_true(st.gc_runs > GC_OPS / 150);
        assert_true(st.retired > 0);
        assert_true(st.gc_relocated > 0);
        assert_int_equal(h.retired, st.retired);
        if (config)
                assert_true(st.seal_copies > 0);
        else
                assert_int_equal(st.seal_copies, 0);
        for (int i = 0; i < 4; i++) {
                rd_info(&rd[i], &info);
                assert_true(info.seq <= st.segments + 1);
                if (i < 3)
                        assert_true(info.c > 0); /* told of retirements */
        }
        /* four sockets, the control page, one descriptor per sealed segment,
         * and under SGL_SEAL_EVERY_COMMIT the next one-shot memfd made ahead
         * with its read-only description */
        assert_int_equal(tu_count_fds(), fds + 4 + 1 + st.segments + (config ? 0 : 2));
        print_message("gc config %u: %llu commits, %llu gc runs, %llu relocated, "
                      "%llu retired, %llu seal copies, %zu/%zu/%zu delivered\n", config,
                      (unsigned long long)st.commits, (unsigned long long)st.gc_runs,
                      (unsigned long long)st.gc_relocated, (unsigned long long)st.retired,
                      (unsigned long long)st.seal_copies, n[1], n[2], nlive);

        teardown(w, rd, 4);
        gm_free(&m);
        assert_int_equal(tu_count_fds(), fds);
}

/* ---------------------------------------------- holding across compaction */

static void expect_verified(struct rd *rd, uint64_t held, struct tmsg *m) {
        rd_send(rd, M_VERIFY, 0, 0, 0, -1);
        rd_recv(rd, m, M_VERIFIED);
        assert_int_equal(m->seq, held);
        assert_int_equal(m->a, 0); /* every held byte as it was */
}

/* The late readers' streams: exactly @want, in any order. */
static void expect_set(struct rd *rd, const struct put *want, size_t n) {
        struct dlv d[64];
        bool seen[64] = {};
        size_t got = rd_drain(rd, 0, d, ELEMENTS(d));

        assert_int_equal(got, n);
        for (size_t k = 0; k < got; k++) {
                size_t j;
                for (j = 0; j < n && want[j].id != d[k].id; j++)
                        ;
                assert_true(j < n);
                assert_false(seen[j]);
                seen[j] = true;
                assert_dlv_is(&d[k], &want[j]);
        }
}

/* A reader holds chunks while the writer compacts and retires their
 * segments; the bytes stay exact; relocated copies are not delivered again
 * to it, but are to readers that join later. */
static void test_gc_hold(void **state) {
        const unsigned flags[] = { 0, SGL_READER_TRUSTED, 0 };
        struct put cur[20], upd[10];
        struct dlv d[64];
        struct rd rd[3];
        struct hub h = {};
        sgl_writer_stats st;
        struct tmsg m;
        uint64_t live_segs;
        unsigned fds = tu_count_fds();
        sgl_writer *w;

        w = spawn_readers(&h, rd, flags, 3, 0);
        assert_int_equal(sgl_writer_set_gc(w, 0, 0, 0), 0); /* only when asked */
        hub_join(&h, w, &rd[0]);

        for (int i = 0; i < 20; i++)
                cur[i] = commit_one(w, 1 + i, 0x401d + i, 1000 + i * 300);
        assert_int_equal(rd_drain(&rd[0], F_HOLD, d, ELEMENTS(d)), 20);
        for (int i = 0; i < 20; i++)
                assert_dlv_is(&d[i], &cur[i]);
        expect_verified(&rd[0], 20, &m);
        assert_int_equal(m.b, 20); /* one mapping per segment */

        for (int i = 0; i < 10; i++)
                upd[i] = cur[i] = commit_one(w, 1 + i, 0x4077 + i, 2000 + i * 100);
        assert_int_equal(sgl_writer_gc(w), 30);
        assert_int_equal(sgl_writer_get_stats(w, &st), 0);
        assert_int_equal(st.retired, 30);
        assert_int_equal(st.gc_runs, 1);
        assert_int_equal(st.gc_relocated, 20);
        assert_int_equal(st.segments, 1);
        assert_int_equal(h.retired, 30);
        assert_int_equal(tu_count_fds(), fds + 3 + 1 + 1 + 2); /* + the spare pair */

        /* retired under it: same bytes */
        expect_verified(&rd[0], 20, &m);
        assert_true(m.b >= 20);
        /* the updates once; the relocated originals not again */
        assert_int_equal(rd_drain(&rd[0], F_HOLD, d, ELEMENTS(d)), 10);
        for (int i = 0; i < 10; i++)
                assert_dlv_is(&d[i], &upd[i]);
        assert_int_equal(rd_drain(&rd[0], 0, d, ELEMENTS(d)), 0);
        for (int i = 0; i < 20; i++)
                expect_get(&rd[0], &cur[i]);

        /* joining after the retirement: the relocated copies, once each */
        hub_join(&h, w, &rd[1]);
        expect_set(&rd[1], cur, 20);
        for (int i = 0; i < 20; i++)
                expect_get(&rd[1], &cur[i]);

        /* again: the segment holding the relocated copies is retired too */
        for (int i = 10; i < 20; i++)
                cur[i] = commit_one(w, 1 + i, 0x4099 + i, 50 + i);
        assert_int_equal(sgl_writer_gc(w), 11);
        assert_int_equal(rd_drain(&rd[0], 0, d, ELEMENTS(d)), 10);
        for (int i = 0; i < 10; i++)
                assert_dlv_is(&d[i], &cur[10 + i]);
        expect_set(&rd[1], &cur[10], 10);
        expect_verified(&rd[0], 30, &m);
        hub_join(&h, w, &rd[2]);
        expect_set(&rd[2], cur, 20);

        /* the writer goes away: what readers hold and map stays */
        assert_int_equal(sgl_writer_get_stats(w, &st), 0);
        live_segs = st.segments;
        assert_null(sgl_writer_unref(w));
        assert_int_equal(tu_count_fds(), fds + 3);
        expect_verified(&rd[0], 30, &m);
        for (int i = 0; i < 20; i++)
                expect_get(&rd[2], &cur[i]);

        /* released: only the live segments stay mapped */
        rd_send(&rd[0], M_RELEASE, 0, 0, 0, -1);
        rd_recv(&rd[0], &m, M_RELEASED);
        assert_int_equal(m.a, live_segs);
        assert_int_equal(m.seq, live_segs);

        for (int i = 0; i < 3; i++)
                rd_quit(&rd[i]);
        assert_int_equal(tu_count_fds(), fds);
}

/* ---------------------------------------------- tombstones and expiry */

/* Each of the readers @rd[0..@n) finds X (id 1) gone and every one of
 * @want[0..@nwant) there. */
static void expect_x_gone(struct rd *rd, size_t n, const struct put *want, size_t nwant) {
        struct dlv g;

        for (size_t i = 0; i < n; i++) {
                assert_int_equal(rd_get(&rd[i], 1, &g), -ENOENT);
                for (size_t j = 0; j < nwant; j++)
                        expect_get(&rd[i], &want[j]);
        }
}

/* X v1 lives in segment A with a big chunk that keeps A worth keeping;
 * then @kill makes X dead in a new segment B (a tombstone, or a newer
 * version that expires); compacting B alone must not bring X v1 back. */
static void shadow_case(void **state, bool by_expiry) {
        const unsigned flags[] = { 0, 0, SGL_READER_TRUSTED };
        struct put x, p, q, want[2];
        struct rd rd[3];
        struct hub h = {};
        sgl_writer_stats st;
        uint64_t seq_a, seq_b;
        struct dlv g;
        unsigned fds = tu_count_fds();
        sgl_writer *w;

        w = spawn_readers(&h, rd, flags, 3, 0);
        assert_int_equal(sgl_writer_set_gc(w, 0, 0, 0), 0);
        hub_join(&h, w, &rd[0]);

        /* A: 64 + 128 for X, 64 + 3072 for P (3328 bytes, commits packed):
         * X, about 4% of A, becomes garbage; B holds nothing else */
        x = put_write(w, 1, 0xa1, 10, 0);
        p = put_write(w, 2, 0xa2, 3000, 0);
        assert_int_equal(sgl_writer_commit(w), 0);
        seq_a = h.last_sealed;
        if (by_expiry) {
                struct put x2 = put_write(w, 1, 0xa3, 10, sgl_now_ns() + 150 * NSEC_PER_MSEC);
                assert_int_equal(sgl_writer_commit(w), 0);
                expect_get(&rd[0], &x2);
                sleep_ms(200);
        } else {
                expect_get(&rd[0], &x);
                assert_int_equal(sgl_writer_delete(w, 1), 0);
                assert_int_equal(sgl_writer_commit(w), 0);
        }
        seq_b = h.last_sealed;
        assert_int_equal(rd_get(&rd[0], 1, &g), -ENOENT);

        /* automatic compaction (over 5% garbage) takes B (all garbage), not A
         * (4%) nor Q */
        assert_int_equal(sgl_writer_set_gc(w, 5, 1, 0), 0);
        q = commit_one(w, 3, 0xa4, 3000);
        assert_int_equal(sgl_writer_get_stats(w, &st), 0);
        assert_int_equal(st.gc_runs, 1);
        assert_int_equal(st.retired, 1);
        assert_false(seg_live(w, seq_b));
        assert_true(seg_live(w, seq_a));
        assert_int_equal(sgl_writer_delete(w, 1), -ENOENT);

        /* a late reader must not see X v1 again */
        assert_int_equal(sgl_writer_set_gc(w, 0, 0, 0), 0);
        hub_join(&h, w, &rd[1]);
        want[0] = p;
        want[1] = q;
        expect_x_gone(rd, 2, want, 2);
        expect_drain(&rd[1], want, 2);
        expect_drain(&rd[0], want, 2);

        /* everything compacted: X is gone for good, P and Q stay */
        assert_true(sgl_writer_gc(w) >= 2);
        assert_false(seg_live(w, seq_a));
        hub_join(&h, w, &rd[2]);
        expect_x_gone(rd, 3, want, 2);
        expect_drain(&rd[2], want, 2);
        expect_drain(&rd[0], NULL, 0);
        assert_int_equal(sgl_writer_delete(w, 1), -ENOENT);

        teardown(w, rd, 3);
        assert_int_equal(tu_count_fds(), fds);
}

static void test_gc_tombstone_survives(void **state) {
        shadow_case(state, false);
}

static void test_gc_expired_shadow(void **state) {
        shadow_case(state, true);
}

/* Under group sealing compaction relocates into the open segment, which
 * STRICT readers cannot map: retiring the sealed originals before that
 * segment is sealed would hide sealed chunks from a STRICT reader joining
 * then, and bring back a deleted id whose older version stays live. */
static void test_gc_group_sealing_strict(void **state) {
        const unsigned flags[] = { 0, 0, 0, SGL_READER_TRUSTED };
        struct put x, p, q, want[2];
        struct rd rd[4];
        struct hub h = {};
        sgl_writer_stats st;
        uint64_t seq_a, seq_t;
        struct dlv g;
        unsigned fds = tu_count_fds();
        sgl_writer *w;

        w = spawn_readers(&h, rd, flags, 4, 0);
        assert_int_equal(sgl_writer_set_seal_policy(w, SGL_SEAL_WHEN_FULL, 0), 0);
        assert_int_equal(sgl_writer_set_gc(w, 0, 0, 0), 0);
        hub_join(&h, w, &rd[0]);

        /* A: X and a big P, sealed; T: the tombstone of X, sealed */
        x = put_write(w, 1, 0xb1, 10, 0);
        p = put_write(w, 2, 0xb2, 3000, 0);
        assert_int_equal(sgl_writer_commit(w), 0);
        assert_int_equal(sgl_writer_seal(w), 0);
        seq_a = h.last_sealed;
        expect_get(&rd[0], &x);
        assert_int_equal(sgl_writer_delete(w, 1), 0);
        assert_int_equal(sgl_writer_commit(w), 0);
        assert_int_equal(sgl_writer_seal(w), 0);
        seq_t = h.last_sealed;
        assert_int_equal(rd_get(&rd[0], 1, &g), -ENOENT);

        /* a commit into a new open segment triggers compaction of T only */
        assert_int_equal(sgl_writer_set_gc(w, 5, 1, 0), 0);
        q = commit_one(w, 3, 0xb3, 3000);
        assert_int_equal(sgl_writer_get_stats(w, &st), 0);
        assert_int_equal(st.gc_runs, 1);
        assert_false(seg_live(w, seq_t));
        assert_true(seg_live(w, seq_a));
        assert_int_equal(sgl_writer_set_gc(w, 0, 0, 0), 0);

        /* a STRICT reader joining now: X stays deleted, P and Q visible */
        hub_join(&h, w, &rd[1]);
        assert_int_equal(rd_get(&rd[1], 1, &g), -ENOENT);
        want[0] = p;
        want[1] = q;
        expect_x_gone(rd, 2, want, 2);
        expect_drain(&rd[1], want, 2);

        /* everything compacted: the relocated P and Q stay visible */
        assert_true(sgl_writer_gc(w) >= 1);
        assert_false(seg_live(w, seq_a));
        hub_join(&h, w, &rd[2]);
        hub_join(&h, w, &rd[3]);
        expect_x_gone(rd, 4, want, 2);
        expect_set(&rd[2], want, 2);
        expect_set(&rd[3], want, 2);
        expect_set(&rd[0], want, 2); /* first stream: relocation order, each once */
        expect_drain(&rd[1], NULL, 0);

        teardown(w, rd, 4);
        assert_int_equal(tu_count_fds(), fds);
}

/* Compaction whose commit cannot be sealed (the copy finds no descriptor
 * left) retires nothing and keeps its books right: a later compaction must
 * still keep the relocated tombstone of X while X v1 lives on in A. */
static void test_gc_seal_failure(void **state) {
        const unsigned flags[] = { SGL_READER_TRUSTED, 0 };
        struct put p, q, want[3];
        struct rd rd[2];
        struct hub h = {};
        sgl_writer_stats st;
        struct rlimit lim;
        uint64_t seq_a, seq_t;
        struct dlv g;
        unsigned fds = tu_count_fds();
        sgl_writer *w;
        int r;

        w = spawn_readers(&h, rd, flags, 2, SGL_WRITER_SEAL_BY_COPY);
        assert_int_equal(sgl_writer_set_seal_policy(w, SGL_SEAL_WHEN_FULL, 0), 0);
        assert_int_equal(sgl_writer_set_gc(w, 0, 0, 0), 0);
        hub_join(&h, w, &rd[0]);

        /* A: X v1 and a big P (kept); T: the tombstone of X */
        (void)put_write(w, 1, 0xc1, 10, 0);
        p = put_write(w, 2, 0xc2, 3000, 0);
        assert_int_equal(sgl_writer_commit(w), 0);
        assert_int_equal(sgl_writer_seal(w), 0);
        seq_a = h.last_sealed;
        assert_int_equal(sgl_writer_delete(w, 1), 0);
        assert_int_equal(sgl_writer_commit(w), 0);
        assert_int_equal(sgl_writer_seal(w), 0);
        seq_t = h.last_sealed;
        want[0] = p;
        want[1] = commit_one(w, 3, 0xc3, 100); /* opens O */

        /* compaction of T commits into O, then cannot seal it */
        assert_int_equal(sgl_writer_set_gc(w, 5, 1, 0), 0);
        q = put_write(w, 4, 0xc4, 3000, 0);
        fd_limit(&lim);
        r = sgl_writer_commit(w);
        fd_unlimit(&lim);
        assert_int_equal(r, -EMFILE);
        want[2] = q;
        assert_int_equal(sgl_writer_get_stats(w, &st), 0);
        assert_int_equal(st.retired, 0);
        assert_int_equal(h.retired, 0);
        assert_true(seg_live(w, seq_t));
        assert_int_equal(sgl_writer_delete(w, 1), -ENOENT);
        assert_int_equal(rd_get(&rd[0], 1, &g), -ENOENT);

        /* the next commit seals O first and compacts T and O, not A */
        want[1] = commit_one(w, 3, 0xc5, 100);
        assert_int_equal(sgl_writer_get_stats(w, &st), 0);
        assert_int_equal(st.gc_runs, 1);
        assert_false(seg_live(w, seq_t));
        assert_true(seg_live(w, seq_a));

        /* a late STRICT reader: X must stay deleted */
        hub_join(&h, w, &rd[1]);
        expect_x_gone(rd, 2, want, 3);
        expect_set(&rd[1], want, 3);
        expect_set(&rd[0], want, 3);

        teardown(w, rd, 2);
        assert_int_equal(tu_count_fds(), fds);
}

/* ------------------------------------------------------ live bytes */

struct acct {
        uint64_t live, used, segs;
};

static void expect_stats(sgl_writer *w, const struct acct *a) {
        sgl_writer_stats st;

        assert_int_equal(sgl_writer_get_stats(w, &st), 0);
        assert_int_equal(st.bytes_live, a->live);
        assert_int_equal(st.bytes_used, a->used);
        assert_int_equal(st.segments, a->segs);
}

/* bytes_live is exactly the spans of live chunks; bytes_used exactly the
 * commits of live segments (packed: no page rounding); compaction shrinks
 * bytes_used. */
static void test_gc_live_bytes(void **state) {
        const unsigned flags[] = { 0 };
        struct put cur[42];
        uint64_t sizes[42] = {}, commit = 0, before;
        struct acct a = {};
        struct rd rd[1];
        struct hub h = {};
        sgl_writer_stats st;
        unsigned fds = tu_count_fds();
        sgl_writer *w;
        int k;

        w = spawn_readers(&h, rd, flags, 1, 0);
        assert_int_equal(sgl_writer_set_gc(w, 0, 0, 0), 0);
        expect_stats(w, &a);

        /* ids 1...20 alone, 21...40 in batches of five */
        for (uint64_t id = 1; id <= 40; id++) {
                sizes[id] = (id * 389) % 5000;
                cur[id] = put_write(w, id, 0x11e0 + id, sizes[id], 0);
                a.live += span(sizes[id]);
                commit += span(sizes[id]);
                if (id <= 20 || id % 5 == 0) {
                        assert_int_equal(sgl_writer_commit(w), 0);
                        a.used += 64 + commit;
                        a.segs++;
                        commit = 0;
                }
        }
        expect_stats(w, &a);

        /* every id updated, in batches of eight: only the new ones live */
        for (uint64_t id = 1; id <= 40; id++) {
                a.live -= span(sizes[id]);
                sizes[id] = (id * 613) % 7000;
                cur[id] = put_write(w, id, 0x22e0 + id, sizes[id], 0);
                a.live += span(sizes[id]);
                commit += span(sizes[id]);
                if (id % 8 == 0) {
                        assert_int_equal(sgl_writer_commit(w), 0);
                        a.used += 64 + commit;
                        a.segs++;
                        commit = 0;
                }
        }
        expect_stats(w, &a);

        /* five tombstones in one commit */
        for (uint64_t id = 1; id <= 5; id++) {
                assert_int_equal(sgl_writer_delete(w, id), 0);
                a.live -= span(sizes[id]);
        }
        assert_int_equal(sgl_writer_commit(w), 0);
        a.used += 64 + 5 * 64;
        a.segs++;
        expect_stats(w, &a);

        /* a chunk that expires stops counting once it has */
        cur[41] = put_write(w, 41, 0x33e0, 1000, sgl_now_ns() + 100 * NSEC_PER_MSEC);
        assert_int_equal(sgl_writer_commit(w), 0);
        a.used += 64 + span(1000);
        a.segs++;
        a.live += span(1000);
        expect_stats(w, &a);
        sleep_ms(150);
        a.live -= span(1000);
        expect_stats(w, &a);

        /* compact everything: one commit of the live chunks and the RETIRE
         * record; no tombstone needs keeping */
        before = a.used;
        k = sgl_writer_gc(w);
        assert_int_equal(k, a.segs);
        a.used = 64 + a.live + span(8 * (uint64_t)k);
        a.segs = 1;
        expect_stats(w, &a);
        assert_true(a.used < before);
        assert_int_equal(sgl_writer_get_stats(w, &st), 0);
        assert_int_equal(st.gc_relocated, 35);
        assert_int_equal(st.retired, (uint64_t)k);

        /* what was relocated is what was written */
        hub_join(&h, w, &rd[0]);
        expect_set(&rd[0], &cur[6], 35);
        /* updating again: the relocated copies turn into garbage */
        for (uint64_t id = 6; id <= 40; id++) {
                a.live -= span(sizes[id]);
                cur[id] = commit_one(w, id, 0x44e0 + id, 100);
                a.live += span(100);
                a.used += 64 + span(100);
                a.segs++;
        }
        expect_stats(w, &a);
        expect_set(&rd[0], &cur[6], 35);

        teardown(w, rd, 1);
        assert_int_equal(tu_count_fds(), fds);
}

/* ------------------------------------------------------- descriptors */

/* Through rounds of churn and compaction the writer holds exactly one
 * descriptor per live segment plus its control page; a reader holds none
 * for what it maps, also while holding chunks of retired segments. */
static void test_gc_fd_hygiene(void **state) {
        const unsigned flags[] = { 0, SGL_READER_TRUSTED };
        struct dlv d[512];
        struct rd rd[2];
        struct hub h = {};
        sgl_writer_stats st;
        struct tmsg m;
        uint64_t s = 0xfd;
        unsigned fds = tu_count_fds(), held = 0;
        sgl_writer *w = setup(&h, rd, flags, 2, 0);

        assert_int_equal(sgl_writer_set_gc(w, 30, 4096, 16), 0);
        for (int round = 0; round < 10; round++) {
                for (int i = 0; i < 40; i++) {
                        uint64_t x = rng(&s);
                        (void)put_write(w, 1 + x % 30, x, (size_t)(x >> 40) % 3000, 0);
                        assert_int_equal(sgl_writer_commit(w), 0);
                }
                if (round % 3 == 2)
                        assert_true(sgl_writer_gc(w) > 0);
                assert_int_equal(sgl_writer_get_stats(w, &st), 0);
                /* sockets, control, one per segment, the spare pair */
                assert_int_equal(tu_count_fds(), fds + 2 + 1 + st.segments + 2);
                held += (unsigned)rd_drain(&rd[0], F_HOLD, d, ELEMENTS(d));
                (void)rd_drain(&rd[1], 0, d, ELEMENTS(d));
                for (int i = 0; i < 2; i++)
                        rd_info(&rd[i], &m); /* asserts no descriptor kept */
                if (round % 4 == 3) {
                        rd_send(&rd[0], M_RELEASE, 0, 0, 0, -1);
                        rd_recv(&rd[0], &m, M_RELEASED);
                        assert_int_equal(m.seq, m.a); /* no mapping but live ones */
                        held = 0;
                }
        }
        assert_true(st.retired > 0);
        expect_verified(&rd[0], held, &m);
        teardown(w, rd, 2);
        assert_int_equal(tu_count_fds(), fds);
}

int main(void) {
        static unsigned every_commit = 0, grouped_by_copy = 1;
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_prestate(test_gc_concurrent, &every_commit),
                cmocka_unit_test_prestate(test_gc_concurrent, &grouped_by_copy),
                cmocka_unit_test(test_gc_hold),
                cmocka_unit_test(test_gc_tombstone_survives),
                cmocka_unit_test(test_gc_expired_shadow),
                cmocka_unit_test(test_gc_group_sealing_strict),
                cmocka_unit_test(test_gc_seal_failure),
                cmocka_unit_test(test_gc_live_bytes),
                cmocka_unit_test(test_gc_fd_hygiene),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
