/* Unit tests for auth.c: token sources and their order, file checks, the generated token,
 * Authorization header parsing, and the failed-attempt limiter. Runs in a scratch
 * $CONCLAVE_HOME and $CREDENTIALS_DIRECTORY. */
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

#include "auth.h"
#include "config.h"
#include "macro.h"

#define TOKEN_A "env-token-0123456789abcdef"
#define TOKEN_B "credential-token-0123456789"
#define TOKEN_C "file-token-0123456789abcdef"
#define TOKEN_D "inline-token-0123456789abcd"

struct scratch {
        char dir[64];
        char home[96];
        char creds[96];
        mode_t old_umask;
};

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
                        remove_tree(sub);
                }
                closedir(d);
                rmdir(path);
        } else
                unlink(path);
}

static int scratch_setup(void **state) {
        struct scratch *s = calloc(1, sizeof *s);

        if (!s)
                return -1;
        snprintf(s->dir, sizeof s->dir, "/tmp/test_auth.XXXXXX");
        if (!mkdtemp(s->dir)) {
                free(s);
                return -1;
        }
        snprintf(s->home, sizeof s->home, "%s/home", s->dir);
        snprintf(s->creds, sizeof s->creds, "%s/creds", s->dir);
        if (mkdir(s->home, 0700) < 0 || mkdir(s->creds, 0700) < 0)
                return -1;
        s->old_umask = umask(022);
        setenv("CONCLAVE_HOME", s->home, 1);
        unsetenv("CONCLAVE_WEB_TOKEN");
        unsetenv("CREDENTIALS_DIRECTORY");
        *state = s;
        return 0;
}

static int scratch_teardown(void **state) {
        struct scratch *s = *state;

        umask(s->old_umask);
        remove_tree(s->dir);
        unsetenv("CONCLAVE_HOME");
        unsetenv("CONCLAVE_WEB_TOKEN");
        unsetenv("CREDENTIALS_DIRECTORY");
        free(s);
        return 0;
}

static void write_file(const char *dir, const char *name, const char *content, mode_t mode) {
        _cleanup_free_ char *path = NULL;
        int fd;

        assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, content, strlen(content)), (ssize_t) strlen(content));
        assert_int_equal(fchmod(fd, mode), 0);
        assert_int_equal(close(fd), 0);
}

static struct config *parse(const char *text) {
        struct config *c = NULL;

        assert_int_equal(config_parse_text("test.toml", text, &c), 0);
        return c;
}

/* Loads with `text` as config.toml; asserts success and the source. */
static void load_ok(const char *text, bool loopback, enum gateway_token_source source, struct gateway_auth *a) {
        _cleanup_(config_freep) struct config *c = parse(text);
        char error[512] = "unchanged";
        int r;

        r = gateway_auth_load(c, loopback, a, error, sizeof error);
        if (r < 0)
                fail_msg("gateway_auth_load: %s: %s", strerror(-r), error);
        assert_string_equal(error, "");
        if (a->source != source)
                fail_msg("source %s, expected %s", gateway_token_source_to_string(a->source),
                         gateway_token_source_to_string(source));
}

/* Loads with `text`; asserts failure with `errnum` and a message holding every substring. */
static void load_fails(const char *text, int errnum, const char *sub1, const char *sub2) {
        _cleanup_(config_freep) struct config *c = parse(text);
        struct gateway_auth a = { .source = 99 };
        char error[512] = "";

        assert_int_equal(gateway_auth_load(c, true, &a, error, sizeof error), errnum);
        if (!strstr(error, sub1) || (sub2 && !strstr(error, sub2)))
                fail_msg("message \"%s\" lacks \"%s\" or \"%s\"", error, sub1, sub2 ? sub2 : "");
        /* *ret is untouched on failure. */
        assert_int_equal(a.source, 99);
}

static void assert_accepts(const struct gateway_auth *a, const char *token) {
        _cleanup_free_ char *h = NULL;

        assert_true(asprintf(&h, "Bearer %s", token) > 0);
        assert_int_equal(auth_check(a, h), AUTH_OK);
}

/* --- sources and their order ------------------------------------------------------------- */

