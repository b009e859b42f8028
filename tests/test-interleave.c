/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-interleave.c - the lockless protocol, interleaved at every
 * instruction: a writer process single-stepped under ptrace through each
 * commit of a script (test-ptrace.c), and at every stop the test process,
 * reading the same area as a TRUSTED and as a STRICT reader, validates what
 * it sees.
 *
 * The writer (a traced child) hands the test process its control page and
 * every segment it opens or seals over a socketpair, from its segment
 * callback, so descriptors arrive at the very instruction the writer sends
 * them; the test process takes them without blocking at every stop.  Each
 * commit of the script is bracketed by tp_mark() and stepped end to end:
 * staging, commit, the segments it opens, seals, copies or retires.
 *
 * A chunk written by commit g under id i holds size(i, g) bytes of
 * pattern(i, g), so any chunk names the commit that wrote it.  The test
 * keeps the snapshot S[g] (id -> commit, 0 for none) after every commit g.
 * At every stop each reader's view (sgl_reader_get() of every id) must be
 * exactly some S[j] with j at least the view it had at the previous stop
 * (nothing seen earlier changes or goes back) and at most the commit under
 * way (nothing from the future): a commit is wholly invisible or wholly
 * visible, a batch with it.  Further, at every stop:
 *  - every chunk's bytes are exactly the pattern of the commit that wrote
 *    it; an (id, commit) pair always has the same version, and versions
 *    grow strictly with the commit;
 *  - the stream (sgl_reader_next()) delivers exactly the view: each id's
 *    newest version once, versions growing per id, nothing deleted;
 *  - every chunk delivered so far is held, and its bytes never change,
 *    also once compaction retired its segment;
 *  - once a commit returned, the TRUSTED reader sees it; once a commit
 *    that seals returned, the STRICT reader sees it too.
 *  - a reader joining at a stop (handed every live segment; a STRICT one
 *    the sealed ones) sees exactly what the readers that were there all
 *    along see, and streams each live chunk once (every NEWCOMER-th stop,
 *    and at the end of each commit).
 * The script covers: one chunk, a batch, updates by id, a delete, a commit
 * that spills into a new segment, a commit that seals, and a compaction
 * (sgl_writer_gc()), each single-stepped end to end; it runs with segments
 * sealed in place and again sealed by copy (SGL_WRITER_SEAL_BY_COPY).
 * Under a sanitizer, where each instruction costs several, only every
 * STRIDE-th stop is validated and only the first variant runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sigillo.h"
#include "test-proc.h"
#include "test-ptrace.h"
#include "test-util.h"

#define SEG_SIZE (16 * 1024)
#define MAX_ID 16
#define MAX_COMMIT 24
#define MAX_OPS 8
#define MAX_HELD 256
#define MAX_SEQ 64
/* a reader joins at every NEWCOMER-th stop */
#define NEWCOMER 61
#define BIG 7000

/* Under a sanitizer every instruction costs several: validate every
 * STRIDE-th stop there (still every stop of the normal build). */
#if defined(__SANITIZE_ADDRESS__)
#define STRIDE 16
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define STRIDE 16
#endif
#endif
#ifndef STRIDE
#define STRIDE 1
#endif

enum { H_CTL = H_LOCAL, H_COMMITTED };

enum { OP_NONE, OP_WRITE, OP_DELETE, OP_GC };

/* What a stepped commit must have done (segment events while stepped). */
enum { X_OPEN = 1, X_SEAL = 2, X_RETIRE = 4 };

struct op {
        int kind;
        uint64_t id;
        size_t size;    /* 0: the default size of (id, commit) */
};

struct commit {
        const char *name;
        bool stepped;
        int policy;     /* -1: unchanged, else the seal policy set first */
        unsigned expect;
        struct op ops[MAX_OPS];
};

