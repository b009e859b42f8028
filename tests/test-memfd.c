/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-memfd.c - src/memfd.c against the real kernel: real memfds, real
 * seals, and every kind of descriptor a hostile peer could send in place of
 * a segment.
 *
 * Invariants: every test checks it leaks no descriptor; tests that need root
 * or a kernel feature skip() cleanly without it.
 */

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/magic.h>
#include <linux/seccomp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "internal.h"
#include "memfd.h"
#include "test-util.h"

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
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
#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif

#define PAGE 4096u

/* Whether this kernel has MFD_NOEXEC_SEAL (and so F_SEAL_EXEC). */
static bool have_noexec_seal(void) {
        int fd = memfd_create("probe", MFD_CLOEXEC | MFD_NOEXEC_SEAL);

        if (fd < 0)
                return false;
        close(fd);
        return true;
}

/*
 * A memfd built by hand the way a hostile or buggy writer might: @size
 * bytes, allocated or sparse, with exactly @seals added, mode @mode.
 */
static int raw_memfd(uint64_t size, bool allocate, int seals, mode_t mode) {
        int fd;

        fd = memfd_create("raw", MFD_CLOEXEC | MFD_ALLOW_SEALING |
                                 MFD_NOEXEC_SEAL);
        if (fd < 0 && errno == EINVAL)
                fd = memfd_create("raw", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        assert_true(fd >= 0);
        assert_int_equal(fchmod(fd, mode), 0);
        assert_int_equal(ftruncate(fd, (off_t)size), 0);
        if (allocate && size > 0)
                assert_int_equal(fallocate(fd, 0, 0, (off_t)size), 0);
        if (seals)
                assert_int_equal(fcntl(fd, F_ADD_SEALS, seals), 0);
        return fd;
}

/* Runs sgl_memfd_verify() with sentinels in the out-parameters, checks that
 * failure leaves them and @fd alone, and returns its result. */
static int verify(int fd, unsigned flags) {
        uint64_t size = 0xdeadbeefULL;
        bool ws = true;
        int r;

        r = sgl_memfd_verify(fd, flags, &size, &ws);
        /* Borrowed, never closed. */
        assert_true(fcntl(fd, F_GETFD) >= 0);
        if (r < 0) {
                assert_int_equal(size, 0xdeadbeefULL);
                assert_true(ws);
        }
        return r;
}

/* A directory whose file system is not tmpfs, or NULL. */
static const char *disk_dir(void) {
        static const char *const candidates[] = { ".", "/var/tmp", "/tmp" };

        for (size_t i = 0; i < ELEMENTSOF(candidates); i++) {
                struct statfs sfs;

                if (statfs(candidates[i], &sfs) < 0)
                        continue;
                if ((uint64_t)sfs.f_type != (uint64_t)TMPFS_MAGIC &&
                    (uint64_t)sfs.f_type != (uint64_t)HUGETLBFS_MAGIC &&
                    access(candidates[i], W_OK) == 0)
                        return candidates[i];
        }
        return NULL;
}

/* An unnamed, fully allocated regular file of @size bytes in @dir. */
static int tmpfile_in(const char *dir, uint64_t size) {
        int fd;

        fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0) {
                char *path;

                assert_true(asprintf(&path, "%s/sigillo-test.XXXXXX",
                                     dir) > 0);
                fd = mkostemp(path, O_CLOEXEC);
                assert_true(fd >= 0);
                assert_int_equal(unlink(path), 0);
                free(path);
        }
        assert_int_equal(ftruncate(fd, (off_t)size), 0);
        assert_int_equal(fallocate(fd, 0, 0, (off_t)size), 0);
        return fd;
}

/* ------------------------------------------------------------- create */

