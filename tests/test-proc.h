/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-proc.h - the cross-process machinery of the tests that run a writer
 * and its readers in different processes (test-writer-reader, test-gc,
 * test-hostile-reader, test-hostile-writer); never installed, never linked
 * into the library.
 *
 * Owns:
 *  - children and their sockets: forking a child with one end of a fresh
 *    SOCK_SEQPACKET socketpair, receiving from children with a deadline that
 *    notices a child that died, reaping them (fork_with_socket(), run_pair(),
 *    parent_recv(), wait_children());
 *  - message framing between processes, one fixed-size message with at most
 *    one descriptor (SCM_RIGHTS, src/fdpass.c), in two dialects:
 *      struct hmsg (H_*): the short scripted exchanges of the hostile tests
 *        (hsend(), hrecv());
 *      struct tmsg (M_*): the command protocol of reader processes (rd_*);
 *  - the reader-process harness: reader processes serving commands (drain,
 *    get, wait, poll, stream, verify, release, info, pin, quit) and reporting
 *    ids, versions, sizes and FNV-1a checksums of what they read; their test
 *    process side rd_*() and the expect_*() assertions on what they report;
 *  - segment capture: the hub that fans a writer's segment callback out to
 *    reader processes (hub_*()), and struct seg_cap, a record of every
 *    segment event with a dup of its descriptor (cap_*());
 *  - payloads: the seeded patterns the writer stages and what the test
 *    remembers of them (struct put, put_*(), pattern_fnv(), chunk_is()),
 *    and the deterministic sequence that drives random histories (rng());
 *  - child-side checks and probes: FAILS_WITH(), MMAP_FAILS_WITH(),
 *    reopen(), may_open_rw(), fd_fnv(), count_sigillo_maps();
 *  - running the test process out of descriptors (fd_limit(), fd_unlimit()).
 *
 * As in test-util.h, helpers marked "asserts" fail the current cmocka test
 * and may run only in the test process, never in a tu_fork() child; the
 * others are safe in children.
 *
 * Order: every reader process is forked BEFORE the writer exists: a child
 * forked later would inherit the writer's read-write mappings (which no real
 * reader has, and whose existence makes F_SEAL_WRITE fail with EBUSY).
 */
#ifndef SGL_TEST_PROC_H
#define SGL_TEST_PROC_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "sigillo.h"
#include "test-util.h"

#define ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

/* (seals of Linux 5.1 and 6.3, for older headers) */
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif

/* ================================================================ time === */

/* CLOCK_MONOTONIC in microseconds. */
int64_t mono_usec(void);

/* Sleeps @ms milliseconds (whole, across EINTR). */
void sleep_ms(unsigned ms);

/* ===================================================== children, sockets === */

/* The userdata of a child that needs nothing but its socket. */
struct sock_ctx {
        int sock;
};

/*
 * fork_with_socket() - forks @fn(@ctx) with one end of a fresh socketpair
 * (tu_socketpair()): that end is stored in *@child_end, a field of @ctx,
 * before the fork and closed in the test process after it; the other end
 * goes to *@sock.  Returns the child's pid.  Asserts.
 */
pid_t fork_with_socket(tu_child_fn fn, void *ctx, int *child_end, int *sock);

/* Runs @a and @b in two children talking over one socketpair (each gets its
 * end as a struct sock_ctx) and reaps both (wait_children()).  Asserts. */
void run_pair(tu_child_fn a, tu_child_fn b);

/* How long the test process waits for its children at most: a child that
 * fails leaves the others blocked on sockets whose other ends they hold
 * themselves (inherited), so EOF alone cannot be relied on. */
#define CHILD_DEADLINE_USEC (15 * 1000000LL)

/* ======================================== scripted messages (struct hmsg) === */

enum {
        H_SEG = 1,   /* a segment (or control page) descriptor; a = seq, b = event */
        H_SUM,       /* a reader's checksum: a = fnv, b = version */
        H_GO,        /* go on */
        H_DONE,      /* a child's work is over: a, b = its results */
        H_RESULT,    /* a reader's final report */
        H_READY,     /* a child reached the agreed point */
        H_LOCAL = 10 /* a test's own types start here */
};

struct hmsg {
        uint32_t type;
        uint32_t pad;
        uint64_t a;
        uint64_t b;
        uint64_t c;
};

/* Sends one message with at most one descriptor (@fd borrowed, -1: none);
 * 0 or -errno. */
int hsend(int sock, uint32_t type, uint64_t a, uint64_t b, int fd);
int hsend3(int sock, uint32_t type, uint64_t a, uint64_t b, uint64_t c, int fd);

