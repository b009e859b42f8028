/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * data.c - the subcommands that move chunks: put (as the area's writer,
 * through sigillod), get and cat (as readers), and gc (as the area's
 * writer, compacting).
 *
 * put and gc take a persistent area of the caller's uid over (the library
 * adopts its segments), do their work, wait until every segment event has
 * been sent, and then until a STAT on a second connection shows the
 * daemon holding exactly the writer's sealed segments: so when the command
 * exits 0, any reader that connects afterwards sees the result.  The area
 * stays (PERSIST) without a writer when they exit.
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
#include <time.h>
#include <unistd.h>

#include "sigillo.h"
#include "common.h"
#include "subcommands.h"

#define PUT_DEFAULT_MODE 0400u

static int64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ----------------------------------------------------- writer helpers */

struct seqs {
        uint64_t *v;
        size_t n;
        int err;
};

static void collect_seq(void *userdata, uint64_t seq, sgl_segment_event ev, int fd) {
        struct seqs *s = userdata;
        uint64_t *v;

        (void)ev;
        (void)fd;
        if (s->err < 0)
                return;
        v = realloc(s->v, (s->n + 1) * sizeof(*v));
        if (!v) {
                s->err = -ENOMEM;
                return;
        }
        s->v = v;
        s->v[s->n++] = seq;
}

/* 1 if the daemon's STAT of @name lists exactly @s, all sealed; 0 if not
 * yet; -errno */
static int daemon_has(const char *address, const char *name, const struct seqs *s) {
        struct qconn q = { .fd = -1 };
        struct sgl_msg m;
        size_t seen = 0;
        bool same = true;
        uint32_t serial;
        int k;

        k = qconn_open(&q, address, SGL_ROLE_QUERY);
        if (k < 0)
                return k;
        serial = ++q.serial;
        k = qconn_send(&q, sgl_msg_build_stat(q.buf, sizeof(q.buf), serial, name, strlen(name)));
        while (k >= 0) {
                k = qconn_recv(&q, serial, &m);
                if (k < 0 || m.type == SGL_MSG_END)
                        break;
                if (m.type == SGL_MSG_AREA_INFO)
                        continue;
                if (m.type != SGL_MSG_SEGMENT_INFO) {
                        k = -EPROTO;
                        break;
                }
                if (seen >= s->n || m.segment_info.seq != s->v[seen] ||
                    m.segment_info.event != SGL_MSG_EVENT_SEALED)
                        same = false;
                seen++;
        }
        qconn_close(&q);
        if (k < 0)
                return k;
        return same && seen == s->n;
}

/* Sends everything queued, then waits until the daemon holds the
 * writer's segments (see the top of the file). */
static int writer_sync(sgl_writer *w, const char *address, const char *name) {
        int64_t deadline = now_ms() + 2 * TOOL_TIMEOUT_MS;
        struct seqs s = {};
        int k;

        for (;;) {
                struct pollfd p = { .fd = sgl_writer_get_publish_fd(w), .events = POLLIN };

                k = sgl_writer_publish_process(w);
                if (k <= 0)
                        break;
                if (now_ms() >= deadline)
                        return -ETIMEDOUT;
                (void)poll(&p, 1, 100);
        }
        if (k < 0)
                return k;

        k = sgl_writer_foreach_segment(w, collect_seq, &s);
        if (k >= 0)
                k = s.err;
        while (k >= 0) {
                k = daemon_has(address, name, &s);
                if (k != 0)
                        break;
                if (now_ms() >= deadline) {
                        k = -ETIMEDOUT;
                        break;
                }
                k = sgl_writer_publish_process(w); /* the daemon may have hung up */
                if (k >= 0)
                        (void)poll(NULL, 0, 10);
        }
        free(s.v);
        return k < 0 ? k : 0;
}

static void err_publish(const char *cmd, const char *address, const char *name, int k) {
        int p = tool_is_unreachable(k) ? tool_probe(address) : 0;

        if (p < 0)
                tool_err_unreachable(cmd, address, p);
        else if (k == -EEXIST)
                tool_err(cmd, "area %s belongs to another user", name);
        else if (k == -EBUSY)
                tool_err(cmd, "area %s is in use by another writer", name);
        else if (k == -EACCES)
                tool_err(cmd, "permission denied: the policy does not let you write area %s", name);
        else if (k == -EDQUOT)
                tool_err(cmd, "over your quota on sigillod (areas, segments or bytes)");
        else if (k == -EOPNOTSUPP)
                tool_err(cmd, "%s is an embedded host, not sigillod: it takes no writer", address);
        else
                tool_err(cmd, "cannot publish area %s on %s: %s", name, address, strerror(-k));
}

