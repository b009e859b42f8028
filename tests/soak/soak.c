/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * soak.c - the soak: for SECONDS, a real sigillod with a PERSIST area, a
 * writer with GC churn, expiry, updates, deletes and batches, STRICT and
 * TRUSTED readers verifying every chunk and checking that nothing
 * committed is lost, hostile clients against the daemon, and kills:
 * readers SIGKILLed and respawned while they hold chunks, the writer
 * SIGKILLed and a new one taking the area over.  Then everything stops,
 * the area is removed with `sigillo rm`, and the daemon must be back to
 * the descriptors it had before the first client, exit 0 on SIGTERM, and
 * no process may have a sanitizer report.
 *
 * Usage: soak SECONDS SIGILLOD SIGILLO (see tests/soak.am: make soak)
 * Exit: 0, or 1 if any must-be-0 figure is not 0.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SOAK_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define SOAK_ASAN 1
#endif
#ifdef SOAK_ASAN
#include <sanitizer/lsan_interface.h>
#endif

#include "rendezvous.h"
#include "soak.h"

#define READERS 4                    /* half STRICT, half TRUSTED */

struct soak_counters *soak;
const char *soak_address;
volatile int soak_stop;

static char dir[] = "/tmp/sigillo-soak-XXXXXX";
static char sock[256], policy[256], daemon_log[256];
static pid_t daemon_pid, writer_pid, hostile_pid, readers[READERS];
static unsigned exits_bad, daemon_died;

/* ------------------------------------------------------------ shared */

uint64_t soak_now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint32_t soak_rand(uint64_t *s) {
        /* xorshift64* */
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        return (uint32_t)((*s * 0x2545F4914F6CDD1DULL) >> 32);
}

static uint32_t sum_of(const uint8_t *p, size_t n) {
        uint32_t h = 2166136261u;

        for (size_t i = 0; i < n; i++)
                h = (h ^ p[i]) * 16777619u;
        return h;
}

static uint8_t pattern(uint64_t id, uint64_t gen, size_t i) {
        return (uint8_t)(gen * 31 + id * 7 + i * 13 + (i >> 8));
}

/* Fills the body of a data chunk from (id, gen) (a checkpoint's body is
 * given) and seals both in h->sum. */
void soak_fill(struct soak_chunk *h, void *body) {
        uint8_t *b = body;

        if (h->id != SOAK_CHECKPOINT_ID)
                for (size_t i = 0; i < h->len; i++)
                        b[i] = pattern(h->id, h->gen, i);
        h->sum = sum_of(b, h->len) ^ (uint32_t)(h->gen ^ h->id);
}

bool soak_check(const void *data, size_t size) {
        const struct soak_chunk *h = data;
        const uint8_t *b = (const uint8_t *)(h + 1);

        if (size < sizeof(*h) || h->magic != SOAK_MAGIC || size != sizeof(*h) + h->len)
                return false;
        if (h->id != SOAK_CHECKPOINT_ID)
                for (size_t i = 0; i < h->len; i++)
                        if (b[i] != pattern(h->id, h->gen, i))
                                return false;
        return h->sum == (sum_of(b, h->len) ^ (uint32_t)(h->gen ^ h->id));
}

void soak_error(const char *who, const char *what, int err) {
        if (atomic_fetch_add(&soak->errors, 1) < 50)
                fprintf(stderr, "soak: %s %d: %s: %s\n", who, (int)getpid(), what, strerror(-err));
}

/* ------------------------------------------------------------- roles */

static void on_term(int sig) {
        (void)sig;
        soak_stop = 1;
}

static pid_t spawn(int role, unsigned i) {
        uint64_t seed = soak_now_ns() ^ ((uint64_t)i << 32) ^ (uint64_t)role;
        pid_t pid = fork();

        if (pid != 0)
                return pid;
        signal(SIGTERM, on_term);
        signal(SIGPIPE, SIG_IGN);
        seed |= 1;
        switch (role) {
        case 'w':
                soak_writer_main(seed);
        case 'r':
                soak_reader_main(i % 2 == 1, seed);
        default:
                soak_hostile_main(seed);
        }
}

static unsigned count_fds(pid_t pid) {
        char path[64];
        struct dirent *de;
        unsigned n = 0;
        DIR *d;

        snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
        d = opendir(path);
        if (!d)
                return 0;
        while ((de = readdir(d)))
                n += de->d_name[0] != '.';
        closedir(d);
        return n;
}

static void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* The descriptors of the daemon once they stop changing. */
static unsigned settled_fds(pid_t pid) {
        unsigned a = count_fds(pid), b;

        for (int i = 0; i < 50; i++) {
                sleep_ms(100);
                b = count_fds(pid);
                if (a == b)
                        return a;
                a = b;
        }
        return a;
}

