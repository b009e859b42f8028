/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * memfd.c - the one place that creates, sizes, allocates, seals and verifies
 * memfds.
 *
 * Owns: every memfd_create(), ftruncate(), fallocate() and F_ADD_SEALS of the
 * library, and the checks a reader runs on a descriptor it received before
 * anything maps it.
 *
 * Invariants:
 *  - A memfd leaves sgl_memfd_create() (fallocate) and
 *    sgl_memfd_create_sealed() (pwrite of every page) with its final size,
 *    every page of it allocated, no exec bit, and F_SEAL_SHRINK|F_SEAL_GROW
 *    already set: no mapping of it can ever SIGBUS and no fault on it ever
 *    allocates memory.
 *  - Sizes are non-zero multiples of SGL_MEMFD_ALIGN (the format's page, not
 *    the CPU's: the on-memory format is the same on every architecture).
 *  - Nothing here keeps a descriptor: failures close what they opened, and
 *    sgl_memfd_verify() never closes the descriptor it is given.
 *  - sgl_memfd_verify() trusts nothing about the descriptor; every check is
 *    made on the descriptor itself (never on a path), and each failure has its
 *    own errno so callers and tests can tell them apart.
 */

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "internal.h"
#include "memfd.h"

/* Older kernel and libc headers lack these; the values are kernel ABI. */
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif
#ifndef MFD_ALLOW_SEALING
#define MFD_ALLOW_SEALING 0x0002U
#endif
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#ifndef F_ADD_SEALS
#define F_ADD_SEALS (1024 + 9)
#define F_GET_SEALS (1024 + 10)
#endif
#ifndef F_SEAL_SEAL
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#define F_SEAL_WRITE 0x0008
#endif
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif
#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif

/* The segment format's page: sizes are multiples of it on every arch. */
#define SGL_MEMFD_ALIGN 4096u

static int memfd_new(const char *name) {
        int fd;

        /* MFD_NOEXEC_SEAL (Linux 6.3) creates the file 0666 & ~0111 with
         * F_SEAL_EXEC already set, so no one can ever chmod +x it. */
        fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING |
                                MFD_NOEXEC_SEAL);
        /* Older kernels reject the unknown flag with EINVAL and create
         * memfds 0777: sgl_memfd_verify() refuses any exec bit. */
        if (fd < 0 && errno == EINVAL)
                fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return sgl_negerrno();
        /* 0600 in any case (NOEXEC_SEAL leaves 0666): a reader of another
         * uid must not reopen /proc/PID/fd/N read-write, where it could
         * add F_SEAL_SEAL to an open segment.  (A reader of the writer's
         * own uid can chmod it back: the writer copes, see seal_seg().) */
        if (fchmod(fd, 0600) < 0) {
                int r = sgl_negerrno();

                sgl_close(fd);
                return r;
        }
        return fd;
}

/* Size seals (plus @more) before the descriptor can escape: from then on no
 * mapping of the file can ever SIGBUS. */
static int seal_size(int fd, int more) {
        if (fcntl(fd, F_ADD_SEALS, SGL_SEALS_BASE | F_SEAL_EXEC | more) < 0) {
                /* Kernels before 6.3 do not know F_SEAL_EXEC and say EINVAL;
                 * there the fchmod() in memfd_new() is all we can do. */
                if (errno != EINVAL)
                        return sgl_negerrno();
                if (fcntl(fd, F_ADD_SEALS, SGL_SEALS_BASE | more) < 0)
                        return sgl_negerrno();
        }
        return 0;
}

/* Whether a memfd may have @size bytes (a non-zero multiple of 4096).
 * Growing a file past RLIMIT_FSIZE raises SIGXFSZ, which kills by default;
 * a library must fail instead, so ask first. */
static int check_size(uint64_t size) {
        struct rlimit rl;

        if (size == 0 || size % SGL_MEMFD_ALIGN != 0)
                return -EINVAL;
        if (size > (uint64_t)INT64_MAX)
                return -EFBIG;
        if (getrlimit(RLIMIT_FSIZE, &rl) < 0)
                return sgl_negerrno();
        if (rl.rlim_cur != RLIM_INFINITY && size > (uint64_t)rl.rlim_cur)
                return -EFBIG;
        return 0;
}

/* A new memfd of @size bytes, not yet allocated or sealed. */
static int memfd_sized(const char *name, uint64_t size) {
        _cleanup_close_ int fd = -1;
        int r;

        r = check_size(size);
        if (r < 0)
                return r;
        fd = memfd_new(name);
        if (fd < 0)
                return fd;
        if (ftruncate(fd, (off_t)size) < 0)
                return sgl_negerrno();
        return TAKE_FD(fd);
}

