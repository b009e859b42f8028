/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-tool-host.c - the read-side subcommands of the built `sigillo` tool
 * (get, cat, cat --follow, ls, stat, stat --json) end to end against an
 * EMBEDDED host: a writer process serving its own area with sgl_host_new()
 * on a filesystem socket, no sigillod anywhere.
 *
 * Layout: the writer runs in a tu_fork() child that owns the sgl_writer
 * ("hosted", one sealed segment per commit) and its sgl_host; it commits a
 * known set of chunks (binary, empty, 1 MiB), tells the test it is ready,
 * then drives the host from a poll() loop (host fd + a command socket from
 * the test), committing more chunks or exiting on command.  The test process
 * runs $SIGILLO (default tools/sigillo) with fork+exec and captures its
 * stdout, stderr and exit status.
 *
 * What it proves:
 *  - get: each key's payload comes back byte-exact (incl. 0 bytes and
 *    1 MiB); a missing key exits 1 with one stderr line, nothing on stdout.
 *  - cat: the live chunks concatenated in log order.
 *  - cat --follow: started before a commit, prints the old chunks and then
 *    the new one; SIGTERM ends it with exit status 0.
 *  - ls lists "hosted"; stat shows its sealed segments with seals including
 *    WRITE; stat --json is an object naming the area.
 *  - an unknown area name exits 1 with one stderr line.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sigillo.h"
#include "test-util.h"

#define AREA "hosted"
#define BIG_SIZE (1024 * 1024)

/* the chunks committed at start, in log order */
enum { ID_TEXT = 1, ID_EMPTY = 2, ID_BIN = 3, ID_BIG = 4, ID_LATER = 5 };
static const char text_payload[] = "hello, hosted\n";
static const unsigned char bin_payload[] = { 'a', 0, 'b', 0xff, '\n', 0, 0x80 };
static const char later_payload[] = "committed later";

/* a command to the writer */
struct wcmd {
        char op; /* 'C': commit @id with later_payload; 'Q': quit */
        uint64_t id;
};

struct fixture {
        char *dir;
        char address[256];
        pid_t writer;
        int sock; /* the test's end of the command socketpair */
        int wsock; /* the writer's end */
        unsigned char *big;
        const char *tool;
};

struct captured {
        char *out;
        size_t out_len;
        char *err;
        size_t err_len;
        int status;
};

/* ------------------------------------------------------------- the writer */

static int commit_one(sgl_writer *w, sgl_host *h, uint64_t id, const void *buf, size_t len) {
        int k = sgl_writer_write(w, id, 0, buf, len, NULL);
        if (k < 0)
                return k;
        k = sgl_writer_commit(w);
        if (k < 0)
                return k;
        k = sgl_host_process(h);
        return k < 0 ? k : 0;
}

