/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The admin socket: a Unix-domain socket that speaks the same HTTP/1.1 +
 * JSON protocol as the TLS port, so that dkmctl can use one client for
 * both. It is for bootstrap and local administration, so who may use it
 * is decided by the kernel-reported peer credentials (SO_PEERCRED) of
 * each connection: root, or the user dkmd runs as. The socket's file mode
 * is a second fence, not the only one.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "dkm/base/log.h"
#include "admin.h"
#include "config.h"

int svc_admin_listen(const struct svc_config *cfg, int *ret_fd)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct stat st;
    int fd = -1, r;

    if (strlen(cfg->admin_socket) >= sizeof(sa.sun_path))
        return dkm_error_set(DKM_E_CONFIG, "%s: [service] admin_socket: path too long",
                             cfg->path);
    memcpy(sa.sun_path, cfg->admin_socket, strlen(cfg->admin_socket) + 1);
    /* Only a socket is ever removed: a typo must not delete a file. */
    if (lstat(cfg->admin_socket, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return dkm_error_set(-EEXIST, "%s exists and is not a socket",
                                 cfg->admin_socket);
        if (unlink(cfg->admin_socket) < 0)
            return dkm_error_set(-errno, "cannot remove the old socket %s: %s",
                                 cfg->admin_socket, strerror(errno));
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return dkm_error_set(-errno, "cannot create the admin socket: %s",
                             strerror(errno));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        r = dkm_error_set(-errno, "cannot bind the admin socket %s: %s",
                          cfg->admin_socket, strerror(errno));
        goto fail;
    }
    if (chmod(cfg->admin_socket, cfg->admin_socket_mode) < 0 || listen(fd, 64) < 0) {
        r = dkm_error_set(-errno, "cannot set up the admin socket %s: %s",
                          cfg->admin_socket, strerror(errno));
        unlink(cfg->admin_socket);
        goto fail;
    }
    *ret_fd = fd;
    return 0;
fail:
    close(fd);
    return r;
}

int svc_admin_peer_allowed(int fd, uid_t *ret_uid)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);

    if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
        len != sizeof(cred))
        return -EPERM;
    if (cred.uid != 0 && cred.uid != geteuid()) {
        log_event(DKM_LOG_NOTICE, "admin.peer_refused uid=%u pid=%d", (unsigned)cred.uid,
                  (int)cred.pid);
        return -EPERM;
    }
    *ret_uid = cred.uid;
    return 0;
}
