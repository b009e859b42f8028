/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-api.c - the public API exactly as an application sees it.
 *
 * This program includes only <sigillo.h> (no internal header, no config.h)
 * and links only the shared libsigillo.so: a function missing from
 * src/libsigillo.sym or not marked _public_ makes it fail to link.  Every
 * exported function is called at least once on real objects (real memfds,
 * real seals) and its result checked.  Semantics beyond linkage are tested in
 * depth by the other test programs; here they are checked the way a user
 * relies on them.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* F_GET_SEALS */
#endif

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <sigillo.h>

#define MAX_SEGS 64
#define NSEC_PER_MSEC 1000000ULL
#define NSEC_PER_SEC 1000000000ULL

/* Out-parameters must stay untouched on failure: they start out as this. */
static char sentinel;
#define SENTINEL_CHUNK ((sgl_chunk *)(void *)&sentinel)
#define SENTINEL_WRITER ((sgl_writer *)(void *)&sentinel)
#define SENTINEL_READER ((sgl_reader *)(void *)&sentinel)

static void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* Every descriptor the library hands out is read-only and close-on-exec. */
static void assert_ro_cloexec(int fd) {
        int fl = fcntl(fd, F_GETFL);
        int fdfl = fcntl(fd, F_GETFD);

        assert_true(fl >= 0);
        assert_int_equal(fl & O_ACCMODE, O_RDONLY);
        assert_true(fdfl >= 0);
        assert_true(fdfl & FD_CLOEXEC);
}

static void assert_write_sealed(int fd) {
        const int want = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
        int seals = fcntl(fd, F_GET_SEALS);

        assert_true(seals >= 0);
        assert_int_equal(seals & want, want);
}

/* ------------------------------------------------------------ segment log */

/* What a rendezvous host would keep: the segments it was told about, each
 * with a descriptor of its own (the callback's one is only borrowed). */
struct seg_log {
        unsigned n_opened;
        unsigned n_sealed;
        unsigned n_retired;
        size_t n;
        struct {
                uint64_t seq;
                sgl_segment_event event;
                int fd; /* ours; -1 once handed to a reader */
        } seg[MAX_SEGS];
};

static void log_segment(void *userdata, uint64_t seq, sgl_segment_event event,
                        int fd) {
        struct seg_log *log = userdata;
        int copy;

        switch (event) {
        case SGL_SEGMENT_OPENED:
                log->n_opened++;
                break;
        case SGL_SEGMENT_SEALED:
                log->n_sealed++;
                break;
        case SGL_SEGMENT_RETIRED:
                log->n_retired++;
                assert_int_equal(fd, -1);
                return;
        default:
                fail_msg("unknown segment event %d", (int)event);
        }

        assert_true(fd >= 0);
        assert_ro_cloexec(fd);
        if (event == SGL_SEGMENT_SEALED)
                assert_write_sealed(fd);

        assert_true(log->n < MAX_SEGS);
        copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        assert_true(copy >= 3);
        log->seg[log->n].seq = seq;
        log->seg[log->n].event = event;
        log->seg[log->n].fd = copy;
        log->n++;
}

/* Hands @r every logged segment with @event that it has not had yet;
 * returns how many. */
static unsigned hand_over(sgl_reader *r, struct seg_log *log,
                          sgl_segment_event event) {
        unsigned n = 0;

        for (size_t i = 0; i < log->n; i++) {
                if (log->seg[i].event != event || log->seg[i].fd < 0)
                        continue;
                assert_int_equal(sgl_reader_add_segment_consume_fd(r, log->seg[i].fd), 0);
                log->seg[i].fd = -1;
                n++;
        }
        return n;
}

static void seg_log_close(struct seg_log *log) {
        for (size_t i = 0; i < log->n; i++) {
                if (log->seg[i].fd >= 0)
                        close(log->seg[i].fd);
                log->seg[i].fd = -1;
        }
}

/* ---------------------------------------------------------------- helpers */

static sgl_chunk *next_chunk(sgl_reader *r) {
        sgl_chunk *c = SENTINEL_CHUNK;

        assert_int_equal(sgl_reader_next(r, &c), 0);
        assert_non_null(c);
        assert_ptr_not_equal(c, SENTINEL_CHUNK);
        return c;
}

static void assert_no_next(sgl_reader *r) {
        sgl_chunk *c = SENTINEL_CHUNK;

        assert_int_equal(sgl_reader_next(r, &c), -EAGAIN);
        assert_ptr_equal(c, SENTINEL_CHUNK);
}

static void assert_absent(sgl_reader *r, uint64_t id) {
        sgl_chunk *c = SENTINEL_CHUNK;

        assert_int_equal(sgl_reader_get(r, id, &c), -ENOENT);
        assert_ptr_equal(c, SENTINEL_CHUNK);
}

