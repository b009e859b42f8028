/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-proc.c - the cross-process machinery of the writer/reader process
 * tests.  See test-proc.h.
 *
 * Invariants: nothing here keeps state between calls; every descriptor it
 * creates is O_CLOEXEC; a reader process keeps nothing but its socket, stdio
 * and what its commands ask for.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fdpass.h"
#include "test-proc.h"

#define PAGE 4096u

/* ================================================================ time === */

int64_t mono_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* ===================================================== children, sockets === */

pid_t fork_with_socket(tu_child_fn fn, void *ctx, int *child_end, int *sock) {
        int sv[2];
        pid_t pid;

        tu_socketpair(sv);
        *child_end = sv[1];
        pid = tu_fork(fn, ctx);
        close(sv[1]);
        *sock = sv[0];
        return pid;
}

void run_pair(tu_child_fn a, tu_child_fn b) {
        struct sock_ctx actx, bctx;
        pid_t pids[2];
        int sv[2];

        tu_socketpair(sv);
        actx.sock = sv[0];
        bctx.sock = sv[1];
        pids[0] = tu_fork(a, &actx);
        pids[1] = tu_fork(b, &bctx);
        close(sv[0]);
        close(sv[1]);
        wait_children(pids, 2);
}

static void kill_children(const pid_t *pids, size_t npids) {
        for (size_t i = 0; i < npids; i++) {
                if (pids[i] <= 0)
                        continue;
                kill(pids[i], SIGKILL);
                while (waitpid(pids[i], NULL, 0) < 0 && errno == EINTR)
                        ;
        }
}

/* A child of @pids that already ended badly (non-zero exit, signal), seen
 * without reaping it; 0 if none. */
static pid_t child_failed(const pid_t *pids, size_t npids, int *code) {
        for (size_t i = 0; i < npids; i++) {
                siginfo_t si = { 0 };

                if (pids[i] <= 0 ||
                    waitid(P_PID, (id_t)pids[i], &si, WEXITED | WNOHANG | WNOWAIT) < 0 ||
                    si.si_pid != pids[i])
                        continue;
                if (si.si_code != CLD_EXITED || si.si_status != 0) {
                        *code = si.si_code == CLD_EXITED ? si.si_status : -si.si_status;
                        return pids[i];
                }
        }
        return 0;
}

void parent_recv(int sock, uint32_t type, struct hmsg *m, int *fd,
                 const pid_t *pids, size_t npids) {
        int64_t deadline = mono_usec() + CHILD_DEADLINE_USEC;
        pid_t bad;
        int code;

        for (;;) {
                struct pollfd p = { .fd = sock, .events = POLLIN };
                int r = poll(&p, 1, 20);

                if (r > 0) {
                        r = hrecv(sock, type, m, fd);
                        if (r == 0)
                                return;
                        kill_children(pids, npids);
                        fail_msg("no message %u from a child: %s", type, strerror(-r));
                }
                bad = child_failed(pids, npids, &code);
                if (bad) {
                        kill_children(pids, npids);
                        fail_msg("child %d failed (exit code = line %% 255, or -signal): %d",
                                 (int)bad, code);
                }
                if (mono_usec() > deadline) {
                        kill_children(pids, npids);
                        fail_msg("timed out waiting for message %u", type);
                }
        }
}

void wait_children(pid_t *pids, size_t npids) {
        int64_t deadline = mono_usec() + CHILD_DEADLINE_USEC;
        size_t left = 0;

        for (size_t i = 0; i < npids; i++)
                left += pids[i] > 0;
        while (left > 0) {
                for (size_t i = 0; i < npids; i++) {
                        int status;
                        pid_t r;

                        if (pids[i] <= 0)
                                continue;
                        r = waitpid(pids[i], &status, WNOHANG);
                        if (r == 0)
                                continue;
                        if (r < 0 && errno == EINTR)
                                continue;
                        pids[i] = 0;
                        left--;
                        if (r < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                                kill_children(pids, npids);
                                fail_msg("child %d failed: %s %d", (int)r,
                                         r > 0 && WIFSIGNALED(status) ? "signal" : "exit (line % 255)",
                                         r < 0 ? -1 : WIFSIGNALED(status) ? WTERMSIG(status)
                                                                          : WEXITSTATUS(status));
                        }
                }
                if (left > 0 && mono_usec() > deadline) {
                        kill_children(pids, npids);
                        fail_msg("timed out waiting for children");
                }
                if (left > 0)
                        usleep(2000);
        }
}

