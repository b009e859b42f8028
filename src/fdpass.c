/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fdpass.c - the one hardened sendmsg()/recvmsg() pair that moves descriptors
 * over AF_UNIX sockets.
 *
 * Owns: every sendmsg() and recvmsg() of the library, and with them every
 * descriptor that arrives from another process until the caller takes it.
 *
 * Invariants:
 *  - Meant for SOCK_SEQPACKET (one call = one whole message; SOCK_DGRAM works
 *    the same); message boundaries are what make MSG_TRUNC meaningful.
 *  - A received descriptor is either handed to the caller or closed before
 *    sgl_fdpass_recv() returns: on every error path, including descriptors
 *    the kernel installed in a control message we then reject.  Nothing a
 *    peer sends can make us keep a descriptor we did not ask for.
 *  - Received descriptors are O_CLOEXEC from birth (MSG_CMSG_CLOEXEC), never
 *    set afterwards, so no fork+exec in another thread can inherit them.
 *  - Never MSG_PEEK: a peeked control message installs descriptors that a
 *    second recvmsg() installs again.
 *  - Never SIGPIPE (MSG_NOSIGNAL); EINTR is retried, never returned.
 *  - Out-parameters are untouched on failure.
 */

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "fdpass.h"

#ifndef SO_PASSRIGHTS
#define SO_PASSRIGHTS 83
#endif
#include "internal.h"

/* SO_PASSPIDFD (Linux 6.5) makes the kernel install a pidfd in the receiver
 * with every message; we never ask for it, but must still close one if the
 * caller's socket does. */
#ifndef SCM_PIDFD
#define SCM_PIDFD 0x04
#endif

/* Control buffer big enough for the most descriptors one message can carry,
 * aligned for struct cmsghdr. */
union fdpass_control {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * SGL_FDPASS_MAX)];
};

/**
 * sgl_fdpass_send() - send one message, optionally with descriptors.
 * @sock: a connected AF_UNIX SOCK_SEQPACKET socket
 * @buf: the payload
 * @len: its size; must not be 0, which the receiver could not tell from EOF
 * @fds: descriptors to pass (borrowed; the caller keeps them open)
 * @nfds: how many, 0 ... SGL_FDPASS_MAX
 *
 * Return: the bytes sent, -EINVAL on bad arguments, -EAGAIN on a full
 * non-blocking socket, -EPIPE if the peer is gone, or another -errno.
 */
ssize_t sgl_fdpass_send(int sock, const void *buf, size_t len, const int *fds,
                        size_t nfds) {
        union fdpass_control control;
        struct iovec iov = {
                .iov_base = (void *)buf,
                .iov_len = len,
        };
        struct msghdr msg = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
        };
        ssize_t n;

        if (len == 0 || !buf)
                return -EINVAL;
        if (nfds > SGL_FDPASS_MAX || (nfds > 0 && !fds))
                return -EINVAL;

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

        do
                n = sendmsg(sock, &msg, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return sgl_negerrno();
        return n;
}

/* Closes every descriptor in fds[0 ... n). */
static void close_all(int *fds, size_t n) {
        for (size_t i = 0; i < n; i++)
                fds[i] = sgl_close(fds[i]);
}

/**
 * sgl_fdpass_recv() - receive one message and the descriptors it carries.
 * @sock: a connected AF_UNIX SOCK_SEQPACKET socket
 * @buf: where the payload goes
 * @len: size of @buf: a longer message is an error, not a partial read
 * @fds: (if @max_fds > 0) room for @max_fds descriptors
 * @max_fds: the most descriptors this message may carry, 0 ... SGL_FDPASS_MAX
 * @ret_nfds: (optional if @max_fds is 0) how many descriptors were stored
 *
 * Rejects, closing every descriptor that came with the message: more than
 * @max_fds descriptors, a truncated control buffer (MSG_CTRUNC: the kernel
 * dropped some descriptors, or a control message we did not make room for),
 * a truncated payload (MSG_TRUNC), any control message but SCM_RIGHTS (e.g.
 * SCM_CREDENTIALS once SO_PASSCRED is on), and descriptors on an empty
 * message (which would otherwise read as EOF).  After -EBADMSG the stream of
 * messages is not trustworthy: the caller must close the connection.
 *
 * Return: the bytes received, 0 on orderly EOF (no descriptors), -EBADMSG as
 * above, -EINVAL on bad arguments, -EAGAIN on an empty non-blocking socket,
 * or another -errno.
 */
