/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * query.c - the subcommands that ask sigillod about areas (ls, stat: role
 * query, LIST and STAT) and rm (role writer: CLAIM, then RELEASE with
 * REMOVE).  They speak the protocol directly through the codec
 * (src/protocol.h); no segment is ever mapped.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "subcommands.h"

static const char *const query_options_help =
        "  -s, --socket ADDR   sigillod's socket (a path, or @name); default\n"
        "                      $SIGILLO_SOCKET, $XDG_RUNTIME_DIR/sigillo/socket,\n"
        "                      /run/sigillo/socket\n"
        "  -h, --help          this text\n"
        "\n"
        "Exit status: 0 on success, 1 on failure or not found, 2 on a usage error.\n";

/* JSON string of @s (names are plain already; user names may not be) */
static void json_str(const char *s) {
        putchar('"');
        for (; *s; s++) {
                unsigned char ch = (unsigned char)*s;
                if (ch == '"' || ch == '\\')
                        printf("\\%c", ch);
                else if (ch < 0x20)
                        printf("\\u%04x", ch);
                else
                        putchar(ch);
        }
        putchar('"');
}

static int parse_common(const char *cmd, int argc, char **argv, const char *shortopts,
                        const struct option *opts, bool *json, const char **socket_opt,
                        void (*usage)(FILE *)) {
        int c;

        optind = 0;
        opterr = 0; /* one line of our own instead */
        while ((c = getopt_long(argc, argv, shortopts, opts, NULL)) >= 0) {
                switch (c) {
                case 'j':
                        *json = true;
                        break;
                case 's':
                        *socket_opt = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return 1;
                default:
                        tool_err_option(cmd, argv);
                        return -EINVAL;
                }
        }
        return 0;
}

static void err_query(const char *cmd, const char *address, const char *name, int k) {
        /* -ENOENT is also the daemon's "no such area": ask the socket */
        int p = tool_is_unreachable(k) ? tool_probe(address) : 0;

        if (p < 0)
                tool_err_unreachable(cmd, address, p);
        else if (k == -ENOENT && name)
                tool_err(cmd, "no area %s", name);
        else if (k == -EACCES && name)
                tool_err(cmd, "permission denied: you may not read area %s", name);
        else if (k == -EACCES)
                tool_err(cmd, "permission denied by sigillod at %s", address);
        else
                tool_err(cmd, "sigillod at %s: %s", address, strerror(-k));
}

/* ------------------------------------------------------------------ ls */

static void ls_usage(FILE *f) {
        fprintf(f,
                "Usage: sigillo ls [OPTION]...\n"
                "List the areas on sigillod that you may read or own.\n"
                "Columns: NAME OWNER MODE SEGMENTS USED (bytes the area pins) LIVE (payload\n"
                "bytes of live chunks, '-' when the daemon does not know) WRITER (yes when a\n"
                "writer holds the lease) READERS (subscribed readers).\n"
                "\n"
                "  -j, --json          one JSON array of objects instead of columns\n"
                "%s",
                query_options_help);
}

