/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-segment.c - the segment format parser (src/segment.c) on hand-built
 * bytes, and the reader's checks of a received segment descriptor
 * (sgl_reader_add_segment_consume_fd()) on hand-built memfds.
 *
 * What it proves:
 *  - sgl_seg_header_parse() accepts exactly the well-formed header, rejects
 *    each malformation with its documented error (seq 0 included: readers
 *    take it for "no segment") and leaves its output alone.
 *  - sgl_seg_visible_end() never widens the window past the mapping: a
 *    commit_end below the first commit, beyond the size or unaligned is
 *    clamped (to SGL_SEG_DATA, or down to SGL_RECORD_ALIGN).
 *  - sgl_rec_iter yields every record of every commit (commits packed from
 *    offset 64 on, a commit's len deciding where the next starts, slack
 *    included; empty commits skipped; records spanning pages; payloads of
 *    0, 1, 63, 64, 65 ... bytes) with
 *    the exact fields and payload bytes written; every single-field
 *    corruption gives -EBADMSG after the valid records before it, the error
 *    sticks, and nothing is ever read outside the buffer: the buffers end
 *    right before a PROT_NONE guard page, so one byte too far kills the test.
 *  - sgl_rec_at() accepts the offsets of real records and rejects the rest,
 *    with the iterator's record checks (kind, lengths, padding).
 *  - A reader refuses every unfit descriptor with its own errno (not a
 *    memfd, size seals missing, F_SEAL_WRITE missing for STRICT or both
 *    WRITE and FUTURE_WRITE missing for TRUSTED, exec bit, sparse, size
 *    mismatch, bad header, other area, duplicate seq, too many) and always
 *    closes the descriptor it was given; what it accepts, it reads, byte
 *    for byte.
 */

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "segment.h"
#include "test-util.h"

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif
#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif

#define PAGE ((uint64_t)SGL_PAGE)
#define DATA ((uint64_t)SGL_SEG_DATA)
#define HDR ((uint64_t)sizeof(struct sgl_commit_header))
#define RECH ((uint64_t)sizeof(struct sgl_record))

static const uint8_t area_a[SGL_AREA_ID_LEN] = "area-AAAAAAAAAA";
static const uint8_t area_b[SGL_AREA_ID_LEN] = "area-BBBBBBBBBB";

/* ------------------------------------------------------ guarded buffers */

/* @size bytes (a multiple of SGL_PAGE) that end right before a PROT_NONE
 * page: a read one byte past the end faults. */
struct guarded {
        void *map;
        size_t maplen;
        uint8_t *buf;
        size_t size;
};

