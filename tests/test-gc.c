/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-gc.c - compaction (src/gc.c) with reader *processes* streaming and
 * holding chunks while the writer relocates and retires segments.
 *
 * The harness is the one of test-writer-reader.c: the writer lives in the
 * test process, readers are tu_fork() children forked before the writer
 * exists, and segment descriptors (opened, sealed, sealed copies) and
 * retirements reach them over SOCK_SEQPACKET socketpairs with SCM_RIGHTS,
 * in a tiny message of our own ({seq, event} plus the fd).  Readers report
 * what they get (id, version, size, FNV-1a of the bytes); the test process
 * asserts on it.
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

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "fdpass.h"
#include "sigillo.h"
#include "test-util.h"

#define PAGE 4096u
#define USEC_PER_MSEC 1000ULL
#define NSEC_PER_MSEC 1000000ULL
#define NSEC_PER_SEC 1000000000ULL
#define MAX_READERS 8
#define ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

/* ============================================================ harness === */

/* The one message on the wire, both ways.  Segment events use only seq,
 * event and the descriptor; commands and replies use the rest. */
struct tmsg {
        uint64_t seq;    /* segment seq, or the command's main argument */
        uint32_t event;  /* SGL_SEGMENT_* or M_* */
        uint32_t flags;
        uint64_t a, b, c, d;
};

enum {
        /* writer -> reader */
        M_CONTROL = 100, /* fd: the control page */
        M_DRAIN,         /* next() until -EAGAIN; flags F_HOLD keeps chunks */
        M_GET,           /* seq: id */
        M_WAIT,          /* a: timeout in usec (int64) */
        M_POLL,          /* seq: chunks to wait for, a: give up after ms */
        M_STREAM,        /* stream on your own until M_DONE */
        M_DONE,
        M_VERIFY,        /* re-checksum the held chunks */
        M_RELEASE,       /* release the held chunks */
        M_INFO,
        M_QUIT,
        /* reader -> writer */
        M_CHUNK = 200,   /* seq: id, a: version, b: size, c: hash, d: expiry */
        M_END,           /* seq: chunks reported, a: last next() result */
        M_GOT,           /* seq: id, a: result, b: version, c: size, d: hash */
        M_WAITED,        /* a: result, b: elapsed usec */
        M_POLLING,       /* started polling */
        M_POLLED,        /* seq: polls before the first chunk, a: first burst, b: total */
        M_VERIFIED,      /* seq: held, a: checksum mismatches, b: segment mappings */
        M_RELEASED,      /* seq: segment mappings left, a: segments in the reader */
        M_INFOED,        /* seq: segments mapped, a: opened, b: sealed, c: retired, d: fds - baseline */
        M_BYE,           /* a: fds at start, b: fds at the end */
};

enum { F_HOLD = 1 };

/* What a reader reports about one chunk. */
struct dlv {
        uint64_t id, version, size, hash, expiry;
};

/* ---------------------------------------------------------- child side */

struct rd_child {
        int sock;
        unsigned flags;
};

struct rstate {
        int sock;
        int maps0;               /* segment mappings inherited at start */
        sgl_reader *r;
        unsigned opened, sealed, retired;
        struct held {
                sgl_chunk *c;
                uint64_t hash;
        } *held;
        size_t n_held, a_held;
        struct dlv *dlv;
        size_t n_dlv, a_dlv;
};

static int count_fds_child(void) {
        struct dirent *de;
        DIR *d = opendir("/proc/self/fd");
        int n = 0;

        if (!d)
                return -1;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n - 1;
}

/* Mappings of segments (memfds named "sigillo-...") in this process. */
static int count_memfd_maps(void) {
        char line[512];
        FILE *f = fopen("/proc/self/maps", "re");
        int n = 0;

        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (strstr(line, "/memfd:sigillo-"))
                        n++;
        fclose(f);
        return n;
}

/* A reader process starts with its socket and stdio only. */
static int close_all_but(int keep) {
        int fds[256], n = 0;
        struct dirent *de;
        DIR *d = opendir("/proc/self/fd");

        if (!d)
                return -errno;
        while ((de = readdir(d)) && n < (int)ELEMENTS(fds)) {
                int fd = atoi(de->d_name);
                if (de->d_name[0] != '.' && fd > 2 && fd != keep && fd != dirfd(d))
                        fds[n++] = fd;
        }
        closedir(d);
        for (int i = 0; i < n; i++)
                close(fds[i]);
        return 0;
}

