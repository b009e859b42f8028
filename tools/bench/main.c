/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * main.c - sigillo-bench: every scenario of the benchmark in one run, each
 * against its alternatives, and the table.
 *
 * Repetitions are interleaved: for each scenario and size, repetition r of
 * every transport runs before repetition r + 1 of any, so machine noise
 * hits all transports alike.  A row reports the median over repetitions
 * and the spread p10..p90; the ratio columns compare with the reference
 * transports the goals name, and the goal table at the end says met or
 * not met.  The exit status is 1 if any message failed verification or a
 * measurement failed (a skipped transport is not a failure).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bench.h"

#define MAX_ALTS 8
#define MAX_SIZES 5
#define MAX_REPS 51

enum kind { K_LAT, K_TPUT, K_FANOUT, K_COMMIT };

struct scenario {
        const char *name;
        const char *title;
        enum kind kind;
        bool busy;
        unsigned readers;
        unsigned reads;
        size_t sizes[MAX_SIZES + 1]; /* 0-terminated */
        const struct alt *alts[MAX_ALTS];
        unsigned alt_readers[MAX_ALTS]; /* 0: the scenario's */
        const char *refs[2];            /* reference transports for ratios */
};

#define ALL_SIZES { 64, 4 * KiB, 64 * KiB, MiB, 16 * MiB, 0 }

static const struct scenario scenarios[] = {
        { "lat-trusted", "TRUSTED stream, busy poll, one-way latency (ping-pong/2)",
          K_LAT, true, 1, 1, { 64, 0 },
          { &alt_sgl_trusted, &alt_ring_busy, &alt_iceoryx, &alt_unix_stream,
            &alt_unix_seqpacket, &alt_pipe }, {}, { "iceoryx", "ring-busy" } },
        { "tput-trusted", "TRUSTED stream throughput, blocking wait",
          K_TPUT, false, 1, 1, ALL_SIZES,
          { &alt_sgl_trusted, &alt_ring_futex, &alt_iceoryx, &alt_unix_stream,
            &alt_unix_seqpacket, &alt_pipe }, {}, { "iceoryx", "ring-futex" } },
        { "lat-strict", "STRICT one-way latency (ping-pong/2), blocking",
          K_LAT, false, 1, 1, ALL_SIZES,
          { &alt_sgl_strict, &alt_sealed, &alt_unix_stream, &alt_unix_seqpacket, &alt_pipe },
          {}, { "sealed-memfd", "unix-stream" } },
        { "tput-strict", "STRICT stream throughput, blocking",
          K_TPUT, false, 1, 1, ALL_SIZES,
          { &alt_sgl_strict, &alt_sealed, &alt_unix_stream, &alt_unix_seqpacket, &alt_pipe },
          {}, { "sealed-memfd", "unix-stream" } },
        { "fanout-strict", "STRICT 1 MiB chunk read 10 times by each of 4 readers (time per chunk)",
          K_FANOUT, false, 4, 10, { MiB, 0 },
          { &alt_sgl_strict, &alt_sealed, &alt_unix_stream }, {}, { "unix-stream", NULL } },
        { "commit-readers", "writer commit cost (median per commit), 1 vs 16 readers attached",
          K_COMMIT, false, 1, 1, { 64, 0 },
          { &alt_sgl_strict, &alt_sgl_strict, &alt_sgl_trusted, &alt_sgl_trusted },
          { 1, 16, 1, 16 }, { NULL, NULL } },
};
#define N_SCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

struct cell {
        bool ran, skipped, failed;
        double med, p10, p90, msgs;
        uint64_t checked, bad;
        struct mem wmem, rmem;
        const char *settings;
        unsigned readers;
};

static struct cell cells[N_SCENARIOS][MAX_SIZES][MAX_ALTS];

static struct {
        bool quick;
        unsigned reps;
        const char *only;
        const char *transports;
        size_t sizes[MAX_SIZES + 1];
        bool tsv;
} opt = { .reps = 5 };

