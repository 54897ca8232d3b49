/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests for the secure memory arena (common/base/secmem.c): sizes and
 * alignment, the registry, what the kernel reports for the mappings
 * (locked, not dumped, not inherited), guard pages, wiping on free, what a
 * forked child can see, the RLIMIT_MEMLOCK failure path, and concurrent
 * use. The backend is chosen once per process, so the suite runs with the
 * default backend and then again in a re-executed copy of this program
 * with DKM_SECMEM_BACKEND=anon (test_secmem_anon_backend).
 */
#include "dkm/base/secmem.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unit.h"

#define ROUND16(n) (((n) + 15) & ~(size_t)15)

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

static size_t round_page(size_t n)
{
    return (n + page_size() - 1) & ~(page_size() - 1);
}

static uintptr_t page_floor(const void *p)
{
    return (uintptr_t)p & ~(uintptr_t)(page_size() - 1);
}

/*
 * Wiping on free is observed from inside the free path itself: this
 * program defines munmap, so the arena's call (statically linked into this
 * executable) lands here first, while the pages are still mapped. When a
 * watched range is being unmapped, its bytes are checked and the call is
 * passed on to the next munmap in the lookup order (the sanitizer's or
 * libc's). Nothing in the library needs a test hook for this.
 */
static volatile uintptr_t watch_start;
static volatile size_t watch_len;
static volatile int watch_seen;
static volatile int watch_all_zero;

int munmap(void *addr, size_t len)
{
    static int (*next)(void *, size_t);
    static int resolving;
    uintptr_t a = (uintptr_t)addr;

    if (watch_len != 0 && watch_start >= a && watch_start + watch_len <= a + len) {
        const volatile unsigned char *b = (const volatile unsigned char *)watch_start;
        int zero = 1;

        for (size_t i = 0; i < watch_len; i++)
            if (b[i] != 0)
                zero = 0;
        watch_all_zero = zero;
        watch_seen = 1;
    }
    if (next == NULL && !resolving) {
        resolving = 1;
        next = (int (*)(void *, size_t))dlsym(RTLD_NEXT, "munmap");
        resolving = 0;
    }
    if (next == NULL)
        return (int)syscall(SYS_munmap, addr, len);
    return next(addr, len);
}

/* Run fn in a forked child and return its wait status. */
static int in_child(int (*fn)(void *), void *arg)
{
    int status = -1;
    pid_t pid;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0)
        _exit(fn(arg));
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

static bool died_by(int status, int sig)
{
    return status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == sig;
}

