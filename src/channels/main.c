/* conclave-channels: the only Conclave process that connects out (chat platforms, LLM providers).
 * No channel kind is implemented yet, so every configured channel is reported down, honestly. */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm_service.h"
#include "log.h"
#include "macro.h"
#include "paths.h"
#include "worker.h"

#define PROGRAM "conclave-channels"
#define DOWN_REASON "not implemented in this version"

struct channels {
        /* Names of the channels already warned about, so a reload only warns about new ones. */
        char **known;
        size_t n_known;
        size_t n_channels;
        size_t n_up;
        size_t n_providers;
        char kinds[128]; /* distinct kinds of the configured channels, "telegram, irc" */
};

static void strv_free(char **v, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

static bool strv_contains(char *const *v, size_t n, const char *s) {
        for (size_t i = 0; i < n; i++)
                if (streq(v[i], s))
                        return true;
        return false;
}

/* Appends kind to the comma-separated list unless present; a full buffer just drops the rest. */
static void kinds_add(char *buf, size_t size, const char *kind) {
        size_t len = strlen(buf), n = strlen(kind);

        for (const char *p = buf; *p;) {
                const char *end = strchrnul(p, ',');
                if ((size_t) (end - p) == n && strncmp(p, kind, n) == 0)
                        return;
                p = *end ? end + 2 : end;
        }
        if (len + (len ? 2 : 0) + n + 1 > size)
                return;
        snprintf(buf + len, size - len, "%s%s", len ? ", " : "", kind);
}

static int channels_apply_config(struct worker *w, const struct config *c, bool initial) {
        struct channels *ch = w->userdata;
        char **known;

        known = calloc(c->n_channels + 1, sizeof *known);
        if (!known)
                return log_error_errno(ENOMEM, "out of memory");
        for (size_t i = 0; i < c->n_channels; i++) {
                known[i] = strdup(c->channels[i].name);
                if (!known[i]) {
                        strv_free(known, i);
                        return log_error_errno(ENOMEM, "out of memory");
                }
        }

        /* Nothing can fail from here on, so the counts and the warnings match what is applied. */
        *ch->kinds = 0;
        for (size_t i = 0; i < c->n_channels; i++) {
                const struct config_channel *cc = &c->channels[i];
                const char *kind = cc->kind ? cc->kind : "unknown";
                char fields[256];

                kinds_add(ch->kinds, sizeof ch->kinds, kind);
                if (strv_contains(ch->known, ch->n_known, cc->name))
                        continue;
                snprintf(fields, sizeof fields, "CONCLAVE_CHANNEL=%s\nCONCLAVE_CHANNEL_KIND=%s\n"
                         "CONCLAVE_CHANNEL_STATE=down", cc->name, kind);
                log_fields_errno(LOG_WARNING, 0, fields, "channel %s (%s) is down: the %s channel "
                                 "kind is " DOWN_REASON, cc->name, kind, kind);
        }
        strv_free(ch->known, ch->n_known);
        ch->known = known;
        ch->n_known = c->n_channels;
        ch->n_channels = c->n_channels;
        ch->n_up = 0;
        ch->n_providers = c->n_providers;

        log_info("%zu channel(s) configured, %zu up", ch->n_channels, ch->n_up);
        return 0;
}

static void channels_status(struct worker *w, char *buf, size_t size) {
        struct channels *ch = w->userdata;
        char providers[64] = "";

        if (ch->n_providers > 0)
                snprintf(providers, sizeof providers, "; %zu LLM provider%s",
                         ch->n_providers, ch->n_providers == 1 ? "" : "s");
        if (ch->n_channels == 0)
                snprintf(buf, size, "0/0 channels up (none configured)%s", providers);
        else
                snprintf(buf, size, "%zu/%zu channels up (not yet implemented: %s)%s", ch->n_up,
                         ch->n_channels, ch->kinds, providers);
}

static const struct worker_ops channels_ops = {
        .apply_config = channels_apply_config,
        .status = channels_status,
};

int main(int argc, char *argv[]) {
        _cleanup_free_ char *config_path = NULL;
        struct channels channels = {};
        struct llm_service *llm = NULL;
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

        r = worker_init(&w, PROGRAM, &channels_ops, config_path, &channels);
        if (r >= 0)
                r = llm_service_new(&w, NULL, &llm);
        if (r >= 0)
                r = worker_run(&w);
        else
                r = EXIT_FAILURE;

        llm_service_free(llm);
        worker_done(&w);
        strv_free(channels.known, channels.n_known);
        return r;
}
