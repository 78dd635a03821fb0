/* `conclave service …`: the user unit through `systemctl --user`. `install` writes a unit only
 * when no installed one runs this Conclave's supervisor (a `make install` to another prefix). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "fileio.h"
#include "macro.h"
#include "paths.h"
#include "unit-template.h"

#define UNIT_NAME "conclave.service"
#define UNIT_MARKER "# Written by `conclave service install`; `conclave service uninstall` removes it.\n"

static char *user_unit_dir(void) {
        const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
        if (xdg && *xdg)
                return path_join(xdg, "systemd/user");
        if (home && *home)
                return path_join(home, ".config/systemd/user");
        errno = ENOENT;
        return NULL;
}

static int systemctl(const char *verb, const char *arg) {
        char *argv[] = { (char *) SYSTEMCTL_PATH, (char *) "--user", (char *) verb, (char *) arg, NULL, NULL };
        if (streq(verb, "status"))
                argv[4] = (char *) "--no-pager";
        return cli_run(argv);
}

/* Does an installed unit (outside our own user unit dir) start this very supervisor? */
static char *find_system_unit(const char *supervisor) {
        const char *dirs[] = { "/etc/systemd/user", "/usr/local/lib/systemd/user", "/usr/lib/systemd/user",
                               SYSTEMDUSERUNITDIR };
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                _cleanup_free_ char *unit = path_join(dirs[i], UNIT_NAME), *text = NULL, *needle = NULL;
                if (!unit || read_file_bounded(unit, 65536, &text, NULL) < 0)
                        continue;
                if (asprintf(&needle, "ExecStart=%s\n", supervisor) < 0)
                        return NULL;
                if (strstr(text, needle)) {
                        char *r = unit;
                        unit = NULL;
                        return r;
                }
        }
        return NULL;
}

static char *render_unit(const char *supervisor) {
        const char *t = unit_template, *at;
        size_t n = 0, len;
        char *out, *o;

        for (at = strstr(t, "@SUPERVISOR@"); at; at = strstr(at + 1, "@SUPERVISOR@"))
                n++;
        len = strlen(UNIT_MARKER) + strlen(t) + n * strlen(supervisor) + 1;
        out = malloc(len);

        if (!out)
                return NULL;
        o = stpcpy(out, UNIT_MARKER);
        while ((at = strstr(t, "@SUPERVISOR@"))) {
                o = mempcpy(o, t, (size_t) (at - t));
                o = stpcpy(o, supervisor);
                t = at + strlen("@SUPERVISOR@");
        }
        strcpy(o, t);
        return out;
}

static int service_install(void) {
        _cleanup_free_ char *supervisor = cli_find_program("conclave-supervisor"), *dir = user_unit_dir(),
                          *unit = NULL, *existing = NULL, *text = NULL, *system_unit = NULL;
        int r;

        if (!supervisor || !dir) {
                fprintf(stderr, "conclave service install: cannot determine paths (is HOME set?)\n");
                return EXIT_FAILURE;
        }
        if (access(supervisor, X_OK) < 0) {
                fprintf(stderr, "conclave service install: %s is missing; reinstall Conclave\n", supervisor);
                return EXIT_FAILURE;
        }
        unit = path_join(dir, UNIT_NAME);
        system_unit = find_system_unit(supervisor);
        if (system_unit) {
                printf("Using the installed unit %s.\n", system_unit);
        } else {
                if (read_file_bounded(unit, 65536, &existing, NULL) == 0 && !strstr(existing, UNIT_MARKER)) {
                        fprintf(stderr,
                                "conclave service install: %s exists and was not written by Conclave; "
                                "remove or rename it first\n", unit);
                        return EXIT_FAILURE;
                }
                text = render_unit(supervisor);
                if (!text)
                        return EXIT_FAILURE;
                r = mkdir_parents(dir, 0755);
                if (r >= 0)
                        r = write_file_atomic(unit, text, strlen(text), 0644);
                if (r < 0) {
                        fprintf(stderr, "conclave service install: cannot write %s: %s\n", unit, strerror(-r));
                        return EXIT_FAILURE;
                }
                printf("Wrote %s (ExecStart=%s).\n", unit, supervisor);
        }
        r = systemctl("daemon-reload", NULL);
        if (r == 0)
                r = systemctl("enable", UNIT_NAME);
        if (r != 0) {
                fprintf(stderr, "conclave service install: systemctl --user failed (is the user manager running?)\n");
                return EXIT_FAILURE;
        }
        printf("Enabled %s. Start it with: conclave service start\n", UNIT_NAME);
        return EXIT_SUCCESS;
}

static int service_uninstall(void) {
        _cleanup_free_ char *dir = user_unit_dir(), *unit = NULL, *text = NULL;

        if (!dir)
                return EXIT_FAILURE;
        unit = path_join(dir, UNIT_NAME);
        (void) systemctl("stop", UNIT_NAME);
        (void) systemctl("disable", UNIT_NAME);
        if (unit && read_file_bounded(unit, 65536, &text, NULL) == 0) {
                if (!strstr(text, UNIT_MARKER)) {
                        printf("Left %s in place: it was not written by Conclave.\n", unit);
                } else if (unlink(unit) < 0) {
                        fprintf(stderr, "conclave service uninstall: cannot remove %s: %s\n", unit, strerror(errno));
                        return EXIT_FAILURE;
                } else
                        printf("Removed %s.\n", unit);
        }
        (void) systemctl("daemon-reload", NULL);
        printf("Conclave's data in %s is kept.\n", getenv("CONCLAVE_HOME") ?: "~/.conclave");
        return EXIT_SUCCESS;
}

int cmd_service(int argc, char **argv) {
        static const char *const passthrough[] = { "start", "stop", "restart", "reload", "status" };
        const char *verb = argc > 1 ? argv[1] : NULL;

        if (!verb || cli_wants_help(argc, argv)) {
                printf("Usage: conclave service install|uninstall|start|stop|restart|reload|status\n\n"
                       "Manages conclave.service in your systemd user manager (systemctl --user).\n"
                       "  install    write the unit if no installed one runs this Conclave, daemon-reload, enable\n"
                       "  uninstall  stop and disable; remove the unit only if install wrote it (data is kept)\n"
                       "  start|stop|restart|reload|status   systemctl --user VERB conclave.service\n");
                return verb ? EXIT_SUCCESS : EXIT_USAGE;
        }
        if (argc > 2) {
                fprintf(stderr, "conclave service: unexpected argument '%s'\n", argv[2]);
                return EXIT_USAGE;
        }
        if (streq(verb, "install"))
                return service_install();
        if (streq(verb, "uninstall"))
                return service_uninstall();
        for (size_t i = 0; i < ELEMENTSOF(passthrough); i++)
                if (streq(verb, passthrough[i])) {
                        int r = systemctl(verb, UNIT_NAME);
                        return r < 0 ? EXIT_FAILURE : r;
                }
        fprintf(stderr, "conclave service: unknown action '%s'; see `conclave service --help`\n", verb);
        return EXIT_USAGE;
}
