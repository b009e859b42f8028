/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench.h - what the parts of sigillo-bench share.
 *
 * A *transport* (struct alt) moves messages from one writer process to N
 * reader processes.  The drivers in driver.c run every measurement the same
 * way over any transport: create it in the parent, fork the writer and the
 * readers, set up, stamp each message with its sequence number and a known
 * payload, and have every reader check the sequence and a checksum of every
 * byte.  So a transport that drops, reorders or corrupts data is caught, and
 * no transport skips the work of reading what it was sent.
 */
#ifndef SIGILLO_BENCH_H
#define SIGILLO_BENCH_H

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_MAX_READERS 16
#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

/* ------------------------------------------------------------ waiting */

/* A futex word with a waiter count: the side that makes progress wakes
 * only when someone sleeps, as a well-tuned ring does. */
struct waitq {
        _Atomic uint32_t seq;
        _Atomic uint32_t waiters;
};

void waitq_signal(struct waitq *q);
/* Sleeps until @q is signalled or @timeout_us passes; the caller checks its
 * condition after waitq_prepare() and before waitq_sleep(). */
uint32_t waitq_prepare(struct waitq *q);
void waitq_sleep(struct waitq *q, uint32_t seen, long timeout_us);
void waitq_finish(struct waitq *q);
int futex_wait_u32(_Atomic uint32_t *w, uint32_t val, long timeout_us);
void futex_wake_all(_Atomic uint32_t *w);

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
}

/* A busy-poll step: spin, but yield now and then, so that two spinning
 * processes sharing one CPU under load still make progress. */
static inline void busy_pause(unsigned *spins) {
        cpu_relax();
        if (++*spins % 1024 == 0)
                sched_yield();
}

uint64_t now_ns(void);

/* ------------------------------------------------------------- memory */

struct mem {
        uint64_t rss, pss, shared; /* KiB, from /proc/self/smaps_rollup */
};

int mem_self(struct mem *m);

/* ------------------------------------------------------------ payload */

/* The writer sends src[0..size) with its first 8 bytes replaced by the
 * message's sequence number; a reader sums every 64-bit word. */
extern const uint64_t *bench_src;
void payload_init(size_t max_size);
uint64_t payload_sum(const void *data, size_t size);
uint64_t payload_expect(uint64_t seq, size_t size);

/* ---------------------------------------------------------- transports */

struct chan;

enum {
        ALT_WINDOW = 1u << 0,   /* needs the driver's credit window */
        ALT_COPYING = 1u << 1,  /* each read is a copy: re-send to re-read */
        ALT_ICEORYX = 1u << 2,  /* needs iox-roudi */
        ALT_PRODUCES = 1u << 3, /* send() writes the payload into shared memory */
};

struct alt {
        const char *name;
        unsigned flags;
        /* parent, before fork: shared state and descriptors */
        int (*create)(struct chan *c);
        /* in the writer process */
        int (*open_writer)(struct chan *c);
        /* serve connecting readers / pending work; may be NULL */
        int (*serve)(struct chan *c);
        int (*send)(struct chan *c, const void *buf, size_t size);
        /* make everything sent visible (group sealing); may be NULL */
        int (*flush)(struct chan *c);
        void (*close_writer)(struct chan *c);
        /* in reader process @i */
        int (*open_reader)(struct chan *c, unsigned i);
        int (*recv)(struct chan *c, unsigned i, const void **data, size_t *size);
        void (*release)(struct chan *c, unsigned i);
        void (*close_reader)(struct chan *c, unsigned i);
        /* parent, after the processes ended */
        void (*destroy)(struct chan *c);
        /* the settings a user would choose, printed in the table; may be NULL */
        const char *(*settings)(size_t size, int kind);
};

enum chan_kind { CH_LATENCY, CH_TPUT, CH_FANOUT, CH_COMMIT };

struct chan {
        const struct alt *alt;
        unsigned nreaders;
        size_t size;            /* message size of this measurement */
        bool busy;              /* busy-poll instead of blocking */
        int kind;               /* enum chan_kind: what to tune for */
        unsigned id;            /* unique per channel in this run */
        unsigned window;        /* messages in flight (credit window) */
        void *priv;             /* the transport's state (malloc'd in create) */
};

extern const struct alt alt_unix_stream, alt_unix_seqpacket, alt_pipe;
extern const struct alt alt_ring_busy, alt_ring_futex, alt_sealed;
extern const struct alt alt_iceoryx;
extern const struct alt alt_sgl_trusted, alt_sgl_strict;

/* A framed byte stream (AF_UNIX stream, pipe): 8-byte length, payload;
 * the reader reads greedily into one buffer, so small messages cost less
 * than one read() each. */
struct fdstream {
        int fd;
        uint8_t *buf;
        size_t cap, off, have, cur;
};

int fdstream_init(struct fdstream *s, int fd, size_t max_msg);
int fdstream_send(int fd, const void *buf, size_t size);
int fdstream_recv(struct fdstream *s, const void **data, size_t *size);
void fdstream_release(struct fdstream *s);
void fdstream_fini(struct fdstream *s);

/* iceoryx: NULL if usable, else why not */
const char *iox_unavailable(void);
int iox_start(void);
void iox_stop(void);

/* ------------------------------------------------------------- drivers */

struct result {
        double value;           /* ns per op, or bytes/s, per scenario kind */
        double msgs;            /* messages/s (throughput) */
        uint64_t bad;           /* sequence or checksum errors */
        uint64_t checked;       /* messages verified */
        struct mem wmem, rmem;  /* writer; mean of the readers */
        int err;
};

struct run {
        const struct alt *alt;
        size_t size;
        unsigned readers;
        uint64_t iters;
        unsigned reads;         /* fanout: times each reader reads a chunk */
        bool busy;
};

int drive_latency(const struct run *r, struct result *res);
int drive_throughput(const struct run *r, struct result *res);
int drive_fanout(const struct run *r, struct result *res);
int drive_commit(const struct run *r, struct result *res);

/* ---------------------------------------------------------------- stats */

double stats_percentile(double *v, size_t n, double p);

#endif
