/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dkmd's endpoint table (routes.c), which svc_run serves.
 */
#ifndef DKM_KS_ROUTES_H
#define DKM_KS_ROUTES_H

#include <stddef.h>

#include "router.h"

/* The endpoint table, in matching order. */
extern const struct svc_route ks_routes[];
extern const size_t ks_nroutes;

#endif