/* Receives one message of @type (0: any); *fd gets its descriptor or -1
 * (@fd NULL: a descriptor is closed).  EOF and a wrong type are errors
 * (-EPIPE, -EPROTO). */
int hrecv(int sock, uint32_t type, struct hmsg *m, int *fd);

/* In the test process: receives a message of @type from a child.  If a
 * child in @pids fails first, or nothing comes in time, kills every child
 * in @pids (so nothing lingers) and fails the test. */
void parent_recv(int sock, uint32_t type, struct hmsg *m, int *fd,
                 const pid_t *pids, size_t npids);

/* Reaps every child of @pids (entries <= 0 are skipped, and all are set to
 * 0); each must exit 0.  The first failure (or the deadline) kills the
 * others and fails the test. */
void wait_children(pid_t *pids, size_t npids);

/* ================================================= child-side checks === */

/* An errno check for children: @expr must fail (-1) with errno @err. */
#define FAILS_WITH(expr, err)                                                 \
        do {                                                                  \
                errno = 0;                                                    \
                long _r = (long)(expr);                                       \
                if (_r != -1 || errno != (err)) {                             \
                        fprintf(stderr, "%s:%d: %s returned %ld errno %d (%s), "\
                                "wanted errno %d (%s)\n", __FILE__, __LINE__,  \
                                #expr, _r, errno, strerror(errno), (err),     \
                                strerror(err));                               \
                        return __LINE__ % 255 ? __LINE__ % 255 : 255;         \
                }                                                             \
        } while (0)

/* Same for mmap(), which fails with MAP_FAILED. */
#define MMAP_FAILS_WITH(expr, err)                                            \
        do {                                                                  \
                errno = 0;                                                    \
                void *_p = (expr);                                            \
                if (_p != MAP_FAILED || errno != (err)) {                     \
                        fprintf(stderr, "%s:%d: %s gave %p errno %d (%s), "   \
                                "wanted errno %d (%s)\n", __FILE__, __LINE__,  \
                                #expr, _p, errno, strerror(errno), (err),     \
                                strerror(err));                               \
                        if (_p != MAP_FAILED)                                 \
                                munmap(_p, 4096);                             \
                        return __LINE__ % 255 ? __LINE__ % 255 : 255;         \
                }                                                             \
        } while (0)

/* A new description of @fd's file, opened by path (/proc/self/fd) with
 * @flags; the descriptor or -1 (errno). */
int reopen(int fd, int flags);

/* Whether the kernel will let us open @st read-write by path (DAC only:
 * root overrides it, otherwise the owner or "other" write bit decides). */
bool may_open_rw(const struct stat *st);

/* Checksum of a whole file, read through the descriptor (not a mapping);
 * its size in *@ret_size (may be NULL).  0 on a read error. */
uint64_t fd_fnv(int fd, uint64_t *ret_size);

/* Mappings of this process backed by a memfd named "sigillo-..." (every
 * segment and control page, and the tests' own crafted ones); -1 on error. */
int count_sigillo_maps(void);

/* ============================================================ payloads === */

/* FNV-1a of @size bytes of pattern @seed (tu_fill_pattern()); abort()s if
 * out of memory. */
uint64_t pattern_fnv(size_t size, uint64_t seed);

/* Whether @c is chunk @id holding exactly @size bytes of pattern @seed. */
bool chunk_is(const sgl_chunk *c, uint64_t id, size_t size, uint64_t seed);

/* splitmix64: the next number of the deterministic sequence in *@s. */
uint64_t rng(uint64_t *s);

/* What the writer put under an id, as the test remembers it. */
struct put {
        uint64_t id, size, hash, expiry;
};

/* Stages a copy of the pattern of @seed (sgl_writer_write()).  Asserts. */
struct put put_write(sgl_writer *w, uint64_t id, uint64_t seed, size_t size,
                     uint64_t expiry);

/* Stages the pattern of @seed filled in place (sgl_writer_alloc()).  Asserts. */
struct put put_alloc(sgl_writer *w, uint64_t id, uint64_t seed, size_t size,
                     uint64_t expiry);

/* put_write() without expiry, committed alone.  Asserts. */
struct put commit_one(sgl_writer *w, uint64_t id, uint64_t seed, size_t size);

/* ==================================================== segment capture === */

/* What a rendezvous host keeps: every segment event, with our own dup of
 * its descriptor (-1 for SGL_SEGMENT_RETIRED). */
struct seg_cap {
        size_t n;
        bool overflow;
        struct {
                uint64_t seq;
                sgl_segment_event ev;
                int fd;
        } e[128];
};

/* A segment callback (sgl_writer_set_segment_fn()) recording into the
 * struct seg_cap @userdata.  Safe in children. */