static void test_create(void **state) {
        unsigned nfds = tu_count_fds();
        int expected_seals = SGL_SEALS_BASE;
        struct statfs sfs;
        struct stat st;
        uint8_t *p;
        int fd;

        (void)state;
        if (have_noexec_seal())
                expected_seals |= F_SEAL_EXEC;

        fd = sgl_memfd_create("sigillo-test", 3 * PAGE);
        assert_true(fd >= 0);

        assert_int_equal(fcntl(fd, F_GET_SEALS), expected_seals);
        assert_int_equal(fcntl(fd, F_GETFD), FD_CLOEXEC);
        assert_int_equal(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);

        assert_int_equal(fstat(fd, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(st.st_size, 3 * PAGE);
        assert_true((uint64_t)st.st_blocks * 512 >= 3 * PAGE);
        assert_int_equal(st.st_mode & 0111, 0);
        assert_int_equal(fstatfs(fd, &sfs), 0);
        assert_int_equal((uint64_t)sfs.f_type, (uint64_t)TMPFS_MAGIC);

        /* The size seals hold... */
        assert_int_equal(ftruncate(fd, 4 * PAGE), -1);
        assert_int_equal(errno, EPERM);
        assert_int_equal(ftruncate(fd, PAGE), -1);
        assert_int_equal(errno, EPERM);
        assert_int_equal(fallocate(fd, 0, 0, 4 * PAGE), -1);
        assert_int_equal(errno, EPERM);
        /* ...and so does the exec seal where the kernel has one. */
        if (expected_seals & F_SEAL_EXEC) {
                assert_int_equal(fchmod(fd, 0755), -1);
                assert_int_equal(errno, EPERM);
        }

        /* Still writable: nothing but the size is sealed yet. */
        p = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        assert_true(p != MAP_FAILED);
        assert_int_equal(p[3 * PAGE - 1], 0);
        p[3 * PAGE - 1] = 0x5a;
        assert_int_equal(munmap(p, 3 * PAGE), 0);
        assert_int_equal(pwrite(fd, "x", 1, 0), 1);

        /* Fresh from create, no reader accepts it yet: the writer could
         * still punch holes.  Once the writer adds FUTURE_WRITE (after
         * mapping it), a TRUSTED reader does; STRICT waits for WRITE. */
        assert_int_equal(verify(fd, 0), -EACCES);
        assert_int_equal(sgl_memfd_seal_future_write(fd), 0);
        assert_int_equal(verify(fd, 0), 0);
        assert_int_equal(verify(fd, SGL_VERIFY_WRITE_SEALED), -EACCES);

        close(fd);
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_create_bad_size(void **state) {
        static const uint64_t bad[] = {
                0, 1, PAGE - 1, PAGE + 1, 3 * PAGE / 2, UINT64_MAX,
        };
        unsigned nfds = tu_count_fds();

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(sgl_memfd_create("bad", bad[i]), -EINVAL);
        /* Page-aligned but beyond off_t. */
        assert_int_equal(sgl_memfd_create("big", 1ULL << 63), -EFBIG);
        assert_int_equal(sgl_memfd_create("big", UINT64_MAX & ~(uint64_t)(PAGE - 1)),
                         -EFBIG);
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_create_bad_name(void **state) {
        unsigned nfds = tu_count_fds();
        char name[300];

        (void)state;
        /* The kernel limits names to 249 bytes: both memfd_create() calls
         * fail with EINVAL, and nothing leaks. */
        memset(name, 'n', sizeof(name) - 1);
        name[sizeof(name) - 1] = 0;
        assert_int_equal(sgl_memfd_create(name, PAGE), -EINVAL);
        assert_int_equal(tu_count_fds(), nfds);
}

static int child_fsize(void *userdata) {
        struct rlimit rl = { .rlim_cur = 2 * PAGE, .rlim_max = 2 * PAGE };
        unsigned nfds;
        int fd;

        (void)userdata;
        nfds = tu_count_fds();
        TU_CHILD_CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);

        /* Would raise SIGXFSZ (and kill us) if the library tried. */
        TU_CHILD_CHECK(sgl_memfd_create("fsize", 4 * PAGE) == -EFBIG);
        TU_CHILD_CHECK(tu_count_fds() == nfds);

        fd = sgl_memfd_create("fsize", 2 * PAGE);
        TU_CHILD_CHECK(fd >= 0);
        close(fd);
        TU_CHILD_CHECK(tu_count_fds() == nfds);
        return 0;
}

static void test_create_fsize_limit(void **state) {
        (void)state;
        tu_wait_exit(tu_fork(child_fsize, NULL), 0);
}

/*
 * The fallback paths only run on kernels older than this one, or when
 * allocation fails: make the kernel look that way with a seccomp filter in a
 * child.  No arch check: the filter only ever turns calls into errors, so a
 * foreign-ABI syscall that matched by accident would fail, not escape.
 */
#if __BYTE_ORDER == __LITTLE_ENDIAN
#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i))
#else
#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i) + 4)
#endif
#define LD(off) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (off))
#define RET_ERRNO(e) BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (e))
#define RET_ALLOW BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
/* 32-bit arches reach fcntl() through fcntl64. */
#ifdef __NR_fcntl64
#define NR_FCNTL __NR_fcntl64
#else
#define NR_FCNTL __NR_fcntl
#endif

static int install_filter(struct sock_filter *insns, size_t n) {
        struct sock_fprog prog = {
                .len = (unsigned short)n,
                .filter = insns,
        };

        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return -errno;
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
                return -errno;
        return 0;
}

/* A kernel before 6.3: MFD_NOEXEC_SEAL and F_SEAL_EXEC are EINVAL. */
static int child_old_kernel(void *userdata) {
        struct sock_filter insns[] = {
                LD(offsetof(struct seccomp_data, nr)),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_memfd_create, 0, 3),
                LD(ARG_LO(1)),
                BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, MFD_NOEXEC_SEAL, 0, 1),
                RET_ERRNO(EINVAL),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NR_FCNTL, 0, 5),
                LD(ARG_LO(1)),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, F_ADD_SEALS, 0, 3),
                LD(ARG_LO(2)),
                BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, F_SEAL_EXEC, 0, 1),
                RET_ERRNO(EINVAL),
                RET_ALLOW,
        };
        unsigned nfds;
        struct stat st;
        int fd;

        (void)userdata;
        TU_CHILD_CHECK(install_filter(insns, ELEMENTSOF(insns)) == 0);
        /* The filter works: */
        TU_CHILD_CHECK(memfd_create("x", MFD_NOEXEC_SEAL) < 0 &&
                       errno == EINVAL);

        nfds = tu_count_fds();
        fd = sgl_memfd_create("old-kernel", 2 * PAGE);
        TU_CHILD_CHECK(fd >= 0);
        TU_CHILD_CHECK(fcntl(fd, F_GET_SEALS) == SGL_SEALS_BASE);
        TU_CHILD_CHECK(fstat(fd, &st) == 0);
        /* Old kernels create memfds 0777: the fchmod() must have run. */
        TU_CHILD_CHECK((st.st_mode & 07777) == 0600);
        TU_CHILD_CHECK((uint64_t)st.st_blocks * 512 >= 2 * PAGE);
        TU_CHILD_CHECK(sgl_memfd_seal_future_write(fd) == 0);
        TU_CHILD_CHECK(sgl_memfd_verify(fd, 0, NULL, NULL) == 0);
        close(fd);
        TU_CHILD_CHECK(tu_count_fds() == nfds);
        return 0;
}

