/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-hostile-writer.c - a writer that turns hostile after a commit cannot
 * change a byte a STRICT reader has seen, and cannot make a STRICT reader map
 * anything that is not write-sealed.
 *
 * What it proves, with real processes, real memfds and descriptors carried
 * over SOCK_SEQPACKET with SCM_RIGHTS:
 *
 *  - hostile_writer_every_commit, hostile_writer_seal_bytes: after a STRICT
 *    reader in another process took a chunk and checksummed it, the writer
 *    process tries every way it has to change the committed bytes: the
 *    descriptor its segment callback lent it (duplicated), a read-write
 *    reopen of it through /proc/self/fd, /proc/self/map_files, its own
 *    mappings of the segment (the library's read-only mirror included, found
 *    through /proc/self/maps; under SGL_SEAL_EVERY_COMMIT the library maps
 *    nothing of it, and that is asserted), /proc/self/mem and process_vm_writev().  Each
 *    attempt fails with the errno the kernel documents for it (asserted one
 *    by one), and a MAP_PRIVATE writable mapping changes only the writer's
 *    private copy.  The reader then re-checksums the bytes it still holds
 *    and looks the chunk up again: unchanged.  Under SGL_SEAL_BYTES the
 *    writer's own stray write into a committed page of its read-write
 *    mapping (a whole page below the one holding commit_end), before the
 *    seal, dies of SIGSEGV in a grandchild (mirror protection).
 *  - stray_write_*: mirror protection is self-protection only: it makes a
 *    writer's stray write fault; with SGL_WRITER_NO_MIRROR_PROTECT the same
 *    write lands in the open segment (TRUSTED readers see it, and the seal
 *    freezes it).  Only F_SEAL_WRITE protects readers from a hostile writer.
 *  - strict_rejects_unsealed: an open segment as the library announces it,
 *    a segment with F_SEAL_FUTURE_WRITE but no F_SEAL_WRITE, and a memfd the
 *    writer still maps writable are each rejected by a STRICT reader with
 *    -EACCES, with nothing mapped and the descriptor consumed; the very same
 *    bytes write-sealed are accepted (so the seal is what was refused).
 *  - writer_killed_after_commit: a writer SIGKILLed with a staged, uncommitted
 *    batch leaves every committed chunk readable byte-exact (STRICT: the
 *    sealed ones; TRUSTED: also the open segment's), and nothing staged.
 *
 * Children check with TU_CHILD_CHECK; the test process coordinates them over
 * sockets and asserts their exit codes and reported checksums.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/falloc.h>

#include "test-proc.h"
#include "test-util.h"

#include "sigillo.h"

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif

#define CHUNK_ID 42
#define CHUNK_SIZE (3 * 4096 + 123) /* spans page boundaries */
#define CHUNK_SEED 0x5eed0001ULL

static sigjmp_buf stray_env;

static void stray_segv(int sig) {
        (void)sig;
        siglongjmp(stray_env, 1);
}

/* A stray write of one byte at @ptr, made in this very process (the
 * writer's read-write mappings are MADV_DONTFORK, so a forked child would
 * not even have them): 1 if it faulted, 0 if it landed. */
static int stray_write_faults(volatile uint8_t *ptr) {
        struct sigaction sa = { .sa_handler = stray_segv }, old_segv, old_bus;
        volatile int faulted = 0;

        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, &old_segv);
        sigaction(SIGBUS, &sa, &old_bus);
        if (sigsetjmp(stray_env, 1) == 0)
                *ptr ^= 0xff;
        else
                faulted = 1;
        sigaction(SIGSEGV, &old_segv, NULL);
        sigaction(SIGBUS, &old_bus, NULL);
        return faulted;
}

/* ------------------------------------------------- the writer's attacks */

/*
 * Every way the writer process has to change the bytes of the sealed
 * segment @ro (its O_RDONLY descriptor from the segment callback).  Returns
 * 0 or the failing line.  Expected errnos (Linux 5.1+, checked on 6.x):
 *   O_RDONLY description: mmap(PROT_WRITE, MAP_SHARED) EACCES (not opened
 *     for writing); mprotect(PROT_WRITE) of a MAP_SHARED PROT_READ mapping
 *     EACCES (no VM_MAYWRITE); write/pwrite/fallocate EBADF; ftruncate
 *     EINVAL; F_ADD_SEALS EPERM.
 *   read-write reopen (/proc/self/fd: succeeds for root, and for anyone the
 *     file mode lets write, memfds being 0666 or 0777): every change EPERM
 *     because of F_SEAL_WRITE (writes, shared writable maps, hole punching)
 *     and F_SEAL_SHRINK/GROW (truncation, growing fallocate); adding or
 *     "removing" (adding 0) seals EPERM because of F_SEAL_SEAL; mprotect of
 *     its read-only mapping EACCES (shmem drops VM_MAYWRITE under seal).
 *   /proc/self/mem write to a read-only shared mapping EIO (FOLL_FORCE
 *     never writes through a shared mapping without VM_MAYWRITE);
 *   process_vm_writev() EFAULT.
 */
