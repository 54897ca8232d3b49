/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The admin Unix socket (admin.c): created with the configured mode,
 * served to root and the dkmd user only.
 */
#ifndef DKM_SVC_ADMIN_H
#define DKM_SVC_ADMIN_H

#include <sys/types.h>

#include "dkm/base/error.h"

struct svc_config;

/* Create the admin Unix socket (mode from config); replaces a stale one. */
DKM_MUSTCHECK int svc_admin_listen(const struct svc_config *cfg, int *ret_fd);
/*
 * Whether the peer of an admin-socket connection may use it: root or the
 * user dkmd runs as. *ret_uid is the peer's uid.
 */
DKM_MUSTCHECK int svc_admin_peer_allowed(int fd, uid_t *ret_uid);

#endif