static void test_order_of_sources(void **state) {
        struct scratch *s = *state;
        const char *all = "[gateway]\ntoken_file = \"web.token\"\ntoken = \"" TOKEN_D "\"\n";
        struct gateway_auth a;
        char line[512];

        write_file(s->home, "web.token", TOKEN_C "\n", 0600);
        write_file(s->creds, "gateway-token", TOKEN_B "\n", 0400);
        setenv("CREDENTIALS_DIRECTORY", s->creds, 1);
        setenv("CONCLAVE_WEB_TOKEN", TOKEN_A, 1);

        load_ok(all, true, GATEWAY_TOKEN_ENVIRONMENT, &a);
        assert_accepts(&a, TOKEN_A);
        assert_int_equal(auth_check(&a, "Bearer " TOKEN_B), AUTH_INVALID);
        assert_null(a.path);
        gateway_auth_describe(&a, line, sizeof line);
        assert_string_equal(line, "token from $CONCLAVE_WEB_TOKEN");
        gateway_auth_done(&a);

        /* An empty variable counts as unset (as for the config's bind check). */
        setenv("CONCLAVE_WEB_TOKEN", "", 1);
        load_ok(all, true, GATEWAY_TOKEN_CREDENTIAL, &a);
        assert_accepts(&a, TOKEN_B);
        assert_non_null(strstr(a.path, "/creds/gateway-token"));
        gateway_auth_describe(&a, line, sizeof line);
        assert_non_null(strstr(line, "token from systemd credential /"));
        assert_null(strstr(line, TOKEN_B));
        gateway_auth_done(&a);

        unsetenv("CREDENTIALS_DIRECTORY");
        load_ok(all, true, GATEWAY_TOKEN_FILE, &a);
        assert_accepts(&a, TOKEN_C);
        assert_int_equal(auth_check(&a, "Bearer " TOKEN_D), AUTH_INVALID);
        assert_non_null(strstr(a.path, "/home/web.token"));
        gateway_auth_done(&a);

        load_ok("[gateway]\ntoken = \"" TOKEN_D "\"\n", true, GATEWAY_TOKEN_CONFIG, &a);
        assert_accepts(&a, TOKEN_D);
        gateway_auth_done(&a);

        /* A credentials directory without gateway-token falls through to the next source. */
        setenv("CREDENTIALS_DIRECTORY", s->home, 1);
        load_ok("[gateway]\ntoken = \"" TOKEN_D "\"\n", true, GATEWAY_TOKEN_CONFIG, &a);
        gateway_auth_done(&a);
}

static void test_token_file_paths(void **state) {
        struct scratch *s = *state;
        _cleanup_free_ char *text = NULL;
        struct gateway_auth a;

        write_file(s->dir, "abs.token", TOKEN_C, 0400);
        assert_true(asprintf(&text, "[gateway]\ntoken_file = \"%s/abs.token\"\n", s->dir) > 0);
        load_ok(text, true, GATEWAY_TOKEN_FILE, &a);
        assert_accepts(&a, TOKEN_C);
        gateway_auth_done(&a);

        load_fails("[gateway]\ntoken_file = \"nope.token\"\n", -ENOENT, "/home/nope.token does not exist",
                   "mode 0600");
        load_fails("[gateway]\ntoken_file = \"..\"\n", -EINVAL, "is not a regular file", NULL);
}

static void test_token_file_must_be_private(void **state) {
        struct scratch *s = *state;
        struct gateway_auth a;

        write_file(s->home, "web.token", TOKEN_C "\n", 0640);
        load_fails("[gateway]\ntoken_file = \"web.token\"\n", -EPERM, "/home/web.token is accessible by group or others (mode 0640)",
                   "chmod 600 ");
        write_file(s->home, "web.token", TOKEN_C "\n", 0604);
        load_fails("[gateway]\ntoken_file = \"web.token\"\n", -EPERM, "(mode 0604)", "chmod 600");
        write_file(s->home, "web.token", TOKEN_C "\n", 0600);
        load_ok("[gateway]\ntoken_file = \"web.token\"\n", true, GATEWAY_TOKEN_FILE, &a);
        gateway_auth_done(&a);
}