static uint8_t *guarded_new(struct guarded *g, size_t size) {
        size_t pg = (size_t)sysconf(_SC_PAGESIZE);
        size_t body = (size + pg - 1) / pg * pg;

        assert_true(size % PAGE == 0);
        g->maplen = body + pg;
        g->map = mmap(NULL, g->maplen, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(g->map != MAP_FAILED);
        assert_int_equal(mprotect((uint8_t *)g->map + body, pg, PROT_NONE), 0);
        g->buf = (uint8_t *)g->map + body - size;
        g->size = size;
        memset(g->buf, 0, size);
        return g->buf;
}

static void guarded_free(struct guarded *g) {
        assert_int_equal(munmap(g->map, g->maplen), 0);
}

/* ------------------------------------------------- hand-built segments */

/* Writes segments the way the writer does, field by field, so that tests
 * can then break exactly one field. */
struct img {
        uint8_t *base;
        uint64_t size;
        uint64_t pos;            /* next free byte */
        uint64_t commit;         /* offset of the commit being built */
        uint32_t nrec;
        uint64_t commit_no;
};

static struct sgl_seg_header *img_hdr(struct img *m) {
        return (struct sgl_seg_header *)m->base;
}

static struct sgl_commit_header *commit_at(uint8_t *base, uint64_t off) {
        return (struct sgl_commit_header *)(base + off);
}

static struct sgl_record *rec_at(uint8_t *base, uint64_t off) {
        return (struct sgl_record *)(base + off);
}

static void img_init(struct img *m, uint8_t *base, uint64_t size, uint64_t seq,
                     const uint8_t *area) {
        *m = (struct img) { .base = base, .size = size, .pos = DATA };
        memset(base, 0, size);
        *img_hdr(m) = (struct sgl_seg_header) {
                .magic = SGL_SEG_MAGIC,
                .version = SGL_FORMAT_VERSION,
                .header_size = sizeof(struct sgl_seg_header),
                .seq = seq,
                .size = size,
                .commit_end = DATA,
                .created_ns = 1,
        };
        memcpy(img_hdr(m)->area_id, area, SGL_AREA_ID_LEN);
}

/* Commits are packed: the next one starts where the last one's len ends
 * (a test may move m->pos on before img_end() to give a commit slack). */
static uint64_t img_begin(struct img *m) {
        m->commit = m->pos;
        m->pos = m->commit + HDR;
        m->nrec = 0;
        assert_true(m->pos <= m->size);
        return m->commit;
}

/* Payload bytes of a record are a pattern of its id and version. */
static uint64_t payload_seed(uint64_t id, uint64_t version) {
        return id * 1000003u + version;
}

static uint64_t img_rec(struct img *m, uint32_t kind, uint64_t id,
                        uint64_t version, uint64_t expire_ns, uint64_t len) {
        uint64_t off = m->pos;
        struct sgl_record *r;

        assert_true(sgl_record_span(len) <= m->size - off);
        r = rec_at(m->base, off);
        *r = (struct sgl_record) {
                .kind = kind,
                .flags = kind == SGL_REC_DATA && (id & 1) ? SGL_RECF_RELOCATED : 0,
                .id = id,
                .version = version,
                .expire_ns = expire_ns,
                .len = len,
                .orig_seq = id + 7,
        };
        if (kind == SGL_REC_RETIRE) {
                for (uint64_t i = 0; i < len / 8; i++) {
                        uint64_t seq = 1000 + i;
                        memcpy(m->base + off + RECH + 8 * i, &seq, 8);
                }
        } else {
                tu_fill_pattern(m->base + off + RECH, len, payload_seed(id, version));
        }
        m->pos += sgl_record_span(len);
        m->nrec++;
        return off;
}

static uint64_t img_data(struct img *m, uint64_t id, uint64_t version, uint64_t len) {
        return img_rec(m, SGL_REC_DATA, id, version, 0, len);
}

/* Closes the commit being built and publishes it through commit_end. */
static void img_end(struct img *m) {
        *commit_at(m->base, m->commit) = (struct sgl_commit_header) {
                .magic = SGL_COMMIT_MAGIC,
                .nrec = m->nrec,
                .len = m->pos - m->commit,
                .commit_no = ++m->commit_no,
        };
        img_hdr(m)->commit_end = m->pos;
}

/* Checks one parsed record against what img_rec() wrote, including every
 * payload byte (so a payload pointer outside the buffer faults here). */
static void check_view(const struct sgl_rec_view *v, const uint8_t *base,
                       uint64_t size, uint64_t off, uint32_t kind, uint64_t id,
                       uint64_t version, uint64_t len) {
        uint8_t *want;

        assert_int_equal(v->kind, kind);
        assert_int_equal(v->id, id);
        assert_int_equal(v->version, version);
        assert_int_equal(v->len, len);
        assert_int_equal(v->offset, off);
        assert_int_equal(v->orig_seq, id + 7);
        assert_int_equal(v->flags, kind == SGL_REC_DATA && (id & 1) ? SGL_RECF_RELOCATED : 0);
        assert_ptr_equal(v->payload, base + off + RECH);
        assert_true(off + RECH + len <= size);
        if (kind == SGL_REC_RETIRE) {
                for (uint64_t i = 0; i < len / 8; i++) {
                        uint64_t seq;
                        memcpy(&seq, v->payload + 8 * i, 8);
                        assert_int_equal(seq, 1000 + i);
                }
                return;
        }
        want = malloc(len + 1);
        assert_non_null(want);
        tu_fill_pattern(want, len, payload_seed(id, version));
        assert_memory_equal(v->payload, want, len);
        free(want);
}

/* --------------------------------------------------------- the guard */

static int child_touch_guard(void *userdata) {
        const volatile uint8_t *p = userdata;

        /* cmocka's handler (inherited from the test runner) would turn the
         * fault into a test failure inside this child */
        signal(SIGSEGV, SIG_DFL);
        (void)p[0];
        return 0; /* not reached: the guard faults */
}

/* The guard pages the other tests rely on do fault: a parser that read one
 * byte too far would kill the test instead of passing it. */
static void test_guard_faults(void **state) {
        struct guarded g;
        uint8_t *b;
        int st;

        (void)state;
        b = guarded_new(&g, 2 * PAGE);
        b[2 * PAGE - 1] = 1; /* the last byte is ours */
        st = tu_wait_status(tu_fork(child_touch_guard, b + 2 * PAGE));
        assert_true(WIFSIGNALED(st));
        assert_int_equal(WTERMSIG(st), SIGSEGV);
        guarded_free(&g);
}

/* ------------------------------------------------------------- header */

static void test_header_parse_valid(void **state) {
        struct sgl_seg_info info;
        struct guarded g;
        struct img m;
        uint8_t *b;

        (void)state;
        b = guarded_new(&g, 2 * PAGE);
        img_init(&m, b, 2 * PAGE, 42, area_a);
        memset(&info, 0xaa, sizeof(info));
        assert_int_equal(sgl_seg_header_parse(b, 2 * PAGE, &info), 0);
        assert_memory_equal(info.area_id, area_a, SGL_AREA_ID_LEN);
        assert_int_equal(info.seq, 42);
        assert_int_equal(info.size, 2 * PAGE);

        /* Exactly the header is read: a header whose last byte is the last
         * byte of the buffer parses, without touching the guard. */
        memmove(b + 2 * PAGE - sizeof(struct sgl_seg_header), b,
                sizeof(struct sgl_seg_header));
        assert_int_equal(sgl_seg_header_parse(b + 2 * PAGE - sizeof(struct sgl_seg_header),
                                              sizeof(struct sgl_seg_header), &info), 0);
        assert_int_equal(info.seq, 42);

        /* Unaligned placement is fine too (copied, never dereferenced). */
        memmove(b + 1, b, sizeof(struct sgl_seg_header));
        assert_int_equal(sgl_seg_header_parse(b + 1, sizeof(struct sgl_seg_header), &info), 0);
        assert_int_equal(info.seq, 42);

        /* The largest and smallest sizes allowed. */
        img_init(&m, b, 2 * PAGE, 7, area_b);
        img_hdr(&m)->size = SGL_SEG_MAX_SIZE;
        assert_int_equal(sgl_seg_header_parse(b, sizeof(struct sgl_seg_header), &info), 0);
        assert_int_equal(info.size, SGL_SEG_MAX_SIZE);
        assert_memory_equal(info.area_id, area_b, SGL_AREA_ID_LEN);
        img_hdr(&m)->size = 2 * PAGE;
        assert_int_equal(sgl_seg_header_parse(b, sizeof(struct sgl_seg_header), &info), 0);
        assert_int_equal(info.size, 2 * PAGE);
        guarded_free(&g);
}

struct hdr_case {
        const char *what;
        int field;               /* which field to set */
        uint64_t value;
        int err;
};

enum { F_MAGIC, F_VERSION, F_HSIZE, F_SIZE, F_SEQ };

static void test_header_parse_malformed(void **state) {
        static const struct hdr_case cases[] = {
                { "magic 0", F_MAGIC, 0, -EBADMSG },
                { "magic one bit off", F_MAGIC, SGL_SEG_MAGIC ^ 1, -EBADMSG },
                { "magic of the control page", F_MAGIC, SGL_CTL_MAGIC, -EBADMSG },
                { "version 0", F_VERSION, 0, -EPROTONOSUPPORT },
                { "version 1 (commits on pages)", F_VERSION, 1, -EPROTONOSUPPORT },
                { "version 3", F_VERSION, 3, -EPROTONOSUPPORT },
                { "version max", F_VERSION, UINT32_MAX, -EPROTONOSUPPORT },
                { "header_size 0", F_HSIZE, 0, -EBADMSG },
                { "header_size - 1", F_HSIZE, sizeof(struct sgl_seg_header) - 1, -EBADMSG },
                { "header_size + 8", F_HSIZE, sizeof(struct sgl_seg_header) + 8, -EBADMSG },
                { "header_size page", F_HSIZE, PAGE, -EBADMSG },
                { "size 0", F_SIZE, 0, -EBADMSG },
                { "size 64", F_SIZE, 64, -EBADMSG },
                { "size 1 page - 1", F_SIZE, PAGE - 1, -EBADMSG },
                { "size 8191", F_SIZE, 2 * PAGE - 1, -EBADMSG },
                { "size 8193", F_SIZE, 2 * PAGE + 1, -EBADMSG },
                { "size 2.5 pages", F_SIZE, 5 * PAGE / 2, -EBADMSG },
                { "size 1 TiB - 1", F_SIZE, SGL_SEG_MAX_SIZE - 1, -EBADMSG },
                { "size 1 TiB + 1 page", F_SIZE, SGL_SEG_MAX_SIZE + PAGE, -EBADMSG },
                { "size 2^63", F_SIZE, 1ULL << 63, -EBADMSG },
                { "size max page", F_SIZE, UINT64_MAX & ~(PAGE - 1), -EBADMSG },
                { "size max", F_SIZE, UINT64_MAX, -EBADMSG },
                /* no writer makes it; readers take it for "no segment" */
                { "seq 0", F_SEQ, 0, -EBADMSG },
        };
        struct sgl_seg_info info, sentinel;
        struct guarded g;
        struct img m;
        uint8_t *b, *h;

        (void)state;
        b = guarded_new(&g, 2 * PAGE);
        memset(&sentinel, 0x5a, sizeof(sentinel));

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct sgl_seg_header *hp;

                img_init(&m, b, 2 * PAGE, 3, area_a);
                hp = img_hdr(&m);
                switch (cases[i].field) {
                case F_MAGIC: hp->magic = cases[i].value; break;
                case F_VERSION: hp->version = (uint32_t)cases[i].value; break;
                case F_HSIZE: hp->header_size = (uint32_t)cases[i].value; break;
                case F_SIZE: hp->size = cases[i].value; break;
                case F_SEQ: hp->seq = cases[i].value; break;
                }
                info = sentinel;
                if (sgl_seg_header_parse(b, 2 * PAGE, &info) != cases[i].err)
                        fail_msg("%s: got %d, want %d", cases[i].what,
                                 sgl_seg_header_parse(b, 2 * PAGE, &info), cases[i].err);
                assert_memory_equal(&info, &sentinel, sizeof(info));
        }

        /* Short buffers, placed against the guard: nothing is read. */
        img_init(&m, b, 2 * PAGE, 3, area_a);
        h = b + 2 * PAGE - (sizeof(struct sgl_seg_header) - 1);
        memmove(h, b, sizeof(struct sgl_seg_header) - 1);
        for (size_t len = 0; len < sizeof(struct sgl_seg_header); len++) {
                info = sentinel;
                assert_int_equal(sgl_seg_header_parse(b + 2 * PAGE - len, len, &info),
                                 -EBADMSG);
                assert_memory_equal(&info, &sentinel, sizeof(info));
        }
        guarded_free(&g);
}

/* ----------------------------------------------------------- visible end */

static void test_visible_end(void **state) {
        static const struct { uint64_t commit_end, want; } cases[] = {
                { 0, DATA },
                { 1, DATA },
                { 63, DATA },                      /* inside the header */
                { 64, 64 },
                { 65, 64 },
                { 127, 64 },
                { 128, 128 },
                { PAGE - 1, PAGE - 64 },
                { PAGE, PAGE },
                { PAGE + 1, PAGE },
                { 3 * PAGE - 64, 3 * PAGE - 64 },
                { 4 * PAGE - 1, 4 * PAGE - 64 },
                { 4 * PAGE, 4 * PAGE },            /* == size */
                { 4 * PAGE + 1, DATA },            /* beyond: nothing visible */
                { 4 * PAGE + 64, DATA },
                { 5 * PAGE, DATA },
                { SGL_SEG_MAX_SIZE, DATA },
                { UINT64_MAX, DATA },
                { UINT64_MAX & ~(uint64_t)63, DATA },
        };
        struct guarded g;
        struct img m;
        uint8_t *b;

        (void)state;
        b = guarded_new(&g, 4 * PAGE);
        img_init(&m, b, 4 * PAGE, 1, area_a);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                img_hdr(&m)->commit_end = cases[i].commit_end;
                if (sgl_seg_visible_end(b, 4 * PAGE) != cases[i].want)
                        fail_msg("commit_end %#llx: got %#llx, want %#llx",
                                 (unsigned long long)cases[i].commit_end,
                                 (unsigned long long)sgl_seg_visible_end(b, 4 * PAGE),
                                 (unsigned long long)cases[i].want);
        }
        /* Against a smaller mapping size the same header shows less. */
        img_hdr(&m)->commit_end = 4 * PAGE;
        assert_int_equal(sgl_seg_visible_end(b, 3 * PAGE), DATA);
        img_hdr(&m)->commit_end = 3 * PAGE + 64;
        assert_int_equal(sgl_seg_visible_end(b, 3 * PAGE), DATA);
        img_hdr(&m)->commit_end = 3 * PAGE;
        assert_int_equal(sgl_seg_visible_end(b, 3 * PAGE), 3 * PAGE);
        guarded_free(&g);
}

