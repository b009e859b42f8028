/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * reader.c - a reader's view of an area: the fold over the segment log.
 *
 * Owns: checking and mapping received segments (read-only, never a
 * descriptor kept), the index (newest version per id, tombstones, expiry),
 * the stream cursor, keyed lookup and the lifetime of chunks handed out.
 *
 * Invariants:
 * - segs[] is sorted by seq and holds one reference to each mapping; a
 *   chunk holds another, so a mapping outlives every chunk taken from it.
 * - A STRICT reader maps only segments the kernel reports F_SEAL_WRITE for.
 *   A TRUSTED reader may also map the open segment; its bytes may still
 *   change, but every read is bounds-checked against the mapping (segment.c).
 * - Each segment is indexed exactly once, commit by commit, up to its visible
 *   end; the cursor trails the index.  A data record is delivered by the
 *   stream when it is its id's newest version, not expired, and that version
 *   was not delivered before: relocated copies made by compaction carry the
 *   same version and so are never delivered twice.
 * - A retired segment leaves segs[] once the cursor has passed it (or at once
 *   for a reader that never streams); index entries still pointing into it
 *   are dead (compaction relocated the live ones first) and are dropped.
 * - segs[0..done) are indexed to their end and sealed, or broken: refresh()
 *   starts after them; anything that inserts or removes segments lowers
 *   done.
 * - next() drains the host connection only when what is mapped holds
 *   nothing more to deliver (the hot path makes no syscall), and then only
 *   if the control page's seg_events moved less than DRAIN_WINDOW_USEC ago
 *   or the last drain is that old: a reader polling an idle area makes one
 *   recvmsg per window, not one per call.  The counter is the writer's word
 *   (a hostile writer can only make a reader drain more often, or wait a
 *   window longer); pushes it does not count (a takeover, a daemon sealing
 *   an orphan) are taken within a window, and sgl_reader_process() always
 *   drains.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "internal.h"
#include "client.h"
#include "idmap.h"
#include "memfd.h"
#include "segment.h"
#include "wait.h"

/* A hostile writer must not make a reader map without bound. */
#define READER_MAX_SEGMENTS 4096

struct sgl_rseg {
        unsigned n_ref;
        uint64_t seq;
        uint64_t size;
        const uint8_t *base;
        dev_t dev;
        ino_t ino;
        uint64_t indexed_end;    /* next commit offset the index scan reads */
        bool sealed;
        bool retired;
        bool broken;             /* corrupt: nothing more is read from it */
        bool indexed;            /* sealed and indexed to its end: done */
        bool dropping;           /* drop_retired(): leaving segs[] now */
};

struct sgl_chunk {
        unsigned n_ref;
        struct sgl_rseg *seg;
        const void *data;
        uint64_t size;
        uint64_t id;
        uint64_t version;
        uint64_t expire_ns;
};

struct sgl_reader {
        unsigned n_ref;
        unsigned flags;
        bool have_area;
        uint8_t area_id[SGL_AREA_ID_LEN];
        const struct sgl_ctl_page *ctl;
        uint32_t seen_events;

        struct sgl_rseg **segs;
        size_t nsegs;
        size_t asegs;
        size_t nretired;         /* retired segments still in segs[] */
        size_t done;             /* segs[0..done) are all indexed or broken */
        struct sgl_idmap index;

        struct sgl_client *client; /* set by sgl_reader_open() */
        uint32_t seen_seg_events;  /* ctl->seg_events when last looked at */
        uint64_t drain_until_usec; /* drain on every empty next() until */
        uint64_t next_drain_usec;  /* else drain once this time is reached */

        bool streaming;          /* next() was called at least once */
        uint64_t cur_seq;        /* segment of the cursor, 0 = none yet */
        struct sgl_rec_iter cur;
};

static struct sgl_rseg *rseg_unref(struct sgl_rseg *s) {
        if (s && --s->n_ref == 0) {
                munmap((void *)s->base, s->size);
                free(s);
        }
        return NULL;
}

/**
 * sgl_reader_new() - a reader with no segments yet.
 * @flags: 0 for STRICT (only sealed segments), SGL_READER_TRUSTED to also
 *         read committed chunks of the open segment
 * @ret: the new reader
 *
 * Return: 0, -EINVAL or -ENOMEM.
 */
