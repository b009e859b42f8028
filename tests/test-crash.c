/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-crash.c - kills: a writer SIGKILLed at chosen steps of a commit and
 * of a compaction, readers SIGKILLed while they hold chunks, and sigillod
 * SIGKILLed under load and restarted from its fd store.  Everything is
 * real: the sigillod binary ($SIGILLOD), memfds, sockets and seals; the
 * writer is stopped at its kill point under ptrace (test-ptrace.c).
 *
 * Every chunk is self-describing: 16 bytes of (id, generation), then a
 * pattern seeded by both, so a reader checks any chunk byte for byte and
 * knows which write it came from.
 *
 * What it proves:
 *  - writer_killed: an area published PERSIST to sigillod, written by a
 *    chain of writer processes, each of which takes the area over from the
 *    previous one, commits, and is then SIGKILLed at one step of an
 *    operation: a commit in the open segment, a commit that spills into a
 *    new segment, a commit that seals (every commit sealed), and a
 *    compaction.  Kill points: every syscall stop of the operation (entry
 *    and exit, PTRACE_SYSCALL) and instructions drawn at random over its
 *    whole instruction stream (seeded; CRASH_SEED, CRASH_RANDOM).  After
 *    each kill the next writer takes the area over, and a fresh STRICT
 *    reader of the daemon sees every chunk committed before the kill
 *    intact, the interrupted operation wholly or not at all, and nothing
 *    else; a reader that stayed subscribed all along streams only intact
 *    chunks and the chunks it holds never change.  At the end the daemon
 *    holds no descriptor beyond the area's (control page and live
 *    segments) and exits 0 (under a sanitizer: leaks nothing), and the
 *    test process has its descriptors back.
 *  - host_killed: the same kill points for a writer serving its area with
 *    an embedded host (the area ends with it): its TRUSTED and STRICT
 *    readers, which hold every chunk, keep those intact, see the
 *    interrupted operation wholly or not at all (STRICT: where the
 *    commits are sealed ones), stream only intact chunks and give back
 *    every descriptor.  Under a sanitizer, the commit and the compaction
 *    only.  (This one runs as its own program, tests/test-crash-host: this
 *    file built with CRASH_HOST=1.)
 *  - reader_killed: reader processes connected to sigillod, holding every
 *    chunk mapped, are SIGKILLed one by one while the writer keeps
 *    committing, updating, deleting and compacting (retiring the segments
 *    they held); the daemon's descriptors return to its baseline plus the
 *    area's, the writer holds one per live segment, both return to their
 *    baseline once the writer is gone, and a reader that lives on keeps
 *    every chunk it holds intact and reads the whole area right.
 *  - daemon_killed: sigillod SIGKILLed while a writer commits continuously
 *    and readers read; the writer goes on committing without it;
 *    restarted with the descriptors it put in the fd store (the test plays
 *    the service manager), it serves the PERSIST area with every chunk up
 *    to a checkpoint the daemon had served (and possibly later ones, never
 *    any the writer did not write) intact; a new writer takes the area
 *    over and continues; the readers reconnect and see everything; the
 *    restarted daemon holds no descriptor beyond the area's.
 *
 * Each test prints a summary line with its counts (kills, steps, chunks
 * verified).  Under a sanitizer the kills are fewer (SANITIZED).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sigillo.h"
#include "fdpass.h"
#include "test-proc.h"
#include "test-ptrace.h"
#include "test-sigillod.h"
#include "test-util.h"

#ifndef CRASH_HOST
#define CRASH_HOST 0
#endif


#define SEG_SIZE (16 * 1024)
#define N_IDS 8
#define BIG 7000
#define HDR 16

/* Under a sanitizer every step costs several: fewer kills there. */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif
/* random kills per operation */
#if SANITIZED
#define N_RANDOM 2
#endif
#ifndef N_RANDOM
#define N_RANDOM 12
#endif

enum { H_CLAIMED = H_LOCAL, H_OPDONE, H_PROGRESS };

/* ============================================================ payloads === */

static size_t chunk_size(uint64_t id, uint64_t gen) {
        return HDR + (size_t)((id * 53 + gen * 29) % 400);
}

static uint8_t pat(uint64_t id, uint64_t gen, size_t i) {
        return (uint8_t)((id * 0x9e37u + gen * 0x85ebu + i * 0x2fu) ^ (i >> 8));
}

static void payload_fill(uint8_t *p, size_t size, uint64_t id, uint64_t gen) {
        memcpy(p, &id, 8);
        memcpy(p + 8, &gen, 8);
        for (size_t i = HDR; i < size; i++)
                p[i] = pat(id, gen, i);
}

/* The generation of an intact chunk, or 0 if its bytes are not what the
 * writer wrote for its id. */
static uint64_t payload_gen(const sgl_chunk *c) {
        const uint8_t *p = sgl_chunk_data(c);
        size_t size = sgl_chunk_size(c);
        uint64_t id, gen;

        if (size < HDR)
                return 0;
        memcpy(&id, p, 8);
        memcpy(&gen, p + 8, 8);
        if (id != sgl_chunk_id(c) || gen == 0)
                return 0;
        for (size_t i = HDR; i < size; i++)
                if (p[i] != pat(id, gen, i))
                        return 0;
        return gen;
}

static int put(sgl_writer *w, uint64_t id, uint64_t gen, size_t size) {
        void *data;
        int k = sgl_writer_alloc(w, id, 0, size, &data, NULL);

        if (k >= 0)
                payload_fill(data, size, id, gen);
        return k;
}

/* ============================================================== daemon === */

/* Descriptors the daemon holds for one area without readers: its control
 * page and each live segment; @nsegs as a fresh reader counts them. */
static unsigned area_fds(const char *address, const char *name) {
        sgl_reader *r = NULL;
        int n;

        assert_int_equal(sgl_reader_open(name, address, 0, &r), 0);
        n = sgl_reader_get_segment_count(r);
        assert_true(n >= 0);
        sgl_reader_unref(r);
        return 1 + (unsigned)n;
}

/* ==================================================== the writer chain === */

enum { OP_BATCH, OP_SPILL, OP_SEAL, OP_GC, _OP_MAX };

static const char *const op_name[_OP_MAX] = {
        "commit", "commit spilling into a new segment", "commit that seals", "compaction",
};

struct wparams {
        int sock;
        int other;
        const char *address;
        int op;
        uint64_t gen;      /* the pre-commit writes gen, the operation gen + 1 */
};

