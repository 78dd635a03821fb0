/* config.toml parsing on top of inih; values are decoded as TOML (strings, integers, booleans,
 * arrays of strings) by us, since inih only splits sections, keys and raw values. */

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backoff.h"
#include "config.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"

#define CONFIG_LINE_MAX 4096

enum value_kind {
        V_STRING,
        V_BOOL,
        V_UINT,
        V_PORT,
        V_DURATION,
        V_SIZE,
        V_LEVEL,
        V_SYNC,
        V_FLOAT,
        V_STRLIST,
        V_KIND_PROVIDER,
};

struct key_desc {
        const char *key;
        enum value_kind kind;
        size_t offset;
        uint64_t min, max; /* for V_UINT */
};

#define CFG(field) offsetof(struct config, field)
static const struct key_desc runtime_keys[] = {
        { "log_level", V_LEVEL, CFG(log_level), 0, 0 },
        { "ledger_sync", V_SYNC, CFG(ledger_sync), 0, 0 },
        { "ledger_batch_window", V_DURATION, CFG(ledger_batch_usec), 0, 0 },
        { "restart_burst", V_UINT, CFG(restart_burst), 1, RESTART_HISTORY_MAX },
        { "restart_interval", V_DURATION, CFG(restart_interval_usec), 0, 0 },
        { "restart_delay_max", V_DURATION, CFG(restart_delay_max_usec), 0, 0 },
        { "state_interval", V_DURATION, CFG(state_interval_usec), 0, 0 },
        { "worker_watchdog", V_DURATION, CFG(worker_watchdog_usec), 0, 0 },
        {},
};
static const struct key_desc gateway_keys[] = {
        { "enabled", V_BOOL, CFG(gateway_enabled), 0, 0 },
        { "bind", V_STRING, CFG(gateway_bind), 0, 0 },
        { "port", V_PORT, CFG(gateway_port), 0, 0 },
        { "token", V_STRING, CFG(gateway_token), 0, 0 },
        { "token_file", V_STRING, CFG(gateway_token_file), 0, 0 },
        { "allow_public_bind", V_BOOL, CFG(gateway_allow_public_bind), 0, 0 },
        { "open", V_BOOL, CFG(gateway_open), 0, 0 },
        { "max_body", V_SIZE, CFG(gateway_max_body), 0, 0 },
        { "rate_limit", V_UINT, CFG(gateway_rate_limit), 0, 1000000 },
        { "max_connections", V_UINT, CFG(gateway_max_connections), 1, 65536 },
        { "web_ui", V_BOOL, CFG(gateway_web_ui), 0, 0 },
        {},
};
static const struct key_desc provider_keys[] = {
        { "default", V_STRING, CFG(provider_default), 0, 0 },
        {},
};
static const struct key_desc automation_keys[] = {
        { "reply_reminder_after", V_DURATION, CFG(reply_reminder_after_usec), 0, 0 },
        { "attention_reminder_after", V_DURATION, CFG(attention_reminder_after_usec), 0, 0 },
        { "reminder_max", V_UINT, CFG(reminder_max), 0, 100 },
        { "reminder_interval_max", V_DURATION, CFG(reminder_interval_max_usec), 0, 0 },
        { "throttle_min_interval", V_DURATION, CFG(throttle_min_interval_usec), 0, 0 },
        { "throttle_burst", V_UINT, CFG(throttle_burst), 1, 1000 },
        {},
};
#undef CFG

#define PRV(field) offsetof(struct config_provider, field)
static const struct key_desc providers_keys[] = {
        { "kind", V_KIND_PROVIDER, PRV(kind), 0, 0 },
        { "base_url", V_STRING, PRV(base_url), 0, 0 },
        { "model", V_STRING, PRV(model), 0, 0 },
        { "api_key_file", V_STRING, PRV(api_key_file), 0, 0 },
        { "timeout", V_DURATION, PRV(timeout_usec), 0, 0 },
        { "max_tokens", V_UINT, PRV(max_tokens), 1, 10000000 },
        { "temperature", V_FLOAT, PRV(temperature), 0, 0 },
        { "retries", V_UINT, PRV(retries), 0, 10 },
        {},
};
#undef PRV

/* Keys any channel may carry; kind-specific meaning is checked by conclave-channels. */
static const char *const channel_setting_keys[] = {
        "actor", "api_base", "base_url", "bot_token_file", "ca_file", "channel", "flood_burst",
        "flood_interval", "from",
        "homeserver", "imap_url", "nick", "password_file", "poll_interval", "port", "room",
        "sasl", "secret_file", "server", "signing_secret_file", "smtp_url", "tls", "to",
        "token_file", "url", "user_id", "username", "webhook", NULL,
};
/* Keys of the platform kinds (telegram, slack, discord, matrix, email) beyond the list above. */
static const char *const channel_platform_keys[] = { "mode", "poll_timeout", "webhook_url", NULL };
static const char *const channel_kinds[] = {
        "telegram", "slack", "discord", "irc", "matrix", "email", "webhook", NULL,
};
static const char *const provider_kinds[] = { "openai", "anthropic", "ollama", NULL };

struct parser {
        struct config *config;
        const char *text;
        size_t pos;
        unsigned line;
        int oom;
        char **seen; /* "section\nkey" of keys already set, to refuse duplicates */
        unsigned *seen_line;
        size_t n_seen;
        char *section; /* current [section] as read; inih's copy is cut at 49 bytes */
};

static bool strv_contains(const char *const *v, const char *s) {
        for (; *v; v++)
                if (streq(*v, s))
                        return true;
        return false;
}

static void diag(struct parser *p, enum config_severity sev, unsigned line, const char *section,
                 const char *key, const char *fmt, ...) _printf_(6, 7);
