/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sigillo.c - the command-line tool.
 *
 * Owns: dispatching to the subcommands (tools/cli/: put, get, cat, gc in
 * data.c; ls, stat, rm in query.c) and the `demo` subcommand: one writer process that
 * serves its area on an embedded host (no daemon) and two STRICT reader
 * processes that open it by name, read the log, are woken by a live update
 * through their pollable descriptor, and see the kernel refuse every
 * attempt to change a committed chunk.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sigillo.h"
#include "cli/subcommands.h"

#define N_READERS 2
#define DEMO_AREA "demo"

/* The writer drives its readers step by step over a private socketpair, so
 * the output comes in a readable order; the chunks themselves travel only
 * through sealed segments handed over by the embedded host. */
enum { STEP_OPEN = 'o', STEP_UPDATE = 'u', STEP_DONE = 'd' };

static void print_chunk(int reader, const sgl_chunk *c) {
        printf("  reader %d: id %-2" PRIu64 " version %-2" PRIu64 " \"%.*s\"\n",
               reader, sgl_chunk_id(c), sgl_chunk_version(c),
               (int)sgl_chunk_size(c), (const char *)sgl_chunk_data(c));
}

static int drain(int id, sgl_reader *r) {
        sgl_chunk *c;
        int k;

        while ((k = sgl_reader_next(r, &c)) == 0) {
                print_chunk(id, c);
                sgl_chunk_unref(c);
        }
        return k == -EAGAIN ? 0 : k;
}

/* Tries to make a chunk it holds writable; returns 0 if the kernel refused. */
static int reader_try_write(int id, const sgl_chunk *c) {
        void *page = (void *)((uintptr_t)sgl_chunk_data(c) & ~(uintptr_t)4095);

        if (mprotect(page, 4096, PROT_READ | PROT_WRITE) == 0) {
                printf("  reader %d: mprotect(PROT_WRITE) on a chunk SUCCEEDED\n", id);
                return 1;
        }
        printf("  reader %d: mprotect(PROT_WRITE) on the chunk it holds -> %s\n",
               id, strerror(errno));
        return 0;
}

static int demo_reader(int id, int step, const char *address) {
        sgl_reader *r = NULL;
        struct pollfd p;
        sgl_chunk *c;
        char cmd;
        int k, ret = 1;

        if (read(step, &cmd, 1) != 1 || cmd != STEP_OPEN)
                return 1;
        k = sgl_reader_open(DEMO_AREA, address, 0, &r);
        if (k < 0) {
                fprintf(stderr, "reader %d: cannot open \"%s\": %s\n", id, DEMO_AREA, strerror(-k));
                return 1;
        }
        k = sgl_reader_get_segment_count(r);
        printf("reader %d (STRICT) opens \"%s\" and reads the log (%d sealed segment%s):\n",
               id, DEMO_AREA, k, k == 1 ? "" : "s");
        if (drain(id, r) < 0 || write(step, "", 1) != 1 ||
            read(step, &cmd, 1) != 1 || cmd != STEP_UPDATE)
                goto out;

        /* wait as an event loop would: poll the reader's descriptor */
        p = (struct pollfd) { .fd = sgl_reader_get_fd(r), .events = POLLIN };
        if (p.fd < 0 || poll(&p, 1, 5000) != 1) {
                fprintf(stderr, "reader %d: not woken by the update\n", id);
                goto out;
        }
        printf("reader %d is woken by the update and reads on:\n", id);
        if (sgl_reader_process(r) < 0 || drain(id, r) < 0)
                goto out;
        k = sgl_reader_get(r, 3, &c);
        if (k != -ENOENT) {
                sgl_chunk_unref(c);
                goto out;
        }
        printf("  reader %d: id 3 is deleted\n", id);
        if (sgl_reader_get(r, 1, &c) < 0)
                goto out;
        k = reader_try_write(id, c);
        sgl_chunk_unref(c);
        if (k == 0)
                ret = 0;
out:
        fflush(stdout);
        (void)!write(step, "", 1);
        sgl_reader_unref(r);
        return ret;
}

