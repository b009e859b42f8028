/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-protocol.c - src/protocol.c against doc/protocol.md: every message
 * type round-trips field by field; the examples of the spec decode to what
 * the spec says; every rejection rule has its own test; the builders refuse
 * what the decoder would refuse; random mutations of valid messages either
 * fail to parse or re-encode to the same bytes.
 *
 * Invariants: messages to reject are made by patching valid ones with this
 * file's own little-endian writers (w16/w32/w64) or built by raw(), never
 * with the codec's helpers, so a shared bug cannot hide itself.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

#define BUFSZ (SGL_MSG_MAX_SIZE + 64)

/* ------------------------------------------------------------ helpers */

static void w16(uint8_t *p, uint16_t v) {
        p[0] = v & 0xff;
        p[1] = v >> 8;
}

static void w32(uint8_t *p, uint32_t v) {
        for (int i = 0; i < 4; i++)
                p[i] = (v >> (8 * i)) & 0xff;
}

static void w64(uint8_t *p, uint64_t v) {
        for (int i = 0; i < 8; i++)
                p[i] = (v >> (8 * i)) & 0xff;
}

/* A message with an arbitrary header and payload; returns its size. */
static size_t raw(uint8_t *b, uint16_t type, uint32_t serial,
                  const void *payload, size_t plen) {
        memset(b, 0, 16);
        w16(b, type);
        w32(b + 4, (uint32_t)(16 + plen));
        w32(b + 8, serial);
        if (plen)
                memcpy(b + 16, payload, plen);
        return 16 + plen;
}

/* Asserts that @b does not parse and that the output was left alone. */
static void expect_bad_n(const uint8_t *b, size_t len, size_t nfds, int line) {
        struct sgl_msg m, before;
        int r;

        memset(&m, 0xa5, sizeof(m));
        before = m;
        r = sgl_msg_parse(b, len, nfds, &m);
        if (r != -EBADMSG)
                fail_msg("line %d: parse of type %u len %zu nfds %zu gave %d, "
                         "expected -EBADMSG", line,
                         len >= 2 ? (unsigned)(b[0] | b[1] << 8) : 0u,
                         len, nfds, r);
        assert_memory_equal(&m, &before, sizeof(m));
}
#define expect_bad(b, len, nfds) expect_bad_n(b, len, nfds, __LINE__)

static void parse_ok_n(const uint8_t *b, size_t len, size_t nfds,
                       struct sgl_msg *m, int line) {
        int r = sgl_msg_parse(b, len, nfds, m);
        if (r != 0)
                fail_msg("line %d: parse of type %u len %zu gave %d", line,
                         (unsigned)(b[0] | b[1] << 8), len, r);
}
#define parse_ok(b, len, nfds, m) parse_ok_n(b, len, nfds, m, __LINE__)

/* Builds @m again with the generic builder and compares with @b. */
static void assert_rebuilds(const struct sgl_msg *m, const uint8_t *b,
                            size_t len) {
        uint8_t out[BUFSZ];
        ssize_t n = sgl_msg_build(out, sizeof(out), m);

        assert_int_equal(n, (ssize_t)len);
        assert_memory_equal(out, b, len);
}

/* --------------------------------------------------- one valid per type */

static const uint8_t AREA_ID[16] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55,
                                     0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb,
                                     0xcc, 0xdd, 0xee, 0xff };
static const uint32_t UIDS[] = { 1000, 0, 4294967294u };
static const uint32_t GIDS[] = { 100 };

struct sample {
        uint16_t type;
        size_t len;
        uint8_t b[BUFSZ];
};

static struct sample samples[32];
static size_t n_samples;

static void add_sample(uint16_t type, ssize_t n, const uint8_t *b) {
        assert_true(n >= 16);
        assert_true(n_samples < sizeof(samples) / sizeof(samples[0]));
        samples[n_samples].type = type;
        samples[n_samples].len = (size_t)n;
        memcpy(samples[n_samples].b, b, (size_t)n);
        n_samples++;
}

static int setup_samples(void **state) {
        uint8_t b[BUFSZ];

        n_samples = 0;
#define ADD(type, call) add_sample(type, call, b)
        ADD(SGL_MSG_HELLO, sgl_msg_build_hello(b, sizeof(b), 1, 1, 3, SGL_ROLE_WRITER));
        ADD(SGL_MSG_OPEN, sgl_msg_build_open(b, sizeof(b), 2, SGL_OPEN_SUBSCRIBE, "demo", 4));
        ADD(SGL_MSG_CLAIM, sgl_msg_build_claim(b, sizeof(b), 3, SGL_CLAIM_PERSIST, 0440,
                                               UIDS, 3, GIDS, 1, "area.x", 6));
        ADD(SGL_MSG_PUBLISH_CONTROL, sgl_msg_build_publish_control(b, sizeof(b), 4));
        ADD(SGL_MSG_PUBLISH_SEGMENT, sgl_msg_build_publish_segment(b, sizeof(b), 5, 7,
                                                                   SGL_MSG_EVENT_SEALED));
        ADD(SGL_MSG_RETIRE, sgl_msg_build_retire(b, sizeof(b), 6, 2));
        ADD(SGL_MSG_LIST, sgl_msg_build_list(b, sizeof(b), 7));
        ADD(SGL_MSG_STAT, sgl_msg_build_stat(b, sizeof(b), 8, "s_t-at", 6));
        ADD(SGL_MSG_RELEASE, sgl_msg_build_release(b, sizeof(b), 9, SGL_RELEASE_REMOVE));
        ADD(SGL_MSG_PING, sgl_msg_build_ping(b, sizeof(b), 10));
        ADD(SGL_MSG_WELCOME, sgl_msg_build_welcome(b, sizeof(b), 1, 1, 4096, 255));
        ADD(SGL_MSG_OK, sgl_msg_build_ok(b, sizeof(b), 11));
        ADD(SGL_MSG_ERROR, sgl_msg_build_error(b, sizeof(b), 12, -EBUSY));
        ADD(SGL_MSG_AREA, sgl_msg_build_area(b, sizeof(b), 13, AREA_ID,
                                             SGL_AREA_WRITER_PRESENT));
        ADD(SGL_MSG_SEGMENT, sgl_msg_build_segment(b, sizeof(b), 0, 9,
                                                   SGL_MSG_EVENT_OPENED));
        ADD(SGL_MSG_RETIRED, sgl_msg_build_retired(b, sizeof(b), 3));
        ADD(SGL_MSG_SYNCED, sgl_msg_build_synced(b, sizeof(b), 14));
        ADD(SGL_MSG_AREA_INFO, sgl_msg_build_area_info(b, sizeof(b), 15, 1000, 0404,
                                                       SGL_INFO_ALL, 3, 12, 1 << 20,
                                                       SGL_MSG_BYTES_UNKNOWN, "info", 4));
        ADD(SGL_MSG_SEGMENT_INFO, sgl_msg_build_segment_info(b, sizeof(b), 16, 4, 65536,
                                                             0x1f, SGL_MSG_EVENT_SEALED));
        ADD(SGL_MSG_END, sgl_msg_build_end(b, sizeof(b), 17));
        ADD(SGL_MSG_CLAIMED, sgl_msg_build_claimed(b, sizeof(b), 18, AREA_ID,
                                                   SGL_CLAIMED_TAKEOVER, 42));
        ADD(SGL_MSG_GONE, sgl_msg_build_gone(b, sizeof(b)));
#undef ADD
        return 0;
}

static const struct sample *sample_of(uint16_t type) {
        for (size_t i = 0; i < n_samples; i++)
                if (samples[i].type == type)
                        return &samples[i];
        fail_msg("no sample of type %u", type);
        return NULL;
}

/* A copy of the sample of @type to patch. */
static size_t copy_sample(uint16_t type, uint8_t *b) {
        const struct sample *s = sample_of(type);
        memcpy(b, s->b, s->len);
        return s->len;
}

static void test_samples_parse(void **state) {
        struct sgl_msg m;

        /* one per type of the spec, every one valid and re-encodable */
        assert_int_equal(n_samples, 22);
        for (size_t i = 0; i < n_samples; i++) {
                parse_ok(samples[i].b, samples[i].len,
                         sgl_msg_fds(samples[i].type), &m);
                assert_int_equal(m.type, samples[i].type);
                assert_rebuilds(&m, samples[i].b, samples[i].len);
        }
}

/* ------------------------------------------------------- round trips */

static void test_roundtrip_hello(void **state) {
        uint8_t b[BUFSZ];
        struct sgl_msg m;
        ssize_t n = sgl_msg_build_hello(b, sizeof(b), 0xdeadbeef, 1, 65535,
                                        SGL_ROLE_QUERY);

        assert_int_equal(n, 28);
        parse_ok(b, n, 0, &m);
        assert_int_equal(m.type, SGL_MSG_HELLO);
        assert_int_equal(m.serial, 0xdeadbeef);
        assert_int_equal(m.hello.min_version, 1);
        assert_int_equal(m.hello.max_version, 65535);
        assert_int_equal(m.hello.role, SGL_ROLE_QUERY);
        assert_rebuilds(&m, b, n);
}