/* Takes the area over (or creates it), retrying while the daemon still
 * holds the lease of the writer killed just before. */
static int claim_as(const char *address, const char *name, sgl_writer **ret) {
        int64_t deadline = mono_usec() + 10 * 1000000LL;
        int k;

        for (;;) {
                sgl_writer *w = NULL;

                k = sgl_writer_new(name, 0, &w);
                if (k < 0)
                        return k;
                (void)sgl_writer_set_segment_size(w, SEG_SIZE);
                (void)sgl_writer_set_gc(w, 0, 0, 0);
                k = sgl_writer_publish(w, name, address, SGL_PUBLISH_PERSIST, 0444,
                                       NULL, 0, NULL, 0);
                if (k == 0) {
                        *ret = w;
                        return 0;
                }
                sgl_writer_unref(w);
                if (k != -EBUSY || mono_usec() > deadline)
                        return k;
                usleep(2000);
        }
}

/* The payloads of the operation, built before it is stepped, so that the
 * steps are the library's. */
struct op_bufs {
        uint8_t *b[N_IDS + 1];
        size_t n[N_IDS + 1];
};

static int op_bufs_build(struct op_bufs *ob, int op, uint64_t gen) {
        for (uint64_t id = 2; id <= N_IDS - 1; id++) {
                ob->n[id] = op == OP_SPILL && id == 2 ? BIG : chunk_size(id, gen);
                ob->b[id] = malloc(ob->n[id]);
                if (!ob->b[id])
                        return -ENOMEM;
                payload_fill(ob->b[id], ob->n[id], id, gen);
        }
        return 0;
}

static void op_bufs_free(struct op_bufs *ob) {
        for (uint64_t id = 0; id <= N_IDS; id++)
                free(ob->b[id]);
}

/* The operation that gets killed. */
static int run_op(sgl_writer *w, int op, const struct op_bufs *ob) {
        int k = 0;

        switch (op) {
        case OP_BATCH:
        case OP_SEAL:
                /* updates, a delete: one batch */
                for (uint64_t id = 2; id <= N_IDS - 1 && k >= 0; id++)
                        k = sgl_writer_write(w, id, 0, ob->b[id], ob->n[id], NULL);
                if (k >= 0)
                        k = sgl_writer_delete(w, 1);
                if (k >= 0)
                        k = sgl_writer_commit(w);
                return k;
        case OP_SPILL:
                k = sgl_writer_write(w, 2, 0, ob->b[2], ob->n[2], NULL);
                if (k >= 0)
                        k = sgl_writer_write(w, 3, 0, ob->b[3], ob->n[3], NULL);
                if (k >= 0)
                        k = sgl_writer_commit(w);
                return k;
        default:
                return sgl_writer_gc(w);
        }
}

static int chain_writer(void *userdata) {
        const struct wparams *p = userdata;
        struct op_bufs ob = { { 0 } };
        sgl_writer *w = NULL;
        int k;

        close(p->other);
        k = claim_as(p->address, "crash", &w);
        TU_CHILD_CHECK(hsend(p->sock, H_CLAIMED, (uint64_t)(int64_t)k, 0, -1) == 0);
        TU_CHILD_CHECK(k == 0);
        tp_mark(); /* the test checks what the killed writer left */

        /* every id, so that all older segments are garbage; id 1 big for a
         * spill */
        TU_CHILD_CHECK(sgl_writer_set_seal_policy(w, p->op == OP_SEAL || p->op == OP_GC ?
                                                  SGL_SEAL_EVERY_COMMIT : SGL_SEAL_WHEN_FULL, 0) == 0);
        for (uint64_t id = 1; id <= N_IDS; id++)
                TU_CHILD_CHECK(put(w, id, p->gen, id == 1 && p->op == OP_SPILL ?
                                   BIG : chunk_size(id, p->gen)) == 0);
        TU_CHILD_CHECK(sgl_writer_commit(w) == 0);
        TU_CHILD_CHECK(sgl_writer_gc(w) >= 0);
        if (p->op == OP_GC) {
                /* half of the segment just sealed becomes garbage */
                for (uint64_t id = 1; id <= N_IDS / 2; id++)
                        TU_CHILD_CHECK(put(w, id, p->gen, chunk_size(id, p->gen)) == 0);
                TU_CHILD_CHECK(sgl_writer_commit(w) == 0);
        }
        TU_CHILD_CHECK(sgl_writer_publish_process(w) >= 0);
        TU_CHILD_CHECK(op_bufs_build(&ob, p->op, p->gen + 1) == 0);
        TU_CHILD_CHECK(hsend(p->sock, H_OPDONE, 0, 0, -1) == 0);

        tp_mark();
        k = run_op(w, p->op, &ob);
        (void)sgl_writer_publish_process(w);
        tp_mark();
        op_bufs_free(&ob);
        TU_CHILD_CHECK(k >= 0);
        if (p->op == OP_GC)
                TU_CHILD_CHECK(k > 0);
        /* exits without a word to the daemon, as if killed */
        return 0;
}

/* What the area holds: the generation of each id (0: none). */
struct state {
        uint64_t gen[N_IDS + 1];
};

/* The area after a writer's pre-commit of @gen: every id at @gen. */
static struct state state_pre(uint64_t gen) {
        struct state s = { { 0 } };

        for (uint64_t id = 1; id <= N_IDS; id++)
                s.gen[id] = gen;
        return s;
}

/* ... and after its operation @op (which writes @gen). */
static struct state state_op(const struct state *pre, int op, uint64_t gen) {
        struct state s = *pre;

        switch (op) {
        case OP_BATCH:
        case OP_SEAL:
                for (uint64_t id = 2; id <= N_IDS - 1; id++)
                        s.gen[id] = gen;
                s.gen[1] = 0;
                break;
        case OP_SPILL:
                s.gen[2] = s.gen[3] = gen;
                break;
        default:
                break;
        }
        return s;
}

/* What a fresh reader of the daemon sees, every chunk checked. */
static struct state observe(const char *address, unsigned flags, uint64_t *chunks) {
        struct state s = { { 0 } };
        sgl_reader *r = NULL;
        int k;

