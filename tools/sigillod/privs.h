/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * privs.h - what sigillod gives up before it serves anyone: a larger
 * RLIMIT_NOFILE first (it holds every area's descriptors), then every
 * capability and the right to gain new privileges.  See privs.c.
 */
#ifndef SGL_PRIVS_H
#define SGL_PRIVS_H

#include <sys/resource.h>

/*
 * sgl_privs_drop() - raise RLIMIT_NOFILE, then drop every capability.
 * @want_nofile: 0 raises the soft limit to the hard one; otherwise the soft
 *               limit becomes @want_nofile, and if that exceeds the hard
 *               limit both are raised to it while CAP_SYS_RESOURCE still
 *               allows (else the soft limit goes to the hard one).  A limit
 *               is never lowered.
 *
 * Then, if the thread has any capability (permitted, effective,
 * inheritable or ambient), it drops them all: the ambient set, the bounding
 * set (needs CAP_SETPCAP, so only where allowed), then effective, permitted
 * and inheritable (libcap).  Last, PR_SET_NO_NEW_PRIVS, always: no execve()
 * can give any of it back.  Capabilities belong to a thread: call it before
 * starting any.
 *
 * Return: 0, or -errno of the step that failed (-EPERM if a capability is
 * still there afterwards).  RLIMIT_NOFILE failures are not errors: the
 * daemon still works with fewer descriptors.
 */
int sgl_privs_drop(rlim_t want_nofile);

#endif
