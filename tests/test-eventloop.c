/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-eventloop.c - the connected reader's pollable descriptor
 * (sgl_reader_get_fd()) in real event loops: GLib (g_unix_fd_add() on the
 * default main context, g_main_loop_run()) and systemd's sd-event
 * (sd_event_add_io(), sd_event_run()).
 *
 * Layout: the writer runs in a child process that owns an sgl_writer and
 * its embedded sgl_host on an abstract address and drives the host from a
 * poll() loop (host fd + a command socket from the test).  The test process
 * itself is the reader: sgl_reader_open(), then the descriptor goes into
 * the event loop, whose callback calls sgl_reader_process() and drains
 * sgl_reader_next() -- exactly what an application does.  Every chunk
 * carries its id, the CLOCK_MONOTONIC time just before the writer's
 * sgl_writer_commit() and a pattern seeded by the id, so the reader checks
 * it byte-exact and measures the delay from commit to delivery.
 *
 * Each of {GLib, sd-event} x {STRICT reader + SGL_SEAL_EVERY_COMMIT,
 * TRUSTED reader + SGL_SEAL_BYTES(24 KiB)} proves:
 *  - lock-step: the writer commits a chunk only after the loop has
 *    acknowledged the previous one (sent from inside the callback) and a
 *    pause, so the loop is asleep when the commit lands and nothing later
 *    can deliver it instead: each commit wakes the loop by itself -- for
 *    STRICT through the pushed sealed segment, for TRUSTED through the
 *    OPENED push or, for every later commit into the same open segment,
 *    the watcher thread alone (the segment seals about every 24 KiB, so
 *    SEALED pushes are met too and give no duplicate);
 *  - free-running: commits at short spaced intervals, the loop keeping up
 *    however the wake-ups coalesce;
 *  - every chunk arrives exactly once, in commit order, byte-exact, each
 *    within LATENCY_MAX_NS of its commit;
 *  - no spinning: callback invocations stay <= 3 per chunk + 4, and the
 *    loop goes quiet (<= 2 stray callbacks, no chunk) for 300 ms once the
 *    writer stopped;
 *  - the writer's exit wakes the loop and the callback sees
 *    sgl_reader_process() return -ECONNRESET exactly once, after which the
 *    descriptor stays quiet (no callback in 300 ms) and a direct
 *    sgl_reader_process() returns 0; every chunk held stays readable
 *    byte-exact after the writer is gone;
 *  - removing the source and unref'ing the reader leaves no descriptor.
 * A loop whose development files were not found at configure time is
 * skipped (cmocka skip()), so the program always builds.
 *
 * libsystemd is used by this test ONLY, to prove the descriptor works with
 * sd-event: the library and sigillod implement the protocol natively and
 * never link it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#if HAVE_GLIB
#include <glib.h>
#include <glib-unix.h>
#endif
#if HAVE_LIBSYSTEMD
#include <sys/epoll.h>
#include <systemd/sd-event.h>
#endif

#include "sigillo.h"
#include "test-util.h"

#define N_BEFORE 3          /* committed before the reader opens */
#define N_LOCKSTEP 12       /* one at a time, each acknowledged */
#define LOCKSTEP_PAUSE_MS 20
#define N_FREE 16           /* spaced, not waiting for the reader */
#define FREE_INTERVAL_MS 6
#define N_TOTAL (N_BEFORE + N_LOCKSTEP + N_FREE)
#define LATENCY_MAX_NS (1000ULL * 1000000ULL) /* generous: ASan, loaded CI */
#define PHASE_MS 8000       /* a phase that takes longer failed */
#define QUIET_MS 300
#define TRUSTED_SEAL_BYTES (24 * 1024)

/* ------------------------------------------------------------ payloads */

#define PAYLOAD_HDR 24       /* id, commit time, length, pad */

static size_t payload_size(uint64_t id) {
        size_t n = PAYLOAD_HDR + (size_t)((id * 733) % 2500);

        if (id % 7 == 0)
                n += 6000; /* spans pages */
        return n;
}

