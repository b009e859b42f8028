/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-payload.h - the self-describing chunk payloads of the tests that run
 * writers and readers in separate processes (test-payload.c): a payload
 * names its id, generation and length in a 16-byte header and is followed
 * by a pattern derived from them, so a reader checks every byte of any
 * chunk on its own.  Every fifth id spans pages (9 KiB more).
 */
#ifndef SGL_TEST_PAYLOAD_H
#define SGL_TEST_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sigillo.h"

#define PAYLOAD_HDR 16
#define PAYLOAD_MAX_IDS 8192     /* ids are 1 ... PAYLOAD_MAX_IDS - 1 */
#define PAYLOAD_MAX_GEN 63
#define PAYLOAD_MAX_SIZE (PAYLOAD_HDR + 3000 + 9000)

size_t payload_size(uint64_t id, uint32_t gen);
void payload_fill(uint8_t *p, uint64_t id, uint32_t gen);
/* Whether @c holds exactly what payload_fill() wrote for its id; its
 * generation in *@ret_gen if so. */
bool payload_ok(const sgl_chunk *c, uint32_t *ret_gen);
/* Order-independent digests of what a reader saw: sums of item_hash(). */
uint64_t item_hash(uint64_t id, uint32_t gen);
uint64_t range_hash(uint64_t first, uint64_t last, uint32_t gen);

#endif