static void test_roundtrip_open(void **state) {
        char name[SGL_NAME_MAX];
        uint8_t b[BUFSZ];
        struct sgl_msg m;
        ssize_t n;

        memset(name, 'z', sizeof(name));
        n = sgl_msg_build_open(b, sizeof(b), 5, SGL_OPEN_ALL, name, sizeof(name));
        assert_int_equal(n, 24 + 255);
        parse_ok(b, n, 0, &m);
        assert_int_equal(m.type, SGL_MSG_OPEN);
        assert_int_equal(m.serial, 5);
        assert_int_equal(m.open.flags, SGL_OPEN_TRUSTED | SGL_OPEN_SUBSCRIBE);
        assert_int_equal(m.open.name_len, 255);
        assert_ptr_equal(m.open.name, (const char *)b + 24);
        assert_memory_equal(m.open.name, name, 255);
        assert_rebuilds(&m, b, n);

        n = sgl_msg_build_open(b, sizeof(b), 6, 0, "a", 1);
        assert_int_equal(n, 25);
        parse_ok(b, n, 0, &m);
        assert_int_equal(m.open.flags, 0);
        assert_int_equal(m.open.name_len, 1);
        assert_int_equal(m.open.name[0], 'a');
}

static void test_roundtrip_claim(void **state) {
        uint32_t uids[SGL_CLAIM_MAX_IDS], gids[SGL_CLAIM_MAX_IDS];
        char name[SGL_NAME_MAX];
        uint8_t b[BUFSZ];
        struct sgl_msg m;
        ssize_t n;

        for (unsigned i = 0; i < SGL_CLAIM_MAX_IDS; i++) {
                uids[i] = 1000 + i;
                gids[i] = 0x80000000u + i;
        }
        memset(name, '-', sizeof(name));
        name[0] = 'A';

        /* the largest CLAIM there is */
        n = sgl_msg_build_claim(b, sizeof(b), 77, SGL_CLAIM_PERSIST, 0444,
                                uids, 64, gids, 64, name, sizeof(name));
        assert_int_equal(n, 36 + 4 * 128 + 255);
        parse_ok(b, n, 0, &m);
        assert_int_equal(m.type, SGL_MSG_CLAIM);
        assert_int_equal(m.serial, 77);
        assert_int_equal(m.claim.flags, SGL_CLAIM_PERSIST);
        assert_int_equal(m.claim.mode, 0444);
        assert_int_equal(m.claim.n_uids, 64);
        assert_int_equal(m.claim.n_gids, 64);
        for (unsigned i = 0; i < 64; i++) {
                assert_int_equal(sgl_msg_claim_uid(&m, i), uids[i]);
                assert_int_equal(sgl_msg_claim_gid(&m, i), gids[i]);
        }
        assert_int_equal(m.claim.name_len, 255);
        assert_memory_equal(m.claim.name, name, 255);
        assert_rebuilds(&m, b, n);

        /* no lists at all */
        n = sgl_msg_build_claim(b, sizeof(b), 1, 0, 0, NULL, 0, NULL, 0, "n", 1);
        assert_int_equal(n, 37);
        parse_ok(b, n, 0, &m);
        assert_int_equal(m.claim.flags, 0);
        assert_int_equal(m.claim.mode, 0);
        assert_int_equal(m.claim.n_uids, 0);
        assert_int_equal(m.claim.n_gids, 0);
        assert_int_equal(m.claim.name_len, 1);
        assert_int_equal(m.claim.name[0], 'n');
        assert_rebuilds(&m, b, n);

        /* only gids: they start right after the (empty) uid list */
        n = sgl_msg_build_claim(b, sizeof(b), 2, 0, 0040, NULL, 0, GIDS, 1, "g", 1);
        parse_ok(b, n, 0, &m);
        assert_int_equal(m.claim.n_gids, 1);
        assert_ptr_equal(m.claim.gids, b + 36);
        assert_int_equal(sgl_msg_claim_gid(&m, 0), 100);
        assert_rebuilds(&m, b, n);
}

static void test_roundtrip_publish_control(void **state) {
        uint8_t b[BUFSZ];
        struct sgl_msg m;
        ssize_t n = sgl_msg_build_publish_control(b, sizeof(b), 3);

        assert_int_equal(n, 16);
        parse_ok(b, n, 1, &m);
        assert_int_equal(m.type, SGL_MSG_PUBLISH_CONTROL);
        assert_int_equal(m.serial, 3);
        assert_rebuilds(&m, b, n);
}

static void test_roundtrip_publish_segment(void **state) {
        uint8_t b[BUFSZ];
        struct sgl_msg m;
        ssize_t n = sgl_msg_build_publish_segment(b, sizeof(b), 4,
                                                  0x0102030405060708ULL,
                                                  SGL_MSG_EVENT_OPENED);

        assert_int_equal(n, 32);
        parse_ok(b, n, 1, &m);
        assert_int_equal(m.type, SGL_MSG_PUBLISH_SEGMENT);
        assert_int_equal(m.serial, 4);
        assert_int_equal(m.publish_segment.seq, 0x0102030405060708ULL);
        assert_int_equal(m.publish_segment.event, SGL_MSG_EVENT_OPENED);
        assert_rebuilds(&m, b, n);

        n = sgl_msg_build_publish_segment(b, sizeof(b), 4, UINT64_MAX,
                                          SGL_MSG_EVENT_SEALED);
        parse_ok(b, n, 1, &m);
        assert_true(m.publish_segment.seq == UINT64_MAX);
        assert_int_equal(m.publish_segment.event, SGL_MSG_EVENT_SEALED);
}

static void test_roundtrip_retire(void **state) {
        uint8_t b[BUFSZ];
        struct sgl_msg m;
        ssize_t n = sgl_msg_build_retire(b, sizeof(b), 9, 1ULL << 63);

        assert_int_equal(n, 24);
        parse_ok(b, n, 0, &m);
        assert_int_equal(m.type, SGL_MSG_RETIRE);
        assert_int_equal(m.serial, 9);
        assert_true(m.retire.seq == 1ULL << 63);
        assert_rebuilds(&m, b, n);
}

static void test_roundtrip_list(void **state) {
        uint8_t b[BUFSZ];
        struct sgl_msg m;
        ssize_t n = sgl_msg_build_list(b, sizeof(b), UINT32_MAX);

        assert_int_equal(n, 16);
        parse_ok(b, n, 0, &m);
        assert_int_equal(m.type, SGL_MSG_LIST);
        assert_int_equal(m.serial, UINT32_MAX);
        assert_rebuilds(&m, b, n);
}

static void test_roundtrip_stat(void **state) {
        uint8_t b[BUFSZ];
        struct sgl_msg m;
        ssize_t n = sgl_msg_build_stat(b, sizeof(b), 8, "Area_9", 6);

        assert_int_equal(n, 26);
        parse_ok(b, n, 0, &m);
        assert_int_equal(m.type, SGL_MSG_STAT);
        assert_int_equal(m.serial, 8);
        assert_int_equal(m.stat.name_len, 6);
        assert_ptr_equal(m.stat.name, (const char *)b + 20);
        assert_memory_equal(m.stat.name, "Area_9", 6);
        assert_rebuilds(&m, b, n);
}

static void test_roundtrip_release(void **state) {
        uint8_t b[BUFSZ];
        struct sgl_msg m;
        ssize_t n;

        for (uint32_t f = 0; f <= SGL_RELEASE_ALL; f++) {
                n = sgl_msg_build_release(b, sizeof(b), 10, f);
                assert_int_equal(n, 20);
                parse_ok(b, n, 0, &m);
                assert_int_equal(m.type, SGL_MSG_RELEASE);
                assert_int_equal(m.serial, 10);
                assert_int_equal(m.release.flags, f);
                assert_rebuilds(&m, b, n);
        }
}

static void test_roundtrip_ping(void **state) {
        uint8_t b[BUFSZ];
        struct sgl_msg m;
        ssize_t n = sgl_msg_build_ping(b, sizeof(b), 1);

        assert_int_equal(n, 16);
        parse_ok(b, n, 0, &m);
        assert_int_equal(m.type, SGL_MSG_PING);
        assert_int_equal(m.serial, 1);
        assert_rebuilds(&m, b, n);
}