/* ======================================== scripted messages (struct hmsg) === */

int hsend3(int sock, uint32_t type, uint64_t a, uint64_t b, uint64_t c, int fd) {
        struct hmsg m = { .type = type, .a = a, .b = b, .c = c };
        ssize_t n = sgl_fdpass_send(sock, &m, sizeof(m), fd >= 0 ? &fd : NULL,
                                    fd >= 0 ? 1 : 0);

        return n == (ssize_t)sizeof(m) ? 0 : n < 0 ? (int)n : -EIO;
}

int hsend(int sock, uint32_t type, uint64_t a, uint64_t b, int fd) {
        return hsend3(sock, type, a, b, 0, fd);
}

int hrecv(int sock, uint32_t type, struct hmsg *m, int *fd) {
        size_t nfds = 0;
        int got = -1;
        ssize_t n;

        n = sgl_fdpass_recv(sock, m, sizeof(*m), &got, 1, &nfds);
        if (n < 0)
                return (int)n;
        if (n == 0)
                return -EPIPE;
        if (n != (ssize_t)sizeof(*m) || (type && m->type != type)) {
                if (nfds)
                        close(got);
                return -EPROTO;
        }
        if (fd)
                *fd = nfds ? got : -1;
        else if (nfds)
                close(got);
        return 0;
}

/* ================================================= child-side checks === */

int reopen(int fd, int flags) {
        char path[64];

        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        return open(path, flags | O_CLOEXEC | O_NOCTTY);
}

bool may_open_rw(const struct stat *st) {
        if (geteuid() == 0)
                return true;
        if (st->st_uid == geteuid())
                return st->st_mode & S_IWUSR;
        return st->st_mode & S_IWOTH; /* (group ignored: tests run alone) */
}

uint64_t fd_fnv(int fd, uint64_t *ret_size) {
        uint8_t buf[65536];
        uint64_t h = TU_FNV1A64_INIT, off = 0;
        ssize_t n;

        while ((n = pread(fd, buf, sizeof(buf), (off_t)off)) > 0) {
                h = tu_fnv1a64_update(h, buf, (size_t)n);
                off += (uint64_t)n;
        }
        if (ret_size)
                *ret_size = off;
        return n < 0 ? 0 : h;
}

int count_sigillo_maps(void) {
        char line[512];
        FILE *f = fopen("/proc/self/maps", "re");
        int n = 0;

        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (strstr(line, "/memfd:sigillo-"))
                        n++;
        fclose(f);
        return n;
}

/* ============================================================ payloads === */

uint64_t pattern_fnv(size_t size, uint64_t seed) {
        uint8_t *buf = malloc(size ? size : 1);
        uint64_t h;

        if (!buf)
                abort();
        tu_fill_pattern(buf, size, seed);
        h = tu_fnv1a64(buf, size);
        free(buf);
        return h;
}

bool chunk_is(const sgl_chunk *c, uint64_t id, size_t size, uint64_t seed) {
        return c && sgl_chunk_id(c) == id && sgl_chunk_size(c) == size &&
               tu_fnv1a64(sgl_chunk_data(c), size) == pattern_fnv(size, seed);
}

