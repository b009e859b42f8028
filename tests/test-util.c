/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-util.c - helpers shared by every test program.  See test-util.h.
 *
 * Invariants: nothing here keeps state between calls; every descriptor it
 * creates is O_CLOEXEC so a test's children inherit only what they are
 * meant to.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test-util.h"

void tu_socketpair(int sv[2]) {
        int r;

        r = socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
        assert_int_equal(r, 0);
}

pid_t tu_fork(tu_child_fn fn, void *userdata) {
        pid_t parent = getpid();
        pid_t pid;

        /* Anything buffered would otherwise be written twice. */
        fflush(stdout);
        fflush(stderr);

        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int r;

                /* Never outlive a test process that crashed or was killed;
                 * check the parent after arming, or we may have missed it. */
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 ||
                    getppid() != parent)
                        _exit(254);

                r = fn(userdata);
                fflush(stdout);
                fflush(stderr);
                if (r != 0 && (r & 0xff) == 0)
                        r = 1;
                _exit(r & 0xff);
        }
        return pid;
}

int tu_wait_status(pid_t pid) {
        int status;
        pid_t r;

        do
                r = waitpid(pid, &status, 0);
        while (r < 0 && errno == EINTR);
        assert_int_equal(r, pid);
        return status;
}

void tu_wait_exit(pid_t pid, int code) {
        int status = tu_wait_status(pid);

        if (WIFSIGNALED(status))
                fail_msg("child %d killed by signal %d", (int)pid,
                         WTERMSIG(status));
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), code);
}

unsigned tu_count_fds(void) {
        unsigned n = 0;
        struct dirent *de;
        DIR *d;

        d = opendir("/proc/self/fd");
        if (!d) {
                fprintf(stderr, "tu_count_fds: /proc/self/fd: %m\n");
                abort();
        }
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);

        /* The directory's own descriptor was listed too. */
        return n - 1;
}

void tu_watchdog(unsigned seconds) {
        /* Default action: terminate, which automake reports as FAIL. */
        signal(SIGALRM, SIG_DFL);
        alarm(seconds);
}

uint64_t tu_fnv1a64_update(uint64_t h, const void *buf, size_t len) {
        const unsigned char *p = buf;

        for (size_t i = 0; i < len; i++) {
                h ^= p[i];
                h *= 0x100000001b3ULL;
        }
        return h;
}

uint64_t tu_fnv1a64(const void *buf, size_t len) {
        return tu_fnv1a64_update(TU_FNV1A64_INIT, buf, len);
}

void tu_fill_pattern(void *buf, size_t len, uint64_t seed) {
        unsigned char *p = buf;
        uint64_t x = seed, z = 0;

        /* splitmix64: cheap, and every seed gives its own stream. */
        for (size_t i = 0; i < len; i++) {
                if (i % 8 == 0) {
                        x += 0x9e3779b97f4a7c15ULL;
                        z = x;
                        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
                        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
                        z ^= z >> 31;
                }
                p[i] = (unsigned char)(z >> (8 * (i % 8)));
        }
}

int tu_is_root(void) {
        return geteuid() == 0;
}

char *tu_mkdtemp(const char *parent) {
        char *path;
        int r;

        if (!parent)
                parent = getenv("TMPDIR");
        if (!parent || !*parent)
                parent = "/tmp";

        r = asprintf(&path, "%s/sigillo-test.XXXXXX", parent);
        assert_true(r > 0);
        assert_non_null(mkdtemp(path));
        return path;
}

static int rm_one(const char *path, const struct stat *st __attribute__((unused)),
                  int type, struct FTW *ftw __attribute__((unused))) {
        if (type == FTW_DP)
                return rmdir(path);
        return unlink(path);
}

void tu_rm_rf(char *path) {
        int r;

        if (!path)
                return;
        r = nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
        assert_int_equal(r, 0);
        free(path);
}
