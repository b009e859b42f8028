/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-systemd.c - sigillod's service-manager glue (tools/sigillod/systemd.c)
 * and its privilege drop (tools/sigillod/privs.c).
 *
 * Proves:
 * - socket activation for real: this binary re-executes itself under
 *   systemd-socket-activate (the tool systemd ships for exactly this), and
 *   the child finds its listeners with their names, FD_CLOEXEC set, the
 *   LISTEN_* variables gone, and tells a SEQPACKET listener from a stream one;
 * - notification: a NOTIFY_SOCKET the test binds (path and abstract)
 *   receives READY=1 and STATUS= verbatim, and FDSTORE=1 with descriptors
 *   that arrive intact (same inode, same bytes, same seals, pipe still
 *   connected), without leaking any;
 * - hostile environments: a LISTEN_PID of another process, LISTEN_FDS of -1,
 *   huge, empty or not a number, descriptors that are not there, more or
 *   fewer names than descriptors: no crash, no descriptor touched unless the
 *   whole set is valid, the variables always unset;
 * - the privilege drop: as root, a child ends with every capability set
 *   empty (ambient and bounding included), NoNewPrivs 1, CAP_CHOWN and
 *   CAP_SETUID really gone, and RLIMIT_NOFILE raised (to the hard limit, to
 *   a wanted value, and past the hard limit while CAP_SYS_RESOURCE allowed);
 *   without privileges it still sets no_new_privs and raises the soft limit.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test-util.h"
#include "fdpass.h"
#include "privs.h"
#include "systemd.h"

#define ACTIVATE "/usr/bin/systemd-socket-activate"
#define CHILD_ARG "--sd-child"

static void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static bool fd_cloexec(int fd) {
        int fl = fcntl(fd, F_GETFD);
        return fl >= 0 && (fl & FD_CLOEXEC);
}

static bool listen_env_gone(void) {
        return !getenv("LISTEN_PID") && !getenv("LISTEN_FDS") && !getenv("LISTEN_FDNAMES");
}

/* ------------------------------------------------- socket-activated child */

/*
 * Runs in this binary re-executed by systemd-socket-activate.  Prints one
 * line: "r=R n=N env=E pid=P" then " name:listener:cloexec" per descriptor.
 */
static int sd_child(void) {
        char **names = NULL;
        int *fds = NULL;
        size_t n = 0;
        int r;

        /* the manager set LISTEN_PID to the pid that execs us: ours */
        r = sgl_sd_listen_fds(&fds, &names, &n);
        printf("r=%d n=%zu env=%d", r, n, listen_env_gone() ? 0 : 1);
        for (size_t i = 0; r >= 0 && i < n; i++)
                printf(" %s:%d:%d:%d", names[i], fds[i],
                       sgl_sd_is_seqpacket_listener(fds[i]) ? 1 : 0,
                       fd_cloexec(fds[i]) ? 1 : 0);
        printf("\n");
        fflush(stdout);
        for (size_t i = 0; r >= 0 && i < n; i++)
                close(fds[i]);
        free(fds);
        sgl_sd_names_free(names);
        return 0;
}

/* Connects to @path (retrying while the activator sets up), triggering the
 * exec of the child. */
static int connect_retry(const char *path, int type) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        assert_true(strlen(path) < sizeof(sa.sun_path));
        strcpy(sa.sun_path, path);
        for (int i = 0; i < 500; i++) {
                fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
                assert_true(fd >= 0);
                if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
                        return fd;
                close(fd);
                sleep_ms(10);
        }
        fail_msg("could not connect to %s", path);
        return -1;
}

/* Runs systemd-socket-activate @args... with this binary as the command,
 * connects to @trigger, and returns the child's report line. */