static void test_roundtrip_welcome(void **state) {
        uint8_t b[BUFSZ];
        struct sgl_msg m;
        ssize_t n = sgl_msg_build_welcome(b, sizeof(b), 1, 1, 4096, 255);

        assert_int_equal(n, 32);
        parse_ok(b, n, 0, &m);
        assert_int_equal(m.type, SGL_MSG_WELCOME);
        assert_int_equal(m.serial, 1);
        assert_int_equal(m.welcome.version, 1);
        assert_int_equal(m.welcome.max_message, 4096);
        assert_int_equal(m.welcome.max_name, 255);
        assert_rebuilds(&m, b, n);

        /* a later version may raise the limits */
        n = sgl_msg_build_welcome(b, sizeof(b), 1, 2, 65536, 1);
        parse_ok(b, n, 0, &m);
        assert_int_equal(m.welcome.version, 2);
        assert_int_equal(m.welcome.max_message, 65536);
        assert_int_equal(m.welcome.max_name, 1);
        assert_rebuilds(&m, b, n);
}

static void test_roundtrip_ok(void **state) {
        uint8_t b[BUFSZ];
        struct sgl_msg m;
        ssize_t n = sgl_msg_build_ok(b, sizeof(b), 65);

        assert_int_equal(n, 16);
        parse_ok(b, n, 0, &m);
        assert_int_equal(m.type, SGL_MSG_OK);
        assert_int_equal(m.serial, 65);
        assert_rebuilds(&m, b, n);
}

static void test_roundtrip_error(void **state) {
        static const int32_t errs[] = { -1, -EBUSY, -EPROTONOSUPPORT, -4095 };
        uint8_t b[BUFSZ];
        struct sgl_msg m;

        for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
                for (uint32_t serial = 0; serial < 2; serial++) {
                        ssize_t n = sgl_msg_build_error(b, sizeof(b), serial, errs[i]);
                        assert_int_equal(n, 24);
                        parse_ok(b, n, 0, &m);
                        assert_int_equal(m.type, SGL_MSG_ERROR);
                        assert_int_equal(m.serial, serial);
                        assert_int_equal(m.error.error, errs[i]);
                        assert_rebuilds(&m, b, n);
                }
        }
}

static void test_roundtrip_area(void **state) {
        uint8_t b[BUFSZ];
        struct sgl_msg m;

        for (uint32_t f = 0; f <= SGL_AREA_ALL; f++) {
                ssize_t n = sgl_msg_build_area(b, sizeof(b), f, AREA_ID, f);
                assert_int_equal(n, 40);
                parse_ok(b, n, 1, &m);
                assert_int_equal(m.type, SGL_MSG_AREA);
                assert_int_equal(m.serial, f);   /* reply, and push (0) */
                assert_memory_equal(m.area.area_id, AREA_ID, 16);
                assert_int_equal(m.area.flags, f);
                assert_rebuilds(&m, b, n);
        }
}

static void test_roundtrip_segment(void **state) {
        uint8_t b[BUFSZ];
        struct sgl_msg m;

        for (uint32_t ev = 1; ev <= 2; ev++) {
                ssize_t n = sgl_msg_build_segment(b, sizeof(b), ev - 1, 100 + ev, ev);
                assert_int_equal(n, 32);
                parse_ok(b, n, 1, &m);
                assert_int_equal(m.type, SGL_MSG_SEGMENT);
                assert_int_equal(m.serial, ev - 1);
                assert_int_equal(m.segment.seq, 100 + ev);
                assert_int_equal(m.segment.event, ev);
                assert_rebuilds(&m, b, n);
        }
}

static void test_roundtrip_retired(void **state) {
        uint8_t b[BUFSZ];
        struct sgl_msg m;
        ssize_t n = sgl_msg_build_retired(b, sizeof(b), 12345);

        assert_int_equal(n, 24);
        parse_ok(b, n, 0, &m);
        assert_int_equal(m.type, SGL_MSG_RETIRED);
        assert_int_equal(m.serial, 0);
        assert_int_equal(m.retired.seq, 12345);
        assert_rebuilds(&m, b, n);
}

static void test_roundtrip_synced(void **state) {
        uint8_t b[BUFSZ];
        struct sgl_msg m;
        ssize_t n = sgl_msg_build_synced(b, sizeof(b), 2);

        assert_int_equal(n, 16);
        parse_ok(b, n, 0, &m);
        assert_int_equal(m.type, SGL_MSG_SYNCED);
        assert_int_equal(m.serial, 2);
        assert_rebuilds(&m, b, n);
}

static void test_roundtrip_area_info(void **state) {
        uint8_t b[BUFSZ];
        struct sgl_msg m;
        ssize_t n = sgl_msg_build_area_info(b, sizeof(b), 3, 4294967294u, 0444,
                                            SGL_INFO_PERSIST, 77,
                                            0x1111111122222222ULL,
                                            0x3333333344444444ULL,
                                            0x5555555566666666ULL, "x.y", 3);

        assert_int_equal(n, 63);
        parse_ok(b, n, 0, &m);
        assert_int_equal(m.type, SGL_MSG_AREA_INFO);
        assert_int_equal(m.serial, 3);
        assert_int_equal(m.area_info.owner_uid, 4294967294u);
        assert_int_equal(m.area_info.mode, 0444);
        assert_int_equal(m.area_info.flags, SGL_INFO_PERSIST);
        assert_int_equal(m.area_info.readers, 77);
        assert_true(m.area_info.segments == 0x1111111122222222ULL);
        assert_true(m.area_info.bytes_used == 0x3333333344444444ULL);
        assert_true(m.area_info.bytes_live == 0x5555555566666666ULL);
        assert_int_equal(m.area_info.name_len, 3);
        assert_ptr_equal(m.area_info.name, (const char *)b + 60);
        assert_memory_equal(m.area_info.name, "x.y", 3);
        assert_rebuilds(&m, b, n);
}

static void test_roundtrip_segment_info(void **state) {
        uint8_t b[BUFSZ];
        struct sgl_msg m;
        /* unknown seal bits pass through: they are the kernel's */
        ssize_t n = sgl_msg_build_segment_info(b, sizeof(b), 4, 8, 1ULL << 40,
                                               0xffffffffu, SGL_MSG_EVENT_OPENED);

        assert_int_equal(n, 40);
        parse_ok(b, n, 0, &m);
        assert_int_equal(m.type, SGL_MSG_SEGMENT_INFO);
        assert_int_equal(m.serial, 4);
        assert_int_equal(m.segment_info.seq, 8);
        assert_true(m.segment_info.size == 1ULL << 40);
        assert_int_equal(m.segment_info.seals, 0xffffffffu);
        assert_int_equal(m.segment_info.event, SGL_MSG_EVENT_OPENED);
        assert_rebuilds(&m, b, n);
}

static void test_roundtrip_end(void **state) {
        uint8_t b[BUFSZ];
        struct sgl_msg m;
        ssize_t n = sgl_msg_build_end(b, sizeof(b), 5);

        assert_int_equal(n, 16);
        parse_ok(b, n, 0, &m);
        assert_int_equal(m.type, SGL_MSG_END);
        assert_int_equal(m.serial, 5);
        assert_rebuilds(&m, b, n);
}

static void test_roundtrip_claimed(void **state) {
        uint8_t b[BUFSZ];
        struct sgl_msg m;
        ssize_t n = sgl_msg_build_claimed(b, sizeof(b), 6, AREA_ID, 0,
                                          0xfedcba9876543210ULL);

        assert_int_equal(n, 48);
        parse_ok(b, n, 0, &m);
        assert_int_equal(m.type, SGL_MSG_CLAIMED);
        assert_int_equal(m.serial, 6);
        assert_memory_equal(m.claimed.area_id, AREA_ID, 16);
        assert_int_equal(m.claimed.flags, 0);
        assert_true(m.claimed.next_seq == 0xfedcba9876543210ULL);
        assert_rebuilds(&m, b, n);
}

static void test_roundtrip_gone(void **state) {
        uint8_t b[BUFSZ];
        struct sgl_msg m;
        ssize_t n = sgl_msg_build_gone(b, sizeof(b));

        assert_int_equal(n, 16);
        parse_ok(b, n, 0, &m);
        assert_int_equal(m.type, SGL_MSG_GONE);
        assert_int_equal(m.serial, 0);
        assert_rebuilds(&m, b, n);
}

/* Re-encoding a parsed message into its own buffer (names and ids move onto
 * themselves). */
static void test_rebuild_in_place(void **state) {
        uint8_t b[BUFSZ], copy[BUFSZ];
        struct sgl_msg m;

        for (size_t i = 0; i < n_samples; i++) {
                memcpy(b, samples[i].b, samples[i].len);
                memcpy(copy, b, samples[i].len);
                parse_ok(b, samples[i].len, sgl_msg_fds(samples[i].type), &m);
                assert_int_equal(sgl_msg_build(b, sizeof(b), &m),
                                 (ssize_t)samples[i].len);
                assert_memory_equal(b, copy, samples[i].len);
        }
}

/* ------------------------------------------------- the spec's examples */

