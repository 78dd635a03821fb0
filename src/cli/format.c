/* Printing what the daemon returns: field access, local times, escaped message text, and the
 * one-line forms of events, inbox entries and obligations shared by inbox, tail and actor show. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "macro.h"

const char *cli_str(struct json_object *o, const char *key) {
        struct json_object *v;

        if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v) ||
            json_object_is_type(v, json_type_null))
                return NULL;
        return json_object_get_string(v);
}

int64_t cli_int(struct json_object *o, const char *key) {
        struct json_object *v;

        if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v))
                return 0;
        return json_object_get_int64(v);
}

bool cli_bool(struct json_object *o, const char *key) {
        struct json_object *v;

        if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v))
                return false;
        return json_object_get_boolean(v);
}

struct json_object *cli_array(struct json_object *o, const char *key) {
        struct json_object *v;

        if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v) ||
            !json_object_is_type(v, json_type_array))
                return NULL;
        return v;
}

void cli_print_json(struct json_object *o) {
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
}

const char *cli_format_time(char *buf, size_t size, const char *iso) {
        struct tm tm = {}, local;
        const char *end;
        time_t t;

        if (!iso)
                return "-";
        end = strptime(iso, "%Y-%m-%dT%H:%M:%S", &tm);
        if (end && *end == '.')
                do
                        end++;
                while (*end >= '0' && *end <= '9');
        if (!end || !streq(end, "Z"))
                goto verbatim;
        t = timegm(&tm);
        if (t == (time_t) -1 || !localtime_r(&t, &local) || strftime(buf, size, "%Y-%m-%d %H:%M:%S", &local) == 0)
                goto verbatim;
        return buf;
verbatim:
        snprintf(buf, size, "%s", iso);
        for (char *p = buf; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        *p = '?';
        return buf;
}

void cli_print_text(const char *s, const char *indent) {
        if (!s)
                return;
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                if (*p == '\n' && indent) {
                        putchar('\n');
                        fputs(indent, stdout);
                } else if (*p == '\n')
                        fputs("\\n", stdout);
                else if (*p == '\t')
                        fputs(indent ? "\t" : "\\t", stdout);
                else if (*p == '\r')
                        fputs("\\r", stdout);
                else if (*p < 0x20 || *p == 0x7f)
                        printf("\\x%02x", *p);
                else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) /* C1 controls, e.g. U+009B CSI */
                        printf("\\u%04x", *++p);
                else
                        putchar(*p);
        }
}

/* "bob, carol", or "@all" when the message names nobody. */
static void print_recipients(struct json_object *data) {
        struct json_object *to = cli_array(data, "to");
        size_t n = to ? json_object_array_length(to) : 0;

        if (n == 0)
                fputs("@all", stdout);
        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        fputs(", ", stdout);
                cli_print_text(json_object_get_string(json_object_array_get_idx(to, i)), NULL);
        }
}

static void print_markers(struct json_object *data) {
        if (cli_str(data, "schedule_id")) {
                fputs(" [scheduled", stdout);
                if (cli_int(data, "missed") > 0)
                        printf(", %" PRId64 "%s missed", cli_int(data, "missed"), cli_bool(data, "missed_capped") ? "+" : "");
                putchar(']');
        }
        if (streq(cli_str(data, "reason"), "reminder"))
                printf(" [reminder %" PRId64 "/%" PRId64 "]", cli_int(data, "reminder"), cli_int(data, "reminder_max"));
        if (cli_bool(data, "reply_required"))
                fputs(" [reply required]", stdout);
        if (streq(cli_str(data, "priority"), "attention"))
                fputs(" [attention]", stdout);
        if (cli_str(data, "reply_to")) {
                fputs(" ↩ reply to ", stdout);
                cli_print_text(cli_str(data, "reply_to"), NULL);
        }
}

/* A value of a key=value pair: bare when that is unambiguous, JSON otherwise. */
static void print_value(struct json_object *v) {
        const char *s = json_object_get_string(v);
        bool bare = json_object_is_type(v, json_type_string) && *s;

        for (const char *p = s; bare && *p; p++)
                if ((unsigned char) *p <= ' ' || *p == '"' || *p == '=' || *p == 0x7f)
                        bare = false;
        if (!bare)
                s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        cli_print_text(s, NULL);
}

void cli_print_event(struct json_object *event) {
        struct json_object *data = NULL;
        const char *kind = cli_str(event, "kind");
        char t[CLI_TIME_MAX];

        json_object_object_get_ex(event, "data", &data);
        printf("%s ", cli_format_time(t, sizeof t, cli_str(event, "ts")));
        cli_print_text(cli_str(event, "group_id") ?: "-", NULL);
        printf(" #%" PRId64 " ", cli_int(event, "seq"));
        cli_print_text(kind ?: "?", NULL);
        putchar(' ');
        cli_print_text(cli_str(event, "by") ?: "-", NULL);

        if (streq(kind, "chat.message") || (streq(kind, "system.notify") && cli_str(data, "text"))) {
                fputs(": ", stdout);
                cli_print_text(cli_str(data, "text") ?: "", NULL);
                fputs(" → ", stdout);
                print_recipients(data);
                print_markers(data);
        } else if (streq(kind, "chat.read"))
                printf(": read up to #%" PRId64, cli_int(data, "up_to_seq"));
        else if (streq(kind, "chat.ack")) {
                fputs(": acked ", stdout);
                cli_print_text(cli_str(data, "event_id") ?: "?", NULL);
        } else if (data && json_object_is_type(data, json_type_object) && json_object_object_length(data) > 0) {
                const char *sep = ": ";
                json_object_object_foreach(data, key, value) {
                        fputs(sep, stdout);
                        cli_print_text(key, NULL);
                        putchar('=');
                        print_value(value);
                        sep = " ";
                }
        }
        putchar('\n');
}

void cli_print_message(struct json_object *event) {
        struct json_object *data = NULL;
        char t[CLI_TIME_MAX];

        json_object_object_get_ex(event, "data", &data);
        printf("#%" PRId64 " %s ", cli_int(event, "seq"), cli_format_time(t, sizeof t, cli_str(event, "ts")));
        cli_print_text(cli_str(event, "by") ?: "-", NULL);
        fputs(" → ", stdout);
        print_recipients(data);
        fputs(": ", stdout);
        cli_print_text(cli_str(data, "text") ?: "", "    ");
        print_markers(data);
        putchar('\n');
}

void cli_print_obligations(struct json_object *obligations) {
        size_t n = obligations ? json_object_array_length(obligations) : 0;

        if (n > 0)
                printf("Open obligations:\n");
        for (size_t i = 0; i < n; i++) {
                struct json_object *o = json_object_array_get_idx(obligations, i);
                char t[CLI_TIME_MAX];

                printf("  %-5s ", cli_str(o, "kind") ?: "?");
                cli_print_text(cli_str(o, "event_id") ?: "?", NULL);
                printf(" (#%" PRId64 ") from ", cli_int(o, "seq"));
                cli_print_text(cli_str(o, "from") ?: "?", NULL);
                printf(" since %s\n", cli_format_time(t, sizeof t, cli_str(o, "since")));
        }
}