static void run_activated(const char *const *args, const char *trigger, int type,
                          char *report, size_t size) {
        char self[PATH_MAX];
        const char *argv[16];
        size_t argc = 0, len = 0;
        int out[2], conn, status;
        ssize_t k, n;
        pid_t pid;

        n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        assert_true(n > 0);
        self[n] = '\0';

        argv[argc++] = ACTIVATE;
        for (; *args; args++)
                argv[argc++] = *args;
        argv[argc++] = self;
        argv[argc++] = CHILD_ARG;
        argv[argc] = NULL;
        assert_true(argc < sizeof(argv) / sizeof(argv[0]));

        assert_int_equal(pipe2(out, O_CLOEXEC), 0);
        fflush(stdout);
        fflush(stderr);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (dup2(out[1], 1) < 0 || null < 0 || dup2(null, 0) < 0 ||
                    prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                        _exit(127);
                execv(ACTIVATE, (char *const *)argv);
                _exit(127);
        }
        close(out[1]);

        conn = connect_retry(trigger, type);
        for (;;) {
                struct pollfd p = { .fd = out[0], .events = POLLIN };
                assert_true(poll(&p, 1, 10000) == 1);
                k = read(out[0], report + len, size - 1 - len);
                assert_true(k >= 0);
                if (k == 0)
                        break;
                len += (size_t)k;
                assert_true(len < size - 1);
        }
        report[len] = '\0';
        close(out[0]);
        close(conn);
        status = tu_wait_status(pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

static bool have_activate(void) {
        return access(ACTIVATE, X_OK) == 0;
}

/* One named SEQPACKET listener, as sigillod.socket will pass it. */
static void test_activate_one(void **state) {
        char report[512], expect[512], *dir, path[256];

        if (!have_activate())
                skip();
        dir = tu_mkdtemp(NULL);
        snprintf(path, sizeof(path), "%s/sigillo.socket", dir);
        run_activated((const char *[]) { "--seqpacket", "-l", path,
                                         "--fdname=sigillo-main", NULL },
                      path, SOCK_SEQPACKET, report, sizeof(report));
        snprintf(expect, sizeof(expect), "r=1 n=1 env=0 sigillo-main:3:1:1\n");
        assert_string_equal(report, expect);
        tu_rm_rf(dir);
}

/* Two listeners with two names; the order is the manager's. */
static void test_activate_two(void **state) {
        char report[512], *dir, a[256], b[256];

        if (!have_activate())
                skip();
        dir = tu_mkdtemp(NULL);
        snprintf(a, sizeof(a), "%s/a", dir);
        snprintf(b, sizeof(b), "%s/b", dir);
        run_activated((const char *[]) { "--seqpacket", "-l", a, "-l", b,
                                         "--fdname=first:second", NULL },
                      a, SOCK_SEQPACKET, report, sizeof(report));
        assert_string_equal(report, "r=2 n=2 env=0 first:3:1:1 second:4:1:1\n");
        tu_rm_rf(dir);
}

/* A stream listener is a listener, but not one sigillod may use; without
 * --fdname the name is empty. */
static void test_activate_stream_unnamed(void **state) {
        char report[512], *dir, path[256];

        if (!have_activate())
                skip();
        dir = tu_mkdtemp(NULL);
        snprintf(path, sizeof(path), "%s/stream", dir);
        run_activated((const char *[]) { "-l", path, NULL }, path, SOCK_STREAM,
                      report, sizeof(report));
        assert_string_equal(report, "r=1 n=1 env=0 :3:0:1\n");
        tu_rm_rf(dir);
}

/* ---------------------------------------------------------- is_listener */

static int unix_listener(int type, const char *abstract) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        /* abstract: sun_path[0] = 0, then the name */
        memcpy(sa.sun_path + 1, abstract, strlen(abstract));
        assert_int_equal(bind(fd, (struct sockaddr *)&sa,
                              (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(abstract))), 0);
        if (type != SOCK_DGRAM)
                assert_int_equal(listen(fd, 4), 0);
        return fd;
}

static void test_is_seqpacket_listener(void **state) {
        char name[64];
        unsigned before = tu_count_fds();
        int sp[2], pfd[2], fd, mfd;

        snprintf(name, sizeof(name), "sigillo-test-sd-%d-seq", (int)getpid());
        fd = unix_listener(SOCK_SEQPACKET, name);
        assert_true(sgl_sd_is_seqpacket_listener(fd));
        close(fd);

        snprintf(name, sizeof(name), "sigillo-test-sd-%d-stream", (int)getpid());
        fd = unix_listener(SOCK_STREAM, name);
        assert_false(sgl_sd_is_seqpacket_listener(fd));
        close(fd);

        snprintf(name, sizeof(name), "sigillo-test-sd-%d-dgram", (int)getpid());
        fd = unix_listener(SOCK_DGRAM, name);
        assert_false(sgl_sd_is_seqpacket_listener(fd));
        close(fd);

        /* bound but not listening */
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        assert_false(sgl_sd_is_seqpacket_listener(fd));
        close(fd);

        /* connected */
        tu_socketpair(sp);
        assert_false(sgl_sd_is_seqpacket_listener(sp[0]));
        close(sp[0]);
        close(sp[1]);

        /* an IPv4 listener is not AF_UNIX */
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0) {
                if (listen(fd, 1) == 0)
                        assert_false(sgl_sd_is_seqpacket_listener(fd));
                close(fd);
        }

        /* not sockets at all */
        assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
        assert_false(sgl_sd_is_seqpacket_listener(pfd[0]));
        close(pfd[0]);
        close(pfd[1]);
        mfd = memfd_create("x", MFD_CLOEXEC);
        assert_true(mfd >= 0);
        assert_false(sgl_sd_is_seqpacket_listener(mfd));
        close(mfd);
        assert_false(sgl_sd_is_seqpacket_listener(-1));
        assert_false(sgl_sd_is_seqpacket_listener(999999));

        assert_int_equal(tu_count_fds(), before);
}