static void assert_chunk(const sgl_chunk *c, uint64_t id, const void *data,
                         size_t size, uint64_t expiry) {
        assert_non_null(c);
        assert_int_equal(sgl_chunk_id(c), id);
        assert_int_equal(sgl_chunk_size(c), size);
        assert_int_equal(sgl_chunk_expiry(c), expiry);
        assert_true(sgl_chunk_version(c) > 0);
        assert_non_null(sgl_chunk_data(c));
        assert_memory_equal(sgl_chunk_data(c), data, size);
}

/* Looks @id up, checks it and releases it again. */
static void assert_get(sgl_reader *r, uint64_t id, const void *data, size_t size,
                       uint64_t expiry) {
        sgl_chunk *c = SENTINEL_CHUNK;

        assert_int_equal(sgl_reader_get(r, id, &c), 0);
        assert_ptr_not_equal(c, SENTINEL_CHUNK);
        assert_chunk(c, id, data, size, expiry);
        assert_null(sgl_chunk_unref(c));
}

static void get_stats(sgl_writer *w, sgl_writer_stats *st) {
        memset(st, 0xff, sizeof(*st));
        assert_int_equal(sgl_writer_get_stats(w, st), 0);
}

/* ------------------------------------------------------------------ tests */

static void test_now_ns(void **state) {
        struct timespec ts;
        uint64_t before, now, after;

        assert_int_equal(clock_gettime(CLOCK_REALTIME, &ts), 0);
        before = (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
        now = sgl_now_ns();
        assert_int_equal(clock_gettime(CLOCK_REALTIME, &ts), 0);
        after = (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;

        assert_true(before <= now);
        assert_true(now <= after);
}

static void test_unref_null(void **state) {
        sgl_writer *w = NULL;
        sgl_reader *r = NULL;
        sgl_chunk *c = NULL;
        sgl_host *h = NULL;

        assert_null(sgl_writer_unref(NULL));
        assert_null(sgl_reader_unref(NULL));
        assert_null(sgl_chunk_unref(NULL));
        assert_null(sgl_host_unref(NULL));

        /* the public cleanup helpers accept NULL too */
        sgl_writer_unrefp(&w);
        sgl_reader_unrefp(&r);
        sgl_chunk_unrefp(&c);
        sgl_host_unrefp(&h);
}

static void test_writer_settings(void **state) {
        sgl_writer *w = SENTINEL_WRITER;
        sgl_writer_stats st;
        struct seg_log log = { 0 };
        int fd, fd2;

        assert_int_equal(sgl_writer_new("test-api", 1u << 31, &w), -EINVAL);
        assert_ptr_equal(w, SENTINEL_WRITER);

        assert_int_equal(sgl_writer_new("test-api", 0, &w), 0);
        assert_non_null(w);
        assert_ptr_not_equal(w, SENTINEL_WRITER);

        /* a second reference keeps it alive; unref always returns NULL */
        assert_ptr_equal(sgl_writer_ref(w), w);
        assert_null(sgl_writer_unref(w));

        assert_int_equal(sgl_writer_set_seal_policy(w, (sgl_seal_policy)99, 0), -EINVAL);
        assert_int_equal(sgl_writer_set_seal_policy(w, SGL_SEAL_BYTES, 0), -EINVAL);
        assert_int_equal(sgl_writer_set_seal_policy(w, SGL_SEAL_BYTES, 65536), 0);
        assert_int_equal(sgl_writer_set_seal_policy(w, SGL_SEAL_USEC, 1000), 0);
        assert_int_equal(sgl_writer_set_seal_policy(w, SGL_SEAL_WHEN_FULL, 0), 0);
        assert_int_equal(sgl_writer_set_seal_policy(w, SGL_SEAL_EVERY_COMMIT, 0), 0);

        assert_int_equal(sgl_writer_set_segment_size(w, 1000), -EINVAL);
        assert_int_equal(sgl_writer_set_segment_size(w, 256 * 1024), 0);

        assert_int_equal(sgl_writer_set_gc(w, 101, 0, 0), -EINVAL);
        assert_int_equal(sgl_writer_set_gc(w, 50, 4096, 64), 0);

        sgl_writer_set_segment_fn(w, log_segment, &log);
        sgl_writer_set_segment_fn(w, NULL, NULL);

        /* each call makes a new descriptor that the caller owns */
        fd = sgl_writer_control_fd(w);
        assert_true(fd >= 0);
        assert_ro_cloexec(fd);
        fd2 = sgl_writer_control_fd(w);
        assert_true(fd2 >= 0);
        assert_int_not_equal(fd, fd2);
        assert_int_equal(close(fd), 0);
        assert_int_equal(close(fd2), 0);

        /* an empty area: nothing to hand out, commit, seal or compact */
        assert_int_equal(sgl_writer_foreach_segment(w, log_segment, &log), 0);
        assert_int_equal(log.n, 0);
        sgl_writer_abort(w);
        assert_int_equal(sgl_writer_commit(w), 0);
        assert_int_equal(sgl_writer_seal(w), 0);
        assert_int_equal(sgl_writer_tick(w), 0);
        assert_int_equal(sgl_writer_gc(w), 0);

        get_stats(w, &st);
        assert_int_equal(st.commits, 0);
        assert_int_equal(st.bytes_used, 0);
        assert_int_equal(st.bytes_live, 0);
        assert_int_equal(st.seals, 0);
        assert_int_equal(st.seal_copies, 0);
        assert_int_equal(st.gc_runs, 0);
        assert_int_equal(st.retired, 0);

        assert_null(sgl_writer_unref(w));
}

/* STRICT reader fed by the segment callback, as a rendezvous host does it. */
static void test_strict_roundtrip(void **state) {
        static const char hello[] = "hello", world[] = "world";
        struct seg_log log = { 0 };
        sgl_writer *w = NULL;
        sgl_reader *r = SENTINEL_READER;
        sgl_chunk *c, *held;
        sgl_writer_stats st;
        uint64_t id = 0, anon = 0, expiry, v;
        unsigned char block[100];
        void *data = NULL;
        int cfd;

        assert_int_equal(sgl_writer_new("test-api", 0, &w), 0);
        sgl_writer_set_segment_fn(w, log_segment, &log);

        assert_int_equal(sgl_reader_new(0, &r), 0);
        assert_non_null(r);
        assert_ptr_not_equal(r, SENTINEL_READER);
        assert_ptr_equal(sgl_reader_ref(r), r);
        assert_null(sgl_reader_unref(r));

        cfd = sgl_writer_control_fd(w);
        assert_true(cfd >= 0);
        assert_int_equal(sgl_reader_set_control_consume_fd(r, cfd), 0);

        assert_int_equal(sgl_reader_get_segment_count(r), 0);
        assert_no_next(r);
        assert_absent(r, 42);
        assert_int_equal(sgl_reader_wait(r, 0), -ETIMEDOUT);

        /* commit 1: four chunks, staged by copy and in place */
        assert_int_equal(sgl_writer_write(w, 42, 0, hello, 5, &id), 0);
        assert_int_equal(id, 42);
        assert_int_equal(sgl_writer_alloc(w, 43, 0, sizeof(block), &data, &id), 0);
        assert_int_equal(id, 43);
        assert_non_null(data);
        memset(block, 0xab, sizeof(block));
        memcpy(data, block, sizeof(block));
        expiry = sgl_now_ns() + 3600 * NSEC_PER_SEC;
        assert_int_equal(sgl_writer_write(w, 44, expiry, "later", 5, &id), 0);
        assert_int_equal(id, 44);
        assert_int_equal(sgl_writer_write(w, 0, 0, "anon", 4, &anon), 0);
        assert_true(anon != 0);
        assert_true(anon != 42 && anon != 43 && anon != 44);

        /* staged is not published: no segment was handed out yet */
        assert_int_equal(log.n_sealed, 0);
        assert_int_equal(sgl_writer_commit(w), 0);
        /* sealed at once, and never announced while open */
        assert_int_equal(log.n_sealed, 1);
        assert_int_equal(log.n_opened, 0);

        assert_int_equal(sgl_reader_wait(r, 0), 0);
        assert_int_equal(hand_over(r, &log, SGL_SEGMENT_SEALED), 1);
        assert_int_equal(sgl_reader_get_segment_count(r), 1);

        /* stream use: log order, versions strictly increasing */
        held = next_chunk(r);
        assert_chunk(held, 42, hello, 5, 0);
        v = sgl_chunk_version(held);
        c = next_chunk(r);
        assert_chunk(c, 43, block, sizeof(block), 0);
        assert_true(sgl_chunk_version(c) > v);
        v = sgl_chunk_version(c);
        assert_null(sgl_chunk_unref(c));
        c = next_chunk(r);
        assert_chunk(c, 44, "later", 5, expiry);
        assert_true(sgl_chunk_version(c) > v);
        v = sgl_chunk_version(c);
        assert_null(sgl_chunk_unref(c));
        c = next_chunk(r);
        assert_chunk(c, anon, "anon", 4, 0);
        assert_true(sgl_chunk_version(c) > v);
        v = sgl_chunk_version(c);
        assert_null(sgl_chunk_unref(c));
        assert_no_next(r);

        /* references: one more, one less, the chunk stays */
        assert_ptr_equal(sgl_chunk_ref(held), held);
        assert_null(sgl_chunk_unref(held));
        assert_chunk(held, 42, hello, 5, 0);

        /* keyed use */
        assert_get(r, 43, block, sizeof(block), 0);
        assert_absent(r, 999);

        /* an aborted batch never shows */
        assert_int_equal(sgl_writer_write(w, 46, 0, "gone", 4, &id), 0);
        sgl_writer_abort(w);
        get_stats(w, &st);
        assert_int_equal(st.commits, 1);

        /* commit 2: a tombstone, a new version, a chunk that soon expires */
        assert_int_equal(sgl_writer_delete(w, 43), 0);
        assert_int_equal(sgl_writer_write(w, 42, 0, world, 5, &id), 0);
        assert_int_equal(sgl_writer_write(w, 48, sgl_now_ns() + 20 * NSEC_PER_MSEC,
                                          "brief", 5, &id), 0);
        assert_int_equal(sgl_writer_commit(w), 0);
        assert_int_equal(log.n_sealed, 2);
        assert_int_equal(log.n_opened, 0);
        /* 43 has no live version any more */
        assert_int_equal(sgl_writer_delete(w, 43), -ENOENT);
        sgl_writer_abort(w);

        sleep_ms(60); /* 48 is expired from here on */

        assert_int_equal(hand_over(r, &log, SGL_SEGMENT_SEALED), 1);
        assert_int_equal(sgl_reader_get_segment_count(r), 2);

        c = next_chunk(r);
        assert_chunk(c, 42, world, 5, 0);
        assert_true(sgl_chunk_version(c) > v);
        assert_true(sgl_chunk_version(c) > sgl_chunk_version(held));
        assert_null(sgl_chunk_unref(c));
        assert_no_next(r); /* tombstones are no chunks, expired ones skipped */

        assert_get(r, 42, world, 5, 0);
        assert_absent(r, 43);
        assert_absent(r, 46);
        assert_absent(r, 48);
        assert_get(r, 44, "later", 5, expiry);

        get_stats(w, &st);
        assert_int_equal(st.commits, 2);
        assert_int_equal(st.segments, 2);
        assert_int_equal(st.seals + st.seal_copies, 2);
        assert_true(st.bytes_live > 0);
        assert_true(st.bytes_used >= st.bytes_live);

        /* a chunk outlives its reader and writer: its bytes stay valid */
        assert_null(sgl_reader_unref(r));
        assert_null(sgl_writer_unref(w));
        assert_chunk(held, 42, hello, 5, 0);
        assert_null(sgl_chunk_unref(held));

        seg_log_close(&log);
}

/* The open segment: TRUSTED readers see its commits at once, STRICT readers
 * refuse it until it is sealed (explicitly, or by time with tick()). */
static void test_open_segment(void **state) {
        struct seg_log push = { 0 }, late = { 0 };
        sgl_writer *w = NULL;
        sgl_reader *strict = NULL, *trusted = NULL;
        sgl_writer_stats st;
        sgl_chunk *c;
        int fd;

        assert_int_equal(sgl_writer_new("test-api-open", SGL_WRITER_NO_MIRROR_PROTECT, &w), 0);
        assert_int_equal(sgl_writer_set_seal_policy(w, SGL_SEAL_WHEN_FULL, 0), 0);
        assert_int_equal(sgl_writer_set_segment_size(w, 64 * 1024), 0);
        sgl_writer_set_segment_fn(w, log_segment, &push);

        assert_int_equal(sgl_writer_write(w, 7, 0, "open", 4, NULL), 0);
        assert_int_equal(sgl_writer_commit(w), 0);
        assert_int_equal(push.n_opened, 1);
        assert_int_equal(push.n_sealed, 0);

        /* a late reader asks for what exists */
        assert_int_equal(sgl_writer_foreach_segment(w, log_segment, &late), 1);
        assert_int_equal(late.n, 1);
        assert_int_equal(late.seg[0].event, SGL_SEGMENT_OPENED);

        /* STRICT refuses a segment without F_SEAL_WRITE.  Whether the
         * descriptor was consumed on failure is not ours to know: leave it. */
        assert_int_equal(sgl_reader_new(0, &strict), 0);
        fd = fcntl(late.seg[0].fd, F_DUPFD_CLOEXEC, 3);
        assert_true(fd >= 3);
        assert_int_equal(sgl_reader_add_segment_consume_fd(strict, fd), -EACCES);
        assert_int_equal(sgl_reader_get_segment_count(strict), 0);
        assert_no_next(strict);

        assert_int_equal(sgl_reader_new(SGL_READER_TRUSTED, &trusted), 0);
        assert_int_equal(hand_over(trusted, &late, SGL_SEGMENT_OPENED), 1);
        assert_int_equal(sgl_reader_get_segment_count(trusted), 1);
        c = next_chunk(trusted);
        assert_chunk(c, 7, "open", 4, 0);
        assert_null(sgl_chunk_unref(c));
        assert_no_next(trusted);

        /* the next commit into the same open segment shows at once */
        assert_int_equal(sgl_writer_write(w, 8, 0, "more", 4, NULL), 0);
        assert_int_equal(sgl_writer_commit(w), 0);
        assert_int_equal(push.n_opened, 1);
        c = next_chunk(trusted);
        assert_chunk(c, 8, "more", 4, 0);
        assert_null(sgl_chunk_unref(c));
        assert_no_next(trusted);

        /* seal it now: STRICT readers may have it */
        assert_int_equal(sgl_writer_seal(w), 0);
        assert_int_equal(push.n_sealed, 1);
        get_stats(w, &st);
        assert_int_equal(st.seals + st.seal_copies, 1);
        assert_int_equal(hand_over(strict, &push, SGL_SEGMENT_SEALED), 1);
        assert_int_equal(sgl_reader_get_segment_count(strict), 1);
        c = next_chunk(strict);
        assert_chunk(c, 7, "open", 4, 0);
        assert_null(sgl_chunk_unref(c));
        c = next_chunk(strict);
        assert_chunk(c, 8, "more", 4, 0);
        assert_null(sgl_chunk_unref(c));
        assert_no_next(strict);
        assert_get(strict, 8, "more", 4, 0);

        /* sealing by time is driven by tick() */
        assert_int_equal(sgl_writer_set_seal_policy(w, SGL_SEAL_USEC, 1000), 0);
        assert_int_equal(sgl_writer_write(w, 9, 0, "timed", 5, NULL), 0);
        assert_int_equal(sgl_writer_commit(w), 0);
        assert_int_equal(push.n_opened, 2);
        assert_int_equal(push.n_sealed, 1);
        sleep_ms(5);
        assert_int_equal(sgl_writer_tick(w), 1);
        assert_int_equal(push.n_sealed, 2);
        assert_int_equal(sgl_writer_tick(w), 0);
        assert_int_equal(hand_over(strict, &push, SGL_SEGMENT_SEALED), 1);
        c = next_chunk(strict);
        assert_chunk(c, 9, "timed", 5, 0);
        assert_null(sgl_chunk_unref(c));
        assert_no_next(strict);

        assert_null(sgl_reader_unref(trusted));
        assert_null(sgl_reader_unref(strict));
        assert_null(sgl_writer_unref(w));
        seg_log_close(&push);
        seg_log_close(&late);
}

/* SGL_WRITER_SEAL_BY_COPY: the sealed segment is a fresh copy. */
static void test_seal_by_copy(void **state) {
        struct seg_log late = { 0 };
        sgl_writer *w = NULL;
        sgl_reader *r = NULL;
        sgl_writer_stats st;
        sgl_chunk *c;

        assert_int_equal(sgl_writer_new("test-api-copy", SGL_WRITER_SEAL_BY_COPY, &w), 0);
        assert_int_equal(sgl_writer_set_seal_policy(w, SGL_SEAL_WHEN_FULL, 0), 0);
        assert_int_equal(sgl_writer_write(w, 5, 0, "copied", 6, NULL), 0);
        assert_int_equal(sgl_writer_commit(w), 0);
        assert_int_equal(sgl_writer_seal(w), 0);

        get_stats(w, &st);
        assert_int_equal(st.seal_copies, 1);
        assert_int_equal(st.seals, 0);

        assert_int_equal(sgl_writer_foreach_segment(w, log_segment, &late), 1);
        assert_int_equal(late.n_sealed, 1);
        assert_int_equal(sgl_reader_new(0, &r), 0);
        assert_int_equal(hand_over(r, &late, SGL_SEGMENT_SEALED), 1);
        c = next_chunk(r);
        assert_chunk(c, 5, "copied", 6, 0);
        assert_null(sgl_chunk_unref(c));
        assert_no_next(r);

        assert_null(sgl_reader_unref(r));
        assert_null(sgl_writer_unref(w));
        seg_log_close(&late);
}

/* Compaction retires segments that hold only garbage; a late reader then
 * sees the newest version once. */
static void test_gc(void **state) {
        struct seg_log push = { 0 }, late = { 0 };
        sgl_writer *w = NULL;
        sgl_reader *r = NULL;
        sgl_writer_stats st;
        sgl_chunk *c;
        int retired;

        assert_int_equal(sgl_writer_new("test-api-gc", 0, &w), 0);
        assert_int_equal(sgl_writer_set_gc(w, 0, 0, 0), 0); /* no automatic GC */
        sgl_writer_set_segment_fn(w, log_segment, &push);

        assert_int_equal(sgl_writer_write(w, 7, 0, "a", 1, NULL), 0);
        assert_int_equal(sgl_writer_commit(w), 0);
        assert_int_equal(sgl_writer_write(w, 7, 0, "b", 1, NULL), 0);
        assert_int_equal(sgl_writer_commit(w), 0);
        assert_int_equal(sgl_writer_write(w, 7, 0, "c", 1, NULL), 0);
        assert_int_equal(sgl_writer_commit(w), 0);
        get_stats(w, &st);
        assert_int_equal(st.segments, 3);
        assert_int_equal(st.retired, 0);

        retired = sgl_writer_gc(w);
        assert_true(retired >= 2);
        assert_int_equal(push.n_retired, (unsigned)retired);
        get_stats(w, &st);
        assert_int_equal(st.retired, (uint64_t)retired);
        assert_int_equal(st.gc_runs, 1);

        assert_true(sgl_writer_foreach_segment(w, log_segment, &late) >= 1);
        assert_int_equal(sgl_reader_new(0, &r), 0);
        assert_true(hand_over(r, &late, SGL_SEGMENT_SEALED) >= 1);
        c = next_chunk(r);
        assert_chunk(c, 7, "c", 1, 0);
        assert_null(sgl_chunk_unref(c));
        assert_no_next(r);
        assert_get(r, 7, "c", 1, 0);

        assert_null(sgl_reader_unref(r));
        assert_null(sgl_writer_unref(w));
        seg_log_close(&push);
        seg_log_close(&late);
}

/* The reader side of test_host(), in a child process: no cmocka asserts
 * here (a failure would unwind into the parent's test runner), just an exit
 * code that names the step that failed. */
static int host_child(const char *area, const char *address, int ready_fd) {
        sgl_reader *r = NULL;
        sgl_chunk *c = NULL;
        uint64_t deadline;
        int fd, k;

        if (sgl_reader_open(area, address, 0, &r) < 0 || !r)
                return 10;
        if (sgl_reader_get_segment_count(r) != 1)
                return 11;
        if (sgl_reader_next(r, &c) < 0 || sgl_chunk_id(c) != 1 ||
            sgl_chunk_size(c) != 5 || memcmp(sgl_chunk_data(c), "first", 5) != 0)
                return 12;
        c = sgl_chunk_unref(c);
        if (sgl_reader_next(r, &c) != -EAGAIN)
                return 13;
        fd = sgl_reader_get_fd(r);
        if (fd < 0)
                return 14;
        if (write(ready_fd, "o", 1) != 1)
                return 15;

        /* the host pushes the next sealed segment on its own */
        deadline = sgl_now_ns() + 10 * NSEC_PER_SEC;
        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };

                if (sgl_now_ns() > deadline)
                        return 16;
                (void)poll(&p, 1, 100);
                if (sgl_reader_process(r) < 0)
                        return 17;
                k = sgl_reader_next(r, &c);
                if (k == 0)
                        break;
                if (k != -EAGAIN)
                        return 18;
        }
        if (sgl_chunk_id(c) != 2 || sgl_chunk_size(c) != 6 ||
            memcmp(sgl_chunk_data(c), "second", 6) != 0)
                return 19;
        sgl_chunk_unref(c);
        if (sgl_reader_get_segment_count(r) != 2)
                return 20;
        sgl_reader_unref(r);
        return 0;
}

