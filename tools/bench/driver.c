/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * driver.c - one measurement over any transport: fork the processes, set
 * up, run, verify, collect.
 *
 * The parent creates the transport (shared memory, socketpairs) and a
 * shared *board*, forks the writer (index 0) and the readers, and only
 * waits.  Every process stamps its memory footprint on the board before it
 * tears down.  A child that hangs is killed by its own alarm, which fails
 * the measurement instead of the run.
 *
 * Flow control: transports whose writer never blocks (sigillo, the sealed
 * memfd per message) get a credit window: the writer sends message i only
 * once every reader has released message i - window.  The writer then
 * flushes (seals what it batched) before it sleeps, as a user who batches
 * must.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define CHILD_ALARM_S 120

struct board {
        _Atomic uint32_t flags;          /* futex word: setup steps */
        _Atomic uint32_t ready;          /* readers that opened */
        struct waitq credit;             /* readers -> writer */
        _Atomic uint64_t consumed[BENCH_MAX_READERS];
        uint64_t bad[BENCH_MAX_READERS + 1];
        uint64_t checked[BENCH_MAX_READERS + 1];
        struct mem mem[BENCH_MAX_READERS + 1];
        double value, msgs;
        _Atomic int failed;
        char why[256];
};

enum {
        F_A_WRITER = 1u << 0, /* channel A's writer is open */
        F_B_WRITER = 1u << 1,
        F_A_READER = 1u << 2, /* channel A's reader(s) are open */
        F_B_READER = 1u << 3,
        F_GO = 1u << 4,
        F_DONE0 = 1u << 5,    /* ping-pong: process 0 read everything */
        F_DONE1 = 1u << 6,
};

static unsigned chan_ids;

/* the process's memory at its start, so the bench's own buffers (shared
 * with the parent since fork) do not count against a transport */
static struct mem mem_base;

static void mem_mark(struct mem *m) {
        struct mem now;

        mem_self(&now);
        m->rss = now.rss > mem_base.rss ? now.rss - mem_base.rss : 0;
        m->pss = now.pss > mem_base.pss ? now.pss - mem_base.pss : 0;
        m->shared = now.shared > mem_base.shared ? now.shared - mem_base.shared : 0;
}

static void fail(struct board *b, const char *fmt, ...) {
        va_list ap;
        int expected = 0;

        if (!atomic_compare_exchange_strong(&b->failed, &expected, 1))
                return;
        va_start(ap, fmt);
        vsnprintf(b->why, sizeof(b->why), fmt, ap);
        va_end(ap);
}

static void set_flag(struct board *b, uint32_t f) {
        atomic_fetch_or(&b->flags, f);
        futex_wake_all(&b->flags);
}

/* Waits for @f, serving @serve_chan's readers meanwhile (setup only). */
static int wait_flag(struct board *b, uint32_t f, struct chan *serve_chan) {
        uint64_t deadline = now_ns() + 30000000000u;

        for (;;) {
                uint32_t v = atomic_load(&b->flags);
                if (v & f)
                        return 0;
                if (atomic_load(&b->failed))
                        return -ECANCELED;
                if (now_ns() > deadline)
                        return -ETIMEDOUT;
                if (serve_chan && serve_chan->alt->serve && serve_chan->alt->serve(serve_chan) < 0)
                        return -EIO;
                futex_wait_u32(&b->flags, v, serve_chan ? 1000 : 100000);
        }
}

/* Checks one received message; returns 0 or counts it bad. */
static void check(struct board *b, unsigned idx, const void *data, size_t size,
                  size_t want_size, uint64_t seq) {
        uint64_t got;

        b->checked[idx]++;
        if (size != want_size || size < 8) {
                b->bad[idx]++;
                return;
        }
        memcpy(&got, data, 8);
        if (got != seq || payload_sum(data, size) != payload_expect(seq, size))
                b->bad[idx]++;
}