static uint64_t mono_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static int child_send(struct rstate *st, uint32_t ev, uint64_t seq, uint64_t a,
                      uint64_t b, uint64_t c, uint64_t d) {
        struct tmsg m = { .seq = seq, .event = ev, .a = a, .b = b, .c = c, .d = d };

        return sgl_fdpass_send(st->sock, &m, sizeof(m), NULL, 0) == (ssize_t)sizeof(m) ? 0 : -EPIPE;
}

/* Receives one message; 0, or -errno (-EPIPE: the writer is gone). */
static int child_recv(struct rstate *st, struct tmsg *m, int *fd) {
        size_t nfds = 0;
        int fds[1];
        ssize_t n;

        n = sgl_fdpass_recv(st->sock, m, sizeof(*m), fds, 1, &nfds);
        *fd = nfds > 0 ? fds[0] : -1;
        if (n == (ssize_t)sizeof(*m))
                return 0;
        if (*fd >= 0)
                close(*fd);
        return n < 0 ? (int)n : -EPIPE;
}

/* A segment event: map it.  Returns 1 if @m was one, 0 if not, < 0 on error. */
static int child_segment(struct rstate *st, const struct tmsg *m, int fd) {
        int k;

        switch (m->event) {
        case SGL_SEGMENT_OPENED:
        case SGL_SEGMENT_SEALED:
                if (fd < 0)
                        return -EBADF;
                k = sgl_reader_add_segment_consume_fd(st->r, fd);
                if (k < 0) {
                        fprintf(stderr, "reader %d: adding segment %llu (event %u): %s\n",
                                (int)getpid(), (unsigned long long)m->seq, m->event,
                                strerror(-k));
                        return k;
                }
                if (m->event == SGL_SEGMENT_OPENED)
                        st->opened++;
                else
                        st->sealed++;
                return 1;
        case SGL_SEGMENT_RETIRED:
                if (fd >= 0) {
                        close(fd);
                        return -EBADF;
                }
                st->retired++;
                return 1;
        default:
                return 0;
        }
}

static int push_dlv(struct rstate *st, const struct dlv *d) {
        if (st->n_dlv == st->a_dlv) {
                size_t n = st->a_dlv ? st->a_dlv * 2 : 256;
                struct dlv *a = realloc(st->dlv, n * sizeof(*a));
                if (!a)
                        return -ENOMEM;
                st->dlv = a;
                st->a_dlv = n;
        }
        st->dlv[st->n_dlv++] = *d;
        return 0;
}

static int push_held(struct rstate *st, sgl_chunk *c, uint64_t hash) {
        if (st->n_held == st->a_held) {
                size_t n = st->a_held ? st->a_held * 2 : 64;
                struct held *a = realloc(st->held, n * sizeof(*a));
                if (!a)
                        return -ENOMEM;
                st->held = a;
                st->a_held = n;
        }
        st->held[st->n_held++] = (struct held) { c, hash };
        return 0;
}

/* next() until it stops; every chunk goes to st->dlv (and st->held with
 * F_HOLD).  Returns the last next() result (-EAGAIN when drained). */
static int child_drain(struct rstate *st, unsigned flags) {
        sgl_chunk *c;
        int k;

        while ((k = sgl_reader_next(st->r, &c)) == 0) {
                struct dlv d = {
                        .id = sgl_chunk_id(c),
                        .version = sgl_chunk_version(c),
                        .size = sgl_chunk_size(c),
                        .hash = tu_fnv1a64(sgl_chunk_data(c), sgl_chunk_size(c)),
                        .expiry = sgl_chunk_expiry(c),
                };
                if (push_dlv(st, &d) < 0)
                        return -ENOMEM;
                if (flags & F_HOLD) {
                        if (push_held(st, c, d.hash) < 0)
                                return -ENOMEM;
                } else {
                        sgl_chunk_unref(c);
                }
        }
        return k;
}

/* Sends st->dlv as M_CHUNK messages and an M_END, then forgets it. */
static int child_report(struct rstate *st, int last) {
        for (size_t i = 0; i < st->n_dlv; i++) {
                const struct dlv *d = &st->dlv[i];
                if (child_send(st, M_CHUNK, d->id, d->version, d->size, d->hash, d->expiry) < 0)
                        return -EPIPE;
        }
        if (child_send(st, M_END, st->n_dlv, (uint64_t)(int64_t)last, 0, 0, 0) < 0)
                return -EPIPE;
        st->n_dlv = 0;
        return 0;
}