static void payload_fill(uint8_t *p, uint64_t id, uint64_t t_ns) {
        uint32_t len = (uint32_t)payload_size(id), pad = 0;

        memcpy(p, &id, 8);
        memcpy(p + 8, &t_ns, 8);
        memcpy(p + 16, &len, 4);
        memcpy(p + 20, &pad, 4);
        tu_fill_pattern(p + PAYLOAD_HDR, len - PAYLOAD_HDR, id * 0x9e3779b97f4a7c15ULL);
}

/* Checks a chunk byte by byte; returns its commit time, 0 if bad. */
static uint64_t payload_check(const sgl_chunk *c) {
        static uint8_t want[PAYLOAD_HDR + 2500 + 6000];
        const uint8_t *d = sgl_chunk_data(c);
        size_t size = sgl_chunk_size(c);
        uint64_t id, t_ns;

        if (!d || size < PAYLOAD_HDR)
                return 0;
        memcpy(&id, d, 8);
        memcpy(&t_ns, d + 8, 8);
        if (id == 0 || id > N_TOTAL || id != sgl_chunk_id(c) || size != payload_size(id) ||
            t_ns == 0)
                return 0;
        payload_fill(want, id, t_ns);
        return memcmp(want, d, size) == 0 ? t_ns : 0;
}

static uint64_t mono_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------- commands between processes */

enum {
        W_READY = 1,  /* -> ret: sgl_host_new() */
        W_RUN,        /* a first id, b count, c pause ms | RUN_LOCKSTEP */
        W_ACK,        /* from the test's callback: a = highest id it has */
        W_EXIT,
};

#define RUN_LOCKSTEP (1ULL << 32)
#define ACK_TIMEOUT_MS 5000

struct cmd {
        uint32_t op;
        uint32_t pad;
        uint64_t a, b, c;
};

struct rep {
        int64_t ret;
        uint64_t v[3];
};

struct proc {
        pid_t pid;
        int sock;
};

static int child_send(int sock, int64_t ret, uint64_t v0, uint64_t v1, uint64_t v2) {
        struct rep r = { ret, { v0, v1, v2 } };
        return send(sock, &r, sizeof(r), MSG_NOSIGNAL) == (ssize_t)sizeof(r) ? 0 : -1;
}

static void cmd_post(const struct proc *p, uint32_t op, uint64_t a, uint64_t b, uint64_t c) {
        struct cmd m = { .op = op, .a = a, .b = b, .c = c };
        assert_int_equal(send(p->sock, &m, sizeof(m), MSG_NOSIGNAL), sizeof(m));
}

static struct rep cmd_wait(const struct proc *p) {
        struct pollfd pfd = { .fd = p->sock, .events = POLLIN };
        struct rep r;

        assert_int_equal(poll(&pfd, 1, 10000), 1);
        assert_int_equal(recv(p->sock, &r, sizeof(r), 0), sizeof(r));
        return r;
}

/* ---------------------------------------------------------- the writer */

struct wparams {
        char address[108];
        char name[64];
        sgl_seal_policy policy;
        uint64_t policy_arg;
        int sock;
};

struct wstate {
        sgl_writer *w;
        sgl_host *h;
        int sock;
        uint64_t acked;          /* highest id the test's loop acknowledged */
        bool exit;               /* W_EXIT arrived during a run: an error */
};

static int writer_commit(struct wstate *ws, uint64_t id) {
        uint8_t *buf = malloc(payload_size(id));
        int k;

        if (!buf)
                return -ENOMEM;
        payload_fill(buf, id, mono_ns()); /* the payload is copied now ... */
        k = sgl_writer_write(ws->w, id, 0, buf, payload_size(id), NULL);
        free(buf);
        if (k < 0)
                return k;
        k = sgl_writer_commit(ws->w); /* ... and committed microseconds later */
        if (k < 0)
                return k;
        k = sgl_host_process(ws->h);
        return k < 0 ? k : 0;
}

/* Serves the host and takes acknowledgements until @until_ns, or until
 * the test acknowledged @want_ack (0: no such wait).  Returns 0 when
 * @until_ns passed, 1 when the acknowledgement came, -errno otherwise. */
