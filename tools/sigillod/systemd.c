/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * systemd.c - the systemd service protocol, natively: socket activation
 * (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES; sd_listen_fds(3)), notification
 * and the fd store (NOTIFY_SOCKET; sd_notify(3), "FDSTORE=1").
 *
 * Owns: parsing the environment the manager left us and the one datagram
 * socket per notification.  Nothing here keeps state.
 *
 * Invariants:
 * - The environment is input like any other: numbers are parsed strictly
 *   (decimal, no sign, no trailing bytes, in range), and a LISTEN_FDS that
 *   names descriptors we do not have is refused before any is touched.
 * - The LISTEN_* variables are unset on every path (as sd_listen_fds(1)
 *   does), so a child we ever spawn cannot mistake them for its own.
 * - Inherited descriptors leave here FD_CLOEXEC; what they are (listener,
 *   stored memfd, junk) is for the caller to check.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"
#include "systemd.h"

/* Parses a decimal number without sign, spaces or trailing bytes. */
static int parse_u64(const char *s, uint64_t *ret) {
        uint64_t v = 0;

        if (!s || !*s)
                return -EINVAL;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return -EINVAL;
                if (MUL_OVERFLOW(v, 10, &v) || ADD_OVERFLOW(v, (uint64_t)(*s - '0'), &v))
                        return -EINVAL;
        }
        *ret = v;
        return 0;
}

static void unsetenv_all(void) {
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_FDNAMES");
}

void sgl_sd_names_free(char **names) {
        if (!names)
                return;
        for (char **p = names; *p; p++)
                free(*p);
        free(names);
}

/* Splits @s on ':' into exactly @n names; NULL when the count differs
 * (then no name can be trusted to belong to its descriptor). */
static char **split_names(const char *s, size_t n, int *err) {
        char **names;
        size_t count = 1;

        *err = 0;
        if (!s)
                return NULL;
        for (const char *p = s; *p; p++)
                count += *p == ':';
        if (count != n)
                return NULL;
        names = calloc(n + 1, sizeof(*names));
        if (!names) {
                *err = -ENOMEM;
                return NULL;
        }
        for (size_t i = 0; i < n; i++) {
                const char *end = strchrnul(s, ':');
                names[i] = strndup(s, (size_t)(end - s));
                if (!names[i]) {
                        sgl_sd_names_free(names);
                        *err = -ENOMEM;
                        return NULL;
                }
                s = *end ? end + 1 : end;
        }
        return names;
}

static char **empty_names(size_t n) {
        char **names = calloc(n + 1, sizeof(*names));

        if (!names)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                names[i] = strdup("");
                if (!names[i]) {
                        sgl_sd_names_free(names);
                        return NULL;
                }
        }
        return names;
}

int sgl_sd_listen_fds(int **ret_fds, char ***ret_names, size_t *ret_n) {
        const char *e;
        uint64_t pid, n;
        char **names = NULL;
        int *fds = NULL;
        int r;

        if (!ret_fds || !ret_n)
                return -EINVAL;

        e = getenv("LISTEN_PID");
        if (!e) {
                r = 0;
                n = 0;
                goto done;
        }
        r = parse_u64(e, &pid);
        if (r < 0 || pid == 0 || pid > INT_MAX)
                goto fail_inval;
        if ((pid_t)pid != getpid()) {
                /* meant for another process (we inherited it): not ours */
                r = 0;
                n = 0;
                goto done;
        }
        e = getenv("LISTEN_FDS");
        if (!e) {
                r = 0;
                n = 0;
                goto done;
        }
        r = parse_u64(e, &n);
        if (r < 0 || n > (uint64_t)INT_MAX - SGL_SD_LISTEN_FDS_START)
                goto fail_inval;

        /* every descriptor must be there before we change any of them: a
         * huge count stops at the first one we do not have */
        for (uint64_t i = 0; i < n; i++)
                if (fcntl(SGL_SD_LISTEN_FDS_START + (int)i, F_GETFD) < 0) {
                        r = -EBADF;
                        goto fail;
                }

        if (n > 0) {
                fds = calloc(n, sizeof(*fds));
                if (!fds) {
                        r = -ENOMEM;
                        goto fail;
                }
                if (ret_names) {
                        names = split_names(getenv("LISTEN_FDNAMES"), n, &r);
                        if (r < 0)
                                goto fail;
                        if (!names && !(names = empty_names(n))) {
                                r = -ENOMEM;
                                goto fail;
                        }
                }
        }
        for (uint64_t i = 0; i < n; i++) {
                int fd = SGL_SD_LISTEN_FDS_START + (int)i;
                int flags = fcntl(fd, F_GETFD);

                if (flags < 0 || (!(flags & FD_CLOEXEC) &&
                                  fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)) {
                        r = sgl_negerrno();
                        goto fail;
                }
                fds[i] = fd;
        }
        r = (int)n;
done:
        unsetenv_all();
        *ret_fds = fds;
        if (ret_names)
                *ret_names = names;
        *ret_n = (size_t)n;
        return r;

fail_inval:
        r = -EINVAL;
fail:
        unsetenv_all();
        free(fds);
        sgl_sd_names_free(names);
        return r;
}

bool sgl_sd_is_seqpacket_listener(int fd) {
        int domain = 0, type = 0, listening = 0;
        socklen_t len;
        struct stat st;

        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
                return false;
        len = sizeof(domain);
        if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 || len != sizeof(domain))
                return false;
        len = sizeof(type);
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || len != sizeof(type))
                return false;
        len = sizeof(listening);
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 ||
            len != sizeof(listening))
                return false;
        return domain == AF_UNIX && type == SOCK_SEQPACKET && listening;
}

/* The most descriptors one message carries (the kernel's SCM_MAX_FD). */
#define NOTIFY_MAX_FDS 253

int sgl_sd_notify(const char *state, const int *fds, size_t nfds) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * NOTIFY_MAX_FDS)];
        } control;
        struct timeval tv = {
                .tv_sec = SGL_SD_NOTIFY_TIMEOUT_MS / 1000,
                .tv_usec = (SGL_SD_NOTIFY_TIMEOUT_MS % 1000) * 1000,
        };
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct iovec iov;
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
        _cleanup_close_ int sock = -1;
        const char *e;
        size_t len;
        ssize_t n;

        if (!state || !*state || nfds > NOTIFY_MAX_FDS || (nfds > 0 && !fds))
                return -EINVAL;
        e = getenv("NOTIFY_SOCKET");
        if (!e || !*e)
                return 0;
        if (e[0] != '/' && e[0] != '@')
                return -EAFNOSUPPORT; /* vsock: and friends: not for us */
        len = strlen(e);
        if (len >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, e, len);
        if (e[0] == '@')
                sa.sun_path[0] = '\0'; /* abstract, unterminated */
        else
                len++;
        msg.msg_name = &sa;
        msg.msg_namelen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);

        iov.iov_base = (void *)state;
        iov.iov_len = strlen(state);
        if (nfds > 0) {
                struct cmsghdr *c;

                memset(&control, 0, sizeof(control));
                msg.msg_control = control.buf;
                msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
                c = CMSG_FIRSTHDR(&msg);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
        }

        sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (sock < 0)
                return sgl_negerrno();
        /* a wedged manager must not hang the daemon's one loop for good */
        (void)setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        do
                n = sendmsg(sock, &msg, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return sgl_negerrno();
        return (size_t)n == iov.iov_len ? 1 : -EMSGSIZE;
}