static void test_create_old_kernel(void **state) {
        (void)state;
        tu_wait_exit(tu_fork(child_old_kernel, NULL), 0);
}

/* Allocation fails (as under a memory cgroup or tmpfs limit). */
static int child_no_memory(void *userdata) {
        int err = (int)(intptr_t)userdata;
        struct sock_filter insns[] = {
                LD(offsetof(struct seccomp_data, nr)),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_fallocate, 0, 1),
                RET_ERRNO((unsigned)err),
                RET_ALLOW,
        };
        unsigned nfds;

        TU_CHILD_CHECK(install_filter(insns, ELEMENTSOF(insns)) == 0);
        nfds = tu_count_fds();
        TU_CHILD_CHECK(sgl_memfd_create("no-memory", PAGE) == -err);
        TU_CHILD_CHECK(tu_count_fds() == nfds);
        return 0;
}

static void test_create_no_memory(void **state) {
        (void)state;
        tu_wait_exit(tu_fork(child_no_memory, (void *)(intptr_t)ENOSPC), 0);
        tu_wait_exit(tu_fork(child_no_memory, (void *)(intptr_t)ENOMEM), 0);
}

/* ---------------------------------------------------------- reopen_ro */

static void test_reopen_ro(void **state) {
        unsigned nfds = tu_count_fds();
        uint8_t *rw, *ro;
        int fd, rofd;

        (void)state;
        fd = sgl_memfd_create("ro", 2 * PAGE);
        assert_true(fd >= 0);
        rw = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        assert_true(rw != MAP_FAILED);

        rofd = sgl_memfd_reopen_ro(fd);
        assert_true(rofd >= 0);
        assert_true(rofd != fd);
        assert_int_equal(fcntl(rofd, F_GETFD), FD_CLOEXEC);
        assert_int_equal(fcntl(rofd, F_GETFL) & O_ACCMODE, O_RDONLY);
        /* The original description keeps its mode: reopening is no dup. */
        assert_int_equal(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
        /* ...nor does it share the file offset. */
        assert_int_equal(lseek(fd, PAGE, SEEK_SET), PAGE);
        assert_int_equal(lseek(rofd, 0, SEEK_CUR), 0);

        /* No writable shared mapping, by mmap or by mprotect. */
        assert_true(mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED,
                         rofd, 0) == MAP_FAILED);
        assert_int_equal(errno, EACCES);
        ro = mmap(NULL, 2 * PAGE, PROT_READ, MAP_SHARED, rofd, 0);
        assert_true(ro != MAP_FAILED);
        assert_int_equal(mprotect(ro, PAGE, PROT_READ | PROT_WRITE), -1);
        assert_int_equal(errno, EACCES);

        /* Same memory: the writer's bytes show through. */
        rw[PAGE + 7] = 0x42;
        assert_int_equal(ro[PAGE + 7], 0x42);

        /* No write(2), no truncation, no seals through it. */
        assert_int_equal(pwrite(rofd, "x", 1, 0), -1);
        assert_int_equal(errno, EBADF);
        assert_int_equal(ftruncate(rofd, PAGE), -1);
        assert_int_equal(fcntl(rofd, F_ADD_SEALS, F_SEAL_SEAL), -1);
        assert_int_equal(errno, EPERM);
        assert_int_equal(sgl_memfd_seal_write(rofd), -EPERM);
        assert_int_equal(sgl_memfd_seal_future_write(rofd), -EPERM);

        /* Reopening the read-only one stays read-only. */
        {
                int ro2 = sgl_memfd_reopen_ro(rofd);

                assert_true(ro2 >= 0);
                assert_int_equal(fcntl(ro2, F_GETFL) & O_ACCMODE, O_RDONLY);
                close(ro2);
        }

        assert_int_equal(munmap(ro, 2 * PAGE), 0);
        assert_int_equal(munmap(rw, 2 * PAGE), 0);
        close(rofd);
        close(fd);
        assert_int_equal(sgl_memfd_reopen_ro(-1), -EBADF);
        assert_int_equal(sgl_memfd_reopen_ro(fd), -ENOENT);
        assert_int_equal(tu_count_fds(), nfds);
}

