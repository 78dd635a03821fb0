/* What `conclave backup` and `conclave restore` share: SHA-256 (OpenSSL's libcrypto), byte
 * counts for people, progress on a terminal, and whether the daemon is running. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backup_manifest.h"

struct sha256;
int sha256_new(struct sha256 **ret);
void sha256_free(struct sha256 *h);
static inline void sha256_freep(struct sha256 **h) {
        sha256_free(*h);
}
int sha256_update(struct sha256 *h, const void *buf, size_t len);
/* Lower-case hex digest; the context is then reset for the next file. */
int sha256_final_hex(struct sha256 *h, char out[BACKUP_SHA256_HEX + 1]);

/* "512 B", "12.3 KiB", "4.0 MiB", "1.2 GiB". */
char *format_bytes(char *buf, size_t size, uint64_t bytes);
#define FORMAT_BYTES_MAX 32

/* Progress of one large file on stderr when it is a terminal: "\rPATH: DONE of TOTAL". */
struct progress {
        bool enabled;
        const char *what;
        uint64_t total, shown_at;
};
void progress_begin(struct progress *p, const char *what, uint64_t total);
void progress_update(struct progress *p, uint64_t done);
void progress_end(struct progress *p);

/* Is a Conclave daemon running for this user? True when the control socket answers (its path in
 * *ret_socket, optional) or when systemd reports conclave.service as active, activating,
 * reloading or deactivating (the state in ret_unit_state, optional, at least 32 bytes). */
bool daemon_running(char **ret_socket, char *ret_unit_state, size_t size);
