/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sigillo.h - the one public header of libsigillo.
 *
 * libsigillo moves chunks of bytes from one writer to many readers through
 * sealed shared memory.  An *area* is an append-only log of *segments*; each
 * segment is one memfd.  Committed chunks are immutable once their segment is
 * sealed (F_SEAL_WRITE), and readers at the STRICT integrity level only ever
 * see sealed segments.
 *
 * Conventions: every function that can fail returns a negative errno value
 * and leaves its out-parameters untouched on failure; objects are reference
 * counted and every *_unref() accepts NULL and returns NULL; the library never
 * prints and never exits; every descriptor it creates is O_CLOEXEC.
 */
#ifndef SIGILLO_H
#define SIGILLO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sgl_writer sgl_writer;
typedef struct sgl_reader sgl_reader;
typedef struct sgl_chunk sgl_chunk;
typedef struct sgl_host sgl_host;

/* ---------------------------------------------------------------- writer */

/* Flags for sgl_writer_new(). */
enum {
        /* Do not mprotect() committed pages of the writer's own mapping. */
        SGL_WRITER_NO_MIRROR_PROTECT = 1u << 0,
        /* On seal, always copy the open segment instead of trying to seal
         * it in place (never waits for a reader that pins pages). */
        SGL_WRITER_SEAL_BY_COPY = 1u << 1,
};

/* When the writer seals its open segment (sgl_writer_set_seal_policy()). */
typedef enum sgl_seal_policy {
        SGL_SEAL_EVERY_COMMIT = 0, /* each commit is its own sealed segment */
        SGL_SEAL_BYTES = 1,        /* once the segment holds arg bytes     */
        SGL_SEAL_USEC = 2,         /* arg microseconds after its 1st commit */
        SGL_SEAL_WHEN_FULL = 3,    /* only when the next commit won't fit  */
        _SGL_SEAL_POLICY_MAX = 0x7fffffff
} sgl_seal_policy;

/* What happened to a segment (sgl_segment_fn). */
typedef enum sgl_segment_event {
        SGL_SEGMENT_OPENED = 1,  /* open segment: TRUSTED readers may map it */
        SGL_SEGMENT_SEALED = 2,  /* sealed: every reader may map it          */
        SGL_SEGMENT_RETIRED = 3, /* dropped by GC: stop handing it out       */
        _SGL_SEGMENT_EVENT_MAX = 0x7fffffff
} sgl_segment_event;

/*
 * sgl_segment_fn - told about every segment the writer opens, seals or retires.
 * @userdata: as given to sgl_writer_set_segment_fn()
 * @seq: the segment's sequence number in its area
 * @event: what happened
 * @fd: a read-only descriptor of the segment, borrowed for the duration of
 *      the call (dup it or send it); -1 for SGL_SEGMENT_RETIRED
 */
typedef void (*sgl_segment_fn)(void *userdata, uint64_t seq,
                               sgl_segment_event event, int fd);

int sgl_writer_new(const char *name, unsigned flags, sgl_writer **ret);
sgl_writer *sgl_writer_ref(sgl_writer *w);
sgl_writer *sgl_writer_unref(sgl_writer *w);
int sgl_writer_set_seal_policy(sgl_writer *w, sgl_seal_policy policy,
                               uint64_t arg);
int sgl_writer_set_segment_size(sgl_writer *w, uint64_t bytes);
int sgl_writer_set_gc(sgl_writer *w, unsigned garbage_percent,
                      uint64_t min_garbage_bytes, unsigned max_segments);
void sgl_writer_set_segment_fn(sgl_writer *w, sgl_segment_fn fn,
                               void *userdata);
int sgl_writer_control_fd(sgl_writer *w);
int sgl_writer_foreach_segment(sgl_writer *w, sgl_segment_fn fn,
                               void *userdata);

int sgl_writer_alloc(sgl_writer *w, uint64_t id, uint64_t expire_ns,
                     size_t size, void **data, uint64_t *ret_id);
int sgl_writer_write(sgl_writer *w, uint64_t id, uint64_t expire_ns,
                     const void *buf, size_t size, uint64_t *ret_id);
int sgl_writer_delete(sgl_writer *w, uint64_t id);
int sgl_writer_commit(sgl_writer *w);
void sgl_writer_abort(sgl_writer *w);
int sgl_writer_seal(sgl_writer *w);
int sgl_writer_tick(sgl_writer *w);
int sgl_writer_gc(sgl_writer *w);

