/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-ptrace.h - a child process run under ptrace, for the tests that stop
 * a writer at every instruction or every system call of an operation
 * (test-interleave, test-crash); never installed, never linked into the
 * library.
 *
 * Owns: forking a tracee, the markers by which the tracee brackets the
 * operation to be stepped (a SIGSTOP it raises itself), stepping it one
 * instruction (PTRACE_SINGLESTEP) or one system-call stop (PTRACE_SYSCALL)
 * at a time, and killing it.
 *
 * Every function here runs in the test process (the tracer) and asserts,
 * except tp_mark(), which the tracee calls.  A tracer that fails leaves
 * the tracee to PTRACE_O_EXITKILL: it dies with the test process.
 */
#ifndef SGL_TEST_PTRACE_H
#define SGL_TEST_PTRACE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "test-util.h"

/* What a step ended with. */
enum {
        TP_STEP = 1, /* stopped after one instruction, or at a syscall stop */
        TP_MARK,     /* reached the tracee's next tp_mark() */
        TP_EXIT,     /* the tracee exited (tp_step()'s *@status) */
};

/* How to step: one instruction, or up to the next syscall entry or exit. */
enum {
        TP_INSN = 1,
        TP_SYSCALL,
};

/* Whether this process may trace its children (seccomp or Yama's scope 3
 * may forbid it): a test calls skip() otherwise, before it sets up
 * anything.  Asserts. */
bool tp_available(void);

/*
 * tp_spawn() - forks @fn(@userdata) as a tracee (PTRACE_TRACEME, then
 * stopped until the tracer has set PTRACE_O_EXITKILL and
 * PTRACE_O_TRACESYSGOOD) and lets it run up to its first tp_mark().
 * Returns its pid; it exits with @fn's return value (tu_fork()).  Skips
 * the test where ptrace is not allowed.  Asserts.
 */
pid_t tp_spawn(tu_child_fn fn, void *userdata);

/* In the tracee: a point the tracer stops at (a SIGSTOP it never sees
 * delivered).  Safe to call untraced: then it does nothing. */
void tp_mark(void);

/* Resumes the tracee up to its next tp_mark(): true there, false when it
 * exited (its status in *@status, may be NULL).  Asserts. */
bool tp_cont(pid_t pid, int *status);

/* Resumes the tracee and returns at once, so that the tracer can talk to
 * it; tp_wait_mark() then waits for its next tp_mark() (true) or its end
 * (false, status in *@status, may be NULL).  Both assert. */
void tp_run(pid_t pid);
bool tp_wait_mark(pid_t pid, int *status);

/*
 * tp_step() - resumes the tracee for one instruction (TP_INSN) or up to its
 * next syscall-entry or syscall-exit stop (TP_SYSCALL).  Returns TP_STEP,
 * TP_MARK (it reached tp_mark() instead) or TP_EXIT (status in *@status,
 * may be NULL).  Other signals it gets are passed on.  Asserts.
 */
int tp_step(pid_t pid, int how, int *status);

/* SIGKILLs the (stopped or running) tracee and reaps it; asserts it died
 * of the signal. */
void tp_kill(pid_t pid);

#endif