        k = sgl_reader_open("crash", address, flags, &r);
        if (k < 0)
                fail_msg("sgl_reader_open: %s", strerror(-k));
        for (uint64_t id = 1; id <= N_IDS; id++) {
                sgl_chunk *c = NULL;

                k = sgl_reader_get(r, id, &c);
                if (k == -ENOENT)
                        continue;
                assert_int_equal(k, 0);
                s.gen[id] = payload_gen(c);
                if (s.gen[id] == 0)
                        fail_msg("id %" PRIu64 ": bytes nobody wrote", id);
                (*chunks)++;
                sgl_chunk_unref(c);
        }
        sgl_reader_unref(r);
        return s;
}

static void print_state(const char *what, const struct state *s) {
        fprintf(stderr, "%s:", what);
        for (uint64_t id = 1; id <= N_IDS; id++)
                fprintf(stderr, " %" PRIu64, s->gen[id]);
        fprintf(stderr, "\n");
}

/* A reader subscribed all along: streams, holds the last chunks. */
#define HOLD 64
struct follower {
        sgl_reader *r;
        sgl_chunk *held[HOLD];
        uint64_t held_gen[HOLD];
        size_t next;
        uint64_t streamed;
};

static void follow(struct follower *f, uint64_t max_gen) {
        sgl_chunk *c;
        int k;

        if (!f->r)
                return;
        (void)sgl_reader_process(f->r);
        while ((k = sgl_reader_next(f->r, &c)) == 0) {
                uint64_t gen = payload_gen(c);

                assert_true(gen != 0 && gen <= max_gen);
                f->streamed++;
                sgl_chunk_unref(f->held[f->next]);
                f->held[f->next] = c;
                f->held_gen[f->next] = gen;
                f->next = (f->next + 1) % HOLD;
        }
        assert_int_equal(k, -EAGAIN);
        for (size_t i = 0; i < HOLD; i++)
                if (f->held[i])
                        assert_int_equal(payload_gen(f->held[i]), f->held_gen[i]);
}

struct kill_stats {
        unsigned kills, completed, syscall_kills, insn_kills;
        uint64_t steps, chunks;
};

/*
 * One writer of the chain: takes over, is checked against what the one
 * before left (@before or @after: the interrupted operation wholly or not),
 * commits its pre-commit, then runs @op, stepped @how up to @at stops (0:
 * to its end) and SIGKILLed there.  Returns the stops it took (at most @at).
 */
static uint64_t one_writer(const struct daemon *dm, struct follower *f, int op, int how,
                           uint64_t at, uint64_t *gen, struct state *before,
                           struct state *after, struct kill_stats *ks) {
        struct wparams p = { .address = dm->sock, .op = op, .gen = *gen + 1 };
        struct state seen;
        struct hmsg m;
        uint64_t stops = 0;
        int sv[2], k, status;
        pid_t pid;

        tu_socketpair(sv);
        p.sock = sv[1];
        p.other = sv[0];
        pid = tp_spawn(chain_writer, &p);
        close(sv[1]);
        assert_int_equal(hrecv(sv[0], H_CLAIMED, &m, NULL), 0);
        if ((int64_t)m.a != 0)
                fail_msg("takeover: %s", strerror((int)-(int64_t)m.a));

        /* what the writer killed before left, the same at both levels */
        seen = observe(dm->sock, 0, &ks->chunks);
        {
                struct state trusted = observe(dm->sock, SGL_READER_TRUSTED, &ks->chunks);

                assert_memory_equal(&trusted, &seen, sizeof(seen));
        }
        if (memcmp(&seen, before, sizeof(seen)) != 0 && memcmp(&seen, after, sizeof(seen)) != 0) {
                print_state("seen", &seen);
                print_state("before", before);
                print_state("after", after);
                fail_msg("the area is neither before nor after the interrupted operation");
        }
        follow(f, *gen);

        assert_true(tp_cont(pid, NULL));
        assert_int_equal(hrecv(sv[0], H_OPDONE, &m, NULL), 0);
        *before = state_pre(p.gen);
        *after = state_op(before, op, p.gen + 1);
        *gen = p.gen + 1;

        for (;;) {
                if (at && stops == at) {
                        tp_kill(pid);
                        ks->kills++;
                        if (how == TP_SYSCALL)
                                ks->syscall_kills++;
                        else
                                ks->insn_kills++;
                        break;
                }
                k = tp_step(pid, how, &status);
                if (k == TP_MARK) {
                        /* the operation returned: it must be visible */
                        *before = *after;
                        assert_false(tp_cont(pid, &status));
                        assert_true(WIFEXITED(status));
                        assert_int_equal(WEXITSTATUS(status), 0);
                        ks->completed++;
                        break;
                }
                assert_int_equal(k, TP_STEP);
                stops++;
                ks->steps++;
        }
        close(sv[0]);
        return stops;
}

static void writer_killed(void **state) {
        const char *env_seed = getenv("CRASH_SEED"), *env_random = getenv("CRASH_RANDOM");
        uint64_t seed = env_seed ? strtoull(env_seed, NULL, 0) : (uint64_t)time(NULL);
        unsigned n_random = env_random ? (unsigned)atoi(env_random) : N_RANDOM;
        struct kill_stats ks = { 0 };
        struct state before = { { 0 } }, after = { { 0 } };
        struct follower f = { 0 };
        struct daemon dm;
        uint64_t gen = 0, rs = seed;
        unsigned fds = tu_count_fds(), base;

        (void)state;
        if (!tp_available())
                skip();
        printf("writer_killed: seed %" PRIu64 " (CRASH_SEED), %u random kills per operation\n",
               seed, n_random);
        daemon_init(&dm);
        daemon_start(&dm, NULL);
        base = daemon_baseline(&dm);

        /* the area exists before the follower joins */
        one_writer(&dm, &f, OP_BATCH, TP_SYSCALL, 0, &gen, &before, &after, &ks);
        assert_int_equal(sgl_reader_open("crash", dm.sock, 0, &f.r), 0);

        for (int op = 0; op < _OP_MAX; op++) {
                unsigned kills = ks.kills;
                uint64_t n_sys, n_insn;

                /* how many syscall stops and instructions it takes */
                n_sys = one_writer(&dm, &f, op, TP_SYSCALL, 0, &gen, &before, &after, &ks);
                n_insn = one_writer(&dm, &f, op, TP_INSN, 0, &gen, &before, &after, &ks);
                for (uint64_t at = 1; at <= n_sys; at++)
                        one_writer(&dm, &f, op, TP_SYSCALL, at, &gen, &before, &after, &ks);
                for (unsigned i = 0; i < n_random; i++)
                        one_writer(&dm, &f, op, TP_INSN, 1 + rng(&rs) % n_insn, &gen, &before,
                                   &after, &ks);
                printf("writer_killed: %s: %" PRIu64 " syscall stops, %" PRIu64
                       " instructions, %u kills\n", op_name[op], n_sys, n_insn, ks.kills - kills);
        }
        /* the last one is checked by a writer that completes */
        one_writer(&dm, &f, OP_BATCH, TP_SYSCALL, 0, &gen, &before, &after, &ks);
        follow(&f, gen);
        assert_true(f.streamed > 0);
        for (size_t i = 0; i < HOLD; i++)
                sgl_chunk_unref(f.held[i]);
        sgl_reader_unref(f.r);

        /* the daemon holds the area and nothing else */
        daemon_wait_fds(&dm, base + area_fds(dm.sock, "crash"));
        daemon_stop(&dm);
        assert_int_equal(tu_count_fds(), fds);
        printf("writer_killed: %u kills (%u at syscall stops, %u at random instructions), "
               "%u operations completed, %" PRIu64 " steps, %" PRIu64
               " chunks verified after takeovers, %" PRIu64 " streamed by a reader subscribed "
               "throughout\n", ks.kills, ks.syscall_kills, ks.insn_kills, ks.completed,
               ks.steps, ks.chunks, f.streamed);
}

