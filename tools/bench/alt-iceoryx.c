/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * alt-iceoryx.c - Eclipse iceoryx 2.0 through its C binding, loaned
 * zero-copy chunks, publisher blocking when a subscriber's queue is full.
 *
 * Neither the build nor sigillo ever depends on iceoryx: the types come
 * from the binding's headers when they are found at build time
 * (ICEORYX_INCLUDE in tools/bench/bench.am), and the functions from
 * dlopen() at run time, so one binary runs with or without iceoryx and
 * says "skipped: iceoryx not installed" when either part is missing.
 *
 * The bench starts its own iox-roudi with a private configuration (mempools
 * sized for 64 B .. 16 MiB) and stops it at exit, on SIGINT/SIGTERM, and,
 * through PR_SET_PDEATHSIG, when the bench dies any other way.  Every
 * process registers its own runtime and shuts it down before it exits, so
 * roudi reclaims its chunks at once.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#if defined(__has_include)
#if __has_include(<iceoryx_binding_c/runtime.h>)
#define HAVE_IOX_HEADERS 1
#endif
#endif

static const char *iox_why = "iceoryx not installed";
static pid_t roudi_pid;
static pid_t roudi_owner;
static char roudi_dir[64];

const char *iox_unavailable(void) {
        return iox_why;
}

static void remove_config(void) {
        char path[96];

        if (!roudi_dir[0])
                return;
        snprintf(path, sizeof(path), "%s/roudi.toml", roudi_dir);
        unlink(path);
        rmdir(roudi_dir);
        roudi_dir[0] = 0;
}

void iox_stop(void) {
        if (roudi_pid > 0 && getpid() == roudi_owner) {
                kill(roudi_pid, SIGTERM);
                waitpid(roudi_pid, NULL, 0);
                roudi_pid = 0;
                remove_config();
        }
}

#ifndef HAVE_IOX_HEADERS

int iox_start(void) {
        return -ENOTSUP;
}

static int iox_none(struct chan *c) {
        return -ENOTSUP;
}

const struct alt alt_iceoryx = {
        .name = "iceoryx",
        .flags = ALT_ICEORYX,
        .create = iox_none,
};

#else

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <iceoryx_binding_c/log.h>
#include <iceoryx_binding_c/runtime.h>
#include <iceoryx_binding_c/publisher.h>
#include <iceoryx_binding_c/subscriber.h>
#include <iceoryx_binding_c/wait_set.h>
#pragma GCC diagnostic pop

#define IOX_FUNCS(X) \
        X(iox_runtime_init) X(iox_runtime_shutdown) X(iox_set_loglevel) \
        X(iox_pub_options_init) X(iox_pub_init) X(iox_pub_deinit) \
        X(iox_pub_loan_chunk) X(iox_pub_publish_chunk) \
        X(iox_sub_options_init) X(iox_sub_init) X(iox_sub_deinit) \
        X(iox_sub_get_subscription_state) X(iox_sub_take_chunk) X(iox_sub_release_chunk) \
        X(iox_ws_init) X(iox_ws_deinit) X(iox_ws_attach_subscriber_state) X(iox_ws_timed_wait)

static struct {
#define X(f) __typeof__(f) *f;
        IOX_FUNCS(X)
#undef X
} fn;

/* chunk payload + header must fit a pool; counts cover queues + in use */
static const char roudi_config[] =
        "[general]\nversion = 1\n[[segment]]\n"
        "[[segment.mempool]]\nsize = 256\ncount = 1024\n"
        "[[segment.mempool]]\nsize = 8192\ncount = 256\n"
        "[[segment.mempool]]\nsize = 131072\ncount = 64\n"
        "[[segment.mempool]]\nsize = 2097152\ncount = 16\n"
        "[[segment.mempool]]\nsize = 17825792\ncount = 6\n";

static const char *find_roudi(void) {
        static const char *const paths[] = { "/usr/bin/iox-roudi", "/usr/local/bin/iox-roudi" };
        const char *e = getenv("IOX_ROUDI");

        if (e && *e)
                return access(e, X_OK) == 0 ? e : NULL;
        for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
                if (access(paths[i], X_OK) == 0)
                        return paths[i];
        return NULL;
}