/* ------------------------------------------------------------- iterator */

/* Iterates the whole visible part of @base. */
static void iter_all(struct sgl_rec_iter *it, const uint8_t *base, uint64_t size) {
        sgl_rec_iter_init(it, base, size, DATA, sgl_seg_visible_end(base, size));
}

static void test_iter_empty(void **state) {
        struct sgl_rec_iter it;
        struct sgl_rec_view v;
        struct guarded g;
        struct img m;
        uint8_t *b;

        (void)state;
        b = guarded_new(&g, 4 * PAGE);

        /* No commit at all. */
        img_init(&m, b, 4 * PAGE, 1, area_a);
        iter_all(&it, b, 4 * PAGE);
        assert_int_equal(sgl_rec_iter_next(&it, &v), 0);
        assert_int_equal(sgl_rec_iter_next(&it, &v), 0);

        /* Only empty commits (legal, e.g. a batch that staged nothing
         * visible): one right after the header, one whose len has slack
         * up to the last 64 bytes of the buffer, one in those. */
        assert_int_equal(img_begin(&m), DATA);
        img_end(&m);
        assert_int_equal(img_begin(&m), DATA + HDR);
        m.pos = 4 * PAGE - HDR;
        img_end(&m);
        assert_int_equal(img_begin(&m), 4 * PAGE - HDR);
        img_end(&m);
        assert_int_equal(img_hdr(&m)->commit_end, 4 * PAGE);
        iter_all(&it, b, 4 * PAGE);
        assert_int_equal(sgl_rec_iter_next(&it, &v), 0);
        /* stopped at the end, which is where an indexer would resume */
        assert_int_equal(it.commit, 4 * PAGE);
        assert_int_equal(sgl_rec_iter_next(&it, &v), 0);
        guarded_free(&g);
}

struct expect {
        uint64_t off;
        uint32_t kind;
        uint64_t id, version, len;
};

/* Offsets of commits 1...5 of the reference segment (co[0] unused). */
static uint64_t co[6];

/* Builds the reference segment of @size (>= 8 pages) used by several
 * tests; fills @ex with what the iterator must yield, co[] with where its
 * commits start, and returns the count. */
static size_t build_reference(struct img *m, uint8_t *b, uint64_t size,
                              struct expect *ex) {
        static const uint64_t lens[] = { 0, 1, 63, 64, 65 };
        uint64_t v = 1;
        size_t n = 0;

#define ADD(k, id_, len_) do {                                                  \
                uint64_t o_ = img_rec(m, (k), (id_), v, 0, (len_));             \
                ex[n++] = (struct expect) { o_, (k), (id_), v, (len_) };        \
                v++;                                                            \
        } while (0)

        img_init(m, b, size, 5, area_a);

        /* commit 1 right after the header: the interesting payload sizes */
        co[1] = img_begin(m);
        assert_int_equal(co[1], DATA);
        for (size_t i = 0; i < ELEMENTSOF(lens); i++)
                ADD(SGL_REC_DATA, 10 + i, lens[i]);
        img_end(m);

        /* an empty commit right after it */
        co[2] = img_begin(m);
        assert_int_equal(co[2], DATA + HDR + 64 + 3 * 128 + 192);
        img_end(m);

        /* commit 3: a tombstone and a retire record, plus a payload that
         * spills over three pages */
        co[3] = img_begin(m);
        assert_int_equal(co[3], co[2] + HDR);
        ADD(SGL_REC_TOMBSTONE, 10, 0);
        ADD(SGL_REC_RETIRE, 0, 24);
        ADD(SGL_REC_DATA, 20, 2 * PAGE + 100);
        img_end(m);

        /* commit 4, two small records, with 64 bytes of slack after them
         * (legal: the next commit starts where len says) */
        co[4] = img_begin(m);
        ADD(SGL_REC_DATA, 21, 4);
        ADD(SGL_REC_DATA, 22, 100);
        m->pos += 64;
        img_end(m);

        /* commit 5 runs to the buffer's last byte */
        co[5] = img_begin(m);
        assert_int_equal(co[5], co[4] + HDR + sgl_record_span(4) + sgl_record_span(100) + 64);
        ADD(SGL_REC_DATA, 23, 100);
        ADD(SGL_REC_DATA, 24, size - co[5] - HDR - sgl_record_span(100) - RECH);
        assert_int_equal(m->pos, size);
        img_end(m);
        assert_int_equal(img_hdr(m)->commit_end, size);
#undef ADD
        return n;
}

static void test_iter_records(void **state) {
        const uint64_t size = 8 * PAGE;
        struct expect ex[32];
        struct sgl_rec_iter it;
        struct sgl_rec_view v;
        struct guarded g;
        struct img m;
        size_t n;
        uint8_t *b;

        (void)state;
        b = guarded_new(&g, size);
        n = build_reference(&m, b, size, ex);
        assert_int_equal(n, 12);
        /* payload spans as the format says: 0 -> 0, 1/63/64 -> 64, 65 -> 128 */
        assert_int_equal(ex[1].off - ex[0].off, RECH);
        assert_int_equal(ex[2].off - ex[1].off, RECH + 64);
        assert_int_equal(ex[3].off - ex[2].off, RECH + 64);
        assert_int_equal(ex[4].off - ex[3].off, RECH + 64);
        assert_int_equal(ex[0].off, DATA + HDR);

        iter_all(&it, b, size);
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(sgl_rec_iter_next(&it, &v), 1);
                check_view(&v, b, size, ex[i].off, ex[i].kind, ex[i].id,
                           ex[i].version, ex[i].len);
        }
        assert_int_equal(sgl_rec_iter_next(&it, &v), 0);
        assert_int_equal(it.commit, size);
        assert_int_equal(sgl_rec_iter_next(&it, &v), 0);

        /* A window [from, end): start at commit 4, stop before commit 5;
         * the iterator then rests at commit 5, where indexing resumes. */
        sgl_rec_iter_init(&it, b, size, co[4], co[5]);
        for (size_t i = 8; i < 10; i++) {
                assert_int_equal(sgl_rec_iter_next(&it, &v), 1);
                check_view(&v, b, size, ex[i].off, ex[i].kind, ex[i].id,
                           ex[i].version, ex[i].len);
        }
        assert_int_equal(sgl_rec_iter_next(&it, &v), 0);
        assert_int_equal(it.commit, co[5]);
        /* resume there with a wider end */
        sgl_rec_iter_init(&it, b, size, it.commit, size);
        for (size_t i = 10; i < 12; i++) {
                assert_int_equal(sgl_rec_iter_next(&it, &v), 1);
                check_view(&v, b, size, ex[i].off, ex[i].kind, ex[i].id,
                           ex[i].version, ex[i].len);
        }
        assert_int_equal(sgl_rec_iter_next(&it, &v), 0);

        /* from == end, or past it: nothing */
        sgl_rec_iter_init(&it, b, size, co[3], co[3]);
        assert_int_equal(sgl_rec_iter_next(&it, &v), 0);
        sgl_rec_iter_init(&it, b, size, size, DATA);
        assert_int_equal(sgl_rec_iter_next(&it, &v), 0);

        /* An end beyond the mapping is clamped to it: the same records. */
        sgl_rec_iter_init(&it, b, size, DATA, UINT64_MAX);
        assert_int_equal(it.end, size);
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(sgl_rec_iter_next(&it, &v), 1);
                assert_int_equal(v.offset, ex[i].off);
        }
        assert_int_equal(sgl_rec_iter_next(&it, &v), 0);

        /* commit_end hiding the last commits hides exactly them */
        img_hdr(&m)->commit_end = co[4];
        iter_all(&it, b, size);
        for (size_t i = 0; i < 8; i++)
                assert_int_equal(sgl_rec_iter_next(&it, &v), 1);
        assert_int_equal(sgl_rec_iter_next(&it, &v), 0);
        assert_int_equal(it.commit, co[4]);

        /* The same bytes mapped shorter (as seen through a smaller
         * mapping): up to commit 5's start, it is simply not there; one
         * page short, it is cut and refused, and nothing reads past it. */
        img_hdr(&m)->commit_end = size;
        sgl_rec_iter_init(&it, b, co[5], DATA, size);
        for (size_t i = 0; i < 10; i++)
                assert_int_equal(sgl_rec_iter_next(&it, &v), 1);
        assert_int_equal(sgl_rec_iter_next(&it, &v), 0);
        sgl_rec_iter_init(&it, b, size - PAGE, DATA, size);
        for (size_t i = 0; i < 10; i++)
                assert_int_equal(sgl_rec_iter_next(&it, &v), 1);
        assert_int_equal(sgl_rec_iter_next(&it, &v), -EBADMSG);
        guarded_free(&g);
}