static void start_daemon(const char *sigillod) {
        int fd;

        daemon_pid = fork();
        if (daemon_pid == 0) {
                fd = open(daemon_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (fd >= 0)
                        dup2(fd, 2);
                execl(sigillod, sigillod, "--socket", sock, "--policy", policy, (char *)NULL);
                _exit(127);
        }
        for (int i = 0; i < 200; i++) {
                fd = sgl_connect_host(sock, 1000);
                if (fd >= 0) {
                        close(fd);
                        return;
                }
                sleep_ms(50);
        }
        fprintf(stderr, "soak: sigillod did not come up (see %s)\n", daemon_log);
        exit(1);
}

/* A child ended: whatever it was, it comes back (kills are ours). */
static void reap_unexpected(void) {
        int status;
        pid_t pid;

        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
                if (pid == daemon_pid) {
                        daemon_died++;
                        fprintf(stderr, "soak: sigillod ended (status %#x)\n", status);
                        daemon_pid = 0;
                        continue;
                }
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                        fprintf(stderr, "soak: child %d ended by itself (status %#x)\n", (int)pid,
                                status);
                        exits_bad++;
                }
                if (pid == writer_pid)
                        writer_pid = spawn('w', 0);
                else if (pid == hostile_pid)
                        hostile_pid = spawn('h', 0);
                for (unsigned i = 0; i < READERS; i++)
                        if (pid == readers[i])
                                readers[i] = spawn('r', i);
        }
}

static void kill_wait(pid_t pid) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
}

static void stop_child(pid_t pid, const char *what) {
        int status = 0;

        if (pid <= 0)
                return;
        kill(pid, SIGTERM);
        if (waitpid(pid, &status, 0) == pid && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
                fprintf(stderr, "soak: %s %d did not end cleanly (status %#x)\n", what, (int)pid,
                        status);
                exits_bad++;
        }
}

/* Sanitizer reports of every process (log_path=DIR/san). */
static unsigned sanitizer_reports(void) {
        struct dirent *de;
        unsigned n = 0;
        DIR *d = opendir(dir);

        if (!d)
                return 0;
        while ((de = readdir(d))) {
                char path[512], line[512];
                FILE *f;

                if (strncmp(de->d_name, "san.", 4) != 0)
                        continue;
                snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
                f = fopen(path, "re");
                if (!f)
                        continue;
                while (fgets(line, sizeof(line), f))
                        if (strstr(line, "ERROR: ") || strstr(line, "runtime error:")) {
                                fprintf(stderr, "soak: %s: %s", path, line);
                                n++;
                        }
                fclose(f);
        }
        closedir(d);
        return n;
}