/* -------------------------------------------------------------- seals */

static void test_seal_future_write(void **state) {
        unsigned nfds = tu_count_fds();
        uint8_t *rw, *ro;
        int fd;

        (void)state;
        fd = sgl_memfd_create("fw", PAGE);
        assert_true(fd >= 0);
        rw = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        assert_true(rw != MAP_FAILED);

        assert_int_equal(sgl_memfd_seal_future_write(fd), 0);
        assert_true(fcntl(fd, F_GET_SEALS) & F_SEAL_FUTURE_WRITE);

        /* Not even the RW description can make a new writable mapping... */
        assert_true(mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                         0) == MAP_FAILED);
        assert_int_equal(errno, EPERM);
        assert_int_equal(pwrite(fd, "x", 1, 0), -1);
        assert_int_equal(errno, EPERM);
        /* ...or punch a hole that a reader's fault would refill. */
        assert_int_equal(fallocate(fd, FALLOC_FL_PUNCH_HOLE |
                                       FALLOC_FL_KEEP_SIZE, 0, PAGE), -1);
        assert_int_equal(errno, EPERM);

        /* The writer's own existing mapping stays writable. */
        rw[0] = 1;
        ro = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0);
        assert_true(ro != MAP_FAILED);
        assert_int_equal(ro[0], 1);

        /* Idempotent. */
        assert_int_equal(sgl_memfd_seal_future_write(fd), 0);

        assert_int_equal(munmap(ro, PAGE), 0);
        assert_int_equal(munmap(rw, PAGE), 0);
        close(fd);
        assert_int_equal(sgl_memfd_seal_future_write(-1), -EBADF);
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_seal_write(void **state) {
        unsigned nfds = tu_count_fds();
        uint8_t *rw, *ro;
        int fd, rofd;

        (void)state;
        fd = sgl_memfd_create("w", 2 * PAGE);
        assert_true(fd >= 0);
        rofd = sgl_memfd_reopen_ro(fd);
        assert_true(rofd >= 0);

        rw = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        assert_true(rw != MAP_FAILED);
        rw[0] = 7;
        /* The normal writer path: FUTURE_WRITE first, mapping kept. */
        assert_int_equal(sgl_memfd_seal_future_write(fd), 0);

        /* A reader's read-only mapping does not count as writable. */
        ro = mmap(NULL, 2 * PAGE, PROT_READ, MAP_SHARED, rofd, 0);
        assert_true(ro != MAP_FAILED);

        /* The writer's live writable mapping does. */
        assert_int_equal(sgl_memfd_seal_write(fd), -EBUSY);
        assert_false(fcntl(fd, F_GET_SEALS) & (F_SEAL_WRITE | F_SEAL_SEAL));

        assert_int_equal(munmap(rw, 2 * PAGE), 0);
        assert_int_equal(sgl_memfd_seal_write(fd), 0);
        assert_int_equal(fcntl(fd, F_GET_SEALS) &
                                 (SGL_SEALS_BASE | F_SEAL_WRITE | F_SEAL_SEAL),
                         SGL_SEALS_BASE | F_SEAL_WRITE | F_SEAL_SEAL);

        /* Immutable for everyone, the RW description included. */
        assert_true(mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                         0) == MAP_FAILED);
        assert_int_equal(pwrite(fd, "x", 1, 0), -1);
        assert_int_equal(errno, EPERM);
        /* F_SEAL_SEAL: nothing more can be added (or retried). */
        assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE), -1);
        assert_int_equal(errno, EPERM);
        assert_int_equal(sgl_memfd_seal_write(fd), -EPERM);
        assert_int_equal(ro[0], 7);

        assert_int_equal(munmap(ro, 2 * PAGE), 0);
        close(rofd);
        close(fd);
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_seal_write_pinned(void **state) {
        unsigned nfds = tu_count_fds();
        struct iovec iov;
        int fd, rofd, pipefd[2], r;
        uint8_t *ro;

        (void)state;
        fd = sgl_memfd_create("pin", PAGE);
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, "pinned", 6, 0), 6);
        rofd = sgl_memfd_reopen_ro(fd);
        assert_true(rofd >= 0);

        /* What a hostile reader can do with nothing but a read-only
         * mapping: vmsplice() a page into a pipe it never drains. */
        ro = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, rofd, 0);
        assert_true(ro != MAP_FAILED);
        assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
        iov = (struct iovec){ .iov_base = ro, .iov_len = PAGE };
        if (vmsplice(pipefd[1], &iov, 1, 0) != (ssize_t)PAGE) {
                munmap(ro, PAGE);
                close(pipefd[0]);
                close(pipefd[1]);
                close(rofd);
                close(fd);
                skip();
        }
        /* Gone from the reader's address space, still referenced. */
        assert_int_equal(munmap(ro, PAGE), 0);
        close(rofd);

        r = sgl_memfd_seal_write(fd);
        assert_int_equal(r, -EBUSY);

        close(pipefd[0]);
        close(pipefd[1]);
        assert_int_equal(sgl_memfd_seal_write(fd), 0);
        close(fd);
        assert_int_equal(tu_count_fds(), nfds);
}