int iox_start(void) {
        const char *roudi = find_roudi();
        void *lib = dlopen("libiceoryx_binding_c.so.2", RTLD_NOW | RTLD_LOCAL);
        char cfg[96];
        FILE *f;

        if (!lib || !roudi)
                return -ENOENT;
#define X(f) if (!(fn.f = (__typeof__(f) *)dlsym(lib, #f))) return -ENOENT;
        IOX_FUNCS(X)
#undef X
        snprintf(roudi_dir, sizeof(roudi_dir), "%s/sigillo-bench-XXXXXX",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(roudi_dir)) {
                roudi_dir[0] = 0;
                iox_why = "iceoryx: cannot create a config directory";
                return -errno;
        }
        snprintf(cfg, sizeof(cfg), "%s/roudi.toml", roudi_dir);
        f = fopen(cfg, "we");
        if (!f || fputs(roudi_config, f) < 0 || fclose(f) != 0) {
                remove_config();
                iox_why = "iceoryx: cannot write the roudi config";
                return -EIO;
        }
        roudi_owner = getpid();
        atexit(iox_stop);
        fflush(stdout);
        roudi_pid = fork();
        if (roudi_pid < 0) {
                iox_why = "iceoryx: cannot start iox-roudi";
                return -errno;
        }
        if (roudi_pid == 0) {
                int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
                prctl(PR_SET_PDEATHSIG, SIGTERM);
                if (getppid() != roudi_owner)
                        _exit(1);
                /* its log would interleave with the table */
                if (null >= 0) {
                        dup2(null, STDOUT_FILENO);
                        dup2(null, STDERR_FILENO);
                }
                execl(roudi, roudi, "-c", cfg, "-l", "error", (char *)NULL);
                _exit(127);
        }
        /* roudi that cannot start (another one running) exits at once */
        for (int i = 0; i < 30; i++) {
                if (waitpid(roudi_pid, NULL, WNOHANG) == roudi_pid) {
                        roudi_pid = 0;
                        remove_config();
                        iox_why = "iceoryx: iox-roudi exited at start (is another one running?)";
                        return -EIO;
                }
                usleep(10000);
        }
        iox_why = NULL;
        return 0;
}

struct iox_chan {
        char instance[32];
        iox_pub_storage_t pub_storage;
        iox_pub_t pub;
        iox_sub_storage_t sub_storage;
        iox_sub_t sub;
        iox_ws_storage_t ws_storage;
        iox_ws_t ws;
        const void *held;
};

static unsigned endpoints; /* of this process: the last one shuts the runtime */

static void runtime_get(void) {
        char name[64];

        if (endpoints++ > 0)
                return;
        snprintf(name, sizeof(name), "sigillo-bench-%d", (int)getpid());
        fn.iox_set_loglevel(Iceoryx_LogLevel_Error);
        fn.iox_runtime_init(name);
}

/* iceoryx 2.0 leaves its runtime's socket and lock file behind in /tmp
 * (its compiled-in IOX_UDS_SOCKET_PATH_PREFIX): remove ours */
static void runtime_put(void) {
        char path[96];

        if (--endpoints > 0)
                return;
        fn.iox_runtime_shutdown();
        snprintf(path, sizeof(path), "/tmp/sigillo-bench-%d", (int)getpid());
        unlink(path);
        strcat(path, ".lock");
        unlink(path);
}

static uint64_t queue_capacity(size_t size) {
        return size >= 16 * MiB ? 2 : size >= MiB ? 4 : 16;
}

static int iox_create(struct chan *c) {
        struct iox_chan *x = calloc(1, sizeof(*x));

        if (!x)
                return -ENOMEM;
        if (iox_why)
                return -ENOTSUP;
        snprintf(x->instance, sizeof(x->instance), "c%d-%u", (int)getpid(), c->id);
        c->priv = x;
        return 0;
}

static void iox_destroy(struct chan *c) {
        free(c->priv);
}

static int iox_open_writer(struct chan *c) {
        struct iox_chan *x = c->priv;
        iox_pub_options_t o;

        runtime_get();
        fn.iox_pub_options_init(&o);
        o.historyCapacity = 0;
        o.subscriberTooSlowPolicy = ConsumerTooSlowPolicy_WAIT_FOR_CONSUMER;
        x->pub = fn.iox_pub_init(&x->pub_storage, "sigillo-bench", x->instance, "msg", &o);
        return x->pub ? 0 : -EIO;
}