int sgl_memfd_new_empty(const char *name) {
        return memfd_new(name);
}

int sgl_memfd_fill_sealed(int fd, const void *image, uint64_t len, uint64_t size) {
        int r;

        if (len > size || size - len >= SGL_MEMFD_ALIGN)
                return -EINVAL;
        r = check_size(size);
        if (r < 0)
                return r;
        if (ftruncate(fd, (off_t)size) < 0)
                return sgl_negerrno();
        /* pwrite allocates, zeroes and fills each page in one go: cheaper
         * than fallocate and then faulting the pages in through a mapping */
        for (uint64_t off = 0; off < len;) {
                ssize_t n = pwrite(fd, (const uint8_t *)image + off, len - off, (off_t)off);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? sgl_negerrno() : -EIO;
                off += (uint64_t)n;
        }
        /* the descriptor has not left its owner: every seal at once */
        return seal_size(fd, F_SEAL_WRITE | F_SEAL_SEAL);
}

int sgl_memfd_create_sealed(const char *name, const void *image, uint64_t len,
                            uint64_t size) {
        _cleanup_close_ int fd = memfd_new(name);
        int r;

        if (fd < 0)
                return fd;
        r = sgl_memfd_fill_sealed(fd, image, len, size);
        if (r < 0)
                return r;
        return TAKE_FD(fd);
}

/**
 * sgl_memfd_create() - a new sized, allocated and size-sealed memfd.
 * @name: debugging name shown in /proc/PID/fd (at most 249 bytes)
 * @size: bytes; a non-zero multiple of 4096
 *
 * Return: the read-write descriptor (O_CLOEXEC), -EINVAL on a bad size,
 * -EFBIG if @size does not fit in off_t or exceeds RLIMIT_FSIZE, -ENOSPC or
 * -ENOMEM if the memory cannot be allocated now, or another -errno.
 */
int sgl_memfd_create(const char *name, uint64_t size) {
        _cleanup_close_ int fd = -1;
        int r;

        fd = memfd_sized(name, size);
        if (fd < 0)
                return fd;
        /* Allocate every page now: a sealed segment must never be sparse,
         * or a reader's first touch of a hole would allocate memory (charged
         * to the reader) or fail under memory pressure.  Failing here, in
         * the writer, is the only place where that failure is harmless. */
        if (fallocate(fd, 0, 0, (off_t)size) < 0)
                return sgl_negerrno();

        r = seal_size(fd, 0);
        if (r < 0)
                return r;
        return TAKE_FD(fd);
}

/**
 * sgl_memfd_seal_future_write() - forbid new writable mappings and write(2).
 * @fd: a read-write descriptor of a memfd
 *
 * Mappings that already exist (the writer's own) stay writable.
 *
 * Return: 0, or -errno (-EPERM if the seals are sealed or @fd is read-only).
 */
int sgl_memfd_seal_future_write(int fd) {
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) < 0)
                return sgl_negerrno();
        return 0;
}

/**
 * sgl_memfd_seal_write() - make the memfd immutable for good.
 * @fd: a read-write descriptor of a memfd
 *
 * Adds F_SEAL_WRITE and F_SEAL_SEAL in one call, so no one can ever add or
 * remove anything afterwards.
 *
 * Return: 0; -EBUSY (as the kernel reports it) while any writable shared
 * mapping exists or a page is pinned (e.g. by a reader's vmsplice()): the
 * caller must then seal by copying instead of retrying; or another -errno.
 */
int sgl_memfd_seal_write(int fd) {
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SEAL) < 0)
                return sgl_negerrno();
        return 0;
}

/**
 * sgl_memfd_reopen_ro() - a new read-only file description of a memfd.
 * @fd: any descriptor of the memfd
 *
 * Not a dup(): the access mode belongs to the open file description, and the
 * one we hand out must be O_RDONLY so that whoever receives it can neither
 * map it writable, nor add seals, nor (through a mapping that counts as
 * writable) block F_SEAL_WRITE.
 *
 * Return: the new O_RDONLY|O_CLOEXEC descriptor, or -errno.
 */
int sgl_memfd_reopen_ro(int fd) {
        char path[sizeof("/proc/self/fd/") + 3 * sizeof(int)];
        int r;

        if (fd < 0)
                return -EBADF;

        snprintf(path, sizeof(path), "/proc/self/fd/%i", fd);
        r = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (r < 0)
                return sgl_negerrno();
        return r;
}

