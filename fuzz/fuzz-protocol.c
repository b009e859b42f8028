/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-protocol.c - libFuzzer harness for the rendezvous codec
 * (src/protocol.c).
 *
 * Input: the first byte picks how many descriptors "arrived" (0 ... 2), the
 * rest is the datagram.  Oracle: whatever sgl_msg_parse() accepts must be
 * re-encoded byte for byte by the typed builder of its type and by
 * sgl_msg_build() (one encoding per message, nothing lost, nothing
 * invented); the descriptor count must be the type's.  Any mismatch
 * abort()s.  Memory errors are the sanitizers' job.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc \
 *          -D_GNU_SOURCE fuzz/fuzz-protocol.c src/protocol.c -o fuzz-protocol
 * Run:   ./fuzz-protocol -max_len=4200 fuzz/corpus/protocol
 */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond, const char *what, const struct sgl_msg *m) {
        if (!cond) {
                fprintf(stderr, "fuzz-protocol: %s (type %u %s)\n", what,
                        m->type, sgl_msg_type_name(m->type));
                abort();
        }
}

/* The typed builder of @m's type, fed from the decoded fields. */
static ssize_t rebuild_typed(uint8_t *out, size_t size, const struct sgl_msg *m) {
        uint32_t uids[SGL_CLAIM_MAX_IDS], gids[SGL_CLAIM_MAX_IDS];

        switch (m->type) {
        case SGL_MSG_HELLO:
                return sgl_msg_build_hello(out, size, m->serial, m->hello.min_version,
                                           m->hello.max_version, m->hello.role);
        case SGL_MSG_OPEN:
                return sgl_msg_build_open(out, size, m->serial, m->open.flags,
                                          m->open.name, m->open.name_len);
        case SGL_MSG_CLAIM:
                check(m->claim.n_uids <= SGL_CLAIM_MAX_IDS &&
                      m->claim.n_gids <= SGL_CLAIM_MAX_IDS, "id count", m);
                for (uint32_t i = 0; i < m->claim.n_uids; i++)
                        uids[i] = sgl_msg_claim_uid(m, i);
                for (uint32_t i = 0; i < m->claim.n_gids; i++)
                        gids[i] = sgl_msg_claim_gid(m, i);
                return sgl_msg_build_claim(out, size, m->serial, m->claim.flags,
                                           m->claim.mode, uids, m->claim.n_uids,
                                           gids, m->claim.n_gids, m->claim.name,
                                           m->claim.name_len);
        case SGL_MSG_PUBLISH_CONTROL:
                return sgl_msg_build_publish_control(out, size, m->serial);
        case SGL_MSG_PUBLISH_SEGMENT:
                return sgl_msg_build_publish_segment(out, size, m->serial,
                                                     m->publish_segment.seq,
                                                     m->publish_segment.event);
        case SGL_MSG_RETIRE:
                return sgl_msg_build_retire(out, size, m->serial, m->retire.seq);
        case SGL_MSG_LIST:
                return sgl_msg_build_list(out, size, m->serial);
        case SGL_MSG_STAT:
                return sgl_msg_build_stat(out, size, m->serial, m->stat.name,
                                          m->stat.name_len);
        case SGL_MSG_RELEASE:
                return sgl_msg_build_release(out, size, m->serial, m->release.flags);
        case SGL_MSG_PING:
                return sgl_msg_build_ping(out, size, m->serial);
        case SGL_MSG_WELCOME:
                return sgl_msg_build_welcome(out, size, m->serial, m->welcome.version,
                                             m->welcome.max_message,
                                             m->welcome.max_name);
        case SGL_MSG_OK:
                return sgl_msg_build_ok(out, size, m->serial);
        case SGL_MSG_ERROR:
                return sgl_msg_build_error(out, size, m->serial, m->error.error);
        case SGL_MSG_AREA:
                return sgl_msg_build_area(out, size, m->serial, m->area.area_id,
                                          m->area.flags);
        case SGL_MSG_SEGMENT:
                return sgl_msg_build_segment(out, size, m->serial, m->segment.seq,
                                             m->segment.event);
        case SGL_MSG_RETIRED:
                check(m->serial == 0, "RETIRED with a serial", m);
                return sgl_msg_build_retired(out, size, m->retired.seq);
        case SGL_MSG_SYNCED:
                return sgl_msg_build_synced(out, size, m->serial);
        case SGL_MSG_AREA_INFO:
                return sgl_msg_build_area_info(out, size, m->serial,
                                               m->area_info.owner_uid,
                                               m->area_info.mode, m->area_info.flags,
                                               m->area_info.readers,
                                               m->area_info.segments,
                                               m->area_info.bytes_used,
                                               m->area_info.bytes_live,
                                               m->area_info.name,
                                               m->area_info.name_len);
        case SGL_MSG_SEGMENT_INFO:
                return sgl_msg_build_segment_info(out, size, m->serial,
                                                  m->segment_info.seq,
                                                  m->segment_info.size,
                                                  m->segment_info.seals,
                                                  m->segment_info.event);
        case SGL_MSG_END:
                return sgl_msg_build_end(out, size, m->serial);
        case SGL_MSG_CLAIMED:
                return sgl_msg_build_claimed(out, size, m->serial, m->claimed.area_id,
                                             m->claimed.flags, m->claimed.next_seq);
        case SGL_MSG_GONE:
                check(m->serial == 0, "GONE with a serial", m);
                return sgl_msg_build_gone(out, size);
        }
        check(0, "parsed a type with no builder", m);
        return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static uint8_t out[SGL_MSG_MAX_SIZE + 16];
        const uint8_t *msg;
        struct sgl_msg m;
        size_t len, nfds;
        ssize_t n;

        if (size < 1)
                return 0;
        nfds = data[0] % 3;
        msg = data + 1;
        len = size - 1;

        if (sgl_msg_parse(msg, len, nfds, &m) < 0)
                return -1;   /* not worth keeping in the corpus */

        check(len >= SGL_MSG_HEADER_SIZE && len <= SGL_MSG_MAX_SIZE, "size", &m);
        check(sgl_msg_type_known(m.type), "unknown type", &m);
        check(nfds == sgl_msg_fds(m.type), "descriptor count", &m);

        memset(out, 0xa5, sizeof(out));
        n = rebuild_typed(out, sizeof(out), &m);
        check(n >= 0 && (size_t)n == len, "typed builder length", &m);
        check(memcmp(out, msg, len) == 0, "typed builder bytes", &m);

        /* one byte short must fail without writing */
        memset(out, 0xa5, sizeof(out));
        check(sgl_msg_build(out, len - 1, &m) == -ENOBUFS, "short buffer", &m);
        for (size_t i = 0; i < sizeof(out); i++)
                check(out[i] == 0xa5, "wrote on failure", &m);

        n = sgl_msg_build(out, sizeof(out), &m);
        check(n >= 0 && (size_t)n == len, "generic builder length", &m);
        check(memcmp(out, msg, len) == 0, "generic builder bytes", &m);
        return 0;
}
