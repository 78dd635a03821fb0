/* Locations of Conclave's files (see paths.h). */

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "paths.h"

char *path_join(const char *a, const char *b) {
        size_t la = strlen(a);
        char *r;

        while (la > 1 && a[la - 1] == '/')
                la--;
        while (*b == '/')
                b++;
        if (asprintf(&r, "%.*s/%s", (int) la, a, b) < 0)
                return NULL;
        return r;
}

char *paths_home(void) {
        const char *e = getenv("CONCLAVE_HOME");
        const char *home;

        if (e && *e)
                return strdup(e);
        home = getenv("HOME");
        if (!home || !*home) {
                struct passwd *pw = getpwuid(getuid());
                home = pw ? pw->pw_dir : NULL;
        }
        if (!home || !*home) {
                errno = ENOENT;
                return NULL;
        }
        return path_join(home, ".conclave");
}

static char *home_file(const char *name) {
        _cleanup_free_ char *home = paths_home();
        return home ? path_join(home, name) : NULL;
}

char *paths_config_file(void) {
        const char *e = getenv("CONCLAVE_CONFIG");
        return e && *e ? strdup(e) : home_file("config.toml");
}

char *paths_state_file(void) {
        return home_file("daemon_state.json");
}

char *paths_runtime_dir(void) {
        const char *e = getenv("CONCLAVE_RUNTIME_DIR");
        char *r;

        if (e && *e)
                return strdup(e);
        e = getenv("XDG_RUNTIME_DIR");
        if (e && *e)
                return path_join(e, "conclave");
        /* No login session (e.g. a container shell): a private per-user directory in /tmp. */
        if (asprintf(&r, "/tmp/conclave-%u", (unsigned) getuid()) < 0)
                return NULL;
        return r;
}

static char *runtime_file(const char *name) {
        _cleanup_free_ char *dir = paths_runtime_dir();
        return dir ? path_join(dir, name) : NULL;
}

char *paths_control_socket(void) {
        return runtime_file("control.sock");
}

char *paths_notify_socket(void) {
        return runtime_file("notify.sock");
}

int mkdir_parents(const char *path, unsigned mode) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return negative_errno();
                *s = '/';
        }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return negative_errno();
        return 0;
}