/*
 * sgl_memfd_verify() - check a received descriptor before anything maps it.
 * @fd: the descriptor, borrowed (never closed here)
 * @flags: SGL_VERIFY_WRITE_SEALED to require F_SEAL_WRITE (STRICT readers)
 * @ret_size: (optional) the file size on success
 * @ret_write_sealed: (optional) whether F_SEAL_WRITE is set, on success
 *
 * The checks run in this order, so a descriptor with several faults reports
 * the first:
 *   -EMEDIUMTYPE  not a regular file, not on tmpfs (pipe, socket, FIFO, file
 *                 on disk, hugetlbfs, secretmem, anon inode...), or
 *                 F_GET_SEALS fails (not sealable, O_PATH descriptor)
 *   -ENOLCK       F_SEAL_SHRINK or F_SEAL_GROW missing (also: any tmpfs file
 *                 that is not a memfd, whose only seal is F_SEAL_SEAL)
 *   -ENOEXEC      an exec bit is set
 *   -EBADMSG      size is 0 or not a multiple of 4096
 *   -ENODATA      sparse: fewer bytes allocated than the size
 *   -EACCES       F_SEAL_WRITE missing and SGL_VERIFY_WRITE_SEALED asked
 *                 (F_SEAL_FUTURE_WRITE does not count: it leaves existing
 *                 writable mappings writable); without that flag, neither
 *                 F_SEAL_WRITE nor F_SEAL_FUTURE_WRITE is set (then the
 *                 writer could still punch holes that the reader's page
 *                 faults would have to allocate)
 * plus -EINVAL for unknown @flags and the errno of a failing fstat() or
 * fstatfs() (e.g. -EBADF).
 *
 * Unless F_SEAL_WRITE is set the answers about exec bits and allocation are
 * a snapshot: a hostile writer may change them later.  The size, guarded by
 * SHRINK|GROW, is not.
 *
 * Return: 0 and the out-parameters set, or -errno and them untouched.
 */
int sgl_memfd_verify(int fd, unsigned flags, uint64_t *ret_size,
                     bool *ret_write_sealed) {
        struct stat st;
        int r;

        r = sgl_memfd_verify_stat(fd, flags, &st, ret_write_sealed);
        if (r < 0)
                return r;
        if (ret_size)
                *ret_size = (uint64_t)st.st_size;
        return 0;
}

int sgl_memfd_verify_stat(int fd, unsigned flags, struct stat *ret_st,
                          bool *ret_write_sealed) {
        struct statfs sfs;
        struct stat st;
        int seals;

        if (flags & ~(unsigned)SGL_VERIFY_WRITE_SEALED)
                return -EINVAL;

        if (fstat(fd, &st) < 0)
                return sgl_negerrno();
        /* S_ISREG first: device nodes such as /dev/zero live on devtmpfs,
         * which reports TMPFS_MAGIC too. */
        if (!S_ISREG(st.st_mode))
                return -EMEDIUMTYPE;

        if (fstatfs(fd, &sfs) < 0)
                return sgl_negerrno();
        /* Only shmem: hugetlbfs (HUGETLBFS_MAGIC, also MFD_HUGETLB memfds)
         * has other fault and accounting rules, and files on real file
         * systems can be truncated or changed behind the mapping. */
        if ((uint64_t)sfs.f_type != (uint64_t)TMPFS_MAGIC)
                return -EMEDIUMTYPE;

        seals = fcntl(fd, F_GET_SEALS);
        if (seals < 0)
                return -EMEDIUMTYPE;

        /* Without both, the writer could shrink the file under a reader's
         * mapping (SIGBUS) or grow it (size no longer what we checked). */
        if ((seals & SGL_SEALS_BASE) != SGL_SEALS_BASE)
                return -ENOLCK;

        if (st.st_mode & 0111)
                return -ENOEXEC;

        if (st.st_size <= 0 || (uint64_t)st.st_size % SGL_MEMFD_ALIGN != 0)
                return -EBADMSG;

        /* tmpfs counts swapped-out pages in st_blocks too, so this only
         * catches holes, which a reader's fault would have to allocate. */
        if ((uint64_t)st.st_blocks * 512 < (uint64_t)st.st_size)
                return -ENODATA;

        if ((flags & SGL_VERIFY_WRITE_SEALED) && !(seals & F_SEAL_WRITE))
                return -EACCES;
        if (!(seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)))
                return -EACCES;

        if (ret_st)
                *ret_st = st;
        if (ret_write_sealed)
                *ret_write_sealed = !!(seals & F_SEAL_WRITE);
        return 0;
}