_public_ int sgl_reader_new(unsigned flags, sgl_reader **ret) {
        sgl_reader *r;

        if (!ret || (flags & ~SGL_READER_TRUSTED))
                return -EINVAL;
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->n_ref = 1;
        r->flags = flags;
        *ret = r;
        return 0;
}

/**
 * sgl_reader_ref() - take a reference.
 * @r: the reader, or NULL
 *
 * Return: @r.
 */
_public_ sgl_reader *sgl_reader_ref(sgl_reader *r) {
        if (r)
                r->n_ref++;
        return r;
}

/**
 * sgl_reader_unref() - drop a reference; the last one unmaps every segment
 * no chunk holds and closes the connection to the host, if any.
 * @r: the reader, or NULL
 *
 * Return: NULL.
 */
_public_ sgl_reader *sgl_reader_unref(sgl_reader *r) {
        if (!r || --r->n_ref > 0)
                return NULL;
        sgl_client_free(r->client);
        for (size_t i = 0; i < r->nsegs; i++)
                rseg_unref(r->segs[i]);
        free(r->segs);
        sgl_idmap_free(&r->index);
        if (r->ctl)
                munmap((void *)r->ctl, SGL_PAGE);
        free(r);
        return NULL;
}

static int check_area(sgl_reader *r, const uint8_t *id) {
        if (r->have_area)
                return memcmp(r->area_id, id, SGL_AREA_ID_LEN) == 0 ? 0 : -EXDEV;
        memcpy(r->area_id, id, SGL_AREA_ID_LEN);
        r->have_area = true;
        return 0;
}

/**
 * sgl_reader_set_control_consume_fd() - attach the area's control page (from
 * sgl_writer_control_fd()), needed by sgl_reader_wait().
 * @r: the reader
 * @fd: the descriptor; always consumed (closed), also on failure
 *
 * Return: 0; -EALREADY if one is set; -EXDEV if it belongs to another area
 * than the reader's segments; -EBADMSG, -EPROTONOSUPPORT for a bad page; or a
 * descriptor check error as for sgl_reader_add_segment_consume_fd().
 */