static void diag(struct parser *p, enum config_severity sev, unsigned line, const char *section,
                 const char *key, const char *fmt, ...) {
        struct config *c = p->config;
        struct config_diagnostic *n, *d;
        va_list ap;
        int r;

        n = reallocarray(c->diagnostics, c->n_diagnostics + 1, sizeof *n);
        if (!n) {
                p->oom = -ENOMEM;
                return;
        }
        c->diagnostics = n;
        d = &n[c->n_diagnostics];
        *d = (struct config_diagnostic){ .severity = sev, .line = line };
        d->section = section && *section ? strdup(section) : NULL;
        d->key = key ? strdup(key) : NULL;
        va_start(ap, fmt);
        r = vasprintf(&d->message, fmt, ap);
        va_end(ap);
        if (r < 0) {
                d->message = NULL;
                p->oom = -ENOMEM;
        }
        c->n_diagnostics++;
        if (sev == CONFIG_ERROR)
                c->n_errors++;
}

/* --- values ------------------------------------------------------------------------------ */

static const char *skip_space(const char *s) {
        while (*s == ' ' || *s == '\t')
                s++;
        return s;
}

/* After a value: only whitespace and an optional # comment may follow. */
static bool rest_is_comment(const char *s) {
        s = skip_space(s);
        return *s == 0 || *s == '#';
}