/* One single-field corruption of the reference segment (mostly its last
 * two commits: commit 4 at co[4], commit 5 running up to the guard). */
struct corruption {
        const char *what;
        void (*apply)(uint8_t *b, uint64_t size, const struct expect *ex,
                      uint64_t arg);
        uint64_t arg;
        size_t good;             /* records yielded before -EBADMSG */
};

static void c_commit_magic(uint8_t *b, uint64_t size, const struct expect *ex, uint64_t a) {
        commit_at(b, co[5])->magic = (uint32_t)a;
}
static void c_commit_len(uint8_t *b, uint64_t size, const struct expect *ex, uint64_t a) {
        commit_at(b, co[5])->len = a;
}
static void c_commit4_len(uint8_t *b, uint64_t size, const struct expect *ex, uint64_t a) {
        commit_at(b, co[4])->len = a;
}
static void c_commit4_len_short_end(uint8_t *b, uint64_t size, const struct expect *ex, uint64_t a) {
        ((struct sgl_seg_header *)b)->commit_end = co[5];
        commit_at(b, co[4])->len = a;
}
static void c_commit2_len_short_end(uint8_t *b, uint64_t size, const struct expect *ex, uint64_t a) {
        ((struct sgl_seg_header *)b)->commit_end = co[5];
        commit_at(b, co[2])->len = a;
}
static void c_commit_nrec(uint8_t *b, uint64_t size, const struct expect *ex, uint64_t a) {
        commit_at(b, co[5])->nrec = (uint32_t)a;
}
static void c_last_len(uint8_t *b, uint64_t size, const struct expect *ex, uint64_t a) {
        rec_at(b, ex[11].off)->len = a;
}
static void c_first_len(uint8_t *b, uint64_t size, const struct expect *ex, uint64_t a) {
        rec_at(b, ex[10].off)->len = a;
}
static void c_kind(uint8_t *b, uint64_t size, const struct expect *ex, uint64_t a) {
        rec_at(b, ex[10].off)->kind = (uint32_t)a;
}
static void c_kind_last(uint8_t *b, uint64_t size, const struct expect *ex, uint64_t a) {
        rec_at(b, ex[11].off)->kind = (uint32_t)a;
}
/* commit 3 holds the tombstone (ex[5]) and the retire record (ex[6]) */
static void c_tombstone_len(uint8_t *b, uint64_t size, const struct expect *ex, uint64_t a) {
        rec_at(b, ex[5].off)->len = a;
}
static void c_retire_len(uint8_t *b, uint64_t size, const struct expect *ex, uint64_t a) {
        rec_at(b, ex[6].off)->len = a;
}
static void c_commit_end(uint8_t *b, uint64_t size, const struct expect *ex, uint64_t a) {
        ((struct sgl_seg_header *)b)->commit_end = a;
}

static void test_iter_corrupt(void **state) {
        const uint64_t size = 8 * PAGE;
        struct expect ex[32];
        struct img m;
        uint8_t *b;
        struct guarded g;

        (void)state;
        b = guarded_new(&g, size);
        assert_int_equal(build_reference(&m, b, size, ex), 12); /* sets co[] */

        /* commit 5: records ex[10] (100 B) and ex[11] (fills to the end) */
        const uint64_t c5_len = size - co[5];
        const uint64_t c4_len = co[5] - co[4];
        const uint64_t last_max = c5_len - HDR - sgl_record_span(100) - RECH;
        const struct corruption cases[] = {
                { "commit magic 0", c_commit_magic, 0, 10 },
                { "commit magic flipped", c_commit_magic, SGL_COMMIT_MAGIC ^ 0x80000000u, 10 },
                { "commit len 0", c_commit_len, 0, 10 },
                { "commit len < header", c_commit_len, HDR - 1, 10 },
                { "commit len past end", c_commit_len, c5_len + 64, 10 },
                { "commit len past end, unaligned", c_commit_len, c5_len + 1, 10 },
                { "commit len unaligned", c_commit_len, c5_len - 1, 10 },
                { "commit len 65", c_commit_len, HDR + 1, 10 },
                { "commit len past end by a page", c_commit_len, c5_len + PAGE, 10 },
                { "commit len 2^63", c_commit_len, 1ULL << 63, 10 },
                { "commit len max", c_commit_len, UINT64_MAX, 10 },
                { "commit len max - 63", c_commit_len, UINT64_MAX - 63, 10 },
                { "commit 4 len past the end", c_commit4_len, size - co[4] + 64, 8 },
                { "commit 4 len past the mapping", c_commit4_len, size, 8 },
                /* its last record's payload fits, its padding does not:
                 * an unaligned len is refused as the commit opens */
                { "commit 4 len cuts padding", c_commit4_len,
                  HDR + sgl_record_span(4) + sgl_record_span(100) - 1, 8 },
                /* aligned, but its last record does not fit */
                { "commit 4 len cuts its last record", c_commit4_len,
                  HDR + sgl_record_span(4) + sgl_record_span(100) - 64, 9 },
                /* its records fit, but the next commit then starts inside
                 * commit 5 (at ex[10]'s header): no commit magic there */
                { "commit 4 len lands inside commit 5", c_commit4_len, c4_len + 64, 10 },
                /* past a commit_end that is legitimately short of the
                 * mapping (commit 5 not yet published) */
                { "commit 4 len past commit_end", c_commit4_len_short_end, c4_len + 64, 8 },
                /* an empty commit has no record to catch it later */
                { "empty commit len past commit_end", c_commit2_len_short_end,
                  co[5] - co[2] + 64, 5 },
                { "empty commit len past the mapping", c_commit2_len_short_end,
                  size - co[2] + 64, 5 },
                { "nrec one too many", c_commit_nrec, 3, 12 },
                { "nrec too large for len", c_commit_nrec, (c5_len - HDR) / RECH + 1, 10 },
                { "nrec max", c_commit_nrec, UINT32_MAX, 10 },
                { "record len past commit", c_last_len, last_max + 1, 11 },
                { "record len past the mapping", c_last_len, last_max + PAGE, 11 },
                { "record len max", c_last_len, UINT64_MAX, 11 },
                { "record len span overflow", c_last_len, UINT64_MAX - 62, 11 },
                { "record len 2^63", c_last_len, 1ULL << 63, 11 },
                { "first record len past commit", c_first_len, c5_len, 10 },
                { "kind 0", c_kind, 0, 10 },
                { "kind 4", c_kind, 4, 10 },
                { "kind max", c_kind, UINT32_MAX, 10 },
                { "kind 0 last record", c_kind_last, 0, 11 },
                { "tombstone len 8", c_tombstone_len, 8, 5 },
                { "tombstone len 1", c_tombstone_len, 1, 5 },
                { "retire len 1", c_retire_len, 1, 6 },
                { "retire len 12", c_retire_len, 12, 6 },
                { "retire len 23", c_retire_len, 23, 6 },
                /* commit_end inside commit 5 */
                { "commit_end inside the last commit", c_commit_end, co[5] + 128, 10 },
                { "commit_end one short", c_commit_end, size - 64, 10 },
                /* commit_end just past commit 5's start, unaligned: clamped
                 * to its start, so commit 5 is simply not visible */
                { "commit_end unaligned", c_commit_end, co[5] + 1, 10 },
        };
        struct sgl_rec_iter it;
        struct sgl_rec_view v;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                size_t got = 0;
                int k;

                assert_int_equal(build_reference(&m, b, size, ex), 12);
                cases[i].apply(b, size, ex, cases[i].arg);
                iter_all(&it, b, size);
                while ((k = sgl_rec_iter_next(&it, &v)) == 1) {
                        /* what comes out before the damage is intact */
                        if (got >= 12 || v.offset != ex[got].off)
                                fail_msg("%s: record %zu at %llu", cases[i].what,
                                         got, (unsigned long long)v.offset);
                        check_view(&v, b, size, ex[got].off, ex[got].kind,
                                   ex[got].id, ex[got].version, ex[got].len);
                        got++;
                }
                if (strcmp(cases[i].what, "commit_end unaligned") == 0) {
                        if (k != 0 || got != cases[i].good)
                                fail_msg("%s: k %d after %zu", cases[i].what, k, got);
                        continue;
                }
                if (k != -EBADMSG || got != cases[i].good)
                        fail_msg("%s: got %d after %zu records, want -EBADMSG after %zu",
                                 cases[i].what, k, got, cases[i].good);
                /* the error sticks: the iterator stays put */
                assert_int_equal(sgl_rec_iter_next(&it, &v), -EBADMSG);
                assert_int_equal(sgl_rec_iter_next(&it, &v), -EBADMSG);
        }

        /* Commit offsets that are not aligned, in the header, or not where
         * a commit starts. */
        assert_int_equal(build_reference(&m, b, size, ex), 12);
        {
                const uint64_t from[] = { 0, 1, 32, 63, DATA + 1, DATA + HDR,
                                          co[3] + 8, co[5] + HDR, PAGE,
                                          size - HDR, size - 1 };
                for (size_t i = 0; i < ELEMENTSOF(from); i++) {
                        sgl_rec_iter_init(&it, b, size, from[i], size);
                        if (sgl_rec_iter_next(&it, &v) != -EBADMSG)
                                fail_msg("from %llu accepted", (unsigned long long)from[i]);
                }
        }
        /* An end that cuts a commit header, or a commit, short. */
        sgl_rec_iter_init(&it, b, size, co[5], co[5] + HDR - 1);
        assert_int_equal(sgl_rec_iter_next(&it, &v), -EBADMSG);
        sgl_rec_iter_init(&it, b, size, co[5], size - 64);
        assert_int_equal(sgl_rec_iter_next(&it, &v), -EBADMSG);
        guarded_free(&g);
}

