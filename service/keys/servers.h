/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The server endpoints (servers.c): list the authorized servers, add one
 * from its card.
 */
#ifndef DKM_KS_SERVERS_H
#define DKM_KS_SERVERS_H

#include <stddef.h>

#include "http.h"
#include "json.h"

void ks_servers_list_handler(struct svc_req *r);
void ks_servers_remove_handler(struct svc_req *r);
void ks_servers_add_handler(struct svc_req *r);
extern const struct svc_json_field ks_servers_add_body[];
extern const size_t ks_servers_add_nbody;

#endif
