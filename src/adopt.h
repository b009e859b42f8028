/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * adopt.h - a writer taking an orphaned area over: the live segments a
 * server hands it after CLAIMED{TAKEOVER} become the writer's own log
 * (adopt.c).
 */
#ifndef SGL_ADOPT_H
#define SGL_ADOPT_H

#include <stddef.h>
#include <stdint.h>

#include "segment.h"
#include "sigillo.h"

/* What became of one segment (struct sgl_adopt_seg.result). */
enum sgl_adopt_result {
        SGL_ADOPT_KEPT = 0,      /* adopted as it was (write-sealed); if it
                                  * was announced OPENED, the server must
                                  * hear it is SEALED now                   */
        SGL_ADOPT_COPIED = 1,    /* it was not write-sealed: adopted as a
                                  * sealed copy, which the server must get
                                  * (PUBLISH_SEGMENT SEALED, same seq)      */
        SGL_ADOPT_DROPPED = 2,   /* not adopted: failed its checks (error),
                                  * or a RETIRE record of the log retires it
                                  * (error 0); the server must RETIRE it    */
};

struct sgl_adopt_seg {
        int fd;                  /* in: as received; consumed (set to -1) */
        uint64_t seq;            /* in: the seq the server announced */
        uint32_t event;          /* in: as announced (a hint; the seals rule) */
        enum sgl_adopt_result result; /* out */
        int error;               /* out: why DROPPED by a check, else 0 */
};

/*
 * sgl_writer_adopt() - makes @segs (an area's live segments, from a
 * server) the log of @w, which must hold no segment and stage nothing.
 * Each descriptor is checked as a reader checks it, and its records are
 * folded into the writer's index and live-byte accounting as if the writer
 * had committed them; the writer then continues the area: its area id,
 * seq >= @next_seq and past every adopted seq, versions, anonymous ids and
 * commit numbers past the newest commit's.  Every descriptor is consumed.
 *
 * Return: 0 (see each result); -EBUSY if @w already has segments or staged
 * records; -EPROTO for a seq of 0, a repeated seq or one >= @next_seq (the
 * server broke the protocol); -ENOMEM, -EMFILE and the like, with the
 * writer unchanged.
 */
int sgl_writer_adopt(sgl_writer *w, const uint8_t area_id[SGL_AREA_ID_LEN],
                     uint64_t next_seq, struct sgl_adopt_seg *segs, size_t n);

#endif
