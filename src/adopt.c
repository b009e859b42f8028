/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * adopt.c - a new writer taking over an orphaned area's log.
 *
 * Owns: turning descriptors a server sent (the live segments of an area
 * whose writer left) into sealed segments of this writer, with the index,
 * live bytes and counters they imply, so that the new writer continues the
 * log where the old one stopped: seqs, versions, anonymous ids and commit
 * numbers all go on past the old writer's, and compaction can later
 * relocate and retire the adopted segments like its own.
 *
 * Invariants:
 * - The server and the previous writer are strangers: every descriptor is
 *   checked as a reader checks it (sgl_memfd_verify(), header, size, area
 *   id, seq) before it is mapped, and its records are parsed from the
 *   writer's own read-only mapping with the bounds-checked iterator.
 * - Adopted segments are sealed (F_SEAL_WRITE): one that is not is copied
 *   into a fresh memfd first and sealed there, so nobody can change a byte
 *   the writer's index points at.  They are kept with a read-only
 *   description and a read-only mapping; there is no rw side.
 * - A segment is adopted up to the end of its last commit that parses
 *   completely (s->used); anything after is ignored, like a reader does.
 * - The fold is the reader's (newest version wins, an equal-version data
 *   record does not revive a tombstone), recorded with sgl_gc_account() so
 *   that nrec and live bytes mean what gc.c expects.
 * - Segments named by a RETIRE record of the log are not adopted: their
 *   writer compacted them away and died before telling the server.
 * - Nothing in the writer changes until everything that can fail has
 *   succeeded.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "internal.h"
#include "adopt.h"
#include "memfd.h"
#include "writer-internal.h"

#define ANON_ID_BASE (1ULL << 63)
/* No writer ever counts a version or an anonymous id this close to 2^64
 * (it would take 2^40 more commits to wrap): a log that says so is
 * corrupt, and continuing from it would wrap to 0, which readers refuse. */
#define COUNTER_LIMIT (UINT64_MAX - (1ULL << 40))

struct cand {
        struct sgl_adopt_seg *in;
        struct sgl_wseg *s;      /* NULL once dropped */
};

static void wseg_free(struct sgl_wseg *s) {
        if (!s)
                return;
        if (s->ro)
                munmap((void *)s->ro, s->size);
        sgl_close(s->ro_fd);
        free(s);
}

/* A sealed copy of the committed bytes of an unsealed segment mapped at
 * @src (@size bytes).  Returns the read-only descriptor. */
