/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gc.c - live-byte accounting and compaction of the writer's segments.
 *
 * Owns: the index of newest records per id, live bytes per segment, and
 * compaction: copying the live records of sealed segments into the open one
 * (same id and version, flagged relocated) and retiring those segments with
 * a RETIRE record in the same commit.
 *
 * Invariants:
 * - A record is *current* when the index entry of its id points at it.  Only
 *   current records are ever relocated; a reader folding the log keeps the
 *   newest version per id, so relocated copies never revive anything.
 * - entry->nrec counts the records of the id in live segments.  A current
 *   tombstone (or expired chunk) is kept, as a tombstone, while older records
 *   of its id remain in live segments, else they would come back to life for
 *   a reader that never saw the newer one; the entry is dropped at nrec 0.
 * - Compaction reads only the writer's own read-only mirror of sealed
 *   segments and never waits for a reader: readers keep their mappings of
 *   retired segments until they release them.
 * - w->sealed_used / w->sealed_live follow every change of a sealed
 *   segment's used or live bytes and every segment that seals or leaves
 *   (sgl_gc_track()), so deciding whether to compact costs O(1) per
 *   commit; choosing victims sorts the sealed segments once (O(n log n)).
 * - Segments are retired only once the commit holding their relocated
 *   copies is sealed (under group sealing compaction seals the open
 *   segment): a STRICT reader joining in between would otherwise miss
 *   sealed chunks, or see an older version that a relocated tombstone hides.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "writer-internal.h"

/* Bound on relocated bytes per compaction, so one commit never pays for
 * copying the whole area at once. */
#define GC_MAX_RELOCATE (8ULL * 1024 * 1024)

/* Adds (@add) or removes a sealed segment's bytes to the running totals. */
void sgl_gc_track(sgl_writer *w, const struct sgl_wseg *s, bool add) {
        uint64_t used = s->used - SGL_SEG_DATA;

        if (add) {
                w->sealed_used += used;
                w->sealed_live += s->live;
        } else {
                w->sealed_used -= MIN(w->sealed_used, used);
                w->sealed_live -= MIN(w->sealed_live, s->live);
        }
}

static void live_sub(sgl_writer *w, struct sgl_wseg *s, uint64_t n) {
        n = MIN(s->live, n);
        s->live -= n;
        if (s->sealed)
                w->sealed_live -= MIN(w->sealed_live, n);
}

static void unaccount_current(sgl_writer *w, struct sgl_entry *e) {
        struct sgl_wseg *s;

        if (e->flags & (SGL_ENTRY_TOMBSTONE | SGL_ENTRY_EXPIRED))
                return;
        s = sgl_writer_find_seg(w, e->seq);
        if (s)
                live_sub(w, s, sgl_record_span(e->len));
}

/* Updates the index and live bytes for one record just committed in @seq. */
void sgl_gc_account(sgl_writer *w, const struct sgl_pending *p, uint64_t seq) {
        struct sgl_entry *e;
        struct sgl_wseg *s;

        if (p->kind == SGL_REC_RETIRE)
                return;
        if (sgl_idmap_insert(&w->index, p->id, &e) < 0) {
                /* out of memory: without its entry this id's records would
                 * look like garbage, so compaction must never run again */
                w->gc_disabled = true;
                return;
        }
        if (e->version != 0)
                unaccount_current(w, e);
        e->version = p->version;
        e->seq = seq;
        e->offset = p->offset;
        e->len = p->len;
        e->expire_ns = p->expire_ns;
        e->flags = p->kind == SGL_REC_TOMBSTONE ? SGL_ENTRY_TOMBSTONE : 0;
        e->nrec++;
        if (p->kind == SGL_REC_DATA) {
                s = sgl_writer_find_seg(w, seq);
                if (s) {
                        s->live += sgl_record_span(p->len);
                        if (s->sealed)
                                w->sealed_live += sgl_record_span(p->len);
                }
                if (p->expire_ns &&
                    (w->next_expiry_ns == 0 || p->expire_ns < w->next_expiry_ns))
                        w->next_expiry_ns = p->expire_ns;
        }
}

/* Expired chunks stop counting as live; run only when one may have expired. */
void sgl_gc_sweep_expired(sgl_writer *w, uint64_t now) {
        uint64_t next = 0;

        if (w->next_expiry_ns == 0 || w->next_expiry_ns > now)
                return;
        SGL_IDMAP_FOREACH(e, &w->index) {
                if (!e->expire_ns || (e->flags & (SGL_ENTRY_TOMBSTONE | SGL_ENTRY_EXPIRED)))
                        continue;
                if (e->expire_ns <= now) {
                        unaccount_current(w, e);
                        e->flags |= SGL_ENTRY_EXPIRED;
                } else if (next == 0 || e->expire_ns < next) {
                        next = e->expire_ns;
                }
        }
        w->next_expiry_ns = next;
}

