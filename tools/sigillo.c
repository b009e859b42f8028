/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sigillo.c - the command-line tool.
 *
 * Owns: argument parsing and the `demo` subcommand: one writer process and
 * two reader processes exchanging chunks through sealed segments, the
 * descriptors handed over SOCK_SEQPACKET sockets with SCM_RIGHTS, and a
 * demonstration that the kernel refuses every write to a committed chunk.
 * The demo needs no daemon.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sigillo.h"
#include "fdpass.h"

#define N_READERS 2

/* What the demo writer tells its readers; an fd rides along with segments. */
struct demo_msg {
        uint64_t seq;
        uint32_t event;  /* sgl_segment_event, or DEMO_END */
        uint32_t pad;
};
#define DEMO_END 100

struct demo_writer {
        int socks[N_READERS];
        int first_sealed_fd; /* a dup of the first sealed segment: holds chunks */
        int failed;
};

static void demo_segment(void *userdata, uint64_t seq, sgl_segment_event ev, int fd) {
        struct demo_writer *d = userdata;
        struct demo_msg m = { .seq = seq, .event = ev };

        if (ev != SGL_SEGMENT_SEALED)
                return; /* STRICT readers take sealed segments only */
        for (int i = 0; i < N_READERS; i++)
                if (sgl_fdpass_send(d->socks[i], &m, sizeof(m), &fd, 1) < 0)
                        d->failed = 1;
        if (d->first_sealed_fd < 0)
                d->first_sealed_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

static void print_chunk(int reader, const char *how, const sgl_chunk *c) {
        printf("  reader %d %s: id %-3" PRIu64 " version %-3" PRIu64 " \"%.*s\"\n",
               reader, how, sgl_chunk_id(c), sgl_chunk_version(c),
               (int)sgl_chunk_size(c), (const char *)sgl_chunk_data(c));
}

/* Tries to write into a chunk the reader holds; returns 0 if refused. */
static int reader_try_write(int reader, const sgl_chunk *c) {
        void *page = (void *)((uintptr_t)sgl_chunk_data(c) & ~(uintptr_t)4095);

        if (mprotect(page, 4096, PROT_READ | PROT_WRITE) == 0) {
                printf("  reader %d: mprotect(PROT_WRITE) on a chunk SUCCEEDED\n", reader);
                return 1;
        }
        printf("  reader %d: mprotect(PROT_WRITE) on its chunk -> refused (%s)\n",
               reader, strerror(errno));
        return 0;
}

static int demo_reader(int id, int sock) {
        sgl_reader *r = NULL;
        sgl_chunk *c;
        int ret = 1, k;

        if (sgl_reader_new(0, &r) < 0)
                return 1;
        for (;;) {
                struct demo_msg m;
                int fd = -1;
                size_t nfd = 0;
                ssize_t n = sgl_fdpass_recv(sock, &m, sizeof(m), &fd, 1, &nfd);

                if (n != (ssize_t)sizeof(m))
                        goto out;
                if (m.event == DEMO_END)
                        break;
                if (nfd != 1)
                        goto out;
                k = sgl_reader_add_segment_consume_fd(r, fd);
                if (k < 0) {
                        fprintf(stderr, "reader %d: segment %" PRIu64 " rejected: %s\n",
                                id, m.seq, strerror(-k));
                        goto out;
                }
        }

        printf("reader %d (STRICT, %d sealed segments mapped), in log order:\n",
               id, sgl_reader_get_segment_count(r));
        while ((k = sgl_reader_next(r, &c)) == 0) {
                print_chunk(id, "streams", c);
                sgl_chunk_unref(c);
        }
        if (k != -EAGAIN)
                goto out;
        for (uint64_t key = 1; key <= 3; key++) {
                k = sgl_reader_get(r, key, &c);
                if (k == -ENOENT) {
                        printf("  reader %d looks up id %" PRIu64 ": deleted\n", id, key);
                        continue;
                }
                if (k < 0)
                        goto out;
                print_chunk(id, "looks up", c);
                if (key == 1 && reader_try_write(id, c) != 0) {
                        sgl_chunk_unref(c);
                        goto out;
                }
                sgl_chunk_unref(c);
        }
        ret = 0;
out:
        sgl_reader_unref(r);
        fflush(stdout);
        return ret;
}

/* Every way the writer could try to change a sealed segment; all must fail. */
static int writer_try_writes(int fd) {
        const char evil[] = "EVIL";
        int failed = 0;
        void *p;

        printf("writer tries to change a committed chunk:\n");
        p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p != MAP_FAILED) {
                munmap(p, 4096);
                failed = 1;
        }
        printf("  mmap(PROT_WRITE, MAP_SHARED) -> %s\n", p == MAP_FAILED ? strerror(errno) : "ALLOWED");
        {
                int rw = -1;
                char path[64];
                snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
                rw = open(path, O_RDWR | O_CLOEXEC);
                if (rw >= 0) {
                        ssize_t n = pwrite(rw, evil, sizeof(evil), 4096 + 64);
                        printf("  pwrite() through a read-write reopen -> %s\n",
                               n < 0 ? strerror(errno) : "ALLOWED");
                        failed |= n >= 0;
                        n = ftruncate(rw, 4096);
                        printf("  ftruncate() -> %s\n", n < 0 ? strerror(errno) : "ALLOWED");
                        failed |= n >= 0;
                        n = fallocate(rw, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 4096);
                        printf("  fallocate(PUNCH_HOLE) -> %s\n", n < 0 ? strerror(errno) : "ALLOWED");
                        failed |= n >= 0;
                        close(rw);
                }
        }
        return failed;
}

