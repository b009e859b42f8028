/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-sigillod.h - the daemon a test runs, and the helpers shared by the
 * tests that run the real sigillod (test-sigillod.c).  Asserting helpers
 * belong to the test process, never to a forked child.
 */
#ifndef SGL_TEST_SIGILLOD_H
#define SGL_TEST_SIGILLOD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct daemon {
        pid_t pid;
        char *dir;
        char sock[108];
        char policy[256];
        char log[256];
        /* playing the service manager (fd_store_restart) */
        const char *notify;      /* $NOTIFY_SOCKET for the daemon */
        const int *listen_fds;   /* LISTEN_FDS, named LISTEN_FDNAMES */
        char *const *listen_names;
        size_t n_listen;
        unsigned base;           /* descriptors with no client at all */
};

/* SIGTERM; the daemon must exit 0 (and, under a sanitizer, leak nothing).
 * daemon_stop_keep() leaves its directory for another start. */
void daemon_stop_keep(struct daemon *dm);
void daemon_stop(struct daemon *dm);
void daemon_dump_log(const struct daemon *dm);
unsigned daemon_fds(const struct daemon *dm);
unsigned daemon_fds_sockets(const struct daemon *dm, unsigned *ret_sockets);
bool log_has(const struct daemon *dm, const char *s);
/* Descriptors of the daemon with no client at all, once it settled. */
unsigned daemon_baseline(const struct daemon *dm);
/* Waits (up to 8 s) for exactly @want descriptors, else fails the test. */
void daemon_wait_fds(const struct daemon *dm, unsigned want);

#endif
