/* The ledger index file's header, version and migration (see ledger_index.h). */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "ledger_index.h"
#include "macro.h"

#define COPY_BLOCK (1024u * 1024u)

void ledger_index_header_init(uint8_t header[LEDGER_INDEX_HEADER_SIZE]) {
        uint32_t v = htole32(LEDGER_INDEX_FORMAT_VERSION);

        memset(header, 0, LEDGER_INDEX_HEADER_SIZE);
        memcpy(header, LEDGER_INDEX_MAGIC, 8);
        memcpy(header + 8, &v, sizeof v);
}

static int read_prefix(int fd, uint8_t *buf, size_t n) {
        size_t done = 0;

        while (done < n) {
                ssize_t k = pread(fd, buf + done, n - done, (off_t) done);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno();
                if (k == 0)
                        return -ENODATA;
                done += (size_t) k;
        }
        return 0;
}

static int fd_version(int fd, unsigned *ret) {
        uint8_t header[LEDGER_INDEX_HEADER_SIZE];
        uint32_t v;
        struct stat st;
        int r;

        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;
        if (st.st_size == 0) {
                *ret = 0;
                return 0;
        }
        if (st.st_size < 8)
                return -EBADMSG;
        r = read_prefix(fd, header, st.st_size >= (off_t) LEDGER_INDEX_HEADER_SIZE ? LEDGER_INDEX_HEADER_SIZE : 8);
        if (r < 0)
                return r == -ENODATA ? -EBADMSG : r;
        if (memcmp(header, LEDGER_INDEX_MAGIC, 8) == 0) {
                if (st.st_size < (off_t) LEDGER_INDEX_HEADER_SIZE)
                        return -EBADMSG;
                memcpy(&v, header + 8, sizeof v);
                v = le32toh(v);
                if (v == 0)
                        return -EBADMSG;
                *ret = v;
                return 0;
        }
        /* Version 0: whole entries, the first being the offset of seq 1, which is 0. */
        for (size_t i = 0; i < 8; i++)
                if (header[i] != 0)
                        return -EBADMSG;
        if (st.st_size % 8 != 0)
                return -EBADMSG;
        *ret = 0;
        return 0;
}

int ledger_index_file_version(const char *path, unsigned *ret) {
        _cleanup_close_ int fd = -EBADF;

        if (!path || !ret)
                return -EINVAL;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
        if (fd < 0)
                return negative_errno();
        return fd_version(fd, ret);
}

/* The header, then every byte of fd, to out; synced. */
static int copy_with_header(int fd, int out) {
        _cleanup_free_ char *buf = malloc(COPY_BLOCK);
        uint8_t header[LEDGER_INDEX_HEADER_SIZE];
        off_t at = 0;
        int r;

        if (!buf)
                return -ENOMEM;
        ledger_index_header_init(header);
        r = write_all(out, header, sizeof header);
        while (r == 0) {
                ssize_t k = pread(fd, buf, COPY_BLOCK, at);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno();
                if (k == 0)
                        break;
                r = write_all(out, buf, (size_t) k);
                at += k;
        }
        if (r == 0 && fsync(out) < 0)
                r = negative_errno();
        return r;
}

int ledger_index_migrate_v0(const char *path) {
        _cleanup_free_ char *tmp = NULL, *dircopy = NULL;
        _cleanup_close_ int fd = -EBADF, out = -EBADF, dfd = -EBADF;
        unsigned version;
        int r;

        if (!path)
                return -EINVAL;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
        if (fd < 0)
                return negative_errno();
        r = fd_version(fd, &version);
        if (r < 0)
                return r;
        if (version != 0)
                return -EBADMSG;
        if (asprintf(&tmp, "%s.migrate.%d", path, (int) getpid()) < 0)
                return -ENOMEM;
        (void) unlink(tmp);
        out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (out < 0)
                return negative_errno();
        r = copy_with_header(fd, out);
        if (r == 0 && rename(tmp, path) < 0)
                r = negative_errno();
        if (r < 0) {
                (void) unlink(tmp);
                return r;
        }
        dircopy = strdup(path);
        if (!dircopy)
                return -ENOMEM;
        dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0)
                (void) fsync(dfd);
        return 0;
}
