/* Unit tests for config.c: every value form and section of config.toml, and for every kind of
 * bad input the diagnostic's severity, line, section, key and message. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "macro.h"

/* --- helpers ----------------------------------------------------------------------------- */

static struct config *parse(const char *text) {
        struct config *c = NULL;

        assert_int_equal(config_parse_text("test.toml", text, &c), 0);
        assert_non_null(c);
        return c;
}

static void dump_diagnostics(const struct config *c) {
        for (size_t i = 0; i < c->n_diagnostics; i++) {
                _cleanup_free_ char *s = config_diagnostic_format(c, &c->diagnostics[i]);
                print_message("    %s\n", s ? s : "(format failed)");
        }
}

static bool str_or_null_eq(const char *a, const char *b) {
        return a == b || (a && b && strcmp(a, b) == 0);
}

/* Asserts that some diagnostic has this message substring, and that it has exactly this
 * severity, line, section and key (NULL: none). */
static void assert_diagnostic(const struct config *c, enum config_severity severity, unsigned line,
                              const char *section, const char *key, const char *substring) {
        for (size_t i = 0; i < c->n_diagnostics; i++) {
                const struct config_diagnostic *d = &c->diagnostics[i];
                if (!d->message || !strstr(d->message, substring))
                        continue;
                if (d->severity == severity && d->line == line && str_or_null_eq(d->section, section) &&
                    str_or_null_eq(d->key, key))
                        return;
        }
        print_message("expected %s at line %u, [%s] %s: \"…%s…\"; got:\n",
                      severity == CONFIG_ERROR ? "error" : "warning", line, section ? section : "(none)",
                      key ? key : "(none)", substring);
        dump_diagnostics(c);
        fail();
}

static void assert_counts(const struct config *c, size_t n_diagnostics, size_t n_errors) {
        if (c->n_diagnostics != n_diagnostics || c->n_errors != n_errors) {
                print_message("expected %zu diagnostics (%zu errors), got %zu (%zu errors):\n",
                              n_diagnostics, n_errors, c->n_diagnostics, c->n_errors);
                dump_diagnostics(c);
                fail();
        }
}

static const struct config_setting *channel_setting(const struct config_channel *ch, const char *key) {
        for (size_t i = 0; i < ch->n_settings; i++)
                if (streq(ch->settings[i].key, key))
                        return &ch->settings[i];
        return NULL;
}

static int unset_web_token(void **state) {
        (void) state;
        /* config_gateway_has_auth() honours them; tests must not inherit them. */
        unsetenv("CONCLAVE_WEB_TOKEN");
        unsetenv("CREDENTIALS_DIRECTORY");
        return 0;
}

/* --- good input -------------------------------------------------------------------------- */

static void test_defaults_when_text_null(void **state) {
        _cleanup_(config_freep) struct config *c = NULL;

        (void) state;
        assert_int_equal(config_parse_text(NULL, NULL, &c), 0);
        assert_string_equal(c->path, "config.toml");
        assert_counts(c, 0, 0);
        assert_int_equal(c->log_level, LOG_INFO);
        assert_int_equal(c->ledger_sync, LEDGER_SYNC_BATCH);
        assert_true(c->ledger_batch_usec == 2 * USEC_PER_MSEC);
        assert_int_equal(c->restart_burst, 5);
        assert_true(c->restart_interval_usec == 60 * USEC_PER_SEC);
        assert_true(c->restart_delay_max_usec == 30 * USEC_PER_SEC);
        assert_true(c->state_interval_usec == 5 * USEC_PER_SEC);
        assert_true(c->gateway_enabled);
        assert_string_equal(c->gateway_bind, "127.0.0.1");
        assert_int_equal(c->gateway_port, 7777);
        assert_null(c->gateway_token);
        assert_null(c->gateway_token_file);
        assert_false(c->gateway_allow_public_bind);
        assert_false(c->gateway_open);
        assert_true(c->gateway_max_body == 1024 * 1024);
        assert_int_equal(c->gateway_rate_limit, 600);
        assert_int_equal(c->gateway_max_connections, 512);
        assert_true(c->gateway_web_ui);
        assert_null(c->provider_default);
        assert_int_equal(c->n_providers, 0);
        assert_int_equal(c->n_channels, 0);
        assert_true(c->reply_reminder_after_usec == 3600 * USEC_PER_SEC);
        assert_true(c->attention_reminder_after_usec == 600 * USEC_PER_SEC);
        assert_int_equal(c->reminder_max, 3);
        assert_true(c->reminder_interval_max_usec == 86400 * USEC_PER_SEC);
        assert_true(c->throttle_min_interval_usec == 2 * USEC_PER_SEC);
        assert_int_equal(c->throttle_burst, 5);
}

static void test_empty_text_is_defaults(void **state) {
        _cleanup_(config_freep) struct config *c = parse("");
        _cleanup_(config_freep) struct config *d = parse("# only a comment\n\n   \n; also a comment\n");

        (void) state;
        assert_string_equal(c->path, "test.toml");
        assert_counts(c, 0, 0);
        assert_counts(d, 0, 0);
        assert_int_equal(d->gateway_port, 7777);
}

static const char full_config[] =
        "# Conclave test configuration\n"                               /* 1 */
        "[runtime]\n"                                                   /* 2 */
        "log_level = \"debug\"          # a comment after the value\n"  /* 3 */
        "ledger_sync = \"always\"\n"                                    /* 4 */
        "ledger_batch_window = \"500ms\"\n"                             /* 5 */
        "restart_burst = 1_0\n"                                         /* 6 */
        "restart_interval = \"5m\"\n"                                   /* 7 */
        "restart_delay_max = \"2h\"\n"                                  /* 8 */
        "state_interval = 30   # bare number: seconds\n"                /* 9 */
        "\n"                                                            /* 10 */
        "[gateway]\n"                                                   /* 11 */
        "enabled = false\n"                                             /* 12 */
        "bind = \"::1\"\n"                                              /* 13 */
        "port = 8_080\n"                                                /* 14 */
        "token_file = '/run/secrets/#token'\n"                          /* 15 */
        "allow_public_bind = true # comment\n"                          /* 16 */
        "max_body = \"64K\"\n"                                          /* 17 */
        "rate_limit = 1_000\n"                                          /* 18 */
        "web_ui = false\n"                                              /* 19 */
        "[provider]\n"                                                  /* 20 */
        "default = \"main\"\n"                                          /* 21 */
        "[providers.main]\n"                                            /* 22 */
        "kind = \"anthropic\"\n"                                        /* 23 */
        "base_url = \"https://api.example.com/v1#frag\"\n"              /* 24 */
        "model = \"claude-x\"\n"                                        /* 25 */
        "api_key_file = \"/etc/conclave/key\"\n"                        /* 26 */
        "timeout = \"1d\"\n"                                            /* 27 */
        "max_tokens = 4_096\n"                                          /* 28 */
        "temperature = 0.25\n"                                          /* 29 */
        "[providers.local_2]\n"                                         /* 30 */
        "kind = \"ollama\"\n"                                           /* 31 */
        "model = \"llama\"\n"                                           /* 32 */
        "[channels.irc-main]\n"                                         /* 33 */
        "kind = \"irc\"\n"                                              /* 34 */
        "group = \"ops\"\n"                                             /* 35 */
        "allowed_users = [\"alice\", 'bob' ,\"c#d\"]   # comment\n"     /* 36 */
        "server = \"irc.libera.chat\"\n"                                /* 37 */
        "port = 6697\n"                                                 /* 38 */
        "tls = true\n"                                                  /* 39 */
        "[automation]\n"                                                /* 40 */
        "reply_reminder_after = \"2h\"\n"                               /* 41 */
        "attention_reminder_after = \"30s\"\n"                          /* 42 */
        "reminder_max = 5\n"                                            /* 43 */
        "throttle_min_interval = \"1500ms\"\n"                          /* 44 */
        "reminder_interval_max = \"6h\"\n"                              /* 45 */
        "throttle_burst = 1\n";                                         /* 46 */