static int writer_serve(struct wstate *ws, uint64_t until_ns, uint64_t want_ack) {
        for (;;) {
                struct pollfd pfd[2] = {
                        { .fd = sgl_host_get_fd(ws->h), .events = POLLIN },
                        { .fd = ws->sock, .events = POLLIN },
                };
                uint64_t now = mono_ns();
                struct cmd m;
                ssize_t n;
                int k;

                if (want_ack && ws->acked >= want_ack)
                        return 1;
                if (now >= until_ns)
                        return 0;
                k = poll(pfd, 2, (int)((until_ns - now + 999999) / 1000000));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (pfd[0].revents) {
                        k = sgl_host_process(ws->h);
                        if (k < 0)
                                return k;
                }
                if (!pfd[1].revents)
                        continue;
                n = recv(ws->sock, &m, sizeof(m), 0);
                if (n != (ssize_t)sizeof(m))
                        return -EPIPE;
                if (m.op != W_ACK)
                        return -EBADMSG; /* the test waits for the run */
                ws->acked = m.a > ws->acked ? m.a : ws->acked;
        }
}

/* W_RUN: @count commits from @first on; lock-step: each after the
 * previous one was acknowledged and @pause_ms passed; otherwise every
 * @pause_ms.  Replies ret, the slowest acknowledgement in ns, commits. */
static int writer_run(struct wstate *ws, uint64_t first, uint64_t count, uint64_t c) {
        bool lockstep = c & RUN_LOCKSTEP;
        uint64_t pause_ns = (c & 0xffffffffULL) * 1000000ULL, max_ack = 0, done = 0;
        int k = 0;

        for (uint64_t id = first; id < first + count && k >= 0; id++) {
                uint64_t t0;

                k = writer_serve(ws, mono_ns() + pause_ns, 0);
                if (k < 0)
                        break;
                t0 = mono_ns();
                k = writer_commit(ws, id);
                if (k < 0)
                        break;
                done++;
                if (!lockstep)
                        continue;
                k = writer_serve(ws, t0 + ACK_TIMEOUT_MS * 1000000ULL, id);
                if (k == 0)
                        k = -ETIMEDOUT; /* the loop never delivered @id */
                if (mono_ns() - t0 > max_ack)
                        max_ack = mono_ns() - t0;
        }
        return child_send(ws->sock, k < 0 ? k : 0, max_ack, done, 0);
}

static int writer_main(void *userdata) {
        struct wparams *p = userdata;
        struct wstate ws = { .sock = p->sock };
        int k;

        /* only stdio and the command socket */
        if (p->sock > 3)
                close_range(3, (unsigned)p->sock - 1, 0);
        close_range((unsigned)p->sock + 1, ~0U, 0);

        TU_CHILD_CHECK(sgl_writer_new(p->name, 0, &ws.w) == 0);
        TU_CHILD_CHECK(sgl_writer_set_seal_policy(ws.w, p->policy, p->policy_arg) == 0);
        k = sgl_host_new(ws.w, p->address, &ws.h);
        TU_CHILD_CHECK(child_send(ws.sock, k, 0, 0, 0) == 0);
        TU_CHILD_CHECK(k == 0);

        for (;;) {
                struct pollfd pfd[2] = {
                        { .fd = sgl_host_get_fd(ws.h), .events = POLLIN },
                        { .fd = ws.sock, .events = POLLIN },
                };
                struct cmd m;
                ssize_t n;

                k = poll(pfd, 2, -1);
                TU_CHILD_CHECK(k > 0 || (k < 0 && errno == EINTR));
                if (k < 0)
                        continue;
                if (pfd[0].revents)
                        TU_CHILD_CHECK(sgl_host_process(ws.h) >= 0);
                if (!pfd[1].revents)
                        continue;
                n = recv(ws.sock, &m, sizeof(m), 0);
                if (n == 0)
                        return 20; /* the test went away */
                TU_CHILD_CHECK(n == (ssize_t)sizeof(m));
                switch (m.op) {
                case W_RUN:
                        TU_CHILD_CHECK(writer_run(&ws, m.a, m.b, m.c) == 0);
                        break;
                case W_ACK:
                        break; /* late, harmless */
                case W_EXIT:
                        /* the readers' sockets close here */
                        sgl_host_unref(ws.h);
                        sgl_writer_unref(ws.w);
                        TU_CHILD_CHECK(child_send(ws.sock, 0, 0, 0, 0) == 0);
                        return 0;
                default:
                        return 21;
                }
        }
}

static struct proc start_writer(struct wparams *wp) {
        struct proc p;
        struct rep r;
        int sv[2];