/* Handles every message already queued on the socket without blocking;
 * returns 1 if M_DONE was among them, 0 if not, < 0 on error. */
static int child_pump(struct rstate *st, int timeout_ms) {
        struct pollfd p = { .fd = st->sock, .events = POLLIN };
        int done = 0;

        while (poll(&p, 1, timeout_ms) > 0) {
                struct tmsg m;
                int fd, k;

                timeout_ms = 0;
                k = child_recv(st, &m, &fd);
                if (k < 0)
                        return k;
                k = child_segment(st, &m, fd);
                if (k < 0)
                        return k;
                if (k == 0) {
                        if (fd >= 0)
                                close(fd);
                        if (m.event != M_DONE)
                                return -EPROTO;
                        done = 1;
                }
        }
        return done;
}

/* M_STREAM: take segments and chunks as they come until M_DONE, then drain
 * once more (every segment sent before M_DONE has arrived) and report. */
static int child_stream(struct rstate *st, unsigned flags) {
        int k, last = -EAGAIN;

        for (;;) {
                int done = child_pump(st, 0);
                if (done < 0)
                        return done;
                last = child_drain(st, flags);
                if (last != -EAGAIN)
                        return last < 0 ? last : -EPROTO;
                if (done)
                        break;
                /* sleep until the writer commits or seals something, or a
                 * descriptor arrives */
                k = sgl_reader_wait(st->r, 2000);
                if (k == -ENOTCONN)
                        k = child_pump(st, 2) < 0 ? -EPIPE : 0;
                else if (k == -ETIMEDOUT)
                        k = 0;
                if (k < 0)
                        return k;
        }
        return child_report(st, last);
}

/* M_POLL: spin on next() while the writer stages a batch; report how many
 * polls saw nothing and how many chunks the first non-empty poll burst had. */
static int child_poll(struct rstate *st, uint64_t want, uint64_t timeout_ms) {
        uint64_t polls = 0, burst = 0, total = 0, deadline = mono_usec() + timeout_ms * 1000;
        sgl_chunk *c;
        int k;

        if (child_send(st, M_POLLING, 0, 0, 0, 0, 0) < 0)
                return -EPIPE;
        while (total < want && mono_usec() < deadline) {
                if (child_pump(st, 0) < 0)
                        return -EPIPE;
                k = sgl_reader_next(st->r, &c);
                if (k == -EAGAIN) {
                        if (total == 0)
                                polls++;
                        continue;
                }
                if (k < 0)
                        return k;
                /* the first chunk of the batch: the rest must be there now */
                for (;;) {
                        struct dlv d = {
                                .id = sgl_chunk_id(c),
                                .version = sgl_chunk_version(c),
                                .size = sgl_chunk_size(c),
                                .hash = tu_fnv1a64(sgl_chunk_data(c), sgl_chunk_size(c)),
                                .expiry = sgl_chunk_expiry(c),
                        };
                        sgl_chunk_unref(c);
                        if (push_dlv(st, &d) < 0)
                                return -ENOMEM;
                        total++;
                        if (burst == 0 || total == burst + 1)
                                burst = total;
                        k = sgl_reader_next(st->r, &c);
                        if (k != 0)
                                break;
                }
                if (k != -EAGAIN)
                        return k < 0 ? k : -EPROTO;
                if (burst != total)
                        break; /* not one burst: report what we have */
        }
        k = child_report(st, -EAGAIN);
        if (k < 0)
                return k;
        return child_send(st, M_POLLED, polls, burst, total, 0, 0);
}

static int child_verify(struct rstate *st) {
        uint64_t bad = 0;

        for (size_t i = 0; i < st->n_held; i++) {
                const sgl_chunk *c = st->held[i].c;
                if (tu_fnv1a64(sgl_chunk_data(c), sgl_chunk_size(c)) != st->held[i].hash)
                        bad++;
        }
        return child_send(st, M_VERIFIED, st->n_held, bad,
                          (uint64_t)(count_memfd_maps() - st->maps0), 0, 0);
}

