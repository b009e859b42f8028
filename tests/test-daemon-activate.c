/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-daemon-activate.c - sigillod started the way systemd starts it.
 *
 * Proves, with the real daemon binary under systemd-socket-activate (from
 * Debian's systemd package; the test is skipped without it):
 *  - socket_activated_round_trip: the daemon serves on the listening socket
 *    it inherited through LISTEN_FDS (it binds nothing itself): a writer
 *    publishes through it with sgl_writer_publish(), a STRICT reader opens
 *    the area by name and reads the chunk byte-exact;
 *  - privileges_dropped (as root): the running daemon's effective,
 *    permitted, inheritable and ambient capability sets are empty and
 *    no_new_privs is set, as /proc/PID/status reports them.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test-util.h"
#include "sigillo.h"

#define ACTIVATE "/usr/bin/systemd-socket-activate"

struct daemon {
        pid_t pid;
        char *dir;
        char address[256];
};

static const char *daemon_path(void) {
        const char *p = getenv("SIGILLOD");
        return p && *p ? p : "tools/sigillod/sigillod";
}

/* Starts sigillod under systemd-socket-activate on a fresh socket path and
 * waits until a connection to it is answered. */
static void daemon_start(struct daemon *d) {
        if (access(ACTIVATE, X_OK) < 0)
                skip();
        d->dir = tu_mkdtemp(NULL);
        snprintf(d->address, sizeof(d->address), "%s/socket", d->dir);
        assert_true(strlen(d->address) < sizeof(((struct sockaddr_un *)0)->sun_path));

        d->pid = fork();
        assert_true(d->pid >= 0);
        if (d->pid == 0) {
                /* never outlive the test, even when it fails midway */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                /* the daemon gets the listener as fd 3 and execs in place,
                 * so d->pid becomes the daemon's pid */
                execl(ACTIVATE, ACTIVATE, "--seqpacket", "-l", d->address,
                      "--fdname=sigillod", daemon_path(),
                      (char *)NULL);
                _exit(127);
        }
        /* the listener answers connect() before the daemon even runs: wait
         * for the daemon itself to answer (no such area, after a WELCOME) */
        for (int i = 0; i < 500; i++) {
                sgl_reader *r = NULL;
                struct stat st;
                /* -ENOENT counts only from the daemon, not from connect() */
                if (stat(d->address, &st) == 0 &&
                    sgl_reader_open("probe", d->address, 0, &r) == -ENOENT)
                        return;
                sgl_reader_unref(r);
                usleep(10000);
        }
        fail_msg("sigillod did not come up under " ACTIVATE);
}

static void daemon_stop(struct daemon *d) {
        int status;

        assert_int_equal(kill(d->pid, SIGTERM), 0);
        assert_int_equal(waitpid(d->pid, &status, 0), d->pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        tu_rm_rf(d->dir);
}

/* Writer in this process, reader in a child: the chunk crosses the daemon. */
static int read_back(void *userdata) {
        const struct daemon *d = userdata;
        sgl_reader *r = NULL;
        sgl_chunk *c = NULL;

        TU_CHILD_CHECK(sgl_reader_open("activated", d->address, 0, &r) == 0);
        TU_CHILD_CHECK(sgl_reader_get(r, 7, &c) == 0);
        TU_CHILD_CHECK(sgl_chunk_size(c) == 11);
        TU_CHILD_CHECK(memcmp(sgl_chunk_data(c), "from a unit", 11) == 0);
        sgl_chunk_unref(c);
        sgl_reader_unref(r);
        return 0;
}

static void socket_activated_round_trip(void **state) {
        struct daemon d = { 0 };
        sgl_writer *w = NULL;

        (void)state;
        daemon_start(&d);
        assert_int_equal(sgl_writer_new("activated", 0, &w), 0);
        assert_int_equal(sgl_writer_publish(w, "activated", d.address, 0, 0400,
                                            NULL, 0, NULL, 0), 0);
        assert_int_equal(sgl_writer_write(w, 7, 0, "from a unit", 11, NULL), 0);
        assert_int_equal(sgl_writer_commit(w), 0);
        /* every queued publish is out before the reader asks */
        for (int i = 0; i < 100 && sgl_writer_publish_process(w) > 0; i++)
                usleep(10000);
        assert_int_equal(sgl_writer_publish_process(w), 0);
        tu_wait_exit(tu_fork(read_back, &d), 0);
        sgl_writer_unref(w);
        daemon_stop(&d);
}

/* The value of "@key:" in /proc/@pid/status, parsed as hex or decimal. */
static unsigned long long status_field(pid_t pid, const char *key, int base) {
        char path[64], line[256];
        size_t n = strlen(key);
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        f = fopen(path, "re");
        assert_non_null(f);
        while (fgets(line, sizeof(line), f)) {
                if (strncmp(line, key, n) == 0 && line[n] == ':') {
                        fclose(f);
                        return strtoull(line + n + 1, NULL, base);
                }
        }
        fclose(f);
        fail_msg("no %s in %s", key, path);
        return 0;
}

static void privileges_dropped(void **state) {
        struct daemon d = { 0 };

        (void)state;
        if (!tu_is_root())
                skip(); /* nothing to drop without capabilities */
        daemon_start(&d);
        assert_int_equal(status_field(d.pid, "CapEff", 16), 0);
        assert_int_equal(status_field(d.pid, "CapPrm", 16), 0);
        assert_int_equal(status_field(d.pid, "CapInh", 16), 0);
        assert_int_equal(status_field(d.pid, "CapAmb", 16), 0);
        assert_int_equal(status_field(d.pid, "NoNewPrivs", 10), 1);
        daemon_stop(&d);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(socket_activated_round_trip),
                cmocka_unit_test(privileges_dropped),
        };

        tu_watchdog(60);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
