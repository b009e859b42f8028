/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * segment.h - the on-memory format of segments and of the area control page.
 *
 * A segment is one memfd of `size` bytes (a multiple of the page size, at
 * least one page):
 *
 *   0            struct sgl_seg_header (64 bytes); commit_end is the only
 *                field that changes after creation (release-stored by the
 *                writer)
 *   64 ...       commits, packed: the first starts at SGL_SEG_DATA, each
 *                next one at commit start + commit len.  A commit is
 *                  struct sgl_commit_header
 *                  nrec records, each a struct sgl_record followed by its
 *                  payload, padded to SGL_RECORD_ALIGN
 *                so every commit starts and ends SGL_RECORD_ALIGN aligned
 *                (len % SGL_RECORD_ALIGN == 0; a len longer than its
 *                records is legal slack).  commit_end is the end of the
 *                last visible commit, SGL_SEG_DATA when there is none.
 *
 * Packing matters: a commit costs its bytes, not a page (a fresh page costs
 * ~3 us to fault in), and a segment holding one small commit is one page.
 * The writer's mirror protection therefore covers whole pages below the
 * page holding commit_end; page 0 (the header) stays writable until seal.
 *
 * Everything is in host byte order: segments never leave the host.
 *
 * Invariants a *reader* may not assume (the writer may be hostile): any field
 * may hold any value and may change while it is read (unless the segment is
 * sealed).  segment.c therefore reads each field exactly once into a local,
 * checks it against the bounds of the mapping, and only then uses it.
 */
#ifndef SGL_SEGMENT_H
#define SGL_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SGL_SEG_MAGIC 0x314f4c4c4947495fULL   /* "_SIGILLO1" */
#define SGL_CTL_MAGIC 0x4c54434f4c4c4753ULL   /* "SGLLOCTL"  */
#define SGL_COMMIT_MAGIC 0x54494d43u         /* "CMIT"      */
#define SGL_FORMAT_VERSION 2u  /* 2: commits packed at 64 bytes */
#define SGL_RECORD_ALIGN 64u
#define SGL_PAGE 4096u                       /* format alignment */
#define SGL_SEG_MAX_SIZE (1ULL << 40)        /* 1 TiB */
#define SGL_AREA_ID_LEN 16
#define SGL_SEG_DATA 64u                     /* offset of the first commit */

/* Segment header at offset 0 (the rest of page 0 is zero). */
struct sgl_seg_header {
        uint64_t magic;
        uint32_t version;
        uint32_t header_size;
        uint8_t area_id[SGL_AREA_ID_LEN];
        uint64_t seq;
        uint64_t size;
        uint64_t commit_end;     /* atomic: end of the last visible commit */
        uint64_t created_ns;
};

struct sgl_commit_header {
        uint32_t magic;
        uint32_t nrec;
        uint64_t len;            /* header + padded records, before page padding */
        uint64_t commit_no;      /* area-wide commit counter */
        uint64_t next_version;   /* the writer's next version after this
                                  * commit: a writer taking the area over
                                  * continues from the newest commit's */
        uint64_t next_anon_id;   /* likewise for anonymous ids */
        uint64_t reserved[3];
};

enum sgl_record_kind {
        SGL_REC_DATA = 1,
        SGL_REC_TOMBSTONE = 2,   /* deletes every older version of id */
        SGL_REC_RETIRE = 3,      /* payload: uint64_t seqs of retired segments */
};

enum {
        SGL_RECF_RELOCATED = 1u << 0, /* copy made by compaction */
};

struct sgl_record {
        uint32_t kind;
        uint32_t flags;
        uint64_t id;
        uint64_t version;        /* area-wide, strictly increasing */
        uint64_t expire_ns;      /* CLOCK_REALTIME; 0 = never */
        uint64_t len;            /* payload bytes */
        uint64_t orig_seq;       /* relocated: segment of the original */
        uint64_t reserved[2];
};

_Static_assert(sizeof(struct sgl_record) == SGL_RECORD_ALIGN, "record size");
_Static_assert(sizeof(struct sgl_seg_header) == SGL_SEG_DATA, "seg hdr");
_Static_assert(sizeof(struct sgl_commit_header) == SGL_RECORD_ALIGN, "commit hdr");

/* The area control page: one per area, writable only by the writer and never
 * sealed against writes (its counter must keep moving); readers map it
 * read-only and futex-wait on `events`. */
struct sgl_ctl_page {
        uint64_t magic;
        uint32_t version;
        uint32_t events;         /* atomic futex word: +1 per commit/seal */
        uint8_t area_id[SGL_AREA_ID_LEN];
        uint64_t last_seq;       /* atomic: newest segment seq (a hint) */
        uint32_t seg_events;     /* atomic: +1 per segment opened or sealed,
                                  * after its host was told: a
                                  * connected reader drains its socket when
                                  * it moved (a hint; see reader.c) */
        uint32_t reserved;
};

/* Commits start at SGL_RECORD_ALIGN-aligned offsets >= SGL_SEG_DATA; a
 * record with @payload bytes occupies this many bytes of its commit: */
static inline uint64_t sgl_record_span(uint64_t payload) {
        return sizeof(struct sgl_record) +
               ((payload + SGL_RECORD_ALIGN - 1) & ~(uint64_t)(SGL_RECORD_ALIGN - 1));
}

static inline uint64_t sgl_page_up(uint64_t n) {
        return (n + SGL_PAGE - 1) & ~(uint64_t)(SGL_PAGE - 1);
}

/* The size of a segment that holds commits up to @end: whole pages, at
 * least one. */
static inline uint64_t sgl_seg_size_for(uint64_t end) {
        return end <= SGL_PAGE ? SGL_PAGE : sgl_page_up(end);
}

/* ------------------------------------------------------------- parsing */

/* A validated view of a segment header, taken from untrusted memory. */
struct sgl_seg_info {
        uint8_t area_id[SGL_AREA_ID_LEN];
        uint64_t seq;
        uint64_t size;
};

/* One record as parsed: all fields copied out of shared memory. */
struct sgl_rec_view {
        uint32_t kind;
        uint32_t flags;
        uint64_t id;
        uint64_t version;
        uint64_t expire_ns;
        uint64_t len;
        uint64_t orig_seq;
        uint64_t offset;         /* of the record header in the segment */
        const uint8_t *payload;  /* inside the mapping, len bytes */
};

/* Iterates the records of the commits in [from, end) of a mapping. */
struct sgl_rec_iter {
        const uint8_t *base;
        uint64_t size;           /* of the mapping */
        uint64_t end;            /* visible end (validated commit_end) */
        uint64_t commit;         /* offset of the current commit */
        uint64_t commit_len;     /* validated len of the current commit */
        uint32_t nrec_left;      /* records left in the current commit */
        uint64_t pos;            /* offset of the next record */
};

int sgl_seg_header_parse(const void *buf, size_t len, struct sgl_seg_info *ret);
uint64_t sgl_seg_visible_end(const void *base, uint64_t size);
void sgl_rec_iter_init(struct sgl_rec_iter *it, const void *base,
                       uint64_t size, uint64_t from, uint64_t end);
int sgl_rec_iter_next(struct sgl_rec_iter *it, struct sgl_rec_view *ret);
int sgl_rec_at(const void *base, uint64_t size, uint64_t end, uint64_t offset,
               struct sgl_rec_view *ret);

#endif
