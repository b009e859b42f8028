/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * registry.c - the areas sigillod holds and the server side of the protocol
 * (doc/protocol.md sections 6, 7, 10, 11, 12).
 *
 * Owns: areas (name, owner, access rules, lease, control page, live
 * segments, subscribers), per-uid accounting and quotas, the checks every
 * published descriptor goes through, and sealing an orphaned open segment
 * by copy when a PERSIST area loses its writer.
 *
 * Invariants:
 *  - Every peer is hostile.  A descriptor is kept only after it passed the
 *    checks of section 11 (on the descriptor itself, before any read, and
 *    the content read with pread(), never mapped); everything else that
 *    arrives is closed before sgld_registry_handle() returns.
 *  - Every resource a peer can make the daemon hold is charged to a uid
 *    before it is kept (areas, segments, descriptors and bytes to the
 *    owner; connections and queued messages, in main.c, to the peer) and
 *    uncharged when it goes; a charge that would pass a quota is refused.
 *  - An area is in the name table from CLAIM until removal; it is visible
 *    (OPEN, LIST, STAT) once it has a control page.  At most one peer holds
 *    its lease (area->writer <-> peer->lease); every subscriber is on
 *    area->subs exactly while peer->sub points to the area.
 *  - Segments are kept sorted by seq; area->max_seq never decreases, so a
 *    seq is never reused in an area.
 *  - Sending never blocks and never fails the caller: main.c queues, and a
 *    peer whose queue is full is doomed there (it stays on the lists until
 *    main.c detaches it, and sends to it are no-ops meanwhile).
 *  - With the fd store on, a PERSIST area with a control page is "stored":
 *    its metadata (a small sealed memfd), control page and every live
 *    segment sit in the service manager's fd store under names made of the
 *    area id (FDNAME_*), kept in step as they change, and removed with the
 *    area, but never at shutdown: a restart gets them back through
 *    LISTEN_FDS and re-checks every one like a stranger's
 *    (sgld_registry_restore()).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "memfd.h"
#include "protocol.h"
#include "segment.h"
#include "policy.h"
#include "registry.h"

#define AREA_BUCKETS 1024
#define USER_BUCKETS 256
#define REFUSED_POOL 64           /* refused peers kept to say why at HELLO */
#define MAX_GROUPS 65536          /* NGROUPS_MAX */
#define COPY_CHUNK (64 * 1024)

/* fd store names: "sgl.m.<id>" metadata, "sgl.c.<id>" control page,
 * "sgl.s.<id>.<seq>" segment, <id> the area id in 32 lowercase hex digits
 * (names can be 255 bytes long, FDNAME only 255 in all) */
#define FDNAME_PREFIX "sgl."
#define FDNAME_MAX 64

/* The metadata memfd: little-endian, one page at most. */
#define META_MAGIC 0x4154454d444c4753ULL /* "SGLDMETA" */
#define META_VERSION 1
#define META_FIXED 68
#define META_PERSIST 1u
struct sgld_user {
        uid_t uid;
        unsigned n_ref;           /* attached peers + owned areas */
        uint64_t conns;
        uint64_t areas;
        uint64_t segments;
        uint64_t fds;
        uint64_t bytes;
        uint64_t pending;         /* main.c's queues */
        struct sgld_user *next;
};

struct segment {
        uint64_t seq;
        uint64_t size;            /* of the file */
        uint32_t event;           /* as published: OPENED or SEALED */
        struct sgld_file *file;
};

struct sgld_area {
        char name[SGL_NAME_MAX + 1];
        size_t name_len;
        uint8_t area_id[SGL_MSG_AREA_ID_LEN];
        struct sgld_user *owner;
        gid_t gid;                /* the writer's at CLAIM */
        uint32_t mode;
        bool persist;
        uint32_t *uids, *gids;
        size_t n_uids, n_gids;
        struct sgld_peer *writer; /* the lease */
        uint64_t lease_next_seq;  /* CLAIMED.next_seq of this lease */
        struct sgld_file *control;
        struct segment *segs;
        size_t nsegs, asegs;
        uint64_t max_seq;         /* highest seq ever published */
        struct sgld_peer *subs;
        uint32_t n_subs;
        bool stored;              /* in the fd store */
        struct sgld_area *next;   /* hash chain */
};

struct sgld_registry {
        struct sgld_limits lim;
        bool persist_default;
        bool shutting_down;
        bool fdstore;
        struct sgld_policy *policy;
        struct sgld_area *areas[AREA_BUCKETS];
        size_t n_areas;
        struct sgld_user *users[USER_BUCKETS];
        size_t n_peers;           /* attached, not refused */
        size_t n_refused;
};

static uint64_t files_open;

/* ---------------------------------------------------------------- files */

static struct sgld_file *file_new(int fd) {
        struct sgld_file *f = malloc(sizeof(*f));

        if (!f)
                return NULL;
        f->n_ref = 1;
        f->fd = fd;
        files_open++;
        return f;
}

struct sgld_file *sgld_file_ref(struct sgld_file *f) {
        if (f)
                f->n_ref++;
        return f;
}

struct sgld_file *sgld_file_unref(struct sgld_file *f) {
        if (f && --f->n_ref == 0) {
                sgl_close(f->fd);
                free(f);
                files_open--;
        }
        return NULL;
}

/* ---------------------------------------------------------------- users */

static struct sgld_user *user_get(struct sgld_registry *reg, uid_t uid) {
        struct sgld_user **b = &reg->users[(uint32_t)uid % USER_BUCKETS], *u;

        for (u = *b; u; u = u->next)
                if (u->uid == uid) {
                        u->n_ref++;
                        return u;
                }
        u = calloc(1, sizeof(*u));
        if (!u)
                return NULL;
        u->uid = uid;
        u->n_ref = 1;
        u->next = *b;
        *b = u;
        return u;
}

static void user_put(struct sgld_registry *reg, struct sgld_user *u) {
        struct sgld_user **b;

        if (!u || --u->n_ref > 0)
                return;
        for (b = &reg->users[(uint32_t)u->uid % USER_BUCKETS]; *b; b = &(*b)->next)
                if (*b == u) {
                        *b = u->next;
                        break;
                }
        free(u);
}

/* Charges (or with negative deltas releases) owner resources; a positive
 * charge that would pass a quota is refused with -EDQUOT and changes
 * nothing. */
static int charge(struct sgld_registry *reg, struct sgld_user *u, int64_t segs,
                  int64_t fds, int64_t bytes) {
        const struct sgld_limits *l = &reg->lim;

        if ((segs > 0 && u->segments + (uint64_t)segs > l->segments_per_uid) ||
            (fds > 0 && u->fds + (uint64_t)fds > l->fds_per_uid) ||
            (bytes > 0 && (u->bytes + (uint64_t)bytes > l->bytes_per_uid ||
                           u->bytes + (uint64_t)bytes < u->bytes)))
                return -EDQUOT;
        u->segments += (uint64_t)segs;
        u->fds += (uint64_t)fds;
        u->bytes += (uint64_t)bytes;
        return 0;
}

uint64_t *sgld_peer_pending(struct sgld_peer *p) {
        return p->user ? &p->user->pending : NULL;
}

/* ---------------------------------------------------------------- areas */

static uint32_t name_hash(const char *s, size_t len) {
        uint32_t h = 2166136261u;

        for (size_t i = 0; i < len; i++) {
                h ^= (uint8_t)s[i];
                h *= 16777619u;
        }
        return h;
}

static struct sgld_area **area_slot(struct sgld_registry *reg, const char *name, size_t len) {
        struct sgld_area **a = &reg->areas[name_hash(name, len) % AREA_BUCKETS];