static int writer_main(void *userdata) {
        struct fixture *f = userdata;
        sgl_writer *w = NULL;
        sgl_host *h = NULL;
        char ready = 'R';

        close(f->sock);
        TU_CHILD_CHECK(sgl_writer_new(AREA, 0, &w) == 0);
        TU_CHILD_CHECK(sgl_writer_set_seal_policy(w, SGL_SEAL_EVERY_COMMIT, 0) == 0);
        TU_CHILD_CHECK(sgl_host_new(w, f->address, &h) == 0);
        TU_CHILD_CHECK(commit_one(w, h, ID_TEXT, text_payload, strlen(text_payload)) == 0);
        TU_CHILD_CHECK(commit_one(w, h, ID_EMPTY, "", 0) == 0);
        TU_CHILD_CHECK(commit_one(w, h, ID_BIN, bin_payload, sizeof(bin_payload)) == 0);
        TU_CHILD_CHECK(commit_one(w, h, ID_BIG, f->big, BIG_SIZE) == 0);
        TU_CHILD_CHECK(send(f->wsock, &ready, 1, 0) == 1);

        for (;;) {
                struct pollfd pfd[2] = {
                        { .fd = sgl_host_get_fd(h), .events = POLLIN },
                        { .fd = f->wsock, .events = POLLIN },
                };
                struct wcmd m;
                ssize_t n;
                int k = poll(pfd, 2, -1);

                TU_CHILD_CHECK(k > 0 || (k < 0 && errno == EINTR));
                if (k < 0)
                        continue;
                if (pfd[0].revents)
                        TU_CHILD_CHECK(sgl_host_process(h) >= 0);
                if (!pfd[1].revents)
                        continue;
                n = recv(f->wsock, &m, sizeof(m), 0);
                if (n == 0)
                        return 20; /* the test went away */
                TU_CHILD_CHECK(n == (ssize_t)sizeof(m));
                if (m.op == 'Q')
                        break;
                TU_CHILD_CHECK(m.op == 'C');
                k = commit_one(w, h, m.id, later_payload, strlen(later_payload));
                TU_CHILD_CHECK(send(f->wsock, &(char){ k == 0 ? 'C' : 'E' }, 1, 0) == 1);
                TU_CHILD_CHECK(k == 0);
        }
        sgl_host_unref(h);
        sgl_writer_unref(w);
        return 0;
}

static void writer_command(struct fixture *f, char op, uint64_t id) {
        struct wcmd m = { .op = op, .id = id };
        char ack;

        assert_int_equal(send(f->sock, &m, sizeof(m), 0), (ssize_t)sizeof(m));
        if (op == 'C') {
                assert_int_equal(recv(f->sock, &ack, 1, 0), 1);
                assert_int_equal(ack, 'C');
        }
}

static int setup(void **state) {
        struct fixture *f = calloc(1, sizeof(*f));
        int sv[2];
        char ready = 0;

        assert_non_null(f);
        f->tool = getenv("SIGILLO");
        if (!f->tool || !*f->tool)
                f->tool = "tools/sigillo";
        if (access(f->tool, X_OK) < 0) {
                fprintf(stderr, "cannot run the tool %s: %s\n", f->tool, strerror(errno));
                free(f);
                return -1;
        }
        f->big = malloc(BIG_SIZE);
        assert_non_null(f->big);
        tu_fill_pattern(f->big, BIG_SIZE, 0x5157);
        f->dir = tu_mkdtemp(NULL);
        snprintf(f->address, sizeof(f->address), "%s/host.sock", f->dir);
        tu_socketpair(sv);
        f->sock = sv[0];
        f->wsock = sv[1];
        f->writer = tu_fork(writer_main, f);
        close(f->wsock);
        f->wsock = -1;
        assert_int_equal(recv(f->sock, &ready, 1, 0), 1);
        assert_int_equal(ready, 'R');
        *state = f;
        return 0;
}

static int teardown(void **state) {
        struct fixture *f = *state;

        writer_command(f, 'Q', 0);
        tu_wait_exit(f->writer, 0);
        close(f->sock);
        tu_rm_rf(f->dir);
        free(f->big);
        free(f);
        return 0;
}

/* ------------------------------------------------------------- the tool */

/* Starts the tool with @args (NULL-terminated, after argv[0]); its stdout
 * and stderr go to the returned pipes (non-blocking read ends). */
static pid_t tool_spawn(struct fixture *f, const char *const *args, int *out_fd, int *err_fd) {
        const char *argv[32];
        int po[2], pe[2];
        size_t n = 0;
        pid_t pid;

        argv[n++] = f->tool;
        for (; *args; args++) {
                assert_true(n < 31);
                argv[n++] = *args;
        }
        argv[n] = NULL;
        assert_int_equal(pipe2(po, O_CLOEXEC), 0);
        assert_int_equal(pipe2(pe, O_CLOEXEC), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int null = open("/dev/null", O_RDONLY);
                if (null < 0 || dup2(null, 0) < 0 || dup2(po[1], 1) < 0 || dup2(pe[1], 2) < 0)
                        _exit(126);
                signal(SIGPIPE, SIG_DFL);
                execv(f->tool, (char *const *)argv);
                _exit(127);
        }
        close(po[1]);
        close(pe[1]);
        assert_int_equal(fcntl(po[0], F_SETFL, O_NONBLOCK), 0);
        assert_int_equal(fcntl(pe[0], F_SETFL, O_NONBLOCK), 0);
        *out_fd = po[0];
        *err_fd = pe[0];
        return pid;
}