_public_ int sgl_reader_set_control_consume_fd(sgl_reader *r, int fd) {
        _cleanup_close_ _unused_ int owned = fd;
        struct sgl_ctl_page page;
        uint64_t size;
        bool sealed;
        void *p;
        int e;

        if (!r || fd < 0)
                return -EINVAL;
        if (r->ctl)
                return -EALREADY;
        e = sgl_memfd_verify(fd, 0, &size, &sealed);
        if (e < 0)
                return e;
        if (size != SGL_PAGE)
                return -ERANGE;
        if (pread(fd, &page, sizeof(page), 0) != (ssize_t)sizeof(page))
                return -EBADMSG;
        if (page.magic != SGL_CTL_MAGIC)
                return -EBADMSG;
        if (page.version != SGL_FORMAT_VERSION)
                return -EPROTONOSUPPORT;
        e = check_area(r, page.area_id);
        if (e < 0)
                return e;
        p = mmap(NULL, SGL_PAGE, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                return sgl_negerrno();
        r->ctl = p;
        r->seen_events = __atomic_load_n(&r->ctl->events, __ATOMIC_ACQUIRE);
        return 0;
}

static ssize_t seg_index_of(const sgl_reader *r, uint64_t seq) {
        size_t lo = 0, hi = r->nsegs;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (r->segs[mid]->seq == seq)
                        return (ssize_t)mid;
                if (r->segs[mid]->seq < seq)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return -(ssize_t)lo - 1; /* where it would go */
}

static struct sgl_rseg *seg_find(const sgl_reader *r, uint64_t seq) {
        ssize_t i = seg_index_of(r, seq);
        return i >= 0 ? r->segs[i] : NULL;
}

static uint64_t seg_end(const sgl_reader *r, const struct sgl_rseg *s) {
        return sgl_seg_visible_end(s->base, s->size);
}

/**
 * sgl_reader_add_segment_consume_fd() - check a segment descriptor received
 * from the writer (or a host), map it read-only and close the descriptor.
 * @r: the reader
 * @fd: the descriptor; always consumed (closed), also on failure
 *
 * Handing the same segment again once it is sealed upgrades it (a TRUSTED
 * reader that mapped it open); a sealed copy of an open segment replaces it.
 *
 * Return: 0 or, with nothing mapped:
 *   -EMEDIUMTYPE  not a memfd on tmpfs (pipe, socket, FIFO, device, file)
 *   -ENOLCK       F_SEAL_SHRINK or F_SEAL_GROW missing
 *   -EACCES       F_SEAL_WRITE missing (STRICT), or both F_SEAL_WRITE and
 *                 F_SEAL_FUTURE_WRITE missing (TRUSTED)
 *   -ENOEXEC      an exec bit is set
 *   -ENODATA      sparse
 *   -ERANGE       size differs from the size in its header
 *   -EBADMSG, -EPROTONOSUPPORT  no valid segment header
 *   -EXDEV        belongs to another area
 *   -EEXIST       another sealed segment with the same seq is mapped
 *   -ENOSPC       too many segments mapped
 */
_public_ int sgl_reader_add_segment_consume_fd(sgl_reader *r, int fd) {
        _cleanup_close_ _unused_ int owned = fd;
        struct sgl_seg_header raw;
        struct sgl_seg_info info;
        struct sgl_rseg *s, *old = NULL;
        struct stat st;
        uint64_t size;
        bool sealed;
        ssize_t i;
        void *p;
        int e;

        if (!r || fd < 0)
                return -EINVAL;
        e = sgl_memfd_verify_stat(fd, (r->flags & SGL_READER_TRUSTED) ? 0 : SGL_VERIFY_WRITE_SEALED,
                                  &st, &sealed);
        if (e < 0)
                return e;
        size = (uint64_t)st.st_size;
        if (pread(fd, &raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
                return -EBADMSG;
        e = sgl_seg_header_parse(&raw, sizeof(raw), &info);
        if (e < 0)
                return e;
        if (info.size != size)
                return -ERANGE;

        i = seg_index_of(r, info.seq);
        if (i >= 0) {
                old = r->segs[i];
                if (old->dev == st.st_dev && old->ino == st.st_ino) {
                        old->sealed = old->sealed || sealed;
                        return 0;
                }
                if (old->sealed || !sealed)
                        return -EEXIST;
        } else if (r->nsegs >= READER_MAX_SEGMENTS) {
                return -ENOSPC;
        }
        e = check_area(r, info.area_id);
        if (e < 0)
                return e;

        if (!old && r->nsegs == r->asegs) {
                size_t n = r->asegs ? r->asegs * 2 : 16;
                struct sgl_rseg **a = realloc(r->segs, n * sizeof(*a));
                if (!a)
                        return -ENOMEM;
                r->segs = a;
                r->asegs = n;
        }
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
                e = sgl_negerrno();
                free(s);
                return e;
        }
        *s = (struct sgl_rseg) {
                .n_ref = 1,
                .seq = info.seq,
                .size = size,
                .base = p,
                .dev = st.st_dev,
                .ino = st.st_ino,
                .indexed_end = SGL_SEG_DATA,
                .sealed = sealed,
        };
        if (old) {
                /* a sealed copy of the open segment: same bytes up to where
                 * we indexed, so continue from there */
                s->indexed_end = old->indexed_end;
                s->retired = old->retired;
                s->broken = old->broken;
                r->segs[i] = s;
                rseg_unref(old);
        } else {
                i = -i - 1;
                memmove(&r->segs[i + 1], &r->segs[i], (r->nsegs - (size_t)i) * sizeof(*r->segs));
                r->segs[i] = s;
                r->nsegs++;
        }
        r->done = MIN(r->done, (size_t)i);
        return 0;
}

static void mark_retired(sgl_reader *r, const struct sgl_rec_view *rec) {
        for (uint64_t off = 0; off < rec->len; off += sizeof(uint64_t)) {
                uint64_t seq;
                struct sgl_rseg *s;

                memcpy(&seq, rec->payload + off, sizeof(seq));
                s = seg_find(r, seq);
                if (s && !s->retired) {
                        s->retired = true;
                        r->nretired++;
                }
        }
}

/* Folds one record into the index: the newest version of an id wins; an
 * equal version is a relocated copy (new place) or, if a tombstone, the
 * expiry of that version carried forward by compaction. */
static int fold(sgl_reader *r, const struct sgl_rseg *s, const struct sgl_rec_view *rec) {
        struct sgl_entry *e;
        int k;

        if (rec->kind == SGL_REC_RETIRE) {
                mark_retired(r, rec);
                return 0;
        }
        if (rec->id == 0 || rec->version == 0)
                return -EBADMSG;
        k = sgl_idmap_insert(&r->index, rec->id, &e);
        if (k < 0)
                return k;
        if (k == 0 && rec->version < e->version)
                return 0;
        if (k == 0 && rec->version == e->version && rec->kind == SGL_REC_DATA &&
            (e->flags & SGL_ENTRY_TOMBSTONE))
                return 0;
        e->version = rec->version;
        e->seq = s->seq;
        e->offset = rec->offset;
        e->len = rec->len;
        e->expire_ns = rec->expire_ns;
        e->flags = rec->kind == SGL_REC_TOMBSTONE ? SGL_ENTRY_TOMBSTONE : 0;
        return 0;
}

/* Indexes the new commits of one segment. */
static int index_seg(sgl_reader *r, struct sgl_rseg *s) {
        struct sgl_rec_iter it;
        struct sgl_rec_view rec;
        int k;

        if (s->broken || s->indexed)
                return 0;
        sgl_rec_iter_init(&it, s->base, s->size, s->indexed_end, seg_end(r, s));
        while ((k = sgl_rec_iter_next(&it, &rec)) > 0) {
                k = fold(r, s, &rec);
                if (k < 0)
                        break;
        }
        if (k == -EBADMSG) {
                s->broken = true;
                return k;
        }
        if (k < 0)
                return k;
        s->indexed_end = it.commit;
        /* a sealed segment never grows: skip it from now on */
        s->indexed = s->sealed && s->indexed_end >= it.end;
        return 0;
}

/* Drops every retired segment the cursor has passed (or all of them for a
 * reader that never streams) with one sweep of the index, whatever their
 * number: a RETIRE record may name thousands. */
static void drop_retired(sgl_reader *r) {
        size_t i, j, n = 0;

        if (r->nretired == 0)
                return;
        for (i = 0; i < r->nsegs; i++) {
                struct sgl_rseg *s = r->segs[i];
                s->dropping = s->retired && (!r->streaming || s->seq < r->cur_seq);
                n += s->dropping;
        }
        if (n == 0)
                return;

        /* entries still pointing into them are dead: compaction relocated
         * every live record before retiring a segment */
        for (j = 0; r->index.slots && j <= r->index.mask;) {
                struct sgl_entry *e = &r->index.slots[j];
                struct sgl_rseg *s = e->id != 0 ? seg_find(r, e->seq) : NULL;
                if (s && s->dropping)
                        sgl_idmap_remove(&r->index, e); /* slot j refilled: recheck */
                else
                        j++;
        }
        for (i = j = 0; i < r->nsegs; i++) {
                if (r->segs[i]->dropping) {
                        rseg_unref(r->segs[i]);
                        r->nretired--;
                } else
                        r->segs[j++] = r->segs[i];
        }
        r->nsegs = j;
        r->done = 0;
}

/* Brings the index up to the visible end of every mapped segment.  Returns
 * -EBADMSG once for each segment found corrupt (it is then skipped). */
static int refresh(sgl_reader *r) {
        int ret = 0;

        /* segments before `done` never change again: skip them */
        while (r->done < r->nsegs && (r->segs[r->done]->indexed || r->segs[r->done]->broken))
                r->done++;
        for (size_t i = r->done; i < r->nsegs; i++) {
                int k = index_seg(r, r->segs[i]);
                if (k < 0 && ret == 0)
                        ret = k;
        }
        drop_retired(r);
        return ret;
}

static int chunk_new(struct sgl_rseg *s, const struct sgl_rec_view *rec,
                     sgl_chunk **ret) {
        sgl_chunk *c = malloc(sizeof(*c));

        if (!c)
                return -ENOMEM;
        s->n_ref++;
        *c = (sgl_chunk) {
                .n_ref = 1,
                .seg = s,
                .data = rec->payload,
                .size = rec->len,
                .id = rec->id,
                .version = rec->version,
                .expire_ns = rec->expire_ns,
        };
        *ret = c;
        return 0;
}

/* Whether a chunk expiring at @expire_ns (0: never) has expired, reading
 * the clock into *@now only the first time a chunk that can expire asks
 * (0: not read yet): most chunks never expire. */
static bool expired(uint64_t expire_ns, uint64_t *now) {
        if (expire_ns == 0)
                return false;
        if (*now == 0)
                *now = sgl_now_ns();
        return expire_ns <= *now;
}

/* Moves the cursor to the first segment after cur_seq, if any. */
static struct sgl_rseg *cursor_seg(sgl_reader *r) {
        ssize_t i;

        if (r->cur_seq != 0) {
                i = seg_index_of(r, r->cur_seq);
                if (i >= 0)
                        return r->segs[i];
                i = -i - 1;
        } else {
                i = 0;
        }
        if ((size_t)i >= r->nsegs)
                return NULL;
        r->cur_seq = r->segs[i]->seq;
        sgl_rec_iter_init(&r->cur, r->segs[i]->base, r->segs[i]->size, SGL_SEG_DATA,
                          SGL_SEG_DATA);
        return r->segs[i];
}

static int next_mapped(sgl_reader *r, sgl_chunk **ret);
static bool drain_due(sgl_reader *r);

/**
 * sgl_reader_next() - the next live chunk in log order.
 * @r: the reader
 * @ret: the chunk (release it with sgl_chunk_unref())
 *
 * Skips chunks that are expired, deleted or superseded by a newer version the
 * reader already knows, and never returns the same id and version twice
 * (compaction's relocated copies included).  A reader from sgl_reader_open()
 * takes what the host pushed only once it has run out of mapped data: a
 * reader with data to read makes no syscall.
 *
 * Return: 0 with a chunk; -EAGAIN when nothing new is visible; -EBADMSG once
 * for a corrupt segment (the rest of it is skipped, call again); -ENOMEM.
 */
_public_ int sgl_reader_next(sgl_reader *r, sgl_chunk **ret) {
        int k;

        if (!r || !ret)
                return -EINVAL;
        k = next_mapped(r, ret);
        if (k != -EAGAIN || !r->client || !drain_due(r))
                return k;
        /* out of data in what is mapped: only now take what the host
         * pushed (a syscall), so a busy reader never makes one; the log
         * order holds, since pushed segments follow the mapped ones.
         * Errors are told by sgl_reader_process(). */
        (void)sgl_client_drain(r->client, r);
        return next_mapped(r, ret);
}

#define DRAIN_WINDOW_USEC 1000

/* Whether an empty next() should look at the host connection (see the
 * invariants at the top). */
static bool drain_due(sgl_reader *r) {
        uint32_t ev = r->ctl ? __atomic_load_n(&r->ctl->seg_events, __ATOMIC_ACQUIRE) : 0;
        uint64_t now = sgl_mono_usec();

        if (ev != r->seen_seg_events) {
                r->seen_seg_events = ev;
                r->drain_until_usec = now + DRAIN_WINDOW_USEC;
        }
        if (now >= r->drain_until_usec && now < r->next_drain_usec)
                return false;
        r->next_drain_usec = now + DRAIN_WINDOW_USEC;
        return true;
}

/* sgl_reader_next() over what is mapped now. */
static int next_mapped(sgl_reader *r, sgl_chunk **ret) {
        struct sgl_rec_view rec;
        struct sgl_rseg *s;
        uint64_t now;
        int k, err;

        err = refresh(r);
        r->streaming = true;
        now = 0;

        while ((s = cursor_seg(r))) {
                ssize_t i;

                /* re-base: the mapping may have been swapped for a sealed copy */
                r->cur.base = s->base;
                r->cur.size = s->size;
                r->cur.end = MIN(seg_end(r, s), s->indexed_end);

                while ((k = sgl_rec_iter_next(&r->cur, &rec)) > 0) {
                        struct sgl_entry *e;

                        if (rec.kind != SGL_REC_DATA)
                                continue;
                        e = sgl_idmap_find(&r->index, rec.id);
                        if (!e || e->version != rec.version ||
                            (e->flags & SGL_ENTRY_TOMBSTONE) ||
                            e->delivered >= rec.version || expired(rec.expire_ns, &now))
                                continue;
                        k = chunk_new(s, &rec, ret);
                        if (k < 0)
                                return k;
                        e->delivered = rec.version;
                        return 0;
                }
                if (k < 0)
                        s->broken = true; /* changed under us: stop here */

                /* leave a segment only once nothing more can appear in it */
                if (!s->sealed && !s->broken && !s->retired)
                        break;
                i = seg_index_of(r, s->seq);
                if ((size_t)(i + 1) >= r->nsegs)
                        break;
                r->cur_seq = r->segs[i + 1]->seq;
                sgl_rec_iter_init(&r->cur, r->segs[i + 1]->base, r->segs[i + 1]->size,
                                  SGL_SEG_DATA, SGL_SEG_DATA);
                drop_retired(r);
        }
        return err < 0 ? err : -EAGAIN;
}

/**
 * sgl_reader_get() - the newest live version of @id.
 * @r: the reader
 * @id: the chunk id
 * @ret: the chunk (release it with sgl_chunk_unref())
 *
 * Return: 0 with a chunk; -ENOENT if the id is unknown, deleted or expired;
 * -EBADMSG if the segment holding it is corrupt; -EINVAL; -ENOMEM.
 */
_public_ int sgl_reader_get(sgl_reader *r, uint64_t id, sgl_chunk **ret) {
        struct sgl_rec_view rec;
        struct sgl_entry *e;
        struct sgl_rseg *s;
        uint64_t now = 0;
        int k;

        if (!r || !ret || id == 0)
                return -EINVAL;
        if (r->client)
                (void)sgl_client_drain(r->client, r);
        (void)refresh(r); /* corruption elsewhere does not hide this id */
        e = sgl_idmap_find(&r->index, id);
        if (!e || (e->flags & SGL_ENTRY_TOMBSTONE) || expired(e->expire_ns, &now))
                return -ENOENT;
        s = seg_find(r, e->seq);
        if (!s)
                return -ENOENT;
        /* re-read the record: in an open segment it may have changed */
        k = sgl_rec_at(s->base, s->size, s->indexed_end, e->offset, &rec);
        if (k < 0)
                return k;
        if (rec.kind != SGL_REC_DATA || rec.id != id || rec.version != e->version ||
            rec.len != e->len)
                return -EBADMSG;
        return chunk_new(s, &rec, ret);
}

/**
 * sgl_reader_wait() - block until the writer commits or seals something
 * since the last call (futex on the control page, a read-only mapping).
 * @r: the reader (with a control page set)
 * @timeout_usec: < 0 waits forever, 0 only checks
 *
 * Call it after sgl_reader_next() returned -EAGAIN: an event that happened in
 * between makes it return at once, so no wake-up is lost.
 *
 * Return: 0 if something happened, -ETIMEDOUT, -EINTR, -ENOTCONN without a
 * control page.
 */
_public_ int sgl_reader_wait(sgl_reader *r, int64_t timeout_usec) {
        if (!r)
                return -EINVAL;
        if (!r->ctl)
                return -ENOTCONN;
        return sgl_wait_change(&r->ctl->events, &r->seen_events, timeout_usec);
}

/* A new control page after a writer takeover: replaces the old one. */
int sgl_reader_replace_control_consume_fd(sgl_reader *r, int fd) {
        const struct sgl_ctl_page *old = r->ctl;
        int k;

        r->ctl = NULL;
        k = sgl_reader_set_control_consume_fd(r, fd);
        if (k < 0) {
                r->ctl = old;
                return k;
        }
        if (old)
                munmap((void *)old, SGL_PAGE);
        return 0;
}

const uint32_t *sgl_reader_events_word(sgl_reader *r) {
        return r->ctl ? &r->ctl->events : NULL;
}

/**
 * sgl_reader_open() - connect to the host serving area @name (an embedded
 * writer, see sgl_host_new(), or sigillod), map its control page and every
 * live segment the integrity level admits, and subscribe to new ones.
 * @name: the area's name: 1 to 255 of [A-Za-z0-9._-], not starting with '.'
 * @address: the host's socket: a path, or "@name" for the abstract
 *           namespace; NULL for $SIGILLO_SOCKET, else
 *           $XDG_RUNTIME_DIR/sigillo/socket, else /run/sigillo/socket
 * @flags: 0 (STRICT) or SGL_READER_TRUSTED
 * @ret: the new reader
 *
 * Blocks until the host has sent every live segment (at most 5 s per
 * message).  Afterwards pushed segments are taken by sgl_reader_next(),
 * sgl_reader_get() and sgl_reader_process().
 *
 * Return: 0; -EINVAL (bad name or flags); the host's answer (-ENOENT no such
 * area, -EACCES not allowed to read it); -ECONNREFUSED, -ENOENT (no socket),
 * -ETIMEDOUT; -EPROTO when the host breaks the protocol; or a descriptor
 * check error for a segment it sent.
 */
_public_ int sgl_reader_open(const char *name, const char *address, unsigned flags,
                             sgl_reader **ret) {
        sgl_reader *r;
        int k;

        if (!ret)
                return -EINVAL;
        k = sgl_reader_new(flags, &r);
        if (k < 0)
                return k;
        k = sgl_client_open(r, name, address, flags & SGL_READER_TRUSTED, &r->client);
        if (k < 0) {
                sgl_reader_unref(r);
                return k;
        }
        *ret = r;
        return 0;
}

/**
 * sgl_reader_get_fd() - a descriptor for poll/epoll/sd-event/GLib that
 * polls readable when there may be something new: a segment the host
 * pushed or, for a TRUSTED reader, a commit.  Then call
 * sgl_reader_process() and read with sgl_reader_next() until -EAGAIN.
 * @r: a reader from sgl_reader_open()
 *
 * The descriptor belongs to the reader.  For a TRUSTED reader a watcher
 * thread waits on the control page's futex and signals it.
 *
 * Return: the descriptor, -ENOTCONN for a reader not from
 * sgl_reader_open(), or -errno.
 */
_public_ int sgl_reader_get_fd(sgl_reader *r) {
        if (!r)
                return -EINVAL;
        if (!r->client)
                return -ENOTCONN;
        return sgl_client_get_fd(r->client, r, r->flags & SGL_READER_TRUSTED);
}

/**
 * sgl_reader_process() - take what the host pushed, without blocking.
 * @r: a reader from sgl_reader_open()
 *
 * Return: the number of segments added; -ENOTCONN for a reader not from
 * sgl_reader_open(); or, once, the error that ended the connection
 * (-ECONNRESET when the host left, -EPROTO when it broke the protocol):
 * what is mapped stays readable.
 */
_public_ int sgl_reader_process(sgl_reader *r) {
        int k, e;

        if (!r)
                return -EINVAL;
        if (!r->client)
                return -ENOTCONN;
        k = sgl_client_drain(r->client, r);
        /* the end of the connection, whoever met it first, is told once */
        e = sgl_client_take_error(r->client);
        return k < 0 ? k : e < 0 ? e : k;
}

/**
 * sgl_reader_get_segment_count() - how many segments the reader has mapped.
 * @r: the reader
 *
 * Return: the count, or -EINVAL.
 */
_public_ int sgl_reader_get_segment_count(sgl_reader *r) {
        if (!r)
                return -EINVAL;
        return (int)r->nsegs;
}

/**
 * sgl_chunk_ref() - take a reference.
 * @c: the chunk, or NULL
 *
 * Return: @c.
 */
_public_ sgl_chunk *sgl_chunk_ref(sgl_chunk *c) {
        if (c)
                c->n_ref++;
        return c;
}

/**
 * sgl_chunk_unref() - release a chunk; its segment stays mapped while any
 * chunk of it is held, even after the reader is gone or the segment was
 * retired.
 * @c: the chunk, or NULL
 *
 * Return: NULL.
 */
_public_ sgl_chunk *sgl_chunk_unref(sgl_chunk *c) {
        if (c && --c->n_ref == 0) {
                rseg_unref(c->seg);
                free(c);
        }
        return NULL;
}

/** sgl_chunk_data() - the payload, valid until the chunk is released. */
_public_ const void *sgl_chunk_data(const sgl_chunk *c) {
        return c ? c->data : NULL;
}

/** sgl_chunk_size() - payload bytes. */
_public_ size_t sgl_chunk_size(const sgl_chunk *c) {
        return c ? (size_t)c->size : 0;
}

/** sgl_chunk_id() - the chunk's id. */
_public_ uint64_t sgl_chunk_id(const sgl_chunk *c) {
        return c ? c->id : 0;
}

/** sgl_chunk_version() - the area-wide version of this chunk. */
_public_ uint64_t sgl_chunk_version(const sgl_chunk *c) {
        return c ? c->version : 0;
}

/** sgl_chunk_expiry() - CLOCK_REALTIME expiry in ns, 0 = never. */
_public_ uint64_t sgl_chunk_expiry(const sgl_chunk *c) {
        return c ? c->expire_ns : 0;
}
