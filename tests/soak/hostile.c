/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hostile.c - the soak's hostile clients of sigillod, one after another:
 * garbage datagrams, descriptors of the wrong kind (a pipe, a writable
 * memfd, a socket) where a control page belongs, connect floods, silent
 * peers that never say HELLO, and readers of areas that do not exist.
 * Each only has to be served (answered or dropped) without harm to the
 * daemon or to the honest clients; what they are told is not checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdpass.h"
#include "memfd.h"
#include "protocol.h"
#include "rendezvous.h"
#include "soak.h"

#define SILENT_MAX 8

/* Waits a little for the daemon's answer (or its hang-up). */
static void await(int fd) {
        struct pollfd pf = { .fd = fd, .events = POLLIN };

        for (int i = 0; i < 4 && poll(&pf, 1, 200) > 0; i++) {
                uint8_t buf[SGL_MSG_MAX_SIZE];
                int fds[SGL_MSG_MAX_FDS];
                size_t nfds = 0;
                ssize_t n = sgl_fdpass_recv(fd, buf, sizeof(buf), fds, SGL_MSG_MAX_FDS, &nfds);

                for (size_t k = 0; n > 0 && k < nfds; k++)
                        close(fds[k]);
                if (n <= 0 && n != -EBADMSG)
                        return;
        }
}

static int say(int fd, const uint8_t *buf, ssize_t n, int pass_fd) {
        if (n < 0)
                return (int)n;
        n = sgl_fdpass_send(fd, buf, (size_t)n, pass_fd >= 0 ? &pass_fd : NULL, pass_fd >= 0);
        return n < 0 ? (int)n : 0;
}

static void garbage(uint64_t *rnd) {
        uint8_t buf[256];
        size_t len = 1 + soak_rand(rnd) % sizeof(buf);
        int fd = sgl_connect_host(soak_address, 2000);

        if (fd < 0)
                return;
        for (size_t i = 0; i < len; i++)
                buf[i] = (uint8_t)soak_rand(rnd);
        if (soak_rand(rnd) % 2) /* a valid header, a bad body */
                (void)sgl_msg_build_hello(buf, sizeof(buf), 1, 1, 1, 7);
        (void)say(fd, buf, (ssize_t)len, -1);
        await(fd);
        close(fd);
        atomic_fetch_add(&soak->hostile_garbage, 1);
}

static void wrong_fd(uint64_t *rnd, unsigned n) {
        uint8_t buf[SGL_MSG_MAX_SIZE];
        char name[64];
        int fd = sgl_connect_host(soak_address, 2000), bad = -1, sv[2];

        if (fd < 0)
                return;
        snprintf(name, sizeof(name), "soak.hostile%u", n % 4);
        switch (soak_rand(rnd) % 3) {
        case 0:
                if (pipe2(sv, O_CLOEXEC) == 0) {
                        close(sv[1]);
                        bad = sv[0];
                }
                break;
        case 1:
                bad = sgl_memfd_create("soak-hostile", 4096); /* writable */
                break;
        default:
                if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0) {
                        close(sv[1]);
                        bad = sv[0];
                }
                break;
        }
        if (say(fd, buf, sgl_msg_build_hello(buf, sizeof(buf), 1, 1, 1, SGL_ROLE_WRITER), -1) >= 0 &&
            say(fd, buf, sgl_msg_build_claim(buf, sizeof(buf), 2, 0, 0444, NULL, 0, NULL, 0,
                                             name, strlen(name)), -1) >= 0)
                (void)say(fd, buf, sgl_msg_build_publish_control(buf, sizeof(buf), 3), bad);
        /* and the real area's name, which is not ours to claim */
        (void)say(fd, buf, sgl_msg_build_claim(buf, sizeof(buf), 4, 0, 0444, NULL, 0, NULL, 0,
                                               SOAK_AREA, strlen(SOAK_AREA)), -1);
        await(fd);
        if (bad >= 0)
                close(bad);
        close(fd);
        atomic_fetch_add(&soak->hostile_wrong_fd, 1);
}

static void flood(uint64_t *rnd) {
        uint8_t buf[64];
        int fds[24];
        unsigned n = 8 + soak_rand(rnd) % 16;

        for (unsigned i = 0; i < n; i++) {
                fds[i] = sgl_connect_host(soak_address, 2000);
                if (fds[i] >= 0 && i % 2)
                        (void)say(fds[i], buf, sgl_msg_build_hello(buf, sizeof(buf), 1, 1, 1,
                                                                   SGL_ROLE_QUERY), -1);
        }
        for (unsigned i = 0; i < n; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
        atomic_fetch_add(&soak->hostile_flood, 1);
}

static void refused_open(void) {
        uint8_t buf[SGL_MSG_MAX_SIZE];
        int fd = sgl_connect_host(soak_address, 2000);

        if (fd < 0)
                return;
        if (say(fd, buf, sgl_msg_build_hello(buf, sizeof(buf), 1, 1, 1, SGL_ROLE_READER), -1) >= 0)
                (void)say(fd, buf, sgl_msg_build_open(buf, sizeof(buf), 2, SGL_OPEN_ALL,
                                                      "soak.nope", 9), -1);
        await(fd);
        close(fd);
        atomic_fetch_add(&soak->hostile_refused_open, 1);
}

void soak_hostile_main(uint64_t seed) {
        int silent[SILENT_MAX];
        uint64_t rnd = seed;
        unsigned n = 0, s = 0;

        for (unsigned i = 0; i < SILENT_MAX; i++)
                silent[i] = -1;
        while (!soak_stop) {
                switch (soak_rand(&rnd) % 5) {
                case 0:
                        garbage(&rnd);
                        break;
                case 1:
                        wrong_fd(&rnd, n);
                        break;
                case 2:
                        flood(&rnd);
                        break;
                case 3:
                        /* a peer that connects and says nothing, for a
                         * while: the oldest of SILENT_MAX leaves */
                        if (silent[s % SILENT_MAX] >= 0)
                                close(silent[s % SILENT_MAX]);
                        silent[s % SILENT_MAX] = sgl_connect_host(soak_address, 2000);
                        s++;
                        atomic_fetch_add(&soak->hostile_silent, 1);
                        break;
                default:
                        refused_open();
                        break;
                }
                n++;
                usleep(20000);
        }
        for (unsigned i = 0; i < SILENT_MAX; i++)
                if (silent[i] >= 0)
                        close(silent[i]);
        exit(0);
}
