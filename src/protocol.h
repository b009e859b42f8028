/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * protocol.h - the rendezvous wire protocol: constants, a decoded view of one
 * message, the decoder and the encoders.  doc/protocol.md is the spec; this
 * header follows it and names its sections.
 *
 * Owns: turning bytes into a validated struct sgl_msg and back.  Pure code:
 * no I/O, no syscalls, no allocation, no global state, so it can be fuzzed
 * and used on both ends of a connection.
 *
 * Invariants:
 *  - Every integer on the wire is little-endian and fixed-width; it is read
 *    and written byte by byte (sgl_get_le*()/sgl_put_le*()), never through a
 *    cast, so the code is right on any host and any alignment.
 *  - sgl_msg_parse() accepts exactly what the spec accepts without knowing
 *    the connection's state, and each accepted message has exactly one
 *    encoding: building a parsed message again yields the same bytes (the
 *    fuzz harness checks this).
 *  - A decoded message points into the caller's buffer (names, uid and gid
 *    lists); it is valid only as long as that buffer is.
 *  - The encoders refuse (-EINVAL) anything the decoder would reject, so a
 *    peer that uses them never commits a protocol error by encoding.
 */
#ifndef SGL_PROTOCOL_H
#define SGL_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sigillo.h"

/* ------------------------------------------------------------- limits */

#define SGL_PROTO_VERSION_MIN 1          /* versions this code speaks */
#define SGL_PROTO_VERSION_MAX 1
#define SGL_MSG_HEADER_SIZE 16
#define SGL_MSG_MAX_SIZE 4096            /* bytes, header included */
#define SGL_MSG_MAX_FDS 1                /* no type carries more */
#define SGL_NAME_MAX 255                 /* bytes of an area name */
#define SGL_CLAIM_MAX_IDS 64             /* uids, and gids, in a CLAIM */
#define SGL_MSG_AREA_ID_LEN 16
#define SGL_MSG_MODE_MASK 0444u          /* the meaningful bits of a mode */
#define SGL_MSG_ID_INVALID UINT32_MAX    /* (uid_t)-1: never in a CLAIM */
#define SGL_MSG_BYTES_UNKNOWN UINT64_MAX /* AREA_INFO.bytes_live */

/* ---------------------------------------------------------------- types */

enum sgl_msg_type {
        /* requests: client -> server */
        SGL_MSG_HELLO = 1,
        SGL_MSG_OPEN = 2,
        SGL_MSG_CLAIM = 3,
        SGL_MSG_PUBLISH_CONTROL = 4,     /* 1 fd */
        SGL_MSG_PUBLISH_SEGMENT = 5,     /* 1 fd */
        SGL_MSG_RETIRE = 6,
        SGL_MSG_LIST = 7,
        SGL_MSG_STAT = 8,
        SGL_MSG_RELEASE = 9,
        SGL_MSG_PING = 10,
        /* replies and pushes: server -> client */
        SGL_MSG_WELCOME = 64,
        SGL_MSG_OK = 65,
        SGL_MSG_ERROR = 66,
        SGL_MSG_AREA = 67,               /* 1 fd */
        SGL_MSG_SEGMENT = 68,            /* 1 fd */
        SGL_MSG_RETIRED = 69,
        SGL_MSG_SYNCED = 70,
        SGL_MSG_AREA_INFO = 71,
        SGL_MSG_SEGMENT_INFO = 72,
        SGL_MSG_END = 73,
        SGL_MSG_CLAIMED = 74,
        SGL_MSG_GONE = 75,
};

/* HELLO.role */
enum {
        SGL_ROLE_READER = 1,
        SGL_ROLE_WRITER = 2,
        SGL_ROLE_QUERY = 3,
};

/* OPEN.flags */
enum {
        SGL_OPEN_TRUSTED = 1u << 0,      /* also open (unsealed) segments */
        SGL_OPEN_SUBSCRIBE = 1u << 1,    /* pushes after SYNCED */
        SGL_OPEN_ALL = SGL_OPEN_TRUSTED | SGL_OPEN_SUBSCRIBE,
};

/* CLAIM.flags */
enum {
        SGL_CLAIM_PERSIST = 1u << 0,     /* the area outlives its writer */
        SGL_CLAIM_ALL = SGL_CLAIM_PERSIST,
};

/* CLAIMED.flags */
enum {
        SGL_CLAIMED_TAKEOVER = 1u << 0,  /* SEGMENT* then SYNCED follow */
        SGL_CLAIMED_ALL = SGL_CLAIMED_TAKEOVER,
};

/* RELEASE.flags */
enum {
        SGL_RELEASE_REMOVE = 1u << 0,
        SGL_RELEASE_ALL = SGL_RELEASE_REMOVE,
};