static int append_utf8(char **out, size_t *len, uint32_t cp) {
        char *o = *out + *len;
        if (cp < 0x80) {
                o[0] = (char) cp;
                *len += 1;
        } else if (cp < 0x800) {
                o[0] = (char) (0xC0 | (cp >> 6));
                o[1] = (char) (0x80 | (cp & 0x3F));
                *len += 2;
        } else if (cp < 0x10000) {
                if (cp >= 0xD800 && cp <= 0xDFFF)
                        return -EINVAL;
                o[0] = (char) (0xE0 | (cp >> 12));
                o[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
                o[2] = (char) (0x80 | (cp & 0x3F));
                *len += 3;
        } else if (cp <= 0x10FFFF) {
                o[0] = (char) (0xF0 | (cp >> 18));
                o[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
                o[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
                o[3] = (char) (0x80 | (cp & 0x3F));
                *len += 4;
        } else
                return -EINVAL;
        return 0;
}

/* Decodes a TOML basic ("…", with escapes) or literal ('…') string starting at *s. On success
 * *s points after the closing quote. Returns 0, -EINVAL with *why set, or -ENOMEM. */
static int decode_string(const char **s, char **ret, const char **why) {
        const char *p = *s;
        char quote = *p++;
        size_t len = 0;
        _cleanup_free_ char *out = malloc(strlen(p) + 1);

        if (!out)
                return -ENOMEM;
        for (;; p++) {
                if (*p == 0) {
                        *why = "unterminated string (missing closing quote)";
                        return -EINVAL;
                }
                if (*p == quote)
                        break;
                if ((unsigned char) *p < 0x20 && *p != '\t') {
                        *why = "control character inside a string";
                        return -EINVAL;
                }
                if (quote == '\'' || *p != '\\') {
                        out[len++] = *p;
                        continue;
                }
                p++;
                switch (*p) {
                case 'n': out[len++] = '\n'; break;
                case 't': out[len++] = '\t'; break;
                case 'r': out[len++] = '\r'; break;
                case 'b': out[len++] = '\b'; break;
                case 'f': out[len++] = '\f'; break;
                case '"': out[len++] = '"'; break;
                case '\\': out[len++] = '\\'; break;
                case 'u':
                case 'U': {
                        int digits = *p == 'u' ? 4 : 8;
                        uint32_t cp = 0;
                        for (int i = 0; i < digits; i++) {
                                char h = p[1 + i];
                                if (!isxdigit((unsigned char) h)) {
                                        *why = "\\u needs 4 (\\U 8) hexadecimal digits";
                                        return -EINVAL;
                                }
                                cp = cp * 16 + (uint32_t) (isdigit((unsigned char) h) ? h - '0' : (tolower((unsigned char) h) - 'a' + 10));
                        }
                        if (cp == 0 || append_utf8(&out, &len, cp) < 0) {
                                *why = "\\u escape is not a valid Unicode scalar value";
                                return -EINVAL;
                        }
                        p += digits;
                        break;
                }
                default:
                        *why = "unknown escape sequence (valid: \\n \\t \\r \\b \\f \\\" \\\\ \\uXXXX)";
                        return -EINVAL;
                }
        }
        out[len] = 0;
        *s = p + 1;
        *ret = out;
        out = NULL;
        return 0;
}

static int decode_string_value(const char *raw, char **ret, const char **why) {
        const char *s = raw;
        char *v = NULL;
        int r;

        if (*s != '"' && *s != '\'') {
                *why = "expected a quoted string, e.g. key = \"value\"";
                return -EINVAL;
        }
        r = decode_string(&s, &v, why);
        if (r < 0)
                return r;
        if (!rest_is_comment(s)) {
                free(v);
                *why = "unexpected text after the closing quote";
                return -EINVAL;
        }
        *ret = v;
        return 0;
}

static void strv_free(char **v, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

static int decode_string_list(const char *raw, char ***ret, size_t *ret_n, const char **why) {
        const char *s = raw;
        char **v = NULL;
        size_t n = 0;
        int r;

        if (*s++ != '[') {
                *why = "expected a list of strings, e.g. [\"a\", \"b\"]";
                return -EINVAL;
        }
        for (;;) {
                char *item = NULL, **nv;

                s = skip_space(s);
                if (*s == ']')
                        break;
                if (*s != '"' && *s != '\'') {
                        *why = "list items must be quoted strings, e.g. [\"a\", \"b\"]";
                        r = -EINVAL;
                        goto fail;
                }
                r = decode_string(&s, &item, why);
                if (r < 0)
                        goto fail;
                nv = reallocarray(v, n + 1, sizeof *v);
                if (!nv) {
                        free(item);
                        r = -ENOMEM;
                        goto fail;
                }
                v = nv;
                v[n++] = item;
                s = skip_space(s);
                if (*s == ',')
                        s++;
                else if (*s != ']') {
                        *why = "expected ',' or ']' in list (lists must fit on one line)";
                        r = -EINVAL;
                        goto fail;
                }
        }
        if (!rest_is_comment(s + 1)) {
                *why = "unexpected text after ']'";
                r = -EINVAL;
                goto fail;
        }
        *ret = v;
        *ret_n = n;
        return 0;
fail:
        strv_free(v, n);
        return r;
}

/* Bare token up to whitespace or '#', copied into buf. */
static int bare_token(const char *raw, char *buf, size_t size) {
        size_t n = strcspn(raw, " \t#");
        if (n == 0 || n >= size || !rest_is_comment(raw + n))
                return -EINVAL;
        memcpy(buf, raw, n);
        buf[n] = 0;
        return 0;
}

static int decode_uint(const char *raw, uint64_t *ret) {
        char buf[32], *end;
        unsigned long long v;
        size_t j = 0;

        if (bare_token(raw, buf, sizeof buf) < 0)
                return -EINVAL;
        /* TOML allows '_' between digits. */
        for (size_t i = 0; buf[i]; i++)
                if (buf[i] != '_')
                        buf[j++] = buf[i];
        buf[j] = 0;
        if (!isdigit((unsigned char) buf[0]))
                return -EINVAL;
        errno = 0;
        v = strtoull(buf, &end, 10);
        if (errno || *end)
                return -EINVAL;
        *ret = v;
        return 0;
}

int parse_duration_usec(const char *s, uint64_t *ret) {
        static const struct { const char *suffix; uint64_t usec; } units[] = {
                { "us", 1 }, { "ms", 1000 }, { "s", USEC_PER_SEC }, { "m", 60 * USEC_PER_SEC },
                { "min", 60 * USEC_PER_SEC }, { "h", 3600 * USEC_PER_SEC },
                { "d", 86400 * USEC_PER_SEC },
        };
        char *end;
        double v;

        if (!s || !isdigit((unsigned char) *s))
                return -EINVAL;
        /* Plain decimals only: strtod would also take "0x10" and "1e3". */
        if (strspn(s, "0123456789.") == 0 || strchr(s, 'x') || strchr(s, 'X') ||
            strspn(s, "0123456789.") != strcspn(s, "abcdfghijklmnopqrstuvwyzABCDFGHIJKLMNOPQRSTUVWYZ"))
                return -EINVAL;
        errno = 0;
        v = strtod(s, &end);
        if (errno || !isfinite(v) || v < 0)
                return -EINVAL;
        if (*end == 0) {
                v *= (double) USEC_PER_SEC; /* bare number: seconds */
        } else {
                size_t i;
                for (i = 0; i < ELEMENTSOF(units); i++)
                        if (streq(end, units[i].suffix))
                                break;
                if (i == ELEMENTSOF(units))
                        return -EINVAL;
                v *= (double) units[i].usec;
        }
        if (v > 1e18)
                return -ERANGE;
        *ret = (uint64_t) v;
        return 0;
}

int parse_size_bytes(const char *s, uint64_t *ret) {
        static const struct { const char *suffix; uint64_t factor; } units[] = {
                { "", 1 }, { "B", 1 }, { "K", 1024 }, { "KiB", 1024 }, { "M", 1024 * 1024 },
                { "MiB", 1024 * 1024 }, { "G", 1024ULL * 1024 * 1024 },
                { "GiB", 1024ULL * 1024 * 1024 },
        };
        char *end;
        unsigned long long v;

        if (!s || !isdigit((unsigned char) *s))
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(units); i++)
                if (streq(end, units[i].suffix)) {
                        if (v > UINT64_MAX / units[i].factor)
                                return -ERANGE;
                        *ret = v * units[i].factor;
                        return 0;
                }
        return -EINVAL;
}

/* Durations and sizes may be written as a quoted string ("30s", "1M") or a bare number. */
static int decode_unit_string(const char *raw, char *buf, size_t size) {
        if (*raw == '"' || *raw == '\'') {
                _cleanup_free_ char *v = NULL;
                const char *why;
                if (decode_string_value(raw, &v, &why) < 0 || strlen(v) >= size)
                        return -EINVAL;
                strcpy(buf, v); /* length checked above */
                return 0;
        }
        return bare_token(raw, buf, size);
}

static const char *expected_for(enum value_kind kind) {
        switch (kind) {
        case V_STRING: return "a quoted string";
        case V_BOOL: return "true or false";
        case V_UINT: return "a whole number";
        case V_PORT: return "a port number from 1 to 65535";
        case V_DURATION: return "a duration such as \"500ms\", \"30s\", \"5m\", \"2h\" or whole seconds";
        case V_SIZE: return "a size such as 65536, \"64K\" or \"1M\"";
        case V_LEVEL: return "one of \"debug\", \"info\", \"notice\", \"warning\", \"error\"";
        case V_SYNC: return "one of \"always\", \"batch\", \"none\"";
        case V_FLOAT: return "a number such as 0.7";
        case V_STRLIST: return "a list of quoted strings such as [\"alice\", \"bob\"]";
        case V_KIND_PROVIDER: return "one of \"openai\", \"anthropic\", \"ollama\"";
        }
        return "?";
}

/* Decodes `raw` per `d` into the struct at `base`. Reports its own diagnostics. */
static void apply_value(struct parser *p, void *base, const struct key_desc *d, const char *section,
                        const char *raw) {
        void *field = (char *) base + d->offset;
        const char *why = NULL;
        char buf[64];
        int r = 0;

        switch (d->kind) {
        case V_STRING:
        case V_KIND_PROVIDER: {
                char *v = NULL;
                r = decode_string_value(raw, &v, &why);
                if (r == 0 && d->kind == V_KIND_PROVIDER && !strv_contains(provider_kinds, v)) {
                        free(v);
                        r = -EINVAL;
                        why = NULL;
                }
                if (r == 0) {
                        free(*(char **) field);
                        *(char **) field = v;
                }
                break;
        }
        case V_BOOL:
                if (bare_token(raw, buf, sizeof buf) == 0 && streq(buf, "true"))
                        *(bool *) field = true;
                else if (bare_token(raw, buf, sizeof buf) == 0 && streq(buf, "false"))
                        *(bool *) field = false;
                else
                        r = -EINVAL;
                break;
        case V_UINT: {
                uint64_t v;
                r = decode_uint(raw, &v);
                if (r == 0 && (v < d->min || v > d->max)) {
                        diag(p, CONFIG_ERROR, p->line, section, d->key,
                             "value %s is out of range (expected %" PRIu64 " to %" PRIu64 ")", raw,
                             d->min, d->max);
                        return;
                }
                if (r == 0)
                        *(unsigned *) field = (unsigned) v;
                break;
        }
        case V_PORT: {
                uint64_t v;
                r = decode_uint(raw, &v);
                if (r == 0 && (v < 1 || v > 65535))
                        r = -EINVAL;
                if (r == 0)
                        *(uint16_t *) field = (uint16_t) v;
                break;
        }
        case V_DURATION:
                r = decode_unit_string(raw, buf, sizeof buf);
                if (r == 0)
                        r = parse_duration_usec(buf, (uint64_t *) field);
                break;
        case V_SIZE:
                r = decode_unit_string(raw, buf, sizeof buf);
                if (r == 0)
                        r = parse_size_bytes(buf, (uint64_t *) field);
                break;
        case V_LEVEL: {
                _cleanup_free_ char *v = NULL;
                r = decode_string_value(raw, &v, &why);
                if (r == 0) {
                        r = log_level_from_string(v);
                        if (r >= 0) {
                                *(int *) field = r;
                                r = 0;
                        }
                }
                break;
        }
        case V_SYNC: {
                _cleanup_free_ char *v = NULL;
                r = decode_string_value(raw, &v, &why);
                if (r == 0) {
                        if (streq(v, "always"))
                                *(enum ledger_sync *) field = LEDGER_SYNC_ALWAYS;
                        else if (streq(v, "batch"))
                                *(enum ledger_sync *) field = LEDGER_SYNC_BATCH;
                        else if (streq(v, "none"))
                                *(enum ledger_sync *) field = LEDGER_SYNC_NONE;
                        else
                                r = -EINVAL;
                }
                break;
        }
        case V_FLOAT: {
                char *end;
                double v;
                if (bare_token(raw, buf, sizeof buf) < 0) {
                        r = -EINVAL;
                        break;
                }
                errno = 0;
                v = strtod(buf, &end);
                if (errno || *end || !isfinite(v))
                        r = -EINVAL;
                else
                        *(double *) field = v;
                break;
        }
        case V_STRLIST:
                break; /* handled by the caller */
        }

        if (r == -ENOMEM)
                p->oom = r;
        else if (r < 0)
                diag(p, CONFIG_ERROR, p->line, section, d->key, "invalid value %s: %s%sexpected %s",
                     raw, why ? why : "", why ? "; " : "", expected_for(d->kind));
}

static const struct key_desc *find_key(const struct key_desc *table, const char *key) {
        for (; table->key; table++)
                if (streq(table->key, key))
                        return table;
        return NULL;
}

/* --- sections ---------------------------------------------------------------------------- */

static struct config_provider *provider_get(struct parser *p, const char *name) {
        struct config *c = p->config;
        struct config_provider *n;

        for (size_t i = 0; i < c->n_providers; i++)
                if (streq(c->providers[i].name, name))
                        return &c->providers[i];
        n = reallocarray(c->providers, c->n_providers + 1, sizeof *n);
        if (!n)
                return NULL;
        c->providers = n;
        n = &c->providers[c->n_providers];
        *n = (struct config_provider){ .name = strdup(name), .line = p->line,
                                       .timeout_usec = 120 * USEC_PER_SEC, .max_tokens = 1024,
                                       .temperature = -1, .retries = 2 };
        if (!n->name)
                return NULL;
        c->n_providers++;
        return n;
}

static struct config_channel *channel_get(struct parser *p, const char *name) {
        struct config *c = p->config;
        struct config_channel *n;

        for (size_t i = 0; i < c->n_channels; i++)
                if (streq(c->channels[i].name, name))
                        return &c->channels[i];
        n = reallocarray(c->channels, c->n_channels + 1, sizeof *n);
        if (!n)
                return NULL;
        c->channels = n;
        n = &c->channels[c->n_channels];
        *n = (struct config_channel){ .name = strdup(name), .mention_reply_required = true, .line = p->line };
        if (!n->name)
                return NULL;
        c->n_channels++;
        return n;
}

static bool valid_name(const char *s) {
        if (!*s || strlen(s) > 64)
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char) *s) && *s != '-' && *s != '_')
                        return false;
        return true;
}

