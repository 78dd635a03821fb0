/* conclave-gateway: the only Conclave process that listens on the network. A worker under
 * conclave-supervisor (or standalone with --config); HTTP itself lives in http.c. */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "log.h"
#include "macro.h"
#include "paths.h"
#include "worker.h"

#define PROGRAM "conclave-gateway"

struct gateway {
        struct http_server *http;
};

static int gateway_apply_config(struct worker *w, const struct config *c, bool initial) {
        struct gateway *g = w->userdata;
        int r;

        if (!g->http) {
                r = http_server_new(w->event, &g->http);
                if (r < 0)
                        return r;
        }
        r = http_server_apply_config(g->http, c);
        /* A failed reload may still have changed what we serve (see http.h); say so. */
        if (r < 0 && !initial)
                worker_update_status(w);
        return r;
}

static void gateway_status(struct worker *w, char *buf, size_t size) {
        struct gateway *g = w->userdata;

        if (g->http)
                http_server_status(g->http, buf, size);
}

static const struct worker_ops gateway_ops = {
        .apply_config = gateway_apply_config,
        .status = gateway_status,
};

static void help(void) {
        printf("%s [OPTIONS]\n\n"
               "Conclave's HTTP gateway: webhooks, REST API, /healthz. Normally started by\n"
               "conclave-supervisor; run standalone it reads the configuration file itself.\n\n"
               "  -c --config FILE  configuration file (default: $CONCLAVE_HOME/config.toml)\n"
               "  -h --help         show this help\n"
               "     --version      show the version\n",
               PROGRAM);
}

/* Returns 1 to run, 0 to exit successfully (--help, --version), -errno on a usage error. */
static int parse_argv(int argc, char *argv[], char **ret_config_path) {
        enum { ARG_VERSION = 0x100 };
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "c:h", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        free(*ret_config_path);
                        *ret_config_path = strdup(optarg);
                        if (!*ret_config_path)
                                return log_error_errno(ENOMEM, "out of memory");
                        break;
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("%s %s\n", PROGRAM, PACKAGE_VERSION);
                        return 0;
                default:
                        /* getopt_long already said what was wrong. */
                        fprintf(stderr, "Try '%s --help'.\n", PROGRAM);
                        return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "%s: unexpected argument '%s'; try '%s --help'.\n", PROGRAM,
                        argv[optind], PROGRAM);
                return -EINVAL;
        }
        if (!*ret_config_path) {
                *ret_config_path = paths_config_file();
                if (!*ret_config_path)
                        return log_error_errno(errno, "cannot find the configuration file (HOME unset?); "
                                               "use --config FILE");
        }
        return 1;
}

int main(int argc, char *argv[]) {
        _cleanup_free_ char *config_path = NULL;
        struct gateway gateway = {};
        struct worker w;
        int r;

        log_setup(PROGRAM, LOG_TARGET_AUTO);
        r = parse_argv(argc, argv, &config_path);
        if (r <= 0)
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

        r = worker_init(&w, PROGRAM, &gateway_ops, config_path, &gateway);
        if (r >= 0)
                r = worker_run(&w);
        else
                r = EXIT_FAILURE;

        /* Stop MHD (closing every connection) while the loop it is attached to still exists. */
        http_server_freep(&gateway.http);
        worker_done(&w);
        return r;
}