static void test_spec_examples(void **state) {
        static const uint8_t hello[] = {
                0x01, 0x00, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x00,
                0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x01, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x00, 0x00 };
        static const uint8_t welcome[] = {
                0x40, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00,
                0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x01, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,
                0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 };
        static const uint8_t open[] = {
                0x02, 0x00, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x00,
                0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x03, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00,
                'd', 'e', 'm', 'o' };
        static const uint8_t claim[] = {
                0x03, 0x00, 0x00, 0x00, 0x29, 0x00, 0x00, 0x00,
                0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x01, 0x00, 0x00, 0x00, 0x20, 0x01, 0x00, 0x00,
                0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x01, 0x00, 0x00, 0x00, 0xe8, 0x03, 0x00, 0x00, 'x' };
        static const uint8_t segment[] = {
                0x44, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 };
        static const uint8_t error[] = {
                0x42, 0x00, 0x00, 0x00, 0x18, 0x00, 0x00, 0x00,
                0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0xf0, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00 };
        static const uint32_t uid1000 = 1000;
        uint8_t b[BUFSZ];
        struct sgl_msg m;

        parse_ok(hello, sizeof(hello), 0, &m);
        assert_int_equal(m.type, SGL_MSG_HELLO);
        assert_int_equal(m.serial, 1);
        assert_int_equal(m.hello.min_version, 1);
        assert_int_equal(m.hello.max_version, 1);
        assert_int_equal(m.hello.role, SGL_ROLE_READER);
        assert_int_equal(sgl_msg_build_hello(b, sizeof(b), 1, 1, 1, SGL_ROLE_READER),
                         sizeof(hello));
        assert_memory_equal(b, hello, sizeof(hello));

        parse_ok(welcome, sizeof(welcome), 0, &m);
        assert_int_equal(m.welcome.version, 1);
        assert_int_equal(sgl_msg_build_welcome(b, sizeof(b), 1, 1, 4096, 255),
                         sizeof(welcome));
        assert_memory_equal(b, welcome, sizeof(welcome));

        parse_ok(open, sizeof(open), 0, &m);
        assert_int_equal(m.open.flags, SGL_OPEN_TRUSTED | SGL_OPEN_SUBSCRIBE);
        assert_int_equal(sgl_msg_build_open(b, sizeof(b), 2, SGL_OPEN_ALL, "demo", 4),
                         sizeof(open));
        assert_memory_equal(b, open, sizeof(open));

        parse_ok(claim, sizeof(claim), 0, &m);
        assert_int_equal(m.claim.mode, 0440);
        assert_int_equal(m.claim.n_uids, 1);
        assert_int_equal(sgl_msg_claim_uid(&m, 0), 1000);
        assert_int_equal(sgl_msg_build_claim(b, sizeof(b), 3, SGL_CLAIM_PERSIST, 0440,
                                             &uid1000, 1, NULL, 0, "x", 1),
                         sizeof(claim));
        assert_memory_equal(b, claim, sizeof(claim));

        parse_ok(segment, sizeof(segment), 1, &m);
        assert_int_equal(m.serial, 0);
        assert_int_equal(m.segment.seq, 5);
        assert_int_equal(sgl_msg_build_segment(b, sizeof(b), 0, 5, SGL_MSG_EVENT_SEALED),
                         sizeof(segment));
        assert_memory_equal(b, segment, sizeof(segment));

        parse_ok(error, sizeof(error), 0, &m);
        assert_int_equal(m.error.error, -16);
        assert_int_equal(sgl_msg_build_error(b, sizeof(b), 3, -EBUSY), sizeof(error));
        assert_memory_equal(b, error, sizeof(error));
}

/* ------------------------------------------------------ header rules */

static void test_too_short(void **state) {
        for (size_t i = 0; i < n_samples; i++)
                for (size_t len = 0; len < 16; len++)
                        expect_bad(samples[i].b, len, sgl_msg_fds(samples[i].type));
}

static void test_too_long(void **state) {
        static uint8_t b[SGL_MSG_MAX_SIZE + 2];

        /* OPENs whose layout adds up, at and past the limit: the size alone
         * is refused past it (and the name at it) */
        memset(b, 'a', sizeof(b));
        for (size_t len = SGL_MSG_MAX_SIZE; len <= SGL_MSG_MAX_SIZE + 2; len++) {
                memset(b, 0, 24);
                w16(b, SGL_MSG_OPEN);
                w32(b + 4, (uint32_t)len);
                w32(b + 8, 1);
                w32(b + 20, (uint32_t)(len - 24));
                expect_bad(b, len, 0);
        }
        expect_bad(b, SIZE_MAX, 0);
}

/* The header's length differs from the datagram's, either way. */
static void test_length_field_mismatch(void **state) {
        uint8_t b[BUFSZ];

        for (size_t i = 0; i < n_samples; i++) {
                size_t len = copy_sample(samples[i].type, b);
                size_t nfds = sgl_msg_fds(samples[i].type);

                w32(b + 4, (uint32_t)len + 1);
                expect_bad(b, len, nfds);
                w32(b + 4, (uint32_t)len - 1);
                expect_bad(b, len, nfds);
                w32(b + 4, 0);
                expect_bad(b, len, nfds);
                w32(b + 4, UINT32_MAX);
                expect_bad(b, len, nfds);
                /* datagram longer than the header says, as if two had merged */
                w32(b + 4, (uint32_t)len);
                b[len] = 0;
                expect_bad(b, len + 1, nfds);
        }
}

/* The size is one byte off what the fields say, both ways, with a header
 * that agrees with the datagram. */
static void test_size_off_by_one(void **state) {
        uint8_t b[BUFSZ];

        for (size_t i = 0; i < n_samples; i++) {
                size_t len = copy_sample(samples[i].type, b);
                size_t nfds = sgl_msg_fds(samples[i].type);

                if (len > 16) {
                        w32(b + 4, (uint32_t)len - 1);
                        expect_bad(b, len - 1, nfds);
                }
                w32(b + 4, (uint32_t)len + 1);
                b[len] = 0;
                expect_bad(b, len + 1, nfds);
                b[len] = 'a';   /* a name byte: still not what name_len says */
                expect_bad(b, len + 1, nfds);
        }
}

static void test_header_flags(void **state) {
        uint8_t b[BUFSZ];

        for (size_t i = 0; i < n_samples; i++) {
                for (int bit = 0; bit < 16; bit++) {
                        size_t len = copy_sample(samples[i].type, b);
                        w16(b + 2, (uint16_t)(1u << bit));
                        expect_bad(b, len, sgl_msg_fds(samples[i].type));
                }
        }
}

static void test_header_reserved(void **state) {
        uint8_t b[BUFSZ];

        for (size_t i = 0; i < n_samples; i++) {
                for (int byte = 12; byte < 16; byte++) {
                        size_t len = copy_sample(samples[i].type, b);
                        b[byte] = 0x01;
                        expect_bad(b, len, sgl_msg_fds(samples[i].type));
                        b[byte] = 0x80;
                        expect_bad(b, len, sgl_msg_fds(samples[i].type));
                }
        }
}

static void test_unknown_types(void **state) {
        uint8_t b[BUFSZ], payload[64] = { 0 };
        unsigned unknown = 0;

        for (uint32_t t = 0; t <= UINT16_MAX; t++) {
                bool known = (t >= 1 && t <= 10) || (t >= 64 && t <= 75);

                assert_int_equal(sgl_msg_type_known((uint16_t)t), known);
                if (known)
                        continue;
                unknown++;
                assert_string_equal(sgl_msg_type_name((uint16_t)t), "UNKNOWN");
                assert_int_equal(sgl_msg_fds((uint16_t)t), 0);
                for (size_t plen = 0; plen <= 32; plen += 8) {
                        size_t len = raw(b, (uint16_t)t, 1, payload, plen);
                        expect_bad(b, len, 0);
                        expect_bad(b, len, 1);
                }
        }
        assert_int_equal(unknown, 65536 - 22);
}

static void test_wrong_fd_count(void **state) {
        for (size_t i = 0; i < n_samples; i++) {
                size_t want = sgl_msg_fds(samples[i].type);

                for (size_t nfds = 0; nfds <= 3; nfds++)
                        if (nfds != want)
                                expect_bad(samples[i].b, samples[i].len, nfds);
                expect_bad(samples[i].b, samples[i].len, SIZE_MAX);
        }
}

static void test_fd_counts(void **state) {
        size_t max = 0;

        for (size_t i = 0; i < n_samples; i++) {
                uint16_t t = samples[i].type;
                size_t want = (t == SGL_MSG_PUBLISH_CONTROL ||
                               t == SGL_MSG_PUBLISH_SEGMENT ||
                               t == SGL_MSG_AREA || t == SGL_MSG_SEGMENT);
                assert_int_equal(sgl_msg_fds(t), want);
                max = want > max ? want : max;
        }
        assert_int_equal(max, SGL_MSG_MAX_FDS);
}

