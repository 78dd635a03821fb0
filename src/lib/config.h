/* config.toml: the TOML subset Conclave reads through inih (documented in conclave.toml(5)).
 * Parsing never stops at the first problem: every error and warning is collected with file,
 * line and key so `conclave doctor` can report them all. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ledger_sync {
        LEDGER_SYNC_ALWAYS,
        LEDGER_SYNC_BATCH,
        LEDGER_SYNC_NONE,
};

enum config_severity {
        CONFIG_WARNING,
        CONFIG_ERROR,
};

struct config_diagnostic {
        enum config_severity severity;
        unsigned line; /* 0: not tied to a line */
        char *section; /* may be NULL */
        char *key;     /* may be NULL */
        char *message;
};

struct config_setting {
        char *key;
        char *value; /* decoded string form */
        unsigned line;
};

struct config_provider {
        char *name;
        char *kind; /* openai | anthropic | ollama */
        char *base_url; /* NULL: the kind's public endpoint */
        char *model;
        char *api_key_file; /* path, relative to CONCLAVE_HOME, or "credential:ID" */
        uint64_t timeout_usec; /* per attempt */
        unsigned max_tokens;
        double temperature; /* < 0: not sent (the model's default) */
        unsigned retries;   /* attempts after the first for 429, 5xx, connection errors */
        unsigned line;
};

struct config_channel {
        char *name;
        char *kind;
        char *group;
        char **allowed_users;
        size_t n_allowed_users;
        bool mention_reply_required; /* "gpt: …" from a human is to gpt with reply_required */
        struct config_setting *settings; /* kind-specific keys, validated by the channel */
        size_t n_settings;
        unsigned line;
};

/* The value of a kind-specific key of [channels.NAME], or NULL when it is not set. */
const char *config_channel_setting(const struct config_channel *ch, const char *key);

struct config {
        char *path;

        /* [runtime] */
        int log_level;
        enum ledger_sync ledger_sync;
        uint64_t ledger_batch_usec;
        unsigned restart_burst;
        uint64_t restart_interval_usec;
        uint64_t restart_delay_max_usec;
        uint64_t state_interval_usec;
        uint64_t worker_watchdog_usec;

        /* [gateway] */
        bool gateway_enabled;
        char *gateway_bind;
        uint16_t gateway_port;
        char *gateway_token;
        char *gateway_token_file;
        bool gateway_allow_public_bind;
        bool gateway_open; /* loopback bind and no token configured: no auth (else a generated token) */
        uint64_t gateway_max_body;
        unsigned gateway_rate_limit; /* requests per minute per client, 0 = off */
        unsigned gateway_max_connections; /* open connections answered normally; more get 503 */
        bool gateway_web_ui;

        /* [provider] */
        char *provider_default;
        struct config_provider *providers;
        size_t n_providers;

        struct config_channel *channels;
        size_t n_channels;

        /* [automation] */
        uint64_t reply_reminder_after_usec;
        uint64_t attention_reminder_after_usec;
        unsigned reminder_max;
        uint64_t reminder_interval_max_usec;
        uint64_t throttle_min_interval_usec;
        unsigned throttle_burst;

        struct config_diagnostic *diagnostics;
        size_t n_diagnostics;
        size_t n_errors;
};

/* Largest config file accepted; the supervisor passes the text to its workers in one packet. */
#define CONFIG_FILE_MAX (64u * 1024u)

/* Fills *ret with defaults, then applies `text` (may be NULL: defaults only). `path` is used in
 * messages. Returns 0 when parsed (check ret->n_errors), -errno on allocation failure. */
int config_parse_text(const char *path, const char *text, struct config **ret);

/* Reads and parses `path`. A missing file gives the defaults and no diagnostics when
 * missing_ok. *ret_text (optional) receives the file's text for passing to workers. */
int config_load(const char *path, bool missing_ok, struct config **ret, char **ret_text);

void config_free(struct config *c);
static inline void config_freep(struct config **c) {
        if (*c)
                config_free(*c);
}

/* [provider] default, or the only provider when exactly one is configured; NULL: none. */
const struct config_provider *config_default_provider(const struct config *c);
const struct config_provider *config_find_provider(const struct config *c, const char *name);

/* "file:LINE: [section] key: message" — newly allocated. */
char *config_diagnostic_format(const struct config *c, const struct config_diagnostic *d);

/* Logs every diagnostic (errors at LOG_ERR, warnings at LOG_WARNING). */
void config_log_diagnostics(const struct config *c);

/* A token is configured: [gateway] token or token_file, $CONCLAVE_WEB_TOKEN, or the systemd
 * credential $CREDENTIALS_DIRECTORY/gateway-token. */
bool config_gateway_has_auth(const struct config *c);
bool address_is_loopback(const char *bind);

const char *ledger_sync_to_string(enum ledger_sync s);

/* Value helpers, exposed for tests and other parsers. */
int parse_duration_usec(const char *s, uint64_t *ret);
int parse_size_bytes(const char *s, uint64_t *ret);