static int child_release(struct rstate *st) {
        for (size_t i = 0; i < st->n_held; i++)
                sgl_chunk_unref(st->held[i].c);
        st->n_held = 0;
        return child_send(st, M_RELEASED, (uint64_t)(count_memfd_maps() - st->maps0),
                          (uint64_t)sgl_reader_get_segment_count(st->r), 0, 0, 0);
}

static int reader_main(void *userdata) {
        const struct rd_child *rc = userdata;
        struct rstate st = { .sock = rc->sock };
        int base, k;

        TU_CHILD_CHECK(close_all_but(st.sock) == 0);
        base = count_fds_child();
        st.maps0 = count_memfd_maps(); /* 0 unless a failed test left a writer */
        TU_CHILD_CHECK(base >= 4);
        TU_CHILD_CHECK(sgl_reader_new(rc->flags, &st.r) == 0);

        for (;;) {
                struct tmsg m;
                int fd;

                k = child_recv(&st, &m, &fd);
                TU_CHILD_CHECK(k == 0);
                k = child_segment(&st, &m, fd);
                TU_CHILD_CHECK(k >= 0);
                if (k > 0)
                        continue;
                if (m.event != M_CONTROL)
                        TU_CHILD_CHECK(fd < 0);

                switch (m.event) {
                case M_CONTROL:
                        TU_CHILD_CHECK(fd >= 0);
                        TU_CHILD_CHECK(sgl_reader_set_control_consume_fd(st.r, fd) == 0);
                        break;
                case M_DRAIN:
                        k = child_drain(&st, m.flags);
                        TU_CHILD_CHECK(child_report(&st, k) == 0);
                        break;
                case M_GET: {
                        sgl_chunk *c = NULL;
                        uint64_t ver = 0, size = 0, hash = 0;

                        k = sgl_reader_get(st.r, m.seq, &c);
                        if (k == 0) {
                                TU_CHILD_CHECK(sgl_chunk_id(c) == m.seq);
                                ver = sgl_chunk_version(c);
                                size = sgl_chunk_size(c);
                                hash = tu_fnv1a64(sgl_chunk_data(c), size);
                                sgl_chunk_unref(c);
                        }
                        TU_CHILD_CHECK(child_send(&st, M_GOT, m.seq, (uint64_t)(int64_t)k,
                                                  ver, size, hash) == 0);
                        break;
                }
                case M_WAIT: {
                        uint64_t t0 = mono_usec();
                        k = sgl_reader_wait(st.r, (int64_t)m.a);
                        TU_CHILD_CHECK(child_send(&st, M_WAITED, 0, (uint64_t)(int64_t)k,
                                                  mono_usec() - t0, 0, 0) == 0);
                        break;
                }
                case M_POLL:
                        TU_CHILD_CHECK(child_poll(&st, m.seq, m.a) == 0);
                        break;
                case M_STREAM:
                        TU_CHILD_CHECK(child_stream(&st, m.flags) == 0);
                        break;
                case M_VERIFY:
                        TU_CHILD_CHECK(child_verify(&st) == 0);
                        break;
                case M_RELEASE:
                        TU_CHILD_CHECK(child_release(&st) == 0);
                        break;
                case M_INFO:
                        TU_CHILD_CHECK(child_send(&st, M_INFOED,
                                                  (uint64_t)sgl_reader_get_segment_count(st.r),
                                                  st.opened, st.sealed, st.retired,
                                                  (uint64_t)(int64_t)(count_fds_child() - base)) == 0);
                        break;
                case M_QUIT:
                        for (size_t i = 0; i < st.n_held; i++)
                                sgl_chunk_unref(st.held[i].c);
                        free(st.held);
                        free(st.dlv);
                        st.r = sgl_reader_unref(st.r);
                        /* nothing of the area is left mapped */
                        TU_CHILD_CHECK(count_memfd_maps() == st.maps0);
                        TU_CHILD_CHECK(child_send(&st, M_BYE, 0, (uint64_t)base,
                                                  (uint64_t)count_fds_child(), 0, 0) == 0);
                        return 0;
                default:
                        TU_CHILD_CHECK(!"unknown command");
                }
        }
}

/* --------------------------------------------------------- writer side */

struct rd {
        pid_t pid;
        int sock;
        unsigned flags;
        bool strict;
};

