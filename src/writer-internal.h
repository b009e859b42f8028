/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * writer-internal.h - the writer's state, shared by writer.c (appending,
 * committing, sealing) and gc.c (accounting, relocation, retirement).
 *
 * Invariants:
 * - segs[] holds every live segment in increasing seq order; at most the
 *   last one is open (w->open), every other one is sealed with F_SEAL_WRITE,
 *   except one whose seal failed while a staged batch moved on (retried by
 *   sgl_writer_seal() and sgl_writer_tick()).
 * - A one-shot segment (created under SGL_SEAL_EVERY_COMMIT: sealed right
 *   after its one commit) has no memfd while open: records are staged in
 *   buf (rw == buf), and sealing writes the image into a fresh memfd of the
 *   size it needs (pwrite, no mapping, no fallocate) and seals it before
 *   anyone sees it.  Its mirror (ro) is made only when compaction reads
 *   it back (sgl_writer_seg_ro(): a pread copy when small, else mapped).
 * - An open segment's rw mapping exists unless sealing it failed: it then
 *   takes no commit until sgl_writer_seal()/sgl_writer_tick() reseal it.
 *   Pages in [SGL_PAGE, protected_end) of the mapping are PROT_READ unless
 *   SGL_WRITER_NO_MIRROR_PROTECT; protected_end is page aligned, never
 *   passes the page holding used (the next commit goes there), so page 0
 *   with the header stays writable until seal, and trails it by less than
 *   SGL_PROTECT_RUN + a page (protection comes in runs).  A sealed segment
 *   has no rw mapping and no rw descriptor.
 * - Pending (staged, uncommitted) records always live in w->open, between
 *   pend_start (== open->used, SGL_RECORD_ALIGN aligned) and pend_end.
 * - index holds, for every id with a record in a live segment, its newest
 *   record; live bytes of a segment are the spans of the current,
 *   unexpired data records in it.
 * - sealed_used and sealed_live are the sums of (used - SGL_SEG_DATA) and
 *   live over the sealed segments in segs[] (gc.c keeps them as segments
 *   seal, leave and change), so the compaction threshold is O(1) per
 *   commit.
 */
#ifndef SGL_WRITER_INTERNAL_H
#define SGL_WRITER_INTERNAL_H

#include "idmap.h"
#include "segment.h"

struct sgl_wseg {
        uint64_t seq;
        uint64_t size;
        int rw_fd;               /* -1 once sealed */
        int ro_fd;               /* what readers are handed */
        uint8_t *rw;             /* NULL once sealed */
        uint8_t *buf;            /* one-shot: the malloc()ed image, until sealed */
        uint64_t buf_size;       /* its allocated size */
        const uint8_t *ro;       /* read-only mirror: all readback goes here
                                  * (one-shot: made when first needed) */
        bool ro_copy;            /* ro is a malloc()ed copy, not a mapping */
        uint64_t used;           /* == commit_end, SGL_SEG_DATA when empty */
        uint64_t live;           /* spans of live data records */
        uint64_t protected_end;
        uint64_t first_commit_ns;
        bool sealed;
        bool announced;          /* SGL_SEGMENT_OPENED was sent */
        bool exposed;            /* a host handed the open segment out */
};

struct sgl_pending {
        uint64_t offset;         /* of the record in w->open */
        uint64_t id;
        uint64_t version;
        uint64_t len;
        uint64_t expire_ns;
        uint32_t kind;
        uint32_t flags;
};

struct sgl_writer {
        unsigned n_ref;
        unsigned flags;
        char *name;
        uint8_t area_id[SGL_AREA_ID_LEN];

        sgl_seal_policy policy;
        uint64_t policy_arg;
        uint64_t segment_size;
        unsigned gc_percent;
        uint64_t gc_min_bytes;
        unsigned gc_max_segments;

        sgl_segment_fn seg_fn;
        void *seg_userdata;

        int ctl_fd;              /* read-only description; readers get dups */
        int spare_fd, spare_ro;  /* SGL_SEAL_EVERY_COMMIT: the next one-shot
                                  * segment's empty memfd and its read-only
                                  * description, made after the last commit
                                  * was visible, or -1 */
        struct sgl_ctl_page *ctl;

        struct sgl_wseg **segs;
        size_t nsegs;
        size_t asegs;
        struct sgl_wseg *open;

        uint64_t next_seq;
        uint64_t next_version;
        uint64_t next_anon_id;
        uint64_t commit_no;
        uint64_t next_expiry_ns; /* earliest unaccounted expiry, 0 = none */

        struct sgl_pending *pend;
        size_t npend;
        size_t apend;
        uint64_t pend_start;
        uint64_t pend_end;

        struct sgl_idmap index;
        sgl_writer_stats stats;
        bool in_gc;
        bool have_orphans;       /* a segment other than open is unsealed */
        bool gc_disabled;        /* the index missed an id: never compact */
        size_t nforget;          /* entries marked SGL_ENTRY_FORGET */
        uint64_t sealed_used;    /* see the invariants above */
        uint64_t sealed_live;

        struct sgl_publish *publish; /* publish.c: the daemon connection */

        uint8_t *spare_buf;      /* the last one-shot image, kept for reuse: a
                                  * fresh one costs a page fault per page */
        uint64_t spare_size;
};

/* writer.c */
void sgl_writer_mark_exposed(sgl_writer *w, uint64_t seq);
int sgl_writer_stage(sgl_writer *w, uint32_t kind, uint32_t flags, uint64_t id,
                     uint64_t version, uint64_t expire_ns, uint64_t orig_seq,
                     size_t size, void **data);
int sgl_writer_commit_internal(sgl_writer *w);
struct sgl_wseg *sgl_writer_find_seg(sgl_writer *w, uint64_t seq);
void sgl_writer_make_spare(sgl_writer *w);
int sgl_writer_seg_ro(struct sgl_wseg *s);
void sgl_writer_drop_seg(sgl_writer *w, struct sgl_wseg *s);

/* publish.c: ends publishing (from sgl_writer_unref()) */
void sgl_publish_free(sgl_writer *w);

/* gc.c */
void sgl_gc_account(sgl_writer *w, const struct sgl_pending *p, uint64_t seq);
void sgl_gc_track(sgl_writer *w, const struct sgl_wseg *s, bool add);
void sgl_gc_sweep_expired(sgl_writer *w, uint64_t now);
int sgl_gc_maybe(sgl_writer *w);
int sgl_gc_run(sgl_writer *w, bool force);

#endif
