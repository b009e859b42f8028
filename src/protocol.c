/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * protocol.c - encoding and decoding of rendezvous wire messages
 * (doc/protocol.md is the spec).
 *
 * Owns: the layout of every message type and every rule about its fields
 * that can be checked without knowing the connection's state.
 *
 * Invariants:
 *  - Pure: no I/O, no syscalls, no allocation, no globals written.
 *  - Layout (sizes, lengths, counts) is checked by the decoder and computed
 *    by the encoder; every rule about field *values* lives in one place,
 *    check_fields(), which both run.  So the encoders produce exactly the
 *    messages the decoder accepts, and each accepted message has one
 *    encoding.
 *  - The decoder reads each byte of the input at most once, fills a local
 *    struct and copies it to the caller only on success.
 */

#include <errno.h>
#include <string.h>

#include "internal.h"
#include "protocol.h"

_Static_assert(SGL_SEGMENT_OPENED == 1 && SGL_SEGMENT_SEALED == 2,
               "wire event values are the public enum's");
_Static_assert(SGL_MSG_MAX_SIZE <= UINT32_MAX, "length fits its field");

/* Fixed payload sizes (bytes after the header); variable types give the
 * size of their fixed part, names and id lists follow it. */
#define HELLO_SIZE 12
#define OPEN_SIZE 8
#define CLAIM_SIZE 20
#define PUBLISH_SEGMENT_SIZE 16
#define RETIRE_SIZE 8
#define STAT_SIZE 4
#define RELEASE_SIZE 4
#define WELCOME_SIZE 16
#define ERROR_SIZE 8
#define AREA_SIZE 24
#define SEGMENT_SIZE 16
#define RETIRED_SIZE 8
#define AREA_INFO_SIZE 44
#define SEGMENT_INFO_SIZE 24
#define CLAIMED_SIZE 32

/* What the serial of a type must be. */
enum serial_rule {
        SERIAL_NONZERO, /* requests, and replies that echo one */
        SERIAL_ANY,     /* a reply (non-zero) or a push (zero) */
        SERIAL_ZERO,    /* pushes only */
};

struct type_info {
        const char *name;
        uint16_t fixed;    /* payload bytes, or its fixed part */
        uint8_t fds;
        uint8_t serial;    /* enum serial_rule */
        bool variable;     /* a name (and ids) follow the fixed part */
};

static const struct type_info requests[] = {
        [SGL_MSG_HELLO - 1] = { "HELLO", HELLO_SIZE, 0, SERIAL_NONZERO, false },
        [SGL_MSG_OPEN - 1] = { "OPEN", OPEN_SIZE, 0, SERIAL_NONZERO, true },
        [SGL_MSG_CLAIM - 1] = { "CLAIM", CLAIM_SIZE, 0, SERIAL_NONZERO, true },
        [SGL_MSG_PUBLISH_CONTROL - 1] = { "PUBLISH_CONTROL", 0, 1, SERIAL_NONZERO, false },
        [SGL_MSG_PUBLISH_SEGMENT - 1] = { "PUBLISH_SEGMENT", PUBLISH_SEGMENT_SIZE, 1, SERIAL_NONZERO, false },
        [SGL_MSG_RETIRE - 1] = { "RETIRE", RETIRE_SIZE, 0, SERIAL_NONZERO, false },
        [SGL_MSG_LIST - 1] = { "LIST", 0, 0, SERIAL_NONZERO, false },
        [SGL_MSG_STAT - 1] = { "STAT", STAT_SIZE, 0, SERIAL_NONZERO, true },
        [SGL_MSG_RELEASE - 1] = { "RELEASE", RELEASE_SIZE, 0, SERIAL_NONZERO, false },
        [SGL_MSG_PING - 1] = { "PING", 0, 0, SERIAL_NONZERO, false },
};

static const struct type_info replies[] = {
        [SGL_MSG_WELCOME - 64] = { "WELCOME", WELCOME_SIZE, 0, SERIAL_NONZERO, false },
        [SGL_MSG_OK - 64] = { "OK", 0, 0, SERIAL_NONZERO, false },
        [SGL_MSG_ERROR - 64] = { "ERROR", ERROR_SIZE, 0, SERIAL_ANY, false },
        [SGL_MSG_AREA - 64] = { "AREA", AREA_SIZE, 1, SERIAL_ANY, false },
        [SGL_MSG_SEGMENT - 64] = { "SEGMENT", SEGMENT_SIZE, 1, SERIAL_ANY, false },
        [SGL_MSG_RETIRED - 64] = { "RETIRED", RETIRED_SIZE, 0, SERIAL_ZERO, false },
        [SGL_MSG_SYNCED - 64] = { "SYNCED", 0, 0, SERIAL_NONZERO, false },
        [SGL_MSG_AREA_INFO - 64] = { "AREA_INFO", AREA_INFO_SIZE, 0, SERIAL_NONZERO, true },
        [SGL_MSG_SEGMENT_INFO - 64] = { "SEGMENT_INFO", SEGMENT_INFO_SIZE, 0, SERIAL_NONZERO, false },
        [SGL_MSG_END - 64] = { "END", 0, 0, SERIAL_NONZERO, false },
        [SGL_MSG_CLAIMED - 64] = { "CLAIMED", CLAIMED_SIZE, 0, SERIAL_NONZERO, false },
        [SGL_MSG_GONE - 64] = { "GONE", 0, 0, SERIAL_ZERO, false },
};