void cap_fn(void *userdata, uint64_t seq, sgl_segment_event ev, int fd);

/* Index of the last event @ev in @cap, or -1. */
int cap_last(const struct seg_cap *cap, sgl_segment_event ev);

/* The descriptor of the last @ev event; asserts there is one. */
int cap_fd(const struct seg_cap *cap, sgl_segment_event ev);

/* Closes every descriptor of @cap and forgets its events. */
void cap_close(struct seg_cap *cap);

/* =============================================== reader processes (rd) === */

#define MAX_READERS 8

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
        M_PIN,           /* seq: id; vmsplice() the chunk's page into a pipe */
        M_UNPIN,
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
        M_PINNED,        /* a: result */
};

enum { F_HOLD = 1 };

/* What a reader reports about one chunk. */
struct dlv {
        uint64_t id, version, size, hash, expiry;
};

/* The test process's side of a reader process. */
struct rd {
        pid_t pid;
        int sock;
        unsigned flags;
        bool strict;
};

/* Forks a reader process (sgl_reader_new(@flags)) that starts with its
 * socket and stdio only; do it before the writer exists.  Asserts. */
void rd_spawn(struct rd *rd, unsigned flags);

/* Sends a command or a segment event (@fd borrowed, -1: none).  Asserts. */
void rd_send(struct rd *rd, uint32_t ev, uint32_t flags, uint64_t seq,
             uint64_t a, int fd);

/* Receives the reply @want into @m.  Asserts. */
void rd_recv(struct rd *rd, struct tmsg *m, uint32_t want);

/* Reads M_CHUNK... M_END into @out (up to @max); returns the count and the
 * reader's last next() result in *@last (may be NULL).  Asserts. */
size_t rd_collect(struct rd *rd, struct dlv *out, size_t max, int *last);

/* The reader takes every chunk it can (M_DRAIN with @flags); returns how
 * many (all in @out).  Asserts. */
size_t rd_drain(struct rd *rd, unsigned flags, struct dlv *out, size_t max);

/* The reader's sgl_reader_get(@id): its result, and what it got in @out.
 * Asserts. */
int rd_get(struct rd *rd, uint64_t id, struct dlv *out);

/* The reader's M_INFOED in @m; asserts it keeps no descriptor of what it
 * maps. */
void rd_info(struct rd *rd, struct tmsg *m);

/* The reader quits, having unmapped everything, with the descriptors it
 * started with, and exits 0; asserts all that. */
void rd_quit(struct rd *rd);

/* The rendezvous host of these tests: fans every segment event out to the
 * subscribed readers (STRICT ones get only sealed segments), asserting
 * what the writer hands out (a write-sealed fd with SEALED, -1 with
 * RETIRED). */
struct hub {
        struct rd *rd[MAX_READERS];
        size_t n;
        unsigned opened, sealed, retired;
        uint64_t last_sealed;    /* seq of the newest SGL_SEGMENT_SEALED */
};

/* A reader joins: every live segment now, every new one as it comes.
 * Asserts. */
void hub_join(struct hub *h, sgl_writer *w, struct rd *rd);

/* Hands the reader the writer's control page.  Asserts. */
void hub_control(sgl_writer *w, struct rd *rd);

/* Forks a reader process for each of @flags[0..@n) into @rd, then makes
 * the writer ("wrtest", @wflags) with its segment events going to @h; no
 * reader has joined yet.  Asserts. */
sgl_writer *spawn_readers(struct hub *h, struct rd *rd, const unsigned *flags, size_t n,
                          unsigned wflags);

/* spawn_readers(), and every reader joins at once.  Asserts. */
sgl_writer *setup(struct hub *h, struct rd *rd, const unsigned *flags, size_t n,
                  unsigned wflags);

/* rd_quit() for @rd[0..@n), then the writer goes; asserts it was the last
 * reference. */
void teardown(sgl_writer *w, struct rd *rd, size_t n);

/* What a reader reported is what was put (id, size, bytes, expiry). */
void assert_dlv_is(const struct dlv *d, const struct put *p);

/* The reader's stream now yields exactly @n puts, in this order, with
 * increasing versions.  Asserts. */
void expect_drain(struct rd *rd, const struct put *p, size_t n);

/* The reader's get() of @p's id returns @p's bytes.  Asserts. */
void expect_get(struct rd *rd, const struct put *p);

/* Lowers the soft RLIMIT_NOFILE to the lowest free descriptor number: the
 * process can then open no descriptor (EMFILE) until fd_unlimit().
 * Both assert. */
void fd_limit(struct rlimit *old);
void fd_unlimit(const struct rlimit *old);

#endif