/*
 * Every transport pays one production copy of the payload per message: a
 * transport that writes into shared memory (ALT_PRODUCES) copies @buf
 * there in send(); for the others the message is produced into a private
 * buffer here, which they then send (and re-send, for fan-out).
 */
static const void *produce(const struct chan *c, void *stage, const void *buf, size_t size) {
        if (c->alt->flags & ALT_PRODUCES)
                return buf;
        memcpy(stage, buf, size);
        return stage;
}

static void *stamp_buf(size_t size) {
        void *buf = malloc(size);

        if (buf)
                memcpy(buf, bench_src, size);
        return buf;
}

static pid_t spawn(struct board *b, unsigned idx,
                   int (*fn)(struct board *, unsigned, void *), void *ctx) {
        pid_t pid;

        fflush(stdout);
        fflush(stderr);
        pid = fork();
        if (pid != 0)
                return pid;
        alarm(CHILD_ALARM_S);
        /* so that perf report --sort comm tells the roles apart */
        prctl(PR_SET_NAME, idx == 0 ? "bench-writer" : "bench-reader");
        mem_self(&mem_base);
        _exit(fn(b, idx, ctx) < 0 ? 1 : 0);
}

/* Runs @n processes; 0 if all succeeded and verified. */
static int run_procs(struct board *b, unsigned n,
                     int (*fn)(struct board *, unsigned, void *), void *ctx) {
        pid_t pids[BENCH_MAX_READERS + 2];
        int r = 0;

        for (unsigned i = 0; i < n; i++) {
                pids[i] = spawn(b, i, fn, ctx);
                if (pids[i] < 0) {
                        fail(b, "fork: %s", strerror(errno));
                        n = i;
                        r = -EAGAIN;
                        break;
                }
        }
        for (unsigned i = 0; i < n; i++) {
                int st;
                if (waitpid(pids[i], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                        if (WIFSIGNALED(st))
                                fail(b, "process %u killed by signal %d", i, WTERMSIG(st));
                        else
                                fail(b, "process %u failed", i);
                        r = -EIO;
                        /* the others would wait for it forever */
                        for (unsigned j = 0; j < n; j++)
                                if (j != i)
                                        kill(pids[j], SIGKILL);
                }
        }
        return r;
}

static struct board *board_new(void) {
        struct board *b = mmap(NULL, sizeof(*b), PROT_READ | PROT_WRITE,
                               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        return b == MAP_FAILED ? NULL : b;
}

static void collect(struct board *b, unsigned nreaders, struct result *res) {
        memset(res, 0, sizeof(*res));
        res->value = b->value;
        res->msgs = b->msgs;
        res->wmem = b->mem[0];
        for (unsigned i = 0; i <= nreaders; i++) {
                res->bad += b->bad[i];
                res->checked += b->checked[i];
        }
        for (unsigned i = 1; i <= nreaders; i++) {
                res->rmem.rss += b->mem[i].rss / nreaders;
                res->rmem.pss += b->mem[i].pss / nreaders;
                res->rmem.shared += b->mem[i].shared / nreaders;
        }
        if (atomic_load(&b->failed)) {
                res->err = -EIO;
                fprintf(stderr, "sigillo-bench: %s: %s\n", "measurement failed", b->why);
        }
        if (res->bad)
                res->err = -EBADMSG;
}

static int chan_init(struct chan *c, const struct run *r, unsigned nreaders, int kind) {
        memset(c, 0, sizeof(*c));
        c->alt = r->alt;
        c->nreaders = nreaders;
        c->size = r->size;
        c->busy = r->busy;
        c->kind = kind;
        c->id = ++chan_ids;
        c->window = r->size >= 16 * MiB ? 2 : r->size >= MiB ? 8 : 64;
        return r->alt->create(c);
}

/* ------------------------------------------------------------- latency */

struct lat_ctx {
        const struct run *r;
        struct chan a, b; /* a: 0 -> 1, b: 1 -> 0 */
};

/* Process 0 pings on a and reads the pong on b; process 1 the reverse.
 * Setup goes one direction at a time, so that each reader's open is served
 * by a writer that is not itself blocked in an open. */
static int lat_proc(struct board *bd, unsigned idx, void *userdata) {
        struct lat_ctx *x = userdata;
        struct chan *out = idx == 0 ? &x->a : &x->b;
        struct chan *in = idx == 0 ? &x->b : &x->a;
        size_t size = x->r->size;
        uint64_t *buf = stamp_buf(size);
        void *stage = malloc(size);
        uint64_t t0 = 0;
        int k;

        if (!buf || !stage)
                return -ENOMEM;
        if ((k = out->alt->open_writer(out)) < 0) {
                fail(bd, "%s: open writer: %s", out->alt->name, strerror(-k));
                return k;
        }
        set_flag(bd, idx == 0 ? F_A_WRITER : F_B_WRITER);
        if (idx == 0) {
                /* first 0 opens b (served by 1), then 1 opens a */
                if (wait_flag(bd, F_B_WRITER, NULL) < 0 || (k = in->alt->open_reader(in, 0)) < 0) {
                        fail(bd, "%s: open reader: %s", in->alt->name, strerror(-k));
                        return -EIO;
                }
                set_flag(bd, F_B_READER);
                if (wait_flag(bd, F_A_READER, out) < 0)
                        return -EIO;
        } else {
                if (wait_flag(bd, F_B_READER, out) < 0 || wait_flag(bd, F_A_WRITER, NULL) < 0 ||
                    (k = in->alt->open_reader(in, 0)) < 0) {
                        fail(bd, "%s: open reader: %s", in->alt->name, strerror(-k));
                        return -EIO;
                }
                set_flag(bd, F_A_READER);
        }

        t0 = now_ns();
        for (uint64_t i = 0; i < x->r->iters; i++) {
                const void *data;
                size_t got;

                if (idx == 0) {
                        buf[0] = i;
                        if ((k = out->alt->send(out, produce(out, stage, buf, size), size)) < 0)
                                break;
                }
                if ((k = in->alt->recv(in, 0, &data, &got)) < 0)
                        break;
                check(bd, idx, data, got, size, i);
                in->alt->release(in, 0);
                if (idx == 1) {
                        buf[0] = i;
                        if ((k = out->alt->send(out, produce(out, stage, buf, size), size)) < 0)
                                break;
                }
        }
        if (k < 0) {
                fail(bd, "%s: %s", out->alt->name, strerror(-k));
                return k;
        }
        if (idx == 0)
                bd->value = (double)(now_ns() - t0) / (2.0 * (double)x->r->iters);
        mem_mark(&bd->mem[idx]);
        /* a writer that goes away may take what it pushed last with it
         * (the peer's connection resets): close only once both have read */
        set_flag(bd, idx == 0 ? F_DONE0 : F_DONE1);
        if (wait_flag(bd, idx == 0 ? F_DONE1 : F_DONE0, out) < 0)
                return -EIO;
        in->alt->close_reader(in, 0);
        out->alt->close_writer(out);
        free(stage);
        free(buf);
        return 0;
}

int drive_latency(const struct run *r, struct result *res) {
        struct lat_ctx x = { .r = r };
        struct board *b = board_new();
        int k;

        if (!b)
                return -ENOMEM;
        if ((k = chan_init(&x.a, r, 1, CH_LATENCY)) < 0 || (k = chan_init(&x.b, r, 1, CH_LATENCY)) < 0) {
                fprintf(stderr, "sigillo-bench: %s: %s\n", r->alt->name, strerror(-k));
                munmap(b, sizeof(*b));
                return k;
        }
        run_procs(b, 2, lat_proc, &x);
        x.a.alt->destroy(&x.a);
        x.b.alt->destroy(&x.b);
        collect(b, 1, res);
        /* the pong side is a writer too: report it as the reader */
        res->rmem = b->mem[1];
        munmap(b, sizeof(*b));
        return res->err;
}

/* --------------------------------------------- throughput, fanout, commit */

enum stream_kind { STREAM_TPUT, STREAM_FANOUT, STREAM_COMMIT };

struct stream_ctx {
        const struct run *r;
        enum stream_kind kind;
        struct chan c;
};

static uint64_t min_consumed(struct board *b, unsigned n) {
        uint64_t m = UINT64_MAX;

        for (unsigned i = 0; i < n; i++) {
                uint64_t v = atomic_load(&b->consumed[i]);
                if (v < m)
                        m = v;
        }
        return m;
}

/* Waits until every reader consumed at least @want messages. */
static int wait_credit(struct board *b, struct chan *c, uint64_t want) {
        unsigned spins = 0;

        if (min_consumed(b, c->nreaders) >= want)
                return 0;
        if (c->alt->flush && c->alt->flush(c) < 0)
                return -EIO;
        for (;;) {
                uint32_t seen;

                if (c->alt->serve && c->alt->serve(c) < 0)
                        return -EIO;
                if (min_consumed(b, c->nreaders) >= want)
                        return 0;
                if (atomic_load(&b->failed))
                        return -ECANCELED;
                if (c->busy && ++spins < 4096) {
                        cpu_relax();
                        continue;
                }
                spins = 0;
                seen = waitq_prepare(&b->credit);
                if (min_consumed(b, c->nreaders) < want)
                        waitq_sleep(&b->credit, seen, 10000);
                waitq_finish(&b->credit);
        }
}

/* Serves the readers until all of them opened (setup only). */
static int wait_ready(struct board *b, struct chan *c) {
        uint64_t deadline = now_ns() + 30000000000u;

        for (;;) {
                uint32_t v = atomic_load(&b->ready);
                if (v >= c->nreaders)
                        return 0;
                if (atomic_load(&b->failed))
                        return -ECANCELED;
                if (now_ns() > deadline)
                        return -ETIMEDOUT;
                if (c->alt->serve && c->alt->serve(c) < 0)
                        return -EIO;
                futex_wait_u32(&b->ready, v, c->alt->serve ? 1000 : 100000);
        }
}

static int stream_writer(struct board *bd, struct stream_ctx *x) {
        struct chan *c = &x->c;
        const struct run *r = x->r;
        bool copying = (c->alt->flags & ALT_COPYING) && x->kind == STREAM_FANOUT;
        unsigned sends = copying ? r->reads : 1;
        double *samples = NULL;
        uint64_t *buf = stamp_buf(r->size);
        void *stage = malloc(r->size);
        uint64_t t0;
        int k;

        if (!buf || !stage)
                return -ENOMEM;
        if (x->kind == STREAM_COMMIT && !(samples = calloc(r->iters, sizeof(double))))
                return -ENOMEM;
        if ((k = c->alt->open_writer(c)) < 0) {
                fail(bd, "%s: open writer: %s", c->alt->name, strerror(-k));
                return k;
        }
        set_flag(bd, F_A_WRITER);
        if ((k = wait_ready(bd, c)) < 0) {
                fail(bd, "%s: readers did not open: %s", c->alt->name, strerror(-k));
                return k;
        }
        set_flag(bd, F_GO);

        t0 = now_ns();
        for (uint64_t i = 0; i < r->iters; i++) {
                if ((c->alt->flags & ALT_WINDOW) && i >= c->window &&
                    (k = wait_credit(bd, c, i + 1 - c->window)) < 0)
                        goto fail;
                const void *msg;

                buf[0] = i;
                msg = produce(c, stage, buf, r->size);
                for (unsigned s = 0; s < sends; s++) {
                        uint64_t t = samples ? now_ns() : 0;
                        if ((k = c->alt->send(c, msg, r->size)) < 0)
                                goto fail;
                        if (samples)
                                samples[i] = (double)(now_ns() - t);
                }
        }
        if (c->alt->flush && (k = c->alt->flush(c)) < 0)
                goto fail;
        if ((k = wait_credit(bd, c, r->iters)) < 0)
                goto fail;
        {
                double ns = (double)(now_ns() - t0);
                switch (x->kind) {
                case STREAM_TPUT:
                        bd->value = (double)r->iters * (double)r->size / ns * 1e9;
                        bd->msgs = (double)r->iters / ns * 1e9;
                        break;
                case STREAM_FANOUT:
                        bd->value = ns / (double)r->iters;
                        break;
                case STREAM_COMMIT:
                        bd->value = stats_percentile(samples, r->iters, 0.5);
                        break;
                }
        }
        mem_mark(&bd->mem[0]);
        c->alt->close_writer(c);
        free(samples);
        free(stage);
        free(buf);
        return 0;
fail:
        fail(bd, "%s: send: %s", c->alt->name, strerror(-k));
        return k;
}

static int stream_reader(struct board *bd, struct stream_ctx *x, unsigned i) {
        struct chan *c = &x->c;
        const struct run *r = x->r;
        bool copying = (c->alt->flags & ALT_COPYING) && x->kind == STREAM_FANOUT;
        unsigned reads = x->kind == STREAM_FANOUT ? r->reads : 1;
        int k;

        if (wait_flag(bd, F_A_WRITER, NULL) < 0)
                return -EIO;
        if ((k = c->alt->open_reader(c, i)) < 0) {
                fail(bd, "%s: open reader %u: %s", c->alt->name, i, strerror(-k));
                return k;
        }
        atomic_fetch_add(&bd->ready, 1);
        futex_wake_all(&bd->ready);
        if (wait_flag(bd, F_GO, NULL) < 0)
                return -EIO;
        for (uint64_t m = 0; m < r->iters; m++) {
                const void *data = NULL;
                size_t got = 0;

                for (unsigned n = 0; n < reads; n++) {

                        if (n == 0 || copying) {
                                if ((k = c->alt->recv(c, i, &data, &got)) < 0) {
                                        fail(bd, "%s: reader %u: %s", c->alt->name, i, strerror(-k));
                                        return k;
                                }
                        }
                        check(bd, i + 1, data, got, r->size, m);
                        if (n + 1 == reads || copying)
                                c->alt->release(c, i);
                }
                atomic_store(&bd->consumed[i], m + 1);
                waitq_signal(&bd->credit);
        }
        mem_mark(&bd->mem[i + 1]);
        c->alt->close_reader(c, i);
        return 0;
}

static int stream_proc(struct board *bd, unsigned idx, void *userdata) {
        struct stream_ctx *x = userdata;

        return idx == 0 ? stream_writer(bd, x) : stream_reader(bd, x, idx - 1);
}

static int drive_stream(const struct run *r, enum stream_kind kind, struct result *res) {
        struct stream_ctx x = { .r = r, .kind = kind };
        struct board *b = board_new();
        int k;

        if (!b)
                return -ENOMEM;
        if ((k = chan_init(&x.c, r, r->readers,
                             kind == STREAM_TPUT ? CH_TPUT : kind == STREAM_FANOUT ? CH_FANOUT : CH_COMMIT)) < 0) {
                fprintf(stderr, "sigillo-bench: %s: %s\n", r->alt->name, strerror(-k));
                munmap(b, sizeof(*b));
                return k;
        }
        run_procs(b, r->readers + 1, stream_proc, &x);
        x.c.alt->destroy(&x.c);
        collect(b, r->readers, res);
        munmap(b, sizeof(*b));
        return res->err;
}

int drive_throughput(const struct run *r, struct result *res) {
        return drive_stream(r, STREAM_TPUT, res);
}

int drive_fanout(const struct run *r, struct result *res) {
        return drive_stream(r, STREAM_FANOUT, res);
}

int drive_commit(const struct run *r, struct result *res) {
        return drive_stream(r, STREAM_COMMIT, res);
}