/* The embedded rendezvous: a host serves the writer's area on a socket, a
 * reader in another process opens it by name and gets pushed what follows. */
static void test_host(void **state) {
        static const char area[] = "test-api-host";
        sgl_writer *w = NULL;
        sgl_host *h = NULL, *h2 = (sgl_host *)(void *)&sentinel;
        char address[64];
        int ready[2], status = -1, hfd;
        bool pushed = false, ready_seen = false;
        uint64_t deadline;
        pid_t pid;

        snprintf(address, sizeof(address), "@sigillo-test-api-%d", (int)getpid());

        assert_int_equal(sgl_writer_new(area, 0, &w), 0);
        assert_int_equal(sgl_writer_write(w, 1, 0, "first", 5, NULL), 0);
        assert_int_equal(sgl_writer_commit(w), 0);

        assert_int_equal(sgl_host_new(w, address, &h), 0);
        assert_non_null(h);
        /* one address, one host */
        assert_int_equal(sgl_host_new(w, address, &h2), -EADDRINUSE);
        assert_ptr_equal(h2, (sgl_host *)(void *)&sentinel);

        assert_ptr_equal(sgl_host_ref(h), h);
        assert_null(sgl_host_unref(h));
        assert_int_equal(sgl_host_set_access(h, 01000, NULL, 0, NULL, 0), -EINVAL);
        assert_int_equal(sgl_host_set_access(h, 0400, NULL, 0, NULL, 0), 0);
        hfd = sgl_host_get_fd(h);
        assert_true(hfd >= 0);
        assert_int_equal(sgl_host_get_connections(h), 0);
        assert_int_equal(sgl_host_process(h), 0);

        assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                close(ready[0]);
                _exit(host_child(area, address, ready[1]));
        }
        close(ready[1]);

        /* serve until the child is done; commit once it is subscribed */
        deadline = sgl_now_ns() + 30 * NSEC_PER_SEC;
        for (;;) {
                struct pollfd p[2] = {
                        { .fd = hfd, .events = POLLIN },
                        { .fd = ready_seen ? -1 : ready[0], .events = POLLIN },
                };
                pid_t k;

                assert_true(sgl_now_ns() < deadline);
                assert_true(poll(p, 2, 20) >= 0);
                assert_true(sgl_host_process(h) >= 0);
                if (p[1].revents) {
                        char b;
                        ready_seen = true;
                        if (read(ready[0], &b, 1) == 1) {
                                assert_int_equal(sgl_host_get_connections(h), 1);
                                assert_int_equal(sgl_writer_write(w, 2, 0, "second", 6, NULL), 0);
                                assert_int_equal(sgl_writer_commit(w), 0);
                                pushed = true;
                        }
                }
                k = waitpid(pid, &status, WNOHANG);
                assert_true(k >= 0);
                if (k == pid)
                        break;
        }
        close(ready[0]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_true(pushed);

        /* the host notices the reader is gone */
        deadline = sgl_now_ns() + 10 * NSEC_PER_SEC;
        while (sgl_host_get_connections(h) > 0) {
                struct pollfd p = { .fd = hfd, .events = POLLIN };

                assert_true(sgl_now_ns() < deadline);
                assert_true(poll(&p, 1, 20) >= 0);
                assert_true(sgl_host_process(h) >= 0);
        }

        assert_null(sgl_host_unref(h));
        assert_null(sgl_writer_unref(w));
}

