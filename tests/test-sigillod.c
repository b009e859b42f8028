/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-sigillod.c - helpers for tests that run the real sigillod: starting
 * and stopping it, reading its log, counting its descriptors, and playing
 * the service manager's fd store (test-sigillod.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fdpass.h"
#include "test-util.h"
#include "test-sigillod.h"

#ifndef SIGILLOD_PATH
#define SIGILLOD_PATH "tools/sigillod/sigillod"
#endif

#ifndef ELEMENTSOF
#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))
#endif

uint64_t daemon_now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void daemon_init(struct daemon *dm) {
        memset(dm, 0, sizeof(*dm));
        dm->dir = tu_mkdtemp(NULL);
        /* other uids must reach the socket */
        assert_int_equal(chmod(dm->dir, 0755), 0);
        snprintf(dm->sock, sizeof(dm->sock), "%s/socket", dm->dir);
        snprintf(dm->policy, sizeof(dm->policy), "%s/policy.d", dm->dir);
        snprintf(dm->log, sizeof(dm->log), "%s/log", dm->dir);
        assert_int_equal(mkdir(dm->policy, 0755), 0);
}

void daemon_start(struct daemon *dm, const char *const *extra) {
        const char *path = getenv("SIGILLOD");
        const char *argv[32];
        size_t n = 0;
        uint64_t deadline;

        if (!path || !*path)
                path = SIGILLOD_PATH;
        argv[n++] = path;
        argv[n++] = "--socket";
        argv[n++] = dm->sock;
        argv[n++] = "--policy";
        argv[n++] = dm->policy;
        for (; extra && *extra && n < ELEMENTSOF(argv) - 2; extra++)
                argv[n++] = *extra;
        if (getenv("SGLD_TEST_VERBOSE"))
                argv[n++] = "--verbose";
        argv[n] = NULL;

        if (getenv("SGLD_TEST_LOG"))
                fprintf(stderr, "sigillod log: %s\n", dm->log);
        fflush(stdout);
        fflush(stderr);
        dm->pid = fork();
        assert_true(dm->pid >= 0);
        if (dm->pid == 0) {
                int fd = open(dm->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (fd < 0 || null < 0 || dup2(fd, 2) < 0 || dup2(null, 0) < 0)
                        _exit(126);
                unsetenv("NOTIFY_SOCKET");
                unsetenv("LISTEN_PID");
                unsetenv("LISTEN_FDS");
                unsetenv("LISTEN_FDNAMES");
                if (dm->notify)
                        setenv("NOTIFY_SOCKET", dm->notify, 1);
                if (dm->n_listen > 0) {
                        char num[32], *names = calloc(dm->n_listen, 256);
                        int high[256];

                        if (!names || dm->n_listen > ELEMENTSOF(high))
                                _exit(125);
                        /* out of the way first, then into 3, 4, ... */
                        for (size_t i = 0; i < dm->n_listen; i++)
                                if ((high[i] = fcntl(dm->listen_fds[i], F_DUPFD_CLOEXEC, 1000)) < 0)
                                        _exit(124);
                        for (size_t i = 0; i < dm->n_listen; i++) {
                                if (dup2(high[i], 3 + (int)i) < 0)
                                        _exit(123);
                                if (i > 0)
                                        strcat(names, ":");
                                strcat(names, dm->listen_names[i]);
                        }
                        close_range(3 + (unsigned)dm->n_listen, ~0U, 0);
                        snprintf(num, sizeof(num), "%zu", dm->n_listen);
                        setenv("LISTEN_FDS", num, 1);
                        setenv("LISTEN_FDNAMES", names, 1);
                        snprintf(num, sizeof(num), "%d", (int)getpid());
                        setenv("LISTEN_PID", num, 1);
                } else {
                        close_range(3, ~0U, 0);
                }
                execv(path, (char *const *)argv);
                _exit(127);
        }

        /* up once it accepts connections */
        deadline = daemon_now_ms() + 10000;
        for (;;) {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
                int k;

                assert_true(s >= 0);
                strcpy(sa.sun_path, dm->sock);
                k = connect(s, (struct sockaddr *)&sa, sizeof(sa));
                close(s);
                if (k == 0)
                        break;
                assert_int_equal(waitpid(dm->pid, NULL, WNOHANG), 0);
                assert_true(daemon_now_ms() < deadline);
                usleep(10000);
        }
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
        uint64_t deadline = daemon_now_ms() + 5000;
        unsigned n = 0, prev = 0, socks = 0;

        /* twice the same, with only the listener among the sockets */
        while (!log_has(dm, "listening on") ||
               (n = daemon_fds_sockets(dm, &socks), socks != 1 || n != prev)) {
                assert_true(daemon_now_ms() < deadline);
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
        uint64_t deadline = daemon_now_ms() + 8000;
        unsigned n;

        while ((n = daemon_fds(dm)) != want && daemon_now_ms() < deadline)
                usleep(10000);
        if (n != want) {
                char cmd[128];

                daemon_dump_log(dm);
                snprintf(cmd, sizeof(cmd), "ls -l /proc/%d/fd >&2", (int)dm->pid);
                (void)!system(cmd);
                fail_msg("daemon holds %u descriptors, expected %u", n, want);
        }
}

/* ------------------------------------------------- a service manager */

static void *store_thread(void *userdata);

void store_open(struct store *st, const struct daemon *dm) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        memset(st, 0, sizeof(*st));
        snprintf(st->path, sizeof(st->path), "%s/notify", dm->dir);
        st->sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        assert_true(st->sock >= 0);
        strcpy(sa.sun_path, st->path);
        assert_int_equal(bind(st->sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(pthread_mutex_init(&st->lock, NULL), 0);
        assert_int_equal(pthread_create(&st->thread, NULL, store_thread, st), 0);
}

void store_drop(struct store *st, const char *name) {
        for (size_t i = 0; i < st->n;) {
                if (strcmp(st->names[i], name) != 0) {
                        i++;
                        continue;
                }
                close(st->fds[i]);
                st->n--;
                memmove(st->names[i], st->names[st->n], sizeof(st->names[0]));
                st->fds[i] = st->fds[st->n];
        }
}

int store_find(const struct store *st, const char *name) {
        for (size_t i = 0; i < st->n; i++)
                if (strcmp(st->names[i], name) == 0)
                        return (int)i;
        return -1;
}

/* Takes every notification now pending: FDSTORE, FDSTOREREMOVE, READY,
 * STOPPING, as systemd would. */
static void store_pump(struct store *st) {
        for (;;) {
                char buf[4096], *line, *save = NULL, name[80] = "";
                int fds[SGL_FDPASS_MAX];
                size_t nfds = 0;
                bool put = false, remove = false;
                ssize_t n = sgl_fdpass_recv(st->sock, buf, sizeof(buf) - 1, fds, SGL_FDPASS_MAX, &nfds);

                if (n == -EAGAIN)
                        return;
                if (n <= 0) {
                        st->errors++;
                        return;
                }
                buf[n] = '\0';
                for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                        if (strcmp(line, "READY=1") == 0)
                                st->ready++;
                        else if (strcmp(line, "STOPPING=1") == 0)
                                st->stopping++;
                        else if (strcmp(line, "FDSTORE=1") == 0)
                                put = true;
                        else if (strcmp(line, "FDSTOREREMOVE=1") == 0)
                                remove = true;
                        else if (strncmp(line, "FDNAME=", 7) == 0 && strlen(line + 7) < sizeof(name))
                                strcpy(name, line + 7);
                        else if (strncmp(line, "STATUS=", 7) != 0)
                                st->errors++;
                }
                /* FDNAME: at most 255 printable characters, no ':' */
                if ((put || remove) && (!name[0] || strchr(name, ':')))
                        st->errors++;
                if (put && nfds == 1 && st->n < STORE_MAX) {
                        strcpy(st->names[st->n], name);
                        st->fds[st->n++] = fds[0];
                } else {
                        if (put || nfds > 0)
                                st->errors++;
                        for (size_t i = 0; i < nfds; i++)
                                close(fds[i]);
                }
                if (remove) {
                        store_drop(st, name);
                        st->removes++;
                }
        }
}

static void *store_thread(void *userdata) {
        struct store *st = userdata;

        for (;;) {
                struct pollfd p = { .fd = st->sock, .events = POLLIN };
                bool stop;

                poll(&p, 1, 20);
                pthread_mutex_lock(&st->lock);
                store_pump(st);
                stop = st->stop;
                pthread_mutex_unlock(&st->lock);
                if (stop)
                        return NULL;
        }
}


void store_close(struct store *st) {
        pthread_mutex_lock(&st->lock);
        st->stop = true;
        pthread_mutex_unlock(&st->lock);
        pthread_join(st->thread, NULL);
        for (size_t i = 0; i < st->n; i++)
                close(st->fds[i]);
        close(st->sock);
}

size_t store_count(const struct store *st, const char *prefix) {
        size_t k = 0;

        for (size_t i = 0; i < st->n; i++)
                k += strncmp(st->names[i], prefix, strlen(prefix)) == 0;
        return k;
}

void store_wait_ready(struct store *st, unsigned n) {
        uint64_t deadline = daemon_now_ms() + 10000;

        for (;;) {
                bool ok;

                pthread_mutex_lock(&st->lock);
                ok = st->ready >= n;
                pthread_mutex_unlock(&st->lock);
                if (ok)
                        return;
                assert_true(daemon_now_ms() < deadline);
                usleep(5000);
        }
}