/* ---------------------------------------------------------------- put */

static void put_usage(FILE *f) {
        fprintf(f,
                "Usage: sigillo put [OPTION]... NAME [FILE|-]\n"
                "Commit FILE (default: standard input) as one chunk to area NAME on sigillod,\n"
                "as the area's writer.  A persistent area of yours is taken over; the area\n"
                "is created if it does not exist.  Waits until the daemon holds the chunk.\n"
                "\n"
                "  -k, --key ID        the chunk's id, 1 to 9223372036854775807; a newer put\n"
                "                      of the same id replaces it (default: a fresh anonymous\n"
                "                      id, printed on standard output)\n"
                "  -t, --ttl DURATION  the chunk expires after DURATION: 500ms, 30s, 5m, 2h, 1d\n"
                "  -m, --mode MODE     who may read the area: 0400 only you (default), 0440\n"
                "                      also your group, 0444 everyone (replaces the area's)\n"
                "      --persist       the area outlives this command (always the case:\n"
                "                      accepted for clarity)\n"
                "  -s, --socket ADDR   sigillod's socket (a path, or @name); default\n"
                "                      $SIGILLO_SOCKET, $XDG_RUNTIME_DIR/sigillo/socket,\n"
                "                      /run/sigillo/socket\n"
                "  -h, --help          this text\n"
                "\n"
                "Exit status: 0 on success, 1 on failure, 2 on a usage error.\n");
}