        for (; *a; a = &(*a)->next)
                if ((*a)->name_len == len && memcmp((*a)->name, name, len) == 0)
                        break;
        return a;
}

static struct sgld_area *area_find(struct sgld_registry *reg, const char *name, size_t len) {
        return *area_slot(reg, name, len);
}

static struct segment *seg_find(struct sgld_area *a, uint64_t seq) {
        size_t lo = 0, hi = a->nsegs;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (a->segs[mid].seq == seq)
                        return &a->segs[mid];
                if (a->segs[mid].seq < seq)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

static bool in_list(const uint32_t *list, size_t n, uint32_t id) {
        for (size_t i = 0; i < n; i++)
                if (list[i] == id)
                        return true;
        return false;
}

static bool peer_in_group(const struct sgld_peer *p, gid_t g) {
        if (p->gid == g)
                return true;
        for (size_t i = 0; i < p->n_groups; i++)
                if (p->groups[i] == g)
                        return true;
        return false;
}

/* Section 10: whether @p may read @a. */
static bool may_read(const struct sgld_area *a, const struct sgld_peer *p) {
        if (p->uid == 0 || (a->mode & 0004))
                return true;
        if ((a->mode & 0400) && p->uid == a->owner->uid)
                return true;
        if ((a->mode & 0040) && peer_in_group(p, a->gid))
                return true;
        if (in_list(a->uids, a->n_uids, (uint32_t)p->uid))
                return true;
        for (size_t i = 0; i < a->n_gids; i++)
                if (peer_in_group(p, (gid_t)a->gids[i]))
                        return true;
        return false;
}

static bool may_see(const struct sgld_area *a, const struct sgld_peer *p) {
        return p->uid == a->owner->uid || may_read(a, p);
}

static int send_built(struct sgld_peer *p, const uint8_t *buf, ssize_t n,
                      struct sgld_file *f) {
        if (n < 0)
                return (int)n;
        return sgld_peer_send(p, buf, (size_t)n, f);
}

static int send_error(struct sgld_peer *p, uint32_t serial, int error) {
        uint8_t buf[64];
        return send_built(p, buf, sgl_msg_build_error(buf, sizeof(buf), serial, error), NULL);
}

static void sub_unlink(struct sgld_peer *p) {
        struct sgld_area *a = p->sub;

        if (!a)
                return;
        if (p->sub_prev)
                p->sub_prev->sub_next = p->sub_next;
        else
                a->subs = p->sub_next;
        if (p->sub_next)
                p->sub_next->sub_prev = p->sub_prev;
        p->sub = NULL;
        p->sub_prev = p->sub_next = NULL;
        a->n_subs--;
}

static void sub_link(struct sgld_area *a, struct sgld_peer *p) {
        p->sub = a;
        p->sub_prev = NULL;
        p->sub_next = a->subs;
        if (a->subs)
                a->subs->sub_prev = p;
        a->subs = p;
        a->n_subs++;
}

/* GONE, then the connection closes (section 5.2). */
static void sub_gone(struct sgld_peer *p) {
        uint8_t buf[64];

        sub_unlink(p);
        send_built(p, buf, sgl_msg_build_gone(buf, sizeof(buf)), NULL);
        sgld_peer_hangup(p);
}

/* Pushes a message to every subscriber (OPENED segments and their RETIRED
 * only to TRUSTED ones). */
static void push(struct sgld_registry *reg, struct sgld_area *a, const uint8_t *buf,
                 ssize_t n, struct sgld_file *f, bool trusted_only) {
        if (n < 0 || reg->shutting_down)
                return;
        for (struct sgld_peer *s = a->subs; s; s = s->sub_next)
                if (!trusted_only || s->trusted)
                        sgld_peer_send(s, buf, (size_t)n, f);
}

static void push_area(struct sgld_registry *reg, struct sgld_area *a) {
        uint8_t buf[64];

        if (!a->control)
                return;
        push(reg, a, buf, sgl_msg_build_area(buf, sizeof(buf), 0, a->area_id,
                                             a->writer ? SGL_AREA_WRITER_PRESENT : 0),
             a->control, false);
}

static void seg_release(struct sgld_registry *reg, struct sgld_area *a, struct segment *s) {
        charge(reg, a->owner, -1, -1, -(int64_t)s->size);
        s->file = sgld_file_unref(s->file);
}

/* ------------------------------------------------------------ fd store */

static void hex_id(char out[2 * SGL_MSG_AREA_ID_LEN + 1], const uint8_t *id) {
        static const char digits[] = "0123456789abcdef";

        for (size_t i = 0; i < SGL_MSG_AREA_ID_LEN; i++) {
                out[2 * i] = digits[id[i] >> 4];
                out[2 * i + 1] = digits[id[i] & 15];
        }
        out[2 * SGL_MSG_AREA_ID_LEN] = '\0';
}

static void fdname(char name[FDNAME_MAX], char kind, const uint8_t *area_id, uint64_t seq) {
        char hex[2 * SGL_MSG_AREA_ID_LEN + 1];

        hex_id(hex, area_id);
        if (kind == 's')
                snprintf(name, FDNAME_MAX, FDNAME_PREFIX "s.%s.%llu", hex, (unsigned long long)seq);
        else
                snprintf(name, FDNAME_MAX, FDNAME_PREFIX "%c.%s", kind, hex);
}

/* Stores @fd under a name nothing is stored under yet. */
static void store_new(const struct sgld_area *a, char kind, uint64_t seq, int fd) {
        char name[FDNAME_MAX];

        fdname(name, kind, a->area_id, seq);
        sgld_fdstore(name, fd);
}

/* One descriptor per name: what was stored under it goes first; @fd < 0
 * only removes. */
static void store_fd(const struct sgld_area *a, char kind, uint64_t seq, int fd) {
        char name[FDNAME_MAX];

        fdname(name, kind, a->area_id, seq);
        sgld_fdstore(name, -1);
        if (fd >= 0)
                sgld_fdstore(name, fd);
}

/* The metadata of @a in its little-endian layout; returns its length. */
static size_t meta_build(const struct sgld_area *a, uint8_t *b) {
        uint8_t *q = b + META_FIXED;

        sgl_put_le64(b, META_MAGIC);
        sgl_put_le32(b + 8, META_VERSION);
        memcpy(b + 16, a->area_id, SGL_MSG_AREA_ID_LEN);
        sgl_put_le32(b + 32, (uint32_t)a->owner->uid);
        sgl_put_le32(b + 36, (uint32_t)a->gid);
        sgl_put_le32(b + 40, a->mode);
        sgl_put_le32(b + 44, a->persist ? META_PERSIST : 0);
        sgl_put_le64(b + 48, a->max_seq);
        sgl_put_le32(b + 56, (uint32_t)a->n_uids);
        sgl_put_le32(b + 60, (uint32_t)a->n_gids);
        sgl_put_le32(b + 64, (uint32_t)a->name_len);
        for (size_t i = 0; i < a->n_uids; i++, q += 4)
                sgl_put_le32(q, a->uids[i]);
        for (size_t i = 0; i < a->n_gids; i++, q += 4)
                sgl_put_le32(q, a->gids[i]);
        memcpy(q, a->name, a->name_len);
        q += a->name_len;
        sgl_put_le32(b + 12, (uint32_t)(q - b));
        return (size_t)(q - b);
}

/* A small sealed memfd with the area's metadata, stored; we keep no copy. */
static void store_meta(const struct sgld_area *a) {
        _cleanup_close_ int fd = -1;
        uint8_t buf[SGL_PAGE];
        size_t len;

        memset(buf, 0, sizeof(buf));
        len = meta_build(a, buf);
        fd = sgl_memfd_create("sigillod-meta", SGL_PAGE);
        if (fd < 0 || pwrite(fd, buf, len, 0) != (ssize_t)len || sgl_memfd_seal_write(fd) < 0) {
                sgld_log(SGLD_LOG_WARN, "area \"%s\": cannot store its metadata", a->name);
                return;
        }
        store_fd(a, 'm', 0, fd);
}

static void unstore_area(struct sgld_registry *reg, struct sgld_area *a) {
        if (!a->stored || reg->shutting_down)
                return;
        store_fd(a, 'm', 0, -1);
        store_fd(a, 'c', 0, -1);
        for (size_t i = 0; i < a->nsegs; i++)
                store_fd(a, 's', a->segs[i].seq, -1);
        a->stored = false;
}

/* Puts all of @a in the fd store if it belongs there (PERSIST, with a
 * control page), takes it out if it no longer does. */
static void store_area(struct sgld_registry *reg, struct sgld_area *a) {
        if (!reg->fdstore || reg->shutting_down)
                return;
        if (!a->persist || !a->control) {
                unstore_area(reg, a);
                return;
        }
        store_meta(a);
        store_new(a, 'c', 0, a->control->fd);
        for (size_t i = 0; i < a->nsegs; i++)
                store_new(a, 's', a->segs[i].seq, a->segs[i].file->fd);
        a->stored = true;
}

/* Removes @a: subscribers get GONE, its descriptors close, its owner is
 * uncharged.  The lease, if any, ends without a word to its holder. */
static void area_remove(struct sgld_registry *reg, struct sgld_area *a, const char *why) {
        struct sgld_area **slot = area_slot(reg, a->name, a->name_len);

        if (!reg->shutting_down) /* else it lives on in the fd store, or nowhere */
                sgld_log(SGLD_LOG_INFO, "area \"%s\" of uid %u removed (%s)", a->name,
                         (unsigned)a->owner->uid, why);
        unstore_area(reg, a);
        while (a->subs) {
                if (reg->shutting_down)
                        sub_unlink(a->subs);
                else
                        sub_gone(a->subs);
        }
        if (a->writer) {
                a->writer->lease = NULL;
                a->writer = NULL;
        }
        for (size_t i = 0; i < a->nsegs; i++)
                seg_release(reg, a, &a->segs[i]);
        if (a->control) {
                charge(reg, a->owner, 0, -1, -(int64_t)SGL_PAGE);
                a->control = sgld_file_unref(a->control);
        }
        if (*slot == a)
                *slot = a->next;
        reg->n_areas--;
        a->owner->areas--;
        user_put(reg, a->owner);
        free(a->segs);
        free(a->uids);
        free(a->gids);
        free(a);
}

/* ------------------------------------------------- descriptor checks */

/* Section 11 steps 1-7 on the descriptor itself. */
static int verify_fd(int fd, bool write_sealed, uint64_t *ret_size) {
        int fl, r;

        r = sgl_memfd_verify(fd, write_sealed ? SGL_VERIFY_WRITE_SEALED : 0, ret_size, NULL);
        if (r < 0)
                return r;
        fl = fcntl(fd, F_GETFL);
        if (fl < 0)
                return sgl_negerrno();
        /* readers get this very description: a writable one would let them
         * add seals (F_SEAL_SEAL on an open segment) */
        if ((fl & O_ACCMODE) != O_RDONLY)
                return -EPERM;
        return 0;
}

static int verify_control(int fd, const uint8_t area_id[SGL_MSG_AREA_ID_LEN]) {
        struct sgl_ctl_page c;
        uint64_t size;
        int r;

        r = verify_fd(fd, false, &size);
        if (r < 0)
                return r;
        if (size != SGL_PAGE)
                return -EBADMSG;
        if (pread(fd, &c, sizeof(c), 0) != (ssize_t)sizeof(c))
                return -EIO;
        if (c.magic != SGL_CTL_MAGIC || c.version != SGL_FORMAT_VERSION)
                return -EBADMSG;
        if (memcmp(c.area_id, area_id, SGL_MSG_AREA_ID_LEN) != 0)
                return -EXDEV;
        return 0;
}

static int verify_segment(int fd, const uint8_t area_id[SGL_MSG_AREA_ID_LEN],
                          uint64_t seq, bool sealed, uint64_t *ret_size) {
        uint8_t hdr[sizeof(struct sgl_seg_header)];
        struct sgl_seg_info info;
        uint64_t size;
        int r;

        r = verify_fd(fd, sealed, &size);
        if (r < 0)
                return r;
        if (pread(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr))
                return -EIO;
        r = sgl_seg_header_parse(hdr, sizeof(hdr), &info);
        if (r < 0)
                return r;
        if (memcmp(info.area_id, area_id, SGL_MSG_AREA_ID_LEN) != 0)
                return -EXDEV;
        if (info.seq != seq)
                return -ESPIPE;
        if (info.size != size)
                return -ERANGE;
        *ret_size = size;
        return 0;
}

/* ---------------------------------------------- sealing an orphan by copy */

static int copy_range(int from, int to, uint64_t off, uint64_t end) {
        _cleanup_free_ uint8_t *buf = malloc(COPY_CHUNK);

        if (!buf)
                return -ENOMEM;
        while (off < end) {
                size_t want = (size_t)MIN((uint64_t)COPY_CHUNK, end - off);
                ssize_t n = pread(from, buf, want, (off_t)off);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? sgl_negerrno() : -EIO;
                if (pwrite(to, buf, (size_t)n, (off_t)off) != n)
                        return -EIO;
                off += (uint64_t)n;
        }
        return 0;
}

/*
 * The writer of a PERSIST area left an OPEN segment behind.  Nobody can
 * seal it in place (we hold only a read-only description, and a reader may
 * pin its pages), so copy its committed bytes into a fresh memfd nobody has
 * seen, seal that F_SEAL_WRITE|F_SEAL_SEAL, and publish it SEALED under the
 * same seq: no committed chunk is lost for STRICT readers.  The copy is a
 * snapshot of untrusted bytes; readers parse it as they parse anything.
 */
static int seal_by_copy(struct sgld_registry *reg, struct sgld_area *a, struct segment *s) {
        _cleanup_close_ int fd = -1, ro = -1;
        struct sgl_seg_header h;
        struct sgl_seg_info info;
        struct sgld_file *f;
        uint64_t end, size;
        uint8_t buf[64];
        int r;

        if (pread(s->file->fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
                return -EIO;
        r = sgl_seg_header_parse(&h, sizeof(h), &info);
        if (r < 0)
                return r;
        if (info.seq != s->seq || info.size != s->size)
                return -EBADMSG;
        end = sgl_seg_visible_end(&h, s->size);
        size = sgl_seg_size_for(end);

        /* the copy is never larger than the original, so it fits the
         * quota the original was charged against */
        fd = sgl_memfd_create("sigillod-sealed", size);
        if (fd < 0)
                return fd;
        h.size = size;
        h.commit_end = end;
        if (pwrite(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
                return -EIO;
        r = copy_range(s->file->fd, fd, SGL_SEG_DATA, end);
        if (r < 0)
                return r;
        r = sgl_memfd_seal_write(fd);
        if (r < 0)
                return r;
        ro = sgl_memfd_reopen_ro(fd);
        if (ro < 0)
                return ro;
        f = file_new(ro);
        if (!f)
                return -ENOMEM;
        ro = -1;

        charge(reg, a->owner, 0, 0, (int64_t)size - (int64_t)s->size);
        sgld_file_unref(s->file);
        s->file = f;
        s->size = size;
        s->event = SGL_MSG_EVENT_SEALED;
        if (a->stored)
                store_fd(a, 's', s->seq, f->fd);
        push(reg, a, buf, sgl_msg_build_segment(buf, sizeof(buf), 0, s->seq,
                                                SGL_MSG_EVENT_SEALED), f, false);
        sgld_log(SGLD_LOG_INFO, "area \"%s\": open segment %llu sealed by copy (%llu bytes)",
                 a->name, (unsigned long long)s->seq, (unsigned long long)end);
        return 0;
}

/* The lease of @a ends: a new area without control page, a non-PERSIST
 * area, or @remove: the area goes; else it stays without a writer, its
 * open segments sealed by copy, and subscribers learn WRITER_PRESENT is
 * clear. */
static void lease_end(struct sgld_registry *reg, struct sgld_area *a, bool remove,
                      const char *why) {
        if (a->writer) {
                a->writer->lease = NULL;
                a->writer = NULL;
        }
        if (remove || !a->persist || !a->control || reg->shutting_down) {
                if (!reg->shutting_down)
                        area_remove(reg, a, why);
                return;
        }
        sgld_log(SGLD_LOG_INFO, "area \"%s\": writer left (%s), area persists", a->name, why);
        for (size_t i = 0; i < a->nsegs; i++) {
                struct segment *s = &a->segs[i];
                int r;

                if (s->event != SGL_MSG_EVENT_OPENED)
                        continue;
                r = seal_by_copy(reg, a, s);
                if (r < 0)
                        sgld_log(SGLD_LOG_WARN,
                                 "area \"%s\": cannot seal orphaned segment %llu by copy: %s",
                                 a->name, (unsigned long long)s->seq, strerror(-r));
        }
        if (a->stored)
                store_meta(a); /* its highest seq, for a takeover after a restart */
        push_area(reg, a);
}

/* ------------------------------------------------------------ requests */

static int handle_hello(struct sgld_peer *p, const struct sgl_msg *m) {
        uint8_t buf[64];
        int v = sgl_proto_negotiate(m->hello.min_version, m->hello.max_version);

        if (v < 0 || p->refusal < 0) {
                send_error(p, m->serial, v < 0 ? v : p->refusal);
                return SGLD_CLOSE;
        }
        p->role = m->hello.role;
        p->state = SGL_CONN_READY;
        send_built(p, buf, sgl_msg_build_welcome(buf, sizeof(buf), m->serial, (uint16_t)v,
                                                 SGL_MSG_MAX_SIZE, SGL_NAME_MAX), NULL);
        return 0;
}

static int handle_open(struct sgld_registry *reg, struct sgld_peer *p, const struct sgl_msg *m) {
        struct sgld_area *a = area_find(reg, m->open.name, m->open.name_len);
        bool trusted = m->open.flags & SGL_OPEN_TRUSTED;
        uint8_t buf[64];

        if (!a || !a->control)
                return send_error(p, m->serial, -ENOENT), 0;
        if (!may_read(a, p))
                return send_error(p, m->serial, -EACCES), 0;

        if (send_built(p, buf, sgl_msg_build_area(buf, sizeof(buf), m->serial, a->area_id,
                                                  a->writer ? SGL_AREA_WRITER_PRESENT : 0),
                       a->control) < 0)
                return 0; /* doomed */
        for (size_t i = 0; i < a->nsegs; i++) {
                struct segment *s = &a->segs[i];

                if (s->event == SGL_MSG_EVENT_OPENED && !trusted)
                        continue;
                if (send_built(p, buf, sgl_msg_build_segment(buf, sizeof(buf), m->serial,
                                                             s->seq, s->event),
                               s->file) < 0)
                        return 0;
        }
        if (send_built(p, buf, sgl_msg_build_synced(buf, sizeof(buf), m->serial), NULL) < 0)
                return 0;
        if (m->open.flags & SGL_OPEN_SUBSCRIBE) {
                p->trusted = trusted;
                p->state = SGL_CONN_SUBSCRIBED;
                sub_link(a, p);
        }
        sgld_log(SGLD_LOG_DEBUG, "peer %llu (uid %u): opened \"%s\"%s%s",
                 (unsigned long long)p->id, (unsigned)p->uid, a->name,
                 trusted ? " trusted" : "",
                 (m->open.flags & SGL_OPEN_SUBSCRIBE) ? " subscribed" : "");
        return 0;
}

static int set_access(struct sgld_area *a, const struct sgld_peer *p, const struct sgl_msg *m,
                      bool persist_default) {
        uint32_t *uids = NULL, *gids = NULL;

        if (m->claim.n_uids && !(uids = calloc(m->claim.n_uids, sizeof(*uids))))
                return -ENOMEM;
        if (m->claim.n_gids && !(gids = calloc(m->claim.n_gids, sizeof(*gids)))) {
                free(uids);
                return -ENOMEM;
        }
        for (uint32_t i = 0; i < m->claim.n_uids; i++)
                uids[i] = sgl_msg_claim_uid(m, i);
        for (uint32_t i = 0; i < m->claim.n_gids; i++)
                gids[i] = sgl_msg_claim_gid(m, i);
        free(a->uids);
        free(a->gids);
        a->uids = uids;
        a->gids = gids;
        a->n_uids = m->claim.n_uids;
        a->n_gids = m->claim.n_gids;
        a->mode = m->claim.mode;
        a->persist = (m->claim.flags & SGL_CLAIM_PERSIST) || persist_default;
        a->gid = p->gid;
        return 0;
}

static int handle_claim(struct sgld_registry *reg, struct sgld_peer *p, const struct sgl_msg *m) {
        struct sgld_area **slot, *a;
        uint8_t buf[64];
        int r;

        r = sgld_policy_check_claim(reg->policy, m->claim.name, m->claim.name_len, p->uid,
                                    p->gid, p->groups, p->n_groups);
        if (r < 0) {
                sgld_log(SGLD_LOG_INFO, "peer %llu (uid %u): CLAIM \"%.*s\" refused by policy",
                         (unsigned long long)p->id, (unsigned)p->uid,
                         (int)m->claim.name_len, m->claim.name);
                return send_error(p, m->serial, r), 0;
        }
        slot = area_slot(reg, m->claim.name, m->claim.name_len);
        a = *slot;
        if (a) {
                if (a->owner->uid != p->uid)
                        return send_error(p, m->serial, -EEXIST), 0;
                if (a->writer)
                        return send_error(p, m->serial, -EBUSY), 0;
                /* a takeover: the area existed without a writer */
                r = set_access(a, p, m, reg->persist_default);
                if (r < 0)
                        return send_error(p, m->serial, r), 0;
                if (!a->persist)
                        unstore_area(reg, a);
                a->writer = p;
                a->lease_next_seq = a->max_seq + 1;
                p->lease = a;
                p->state = SGL_CONN_LEASED;
                send_built(p, buf, sgl_msg_build_claimed(buf, sizeof(buf), m->serial, a->area_id,
                                                         SGL_CLAIMED_TAKEOVER, a->lease_next_seq),
                           NULL);
                for (size_t i = 0; i < a->nsegs; i++)
                        send_built(p, buf, sgl_msg_build_segment(buf, sizeof(buf), m->serial,
                                                                 a->segs[i].seq, a->segs[i].event),
                                   a->segs[i].file);
                send_built(p, buf, sgl_msg_build_synced(buf, sizeof(buf), m->serial), NULL);
                /* the new rules may shut readers out */
                for (struct sgld_peer *s = a->subs, *next; s; s = next) {
                        next = s->sub_next;
                        if (!may_read(a, s))
                                sub_gone(s);
                }
                sgld_log(SGLD_LOG_INFO, "peer %llu (uid %u pid %d): took over \"%s\" (next seq %llu)",
                         (unsigned long long)p->id, (unsigned)p->uid, (int)p->pid, a->name,
                         (unsigned long long)a->lease_next_seq);
                return 0;
        }

        if (reg->n_areas >= reg->lim.areas_max)
                return send_error(p, m->serial, -ENOSPC), 0;
        if (p->user->areas >= reg->lim.areas_per_uid)
                return send_error(p, m->serial, -EDQUOT), 0;
        a = calloc(1, sizeof(*a));
        if (!a)
                return send_error(p, m->serial, -ENOMEM), 0;
        memcpy(a->name, m->claim.name, m->claim.name_len);
        a->name_len = m->claim.name_len;
        if (getrandom(a->area_id, sizeof(a->area_id), 0) != sizeof(a->area_id) ||
            set_access(a, p, m, reg->persist_default) < 0) {
                free(a->uids);
                free(a);
                return send_error(p, m->serial, -ENOMEM), 0;
        }
        a->owner = user_get(reg, p->uid);
        if (!a->owner) {
                free(a->uids);
                free(a->gids);
                free(a);
                return send_error(p, m->serial, -ENOMEM), 0;
        }
        a->owner->areas++;
        a->next = NULL;
        *slot = a;
        reg->n_areas++;
        a->writer = p;
        a->lease_next_seq = 1;
        p->lease = a;
        p->state = SGL_CONN_LEASED;
        sgld_log(SGLD_LOG_INFO, "peer %llu (uid %u pid %d): new area \"%s\" mode %03o%s",
                 (unsigned long long)p->id, (unsigned)p->uid, (int)p->pid, a->name,
                 (unsigned)a->mode, a->persist ? " persist" : "");
        send_built(p, buf, sgl_msg_build_claimed(buf, sizeof(buf), m->serial, a->area_id, 0, 1),
                   NULL);
        return 0;
}

static int handle_publish_control(struct sgld_registry *reg, struct sgld_peer *p,
                                  const struct sgl_msg *m, int fd) {
        struct sgld_area *a = p->lease;
        struct sgld_file *f;
        int r;

        r = verify_control(fd, a->area_id);
        if (r < 0) {
                sgld_log(SGLD_LOG_WARN, "peer %llu (uid %u): control page for \"%s\" refused: %s",
                         (unsigned long long)p->id, (unsigned)p->uid, a->name, strerror(-r));
                sgl_close(fd);
                return -EBADF;
        }
        r = a->control ? 0 : charge(reg, a->owner, 0, 1, SGL_PAGE);
        if (r < 0) {
                sgl_close(fd);
                send_error(p, m->serial, r);
                return SGLD_CLOSE;
        }
        f = file_new(fd);
        if (!f) {
                if (!a->control)
                        charge(reg, a->owner, 0, -1, -(int64_t)SGL_PAGE);
                sgl_close(fd);
                send_error(p, m->serial, -ENOMEM);
                return SGLD_CLOSE;
        }
        sgld_file_unref(a->control);
        a->control = f;
        p->state = SGL_CONN_PUBLISHING;
        if (a->stored) {
                store_meta(a); /* a takeover's rules */
                store_fd(a, 'c', 0, f->fd);
        } else {
                store_area(reg, a);
        }
        push_area(reg, a); /* a takeover: subscribers switch to the new page */
        return 0;
}

static int handle_publish_segment(struct sgld_registry *reg, struct sgld_peer *p,
                                  const struct sgl_msg *m, int fd) {
        struct sgld_area *a = p->lease;
        uint64_t seq = m->publish_segment.seq, size;
        uint32_t event = m->publish_segment.event;
        struct segment *s = seg_find(a, seq);
        struct sgld_file *f;
        uint8_t buf[64];
        int r;

        if (s ? !(event == SGL_MSG_EVENT_SEALED && s->event == SGL_MSG_EVENT_OPENED)
              : (seq < a->lease_next_seq || seq <= a->max_seq)) {
                sgld_log(SGLD_LOG_WARN, "peer %llu (uid %u): \"%s\": PUBLISH_SEGMENT %llu %s breaks the seq rules",
                         (unsigned long long)p->id, (unsigned)p->uid, a->name,
                         (unsigned long long)seq, event == SGL_MSG_EVENT_SEALED ? "SEALED" : "OPENED");
                sgl_close(fd);
                return -EPROTO;
        }
        r = verify_segment(fd, a->area_id, seq, event == SGL_MSG_EVENT_SEALED, &size);
        if (r < 0) {
                sgld_log(SGLD_LOG_WARN, "peer %llu (uid %u): \"%s\": segment %llu refused: %s",
                         (unsigned long long)p->id, (unsigned)p->uid, a->name,
                         (unsigned long long)seq, strerror(-r));
                sgl_close(fd);
                return -EBADF;
        }
        if (!s && a->nsegs == a->asegs) {
                size_t n = a->asegs ? a->asegs * 2 : 8;
                struct segment *arr = realloc(a->segs, n * sizeof(*arr));
                if (!arr) {
                        sgl_close(fd);
                        send_error(p, m->serial, -ENOMEM);
                        return SGLD_CLOSE;
                }
                a->segs = arr;
                a->asegs = n;
        }
        r = s ? charge(reg, a->owner, 0, 0, (int64_t)size - (int64_t)s->size)
              : charge(reg, a->owner, 1, 1, (int64_t)size);
        if (r < 0) {
                sgld_log(SGLD_LOG_WARN, "uid %u: quota reached in \"%s\" (%llu segments, %llu bytes)",
                         (unsigned)a->owner->uid, a->name,
                         (unsigned long long)a->owner->segments,
                         (unsigned long long)a->owner->bytes);
                sgl_close(fd);
                send_error(p, m->serial, r);
                return SGLD_CLOSE;
        }
        f = file_new(fd);
        if (!f) {
                if (s)
                        charge(reg, a->owner, 0, 0, (int64_t)s->size - (int64_t)size);
                else
                        charge(reg, a->owner, -1, -1, -(int64_t)size);
                sgl_close(fd);
                send_error(p, m->serial, -ENOMEM);
                return SGLD_CLOSE;
        }
        if (s) {
                sgld_file_unref(s->file);
                if (a->stored)
                        store_fd(a, 's', seq, f->fd);
        } else {
                s = &a->segs[a->nsegs++];
                s->seq = seq;
                a->max_seq = seq;
                if (a->stored)
                        store_new(a, 's', seq, f->fd);
        }
        s->file = f;
        s->size = size;
        s->event = event;
        push(reg, a, buf, sgl_msg_build_segment(buf, sizeof(buf), 0, seq, event), f,
             event == SGL_MSG_EVENT_OPENED);
        sgld_log(SGLD_LOG_DEBUG, "area \"%s\": segment %llu %s (%llu bytes)", a->name,
                 (unsigned long long)seq, event == SGL_MSG_EVENT_SEALED ? "sealed" : "opened",
                 (unsigned long long)size);
        return 0;
}

static int handle_retire(struct sgld_registry *reg, struct sgld_peer *p, const struct sgl_msg *m) {
        struct sgld_area *a = p->lease;
        struct segment *s = seg_find(a, m->retire.seq);
        uint8_t buf[64];
        bool opened;
        size_t i;

        if (!s)
                return -EPROTO;
        opened = s->event == SGL_MSG_EVENT_OPENED;
        if (a->stored)
                store_fd(a, 's', s->seq, -1);
        seg_release(reg, a, s);
        i = (size_t)(s - a->segs);
        memmove(&a->segs[i], &a->segs[i + 1], (a->nsegs - i - 1) * sizeof(a->segs[0]));
        a->nsegs--;
        /* a STRICT reader never held an open segment */
        push(reg, a, buf, sgl_msg_build_retired(buf, sizeof(buf), m->retire.seq), NULL, opened);
        return 0;
}

static int handle_release(struct sgld_registry *reg, struct sgld_peer *p, const struct sgl_msg *m) {
        uint8_t buf[64];

        lease_end(reg, p->lease, m->release.flags & SGL_RELEASE_REMOVE,
                  (m->release.flags & SGL_RELEASE_REMOVE) ? "released, remove" : "released");
        p->state = SGL_CONN_READY;
        send_built(p, buf, sgl_msg_build_ok(buf, sizeof(buf), m->serial), NULL);
        return 0;
}

static int send_area_info(struct sgld_peer *p, const struct sgld_area *a, uint32_t serial) {
        uint8_t buf[SGL_MSG_MAX_SIZE];
        uint64_t bytes = 0;

        for (size_t i = 0; i < a->nsegs; i++)
                bytes += a->segs[i].size;
        return send_built(p, buf,
                          sgl_msg_build_area_info(buf, sizeof(buf), serial, (uint32_t)a->owner->uid,
                                                  a->mode,
                                                  (a->writer ? SGL_INFO_WRITER_PRESENT : 0) |
                                                  (a->persist ? SGL_INFO_PERSIST : 0),
                                                  a->n_subs, a->nsegs, bytes,
                                                  SGL_MSG_BYTES_UNKNOWN, a->name, a->name_len),
                          NULL);
}

static int handle_list(struct sgld_registry *reg, struct sgld_peer *p, const struct sgl_msg *m) {
        uint8_t buf[64];

        for (size_t b = 0; b < AREA_BUCKETS; b++)
                for (struct sgld_area *a = reg->areas[b]; a; a = a->next)
                        if (a->control && may_see(a, p) && send_area_info(p, a, m->serial) < 0)
                                return 0;
        send_built(p, buf, sgl_msg_build_end(buf, sizeof(buf), m->serial), NULL);
        return 0;
}

static int handle_stat(struct sgld_registry *reg, struct sgld_peer *p, const struct sgl_msg *m) {
        struct sgld_area *a = area_find(reg, m->stat.name, m->stat.name_len);
        uint8_t buf[64];

        if (!a || !a->control)
                return send_error(p, m->serial, -ENOENT), 0;
        if (!may_see(a, p))
                return send_error(p, m->serial, -EACCES), 0;
        if (send_area_info(p, a, m->serial) < 0)
                return 0;
        for (size_t i = 0; i < a->nsegs; i++) {
                int seals = fcntl(a->segs[i].file->fd, F_GET_SEALS);

                if (send_built(p, buf, sgl_msg_build_segment_info(buf, sizeof(buf), m->serial,
                                                                  a->segs[i].seq, a->segs[i].size,
                                                                  seals < 0 ? 0 : (uint32_t)seals,
                                                                  a->segs[i].event),
                               NULL) < 0)
                        return 0;
        }
        send_built(p, buf, sgl_msg_build_end(buf, sizeof(buf), m->serial), NULL);
        return 0;
}

/**
 * sgld_registry_handle() - one parsed request of @p.
 * @reg: the registry
 * @p: the peer that sent it
 * @m: the message (sgl_msg_parse() accepted it, so the descriptor count is
 *     the type's)
 * @fd: the descriptor that came with it or -1; always consumed
 *
 * Return: 0 (replies, if any, are queued); SGLD_CLOSE: close once the
 * queued reply has gone; or a protocol error (section 8) to report with
 * serial 0 before closing: -EBADMSG (not a request), -EPROTO (not allowed
 * now, or breaks a publish rule), -EBADF (a descriptor failed its checks).
 */
int sgld_registry_handle(struct sgld_registry *reg, struct sgld_peer *p,
                         const struct sgl_msg *m, int fd) {
        uint8_t buf[64];

        if (!sgl_msg_type_is_request(m->type)) {
                sgl_close(fd);
                return -EBADMSG;
        }
        if (!sgl_msg_request_allowed(p->state, p->role, m->type)) {
                sgl_close(fd);
                return -EPROTO;
        }
        switch (m->type) {
        case SGL_MSG_PUBLISH_CONTROL:
                return handle_publish_control(reg, p, m, fd);
        case SGL_MSG_PUBLISH_SEGMENT:
                return handle_publish_segment(reg, p, m, fd);
        default:
                break;
        }
        sgl_close(fd);
        switch (m->type) {
        case SGL_MSG_HELLO:
                return handle_hello(p, m);
        case SGL_MSG_OPEN:
                return handle_open(reg, p, m);
        case SGL_MSG_CLAIM:
                return handle_claim(reg, p, m);
        case SGL_MSG_RETIRE:
                return handle_retire(reg, p, m);
        case SGL_MSG_LIST:
                return handle_list(reg, p, m);
        case SGL_MSG_STAT:
                return handle_stat(reg, p, m);
        case SGL_MSG_RELEASE:
                return handle_release(reg, p, m);
        case SGL_MSG_PING:
                send_built(p, buf, sgl_msg_build_ok(buf, sizeof(buf), m->serial), NULL);
                return 0;
        default:
                return -EPROTO;
        }
}

/* ---------------------------------------------------------------- peers */

static int peer_groups(struct sgld_peer *p, int fd) {
        socklen_t len = 64 * sizeof(gid_t);
        gid_t *g = NULL;

        for (int tries = 0; tries < 3; tries++) {
                gid_t *n = realloc(g, len ? len : sizeof(gid_t));
                if (!n) {
                        free(g);
                        return -ENOMEM;
                }
                g = n;
                if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) == 0) {
                        p->groups = g;
                        p->n_groups = len / sizeof(gid_t);
                        return 0;
                }
                if (errno != ERANGE || len > MAX_GROUPS * sizeof(gid_t))
                        break;
        }
        free(g);
        return errno == ERANGE ? -E2BIG : sgl_negerrno();
}

/**
 * sgld_peer_attach() - a new connection: its credentials, its accounting.
 * @reg: the registry
 * @p: zeroed but for @p->id
 * @fd: the connected socket
 *
 * A connection beyond the uid's or the server's connection quota is
 * attached "refused" (p->refusal), to be told why at HELLO, as long as few
 * such are waiting; beyond that it should be closed without a word.
 *
 * Return: 0, or -errno: close the connection now (no detach needed).
 */
int sgld_peer_attach(struct sgld_registry *reg, struct sgld_peer *p, int fd) {
        struct ucred cred;
        socklen_t len = sizeof(cred);
        int r;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return sgl_negerrno();
        if (cred.uid == (uid_t)-1 || cred.gid == (gid_t)-1)
                return -EPERM; /* an unmapped user namespace id */
        p->uid = cred.uid;
        p->gid = cred.gid;
        p->pid = cred.pid;
        r = peer_groups(p, fd);
        if (r < 0)
                return r;
        p->state = SGL_CONN_NEW;

        if (reg->n_peers >= reg->lim.conns_max)
                p->refusal = -ENOSPC;
        else {
                p->user = user_get(reg, p->uid);
                if (!p->user) {
                        free(p->groups);
                        p->groups = NULL;
                        return -ENOMEM;
                }
                if (p->user->conns >= reg->lim.conns_per_uid) {
                        user_put(reg, p->user);
                        p->user = NULL;
                        p->refusal = -EDQUOT;
                }
        }
        if (p->refusal < 0) {
                if (reg->n_refused >= REFUSED_POOL) {
                        free(p->groups);
                        p->groups = NULL;
                        return p->refusal;
                }
                reg->n_refused++;
                return 0;
        }
        p->user->conns++;
        reg->n_peers++;
        return 0;
}

/**
 * sgld_peer_detach() - the connection is gone: its lease ends as if its
 * writer died, its subscription ends, its accounting is released.
 */
void sgld_peer_detach(struct sgld_registry *reg, struct sgld_peer *p) {
        if (p->lease)
                lease_end(reg, p->lease, false, "writer gone");
        sub_unlink(p);
        if (p->refusal < 0) {
                reg->n_refused--;
        } else if (p->user) {
                p->user->conns--;
                user_put(reg, p->user);
                reg->n_peers--;
        }
        p->user = NULL;
        free(p->groups);
        p->groups = NULL;
        p->n_groups = 0;
}

/* ------------------------------------------------------ restoring a store */

struct meta {
        uint8_t area_id[SGL_MSG_AREA_ID_LEN];
        uint32_t owner, gid, mode, flags;
        uint64_t max_seq;
        uint32_t n_uids, n_gids;
        uint32_t uids[SGL_CLAIM_MAX_IDS], gids[SGL_CLAIM_MAX_IDS];
        char name[SGL_NAME_MAX + 1];
        size_t name_len;
};

/* A stored metadata memfd, checked like any stranger's bytes. */
static int meta_parse(int fd, struct meta *m) {
        uint8_t b[SGL_PAGE];
        uint32_t len;
        const uint8_t *q;
        uint64_t size;
        int r;

        r = sgl_memfd_verify(fd, SGL_VERIFY_WRITE_SEALED, &size, NULL);
        if (r < 0)
                return r;
        if (size != SGL_PAGE)
                return -EBADMSG;
        if (pread(fd, b, sizeof(b), 0) != (ssize_t)sizeof(b))
                return -EIO;
        len = sgl_get_le32(b + 12);
        if (sgl_get_le64(b) != META_MAGIC || sgl_get_le32(b + 8) != META_VERSION ||
            len < META_FIXED || len > SGL_PAGE)
                return -EBADMSG;
        memcpy(m->area_id, b + 16, SGL_MSG_AREA_ID_LEN);
        m->owner = sgl_get_le32(b + 32);
        m->gid = sgl_get_le32(b + 36);
        m->mode = sgl_get_le32(b + 40);
        m->flags = sgl_get_le32(b + 44);
        m->max_seq = sgl_get_le64(b + 48);
        m->n_uids = sgl_get_le32(b + 56);
        m->n_gids = sgl_get_le32(b + 60);
        m->name_len = sgl_get_le32(b + 64);
        if (m->owner == SGL_MSG_ID_INVALID || m->gid == SGL_MSG_ID_INVALID ||
            (m->mode & ~SGL_MSG_MODE_MASK) || m->flags != META_PERSIST ||
            m->n_uids > SGL_CLAIM_MAX_IDS || m->n_gids > SGL_CLAIM_MAX_IDS ||
            m->name_len < 1 || m->name_len > SGL_NAME_MAX ||
            (uint64_t)META_FIXED + 4 * ((uint64_t)m->n_uids + m->n_gids) + m->name_len != len)
                return -EBADMSG;
        q = b + META_FIXED;
        for (uint32_t i = 0; i < m->n_uids; i++, q += 4)
                if ((m->uids[i] = sgl_get_le32(q)) == SGL_MSG_ID_INVALID)
                        return -EBADMSG;
        for (uint32_t i = 0; i < m->n_gids; i++, q += 4)
                if ((m->gids[i] = sgl_get_le32(q)) == SGL_MSG_ID_INVALID)
                        return -EBADMSG;
        memcpy(m->name, q, m->name_len);
        m->name[m->name_len] = '\0';
        if (!sgl_name_valid(m->name, m->name_len))
                return -EBADMSG;
        /* the rest of the page is zero: one encoding per metadata */
        for (size_t i = len; i < sizeof(b); i++)
                if (b[i] != 0)
                        return -EBADMSG;
        return 0;
}

/* "<32 hex digits>" at @s, exactly. */
static bool parse_hex_id(const char *s, size_t len, uint8_t id[SGL_MSG_AREA_ID_LEN]) {
        if (len != 2 * SGL_MSG_AREA_ID_LEN)
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;

                if (v < 0)
                        return false;
                if (i % 2 == 0)
                        id[i / 2] = (uint8_t)(v << 4);
                else
                        id[i / 2] |= (uint8_t)v;
        }
        return true;
}

/* Splits a stored name: kind 'm', 'c' or 's', the area id, the seq. */
static bool parse_fdname(const char *name, char *kind, uint8_t id[SGL_MSG_AREA_ID_LEN],
                         uint64_t *seq) {
        size_t plen = strlen(FDNAME_PREFIX), len = strlen(name);
        const char *hex, *dot;

        if (len < plen + 2 + 2 * SGL_MSG_AREA_ID_LEN || strncmp(name, FDNAME_PREFIX, plen) != 0 ||
            name[plen + 1] != '.')
                return false;
        *kind = name[plen];
        hex = name + plen + 2;
        *seq = 0;
        if (*kind == 'm' || *kind == 'c')
                return parse_hex_id(hex, strlen(hex), id);
        if (*kind != 's')
                return false;
        dot = strchr(hex, '.');
        if (!dot || !parse_hex_id(hex, (size_t)(dot - hex), id) || !dot[1] || dot[1] == '0' ||
            strlen(dot + 1) > 20)
                return false;
        for (const char *c = dot + 1; *c; c++) {
                if (*c < '0' || *c > '9' || *seq > (UINT64_MAX - 9) / 10)
                        return false;
                *seq = *seq * 10 + (uint64_t)(*c - '0');
        }
        return true;
}

static struct sgld_area *area_by_id(struct sgld_registry *reg, const uint8_t *id) {
        for (size_t b = 0; b < AREA_BUCKETS; b++)
                for (struct sgld_area *a = reg->areas[b]; a; a = a->next)
                        if (memcmp(a->area_id, id, SGL_MSG_AREA_ID_LEN) == 0)
                                return a;
        return NULL;
}

static int restore_area(struct sgld_registry *reg, int fd) {
        struct sgld_area **slot, *a;
        struct meta m;
        int r;

        r = meta_parse(fd, &m);
        if (r < 0)
                return r;
        if (area_by_id(reg, m.area_id))
                return -EEXIST;
        slot = area_slot(reg, m.name, m.name_len);
        if (*slot)
                return -EEXIST;
        if (reg->n_areas >= reg->lim.areas_max)
                return -ENOSPC;
        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        if ((m.n_uids && !(a->uids = calloc(m.n_uids, sizeof(uint32_t)))) ||
            (m.n_gids && !(a->gids = calloc(m.n_gids, sizeof(uint32_t)))) ||
            !(a->owner = user_get(reg, (uid_t)m.owner))) {
                free(a->uids);
                free(a->gids);
                free(a);
                return -ENOMEM;
        }
        if (a->owner->areas >= reg->lim.areas_per_uid) {
                user_put(reg, a->owner);
                free(a->uids);
                free(a->gids);
                free(a);
                return -EDQUOT;
        }
        memcpy(a->name, m.name, m.name_len + 1);
        a->name_len = m.name_len;
        memcpy(a->area_id, m.area_id, sizeof(a->area_id));
        a->gid = (gid_t)m.gid;
        a->mode = m.mode;
        a->persist = true;
        a->max_seq = m.max_seq;
        a->n_uids = m.n_uids;
        a->n_gids = m.n_gids;
        if (m.n_uids)
                memcpy(a->uids, m.uids, m.n_uids * sizeof(uint32_t));
        if (m.n_gids)
                memcpy(a->gids, m.gids, m.n_gids * sizeof(uint32_t));
        a->stored = true;
        a->owner->areas++;
        *slot = a;
        reg->n_areas++;
        return 0;
}

static int restore_control(struct sgld_registry *reg, struct sgld_area *a, int fd) {
        struct sgld_file *f;
        int r;

        if (a->control)
                return -EEXIST;
        r = verify_control(fd, a->area_id);
        if (r < 0)
                return r;
        r = charge(reg, a->owner, 0, 1, SGL_PAGE);
        if (r < 0)
                return r;
        f = file_new(fd);
        if (!f) {
                charge(reg, a->owner, 0, -1, -(int64_t)SGL_PAGE);
                return -ENOMEM;
        }
        a->control = f;
        return 0;
}

static int restore_segment(struct sgld_registry *reg, struct sgld_area *a, uint64_t seq, int fd) {
        struct sgld_file *f;
        uint64_t size;
        int seals, r;
        size_t i;

        if (seg_find(a, seq))
                return -EEXIST;
        /* what the seals say, not what a name could claim */
        seals = fcntl(fd, F_GET_SEALS);
        r = verify_segment(fd, a->area_id, seq, seals >= 0 && (seals & F_SEAL_WRITE), &size);
        if (r < 0)
                return r;
        if (a->nsegs == a->asegs) {
                size_t n = a->asegs ? a->asegs * 2 : 8;
                struct segment *arr = realloc(a->segs, n * sizeof(*arr));
                if (!arr)
                        return -ENOMEM;
                a->segs = arr;
                a->asegs = n;
        }
        r = charge(reg, a->owner, 1, 1, (int64_t)size);
        if (r < 0)
                return r;
        f = file_new(fd);
        if (!f) {
                charge(reg, a->owner, -1, -1, -(int64_t)size);
                return -ENOMEM;
        }
        for (i = a->nsegs; i > 0 && a->segs[i - 1].seq > seq; i--)
                ;
        memmove(&a->segs[i + 1], &a->segs[i], (a->nsegs - i) * sizeof(a->segs[0]));
        a->segs[i] = (struct segment) { .seq = seq, .size = size, .file = f,
                                        .event = (seals & F_SEAL_WRITE) ? SGL_MSG_EVENT_SEALED
                                                                        : SGL_MSG_EVENT_OPENED };
        a->nsegs++;
        a->max_seq = MAX(a->max_seq, seq);
        return 0;
}

/* One pass over the stored descriptors for entries of @kind. */
static void restore_pass(struct sgld_registry *reg, int *fds, char **names, size_t n, char kind,
                         size_t *restored) {
        for (size_t i = 0; i < n; i++) {
                uint8_t id[SGL_MSG_AREA_ID_LEN];
                struct sgld_area *a = NULL;
                uint64_t seq;
                char k;
                int r;

                if (fds[i] < 0)
                        continue;
                if (!parse_fdname(names[i], &k, id, &seq))
                        r = -EINVAL;
                else if (k != kind)
                        continue;
                else if (kind == 'm')
                        r = restore_area(reg, fds[i]);
                else if (!(a = area_by_id(reg, id)))
                        r = -ENOENT;
                else if (kind == 'c')
                        r = restore_control(reg, a, fds[i]);
                else
                        r = restore_segment(reg, a, seq, fds[i]);
                /* the metadata is not kept: the store has it */
                if (r < 0 || kind == 'm')
                        sgl_close(fds[i]);
                if (r < 0) {
                        sgld_log(SGLD_LOG_WARN, "fd store: \"%s\" refused: %s", names[i], strerror(-r));
                        /* nothing we refuse stays in the store either */
                        sgld_fdstore(names[i], -1);
                } else {
                        (*restored)++;
                }
                fds[i] = -1;
        }
}

/**
 * sgld_registry_restore() - takes the areas back that an earlier run left
 * in the service manager's fd store.
 * @reg: the registry, still empty
 * @fds: the stored descriptors (consumed: each is kept or closed; the
 *       entries become -1)
 * @names: their FDNAMEs, all starting with "sgl."
 * @n: how many
 *
 * Every descriptor is checked like a stranger's: the metadata memfd (sealed,
 * its fields strictly parsed), the control page and segments as if a
 * writer published them, against the area id in the name and in the
 * metadata.  Refused entries are closed, logged and removed from the store.
 * A restored area has no writer; its open segments are sealed by copy.
 * Areas without a control page are dropped.
 *
 * Return: the number of areas restored.
 */
int sgld_registry_restore(struct sgld_registry *reg, int *fds, char **names, size_t n) {
        size_t restored = 0, areas = 0;

        restore_pass(reg, fds, names, n, 'm', &restored);
        restore_pass(reg, fds, names, n, 'c', &restored);
        restore_pass(reg, fds, names, n, 's', &restored);
        for (size_t i = 0; i < n; i++) /* an unknown kind */
                if (fds[i] >= 0) {
                        sgld_log(SGLD_LOG_WARN, "fd store: \"%s\" unknown, refused", names[i]);
                        fds[i] = sgl_close(fds[i]);
                        sgld_fdstore(names[i], -1);
                }
        for (size_t b = 0; b < AREA_BUCKETS; b++)
                for (struct sgld_area *a = reg->areas[b], *next; a; a = next) {
                        next = a->next;
                        if (!a->stored || a->writer)
                                continue;
                        if (!a->control) {
                                area_remove(reg, a, "restored without its control page");
                                continue;
                        }
                        lease_end(reg, a, false, "restored from the fd store");
                        areas++;
                }
        sgld_log(SGLD_LOG_INFO, "fd store: %zu areas restored (%zu descriptors)", areas, restored);
        return (int)areas;
}

/* Whether areas go to the service manager's fd store (main.c: when there
 * is a $NOTIFY_SOCKET). */
void sgld_registry_set_fdstore(struct sgld_registry *reg, bool on) {
        reg->fdstore = on;
}

/* ------------------------------------------------------------- registry */

int sgld_registry_new(const struct sgld_limits *limits, bool persist_default,
                      struct sgld_registry **ret) {
        struct sgld_registry *reg = calloc(1, sizeof(*reg));

        if (!reg)
                return -ENOMEM;
        reg->lim = *limits;
        reg->persist_default = persist_default;
        *ret = reg;
        return 0;
}

void sgld_registry_set_policy(struct sgld_registry *reg, struct sgld_policy *p) {
        sgld_policy_free(reg->policy);
        reg->policy = p;
}

/* From now on nothing is pushed or copied: the daemon is going away. */
void sgld_registry_shutdown(struct sgld_registry *reg) {
        reg->shutting_down = true;
}

struct sgld_registry *sgld_registry_free(struct sgld_registry *reg) {
        if (!reg)
                return NULL;
        reg->shutting_down = true;
        for (size_t b = 0; b < AREA_BUCKETS; b++)
                while (reg->areas[b])
                        area_remove(reg, reg->areas[b], "shutdown");
        sgld_policy_free(reg->policy);
        free(reg);
        return NULL;
}

size_t sgld_registry_areas(const struct sgld_registry *reg) {
        return reg->n_areas;
}

uint64_t sgld_registry_files(const struct sgld_registry *reg) {
        (void)reg;
        return files_open;
}

const struct sgld_limits *sgld_registry_limits(const struct sgld_registry *reg) {
        return &reg->lim;
}
