/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-util.h - small helpers shared by every test program (never installed,
 * never linked into the library).
 *
 * Owns: socketpairs, child processes, descriptor counting, checksums and
 * scratch directories for tests.  Helpers marked "asserts" fail the current
 * cmocka test on error; they may therefore be called only from the test
 * process itself, never from a forked child (see tu_fork()).
 *
 * Include order: this header pulls in what cmocka.h needs, then cmocka.h.
 */
#ifndef SGL_TEST_UTIL_H
#define SGL_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <cmocka.h>

/* A connected AF_UNIX SOCK_SEQPACKET|SOCK_CLOEXEC pair; asserts. */
void tu_socketpair(int sv[2]);

/* A function run in a child process: returns its exit code (0 = passed). */
typedef int (*tu_child_fn)(void *userdata);

/*
 * tu_fork() - runs @fn(@userdata) in a child process, which then _exit()s
 * with its return value (clamped to 1 ... 255 when non-zero, so that no
 * failure can read as success).  The child gets SIGKILL if the test process
 * dies.  @fn must not use cmocka assertions: a failed assertion would
 * longjmp back into the child's copy of the test runner and run the
 * remaining tests a second time.  Use TU_CHILD_CHECK() instead.  Asserts.
 */
pid_t tu_fork(tu_child_fn fn, void *userdata);

/* Reaps @pid (retrying EINTR) and asserts it exited with @code. */
void tu_wait_exit(pid_t pid, int code);

/* Reaps @pid (retrying EINTR) and returns its raw wait status; asserts. */
int tu_wait_status(pid_t pid);

/* In a tu_fork() child: on a false @cond, tell stderr and return the line
 * number (never 0) as the exit code. */
#define TU_CHILD_CHECK(cond)                                                  \
        do {                                                                  \
                if (!(cond)) {                                                \
                        fprintf(stderr, "%s:%d: child check failed: %s\n",    \
                                __FILE__, __LINE__, #cond);                   \
                        return __LINE__ % 255 ? __LINE__ % 255 : 255;         \
                }                                                             \
        } while (0)

/* Open descriptors of this process (entries of /proc/self/fd, not counting
 * the one used to read it): compare before and after to find leaks.  Needs
 * one free descriptor.  Safe in tu_fork() children: on failure it abort()s
 * rather than asserting. */
unsigned tu_count_fds(void);

/* 64-bit FNV-1a: start with TU_FNV1A64_INIT, feed any number of buffers. */
#define TU_FNV1A64_INIT 0xcbf29ce484222325ULL
uint64_t tu_fnv1a64_update(uint64_t h, const void *buf, size_t len);
uint64_t tu_fnv1a64(const void *buf, size_t len);

/* Fills @buf with bytes determined by @seed alone (for checksummed data). */
void tu_fill_pattern(void *buf, size_t len, uint64_t seed);

/* Kills this process (SIGALRM) after @seconds, so that a test that hangs
 * fails instead of stalling `make check`; children do not inherit it. */
void tu_watchdog(unsigned seconds);

/* Whether we run with euid 0 (tests that need root call skip() otherwise). */
int tu_is_root(void);

/*
 * tu_mkdtemp() - a fresh directory (mode 0700) under @parent (NULL:
 * $TMPDIR or /tmp); returns the malloc()ed path.  tu_rm_rf() removes it
 * and everything below, never crossing into another mount (a test that
 * mounts something inside must unmount it first) and frees @path.
 * Both assert.
 */
char *tu_mkdtemp(const char *parent);
void tu_rm_rf(char *path);

#endif