static int attack_sealed_fd(int ro, uint64_t size) {
        const uint8_t junk[8] = { 'h', 'o', 's', 't', 'i', 'l', 'e', '!' };
        const int want = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
        uint8_t *shared, *priv, *r2;
        uint64_t before, after;
        struct stat st;
        char path[128];
        int seals, rw, pm, fl;

        fl = fcntl(ro, F_GETFL);
        TU_CHILD_CHECK(fl >= 0 && (fl & O_ACCMODE) == O_RDONLY);
        seals = fcntl(ro, F_GET_SEALS);
        TU_CHILD_CHECK(seals >= 0 && (seals & want) == want);
        TU_CHILD_CHECK(fstat(ro, &st) == 0 && (uint64_t)st.st_size == size);
        before = fd_fnv(ro, NULL);

        /* --- through the read-only description itself */
        MMAP_FAILS_WITH(mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0), EACCES);
        shared = mmap(NULL, size, PROT_READ, MAP_SHARED, ro, 0);
        TU_CHILD_CHECK(shared != MAP_FAILED);
        FAILS_WITH(mprotect(shared, size, PROT_READ | PROT_WRITE), EACCES);
        FAILS_WITH(write(ro, junk, sizeof(junk)), EBADF);
        FAILS_WITH(pwrite(ro, junk, sizeof(junk), 4096), EBADF);
        FAILS_WITH(ftruncate(ro, 4096), EINVAL);
        FAILS_WITH(ftruncate(ro, (off_t)size * 2), EINVAL);
        FAILS_WITH(fallocate(ro, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096), EBADF);
        FAILS_WITH(fallocate(ro, 0, 0, (off_t)size * 2), EBADF);
        FAILS_WITH(fcntl(ro, F_ADD_SEALS, F_SEAL_SEAL), EPERM);
        FAILS_WITH(fcntl(ro, F_ADD_SEALS, 0), EPERM);

        /* --- around the file: the process's own address space */
        pm = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
        TU_CHILD_CHECK(pm >= 0);
        FAILS_WITH(pwrite(pm, junk, sizeof(junk), (off_t)(uintptr_t)(shared + 4096)), EIO);
        close(pm);
        {
                struct iovec local = { (void *)junk, sizeof(junk) };
                struct iovec remote = { shared + 4096, sizeof(junk) };
                FAILS_WITH(process_vm_writev(getpid(), &local, 1, &remote, 1, 0), EFAULT);
        }

        /* --- a read-write description, reopened by path */
        rw = reopen(ro, O_RDWR);
        if (!may_open_rw(&st)) {
                TU_CHILD_CHECK(rw < 0 && errno == EACCES);
        } else {
                TU_CHILD_CHECK(rw >= 0);
                MMAP_FAILS_WITH(mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0), EPERM);
                FAILS_WITH(write(rw, junk, sizeof(junk)), EPERM);
                FAILS_WITH(pwrite(rw, junk, sizeof(junk), 4096), EPERM);
                FAILS_WITH(ftruncate(rw, 4096), EPERM);
                FAILS_WITH(ftruncate(rw, (off_t)size * 2), EPERM);
                FAILS_WITH(fallocate(rw, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 4096), EPERM);
                FAILS_WITH(fallocate(rw, 0, 0, (off_t)size * 2), EPERM);
                FAILS_WITH(fallocate(rw, FALLOC_FL_KEEP_SIZE, (off_t)size, 4096), EPERM);
                FAILS_WITH(fcntl(rw, F_ADD_SEALS, 0), EPERM);
                FAILS_WITH(fcntl(rw, F_ADD_SEALS, F_SEAL_SEAL), EPERM);
                FAILS_WITH(fcntl(rw, F_ADD_SEALS, F_SEAL_FUTURE_WRITE), EPERM);
                r2 = mmap(NULL, size, PROT_READ, MAP_SHARED, rw, 0);
                TU_CHILD_CHECK(r2 != MAP_FAILED);
                FAILS_WITH(mprotect(r2, size, PROT_READ | PROT_WRITE), EACCES);
                munmap(r2, size);
                if (seals & F_SEAL_EXEC)
                        FAILS_WITH(fchmod(rw, 0755), EPERM);
                TU_CHILD_CHECK(fcntl(rw, F_GET_SEALS) == seals);
                close(rw);
        }

        /* --- /proc/self/map_files: another read-write open (needs
         *     CAP_SYS_ADMIN), the seals stop it just the same */
        snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx",
                 (unsigned long)(uintptr_t)shared,
                 (unsigned long)(uintptr_t)(shared + size));
        rw = open(path, O_RDWR | O_CLOEXEC);
        if (rw < 0) {
                TU_CHILD_CHECK(errno == EPERM || errno == EACCES);
        } else {
                FAILS_WITH(pwrite(rw, junk, sizeof(junk), 4096), EPERM);
                MMAP_FAILS_WITH(mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0), EPERM);
                close(rw);
        }

        /* --- a private copy is writable and stays private */
        priv = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, ro, 0);
        TU_CHILD_CHECK(priv != MAP_FAILED);
        memset(priv, 0xa5, size);
        TU_CHILD_CHECK(priv[4096] == 0xa5 && priv[size - 1] == 0xa5);
        TU_CHILD_CHECK(tu_fnv1a64(shared, size) == before);
        munmap(priv, size);

        after = fd_fnv(ro, NULL);
        TU_CHILD_CHECK(after == before);
        TU_CHILD_CHECK(tu_fnv1a64(shared, size) == before);
        munmap(shared, size);
        return 0;
}

/* Every mapping of the segment (inode @ino) in this process, the library's
 * own read-only mirror included, refuses to become writable.  Returns 0 or
 * the failing line; *n gets how many mappings were tried. */
