/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The node endpoints (nodes.c): list, authorize, revoke, bind a TLS key.
 */
#ifndef DKM_KS_NODES_H
#define DKM_KS_NODES_H

#include <stddef.h>

#include "http.h"
#include "json.h"

void ks_nodes_list_handler(struct svc_req *r);
void ks_nodes_authorize_handler(struct svc_req *r);
void ks_nodes_revoke_handler(struct svc_req *r);
void ks_nodes_tls_handler(struct svc_req *r);
extern const struct svc_json_field ks_nodes_tls_body[];
extern const size_t ks_nodes_tls_nbody;
/* A PEM certificate in a request body. */
#define KS_TLS_CERT_MAX 16384
extern const struct svc_json_field ks_nodes_authorize_body[];
extern const size_t ks_nodes_authorize_nbody;

#endif
