/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gen-corpus.c - writes the seed corpora of fuzz-daemon and fuzz-client
 * (fuzz/corpus/daemon/, fuzz/corpus/client/): valid conversations of every
 * message type, built with the library's own encoders, and segment
 * contents made by a real writer (so the seeds follow the segment format
 * of the tree they are generated from), plus a few hostile ones.
 *
 * Run: make fuzz-corpus (writes into the source tree's fuzz/corpus/).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sigillo.h"
#include "protocol.h"
#include "segment.h"

struct buf {
        uint8_t b[16384];
        size_t n;
};

static const char *outdir;

static void die(const char *what) {
        fprintf(stderr, "gen-corpus: %s\n", what);
        exit(1);
}

static void put(struct buf *b, const void *p, size_t n) {
        if (b->n + n > sizeof(b->b))
                die("seed too large");
        if (n > 0)
                memcpy(b->b + b->n, p, n);
        b->n += n;
}

static void put8(struct buf *b, uint8_t v) {
        put(b, &v, 1);
}

static void put16(struct buf *b, size_t v) {
        put8(b, (uint8_t)v);
        put8(b, (uint8_t)(v >> 8));
}

static void save(const char *dir, const char *name, const struct buf *b) {
        char path[4096];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s/%s", outdir, dir, name);
        f = fopen(path, "wb");
        if (!f || fwrite(b->b, 1, b->n, f) != b->n || fclose(f) != 0)
                die(path);
}

/* ------------------------------------------------------------ daemon */

/* One step of fuzz-daemon: [op][fd kind][len16][message]. */
static void dstep(struct buf *b, uint8_t op, uint8_t kind, const uint8_t *m, ssize_t n) {
        if (n < 0)
                die("build");
        put8(b, op);
        put8(b, kind);
        put16(b, (size_t)n);
        put(b, m, (size_t)n);
}

enum { K_NONE = 0, K_CTL = 1, K_SEG = 2, K_SOCK = 3, K_PIPE = 4, K_TWO = 5, K_BLOB = 6,
       K_EVENT = 7, K_SEALED = 8, K_WRITABLE = 0x10, K_BROKEN = 0x20 };

#define M(call) m, call
static uint8_t m[SGL_MSG_MAX_SIZE];

static void d_writer(struct buf *b, uint8_t conn, uint32_t claim_flags, const char *name) {
        dstep(b, conn, K_NONE, M(sgl_msg_build_hello(m, sizeof(m), 1, 1, 1, SGL_ROLE_WRITER)));
        dstep(b, conn, K_NONE, M(sgl_msg_build_claim(m, sizeof(m), 2, claim_flags, 0444,
                                                     NULL, 0, NULL, 0, name, strlen(name))));
        dstep(b, conn, K_CTL, M(sgl_msg_build_publish_control(m, sizeof(m), 3)));
        dstep(b, conn, K_SEG, M(sgl_msg_build_publish_segment(m, sizeof(m), 4, 1,
                                                              SGL_SEGMENT_OPENED)));
        dstep(b, conn, K_SEG | K_SEALED, M(sgl_msg_build_publish_segment(m, sizeof(m), 5, 1,
                                                                         SGL_SEGMENT_SEALED)));
        dstep(b, conn, K_SEG | K_SEALED | 0x40,
              M(sgl_msg_build_publish_segment(m, sizeof(m), 6, 2, SGL_SEGMENT_SEALED)));
        dstep(b, conn, K_NONE, M(sgl_msg_build_ping(m, sizeof(m), 7)));
}

static void gen_daemon(void) {
        uint32_t uids[2] = { 0, 1000 }, gids[1] = { 4343 };
        struct buf b;

        b = (struct buf) { .n = 0 };
        d_writer(&b, 0, 0, "fuzz.a");
        dstep(&b, 0, K_NONE, M(sgl_msg_build_retire(m, sizeof(m), 8, 1)));
        dstep(&b, 0, K_NONE, M(sgl_msg_build_release(m, sizeof(m), 9, SGL_RELEASE_REMOVE)));
        save("daemon", "01-writer", &b);

        b = (struct buf) { .n = 0 };
        d_writer(&b, 0, SGL_CLAIM_PERSIST, "fuzz.a");
        dstep(&b, 1, K_NONE, M(sgl_msg_build_hello(m, sizeof(m), 1, 1, 1, SGL_ROLE_READER)));
        dstep(&b, 1, K_NONE, M(sgl_msg_build_open(m, sizeof(m), 2, SGL_OPEN_ALL, "fuzz.a", 6)));
        dstep(&b, 0, K_SEG, M(sgl_msg_build_publish_segment(m, sizeof(m), 8, 3,
                                                            SGL_SEGMENT_OPENED)));
        dstep(&b, 0, K_NONE, M(sgl_msg_build_retire(m, sizeof(m), 9, 1)));
        dstep(&b, 1, K_NONE, M(sgl_msg_build_ping(m, sizeof(m), 3)));
        dstep(&b, 2, K_NONE, M(sgl_msg_build_hello(m, sizeof(m), 1, 1, 1, SGL_ROLE_READER)));
        dstep(&b, 2, K_NONE, M(sgl_msg_build_open(m, sizeof(m), 2, 0, "fuzz.a", 6)));
        dstep(&b, 3, K_NONE, NULL, 0); /* the writer leaves: GONE or not (PERSIST) */
        save("daemon", "02-reader", &b);

        b = (struct buf) { .n = 0 };
        d_writer(&b, 0, 0, "team.x");
        dstep(&b, 2, K_NONE, M(sgl_msg_build_hello(m, sizeof(m), 1, 1, 1, SGL_ROLE_QUERY)));
        dstep(&b, 2, K_NONE, M(sgl_msg_build_list(m, sizeof(m), 2)));
        dstep(&b, 2, K_NONE, M(sgl_msg_build_stat(m, sizeof(m), 3, "team.x", 6)));
        dstep(&b, 2, K_NONE, M(sgl_msg_build_stat(m, sizeof(m), 4, "nope", 4)));
        save("daemon", "03-query", &b);

        b = (struct buf) { .n = 0 };
        d_writer(&b, 0, SGL_CLAIM_PERSIST, "fuzz.p");
        dstep(&b, 3, K_NONE, NULL, 0);
        dstep(&b, 0, K_NONE, M(sgl_msg_build_hello(m, sizeof(m), 1, 1, 1, SGL_ROLE_WRITER)));
        dstep(&b, 0, K_NONE, M(sgl_msg_build_claim(m, sizeof(m), 2, SGL_CLAIM_PERSIST, 0400,
                                                   uids, 2, gids, 1, "fuzz.p", 6)));
        dstep(&b, 0, K_CTL, M(sgl_msg_build_publish_control(m, sizeof(m), 3)));
        dstep(&b, 0, K_SEG | K_SEALED, M(sgl_msg_build_publish_segment(m, sizeof(m), 4, 3,
                                                                       SGL_SEGMENT_SEALED)));
        dstep(&b, 0, K_NONE, M(sgl_msg_build_retire(m, sizeof(m), 5, 1)));
        dstep(&b, 0, K_NONE, M(sgl_msg_build_ping(m, sizeof(m), 6)));
        save("daemon", "04-takeover", &b);

        /* hostile: descriptors where none belong, wrong kinds, garbage */
        b = (struct buf) { .n = 0 };
        dstep(&b, 0, K_SOCK, M(sgl_msg_build_hello(m, sizeof(m), 1, 1, 1, SGL_ROLE_WRITER)));
        dstep(&b, 1, K_NONE, (const uint8_t *)"\x01\x00garbage-garbage-garbage", 24);
        dstep(&b, 2, K_NONE, M(sgl_msg_build_list(m, sizeof(m), 1))); /* before HELLO */
        dstep(&b, 0, K_NONE, M(sgl_msg_build_hello(m, sizeof(m), 1, 1, 1, SGL_ROLE_WRITER)));
        dstep(&b, 0, K_NONE, M(sgl_msg_build_claim(m, sizeof(m), 2, 0, 0444, NULL, 0, NULL, 0,
                                                   "sys.x", 5)));
        dstep(&b, 0, K_NONE, M(sgl_msg_build_claim(m, sizeof(m), 3, 0, 0444, NULL, 0, NULL, 0,
                                                   "fuzz.h", 6)));
        dstep(&b, 0, K_TWO, M(sgl_msg_build_publish_control(m, sizeof(m), 4)));
        dstep(&b, 0, K_CTL | K_WRITABLE, M(sgl_msg_build_publish_control(m, sizeof(m), 5)));
        dstep(&b, 0, K_CTL | K_BROKEN, M(sgl_msg_build_publish_control(m, sizeof(m), 6)));
        dstep(&b, 0, K_PIPE, M(sgl_msg_build_publish_control(m, sizeof(m), 7)));
        dstep(&b, 0, K_EVENT, M(sgl_msg_build_publish_segment(m, sizeof(m), 8, 1,
                                                              SGL_SEGMENT_SEALED)));
        dstep(&b, 0, K_BLOB, M(sgl_msg_build_publish_segment(m, sizeof(m), 9, 1,
                                                             SGL_SEGMENT_OPENED)));
        save("daemon", "05-hostile", &b);

        /* quotas: three writers of one uid, more segments than allowed */
        b = (struct buf) { .n = 0 };
        d_writer(&b, 0, SGL_CLAIM_PERSIST, "q.a");
        d_writer(&b, 1, SGL_CLAIM_PERSIST, "q.b");
        d_writer(&b, 2, SGL_CLAIM_PERSIST, "q.c");
        for (uint32_t s = 3; s < 8; s++)
                dstep(&b, 0, K_SEG | K_SEALED,
                      M(sgl_msg_build_publish_segment(m, sizeof(m), 5 + s, s, SGL_SEGMENT_SEALED)));
        save("daemon", "06-quota", &b);
}

/* ------------------------------------------------------------ client */

/* One step of fuzz-client: [fd kind][len16][message] (+[clen16][content]). */
static void cstep(struct buf *b, uint8_t kind, const uint8_t *msg, ssize_t n,
                  const struct buf *content) {
        if (n < 0)
                die("build");
        put8(b, kind);
        put16(b, (size_t)n);
        put(b, msg, (size_t)n);
        if ((kind & 7) == 2 || (kind & 7) == 3) {
                put16(b, content ? content->n : 0);
                if (content)
                        put(b, content->b, content->n);
        }
}

/* The committed bytes of each segment of a real writer. */
static struct buf segs[4];
static size_t n_segs;

static void take_segment(void *userdata, uint64_t seq, sgl_segment_event ev, int fd) {
        struct sgl_seg_header h;
        struct buf *s;

        (void)userdata;
        (void)seq;
        (void)ev;
        if (n_segs >= 4 || pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
                return;
        s = &segs[n_segs++];
        s->n = h.commit_end < 6000 ? h.commit_end : 6000;
        if (pread(fd, s->b, s->n, 0) != (ssize_t)s->n)
                die("pread");
}

static void make_segments(void) {
        static const char text[] = "a chunk of the seed corpus";
        sgl_writer *w = NULL;
        uint64_t id;

        if (sgl_writer_new("gen", 0, &w) < 0)
                die("writer");
        (void)sgl_writer_set_seal_policy(w, SGL_SEAL_WHEN_FULL, 0);
        for (uint64_t i = 1; i <= 3; i++)
                if (sgl_writer_write(w, i, i == 2 ? sgl_now_ns() + 3600000000000ULL : 0,
                                     text, sizeof(text) - i, &id) < 0)
                        die("write");
        if (sgl_writer_commit(w) < 0 || sgl_writer_write(w, 0, 0, text, 5, &id) < 0 ||
            sgl_writer_write(w, 1, 0, text, 9, &id) < 0 || sgl_writer_delete(w, 3) < 0 ||
            sgl_writer_commit(w) < 0 || sgl_writer_seal(w) < 0)
                die("commit");
        if (sgl_writer_write(w, 4, 0, text, 12, &id) < 0 || sgl_writer_commit(w) < 0)
                die("commit");
        if (sgl_writer_foreach_segment(w, take_segment, NULL) < 0 || n_segs < 2)
                die("segments");
        sgl_writer_unref(w);
}

static void gen_client(void) {
        static const uint8_t A[SGL_MSG_AREA_ID_LEN] = "fuzz-area-id-016";
        struct buf b;

        make_segments();

        /* a STRICT reader: handshake, the live segments, pushes, GONE */
        b = (struct buf) { .n = 0 };
        put8(&b, 0);
        cstep(&b, 0, M(sgl_msg_build_welcome(m, sizeof(m), 1, 1, SGL_MSG_MAX_SIZE, 255)), NULL);
        cstep(&b, K_CTL, M(sgl_msg_build_area(m, sizeof(m), 2, A, SGL_AREA_WRITER_PRESENT)), NULL);
        cstep(&b, K_SEG | K_SEALED, M(sgl_msg_build_segment(m, sizeof(m), 2, 1, SGL_SEGMENT_SEALED)),
              &segs[0]);
        cstep(&b, 0, M(sgl_msg_build_synced(m, sizeof(m), 2)), NULL);
        cstep(&b, K_SEG | K_SEALED, M(sgl_msg_build_segment(m, sizeof(m), 0, 2, SGL_SEGMENT_SEALED)),
              &segs[1]);
        cstep(&b, 0, M(sgl_msg_build_retired(m, sizeof(m), 1)), NULL);
        cstep(&b, K_CTL, M(sgl_msg_build_area(m, sizeof(m), 0, A, 0)), NULL);
        cstep(&b, 0, M(sgl_msg_build_gone(m, sizeof(m))), NULL);
        save("client", "01-reader", &b);

        /* a TRUSTED reader gets the open segment, then it sealed */
        b = (struct buf) { .n = 0 };
        put8(&b, 2);
        cstep(&b, 0, M(sgl_msg_build_welcome(m, sizeof(m), 1, 1, SGL_MSG_MAX_SIZE, 255)), NULL);
        cstep(&b, K_CTL, M(sgl_msg_build_area(m, sizeof(m), 2, A, SGL_AREA_WRITER_PRESENT)), NULL);
        cstep(&b, K_SEG | K_SEALED, M(sgl_msg_build_segment(m, sizeof(m), 2, 1, SGL_SEGMENT_SEALED)),
              &segs[0]);
        cstep(&b, K_SEG, M(sgl_msg_build_segment(m, sizeof(m), 2, 2, SGL_SEGMENT_OPENED)), &segs[1]);
        cstep(&b, 0, M(sgl_msg_build_synced(m, sizeof(m), 2)), NULL);
        cstep(&b, K_SEG | K_SEALED, M(sgl_msg_build_segment(m, sizeof(m), 0, 2, SGL_SEGMENT_SEALED)),
              &segs[1]);
        cstep(&b, K_SEG | K_SEALED | 0x40, M(sgl_msg_build_segment(m, sizeof(m), 0, 3, SGL_SEGMENT_SEALED)),
              n_segs > 2 ? &segs[2] : &segs[1]);
        save("client", "02-reader-trusted", &b);

        /* a reader refused, and one fed descriptors of the wrong kind */
        b = (struct buf) { .n = 0 };
        put8(&b, 0);
        cstep(&b, 0, M(sgl_msg_build_welcome(m, sizeof(m), 1, 1, SGL_MSG_MAX_SIZE, 255)), NULL);
        cstep(&b, 0, M(sgl_msg_build_error(m, sizeof(m), 2, -ENOENT)), NULL);
        save("client", "03-reader-refused", &b);

        b = (struct buf) { .n = 0 };
        put8(&b, 0);
        cstep(&b, 0, M(sgl_msg_build_welcome(m, sizeof(m), 1, 1, SGL_MSG_MAX_SIZE, 255)), NULL);
        cstep(&b, K_CTL | K_WRITABLE, M(sgl_msg_build_area(m, sizeof(m), 2, A, 0)), NULL);
        save("client", "04-reader-writable-control", &b);

        b = (struct buf) { .n = 0 };
        put8(&b, 0);
        cstep(&b, 0, M(sgl_msg_build_welcome(m, sizeof(m), 1, 1, SGL_MSG_MAX_SIZE, 255)), NULL);
        cstep(&b, K_CTL, M(sgl_msg_build_area(m, sizeof(m), 2, A, 0)), NULL);
        cstep(&b, K_SEG, M(sgl_msg_build_segment(m, sizeof(m), 2, 1, SGL_SEGMENT_SEALED)),
              &segs[0]); /* says sealed, is not */
        cstep(&b, 6, M(sgl_msg_build_segment(m, sizeof(m), 2, 2, SGL_SEGMENT_SEALED)), NULL);
        cstep(&b, 4, M(sgl_msg_build_segment(m, sizeof(m), 2, 3, SGL_SEGMENT_SEALED)), NULL);
        cstep(&b, 3 | K_SEALED, M(sgl_msg_build_segment(m, sizeof(m), 2, 4, SGL_SEGMENT_SEALED)),
              &segs[0]);
        cstep(&b, 0, M(sgl_msg_build_synced(m, sizeof(m), 2)), NULL);
        save("client", "05-reader-hostile", &b);

        /* a writer publishing a new area */
        b = (struct buf) { .n = 0 };
        put8(&b, 1);
        cstep(&b, 0, M(sgl_msg_build_welcome(m, sizeof(m), 1, 1, SGL_MSG_MAX_SIZE, 255)), NULL);
        cstep(&b, 0, M(sgl_msg_build_claimed(m, sizeof(m), 2, A, 0, 1)), NULL);
        for (uint32_t s = 4; s <= 6; s++)
                cstep(&b, 0, M(sgl_msg_build_ok(m, sizeof(m), s)), NULL);
        cstep(&b, 0, M(sgl_msg_build_error(m, sizeof(m), 0, -EDQUOT)), NULL);
        save("client", "06-writer", &b);

        /* a writer taking over a PERSIST area: sealed, open, retired */
        b = (struct buf) { .n = 0 };
        put8(&b, 1 | 4);
        cstep(&b, 0, M(sgl_msg_build_welcome(m, sizeof(m), 1, 1, SGL_MSG_MAX_SIZE, 255)), NULL);
        cstep(&b, 0, M(sgl_msg_build_claimed(m, sizeof(m), 2, A, SGL_CLAIMED_TAKEOVER, 4)), NULL);
        cstep(&b, K_SEG | K_SEALED, M(sgl_msg_build_segment(m, sizeof(m), 2, 1, SGL_SEGMENT_SEALED)),
              &segs[0]);
        cstep(&b, K_SEG, M(sgl_msg_build_segment(m, sizeof(m), 2, 2, SGL_SEGMENT_OPENED)), &segs[1]);
        cstep(&b, K_SEG | K_SEALED | 0x40, M(sgl_msg_build_segment(m, sizeof(m), 2, 3, SGL_SEGMENT_SEALED)),
              n_segs > 2 ? &segs[2] : &segs[1]);
        cstep(&b, 0, M(sgl_msg_build_synced(m, sizeof(m), 2)), NULL);
        for (uint32_t s = 4; s <= 8; s++)
                cstep(&b, 0, M(sgl_msg_build_ok(m, sizeof(m), s)), NULL);
        save("client", "07-writer-takeover", &b);

        /* a writer with data of its own meets another area */
        b = (struct buf) { .n = 0 };
        put8(&b, 1 | 8);
        cstep(&b, 0, M(sgl_msg_build_welcome(m, sizeof(m), 1, 1, SGL_MSG_MAX_SIZE, 255)), NULL);
        cstep(&b, 0, M(sgl_msg_build_claimed(m, sizeof(m), 2, A, 0, 7)), NULL);
        cstep(&b, 0, M(sgl_msg_build_ok(m, sizeof(m), 5)), NULL);
        save("client", "08-writer-own-data", &b);
}

int main(int argc, char **argv) {
        if (argc != 2) {
                fprintf(stderr, "usage: gen-corpus DIR (holding daemon/ and client/)\n");
                return 2;
        }
        outdir = argv[1];
        gen_daemon();
        gen_client();
        return 0;
}
