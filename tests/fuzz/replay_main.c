/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The replay runner: a main() for a fuzz target built without libFuzzer
 * (gcc, the normal and the sanitizer build). It feeds every file of the
 * directories it is given, in name order, through the target's
 * LLVMFuzzerTestOneInput, and checks the verdict: a seed must be
 * accepted by the product, a file whose name starts with "bad-" (an input
 * a fuzzer once found) must be refused. A crash is the sanitizer's or the
 * target's abort. Exits non-zero on any wrong verdict or when there was
 * nothing to run.
 *
 * Usage: fuzz_replay_<name> DIR...
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dkm/base/file.h"
#include "fuzz.h"

/* Largest input replayed; libFuzzer's inputs stay far below it. */
#define REPLAY_MAX (1024u * 1024u)

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int skip_dots(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

/* Replay one file; 0 when its verdict is the expected one. */
static int replay_file(const char *dir, const char *name)
{
    bool bad = strncmp(name, "bad-", 4) == 0;
    char path[4096];
    uint8_t *buf = NULL;
    size_t len = 0;
    int r;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    r = dkm_file_read(path, REPLAY_MAX, &buf, &len);
    if (r < 0) {
        fprintf(stderr, "%s: cannot read: %s\n", path, dkm_error_detail());
        return -1;
    }
    dkm_fuzz_reset();
    (void)LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    if (dkm_fuzz_accepted() == bad) {
        fprintf(stderr, "%s: %s\n", path,
                bad ? "accepted, but it is a regression input (bad-*) that must be "
                      "refused"
                    : "refused, but it is a seed that must be accepted");
        return -1;
    }
    printf("%s: %s as expected\n", path, bad ? "refused" : "accepted");
    return 0;
}

int main(int argc, char **argv)
{
    unsigned files = 0, wrong = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        struct dirent **names = NULL;
        int n = scandir(argv[i], &names, skip_dots, by_name);

        if (n < 0) {
            fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        for (int j = 0; j < n; j++) {
            if (names[j]->d_type == DT_REG || names[j]->d_type == DT_UNKNOWN) {
                files++;
                if (replay_file(argv[i], names[j]->d_name) < 0)
                    wrong++;
            }
            free(names[j]);
        }
        free(names);
    }
    printf("%u inputs, %u with the wrong verdict\n", files, wrong);
    return files == 0 || wrong > 0 ? 1 : 0;
}