static void check_full_config(const struct config *c) {
        const struct config_provider *pr;
        const struct config_channel *ch;
        const struct config_setting *s;

        assert_counts(c, 0, 0);

        assert_int_equal(c->log_level, LOG_DEBUG);
        assert_int_equal(c->ledger_sync, LEDGER_SYNC_ALWAYS);
        assert_true(c->ledger_batch_usec == 500 * USEC_PER_MSEC);
        assert_int_equal(c->restart_burst, 10);
        assert_true(c->restart_interval_usec == 300 * USEC_PER_SEC);
        assert_true(c->restart_delay_max_usec == 7200 * USEC_PER_SEC);
        assert_true(c->state_interval_usec == 30 * USEC_PER_SEC);

        assert_false(c->gateway_enabled);
        assert_string_equal(c->gateway_bind, "::1");
        assert_int_equal(c->gateway_port, 8080);
        assert_null(c->gateway_token);
        assert_string_equal(c->gateway_token_file, "/run/secrets/#token");
        assert_true(c->gateway_allow_public_bind);
        assert_true(c->gateway_max_body == 64 * 1024);
        assert_int_equal(c->gateway_rate_limit, 1000);
        assert_false(c->gateway_web_ui);

        assert_string_equal(c->provider_default, "main");
        assert_int_equal(c->n_providers, 2);
        pr = &c->providers[0];
        assert_string_equal(pr->name, "main");
        assert_string_equal(pr->kind, "anthropic");
        assert_string_equal(pr->base_url, "https://api.example.com/v1#frag");
        assert_string_equal(pr->model, "claude-x");
        assert_string_equal(pr->api_key_file, "/etc/conclave/key");
        assert_true(pr->timeout_usec == 86400 * USEC_PER_SEC);
        assert_int_equal(pr->max_tokens, 4096);
        assert_true(pr->temperature > 0.2499 && pr->temperature < 0.2501);
        assert_int_equal(pr->line, 23);
        pr = &c->providers[1];
        assert_string_equal(pr->name, "local_2");
        assert_string_equal(pr->kind, "ollama");
        assert_null(pr->base_url);
        /* Defaults of a provider that does not set them. */
        assert_true(pr->timeout_usec == 120 * USEC_PER_SEC);
        assert_int_equal(pr->max_tokens, 1024);
        assert_true(pr->temperature < 0); /* not set: the model's default, nothing sent */
        assert_int_equal(pr->retries, 2);

        assert_int_equal(c->n_channels, 1);
        ch = &c->channels[0];
        assert_string_equal(ch->name, "irc-main");
        assert_string_equal(ch->kind, "irc");
        assert_string_equal(ch->group, "ops");
        assert_int_equal(ch->n_allowed_users, 3);
        assert_string_equal(ch->allowed_users[0], "alice");
        assert_string_equal(ch->allowed_users[1], "bob");
        assert_string_equal(ch->allowed_users[2], "c#d");
        assert_int_equal(ch->n_settings, 3);
        s = channel_setting(ch, "server");
        assert_non_null(s);
        assert_string_equal(s->value, "irc.libera.chat");
        assert_int_equal(s->line, 37);
        s = channel_setting(ch, "port");
        assert_non_null(s);
        assert_string_equal(s->value, "6697");
        assert_int_equal(s->line, 38);
        s = channel_setting(ch, "tls");
        assert_non_null(s);
        assert_string_equal(s->value, "true");

        assert_true(c->reply_reminder_after_usec == 7200 * USEC_PER_SEC);
        assert_true(c->attention_reminder_after_usec == 30 * USEC_PER_SEC);
        assert_int_equal(c->reminder_max, 5);
        assert_true(c->throttle_min_interval_usec == 1500 * USEC_PER_MSEC);
        assert_true(c->reminder_interval_max_usec == 6 * 3600 * USEC_PER_SEC);
        assert_int_equal(c->throttle_burst, 1);
}

static void test_every_section(void **state) {
        _cleanup_(config_freep) struct config *c = parse(full_config);

        (void) state;
        check_full_config(c);
}

/* Windows line endings: every line ends in "\r\n". */
static void test_crlf(void **state) {
        _cleanup_free_ char *text = malloc(2 * sizeof full_config);
        _cleanup_(config_freep) struct config *c = NULL;
        size_t j = 0;

        (void) state;
        assert_non_null(text);
        for (const char *p = full_config; *p; p++) {
                if (*p == '\n')
                        text[j++] = '\r';
                text[j++] = *p;
        }
        text[j] = 0;
        c = parse(text);
        check_full_config(c);
}

static void test_utf8_bom(void **state) {
        _cleanup_(config_freep) struct config *c = parse("\xEF\xBB\xBF[runtime]\nlog_level = \"debug\"\n");
        _cleanup_(config_freep) struct config *d =
                parse("\xEF\xBB\xBF# comment first\n[gateway]\nport = 1234\n");
        _cleanup_(config_freep) struct config *e = parse("\xEF\xBB\xBF\r\n[gateway]\r\nport = 99\r\n");

        (void) state;
        assert_counts(c, 0, 0);
        assert_int_equal(c->log_level, LOG_DEBUG);
        assert_counts(d, 0, 0);
        assert_int_equal(d->gateway_port, 1234);
        assert_counts(e, 0, 0);
        assert_int_equal(e->gateway_port, 99);
}

static void test_string_escapes(void **state) {
        _cleanup_(config_freep) struct config *c =
                parse("[gateway]\n"
                      "enabled = false\n"
                      "token_file = \"a\\nb\\tc\\rd\\be\\ff\\\"g\\\\h\\u00e9\\u00C9\\U0001F600\\u20ACz\"\n"
                      "bind = 'C:\\no\\escapes\\u00e9 \"here\"'\n");

        (void) state;
        assert_counts(c, 0, 0);
        assert_string_equal(c->gateway_token_file,
                            "a\nb\tc\rd\be\ff\"g\\h\xC3\xA9\xC3\x89\xF0\x9F\x98\x80\xE2\x82\xACz");
        /* Literal strings take backslashes as they are. */
        assert_string_equal(c->gateway_bind, "C:\\no\\escapes\\u00e9 \"here\"");
}

static void test_hash_inside_strings(void **state) {
        _cleanup_(config_freep) struct config *c =
                parse("[gateway]\n"
                      "token_file = \"/a#b\" # real comment \"x\"\n"
                      "bind = '#127.0.0.1#'#comment without space\n"
                      "[channels.c]\n"
                      "kind = \"irc\"\n"
                      "allowed_users = [\"#ops\", '#dev'] # trailing\n"
                      "channel = \"#conclave\"\n");

        (void) state;
        assert_string_equal(c->gateway_token_file, "/a#b");
        assert_string_equal(c->gateway_bind, "#127.0.0.1#");
        assert_int_equal(c->n_channels, 1);
        assert_int_equal(c->channels[0].n_allowed_users, 2);
        assert_string_equal(c->channels[0].allowed_users[0], "#ops");
        assert_string_equal(c->channels[0].allowed_users[1], "#dev");
        assert_string_equal(channel_setting(&c->channels[0], "channel")->value, "#conclave");
        /* "#127.0.0.1#" is not loopback, but the gateway has a token file; only the public-bind
         * refusal remains. */
        assert_counts(c, 1, 1);
        assert_diagnostic(c, CONFIG_ERROR, 3, "gateway", "bind", "allow_public_bind");
}

static void test_integers_and_booleans(void **state) {
        _cleanup_(config_freep) struct config *c =
                parse("[runtime]\nrestart_burst = 6_4\n"
                      "[gateway]\nrate_limit = 1_000_000\nport = 65535\nenabled = true\nweb_ui = false\n"
                      "max_connections = 65536\n"
                      "[automation]\nreminder_max = 0\n");
        _cleanup_(config_freep) struct config *d = parse("[gateway]\nport = 1\nrate_limit = 0\n");

        (void) state;
        assert_counts(c, 0, 0);
        assert_int_equal(c->restart_burst, 64);
        assert_int_equal(c->gateway_rate_limit, 1000000);
        assert_int_equal(c->gateway_port, 65535);
        assert_int_equal(c->gateway_max_connections, 65536);
        assert_true(c->gateway_enabled);
        assert_false(c->gateway_web_ui);
        assert_int_equal(c->reminder_max, 0);
        assert_counts(d, 0, 0);
        assert_int_equal(d->gateway_port, 1);
        assert_int_equal(d->gateway_rate_limit, 0);
}