static int attack_own_mappings(ino_t ino, int *n) {
        char line[512];
        FILE *f = fopen("/proc/self/maps", "re");

        TU_CHILD_CHECK(f);
        *n = 0;
        while (fgets(line, sizeof(line), f)) {
                unsigned long start, end, off, node;
                char perms[8];
                unsigned maj, min;

                if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu", &start, &end, perms,
                           &off, &maj, &min, &node) != 7 || node != (unsigned long)ino)
                        continue;
                TU_CHILD_CHECK(perms[1] == '-');  /* nothing writable exists */
                TU_CHILD_CHECK(perms[3] == 's');
                if (mprotect((void *)start, end - start, PROT_READ | PROT_WRITE) == 0 ||
                    errno != EACCES) {
                        fclose(f);
                        TU_CHILD_CHECK(!"mprotect(PROT_WRITE) of a sealed mapping");
                }
                (*n)++;
        }
        fclose(f);
        return 0;
}

/* ------------------------------------------- a writer and a reader child */

/* What each child of a duo gets: its socket to the other child, its own
 * socket to the test process, and (the writer) the seal policy to use. */
struct duo_ctx {
        int peer;
        int parent;
        sgl_seal_policy policy;
};

/* Forks @writer (pids[0]) and @reader (pids[1]), each with its struct
 * duo_ctx; the test process's ends of their parent sockets go to
 * *@to_writer and *@to_reader.  Asserts. */
static void start_duo(tu_child_fn writer, tu_child_fn reader, sgl_seal_policy policy,
                      pid_t pids[2], int *to_writer, int *to_reader) {
        struct duo_ctx wctx, rctx;
        int wr[2], pw[2], pr[2];

        tu_socketpair(wr);
        tu_socketpair(pw);
        tu_socketpair(pr);
        wctx = (struct duo_ctx) { .peer = wr[0], .parent = pw[1], .policy = policy };
        rctx = (struct duo_ctx) { .peer = wr[1], .parent = pr[1] };
        pids[0] = tu_fork(writer, &wctx);
        pids[1] = tu_fork(reader, &rctx);
        close(wr[0]);
        close(wr[1]);
        close(pw[1]);
        close(pr[1]);
        *to_writer = pw[0];
        *to_reader = pr[0];
}

/* ------------------------------------------- hostile writer, main case */

static int hostile_writer_main(void *userdata) {
        struct duo_ctx *ctx = userdata;
        struct seg_cap cap = { 0 };
        sgl_writer_stats st;
        sgl_writer *w = NULL;
        struct hmsg m;
        struct stat fst;
        uint64_t before, after, size;
        void *ptr;
        int i, r, n;

        TU_CHILD_CHECK(sgl_writer_new("hostile", 0, &w) == 0);
        sgl_writer_set_segment_fn(w, cap_fn, &cap);
        if (ctx->policy == SGL_SEAL_BYTES) {
                TU_CHILD_CHECK(sgl_writer_set_seal_policy(w, SGL_SEAL_BYTES, 1 << 20) == 0);
                TU_CHILD_CHECK(sgl_writer_set_segment_size(w, 256 * 1024) == 0);
        }
        TU_CHILD_CHECK(sgl_writer_alloc(w, CHUNK_ID, 0, CHUNK_SIZE, &ptr, NULL) == 0);
        tu_fill_pattern(ptr, CHUNK_SIZE, CHUNK_SEED);
        TU_CHILD_CHECK(sgl_writer_commit(w) == 0);

        if (ctx->policy == SGL_SEAL_BYTES) {
                /* still open: only TRUSTED readers may be told */
                TU_CHILD_CHECK(cap.n == 1 && cap.e[0].ev == SGL_SEGMENT_OPENED);
                /* the writer's own stray write into a committed page of its
                 * read-write mapping faults (mirror protection covers the
                 * whole pages below the one holding commit_end, in runs of
                 * 64 KiB: after 68 KiB more of commits the chunk's second
                 * page is one, its first shares page 0 with the header) */
                for (uint64_t f = 0; f < 17; f++) {
                        void *fill;

                        TU_CHILD_CHECK(sgl_writer_alloc(w, CHUNK_ID + 100 + f, 0, 4096, &fill,
                                                        NULL) == 0);
                        memset(fill, 0x5a, 4096);
                        TU_CHILD_CHECK(sgl_writer_commit(w) == 0);
                }
                TU_CHILD_CHECK(stray_write_faults((volatile uint8_t *)ptr + 4096) == 1);
                TU_CHILD_CHECK(sgl_writer_seal(w) == 0);
                TU_CHILD_CHECK(sgl_writer_get_stats(w, &st) == 0);
                TU_CHILD_CHECK(st.seals == 1 && st.seal_copies == 0);
        }
        TU_CHILD_CHECK(!cap.overflow);
        i = cap_last(&cap, SGL_SEGMENT_SEALED);
        TU_CHILD_CHECK(i >= 0 && cap.e[i].fd >= 0);
        TU_CHILD_CHECK(hsend(ctx->peer, H_SEG, cap.e[i].seq, SGL_SEGMENT_SEALED,
                             cap.e[i].fd) == 0);

        /* the reader has checksummed the chunk: now turn hostile */
        TU_CHILD_CHECK(hrecv(ctx->parent, H_GO, &m, NULL) == 0);
        before = fd_fnv(cap.e[i].fd, &size);
        TU_CHILD_CHECK(fstat(cap.e[i].fd, &fst) == 0 && (uint64_t)fst.st_size == size);

        r = attack_sealed_fd(cap.e[i].fd, size);
        if (r)
                return r;
        r = attack_own_mappings(fst.st_ino, &n);
        if (r)
                return r;
        /* at least the library's read-only mirror; a one-shot segment
         * (SGL_SEAL_EVERY_COMMIT) is written by pwrite and sealed without
         * the writer ever mapping it: nothing of it to attack there */
        if (ctx->policy == SGL_SEAL_EVERY_COMMIT)
                TU_CHILD_CHECK(n == 0);
        else
                TU_CHILD_CHECK(n >= 1);

        after = fd_fnv(cap.e[i].fd, NULL);
        TU_CHILD_CHECK(hsend(ctx->parent, H_DONE, before, after, -1) == 0);
        cap_close(&cap);
        sgl_writer_unref(w);
        return 0;
}

