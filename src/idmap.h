/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * idmap.h - a hash map from chunk id to where its newest record lives.
 *
 * Used by the writer (live-byte accounting, versions, compaction) and by the
 * reader (the fold: newest version per id).  Open addressing with linear
 * probing and backward-shift deletion; id 0 marks an empty slot and is never
 * a key.  Pointers to entries are invalidated by any insert or remove.
 */
#ifndef SGL_IDMAP_H
#define SGL_IDMAP_H

#include <stddef.h>
#include <stdint.h>

enum {
        SGL_ENTRY_TOMBSTONE = 1u << 0, /* newest record is a tombstone       */
        SGL_ENTRY_EXPIRED = 1u << 1,   /* writer: expiry already accounted  */
        SGL_ENTRY_FORGET = 1u << 2,    /* writer: drop once compaction commits */
};

struct sgl_entry {
        uint64_t id;
        uint64_t version;
        uint64_t seq;          /* segment holding the newest record */
        uint64_t offset;       /* of that record in its segment */
        uint64_t len;          /* its payload bytes */
        uint64_t expire_ns;
        uint64_t delivered;    /* reader: newest version handed out */
        uint32_t nrec;         /* writer: records of id in live segments */
        uint32_t flags;
};

struct sgl_idmap {
        struct sgl_entry *slots;
        size_t mask;           /* capacity - 1; capacity is a power of two */
        size_t count;
        uint64_t key[2];       /* hash key, random per map (ids may be hostile) */
};

void sgl_idmap_free(struct sgl_idmap *m);
struct sgl_entry *sgl_idmap_find(const struct sgl_idmap *m, uint64_t id);
int sgl_idmap_insert(struct sgl_idmap *m, uint64_t id, struct sgl_entry **ret);
void sgl_idmap_remove(struct sgl_idmap *m, struct sgl_entry *e);

#define SGL_IDMAP_FOREACH(e, m) \
        for (struct sgl_entry *e = (m)->slots; \
             (m)->slots && e <= (m)->slots + (m)->mask; e++) \
                if (e->id != 0)

#endif
