/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-fdpass.c - src/fdpass.c over real SOCK_SEQPACKET socketpairs: the
 * normal paths, and every way a peer (or the kernel on its behalf) can put
 * descriptors or control messages into our process that we did not ask for.
 *
 * Invariants: every test counts /proc/self/fd before and after, so a
 * descriptor leaked on an error path fails the test that caused it.
 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "fdpass.h"
#include "internal.h"
#include "memfd.h"
#include "test-util.h"

#ifndef SO_PASSPIDFD
#define SO_PASSPIDFD 76
#endif

/* Whether @a and @b are descriptors of the same file. */
static bool same_file(int a, int b) {
        struct stat sa, sb;

        if (fstat(a, &sa) < 0 || fstat(b, &sb) < 0)
                return false;
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static void close_many(int *fds, size_t n) {
        for (size_t i = 0; i < n; i++)
                close(fds[i]);
}

/* What a hostile peer can send that sgl_fdpass_send() refuses to: any
 * payload (even empty) with any descriptors. */
static ssize_t raw_send(int sock, const void *buf, size_t len, const int *fds,
                        size_t nfds) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * SGL_FDPASS_MAX)];
        } control;
        struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

        if (nfds > 0) {
                struct cmsghdr *cmsg;

                memset(&control, 0, sizeof(control));
                msg.msg_control = control.buf;
                msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
                cmsg = CMSG_FIRSTHDR(&msg);
                cmsg->cmsg_level = SOL_SOCKET;
                cmsg->cmsg_type = SCM_RIGHTS;
                cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
                memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
        }
        return sendmsg(sock, &msg, MSG_NOSIGNAL);
}

/* ----------------------------------------------------- normal traffic */

