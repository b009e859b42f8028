/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench.c - `sigillo bench [ARGS]`: runs the benchmark program,
 * sigillo-bench, with ARGS.  The benchmark is a program of its own (it
 * forks many processes and may load iceoryx), so the tool only finds and
 * execs it: $SIGILLO_BENCH if set, else bench/sigillo-bench next to this
 * binary (the build tree), else the installed $(pkglibexecdir)/sigillo-bench.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "subcommands.h"

#ifndef PKGLIBEXECDIR
#define PKGLIBEXECDIR "/usr/local/libexec/sigillo"
#endif

static const char *find_bench(char *buf, size_t size) {
        const char *env = getenv("SIGILLO_BENCH");
        ssize_t n;
        char *slash;

        if (env && *env)
                return env;
        n = readlink("/proc/self/exe", buf, size - 1);
        if (n > 0) {
                buf[n] = 0;
                slash = strrchr(buf, '/');
                if (slash && (size_t)(slash - buf) + sizeof("/bench/sigillo-bench") <= size) {
                        strcpy(slash, "/bench/sigillo-bench");
                        if (access(buf, X_OK) == 0)
                                return buf;
                }
        }
        return PKGLIBEXECDIR "/sigillo-bench";
}

int cmd_bench(int argc, char **argv) {
        char buf[PATH_MAX];
        const char *path = find_bench(buf, sizeof(buf));

        argv[0] = (char *)"sigillo-bench";
        fflush(stdout);
        execv(path, argv);
        fprintf(stderr, "sigillo bench: cannot run %s: %s\n", path, strerror(errno));
        return 1;
}