static bool exited_ok(int status)
{
    return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/*
 * A child that is meant to crash must die by the signal itself, not by a
 * sanitizer's handler that turns it into exit(1).
 */
static void default_segv(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
}

/* A counter the parent can read after the child died. */
static volatile size_t *shared_counter(void)
{
    void *p = mmap(NULL, page_size(), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);

    return p == MAP_FAILED ? NULL : (volatile size_t *)p;
}

static void test_secmem_roundtrip_sizes(void)
{
    static const size_t sizes[] = {1, 15, 16, 17, 4095, 4096, 4097, 1024 * 1024};
    size_t n0, locked0;

    dkm_secmem_stats(&n0, &locked0);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t size = sizes[i], n, locked;
        unsigned char *p = NULL;
        bool zero = true;

        CU_ASSERT_EQUAL_FATAL(dkm_secmem_alloc(size, (void **)&p), 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        CU_ASSERT_EQUAL((uintptr_t)p % 16, 0);
        /* The rounded-up end touches the following guard page. */
        CU_ASSERT_EQUAL(((uintptr_t)p + ROUND16(size)) % page_size(), 0);
        for (size_t j = 0; j < size; j++)
            if (p[j] != 0)
                zero = false;
        CU_ASSERT(zero);
        memset(p, 0xA5, size);
        CU_ASSERT(dkm_secmem_contains(p));
        CU_ASSERT(dkm_secmem_contains(p + size / 2));
        CU_ASSERT(dkm_secmem_contains(p + size - 1));
        CU_ASSERT_FALSE(dkm_secmem_contains(p - 1));
        CU_ASSERT_FALSE(dkm_secmem_contains(p + size));
        CU_ASSERT_EQUAL(dkm_secmem_size(p), size);
        CU_ASSERT_EQUAL(dkm_secmem_size(p - 1), 0);
        CU_ASSERT_EQUAL(dkm_secmem_size(p + size), 0);
        if (size > 1)
            CU_ASSERT_EQUAL(dkm_secmem_size(p + 1), 0);
        dkm_secmem_stats(&n, &locked);
        CU_ASSERT_EQUAL(n, n0 + 1);
        CU_ASSERT_EQUAL(locked, locked0 + round_page(ROUND16(size)));
        dkm_secmem_free(p);
        CU_ASSERT_FALSE(dkm_secmem_contains(p));
        CU_ASSERT_FALSE(dkm_secmem_contains(p + size - 1));
        CU_ASSERT_EQUAL(dkm_secmem_size(p), 0);
        dkm_secmem_stats(&n, &locked);
        CU_ASSERT_EQUAL(n, n0);
        CU_ASSERT_EQUAL(locked, locked0);
    }
}

static void test_secmem_bad_sizes(void)
{
    void *sentinel = (void *)&sentinel;
    void *p = sentinel;
    size_t n0, n;

    dkm_secmem_stats(&n0, NULL);
    CU_ASSERT_EQUAL(dkm_secmem_alloc(0, &p), -EINVAL);
    CU_ASSERT_PTR_EQUAL(p, sentinel);
    CU_ASSERT_EQUAL(dkm_secmem_alloc(DKM_SECMEM_MAX_ALLOC + 1, &p), -EINVAL);
    CU_ASSERT_PTR_EQUAL(p, sentinel);
    CU_ASSERT_EQUAL(dkm_secmem_alloc(SIZE_MAX, &p), -EINVAL);
    CU_ASSERT_PTR_EQUAL(p, sentinel);
    CU_ASSERT(strstr(dkm_error_detail(), "size") != NULL);
    dkm_secmem_stats(&n, NULL);
    CU_ASSERT_EQUAL(n, n0);
    CU_ASSERT_EQUAL(dkm_secmem_alloc(DKM_SECMEM_MAX_ALLOC, &p), 0);
    CU_ASSERT_EQUAL(dkm_secmem_size(p), DKM_SECMEM_MAX_ALLOC);
    dkm_secmem_free(p);
    dkm_secmem_free(NULL);
    CU_ASSERT_FALSE(dkm_secmem_contains(NULL));
    CU_ASSERT_EQUAL(dkm_secmem_size(NULL), 0);
}

struct vma {
    uintptr_t start, end;
    char perms[8];
    char flags[520];
    size_t locked_kb;
};

/* The /proc/self/smaps entry that contains addr. */
static bool find_vma(uintptr_t addr, struct vma *ret)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    bool in = false, found = false;

    if (f == NULL)
        return false;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long s, e;
        char perms[8];

        /* Only a mapping's first line parses as "start-end perms". */
        if (sscanf(line, "%lx-%lx %7s", &s, &e, perms) == 3) {
            if (found)
                break;
            in = addr >= s && addr < e;
            if (in) {
                memset(ret, 0, sizeof(*ret));
                ret->start = s;
                ret->end = e;
                snprintf(ret->perms, sizeof(ret->perms), "%s", perms);
            }
            continue;
        }
        if (!in)
            continue;
        if (strncmp(line, "Locked:", 7) == 0)
            ret->locked_kb = strtoul(line + 7, NULL, 10);
        if (strncmp(line, "VmFlags:", 8) == 0) {
            snprintf(ret->flags, sizeof(ret->flags), "%s ", line + 8);
            found = true;
        }
    }
    fclose(f);
    return found;
}

static bool has_flag(const struct vma *v, const char *flag)
{
    char want[8];

    snprintf(want, sizeof(want), " %s ", flag);
    return strstr(v->flags, want) != NULL;
}

/*
 * What the kernel reports (checked on Linux 6.x): an anonymous data run
 * shows "lo" (mlock), "dd" (MADV_DONTDUMP), "wf" (MADV_WIPEONFORK). A
 * memfd_secret run also shows "lo": the kernel marks the VMA VM_LOCKED
 * itself and charges it to RLIMIT_MEMLOCK; "dc" is MADV_DONTFORK and "dd"
 * is set by both the kernel and us. In both cases "Locked:" covers every
 * data page once the allocation returns (mlock or the pre-fault).
 */