static int strict_reader_main(void *userdata) {
        struct duo_ctx *ctx = userdata;
        const uint64_t want = pattern_fnv(CHUNK_SIZE, CHUNK_SEED);
        sgl_chunk *c = NULL, *c2 = NULL, *c3 = NULL;
        sgl_reader *r = NULL;
        struct hmsg m;
        uint64_t h, version;
        int fd;

        TU_CHILD_CHECK(sgl_reader_new(0, &r) == 0);
        TU_CHILD_CHECK(hrecv(ctx->peer, H_SEG, &m, &fd) == 0 && fd >= 0);
        TU_CHILD_CHECK(m.b == SGL_SEGMENT_SEALED);
        TU_CHILD_CHECK(sgl_reader_add_segment_consume_fd(r, fd) == 0);
        TU_CHILD_CHECK(sgl_reader_get_segment_count(r) == 1);
        TU_CHILD_CHECK(sgl_reader_get(r, CHUNK_ID, &c) == 0);
        TU_CHILD_CHECK(sgl_chunk_size(c) == CHUNK_SIZE);
        h = tu_fnv1a64(sgl_chunk_data(c), CHUNK_SIZE);
        TU_CHILD_CHECK(h == want);
        version = sgl_chunk_version(c);
        TU_CHILD_CHECK(hsend(ctx->parent, H_SUM, h, version, -1) == 0);

        /* the writer attacks now; wait until it is done */
        TU_CHILD_CHECK(hrecv(ctx->parent, H_GO, &m, NULL) == 0);

        /* the bytes we hold ... */
        h = tu_fnv1a64(sgl_chunk_data(c), CHUNK_SIZE);
        TU_CHILD_CHECK(h == want);
        /* ... and what a fresh lookup and the stream give */
        TU_CHILD_CHECK(sgl_reader_get(r, CHUNK_ID, &c2) == 0);
        TU_CHILD_CHECK(sgl_chunk_version(c2) == version);
        TU_CHILD_CHECK(chunk_is(c2, CHUNK_ID, CHUNK_SIZE, CHUNK_SEED));
        TU_CHILD_CHECK(sgl_reader_next(r, &c3) == 0);
        TU_CHILD_CHECK(chunk_is(c3, CHUNK_ID, CHUNK_SIZE, CHUNK_SEED));
        TU_CHILD_CHECK(hsend(ctx->parent, H_RESULT, h,
                             tu_fnv1a64(sgl_chunk_data(c2), CHUNK_SIZE), -1) == 0);
        sgl_chunk_unref(c3);
        sgl_chunk_unref(c2);
        sgl_chunk_unref(c);
        sgl_reader_unref(r);
        return 0;
}

static void run_hostile_writer(sgl_seal_policy policy) {
        const uint64_t want = pattern_fnv(CHUNK_SIZE, CHUNK_SEED);
        unsigned fds_before = tu_count_fds();
        int to_writer, to_reader;
        struct hmsg m;
        pid_t pids[2];

        start_duo(hostile_writer_main, strict_reader_main, policy, pids, &to_writer, &to_reader);

        /* the STRICT reader took the chunk: the bytes are what was written */
        parent_recv(to_reader, H_SUM, &m, NULL, pids, 2);
        assert_int_equal(m.a, want);
        assert_true(m.b >= 1);

        /* the writer turns hostile; every attempt failed as the kernel says */
        assert_int_equal(hsend(to_writer, H_GO, 0, 0, -1), 0);
        parent_recv(to_writer, H_DONE, &m, NULL, pids, 2);
        assert_int_equal(m.a, m.b);

        /* the reader still sees the same bytes */
        assert_int_equal(hsend(to_reader, H_GO, 0, 0, -1), 0);
        parent_recv(to_reader, H_RESULT, &m, NULL, pids, 2);
        assert_int_equal(m.a, want);
        assert_int_equal(m.b, want);

        wait_children(pids, 2);
        close(to_writer);
        close(to_reader);
        assert_int_equal(tu_count_fds(), fds_before);
}

static void hostile_writer_every_commit(void **state) {
        (void)state;
        run_hostile_writer(SGL_SEAL_EVERY_COMMIT);
}

static void hostile_writer_seal_bytes(void **state) {
        (void)state;
        run_hostile_writer(SGL_SEAL_BYTES);
}

