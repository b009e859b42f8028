/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * policy.c - the admin policy of sigillod: name reservations.
 *
 * Owns: the line format of doc/policy.md, its strict parser, loading the
 * *.conf files of a directory, and the claim check.
 *
 * Invariants:
 *  - A policy file is an administrator's, but it is parsed like a stranger's
 *    bytes: every line is checked as a whole before it becomes a rule, and a
 *    line that breaks any rule is reported and ignored (never half-applied,
 *    never fatal).  The parser reads each byte once, allocates only the rule
 *    array, and keeps no pointer into the input.
 *  - A name is reserved when at least one rule's pattern matches it; then
 *    only a peer matching one of those rules' subjects may claim it.  Rules
 *    only ever restrict claims (they never grant reading).
 *  - sgld_policy_format() prints the rules in a canonical form that parses
 *    back to the same rules (the fuzz harness checks it).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "protocol.h"
#include "policy.h"

enum subject {
        SUBJECT_UID = 1,
        SUBJECT_GID = 2,
};

struct rule {
        char pattern[SGL_NAME_MAX + 1]; /* NUL-terminated, no '*' */
        uint16_t len;                   /* of pattern */
        bool prefix;                    /* pattern was "PREFIX*" */
        uint8_t subject;                /* enum subject */
        uint32_t id;                    /* the uid or gid */
};

struct sgld_policy {
        struct rule *rules;
        size_t n;
        size_t allocated;
};

struct sgld_policy *sgld_policy_new(void) {
        return calloc(1, sizeof(struct sgld_policy));
}

struct sgld_policy *sgld_policy_free(struct sgld_policy *p) {
        if (p) {
                free(p->rules);
                free(p);
        }
        return NULL;
}

size_t sgld_policy_rules(const struct sgld_policy *p) {
        return p ? p->n : 0;
}

static bool name_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

static bool blank(char c) {
        return c == ' ' || c == '\t';
}

/* A decimal id: no sign, no leading zero (but "0"), at most 4294967294
 * ((uid_t)-1 is "no id" everywhere). */
static bool parse_id(const char *s, size_t len, uint32_t *ret) {
        uint64_t v = 0;

        if (len == 0 || len > 10 || (len > 1 && s[0] == '0'))
                return false;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                v = v * 10 + (uint64_t)(s[i] - '0');
        }
        if (v >= UINT32_MAX)
                return false;
        *ret = (uint32_t)v;
        return true;
}

/* "NAME", "PREFIX*" or "*".  A prefix follows the name rules except that
 * it may be empty (then it matches every name). */
static const char *parse_pattern(const char *s, size_t len, struct rule *r) {
        bool prefix = len > 0 && s[len - 1] == '*';
        size_t n = prefix ? len - 1 : len;

        if (n > SGL_NAME_MAX || (prefix && n == SGL_NAME_MAX))
                return "pattern too long";
        if (!prefix && n == 0)
                return "empty pattern";
        if (n > 0 && s[0] == '.')
                return "pattern starts with '.'";
        for (size_t i = 0; i < n; i++)
                if (!name_char(s[i]))
                        return "pattern has a character names cannot have";
        memcpy(r->pattern, s, n);
        r->pattern[n] = '\0';
        r->len = (uint16_t)n;
        r->prefix = prefix;
        return NULL;
}

static const char *parse_subject(const char *s, size_t len, struct rule *r) {
        if (len > 4 && memcmp(s, "uid=", 4) == 0)
                r->subject = SUBJECT_UID;
        else if (len > 4 && memcmp(s, "gid=", 4) == 0)
                r->subject = SUBJECT_GID;
        else
                return "expected uid=N or gid=N";
        if (!parse_id(s + 4, len - 4, &r->id))
                return "bad id (decimal 0 ... 4294967294, no leading zeros)";
        return NULL;
}

/* One line without its newline; returns NULL and fills @r for a rule,
 * NULL with r->subject 0 for a blank or comment line, else why not. */