static void append(char **buf, size_t *len, const char *p, size_t n) {
        *buf = realloc(*buf, *len + n + 1);
        assert_non_null(*buf);
        memcpy(*buf + *len, p, n);
        *len += n;
        (*buf)[*len] = 0;
}

/* Reads whatever is available (or until both ends close) within @ms;
 * returns how many of the two pipes are still open. */
static int tool_pump(int *out_fd, int *err_fd, struct captured *c, int ms) {
        static char buf[65536];

        for (;;) {
                struct pollfd pfd[2] = {
                        { .fd = *out_fd, .events = POLLIN },
                        { .fd = *err_fd, .events = POLLIN },
                };
                int k;

                if (*out_fd < 0 && *err_fd < 0)
                        return 0;
                k = poll(pfd, 2, ms);
                if (k < 0 && errno == EINTR)
                        continue;
                assert_true(k >= 0);
                if (k == 0)
                        return (*out_fd >= 0) + (*err_fd >= 0);
                for (int i = 0; i < 2; i++) {
                        int *fd = i ? err_fd : out_fd;
                        ssize_t n;

                        if (*fd < 0 || !pfd[i].revents)
                                continue;
                        n = read(*fd, buf, sizeof(buf));
                        if (n > 0) {
                                if (i)
                                        append(&c->err, &c->err_len, buf, (size_t)n);
                                else
                                        append(&c->out, &c->out_len, buf, (size_t)n);
                        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                                close(*fd);
                                *fd = -1;
                        }
                }
        }
}

static int reap(pid_t pid) {
        int status;

        while (waitpid(pid, &status, 0) < 0)
                assert_int_equal(errno, EINTR);
        return status;
}

/* Runs the tool to its end (5 s at most) and captures everything. */
static void tool_run(struct fixture *f, const char *const *args, struct captured *c) {
        int out_fd, err_fd;
        pid_t pid;

        memset(c, 0, sizeof(*c));
        append(&c->out, &c->out_len, "", 0);
        append(&c->err, &c->err_len, "", 0);
        pid = tool_spawn(f, args, &out_fd, &err_fd);
        if (tool_pump(&out_fd, &err_fd, c, 5000) != 0) {
                kill(pid, SIGKILL);
                fail_msg("%s %s did not finish", f->tool, args[0]);
        }
        c->status = reap(pid);
}

static void captured_free(struct captured *c) {
        free(c->out);
        free(c->err);
}

static void expect_success(struct captured *c, const char *what) {
        if (!WIFEXITED(c->status) || WEXITSTATUS(c->status) != 0)
                fail_msg("%s: status 0x%x, stderr: %s", what, c->status, c->err);
}

/* exit status 1, exactly one line on stderr containing @pat, empty stdout */
static void expect_failure(struct captured *c, const char *pat, const char *what) {
        const char *nl;

        if (!WIFEXITED(c->status) || WEXITSTATUS(c->status) != 1)
                fail_msg("%s: status 0x%x (expected exit 1), stderr: %s", what, c->status, c->err);
        nl = memchr(c->err, '\n', c->err_len);
        if (!nl || (size_t)(nl - c->err) + 1 != c->err_len)
                fail_msg("%s: not exactly one line on stderr: '%s'", what, c->err);
        if (!strstr(c->err, pat))
                fail_msg("%s: stderr '%s' does not say '%s'", what, c->err, pat);
        assert_int_equal(c->out_len, 0);
        printf("# %s -> 1: %s", what, c->err);
}

