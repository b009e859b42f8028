/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * common.h - what the subcommands of the sigillo tool share: argument
 * checks, the daemon's address, error lines, and a small blocking client of
 * the rendezvous protocol for the query and writer roles (ls, stat, rm).
 *
 * Conventions: every subcommand returns its exit status: EXIT_OK, EXIT_FAIL
 * (failure, or not found), EXIT_USAGE (bad arguments); every error is one
 * line on stderr, "sigillo CMD: ...".
 */
#ifndef SIGILLO_TOOL_COMMON_H
#define SIGILLO_TOOL_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* how long one blocking exchange with the daemon may take */
#define TOOL_TIMEOUT_MS 5000

/* printf-like: "sigillo CMD: ...\n" on stderr */
void tool_err(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* the address to use: @opt (--socket), else the library's default chain
 * ($SIGILLO_SOCKET, $XDG_RUNTIME_DIR/sigillo/socket, /run/sigillo/socket),
 * resolved so messages can name it.  Points into a static buffer. */
const char *tool_address(const char *opt);

int tool_check_name(const char *cmd, const char *name);
/* ids: 1 ... 2^64-1 (anonymous ids are >= 2^63), decimal only */
int tool_parse_id(const char *cmd, const char *s, uint64_t *ret);
/* NUMBER followed by ms, s, m, h or d; > 0 */
int tool_parse_duration(const char *cmd, const char *s, uint64_t *ret_ns);
/* octal, only bits 0444 */
int tool_parse_mode(const char *cmd, const char *s, unsigned *ret);

/* after getopt_long() returned an error (with opterr = 0) */
void tool_err_option(const char *cmd, char **argv);

/* Errors of connecting to the daemon (-ENOENT, -ECONNREFUSED, ...) */
bool tool_is_unreachable(int err);
void tool_err_unreachable(const char *cmd, const char *address, int err);
/* 0 if something accepts connections at @address, else -errno */
int tool_probe(const char *address);

/* writes all of @buf to @fd; 0 or -errno */
int tool_write_all(int fd, const void *buf, size_t len);

/* ------------------------------------------------ the protocol client */

struct qconn {
        int fd;
        uint32_t serial;
        uint8_t buf[SGL_MSG_MAX_SIZE];
};

/* connects and says HELLO with @role; 0 or -errno */
int qconn_open(struct qconn *q, const char *address, uint32_t role);
void qconn_close(struct qconn *q);
/* sends a message built into q->buf (@len from an sgl_msg_build_*());
 * 0 or -errno */
int qconn_send(struct qconn *q, ssize_t len);
/*
 * receives the next message of the reply with @serial into *m (pointing
 * into q->buf); any descriptor that came with it is closed.  ERROR with
 * @serial or 0 returns its error; EOF -ECONNRESET; anything of another
 * serial -EPROTO; -ETIMEDOUT.
 */
int qconn_recv(struct qconn *q, uint32_t serial, struct sgl_msg *m);

/* "SHRINK|GROW|..." for F_GET_SEALS bits */
const char *tool_seal_names(uint32_t seals, char *buf, size_t size);
/* the user name of @uid, or its number; static buffer */
const char *tool_user_name(uint32_t uid);

#endif