static const struct type_info *type_info(uint16_t type) {
        if (type >= 1 && type < 1 + ELEMENTSOF(requests))
                return &requests[type - 1];
        if (type >= 64 && type < 64 + ELEMENTSOF(replies))
                return &replies[type - 64];
        return NULL;
}

/**
 * sgl_msg_type_known() - whether @type exists in protocol version 1.
 */
bool sgl_msg_type_known(uint16_t type) {
        return type_info(type) != NULL;
}

/**
 * sgl_msg_type_is_request() - whether @type is a known client-to-server type
 * (1 ... 63); server-to-client types are 64 ... 127.
 */
bool sgl_msg_type_is_request(uint16_t type) {
        return type < 64 && type_info(type) != NULL;
}

/**
 * sgl_msg_type_name() - the spec's name of @type ("HELLO", ...), for logs;
 * "UNKNOWN" for a type that does not exist.
 */
const char *sgl_msg_type_name(uint16_t type) {
        const struct type_info *ti = type_info(type);
        return ti ? ti->name : "UNKNOWN";
}

/**
 * sgl_msg_fds() - how many descriptors a message of @type carries: exactly
 * this many, never more or fewer (0 for an unknown type).  No type carries
 * more than SGL_MSG_MAX_FDS, which is what a receive control buffer needs.
 */
size_t sgl_msg_fds(uint16_t type) {
        const struct type_info *ti = type_info(type);
        return ti ? ti->fds : 0;
}

/**
 * sgl_name_valid() - whether @s (@len bytes, no NUL needed) is a valid area
 * name: 1 ... SGL_NAME_MAX bytes of [A-Za-z0-9._-], not starting with '.'.
 * A NUL byte anywhere in the first @len bytes makes it invalid.
 */
bool sgl_name_valid(const char *s, size_t len) {
        if (!s || len == 0 || len > SGL_NAME_MAX || s[0] == '.')
                return false;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                      c == '-'))
                        return false;
        }
        return true;
}

/**
 * sgl_proto_negotiate() - the version a server answers a HELLO with: the
 * highest version in both [@min_version, @max_version] and the versions this
 * code speaks.
 *
 * Return: the version, or -EPROTONOSUPPORT if there is none.
 */
int sgl_proto_negotiate(uint16_t min_version, uint16_t max_version) {
        uint16_t hi = MIN(max_version, (uint16_t)SGL_PROTO_VERSION_MAX);
        uint16_t lo = MAX(min_version, (uint16_t)SGL_PROTO_VERSION_MIN);

        if (lo > hi)
                return -EPROTONOSUPPORT;
        return hi;
}

/**
 * sgl_msg_request_allowed() - whether a server accepts a request of @type
 * from a connection in @state whose HELLO said @role (ignored in
 * SGL_CONN_NEW).  A request that is not allowed is a protocol error.  The
 * caller makes the transitions (doc/protocol.md, "State machine").
 */
bool sgl_msg_request_allowed(enum sgl_conn_state state, uint32_t role,
                             uint16_t type) {
        switch (state) {
        case SGL_CONN_NEW:
                return type == SGL_MSG_HELLO;
        case SGL_CONN_READY:
                if (type == SGL_MSG_PING)
                        return role >= SGL_ROLE_READER && role <= SGL_ROLE_QUERY;
                switch (role) {
                case SGL_ROLE_READER:
                        return type == SGL_MSG_OPEN;
                case SGL_ROLE_WRITER:
                        return type == SGL_MSG_CLAIM;
                case SGL_ROLE_QUERY:
                        return type == SGL_MSG_LIST || type == SGL_MSG_STAT;
                }
                return false;
        case SGL_CONN_SUBSCRIBED:
                return role == SGL_ROLE_READER && type == SGL_MSG_PING;
        case SGL_CONN_LEASED:
                return role == SGL_ROLE_WRITER &&
                       (type == SGL_MSG_PUBLISH_CONTROL ||
                        type == SGL_MSG_RELEASE || type == SGL_MSG_PING);
        case SGL_CONN_PUBLISHING:
                return role == SGL_ROLE_WRITER &&
                       (type == SGL_MSG_PUBLISH_SEGMENT ||
                        type == SGL_MSG_RETIRE || type == SGL_MSG_RELEASE ||
                        type == SGL_MSG_PING);
        }
        return false;
}

