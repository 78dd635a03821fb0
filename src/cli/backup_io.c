/* Helpers shared by backup.c and restore.c (see backup_io.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backup_io.h"
#include "control.h"
#include "macro.h"
#include "paths.h"

#define PROGRESS_MIN (8u * 1024u * 1024u)  /* smaller files finish before anyone would look */
#define PROGRESS_STEP (4u * 1024u * 1024u)

struct sha256 {
        EVP_MD_CTX *ctx;
};

int sha256_new(struct sha256 **ret) {
        struct sha256 *h = calloc(1, sizeof *h);

        if (!h)
                return -ENOMEM;
        h->ctx = EVP_MD_CTX_new();
        if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
                sha256_free(h);
                return -ENOMEM;
        }
        *ret = h;
        return 0;
}

void sha256_free(struct sha256 *h) {
        if (!h)
                return;
        EVP_MD_CTX_free(h->ctx);
        free(h);
}

int sha256_update(struct sha256 *h, const void *buf, size_t len) {
        return EVP_DigestUpdate(h->ctx, buf, len) == 1 ? 0 : -EIO;
}

int sha256_final_hex(struct sha256 *h, char out[BACKUP_SHA256_HEX + 1]) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned len = 0;

        if (EVP_DigestFinal_ex(h->ctx, md, &len) != 1 || len * 2 != BACKUP_SHA256_HEX)
                return -EIO;
        for (unsigned i = 0; i < len; i++)
                snprintf(out + 2 * i, 3, "%02x", md[i]);
        return EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) == 1 ? 0 : -EIO;
}

char *format_bytes(char *buf, size_t size, uint64_t bytes) {
        static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
        double v = (double) bytes;
        size_t u = 0;

        if (bytes < 1024) {
                snprintf(buf, size, "%" PRIu64 " B", bytes);
                return buf;
        }
        v /= 1024.0;
        while (v >= 1024.0 && u + 1 < ELEMENTSOF(units)) {
                v /= 1024.0;
                u++;
        }
        snprintf(buf, size, "%.1f %s", v, units[u]);
        return buf;
}

void progress_begin(struct progress *p, const char *what, uint64_t total) {
        *p = (struct progress){ .what = what, .total = total };
        p->enabled = total >= PROGRESS_MIN && isatty(STDERR_FILENO);
}

void progress_update(struct progress *p, uint64_t done) {
        char a[FORMAT_BYTES_MAX], b[FORMAT_BYTES_MAX];

        if (!p->enabled || (done < p->shown_at + PROGRESS_STEP && done < p->total))
                return;
        p->shown_at = done;
        fprintf(stderr, "\r%s: %s of %s ", p->what, format_bytes(a, sizeof a, done), format_bytes(b, sizeof b, p->total));
        fflush(stderr);
}

void progress_end(struct progress *p) {
        if (p->enabled)
                fputc('\n', stderr);
        p->enabled = false;
}

/* `systemctl --user is-active conclave.service`, its one-word answer. */
static int unit_state(char *buf, size_t size) {
        int pipefd[2], status;
        ssize_t n;
        size_t len = 0;
        pid_t pid;

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return negative_errno();
        pid = fork();
        if (pid < 0) {
                close(pipefd[0]);
                close(pipefd[1]);
                return negative_errno();
        }
        if (pid == 0) {
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (dup2(pipefd[1], STDOUT_FILENO) < 0 || (null >= 0 && dup2(null, STDERR_FILENO) < 0))
                        _exit(127);
                execl(SYSTEMCTL_PATH, SYSTEMCTL_PATH, "--user", "is-active", "conclave.service", (char *) NULL);
                _exit(127);
        }
        close(pipefd[1]);
        while (len + 1 < size && (n = read(pipefd[0], buf + len, size - 1 - len)) != 0) {
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                len += (size_t) n;
        }
        buf[len] = 0;
        buf[strcspn(buf, "\n")] = 0;
        close(pipefd[0]);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return negative_errno();
        return 0;
}

bool daemon_running(char **ret_socket, char *ret_unit_state, size_t size) {
        static const char *const running[] = { "active", "activating", "reloading", "deactivating", "refreshing" };
        _cleanup_free_ char *path = paths_control_socket();
        char state[32] = "";
        int fd = path ? control_connect(path) : -ENOMEM;

        if (ret_unit_state && size)
                *ret_unit_state = 0;
        if (fd >= 0) {
                close(fd);
                if (ret_socket) {
                        *ret_socket = path;
                        path = NULL;
                }
                return true;
        }
        if (unit_state(state, sizeof state) < 0)
                return false;
        for (size_t i = 0; i < ELEMENTSOF(running); i++)
                if (streq(state, running[i])) {
                        if (ret_unit_state && size)
                                snprintf(ret_unit_state, size, "%s", state);
                        return true;
                }
        return false;
}