/* ---------------------------------------------------------------- notify */

/* A datagram socket at @address ("/path" or "@abstract"). */
static int notify_listener(const char *address) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t len = strlen(address);
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        assert_true(len < sizeof(sa.sun_path));
        memcpy(sa.sun_path, address, len);
        if (address[0] == '@')
                sa.sun_path[0] = '\0';
        else
                len++;
        assert_int_equal(bind(fd, (struct sockaddr *)&sa,
                              (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)), 0);
        return fd;
}

/* Receives one notification (with up to 4 descriptors) and checks @state. */
static size_t recv_state(int sock, const char *state, int *fds) {
        char buf[4096];
        size_t nfds = 0;
        ssize_t n;
        struct pollfd p = { .fd = sock, .events = POLLIN };

        assert_int_equal(poll(&p, 1, 5000), 1);
        n = sgl_fdpass_recv(sock, buf, sizeof(buf), fds, 4, &nfds);
        assert_true(n > 0);
        assert_int_equal((size_t)n, strlen(state));
        assert_memory_equal(buf, state, (size_t)n);
        return nfds;
}

static void test_notify_unset(void **state) {
        int fd = 0;

        unsetenv("NOTIFY_SOCKET");
        assert_int_equal(sgl_sd_notify("READY=1", NULL, 0), 0);
        assert_int_equal(sgl_sd_notify("FDSTORE=1", &fd, 1), 0);
        setenv("NOTIFY_SOCKET", "", 1);
        assert_int_equal(sgl_sd_notify("READY=1", NULL, 0), 0);
        unsetenv("NOTIFY_SOCKET");
        /* bad arguments are refused whatever the environment */
        assert_int_equal(sgl_sd_notify(NULL, NULL, 0), -EINVAL);
        assert_int_equal(sgl_sd_notify("", NULL, 0), -EINVAL);
        assert_int_equal(sgl_sd_notify("READY=1", NULL, 1), -EINVAL);
        assert_int_equal(sgl_sd_notify("READY=1", &fd, 254), -EINVAL);
}

static void test_notify_path(void **state) {
        char *dir = tu_mkdtemp(NULL), path[256];
        unsigned before = tu_count_fds();
        int sock, fds[4];

        snprintf(path, sizeof(path), "%s/notify", dir);
        sock = notify_listener(path);
        setenv("NOTIFY_SOCKET", path, 1);
        assert_int_equal(sgl_sd_notify("READY=1", NULL, 0), 1);
        assert_int_equal(recv_state(sock, "READY=1", fds), 0);
        assert_int_equal(sgl_sd_notify("STATUS=3 areas, 7 connections", NULL, 0), 1);
        assert_int_equal(recv_state(sock, "STATUS=3 areas, 7 connections", fds), 0);
        assert_int_equal(sgl_sd_notify("STOPPING=1", NULL, 0), 1);
        assert_int_equal(recv_state(sock, "STOPPING=1", fds), 0);
        /* the variable stays: the daemon notifies many times */
        assert_string_equal(getenv("NOTIFY_SOCKET"), path);
        close(sock);

        /* nobody listening any more */
        assert_int_equal(sgl_sd_notify("READY=1", NULL, 0), -ECONNREFUSED);
        unlink(path);
        assert_int_equal(sgl_sd_notify("READY=1", NULL, 0), -ENOENT);
        unsetenv("NOTIFY_SOCKET");
        assert_int_equal(tu_count_fds(), before);
        tu_rm_rf(dir);
}