static void test_no_fds(void **state) {
        unsigned nfds = tu_count_fds();
        int sv[2], fds[4] = { -1, -1, -1, -1 };
        size_t n = 99;
        char buf[64];

        (void)state;
        tu_socketpair(sv);

        assert_int_equal(sgl_fdpass_send(sv[0], "hello", 5, NULL, 0), 5);
        assert_int_equal(sgl_fdpass_recv(sv[1], buf, sizeof(buf), NULL, 0,
                                         NULL), 5);
        assert_memory_equal(buf, "hello", 5);

        /* Room for descriptors, none sent. */
        assert_int_equal(sgl_fdpass_send(sv[0], "world!", 6, fds, 0), 6);
        assert_int_equal(sgl_fdpass_recv(sv[1], buf, sizeof(buf), fds, 4,
                                         &n), 6);
        assert_memory_equal(buf, "world!", 6);
        assert_int_equal(n, 0);
        assert_int_equal(fds[0], -1);

        /* A message exactly the size of the buffer is not truncated. */
        assert_int_equal(sgl_fdpass_send(sv[0], "12345678", 8, NULL, 0), 8);
        assert_int_equal(sgl_fdpass_recv(sv[1], buf, 8, NULL, 0, NULL), 8);

        close(sv[0]);
        close(sv[1]);
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_one_fd(void **state) {
        unsigned nfds = tu_count_fds();
        int sv[2], mfd, got = -1;
        size_t n = 0;
        char buf[16];

        (void)state;
        tu_socketpair(sv);
        mfd = sgl_memfd_create("fdpass", 4096);
        assert_true(mfd >= 0);

        assert_int_equal(sgl_fdpass_send(sv[0], "seg", 3, &mfd, 1), 3);
        assert_int_equal(sgl_fdpass_recv(sv[1], buf, sizeof(buf), &got, 1,
                                         &n), 3);
        assert_int_equal(n, 1);
        assert_true(got >= 0);
        assert_true(got != mfd);
        assert_true(same_file(got, mfd));
        /* Close-on-exec from birth. */
        assert_int_equal(fcntl(got, F_GETFD), FD_CLOEXEC);
        /* The sender keeps its own. */
        assert_int_equal(fcntl(mfd, F_GETFD), FD_CLOEXEC);

        close(got);
        close(mfd);
        close(sv[0]);
        close(sv[1]);
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_max_fds(void **state) {
        int sent[SGL_FDPASS_MAX], got[SGL_FDPASS_MAX];
        unsigned nfds = tu_count_fds(), before_recv;
        int sv[2];
        size_t n = 0;
        char buf[16];

        (void)state;
        tu_socketpair(sv);
        for (size_t i = 0; i < SGL_FDPASS_MAX; i++) {
                sent[i] = memfd_create("many", MFD_CLOEXEC);
                assert_true(sent[i] >= 0);
        }

        assert_int_equal(sgl_fdpass_send(sv[0], "many", 4, sent,
                                         SGL_FDPASS_MAX), 4);
        before_recv = tu_count_fds();
        assert_int_equal(sgl_fdpass_recv(sv[1], buf, sizeof(buf), got,
                                         SGL_FDPASS_MAX, &n), 4);
        assert_int_equal(n, SGL_FDPASS_MAX);
        assert_int_equal(tu_count_fds(), before_recv + SGL_FDPASS_MAX);
        for (size_t i = 0; i < SGL_FDPASS_MAX; i++) {
                /* In order, each a file of its own. */
                assert_true(same_file(got[i], sent[i]));
                assert_int_equal(fcntl(got[i], F_GETFD), FD_CLOEXEC);
        }

        close_many(got, SGL_FDPASS_MAX);
        close_many(sent, SGL_FDPASS_MAX);
        close(sv[0]);
        close(sv[1]);
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_same_fd_twice(void **state) {
        unsigned nfds = tu_count_fds();
        int sv[2], p[2], sent[3], got[3];
        size_t n = 0;
        char buf[4];

        (void)state;
        tu_socketpair(sv);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        sent[0] = sent[1] = sent[2] = p[1];

        /* One descriptor listed three times arrives as three. */
        assert_int_equal(sgl_fdpass_send(sv[0], "x", 1, sent, 3), 1);
        assert_int_equal(sgl_fdpass_recv(sv[1], buf, sizeof(buf), got, 3,
                                         &n), 1);
        assert_int_equal(n, 3);
        assert_true(got[0] != got[1] && got[1] != got[2]);
        for (size_t i = 0; i < 3; i++)
                assert_true(same_file(got[i], p[1]));

        close_many(got, 3);
        close(p[0]);
        close(p[1]);
        close(sv[0]);
        close(sv[1]);
        assert_int_equal(tu_count_fds(), nfds);
}

struct cross_ctx {
        int sock;
        uint64_t sum;
};

static int child_publish(void *userdata) {
        struct cross_ctx *c = userdata;
        uint8_t *p;
        int fd, ro;

        /* The writer side: fill, seal, hand out a read-only description. */
        fd = sgl_memfd_create("cross", 8 * 4096);
        TU_CHILD_CHECK(fd >= 0);
        p = mmap(NULL, 8 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        TU_CHILD_CHECK(p != MAP_FAILED);
        tu_fill_pattern(p, 8 * 4096, 42);
        TU_CHILD_CHECK(tu_fnv1a64(p, 8 * 4096) == c->sum);
        TU_CHILD_CHECK(munmap(p, 8 * 4096) == 0);
        TU_CHILD_CHECK(sgl_memfd_seal_write(fd) == 0);
        ro = sgl_memfd_reopen_ro(fd);
        TU_CHILD_CHECK(ro >= 0);
        close(fd);

        TU_CHILD_CHECK(sgl_fdpass_send(c->sock, "segment", 7, &ro, 1) == 7);
        close(ro);
        return 0;
}

static void test_cross_process(void **state) {
        unsigned nfds = tu_count_fds();
        struct cross_ctx c;
        uint8_t pattern[8 * 4096];
        int sv[2], got = -1;
        uint64_t size = 0;
        bool ws = false;
        size_t n = 0;
        char buf[16];
        pid_t pid;
        void *p;

        (void)state;
        tu_fill_pattern(pattern, sizeof(pattern), 42);
        c.sum = tu_fnv1a64(pattern, sizeof(pattern));
        tu_socketpair(sv);
        c.sock = sv[0];
        pid = tu_fork(child_publish, &c);
        close(sv[0]);

        /* The reader side, exactly as DESIGN.md has it. */
        assert_int_equal(sgl_fdpass_recv(sv[1], buf, sizeof(buf), &got, 1,
                                         &n), 7);
        tu_wait_exit(pid, 0);
        assert_int_equal(n, 1);
        assert_int_equal(sgl_memfd_verify(got, SGL_VERIFY_WRITE_SEALED, &size,
                                          &ws), 0);
        assert_int_equal(size, sizeof(pattern));
        assert_true(ws);
        assert_int_equal(fcntl(got, F_GETFL) & O_ACCMODE, O_RDONLY);
        p = mmap(NULL, size, PROT_READ, MAP_SHARED, got, 0);
        assert_true(p != MAP_FAILED);
        close(got);
        assert_int_equal(tu_fnv1a64(p, size), c.sum);
        assert_int_equal(munmap(p, size), 0);

        /* The child is gone: orderly EOF. */
        assert_int_equal(sgl_fdpass_recv(sv[1], buf, sizeof(buf), &got, 1,
                                         &n), 0);
        close(sv[1]);
        assert_int_equal(tu_count_fds(), nfds);
}

/* ------------------------------------------------------ bad arguments */

static void test_bad_args(void **state) {
        int fds[SGL_FDPASS_MAX + 1], sv[2], got;
        unsigned nfds = tu_count_fds();
        size_t n = 77;
        char buf[8];

        (void)state;
        tu_socketpair(sv);
        for (size_t i = 0; i < ELEMENTSOF(fds); i++)
                fds[i] = sv[0];

        assert_int_equal(sgl_fdpass_send(sv[0], "x", 1, fds,
                                         SGL_FDPASS_MAX + 1), -EINVAL);
        assert_int_equal(sgl_fdpass_send(sv[0], "x", 1, NULL, 1), -EINVAL);
        /* Empty messages would read as EOF on the other side. */
        assert_int_equal(sgl_fdpass_send(sv[0], "", 0, NULL, 0), -EINVAL);
        assert_int_equal(sgl_fdpass_send(sv[0], NULL, 1, NULL, 0), -EINVAL);

        assert_int_equal(sgl_fdpass_recv(sv[1], buf, sizeof(buf), fds,
                                         SGL_FDPASS_MAX + 1, &n), -EINVAL);
        assert_int_equal(sgl_fdpass_recv(sv[1], buf, sizeof(buf), NULL, 1,
                                         &n), -EINVAL);
        assert_int_equal(sgl_fdpass_recv(sv[1], buf, sizeof(buf), &got, 1,
                                         NULL), -EINVAL);
        assert_int_equal(n, 77);

        assert_int_equal(sgl_fdpass_send(-1, "x", 1, NULL, 0), -EBADF);
        assert_int_equal(sgl_fdpass_recv(-1, buf, sizeof(buf), NULL, 0, NULL),
                         -EBADF);

        /* Nothing was sent by any of the refused calls. */
        assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
        assert_int_equal(sgl_fdpass_recv(sv[1], buf, sizeof(buf), &got, 1,
                                         &n), -EAGAIN);
        assert_int_equal(n, 77);

        close(sv[0]);
        close(sv[1]);
        assert_int_equal(tu_count_fds(), nfds);
}

/* ---------------------------------------- descriptors we did not want */

/* Sends @nsend descriptors to a receiver that allows @max and checks that
 * it gets -EBADMSG with nothing leaked and its out-parameters untouched. */
static void expect_rejected(size_t nsend, size_t max) {
        int sent[SGL_FDPASS_MAX], got[SGL_FDPASS_MAX];
        unsigned nfds = tu_count_fds();
        int sv[2], mfd;
        size_t n = 1234;
        char buf[16];

        tu_socketpair(sv);
        mfd = memfd_create("unwanted", MFD_CLOEXEC);
        assert_true(mfd >= 0);
        for (size_t i = 0; i < nsend; i++)
                sent[i] = mfd;
        for (size_t i = 0; i < ELEMENTSOF(got); i++)
                got[i] = -2;

        assert_int_equal(sgl_fdpass_send(sv[0], "junk", 4, sent, nsend), 4);
        if (sgl_fdpass_recv(sv[1], buf, sizeof(buf), max ? got : NULL, max,
                            max ? &n : NULL) != -EBADMSG)
                fail_msg("%zu fds to a receiver of %zu: not -EBADMSG", nsend,
                         max);
        assert_int_equal(n, 1234);
        for (size_t i = 0; i < ELEMENTSOF(got); i++)
                assert_int_equal(got[i], -2);

        close(mfd);
        close(sv[0]);
        close(sv[1]);
        if (tu_count_fds() != nfds)
                fail_msg("%zu fds to a receiver of %zu: leaked %d", nsend, max,
                         (int)tu_count_fds() - (int)nfds);
}

static void test_fds_to_no_fds(void **state) {
        (void)state;
        /* No control buffer at all: the kernel discards them (MSG_CTRUNC). */
        expect_rejected(1, 0);
        expect_rejected(SGL_FDPASS_MAX, 0);
}

static void test_too_many_fds(void **state) {
        (void)state;
        /* CMSG_SPACE() padding makes room for one more when max is odd: the
         * kernel installs it and only the count catches it. */
        expect_rejected(2, 1);
        expect_rejected(4, 3);
        /* More than even the padding holds: MSG_CTRUNC. */
        expect_rejected(3, 1);
        expect_rejected(5, 4);
        expect_rejected(SGL_FDPASS_MAX, 1);
        expect_rejected(SGL_FDPASS_MAX, SGL_FDPASS_MAX - 1);
        expect_rejected(SGL_FDPASS_MAX, SGL_FDPASS_MAX - 2);
}

static void test_truncated(void **state) {
        unsigned nfds = tu_count_fds();
        int sv[2], mfd, got[2] = { -2, -2 };
        char big[100], buf[10];
        size_t n = 55;

        (void)state;
        tu_socketpair(sv);
        memset(big, 'b', sizeof(big));
        mfd = memfd_create("trunc", MFD_CLOEXEC);
        assert_true(mfd >= 0);

        assert_int_equal(sgl_fdpass_send(sv[0], big, sizeof(big), NULL, 0),
                         (ssize_t)sizeof(big));
        assert_int_equal(sgl_fdpass_recv(sv[1], buf, sizeof(buf), got, 2, &n),
                         -EBADMSG);

        /* With descriptors: closed, not leaked. */
        assert_int_equal(sgl_fdpass_send(sv[0], big, sizeof(big), &mfd, 1),
                         (ssize_t)sizeof(big));
        assert_int_equal(sgl_fdpass_recv(sv[1], buf, sizeof(buf), got, 2, &n),
                         -EBADMSG);
        assert_int_equal(n, 55);
        assert_int_equal(got[0], -2);

        /* A zero-length buffer truncates every non-empty message. */
        assert_int_equal(sgl_fdpass_send(sv[0], "x", 1, NULL, 0), 1);
        assert_int_equal(sgl_fdpass_recv(sv[1], NULL, 0, NULL, 0, NULL),
                         -EBADMSG);

        /* Message boundaries hold: the rest of the truncated message is
         * gone, the next one arrives whole. */
        assert_int_equal(sgl_fdpass_send(sv[0], "next", 4, NULL, 0), 4);
        assert_int_equal(sgl_fdpass_recv(sv[1], buf, sizeof(buf), NULL, 0,
                                         NULL), 4);
        assert_memory_equal(buf, "next", 4);

        close(mfd);
        close(sv[0]);
        close(sv[1]);
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_credentials(void **state) {
        int got[SGL_FDPASS_MAX], sv[2], mfd, one = 1;
        unsigned nfds = tu_count_fds();
        size_t n = 66;
        char buf[16];

        (void)state;
        tu_socketpair(sv);
        mfd = memfd_create("creds", MFD_CLOEXEC);
        assert_true(mfd >= 0);
        /* From now on the kernel attaches SCM_CREDENTIALS to every message
         * sv[1] receives: a control message we never asked the helper for. */
        assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &one,
                                    sizeof(one)), 0);

        /* Room for credentials and descriptors: both arrive, rejected. */
        assert_int_equal(sgl_fdpass_send(sv[0], "c", 1, NULL, 0), 1);
        assert_int_equal(sgl_fdpass_recv(sv[1], buf, sizeof(buf), got,
                                         SGL_FDPASS_MAX, &n), -EBADMSG);
        assert_int_equal(sgl_fdpass_send(sv[0], "c", 1, &mfd, 1), 1);
        assert_int_equal(sgl_fdpass_recv(sv[1], buf, sizeof(buf), got,
                                         SGL_FDPASS_MAX, &n), -EBADMSG);
        assert_int_equal(tu_count_fds(), nfds + 3);

        /* Credentials crowd the descriptors out of a small buffer. */
        assert_int_equal(sgl_fdpass_send(sv[0], "c", 1, &mfd, 1), 1);
        assert_int_equal(sgl_fdpass_recv(sv[1], buf, sizeof(buf), got, 1,
                                         &n), -EBADMSG);
        assert_int_equal(sgl_fdpass_send(sv[0], "c", 1, &mfd, 1), 1);
        assert_int_equal(sgl_fdpass_recv(sv[1], buf, sizeof(buf), got, 4,
                                         &n), -EBADMSG);
        assert_int_equal(n, 66);
        assert_int_equal(tu_count_fds(), nfds + 3);

        /* Without any control buffer (max_fds 0) the kernel has nowhere to
         * put credentials: recent kernels say MSG_CTRUNC (-EBADMSG), older
         * ones dropped them silently.  Either way nothing was installed. */
        {
                ssize_t r;

                assert_int_equal(sgl_fdpass_send(sv[0], "c", 1, NULL, 0), 1);
                r = sgl_fdpass_recv(sv[1], buf, sizeof(buf), NULL, 0, NULL);
                assert_true(r == -EBADMSG || r == 1);
        }
        /* ...but descriptors sent along still are. */
        assert_int_equal(sgl_fdpass_send(sv[0], "c", 1, &mfd, 1), 1);
        assert_int_equal(sgl_fdpass_recv(sv[1], buf, sizeof(buf), NULL, 0,
                                         NULL), -EBADMSG);

        close(mfd);
        close(sv[0]);
        close(sv[1]);
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_pidfd(void **state) {
        int got[4], sv[2], mfd, one = 1;
        unsigned nfds = tu_count_fds();
        size_t n = 66;
        char buf[16];

        (void)state;
        tu_socketpair(sv);
        /* Linux 6.5: the kernel installs a pidfd of the sender in the
         * receiver with every message. */
        if (setsockopt(sv[1], SOL_SOCKET, SO_PASSPIDFD, &one,
                       sizeof(one)) < 0) {
                close(sv[0]);
                close(sv[1]);
                skip();
        }
        mfd = memfd_create("pidfd", MFD_CLOEXEC);
        assert_true(mfd >= 0);

        assert_int_equal(sgl_fdpass_send(sv[0], "p", 1, NULL, 0), 1);
        assert_int_equal(sgl_fdpass_recv(sv[1], buf, sizeof(buf), got, 4,
                                         &n), -EBADMSG);
        assert_int_equal(tu_count_fds(), nfds + 3);

        assert_int_equal(sgl_fdpass_send(sv[0], "p", 1, &mfd, 1), 1);
        assert_int_equal(sgl_fdpass_recv(sv[1], buf, sizeof(buf), got, 4,
                                         &n), -EBADMSG);
        assert_int_equal(tu_count_fds(), nfds + 3);

        assert_int_equal(sgl_fdpass_send(sv[0], "p", 1, &mfd, 1), 1);
        assert_int_equal(sgl_fdpass_recv(sv[1], buf, sizeof(buf), NULL, 0,
                                         NULL), -EBADMSG);
        assert_int_equal(n, 66);

        close(mfd);
        close(sv[0]);
        close(sv[1]);
        assert_int_equal(tu_count_fds(), nfds);
}

static int child_nofile(void *userdata) {
        int sent[8], got[8], sv[2], mfd, fd, free_slots = 0;
        struct rlimit rl;
        unsigned nfds;
        size_t n = 99;
        char buf[4];

        (void)userdata;
        TU_CHILD_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
                                  sv) == 0);
        mfd = memfd_create("nofile", MFD_CLOEXEC);
        TU_CHILD_CHECK(mfd >= 0);
        for (size_t i = 0; i < ELEMENTSOF(sent); i++)
                sent[i] = mfd;
        TU_CHILD_CHECK(sgl_fdpass_send(sv[0], "n", 1, sent, 8) == 1);
        nfds = tu_count_fds();

        /* Leave room for exactly 3 new descriptors: the kernel installs
         * what fits, drops the rest and says MSG_CTRUNC. */
        for (fd = 0; free_slots < 3; fd++)
                if (fcntl(fd, F_GETFD) < 0)
                        free_slots++;
        TU_CHILD_CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
        rl.rlim_cur = (rlim_t)fd;
        TU_CHILD_CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);

        TU_CHILD_CHECK(sgl_fdpass_recv(sv[1], buf, sizeof(buf), got, 8,
                                       &n) == -EBADMSG);
        TU_CHILD_CHECK(n == 99);
        TU_CHILD_CHECK(tu_count_fds() == nfds);
        return 0;
}

static void test_fd_limit(void **state) {
        (void)state;
        tu_wait_exit(tu_fork(child_nofile, NULL), 0);
}

/* ---------------------------------------------------------------- EOF */

static void test_eof(void **state) {
        unsigned nfds = tu_count_fds();
        int sv[2], mfd, got[2] = { -2, -2 };
        size_t n = 5;
        char buf[8];

        (void)state;
        tu_socketpair(sv);
        mfd = memfd_create("eof", MFD_CLOEXEC);
        assert_true(mfd >= 0);

        /* An empty message carrying descriptors is not EOF: rejected. */
        assert_int_equal(raw_send(sv[0], "", 0, &mfd, 1), 0);
        assert_int_equal(sgl_fdpass_recv(sv[1], buf, sizeof(buf), got, 2, &n),
                         -EBADMSG);
        assert_int_equal(tu_count_fds(), nfds + 3);
        /* ...even to a receiver that takes none (the kernel drops them). */
        assert_int_equal(raw_send(sv[0], "", 0, &mfd, 1), 0);
        assert_int_equal(sgl_fdpass_recv(sv[1], buf, sizeof(buf), NULL, 0,
                                         NULL), -EBADMSG);

        /* A bare empty message reads as EOF: a peer sending one just ends
         * its own connection. */
        assert_int_equal(raw_send(sv[0], "", 0, NULL, 0), 0);
        assert_int_equal(sgl_fdpass_recv(sv[1], buf, sizeof(buf), got, 2, &n),
                         0);
        assert_int_equal(n, 0);

        /* The real thing, twice: EOF stays EOF. */
        n = 5;
        close(sv[0]);
        assert_int_equal(sgl_fdpass_recv(sv[1], buf, sizeof(buf), got, 2, &n),
                         0);
        assert_int_equal(n, 0);
        assert_int_equal(sgl_fdpass_recv(sv[1], buf, sizeof(buf), NULL, 0,
                                         NULL), 0);

        /* And the other direction: just -EPIPE... */
        assert_int_equal(sgl_fdpass_send(sv[1], "x", 1, &mfd, 1), -EPIPE);
        close(sv[1]);

        /* ...and no SIGPIPE, which AF_UNIX raises on stream sockets only. */
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
                                    sv), 0);
        close(sv[0]);
        assert_int_equal(sgl_fdpass_send(sv[1], "x", 1, &mfd, 1), -EPIPE);

        close(mfd);
        close(sv[1]);
        assert_int_equal(tu_count_fds(), nfds);
}

