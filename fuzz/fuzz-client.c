/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-client.c - libFuzzer harness for the client side of the
 * rendezvous: what a host (an embedded writer or sigillod) sends to a
 * reader (src/client.c: sgl_reader_open() and the pushes drained by
 * sgl_reader_process()) and to a publishing writer (src/publish.c:
 * sgl_writer_publish(), its takeover through src/adopt.c, and
 * sgl_writer_publish_process()).
 *
 * The harness is the host: a thread accepts the client's connection on a
 * real listening socket (an abstract address of this process), sends the
 * input's datagrams with the descriptors it asks for, then shuts its
 * sending side and reads whatever the client says until the client hangs
 * up.  Sending everything up front keeps runs deterministic: the client
 * meets the end of the script as a hang-up, never as a timeout.
 *
 * Input: [mode] then steps of [fd kind][len lo][len hi][len bytes]; a
 * segment kind is followed by [clen lo][clen hi][clen bytes] of segment
 * content.  mode bit 0: writer (else reader); bit 1: TRUSTED reader;
 * bit 2: PERSIST; bit 3: the writer commits before publishing.  Segment
 * contents have their header's identity (magic, version, header size,
 * area id, seq, size) patched to match the script, so that the record
 * parser is what gets fuzzed; kind 3 sends them unpatched.
 *
 * Oracle: no crash, no hang, no sanitizer report; the reader reads every
 * chunk it is given, byte by byte; after each input the process holds
 * exactly the descriptors it held before.
 *
 * Build: see fuzz/fuzz.am.
 * Run:   ./fuzz-client -max_len=9000 fuzz/corpus/client
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fuzz-util.h"
#include "sigillo.h"
#include "fdpass.h"
#include "memfd.h"
#include "protocol.h"
#include "segment.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FZ_STEPS_MAX 64
#define FZ_SEG_MAX (4 * SGL_PAGE)

struct fz_step {
        int fds[2];
        size_t nfds;
        const uint8_t *msg;
        size_t len;
};

static struct {
        char address[64];
        int listen_fd;
        unsigned baseline_fds;
        struct fz_step steps[FZ_STEPS_MAX];
        size_t n_steps;
        uint8_t area_id[SGL_AREA_ID_LEN];
        uint64_t sink;
} fz;

static void fz_check(int cond, const char *what) {
        fz_fail_unless(cond, "fuzz-client", what);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        socklen_t salen;

        (void)argc;
        (void)argv;
        signal(SIGPIPE, SIG_IGN);
        snprintf(fz.address, sizeof(fz.address), "@sigillo-fuzz-client-%d", (int)getpid());
        strcpy(sa.sun_path + 1, fz.address + 1);
        salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(fz.address));
        fz.listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        fz_check(fz.listen_fd >= 0, "socket");
        fz_check(bind(fz.listen_fd, (struct sockaddr *)&sa, salen) == 0, "bind");
        fz_check(listen(fz.listen_fd, 4) == 0, "listen");
        return 0;
}

static uint16_t le16(const uint8_t *p) {
        return (uint16_t)(p[0] | p[1] << 8);
}

/* A memfd with @content (its identity patched unless @raw), sealed and
 * reopened read-only as @kind says. */
static int segment_fd(uint8_t kind, const uint8_t *content, size_t clen, uint64_t seq, bool raw) {
        uint64_t size = SGL_PAGE * (1u + (kind >> 6));
        int fd = sgl_memfd_create("fuzz", size);

        fz_check(fd >= 0, "memfd");
        if (clen > size)
                clen = size;
        if (clen > 0)
                fz_check(pwrite(fd, content, clen, 0) == (ssize_t)clen, "pwrite");
        if (!raw) {
                struct sgl_seg_header h;

                memset(&h, 0, sizeof(h));
                if (clen > 0)
                        memcpy(&h, content, clen < sizeof(h) ? clen : sizeof(h));
                h.magic = SGL_SEG_MAGIC;
                h.version = SGL_FORMAT_VERSION;
                h.header_size = sizeof(h);
                memcpy(h.area_id, fz.area_id, sizeof(h.area_id));
                h.seq = seq;
                h.size = size;
                fz_check(pwrite(fd, &h, sizeof(h), 0) == (ssize_t)sizeof(h), "pwrite");
        }
        return fd;
}