static void handle_channel_key(struct parser *p, const char *section, const char *name,
                               const char *key, const char *raw) {
        struct config_channel *ch = channel_get(p, name);
        const char *why = NULL;
        int r;

        if (!ch) {
                p->oom = -ENOMEM;
                return;
        }
        if (streq(key, "kind") || streq(key, "group")) {
                char *v = NULL;
                r = decode_string_value(raw, &v, &why);
                if (r == 0 && streq(key, "kind") && !strv_contains(channel_kinds, v)) {
                        diag(p, CONFIG_ERROR, p->line, section, key,
                             "unknown channel kind \"%s\"; expected one of telegram, slack, "
                             "discord, irc, matrix, email, webhook", v);
                        free(v);
                        return;
                }
                if (r < 0) {
                        diag(p, CONFIG_ERROR, p->line, section, key, "invalid value %s: %s", raw, why);
                        return;
                }
                if (streq(key, "kind")) {
                        free(ch->kind);
                        ch->kind = v;
                } else {
                        free(ch->group);
                        ch->group = v;
                }
                return;
        }
        if (streq(key, "mention_reply_required")) {
                static const struct key_desc d = { "mention_reply_required", V_BOOL,
                                                   offsetof(struct config_channel, mention_reply_required), 0, 0 };
                apply_value(p, ch, &d, section, raw);
                return;
        }
        if (streq(key, "allowed_users")) {
                char **v = NULL;
                size_t n = 0;
                r = decode_string_list(raw, &v, &n, &why);
                if (r < 0) {
                        diag(p, CONFIG_ERROR, p->line, section, key, "invalid value %s: %s", raw, why);
                        return;
                }
                strv_free(ch->allowed_users, ch->n_allowed_users);
                ch->allowed_users = v;
                ch->n_allowed_users = n;
                return;
        }
        if (!strv_contains(channel_setting_keys, key) && !strv_contains(channel_platform_keys, key)) {
                diag(p, CONFIG_WARNING, p->line, section, key,
                     "unknown key (ignored); see conclave.toml(5) for the keys of [channels.NAME]");
                return;
        }
        {
                struct config_setting *n;
                char *v = NULL;
                uint64_t u;

                /* Settings keep a string form; numbers and booleans are stored as written. */
                if (*raw == '"' || *raw == '\'') {
                        r = decode_string_value(raw, &v, &why);
                        if (r < 0) {
                                diag(p, CONFIG_ERROR, p->line, section, key, "invalid value %s: %s",
                                     raw, why);
                                return;
                        }
                } else {
                        char buf[64];
                        if (bare_token(raw, buf, sizeof buf) < 0 ||
                            (!streq(buf, "true") && !streq(buf, "false") && decode_uint(buf, &u) < 0)) {
                                diag(p, CONFIG_ERROR, p->line, section, key,
                                     "invalid value %s: expected a quoted string, a whole number, "
                                     "true or false", raw);
                                return;
                        }
                        v = strdup(buf);
                }
                n = reallocarray(ch->settings, ch->n_settings + 1, sizeof *n);
                if (!v || !n) {
                        free(v);
                        p->oom = -ENOMEM;
                        return;
                }
                ch->settings = n;
                n[ch->n_settings++] = (struct config_setting){ .key = strdup(key), .value = v,
                                                               .line = p->line };
        }
}