/* ------------------------------------------------------- stray writes */

/* Hands the last @ev segment of @cap to a new reader (@flags); asserts. */
static sgl_reader *reader_with(struct seg_cap *cap, sgl_segment_event ev, unsigned flags) {
        sgl_reader *r = NULL;
        int i = cap_last(cap, ev);

        assert_true(i >= 0);
        assert_int_equal(sgl_reader_new(flags, &r), 0);
        assert_int_equal(sgl_reader_add_segment_consume_fd(r, fcntl(cap->e[i].fd, F_DUPFD_CLOEXEC, 3)), 0);
        return r;
}

static void run_stray_write(unsigned writer_flags) {
        const bool protect = !(writer_flags & SGL_WRITER_NO_MIRROR_PROTECT);
        unsigned fds_before = tu_count_fds();
        struct seg_cap cap = { 0 };
        sgl_reader *trusted, *strict;
        sgl_chunk *c = NULL;
        sgl_writer *w = NULL;
        uint8_t *expect;
        uint8_t *ptr;

        expect = malloc(CHUNK_SIZE);
        assert_non_null(expect);
        tu_fill_pattern(expect, CHUNK_SIZE, CHUNK_SEED);

        assert_int_equal(sgl_writer_new("stray", writer_flags, &w), 0);
        sgl_writer_set_segment_fn(w, cap_fn, &cap);
        assert_int_equal(sgl_writer_set_seal_policy(w, SGL_SEAL_BYTES, 1 << 20), 0);
        assert_int_equal(sgl_writer_set_segment_size(w, 256 * 1024), 0);
        assert_int_equal(sgl_writer_write(w, CHUNK_ID, 0, expect, CHUNK_SIZE, NULL), 0);
        assert_int_equal(sgl_writer_commit(w), 0);
        /* a pointer the writer got before committing, kept by mistake */
        assert_int_equal(sgl_writer_alloc(w, CHUNK_ID + 1, 0, 64, (void **)&ptr, NULL), 0);
        memset(ptr, 1, 64);
        assert_int_equal(sgl_writer_commit(w), 0);
        /* commits are packed and protection covers whole pages below the
         * page holding commit_end, in runs of 64 KiB: a further 64 KiB and
         * a page of commits puts ptr's page below it */
        for (uint64_t i = 0; i < 17; i++) {
                assert_int_equal(sgl_writer_write(w, CHUNK_ID + 2 + i, 0, expect, 4096, NULL), 0);
                assert_int_equal(sgl_writer_commit(w), 0);
        }

        /* with protection the write faults; without (self-protection
         * only, and switched off) it lands */
        assert_int_equal(stray_write_faults(ptr + 10), protect ? 1 : 0);

        /* what a TRUSTED reader of the open segment sees now */
        trusted = reader_with(&cap, SGL_SEGMENT_OPENED, SGL_READER_TRUSTED);
        assert_int_equal(sgl_reader_get(trusted, CHUNK_ID + 1, &c), 0);
        assert_int_equal(sgl_chunk_size(c), 64);
        assert_int_equal(((const uint8_t *)sgl_chunk_data(c))[10], protect ? 1 : 1 ^ 0xff);
        c = sgl_chunk_unref(c);
        assert_int_equal(sgl_reader_get(trusted, CHUNK_ID, &c), 0);
        assert_memory_equal(sgl_chunk_data(c), expect, CHUNK_SIZE);
        c = sgl_chunk_unref(c);

        /* the seal freezes whatever the open segment held */
        assert_int_equal(sgl_writer_seal(w), 0);
        strict = reader_with(&cap, SGL_SEGMENT_SEALED, 0);
        assert_int_equal(sgl_reader_get(strict, CHUNK_ID + 1, &c), 0);
        assert_int_equal(((const uint8_t *)sgl_chunk_data(c))[10], protect ? 1 : 1 ^ 0xff);
        c = sgl_chunk_unref(c);
        assert_int_equal(sgl_reader_get(strict, CHUNK_ID, &c), 0);
        assert_memory_equal(sgl_chunk_data(c), expect, CHUNK_SIZE);
        sgl_chunk_unref(c);

        sgl_reader_unref(strict);
        sgl_reader_unref(trusted);
        cap_close(&cap);
        sgl_writer_unref(w);
        free(expect);
        assert_int_equal(tu_count_fds(), fds_before);
}

/* Mirror protection on (the default): a stray write into a committed page
 * of the writer's own mapping dies of SIGSEGV and changes nothing. */
static void stray_write_faults_with_mirror_protect(void **state) {
        (void)state;
        run_stray_write(0);
}

/* SGL_WRITER_NO_MIRROR_PROTECT: the same write does not fault and changes
 * the open segment.  This is why mirror protection is documented as
 * self-protection only: a writer controls its own page tables. */
static void stray_write_lands_without_mirror_protect(void **state) {
        (void)state;
        run_stray_write(SGL_WRITER_NO_MIRROR_PROTECT);
}

/* ------------------------------------------ unsealed segments rejected */

/* A copy of @size bytes at @buf in a new memfd sealed with @seals; with
 * @keep_map the caller gets a writable shared mapping of it made before
 * sealing.  Returns the read-write descriptor or -errno. */