uint64_t rng(uint64_t *s) {
        uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

struct put put_write(sgl_writer *w, uint64_t id, uint64_t seed, size_t size,
                     uint64_t expiry) {
        uint8_t *buf = malloc(size ? size : 1);
        struct put p = { .size = size, .expiry = expiry };

        assert_non_null(buf);
        tu_fill_pattern(buf, size, seed);
        p.hash = tu_fnv1a64(buf, size);
        assert_int_equal(sgl_writer_write(w, id, expiry, buf, size, &p.id), 0);
        if (id != 0)
                assert_int_equal(p.id, id);
        free(buf);
        return p;
}

struct put put_alloc(sgl_writer *w, uint64_t id, uint64_t seed, size_t size,
                     uint64_t expiry) {
        struct put p = { .size = size, .expiry = expiry };
        void *data = NULL;

        assert_int_equal(sgl_writer_alloc(w, id, expiry, size, &data, &p.id), 0);
        assert_non_null(data);
        tu_fill_pattern(data, size, seed);
        p.hash = tu_fnv1a64(data, size);
        return p;
}

struct put commit_one(sgl_writer *w, uint64_t id, uint64_t seed, size_t size) {
        struct put p = put_write(w, id, seed, size, 0);

        assert_int_equal(sgl_writer_commit(w), 0);
        return p;
}

/* ==================================================== segment capture === */

void cap_fn(void *userdata, uint64_t seq, sgl_segment_event ev, int fd) {
        struct seg_cap *cap = userdata;

        if (cap->n >= ELEMENTS(cap->e)) {
                cap->overflow = true;
                return;
        }
        cap->e[cap->n].seq = seq;
        cap->e[cap->n].ev = ev;
        cap->e[cap->n].fd = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : -1;
        cap->n++;
}

int cap_last(const struct seg_cap *cap, sgl_segment_event ev) {
        for (size_t i = cap->n; i-- > 0;)
                if (cap->e[i].ev == ev)
                        return (int)i;
        return -1;
}

int cap_fd(const struct seg_cap *cap, sgl_segment_event ev) {
        int i = cap_last(cap, ev);

        assert_false(cap->overflow);
        assert_true(i >= 0);
        assert_true(cap->e[i].fd >= 0);
        return cap->e[i].fd;
}

void cap_close(struct seg_cap *cap) {
        for (size_t i = 0; i < cap->n; i++)
                if (cap->e[i].fd >= 0)
                        close(cap->e[i].fd);
        cap->n = 0;
}

/* ============================================ reader process: child side === */

struct rd_child {
        int sock;
        unsigned flags;
};

struct rstate {
        int sock;
        int maps0;               /* segment mappings inherited at start */
        int pin[2];              /* a pipe holding a page of a segment */
        sgl_reader *r;
        unsigned opened, sealed, retired;
        struct held {
                sgl_chunk *c;
                uint64_t hash;
        } *held;
        size_t n_held, a_held;
        struct dlv *dlv;
        size_t n_dlv, a_dlv;
};

/* A reader process starts with its socket and stdio only. */
static int close_all_but(int keep) {
        int fds[256], n = 0;
        struct dirent *de;
        DIR *d = opendir("/proc/self/fd");

        if (!d)
                return -errno;
        while ((de = readdir(d)) && n < (int)ELEMENTS(fds)) {
                int fd = atoi(de->d_name);
                if (de->d_name[0] != '.' && fd > 2 && fd != keep && fd != dirfd(d))
                        fds[n++] = fd;
        }
        closedir(d);
        for (int i = 0; i < n; i++)
                close(fds[i]);
        return 0;
}

static int child_send(struct rstate *st, uint32_t ev, uint64_t seq, uint64_t a,
                      uint64_t b, uint64_t c, uint64_t d) {
        struct tmsg m = { .seq = seq, .event = ev, .a = a, .b = b, .c = c, .d = d };

        return sgl_fdpass_send(st->sock, &m, sizeof(m), NULL, 0) == (ssize_t)sizeof(m) ? 0 : -EPIPE;
}

/* Receives one message; 0, or -errno (-EPIPE: the writer is gone). */
static int child_recv(struct rstate *st, struct tmsg *m, int *fd) {
        size_t nfds = 0;
        int fds[1];
        ssize_t n;

        n = sgl_fdpass_recv(st->sock, m, sizeof(*m), fds, 1, &nfds);
        *fd = nfds > 0 ? fds[0] : -1;
        if (n == (ssize_t)sizeof(*m))
                return 0;
        if (*fd >= 0)
                close(*fd);
        return n < 0 ? (int)n : -EPIPE;
}

/* A segment event: map it.  Returns 1 if @m was one, 0 if not, < 0 on error. */
static int child_segment(struct rstate *st, const struct tmsg *m, int fd) {
        int k;

        switch (m->event) {
        case SGL_SEGMENT_OPENED:
        case SGL_SEGMENT_SEALED:
                if (fd < 0)
                        return -EBADF;
                k = sgl_reader_add_segment_consume_fd(st->r, fd);
                if (k < 0) {
                        fprintf(stderr, "reader %d: adding segment %llu (event %u): %s\n",
                                (int)getpid(), (unsigned long long)m->seq, m->event,
                                strerror(-k));
                        return k;
                }
                if (m->event == SGL_SEGMENT_OPENED)
                        st->opened++;
                else
                        st->sealed++;
                return 1;
        case SGL_SEGMENT_RETIRED:
                if (fd >= 0) {
                        close(fd);
                        return -EBADF;
                }
                st->retired++;
                return 1;
        default:
                return 0;
        }
}

static int push_dlv(struct rstate *st, const struct dlv *d) {
        if (st->n_dlv == st->a_dlv) {
                size_t n = st->a_dlv ? st->a_dlv * 2 : 256;
                struct dlv *a = realloc(st->dlv, n * sizeof(*a));
                if (!a)
                        return -ENOMEM;
                st->dlv = a;
                st->a_dlv = n;
        }
        st->dlv[st->n_dlv++] = *d;
        return 0;
}

static int push_held(struct rstate *st, sgl_chunk *c, uint64_t hash) {
        if (st->n_held == st->a_held) {
                size_t n = st->a_held ? st->a_held * 2 : 64;
                struct held *a = realloc(st->held, n * sizeof(*a));
                if (!a)
                        return -ENOMEM;
                st->held = a;
                st->a_held = n;
        }
        st->held[st->n_held++] = (struct held) { c, hash };
        return 0;
}

/* next() until it stops; every chunk goes to st->dlv (and st->held with
 * F_HOLD).  Returns the last next() result (-EAGAIN when drained). */
static int child_drain(struct rstate *st, unsigned flags) {
        sgl_chunk *c;
        int k;

        while ((k = sgl_reader_next(st->r, &c)) == 0) {
                struct dlv d = {
                        .id = sgl_chunk_id(c),
                        .version = sgl_chunk_version(c),
                        .size = sgl_chunk_size(c),
                        .hash = tu_fnv1a64(sgl_chunk_data(c), sgl_chunk_size(c)),
                        .expiry = sgl_chunk_expiry(c),
                };
                if (push_dlv(st, &d) < 0)
                        return -ENOMEM;
                if (flags & F_HOLD) {
                        if (push_held(st, c, d.hash) < 0)
                                return -ENOMEM;
                } else {
                        sgl_chunk_unref(c);
                }
        }
        return k;
}

/* Sends st->dlv as M_CHUNK messages and an M_END, then forgets it. */
static int child_report(struct rstate *st, int last) {
        for (size_t i = 0; i < st->n_dlv; i++) {
                const struct dlv *d = &st->dlv[i];
                if (child_send(st, M_CHUNK, d->id, d->version, d->size, d->hash, d->expiry) < 0)
                        return -EPIPE;
        }
        if (child_send(st, M_END, st->n_dlv, (uint64_t)(int64_t)last, 0, 0, 0) < 0)
                return -EPIPE;
        st->n_dlv = 0;
        return 0;
}

/* Handles every message already queued on the socket without blocking;
 * returns 1 if M_DONE was among them, 0 if not, < 0 on error. */
static int child_pump(struct rstate *st, int timeout_ms) {
        struct pollfd p = { .fd = st->sock, .events = POLLIN };
        int done = 0;

        while (poll(&p, 1, timeout_ms) > 0) {
                struct tmsg m;
                int fd, k;

                timeout_ms = 0;
                k = child_recv(st, &m, &fd);
                if (k < 0)
                        return k;
                k = child_segment(st, &m, fd);
                if (k < 0)
                        return k;
                if (k == 0) {
                        if (fd >= 0)
                                close(fd);
                        if (m.event != M_DONE)
                                return -EPROTO;
                        done = 1;
                }
        }
        return done;
}

/* M_STREAM: take segments and chunks as they come until M_DONE, then drain
 * once more (every segment sent before M_DONE has arrived) and report. */
static int child_stream(struct rstate *st, unsigned flags) {
        int k, last = -EAGAIN;

        for (;;) {
                int done = child_pump(st, 0);
                if (done < 0)
                        return done;
                last = child_drain(st, flags);
                if (last != -EAGAIN)
                        return last < 0 ? last : -EPROTO;
                if (done)
                        break;
                /* sleep until the writer commits or seals something, or a
                 * descriptor arrives */
                k = sgl_reader_wait(st->r, 2000);
                if (k == -ENOTCONN)
                        k = child_pump(st, 2) < 0 ? -EPIPE : 0;
                else if (k == -ETIMEDOUT)
                        k = 0;
                if (k < 0)
                        return k;
        }
        return child_report(st, last);
}

/* M_POLL: spin on next() while the writer stages a batch; report how many
 * polls saw nothing and how many chunks the first non-empty poll burst had. */
static int child_poll(struct rstate *st, uint64_t want, uint64_t timeout_ms) {
        int64_t deadline = mono_usec() + (int64_t)timeout_ms * 1000;
        uint64_t polls = 0, burst = 0, total = 0;
        sgl_chunk *c;
        int k;

        if (child_send(st, M_POLLING, 0, 0, 0, 0, 0) < 0)
                return -EPIPE;
        while (total < want && mono_usec() < deadline) {
                if (child_pump(st, 0) < 0)
                        return -EPIPE;
                k = sgl_reader_next(st->r, &c);
                if (k == -EAGAIN) {
                        if (total == 0)
                                polls++;
                        continue;
                }
                if (k < 0)
                        return k;
                /* the first chunk of the batch: the rest must be there now */
                for (;;) {
                        struct dlv d = {
                                .id = sgl_chunk_id(c),
                                .version = sgl_chunk_version(c),
                                .size = sgl_chunk_size(c),
                                .hash = tu_fnv1a64(sgl_chunk_data(c), sgl_chunk_size(c)),
                                .expiry = sgl_chunk_expiry(c),
                        };
                        sgl_chunk_unref(c);
                        if (push_dlv(st, &d) < 0)
                                return -ENOMEM;
                        total++;
                        if (burst == 0 || total == burst + 1)
                                burst = total;
                        k = sgl_reader_next(st->r, &c);
                        if (k != 0)
                                break;
                }
                if (k != -EAGAIN)
                        return k < 0 ? k : -EPROTO;
                if (burst != total)
                        break; /* not one burst: report what we have */
        }
        k = child_report(st, -EAGAIN);
        if (k < 0)
                return k;
        return child_send(st, M_POLLED, polls, burst, total, 0, 0);
}

static int child_verify(struct rstate *st) {
        uint64_t bad = 0;

        for (size_t i = 0; i < st->n_held; i++) {
                const sgl_chunk *c = st->held[i].c;
                if (tu_fnv1a64(sgl_chunk_data(c), sgl_chunk_size(c)) != st->held[i].hash)
                        bad++;
        }
        return child_send(st, M_VERIFIED, st->n_held, bad,
                          (uint64_t)(count_sigillo_maps() - st->maps0), 0, 0);
}

static int child_release(struct rstate *st) {
        for (size_t i = 0; i < st->n_held; i++)
                sgl_chunk_unref(st->held[i].c);
        st->n_held = 0;
        return child_send(st, M_RELEASED, (uint64_t)(count_sigillo_maps() - st->maps0),
                          (uint64_t)sgl_reader_get_segment_count(st->r), 0, 0, 0);
}

/* M_PIN: what a hostile reader can do with a read-only mapping: take a
 * reference to one of its pages (vmsplice() into a pipe never drained),
 * which makes F_SEAL_WRITE fail with EBUSY while it lasts. */
static int child_pin(struct rstate *st, uint64_t id) {
        sgl_chunk *c = NULL;
        struct iovec iov;
        int k;

        k = sgl_reader_get(st->r, id, &c);
        if (k < 0)
                return k;
        iov = (struct iovec) {
                .iov_base = (void *)((uintptr_t)sgl_chunk_data(c) & ~(uintptr_t)(PAGE - 1)),
                .iov_len = PAGE,
        };
        if (pipe2(st->pin, O_CLOEXEC) < 0)
                k = -errno;
        else if (vmsplice(st->pin[1], &iov, 1, 0) != (ssize_t)PAGE)
                k = -EOPNOTSUPP;
        sgl_chunk_unref(c);
        return k;
}

static int reader_main(void *userdata) {
        const struct rd_child *rc = userdata;
        struct rstate st = { .sock = rc->sock, .pin = { -1, -1 } };
        int base, k;

        TU_CHILD_CHECK(close_all_but(st.sock) == 0);
        base = (int)tu_count_fds();
        st.maps0 = count_sigillo_maps(); /* 0 unless a failed test left a writer */
        TU_CHILD_CHECK(base >= 4);
        TU_CHILD_CHECK(sgl_reader_new(rc->flags, &st.r) == 0);

        for (;;) {
                struct tmsg m;
                int fd;

                k = child_recv(&st, &m, &fd);
                TU_CHILD_CHECK(k == 0);
                k = child_segment(&st, &m, fd);
                TU_CHILD_CHECK(k >= 0);
                if (k > 0)
                        continue;
                if (m.event != M_CONTROL)
                        TU_CHILD_CHECK(fd < 0);

                switch (m.event) {
                case M_CONTROL:
                        TU_CHILD_CHECK(fd >= 0);
                        TU_CHILD_CHECK(sgl_reader_set_control_consume_fd(st.r, fd) == 0);
                        break;
                case M_DRAIN:
                        k = child_drain(&st, m.flags);
                        TU_CHILD_CHECK(child_report(&st, k) == 0);
                        break;
                case M_GET: {
                        sgl_chunk *c = NULL;
                        uint64_t ver = 0, size = 0, hash = 0;

                        k = sgl_reader_get(st.r, m.seq, &c);
                        if (k == 0) {
                                TU_CHILD_CHECK(sgl_chunk_id(c) == m.seq);
                                ver = sgl_chunk_version(c);
                                size = sgl_chunk_size(c);
                                hash = tu_fnv1a64(sgl_chunk_data(c), size);
                                sgl_chunk_unref(c);
                        }
                        TU_CHILD_CHECK(child_send(&st, M_GOT, m.seq, (uint64_t)(int64_t)k,
                                                  ver, size, hash) == 0);
                        break;
                }
                case M_WAIT: {
                        int64_t t0 = mono_usec();
                        k = sgl_reader_wait(st.r, (int64_t)m.a);
                        TU_CHILD_CHECK(child_send(&st, M_WAITED, 0, (uint64_t)(int64_t)k,
                                                  (uint64_t)(mono_usec() - t0), 0, 0) == 0);
                        break;
                }
                case M_POLL:
                        TU_CHILD_CHECK(child_poll(&st, m.seq, m.a) == 0);
                        break;
                case M_STREAM:
                        TU_CHILD_CHECK(child_stream(&st, m.flags) == 0);
                        break;
                case M_VERIFY:
                        TU_CHILD_CHECK(child_verify(&st) == 0);
                        break;
                case M_RELEASE:
                        TU_CHILD_CHECK(child_release(&st) == 0);
                        break;
                case M_INFO:
                        TU_CHILD_CHECK(child_send(&st, M_INFOED,
                                                  (uint64_t)sgl_reader_get_segment_count(st.r),
                                                  st.opened, st.sealed, st.retired,
                                                  (uint64_t)(int64_t)((int)tu_count_fds() - base)) == 0);
                        break;
                case M_PIN:
                        TU_CHILD_CHECK(st.pin[0] < 0);
                        k = child_pin(&st, m.seq);
                        TU_CHILD_CHECK(child_send(&st, M_PINNED, 0, (uint64_t)(int64_t)k,
                                                  0, 0, 0) == 0);
                        break;
                case M_UNPIN:
                        close(st.pin[0]);
                        close(st.pin[1]);
                        st.pin[0] = st.pin[1] = -1;
                        TU_CHILD_CHECK(child_send(&st, M_PINNED, 0, 0, 0, 0, 0) == 0);
                        break;
                case M_QUIT:
                        if (st.pin[0] >= 0)
                                close(st.pin[0]);
                        if (st.pin[1] >= 0)
                                close(st.pin[1]);
                        for (size_t i = 0; i < st.n_held; i++)
                                sgl_chunk_unref(st.held[i].c);
                        free(st.held);
                        free(st.dlv);
                        st.r = sgl_reader_unref(st.r);
                        /* nothing of the area is left mapped */
                        TU_CHILD_CHECK(count_sigillo_maps() == st.maps0);
                        TU_CHILD_CHECK(child_send(&st, M_BYE, 0, (uint64_t)base,
                                                  (uint64_t)tu_count_fds(), 0, 0) == 0);
                        return 0;
                default:
                        TU_CHILD_CHECK(!"unknown command");
                }
        }
}

/* ====================================== reader process: test process side === */

void rd_spawn(struct rd *rd, unsigned flags) {
        struct timeval tv = { .tv_sec = 20 };
        struct rd_child rc = { .flags = flags };

        *rd = (struct rd) { .flags = flags, .strict = !(flags & SGL_READER_TRUSTED) };
        rd->pid = fork_with_socket(reader_main, &rc, &rc.sock, &rd->sock);
        /* a wedged reader fails the test instead of hanging it */
        assert_int_equal(setsockopt(rd->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        assert_int_equal(setsockopt(rd->sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
}

void rd_send(struct rd *rd, uint32_t ev, uint32_t flags, uint64_t seq,
             uint64_t a, int fd) {
        struct tmsg m = { .seq = seq, .event = ev, .flags = flags, .a = a };
        ssize_t n;

        n = sgl_fdpass_send(rd->sock, &m, sizeof(m), fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);
        if (n != (ssize_t)sizeof(m))
                fail_msg("sending event %u to reader %d: %zd", ev, (int)rd->pid, n);
}

void rd_recv(struct rd *rd, struct tmsg *m, uint32_t want) {
        size_t nfds = 0;
        int fds[1];
        ssize_t n;

        n = sgl_fdpass_recv(rd->sock, m, sizeof(*m), fds, 1, &nfds);
        if (n != (ssize_t)sizeof(*m))
                fail_msg("reader %d gone or silent (recv %zd): see its stderr",
                         (int)rd->pid, n);
        assert_int_equal(nfds, 0);
        if (m->event != want)
                fail_msg("reader %d sent %u, expected %u", (int)rd->pid, m->event, want);
}

size_t rd_collect(struct rd *rd, struct dlv *out, size_t max, int *last) {
        struct tmsg m;
        size_t n = 0;

        for (;;) {
                size_t nfds = 0;
                int fds[1];
                ssize_t k = sgl_fdpass_recv(rd->sock, &m, sizeof(m), fds, 1, &nfds);

                if (k != (ssize_t)sizeof(m))
                        fail_msg("reader %d gone or silent (recv %zd)", (int)rd->pid, k);
                assert_int_equal(nfds, 0);
                if (m.event == M_END)
                        break;
                assert_int_equal(m.event, M_CHUNK);
                if (n < max)
                        out[n] = (struct dlv) { .id = m.seq, .version = m.a, .size = m.b,
                                                .hash = m.c, .expiry = m.d };
                n++;
        }
        assert_int_equal(m.seq, n);
        assert_true(n <= max);
        if (last)
                *last = (int)(int64_t)m.a;
        return n;
}

size_t rd_drain(struct rd *rd, unsigned flags, struct dlv *out, size_t max) {
        int last;
        size_t n;

        rd_send(rd, M_DRAIN, flags, 0, 0, -1);
        n = rd_collect(rd, out, max, &last);
        assert_int_equal(last, -EAGAIN);
        return n;
}

int rd_get(struct rd *rd, uint64_t id, struct dlv *out) {
        struct tmsg m;

        rd_send(rd, M_GET, 0, id, 0, -1);
        rd_recv(rd, &m, M_GOT);
        assert_int_equal(m.seq, id);
        *out = (struct dlv) { .id = id, .version = m.b, .size = m.c, .hash = m.d };
        return (int)(int64_t)m.a;
}

void rd_info(struct rd *rd, struct tmsg *m) {
        rd_send(rd, M_INFO, 0, 0, 0, -1);
        rd_recv(rd, m, M_INFOED);
        /* a reader keeps no descriptor of what it maps */
        assert_int_equal((int64_t)m->d, 0);
}

void rd_quit(struct rd *rd) {
        struct tmsg m;

        rd_send(rd, M_QUIT, 0, 0, 0, -1);
        rd_recv(rd, &m, M_BYE);
        assert_int_equal(m.b, m.a); /* reader's descriptors back to its start */
        tu_wait_exit(rd->pid, 0);
        close(rd->sock);
        rd->sock = -1;
}

/* ================================================================= hub === */

static void send_segment(struct rd *rd, uint64_t seq, sgl_segment_event ev, int fd) {
        if (rd->strict && ev == SGL_SEGMENT_OPENED)
                return;
        rd_send(rd, (uint32_t)ev, 0, seq, 0, fd);
}

static void hub_fn(void *userdata, uint64_t seq, sgl_segment_event ev, int fd) {
        struct hub *h = userdata;

        switch (ev) {
        case SGL_SEGMENT_OPENED:
                h->opened++;
                assert_true(fd >= 0);
                break;
        case SGL_SEGMENT_SEALED:
                h->sealed++;
                h->last_sealed = seq;
                assert_true(fd >= 0);
                assert_true(fcntl(fd, F_GET_SEALS) & F_SEAL_WRITE);
                break;
        case SGL_SEGMENT_RETIRED:
                h->retired++;
                assert_int_equal(fd, -1);
                break;
        default:
                fail_msg("unknown segment event %d", (int)ev);
        }
        for (size_t i = 0; i < h->n; i++)
                send_segment(h->rd[i], seq, ev, fd);
}

static void join_fn(void *userdata, uint64_t seq, sgl_segment_event ev, int fd) {
        send_segment(userdata, seq, ev, fd);
}

void hub_join(struct hub *h, sgl_writer *w, struct rd *rd) {
        assert_true(sgl_writer_foreach_segment(w, join_fn, rd) >= 0);
        assert_true(h->n < MAX_READERS);
        h->rd[h->n++] = rd;
}

void hub_control(sgl_writer *w, struct rd *rd) {
        int fd = sgl_writer_control_fd(w);

        assert_true(fd >= 0);
        rd_send(rd, M_CONTROL, 0, 0, 0, fd);
        close(fd);
}

static sgl_writer *writer_new(struct hub *h, unsigned flags) {
        sgl_writer *w = NULL;

        assert_int_equal(sgl_writer_new("wrtest", flags, &w), 0);
        sgl_writer_set_segment_fn(w, hub_fn, h);
        return w;
}

sgl_writer *spawn_readers(struct hub *h, struct rd *rd, const unsigned *flags, size_t n,
                          unsigned wflags) {
        for (size_t i = 0; i < n; i++)
                rd_spawn(&rd[i], flags[i]);
        return writer_new(h, wflags);
}

sgl_writer *setup(struct hub *h, struct rd *rd, const unsigned *flags, size_t n,
                  unsigned wflags) {
        sgl_writer *w = spawn_readers(h, rd, flags, n, wflags);

        for (size_t i = 0; i < n; i++)
                hub_join(h, w, &rd[i]);
        return w;
}

void teardown(sgl_writer *w, struct rd *rd, size_t n) {
        for (size_t i = 0; i < n; i++)
                rd_quit(&rd[i]);
        assert_null(sgl_writer_unref(w));
}

/* ========================================================== assertions === */

void assert_dlv_is(const struct dlv *d, const struct put *p) {
        assert_int_equal(d->id, p->id);
        assert_int_equal(d->size, p->size);
        assert_int_equal(d->hash, p->hash);
        assert_int_equal(d->expiry, p->expiry);
}

void expect_drain(struct rd *rd, const struct put *p, size_t n) {
        struct dlv d[64];
        size_t got;

        assert_true(n <= ELEMENTS(d));
        got = rd_drain(rd, 0, d, ELEMENTS(d));
        if (got != n)
                for (size_t i = 0; i < got; i++)
                        print_message("reader %d got id %llu version %llu size %llu\n",
                                      (int)rd->pid, (unsigned long long)d[i].id,
                                      (unsigned long long)d[i].version,
                                      (unsigned long long)d[i].size);
        assert_int_equal(got, n);
        for (size_t i = 0; i < n; i++) {
                assert_dlv_is(&d[i], &p[i]);
                if (i > 0)
                        assert_true(d[i].version > d[i - 1].version);
        }
}

void expect_get(struct rd *rd, const struct put *p) {
        struct dlv d;

        assert_int_equal(rd_get(rd, p->id, &d), 0);
        assert_int_equal(d.size, p->size);
        assert_int_equal(d.hash, p->hash);
}

void fd_limit(struct rlimit *old) {
        struct rlimit lim;
        int lowest = open("/dev/null", O_RDONLY | O_CLOEXEC);

        assert_true(lowest >= 0);
        close(lowest);
        assert_int_equal(getrlimit(RLIMIT_NOFILE, old), 0);
        lim = *old;
        lim.rlim_cur = (rlim_t)lowest;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &lim), 0);
}

void fd_unlimit(const struct rlimit *old) {
        assert_int_equal(setrlimit(RLIMIT_NOFILE, old), 0);
}
