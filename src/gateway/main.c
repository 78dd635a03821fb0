/* conclave-gateway: the only Conclave process that listens on the network. A worker under
 * conclave-supervisor (or standalone with --config); HTTP itself lives in http.c. */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "http.h"
#include "log.h"
#include "macro.h"
#include "paths.h"
#include "worker.h"

#define PROGRAM "conclave-gateway"

struct gateway {
        struct http_server *http;
        struct gateway_api *api;
};

static int gateway_apply_config(struct worker *w, const struct config *c, bool initial) {
        struct gateway *g = w->userdata;
        int r;

        if (!g->http) {
                r = http_server_new(w->event, &g->http);
                if (r < 0)
                        return r;
        }
        if (!g->api) {
                r = gateway_api_new(w->event, w, &g->api);
                if (r < 0)
                        return log_error_errno(r, "cannot set up the API");
                http_server_set_api(g->http, g->api);
        }
        r = http_server_apply_config(g->http, c);
        /* The API's token and limits follow the listener (an open API needs a loopback one). */
        if (r >= 0)
                r = gateway_api_apply_config(g->api, c, http_server_loopback_only(g->http));
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

int main(int argc, char *argv[]) {
        _cleanup_free_ char *config_path = NULL;
        struct gateway gateway = {};
        struct worker w;
        int r;

        log_setup(PROGRAM, LOG_TARGET_AUTO);
        r = worker_parse_argv(PROGRAM,
                              "Conclave's HTTP gateway: webhooks, REST API, /healthz. Normally started by\n"
                              "conclave-supervisor; run standalone it reads the configuration file itself.",
                              argc, argv, &config_path);
        if (r <= 0)
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

        r = worker_init(&w, PROGRAM, &gateway_ops, config_path, &gateway);
        if (r >= 0)
                r = worker_run(&w);
        else
                r = EXIT_FAILURE;

        /* Stop MHD (closing every connection) while the loop it is attached to still exists. */
        http_server_freep(&gateway.http);
        gateway_api_freep(&gateway.api);
        worker_done(&w);
        return r;
}
