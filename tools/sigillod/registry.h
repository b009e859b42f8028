/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * registry.h - what sigillod holds and the protocol's meaning on the server
 * side: areas, leases, segments, subscribers, per-uid quotas.
 *
 * The split with main.c: main.c owns sockets, the epoll loop and every
 * connection's bytes (receive, parse, outbound queue); the registry owns
 * what a connection *is* to the protocol (struct sgld_peer, embedded in
 * main.c's connection) and everything the daemon keeps for areas.  The
 * registry talks back through the three functions main.c implements below.
 */
#ifndef SGLD_REGISTRY_H
#define SGLD_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "protocol.h"

struct sgld_policy;
struct sgld_area;
struct sgld_user;
struct sgld_registry;

/* Quotas (doc/protocol.md section 12): per uid unless said otherwise. */
struct sgld_limits {
        uint64_t conns_per_uid;      /* connections of one peer uid */
        uint64_t areas_per_uid;      /* areas owned, with or without writer */
        uint64_t segments_per_uid;   /* live segments over all owned areas */
        uint64_t fds_per_uid;        /* segment + control descriptors held */
        uint64_t bytes_per_uid;      /* sum of the file sizes of those */
        uint64_t pending_per_conn;   /* queued outbound messages */
        uint64_t pending_per_uid;    /* same, over the peer uid's conns */
        uint64_t hello_timeout_ms;   /* from accept() to HELLO */
        uint64_t conns_max;          /* in all */
        uint64_t areas_max;          /* in all */
};

#define SGLD_LIMITS_DEFAULT {                   \
        .conns_per_uid = 64,                    \
        .areas_per_uid = 32,                    \
        .segments_per_uid = 1024,               \
        .fds_per_uid = 1088,                    \
        .bytes_per_uid = 1ULL << 30,            \
        .pending_per_conn = 4096,               \
        .pending_per_uid = 16384,               \
        .hello_timeout_ms = 10000,              \
        .conns_max = 4096,                      \
        .areas_max = 4096,                      \
}

/*
 * struct sgld_file - a descriptor the daemon holds (a control page or a
 * segment, always a read-only description), shared by the area and by
 * queued messages that still have to carry it: the descriptor closes with
 * the last reference, so queuing a message never dup()s.
 */
struct sgld_file {
        unsigned n_ref;
        int fd;
};

struct sgld_file *sgld_file_ref(struct sgld_file *f);
struct sgld_file *sgld_file_unref(struct sgld_file *f);

/*
 * struct sgld_peer - one client connection as the protocol sees it.  main.c
 * embeds it in its connection and fills @id before sgld_peer_attach();
 * everything else belongs to the registry.
 */
struct sgld_peer {
        uint64_t id;                 /* for logs; never reused */
        uid_t uid;                   /* SO_PEERCRED at connect() */
        gid_t gid;
        pid_t pid;
        gid_t *groups;               /* SO_PEERGROUPS */
        size_t n_groups;
        struct sgld_user *user;      /* accounting; NULL while refused */
        int refusal;                 /* -EDQUOT/-ENOSPC said at HELLO */
        enum sgl_conn_state state;
        uint32_t role;
        bool trusted;                /* reader: OPEN said TRUSTED */
        struct sgld_area *lease;     /* writer: the area it holds */
        struct sgld_area *sub;       /* reader: the area it subscribed to */
        struct sgld_peer *sub_prev, *sub_next;
};

/* ------------------------------------------- implemented by main.c */

/* Sends now, or queues (with a reference on @file).  On failure (peer gone,
 * queue full) the connection is doomed and nothing more reaches it. */
int sgld_peer_send(struct sgld_peer *p, const void *buf, size_t len,
                   struct sgld_file *file);
/* Closes the connection once what is queued has gone out (after GONE). */
void sgld_peer_hangup(struct sgld_peer *p);

/* Puts @fd (borrowed) in the service manager's fd store under @name, or,
 * with @fd < 0, removes what is stored under @name.  A no-op without a
 * service manager. */
void sgld_fdstore(const char *name, int fd);

enum { SGLD_LOG_ERR = 3, SGLD_LOG_WARN = 4, SGLD_LOG_INFO = 6, SGLD_LOG_DEBUG = 7 };
void sgld_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---------------------------------------------------------- registry */

int sgld_registry_new(const struct sgld_limits *limits, bool persist_default,
                      struct sgld_registry **ret);
struct sgld_registry *sgld_registry_free(struct sgld_registry *reg);
void sgld_registry_set_policy(struct sgld_registry *reg, struct sgld_policy *p);
void sgld_registry_shutdown(struct sgld_registry *reg);
void sgld_registry_set_fdstore(struct sgld_registry *reg, bool on);
int sgld_registry_restore(struct sgld_registry *reg, int *fds, char **names, size_t n);

size_t sgld_registry_areas(const struct sgld_registry *reg);
uint64_t sgld_registry_files(const struct sgld_registry *reg);
const struct sgld_limits *sgld_registry_limits(const struct sgld_registry *reg);

int sgld_peer_attach(struct sgld_registry *reg, struct sgld_peer *p, int fd);
void sgld_peer_detach(struct sgld_registry *reg, struct sgld_peer *p);
/* The counter of pending outbound messages of @p's uid (NULL while the
 * peer is refused: it only ever gets its one ERROR). */
uint64_t *sgld_peer_pending(struct sgld_peer *p);

/* sgld_registry_handle() returns this when a reply was queued and the
 * connection must close after it (HELLO refused, a quota hit on PUBLISH). */
#define SGLD_CLOSE 1

int sgld_registry_handle(struct sgld_registry *reg, struct sgld_peer *p,
                         const struct sgl_msg *m, int fd);

#endif