/* ================================================ embedded host killed === */

/* A writer with its own embedded host (the area ends with it): base
 * commits, then it serves readers until H_GO, then runs @op, stepped. */
static int host_writer(void *userdata) {
        const struct wparams *p = userdata;
        struct op_bufs ob = { { 0 } };
        sgl_writer *w = NULL;
        sgl_host *h = NULL;
        int k;

        close(p->other);
        TU_CHILD_CHECK(sgl_writer_new("hosted", 0, &w) == 0);
        TU_CHILD_CHECK(sgl_writer_set_segment_size(w, SEG_SIZE) == 0);
        TU_CHILD_CHECK(sgl_writer_set_gc(w, 0, 0, 0) == 0);
        TU_CHILD_CHECK(sgl_writer_set_seal_policy(w, p->op == OP_GC || p->op == OP_SEAL ?
                                                  SGL_SEAL_EVERY_COMMIT : SGL_SEAL_WHEN_FULL, 0) == 0);
        TU_CHILD_CHECK(sgl_host_new(w, p->address, &h) == 0);
        for (uint64_t id = 1; id <= N_IDS; id++)
                TU_CHILD_CHECK(put(w, id, p->gen, id == 1 && p->op == OP_SPILL ?
                                   BIG : chunk_size(id, p->gen)) == 0);
        TU_CHILD_CHECK(sgl_writer_commit(w) == 0);
        if (p->op == OP_GC) {
                for (uint64_t id = 1; id <= N_IDS / 2; id++)
                        TU_CHILD_CHECK(put(w, id, p->gen, chunk_size(id, p->gen)) == 0);
                TU_CHILD_CHECK(sgl_writer_commit(w) == 0);
        }
        TU_CHILD_CHECK(op_bufs_build(&ob, p->op, p->gen + 1) == 0);
        tp_mark(); /* the host is up */

        for (;;) {
                struct pollfd pf[2] = { { .fd = sgl_host_get_fd(h), .events = POLLIN },
                                        { .fd = p->sock, .events = POLLIN } };
                struct hmsg m;

                TU_CHILD_CHECK(poll(pf, 2, 10000) > 0);
                TU_CHILD_CHECK(sgl_host_process(h) >= 0);
                if (pf[1].revents) {
                        TU_CHILD_CHECK(hrecv(p->sock, H_GO, &m, NULL) == 0);
                        break;
                }
        }
        tp_mark();
        k = run_op(w, p->op, &ob);
        tp_mark();
        TU_CHILD_CHECK(k >= 0);
        op_bufs_free(&ob);
        sgl_host_unref(h);
        sgl_writer_unref(w);
        return 0;
}

/* What @r sees now (every chunk checked). */
static struct state view_of(sgl_reader *r) {
        struct state s = { { 0 } };

        for (uint64_t id = 1; id <= N_IDS; id++) {
                sgl_chunk *c = NULL;
                int k = sgl_reader_get(r, id, &c);

                if (k == -ENOENT)
                        continue;
                assert_int_equal(k, 0);
                s.gen[id] = payload_gen(c);
                assert_true(s.gen[id] != 0);
                sgl_chunk_unref(c);
        }
        return s;
}

/*
 * One hosted writer, killed at stop @at of @op (0: never): its TRUSTED
 * and STRICT readers, which hold every chunk, keep them intact, see the
 * operation wholly or not at all, and give back every descriptor.
 */