        tu_socketpair(sv);
        wp->sock = sv[1];
        p.pid = tu_fork(writer_main, wp);
        close(sv[1]);
        p.sock = sv[0];
        r = cmd_wait(&p);
        assert_int_equal(r.ret, 0);
        return p;
}

/* ------------------------------------------------------ the event loops */

enum loop_kind { LOOP_GLIB, LOOP_SD_EVENT };

struct ev {
        enum loop_kind kind;
        bool stop;               /* quit the current ev_run() */
        bool timed_out;          /* ev_run() ended by its timer */
#if HAVE_GLIB
        GMainLoop *gloop;
        guint gfd_id, gtimer_id;
#endif
#if HAVE_LIBSYSTEMD
        sd_event *sd;
        sd_event_source *sdfd, *sdtimer;
#endif
        /* the writer */
        struct proc w;
        /* the reader side */
        sgl_reader *r;
        int wsock;               /* to the writer: acknowledgements */
        bool ack;                /* lock-step phase: acknowledge */
        uint64_t want;           /* quit once this many chunks arrived */
        bool quit_on_end;        /* quit once the end was reported */
        uint64_t callbacks, bad_cond;
        uint64_t count, bad, out_of_order;
        uint64_t ends, other_errors;
        int64_t first_error;
        uint64_t max_latency_ns;
        sgl_chunk *held[N_TOTAL];
};

static void ev_quit(struct ev *ev) {
        ev->stop = true;
#if HAVE_GLIB
        if (ev->kind == LOOP_GLIB)
                g_main_loop_quit(ev->gloop);
#endif
}

/* Drains the reader: what every application's callback does. */
static void drain(struct ev *ev) {
        uint64_t before = ev->count;
        int k;

        k = sgl_reader_process(ev->r);
        if (k == -ECONNRESET) {
                ev->ends++;
        } else if (k < 0) {
                if (ev->other_errors++ == 0)
                        ev->first_error = k;
        }
        for (int i = 0; i < 10000; i++) {
                sgl_chunk *c = NULL;
                uint64_t t_ns, now;

                k = sgl_reader_next(ev->r, &c);
                if (k == -EAGAIN)
                        break;
                if (k < 0) {
                        ev->bad++;
                        continue;
                }
                now = mono_ns();
                t_ns = payload_check(c);
                if (t_ns == 0) {
                        ev->bad++;
                        sgl_chunk_unref(c);
                        continue;
                }
                /* the log's order, each chunk once: ids 1, 2, 3, ... */
                if (sgl_chunk_id(c) != ev->count + 1 || ev->count >= N_TOTAL) {
                        ev->out_of_order++;
                        sgl_chunk_unref(c);
                        continue;
                }
                if (now < t_ns || now - t_ns > ev->max_latency_ns)
                        ev->max_latency_ns = now < t_ns ? UINT64_MAX : now - t_ns;
                ev->held[ev->count++] = c;
        }
        if (ev->ack && ev->count > before) {
                struct cmd m = { .op = W_ACK, .a = ev->count };
                if (send(ev->wsock, &m, sizeof(m), MSG_NOSIGNAL) != (ssize_t)sizeof(m))
                        ev->bad++;
        }
        if ((ev->want && ev->count >= ev->want) || (ev->quit_on_end && ev->ends))
                ev_quit(ev);
}

#if HAVE_GLIB
static gboolean glib_on_fd(gint fd, GIOCondition cond, gpointer userdata) {
        struct ev *ev = userdata;

        ev->callbacks++;
        if (cond != G_IO_IN)
                ev->bad_cond++;
        drain(ev);
        return G_SOURCE_CONTINUE;
}

static gboolean glib_on_timer(gpointer userdata) {
        struct ev *ev = userdata;

        ev->gtimer_id = 0;
        ev->timed_out = true;
        ev_quit(ev);
        return G_SOURCE_REMOVE;
}
#endif

#if HAVE_LIBSYSTEMD
static int sd_on_fd(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct ev *ev = userdata;

        ev->callbacks++;
        if (revents != EPOLLIN)
                ev->bad_cond++;
        drain(ev);
        return 0;
}

static int sd_on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct ev *ev = userdata;

        ev->timed_out = true;
        ev_quit(ev);
        return 0;
}
#endif