/* ------------------------------------------------------- verify: accept */

static void test_verify_accepts(void **state) {
        unsigned nfds = tu_count_fds();
        uint64_t size = 0;
        bool ws = true;
        int fd, rofd;

        (void)state;
        fd = sgl_memfd_create("ok", 5 * PAGE);
        assert_true(fd >= 0);
        assert_int_equal(sgl_memfd_seal_future_write(fd), 0);
        rofd = sgl_memfd_reopen_ro(fd);
        assert_true(rofd >= 0);

        /* Open segment: TRUSTED accepts, STRICT refuses. */
        assert_int_equal(sgl_memfd_verify(rofd, 0, &size, &ws), 0);
        assert_int_equal(size, 5 * PAGE);
        assert_false(ws);
        assert_int_equal(verify(rofd, SGL_VERIFY_WRITE_SEALED), -EACCES);

        /* FUTURE_WRITE is no substitute for WRITE. */
        assert_int_equal(sgl_memfd_seal_future_write(fd), 0);
        assert_int_equal(verify(rofd, SGL_VERIFY_WRITE_SEALED), -EACCES);

        /* Sealed segment: both accept, both say so. */
        assert_int_equal(sgl_memfd_seal_write(fd), 0);
        size = 0;
        ws = false;
        assert_int_equal(sgl_memfd_verify(rofd, SGL_VERIFY_WRITE_SEALED,
                                          &size, &ws), 0);
        assert_int_equal(size, 5 * PAGE);
        assert_true(ws);
        size = 0;
        ws = false;
        assert_int_equal(sgl_memfd_verify(fd, 0, &size, &ws), 0);
        assert_int_equal(size, 5 * PAGE);
        assert_true(ws);

        /* Out-parameters are optional. */
        assert_int_equal(sgl_memfd_verify(rofd, SGL_VERIFY_WRITE_SEALED,
                                          NULL, NULL), 0);

        /* The descriptor stays open and usable. */
        assert_int_equal(fcntl(rofd, F_GETFD), FD_CLOEXEC);
        close(rofd);
        close(fd);
        assert_int_equal(tu_count_fds(), nfds);
}

/* ------------------------------------------ verify: not a tmpfs file */

