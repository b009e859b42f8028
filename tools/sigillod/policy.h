/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * policy.h - the admin policy of sigillod: name reservations read from
 * /etc/sigillo/policy.d (doc/policy.md is the format).
 *
 * Owns: parsing policy text into rules and answering "may this peer claim
 * this name?".  Pure apart from sgld_policy_load_dir(): the parser does no
 * I/O, so it can be fuzzed (fuzz/fuzz-policy.c).
 */
#ifndef SGLD_POLICY_H
#define SGLD_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SGLD_POLICY_DIR "/etc/sigillo/policy.d"
#define SGLD_POLICY_MAX_RULES 65536      /* in all files together */
#define SGLD_POLICY_MAX_LINE 1024        /* bytes, newline excluded */
#define SGLD_POLICY_MAX_FILE (1u << 20)  /* bytes per file */
#define SGLD_POLICY_MAX_FILES 1024       /* files per directory */

struct sgld_policy;

/* Told about every line the parser ignores (and every file the loader
 * skips): @origin is the file name (or what the caller passed), @line the
 * 1-based line number (0 for a whole file), @msg why. */
typedef void (*sgld_policy_log_fn)(void *userdata, const char *origin,
                                   unsigned line, const char *msg);

struct sgld_policy *sgld_policy_new(void);
struct sgld_policy *sgld_policy_free(struct sgld_policy *p);

int sgld_policy_parse(struct sgld_policy *p, const char *text, size_t len,
                      const char *origin, sgld_policy_log_fn log_fn,
                      void *userdata);
int sgld_policy_load_dir(struct sgld_policy *p, const char *dir,
                         sgld_policy_log_fn log_fn, void *userdata);

size_t sgld_policy_rules(const struct sgld_policy *p);
bool sgld_policy_reserved(const struct sgld_policy *p, const char *name,
                          size_t name_len);
int sgld_policy_check_claim(const struct sgld_policy *p, const char *name,
                            size_t name_len, uid_t uid, gid_t gid,
                            const gid_t *groups, size_t n_groups);
int sgld_policy_format(const struct sgld_policy *p, char **ret,
                       size_t *ret_len);

#endif