static void test_nonblocking(void **state) {
        unsigned nfds = tu_count_fds();
        char buf[1024];
        int sv[2], r;
        size_t sent = 0;

        (void)state;
        tu_socketpair(sv);
        assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
        assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);

        assert_int_equal(sgl_fdpass_recv(sv[1], buf, sizeof(buf), NULL, 0,
                                         NULL), -EAGAIN);
        memset(buf, 0, sizeof(buf));
        while ((r = (int)sgl_fdpass_send(sv[0], buf, sizeof(buf), NULL, 0)) > 0)
                sent++;
        assert_int_equal(r, -EAGAIN);
        assert_true(sent > 0);
        while (sent-- > 0)
                assert_int_equal(sgl_fdpass_recv(sv[1], buf, sizeof(buf),
                                                 NULL, 0, NULL),
                                 (ssize_t)sizeof(buf));

        close(sv[0]);
        close(sv[1]);
        assert_int_equal(tu_count_fds(), nfds);
}

/* -------------------------------------------------------------- EINTR */

static volatile sig_atomic_t signals;

static void on_signal(int sig) {
        (void)sig;
        signals++;
}

/* Whether process @pid is asleep in the kernel (state S). */
static bool sleeping(pid_t pid) {
        char path[64], line[512], *p;
        bool r = false;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return false;
        if (fgets(line, sizeof(line), f)) {
                p = strrchr(line, ')');
                r = p && p[1] == ' ' && p[2] == 'S';
        }
        fclose(f);
        return r;
}