/* The script; commit g is script[g - 1]. */
static const struct commit script[] = {
        { "single chunk", true, -1, 0, { { OP_WRITE, 1, 0 } } },
        { "batch of five", true, -1, 0,
          { { OP_WRITE, 2, 0 }, { OP_WRITE, 3, 0 }, { OP_WRITE, 4, 0 },
            { OP_WRITE, 5, 0 }, { OP_WRITE, 6, 0 } } },
        { "update by id", true, -1, 0, { { OP_WRITE, 1, 0 }, { OP_WRITE, 3, 0 } } },
        { "delete", true, -1, 0, { { OP_DELETE, 2, 0 } } },
        { "fill", false, -1, 0, { { OP_WRITE, 7, BIG } } },
        /* BIG + BIG cannot share one segment of SEG_SIZE */
        { "spill into a new segment", true, -1, X_OPEN,
          { { OP_WRITE, 8, BIG }, { OP_WRITE, 9, 0 }, { OP_WRITE, 6, 0 } } },
        { "seal", true, SGL_SEAL_EVERY_COMMIT, X_SEAL,
          { { OP_WRITE, 10, 0 }, { OP_WRITE, 4, 0 } } },
        { "more garbage", false, -1, 0, { { OP_DELETE, 5, 0 }, { OP_WRITE, 1, 0 } } },
        { "compaction", true, -1, X_RETIRE | X_SEAL, { { OP_GC, 0, 0 } } },
        { "after compaction", true, SGL_SEAL_WHEN_FULL, 0,
          { { OP_WRITE, 5, 0 }, { OP_DELETE, 3, 0 }, { OP_WRITE, 11, 0 } } },
};

#define N_COMMITS (sizeof(script) / sizeof(script[0]))

static size_t op_size(const struct op *o, unsigned g) {
        return o->size ? o->size : 16 + (size_t)((o->id * 37 + g * 11) % 300);
}

static uint8_t pat(uint64_t id, unsigned g, size_t i) {
        return (uint8_t)((id * 0x9e37u + g * 0x85ebu + i * 0x2fu) ^ (i >> 8) ^ (i >> 16));
}

static void fill(uint8_t *p, size_t size, uint64_t id, unsigned g) {
        for (size_t i = 0; i < size; i++)
                p[i] = pat(id, g, i);
}

static bool is_pattern(const uint8_t *p, size_t size, uint64_t id, unsigned g) {
        for (size_t i = 0; i < size; i++)
                if (p[i] != pat(id, g, i))
                        return false;
        return true;
}

/* ======================================================== the writer === */

struct wctx {
        int sock;
        int other;      /* the test process's end: closed in the child */
        unsigned wflags;
};

/* A run of the script: the writer's flags, and every how many stops the
 * readers validate (times STRIDE). */
struct variant {
        const char *name;
        unsigned wflags;
        unsigned every;
};

static void seg_send(void *userdata, uint64_t seq, sgl_segment_event ev, int fd) {
        const int *sock = userdata;

        /* the test process notices a lost event (a segment it never got) */
        (void)hsend(*sock, H_SEG, seq, (uint64_t)ev, fd);
}

static int run_commit(sgl_writer *w, const struct commit *c, uint8_t *const *bufs, unsigned g) {
        int k = 0;

        for (size_t i = 0; i < MAX_OPS && c->ops[i].kind != OP_NONE && k >= 0; i++) {
                const struct op *o = &c->ops[i];

                if (o->kind == OP_WRITE)
                        k = sgl_writer_write(w, o->id, 0, bufs[i], op_size(o, g), NULL);
                else if (o->kind == OP_DELETE)
                        k = sgl_writer_delete(w, o->id);
                else
                        return sgl_writer_gc(w);
        }
        return k < 0 ? k : sgl_writer_commit(w);
}

