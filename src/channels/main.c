/* conclave-channels: the only Conclave process that connects out (chat platforms, LLM
 * providers). Each subsystem is set up by one call here; the work is in its own files. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channels.h"
#include "http_engine.h"
#include "llm_service.h"
#include "log.h"
#include "macro.h"
#include "worker.h"

#define PROGRAM "conclave-channels"

struct channels_main {
        struct http_engine *http;
        struct channel_set *channels;
        struct llm_service *llm;
        size_t n_providers;
};

static void channels_status(struct worker *w, char *buf, size_t size);

/* The loop exists only once worker_init() runs (which may apply the configuration at once). */
static int ensure_started(struct worker *w, struct channels_main *m) {
        int r;

        if (!m->http) {
                r = http_engine_new(w->event, &m->http);
                if (r < 0)
                        return log_error_errno(r, "cannot set up the HTTP engine");
        }
        if (!m->channels) {
                r = channel_set_new(w, m->http, &m->channels);
                if (r < 0)
                        return log_error_errno(r, "cannot set up the channels");
        }
        if (!m->llm) {
                r = llm_service_new(w, m->http, &m->llm);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int channels_apply_config(struct worker *w, const struct config *c, bool initial) {
        struct channels_main *m = w->userdata;
        int r;

        r = ensure_started(w, m);
        if (r < 0)
                return r;
        r = channel_set_apply_config(m->channels, c);
        if (r < 0)
                return r;
        m->n_providers = c->n_providers;
        if (initial) {
                char status[256];

                channels_status(w, status, sizeof(status));
                log_info("started: %s", status);
        }
        return 0;
}

static int channels_message(struct worker *w, struct json_object *msg) {
        struct channels_main *m = w->userdata;

        if (m->channels && channel_set_message(m->channels, msg) > 0)
                return 0;
        log_debug("ignoring a message from the supervisor");
        return 0;
}

static void channels_status(struct worker *w, char *buf, size_t size) {
        struct channels_main *m = w->userdata;

        if (!m->channels) {
                snprintf(buf, size, "starting");
                return;
        }
        channel_set_status(m->channels, buf, size);
        if (m->n_providers > 0) {
                size_t len = strlen(buf);
                snprintf(buf + len, size - len, "; %zu LLM provider%s", m->n_providers,
                         m->n_providers == 1 ? "" : "s");
        }
}

static const struct worker_ops channels_ops = {
        .apply_config = channels_apply_config,
        .message = channels_message,
        .status = channels_status,
};

int main(int argc, char *argv[]) {
        _cleanup_free_ char *config_path = NULL;
        struct channels_main m = {};
        struct worker w;
        int r;

        log_setup(PROGRAM, LOG_TARGET_AUTO);
        r = worker_parse_argv(PROGRAM,
                              "Conclave's outbound connections: chat channels and LLM providers. Normally\n"
                              "started by conclave-supervisor; run standalone it reads the configuration\n"
                              "file itself.",
                              argc, argv, &config_path);
        if (r <= 0)
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

        r = worker_init(&w, PROGRAM, &channels_ops, config_path, &m);
        if (r >= 0)
                r = worker_run(&w);
        else
                r = EXIT_FAILURE;

        m.llm = llm_service_free(m.llm);
        m.channels = channel_set_free(m.channels);
        m.http = http_engine_free(m.http);
        worker_done(&w);
        return r;
}