static int control_fd(void) {
        struct sgl_ctl_page c = { .magic = SGL_CTL_MAGIC, .version = SGL_FORMAT_VERSION };
        int fd = sgl_memfd_create("fuzz", SGL_PAGE);

        fz_check(fd >= 0, "memfd");
        memcpy(c.area_id, fz.area_id, sizeof(c.area_id));
        fz_check(pwrite(fd, &c, sizeof(c), 0) == (ssize_t)sizeof(c), "pwrite");
        return fd;
}

/*
 * The descriptors of one step, as @kind says:
 *   bits 0-2: 0 none, 1 control page (of the area the script named last),
 *             2 segment (patched), 3 segment (raw), 4 a socket, 5 a pipe,
 *             6 two memfds, 7 an eventfd
 *   bit 3:    write-seal the memfd
 *   bit 4:    send the writable description instead of a read-only one
 *   bits 6-7: segment size, 1 to 4 pages
 */
static size_t make_fds(uint8_t kind, const struct sgl_msg *m, bool parsed,
                       const uint8_t *content, size_t clen, int fds[2]) {
        int sv[2], fd;

        switch (kind & 7) {
        case 0:
                return 0;
        case 1:
                fd = control_fd();
                break;
        case 2:
        case 3:
                fd = segment_fd(kind, content, clen,
                                parsed && m->type == SGL_MSG_SEGMENT ? m->segment.seq : 0,
                                (kind & 7) == 3);
                break;
        case 4:
                fz_check(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
                close(sv[1]);
                fds[0] = sv[0];
                return 1;
        case 5:
                fz_check(pipe2(sv, O_CLOEXEC) == 0, "pipe");
                close(sv[1]);
                fds[0] = sv[0];
                return 1;
        case 6:
                fds[0] = sgl_memfd_create("fuzz", SGL_PAGE);
                fds[1] = sgl_memfd_create("fuzz", SGL_PAGE);
                fz_check(fds[0] >= 0 && fds[1] >= 0, "memfd");
                return 2;
        default:
                fds[0] = eventfd(0, EFD_CLOEXEC);
                fz_check(fds[0] >= 0, "eventfd");
                return 1;
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

/* Cuts the input into steps and makes their descriptors. */
static bool parse_script(const uint8_t *data, size_t size) {
        fz.n_steps = 0;
        memset(fz.area_id, 0, sizeof(fz.area_id));
        while (size >= 3 && fz.n_steps < FZ_STEPS_MAX) {
                struct fz_step *s = &fz.steps[fz.n_steps++];
                uint8_t kind = data[0];
                size_t len = le16(data + 1), clen = 0;
                const uint8_t *content = NULL;
                struct sgl_msg m;
                bool parsed;

                data += 3;
                size -= 3;
                if (len > size)
                        len = size;
                s->msg = data;
                s->len = len;
                data += len;
                size -= len;
                if ((kind & 7) == 2 || (kind & 7) == 3) {
                        if (size >= 2) {
                                clen = le16(data);
                                data += 2;
                                size -= 2;
                        }
                        if (clen > size)
                                clen = size;
                        content = data;
                        data += clen;
                        size -= clen;
                }
                parsed = sgl_msg_parse(s->msg, s->len, 0, &m) == 0 ||
                         sgl_msg_parse(s->msg, s->len, 1, &m) == 0;
                /* the area the script names: descriptors that follow match it */
                if (parsed && m.type == SGL_MSG_AREA)
                        memcpy(fz.area_id, m.area.area_id, sizeof(fz.area_id));
                if (parsed && m.type == SGL_MSG_CLAIMED)
                        memcpy(fz.area_id, m.claimed.area_id, sizeof(fz.area_id));
                s->nfds = make_fds(kind, &m, parsed, content, clen, s->fds);
        }
        return fz.n_steps > 0;
}

static void *host_main(void *userdata) {
        struct pollfd pf = { .fd = fz.listen_fd, .events = POLLIN };
        int fd;

        (void)userdata;
        (void)poll(&pf, 1, -1);
        fd = accept4(fz.listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
                return NULL;
        for (size_t i = 0; i < fz.n_steps; i++) {
                struct fz_step *s = &fz.steps[i];

                if (sgl_fdpass_send(fd, s->msg, s->len, s->nfds ? s->fds : NULL, s->nfds) < 0 &&
                    s->len > 0)
                        break;
        }
        (void)shutdown(fd, SHUT_WR);
        for (;;) {
                uint8_t buf[SGL_MSG_MAX_SIZE];
                int fds[SGL_MSG_MAX_FDS];
                size_t nfds = 0;
                ssize_t n = sgl_fdpass_recv(fd, buf, sizeof(buf), fds, SGL_MSG_MAX_FDS, &nfds);

                if (n <= 0 && n != -EBADMSG && n != -EINTR)
                        break;
                for (size_t k = 0; n > 0 && k < nfds; k++)
                        close(fds[k]);
        }
        close(fd);
        return NULL;
}

/* Reads every chunk the reader offers, every byte of it. */
static void read_all(sgl_reader *r) {
        for (int i = 0; i < 1024; i++) {
                sgl_chunk *c = NULL;
                const uint8_t *p;

                if (sgl_reader_next(r, &c) <= 0 || !c)
                        break;
                p = sgl_chunk_data(c);
                for (size_t k = 0; k < sgl_chunk_size(c); k++)
                        fz.sink += p[k];
                fz.sink += sgl_chunk_id(c) + sgl_chunk_version(c) + sgl_chunk_expiry(c);
                if (sgl_reader_get(r, sgl_chunk_id(c), &c) >= 0)
                        fz.sink += sgl_chunk_size(c);
                sgl_chunk_unref(c);
        }
}

static void run_reader(uint8_t mode) {
        sgl_reader *r = NULL;

        if (sgl_reader_open("fuzz.area", fz.address, (mode & 2) ? SGL_READER_TRUSTED : 0, &r) < 0)
                return;
        read_all(r);
        for (int i = 0; i < 8; i++) {
                int k = sgl_reader_process(r);

                read_all(r);
                if (k < 0)
                        break;
        }
        (void)sgl_reader_get_segment_count(r);
        sgl_reader_unref(r);
}

static void run_writer(uint8_t mode) {
        static const char payload[] = "fuzz-client payload";
        sgl_writer *w = NULL;
        uint64_t id;

        fz_check(sgl_writer_new("fuzz.area", 0, &w) == 0, "writer");
        (void)sgl_writer_set_seal_policy(w, SGL_SEAL_EVERY_COMMIT, 0);
        if (mode & 8) {
                fz_check(sgl_writer_write(w, 7, 0, payload, sizeof(payload), &id) == 0, "write");
                fz_check(sgl_writer_commit(w) == 0, "commit");
        }
        if (sgl_writer_publish(w, "fuzz.area", fz.address, (mode & 4) ? SGL_PUBLISH_PERSIST : 0,
                               0440, NULL, 0, NULL, 0) == 0) {
                /* what a published writer does next: more segments go out,
                 * the daemon's word comes in */
                if (sgl_writer_write(w, 8, 0, payload, sizeof(payload), &id) == 0)
                        (void)sgl_writer_commit(w);
                for (int i = 0; i < 8; i++)
                        if (sgl_writer_publish_process(w) < 0)
                                break;
                (void)sgl_writer_delete(w, 8);
                (void)sgl_writer_commit(w);
                (void)sgl_writer_publish_process(w);
        }
        sgl_writer_unref(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        pthread_t host;
        uint8_t mode;

        fz.baseline_fds = fz_count_fds();

        if (size < 1)
                return 0;
        mode = data[0];
        if (!parse_script(data + 1, size - 1))
                return 0;
        fz_check(pthread_create(&host, NULL, host_main, NULL) == 0, "pthread_create");
        if (mode & 1)
                run_writer(mode);
        else
                run_reader(mode);
        /* a client that failed before connecting leaves the host waiting */
        {
                int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
                struct sockaddr_un sa = { .sun_family = AF_UNIX };

                strcpy(sa.sun_path + 1, fz.address + 1);
                fz_check(probe >= 0, "socket");
                (void)connect(probe, (struct sockaddr *)&sa,
                              (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(fz.address)));
                close(probe);
                pthread_join(host, NULL);
        }
        /* a probe that was not accepted (the client was) waits in the
         * backlog: take it away */
        for (;;) {
                int fd = accept4(fz.listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

                if (fd < 0)
                        break;
                close(fd);
        }
        for (size_t i = 0; i < fz.n_steps; i++)
                for (size_t k = 0; k < fz.steps[i].nfds; k++)
                        close(fz.steps[i].fds[k]);
        fz_check(fz_count_fds() == fz.baseline_fds, "descriptor leak");
        return 0;
}