struct interrupt_ctx {
        pid_t parent;
        int sock;
        bool drain;     /* receive one message instead of sending one */
};

/* Waits until the parent blocks, interrupts it, then unblocks it. */
static int child_interrupt(void *userdata) {
        struct interrupt_ctx *c = userdata;
        struct timespec ts = { .tv_nsec = 20 * 1000 * 1000 };
        char buf[1024];

        for (int i = 0; i < 500 && !sleeping(c->parent); i++)
                nanosleep(&ts, NULL);
        nanosleep(&ts, NULL);
        TU_CHILD_CHECK(kill(c->parent, SIGUSR1) == 0);
        nanosleep(&ts, NULL);

        /* A blocked AF_UNIX sender wakes only once most of its send buffer
         * is free again: drain everything, not one message. */
        if (c->drain) {
                TU_CHILD_CHECK(recv(c->sock, buf, sizeof(buf), 0) > 0);
                while (recv(c->sock, buf, sizeof(buf), MSG_DONTWAIT) > 0)
                        ;
        } else
                TU_CHILD_CHECK(sgl_fdpass_send(c->sock, "late", 4, NULL, 0) ==
                               4);
        return 0;
}

static void test_eintr(void **state) {
        struct sigaction sa = { .sa_handler = on_signal }, old;
        struct interrupt_ctx c;
        unsigned nfds = tu_count_fds();
        int sv[2], flags;
        char buf[1024];
        pid_t pid;

        (void)state;
        /* No SA_RESTART: the kernel returns EINTR to the helper. */
        assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
        tu_socketpair(sv);

        /* Blocked in recvmsg(). */
        signals = 0;
        c = (struct interrupt_ctx){ .parent = getpid(), .sock = sv[0] };
        pid = tu_fork(child_interrupt, &c);
        assert_int_equal(sgl_fdpass_recv(sv[1], buf, sizeof(buf), NULL, 0,
                                         NULL), 4);
        assert_memory_equal(buf, "late", 4);
        assert_int_equal(signals, 1);
        tu_wait_exit(pid, 0);

        /* Blocked in sendmsg() on a full socket. */
        memset(buf, 0, sizeof(buf));
        flags = fcntl(sv[0], F_GETFL);
        assert_int_equal(fcntl(sv[0], F_SETFL, flags | O_NONBLOCK), 0);
        while (sgl_fdpass_send(sv[0], buf, sizeof(buf), NULL, 0) > 0)
                ;
        assert_int_equal(fcntl(sv[0], F_SETFL, flags), 0);
        signals = 0;
        c = (struct interrupt_ctx){ .parent = getpid(), .sock = sv[1],
                                    .drain = true };
        pid = tu_fork(child_interrupt, &c);
        assert_int_equal(sgl_fdpass_send(sv[0], buf, sizeof(buf), NULL, 0),
                         (ssize_t)sizeof(buf));
        assert_int_equal(signals, 1);
        tu_wait_exit(pid, 0);

        assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
        close(sv[0]);
        close(sv[1]);
        assert_int_equal(tu_count_fds(), nfds);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_no_fds),
                cmocka_unit_test(test_one_fd),
                cmocka_unit_test(test_max_fds),
                cmocka_unit_test(test_same_fd_twice),
                cmocka_unit_test(test_cross_process),
                cmocka_unit_test(test_bad_args),
                cmocka_unit_test(test_fds_to_no_fds),
                cmocka_unit_test(test_too_many_fds),
                cmocka_unit_test(test_truncated),
                cmocka_unit_test(test_credentials),
                cmocka_unit_test(test_pidfd),
                cmocka_unit_test(test_fd_limit),
                cmocka_unit_test(test_eof),
                cmocka_unit_test(test_nonblocking),
                cmocka_unit_test(test_eintr),
        };

        tu_watchdog(120);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
