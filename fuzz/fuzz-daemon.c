/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-daemon.c - libFuzzer harness for sigillod's side of the rendezvous:
 * the bytes and descriptors a client sends, through the daemon's own
 * connection code (tools/sigillod/main.c: conn_read(), the outbound queue,
 * closing) and its registry (tools/sigillod/registry.c: areas, leases,
 * quotas, descriptor checks).
 *
 * main.c is compiled into the harness (its main() renamed) so that the
 * very functions the epoll loop calls are the ones fuzzed; the harness
 * plays the loop: it makes connections from real SOCK_SEQPACKET
 * socketpairs as do_accept() would, sends each step's datagram with the
 * descriptor the input asks for (real memfds with a control page or a
 * segment header, sealed or not, read-only or not; sockets; pipes; two at
 * once), lets the daemon read, flushes, drains and closes what comes back,
 * and reaps doomed connections at the end of each step as run() does.
 *
 * Input: steps of [op][fd kind][len lo][len hi][len bytes].  op & 3 picks
 * one of three connections (3: hang up connection op >> 2 and reconnect);
 * the fd kind is described at make_fd().
 *
 * Oracle: no crash, no sanitizer report, and after every input (all
 * connections closed, the registry shut down and freed, as at exit) the
 * process holds exactly the descriptors it held before: the registry's
 * state is rebuilt for each input, so runs are deterministic.
 *
 * Build: see fuzz/fuzz.am (links main.c's siblings and the library).
 * Run:   ./fuzz-daemon -max_len=9000 fuzz/corpus/daemon
 */

#define main sigillod_main
#include "fuzz-util.h"
#include "main.c"
#undef main

#include <sys/eventfd.h>

#include "memfd.h"
#include "segment.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FZ_CONNS 3
#define FZ_STEPS_MAX 64

static struct {
        struct conn *c[FZ_CONNS];     /* the daemon's side, or NULL */
        uint64_t id[FZ_CONNS];        /* its id, to find it (or not) again */
        int peer[FZ_CONNS];           /* the client's side */
        uint8_t area_id[SGL_MSG_AREA_ID_LEN];
        unsigned baseline_fds;
} fz;

static void fz_check(int cond, const char *what) {
        fz_fail_unless(cond, "fuzz-daemon", what);
}

static void fz_registry_new(void) {
        static const char policy[] =
                "reserve sys.* uid=0\n"
                "reserve exact uid=1000\n"
                "reserve team.* gid=4343\n";
        /* small quotas so that inputs reach every refusal */
        struct sgld_limits lim = SGLD_LIMITS_DEFAULT;
        struct sgld_policy *p = sgld_policy_new();

        lim.conns_per_uid = 2;
        lim.areas_per_uid = 2;
        lim.segments_per_uid = 4;
        lim.fds_per_uid = 6;
        lim.bytes_per_uid = 64 * 1024;
        lim.pending_per_conn = 8;
        lim.pending_per_uid = 12;
        lim.areas_max = 3;
        fz_check(sgld_registry_new(&lim, false, &d.reg) == 0, "registry");
        fz_check(p && sgld_policy_parse(p, policy, sizeof(policy) - 1, "fuzz", NULL, NULL) == 3,
                 "policy");
        sgld_registry_set_policy(d.reg, p);
        d.lim = sgld_registry_limits(d.reg);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        (void)argc;
        (void)argv;
        signal(SIGPIPE, SIG_IGN);
        d.log_level = -1; /* quiet: the fuzzer prints enough */
        d.nofile = 1u << 20;
        d.epfd = epoll_create1(EPOLL_CLOEXEC);
        fz_check(d.epfd >= 0, "epoll");
        return 0;
}

/* As do_accept() does, over a socketpair instead of accept4(). */
static void fz_connect(size_t i) {
        struct epoll_event ev = { .events = EPOLLIN };
        int sv[2];
        struct conn *c;

        fz.c[i] = NULL;
        fz.peer[i] = -1;
        fz_check(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0,
                 "socketpair");
        c = calloc(1, sizeof(*c));
        fz_check(c != NULL, "calloc");
        c->fd = sv[0];
        c->qtail = &c->qhead;
        c->peer.id = d.next_id++;
        c->since_ms = now_ms();
        if (sgld_peer_attach(d.reg, &c->peer, c->fd) < 0) {
                /* refused outright (the refused pool is full) */
                close(sv[0]);
                close(sv[1]);
                free(c);
                return;
        }
        ev.data.u64 = c->peer.id;
        fz_check(epoll_ctl(d.epfd, EPOLL_CTL_ADD, c->fd, &ev) == 0, "epoll_ctl");
        c->hnext = d.conns[c->peer.id % CONN_BUCKETS];
        d.conns[c->peer.id % CONN_BUCKETS] = c;
        c->next = d.all;
        if (d.all)
                d.all->prev = c;
        d.all = c;
        d.n_conns++;
        fz.c[i] = c;
        fz.id[i] = c->peer.id;
        fz.peer[i] = sv[1];
}

/* conn_find() by id: a reaped connection is no longer ours to touch. */
static void fz_forget_reaped(void) {
        for (size_t i = 0; i < FZ_CONNS; i++)
                if (fz.c[i])
                        fz.c[i] = conn_find(fz.id[i]);
}

static void fz_write_all(int fd, const void *buf, size_t len, off_t off) {
        fz_check(pwrite(fd, buf, len, off) == (ssize_t)len, "pwrite");
}

/*
 * A descriptor as @kind says:
 *   bits 0-2: 0 none, 1 control page, 2 segment (header only; its seq from
 *             the message if it parses as PUBLISH_SEGMENT), 3 a socket,
 *             4 a pipe, 5 two memfds, 6 a memfd holding the message bytes,
 *             7 an eventfd
 *   bit 3:    write-seal the memfd (F_SEAL_WRITE)
 *   bit 4:    send the writable description instead of a read-only one
 *   bit 5:    break the header (magic)
 *   bits 6-7: segment size: 1 to 4 pages
 * Returns how many descriptors are in @fds.
 */
static size_t make_fd(uint8_t kind, const uint8_t *msg, size_t len, int fds[2]) {
        uint64_t seg_size = SGL_PAGE * (1u + (kind >> 6));
        struct sgl_msg m;
        int fd, sv[2];

        switch (kind & 7) {
        case 0:
                return 0;
        case 3:
                fz_check(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
                close(sv[1]);
                fds[0] = sv[0];
                return 1;
        case 4:
                fz_check(pipe2(sv, O_CLOEXEC) == 0, "pipe");
                close(sv[1]);
                fds[0] = sv[0];
                return 1;
        case 5:
                fds[0] = sgl_memfd_create("fuzz", SGL_PAGE);
                fds[1] = sgl_memfd_create("fuzz", SGL_PAGE);
                fz_check(fds[0] >= 0 && fds[1] >= 0, "memfd");
                return 2;
        case 7:
                fds[0] = eventfd(0, EFD_CLOEXEC);
                fz_check(fds[0] >= 0, "eventfd");
                return 1;
        default:
                break;
        }

        fd = sgl_memfd_create("fuzz", (kind & 7) == 2 ? seg_size : SGL_PAGE);
        fz_check(fd >= 0, "memfd");
        if ((kind & 7) == 1) {
                struct sgl_ctl_page c = { .magic = SGL_CTL_MAGIC, .version = SGL_FORMAT_VERSION };

                memcpy(c.area_id, fz.area_id, sizeof(c.area_id));
                if (kind & 0x20)
                        c.magic ^= 1;
                fz_write_all(fd, &c, sizeof(c), 0);
        } else if ((kind & 7) == 2) {
                struct sgl_seg_header h = {
                        .magic = SGL_SEG_MAGIC, .version = SGL_FORMAT_VERSION,
                        .header_size = sizeof(h), .size = seg_size,
                        .commit_end = SGL_SEG_DATA,
                };

                memcpy(h.area_id, fz.area_id, sizeof(h.area_id));
                if (sgl_msg_parse(msg, len, 1, &m) == 0 && m.type == SGL_MSG_PUBLISH_SEGMENT)
                        h.seq = m.publish_segment.seq;
                if (kind & 0x20)
                        h.magic ^= 1;
                fz_write_all(fd, &h, sizeof(h), 0);
        } else if (len > 0) {
                fz_write_all(fd, msg, len < SGL_PAGE ? len : SGL_PAGE, 0);
        }
        if (kind & 8)
                fz_check(sgl_memfd_seal_write(fd) == 0, "seal");
        if (!(kind & 0x10)) {
                int ro = sgl_memfd_reopen_ro(fd);

                fz_check(ro >= 0, "reopen");
                close(fd);
                fd = ro;
        }
        fds[0] = fd;
        return 1;
}

/* Takes what the daemon sent to the client side of connection @i: keeps
 * the area id of AREA and CLAIMED (the next control pages and segments
 * name it), closes every descriptor. */
static void fz_drain(size_t i) {
        if (fz.peer[i] < 0)
                return;
        for (;;) {
                uint8_t buf[SGL_MSG_MAX_SIZE];
                int fds[SGL_MSG_MAX_FDS];
                size_t nfds = 0;
                struct sgl_msg m;
                ssize_t n = sgl_fdpass_recv(fz.peer[i], buf, sizeof(buf), fds,
                                            SGL_MSG_MAX_FDS, &nfds);

                if (n <= 0 && n != -EBADMSG)
                        return;
                if (n < 0)
                        continue;
                if (sgl_msg_parse(buf, (size_t)n, nfds, &m) == 0) {
                        if (m.type == SGL_MSG_AREA)
                                memcpy(fz.area_id, m.area.area_id, sizeof(fz.area_id));
                        else if (m.type == SGL_MSG_CLAIMED)
                                memcpy(fz.area_id, m.claimed.area_id, sizeof(fz.area_id));
                }
                for (size_t k = 0; k < nfds; k++)
                        close(fds[k]);
        }
}

/* The end of a round of run(): flush what is queued, free the doomed. */
static void fz_round(void) {
        for (size_t i = 0; i < FZ_CONNS; i++)
                fz_drain(i);
        for (struct conn *c = d.all; c; c = c->next)
                if (!c->doomed && c->want_out)
                        conn_flush(c);
        for (size_t i = 0; i < FZ_CONNS; i++)
                fz_drain(i);
        reap();
        fz_forget_reaped();
}

static void fz_hangup(size_t i) {
        if (fz.peer[i] >= 0)
                close(fz.peer[i]);
        fz.peer[i] = -1;
        if (fz.c[i] && !fz.c[i]->doomed && !conn_read(fz.c[i]))
                conn_doom(fz.c[i]);
        reap();
        fz_forget_reaped();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        size_t steps = 0;

        fz.baseline_fds = fz_count_fds();

        memset(&fz.area_id, 0, sizeof(fz.area_id));
        fz_registry_new();
        for (size_t i = 0; i < FZ_CONNS; i++)
                fz_connect(i);

        while (size >= 4 && steps++ < FZ_STEPS_MAX) {
                uint8_t op = data[0], kind = data[1];
                size_t len = (size_t)data[2] | (size_t)data[3] << 8, i = op & 3;
                int fds[2];
                size_t nfds;

                data += 4;
                size -= 4;
                if (len > size)
                        len = size;
                if (i == 3) {
                        i = (op >> 2) % FZ_CONNS;
                        fz_hangup(i);
                        fz_connect(i);
                        continue;
                }
                if (fz.peer[i] < 0)
                        fz_connect(i);
                nfds = make_fd(kind, data, len, fds);
                if (fz.peer[i] >= 0)
                        (void)sgl_fdpass_send(fz.peer[i], data, len, nfds ? fds : NULL, nfds);
                for (size_t k = 0; k < nfds; k++)
                        close(fds[k]);
                data += len;
                size -= len;
                if (fz.c[i] && !fz.c[i]->doomed)
                        (void)conn_read(fz.c[i]);
                fz_round();
        }

        /* as at exit: every client leaves, then teardown() */
        for (size_t i = 0; i < FZ_CONNS; i++)
                fz_hangup(i);
        sgld_registry_shutdown(d.reg);
        while (d.all) {
                conn_doom(d.all);
                reap();
        }
        d.reg = sgld_registry_free(d.reg);
        d.doomed = NULL;
        fz_check(d.n_conns == 0, "connections left");
        fz_check(fz_count_fds() == fz.baseline_fds, "descriptor leak");
        return 0;
}