static void ev_init(struct ev *ev, enum loop_kind kind) {
        ev->kind = kind;
        switch (kind) {
        case LOOP_GLIB:
#if HAVE_GLIB
                /* g_unix_fd_add() and g_timeout_add() use the default
                 * context, as most GLib programs do */
                ev->gloop = g_main_loop_new(NULL, FALSE);
                assert_non_null(ev->gloop);
                return;
#else
                break;
#endif
        case LOOP_SD_EVENT:
#if HAVE_LIBSYSTEMD
                assert_int_equal(sd_event_new(&ev->sd), 0);
                return;
#else
                break;
#endif
        }
        fail_msg("event loop %d not built", (int)kind);
}

static void ev_add_fd(struct ev *ev, int fd) {
#if HAVE_GLIB
        if (ev->kind == LOOP_GLIB) {
                ev->gfd_id = g_unix_fd_add(fd, G_IO_IN, glib_on_fd, ev);
                assert_true(ev->gfd_id > 0);
        }
#endif
#if HAVE_LIBSYSTEMD
        if (ev->kind == LOOP_SD_EVENT)
                assert_int_equal(sd_event_add_io(ev->sd, &ev->sdfd, fd, EPOLLIN, sd_on_fd, ev),
                                 0);
#endif
}

static void ev_remove_fd(struct ev *ev) {
#if HAVE_GLIB
        if (ev->kind == LOOP_GLIB) {
                assert_true(g_source_remove(ev->gfd_id));
                ev->gfd_id = 0;
        }
#endif
#if HAVE_LIBSYSTEMD
        if (ev->kind == LOOP_SD_EVENT)
                ev->sdfd = sd_event_source_unref(ev->sdfd);
#endif
}

/* Runs the loop until a callback quits it or @ms passed (timed_out). */
static void ev_run(struct ev *ev, unsigned ms) {
        ev->stop = false;
        ev->timed_out = false;
#if HAVE_GLIB
        if (ev->kind == LOOP_GLIB) {
                ev->gtimer_id = g_timeout_add(ms, glib_on_timer, ev);
                g_main_loop_run(ev->gloop);
                if (ev->gtimer_id)
                        assert_true(g_source_remove(ev->gtimer_id));
                ev->gtimer_id = 0;
        }
#endif
#if HAVE_LIBSYSTEMD
        if (ev->kind == LOOP_SD_EVENT) {
                uint64_t now;

                /* 1: the loop has not run yet, this is the current time */
                assert_true(sd_event_now(ev->sd, CLOCK_MONOTONIC, &now) >= 0);
                /* accuracy 1 us: the default would be 250 ms */
                assert_int_equal(sd_event_add_time(ev->sd, &ev->sdtimer, CLOCK_MONOTONIC,
                                                   now + ms * 1000ULL, 1, sd_on_timer, ev),
                                 0);
                while (!ev->stop)
                        assert_true(sd_event_run(ev->sd, UINT64_MAX) >= 0);
                ev->sdtimer = sd_event_source_unref(ev->sdtimer);
        }
#endif
}

/* Frees everything, also what a failed test left behind (a source still
 * on GLib's default context would call into the next test otherwise). */
static void ev_free(struct ev *ev) {
        for (size_t i = 0; i < N_TOTAL; i++)
                ev->held[i] = sgl_chunk_unref(ev->held[i]);
#if HAVE_GLIB
        if (ev->gfd_id)
                g_source_remove(ev->gfd_id);
        if (ev->gtimer_id)
                g_source_remove(ev->gtimer_id);
        ev->gfd_id = ev->gtimer_id = 0;
        if (ev->gloop)
                g_main_loop_unref(ev->gloop);
        ev->gloop = NULL;
#endif
#if HAVE_LIBSYSTEMD
        ev->sdfd = sd_event_source_unref(ev->sdfd);
        ev->sdtimer = sd_event_source_unref(ev->sdtimer);
        ev->sd = sd_event_unref(ev->sd);
#endif
        ev->r = sgl_reader_unref(ev->r);
}

/* One test's state; static so that the teardown finds it after a failed
 * assertion. */
static struct ev the_ev;

static int setup(void **state) {
        the_ev = (struct ev) { .w = { .pid = 0, .sock = -1 }, .wsock = -1 };
        return 0;
}

