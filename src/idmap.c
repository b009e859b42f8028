/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * idmap.c - open-addressing map from chunk id to entry (idmap.h).
 *
 * Invariants: capacity is a power of two, the load stays below 3/4, and
 * every entry sits in the probe run that starts at its hash slot (kept by
 * backward-shift deletion, so there are no deletion markers to sweep).
 */
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "internal.h"
#include "idmap.h"

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                        \
        do {                                                            \
                v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
                v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                  \
                v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                  \
                v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
        } while (0)

/* SipHash-1-3 of the id under the map's random key: a reader's ids come
 * from the writer, and a fixed (invertible) mix would let a hostile one
 * pick ids that all share one probe run, making every insert linear. */
static size_t slot_of(const struct sgl_idmap *m, uint64_t id) {
        uint64_t v0 = m->key[0] ^ 0x736f6d6570736575ULL;
        uint64_t v1 = m->key[1] ^ 0x646f72616e646f6dULL;
        uint64_t v2 = m->key[0] ^ 0x6c7967656e657261ULL;
        uint64_t v3 = m->key[1] ^ 0x7465646279746573ULL;
        const uint64_t b = (uint64_t)8 << 56;

        v3 ^= id;
        SIPROUND;
        v0 ^= id;
        v3 ^= b;
        SIPROUND;
        v0 ^= b;
        v2 ^= 0xff;
        SIPROUND;
        SIPROUND;
        SIPROUND;
        return (size_t)(v0 ^ v1 ^ v2 ^ v3) & m->mask;
}

static void new_key(struct sgl_idmap *m) {
        if (getrandom(m->key, sizeof(m->key), GRND_NONBLOCK) == (ssize_t)sizeof(m->key))
                return;
        /* no entropy yet (early boot): still different per map and run */
        m->key[0] = (uint64_t)(uintptr_t)m ^ (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL;
        m->key[1] = (uint64_t)(uintptr_t)&m ^ (uint64_t)getpid() * 0xbf58476d1ce4e5b9ULL;
}

void sgl_idmap_free(struct sgl_idmap *m) {
        free(m->slots);
        *m = (struct sgl_idmap) {};
}

struct sgl_entry *sgl_idmap_find(const struct sgl_idmap *m, uint64_t id) {
        if (!m->slots || id == 0)
                return NULL;
        for (size_t i = slot_of(m, id);; i = (i + 1) & m->mask) {
                if (m->slots[i].id == id)
                        return &m->slots[i];
                if (m->slots[i].id == 0)
                        return NULL;
        }
}

static int grow(struct sgl_idmap *m) {
        size_t cap = m->slots ? (m->mask + 1) * 2 : 64;
        struct sgl_idmap n = { .mask = cap - 1, .count = m->count };

        if (m->slots)
                memcpy(n.key, m->key, sizeof(n.key));
        else
                new_key(&n);

        n.slots = calloc(cap, sizeof(*n.slots));
        if (!n.slots)
                return -ENOMEM;
        SGL_IDMAP_FOREACH(e, m) {
                size_t i = slot_of(&n, e->id);
                while (n.slots[i].id != 0)
                        i = (i + 1) & n.mask;
                n.slots[i] = *e;
        }
        free(m->slots);
        *m = n;
        return 0;
}

/* Finds or creates the entry of @id (a new one is zeroed but for its id). */
int sgl_idmap_insert(struct sgl_idmap *m, uint64_t id, struct sgl_entry **ret) {
        struct sgl_entry *e;
        size_t i;
        int r;

        if (id == 0)
                return -EINVAL;
        e = sgl_idmap_find(m, id);
        if (e) {
                *ret = e;
                return 0;
        }
        if (!m->slots || (m->count + 1) * 4 > (m->mask + 1) * 3) {
                r = grow(m);
                if (r < 0)
                        return r;
        }
        for (i = slot_of(m, id); m->slots[i].id != 0; i = (i + 1) & m->mask)
                ;
        m->slots[i] = (struct sgl_entry) { .id = id };
        m->count++;
        *ret = &m->slots[i];
        return 1;
}

void sgl_idmap_remove(struct sgl_idmap *m, struct sgl_entry *e) {
        size_t hole = (size_t)(e - m->slots);

        /* shift later members of the run back so lookups never stop early */
        for (size_t i = (hole + 1) & m->mask; m->slots[i].id != 0;
             i = (i + 1) & m->mask) {
                size_t home = slot_of(m, m->slots[i].id);
                /* move i into hole unless home lies cyclically in (hole, i] */
                bool stays = hole <= i ? (hole < home && home <= i)
                                       : (hole < home || home <= i);
                if (!stays) {
                        m->slots[hole] = m->slots[i];
                        hole = i;
                }
        }
        m->slots[hole] = (struct sgl_entry) {};
        m->count--;
}