static int copy_sealed(const uint8_t *src, uint64_t size, const struct sgl_seg_header *checked,
                       uint64_t *ret_size) {
        _cleanup_close_ int fd = -1;
        struct sgl_seg_header h = *checked; /* not re-read: it may have changed */
        uint64_t end = sgl_seg_visible_end(src, size), nsize = sgl_seg_size_for(end);
        int r;

        fd = sgl_memfd_create("sigillo-adopted", nsize);
        if (fd < 0)
                return fd;
        h.size = nsize;
        h.commit_end = end;
        if (pwrite(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
                return -EIO;
        for (uint64_t off = SGL_SEG_DATA; off < end;) {
                ssize_t n = pwrite(fd, src + off, end - off, (off_t)off);
                if (n <= 0)
                        return n < 0 ? sgl_negerrno() : -EIO;
                off += (uint64_t)n;
        }
        r = sgl_memfd_seal_write(fd);
        if (r < 0)
                return r;
        r = sgl_memfd_reopen_ro(fd);
        if (r >= 0)
                *ret_size = nsize;
        return r;
}

/*
 * Checks and maps one descriptor.  Returns 0 with *ret set (adopted) or
 * NULL (dropped: in->error says why), or a fatal -errno (out of memory or
 * descriptors: the whole adoption fails).
 */
static int load_one(struct sgl_adopt_seg *in, const uint8_t *area_id,
                    struct sgl_wseg **ret) {
        _cleanup_close_ int fd = TAKE_FD(in->fd);
        struct sgl_seg_header raw;
        struct sgl_seg_info info;
        struct sgl_wseg *s;
        uint64_t size;
        bool sealed;
        void *p;
        int r;

        *ret = NULL;
        in->result = SGL_ADOPT_DROPPED;
        r = sgl_memfd_verify(fd, 0, &size, &sealed);
        if (r >= 0 && pread(fd, &raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
                r = -EBADMSG;
        if (r >= 0)
                r = sgl_seg_header_parse(&raw, sizeof(raw), &info);
        if (r >= 0 && info.size != size)
                r = -ERANGE;
        if (r >= 0 && memcmp(info.area_id, area_id, SGL_AREA_ID_LEN) != 0)
                r = -EXDEV;
        if (r >= 0 && info.seq != in->seq)
                r = -EBADMSG;
        if (r < 0) {
                in->error = r;
                return 0;
        }

        p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                return sgl_negerrno();
        if (!sealed) {
                /* whoever holds its rw side could still change it: take
                 * what is committed now into a file nobody else has */
                uint64_t nsize = 0;
                int copy = copy_sealed(p, size, &raw, &nsize);

                munmap(p, size);
                if (copy < 0)
                        return copy;
                sgl_close(fd);
                fd = copy;
                size = nsize;
                p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
                if (p == MAP_FAILED)
                        return sgl_negerrno();
                in->result = SGL_ADOPT_COPIED;
        } else {
                in->result = SGL_ADOPT_KEPT;
                /* we hand this description to readers and the server: it
                 * must be read-only whatever the server sent */
                r = fcntl(fd, F_GETFL);
                if (r < 0 || (r & O_ACCMODE) != O_RDONLY) {
                        r = sgl_memfd_reopen_ro(fd);
                        if (r < 0) {
                                munmap(p, size);
                                return r;
                        }
                        sgl_close(fd);
                        fd = r;
                }
        }

        s = calloc(1, sizeof(*s));
        if (!s) {
                munmap(p, size);
                return -ENOMEM;
        }
        *s = (struct sgl_wseg) {
                .seq = in->seq,
                .size = size,
                .rw_fd = -1,
                .ro_fd = TAKE_FD(fd),
                .ro = p,
                .used = SGL_SEG_DATA,
                .protected_end = size,
                .sealed = true,
                .announced = true,
        };
        in->error = 0;
        *ret = s;
        return 0;
}

/* The data and tombstone records the writer could have made: ids and
 * versions are never 0 (0 marks an empty index slot). */
static bool rec_sane(const struct sgl_rec_view *rec) {
        return rec->kind == SGL_REC_RETIRE || (rec->id != 0 && rec->version != 0);
}

/* The end of the last commit of @s that parses completely. */
static uint64_t valid_end(const struct sgl_wseg *s) {
        uint64_t end = sgl_seg_visible_end(s->ro, s->size), good = SGL_SEG_DATA;
        struct sgl_rec_iter it;
        struct sgl_rec_view rec;
        int k;

        sgl_rec_iter_init(&it, s->ro, s->size, SGL_SEG_DATA, end);
        while ((k = sgl_rec_iter_next(&it, &rec)) > 0) {
                if (!rec_sane(&rec))
                        return good;
                if (it.nrec_left == 0)
                        good = it.commit + it.commit_len;
        }
        return k == 0 ? end : good;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

static int cmp_cand(const void *a, const void *b) {
        return cmp_u64(&((const struct cand *)a)->in->seq, &((const struct cand *)b)->in->seq);
}

/* Every seq named by a RETIRE record of the kept segments, sorted. */
static int collect_retired(struct cand *c, size_t n, uint64_t **ret, size_t *ret_n) {
        uint64_t *v = NULL;
        size_t nv = 0, av = 0;

        for (size_t i = 0; i < n; i++) {
                struct sgl_rec_iter it;
                struct sgl_rec_view rec;

                if (!c[i].s)
                        continue;
                sgl_rec_iter_init(&it, c[i].s->ro, c[i].s->size, SGL_SEG_DATA, c[i].s->used);
                while (sgl_rec_iter_next(&it, &rec) > 0) {
                        if (rec.kind != SGL_REC_RETIRE)
                                continue;
                        for (uint64_t off = 0; off < rec.len; off += sizeof(uint64_t)) {
                                if (nv == av) {
                                        size_t na = av ? av * 2 : 64;
                                        uint64_t *a = realloc(v, na * sizeof(*a));
                                        if (!a) {
                                                free(v);
                                                return -ENOMEM;
                                        }
                                        v = a;
                                        av = na;
                                }
                                memcpy(&v[nv++], rec.payload + off, sizeof(uint64_t));
                        }
                }
        }
        if (nv > 1)
                qsort(v, nv, sizeof(*v), cmp_u64);
        *ret = v;
        *ret_n = nv;
        return 0;
}

/* Folds one record as the writer would have accounted it at commit. */
static void fold(sgl_writer *w, const struct sgl_rec_view *rec, uint64_t seq) {
        struct sgl_pending p = {
                .offset = rec->offset,
                .id = rec->id,
                .version = rec->version,
                .len = rec->len,
                .expire_ns = rec->expire_ns,
                .kind = rec->kind,
                .flags = rec->flags,
        };
        struct sgl_entry *e;

        if (rec->kind == SGL_REC_RETIRE)
                return;
        e = sgl_idmap_find(&w->index, rec->id);
        /* an older version (only a hostile log has one after a newer), or
         * a relocated copy of data its relocated tombstone already hides:
         * a record of the id in a live segment, never the current one */
        if (e && (rec->version < e->version ||
                  (rec->version == e->version && rec->kind == SGL_REC_DATA &&
                   (e->flags & SGL_ENTRY_TOMBSTONE)))) {
                e->nrec++;
                return;
        }
        sgl_gc_account(w, &p, seq);
}

int sgl_writer_adopt(sgl_writer *w, const uint8_t area_id[SGL_AREA_ID_LEN],
                     uint64_t next_seq, struct sgl_adopt_seg *segs, size_t n) {
        uint64_t max_seq = 0, max_version = 0, max_anon = 0, hdr_version = 0,
                 hdr_anon = 0, max_commit = 0, *retired = NULL;
        size_t nretired = 0, nkept = 0;
        struct cand *c = NULL;
        int r = 0;

        if (!w || !area_id || next_seq == 0 || (n > 0 && !segs)) {
                r = -EINVAL;
                goto fail;
        }
        if (w->nsegs > 0 || w->npend > 0 || w->open) {
                r = -EBUSY;
                goto fail;
        }

        if (n > 0) {
                c = calloc(n, sizeof(*c));
                if (!c) {
                        r = -ENOMEM;
                        goto fail;
                }
        }
        for (size_t i = 0; i < n; i++)
                c[i].in = &segs[i];
        if (n > 1)
                qsort(c, n, sizeof(*c), cmp_cand);
        for (size_t i = 0; i < n; i++) {
                uint64_t seq = c[i].in->seq;
                if (seq == 0 || seq >= next_seq || (i > 0 && seq == c[i - 1].in->seq)) {
                        r = -EPROTO;
                        goto fail;
                }
                max_seq = MAX(max_seq, seq);
        }

        for (size_t i = 0; i < n; i++) {
                r = load_one(c[i].in, area_id, &c[i].s);
                if (r < 0)
                        goto fail;
                if (c[i].s)
                        c[i].s->used = valid_end(c[i].s);
        }

        r = collect_retired(c, n, &retired, &nretired);
        if (r < 0)
                goto fail;
        for (size_t i = 0; i < n; i++) {
                if (!c[i].s || nretired == 0 ||
                    !bsearch(&c[i].in->seq, retired, nretired, sizeof(*retired), cmp_u64))
                        continue;
                wseg_free(c[i].s);
                c[i].s = NULL;
                c[i].in->result = SGL_ADOPT_DROPPED;
                c[i].in->error = 0;
        }
        free(retired);
        retired = NULL;

        for (size_t i = 0; i < n; i++)
                nkept += c[i].s != NULL;
        if (nkept > w->asegs) {
                struct sgl_wseg **a = realloc(w->segs, nkept * sizeof(*a));
                if (!a) {
                        r = -ENOMEM;
                        goto fail;
                }
                w->segs = a;
                w->asegs = nkept;
        }

        /* nothing fails from here on: the log becomes the writer's */
        for (size_t i = 0; i < n; i++)
                if (c[i].s) {
                        sgl_gc_track(w, c[i].s, true); /* sealed, live 0 so far */
                        w->segs[w->nsegs++] = TAKE_PTR(c[i].s);
                }
        for (size_t i = 0; i < w->nsegs; i++) {
                struct sgl_wseg *s = w->segs[i];
                struct sgl_rec_iter it;
                struct sgl_rec_view rec;
                uint64_t last_commit = 0;

                sgl_rec_iter_init(&it, s->ro, s->size, SGL_SEG_DATA, s->used);
                while (sgl_rec_iter_next(&it, &rec) > 0) {
                        if (it.commit != last_commit) {
                                struct sgl_commit_header h;

                                /* validated by the iterator as it opened it */
                                last_commit = it.commit;
                                memcpy(&h, s->ro + it.commit, sizeof(h));
                                if (h.next_version <= COUNTER_LIMIT)
                                        hdr_version = MAX(hdr_version, h.next_version);
                                if (h.next_anon_id >= ANON_ID_BASE && h.next_anon_id <= COUNTER_LIMIT)
                                        hdr_anon = MAX(hdr_anon, h.next_anon_id);
                                max_commit = MAX(max_commit, h.commit_no);
                        }
                        if (rec.kind == SGL_REC_RETIRE)
                                continue;
                        if (rec.version < COUNTER_LIMIT)
                                max_version = MAX(max_version, rec.version);
                        if (rec.id >= ANON_ID_BASE && rec.id < COUNTER_LIMIT)
                                max_anon = MAX(max_anon, rec.id);
                        fold(w, &rec, s->seq);
                }
        }

        /* continue past everything the old writer may have handed out */
        w->next_seq = MAX(w->next_seq, MAX(next_seq, max_seq + 1));
        w->next_version = MAX(w->next_version, MAX(hdr_version, max_version + 1));
        w->next_anon_id = MAX(w->next_anon_id, MAX(hdr_anon, max_anon + 1));
        w->commit_no = MAX(w->commit_no, max_commit);
        memcpy(w->area_id, area_id, SGL_AREA_ID_LEN);
        memcpy(w->ctl->area_id, area_id, SGL_AREA_ID_LEN);
        if (max_seq)
                __atomic_store_n(&w->ctl->last_seq, max_seq, __ATOMIC_RELEASE);
        free(c);
        return 0;

fail:
        for (size_t i = 0; c && i < n; i++)
                wseg_free(c[i].s);
        for (size_t i = 0; segs && i < n; i++)
                segs[i].fd = sgl_close(segs[i].fd);
        free(retired);
        free(c);
        return r;
}
