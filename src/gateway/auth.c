/* Gateway bearer-token authentication (see auth.h). Only a SHA-256 digest of the token is
 * kept; requests are checked by comparing digests, so the time taken does not depend on how
 * much of a guess is right or on the token's length. */

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "fileio.h"
#include "macro.h"
#include "paths.h"

#define GENERATED_TOKEN_BYTES 32

static int fail(char *error, size_t size, int r, const char *fmt, ...) _printf_(4, 5);
static int fail(char *error, size_t size, int r, const char *fmt, ...) {
        va_list ap;

        if (size > 0) {
                va_start(ap, fmt);
                vsnprintf(error, size, fmt, ap);
                va_end(ap);
        }
        return r;
}

static int sha256(const void *data, size_t len, uint8_t out[32]) {
        unsigned out_len = 0;

        if (!EVP_Digest(len ? data : "", len, out, &out_len, EVP_sha256(), NULL) || out_len != 32)
                return -EIO;
        return 0;
}

/* Takes the token in buf[0..len) (one trailing newline allowed) into a->digest. `origin` names
 * where it came from in messages. */
static int token_accept(struct gateway_auth *a, const char *buf, size_t len, const char *origin,
                        char *error, size_t error_size) {
        if (len > 0 && buf[len - 1] == '\n') {
                len--;
                if (len > 0 && buf[len - 1] == '\r')
                        len--;
        }
        if (len == 0)
                return fail(error, error_size, -EINVAL, "%s: the token is empty", origin);
        if (len > GATEWAY_TOKEN_MAX)
                return fail(error, error_size, -EINVAL, "%s: the token is longer than %d characters",
                            origin, GATEWAY_TOKEN_MAX);
        for (size_t i = 0; i < len; i++)
                if (buf[i] < 0x21 || buf[i] > 0x7e)
                        return fail(error, error_size, -EINVAL,
                                    "%s: the token may only hold printable ASCII characters without "
                                    "spaces (found byte 0x%02x at position %zu)",
                                    origin, (unsigned char) buf[i], i + 1);
        if (len < GATEWAY_TOKEN_MIN)
                return fail(error, error_size, -EINVAL,
                            "%s: the token has %zu characters, fewer than %d; make a longer one, "
                            "e.g. openssl rand -hex 32",
                            origin, len, GATEWAY_TOKEN_MIN);
        if (sha256(buf, len, a->digest) < 0)
                return fail(error, error_size, -EIO, "%s: SHA-256 failed", origin);
        return 0;
}

/* Reads a token file. -ENOENT is returned without a message, for callers that fall through to
 * the next source. private_only: refuse files group or others may access. */
