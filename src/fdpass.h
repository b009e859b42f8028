/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fdpass.h - the one hardened sendmsg()/recvmsg() pair that moves descriptors
 * over AF_UNIX sockets.  See fdpass.c for the rules.
 */
#ifndef SGL_FDPASS_H
#define SGL_FDPASS_H

#include <stddef.h>
#include <sys/types.h>

/* The kernel's SCM_MAX_FD: the most descriptors one message can carry. */
#define SGL_FDPASS_MAX 253

/*
 * sgl_fdpass_send() - sends one message of @len bytes with @nfds descriptors
 * (0 ... SGL_FDPASS_MAX).  MSG_NOSIGNAL; retries EINTR.  Returns the bytes
 * sent or -errno (-EAGAIN on a full non-blocking socket).
 */
ssize_t sgl_fdpass_send(int sock, const void *buf, size_t len, const int *fds,
                        size_t nfds);

/*
 * sgl_fdpass_recv() - receives one message into @buf with MSG_CMSG_CLOEXEC and
 * a control buffer sized for @max_fds descriptors.  Any descriptor beyond
 * @max_fds, a truncated control buffer (MSG_CTRUNC), a truncated message
 * (MSG_TRUNC) or a control message other than SCM_RIGHTS closes every
 * descriptor received and returns -EBADMSG: the caller must then close the
 * connection.  Returns the bytes received (0 = peer closed) and stores the
 * descriptors, which the caller then owns, in @fds and their count in
 * @ret_nfds.  Never uses MSG_PEEK.  Retries EINTR.
 */
ssize_t sgl_fdpass_recv(int sock, void *buf, size_t len, int *fds,
                        size_t max_fds, size_t *ret_nfds);

/* SO_PASSRIGHTS=0 on a socket that never expects descriptors. */
int sgl_fdpass_refuse(int sock);

#endif
