/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * segment.c - bounds-checked parsing of the segment format (segment.h).
 *
 * Owns: turning bytes of a mapping that another process may write, at any
 * time, into validated values.  Invariants: every field is loaded exactly
 * once into a local (memcpy or an atomic load) before it is checked, and no
 * pointer is formed past `size` of the mapping.  A malformed segment yields
 * -EBADMSG, never a crash and never an out-of-bounds read.
 */
#include <stdatomic.h>
#include <string.h>

#include "internal.h"
#include "segment.h"

int sgl_seg_header_parse(const void *buf, size_t len, struct sgl_seg_info *ret) {
        struct sgl_seg_header h;

        if (len < sizeof(h))
                return -EBADMSG;
        memcpy(&h, buf, sizeof(h));
        if (h.magic != SGL_SEG_MAGIC)
                return -EBADMSG;
        if (h.version != SGL_FORMAT_VERSION)
                return -EPROTONOSUPPORT;
        if (h.header_size != sizeof(h))
                return -EBADMSG;
        if (h.size < SGL_PAGE || h.size % SGL_PAGE != 0 ||
            h.size > SGL_SEG_MAX_SIZE)
                return -EBADMSG;
        /* writers number segments from 1; a reader's cursor takes seq 0 for
         * "no segment yet", and a segment 0 would make it rescan that
         * segment from its start on every call (quadratic) */
        if (h.seq == 0)
                return -EBADMSG;

        memcpy(ret->area_id, h.area_id, sizeof(ret->area_id));
        ret->seq = h.seq;
        ret->size = h.size;
        return 0;
}

/*
 * The visible end of a mapping of @size bytes: commit_end loaded once with
 * acquire (pairs with the writer's release store), clamped to the mapping and
 * to SGL_RECORD_ALIGN.  A hostile value can only hide commits, never widen
 * the window.
 */
uint64_t sgl_seg_visible_end(const void *base, uint64_t size) {
        const struct sgl_seg_header *h = base;
        uint64_t end;

        end = __atomic_load_n(&h->commit_end, __ATOMIC_ACQUIRE);
        if (end < SGL_SEG_DATA || end > size)
                return SGL_SEG_DATA;
        return end & ~(uint64_t)(SGL_RECORD_ALIGN - 1);
}

void sgl_rec_iter_init(struct sgl_rec_iter *it, const void *base, uint64_t size,
                       uint64_t from, uint64_t end) {
        *it = (struct sgl_rec_iter) {
                .base = base,
                .size = size,
                .end = MIN(end, size),
                .commit = from,
        };
}

/* Loads the commit header at it->commit, validating it against it->end. */
static int commit_open(struct sgl_rec_iter *it) {
        struct sgl_commit_header c;
        uint64_t limit;

        if (it->commit % SGL_RECORD_ALIGN != 0 || it->commit < SGL_SEG_DATA)
                return -EBADMSG;
        if (it->end - it->commit < sizeof(c))
                return -EBADMSG;
        memcpy(&c, it->base + it->commit, sizeof(c));

        limit = it->end - it->commit;
        if (c.magic != SGL_COMMIT_MAGIC || c.len < sizeof(c) || c.len > limit ||
            c.len % SGL_RECORD_ALIGN != 0)
                return -EBADMSG;
        /* every record needs at least its header: bounds nrec by len */
        if (c.nrec > (c.len - sizeof(c)) / sizeof(struct sgl_record))
                return -EBADMSG;

        it->commit_len = c.len;
        it->nrec_left = c.nrec;
        it->pos = it->commit + sizeof(c);
        return 0;
}

/* The checks of one record, wherever it is found: @room is the number of
 * bytes from its header to the end of what encloses it (>= its header). */
static int rec_check(const struct sgl_record *rec, uint64_t room) {
        if (rec->len > room - sizeof(*rec))
                return -EBADMSG;
        if (sgl_record_span(rec->len) > room)
                return -EBADMSG;
        switch (rec->kind) {
        case SGL_REC_DATA:
                return 0;
        case SGL_REC_TOMBSTONE:
                return rec->len == 0 ? 0 : -EBADMSG;
        case SGL_REC_RETIRE:
                return rec->len % sizeof(uint64_t) == 0 ? 0 : -EBADMSG;
        default:
                return -EBADMSG;
        }
}

/* The view of a checked record at @offset of the mapping at @base. */
static void rec_view(const struct sgl_record *rec, const void *base, uint64_t offset,
                     struct sgl_rec_view *ret) {
        *ret = (struct sgl_rec_view) {
                .kind = rec->kind,
                .flags = rec->flags,
                .id = rec->id,
                .version = rec->version,
                .expire_ns = rec->expire_ns,
                .len = rec->len,
                .orig_seq = rec->orig_seq,
                .offset = offset,
                .payload = (const uint8_t *)base + offset + sizeof(*rec),
        };
}

/*
 * sgl_rec_iter_next() - the next record in log order.
 * Returns 1 with @ret filled, 0 at the visible end, -EBADMSG on corruption
 * (the iterator then stays put: calling again yields the same error).
 */
int sgl_rec_iter_next(struct sgl_rec_iter *it, struct sgl_rec_view *ret) {
        struct sgl_record rec;
        uint64_t commit_stop;
        int r;

        while (it->nrec_left == 0) {
                if (it->commit_len != 0) {
                        /* finished a commit: the next one follows it */
                        it->commit += it->commit_len;
                        it->commit_len = 0;
                }
                if (it->commit >= it->end)
                        return 0;
                r = commit_open(it);
                if (r < 0)
                        return r;
                if (it->nrec_left == 0)
                        continue; /* empty commit: legal, skip it */
        }

        commit_stop = it->commit + it->commit_len;
        /* the mapping may have been swapped for a shorter sealed copy */
        if (commit_stop > it->end || it->pos > commit_stop || commit_stop - it->pos < sizeof(rec))
                return -EBADMSG;
        memcpy(&rec, it->base + it->pos, sizeof(rec));
        r = rec_check(&rec, commit_stop - it->pos);
        if (r < 0)
                return r;

        rec_view(&rec, it->base, it->pos, ret);
        it->pos += sgl_record_span(rec.len);
        it->nrec_left--;
        return 1;
}

/*
 * sgl_rec_at() - the record at @offset, which must lie inside a visible
 * commit ([SGL_SEG_DATA, end)), parsed with the same checks as the iterator
 * except that the enclosing commit header is not consulted.
 * Returns 0 or -EBADMSG.
 */
int sgl_rec_at(const void *base, uint64_t size, uint64_t end, uint64_t offset,
               struct sgl_rec_view *ret) {
        struct sgl_record rec;
        int r;

        end = MIN(end, size);
        if (offset < SGL_SEG_DATA + sizeof(struct sgl_commit_header) ||
            offset % SGL_RECORD_ALIGN != 0 || offset >= end ||
            end - offset < sizeof(rec))
                return -EBADMSG;
        memcpy(&rec, (const uint8_t *)base + offset, sizeof(rec));
        r = rec_check(&rec, end - offset);
        if (r < 0)
                return r;
        rec_view(&rec, base, offset, ret);
        return 0;
}