static const char *parse_line(const char *s, size_t len, struct rule *r) {
        const char *tok[4];
        size_t toklen[4], ntok = 0, i = 0;

        r->subject = 0;
        if (len > SGLD_POLICY_MAX_LINE)
                return "line too long";
        for (size_t k = 0; k < len; k++) {
                unsigned char c = (unsigned char)s[k];
                if ((c < 0x20 && c != '\t') || c >= 0x7f)
                        return "control or non-ASCII character";
        }
        while (i < len && blank(s[i]))
                i++;
        if (i == len || s[i] == '#')
                return NULL;
        while (i < len) {
                size_t start = i;

                while (i < len && !blank(s[i]))
                        i++;
                if (ntok == ELEMENTSOF(tok))
                        return "too many words";
                tok[ntok] = s + start;
                toklen[ntok++] = i - start;
                while (i < len && blank(s[i]))
                        i++;
        }
        if (!(toklen[0] == 7 && memcmp(tok[0], "reserve", 7) == 0))
                return "unknown directive (only \"reserve\" exists)";
        if (ntok != 3)
                return "expected: reserve PATTERN uid=N|gid=N";
        {
                const char *why = parse_pattern(tok[1], toklen[1], r);
                if (!why)
                        why = parse_subject(tok[2], toklen[2], r);
                if (why)
                        r->subject = 0;
                return why;
        }
}

static void report(sgld_policy_log_fn log_fn, void *userdata,
                   const char *origin, unsigned line, const char *msg) {
        if (log_fn)
                log_fn(userdata, origin ? origin : "-", line, msg);
}

/**
 * sgld_policy_parse() - adds the rules of one policy text.
 * @p: the policy
 * @text: the bytes (no terminator needed; a NUL byte is a bad character)
 * @len: their number
 * @origin: for messages (a file name)
 * @log_fn: told about each ignored line (may be NULL)
 * @userdata: for @log_fn
 *
 * Return: the number of rules added, or -ENOMEM (rules added before stay).
 */
int sgld_policy_parse(struct sgld_policy *p, const char *text, size_t len,
                      const char *origin, sgld_policy_log_fn log_fn,
                      void *userdata) {
        unsigned lineno = 0;
        int added = 0;
        size_t pos = 0;

        if (!p || (!text && len > 0))
                return -EINVAL;
        while (pos < len) {
                const char *nl = memchr(text + pos, '\n', len - pos);
                size_t end = nl ? (size_t)(nl - text) : len;
                struct rule r;
                const char *why;

                lineno++;
                why = parse_line(text + pos, end - pos, &r);
                pos = nl ? end + 1 : len;
                if (why) {
                        report(log_fn, userdata, origin, lineno, why);
                        continue;
                }
                if (r.subject == 0)
                        continue;
                if (p->n >= SGLD_POLICY_MAX_RULES) {
                        report(log_fn, userdata, origin, lineno,
                               "too many rules, ignored");
                        continue;
                }
                if (p->n == p->allocated) {
                        size_t n = p->allocated ? p->allocated * 2 : 16;
                        struct rule *a = realloc(p->rules, n * sizeof(*a));
                        if (!a)
                                return -ENOMEM;
                        p->rules = a;
                        p->allocated = n;
                }
                p->rules[p->n++] = r;
                added++;
        }
        return added;
}