/* -------------------------------------------------------------- the tests */

static void get_each_key(void **state) {
        struct fixture *f = *state;
        const struct {
                uint64_t id;
                const void *data;
                size_t len;
        } want[] = {
                { ID_TEXT, text_payload, strlen(text_payload) },
                { ID_EMPTY, "", 0 },
                { ID_BIN, bin_payload, sizeof(bin_payload) },
                { ID_BIG, f->big, BIG_SIZE },
        };

        for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
                char key[32];
                struct captured c;

                snprintf(key, sizeof(key), "%" PRIu64, want[i].id);
                tool_run(f, (const char *[]){ "get", AREA, "--key", key, "--socket", f->address, NULL }, &c);
                expect_success(&c, "get");
                assert_int_equal(c.out_len, want[i].len);
                assert_memory_equal(c.out, want[i].data, want[i].len);
                captured_free(&c);
        }
}

static void get_missing_key(void **state) {
        struct fixture *f = *state;
        struct captured c;

        tool_run(f, (const char *[]){ "get", AREA, "--key", "99", "--socket", f->address, NULL }, &c);
        expect_failure(&c, "99", "get --key 99");
        captured_free(&c);
}

/* the initial chunks, concatenated in log order */
static size_t expected_cat(struct fixture *f, char **ret) {
        char *buf = NULL;
        size_t len = 0;

        append(&buf, &len, text_payload, strlen(text_payload));
        append(&buf, &len, (const char *)bin_payload, sizeof(bin_payload));
        append(&buf, &len, (const char *)f->big, BIG_SIZE);
        *ret = buf;
        return len;
}

static void cat_all(void **state) {
        struct fixture *f = *state;
        struct captured c;
        char *want;
        size_t len = expected_cat(f, &want);

        tool_run(f, (const char *[]){ "cat", AREA, "--socket", f->address, NULL }, &c);
        expect_success(&c, "cat");
        assert_int_equal(c.out_len, len);
        assert_memory_equal(c.out, want, len);
        captured_free(&c);
        free(want);
}

