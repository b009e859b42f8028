/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-sigillod.h - the daemon a test runs, and the helpers shared by the
 * tests that run the real sigillod (test-sigillod.c): starting and stopping
 * it, its log, its descriptors, and the fd store of a service manager.
 * Asserting helpers belong to the test process, never to a forked child.
 */
#ifndef SGL_TEST_SIGILLOD_H
#define SGL_TEST_SIGILLOD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
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

/* CLOCK_MONOTONIC in milliseconds: the clock of every deadline here. */
uint64_t daemon_now_ms(void);
/* A fresh directory (0755: other uids must reach the socket) with the
 * socket, policy directory and log paths. */
void daemon_init(struct daemon *dm);
/* Starts the daemon ($SIGILLOD, else SIGILLOD_PATH) on dm->sock with its
 * policy directory, the @extra arguments (NULL-terminated, may be NULL),
 * and $NOTIFY_SOCKET / LISTEN_FDS when dm->notify / dm->n_listen are set;
 * returns once it accepts connections. */
void daemon_start(struct daemon *dm, const char *const *extra);
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

/* ---------------------------------------- the service manager's fd store */

#define STORE_MAX 512

/* What systemd keeps for the daemon.  A thread takes the notifications as
 * they come (the datagram queue of $NOTIFY_SOCKET is short, and the daemon
 * must never wait on us): FDSTORE=1, FDSTOREREMOVE=1 with FDNAME=, READY=1,
 * STOPPING=1; anything else counts in @errors.  Every field is under @lock. */
struct store {
        int sock;                /* $NOTIFY_SOCKET */
        char path[256];
        char names[STORE_MAX][80];
        int fds[STORE_MAX];
        size_t n;
        unsigned ready, stopping, removes, errors;
        pthread_t thread;
        pthread_mutex_t lock;
        bool stop;
};

/* Binds @dm's directory's "notify" socket and starts taking from it. */
void store_open(struct store *st, const struct daemon *dm);
/* Stops the thread, closes every stored descriptor and the socket. */
void store_close(struct store *st);
/* With the lock held: the index of @name, or -1; how many names start
 * with @prefix; closes and forgets every descriptor stored as @name. */
int store_find(const struct store *st, const char *name);
size_t store_count(const struct store *st, const char *prefix);
void store_drop(struct store *st, const char *name);
/* Waits (10 s at most) until the daemon said READY=1 @n times in all. */
void store_wait_ready(struct store *st, unsigned n);

/* Waits until @cond holds (5 s at most), with the store locked while it is
 * evaluated and afterwards: STORE_UNLOCK() when done looking. */
#define STORE_WAIT(st, cond)                                                  \
        do {                                                                  \
                uint64_t _dl = daemon_now_ms() + 5000;                        \
                for (;;) {                                                    \
                        pthread_mutex_lock(&(st)->lock);                      \
                        if (cond)                                             \
                                break;                                        \
                        pthread_mutex_unlock(&(st)->lock);                    \
                        assert_true(daemon_now_ms() < _dl);                   \
                        usleep(5000);                                         \
                }                                                             \
                assert_int_equal((st)->errors, 0);                            \
        } while (0)
#define STORE_UNLOCK(st) pthread_mutex_unlock(&(st)->lock)

#endif