/* Forks a reader process; do it before the writer exists. */
static void rd_spawn(struct rd *rd, unsigned flags) {
        struct timeval tv = { .tv_sec = 20 };
        struct rd_child rc = { .flags = flags };
        int sv[2];

        tu_socketpair(sv);
        rc.sock = sv[1];
        *rd = (struct rd) { .sock = sv[0], .flags = flags,
                            .strict = !(flags & SGL_READER_TRUSTED) };
        rd->pid = tu_fork(reader_main, &rc);
        close(sv[1]);
        /* a wedged reader fails the test instead of hanging it */
        assert_int_equal(setsockopt(rd->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        assert_int_equal(setsockopt(rd->sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
}

static void rd_send(struct rd *rd, uint32_t ev, uint32_t flags, uint64_t seq,
                    uint64_t a, int fd) {
        struct tmsg m = { .seq = seq, .event = ev, .flags = flags, .a = a };
        ssize_t n;

        n = sgl_fdpass_send(rd->sock, &m, sizeof(m), fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);
        if (n != (ssize_t)sizeof(m))
                fail_msg("sending event %u to reader %d: %zd", ev, (int)rd->pid, n);
}

static void rd_recv(struct rd *rd, struct tmsg *m, uint32_t want) {
        size_t nfds = 0;
        int fds[1];
        ssize_t n;

        n = sgl_fdpass_recv(rd->sock, m, sizeof(*m), fds, 1, &nfds);
        if (n != (ssize_t)sizeof(*m))
                fail_msg("reader %d gone or silent (recv %zd): see its stderr",
                         (int)rd->pid, n);
        assert_int_equal(nfds, 0);
        if (m->event != want)
                fail_msg("reader %d sent %u, expected %u", (int)rd->pid, m->event, want);
}

/* Reads M_CHUNK... M_END into @out (up to @max); returns the count and the
 * reader's last next() result in *@last. */
static size_t rd_collect(struct rd *rd, struct dlv *out, size_t max, int *last) {
        struct tmsg m;
        size_t n = 0;

        for (;;) {
                size_t nfds = 0;
                int fds[1];
                ssize_t k = sgl_fdpass_recv(rd->sock, &m, sizeof(m), fds, 1, &nfds);

                if (k != (ssize_t)sizeof(m))
                        fail_msg("reader %d gone or silent (recv %zd)", (int)rd->pid, k);
                assert_int_equal(nfds, 0);
                if (m.event == M_END)
                        break;
                assert_int_equal(m.event, M_CHUNK);
                if (n < max)
                        out[n] = (struct dlv) { .id = m.seq, .version = m.a, .size = m.b,
                                                .hash = m.c, .expiry = m.d };
                n++;
        }
        assert_int_equal(m.seq, n);
        assert_true(n <= max);
        if (last)
                *last = (int)(int64_t)m.a;
        return n;
}

/* The reader takes every chunk it can; returns how many (all in @out). */
static size_t rd_drain(struct rd *rd, unsigned flags, struct dlv *out, size_t max) {
        int last;
        size_t n;

        rd_send(rd, M_DRAIN, flags, 0, 0, -1);
        n = rd_collect(rd, out, max, &last);
        assert_int_equal(last, -EAGAIN);
        return n;
}

static int rd_get(struct rd *rd, uint64_t id, struct dlv *out) {
        struct tmsg m;

        rd_send(rd, M_GET, 0, id, 0, -1);
        rd_recv(rd, &m, M_GOT);
        assert_int_equal(m.seq, id);
        *out = (struct dlv) { .id = id, .version = m.b, .size = m.c, .hash = m.d };
        return (int)(int64_t)m.a;
}

static void rd_info(struct rd *rd, struct tmsg *m) {
        rd_send(rd, M_INFO, 0, 0, 0, -1);
        rd_recv(rd, m, M_INFOED);
        /* a reader keeps no descriptor of what it maps */
        assert_int_equal((int64_t)m->d, 0);
}

static void rd_quit(struct rd *rd) {
        struct tmsg m;

        rd_send(rd, M_QUIT, 0, 0, 0, -1);
        rd_recv(rd, &m, M_BYE);
        assert_int_equal(m.b, m.a); /* reader's descriptors back to its start */
        tu_wait_exit(rd->pid, 0);
        close(rd->sock);
        rd->sock = -1;
}

/* The rendezvous host of these tests: fans every segment event out to the
 * subscribed readers (STRICT ones get only sealed segments). */
struct hub {
        struct rd *rd[MAX_READERS];
        size_t n;
        unsigned opened, sealed, retired;
        uint64_t last_sealed;    /* seq of the newest SGL_SEGMENT_SEALED */
};

static void send_segment(struct rd *rd, uint64_t seq, sgl_segment_event ev, int fd) {
        if (rd->strict && ev == SGL_SEGMENT_OPENED)
                return;
        rd_send(rd, (uint32_t)ev, 0, seq, 0, fd);
}

static void hub_fn(void *userdata, uint64_t seq, sgl_segment_event ev, int fd) {
        struct hub *h = userdata;

        switch (ev) {
        case SGL_SEGMENT_OPENED:
                h->opened++;
                assert_true(fd >= 0);
                break;
        case SGL_SEGMENT_SEALED:
                h->sealed++;
                h->last_sealed = seq;
                assert_true(fd >= 0);
                assert_true(fcntl(fd, F_GET_SEALS) & F_SEAL_WRITE);
                break;
        case SGL_SEGMENT_RETIRED:
                h->retired++;
                assert_int_equal(fd, -1);
                break;
        default:
                fail_msg("unknown segment event %d", (int)ev);
        }
        for (size_t i = 0; i < h->n; i++)
                send_segment(h->rd[i], seq, ev, fd);
}

static void join_fn(void *userdata, uint64_t seq, sgl_segment_event ev, int fd) {
        send_segment(userdata, seq, ev, fd);
}

/* A reader joins: every live segment now, every new one as it comes. */
static void hub_join(struct hub *h, sgl_writer *w, struct rd *rd) {
        assert_true(sgl_writer_foreach_segment(w, join_fn, rd) >= 0);
        assert_true(h->n < MAX_READERS);
        h->rd[h->n++] = rd;
}

static void hub_control(sgl_writer *w, struct rd *rd) {
        int fd = sgl_writer_control_fd(w);

        assert_true(fd >= 0);
        rd_send(rd, M_CONTROL, 0, 0, 0, fd);
        close(fd);
}

static sgl_writer *writer_new(struct hub *h, unsigned flags) {
        sgl_writer *w = NULL;

        assert_int_equal(sgl_writer_new("wrtest", flags, &w), 0);
        sgl_writer_set_segment_fn(w, hub_fn, h);
        return w;
}

/* ------------------------------------------------------------ payloads */

/* What the writer put under an id, as the test remembers it. */
struct put {
        uint64_t id, size, hash, expiry;
};

/* Stages a copy of the pattern of @seed (sgl_writer_write()). */
static struct put put_write(sgl_writer *w, uint64_t id, uint64_t seed, size_t size,
                            uint64_t expiry) {
        uint8_t *buf = malloc(size ? size : 1);
        struct put p = { .size = size, .expiry = expiry };

        assert_non_null(buf);
        tu_fill_pattern(buf, size, seed);
        p.hash = tu_fnv1a64(buf, size);
        assert_int_equal(sgl_writer_write(w, id, expiry, buf, size, &p.id), 0);
        if (id != 0)
                assert_int_equal(p.id, id);
        free(buf);
        return p;
}

/* Stages the pattern of @seed filled in place (sgl_writer_alloc()). */
static struct put put_alloc(sgl_writer *w, uint64_t id, uint64_t seed, size_t size,
                            uint64_t expiry) {
        struct put p = { .size = size, .expiry = expiry };
        void *data = NULL;

        assert_int_equal(sgl_writer_alloc(w, id, expiry, size, &data, &p.id), 0);
        assert_non_null(data);
        tu_fill_pattern(data, size, seed);
        p.hash = tu_fnv1a64(data, size);
        return p;
}

static void assert_dlv_is(const struct dlv *d, const struct put *p) {
        assert_int_equal(d->id, p->id);
        assert_int_equal(d->size, p->size);
        assert_int_equal(d->hash, p->hash);
        assert_int_equal(d->expiry, p->expiry);
}

/* The reader's stream now yields exactly @n puts, in this order. */
static void expect_drain(struct rd *rd, const struct put *p, size_t n) {
        struct dlv d[64];
        size_t got;

        assert_true(n <= ELEMENTS(d));
        got = rd_drain(rd, 0, d, ELEMENTS(d));
        if (got != n)
                for (size_t i = 0; i < got; i++)
                        print_message("reader %d got id %llu version %llu size %llu\n",
                                      (int)rd->pid, (unsigned long long)d[i].id,
                                      (unsigned long long)d[i].version,
                                      (unsigned long long)d[i].size);
        assert_int_equal(got, n);
        for (size_t i = 0; i < n; i++) {
                assert_dlv_is(&d[i], &p[i]);
                if (i > 0)
                        assert_true(d[i].version > d[i - 1].version);
        }
}

static void expect_get(struct rd *rd, const struct put *p) {
        struct dlv d;

        assert_int_equal(rd_get(rd, p->id, &d), 0);
        assert_int_equal(d.size, p->size);
        assert_int_equal(d.hash, p->hash);
}


/* ============================================================== tests === */

static sgl_writer *setup(struct hub *h, struct rd *rd, const unsigned *flags, size_t n,
                         unsigned wflags) {
        sgl_writer *w;

        for (size_t i = 0; i < n; i++)
                rd_spawn(&rd[i], flags[i]);
        w = writer_new(h, wflags);
        for (size_t i = 0; i < n; i++)
                hub_join(h, w, &rd[i]);
        return w;
}

static struct put commit_one(sgl_writer *w, uint64_t id, uint64_t seed, size_t size) {
        struct put p = put_write(w, id, seed, size, 0);

        assert_int_equal(sgl_writer_commit(w), 0);
        return p;
}

static uint64_t rng(uint64_t *s) {
        uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

/* The record span of a payload, as the format defines it. */
static uint64_t span(uint64_t len) {
        return 64 + ((len + 63) & ~(uint64_t)63);
}

static uint64_t page_up(uint64_t n) {
        return (n + PAGE - 1) & ~(uint64_t)(PAGE - 1);
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
        for (int i = 0; i < 4; i++)
                rd_spawn(&rd[i], flags[i]);
        w = writer_new(&h, config ? SGL_WRITER_SEAL_BY_COPY : 0);
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
        /* four sockets, the control page, one descriptor per sealed segment */
        assert_int_equal(tu_count_fds(), fds + 4 + 1 + st.segments);
        print_message("gc config %u: %llu commits, %llu gc runs, %llu relocated, "
                      "%llu retired, %llu seal copies, %zu/%zu/%zu delivered\n", config,
                      (unsigned long long)st.commits, (unsigned long long)st.gc_runs,
                      (unsigned long long)st.gc_relocated, (unsigned long long)st.retired,
                      (unsigned long long)st.seal_copies, n[1], n[2], nlive);

        for (int i = 0; i < 4; i++)
                rd_quit(&rd[i]);
        assert_null(sgl_writer_unref(w));
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

        for (int i = 0; i < 3; i++)
                rd_spawn(&rd[i], flags[i]);
        w = writer_new(&h, 0);
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
        assert_int_equal(tu_count_fds(), fds + 3 + 1 + 1);

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

/* Lowers the soft RLIMIT_NOFILE to the lowest free descriptor number: the
 * process can then open no descriptor (EMFILE) until fd_unlimit(). */
static void fd_limit(struct rlimit *old) {
        struct rlimit lim;
        int lowest = open("/dev/null", O_RDONLY | O_CLOEXEC);

        assert_true(lowest >= 0);
        close(lowest);
        assert_int_equal(getrlimit(RLIMIT_NOFILE, old), 0);
        lim = *old;
        lim.rlim_cur = (rlim_t)lowest;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &lim), 0);
}

static void fd_unlimit(const struct rlimit *old) {
        assert_int_equal(setrlimit(RLIMIT_NOFILE, old), 0);
}

/* ---------------------------------------------- tombstones and expiry */

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

        for (int i = 0; i < 3; i++)
                rd_spawn(&rd[i], flags[i]);
        w = writer_new(&h, 0);
        assert_int_equal(sgl_writer_set_gc(w, 0, 0, 0), 0);
        hub_join(&h, w, &rd[0]);

        /* A: 64 + 64 for X, 64 + 3008 for P: 25% of its page is garbage */
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

        /* automatic compaction takes B (all garbage), not A (25%) nor Q */
        assert_int_equal(sgl_writer_set_gc(w, 40, 1, 0), 0);
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
        for (int i = 0; i < 2; i++) {
                assert_int_equal(rd_get(&rd[i], 1, &g), -ENOENT);
                expect_get(&rd[i], &p);
                expect_get(&rd[i], &q);
        }
        expect_drain(&rd[1], want, 2);
        expect_drain(&rd[0], want, 2);

        /* everything compacted: X is gone for good, P and Q stay */
        assert_true(sgl_writer_gc(w) >= 2);
        assert_false(seg_live(w, seq_a));
        hub_join(&h, w, &rd[2]);
        for (int i = 0; i < 3; i++) {
                assert_int_equal(rd_get(&rd[i], 1, &g), -ENOENT);
                expect_get(&rd[i], &p);
                expect_get(&rd[i], &q);
        }
        expect_drain(&rd[2], want, 2);
        expect_drain(&rd[0], NULL, 0);
        assert_int_equal(sgl_writer_delete(w, 1), -ENOENT);

        for (int i = 0; i < 3; i++)
                rd_quit(&rd[i]);
        assert_null(sgl_writer_unref(w));
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

        for (int i = 0; i < 4; i++)
                rd_spawn(&rd[i], flags[i]);
        w = writer_new(&h, 0);
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
        assert_int_equal(sgl_writer_set_gc(w, 40, 1, 0), 0);
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
        for (int i = 0; i < 2; i++) {
                assert_int_equal(rd_get(&rd[i], 1, &g), -ENOENT);
                expect_get(&rd[i], &p);
                expect_get(&rd[i], &q);
        }
        expect_drain(&rd[1], want, 2);

        /* everything compacted: the relocated P and Q stay visible */
        assert_true(sgl_writer_gc(w) >= 1);
        assert_false(seg_live(w, seq_a));
        hub_join(&h, w, &rd[2]);
        hub_join(&h, w, &rd[3]);
        for (int i = 0; i < 4; i++) {
                assert_int_equal(rd_get(&rd[i], 1, &g), -ENOENT);
                expect_get(&rd[i], &p);
                expect_get(&rd[i], &q);
        }
        expect_set(&rd[2], want, 2);
        expect_set(&rd[3], want, 2);
        expect_set(&rd[0], want, 2); /* first stream: relocation order, each once */
        expect_drain(&rd[1], NULL, 0);

        for (int i = 0; i < 4; i++)
                rd_quit(&rd[i]);
        assert_null(sgl_writer_unref(w));
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

        for (int i = 0; i < 2; i++)
                rd_spawn(&rd[i], flags[i]);
        w = writer_new(&h, SGL_WRITER_SEAL_BY_COPY);
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
        assert_int_equal(sgl_writer_set_gc(w, 40, 1, 0), 0);
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
        for (int i = 0; i < 2; i++) {
                assert_int_equal(rd_get(&rd[i], 1, &g), -ENOENT);
                for (int j = 0; j < 3; j++)
                        expect_get(&rd[i], &want[j]);
        }
        expect_set(&rd[1], want, 3);
        expect_set(&rd[0], want, 3);

        for (int i = 0; i < 2; i++)
                rd_quit(&rd[i]);
        assert_null(sgl_writer_unref(w));
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

/* bytes_live is exactly the spans of live chunks; bytes_used the page
 * rounded commits of live segments; compaction shrinks bytes_used. */
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

        rd_spawn(&rd[0], flags[0]);
        w = writer_new(&h, 0);
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
                        a.used += page_up(64 + commit);
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
                        a.used += page_up(64 + commit);
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
        a.used += page_up(64 + 5 * 64);
        a.segs++;
        expect_stats(w, &a);

        /* a chunk that expires stops counting once it has */
        cur[41] = put_write(w, 41, 0x33e0, 1000, sgl_now_ns() + 100 * NSEC_PER_MSEC);
        assert_int_equal(sgl_writer_commit(w), 0);
        a.used += page_up(64 + span(1000));
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
        a.used = page_up(64 + a.live + span(8 * (uint64_t)k));
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
                a.used += page_up(64 + span(100));
                a.segs++;
        }
        expect_stats(w, &a);
        expect_set(&rd[0], &cur[6], 35);

        rd_quit(&rd[0]);
        assert_null(sgl_writer_unref(w));
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
                assert_int_equal(tu_count_fds(), fds + 2 + 1 + st.segments);
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
        for (int i = 0; i < 2; i++)
                rd_quit(&rd[i]);
        assert_null(sgl_writer_unref(w));
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