/* ----------------------------------------------------------- field rules */

/* A uid or gid list: little-endian bytes (decoded messages) or host values
 * (sgl_msg_build_claim()). */
struct ids {
        const uint8_t *le;
        const uint32_t *host;
};

static uint32_t ids_get(struct ids ids, size_t i) {
        return ids.host ? ids.host[i] : sgl_get_le32(ids.le + 4 * i);
}

static bool ids_valid(struct ids ids, uint32_t n) {
        if (n > SGL_CLAIM_MAX_IDS)
                return false;
        if (n > 0 && !ids.le && !ids.host)
                return false;
        for (uint32_t i = 0; i < n; i++)
                if (ids_get(ids, i) == SGL_MSG_ID_INVALID)
                        return false;
        return true;
}

static bool event_valid(uint32_t event) {
        return event == SGL_MSG_EVENT_OPENED || event == SGL_MSG_EVENT_SEALED;
}

/* Every rule about field values that needs no connection state; true if
 * @m may go on the wire.  @uids/@gids are only used for CLAIM. */
static bool check_fields(const struct sgl_msg *m, struct ids uids,
                         struct ids gids) {
        const struct type_info *ti = type_info(m->type);

        if (!ti)
                return false;
        switch (ti->serial) {
        case SERIAL_NONZERO:
                if (m->serial == 0)
                        return false;
                break;
        case SERIAL_ZERO:
                if (m->serial != 0)
                        return false;
                break;
        }

        switch (m->type) {
        case SGL_MSG_HELLO:
                return m->hello.min_version >= 1 &&
                       m->hello.min_version <= m->hello.max_version &&
                       m->hello.role >= SGL_ROLE_READER &&
                       m->hello.role <= SGL_ROLE_QUERY;
        case SGL_MSG_OPEN:
                return (m->open.flags & ~(uint32_t)SGL_OPEN_ALL) == 0 &&
                       sgl_name_valid(m->open.name, m->open.name_len);
        case SGL_MSG_CLAIM:
                return (m->claim.flags & ~(uint32_t)SGL_CLAIM_ALL) == 0 &&
                       (m->claim.mode & ~SGL_MSG_MODE_MASK) == 0 &&
                       ids_valid(uids, m->claim.n_uids) &&
                       ids_valid(gids, m->claim.n_gids) &&
                       sgl_name_valid(m->claim.name, m->claim.name_len);
        case SGL_MSG_PUBLISH_SEGMENT:
                return m->publish_segment.seq != 0 &&
                       event_valid(m->publish_segment.event);
        case SGL_MSG_RETIRE:
                return m->retire.seq != 0;
        case SGL_MSG_STAT:
                return sgl_name_valid(m->stat.name, m->stat.name_len);
        case SGL_MSG_RELEASE:
                return (m->release.flags & ~(uint32_t)SGL_RELEASE_ALL) == 0;
        case SGL_MSG_WELCOME:
                if (m->welcome.version == 0)
                        return false;
                /* What version 1 means; later versions say it themselves. */
                if (m->welcome.version == 1)
                        return m->welcome.max_message == SGL_MSG_MAX_SIZE &&
                               m->welcome.max_name == SGL_NAME_MAX;
                return m->welcome.max_message >= SGL_MSG_MAX_SIZE &&
                       m->welcome.max_name >= 1;
        case SGL_MSG_ERROR:
                return m->error.error < 0 && m->error.error >= -4095;
        case SGL_MSG_AREA:
                return (m->area.flags & ~(uint32_t)SGL_AREA_ALL) == 0;
        case SGL_MSG_SEGMENT:
                return m->segment.seq != 0 && event_valid(m->segment.event);
        case SGL_MSG_RETIRED:
                return m->retired.seq != 0;
        case SGL_MSG_AREA_INFO:
                return (m->area_info.mode & ~SGL_MSG_MODE_MASK) == 0 &&
                       (m->area_info.flags & ~(uint32_t)SGL_INFO_ALL) == 0 &&
                       sgl_name_valid(m->area_info.name, m->area_info.name_len);
        case SGL_MSG_SEGMENT_INFO:
                /* seals: as the kernel reports them, unknown bits included */
                return m->segment_info.seq != 0 &&
                       event_valid(m->segment_info.event);
        case SGL_MSG_CLAIMED:
                return (m->claimed.flags & ~(uint32_t)SGL_CLAIMED_ALL) == 0 &&
                       m->claimed.next_seq != 0;
        default:
                /* no payload */
                return true;
        }
}

/* -------------------------------------------------------------- decoding */

