/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * memfd.h - the one place that creates, sizes, allocates, seals and verifies
 * memfds.  See memfd.c for the rules.
 */
#ifndef SGL_MEMFD_H
#define SGL_MEMFD_H

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>

/* Seals every segment carries from birth. */
#define SGL_SEALS_BASE (F_SEAL_SHRINK | F_SEAL_GROW)

/*
 * sgl_memfd_create() - a new memfd of @size bytes, fully allocated, no exec
 * bit, sealed F_SEAL_SHRINK|F_SEAL_GROW (plus F_SEAL_EXEC where the kernel
 * has MFD_NOEXEC_SEAL).  Returns the read-write descriptor or -errno.
 */
int sgl_memfd_create(const char *name, uint64_t size);

/*
 * sgl_memfd_create_sealed() - like sgl_memfd_create(), but filled with the
 * @len bytes at @image by pwrite instead of fallocate (@len must reach into
 * the last page of @size, so every page is written and none is sparse),
 * then sealed F_SEAL_WRITE|F_SEAL_SEAL too, in the same F_ADD_SEALS.
 * Returns the (read-write, immutable) descriptor or -errno.
 */
int sgl_memfd_create_sealed(const char *name, const void *image, uint64_t len,
                            uint64_t size);

/*
 * sgl_memfd_new_empty() - a memfd of size 0 (0600, no exec, O_CLOEXEC),
 * for sgl_memfd_fill_sealed() later; nothing else may be done with it.
 * sgl_memfd_fill_sealed() - sizes such a memfd to @size and fills and seals
 * it as sgl_memfd_create_sealed() does.  Together they let a writer create
 * the file ahead of time, off the path of the commit that fills it.
 */
int sgl_memfd_new_empty(const char *name);
int sgl_memfd_fill_sealed(int fd, const void *image, uint64_t len, uint64_t size);

/* Adds F_SEAL_FUTURE_WRITE: no new writable mapping, no write(2). */
int sgl_memfd_seal_future_write(int fd);

/* Adds F_SEAL_WRITE|F_SEAL_SEAL; -EBUSY while a writable mapping exists or a
 * page is pinned. */
int sgl_memfd_seal_write(int fd);

/* A new O_RDONLY|O_CLOEXEC file description of the same memfd, or -errno. */
int sgl_memfd_reopen_ro(int fd);

/* Flags of sgl_memfd_verify(). */
enum {
        SGL_VERIFY_WRITE_SEALED = 1u << 0, /* require F_SEAL_WRITE (STRICT) */
};

/*
 * sgl_memfd_verify() - checks a descriptor received from another process
 * before anything maps it; see memfd.c for the order of the checks.  Each
 * failure has its own error: -EMEDIUMTYPE (not a memfd on tmpfs), -ENOLCK
 * (SHRINK or GROW missing), -ENOEXEC (exec bit), -EBADMSG (size 0 or not a
 * page multiple), -ENODATA (sparse), -EACCES (no WRITE seal under
 * SGL_VERIFY_WRITE_SEALED; neither WRITE nor FUTURE_WRITE otherwise).
 * The out-parameters are optional and untouched on failure; @fd is never
 * closed here.
 */
struct stat;
/* The same checks, handing back what fstat() said (size, device, inode),
 * so a caller needs no second fstat(). */
int sgl_memfd_verify_stat(int fd, unsigned flags, struct stat *ret_st,
                          bool *ret_write_sealed);
int sgl_memfd_verify(int fd, unsigned flags, uint64_t *ret_size,
                     bool *ret_write_sealed);

#endif
