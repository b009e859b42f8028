/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-payload.c - self-describing chunk payloads (test-payload.h).
 */
#include <string.h>

#include "test-util.h"
#include "test-payload.h"

size_t payload_size(uint64_t id, uint32_t gen) {
        size_t n = PAYLOAD_HDR + (size_t)((id * 131 + gen * 17) % 3000);

        if (id % 5 == 0)
                n += 9000; /* spans pages */
        return n;
}

void payload_fill(uint8_t *p, uint64_t id, uint32_t gen) {
        uint32_t len = (uint32_t)payload_size(id, gen);

        memcpy(p, &id, 8);
        memcpy(p + 8, &gen, 4);
        memcpy(p + 12, &len, 4);
        tu_fill_pattern(p + PAYLOAD_HDR, len - PAYLOAD_HDR, id << 8 ^ gen);
}

bool payload_ok(const sgl_chunk *c, uint32_t *ret_gen) {
        static uint8_t want[PAYLOAD_MAX_SIZE];
        const uint8_t *d = sgl_chunk_data(c);
        size_t size = sgl_chunk_size(c);
        uint64_t id;
        uint32_t gen;

        if (!d || size < PAYLOAD_HDR)
                return false;
        memcpy(&id, d, 8);
        memcpy(&gen, d + 8, 4);
        if (id != sgl_chunk_id(c) || id == 0 || id >= PAYLOAD_MAX_IDS || gen > PAYLOAD_MAX_GEN ||
            size != payload_size(id, gen))
                return false;
        payload_fill(want, id, gen);
        if (memcmp(want, d, size) != 0)
                return false;
        *ret_gen = gen;
        return true;
}

uint64_t item_hash(uint64_t id, uint32_t gen) {
        uint64_t k[2] = { id, gen };
        return tu_fnv1a64(k, sizeof(k));
}

uint64_t range_hash(uint64_t first, uint64_t last, uint32_t gen) {
        uint64_t h = 0;

        for (uint64_t id = first; id <= last; id++)
                h += item_hash(id, gen);
        return h;
}