static uint64_t seg_garbage(const struct sgl_wseg *s) {
        uint64_t used = s->used - SGL_SEG_DATA;
        return used > s->live ? used - s->live : 0;
}

/* Orders sealed segments worst garbage ratio first (garbage/used compared
 * without dividing: 128-bit products, segments reach 1 TiB). */
static int cmp_ratio(const void *a, const void *b) {
        const struct sgl_wseg *x = *(struct sgl_wseg *const *)a;
        const struct sgl_wseg *y = *(struct sgl_wseg *const *)b;
        unsigned __int128 gx = (unsigned __int128)seg_garbage(x) * (y->used - SGL_SEG_DATA);
        unsigned __int128 gy = (unsigned __int128)seg_garbage(y) * (x->used - SGL_SEG_DATA);

        if (gx != gy)
                return gx > gy ? -1 : 1;
        return x->seq < y->seq ? -1 : x->seq > y->seq; /* stable: oldest first */
}

/* Whether compaction is due: O(1), from the running totals. */
static bool gc_due(sgl_writer *w, bool force, bool *by_count) {
        uint64_t used = w->sealed_used;
        uint64_t garbage = used > w->sealed_live ? used - w->sealed_live : 0;

        *by_count = w->gc_max_segments && w->nsegs > w->gc_max_segments;
        if (w->gc_disabled)
                return false;
        return force || *by_count ||
               (w->gc_percent != 0 && garbage >= w->gc_min_bytes &&
                garbage * 100 >= used * w->gc_percent);
}

/* Picks sealed segments to compact, worst garbage ratio first, into @v
 * (room for w->nsegs).  Returns how many. */
static size_t pick_victims(sgl_writer *w, bool force, bool by_count, struct sgl_wseg **v) {
        uint64_t moved = 0;
        size_t n = 0, nsealed = 0;

        for (size_t i = 0; i < w->nsegs; i++)
                if (w->segs[i]->sealed)
                        v[nsealed++] = w->segs[i];
        qsort(v, nsealed, sizeof(*v), cmp_ratio);

        while (n < nsealed && moved < GC_MAX_RELOCATE) {
                struct sgl_wseg *best = v[n];

                /* only worthwhile victims, unless forced or over the count */
                if (!force && !by_count && seg_garbage(best) * 2 < best->used - SGL_SEG_DATA)
                        break;
                if (by_count && !force && w->nsegs - n <= w->gc_max_segments / 2 &&
                    seg_garbage(best) * 2 < best->used - SGL_SEG_DATA)
                        break;
                moved += best->live;
                n++;
        }
        return n;
}

/* Relocates current records of @s; entries' nrec already exclude @s. */
static int relocate(sgl_writer *w, struct sgl_wseg *s, uint64_t now) {
        struct sgl_rec_iter it;
        struct sgl_rec_view rec;
        int r;

        sgl_rec_iter_init(&it, s->ro, s->size, SGL_SEG_DATA, s->used);
        while ((r = sgl_rec_iter_next(&it, &rec)) > 0) {
                struct sgl_entry *e = sgl_idmap_find(&w->index, rec.id);
                void *data;

                if (!e || e->seq != s->seq || e->offset != rec.offset)
                        continue; /* not current: garbage */
                if (rec.kind == SGL_REC_DATA &&
                    !(e->flags & SGL_ENTRY_EXPIRED) &&
                    (!rec.expire_ns || rec.expire_ns > now)) {
                        r = sgl_writer_stage(w, SGL_REC_DATA, SGL_RECF_RELOCATED,
                                             rec.id, rec.version, rec.expire_ns,
                                             s->seq, rec.len, &data);
                        if (r < 0)
                                return r;
                        /* rec.payload stays valid: s is still mapped */
                        memcpy(data, rec.payload, rec.len);
                        w->stats.gc_relocated++;
                } else if (e->nrec > 0) {
                        /* older versions live on elsewhere: keep them dead */
                        r = sgl_writer_stage(w, SGL_REC_TOMBSTONE, SGL_RECF_RELOCATED,
                                             rec.id, rec.version, 0, s->seq, 0, NULL);
                        if (r < 0)
                                return r;
                } else {
                        /* no older record left: forget the id, but only once
                         * the compaction is committed (see sgl_gc_run()) */
                        e->flags |= SGL_ENTRY_FORGET;
                        w->nforget++;
                }
        }
        return r;
}

static void forget_records(sgl_writer *w, struct sgl_wseg *s) {
        struct sgl_rec_iter it;
        struct sgl_rec_view rec;

        sgl_rec_iter_init(&it, s->ro, s->size, SGL_SEG_DATA, s->used);
        while (sgl_rec_iter_next(&it, &rec) > 0) {
                struct sgl_entry *e = sgl_idmap_find(&w->index, rec.id);
                if (e && e->nrec > 0)
                        e->nrec--;
        }
}