/* AREA.flags */
enum {
        SGL_AREA_WRITER_PRESENT = 1u << 0,
        SGL_AREA_ALL = SGL_AREA_WRITER_PRESENT,
};

/* AREA_INFO.flags */
enum {
        SGL_INFO_WRITER_PRESENT = 1u << 0,
        SGL_INFO_PERSIST = 1u << 1,
        SGL_INFO_ALL = SGL_INFO_WRITER_PRESENT | SGL_INFO_PERSIST,
};

/* PUBLISH_SEGMENT.event, SEGMENT.event and SEGMENT_INFO.event take the
 * values of the public enum: only these two are valid on the wire. */
#define SGL_MSG_EVENT_OPENED SGL_SEGMENT_OPENED   /* 1 */
#define SGL_MSG_EVENT_SEALED SGL_SEGMENT_SEALED   /* 2 */

/* ------------------------------------------------------- decoded message */

/*
 * struct sgl_msg - a validated view of one message.  @type selects the
 * union member; types without payload (PUBLISH_CONTROL, LIST, PING, OK,
 * SYNCED, END, GONE) use none.  Names are not NUL-terminated.  The uid and
 * gid lists stay little-endian bytes in the buffer: read them with
 * sgl_msg_claim_uid()/sgl_msg_claim_gid().
 */
struct sgl_msg {
        uint16_t type;
        uint32_t serial;
        union {
                struct {
                        uint16_t min_version;
                        uint16_t max_version;
                        uint32_t role;
                } hello;
                struct {
                        uint32_t flags;
                        const char *name;
                        size_t name_len;
                } open;
                struct {
                        uint32_t flags;
                        uint32_t mode;
                        uint32_t n_uids;
                        uint32_t n_gids;
                        const uint8_t *uids;  /* n_uids LE u32 */
                        const uint8_t *gids;  /* n_gids LE u32 */
                        const char *name;
                        size_t name_len;
                } claim;
                struct {
                        uint64_t seq;
                        uint32_t event;
                } publish_segment;
                struct {
                        uint64_t seq;
                } retire;
                struct {
                        const char *name;
                        size_t name_len;
                } stat;
                struct {
                        uint32_t flags;
                } release;
                struct {
                        uint16_t version;
                        uint32_t max_message;
                        uint32_t max_name;
                } welcome;
                struct {
                        int32_t error;        /* -4095 ... -1 */
                } error;
                struct {
                        uint8_t area_id[SGL_MSG_AREA_ID_LEN];
                        uint32_t flags;
                } area;
                struct {
                        uint64_t seq;
                        uint32_t event;
                } segment;
                struct {
                        uint64_t seq;
                } retired;
                struct {
                        uint32_t owner_uid;
                        uint32_t mode;
                        uint32_t flags;
                        uint32_t readers;
                        uint64_t segments;
                        uint64_t bytes_used;
                        uint64_t bytes_live;
                        const char *name;
                        size_t name_len;
                } area_info;
                struct {
                        uint64_t seq;
                        uint64_t size;
                        uint32_t seals;
                        uint32_t event;
                } segment_info;
                struct {
                        uint8_t area_id[SGL_MSG_AREA_ID_LEN];
                        uint32_t flags;
                        uint64_t next_seq;
                } claimed;
        };
};

/* ---------------------------------------------------- little-endian I/O */

static inline uint16_t sgl_get_le16(const void *p) {
        const uint8_t *b = p;
        return (uint16_t)(b[0] | (uint16_t)b[1] << 8);
}

static inline uint32_t sgl_get_le32(const void *p) {
        const uint8_t *b = p;
        return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
               (uint32_t)b[3] << 24;
}

static inline uint64_t sgl_get_le64(const void *p) {
        const uint8_t *b = p;
        return (uint64_t)sgl_get_le32(b) | (uint64_t)sgl_get_le32(b + 4) << 32;
}

static inline void sgl_put_le16(void *p, uint16_t v) {
        uint8_t *b = p;
        b[0] = (uint8_t)v;
        b[1] = (uint8_t)(v >> 8);
}

static inline void sgl_put_le32(void *p, uint32_t v) {
        uint8_t *b = p;
        b[0] = (uint8_t)v;
        b[1] = (uint8_t)(v >> 8);
        b[2] = (uint8_t)(v >> 16);
        b[3] = (uint8_t)(v >> 24);
}

static inline void sgl_put_le64(void *p, uint64_t v) {
        uint8_t *b = p;
        sgl_put_le32(b, (uint32_t)v);
        sgl_put_le32(b + 4, (uint32_t)(v >> 32));
}

/* ------------------------------------------------------------- decoding */

int sgl_msg_parse(const void *buf, size_t len, size_t nfds,
                  struct sgl_msg *ret);