/* ---------------------------------------------------------- iterations */

static uint64_t clampu(uint64_t v, uint64_t lo, uint64_t hi) {
        return v < lo ? lo : v > hi ? hi : v;
}

static uint64_t iterations(const struct scenario *s, size_t size) {
        uint64_t n;

        switch (s->kind) {
        case K_LAT:
                n = s->busy ? 20000 : clampu(16 * MiB / size, 8, 2000);
                break;
        case K_TPUT:
                n = clampu(128 * MiB / size, 12, 20000);
                break;
        case K_FANOUT:
                n = 32;
                break;
        default:
                n = 5000;
                break;
        }
        if (opt.quick)
                n = clampu(n / 50, size >= 16 * MiB ? 2 : 4, n);
        return n;
}

/* ------------------------------------------------------------ printing */

static const char *size_str(size_t size) {
        static char buf[4][24];
        static int k;
        char *b = buf[k++ % 4];

        if (size >= MiB && size % MiB == 0)
                snprintf(b, 24, "%zuM", size / MiB);
        else if (size >= KiB && size % KiB == 0)
                snprintf(b, 24, "%zuK", size / KiB);
        else
                snprintf(b, 24, "%zuB", size);
        return b;
}

static const char *value_str(enum kind kind, double v) {
        static char buf[4][32];
        static int k;
        char *b = buf[k++ % 4];

        switch (kind) {
        case K_TPUT:
                snprintf(b, 32, "%.3f GB/s", v / 1e9);
                break;
        case K_COMMIT:
                snprintf(b, 32, "%.0f ns", v);
                break;
        default:
                if (v < 10000)
                        snprintf(b, 32, "%.2f us", v / 1e3);
                else
                        snprintf(b, 32, "%.0f us", v / 1e3);
                break;
        }
        return b;
}

static int alt_index(const struct scenario *s, const char *name) {
        for (int a = 0; a < MAX_ALTS && s->alts[a]; a++)
                if (strcmp(s->alts[a]->name, name) == 0)
                        return a;
        return -1;
}

static void print_header(const struct scenario *s) {
        if (opt.tsv)
                return;
        printf("\n== %s: %s\n", s->name, s->title);
        printf("%-5s %-19s %-28s %12s %-25s %-22s %-14s %-19s %s\n",
               "size", "transport", "settings", "median", "p10..p90", "ratio",
               "writer +rss/pss", "reader +rss/pss/shr", "verified");
}

