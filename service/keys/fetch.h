/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What nodes ask (fetch.c): the trust chain, key fetches and the list of
 * their groups.
 */
#ifndef DKM_KS_FETCH_H
#define DKM_KS_FETCH_H

#include <stddef.h>

#include "http.h"
#include "json.h"

void ks_trust_handler(struct svc_req *r);
void ks_fetch_handler(struct svc_req *r);
void ks_my_groups_handler(struct svc_req *r);
extern const struct svc_json_field ks_fetch_body[];
extern const size_t ks_fetch_nbody;

#endif