/**
 * sgl_msg_parse() - decode and validate one received message.
 * @buf: the datagram (the caller's private copy)
 * @len: its size as recvmsg() returned it
 * @nfds: how many descriptors arrived with it
 * @ret: the decoded view; it points into @buf for names and id lists
 *
 * Checks everything doc/protocol.md asks that does not depend on the
 * connection's state: header (known type, zero flags and reserved field,
 * length equal to @len, serial rule), exact payload size, descriptor count,
 * and every field (flags, enums, names, counts, reserved fields).  Whether
 * the message is allowed now is the caller's business
 * (sgl_msg_request_allowed(), and the client's own expectations).
 *
 * Return: 0; -EBADMSG if the message is malformed (the receiver must then
 * treat it as a protocol error: close every descriptor that came with it
 * and the connection); -EINVAL if @ret is NULL or @buf NULL with @len > 0.
 * @ret is untouched on failure.
 */
int sgl_msg_parse(const void *buf, size_t len, size_t nfds,
                  struct sgl_msg *ret) {
        const uint8_t *b = buf, *p;
        const struct type_info *ti;
        struct sgl_msg m = { 0 };
        struct ids uids = { NULL, NULL }, gids = { NULL, NULL };
        size_t plen, rest;
        uint32_t name_len;

        if (!ret || (!buf && len > 0))
                return -EINVAL;
        if (len < SGL_MSG_HEADER_SIZE || len > SGL_MSG_MAX_SIZE)
                return -EBADMSG;

        m.type = sgl_get_le16(b);
        ti = type_info(m.type);
        if (!ti)
                return -EBADMSG;
        if (sgl_get_le16(b + 2) != 0 ||              /* flags */
            sgl_get_le32(b + 4) != len ||            /* length */
            sgl_get_le32(b + 12) != 0)               /* reserved */
                return -EBADMSG;
        m.serial = sgl_get_le32(b + 8);
        if (nfds != ti->fds)
                return -EBADMSG;

        p = b + SGL_MSG_HEADER_SIZE;
        plen = len - SGL_MSG_HEADER_SIZE;
        if (ti->variable ? plen < ti->fixed : plen != ti->fixed)
                return -EBADMSG;
        rest = plen - ti->fixed;  /* bytes after the fixed part */

        switch (m.type) {
        case SGL_MSG_HELLO:
                m.hello.min_version = sgl_get_le16(p);
                m.hello.max_version = sgl_get_le16(p + 2);
                m.hello.role = sgl_get_le32(p + 4);
                if (sgl_get_le32(p + 8) != 0)
                        return -EBADMSG;
                break;
        case SGL_MSG_OPEN:
                m.open.flags = sgl_get_le32(p);
                name_len = sgl_get_le32(p + 4);
                if (name_len != rest)
                        return -EBADMSG;
                m.open.name = (const char *)p + OPEN_SIZE;
                m.open.name_len = name_len;
                break;
        case SGL_MSG_CLAIM: {
                size_t ids_len;

                m.claim.flags = sgl_get_le32(p);
                m.claim.mode = sgl_get_le32(p + 4);
                m.claim.n_uids = sgl_get_le32(p + 8);
                m.claim.n_gids = sgl_get_le32(p + 12);
                name_len = sgl_get_le32(p + 16);
                /* Bound each count before any arithmetic on it. */
                if (m.claim.n_uids > SGL_CLAIM_MAX_IDS ||
                    m.claim.n_gids > SGL_CLAIM_MAX_IDS ||
                    name_len > SGL_NAME_MAX)
                        return -EBADMSG;
                ids_len = 4 * ((size_t)m.claim.n_uids + m.claim.n_gids);
                if (ids_len + name_len != rest)
                        return -EBADMSG;
                m.claim.uids = p + CLAIM_SIZE;
                m.claim.gids = m.claim.uids + 4 * (size_t)m.claim.n_uids;
                m.claim.name = (const char *)p + CLAIM_SIZE + ids_len;
                m.claim.name_len = name_len;
                uids.le = m.claim.uids;
                gids.le = m.claim.gids;
                break;
        }
        case SGL_MSG_PUBLISH_SEGMENT:
                m.publish_segment.seq = sgl_get_le64(p);
                m.publish_segment.event = sgl_get_le32(p + 8);
                if (sgl_get_le32(p + 12) != 0)
                        return -EBADMSG;
                break;
        case SGL_MSG_RETIRE:
                m.retire.seq = sgl_get_le64(p);
                break;
        case SGL_MSG_STAT:
                name_len = sgl_get_le32(p);
                if (name_len != rest)
                        return -EBADMSG;
                m.stat.name = (const char *)p + STAT_SIZE;
                m.stat.name_len = name_len;
                break;
        case SGL_MSG_RELEASE:
                m.release.flags = sgl_get_le32(p);
                break;
        case SGL_MSG_WELCOME:
                m.welcome.version = sgl_get_le16(p);
                if (sgl_get_le16(p + 2) != 0)
                        return -EBADMSG;
                m.welcome.max_message = sgl_get_le32(p + 4);
                m.welcome.max_name = sgl_get_le32(p + 8);
                if (sgl_get_le32(p + 12) != 0)
                        return -EBADMSG;
                break;
        case SGL_MSG_ERROR:
                m.error.error = (int32_t)sgl_get_le32(p);
                if (sgl_get_le32(p + 4) != 0)
                        return -EBADMSG;
                break;
        case SGL_MSG_AREA:
                memcpy(m.area.area_id, p, SGL_MSG_AREA_ID_LEN);
                m.area.flags = sgl_get_le32(p + 16);
                if (sgl_get_le32(p + 20) != 0)
                        return -EBADMSG;
                break;
        case SGL_MSG_SEGMENT:
                m.segment.seq = sgl_get_le64(p);
                m.segment.event = sgl_get_le32(p + 8);
                if (sgl_get_le32(p + 12) != 0)
                        return -EBADMSG;
                break;
        case SGL_MSG_RETIRED:
                m.retired.seq = sgl_get_le64(p);
                break;
        case SGL_MSG_AREA_INFO:
                m.area_info.owner_uid = sgl_get_le32(p);
                m.area_info.mode = sgl_get_le32(p + 4);
                m.area_info.flags = sgl_get_le32(p + 8);
                m.area_info.readers = sgl_get_le32(p + 12);
                m.area_info.segments = sgl_get_le64(p + 16);
                m.area_info.bytes_used = sgl_get_le64(p + 24);
                m.area_info.bytes_live = sgl_get_le64(p + 32);
                name_len = sgl_get_le32(p + 40);
                if (name_len != rest)
                        return -EBADMSG;
                m.area_info.name = (const char *)p + AREA_INFO_SIZE;
                m.area_info.name_len = name_len;
                break;
        case SGL_MSG_SEGMENT_INFO:
                m.segment_info.seq = sgl_get_le64(p);
                m.segment_info.size = sgl_get_le64(p + 8);
                m.segment_info.seals = sgl_get_le32(p + 16);
                m.segment_info.event = sgl_get_le32(p + 20);
                break;
        case SGL_MSG_CLAIMED:
                memcpy(m.claimed.area_id, p, SGL_MSG_AREA_ID_LEN);
                m.claimed.flags = sgl_get_le32(p + 16);
                if (sgl_get_le32(p + 20) != 0)
                        return -EBADMSG;
                m.claimed.next_seq = sgl_get_le64(p + 24);
                break;
        default:
                /* no payload: the size check above was all */
                break;
        }

        if (!check_fields(&m, uids, gids))
                return -EBADMSG;
        *ret = m;
        return 0;
}