static bool mark_seen(struct parser *p, const char *section, const char *key) {
        _cleanup_free_ char *id = NULL;
        unsigned *nl;
        char **n;

        if (asprintf(&id, "%s\n%s", section, key) < 0) {
                p->oom = -ENOMEM;
                return true;
        }
        for (size_t i = 0; i < p->n_seen; i++)
                if (streq(p->seen[i], id))
                        return false;
        n = reallocarray(p->seen, p->n_seen + 1, sizeof *n);
        if (n)
                p->seen = n;
        nl = reallocarray(p->seen_line, p->n_seen + 1, sizeof *nl);
        if (nl)
                p->seen_line = nl;
        if (!n || !nl) {
                p->oom = -ENOMEM;
                return true;
        }
        p->seen[p->n_seen] = id;
        p->seen_line[p->n_seen++] = p->line;
        id = NULL;
        return true;
}

/* Line where section.key was set, 0 if it was not: cross-key checks point at the key. */
static unsigned key_line(const struct parser *p, const char *section, const char *key) {
        size_t ls = strlen(section);
        for (size_t i = 0; i < p->n_seen; i++)
                if (strncmp(p->seen[i], section, ls) == 0 && p->seen[i][ls] == '\n' &&
                    streq(p->seen[i] + ls + 1, key))
                        return p->seen_line[i];
        return 0;
}

static int handler(void *user, const char *section, const char *key, const char *raw) {
        struct parser *p = user;
        const struct key_desc *table = NULL, *d;
        void *base = p->config;

        section = p->section ? p->section : ""; /* inih's copy may be truncated */

        if (!mark_seen(p, section, key)) {
                diag(p, CONFIG_ERROR, p->line, section, key,
                     "duplicate key (TOML allows each key once per table)");
                return 1;
        }
        if (*raw == 0) {
                diag(p, CONFIG_ERROR, p->line, section, key, "missing value after '='");
                return 1;
        }

        if (streq(section, "runtime"))
                table = runtime_keys;
        else if (streq(section, "gateway"))
                table = gateway_keys;
        else if (streq(section, "provider"))
                table = provider_keys;
        else if (streq(section, "automation"))
                table = automation_keys;
        else if (strncmp(section, "providers.", 10) == 0 || strncmp(section, "channels.", 9) == 0) {
                bool is_provider = section[0] == 'p';
                const char *name = section + (is_provider ? 10 : 9);

                if (!valid_name(name)) {
                        diag(p, CONFIG_ERROR, p->line, section, NULL,
                             "invalid name \"%s\": use 1-64 letters, digits, '-' or '_'", name);
                        return 1;
                }
                if (!is_provider) {
                        handle_channel_key(p, section, name, key, raw);
                        return 1;
                }
                base = provider_get(p, name);
                if (!base) {
                        p->oom = -ENOMEM;
                        return 1;
                }
                table = providers_keys;
        } else if (*section == 0) {
                diag(p, CONFIG_WARNING, p->line, NULL, key,
                     "key outside any section (ignored); put it under [runtime], [gateway], …");
                return 1;
        } else {
                diag(p, CONFIG_WARNING, p->line, section, key,
                     "unknown section (ignored); known: [runtime] [gateway] [provider] "
                     "[providers.NAME] [channels.NAME] [automation]");
                return 1;
        }

        d = find_key(table, key);
        if (!d) {
                diag(p, CONFIG_WARNING, p->line, section, key,
                     "unknown key (ignored); see conclave.toml(5) for the keys of [%s]",
                     strncmp(section, "providers.", 10) == 0 ? "providers.NAME" : section);
                return 1;
        }
        apply_value(p, base, d, section, raw);
        return 1;
}

/* inih reads lines through us, so we know the line number of every key and can refuse lines
 * inih would silently misread (too long, arrays of tables, lines that are not key = value). */