/* ------------------------------------------------------------- publishing */

/* The daemon's side of test_publish(), in a child, written from
 * doc/protocol.md alone (this program sees no internal header): raw
 * little-endian bytes over SOCK_SEQPACKET.  Exit codes name the step. */
static void le16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void le32(uint8_t *p, uint32_t v) { le16(p, (uint16_t)v); le16(p + 2, (uint16_t)(v >> 16)); }
static void le64(uint8_t *p, uint64_t v) { le32(p, (uint32_t)v); le32(p + 4, (uint32_t)(v >> 32)); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const uint8_t *p) { return get16(p) | (uint32_t)get16(p + 2) << 16; }

static const uint8_t daemon_area[16] = "daemon-area-id!";

/* One message; returns its size, its type in *type, its serial in *serial
 * and its descriptor (or -1) in *fd. */
static ssize_t raw_recv(int sock, uint8_t *buf, uint16_t *type, uint32_t *serial, int *fd) {
        union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } ctl;
        struct iovec iov = { .iov_base = buf, .iov_len = 4096 };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                              .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b) };
        struct cmsghdr *c;
        ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);

        *fd = -1;
        if (n < 16 || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || get32(buf + 4) != (uint32_t)n)
                return -1;
        c = CMSG_FIRSTHDR(&msg);
        if (c && c->cmsg_type == SCM_RIGHTS)
                memcpy(fd, CMSG_DATA(c), sizeof(int));
        *type = get16(buf);
        *serial = get32(buf + 8);
        return n;
}