static void test_duration_forms(void **state) {
        _cleanup_(config_freep) struct config *c =
                parse("[runtime]\n"
                      "ledger_batch_window = \"500ms\"\n"
                      "restart_interval = \"30s\"\n"
                      "restart_delay_max = \"5m\"\n"
                      "state_interval = \"2h\"\n"
                      "[automation]\n"
                      "reply_reminder_after = \"1d\"\n"
                      "attention_reminder_after = 45\n"
                      "throttle_min_interval = '250ms'\n");

        (void) state;
        assert_counts(c, 0, 0);
        assert_true(c->ledger_batch_usec == 500 * USEC_PER_MSEC);
        assert_true(c->restart_interval_usec == 30 * USEC_PER_SEC);
        assert_true(c->restart_delay_max_usec == 5 * 60 * USEC_PER_SEC);
        assert_true(c->state_interval_usec == 2 * 3600 * USEC_PER_SEC);
        assert_true(c->reply_reminder_after_usec == 86400 * USEC_PER_SEC);
        assert_true(c->attention_reminder_after_usec == 45 * USEC_PER_SEC);
        assert_true(c->throttle_min_interval_usec == 250 * USEC_PER_MSEC);
}

static void test_size_forms(void **state) {
        static const struct {
                const char *value;
                uint64_t bytes;
        } cases[] = {
                { "65536", 65536 },       { "\"64K\"", 64 * 1024 },    { "\"1M\"", 1024 * 1024 },
                { "'2MiB'", 2 * 1024 * 1024 }, { "\"512B\"", 512 }, { "\"1G\"", 1024ULL * 1024 * 1024 },
                { "\"4096\"", 4096 },     { "0", 0 },
        };

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *text = NULL;
                _cleanup_(config_freep) struct config *c = NULL;

                assert_true(asprintf(&text, "[gateway]\nmax_body = %s\n", cases[i].value) > 0);
                c = parse(text);
                assert_counts(c, 0, 0);
                if (c->gateway_max_body != cases[i].bytes)
                        fail_msg("max_body = %s gave %" PRIu64, cases[i].value, c->gateway_max_body);
        }
}

static void test_string_lists(void **state) {
        _cleanup_(config_freep) struct config *c =
                parse("[channels.a]\nkind = \"telegram\"\nallowed_users = [ \"1\" , '2',\"3\" ]\n"
                      "[channels.b]\nkind = \"slack\"\nallowed_users = [\"*\"]\n"
                      "[channels.c]\nkind = \"webhook\"\nallowed_users = []\n");

        (void) state;
        assert_int_equal(c->n_channels, 3);
        assert_int_equal(c->channels[0].n_allowed_users, 3);
        assert_string_equal(c->channels[0].allowed_users[0], "1");
        assert_string_equal(c->channels[0].allowed_users[1], "2");
        assert_string_equal(c->channels[0].allowed_users[2], "3");
        assert_int_equal(c->channels[1].n_allowed_users, 1);
        assert_string_equal(c->channels[1].allowed_users[0], "*");
        assert_int_equal(c->channels[2].n_allowed_users, 0);
        /* The empty list is valid TOML but refuses everyone: a warning, not an error. */
        assert_counts(c, 1, 0);
        assert_diagnostic(c, CONFIG_WARNING, 8, "channels.c", "allowed_users", "every sender is refused");
}

static void test_channel_mention_reply_required(void **state) {
        /* On by default; a boolean per channel; anything else is an error naming line and key. */
        _cleanup_(config_freep) struct config *c =
                parse("[channels.a]\nkind = \"irc\"\nallowed_users = [\"*\"]\n"
                      "[channels.b]\nkind = \"slack\"\nallowed_users = [\"*\"]\nmention_reply_required = false\n"
                      "[channels.c]\nkind = \"telegram\"\nallowed_users = [\"*\"]\nmention_reply_required = true\n"
                      "[channels.d]\nkind = \"matrix\"\nallowed_users = [\"*\"]\nmention_reply_required = \"yes\"\n");

        (void) state;
        assert_int_equal(c->n_channels, 4);
        assert_true(c->channels[0].mention_reply_required);
        assert_false(c->channels[1].mention_reply_required);
        assert_true(c->channels[2].mention_reply_required);
        assert_true(c->channels[3].mention_reply_required); /* the invalid value left the default */
        assert_counts(c, 1, 1);
        assert_diagnostic(c, CONFIG_ERROR, 15, "channels.d", "mention_reply_required", "expected true or false");
        /* Not a kind-specific setting: the channels do not see it as an unknown key. */
        assert_null(channel_setting(&c->channels[1], "mention_reply_required"));
}

static void test_later_value_sections_and_reopened_table(void **state) {
        /* A table may be reopened for other keys; keys of channels are collected per channel. */
        _cleanup_(config_freep) struct config *c =
                parse("[channels.x]\nkind = \"matrix\"\n[runtime]\nrestart_burst = 3\n"
                      "[channels.x]\nallowed_users = [\"@a:b\"]\nroom = \"!r:b\"\n");

        (void) state;
        assert_counts(c, 0, 0);
        assert_int_equal(c->n_channels, 1);
        assert_string_equal(c->channels[0].kind, "matrix");
        assert_int_equal(c->channels[0].n_allowed_users, 1);
        assert_string_equal(c->channels[0].allowed_users[0], "@a:b");
        assert_string_equal(channel_setting(&c->channels[0], "room")->value, "!r:b");
        assert_int_equal(c->restart_burst, 3);
}