static uint64_t one_hosted(int op, int how, uint64_t at, unsigned n, struct kill_stats *ks) {
        struct wparams p = { .op = op, .gen = 1 };
        const bool sealed = op == OP_GC || op == OP_SEAL; /* every commit */
        struct state before, after;
        sgl_reader *r[2] = { NULL, NULL };
        sgl_chunk *held[2][N_IDS];
        size_t n_held[2] = { 0, 0 };
        char address[64];
        uint64_t stops = 0;
        int sv[2], k, status;
        unsigned fds = tu_count_fds();
        pid_t pid;

        snprintf(address, sizeof(address), "@sigillo-test-crash-%d-%u", (int)getpid(), n);
        p.address = address;
        tu_socketpair(sv);
        p.sock = sv[1];
        p.other = sv[0];
        pid = tp_spawn(host_writer, &p);
        close(sv[1]);
        before = state_pre(p.gen);
        after = state_op(&before, op, p.gen + 1);

        /* the readers join while the writer serves them */
        tp_run(pid);
        for (int i = 0; i < 2; i++) {
                sgl_chunk *c;

                k = sgl_reader_open("hosted", address, i ? 0 : SGL_READER_TRUSTED, &r[i]);
                if (k < 0)
                        fail_msg("sgl_reader_open: %s", strerror(-k));
                while ((k = sgl_reader_next(r[i], &c)) == 0) {
                        assert_true(n_held[i] < N_IDS);
                        assert_int_equal(payload_gen(c), p.gen);
                        held[i][n_held[i]++] = c;
                }
                assert_int_equal(k, -EAGAIN);
                /* a STRICT reader has nothing of an open segment */
                assert_int_equal(n_held[i], i == 1 && !sealed ? 0 : N_IDS);
        }
        assert_int_equal(hsend(sv[0], H_GO, 0, 0, -1), 0);
        assert_true(tp_wait_mark(pid, NULL));

        for (;;) {
                if (at && stops == at) {
                        tp_kill(pid);
                        ks->kills++;
                        break;
                }
                k = tp_step(pid, how, &status);
                if (k == TP_MARK) {
                        assert_false(tp_cont(pid, &status));
                        assert_true(WIFEXITED(status));
                        assert_int_equal(WEXITSTATUS(status), 0);
                        before = after;
                        ks->completed++;
                        break;
                }
                assert_int_equal(k, TP_STEP);
                stops++;
                ks->steps++;
        }
        close(sv[0]);

        /* the writer and its host are gone; the readers are not */
        for (int i = 0; i < 2; i++) {
                struct state seen;
                sgl_chunk *c;

                (void)sgl_reader_process(r[i]);
                seen = view_of(r[i]);
                if (memcmp(&seen, &before, sizeof(seen)) != 0 &&
                    memcmp(&seen, &after, sizeof(seen)) != 0 &&
                    /* a STRICT reader may lag the open segment's commits */
                    !(i == 1 && !sealed)) {
                        print_state("seen", &seen);
                        print_state("before", &before);
                        print_state("after", &after);
                        fail_msg("%s reader: neither before nor after", i ? "STRICT" : "TRUSTED");
                }
                while ((k = sgl_reader_next(r[i], &c)) == 0) {
                        assert_true(payload_gen(c) != 0);
                        sgl_chunk_unref(c);
                }
                assert_int_equal(k, -EAGAIN);
                for (size_t j = 0; j < n_held[i]; j++) {
                        assert_int_equal(payload_gen(held[i][j]), p.gen);
                        sgl_chunk_unref(held[i][j]);
                        ks->chunks++;
                }
                assert_null(sgl_reader_unref(r[i]));
        }
        assert_int_equal(tu_count_fds(), fds);
        return stops;
}

static void host_killed(void **state) {
        const char *env_seed = getenv("CRASH_SEED");
        uint64_t seed = env_seed ? strtoull(env_seed, NULL, 0) : (uint64_t)time(NULL), rs;
        struct kill_stats ks = { 0 };
        unsigned n = 0;

        (void)state;
        if (!tp_available())
                skip();
        rs = seed;
        for (int op = 0; op < _OP_MAX; op++) {
                uint64_t n_sys, n_insn;

                /* the commit and the compaction only, under a sanitizer */
                if (SANITIZED && (op == OP_SPILL || op == OP_SEAL))
                        continue;
                n_sys = one_hosted(op, TP_SYSCALL, 0, n++, &ks);
                n_insn = one_hosted(op, TP_INSN, 0, n++, &ks);

                for (uint64_t at = 1; at <= n_sys; at++)
                        one_hosted(op, TP_SYSCALL, at, n++, &ks);
                for (unsigned i = 0; i < N_RANDOM / 2; i++)
                        one_hosted(op, TP_INSN, 1 + rng(&rs) % n_insn, n++, &ks);
        }
        printf("host_killed: seed %" PRIu64 ", %u writers with an embedded host SIGKILLed "
               "(%u operations completed), %" PRIu64 " steps; %" PRIu64 " chunks held by "
               "their readers intact, every descriptor back\n",
               seed, ks.kills, ks.completed, ks.steps, ks.chunks);
}

/* ====================================================== readers killed === */

enum { H_OPEN = H_LOCAL + 10, H_HELD, H_CHECK, H_CHECKED };

#define RK_IDS 16

struct rctx {
        int sock;
        const char *address;
        const char *name;
};

/* A reader process: on H_OPEN opens the area, streams and holds every
 * chunk (H_HELD: how many); on H_CHECK (a: the generation every id must
 * reach, b: ids) checks what it holds and waits for the area to get
 * there (H_CHECKED: a: held chunks intact, b: chunks verified).  The
 * victims are killed while they hold. */
static int reader_child(void *userdata) {
        const struct rctx *ctx = userdata;
        sgl_chunk *held[4096];
        uint64_t held_gen[4096];
        size_t n_held = 0;
        sgl_reader *r = NULL;
        struct hmsg m;
        sgl_chunk *c;
        int k;

        TU_CHILD_CHECK(hrecv(ctx->sock, H_OPEN, &m, NULL) == 0);
        TU_CHILD_CHECK(sgl_reader_open(ctx->name, ctx->address, 0, &r) == 0);
        while ((k = sgl_reader_next(r, &c)) == 0) {
                TU_CHILD_CHECK(n_held < 4096);
                held_gen[n_held] = payload_gen(c);
                TU_CHILD_CHECK(held_gen[n_held] != 0);
                held[n_held++] = c;
        }
        TU_CHILD_CHECK(k == -EAGAIN);
        TU_CHILD_CHECK(hsend(ctx->sock, H_HELD, n_held, 0, -1) == 0);

        TU_CHILD_CHECK(hrecv(ctx->sock, H_CHECK, &m, NULL) == 0);
        {
                int64_t deadline = mono_usec() + 10 * 1000000LL;
                uint64_t intact = 0, verified = 0;
                bool there = false;

                for (size_t i = 0; i < n_held; i++)
                        intact += payload_gen(held[i]) == held_gen[i];
                while (!there && mono_usec() < deadline) {
                        struct pollfd p = { .fd = sgl_reader_get_fd(r), .events = POLLIN };

                        TU_CHILD_CHECK(sgl_reader_process(r) >= 0);
                        while ((k = sgl_reader_next(r, &c)) == 0) {
                                TU_CHILD_CHECK(payload_gen(c) != 0);
                                sgl_chunk_unref(c);
                        }
                        TU_CHILD_CHECK(k == -EAGAIN);
                        there = true;
                        verified = 0;
                        for (uint64_t id = 1; id <= m.b && there; id++) {
                                there = sgl_reader_get(r, id, &c) == 0 && payload_gen(c) == m.a;
                                if (there)
                                        verified++;
                                sgl_chunk_unref(there ? c : NULL);
                        }
                        if (!there)
                                (void)poll(&p, 1, 100);
                }
                TU_CHILD_CHECK(there);
                TU_CHILD_CHECK(hsend(ctx->sock, H_CHECKED, intact, verified, -1) == 0);
        }
        for (size_t i = 0; i < n_held; i++)
                sgl_chunk_unref(held[i]);
        sgl_reader_unref(r);
        return 0;
}

