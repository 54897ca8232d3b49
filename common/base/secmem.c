/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The secure arena behind secmem.h: one mapping per allocation, a
 * PROT_NONE guard page on each side, data pages that are locked, kept out
 * of core dumps and hidden from forked children, and wiped before they are
 * unmapped. Live allocations are recorded in the registry (secreg.c),
 * which answers contains/size/stats and handles fork.
 *
 * Locking rule: the registry mutex is also taken by the fork handlers, and
 * the formatter behind logs and error details asks the registry about
 * every %s and %p argument, so nothing that logs or sets an error detail
 * may run while the mutex is held. Failures inside the lock are written
 * to a local buffer and reported after unlocking.
 */
#include "dkm/base/secmem.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dkm/base/log.h"
#include "secreg_internal.h"

#ifndef SYS_memfd_secret
#if defined(__x86_64__) || defined(__aarch64__) || defined(__riscv)
#define SYS_memfd_secret 447
#endif
#endif

/* Older libc headers lack these; the values are the kernel's ABI. */
#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif

#define SECMEM_ALIGN 16
#define SECMEM_DETAIL_MAX 384

/* Decided once, on first use; read-only afterwards. */
static struct arena {
    size_t page_size;
    enum dkm_secmem_backend backend;
} arena = {
    .backend = DKM_SECMEM_ANON,
};
static pthread_once_t arena_once = PTHREAD_ONCE_INIT;

void dkm_memzero(void *p, size_t n)
{
    if (p != NULL && n > 0)
        explicit_bzero(p, n);
}

static const char *errno_text(int err)
{
    const char *s = strerrordesc_np(err);

    return s != NULL ? s : "unknown error";
}

static bool probe_memfd_secret(void)
{
#ifdef SYS_memfd_secret
    int fd = (int)syscall(SYS_memfd_secret, O_CLOEXEC);

    if (fd >= 0) {
        close(fd);
        return true;
    }
    /*
     * ENOSYS: not built in or disabled (secretmem.enable=0); EPERM: a
     * seccomp filter. Other errors (EMFILE, ENOMEM) mean the call exists,
     * and the allocation will report the real problem.
     */
    if (errno == ENOSYS || errno == EPERM || errno == EINVAL) {
        log_info("memfd_secret unavailable (%s); secure memory uses anonymous "
                 "locked mappings",
                 errno_text(errno));
        return false;
    }
    return true;
#else
    return false;
#endif
}

static void arena_init(void)
{
    const char *env = secure_getenv("DKM_SECMEM_BACKEND");
    long ps = sysconf(_SC_PAGESIZE);

    arena.page_size = ps > 0 ? (size_t)ps : 4096;
    if (env != NULL && strcmp(env, "anon") == 0) {
        arena.backend = DKM_SECMEM_ANON;
    } else {
        if (env != NULL && env[0] != '\0' && strcmp(env, "memfd_secret") != 0)
            log_warning("DKM_SECMEM_BACKEND=%s not understood (want anon or "
                        "memfd_secret); choosing automatically",
                        env);
        arena.backend = probe_memfd_secret() ? DKM_SECMEM_MEMFD_SECRET : DKM_SECMEM_ANON;
    }
    if (secreg_setup(arena.page_size, arena.backend == DKM_SECMEM_MEMFD_SECRET) != 0)
        log_warning("pthread_atfork failed: secure memory is not fork-safe");
    log_debug("secure memory backend: %s",
              arena.backend == DKM_SECMEM_MEMFD_SECRET ? "memfd_secret" : "anon");
}

enum dkm_secmem_backend dkm_secmem_backend(void)
{
    pthread_once(&arena_once, arena_init);
    return arena.backend;
}

/* A detail that tells the user which limit to raise. Lock held. */
static int memlock_failure(char *detail, const char *what, int err, size_t want)
{
    struct rlimit rl;
    char limit[32] = "unknown";

    if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0) {
        if (rl.rlim_cur == RLIM_INFINITY)
            snprintf(limit, sizeof(limit), "unlimited");
        else
            snprintf(limit, sizeof(limit), "%llu bytes", (unsigned long long)rl.rlim_cur);
    }
    snprintf(detail, SECMEM_DETAIL_MAX,
             "secure memory: %s of %zu bytes failed (%s): RLIMIT_MEMLOCK is %s and "
             "the arena already holds %zu locked bytes; raise the limit (ulimit -l, "
             "LimitMEMLOCK=) or grant CAP_IPC_LOCK",
             what, want, errno_text(err), limit, secreg_locked_bytes());
    return DKM_E_MEMLOCK;
}

static int sys_failure(char *detail, const char *what, int err)
{
    snprintf(detail, SECMEM_DETAIL_MAX, "secure memory: %s failed: %s", what,
             errno_text(err));
    return -err;
}

/*
 * Fault the memfd_secret pages in from kernel mode (read from /dev/zero):
 * a page that cannot be provided then fails the read with EFAULT instead
 * of raising SIGBUS or the OOM killer at the caller's first write. Where
 * /dev/zero cannot be opened the pages are left to fault on first use.
 */
static int prefault(char *data, size_t len, char *detail)
{
    int fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    size_t done = 0;
    int r = 0;

    if (fd < 0)
        return 0;
    while (done < len) {
        ssize_t n = read(fd, data + done, len - done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            /* EFAULT: the kernel could not provide a page (memory or cgroup limit). */
            snprintf(detail, SECMEM_DETAIL_MAX,
                     "secure memory: could not fault in %zu bytes of memfd_secret "
                     "pages: %s",
                     len, n < 0 && errno != EFAULT ? errno_text(errno) : "out of memory");
            r = -ENOMEM;
            break;
        }
        done += (size_t)n;
    }
    close(fd);
    return r;
}

