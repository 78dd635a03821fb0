/* Unit tests for fileio.c: atomic replacement and bounded reads, on a scratch directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fileio.h"
#include "macro.h"

struct scratch {
        char dir[64];
        mode_t old_umask;
};

static int scratch_setup(void **state) {
        struct scratch *s = calloc(1, sizeof *s);

        if (!s)
                return -1;
        strcpy(s->dir, "/tmp/test_fileio.XXXXXX"); /* fits */
        if (!mkdtemp(s->dir)) {
                free(s);
                return -1;
        }
        s->old_umask = umask(022);
        *state = s;
        return 0;
}

static void remove_tree(const char *path) {
        DIR *d = opendir(path);

        if (d) {
                struct dirent *de;
                while ((de = readdir(d))) {
                        _cleanup_free_ char *sub = NULL;
                        if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                                continue;
                        if (asprintf(&sub, "%s/%s", path, de->d_name) < 0)
                                continue;
                        if (unlink(sub) < 0 && errno == EISDIR)
                                remove_tree(sub);
                }
                closedir(d);
        }
        (void) rmdir(path);
}

static int scratch_teardown(void **state) {
        struct scratch *s = *state;

        umask(s->old_umask);
        remove_tree(s->dir);
        free(s);
        return 0;
}

static char *scratch_path(void **state, const char *name) {
        const struct scratch *s = *state;
        char *p = NULL;

        assert_true(asprintf(&p, "%s/%s", s->dir, name) > 0);
        return p;
}

static size_t count_entries(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *de;
        size_t n = 0;

        assert_non_null(d);
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        n++;
        closedir(d);
        return n;
}

static void write_plain(const char *path, const void *data, size_t len, mode_t mode) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, data, len), (ssize_t) len);
        assert_int_equal(fchmod(fd, mode), 0);
        assert_int_equal(close(fd), 0);
}