static void commit_all(sgl_writer *w, uint64_t gen, uint64_t n) {
        for (uint64_t id = 1; id <= n; id++) {
                assert_int_equal(put(w, id, gen, chunk_size(id, gen)), 0);
                if (id % 4 == 0)
                        assert_int_equal(sgl_writer_commit(w), 0);
        }
        assert_int_equal(sgl_writer_commit(w), 0);
        assert_true(sgl_writer_publish_process(w) >= 0);
}

static void reader_killed(void **state) {
        enum { N_READERS = 4, N_VICTIMS = 3 };
        struct rctx ctx[N_READERS];
        int socks[N_READERS];
        pid_t pids[N_READERS];
        struct daemon dm;
        sgl_writer *w = NULL;
        sgl_writer_stats st;
        struct hmsg m;
        unsigned base, fds, wfds;
        uint64_t held = 0, gen = 1, gc_retired = 0;
        int k;

        (void)state;
        daemon_init(&dm);
        daemon_start(&dm, NULL);
        base = daemon_baseline(&dm);
        fds = tu_count_fds();
        /* readers first: none may inherit the writer's mappings */
        for (int i = 0; i < N_READERS; i++) {
                ctx[i] = (struct rctx) { .address = dm.sock, .name = "held" };
                pids[i] = fork_with_socket(reader_child, &ctx[i], &ctx[i].sock, &socks[i]);
        }

        assert_int_equal(sgl_writer_new("held", 0, &w), 0);
        assert_int_equal(sgl_writer_set_seal_policy(w, SGL_SEAL_BYTES, 4096), 0);
        assert_int_equal(sgl_writer_set_gc(w, 30, 0, 0), 0);
        assert_int_equal(sgl_writer_publish(w, "held", dm.sock, 0, 0444, NULL, 0, NULL, 0), 0);
        wfds = tu_count_fds();
        commit_all(w, gen, RK_IDS);
        assert_int_equal(sgl_writer_seal(w), 0);
        assert_true(sgl_writer_publish_process(w) >= 0);

        /* they all hold every chunk; then the victims die */
        for (int i = 0; i < N_READERS; i++) {
                assert_int_equal(hsend(socks[i], H_OPEN, 0, 0, -1), 0);
                parent_recv(socks[i], H_HELD, &m, NULL, pids, N_READERS);
                assert_int_equal(m.a, RK_IDS);
                held += m.a;
        }

        /* the writer goes on: updates, deletes, compaction; a victim dies
         * at the start of each of the first rounds, holding chunks of
         * segments compaction then retires */
        for (int round = 0; round < 6; round++) {
                if (round < N_VICTIMS) {
                        assert_int_equal(kill(pids[round], SIGKILL), 0);
                        assert_true(WIFSIGNALED(tu_wait_status(pids[round])));
                        pids[round] = 0;
                        close(socks[round]);
                }
                gen++;
                commit_all(w, gen, RK_IDS);
                assert_int_equal(sgl_writer_delete(w, 1 + (uint64_t)round), 0);
                assert_int_equal(sgl_writer_commit(w), 0);
                assert_int_equal(put(w, 1 + (uint64_t)round, gen, chunk_size(1 + (uint64_t)round, gen)), 0);
                assert_int_equal(sgl_writer_commit(w), 0);
                k = sgl_writer_gc(w);
                assert_true(k >= 0);
                gc_retired += (uint64_t)k;
        }
        assert_int_equal(sgl_writer_seal(w), 0);
        assert_true(gc_retired > 0);
        assert_true(sgl_writer_publish_process(w) >= 0);

        /* the survivor kept its chunks and reads everything */
        assert_int_equal(hsend(socks[N_VICTIMS], H_CHECK, gen, RK_IDS, -1), 0);
        parent_recv(socks[N_VICTIMS], H_CHECKED, &m, NULL, pids, N_READERS);
        assert_int_equal(m.a, RK_IDS);
        assert_int_equal(m.b, RK_IDS);
        wait_children(pids, N_READERS);
        close(socks[N_VICTIMS]);

        /* the daemon: the writer's connection, the control page and the
         * live segments, nothing of any reader */
        assert_int_equal(sgl_writer_get_stats(w, &st), 0);
        /* the writer: one descriptor per live (sealed) segment; the
         * readers' sockets are gone */
        assert_int_equal(tu_count_fds(), wfds - N_READERS + st.segments);
        daemon_wait_fds(&dm, base + 1 + area_fds(dm.sock, "held"));
        assert_null(sgl_writer_unref(w));
        daemon_wait_fds(&dm, base);
        assert_int_equal(tu_count_fds(), fds);
        daemon_stop(&dm);
        printf("reader_killed: %d readers SIGKILLed holding %" PRIu64 " chunks, %" PRIu64
               " segments retired under them, daemon back to %u descriptors, %u chunks "
               "held and %u read intact by the survivor\n", N_VICTIMS,
               held / N_READERS * N_VICTIMS, gc_retired, base, RK_IDS, RK_IDS);
}

/* ======================================================= daemon killed === */

#define DK_IDS 16

/* Which id generation @gen writes, and the generation of @id once the
 * writer committed 1 ... @last. */
static uint64_t dk_id(uint64_t gen) {
        return 1 + gen % DK_IDS;
}

static uint64_t dk_gen(uint64_t id, uint64_t last) {
        for (uint64_t g = last; g >= 1; g--)
                if (dk_id(g) == id)
                        return g;
        return 0;
}

enum { H_PAUSE = H_LOCAL + 20, H_PAUSED, H_RESUME, H_QUIT, H_QUITTED, H_LOST, H_RECONNECT };

/* Commits one chunk after another, publishing to the daemon, until
 * H_QUIT; pauses on H_PAUSE (H_PAUSED: a = last generation committed);
 * says H_PROGRESS once 16 * DK_IDS chunks are committed, and twice after
 * a pause, every 4 * DK_IDS chunks, still committing. */
