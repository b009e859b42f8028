/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* rendezvous.h - socket helpers shared by the host and the clients. */
#ifndef SGL_RENDEZVOUS_H
#define SGL_RENDEZVOUS_H

#include <sys/socket.h>
#include <sys/un.h>

/* "@name" is the abstract namespace, anything else a filesystem path. */
int sgl_sockaddr_from_string(const char *address, struct sockaddr_un *sa,
                             socklen_t *ret_len);
int sgl_connect_host(const char *address, int timeout_ms);

#include "sigillo.h"
void sgl_host_set_hello_timeout_ms(sgl_host *h, unsigned ms);

#endif
