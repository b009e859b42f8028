/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-sigillod.c - helpers for tests that run the real sigillod: stopping
 * it, reading its log, and counting its descriptors (test-sigillod.h).
 * Each test program starts the daemon its own way.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test-util.h"
#include "test-sigillod.h"

static uint64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void daemon_dump_log(const struct daemon *dm) {
        char buf[4096];
        ssize_t n;
        int fd = open(dm->log, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return;
        fprintf(stderr, "---- sigillod log ----\n");
        while ((n = read(fd, buf, sizeof(buf))) > 0)
                fwrite(buf, 1, (size_t)n, stderr);
        fprintf(stderr, "----------------------\n");
        close(fd);
}

/* SIGTERM; the daemon must exit 0 (and, under a sanitizer, leak nothing).
 * Its directory stays, for another daemon_start(). */
void daemon_stop_keep(struct daemon *dm) {
        int status;

        assert_int_equal(kill(dm->pid, SIGTERM), 0);
        status = tu_wait_status(dm->pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || getenv("SGLD_TEST_LOG"))
                daemon_dump_log(dm);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        dm->pid = 0;
}

void daemon_stop(struct daemon *dm) {
        daemon_stop_keep(dm);
        tu_rm_rf(dm->dir);
        dm->dir = NULL;
}

unsigned daemon_fds(const struct daemon *dm) {
        char path[64];
        struct dirent *de;
        unsigned n = 0;
        DIR *dir;

        snprintf(path, sizeof(path), "/proc/%d/fd", (int)dm->pid);
        dir = opendir(path);
        assert_non_null(dir);
        while ((de = readdir(dir)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(dir);
        return n;
}

/* The daemon's descriptors (one pass over /proc/PID/fd), and how many of
 * them are sockets. */
unsigned daemon_fds_sockets(const struct daemon *dm, unsigned *ret_sockets) {
        char path[64], link[64];
        struct dirent *de;
        unsigned n = 0, socks = 0;
        DIR *dir;

        snprintf(path, sizeof(path), "/proc/%d/fd", (int)dm->pid);
        dir = opendir(path);
        assert_non_null(dir);
        while ((de = readdir(dir))) {
                char fdpath[384];
                ssize_t k;

                if (de->d_name[0] == '.')
                        continue;
                n++;
                snprintf(fdpath, sizeof(fdpath), "%s/%s", path, de->d_name);
                k = readlink(fdpath, link, sizeof(link) - 1);
                if (k > 0 && (link[k] = '\0', strncmp(link, "socket:", 7) == 0))
                        socks++;
        }
        closedir(dir);
        *ret_sockets = socks;
        return n;
}

/* Whether the daemon's log has a line with @s. */
bool log_has(const struct daemon *dm, const char *s) {
        char buf[1 << 20];
        ssize_t n;
        int fd = open(dm->log, O_RDONLY | O_CLOEXEC);

        assert_true(fd >= 0);
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        assert_true(n >= 0);
        buf[n] = '\0';
        return strstr(buf, s) != NULL;
}

/* The descriptors of a daemon without any client: once it said it is
 * listening (set-up done, nothing transient left open) and the connection
 * of the start-up probe is gone, so only the listening socket is a socket. */
unsigned daemon_baseline(const struct daemon *dm) {
        uint64_t deadline = now_ms() + 5000;
        unsigned n = 0, prev = 0, socks = 0;

        /* twice the same, with only the listener among the sockets */
        while (!log_has(dm, "listening on") ||
               (n = daemon_fds_sockets(dm, &socks), socks != 1 || n != prev)) {
                assert_true(now_ms() < deadline);
                prev = socks == 1 ? n : 0;
                usleep(20000);
        }
        if (getenv("SGLD_TEST_LOG")) {
                char cmd[128];
                snprintf(cmd, sizeof(cmd), "ls -l /proc/%d/fd >&2", (int)dm->pid);
                (void)!system(cmd);
        }
        return n;
}

/* Waits (up to 5 s) for the daemon to hold exactly @want descriptors. */
void daemon_wait_fds(const struct daemon *dm, unsigned want) {
        uint64_t deadline = now_ms() + 8000;
        unsigned n;

        while ((n = daemon_fds(dm)) != want && now_ms() < deadline)
                usleep(10000);
        if (n != want) {
                char cmd[128];

                daemon_dump_log(dm);
                snprintf(cmd, sizeof(cmd), "ls -l /proc/%d/fd >&2", (int)dm->pid);
                (void)!system(cmd);
                fail_msg("daemon holds %u descriptors, expected %u", n, want);
        }
}