static int load_writer(void *userdata) {
        const struct rctx *ctx = userdata;
        sgl_writer *w = NULL;
        uint64_t gen = 0, progress_at = 16 * DK_IDS;
        unsigned rearm = 0;

        TU_CHILD_CHECK(sgl_writer_new("load", 0, &w) == 0);
        TU_CHILD_CHECK(sgl_writer_set_seal_policy(w, SGL_SEAL_BYTES, 4096) == 0);
        TU_CHILD_CHECK(sgl_writer_publish(w, ctx->name, ctx->address, SGL_PUBLISH_PERSIST, 0444,
                                          NULL, 0, NULL, 0) == 0);
        TU_CHILD_CHECK(fcntl(ctx->sock, F_SETFL, O_NONBLOCK) == 0);
        for (;;) {
                struct hmsg m;
                int k = hrecv(ctx->sock, 0, &m, NULL);

                if (k == 0 && m.type == H_PAUSE) {
                        TU_CHILD_CHECK(hsend(ctx->sock, H_PAUSED, gen, 0, -1) == 0);
                        do
                                k = hrecv(ctx->sock, 0, &m, NULL);
                        while (k == -EAGAIN && (usleep(1000), true));
                        progress_at = gen + 4 * DK_IDS;
                        rearm = 1;
                }
                if (k == 0 && m.type == H_QUIT) {
                        TU_CHILD_CHECK(hsend(ctx->sock, H_QUITTED, gen, 0, -1) == 0);
                        sgl_writer_unref(w);
                        return 0;
                }
                TU_CHILD_CHECK(k == -EAGAIN || (k == 0 && m.type == H_RESUME));
                gen++;
                TU_CHILD_CHECK(put(w, dk_id(gen), gen, chunk_size(dk_id(gen), gen)) == 0);
                TU_CHILD_CHECK(sgl_writer_commit(w) == 0);
                /* the daemon may be gone: publishing ends, committing goes on */
                (void)sgl_writer_publish_process(w);
                if (gen == progress_at) {
                        TU_CHILD_CHECK(hsend(ctx->sock, H_PROGRESS, gen, 0, -1) == 0);
                        if (rearm > 0) {
                                rearm--;
                                progress_at = gen + 4 * DK_IDS;
                        }
                }
                usleep(500);
        }
}

/* Reads the area until H_QUIT (a: the generation every id must reach at
 * last); when the daemon goes, says H_LOST and reconnects on H_RECONNECT.
 * H_QUITTED: a = chunks verified, b = reconnections. */
static int load_reader(void *userdata) {
        const struct rctx *ctx = userdata;
        sgl_reader *r = NULL;
        uint64_t verified = 0, reconnects = 0, final = 0;
        int64_t deadline = 0;
        struct hmsg m;
        int k;

        TU_CHILD_CHECK(fcntl(ctx->sock, F_SETFL, O_NONBLOCK) == 0);
        for (;;) {
                struct pollfd p[2] = { { .fd = ctx->sock, .events = POLLIN } };
                sgl_chunk *c;
                bool lost = false;

                if (!r) {
                        TU_CHILD_CHECK(sgl_reader_open(ctx->name, ctx->address, 0, &r) == 0);
                }
                k = sgl_reader_process(r);
                lost = k < 0;
                while ((k = sgl_reader_next(r, &c)) == 0) {
                        TU_CHILD_CHECK(payload_gen(c) != 0);
                        verified++;
                        sgl_chunk_unref(c);
                }
                TU_CHILD_CHECK(k == -EAGAIN);
                if (final) {
                        bool there = true;

                        for (uint64_t id = 1; id <= DK_IDS && there; id++) {
                                there = sgl_reader_get(r, id, &c) == 0 && payload_gen(c) == final;
                                sgl_chunk_unref(there ? c : NULL);
                        }
                        if (there) {
                                TU_CHILD_CHECK(hsend(ctx->sock, H_QUITTED, verified, reconnects, -1) == 0);
                                sgl_reader_unref(r);
                                return 0;
                        }
                        TU_CHILD_CHECK(mono_usec() < deadline);
                }
                if (lost) {
                        /* the daemon is gone: what we hold stays, the
                         * connection does not */
                        r = sgl_reader_unref(r);
                        TU_CHILD_CHECK(hsend(ctx->sock, H_LOST, verified, 0, -1) == 0);
                        do
                                k = hrecv(ctx->sock, H_RECONNECT, &m, NULL);
                        while (k == -EAGAIN && (usleep(1000), true));
                        TU_CHILD_CHECK(k == 0);
                        reconnects++;
                        continue;
                }
                p[1] = (struct pollfd) { .fd = sgl_reader_get_fd(r), .events = POLLIN };
                (void)poll(p, 2, 50);
                k = hrecv(ctx->sock, 0, &m, NULL);
                if (k == 0) {
                        TU_CHILD_CHECK(m.type == H_QUIT);
                        final = m.a;
                        deadline = mono_usec() + 10 * 1000000LL;
                } else {
                        TU_CHILD_CHECK(k == -EAGAIN);
                }
        }
}

/* The daemon's descriptors, once the same count was seen twice 50 ms apart. */
static unsigned settled_fds(const struct daemon *dm) {
        unsigned a = daemon_fds(dm), b;

        for (;;) {
                usleep(50000);
                b = daemon_fds(dm);
                if (a == b)
                        return b;
                a = b;
        }
}

