/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* common.c - shared helpers of the sigillo tool (see common.h). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "fdpass.h"
#include "rendezvous.h"

void tool_err(const char *cmd, const char *fmt, ...) {
        va_list ap;

        fflush(stdout);
        fprintf(stderr, "sigillo %s: ", cmd);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

const char *tool_address(const char *opt) {
        static char buf[256];
        const char *e;

        if (opt)
                return opt;
        /* the same chain as the library's NULL address */
        if ((e = secure_getenv("SIGILLO_SOCKET")) && *e)
                snprintf(buf, sizeof(buf), "%s", e);
        else if ((e = secure_getenv("XDG_RUNTIME_DIR")) && *e == '/')
                snprintf(buf, sizeof(buf), "%s/sigillo/socket", e);
        else
                snprintf(buf, sizeof(buf), "/run/sigillo/socket");
        return buf;
}

int tool_check_name(const char *cmd, const char *name) {
        if (!sgl_name_valid(name, strlen(name))) {
                tool_err(cmd, "invalid area name '%s' (1 to 255 of A-Z a-z 0-9 . _ -, not starting with '.')",
                         name);
                return -EINVAL;
        }
        return 0;
}

static int parse_u64(const char *s, uint64_t *ret, const char **end) {
        uint64_t v = 0;
        const char *p = s;

        if (*p < '0' || *p > '9')
                return -EINVAL;
        for (; *p >= '0' && *p <= '9'; p++) {
                unsigned d = (unsigned)(*p - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                v = v * 10 + d;
        }
        *ret = v;
        *end = p;
        return 0;
}

int tool_parse_id(const char *cmd, const char *s, uint64_t *ret) {
        const char *end;
        uint64_t v;

        if (parse_u64(s, &v, &end) < 0 || *end || v == 0) {
                tool_err(cmd, "invalid key '%s' (a decimal number from 1 to %" PRIu64 ")", s, UINT64_MAX);
                return -EINVAL;
        }
        *ret = v;
        return 0;
}

int tool_parse_duration(const char *cmd, const char *s, uint64_t *ret_ns) {
        static const struct { const char *unit; uint64_t ns; } units[] = {
                { "ms", 1000000ULL },
                { "s", 1000000000ULL },
                { "m", 60ULL * 1000000000ULL },
                { "h", 3600ULL * 1000000000ULL },
                { "d", 86400ULL * 1000000000ULL },
        };
        const char *end;
        uint64_t v;

        if (parse_u64(s, &v, &end) == 0 && v > 0)
                for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
                        if (strcmp(end, units[i].unit) != 0)
                                continue;
                        if (v > UINT64_MAX / 4 / units[i].ns)
                                break; /* far beyond any clock */
                        *ret_ns = v * units[i].ns;
                        return 0;
                }
        tool_err(cmd, "invalid duration '%s' (a positive number and a unit: 500ms, 30s, 5m, 2h, 1d)", s);
        return -EINVAL;
}

int tool_parse_mode(const char *cmd, const char *s, unsigned *ret) {
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(s, &end, 8);
        if (*s < '0' || *s > '7' || *end || errno || (v & ~(unsigned long)SGL_MSG_MODE_MASK)) {
                tool_err(cmd, "invalid mode '%s' (octal, only read bits: 0400, 0440, 0444, ...)", s);
                return -EINVAL;
        }
        *ret = (unsigned)v;
        return 0;
}

bool tool_is_unreachable(int err) {
        switch (err) {
        case -ENOENT:
        case -ECONNREFUSED:
        case -ETIMEDOUT:
        case -ENOTDIR:
        case -ENAMETOOLONG:
        case -ENOTSOCK:
        case -EPROTOTYPE:
                return true;
        default:
                return false;
        }
}

void tool_err_unreachable(const char *cmd, const char *address, int err) {
        tool_err(cmd, "cannot reach sigillod at %s: %s", address, strerror(-err));
}

int tool_probe(const char *address) {
        int fd = sgl_connect_host(address, TOOL_TIMEOUT_MS);

        if (fd < 0)
                return fd;
        close(fd);
        return 0;
}

int tool_write_all(int fd, const void *buf, size_t len) {
        const uint8_t *p = buf;

        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

/* ------------------------------------------------ the protocol client */

int qconn_send(struct qconn *q, ssize_t len) {
        ssize_t n;

        if (len < 0)
                return (int)len;
        n = sgl_fdpass_send(q->fd, q->buf, (size_t)len, NULL, 0);
        if (n < 0)
                return (int)n;
        return n == len ? 0 : -EIO;
}

int qconn_recv(struct qconn *q, uint32_t serial, struct sgl_msg *m) {
        struct pollfd p = { .fd = q->fd, .events = POLLIN };
        bool reset = false;
        int fds[SGL_MSG_MAX_FDS];
        size_t nfds = 0;
        ssize_t n;
        int k;

again:
        k = poll(&p, 1, TOOL_TIMEOUT_MS);
        if (k < 0)
                return errno == EINTR ? -EINTR : -errno;
        if (k == 0)
                return -ETIMEDOUT;
        n = sgl_fdpass_recv(q->fd, q->buf, sizeof(q->buf), fds, SGL_MSG_MAX_FDS, &nfds);
        if (n == -ECONNRESET && !reset) {
                /* doc/protocol.md section 9: read once more */
                reset = true;
                goto again;
        }
        if (n < 0)
                return (int)n;
        if (n == 0)
                return -ECONNRESET;
        k = sgl_msg_parse(q->buf, (size_t)n, nfds, m);
        for (size_t i = 0; i < nfds; i++)
                close(fds[i]);
        if (k < 0 || sgl_msg_type_is_request(m->type))
                return -EPROTO;
        if (m->type == SGL_MSG_ERROR && (m->serial == serial || m->serial == 0))
                return m->error.error;
        if (m->serial != serial)
                return -EPROTO;
        return 0;
}

void qconn_close(struct qconn *q) {
        if (q->fd >= 0)
                close(q->fd);
        q->fd = -1;
}

int qconn_open(struct qconn *q, const char *address, uint32_t role) {
        struct sgl_msg m;
        uint32_t serial;
        int k;

        q->serial = 0;
        q->fd = sgl_connect_host(address, TOOL_TIMEOUT_MS);
        if (q->fd < 0)
                return q->fd;
        serial = ++q->serial;
        k = qconn_send(q, sgl_msg_build_hello(q->buf, sizeof(q->buf), serial, SGL_PROTO_VERSION_MIN,
                                              SGL_PROTO_VERSION_MAX, role));
        if (k >= 0)
                k = qconn_recv(q, serial, &m);
        if (k >= 0 && (m.type != SGL_MSG_WELCOME || m.welcome.version < SGL_PROTO_VERSION_MIN ||
                       m.welcome.version > SGL_PROTO_VERSION_MAX))
                k = -EPROTO;
        if (k < 0)
                qconn_close(q);
        return k;
}

const char *tool_seal_names(uint32_t seals, char *buf, size_t size) {
        static const struct { uint32_t bit; const char *name; } names[] = {
                { F_SEAL_SHRINK, "SHRINK" },
                { F_SEAL_GROW, "GROW" },
                { F_SEAL_WRITE, "WRITE" },
                { F_SEAL_SEAL, "SEAL" },
                { F_SEAL_FUTURE_WRITE, "FUTURE_WRITE" },
                { 0x20, "EXEC" }, /* F_SEAL_EXEC, Linux 6.3 */
        };
        size_t n = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
                if (seals & names[i].bit)
                        n += (size_t)snprintf(buf + n, n < size ? size - n : 0, "%s%s",
                                              n ? "|" : "", names[i].name);
        if (n == 0)
                snprintf(buf, size, "-");
        return buf;
}

const char *tool_user_name(uint32_t uid) {
        static char buf[64];
        struct passwd *pw = getpwuid((uid_t)uid);

        if (pw && pw->pw_name && strlen(pw->pw_name) < sizeof(buf))
                snprintf(buf, sizeof(buf), "%s", pw->pw_name);
        else
                snprintf(buf, sizeof(buf), "%" PRIu32, uid);
        return buf;
}

void tool_err_option(const char *cmd, char **argv) {
        const char *arg = optind > 0 ? argv[optind - 1] : "?";

        if (optopt && strchr(arg, '=') == NULL && arg[0] == '-' && arg[1] != '-' && arg[1] != (char)optopt)
                tool_err(cmd, "bad option '-%c' (try sigillo %s --help)", optopt, cmd);
        else
                tool_err(cmd, "bad option '%s' or its argument is missing (try sigillo %s --help)", arg, cmd);
}