/* A commit whose len was fine when it was opened, then commit_end shrank
 * (a hostile writer, or the mapping was swapped for a shorter sealed
 * copy): the iterator re-checks against the new end. */
static void test_iter_end_shrinks(void **state) {
        const uint64_t size = 8 * PAGE;
        struct expect ex[32];
        struct sgl_rec_iter it;
        struct sgl_rec_view v;
        struct guarded g;
        struct img m;
        uint8_t *b;

        (void)state;
        b = guarded_new(&g, size);
        build_reference(&m, b, size, ex);
        iter_all(&it, b, size);
        for (size_t i = 0; i < 7; i++)
                assert_int_equal(sgl_rec_iter_next(&it, &v), 1);
        /* inside commit 3, which ends in page 2 */
        it.end = co[3] + 2 * PAGE;
        assert_int_equal(sgl_rec_iter_next(&it, &v), -EBADMSG);
        it.end = size;
        assert_int_equal(sgl_rec_iter_next(&it, &v), 1);
        check_view(&v, b, size, ex[7].off, ex[7].kind, ex[7].id, ex[7].version, ex[7].len);

        /* a commit whose records changed after it was opened: the record
         * length is checked against the commit, not trusted */
        iter_all(&it, b, size);
        for (size_t i = 0; i < 10; i++)
                assert_int_equal(sgl_rec_iter_next(&it, &v), 1);
        assert_int_equal(sgl_rec_iter_next(&it, &v), 1); /* opens commit 5 */
        rec_at(b, ex[11].off)->len = UINT64_MAX;
        assert_int_equal(sgl_rec_iter_next(&it, &v), -EBADMSG);
        guarded_free(&g);
}

/* -------------------------------------------------------------- rec_at */

static void test_rec_at(void **state) {
        const uint64_t size = 8 * PAGE;
        struct expect ex[32];
        struct sgl_rec_view v, sentinel;
        struct guarded g;
        struct img m;
        uint8_t *b;
        size_t n;

        (void)state;
        b = guarded_new(&g, size);
        n = build_reference(&m, b, size, ex);

        /* every real record, including the one ending at the guard */
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(sgl_rec_at(b, size, size, ex[i].off, &v), 0);
                check_view(&v, b, size, ex[i].off, ex[i].kind, ex[i].id,
                           ex[i].version, ex[i].len);
        }
        /* an end beyond the mapping is clamped */
        assert_int_equal(sgl_rec_at(b, size, UINT64_MAX, ex[11].off, &v), 0);
        assert_int_equal(v.len, ex[11].len);

        memset(&sentinel, 0x5a, sizeof(sentinel));
        {
                const uint64_t bad[] = {
                        0, 32, 63,                /* the segment header */
                        DATA, co[2], co[3],       /* commit headers */
                        ex[0].off + 1, ex[0].off + 8, ex[0].off + 32,
                        ex[11].off - 1,           /* misaligned */
                        size, size + RECH, size - 1,
                        UINT64_MAX, UINT64_MAX & ~(uint64_t)63, 1ULL << 63,
                };
                for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                        v = sentinel;
                        if (sgl_rec_at(b, size, size, bad[i], &v) != -EBADMSG)
                                fail_msg("offset %llu accepted", (unsigned long long)bad[i]);
                        assert_memory_equal(&v, &sentinel, sizeof(v));
                }
        }
        /* offsets at or past the visible end */
        assert_int_equal(sgl_rec_at(b, size, ex[8].off, ex[8].off, &v), -EBADMSG);
        assert_int_equal(sgl_rec_at(b, size, co[4], ex[8].off, &v), -EBADMSG);
        assert_true(ex[7].off < 2 * PAGE && ex[7].off + RECH + ex[7].len > 2 * PAGE);
        assert_int_equal(sgl_rec_at(b, size, 2 * PAGE, ex[7].off, &v), -EBADMSG); /* payload crosses end */
        assert_int_equal(sgl_rec_at(b, size, 2 * PAGE, ex[6].off, &v), 0);
        /* an end right after the padding; one that cuts the padding off is
         * refused, as the iterator refuses such a commit */
        assert_int_equal(sgl_rec_at(b, size, ex[7].off + sgl_record_span(ex[7].len),
                                    ex[7].off, &v), 0);
        check_view(&v, b, size, ex[7].off, ex[7].kind, ex[7].id, ex[7].version, ex[7].len);
        assert_int_equal(sgl_rec_at(b, size, ex[7].off + RECH + ex[7].len, ex[7].off, &v),
                         -EBADMSG);
        /* an end smaller than the record header */
        assert_int_equal(sgl_rec_at(b, size, ex[8].off + RECH - 1, ex[8].off, &v), -EBADMSG);
        /* the mapping is smaller than end: clamped, the last commit is out */
        assert_int_equal(sgl_rec_at(b, size - PAGE, size, ex[11].off, &v), -EBADMSG);
        assert_int_equal(sgl_rec_at(b, ex[10].off + RECH, size, ex[10].off, &v), -EBADMSG);

        /* a record header that looks fine at a misaligned offset */
        {
                struct sgl_record fake = { .kind = SGL_REC_DATA, .id = 5, .version = 5, .len = 0 };
                uint64_t o = ex[9].off + RECH + 32; /* inside ex[9]'s payload */
                memcpy(b + o, &fake, sizeof(fake));
                assert_int_equal(sgl_rec_at(b, size, size, o, &v), -EBADMSG);
                memcpy(b + o - 32, &fake, sizeof(fake));
                assert_int_equal(sgl_rec_at(b, size, size, o - 32, &v), 0); /* aligned: taken */
                assert_int_equal(v.id, 5);
                build_reference(&m, b, size, ex);
        }

        /* payload one byte past the mapping */
        rec_at(b, ex[11].off)->len = ex[11].len + 1;
        assert_int_equal(sgl_rec_at(b, size, size, ex[11].off, &v), -EBADMSG);
        rec_at(b, ex[11].off)->len = UINT64_MAX;
        assert_int_equal(sgl_rec_at(b, size, size, ex[11].off, &v), -EBADMSG);
        rec_at(b, ex[11].off)->len = ex[11].len;
        assert_int_equal(sgl_rec_at(b, size, size, ex[11].off, &v), 0);

        /* Documented: "the same checks as the iterator except that the
         * enclosing commit header is not consulted", so the record checks
         * (kind, tombstone and retire lengths) apply. */
        rec_at(b, ex[10].off)->kind = 0;
        assert_int_equal(sgl_rec_at(b, size, size, ex[10].off, &v), -EBADMSG);
        rec_at(b, ex[10].off)->kind = 4;
        assert_int_equal(sgl_rec_at(b, size, size, ex[10].off, &v), -EBADMSG);
        rec_at(b, ex[10].off)->kind = SGL_REC_DATA;
        rec_at(b, ex[5].off)->len = 8;
        assert_int_equal(sgl_rec_at(b, size, size, ex[5].off, &v), -EBADMSG);
        rec_at(b, ex[6].off)->len = 12;
        assert_int_equal(sgl_rec_at(b, size, size, ex[6].off, &v), -EBADMSG);
        guarded_free(&g);
}

/* ------------------------------------------------------- reader: helpers */