/* Pumps until stdout holds @len bytes (3 s at most). */
static void pump_until(int *out_fd, int *err_fd, struct captured *c, size_t len) {
        struct timespec t0, t;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        while (c->out_len < len) {
                int open_fds = tool_pump(out_fd, err_fd, c, 50);
                clock_gettime(CLOCK_MONOTONIC, &t);
                if (open_fds == 0 || (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > 3000)
                        fail_msg("cat --follow printed %zu of %zu bytes; stderr: %s", c->out_len, len, c->err);
        }
}

static void cat_follow(void **state) {
        struct fixture *f = *state;
        struct captured c = { 0 };
        int out_fd, err_fd;
        char *want;
        size_t len = expected_cat(f, &want);
        pid_t pid;

        append(&c.out, &c.out_len, "", 0);
        append(&c.err, &c.err_len, "", 0);
        pid = tool_spawn(f, (const char *[]){ "cat", AREA, "--follow", "--socket", f->address, NULL },
                         &out_fd, &err_fd);
        pump_until(&out_fd, &err_fd, &c, len);
        assert_int_equal(c.out_len, len);
        assert_memory_equal(c.out, want, len);

        writer_command(f, 'C', ID_LATER);
        append(&want, &len, later_payload, strlen(later_payload));
        pump_until(&out_fd, &err_fd, &c, len);
        /* nothing more arrives */
        tool_pump(&out_fd, &err_fd, &c, 100);
        assert_int_equal(c.out_len, len);
        assert_memory_equal(c.out, want, len);

        assert_int_equal(kill(pid, SIGTERM), 0);
        tool_pump(&out_fd, &err_fd, &c, 3000);
        c.status = reap(pid);
        if (out_fd >= 0)
                close(out_fd);
        if (err_fd >= 0)
                close(err_fd);
        expect_success(&c, "cat --follow after SIGTERM");
        captured_free(&c);
        free(want);

        /* plain cat now shows the later chunk too, at the end */
        tool_run(f, (const char *[]){ "cat", AREA, "--socket", f->address, NULL }, &c);
        expect_success(&c, "cat");
        assert_true(c.out_len > strlen(later_payload));
        assert_memory_equal(c.out + c.out_len - strlen(later_payload), later_payload,
                            strlen(later_payload));
        captured_free(&c);
}

static bool has_line_starting(const char *text, const char *prefix) {
        size_t n = strlen(prefix);

        for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
                if (strncmp(p, prefix, n) == 0)
                        return true;
        return false;
}

static void ls_lists_area(void **state) {
        struct fixture *f = *state;
        struct captured c;

        tool_run(f, (const char *[]){ "ls", "--socket", f->address, NULL }, &c);
        expect_success(&c, "ls");
        if (!has_line_starting(c.out, AREA " "))
                fail_msg("ls does not list %s:\n%s", AREA, c.out);
        captured_free(&c);

        tool_run(f, (const char *[]){ "ls", "--json", "--socket", f->address, NULL }, &c);
        expect_success(&c, "ls --json");
        if (!strstr(c.out, "\"name\": \"" AREA "\""))
                fail_msg("ls --json does not list %s:\n%s", AREA, c.out);
        captured_free(&c);
}

static void stat_shows_segments(void **state) {
        struct fixture *f = *state;
        struct captured c;
        const char *p;

        tool_run(f, (const char *[]){ "stat", AREA, "--socket", f->address, NULL }, &c);
        expect_success(&c, "stat");
        if (!has_line_starting(c.out, "name:") || !strstr(c.out, AREA))
                fail_msg("stat does not name %s:\n%s", AREA, c.out);
        p = strstr(c.out, " sealed ");
        if (!p || !strstr(p, "WRITE"))
                fail_msg("stat shows no sealed segment with WRITE sealed:\n%s", c.out);
        captured_free(&c);

        tool_run(f, (const char *[]){ "stat", "--json", AREA, "--socket", f->address, NULL }, &c);
        expect_success(&c, "stat --json");
        p = c.out;
        while (*p == ' ' || *p == '\n')
                p++;
        if (*p != '{' || c.out_len < 2 || c.out[c.out_len - 2] != '}' ||
            !strstr(c.out, "\"name\": \"" AREA "\"") || !strstr(c.out, "WRITE"))
                fail_msg("stat --json is not an object naming %s with WRITE seals:\n%s", AREA, c.out);
        captured_free(&c);
}

static void unknown_area(void **state) {
        struct fixture *f = *state;
        struct captured c;

        tool_run(f, (const char *[]){ "get", "nosuch", "--key", "1", "--socket", f->address, NULL }, &c);
        expect_failure(&c, "nosuch", "get nosuch");
        captured_free(&c);
        tool_run(f, (const char *[]){ "cat", "nosuch", "--socket", f->address, NULL }, &c);
        expect_failure(&c, "nosuch", "cat nosuch");
        captured_free(&c);
        tool_run(f, (const char *[]){ "stat", "nosuch", "--socket", f->address, NULL }, &c);
        expect_failure(&c, "nosuch", "stat nosuch");
        captured_free(&c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(get_each_key),
                cmocka_unit_test(get_missing_key),
                cmocka_unit_test(cat_all),
                cmocka_unit_test(ls_lists_area),
                cmocka_unit_test(stat_shows_segments),
                cmocka_unit_test(unknown_area),
                cmocka_unit_test(cat_follow),
        };

        signal(SIGPIPE, SIG_IGN);
        tu_watchdog(30);
        return cmocka_run_group_tests(tests, setup, teardown);
}