/* -------------------------------------------------------------- encoding */

/* The payload size @m needs, or 0 if its counts are out of range (which
 * check_fields() also refuses). */
static size_t payload_size(const struct sgl_msg *m, const struct type_info *ti) {
        switch (m->type) {
        case SGL_MSG_OPEN:
                return ti->fixed + m->open.name_len;
        case SGL_MSG_CLAIM:
                return ti->fixed +
                       4 * ((size_t)m->claim.n_uids + m->claim.n_gids) +
                       m->claim.name_len;
        case SGL_MSG_STAT:
                return ti->fixed + m->stat.name_len;
        case SGL_MSG_AREA_INFO:
                return ti->fixed + m->area_info.name_len;
        default:
                return ti->fixed;
        }
}

static void put_ids(uint8_t *q, struct ids ids, uint32_t n) {
        if (ids.host) {
                for (uint32_t i = 0; i < n; i++)
                        sgl_put_le32(q + 4 * i, ids.host[i]);
        } else if (n > 0) {
                memmove(q, ids.le, 4 * (size_t)n);
        }
}

/* Encodes @m into @buf.  Names and LE id lists are moved with memmove(), so
 * @m may point into @buf (re-encoding a parsed message in place). */
static ssize_t build(void *buf, size_t size, const struct sgl_msg *m,
                     struct ids uids, struct ids gids) {
        const struct type_info *ti;
        uint8_t *b = buf, *p;
        size_t len;

        if (!m || (!buf && size > 0))
                return -EINVAL;
        if (!check_fields(m, uids, gids))
                return -EINVAL;
        ti = type_info(m->type);
        len = SGL_MSG_HEADER_SIZE + payload_size(m, ti);
        if (len > SGL_MSG_MAX_SIZE)   /* cannot happen with valid fields */
                return -EINVAL;
        if (size < len)
                return -ENOBUFS;

        memset(b, 0, SGL_MSG_HEADER_SIZE);
        sgl_put_le16(b, m->type);
        sgl_put_le32(b + 4, (uint32_t)len);
        sgl_put_le32(b + 8, m->serial);
        p = b + SGL_MSG_HEADER_SIZE;

        switch (m->type) {
        case SGL_MSG_HELLO:
                sgl_put_le16(p, m->hello.min_version);
                sgl_put_le16(p + 2, m->hello.max_version);
                sgl_put_le32(p + 4, m->hello.role);
                sgl_put_le32(p + 8, 0);
                break;
        case SGL_MSG_OPEN:
                memmove(p + OPEN_SIZE, m->open.name, m->open.name_len);
                sgl_put_le32(p, m->open.flags);
                sgl_put_le32(p + 4, (uint32_t)m->open.name_len);
                break;
        case SGL_MSG_CLAIM: {
                size_t ids_len = 4 * ((size_t)m->claim.n_uids + m->claim.n_gids);

                /* Variable parts first: a parsed message re-encoded in
                 * place has them at these very offsets, so they move onto
                 * themselves before the fixed fields are written. */
                memmove(p + CLAIM_SIZE + ids_len, m->claim.name,
                        m->claim.name_len);
                put_ids(p + CLAIM_SIZE + 4 * (size_t)m->claim.n_uids, gids,
                        m->claim.n_gids);
                put_ids(p + CLAIM_SIZE, uids, m->claim.n_uids);
                sgl_put_le32(p, m->claim.flags);
                sgl_put_le32(p + 4, m->claim.mode);
                sgl_put_le32(p + 8, m->claim.n_uids);
                sgl_put_le32(p + 12, m->claim.n_gids);
                sgl_put_le32(p + 16, (uint32_t)m->claim.name_len);
                break;
        }
        case SGL_MSG_PUBLISH_SEGMENT:
                sgl_put_le64(p, m->publish_segment.seq);
                sgl_put_le32(p + 8, m->publish_segment.event);
                sgl_put_le32(p + 12, 0);
                break;
        case SGL_MSG_RETIRE:
                sgl_put_le64(p, m->retire.seq);
                break;
        case SGL_MSG_STAT:
                memmove(p + STAT_SIZE, m->stat.name, m->stat.name_len);
                sgl_put_le32(p, (uint32_t)m->stat.name_len);
                break;
        case SGL_MSG_RELEASE:
                sgl_put_le32(p, m->release.flags);
                break;
        case SGL_MSG_WELCOME:
                sgl_put_le16(p, m->welcome.version);
                sgl_put_le16(p + 2, 0);
                sgl_put_le32(p + 4, m->welcome.max_message);
                sgl_put_le32(p + 8, m->welcome.max_name);
                sgl_put_le32(p + 12, 0);
                break;
        case SGL_MSG_ERROR:
                sgl_put_le32(p, (uint32_t)m->error.error);
                sgl_put_le32(p + 4, 0);
                break;
        case SGL_MSG_AREA:
                memmove(p, m->area.area_id, SGL_MSG_AREA_ID_LEN);
                sgl_put_le32(p + 16, m->area.flags);
                sgl_put_le32(p + 20, 0);
                break;
        case SGL_MSG_SEGMENT:
                sgl_put_le64(p, m->segment.seq);
                sgl_put_le32(p + 8, m->segment.event);
                sgl_put_le32(p + 12, 0);
                break;
        case SGL_MSG_RETIRED:
                sgl_put_le64(p, m->retired.seq);
                break;
        case SGL_MSG_AREA_INFO:
                memmove(p + AREA_INFO_SIZE, m->area_info.name,
                        m->area_info.name_len);
                sgl_put_le32(p, m->area_info.owner_uid);
                sgl_put_le32(p + 4, m->area_info.mode);
                sgl_put_le32(p + 8, m->area_info.flags);
                sgl_put_le32(p + 12, m->area_info.readers);
                sgl_put_le64(p + 16, m->area_info.segments);
                sgl_put_le64(p + 24, m->area_info.bytes_used);
                sgl_put_le64(p + 32, m->area_info.bytes_live);
                sgl_put_le32(p + 40, (uint32_t)m->area_info.name_len);
                break;
        case SGL_MSG_SEGMENT_INFO:
                sgl_put_le64(p, m->segment_info.seq);
                sgl_put_le64(p + 8, m->segment_info.size);
                sgl_put_le32(p + 16, m->segment_info.seals);
                sgl_put_le32(p + 20, m->segment_info.event);
                break;
        case SGL_MSG_CLAIMED:
                memmove(p, m->claimed.area_id, SGL_MSG_AREA_ID_LEN);
                sgl_put_le32(p + 16, m->claimed.flags);
                sgl_put_le32(p + 20, 0);
                sgl_put_le64(p + 24, m->claimed.next_seq);
                break;
        default:
                break;
        }
        return (ssize_t)len;
}