static void test_serial_rules(void **state) {
        uint8_t b[BUFSZ];
        struct sgl_msg m;

        for (size_t i = 0; i < n_samples; i++) {
                uint16_t t = samples[i].type;
                size_t len = copy_sample(t, b), nfds = sgl_msg_fds(t);
                bool zero_ok = t == SGL_MSG_ERROR || t == SGL_MSG_AREA ||
                               t == SGL_MSG_SEGMENT || t == SGL_MSG_RETIRED ||
                               t == SGL_MSG_GONE;
                bool nonzero_ok = t != SGL_MSG_RETIRED && t != SGL_MSG_GONE;

                w32(b + 8, 0);
                if (zero_ok)
                        parse_ok(b, len, nfds, &m);
                else
                        expect_bad(b, len, nfds);
                w32(b + 8, 0x80000000u);
                if (nonzero_ok)
                        parse_ok(b, len, nfds, &m);
                else
                        expect_bad(b, len, nfds);
        }
        assert_true(sgl_msg_type_is_request(SGL_MSG_HELLO));
        assert_true(sgl_msg_type_is_request(SGL_MSG_PING));
        assert_false(sgl_msg_type_is_request(SGL_MSG_WELCOME));
        assert_false(sgl_msg_type_is_request(0));
        assert_false(sgl_msg_type_is_request(11));
}

/* ------------------------------------------------------ payload rules */

static void test_payload_reserved(void **state) {
        static const struct {
                uint16_t type;
                size_t offset, size;
        } fields[] = {
                { SGL_MSG_HELLO, 24, 4 },
                { SGL_MSG_PUBLISH_SEGMENT, 28, 4 },
                { SGL_MSG_WELCOME, 18, 2 },
                { SGL_MSG_WELCOME, 28, 4 },
                { SGL_MSG_ERROR, 20, 4 },
                { SGL_MSG_AREA, 36, 4 },
                { SGL_MSG_SEGMENT, 28, 4 },
                { SGL_MSG_CLAIMED, 36, 4 },
        };
        uint8_t b[BUFSZ];

        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
                for (size_t byte = 0; byte < fields[i].size; byte++) {
                        size_t len = copy_sample(fields[i].type, b);
                        b[fields[i].offset + byte] = 0x01;
                        expect_bad(b, len, sgl_msg_fds(fields[i].type));
                        b[fields[i].offset + byte] = 0xff;
                        expect_bad(b, len, sgl_msg_fds(fields[i].type));
                }
        }
}

/* Each bit of each flags or mode field: accepted iff the spec defines it. */
static void test_flag_bits(void **state) {
        static const struct {
                uint16_t type;
                size_t offset;
                uint32_t allowed;
        } fields[] = {
                { SGL_MSG_OPEN, 16, SGL_OPEN_ALL },
                { SGL_MSG_CLAIM, 16, SGL_CLAIM_ALL },
                { SGL_MSG_CLAIM, 20, 0444 },
                { SGL_MSG_RELEASE, 16, SGL_RELEASE_ALL },
                { SGL_MSG_AREA, 32, SGL_AREA_ALL },
                { SGL_MSG_AREA_INFO, 20, 0444 },
                { SGL_MSG_AREA_INFO, 24, SGL_INFO_ALL },
                { SGL_MSG_CLAIMED, 32, SGL_CLAIMED_ALL },
        };
        uint8_t b[BUFSZ];
        struct sgl_msg m;

        assert_int_equal(SGL_OPEN_ALL, 3);
        assert_int_equal(SGL_CLAIM_ALL, 1);
        assert_int_equal(SGL_RELEASE_ALL, 1);
        assert_int_equal(SGL_AREA_ALL, 1);
        assert_int_equal(SGL_INFO_ALL, 3);
        assert_int_equal(SGL_CLAIMED_ALL, 1);
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
                size_t nfds = sgl_msg_fds(fields[i].type);

                for (int bit = 0; bit < 32; bit++) {
                        size_t len = copy_sample(fields[i].type, b);
                        w32(b + fields[i].offset, 1u << bit);
                        if (fields[i].allowed & (1u << bit))
                                parse_ok(b, len, nfds, &m);
                        else
                                expect_bad(b, len, nfds);
                }
                {
                        size_t len = copy_sample(fields[i].type, b);
                        w32(b + fields[i].offset, fields[i].allowed);
                        parse_ok(b, len, nfds, &m);
                }
        }
}

static void test_mode(void **state) {
        static const uint32_t bad[] = { 0222, 0111, 0777, 0644, 01000, 04444, 0x80000000u };
        uint8_t b[BUFSZ];
        struct sgl_msg m;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                size_t len = copy_sample(SGL_MSG_CLAIM, b);
                w32(b + 20, bad[i]);
                expect_bad(b, len, 0);
                len = copy_sample(SGL_MSG_AREA_INFO, b);
                w32(b + 20, bad[i]);
                expect_bad(b, len, 0);
                assert_int_equal(sgl_msg_build_claim(b, sizeof(b), 1, 0, bad[i], NULL, 0,
                                                     NULL, 0, "a", 1), -EINVAL);
        }
        for (uint32_t mode = 0; mode <= 0444; mode++) {
                size_t len;
                if (mode & ~0444u)
                        continue;
                len = copy_sample(SGL_MSG_CLAIM, b);
                w32(b + 20, mode);
                parse_ok(b, len, 0, &m);
                assert_int_equal(m.claim.mode, mode);
        }
}

static void test_hello_values(void **state) {
        static const struct { uint16_t min, max; uint32_t role; bool ok; } cases[] = {
                { 1, 1, 1, true },
                { 1, 1, 2, true },
                { 1, 1, 3, true },
                { 2, 7, 1, true },       /* a future client: still well-formed */
                { 65535, 65535, 1, true },
                { 0, 1, 1, false },      /* version 0 does not exist */
                { 0, 0, 1, false },
                { 2, 1, 1, false },      /* min > max */
                { 1, 1, 0, false },
                { 1, 1, 4, false },
                { 1, 1, 0xffffffffu, false },
        };
        uint8_t b[BUFSZ];
        struct sgl_msg m;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                size_t len = copy_sample(SGL_MSG_HELLO, b);
                w16(b + 16, cases[i].min);
                w16(b + 18, cases[i].max);
                w32(b + 20, cases[i].role);
                if (cases[i].ok)
                        parse_ok(b, len, 0, &m);
                else
                        expect_bad(b, len, 0);
                assert_int_equal(sgl_msg_build_hello(b, sizeof(b), 1, cases[i].min,
                                                     cases[i].max, cases[i].role) > 0,
                                 cases[i].ok);
        }
}

static void test_events(void **state) {
        static const struct { uint16_t type; size_t offset; } fields[] = {
                { SGL_MSG_PUBLISH_SEGMENT, 24 },
                { SGL_MSG_SEGMENT, 24 },
                { SGL_MSG_SEGMENT_INFO, 36 },
        };
        static const uint32_t bad[] = { 0, 3, 4, 0x101, 0xffffffffu };
        uint8_t b[BUFSZ];
        struct sgl_msg m;

        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
                size_t nfds = sgl_msg_fds(fields[i].type), len;

                for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++) {
                        len = copy_sample(fields[i].type, b);
                        w32(b + fields[i].offset, bad[j]);
                        expect_bad(b, len, nfds);
                }
                for (uint32_t ev = 1; ev <= 2; ev++) {
                        len = copy_sample(fields[i].type, b);
                        w32(b + fields[i].offset, ev);
                        parse_ok(b, len, nfds, &m);
                }
        }
        assert_int_equal(sgl_msg_build_publish_segment(b, sizeof(b), 1, 1, 0), -EINVAL);
        assert_int_equal(sgl_msg_build_publish_segment(b, sizeof(b), 1, 1, 3), -EINVAL);
        assert_int_equal(sgl_msg_build_segment(b, sizeof(b), 1, 1, 0), -EINVAL);
        assert_int_equal(sgl_msg_build_segment(b, sizeof(b), 1, 1, 3), -EINVAL);
        assert_int_equal(sgl_msg_build_segment_info(b, sizeof(b), 1, 1, 0, 0, 0), -EINVAL);
        assert_int_equal(sgl_msg_build_segment_info(b, sizeof(b), 1, 1, 0, 0, 3), -EINVAL);
}

static void test_seq_zero(void **state) {
        static const struct { uint16_t type; size_t offset; } fields[] = {
                { SGL_MSG_PUBLISH_SEGMENT, 16 },
                { SGL_MSG_RETIRE, 16 },
                { SGL_MSG_SEGMENT, 16 },
                { SGL_MSG_RETIRED, 16 },
                { SGL_MSG_SEGMENT_INFO, 16 },
                { SGL_MSG_CLAIMED, 40 },
        };
        uint8_t b[BUFSZ];
        struct sgl_msg m;

        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
                size_t nfds = sgl_msg_fds(fields[i].type);
                size_t len = copy_sample(fields[i].type, b);

                w64(b + fields[i].offset, 0);
                expect_bad(b, len, nfds);
                w64(b + fields[i].offset, 1);
                parse_ok(b, len, nfds, &m);
                w64(b + fields[i].offset, UINT64_MAX);
                parse_ok(b, len, nfds, &m);
                w64(b + fields[i].offset, 1ULL << 32);  /* high half alone */
                parse_ok(b, len, nfds, &m);
        }
}