static void print_row(const struct scenario *s, unsigned si, unsigned a) {
        const struct cell *c = &cells[s - scenarios][si][a];
        char name[32], ratio[64] = "", spread[48], wm[32], rm[40], extra[32] = "";
        size_t size = s->sizes[si];

        snprintf(name, sizeof(name), "%s%s", s->alts[a]->name,
                 s->kind == K_COMMIT ? (c->readers > 1 ? " 16r" : " 1r") : "");
        if (opt.tsv) {
                printf("%s\t%zu\t%s\t%u\t%s\t%s\t%.6g\t%.6g\t%.6g\t%.6g\t"
                       "%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\n",
                       s->name, size, s->alts[a]->name, c->readers, c->settings ? c->settings : "",
                       c->skipped ? "skipped" : c->failed ? "failed" : c->bad ? "bad" : "ok",
                       c->med, c->p10, c->p90, c->msgs,
                       (unsigned long long)c->wmem.rss, (unsigned long long)c->wmem.pss,
                       (unsigned long long)c->rmem.rss, (unsigned long long)c->rmem.pss,
                       (unsigned long long)c->rmem.shared, (unsigned long long)c->checked,
                       (unsigned long long)c->bad);
                return;
        }
        if (c->skipped || c->failed) {
                printf("%-5s %-19s %-28s %s%s\n", size_str(size), name, c->settings ? c->settings : "",
                       c->skipped ? "skipped: " : "FAILED", c->skipped ? iox_unavailable() : "");
                return;
        }
        for (int k = 0; k < 2; k++) {
                int r = s->refs[k] ? alt_index(s, s->refs[k]) : -1;
                const struct cell *rc;
                if (r < 0 || r == (int)a)
                        continue;
                rc = &cells[s - scenarios][si][r];
                if (!rc->ran || rc->skipped || rc->failed || rc->med <= 0)
                        continue;
                snprintf(ratio + strlen(ratio), sizeof(ratio) - strlen(ratio), "%s%.2fx %s",
                         ratio[0] ? " " : "", c->med / rc->med,
                         strcmp(s->refs[k], "iceoryx") == 0 ? "iox" :
                         strcmp(s->refs[k], "sealed-memfd") == 0 ? "sealed" :
                         strcmp(s->refs[k], "unix-stream") == 0 ? "unix" : "ring");
        }
        if (s->kind == K_COMMIT && c->readers > 1 && a > 0 && cells[s - scenarios][si][a - 1].med > 0)
                snprintf(ratio, sizeof(ratio), "%.2fx 1r", c->med / cells[s - scenarios][si][a - 1].med);
        snprintf(spread, sizeof(spread), "%s..%s", value_str(s->kind, c->p10),
                 value_str(s->kind, c->p90));
        snprintf(wm, sizeof(wm), "%.1f/%.1fM", c->wmem.rss / 1024.0, c->wmem.pss / 1024.0);
        snprintf(rm, sizeof(rm), "%.1f/%.1f/%.1fM", c->rmem.rss / 1024.0, c->rmem.pss / 1024.0,
                 c->rmem.shared / 1024.0);
        if (s->kind == K_TPUT)
                snprintf(extra, sizeof(extra), " %.3gM msg/s", c->msgs / 1e6);
        printf("%-5s %-19s %-28s %12s %-25s %-22s %-14s %-19s %s %llu%s\n", size_str(size), name,
               c->settings ? c->settings : "", value_str(s->kind, c->med), spread, ratio, wm, rm,
               c->bad ? "BAD" : "ok", (unsigned long long)c->checked, extra);
}

/* ------------------------------------------------------------ running */

