/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-segment.c - libFuzzer harness for the segment parser as a reader sees
 * it: arbitrary bytes, arbitrary sizes, laid out as a mapping whose end is
 * followed by a PROT_NONE guard page, so any read past the mapping crashes.
 *
 * Oracle: the visible end lies in [SGL_SEG_DATA, size] and is
 * SGL_RECORD_ALIGN aligned; every record the iterator yields lies inside the
 * mapping, past the segment header and below the visible end, on a
 * SGL_RECORD_ALIGN boundary; sgl_rec_at() on a yielded record's offset
 * agrees with the iterator; the iterator terminates; errors are only
 * -EBADMSG.  Seeds (fuzz/corpus/segment) are segments a writer made: one
 * commit in one page, many packed commits, batches, open and sealed.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE
 *        -Iinclude -Isrc fuzz/fuzz-segment.c src/segment.c -o fuzz-segment
 * (`make fuzz` does this).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "segment.h"

#define MAX_PAGES 64

static uint8_t *region;

static uint8_t *guarded(size_t size) {
        if (!region) {
                region = mmap(NULL, (MAX_PAGES + 1) * SGL_PAGE, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (region == MAP_FAILED)
                        abort();
                if (mprotect(region + MAX_PAGES * SGL_PAGE, SGL_PAGE, PROT_NONE) < 0)
                        abort();
        }
        /* the mapping ends exactly at the guard page */
        return region + (MAX_PAGES * SGL_PAGE - size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
        struct sgl_seg_info info;
        struct sgl_rec_iter it;
        struct sgl_rec_view rec;
        uint64_t size, end, steps = 0;
        uint8_t *base;
        int r;

        /* whole pages, like a segment: pad the input with zeros */
        size = (len + SGL_PAGE - 1) / SGL_PAGE * SGL_PAGE;
        if (size < SGL_PAGE)
                size = SGL_PAGE;
        if (size > MAX_PAGES * SGL_PAGE)
                return 0;
        base = guarded(size);
        memset(base, 0, size);
        memcpy(base, data, len);

        r = sgl_seg_header_parse(base, size, &info);
        if (r < 0 && r != -EBADMSG && r != -EPROTONOSUPPORT)
                abort();

        end = sgl_seg_visible_end(base, size);
        if (end < SGL_SEG_DATA || end > size || end % SGL_RECORD_ALIGN)
                abort();

        sgl_rec_iter_init(&it, base, size, SGL_SEG_DATA, end);
        while ((r = sgl_rec_iter_next(&it, &rec)) > 0) {
                struct sgl_rec_view again;

                if (rec.offset < SGL_SEG_DATA + sizeof(struct sgl_commit_header) ||
                    rec.offset % SGL_RECORD_ALIGN || rec.offset >= end ||
                    rec.payload < base + rec.offset ||
                    rec.len > end - (uint64_t)(rec.payload - base))
                        abort();
                /* touch every payload byte: ASan and the guard page check */
                for (uint64_t i = 0; i < rec.len; i++)
                        steps += rec.payload[i];
                if (sgl_rec_at(base, size, end, rec.offset, &again) < 0 ||
                    again.len != rec.len || again.id != rec.id ||
                    again.kind != rec.kind || again.payload != rec.payload)
                        abort();
                if (++steps > (1u << 30))
                        abort(); /* no way to loop that long on <= 256 KiB */
        }
        if (r < 0 && r != -EBADMSG)
                abort();
        /* an error is sticky: calling again yields it again */
        if (r < 0 && sgl_rec_iter_next(&it, &rec) != r)
                abort();
        return 0;
}
