/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * systemd.h - the three pieces of the systemd service protocol sigillod
 * speaks, implemented natively (no libsystemd): inherited sockets and stored
 * descriptors (LISTEN_FDS), readiness and status (NOTIFY_SOCKET), and the fd
 * store (FDSTORE=1 with descriptors).  See systemd.c.
 */
#ifndef SGL_SD_H
#define SGL_SD_H

#include <stdbool.h>
#include <stddef.h>

/* The first inherited descriptor (SD_LISTEN_FDS_START). */
#define SGL_SD_LISTEN_FDS_START 3

/*
 * sgl_sd_listen_fds() - the descriptors the service manager passed us.
 * @ret_fds: a malloc()ed array of the descriptors (NULL when there are none)
 * @ret_names: (optional) a malloc()ed, NULL-terminated array of as many
 *             malloc()ed names (LISTEN_FDNAMES; "" when absent or when the
 *             variable does not name exactly every descriptor); NULL when
 *             there are none.  Free it with sgl_sd_names_free().
 * @ret_n: how many
 *
 * Only when $LISTEN_PID is our pid; every descriptor gets FD_CLOEXEC.  The
 * three LISTEN_* variables are unset on every path, so no child inherits
 * them.  The descriptors are the caller's to check and close.
 *
 * Return: the number of descriptors (0 also when the variables are unset or
 * meant for another process), or -EINVAL (LISTEN_PID or LISTEN_FDS is not a
 * number in range), -EBADF (a descriptor it names is not open; none was
 * touched), -ENOMEM.  Out-parameters are untouched on failure.
 */
int sgl_sd_listen_fds(int **ret_fds, char ***ret_names, size_t *ret_n);

/* Frees what sgl_sd_listen_fds() returned in @ret_names (NULL is fine). */
void sgl_sd_names_free(char **names);

/* Is @fd a listening AF_UNIX SOCK_SEQPACKET socket? */
bool sgl_sd_is_seqpacket_listener(int fd);

/*
 * sgl_sd_notify() - sends @state ("READY=1", "STATUS=...", "FDSTORE=1\n
 * FDNAME=x", ...) to $NOTIFY_SOCKET, with @nfds descriptors (SCM_RIGHTS,
 * borrowed) when @nfds > 0.  A path ("/...") or an abstract address
 * ("@...").  The send waits at most SGL_SD_NOTIFY_TIMEOUT_MS for a busy
 * manager.
 *
 * Return: 1 when sent, 0 when $NOTIFY_SOCKET is unset (nothing done), or
 * -EINVAL (@state empty, too many fds), -EAFNOSUPPORT (an address neither
 * a path nor abstract), -ENAMETOOLONG, or the -errno of socket()/sendmsg().
 */
int sgl_sd_notify(const char *state, const int *fds, size_t nfds);

#define SGL_SD_NOTIFY_TIMEOUT_MS 2000

#endif