static void test_verify_pipe_socket(void **state) {
        unsigned nfds = tu_count_fds();
        int p[2], s[2], efd;

        (void)state;
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(verify(p[0], 0), -EMEDIUMTYPE);
        assert_int_equal(verify(p[1], SGL_VERIFY_WRITE_SEALED), -EMEDIUMTYPE);

        tu_socketpair(s);
        assert_int_equal(verify(s[0], 0), -EMEDIUMTYPE);

        /* Anonymous inodes have no file type of their own. */
        efd = eventfd(0, EFD_CLOEXEC);
        assert_true(efd >= 0);
        assert_int_equal(verify(efd, 0), -EMEDIUMTYPE);

        close(efd);
        close(s[0]);
        close(s[1]);
        close(p[0]);
        close(p[1]);
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_verify_fifo(void **state) {
        unsigned nfds = tu_count_fds();
        char *dir, *path;
        int fd;

        (void)state;
        dir = tu_mkdtemp(NULL);
        assert_true(asprintf(&path, "%s/fifo", dir) > 0);
        assert_int_equal(mkfifo(path, 0600), 0);
        /* O_RDWR: Linux opens a FIFO without waiting for a peer then. */
        fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
        assert_true(fd >= 0);

        assert_int_equal(verify(fd, 0), -EMEDIUMTYPE);

        close(fd);
        free(path);
        tu_rm_rf(dir);
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_verify_dev_zero(void **state) {
        unsigned nfds = tu_count_fds();
        int fd;

        (void)state;
        /* devtmpfs says TMPFS_MAGIC: only S_ISREG tells it apart. */
        fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                skip();
        assert_int_equal(verify(fd, 0), -EMEDIUMTYPE);
        close(fd);

        /* A directory on tmpfs is no better. */
        fd = open("/dev/shm", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
                assert_int_equal(verify(fd, 0), -EMEDIUMTYPE);
                close(fd);
        }
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_verify_disk_file(void **state) {
        unsigned nfds = tu_count_fds();
        const char *dir;
        int fd;

        (void)state;
        dir = disk_dir();
        if (!dir)
                skip();
        fd = tmpfile_in(dir, 2 * PAGE);
        assert_int_equal(verify(fd, 0), -EMEDIUMTYPE);
        close(fd);
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_verify_dev_shm_file(void **state) {
        unsigned nfds = tu_count_fds();
        struct statfs sfs;
        int fd;

        (void)state;
        if (statfs("/dev/shm", &sfs) < 0 ||
            (uint64_t)sfs.f_type != (uint64_t)TMPFS_MAGIC ||
            access("/dev/shm", W_OK) < 0)
                skip();

        /* The speculo-era segment: a plain tmpfs file, right file system,
         * allocated, no exec bit, but it can never be size-sealed (its only
         * seal is F_SEAL_SEAL). */
        fd = tmpfile_in("/dev/shm", 2 * PAGE);
        assert_int_equal(fcntl(fd, F_GET_SEALS), F_SEAL_SEAL);
        assert_int_equal(verify(fd, 0), -ENOLCK);
        close(fd);
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_verify_hugetlb_memfd(void **state) {
        unsigned nfds = tu_count_fds();
        int fd;

        (void)state;
        /* Needs no huge page reserved until something faults. */
        fd = memfd_create("huge", MFD_CLOEXEC | MFD_ALLOW_SEALING |
                                  MFD_HUGETLB);
        if (fd < 0)
                skip();
        assert_int_equal(verify(fd, 0), -EMEDIUMTYPE);
        close(fd);
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_verify_hugetlbfs_mount(void **state) {
        unsigned nfds = tu_count_fds();
        char *dir, *path;
        int fd;

        (void)state;
        if (!tu_is_root())
                skip();
        dir = tu_mkdtemp(NULL);
        if (mount("none", dir, "hugetlbfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  NULL) < 0) {
                tu_rm_rf(dir);
                skip();
        }
        assert_true(asprintf(&path, "%s/file", dir) > 0);
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
                assert_int_equal(verify(fd, 0), -EMEDIUMTYPE);
                close(fd);
                assert_int_equal(unlink(path), 0);
        }
        free(path);
        assert_int_equal(umount2(dir, MNT_DETACH), 0);
        tu_rm_rf(dir);
        assert_int_equal(fd >= 0, true);
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_verify_secretmem(void **state) {
        unsigned nfds = tu_count_fds();
        int fd;

        (void)state;
#ifdef SYS_memfd_secret
        fd = (int)syscall(SYS_memfd_secret, O_CLOEXEC);
#else
        fd = -1;
#endif
        /* Not enabled on every kernel (secretmem.enable, arch support). */
        if (fd < 0)
                skip();
        assert_int_equal(ftruncate(fd, PAGE), 0);
        assert_int_equal(verify(fd, 0), -EMEDIUMTYPE);
        close(fd);
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_verify_o_path(void **state) {
        unsigned nfds = tu_count_fds();
        char path[64];
        int fd, pfd;

        (void)state;
        fd = sgl_memfd_create("opath", PAGE);
        assert_true(fd >= 0);
        assert_int_equal(sgl_memfd_seal_write(fd), 0);

        /* Passes fstat() and fstatfs(), but can be neither queried for
         * seals nor mapped. */
        snprintf(path, sizeof(path), "/proc/self/fd/%i", fd);
        pfd = open(path, O_PATH | O_CLOEXEC);
        assert_true(pfd >= 0);
        assert_int_equal(verify(pfd, 0), -EMEDIUMTYPE);

        close(pfd);
        close(fd);
        assert_int_equal(tu_count_fds(), nfds);
}

/* ---------------------------------------------- verify: wrong seals */

static void test_verify_seals(void **state) {
        static const struct {
                int seals;
                unsigned flags;
                int expect;
        } cases[] = {
                { 0, 0, -ENOLCK },
                { F_SEAL_SHRINK, 0, -ENOLCK },
                { F_SEAL_GROW, 0, -ENOLCK },
                { F_SEAL_WRITE, 0, -ENOLCK },
                { F_SEAL_SHRINK | F_SEAL_WRITE | F_SEAL_SEAL, 0, -ENOLCK },
                { F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL, 0, -ENOLCK },
                { F_SEAL_SEAL, 0, -ENOLCK },
                /* a TRUSTED reader needs FUTURE_WRITE at least: else the
                 * writer could punch holes its faults would allocate */
                { F_SEAL_SHRINK | F_SEAL_GROW, 0, -EACCES },
                { F_SEAL_SHRINK | F_SEAL_GROW, SGL_VERIFY_WRITE_SEALED,
                  -EACCES },
                { F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE, 0, 0 },
                { F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE,
                  SGL_VERIFY_WRITE_SEALED, -EACCES },
                { F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE |
                  F_SEAL_SEAL, SGL_VERIFY_WRITE_SEALED, -EACCES },
                /* WRITE without SEAL is still WRITE. */
                { F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE,
                  SGL_VERIFY_WRITE_SEALED, 0 },
                { F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL,
                  SGL_VERIFY_WRITE_SEALED, 0 },
        };
        unsigned nfds = tu_count_fds();

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                int fd = raw_memfd(2 * PAGE, true, cases[i].seals, 0600);

                if (verify(fd, cases[i].flags) != cases[i].expect)
                        fail_msg("case %zu: seals 0x%x flags %u: got %d, "
                                 "expected %d", i, (unsigned)cases[i].seals,
                                 cases[i].flags, verify(fd, cases[i].flags),
                                 cases[i].expect);
                close(fd);
        }
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_verify_not_sealable(void **state) {
        unsigned nfds = tu_count_fds();
        int fd;

        (void)state;
        /* A memfd created without MFD_ALLOW_SEALING is born F_SEAL_SEAL. */
        fd = memfd_create("nosealing", MFD_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(fchmod(fd, 0600), 0);
        assert_int_equal(ftruncate(fd, PAGE), 0);
        assert_int_equal(fallocate(fd, 0, 0, PAGE), 0);
        assert_int_equal(verify(fd, 0), -ENOLCK);
        close(fd);
        assert_int_equal(tu_count_fds(), nfds);
}

/* --------------------------------------- verify: mode, size, holes */

static void test_verify_exec_bit(void **state) {
        unsigned nfds = tu_count_fds();
        int fd;

        (void)state;
        fd = memfd_create("exec", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
        if (fd < 0 && errno == EINVAL)
                fd = memfd_create("exec", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        /* vm.memfd_noexec=2 forbids executable memfds altogether. */
        if (fd < 0 && errno == EACCES)
                skip();
        assert_true(fd >= 0);
        assert_int_equal(fchmod(fd, 0755), 0);
        assert_int_equal(ftruncate(fd, 2 * PAGE), 0);
        assert_int_equal(fallocate(fd, 0, 0, 2 * PAGE), 0);
        assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW |
                                                F_SEAL_WRITE), 0);
        assert_int_equal(verify(fd, 0), -ENOEXEC);
        assert_int_equal(verify(fd, SGL_VERIFY_WRITE_SEALED), -ENOEXEC);

        /* Any one exec bit is enough. */
        assert_int_equal(fchmod(fd, 0601), 0);
        assert_int_equal(verify(fd, 0), -ENOEXEC);
        assert_int_equal(fchmod(fd, 0600), 0);
        assert_int_equal(verify(fd, SGL_VERIFY_WRITE_SEALED), 0);
        close(fd);
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_verify_sparse(void **state) {
        unsigned nfds = tu_count_fds();
        int fd;

        (void)state;
        /* Never allocated at all. */
        fd = raw_memfd(4 * PAGE, false, F_SEAL_SHRINK | F_SEAL_GROW |
                                        F_SEAL_WRITE | F_SEAL_SEAL, 0600);
        assert_int_equal(verify(fd, 0), -ENODATA);
        assert_int_equal(verify(fd, SGL_VERIFY_WRITE_SEALED), -ENODATA);
        close(fd);

        /* One page written, one hole left. */
        fd = raw_memfd(2 * PAGE, false, 0, 0600);
        assert_int_equal(pwrite(fd, "x", 1, 0), 1);
        assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW |
                                                F_SEAL_FUTURE_WRITE), 0);
        assert_int_equal(verify(fd, 0), -ENODATA);
        /* Sparse is reported before the missing WRITE seal. */
        assert_int_equal(verify(fd, SGL_VERIFY_WRITE_SEALED), -ENODATA);

        /* Filling the hole fixes it. */
        assert_int_equal(fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 2 * PAGE), 0);
        assert_int_equal(verify(fd, 0), 0);
        close(fd);
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_verify_size(void **state) {
        unsigned nfds = tu_count_fds();
        int fd;

        (void)state;
        fd = raw_memfd(0, false, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE,
                       0600);
        assert_int_equal(verify(fd, 0), -EBADMSG);
        close(fd);

        fd = raw_memfd(PAGE + 1, true, F_SEAL_SHRINK | F_SEAL_GROW |
                                       F_SEAL_WRITE, 0600);
        assert_int_equal(verify(fd, SGL_VERIFY_WRITE_SEALED), -EBADMSG);
        close(fd);

        fd = raw_memfd(PAGE / 2, true, F_SEAL_SHRINK | F_SEAL_GROW, 0600);
        assert_int_equal(verify(fd, 0), -EBADMSG);
        close(fd);
        assert_int_equal(tu_count_fds(), nfds);
}

/* ------------------------------------- verify: the calling contract */

static void test_verify_contract(void **state) {
        unsigned nfds = tu_count_fds();
        uint64_t size = 12345;
        bool ws = true;
        int p[2], fd;

        (void)state;
        /* Failure: descriptor open, out-parameters as they were. */
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(sgl_memfd_verify(p[0], SGL_VERIFY_WRITE_SEALED,
                                          &size, &ws), -EMEDIUMTYPE);
        assert_int_equal(size, 12345);
        assert_true(ws);
        assert_int_equal(fcntl(p[0], F_GETFD), FD_CLOEXEC);
        assert_int_equal(write(p[1], "x", 1), 1);
        close(p[0]);
        close(p[1]);

        fd = sgl_memfd_create("contract", PAGE);
        assert_true(fd >= 0);
        assert_int_equal(sgl_memfd_seal_future_write(fd), 0);
        assert_int_equal(sgl_memfd_verify(fd, SGL_VERIFY_WRITE_SEALED,
                                          &size, &ws), -EACCES);
        assert_int_equal(size, 12345);
        assert_true(ws);

        /* Unknown flags are refused, not ignored. */
        assert_int_equal(sgl_memfd_verify(fd, 1u << 7, &size, &ws), -EINVAL);
        assert_int_equal(size, 12345);

        /* A descriptor that is not open. */
        assert_int_equal(sgl_memfd_verify(-1, 0, &size, &ws), -EBADF);
        assert_int_equal(size, 12345);

        /* Success: descriptor still open. */
        assert_int_equal(sgl_memfd_verify(fd, 0, &size, &ws), 0);
        assert_int_equal(size, PAGE);
        assert_false(ws);
        assert_int_equal(fcntl(fd, F_GETFD), FD_CLOEXEC);
        close(fd);
        assert_int_equal(tu_count_fds(), nfds);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_create),
                cmocka_unit_test(test_create_bad_size),
                cmocka_unit_test(test_create_bad_name),
                cmocka_unit_test(test_create_fsize_limit),
                cmocka_unit_test(test_create_old_kernel),
                cmocka_unit_test(test_create_no_memory),
                cmocka_unit_test(test_reopen_ro),
                cmocka_unit_test(test_seal_future_write),
                cmocka_unit_test(test_seal_write),
                cmocka_unit_test(test_seal_write_pinned),
                cmocka_unit_test(test_verify_accepts),
                cmocka_unit_test(test_verify_pipe_socket),
                cmocka_unit_test(test_verify_fifo),
                cmocka_unit_test(test_verify_dev_zero),
                cmocka_unit_test(test_verify_disk_file),
                cmocka_unit_test(test_verify_dev_shm_file),
                cmocka_unit_test(test_verify_hugetlb_memfd),
                cmocka_unit_test(test_verify_hugetlbfs_mount),
                cmocka_unit_test(test_verify_secretmem),
                cmocka_unit_test(test_verify_o_path),
                cmocka_unit_test(test_verify_seals),
                cmocka_unit_test(test_verify_not_sealable),
                cmocka_unit_test(test_verify_exec_bit),
                cmocka_unit_test(test_verify_sparse),
                cmocka_unit_test(test_verify_size),
                cmocka_unit_test(test_verify_contract),
        };

        tu_watchdog(120);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