static int craft_memfd(const void *buf, uint64_t size, int seals, void **keep_map) {
        int fd = memfd_create("sigillo-crafted", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);

        if (fd < 0 && errno == EINVAL) {
                fd = memfd_create("sigillo-crafted", MFD_CLOEXEC | MFD_ALLOW_SEALING);
                if (fd >= 0 && fchmod(fd, 0600) < 0)
                        goto fail;
        }
        if (fd < 0)
                return -errno;
        if (ftruncate(fd, (off_t)size) < 0 || fallocate(fd, 0, 0, (off_t)size) < 0 ||
            pwrite(fd, buf, size, 0) != (ssize_t)size)
                goto fail;
        if (keep_map) {
                *keep_map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                if (*keep_map == MAP_FAILED)
                        goto fail;
        }
        if (fcntl(fd, F_ADD_SEALS, seals) < 0)
                goto fail;
        return fd;
fail:
        close(fd);
        return -EIO;
}

/* The writer side: an open segment, a FUTURE_WRITE-only copy, a copy the
 * writer keeps a writable mapping of, then a write-sealed copy. */
static int unsealed_writer_main(void *userdata) {
        struct sock_ctx *ctx = userdata;
        struct seg_cap cap = { 0 };
        sgl_writer *w = NULL;
        struct hmsg m;
        struct stat st;
        uint8_t *bytes;
        void *map = NULL;
        int fw, wm, good, ro, seals;

        TU_CHILD_CHECK(sgl_writer_new("unsealed", 0, &w) == 0);
        sgl_writer_set_segment_fn(w, cap_fn, &cap);
        TU_CHILD_CHECK(sgl_writer_set_seal_policy(w, SGL_SEAL_BYTES, 1 << 20) == 0);
        TU_CHILD_CHECK(sgl_writer_set_segment_size(w, 64 * 1024) == 0);
        {
                void *p;
                TU_CHILD_CHECK(sgl_writer_alloc(w, CHUNK_ID, 0, CHUNK_SIZE, &p, NULL) == 0);
                tu_fill_pattern(p, CHUNK_SIZE, CHUNK_SEED);
        }
        TU_CHILD_CHECK(sgl_writer_commit(w) == 0);
        TU_CHILD_CHECK(cap.n == 1 && cap.e[0].ev == SGL_SEGMENT_OPENED);

        /* (a) the open segment as announced: FUTURE_WRITE, no WRITE */
        seals = fcntl(cap.e[0].fd, F_GET_SEALS);
        TU_CHILD_CHECK(seals >= 0 && (seals & F_SEAL_FUTURE_WRITE) && !(seals & F_SEAL_WRITE));
        TU_CHILD_CHECK(hsend(ctx->sock, H_SEG, cap.e[0].seq, 'a', cap.e[0].fd) == 0);
        TU_CHILD_CHECK(hrecv(ctx->sock, H_RESULT, &m, NULL) == 0 && m.a == 'a');

        /* its bytes, to make valid-looking copies of */
        TU_CHILD_CHECK(fstat(cap.e[0].fd, &st) == 0);
        bytes = malloc((size_t)st.st_size);
        TU_CHILD_CHECK(bytes);
        TU_CHILD_CHECK(pread(cap.e[0].fd, bytes, (size_t)st.st_size, 0) == st.st_size);

        /* (b) F_SEAL_FUTURE_WRITE but not F_SEAL_WRITE, nobody maps it */
        fw = craft_memfd(bytes, (uint64_t)st.st_size,
                         F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE, NULL);
        TU_CHILD_CHECK(fw >= 0);
        seals = fcntl(fw, F_GET_SEALS);
        TU_CHILD_CHECK(seals == (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE) ||
                       seals == (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_EXEC));
        ro = reopen(fw, O_RDONLY);
        TU_CHILD_CHECK(ro >= 0);
        TU_CHILD_CHECK(hsend(ctx->sock, H_SEG, cap.e[0].seq, 'b', ro) == 0);
        close(ro);
        TU_CHILD_CHECK(hrecv(ctx->sock, H_RESULT, &m, NULL) == 0 && m.a == 'b');

        /* (c) a memfd the writer keeps a writable shared mapping of: it
         *     cannot even be write-sealed while that mapping exists */
        wm = craft_memfd(bytes, (uint64_t)st.st_size, F_SEAL_SHRINK | F_SEAL_GROW, &map);
        TU_CHILD_CHECK(wm >= 0);
        FAILS_WITH(fcntl(wm, F_ADD_SEALS, F_SEAL_WRITE), EBUSY);
        ro = reopen(wm, O_RDONLY);
        TU_CHILD_CHECK(ro >= 0);
        TU_CHILD_CHECK(hsend(ctx->sock, H_SEG, cap.e[0].seq, 'c', ro) == 0);
        close(ro);
        TU_CHILD_CHECK(hrecv(ctx->sock, H_RESULT, &m, NULL) == 0 && m.a == 'c');
        /* (and it could have changed the bytes at any time) */
        ((uint8_t *)map)[4096] ^= 0xff;

        /* (d) the same bytes, write-sealed: accepted */
        good = craft_memfd(bytes, (uint64_t)st.st_size,
                           F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL, NULL);
        TU_CHILD_CHECK(good >= 0);
        ro = reopen(good, O_RDONLY);
        TU_CHILD_CHECK(ro >= 0);
        TU_CHILD_CHECK(hsend(ctx->sock, H_SEG, cap.e[0].seq, 'd', ro) == 0);
        close(ro);
        TU_CHILD_CHECK(hrecv(ctx->sock, H_RESULT, &m, NULL) == 0 && m.a == 'd');

        munmap(map, (size_t)st.st_size);
        close(fw);
        close(wm);
        close(good);
        free(bytes);
        cap_close(&cap);
        sgl_writer_unref(w);
        return 0;
}