static int raw_send(int sock, uint16_t type, uint32_t serial, const uint8_t *payload, size_t len) {
        uint8_t buf[64] = { 0 };

        le16(buf, type);
        le32(buf + 4, (uint32_t)(16 + len));
        le32(buf + 8, serial);
        if (len > 0)
                memcpy(buf + 16, payload, len);
        return send(sock, buf, 16 + len, MSG_NOSIGNAL) == (ssize_t)(16 + len) ? 0 : -1;
}

static int daemon_child(int listen_fd) {
        uint8_t buf[4096], p[32] = { 0 };
        sgl_reader *r = NULL;
        sgl_chunk *c = NULL;
        uint32_t serial;
        uint16_t type;
        int conn, fd, k;

        conn = accept(listen_fd, NULL, NULL);
        if (conn < 0)
                return 30;
        /* HELLO, role writer -> WELCOME 1, 4096, 255 */
        if (raw_recv(conn, buf, &type, &serial, &fd) != 28 || type != 1 || get32(buf + 20) != 2)
                return 31;
        le16(p, 1);
        le32(p + 4, 4096);
        le32(p + 8, 255);
        if (raw_send(conn, 64, serial, p, 16) < 0)
                return 32;
        /* CLAIM "api-pub", PERSIST, mode 0444 -> CLAIMED, next_seq 1 */
        if (raw_recv(conn, buf, &type, &serial, &fd) != 36 + 7 || type != 3 ||
            get32(buf + 16) != 1 || get32(buf + 20) != 0444 || memcmp(buf + 36, "api-pub", 7) != 0)
                return 33;
        memset(p, 0, sizeof(p));
        memcpy(p, daemon_area, 16);
        le64(p + 24, 1);
        if (raw_send(conn, 74, serial, p, 32) < 0)
                return 34;
        /* PUBLISH_CONTROL with the control page, read-only */
        if (raw_recv(conn, buf, &type, &serial, &fd) != 16 || type != 4 || fd < 0 ||
            (fcntl(fd, F_GETFL) & O_ACCMODE) != O_RDONLY)
                return 35;
        if (sgl_reader_new(0, &r) < 0 || sgl_reader_set_control_consume_fd(r, fd) < 0)
                return 36;
        /* PING -> OK */
        if (raw_recv(conn, buf, &type, &serial, &fd) != 16 || type != 10)
                return 37;
        if (raw_send(conn, 65, serial, NULL, 0) < 0)
                return 38;
        /* the commit: PUBLISH_SEGMENT seq 1, SEALED */
        if (raw_recv(conn, buf, &type, &serial, &fd) != 32 || type != 5 || fd < 0 ||
            get32(buf + 16) != 1 || get32(buf + 24) != 2 ||
            (fcntl(fd, F_GETFL) & O_ACCMODE) != O_RDONLY)
                return 39;
        k = sgl_reader_add_segment_consume_fd(r, fd);
        if (k < 0)
                return 40;
        if (sgl_reader_get(r, 42, &c) < 0 || sgl_chunk_size(c) != 9 ||
            memcmp(sgl_chunk_data(c), "published", 9) != 0)
                return 41;
        sgl_chunk_unref(c);
        sgl_reader_unref(r);
        /* then the writer goes */
        if (recv(conn, buf, sizeof(buf), 0) != 0)
                return 42;
        return 0;
}