static bool in_list(const char *list, const char *name) {
        size_t n = strlen(name);

        for (const char *p = list; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
                if (strncmp(p, name, n) == 0 && (p[n] == ',' || p[n] == 0))
                        return true;
        return false;
}

static bool selected(const struct scenario *s) {
        return !opt.only || in_list(opt.only, s->name);
}

static bool size_selected(size_t size) {
        if (!opt.sizes[0])
                return true;
        for (int i = 0; opt.sizes[i]; i++)
                if (opt.sizes[i] == size)
                        return true;
        return false;
}

static int run_one(const struct scenario *s, const struct run *r, struct result *res) {
        switch (s->kind) {
        case K_LAT:
                return drive_latency(r, res);
        case K_TPUT:
                return drive_throughput(r, res);
        case K_FANOUT:
                return drive_fanout(r, res);
        default:
                return drive_commit(r, res);
        }
}

static int run_scenario(const struct scenario *s) {
        unsigned sc = (unsigned)(s - scenarios);
        int ret = 0;

        print_header(s);
        for (unsigned si = 0; s->sizes[si]; si++) {
                double vals[MAX_ALTS][MAX_REPS], msgs[MAX_ALTS][MAX_REPS];
                unsigned n[MAX_ALTS] = { 0 };
                size_t size = s->sizes[si];

                if (!size_selected(size))
                        continue;
                for (unsigned rep = 0; rep < opt.reps; rep++) {
                        for (unsigned a = 0; a < MAX_ALTS && s->alts[a]; a++) {
                                struct cell *c = &cells[sc][si][a];
                                struct run r = {
                                        .alt = s->alts[a],
                                        .size = size,
                                        .readers = s->alt_readers[a] ? s->alt_readers[a] : s->readers,
                                        .iters = iterations(s, size),
                                        .reads = s->reads,
                                        .busy = s->busy,
                                };
                                struct result res;

                                if (opt.transports && !in_list(opt.transports, s->alts[a]->name))
                                        continue;
                                c->ran = true;
                                c->readers = r.readers;
                                c->settings = s->alts[a]->settings ?
                                        s->alts[a]->settings(size, s->kind == K_LAT ? CH_LATENCY :
                                                             s->kind == K_TPUT ? CH_TPUT :
                                                             s->kind == K_FANOUT ? CH_FANOUT : CH_COMMIT) : "";
                                if ((s->alts[a]->flags & ALT_ICEORYX) && iox_unavailable()) {
                                        c->skipped = true;
                                        continue;
                                }
                                if (c->failed)
                                        continue;
                                if (run_one(s, &r, &res) < 0 || res.err < 0) {
                                        c->failed = true;
                                        c->bad += res.bad;
                                        ret = -EIO;
                                        continue;
                                }
                                c->checked += res.checked;
                                c->bad += res.bad;
                                c->wmem = res.wmem;
                                c->rmem = res.rmem;
                                vals[a][n[a]] = res.value;
                                msgs[a][n[a]++] = res.msgs;
                        }
                }
                for (unsigned a = 0; a < MAX_ALTS && s->alts[a]; a++) {
                        struct cell *c = &cells[sc][si][a];
                        if (n[a] > 0) {
                                c->p10 = stats_percentile(vals[a], n[a], 0.1);
                                c->p90 = stats_percentile(vals[a], n[a], 0.9);
                                c->med = stats_percentile(vals[a], n[a], 0.5);
                                c->msgs = stats_percentile(msgs[a], n[a], 0.5);
                        }
                }
                for (unsigned a = 0; a < MAX_ALTS && s->alts[a]; a++)
                        if (cells[sc][si][a].ran)
                                print_row(s, si, a);
                fflush(stdout);
        }
        return ret;
}

/* --------------------------------------------------------------- goals */

static const struct cell *find(const char *scen, size_t size, const char *alt, unsigned readers) {
        for (unsigned sc = 0; sc < N_SCENARIOS; sc++) {
                const struct scenario *s = &scenarios[sc];
                if (strcmp(s->name, scen) != 0)
                        continue;
                for (unsigned si = 0; s->sizes[si]; si++) {
                        if (s->sizes[si] != size)
                                continue;
                        for (unsigned a = 0; a < MAX_ALTS && s->alts[a]; a++) {
                                const struct cell *c = &cells[sc][si][a];
                                if (strcmp(s->alts[a]->name, alt) == 0 &&
                                    (!readers || c->readers == readers))
                                        return c->ran && !c->skipped && !c->failed && c->med > 0 ? c : NULL;
                        }
                }
        }
        return NULL;
}

/* @num / @den of the medians against @target; @le: at most, else at least */
static void goal(const char *what, const char *scen, size_t size, const char *num, unsigned nr,
                 const char *den, unsigned dr, bool le, double target, bool invert) {
        const struct cell *a = find(scen, size, num, nr), *b = find(scen, size, den, dr);
        char label[96];
        double ratio;

        if (opt.only && !in_list(opt.only, scen))
                return;
        if (opt.sizes[0] && !size_selected(size))
                return;
        snprintf(label, sizeof(label), "%s %s", what, size_str(size));
        if (!a || !b) {
                printf("%-44s %-34s %8s  %s\n", label, "", "-", "n/a (not run or skipped)");
                return;
        }
        ratio = invert ? b->med / a->med : a->med / b->med;
        char want[64];
        snprintf(want, sizeof(want), "%s %s %.2fx %s%s", num, le ? "<=" : ">=", target, den,
                 invert ? " (speed)" : "");
        printf("%-44s %-34s %7.2fx  %s\n", label, want, ratio,
               (le ? ratio <= target : ratio >= target) ? "MET" : "NOT MET");
}

static void print_goals(void) {
        static const size_t all[] = { 64, 4 * KiB, 64 * KiB, MiB, 16 * MiB };

        if (opt.tsv)
                return;
        printf("\n== goals (issue 5): ratio of medians\n");
        goal("TRUSTED busy one-way latency", "lat-trusted", 64, "sigillo-trusted", 0, "iceoryx", 0, true, 0.25, false);
        goal("TRUSTED busy one-way latency", "lat-trusted", 64, "sigillo-trusted", 0, "ring-busy", 0, true, 1.5, false);
        for (int i = 1; i <= 3; i++) {
                goal("TRUSTED throughput", "tput-trusted", all[i], "sigillo-trusted", 0, "iceoryx", 0, false, 2.0, false);
                goal("TRUSTED throughput", "tput-trusted", all[i], "sigillo-trusted", 0, "ring-futex", 0, false, 0.7, false);
        }
        for (int i = 0; i < 5; i++)
                goal("STRICT latency", "lat-strict", all[i], "sigillo-strict", 0, "sealed-memfd", 0, true, 1.1, false);
        for (int i = 0; i < 5; i++)
                goal("STRICT throughput", "tput-strict", all[i], "sigillo-strict", 0, "sealed-memfd", 0, false, 1.0, false);
        for (int i = 0; i < 2; i++)
                goal("STRICT throughput", "tput-strict", all[i], "sigillo-strict", 0, "unix-stream", 0, false, 1.0, false);
        goal("STRICT 10 reads x 4 readers, speed-up", "fanout-strict", MiB, "sigillo-strict", 0, "unix-stream", 0, false, 5.0, true);
        goal("STRICT commit cost 16 vs 1 readers", "commit-readers", 64, "sigillo-strict", 16, "sigillo-strict", 1, true, 1.1, false);
        goal("TRUSTED commit cost 16 vs 1 readers", "commit-readers", 64, "sigillo-trusted", 16, "sigillo-trusted", 1, true, 1.1, false);
}

/* ---------------------------------------------------------------- main */

static void on_signal(int sig) {
        iox_stop();
        signal(sig, SIG_DFL);
        raise(sig);
}

static int parse_size(const char *s, size_t *ret) {
        char *end;
        unsigned long long v;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || end == s)
                return -EINVAL;
        if (*end == 'K' || *end == 'k')
                v *= KiB, end++;
        else if (*end == 'M' || *end == 'm')
                v *= MiB, end++;
        else if (*end == 'B' || *end == 'b')
                end++;
        if (*end || v < 8 || v > 64 * MiB || v % 8)
                return -EINVAL;
        *ret = (size_t)v;
        return 0;
}