/* Every way the writer could try to change a sealed segment; all must fail. */
static int writer_try_writes(int fd) {
        const char evil[] = "EVIL";
        char path[64];
        int rw, failed = 0;
        void *p;

        printf("writer tries to change a committed chunk through a read-write reopen:\n");
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        rw = open(path, O_RDWR | O_CLOEXEC);
        if (rw < 0) {
                printf("  open(O_RDWR) -> %s\n", strerror(errno));
                return 0;
        }
        p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0);
        printf("  mmap(PROT_WRITE, MAP_SHARED) -> %s\n", p == MAP_FAILED ? strerror(errno) : "ALLOWED");
        if (p != MAP_FAILED) {
                munmap(p, 4096);
                failed = 1;
        }
        errno = 0;
        failed |= pwrite(rw, evil, sizeof(evil), 64) >= 0;
        printf("  pwrite() -> %s\n", errno ? strerror(errno) : "ALLOWED");
        errno = 0;
        failed |= ftruncate(rw, 0) == 0;
        printf("  ftruncate() -> %s\n", errno ? strerror(errno) : "ALLOWED");
        errno = 0;
        failed |= fallocate(rw, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096) == 0;
        printf("  fallocate(PUNCH_HOLE) -> %s\n", errno ? strerror(errno) : "ALLOWED");
        close(rw);
        return failed;
}

struct demo {
        sgl_host *host;
        int first_sealed_fd; /* a dup of the first sealed segment: holds chunks */
};

static void keep_first(void *userdata, uint64_t seq, sgl_segment_event ev, int fd) {
        struct demo *d = userdata;

        if (ev == SGL_SEGMENT_SEALED && d->first_sealed_fd < 0)
                d->first_sealed_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

/* Serves readers until reader @i answers on its step socket. */
static int serve_until_done(struct demo *d, int step) {
        for (;;) {
                struct pollfd p[2] = {
                        { .fd = sgl_host_get_fd(d->host), .events = POLLIN },
                        { .fd = step, .events = POLLIN },
                };
                char b;

                if (poll(p, 2, 10000) <= 0)
                        return -ETIMEDOUT;
                if (p[0].revents && sgl_host_process(d->host) < 0)
                        return -EIO;
                if (p[1].revents)
                        return read(step, &b, 1) == 1 ? 0 : -EPIPE;
        }
}

static int cmd_demo(void) {
        struct demo d = { .first_sealed_fd = -1 };
        char address[64];
        pid_t pids[N_READERS];
        int steps[N_READERS];
        sgl_writer *w = NULL;
        int ret = 1;

        setvbuf(stdout, NULL, _IOLBF, 0);
        snprintf(address, sizeof(address), "@sigillo-demo-%d", (int)getpid());
        /* readers first, so they inherit nothing of the writer's */
        for (int i = 0; i < N_READERS; i++) {
                int sv[2];
                if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
                        perror("socketpair");
                        return 1;
                }
                fflush(stdout);
                pids[i] = fork();
                if (pids[i] < 0) {
                        perror("fork");
                        return 1;
                }
                if (pids[i] == 0) {
                        close(sv[0]);
                        for (int j = 0; j < i; j++)
                                close(steps[j]);
                        _exit(demo_reader(i + 1, sv[1], address));
                }
                close(sv[1]);
                steps[i] = sv[0];
        }

        if (sgl_writer_new(DEMO_AREA, 0, &w) < 0) {
                fprintf(stderr, "sigillo: cannot create the demo writer\n");
                goto out;
        }
        /* before the host, which chains to it */
        sgl_writer_set_segment_fn(w, keep_first, &d);
        if (sgl_host_new(w, address, &d.host) < 0) {
                fprintf(stderr, "sigillo: cannot serve %s\n", address);
                goto out;
        }
        printf("writer: serves area \"%s\" on %s (embedded host, no daemon)\n", DEMO_AREA, address);
        printf("writer: commits \"hello\" (id 1), \"world\" (id 2), \"scratch\" (id 3) in one batch;\n"
               "        every commit is sealed at once (F_SEAL_WRITE)\n");
        if (sgl_writer_write(w, 1, 0, "hello", 5, NULL) < 0 ||
            sgl_writer_write(w, 2, 0, "world", 5, NULL) < 0 ||
            sgl_writer_write(w, 3, 0, "scratch", 7, NULL) < 0 || sgl_writer_commit(w) < 0)
                goto fail;
        for (int i = 0; i < N_READERS; i++)
                if (write(steps[i], (char[]) { STEP_OPEN }, 1) != 1 ||
                    serve_until_done(&d, steps[i]) < 0)
                        goto fail;

        printf("writer: updates id 1 and deletes id 3\n");
        if (sgl_writer_write(w, 1, 0, "hello, sealed world", 19, NULL) < 0 ||
            sgl_writer_commit(w) < 0 || sgl_writer_delete(w, 3) < 0 || sgl_writer_commit(w) < 0)
                goto fail;
        for (int i = 0; i < N_READERS; i++)
                if (write(steps[i], (char[]) { STEP_UPDATE }, 1) != 1 ||
                    serve_until_done(&d, steps[i]) < 0)
                        goto fail;

        if (writer_try_writes(d.first_sealed_fd) != 0) {
                fprintf(stderr, "sigillo: a write to a sealed segment was NOT refused\n");
                goto out;
        }
        ret = 0;
        for (int i = 0; i < N_READERS; i++) {
                int status;
                if (waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status) ||
                    WEXITSTATUS(status) != 0) {
                        fprintf(stderr, "sigillo: reader %d failed\n", i + 1);
                        ret = 1;
                }
                pids[i] = 0;
        }
        if (ret == 0)
                printf("demo: ok (readers saw every commit; the kernel refused every write "
                       "to committed data)\n");
        goto out;