static void test_notify_bad_address(void **state) {
        char longname[200];

        setenv("NOTIFY_SOCKET", "relative/path", 1);
        assert_int_equal(sgl_sd_notify("READY=1", NULL, 0), -EAFNOSUPPORT);
        setenv("NOTIFY_SOCKET", "vsock:2:1234", 1);
        assert_int_equal(sgl_sd_notify("READY=1", NULL, 0), -EAFNOSUPPORT);
        memset(longname, 'x', sizeof(longname) - 1);
        longname[0] = '/';
        longname[sizeof(longname) - 1] = '\0';
        setenv("NOTIFY_SOCKET", longname, 1);
        assert_int_equal(sgl_sd_notify("READY=1", NULL, 0), -ENAMETOOLONG);
        unsetenv("NOTIFY_SOCKET");
}

/* FDSTORE=1 over an abstract socket: the descriptors that arrive are the
 * very files we sent. */
static void test_notify_fdstore(void **state) {
        static const char st[] = "FDSTORE=1\nFDNAME=sgl.c.demo";
        char address[64], b[8];
        unsigned before = tu_count_fds();
        struct stat s0, s1;
        int sock, mfd, pfd[2], got[4], send[2];
        size_t n;

        snprintf(address, sizeof(address), "@sigillo-test-notify-%d", (int)getpid());
        sock = notify_listener(address);
        setenv("NOTIFY_SOCKET", address, 1);

        mfd = memfd_create("sigillo-test-store", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        assert_true(mfd >= 0);
        assert_int_equal(ftruncate(mfd, 4096), 0);
        assert_int_equal(pwrite(mfd, "stored!", 7, 0), 7);
        assert_int_equal(fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE), 0);
        assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);

        send[0] = mfd;
        send[1] = pfd[0];
        assert_int_equal(sgl_sd_notify(st, send, 2), 1);
        n = recv_state(sock, st, got);
        assert_int_equal(n, 2);

        /* same memfd: inode, bytes, seals */
        assert_int_equal(fstat(mfd, &s0), 0);
        assert_int_equal(fstat(got[0], &s1), 0);
        assert_int_equal(s0.st_dev, s1.st_dev);
        assert_int_equal(s0.st_ino, s1.st_ino);
        assert_int_equal(pread(got[0], b, 7, 0), 7);
        assert_memory_equal(b, "stored!", 7);
        assert_int_equal(fcntl(got[0], F_GET_SEALS), F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
        assert_true(fd_cloexec(got[0])); /* fdpass receives MSG_CMSG_CLOEXEC */

        /* same pipe: still connected to our write end */
        assert_int_equal(fstat(pfd[0], &s0), 0);
        assert_int_equal(fstat(got[1], &s1), 0);
        assert_int_equal(s0.st_ino, s1.st_ino);
        assert_int_equal(write(pfd[1], "p", 1), 1);
        assert_int_equal(read(got[1], b, 1), 1);
        assert_int_equal(b[0], 'p');

        /* FDSTOREREMOVE carries no descriptor */
        assert_int_equal(sgl_sd_notify("FDSTOREREMOVE=1\nFDNAME=sgl.c.demo", NULL, 0), 1);
        assert_int_equal(recv_state(sock, "FDSTOREREMOVE=1\nFDNAME=sgl.c.demo", got + 2), 0);

        /* the sender keeps its own descriptors */
        assert_true(fcntl(mfd, F_GETFD) >= 0);
        close(got[0]);
        close(got[1]);
        close(mfd);
        close(pfd[0]);
        close(pfd[1]);
        close(sock);
        unsetenv("NOTIFY_SOCKET");
        assert_int_equal(tu_count_fds(), before);
}

/* --------------------------------------------------- hostile LISTEN_* */