static int writer_main(void *userdata) {
        struct wctx *ctx = userdata;
        sgl_writer *w = NULL;
        int ctl;

        close(ctx->other);
        TU_CHILD_CHECK(sgl_writer_new("interleave", ctx->wflags, &w) == 0);
        TU_CHILD_CHECK(sgl_writer_set_segment_size(w, SEG_SIZE) == 0);
        TU_CHILD_CHECK(sgl_writer_set_seal_policy(w, SGL_SEAL_WHEN_FULL, 0) == 0);
        TU_CHILD_CHECK(sgl_writer_set_gc(w, 0, 0, 0) == 0);
        sgl_writer_set_segment_fn(w, seg_send, &ctx->sock);
        ctl = sgl_writer_control_fd(w);
        TU_CHILD_CHECK(ctl >= 0);
        TU_CHILD_CHECK(hsend(ctx->sock, H_CTL, 0, 0, ctl) == 0);
        close(ctl);

        for (unsigned g = 1; g <= N_COMMITS; g++) {
                const struct commit *c = &script[g - 1];
                uint8_t *bufs[MAX_OPS] = { 0 };
                int k;

                /* the payloads are ready before the stepping starts */
                for (size_t i = 0; i < MAX_OPS; i++)
                        if (c->ops[i].kind == OP_WRITE) {
                                size_t n = op_size(&c->ops[i], g);

                                bufs[i] = malloc(n);
                                TU_CHILD_CHECK(bufs[i]);
                                fill(bufs[i], n, c->ops[i].id, g);
                        }
                if (c->policy >= 0)
                        TU_CHILD_CHECK(sgl_writer_set_seal_policy(w, (sgl_seal_policy)c->policy, 0) == 0);
                if (c->stepped)
                        tp_mark();
                k = run_commit(w, c, bufs, g);
                (void)hsend(ctx->sock, H_COMMITTED, g, (uint64_t)(int64_t)k, -1);
                if (c->stepped)
                        tp_mark();
                for (size_t i = 0; i < MAX_OPS; i++)
                        free(bufs[i]);
                TU_CHILD_CHECK(k >= 0);
        }
        sgl_writer_unref(w);
        return 0;
}

/* ======================================================== the readers === */

struct held {
        sgl_chunk *c;
        uint64_t id;
        unsigned g;
};

struct view {
        const char *name;
        sgl_reader *r;
        bool strict;
        unsigned at;                    /* the snapshot seen at the last stop */
        uint64_t delivered[MAX_ID + 1]; /* newest version streamed per id */
        struct held held[MAX_HELD];
        size_t n_held;
        uint64_t stops;
        unsigned obs[MAX_ID + 1];       /* the view at the last stop */
};

struct test {
        pid_t pid;
        int sock;
        struct view v[2];
        unsigned snap[MAX_COMMIT + 1][MAX_ID + 1];
        uint64_t version[MAX_ID + 1][MAX_COMMIT + 1]; /* 0: not seen yet */
        int64_t result[MAX_COMMIT + 1];
        bool done[MAX_COMMIT + 1];
        unsigned opened, sealed, retired;
        uint64_t steps;
        bool exited;
        /* a descriptor of each live segment, for readers joining at a stop */
        int seg_fd[MAX_SEQ];
        bool seg_sealed[MAX_SEQ];
        uint64_t newcomers;
};

/* Takes every message the writer sent so far, without blocking. */
static void pump(struct test *t) {
        for (;;) {
                struct hmsg m;
                int fd = -1, k;

                k = hrecv(t->sock, 0, &m, &fd);
                if (k == -EAGAIN || (k == -EPIPE && t->exited))
                        return;
                if (k < 0)
                        fail_msg("receiving from the writer: %s", strerror(-k));
                switch (m.type) {
                case H_CTL: {
                        int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);

                        assert_true(fd >= 0 && dup_fd >= 0);
                        assert_int_equal(sgl_reader_set_control_consume_fd(t->v[0].r, fd), 0);
                        assert_int_equal(sgl_reader_set_control_consume_fd(t->v[1].r, dup_fd), 0);
                        break;
                }
                case H_SEG:
                        assert_true(m.a < MAX_SEQ);
                        if (t->seg_fd[m.a] >= 0) {
                                close(t->seg_fd[m.a]);
                                t->seg_fd[m.a] = -1;
                        }
                        if (m.b == SGL_SEGMENT_RETIRED) {
                                assert_int_equal(fd, -1);
                                t->retired++;
                                break;
                        }
                        assert_true(fd >= 0);
                        t->seg_fd[m.a] = fcntl(fd, F_DUPFD_CLOEXEC, 3);
                        t->seg_sealed[m.a] = m.b == SGL_SEGMENT_SEALED;
                        assert_true(t->seg_fd[m.a] >= 0);
                        if (m.b == SGL_SEGMENT_SEALED) {
                                int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);

                                assert_true(dup_fd >= 0);
                                assert_int_equal(sgl_reader_add_segment_consume_fd(t->v[1].r, dup_fd), 0);
                                t->sealed++;
                        } else {
                                assert_int_equal(m.b, SGL_SEGMENT_OPENED);
                                t->opened++;
                        }
                        assert_int_equal(sgl_reader_add_segment_consume_fd(t->v[0].r, fd), 0);
                        break;
                case H_COMMITTED:
                        assert_true(m.a >= 1 && m.a <= N_COMMITS);
                        t->done[m.a] = true;
                        t->result[m.a] = (int64_t)m.b;
                        break;
                default:
                        fail_msg("unexpected message %u", m.type);
                }
        }
}

