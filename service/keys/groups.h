/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The group endpoints (groups.c): list, show, create, rotate, policy,
 * grant, revoke; and the audit log.
 */
#ifndef DKM_KS_GROUPS_H
#define DKM_KS_GROUPS_H

#include <stddef.h>

#include "http.h"
#include "json.h"

void ks_groups_list_handler(struct svc_req *r);
void ks_groups_show_handler(struct svc_req *r);
void ks_groups_create_handler(struct svc_req *r);
void ks_groups_rotate_handler(struct svc_req *r);
void ks_groups_policy_handler(struct svc_req *r);
void ks_groups_grant_handler(struct svc_req *r);
void ks_groups_revoke_handler(struct svc_req *r);
void ks_audit_handler(struct svc_req *r);
extern const struct svc_json_field ks_groups_create_body[];
extern const size_t ks_groups_create_nbody;
extern const struct svc_json_field ks_groups_policy_body[];
extern const size_t ks_groups_policy_nbody;
extern const struct svc_json_field ks_node_id_body[];
extern const size_t ks_node_id_nbody;

#endif
