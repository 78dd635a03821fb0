/* Reading bounded files and replacing files atomically (temp file, fsync, rename, fsync dir). */
#pragma once

#include <stddef.h>

/* Reads at most `max` bytes; -EFBIG when the file is larger. *ret is NUL-terminated. */
int read_file_bounded(const char *path, size_t max, char **ret, size_t *ret_len);

/* Writes all of data to fd, retrying after EINTR and short writes; 0 or -errno. */
int write_all(int fd, const void *data, size_t len);

/* Writes `data` to `path` so readers see either the old or the new content, never a mix, and
 * the new content survives a crash once this returns 0. */
int write_file_atomic(const char *path, const void *data, size_t len, unsigned mode);