static void dump_view(const struct test *t, const unsigned *obs, unsigned from, unsigned to) {
        fprintf(stderr, "seen:");
        for (unsigned id = 1; id <= MAX_ID; id++)
                fprintf(stderr, " %u", obs[id]);
        fprintf(stderr, "\n");
        for (unsigned j = from; j <= to; j++) {
                fprintf(stderr, "S[%u]:", j);
                for (unsigned id = 1; id <= MAX_ID; id++)
                        fprintf(stderr, " %u", t->snap[j][id]);
                fprintf(stderr, "\n");
        }
}

/* Which commit wrote @c (its bytes say so), or 0. */
static unsigned writer_of(const sgl_chunk *c, unsigned upto) {
        uint64_t id = sgl_chunk_id(c);

        for (unsigned g = 1; g <= upto; g++) {
                const struct commit *cm = &script[g - 1];

                for (size_t i = 0; i < MAX_OPS; i++)
                        if (cm->ops[i].kind == OP_WRITE && cm->ops[i].id == id &&
                            sgl_chunk_size(c) == op_size(&cm->ops[i], g) &&
                            is_pattern(sgl_chunk_data(c), sgl_chunk_size(c), id, g))
                                return g;
        }
        return 0;
}

/* The version of (@id, @g) is always the same, and versions grow with the
 * commit. */
static void check_version(struct test *t, uint64_t id, unsigned g, uint64_t version) {
        if (t->version[id][g] != 0) {
                assert_int_equal(t->version[id][g], version);
                return;
        }
        for (unsigned i = 1; i <= MAX_ID; i++)
                for (unsigned h = 1; h <= MAX_COMMIT; h++) {
                        uint64_t v = t->version[i][h];

                        if (v == 0)
                                continue;
                        if (h < g)
                                assert_true(v < version);
                        else if (h > g)
                                assert_true(v > version);
                        else
                                assert_true(v != version);
                }
        t->version[id][g] = version;
}

/*
 * Validates @v at a stop while commit @now is under way (or has just
 * returned: then @current says the view must be all of it).
 */
static void validate(struct test *t, struct view *v, unsigned now, bool current) {
        unsigned obs[MAX_ID + 1] = { 0 };
        unsigned j;
        sgl_chunk *c;
        int k;

        /* nothing held ever changes */
        for (size_t i = 0; i < v->n_held; i++) {
                const struct held *h = &v->held[i];

                assert_true(is_pattern(sgl_chunk_data(h->c), sgl_chunk_size(h->c), h->id, h->g));
        }

        /* the keyed view is one snapshot */
        for (uint64_t id = 1; id <= MAX_ID; id++) {
                k = sgl_reader_get(v->r, id, &c);
                if (k == -ENOENT)
                        continue;
                assert_int_equal(k, 0);
                obs[id] = writer_of(c, now);
                if (obs[id] == 0)
                        fail_msg("%s reader: id %" PRIu64 " holds bytes no commit wrote", v->name, id);
                check_version(t, id, obs[id], sgl_chunk_version(c));
                sgl_chunk_unref(c);
        }
        /* the newest of equal snapshots (compaction changes no view) */
        for (j = now + 1; j-- > v->at;)
                if (memcmp(obs, t->snap[j], sizeof(obs)) == 0)
                        break;
        if (j == UINT_MAX || j < v->at) {
                dump_view(t, obs, v->at, now);
                fail_msg("%s reader: a view that is no snapshot from %u to %u (step %" PRIu64 ")",
                         v->name, v->at, now, t->steps);
        }
        if (current && j != now) {
                dump_view(t, obs, v->at, now);
                fail_msg("%s reader: commit %u returned, its view is still %u", v->name, now, j);
        }
        v->at = j;
        memcpy(v->obs, obs, sizeof(obs));

        /* the stream delivers exactly that view */
        while ((k = sgl_reader_next(v->r, &c)) == 0) {
                uint64_t id = sgl_chunk_id(c);
                struct held *h;

                assert_true(id >= 1 && id <= MAX_ID);
                assert_true(obs[id] != 0);
                assert_true(sgl_chunk_size(c) > 0);
                assert_true(is_pattern(sgl_chunk_data(c), sgl_chunk_size(c), id, obs[id]));
                assert_int_equal(sgl_chunk_version(c), t->version[id][obs[id]]);
                assert_true(sgl_chunk_version(c) > v->delivered[id]);
                v->delivered[id] = sgl_chunk_version(c);
                assert_true(v->n_held < MAX_HELD);
                h = &v->held[v->n_held++];
                *h = (struct held) { .c = c, .id = id, .g = obs[id] };
        }
        assert_int_equal(k, -EAGAIN);
        for (uint64_t id = 1; id <= MAX_ID; id++)
                if (obs[id])
                        assert_int_equal(v->delivered[id], t->version[id][obs[id]]);
        v->stops++;
}