/**
 * sgl_msg_build() - encode a message given as a decoded view.
 * @buf: where to write it
 * @size: bytes available at @buf
 * @m: the message; for CLAIM, @m->claim.uids/gids are little-endian bytes
 *     as sgl_msg_parse() leaves them.  @m may point into @buf at the same
 *     offsets (re-encoding a parsed message in place).
 *
 * Return: the message length; -EINVAL if @m breaks a rule of the spec that
 * sgl_msg_parse() checks (unknown type, bad serial, flags, enum, name,
 * counts, ...); -ENOBUFS if @size is too small.  @buf is untouched on
 * failure.
 */
ssize_t sgl_msg_build(void *buf, size_t size, const struct sgl_msg *m) {
        struct ids uids = { NULL, NULL }, gids = { NULL, NULL };

        if (m && m->type == SGL_MSG_CLAIM) {
                uids.le = m->claim.uids;
                gids.le = m->claim.gids;
        }
        return build(buf, size, m, uids, gids);
}

/*
 * The typed builders: one per message type, same return values as
 * sgl_msg_build().  RETIRED and GONE are pushes only and have serial 0.
 */

ssize_t sgl_msg_build_hello(void *buf, size_t size, uint32_t serial,
                            uint16_t min_version, uint16_t max_version,
                            uint32_t role) {
        struct sgl_msg m = { .type = SGL_MSG_HELLO, .serial = serial };

        m.hello.min_version = min_version;
        m.hello.max_version = max_version;
        m.hello.role = role;
        return sgl_msg_build(buf, size, &m);
}