static int read_all(int fd, uint8_t **ret, size_t *ret_len) {
        size_t size = 0, len = 0;
        uint8_t *buf = NULL;

        for (;;) {
                ssize_t n;

                if (len == size) {
                        size_t nsize = size ? size * 2 : 65536;
                        uint8_t *nbuf = nsize > size ? realloc(buf, nsize) : NULL;
                        if (!nbuf) {
                                free(buf);
                                return -ENOMEM;
                        }
                        buf = nbuf;
                        size = nsize;
                }
                n = read(fd, buf + len, size - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        n = -errno;
                        free(buf);
                        return (int)n;
                }
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        *ret = buf;
        *ret_len = len;
        return 0;
}

int cmd_put(int argc, char **argv) {
        static const struct option opts[] = {
                { "key", required_argument, NULL, 'k' },
                { "ttl", required_argument, NULL, 't' },
                { "mode", required_argument, NULL, 'm' },
                { "persist", no_argument, NULL, 'P' },
                { "socket", required_argument, NULL, 's' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        const char *socket_opt = NULL, *name, *file = "-", *address;
        uint64_t id = 0, ttl_ns = 0, expire_ns = 0, ret_id = 0;
        unsigned mode = PUT_DEFAULT_MODE;
        sgl_writer *w = NULL;
        uint8_t *data = NULL;
        size_t len = 0;
        int c, k, ret = EXIT_FAIL;

        optind = 0;
        opterr = 0; /* one line of our own instead */
        while ((c = getopt_long(argc, argv, "k:t:m:s:h", opts, NULL)) >= 0) {
                switch (c) {
                case 'k':
                        if (tool_parse_id("put", optarg, &id) < 0)
                                return EXIT_USAGE;
                        if (id >= 1ULL << 63) {
                                tool_err("put", "invalid key '%s' (keys you choose are 1 to 9223372036854775807)",
                                         optarg);
                                return EXIT_USAGE;
                        }
                        break;
                case 't':
                        if (tool_parse_duration("put", optarg, &ttl_ns) < 0)
                                return EXIT_USAGE;
                        break;
                case 'm':
                        if (tool_parse_mode("put", optarg, &mode) < 0)
                                return EXIT_USAGE;
                        break;
                case 'P':
                        break;
                case 's':
                        socket_opt = optarg;
                        break;
                case 'h':
                        put_usage(stdout);
                        return EXIT_OK;
                default:
                        tool_err_option("put", argv);
                        return EXIT_USAGE;
                }
        }
        if (optind >= argc || argc - optind > 2) {
                tool_err("put", "expects NAME and at most one FILE (try sigillo put --help)");
                return EXIT_USAGE;
        }
        name = argv[optind];
        if (argc - optind == 2)
                file = argv[optind + 1];
        if (tool_check_name("put", name) < 0)
                return EXIT_USAGE;
        address = tool_address(socket_opt);

        /* the input first: a bad file must not touch the area */
        if (strcmp(file, "-") == 0) {
                k = read_all(STDIN_FILENO, &data, &len);
        } else {
                int fd = open(file, O_RDONLY | O_CLOEXEC);
                k = fd < 0 ? -errno : read_all(fd, &data, &len);
                if (fd >= 0)
                        close(fd);
        }
        if (k < 0) {
                tool_err("put", "cannot read %s: %s", strcmp(file, "-") == 0 ? "standard input" : file,
                         strerror(-k));
                return EXIT_FAIL;
        }

        k = sgl_writer_new(name, 0, &w);
        if (k < 0) {
                tool_err("put", "cannot create a writer: %s", strerror(-k));
                goto out;
        }
        k = sgl_writer_publish(w, name, address, SGL_PUBLISH_PERSIST, mode, NULL, 0, NULL, 0);
        if (k < 0) {
                err_publish("put", address, name, k);
                goto out;
        }
        if (ttl_ns)
                expire_ns = sgl_now_ns() + ttl_ns;
        k = sgl_writer_write(w, id, expire_ns, data, len, &ret_id);
        if (k >= 0)
                k = sgl_writer_commit(w);
        if (k < 0) {
                tool_err("put", "cannot commit the chunk: %s", strerror(-k));
                goto out;
        }
        k = writer_sync(w, address, name);
        if (k < 0) {
                tool_err("put", "sigillod did not take the chunk: %s", strerror(-k));
                goto out;
        }
        if (id == 0)
                printf("%" PRIu64 "\n", ret_id);
        ret = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
out:
        sgl_writer_unref(w);
        free(data);
        return ret;
}

/* ----------------------------------------------------- reader helpers */

static int open_reader(const char *cmd, const char *name, const char *address, bool trusted,
                       sgl_reader **ret) {
        int k = sgl_reader_open(name, address, trusted ? SGL_READER_TRUSTED : 0, ret);

        if (k >= 0)
                return 0;
        if (tool_is_unreachable(k)) {
                int p = tool_probe(address);
                if (p < 0) {
                        tool_err_unreachable(cmd, address, p);
                        return k;
                }
        }
        if (k == -ENOENT)
                tool_err(cmd, "no area %s", name);
        else if (k == -EACCES)
                tool_err(cmd, "permission denied: you may not read area %s", name);
        else
                tool_err(cmd, "cannot open area %s on %s: %s", name, address, strerror(-k));
        return k;
}

static const char *const reader_options_help =
        "  -s, --socket ADDR   sigillod's socket (a path, or @name); default\n"
        "                      $SIGILLO_SOCKET, $XDG_RUNTIME_DIR/sigillo/socket,\n"
        "                      /run/sigillo/socket\n"
        "  -T, --trusted       also read the open (unsealed) segment (TRUSTED level)\n"
        "  -h, --help          this text\n"
        "\n"
        "Exit status: 0 on success, 1 on failure or not found, 2 on a usage error.\n";

/* ---------------------------------------------------------------- get */

static void get_usage(FILE *f) {
        fprintf(f,
                "Usage: sigillo get [OPTION]... NAME --key ID\n"
                "Write the latest live version of chunk ID of area NAME to standard output,\n"
                "byte for byte.\n"
                "\n"
                "  -k, --key ID        the chunk's id (required)\n"
                "%s",
                reader_options_help);
}

int cmd_get(int argc, char **argv) {
        static const struct option opts[] = {
                { "key", required_argument, NULL, 'k' },
                { "socket", required_argument, NULL, 's' },
                { "trusted", no_argument, NULL, 'T' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        const char *socket_opt = NULL, *name, *address;
        sgl_reader *r = NULL;
        sgl_chunk *ch = NULL;
        bool trusted = false, have_id = false;
        uint64_t id = 0;
        int c, k, ret = EXIT_FAIL;

        optind = 0;
        opterr = 0; /* one line of our own instead */
        while ((c = getopt_long(argc, argv, "k:s:Th", opts, NULL)) >= 0) {
                switch (c) {
                case 'k':
                        if (tool_parse_id("get", optarg, &id) < 0)
                                return EXIT_USAGE;
                        have_id = true;
                        break;
                case 's':
                        socket_opt = optarg;
                        break;
                case 'T':
                        trusted = true;
                        break;
                case 'h':
                        get_usage(stdout);
                        return EXIT_OK;
                default:
                        tool_err_option("get", argv);
                        return EXIT_USAGE;
                }
        }
        if (argc - optind != 1) {
                tool_err("get", "expects one NAME (try sigillo get --help)");
                return EXIT_USAGE;
        }
        if (!have_id) {
                tool_err("get", "--key ID is required");
                return EXIT_USAGE;
        }
        name = argv[optind];
        if (tool_check_name("get", name) < 0)
                return EXIT_USAGE;
        address = tool_address(socket_opt);

        if (open_reader("get", name, address, trusted, &r) < 0)
                return EXIT_FAIL;
        k = sgl_reader_get(r, id, &ch);
        if (k == -ENOENT) {
                tool_err("get", "no chunk %" PRIu64 " in %s", id, name);
                goto out;
        }
        if (k < 0) {
                tool_err("get", "cannot read chunk %" PRIu64 " of %s: %s", id, name, strerror(-k));
                goto out;
        }
        k = tool_write_all(STDOUT_FILENO, sgl_chunk_data(ch), sgl_chunk_size(ch));
        if (k < 0) {
                tool_err("get", "cannot write to standard output: %s", strerror(-k));
                goto out;
        }
        ret = EXIT_OK;
out:
        sgl_chunk_unref(ch);
        sgl_reader_unref(r);
        return ret;
}

/* ---------------------------------------------------------------- cat */

static void cat_usage(FILE *f) {
        fprintf(f,
                "Usage: sigillo cat [OPTION]... NAME\n"
                "Write every live chunk of area NAME to standard output, in log order, as\n"
                "one raw concatenation.\n"
                "\n"
                "  -f, --follow        then wait and write chunks committed later, until\n"
                "                      SIGINT or SIGTERM, or until the area is removed\n"
                "  -v, --verbose       a line per chunk on standard error: id, version, size\n"
                "%s",
                reader_options_help);
}

static volatile sig_atomic_t cat_stop;

static void on_stop(int sig) {
        (void)sig;
        cat_stop = 1;
}

/* writes every chunk not written yet; 0, or -errno of the output */
static int cat_drain(sgl_reader *r, bool verbose, int *read_errors) {
        for (;;) {
                sgl_chunk *ch;
                int k = sgl_reader_next(r, &ch);

                if (k == -EAGAIN)
                        return 0;
                if (k < 0) {
                        /* a corrupt segment is reported once, then skipped */
                        tool_err("cat", "skipping unreadable data: %s", strerror(-k));
                        (*read_errors)++;
                        if (*read_errors > 1000)
                                return k;
                        continue;
                }
                if (verbose) {
                        fflush(stdout);
                        fprintf(stderr, "chunk id %" PRIu64 " version %" PRIu64 " size %zu\n",
                                sgl_chunk_id(ch), sgl_chunk_version(ch), sgl_chunk_size(ch));
                }
                k = tool_write_all(STDOUT_FILENO, sgl_chunk_data(ch), sgl_chunk_size(ch));
                sgl_chunk_unref(ch);
                if (k < 0) {
                        tool_err("cat", "cannot write to standard output: %s", strerror(-k));
                        return k;
                }
        }
}

int cmd_cat(int argc, char **argv) {
        static const struct option opts[] = {
                { "follow", no_argument, NULL, 'f' },
                { "verbose", no_argument, NULL, 'v' },
                { "socket", required_argument, NULL, 's' },
                { "trusted", no_argument, NULL, 'T' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        const char *socket_opt = NULL, *name, *address;
        bool trusted = false, follow = false, verbose = false;
        struct sigaction sa = { .sa_handler = on_stop };
        sigset_t block, orig;
        sgl_reader *r = NULL;
        int c, k, read_errors = 0, ret = EXIT_FAIL;

        optind = 0;
        opterr = 0; /* one line of our own instead */
        while ((c = getopt_long(argc, argv, "fvs:Th", opts, NULL)) >= 0) {
                switch (c) {
                case 'f':
                        follow = true;
                        break;
                case 'v':
                        verbose = true;
                        break;
                case 's':
                        socket_opt = optarg;
                        break;
                case 'T':
                        trusted = true;
                        break;
                case 'h':
                        cat_usage(stdout);
                        return EXIT_OK;
                default:
                        tool_err_option("cat", argv);
                        return EXIT_USAGE;
                }
        }
        if (argc - optind != 1) {
                tool_err("cat", "expects one NAME (try sigillo cat --help)");
                return EXIT_USAGE;
        }
        name = argv[optind];
        if (tool_check_name("cat", name) < 0)
                return EXIT_USAGE;
        address = tool_address(socket_opt);

        /* the signals stay blocked but in ppoll(): no wake-up is lost */
        sigemptyset(&block);
        sigaddset(&block, SIGINT);
        sigaddset(&block, SIGTERM);
        if (follow) {
                sigprocmask(SIG_BLOCK, &block, &orig);
                sigaction(SIGINT, &sa, NULL);
                sigaction(SIGTERM, &sa, NULL);
        }

        if (open_reader("cat", name, address, trusted, &r) < 0)
                goto out;
        if (cat_drain(r, verbose, &read_errors) < 0)
                goto out;
        while (follow && !cat_stop) {
                struct pollfd p = { .fd = sgl_reader_get_fd(r), .events = POLLIN };

                if (p.fd < 0) {
                        tool_err("cat", "cannot wait for updates: %s", strerror(-p.fd));
                        goto out;
                }
                k = ppoll(&p, 1, NULL, &orig);
                if (k < 0 && errno != EINTR) {
                        tool_err("cat", "poll: %s", strerror(errno));
                        goto out;
                }
                if (k <= 0)
                        continue;
                k = sgl_reader_process(r);
                if (cat_drain(r, verbose, &read_errors) < 0)
                        goto out;
                if (k == -ENOENT) {
                        if (verbose)
                                fprintf(stderr, "area %s was removed\n", name);
                        break;
                }
                if (k < 0) {
                        tool_err("cat", "lost the connection to sigillod at %s: %s", address, strerror(-k));
                        goto out;
                }
        }
        ret = read_errors ? EXIT_FAIL : EXIT_OK;
out:
        sgl_reader_unref(r);
        return ret;
}

/* ----------------------------------------------------------------- gc */

static void gc_usage(FILE *f) {
        fprintf(f,
                "Usage: sigillo gc [OPTION]... NAME\n"
                "Compact your persistent area NAME now: take it over as its writer, relocate\n"
                "the live chunks of the segments with the most garbage, and retire those\n"
                "segments.  Prints how many segments were retired.  The area's mode is kept\n"
                "(its uid and gid lists are not).\n"
                "\n"
                "  -s, --socket ADDR   sigillod's socket (a path, or @name)\n"
                "  -h, --help          this text\n"
                "\n"
                "Exit status: 0 on success, 1 on failure or not found, 2 on a usage error.\n");
}

int cmd_gc(int argc, char **argv) {
        static const struct option opts[] = {
                { "socket", required_argument, NULL, 's' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        const char *socket_opt = NULL, *name, *address;
        struct tool_area_info info;
        sgl_writer *w = NULL;
        int c, k, ret = EXIT_FAIL;

        optind = 0;
        opterr = 0; /* one line of our own instead */
        while ((c = getopt_long(argc, argv, "s:h", opts, NULL)) >= 0) {
                switch (c) {
                case 's':
                        socket_opt = optarg;
                        break;
                case 'h':
                        gc_usage(stdout);
                        return EXIT_OK;
                default:
                        tool_err_option("gc", argv);
                        return EXIT_USAGE;
                }
        }
        if (argc - optind != 1) {
                tool_err("gc", "expects one NAME (try sigillo gc --help)");
                return EXIT_USAGE;
        }
        name = argv[optind];
        if (tool_check_name("gc", name) < 0)
                return EXIT_USAGE;
        address = tool_address(socket_opt);

        if (tool_stat_area("gc", address, name, &info) < 0)
                return EXIT_FAIL;
        if (info.owner_uid != (uint32_t)getuid()) {
                tool_err("gc", "area %s belongs to %s: only its owner can compact it", name,
                         tool_user_name(info.owner_uid));
                return EXIT_FAIL;
        }
        if (info.flags & SGL_INFO_WRITER_PRESENT) {
                tool_err("gc", "area %s is in use by a writer", name);
                return EXIT_FAIL;
        }
        k = sgl_writer_new(name, 0, &w);
        if (k < 0) {
                tool_err("gc", "cannot create a writer: %s", strerror(-k));
                goto out;
        }
        k = sgl_writer_publish(w, name, address,
                               (info.flags & SGL_INFO_PERSIST) ? SGL_PUBLISH_PERSIST : 0,
                               info.mode, NULL, 0, NULL, 0);
        if (k < 0) {
                err_publish("gc", address, name, k);
                goto out;
        }
        k = sgl_writer_gc(w);
        if (k < 0) {
                tool_err("gc", "compaction failed: %s", strerror(-k));
                goto out;
        }
        c = writer_sync(w, address, name);
        if (c < 0) {
                tool_err("gc", "sigillod did not take the result: %s", strerror(-c));
                goto out;
        }
        printf("%s: retired %d segment%s\n", name, k, k == 1 ? "" : "s");
        ret = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
out:
        sgl_writer_unref(w);
        return ret;
}