static void test_secmem_mapping_flags(void)
{
    size_t size = 5000, data_len = round_page(ROUND16(size));
    unsigned char *p = NULL;
    struct vma v, before, after;
    uintptr_t data;

    CU_ASSERT_EQUAL_FATAL(dkm_secmem_alloc(size, (void **)&p), 0);
    data = page_floor(p);
    CU_ASSERT_FATAL(find_vma((uintptr_t)p, &v));
    CU_ASSERT_EQUAL(v.start, data);
    CU_ASSERT_EQUAL(v.end, data + data_len);
    CU_ASSERT_STRING_EQUAL(dkm_secmem_backend() == DKM_SECMEM_ANON ? "rw-p" : "rw-s",
                           v.perms);
    CU_ASSERT(has_flag(&v, "lo"));
    CU_ASSERT(has_flag(&v, "dd"));
    CU_ASSERT_EQUAL(v.locked_kb * 1024, data_len);
    if (dkm_secmem_backend() == DKM_SECMEM_ANON) {
        CU_ASSERT(has_flag(&v, "wf"));
    } else {
        CU_ASSERT(has_flag(&v, "dc"));
    }
    /* Both neighbours are inaccessible guard pages. */
    CU_ASSERT_FATAL(find_vma(data - 1, &before));
    CU_ASSERT_STRING_EQUAL(before.perms, "---p");
    CU_ASSERT_FATAL(find_vma(data + data_len, &after));
    CU_ASSERT_STRING_EQUAL(after.perms, "---p");
    dkm_secmem_free(p);
}

static void test_secmem_free_wipes(void)
{
    static const size_t sizes[] = {1, 33, 4096, 70000};

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t size = sizes[i];
        unsigned char *p = NULL;

        CU_ASSERT_EQUAL_FATAL(dkm_secmem_alloc(size, (void **)&p), 0);
        memset(p, 0xC3, size);
        watch_seen = 0;
        watch_all_zero = 0;
        /* The whole data run, including the slack below the buffer. */
        watch_start = page_floor(p);
        watch_len = round_page(ROUND16(size));
        dkm_secmem_free(p);
        watch_len = 0;
        CU_ASSERT_EQUAL(watch_seen, 1);
        CU_ASSERT_EQUAL(watch_all_zero, 1);
    }
}

/*
 * The child makes its own allocation: with memfd_secret a child does not
 * inherit the parent's data pages at all, so only the owner of a mapping
 * can show where its guards are. Exit codes below 100 say what went wrong
 * before the deliberate crash.
 */
struct guard_job {
    size_t size;
    bool backward;
    volatile size_t *done;
};

static int write_until_fault(void *arg)
{
    struct guard_job *job = arg;
    volatile unsigned char *vp;
    size_t limit = job->size + 2 * page_size();
    void *p = NULL;

    if (dkm_secmem_alloc(job->size, &p) != 0)
        return 1;
    vp = p;
    default_segv();
    for (size_t i = 0; i < limit; i++) {
        if (job->backward)
            vp[-(ptrdiff_t)i - 1] = 0x41;
        else
            vp[i] = 0x41;
        *job->done = i + 1;
    }
    return 2;
}

static void test_secmem_guard_pages(void)
{
    static const size_t sizes[] = {1, 100, 4095, 4096, 5000};
    volatile size_t *done = shared_counter();

    CU_ASSERT_PTR_NOT_NULL_FATAL(done);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct guard_job job = {.size = sizes[i], .done = done};
        size_t rounded = ROUND16(sizes[i]);
        int status;

        /* Overrun: every byte up to the rounded end is writable, the next is not. */
        *done = 0;
        status = in_child(write_until_fault, &job);
        CU_ASSERT(died_by(status, SIGSEGV));
        CU_ASSERT_EQUAL(*done, rounded);

        /* Underrun: the slack below the buffer, then the leading guard. */
        *done = 0;
        job.backward = true;
        status = in_child(write_until_fault, &job);
        CU_ASSERT(died_by(status, SIGSEGV));
        CU_ASSERT_EQUAL(*done, round_page(rounded) - rounded);
    }
    munmap((void *)done, page_size());
}