ssize_t sgl_msg_build_open(void *buf, size_t size, uint32_t serial,
                           uint32_t flags, const char *name, size_t name_len) {
        struct sgl_msg m = { .type = SGL_MSG_OPEN, .serial = serial };

        m.open.flags = flags;
        m.open.name = name;
        m.open.name_len = name_len;
        return sgl_msg_build(buf, size, &m);
}

ssize_t sgl_msg_build_claim(void *buf, size_t size, uint32_t serial,
                            uint32_t flags, uint32_t mode,
                            const uint32_t *uids, size_t n_uids,
                            const uint32_t *gids, size_t n_gids,
                            const char *name, size_t name_len) {
        struct sgl_msg m = { .type = SGL_MSG_CLAIM, .serial = serial };

        if (n_uids > SGL_CLAIM_MAX_IDS || n_gids > SGL_CLAIM_MAX_IDS)
                return -EINVAL;
        if ((n_uids > 0 && !uids) || (n_gids > 0 && !gids))
                return -EINVAL;
        m.claim.flags = flags;
        m.claim.mode = mode;
        m.claim.n_uids = (uint32_t)n_uids;
        m.claim.n_gids = (uint32_t)n_gids;
        m.claim.name = name;
        m.claim.name_len = name_len;
        return build(buf, size, &m, (struct ids) { .host = uids },
                     (struct ids) { .host = gids });
}

ssize_t sgl_msg_build_publish_control(void *buf, size_t size, uint32_t serial) {
        struct sgl_msg m = { .type = SGL_MSG_PUBLISH_CONTROL, .serial = serial };

        return sgl_msg_build(buf, size, &m);
}

ssize_t sgl_msg_build_publish_segment(void *buf, size_t size, uint32_t serial,
                                      uint64_t seq, uint32_t event) {
        struct sgl_msg m = { .type = SGL_MSG_PUBLISH_SEGMENT, .serial = serial };

        m.publish_segment.seq = seq;
        m.publish_segment.event = event;
        return sgl_msg_build(buf, size, &m);
}

ssize_t sgl_msg_build_retire(void *buf, size_t size, uint32_t serial,
                             uint64_t seq) {
        struct sgl_msg m = { .type = SGL_MSG_RETIRE, .serial = serial };

        m.retire.seq = seq;
        return sgl_msg_build(buf, size, &m);
}

ssize_t sgl_msg_build_list(void *buf, size_t size, uint32_t serial) {
        struct sgl_msg m = { .type = SGL_MSG_LIST, .serial = serial };

        return sgl_msg_build(buf, size, &m);
}

ssize_t sgl_msg_build_stat(void *buf, size_t size, uint32_t serial,
                           const char *name, size_t name_len) {
        struct sgl_msg m = { .type = SGL_MSG_STAT, .serial = serial };

        m.stat.name = name;
        m.stat.name_len = name_len;
        return sgl_msg_build(buf, size, &m);
}

ssize_t sgl_msg_build_release(void *buf, size_t size, uint32_t serial,
                              uint32_t flags) {
        struct sgl_msg m = { .type = SGL_MSG_RELEASE, .serial = serial };

        m.release.flags = flags;
        return sgl_msg_build(buf, size, &m);
}

ssize_t sgl_msg_build_ping(void *buf, size_t size, uint32_t serial) {
        struct sgl_msg m = { .type = SGL_MSG_PING, .serial = serial };

        return sgl_msg_build(buf, size, &m);
}