/*
 * A reader that joins now, handed every live segment (a STRICT one: the
 * sealed ones), sees what the reader of its level that was there all along
 * sees, and streams each live chunk once, intact.
 */
static void newcomer(struct test *t, const struct view *v) {
        sgl_reader *r = NULL;
        uint64_t streamed = 0, live = 0;
        sgl_chunk *c;
        int k;

        assert_int_equal(sgl_reader_new(v->strict ? 0 : SGL_READER_TRUSTED, &r), 0);
        for (unsigned seq = 0; seq < MAX_SEQ; seq++) {
                int fd;

                if (t->seg_fd[seq] < 0 || (v->strict && !t->seg_sealed[seq]))
                        continue;
                fd = fcntl(t->seg_fd[seq], F_DUPFD_CLOEXEC, 3);
                assert_true(fd >= 0);
                assert_int_equal(sgl_reader_add_segment_consume_fd(r, fd), 0);
        }
        for (uint64_t id = 1; id <= MAX_ID; id++) {
                k = sgl_reader_get(r, id, &c);
                if (v->obs[id] == 0) {
                        assert_int_equal(k, -ENOENT);
                        continue;
                }
                assert_int_equal(k, 0);
                assert_true(is_pattern(sgl_chunk_data(c), sgl_chunk_size(c), id, v->obs[id]));
                assert_int_equal(sgl_chunk_version(c), t->version[id][v->obs[id]]);
                sgl_chunk_unref(c);
                live++;
        }
        while ((k = sgl_reader_next(r, &c)) == 0) {
                uint64_t id = sgl_chunk_id(c);

                assert_true(id >= 1 && id <= MAX_ID && v->obs[id] != 0);
                assert_true(is_pattern(sgl_chunk_data(c), sgl_chunk_size(c), id, v->obs[id]));
                sgl_chunk_unref(c);
                streamed++;
        }
        assert_int_equal(k, -EAGAIN);
        assert_int_equal(streamed, live);
        assert_null(sgl_reader_unref(r));
        t->newcomers++;
}

