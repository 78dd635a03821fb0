/* Runs a fuzz target over files, without libFuzzer: each argument (a file or a directory of
 * files), or with none the target's committed corpus (FUZZ_CORPUS_DIR). For `make check` with any
 * compiler; a crash or a sanitizer report fails the test, and the input is named first. */

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fileio.h"
#include "fuzz.h"
#include "macro.h"

#define INPUT_MAX (1024u * 1024u)

static int run_file(const char *path) {
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        int r;

        r = read_file_bounded(path, INPUT_MAX, &data, &len);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(-r));
                return r;
        }
        /* Named before it runs: if it crashes, this is the last line. */
        fprintf(stderr, "running %s (%zu bytes)\n", path, len);
        /* An exact-size copy, so ASan sees a read past the input's end. */
        {
                _cleanup_free_ uint8_t *exact = malloc(len ? len : 1);
                if (!exact)
                        return -ENOMEM;
                memcpy(exact, data, len);
                (void) LLVMFuzzerTestOneInput(exact, len);
        }
        return 0;
}

static int cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static int run_path(const char *path, unsigned *count) {
        struct stat st;
        DIR *d;
        struct dirent *de;
        char **names = NULL;
        size_t n = 0;
        int r = 0;

        if (stat(path, &st) < 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                return -errno;
        }
        if (!S_ISDIR(st.st_mode)) {
                (*count)++;
                return run_file(path);
        }
        d = opendir(path);
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                char **grown;
                if (de->d_name[0] == '.')
                        continue;
                grown = realloc(names, (n + 1) * sizeof *names);
                if (!grown || asprintf(&grown[n], "%s/%s", path, de->d_name) < 0) {
                        names = grown ? grown : names;
                        r = -ENOMEM;
                        break;
                }
                names = grown;
                n++;
        }
        closedir(d);
        /* A fixed order, so a failure reproduces the same way. */
        if (n > 0)
                qsort(names, n, sizeof *names, cmp);
        for (size_t i = 0; i < n; i++) {
                if (r >= 0) {
                        (*count)++;
                        r = run_file(names[i]);
                }
                free(names[i]);
        }
        free(names);
        return r;
}

int main(int argc, char *argv[]) {
        unsigned count = 0;
        int r = 0;

        if (argc < 2)
                r = run_path(FUZZ_CORPUS_DIR, &count);
        for (int i = 1; i < argc && r >= 0; i++)
                r = run_path(argv[i], &count);
        if (r < 0)
                return EXIT_FAILURE;
        if (count == 0) {
                fprintf(stderr, "no inputs\n");
                return EXIT_FAILURE;
        }
        printf("%u inputs ran\n", count);
        return EXIT_SUCCESS;
}