static void assert_file(const char *path, const char *content, mode_t mode) {
        _cleanup_free_ char *got = NULL;
        struct stat st;
        size_t len = 0;

        assert_int_equal(stat(path, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(st.st_mode & 07777, mode);
        assert_int_equal(read_file_bounded(path, 1 << 20, &got, &len), 0);
        assert_int_equal(len, strlen(content));
        assert_string_equal(got, content);
}

/* --- write_file_atomic ------------------------------------------------------------------- */

static void test_write_creates_with_mode(void **state) {
        _cleanup_free_ char *a = scratch_path(state, "a"), *b = scratch_path(state, "b");
        _cleanup_free_ char *c = scratch_path(state, "c");
        const struct scratch *s = *state;

        assert_int_equal(write_file_atomic(a, "secret\n", 7, 0600), 0);
        assert_file(a, "secret\n", 0600);
        assert_int_equal(write_file_atomic(b, "shared", 6, 0640), 0);
        assert_file(b, "shared", 0640);
        /* The mode is subject to the umask (022 here), like open(2). */
        assert_int_equal(write_file_atomic(c, "", 0, 0666), 0);
        assert_file(c, "", 0644);
        assert_int_equal(count_entries(s->dir), 3);
}

static void test_write_replaces(void **state) {
        _cleanup_free_ char *path = scratch_path(state, "state.json");
        const struct scratch *s = *state;
        char buf[64];
        ssize_t n;
        int fd;

        write_plain(path, "old content that is longer", 26, 0644);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);

        assert_int_equal(write_file_atomic(path, "new", 3, 0600), 0);
        /* No leftover of the longer old content, and the new file's mode. */
        assert_file(path, "new", 0600);
        /* A reader that opened the old file still sees all of the old content: the file was
         * replaced, not rewritten in place. */
        n = read(fd, buf, sizeof buf);
        close(fd);
        assert_int_equal(n, 26);
        assert_memory_equal(buf, "old content that is longer", 26);

        assert_int_equal(write_file_atomic(path, "newer", 5, 0600), 0);
        assert_file(path, "newer", 0600);
        /* Only the target remains: no temporary files. */
        assert_int_equal(count_entries(s->dir), 1);
}

static void test_write_binary(void **state) {
        _cleanup_free_ char *path = scratch_path(state, "bin"), *got = NULL;
        static const char data[] = { 'a', 0, 'b', '\n', (char) 0xff };
        size_t len = 0;

        assert_int_equal(write_file_atomic(path, data, sizeof data, 0600), 0);
        assert_int_equal(read_file_bounded(path, 100, &got, &len), 0);
        assert_int_equal(len, sizeof data);
        assert_memory_equal(got, data, sizeof data);
}

static void test_write_missing_directory(void **state) {
        _cleanup_free_ char *path = scratch_path(state, "no/such/dir/file");
        const struct scratch *s = *state;

        assert_int_equal(write_file_atomic(path, "x", 1, 0600), -ENOENT);
        assert_int_equal(access(path, F_OK), -1);
        assert_int_equal(count_entries(s->dir), 0);
}

static void test_write_rename_fails_cleanly(void **state) {
        _cleanup_free_ char *path = scratch_path(state, "target"), *inner = scratch_path(state, "target/keep");
        const struct scratch *s = *state;
        struct stat st;
        int r;

        /* The target is a non-empty directory: rename(2) must fail. */
        assert_int_equal(mkdir(path, 0755), 0);
        write_plain(inner, "keep", 4, 0644);
        r = write_file_atomic(path, "data", 4, 0600);
        assert_true(r == -EISDIR || r == -ENOTEMPTY || r == -EEXIST);
        assert_int_equal(stat(path, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_file(inner, "keep", 0644);
        /* The temporary file was removed. */
        assert_int_equal(count_entries(s->dir), 1);
}

static void test_write_stale_temp_file(void **state) {
        _cleanup_free_ char *path = scratch_path(state, "token"), *tmp = NULL;
        const struct scratch *s = *state;

        /* A crashed writer that had our pid left its temp file behind, world-readable and
         * longer than what we write now. */
        assert_true(asprintf(&tmp, "%s.tmp.%d", path, (int) getpid()) > 0);
        write_plain(tmp, "stale content, much longer", 26, 0666);

        assert_int_equal(write_file_atomic(path, "s3cret", 6, 0600), 0);
        assert_file(path, "s3cret", 0600);
        assert_int_equal(access(tmp, F_OK), -1);
        assert_int_equal(count_entries(s->dir), 1);
}

static void test_write_temp_symlink_not_followed(void **state) {
        _cleanup_free_ char *path = scratch_path(state, "conf"), *victim = scratch_path(state, "victim");
        _cleanup_free_ char *tmp = NULL;
        int r;

        write_plain(victim, "untouched", 9, 0644);
        assert_true(asprintf(&tmp, "%s.tmp.%d", path, (int) getpid()) > 0);
        assert_int_equal(symlink(victim, tmp), 0);

        r = write_file_atomic(path, "data", 4, 0600);
        /* Whether it succeeds or refuses, it must not write through the link. */
        assert_file(victim, "untouched", 0644);
        if (r == 0)
                assert_file(path, "data", 0600);
        else
                assert_int_equal(access(path, F_OK), -1);
}

/* --- read_file_bounded ------------------------------------------------------------------- */

static void test_read_exact_size(void **state) {
        _cleanup_free_ char *path = scratch_path(state, "f"), *got = NULL;
        char data[100];
        size_t len = 0;

        memset(data, 'q', sizeof data);
        write_plain(path, data, sizeof data, 0644);
        assert_int_equal(read_file_bounded(path, sizeof data, &got, &len), 0);
        assert_int_equal(len, sizeof data);
        assert_memory_equal(got, data, sizeof data);
        assert_int_equal(got[sizeof data], 0);
}

static void test_read_too_big(void **state) {
        _cleanup_free_ char *path = scratch_path(state, "f");
        static char sentinel[] = "sentinel";
        char data[101], *got = sentinel;
        size_t len = 12345;

        memset(data, 'q', sizeof data);
        write_plain(path, data, sizeof data, 0644);
        assert_int_equal(read_file_bounded(path, sizeof data - 1, &got, &len), -EFBIG);
        assert_ptr_equal(got, sentinel);
        assert_int_equal(len, 12345);
        assert_int_equal(read_file_bounded(path, 0, &got, &len), -EFBIG);
        assert_ptr_equal(got, sentinel);
}

static void test_read_missing(void **state) {
        _cleanup_free_ char *path = scratch_path(state, "absent");
        static char sentinel[] = "sentinel";
        char *got = sentinel;

        assert_int_equal(read_file_bounded(path, 100, &got, NULL), -ENOENT);
        assert_ptr_equal(got, sentinel);
}

static void test_read_empty(void **state) {
        _cleanup_free_ char *path = scratch_path(state, "empty"), *got = NULL, *got0 = NULL;
        size_t len = 12345;

        write_plain(path, "", 0, 0644);
        assert_int_equal(read_file_bounded(path, 100, &got, &len), 0);
        assert_non_null(got);
        assert_int_equal(len, 0);
        assert_string_equal(got, "");
        /* Even with max 0, and without asking for the length. */
        assert_int_equal(read_file_bounded(path, 0, &got0, NULL), 0);
        assert_string_equal(got0, "");
}

static void test_read_directory(void **state) {
        const struct scratch *s = *state;
        char *got = NULL;

        assert_int_equal(read_file_bounded(s->dir, 100, &got, NULL), -EISDIR);
        assert_null(got);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_write_creates_with_mode, scratch_setup, scratch_teardown),
                cmocka_unit_test_setup_teardown(test_write_replaces, scratch_setup, scratch_teardown),
                cmocka_unit_test_setup_teardown(test_write_binary, scratch_setup, scratch_teardown),
                cmocka_unit_test_setup_teardown(test_write_missing_directory, scratch_setup, scratch_teardown),
                cmocka_unit_test_setup_teardown(test_write_rename_fails_cleanly, scratch_setup, scratch_teardown),
                cmocka_unit_test_setup_teardown(test_write_stale_temp_file, scratch_setup, scratch_teardown),
                cmocka_unit_test_setup_teardown(test_write_temp_symlink_not_followed, scratch_setup, scratch_teardown),
                cmocka_unit_test_setup_teardown(test_read_exact_size, scratch_setup, scratch_teardown),
                cmocka_unit_test_setup_teardown(test_read_too_big, scratch_setup, scratch_teardown),
                cmocka_unit_test_setup_teardown(test_read_missing, scratch_setup, scratch_teardown),
                cmocka_unit_test_setup_teardown(test_read_empty, scratch_setup, scratch_teardown),
                cmocka_unit_test_setup_teardown(test_read_directory, scratch_setup, scratch_teardown),
        };

        return cmocka_run_group_tests_name("fileio", tests, NULL, NULL);
}