fail:
        fprintf(stderr, "sigillo: the demo writer failed\n");
out:
        for (int i = 0; i < N_READERS; i++) {
                close(steps[i]);
                if (pids[i] > 0) {
                        kill(pids[i], SIGKILL);
                        waitpid(pids[i], NULL, 0);
                }
        }
        if (d.first_sealed_fd >= 0)
                close(d.first_sealed_fd);
        sgl_host_unref(d.host);
        sgl_writer_unref(w);
        return ret;
}

static void usage(FILE *f) {
        fprintf(f,
                "Usage: sigillo [--help] [--version] COMMAND\n"
                "\n"
                "Commands (each takes --help):\n"
                "  put     commit a file or standard input as one chunk to an area on sigillod\n"
                "  get     write the latest version of one chunk to standard output\n"
                "  cat     write every live chunk of an area; --follow waits for more\n"
                "  ls      list the areas on sigillod\n"
                "  stat    show one area and its segments\n"
                "  rm      remove one of your areas from sigillod\n"
                "  gc      compact one of your persistent areas now\n"
                "  demo    a writer and two readers exchange sealed chunks (no daemon)\n"
                "  bench   run the benchmark (sigillo-bench) against the alternatives\n"
                "\n"
                "The daemon's socket: --socket ADDR, else $SIGILLO_SOCKET, else\n"
                "$XDG_RUNTIME_DIR/sigillo/socket, else /run/sigillo/socket.\n"
                "\n"
                "Exit status: 0 on success, 1 on failure, 2 on a usage error.\n");
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "+hV", opts, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        usage(stdout);
                        return 0;
                case 'V':
                        printf("sigillo %s\n", PACKAGE_VERSION);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind >= argc) {
                usage(stderr);
                return 2;
        }
        static const struct {
                const char *name;
                int (*fn)(int argc, char **argv);
        } cmds[] = {
                { "put", cmd_put }, { "get", cmd_get }, { "cat", cmd_cat }, { "ls", cmd_ls },
                { "stat", cmd_stat }, { "rm", cmd_rm }, { "gc", cmd_gc },
                { "bench", cmd_bench },
        };
        for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
                if (strcmp(argv[optind], cmds[i].name) == 0)
                        return cmds[i].fn(argc - optind, argv + optind);
        if (strcmp(argv[optind], "demo") == 0) {
                if (optind + 1 != argc) {
                        fprintf(stderr, "sigillo demo: takes no arguments\n");
                        return 2;
                }
                return cmd_demo();
        }
        fprintf(stderr, "sigillo: unknown command '%s' (try --help)\n", argv[optind]);
        return 2;
}