struct fork_job {
    unsigned char *p;
    size_t size;
    size_t live_before; /* allocations live before p was made */
};

/* anon: the child's copy must be all zeros. memfd_secret: it must fault. */
static int read_inherited(void *arg)
{
    struct fork_job *job = arg;
    const volatile unsigned char *vp = job->p;
    int nonzero = 0;

    struct vma v;

    default_segv();
    for (size_t i = 0; i < job->size; i++)
        if (vp[i] != 0)
            nonzero++;
    if (nonzero != 0)
        return 1;
    /* Memory locks are not inherited: the arena locks the child's copy again. */
    if (!find_vma((uintptr_t)job->p, &v) || !has_flag(&v, "lo"))
        return 2;
    return 0;
}

/* The child can still free inherited allocations and make new ones. */
static int free_inherited(void *arg)
{
    struct fork_job *job = arg;
    size_t n, locked;
    void *q = NULL;

    dkm_secmem_free(job->p);
    if (dkm_secmem_contains(job->p))
        return 1;
    if (dkm_secmem_alloc(64, &q) != 0)
        return 2;
    memset(q, 0x11, 64);
    dkm_secmem_free(q);
    dkm_secmem_stats(&n, &locked);
    if (n != job->live_before)
        return 3;
    /* memfd_secret pages were not inherited, so nothing is locked in the child. */
    if (dkm_secmem_backend() == DKM_SECMEM_MEMFD_SECRET && locked != 0)
        return 4;
    return 0;
}

static void test_secmem_fork_hides_secrets(void)
{
    struct fork_job job = {.size = 3000};
    int status;
    bool intact = true;

    dkm_secmem_stats(&job.live_before, NULL);
    CU_ASSERT_EQUAL_FATAL(dkm_secmem_alloc(job.size, (void **)&job.p), 0);
    memset(job.p, 0x5A, job.size);

    status = in_child(read_inherited, &job);
    if (dkm_secmem_backend() == DKM_SECMEM_ANON) {
        CU_ASSERT(exited_ok(status));
    } else {
        CU_ASSERT(died_by(status, SIGSEGV));
    }

    status = in_child(free_inherited, &job);
    CU_ASSERT(exited_ok(status));

    /* The parent's copy is untouched by either child. */
    for (size_t i = 0; i < job.size; i++)
        if (job.p[i] != 0x5A)
            intact = false;
    CU_ASSERT(intact);
    dkm_secmem_free(job.p);
}

/* Without CAP_IPC_LOCK (root has it) the kernel ignores RLIMIT_MEMLOCK. */
static int drop_ipc_lock(void)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct data[2];

    if (syscall(SYS_capget, &hdr, data) != 0)
        return -1;
    data[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
    data[CAP_IPC_LOCK / 32].permitted &= ~(1u << (CAP_IPC_LOCK % 32));
    return syscall(SYS_capset, &hdr, data) == 0 ? 0 : -1;
}

#define MEMLOCK_LIMIT 8192

/* Exit codes say which expectation failed. */
static int exhaust_memlock(void *arg)
{
    struct rlimit rl = {.rlim_cur = MEMLOCK_LIMIT, .rlim_max = MEMLOCK_LIMIT};
    void *ptrs[64];
    size_t got = 0, expect = MEMLOCK_LIMIT / page_size();
    void *again = NULL;
    int r = 0;

    (void)arg;
    if (drop_ipc_lock() != 0 || setrlimit(RLIMIT_MEMLOCK, &rl) != 0)
        return 10;
    while (got < 64) {
        r = dkm_secmem_alloc(1, &ptrs[got]);
        if (r != 0)
            break;
        *(volatile char *)ptrs[got] = 1;
        got++;
    }
    if (r != DKM_E_MEMLOCK)
        return 11;
    if (strstr(dkm_error_detail(), "RLIMIT_MEMLOCK") == NULL ||
        strstr(dkm_error_detail(), "8192 bytes") == NULL)
        return 12;
    if (got != expect)
        return 13;
    /* Room comes back when an allocation is freed. */
    if (got > 0) {
        dkm_secmem_free(ptrs[--got]);
        if (dkm_secmem_alloc(1, &again) != 0)
            return 14;
        dkm_secmem_free(again);
    }
    while (got > 0)
        dkm_secmem_free(ptrs[--got]);
    /* A large request over the limit fails the same way. */
    if (dkm_secmem_alloc(DKM_SECMEM_MAX_ALLOC, &again) != DKM_E_MEMLOCK)
        return 15;
    return 0;
}