ssize_t sgl_msg_build_welcome(void *buf, size_t size, uint32_t serial,
                              uint16_t version, uint32_t max_message,
                              uint32_t max_name) {
        struct sgl_msg m = { .type = SGL_MSG_WELCOME, .serial = serial };

        m.welcome.version = version;
        m.welcome.max_message = max_message;
        m.welcome.max_name = max_name;
        return sgl_msg_build(buf, size, &m);
}

ssize_t sgl_msg_build_ok(void *buf, size_t size, uint32_t serial) {
        struct sgl_msg m = { .type = SGL_MSG_OK, .serial = serial };

        return sgl_msg_build(buf, size, &m);
}

ssize_t sgl_msg_build_error(void *buf, size_t size, uint32_t serial,
                            int32_t error) {
        struct sgl_msg m = { .type = SGL_MSG_ERROR, .serial = serial };

        m.error.error = error;
        return sgl_msg_build(buf, size, &m);
}

ssize_t sgl_msg_build_area(void *buf, size_t size, uint32_t serial,
                           const uint8_t area_id[SGL_MSG_AREA_ID_LEN],
                           uint32_t flags) {
        struct sgl_msg m = { .type = SGL_MSG_AREA, .serial = serial };

        if (!area_id)
                return -EINVAL;
        memcpy(m.area.area_id, area_id, SGL_MSG_AREA_ID_LEN);
        m.area.flags = flags;
        return sgl_msg_build(buf, size, &m);
}

ssize_t sgl_msg_build_segment(void *buf, size_t size, uint32_t serial,
                              uint64_t seq, uint32_t event) {
        struct sgl_msg m = { .type = SGL_MSG_SEGMENT, .serial = serial };

        m.segment.seq = seq;
        m.segment.event = event;
        return sgl_msg_build(buf, size, &m);
}

ssize_t sgl_msg_build_retired(void *buf, size_t size, uint64_t seq) {
        struct sgl_msg m = { .type = SGL_MSG_RETIRED };

        m.retired.seq = seq;
        return sgl_msg_build(buf, size, &m);
}

ssize_t sgl_msg_build_synced(void *buf, size_t size, uint32_t serial) {
        struct sgl_msg m = { .type = SGL_MSG_SYNCED, .serial = serial };

        return sgl_msg_build(buf, size, &m);
}

ssize_t sgl_msg_build_area_info(void *buf, size_t size, uint32_t serial,
                                uint32_t owner_uid, uint32_t mode,
                                uint32_t flags, uint32_t readers,
                                uint64_t segments, uint64_t bytes_used,
                                uint64_t bytes_live, const char *name,
                                size_t name_len) {
        struct sgl_msg m = { .type = SGL_MSG_AREA_INFO, .serial = serial };

        m.area_info.owner_uid = owner_uid;
        m.area_info.mode = mode;
        m.area_info.flags = flags;
        m.area_info.readers = readers;
        m.area_info.segments = segments;
        m.area_info.bytes_used = bytes_used;
        m.area_info.bytes_live = bytes_live;
        m.area_info.name = name;
        m.area_info.name_len = name_len;
        return sgl_msg_build(buf, size, &m);
}

ssize_t sgl_msg_build_segment_info(void *buf, size_t size, uint32_t serial,
                                   uint64_t seq, uint64_t seg_size,
                                   uint32_t seals, uint32_t event) {
        struct sgl_msg m = { .type = SGL_MSG_SEGMENT_INFO, .serial = serial };

        m.segment_info.seq = seq;
        m.segment_info.size = seg_size;
        m.segment_info.seals = seals;
        m.segment_info.event = event;
        return sgl_msg_build(buf, size, &m);
}

ssize_t sgl_msg_build_end(void *buf, size_t size, uint32_t serial) {
        struct sgl_msg m = { .type = SGL_MSG_END, .serial = serial };

        return sgl_msg_build(buf, size, &m);
}

ssize_t sgl_msg_build_claimed(void *buf, size_t size, uint32_t serial,
                              const uint8_t area_id[SGL_MSG_AREA_ID_LEN],
                              uint32_t flags, uint64_t next_seq) {
        struct sgl_msg m = { .type = SGL_MSG_CLAIMED, .serial = serial };

        if (!area_id)
                return -EINVAL;
        memcpy(m.claimed.area_id, area_id, SGL_MSG_AREA_ID_LEN);
        m.claimed.flags = flags;
        m.claimed.next_seq = next_seq;
        return sgl_msg_build(buf, size, &m);
}

ssize_t sgl_msg_build_gone(void *buf, size_t size) {
        struct sgl_msg m = { .type = SGL_MSG_GONE };

        return sgl_msg_build(buf, size, &m);
}