static int iox_send(struct chan *c, const void *buf, size_t size) {
        struct iox_chan *x = c->priv;
        void *p;

        for (;;) {
                enum iox_AllocationResult a = fn.iox_pub_loan_chunk(x->pub, &p, (uint32_t)size);
                if (a == AllocationResult_SUCCESS)
                        break;
                if (a != AllocationResult_RUNNING_OUT_OF_CHUNKS &&
                    a != AllocationResult_TOO_MANY_CHUNKS_ALLOCATED_IN_PARALLEL)
                        return -ENOMEM;
                sched_yield();
        }
        memcpy(p, buf, size);
        fn.iox_pub_publish_chunk(x->pub, p);
        return 0;
}

static void iox_close_writer(struct chan *c) {
        struct iox_chan *x = c->priv;

        fn.iox_pub_deinit(x->pub);
        runtime_put();
}

static int iox_open_reader(struct chan *c, unsigned i) {
        struct iox_chan *x = c->priv;
        iox_sub_options_t o;
        uint64_t deadline = now_ns() + 20000000000u;

        runtime_get();
        fn.iox_sub_options_init(&o);
        o.queueCapacity = queue_capacity(c->size);
        o.historyRequest = 0;
        o.queueFullPolicy = QueueFullPolicy_BLOCK_PRODUCER;
        x->sub = fn.iox_sub_init(&x->sub_storage, "sigillo-bench", x->instance, "msg", &o);
        if (!x->sub)
                return -EIO;
        /* discovery goes through roudi: wait until connected (setup only) */
        while (fn.iox_sub_get_subscription_state(x->sub) != SubscribeState_SUBSCRIBED) {
                if (now_ns() > deadline)
                        return -ETIMEDOUT;
                usleep(1000);
        }
        if (!c->busy) {
                x->ws = fn.iox_ws_init(&x->ws_storage);
                if (fn.iox_ws_attach_subscriber_state(x->ws, x->sub, SubscriberState_HAS_DATA, 0, NULL) !=
                    WaitSetResult_SUCCESS)
                        return -EIO;
        }
        return 0;
}

static int iox_recv(struct chan *c, unsigned i, const void **data, size_t *size) {
        struct iox_chan *x = c->priv;
        unsigned spins = 0;

        for (;;) {
                enum iox_ChunkReceiveResult r = fn.iox_sub_take_chunk(x->sub, &x->held);
                if (r == ChunkReceiveResult_SUCCESS)
                        break;
                if (r != ChunkReceiveResult_NO_CHUNK_AVAILABLE)
                        return -EIO;
                if (c->busy) {
                        busy_pause(&spins);
                } else {
                        iox_notification_info_t info[1];
                        uint64_t missed;
                        struct timespec t = { 0, 100000000 };
                        fn.iox_ws_timed_wait(x->ws, t, info, 1, &missed);
                }
        }
        *data = x->held;
        /* the C binding has no accessor for the payload size; the
         * checksum still covers the sequence number and every byte */
        *size = c->size;
        return 0;
}

static void iox_release(struct chan *c, unsigned i) {
        struct iox_chan *x = c->priv;

        fn.iox_sub_release_chunk(x->sub, x->held);
        x->held = NULL;
}

static void iox_close_reader(struct chan *c, unsigned i) {
        struct iox_chan *x = c->priv;

        if (x->ws)
                fn.iox_ws_deinit(x->ws);
        fn.iox_sub_deinit(x->sub);
        runtime_put();
}

static const char *iox_settings(size_t size, int kind) {
        static char buf[48];

        snprintf(buf, sizeof(buf), "loan, queue %llu, %s", (unsigned long long)queue_capacity(size),
                 kind == CH_LATENCY ? "busy take" : "waitset");
        return buf;
}

const struct alt alt_iceoryx = {
        .name = "iceoryx",
        .flags = ALT_ICEORYX | ALT_PRODUCES,
        .create = iox_create,
        .open_writer = iox_open_writer,
        .send = iox_send,
        .close_writer = iox_close_writer,
        .open_reader = iox_open_reader,
        .recv = iox_recv,
        .release = iox_release,
        .close_reader = iox_close_reader,
        .destroy = iox_destroy,
        .settings = iox_settings,
};

#endif