static void test_secmem_memlock_limit(void)
{
    int status = in_child(exhaust_memlock, NULL);

    CU_ASSERT(WIFEXITED(status));
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        fprintf(stderr, "memlock child exited %d\n", WEXITSTATUS(status));
    CU_ASSERT(exited_ok(status));
}

static void test_secmem_many_random_order(void)
{
    enum { N = 200 };
    unsigned char *ptrs[N];
    size_t sizes[N], order[N], n0, locked0, n, locked, want = 0;
    unsigned seed = 12345;
    bool intact = true;

    dkm_secmem_stats(&n0, &locked0);
    for (size_t i = 0; i < N; i++) {
        sizes[i] = 1 + (size_t)rand_r(&seed) % (i % 10 == 0 ? 65536 : 512);
        CU_ASSERT_EQUAL_FATAL(dkm_secmem_alloc(sizes[i], (void **)&ptrs[i]), 0);
        memset(ptrs[i], (int)(i & 0xff), sizes[i]);
        want += round_page(ROUND16(sizes[i]));
        order[i] = i;
    }
    dkm_secmem_stats(&n, &locked);
    CU_ASSERT_EQUAL(n, n0 + N);
    CU_ASSERT_EQUAL(locked, locked0 + want);
    for (size_t i = 0; i < N; i++) {
        for (size_t j = 0; j < sizes[i]; j++)
            if (ptrs[i][j] != (i & 0xff))
                intact = false;
        if (dkm_secmem_size(ptrs[i]) != sizes[i])
            intact = false;
    }
    CU_ASSERT(intact);
    for (size_t i = N - 1; i > 0; i--) {
        size_t j = (size_t)rand_r(&seed) % (i + 1), t = order[i];

        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < N; i++) {
        dkm_secmem_free(ptrs[order[i]]);
        CU_ASSERT_FALSE(dkm_secmem_contains(ptrs[order[i]]));
        /* Everything not yet freed is still found. */
        if (i + 1 < N)
            CU_ASSERT(dkm_secmem_contains(ptrs[order[i + 1]] + sizes[order[i + 1]] - 1));
    }
    dkm_secmem_stats(&n, &locked);
    CU_ASSERT_EQUAL(n, n0);
    CU_ASSERT_EQUAL(locked, locked0);
}

struct thread_job {
    unsigned seed;
    int errors;
};

static void *thread_churn(void *arg)
{
    enum { LIVE = 8, ROUNDS = 1500 };
    struct thread_job *job = arg;
    unsigned char *live[LIVE] = {0};
    size_t sizes[LIVE] = {0};
    unsigned char tag = (unsigned char)(job->seed & 0xff);

    for (int round = 0; round < ROUNDS; round++) {
        int k = rand_r(&job->seed) % LIVE;

        if (live[k] != NULL) {
            for (size_t j = 0; j < sizes[k]; j++)
                if (live[k][j] != tag)
                    job->errors++;
            if (!dkm_secmem_contains(live[k]) || dkm_secmem_size(live[k]) != sizes[k])
                job->errors++;
            dkm_secmem_free(live[k]);
            live[k] = NULL;
        } else {
            sizes[k] = 1 + (size_t)rand_r(&job->seed) % 9000;
            if (dkm_secmem_alloc(sizes[k], (void **)&live[k]) != 0) {
                job->errors++;
                live[k] = NULL;
                continue;
            }
            memset(live[k], tag, sizes[k]);
        }
    }
    for (int k = 0; k < LIVE; k++)
        dkm_secmem_free(live[k]);
    return NULL;
}