/* Undoes forget_records() for a segment that stays live after all. */
static void remember_records(sgl_writer *w, struct sgl_wseg *s) {
        struct sgl_rec_iter it;
        struct sgl_rec_view rec;

        sgl_rec_iter_init(&it, s->ro, s->size, SGL_SEG_DATA, s->used);
        while (sgl_rec_iter_next(&it, &rec) > 0) {
                struct sgl_entry *e = sgl_idmap_find(&w->index, rec.id);
                if (e)
                        e->nrec++;
        }
}

/* Drops (@commit) or keeps (@commit false: the compaction failed) the
 * entries relocate() marked SGL_ENTRY_FORGET. */
static void apply_forgets(sgl_writer *w, bool commit) {
        for (size_t j = 0; w->nforget > 0 && w->index.slots && j <= w->index.mask;) {
                struct sgl_entry *e = &w->index.slots[j];

                if (e->id == 0 || !(e->flags & SGL_ENTRY_FORGET)) {
                        j++;
                        continue;
                }
                w->nforget--;
                if (commit) {
                        sgl_idmap_remove(&w->index, e); /* slot j refilled: recheck */
                } else {
                        e->flags &= ~SGL_ENTRY_FORGET;
                        j++;
                }
        }
        w->nforget = 0;
}

/**
 * sgl_gc_run() - compact now.
 * Returns the number of segments retired or -errno; on error nothing is
 * retired and the staged relocations are dropped (or, if committing or
 * sealing them failed, stay as copies that shadow nothing).
 */
int sgl_gc_run(sgl_writer *w, bool force) {
        struct sgl_wseg **v;
        uint64_t now, *seqs;
        bool by_count;
        size_t n;
        int r;

        if (w->npend > 0)
                return -EBUSY;
        /* the clock only when something may have expired: this runs after
         * every commit */
        if (w->next_expiry_ns)
                sgl_gc_sweep_expired(w, sgl_now_ns());
        if (!gc_due(w, force, &by_count))
                return 0;
        now = sgl_now_ns();
        v = calloc(w->nsegs + 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        n = pick_victims(w, force, by_count, v);
        if (n == 0) {
                free(v);
                return 0;
        }
        /* one-shot segments are read back through a mirror mapped now */
        for (size_t i = 0; i < n; i++) {
                r = sgl_writer_seg_ro(v[i]);
                if (r < 0) {
                        free(v);
                        return r;
                }
        }

        w->in_gc = true;
        for (size_t i = 0; i < n; i++)
                forget_records(w, v[i]);
        r = 0;
        for (size_t i = 0; i < n && r >= 0; i++)
                r = relocate(w, v[i], now);
        if (r >= 0)
                r = sgl_writer_stage(w, SGL_REC_RETIRE, 0, 0, 0, 0, 0,
                                     n * sizeof(uint64_t), (void **)&seqs);
        if (r < 0) {
                /* undo: records stay where they were, counts come back */
                sgl_writer_abort(w);
                for (size_t i = 0; i < n; i++)
                        remember_records(w, v[i]);
                apply_forgets(w, false);
                w->in_gc = false;
                free(v);
                return r;
        }
        for (size_t i = 0; i < n; i++)
                seqs[i] = v[i]->seq;
        r = sgl_writer_commit_internal(w);
        if (r >= 0)
                r = sgl_writer_seal(w); /* no-op when sealed at commit */
        w->in_gc = false;
        if (r < 0) {
                /* the victims stay live: their records count again */
                for (size_t i = 0; i < n; i++)
                        remember_records(w, v[i]);
                apply_forgets(w, false);
                free(v);
                return r;
        }
        apply_forgets(w, true);

        for (size_t i = 0; i < n; i++) {
                uint64_t seq = v[i]->seq;
                sgl_writer_drop_seg(w, v[i]);
                if (w->seg_fn)
                        w->seg_fn(w->seg_userdata, seq, SGL_SEGMENT_RETIRED, -1);
                w->stats.retired++;
        }
        w->stats.gc_runs++;
        free(v);
        return (int)n;
}

int sgl_gc_maybe(sgl_writer *w) {
        int r;

        if (w->in_gc || w->npend > 0)
                return 0;
        r = sgl_gc_run(w, false);
        return r < 0 ? r : 0;
}

/**
 * sgl_writer_gc() - compact now: relocate the live chunks of the sealed
 * segments with the most garbage and retire them.
 * @w: the writer
 *
 * Readers holding chunks of a retired segment keep valid bytes until they
 * release them; nobody waits.
 *
 * Return: the number of segments retired (0 if none), -EBUSY while records
 * are staged, or -errno.
 */
_public_ int sgl_writer_gc(sgl_writer *w) {
        int r;

        if (!w)
                return -EINVAL;
        r = sgl_gc_run(w, true);
        sgl_writer_make_spare(w); /* its commit may have taken the spare */
        return r;
}