struct env_case {
        const char *pid;         /* "self", "parent", or a literal; NULL: unset */
        const char *fds;
        const char *names;
        unsigned open_fds;       /* descriptors 3 ... 3+open_fds-1 exist */
        int want_r;
        const char *want_names;  /* names joined by '|' when want_r > 0 */
        bool names_arg;          /* pass ret_names */
};

static int env_child(void *userdata) {
        const struct env_case *c = userdata;
        char pidbuf[32], joined[256] = "";
        char **names = (char **)(void *)&joined; /* sentinels */
        int *fds = (int *)(void *)&joined;
        size_t n = 12345;
        int r, sp[2];

        /* a known descriptor table: 0-2, then exactly open_fds sockets */
        TU_CHILD_CHECK(close_range(3, ~0U, 0) == 0);
        for (unsigned i = 0; i < c->open_fds; i++) {
                TU_CHILD_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp) == 0);
                TU_CHILD_CHECK(dup2(sp[0], 100 + (int)i) == 100 + (int)i);
                close(sp[0]);
                close(sp[1]);
        }
        for (unsigned i = 0; i < c->open_fds; i++) {
                TU_CHILD_CHECK(dup2(100 + (int)i, 3 + (int)i) == 3 + (int)i);
                close(100 + (int)i);
        }
        for (unsigned i = 0; i < c->open_fds; i++)
                TU_CHILD_CHECK(fcntl(3 + (int)i, F_GETFD) == 0); /* no CLOEXEC yet */
        TU_CHILD_CHECK(fcntl(3 + (int)c->open_fds, F_GETFD) < 0);

        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_FDNAMES");
        if (c->pid) {
                if (strcmp(c->pid, "self") == 0)
                        snprintf(pidbuf, sizeof(pidbuf), "%d", (int)getpid());
                else if (strcmp(c->pid, "parent") == 0)
                        snprintf(pidbuf, sizeof(pidbuf), "%d", (int)getppid());
                else
                        snprintf(pidbuf, sizeof(pidbuf), "%s", c->pid);
                setenv("LISTEN_PID", pidbuf, 1);
        }
        if (c->fds)
                setenv("LISTEN_FDS", c->fds, 1);
        if (c->names)
                setenv("LISTEN_FDNAMES", c->names, 1);

        r = sgl_sd_listen_fds(&fds, c->names_arg ? &names : NULL, &n);
        if (r != c->want_r)
                fprintf(stderr, "LISTEN_PID=%s LISTEN_FDS=%s: r=%d, want %d\n",
                        c->pid ? pidbuf : "(unset)", c->fds ? c->fds : "(unset)", r, c->want_r);
        TU_CHILD_CHECK(r == c->want_r);
        TU_CHILD_CHECK(!getenv("LISTEN_PID") && !getenv("LISTEN_FDS") &&
                       !getenv("LISTEN_FDNAMES"));

        if (r < 0) {
                /* out-parameters untouched, no descriptor touched */
                TU_CHILD_CHECK(n == 12345);
                TU_CHILD_CHECK(fds == (int *)(void *)&joined);
                TU_CHILD_CHECK(names == (char **)(void *)&joined);
                for (unsigned i = 0; i < c->open_fds; i++)
                        TU_CHILD_CHECK(fcntl(3 + (int)i, F_GETFD) == 0);
                return 0;
        }
        TU_CHILD_CHECK(n == (size_t)r);
        if (r == 0) {
                TU_CHILD_CHECK(fds == NULL);
                TU_CHILD_CHECK(!c->names_arg || names == NULL);
                for (unsigned i = 0; i < c->open_fds; i++)
                        TU_CHILD_CHECK(fcntl(3 + (int)i, F_GETFD) == 0);
                return 0;
        }
        for (size_t i = 0; i < n; i++) {
                TU_CHILD_CHECK(fds[i] == 3 + (int)i);
                TU_CHILD_CHECK(fcntl(fds[i], F_GETFD) == FD_CLOEXEC);
        }
        if (c->names_arg) {
                TU_CHILD_CHECK(names[n] == NULL);
                joined[0] = '\0';
                for (size_t i = 0; i < n; i++) {
                        if (i)
                                strcat(joined, "|");
                        strcat(joined, names[i]);
                }
                if (strcmp(joined, c->want_names) != 0)
                        fprintf(stderr, "names \"%s\", want \"%s\"\n", joined, c->want_names);
                TU_CHILD_CHECK(strcmp(joined, c->want_names) == 0);
                sgl_sd_names_free(names);
        }
        free(fds);
        return 0;
}

