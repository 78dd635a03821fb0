/* `conclave channel list|doctor [NAME]`: the chat channels the daemon runs (channel.list) and
 * their live check (channel.doctor, answered by conclave-channels). */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "macro.h"
#include "proto.h"

static const char list_help[] =
        "Usage: conclave channel list [--json]\n\n"
        "One line per configured channel ([channels.NAME] in config.toml): kind, group, state (connecting,\n"
        "up, degraded, down) and its last error, the humans bound to it, deliveries waiting.\n\n"
        "      --json  print the raw list\n";
static const char doctor_help[] =
        "Usage: conclave channel doctor [NAME] [--json]\n\n"
        "Checks each channel (or only NAME) live: configuration, group, allowlist, then what the\n"
        "channel kind can test (connected and joined, credentials accepted, endpoint reachable).\n"
        "One line per channel; a failing one comes with what to do about it. Exits 1 when any fails.\n\n"
        "      --json  print the raw result\n";

static void channel_help(void) {
        printf("Usage: conclave channel VERB [OPTIONS]\n\n"
               "Verbs:\n"
               "  list            the configured channels and their state\n"
               "  doctor [NAME]   live check of every channel, or of NAME\n\n"
               "Run `conclave channel VERB --help` for a verb's options. Channels are configured in\n"
               "config.toml ([channels.NAME]); see docs/channels.md.\n");
}

static int parse(int argc, char **argv, const char *help, bool *json, const char **name, bool takes_name) {
        static const struct option options[] = {
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int c;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'j': *json = true; break;
                case 'h': fputs(help, stdout); return 0;
                default: return -EXIT_USAGE;
                }
        if (takes_name && optind < argc)
                *name = argv[optind++];
        if (optind < argc) {
                fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[optind]);
                return -EXIT_USAGE;
        }
        return 1;
}

static int channel_list(int argc, char **argv) {
        _cleanup_json_ struct json_object *result = NULL;
        const char *name = NULL;
        bool json = false;
        int r = parse(argc, argv, list_help, &json, &name, false);

        if (r <= 0)
                return -r;
        r = cli_request("channel.list", NULL, &result);
        if (r != EXIT_SUCCESS)
                return r;
        if (json) {
                cli_print_json(result);
                return EXIT_SUCCESS;
        }
        if (json_object_array_length(result) == 0) {
                printf("No channels configured. Add a [channels.NAME] section to config.toml (see docs/channels.md),\n"
                       "then run `conclave service reload`.\n");
                return EXIT_SUCCESS;
        }
        printf("%-14s %-9s %-12s %-10s %6s %7s  %s\n", "NAME", "KIND", "GROUP", "STATE", "HUMANS", "PENDING", "LAST ERROR");
        for (size_t i = 0; i < json_object_array_length(result); i++) {
                struct json_object *c = json_object_array_get_idx(result, i);
                const char *error = cli_str(c, "error");

                /* No blanks at the end of a line without an error. */
                printf("%-14s %-9s %-12s %-10s %6" PRId64 " %7" PRId64 "%s%s\n", cli_str(c, "name") ?: "?",
                       cli_str(c, "kind") ?: "?", cli_str(c, "group") ?: "(none)", cli_str(c, "state") ?: "?",
                       cli_int(c, "humans"), cli_int(c, "pending"), error && *error ? "  " : "", error ?: "");
        }
        return EXIT_SUCCESS;
}

static int channel_doctor(int argc, char **argv) {
        _cleanup_json_ struct json_object *args = NULL, *result = NULL;
        struct json_object *list;
        const char *name = NULL;
        bool json = false;
        size_t failed = 0;
        int r = parse(argc, argv, doctor_help, &json, &name, true);

        if (r <= 0)
                return -r;
        args = cli_args("channel", name, (char *) NULL);
        if (!args)
                return cli_oom();
        r = cli_request("channel.doctor", args, &result);
        if (r != EXIT_SUCCESS)
                return r;
        list = cli_array(result, "channels");
        for (size_t i = 0; list && i < json_object_array_length(list); i++)
                failed += !cli_bool(json_object_array_get_idx(list, i), "ok");
        if (json) {
                cli_print_json(result);
                return failed ? EXIT_FAILURE : EXIT_SUCCESS;
        }
        if (!list || json_object_array_length(list) == 0) {
                printf("No channels configured: nothing to check.\n");
                return EXIT_SUCCESS;
        }
        for (size_t i = 0; i < json_object_array_length(list); i++) {
                struct json_object *c = json_object_array_get_idx(list, i);
                if (cli_bool(c, "ok"))
                        printf("ok    %s (%s): %s\n", cli_str(c, "name") ?: "?", cli_str(c, "kind") ?: "?",
                               cli_str(c, "detail") ?: "fine");
                else
                        printf("FAIL  %s (%s): %s\n      fix: %s\n", cli_str(c, "name") ?: "?", cli_str(c, "kind") ?: "?",
                               cli_str(c, "problem") ?: "?", cli_str(c, "fix") ?: "?");
        }
        if (failed)
                printf("%zu of %zu channel(s) failed.\n", failed, json_object_array_length(list));
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

int cmd_channel(int argc, char **argv) {
        const char *verb = argc > 1 ? argv[1] : NULL;

        if (!verb || streq(verb, "--help") || streq(verb, "-h") || streq(verb, "help")) {
                channel_help();
                return verb ? EXIT_SUCCESS : EXIT_USAGE;
        }
        if (streq(verb, "list")) {
                argv[1] = (char *) "conclave channel list";
                return channel_list(argc - 1, argv + 1);
        }
        if (streq(verb, "doctor")) {
                argv[1] = (char *) "conclave channel doctor";
                return channel_doctor(argc - 1, argv + 1);
        }
        fprintf(stderr, "conclave channel: unknown verb '%s'; see `conclave channel --help`\n", verb);
        return EXIT_USAGE;
}
