/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* subcommands.h - the sigillo tool's subcommands; each returns its exit
 * status and gets argv[0] = its own name. */
#ifndef SIGILLO_TOOL_SUBCOMMANDS_H
#define SIGILLO_TOOL_SUBCOMMANDS_H

#include <stdint.h>

/* data.c */
int cmd_put(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_gc(int argc, char **argv);

/* query.c */
int cmd_ls(int argc, char **argv);
int cmd_stat(int argc, char **argv);
int cmd_rm(int argc, char **argv);

/* bench.c: execs sigillo-bench */
int cmd_bench(int argc, char **argv);

/* an AREA_INFO, for the commands that look before they act */
struct tool_area_info {
        uint32_t owner_uid;
        uint32_t mode;
        uint32_t flags;
        uint32_t readers;
        uint64_t segments;
};

/* STAT @name over a query connection; on failure prints one line naming
 * @cmd and returns -errno */
int tool_stat_area(const char *cmd, const char *address, const char *name,
                   struct tool_area_info *ret);

#endif