/* Like rest_is_comment() for a line that ends at `end` rather than at a NUL. */
static bool line_rest_is_comment(const char *s, const char *end) {
        while (s < end && (*s == ' ' || *s == '\t'))
                s++;
        return s == end || *s == '#';
}

static char *reader(char *str, int num, void *stream) {
        struct parser *p = stream;
        const char *start, *end, *content_end, *t;
        size_t len;

        if (p->text[p->pos] == 0)
                return NULL;
        start = p->text + p->pos;
        end = strchrnul(start, '\n');
        len = (size_t) (end - start);
        p->pos += len + (*end ? 1 : 0);
        p->line++;

        /* The '\r' of a "\r\n" line ending is not content; inih strips it from values. */
        content_end = end > start && end[-1] == '\r' ? end - 1 : end;
        /* inih skips a UTF-8 byte order mark at the start of the file; so do we. */
        if (p->line == 1 && len >= 3 && memcmp(start, "\xEF\xBB\xBF", 3) == 0)
                t = skip_space(start + 3);
        else
                t = skip_space(start);
        if (len + 2 > (size_t) num) {
                diag(p, CONFIG_ERROR, p->line, NULL, NULL, "line is longer than %d bytes", num - 2);
                goto ignore;
        }
        if (memchr(start, 0, len)) {
                diag(p, CONFIG_ERROR, p->line, NULL, NULL, "NUL byte in line");
                goto ignore;
        }
        if (t >= content_end || *t == '#' || *t == ';')
                goto copy;
        if (*t == '[') {
                const char *close = memchr(t, ']', (size_t) (content_end - t));
                if (t[1] == '[') {
                        diag(p, CONFIG_ERROR, p->line, NULL, NULL,
                             "arrays of tables ([[…]]) are not supported; use [channels.NAME]");
                        goto ignore;
                }
                if (!close || !line_rest_is_comment(close + 1, content_end)) {
                        diag(p, CONFIG_ERROR, p->line, NULL, NULL,
                             "malformed section header; expected [name]");
                        goto ignore;
                }
                free(p->section);
                p->section = strndup(t + 1, (size_t) (close - t - 1));
                if (!p->section)
                        p->oom = -ENOMEM;
                goto copy;
        }
        if (!memchr(t, '=', (size_t) (end - t))) {
                diag(p, CONFIG_ERROR, p->line, NULL, NULL,
                     "expected key = value, a [section] or a # comment");
                goto ignore;
        }
copy:
        memcpy(str, start, len);
        str[len] = '\n';
        str[len + 1] = 0;
        return str;
ignore:
        memcpy(str, "#\n", 3);
        return str;
}

/* "http(s)://HOST[:PORT][/PATH]": 0 with the host copied, -EINVAL otherwise. */
static int url_host(const char *url, char *host, size_t size) {
        const char *h, *end;

        if (strncmp(url, "http://", 7) == 0)
                h = url + 7;
        else if (strncmp(url, "https://", 8) == 0)
                h = url + 8;
        else
                return -EINVAL;
        for (const char *c = url; *c; c++)
                if ((unsigned char) *c <= 0x20 || *c == 0x7f)
                        return -EINVAL;
        if (*h == '[') {
                end = strchr(h, ']');
                if (!end)
                        return -EINVAL;
                h++;
        } else
                end = h + strcspn(h, ":/?#");
        if (end == h || (size_t) (end - h) >= size || strchr(h, '@'))
                return -EINVAL;
        memcpy(host, h, (size_t) (end - h));
        host[end - h] = 0;
        return 0;
}

static void validate_providers(struct parser *p) {
        struct config *c = p->config;

        if (c->provider_default && !config_find_provider(c, c->provider_default))
                diag(p, CONFIG_ERROR, key_line(p, "provider", "default"), "provider", "default",
                     "names provider \"%s\" but there is no [providers.%s] section",
                     c->provider_default, c->provider_default);
        for (size_t i = 0; i < c->n_providers; i++) {
                struct config_provider *pr = &c->providers[i];
                _cleanup_free_ char *sec = NULL;
                char host[256];
                bool has_key;

                if (asprintf(&sec, "providers.%s", pr->name) < 0) {
                        p->oom = -ENOMEM;
                        return;
                }
                if (!pr->kind)
                        diag(p, CONFIG_ERROR, pr->line, sec, "kind",
                             "missing; expected one of \"openai\", \"anthropic\", \"ollama\"");
                if (!pr->model)
                        diag(p, CONFIG_ERROR, pr->line, sec, "model",
                             "missing; name the model, e.g. model = \"gpt-4o-mini\"");
                else if (!*pr->model || strlen(pr->model) > 256 || strpbrk(pr->model, "\n\r\t"))
                        diag(p, CONFIG_ERROR, key_line(p, sec, "model"), sec, "model",
                             "must be 1-256 characters on one line");
                if (pr->base_url && (strlen(pr->base_url) > 2048 || url_host(pr->base_url, host, sizeof host) < 0))
                        diag(p, CONFIG_ERROR, key_line(p, sec, "base_url"), sec, "base_url",
                             "\"%s\" is not an http:// or https:// URL with a host (no spaces, no user:password@)",
                             pr->base_url);
                if (pr->timeout_usec < USEC_PER_SEC || pr->timeout_usec > 86400 * USEC_PER_SEC)
                        diag(p, CONFIG_ERROR, key_line(p, sec, "timeout"), sec, "timeout",
                             "must be from 1s to 1d");
                /* -1 is "not set" (also what an invalid value leaves, already reported). */
                if (pr->temperature != -1 && (pr->temperature < 0 || pr->temperature > 2))
                        diag(p, CONFIG_ERROR, key_line(p, sec, "temperature"), sec, "temperature",
                             "must be from 0 to 2 (leave it out for the model's default)");
                else if (streq(pr->kind, "anthropic") && pr->temperature > 1)
                        diag(p, CONFIG_WARNING, key_line(p, sec, "temperature"), sec, "temperature",
                             "Anthropic accepts 0 to 1; %g is sent as 1", pr->temperature);
                if (pr->api_key_file && (!*pr->api_key_file ||
                                         (strncmp(pr->api_key_file, "credential:", 11) == 0 && !valid_name(pr->api_key_file + 11))))
                        diag(p, CONFIG_ERROR, key_line(p, sec, "api_key_file"), sec, "api_key_file",
                             "expected a file name, or \"credential:ID\" for a systemd credential "
                             "(LoadCredential=ID:/path)");
                /* A missing key is reported by `conclave doctor`: a systemd credential may supply it. */
                has_key = pr->api_key_file != NULL;
                if (has_key && pr->base_url && strncmp(pr->base_url, "http://", 7) == 0 &&
                    url_host(pr->base_url, host, sizeof host) == 0 && !address_is_loopback(host))
                        diag(p, CONFIG_WARNING, key_line(p, sec, "base_url"), sec, "base_url",
                             "plain http:// to %s: the API key crosses the network unencrypted; use https://", host);
        }
}