static int unsealed_reader_main(void *userdata) {
        struct sock_ctx *ctx = userdata;
        sgl_reader *r = NULL;
        sgl_chunk *c = NULL;
        struct hmsg m;
        int fd;

        TU_CHILD_CHECK(sgl_reader_new(0, &r) == 0);
        for (int k = 'a'; k <= 'c'; k++) {
                unsigned fds;
                int maps;

                TU_CHILD_CHECK(hrecv(ctx->sock, H_SEG, &m, &fd) == 0 && fd >= 0);
                TU_CHILD_CHECK(m.b == (uint64_t)k);
                fds = tu_count_fds();
                maps = count_sigillo_maps();
                TU_CHILD_CHECK(sgl_reader_add_segment_consume_fd(r, fd) == -EACCES);
                /* nothing mapped, the descriptor consumed */
                TU_CHILD_CHECK(sgl_reader_get_segment_count(r) == 0);
                TU_CHILD_CHECK(count_sigillo_maps() == maps);
                TU_CHILD_CHECK(tu_count_fds() == fds - 1);
                TU_CHILD_CHECK(sgl_reader_get(r, CHUNK_ID, &c) == -ENOENT);
                TU_CHILD_CHECK(sgl_reader_next(r, &c) == -EAGAIN);
                TU_CHILD_CHECK(hsend(ctx->sock, H_RESULT, (uint64_t)k, 0, -1) == 0);
        }

        /* the write-sealed copy of the same bytes is a valid segment */
        TU_CHILD_CHECK(hrecv(ctx->sock, H_SEG, &m, &fd) == 0 && fd >= 0 && m.b == 'd');
        TU_CHILD_CHECK(sgl_reader_add_segment_consume_fd(r, fd) == 0);
        TU_CHILD_CHECK(sgl_reader_get_segment_count(r) == 1);
        TU_CHILD_CHECK(sgl_reader_get(r, CHUNK_ID, &c) == 0);
        TU_CHILD_CHECK(chunk_is(c, CHUNK_ID, CHUNK_SIZE, CHUNK_SEED));
        TU_CHILD_CHECK(hsend(ctx->sock, H_RESULT, 'd', 0, -1) == 0);
        sgl_chunk_unref(c);
        sgl_reader_unref(r);
        return 0;
}

static void strict_rejects_unsealed(void **state) {
        unsigned fds_before = tu_count_fds();

        (void)state;
        run_pair(unsealed_writer_main, unsealed_reader_main);
        assert_int_equal(tu_count_fds(), fds_before);
}

/* ------------------------------------------------- writer killed */

#define SEED_OF(id) (0x1000ULL + (id))
static const size_t killed_size[5] = { 0, 100, 5000, 9000, 300 };

/* Commits A(1), B(2), seals; commits C(3) in a new open segment; stages
 * D(4) and a new version of A, never commits them; then waits to be killed. */
static int killed_writer_main(void *userdata) {
        struct duo_ctx *ctx = userdata;
        struct seg_cap cap = { 0 };
        sgl_writer *w = NULL;
        struct hmsg m;
        void *p;
        int s, o;

        TU_CHILD_CHECK(sgl_writer_new("killed", 0, &w) == 0);
        sgl_writer_set_segment_fn(w, cap_fn, &cap);
        TU_CHILD_CHECK(sgl_writer_set_seal_policy(w, SGL_SEAL_BYTES, 1 << 20) == 0);
        TU_CHILD_CHECK(sgl_writer_set_segment_size(w, 256 * 1024) == 0);
        for (uint64_t id = 1; id <= 2; id++) {
                TU_CHILD_CHECK(sgl_writer_alloc(w, id, 0, killed_size[id], &p, NULL) == 0);
                tu_fill_pattern(p, killed_size[id], SEED_OF(id));
                TU_CHILD_CHECK(sgl_writer_commit(w) == 0);
        }
        TU_CHILD_CHECK(sgl_writer_seal(w) == 0);
        TU_CHILD_CHECK(sgl_writer_alloc(w, 3, 0, killed_size[3], &p, NULL) == 0);
        tu_fill_pattern(p, killed_size[3], SEED_OF(3));
        TU_CHILD_CHECK(sgl_writer_commit(w) == 0);

        s = cap_last(&cap, SGL_SEGMENT_SEALED);
        o = cap_last(&cap, SGL_SEGMENT_OPENED);
        TU_CHILD_CHECK(s >= 0 && o >= 0 && cap.e[o].seq > cap.e[s].seq);
        TU_CHILD_CHECK(hsend(ctx->peer, H_SEG, cap.e[s].seq, SGL_SEGMENT_SEALED, cap.e[s].fd) == 0);
        TU_CHILD_CHECK(hsend(ctx->peer, H_SEG, cap.e[o].seq, SGL_SEGMENT_OPENED, cap.e[o].fd) == 0);

        /* mid-way: a staged batch that is never committed */
        TU_CHILD_CHECK(sgl_writer_alloc(w, 4, 0, killed_size[4], &p, NULL) == 0);
        tu_fill_pattern(p, killed_size[4], SEED_OF(4));
        TU_CHILD_CHECK(sgl_writer_alloc(w, 1, 0, killed_size[1], &p, NULL) == 0);
        memset(p, 0xee, killed_size[1]);

        TU_CHILD_CHECK(hsend(ctx->parent, H_READY, 0, 0, -1) == 0);
        (void)hrecv(ctx->parent, H_GO, &m, NULL); /* killed while waiting */
        return 99; /* never reached */
}