static int cmd_demo(void) {
        struct demo_writer d = { .first_sealed_fd = -1 };
        pid_t pids[N_READERS];
        sgl_writer *w = NULL;
        int sv[N_READERS][2], ret = 1;
        struct demo_msg end = { .event = DEMO_END };

        setvbuf(stdout, NULL, _IOLBF, 0);
        for (int i = 0; i < N_READERS; i++) {
                if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv[i]) < 0) {
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
                        close(sv[i][0]);
                        _exit(demo_reader(i + 1, sv[i][1]));
                }
                close(sv[i][1]);
                d.socks[i] = sv[i][0];
        }

        if (sgl_writer_new("demo", 0, &w) < 0) {
                fprintf(stderr, "sigillo: cannot create a writer\n");
                goto out;
        }
        sgl_writer_set_segment_fn(w, demo_segment, &d);

        printf("writer: commits \"hello\" (id 1), \"world\" (id 2), \"scratch\" (id 3) in one batch,\n"
               "        then updates id 1 and deletes id 3; each commit is sealed at once\n");
        if (sgl_writer_write(w, 1, 0, "hello", 5, NULL) < 0 ||
            sgl_writer_write(w, 2, 0, "world", 5, NULL) < 0 ||
            sgl_writer_write(w, 3, 0, "scratch", 7, NULL) < 0 ||
            sgl_writer_commit(w) < 0 ||
            sgl_writer_write(w, 1, 0, "hello, sealed world", 19, NULL) < 0 ||
            sgl_writer_commit(w) < 0 ||
            sgl_writer_delete(w, 3) < 0 ||
            sgl_writer_commit(w) < 0 || d.failed) {
                fprintf(stderr, "sigillo: the demo writer failed\n");
                goto out;
        }

        if (writer_try_writes(d.first_sealed_fd) != 0) {
                fprintf(stderr, "sigillo: a write to a sealed segment was NOT refused\n");
                goto out;
        }

        /* let the readers report one after the other */
        ret = 0;
        for (int i = 0; i < N_READERS; i++) {
                int status;
                if (sgl_fdpass_send(d.socks[i], &end, sizeof(end), NULL, 0) < 0)
                        ret = 1;
                if (waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status) ||
                    WEXITSTATUS(status) != 0) {
                        fprintf(stderr, "sigillo: reader %d failed\n", i + 1);
                        ret = 1;
                }
                pids[i] = 0;
        }
        if (ret == 0)
                printf("demo: ok (every write to committed data was refused by the kernel)\n");
out:
        for (int i = 0; i < N_READERS; i++) {
                close(d.socks[i]);
                if (pids[i] > 0) {
                        kill(pids[i], SIGKILL);
                        waitpid(pids[i], NULL, 0);
                }
        }
        if (d.first_sealed_fd >= 0)
                close(d.first_sealed_fd);
        sgl_writer_unref(w);
        return ret;
}

static void usage(FILE *f) {
        fprintf(f,
                "Usage: sigillo [--help] [--version] COMMAND\n"
                "\n"
                "Commands:\n"
                "  demo    a writer and two readers exchange sealed chunks (no daemon)\n"
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