static void test_error_values(void **state) {
        static const struct { int64_t v; bool ok; } cases[] = {
                { -1, true }, { -4095, true }, { -EPROTONOSUPPORT, true },
                { 0, false }, { 1, false }, { -4096, false },
                { INT32_MIN, false }, { INT32_MAX, false },
        };
        uint8_t b[BUFSZ];
        struct sgl_msg m;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                size_t len = copy_sample(SGL_MSG_ERROR, b);
                w32(b + 16, (uint32_t)cases[i].v);
                if (cases[i].ok) {
                        parse_ok(b, len, 0, &m);
                        assert_int_equal(m.error.error, cases[i].v);
                } else {
                        expect_bad(b, len, 0);
                }
                assert_int_equal(sgl_msg_build_error(b, sizeof(b), 1,
                                                     (int32_t)cases[i].v) > 0,
                                 cases[i].ok);
        }
}

static void test_welcome_values(void **state) {
        static const struct {
                uint16_t version;
                uint32_t max_message, max_name;
                bool ok;
        } cases[] = {
                { 1, 4096, 255, true },
                { 0, 4096, 255, false },
                { 1, 4095, 255, false },
                { 1, 4097, 255, false },
                { 1, 4096, 254, false },
                { 1, 4096, 256, false },
                { 2, 8192, 255, true },
                { 2, 4096, 1, true },
                { 2, 4095, 255, false },
                { 2, 4096, 0, false },
        };
        uint8_t b[BUFSZ];
        struct sgl_msg m;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                size_t len = copy_sample(SGL_MSG_WELCOME, b);
                w16(b + 16, cases[i].version);
                w32(b + 20, cases[i].max_message);
                w32(b + 24, cases[i].max_name);
                if (cases[i].ok)
                        parse_ok(b, len, 0, &m);
                else
                        expect_bad(b, len, 0);
                assert_int_equal(sgl_msg_build_welcome(b, sizeof(b), 1, cases[i].version,
                                                       cases[i].max_message,
                                                       cases[i].max_name) > 0,
                                 cases[i].ok);
        }
}

/* A CLAIM with arbitrary counts, ids and name, built by hand. */
static size_t raw_claim(uint8_t *b, uint32_t n_uids, uint32_t n_gids,
                        uint32_t id, const char *name, size_t name_len) {
        uint8_t p[BUFSZ];
        size_t plen = 20;

        memset(p, 0, sizeof(p));
        w32(p + 8, n_uids);
        w32(p + 12, n_gids);
        w32(p + 16, (uint32_t)name_len);
        for (uint32_t i = 0; i < n_uids + n_gids; i++, plen += 4)
                w32(p + plen, id + i);
        memcpy(p + plen, name, name_len);
        plen += name_len;
        return raw(b, SGL_MSG_CLAIM, 1, p, plen);
}

static void test_claim_counts(void **state) {
        uint32_t ids[SGL_CLAIM_MAX_IDS + 1] = { 0 };
        uint8_t b[BUFSZ];
        struct sgl_msg m;
        size_t len;

        len = raw_claim(b, 64, 64, 1, "c", 1);
        parse_ok(b, len, 0, &m);
        assert_int_equal(sgl_msg_claim_gid(&m, 63), 1 + 127);

        /* 65 of either, with every byte present: only the count is wrong */
        len = raw_claim(b, 65, 0, 1, "c", 1);
        expect_bad(b, len, 0);
        len = raw_claim(b, 0, 65, 1, "c", 1);
        expect_bad(b, len, 0);
        len = raw_claim(b, 65, 65, 1, "c", 1);
        expect_bad(b, len, 0);

        /* counts that would overflow size arithmetic */
        len = raw_claim(b, 1, 0, 1, "c", 1);
        w32(b + 24, 0x40000000u);
        expect_bad(b, len, 0);
        w32(b + 24, UINT32_MAX);
        expect_bad(b, len, 0);
        len = raw_claim(b, 0, 1, 1, "c", 1);
        w32(b + 28, 0x40000001u);
        expect_bad(b, len, 0);
        len = raw_claim(b, 0, 0, 1, "c", 1);
        w32(b + 32, UINT32_MAX);
        expect_bad(b, len, 0);

        /* a count that disagrees with the bytes, by one id */
        len = raw_claim(b, 2, 1, 1, "abcd", 4);
        w32(b + 24, 1);     /* the 2nd uid would be read as a gid, ... */
        expect_bad(b, len, 0); /* ... and the size no longer adds up */
        w32(b + 24, 3);
        expect_bad(b, len, 0);
        /* shifting an id between the lists keeps the size right: valid */
        w32(b + 24, 1);
        w32(b + 28, 2);
        parse_ok(b, len, 0, &m);
        assert_int_equal(sgl_msg_claim_gid(&m, 0), 2);

        /* name_len off by one with the ids taking up the slack */
        len = raw_claim(b, 1, 0, 1, "abcd", 4);
        w32(b + 32, 5);
        expect_bad(b, len, 0);
        w32(b + 32, 3);
        expect_bad(b, len, 0);

        /* (uid_t)-1 is never an id */
        len = raw_claim(b, 1, 0, UINT32_MAX, "c", 1);
        expect_bad(b, len, 0);
        len = raw_claim(b, 0, 1, UINT32_MAX, "c", 1);
        expect_bad(b, len, 0);
        len = raw_claim(b, 2, 0, UINT32_MAX - 1, "c", 1); /* -2, then -1 */
        expect_bad(b, len, 0);
        len = raw_claim(b, 1, 0, UINT32_MAX - 1, "c", 1);
        parse_ok(b, len, 0, &m);

        /* the builder refuses the same */
        assert_int_equal(sgl_msg_build_claim(b, sizeof(b), 1, 0, 0, ids, 65, NULL, 0,
                                             "c", 1), -EINVAL);
        assert_int_equal(sgl_msg_build_claim(b, sizeof(b), 1, 0, 0, NULL, 0, ids, 65,
                                             "c", 1), -EINVAL);
        assert_int_equal(sgl_msg_build_claim(b, sizeof(b), 1, 0, 0, NULL, 1, NULL, 0,
                                             "c", 1), -EINVAL);
        ids[3] = UINT32_MAX;
        assert_int_equal(sgl_msg_build_claim(b, sizeof(b), 1, 0, 0, ids, 4, NULL, 0,
                                             "c", 1), -EINVAL);
        assert_int_equal(sgl_msg_build_claim(b, sizeof(b), 1, 0, 0, NULL, 0, ids, 4,
                                             "c", 1), -EINVAL);
        assert_int_equal(sgl_msg_build_claim(b, sizeof(b), 1, 0, 0, ids, 3, ids, 3,
                                             "c", 1), 36 + 24 + 1);
        assert_int_equal(sgl_msg_build_claim(b, sizeof(b), 1, 2, 0, NULL, 0, NULL, 0,
                                             "c", 1), -EINVAL);
}

/* ------------------------------------------------------------- names */

static const struct {
        const char *s;
        size_t len;
} bad_names[] = {
        { "", 0 },
        { ".", 1 },
        { "..", 2 },
        { ".hidden", 7 },
        { "a/b", 3 },
        { "/", 1 },
        { "a\0b", 3 },
        { "ab\0", 3 },
        { "\0", 1 },
        { "caf\xc3\xa9", 5 },
        { "\xff", 1 },
        { "a b", 3 },
        { "a\nb", 3 },
        { "a:b", 3 },
        { "a\\b", 3 },
        { "a*", 2 },
        { "\x7f", 1 },
};

static const char *good_names[] = {
        "a", "Z", "0", "-", "_", "a.", "a..b", "-.-", "sigillo.demo-1_x",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-",
};

/* The four types that carry a name: where its name_len lives and how big
 * the fixed part is. */
static size_t raw_named(uint8_t *b, uint16_t type, const char *name,
                        size_t name_len) {
        uint8_t p[BUFSZ];
        size_t fixed;

        memset(p, 0, sizeof(p));
        switch (type) {
        case SGL_MSG_OPEN:
                fixed = 8;
                w32(p + 4, (uint32_t)name_len);
                break;
        case SGL_MSG_STAT:
                fixed = 4;
                w32(p, (uint32_t)name_len);
                break;
        case SGL_MSG_AREA_INFO:
                fixed = 44;
                w32(p + 40, (uint32_t)name_len);
                break;
        case SGL_MSG_CLAIM:
                return raw_claim(b, 0, 0, 0, name, name_len);
        default:
                fail();
                return 0;
        }
        memcpy(p + fixed, name, name_len);
        return raw(b, type, 1, p, fixed + name_len);
}