ssize_t sgl_fdpass_recv(int sock, void *buf, size_t len, int *fds,
                        size_t max_fds, size_t *ret_nfds) {
        union fdpass_control control;
        struct iovec iov = {
                .iov_base = buf,
                .iov_len = len,
        };
        struct msghdr msg = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
        };
        /* CMSG_SPACE() pads, so the kernel may install one descriptor more
         * than max_fds before we can count them: keep room for it. */
        int got[SGL_FDPASS_MAX + 1];
        size_t ngot = 0;
        bool bad = false;
        struct cmsghdr *cmsg;
        ssize_t n;

        if (max_fds > SGL_FDPASS_MAX || (max_fds > 0 && (!fds || !ret_nfds)))
                return -EINVAL;
        if (len > 0 && !buf)
                return -EINVAL;

        /* With no room at all, the kernel discards any descriptors sent
         * (and flags MSG_CTRUNC) instead of installing them. */
        if (max_fds > 0) {
                msg.msg_control = control.buf;
                msg.msg_controllen = CMSG_SPACE(sizeof(int) * max_fds);
        }

        do
                n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return sgl_negerrno();

        /* Collect every descriptor the kernel installed, whatever else is
         * wrong with the message, so that all of them can be closed. */
        for (cmsg = CMSG_FIRSTHDR(&msg); cmsg; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
                size_t avail, k;

                if (cmsg->cmsg_level == SOL_SOCKET &&
                    (cmsg->cmsg_type == SCM_RIGHTS ||
                     cmsg->cmsg_type == SCM_PIDFD)) {
                        if (cmsg->cmsg_type != SCM_RIGHTS)
                                bad = true;
                        /* The kernel shortens cmsg_len when it truncates;
                         * still never read past what it wrote. */
                        avail = msg.msg_controllen -
                                (size_t)((char *)cmsg - control.buf);
                        if (cmsg->cmsg_len > avail)
                                bad = true;
                        avail = MIN(avail, (size_t)cmsg->cmsg_len);
                        if (avail < CMSG_LEN(0)) {
                                bad = true;
                                continue;
                        }
                        k = (avail - CMSG_LEN(0)) / sizeof(int);
                        for (size_t i = 0; i < k; i++) {
                                int fd;

                                /* Copied out, not cast: CMSG_DATA() is a
                                 * byte pointer (alignment, aliasing). */
                                memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int),
                                       sizeof(fd));
                                if (ngot < ELEMENTSOF(got))
                                        got[ngot++] = fd;
                                else {
                                        sgl_close(fd);
                                        bad = true;
                                }
                        }
                } else
                        bad = true;
        }

        if (bad || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
            ngot > max_fds || (n == 0 && ngot > 0)) {
                close_all(got, ngot);
                return -EBADMSG;
        }

        if (ngot > 0)
                memcpy(fds, got, sizeof(int) * ngot);
        if (ret_nfds)
                *ret_nfds = ngot;
        return n;
}

/*
 * sgl_fdpass_refuse() - make the kernel refuse descriptors sent to @sock
 * (SO_PASSRIGHTS=0, Linux 6.16): the sender's sendmsg() fails with EPERM,
 * so nothing is ever queued to us.  A socket that never expects descriptors
 * sets it; sgl_fdpass_recv() still closes any that arrive on older kernels.
 * Returns 0, also where the kernel lacks the option.
 */
int sgl_fdpass_refuse(int sock) {
        int zero = 0;

        if (setsockopt(sock, SOL_SOCKET, SO_PASSRIGHTS, &zero, sizeof(zero)) < 0 &&
            errno != ENOPROTOOPT)
                return sgl_negerrno();
        return 0;
}