static int map_memfd_secret(char *data, size_t data_len, char *detail)
{
#ifdef SYS_memfd_secret
    int fd = (int)syscall(SYS_memfd_secret, O_CLOEXEC);
    int r = -ENOMEM;

    if (fd < 0)
        return sys_failure(detail, "memfd_secret", errno);
    if (ftruncate(fd, (off_t)data_len) != 0) {
        r = sys_failure(detail, "ftruncate of memfd_secret", errno);
        goto done;
    }
    /*
     * The kernel checks RLIMIT_MEMLOCK here, when the locked VMA is
     * created, and refuses with EAGAIN; touching the pages later does not
     * count against the limit again.
     */
    if (mmap(data, data_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) ==
        MAP_FAILED) {
        if (errno == EAGAIN)
            r = memlock_failure(detail, "mapping memfd_secret pages", errno, data_len);
        else
            r = sys_failure(detail, "mmap of memfd_secret", errno);
        goto done;
    }
    if (madvise(data, data_len, MADV_DONTFORK) != 0) {
        r = sys_failure(detail, "madvise(MADV_DONTFORK)", errno);
        goto done;
    }
    if (madvise(data, data_len, MADV_DONTDUMP) != 0) {
        r = sys_failure(detail, "madvise(MADV_DONTDUMP)", errno);
        goto done;
    }
    r = prefault(data, data_len, detail);
done:
    /* The mapping keeps the file alive; no descriptor is left to inherit. */
    close(fd);
    return r;
#else
    (void)data;
    (void)data_len;
    return sys_failure(detail, "memfd_secret", ENOSYS);
#endif
}

static int map_anon(char *data, size_t data_len, char *detail)
{
    if (mprotect(data, data_len, PROT_READ | PROT_WRITE) != 0)
        return sys_failure(detail, "mprotect of data pages", errno);
    if (madvise(data, data_len, MADV_DONTDUMP) != 0)
        return sys_failure(detail, "madvise(MADV_DONTDUMP)", errno);
    if (madvise(data, data_len, MADV_WIPEONFORK) != 0)
        return sys_failure(detail, "madvise(MADV_WIPEONFORK)", errno);
    /* mlock also faults every page in, so later use cannot fail. */
    if (secreg_mlock(data, data_len) != 0)
        return memlock_failure(detail, "mlock", errno, data_len);
    return 0;
}

int dkm_secmem_alloc(size_t size, void **ret)
{
    char detail[SECMEM_DETAIL_MAX] = "";
    struct secreg_region reg = {0};
    size_t page, rounded;
    void *map = MAP_FAILED;
    char *data;
    int r = -EINVAL;

    if (ret == NULL)
        return dkm_error_set(-EINVAL, "secure memory: no result pointer");
    if (size == 0 || size > DKM_SECMEM_MAX_ALLOC)
        return dkm_error_set(-EINVAL, "secure memory: size %zu is outside 1..%u", size,
                             DKM_SECMEM_MAX_ALLOC);
    (void)dkm_secmem_backend();
    page = arena.page_size;
    rounded = (size + SECMEM_ALIGN - 1) & ~(size_t)(SECMEM_ALIGN - 1);
    reg.size = size;
    reg.data_len = (rounded + page - 1) & ~(page - 1);
    reg.map_len = reg.data_len + 2 * page;

    /*
     * Held across the system calls so that a fork from another thread
     * never sees a half-built mapping, or a memfd_secret descriptor the
     * child could map itself.
     */
    secreg_lock();
    map = mmap(NULL, reg.map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
               -1, 0);
    if (map == MAP_FAILED) {
        r = sys_failure(detail, "reserving address space", errno);
        goto done;
    }
    reg.map = (uintptr_t)map;
    data = (char *)map + page;
    if (arena.backend == DKM_SECMEM_MEMFD_SECRET)
        r = map_memfd_secret(data, reg.data_len, detail);
    else
        r = map_anon(data, reg.data_len, detail);
    if (r < 0)
        goto done;
    /* Fresh pages are zero: from the kernel, or from the /dev/zero read. */
    reg.user = (uintptr_t)(data + reg.data_len - rounded);
    r = secreg_insert(&reg);
    if (r < 0)
        snprintf(detail, sizeof(detail), "secure memory: registry is out of memory");
done:
    if (r < 0 && map != MAP_FAILED)
        (void)munmap(map, reg.map_len);
    secreg_unlock();
    if (r < 0)
        return dkm_error_set(r, "%s", detail);
    *ret = (void *)reg.user;
    return 0;
}

void dkm_secmem_free(void *p)
{
    struct secreg_region reg;
    bool found;

    if (p == NULL)
        return;
    secreg_lock();
    found = secreg_take((uintptr_t)p, &reg);
    secreg_unlock();
    if (!found) {
        /* A double free or a stray pointer: memory is already corrupt. */
        log_error("dkm_secmem_free: not a live secure allocation; aborting");
        abort();
    }
    /*
     * Outside the lock: the region is no longer registered, so no other
     * thread can reach it, and a fork now is harmless (the child's copy is
     * wiped or absent). The whole data run is wiped, not only the
     * caller's bytes, in case something wrote below the buffer's start.
     */
    if (!reg.absent)
        dkm_memzero((void *)(reg.map + arena.page_size), reg.data_len);
    if (munmap((void *)reg.map, reg.map_len) != 0)
        log_error("secure memory: munmap failed: %s", errno_text(errno));
}