static const uint16_t named_types[] = {
        SGL_MSG_OPEN, SGL_MSG_CLAIM, SGL_MSG_STAT, SGL_MSG_AREA_INFO,
};

static void test_bad_names(void **state) {
        char long_name[SGL_NAME_MAX + 2];
        uint8_t b[BUFSZ];
        struct sgl_msg m;
        size_t len;

        memset(long_name, 'n', sizeof(long_name));
        for (size_t t = 0; t < sizeof(named_types) / sizeof(named_types[0]); t++) {
                uint16_t type = named_types[t];

                for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
                        len = raw_named(b, type, bad_names[i].s, bad_names[i].len);
                        expect_bad(b, len, 0);
                }
                len = raw_named(b, type, long_name, 256);
                expect_bad(b, len, 0);
                len = raw_named(b, type, long_name, 255);
                parse_ok(b, len, 0, &m);
                for (size_t i = 0; i < sizeof(good_names) / sizeof(good_names[0]); i++) {
                        len = raw_named(b, type, good_names[i], strlen(good_names[i]));
                        parse_ok(b, len, 0, &m);
                }
        }
}

static void test_name_len_mismatch(void **state) {
        uint8_t b[BUFSZ];

        for (size_t t = 0; t < sizeof(named_types) / sizeof(named_types[0]); t++) {
                uint16_t type = named_types[t];
                size_t off = type == SGL_MSG_CLAIM ? 32 :
                             type == SGL_MSG_OPEN ? 20 :
                             type == SGL_MSG_STAT ? 16 : 56;
                size_t len = raw_named(b, type, "abc", 3);

                w32(b + off, 2);
                expect_bad(b, len, 0);
                w32(b + off, 4);
                expect_bad(b, len, 0);
                w32(b + off, 0);
                expect_bad(b, len, 0);
                w32(b + off, UINT32_MAX);
                expect_bad(b, len, 0);
                w32(b + off, 3);
                {
                        struct sgl_msg m;
                        parse_ok(b, len, 0, &m);
                }
        }
}

static void test_name_valid(void **state) {
        char n[SGL_NAME_MAX + 1];

        for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++)
                assert_false(sgl_name_valid(bad_names[i].s, bad_names[i].len));
        for (size_t i = 0; i < sizeof(good_names) / sizeof(good_names[0]); i++)
                assert_true(sgl_name_valid(good_names[i], strlen(good_names[i])));
        memset(n, 'x', sizeof(n));
        assert_true(sgl_name_valid(n, 255));
        assert_false(sgl_name_valid(n, 256));
        assert_false(sgl_name_valid(NULL, 0));
        assert_false(sgl_name_valid(NULL, 1));
        /* every byte value, alone and after a valid first byte */
        for (unsigned c = 0; c < 256; c++) {
                char s[2] = { 'a', (char)c };
                bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                          (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
                assert_int_equal(sgl_name_valid(s, 2), ok);
                assert_int_equal(sgl_name_valid(s + 1, 1), ok && c != '.');
        }
}

static void test_builders_bad_names(void **state) {
        uint8_t b[BUFSZ];
        char long_name[SGL_NAME_MAX + 1];

        memset(long_name, 'l', sizeof(long_name));
        for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
                const char *s = bad_names[i].s;
                size_t n = bad_names[i].len;

                assert_int_equal(sgl_msg_build_open(b, sizeof(b), 1, 0, s, n), -EINVAL);
                assert_int_equal(sgl_msg_build_stat(b, sizeof(b), 1, s, n), -EINVAL);
                assert_int_equal(sgl_msg_build_claim(b, sizeof(b), 1, 0, 0, NULL, 0,
                                                     NULL, 0, s, n), -EINVAL);
                assert_int_equal(sgl_msg_build_area_info(b, sizeof(b), 1, 0, 0, 0, 0,
                                                         0, 0, 0, s, n), -EINVAL);
        }
        assert_int_equal(sgl_msg_build_open(b, sizeof(b), 1, 0, long_name, 256), -EINVAL);
        assert_int_equal(sgl_msg_build_open(b, sizeof(b), 1, 0, NULL, 3), -EINVAL);
        assert_int_equal(sgl_msg_build_open(b, sizeof(b), 1, 0, long_name, 255), 24 + 255);
}

/* ---------------------------------------------------------- builders */

static void test_builders_bad_args(void **state) {
        uint8_t b[BUFSZ];

        /* serials */
        assert_int_equal(sgl_msg_build_hello(b, sizeof(b), 0, 1, 1, 1), -EINVAL);
        assert_int_equal(sgl_msg_build_ping(b, sizeof(b), 0), -EINVAL);
        assert_int_equal(sgl_msg_build_ok(b, sizeof(b), 0), -EINVAL);
        assert_int_equal(sgl_msg_build_end(b, sizeof(b), 0), -EINVAL);
        assert_int_equal(sgl_msg_build_synced(b, sizeof(b), 0), -EINVAL);
        assert_int_equal(sgl_msg_build_claimed(b, sizeof(b), 0, AREA_ID, 0, 1), -EINVAL);
        /* flags */
        assert_int_equal(sgl_msg_build_open(b, sizeof(b), 1, 4, "a", 1), -EINVAL);
        assert_int_equal(sgl_msg_build_release(b, sizeof(b), 1, 2), -EINVAL);
        assert_int_equal(sgl_msg_build_area(b, sizeof(b), 1, AREA_ID, 2), -EINVAL);
        assert_int_equal(sgl_msg_build_area_info(b, sizeof(b), 1, 0, 0, 4, 0, 0, 0, 0,
                                                 "a", 1), -EINVAL);
        assert_int_equal(sgl_msg_build_claimed(b, sizeof(b), 1, AREA_ID, 2, 1), -EINVAL);
        /* seqs */
        assert_int_equal(sgl_msg_build_retire(b, sizeof(b), 1, 0), -EINVAL);
        assert_int_equal(sgl_msg_build_retired(b, sizeof(b), 0), -EINVAL);
        assert_int_equal(sgl_msg_build_claimed(b, sizeof(b), 1, AREA_ID, 0, 0), -EINVAL);
        /* pointers */
        assert_int_equal(sgl_msg_build_area(b, sizeof(b), 1, NULL, 0), -EINVAL);
        assert_int_equal(sgl_msg_build_claimed(b, sizeof(b), 1, NULL, 0, 1), -EINVAL);
        assert_int_equal(sgl_msg_build(b, sizeof(b), NULL), -EINVAL);
        assert_int_equal(sgl_msg_build_ping(NULL, 16, 1), -EINVAL);
        {
                struct sgl_msg m = { .type = 11, .serial = 1 };
                assert_int_equal(sgl_msg_build(b, sizeof(b), &m), -EINVAL);
                m.type = 0;
                assert_int_equal(sgl_msg_build(b, sizeof(b), &m), -EINVAL);
        }
}

/* Too small a buffer: -ENOBUFS, and not a byte written. */
static void test_builders_nobufs(void **state) {
        uint8_t b[BUFSZ], canary[BUFSZ];
        struct sgl_msg m;

        memset(canary, 0x5a, sizeof(canary));
        for (size_t i = 0; i < n_samples; i++) {
                size_t len = samples[i].len;

                parse_ok(samples[i].b, len, sgl_msg_fds(samples[i].type), &m);
                for (size_t size = 0; size < len; size += (size < 20 ? 1 : 7)) {
                        memset(b, 0x5a, sizeof(b));
                        assert_int_equal(sgl_msg_build(b, size, &m), -ENOBUFS);
                        assert_memory_equal(b, canary, sizeof(b));
                }
                memset(b, 0x5a, sizeof(b));
                assert_int_equal(sgl_msg_build(b, len - 1, &m), -ENOBUFS);
                assert_memory_equal(b, canary, sizeof(b));
                assert_int_equal(sgl_msg_build(b, len, &m), (ssize_t)len);
                assert_memory_equal(b, samples[i].b, len);
                assert_memory_equal(b + len, canary, sizeof(b) - len);
        }
        /* -EINVAL takes precedence and writes nothing either */
        memset(b, 0x5a, sizeof(b));
        assert_int_equal(sgl_msg_build_ping(b, 0, 0), -EINVAL);
        assert_int_equal(sgl_msg_build_open(b, sizeof(b), 1, 0, "/", 1), -EINVAL);
        assert_memory_equal(b, canary, sizeof(b));
}

