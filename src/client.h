/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * client.h - the reader's side of the rendezvous (client.c) and the hooks
 * reader.c offers it.
 */
#ifndef SGL_CLIENT_H
#define SGL_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "sigillo.h"

struct sgl_client;

int sgl_client_open(sgl_reader *r, const char *name, const char *address,
                    bool trusted, struct sgl_client **ret);
void sgl_client_free(struct sgl_client *c);
int sgl_client_drain(struct sgl_client *c, sgl_reader *r);
int sgl_client_take_error(struct sgl_client *c);
int sgl_client_get_fd(struct sgl_client *c, sgl_reader *r, bool trusted);
void sgl_client_stop_watcher(struct sgl_client *c);
int sgl_client_restart_watcher(struct sgl_client *c, sgl_reader *r);

/* reader.c */
int sgl_reader_replace_control_consume_fd(sgl_reader *r, int fd);
const uint32_t *sgl_reader_events_word(sgl_reader *r);

#endif