static void add_env(const char *var, const char *fmt, ...) {
        const char *old = getenv(var);
        char add[512], val[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(add, sizeof(add), fmt, ap);
        va_end(ap);
        snprintf(val, sizeof(val), "%s%s%s", old ? old : "", old && *old ? ":" : "", add);
        setenv(var, val, 1);
}

int main(int argc, char **argv) {
        unsigned seconds, base_fds, end_fds = 0, reports, failed;
        uint64_t end, rnd = soak_now_ns() | 1, next_writer_kill;
        char cmd[1024];
        int status = 0, rm;

        if (argc != 4 || (seconds = (unsigned)strtoul(argv[1], NULL, 10)) == 0) {
                fprintf(stderr, "usage: soak SECONDS SIGILLOD SIGILLO\n");
                return 2;
        }
        if (!mkdtemp(dir)) {
                perror("soak: mkdtemp");
                return 1;
        }
        snprintf(sock, sizeof(sock), "%s/socket", dir);
        snprintf(policy, sizeof(policy), "%s/policy", dir);
        snprintf(daemon_log, sizeof(daemon_log), "%s/sigillod.log", dir);
        mkdir(policy, 0700);
        soak_address = sock;
        /* every process's report lands in a file the soak reads at the end */
        add_env("ASAN_OPTIONS", "log_path=%s/san:detect_leaks=1", dir);
        add_env("UBSAN_OPTIONS", "log_path=%s/san:print_stacktrace=1", dir);
        signal(SIGPIPE, SIG_IGN);

        soak = mmap(NULL, sizeof(*soak), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (soak == MAP_FAILED) {
                perror("soak: mmap");
                return 1;
        }
        start_daemon(argv[2]);
        base_fds = settled_fds(daemon_pid);
        printf("soak: %u s in %s, sigillod pid %d with %u descriptors\n", seconds, dir,
               (int)daemon_pid, base_fds);
        fflush(stdout);

        writer_pid = spawn('w', 0);
        for (unsigned i = 0; i < READERS; i++)
                readers[i] = spawn('r', i);
        hostile_pid = spawn('h', 0);

        end = soak_now_ns() + (uint64_t)seconds * 1000000000ULL;
        next_writer_kill = soak_now_ns() + 3000000000ULL;
        while (soak_now_ns() < end && daemon_pid > 0) {
                sleep_ms(200 + soak_rand(&rnd) % 600);
                reap_unexpected();
                if (soak_now_ns() >= next_writer_kill) {
                        kill_wait(writer_pid);
                        atomic_fetch_add(&soak->kills_writer, 1);
                        writer_pid = spawn('w', 0);
                        next_writer_kill = soak_now_ns() + 2000000000ULL +
                                           (soak_rand(&rnd) % 4000) * 1000000ULL;
                } else if (soak_rand(&rnd) % 3 != 0) {
                        unsigned i = soak_rand(&rnd) % READERS;

                        kill_wait(readers[i]);
                        atomic_fetch_add(&soak->kills_reader, 1);
                        readers[i] = spawn('r', i);
                }
        }

        /* the end: honest clients finish their checks and leave */
        reap_unexpected();
        stop_child(hostile_pid, "hostile client");
        for (unsigned i = 0; i < READERS; i++)
                stop_child(readers[i], "reader");
        stop_child(writer_pid, "writer");
        if (daemon_pid > 0) {
                snprintf(cmd, sizeof(cmd), "%s rm -s '%s' %s", argv[3], sock, SOAK_AREA);
                rm = system(cmd);
                if (rm != 0)
                        fprintf(stderr, "soak: %s: status %#x\n", cmd, rm);
                for (int i = 0; i < 100 && (end_fds = count_fds(daemon_pid)) != base_fds; i++)
                        sleep_ms(100);
                kill(daemon_pid, SIGTERM);
                if (waitpid(daemon_pid, &status, 0) != daemon_pid || !WIFEXITED(status) ||
                    WEXITSTATUS(status) != 0) {
                        fprintf(stderr, "soak: sigillod did not exit 0 (status %#x, log %s)\n",
                                status, daemon_log);
                        daemon_died++;
                }
        }
#ifdef SOAK_ASAN
        if (__lsan_do_recoverable_leak_check())
                exits_bad++;
#endif
        reports = sanitizer_reports();

        printf("operations: commits %llu, chunks %llu, updates %llu, deletes %llu, "
               "expiring %llu, anonymous %llu, checkpoints %llu, seals %llu, gc runs %llu, "
               "takeovers %llu\n",
               (unsigned long long)soak->commits, (unsigned long long)soak->chunks,
               (unsigned long long)soak->updates, (unsigned long long)soak->deletes,
               (unsigned long long)soak->expiring, (unsigned long long)soak->anonymous,
               (unsigned long long)soak->checkpoints, (unsigned long long)soak->seals,
               (unsigned long long)soak->gc_runs, (unsigned long long)soak->takeovers);
        printf("faults: readers killed %llu, writers killed %llu; hostile connections: "
               "garbage %llu, wrong fds %llu, floods %llu, silent %llu, refused opens %llu\n",
               (unsigned long long)soak->kills_reader, (unsigned long long)soak->kills_writer,
               (unsigned long long)soak->hostile_garbage, (unsigned long long)soak->hostile_wrong_fd,
               (unsigned long long)soak->hostile_flood, (unsigned long long)soak->hostile_silent,
               (unsigned long long)soak->hostile_refused_open);
        printf("readers: chunks verified %llu, stable-id checks %llu, reconnects %llu\n",
               (unsigned long long)soak->verified, (unsigned long long)soak->checks,
               (unsigned long long)soak->reopens);
        printf("errors seen (unexpected): %llu\n", (unsigned long long)soak->errors);
        printf("must be 0: lost chunks %llu, corrupt chunks %llu, daemon descriptors leaked %d "
               "(%u at start, %u at end), sanitizer reports %u, unclean exits %u, daemon deaths %u\n",
               (unsigned long long)soak->lost, (unsigned long long)soak->corrupt,
               (int)end_fds - (int)base_fds, base_fds, end_fds, reports, exits_bad, daemon_died);
        failed = soak->lost || soak->corrupt || end_fds != base_fds || reports || exits_bad ||
                 daemon_died || soak->verified == 0;
        printf("soak: %s\n", failed ? "FAILED" : "passed");
        if (failed)
                printf("soak: logs in %s\n", dir);
        else {
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
                (void)!system(cmd);
        }
        return failed ? 1 : 0;
}
