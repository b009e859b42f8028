/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-ptrace.c - a tracee stepped by the test process (test-ptrace.h).
 *
 * The tracee brackets what is to be stepped with tp_mark(): a SIGSTOP it
 * raises itself, which the tracer sees as a signal-delivery stop and
 * suppresses when it resumes.  Stepping uses the single-step trap (SIGTRAP)
 * or syscall stops (SIGTRAP | 0x80 with PTRACE_O_TRACESYSGOOD), so neither
 * can be mistaken for a marker.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test-ptrace.h"

/* the exit code of a child that may not be traced */
#define TP_NO_PTRACE 99

struct tp_spawn_ctx {
        tu_child_fn fn;
        void *userdata;
};

static bool tp_traced;
/* a signal the tracee got while stopped at, passed on with the next resume */
static int tp_pending;

void tp_mark(void) {
        if (tp_traced)
                raise(SIGSTOP);
}

static int tp_child(void *userdata) {
        const struct tp_spawn_ctx *ctx = userdata;

        if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0)
                return TP_NO_PTRACE;
        tp_traced = true;
        /* wait here for the tracer's options */
        raise(SIGSTOP);
        return ctx->fn(ctx->userdata);
}

static int tp_probe(void *userdata) {
        (void)userdata;
        return ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0 ? TP_NO_PTRACE : 0;
}

bool tp_available(void) {
        int status = tu_wait_status(tu_fork(tp_probe, NULL));

        return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Waits for the next stop or the end of @pid; the raw status. */
static int tp_wait(pid_t pid) {
        int status;
        pid_t k;

        do
                k = waitpid(pid, &status, __WALL);
        while (k < 0 && errno == EINTR);
        assert_int_equal(k, pid);
        return status;
}

pid_t tp_spawn(tu_child_fn fn, void *userdata) {
        struct tp_spawn_ctx ctx = { .fn = fn, .userdata = userdata };
        pid_t pid = tu_fork(tp_child, &ctx);
        int status = tp_wait(pid);

        /* no ptrace here (seccomp, Yama scope 3): nothing to test with */
        if (WIFEXITED(status) && WEXITSTATUS(status) == TP_NO_PTRACE)
                skip();
        assert_true(WIFSTOPPED(status));
        assert_int_equal(WSTOPSIG(status), SIGSTOP);
        assert_int_equal(ptrace(PTRACE_SETOPTIONS, pid, NULL,
                                (void *)(long)(PTRACE_O_EXITKILL | PTRACE_O_TRACESYSGOOD)), 0);
        tp_pending = 0;
        assert_true(tp_cont(pid, NULL));
        return pid;
}

/* Resumes @pid with @req until a stop that is ours: TP_STEP, TP_MARK or
 * TP_EXIT.  With PTRACE_CONT, a syscall or step trap cannot happen. */
static int tp_resume(pid_t pid, enum __ptrace_request req, int *ret_status) {
        for (;;) {
                int status, sig = tp_pending;

                tp_pending = 0;
                assert_int_equal(ptrace(req, pid, NULL, (void *)(long)sig), 0);
                status = tp_wait(pid);
                if (ret_status)
                        *ret_status = status;
                if (WIFEXITED(status) || WIFSIGNALED(status))
                        return TP_EXIT;
                assert_true(WIFSTOPPED(status));
                sig = WSTOPSIG(status);
                if (sig == SIGSTOP)
                        return TP_MARK;
                if (sig == SIGTRAP || sig == (SIGTRAP | 0x80))
                        return TP_STEP;
                /* anything else is the tracee's own business */
                tp_pending = sig;
                if (req != PTRACE_CONT)
                        return TP_STEP;
        }
}

void tp_run(pid_t pid) {
        int sig = tp_pending;

        tp_pending = 0;
        assert_int_equal(ptrace(PTRACE_CONT, pid, NULL, (void *)(long)sig), 0);
}

bool tp_wait_mark(pid_t pid, int *ret_status) {
        for (;;) {
                int status = tp_wait(pid), sig;

                if (ret_status)
                        *ret_status = status;
                if (WIFEXITED(status) || WIFSIGNALED(status))
                        return false;
                assert_true(WIFSTOPPED(status));
                sig = WSTOPSIG(status);
                if (sig == SIGSTOP)
                        return true;
                /* not ours: deliver it and wait on */
                assert_int_equal(ptrace(PTRACE_CONT, pid, NULL, (void *)(long)sig), 0);
        }
}

bool tp_cont(pid_t pid, int *status) {
        int k = tp_resume(pid, PTRACE_CONT, status);

        assert_int_not_equal(k, TP_STEP);
        return k == TP_MARK;
}

int tp_step(pid_t pid, int how, int *status) {
        return tp_resume(pid, how == TP_INSN ? PTRACE_SINGLESTEP : PTRACE_SYSCALL, status);
}

void tp_kill(pid_t pid) {
        int status;

        assert_int_equal(kill(pid, SIGKILL), 0);
        for (;;) {
                status = tp_wait(pid);
                if (WIFEXITED(status) || WIFSIGNALED(status))
                        break;
        }
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGKILL);
}