static void usage(FILE *f) {
        fprintf(f,
                "Usage: sigillo-bench [OPTIONS]\n"
                "Runs every scenario against its alternatives and prints the table.\n"
                "\n"
                "  --quick           few iterations, one repetition (smoke test)\n"
                "  --only=S[,S...]   only these scenarios:\n"
                "                    lat-trusted tput-trusted lat-strict tput-strict\n"
                "                    fanout-strict commit-readers\n"
                "  --sizes=N[,N...]  only these sizes of the scenarios' sizes (64,4K,1M...)\n"
                "  --reps=N          repetitions per measurement (default 5)\n"
                "  --transports=T[,T...]  only these transports (for profiling):\n"
                "                    sigillo-trusted sigillo-strict ring-busy ring-futex\n"
                "                    sealed-memfd iceoryx unix-stream unix-seqpacket pipe\n"
                "  --tsv             tab-separated values instead of the table: scenario,\n"
                "                    size, transport, readers, settings, status, median, p10,\n"
                "                    p90 (ns, or bytes/s for throughput), messages/s, writer\n"
                "                    rss/pss, reader rss/pss/shared (KiB), checked, bad\n"
                "  -h, --help        this text\n");
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "quick", no_argument, NULL, 'q' },
                { "only", required_argument, NULL, 'o' },
                { "sizes", required_argument, NULL, 's' },
                { "reps", required_argument, NULL, 'r' },
                { "transports", required_argument, NULL, 't' },
                { "tsv", no_argument, NULL, 'T' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        bool reps_given = false, want_iox = false;
        struct utsname u;
        int c, ret = 0;
        char *end;

        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                switch (c) {
                case 'q':
                        opt.quick = true;
                        break;
                case 'o':
                        opt.only = optarg;
                        break;
                case 's': {
                        char *dup = strdup(optarg), *save = NULL;
                        int n = 0;
                        for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                                if (n == MAX_SIZES || parse_size(t, &opt.sizes[n++]) < 0) {
                                        fprintf(stderr, "sigillo-bench: bad --sizes '%s'\n", optarg);
                                        return 2;
                                }
                        }
                        free(dup);
                        break;
                }
                case 't':
                        opt.transports = optarg;
                        break;
                case 'T':
                        opt.tsv = true;
                        break;
                case 'r':
                        opt.reps = (unsigned)strtoul(optarg, &end, 10);
                        if (*end || opt.reps < 1 || opt.reps > MAX_REPS) {
                                fprintf(stderr, "sigillo-bench: --reps takes 1 to %d\n", MAX_REPS);
                                return 2;
                        }
                        reps_given = true;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind != argc) {
                usage(stderr);
                return 2;
        }
        for (unsigned i = 0; i < N_SCENARIOS; i++)
                for (unsigned a = 0; a < MAX_ALTS && scenarios[i].alts[a]; a++)
                        if (selected(&scenarios[i]) && (scenarios[i].alts[a]->flags & ALT_ICEORYX) &&
                            (!opt.transports || in_list(opt.transports, "iceoryx")))
                                want_iox = true;
        if (opt.only) {
                unsigned known = 0, given = 1;
                for (const char *p = opt.only; *p; p++)
                        given += *p == ',';
                for (unsigned i = 0; i < N_SCENARIOS; i++)
                        known += selected(&scenarios[i]);
                if (known != given) {
                        fprintf(stderr, "sigillo-bench: unknown scenario in --only '%s'\n", opt.only);
                        return 2;
                }
        }
        if (opt.quick && !reps_given)
                opt.reps = 1;

        setvbuf(stdout, NULL, _IOLBF, 0);
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        signal(SIGPIPE, SIG_IGN);
        payload_init(16 * MiB);
        uname(&u);
        printf("%ssigillo-bench %s%s: %u repetition%s, interleaved; %ld CPUs; %s %s\n",
               opt.tsv ? "# " : "",
               PACKAGE_VERSION, opt.quick ? " --quick" : "", opt.reps, opt.reps == 1 ? "" : "s",
               sysconf(_SC_NPROCESSORS_ONLN), u.sysname, u.release);
        if (!opt.tsv)
                printf("latency: one-way, ping-pong/2; throughput: one writer, one reader, every byte "
                       "checksummed;\nmemory: growth of /proc/PID/smaps_rollup Rss/Pss/Shared from the "
                       "process's start to the end of the last repetition\n");
        if (want_iox && iox_start() < 0)
                printf("%siceoryx: %s\n", opt.tsv ? "# " : "", iox_unavailable());
        for (unsigned i = 0; i < N_SCENARIOS; i++)
                if (selected(&scenarios[i]) && run_scenario(&scenarios[i]) < 0)
                        ret = 1;
        print_goals();
        iox_stop();
        for (unsigned sc = 0; sc < N_SCENARIOS; sc++)
                for (unsigned si = 0; si < MAX_SIZES; si++)
                        for (unsigned a = 0; a < MAX_ALTS; a++)
                                if (cells[sc][si][a].bad)
                                        ret = 1;
        printf("%sverification: %s\n", opt.tsv ? "# " : "\n",
               ret == 0 ? "all messages verified" : "FAILURES (see above)");
        return ret;
}