/* A segment image with @nchunks data records (ids first_id..., payloads of
 * 100 + 37 * i bytes) in one commit; returns the malloc()ed image. */
static uint8_t *seg_image(uint64_t size, uint64_t seq, const uint8_t *area,
                          unsigned nchunks, uint64_t first_id) {
        uint8_t *b = aligned_alloc(PAGE, size);
        struct img m;

        assert_non_null(b);
        img_init(&m, b, size, seq, area);
        if (nchunks > 0) {
                img_begin(&m);
                for (unsigned i = 0; i < nchunks; i++)
                        img_data(&m, first_id + i, seq * 1000 + i + 1, 100 + 37 * i);
                img_end(&m);
        }
        return b;
}

enum {
        MK_SPARSE = 1 << 0,      /* write only page 0, no fallocate */
        MK_EXEC = 1 << 1,        /* mode 0700 */
};

/*
 * A memfd of @size bytes holding @image (@image_size bytes of it, the rest
 * zero), sealed with exactly @seals, handed out the way the writer does:
 * a read-only reopen, the read-write descriptor closed.  Returns -1 with
 * errno EACCES if the kernel forbids executable memfds (MK_EXEC).
 */
static int seg_memfd(const uint8_t *image, uint64_t image_size, uint64_t size,
                     int seals, unsigned mk) {
        char path[64];
        int fd, ro;

        if (mk & MK_EXEC) {
                fd = memfd_create("seg", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
                if (fd < 0 && errno == EINVAL)
                        fd = memfd_create("seg", MFD_CLOEXEC | MFD_ALLOW_SEALING);
                if (fd < 0 && errno == EACCES)
                        return -1;
        } else {
                fd = memfd_create("seg", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
                if (fd < 0 && errno == EINVAL)
                        fd = memfd_create("seg", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        }
        assert_true(fd >= 0);
        assert_int_equal(fchmod(fd, (mk & MK_EXEC) ? 0700 : 0600), 0);
        assert_int_equal(ftruncate(fd, (off_t)size), 0);
        if (!(mk & MK_SPARSE))
                assert_int_equal(fallocate(fd, 0, 0, (off_t)size), 0);
        if (mk & MK_SPARSE)
                image_size = MIN(image_size, PAGE);
        image_size = MIN(image_size, size);
        assert_int_equal(pwrite(fd, image, image_size, 0), (ssize_t)image_size);
        if (seals)
                assert_int_equal(fcntl(fd, F_ADD_SEALS, seals), 0);

        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        ro = open(path, O_RDONLY | O_CLOEXEC);
        assert_true(ro >= 0);
        close(fd);
        return ro;
}

#define SEALED (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)
#define OPEN (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE)

/* A well-formed sealed segment of 4 pages with @nchunks chunks. */
static int good_seg(uint64_t seq, const uint8_t *area, unsigned nchunks,
                    uint64_t first_id, int seals) {
        uint8_t *img = seg_image(4 * PAGE, seq, area, nchunks, first_id);
        int fd = seg_memfd(img, 4 * PAGE, 4 * PAGE, seals, 0);

        free(img);
        return fd;
}

/* Hands @fd to the reader and checks that it was consumed (closed) and that
 * a failure mapped nothing; returns the reader's answer. */
static int add(sgl_reader *r, int fd) {
        unsigned nfds = tu_count_fds();
        int nsegs = sgl_reader_get_segment_count(r);
        int k;

        assert_true(fd >= 0);
        k = sgl_reader_add_segment_consume_fd(r, fd);
        assert_int_equal(fcntl(fd, F_GETFD), -1);
        assert_int_equal(errno, EBADF);
        assert_int_equal(tu_count_fds(), nfds - 1);
        if (k < 0)
                assert_int_equal(sgl_reader_get_segment_count(r), nsegs);
        return k;
}

/* Reads every chunk the reader has and checks the payloads of chunks made
 * by seg_image() (version seq * 1000 + i + 1, 100 + 37 * i bytes); returns
 * how many. */
static unsigned drain(sgl_reader *r) {
        sgl_chunk *c;
        unsigned n = 0;
        int k;

        while ((k = sgl_reader_next(r, &c)) == 0) {
                uint64_t id = sgl_chunk_id(c), version = sgl_chunk_version(c);
                unsigned i = (unsigned)((version - 1) % 1000);
                size_t len = 100 + 37 * i;
                uint8_t *want = malloc(len);

                assert_non_null(want);
                assert_int_equal(sgl_chunk_expiry(c), 0);
                assert_int_equal(sgl_chunk_size(c), len);
                tu_fill_pattern(want, len, payload_seed(id, version));
                assert_memory_equal(sgl_chunk_data(c), want, len);
                free(want);
                sgl_chunk_unref(c);
                n++;
        }
        assert_int_equal(k, -EAGAIN);
        return n;
}

static sgl_reader *reader(unsigned flags) {
        sgl_reader *r = NULL;

        assert_int_equal(sgl_reader_new(flags, &r), 0);
        return r;
}

/* ------------------------------------------------ reader: descriptors */

static void test_reader_not_memfd(void **state) {
        unsigned nfds = tu_count_fds();
        sgl_reader *r = reader(SGL_READER_TRUSTED);
        int p[2], s[2], fd;
        char *dir, *path;

        (void)state;
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(add(r, p[0]), -EMEDIUMTYPE);
        assert_int_equal(add(r, p[1]), -EMEDIUMTYPE);

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0);
        assert_int_equal(add(r, s[0]), -EMEDIUMTYPE);
        close(s[1]);
        tu_socketpair(s);
        assert_int_equal(add(r, s[0]), -EMEDIUMTYPE);
        close(s[1]);

        dir = tu_mkdtemp(NULL);
        assert_true(asprintf(&path, "%s/fifo", dir) > 0);
        assert_int_equal(mkfifo(path, 0600), 0);
        fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
        assert_true(fd >= 0);
        assert_int_equal(add(r, fd), -EMEDIUMTYPE);
        free(path);
        tu_rm_rf(dir);

        /* devtmpfs reports TMPFS_MAGIC: the reader must not be fooled */
        fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(add(r, fd), -EMEDIUMTYPE);

        /* a directory on tmpfs */
        fd = open("/dev/shm", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0)
                assert_int_equal(add(r, fd), -EMEDIUMTYPE);

        /* bad descriptors are refused without touching anything */
        assert_int_equal(sgl_reader_add_segment_consume_fd(r, -1), -EINVAL);
        assert_int_equal(sgl_reader_get_segment_count(r), 0);
        sgl_reader_unref(r);
        assert_int_equal(tu_count_fds(), nfds);
}

/* A directory on a file system that is not tmpfs, or NULL. */
static const char *disk_dir(void) {
        static const char *const candidates[] = { ".", "/var/tmp", "/tmp" };

        for (size_t i = 0; i < ELEMENTSOF(candidates); i++) {
                struct statfs sfs;

                if (statfs(candidates[i], &sfs) < 0)
                        continue;
                if ((uint64_t)sfs.f_type != (uint64_t)TMPFS_MAGIC &&
                    (uint64_t)sfs.f_type != (uint64_t)HUGETLBFS_MAGIC &&
                    access(candidates[i], W_OK) == 0)
                        return candidates[i];
        }
        return NULL;
}

/* An unnamed file in @dir holding a valid segment image. */
static int file_with_segment(const char *dir) {
        uint8_t *img = seg_image(4 * PAGE, 1, area_a, 3, 1);
        char *path;
        int fd;

        fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0) {
                assert_true(asprintf(&path, "%s/sigillo-test.XXXXXX", dir) > 0);
                fd = mkostemp(path, O_CLOEXEC);
                assert_true(fd >= 0);
                assert_int_equal(unlink(path), 0);
                free(path);
        }
        assert_int_equal(pwrite(fd, img, 4 * PAGE, 0), (ssize_t)(4 * PAGE));
        assert_int_equal(fsync(fd), 0);
        free(img);
        return fd;
}

static void test_reader_disk_file(void **state) {
        unsigned nfds = tu_count_fds();
        sgl_reader *r;
        const char *dir;

        (void)state;
        dir = disk_dir();
        if (!dir)
                skip();
        r = reader(SGL_READER_TRUSTED);
        assert_int_equal(add(r, file_with_segment(dir)), -EMEDIUMTYPE);
        sgl_reader_unref(r);
        r = reader(0);
        assert_int_equal(add(r, file_with_segment(dir)), -EMEDIUMTYPE);
        sgl_reader_unref(r);
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_reader_dev_shm_file(void **state) {
        unsigned nfds = tu_count_fds();
        struct statfs sfs;
        sgl_reader *r;

        (void)state;
        if (statfs("/dev/shm", &sfs) < 0 ||
            (uint64_t)sfs.f_type != (uint64_t)TMPFS_MAGIC ||
            access("/dev/shm", W_OK) < 0)
                skip();
        /* speculo's kind of segment: right file system, right bytes, but it
         * can never be size-sealed */
        r = reader(SGL_READER_TRUSTED);
        assert_int_equal(add(r, file_with_segment("/dev/shm")), -ENOLCK);
        sgl_reader_unref(r);
        r = reader(0);
        assert_int_equal(add(r, file_with_segment("/dev/shm")), -ENOLCK);
        sgl_reader_unref(r);
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_reader_seals(void **state) {
        static const int missing[] = {
                0,
                F_SEAL_SHRINK,
                F_SEAL_GROW,
                F_SEAL_WRITE,
                F_SEAL_SHRINK | F_SEAL_WRITE,
                F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL,
                F_SEAL_FUTURE_WRITE,
        };
        unsigned nfds = tu_count_fds();
        sgl_reader *strict = reader(0), *trusted = reader(SGL_READER_TRUSTED);

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(missing); i++) {
                assert_int_equal(add(strict, good_seg(1, area_a, 2, 1, missing[i])), -ENOLCK);
                assert_int_equal(add(trusted, good_seg(1, area_a, 2, 1, missing[i])), -ENOLCK);
        }

        /* SHRINK|GROW|FUTURE_WRITE: no one else can map it writable, but the
         * writer's mapping still can write: not enough for STRICT ... */
        assert_int_equal(add(strict, good_seg(1, area_a, 2, 1, OPEN)), -EACCES);
        assert_int_equal(add(strict, good_seg(1, area_a, 2, 1,
                                              F_SEAL_SHRINK | F_SEAL_GROW)), -EACCES);
        assert_int_equal(sgl_reader_get_segment_count(strict), 0);
        /* ... TRUSTED wants at least FUTURE_WRITE (without it the writer
         * could punch holes that the reader's faults would allocate) ... */
        assert_int_equal(add(trusted, good_seg(1, area_a, 2, 1,
                                               F_SEAL_SHRINK | F_SEAL_GROW)), -EACCES);
        assert_int_equal(add(trusted, good_seg(1, area_a, 2, 1,
                                               F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)),
                         -EACCES);
        assert_int_equal(sgl_reader_get_segment_count(trusted), 0);
        /* ... and takes, and reads, an open segment that has it */
        assert_int_equal(add(trusted, good_seg(1, area_a, 2, 1, OPEN)), 0);
        assert_int_equal(add(trusted, good_seg(2, area_a, 3, 100, OPEN | F_SEAL_SEAL)), 0);
        assert_int_equal(sgl_reader_get_segment_count(trusted), 2);
        /* (open segments: the cursor stays in seq 1 until it is sealed) */
        assert_int_equal(drain(trusted), 2);
        /* sealing seq 1 (a sealed copy, same seq) lets it move on */
        assert_int_equal(add(trusted, good_seg(1, area_a, 2, 1, SEALED)), 0);
        assert_int_equal(drain(trusted), 3);

        /* STRICT takes a write-sealed one, with or without F_SEAL_SEAL */
        assert_int_equal(add(strict, good_seg(1, area_a, 2, 1, SEALED)), 0);
        assert_int_equal(add(strict, good_seg(2, area_a, 3, 100, SEALED | F_SEAL_SEAL)), 0);
        assert_int_equal(drain(strict), 5);
        sgl_reader_unref(strict);
        sgl_reader_unref(trusted);
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_reader_exec_bit(void **state) {
        unsigned nfds = tu_count_fds();
        sgl_reader *r;
        uint8_t *img;
        int fd;

        (void)state;
        img = seg_image(4 * PAGE, 1, area_a, 2, 1);
        fd = seg_memfd(img, 4 * PAGE, 4 * PAGE, SEALED, MK_EXEC);
        if (fd < 0) {
                free(img);
                skip(); /* vm.memfd_noexec=2 */
        }
        r = reader(0);
        assert_int_equal(add(r, fd), -ENOEXEC);
        sgl_reader_unref(r);
        r = reader(SGL_READER_TRUSTED);
        assert_int_equal(add(r, seg_memfd(img, 4 * PAGE, 4 * PAGE, SEALED, MK_EXEC)), -ENOEXEC);
        sgl_reader_unref(r);
        free(img);
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_reader_sparse(void **state) {
        unsigned nfds = tu_count_fds();
        sgl_reader *r;
        uint8_t *img;

        (void)state;
        img = seg_image(4 * PAGE, 1, area_a, 2, 1);
        r = reader(0);
        assert_int_equal(add(r, seg_memfd(img, 4 * PAGE, 4 * PAGE, SEALED, MK_SPARSE)), -ENODATA);
        sgl_reader_unref(r);
        r = reader(SGL_READER_TRUSTED);
        assert_int_equal(add(r, seg_memfd(img, 4 * PAGE, 4 * PAGE, OPEN, MK_SPARSE)), -ENODATA);
        /* the same bytes, allocated, are fine */
        assert_int_equal(add(r, seg_memfd(img, 4 * PAGE, 4 * PAGE, OPEN, 0)), 0);
        sgl_reader_unref(r);
        free(img);
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_reader_size_mismatch(void **state) {
        unsigned nfds = tu_count_fds();
        sgl_reader *r = reader(0);
        uint8_t *img;

        (void)state;
        /* header says 4 pages; the file is 3, then 5 pages */
        img = seg_image(4 * PAGE, 1, area_a, 2, 1);
        assert_int_equal(add(r, seg_memfd(img, 3 * PAGE, 3 * PAGE, SEALED, 0)), -ERANGE);
        assert_int_equal(add(r, seg_memfd(img, 4 * PAGE, 5 * PAGE, SEALED, 0)), -ERANGE);
        /* header says 2 pages, file 4 */
        ((struct sgl_seg_header *)img)->size = 2 * PAGE;
        ((struct sgl_seg_header *)img)->commit_end = 2 * PAGE;
        assert_int_equal(add(r, seg_memfd(img, 4 * PAGE, 4 * PAGE, SEALED, 0)), -ERANGE);
        assert_int_equal(sgl_reader_get_segment_count(r), 0);
        free(img);
        sgl_reader_unref(r);
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_reader_bad_header(void **state) {
        unsigned nfds = tu_count_fds();
        sgl_reader *r = reader(0);
        struct sgl_seg_header *h;
        uint8_t *img;

        (void)state;
        img = seg_image(4 * PAGE, 1, area_a, 2, 1);
        h = (struct sgl_seg_header *)img;

        h->magic = SGL_CTL_MAGIC;
        assert_int_equal(add(r, seg_memfd(img, 4 * PAGE, 4 * PAGE, SEALED, 0)), -EBADMSG);
        h->magic = 0;
        assert_int_equal(add(r, seg_memfd(img, 4 * PAGE, 4 * PAGE, SEALED, 0)), -EBADMSG);
        h->magic = SGL_SEG_MAGIC;
        h->version = 1; /* commits on page boundaries: not this format */
        assert_int_equal(add(r, seg_memfd(img, 4 * PAGE, 4 * PAGE, SEALED, 0)), -EPROTONOSUPPORT);
        h->version = SGL_FORMAT_VERSION + 1;
        assert_int_equal(add(r, seg_memfd(img, 4 * PAGE, 4 * PAGE, SEALED, 0)), -EPROTONOSUPPORT);
        h->version = SGL_FORMAT_VERSION;
        h->header_size = 0;
        assert_int_equal(add(r, seg_memfd(img, 4 * PAGE, 4 * PAGE, SEALED, 0)), -EBADMSG);
        h->header_size = sizeof(*h);
        /* seq 0 (see test_reader_seq_zero) */
        h->seq = 0;
        assert_int_equal(add(r, seg_memfd(img, 4 * PAGE, 4 * PAGE, SEALED, 0)), -EBADMSG);
        h->seq = 1;
        /* a zeroed file: no header at all */
        memset(img, 0, PAGE);
        assert_int_equal(add(r, seg_memfd(img, 4 * PAGE, 4 * PAGE, SEALED, 0)), -EBADMSG);
        assert_int_equal(sgl_reader_get_segment_count(r), 0);

        /* A header that is fine after all of that is taken. */
        free(img);
        assert_int_equal(add(r, good_seg(1, area_a, 2, 1, SEALED)), 0);
        assert_int_equal(drain(r), 2);
        sgl_reader_unref(r);
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_reader_other_area(void **state) {
        unsigned nfds = tu_count_fds();
        sgl_reader *r = reader(0);

        (void)state;
        assert_int_equal(add(r, good_seg(1, area_a, 2, 1, SEALED)), 0);
        assert_int_equal(add(r, good_seg(2, area_b, 2, 50, SEALED)), -EXDEV);
        /* even with a seq already mapped, the area is checked */
        assert_int_equal(add(r, good_seg(1, area_b, 2, 1, SEALED)), -EEXIST);
        assert_int_equal(add(r, good_seg(3, area_a, 2, 70, SEALED)), 0);
        assert_int_equal(sgl_reader_get_segment_count(r), 2);
        /* nothing of area b got in */
        assert_int_equal(drain(r), 4);
        sgl_reader_unref(r);
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_reader_duplicate_seq(void **state) {
        unsigned nfds = tu_count_fds();
        sgl_reader *r = reader(0), *t = reader(SGL_READER_TRUSTED);
        uint8_t *img;
        int fd, fd2;
        char path[64];

        (void)state;
        /* the same memfd twice (a second read-only description): fine */
        fd = good_seg(1, area_a, 2, 1, SEALED);
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        fd2 = open(path, O_RDONLY | O_CLOEXEC);
        assert_true(fd2 >= 0);
        assert_int_equal(add(r, fd), 0);
        assert_int_equal(add(r, fd2), 0);
        assert_int_equal(sgl_reader_get_segment_count(r), 1);
        /* another memfd with the same bytes and seq: refused */
        assert_int_equal(add(r, good_seg(1, area_a, 2, 1, SEALED)), -EEXIST);
        assert_int_equal(add(r, good_seg(1, area_a, 5, 1, SEALED)), -EEXIST);
        assert_int_equal(sgl_reader_get_segment_count(r), 1);
        assert_int_equal(drain(r), 2);

        /* TRUSTED: an open segment; another open one with its seq is
         * refused; a sealed copy replaces it */
        img = seg_image(4 * PAGE, 4, area_a, 3, 1);
        assert_int_equal(add(t, seg_memfd(img, 4 * PAGE, 4 * PAGE, OPEN, 0)), 0);
        assert_int_equal(add(t, seg_memfd(img, 4 * PAGE, 4 * PAGE, OPEN, 0)), -EEXIST);
        assert_int_equal(add(t, seg_memfd(img, 4 * PAGE, 4 * PAGE, SEALED, 0)), 0);
        assert_int_equal(add(t, seg_memfd(img, 4 * PAGE, 4 * PAGE, SEALED, 0)), -EEXIST);
        assert_int_equal(add(t, seg_memfd(img, 4 * PAGE, 4 * PAGE, OPEN, 0)), -EEXIST);
        assert_int_equal(sgl_reader_get_segment_count(t), 1);
        assert_int_equal(drain(t), 3);
        free(img);

        sgl_reader_unref(r);
        sgl_reader_unref(t);
        assert_int_equal(tu_count_fds(), nfds);
}

/* A segment full of empty chunks, one commit, 4031 records. */
static uint8_t *many_records(uint64_t seq, uint64_t size, unsigned *ret_n) {
        uint8_t *b = aligned_alloc(PAGE, size);
        struct img m;
        unsigned n = 0;

        assert_non_null(b);
        img_init(&m, b, size, seq, area_a);
        img_begin(&m);
        while (m.pos + RECH <= size) {
                img_data(&m, 2 * (uint64_t)n + 2, (uint64_t)n + 1, 0);
                n++;
        }
        img_end(&m);
        *ret_n = n;
        return b;
}

/* Regression: a segment numbered 0 was accepted, and a reader's cursor
 * (which takes seq 0 for "no segment yet") then restarted from the first
 * record of that segment on every sgl_reader_next(): draining n chunks
 * cost n^2/2 record parses (a 1 MiB segment took 4.6 s instead of 7 ms), a
 * hostile writer's way to hang a reader.  Now the header is refused. */
static void test_reader_seq_zero(void **state) {
        unsigned nfds = tu_count_fds(), n, got = 0;
        sgl_reader *r = reader(0);
        uint8_t *img;
        sgl_chunk *c;
        int k;

        (void)state;
        img = many_records(0, 64 * PAGE, &n);
        assert_int_equal(add(r, seg_memfd(img, 64 * PAGE, 64 * PAGE, SEALED, 0)), -EBADMSG);
        free(img);

        /* numbered 1, it is read once, in order */
        img = many_records(1, 64 * PAGE, &n);
        assert_int_equal(n, (64 * PAGE - DATA - HDR) / RECH);
        assert_int_equal(add(r, seg_memfd(img, 64 * PAGE, 64 * PAGE, SEALED, 0)), 0);
        while ((k = sgl_reader_next(r, &c)) == 0) {
                assert_int_equal(sgl_chunk_version(c), got + 1);
                assert_int_equal(sgl_chunk_id(c), 2 * (uint64_t)got + 2);
                assert_int_equal(sgl_chunk_size(c), 0);
                sgl_chunk_unref(c);
                got++;
        }
        assert_int_equal(k, -EAGAIN);
        assert_int_equal(got, n);
        free(img);
        sgl_reader_unref(r);
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_reader_too_many(void **state) {
        unsigned nfds = tu_count_fds();
        sgl_reader *r = reader(0);
        uint8_t *img;
        int n;

        (void)state;
        /* the reader's limit (READER_MAX_SEGMENTS in reader.c); a hostile
         * writer cannot make it map without bound */
        img = seg_image(2 * PAGE, 1, area_a, 0, 1);
        for (n = 1;; n++) {
                int k;

                ((struct sgl_seg_header *)img)->seq = (uint64_t)n;
                k = add(r, seg_memfd(img, 2 * PAGE, 2 * PAGE, SEALED, 0));
                if (k == -ENOSPC)
                        break;
                assert_int_equal(k, 0);
                assert_true(n <= 1 << 16);
        }
        assert_int_equal(n, 4097);
        assert_int_equal(sgl_reader_get_segment_count(r), 4096);
        /* an already-mapped seq is still recognised */
        ((struct sgl_seg_header *)img)->seq = 7;
        assert_int_equal(add(r, seg_memfd(img, 2 * PAGE, 2 * PAGE, SEALED, 0)), -EEXIST);
        free(img);
        sgl_reader_unref(r);
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_reader_hugetlb(void **state) {
        unsigned nfds = tu_count_fds();
        sgl_reader *r = reader(SGL_READER_TRUSTED);
        bool tried = false;
        char *dir, *path;
        int fd;

        (void)state;
        fd = memfd_create("huge", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB);
        if (fd >= 0) {
                tried = true;
                /* size-sealed, but hugetlbfs: its faults can fail (SIGBUS)
                 * when no huge page is free */
                (void)fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW);
                assert_int_equal(add(r, fd), -EMEDIUMTYPE);
        }
        if (tu_is_root()) {
                dir = tu_mkdtemp(NULL);
                if (mount("none", dir, "hugetlbfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                          NULL) == 0) {
                        assert_true(asprintf(&path, "%s/file", dir) > 0);
                        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
                        if (fd >= 0) {
                                tried = true;
                                assert_int_equal(unlink(path), 0);
                                assert_int_equal(add(r, fd), -EMEDIUMTYPE);
                        }
                        free(path);
                        assert_int_equal(umount2(dir, MNT_DETACH), 0);
                }
                tu_rm_rf(dir);
        }
        assert_int_equal(sgl_reader_get_segment_count(r), 0);
        sgl_reader_unref(r);
        assert_int_equal(tu_count_fds(), nfds);
        if (!tried)
                skip();
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_guard_faults),
                cmocka_unit_test(test_header_parse_valid),
                cmocka_unit_test(test_header_parse_malformed),
                cmocka_unit_test(test_visible_end),
                cmocka_unit_test(test_iter_empty),
                cmocka_unit_test(test_iter_records),
                cmocka_unit_test(test_iter_corrupt),
                cmocka_unit_test(test_iter_end_shrinks),
                cmocka_unit_test(test_rec_at),
                cmocka_unit_test(test_reader_not_memfd),
                cmocka_unit_test(test_reader_disk_file),
                cmocka_unit_test(test_reader_dev_shm_file),
                cmocka_unit_test(test_reader_seals),
                cmocka_unit_test(test_reader_exec_bit),
                cmocka_unit_test(test_reader_sparse),
                cmocka_unit_test(test_reader_size_mismatch),
                cmocka_unit_test(test_reader_bad_header),
                cmocka_unit_test(test_reader_other_area),
                cmocka_unit_test(test_reader_duplicate_seq),
                cmocka_unit_test(test_reader_seq_zero),
                cmocka_unit_test(test_reader_too_many),
                cmocka_unit_test(test_reader_hugetlb),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