static void test_token_file_credential(void **state) {
        struct scratch *s = *state;
        struct gateway_auth a;

        load_fails("[gateway]\ntoken_file = \"credential:web\"\n", -ENOENT, "$CREDENTIALS_DIRECTORY is not set",
                   "LoadCredential=web:");
        setenv("CREDENTIALS_DIRECTORY", s->creds, 1);
        load_fails("[gateway]\ntoken_file = \"credential:web\"\n", -ENOENT, "/creds/web does not exist", NULL);
        load_fails("[gateway]\ntoken_file = \"credential:../x\"\n", -EINVAL, "does not name a credential", NULL);
        load_fails("[gateway]\ntoken_file = \"credential:\"\n", -EINVAL, "does not name a credential", NULL);
        /* systemd owns the mode of credentials. */
        write_file(s->creds, "web", TOKEN_B, 0444);
        load_ok("[gateway]\ntoken_file = \"credential:web\"\n", true, GATEWAY_TOKEN_CREDENTIAL, &a);
        assert_accepts(&a, TOKEN_B);
        assert_non_null(strstr(a.path, "/creds/web"));
        gateway_auth_done(&a);
}

/* --- token content ----------------------------------------------------------------------- */

static void test_token_content(void **state) {
        struct scratch *s = *state;
        const char *cfg = "[gateway]\ntoken_file = \"web.token\"\n";
        struct gateway_auth a;

        write_file(s->home, "web.token", "0123456789abcdef\r\n", 0600);
        load_ok(cfg, true, GATEWAY_TOKEN_FILE, &a);
        assert_accepts(&a, "0123456789abcdef");
        gateway_auth_done(&a);

        write_file(s->home, "web.token", "", 0600);
        load_fails(cfg, -EINVAL, "web.token: the token is empty", NULL);
        write_file(s->home, "web.token", "\n", 0600);
        load_fails(cfg, -EINVAL, "the token is empty", NULL);
        write_file(s->home, "web.token", "0123456789abcde\n", 0600);
        load_fails(cfg, -EINVAL, "the token has 15 characters, fewer than 16", NULL);
        /* Only one newline is trimmed; anything else is not part of a header value. */
        write_file(s->home, "web.token", "0123456789abcdef\n\n", 0600);
        load_fails(cfg, -EINVAL, "printable ASCII", "byte 0x0a at position 17");
        write_file(s->home, "web.token", "0123456789 abcdef", 0600);
        load_fails(cfg, -EINVAL, "printable ASCII", "0x20");
        write_file(s->home, "web.token", "0123456789abcdef\xc3\xa9", 0600);
        load_fails(cfg, -EINVAL, "printable ASCII", "0xc3");

        {
                char big[GATEWAY_TOKEN_MAX + 8];
                memset(big, 'x', sizeof big - 1);
                big[sizeof big - 1] = 0;
                write_file(s->home, "web.token", big, 0600);
                load_fails(cfg, -EFBIG, "longer than 1024", NULL);
                big[GATEWAY_TOKEN_MAX] = '\n';
                big[GATEWAY_TOKEN_MAX + 1] = 0;
                write_file(s->home, "web.token", big, 0600);
                load_ok(cfg, true, GATEWAY_TOKEN_FILE, &a);
                big[GATEWAY_TOKEN_MAX] = 0;
                assert_accepts(&a, big);
                gateway_auth_done(&a);
        }

        /* The token never appears in a message. */
        setenv("CONCLAVE_WEB_TOKEN", "short-secret", 1);
        load_fails("", -EINVAL, "$CONCLAVE_WEB_TOKEN: the token has 12 characters", NULL);
        {
                _cleanup_(config_freep) struct config *c = parse("");
                char error[512];
                assert_true(gateway_auth_load(c, true, &a, error, sizeof error) < 0);
                assert_null(strstr(error, "short-secret"));
        }
        unsetenv("CONCLAVE_WEB_TOKEN");
        load_fails("[gateway]\ntoken = \"abc\"\n", -EINVAL, "[gateway] token: the token has 3 characters", NULL);
}

/* --- open and generated ------------------------------------------------------------------ */

static void test_open_on_loopback(void **state) {
        struct gateway_auth a;
        char line[256];

        (void) state;
        load_ok("[gateway]\nopen = true\n", true, GATEWAY_TOKEN_NONE, &a);
        assert_int_equal(auth_check(&a, NULL), AUTH_OK);
        assert_int_equal(auth_check(&a, "Bearer whatever"), AUTH_OK);
        gateway_auth_describe(&a, line, sizeof line);
        assert_string_equal(line, "no token: [gateway] open = true on a loopback listener");
        gateway_auth_done(&a);

        /* A configured token wins over open. */
        load_ok("[gateway]\nopen = true\ntoken = \"" TOKEN_D "\"\n", true, GATEWAY_TOKEN_CONFIG, &a);
        assert_int_equal(auth_check(&a, NULL), AUTH_MISSING);
        gateway_auth_done(&a);
}