/* Stream every chunk of @r; returns how many, or -1 if one is not exact. */
static int drain_exact(sgl_reader *r) {
        sgl_chunk *c = NULL;
        int n = 0;

        while (sgl_reader_next(r, &c) == 0) {
                uint64_t id = sgl_chunk_id(c);
                bool ok = id >= 1 && id <= 4 && chunk_is(c, id, killed_size[id], SEED_OF(id));

                sgl_chunk_unref(c);
                if (!ok)
                        return -1;
                n++;
        }
        return n;
}

static int killed_reader_main(void *userdata) {
        struct duo_ctx *ctx = userdata;
        sgl_reader *strict = NULL, *trusted = NULL;
        sgl_chunk *c = NULL;
        struct hmsg m;
        int sealed_fd, open_fd;

        TU_CHILD_CHECK(hrecv(ctx->peer, H_SEG, &m, &sealed_fd) == 0 && sealed_fd >= 0);
        TU_CHILD_CHECK(m.b == SGL_SEGMENT_SEALED);
        TU_CHILD_CHECK(hrecv(ctx->peer, H_SEG, &m, &open_fd) == 0 && open_fd >= 0);
        TU_CHILD_CHECK(m.b == SGL_SEGMENT_OPENED);
        TU_CHILD_CHECK(sgl_reader_new(0, &strict) == 0);
        TU_CHILD_CHECK(sgl_reader_new(SGL_READER_TRUSTED, &trusted) == 0);
        TU_CHILD_CHECK(sgl_reader_add_segment_consume_fd(trusted, fcntl(sealed_fd, F_DUPFD_CLOEXEC, 3)) == 0);
        TU_CHILD_CHECK(sgl_reader_add_segment_consume_fd(trusted, fcntl(open_fd, F_DUPFD_CLOEXEC, 3)) == 0);
        TU_CHILD_CHECK(sgl_reader_add_segment_consume_fd(strict, sealed_fd) == 0);
        TU_CHILD_CHECK(sgl_reader_add_segment_consume_fd(strict, open_fd) == -EACCES);

        /* the writer is dead now */
        TU_CHILD_CHECK(hrecv(ctx->parent, H_GO, &m, NULL) == 0);

        for (uint64_t id = 1; id <= 2; id++) {
                TU_CHILD_CHECK(sgl_reader_get(strict, id, &c) == 0);
                TU_CHILD_CHECK(chunk_is(c, id, killed_size[id], SEED_OF(id)));
                c = sgl_chunk_unref(c);
        }
        TU_CHILD_CHECK(sgl_reader_get(strict, 3, &c) == -ENOENT);
        TU_CHILD_CHECK(sgl_reader_get(strict, 4, &c) == -ENOENT);
        TU_CHILD_CHECK(drain_exact(strict) == 2);

        for (uint64_t id = 1; id <= 3; id++) {
                TU_CHILD_CHECK(sgl_reader_get(trusted, id, &c) == 0);
                TU_CHILD_CHECK(chunk_is(c, id, killed_size[id], SEED_OF(id)));
                c = sgl_chunk_unref(c);
        }
        TU_CHILD_CHECK(sgl_reader_get(trusted, 4, &c) == -ENOENT);
        TU_CHILD_CHECK(drain_exact(trusted) == 3);

        TU_CHILD_CHECK(hsend(ctx->parent, H_RESULT, 0, 0, -1) == 0);
        sgl_reader_unref(strict);
        sgl_reader_unref(trusted);
        return 0;
}

static void writer_killed_after_commit(void **state) {
        unsigned fds_before = tu_count_fds();
        int to_writer, to_reader, status;
        struct hmsg m;
        pid_t pids[2];

        (void)state;
        /* (the killed writer sets SGL_SEAL_BYTES itself) */
        start_duo(killed_writer_main, killed_reader_main, SGL_SEAL_BYTES, pids,
                  &to_writer, &to_reader);

        parent_recv(to_writer, H_READY, &m, NULL, pids, 2);
        assert_int_equal(kill(pids[0], SIGKILL), 0);
        status = tu_wait_status(pids[0]);
        pids[0] = 0;
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGKILL);

        assert_int_equal(hsend(to_reader, H_GO, 0, 0, -1), 0);
        parent_recv(to_reader, H_RESULT, &m, NULL, pids, 2);
        wait_children(pids, 2);
        close(to_writer);
        close(to_reader);
        assert_int_equal(tu_count_fds(), fds_before);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(hostile_writer_every_commit),
                cmocka_unit_test(hostile_writer_seal_bytes),
                cmocka_unit_test(stray_write_faults_with_mirror_protect),
                cmocka_unit_test(stray_write_lands_without_mirror_protect),
                cmocka_unit_test(strict_rejects_unsealed),
                cmocka_unit_test(writer_killed_after_commit),
        };

        /* a child that fails must not take us down with SIGPIPE */
        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