/* Counters of one writer (sgl_writer_get_stats()). */
typedef struct sgl_writer_stats {
        uint64_t segments;       /* live segments, open one included     */
        uint64_t bytes_used;     /* committed bytes in live segments      */
        uint64_t bytes_live;     /* payload of live chunks                */
        uint64_t commits;        /* commits since the writer started      */
        uint64_t seals;          /* segments sealed in place              */
        uint64_t seal_copies;    /* segments sealed by copying (EBUSY)    */
        uint64_t gc_runs;        /* compactions                           */
        uint64_t gc_relocated;   /* chunks relocated by compaction        */
        uint64_t retired;        /* segments retired                      */
} sgl_writer_stats;

int sgl_writer_get_stats(sgl_writer *w, sgl_writer_stats *ret);

/* ---------------------------------------------------------------- reader */

/* Integrity levels (flags of sgl_reader_new()). STRICT is the default. */
enum {
        /* Also read committed chunks of the open (unsealed) segment. */
        SGL_READER_TRUSTED = 1u << 0,
};

int sgl_reader_new(unsigned flags, sgl_reader **ret);
sgl_reader *sgl_reader_ref(sgl_reader *r);
sgl_reader *sgl_reader_unref(sgl_reader *r);
int sgl_reader_set_control_consume_fd(sgl_reader *r, int fd);
int sgl_reader_add_segment_consume_fd(sgl_reader *r, int fd);
int sgl_reader_next(sgl_reader *r, sgl_chunk **ret);
int sgl_reader_get(sgl_reader *r, uint64_t id, sgl_chunk **ret);
int sgl_reader_wait(sgl_reader *r, int64_t timeout_usec);
int sgl_reader_get_segment_count(sgl_reader *r);

/* Connected readers (a host: an embedded writer, or sigillod). */
int sgl_reader_open(const char *name, const char *address, unsigned flags,
                    sgl_reader **ret);
int sgl_reader_get_fd(sgl_reader *r);
int sgl_reader_process(sgl_reader *r);

sgl_chunk *sgl_chunk_ref(sgl_chunk *c);
sgl_chunk *sgl_chunk_unref(sgl_chunk *c);
const void *sgl_chunk_data(const sgl_chunk *c);
size_t sgl_chunk_size(const sgl_chunk *c);
uint64_t sgl_chunk_id(const sgl_chunk *c);
uint64_t sgl_chunk_version(const sgl_chunk *c);
uint64_t sgl_chunk_expiry(const sgl_chunk *c);

/* ------------------------------------------------- embedded rendezvous */

int sgl_host_new(sgl_writer *w, const char *address, sgl_host **ret);
sgl_host *sgl_host_ref(sgl_host *h);
sgl_host *sgl_host_unref(sgl_host *h);
int sgl_host_set_access(sgl_host *h, unsigned mode, const uint32_t *uids,
                        size_t n_uids, const uint32_t *gids, size_t n_gids);
int sgl_host_get_fd(sgl_host *h);
int sgl_host_process(sgl_host *h);
int sgl_host_get_connections(sgl_host *h);

/* ------------------------------------------------- publishing to sigillod */

/* Flags for sgl_writer_publish(). */
enum {
        /* The area outlives the writer's connection: the daemon keeps its
         * segments, and the next writer of the owner's uid takes it over. */
        SGL_PUBLISH_PERSIST = 1u << 0,
};

int sgl_writer_publish(sgl_writer *w, const char *name, const char *address,
                       unsigned flags, unsigned mode, const uint32_t *uids,
                       size_t n_uids, const uint32_t *gids, size_t n_gids);
int sgl_writer_get_publish_fd(sgl_writer *w);
int sgl_writer_publish_process(sgl_writer *w);

/* ------------------------------------------------------------- utilities */

/* Current CLOCK_REALTIME in nanoseconds: the clock of chunk expiry times. */
uint64_t sgl_now_ns(void);

/* Cleanup helpers for __attribute__((cleanup)). */
static inline void sgl_writer_unrefp(sgl_writer **p) { sgl_writer_unref(*p); }
static inline void sgl_reader_unrefp(sgl_reader **p) { sgl_reader_unref(*p); }
static inline void sgl_chunk_unrefp(sgl_chunk **p) { sgl_chunk_unref(*p); }
static inline void sgl_host_unrefp(sgl_host **p) { sgl_host_unref(*p); }

#ifdef __cplusplus
}
#endif

#endif
