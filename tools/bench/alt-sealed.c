/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * alt-sealed.c - the floor for strict transport: one sealed memfd per
 * message.  The writer creates a memfd, sizes it, pwrite()s the payload
 * (cheaper than faulting it in through a mapping), seals it
 * F_SEAL_WRITE|SHRINK|GROW|SEAL and passes it with SCM_RIGHTS to every
 * reader; a reader checks the seals and the size, maps it read-only,
 * reads, unmaps and closes.  Nothing is reused: that is what sealing
 * costs when done naively, per message.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

#define SEALS (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW)

struct sealed_chan {
        int wfd[BENCH_MAX_READERS];
        int rfd[BENCH_MAX_READERS];
        void *map;
        size_t map_size;
        int memfd;
};

static int sealed_create(struct chan *c) {
        struct sealed_chan *s = calloc(1, sizeof(*s));

        if (!s)
                return -ENOMEM;
        for (unsigned i = 0; i < c->nreaders; i++) {
                int sv[2];
                if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                        return -errno;
                s->wfd[i] = sv[0];
                s->rfd[i] = sv[1];
        }
        s->memfd = -1;
        c->priv = s;
        return 0;
}

static void sealed_destroy(struct chan *c) {
        struct sealed_chan *s = c->priv;

        for (unsigned i = 0; i < c->nreaders; i++) {
                close(s->wfd[i]);
                close(s->rfd[i]);
        }
        free(s);
}

static int sealed_open(struct chan *c) {
        return 0;
}

static void sealed_close(struct chan *c) {
}

static int send_fd(int sock, int fd) {
        char byte = 0;
        struct iovec iov = { &byte, 1 };
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } u;
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1,
                .msg_control = u.buf, .msg_controllen = sizeof(u.buf),
        };
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

        memset(&u, 0, sizeof(u));
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
        while (sendmsg(sock, &mh, MSG_NOSIGNAL) < 0)
                if (errno != EINTR)
                        return -errno;
        return 0;
}

static int sealed_send(struct chan *c, const void *buf, size_t size) {
        struct sealed_chan *s = c->priv;
        int fd, k = 0;

        fd = memfd_create("bench-sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        if (ftruncate(fd, (off_t)size) < 0 || pwrite(fd, buf, size, 0) != (ssize_t)size ||
            fcntl(fd, F_ADD_SEALS, SEALS | F_SEAL_SEAL) < 0)
                k = -errno;
        for (unsigned i = 0; k == 0 && i < c->nreaders; i++)
                k = send_fd(s->wfd[i], fd);
        close(fd);
        return k;
}

static int sealed_open_reader(struct chan *c, unsigned i) {
        return 0;
}

static int sealed_recv(struct chan *c, unsigned i, const void **data, size_t *size) {
        struct sealed_chan *s = c->priv;
        char byte;
        struct iovec iov = { &byte, 1 };
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } u;
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1,
                .msg_control = u.buf, .msg_controllen = sizeof(u.buf),
        };
        struct cmsghdr *cm;
        struct stat st;
        ssize_t n;
        int fd, seals;

        do
                n = recvmsg(s->rfd[i], &mh, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n <= 0)
                return n == 0 ? -EPIPE : -errno;
        cm = CMSG_FIRSTHDR(&mh);
        if ((mh.msg_flags & MSG_CTRUNC) || !cm || cm->cmsg_type != SCM_RIGHTS ||
            cm->cmsg_len != CMSG_LEN(sizeof(int)))
                return -EBADMSG;
        memcpy(&fd, CMSG_DATA(cm), sizeof(int));
        seals = fcntl(fd, F_GET_SEALS);
        if (seals < 0 || (seals & SEALS) != SEALS || fstat(fd, &st) < 0 || st.st_size <= 0) {
                close(fd);
                return -EPERM;
        }
        s->map_size = (size_t)st.st_size;
        s->map = mmap(NULL, s->map_size, PROT_READ, MAP_SHARED, fd, 0);
        if (s->map == MAP_FAILED) {
                close(fd);
                return -errno;
        }
        s->memfd = fd;
        *data = s->map;
        *size = s->map_size;
        return 0;
}

static void sealed_release(struct chan *c, unsigned i) {
        struct sealed_chan *s = c->priv;

        munmap(s->map, s->map_size);
        close(s->memfd);
        s->memfd = -1;
}

static void sealed_close_reader(struct chan *c, unsigned i) {
}

static const char *sealed_settings(size_t size, int kind) {
        return "memfd+pwrite+seal per msg";
}

const struct alt alt_sealed = {
        .name = "sealed-memfd",
        .flags = ALT_WINDOW,
        .create = sealed_create,
        .open_writer = sealed_open,
        .send = sealed_send,
        .close_writer = sealed_close,
        .open_reader = sealed_open_reader,
        .recv = sealed_recv,
        .release = sealed_release,
        .close_reader = sealed_close_reader,
        .destroy = sealed_destroy,
        .settings = sealed_settings,
};
