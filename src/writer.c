/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * writer.c - the single writer of an area: segments, staging, commits, seals.
 *
 * Owns: creating segments (memfd, header, rw mapping, read-only mirror),
 * staging records in place in the open segment, publishing a commit with one
 * release store of commit_end, protecting committed pages of the writer's own
 * mapping, and sealing (in place, or by copy when the kernel refuses because
 * a reader pinned a page).  Accounting and compaction live in gc.c.
 *
 * Invariants: see writer-internal.h.  In addition, a segment sealed under
 * SGL_SEAL_EVERY_COMMIT is never announced before it is sealed, so no reader
 * can ever hold a reference that would block its seal; such a segment is
 * one-shot: staged in a heap image (reused from one to the next), then
 * written into a memfd sized for its commit with one pwrite and sealed,
 * with no mapping, munmap or mprotect on the way (the STRICT hot path).
 */
#include <fcntl.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>

#include "internal.h"
#include "memfd.h"
#include "writer-internal.h"

#define DEFAULT_SEGMENT_SIZE (1024 * 1024)
/* Mirror protection covers committed pages once this many have gathered. */
#define SGL_PROTECT_RUN (64 * 1024)
#define ANON_ID_BASE (1ULL << 63)

/* Tells the host (or the application) of a segment event, then readers
 * that it has been told: a connected reader looks at its socket when
 * seg_events moves (an embedded host has sent its pushes by then). */
static void announce(sgl_writer *w, struct sgl_wseg *s, sgl_segment_event ev) {
        if (w->seg_fn)
                w->seg_fn(w->seg_userdata, s->seq, ev,
                          ev == SGL_SEGMENT_RETIRED ? -1 : s->ro_fd);
        __atomic_add_fetch(&w->ctl->seg_events, 1, __ATOMIC_RELEASE);
}