/* inih keeps only 49 bytes of a section name; names may be up to 64 bytes. */
static void test_long_names(void **state) {
        static const char name64[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
        _cleanup_free_ char *text = NULL, *text65 = NULL;
        _cleanup_(config_freep) struct config *c = NULL, *d = NULL;

        (void) state;
        assert_int_equal(strlen(name64), 64);
        assert_true(asprintf(&text,
                             "[channels.%s]\nkind = \"irc\"\nallowed_users = [\"*\"]\n"
                             "[channels.%.40sSECOND]\nkind = \"email\"\nallowed_users = [\"*\"]\n"
                             "[providers.%s]\nkind = \"openai\"\nmodel = \"m\"\n"
                             "[provider]\ndefault = \"%s\"\n",
                             name64, name64, name64, name64) > 0);
        c = parse(text);
        assert_counts(c, 0, 0);
        assert_int_equal(c->n_channels, 2);
        assert_string_equal(c->channels[0].name, name64);
        assert_string_equal(c->channels[0].kind, "irc");
        assert_string_equal(c->channels[1].kind, "email");
        assert_int_equal(c->n_providers, 1);
        assert_string_equal(c->providers[0].name, name64);

        assert_true(asprintf(&text65, "[channels.%sX]\nkind = \"irc\"\n", name64) > 0);
        d = parse(text65);
        assert_counts(d, 1, 1);
        assert_int_equal(d->n_channels, 0);
        assert_true(strstr(d->diagnostics[0].message, "invalid name") != NULL);
        assert_int_equal(d->diagnostics[0].line, 2);
}

static void test_line_length_limit(void **state) {
        _cleanup_free_ char *text = NULL, *value = NULL;
        _cleanup_(config_freep) struct config *c = NULL, *d = NULL;
        size_t n;

        (void) state;
        /* A 4094-byte key line is accepted whole. */
        n = 4094 - strlen("token_file = \"\"");
        value = malloc(n + 1);
        assert_non_null(value);
        memset(value, 'v', n);
        value[n] = 0;
        assert_true(asprintf(&text, "[gateway]\ntoken_file = \"%s\"\nport = 1\n", value) > 0);
        c = parse(text);
        assert_counts(c, 0, 0);
        assert_int_equal(strlen(c->gateway_token_file), n);
        assert_int_equal(c->gateway_port, 1);

        /* One more byte and the line is refused; the lines after it are still parsed. */
        free(text);
        text = NULL;
        assert_true(asprintf(&text, "[gateway]\ntoken_file = \"%sv\"\nport = 2\n", value) > 0);
        d = parse(text);
        assert_counts(d, 1, 1);
        assert_diagnostic(d, CONFIG_ERROR, 2, NULL, NULL, "line is longer than 4094 bytes");
        assert_null(d->gateway_token_file);
        assert_int_equal(d->gateway_port, 2);
}

static void test_errors_collected_with_lines(void **state) {
        _cleanup_(config_freep) struct config *c =
                parse("[runtime]\n"                    /* 1 */
                      "log_level = \"loud\"\n"         /* 2 */
                      "restart_burst = 5\n"            /* 3 */
                      "\n"                             /* 4 */
                      "[gateway]\n"                    /* 5 */
                      "port = 0\n"                     /* 6 */
                      "nonsense\n"                     /* 7 */
                      "bind = \"127.0.0.2\"\n"         /* 8 */
                      "colour = \"red\"\n");           /* 9 */

        (void) state;
        assert_counts(c, 4, 3);
        assert_diagnostic(c, CONFIG_ERROR, 2, "runtime", "log_level", "\"debug\"");
        assert_diagnostic(c, CONFIG_ERROR, 6, "gateway", "port", "port number");
        assert_diagnostic(c, CONFIG_ERROR, 7, NULL, NULL, "expected key = value");
        assert_diagnostic(c, CONFIG_WARNING, 9, "gateway", "colour", "unknown key");
        /* Good values around the bad ones still apply; bad ones leave the default. */
        assert_int_equal(c->restart_burst, 5);
        assert_string_equal(c->gateway_bind, "127.0.0.2");
        assert_int_equal(c->gateway_port, 7777);
        assert_int_equal(c->log_level, LOG_INFO);
}

static void test_duplicate_keeps_first(void **state) {
        _cleanup_(config_freep) struct config *c =
                parse("[runtime]\nlog_level = \"error\"\nlog_level = \"debug\"\n"
                      "[gateway]\nlog_level = 1\n"); /* same key in another table is not a duplicate */

        (void) state;
        assert_diagnostic(c, CONFIG_ERROR, 3, "runtime", "log_level", "duplicate key");
        assert_diagnostic(c, CONFIG_WARNING, 5, "gateway", "log_level", "unknown key");
        assert_counts(c, 2, 1);
        assert_int_equal(c->log_level, LOG_ERR);
}

/* --- bad input, one table-driven test per case ------------------------------------------- */

struct bad_case {
        const char *name;
        const char *text;
        size_t n_diagnostics, n_errors;
        enum config_severity severity;
        unsigned line;
        const char *section, *key, *substring;
};

#define ERR CONFIG_ERROR
#define WARN CONFIG_WARNING
#define CHAN_OK "[channels.c]\nkind = \"irc\"\nallowed_users = [\"*\"]\n"
#define PROV_OK "[providers.p]\nkind = \"openai\"\nmodel = \"m\"\n"

static const struct bad_case bad_cases[] = {
        /* strings */
        { "unterminated_string", "[gateway]\nbind = \"127.0.0.1\n", 1, 1, ERR, 2, "gateway", "bind", "unterminated string" },
        { "unterminated_literal", "[gateway]\nbind = '127.0.0.1\n", 1, 1, ERR, 2, "gateway", "bind", "unterminated string" },
        { "escaped_quote_unterminated", "[gateway]\nbind = \"abc\\\"\n", 1, 1, ERR, 2, "gateway", "bind", "unterminated string" },
        { "bad_escape", "[gateway]\ntoken_file = \"a\\qb\"\n", 1, 1, ERR, 2, "gateway", "token_file", "unknown escape sequence" },
        { "bad_escape_x", "[gateway]\ntoken_file = \"\\x41\"\n", 1, 1, ERR, 2, "gateway", "token_file", "unknown escape sequence" },
        { "short_u_escape", "[gateway]\ntoken_file = \"\\u12\"\n", 1, 1, ERR, 2, "gateway", "token_file", "4 (\\U 8) hexadecimal digits" },
        { "short_U_escape", "[gateway]\ntoken_file = \"\\U0001F60\"\n", 1, 1, ERR, 2, "gateway", "token_file", "hexadecimal digits" },
        { "u_escape_nul", "[gateway]\ntoken_file = \"\\u0000\"\n", 1, 1, ERR, 2, "gateway", "token_file", "not a valid Unicode scalar value" },
        { "u_escape_surrogate", "[gateway]\ntoken_file = \"\\uD800\"\n", 1, 1, ERR, 2, "gateway", "token_file", "not a valid Unicode scalar value" },
        { "U_escape_too_big", "[gateway]\ntoken_file = \"\\U00110000\"\n", 1, 1, ERR, 2, "gateway", "token_file", "not a valid Unicode scalar value" },
        { "control_char_in_string", "[gateway]\ntoken_file = \"a\x01z\"\n", 1, 1, ERR, 2, "gateway", "token_file", "control character" },
        { "unquoted_string", "[gateway]\nbind = localhost\n", 1, 1, ERR, 2, "gateway", "bind", "expected a quoted string" },
        { "text_after_quote", "[gateway]\nbind = \"127.0.0.1\" extra\n", 1, 1, ERR, 2, "gateway", "bind", "unexpected text after the closing quote" },
        { "second_string_after_quote", "[gateway]\nbind = \"a\" \"b\"\n", 1, 1, ERR, 2, "gateway", "bind", "unexpected text after the closing quote" },
        { "missing_value", "[runtime]\nlog_level =\n", 1, 1, ERR, 2, "runtime", "log_level", "missing value after '='" },
        /* ports and integers */
        { "port_0", "[gateway]\nport = 0\n", 1, 1, ERR, 2, "gateway", "port", "invalid value 0: expected a port number from 1 to 65535" },
        { "port_65536", "[gateway]\nport = 65536\n", 1, 1, ERR, 2, "gateway", "port", "invalid value 65536: expected a port number" },
        { "port_abc", "[gateway]\nport = \"abc\"\n", 1, 1, ERR, 2, "gateway", "port", "invalid value \"abc\": expected a port number" },
        { "port_negative", "[gateway]\nport = -1\n", 1, 1, ERR, 2, "gateway", "port", "expected a port number" },
        { "port_trailing_text", "[gateway]\nport = 80 80\n", 1, 1, ERR, 2, "gateway", "port", "expected a port number" },
        { "uint_below_min", "[runtime]\nrestart_burst = 0\n", 1, 1, ERR, 2, "runtime", "restart_burst", "out of range (expected 1 to 64)" },
        { "uint_above_max", "[runtime]\nrestart_burst = 65\n", 1, 1, ERR, 2, "runtime", "restart_burst", "out of range (expected 1 to 64)" },
        { "reminder_max_above_max", "[automation]\nreminder_max = 101\n", 1, 1, ERR, 2, "automation", "reminder_max", "out of range (expected 0 to 100)" },
        { "throttle_burst_zero", "[automation]\nthrottle_burst = 0\n", 1, 1, ERR, 2, "automation", "throttle_burst", "out of range (expected 1 to 1000)" },
        { "throttle_interval_tiny", "[automation]\n# off is 0\nthrottle_min_interval = \"1ms\"\n", 1, 1, ERR, 3, "automation", "throttle_min_interval", "below 10ms; use 0 to turn throttling off" },
        { "reminder_interval_max_short", "[automation]\nreply_reminder_after = \"2h\"\n\nreminder_interval_max = \"1h\"\n", 1, 0, WARN, 4, "automation", "reminder_interval_max", "shorter than reply_reminder_after" },
        { "rate_limit_above_max", "[gateway]\nrate_limit = 1_000_001\n", 1, 1, ERR, 2, "gateway", "rate_limit", "out of range" },
        { "max_connections_zero", "[gateway]\nmax_connections = 0\n", 1, 1, ERR, 2, "gateway", "max_connections", "out of range (expected 1 to 65536)" },
        { "max_tokens_zero", PROV_OK "max_tokens = 0\n", 1, 1, ERR, 4, "providers.p", "max_tokens", "out of range (expected 1 to 10000000)" },
        { "uint_overflow", "[runtime]\nrestart_burst = 99999999999999999999999\n", 1, 1, ERR, 2, "runtime", "restart_burst", "expected a whole number" },
        { "uint_negative", "[runtime]\nrestart_burst = -3\n", 1, 1, ERR, 2, "runtime", "restart_burst", "expected a whole number" },
        { "uint_quoted", "[runtime]\nrestart_burst = \"3\"\n", 1, 1, ERR, 2, "runtime", "restart_burst", "expected a whole number" },
        { "uint_fraction", "[runtime]\nrestart_burst = 2.5\n", 1, 1, ERR, 2, "runtime", "restart_burst", "expected a whole number" },
        { "uint_hex", "[runtime]\nrestart_burst = 0x10\n", 1, 1, ERR, 2, "runtime", "restart_burst", "expected a whole number" },
        /* booleans and floats */
        { "bool_yes", "[gateway]\nenabled = yes\n", 1, 1, ERR, 2, "gateway", "enabled", "expected true or false" },
        { "bool_quoted", "[gateway]\nweb_ui = \"true\"\n", 1, 1, ERR, 2, "gateway", "web_ui", "expected true or false" },
        { "bool_capital", "[gateway]\nallow_public_bind = True\n", 1, 1, ERR, 2, "gateway", "allow_public_bind", "expected true or false" },
        { "float_word", PROV_OK "temperature = hot\n", 1, 1, ERR, 4, "providers.p", "temperature", "expected a number such as 0.7" },
        { "float_nan", PROV_OK "temperature = nan\n", 1, 1, ERR, 4, "providers.p", "temperature", "expected a number" },
        /* durations and sizes */
        { "duration_unit", "[runtime]\nrestart_interval = \"5x\"\n", 1, 1, ERR, 2, "runtime", "restart_interval", "expected a duration" },
        { "duration_negative", "[runtime]\nrestart_interval = \"-5s\"\n", 1, 1, ERR, 2, "runtime", "restart_interval", "expected a duration" },
        { "duration_empty", "[runtime]\nrestart_interval = \"\"\n", 1, 1, ERR, 2, "runtime", "restart_interval", "expected a duration" },
        { "duration_space", "[runtime]\nrestart_interval = \"5 s\"\n", 1, 1, ERR, 2, "runtime", "restart_interval", "expected a duration" },
        { "duration_too_large", "[automation]\nreply_reminder_after = \"20000000000d\"\n", 1, 1, ERR, 2, "automation", "reply_reminder_after", "expected a duration" },
        { "duration_bare_unit", "[automation]\nthrottle_min_interval = 5x\n", 1, 1, ERR, 2, "automation", "throttle_min_interval", "expected a duration" },
        { "duration_unterminated", "[runtime]\nstate_interval = \"5s\n", 1, 1, ERR, 2, "runtime", "state_interval", "expected a duration" },
        { "duration_hex", "[runtime]\nrestart_interval = \"0x10\"\n", 1, 1, ERR, 2, "runtime", "restart_interval", "expected a duration" },
        { "duration_exponent", "[runtime]\nrestart_interval = \"1e3\"\n", 1, 1, ERR, 2, "runtime", "restart_interval", "expected a duration" },
        { "size_unit", "[gateway]\nmax_body = \"1T\"\n", 1, 1, ERR, 2, "gateway", "max_body", "expected a size" },
        { "size_negative", "[gateway]\nmax_body = \"-1\"\n", 1, 1, ERR, 2, "gateway", "max_body", "expected a size" },
        { "size_no_number", "[gateway]\nmax_body = \"K\"\n", 1, 1, ERR, 2, "gateway", "max_body", "expected a size" },
        { "size_fraction", "[gateway]\nmax_body = \"1.5M\"\n", 1, 1, ERR, 2, "gateway", "max_body", "expected a size" },
        { "size_overflow", "[gateway]\nmax_body = \"17179869184G\"\n", 1, 1, ERR, 2, "gateway", "max_body", "expected a size" },
        /* enumerations */
        { "log_level_unknown", "[runtime]\nlog_level = \"verbose\"\n", 1, 1, ERR, 2, "runtime", "log_level", "invalid value \"verbose\": expected one of \"debug\"" },
        { "log_level_unquoted", "[runtime]\nlog_level = debug\n", 1, 1, ERR, 2, "runtime", "log_level", "expected a quoted string" },
        { "ledger_sync_unknown", "[runtime]\nledger_sync = \"sometimes\"\n", 1, 1, ERR, 2, "runtime", "ledger_sync", "expected one of \"always\", \"batch\", \"none\"" },
        { "provider_kind_unknown", "[providers.p]\nkind = \"gemini\"\nmodel = \"m\"\n", 2, 2, ERR, 2, "providers.p", "kind", "invalid value \"gemini\": expected one of \"openai\"" },
        { "channel_kind_unknown", "[channels.c]\nkind = \"fax\"\nallowed_users = [\"*\"]\n", 2, 2, ERR, 2, "channels.c", "kind", "unknown channel kind \"fax\"" },
        { "channel_kind_unquoted", "[channels.c]\nkind = irc\nallowed_users = [\"*\"]\n", 2, 2, ERR, 2, "channels.c", "kind", "expected a quoted string" },
        { "channel_group_bad", CHAN_OK "group = \"ops\n", 1, 1, ERR, 4, "channels.c", "group", "unterminated string" },
        /* lists */
        { "list_not_list", "[channels.c]\nkind = \"irc\"\nallowed_users = \"alice\"\n", 2, 1, ERR, 3, "channels.c", "allowed_users", "expected a list of strings" },
        { "list_unquoted_item", "[channels.c]\nkind = \"irc\"\nallowed_users = [alice]\n", 2, 1, ERR, 3, "channels.c", "allowed_users", "list items must be quoted strings" },
        { "list_missing_comma", "[channels.c]\nkind = \"irc\"\nallowed_users = [\"a\" \"b\"]\n", 2, 1, ERR, 3, "channels.c", "allowed_users", "expected ',' or ']'" },
        { "list_unclosed", "[channels.c]\nkind = \"irc\"\nallowed_users = [\"a\",\n", 2, 1, ERR, 3, "channels.c", "allowed_users", "list items must be quoted strings" },
        { "list_trailing_text", "[channels.c]\nkind = \"irc\"\nallowed_users = [\"a\"] x\n", 2, 1, ERR, 3, "channels.c", "allowed_users", "unexpected text after ']'" },
        { "list_bad_item_escape", "[channels.c]\nkind = \"irc\"\nallowed_users = [\"a\\z\"]\n", 2, 1, ERR, 3, "channels.c", "allowed_users", "unknown escape sequence" },
        /* channel settings */
        { "channel_setting_bad_bare", CHAN_OK "port = 66x\n", 1, 1, ERR, 4, "channels.c", "port", "expected a quoted string, a whole number, true or false" },
        { "channel_setting_bad_string", CHAN_OK "server = \"irc\" x\n", 1, 1, ERR, 4, "channels.c", "server", "unexpected text after the closing quote" },
        { "channel_unknown_key", CHAN_OK "colour = \"red\"\n", 1, 0, WARN, 4, "channels.c", "colour", "unknown key (ignored); see conclave.toml(5) for the keys of [channels.NAME]" },
        /* structure */
        { "duplicate_key", "[runtime]\nlog_level = \"info\"\nlog_level = \"debug\"\n", 1, 1, ERR, 3, "runtime", "log_level", "duplicate key" },
        { "duplicate_channel_key", CHAN_OK "kind = \"irc\"\n", 1, 1, ERR, 4, "channels.c", "kind", "duplicate key" },
        { "line_without_equals", "[runtime]\njust some words\n", 1, 1, ERR, 2, NULL, NULL, "expected key = value, a [section] or a # comment" },
        { "line_with_colon_only", "[runtime]\nlog_level: \"debug\"\n", 1, 1, ERR, 2, NULL, NULL, "expected key = value" },
        { "header_unclosed", "# x\n[runtime\n", 1, 1, ERR, 2, NULL, NULL, "malformed section header" },
        { "header_trailing_text", "[runtime] log_level = 1\n", 1, 1, ERR, 1, NULL, NULL, "malformed section header" },
        { "array_of_tables", "[[channels]]\nkind = \"irc\"\n", 2, 1, ERR, 1, NULL, NULL, "arrays of tables ([[…]]) are not supported" },
        { "key_outside_section", "log_level = \"debug\"\n", 1, 0, WARN, 1, NULL, "log_level", "key outside any section" },
        { "unknown_section", "[runtim]\nlog_level = \"debug\"\n", 1, 0, WARN, 2, "runtim", "log_level", "unknown section" },
        { "unknown_section_dotted", "[gateway.x]\nport = 1\n", 1, 0, WARN, 2, "gateway.x", "port", "unknown section" },
        { "unknown_key_runtime", "[runtime]\nlog_levle = \"debug\"\n", 1, 0, WARN, 2, "runtime", "log_levle", "unknown key (ignored); see conclave.toml(5) for the keys of [runtime]" },
        { "unknown_key_provider", PROV_OK "colour = \"red\"\n", 1, 0, WARN, 4, "providers.p", "colour", "keys of [providers.NAME]" },
        { "invalid_channel_name", "[channels.bad name]\nkind = \"irc\"\n", 1, 1, ERR, 2, "channels.bad name", NULL, "invalid name \"bad name\"" },
        { "empty_channel_name", "[channels.]\nkind = \"irc\"\n", 1, 1, ERR, 2, "channels.", NULL, "invalid name \"\"" },
        { "invalid_provider_name", "[providers.a.b]\nkind = \"openai\"\n", 1, 1, ERR, 2, "providers.a.b", NULL, "invalid name \"a.b\"" },
        /* cross-checks after parsing */
        { "provider_base_url_scheme", PROV_OK "base_url = \"ftp://h/v1\"\n", 1, 1, ERR, 4, "providers.p", "base_url", "not an http:// or https:// URL" },
        { "provider_base_url_space", PROV_OK "base_url = \"http://h /v1\"\n", 1, 1, ERR, 4, "providers.p", "base_url", "not an http://" },
        { "provider_base_url_userinfo", PROV_OK "base_url = \"https://u:p@h/v1\"\n", 1, 1, ERR, 4, "providers.p", "base_url", "user:password@" },
        { "provider_base_url_nohost", PROV_OK "base_url = \"http:///v1\"\n", 1, 1, ERR, 4, "providers.p", "base_url", "with a host" },
        { "provider_cleartext_key", PROV_OK "base_url = \"http://10.0.0.5:8000/v1\"\napi_key_file = \"k\"\n", 1, 0, WARN, 4, "providers.p", "base_url", "plain http:// to 10.0.0.5" },
        { "provider_temperature_range", PROV_OK "temperature = 2.5\n", 1, 1, ERR, 4, "providers.p", "temperature", "from 0 to 2" },
        { "provider_anthropic_temperature", "[providers.p]\nkind = \"anthropic\"\nmodel = \"m\"\ntemperature = 1.5\n", 1, 0, WARN, 4, "providers.p", "temperature", "sent as 1" },
        { "provider_timeout_short", PROV_OK "timeout = \"500ms\"\n", 1, 1, ERR, 4, "providers.p", "timeout", "from 1s to 1d" },
        { "provider_retries_range", PROV_OK "retries = 11\n", 1, 1, ERR, 4, "providers.p", "retries", "out of range (expected 0 to 10)" },
        { "provider_credential_name", PROV_OK "api_key_file = \"credential:a/b\"\n", 1, 1, ERR, 4, "providers.p", "api_key_file", "credential:ID" },
        { "provider_model_newline", "[providers.p]\nkind = \"openai\"\nmodel = \"a\\nb\"\n", 1, 1, ERR, 3, "providers.p", "model", "1-256 characters on one line" },
        { "provider_missing_kind", "[providers.p]\nmodel = \"m\"\n", 1, 1, ERR, 2, "providers.p", "kind", "missing; expected one of \"openai\"" },
        { "provider_missing_model", "# x\n[providers.p]\nkind = \"openai\"\n", 1, 1, ERR, 3, "providers.p", "model", "missing; name the model" },
        { "provider_default_missing", "[provider]\ndefault = \"nope\"\n" PROV_OK, 1, 1, ERR, 2, "provider", "default", "names provider \"nope\" but there is no [providers.nope] section" },
        { "channel_missing_kind", "[channels.c]\nallowed_users = [\"*\"]\n", 1, 1, ERR, 2, "channels.c", "kind", "missing; expected one of telegram" },
        { "channel_no_allowed_users", "[channels.c]\nkind = \"irc\"\n", 1, 0, WARN, 2, "channels.c", "allowed_users", "every sender is refused" },
        { "token_inline", "[gateway]\ntoken = \"s3cret\"\n", 1, 0, WARN, 2, "gateway", "token", "prefer token_file" },
};

static void test_bad_case(void **state) {
        const struct bad_case *bc = *state;
        _cleanup_(config_freep) struct config *c = parse(bc->text);

        assert_diagnostic(c, bc->severity, bc->line, bc->section, bc->key, bc->substring);
        assert_counts(c, bc->n_diagnostics, bc->n_errors);
}

static void test_bad_value_keeps_default(void **state) {
        _cleanup_(config_freep) struct config *c =
                parse("[runtime]\nlog_level = \"loud\"\nledger_sync = \"x\"\nrestart_burst = 0\n"
                      "restart_interval = \"x\"\n[gateway]\nbind = nope\nport = 0\nenabled = maybe\n"
                      "max_body = \"1T\"\n");

        (void) state;
        assert_counts(c, 8, 8);
        assert_int_equal(c->log_level, LOG_INFO);
        assert_int_equal(c->ledger_sync, LEDGER_SYNC_BATCH);
        assert_int_equal(c->restart_burst, 5);
        assert_true(c->restart_interval_usec == 60 * USEC_PER_SEC);
        assert_string_equal(c->gateway_bind, "127.0.0.1");
        assert_int_equal(c->gateway_port, 7777);
        assert_true(c->gateway_enabled);
        assert_true(c->gateway_max_body == 1024 * 1024);
}

/* --- gateway exposure -------------------------------------------------------------------- */

static void test_public_bind_without_token_or_permission(void **state) {
        _cleanup_(config_freep) struct config *c = parse("[gateway]\nbind = \"0.0.0.0\"\n");
        _cleanup_(config_freep) struct config *d = parse("[gateway]\nbind = \"::\"\n");

        (void) state;
        assert_counts(c, 2, 2);
        assert_diagnostic(c, CONFIG_ERROR, 2, "gateway", "bind",
                          "\"0.0.0.0\" is not a loopback address and no token is configured");
        assert_diagnostic(c, CONFIG_ERROR, 2, "gateway", "bind", "set allow_public_bind = true");
        assert_counts(d, 2, 2);
        assert_diagnostic(d, CONFIG_ERROR, 2, "gateway", "bind", "\"::\" is not a loopback address and no token");
}

static void test_public_bind_token_file_without_permission(void **state) {
        _cleanup_(config_freep) struct config *c =
                parse("[gateway]\nbind = \"192.168.1.10\"\ntoken_file = \"/run/t\"\n");

        (void) state;
        assert_counts(c, 1, 1);
        assert_diagnostic(c, CONFIG_ERROR, 2, "gateway", "bind", "set allow_public_bind = true");
}

static void test_public_bind_permission_without_token(void **state) {
        _cleanup_(config_freep) struct config *c =
                parse("[gateway]\nbind = \"0.0.0.0\"\nallow_public_bind = true\n");

        (void) state;
        assert_counts(c, 1, 1);
        assert_diagnostic(c, CONFIG_ERROR, 2, "gateway", "bind", "no token is configured");
}

static void test_public_bind_allowed(void **state) {
        _cleanup_(config_freep) struct config *c =
                parse("[gateway]\nbind = \"0.0.0.0\"\ntoken_file = \"/run/t\"\nallow_public_bind = true\n");
        _cleanup_(config_freep) struct config *d = NULL;
        _cleanup_(config_freep) struct config *e = NULL;

        (void) state;
        assert_counts(c, 0, 0);
        assert_true(config_gateway_has_auth(c));

        /* The token from the environment counts as authentication too. */
        assert_int_equal(setenv("CONCLAVE_WEB_TOKEN", "t0k", 1), 0);
        d = parse("[gateway]\nbind = \"0.0.0.0\"\nallow_public_bind = true\n");
        unsetenv("CONCLAVE_WEB_TOKEN");
        assert_counts(d, 0, 0);

        /* An inline token authenticates but warns. */
        e = parse("[gateway]\nbind = \"0.0.0.0\"\ntoken = \"x\"\nallow_public_bind = true\n");
        assert_counts(e, 1, 0);
        assert_diagnostic(e, CONFIG_WARNING, 3, "gateway", "token", "token written in config.toml");
}

static void test_public_bind_disabled_gateway(void **state) {
        _cleanup_(config_freep) struct config *c = parse("[gateway]\nenabled = false\nbind = \"0.0.0.0\"\n");
        _cleanup_(config_freep) struct config *d = parse("[gateway]\nbind = \"localhost\"\n");

        (void) state;
        assert_counts(c, 0, 0);
        assert_counts(d, 0, 0);
        assert_false(config_gateway_has_auth(d));
}

static void test_gateway_open(void **state) {
        _cleanup_(config_freep) struct config *c = parse("[gateway]\nopen = true\n");
        _cleanup_(config_freep) struct config *d =
                parse("[gateway]\nbind = \"0.0.0.0\"\nallow_public_bind = true\ntoken_file = \"t\"\nopen = true\n");
        _cleanup_(config_freep) struct config *e = parse("[gateway]\nopen = true\ntoken_file = \"t\"\n");
        _cleanup_(config_freep) struct config *f = parse("[gateway]\nenabled = false\nbind = \"::\"\nopen = true\n");

        (void) state;
        assert_true(c->gateway_open);
        assert_counts(c, 0, 0);
        /* Open is for loopback only, whatever else is configured. */
        assert_counts(d, 1, 1);
        assert_diagnostic(d, CONFIG_ERROR, 5, "gateway", "open", "bind \"0.0.0.0\" is not a loopback address");
        /* With a token, open does nothing; say so. */
        assert_counts(e, 1, 0);
        assert_diagnostic(e, CONFIG_WARNING, 2, "gateway", "open", "has no effect: a token is configured");
        /* A disabled gateway's bind is not checked. */
        assert_counts(f, 0, 0);
}

static void test_credential_counts_as_token(void **state) {
        char dir[] = "/tmp/test_config_creds.XXXXXX";
        _cleanup_free_ char *path = NULL;
        _cleanup_(config_freep) struct config *c = NULL;
        _cleanup_(config_freep) struct config *d = NULL;
        int fd;

        (void) state;
        assert_non_null(mkdtemp(dir));
        assert_true(asprintf(&path, "%s/gateway-token", dir) > 0);
        assert_int_equal(setenv("CREDENTIALS_DIRECTORY", dir, 1), 0);
        c = parse("[gateway]\nbind = \"0.0.0.0\"\nallow_public_bind = true\n");
        assert_counts(c, 1, 1);
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0400);
        assert_true(fd >= 0);
        close(fd);
        d = parse("[gateway]\nbind = \"0.0.0.0\"\nallow_public_bind = true\n");
        unsetenv("CREDENTIALS_DIRECTORY");
        unlink(path);
        rmdir(dir);
        assert_counts(d, 0, 0);
        assert_true(config_gateway_has_auth(d) == false); /* the variable is gone now */
}