static int cmp_names(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool conf_name(const char *n) {
        size_t len = strlen(n);
        return n[0] != '.' && len > 5 && strcmp(n + len - 5, ".conf") == 0;
}

/* Reads one file; refuses anything an unprivileged user could have put
 * there or changed. */
static int load_file(struct sgld_policy *p, int dfd, const char *dir, const char *file,
                     sgld_policy_log_fn log_fn, void *userdata) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL, *path = NULL;
        const char *name = file;
        struct stat st;
        size_t got = 0;

        /* messages name the whole path */
        if (asprintf(&path, "%s/%s", dir, file) >= 0)
                name = path;

        fd = openat(dfd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
        if (fd < 0) {
                report(log_fn, userdata, name, 0, "cannot open, ignored");
                return 0;
        }
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                report(log_fn, userdata, name, 0, "not a regular file, ignored");
                return 0;
        }
        if ((st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & 0022)) {
                report(log_fn, userdata, name, 0,
                       "writable by others or owned by another user, ignored");
                return 0;
        }
        if (st.st_size > (off_t)SGLD_POLICY_MAX_FILE) {
                report(log_fn, userdata, name, 0, "larger than 1 MiB, ignored");
                return 0;
        }
        buf = malloc((size_t)st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        while (got <= (size_t)st.st_size) {
                ssize_t n = read(fd, buf + got, (size_t)st.st_size + 1 - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        report(log_fn, userdata, name, 0, "read error, ignored");
                        return 0;
                }
                if (n == 0)
                        break;
                got += (size_t)n;
        }
        if (got > (size_t)st.st_size) {
                report(log_fn, userdata, name, 0, "changed while read, ignored");
                return 0;
        }
        return sgld_policy_parse(p, buf, got, name, log_fn, userdata);
}

/**
 * sgld_policy_load_dir() - adds the rules of every "*.conf" file in @dir
 * (not starting with '.'), in byte order of their names.
 * @p: the policy
 * @dir: the directory; a missing one is an empty policy
 * @log_fn: told about ignored lines and files (may be NULL)
 * @userdata: for @log_fn
 *
 * Files that are not regular, are writable by group or others, are owned by
 * neither root nor us, or exceed SGLD_POLICY_MAX_FILE are ignored whole.
 *
 * Return: the number of rules added, or -ENOMEM, or the error of opening
 * @dir when it exists but cannot be read.
 */
int sgld_policy_load_dir(struct sgld_policy *p, const char *dir,
                         sgld_policy_log_fn log_fn, void *userdata) {
        char **names = NULL;
        size_t n = 0;
        struct dirent *de;
        int total = 0, r = 0;
        DIR *d;

        d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : sgl_negerrno();
        names = calloc(SGLD_POLICY_MAX_FILES, sizeof(*names));
        if (!names) {
                closedir(d);
                return -ENOMEM;
        }
        while ((de = readdir(d))) {
                if (!conf_name(de->d_name))
                        continue;
                if (n == SGLD_POLICY_MAX_FILES) {
                        report(log_fn, userdata, de->d_name, 0,
                               "too many policy files, ignored");
                        continue;
                }
                names[n] = strdup(de->d_name);
                if (!names[n]) {
                        r = -ENOMEM;
                        break;
                }
                n++;
        }
        if (r == 0)
                qsort(names, n, sizeof(*names), cmp_names);
        for (size_t i = 0; i < n && r == 0; i++) {
                int k = load_file(p, dirfd(d), dir, names[i], log_fn, userdata);
                if (k < 0)
                        r = k;
                else
                        total += k;
        }
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
        closedir(d);
        return r < 0 ? r : total;
}

static bool rule_matches(const struct rule *r, const char *name, size_t len) {
        if (r->prefix)
                return len >= r->len && memcmp(r->pattern, name, r->len) == 0;
        return len == r->len && memcmp(r->pattern, name, len) == 0;
}

static bool subject_matches(const struct rule *r, uid_t uid, gid_t gid,
                            const gid_t *groups, size_t n_groups) {
        if (r->subject == SUBJECT_UID)
                return (uint32_t)uid == r->id;
        if ((uint32_t)gid == r->id)
                return true;
        for (size_t i = 0; i < n_groups; i++)
                if ((uint32_t)groups[i] == r->id)
                        return true;
        return false;
}

/**
 * sgld_policy_reserved() - whether any rule matches @name.
 */
bool sgld_policy_reserved(const struct sgld_policy *p, const char *name,
                          size_t name_len) {
        for (size_t i = 0; p && i < p->n; i++)
                if (rule_matches(&p->rules[i], name, name_len))
                        return true;
        return false;
}

/**
 * sgld_policy_check_claim() - may a peer claim @name?
 * @p: the policy (NULL: no rules)
 * @name: the area name, @name_len bytes
 * @name_len: its length
 * @uid: the peer's uid
 * @gid: its primary gid
 * @groups: its supplementary groups
 * @n_groups: how many
 *
 * Root is not special: reserve a name for uid=0 to keep it for root.
 *
 * Return: 0 if no rule matches @name or the peer is the subject of one
 * that does, -EACCES otherwise.
 */
int sgld_policy_check_claim(const struct sgld_policy *p, const char *name,
                            size_t name_len, uid_t uid, gid_t gid,
                            const gid_t *groups, size_t n_groups) {
        bool reserved = false;

        for (size_t i = 0; p && i < p->n; i++) {
                const struct rule *r = &p->rules[i];

                if (!rule_matches(r, name, name_len))
                        continue;
                if (subject_matches(r, uid, gid, groups, n_groups))
                        return 0;
                reserved = true;
        }
        return reserved ? -EACCES : 0;
}

/**
 * sgld_policy_format() - the rules in canonical form, one per line, in
 * the order they were added.
 * @p: the policy
 * @ret: a malloc()ed NUL-terminated text
 * @ret_len: its length (optional)
 *
 * Return: 0 or -ENOMEM.
 */
int sgld_policy_format(const struct sgld_policy *p, char **ret, size_t *ret_len) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f;

        f = open_memstream(&buf, &len);
        if (!f)
                return -ENOMEM;
        for (size_t i = 0; p && i < p->n; i++) {
                const struct rule *r = &p->rules[i];
                fprintf(f, "reserve %s%s %s=%u\n", r->pattern, r->prefix ? "*" : "",
                        r->subject == SUBJECT_UID ? "uid" : "gid", r->id);
        }
        if (fclose(f) != 0 || !buf) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        if (ret_len)
                *ret_len = len;
        return 0;
}