static void validate(struct parser *p) {
        struct config *c = p->config;

        if (!address_is_loopback(c->gateway_bind) && c->gateway_enabled) {
                if (!config_gateway_has_auth(c))
                        diag(p, CONFIG_ERROR, key_line(p, "gateway", "bind"), "gateway", "bind",
                             "\"%s\" is not a loopback address and no token is configured; set "
                             "[gateway] token_file (or CONCLAVE_WEB_TOKEN) or bind to 127.0.0.1",
                             c->gateway_bind);
                if (!c->gateway_allow_public_bind)
                        diag(p, CONFIG_ERROR, key_line(p, "gateway", "bind"), "gateway", "bind",
                             "\"%s\" is not a loopback address; set allow_public_bind = true to "
                             "listen beyond this machine", c->gateway_bind);
        }
        if (c->gateway_open && c->gateway_enabled && !address_is_loopback(c->gateway_bind))
                diag(p, CONFIG_ERROR, key_line(p, "gateway", "open"), "gateway", "open",
                     "true, but bind \"%s\" is not a loopback address; an open gateway (no "
                     "token) may only listen on 127.0.0.1 or ::1", c->gateway_bind);
        else if (c->gateway_open && config_gateway_has_auth(c))
                diag(p, CONFIG_WARNING, key_line(p, "gateway", "open"), "gateway", "open",
                     "true has no effect: a token is configured and is required");
        if (c->gateway_token)
                diag(p, CONFIG_WARNING, key_line(p, "gateway", "token"), "gateway", "token",
                     "token written in config.toml; prefer token_file or a systemd credential");
        validate_providers(p);
        if (key_line(p, "automation", "reminder_interval_max") &&
            (c->reminder_interval_max_usec < c->reply_reminder_after_usec ||
             c->reminder_interval_max_usec < c->attention_reminder_after_usec))
                diag(p, CONFIG_WARNING, key_line(p, "automation", "reminder_interval_max"), "automation",
                     "reminder_interval_max", "shorter than reply_reminder_after or attention_reminder_after; "
                     "the first reminder still waits the full time, later ones come no further apart than that");
        if (c->throttle_min_interval_usec > 0 && c->throttle_min_interval_usec < 10 * USEC_PER_MSEC)
                diag(p, CONFIG_ERROR, key_line(p, "automation", "throttle_min_interval"), "automation",
                     "throttle_min_interval", "below 10ms; use 0 to turn throttling off");
        for (size_t i = 0; i < c->n_channels; i++) {
                struct config_channel *ch = &c->channels[i];
                _cleanup_free_ char *sec = NULL;
                if (asprintf(&sec, "channels.%s", ch->name) < 0) {
                        p->oom = -ENOMEM;
                        return;
                }
                if (!ch->kind)
                        diag(p, CONFIG_ERROR, ch->line, sec, "kind",
                             "missing; expected one of telegram, slack, discord, irc, matrix, "
                             "email, webhook");
                if (ch->n_allowed_users == 0)
                        diag(p, CONFIG_WARNING, ch->line, sec, "allowed_users",
                             "empty: every sender is refused; list user ids, or [\"*\"] to allow all");
        }
}

static void config_set_defaults(struct config *c) {
        c->log_level = LOG_INFO;
        c->ledger_sync = LEDGER_SYNC_BATCH;
        c->ledger_batch_usec = 2 * USEC_PER_MSEC;
        c->restart_burst = 5;
        c->restart_interval_usec = 60 * USEC_PER_SEC;
        c->restart_delay_max_usec = 30 * USEC_PER_SEC;
        c->state_interval_usec = 5 * USEC_PER_SEC;
        c->worker_watchdog_usec = 10 * USEC_PER_SEC;
        c->gateway_enabled = true;
        c->gateway_port = 7777;
        c->gateway_max_body = 1024 * 1024;
        c->gateway_rate_limit = 600;
        c->gateway_max_connections = 512;
        c->gateway_web_ui = true;
        c->reply_reminder_after_usec = 3600 * USEC_PER_SEC;
        c->attention_reminder_after_usec = 600 * USEC_PER_SEC;
        c->reminder_max = 3;
        c->reminder_interval_max_usec = 86400 * USEC_PER_SEC;
        c->throttle_min_interval_usec = 2 * USEC_PER_SEC;
        c->throttle_burst = 5;
}