/* The @i-th uid/gid of a parsed CLAIM (@i < n_uids, resp. n_gids). */
static inline uint32_t sgl_msg_claim_uid(const struct sgl_msg *m, size_t i) {
        return sgl_get_le32(m->claim.uids + 4 * i);
}

static inline uint32_t sgl_msg_claim_gid(const struct sgl_msg *m, size_t i) {
        return sgl_get_le32(m->claim.gids + 4 * i);
}

size_t sgl_msg_fds(uint16_t type);
bool sgl_msg_type_known(uint16_t type);
bool sgl_msg_type_is_request(uint16_t type);
bool sgl_name_valid(const char *s, size_t len);
const char *sgl_msg_type_name(uint16_t type);

/* ------------------------------------------------ connection state machine */

/* Server-side state of a connection (doc/protocol.md, "State machine"). */
enum sgl_conn_state {
        SGL_CONN_NEW = 0,        /* until HELLO */
        SGL_CONN_READY = 1,      /* after WELCOME */
        SGL_CONN_SUBSCRIBED = 2, /* reader after OPEN with SUBSCRIBE */
        SGL_CONN_LEASED = 3,     /* writer after CLAIMED */
        SGL_CONN_PUBLISHING = 4, /* writer after PUBLISH_CONTROL */
};

bool sgl_msg_request_allowed(enum sgl_conn_state state, uint32_t role,
                             uint16_t type);
int sgl_proto_negotiate(uint16_t min_version, uint16_t max_version);

/* ------------------------------------------------------------- encoding */

ssize_t sgl_msg_build(void *buf, size_t size, const struct sgl_msg *m);

ssize_t sgl_msg_build_hello(void *buf, size_t size, uint32_t serial,
                            uint16_t min_version, uint16_t max_version,
                            uint32_t role);
ssize_t sgl_msg_build_open(void *buf, size_t size, uint32_t serial,
                           uint32_t flags, const char *name, size_t name_len);
ssize_t sgl_msg_build_claim(void *buf, size_t size, uint32_t serial,
                            uint32_t flags, uint32_t mode,
                            const uint32_t *uids, size_t n_uids,
                            const uint32_t *gids, size_t n_gids,
                            const char *name, size_t name_len);
ssize_t sgl_msg_build_publish_control(void *buf, size_t size, uint32_t serial);
ssize_t sgl_msg_build_publish_segment(void *buf, size_t size, uint32_t serial,
                                      uint64_t seq, uint32_t event);
ssize_t sgl_msg_build_retire(void *buf, size_t size, uint32_t serial,
                             uint64_t seq);
ssize_t sgl_msg_build_list(void *buf, size_t size, uint32_t serial);
ssize_t sgl_msg_build_stat(void *buf, size_t size, uint32_t serial,
                           const char *name, size_t name_len);
ssize_t sgl_msg_build_release(void *buf, size_t size, uint32_t serial,
                              uint32_t flags);
ssize_t sgl_msg_build_ping(void *buf, size_t size, uint32_t serial);

ssize_t sgl_msg_build_welcome(void *buf, size_t size, uint32_t serial,
                              uint16_t version, uint32_t max_message,
                              uint32_t max_name);
ssize_t sgl_msg_build_ok(void *buf, size_t size, uint32_t serial);
ssize_t sgl_msg_build_error(void *buf, size_t size, uint32_t serial,
                            int32_t error);
ssize_t sgl_msg_build_area(void *buf, size_t size, uint32_t serial,
                           const uint8_t area_id[SGL_MSG_AREA_ID_LEN],
                           uint32_t flags);
ssize_t sgl_msg_build_segment(void *buf, size_t size, uint32_t serial,
                              uint64_t seq, uint32_t event);
ssize_t sgl_msg_build_retired(void *buf, size_t size, uint64_t seq);
ssize_t sgl_msg_build_synced(void *buf, size_t size, uint32_t serial);
ssize_t sgl_msg_build_area_info(void *buf, size_t size, uint32_t serial,
                                uint32_t owner_uid, uint32_t mode,
                                uint32_t flags, uint32_t readers,
                                uint64_t segments, uint64_t bytes_used,
                                uint64_t bytes_live, const char *name,
                                size_t name_len);
ssize_t sgl_msg_build_segment_info(void *buf, size_t size, uint32_t serial,
                                   uint64_t seq, uint64_t seg_size,
                                   uint32_t seals, uint32_t event);
ssize_t sgl_msg_build_end(void *buf, size_t size, uint32_t serial);
ssize_t sgl_msg_build_claimed(void *buf, size_t size, uint32_t serial,
                              const uint8_t area_id[SGL_MSG_AREA_ID_LEN],
                              uint32_t flags, uint64_t next_seq);
ssize_t sgl_msg_build_gone(void *buf, size_t size);

#endif