/* --- config_load ------------------------------------------------------------------------- */

struct tmpdir {
        char path[64];
};

static int tmpdir_setup(void **state) {
        struct tmpdir *t = calloc(1, sizeof *t);

        if (!t)
                return -1;
        strcpy(t->path, "/tmp/test_config.XXXXXX"); /* fits */
        if (!mkdtemp(t->path)) {
                free(t);
                return -1;
        }
        unsetenv("CONCLAVE_WEB_TOKEN");
        *state = t;
        return 0;
}

static int tmpdir_teardown(void **state) {
        struct tmpdir *t = *state;
        DIR *d = opendir(t->path);

        if (d) {
                struct dirent *de;
                while ((de = readdir(d)))
                        if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                                (void) unlinkat(dirfd(d), de->d_name, 0);
                closedir(d);
        }
        (void) rmdir(t->path);
        free(t);
        return 0;
}

static char *write_temp(const struct tmpdir *t, const char *name, const void *data, size_t len) {
        char *path = NULL;
        FILE *f;

        assert_true(asprintf(&path, "%s/%s", t->path, name) > 0);
        f = fopen(path, "we");
        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
        return path;
}

static void test_load_good_file(void **state) {
        static const char text[] = "[gateway]\nport = 4242\n";
        _cleanup_free_ char *path = write_temp(*state, "config.toml", text, strlen(text));
        _cleanup_(config_freep) struct config *c = NULL;
        _cleanup_free_ char *got = NULL;

        assert_int_equal(config_load(path, false, &c, &got), 0);
        assert_string_equal(c->path, path);
        assert_int_equal(c->gateway_port, 4242);
        assert_counts(c, 0, 0);
        assert_non_null(got);
        assert_string_equal(got, text);
}