static void test_listen_env_hostile(void **state) {
        static const struct env_case cases[] = {
                /* nothing set, or meant for someone else */
                { NULL, NULL, NULL, 1, 0, "", true },
                { NULL, "1", "x", 1, 0, "", true },
                { "parent", "1", "x", 1, 0, "", true },
                { "1", "1", "x", 1, 0, "", true },
                { "self", NULL, NULL, 1, 0, "", true },
                /* LISTEN_PID not a pid */
                { "", "1", NULL, 1, -EINVAL, "", true },
                { "abc", "1", NULL, 1, -EINVAL, "", true },
                { "-1", "1", NULL, 1, -EINVAL, "", true },
                { "0", "1", NULL, 1, -EINVAL, "", true },
                { " 1", "1", NULL, 1, -EINVAL, "", true },
                { "99999999999999999999999", "1", NULL, 1, -EINVAL, "", true },
                { "4294967297", "1", NULL, 1, -EINVAL, "", true },
                /* LISTEN_FDS not a count */
                { "self", "-1", NULL, 1, -EINVAL, "", true },
                { "self", "", NULL, 1, -EINVAL, "", true },
                { "self", "abc", NULL, 1, -EINVAL, "", true },
                { "self", "1abc", NULL, 1, -EINVAL, "", true },
                { "self", "+1", NULL, 1, -EINVAL, "", true },
                { "self", "0x1", NULL, 1, -EINVAL, "", true },
                { "self", "18446744073709551616", NULL, 1, -EINVAL, "", true },
                { "self", "2147483645", NULL, 1, -EINVAL, "", true },
                /* a count of descriptors we do not have: none touched */
                { "self", "2147483644", NULL, 1, -EBADF, "", true },
                { "self", "2", "a:b", 1, -EBADF, "", true },
                { "self", "1", "a", 0, -EBADF, "", true },
                /* valid */
                { "self", "0", NULL, 1, 0, "", true },
                { "self", "1", NULL, 1, 1, "", true },
                { "self", "1", "main", 1, 1, "main", true },
                { "self", "1", "main", 1, 1, "", false },
                { "self", "2", "x:y", 2, 2, "x|y", true },
                { "self", "2", "x:", 2, 2, "x|", true },
                { "self", "3", "::", 3, 3, "||", true },
                /* names that do not match the count: none is trusted */
                { "self", "1", "a:b:c", 1, 1, "", true },
                { "self", "2", "a:b:c", 2, 2, "|", true },
                { "self", "3", "only", 3, 3, "||", true },
                { "self", "1", "", 1, 1, "", true },
                { "self", "2", "", 2, 2, "|", true },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                pid_t pid = tu_fork(env_child, (void *)&cases[i]);
                int status = tu_wait_status(pid);
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                        fail_msg("case %zu (LISTEN_PID=%s LISTEN_FDS=%s LISTEN_FDNAMES=%s): "
                                 "status 0x%x", i, cases[i].pid ? cases[i].pid : "(unset)",
                                 cases[i].fds ? cases[i].fds : "(unset)",
                                 cases[i].names ? cases[i].names : "(unset)", status);
        }
        assert_int_equal(sgl_sd_listen_fds(NULL, NULL, NULL), -EINVAL);
}

/* ----------------------------------------------------------------- privs */

/* The hex value of "@key:" in /proc/self/status, or ~0 if absent. */
static uint64_t status_field(const char *key) {
        char line[256];
        uint64_t v = ~0ULL;
        size_t len = strlen(key);
        FILE *f = fopen("/proc/self/status", "re");

        if (!f)
                return v;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, key, len) == 0 && line[len] == ':') {
                        v = strtoull(line + len + 1, NULL,
                                     strcmp(key, "NoNewPrivs") == 0 ? 10 : 16);
                        break;
                }
        fclose(f);
        return v;
}