static int token_read_file(struct gateway_auth *a, const char *path, bool private_only, char *error,
                           size_t error_size) {
        _cleanup_close_ int fd = -EBADF;
        char buf[GATEWAY_TOKEN_MAX + 3]; /* the token, "\r\n", and one byte to see it is longer */
        size_t len = 0;
        struct stat st;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                int r = negative_errno();
                if (r == -ENOENT)
                        return r;
                return fail(error, error_size, r, "cannot open token file %s: %s", path, strerror(-r));
        }
        if (fstat(fd, &st) < 0)
                return fail(error, error_size, negative_errno(), "cannot stat token file %s", path);
        if (!S_ISREG(st.st_mode))
                return fail(error, error_size, -EINVAL, "token file %s is not a regular file", path);
        if (private_only && (st.st_mode & 0077))
                return fail(error, error_size, -EPERM,
                            "token file %s is accessible by group or others (mode %04o); "
                            "fix: chmod 600 %s",
                            path, (unsigned) (st.st_mode & 07777), path);
        while (len < sizeof buf) {
                ssize_t n = read(fd, buf + len, sizeof buf - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return fail(error, error_size, negative_errno(), "cannot read token file %s", path);
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        if (len == sizeof buf)
                return fail(error, error_size, -EFBIG, "token file %s: the token is longer than %d characters",
                            path, GATEWAY_TOKEN_MAX);
        return token_accept(a, buf, len, path, error, error_size);
}

static int set_path(struct gateway_auth *a, const char *path) {
        a->path = strdup(path);
        return a->path ? 0 : -ENOMEM;
}

/* token_file = "credential:NAME": the file systemd passes for LoadCredential=NAME. */
static int credential_path(const char *name, char **ret, char *error, size_t error_size) {
        const char *dir = getenv("CREDENTIALS_DIRECTORY");

        if (!*name || strchr(name, '/') || streq(name, ".") || streq(name, ".."))
                return fail(error, error_size, -EINVAL,
                            "[gateway] token_file: \"credential:%s\" does not name a credential", name);
        if (!dir || !*dir)
                return fail(error, error_size, -ENOENT,
                            "[gateway] token_file = \"credential:%s\" but $CREDENTIALS_DIRECTORY is not "
                            "set; give the service LoadCredential=%s:/path/to/token (systemd.exec(5))",
                            name, name);
        *ret = path_join(dir, name);
        return *ret ? 0 : -ENOMEM;
}

static int base64url(const uint8_t *data, size_t len, char *out, size_t size) {
        int n;

        if (size < 4 * ((len + 2) / 3) + 1)
                return -ENOBUFS;
        n = EVP_EncodeBlock((unsigned char *) out, data, (int) len);
        if (n < 0)
                return -EIO;
        while (n > 0 && out[n - 1] == '=')
                n--;
        out[n] = 0;
        for (int i = 0; i < n; i++)
                out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
        return n;
}

/* $CONCLAVE_HOME/gateway.token: read it, or create it. The new file is written completely and
 * synced under a temporary name, then linked into place, which fails if another process
 * created it first; then theirs is read. */
static int token_generated(struct gateway_auth *a, char *error, size_t error_size) {
        _cleanup_free_ char *home = paths_home(), *path = NULL, *tmp = NULL;
        uint8_t random[GENERATED_TOKEN_BYTES];
        char token[64];
        int r, n;

        if (!home)
                return fail(error, error_size, -ENOENT,
                            "no gateway token is configured and there is no home directory to create "
                            "%s in; set $CONCLAVE_HOME or configure [gateway] token_file",
                            GATEWAY_GENERATED_TOKEN_FILE);
        path = path_join(home, GATEWAY_GENERATED_TOKEN_FILE);
        if (!path || set_path(a, path) < 0)
                return -ENOMEM;
        a->source = GATEWAY_TOKEN_GENERATED;
        r = token_read_file(a, path, true, error, error_size);
        if (r != -ENOENT)
                return r;

        r = mkdir_parents(home, 0700);
        if (r < 0)
                return fail(error, error_size, r, "cannot create %s: %s", home, strerror(-r));
        if (getrandom(random, sizeof random, 0) != (ssize_t) sizeof random)
                return fail(error, error_size, negative_errno(), "getrandom() failed");
        n = base64url(random, sizeof random, token, sizeof token);
        OPENSSL_cleanse(random, sizeof random);
        if (n < 0)
                return fail(error, error_size, n, "cannot encode the generated token");
        token[n++] = '\n';
        if (asprintf(&tmp, "%s.new.%d", path, (int) getpid()) < 0)
                return -ENOMEM;
        r = write_file_atomic(tmp, token, (size_t) n, 0600);
        if (r < 0) {
                OPENSSL_cleanse(token, sizeof token);
                return fail(error, error_size, r, "cannot write %s: %s", tmp, strerror(-r));
        }
        if (link(tmp, path) < 0) {
                r = negative_errno();
                (void) unlink(tmp);
                OPENSSL_cleanse(token, sizeof token);
                if (r == -EEXIST)
                        return token_read_file(a, path, true, error, error_size);
                return fail(error, error_size, r, "cannot create %s: %s", path, strerror(-r));
        }
        (void) unlink(tmp);
        {
                /* The link must be durable like the rename write_file_atomic() synced. */
                _cleanup_close_ int dfd = open(home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd >= 0)
                        (void) fsync(dfd);
        }
        a->created = true;
        r = token_accept(a, token, (size_t) n, path, error, error_size);
        OPENSSL_cleanse(token, sizeof token);
        return r;
}

static int token_find(const struct config *c, bool loopback, struct gateway_auth *a, char *error,
                      size_t error_size) {
        const char *env = getenv("CONCLAVE_WEB_TOKEN");
        const char *creds = getenv("CREDENTIALS_DIRECTORY");
        int r;

        if (env && *env) {
                a->source = GATEWAY_TOKEN_ENVIRONMENT;
                return token_accept(a, env, strlen(env), "$CONCLAVE_WEB_TOKEN", error, error_size);
        }
        if (creds && *creds) {
                _cleanup_free_ char *path = path_join(creds, GATEWAY_CREDENTIAL_NAME);
                if (!path)
                        return -ENOMEM;
                /* systemd makes credentials private to the service; their mode is its business. */
                r = token_read_file(a, path, false, error, error_size);
                if (r != -ENOENT) {
                        a->source = GATEWAY_TOKEN_CREDENTIAL;
                        return set_path(a, path) < 0 ? -ENOMEM : r;
                }
        }
        if (c->gateway_token_file) {
                _cleanup_free_ char *home = NULL, *path = NULL;
                const char *f = c->gateway_token_file;

                if (strncmp(f, "credential:", 11) == 0) {
                        a->source = GATEWAY_TOKEN_CREDENTIAL;
                        r = credential_path(f + 11, &path, error, error_size);
                        if (r < 0)
                                return r;
                } else {
                        a->source = GATEWAY_TOKEN_FILE;
                        if (f[0] != '/') {
                                home = paths_home();
                                if (!home)
                                        return fail(error, error_size, -ENOENT,
                                                    "[gateway] token_file \"%s\" is relative but there is no "
                                                    "home directory; set $CONCLAVE_HOME or use an absolute path",
                                                    f);
                        }
                        path = home ? path_join(home, f) : strdup(f);
                        if (!path)
                                return -ENOMEM;
                }
                if (set_path(a, path) < 0)
                        return -ENOMEM;
                r = token_read_file(a, path, a->source == GATEWAY_TOKEN_FILE, error, error_size);
                if (r == -ENOENT)
                        return fail(error, error_size, r,
                                    "[gateway] token_file %s does not exist; create it (mode 0600) or fix the path",
                                    path);
                return r;
        }
        if (c->gateway_token) {
                a->source = GATEWAY_TOKEN_CONFIG;
                return token_accept(a, c->gateway_token, strlen(c->gateway_token), "[gateway] token",
                                    error, error_size);
        }
        if (c->gateway_open && loopback) {
                a->source = GATEWAY_TOKEN_NONE;
                return 0;
        }
        return token_generated(a, error, error_size);
}

int gateway_auth_load(const struct config *c, bool loopback, struct gateway_auth *ret, char *error,
                      size_t error_size) {
        struct gateway_auth a = {};
        int r;

        if (error_size > 0)
                error[0] = 0;
        r = token_find(c, loopback, &a, error, error_size);
        if (r < 0) {
                if (r == -ENOMEM && error_size > 0 && !error[0])
                        fail(error, error_size, r, "out of memory");
                gateway_auth_done(&a);
                return r;
        }
        *ret = a;
        return 0;
}

void gateway_auth_done(struct gateway_auth *a) {
        free(a->path);
        OPENSSL_cleanse(a, sizeof *a);
}

const char *gateway_token_source_to_string(enum gateway_token_source s) {
        switch (s) {
        case GATEWAY_TOKEN_NONE: return "none (open)";
        case GATEWAY_TOKEN_ENVIRONMENT: return "$CONCLAVE_WEB_TOKEN";
        case GATEWAY_TOKEN_CREDENTIAL: return "systemd credential";
        case GATEWAY_TOKEN_FILE: return "[gateway] token_file";
        case GATEWAY_TOKEN_CONFIG: return "[gateway] token";
        case GATEWAY_TOKEN_GENERATED: return "generated token file";
        }
        return "?";
}

void gateway_auth_describe(const struct gateway_auth *a, char *buf, size_t size) {
        if (a->source == GATEWAY_TOKEN_NONE)
                snprintf(buf, size, "no token: [gateway] open = true on a loopback listener");
        else
                snprintf(buf, size, "token from %s%s%s%s", gateway_token_source_to_string(a->source),
                         a->path ? " " : "", a->path ? a->path : "",
                         a->created ? " (created now)" : "");
}

enum auth_result auth_check(const struct gateway_auth *a, const char *h) {
        uint8_t digest[32];
        size_t len;

        if (a->source == GATEWAY_TOKEN_NONE)
                return AUTH_OK;
        if (!h)
                return AUTH_MISSING;
        while (*h == ' ' || *h == '\t')
                h++;
        /* RFC 7235: the scheme is case-insensitive, then one or more spaces, then credentials. */
        if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != 0 && h[6] != ' ' && h[6] != '\t'))
                return AUTH_MISSING;
        h += 6;
        while (*h == ' ' || *h == '\t')
                h++;
        len = strnlen(h, GATEWAY_TOKEN_MAX + 1);
        while (len > 0 && (h[len - 1] == ' ' || h[len - 1] == '\t'))
                len--;
        /* Too long to be any token: says nothing about the real one. */
        if (len == 0 || len > GATEWAY_TOKEN_MAX)
                return AUTH_INVALID;
        if (sha256(h, len, digest) < 0)
                return AUTH_INVALID;
        return CRYPTO_memcmp(digest, a->digest, sizeof digest) == 0 ? AUTH_OK : AUTH_INVALID;
}

int auth_limiter_init(struct auth_limiter *l) {
        *l = (struct auth_limiter){};
        return ratelimit_new(AUTH_FAILURES_PER_MINUTE, AUTH_FAILURES_PER_MINUTE, RATELIMIT_CAPACITY_DEFAULT,
                             &l->failures);
}

void auth_limiter_done(struct auth_limiter *l) {
        l->failures = ratelimit_free(l->failures);
}

unsigned auth_limiter_check(struct auth_limiter *l, const char *client, uint64_t now_usec) {
        unsigned wait = ratelimit_peek(l->failures, client, now_usec);

        if (wait > 0)
                l->n_refused++;
        return wait;
}

void auth_limiter_failed(struct auth_limiter *l, const char *client, uint64_t now_usec) {
        l->n_failures++;
        (void) ratelimit_take(l->failures, client, now_usec);
}
