/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * privs.c - raising RLIMIT_NOFILE and dropping capabilities (libcap) for
 * good.
 *
 * Owns: the order of the steps, which is what matters here.  The limit is
 * raised first, while CAP_SYS_RESOURCE may still lift the hard limit; the
 * bounding set is dropped while CAP_SETPCAP is still held (it is part of
 * what cap_set_proc() drops next); no_new_privs comes last and always, so
 * that even a process that had nothing to drop can never regain anything
 * through execve() of a setuid or file-capability binary.
 */
#include <errno.h>
#include <stdbool.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "internal.h"
#include "privs.h"

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

static void raise_nofile(rlim_t want) {
        struct rlimit rl;
        rlim_t target;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return;
        target = want ? want : rl.rlim_max;
        if (target > rl.rlim_max && rl.rlim_max != RLIM_INFINITY) {
                struct rlimit both = { .rlim_cur = target, .rlim_max = target };

                /* needs CAP_SYS_RESOURCE and fs.nr_open >= target */
                if (setrlimit(RLIMIT_NOFILE, &both) == 0)
                        return;
                target = rl.rlim_max;
        }
        if (rl.rlim_cur != RLIM_INFINITY && target > rl.rlim_cur) {
                rl.rlim_cur = target;
                (void)setrlimit(RLIMIT_NOFILE, &rl);
        }
}

/* Whether @caps holds any capability in any of its three sets. */
static bool any_cap(cap_t caps) {
        cap_t none = cap_init();
        bool any;

        if (!none)
                return true; /* assume the worst: we drop anyway */
        any = cap_compare(caps, none) != 0;
        cap_free(none);
        return any;
}

static bool any_ambient(void) {
        for (cap_value_t c = 0; c < (cap_value_t)cap_max_bits(); c++)
                if (cap_get_ambient(c) > 0)
                        return true;
        return false;
}

int sgl_privs_drop(rlim_t want_nofile) {
        cap_flag_value_t setpcap = CAP_CLEAR;
        cap_t caps;
        int r = 0;

        raise_nofile(want_nofile);

        caps = cap_get_proc();
        if (!caps)
                return sgl_negerrno();
        if (!any_cap(caps) && !any_ambient())
                goto nnp;

        /* the ambient set alone would survive execve() */
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) {
                r = sgl_negerrno();
                goto out;
        }

        /* the bounding set caps what any later execve() may grant (even to
         * uid 0); dropping from it needs CAP_SETPCAP, still ours now */
        if (cap_get_flag(caps, CAP_SETPCAP, CAP_EFFECTIVE, &setpcap) == 0 &&
            setpcap == CAP_SET) {
                for (unsigned long c = 0; c < (unsigned long)cap_max_bits(); c++) {
                        if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) <= 0)
                                continue; /* not in the set, or unknown */
                        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0) {
                                r = sgl_negerrno();
                                goto out;
                        }
                }
        }

        if (cap_clear(caps) < 0 || cap_set_proc(caps) < 0) {
                r = sgl_negerrno();
                goto out;
        }

        /* trust, but verify: the kernel's view, not ours */
        cap_free(caps);
        caps = cap_get_proc();
        if (!caps)
                return sgl_negerrno();
        if (any_cap(caps) || any_ambient()) {
                r = -EPERM;
                goto out;
        }
nnp:
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                r = sgl_negerrno();
out:
        cap_free(caps);
        return r;
}