static void test_parse_args(void **state) {
        struct sgl_msg m;
        const struct sample *s = sample_of(SGL_MSG_PING);

        assert_int_equal(sgl_msg_parse(s->b, s->len, 0, NULL), -EINVAL);
        assert_int_equal(sgl_msg_parse(NULL, 16, 0, &m), -EINVAL);
        assert_int_equal(sgl_msg_parse(NULL, 0, 0, &m), -EBADMSG);
}

/* Decoding reads only the bytes it was given (ASan checks the rest): each
 * sample is parsed from an exactly sized heap copy. */
static void test_exact_bounds(void **state) {
        struct sgl_msg m;

        for (size_t i = 0; i < n_samples; i++) {
                size_t len = samples[i].len;
                uint8_t *p = malloc(len);

                assert_non_null(p);
                memcpy(p, samples[i].b, len);
                parse_ok(p, len, sgl_msg_fds(samples[i].type), &m);
                for (size_t cut = 0; cut < len; cut++)
                        expect_bad(p, cut, sgl_msg_fds(samples[i].type));
                free(p);
        }
}

/* ------------------------------------------------- state, versions */

static void test_request_allowed(void **state) {
        static const struct {
                enum sgl_conn_state state;
                uint32_t role;
                uint16_t allowed[5];
        } table[] = {
                { SGL_CONN_NEW, 0, { SGL_MSG_HELLO } },
                { SGL_CONN_NEW, SGL_ROLE_WRITER, { SGL_MSG_HELLO } },
                { SGL_CONN_READY, SGL_ROLE_READER, { SGL_MSG_OPEN, SGL_MSG_PING } },
                { SGL_CONN_READY, SGL_ROLE_WRITER, { SGL_MSG_CLAIM, SGL_MSG_PING } },
                { SGL_CONN_READY, SGL_ROLE_QUERY, { SGL_MSG_LIST, SGL_MSG_STAT, SGL_MSG_PING } },
                { SGL_CONN_READY, 0, { 0 } },
                { SGL_CONN_READY, 4, { 0 } },
                { SGL_CONN_SUBSCRIBED, SGL_ROLE_READER, { SGL_MSG_PING } },
                { SGL_CONN_SUBSCRIBED, SGL_ROLE_WRITER, { 0 } },
                { SGL_CONN_LEASED, SGL_ROLE_WRITER,
                  { SGL_MSG_PUBLISH_CONTROL, SGL_MSG_RELEASE, SGL_MSG_PING } },
                { SGL_CONN_LEASED, SGL_ROLE_READER, { 0 } },
                { SGL_CONN_PUBLISHING, SGL_ROLE_WRITER,
                  { SGL_MSG_PUBLISH_SEGMENT, SGL_MSG_RETIRE, SGL_MSG_RELEASE, SGL_MSG_PING } },
                { SGL_CONN_PUBLISHING, SGL_ROLE_QUERY, { 0 } },
                { (enum sgl_conn_state)99, SGL_ROLE_WRITER, { 0 } },
        };

        for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
                for (uint32_t t = 0; t < 256; t++) {
                        bool want = false;
                        for (size_t j = 0; j < 5 && table[i].allowed[j]; j++)
                                want |= table[i].allowed[j] == t;
                        if (sgl_msg_request_allowed(table[i].state, table[i].role,
                                                    (uint16_t)t) != want)
                                fail_msg("state %d role %u type %u: expected %d",
                                         table[i].state, table[i].role, t, want);
                }
        }
}

static void test_negotiate(void **state) {
        assert_int_equal(sgl_proto_negotiate(1, 1), 1);
        assert_int_equal(sgl_proto_negotiate(1, 9), 1);
        assert_int_equal(sgl_proto_negotiate(0, 1), 1);
        assert_int_equal(sgl_proto_negotiate(2, 9), -EPROTONOSUPPORT);
        assert_int_equal(sgl_proto_negotiate(0, 0), -EPROTONOSUPPORT);
        assert_int_equal(sgl_proto_negotiate(1, 0), -EPROTONOSUPPORT);
        assert_int_equal(sgl_proto_negotiate(65535, 65535), -EPROTONOSUPPORT);
}

static void test_type_names(void **state) {
        for (size_t i = 0; i < n_samples; i++)
                assert_string_not_equal(sgl_msg_type_name(samples[i].type), "UNKNOWN");
        assert_string_equal(sgl_msg_type_name(SGL_MSG_PUBLISH_SEGMENT), "PUBLISH_SEGMENT");
        assert_string_equal(sgl_msg_type_name(SGL_MSG_GONE), "GONE");
}

/* ------------------------------------------------------- mutations */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void) {
        /* xorshift64*: deterministic, so a failure reproduces */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return rng_state * 0x2545f4914f6cdd1dULL;
}

static void test_random_mutations(void **state) {
        uint8_t b[BUFSZ], out[BUFSZ];
        unsigned parsed = 0;

        for (unsigned iter = 0; iter < 300000; iter++) {
                const struct sample *s = &samples[rng() % n_samples];
                size_t len = s->len, nfds = sgl_msg_fds(s->type);
                unsigned flips = 1 + rng() % 3;
                struct sgl_msg m;

                memcpy(b, s->b, len);
                for (unsigned f = 0; f < flips; f++) {
                        size_t at = rng() % len;
                        switch (rng() % 4) {
                        case 0: b[at] ^= (uint8_t)(1u << (rng() % 8)); break;
                        case 1: b[at] = (uint8_t)rng(); break;
                        case 2: b[at] = 0; break;
                        case 3: len = 16 + rng() % (s->len + 8 - 16); break;
                        }
                }
                if (rng() % 16 == 0)
                        nfds = rng() % 3;
                if (sgl_msg_parse(b, len, nfds, &m) < 0)
                        continue;
                parsed++;
                assert_int_equal(nfds, sgl_msg_fds(m.type));
                assert_int_equal(sgl_msg_build(out, sizeof(out), &m), (ssize_t)len);
                assert_memory_equal(out, b, len);
        }
        /* the mutations must not all be rejected, or this tests nothing */
        assert_true(parsed > 1000);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_samples_parse),
                cmocka_unit_test(test_roundtrip_hello),
                cmocka_unit_test(test_roundtrip_open),
                cmocka_unit_test(test_roundtrip_claim),
                cmocka_unit_test(test_roundtrip_publish_control),
                cmocka_unit_test(test_roundtrip_publish_segment),
                cmocka_unit_test(test_roundtrip_retire),
                cmocka_unit_test(test_roundtrip_list),
                cmocka_unit_test(test_roundtrip_stat),
                cmocka_unit_test(test_roundtrip_release),
                cmocka_unit_test(test_roundtrip_ping),
                cmocka_unit_test(test_roundtrip_welcome),
                cmocka_unit_test(test_roundtrip_ok),
                cmocka_unit_test(test_roundtrip_error),
                cmocka_unit_test(test_roundtrip_area),
                cmocka_unit_test(test_roundtrip_segment),
                cmocka_unit_test(test_roundtrip_retired),
                cmocka_unit_test(test_roundtrip_synced),
                cmocka_unit_test(test_roundtrip_area_info),
                cmocka_unit_test(test_roundtrip_segment_info),
                cmocka_unit_test(test_roundtrip_end),
                cmocka_unit_test(test_roundtrip_claimed),
                cmocka_unit_test(test_roundtrip_gone),
                cmocka_unit_test(test_rebuild_in_place),
                cmocka_unit_test(test_spec_examples),
                cmocka_unit_test(test_too_short),
                cmocka_unit_test(test_too_long),
                cmocka_unit_test(test_length_field_mismatch),
                cmocka_unit_test(test_size_off_by_one),
                cmocka_unit_test(test_header_flags),
                cmocka_unit_test(test_header_reserved),
                cmocka_unit_test(test_unknown_types),
                cmocka_unit_test(test_wrong_fd_count),
                cmocka_unit_test(test_fd_counts),
                cmocka_unit_test(test_serial_rules),
                cmocka_unit_test(test_payload_reserved),
                cmocka_unit_test(test_flag_bits),
                cmocka_unit_test(test_mode),
                cmocka_unit_test(test_hello_values),
                cmocka_unit_test(test_events),
                cmocka_unit_test(test_seq_zero),
                cmocka_unit_test(test_error_values),
                cmocka_unit_test(test_welcome_values),
                cmocka_unit_test(test_claim_counts),
                cmocka_unit_test(test_bad_names),
                cmocka_unit_test(test_name_len_mismatch),
                cmocka_unit_test(test_name_valid),
                cmocka_unit_test(test_builders_bad_names),
                cmocka_unit_test(test_builders_bad_args),
                cmocka_unit_test(test_builders_nobufs),
                cmocka_unit_test(test_parse_args),
                cmocka_unit_test(test_exact_bounds),
                cmocka_unit_test(test_request_allowed),
                cmocka_unit_test(test_negotiate),
                cmocka_unit_test(test_type_names),
                cmocka_unit_test(test_random_mutations),
        };

        return cmocka_run_group_tests(tests, setup_samples, NULL);
}