static void test_generated_token(void **state) {
        struct scratch *s = *state;
        _cleanup_free_ char *path = NULL, *content = NULL;
        struct gateway_auth a, b;
        struct stat st;
        char line[512];
        uint8_t first[32];
        FILE *f;
        size_t n;

        assert_true(asprintf(&path, "%s/gateway.token", s->home) > 0);
        /* Not open on a listener that is not loopback-only, even with open = true. */
        load_ok("[gateway]\nopen = true\n", false, GATEWAY_TOKEN_GENERATED, &a);
        assert_true(a.created);
        assert_string_equal(a.path, path);
        gateway_auth_describe(&a, line, sizeof line);
        assert_non_null(strstr(line, "token from generated token file /"));
        assert_non_null(strstr(line, "(created now)"));
        memcpy(first, a.digest, sizeof first);

        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        content = calloc(1, 128);
        assert_non_null(content);
        f = fopen(path, "re");
        assert_non_null(f);
        n = fread(content, 1, 127, f);
        fclose(f);
        /* 32 random bytes, base64url without padding, and a newline. */
        assert_int_equal(n, 44);
        assert_int_equal(content[43], '\n');
        assert_int_equal(strspn(content, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 43);
        assert_int_equal(auth_check(&a, NULL), AUTH_MISSING);
        content[43] = 0;
        assert_accepts(&a, content);
        gateway_auth_done(&a);

        /* The next start reuses it. */
        load_ok("", true, GATEWAY_TOKEN_GENERATED, &b);
        assert_false(b.created);
        assert_memory_equal(b.digest, first, sizeof first);
        gateway_auth_done(&b);
        /* No temporary files are left. */
        {
                DIR *d = opendir(s->home);
                struct dirent *de;
                unsigned count = 0;
                assert_non_null(d);
                while ((de = readdir(d)))
                        count += de->d_name[0] != '.';
                closedir(d);
                assert_int_equal(count, 1);
        }

        /* Loosened permissions are refused, not silently used or replaced. */
        assert_int_equal(chmod(path, 0644), 0);
        load_fails("", -EPERM, "gateway.token is accessible by group or others", "chmod 600");
}

static void test_generated_token_creates_home(void **state) {
        struct scratch *s = *state;
        _cleanup_free_ char *home = NULL;
        struct gateway_auth a;
        struct stat st;

        assert_true(asprintf(&home, "%s/new/home", s->dir) > 0);
        setenv("CONCLAVE_HOME", home, 1);
        load_ok("", true, GATEWAY_TOKEN_GENERATED, &a);
        assert_true(a.created);
        gateway_auth_done(&a);
        assert_int_equal(stat(home, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0700);

        /* A home that cannot exist: the message names the file. */
        write_file(s->dir, "plain", "", 0600);
        free(home);
        assert_true(asprintf(&home, "%s/plain/home", s->dir) > 0);
        setenv("CONCLAVE_HOME", home, 1);
        load_fails("", -ENOTDIR, "/plain/home/gateway.token", NULL);
        setenv("CONCLAVE_HOME", s->home, 1);
}

/* --- Authorization header ---------------------------------------------------------------- */

static void test_authorization_header(void **state) {
        struct gateway_auth a;
        char *huge;

        (void) state;
        load_ok("[gateway]\ntoken = \"" TOKEN_D "\"\n", true, GATEWAY_TOKEN_CONFIG, &a);
        assert_int_equal(auth_check(&a, NULL), AUTH_MISSING);
        assert_int_equal(auth_check(&a, ""), AUTH_MISSING);
        assert_int_equal(auth_check(&a, "Basic dXNlcjpwYXNz"), AUTH_MISSING);
        assert_int_equal(auth_check(&a, "Bearer" TOKEN_D), AUTH_MISSING);
        assert_int_equal(auth_check(&a, "Bearer"), AUTH_INVALID);
        assert_int_equal(auth_check(&a, "Bearer   "), AUTH_INVALID);
        assert_int_equal(auth_check(&a, "Bearer " TOKEN_D), AUTH_OK);
        assert_int_equal(auth_check(&a, "bearer " TOKEN_D), AUTH_OK);
        assert_int_equal(auth_check(&a, "BEARER\t " TOKEN_D " \t"), AUTH_OK);
        assert_int_equal(auth_check(&a, "  Bearer " TOKEN_D), AUTH_OK);
        assert_int_equal(auth_check(&a, "Bearer " TOKEN_D "x"), AUTH_INVALID);
        assert_int_equal(auth_check(&a, "Bearer x" TOKEN_D), AUTH_INVALID);
        assert_int_equal(auth_check(&a, "Bearer inline-token-0123456789abc"), AUTH_INVALID);
        assert_int_equal(auth_check(&a, "Bearer " TOKEN_D " " TOKEN_D), AUTH_INVALID);
        huge = malloc(1 << 20);
        assert_non_null(huge);
        memcpy(huge, "Bearer ", 7);
        memset(huge + 7, 'a', (1 << 20) - 8);
        huge[(1 << 20) - 1] = 0;
        assert_int_equal(auth_check(&a, huge), AUTH_INVALID);
        free(huge);
        gateway_auth_done(&a);
}

/* --- failed-attempt limiter -------------------------------------------------------------- */

static void test_limiter(void **state) {
        struct auth_limiter l;
        const uint64_t t0 = 5000 * USEC_PER_SEC;

        (void) state;
        assert_int_equal(auth_limiter_init(&l), 0);
        for (int i = 0; i < AUTH_FAILURES_PER_MINUTE; i++) {
                assert_int_equal(auth_limiter_check(&l, "203.0.113.9", t0 + (uint64_t) i), 0);
                auth_limiter_failed(&l, "203.0.113.9", t0 + (uint64_t) i);
        }
        /* The eleventh attempt within the minute is refused, for six seconds (60 s / 10). */
        assert_int_equal(auth_limiter_check(&l, "203.0.113.9", t0 + 100), 6);
        assert_int_equal(auth_limiter_check(&l, "203.0.113.9", t0 + 5 * USEC_PER_SEC), 1);
        /* Another address is not affected. */
        assert_int_equal(auth_limiter_check(&l, "203.0.113.10", t0 + 100), 0);
        /* After the wait, one more attempt, then refused again. */
        assert_int_equal(auth_limiter_check(&l, "203.0.113.9", t0 + 6 * USEC_PER_SEC), 0);
        auth_limiter_failed(&l, "203.0.113.9", t0 + 6 * USEC_PER_SEC);
        assert_int_equal(auth_limiter_check(&l, "203.0.113.9", t0 + 6 * USEC_PER_SEC), 6);
        /* A minute of quiet restores the full allowance. */
        for (int i = 0; i < AUTH_FAILURES_PER_MINUTE; i++) {
                assert_int_equal(auth_limiter_check(&l, "203.0.113.9", t0 + 67 * USEC_PER_SEC), 0);
                auth_limiter_failed(&l, "203.0.113.9", t0 + 67 * USEC_PER_SEC);
        }
        assert_int_not_equal(auth_limiter_check(&l, "203.0.113.9", t0 + 67 * USEC_PER_SEC), 0);
        assert_true(l.n_failures == 2 * AUTH_FAILURES_PER_MINUTE + 1);
        assert_true(l.n_refused == 4);
        auth_limiter_done(&l);
        assert_null(l.failures);
}

int main(void) {
        static const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_order_of_sources, scratch_setup, scratch_teardown),
                cmocka_unit_test_setup_teardown(test_token_file_paths, scratch_setup, scratch_teardown),
                cmocka_unit_test_setup_teardown(test_token_file_must_be_private, scratch_setup, scratch_teardown),
                cmocka_unit_test_setup_teardown(test_token_file_credential, scratch_setup, scratch_teardown),
                cmocka_unit_test_setup_teardown(test_token_content, scratch_setup, scratch_teardown),
                cmocka_unit_test_setup_teardown(test_open_on_loopback, scratch_setup, scratch_teardown),
                cmocka_unit_test_setup_teardown(test_generated_token, scratch_setup, scratch_teardown),
                cmocka_unit_test_setup_teardown(test_generated_token_creates_home, scratch_setup, scratch_teardown),
                cmocka_unit_test_setup_teardown(test_authorization_header, scratch_setup, scratch_teardown),
                cmocka_unit_test(test_limiter),
        };
        return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}
