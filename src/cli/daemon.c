/* `conclave daemon` and `conclave gateway`: run the suite (or only the gateway) in the
 * foreground by becoming the program, so signals and exit status are the program's own. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "macro.h"
#include "proto.h"

static int exec_program(const char *program, const char *what, int argc, char **argv) {
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *config = NULL;
        _cleanup_free_ char *path = NULL;
        int c;

        optind = 1;
        while ((c = getopt_long(argc, argv, "c:h", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        config = optarg;
                        break;
                case 'h':
                        printf("Usage: conclave %s [--config FILE]\n\n%s\n\n"
                               "  -c, --config FILE  configuration file (default: $CONCLAVE_HOME/config.toml)\n"
                               "  -h, --help         show this help\n",
                               argv[0], what);
                        return EXIT_SUCCESS;
                default:
                        return EXIT_USAGE;
                }
        if (optind < argc) {
                fprintf(stderr, "conclave %s: unexpected argument '%s'\n", argv[0], argv[optind]);
                return EXIT_USAGE;
        }
        path = cli_find_program(program);
        if (!path)
                return EXIT_FAILURE;
        /* A foreground program serves the terminal, never a supervisor's channel. */
        unsetenv(PROTO_CHANNEL_FD_ENV);
        if (config)
                execl(path, program, "--config", config, (char *) NULL);
        else
                execl(path, program, (char *) NULL);
        fprintf(stderr, "conclave: cannot execute %s: %s\n", path, strerror(errno));
        return EXIT_FAILURE;
}

int cmd_daemon(int argc, char **argv) {
        return exec_program("conclave-supervisor",
                            "Runs the whole suite (supervisor, gateway, channels) in the foreground.\n"
                            "Logs go to stderr in a terminal and to the journal under systemd.\n"
                            "Ctrl-C stops it cleanly.",
                            argc, argv);
}

int cmd_gateway(int argc, char **argv) {
        return exec_program("conclave-gateway",
                            "Runs only the HTTP gateway in the foreground, reading the configuration\n"
                            "file itself (for webhook testing). Ctrl-C stops it.",
                            argc, argv);
}