static void test_load_nul_byte(void **state) {
        static const char text[] = "[gateway]\nport = 1\0\n[runtime]\n";
        _cleanup_free_ char *path = write_temp(*state, "nul.toml", text, sizeof text - 1);
        struct config *c = NULL;
        char *got = NULL;

        assert_int_equal(config_load(path, false, &c, &got), -EBADMSG);
        assert_null(c);
        assert_null(got);
}

static void test_load_too_big(void **state) {
        _cleanup_free_ char *big = malloc(CONFIG_FILE_MAX + 1), *path = NULL, *path_max = NULL;
        _cleanup_(config_freep) struct config *ok = NULL;
        struct config *c = NULL;

        assert_non_null(big);
        /* Comment lines of 64 bytes. */
        for (size_t i = 0; i < CONFIG_FILE_MAX + 1; i++)
                big[i] = i % 64 == 63 ? '\n' : i % 64 == 0 ? '#' : 'x';
        path = write_temp(*state, "big.toml", big, CONFIG_FILE_MAX + 1);
        assert_int_equal(config_load(path, false, &c, NULL), -EFBIG);
        assert_null(c);

        /* Exactly CONFIG_FILE_MAX bytes is fine. */
        path_max = write_temp(*state, "max.toml", big, CONFIG_FILE_MAX);
        assert_int_equal(config_load(path_max, false, &ok, NULL), 0);
        assert_counts(ok, 0, 0);
}

