/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * internal.h - helpers shared by every file of the library (never installed).
 *
 * Owns: the export macro, cleanup attributes, logging hook and small inline
 * helpers.  Nothing here allocates or keeps state.
 */
#ifndef SGL_INTERNAL_H
#define SGL_INTERNAL_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "sigillo.h"

#define _public_ __attribute__((visibility("default")))
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _likely_(x) __builtin_expect(!!(x), 1)
#define _unlikely_(x) __builtin_expect(!!(x), 0)

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Returns -errno of the last failed libc call, never 0. */
static inline int sgl_negerrno(void) {
        return errno > 0 ? -errno : -EIO;
}

/* Closes fd if valid, preserving errno; returns -1 for `fd = safe_close(fd)`. */
static inline int sgl_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                close(fd);
                errno = saved;
        }
        return -1;
}

static inline void sgl_closep(int *fd) { sgl_close(*fd); }
static inline void sgl_freep(void *p) { free(*(void **)p); }
#define _cleanup_close_ _cleanup_(sgl_closep)
#define _cleanup_free_ _cleanup_(sgl_freep)

/* Takes ownership: returns the value and resets the variable. */
#define TAKE_FD(fd) ({ int _t = (fd); (fd) = -1; _t; })
#define TAKE_PTR(p) ({ __typeof__(p) _t = (p); (p) = NULL; _t; })

/* Overflow-checked arithmetic: true on overflow. */
#define ADD_OVERFLOW(a, b, r) __builtin_add_overflow(a, b, r)
#define MUL_OVERFLOW(a, b, r) __builtin_mul_overflow(a, b, r)

#endif