static void interleave(void **state) {
        const struct variant *var = *state;
        const unsigned stride = STRIDE * var->every;
        struct test *t = calloc(1, sizeof(*t));
        struct wctx ctx;
        int sv[2], status;
        unsigned fds_before = tu_count_fds();
        uint64_t chunks = 0;
        size_t n_stepped = 0;

        /* under a sanitizer the steps alone take long: one variant there */
        if ((STRIDE > 1 && var->wflags != 0) || !tp_available()) {
                free(t);
                skip();
        }
        assert_non_null(t);
        assert_true(N_COMMITS <= MAX_COMMIT);
        for (unsigned seq = 0; seq < MAX_SEQ; seq++)
                t->seg_fd[seq] = -1;
        t->v[0].name = "TRUSTED";
        t->v[1].name = "STRICT";
        t->v[1].strict = true;
        assert_int_equal(sgl_reader_new(SGL_READER_TRUSTED, &t->v[0].r), 0);
        assert_int_equal(sgl_reader_new(0, &t->v[1].r), 0);

        tu_socketpair(sv);
        ctx = (struct wctx) { .sock = sv[1], .other = sv[0], .wflags = var->wflags };
        t->sock = sv[0];
        assert_int_equal(fcntl(t->sock, F_SETFL, O_NONBLOCK), 0);
        t->pid = tp_spawn(writer_main, &ctx);
        close(sv[1]);

        for (unsigned g = 1; g <= N_COMMITS; g++) {
                const struct commit *c = &script[g - 1];
                unsigned opened, sealed, retired;
                uint64_t steps = 0;
                int k;

                memcpy(t->snap[g], t->snap[g - 1], sizeof(t->snap[g]));
                for (size_t i = 0; i < MAX_OPS; i++)
                        if (c->ops[i].kind == OP_WRITE)
                                t->snap[g][c->ops[i].id] = g;
                        else if (c->ops[i].kind == OP_DELETE)
                                t->snap[g][c->ops[i].id] = 0;
                if (!c->stepped)
                        continue;
                n_stepped++;

                /* at the marker before commit g: everything before is there */
                pump(t);
                for (unsigned i = 1; i < g; i++) {
                        assert_true(t->done[i]);
                        assert_true(t->result[i] >= 0);
                }
                validate(t, &t->v[0], g - 1, true);
                validate(t, &t->v[1], g - 1, false);
                opened = t->opened;
                sealed = t->sealed;
                retired = t->retired;

                /* every instruction of it */
                while ((k = tp_step(t->pid, TP_INSN, &status)) == TP_STEP) {
                        steps++;
                        t->steps++;
                        if (steps % stride != 0)
                                continue;
                        pump(t);
                        validate(t, &t->v[0], g, false);
                        validate(t, &t->v[1], g, false);
                        if (steps % (NEWCOMER * stride) == 0) {
                                newcomer(t, &t->v[0]);
                                newcomer(t, &t->v[1]);
                        }
                }
                assert_int_equal(k, TP_MARK);

                pump(t);
                assert_true(t->done[g]);
                if (t->result[g] < 0)
                        fail_msg("commit %u (%s): %s", g, c->name, strerror((int)-t->result[g]));
                if (c->ops[0].kind == OP_GC)
                        assert_true(t->result[g] > 0); /* it did retire something */
                validate(t, &t->v[0], g, true);
                validate(t, &t->v[1], g, (c->expect & X_SEAL) != 0);
                newcomer(t, &t->v[0]);
                newcomer(t, &t->v[1]);
                if (c->expect & X_OPEN)
                        assert_true(t->opened > opened);
                if (c->expect & X_SEAL)
                        assert_true(t->sealed > sealed);
                if (c->expect & X_RETIRE)
                        assert_true(t->retired > retired);
                print_message("commit %u (%s): %" PRIu64 " instructions, 1 stop in %u validated\n",
                              g, c->name, steps, stride);
                if (g < N_COMMITS)
                        assert_true(tp_cont(t->pid, &status));
        }
        assert_false(tp_cont(t->pid, &status));
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        t->exited = true;
        pump(t);

        /* the writer is gone: what the readers hold is still intact */
        for (int i = 0; i < 2; i++) {
                struct view *v = &t->v[i];

                for (size_t h = 0; h < v->n_held; h++) {
                        assert_true(is_pattern(sgl_chunk_data(v->held[h].c),
                                               sgl_chunk_size(v->held[h].c),
                                               v->held[h].id, v->held[h].g));
                        sgl_chunk_unref(v->held[h].c);
                }
                chunks += v->n_held;
                assert_null(sgl_reader_unref(v->r));
        }
        close(t->sock);
        for (unsigned seq = 0; seq < MAX_SEQ; seq++)
                if (t->seg_fd[seq] >= 0)
                        close(t->seg_fd[seq]);
        assert_int_equal(tu_count_fds(), fds_before);
        printf("interleave (%s): %zu commits stepped, %" PRIu64 " instructions, %" PRIu64
               " stops validated (TRUSTED %" PRIu64 ", STRICT %" PRIu64 "), %" PRIu64
               " chunks streamed and held intact, %" PRIu64 " readers joined at a stop;"
               " segments: %u opened, %u sealed, %u retired\n",
               var->name, n_stepped,
               t->steps, t->v[0].stops + t->v[1].stops, t->v[0].stops, t->v[1].stops,
               chunks, t->newcomers, t->opened, t->sealed, t->retired);
        free(t);
}

int main(void) {
        static const struct variant in_place = { "sealed in place", 0, 1 };
        static const struct variant by_copy = { "sealed by copy", SGL_WRITER_SEAL_BY_COPY, 4 };
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_prestate(interleave, (void *)&in_place),
                cmocka_unit_test_prestate(interleave, (void *)&by_copy),
        };

        signal(SIGPIPE, SIG_IGN);
        tu_watchdog(300);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