int cmd_ls(int argc, char **argv) {
        static const struct option opts[] = {
                { "json", no_argument, NULL, 'j' },
                { "socket", required_argument, NULL, 's' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        const char *socket_opt = NULL, *address;
        struct qconn q = { .fd = -1 };
        struct sgl_msg m;
        bool json = false;
        uint32_t serial;
        size_t n = 0;
        int k;

        k = parse_common("ls", argc, argv, "js:h", opts, &json, &socket_opt, ls_usage);
        if (k != 0)
                return k > 0 ? EXIT_OK : EXIT_USAGE;
        if (optind != argc) {
                tool_err("ls", "takes no arguments (try sigillo ls --help)");
                return EXIT_USAGE;
        }
        address = tool_address(socket_opt);

        k = qconn_open(&q, address, SGL_ROLE_QUERY);
        if (k < 0) {
                err_query("ls", address, NULL, k);
                return EXIT_FAIL;
        }
        serial = ++q.serial;
        k = qconn_send(&q, sgl_msg_build_list(q.buf, sizeof(q.buf), serial));
        if (json)
                printf("[");
        else
                printf("%-24s %-10s %-4s %8s %12s %12s %-6s %7s\n", "NAME", "OWNER", "MODE",
                       "SEGMENTS", "USED", "LIVE", "WRITER", "READERS");
        while (k >= 0) {
                char live[24];

                k = qconn_recv(&q, serial, &m);
                if (k < 0 || m.type == SGL_MSG_END)
                        break;
                if (m.type != SGL_MSG_AREA_INFO) {
                        k = -EPROTO;
                        break;
                }
                if (m.area_info.bytes_live == SGL_MSG_BYTES_UNKNOWN)
                        snprintf(live, sizeof(live), json ? "null" : "-");
                else
                        snprintf(live, sizeof(live), "%" PRIu64, m.area_info.bytes_live);
                if (json) {
                        printf("%s\n  {\"name\": \"%.*s\", \"owner\": ", n ? "," : "",
                               (int)m.area_info.name_len, m.area_info.name);
                        json_str(tool_user_name(m.area_info.owner_uid));
                        printf(", \"owner_uid\": %" PRIu32 ", \"mode\": \"%04" PRIo32 "\""
                               ", \"segments\": %" PRIu64 ", \"bytes_used\": %" PRIu64
                               ", \"bytes_live\": %s, \"writer\": %s, \"persist\": %s"
                               ", \"readers\": %" PRIu32 "}",
                               m.area_info.owner_uid, m.area_info.mode, m.area_info.segments,
                               m.area_info.bytes_used, live,
                               (m.area_info.flags & SGL_INFO_WRITER_PRESENT) ? "true" : "false",
                               (m.area_info.flags & SGL_INFO_PERSIST) ? "true" : "false",
                               m.area_info.readers);
                } else {
                        printf("%-24.*s %-10s %04" PRIo32 " %8" PRIu64 " %12" PRIu64 " %12s %-6s %7" PRIu32 "\n",
                               (int)m.area_info.name_len, m.area_info.name,
                               tool_user_name(m.area_info.owner_uid), m.area_info.mode,
                               m.area_info.segments, m.area_info.bytes_used, live,
                               (m.area_info.flags & SGL_INFO_WRITER_PRESENT) ? "yes" : "no",
                               m.area_info.readers);
                }
                n++;
        }
        qconn_close(&q);
        if (json)
                printf("%s]\n", n ? "\n" : "");
        if (k < 0) {
                err_query("ls", address, NULL, k);
                return EXIT_FAIL;
        }
        return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}

/* ---------------------------------------------------------------- stat */

static void stat_usage(FILE *f) {
        fprintf(f,
                "Usage: sigillo stat [OPTION]... NAME\n"
                "Show area NAME on sigillod and each of its live segments: seq, size in\n"
                "bytes, seals (SHRINK|GROW|WRITE|SEAL|FUTURE_WRITE|EXEC) and the event it\n"
                "was published with (opened, sealed).\n"
                "\n"
                "  -j, --json          one JSON object instead of text\n"
                "%s",
                query_options_help);
}

/* STAT's replies, collected so a failure prints nothing on stdout */
struct stat_reply {
        struct tool_area_info info;
        uint64_t bytes_used, bytes_live;
        char name[SGL_NAME_MAX + 1];
        struct { uint64_t seq, size; uint32_t seals, event; } *segs;
        size_t nsegs;
};

static int do_stat(const char *address, const char *name, struct stat_reply *ret) {
        struct qconn q = { .fd = -1 };
        bool have_info = false;
        struct sgl_msg m;
        uint32_t serial;
        int k;

        k = qconn_open(&q, address, SGL_ROLE_QUERY);
        if (k < 0)
                return k;
        serial = ++q.serial;
        k = qconn_send(&q, sgl_msg_build_stat(q.buf, sizeof(q.buf), serial, name, strlen(name)));
        while (k >= 0) {
                k = qconn_recv(&q, serial, &m);
                if (k < 0)
                        break;
                if (m.type == SGL_MSG_END) {
                        if (!have_info)
                                k = -EPROTO;
                        break;
                }
                if (m.type == SGL_MSG_AREA_INFO && !have_info) {
                        have_info = true;
                        ret->info = (struct tool_area_info) {
                                .owner_uid = m.area_info.owner_uid,
                                .mode = m.area_info.mode,
                                .flags = m.area_info.flags,
                                .readers = m.area_info.readers,
                                .segments = m.area_info.segments,
                        };
                        ret->bytes_used = m.area_info.bytes_used;
                        ret->bytes_live = m.area_info.bytes_live;
                        memcpy(ret->name, m.area_info.name, m.area_info.name_len);
                        ret->name[m.area_info.name_len] = '\0';
                } else if (m.type == SGL_MSG_SEGMENT_INFO && have_info) {
                        void *v = realloc(ret->segs, (ret->nsegs + 1) * sizeof(*ret->segs));
                        if (!v) {
                                k = -ENOMEM;
                                break;
                        }
                        ret->segs = v;
                        ret->segs[ret->nsegs].seq = m.segment_info.seq;
                        ret->segs[ret->nsegs].size = m.segment_info.size;
                        ret->segs[ret->nsegs].seals = m.segment_info.seals;
                        ret->segs[ret->nsegs].event = m.segment_info.event;
                        ret->nsegs++;
                } else {
                        k = -EPROTO;
                }
        }
        qconn_close(&q);
        return k;
}

int tool_stat_area(const char *cmd, const char *address, const char *name,
                   struct tool_area_info *ret) {
        struct stat_reply s = {};
        int k = do_stat(address, name, &s);

        free(s.segs);
        if (k < 0) {
                err_query(cmd, address, name, k);
                return k;
        }
        *ret = s.info;
        return 0;
}

static const char *event_name(uint32_t ev) {
        return ev == SGL_MSG_EVENT_SEALED ? "sealed" : ev == SGL_MSG_EVENT_OPENED ? "opened" : "?";
}

int cmd_stat(int argc, char **argv) {
        static const struct option opts[] = {
                { "json", no_argument, NULL, 'j' },
                { "socket", required_argument, NULL, 's' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        const char *socket_opt = NULL, *address, *name;
        struct stat_reply s = {};
        bool json = false;
        char seals[96], live[24];
        int k;

        k = parse_common("stat", argc, argv, "js:h", opts, &json, &socket_opt, stat_usage);
        if (k != 0)
                return k > 0 ? EXIT_OK : EXIT_USAGE;
        if (argc - optind != 1) {
                tool_err("stat", "expects one NAME (try sigillo stat --help)");
                return EXIT_USAGE;
        }
        name = argv[optind];
        if (tool_check_name("stat", name) < 0)
                return EXIT_USAGE;
        address = tool_address(socket_opt);

        k = do_stat(address, name, &s);
        if (k < 0) {
                free(s.segs);
                err_query("stat", address, name, k);
                return EXIT_FAIL;
        }
        if (s.bytes_live == SGL_MSG_BYTES_UNKNOWN)
                snprintf(live, sizeof(live), json ? "null" : "unknown");
        else
                snprintf(live, sizeof(live), "%" PRIu64, s.bytes_live);
        if (json) {
                printf("{\"name\": \"%s\", \"owner\": ", s.name);
                json_str(tool_user_name(s.info.owner_uid));
                printf(", \"owner_uid\": %" PRIu32 ", \"mode\": \"%04" PRIo32 "\", \"writer\": %s"
                       ", \"persist\": %s, \"readers\": %" PRIu32 ", \"segments\": %" PRIu64
                       ", \"bytes_used\": %" PRIu64 ", \"bytes_live\": %s, \"segment_list\": [",
                       s.info.owner_uid, s.info.mode,
                       (s.info.flags & SGL_INFO_WRITER_PRESENT) ? "true" : "false",
                       (s.info.flags & SGL_INFO_PERSIST) ? "true" : "false", s.info.readers,
                       s.info.segments, s.bytes_used, live);
                for (size_t i = 0; i < s.nsegs; i++)
                        printf("%s\n  {\"seq\": %" PRIu64 ", \"size\": %" PRIu64 ", \"seals\": \"%s\""
                               ", \"seals_raw\": %" PRIu32 ", \"event\": \"%s\"}",
                               i ? "," : "", s.segs[i].seq, s.segs[i].size,
                               tool_seal_names(s.segs[i].seals, seals, sizeof(seals)),
                               s.segs[i].seals, event_name(s.segs[i].event));
                printf("%s]}\n", s.nsegs ? "\n" : "");
        } else {
                printf("name:     %s\n", s.name);
                printf("owner:    %s (uid %" PRIu32 ")\n", tool_user_name(s.info.owner_uid),
                       s.info.owner_uid);
                printf("mode:     %04" PRIo32 "\n", s.info.mode);
                printf("persist:  %s\n", (s.info.flags & SGL_INFO_PERSIST) ? "yes" : "no");
                printf("writer:   %s\n", (s.info.flags & SGL_INFO_WRITER_PRESENT) ? "yes" : "no");
                printf("readers:  %" PRIu32 "\n", s.info.readers);
                printf("segments: %" PRIu64 "\n", s.info.segments);
                printf("used:     %" PRIu64 " bytes\n", s.bytes_used);
                printf("live:     %s%s\n", live, s.bytes_live == SGL_MSG_BYTES_UNKNOWN ? "" : " bytes");
                if (s.nsegs)
                        printf("%10s %12s %-7s %s\n", "SEQ", "SIZE", "EVENT", "SEALS");
                for (size_t i = 0; i < s.nsegs; i++)
                        printf("%10" PRIu64 " %12" PRIu64 " %-7s %s\n", s.segs[i].seq, s.segs[i].size,
                               event_name(s.segs[i].event),
                               tool_seal_names(s.segs[i].seals, seals, sizeof(seals)));
        }
        free(s.segs);
        return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}

/* ------------------------------------------------------------------ rm */

static void rm_usage(FILE *f) {
        fprintf(f,
                "Usage: sigillo rm [OPTION]... NAME\n"
                "Remove your area NAME from sigillod: take its lease, then release it with\n"
                "REMOVE.  Its segments are dropped and subscribed readers are told it is\n"
                "gone; what readers mapped stays readable to them.  An area with a writer\n"
                "cannot be removed (stop the writer first).\n"
                "\n"
                "%s",
                query_options_help);
}

int cmd_rm(int argc, char **argv) {
        static const struct option opts[] = {
                { "socket", required_argument, NULL, 's' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        const char *socket_opt = NULL, *address, *name;
        struct tool_area_info info;
        struct qconn q = { .fd = -1 };
        struct sgl_msg m;
        bool json = false, existed = true;
        uint32_t serial;
        int k;

        k = parse_common("rm", argc, argv, "s:h", opts, &json, &socket_opt, rm_usage);
        if (k != 0)
                return k > 0 ? EXIT_OK : EXIT_USAGE;
        if (argc - optind != 1) {
                tool_err("rm", "expects one NAME (try sigillo rm --help)");
                return EXIT_USAGE;
        }
        name = argv[optind];
        if (tool_check_name("rm", name) < 0)
                return EXIT_USAGE;
        address = tool_address(socket_opt);

        /* look first: a CLAIM of a name nobody has would create the area */
        if (tool_stat_area("rm", address, name, &info) < 0)
                return EXIT_FAIL;
        k = qconn_open(&q, address, SGL_ROLE_WRITER);
        if (k < 0) {
                err_query("rm", address, NULL, k);
                return EXIT_FAIL;
        }
        serial = ++q.serial;
        k = qconn_send(&q, sgl_msg_build_claim(q.buf, sizeof(q.buf), serial,
                                               (info.flags & SGL_INFO_PERSIST) ? SGL_CLAIM_PERSIST : 0,
                                               info.mode, NULL, 0, NULL, 0, name, strlen(name)));
        if (k >= 0)
                k = qconn_recv(&q, serial, &m);
        if (k >= 0 && m.type != SGL_MSG_CLAIMED)
                k = -EPROTO;
        if (k >= 0 && (m.claimed.flags & SGL_CLAIMED_TAKEOVER)) {
                /* the area's segments come, then SYNCED: we drop them */
                do
                        k = qconn_recv(&q, serial, &m);
                while (k >= 0 && m.type == SGL_MSG_SEGMENT);
                if (k >= 0 && m.type != SGL_MSG_SYNCED)
                        k = -EPROTO;
        } else if (k >= 0) {
                existed = false; /* it went in between: ours now, removed below */
        }
        if (k == -EBUSY) {
                tool_err("rm", "area %s is in use by a writer", name);
                goto fail;
        }
        if (k == -EEXIST) {
                tool_err("rm", "area %s belongs to %s: only its owner can remove it", name,
                         tool_user_name(info.owner_uid));
                goto fail;
        }
        if (k >= 0) {
                serial = ++q.serial;
                k = qconn_send(&q, sgl_msg_build_release(q.buf, sizeof(q.buf), serial,
                                                         SGL_RELEASE_REMOVE));
        }
        if (k >= 0)
                k = qconn_recv(&q, serial, &m);
        if (k >= 0 && m.type != SGL_MSG_OK)
                k = -EPROTO;
        if (k < 0) {
                err_query("rm", address, name, k);
                goto fail;
        }
        qconn_close(&q);
        if (!existed) {
                tool_err("rm", "no area %s", name);
                return EXIT_FAIL;
        }
        return EXIT_OK;
fail:
        qconn_close(&q);
        return EXIT_FAIL;
}