/* Wakes every reader waiting on the control page; the counter only grows. */
static void notify(sgl_writer *w) {
        __atomic_add_fetch(&w->ctl->events, 1, __ATOMIC_RELEASE);
        syscall(SYS_futex, &w->ctl->events, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

static int ctl_create(sgl_writer *w) {
        _cleanup_close_ int fd = -1;
        struct sgl_ctl_page *ctl;
        int r;

        fd = sgl_memfd_create("sigillo-control", SGL_PAGE);
        if (fd < 0)
                return fd;
        ctl = mmap(NULL, SGL_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (ctl == MAP_FAILED)
                return sgl_negerrno();
        /* a child we fork must not inherit a way to write the counter */
        (void)madvise(ctl, SGL_PAGE, MADV_DONTFORK);
        r = sgl_memfd_seal_future_write(fd);
        /* Keep only a read-only description, handed out by dup: the mapping
         * is all the writing we need, and reopening by path per reader
         * would fail for good once a reader of our uid (the owner) chmods
         * the memfd to 0000. */
        if (r >= 0)
                r = sgl_memfd_reopen_ro(fd);
        if (r < 0) {
                munmap(ctl, SGL_PAGE);
                return r;
        }
        ctl->magic = SGL_CTL_MAGIC;
        ctl->version = SGL_FORMAT_VERSION;
        memcpy(ctl->area_id, w->area_id, sizeof(ctl->area_id));
        w->ctl = ctl;
        w->ctl_fd = r;
        return 0;
}

/**
 * sgl_writer_new() - create a writer and its (empty) area.
 * @name: a short name for the area, used for memfd names (may be NULL)
 * @flags: SGL_WRITER_* flags
 * @ret: the new writer
 *
 * The writer starts with SGL_SEAL_EVERY_COMMIT, 1 MiB segments and automatic
 * compaction (50% garbage, at least 1 MiB of it, at most 256 segments).
 *
 * Return: 0, -EINVAL for unknown flags, -ENOMEM, or what memfd_create fails with.
 */
_public_ int sgl_writer_new(const char *name, unsigned flags, sgl_writer **ret) {
        sgl_writer *w;
        int r;

        if (!ret || (flags & ~(SGL_WRITER_NO_MIRROR_PROTECT | SGL_WRITER_SEAL_BY_COPY)))
                return -EINVAL;
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        *w = (sgl_writer) {
                .n_ref = 1,
                .flags = flags,
                .policy = SGL_SEAL_EVERY_COMMIT,
                .segment_size = DEFAULT_SEGMENT_SIZE,
                .gc_percent = 50,
                .gc_min_bytes = 1024 * 1024,
                .gc_max_segments = 256,
                .ctl_fd = -1,
                .spare_fd = -1,
                .spare_ro = -1,
                .next_seq = 1,
                .next_version = 1,
                .next_anon_id = ANON_ID_BASE,
        };
        w->name = strdup(name && *name ? name : "area");
        if (!w->name) {
                free(w);
                return -ENOMEM;
        }
        if (getrandom(w->area_id, sizeof(w->area_id), 0) != sizeof(w->area_id)) {
                r = sgl_negerrno();
                goto fail;
        }
        r = ctl_create(w);
        if (r < 0)
                goto fail;
        *ret = w;
        return 0;
fail:
        free(w->name);
        free(w);
        return r;
}

/**
 * sgl_writer_ref() - take a reference.
 * @w: the writer, or NULL
 *
 * Return: @w.
 */
_public_ sgl_writer *sgl_writer_ref(sgl_writer *w) {
        if (w)
                w->n_ref++;
        return w;
}

static void seg_free(struct sgl_wseg *s) {
        if (s->buf)
                free(s->buf);
        else if (s->rw)
                munmap(s->rw, s->size);
        if (s->ro_copy)
                free((void *)s->ro);
        else if (s->ro)
                munmap((void *)s->ro, s->size);
        sgl_close(s->rw_fd);
        sgl_close(s->ro_fd);
        free(s);
}

/**
 * sgl_writer_unref() - drop a reference; the last one closes every
 * descriptor and mapping of the writer.  Staged records are dropped;
 * readers keep what they mapped.
 * @w: the writer, or NULL
 *
 * Return: NULL.
 */
_public_ sgl_writer *sgl_writer_unref(sgl_writer *w) {
        if (!w || --w->n_ref > 0)
                return NULL;
        sgl_publish_free(w);
        for (size_t i = 0; i < w->nsegs; i++)
                seg_free(w->segs[i]);
        free(w->segs);
        free(w->pend);
        free(w->spare_buf);
        sgl_idmap_free(&w->index);
        if (w->ctl)
                munmap(w->ctl, SGL_PAGE);
        sgl_close(w->ctl_fd);
        sgl_close(w->spare_fd);
        sgl_close(w->spare_ro);
        free(w->name);
        free(w);
        return NULL;
}

/**
 * sgl_writer_set_seal_policy() - when the open segment gets sealed.
 * @w: the writer
 * @policy: SGL_SEAL_EVERY_COMMIT, SGL_SEAL_BYTES (@arg bytes committed; new
 *          segments are then sized for @arg bytes, at most the segment size),
 *          SGL_SEAL_USEC (@arg microseconds after the first commit, checked
 *          on commit and by sgl_writer_tick()) or SGL_SEAL_WHEN_FULL
 * @arg: the policy's argument (ignored by the others)
 *
 * Return: 0 or -EINVAL.
 */
_public_ int sgl_writer_set_seal_policy(sgl_writer *w, sgl_seal_policy policy,
                                        uint64_t arg) {
        if (!w || policy < SGL_SEAL_EVERY_COMMIT || policy > SGL_SEAL_WHEN_FULL)
                return -EINVAL;
        if ((policy == SGL_SEAL_BYTES || policy == SGL_SEAL_USEC) && arg == 0)
                return -EINVAL;
        if (policy == SGL_SEAL_USEC && arg > UINT64_MAX / 1000)
                return -EINVAL;
        w->policy = policy;
        w->policy_arg = arg;
        if (policy != SGL_SEAL_EVERY_COMMIT) {
                w->spare_fd = sgl_close(w->spare_fd);
                w->spare_ro = sgl_close(w->spare_ro);
        }
        return 0;
}

/**
 * sgl_writer_set_segment_size() - size of new segments (a commit larger than
 * this gets a segment of its own size).
 * @w: the writer
 * @bytes: a multiple of 4096 from 8192 to 1 TiB
 *
 * Return: 0 or -EINVAL.
 */
_public_ int sgl_writer_set_segment_size(sgl_writer *w, uint64_t bytes) {
        if (!w || bytes < 2 * SGL_PAGE || bytes % SGL_PAGE || bytes > SGL_SEG_MAX_SIZE)
                return -EINVAL;
        w->segment_size = bytes;
        return 0;
}

/**
 * sgl_writer_set_gc() - thresholds of automatic compaction.
 * @w: the writer
 * @garbage_percent: compact when garbage exceeds this share of the committed
 *                   bytes (1...100); 0 disables automatic compaction
 * @min_garbage_bytes: ... and at least this many bytes of it
 * @max_segments: compact when more segments than this are live (0 = no limit)
 *
 * Return: 0 or -EINVAL.
 */
_public_ int sgl_writer_set_gc(sgl_writer *w, unsigned garbage_percent,
                               uint64_t min_garbage_bytes, unsigned max_segments) {
        if (!w || garbage_percent > 100)
                return -EINVAL;
        w->gc_percent = garbage_percent;
        w->gc_min_bytes = min_garbage_bytes;
        w->gc_max_segments = max_segments;
        return 0;
}

/**
 * sgl_writer_set_segment_fn() - be told when segments open, seal and retire.
 * @w: the writer
 * @fn: the callback (NULL to stop); it must not call back into @w
 * @userdata: passed to @fn
 *
 * This is how a rendezvous host learns what to hand to readers:
 * sgl_host_new() and sgl_writer_publish() install their own callback and
 * chain to the one set before them, so set yours first; setting one
 * afterwards replaces theirs.
 *
 * An application that hands the OPENED descriptor to TRUSTED readers itself
 * should create the writer with SGL_WRITER_SEAL_BY_COPY: a reader holding
 * the open segment can pin a page, and an in-place seal then waits ~150 ms
 * for the kernel to give up before the writer copies.  (The embedded host
 * and the publisher mark what they hand out and need no flag.)
 */
_public_ void sgl_writer_set_segment_fn(sgl_writer *w, sgl_segment_fn fn,
                                        void *userdata) {
        if (!w)
                return;
        w->seg_fn = fn;
        w->seg_userdata = userdata;
}

/**
 * sgl_writer_control_fd() - a new read-only descriptor of the area's control
 * page, for sgl_reader_set_control_consume_fd().
 * @w: the writer
 *
 * Every reader gets a dup of the same read-only file description.
 *
 * Return: the descriptor (the caller owns it) or -errno.
 */
_public_ int sgl_writer_control_fd(sgl_writer *w) {
        int fd;

        if (!w)
                return -EINVAL;
        fd = fcntl(w->ctl_fd, F_DUPFD_CLOEXEC, 3);
        return fd < 0 ? sgl_negerrno() : fd;
}

/**
 * sgl_writer_foreach_segment() - calls @fn for every live segment a reader
 * may be handed, in seq order: sealed ones as SGL_SEGMENT_SEALED, the open
 * one (once it holds a commit and unless it is sealed at every commit) as
 * SGL_SEGMENT_OPENED.  This is what a late reader needs.
 * @w: the writer
 * @fn: the callback; its descriptor is borrowed for the call
 * @userdata: passed to @fn
 *
 * Return: the number of calls made, or -EINVAL.
 */
_public_ int sgl_writer_foreach_segment(sgl_writer *w, sgl_segment_fn fn,
                                        void *userdata) {
        int n = 0;

        if (!w || !fn)
                return -EINVAL;
        for (size_t i = 0; i < w->nsegs; i++) {
                struct sgl_wseg *s = w->segs[i];
                if (s->sealed)
                        fn(userdata, s->seq, SGL_SEGMENT_SEALED, s->ro_fd);
                else if (s->announced)
                        fn(userdata, s->seq, SGL_SEGMENT_OPENED, s->ro_fd);
                else
                        continue;
                n++;
        }
        return n;
}

/* A host handed the open segment @seq to a reader that may pin its pages:
 * seal it by copy (see seal_seg()). */
void sgl_writer_mark_exposed(sgl_writer *w, uint64_t seq) {
        struct sgl_wseg *s = sgl_writer_find_seg(w, seq);

        if (s && !s->sealed)
                s->exposed = true;
}

struct sgl_wseg *sgl_writer_find_seg(sgl_writer *w, uint64_t seq) {
        size_t lo = 0, hi = w->nsegs;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (w->segs[mid]->seq == seq)
                        return w->segs[mid];
                if (w->segs[mid]->seq < seq)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

/* Removes @s from segs[] and frees it. */
void sgl_writer_drop_seg(sgl_writer *w, struct sgl_wseg *s) {
        for (size_t i = 0; i < w->nsegs; i++) {
                if (w->segs[i] != s)
                        continue;
                memmove(&w->segs[i], &w->segs[i + 1],
                        (w->nsegs - i - 1) * sizeof(w->segs[0]));
                w->nsegs--;
                break;
        }
        if (w->open == s)
                w->open = NULL;
        if (s->sealed)
                sgl_gc_track(w, s, false);
        seg_free(s);
}

static int seg_map_ro(struct sgl_wseg *s) {
        void *p = mmap(NULL, s->size, PROT_READ, MAP_SHARED, s->ro_fd, 0);
        if (p == MAP_FAILED)
                return sgl_negerrno();
        s->ro = p;
        return 0;
}

/* Below this size a one-shot segment's mirror is a private copy read with
 * pread: cheaper than mmap, the faults and munmap (with its TLB flush). */
#define RO_COPY_MAX (64u * 1024)

/* The read-only mirror of a sealed segment, made on first use (one-shot
 * segments are never mapped by the writer unless compaction reads them).
 * The segment is sealed, so a copy is as good as a mapping. */
int sgl_writer_seg_ro(struct sgl_wseg *s) {
        uint8_t *p;

        if (s->ro)
                return 0;
        if (s->ro_fd < 0)
                return -EBADF;
        if (s->size > RO_COPY_MAX)
                return seg_map_ro(s);
        p = malloc(s->size);
        if (!p)
                return -ENOMEM;
        for (uint64_t off = 0; off < s->used;) {
                ssize_t n = pread(s->ro_fd, p + off, s->used - off, (off_t)off);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        free(p);
                        return n < 0 ? sgl_negerrno() : -EIO;
                }
                off += (uint64_t)n;
        }
        memset(p + s->used, 0, s->size - s->used);
        s->ro = p;
        s->ro_copy = true;
        return 0;
}

/* A one-shot segment's memory: staged in a heap image, no memfd yet.  The
 * writer's spare image is reused when it is large enough (its pages are
 * already faulted in). */
static int seg_open_buf(sgl_writer *w, struct sgl_wseg *s) {
        if (w->spare_buf && w->spare_size >= s->size) {
                s->buf = TAKE_PTR(w->spare_buf);
                s->buf_size = w->spare_size;
        } else {
                s->buf = aligned_alloc(SGL_PAGE, s->size);
                if (!s->buf)
                        return -ENOMEM;
                s->buf_size = s->size;
        }
        s->rw = s->buf;
        return 0;
}

/* Keeps the larger of @s's image and the spare for the next one-shot. */
static void seg_keep_buf(sgl_writer *w, struct sgl_wseg *s) {
        if (!w->spare_buf || w->spare_size < s->buf_size) {
                free(w->spare_buf);
                w->spare_buf = s->buf;
                w->spare_size = s->buf_size;
        } else {
                free(s->buf);
        }
        s->buf = NULL;
}

/* A segment's memfd, its rw mapping and its read-only mirror. */
static int seg_open_memfd(sgl_writer *w, struct sgl_wseg *s) {
        char name[64];
        int r;

        snprintf(name, sizeof(name), "sigillo-%s", w->name);
        r = s->rw_fd = sgl_memfd_create(name, s->size);
        if (r < 0)
                return r;
        s->rw = mmap(NULL, s->size, PROT_READ | PROT_WRITE, MAP_SHARED, s->rw_fd, 0);
        if (s->rw == MAP_FAILED) {
                s->rw = NULL;
                return sgl_negerrno();
        }
        /* a child we fork inheriting this mapping could rewrite uncommitted
         * bytes, and its mere existence would make F_SEAL_WRITE fail */
        (void)madvise(s->rw, s->size, MADV_DONTFORK);
        /* from here on nobody, whoever gets a descriptor, maps it writable */
        r = sgl_memfd_seal_future_write(s->rw_fd);
        if (r < 0)
                return r;
        r = s->ro_fd = sgl_memfd_reopen_ro(s->rw_fd);
        if (r < 0)
                return r;
        return seg_map_ro(s);
}

/* A new segment of @size bytes with its header written, appended to segs[]
 * as the open segment: one-shot (see writer-internal.h) when the policy
 * seals at every commit. */
static int seg_open(sgl_writer *w, uint64_t size) {
        struct sgl_wseg *s;
        struct sgl_seg_header *h;
        int r;

        if (w->nsegs == w->asegs) {
                size_t n = w->asegs ? w->asegs * 2 : 16;
                struct sgl_wseg **a = realloc(w->segs, n * sizeof(*a));
                if (!a)
                        return -ENOMEM;
                w->segs = a;
                w->asegs = n;
        }
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        *s = (struct sgl_wseg) { .seq = w->next_seq, .size = size,
                                 .rw_fd = -1, .ro_fd = -1 };

        if (w->policy == SGL_SEAL_EVERY_COMMIT)
                r = seg_open_buf(w, s);
        else
                r = seg_open_memfd(w, s);
        if (r < 0)
                goto fail;

        h = (struct sgl_seg_header *)s->rw;
        *h = (struct sgl_seg_header) {
                .magic = SGL_SEG_MAGIC,
                .version = SGL_FORMAT_VERSION,
                .header_size = sizeof(*h),
                .seq = s->seq,
                .size = size,
                .commit_end = SGL_SEG_DATA,
                .created_ns = sgl_now_ns(),
        };
        memcpy(h->area_id, w->area_id, sizeof(h->area_id));
        s->used = SGL_SEG_DATA;
        /* page 0 holds commit_end: never protected */
        s->protected_end = SGL_PAGE;

        w->segs[w->nsegs++] = s;
        w->open = s;
        w->next_seq++;
        __atomic_store_n(&w->ctl->last_seq, s->seq, __ATOMIC_RELEASE);
        return 0;
fail:
        s->rw_fd = s->rw_fd < 0 ? -1 : s->rw_fd;
        s->ro_fd = s->ro_fd < 0 ? -1 : s->ro_fd;
        seg_free(s);
        return r;
}

/* Seals @s by copying its committed bytes into a fresh memfd that nobody has
 * seen (so nothing can pin it), shrunk to what is used.  Costs a copy;
 * cannot be blocked by a reader. */
static int seal_by_copy(struct sgl_wseg *s) {
        _cleanup_close_ int fd = -1, ro = -1;
        struct sgl_seg_header h;
        uint64_t size = sgl_seg_size_for(s->used);
        const uint8_t *p;
        ssize_t n;
        int r;

        fd = sgl_memfd_create("sigillo-sealed", size);
        if (fd < 0)
                return fd;
        memcpy(&h, s->ro, sizeof(h));
        h.size = size;
        h.commit_end = s->used;
        if (pwrite(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
                return -EIO;
        for (uint64_t off = SGL_SEG_DATA; off < s->used; off += (uint64_t)n) {
                p = s->ro + off;
                n = pwrite(fd, p, s->used - off, (off_t)off);
                if (n <= 0)
                        return n < 0 ? sgl_negerrno() : -EIO;
        }
        r = sgl_memfd_seal_write(fd);
        if (r < 0)
                return r;
        ro = sgl_memfd_reopen_ro(fd);
        if (ro < 0)
                return ro;
        /* map before swapping: a failure leaves the old segment intact */
        p = mmap(NULL, size, PROT_READ, MAP_SHARED, ro, 0);
        if (p == MAP_FAILED)
                return sgl_negerrno();

        munmap((void *)s->ro, s->size);
        sgl_close(s->ro_fd);
        s->rw_fd = sgl_close(s->rw_fd);
        s->ro_fd = TAKE_FD(ro);
        s->ro = p;
        s->size = size;
        return 0;
}

/* Writes a one-shot segment's image into a fresh memfd of the size its
 * commits need and seals it: nobody has seen it, so nothing can pin it, and
 * no mapping is made.  On failure the image stays for a retry. */
static int seal_buf(sgl_writer *w, struct sgl_wseg *s) {
        _cleanup_close_ int fd = -1, ro = -1;
        struct sgl_seg_header *h = (struct sgl_seg_header *)s->buf;
        uint64_t size = sgl_seg_size_for(s->used);
        char name[64];
        int r;

        h->size = size;
        if (w->spare_fd >= 0) {
                /* made ahead of time (sgl_writer_make_spare()): consumed, even if
                 * filling it fails */
                fd = TAKE_FD(w->spare_fd);
                ro = TAKE_FD(w->spare_ro);
                r = sgl_memfd_fill_sealed(fd, s->buf, s->used, size);
                if (r < 0)
                        return r;
        } else {
                snprintf(name, sizeof(name), "sigillo-%s", w->name);
                fd = sgl_memfd_create_sealed(name, s->buf, s->used, size);
                if (fd < 0)
                        return fd;
                ro = sgl_memfd_reopen_ro(fd);
                if (ro < 0)
                        return ro;
        }
        seg_keep_buf(w, s);
        s->ro_fd = TAKE_FD(ro);
        s->size = size;
        return 0;
}

/* Under SGL_SEAL_EVERY_COMMIT, creates the next one-shot segment's memfd
 * and its read-only description (memfd_create, fchmod, a reopen through
 * /proc/self/fd: about half of a small commit's cost) once the commit is
 * visible and its readers woken, so they run while the writer prepares.
 * Best effort: without a spare, seal_buf() creates the memfd itself. */
void sgl_writer_make_spare(sgl_writer *w) {
        char name[64];

        if (w->policy != SGL_SEAL_EVERY_COMMIT || w->spare_fd >= 0)
                return;
        snprintf(name, sizeof(name), "sigillo-%s", w->name);
        w->spare_fd = sgl_memfd_new_empty(name);
        if (w->spare_fd < 0)
                return;
        w->spare_ro = sgl_memfd_reopen_ro(w->spare_fd);
        if (w->spare_ro < 0)
                w->spare_fd = sgl_close(w->spare_fd);
}

/* Seals @s (which must hold no staged records).  A segment without any
 * commit that nobody has seen is dropped instead. */
static int seal_seg(sgl_writer *w, struct sgl_wseg *s) {
        int r = -EBUSY;

        if (s->used == SGL_SEG_DATA && !s->announced) {
                if (s->seq == w->next_seq - 1)
                        w->next_seq = s->seq; /* never seen: reuse its number */
                sgl_writer_drop_seg(w, s);
                return 0;
        }

        if (s->buf) {
                /* like a failed in-place seal, a failed one-shot seal leaves
                 * the segment taking no more commits (rw NULL) */
                s->rw = NULL;
                r = seal_buf(w, s);
                if (r < 0)
                        return r;
                w->stats.seals++;
                goto sealed;
        }

        /* F_SEAL_FUTURE_WRITE forbids mapping it writable again: if both
         * ways of sealing fail below, the segment stays open but takes no
         * more commits, and the next stage retries the seal (reserve()) */
        if (s->rw) {
                munmap(s->rw, s->size);
                s->rw = NULL;
        }
        /* A reader holding the open segment can pin a page, and then the
         * kernel makes F_SEAL_WRITE wait ~150 ms before it fails: if a host
         * handed the open segment out, copy at once instead. */
        if (!(w->flags & SGL_WRITER_SEAL_BY_COPY) && !s->exposed)
                r = sgl_memfd_seal_write(s->rw_fd);
        if (r == -EBUSY || r == -EPERM) {
                /* EBUSY: a reader pinned a page (or we were told to copy);
                 * EPERM: a reader of our uid reopened it read-write and
                 * added F_SEAL_SEAL.  A fresh copy nobody has seen can be
                 * sealed whatever readers did to this one. */
                r = seal_by_copy(s);
                if (r < 0)
                        return r;
                w->stats.seal_copies++;
        } else if (r < 0) {
                return r;
        } else {
                s->rw_fd = sgl_close(s->rw_fd);
                w->stats.seals++;
        }
sealed:
        s->sealed = true;
        sgl_gc_track(w, s, true);
        if (w->open == s)
                w->open = NULL;
        announce(w, s, SGL_SEGMENT_SEALED);
        notify(w);
        return 0;
}

/* A segment left unsealed because sealing it failed while a staged batch
 * moved on (see reserve()) is not the open one any more: retry it, so
 * STRICT readers get its commits once the failure (EMFILE, ENOMEM) passes. */
static int reseal_orphans(sgl_writer *w) {
        if (!w->have_orphans)
                return 0;
        for (size_t i = 0; i < w->nsegs; i++) {
                struct sgl_wseg *s = w->segs[i];
                int r;

                if (s->sealed || s == w->open)
                        continue;
                r = seal_seg(w, s);
                if (r < 0)
                        return r;
                if (i < w->nsegs && w->segs[i] != s)
                        i--; /* dropped (it held no commit): recheck slot i */
        }
        w->have_orphans = false;
        return 0;
}

/**
 * sgl_writer_seal() - seal the open segment now, whatever the policy.
 * @w: the writer
 *
 * Return: 0 (also when there was nothing to seal), -EBUSY while records are
 * staged, or -errno when sealing and copying both failed (the segment then
 * stays open, readers at STRICT do not see its commits yet, and it takes no
 * more commits: the next stage or seal tries again).
 */
_public_ int sgl_writer_seal(sgl_writer *w) {
        int r;

        if (!w)
                return -EINVAL;
        if (w->npend > 0)
                return -EBUSY;
        r = reseal_orphans(w);
        if (r < 0)
                return r;
        return w->open ? seal_seg(w, w->open) : 0;
}

/* Makes room for @need more bytes of staged records.  When the open segment
 * cannot take them, staged records move to a new segment (their pointers
 * change: documented at sgl_writer_alloc()) and the old one is sealed. */
static int reserve(sgl_writer *w, uint64_t need) {
        struct sgl_wseg *old = w->open;
        uint64_t staged, size;
        int r;

        if (old && old->rw && w->pend_end + need <= old->size)
                return 0;

        staged = w->npend > 0 ? w->pend_end - w->pend_start
                              : sizeof(struct sgl_commit_header);
        if (staged + need > SGL_SEG_MAX_SIZE - SGL_SEG_DATA)
                return -EFBIG;
        /* segments are fully allocated up front (the dominant cost of a
         * fresh segment), so size them for what the policy will put in */
        if (w->policy == SGL_SEAL_EVERY_COMMIT)
                size = sgl_seg_size_for(SGL_SEG_DATA + MAX(staged + need, 2 * staged));
        else if (w->policy == SGL_SEAL_BYTES)
                size = MAX(MIN(w->segment_size, sgl_seg_size_for(SGL_SEG_DATA + w->policy_arg)),
                           sgl_seg_size_for(SGL_SEG_DATA + staged + need));
        else
                size = MAX(w->segment_size, sgl_seg_size_for(SGL_SEG_DATA + staged + need));

        if (old && w->npend == 0) {
                r = seal_seg(w, old);
                if (r < 0)
                        return r;
                old = NULL;
        }
        w->open = NULL;
        r = seg_open(w, size);
        if (r < 0) {
                w->open = old;
                return r;
        }
        if (old) {
                memcpy(w->open->rw + SGL_SEG_DATA, old->rw + w->pend_start, staged);
                /* the batch moved: leave no copy of it in the old segment */
                memset(old->rw + w->pend_start, 0, staged);
                for (size_t i = 0; i < w->npend; i++)
                        w->pend[i].offset += SGL_SEG_DATA - w->pend_start;
        }
        w->pend_start = SGL_SEG_DATA;
        w->pend_end = SGL_SEG_DATA + staged;
        /* the staged records are whole in the new segment, whatever happens */
        if (!old)
                return 0;
        r = seal_seg(w, old);
        if (r < 0)
                w->have_orphans = true; /* retried by reseal_orphans() */
        return r;
}

/* Stages one record in the open segment; returns a pointer to its payload. */
int sgl_writer_stage(sgl_writer *w, uint32_t kind, uint32_t flags, uint64_t id,
                     uint64_t version, uint64_t expire_ns, uint64_t orig_seq,
                     size_t size, void **data) {
        struct sgl_record *rec;
        uint64_t span;
        int r;

        if (size > SGL_SEG_MAX_SIZE)
                return -EFBIG;
        span = sgl_record_span(size);
        if (w->npend == w->apend) {
                size_t n = w->apend ? w->apend * 2 : 16;
                struct sgl_pending *a = realloc(w->pend, n * sizeof(*a));
                if (!a)
                        return -ENOMEM;
                w->pend = a;
                w->apend = n;
        }
        if (w->npend == 0 && w->open) {
                /* a new commit starts right after the last one */
                w->pend_start = w->open->used;
                w->pend_end = w->pend_start + sizeof(struct sgl_commit_header);
        }
        r = reserve(w, span);
        if (r < 0)
                return r;

        rec = (struct sgl_record *)(w->open->rw + w->pend_end);
        *rec = (struct sgl_record) {
                .kind = kind,
                .flags = flags,
                .id = id,
                .version = version,
                .expire_ns = expire_ns,
                .len = size,
                .orig_seq = orig_seq,
        };
        /* zero the padding: no stale bytes of ours reach a reader */
        memset((uint8_t *)(rec + 1) + size, 0, span - sizeof(*rec) - size);
        w->pend[w->npend++] = (struct sgl_pending) {
                .offset = w->pend_end,
                .id = id,
                .version = version,
                .len = size,
                .expire_ns = expire_ns,
                .kind = kind,
                .flags = flags,
        };
        w->pend_end += span;
        if (data)
                *data = rec + 1;
        return 0;
}

/**
 * sgl_writer_alloc() - stage a chunk of @size bytes and get a pointer to fill
 * it in place (zero-copy).
 * @w: the writer
 * @id: the chunk's id, 1 ... 2^63-1; 0 picks a fresh anonymous id
 * @expire_ns: CLOCK_REALTIME expiry (see sgl_now_ns()), 0 = never
 * @size: payload bytes, any size up to 1 TiB (0 is allowed)
 * @data: where the payload goes; valid until the next sgl_writer_alloc(),
 *        sgl_writer_write(), sgl_writer_delete(), commit or abort (a staged
 *        batch that outgrows the open segment moves, bytes included)
 * @ret_id: if not NULL, the id given to the chunk
 *
 * Nothing is visible to readers before sgl_writer_commit().  Each staged
 * chunk gets the next area-wide version, which makes it the newest version
 * of its id once committed.
 *
 * Return: 0, -EINVAL, -EFBIG, -ENOMEM, or an error creating a segment.
 */
_public_ int sgl_writer_alloc(sgl_writer *w, uint64_t id, uint64_t expire_ns,
                              size_t size, void **data, uint64_t *ret_id) {
        uint64_t rid = id;
        int r;

        if (!w || !data || id >= ANON_ID_BASE)
                return -EINVAL;
        if (rid == 0)
                rid = w->next_anon_id;
        r = sgl_writer_stage(w, SGL_REC_DATA, 0, rid, w->next_version,
                             expire_ns, 0, size, data);
        if (r < 0)
                return r;
        w->next_version++;
        if (id == 0)
                w->next_anon_id++;
        if (ret_id)
                *ret_id = rid;
        return 0;
}

/**
 * sgl_writer_write() - stage a chunk copied from @buf.
 * @w: the writer
 * @id: as for sgl_writer_alloc()
 * @expire_ns: as for sgl_writer_alloc()
 * @buf: @size bytes to copy (may be NULL when @size is 0)
 * @size: payload bytes
 * @ret_id: if not NULL, the id given to the chunk
 *
 * Return: as sgl_writer_alloc().
 */
_public_ int sgl_writer_write(sgl_writer *w, uint64_t id, uint64_t expire_ns,
                              const void *buf, size_t size, uint64_t *ret_id) {
        void *data;
        int r;

        if (!buf && size > 0)
                return -EINVAL;
        r = sgl_writer_alloc(w, id, expire_ns, size, &data, ret_id);
        if (r < 0)
                return r;
        if (size > 0)
                memcpy(data, buf, size);
        return 0;
}

/**
 * sgl_writer_delete() - stage a tombstone that deletes every version of @id.
 * @w: the writer
 * @id: a committed, live id
 *
 * Return: 0, -EINVAL, -ENOENT if @id has no committed live version, -ENOMEM.
 */
_public_ int sgl_writer_delete(sgl_writer *w, uint64_t id) {
        struct sgl_entry *e;
        int r;

        if (!w || id == 0)
                return -EINVAL;
        e = sgl_idmap_find(&w->index, id);
        if (!e || (e->flags & (SGL_ENTRY_TOMBSTONE | SGL_ENTRY_EXPIRED)) ||
            (e->expire_ns && e->expire_ns <= sgl_now_ns()))
                return -ENOENT;
        r = sgl_writer_stage(w, SGL_REC_TOMBSTONE, 0, id, w->next_version, 0, 0,
                             0, NULL);
        if (r < 0)
                return r;
        w->next_version++;
        return 0;
}

/**
 * sgl_writer_abort() - drop every staged record.
 * @w: the writer
 */
_public_ void sgl_writer_abort(sgl_writer *w) {
        if (!w)
                return;
        /* staged bytes never committed must not reach a reader: TRUSTED
         * readers map the open segment, and sealing keeps what lies there */
        if (w->npend > 0 && w->open && w->open->rw)
                memset(w->open->rw + w->pend_start, 0, w->pend_end - w->pend_start);
        w->npend = 0;
}

/* @now: CLOCK_REALTIME ns, or 0 to read the clock only if the policy
 * needs it. */
static bool seal_due(sgl_writer *w, uint64_t now) {
        struct sgl_wseg *s = w->open;

        if (!s || s->used == SGL_SEG_DATA)
                return false;
        switch (w->policy) {
        case SGL_SEAL_EVERY_COMMIT:
                return true;
        case SGL_SEAL_BYTES:
                return s->used - SGL_SEG_DATA >= w->policy_arg;
        case SGL_SEAL_USEC:
                if (now == 0)
                        now = sgl_now_ns();
                return now - s->first_commit_ns >= w->policy_arg * 1000;
        default:
                return false;
        }
}

/* Publishes the staged records as one commit; no compaction. */
int sgl_writer_commit_internal(sgl_writer *w) {
        struct sgl_wseg *s = w->open;
        struct sgl_commit_header *c;
        uint64_t end;

        if (w->npend == 0)
                return 0;
        c = (struct sgl_commit_header *)(s->rw + w->pend_start);
        *c = (struct sgl_commit_header) {
                .magic = SGL_COMMIT_MAGIC,
                .nrec = (uint32_t)w->npend,
                .len = w->pend_end - w->pend_start,
                .commit_no = ++w->commit_no,
                .next_version = w->next_version,
                .next_anon_id = w->next_anon_id,
        };
        end = w->pend_end; /* records are padded: SGL_RECORD_ALIGN aligned */
        /* the one store that makes the whole commit visible */
        __atomic_store_n(&((struct sgl_seg_header *)s->rw)->commit_end, end,
                         __ATOMIC_RELEASE);
        s->used = end;

        if (s->first_commit_ns == 0)
                s->first_commit_ns = sgl_now_ns();
        for (size_t i = 0; i < w->npend; i++)
                sgl_gc_account(w, &w->pend[i], s->seq);
        w->npend = 0;
        w->stats.commits++;

        /* a one-shot segment is sealed at its commit whatever the policy is
         * now (it may have changed since the segment opened) */
        if (w->policy == SGL_SEAL_EVERY_COMMIT || s->buf)
                return seal_seg(w, s);

        if (!(w->flags & SGL_WRITER_NO_MIRROR_PROTECT) &&
            (end & ~(uint64_t)(SGL_PAGE - 1)) >= s->protected_end + SGL_PROTECT_RUN) {
                /* our own stray writes into published bytes now fault, in
                 * whole pages (the page holding end takes the next commit)
                 * and in runs: one mprotect, a TLB shootdown while a reader
                 * runs on another CPU, costs more than copying 4 KiB */
                uint64_t to = end & ~(uint64_t)(SGL_PAGE - 1);

                if (mprotect(s->rw + s->protected_end, to - s->protected_end,
                             PROT_READ) < 0)
                        return sgl_negerrno();
                s->protected_end = to;
        }
        if (!s->announced) {
                s->announced = true;
                announce(w, s, SGL_SEGMENT_OPENED);
        }
        if (seal_due(w, 0))
                return seal_seg(w, s);
        notify(w);
        return 0;
}

/**
 * sgl_writer_commit() - publish every staged record at once.
 * @w: the writer
 *
 * One release store makes the commit visible to TRUSTED readers; STRICT
 * readers see it once its segment is sealed (at once under
 * SGL_SEAL_EVERY_COMMIT).  Waiting readers are woken.  Then, if its
 * thresholds are crossed, compaction runs.
 *
 * Return: 0 or -errno (the commit itself cannot fail once staged; an error
 * means sealing or compaction failed and is reported, nothing is lost).
 */
_public_ int sgl_writer_commit(sgl_writer *w) {
        int r;

        if (!w)
                return -EINVAL;
        r = sgl_writer_commit_internal(w);
        if (r >= 0)
                r = reseal_orphans(w);
        if (r < 0)
                return r;
        r = sgl_gc_maybe(w);
        sgl_writer_make_spare(w);
        return r;
}

/**
 * sgl_writer_tick() - time-driven work: seals an open segment whose
 * SGL_SEAL_USEC deadline passed, and runs due compaction.  Call it from a
 * timer when the seal policy is SGL_SEAL_USEC.
 * @w: the writer
 *
 * Return: 1 if a segment was sealed, 0 if nothing was due, or -errno.
 */
_public_ int sgl_writer_tick(sgl_writer *w) {
        int r, sealed = 0;

        if (!w)
                return -EINVAL;
        if (w->npend == 0) {
                r = reseal_orphans(w);
                if (r < 0)
                        return r;
        }
        if (w->npend == 0 && seal_due(w, 0)) {
                r = seal_seg(w, w->open);
                if (r < 0)
                        return r;
                sealed = 1;
        }
        r = sgl_gc_maybe(w);
        return r < 0 ? r : sealed;
}

/**
 * sgl_writer_get_stats() - the writer's counters.
 * @w: the writer
 * @ret: filled in
 *
 * bytes_live leaves out chunks that have expired by now, also when no
 * commit or compaction has run since.
 *
 * Return: 0 or -EINVAL.
 */
_public_ int sgl_writer_get_stats(sgl_writer *w, sgl_writer_stats *ret) {
        if (!w || !ret)
                return -EINVAL;
        sgl_gc_sweep_expired(w, sgl_now_ns());
        *ret = w->stats;
        ret->segments = w->nsegs;
        ret->bytes_used = 0;
        ret->bytes_live = 0;
        for (size_t i = 0; i < w->nsegs; i++) {
                ret->bytes_used += w->segs[i]->used - SGL_SEG_DATA;
                ret->bytes_live += w->segs[i]->live;
        }
        return 0;
}
