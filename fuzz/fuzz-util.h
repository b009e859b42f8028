/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-util.h - what the harnesses that run real descriptors share: a check
 * that aborts (libFuzzer then keeps the input) and a descriptor count, taken
 * per input so libFuzzer's own descriptors never count as a leak.
 */
#ifndef SGL_FUZZ_UTIL_H
#define SGL_FUZZ_UTIL_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

static inline void fz_fail_unless(int cond, const char *harness, const char *what) {
        if (!cond) {
                fprintf(stderr, "%s: %s\n", harness, what);
                abort();
        }
}

/* Open descriptors of this process, the directory's own not counted. */
static inline unsigned fz_count_fds(void) {
        DIR *dir = opendir("/proc/self/fd");
        struct dirent *de;
        unsigned n = 0;

        if (!dir)
                abort();
        while ((de = readdir(dir)))
                n += de->d_name[0] != '.';
        closedir(dir);
        return n - 1;
}

#endif