int config_parse_text(const char *path, const char *text, struct config **ret) {
        struct config *c = calloc(1, sizeof *c);
        struct parser p = { .config = c, .text = text ? text : "" };
        int r = 0;

        if (!c)
                return -ENOMEM;
        config_set_defaults(c);
        c->path = strdup(path ? path : "config.toml");
        c->gateway_bind = strdup("127.0.0.1");
        if (!c->path || !c->gateway_bind) {
                config_free(c);
                return -ENOMEM;
        }

        /* Debian's inih exposes its build options as variables; we parse values ourselves
         * (TOML '#' comments, quoted ';'), so turn off inih's own interpretation. */
        ini_allow_inline_comments = false;
        ini_allow_multiline = false;
        ini_use_stack = false;
        ini_max_line = CONFIG_LINE_MAX;
        ini_initial_alloc = CONFIG_LINE_MAX; /* the heap buffer's size; inih's default is 200 */
        ini_allow_realloc = false;
        ini_allow_bom = true;

        if (ini_parse_stream(reader, &p, handler, &p) < 0)
                r = -ENOMEM;
        if (r == 0 && !p.oom)
                validate(&p);
        for (size_t i = 0; i < p.n_seen; i++)
                free(p.seen[i]);
        free(p.seen);
        free(p.seen_line);
        free(p.section);
        if (r < 0 || p.oom) {
                config_free(c);
                return r < 0 ? r : p.oom;
        }
        *ret = c;
        return 0;
}

int config_load(const char *path, bool missing_ok, struct config **ret, char **ret_text) {
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r;

        r = read_file_bounded(path, CONFIG_FILE_MAX, &text, &len);
        if (r == -ENOENT && missing_ok) {
                r = config_parse_text(path, NULL, ret);
                if (r == 0 && ret_text)
                        *ret_text = NULL;
                return r;
        }
        if (r < 0)
                return r;
        if (strlen(text) != len)
                return -EBADMSG; /* NUL byte in file */
        r = config_parse_text(path, text, ret);
        if (r == 0 && ret_text) {
                *ret_text = text;
                text = NULL;
        }
        return r;
}

void config_free(struct config *c) {
        if (!c)
                return;
        free(c->path);
        free(c->gateway_bind);
        free(c->gateway_token);
        free(c->gateway_token_file);
        free(c->provider_default);
        for (size_t i = 0; i < c->n_providers; i++) {
                struct config_provider *pr = &c->providers[i];
                free(pr->name);
                free(pr->kind);
                free(pr->base_url);
                free(pr->model);
                free(pr->api_key_file);
        }
        free(c->providers);
        for (size_t i = 0; i < c->n_channels; i++) {
                struct config_channel *ch = &c->channels[i];
                free(ch->name);
                free(ch->kind);
                free(ch->group);
                strv_free(ch->allowed_users, ch->n_allowed_users);
                for (size_t j = 0; j < ch->n_settings; j++) {
                        free(ch->settings[j].key);
                        free(ch->settings[j].value);
                }
                free(ch->settings);
        }
        free(c->channels);
        for (size_t i = 0; i < c->n_diagnostics; i++) {
                free(c->diagnostics[i].section);
                free(c->diagnostics[i].key);
                free(c->diagnostics[i].message);
        }
        free(c->diagnostics);
        free(c);
}

char *config_diagnostic_format(const struct config *c, const struct config_diagnostic *d) {
        char line[32] = "";
        char *r;

        if (d->line)
                snprintf(line, sizeof line, ":%u", d->line);
        if (asprintf(&r, "%s%s: %s%s%s%s%s%s%s", c->path, line,
                     d->severity == CONFIG_ERROR ? "error: " : "warning: ",
                     d->section ? "[" : "", d->section ? d->section : "", d->section ? "] " : "",
                     d->key ? d->key : "", d->key ? ": " : "", d->message ? d->message : "") < 0)
                return NULL;
        return r;
}

void config_log_diagnostics(const struct config *c) {
        for (size_t i = 0; i < c->n_diagnostics; i++) {
                const struct config_diagnostic *d = &c->diagnostics[i];
                _cleanup_free_ char *s = config_diagnostic_format(c, d);
                char fields[256];

                snprintf(fields, sizeof fields, "CONCLAVE_CONFIG_FILE=%s\nCONCLAVE_CONFIG_LINE=%u",
                         c->path, d->line);
                log_fields_errno(d->severity == CONFIG_ERROR ? LOG_ERR : LOG_WARNING, 0, fields,
                                 "%s", s ? s : "(out of memory)");
        }
}

bool config_gateway_has_auth(const struct config *c) {
        const char *e = getenv("CONCLAVE_WEB_TOKEN");
        const char *creds = getenv("CREDENTIALS_DIRECTORY");

        if (c->gateway_token || c->gateway_token_file || (e && *e))
                return true;
        if (creds && *creds) {
                _cleanup_free_ char *path = NULL;
                if (asprintf(&path, "%s/gateway-token", creds) >= 0 && access(path, F_OK) == 0)
                        return true;
        }
        return false;
}

const struct config_provider *config_find_provider(const struct config *c, const char *name) {
        for (size_t i = 0; name && i < c->n_providers; i++)
                if (streq(c->providers[i].name, name))
                        return &c->providers[i];
        return NULL;
}

const struct config_provider *config_default_provider(const struct config *c) {
        if (c->provider_default)
                return config_find_provider(c, c->provider_default);
        return c->n_providers == 1 ? &c->providers[0] : NULL;
}

bool address_is_loopback(const char *bind) {
        struct in_addr a4;
        struct in6_addr a6;

        if (!bind)
                return true;
        if (streq(bind, "localhost"))
                return true;
        if (inet_pton(AF_INET, bind, &a4) == 1)
                return (ntohl(a4.s_addr) >> 24) == 127;
        if (inet_pton(AF_INET6, bind, &a6) == 1)
                return IN6_IS_ADDR_LOOPBACK(&a6);
        return false;
}

const char *ledger_sync_to_string(enum ledger_sync s) {
        switch (s) {
        case LEDGER_SYNC_ALWAYS: return "always";
        case LEDGER_SYNC_BATCH: return "batch";
        case LEDGER_SYNC_NONE: return "none";
        }
        return "?";
}

const char *config_channel_setting(const struct config_channel *ch, const char *key) {
        for (size_t i = 0; i < ch->n_settings; i++)
                if (streq(ch->settings[i].key, key))
                        return ch->settings[i].value;
        return NULL;
}
