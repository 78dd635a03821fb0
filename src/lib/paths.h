/* Where Conclave keeps things: CONCLAVE_HOME (default ~/.conclave) and the runtime directory
 * ($XDG_RUNTIME_DIR/conclave, or $RUNTIME_DIRECTORY when systemd created it for us). */
#pragma once

#include <stddef.h>

/* All return newly allocated strings, or NULL with errno set (ENOENT when HOME is unset). */
char *paths_home(void);
char *paths_config_file(void);
char *paths_state_file(void);
char *paths_runtime_dir(void);
char *paths_control_socket(void);
char *paths_notify_socket(void);

/* Joins two path components with exactly one '/'. */
char *path_join(const char *a, const char *b);

/* mkdir -p with the given mode for each created component; 0 or -errno. */
int mkdir_parents(const char *path, unsigned mode);