static void test_load_missing(void **state) {
        const struct tmpdir *t = *state;
        _cleanup_free_ char *path = NULL;
        _cleanup_(config_freep) struct config *c = NULL;
        struct config *d = NULL;
        static char sentinel[] = "sentinel";
        char *text = sentinel;

        assert_true(asprintf(&path, "%s/absent.toml", t->path) > 0);
        assert_int_equal(config_load(path, true, &c, &text), 0);
        assert_null(text);
        assert_non_null(c);
        assert_string_equal(c->path, path);
        assert_counts(c, 0, 0);
        assert_int_equal(c->gateway_port, 7777);

        assert_int_equal(config_load(path, false, &d, NULL), -ENOENT);
        assert_null(d);
}

/* --- value helpers ----------------------------------------------------------------------- */

static void test_parse_duration(void **state) {
        static const struct {
                const char *s;
                uint64_t usec;
        } good[] = {
                { "0", 0 },
                { "30", 30 * USEC_PER_SEC },
                { "10us", 10 },
                { "500ms", 500 * USEC_PER_MSEC },
                { "1.5s", 1500 * USEC_PER_MSEC },
                { "30s", 30 * USEC_PER_SEC },
                { "5m", 300 * USEC_PER_SEC },
                { "5min", 300 * USEC_PER_SEC },
                { "2h", 7200 * USEC_PER_SEC },
                { "1d", 86400 * USEC_PER_SEC },
                { "1000000000000s", 1000000000000 * USEC_PER_SEC }, /* 1e18 µs: the limit */
        };
        static const char *const bad[] = {
                "", "s", "ms", "-1", "-5s", " 5s", "5 s", "5s ", "5x", "5sec", "5S", "inf", "nan", ".5s",
        };
        uint64_t v;

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                int r;
                v = 12345;
                r = parse_duration_usec(good[i].s, &v);
                if (r != 0 || v != good[i].usec)
                        fail_msg("duration \"%s\": r=%d, %" PRIu64 " µs", good[i].s, r, v);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                int r;
                v = 12345;
                r = parse_duration_usec(bad[i], &v);
                if (r != -EINVAL || v != 12345)
                        fail_msg("bad duration \"%s\": r=%d, %" PRIu64 " µs", bad[i], r, v);
        }
        assert_int_equal(parse_duration_usec(NULL, &v), -EINVAL);
        assert_int_equal(parse_duration_usec("1000000000001s", &v), -ERANGE);
        assert_int_equal(parse_duration_usec("20000000000d", &v), -ERANGE);
        assert_int_equal(parse_duration_usec("1e400", &v), -EINVAL);
}

