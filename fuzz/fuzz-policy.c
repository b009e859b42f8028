/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-policy.c - libFuzzer harness for sigillod's policy parser
 * (tools/sigillod/policy.c, format in doc/policy.md).
 *
 * Input: the text of one policy file.  Oracle: every line is either a
 * rule, blank/comment, or reported as ignored (never more reports than
 * lines); the rules print in canonical form (sgld_policy_format()), and
 * that text parses back without a single complaint into the same rules,
 * which print identically again; both policies answer every claim check
 * alike (names taken from the input); and a rule reserves its own exact
 * pattern.  Any mismatch abort()s.  Memory errors are the sanitizers'.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc \
 *          -Itools/sigillod -D_GNU_SOURCE fuzz/fuzz-policy.c \
 *          tools/sigillod/policy.c -o fuzz-policy
 * Run:   ./fuzz-policy -max_len=8192 fuzz/corpus/policy
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond, const char *what) {
        if (!cond) {
                fprintf(stderr, "fuzz-policy: %s\n", what);
                abort();
        }
}

static void count_log(void *userdata, const char *origin, unsigned line, const char *msg) {
        (void)origin;
        check(line > 0 && msg && *msg, "report without a line or a reason");
        (*(size_t *)userdata)++;
}

/* Up to 8 names cut from the input at its separators, as the parser's
 * subjects might see them (valid or not: check_claim takes any bytes). */
static size_t names_from(const uint8_t *data, size_t size, const char **names, size_t *lens) {
        size_t n = 0, start = 0;

        for (size_t i = 0; i <= size && n < 8; i++) {
                if (i == size || data[i] == ' ' || data[i] == '\n' || data[i] == '*') {
                        if (i > start) {
                                names[n] = (const char *)data + start;
                                lens[n++] = i - start;
                        }
                        start = i + 1;
                }
        }
        return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct sgld_policy *p1 = sgld_policy_new(), *p2 = sgld_policy_new();
        char *text1 = NULL, *text2 = NULL;
        size_t len1 = 0, len2 = 0, reports = 0, reports2 = 0, lines = 0;
        const char *names[8];
        size_t lens[8], n_names;
        int r1, r2;

        check(p1 && p2, "out of memory");
        for (size_t i = 0; i < size; i++)
                lines += data[i] == '\n';
        lines += size > 0 && data[size - 1] != '\n';

        r1 = sgld_policy_parse(p1, (const char *)data, size, "fuzz", count_log, &reports);
        check(r1 >= 0, "parse failed");
        check((size_t)r1 == sgld_policy_rules(p1), "rule count");
        check((size_t)r1 + reports <= lines, "more rules and reports than lines");

        check(sgld_policy_format(p1, &text1, &len1) == 0, "format");
        check(strlen(text1) == len1, "format length");
        r2 = sgld_policy_parse(p2, text1, len1, "canonical", count_log, &reports2);
        check(reports2 == 0, "canonical text has a bad line");
        check(r2 == r1, "canonical text has other rules");
        check(sgld_policy_format(p2, &text2, &len2) == 0, "format again");
        check(len1 == len2 && memcmp(text1, text2, len1) == 0, "canonical form not stable");

        n_names = names_from(data, size, names, lens);
        for (size_t i = 0; i < n_names; i++)
                for (uint32_t id = 0; id < 3; id++) {
                        gid_t groups[2] = { id + 1000, 4343 };
                        int a = sgld_policy_check_claim(p1, names[i], lens[i], id, id, groups, 2);
                        int b = sgld_policy_check_claim(p2, names[i], lens[i], id, id, groups, 2);

                        check(a == b, "policies disagree");
                        check(a == 0 || sgld_policy_reserved(p1, names[i], lens[i]),
                              "refused a name no rule reserves");
                }

        /* each canonical line reserves its own pattern (minus a '*') */
        for (char *line = text1; line && *line;) {
                char *nl = strchr(line, '\n'), *pat = line + 8, *sp = strchr(pat, ' ');
                size_t plen;

                check(nl && sp && sp < nl && strncmp(line, "reserve ", 8) == 0, "canonical line");
                plen = (size_t)(sp - pat);
                if (plen > 0 && pat[plen - 1] == '*')
                        plen--;
                if (plen > 0)
                        check(sgld_policy_reserved(p1, pat, plen), "a rule does not reserve its pattern");
                line = nl + 1;
        }

        free(text1);
        free(text2);
        sgld_policy_free(p1);
        sgld_policy_free(p2);
        return 0;
}