static int teardown(void **state) {
        struct ev *ev = &the_ev;

        ev_free(ev);
        if (ev->w.sock >= 0)
                close(ev->w.sock); /* a writer left over ends on its own */
        if (ev->w.pid > 0) {
                kill(ev->w.pid, SIGKILL);
                (void)tu_wait_status(ev->w.pid);
        }
        return 0;
}

/* ---------------------------------------------------------------- tests */

static void abstract_address(char *buf, size_t size, const char *tag) {
        static unsigned counter;
        snprintf(buf, size, "@sigillo-test-evl-%d-%s-%u", (int)getpid(), tag, ++counter);
}

/* Asserts the phase's bookkeeping: @count chunks so far, all clean. */
static void expect_clean(const struct ev *ev, uint64_t count) {
        assert_int_equal(ev->bad, 0);
        assert_int_equal(ev->bad_cond, 0);
        assert_int_equal(ev->out_of_order, 0);
        assert_int_equal(ev->other_errors, 0);
        assert_int_equal(ev->ends, 0);
        assert_int_equal(ev->count, count);
        assert_true(ev->max_latency_ns < LATENCY_MAX_NS);
}

/* unused when configure found neither loop: every test then skips */
__attribute__((unused)) static void run_loop_test(enum loop_kind kind, bool trusted) {
        struct wparams wp = {
                .policy = trusted ? SGL_SEAL_BYTES : SGL_SEAL_EVERY_COMMIT,
                .policy_arg = trusted ? TRUSTED_SEAL_BYTES : 0,
        };
        struct ev *ev = &the_ev;
        struct rep rp;
        uint64_t cb_before, t0;
        unsigned fds0;
        int fd;

        abstract_address(wp.address, sizeof(wp.address), trusted ? "t" : "s");
        snprintf(wp.name, sizeof(wp.name), "eventloop-%s", trusted ? "trusted" : "strict");
        fds0 = tu_count_fds();
        ev->w = start_writer(&wp);
        ev->wsock = ev->w.sock;
        ev_init(ev, kind);

        /* before the reader exists */
        cmd_post(&ev->w, W_RUN, 1, N_BEFORE, 0);
        rp = cmd_wait(&ev->w);
        assert_int_equal(rp.ret, 0);
        assert_int_equal(rp.v[1], N_BEFORE);

        assert_int_equal(sgl_reader_open(wp.name, wp.address, trusted ? SGL_READER_TRUSTED : 0,
                                         &ev->r), 0);
        fd = sgl_reader_get_fd(ev->r);
        assert_true(fd >= 0);
        /* what the open brought in (STRICT: all sealed; TRUSTED: the open
         * segment) is there at once, without waiting for a wake-up */
        drain(ev);
        expect_clean(ev, N_BEFORE);
        ev_add_fd(ev, fd);

        /* nothing happens: the loop sleeps */
        ev_run(ev, 150);
        assert_true(ev->timed_out);
        assert_int_equal(ev->callbacks, 0);

        /* lock-step: every commit wakes the loop on its own */
        ev->ack = true;
        ev->want = N_BEFORE + N_LOCKSTEP;
        cmd_post(&ev->w, W_RUN, N_BEFORE + 1, N_LOCKSTEP, RUN_LOCKSTEP | LOCKSTEP_PAUSE_MS);
        ev_run(ev, PHASE_MS);
        assert_false(ev->timed_out);
        rp = cmd_wait(&ev->w);
        assert_int_equal(rp.ret, 0);
        assert_int_equal(rp.v[1], N_LOCKSTEP);
        assert_true(rp.v[0] < LATENCY_MAX_NS); /* slowest acknowledgement */
        expect_clean(ev, N_BEFORE + N_LOCKSTEP);
        assert_true(ev->callbacks <= 3 * N_LOCKSTEP + 4);
        print_message("%s %s lock-step: %d chunks, %" PRIu64 " callbacks, slowest "
                      "delivery %" PRIu64 " us, slowest ack %" PRIu64 " us\n",
                      kind == LOOP_GLIB ? "GLib" : "sd-event", trusted ? "TRUSTED" : "STRICT",
                      N_LOCKSTEP, ev->callbacks, ev->max_latency_ns / 1000, rp.v[0] / 1000);

        /* free-running at spaced intervals */
        ev->ack = false;
        ev->want = N_TOTAL;
        cmd_post(&ev->w, W_RUN, N_BEFORE + N_LOCKSTEP + 1, N_FREE, FREE_INTERVAL_MS);
        ev_run(ev, PHASE_MS);
        assert_false(ev->timed_out);
        rp = cmd_wait(&ev->w);
        assert_int_equal(rp.ret, 0);
        assert_int_equal(rp.v[1], N_FREE);
        expect_clean(ev, N_TOTAL);

        /* the writer is idle now: the loop goes quiet, delivering nothing */
        ev->want = 0;
        cb_before = ev->callbacks;
        ev_run(ev, QUIET_MS);
        assert_true(ev->timed_out);
        assert_true(ev->callbacks - cb_before <= 2);
        expect_clean(ev, N_TOTAL);
        /* and never spun */
        assert_true(ev->callbacks <= 3 * (N_LOCKSTEP + N_FREE) + 4);
        print_message("%s %s: %d chunks in %" PRIu64 " callbacks, slowest delivery "
                      "%" PRIu64 " us\n",
                      kind == LOOP_GLIB ? "GLib" : "sd-event", trusted ? "TRUSTED" : "STRICT",
                      N_TOTAL, ev->callbacks, ev->max_latency_ns / 1000);

        /* the writer exits: reported once, then quiet */
        cmd_post(&ev->w, W_EXIT, 0, 0, 0);
        assert_int_equal(cmd_wait(&ev->w).ret, 0);
        tu_wait_exit(ev->w.pid, 0);
        ev->w.pid = 0;
        close(ev->w.sock);
        ev->w.sock = ev->wsock = -1;
        ev->quit_on_end = true;
        t0 = mono_ns();
        ev_run(ev, PHASE_MS);
        assert_false(ev->timed_out);
        assert_int_equal(ev->ends, 1);
        assert_true(mono_ns() - t0 < LATENCY_MAX_NS);
        ev->quit_on_end = false;
        cb_before = ev->callbacks;
        ev_run(ev, QUIET_MS);
        assert_true(ev->timed_out);
        assert_int_equal(ev->callbacks, cb_before);
        assert_int_equal(ev->ends, 1);
        assert_int_equal(ev->other_errors, 0);
        assert_int_equal(ev->bad, 0);
        assert_int_equal(ev->count, N_TOTAL);
        assert_true(ev->callbacks <= 3 * (N_LOCKSTEP + N_FREE) + 4 + 1);
        /* and asked directly, the reader has nothing more to tell */
        assert_int_equal(sgl_reader_process(ev->r), 0);
        assert_int_equal(sgl_reader_process(ev->r), 0);

        /* what was delivered stays readable, byte-exact */
        for (size_t i = 0; i < N_TOTAL; i++) {
                assert_true(payload_check(ev->held[i]) != 0);
                assert_int_equal(sgl_chunk_id(ev->held[i]), i + 1);
        }

        ev_remove_fd(ev);
        ev_free(ev);
        assert_int_equal(tu_count_fds(), fds0);
}

static void glib_strict(void **state) {
#if HAVE_GLIB
        run_loop_test(LOOP_GLIB, false);
#else
        skip();
#endif
}

static void glib_trusted(void **state) {
#if HAVE_GLIB
        run_loop_test(LOOP_GLIB, true);
#else
        skip();
#endif
}

static void sd_event_strict(void **state) {
#if HAVE_LIBSYSTEMD
        run_loop_test(LOOP_SD_EVENT, false);
#else
        skip();
#endif
}

static void sd_event_trusted(void **state) {
#if HAVE_LIBSYSTEMD
        run_loop_test(LOOP_SD_EVENT, true);
#else
        skip();
#endif
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(glib_strict, setup, teardown),
                cmocka_unit_test_setup_teardown(glib_trusted, setup, teardown),
                cmocka_unit_test_setup_teardown(sd_event_strict, setup, teardown),
                cmocka_unit_test_setup_teardown(sd_event_trusted, setup, teardown),
        };

        signal(SIGPIPE, SIG_IGN);
#if HAVE_GLIB
        /* the default context and its wake-up descriptor exist before any
         * test counts descriptors */
        (void)g_main_context_default();
#endif
        tu_watchdog(60);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