static void daemon_killed(void **state) {
        enum { N_READERS = 2 };
        struct rctx wctx, rctx[N_READERS];
        int wsock, rsock[N_READERS];
        pid_t pids[1 + N_READERS];
        struct daemon dm;
        struct store sm;
        sgl_reader *probe = NULL;
        sgl_writer *w = NULL;
        struct hmsg m;
        uint64_t checkpoint, last, final, verified = 0, chunks = 0;
        unsigned fds, nonarea;
        int fds_listen[STORE_MAX];
        char *names[STORE_MAX];
        size_t n = 0;
        int64_t deadline;
        bool there = false;

        (void)state;
        fds = tu_count_fds();
        daemon_init(&dm);
        store_open(&sm, &dm);
        dm.notify = sm.path;
        daemon_start(&dm, NULL);
        store_wait_ready(&sm, 1);

        wctx = (struct rctx) { .address = dm.sock, .name = "load" };
        pids[0] = fork_with_socket(load_writer, &wctx, &wctx.sock, &wsock);
        /* readers once the area exists */
        deadline = mono_usec() + 10 * 1000000LL;
        while (sgl_reader_open("load", dm.sock, 0, &probe) < 0) {
                assert_true(mono_usec() < deadline);
                usleep(10000);
        }
        probe = sgl_reader_unref(probe);
        for (int i = 0; i < N_READERS; i++) {
                rctx[i] = (struct rctx) { .address = dm.sock, .name = "load" };
                pids[1 + i] = fork_with_socket(load_reader, &rctx[i], &rctx[i].sock, &rsock[i]);
        }
        parent_recv(wsock, H_PROGRESS, &m, NULL, pids, 1 + N_READERS);

        /* a checkpoint: the daemon serves everything up to it */
        assert_int_equal(hsend(wsock, H_PAUSE, 0, 0, -1), 0);
        parent_recv(wsock, H_PAUSED, &m, NULL, pids, 1 + N_READERS);
        checkpoint = m.a;
        assert_true(checkpoint > DK_IDS);
        assert_int_equal(sgl_reader_open("load", dm.sock, SGL_READER_TRUSTED, &probe), 0);
        deadline = mono_usec() + 10 * 1000000LL;
        while (!there) {
                struct pollfd p = { .fd = sgl_reader_get_fd(probe), .events = POLLIN };

                assert_true(sgl_reader_process(probe) >= 0);
                there = true;
                for (uint64_t id = 1; id <= DK_IDS && there; id++) {
                        sgl_chunk *c = NULL;

                        there = sgl_reader_get(probe, id, &c) == 0 &&
                                payload_gen(c) == dk_gen(id, checkpoint);
                        sgl_chunk_unref(c);
                }
                if (!there) {
                        assert_true(mono_usec() < deadline);
                        (void)poll(&p, 1, 50);
                }
        }
        probe = sgl_reader_unref(probe);
        assert_int_equal(hsend(wsock, H_RESUME, 0, 0, -1), 0);
        parent_recv(wsock, H_PROGRESS, &m, NULL, pids, 1 + N_READERS);

        /* SIGKILL under load; everyone notices */
        assert_int_equal(kill(dm.pid, SIGKILL), 0);
        assert_true(WIFSIGNALED(tu_wait_status(dm.pid)));
        for (int i = 0; i < N_READERS; i++)
                parent_recv(rsock[i], H_LOST, &m, NULL, pids, 1 + N_READERS);
        /* the writer goes on committing, its daemon gone */
        parent_recv(wsock, H_PROGRESS, &m, NULL, pids, 1 + N_READERS);
        assert_int_equal(hsend(wsock, H_QUIT, 0, 0, -1), 0);
        parent_recv(wsock, H_QUITTED, &m, NULL, pids, 1 + N_READERS);
        last = m.a;
        assert_true(last > checkpoint);

        /* the service manager starts it again with what it stored */
        pthread_mutex_lock(&sm.lock);
        assert_true(sm.n > 0);
        for (size_t i = 0; i < sm.n; i++) {
                fds_listen[n] = fcntl(sm.fds[i], F_DUPFD_CLOEXEC, 3);
                assert_true(fds_listen[n] >= 0);
                names[n++] = strdup(sm.names[i]);
        }
        pthread_mutex_unlock(&sm.lock);
        dm.listen_fds = fds_listen;
        dm.listen_names = names;
        dm.n_listen = n;
        daemon_start(&dm, NULL);
        for (size_t i = 0; i < n; i++) {
                close(fds_listen[i]);
                free(names[i]);
        }
        dm.n_listen = 0;
        store_wait_ready(&sm, 2);

        /* every chunk up to the checkpoint, intact, and nothing newer than
         * the writer wrote */
        assert_int_equal(sgl_reader_open("load", dm.sock, 0, &probe), 0);
        for (uint64_t id = 1; id <= DK_IDS; id++) {
                sgl_chunk *c = NULL;
                uint64_t gen;

                assert_int_equal(sgl_reader_get(probe, id, &c), 0);
                gen = payload_gen(c);
                assert_true(gen >= dk_gen(id, checkpoint));
                assert_true(gen <= last && dk_id(gen) == id);
                sgl_chunk_unref(c);
                chunks++;
        }
        probe = sgl_reader_unref(probe);
        nonarea = settled_fds(&dm) - area_fds(dm.sock, "load");

        /* readers come back; a new writer takes over and goes on */
        for (int i = 0; i < N_READERS; i++)
                assert_int_equal(hsend(rsock[i], H_RECONNECT, 0, 0, -1), 0);
        final = last + 1000;
        assert_int_equal(claim_as(dm.sock, "load", &w), 0);
        for (uint64_t id = 1; id <= DK_IDS; id++)
                assert_int_equal(put(w, id, final, chunk_size(id, final)), 0);
        assert_int_equal(sgl_writer_commit(w), 0);
        assert_int_equal(sgl_writer_seal(w), 0);
        assert_true(sgl_writer_publish_process(w) >= 0);
        for (int i = 0; i < N_READERS; i++) {
                assert_int_equal(hsend(rsock[i], H_QUIT, final, 0, -1), 0);
                parent_recv(rsock[i], H_QUITTED, &m, NULL, pids, 1 + N_READERS);
                assert_int_equal(m.b, 1);
                verified += m.a;
        }
        wait_children(pids, 1 + N_READERS);
        close(wsock);
        for (int i = 0; i < N_READERS; i++)
                close(rsock[i]);
        sgl_writer_unref(w);

        /* the restarted daemon holds the area, nothing more */
        daemon_wait_fds(&dm, nonarea + area_fds(dm.sock, "load"));
        daemon_stop(&dm);
        STORE_WAIT(&sm, true); /* the store took everything without a fault */
        STORE_UNLOCK(&sm);
        store_close(&sm);
        assert_int_equal(tu_count_fds(), fds);
        printf("daemon_killed: 1 daemon SIGKILLed under load after %" PRIu64 " commits "
               "(checkpoint %" PRIu64 "), restarted from %zu stored descriptors; %" PRIu64
               " chunks verified after the restart, %" PRIu64 " streamed by %d readers that "
               "reconnected\n", last, checkpoint, n, chunks, verified, N_READERS);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(writer_killed),
                cmocka_unit_test(host_killed),
                cmocka_unit_test(reader_killed),
                cmocka_unit_test(daemon_killed),
        };

        signal(SIGPIPE, SIG_IGN);
        tu_watchdog(300);
        /* two programs, so that each stays short: test-crash-host is this
         * file built with CRASH_HOST=1, and runs host_killed alone */
        if (getenv("CRASH_TEST_FILTER"))
                cmocka_set_test_filter(getenv("CRASH_TEST_FILTER"));
        else if (CRASH_HOST)
                cmocka_set_test_filter("host_killed");
        else
                cmocka_set_skip_filter("host_killed");
        return cmocka_run_group_tests(tests, NULL, NULL);
}