static void test_secmem_threads(void)
{
    enum { THREADS = 4 };
    pthread_t th[THREADS];
    struct thread_job jobs[THREADS];
    size_t n0, locked0, n, locked;
    int started = 0;

    dkm_secmem_stats(&n0, &locked0);
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (struct thread_job){.seed = 0x1000u * (unsigned)(i + 1) + (unsigned)i};
        if (pthread_create(&th[i], NULL, thread_churn, &jobs[i]) == 0)
            started++;
    }
    CU_ASSERT_EQUAL(started, THREADS);
    for (int i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        CU_ASSERT_EQUAL(jobs[i].errors, 0);
    }
    dkm_secmem_stats(&n, &locked);
    CU_ASSERT_EQUAL(n, n0);
    CU_ASSERT_EQUAL(locked, locked0);
}

static int free_stray(void *arg)
{
    char local[32];

    (void)arg;
    dkm_secmem_free(local);
    return 0;
}

static int free_twice(void *arg)
{
    void *p = NULL;

    (void)arg;
    if (dkm_secmem_alloc(10, &p) != 0)
        return 1;
    dkm_secmem_free(p);
    dkm_secmem_free(p);
    return 0;
}

static int free_interior(void *arg)
{
    char *p = NULL;

    (void)arg;
    if (dkm_secmem_alloc(10, (void **)&p) != 0)
        return 1;
    dkm_secmem_free(p + 1);
    return 0;
}

/* Freeing something that is not a live allocation is a bug: stop at once. */
static void test_secmem_free_invalid_aborts(void)
{
    CU_ASSERT(died_by(in_child(free_stray, NULL), SIGABRT));
    CU_ASSERT(died_by(in_child(free_twice, NULL), SIGABRT));
    CU_ASSERT(died_by(in_child(free_interior, NULL), SIGABRT));
}

static void test_secmem_memzero(void)
{
    unsigned char buf[64];
    bool zero = true;

    memset(buf, 0xFF, sizeof(buf));
    dkm_memzero(buf + 8, 40);
    for (size_t i = 0; i < sizeof(buf); i++)
        if (buf[i] != (i >= 8 && i < 48 ? 0 : 0xFF))
            zero = false;
    CU_ASSERT(zero);
    dkm_memzero(NULL, 0);
}

static bool forced_anon(void)
{
    const char *e = getenv("DKM_SECMEM_BACKEND");

    return e != NULL && strcmp(e, "anon") == 0;
}

/*
 * In the default run: the backend is memfd_secret exactly when the kernel
 * has it, and the whole suite passes again in a copy of this program
 * forced to the anonymous backend. In that copy: the override took effect.
 */
static void test_secmem_anon_backend(void)
{
    int fd, status = -1;
    pid_t pid;

    if (forced_anon()) {
        CU_ASSERT_EQUAL(dkm_secmem_backend(), DKM_SECMEM_ANON);
        return;
    }
    fd = (int)syscall(SYS_memfd_secret, O_CLOEXEC);
    CU_ASSERT_EQUAL(dkm_secmem_backend(),
                    fd >= 0 ? DKM_SECMEM_MEMFD_SECRET : DKM_SECMEM_ANON);
    if (fd >= 0)
        close(fd);

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        char *argv[] = {"test_secmem", "secmem", NULL};

        setenv("DKM_SECMEM_BACKEND", "anon", 1);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    CU_ASSERT(exited_ok(status));
}

static CU_TestInfo secmem_tests[] = {
    {"test_secmem_roundtrip_sizes", test_secmem_roundtrip_sizes},
    {"test_secmem_bad_sizes", test_secmem_bad_sizes},
    {"test_secmem_mapping_flags", test_secmem_mapping_flags},
    {"test_secmem_free_wipes", test_secmem_free_wipes},
    {"test_secmem_guard_pages", test_secmem_guard_pages},
    {"test_secmem_fork_hides_secrets", test_secmem_fork_hides_secrets},
    {"test_secmem_memlock_limit", test_secmem_memlock_limit},
    {"test_secmem_many_random_order", test_secmem_many_random_order},
    {"test_secmem_threads", test_secmem_threads},
    {"test_secmem_free_invalid_aborts", test_secmem_free_invalid_aborts},
    {"test_secmem_memzero", test_secmem_memzero},
    {"test_secmem_anon_backend", test_secmem_anon_backend},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"secmem", NULL, NULL, NULL, NULL, secmem_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