static int child_privs_root(void *userdata) {
        cap_value_t bind = CAP_NET_BIND_SERVICE;
        struct rlimit rl, orig;
        char path[] = "/tmp/sigillo-test-privs.XXXXXX";
        cap_t caps;
        int fd;

        /* start with a low soft limit and an ambient capability */
        TU_CHILD_CHECK(getrlimit(RLIMIT_NOFILE, &orig) == 0);
        rl = orig;
        rl.rlim_cur = 256;
        TU_CHILD_CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
        caps = cap_get_proc();
        TU_CHILD_CHECK(caps);
        TU_CHILD_CHECK(cap_set_flag(caps, CAP_INHERITABLE, 1, &bind, CAP_SET) == 0);
        TU_CHILD_CHECK(cap_set_proc(caps) == 0);
        cap_free(caps);
        TU_CHILD_CHECK(cap_set_ambient(CAP_NET_BIND_SERVICE, CAP_SET) == 0);
        TU_CHILD_CHECK(status_field("CapAmb") == 1ULL << CAP_NET_BIND_SERVICE);
        TU_CHILD_CHECK(status_field("CapEff") != 0);
        TU_CHILD_CHECK(status_field("NoNewPrivs") == 0);

        TU_CHILD_CHECK(sgl_privs_drop(0) == 0);

        TU_CHILD_CHECK(status_field("CapInh") == 0);
        TU_CHILD_CHECK(status_field("CapPrm") == 0);
        TU_CHILD_CHECK(status_field("CapEff") == 0);
        TU_CHILD_CHECK(status_field("CapAmb") == 0);
        TU_CHILD_CHECK(status_field("CapBnd") == 0);
        TU_CHILD_CHECK(status_field("NoNewPrivs") == 1);
        TU_CHILD_CHECK(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1);
        TU_CHILD_CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
        TU_CHILD_CHECK(rl.rlim_cur == orig.rlim_max);
        TU_CHILD_CHECK(rl.rlim_max == orig.rlim_max);

        /* the capabilities are really gone, uid 0 or not */
        TU_CHILD_CHECK(getuid() == 0);
        fd = mkstemp(path);
        TU_CHILD_CHECK(fd >= 0);
        unlink(path);
        TU_CHILD_CHECK(fchown(fd, 1, 1) < 0 && errno == EPERM);        /* CAP_CHOWN */
        close(fd);
        TU_CHILD_CHECK(setresuid(1, 1, 1) < 0 && errno == EPERM);      /* CAP_SETUID */
        TU_CHILD_CHECK(prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0) == 0);
        /* and no way to get them back */
        TU_CHILD_CHECK(prctl(PR_SET_NO_NEW_PRIVS, 0, 0, 0, 0) < 0);
        TU_CHILD_CHECK(cap_set_ambient(CAP_NET_BIND_SERVICE, CAP_SET) < 0);

        /* a second call has nothing left to drop and still succeeds */
        TU_CHILD_CHECK(sgl_privs_drop(0) == 0);
        return 0;
}

static void test_privs_drop_root(void **state) {
        if (!tu_is_root())
                skip();
        tu_wait_exit(tu_fork(child_privs_root, NULL), 0);
}

/* A wanted limit below the hard one, then past it (CAP_SYS_RESOURCE lifts
 * the hard limit before it is dropped). */