static void test_parse_size(void **state) {
        static const struct {
                const char *s;
                uint64_t bytes;
        } good[] = {
                { "0", 0 },
                { "65536", 65536 },
                { "10B", 10 },
                { "64K", 65536 },
                { "64KiB", 65536 },
                { "1M", 1048576 },
                { "1MiB", 1048576 },
                { "2G", 2147483648ULL },
                { "2GiB", 2147483648ULL },
                { "18446744073709551615", UINT64_MAX },
                { "17179869183G", 17179869183ULL * 1024 * 1024 * 1024 },
        };
        static const char *const bad[] = {
                "", "K", "-1", "1T", "1 K", "1K ", " 1K", "1.5M", "1k", "1KB", "18446744073709551616",
        };
        uint64_t v;

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                int r;
                v = 12345;
                r = parse_size_bytes(good[i].s, &v);
                if (r != 0 || v != good[i].bytes)
                        fail_msg("size \"%s\": r=%d, %" PRIu64 " bytes", good[i].s, r, v);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                int r;
                v = 12345;
                r = parse_size_bytes(bad[i], &v);
                if (r != -EINVAL || v != 12345)
                        fail_msg("bad size \"%s\": r=%d, %" PRIu64 " bytes", bad[i], r, v);
        }
        assert_int_equal(parse_size_bytes(NULL, &v), -EINVAL);
        assert_int_equal(parse_size_bytes("17179869184G", &v), -ERANGE);
        assert_int_equal(parse_size_bytes("18014398509481984K", &v), -ERANGE);
        assert_true(v == 12345);
}

static void test_address_is_loopback(void **state) {
        (void) state;
        assert_true(address_is_loopback("127.0.0.1"));
        assert_true(address_is_loopback("127.1.2.3"));
        assert_true(address_is_loopback("127.255.255.254"));
        assert_true(address_is_loopback("::1"));
        assert_true(address_is_loopback("0:0:0:0:0:0:0:1"));
        assert_true(address_is_loopback("localhost"));
        assert_true(address_is_loopback(NULL)); /* unset: the default, 127.0.0.1 */
        assert_false(address_is_loopback("0.0.0.0"));
        assert_false(address_is_loopback("::"));
        assert_false(address_is_loopback("192.168.1.1"));
        assert_false(address_is_loopback("128.0.0.1"));
        assert_false(address_is_loopback("126.255.255.255"));
        assert_false(address_is_loopback("::2"));
        assert_false(address_is_loopback("garbage"));
        assert_false(address_is_loopback(""));
        assert_false(address_is_loopback("127.0.0.1 "));
        assert_false(address_is_loopback("localhost.example.com"));
        assert_false(address_is_loopback("127.0.0.1.evil"));
}

static void test_diagnostic_format(void **state) {
        struct config *c = NULL;
        _cleanup_free_ char *e = NULL, *w = NULL, *v = NULL;

        (void) state;
        assert_int_equal(config_parse_text("/etc/conclave/config.toml",
                                           "log_level = \"info\"\n[gateway]\nport = 0\n"
                                           "[provider]\ndefault = \"x\"\n",
                                           &c),
                         0);
        assert_int_equal(c->n_diagnostics, 3);
        w = config_diagnostic_format(c, &c->diagnostics[0]);
        e = config_diagnostic_format(c, &c->diagnostics[1]);
        v = config_diagnostic_format(c, &c->diagnostics[2]);
        assert_string_equal(w, "/etc/conclave/config.toml:1: warning: log_level: key outside any "
                               "section (ignored); put it under [runtime], [gateway], …");
        assert_string_equal(e, "/etc/conclave/config.toml:3: error: [gateway] port: invalid value 0: "
                               "expected a port number from 1 to 65535");
        /* Cross-key checks point at the key's line. */
        assert_string_equal(v, "/etc/conclave/config.toml:5: error: [provider] default: names provider "
                               "\"x\" but there is no [providers.x] section");
        /* Not tied to a line: no ":LINE". */
        free(v);
        c->diagnostics[2].line = 0;
        v = config_diagnostic_format(c, &c->diagnostics[2]);
        assert_string_equal(v, "/etc/conclave/config.toml: error: [provider] default: names provider "
                               "\"x\" but there is no [providers.x] section");
        config_free(c);
}

static void test_ledger_sync_names(void **state) {
        (void) state;
        assert_string_equal(ledger_sync_to_string(LEDGER_SYNC_ALWAYS), "always");
        assert_string_equal(ledger_sync_to_string(LEDGER_SYNC_BATCH), "batch");
        assert_string_equal(ledger_sync_to_string(LEDGER_SYNC_NONE), "none");
}

int main(void) {
        static const struct CMUnitTest fixed[] = {
                cmocka_unit_test(test_defaults_when_text_null),
                cmocka_unit_test(test_empty_text_is_defaults),
                cmocka_unit_test(test_every_section),
                cmocka_unit_test(test_crlf),
                cmocka_unit_test(test_utf8_bom),
                cmocka_unit_test(test_string_escapes),
                cmocka_unit_test(test_hash_inside_strings),
                cmocka_unit_test(test_integers_and_booleans),
                cmocka_unit_test(test_duration_forms),
                cmocka_unit_test(test_size_forms),
                cmocka_unit_test(test_string_lists),
                cmocka_unit_test(test_channel_mention_reply_required),
                cmocka_unit_test(test_later_value_sections_and_reopened_table),
                cmocka_unit_test(test_long_names),
                cmocka_unit_test(test_line_length_limit),
                cmocka_unit_test(test_errors_collected_with_lines),
                cmocka_unit_test(test_duplicate_keeps_first),
                cmocka_unit_test(test_bad_value_keeps_default),
                cmocka_unit_test(test_public_bind_without_token_or_permission),
                cmocka_unit_test(test_public_bind_token_file_without_permission),
                cmocka_unit_test(test_public_bind_permission_without_token),
                cmocka_unit_test(test_public_bind_allowed),
                cmocka_unit_test(test_public_bind_disabled_gateway),
                cmocka_unit_test(test_gateway_open),
                cmocka_unit_test(test_credential_counts_as_token),
                cmocka_unit_test_setup_teardown(test_load_good_file, tmpdir_setup, tmpdir_teardown),
                cmocka_unit_test_setup_teardown(test_load_nul_byte, tmpdir_setup, tmpdir_teardown),
                cmocka_unit_test_setup_teardown(test_load_too_big, tmpdir_setup, tmpdir_teardown),
                cmocka_unit_test_setup_teardown(test_load_missing, tmpdir_setup, tmpdir_teardown),
                cmocka_unit_test(test_parse_duration),
                cmocka_unit_test(test_parse_size),
                cmocka_unit_test(test_address_is_loopback),
                cmocka_unit_test(test_diagnostic_format),
                cmocka_unit_test(test_ledger_sync_names),
        };
        struct CMUnitTest tests[ELEMENTSOF(fixed) + ELEMENTSOF(bad_cases)];
        size_t n = 0;

        for (size_t i = 0; i < ELEMENTSOF(fixed); i++)
                tests[n++] = fixed[i];
        /* One named test per bad input, so a failure says which. */
        for (size_t i = 0; i < ELEMENTSOF(bad_cases); i++)
                tests[n++] = (struct CMUnitTest){
                        .name = bad_cases[i].name,
                        .test_func = test_bad_case,
                        .initial_state = (void *) &bad_cases[i],
                };
        return cmocka_run_group_tests_name("config", tests, unset_web_token, NULL);
}