static void test_publish(void **state) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char address[64];
        sgl_writer *w = NULL;
        int lfd, pfd, status;
        size_t len;
        pid_t pid;

        assert_int_equal(sgl_writer_get_publish_fd(NULL), -EINVAL);
        assert_int_equal(sgl_writer_publish_process(NULL), -EINVAL);
        assert_int_equal(sgl_writer_publish(NULL, "x", NULL, 0, 0, NULL, 0, NULL, 0), -EINVAL);
        assert_int_equal(sgl_writer_new("api-pub", 0, &w), 0);
        assert_int_equal(sgl_writer_get_publish_fd(w), -ENOTCONN);
        assert_int_equal(sgl_writer_publish_process(w), -ENOTCONN);
        assert_int_equal(sgl_writer_publish(w, "../x", NULL, 0, 0, NULL, 0, NULL, 0), -EINVAL);
        assert_int_equal(sgl_writer_publish(w, NULL, NULL, SGL_PUBLISH_PERSIST << 1, 0,
                                            NULL, 0, NULL, 0), -EINVAL);

        snprintf(address, sizeof(address), "@sigillo-test-api-pub-%d", (int)getpid());
        assert_int_equal(sgl_writer_publish(w, NULL, address, 0, 0444, NULL, 0, NULL, 0),
                         -ECONNREFUSED);

        len = strlen(address);
        memcpy(sa.sun_path + 1, address + 1, len - 1);
        lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        assert_true(lfd >= 0);
        assert_int_equal(bind(lfd, (struct sockaddr *)&sa,
                              (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)), 0);
        assert_int_equal(listen(lfd, 1), 0);
        fflush(stdout);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
                _exit(daemon_child(lfd));
        close(lfd);

        /* NULL name: the writer's own */
        assert_int_equal(sgl_writer_publish(w, NULL, address, SGL_PUBLISH_PERSIST, 0444,
                                            NULL, 0, NULL, 0), 0);
        pfd = sgl_writer_get_publish_fd(w);
        assert_true(pfd >= 0);
        assert_int_equal(sgl_writer_publish_process(w), 0);
        assert_int_equal(sgl_writer_write(w, 42, 0, "published", 9, NULL), 0);
        assert_int_equal(sgl_writer_commit(w), 0);
        assert_int_equal(sgl_writer_publish_process(w), 0);

        /* the daemon checks and reads it, then sees the writer go */
        assert_null(sgl_writer_unref(w));
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_now_ns),
                cmocka_unit_test(test_unref_null),
                cmocka_unit_test(test_writer_settings),
                cmocka_unit_test(test_strict_roundtrip),
                cmocka_unit_test(test_open_segment),
                cmocka_unit_test(test_seal_by_copy),
                cmocka_unit_test(test_gc),
                cmocka_unit_test(test_host),
                cmocka_unit_test(test_publish),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