static int child_privs_want(void *userdata) {
        struct rlimit rl, orig;

        TU_CHILD_CHECK(getrlimit(RLIMIT_NOFILE, &orig) == 0);
        TU_CHILD_CHECK(orig.rlim_max != RLIM_INFINITY && orig.rlim_max > 1000);
        rl = orig;
        rl.rlim_cur = 128;
        TU_CHILD_CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);

        if (*(const int *)userdata == 0) {
                TU_CHILD_CHECK(sgl_privs_drop(1000) == 0);
                TU_CHILD_CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
                TU_CHILD_CHECK(rl.rlim_cur == 1000);
                TU_CHILD_CHECK(rl.rlim_max == orig.rlim_max);
                /* no capability left: the soft limit can still go up */
                TU_CHILD_CHECK(sgl_privs_drop(0) == 0);
                TU_CHILD_CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
                TU_CHILD_CHECK(rl.rlim_cur == orig.rlim_max);
                /* and never down */
                TU_CHILD_CHECK(sgl_privs_drop(100) == 0);
                TU_CHILD_CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
                TU_CHILD_CHECK(rl.rlim_cur == orig.rlim_max);
        } else {
                rlim_t want = orig.rlim_max + 1024;
                cap_flag_value_t sysres = CAP_CLEAR;
                cap_t caps = cap_get_proc();

                /* containers often withhold CAP_SYS_RESOURCE: then the
                 * hard limit stays and the soft one stops at it */
                TU_CHILD_CHECK(caps);
                TU_CHILD_CHECK(cap_get_flag(caps, CAP_SYS_RESOURCE, CAP_EFFECTIVE, &sysres) == 0);
                cap_free(caps);
                TU_CHILD_CHECK(sgl_privs_drop(want) == 0);
                TU_CHILD_CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
                if (sysres != CAP_SET) {
                        fprintf(stderr, "no CAP_SYS_RESOURCE: checking the fallback only\n");
                        TU_CHILD_CHECK(rl.rlim_cur == orig.rlim_max);
                        TU_CHILD_CHECK(rl.rlim_max == orig.rlim_max);
                        return 0;
                }
                TU_CHILD_CHECK(rl.rlim_cur == want);
                TU_CHILD_CHECK(rl.rlim_max == want);
                TU_CHILD_CHECK(status_field("CapEff") == 0);
                /* without CAP_SYS_RESOURCE now: past the hard limit the
                 * soft one stops at it */
                TU_CHILD_CHECK(sgl_privs_drop(want + 1024) == 0);
                TU_CHILD_CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
                TU_CHILD_CHECK(rl.rlim_cur == want && rl.rlim_max == want);
        }
        return 0;
}

static void test_privs_nofile_want(void **state) {
        static const int below = 0, above = 1;

        if (!tu_is_root())
                skip();
        tu_wait_exit(tu_fork(child_privs_want, (void *)&below), 0);
        tu_wait_exit(tu_fork(child_privs_want, (void *)&above), 0);
}

/* Not root: nothing to drop, but no_new_privs and the soft limit still. */
static int child_privs_unprivileged(void *userdata) {
        struct rlimit rl, orig;
        uint64_t bnd;

        if (getuid() == 0) {
                TU_CHILD_CHECK(setresgid(65534, 65534, 65534) == 0);
                TU_CHILD_CHECK(setresuid(65534, 65534, 65534) == 0);
        }
        TU_CHILD_CHECK(status_field("CapEff") == 0 && status_field("CapPrm") == 0);
        bnd = status_field("CapBnd");
        TU_CHILD_CHECK(getrlimit(RLIMIT_NOFILE, &orig) == 0);
        rl = orig;
        rl.rlim_cur = 64;
        TU_CHILD_CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);

        TU_CHILD_CHECK(sgl_privs_drop(0) == 0);

        TU_CHILD_CHECK(status_field("NoNewPrivs") == 1);
        TU_CHILD_CHECK(status_field("CapEff") == 0);
        /* the bounding set cannot be changed without CAP_SETPCAP */
        TU_CHILD_CHECK(status_field("CapBnd") == bnd);
        TU_CHILD_CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
        TU_CHILD_CHECK(rl.rlim_cur == orig.rlim_max);
        return 0;
}

static void test_privs_unprivileged(void **state) {
        tu_wait_exit(tu_fork(child_privs_unprivileged, NULL), 0);
}

int main(int argc, char **argv) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_activate_one),
                cmocka_unit_test(test_activate_two),
                cmocka_unit_test(test_activate_stream_unnamed),
                cmocka_unit_test(test_is_seqpacket_listener),
                cmocka_unit_test(test_notify_unset),
                cmocka_unit_test(test_notify_path),
                cmocka_unit_test(test_notify_bad_address),
                cmocka_unit_test(test_notify_fdstore),
                cmocka_unit_test(test_listen_env_hostile),
                cmocka_unit_test(test_privs_drop_root),
                cmocka_unit_test(test_privs_nofile_want),
                cmocka_unit_test(test_privs_unprivileged),
        };

        if (argc == 2 && strcmp(argv[1], CHILD_ARG) == 0)
                return sd_child();
        tu_watchdog(30);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
